//! containerd's snapshotter (`containerd.services.snapshots.v1.Snapshots`, gRPC on a unix
//! socket), served by the daemon of a mount for a `proxy_plugins` entry of type `snapshot`.
//! A snapshot is a layer of the mount: Prepare and View clone a committed layer, Commit
//! commits and renames one, Mounts is a bind mount of `MOUNTPOINT/layers/NAME` (`ops.rs`);
//! keys become layer names by `keys.rs`, kinds, times and labels are the layer's metadata
//! items (`meta.rs`), List takes containerd's filters (`filter.rs`).
//!
//! Invariants:
//! - the server holds the engine only weakly: each request upgrades it and drops it when it
//!   answers; once the daemon has let it go, requests get Unavailable, so the daemon's last
//!   checkpoint never waits for the snapshotter;
//! - engine calls run on tokio's blocking threads, never on the threads that poll sockets;
//! - requests are answered one at a time (a mutex), except Usage, which may walk a layer:
//!   so a check and the change it guards (a parent is committed, a key is free) see the same
//!   state, whatever containerd sends at once;
//! - a connection that sends garbage loses only itself: the accept loop survives every error.
//!
//! The same socket serves containerd's diff service (`differ.rs`, for a `proxy_plugins` entry
//! of type `diff`): Apply extracts a layer blob of containerd's content store in the engine,
//! Diff writes a layer's changes into it through containerd's Content service (`content.rs`).

pub mod api;
mod blob;
mod content;
mod differ;
mod gzip;
pub(crate) mod filter;
mod keys;
mod meta;
pub(crate) mod ops;

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use containerd_snapshots::api::types::Mount;
use containerd_snapshots::tonic::{self, transport::Server};
use containerd_snapshots::{Info, Snapshotter, Usage};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::mount::shared::Shared;
use api::containerd::services::diff::v1::diff_server::DiffServer;
use differ::Differ;
use ops::{Failure, Ops};

/// Threads that poll sockets; engine calls run on blocking threads.
const WORKER_THREADS: usize = 2;
/// Engine calls at once (each waits for the engine's lock anyway).
const BLOCKING_THREADS_MAX: usize = 8;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Starts serving on `socket` in the background (threads of its own) and returns once it
/// listens. Holds the engine only weakly: the daemon's last checkpoint must not wait for it.
/// `containerd_root` is containerd's root, whose content store the differ reads (without it
/// the differ declines every Apply); `containerd_address` is containerd's socket, whose
/// Content service takes the layers the differ computes (without it the differ declines every
/// Diff).
pub fn start(
    shared: Weak<Shared>,
    mountpoint: &Path,
    socket: &Path,
    containerd_root: Option<&Path>,
    containerd_address: Option<&Path>,
) -> Result<()> {
    let std_listener = bind(socket)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .thread_name("lcfs-snapshotter")
        .enable_all()
        .build()
        .context("cannot start the snapshotter's threads")?;
    let listener = {
        let _entered = runtime.enter();
        UnixListener::from_std(std_listener).context("cannot poll the snapshotter socket")?
    };
    let inner = Arc::new(Inner {
        shared,
        layers_dir: mountpoint.join("layers"),
        serial: Mutex::new(()),
    });
    let service = Service {
        inner: Arc::clone(&inner),
    };
    let differ = Differ {
        inner,
        containerd_root: containerd_root.map(Path::to_path_buf),
        containerd_address: containerd_address.map(Path::to_path_buf),
    };
    let socket_name = socket.display().to_string();
    std::thread::Builder::new()
        .name("lcfs-snapshotter".to_string())
        .spawn(move || runtime.block_on(serve(listener, service, differ, socket_name)))
        .context("cannot start the snapshotter's thread")?;
    let applies = match containerd_root {
        Some(root) => format!("Apply reads the content store of {}", root.display()),
        None => "Apply declines: no --containerd-root".to_string(),
    };
    let diffs = match containerd_address {
        Some(address) => format!("Diff writes to containerd at {}", address.display()),
        None => "Diff declines: no --containerd-address".to_string(),
    };
    eprintln!(
        "lcfs: serving containerd's snapshotter and differ on {} ({applies}; {diffs})",
        socket.display()
    );
    Ok(())
}

/// Listens on `socket`, root only, replacing a socket file nobody serves any more.
fn bind(socket: &Path) -> Result<std::os::unix::net::UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket: remove it or choose another path",
                socket.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            bail!(
                "{} is served by another process (another lcfs daemon?): stop it or choose \
                 another path",
                socket.display()
            );
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} root-only", socket.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accepts connections for ever (an accept error is reported and retried) and serves gRPC
/// on each: the snapshotter and the differ.
async fn serve(listener: UnixListener, service: Service, differ: Differ, socket: String) {
    let (connections, incoming) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if connections
                        .send(Ok::<_, std::io::Error>(stream))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("lcfs snapshotter: accepting on {socket} failed: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    });
    let served = Server::builder()
        .add_service(containerd_snapshots::server(Arc::new(service)))
        .add_service(DiffServer::new(differ))
        .serve_with_incoming(ReceiverStream::new(incoming))
        .await;
    if let Err(e) = served {
        eprintln!("lcfs snapshotter: the gRPC server stopped: {e}");
    }
}

/// The snapshotter: what each request needs, shared with the blocking threads.
struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Weak<Shared>,
    layers_dir: PathBuf,
    /// Held by every request but Usage (module doc).
    serial: Mutex<()>,
}

impl Service {
    /// Runs `op` on a blocking thread with the engine, one request at a time if `serial`.
    async fn run<T, F>(&self, serial: bool, op: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Ops<'_>) -> Result<T, Failure> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let shared = inner.shared.upgrade().ok_or_else(|| {
                Failure::unavailable("the lcfs mount is shutting down: its engine is gone")
            })?;
            let _serial =
                serial.then(|| inner.serial.lock().unwrap_or_else(PoisonError::into_inner));
            op(&Ops {
                shared: &shared,
                layers_dir: &inner.layers_dir,
            })
        })
        .await
        .map_err(|e| Failure::internal(format!("the snapshotter's worker failed: {e}")))?
    }
}

#[tonic::async_trait]
impl Snapshotter for Service {
    type Error = Failure;

    async fn stat(&self, key: String) -> Result<Info, Failure> {
        self.run(true, move |ops| ops.stat(&key)).await
    }

    async fn update(&self, info: Info, paths: Option<Vec<String>>) -> Result<Info, Failure> {
        self.run(true, move |ops| ops.update(info, paths)).await
    }

    async fn usage(&self, key: String) -> Result<Usage, Failure> {
        self.run(false, move |ops| ops.usage(&key)).await
    }

    async fn mounts(&self, key: String) -> Result<Vec<Mount>, Failure> {
        self.run(true, move |ops| ops.mounts(&key)).await
    }

    async fn prepare(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>, Failure> {
        self.run(true, move |ops| ops.create(&key, &parent, &labels, false))
            .await
    }

    async fn view(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>, Failure> {
        self.run(true, move |ops| ops.create(&key, &parent, &labels, true))
            .await
    }

    async fn commit(
        &self,
        name: String,
        key: String,
        labels: HashMap<String, String>,
    ) -> Result<(), Failure> {
        self.run(true, move |ops| ops.commit(&name, &key, &labels))
            .await
    }

    async fn remove(&self, key: String) -> Result<(), Failure> {
        self.run(true, move |ops| ops.remove(&key)).await
    }

    /// Nothing is deferred: a removal frees its blocks before it answers.
    async fn clear(&self) -> Result<(), Failure> {
        self.run(true, |_| Ok(())).await
    }

    type InfoStream = tokio_stream::Iter<std::vec::IntoIter<Result<Info, Failure>>>;

    async fn list(
        &self,
        _snapshotter: String,
        filters: Vec<String>,
    ) -> Result<Self::InfoStream, Failure> {
        let infos = self.run(true, move |ops| ops.list(&filters)).await?;
        let infos: Vec<Result<Info, Failure>> = infos.into_iter().map(Ok).collect();
        Ok(tokio_stream::iter(infos))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
    use containerd_snapshots::api::snapshots::v1::{PrepareSnapshotRequest, StatSnapshotRequest};
    use containerd_snapshots::tonic::transport::{Endpoint, Uri};
    use containerd_snapshots::tonic::Code;
    use lcfs::{Fs, MemDevice, MkfsOptions, MountOptions};

    use super::*;

    fn engine() -> Arc<Shared> {
        let device: Arc<dyn lcfs::BlockDevice> = Arc::new(MemDevice::new(4096));
        Fs::mkfs(Arc::clone(&device), &MkfsOptions::default()).expect("mkfs");
        let fs = Fs::mount(device, &MountOptions::default()).expect("mount");
        Arc::new(Shared::new(Arc::new(fs)))
    }

    async fn client(
        socket: PathBuf,
    ) -> SnapshotsClient<containerd_snapshots::tonic::transport::Channel> {
        let channel = Endpoint::try_from("http://[::]:0")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                tokio::net::UnixStream::connect(socket.clone())
            }))
            .await
            .expect("connect");
        SnapshotsClient::new(channel)
    }

    /// The daemon's last checkpoint needs every strong reference gone: the server holds none
    /// between requests, and answers Unavailable once the engine is gone.
    #[test]
    fn the_server_holds_the_engine_only_while_it_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("s.sock");
        let shared = engine();
        start(Arc::downgrade(&shared), dir.path(), &socket, None, None).expect("start");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut c = client(socket.clone()).await;
            let prepare = |key: &str| PrepareSnapshotRequest {
                key: key.to_string(),
                ..PrepareSnapshotRequest::default()
            };
            let mounts = c
                .prepare(prepare("a"))
                .await
                .expect("prepare")
                .into_inner()
                .mounts;
            assert_eq!(
                mounts.first().map(|m| m.source.clone()),
                Some(dir.path().join("layers/a").to_string_lossy().into_owned())
            );
            assert_eq!(Arc::strong_count(&shared), 1, "a request kept the engine");
            let fs = Arc::clone(&shared.fs);
            drop(shared);
            let stat = StatSnapshotRequest {
                key: "a".to_string(),
                ..StatSnapshotRequest::default()
            };
            let e = c.stat(stat).await.expect_err("the engine is gone");
            assert_eq!(e.code(), Code::Unavailable, "{e}");
            assert!(fs.layer("a").is_ok(), "the prepare reached the engine");
        });
    }
}
