//! The daemon: opens and locks the image, mounts the engine with FUSE, serves the control
//! socket, and unmounts cleanly (checkpoint, then unmount) on `lcfs umount`, SIGTERM, SIGINT
//! or SIGHUP. `lcfs mount` without `--foreground` starts it in the background and returns once
//! the mount is up (or with the daemon's own error).
//!
//! Invariants:
//! - one daemon per image: an exclusive lock on the image file (flock), held until exit;
//! - a block device is opened exclusively (O_EXCL), so a device mounted elsewhere is refused;
//! - the image is released only after the last checkpoint (`Fs::unmount`, marked clean).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fuser::{Config, MountOption, Session, SessionACL};
use lcfs::{BlockDevice, Error, FileDevice, Fs, MountOptions};

use crate::control::{self, DaemonInfo, RUN_DIR};
use crate::mount::shared::Shared;
use crate::mount::LcfsFuse;
use crate::server::Server;
use crate::{mounts, sys};

/// FUSE worker threads.
const FUSE_THREADS: usize = 4;

/// The runtime services a daemon serves besides its mount and control socket, each on its
/// own unix socket.
#[derive(Clone, Debug, Default)]
pub struct Services {
    /// containerd's snapshotter and diff services (gRPC), for a `proxy_plugins` entry.
    pub snapshotter: Option<PathBuf>,
    /// containerd's root directory: the diff service reads layer blobs from its content store.
    pub containerd_root: Option<PathBuf>,
    /// containerd's gRPC socket: the diff service writes the layers it computes (Diff) through
    /// its Content service.
    pub containerd_address: Option<PathBuf>,
    /// Docker's graph-driver plugin API (HTTP+JSON), e.g. `/run/docker/plugins/lcfs.sock`.
    pub graphdriver: Option<PathBuf>,
}

/// The image, opened and locked for one daemon.
pub struct Image {
    pub device: Arc<dyn BlockDevice>,
    /// Held for the daemon's life: the flock on the image, or the O_EXCL handle of a device.
    _lock: File,
}

/// Opens `path` for exclusive use: a second daemon or a mounted block device is refused.
pub fn open_image(path: &Path) -> Result<Image> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!(
            "image {} does not exist: create it with `lcfs mkfs {}`",
            path.display(),
            path.display()
        ),
        _ => anyhow!("cannot read {}: {e}", path.display()),
    })?;
    let lock = if meta.file_type().is_block_device() {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EBUSY) {
                    anyhow!(
                        "device {} is busy: it is mounted or used by another program (see \
                     `lsblk` and `findmnt {}`); unmount it first",
                        path.display(),
                        path.display()
                    )
                } else {
                    anyhow!("cannot open device {}: {e}", path.display())
                }
            })?
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        if !sys::try_lock(&file).with_context(|| format!("cannot lock {}", path.display()))? {
            bail!(
                "image {} is in use by another lcfs daemon (it holds the image's lock): \
                 unmount that one first (`lcfs umount MOUNTPOINT`; `grep lcfs: /proc/mounts` \
                 lists them)",
                path.display()
            );
        }
        file
    };
    let device =
        FileDevice::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Image {
        device: Arc::new(device),
        _lock: lock,
    })
}

/// Mounts the engine of `image`, explaining the errors a user can do something about.
pub fn mount_engine(image: &Image, path: &Path) -> Result<Fs> {
    Fs::mount(Arc::clone(&image.device), &MountOptions::default()).map_err(|e| match e {
        Error::NotLcfs(why) => anyhow!(
            "{} is not an lcfs image ({why}): format it with `lcfs mkfs {}` (this erases it)",
            path.display(),
            path.display()
        ),
        Error::Corrupt { .. } => anyhow!(
            "{} is damaged ({e}): run `lcfs fsck {}` to see what is wrong",
            path.display(),
            path.display()
        ),
        e => anyhow!("mounting {} failed: {e}", path.display()),
    })
}

/// Checks that `mountpoint` is a directory nobody mounted lcfs on yet; returns it canonical.
fn check_mountpoint(mountpoint: &Path) -> Result<PathBuf> {
    let canonical = mountpoint.canonicalize().map_err(|_| {
        anyhow!(
            "mount point {} does not exist: create it with `mkdir -p {}`",
            mountpoint.display(),
            mountpoint.display()
        )
    })?;
    if !canonical.is_dir() {
        bail!("mount point {} is not a directory", mountpoint.display());
    }
    if mounts::lcfs_mounts()?.iter().any(|m| m == &canonical) {
        bail!(
            "lcfs is already mounted on {}: unmount it first with `lcfs umount {}`",
            canonical.display(),
            canonical.display()
        );
    }
    Ok(canonical)
}

/// Serves `image_path` on `mountpoint` until it is unmounted (`lcfs mount --foreground`).
pub fn serve(image_path: &Path, mountpoint: &Path, services: &Services) -> Result<()> {
    let mountpoint = check_mountpoint(mountpoint)?;
    let image_path = image_path
        .canonicalize()
        .unwrap_or_else(|_| image_path.to_path_buf());
    let image = open_image(&image_path)?;
    let fs = Arc::new(mount_engine(&image, &image_path)?);
    crate::memory::start_trimmer();
    let shared = Arc::new(Shared::new(Arc::clone(&fs)));
    let config = fuse_config(&image_path);
    let session =
        Session::new(LcfsFuse::new(Arc::clone(&shared)), &mountpoint, &config).map_err(|e| {
            anyhow!(
                "mounting FUSE on {} failed: {e} (is /dev/fuse there, and are you root?)",
                mountpoint.display()
            )
        })?;
    shared
        .set_notifier(session.notifier())
        .context("cannot start the page-drop thread")?;
    // The runtime services listen before the control socket exists: `lcfs mount` returns once
    // the control socket answers, and a runtime may connect right after.
    if let Some(socket) = &services.snapshotter {
        let root = services.containerd_root.as_deref();
        let address = services.containerd_address.as_deref();
        crate::snapshotter::start(Arc::downgrade(&shared), &mountpoint, socket, root, address)
            .with_context(|| format!("cannot serve the snapshotter on {}", socket.display()))?;
    }
    if let Some(socket) = &services.graphdriver {
        crate::graphdriver::start(Arc::downgrade(&shared), &mountpoint, socket)
            .with_context(|| format!("cannot serve the graph driver on {}", socket.display()))?;
    }
    let (socket, info_path, _) = control::paths(&mountpoint);
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let info = DaemonInfo {
        pid: std::process::id(),
        image: image_path.clone(),
        mountpoint: mountpoint.clone(),
        socket: socket.clone(),
    };
    std::fs::write(&info_path, serde_json::to_vec(&info)?)?;
    let server = Arc::new(Server {
        shared,
        mountpoint: mountpoint.clone(),
        image: image_path.clone(),
        stopping: false.into(),
    });
    let accept = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || server.run(listener))
    };
    watch_signals(Arc::downgrade(&server))?;
    eprintln!(
        "lcfs: serving {} on {} (layers in {}/layers)",
        image_path.display(),
        mountpoint.display(),
        mountpoint.display()
    );
    let served = session.run();
    server.stopping.store(true, Ordering::SeqCst);
    let _ = std::os::unix::net::UnixStream::connect(&socket);
    let _ = accept.join();
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&info_path);
    for service in [&services.snapshotter, &services.graphdriver]
        .into_iter()
        .flatten()
    {
        let _ = std::fs::remove_file(service);
    }
    drop(server);
    finish(fs)?;
    served.map_err(|e| anyhow!("the FUSE session ended with an error: {e}"))?;
    // A clean end leaves nothing behind in /run/lcfs (a failed one keeps its log).
    let _ = std::fs::remove_file(control::paths(&mountpoint).2);
    eprintln!(
        "lcfs: {} unmounted, image checkpointed and released",
        mountpoint.display()
    );
    Ok(())
}

fn fuse_config(image: &Path) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(mounts::source(image)),
        MountOption::Subtype("lcfs".to_string()),
        MountOption::DefaultPermissions,
        MountOption::RW,
        MountOption::Dev,
        MountOption::Suid,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(FUSE_THREADS);
    config.clone_fd = true;
    config
}

/// The last checkpoint, marked clean, once nothing else holds the engine.
fn finish(fs: Arc<Fs>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut fs = fs;
    loop {
        match Arc::try_unwrap(fs) {
            Ok(fs) => {
                return fs
                    .unmount()
                    .map_err(|e| anyhow!("the last checkpoint failed: {e}"))
            }
            Err(again) if Instant::now() < deadline => {
                fs = again;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(again) => {
                again
                    .checkpoint()
                    .map_err(|e| anyhow!("the last checkpoint failed: {e}"))?;
                bail!(
                    "a control request still holds the engine; the image was checkpointed \
                     but not marked clean"
                );
            }
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP unmount (checkpoint first); a busy mount is detached lazily,
/// and the session ends when its last file closes.
fn watch_signals(server: std::sync::Weak<Server>) -> Result<()> {
    let mut pipe = sys::signal_pipe().context("cannot install signal handlers")?;
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while pipe.read_exact(&mut byte).is_ok() {
            let Some(server) = server.upgrade() else {
                return;
            };
            eprintln!(
                "lcfs: signal {}: unmounting {}",
                byte[0],
                server.mountpoint.display()
            );
            if server.handle(control::Request::Umount { lazy: false }).ok {
                continue;
            }
            let _ = server.handle(control::Request::Umount { lazy: true });
        }
    });
    Ok(())
}

/// Starts the daemon in the background and waits until the mount is up.
pub fn spawn(image: &Path, mountpoint: &Path, services: &Services) -> Result<()> {
    let canonical = check_mountpoint(mountpoint)?;
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
    let (_, _, log_path) = control::paths(&canonical);
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the lcfs binary")?;
    let mut command = Command::new(exe);
    command
        .arg("mount")
        .arg(image)
        .arg(&canonical)
        .arg("--foreground");
    if let Some(socket) = &services.snapshotter {
        command.arg("--snapshotter").arg(socket);
    }
    if let Some(root) = &services.containerd_root {
        command.arg("--containerd-root").arg(root);
    }
    if let Some(address) = &services.containerd_address {
        command.arg("--containerd-address").arg(address);
    }
    if let Some(socket) = &services.graphdriver {
        command.arg("--graphdriver").arg(socket);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start the lcfs daemon")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            // The message goes to the user here; the log has nothing else to tell.
            let _ = std::fs::remove_file(&log_path);
            let message = output.trim().trim_start_matches("Error: ");
            bail!("{message} (daemon exit {status})");
        }
        let (socket, _, _) = control::paths(&canonical);
        if mounts::lcfs_mounts()?.contains(&canonical)
            && control::call(&socket, &control::Request::Status).is_ok()
        {
            println!(
                "lcfs: mounted {} on {} (daemon pid {}, log {})",
                image.display(),
                canonical.display(),
                child.id(),
                log_path.display()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not come up within 60 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
