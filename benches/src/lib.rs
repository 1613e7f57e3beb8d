//! Fixtures for the criterion benches: images with a layer of N files and ancestries of depth D.

pub mod cpu;

use std::sync::Arc;

use lcfs::{BlockDevice, Error, FileType, Fs, Ino, LayerId, MemDevice, MkfsOptions, MountOptions, Timespec};

/// A mounted filesystem over a fresh in-memory device of `blocks` blocks.
pub fn fresh_fs(blocks: u64) -> Result<Fs, Error> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(blocks));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    Fs::mount(dev, &MountOptions::default())
}

/// A fixed time for every operation.
pub fn now() -> Timespec {
    Timespec::new(1_700_000_000, 0)
}

/// Commits a base layer `name` holding `files` small files spread over directories of at most
/// 1,000 entries; returns its id.
pub fn layer_with_files(fs: &Fs, name: &str, files: usize) -> Result<LayerId, Error> {
    layer_with_files_per_dir(fs, name, files, 1000)
}

/// Commits a base layer `name` holding `files` small files, `per_dir` to a directory: file
/// `f{i}` is in directory `d{i / per_dir}` under the root; returns its id.
pub fn layer_with_files_per_dir(fs: &Fs, name: &str, files: usize, per_dir: usize) -> Result<LayerId, Error> {
    let id = fs.create_layer(name, None)?;
    let mut dir = Ino::ROOT;
    for i in 0..files {
        if i % per_dir.max(1) == 0 {
            dir = fs.mkdir(id, Ino::ROOT, format!("d{}", i / per_dir.max(1)).as_bytes(), 0o755, 0, 0, now())?.ino;
        }
        let f = fs.mknod(id, dir, format!("f{i}").as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now())?;
        fs.write(id, f.ino, 0, format!("file {i}").as_bytes(), now())?;
    }
    fs.commit_layer(name)?;
    Ok(id)
}

/// Stacks `depth` committed layers on `base` (each writes one file of its own); returns the
/// name and id of the top one.
pub fn chain(fs: &Fs, base: &str, depth: usize) -> Result<(String, LayerId), Error> {
    let mut parent = base.to_string();
    let mut id = fs.layer_id(base)?;
    for d in 0..depth {
        let name = format!("{base}-depth{}", d + 1);
        id = fs.create_layer(&name, Some(&parent))?;
        let f = fs.mknod(id, Ino::ROOT, format!("level{d}").as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now())?;
        fs.write(id, f.ino, 0, b"x", now())?;
        fs.commit_layer(&name)?;
        parent = name;
    }
    Ok((parent, id))
}
