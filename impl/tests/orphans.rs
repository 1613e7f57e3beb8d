//! Open-but-unlinked files (POSIX: readable and writable until the last close), through the
//! engine API: `Fs::open`/`Fs::release` count handles; unlink, rmdir and rename over an open
//! inode keep it as an orphan (nlink 0, an orphan item); the last release deletes it; a crash
//! leaves orphan items that fsck accepts and the next mount sweeps; a committed layer never
//! holds an orphan. Callers that never open see docs/operations.md unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use lcfs::fsck;
use lcfs::{
    BlockDevice, Error, FileType, Fs, Ino, LayerId, MemDevice, MkfsOptions, MountOptions,
    RenameFlags, Timespec,
};

type TestResult = Result<(), Error>;

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 7)
}

fn fresh() -> Result<(Arc<dyn BlockDevice>, Fs, LayerId), Error> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(1 << 14));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    let layer = fs.create_layer("l", None)?;
    Ok((dev, fs, layer))
}

fn assert_clean(dev: &Arc<dyn BlockDevice>) -> TestResult {
    let report = fsck::check(Arc::clone(dev))?;
    assert!(report.is_clean(), "{report}");
    Ok(())
}

fn file(fs: &Fs, layer: LayerId, name: &[u8], data: &[u8]) -> Result<Ino, Error> {
    let a = fs.mknod(
        layer,
        Ino::ROOT,
        name,
        FileType::Regular,
        0o644,
        0,
        0,
        0,
        now(),
    )?;
    fs.write(layer, a.ino, 0, data, now())?;
    Ok(a.ino)
}

#[test]
fn an_unlinked_open_file_stays_readable_and_writable_until_release() -> TestResult {
    let (dev, fs, l) = fresh()?;
    let ino = file(&fs, l, b"f", &vec![7u8; 10_000])?;
    fs.open(l, ino)?;
    fs.open(l, ino)?;
    fs.unlink(l, Ino::ROOT, b"f", now())?;
    assert!(matches!(
        fs.lookup(l, Ino::ROOT, b"f"),
        Err(Error::NotFound)
    ));
    assert_eq!(fs.getattr(l, ino)?.nlink, 0);
    assert_eq!(fs.read(l, ino, 0, 10_000)?, vec![7u8; 10_000]);
    fs.write(l, ino, 10_000, b"more", now())?;
    fs.checkpoint()?;
    assert_eq!(fs.orphans(l)?, vec![ino]);
    assert_eq!(fs.read(l, ino, 9_998, 10)?, b"\x07\x07more");
    fs.release(l, ino)?;
    assert_eq!(fs.getattr(l, ino)?.size, 10_004, "one handle is still open");
    fs.release(l, ino)?;
    assert!(matches!(fs.getattr(l, ino), Err(Error::NotFound)));
    assert!(fs.orphans(l)?.is_empty());
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn a_file_that_is_not_open_is_deleted_at_once_as_before() -> TestResult {
    let (_dev, fs, l) = fresh()?;
    let ino = file(&fs, l, b"f", b"x")?;
    fs.unlink(l, Ino::ROOT, b"f", now())?;
    assert!(matches!(fs.getattr(l, ino), Err(Error::NotFound)));
    assert!(fs.orphans(l)?.is_empty());
    assert!(matches!(fs.release(l, ino), Err(Error::InvalidArgument(_))));
    Ok(())
}

#[test]
fn a_hard_link_keeps_the_inode_linked_and_no_orphan_is_made() -> TestResult {
    let (_dev, fs, l) = fresh()?;
    let ino = file(&fs, l, b"f", b"x")?;
    fs.link(l, ino, Ino::ROOT, b"g", now())?;
    fs.open(l, ino)?;
    fs.unlink(l, Ino::ROOT, b"f", now())?;
    assert_eq!(fs.getattr(l, ino)?.nlink, 1);
    assert!(fs.orphans(l)?.is_empty());
    fs.release(l, ino)?;
    assert_eq!(fs.lookup(l, Ino::ROOT, b"g")?.ino, ino);
    Ok(())
}

#[test]
fn rename_over_an_open_file_and_rmdir_of_an_open_directory_keep_them() -> TestResult {
    let (dev, fs, l) = fresh()?;
    let target = file(&fs, l, b"target", b"old bytes")?;
    file(&fs, l, b"src", b"new")?;
    let dir = fs.mkdir(l, Ino::ROOT, b"d", 0o755, 0, 0, now())?.ino;
    fs.open(l, target)?;
    fs.open(l, dir)?;
    fs.rename(
        l,
        Ino::ROOT,
        b"src",
        Ino::ROOT,
        b"target",
        RenameFlags::default(),
        now(),
    )?;
    fs.rmdir(l, Ino::ROOT, b"d", now())?;
    assert_eq!(fs.read(l, target, 0, 100)?, b"old bytes");
    assert!(fs.readdir(l, dir, None, 10)?.is_empty());
    assert_eq!(
        fs.getattr(l, Ino::ROOT)?.nlink,
        2,
        "the parent lost its subdirectory"
    );
    let mut orphans = fs.orphans(l)?;
    orphans.sort();
    assert_eq!(orphans, vec![target, dir]);
    fs.checkpoint()?;
    assert_clean(&dev)?;
    fs.release(l, dir)?;
    fs.release(l, target)?;
    assert!(fs.orphans(l)?.is_empty());
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn a_crash_leaves_orphans_that_fsck_accepts_and_the_next_mount_sweeps() -> TestResult {
    let (dev, fs, l) = fresh()?;
    let ino = file(&fs, l, b"f", &vec![1u8; 50_000])?;
    fs.checkpoint()?;
    let free_before = fs.statfs().blocks_free;
    fs.open(l, ino)?;
    fs.unlink(l, Ino::ROOT, b"f", now())?;
    fs.checkpoint()?;
    // A crash: the engine goes away without unmount; the device keeps the last checkpoint.
    drop(fs);
    assert_clean(&dev)?;
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    assert!(fs.orphans(l)?.is_empty(), "the mount swept the orphan");
    assert!(matches!(fs.getattr(l, ino), Err(Error::NotFound)));
    fs.checkpoint()?;
    fs.checkpoint()?;
    assert!(
        fs.statfs().blocks_free > free_before,
        "the orphan's data blocks came back"
    );
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn a_clean_unmount_deletes_orphans_still_open() -> TestResult {
    let (dev, fs, l) = fresh()?;
    let ino = file(&fs, l, b"f", b"x")?;
    fs.open(l, ino)?;
    fs.unlink(l, Ino::ROOT, b"f", now())?;
    fs.unmount()?;
    assert_clean(&dev)?;
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    assert!(fs.orphans(l)?.is_empty());
    assert!(matches!(fs.getattr(l, ino), Err(Error::NotFound)));
    Ok(())
}

#[test]
fn commit_refuses_while_an_orphan_is_open_then_succeeds_after_release() -> TestResult {
    let (dev, fs, l) = fresh()?;
    let ino = file(&fs, l, b"f", b"x")?;
    fs.open(l, ino)?;
    fs.unlink(l, Ino::ROOT, b"f", now())?;
    assert!(matches!(fs.commit_layer("l"), Err(Error::Busy(_))));
    fs.release(l, ino)?;
    fs.commit_layer("l")?;
    let child = fs.create_layer("child", Some("l"))?;
    assert!(matches!(fs.getattr(child, ino), Err(Error::NotFound)));
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn a_release_after_the_layer_was_removed_does_nothing() -> TestResult {
    let (dev, fs, l) = fresh()?;
    let ino = file(&fs, l, b"f", b"x")?;
    fs.open(l, ino)?;
    fs.unlink(l, Ino::ROOT, b"f", now())?;
    fs.remove_layer("l")?;
    fs.release(l, ino)?;
    fs.unmount()?;
    assert_clean(&dev)
}
