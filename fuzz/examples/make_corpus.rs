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
//!
//! It also writes `corpus/graphdriver/seed-*` (dockerd's call sequences as raw HTTP/1.1, see
//! `graphdriver_seeds`) and `corpus/snapshotter/seed-*` (the inputs of a random search with the
//! most successful snapshot operations, see `snapshotter_seeds`).
//! `cargo run --release --example make_corpus -- graphdriver snapshotter` writes only those.

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
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    if wanted("graphdriver") {
        graphdriver_seeds(&root.join("graphdriver"))?;
    }
    if wanted("snapshotter") {
        snapshotter_seeds(&root.join("snapshotter"))?;
    }
    if !(wanted("image") || wanted("records")) {
        return Ok(());
    }
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

/// One request as dockerd sends it: `POST path`, a JSON body with its length.
fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n\
         Content-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// ApplyDiff with a chunked tar body (two chunks), as dockerd streams a layer.
fn apply_diff(id: &str, parent: &str, tar: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /GraphDriver.ApplyDiff?id={id}&parent={parent} HTTP/1.1\r\nHost: plugin\r\n\
         Transfer-Encoding: chunked\r\nContent-Type: application/x-tar\r\n\r\n"
    )
    .into_bytes();
    let (a, b) = tar.split_at(tar.len() / 2);
    for chunk in [a, b] {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The graph driver's seeds: dockerd's start, `docker create` and `rm`, `docker commit`, a
/// pull (Create + ApplyDiff), Diff/Changes/DiffSize, and the odd requests (an empty-body
/// retry, `Expect: 100-continue`, a GET, an unknown call).
fn graphdriver_seeds(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let tar = lcfs_fuzz::tar::entries_stream(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10");
    let id = |name: &str| format!("{{\"ID\":\"{name}\"}}");
    let start = [
        post("/Plugin.Activate", ""),
        post("/GraphDriver.Init", "{\"Home\":\"/var/lib/docker/lcfs\",\"Opts\":null,\"UIDMaps\":null,\"GIDMaps\":null}"),
        post("/GraphDriver.Capabilities", ""),
        post("/GraphDriver.Status", ""),
    ]
    .concat();
    let create = [
        post("/GraphDriver.CreateReadWrite", "{\"ID\":\"c1-init\",\"Parent\":\"img\",\"MountLabel\":\"\",\"StorageOpt\":null}"),
        post("/GraphDriver.Get", &format!("{{\"ID\":\"c1-init\",\"MountLabel\":\"\"}}")),
        post("/GraphDriver.Put", &id("c1-init")),
        post("/GraphDriver.CreateReadWrite", "{\"ID\":\"c1\",\"Parent\":\"c1-init\"}"),
        post("/GraphDriver.Get", &id("c1")),
        post("/GraphDriver.Exists", &id("c1")),
        post("/GraphDriver.GetMetadata", &id("c1")),
        post("/GraphDriver.Put", &id("c1")),
    ]
    .concat();
    let remove = [
        post("/GraphDriver.Remove", &id("c1")),
        post("/GraphDriver.Remove", &id("c1-init")),
        post("/GraphDriver.Exists", &id("c1")),
    ]
    .concat();
    let pull = [
        post("/GraphDriver.Create", "{\"ID\":\"l1\"}"),
        apply_diff("l1", "", &tar),
        post("/GraphDriver.Create", "{\"ID\":\"l2\",\"Parent\":\"l1\"}"),
        apply_diff("l2", "l1", &tar),
        post("/GraphDriver.DiffSize", "{\"ID\":\"l2\",\"Parent\":\"l1\"}"),
    ]
    .concat();
    let commit = [
        post("/GraphDriver.Get", &id("ctr")),
        post("/GraphDriver.Changes", "{\"ID\":\"ctr\",\"Parent\":\"img\"}"),
        post("/GraphDriver.Diff", "{\"ID\":\"ctr\",\"Parent\":\"img\"}"),
        post("/GraphDriver.Create", "{\"ID\":\"new\",\"Parent\":\"img\"}"),
        apply_diff("new", "img", &tar),
        post("/GraphDriver.Put", &id("ctr")),
        post("/GraphDriver.Cleanup", ""),
    ]
    .concat();
    let odd = [
        post("/GraphDriver.Create", ""),
        b"POST /GraphDriver.Exists HTTP/1.1\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n{\"ID\":\"x\"}\n".to_vec(),
        b"GET /GraphDriver.Status HTTP/1.1\r\n\r\n".to_vec(),
        post("/GraphDriver.Frobnicate", "{}"),
        b"POST /GraphDriver.Get HTTP/1.0\r\nContent-Length: 10\r\n\r\n{\"ID\":\"ct".to_vec(),
    ]
    .concat();
    let seeds: [(&str, Vec<u8>); 6] = [
        ("start", start.clone()),
        ("create", [start.clone(), create.clone()].concat()),
        ("create-rm", [create, remove].concat()),
        ("pull", pull),
        ("commit", commit),
        ("odd", odd),
    ];
    for (name, bytes) in &seeds {
        let statuses = lcfs_fuzz::graphdriver::run(bytes);
        println!("graphdriver seed-{name}: {statuses:?}");
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    Ok(())
}

/// The snapshotter's seeds: random inputs (a fixed xorshift sequence) chosen for how many of
/// their operations succeed, so that the fuzzer starts from some Prepare/Commit chains rather
/// than from NotFound only: of 4,000 candidates, the 8 with the most successful operations.
fn snapshotter_seeds(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut best: Vec<(usize, Vec<u8>)> = Vec::new();
    for _ in 0..4000 {
        let len = 32 + (next() % 224) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut u = arbitrary::Unstructured::new(&bytes);
        let ops: Vec<lcfs_fuzz::snapshotter::Op> = u.arbitrary().unwrap_or_default();
        let succeeded = lcfs_fuzz::snapshotter::run(&ops);
        best.push((succeeded, bytes));
        best.sort_by(|a, b| b.0.cmp(&a.0));
        best.truncate(8);
    }
    for (i, (succeeded, bytes)) in best.iter().enumerate() {
        println!("snapshotter seed-{i}: {succeeded} operations succeeded");
        std::fs::write(dir.join(format!("seed-{i}")), bytes)?;
    }
    Ok(())
}
