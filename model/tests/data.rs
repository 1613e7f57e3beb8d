//! File data: sparse reads, truncate then extend reads zeros, writes near FILE_SIZE_MAX
//! (EFBIG at the limit, short write across it), empty writes, and `FileData` against a plain
//! byte vector as reference over pseudo-random writes and truncates.

mod common;

use common::{base, dir, file, t};
use lcfs_model::{Errno, FileData, FileType, Ino, SetAttr, FILE_SIZE_MAX, PAGE_SIZE};

#[test]
fn sparse_writes_read_back_with_zeros_in_the_holes() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let tib = 1u64 << 40;
    assert_eq!(model.write(layer, f, tib + 4095, b"xy", t(2)), Ok(2));
    assert_eq!(model.write(layer, f, 1, b"a", t(3)), Ok(1));
    let attr = model.getattr(layer, f).unwrap();
    assert_eq!((attr.size, attr.mtime, attr.ctime, attr.atime), (tib + 4097, t(3), t(3), t(1)));
    assert_eq!(model.read(layer, f, 0, 3).unwrap(), [0, b'a', 0]);
    assert_eq!(model.read(layer, f, tib + 4094, 10).unwrap(), [0, b'x', b'y']);
    assert_eq!(model.read(layer, f, 1 << 39, 4).unwrap(), [0; 4]);
    assert!(model.read(layer, f, tib + 4097, 10).unwrap().is_empty());
    assert!(model.read(layer, f, u64::MAX, 10).unwrap().is_empty());
    let dump = model.dump_layer(layer).unwrap();
    let lcfs_model::Content::Regular(data) = &dump.inodes[&f].content else { panic!() };
    let pages: Vec<u64> = data.pages().map(|(index, _)| index).collect();
    assert_eq!(pages, [0, tib / PAGE_SIZE, tib / PAGE_SIZE + 1], "only touched pages exist");
}

#[test]
fn truncate_then_extend_reads_zeros() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    model.write(layer, f, 0, &[7u8; 10000], t(2)).unwrap();
    let shrink = SetAttr { size: Some(5000), ..Default::default() };
    let attr = model.setattr(layer, f, &shrink, t(3)).unwrap();
    assert_eq!((attr.size, attr.mtime, attr.ctime), (5000, t(3), t(3)));
    let grow = SetAttr { size: Some(9000), ..Default::default() };
    model.setattr(layer, f, &grow, t(4)).unwrap();
    let bytes = model.read(layer, f, 0, 20000).unwrap();
    assert_eq!(bytes.len(), 9000);
    assert!(bytes[..5000].iter().all(|b| *b == 7));
    assert!(bytes[5000..].iter().all(|b| *b == 0), "the cut bytes do not come back");
    model.setattr(layer, f, &SetAttr { size: Some(0), ..Default::default() }, t(5)).unwrap();
    model.write(layer, f, 4096, b"z", t(6)).unwrap();
    assert_eq!(model.read(layer, f, 0, 8192).unwrap(), [&[0u8; 4096][..], b"z"].concat());
    model.check_invariants();
}

#[test]
fn setattr_size_rules_and_explicit_times() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let d = dir(&mut model, layer, Ino::ROOT, "d", 1).ino;
    let fifo = model.mknod(layer, Ino::ROOT, b"p", FileType::Fifo, 0, 0, 0, 0, t(1)).unwrap().ino;
    let size = |size| SetAttr { size: Some(size), perm: Some(0o600), ..Default::default() };
    assert_eq!(model.setattr(layer, d, &size(0), t(2)), Err(Errno::EISDIR));
    assert_eq!(model.setattr(layer, fifo, &size(0), t(2)), Err(Errno::EINVAL));
    assert_eq!(model.setattr(layer, f, &size(FILE_SIZE_MAX + 1), t(2)), Err(Errno::EFBIG));
    assert_eq!(model.getattr(layer, f).unwrap().perm, 0o644, "a failure changes nothing");
    assert_eq!(model.setattr(layer, f, &size(FILE_SIZE_MAX), t(2)).unwrap().size, FILE_SIZE_MAX);
    // The same size still counts as a truncate: mtime moves.
    let attr = model.setattr(layer, f, &size(FILE_SIZE_MAX), t(3)).unwrap();
    assert_eq!((attr.mtime, attr.ctime, attr.perm), (t(3), t(3), 0o600));
    let explicit = SetAttr {
        size: Some(1),
        atime: Some(t(100)),
        mtime: Some(lcfs_model::Timespec::new(200, 5)),
        uid: Some(7),
        gid: Some(8),
        perm: Some(0o177777),
    };
    let attr = model.setattr(layer, f, &explicit, t(4)).unwrap();
    assert_eq!((attr.atime, attr.mtime, attr.ctime), (t(100), explicit.mtime.unwrap(), t(4)));
    assert_eq!((attr.uid, attr.gid, attr.perm, attr.size), (7, 8, 0o7777, 1));
    let unchanged = model.setattr(layer, f, &SetAttr::default(), t(5)).unwrap();
    assert_eq!(unchanged, attr, "an empty SetAttr changes nothing, not even ctime");
}

#[test]
fn writes_at_the_size_limit_are_efbig_and_across_it_short() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    assert_eq!(model.write(layer, f, FILE_SIZE_MAX, b"x", t(2)), Err(Errno::EFBIG));
    assert_eq!(model.write(layer, f, FILE_SIZE_MAX - 2, b"abcd", t(3)), Ok(2));
    assert_eq!(model.getattr(layer, f).unwrap().size, FILE_SIZE_MAX);
    assert_eq!(model.read(layer, f, FILE_SIZE_MAX - 3, 10).unwrap(), [0, b'a', b'b']);
    // An empty write changes nothing, wherever it is.
    assert_eq!(model.write(layer, f, u64::MAX, b"", t(4)), Ok(0));
    assert_eq!(model.write(layer, f, 0, b"", t(4)), Ok(0));
    assert_eq!(model.getattr(layer, f).unwrap().mtime, t(3));
}

#[test]
fn data_operations_on_other_types_are_eisdir_or_einval() {
    let (mut model, layer) = base();
    let d = dir(&mut model, layer, Ino::ROOT, "d", 1).ino;
    let sock = model.mknod(layer, Ino::ROOT, b"s", FileType::Socket, 0, 0, 0, 0, t(1)).unwrap();
    assert_eq!(model.write(layer, d, 0, b"x", t(2)), Err(Errno::EISDIR));
    assert_eq!(model.read(layer, d, 0, 1), Err(Errno::EISDIR));
    assert_eq!(model.write(layer, sock.ino, 0, b"", t(2)), Err(Errno::EINVAL), "type first");
    assert_eq!(model.read(layer, sock.ino, 0, 1), Err(Errno::EINVAL));
    assert_eq!(model.write(layer, Ino(40), 0, b"x", t(2)), Err(Errno::ENOENT));
}

/// A tiny deterministic generator (xorshift64*), so this test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick(&mut self, choices: &[u64]) -> u64 {
        choices[(self.next() % choices.len() as u64) as usize]
    }
}

#[test]
fn file_data_equals_a_plain_byte_vector() {
    let sizes = [0, 1, 511, 512, 4095, 4096, 4097, 65535, 65536, 65537];
    for seed in 1..=200u64 {
        let mut rng = Rng(seed);
        let (mut data, mut reference) = (FileData::new(), Vec::<u8>::new());
        for step in 0..40 {
            let offset = rng.pick(&sizes) + rng.next() % 3;
            if rng.next() % 4 == 0 {
                data.truncate(offset);
                reference.resize(offset as usize, 0);
            } else {
                let fill = if rng.next() % 5 == 0 { 0 } else { (step % 255 + 1) as u8 };
                let bytes = vec![fill; rng.pick(&sizes) as usize];
                data.write(offset, &bytes);
                if !bytes.is_empty() {
                    let end = offset as usize + bytes.len();
                    reference.resize(reference.len().max(end), 0);
                    reference[offset as usize..end].copy_from_slice(&bytes);
                }
            }
            data.check_invariants();
            assert_eq!(data.size(), reference.len() as u64, "seed {seed} step {step}");
            let from = rng.pick(&sizes);
            let len = rng.pick(&sizes);
            let want = reference.iter().skip(from as usize).take(len as usize).copied();
            assert_eq!(data.read(from, len), want.collect::<Vec<_>>(), "seed {seed} step {step}");
        }
        assert_eq!(data.read(0, u64::MAX), reference, "seed {seed}");
    }
}
