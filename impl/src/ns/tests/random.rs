//! Goal: file data and `blocks` match a plain byte-vector model through any sequence of writes,
//! truncates, checkpoints and clones, with allocators that hand out short runs; after every
//! checkpoint the data blocks each layer holds are exactly those its extents own (no leak, no
//! double reference). Method: seeded random operations (the seed is printed; replay one with
//! `LCFS_NS_SEED=<seed>`), offsets and sizes biased to page edges as TESTING.md asks.

use std::collections::BTreeSet;

use super::support::*;
use crate::ns::{self, PAGE_SIZE};
use crate::tree::Owned;
use crate::types::{Ino, SetAttr};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A size or offset: half the time a page edge, else uniform below `max`.
    fn edge_biased(&mut self, max: u64) -> u64 {
        const EDGES: [u64; 10] = [0, 1, 511, 512, 4095, 4096, 4097, 65535, 65536, 65537];
        if self.below(2) == 0 {
            EDGES[self.below(EDGES.len() as u64) as usize] + 4096 * self.below(3)
        } else {
            self.below(max)
        }
    }
}

fn nonzero_pages(data: &[u8]) -> u64 {
    data.chunks(PAGE_SIZE).filter(|c| c.iter().any(|&b| b != 0)).count() as u64
}

fn owned(fx: &Fixture, index: usize) -> BTreeSet<u64> {
    let layer = &fx.layers[index];
    let mut blocks = BTreeSet::new();
    let mut visit = |o: Owned<'_>| {
        if let Owned::Item { key, value } = o {
            if let Some((first, count)) = ns::owned_extent(key, value, layer.id) {
                for b in first.0..first.0 + count {
                    assert!(blocks.insert(b), "block {b} referenced twice");
                }
            }
        }
        Ok(())
    };
    layer.tree.visit_owned(&fx.store, layer.id, &mut visit).unwrap();
    blocks
}

fn held(fx: &Fixture, index: usize, allocated: &BTreeSet<u64>) -> BTreeSet<u64> {
    let id = fx.layers[index].id;
    allocated
        .iter()
        .copied()
        .filter(|b| fx.data.owner(crate::types::BlockNo(*b)) == Some(id))
        .collect()
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let mut fx = Fixture::new();
    fx.data.run_max = [0, 1, 2, 5][rng.below(4) as usize];
    fx.data.contiguous = rng.below(2) == 0;
    let files: Vec<Ino> = (0..2).map(|i| fx.create(0, Ino::ROOT, &[b'f', b'0' + i]).ino).collect();
    let mut model: Vec<Vec<u8>> = vec![Vec::new(); files.len()];
    let mut parents: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    let mut allocated = BTreeSet::new();
    let mut layer = 0;
    for step in 0..150 {
        let which = rng.below(files.len() as u64) as usize;
        let (ino, data) = (files[which], &mut model[which]);
        match rng.below(10) {
            0..=4 => {
                let offset = rng.edge_biased(200_000);
                let len = rng.edge_biased(20_000) as usize;
                let zero = rng.below(3) == 0;
                let bytes: Vec<u8> =
                    (0..len).map(|_| if zero { 0 } else { rng.next() as u8 }).collect();
                fx.with(layer, |c| ns::write(c, ino, offset, &bytes, t(step))).unwrap();
                if !bytes.is_empty() {
                    let end = offset as usize + len;
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[offset as usize..end].copy_from_slice(&bytes);
                }
            }
            5 | 6 => {
                let size = rng.edge_biased(200_000);
                let set = SetAttr { size: Some(size), ..SetAttr::default() };
                fx.with(layer, |c| ns::setattr(c, ino, &set, t(step))).unwrap();
                data.resize(size as usize, 0);
            }
            7 | 8 => {
                for (b, n) in fx.checkpoint(layer) {
                    allocated.extend(b.0..b.0 + n);
                }
                assert_eq!(
                    owned(&fx, layer),
                    held(&fx, layer, &allocated),
                    "seed {seed} step {step}"
                );
            }
            _ => {
                parents.push((layer, model.clone()));
                layer = fx.clone_layer(layer);
            }
        }
        for (i, ino) in files.iter().enumerate() {
            let got = fx.read_all(layer, *ino);
            assert!(got == model[i], "seed {seed} step {step}: file {i} differs");
            let blocks = fx.with(layer, |c| ns::getattr(c, *ino)).unwrap().blocks;
            assert_eq!(blocks, 8 * nonzero_pages(&model[i]), "seed {seed} step {step}: blocks");
        }
    }
    for (index, contents) in parents {
        for (i, ino) in files.iter().enumerate() {
            assert!(fx.read_all(index, *ino) == contents[i], "seed {seed}: parent {index} changed");
        }
    }
}

#[test]
fn file_data_matches_a_byte_vector_model() {
    let seeds: Vec<u64> = match std::env::var("LCFS_NS_SEED") {
        Ok(s) => vec![s.parse().expect("LCFS_NS_SEED is a u64")],
        Err(_) => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            (0..24).map(|i| base.wrapping_add(i)).collect()
        }
    };
    for seed in seeds {
        eprintln!("LCFS_NS_SEED={seed}");
        run(seed);
    }
}
