//! Shared by the mount tests: prerequisites (root, /dev/fuse, external tools), a mounted image
//! that unmounts itself when dropped (even when the test panics), a replayable seed, and a
//! small seeded generator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `lcfs` binary under test.
pub fn lcfs() -> &'static str {
    env!("CARGO_BIN_EXE_lcfs")
}

/// Runs `lcfs args...`; panics with its output if it fails.
pub fn run(args: &[&str]) -> String {
    let out = run_raw(args);
    assert!(
        out.status.success(),
        "lcfs {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run_raw(args: &[&str]) -> Output {
    Command::new(lcfs()).args(args).output().expect("run lcfs")
}

/// Why the mount tests cannot run here, if they cannot. Under CI they must run: a missing
/// prerequisite there is a failure, not a skip.
pub fn missing_prerequisite(tools: &[&str]) -> Option<String> {
    let mut missing = Vec::new();
    // SAFETY-free check of root: /proc/self/status names the effective uid.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2));
    if euid != Some("0") {
        missing.push("root".to_string());
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse".to_string());
    }
    for tool in tools {
        if which(tool).is_none() {
            missing.push(format!("{tool} (scripts/test.sh installs it)"));
        }
    }
    if missing.is_empty() {
        return None;
    }
    let why = format!("needs {}", missing.join(", "));
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the mount tests, but this machine {why}"
    );
    Some(why)
}

/// Skips the calling test (returns from it) when a prerequisite is missing.
#[macro_export]
macro_rules! require {
    ($($tool:expr),*) => {
        if let Some(why) = common::missing_prerequisite(&[$($tool),*]) {
            eprintln!("SKIPPED: {} {why}", module_path!());
            return;
        }
    };
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

/// A formatted image mounted by the `lcfs` daemon; unmounted (and the daemon gone) on drop.
pub struct Mounted {
    pub dir: tempfile::TempDir,
    pub image: PathBuf,
    pub mountpoint: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// A new image of `size` (e.g. "1G") mounted in a fresh temporary directory.
    pub fn new(size: &str) -> Mounted {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("lcfs.img");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).expect("mkdir");
        run(&["mkfs", "--size", size, image.to_str().unwrap()]);
        let mut m = Mounted {
            dir,
            image,
            mountpoint,
            mounted: false,
        };
        m.mount();
        m
    }

    pub fn mount(&mut self) {
        run(&[
            "mount",
            self.image.to_str().unwrap(),
            self.mountpoint.to_str().unwrap(),
        ]);
        self.mounted = true;
    }

    /// Unmounts cleanly (checkpoint, unmount, daemon exit).
    pub fn umount(&mut self) {
        run(&["umount", self.mountpoint.to_str().unwrap()]);
        self.mounted = false;
    }

    pub fn mount_arg(&self) -> String {
        format!("--mount={}", self.mountpoint.display())
    }

    /// `lcfs layer ARGS --mount=this`.
    pub fn layer(&self, args: &[&str]) -> String {
        let mount = self.mount_arg();
        let mut all = vec!["layer"];
        all.extend_from_slice(args);
        all.push(&mount);
        run(&all)
    }

    pub fn layer_dir(&self, name: &str) -> PathBuf {
        self.mountpoint.join("layers").join(name)
    }

    /// `lcfs fsck` of the (unmounted) image: panics unless clean.
    pub fn fsck_clean(&self) {
        let out = run(&["fsck", self.image.to_str().unwrap()]);
        assert!(out.contains("clean"), "fsck: {out}");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let path = self.mountpoint.to_str().unwrap_or_default().to_string();
            let out = run_raw(&["umount", &path]);
            if !out.status.success() {
                let _ = run_raw(&["umount", "--lazy", &path]);
            }
        }
    }
}

/// The seed of a random test: `LCFS_SEED` if set (replay), else fresh; printed either way.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("LCFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        });
    eprintln!("{test}: LCFS_SEED={seed}");
    seed
}

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Everything observable of a tree: per path, type and mode, nlink, uid, gid, size, mtime (and
/// with `ctime` the ctime) to the nanosecond, rdev, bytes (head and tail of huge sparse
/// files), link target. Without `ctime`, two trees made apart (a layer and a copy of it) compare
/// equal when their contents do.
pub fn tree_snapshot(root: &Path, ctime: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let mut text = format!(
                "{:o} {} {}:{} {} {}.{} {}",
                m.mode(),
                m.nlink(),
                m.uid(),
                m.gid(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.rdev()
            );
            if ctime {
                text += &format!(" {}.{}", m.ctime(), m.ctime_nsec());
            }
            if m.is_file() {
                let f = std::fs::File::open(&path).unwrap();
                let len = m.size().min(1 << 24) as usize;
                let mut head = vec![0u8; len];
                f.read_exact_at(&mut head, 0).unwrap();
                let mut tail = vec![0u8; m.size().min(4096) as usize];
                let tail_at = m.size() - tail.len() as u64;
                f.read_exact_at(&mut tail, tail_at).unwrap();
                text += &format!(" {head:?} {tail:?}");
            } else if m.file_type().is_symlink() {
                text += &format!(" -> {:?}", std::fs::read_link(&path).unwrap());
            } else if m.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path.strip_prefix(root).unwrap().display().to_string(), text);
        }
    }
    out
}

/// A gRPC channel to the daemon's runtime socket (the snapshotter's and the differ's): `lcfs
/// mount` returns once its services listen, so one connection attempt is enough.
pub async fn grpc_channel(
    socket: &Path,
) -> containerd_snapshots::tonic::transport::Channel {
    use containerd_snapshots::tonic::transport::{Endpoint, Uri};
    let socket = socket.to_path_buf();
    let shown = socket.display().to_string();
    Endpoint::try_from("http://[::]:0")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            tokio::net::UnixStream::connect(socket.clone())
        }))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {shown}: {e}"))
}
