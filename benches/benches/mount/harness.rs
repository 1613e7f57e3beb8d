//! A mounted lcfs image for the mount benches, served by the daemon of this very build.
//!
//! The bench executable links the `lcfs` command line (`lcfs_fuse::cli`) and becomes `lcfs`
//! when started with `LCFS_BENCH_AS_LCFS` set (`serve_if_lcfs`, first thing in `main`): so the
//! daemon is a separate process, as in production, and always the code of this build, with no
//! binary to find in a target directory. `lcfs mount` starts its daemon by executing itself
//! again, and the variable is inherited.
//!
//! Invariants:
//! - the image and the mount point live in a fresh temporary directory, on /dev/shm when it
//!   exists (tmpfs: the image file costs no device time, as `MemDevice` in the engine benches);
//! - a `Mounted` unmounts when dropped, also when a bench panics: `lcfs umount`, and if that
//!   fails a lazy `umount -l`, before its temporary directory goes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Set in the environment of this executable started as `lcfs`.
const AS_LCFS: &str = "LCFS_BENCH_AS_LCFS";

/// When this executable was started as `lcfs`, runs its command line and returns the exit
/// status (as src/main.rs of fuse-mount does).
pub fn serve_if_lcfs() -> Option<i32> {
    std::env::var_os(AS_LCFS)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    Some(match lcfs_fuse::cli::run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lcfs: {e:#}");
            1
        }
    })
}

/// Why the mount benches cannot run here, if they cannot: they need root and /dev/fuse.
pub fn missing_prerequisite() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2));
    let mut missing = Vec::new();
    if euid != Some("0") {
        missing.push("root");
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse");
    }
    (!missing.is_empty()).then(|| format!("they need {}", missing.join(" and ")))
}

/// Runs `lcfs args...` (this executable); its output, or its failure.
fn run_raw(args: &[&str]) -> std::io::Result<Output> {
    Command::new(std::env::current_exe()?)
        .env(AS_LCFS, "1")
        .args(args)
        .output()
}

/// Runs `lcfs args...`; panics with its output unless it succeeds.
fn run(args: &[&str]) -> String {
    let out = run_raw(args).unwrap_or_else(|e| panic!("cannot run lcfs {args:?}: {e}"));
    assert!(
        out.status.success(),
        "lcfs {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh image mounted by its own daemon; unmounted when dropped.
pub struct Mounted {
    _dir: tempfile::TempDir,
    pub mountpoint: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// A new sparse image of `size` (e.g. "8G"), mounted.
    pub fn new(size: &str) -> Mounted {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        };
        let dir = dir.unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let image = dir.path().join("lcfs.img");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let (image_arg, mount_arg) = (path_str(&image), path_str(&mountpoint));
        run(&["mkfs", "--size", size, &image_arg]);
        run(&["mount", &image_arg, &mount_arg]);
        Mounted {
            _dir: dir,
            mountpoint,
            mounted: true,
        }
    }

    /// `lcfs layer create NAME [--parent PARENT]`: the new layer's directory.
    pub fn create_layer(&self, name: &str, parent: Option<&str>) -> PathBuf {
        let parent = parent.map(|p| format!("--parent={p}"));
        let mut args = vec!["create", name];
        args.extend(parent.as_deref());
        self.layer(&args);
        let dir = self.layer_dir(name);
        assert!(
            dir.is_dir(),
            "layer {name} has no directory {}",
            dir.display()
        );
        dir
    }

    /// `lcfs layer ARGS --mount=MOUNTPOINT`.
    pub fn layer(&self, args: &[&str]) -> String {
        let mount = format!("--mount={}", path_str(&self.mountpoint));
        let mut all = vec!["layer"];
        all.extend_from_slice(args);
        all.push(&mount);
        run(&all)
    }

    pub fn layer_dir(&self, name: &str) -> PathBuf {
        self.mountpoint.join("layers").join(name)
    }

    /// Unmounts cleanly (the daemon checkpoints and exits); panics if it cannot.
    pub fn umount(mut self) {
        self.mounted = false;
        run(&["umount", &path_str(&self.mountpoint)]);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let path = path_str(&self.mountpoint);
        let clean = run_raw(&["umount", &path]).is_ok_and(|out| out.status.success());
        if !clean {
            eprintln!("lcfs umount {path} failed: detaching it (umount -l)");
            let _ = Command::new("umount").args(["-l", &path]).status();
        }
    }
}

fn path_str(path: &Path) -> String {
    path.to_str()
        .unwrap_or_else(|| panic!("not UTF-8: {}", path.display()))
        .to_string()
}
