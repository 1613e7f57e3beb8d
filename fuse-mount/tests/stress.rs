//! Concurrent stress through the mount, then a model comparison and fsck.
//!
//! A committed base layer holds a tree of files. Four container layers are clones of it; in
//! each, a writer thread runs seeded random writes, truncates, creates, renames and unlinks
//! (on its own files and on files inherited from the base) and keeps a model of what its layer
//! must hold. Two reader threads read the base layer all along and must always see the base's
//! bytes (no write in a child may leak into its parent). A churn thread creates layers from
//! the base, writes and reads in them, lists and removes them, through the CLI. At the end
//! every container layer must equal its model, before and after a clean unmount and a new
//! mount, and fsck must find the image clean. The seed is printed; `LCFS_SEED` replays it
//! (thread interleavings vary; the operations of each thread do not).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{Mounted, Rng};

const CONTAINERS: usize = 4;
const WRITER_OPS: usize = 1500;
const BASE_FILES: usize = 40;

fn base_bytes(i: usize) -> Vec<u8> {
    (0..(i * 3001) % 70_000 + 1)
        .map(|b| (b * 31 + i) as u8)
        .collect()
}

/// Files of one layer's tree as the test expects them: relative path -> bytes.
type Model = BTreeMap<String, Vec<u8>>;

fn base_model() -> Model {
    (0..BASE_FILES)
        .map(|i| (format!("base/f{i}"), base_bytes(i)))
        .collect()
}

/// Every regular file under `root`, relative path -> bytes.
fn read_tree(root: &Path) -> Model {
    let mut out = Model::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// One writer: random changes in `root`, mirrored in the returned model.
fn writer(root: &Path, seed: u64) -> Model {
    let mut rng = Rng(seed);
    let mut model = base_model();
    let names: Vec<String> = (0..12)
        .map(|i| format!("w/n{i}"))
        .chain((0..BASE_FILES).step_by(3).map(|i| format!("base/f{i}")))
        .collect();
    fs::create_dir(root.join("w")).unwrap();
    for _ in 0..WRITER_OPS {
        let name = rng.pick(&names).clone();
        let path = root.join(&name);
        match rng.below(10) {
            0..=4 => {
                let offset = *rng.pick(&[0u64, 1, 4095, 4096, 10_000, 65_537]);
                let len = *rng.pick(&[1usize, 100, 4096, 5000, 20_000]);
                let byte = rng.below(256) as u8;
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .unwrap();
                f.write_at(&vec![byte; len], offset).unwrap();
                let data = model.entry(name).or_default();
                let end = offset as usize + len;
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[offset as usize..end].fill(byte);
            }
            5 => {
                if let Some(data) = model.get_mut(&name) {
                    let size = rng.below(30_000) as usize;
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .unwrap()
                        .set_len(size as u64)
                        .unwrap();
                    data.resize(size, 0);
                }
            }
            6 => {
                let removed = fs::remove_file(&path).is_ok();
                assert_eq!(removed, model.remove(&name).is_some(), "unlink {name}");
            }
            7 => {
                let to = rng.pick(&names).clone();
                if model.contains_key(&name) {
                    fs::rename(&path, root.join(&to)).unwrap();
                    let data = model.remove(&name).unwrap();
                    model.insert(to, data);
                }
            }
            _ => {
                let got = fs::read(&path).ok();
                assert_eq!(
                    got.as_ref(),
                    model.get(&name),
                    "read {name} in {}",
                    root.display()
                );
            }
        }
    }
    model
}

#[test]
fn threads_in_several_layers_with_layer_churn_then_fsck_and_models_agree() {
    require!();
    let seed = common::seed("stress");
    let mut m = Mounted::new("2G");
    m.layer(&["create", "base"]);
    let base = m.layer_dir("base");
    fs::create_dir(base.join("base")).unwrap();
    for (path, bytes) in base_model() {
        fs::write(base.join(path), bytes).unwrap();
    }
    m.layer(&["commit", "base"]);
    for c in 0..CONTAINERS {
        m.layer(&["create", &format!("c{c}"), "--parent", "base"]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (stop, reads, base) = (Arc::clone(&stop), Arc::clone(&reads), base.clone());
            std::thread::spawn(move || {
                let expected = base_model();
                let mut rng = Rng(seed ^ (r + 100));
                while !stop.load(Ordering::SeqCst) {
                    let i = rng.below(BASE_FILES as u64) as usize;
                    let name = format!("base/f{i}");
                    assert_eq!(
                        fs::read(base.join(&name)).unwrap(),
                        expected[&name],
                        "base changed: {name}"
                    );
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let churn = {
        let (stop, mount) = (Arc::clone(&stop), m.mount_arg());
        let layers = m.mountpoint.join("layers");
        std::thread::spawn(move || {
            let mut cycles = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("t{cycles}");
                common::run(&["layer", "create", &name, "--parent", "base", &mount]);
                let dir = layers.join(&name);
                fs::write(dir.join("base/f1"), b"churn").unwrap();
                assert_eq!(fs::read(dir.join("base/f1")).unwrap(), b"churn");
                assert!(common::run(&["layer", "list", &mount]).contains(&name));
                common::run(&["layer", "remove", &name, &mount]);
                assert!(!dir.exists(), "removed layer {name} still visible");
                cycles += 1;
            }
            cycles
        })
    };
    let writers: Vec<_> = (0..CONTAINERS)
        .map(|c| {
            let root = m.layer_dir(&format!("c{c}"));
            std::thread::spawn(move || writer(&root, seed.wrapping_add(c as u64)))
        })
        .collect();
    let models: Vec<Model> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let cycles = churn.join().unwrap();
    eprintln!(
        "stress: {CONTAINERS} writers x {WRITER_OPS} ops, {} base reads, \
         {cycles} layer create/remove cycles",
        reads.load(Ordering::Relaxed)
    );
    assert!(cycles > 0, "the churn thread never completed a cycle");
    for (c, model) in models.iter().enumerate() {
        assert!(
            read_tree(&m.layer_dir(&format!("c{c}"))) == *model,
            "layer c{c} differs from its model (LCFS_SEED={seed})"
        );
    }
    m.umount();
    m.fsck_clean();
    m.mount();
    for (c, model) in models.iter().enumerate() {
        assert!(
            read_tree(&m.layer_dir(&format!("c{c}"))) == *model,
            "layer c{c} differs after remount (LCFS_SEED={seed})"
        );
    }
    assert_eq!(read_tree(&base), base_model());
    m.umount();
    m.fsck_clean();
}
