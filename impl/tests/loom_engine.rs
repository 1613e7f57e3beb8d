//! Loom models of the engine's locking protocol, on the real `Fs` over `MemDevice` (run with
//! `RUSTFLAGS="--cfg loom" cargo test -p lcfs --release loom`; empty otherwise).
//!
//! The protocol today: one lock around the engine's whole state (`fs/mod.rs`, from
//! `impl/src/sync.rs`), taken by every operation and held through a checkpoint; the caches
//! have their own locks inside it. The models let loom run every interleaving of these locks
//! between a few threads (exhaustively: no preemption bound; a few hundred executions each)
//! and check what callers may observe:
//! - a checkpoint against a writer and a reader: the reader sees the file before or after the
//!   write, never anything else; the image the checkpoint left holds one of the two states,
//!   passes fsck, and is exactly the state at the checkpoint (nothing reaches the device
//!   between checkpoints, so a later write does not show in it);
//! - a layer removal against reads in that layer: a read returns the layer's bytes or
//!   "not found", never a corruption or another layer's bytes; afterwards fsck is clean;
//! - concurrent creates and writes against a layer creation: distinct inode numbers, layer ids
//!   and blocks (fsck finds nothing used twice).
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use lcfs::{BlockDevice, Error, FileType, Fs, Ino, LayerId, MemDevice, MkfsOptions, MountOptions};
use loom::thread;

const OLD: &[u8] = b"old!";
const NEW: &[u8] = b"new!";

/// Tiny caches (every read goes through fills and eviction) and no dirty-limit checkpoint.
fn options() -> MountOptions {
    MountOptions { node_cache_blocks: 2, data_cache_blocks: 2, dirty_limit_bytes: 1 << 30 }
}

fn t() -> lcfs::Timespec {
    lcfs::Timespec::new(1_700_000_000, 0)
}

/// Caches as large as the device (256 blocks): after its first load every block stays cached.
/// For models in which two layers are dirty at one checkpoint: the checkpoint takes the
/// layers in the order of the engine's `HashMap` of open layers, which is random per map
/// (std's `RandomState`) and so differs between loom's executions. With tiny caches that
/// order changes which reads hit or miss, hence how many times the cache locks are taken, and
/// loom, replaying a recorded schedule over a different sequence of lock operations, resumes
/// a thread that is still blocked ("expected to be able to acquire lock", on a varying
/// execution). With every block cached after its first load, the sequence of lock operations
/// no longer depends on that order and each execution replays exactly.
fn roomy_options() -> MountOptions {
    MountOptions { node_cache_blocks: 256, data_cache_blocks: 256, dirty_limit_bytes: 1 << 30 }
}

/// A formatted device with layer "base" holding file "f" = OLD, checkpointed.
fn setup() -> (Arc<MemDevice>, Arc<Fs>, LayerId, Ino) {
    setup_with(&options())
}

/// `setup`, mounted with `opts`.
fn setup_with(opts: &MountOptions) -> (Arc<MemDevice>, Arc<Fs>, LayerId, Ino) {
    let dev = Arc::new(MemDevice::new(256));
    Fs::mkfs(dev.clone(), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(dev.clone(), opts).unwrap();
    let base = fs.create_layer("base", None).unwrap();
    let f = fs.mknod(base, Ino::ROOT, b"f", FileType::Regular, 0o644, 0, 0, 0, t()).unwrap().ino;
    fs.write(base, f, 0, OLD, t()).unwrap();
    fs.checkpoint().unwrap();
    (dev, Arc::new(fs), base, f)
}

/// The content of `f` in the image `dev` holds now, after fsck says the image is clean.
fn durable_content(dev: &MemDevice, layer: LayerId, f: Ino) -> Vec<u8> {
    let image: Arc<dyn BlockDevice> = Arc::new(dev.snapshot());
    let report = lcfs::fsck::check(Arc::clone(&image)).unwrap();
    assert!(report.is_clean(), "{report}");
    let fs = Fs::mount(image, &options()).unwrap();
    fs.read(layer, f, 0, 16).unwrap()
}

#[test]
fn loom_a_checkpoint_against_a_writer_and_a_reader() {
    loom::model(|| {
        let (dev, fs, base, f) = setup();
        let writer = {
            let fs = Arc::clone(&fs);
            thread::spawn(move || assert_eq!(fs.write(base, f, 0, NEW, t()).unwrap(), 4))
        };
        let checkpointer = {
            let (fs, dev) = (Arc::clone(&fs), Arc::clone(&dev));
            thread::spawn(move || {
                let generation = fs.checkpoint().unwrap();
                // The image at this moment is that checkpoint, whatever runs meanwhile.
                (generation, durable_content(&dev, base, f))
            })
        };
        let seen = fs.read(base, f, 0, 16).unwrap();
        assert!(seen == OLD || seen == NEW, "the reader saw {seen:?}");
        writer.join().unwrap();
        let (generation, durable) = checkpointer.join().unwrap();
        assert!(durable == OLD || durable == NEW, "checkpoint {generation:?} holds {durable:?}");
        assert_eq!(fs.read(base, f, 0, 16).unwrap(), NEW);
        fs.checkpoint().unwrap();
        assert_eq!(durable_content(&dev, base, f), NEW);
    });
}

#[test]
fn loom_a_layer_removal_against_reads_in_it() {
    loom::model(|| {
        let (dev, fs, base, f) = setup();
        fs.commit_layer("base").unwrap();
        let child = fs.create_layer("child", Some("base")).unwrap();
        fs.write(child, f, 0, NEW, t()).unwrap();
        let remover = {
            let fs = Arc::clone(&fs);
            thread::spawn(move || fs.remove_layer("child").unwrap())
        };
        match fs.read(child, f, 0, 16) {
            Ok(bytes) => assert_eq!(bytes, NEW, "a read in the child"),
            Err(Error::NotFound | Error::Stale) => {}
            Err(e) => panic!("a read racing a removal failed with {e}"),
        }
        assert_eq!(fs.read(base, f, 0, 16).unwrap(), OLD, "the parent is untouched");
        remover.join().unwrap();
        assert!(fs.layer_id("child").is_err());
        let fs = Arc::try_unwrap(fs).expect("the threads are done");
        fs.unmount().unwrap();
        let report = lcfs::fsck::check(dev).unwrap();
        assert!(report.is_clean(), "{report}");
    });
}

/// Inode and block allocation: a thread creates a file and writes a block to it while the
/// main thread creates a layer and a file of its own and writes to it. Every interleaving
/// hands out distinct inode numbers and layer ids, both files hold their own bytes, and after
/// a clean unmount fsck finds no block used twice. (Three threads with checkpoints in each
/// ran past 20 minutes; two keep the model exhaustive and short.) When the creator's file
/// is made before the layer, the layer creation's checkpoint finds two dirty layers: the
/// model mounts with `roomy_options` so that loom's executions stay deterministic.
#[test]
fn loom_concurrent_creates_get_distinct_inodes_and_blocks() {
    loom::model(|| {
        let (dev, fs, base, _) = setup_with(&roomy_options());
        let creator = {
            let fs = Arc::clone(&fs);
            thread::spawn(move || {
                let ino = fs
                    .mknod(base, Ino::ROOT, b"x", FileType::Regular, 0o644, 0, 0, 0, t())
                    .unwrap()
                    .ino;
                fs.write(base, ino, 0, &[b'x'; 4096], t()).unwrap();
                ino
            })
        };
        let other = fs.create_layer("other", None).unwrap();
        let y = fs.mknod(base, Ino::ROOT, b"y", FileType::Regular, 0o644, 0, 0, 0, t()).unwrap().ino;
        fs.write(base, y, 0, &[b'y'; 4096], t()).unwrap();
        let x = creator.join().unwrap();
        assert_ne!(x, y, "two creates got the same inode number");
        assert_ne!(other, base, "a new layer got an existing id");
        assert_eq!(fs.read(base, x, 0, 4096).unwrap(), vec![b'x'; 4096]);
        assert_eq!(fs.read(base, y, 0, 4096).unwrap(), vec![b'y'; 4096]);
        let fs = Arc::try_unwrap(fs).expect("the threads are done");
        fs.unmount().unwrap();
        let report = lcfs::fsck::check(dev).unwrap();
        assert!(report.is_clean(), "{report}");
    });
}
