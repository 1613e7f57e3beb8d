//! The `tar` target: arbitrary bytes as a layer tar stream into `lcfs::tar::apply_diff_with`.
//!
//! Setup (the same for every input, made once and copied for each): an engine on a
//! `MemDevice`; a committed layer `base` with a directory, files, a hard link and two symlinks
//! that point out of any root (`/` and `../../..`); two children of it: `sibling`, with a file
//! of its own, and `target`, the layer the stream goes into, with a file of its own too.
//!
//! Input: one flag byte, then the stream. Flag bit 0 (`FLAG_RESEAL`): before the apply, the
//! checksum of every 512-byte block that carries the ustar magic is recomputed, so that
//! mutations of header fields reach the decoders behind the checksum (without it most of them
//! stop at the checksum; with the bit clear the checksum check itself is fuzzed). Flag bit 1
//! (`FLAG_ENTRIES`): the bytes describe entries that lcfs's writer turns into the stream
//! (`entries_stream`): kinds, paths and links made of the setup's names, whiteouts, `.` and
//! `..`, so that most inputs apply and exercise the rules (replacement, whiteouts, opaque
//! directories, hard links, symlinks in paths) rather than stop at the decoder.
//!
//! Properties:
//! - apply returns (bytes applied or an error), never panics, hangs or grows without bound
//!   (small limits: `limits()`);
//! - an error is the stream's (EINVAL), or the engine's full device or link limit: any other
//!   engine error means a check of the stream is missing (a name, a type, a path), and a
//!   corruption or I/O error never comes;
//! - nothing outside the target changes: `base` and `sibling` dump exactly as before;
//! - the target layer still walks cleanly (readdir, lookup, getattr agree), and after unmount
//!   fsck reports the image clean.

use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use lcfs::tar::{
    apply_diff_with, ApplyOptions, EntryKind, EntrySpec, Limits, TarErrorKind, Writer,
};
use lcfs::{BlockDevice, FileType, Fs, Ino, LayerId, MemDevice, MkfsOptions, Timespec};
use lcfs_crashtests::{convert, walk};
use lcfs_model::LayerDump;

use crate::image::mount_options;

/// Blocks of the device (32 MiB: room for what a short stream can write).
pub const DEVICE_BLOCKS: u64 = 8192;

/// The bounds the target applies (smaller than the defaults, so that they are reached).
pub fn limits() -> Limits {
    Limits {
        headers_max: 4096,
        extension_bytes_max: 64 << 10,
        extensions_in_a_row_max: 8,
        path_bytes_max: 4096,
        xattrs_per_entry_max: 64,
        file_bytes_max: 1 << 40,
        tracked_path_bytes_max: 64 << 10,
    }
}

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 1)
}

/// The engine of the setup and the ids of `base`, `sibling` and `target`.
pub fn setup() -> lcfs::Result<(Arc<MemDevice>, Fs, [LayerId; 3])> {
    let mem = Arc::new(MemDevice::new(DEVICE_BLOCKS));
    let dev: Arc<dyn BlockDevice> = mem.clone();
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    let fs = Fs::mount(dev, &mount_options())?;
    let t = now();
    let base = fs.create_layer("base", None)?;
    let etc = fs.mkdir(base, Ino::ROOT, b"etc", 0o755, 0, 0, t)?;
    let passwd = fs.mknod(
        base,
        etc.ino,
        b"passwd",
        FileType::Regular,
        0o644,
        0,
        0,
        0,
        t,
    )?;
    fs.write(base, passwd.ino, 0, b"root:x:0:0::/root:/bin/sh\n", t)?;
    fs.link(base, passwd.ino, Ino::ROOT, b"passwd-link", t)?;
    let sub = fs.mkdir(base, etc.ino, b"sub", 0o700, 1, 1, t)?;
    fs.mknod(base, sub.ino, b"deep", FileType::Regular, 0o600, 0, 0, 0, t)?;
    fs.symlink(base, Ino::ROOT, b"escape", b"/", 0, 0, t)?;
    fs.symlink(base, Ino::ROOT, b"up", b"../../..", 0, 0, t)?;
    fs.commit_layer("base")?;
    let sibling = fs.create_layer("sibling", Some("base"))?;
    fs.mknod(
        sibling,
        Ino::ROOT,
        b"mine",
        FileType::Regular,
        0o644,
        0,
        0,
        0,
        t,
    )?;
    let target = fs.create_layer("target", Some("base"))?;
    fs.mknod(
        target,
        Ino::ROOT,
        b"own",
        FileType::Regular,
        0o644,
        0,
        0,
        0,
        t,
    )?;
    Ok((mem, fs, [base, sibling, target]))
}

/// The dump of layer `name`.
pub(crate) fn dump(fs: &Fs, name: &str) -> LayerDump {
    let info = fs
        .layer(name)
        .unwrap_or_else(|e| panic!("layer {name}: {e}"));
    let info = convert::layer_info_back(info);
    walk::dump_layer(fs, &info, None).unwrap_or_else(|e| panic!("walk of {name}: {e}"))
}

/// The setup, made once per process: its image and the dumps of `base` and `sibling`.
struct Template {
    image: MemDevice,
    base: LayerDump,
    sibling: LayerDump,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let (dev, fs, _) = setup().unwrap_or_else(|e| panic!("setup: {e}"));
        let (base, sibling) = (dump(&fs, "base"), dump(&fs, "sibling"));
        fs.unmount()
            .unwrap_or_else(|e| panic!("setup unmount: {e}"));
        let image = dev.snapshot();
        Template {
            image,
            base,
            sibling,
        }
    })
}

/// Flag: recompute header checksums before the apply.
pub const FLAG_RESEAL: u8 = 1;

/// Flag: the bytes describe entries (`entries_stream`), written by lcfs's own writer.
pub const FLAG_ENTRIES: u8 = 2;

/// Path components the entries mode picks from: the setup's names, whiteouts, `.` and `..`.
const WORDS: [&[u8]; 16] = [
    b"etc",
    b"passwd",
    b"sub",
    b"deep",
    b"escape",
    b"up",
    b"passwd-link",
    b"own",
    b"mine",
    b"a",
    b"..",
    b".",
    b".wh.a",
    b".wh.passwd",
    b".wh..wh..opq",
    b"",
];

/// A path of one to four words, absolute or not.
fn path(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let mut out = if u.arbitrary::<bool>()? {
        b"/".to_vec()
    } else {
        Vec::new()
    };
    for index in 0..u.int_in_range(1..=4u8)? {
        if index > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(u.choose(&WORDS)?);
    }
    Ok(out)
}

/// A stream of up to 32 entries described by `data` (kinds, paths from `WORDS`, link targets,
/// small data, modes, an xattr), so that inputs reach the apply rules rather than the decoder.
pub fn entries_stream(data: &[u8]) -> Vec<u8> {
    let mut u = Unstructured::new(data);
    let mut tar = Writer::new(Vec::new());
    let kinds = [
        EntryKind::Regular,
        EntryKind::Directory,
        EntryKind::Symlink,
        EntryKind::HardLink,
        EntryKind::Fifo,
        EntryKind::CharDevice,
    ];
    for _ in 0..32 {
        let Ok(entry) = (|| -> arbitrary::Result<_> {
            let kind = *u.choose(&kinds)?;
            let (path, link) = (path(&mut u)?, path(&mut u)?);
            let len = usize::from(u.int_in_range(0..=64u8)?);
            let data = u.bytes(len)?.to_vec();
            let mode = u32::from(u.arbitrary::<u16>()?);
            let xattrs = if u.arbitrary::<bool>()? {
                vec![(b"user.k".to_vec(), data.clone())]
            } else {
                Vec::new()
            };
            Ok((kind, path, link, data, mode, xattrs))
        })() else {
            break;
        };
        let (kind, path, link, data, mode, xattrs) = entry;
        let data = if kind == EntryKind::Regular {
            data
        } else {
            Vec::new()
        };
        let spec = EntrySpec {
            kind,
            path: &path,
            link: &link,
            mode,
            uid: mode % 3,
            gid: 0,
            size: data.len() as u64,
            mtime: Timespec::new(i64::from(mode), mode),
            dev_major: u64::from(mode % 5),
            dev_minor: 1,
            xattrs: &xattrs,
        };
        if tar
            .append(&spec)
            .and_then(|()| tar.write_data(&data))
            .is_err()
        {
            break;
        }
    }
    tar.finish().map(|(out, _)| out).unwrap_or_default()
}

/// Recomputes the checksum of every block of `tar` that carries the ustar magic.
pub fn reseal(tar: &mut [u8]) {
    for block in tar.chunks_exact_mut(512) {
        if block.get(257..262) != Some(b"ustar".as_slice()) {
            continue;
        }
        if let Some(field) = block.get_mut(148..156) {
            field.fill(b' ');
        }
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        if let Some(field) = block.get_mut(148..156) {
            field.copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
    }
}

/// Checks one input; panics on a broken property.
pub fn check(data: &[u8]) {
    let _ = run(data);
}

/// `check`, returning what the apply gave: the bytes applied, or the error's kind.
pub fn run(data: &[u8]) -> Result<u64, String> {
    let template = template();
    let dev: Arc<dyn BlockDevice> = Arc::new(template.image.snapshot());
    let fs = Fs::mount(Arc::clone(&dev), &mount_options()).unwrap_or_else(|e| panic!("mount: {e}"));
    let target = fs
        .layer_id("target")
        .unwrap_or_else(|e| panic!("target: {e}"));
    let opts = ApplyOptions {
        now: now(),
        limits: limits(),
    };
    let (flags, stream) = data.split_first().map_or((0, data), |(f, rest)| (*f, rest));
    let mut stream = if flags & FLAG_ENTRIES != 0 {
        entries_stream(stream)
    } else {
        stream.to_vec()
    };
    if flags & FLAG_RESEAL != 0 {
        reseal(&mut stream);
    }
    let outcome = apply_diff_with(&fs, target, &stream[..], &opts);
    if let Err(e) = &outcome {
        let allowed = match &e.kind {
            // A full device, a file or link count at the engine's limit: the stream's names,
            // types and paths are all checked before they reach the engine.
            TarErrorKind::Engine(engine) => matches!(
                engine,
                lcfs::Error::NoSpace | lcfs::Error::TooManyLinks | lcfs::Error::FileTooBig
            ),
            TarErrorKind::Io(_) => false,
            _ => e.errno() == 22,
        };
        assert!(
            allowed,
            "apply failed in a way a stream must not cause: {e}"
        );
    }
    assert!(template.base == dump(&fs, "base"), "the base layer changed");
    assert!(
        template.sibling == dump(&fs, "sibling"),
        "the sibling layer changed"
    );
    dump(&fs, "target");
    fs.unmount().unwrap_or_else(|e| panic!("unmount: {e}"));
    let report = lcfs::fsck::check(dev).unwrap_or_else(|e| panic!("fsck: {e}"));
    assert!(report.is_clean(), "fsck after apply: {report}");
    outcome.map_err(|e| e.kind.to_string())
}
