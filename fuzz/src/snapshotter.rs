//! The `snapshotter` target: an arbitrary sequence of snapshot operations (containerd's
//! Prepare, View, Mounts, Commit, Remove, Stat, Update, Usage, List) through
//! `snapshotter/ops.rs` against a real engine, and arbitrary filter strings through
//! `snapshotter/filter.rs` (the gRPC framing is tonic's and is not fuzzed).
//!
//! Input (`arbitrary`): the operations, with keys, parents and commit names from a small pool
//! (so that operations meet) or arbitrary strings, labels from a pool or arbitrary, field
//! paths and filter strings made of filter pieces or arbitrary.
//!
//! Properties:
//! - nothing panics, and every error is one of the gRPC codes ops.rs documents (NotFound,
//!   AlreadyExists, FailedPrecondition, InvalidArgument) or ResourceExhausted (a full device);
//! - after each List with filters: it holds exactly the snapshots of the unfiltered List that
//!   `filter.rs` matches; every filter string either parses or is refused, never panics;
//! - after the sequence: the unfiltered List names each snapshot once, and each one Stats to
//!   the same kind, parent, labels and times; Usage answers for each;
//! - after unmount, fsck reports the image clean.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use lcfs::{BlockDevice, Fs, MemDevice, MkfsOptions};
use lcfs_fuse::fuzzing::{Code, Info, Kind, Snapshots};

use crate::image::mount_options;

/// Blocks of the device (8 MiB: snapshots hold no data here).
pub const DEVICE_BLOCKS: u64 = 2048;
const MOUNTPOINT: &str = "/var/lib/lcfs-fuzz";

const KEYS: [&str; 12] = [
    "",
    "a",
    "b",
    "c",
    "default/1/sha256:1111",
    "default/2/sha256:2222",
    "extract-1 sha256:abcd",
    "k8s.io/5/abc",
    "..",
    "a/../b",
    "x\u{0}y",
    "sha256:0123456789abcdef",
];

const LABEL_KEYS: [&str; 6] = [
    "containerd.io/snapshot.ref",
    "containerd.io/gc.root",
    "a",
    "a.b",
    "",
    "x=y",
];

const PATHS: [&str; 6] = ["labels", "labels.a", "labels.a.b", "", "name", "labels.containerd.io/gc.root"];

const FILTER_PIECES: [&str; 16] = [
    "kind==active",
    "kind==committed",
    "kind!=view",
    "name==a",
    "name~=^default/",
    "parent==a",
    "parent",
    "labels.a",
    "labels.\"a.b\"==v",
    "labels.\"containerd.io/snapshot.ref\"",
    ",",
    "||",
    "name~=/[a-/",
    "labels.a==\"x\\\"y\"",
    " ",
    "name~=|.*|",
];

/// A key, parent or commit name.
#[derive(Debug)]
pub struct Key(pub String);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Key(if u.ratio(7, 8)? {
            (*u.choose(&KEYS)?).to_string()
        } else {
            String::arbitrary(u)?
        }))
    }
}

/// Labels of a request.
#[derive(Debug)]
pub struct Labels(pub HashMap<String, String>);

impl<'a> Arbitrary<'a> for Labels {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut labels = HashMap::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let key = if u.ratio(3, 4)? {
                (*u.choose(&LABEL_KEYS)?).to_string()
            } else {
                String::arbitrary(u)?
            };
            let value = if u.ratio(3, 4)? {
                (*u.choose(&["", "v", "sha256:1111"])?).to_string()
            } else if u.ratio(1, 8)? {
                "v".repeat(u.int_in_range(0..=5000)?)
            } else {
                String::arbitrary(u)?
            };
            labels.insert(key, value);
        }
        Ok(Labels(labels))
    }
}

/// A field path of Update, or a filter string of List.
#[derive(Debug)]
pub struct Text(pub String);

impl Text {
    fn from_pool(u: &mut Unstructured<'_>, pool: &[&str]) -> arbitrary::Result<Text> {
        if u.ratio(1, 4)? {
            return Ok(Text(String::arbitrary(u)?));
        }
        let mut text = String::new();
        for _ in 0..u.int_in_range(1..=3)? {
            text.push_str(u.choose(pool)?);
        }
        Ok(Text(text))
    }
}

#[derive(Debug)]
pub struct FieldPath(pub Text);

impl<'a> Arbitrary<'a> for FieldPath {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Text::from_pool(u, &PATHS).map(FieldPath)
    }
}

#[derive(Debug)]
pub struct Filter(pub Text);

impl<'a> Arbitrary<'a> for Filter {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Text::from_pool(u, &FILTER_PIECES).map(Filter)
    }
}

/// One snapshot operation (one RPC).
#[derive(Debug)]
pub enum Op {
    Prepare { key: Key, parent: Key, labels: Labels },
    View { key: Key, parent: Key, labels: Labels },
    Mounts { key: Key },
    Commit { name: Key, key: Key, labels: Labels },
    Remove { key: Key },
    Stat { key: Key },
    Update { key: Key, labels: Labels, paths: Option<Vec<FieldPath>> },
    Usage { key: Key },
    List { filters: Vec<Filter> },
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=8u8)? {
            0 => Op::Prepare { key: u.arbitrary()?, parent: u.arbitrary()?, labels: u.arbitrary()? },
            1 => Op::View { key: u.arbitrary()?, parent: u.arbitrary()?, labels: u.arbitrary()? },
            2 => Op::Mounts { key: u.arbitrary()? },
            3 => Op::Commit { name: u.arbitrary()?, key: u.arbitrary()?, labels: u.arbitrary()? },
            4 => Op::Remove { key: u.arbitrary()? },
            5 => Op::Stat { key: u.arbitrary()? },
            6 => Op::Update { key: u.arbitrary()?, labels: u.arbitrary()?, paths: u.arbitrary()? },
            7 => Op::Usage { key: u.arbitrary()? },
            _ => Op::List { filters: u.arbitrary()? },
        })
    }
}

fn template() -> &'static MemDevice {
    static TEMPLATE: OnceLock<MemDevice> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mem = Arc::new(MemDevice::new(DEVICE_BLOCKS));
        let dev: Arc<dyn BlockDevice> = mem.clone();
        Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())
            .unwrap_or_else(|e| panic!("mkfs: {e}"));
        mem.snapshot()
    })
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Active => "active",
        Kind::View => "view",
        Kind::Committed => "committed",
        Kind::Unknown => "unknown",
    }
}

/// Checks the code of a failed operation.
fn allowed(op: &Op, code: Code, message: &str) {
    assert!(
        matches!(
            code,
            Code::NotFound
                | Code::AlreadyExists
                | Code::FailedPrecondition
                | Code::InvalidArgument
                | Code::ResourceExhausted
        ),
        "{op:?} failed with {code:?}: {message}"
    );
}

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let ops: Vec<Op> = u.arbitrary().unwrap_or_default();
    run(&ops);
}

/// Runs `ops`; returns how many succeeded.
pub fn run(ops: &[Op]) -> usize {
    let dev: Arc<dyn BlockDevice> = Arc::new(template().snapshot());
    let fs = Fs::mount(Arc::clone(&dev), &mount_options()).unwrap_or_else(|e| panic!("mount: {e}"));
    let snapshots = Snapshots::new(Arc::new(fs), Path::new(MOUNTPOINT));
    let s = snapshots.ops();
    let mut succeeded = 0;
    for op in ops {
        let outcome = match op {
            Op::Prepare { key, parent, labels } => s.create(&key.0, &parent.0, &labels.0, false).map(drop),
            Op::View { key, parent, labels } => s.create(&key.0, &parent.0, &labels.0, true).map(drop),
            Op::Mounts { key } => s.mounts(&key.0).map(drop),
            Op::Commit { name, key, labels } => s.commit(&name.0, &key.0, &labels.0),
            Op::Remove { key } => s.remove(&key.0),
            Op::Stat { key } => s.stat(&key.0).map(drop),
            Op::Update { key, labels, paths } => {
                let info = Info {
                    name: key.0.clone(),
                    labels: labels.0.clone(),
                    ..Info::default()
                };
                let paths = paths.as_ref().map(|p| p.iter().map(|p| p.0 .0.clone()).collect());
                s.update(info, paths).map(drop)
            }
            Op::Usage { key } => s.usage(&key.0).map(drop),
            Op::List { filters } => {
                let filters: Vec<String> = filters.iter().map(|f| f.0 .0.clone()).collect();
                let listed = s.list(&filters);
                if let Ok(listed) = &listed {
                    check_filtered(&s.list(&[]).unwrap_or_else(|e| panic!("List: {e:?}")), listed, &filters);
                }
                listed.map(drop)
            }
        };
        match outcome {
            Ok(()) => succeeded += 1,
            Err(failure) => allowed(op, failure.code, &failure.message),
        }
    }
    // List agrees with Stat.
    let all = s.list(&[]).unwrap_or_else(|e| panic!("List: {e:?}"));
    let mut names = std::collections::HashSet::new();
    for info in &all {
        assert!(names.insert(info.name.clone()), "List names {:?} twice", info.name);
        let stat = s
            .stat(&info.name)
            .unwrap_or_else(|e| panic!("List has {:?}, Stat fails: {e:?}", info.name));
        assert!(
            stat.kind == info.kind
                && stat.name == info.name
                && stat.parent == info.parent
                && stat.labels == info.labels
                && stat.created_at == info.created_at
                && stat.updated_at == info.updated_at,
            "List {info:?} and Stat {stat:?} disagree"
        );
        s.usage(&info.name)
            .unwrap_or_else(|e| panic!("Usage of listed {:?}: {e:?}", info.name));
    }
    let fs = Arc::try_unwrap(snapshots.into_fs()).unwrap_or_else(|_| panic!("the engine is shared"));
    fs.unmount().unwrap_or_else(|e| panic!("unmount: {e}"));
    let report = lcfs::fsck::check(dev).unwrap_or_else(|e| panic!("fsck: {e}"));
    assert!(report.is_clean(), "fsck after {ops:?}: {report}");
    succeeded
}

/// A filtered List holds exactly what filter.rs matches of the unfiltered one.
fn check_filtered(all: &[Info], listed: &[Info], filters: &[String]) {
    let listed: std::collections::HashSet<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    for info in all {
        let matches = lcfs_fuse::fuzzing::filter_matches(
            filters,
            kind_name(&info.kind),
            &info.name,
            &info.parent,
            &info.labels,
        )
        .unwrap_or_else(|e| panic!("List took {filters:?}, the parser refuses it: {e}"));
        assert_eq!(
            matches,
            listed.contains(info.name.as_str()),
            "List {filters:?} and filter.rs disagree on {info:?}"
        );
    }
    assert!(listed.len() <= all.len(), "a filtered List has more than the whole");
}
