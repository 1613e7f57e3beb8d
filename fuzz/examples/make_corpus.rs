//! Writes the seed corpora of the `image` and `records` targets from small real images:
//! `cargo run --release --example make_corpus` (in fuzz/) rewrites `corpus/image/seed-*` and
//! `corpus/records/seed-*`.
//!
//! Images (2 MiB, the size the `image` target decodes into): an empty filesystem; one layer
//! with every file type, xattrs, a long symlink and data; a committed layer with two children;
//! a directory large enough for internal tree nodes; a file with several extents and a hole; a
//! chain of clones; and an image left without a clean unmount. Each is written with the flag
//! combinations the target knows. The records corpus holds every metadata block of those
//! images, and every key and value of their trees, each under its decoder's selector.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use lcfs::format::header::{self, BlockKind, BLOCK_SIZE};
use lcfs::format::records::{decode_key, Key};
use lcfs::tree::Node;
use lcfs::{BlockDevice, BlockNo, FileType, Fs, Ino, MemDevice, MkfsOptions, Timespec};
use lcfs_fuzz::image::{self, FLAG_RESEAL, FLAG_WRITE, IMAGE_BLOCKS};

/// Record seeds kept per decoder.
const RECORDS_PER_SELECTOR: usize = 6;

type Build = fn(&Fs) -> lcfs::Result<()>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let builds: [(&str, Build, bool); 7] = [
        ("empty", |_| Ok(()), true),
        ("types", types, true),
        ("children", children, true),
        ("big-dir", big_dir, true),
        ("extents", extents, true),
        ("chain", chain, true),
        ("unclean", types, false),
    ];
    let mut records = BTreeSet::new();
    for (name, build, clean) in builds {
        let dev = Arc::new(MemDevice::new(IMAGE_BLOCKS));
        let dyn_dev: Arc<dyn BlockDevice> = dev.clone();
        Fs::mkfs(Arc::clone(&dyn_dev), &MkfsOptions { label: format!("seed-{name}") })?;
        let fs = Fs::mount(Arc::clone(&dyn_dev), &image::mount_options())?;
        build(&fs)?;
        if clean {
            fs.unmount()?;
        } else {
            fs.checkpoint()?;
        }
        let report = lcfs::fsck::check(Arc::clone(&dyn_dev))?;
        assert!(report.is_clean(), "seed image {name}: {report}");
        for flags in [0, FLAG_RESEAL, FLAG_RESEAL | FLAG_WRITE] {
            let bytes = image::encode(dev.as_ref(), flags);
            std::fs::write(root.join(format!("image/seed-{name}-{flags}")), &bytes)?;
        }
        collect_records(dev.as_ref(), &mut records);
    }
    // A few of each selector: the fuzzer grows the rest.
    let mut kept = 0;
    for selector in 0..=8u8 {
        let of_selector = records.iter().filter(|r| r.first() == Some(&selector));
        for record in of_selector.take(RECORDS_PER_SELECTOR) {
            std::fs::write(root.join(format!("records/seed-{kept:03}")), record)?;
            kept += 1;
        }
    }
    println!("{} image seeds, {kept} record seeds", 7 * 3);
    Ok(())
}

const T: Timespec = Timespec { sec: 1_700_000_000, nsec: 5 };

/// One writable layer "base" with every file type, xattrs, a long symlink and data.
fn types(fs: &Fs) -> lcfs::Result<()> {
    let id = fs.create_layer("base", None)?;
    let dir = fs.mkdir(id, Ino::ROOT, b"dir", 0o755, 1, 2, T)?.ino;
    let file = fs.mknod(id, dir, b"file", FileType::Regular, 0o644, 0, 1, 2, T)?.ino;
    fs.write(id, file, 0, b"hello, layers", T)?;
    fs.link(id, file, Ino::ROOT, b"hard", T)?;
    for (i, kind) in [FileType::Fifo, FileType::CharDevice, FileType::BlockDevice, FileType::Socket]
        .into_iter()
        .enumerate()
    {
        fs.mknod(id, dir, format!("node{i}").as_bytes(), kind, 0o600, 0x0801, 0, 0, T)?;
    }
    fs.symlink(id, Ino::ROOT, b"short", b"dir/file", 0, 0, T)?;
    fs.symlink(id, Ino::ROOT, b"long", &[b'x'; 2000], 0, 0, T)?;
    fs.setxattr(id, file, b"user.a", b"value", lcfs::XattrFlags::Any, T)?;
    fs.setxattr(id, dir, b"trusted.b", &[9; 1000], lcfs::XattrFlags::Any, T)?;
    Ok(())
}

/// A committed base with two children, each changing something.
fn children(fs: &Fs) -> lcfs::Result<()> {
    types(fs)?;
    fs.commit_layer("base")?;
    let a = fs.create_layer("a", Some("base"))?;
    fs.unlink(a, Ino::ROOT, b"hard", T)?;
    fs.mkdir(a, Ino::ROOT, b"new", 0o700, 0, 0, T)?;
    let b = fs.create_layer("b", Some("base"))?;
    let dir = fs.lookup(b, Ino::ROOT, b"dir")?.ino;
    let file = fs.lookup(b, dir, b"file")?.ino;
    fs.write(b, file, 5, b"CHANGED", T)?;
    fs.rename(b, Ino::ROOT, b"short", dir, b"moved", lcfs::RenameFlags::default(), T)?;
    Ok(())
}

/// A directory of 150 files: leaves split and an internal node appears.
fn big_dir(fs: &Fs) -> lcfs::Result<()> {
    let id = fs.create_layer("big", None)?;
    for i in 0..150u32 {
        let name = format!("file-with-a-longish-name-{i:04}");
        fs.mknod(id, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, T)?;
    }
    fs.commit_layer("big")?;
    Ok(())
}

/// A file written at scattered offsets (several extents, a hole), then truncated.
fn extents(fs: &Fs) -> lcfs::Result<()> {
    let id = fs.create_layer("data", None)?;
    let file = fs.mknod(id, Ino::ROOT, b"sparse", FileType::Regular, 0o644, 0, 0, 0, T)?.ino;
    for (i, offset) in [0u64, 3 * 4096, 9 * 4096, 10 * 4096].into_iter().enumerate() {
        fs.write(id, file, offset, &[i as u8 + 1; 6000], T)?;
        fs.checkpoint()?;
    }
    let set = lcfs::SetAttr { size: Some(10 * 4096 + 100), ..Default::default() };
    fs.setattr(id, file, &set, T)?;
    Ok(())
}

/// A chain of four clones, each adding a file.
fn chain(fs: &Fs) -> lcfs::Result<()> {
    let mut parent: Option<String> = None;
    for depth in 0..4 {
        let name = format!("l{depth}");
        let id = fs.create_layer(&name, parent.as_deref())?;
        let file =
            fs.mknod(id, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, T)?;
        fs.write(id, file.ino, 0, name.as_bytes(), T)?;
        fs.commit_layer(&name)?;
        parent = Some(name);
    }
    Ok(())
}

/// Every metadata block of `dev` (selectors 0-3), and every key and value of its trees
/// (selectors 4-8), as `records` inputs, in order.
fn collect_records(dev: &MemDevice, out: &mut BTreeSet<Vec<u8>>) {
    let mut buf = vec![0u8; BLOCK_SIZE];
    for block in 0..IMAGE_BLOCKS {
        if dev.read(block, &mut buf).is_err() {
            continue;
        }
        let Ok(h) = header::verify_any(&buf, BlockNo(block)) else { continue };
        let selector = match h.kind {
            BlockKind::Superblock => 1,
            BlockKind::FreeMap => 2,
            BlockKind::TreeLeaf | BlockKind::TreeInternal => 3,
        };
        let len = buf.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        for selector in [0u8, selector] {
            let mut input = vec![selector];
            input.extend_from_slice(&(block as u16).to_le_bytes());
            input.extend_from_slice(&buf[..len]);
            out.insert(input);
        }
        let Ok(node) = Node::decode(&buf, BlockNo(block)) else { continue };
        for (key, value) in node.items() {
            let value_selector = match decode_key(key) {
                Ok(Key::Inode(_)) => Some(5),
                Ok(Key::DirEntry(..)) => Some(6),
                Ok(Key::Extent(..)) => Some(7),
                Ok(_) => None,
                Err(_) if key.first() == Some(&b'L') => Some(8),
                Err(_) => None,
            };
            out.insert([&[4u8][..], key].concat());
            if let Some(selector) = value_selector {
                out.insert([&[selector][..], value].concat());
            }
        }
    }
}
