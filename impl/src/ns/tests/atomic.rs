//! Goal: an operation that fails because the tree or the device fails under it changes nothing
//! (TESTING.md: "after an I/O error the operation either did nothing or everything"): not the
//! tree, not the dirty pages, not the inode counter, and it reports nothing freed. Method: run
//! each operation with node loads failing after k loads, for every k until it succeeds, and
//! compare the whole layer state with the state before.

use std::cell::Cell;
use std::sync::Arc;

use super::support::*;
use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::ns::{self, PAGE_SIZE};
use crate::tree::{MemNodeStore, Node, NodeStore};
use crate::types::{BlockNo, FileType, Ino, RenameFlags, SetAttr, XattrFlags};

const ROOT: Ino = Ino::ROOT;
const P: u64 = PAGE_SIZE as u64;

/// A node store whose loads fail once `budget` loads have been served.
struct FailingStore<'a> {
    inner: &'a MemNodeStore,
    budget: Cell<u64>,
}

impl NodeStore for FailingStore<'_> {
    fn load(&self, block: BlockNo) -> Result<Arc<Node>> {
        match self.budget.get() {
            0 => Err(Error::corrupt(block.0, "injected read failure")),
            n => {
                self.budget.set(n - 1);
                self.inner.load(block)
            }
        }
    }
}

type Op = fn(&mut LayerCtx<'_>) -> Result<()>;

/// A layer with a bit of everything, with every node on disk (loaded from the store) and some
/// dirty pages.
fn populated() -> (Fixture, Ino, Ino) {
    let mut fx = Fixture::new();
    let d = fx.mkdir(0, ROOT, b"d");
    for i in 0..40u8 {
        fx.create(0, d.ino, &[b'n', b'0' + i / 10, b'0' + i % 10]);
    }
    let f = fx.create(0, ROOT, b"f");
    fx.with(0, |c| ns::write(c, f.ino, 0, &vec![9u8; 6 * PAGE_SIZE], t(2))).unwrap();
    fx.with(0, |c| ns::link(c, f.ino, d.ino, b"f2", t(2))).unwrap();
    let g = fx.create(0, ROOT, b"g");
    fx.with(0, |c| ns::write(c, g.ino, 0, &vec![7u8; 3 * PAGE_SIZE], t(2))).unwrap();
    fx.with(0, |c| ns::setxattr(c, g.ino, b"user.x", b"1", XattrFlags::Any, t(2))).unwrap();
    fx.mkdir(0, ROOT, b"empty");
    fx.checkpoint(0);
    fx.with(0, |c| ns::write(c, g.ino, 2 * P + 5, b"dirty", t(3))).unwrap();
    fx.with(0, |c| ns::write(c, f.ino, 9 * P, b"dirty too", t(3))).unwrap();
    // Write the tree but keep the pages, so every operation loads its nodes from the store.
    fx.layers[0].tree.write_dirty(&mut fx.store, crate::types::Generation(99)).unwrap();
    (fx, f.ino, g.ino)
}

/// Everything an operation may change: tree items, dirty pages, the inode counter.
type State = (Vec<(Vec<u8>, Vec<u8>)>, Vec<((Ino, u64), Vec<u8>)>, u64);

fn state(fx: &Fixture) -> State {
    (fx.items(0), fx.layers[0].pages.dump(), fx.next_ino)
}

/// Runs `op` with a load budget; returns whether it succeeded.
fn run_with_budget(fx: &mut Fixture, op: Op, budget: u64) -> Result<()> {
    let store = FailingStore { inner: &fx.store, budget: Cell::new(budget) };
    let layer = &mut fx.layers[0];
    let mut ctx = LayerCtx {
        layer: layer.id,
        tree: &mut layer.tree,
        store: &store,
        data: &fx.data,
        pages: &mut layer.pages,
        freed_nodes: &mut layer.freed_nodes,
        freed_extents: &mut layer.freed_extents,
        next_ino: &mut fx.next_ino,
    };
    op(&mut ctx)
}

fn all_or_nothing(name: &str, op: Op) {
    for budget in 0..10_000 {
        let (mut fx, _, _) = populated();
        let before = state(&fx);
        let freed_before = (fx.layers[0].freed_nodes.clone(), fx.layers[0].freed_extents.clone());
        match run_with_budget(&mut fx, op, budget) {
            Ok(()) => {
                assert!(budget > 0, "{name} needs the tree");
                return;
            }
            Err(Error::Corrupt { .. }) => {
                assert!(state(&fx) == before, "{name} failing after {budget} loads changed state");
                let layer = &fx.layers[0];
                let freed = (layer.freed_nodes.clone(), layer.freed_extents.clone());
                assert!(freed == freed_before, "{name}: a failed op reported blocks freed");
            }
            Err(e) => panic!("{name}: unexpected error {e}"),
        }
    }
    panic!("{name} never succeeded");
}

#[test]
fn modifying_operations_are_all_or_nothing() {
    let ops: [(&str, Op); 14] = [
        ("mknod", |c| {
            ns::mknod(c, ROOT, b"new", FileType::Regular, 0o644, 0, 0, 0, t(5)).map(drop)
        }),
        ("mkdir", |c| ns::mkdir(c, ROOT, b"new", 0o755, 0, 0, t(5)).map(drop)),
        ("symlink", |c| ns::symlink(c, ROOT, b"s", &[b'x'; 3000], 0, 0, t(5)).map(drop)),
        ("link", |c| ns::link(c, Ino(43), ROOT, b"l", t(5)).map(drop)),
        ("unlink last link", |c| ns::unlink(c, ROOT, b"g", t(5))),
        ("unlink a link", |c| ns::unlink(c, ROOT, b"f", t(5))),
        ("rmdir", |c| ns::rmdir(c, ROOT, b"empty", t(5))),
        ("rename over a file", |c| {
            ns::rename(c, ROOT, b"f", ROOT, b"g", RenameFlags::default(), t(5))
        }),
        ("rename a directory", |c| {
            ns::rename(c, ROOT, b"d", ROOT, b"empty", RenameFlags::default(), t(5))
        }),
        ("exchange", |c| {
            let flags = RenameFlags { exchange: true, noreplace: false };
            ns::rename(c, ROOT, b"d", ROOT, b"g", flags, t(5))
        }),
        ("truncate", |c| {
            let set = SetAttr { size: Some(P + 3), ..SetAttr::default() };
            ns::setattr(c, Ino(44), &set, t(5)).map(drop)
        }),
        ("write", |c| ns::write(c, Ino(44), P - 2, b"over three pages", t(5)).map(drop)),
        ("setxattr", |c| ns::setxattr(c, Ino(44), b"user.y", b"2", XattrFlags::Any, t(5))),
        ("removexattr", |c| ns::removexattr(c, Ino(44), b"user.x", t(5))),
    ];
    let (_, f, g) = populated();
    assert_eq!((f, g), (Ino(43), Ino(44)), "the op table names these inodes");
    for (name, op) in ops {
        all_or_nothing(name, op);
    }
}
