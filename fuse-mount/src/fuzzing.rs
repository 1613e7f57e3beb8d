//! Entry points of the fuzz targets `graphdriver` and `snapshotter` (fuzz/src/graphdriver.rs,
//! fuzz/src/snapshotter.rs): the protocol handlers without their sockets.
//!
//! The targets drive the handlers the daemon serves (`graphdriver::serve_one`,
//! `snapshotter::{ops, filter}`), not copies: `serve_graphdriver` feeds one connection's bytes
//! from a slice to `graphdriver::serve_one`, with a `Vec` for the socket, and checks every
//! reply on the wire (`check_reply`).
//!
//! Invariant: nothing here panics on any input; a broken property is an `Err` for the target
//! to panic on.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use lcfs::Fs;
use serde_json::Value;

use crate::graphdriver::{self, driver::Driver};
use crate::snapshotter::{filter, ops};

pub use ops::{Failure as SnapshotFailure, Ops};
pub use crate::mount::shared::Shared;
pub use containerd_snapshots::tonic::Code;
pub use containerd_snapshots::{Info, Kind, Usage};


/// The read buffer (smaller than the daemon's: the inputs are small).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// One request of a `serve_graphdriver` run and what it got.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request's path (`/GraphDriver.Create`), or empty when its head was malformed.
    pub path: String,
    /// The reply's status.
    pub status: u16,
    /// The reply's `Err`, for a status other than 200.
    pub error: Option<String>,
}

/// Serves `input` as the bytes one connection sent to the graph driver of a mount of `fs` at
/// `mountpoint` (no FUSE session: the notifier is unset), as `graphdriver::serve` does: one
/// request after another until the input ends or a reply closes the connection. Checks each
/// reply on the wire. The engine is released before the return, so the caller holds the only
/// reference to `fs` again.
pub fn serve_graphdriver(
    fs: Arc<Fs>,
    mountpoint: &Path,
    input: &[u8],
) -> Result<Vec<Exchange>, String> {
    let shared = Arc::new(Shared::new(fs));
    let driver = Driver::new(Arc::downgrade(&shared), mountpoint.to_path_buf());
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, input);
    let mut exchanges = Vec::new();
    loop {
        let left = reader.get_ref().len() + reader.buffer().len();
        match reader.fill_buf() {
            Ok(bytes) if !bytes.is_empty() => {}
            _ => break,
        }
        let mut out = Vec::new();
        let served = graphdriver::serve_one(&driver, &mut reader, &mut out)
            .map_err(|e| format!("writing to a Vec failed: {e}"))?;
        let (path, more) = (served.path, served.keep_alive);
        let now_left = reader.get_ref().len() + reader.buffer().len();
        if path.is_none() && out.is_empty() {
            break; // The connection ended between requests.
        }
        let (status, error) = check_reply(&out)
            .map_err(|why| format!("reply {} ({path:?}): {why}", exchanges.len()))?;
        exchanges.push(Exchange {
            path: path.unwrap_or_default(),
            status,
            error,
        });
        if !more {
            break;
        }
        if now_left >= left {
            return Err(format!(
                "request {} consumed nothing and kept the connection",
                exchanges.len()
            ));
        }
    }
    drop(driver);
    if Arc::strong_count(&shared) != 1 {
        return Err("the engine is still held after the connection".to_string());
    }
    Ok(exchanges)
}

/// Checks one reply on the wire: an optional `100 Continue`, then a status line, headers, and
/// a body of its `Content-Length` (JSON: an object with a string `Err` unless the status is
/// 200) or chunked (a 200 tar, ending with the last chunk). Returns the status and the `Err`.
pub fn check_reply(out: &[u8]) -> Result<(u16, Option<String>), String> {
    let out = out
        .strip_prefix(b"HTTP/1.1 100 Continue\r\n\r\n".as_slice())
        .unwrap_or(out);
    let head_end = find(out, b"\r\n\r\n").ok_or("no reply, or a reply without its head")?;
    let head = std::str::from_utf8(&out[..head_end]).map_err(|_| "a head that is not UTF-8")?;
    let body = &out[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    if !matches!(status, 200 | 400 | 404 | 405 | 411 | 413 | 414 | 417 | 431 | 500 | 501 | 503 | 505) {
        return Err(format!("unexpected status {status}"));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    };
    if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        if status != 200 {
            return Err(format!("a chunked reply with status {status}"));
        }
        if !body.ends_with(b"0\r\n\r\n") {
            return Err("a chunked reply without its last chunk".to_string());
        }
        return Ok((status, None));
    }
    let length: usize = header("Content-Length")
        .and_then(|v| v.parse().ok())
        .ok_or("a reply without Content-Length")?;
    if body.len() != length {
        return Err(format!("Content-Length {length}, body {} bytes", body.len()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("a body that is not JSON: {e}"))?;
    if status == 200 {
        return Ok((status, None));
    }
    match value.get("Err").and_then(Value::as_str) {
        Some(err) if !err.is_empty() => Ok((status, Some(err.to_string()))),
        _ => Err(format!("status {status} without an Err: {value}")),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The snapshotter's operations (`ops.rs`) on an engine without a FUSE session, as the
/// service runs them.
pub struct Snapshots {
    shared: Shared,
    layers_dir: std::path::PathBuf,
}

impl Snapshots {
    /// The snapshotter of a mount of `fs` at `mountpoint`.
    pub fn new(fs: Arc<Fs>, mountpoint: &Path) -> Snapshots {
        Snapshots {
            shared: Shared::new(fs),
            layers_dir: mountpoint.join("layers"),
        }
    }

    /// The operations, one function per RPC.
    pub fn ops(&self) -> Ops<'_> {
        Ops {
            shared: &self.shared,
            layers_dir: &self.layers_dir,
        }
    }

    /// The engine back, once the operations are done.
    pub fn into_fs(self) -> Arc<Fs> {
        self.shared.fs
    }
}

/// `filter.rs` on `filters` (List's filter strings), then, when they parse, whether a
/// snapshot with these fields matches.
pub fn filter_matches(
    filters: &[String],
    kind: &str,
    name: &str,
    parent: &str,
    labels: &HashMap<String, String>,
) -> Result<bool, String> {
    let filters = filter::Filters::parse(filters)?;
    Ok(filters.matches(&filter::Fields {
        kind,
        name,
        parent,
        labels,
    }))
}
