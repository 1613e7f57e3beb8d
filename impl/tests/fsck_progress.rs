//! `fsck::check_with_progress`: reports come while the walk reads, the block count in use is
//! known after mount, the last report says done, and the report equals `check`'s.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};

use lcfs::fsck::{self, Progress};
use lcfs::{BlockDevice, FileType, Fs, Ino, MemDevice, MkfsOptions, MountOptions, Timespec};

#[test]
fn progress_is_reported_up_to_done() {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(16_384));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    let layer = fs.create_layer("l", None).unwrap();
    let now = Timespec::new(1_700_000_000, 0);
    for i in 0..40u32 {
        let name = format!("f{i}");
        let f = fs.mknod(layer, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now);
        fs.write(layer, f.unwrap().ino, 0, &vec![i as u8 + 1; 64 * 1024], now).unwrap();
    }
    fs.unmount().unwrap();

    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let report =
        fsck::check_with_progress(Arc::clone(&dev), Arc::new(move |p| sink.lock().unwrap().push(p)))
            .unwrap();
    assert!(report.is_clean(), "{report}");
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 3, "40 files of 16 blocks give several reports: {seen:?}");
    let last = seen[seen.len() - 1];
    assert!(last.done && seen[..seen.len() - 1].iter().all(|p| !p.done));
    assert!(last.blocks_used >= 640 && last.blocks_read >= last.blocks_used / 2, "{last:?}");
    assert!(seen.windows(2).all(|w| w[0].blocks_read <= w[1].blocks_read));
    assert_eq!(format!("{report}"), format!("{}", fsck::check(dev).unwrap()));
}
