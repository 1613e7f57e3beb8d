//! containerd's diff service (`containerd.services.diff.v1.Diff`), served on the snapshotter's
//! socket for a `proxy_plugins` entry of type `diff`. Listed first in containerd's diff
//! service (`default = ["lcfs-diff", "walking"]`, the proxy plugin of type `diff` having
//! a name of its own), it extracts a pulled layer inside the engine
//! (`lcfs::tar::apply_diff`, streaming) instead of containerd writing it file by file through
//! FUSE; containerd asks the next differ of its list whenever this one answers NotImplemented
//! (its diff service stops at the first answer that is not NotImplemented).
//!
//! Apply reads the blob from containerd's content store on disk (a proxy differ is given only
//! the descriptor), `--containerd-root DIR` naming containerd's root (`blob.rs`).
//!
//! Diff (`docker commit`, `docker build`: containerd's `rootfs.CreateDiff` and Docker's own
//! commit compare a view of the parent with the container's snapshot) is served with
//! `--containerd-address SOCK`, containerd's own gRPC socket: the tar of the layer's changes
//! against its parent comes from the engine's tree comparison (`Fs::changes`, written by
//! `lcfs::tar::write_layer_diff` as the graph driver's Diff does: whiteouts for deletions)
//! instead of containerd walking both trees through FUSE, and goes into containerd's content
//! store through containerd's Content service (`content.rs`), the only way a proxy can write
//! there. The reply and the stored blob are the walking differ's: the media type asked (empty:
//! gzip, containerd's default), the blob's digest and size, the `containerd.io/uncompressed`
//! label (the tar's digest) and the request's labels on the blob, the request's ref (or a new
//! one). containerd forwards its caller's `containerd-namespace` header to proxy plugins, and
//! the Content calls carry it on, so the blob is in the caller's namespace. Without
//! `--containerd-address` every Diff is declined.
//!
//! containerd 2's transfer service (`ctr image pull` / `import` without `--local`) does not go
//! through the diff service's list: its `unpack_config` names one differ, so with `differ =
//! "lcfs-diff"` a layer this differ declines fails instead of falling back.
//!
//! Invariants:
//! - whatever this differ cannot do exactly as containerd's walking differ does is declined
//!   with NotImplemented before anything changes. Apply: no `--containerd-root`, mounts that
//!   are not one writable bind mount of `MOUNTPOINT/layers/NAME` of a layer of this daemon, stream
//!   processor payloads (e.g. decryption), a media type `blob.rs` does not list, a digest
//!   algorithm other than sha256;
//! - the blob is verified while it streams: its length before anything is applied, its digest
//!   at its end. A mismatch, like any failure part-way, fails the Apply with the entries before
//!   it applied: containerd removes the extraction snapshot after a failed Apply;
//! - a Diff is this differ's only when it is exactly "a layer against its parent": `left` one
//!   bind mount of `MOUNTPOINT/layers/L` (read-only or not) and `right` one of
//!   `MOUNTPOINT/layers/R`, both layers of this daemon, where R (or the layer R is an unchanged
//!   clone of, a view) has as parent L (or the layer L is an unchanged clone of, or nothing
//!   when L is an empty layer without parent); media type plain tar, `+gzip` or empty; no
//!   source date epoch. Anything else is declined (NotImplemented) before containerd is
//!   called;
//! - a Diff commits nothing unless the whole tar was written and accepted (`content.rs`); a
//!   failure of the content service is that failure's code (never NotImplemented, which would
//!   silently hand the Diff to the walking differ);
//! - the reply to an Apply is the walking differ's: the sha256 and size of the whole
//!   uncompressed stream (bytes after the tar's end-of-archive marker included, as containerd reads them too),
//!   media type `application/vnd.oci.image.layer.v1.tar`;
//! - engine calls run on blocking threads, and neither an Apply nor a Diff takes the
//!   snapshotter's request lock (a large layer takes a while): the engine itself refuses an
//!   apply to a committed or removed layer, and a Diff reads its layer as it is while it
//!   writes, as the walking differ reads the mounts.

use std::fs::File;
use std::io::{BufReader, ErrorKind};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use containerd_snapshots::api::types::Mount;
use fuser::INodeNo;
use lcfs::tar::{TarError, TarErrorKind};
use lcfs::{Error, LayerId};
use tonic::{Request, Response, Status};

use super::api::containerd::services::diff::v1::diff_server::Diff;
use super::api::containerd::services::diff::v1::{
    ApplyRequest, ApplyResponse, DiffRequest, DiffResponse,
};
use super::api::containerd::types::Descriptor;
use super::blob::{self, BadDigest, Compression, Tallied, Tally};
use super::content::{self, Produced, Store};
use super::ops::Failure;
use super::Inner;
use crate::mount::shared::Shared;
use crate::nodes::LAYERS_NODE;

/// The diff service of one daemon.
pub struct Differ {
    pub(super) inner: Arc<Inner>,
    /// containerd's root (`--containerd-root`): its content store is under it.
    pub(super) containerd_root: Option<PathBuf>,
    /// containerd's socket (`--containerd-address`): a Diff's result goes to its Content
    /// service.
    pub(super) containerd_address: Option<PathBuf>,
}

/// What an Apply is asked, once it is known to be this differ's.
struct Job {
    layer: String,
    compression: Compression,
    /// The blob's file in the content store.
    blob: PathBuf,
    digest: String,
    size_bytes: u64,
    sync: bool,
}

#[tonic::async_trait]
impl Diff for Differ {
    async fn apply(
        &self,
        request: Request<ApplyRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        // containerd forwards its caller's namespace (its gRPC server copies the header into
        // every call it makes): the log names it.
        let namespace = request
            .metadata()
            .get("containerd-namespace")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let request = request.into_inner();
        let digest = request.diff.as_ref().map(|d| d.digest.clone());
        let job = self
            .job(&self.inner.layers_dir, request)
            .inspect_err(|failure| {
                if failure.code == tonic::Code::Unimplemented {
                    eprintln!(
                        "lcfs differ: Apply of {} declined: {}",
                        digest.as_deref().unwrap_or("(no descriptor)"),
                        failure.message
                    );
                }
            })?;
        let inner = Arc::clone(&self.inner);
        let applied = tokio::task::spawn_blocking(move || {
            let shared = inner.shared.upgrade().ok_or_else(|| {
                Failure::unavailable("the lcfs mount is shutting down: its engine is gone")
            })?;
            apply(&shared, &job, &namespace).inspect_err(|f| {
                eprintln!("lcfs differ: Apply of {}: {}", job.digest, f.message);
            })
        })
        .await
        .map_err(|e| Failure::internal(format!("the differ's worker failed: {e}")))??;
        Ok(Response::new(ApplyResponse {
            applied: Some(applied),
        }))
    }

    async fn diff(&self, request: Request<DiffRequest>) -> Result<Response<DiffResponse>, Status> {
        let started = Instant::now();
        let metadata = request.metadata().clone();
        let namespace = metadata
            .get("containerd-namespace")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let request = request.into_inner();
        let declined = |failure: Failure| {
            if failure.code == tonic::Code::Unimplemented {
                eprintln!("lcfs differ: Diff declined: {}", failure.message);
            }
            Status::from(failure)
        };
        let ask = self.diff_job(&request).map_err(declined)?;
        let inner = Arc::clone(&self.inner);
        let (left, right) = (request.left, request.right);
        let (shared, target) = tokio::task::spawn_blocking(move || {
            let shared = inner.shared.upgrade().ok_or_else(|| {
                Failure::unavailable("the lcfs mount is shutting down: its engine is gone")
            })?;
            let target = diff_target(&shared, &inner.layers_dir, &left, &right)?;
            Ok::<_, Failure>((shared, target))
        })
        .await
        .map_err(|e| Failure::internal(format!("the differ's worker failed: {e}")))?
        .map_err(declined)?;
        let mut store = Store::connect(&ask.address, &metadata).await?;
        let lease = store.hold().await?;
        let (chunks, chunks_out) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let producer = {
            let (compression, layer) = (ask.compression, target.id);
            tokio::task::spawn_blocking(move || produce(&shared, layer, compression, chunks))
        };
        let name = target.name.clone();
        let produced = async move {
            producer
                .await
                .map_err(|e| Failure::internal(format!("the differ's worker failed: {e}")))?
                .map_err(|e| {
                    Failure::internal(format!("writing the diff of layer {name:?} failed: {e}"))
                })
        };
        let (reference, fresh) = match request.r#ref.as_str() {
            "" => (content::unique_ref(), true),
            given => (given.to_string(), false),
        };
        let produced = store
            .upload(&reference, fresh, chunks_out, produced, request.labels)
            .await
            .inspect_err(|f| {
                eprintln!(
                    "lcfs differ: Diff of layer {:?}: {}",
                    target.name, f.message
                )
            })?;
        eprintln!(
            "lcfs differ: diffed layer {:?} against {} in the engine: {} ({} bytes, {}; tar {}) \
             in {} ms (namespace {namespace:?}, {lease})",
            target.name,
            target
                .parent
                .as_deref()
                .map_or("nothing (no parent)".to_string(), |p| format!("{p:?}")),
            produced.digest,
            produced.size,
            ask.media_type,
            produced.uncompressed,
            started.elapsed().as_millis(),
        );
        Ok(Response::new(DiffResponse {
            diff: Some(Descriptor {
                media_type: ask.media_type,
                digest: produced.digest,
                size: i64::try_from(produced.size).unwrap_or(i64::MAX),
                annotations: Default::default(),
            }),
        }))
    }
}

/// Chunks of a diff (each up to [`CHUNK_BYTES`]) between the engine and the upload.
const CHUNKS_IN_FLIGHT: usize = 4;
/// The bytes of one WRITE message of an upload (containerd's gRPC takes up to 16 MiB).
const CHUNK_BYTES: usize = 1 << 20;

// The gzip of a Diff (`gzip.rs`): the fastest level, and data that does not compress stored.
// A container's new layer is mostly written once and read once (Docker's commit applies it
// again at once). Measured with zlib-rs (`examples/diff_costs.rs`, docs/benchmarks.md "Docker
// reproduction"): a 929 MB tar of /usr/lib took 23.6 to 24.8 s at level 6 (334 MB) and 6.9 to
// 11.0 s at level 1 (424 MB, 27% more); 1 GiB of random data 43.6 s and 22.8 s at levels 6
// and 1 (level 1 5.5% larger than the tar, whose static codes cannot store random bytes in 8
// bits). containerd's walking differ writes gzip at Go's default level.

/// What a Diff is asked, once it is known to be this differ's (but for its mounts).
struct DiffJob {
    address: PathBuf,
    /// The media type of the reply: the one asked, or containerd's default (gzip).
    media_type: String,
    compression: Compression,
}

/// The layer whose changes a Diff writes.
struct DiffTarget {
    id: LayerId,
    name: String,
    parent: Option<String>,
}

impl Differ {
    /// The Diff `request` asks for, or why this differ declines it (NotImplemented).
    fn diff_job(&self, request: &DiffRequest) -> Result<DiffJob, Failure> {
        let Some(address) = &self.containerd_address else {
            return Err(Failure::not_implemented(
                "no content service: the daemon was started without --containerd-address",
            ));
        };
        if request.source_date_epoch.is_some() {
            return Err(Failure::not_implemented(
                "a source date epoch (file times clamped) is containerd's to apply",
            ));
        }
        // containerd's walking differ writes gzip when no media type is asked.
        let media_type = match request.media_type.as_str() {
            "" => blob::LAYER_TAR_GZIP,
            asked => asked,
        };
        let compression = match media_type {
            blob::LAYER_TAR => Compression::None,
            blob::LAYER_TAR_GZIP => Compression::Gzip,
            other => {
                return Err(Failure::not_implemented(format!(
                    "diffs of media type {other:?} are not written here"
                )))
            }
        };
        Ok(DiffJob {
            address: address.clone(),
            media_type: media_type.to_string(),
            compression,
        })
    }
}

/// The layer C whose changes against its parent are what `right` shows against `left`, when
/// both are this daemon's: `left` shows C's parent (is it, or an unchanged clone of it: a
/// view), `right` shows C (is it, or an unchanged clone of it). Anything else is declined.
fn diff_target(
    shared: &Shared,
    layers_dir: &Path,
    left: &[Mount],
    right: &[Mount],
) -> Result<DiffTarget, Failure> {
    let fs = &shared.fs;
    let left = layer_of(layers_dir, left, false)
        .map_err(|why| Failure::not_implemented(format!("left: {why}")))?;
    let right = layer_of(layers_dir, right, false)
        .map_err(|why| Failure::not_implemented(format!("right: {why}")))?;
    let info = |name: &str| match fs.layer(name) {
        Ok(info) => Ok(info),
        Err(Error::NotFound) => Err(Failure::not_implemented(format!(
            "no layer {name:?} in this lcfs mount"
        ))),
        Err(e) => Err(Failure::internal(format!("reading layer {name:?}: {e}"))),
    };
    let unchanged = |layer: &lcfs::LayerInfo| match fs.changes(layer.id) {
        Ok(changes) => Ok(changes.is_empty()),
        Err(e) => Err(Failure::internal(format!(
            "diffing layer {:?}: {e}",
            layer.name
        ))),
    };
    let l = info(&left)?;
    let r = info(&right)?;
    let mut left_unchanged = None;
    // Whether `left` shows the tree of layer `parent` (None: the empty tree).
    let mut left_shows = |parent: Option<&str>| -> Result<bool, Failure> {
        if parent == Some(l.name.as_str()) {
            return Ok(true);
        }
        if l.parent.as_deref() != parent {
            return Ok(false);
        }
        if left_unchanged.is_none() {
            left_unchanged = Some(unchanged(&l)?);
        }
        Ok(left_unchanged == Some(true))
    };
    let target = |c: lcfs::LayerInfo| DiffTarget {
        id: c.id,
        name: c.name,
        parent: c.parent,
    };
    if left_shows(r.parent.as_deref())? {
        return Ok(target(r));
    }
    if let Some(parent) = r.parent.as_deref() {
        if unchanged(&r)? {
            let c = info(parent)?;
            if left_shows(c.parent.as_deref())? {
                return Ok(target(c));
            }
        }
    }
    Err(Failure::not_implemented(format!(
        "layer {right:?} is not a child of layer {left:?} (or of what it is an unchanged view \
         of): lcfs diffs a layer against its own parent only"
    )))
}

/// Writes the tar of `layer`'s changes, compressed as asked, in chunks into `chunks`; what it
/// wrote. Fails when the upload is gone (the receiver dropped).
fn produce(
    shared: &Shared,
    layer: LayerId,
    compression: Compression,
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<Produced, TarError> {
    let mut blob = Tally::default();
    let mut tar = Tally::default();
    let mut out = Chunks {
        chunks,
        buf: Vec::with_capacity(CHUNK_BYTES),
    };
    let io_error = |e: std::io::Error| TarError {
        index: 0,
        offset: 0,
        name: String::new(),
        kind: TarErrorKind::Io(e),
    };
    {
        let raw = Tallied {
            inner: &mut out,
            tally: &mut blob,
        };
        match compression {
            Compression::Gzip => {
                let gz = super::gzip::AdaptiveGzip::new(raw).map_err(io_error)?;
                let mut tallied = Tallied {
                    inner: gz,
                    tally: &mut tar,
                };
                lcfs::tar::write_layer_diff(&shared.fs, layer, &mut tallied)?;
                tallied.inner.finish().map_err(io_error)?;
            }
            _ => {
                let mut tallied = Tallied {
                    inner: raw,
                    tally: &mut tar,
                };
                lcfs::tar::write_layer_diff(&shared.fs, layer, &mut tallied)?;
            }
        }
    }
    out.send().map_err(io_error)?;
    Ok(Produced {
        digest: blob.digest(),
        size: blob.bytes,
        uncompressed: tar.digest(),
    })
}

/// A writer that sends what it is given in chunks of [`CHUNK_BYTES`] (the last on `send`).
struct Chunks {
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.chunks.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(ErrorKind::BrokenPipe, "the upload to containerd stopped")
        })
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK_BYTES - self.buf.len();
        let n = buf.len().min(room);
        self.buf.extend_from_slice(buf.get(..n).unwrap_or_default());
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Differ {
    /// What `request` asks, or why this differ declines it (NotImplemented) or refuses it.
    fn job(&self, layers_dir: &Path, request: ApplyRequest) -> Result<Job, Failure> {
        let Some(root) = &self.containerd_root else {
            return Err(Failure::not_implemented(
                "no content store: the daemon was started without --containerd-root",
            ));
        };
        let layer =
            layer_of(layers_dir, &request.mounts, true).map_err(Failure::not_implemented)?;
        if !request.payloads.is_empty() {
            let mut names: Vec<&String> = request.payloads.keys().collect();
            names.sort();
            return Err(Failure::not_implemented(format!(
                "stream processor payloads ({names:?}) are containerd's to apply"
            )));
        }
        let desc = request
            .diff
            .ok_or_else(|| Failure::invalid_argument("Apply without a descriptor"))?;
        let compression = Compression::of(&desc.media_type).ok_or_else(|| {
            Failure::not_implemented(format!(
                "media type {:?} is not applied here",
                desc.media_type
            ))
        })?;
        let hex = blob::sha256_hex(&desc.digest).map_err(|bad| match bad {
            BadDigest::Algorithm(a) => {
                Failure::not_implemented(format!("digests of algorithm {a} are not read here"))
            }
            BadDigest::Malformed => {
                Failure::invalid_argument(format!("malformed digest {:?}", desc.digest))
            }
        })?;
        let size_bytes = u64::try_from(desc.size).map_err(|_| {
            Failure::invalid_argument(format!("negative size {} of {}", desc.size, desc.digest))
        })?;
        Ok(Job {
            layer,
            compression,
            blob: blob::path(root, hex),
            digest: desc.digest.clone(),
            size_bytes,
            sync: request.sync_fs,
        })
    }
}

/// The layer name of `mounts` when they are one bind mount of `layers_dir/NAME` (a writable one
/// if `writable`), as the snapshotter hands them out; else why not.
fn layer_of(layers_dir: &Path, mounts: &[Mount], writable: bool) -> Result<String, String> {
    let [mount] = mounts else {
        return Err(format!("{} mounts, not one bind mount", mounts.len()));
    };
    if mount.r#type != "bind" {
        return Err(format!(
            "a mount of type {:?}, not a bind mount",
            mount.r#type
        ));
    }
    if writable && mount.options.iter().any(|o| o == "ro") {
        return Err(format!("{} is mounted read-only", mount.source));
    }
    let rest = Path::new(&mount.source)
        .strip_prefix(layers_dir)
        .map_err(|_| format!("{} is not under {}", mount.source, layers_dir.display()))?;
    let mut components = rest.components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(name)), None) => name
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{} is not UTF-8", mount.source)),
        _ => Err(format!(
            "{} is not a layer directory of {}",
            mount.source,
            layers_dir.display()
        )),
    }
}

/// Applies the blob of `job` to its layer: a descriptor of the uncompressed stream applied.
fn apply(shared: &Shared, job: &Job, namespace: &str) -> Result<Descriptor, Failure> {
    let started = Instant::now();
    let layer = match shared.fs.layer_id(&job.layer) {
        Ok(id) => id,
        Err(Error::NotFound) => {
            return Err(Failure::not_implemented(format!(
                "no layer {:?} in this lcfs mount",
                job.layer
            )))
        }
        Err(e) => {
            return Err(Failure::internal(format!(
                "reading layer {:?}: {e}",
                job.layer
            )))
        }
    };
    let file = open_blob(job)?;
    let mut raw = Tally::default();
    let mut tar = Tally::default();
    let applied = stream(shared, layer, job.compression, file, &mut raw, &mut tar);
    forget_cached(shared, &job.layer);
    let data_bytes = applied.map_err(|e| apply_failure(job, &e))?;
    if raw.bytes != job.size_bytes || raw.digest() != job.digest {
        return Err(Failure::failed_precondition(format!(
            "blob {} of the content store is {} bytes of digest {}, not what its descriptor \
             says ({} bytes); layer {:?} holds what it applied: remove it",
            job.blob.display(),
            raw.bytes,
            raw.digest(),
            job.size_bytes,
            job.layer
        )));
    }
    if job.sync {
        shared.fs.checkpoint().map_err(|e| {
            Failure::internal(format!("making layer {:?} durable failed: {e}", job.layer))
        })?;
    }
    eprintln!(
        "lcfs differ: applied {} to layer {:?} in the engine: {} bytes of tar ({data_bytes} of \
         file data) in {} ms (namespace {namespace:?})",
        job.digest,
        job.layer,
        tar.bytes,
        started.elapsed().as_millis()
    );
    Ok(Descriptor {
        media_type: blob::LAYER_TAR.to_string(),
        digest: tar.digest(),
        size: i64::try_from(tar.bytes).unwrap_or(i64::MAX),
        annotations: Default::default(),
    })
}

/// The blob's file, checked against the descriptor's size before anything is applied.
fn open_blob(job: &Job) -> Result<File, Failure> {
    let file = File::open(&job.blob).map_err(|e| match e.kind() {
        ErrorKind::NotFound => Failure::not_found(format!(
            "content {} is not in containerd's content store ({} is missing)",
            job.digest,
            job.blob.display()
        )),
        _ => Failure::internal(format!("cannot open {}: {e}", job.blob.display())),
    })?;
    let length = file
        .metadata()
        .map_err(|e| Failure::internal(format!("cannot read {}: {e}", job.blob.display())))?
        .len();
    if length != job.size_bytes {
        return Err(Failure::failed_precondition(format!(
            "blob {} is {length} bytes, its descriptor says {}: refused",
            job.blob.display(),
            job.size_bytes
        )));
    }
    Ok(file)
}

/// Streams `file`, decompressed, into the engine, then reads what follows the tar, as
/// containerd does; `raw` and `tar` tally the blob and the uncompressed stream.
fn stream(
    shared: &Shared,
    layer: LayerId,
    compression: Compression,
    file: File,
    raw: &mut Tally,
    tar: &mut Tally,
) -> Result<u64, TarError> {
    let blob = Tallied {
        inner: BufReader::with_capacity(1 << 20, file),
        tally: raw,
    };
    let mut decompressed = Tallied {
        inner: compression.reader(blob),
        tally: tar,
    };
    let data_bytes = lcfs::tar::apply_diff(&shared.fs, layer, &mut decompressed)?;
    std::io::copy(&mut decompressed, &mut std::io::sink()).map_err(|e| TarError {
        index: 0,
        offset: 0,
        name: String::new(),
        kind: TarErrorKind::Io(e),
    })?;
    Ok(data_bytes)
}

/// The failure of an apply of `job`, with the code containerd expects.
fn apply_failure(job: &Job, e: &TarError) -> Failure {
    let message = format!(
        "applying {} to layer {:?} failed: {e}; the entries before it were applied (containerd \
         removes the snapshot)",
        job.digest, job.layer
    );
    match &e.kind {
        TarErrorKind::Engine(Error::NoSpace) => Failure::resource_exhausted(message),
        TarErrorKind::Engine(Error::ReadOnly) => Failure::failed_precondition(message),
        TarErrorKind::Engine(Error::NotFound | Error::Stale) if e.index == 0 => {
            Failure::not_found(message)
        }
        TarErrorKind::Engine(_) => Failure::internal(message),
        TarErrorKind::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::UnexpectedEof
            ) =>
        {
            Failure::invalid_argument(message)
        }
        TarErrorKind::Io(_) => Failure::internal(message),
        _ => Failure::invalid_argument(message),
    }
}

/// The kernel forgets its entry for layer `name` and what it cached below, so the content the
/// engine wrote shows through the mount at once.
fn forget_cached(shared: &Shared, name: &str) {
    if let Some(notifier) = shared.notifier.get() {
        // ENOENT when the kernel never looked the layer up: nothing to forget.
        let _ = notifier.inval_entry(INodeNo(LAYERS_NODE), std::ffi::OsStr::new(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &str, options: &[&str]) -> Mount {
        Mount {
            r#type: "bind".into(),
            source: source.into(),
            target: String::new(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn only_one_writable_bind_mount_of_a_layer_directory_is_ours() {
        let dir = Path::new("/mnt/lcfs/layers");
        let ours = |m: Vec<Mount>| layer_of(dir, &m, true);
        assert_eq!(
            ours(vec![bind("/mnt/lcfs/layers/a%2Fb", &["rbind", "rw"])]),
            Ok("a%2Fb".to_string())
        );
        assert_eq!(
            ours(vec![bind("/mnt/lcfs/layers/x/", &["rbind"])]),
            Ok("x".to_string())
        );
        for declined in [
            vec![],
            vec![bind("/mnt/lcfs/layers/a", &["rbind", "ro"])],
            vec![bind("/mnt/lcfs/layers", &["rbind", "rw"])],
            vec![bind("/mnt/lcfs/layers/a/b", &["rbind", "rw"])],
            vec![bind("/mnt/lcfs/layers/../x", &["rbind", "rw"])],
            vec![bind("/mnt/lcfs/layers/a/..", &["rbind", "rw"])],
            vec![bind("/mnt/other/layers/a", &["rbind", "rw"])],
            vec![bind("mnt/lcfs/layers/a", &["rbind", "rw"])],
            vec![bind("/mnt/lcfs/layers/a", &["rbind", "rw"]); 2],
            vec![Mount {
                r#type: "overlay".into(),
                ..bind("/mnt/lcfs/layers/a", &["rw"])
            }],
        ] {
            assert!(ours(declined.clone()).is_err(), "{declined:?}");
        }
        // A Diff reads its mounts: read-only ones are as good.
        assert_eq!(
            layer_of(dir, &[bind("/mnt/lcfs/layers/v", &["rbind", "ro"])], false),
            Ok("v".to_string())
        );
    }
}
