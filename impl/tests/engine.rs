//! The engine end to end over MemDevice and FileDevice: format, mount, layers, files, clean
//! remount, fsck. Each test pins one promise of docs/operations.md or DESIGN.md §3-5.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use lcfs::fsck;
use lcfs::{
    BlockDevice, Error, FileDevice, FileType, Fs, Ino, LayerState, MemDevice, MkfsOptions,
    MountOptions, SetAttr, Timespec,
};

type TestResult = Result<(), Error>;

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 5)
}

fn fresh(blocks: u64) -> Result<(Arc<dyn BlockDevice>, Fs), Error> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(blocks));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    Ok((dev, fs))
}

fn assert_clean(dev: &Arc<dyn BlockDevice>) -> TestResult {
    let report = fsck::check(Arc::clone(dev))?;
    assert!(report.is_clean(), "{report}");
    Ok(())
}

#[test]
fn a_fresh_image_mounts_empty_and_fscks_clean() -> TestResult {
    let (dev, fs) = fresh(4096)?;
    assert!(fs.layers()?.is_empty());
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn files_survive_a_clean_remount_byte_for_byte() -> TestResult {
    let (dev, fs) = fresh(1 << 16)?;
    let base = fs.create_layer("base", None)?;
    let dir = fs.mkdir(base, Ino::ROOT, b"etc", 0o755, 0, 0, now())?;
    let file = fs.mknod(base, dir.ino, b"hosts", FileType::Regular, 0o644, 0, 1, 2, now())?;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs.write(base, file.ino, 0, &data, now())?;
    fs.write(base, file.ino, 1 << 40, b"far away", now())?;
    fs.symlink(base, Ino::ROOT, b"link", b"etc/hosts", 0, 0, now())?;
    fs.setxattr(base, file.ino, b"user.k", b"v", lcfs::XattrFlags::Any, now())?;
    let before = fs.getattr(base, file.ino)?;
    fs.unmount()?;
    assert_clean(&dev)?;

    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    assert_eq!(fs.layer_id("base")?, base);
    let again = fs.lookup(base, dir.ino, b"hosts")?;
    assert_eq!((again.size, again.mode_check()), (before.size, before.mode_check()));
    assert_eq!(fs.read(base, file.ino, 0, 100_000)?, data);
    assert_eq!(fs.read(base, file.ino, (1 << 40) - 2, 10)?, b"\0\0far away");
    assert_eq!(fs.read(base, file.ino, 200_000, 4096)?, vec![0u8; 4096], "a hole reads as zeros");
    let link = fs.lookup(base, Ino::ROOT, b"link")?;
    assert_eq!(fs.readlink(base, link.ino)?, b"etc/hosts");
    assert_eq!(fs.getxattr(base, file.ino, b"user.k")?, b"v");
    fs.unmount()?;
    assert_clean(&dev)
}

trait ModeCheck {
    fn mode_check(&self) -> (u16, u32, u32, u32);
}

impl ModeCheck for lcfs::Attr {
    fn mode_check(&self) -> (u16, u32, u32, u32) {
        (self.perm, self.uid, self.gid, self.nlink)
    }
}

#[test]
fn clones_share_the_parent_and_diverge_on_write() -> TestResult {
    let (dev, fs) = fresh(1 << 16)?;
    let base = fs.create_layer("base", None)?;
    let f = fs.mknod(base, Ino::ROOT, b"f", FileType::Regular, 0o644, 0, 0, 0, now())?;
    fs.write(base, f.ino, 0, &[7u8; 10_000], now())?;
    fs.commit_layer("base")?;
    assert!(matches!(fs.write(base, f.ino, 0, b"x", now()), Err(Error::ReadOnly)));
    let a = fs.create_layer("a", Some("base"))?;
    let b = fs.create_layer("b", Some("base"))?;
    fs.write(a, f.ino, 0, b"AAAA", now())?;
    fs.unlink(b, Ino::ROOT, b"f", now())?;
    assert_eq!(fs.read(base, f.ino, 0, 4)?, [7u8; 4]);
    assert_eq!(fs.read(a, f.ino, 0, 6)?, b"AAAA\x07\x07");
    assert!(matches!(fs.lookup(b, Ino::ROOT, b"f"), Err(Error::NotFound)));
    assert!(matches!(fs.remove_layer("base"), Err(Error::Busy(_))));
    assert_eq!(fs.layer("base")?.children, 2);
    assert_eq!(fs.layer("a")?.state, LayerState::Writable);
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn removing_every_layer_gives_back_every_block() -> TestResult {
    let (dev, fs) = fresh(1 << 16)?;
    let empty = fs.statfs().blocks_free;
    let base = fs.create_layer("base", None)?;
    for i in 0..200u32 {
        let name = format!("file{i}");
        let a = fs.mknod(base, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now())?;
        fs.write(base, a.ino, 0, &vec![i as u8 + 1; 5000], now())?;
    }
    fs.commit_layer("base")?;
    for c in 0..5 {
        let id = fs.create_layer(&format!("c{c}"), Some("base"))?;
        let a = fs.lookup(id, Ino::ROOT, b"file3")?;
        fs.write(id, a.ino, 100, b"changed", now())?;
        fs.setattr(id, a.ino, &SetAttr { size: Some(1), ..Default::default() }, now())?;
    }
    fs.sync()?;
    // A layer with changes since the last checkpoint (dirty nodes, dirty pages) goes too.
    let a = fs.lookup(fs.layer_id("c4")?, Ino::ROOT, b"file9")?;
    fs.write(fs.layer_id("c4")?, a.ino, 0, &[1u8; 50_000], now())?;
    fs.unlink(fs.layer_id("c3")?, Ino::ROOT, b"file9", now())?;
    for c in 0..5 {
        fs.remove_layer(&format!("c{c}"))?;
    }
    fs.remove_layer("base")?;
    fs.sync()?;
    assert_eq!(fs.statfs().blocks_free, empty, "every block came back");
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn zeroed_truncated_and_foreign_images_are_refused_with_clear_errors() -> TestResult {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(4096));
    let err = Fs::mount(Arc::clone(&dev), &MountOptions::default()).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::NotLcfs(_)), "zeroed: {err}");
    dev.write(0, &[0x5a; 4096])?;
    dev.write(1, &[0x5a; 4096])?;
    let err = Fs::mount(Arc::clone(&dev), &MountOptions::default()).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::NotLcfs(_)), "foreign: {err}");

    let dir = tempfile::tempdir().map_err(|e| Error::Io(e.into()))?;
    let path = dir.path().join("img");
    let file: Arc<dyn BlockDevice> = Arc::new(FileDevice::create(&path, 64 << 20)?);
    Fs::mkfs(Arc::clone(&file), &MkfsOptions::default())?;
    drop(file);
    let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| Error::Io(e.into()))?;
    f.set_len(16 << 20).map_err(|e| Error::Io(e.into()))?;
    let short: Arc<dyn BlockDevice> = Arc::new(FileDevice::open(&path)?);
    let err = Fs::mount(short, &MountOptions::default()).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("formatted for"), "truncated: {err}");
    Ok(())
}

#[test]
fn the_newest_valid_superblock_wins_and_a_damaged_one_is_skipped() -> TestResult {
    let (dev, fs) = fresh(4096)?;
    fs.create_layer("one", None)?;
    let generation = fs.generation();
    fs.unmount()?;
    // Damage the newest slot (the unmount's, generation + 1): mount falls back to the older.
    let slot_generation = |slot: u64| -> Result<u64, Error> {
        let mut buf = vec![0u8; 4096];
        dev.read(slot, &mut buf)?;
        Ok(lcfs::format::superblock::Superblock::decode(&buf, lcfs::BlockNo(slot), 4096)?.generation.0)
    };
    let newest = if slot_generation(0)? > slot_generation(1)? { 0 } else { 1 };
    assert_eq!(slot_generation(newest)?, generation.0 + 1);
    let mut buf = vec![0u8; 4096];
    dev.read(newest, &mut buf)?;
    if let Some(b) = buf.get_mut(100) {
        *b ^= 0xff;
    }
    dev.write(newest, &buf)?;
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    assert_eq!(fs.recovered_generation(), generation);
    assert!(fs.layer("one").is_ok());
    Ok(())
}

#[test]
fn a_full_device_refuses_writes_and_keeps_working() -> TestResult {
    let (dev, fs) = fresh(1024)?;
    let base = fs.create_layer("base", None)?;
    let f = fs.mknod(base, Ino::ROOT, b"big", FileType::Regular, 0o644, 0, 0, 0, now())?;
    let chunk = vec![0x77u8; 64 * 1024];
    let mut written = 0u64;
    let err = loop {
        match fs.write(base, f.ino, written, &chunk, now()) {
            Ok(n) => written += u64::from(n),
            Err(e) => break e,
        }
        assert!(written < 8 << 20, "a 4 MiB device took {written} bytes");
    };
    assert!(matches!(err, Error::NoSpace), "{err}");
    assert!(written > 1 << 20, "only {written} bytes fit");
    // Everything accepted is durable, and removing the file gives the space back.
    fs.sync()?;
    assert_eq!(fs.read(base, f.ino, written - 4, 4)?, vec![0x77u8; 4]);
    fs.unlink(base, Ino::ROOT, b"big", now())?;
    fs.sync()?;
    let g = fs.mknod(base, Ino::ROOT, b"again", FileType::Regular, 0o644, 0, 0, 0, now())?;
    fs.write(base, g.ino, 0, &chunk, now())?;
    fs.unmount()?;
    assert_clean(&dev)
}

#[test]
fn thousands_of_layers_come_and_go_through_the_bounded_layer_table() -> TestResult {
    let (dev, fs) = fresh(1 << 16)?;
    let base = fs.create_layer("base", None)?;
    let f = fs.mknod(base, Ino::ROOT, b"f", FileType::Regular, 0o644, 0, 0, 0, now())?;
    fs.write(base, f.ino, 0, b"shared", now())?;
    fs.commit_layer("base")?;
    for i in 0..2500 {
        let id = fs.create_layer(&format!("c{i}"), Some("base"))?;
        if i % 2 == 0 {
            fs.write(id, f.ino, 0, format!("{i:06}").as_bytes(), now())?;
        }
    }
    for i in (0..2500).step_by(97) {
        let id = fs.layer_id(&format!("c{i}"))?;
        let want = if i % 2 == 0 { format!("{i:06}") } else { "shared".into() };
        assert_eq!(fs.read(id, f.ino, 0, 6)?, want.as_bytes());
    }
    assert_eq!(fs.layers()?.len(), 2501);
    fs.unmount()?;
    assert_clean(&dev)
}
