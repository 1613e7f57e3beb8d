//! The engine demo: format a sparse image file, import a real directory tree of this machine as
//! a committed image layer, clone 100 writable layers from it, write a file in each, remove
//! them, unmount, mount again, run fsck, and print what each step took.
//!
//! Run: `make demo`, or `cargo run --release -p lcfs --example demo -- --help`.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lcfs::fsck;
use lcfs::{BlockDevice, FileDevice, FileType, Fs, Ino, LayerId, MkfsOptions, MountOptions, Timespec};

struct Options {
    image: PathBuf,
    size_bytes: u64,
    source: PathBuf,
    clones: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut opts = Options {
        image: PathBuf::from("target/lcfs-demo.img"),
        size_bytes: 8 << 30,
        source: PathBuf::from("/usr/share"),
        clones: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--image" => opts.image = PathBuf::from(value()?),
            "--size-gib" => opts.size_bytes = value()?.parse::<u64>().map_err(|e| e.to_string())? << 30,
            "--source" => opts.source = PathBuf::from(value()?),
            "--clones" => opts.clones = value()?.parse().map_err(|e: std::num::ParseIntError| e.to_string())?,
            "--help" | "-h" => {
                println!("demo [--image PATH] [--size-gib N] [--source DIR] [--clones N]");
                println!("defaults: target/lcfs-demo.img, 8 GiB sparse, /usr/share, 100 clones");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other} (try --help)")),
        }
    }
    Ok(opts)
}

/// Times one step and prints it.
fn step<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let start = Instant::now();
    let out = f()?;
    println!("{:<58} {:>9.3} s", what, start.elapsed().as_secs_f64());
    Ok(out)
}

#[derive(Default)]
struct ImportStats {
    files: u64,
    dirs: u64,
    symlinks: u64,
    others: u64,
    bytes: u64,
    skipped: u64,
}

/// Copies the tree at `src` into directory `dir` of `layer`, preserving types, modes, owners,
/// times and hard links. Unreadable entries are counted and skipped.
fn import(fs: &Fs, layer: LayerId, src: &Path, stats: &mut ImportStats) -> Result<(), String> {
    let mut links: HashMap<(u64, u64), Ino> = HashMap::new();
    let mut stack: Vec<(PathBuf, Ino)> = vec![(src.to_path_buf(), Ino::ROOT)];
    let mut buf = vec![0u8; 1 << 20];
    while let Some((path, dir)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            stats.skipped += 1;
            continue;
        };
        for entry in entries.flatten() {
            let child = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&child) else {
                stats.skipped += 1;
                continue;
            };
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            let now = Timespec::new(meta.mtime(), meta.mtime_nsec() as u32);
            let perm = (meta.mode() & 0o7777) as u16;
            let ft = meta.file_type();
            if ft.is_file() && meta.nlink() > 1 {
                if let Some(&target) = links.get(&(meta.dev(), meta.ino())) {
                    fs.link(layer, target, dir, name, now).map_err(|e| format!("link {child:?}: {e}"))?;
                    continue;
                }
            }
            let attr = if ft.is_dir() {
                stats.dirs += 1;
                let a = fs
                    .mkdir(layer, dir, name, perm, meta.uid(), meta.gid(), now)
                    .map_err(|e| format!("mkdir {child:?}: {e}"))?;
                stack.push((child.clone(), a.ino));
                a
            } else if ft.is_symlink() {
                stats.symlinks += 1;
                let target = std::fs::read_link(&child).map_err(|e| e.to_string())?;
                fs.symlink(layer, dir, name, target.as_os_str().as_encoded_bytes(), meta.uid(), meta.gid(), now)
                    .map_err(|e| format!("symlink {child:?}: {e}"))?
            } else {
                let kind = if ft.is_file() {
                    FileType::Regular
                } else if ft.is_fifo() {
                    FileType::Fifo
                } else if ft.is_socket() {
                    FileType::Socket
                } else if ft.is_char_device() {
                    FileType::CharDevice
                } else {
                    FileType::BlockDevice
                };
                let a = fs
                    .mknod(layer, dir, name, kind, perm, meta.rdev(), meta.uid(), meta.gid(), now)
                    .map_err(|e| format!("mknod {child:?}: {e}"))?;
                if kind == FileType::Regular {
                    stats.files += 1;
                    stats.bytes += copy_file(fs, layer, a.ino, &child, &mut buf, now)?;
                    if meta.nlink() > 1 {
                        links.insert((meta.dev(), meta.ino()), a.ino);
                    }
                } else {
                    stats.others += 1;
                }
                a
            };
            let times = lcfs::SetAttr {
                atime: Some(Timespec::new(meta.atime(), meta.atime_nsec() as u32)),
                mtime: Some(now),
                ..Default::default()
            };
            fs.setattr(layer, attr.ino, &times, now).map_err(|e| format!("setattr {child:?}: {e}"))?;
        }
    }
    Ok(())
}

fn copy_file(fs: &Fs, layer: LayerId, ino: Ino, path: &Path, buf: &mut [u8], now: Timespec) -> Result<u64, String> {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else { return Ok(0) };
    let mut offset = 0u64;
    loop {
        let n = file.read(buf).map_err(|e| format!("read {path:?}: {e}"))?;
        if n == 0 {
            return Ok(offset);
        }
        let chunk = buf.get(..n).unwrap_or(&[]);
        fs.write(layer, ino, offset, chunk, now).map_err(|e| format!("write {path:?}: {e}"))?;
        offset += n as u64;
    }
}

fn run() -> Result<(), String> {
    let opts = parse_options()?;
    println!("lcfs engine demo: image {:?} ({} GiB sparse), source {:?}, {} clones",
        opts.image, opts.size_bytes >> 30, opts.source, opts.clones);
    if let Some(dir) = opts.image.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {dir:?}: {e}"))?;
    }
    let total = Instant::now();
    let dev: Arc<dyn BlockDevice> = step("mkfs (format the sparse image file)", || {
        let dev = FileDevice::create(&opts.image, opts.size_bytes).map_err(|e| e.to_string())?;
        let dev: Arc<dyn BlockDevice> = Arc::new(dev);
        Fs::mkfs(Arc::clone(&dev), &MkfsOptions { label: "demo".into() }).map_err(|e| e.to_string())?;
        Ok(dev)
    })?;
    let fs = step("mount", || Fs::mount(Arc::clone(&dev), &MountOptions::default()).map_err(|e| e.to_string()))?;
    let mut stats = ImportStats::default();
    let base = step(&format!("import {:?} into layer 'base'", opts.source), || {
        let base = fs.create_layer("base", None).map_err(|e| e.to_string())?;
        import(&fs, base, &opts.source, &mut stats)?;
        Ok(base)
    })?;
    println!("  {} files ({:.1} MiB), {} directories, {} symlinks, {} other, {} skipped",
        stats.files, stats.bytes as f64 / (1 << 20) as f64, stats.dirs, stats.symlinks, stats.others, stats.skipped);
    step("commit 'base' (checkpoint)", || fs.commit_layer("base").map_err(|e| e.to_string()))?;
    let now = Timespec::now();
    let names: Vec<String> = (0..opts.clones).map(|i| format!("container-{i:03}")).collect();
    let clones = step(&format!("clone {} writable layers from 'base'", opts.clones), || {
        names.iter().map(|n| fs.create_layer(n, Some("base")).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()
    })?;
    step(&format!("write a file in each of the {} clones", opts.clones), || {
        for (i, &layer) in clones.iter().enumerate() {
            let a = fs.mknod(layer, Ino::ROOT, b"hello.txt", FileType::Regular, 0o644, 0, 0, 0, now).map_err(|e| e.to_string())?;
            fs.write(layer, a.ino, 0, format!("hello from clone {i}\n").as_bytes(), now).map_err(|e| e.to_string())?;
        }
        fs.sync().map_err(|e| e.to_string())
    })?;
    let _ = base;
    step(&format!("remove the {} clones", opts.clones), || {
        names.iter().try_for_each(|n| fs.remove_layer(n).map_err(|e| e.to_string()))
    })?;
    let used_before = fs.statfs();
    step("unmount (clean checkpoint)", || fs.unmount().map_err(|e| e.to_string()))?;
    let fs = step("mount again", || Fs::mount(Arc::clone(&dev), &MountOptions::default()).map_err(|e| e.to_string()))?;
    let used_after = fs.statfs();
    if used_before.blocks_free != used_after.blocks_free {
        return Err(format!("free blocks changed across the remount: {} then {}", used_before.blocks_free, used_after.blocks_free));
    }
    let layers = fs.layers().map_err(|e| e.to_string())?;
    println!("  layers after remount: {:?}", layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>());
    fs.unmount().map_err(|e| e.to_string())?;
    let report = step("fsck", || fsck::check(Arc::clone(&dev)).map_err(|e| e.to_string()))?;
    println!("  {report}");
    let free = used_after.blocks_free * 4096;
    let total_bytes = used_after.blocks_total * 4096;
    println!("  space: {:.1} MiB used of {:.1} GiB", (total_bytes - free) as f64 / (1 << 20) as f64, total_bytes as f64 / (1 << 30) as f64);
    println!("{:<58} {:>9.3} s", "total", total.elapsed().as_secs_f64());
    if !report.is_clean() {
        return Err("fsck found problems".into());
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}
