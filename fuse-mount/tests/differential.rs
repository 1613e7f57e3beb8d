//! Differential test: one generated sequence of file system calls runs on a directory of a
//! writable lcfs layer and on a tmpfs directory (Linux's reference behaviour); every call must
//! give the same result (errno, bytes, stat fields, times set explicitly, to the nanosecond),
//! and at intervals and at the end the two trees must be identical (names, types, modes,
//! nlinks, sizes, owners, bytes, link targets). Names come from a small pool so collisions
//! happen; sizes and offsets are biased to block edges. The seed is printed; `LCFS_SEED=<n>`
//! replays a run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Mounted, Rng};

/// Names for files first (`FILE_NAMES` of them), then names for directories; calls mostly
/// use a name of the right kind, sometimes the other.
const PATHS: [&str; 12] = [
    "a", "b", "d/a", "d/b", "d/e/a", "e/a", "f", "d", "e", "d/e", "e/d", "d/d",
];
const FILE_NAMES: u64 = 7;
const SIZES: [u64; 9] = [0, 1, 100, 4095, 4096, 4097, 65536, 70000, 300_000];
const MODES: [u32; 7] = [0o644, 0o755, 0o600, 0o4755, 0o2755, 0o1777, 0o000];
const OPS: usize = 3000;

/// The result of one call as the comparison sees it.
fn outcome<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!(
            "errno {:?}",
            e.raw_os_error()
                .map_or_else(|| format!("{:?}", e.kind()), |c| c.to_string())
        ),
    }
}

/// What a path looks like, field by field (no inode numbers or ctimes, which differ).
fn describe(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Err(e) => outcome::<()>(Err(e)),
        Ok(m) => {
            let kind = m.file_type();
            let size = if kind.is_dir() { 0 } else { m.len() };
            let mut text = format!(
                "mode {:o} nlink {} size {} uid {} gid {}",
                m.mode(),
                m.nlink(),
                size,
                m.uid(),
                m.gid(),
            );
            if kind.is_file() {
                let bytes = fs::read(path).unwrap_or_default();
                text += &format!(" bytes {:016x}", fnv(&bytes));
            } else if kind.is_symlink() {
                text += &format!(" -> {:?}", fs::read_link(path).ok());
            } else if kind.is_dir() {
                let mut names: Vec<String> = fs::read_dir(path)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                text += &format!(" entries {names:?}");
            }
            text
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One generated call, applied the same way to either root.
#[derive(Clone, Debug)]
enum Op {
    Create(usize),
    Write(usize, u64, u64, u8),
    Read(usize),
    Truncate(usize, u64),
    Mkdir(usize),
    Rmdir(usize),
    Unlink(usize),
    Rename(usize, usize),
    Link(usize, usize),
    Symlink(usize, usize),
    Chmod(usize, u32),
    SetTimes(usize, u64, u32),
    OpenUnlinkRead(usize),
    Stat(usize),
}

fn generate(rng: &mut Rng) -> Op {
    let any = |rng: &mut Rng| rng.below(PATHS.len() as u64) as usize;
    let file = |rng: &mut Rng| {
        if rng.below(5) == 0 {
            any(rng)
        } else {
            rng.below(FILE_NAMES) as usize
        }
    };
    let dir = |rng: &mut Rng| {
        if rng.below(5) == 0 {
            any(rng)
        } else {
            (FILE_NAMES + rng.below(5)) as usize
        }
    };
    let p = file;
    match rng.below(31) {
        0..=4 => Op::Create(p(rng)),
        5..=10 => Op::Write(
            p(rng),
            *rng.pick(&SIZES),
            *rng.pick(&SIZES[..7]),
            rng.below(255) as u8 + 1,
        ),
        11..=12 => Op::Read(p(rng)),
        13..=14 => Op::Truncate(p(rng), *rng.pick(&SIZES)),
        15..=17 => Op::Mkdir(dir(rng)),
        18 => Op::Rmdir(dir(rng)),
        19..=20 => Op::Unlink(p(rng)),
        21 => Op::Rename(dir(rng), dir(rng)),
        22..=23 => Op::Rename(any(rng), any(rng)),
        24 => Op::Link(p(rng), p(rng)),
        25 => Op::Symlink(p(rng), p(rng)),
        26 => Op::Chmod(p(rng), *rng.pick(&MODES)),
        27 => Op::SetTimes(
            p(rng),
            1_600_000_000 + rng.below(1000),
            rng.below(1_000_000_000) as u32,
        ),
        28 => Op::OpenUnlinkRead(p(rng)),
        _ => Op::Stat(any(rng)),
    }
}

fn apply(root: &Path, op: &Op) -> String {
    let at = |i: &usize| root.join(PATHS[*i]);
    match op {
        Op::Create(i) => outcome(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(at(i))
                .map(|_| ()),
        ),
        Op::Write(i, offset, len, byte) => outcome(
            OpenOptions::new()
                .write(true)
                .open(at(i))
                .and_then(|f| f.write_at(&vec![*byte; *len as usize], *offset)),
        ),
        Op::Read(i) => outcome(fs::read(at(i)).map(|b| (b.len(), fnv(&b)))),
        Op::Truncate(i, size) => outcome(
            OpenOptions::new()
                .write(true)
                .open(at(i))
                .and_then(|f| f.set_len(*size)),
        ),
        Op::Mkdir(i) => outcome(fs::create_dir(at(i))),
        Op::Rmdir(i) => outcome(fs::remove_dir(at(i))),
        Op::Unlink(i) => outcome(fs::remove_file(at(i))),
        Op::Rename(i, j) => outcome(fs::rename(at(i), at(j))),
        Op::Link(i, j) => outcome(fs::hard_link(at(i), at(j))),
        Op::Symlink(i, j) => outcome(std::os::unix::fs::symlink(PATHS[*i], at(j))),
        Op::Chmod(i, mode) => outcome(fs::set_permissions(
            at(i),
            fs::Permissions::from_mode(*mode),
        )),
        Op::SetTimes(i, sec, nsec) => {
            let t = UNIX_EPOCH + Duration::new(*sec, *nsec);
            outcome(File::open(at(i)).and_then(|f| {
                f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))?;
                let m = f.metadata()?;
                Ok((m.mtime(), m.mtime_nsec(), m.atime(), m.atime_nsec()))
            }))
        }
        Op::OpenUnlinkRead(i) => outcome(open_unlink_read(&at(i))),
        Op::Stat(i) => describe(&at(i)),
    }
}

/// Opens a file, unlinks it, then reads and writes through the handle (POSIX keeps it).
fn open_unlink_read(path: &Path) -> std::io::Result<(usize, u64)> {
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(ErrorKind::InvalidInput.into());
    }
    fs::remove_file(path)?;
    f.write_at(b"still here", 3)?;
    let mut buf = vec![0u8; 70_000];
    let n = f.read_at(&mut buf, 0)?;
    Ok((n, fnv(&buf[..n])))
}

fn compare_trees(a: &Path, b: &Path, step: usize, seed: u64) {
    for p in PATHS.iter().map(PathBuf::from).chain([PathBuf::from(".")]) {
        let (x, y) = (describe(&a.join(&p)), describe(&b.join(&p)));
        assert_eq!(
            x, y,
            "LCFS_SEED={seed}: trees differ at {p:?} after step {step}"
        );
    }
}

#[test]
fn the_mount_behaves_like_tmpfs_call_for_call() {
    require!();
    let seed = common::seed("differential");
    let m = Mounted::new("1G");
    m.layer(&["create", "diff"]);
    let ours = m.layer_dir("diff").join("root");
    let reference = tempfile::tempdir_in("/dev/shm").unwrap();
    let theirs = reference.path().join("root");
    for root in [&ours, &theirs] {
        fs::create_dir(root).unwrap();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut rng = Rng(seed);
    let start = SystemTime::now();
    let mut succeeded = 0;
    // The directories first (d, e, d/e), then generated calls.
    let setup = [Op::Mkdir(7), Op::Mkdir(8), Op::Mkdir(9)];
    for step in 0..OPS {
        let op = setup
            .get(step)
            .cloned()
            .unwrap_or_else(|| generate(&mut rng));
        let (x, y) = (apply(&ours, &op), apply(&theirs, &op));
        succeeded += usize::from(x.starts_with("ok") || x.starts_with("mode"));
        if std::env::var_os("LCFS_TRACE").is_some() {
            eprintln!("{step} {op:?} {x}");
        }
        assert_eq!(
            x, y,
            "LCFS_SEED={seed}: step {step} {op:?}: lcfs {x}, tmpfs {y}"
        );
        if step % 250 == 249 {
            compare_trees(&ours, &theirs, step, seed);
        }
    }
    compare_trees(&ours, &theirs, OPS, seed);
    eprintln!(
        "differential: {OPS} calls identical ({succeeded} succeeded) in {:.1?}",
        start.elapsed().unwrap_or_default()
    );
    assert!(
        succeeded > OPS / 5,
        "too few calls succeeded to test much: {succeeded}"
    );
}
