//! The `graphdriver` target: arbitrary bytes as what one connection sends to Docker's
//! graph-driver plugin API, through the real HTTP parser (`graphdriver/http.rs`) and call
//! dispatch (`graphdriver/driver.rs`), as `lcfs_fuse::fuzzing::serve_graphdriver` serves them.
//!
//! Setup (made once, copied for each input): an engine on a `MemDevice`, no FUSE session (the
//! notifier is unset, as before a mount's session starts); a committed layer `img` with a
//! directory and a file, and a writable child `ctr` of it with a file of its own, so that
//! Get, Diff, Changes, DiffSize and Remove have layers to work on without a Create first.
//!
//! Properties:
//! - serving never panics, hangs or grows without bound (the input is the only source of
//!   bytes; ApplyDiff bodies are the input's);
//! - every request read gets exactly one well-formed reply: a status line, headers, and a JSON
//!   body (an object with a non-empty `Err` unless the status is 200) or a complete chunked
//!   tar (Diff); the engine is released after the connection;
//! - nothing outside the layers the requests name changes: `img`, unless a request names it,
//!   dumps as before; every layer still walks cleanly;
//! - after unmount, fsck reports the image clean.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use lcfs::{BlockDevice, FileType, Fs, Ino, MemDevice, MkfsOptions, Timespec};
use lcfs_model::LayerDump;

use crate::image::mount_options;
use crate::tar::dump;

/// Blocks of the device (16 MiB: room for what a short ApplyDiff can write).
pub const DEVICE_BLOCKS: u64 = 4096;

/// Where the driver believes the mount is (it only names paths under it, never opens them).
pub const MOUNTPOINT: &str = "/var/lib/lcfs-fuzz";

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 1)
}

/// The engine of the setup.
pub fn setup() -> lcfs::Result<(Arc<MemDevice>, Fs)> {
    let mem = Arc::new(MemDevice::new(DEVICE_BLOCKS));
    let dev: Arc<dyn BlockDevice> = mem.clone();
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default())?;
    let fs = Fs::mount(dev, &mount_options())?;
    let t = now();
    let img = fs.create_layer("img", None)?;
    let etc = fs.mkdir(img, Ino::ROOT, b"etc", 0o755, 0, 0, t)?;
    let hosts = fs.mknod(img, etc.ino, b"hosts", FileType::Regular, 0o644, 0, 0, 0, t)?;
    fs.write(img, hosts.ino, 0, b"127.0.0.1 localhost\n", t)?;
    fs.commit_layer("img")?;
    let ctr = fs.create_layer("ctr", Some("img"))?;
    let own = fs.mknod(ctr, Ino::ROOT, b"own", FileType::Regular, 0o644, 0, 0, 0, t)?;
    fs.write(ctr, own.ino, 0, b"container data\n", t)?;
    Ok((mem, fs))
}

struct Template {
    image: MemDevice,
    img: LayerDump,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let (dev, fs) = setup().unwrap_or_else(|e| panic!("setup: {e}"));
        let img = dump(&fs, "img");
        fs.unmount().unwrap_or_else(|e| panic!("setup unmount: {e}"));
        Template {
            image: dev.snapshot(),
            img,
        }
    })
}

pub fn check(data: &[u8]) {
    run(data);
}

/// `check`, returning the statuses of the replies.
pub fn run(data: &[u8]) -> Vec<u16> {
    let template = template();
    let dev: Arc<dyn BlockDevice> = Arc::new(template.image.snapshot());
    let fs = Fs::mount(Arc::clone(&dev), &mount_options()).unwrap_or_else(|e| panic!("mount: {e}"));
    let fs = Arc::new(fs);
    let exchanges =
        lcfs_fuse::fuzzing::serve_graphdriver(Arc::clone(&fs), Path::new(MOUNTPOINT), data)
            .unwrap_or_else(|e| panic!("{e}"));
    let fs = Arc::try_unwrap(fs).unwrap_or_else(|_| panic!("the engine is still shared"));
    // `img` changes only if a request could name it (the input holds its name).
    let named = data.windows(3).any(|w| w == b"img");
    if !named {
        assert!(template.img == dump(&fs, "img"), "layer img changed");
    }
    for layer in fs.layers().unwrap_or_else(|e| panic!("layers: {e}")) {
        dump(&fs, &layer.name);
    }
    fs.unmount().unwrap_or_else(|e| panic!("unmount: {e}"));
    let report = lcfs::fsck::check(dev).unwrap_or_else(|e| panic!("fsck: {e}"));
    assert!(report.is_clean(), "fsck after {exchanges:?}: {report}");
    exchanges.iter().map(|x| x.status).collect()
}
