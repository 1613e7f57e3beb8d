//! Layer renames and layer metadata items (what the containerd snapshotter keeps per
//! snapshot): a rename is O(1) and keeps files, children and metadata; items survive a
//! remount, change on committed layers, go with their layer; the combined operations
//! (`create_layer_with_meta`, `commit_layer_as`) are all-or-nothing on refusal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use lcfs::fsck;
use lcfs::{
    BlockDevice, Error, FileType, Fs, Ino, LayerId, LayerState, MemDevice, MkfsOptions,
    MountOptions, Timespec,
};

type TestResult = Result<(), Error>;

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 7)
}

fn fresh() -> Result<(Arc<dyn BlockDevice>, Fs), Error> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(1 << 14));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default())?;
    Ok((dev, fs))
}

fn remount(dev: &Arc<dyn BlockDevice>, fs: Fs) -> Result<Fs, Error> {
    fs.unmount()?;
    let report = fsck::check(Arc::clone(dev))?;
    assert!(report.is_clean(), "{report}");
    Fs::mount(Arc::clone(dev), &MountOptions::default())
}

fn file(fs: &Fs, layer: LayerId, name: &[u8], data: &[u8]) -> Result<Ino, Error> {
    let a = fs.mknod(layer, Ino::ROOT, name, FileType::Regular, 0o644, 0, 0, 0, now())?;
    fs.write(layer, a.ino, 0, data, now())?;
    Ok(a.ino)
}

fn read_file(fs: &Fs, layer: LayerId, name: &[u8]) -> Result<Vec<u8>, Error> {
    let a = fs.lookup(layer, Ino::ROOT, name)?;
    fs.read(layer, a.ino, 0, 1 << 20)
}

fn items(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
}

#[test]
fn a_renamed_layer_keeps_its_files_children_and_metadata_across_a_remount() -> TestResult {
    let (dev, fs) = fresh()?;
    let base = fs.create_layer("base", None)?;
    file(&fs, base, b"f", b"base bytes")?;
    fs.set_layer_meta("base", b"k", Some(b"v"))?;
    fs.commit_layer("base")?;
    fs.create_layer("child", Some("base"))?;
    fs.rename_layer("base", "moby%2F2%2Fsha256:abc")?;
    assert!(matches!(fs.layer_id("base"), Err(Error::NotFound)));
    assert_eq!(fs.layer_id("moby%2F2%2Fsha256:abc")?, base);
    let fs = remount(&dev, fs)?;
    let info = fs.layer("child")?;
    assert_eq!(info.parent.as_deref(), Some("moby%2F2%2Fsha256:abc"));
    let renamed = fs.layer("moby%2F2%2Fsha256:abc")?;
    assert_eq!((renamed.id, renamed.state, renamed.children), (base, LayerState::Committed, 1));
    assert_eq!(read_file(&fs, info.id, b"f")?, b"base bytes");
    assert_eq!(fs.layer_meta("moby%2F2%2Fsha256:abc")?, items(&[("k", "v")]));
    let names: Vec<String> = fs.layers()?.into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["child", "moby%2F2%2Fsha256:abc"]);
    Ok(())
}

#[test]
fn a_rename_is_refused_onto_an_existing_name_and_for_bad_names() -> TestResult {
    let (_dev, fs) = fresh()?;
    fs.create_layer("a", None)?;
    fs.create_layer("b", None)?;
    assert!(matches!(fs.rename_layer("a", "b"), Err(Error::Exists)));
    assert!(matches!(fs.rename_layer("missing", "c"), Err(Error::NotFound)));
    assert!(matches!(fs.rename_layer("a", "x/y"), Err(Error::InvalidArgument(_))));
    assert!(matches!(fs.rename_layer("a", &"n".repeat(256)), Err(Error::NameTooLong)));
    fs.rename_layer("a", "a")?;
    let names: Vec<String> = fs.layers()?.into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["a", "b"]);
    Ok(())
}

#[test]
fn metadata_items_change_on_committed_layers_survive_a_remount_and_go_with_the_layer() -> TestResult {
    let (dev, fs) = fresh()?;
    fs.create_layer("l", None)?;
    fs.set_layer_meta("l", b"containerd.kind", Some(b"active"))?;
    fs.set_layer_meta("l", b"label.a", Some(b"1"))?;
    fs.set_layer_meta("l", b"label.b", Some(b""))?;
    fs.commit_layer("l")?;
    fs.set_layer_meta("l", b"containerd.kind", Some(b"committed"))?;
    fs.set_layer_meta("l", b"label.a", None)?;
    fs.set_layer_meta("l", b"label.never", None)?;
    fs.create_layer("other", None)?;
    fs.set_layer_meta("other", b"label.a", Some(b"other's"))?;
    let fs = remount(&dev, fs)?;
    assert_eq!(fs.layer_meta("l")?, items(&[("containerd.kind", "committed"), ("label.b", "")]));
    assert_eq!(fs.layer_meta("other")?, items(&[("label.a", "other's")]));
    fs.remove_layer("l")?;
    assert!(matches!(fs.layer_meta("l"), Err(Error::NotFound)));
    let fs = remount(&dev, fs)?;
    assert_eq!(fs.layer_meta("other")?, items(&[("label.a", "other's")]));
    Ok(())
}

#[test]
fn metadata_limits_are_checked_before_anything_changes() -> TestResult {
    let (_dev, fs) = fresh()?;
    fs.create_layer("l", None)?;
    assert!(matches!(fs.set_layer_meta("l", b"", Some(b"v")), Err(Error::InvalidArgument(_))));
    assert!(matches!(fs.set_layer_meta("l", &[b'k'; 256], Some(b"v")), Err(Error::NameTooLong)));
    let big = vec![b'v'; 1025];
    assert!(matches!(fs.set_layer_meta("l", b"k", Some(&big)), Err(Error::InvalidArgument(_))));
    fs.set_layer_meta("l", &[b'k'; 255], Some(&big[..1024]))?;
    assert!(matches!(fs.set_layer_meta("missing", b"k", Some(b"v")), Err(Error::NotFound)));
    let bad: [(&[u8], &[u8]); 2] = [(b"ok", b"1"), (b"", b"2")];
    assert!(matches!(
        fs.create_layer_with_meta("new", None, &bad),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(fs.layer_id("new"), Err(Error::NotFound)));
    Ok(())
}

#[test]
fn create_with_meta_and_commit_as_are_one_step_each() -> TestResult {
    let (dev, fs) = fresh()?;
    let base = fs.create_layer_with_meta("extract-1", None, &[(b"kind", b"active")])?;
    file(&fs, base, b"f", b"layer")?;
    fs.create_layer("taken", None)?;
    // Refused: the new name exists. Nothing changed: still writable, same name, same items.
    assert!(matches!(
        fs.commit_layer_as("extract-1", Some("taken"), &[(b"kind", Some(b"committed"))]),
        Err(Error::Exists)
    ));
    assert_eq!(fs.layer("extract-1")?.state, LayerState::Writable);
    assert_eq!(fs.layer_meta("extract-1")?, items(&[("kind", "active")]));
    fs.commit_layer_as(
        "extract-1",
        Some("sha256:top"),
        &[(b"kind", Some(b"committed")), (b"label", Some(b"x"))],
    )?;
    assert!(matches!(fs.commit_layer_as("sha256:top", None, &[]), Err(Error::InvalidArgument(_))));
    let fs = remount(&dev, fs)?;
    assert_eq!(fs.layer("sha256:top")?.state, LayerState::Committed);
    assert_eq!(fs.layer_meta("sha256:top")?, items(&[("kind", "committed"), ("label", "x")]));
    let child = fs.create_layer("c", Some("sha256:top"))?;
    assert_eq!(read_file(&fs, child, b"f")?, b"layer");
    Ok(())
}
