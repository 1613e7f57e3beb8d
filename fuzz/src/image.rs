//! The `image` target: fsck and mount of a mutated image. It must give an error or a
//! consistent filesystem; never a panic, a hang or unbounded memory.
//!
//! Input format (a sparse image, so that inputs stay small and mutations land on metadata):
//!
//! ```text
//! byte 0    flags: bit 0 recompute the checksum of every block that carries the magic, so
//!                  mutations reach the decoders behind the checksum;
//!                  bit 1 after a clean fsck, also write: clone, create, write, remove,
//!                  checkpoint, unmount, then fsck again
//! then      records: block u16 LE (taken modulo IMAGE_BLOCKS), length u16 LE (at most 4096),
//!           that many bytes: the start of the block, the rest zero
//! ```
//!
//! Properties:
//! - fsck returns (a report or an error), and so does mount;
//! - when fsck reports the image clean, it mounts, and every layer can be walked (readdir,
//!   lookup, getattr, read, readlink, xattrs) without an error; after writes, a checkpoint and
//!   a clean unmount, fsck is still clean.
//!
//! Work is bounded by the device (`IMAGE_BLOCKS`) and tiny caches; libFuzzer's `-rss_limit_mb`
//! and `-timeout` catch the rest.

use std::sync::Arc;

use lcfs::{BlockDevice, Fs, Ino, LayerState, MemDevice, MountOptions, Timespec};
use lcfs_crashtests::{convert, walk};

use crate::records::reseal_checksum;

/// Blocks of the device an image is decoded into (2 MiB).
pub const IMAGE_BLOCKS: u64 = 512;
const BLOCK_SIZE: usize = lcfs::format::header::BLOCK_SIZE;

/// Flag: recompute checksums.
pub const FLAG_RESEAL: u8 = 1;
/// Flag: write after a clean fsck.
pub const FLAG_WRITE: u8 = 2;

/// Tiny caches: every node read goes through eviction.
pub fn mount_options() -> MountOptions {
    MountOptions { node_cache_blocks: 4, data_cache_blocks: 4, dirty_limit_bytes: 64 << 10 }
}

/// The sparse encoding of the first `IMAGE_BLOCKS` blocks of `dev`, with `flags`.
pub fn encode(dev: &dyn BlockDevice, flags: u8) -> Vec<u8> {
    let mut out = vec![flags];
    let mut buf = vec![0u8; BLOCK_SIZE];
    for block in 0..IMAGE_BLOCKS.min(dev.block_count()) {
        if dev.read(block, &mut buf).is_err() {
            continue;
        }
        let len = buf.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        if len == 0 {
            continue;
        }
        out.extend_from_slice(&(block as u16).to_le_bytes());
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&buf[..len]);
    }
    out
}

/// The device an input stands for, and its flags.
pub fn decode(data: &[u8]) -> (Arc<MemDevice>, u8) {
    let dev = MemDevice::new(IMAGE_BLOCKS);
    let Some((&flags, mut rest)) = data.split_first() else { return (Arc::new(dev), 0) };
    let mut block = vec![0u8; BLOCK_SIZE];
    while let Some((head, tail)) = rest.split_first_chunk::<4>() {
        let at = u64::from(u16::from_le_bytes([head[0], head[1]])) % IMAGE_BLOCKS;
        let len =
            usize::from(u16::from_le_bytes([head[2], head[3]])).min(BLOCK_SIZE).min(tail.len());
        block.fill(0);
        block[..len].copy_from_slice(&tail[..len]);
        if flags & FLAG_RESEAL != 0 {
            reseal_checksum(&mut block);
        }
        let _ = dev.write(at, &block);
        rest = &tail[len..];
    }
    (Arc::new(dev), flags)
}

/// Checks one input; panics on a broken property.
pub fn check(data: &[u8]) {
    let (dev, flags) = decode(data);
    let dev: Arc<dyn BlockDevice> = dev;
    let report = lcfs::fsck::check(Arc::clone(&dev)).ok();
    let clean = report.as_ref().is_some_and(|r| r.is_clean());
    let fs = match Fs::mount(Arc::clone(&dev), &mount_options()) {
        Ok(fs) => fs,
        Err(e) => {
            assert!(!clean, "fsck says the image is clean, but it does not mount: {e}");
            return;
        }
    };
    let walked = walk_all(&fs);
    if clean {
        if let Err(e) = walked {
            panic!("fsck says the image is clean, but a walk fails: {e}");
        }
        if flags & FLAG_WRITE != 0 {
            write_some(&fs, true);
            fs.unmount().unwrap_or_else(|e| panic!("unmount of a clean image: {e}"));
            let report = lcfs::fsck::check(dev).unwrap_or_else(|e| panic!("fsck: {e}"));
            assert!(report.is_clean(), "fsck after writing to a clean image: {report}");
        }
    } else {
        // A damaged image: operations may fail, but only with errors.
        write_some(&fs, false);
        let _ = fs.unmount();
    }
}

/// Walks every layer through the public API.
fn walk_all(fs: &Fs) -> Result<(), String> {
    let layers = fs.layers().map_err(|e| format!("layers: {e}"))?;
    for info in layers {
        let info = convert::layer_info_back(info);
        walk::dump_layer(fs, &info, None).map_err(|e| format!("layer {:?}: {e}", info.name))?;
    }
    Ok(())
}

/// Writes a little: a clone of the first committed layer (or a new layer), a file with data,
/// a directory, a removal, a checkpoint. On a clean image every step must succeed.
fn write_some(fs: &Fs, must_succeed: bool) {
    // A clean image may be full, and may already hold the names used here.
    let ok = |what: &str, r: lcfs::Result<()>| {
        if let Err(e) = r {
            let allowed = matches!(e, lcfs::Error::NoSpace | lcfs::Error::Exists);
            assert!(allowed || !must_succeed, "{what} on a clean image: {e}");
        }
    };
    let layers = fs.layers().unwrap_or_default();
    let parent = layers.iter().find(|l| l.state == LayerState::Committed).map(|l| l.name.clone());
    let name = (0..).map(|i| format!("fuzz{i}")).find(|n| layers.iter().all(|l| &l.name != n));
    let Some(name) = name else { return };
    ok("create_layer", fs.create_layer(&name, parent.as_deref()).map(drop));
    let Ok(id) = fs.layer_id(&name) else { return };
    let t = Timespec { sec: 1, nsec: 0 };
    let file = fs.mknod(id, Ino::ROOT, b"fuzz-file", lcfs::FileType::Regular, 0o644, 0, 0, 0, t);
    ok("mknod", file.as_ref().map(drop).map_err(clone_error));
    if let Ok(attr) = file {
        ok("write", fs.write(id, attr.ino, 4000, &[7u8; 5000], t).map(drop));
    }
    ok("mkdir", fs.mkdir(id, Ino::ROOT, b"fuzz-dir", 0o755, 0, 0, t).map(drop));
    // Remove the first entry of the root, whatever it is.
    if let Ok(entries) = fs.readdir(id, Ino::ROOT, None, 1) {
        if let Some(entry) = entries.first() {
            let r = match entry.kind {
                lcfs::FileType::Directory => fs.rmdir(id, Ino::ROOT, &entry.name, t),
                _ => fs.unlink(id, Ino::ROOT, &entry.name, t),
            };
            if let Err(e) = r {
                let allowed = matches!(e, lcfs::Error::NotEmpty);
                assert!(allowed || !must_succeed, "removing {:?}: {e}", entry.name);
            }
        }
    }
    ok("checkpoint", fs.checkpoint().map(drop));
}

fn clone_error(e: &lcfs::Error) -> lcfs::Error {
    lcfs::Error::corrupt(0, e.to_string())
}
