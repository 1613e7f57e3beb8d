//! Self-consistency of the model under pseudo-random operation sequences (seeded xorshift;
//! a failure names its seed and step): after every operation `check_invariants` holds, a failed
//! operation leaves the model unchanged, and every path of `dump_layer` resolves by lookup to
//! the inode and attributes the dump gives.

mod common;

use common::t;
use lcfs_model::{Errno, FileType, Ino, LayerId, Model, RenameFlags, SetAttr, XattrFlags};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NAMES: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
const LAYERS: [&str; 3] = ["l0", "l1", "l2"];

/// One random operation; returns whether it succeeded.
fn step(m: &mut Model, rng: &mut Rng, now: i64) -> Result<(), Errno> {
    let layers = m.layers();
    let layer_name = LAYERS[rng.below(LAYERS.len())];
    if layers.is_empty() || rng.below(20) == 0 {
        let parent = layers.get(rng.below(layers.len() + 1)).map(|info| info.name.clone());
        return m.create_layer(layer_name, parent.as_deref()).map(drop);
    }
    let layer = layers[rng.below(layers.len())].id;
    // Directories and other inodes of the chosen layer, from its dump.
    let dump = m.dump_layer(layer)?;
    let inos: Vec<Ino> = dump.inodes.keys().copied().collect();
    let dirs: Vec<Ino> = dump
        .inodes
        .iter()
        .filter(|(_, d)| d.attr.kind == FileType::Directory)
        .map(|(i, _)| *i)
        .collect();
    let ino = inos[rng.below(inos.len())];
    let dir = dirs[rng.below(dirs.len())];
    let other = dirs[rng.below(dirs.len())];
    let name = NAMES[rng.below(NAMES.len())];
    let newname = NAMES[rng.below(NAMES.len())];
    let now = t(now);
    let offset = [0, 1, 4095, 4096, 65537][rng.below(5)];
    match rng.below(16) {
        0 => m.commit_layer(layer_name),
        1 => m.remove_layer(layer_name),
        2 => {
            let kind = FileType::ALL[rng.below(7)];
            m.mknod(layer, dir, name, kind, 0o644, 3, 1, 2, now).map(drop)
        }
        3 => m.mkdir(layer, dir, name, 0o755, 0, 0, now).map(drop),
        4 => m.symlink(layer, dir, name, b"target", 0, 0, now).map(drop),
        5 => m.link(layer, ino, other, newname, now).map(drop),
        6 => m.unlink(layer, dir, name, now),
        7 => m.rmdir(layer, dir, name, now),
        8..=10 => {
            let flags = RenameFlags { noreplace: rng.below(4) == 0, exchange: rng.below(4) == 0 };
            m.rename(layer, dir, name, other, newname, flags, now)
        }
        11 => m.write(layer, ino, offset, &vec![9; rng.below(5000)], now).map(drop),
        12 => {
            let set = SetAttr { size: Some(offset), perm: Some(0o600), ..Default::default() };
            m.setattr(layer, ino, &set, now).map(drop)
        }
        13 => m.setxattr(layer, ino, name, newname, XattrFlags::Create, now),
        14 => m.removexattr(layer, ino, name, now),
        _ => m.read(layer, ino, offset, 100).map(drop),
    }
}

/// Every path of every layer resolves by lookup to what the dump says.
fn check_paths(m: &Model, layer: LayerId) {
    let dump = m.dump_layer(layer).unwrap();
    for (path, ino) in &dump.paths {
        let mut at = Ino::ROOT;
        for part in path.split(|b| *b == b'/').filter(|part| !part.is_empty()) {
            at = m.lookup(layer, at, part).unwrap().ino;
        }
        assert_eq!(at, *ino, "{}", String::from_utf8_lossy(path));
        assert_eq!(m.getattr(layer, at).unwrap(), dump.inodes[ino].attr);
    }
}

#[test]
fn random_sequences_keep_the_invariants_and_failures_change_nothing() {
    let (mut successes, mut failures) = (0, 0);
    for seed in 1..=300u64 {
        let mut rng = Rng(seed);
        let mut m = Model::new();
        for now in 0..150 {
            let before = m.clone();
            match step(&mut m, &mut rng, now) {
                Ok(()) => successes += 1,
                Err(_) => {
                    failures += 1;
                    assert_eq!(m, before, "seed {seed} step {now}: a failure changed the model");
                }
            }
            m.check_invariants();
        }
        for info in m.layers() {
            check_paths(&m, info.id);
        }
    }
    // Both outcomes must be common, or the sequences test little.
    assert!(successes > 5_000 && failures > 5_000, "{successes} ok, {failures} failed");
}
