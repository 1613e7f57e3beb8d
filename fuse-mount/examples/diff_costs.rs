//! What a layer's Diff costs, stage by stage, on an image that is not mounted: the tar alone
//! (the graph driver's Diff), the tar hashed (sha256, as the differ tallies it), and the tar
//! gzip-compressed at the level the differ uses and at the others worth comparing, each hashed
//! as the differ's `produce` does (`docs/benchmarks.md`, "Docker reproduction").
//!
//! `cargo run --release -p lcfs-fuse --example diff_costs -- IMAGE LAYER [STAGE]`
//! (the daemon of IMAGE must be stopped: this mounts the engine itself).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lcfs::{FileDevice, Fs, MountOptions};
use sha2::{Digest, Sha256};

/// A writer that counts and hashes what it is given, then drops it.
#[derive(Default)]
struct Hashed {
    hash: Option<Sha256>,
    bytes: u64,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(hash) = &mut self.hash {
            hash.update(buf);
        }
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that hashes what it is given and passes it on.
struct Tee<W> {
    hash: Sha256,
    inner: W,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (image, layer, only) = match args.as_slice() {
        [_, image, layer] => (image, layer, ""),
        [_, image, layer, only] => (image, layer, only.as_str()),
        _ => {
            eprintln!("usage: diff_costs IMAGE LAYER [STAGE]  (STAGE: a word of a stage's name)");
            std::process::exit(2);
        }
    };
    let device = FileDevice::open(Path::new(image)).expect("open the image");
    let fs = Fs::mount(Arc::new(device), &MountOptions::default()).expect("mount the engine");
    let id = fs.layer_id(layer).expect("the layer");
    let time = |what: &str, run: &mut dyn FnMut() -> u64| {
        if !what.contains(only) {
            return;
        }
        let started = Instant::now();
        let bytes = run();
        let seconds = started.elapsed().as_secs_f64();
        println!("{what:<34} {bytes:>12} bytes  {seconds:6.2} s");
    };
    time("tar (graph driver's Diff)", &mut || {
        let mut out = Hashed::default();
        lcfs::tar::write_layer_diff(&fs, id, &mut out).expect("diff");
        out.bytes
    });
    time("tar + sha256", &mut || {
        let mut out = Hashed { hash: Some(Sha256::new()), bytes: 0 };
        lcfs::tar::write_layer_diff(&fs, id, &mut out).expect("diff");
        out.bytes
    });
    for (name, level) in [
        ("gzip default (6) + 2x sha256", flate2::Compression::default()),
        ("gzip level 2 + 2x sha256", flate2::Compression::new(2)),
        ("gzip fast (1) + 2x sha256", flate2::Compression::fast()),
        ("gzip none (0) + 2x sha256", flate2::Compression::none()),
    ] {
        time(name, &mut || {
            let blob = Tee { hash: Sha256::new(), inner: Hashed::default() };
            let gz = flate2::write::GzEncoder::new(blob, level);
            let mut tar = Tee { hash: Sha256::new(), inner: gz };
            lcfs::tar::write_layer_diff(&fs, id, &mut tar).expect("diff");
            let blob = tar.inner.finish().expect("gzip");
            blob.inner.bytes
        });
    }
}
