//! The kernel page cache through the mount: a file shared by several layers is not cached once
//! per layer, and a file one layer re-reads stays cached (`fuse-mount/src/mount/pagecache.rs`).
//!
//! Residency is read with mincore(2) on a fresh read-only mapping, which reports the file's
//! pages in the page cache without faulting any in.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::Mounted;

const PAGE: usize = 4096;

/// Pages of `path` in the kernel's page cache.
fn resident_pages(path: &Path) -> usize {
    let file = File::open(path).expect("open");
    let (resident, _) = lcfs_fuse::resident_pages(&file).expect("mincore");
    resident
}

fn read_whole(path: &Path) -> usize {
    let mut bytes = Vec::new();
    File::open(path)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    bytes.len()
}

/// Waits until `path` has no page cached (the daemon asks the kernel from a thread of its own).
fn wait_uncached(path: &Path) -> usize {
    let start = Instant::now();
    loop {
        let pages = resident_pages(path);
        if pages == 0 || start.elapsed() > Duration::from_secs(10) {
            return pages;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_file_read_through_many_layers_is_cached_once_and_one_layers_rereads_stay_cached() {
    let m = Mounted::new("1G");
    m.layer(&["create", "image"]);
    let image = m.layer_dir("image");
    let bytes = vec![0x5au8; 4 << 20];
    for name in ["solo", "serial", "together"] {
        let mut f = File::create(image.join(name)).expect("create");
        f.write_all(&bytes).expect("write");
    }
    m.layer(&["commit", "image"]);
    let containers: Vec<String> = (1..=5).map(|i| format!("c{i}")).collect();
    for c in &containers {
        m.layer(&["create", c, "--parent", "image"]);
    }
    let file = |c: &str, name: &str| m.layer_dir(c).join(name);

    // One container reads a file twice: the second read is the kernel's, and after it the
    // pages are still there (the image layer's copy, from its write, moved over to c1).
    assert_eq!(read_whole(&file("c1", "solo")), bytes.len());
    assert_eq!(read_whole(&file("c1", "solo")), bytes.len());
    let kept = resident_pages(&file("c1", "solo"));
    assert!(
        kept * PAGE >= bytes.len() / 2,
        "c1/solo keeps its pages across opens: {kept} of {} cached",
        bytes.len() / PAGE
    );

    // Five containers read a file one after another: the copy moves to the last reader.
    for c in &containers {
        assert_eq!(read_whole(&file(c, "serial")), bytes.len());
    }
    // The last reader first: looking at another layer's file opens it there, which moves
    // the copy.
    let last = resident_pages(&file("c5", "serial"));
    assert!(last * PAGE >= bytes.len() / 2, "c5/serial keeps the copy: {last} pages");
    for c in &containers[..4] {
        let left = wait_uncached(&file(c, "serial"));
        assert_eq!(left, 0, "{c}/serial still has {left} pages after c5 read it");
    }

    // Five containers have a file open at once and read it: once closed, none keeps a copy of
    // its own (the daemon's reads of the image file hold the one copy).
    let open: Vec<File> = containers
        .iter()
        .map(|c| File::open(file(c, "together")).expect("open"))
        .collect();
    for mut f in open {
        let mut got = Vec::new();
        f.read_to_end(&mut got).expect("read");
        assert_eq!(got.len(), bytes.len());
    }
    for c in &containers {
        let left = wait_uncached(&file(c, "together"));
        assert_eq!(left, 0, "{c}/together still has {left} pages after its last close");
    }
    assert_eq!(read_whole(&file("c3", "together")), bytes.len());
}
