//! Fixtures for the criterion benches: images with a layer of N files and ancestries of depth
//! D, file contents that can be checked when read back, and a tarball of a real system tree.
//!
//! Invariants:
//! - every fixture is deterministic (the same names, sizes and bytes on every run), so a bench
//!   can assert what it read or wrote;
//! - file `i` of a fixture is `d{i / 1000}/f{i}` under the layer root;
//! - no data block of a fixture file is all zeros (an all-zero block would be stored as a hole).

pub mod cpu;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use lcfs::{
    BlockDevice, Error, FileType, Fs, Ino, LayerId, MemDevice, MkfsOptions, MountOptions, Timespec,
};

/// A mounted filesystem over a fresh in-memory device of `blocks` blocks (sparse: only the
/// blocks written take memory).
pub fn fresh_fs(blocks: u64) -> Result<Fs, Error> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(blocks));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    Fs::mount(dev, &MountOptions::default())
}

/// A fixed time for every operation.
pub fn now() -> Timespec {
    Timespec::new(1_700_000_000, 0)
}

/// The directory and name of fixture file `i`.
pub fn file_path(i: usize) -> (String, String) {
    (format!("d{}", i / 1000), format!("f{i}"))
}

/// The content of fixture file `i` with `bytes` bytes: "file {i}" when `bytes` is 0 (the small
/// files of `layer_with_files`), else `bytes` bytes of a pattern that names the file.
pub fn file_content(i: usize, bytes: usize) -> Vec<u8> {
    let line = format!("file {i}\n");
    if bytes == 0 {
        return line.trim_end().as_bytes().to_vec();
    }
    line.bytes().cycle().take(bytes).collect()
}

/// Commits a base layer `name` holding `files` small files ("file {i}") spread over
/// directories of at most 1,000 entries; returns its id.
pub fn layer_with_files(fs: &Fs, name: &str, files: usize) -> Result<LayerId, Error> {
    layer_with_files_of(fs, name, files, 0)
}

/// Commits a base layer `name` holding `files` files of `file_content(i, bytes_each)` spread
/// over directories of at most 1,000 entries; returns its id.
pub fn layer_with_files_of(
    fs: &Fs,
    name: &str,
    files: usize,
    bytes_each: usize,
) -> Result<LayerId, Error> {
    let id = fs.create_layer(name, None)?;
    fill_files(fs, id, files, bytes_each)?;
    fs.commit_layer(name)?;
    Ok(id)
}

/// Creates the fixture files `0..files` of `file_content(i, bytes_each)` in writable layer `id`.
pub fn fill_files(fs: &Fs, id: LayerId, files: usize, bytes_each: usize) -> Result<(), Error> {
    fill_files_per_dir(fs, id, files, bytes_each, 1000)
}

/// As `fill_files`, with `per_dir` files to a directory: file `f{i}` in `d{i / per_dir}`
/// (`file_path` names them for 1,000).
fn fill_files_per_dir(
    fs: &Fs,
    id: LayerId,
    files: usize,
    bytes_each: usize,
    per_dir: usize,
) -> Result<(), Error> {
    let per_dir = per_dir.max(1);
    let mut dir = Ino::ROOT;
    for i in 0..files {
        if i % per_dir == 0 {
            let dir_name = format!("d{}", i / per_dir);
            dir = fs.mkdir(id, Ino::ROOT, dir_name.as_bytes(), 0o755, 0, 0, now())?.ino;
        }
        let kind = FileType::Regular;
        let f = fs.mknod(id, dir, format!("f{i}").as_bytes(), kind, 0o644, 0, 0, 0, now())?;
        fs.write(id, f.ino, 0, &file_content(i, bytes_each), now())?;
    }
    Ok(())
}

/// Commits a base layer `name` holding `files` small files ("file {i}"), `per_dir` to a
/// directory: file `f{i}` is in directory `d{i / per_dir}` under the root (the diff bench's
/// images of the same shape at different sizes); returns its id.
pub fn layer_with_files_per_dir(
    fs: &Fs,
    name: &str,
    files: usize,
    per_dir: usize,
) -> Result<LayerId, Error> {
    let id = fs.create_layer(name, None)?;
    fill_files_per_dir(fs, id, files, 0, per_dir)?;
    fs.commit_layer(name)?;
    Ok(id)
}

/// A criterion group for workloads of milliseconds to seconds (the file-level benches, in the
/// engine and through the mount): 10 samples, one warm-up iteration, flat sampling.
pub fn heavy<'a>(
    c: &'a mut criterion::Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(criterion::SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(1))
        .measurement_time(std::time::Duration::from_secs(2));
    group
}

/// The value of `result`, or a panic naming `what` failed (a bench has no error to return).
pub fn ok<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Stacks `depth` committed layers on `base` (each writes one file of its own); returns the
/// name and id of the top one.
pub fn chain(fs: &Fs, base: &str, depth: usize) -> Result<(String, LayerId), Error> {
    let mut parent = base.to_string();
    let mut id = fs.layer_id(base)?;
    for d in 0..depth {
        let name = format!("{base}-depth{}", d + 1);
        id = fs.create_layer(&name, Some(&parent))?;
        let kind = FileType::Regular;
        let level = format!("level{d}");
        let f = fs.mknod(id, Ino::ROOT, level.as_bytes(), kind, 0o644, 0, 0, 0, now())?;
        fs.write(id, f.ino, 0, b"x", now())?;
        fs.commit_layer(&name)?;
        parent = name;
    }
    Ok((parent, id))
}

/// The bytes at `offset` of a large test file: every 8-byte word holds its own offset plus one,
/// so a block read from the wrong place, or all zeros, does not compare equal.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    assert!(
        (offset | len as u64) & 7 == 0,
        "pattern: unaligned {offset} {len}"
    );
    (0..len as u64 / 8)
        .flat_map(|w| (offset + w * 8 + 1).to_le_bytes())
        .collect()
}

/// Entries below a layer directory, counted by kind (a bench checks an untar with it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeCount {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub others: u64,
    /// Bytes of regular files, each inode counted once (hard links share their data).
    pub file_bytes: u64,
}

/// Counts what lies below `dir` of layer `id` (not `dir` itself), without recursion.
pub fn count_tree(fs: &Fs, id: LayerId, dir: Ino) -> Result<TreeCount, Error> {
    let mut count = TreeCount::default();
    let mut seen = HashSet::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = fs.readdir(id, dir, after.as_deref(), 256)?;
            for entry in &batch {
                match entry.kind {
                    FileType::Directory => {
                        count.dirs += 1;
                        stack.push(entry.ino);
                    }
                    FileType::Regular => {
                        count.files += 1;
                        if seen.insert(entry.ino) {
                            count.file_bytes += fs.getattr(id, entry.ino)?.size;
                        }
                    }
                    FileType::Symlink => count.symlinks += 1,
                    _ => count.others += 1,
                }
            }
            match batch.last() {
                Some(last) => after = Some(last.name.clone()),
                None => break,
            }
        }
    }
    Ok(count)
}

/// Trees of a Debian 12 system that make a tarball of 20 to 60 MB, in order of preference:
/// Python's standard library (56 MB, 1,433 files, 1,536 entries on the development machine),
/// then Perl's modules. `LCFS_BENCH_TREE` (a path relative to /) overrides them.
pub const SYSTEM_TREES: &[&str] = &[
    "usr/lib/python3.11",
    "usr/share/perl",
    "usr/lib/x86_64-linux-gnu/perl",
];

/// An uncompressed tarball of a system tree, with what it holds counted from the tree itself.
pub struct Tarball {
    /// The tree, relative to /.
    pub tree: PathBuf,
    pub bytes: Vec<u8>,
    /// The tree as `count_tree` should find it in a layer the tarball was applied to (the
    /// directories above the tree included, as the apply creates them).
    pub expected: TreeCount,
}

/// A tarball of the first of `SYSTEM_TREES` this machine has, made by `tar` (sorted by name,
/// numeric owners); `Err` says why there is none.
pub fn system_tarball() -> Result<Tarball, String> {
    let chosen = match std::env::var("LCFS_BENCH_TREE") {
        Ok(tree) => vec![tree],
        Err(_) => SYSTEM_TREES.iter().map(|t| t.to_string()).collect(),
    };
    let tree = chosen
        .iter()
        .map(PathBuf::from)
        .find(|t| Path::new("/").join(t).is_dir())
        .ok_or_else(|| format!("none of {chosen:?} is a directory here"))?;
    let out = Command::new("tar")
        .args(["-C", "/", "--sort=name", "--numeric-owner", "-cf", "-"])
        .arg(&tree)
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar of /{}: {}",
            tree.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut expected = count_host_tree(&Path::new("/").join(&tree))
        .map_err(|e| format!("cannot walk /{}: {e}", tree.display()))?;
    // The tree's own directory and those above it.
    expected.dirs += tree.components().count() as u64;
    Ok(Tarball {
        tree,
        bytes: out.stdout,
        expected,
    })
}

/// Counts what lies below `root` on the host, as `count_tree` counts a layer.
fn count_host_tree(root: &Path) -> std::io::Result<TreeCount> {
    let mut count = TreeCount::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            let kind = meta.file_type();
            if kind.is_dir() {
                count.dirs += 1;
                stack.push(entry.path());
            } else if kind.is_file() {
                count.files += 1;
                if seen.insert((meta.dev(), meta.ino())) {
                    count.file_bytes += meta.len();
                }
            } else if kind.is_symlink() {
                count.symlinks += 1;
            } else {
                count.others += 1;
            }
        }
    }
    Ok(count)
}
