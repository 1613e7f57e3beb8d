//! Named regressions found by the fuzz targets (`fuzz/`, see docs/testing.md "Fuzzing"). Each
//! test says which target found it and how, and rebuilds the damage through the public API
//! (so it survives format changes that would make a saved input meaningless).
//!
//! A test marked `#[ignore]` pins a finding in code that another change is rewriting; the
//! reason says where the fix belongs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use lcfs::format::header::{BLOCK_SIZE, MAGIC};
use lcfs::tree::{Node, NodeRef};
use lcfs::{BlockDevice, BlockNo, FileType, Fs, Ino, MemDevice, MkfsOptions, MountOptions};

/// Blocks of the devices here, as the `image` target's.
const IMAGE_BLOCKS: u64 = 512;

/// Recomputes the header checksum of a block that carries the magic.
fn reseal(block: &mut [u8]) {
    if block[..4] != MAGIC.to_le_bytes() {
        return;
    }
    block[32..36].fill(0);
    let crc = crc32c::crc32c(block);
    block[32..36].copy_from_slice(&crc.to_le_bytes());
}

/// Runs `f` on another thread and fails if it takes longer than `limit` (a hang is a failure,
/// not a test that never ends).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| panic!("still running after {limit:?}: a hang"))
}

/// Found by the `image` target (a timeout in its first 20 s run, minimized with `cargo fuzz
/// tmin`; the input was in the format before pointers carried generations, so the same damage
/// is rebuilt here): a layer tree whose last leaf holds keys below its separator (here a
/// copy of the first leaf) made `Tree::range` return keys at or below the bound it was asked
/// to start after, so fsck's namespace walk and readdir, which page by the last key they saw,
/// read the same items for ever.
#[test]
fn a_leaf_with_keys_outside_its_separators_ends_the_scan_with_an_error() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    let layer = fs.create_layer("big", None).unwrap();
    let t = lcfs::Timespec::new(1, 0);
    for i in 0..150 {
        let name = format!("file-with-a-longish-name-{i:04}");
        fs.mknod(layer, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, t).unwrap();
    }
    fs.unmount().unwrap();
    // The layer's internal node, and its first two leaves.
    let mut buf = vec![0u8; BLOCK_SIZE];
    let (first, last) = (0..IMAGE_BLOCKS)
        .find_map(|b| {
            dev.read(b, &mut buf).ok()?;
            let node = Node::decode(&buf, BlockNo(b)).ok()?;
            let leaves: Vec<u64> = node
                .children()
                .filter_map(|(_, child)| match child {
                    NodeRef::Disk(ptr) => Some(ptr.block.0),
                    NodeRef::Mem(_) => None,
                })
                .collect();
            (node.owner() == layer && leaves.len() >= 2).then_some(())?;
            Some((*leaves.first()?, *leaves.last()?))
        })
        .expect("a layer tree of two levels");
    // The last leaf gets the first one's items; its header keeps its own block number and
    // generation, so its parent's pointer still accepts it. A scan that pages by the last key
    // it saw then ends every page inside the first leaf's range and starts over.
    let mut copy = vec![0u8; BLOCK_SIZE];
    dev.read(first, &mut copy).unwrap();
    dev.read(last, &mut buf).unwrap();
    copy[8..24].copy_from_slice(&buf[8..24]);
    reseal(&mut copy);
    dev.write(last, &copy).unwrap();
    let report = within(Duration::from_secs(60), move || {
        let report = lcfs::fsck::check(Arc::clone(&dev)).unwrap();
        let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
        let mut after: Option<Vec<u8>> = None;
        while let Ok(page) = fs.readdir(layer, Ino::ROOT, after.as_deref(), 16) {
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
        }
        report
    });
    assert!(!report.is_clean(), "the image is damaged: {report}");
}

/// The block of the newest superblock of `dev`, and that block's bytes.
fn newest_superblock(dev: &Arc<dyn BlockDevice>) -> (u64, Vec<u8>) {
    let mut best = (0, vec![0u8; BLOCK_SIZE], 0u64);
    for slot in [0u64, 1] {
        let mut buf = vec![0u8; BLOCK_SIZE];
        dev.read(slot, &mut buf).unwrap();
        let generation = u64::from_le_bytes(buf[16..24].try_into().unwrap());
        if buf[..4] == MAGIC.to_le_bytes() && generation >= best.2 {
            best = (slot, buf, generation);
        }
    }
    (best.0, best.1)
}

/// Found by the `records` target (the superblock round trip, in its first seconds): a label
/// that is not UTF-8 decodes lossily, each bad byte becoming the 3-byte U+FFFD, so a 64-byte
/// label can come back as up to 192 bytes; the next checkpoint's `Superblock::encode` then
/// asserts (`label checked at mkfs`) and the engine panics on bytes it read. The `image`
/// target reaches it through mount and checkpoint.
#[test]
fn a_label_that_is_not_utf8_is_refused_or_kept_not_a_panic() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions { label: "x".into() }).unwrap();
    let (slot, mut block) = newest_superblock(&dev);
    // The label is the 64 bytes at payload offset 64 (block offset 48 + 64).
    block[112..176].fill(0xff);
    reseal(&mut block);
    dev.write(slot, &block).unwrap();
    let mut buf = vec![0u8; BLOCK_SIZE];
    dev.read(slot, &mut buf).unwrap();
    let err = lcfs::format::superblock::Superblock::decode(&buf, BlockNo(slot), IMAGE_BLOCKS)
        .expect_err("a label that is not UTF-8");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    // Mount skips the damaged slot like any other that fails to decode, or refuses the image.
    if let Ok(fs) = Fs::mount(Arc::clone(&dev), &MountOptions::default()) {
        assert_eq!(fs.label(), "x");
        fs.checkpoint().unwrap();
    }
}

/// Found by the `image` target: a superblock whose generation is `u64::MAX` mounted, and the
/// next checkpoint's `generation + 1` overflowed (a panic with overflow checks). Generations
/// beyond `GENERATION_MAX` are damage.
#[test]
fn a_generation_at_the_end_of_the_range_is_refused_not_overflowed() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    patch_superblock(&dev, |block| {
        // The header's generation and the stamp that opens every later 512-byte sector.
        for at in [16].into_iter().chain((512..BLOCK_SIZE).step_by(512)) {
            block[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        }
    });
    let (slot, buf) = newest_superblock(&dev);
    let err = lcfs::format::superblock::Superblock::decode(&buf, BlockNo(slot), IMAGE_BLOCKS)
        .expect_err("generation u64::MAX");
    assert!(err.to_string().contains("beyond any"), "{err}");
    if let Ok(fs) = Fs::mount(Arc::clone(&dev), &MountOptions::default()) {
        fs.checkpoint().unwrap();
        assert!(fs.generation().0 < lcfs::format::superblock::GENERATION_MAX);
    }
}

/// Found by the `image` target ("fsck says the image is clean, but a walk fails": read of a
/// file: "extent ending at block 274877906944000 is out of range"): an extent item whose key
/// names a last file block past the largest file passed fsck, while every read of the file
/// refused it. fsck now applies the read path's bounds to every extent item.
#[test]
fn an_extent_past_the_largest_file_is_reported_by_fsck() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    let layer = fs.create_layer("base", None).unwrap();
    let t = lcfs::Timespec::new(1, 0);
    let file = fs.mknod(layer, Ino::ROOT, b"f", FileType::Regular, 0o644, 0, 0, 0, t).unwrap();
    fs.write(layer, file.ino, 0, &[7; 5000], t).unwrap();
    fs.unmount().unwrap();
    assert!(lcfs::fsck::check(Arc::clone(&dev)).unwrap().is_clean());
    // The file's one extent covers file blocks 0..=1; its key ends with the last one.
    let key = lcfs::format::records::extent_key(file.ino, 1);
    let mut buf = vec![0u8; BLOCK_SIZE];
    let (block, at) = (0..IMAGE_BLOCKS)
        .find_map(|b| {
            dev.read(b, &mut buf).ok()?;
            Node::decode(&buf, BlockNo(b)).ok()?;
            Some((b, buf.windows(key.len()).position(|w| w == key.as_slice())?))
        })
        .expect("the leaf holding the extent");
    dev.read(block, &mut buf).unwrap();
    let huge = lcfs::ns::FILE_BLOCKS_MAX + 5;
    buf[at + key.len() - 8..at + key.len()].copy_from_slice(&huge.to_be_bytes());
    reseal(&mut buf);
    dev.write(block, &buf).unwrap();
    let report = lcfs::fsck::check(Arc::clone(&dev)).unwrap();
    assert!(!report.is_clean(), "an extent past the largest file: {report}");
    let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
    assert!(fs.read(layer, file.ino, 0, 10).is_err(), "reads refuse it too");
}

/// Found by the `image` target ("fsck says the image is clean, but a walk fails": "readdir
/// says Ino(13) Symlink, lookup says Ino(13) Regular"): a directory entry whose file type
/// differs from its inode's passed fsck, while readdir and lookup disagreed about the file.
/// fsck now reports `EntryKindMismatch`.
#[test]
fn an_entry_that_gives_its_inode_another_type_is_reported_by_fsck() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    let layer = fs.create_layer("base", None).unwrap();
    let t = lcfs::Timespec::new(1, 0);
    fs.mknod(layer, Ino::ROOT, b"f", FileType::Regular, 0o644, 0, 0, 0, t).unwrap();
    fs.unmount().unwrap();
    // The entry's value follows its key in the leaf: the child (8 bytes), then the type code.
    let key = lcfs::format::records::dir_entry_key(Ino::ROOT, b"f");
    let mut buf = vec![0u8; BLOCK_SIZE];
    let (block, at) = (0..IMAGE_BLOCKS)
        .find_map(|b| {
            dev.read(b, &mut buf).ok()?;
            Node::decode(&buf, BlockNo(b)).ok()?;
            Some((b, buf.windows(key.len()).position(|w| w == key.as_slice())?))
        })
        .expect("the leaf holding the entry");
    dev.read(block, &mut buf).unwrap();
    let code = at + key.len() + 8;
    buf[code] = lcfs::format::records::type_code(FileType::Symlink);
    reseal(&mut buf);
    dev.write(block, &buf).unwrap();
    let report = lcfs::fsck::check(dev).unwrap();
    assert!(report.kinds().contains(&lcfs::fsck::IssueKind::EntryKindMismatch), "{report}");
}

/// Overwrites the `len` bytes at `offset` in the value of the item whose key is `key`, in the
/// first tree node of `dev` that holds it (a leaf entry is key then value), and reseals.
fn patch_value(dev: &Arc<dyn BlockDevice>, key: &[u8], offset: usize, bytes: &[u8]) {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let (block, at) = (0..IMAGE_BLOCKS)
        .find_map(|b| {
            dev.read(b, &mut buf).ok()?;
            Node::decode(&buf, BlockNo(b)).ok()?;
            Some((b, buf.windows(key.len()).position(|w| w == key)?))
        })
        .expect("the leaf holding the item");
    dev.read(block, &mut buf).unwrap();
    let start = at + key.len() + offset;
    buf[start..start + bytes.len()].copy_from_slice(bytes);
    reseal(&mut buf);
    dev.write(block, &buf).unwrap();
}

/// Found by the `image` target ("fsck says the image is clean, but a walk fails": "readlink
/// Ino(9): symlink 9 target does not match its size"): fsck did not read symlink targets.
/// It now checks them as readlink does: chunks in order, full but the last, adding up to the
/// inode's size.
#[test]
fn a_symlink_whose_size_is_not_its_targets_is_reported_by_fsck() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    let layer = fs.create_layer("base", None).unwrap();
    let t = lcfs::Timespec::new(1, 0);
    let link = fs.symlink(layer, Ino::ROOT, b"s", b"abc", 0, 0, t).unwrap();
    fs.unmount().unwrap();
    // The inode record's size field is at offset 24.
    patch_value(&dev, &lcfs::format::records::inode_key(link.ino), 24, &5u64.to_le_bytes());
    let report = lcfs::fsck::check(Arc::clone(&dev)).unwrap();
    assert!(!report.is_clean(), "a symlink of 3 bytes with size 5: {report}");
    let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
    assert!(fs.readlink(layer, link.ino).is_err(), "readlink refuses it too");
}

/// Found by the `image` target ("fsck says the image is clean, but it does not mount", and
/// clean images where listing or creating layers failed with ENOENT): fsck did not read the
/// layer table's name index. It now checks that every record is filed under its own id and
/// named by exactly one index entry that names it back.
#[test]
fn a_name_index_entry_without_its_layer_is_reported_by_fsck() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    fs.create_layer("a", None).unwrap();
    fs.unmount().unwrap();
    patch_value(&dev, &lcfs::layer::name_key("a"), 0, &99u64.to_le_bytes());
    let report = lcfs::fsck::check(Arc::clone(&dev)).unwrap();
    assert!(report.kinds().contains(&lcfs::fsck::IssueKind::LayerTree), "{report}");
}

/// The newest superblock of `dev`, changed by `f` and resealed in place.
fn patch_superblock(dev: &Arc<dyn BlockDevice>, f: impl FnOnce(&mut [u8])) {
    let (slot, mut block) = newest_superblock(dev);
    f(&mut block);
    reseal(&mut block);
    dev.write(slot, &block).unwrap();
}

/// Found by the `image` target ("double free of 18+1", an `assert!` in `Space::release`): on
/// an image whose free map also lists a block a layer's tree uses (fsck reports
/// BlockFreeAndUsed), a write that copies that node releases its block and the engine panics
/// on what it read instead of returning `Corrupt`.
#[test]
fn a_block_both_free_and_used_is_an_error_not_a_panic() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(IMAGE_BLOCKS));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    let layer = fs.create_layer("base", None).unwrap();
    let t = lcfs::Timespec::new(1, 0);
    fs.mknod(layer, Ino::ROOT, b"f", FileType::Regular, 0o644, 0, 0, 0, t).unwrap();
    fs.unmount().unwrap();
    // The layer's root leaf: of the nodes the layer owns, the one written last (older copies
    // are free already).
    let mut buf = vec![0u8; BLOCK_SIZE];
    let leaf = (0..IMAGE_BLOCKS)
        .filter_map(|b| {
            dev.read(b, &mut buf).ok()?;
            let node = Node::decode(&buf, BlockNo(b)).ok()?;
            let generation = u64::from_le_bytes(buf[16..24].try_into().unwrap());
            (node.owner() == layer).then_some((generation, b))
        })
        .max()
        .map(|(_, b)| b)
        .expect("the layer's leaf");
    // Add it to the free map's first block as one more extent, and count it in the superblock.
    let (_, sb) = newest_superblock(&dev);
    let head = u64::from_le_bytes(sb[48 + 32..48 + 40].try_into().unwrap());
    dev.read(head, &mut buf).unwrap();
    let count = u32::from_le_bytes(buf[48 + 8..48 + 12].try_into().unwrap()) as usize;
    let at = 48 + 16 + 16 * count;
    buf[at..at + 8].copy_from_slice(&leaf.to_le_bytes());
    buf[at + 8..at + 16].copy_from_slice(&1u64.to_le_bytes());
    buf[48 + 8..48 + 12].copy_from_slice(&(count as u32 + 1).to_le_bytes());
    reseal(&mut buf);
    dev.write(head, &buf).unwrap();
    patch_superblock(&dev, |block| {
        let free = u64::from_le_bytes(block[48 + 48..48 + 56].try_into().unwrap());
        block[48 + 48..48 + 56].copy_from_slice(&(free + 1).to_le_bytes());
    });
    let report = lcfs::fsck::check(Arc::clone(&dev)).unwrap();
    assert!(report.kinds().contains(&lcfs::fsck::IssueKind::BlockFreeAndUsed), "{report}");
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    // The mount's own checkpoint (it reserves generations) wrote the state it found.
    let before = dev_snapshot(&dev);
    let _ = fs.mknod(layer, Ino::ROOT, b"g", FileType::Regular, 0o644, 0, 0, 0, t);
    let err = fs.checkpoint().expect_err("a checkpoint over a block both free and used");
    assert_eq!(err.errno(), 117, "EUCLEAN: {err}");
    assert!(err.to_string().contains("both free and in use"), "{err}");
    drop(fs);
    // Nothing was written over the durable image after the damage showed.
    assert!(dev_snapshot(&dev) == before, "the damaged image changed");
}

/// Every block of `dev`.
fn dev_snapshot(dev: &Arc<dyn BlockDevice>) -> Vec<u8> {
    let mut all = vec![0u8; IMAGE_BLOCKS as usize * BLOCK_SIZE];
    for (b, chunk) in all.chunks_exact_mut(BLOCK_SIZE).enumerate() {
        dev.read(b as u64, chunk).unwrap();
    }
    all
}
