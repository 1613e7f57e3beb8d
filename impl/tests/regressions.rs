//! Engine regressions found while building the FUSE mount, one named test each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use lcfs::fsck;
use lcfs::{BlockDevice, Error, Fs, Ino, MemDevice, MkfsOptions, MountOptions};

/// Found by the FUSE stress test: a child layer created from a committed parent and never
/// written kept root block 0 in its record (its tree was not dirty, so no checkpoint set it),
/// so fsck failed and the next mount could not read the layer.
#[test]
fn an_unwritten_child_layer_survives_a_remount() -> Result<(), Error> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(1 << 12));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    fs.create_layer("base", None)?;
    fs.commit_layer("base")?;
    let child = fs.create_layer("child", Some("base"))?;
    fs.unmount()?;
    let report = fsck::check(Arc::clone(&dev))?;
    assert!(report.is_clean(), "{report}");
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    assert_eq!(fs.getattr(child, Ino::ROOT)?.nlink, 2);
    Ok(())
}
