//! lseek(2) `SEEK_DATA` and `SEEK_HOLE` over one layer's file: the engine answers from the
//! file's extent items and its dirty pages (`ns/seek.rs`), so a sparse file reports its holes
//! whether or not its data has reached the device yet.
//!
//! Invariants: both only read (any layer, committed or not); `None` is lseek's ENXIO.

use super::Fs;
use crate::error::Result;
use crate::ns;
use crate::types::{Ino, LayerId};

impl Fs {
    /// The first offset at or after `offset` holding data (a block with an extent or a dirty
    /// page); `None` (ENXIO) at or past the end of the file, or when only holes follow.
    pub fn seek_data(&self, layer: LayerId, ino: Ino, offset: u64) -> Result<Option<u64>> {
        self.with_layer(layer, false, |ctx| ns::seek_data(ctx, ino, offset))
    }

    /// The first offset at or after `offset` in a hole, or the size of the file if no hole
    /// comes first (the end of a file is a hole); `None` (ENXIO) at or past the end.
    pub fn seek_hole(&self, layer: LayerId, ino: Ino, offset: u64) -> Result<Option<u64>> {
        self.with_layer(layer, false, |ctx| ns::seek_hole(ctx, ino, offset))
    }
}

#[cfg(test)]
mod tests {
    //! Holes at the start, middle and end, a file written past a hole, truncate, dirty data
    //! not yet checkpointed, and ENXIO past the end; each both before and after a checkpoint.
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use std::sync::Arc;

    use crate::fs::{Fs, MkfsOptions, MountOptions};
    use crate::types::{FileType, Ino, LayerId, SetAttr, Timespec};
    use crate::MemDevice;

    const B: u64 = 4096;

    fn mounted() -> (Fs, LayerId) {
        let dev = Arc::new(MemDevice::new(4096));
        Fs::mkfs(dev.clone(), &MkfsOptions::default()).unwrap();
        let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
        let layer = fs.create_layer("l", None).unwrap();
        (fs, layer)
    }

    fn file(fs: &Fs, layer: LayerId, name: &str) -> Ino {
        let now = Timespec::now();
        fs.mknod(layer, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now)
            .unwrap()
            .ino
    }

    fn write(fs: &Fs, layer: LayerId, ino: Ino, offset: u64, len: usize) {
        fs.write(layer, ino, offset, &vec![0xa5; len], Timespec::now()).unwrap();
    }

    /// `(seek_data, seek_hole)` at `offset`.
    fn seek(fs: &Fs, layer: LayerId, ino: Ino, offset: u64) -> (Option<u64>, Option<u64>) {
        (fs.seek_data(layer, ino, offset).unwrap(), fs.seek_hole(layer, ino, offset).unwrap())
    }

    /// Checks `expect` (offset, data, hole) with the pages dirty, then after a checkpoint.
    fn check_both(fs: &Fs, layer: LayerId, ino: Ino, expect: &[(u64, Option<u64>, Option<u64>)]) {
        for round in ["dirty", "checkpointed"] {
            for &(offset, data, hole) in expect {
                assert_eq!(seek(fs, layer, ino, offset), (data, hole), "{round} at {offset}");
            }
            assert!(fs.checkpoint().is_ok());
        }
    }

    #[test]
    fn hole_at_the_start() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        write(&fs, layer, ino, 3 * B, 100);
        let size = 3 * B + 100;
        check_both(
            &fs,
            layer,
            ino,
            &[
                (0, Some(3 * B), Some(0)),
                (B + 7, Some(3 * B), Some(B + 7)),
                (3 * B + 5, Some(3 * B + 5), Some(size)),
                (size, None, None),
            ],
        );
    }

    #[test]
    fn hole_in_the_middle() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        write(&fs, layer, ino, 0, 2 * B as usize);
        write(&fs, layer, ino, 5 * B, B as usize);
        check_both(
            &fs,
            layer,
            ino,
            &[
                (0, Some(0), Some(2 * B)),
                (B, Some(B), Some(2 * B)),
                (2 * B, Some(5 * B), Some(2 * B)),
                (4 * B + 1, Some(5 * B), Some(4 * B + 1)),
                (5 * B, Some(5 * B), Some(6 * B)),
                (6 * B, None, None),
            ],
        );
    }

    #[test]
    fn hole_at_the_end_after_extending_truncate() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        write(&fs, layer, ino, 0, B as usize);
        let set = SetAttr { size: Some(10 * B), ..SetAttr::default() };
        assert!(fs.setattr(layer, ino, &set, Timespec::now()).is_ok());
        check_both(
            &fs,
            layer,
            ino,
            &[
                (0, Some(0), Some(B)),
                (B, None, Some(B)),
                (9 * B, None, Some(9 * B)),
                (10 * B, None, None),
                (u64::MAX, None, None),
            ],
        );
    }

    #[test]
    fn sparse_file_written_far_past_a_hole() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        write(&fs, layer, ino, 0, 10);
        let far = 1 << 40;
        write(&fs, layer, ino, far, 10);
        check_both(
            &fs,
            layer,
            ino,
            &[
                (0, Some(0), Some(B)),
                (5, Some(5), Some(B)),
                (B, Some(far), Some(B)),
                (far - 1, Some(far), Some(far - 1)),
                (far, Some(far), Some(far + 10)),
                (far + 10, None, None),
            ],
        );
    }

    #[test]
    fn truncate_down_drops_the_data_past_it() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        write(&fs, layer, ino, 0, 8 * B as usize);
        assert!(fs.checkpoint().is_ok());
        let set = SetAttr { size: Some(2 * B), ..SetAttr::default() };
        assert!(fs.setattr(layer, ino, &set, Timespec::now()).is_ok());
        // Grow it again: blocks 2..8 come back as a hole.
        let set = SetAttr { size: Some(8 * B), ..SetAttr::default() };
        assert!(fs.setattr(layer, ino, &set, Timespec::now()).is_ok());
        check_both(
            &fs,
            layer,
            ino,
            &[(0, Some(0), Some(2 * B)), (2 * B, None, Some(2 * B)), (8 * B, None, None)],
        );
    }

    #[test]
    fn dirty_pages_over_and_between_extents_are_data() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        write(&fs, layer, ino, 0, B as usize);
        write(&fs, layer, ino, 4 * B, B as usize);
        assert!(fs.checkpoint().is_ok());
        // Not yet checkpointed: block 2 (between the extents) and block 4 (over one).
        write(&fs, layer, ino, 2 * B, B as usize);
        write(&fs, layer, ino, 4 * B, 10);
        assert_eq!(seek(&fs, layer, ino, B), (Some(2 * B), Some(B)));
        assert_eq!(seek(&fs, layer, ino, 2 * B), (Some(2 * B), Some(3 * B)));
        assert_eq!(seek(&fs, layer, ino, 3 * B), (Some(4 * B), Some(3 * B)));
        assert_eq!(seek(&fs, layer, ino, 4 * B), (Some(4 * B), Some(5 * B)));
    }

    #[test]
    fn an_empty_file_and_a_directory() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        assert_eq!(seek(&fs, layer, ino, 0), (None, None));
        assert!(fs.seek_data(layer, Ino::ROOT, 0).is_err());
        assert!(fs.seek_hole(layer, Ino(999_999), 0).is_err());
    }

    #[test]
    fn a_child_layer_sees_its_parents_holes_and_its_own_data() {
        let (fs, layer) = mounted();
        let ino = file(&fs, layer, "f");
        write(&fs, layer, ino, 2 * B, B as usize);
        assert!(fs.commit_layer("l").is_ok());
        let child = fs.create_layer("c", Some("l")).unwrap();
        assert_eq!(seek(&fs, layer, ino, 0), (Some(2 * B), Some(0)));
        write(&fs, child, ino, 0, 10);
        assert_eq!(seek(&fs, child, ino, 0), (Some(0), Some(B)));
        assert_eq!(seek(&fs, layer, ino, 0), (Some(2 * B), Some(0)));
    }
}
