//! The mount's life: write, unmount, mount again, identical (every stat field the engine keeps,
//! bytes, link targets, xattrs); what the CLI says when something is wrong; committed layers
//! read-only through the mount; a layer removed by the CLI disappears from the mount; an
//! unlinked file stays readable through its open handle; SIGTERM unmounts cleanly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::Mounted;

#[test]
fn write_unmount_mount_again_gives_an_identical_tree() {
    require!();
    let mut m = Mounted::new("1G");
    m.layer(&["create", "l"]);
    let root = m.layer_dir("l");
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/small"), b"hello").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(root.join("a/b/big"), &big).unwrap();
    let sparse = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(root.join("sparse"))
        .unwrap();
    sparse.write_at(b"far", 1 << 33).unwrap();
    drop(sparse);
    fs::hard_link(root.join("a/small"), root.join("a/b/c/link")).unwrap();
    std::os::unix::fs::symlink("a/b/big", root.join("sym")).unwrap();
    fs::set_permissions(root.join("a/b"), fs::Permissions::from_mode(0o2775)).unwrap();
    std::os::unix::fs::chown(root.join("a/small"), Some(1), Some(2)).unwrap();
    let before = common::tree_snapshot(&root, true);
    m.umount();
    m.fsck_clean();
    m.mount();
    assert_eq!(common::tree_snapshot(&root, true), before);
    assert_eq!(fs::read(root.join("sym")).unwrap(), big);
    m.umount();
}

#[test]
fn committed_layers_are_read_only_and_children_see_their_parent_but_not_their_siblings() {
    require!();
    let m = Mounted::new("1G");
    m.layer(&["create", "image"]);
    fs::write(m.layer_dir("image").join("etc"), b"v1").unwrap();
    m.layer(&["commit", "image"]);
    let err = fs::write(m.layer_dir("image").join("etc"), b"v2").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_erofs()));
    let err = fs::create_dir(m.layer_dir("image").join("new")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_erofs()));
    for c in ["c1", "c2", "c3"] {
        m.layer(&["create", c, "--parent", "image"]);
    }
    fs::write(m.layer_dir("c1").join("etc"), b"container one").unwrap();
    fs::write(m.layer_dir("c1").join("mine"), b"x").unwrap();
    assert_eq!(
        fs::read(m.layer_dir("c1").join("etc")).unwrap(),
        b"container one"
    );
    for other in ["image", "c2", "c3"] {
        assert_eq!(
            fs::read(m.layer_dir(other).join("etc")).unwrap(),
            b"v1",
            "{other} sees c1's write"
        );
        assert!(!m.layer_dir(other).join("mine").exists());
    }
    let err = fs::rename(
        m.layer_dir("c1").join("mine"),
        m.layer_dir("c2").join("mine"),
    )
    .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(18), "EXDEV across layers");
}

fn libc_erofs() -> i32 {
    30
}

#[test]
fn a_layer_removed_by_the_cli_disappears_and_a_reused_name_is_a_new_layer() {
    require!();
    let m = Mounted::new("1G");
    m.layer(&["create", "x"]);
    let dir = m.layer_dir("x");
    fs::write(dir.join("old"), b"old").unwrap();
    let ino_before = fs::metadata(dir.join("old")).unwrap().ino();
    m.layer(&["remove", "x"]);
    assert!(!dir.exists());
    assert!(fs::read(dir.join("old")).is_err());
    m.layer(&["create", "x"]);
    assert!(
        !dir.join("old").exists(),
        "a new layer of the same name is empty"
    );
    fs::write(dir.join("old"), b"new").unwrap();
    assert_ne!(fs::metadata(dir.join("old")).unwrap().ino(), ino_before);
    assert_eq!(fs::read(dir.join("old")).unwrap(), b"new");
}

#[test]
fn an_unlinked_open_file_stays_readable_until_closed_and_is_then_gone() {
    require!();
    let mut m = Mounted::new("1G");
    m.layer(&["create", "l"]);
    let path = m.layer_dir("l").join("f");
    fs::write(&path, vec![9u8; 100_000]).unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    fs::remove_file(&path).unwrap();
    assert!(!path.exists());
    f.write_all(b"appended after unlink").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 100_000);
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    let mount = m.mount_arg();
    let out = common::run_raw(&["layer", "commit", "l", &mount]);
    assert!(
        !out.status.success(),
        "a layer with an open unlinked file cannot be committed"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("still open"));
    drop(f);
    // The kernel sends the release after close returns: the commit succeeds soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !common::run_raw(&["layer", "commit", "l", &mount])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "commit still refused after close"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    m.umount();
    m.fsck_clean();
}

#[test]
fn errors_say_what_failed_and_what_to_do() {
    require!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("img");
    let mnt = dir.path().join("mnt");
    let image_s = image.to_str().unwrap();
    let mnt_s = mnt.to_str().unwrap();
    let stderr = |args: &[&str]| {
        let out = common::run_raw(args);
        assert!(!out.status.success(), "lcfs {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    fs::create_dir(&mnt).unwrap();
    assert!(
        stderr(&["mount", image_s, mnt_s]).contains("lcfs mkfs"),
        "missing image"
    );
    fs::write(&image, vec![0x5a; 4 << 20]).unwrap();
    let e = stderr(&["mount", image_s, mnt_s]);
    assert!(
        e.contains("not an lcfs image") && e.contains("lcfs mkfs"),
        "{e}"
    );
    common::run(&["mkfs", "--size", "64M", "--force", image_s]);
    assert!(
        stderr(&["mkfs", image_s]).contains("--force"),
        "mkfs over an image"
    );
    let e = stderr(&["mount", image_s, dir.path().join("nope").to_str().unwrap()]);
    assert!(e.contains("does not exist") && e.contains("mkdir"), "{e}");
    common::run(&["mount", image_s, mnt_s]);
    let mnt2 = dir.path().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let e = stderr(&["mount", image_s, mnt2.to_str().unwrap()]);
    let umount = common::run_raw(&["umount", mnt_s]);
    assert!(
        e.contains("in use by another lcfs daemon"),
        "second daemon: {e}"
    );
    assert!(umount.status.success());
    let e = stderr(&["layer", "list", "--mount", mnt_s]);
    assert!(e.contains("cannot reach") || e.contains("mount"), "{e}");
    assert!(stderr(&["bogus"]).contains("usage"));
}

#[test]
fn sigterm_checkpoints_and_unmounts() {
    require!();
    let mut m = Mounted::new("1G");
    m.layer(&["create", "l"]);
    fs::write(m.layer_dir("l").join("kept"), b"durable").unwrap();
    let (_, info, _) = paths(&m.mountpoint.canonicalize().unwrap());
    let info: serde_json::Value = serde_json::from_slice(&fs::read(info).unwrap()).unwrap();
    let pid = info["pid"].as_u64().unwrap();
    assert!(std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not exit on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    m.fsck_clean();
    m.mount();
    assert_eq!(fs::read(m.layer_dir("l").join("kept")).unwrap(), b"durable");
    m.umount();
}

/// The daemon's files for a mount point (as `control::paths`).
fn paths(mountpoint: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::ffi::OsStrExt;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in mountpoint.as_os_str().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let dir = Path::new("/run/lcfs");
    (
        dir.join(format!("{hash:016x}.sock")),
        dir.join(format!("{hash:016x}.json")),
        dir.join(format!("{hash:016x}.log")),
    )
}

/// The pid of the daemon serving `image` (its command line names the image).
fn daemon_pid(image: &Path) -> u32 {
    let wanted = image.to_str().unwrap();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.contains(&&b"--foreground"[..]) && args.contains(&wanted.as_bytes()) {
            return pid;
        }
    }
    panic!("no daemon serves {wanted}");
}

/// `VmRSS` of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The daemon gives back the memory of the dirty pages its checkpoints wrote. Found by the
/// Docker reproduction (docs/benchmarks.md): 849 to 1,062 MiB of RSS with 128 MiB of caches,
/// glibc keeping the freed pages of every writing thread's arena resident. After 384 MiB
/// written through the mount (a checkpoint at the 256 MiB dirty limit, another at fsync),
/// the daemon's RSS must fall below what the caches (64 + 64 MiB) and its buffers hold; it
/// stayed above 400 MiB before the daemon trimmed its allocator.
#[test]
fn the_daemon_gives_back_the_memory_of_pages_it_wrote() {
    require!();
    const MIB: u64 = 1 << 20;
    const RESIDENT_MAX: u64 = 200 * MIB;
    let m = Mounted::new("2G");
    m.layer(&["create", "big"]);
    let pid = daemon_pid(&m.image);
    // Nonzero bytes: all-zero pages become holes and cost nothing.
    let piece: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 + 1).collect();
    let mut file = fs::File::create(m.layer_dir("big").join("data")).unwrap();
    for _ in 0..384 {
        file.write_all(&piece).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    // The daemon looks at its allocator every second; a generous deadline for a loaded machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut resident = resident_bytes(pid);
    while resident >= RESIDENT_MAX && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        resident = resident_bytes(pid);
    }
    assert!(
        resident < RESIDENT_MAX,
        "the daemon holds {} MiB after writing 384 MiB (at most {} MiB expected)",
        resident / MIB,
        RESIDENT_MAX / MIB
    );
}
