//! The graph-driver calls, each mapped to the engine (DESIGN.md §8; RUNTIMES.md, "What the
//! graph-driver plugin sees"). Docker's layer ids are layer names; a layer's directory is
//! `MOUNTPOINT/layers/ID`.
//!
//! Invariants:
//! - the engine is held for one call at a time (`Weak::upgrade`), never between calls, so the
//!   daemon's last checkpoint waits for no idle connection;
//! - a layer gets children only once it is committed: creating a layer on a writable parent
//!   commits the parent first (Docker fills `<id>-init`, then creates the container layer on
//!   it; it fills an image layer with ApplyDiff, then creates the next one on it);
//! - a layer created or removed here is announced to the kernel (`Shared::layers_changed`),
//!   and a removed layer's slot goes stale (`Shared::layer_gone`) before the reply, as the
//!   control server does;
//! - Diff, Changes, DiffSize and ApplyDiff work against the layer's own parent only: another
//!   parent is an error that says so, never a wrong answer;
//! - a layer written through the engine (ApplyDiff) has its kernel entries dropped, so the
//!   mount shows the new content at once rather than after the entry TTL.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use fuser::INodeNo;
use lcfs::{Attr, ChangeKind, Error, FileType, Fs, Ino, LayerId, LayerInfo, LayerState};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{Body, Request};
use crate::mount::shared::Shared;
use crate::nodes::LAYERS_NODE;

/// The largest JSON request body (Docker's are a few hundred bytes).
const ARGS_BYTES_MAX: usize = 1 << 20;

/// Every call this driver serves, for the error of an unknown one.
const CALLS: &str = "Plugin.Activate, GraphDriver.Init, .Create, .CreateReadWrite, .Remove, \
                     .Get, .Put, .Exists, .Status, .GetMetadata, .Cleanup, .Diff, .Changes, \
                     .ApplyDiff, .DiffSize, .Capabilities";

/// A call that failed: the HTTP status and the `Err` message of its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Self {
        Failure {
            status: 400,
            message: message.into(),
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        Failure {
            status: 500,
            message: message.into(),
        }
    }
}

/// What a call answers.
pub enum Reply {
    Json(Value),
    Failed(Failure),
    /// The tar of what `layer` (named `name`) changed against its parent, streamed by the
    /// server as the reply body (Diff).
    Diff {
        shared: Arc<Shared>,
        layer: LayerId,
        name: String,
    },
}

impl From<Result<Value, Failure>> for Reply {
    fn from(result: Result<Value, Failure>) -> Self {
        match result {
            Ok(value) => Reply::Json(value),
            Err(failure) => Reply::Failed(failure),
        }
    }
}

/// The arguments of the calls that name a layer (Docker's `graphDriverRequest`; empty fields
/// are left out by dockerd).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LayerArgs {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "Parent")]
    parent: Option<String>,
    #[serde(rename = "StorageOpt")]
    storage_opt: Option<BTreeMap<String, String>>,
}

/// The arguments of Init. The id maps are only checked to be empty, whatever their shape.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitArgs {
    #[serde(rename = "Opts")]
    opts: Option<Vec<String>>,
    #[serde(rename = "UIDMaps")]
    uid_maps: Option<Vec<Value>>,
    #[serde(rename = "GIDMaps")]
    gid_maps: Option<Vec<Value>>,
}

/// A layer named by a call, with the parent the call names (`None` for none or empty).
struct Target {
    id: String,
    parent: Option<String>,
}

impl LayerArgs {
    fn target(self, call: &str) -> Result<Target, Failure> {
        let id = self.id.filter(|id| !id.is_empty()).ok_or_else(|| {
            Failure::bad_request(format!("{call} needs a layer id: {{\"ID\": \"…\"}}"))
        })?;
        Ok(Target {
            id,
            parent: self.parent.filter(|p| !p.is_empty()),
        })
    }
}

/// Explains an engine error of an operation on layer `name`.
fn layer_failure(what: &str, name: &str, e: &Error) -> Failure {
    let why = match e {
        Error::NotFound => format!("no layer called {name:?}"),
        Error::Exists => format!("a layer called {name:?} exists already"),
        Error::NameTooLong => "layer ids are at most 255 bytes".to_string(),
        other => other.to_string(),
    };
    Failure::failed(format!("{what} {name:?} failed: {why}"))
}

/// How a parent shows in messages.
fn describe_parent(parent: Option<&str>) -> String {
    match parent {
        Some(p) => format!("parent {p:?}"),
        None => "no parent".to_string(),
    }
}

/// Bytes for people: `1.5 GiB`.
fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units.get(unit).unwrap_or(&"B"))
}

/// The inode at `path` (absolute, as `Fs::changes` gives it) in `layer`; never follows a
/// symlink (lstat).
fn resolve(fs: &Fs, layer: LayerId, path: &[u8]) -> lcfs::Result<Attr> {
    let mut attr = fs.getattr(layer, Ino::ROOT)?;
    for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        attr = fs.lookup(layer, attr.ino, name)?;
    }
    Ok(attr)
}

/// Reads a JSON request body (bounded).
fn read_body<R: BufRead>(body: &mut Body<R>, call: &str) -> Result<Vec<u8>, Failure> {
    body.read_all(ARGS_BYTES_MAX)
        .map_err(|e| Failure::bad_request(format!("reading the body of {call} failed: {e}")))
}

/// The JSON arguments of `call`; an empty body is an error (dockerd sends one when it retries
/// a call whose connection dropped).
fn parse_args<T: DeserializeOwned>(bytes: &[u8], call: &str) -> Result<T, Failure> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::bad_request(format!(
            "{call} got an empty body; it takes a JSON object (dockerd sends an empty body when \
             it retries a call whose connection dropped)"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Failure::bad_request(format!("{call}: malformed JSON arguments: {e}")))
}

/// The body of a call without arguments: empty, or any JSON document (dockerd sends `{}`).
fn check_no_args(bytes: &[u8], call: &str) -> Result<(), Failure> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    serde_json::from_slice::<Value>(bytes)
        .map(|_| ())
        .map_err(|e| Failure::bad_request(format!("{call}: malformed JSON body: {e}")))
}

/// The graph driver of one mount.
pub struct Driver {
    shared: Weak<Shared>,
    mountpoint: PathBuf,
}

impl Driver {
    pub fn new(shared: Weak<Shared>, mountpoint: PathBuf) -> Self {
        Driver { shared, mountpoint }
    }

    /// The engine, for one call.
    fn engine(&self) -> Result<Arc<Shared>, Failure> {
        self.shared.upgrade().ok_or_else(|| Failure {
            status: 503,
            message: format!(
                "the lcfs daemon of {} is unmounting: no layer operation is possible now",
                self.mountpoint.display()
            ),
        })
    }

    fn layer_path(&self, name: &str) -> PathBuf {
        self.mountpoint.join("layers").join(name)
    }

    /// Answers one request; its body is read here as far as the call needs.
    pub fn handle<R: BufRead>(&self, request: &Request, body: &mut Body<R>) -> Reply {
        let call = request.path.trim_start_matches('/');
        if request.method != "POST" {
            return Reply::Failed(Failure {
                status: 405,
                message: format!(
                    "{} {}: the plugin API takes POST only",
                    request.method, request.path
                ),
            });
        }
        match call {
            "GraphDriver.ApplyDiff" => self.apply_diff(request, body).into(),
            "GraphDriver.Diff" => match self.diff(body) {
                Ok(reply) => reply,
                Err(failure) => Reply::Failed(failure),
            },
            _ => self.json_call(call, body).into(),
        }
    }

    /// The calls whose arguments and reply are JSON.
    fn json_call<R: BufRead>(&self, call: &str, body: &mut Body<R>) -> Result<Value, Failure> {
        let bytes = read_body(body, call)?;
        let target = |bytes: &[u8]| parse_args::<LayerArgs>(bytes, call)?.target(call);
        match call {
            "Plugin.Activate" => {
                check_no_args(&bytes, call)?;
                Ok(json!({ "Implements": ["GraphDriver"] }))
            }
            "GraphDriver.Init" => self.init(parse_args(&bytes, call)?),
            "GraphDriver.Create" | "GraphDriver.CreateReadWrite" => {
                self.create(parse_args(&bytes, call)?, call)
            }
            "GraphDriver.Remove" => self.remove(&target(&bytes)?.id),
            "GraphDriver.Get" => self.get(&target(&bytes)?.id),
            "GraphDriver.Put" => self.put(&target(&bytes)?.id),
            "GraphDriver.Exists" => self.exists(&target(&bytes)?.id),
            "GraphDriver.GetMetadata" => self.metadata(&target(&bytes)?.id),
            "GraphDriver.Changes" => self.changes(&target(&bytes)?),
            "GraphDriver.DiffSize" => self.diff_size(&target(&bytes)?),
            "GraphDriver.Status" => {
                check_no_args(&bytes, call)?;
                self.status()
            }
            "GraphDriver.Cleanup" => {
                check_no_args(&bytes, call)?;
                self.cleanup()
            }
            "GraphDriver.Capabilities" => {
                check_no_args(&bytes, call)?;
                // Diff does not rebuild the tar ApplyDiff got byte for byte: dockerd keeps
                // the tar-split metadata of image layers itself.
                Ok(json!({ "Capabilities": { "ReproducesExactDiffs": false } }))
            }
            _ => Err(Failure {
                status: 404,
                message: format!("unknown call /{call}: lcfs serves {CALLS}"),
            }),
        }
    }

    /// Init: lcfs takes no storage options and does not remap owners (no `--userns-remap`).
    fn init(&self, args: InitArgs) -> Result<Value, Failure> {
        if let Some(opts) = args.opts.filter(|o| !o.is_empty()) {
            return Err(Failure::bad_request(format!(
                "lcfs takes no storage options (got {opts:?}): remove them from dockerd's \
                 --storage-opt"
            )));
        }
        let maps =
            args.uid_maps.unwrap_or_default().len() + args.gid_maps.unwrap_or_default().len();
        if maps > 0 {
            return Err(Failure::bad_request(
                "lcfs does not remap user ids: run dockerd without --userns-remap",
            ));
        }
        self.engine()?;
        Ok(json!({}))
    }

    /// Create and CreateReadWrite: a writable layer, empty or a clone of its parent, which is
    /// committed first if it is still writable.
    fn create(&self, args: LayerArgs, call: &str) -> Result<Value, Failure> {
        if let Some(opts) = args.storage_opt.as_ref().filter(|o| !o.is_empty()) {
            let keys: Vec<&String> = opts.keys().collect();
            return Err(Failure::bad_request(format!(
                "lcfs takes no storage options (got {keys:?}): remove --storage-opt"
            )));
        }
        let target = args.target(call)?;
        let shared = self.engine()?;
        let fs = &shared.fs;
        // An existing id is refused before the parent is committed for nothing.
        if fs.layer_id(&target.id).is_ok() {
            return Err(layer_failure("creating layer", &target.id, &Error::Exists));
        }
        if let Some(parent) = &target.parent {
            commit_for_child(fs, parent, &target.id)?;
        }
        match fs.create_layer(&target.id, target.parent.as_deref()) {
            Ok(_) => {
                shared.layers_changed(&target.id);
                Ok(json!({}))
            }
            Err(e) => Err(layer_failure("creating layer", &target.id, &e)),
        }
    }

    /// Remove: a layer without children. A layer that does not exist is removed already
    /// (dockerd retries, and cleans up after failed creations).
    fn remove(&self, id: &str) -> Result<Value, Failure> {
        let shared = self.engine()?;
        let fs = &shared.fs;
        let info = match fs.layer(id) {
            Ok(info) => info,
            Err(Error::NotFound) => return Ok(json!({})),
            Err(e) => return Err(layer_failure("removing layer", id, &e)),
        };
        if info.children > 0 {
            return Err(Failure::failed(format!(
                "removing layer {id:?} failed: it has {} child layer(s); remove them first",
                info.children
            )));
        }
        match fs.remove_layer(id) {
            Ok(()) => {
                shared.layer_gone(info.id, id);
                Ok(json!({}))
            }
            Err(Error::NotFound) => Ok(json!({})),
            Err(e) => Err(layer_failure("removing layer", id, &e)),
        }
    }

    fn get(&self, id: &str) -> Result<Value, Failure> {
        let shared = self.engine()?;
        shared
            .fs
            .layer_id(id)
            .map_err(|e| layer_failure("getting layer", id, &e))?;
        Ok(json!({ "Dir": self.layer_path(id) }))
    }

    /// Put: nothing to release (a layer's directory is always there); the layer must exist.
    fn put(&self, id: &str) -> Result<Value, Failure> {
        let shared = self.engine()?;
        shared
            .fs
            .layer_id(id)
            .map_err(|e| layer_failure("putting layer", id, &e))?;
        Ok(json!({}))
    }

    fn exists(&self, id: &str) -> Result<Value, Failure> {
        let shared = self.engine()?;
        match shared.fs.layer_id(id) {
            Ok(_) => Ok(json!({ "Exists": true })),
            Err(Error::NotFound) => Ok(json!({ "Exists": false })),
            Err(e) => Err(layer_failure("looking up layer", id, &e)),
        }
    }

    fn metadata(&self, id: &str) -> Result<Value, Failure> {
        let shared = self.engine()?;
        let info = shared
            .fs
            .layer(id)
            .map_err(|e| layer_failure("reading layer", id, &e))?;
        let state = match info.state {
            LayerState::Committed => "committed",
            LayerState::Writable => "writable",
        };
        let mut metadata = json!({
            "Dir": self.layer_path(id),
            "LayerID": info.id.0.to_string(),
            "State": state,
        });
        if let (Some(parent), Some(map)) = (info.parent, metadata.as_object_mut()) {
            map.insert("Parent".to_string(), Value::String(parent));
        }
        Ok(json!({ "Metadata": metadata }))
    }

    /// Status: what `docker info` shows under the storage driver.
    fn status(&self) -> Result<Value, Failure> {
        let shared = self.engine()?;
        let fs = &shared.fs;
        let layers = fs
            .layers()
            .map_err(|e| Failure::failed(format!("listing layers failed: {e}")))?;
        let committed = layers
            .iter()
            .filter(|l| l.state == LayerState::Committed)
            .count();
        let s = fs.statfs();
        let block = u64::from(s.block_size);
        let used = s.blocks_total.saturating_sub(s.blocks_free) * block;
        let pairs = [
            ("Backing Filesystem", "lcfs".to_string()),
            ("Mount Point", self.mountpoint.display().to_string()),
            ("Layers", layers.len().to_string()),
            ("Committed Layers", committed.to_string()),
            ("Writable Layers", (layers.len() - committed).to_string()),
            (
                "Space Used",
                format!(
                    "{} of {}",
                    human_bytes(used),
                    human_bytes(s.blocks_total * block)
                ),
            ),
            ("Inodes", s.files.to_string()),
            ("Checkpoint Generation", fs.generation().0.to_string()),
        ];
        let status: Vec<[String; 2]> = pairs.into_iter().map(|(k, v)| [k.to_string(), v]).collect();
        Ok(json!({ "Status": status }))
    }

    /// Cleanup (dockerd is stopping): a checkpoint, so everything so far is durable.
    fn cleanup(&self) -> Result<Value, Failure> {
        let shared = self.engine()?;
        shared
            .fs
            .checkpoint()
            .map_err(|e| Failure::failed(format!("the checkpoint at Cleanup failed: {e}")))?;
        Ok(json!({}))
    }

    /// The layer a diff call names, checked against the parent the call names.
    fn diff_target(
        &self,
        target: &Target,
        call: &str,
    ) -> Result<(Arc<Shared>, LayerInfo), Failure> {
        let shared = self.engine()?;
        let info = shared
            .fs
            .layer(&target.id)
            .map_err(|e| layer_failure(call, &target.id, &e))?;
        if info.parent != target.parent {
            return Err(Failure::bad_request(format!(
                "{call} of layer {:?} against {} is not possible: lcfs compares a layer with its \
                 own parent only, and it has {}",
                target.id,
                describe_parent(target.parent.as_deref()),
                describe_parent(info.parent.as_deref())
            )));
        }
        Ok((shared, info))
    }

    /// Changes: `{"Path": "/x", "Kind": 0|1|2}` (modify, add, delete); a path that is not
    /// UTF-8 shows U+FFFD for its bad bytes (JSON strings are Unicode).
    fn changes(&self, target: &Target) -> Result<Value, Failure> {
        let (shared, info) = self.diff_target(target, "Changes")?;
        let changes = shared
            .fs
            .changes(info.id)
            .map_err(|e| layer_failure("diffing layer", &target.id, &e))?;
        let changes: Vec<Value> = changes
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    ChangeKind::Modified => 0,
                    ChangeKind::Added => 1,
                    ChangeKind::Deleted => 2,
                };
                json!({ "Path": String::from_utf8_lossy(&c.path), "Kind": kind })
            })
            .collect();
        Ok(json!({ "Changes": changes }))
    }

    /// DiffSize, as Docker's `archive.ChangesSize` counts it: the sizes of the added and
    /// modified paths that are not directories, each hard-linked inode once.
    fn diff_size(&self, target: &Target) -> Result<Value, Failure> {
        let (shared, info) = self.diff_target(target, "DiffSize")?;
        let fs = &shared.fs;
        let failure = |e: Error| layer_failure("sizing the diff of layer", &target.id, &e);
        let changes = fs.changes(info.id).map_err(failure)?;
        let mut linked: HashSet<Ino> = HashSet::new();
        let mut size = 0u64;
        for change in changes.iter().filter(|c| c.kind != ChangeKind::Deleted) {
            let attr = match resolve(fs, info.id, &change.path) {
                Ok(attr) => attr,
                // Removed since the diff was taken (a writable layer in use): as Docker does.
                Err(Error::NotFound) => continue,
                Err(e) => return Err(failure(e)),
            };
            if attr.kind == FileType::Directory || (attr.nlink > 1 && !linked.insert(attr.ino)) {
                continue;
            }
            size += attr.size;
        }
        Ok(json!({ "Size": size }))
    }

    /// Diff: checked here, streamed by the server.
    fn diff<R: BufRead>(&self, body: &mut Body<R>) -> Result<Reply, Failure> {
        let call = "GraphDriver.Diff";
        let bytes = read_body(body, call)?;
        let target = parse_args::<LayerArgs>(&bytes, call)?.target(call)?;
        let (shared, info) = self.diff_target(&target, "Diff")?;
        Ok(Reply::Diff {
            shared,
            layer: info.id,
            name: target.id,
        })
    }

    /// ApplyDiff `?id=ID&parent=P`: the body is a layer tar, applied into the writable layer
    /// as it arrives.
    fn apply_diff<R: BufRead>(
        &self,
        request: &Request,
        body: &mut Body<R>,
    ) -> Result<Value, Failure> {
        let id = request
            .query_value("id")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                Failure::bad_request("GraphDriver.ApplyDiff needs a layer: ?id=ID&parent=PARENT")
            })?
            .to_string();
        let parent = request
            .query_value("parent")
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let (shared, info) = self.diff_target(
            &Target {
                id: id.clone(),
                parent,
            },
            "ApplyDiff",
        )?;
        if info.state == LayerState::Committed {
            return Err(Failure::failed(format!(
                "applying a diff to layer {id:?} failed: the layer is committed (a layer was \
                 created on it), so it cannot change"
            )));
        }
        let applied = lcfs::tar::apply_diff(&shared.fs, info.id, &mut *body);
        forget_cached(&shared, &id);
        match applied {
            Ok(bytes) => Ok(json!({ "Size": bytes })),
            Err(e) => Err(Failure::failed(format!(
                "applying a diff to layer {id:?} failed: {e}; the entries before it were \
                 applied: remove the layer"
            ))),
        }
    }
}

/// Commits `parent` so that `child` can be created on it (DESIGN.md §8); a committed parent
/// is left alone.
fn commit_for_child(fs: &Fs, parent: &str, child: &str) -> Result<(), Failure> {
    let is_committed = |fs: &Fs| {
        fs.layer(parent)
            .map(|info| info.state == LayerState::Committed)
    };
    match is_committed(fs) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(Error::NotFound) => {
            return Err(Failure::failed(format!(
                "creating layer {child:?} failed: no parent layer called {parent:?}"
            )))
        }
        Err(e) => return Err(layer_failure("reading layer", parent, &e)),
    }
    match fs.commit_layer(parent) {
        Ok(()) => Ok(()),
        // Another call committed it in between.
        Err(_) if matches!(is_committed(fs), Ok(true)) => Ok(()),
        Err(e) => Err(Failure::failed(format!(
            "committing layer {parent:?}, so that {child:?} can be created on it, failed: {e}"
        ))),
    }
}

/// The kernel forgets its entry for layer `name` and every name cached below it, so content
/// written through the engine shows at once. (The kernel's `d_invalidate` also detaches what
/// is mounted there; an ApplyDiff target is a layer dockerd has just created, never a
/// container's root.)
fn forget_cached(shared: &Shared, name: &str) {
    if let Some(notifier) = shared.notifier.get() {
        // ENOENT when the kernel never looked the layer up: nothing to forget.
        let _ = notifier.inval_entry(INodeNo(LAYERS_NODE), OsStr::new(name));
    }
}
