//! The daemon's side of the control protocol (`control.rs`): layer operations, listing,
//! statistics, gc, checkpoint and unmount, each answered with what failed and what to do.
//!
//! Invariants: a layer created or removed here is announced to the kernel (`layers_changed`),
//! and a removed layer's slot goes stale (`Shared::layer_gone`) before the reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lcfs::{Error, GcOptions, LayerState, Timespec};
use serde_json::json;

use crate::control::{Reply, Request};
use crate::mount::shared::Shared;
use crate::sys;

/// The control server of one mount.
#[derive(Debug)]
pub struct Server {
    pub shared: Arc<Shared>,
    pub mountpoint: PathBuf,
    pub image: PathBuf,
    /// Set when the daemon is going away: the accept loop ends.
    pub stopping: AtomicBool,
}

/// Explains an engine error of a layer operation on `name`.
fn layer_error(what: &str, name: &str, e: &Error) -> Reply {
    let hint = match e {
        Error::NotFound => format!("no layer called {name:?} (see `lcfs layer list`)"),
        Error::Exists => format!("a layer called {name:?} exists already: pick another name"),
        Error::Busy(why) => {
            format!("layer {name:?} is busy ({why}): remove its children first, or close its files")
        }
        Error::InvalidArgument(why) => why.to_string(),
        Error::NameTooLong => "layer names are at most 255 bytes".to_string(),
        other => format!("{other}"),
    };
    Reply::error(format!("{what} {name:?} failed: {hint}"))
}

fn state_name(state: LayerState) -> &'static str {
    match state {
        LayerState::Committed => "committed",
        LayerState::Writable => "writable",
    }
}

impl Server {
    /// Serves connections until `stopping` is set (then one more connection wakes it up).
    pub fn run(self: Arc<Self>, listener: UnixListener) {
        for stream in listener.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            let server = Arc::clone(&self);
            std::thread::spawn(move || server.serve(stream));
        }
    }

    fn serve(&self, stream: UnixStream) {
        let mut line = String::new();
        let Ok(read) = stream.try_clone() else { return };
        if BufReader::new(read).read_line(&mut line).is_err() {
            return;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => self.handle(request),
            Err(e) => Reply::error(format!(
                "bad request ({e}): this lcfs and the daemon differ in version?"
            )),
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        let mut stream = stream;
        let _ = stream.write_all(&out);
    }

    pub fn handle(&self, request: Request) -> Reply {
        let fs = &self.shared.fs;
        match request {
            Request::Status => Reply::ok(json!({
                "pid": std::process::id(),
                "image": self.image,
                "mountpoint": self.mountpoint,
                "generation": fs.generation().0,
            })),
            Request::LayerCreate { name, parent } => self.create(&name, parent),
            Request::LayerCommit { name } => match fs.commit_layer(&name) {
                Ok(()) => Reply::ok(json!({ "path": self.layer_path(&name) })),
                Err(e) => layer_error("committing layer", &name, &e),
            },
            Request::LayerRemove { name } => self.remove(&name),
            Request::LayerList => self.list(),
            Request::LayerDiff { name } => self.diff(&name),
            Request::Stats => self.stats(),
            Request::Gc {
                dry_run,
                min_age_sec,
            } => self.gc(dry_run, min_age_sec),
            Request::Checkpoint => match fs.checkpoint() {
                Ok(generation) => Reply::ok(json!({ "generation": generation.0 })),
                Err(e) => Reply::error(format!("checkpoint failed: {e}")),
            },
            Request::Umount { lazy } => self.umount(lazy),
        }
    }

    fn create(&self, name: &str, parent: Option<String>) -> Reply {
        let parent_name = parent.clone().unwrap_or_default();
        match self.shared.fs.create_layer(name, parent.as_deref()) {
            Ok(id) => {
                self.shared.layers_changed(name);
                Reply::ok(json!({ "id": id.0, "path": self.layer_path(name) }))
            }
            Err(Error::NotFound) if parent.is_some() => Reply::error(format!(
                "creating layer {name:?} failed: no parent layer called {parent_name:?} \
                 (see `lcfs layer list`)"
            )),
            Err(Error::InvalidArgument(_)) if parent.is_some() => Reply::error(format!(
                "creating layer {name:?} failed: the parent {parent_name:?} is writable; \
                 commit it first with `lcfs layer commit`"
            )),
            Err(e) => layer_error("creating layer", name, &e),
        }
    }

    fn layer_path(&self, name: &str) -> PathBuf {
        self.mountpoint.join("layers").join(name)
    }

    /// The changes of layer `name` against its parent, as `docker diff` lists them: `kind` is
    /// `A`, `C` or `D`; a path that is not UTF-8 shows U+FFFD for its bad bytes.
    fn diff(&self, name: &str) -> Reply {
        let fs = &self.shared.fs;
        match fs.layer_id(name).and_then(|id| fs.changes(id)) {
            Ok(changes) => {
                let changes: Vec<serde_json::Value> = changes
                    .iter()
                    .map(|c| {
                        let path = String::from_utf8_lossy(&c.path);
                        json!({ "kind": c.kind.letter().to_string(), "path": path })
                    })
                    .collect();
                Reply::ok(json!({ "changes": changes }))
            }
            Err(e) => layer_error("diffing layer", name, &e),
        }
    }

    fn remove(&self, name: &str) -> Reply {
        let fs = &self.shared.fs;
        let id = match fs.layer_id(name) {
            Ok(id) => id,
            Err(e) => return layer_error("removing layer", name, &e),
        };
        match fs.remove_layer(name) {
            Ok(()) => {
                self.shared.layer_gone(id, name);
                Reply::ok(json!({}))
            }
            Err(e) => layer_error("removing layer", name, &e),
        }
    }

    fn list(&self) -> Reply {
        match self.shared.fs.layers() {
            Ok(layers) => Reply::ok(serde_json::Value::Array(
                layers
                    .into_iter()
                    .map(|l| {
                        json!({
                            "name": l.name,
                            "id": l.id.0,
                            "parent": l.parent,
                            "state": state_name(l.state),
                            "children": l.children,
                        })
                    })
                    .collect(),
            )),
            Err(e) => Reply::error(format!("listing layers failed: {e}")),
        }
    }

    fn stats(&self) -> Reply {
        let fs = &self.shared.fs;
        let layers = match fs.layers() {
            Ok(layers) => layers,
            Err(e) => return Reply::error(format!("stats failed: {e}")),
        };
        let counters = self.shared.slots().stats();
        let mut rows = Vec::new();
        for l in layers {
            let usage = fs.layer_usage(&l.name).unwrap_or_default();
            let view = fs.layer_view(&l.name).unwrap_or_default();
            let reads = counters.get(&l.id).map_or(0, |c| c.reads);
            rows.push(json!({
                "name": l.name,
                "id": l.id.0,
                "state": state_name(l.state),
                "parent": l.parent,
                "children": l.children,
                "size_bytes": view.bytes,
                "inodes": view.inodes,
                "private_bytes": usage.private_bytes(),
                "node_blocks": usage.node_blocks,
                "data_blocks": usage.data_blocks,
                "reads": reads,
            }));
        }
        let s = fs.statfs();
        let (nodes, data) = fs
            .cache_stats()
            .map(|(n, d)| (format!("{n:?}"), format!("{d:?}")))
            .unwrap_or_default();
        Reply::ok(json!({
            "layers": rows,
            "block_size": s.block_size,
            "blocks_total": s.blocks_total,
            "blocks_free": s.blocks_free,
            "inodes": s.files,
            "generation": fs.generation().0,
            "node_cache": nodes,
            "data_cache": data,
        }))
    }

    /// Removes (or with `dry_run` lists) the orphaned layers, then sweeps unlinked-open
    /// leftovers; the kernel is told of every layer that went.
    fn gc(&self, dry_run: bool, min_age_sec: Option<u64>) -> Reply {
        let mut opts = GcOptions {
            dry_run,
            now: Timespec::now(),
            ..GcOptions::default()
        };
        if let Some(age) = min_age_sec {
            opts.temporary_age_min_sec = i64::try_from(age).unwrap_or(i64::MAX);
        }
        match self.shared.fs.gc_layers(&opts) {
            Ok(report) => {
                if !dry_run {
                    for layer in &report.layers {
                        self.shared.layer_gone(layer.id, &layer.name);
                    }
                }
                let layers: Vec<serde_json::Value> = report
                    .layers
                    .iter()
                    .map(|l| json!({ "name": l.name, "id": l.id.0, "reason": l.reason }))
                    .collect();
                Reply::ok(json!({
                    "dry_run": dry_run,
                    "layers": layers,
                    "writable_layers_swept": report.layers_swept,
                }))
            }
            Err(e) => Reply::error(format!(
                "gc failed: {e}; the layers removed before the failure are gone, the rest \
                 are untouched (see `lcfs layer list`, and `lcfs gc --dry-run` for what is left)"
            )),
        }
    }

    fn umount(&self, lazy: bool) -> Reply {
        if let Err(e) = self.shared.fs.checkpoint() {
            return Reply::error(format!(
                "the checkpoint before unmount failed: {e}; nothing was unmounted"
            ));
        }
        match sys::unmount(&self.mountpoint, lazy) {
            Ok(()) => Reply::ok(json!({ "pid": std::process::id() })),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Reply::error(format!(
                "{} is busy: a process has a file or directory open under it (find it with \
                 `fuser -vm {}`); close it, or detach now with `lcfs umount --lazy`",
                self.mountpoint.display(),
                self.mountpoint.display()
            )),
            Err(e) => Reply::error(format!(
                "unmounting {} failed: {e}",
                self.mountpoint.display()
            )),
        }
    }
}
