//! containerd's diff service as containerd's proxy differ calls it: a gRPC client of the same
//! protos talks to `lcfs mount --snapshotter SOCK --containerd-root DIR`, the built binary, on
//! the snapshotter's socket. DIR holds a fake content store: blobs written under their sha256,
//! as containerd's local store lays them out.
//!
//! Apply of plain, gzip and zstd tars (several gzip members and zstd frames, trailing bytes
//! after the tar, whiteouts and an opaque directory on a child snapshot) puts the files in
//! `MNT/layers/NAME` and replies as containerd's walking differ does; a blob that does not
//! match its descriptor is refused; a missing blob is NotFound; a hostile tar fails and
//! changes nothing outside its layer. What is not this differ's (other mounts, no
//! `--containerd-root`, unknown media types, payloads, other digest algorithms, Diff) is
//! declined with NotImplemented, so that containerd asks its next differ.
//!
//! Diff, with `--containerd-address SOCK`, writes a layer's changes against its parent into a
//! fake of containerd's Content service on SOCK (`FakeContent`, a tonic server on a temporary
//! unix socket that checks offsets, sizes and digests as containerd's does): the blob is the
//! changes as a tar (whiteouts for deletions), gzip or not, committed under its digest and size
//! with the `containerd.io/uncompressed` label, in the caller's namespace. What is not exactly
//! a layer against its parent, other media types, and a daemon without the address, are
//! declined; a content service that fails fails the Diff and nothing is committed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
mod common;
mod apply;
mod diff;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
use containerd_snapshots::api::snapshots::v1::{CommitSnapshotRequest, PrepareSnapshotRequest};
use containerd_snapshots::api::types::Mount;
use containerd_snapshots::tonic::transport::Channel;
use containerd_snapshots::tonic::Code;
use sha2::{Digest, Sha256};

use lcfs_fuse::containerd_api as api;

use api::containerd::services::diff::v1::diff_client::DiffClient;
use api::containerd::services::diff::v1::{ApplyRequest, DiffRequest};
use api::containerd::types::Descriptor;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// An image mounted with the snapshotter (and differ) on `socket`; unmounted on drop.
struct Daemon {
    dir: tempfile::TempDir,
    mountpoint: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    /// With `--containerd-root DIR/containerd` if `content_store`.
    fn new(content_store: bool) -> Daemon {
        Daemon::with(content_store, None)
    }

    /// With `--containerd-root DIR/containerd` if `content_store`, and `--containerd-address`.
    fn with(content_store: bool, address: Option<&Path>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("lcfs.img");
        let mountpoint = dir.path().join("mnt");
        let socket = dir.path().join("run/snapshotter.sock");
        std::fs::create_dir(&mountpoint).unwrap();
        std::fs::create_dir_all(dir.path().join(BLOBS)).unwrap();
        common::run(&["mkfs", "--size", "1G", image.to_str().unwrap()]);
        let root = dir.path().join("containerd");
        let mut args = vec![
            "mount",
            image.to_str().unwrap(),
            mountpoint.to_str().unwrap(),
            "--snapshotter",
            socket.to_str().unwrap(),
        ];
        if content_store {
            args.extend(["--containerd-root", root.to_str().unwrap()]);
        }
        if let Some(address) = address {
            args.extend(["--containerd-address", address.to_str().unwrap()]);
        }
        common::run(&args);
        Daemon {
            dir,
            mountpoint,
            socket,
        }
    }

    fn layer_dir(&self, key: &str) -> PathBuf {
        self.mountpoint
            .join("layers")
            .join(key.replace('%', "%25").replace('/', "%2F"))
    }

    /// Stores `blob` in the fake content store; its descriptor of `media_type`.
    fn store(&self, blob: &[u8], media_type: &str) -> Descriptor {
        let digest = sha256(blob);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(self.dir.path().join(BLOBS).join(hex), blob).unwrap();
        Descriptor {
            media_type: media_type.into(),
            digest,
            size: blob.len() as i64,
            annotations: HashMap::new(),
        }
    }

    async fn clients(&self) -> Clients {
        let channel = common::grpc_channel(&self.socket).await;
        Clients {
            snapshots: SnapshotsClient::new(channel.clone()),
            diff: DiffClient::new(channel),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let path = self.mountpoint.to_str().unwrap_or_default().to_string();
        if !common::run_raw(&["umount", &path]).status.success() {
            let _ = common::run_raw(&["umount", "--lazy", &path]);
        }
    }
}

/// containerd's blobs under the daemon's temporary directory.
const BLOBS: &str = "containerd/io.containerd.content.v1.content/blobs/sha256";

struct Clients {
    snapshots: SnapshotsClient<Channel>,
    diff: DiffClient<Channel>,
}

impl Clients {
    async fn prepare(&mut self, key: &str, parent: &str) -> Vec<Mount> {
        let req = PrepareSnapshotRequest {
            snapshotter: "lcfs".into(),
            key: key.into(),
            parent: parent.into(),
            labels: HashMap::new(),
        };
        self.snapshots
            .prepare(req)
            .await
            .unwrap()
            .into_inner()
            .mounts
    }

    async fn commit(&mut self, name: &str, key: &str) {
        let req = CommitSnapshotRequest {
            snapshotter: "lcfs".into(),
            name: name.into(),
            key: key.into(),
            labels: HashMap::new(),
        };
        self.snapshots.commit(req).await.unwrap();
    }

    async fn apply(&mut self, desc: &Descriptor, mounts: &[Mount]) -> Result<Descriptor, Code> {
        self.apply_request(ApplyRequest {
            diff: Some(desc.clone()),
            mounts: mounts.to_vec(),
            payloads: HashMap::new(),
            sync_fs: false,
        })
        .await
    }

    async fn apply_request(&mut self, req: ApplyRequest) -> Result<Descriptor, Code> {
        match self.diff.apply(req).await {
            Ok(reply) => Ok(reply.into_inner().applied.expect("an applied descriptor")),
            Err(status) => {
                eprintln!("Apply: {status}");
                Err(status.code())
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar stream written entry by entry (POSIX ustar), for exact control of names.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn entry(&mut self, name: &str, kind: u8, mode: u32, link: &str, data: &[u8]) -> &mut Tar {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, field: &[u8]| {
            h[at..at + field.len()].copy_from_slice(field);
        };
        put(&mut h, 0, name.as_bytes());
        put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{:011o}\0", data.len()).as_bytes());
        put(&mut h, 136, b"14000000000\0");
        put(&mut h, 148, b"        ");
        h[156] = kind;
        put(&mut h, 157, link.as_bytes());
        put(&mut h, 257, b"ustar\0");
        put(&mut h, 263, b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn dir(&mut self, name: &str) -> &mut Tar {
        self.entry(name, b'5', 0o755, "", b"")
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Tar {
        self.entry(name, b'0', 0o644, "", data)
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.entry(name, b'2', 0o777, target, b"")
    }

    fn hard_link(&mut self, name: &str, target: &str) -> &mut Tar {
        self.entry(name, b'1', 0o644, target, b"")
    }

    /// The end-of-archive marker, then zeros up to GNU tar's 10 KiB record, as `tar` writes.
    fn finish(&mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0.resize(self.0.len().div_ceil(10240) * 10240, 0);
        std::mem::take(&mut self.0)
    }
}

fn base_layer() -> Vec<u8> {
    Tar::default()
        .dir("etc/")
        .file("etc/hostname", b"lcfs\n")
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        .hard_link("etc/passwd-", "etc/passwd")
        .dir("bin/")
        .file("bin/busybox", &vec![7u8; 300_000])
        .symlink("bin/sh", "busybox")
        .dir("var/")
        .dir("var/cache/")
        .file("var/cache/a", b"a")
        .file("var/cache/b", b"b")
        .finish()
}

/// A child layer: a whiteout, an opaque directory with one new entry, a changed file.
fn child_layer() -> Vec<u8> {
    Tar::default()
        .dir("etc/")
        .file("etc/.wh.hostname", b"")
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/ash\n")
        .dir("var/")
        .dir("var/cache/")
        .file("var/cache/.wh..wh..opq", b"")
        .file("var/cache/c", b"c")
        .finish()
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
