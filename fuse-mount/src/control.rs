//! The control protocol between the `lcfs` CLI and the daemon serving a mount: one JSON object
//! per line on a unix socket, one request and one reply per connection.
//!
//! Where things are (for each mount point, `KEY` is a hash of its canonical path):
//! `/run/lcfs/KEY.sock` the socket, `/run/lcfs/KEY.json` the daemon's pid, image and mount
//! point, `/run/lcfs/KEY.log` the daemon's output when it runs in the background.
//!
//! Requests: `{"op":"status"}`, `{"op":"layer_create","name":N,"parent":P|null}`,
//! `{"op":"layer_commit","name":N}`, `{"op":"layer_remove","name":N}`, `{"op":"layer_list"}`,
//! `{"op":"layer_diff","name":N}`, `{"op":"stats"}`,
//! `{"op":"gc","dry_run":bool,"min_age_sec":S|null}` (both may be left out), `{"op":"checkpoint"}`,
//! `{"op":"umount","lazy":bool}`. Replies: `{"ok":true,"data":...}` or
//! `{"ok":false,"error":"what failed and what to do"}`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The directory of sockets, daemon descriptions and logs.
pub const RUN_DIR: &str = "/run/lcfs";

/// A request to the daemon.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    LayerCreate {
        name: String,
        parent: Option<String>,
    },
    LayerCommit {
        name: String,
    },
    LayerRemove {
        name: String,
    },
    LayerList,
    LayerDiff {
        name: String,
    },
    Stats,
    Gc {
        /// List the orphaned layers, remove nothing.
        #[serde(default)]
        dry_run: bool,
        /// The minimum age of a layer named like a runtime's temporary key (default 1 hour).
        #[serde(default)]
        min_age_sec: Option<u64>,
    },
    Checkpoint,
    Umount {
        lazy: bool,
    },
}

/// The daemon's reply.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Reply {
    pub fn ok(data: serde_json::Value) -> Self {
        Reply {
            ok: true,
            error: None,
            data,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(message.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// What the daemon of a mount writes to `KEY.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DaemonInfo {
    pub pid: u32,
    pub image: PathBuf,
    pub mountpoint: PathBuf,
    pub socket: PathBuf,
}

/// The key of a mount point: FNV-1a of its canonical path, in hex.
pub fn key(mountpoint: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in mountpoint.as_os_str().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The paths of the socket, description and log of the daemon serving `mountpoint`
/// (canonical).
pub fn paths(mountpoint: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let key = key(mountpoint);
    let dir = Path::new(RUN_DIR);
    (
        dir.join(format!("{key}.sock")),
        dir.join(format!("{key}.json")),
        dir.join(format!("{key}.log")),
    )
}

/// Sends `request` to the daemon listening on `socket` and returns its reply.
pub fn call(socket: &Path, request: &Request) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(&reply).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r: Request = serde_json::from_str(r#"{"op":"layer_create","name":"a","parent":null}"#)
            .unwrap_or(Request::Status);
        assert_eq!(
            r,
            Request::LayerCreate {
                name: "a".into(),
                parent: None
            }
        );
        let r: Request =
            serde_json::from_str(r#"{"op":"umount","lazy":true}"#).unwrap_or(Request::Status);
        assert_eq!(r, Request::Umount { lazy: true });
        let r: Request = serde_json::from_str(r#"{"op":"gc"}"#).unwrap_or(Request::Status);
        assert_eq!(
            r,
            Request::Gc {
                dry_run: false,
                min_age_sec: None
            }
        );
        let text = serde_json::to_string(&Reply::error("x")).unwrap_or_default();
        assert_eq!(text, r#"{"ok":false,"error":"x","data":null}"#);
    }

    #[test]
    fn keys_differ_for_different_mount_points() {
        assert_ne!(key(Path::new("/mnt/a")), key(Path::new("/mnt/b")));
        assert_eq!(key(Path::new("/mnt/lcfs")).len(), 16);
    }
}
