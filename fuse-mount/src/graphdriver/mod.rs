//! Docker's graph-driver plugin API (Docker <= 26 with `--experimental`; DESIGN.md §8),
//! served by the daemon of a mount on a unix socket such as `/run/docker/plugins/lcfs.sock`
//! (`lcfs mount --graphdriver SOCK`), calling the engine directly.
//!
//! The protocol (RUNTIMES.md, "What the graph-driver plugin sees"): HTTP/1.1, every call a
//! `POST /Plugin.Activate` or `POST /GraphDriver.<Call>` with a JSON body, except ApplyDiff
//! (`?id=ID&parent=P`, a raw tar body, often chunked). A reply is JSON with status 200, or
//! `{"Err": why}` with status 400 (a malformed request), 404 (an unknown call: dockerd reads it
//! as "not implemented"), 500 (a failed operation) or 503 (the mount is going away); dockerd
//! reads the `Err` of any status. Diff answers with a chunked tar body. `http.rs` parses and
//! writes the wire; `driver.rs` maps each call to the engine.
//!
//! Invariants:
//! - every request the server reads gets a reply, an error one when anything fails (dockerd
//!   retries a call whose connection dropped with an empty body: that gets one too); the
//!   server keeps serving whatever a connection sent;
//! - a reply goes out after its request body was read to the end (what the call did not read
//!   is drained, at most `DRAIN_BYTES_MAX`), so a client still sending sees the reply, not a
//!   broken pipe; a connection whose body could not be read to its end closes after its reply;
//! - connections are kept alive (HTTP/1.1) and never closed while idle, since dockerd would
//!   retry a call sent on a connection closing under it with an empty body;
//! - the engine is held weakly: each request upgrades it for its own duration;
//! - the socket is root's only (mode 0600); a socket another process serves is never taken.

pub(crate) mod driver;
pub(crate) mod http;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use self::driver::{Driver, Reply};
use self::http::{Body, ChunkedReply};
use crate::mount::shared::Shared;

/// The most bytes of a request body read and dropped after its call (the rest of a tar after
/// a failed ApplyDiff): past it, the connection closes after the reply.
const DRAIN_BYTES_MAX: u64 = 4 << 30;
/// How long a started request may wait for its next bytes (a stalled pull, a dead client).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// The read buffer of a connection.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Starts serving on `socket` in the background (threads of its own) and returns once it
/// listens. Holds the engine only weakly: the daemon's last checkpoint must not wait for it.
pub fn start(shared: Weak<Shared>, mountpoint: &Path, socket: &Path) -> Result<()> {
    let listener = listen(socket)?;
    let driver = Arc::new(Driver::new(shared, mountpoint.to_path_buf()));
    std::thread::Builder::new()
        .name("lcfs-graphdriver".to_string())
        .spawn(move || accept(&driver, &listener))
        .context("cannot start the graph driver's thread")?;
    Ok(())
}

/// Binds `socket`: its directory is created, a stale socket file (no one answers) removed.
fn listen(socket: &Path) -> Result<UnixListener> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(socket).is_ok() {
                bail!(
                    "{} is served by another process already (another lcfs daemon, or another \
                     plugin): stop it, or give another socket path",
                    socket.display()
                );
            }
            std::fs::remove_file(socket)
                .with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket: remove it, or give another socket path",
            socket.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read {}: {e}", socket.display()),
    }
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {} to root", socket.display()))?;
    Ok(listener)
}

/// Accepts connections for the daemon's life, a thread each.
fn accept(driver: &Arc<Driver>, listener: &UnixListener) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("lcfs: graph driver: accepting a connection failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let answer = stream.try_clone();
        let driver = Arc::clone(driver);
        let spawned = std::thread::Builder::new()
            .name("lcfs-graphdriver-conn".to_string())
            .spawn(move || serve(&driver, stream));
        if let (Err(e), Ok(mut out)) = (spawned, answer) {
            let message = format!("the lcfs graph driver cannot start a thread: {e}");
            let _ = http::write_json(&mut out, 503, &json!({ "Err": message }), false);
        }
    }
}

/// Serves the requests of one connection, in order, until it ends or cannot go on.
fn serve(driver: &Driver, stream: UnixStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    loop {
        // Waiting for the next request has no time limit; a started request has one.
        let _ = reader.get_ref().set_read_timeout(None);
        match reader.fill_buf() {
            Ok(bytes) if !bytes.is_empty() => {}
            _ => return,
        }
        let _ = reader.get_ref().set_read_timeout(Some(REQUEST_TIMEOUT));
        match serve_one(driver, &mut reader, &mut out) {
            Ok(served) if served.keep_alive => {}
            _ => return,
        }
    }
}

/// What `serve_one` did with one request.
#[derive(Debug)]
pub(crate) struct Served {
    /// The request's path, `None` when its head was malformed or the connection ended.
    pub path: Option<String>,
    /// Whether the connection can carry another request.
    pub keep_alive: bool,
}

/// Reads, answers and replies to one request of a connection (`reader`, `out`: the socket's
/// two ends; the fuzz target passes a byte slice and a `Vec`).
pub(crate) fn serve_one<R: BufRead, W: Write>(
    driver: &Driver,
    reader: &mut R,
    out: &mut W,
) -> io::Result<Served> {
    let request = match http::read_head(reader) {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(Served { path: None, keep_alive: false }),
        Err(e) => {
            eprintln!("lcfs: graph driver: malformed request: {}", e.message);
            http::write_json(out, e.status, &json!({ "Err": e.message }), false)?;
            return Ok(Served { path: None, keep_alive: false });
        }
    };
    if request.expect_continue {
        http::write_continue(out)?;
    }
    let mut body = Body::new(reader, request.framing);
    let reply = driver.handle(&request, &mut body);
    let ended = body.is_done() || body.drain(DRAIN_BYTES_MAX);
    let keep_alive = request.keep_alive && ended;
    let keep_alive = match reply {
        Reply::Json(value) => {
            http::write_json(out, 200, &value, keep_alive)?;
            keep_alive
        }
        Reply::Failed(failure) => {
            eprintln!("lcfs: graph driver: {}: {}", request.path, failure.message);
            let value = json!({ "Err": failure.message });
            http::write_json(out, failure.status, &value, keep_alive)?;
            keep_alive
        }
        Reply::Diff { shared, layer, name } => send_diff(&shared, layer, &name, out, keep_alive)?,
    };
    Ok(Served { path: Some(request.path), keep_alive })
}

/// Streams the tar of layer `name`'s changes. A failure before anything went out is answered
/// with an error reply; after that, the connection is cut without the last chunk, so the
/// client sees a broken body, never a short tar.
fn send_diff<W: Write>(
    shared: &Shared,
    layer: lcfs::LayerId,
    name: &str,
    out: &mut W,
    keep_alive: bool,
) -> io::Result<bool> {
    let mut reply = ChunkedReply::new(&mut *out, "application/x-tar", keep_alive);
    let written = lcfs::tar::write_layer_diff(&shared.fs, layer, &mut reply);
    let started = reply.started();
    match written {
        Ok(_) => reply.finish().map(|()| keep_alive),
        Err(e) if !started => {
            drop(reply);
            let message = format!("the diff of layer {name:?} failed: {e}");
            eprintln!("lcfs: graph driver: {message}");
            http::write_json(out, 500, &json!({ "Err": message }), keep_alive)?;
            Ok(keep_alive)
        }
        Err(e) => {
            eprintln!(
                "lcfs: graph driver: the diff of layer {name:?} failed after its reply began \
                 ({e}); the connection was cut"
            );
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_socket_is_never_taken_and_a_stale_one_is_replaced() {
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let socket = dir.path().join("plugins/x.sock");
        let first = listen(&socket);
        assert!(first.is_ok(), "{first:?}");
        let second = listen(&socket)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(second.contains("served by another process"), "{second}");
        drop(first);
        assert!(listen(&socket).is_ok(), "the stale socket file is replaced");
        let file = dir.path().join("file");
        assert!(std::fs::write(&file, b"x").is_ok());
        let refused = listen(&file)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("not a socket"), "{refused}");
    }
}
