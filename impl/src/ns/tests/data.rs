//! Goal: file data reads back as written through writes, truncates and checkpoints; delayed
//! allocation gives a file written once one extent; zero pages are holes; sparse files near the
//! size limit are cheap; `blocks` counts the nonzero blocks. Method: named cases.

use super::support::*;
use crate::ns::{self, PAGE_SIZE};
use crate::types::{Ino, LayerId, SetAttr};

const ROOT: Ino = Ino::ROOT;
const P: u64 = PAGE_SIZE as u64;

fn write(fx: &mut Fixture, ino: Ino, offset: u64, data: &[u8]) {
    let n = fx.with(0, |c| ns::write(c, ino, offset, data, t(3))).unwrap();
    assert_eq!(n as usize, data.len());
}

fn truncate(fx: &mut Fixture, ino: Ino, size: u64) {
    let set = SetAttr { size: Some(size), ..SetAttr::default() };
    fx.with(0, |c| ns::setattr(c, ino, &set, t(4))).unwrap();
}

fn blocks(fx: &mut Fixture, ino: Ino) -> u64 {
    fx.with(0, |c| ns::getattr(c, ino)).unwrap().blocks
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8 ^ seed | 1).collect()
}

#[test]
fn reads_return_what_was_written_short_past_the_end() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    write(&mut fx, f.ino, 4090, b"0123456789");
    let a = fx.with(0, |c| ns::getattr(c, f.ino)).unwrap();
    assert_eq!((a.size, a.mtime, a.ctime, a.blocks), (4100, t(3), t(3), 16));
    let got = fx.with(0, |c| ns::read(c, f.ino, 4085, 100)).unwrap();
    assert_eq!(got, [&[0u8; 5][..], b"0123456789"].concat(), "hole then data, short at EOF");
    assert!(fx.with(0, |c| ns::read(c, f.ino, 4100, 10)).unwrap().is_empty());
    assert!(fx.with(0, |c| ns::read(c, f.ino, u64::MAX, u32::MAX)).unwrap().is_empty());
    assert!(fx.with(0, |c| ns::read(c, f.ino, 0, 0)).unwrap().is_empty());
    write(&mut fx, f.ino, 4092, b"ab");
    assert_eq!(fx.with(0, |c| ns::read(c, f.ino, 4090, 6)).unwrap(), b"01ab45".to_vec());
    fx.checkpoint(0);
    assert_eq!(fx.with(0, |c| ns::read(c, f.ino, 4090, 6)).unwrap(), b"01ab45".to_vec());
    write(&mut fx, f.ino, 4091, b"X");
    assert_eq!(fx.read_all(0, f.ino)[4088..], *b"\0\0\x30Xab456789", "partial page over an extent");
}

#[test]
fn a_file_written_once_gets_one_extent_and_reads_the_same_after_flush() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let data = pattern(100 * PAGE_SIZE + 123, 7);
    for (i, chunk) in data.chunks(40_000).enumerate() {
        write(&mut fx, f.ino, (i * 40_000) as u64, chunk);
    }
    assert_eq!(fx.read_all(0, f.ino), data);
    let before = blocks(&mut fx, f.ino);
    assert_eq!(before, 101 * 8);
    let allocated = fx.checkpoint(0);
    assert_eq!(allocated.len(), 1, "one allocation for the whole file");
    let extents = fx.extents(0, f.ino);
    assert_eq!(extents.len(), 1, "{extents:?}");
    assert_eq!((extents[0].0, extents[0].1, extents[0].3), (0, 101, LayerId(1)));
    assert_eq!(fx.read_all(0, f.ino), data);
    assert_eq!(blocks(&mut fx, f.ino), before, "flushing does not change blocks");
    assert_eq!(fx.data.len(), 101);
}

#[test]
fn zero_pages_become_holes_and_drop_old_extents() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let mut data = pattern(5 * PAGE_SIZE, 1);
    data[2 * PAGE_SIZE..3 * PAGE_SIZE].fill(0);
    write(&mut fx, f.ino, 0, &data);
    assert_eq!(blocks(&mut fx, f.ino), 4 * 8, "a zero page is not counted");
    fx.checkpoint(0);
    let extents = fx.extents(0, f.ino);
    assert_eq!(extents.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(), vec![(0, 2), (3, 2)]);
    assert_eq!(fx.data.len(), 4);
    write(&mut fx, f.ino, 3 * P, &[0u8; PAGE_SIZE]);
    assert_eq!(blocks(&mut fx, f.ino), 3 * 8);
    data[3 * PAGE_SIZE..4 * PAGE_SIZE].fill(0);
    assert_eq!(fx.read_all(0, f.ino), data);
    fx.checkpoint(0);
    assert_eq!(fx.layers[0].all_freed_extents.len(), 1, "the overwritten block was freed");
    let extents = fx.extents(0, f.ino);
    assert_eq!(extents.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(), vec![(0, 2), (4, 1)]);
    assert_eq!(fx.data.len(), 3);
    assert_eq!(fx.read_all(0, f.ino), data);
    assert_eq!(blocks(&mut fx, f.ino), 3 * 8);
}

#[test]
fn an_overwrite_at_flush_splits_the_extent_and_frees_the_old_block() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let mut data = pattern(8 * PAGE_SIZE, 2);
    write(&mut fx, f.ino, 0, &data);
    fx.checkpoint(0);
    let old = fx.extents(0, f.ino)[0];
    write(&mut fx, f.ino, 3 * P + 10, b"new bytes");
    data[3 * PAGE_SIZE + 10..3 * PAGE_SIZE + 19].copy_from_slice(b"new bytes");
    assert_eq!(fx.read_all(0, f.ino), data);
    fx.checkpoint(0);
    assert_eq!(fx.layers[0].all_freed_extents, vec![(crate::types::BlockNo(old.2 .0 + 3), 1)]);
    let shape: Vec<_> = fx.extents(0, f.ino).iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(shape, vec![(0, 3), (3, 1), (4, 4)]);
    assert_eq!(fx.read_all(0, f.ino), data);
    assert_eq!(blocks(&mut fx, f.ino), 64);
}

#[test]
fn truncate_drops_splits_and_zeroes_the_tail() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let data = pattern(10 * PAGE_SIZE, 3);
    write(&mut fx, f.ino, 0, &data);
    fx.checkpoint(0);
    truncate(&mut fx, f.ino, 4 * P + 100);
    assert_eq!(blocks(&mut fx, f.ino), 5 * 8);
    assert_eq!(fx.read_all(0, f.ino), data[..4 * PAGE_SIZE + 100].to_vec());
    truncate(&mut fx, f.ino, 6 * P);
    let mut expect = data[..4 * PAGE_SIZE + 100].to_vec();
    expect.resize(6 * PAGE_SIZE, 0);
    assert_eq!(fx.read_all(0, f.ino), expect, "the old tail does not come back");
    fx.checkpoint(0);
    assert_eq!(fx.read_all(0, f.ino), expect);
    let freed: u64 = fx.layers[0].all_freed_extents.iter().map(|e| e.1).sum();
    assert_eq!(freed, 6, "blocks 4..10 of the first extent: 5 dropped, 1 rewritten");
    let shape: Vec<_> = fx.extents(0, f.ino).iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(shape, vec![(0, 4), (4, 1)]);
    assert_eq!(blocks(&mut fx, f.ino), 5 * 8);
    truncate(&mut fx, f.ino, 0);
    assert_eq!((blocks(&mut fx, f.ino), fx.extents(0, f.ino).len()), (0, 0));
    fx.checkpoint(0);
    assert_eq!(fx.data.len(), 0, "every block of the file was freed");
}

#[test]
fn truncate_to_a_zero_head_makes_a_hole() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    write(&mut fx, f.ino, 100, b"tail");
    fx.checkpoint(0);
    assert_eq!(blocks(&mut fx, f.ino), 8);
    truncate(&mut fx, f.ino, 50);
    assert_eq!(blocks(&mut fx, f.ino), 0, "the last block is all zero now");
    truncate(&mut fx, f.ino, 104);
    assert_eq!(fx.read_all(0, f.ino), vec![0u8; 104]);
    fx.checkpoint(0);
    assert_eq!((fx.extents(0, f.ino).len(), fx.data.len()), (0, 0));
    assert_eq!(fx.read_all(0, f.ino), vec![0u8; 104]);
}

#[test]
fn sparse_files_near_the_limit_are_cheap() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let tib = 1u64 << 40;
    write(&mut fx, f.ino, tib - 3, b"across");
    write(&mut fx, f.ino, 10, b"head");
    let a = fx.with(0, |c| ns::getattr(c, f.ino)).unwrap();
    assert_eq!((a.size, a.blocks), (tib + 3, 3 * 8));
    assert_eq!(fx.with(0, |c| ns::read(c, f.ino, tib - 5, 100)).unwrap(), b"\0\0across".to_vec());
    assert_eq!(fx.with(0, |c| ns::read(c, f.ino, tib / 2, 4)).unwrap(), vec![0u8; 4]);
    fx.checkpoint(0);
    assert_eq!(fx.extents(0, f.ino).len(), 2, "head block, and the two blocks around 1 TiB");
    assert_eq!(fx.with(0, |c| ns::read(c, f.ino, tib - 5, 100)).unwrap(), b"\0\0across".to_vec());
    write(&mut fx, f.ino, (1 << 44) - 1, b"z");
    truncate(&mut fx, f.ino, 1 << 44);
    assert_eq!(fx.with(0, |c| ns::read(c, f.ino, (1 << 44) - 2, 9)).unwrap(), b"\0z".to_vec());
    truncate(&mut fx, f.ino, 12);
    assert_eq!(fx.read_all(0, f.ino), b"\0\0\0\0\0\0\0\0\0\0he".to_vec());
    assert_eq!(blocks(&mut fx, f.ino), 8);
    fx.checkpoint(0);
    assert_eq!(fx.data.len(), 1);
}

#[test]
fn a_short_allocator_gives_several_extents_and_contiguous_runs_merge() {
    let mut fx = Fixture::new();
    fx.data.run_max = 3;
    let f = fx.create(0, ROOT, b"f");
    let data = pattern(10 * PAGE_SIZE, 4);
    write(&mut fx, f.ino, 0, &data);
    fx.checkpoint(0);
    let shape: Vec<_> = fx.extents(0, f.ino).iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(shape, vec![(0, 3), (3, 3), (6, 3), (9, 1)]);
    assert_eq!(fx.read_all(0, f.ino), data);
    fx.data.run_max = 0;
    fx.data.contiguous = true;
    let g = fx.create(0, ROOT, b"g");
    write(&mut fx, g.ino, 0, &data[..4 * PAGE_SIZE]);
    fx.checkpoint(0);
    write(&mut fx, g.ino, 4 * P, &data[4 * PAGE_SIZE..]);
    fx.checkpoint(0);
    assert_eq!(fx.extents(0, g.ino).len(), 1, "an append flushed later continues the extent");
    assert_eq!(fx.read_all(0, g.ino), data);
}

#[test]
fn unlinking_the_last_link_frees_the_file_blocks() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    write(&mut fx, f.ino, 0, &pattern(3 * PAGE_SIZE, 5));
    fx.checkpoint(0);
    write(&mut fx, f.ino, 5 * P, b"dirty");
    fx.with(0, |c| ns::unlink(c, ROOT, b"f", t(6))).unwrap();
    assert!(fx.layers[0].pages.is_empty());
    fx.checkpoint(0);
    assert_eq!(fx.data.len(), 0);
}

#[test]
fn dirty_pages_report_their_memory() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    assert_eq!(fx.layers[0].pages.bytes(), 0);
    write(&mut fx, f.ino, P - 1, b"ab");
    let two = fx.layers[0].pages.bytes();
    assert!((2 * P..3 * P).contains(&two), "{two}");
    write(&mut fx, f.ino, 0, b"c");
    assert_eq!(fx.layers[0].pages.bytes(), two);
    fx.checkpoint(0);
    assert_eq!(fx.layers[0].pages.bytes(), 0);
}
