//! The snapshot operations on the engine, one function per RPC, synchronous (the service runs
//! them on blocking threads). Snapshot `key` is layer `keys::name(key)`; its kind, times and
//! labels are the layer's metadata items (`meta.rs`).
//!
//! Invariants:
//! - a request that fails changes nothing: keys, parents, labels and kinds are checked before
//!   the engine is asked, and each change is one engine call (`create_layer_with_meta`,
//!   `commit_layer_as`, `remove_layer`), so a crash keeps all of it or none. Update is the
//!   exception: it sets its items one by one, then checkpoints, so an engine failure part-way
//!   (an I/O error) or a crash before the checkpoint can leave some of its labels changed;
//! - a layer created, renamed or removed here is announced to the kernel
//!   (`Shared::layers_changed`, for each name), and a removed layer's slot goes stale
//!   (`Shared::layer_gone`) before the reply, as the control server does;
//! - the errors are the codes containerd expects: NotFound, AlreadyExists, FailedPrecondition
//!   (removing a parent, committing what is not active), InvalidArgument (bad keys, labels or
//!   field paths, a parent that is not committed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use containerd_snapshots::api::types::Mount;
use containerd_snapshots::tonic::{Code, Status};
use containerd_snapshots::{Info, Kind, Usage};
use lcfs::{Error, LayerInfo};

use super::filter::{Fields, Filters};
use super::keys;
use super::meta::{self, Item, Stored};
use crate::mount::shared::Shared;

/// Why a request failed: a gRPC code and a message (a `Status` is too large to pass around).
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

macro_rules! failures {
    ($($name:ident => $code:ident),* $(,)?) => {
        impl Failure {
            $(pub fn $name(message: impl Into<String>) -> Failure {
                Failure { code: Code::$code, message: message.into() }
            })*
        }
    };
}

failures! {
    not_found => NotFound,
    already_exists => AlreadyExists,
    invalid_argument => InvalidArgument,
    failed_precondition => FailedPrecondition,
    resource_exhausted => ResourceExhausted,
    unavailable => Unavailable,
    internal => Internal,
    not_implemented => Unimplemented,
}

impl From<Failure> for Status {
    fn from(f: Failure) -> Status {
        Status::new(f.code, f.message)
    }
}

/// A change of one metadata item: its key, and its new value or `None` to remove it.
type ItemChange = (Vec<u8>, Option<Vec<u8>>);

/// The operations of one snapshotter on one mount.
pub struct Ops<'a> {
    pub shared: &'a Shared,
    /// `MOUNTPOINT/layers`.
    pub layers_dir: &'a Path,
}

/// The layer name of `key`, or InvalidArgument saying why there is none.
fn layer_name(key: &str) -> Result<String, Failure> {
    keys::name(key)
        .map_err(|why| Failure::invalid_argument(format!("bad snapshot key {key:?}: {why}")))
}

fn check_labels(labels: &HashMap<String, String>) -> Result<(), Failure> {
    meta::check_labels(labels).map_err(Failure::invalid_argument)
}

/// An engine error of `what` (e.g. "removing") on snapshot `key`, as containerd's code.
fn engine_error(what: &str, key: &str, e: &Error) -> Failure {
    let message = format!("{what} snapshot {key:?} failed: {e}");
    match e {
        Error::NotFound => Failure::not_found(format!("snapshot {key:?} does not exist")),
        Error::Exists => Failure::already_exists(format!("snapshot {key:?} already exists")),
        Error::InvalidArgument(_) | Error::NameTooLong => Failure::invalid_argument(message),
        Error::Busy(_) | Error::ReadOnly => Failure::failed_precondition(message),
        Error::NoSpace => Failure::resource_exhausted(message),
        _ => {
            eprintln!("lcfs snapshotter: {message}");
            Failure::internal(message)
        }
    }
}

/// `items` as the engine takes them.
fn borrowed(items: &[Item]) -> Vec<(&[u8], &[u8])> {
    items
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect()
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::View => "view",
        Kind::Active => "active",
        Kind::Committed => "committed",
        Kind::Unknown => "unknown",
    }
}

impl Ops<'_> {
    fn layer(&self, key: &str, name: &str) -> Result<LayerInfo, Failure> {
        self.shared
            .fs
            .layer(name)
            .map_err(|e| engine_error("reading", key, &e))
    }

    fn stored(&self, key: &str, name: &str) -> Result<Stored, Failure> {
        let items = self
            .shared
            .fs
            .layer_meta(name)
            .map_err(|e| engine_error("reading", key, &e))?;
        Ok(Stored::decode(&items))
    }

    /// The snapshot `key` names: its layer and what is stored with it.
    fn snapshot(&self, key: &str) -> Result<(LayerInfo, Stored), Failure> {
        let name = layer_name(key)?;
        let layer = self.layer(key, &name)?;
        let stored = self.stored(key, &name)?;
        Ok((layer, stored))
    }

    /// What containerd sees of a snapshot: its parent as a key (a parent no key maps to is
    /// shown by its layer name).
    fn info(key: String, layer: &LayerInfo, stored: Stored) -> Info {
        let parent = layer
            .parent
            .as_deref()
            .map(|p| keys::key(p).unwrap_or_else(|| p.to_string()))
            .unwrap_or_default();
        Info {
            kind: stored.kind(layer.state),
            name: key,
            parent,
            created_at: stored.created(),
            updated_at: stored.updated(),
            labels: stored.labels,
        }
    }

    /// The bind mount of layer `name`, read-only unless the snapshot is active.
    fn mount(&self, name: &str, kind: &Kind) -> Vec<Mount> {
        let access = if *kind == Kind::Active { "rw" } else { "ro" };
        let source: PathBuf = self.layers_dir.join(name);
        vec![Mount {
            r#type: "bind".to_string(),
            source: source.to_string_lossy().into_owned(),
            target: String::new(),
            options: vec!["rbind".to_string(), access.to_string()],
        }]
    }

    /// Prepare (`view` false) or View: a new layer, a clone of the committed `parent`.
    pub fn create(
        &self,
        key: &str,
        parent: &str,
        labels: &HashMap<String, String>,
        view: bool,
    ) -> Result<Vec<Mount>, Failure> {
        let name = layer_name(key)?;
        check_labels(labels)?;
        let parent_name = match parent {
            "" => None,
            parent => Some(self.committed_parent(parent)?),
        };
        let items = meta::new_items(view, SystemTime::now(), labels);
        self.shared
            .fs
            .create_layer_with_meta(&name, parent_name.as_deref(), &borrowed(&items))
            .map_err(|e| match e {
                // The parent went between the check and the clone (`lcfs layer remove`).
                Error::NotFound => {
                    Failure::not_found(format!("parent snapshot {parent:?} does not exist"))
                }
                e => engine_error("creating", key, &e),
            })?;
        self.shared.layers_changed(&name);
        let kind = if view { Kind::View } else { Kind::Active };
        Ok(self.mount(&name, &kind))
    }

    /// The layer name of `parent`, which must be a committed snapshot.
    fn committed_parent(&self, parent: &str) -> Result<String, Failure> {
        let name = keys::name(parent).map_err(|why| {
            Failure::invalid_argument(format!("bad parent key {parent:?}: {why}"))
        })?;
        let (layer, stored) = match self.shared.fs.layer(&name) {
            Ok(layer) => (layer, self.stored(parent, &name)?),
            Err(Error::NotFound) => {
                return Err(Failure::not_found(format!(
                    "parent snapshot {parent:?} does not exist"
                )))
            }
            Err(e) => return Err(engine_error("reading parent", parent, &e)),
        };
        let kind = stored.kind(layer.state);
        if kind != Kind::Committed {
            return Err(Failure::invalid_argument(format!(
                "parent snapshot {parent:?} is {}, not committed: commit it first",
                kind_name(&kind)
            )));
        }
        Ok(name)
    }

    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, Failure> {
        let (layer, stored) = self.snapshot(key)?;
        Ok(self.mount(&layer.name, &stored.kind(layer.state)))
    }

    /// Commits active snapshot `key` as `name`: one engine call commits, renames, and
    /// replaces the stored items (the labels are the ones given; both times are now).
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), Failure> {
        let new_name = layer_name(name)?;
        check_labels(labels)?;
        let (layer, stored) = self.snapshot(key)?;
        let kind = stored.kind(layer.state);
        if kind != Kind::Active {
            return Err(Failure::failed_precondition(format!(
                "snapshot {key:?} is {}, not active: only an active snapshot can be committed",
                kind_name(&kind)
            )));
        }
        if self.shared.fs.layer_id(&new_name).is_ok() {
            return Err(Failure::already_exists(format!(
                "snapshot {name:?} already exists"
            )));
        }
        let items = self.commit_items(key, &layer.name, labels)?;
        let changes: Vec<(&[u8], Option<&[u8]>)> = items
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        self.shared
            .fs
            .commit_layer_as(&layer.name, Some(&new_name), &changes)
            .map_err(|e| match e {
                Error::Exists => {
                    Failure::already_exists(format!("snapshot {name:?} already exists"))
                }
                e => engine_error("committing", key, &e),
            })?;
        self.shared.layers_changed(&layer.name);
        self.shared.layers_changed(&new_name);
        Ok(())
    }

    /// The item changes of a commit: every stored kind mark and label goes (`None`), then
    /// the new times and labels are set.
    fn commit_items(
        &self,
        key: &str,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<Vec<ItemChange>, Failure> {
        let old = self
            .shared
            .fs
            .layer_meta(name)
            .map_err(|e| engine_error("reading", key, &e))?;
        let mut changes: Vec<ItemChange> = old
            .into_iter()
            .filter(|(k, _)| k == meta::KIND || k.starts_with(meta::LABEL_PREFIX))
            .map(|(k, _)| (k, None))
            .collect();
        let items = meta::new_items(false, SystemTime::now(), labels);
        changes.extend(items.into_iter().map(|(k, v)| (k, Some(v))));
        Ok(changes)
    }

    pub fn remove(&self, key: &str) -> Result<(), Failure> {
        let (layer, _) = self.snapshot(key)?;
        if layer.children > 0 {
            return Err(Failure::failed_precondition(format!(
                "snapshot {key:?} has {} child snapshot(s): remove them first",
                layer.children
            )));
        }
        self.shared
            .fs
            .remove_layer(&layer.name)
            .map_err(|e| engine_error("removing", key, &e))?;
        self.shared.layer_gone(layer.id, &layer.name);
        Ok(())
    }

    pub fn stat(&self, key: &str) -> Result<Info, Failure> {
        let (layer, stored) = self.snapshot(key)?;
        Ok(Self::info(key.to_string(), &layer, stored))
    }

    /// Update: only labels change, as containerd's metadata store does it. No field paths:
    /// the labels become `info.labels`; `labels`: the same; `labels.K`: label K becomes
    /// `info.labels[K]`, and goes when that is absent or empty. `updated` becomes now. The
    /// change is made durable (a checkpoint) before the reply.
    pub fn update(&self, info: Info, paths: Option<Vec<String>>) -> Result<Info, Failure> {
        let key = info.name.clone();
        let (layer, stored) = self.snapshot(&key)?;
        let labels = updated_labels(&key, &stored.labels, info.labels, paths)?;
        check_labels(&labels)?;
        let fs = &self.shared.fs;
        let set = |item: &[u8], value: Option<&[u8]>| {
            fs.set_layer_meta(&layer.name, item, value)
                .map_err(|e| engine_error("updating", &key, &e))
        };
        for old in stored.labels.keys().filter(|k| !labels.contains_key(*k)) {
            set(&meta::label_key(old), None)?;
        }
        for (k, v) in labels
            .iter()
            .filter(|(k, v)| stored.labels.get(*k) != Some(v))
        {
            set(&meta::label_key(k), Some(v.as_bytes()))?;
        }
        set(meta::UPDATED, Some(&meta::time_value(SystemTime::now())))?;
        fs.checkpoint()
            .map_err(|e| engine_error("updating", &key, &e))?;
        self.stat(&key)
    }

    /// Usage: the bytes only this layer holds, and the inodes it added to its parent's.
    pub fn usage(&self, key: &str) -> Result<Usage, Failure> {
        let (layer, _) = self.snapshot(key)?;
        let fs = &self.shared.fs;
        let private = fs
            .layer_usage(&layer.name)
            .map_err(|e| engine_error("measuring", key, &e))?;
        let inodes = fs
            .layer_view(&layer.name)
            .map_err(|e| engine_error("measuring", key, &e))?
            .inodes;
        let parent_inodes = match &layer.parent {
            Some(parent) => {
                fs.layer_view(parent)
                    .map_err(|e| engine_error("measuring the parent of", key, &e))?
                    .inodes
            }
            None => 0,
        };
        Ok(Usage {
            size: i64::try_from(private.private_bytes()).unwrap_or(i64::MAX),
            inodes: i64::try_from(inodes.saturating_sub(parent_inodes)).unwrap_or(i64::MAX),
        })
    }

    /// Every snapshot that matches `filters` (layers no key maps to are not snapshots).
    pub fn list(&self, filters: &[String]) -> Result<Vec<Info>, Failure> {
        let filters = Filters::parse(filters)
            .map_err(|why| Failure::invalid_argument(format!("bad filter: {why}")))?;
        let layers = self
            .shared
            .fs
            .layers()
            .map_err(|e| Failure::internal(format!("listing layers failed: {e}")))?;
        let mut out = Vec::new();
        for layer in layers {
            let Some(key) = keys::key(&layer.name) else {
                continue;
            };
            let stored = match self.stored(&key, &layer.name) {
                Ok(stored) => stored,
                // Removed since `layers()` (by the CLI): not there any more.
                Err(failure) if failure.code == Code::NotFound => continue,
                Err(failure) => return Err(failure),
            };
            let info = Self::info(key, &layer, stored);
            let fields = Fields {
                kind: kind_name(&info.kind),
                name: &info.name,
                parent: &info.parent,
                labels: &info.labels,
            };
            if filters.matches(&fields) {
                out.push(info);
            }
        }
        Ok(out)
    }
}

/// The labels after an Update (`Ops::update`); InvalidArgument for a field that is not a
/// label.
fn updated_labels(
    key: &str,
    current: &HashMap<String, String>,
    mut given: HashMap<String, String>,
    paths: Option<Vec<String>>,
) -> Result<HashMap<String, String>, Failure> {
    let paths = paths.unwrap_or_default();
    if paths.is_empty() {
        given.retain(|_, v| !v.is_empty());
        return Ok(given);
    }
    let mut labels = current.clone();
    for path in paths {
        if path == "labels" {
            labels = std::mem::take(&mut given);
        } else if let Some(label) = path.strip_prefix("labels.") {
            match given.get(label) {
                Some(value) => labels.insert(label.to_string(), value.clone()),
                None => labels.remove(label),
            };
        } else {
            return Err(Failure::invalid_argument(format!(
                "cannot update field {path:?} of snapshot {key:?}: only labels can change"
            )));
        }
    }
    labels.retain(|_, v| !v.is_empty());
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn paths(p: &[&str]) -> Option<Vec<String>> {
        Some(p.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn update_changes_labels_as_its_field_paths_say() {
        let current = labels(&[("a", "1"), ("b", "2")]);
        let given = labels(&[("b", "20"), ("c", "3")]);
        let all = updated_labels("k", &current, given.clone(), None).expect("no paths");
        assert_eq!(all, given);
        let all = updated_labels("k", &current, given.clone(), paths(&["labels"])).expect("labels");
        assert_eq!(all, given);
        let one = updated_labels("k", &current, given.clone(), paths(&["labels.b"])).expect("b");
        assert_eq!(one, labels(&[("a", "1"), ("b", "20")]));
        let gone = updated_labels("k", &current, given.clone(), paths(&["labels.a"])).expect("a");
        assert_eq!(gone, labels(&[("b", "2")]));
        let empty = updated_labels("k", &current, labels(&[("a", "")]), paths(&["labels.a"]));
        assert_eq!(empty.expect("a"), labels(&[("b", "2")]));
        let e = updated_labels("k", &current, given, paths(&["labels.a", "parent"])).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
    }
}
