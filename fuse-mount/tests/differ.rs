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

mod common;

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

/// The diff service's generated client, from the protos the daemon is built with.
mod api {
    #![allow(clippy::all)]
    pub mod containerd {
        pub mod types {
            tonic::include_proto!("containerd.types");
        }
        pub mod services {
            pub mod content {
                pub mod v1 {
                    tonic::include_proto!("containerd.services.content.v1");
                }
            }
            pub mod leases {
                pub mod v1 {
                    tonic::include_proto!("containerd.services.leases.v1");
                }
            }
            pub mod diff {
                pub mod v1 {
                    tonic::include_proto!("containerd.services.diff.v1");
                }
            }
        }
    }
}

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

#[tokio::test]
async fn apply_extracts_gzip_layers_and_their_whiteouts_in_the_engine() {
    require!();
    let d = Daemon::new(true);
    let mut c = d.clients().await;

    let base_tar = base_layer();
    // Two gzip members, as some writers produce: containerd reads both.
    let half = base_tar.len() / 2;
    let mut blob = gzip(&base_tar[..half]);
    blob.extend(gzip(&base_tar[half..]));
    let desc = d.store(&blob, TAR_GZIP);
    let mounts = c.prepare("default/1/extract-1 sha256:base", "").await;
    let applied = c.apply(&desc, &mounts).await.unwrap();
    assert_eq!(applied.media_type, TAR);
    assert_eq!(applied.digest, sha256(&base_tar));
    assert_eq!(
        applied.size,
        base_tar.len() as i64,
        "the whole stream, padding included"
    );

    let base = d.layer_dir("default/1/extract-1 sha256:base");
    assert_eq!(sorted_names(&base), ["bin", "etc", "var"]);
    assert_eq!(std::fs::read(base.join("etc/hostname")).unwrap(), b"lcfs\n");
    assert_eq!(
        std::fs::read(base.join("bin/busybox")).unwrap().len(),
        300_000
    );
    assert_eq!(
        std::fs::read_link(base.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let (a, b) = (
        std::fs::metadata(base.join("etc/passwd")).unwrap(),
        std::fs::metadata(base.join("etc/passwd-")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "a hard link");
    c.commit("default/2/sha256:base", "default/1/extract-1 sha256:base")
        .await;

    let child_tar = child_layer();
    let desc = d.store(&gzip(&child_tar), DOCKER_GZIP);
    let mounts = c
        .prepare("default/3/extract-2", "default/2/sha256:base")
        .await;
    let applied = c.apply(&desc, &mounts).await.unwrap();
    assert_eq!(
        (applied.digest.as_str(), applied.size),
        (sha256(&child_tar).as_str(), child_tar.len() as i64)
    );
    let child = d.layer_dir("default/3/extract-2");
    assert_eq!(sorted_names(&child.join("etc")), ["passwd", "passwd-"]);
    assert_eq!(
        std::fs::read(child.join("etc/passwd")).unwrap(),
        b"root:x:0:0:root:/root:/bin/ash\n"
    );
    assert_eq!(
        std::fs::read(child.join("etc/passwd-")).unwrap(),
        b"root:x:0:0:root:/root:/bin/sh\n",
        "the other name kept the parent's file"
    );
    assert_eq!(sorted_names(&child.join("var/cache")), ["c"]);
    assert_eq!(sorted_names(&child.join("bin")), ["busybox", "sh"]);
    // The parent is as it was.
    let base = d.layer_dir("default/2/sha256:base");
    assert_eq!(sorted_names(&base.join("var/cache")), ["a", "b"]);
    assert_eq!(std::fs::read(base.join("etc/hostname")).unwrap(), b"lcfs\n");

    // A plain tar, with sync_fs (containerd 2.x's option): the same reply.
    let plain = Tar::default().file("plain", b"not compressed").finish();
    let desc = d.store(&plain, TAR);
    let mounts = c.prepare("default/4/extract-3", "").await;
    let applied = c
        .apply_request(ApplyRequest {
            diff: Some(desc.clone()),
            mounts: mounts.clone(),
            payloads: HashMap::new(),
            sync_fs: true,
        })
        .await
        .unwrap();
    assert_eq!(applied.digest, desc.digest);
    assert_eq!(
        std::fs::read(d.layer_dir("default/4/extract-3").join("plain")).unwrap(),
        b"not compressed"
    );
}

/// `zstd -c` of `bytes` (the zstd tool, as image builders compress).
fn zstd(bytes: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("zstd")
        .args(["-q", "-c", "--check"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[tokio::test]
async fn apply_decompresses_zstd_layers_of_several_frames() {
    require!("zstd");
    let d = Daemon::new(true);
    let mut c = d.clients().await;
    let tar = base_layer();
    let half = tar.len() / 2;
    let mut blob = zstd(&tar[..half]);
    blob.extend(zstd(&tar[half..]));
    let desc = d.store(&blob, "application/vnd.oci.image.layer.v1.tar+zstd");
    let mounts = c.prepare("default/1/extract", "").await;
    let applied = c.apply(&desc, &mounts).await.unwrap();
    assert_eq!(
        (applied.media_type.as_str(), applied.digest.as_str()),
        (TAR, sha256(&tar).as_str())
    );
    assert_eq!(applied.size, tar.len() as i64);
    let layer = d.layer_dir("default/1/extract");
    assert_eq!(sorted_names(&layer), ["bin", "etc", "var"]);
    assert_eq!(
        std::fs::read(layer.join("bin/busybox")).unwrap(),
        vec![7u8; 300_000]
    );
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_descriptor_is_refused() {
    require!();
    let d = Daemon::new(true);
    let mut c = d.clients().await;
    let tar = Tar::default().file("a", b"the real content").finish();
    let real = d.store(&gzip(&tar), TAR_GZIP);

    // The descriptor's size is not the blob's: refused before anything is applied.
    let mounts = c.prepare("default/1/extract-size", "").await;
    let wrong_size = Descriptor {
        size: real.size + 1,
        ..real.clone()
    };
    assert_eq!(
        c.apply(&wrong_size, &mounts).await,
        Err(Code::FailedPrecondition)
    );
    assert!(sorted_names(&d.layer_dir("default/1/extract-size")).is_empty());

    // Same size, other bytes under the digest's name (the gzip header's time: the blob still
    // decompresses to the same tar): refused once the digest is known, at the blob's end.
    let hex = real.digest.trim_start_matches("sha256:");
    let path = d.dir.path().join(BLOBS).join(hex);
    let mut forged = std::fs::read(&path).unwrap();
    forged[4] ^= 1;
    std::fs::write(&path, &forged).unwrap();
    let mounts = c.prepare("default/2/extract-digest", "").await;
    assert_eq!(c.apply(&real, &mounts).await, Err(Code::FailedPrecondition));
}

#[tokio::test]
async fn a_missing_blob_is_not_found() {
    require!();
    let d = Daemon::new(true);
    let mut c = d.clients().await;
    let mounts = c.prepare("default/1/extract", "").await;
    let absent = Descriptor {
        media_type: TAR_GZIP.into(),
        digest: sha256(b"never stored"),
        size: 12,
        annotations: HashMap::new(),
    };
    assert_eq!(c.apply(&absent, &mounts).await, Err(Code::NotFound));
    let malformed = Descriptor {
        digest: "sha256:../../../../etc/passwd".into(),
        ..absent
    };
    assert_eq!(
        c.apply(&malformed, &mounts).await,
        Err(Code::InvalidArgument)
    );
}

#[tokio::test]
async fn a_hostile_tar_fails_and_changes_nothing_outside_its_layer() {
    require!();
    let d = Daemon::new(true);
    let mut c = d.clients().await;
    let parent_tar = Tar::default().file("kept", b"parent").finish();
    let mounts = c.prepare("default/1/extract-parent", "").await;
    c.apply(&d.store(&parent_tar, TAR), &mounts).await.unwrap();
    c.commit("default/2/parent", "default/1/extract-parent")
        .await;
    let sibling = c.prepare("default/3/sibling", "default/2/parent").await;
    std::fs::write(Path::new(&sibling[0].source).join("mine"), b"sibling").unwrap();

    let hostile = [
        Tar::default()
            .file("fine", b"x")
            .file("../../escaped", b"out")
            .finish(),
        Tar::default()
            .symlink("link", "/")
            .file("link/tmp/escaped", b"out")
            .finish(),
        Tar::default()
            .hard_link("stolen", "../../lcfs.img")
            .finish(),
        // Not gzip at all, under a gzip media type.
        b"\x1f\x8b\x08\x00 this is not deflate data at all".to_vec(),
        // A tar cut in the middle of a file.
        Tar::default().file("big", &[1u8; 4096]).finish()[..1024].to_vec(),
    ];
    for (n, tar) in hostile.iter().enumerate() {
        let key = format!("default/{}/extract-hostile", 10 + n);
        let mounts = c.prepare(&key, "default/2/parent").await;
        let media = if n == 3 { TAR_GZIP } else { TAR };
        let code = c.apply(&d.store(tar, media), &mounts).await.unwrap_err();
        assert!(
            matches!(code, Code::InvalidArgument),
            "hostile tar {n}: {code:?}"
        );
    }
    assert!(!d.dir.path().join("escaped").exists());
    assert!(!d.mountpoint.join("escaped").exists());
    assert!(!Path::new("/tmp/escaped").exists());
    let parent = d.layer_dir("default/2/parent");
    assert_eq!(sorted_names(&parent), ["kept"]);
    let sibling = d.layer_dir("default/3/sibling");
    assert_eq!(sorted_names(&sibling), ["kept", "mine"]);
    assert_eq!(std::fs::read(sibling.join("mine")).unwrap(), b"sibling");
}

#[tokio::test]
async fn what_is_not_this_differs_is_declined_for_the_next_differ() {
    require!();
    let d = Daemon::new(true);
    let mut c = d.clients().await;
    let tar = Tar::default().file("a", b"a").finish();
    let desc = d.store(&gzip(&tar), TAR_GZIP);
    let mounts = c.prepare("default/1/extract", "").await;
    let ours = &mounts[0];
    let bind = |source: &Path, options: &[&str]| Mount {
        r#type: "bind".into(),
        source: source.to_string_lossy().into_owned(),
        target: String::new(),
        options: options.iter().map(|o| o.to_string()).collect(),
    };
    let elsewhere = tempfile::tempdir().unwrap();
    let declined_mounts = [
        vec![bind(elsewhere.path(), &["rbind", "rw"])],
        vec![bind(&d.mountpoint.join("layers"), &["rbind", "rw"])],
        vec![bind(
            &d.layer_dir("default/1/extract").join("sub"),
            &["rbind", "rw"],
        )],
        vec![bind(&d.layer_dir("no/such/layer"), &["rbind", "rw"])],
        vec![bind(Path::new(&ours.source), &["rbind", "ro"])],
        vec![Mount {
            r#type: "overlay".into(),
            ..ours.clone()
        }],
        vec![ours.clone(), ours.clone()],
        vec![],
    ];
    for mounts in declined_mounts {
        assert_eq!(
            c.apply(&desc, &mounts).await,
            Err(Code::Unimplemented),
            "{mounts:?}"
        );
    }
    assert!(std::fs::read_dir(elsewhere.path())
        .unwrap()
        .next()
        .is_none());

    let encrypted = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip+encrypted".into(),
        ..desc.clone()
    };
    let sha512 = Descriptor {
        digest: format!("sha512:{}", "ab".repeat(64)),
        ..desc.clone()
    };
    for other in [encrypted, sha512] {
        assert_eq!(c.apply(&other, &mounts).await, Err(Code::Unimplemented));
    }
    let mut payloads = HashMap::new();
    payloads.insert(
        "io.containerd.ocicrypt.decoder.v1.tar".to_string(),
        prost_types::Any::default(),
    );
    let with_payloads = ApplyRequest {
        diff: Some(desc.clone()),
        mounts: mounts.clone(),
        payloads,
        sync_fs: false,
    };
    assert_eq!(
        c.apply_request(with_payloads).await,
        Err(Code::Unimplemented)
    );
    assert!(sorted_names(&d.layer_dir("default/1/extract")).is_empty());

    let diff = c
        .diff
        .diff(DiffRequest {
            left: vec![],
            right: mounts.clone(),
            media_type: TAR_GZIP.into(),
            ..DiffRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(diff.code(), Code::Unimplemented);

    // The same request, once nothing is declined, applies.
    c.apply(&desc, &mounts).await.unwrap();
    assert_eq!(sorted_names(&d.layer_dir("default/1/extract")), ["a"]);
}

#[tokio::test]
async fn without_a_content_store_every_apply_is_declined() {
    require!();
    let d = Daemon::new(false);
    let mut c = d.clients().await;
    let tar = Tar::default().file("a", b"a").finish();
    let desc = d.store(&gzip(&tar), TAR_GZIP);
    let mounts = c.prepare("default/1/extract", "").await;
    assert_eq!(c.apply(&desc, &mounts).await, Err(Code::Unimplemented));
    assert!(sorted_names(&d.layer_dir("default/1/extract")).is_empty());
}

#[test]
fn containerd_root_needs_a_snapshotter() {
    let out = common::run_raw(&[
        "mount",
        "/nonexistent.img",
        "/nonexistent",
        "--containerd-root",
        "/x",
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--containerd-root is for the differ"),
        "{stderr}"
    );
}

// ---- Diff, through a fake of containerd's Content service ----------------------------------

use api::containerd::services::content::v1::content_server::{Content, ContentServer};
use api::containerd::services::content::v1::{
    AbortRequest, InfoRequest, InfoResponse, UpdateRequest, UpdateResponse, WriteAction,
    WriteContentRequest, WriteContentResponse,
};
use api::containerd::services::leases::v1::leases_server::{Leases, LeasesServer};
use api::containerd::services::leases::v1::{CreateRequest, CreateResponse, DeleteRequest, Lease};
use containerd_snapshots::api::snapshots::v1::ViewSnapshotRequest;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status, Streaming};

const UNCOMPRESSED: &str = "containerd.io/uncompressed";
const NAMESPACE: &str = "lcfs-test";

/// What the fake content store holds and saw.
#[derive(Default)]
struct ContentState {
    /// Committed blobs by digest: their bytes and labels.
    blobs: HashMap<String, (Vec<u8>, HashMap<String, String>)>,
    /// Uploads not committed, by ref.
    uploads: HashMap<String, Vec<u8>>,
    /// The namespace header of every call.
    namespaces: Vec<String>,
    /// The lease header of every Write stream.
    write_leases: Vec<String>,
    /// Leases created (their labels) and deleted.
    leases: Vec<HashMap<String, String>>,
    deleted_leases: Vec<String>,
    /// Write streams opened, WRITE messages received, refs aborted.
    streams: usize,
    writes: usize,
    aborted: Vec<String>,
    /// Every WRITE fails (a full disk).
    fail_writes: bool,
}

/// containerd's Content service as far as a Diff uses it, with containerd's checks: the first
/// message names the ref; a WRITE lands at the current offset (0 starts over); the latest
/// total and expected digest before or with COMMIT are checked; an expected digest already
/// stored is AlreadyExists.
#[derive(Clone, Default)]
struct FakeContent(Arc<Mutex<ContentState>>);

impl FakeContent {
    fn state(&self) -> std::sync::MutexGuard<'_, ContentState> {
        self.0.lock().unwrap()
    }

    fn saw<T>(&self, request: &Request<T>) {
        let ns = request
            .metadata()
            .get("containerd-namespace")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        self.state().namespaces.push(ns);
    }

    /// Serves one Write stream; the reply to each message, or the status that ends it.
    #[allow(clippy::result_large_err, reason = "the status is what the stream sends")]
    fn handle(
        &self,
        reference: &mut String,
        total: &mut i64,
        expected: &mut String,
        req: WriteContentRequest,
    ) -> Result<WriteContentResponse, Status> {
        let mut st = self.state();
        if reference.is_empty() {
            if req.r#ref.is_empty() {
                return Err(Status::invalid_argument(
                    "first message must have a reference",
                ));
            }
            *reference = req.r#ref.clone();
        }
        if !req.expected.is_empty() {
            *expected = req.expected.clone();
            if st.blobs.contains_key(expected.as_str()) {
                st.uploads.remove(reference.as_str());
                return Err(Status::already_exists(format!("blob {expected} exists")));
            }
        }
        if req.total > 0 {
            *total = req.total;
        }
        let action = WriteAction::from_i32(req.action).unwrap();
        if action == WriteAction::Write {
            st.writes += 1;
            if st.fail_writes {
                return Err(Status::resource_exhausted(
                    "fake content store: no space left",
                ));
            }
        }
        let data = st.uploads.entry(reference.clone()).or_default();
        let mut reply = WriteContentResponse {
            action: req.action,
            ..WriteContentResponse::default()
        };
        if action != WriteAction::Stat {
            if req.offset > 0 && req.offset != data.len() as i64 {
                return Err(Status::out_of_range("write not at the current offset"));
            }
            if req.offset == 0 {
                data.clear();
            }
            data.extend_from_slice(&req.data);
        }
        reply.offset = data.len() as i64;
        reply.digest = sha256(data);
        if action == WriteAction::Commit {
            if *total > 0 && *total != data.len() as i64 {
                return Err(Status::failed_precondition("unexpected commit size"));
            }
            if !expected.is_empty() && *expected != reply.digest {
                return Err(Status::failed_precondition("unexpected commit digest"));
            }
            let data = st.uploads.remove(reference.as_str()).unwrap();
            st.blobs.insert(reply.digest.clone(), (data, req.labels));
        }
        Ok(reply)
    }
}

#[tonic::async_trait]
impl Content for FakeContent {
    async fn info(&self, request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        self.saw(&request);
        let digest = request.into_inner().digest;
        let st = self.state();
        let (data, labels) = st
            .blobs
            .get(&digest)
            .ok_or_else(|| Status::not_found(digest.clone()))?;
        Ok(Response::new(InfoResponse {
            info: Some(api::containerd::services::content::v1::Info {
                digest: digest.clone(),
                size: data.len() as i64,
                labels: labels.clone(),
                ..Default::default()
            }),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, Status> {
        self.saw(&request);
        let req = request.into_inner();
        let info = req.info.unwrap();
        let mut st = self.state();
        let (_, labels) = st
            .blobs
            .get_mut(&info.digest)
            .ok_or_else(|| Status::not_found(info.digest.clone()))?;
        for path in req.update_mask.unwrap().paths {
            let key = path.strip_prefix("labels.").unwrap();
            labels.insert(key.to_string(), info.labels[key].clone());
        }
        Ok(Response::new(UpdateResponse { info: Some(info) }))
    }

    type WriteStream = tokio_stream::wrappers::ReceiverStream<Result<WriteContentResponse, Status>>;

    async fn write(
        &self,
        request: Request<Streaming<WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        self.saw(&request);
        let lease = request
            .metadata()
            .get("containerd-lease")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        self.state().write_leases.push(lease);
        self.state().streams += 1;
        let mut incoming = request.into_inner();
        let (replies, stream) = tokio::sync::mpsc::channel(4);
        let fake = self.clone();
        tokio::spawn(async move {
            let (mut reference, mut total, mut expected) = (String::new(), 0, String::new());
            loop {
                let reply = match incoming.message().await {
                    Ok(Some(req)) => fake.handle(&mut reference, &mut total, &mut expected, req),
                    Ok(None) | Err(_) => return,
                };
                let last = reply.is_err();
                if replies.send(reply).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            stream,
        )))
    }

    async fn abort(&self, request: Request<AbortRequest>) -> Result<Response<()>, Status> {
        self.saw(&request);
        let reference = request.into_inner().r#ref;
        let mut st = self.state();
        st.aborted.push(reference.clone());
        match st.uploads.remove(&reference) {
            Some(_) => Ok(Response::new(())),
            None => Err(Status::not_found(reference)),
        }
    }
}

#[tonic::async_trait]
impl Leases for FakeContent {
    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        self.saw(&request);
        let mut st = self.state();
        st.leases.push(request.into_inner().labels);
        let id = format!("lease-{}", st.leases.len());
        Ok(Response::new(CreateResponse {
            lease: Some(Lease {
                id,
                ..Lease::default()
            }),
        }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<()>, Status> {
        self.saw(&request);
        let id = request.into_inner().id;
        self.state().deleted_leases.push(id);
        Ok(Response::new(()))
    }
}

/// Serves `fake` on `socket` in the background (this test's runtime).
fn serve_content(fake: &FakeContent, socket: &Path) {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let (connections, incoming) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if connections
                .send(Ok::<_, std::io::Error>(stream))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let service = ContentServer::new(fake.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .add_service(LeasesServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(incoming)),
    );
}

/// A daemon whose differ writes to a fake content service (and reads its own fake store).
struct DiffSetup {
    fake: FakeContent,
    _content_dir: tempfile::TempDir,
    d: Daemon,
}

fn diff_setup() -> DiffSetup {
    let content_dir = tempfile::tempdir().unwrap();
    let socket = content_dir.path().join("containerd.sock");
    let fake = FakeContent::default();
    serve_content(&fake, &socket);
    let d = Daemon::with(true, Some(&socket));
    DiffSetup {
        fake,
        _content_dir: content_dir,
        d,
    }
}

impl Clients {
    async fn view(&mut self, key: &str, parent: &str) -> Vec<Mount> {
        let req = ViewSnapshotRequest {
            snapshotter: "lcfs".into(),
            key: key.into(),
            parent: parent.into(),
            labels: HashMap::new(),
        };
        self.snapshots.view(req).await.unwrap().into_inner().mounts
    }

    /// Diff as containerd's proxy differ sends it, in namespace [`NAMESPACE`].
    async fn diff_of(
        &mut self,
        left: &[Mount],
        right: &[Mount],
        media_type: &str,
    ) -> Result<Descriptor, Status> {
        self.diff_request(DiffRequest {
            left: left.to_vec(),
            right: right.to_vec(),
            media_type: media_type.into(),
            ..DiffRequest::default()
        })
        .await
    }

    async fn diff_request(&mut self, req: DiffRequest) -> Result<Descriptor, Status> {
        let mut request = Request::new(req);
        request
            .metadata_mut()
            .insert("containerd-namespace", NAMESPACE.parse().unwrap());
        match self.diff.diff(request).await {
            Ok(reply) => Ok(reply.into_inner().diff.expect("a descriptor")),
            Err(status) => {
                eprintln!("Diff: {status}");
                Err(status)
            }
        }
    }
}

/// A committed base layer and an active child that adds, changes and deletes files; the
/// mounts of the child and of a view of the base.
async fn base_and_child(d: &Daemon, c: &mut Clients) -> (Vec<Mount>, Vec<Mount>) {
    c.prepare("default/1/base", "").await;
    let base = d.layer_dir("default/1/base");
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::create_dir_all(base.join("var/cache")).unwrap();
    std::fs::write(base.join("etc/hostname"), b"lcfs\n").unwrap();
    std::fs::write(base.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(base.join("var/cache/a"), b"a").unwrap();
    c.commit("default/2/base", "default/1/base").await;
    let child = c.prepare("default/3/child", "default/2/base").await;
    let dir = d.layer_dir("default/3/child");
    std::fs::remove_file(dir.join("etc/hostname")).unwrap();
    std::fs::write(dir.join("etc/passwd"), b"root:x:0:0::/root:/bin/ash\n").unwrap();
    std::fs::create_dir(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/hello.txt"), b"hello from the child\n").unwrap();
    // Incompressible and over a MiB: more than one WRITE message.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..2_500_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("data/noise"), &noise).unwrap();
    std::os::unix::fs::symlink("hello.txt", dir.join("data/link")).unwrap();
    let view = c.view("default/4/base-view", "default/2/base").await;
    (view, child)
}

/// The entries of a layer tar: path (no trailing `/`) and data (a symlink's target).
fn tar_entries(tar: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut reader = lcfs::tar::Reader::new(tar, lcfs::tar::Limits::default());
    let mut out = HashMap::new();
    while let Some(entry) = reader.next_entry().unwrap() {
        let mut data = vec![0u8; entry.size as usize];
        let mut filled = 0;
        while filled < data.len() {
            filled += reader.read_data(&mut data[filled..]).unwrap();
        }
        if entry.kind == lcfs::tar::EntryKind::Symlink {
            data = entry.link.clone();
        }
        let path = String::from_utf8(entry.path).unwrap();
        out.insert(path.trim_end_matches('/').to_string(), data);
    }
    out
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(blob), &mut out).unwrap();
    out
}

/// Files, directories and symlinks under `root`, with each file's bytes and link's target.
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let value = if m.is_symlink() {
                let mut v = b"-> ".to_vec();
                v.extend(
                    std::fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                );
                v
            } else if m.is_dir() {
                stack.push(path.clone());
                b"dir".to_vec()
            } else {
                std::fs::read(&path).unwrap()
            };
            out.insert(name, value);
        }
    }
    out
}

#[tokio::test]
async fn diff_writes_a_layers_changes_into_the_content_store() {
    require!();
    let s = diff_setup();
    let (d, fake) = (&s.d, &s.fake);
    let mut c = d.clients().await;
    let (view, child) = base_and_child(d, &mut c).await;

    let desc = c.diff_of(&view, &child, TAR_GZIP).await.unwrap();
    assert_eq!(desc.media_type, TAR_GZIP);
    let (blob, labels) = fake.state().blobs[&desc.digest].clone();
    assert_eq!(sha256(&blob), desc.digest);
    assert_eq!(blob.len() as i64, desc.size);
    let tar = gunzip(&blob);
    assert_eq!(labels[UNCOMPRESSED], sha256(&tar));
    let entries = tar_entries(&tar);
    assert_eq!(entries["etc/.wh.hostname"], b"", "a deletion is a whiteout");
    assert_eq!(entries["etc/passwd"], b"root:x:0:0::/root:/bin/ash\n");
    assert_eq!(entries["data/hello.txt"], b"hello from the child\n");
    assert_eq!(entries["data/link"], b"hello.txt");
    assert_eq!(entries["data/noise"].len(), 2_500_000);
    assert!(
        !entries.contains_key("var/cache/a"),
        "unchanged files stay out"
    );
    {
        let st = fake.state();
        assert!(st.uploads.is_empty(), "nothing left uncommitted");
        assert!(
            st.namespaces.iter().all(|n| n == NAMESPACE),
            "{:?}",
            st.namespaces
        );
        // The upload ran under a lease of its own, which expires by itself.
        assert_eq!(st.write_leases, ["lease-1"]);
        assert!(
            st.leases[0]["containerd.io/gc.expire"].ends_with('Z'),
            "{:?}",
            st.leases
        );
        assert!(st.deleted_leases.is_empty());
    }

    // The blob applied on the base gives the child's tree back.
    let stored = d.store(&blob, TAR_GZIP);
    let replay = c.prepare("default/5/replay", "default/2/base").await;
    c.apply(&stored, &replay).await.unwrap();
    assert_eq!(
        tree(&d.layer_dir("default/5/replay")),
        tree(&d.layer_dir("default/3/child"))
    );

    // Uncompressed: several WRITE messages; the label is the blob's own digest. No media
    // type is containerd's default, gzip.
    let writes = fake.state().writes;
    let plain = c.diff_of(&view, &child, TAR).await.unwrap();
    assert_eq!(plain.media_type, TAR);
    assert_eq!(plain.digest, labels[UNCOMPRESSED], "the same tar");
    assert!(fake.state().writes - writes > 1, "written in chunks");
    assert_eq!(
        fake.state().blobs[&plain.digest].1[UNCOMPRESSED],
        plain.digest
    );
    let default = c.diff_of(&view, &child, "").await.unwrap();
    assert_eq!(default.media_type, TAR_GZIP);
    assert_eq!(
        fake.state().blobs[&default.digest].1[UNCOMPRESSED],
        plain.digest
    );

    // The same diff again: the blob is already stored (AlreadyExists), which is success.
    let again = c.diff_of(&view, &child, TAR).await.unwrap();
    assert_eq!(again, plain);

    // Against the committed parent itself, and of a committed child through a view of it.
    let base = c.view("default/6/base-again", "default/2/base").await;
    assert_eq!(c.diff_of(&base, &child, TAR).await.unwrap(), plain);
    c.commit("default/7/child", "default/3/child").await;
    let child_view = c.view("default/8/child-view", "default/7/child").await;
    assert_eq!(c.diff_of(&view, &child_view, TAR).await.unwrap(), plain);
    let committed_base = vec![Mount {
        source: d.layer_dir("default/2/base").to_string_lossy().into_owned(),
        ..base[0].clone()
    }];
    assert_eq!(
        c.diff_of(&committed_base, &child_view, TAR).await.unwrap(),
        plain
    );
}

#[tokio::test]
async fn diff_declines_what_is_not_a_layer_against_its_parent() {
    require!();
    let s = diff_setup();
    let (d, fake) = (&s.d, &s.fake);
    let mut c = d.clients().await;
    let (view, child) = base_and_child(d, &mut c).await;
    let other = c.prepare("default/10/other", "").await;
    std::fs::write(d.layer_dir("default/10/other").join("x"), b"x").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = vec![Mount {
        source: elsewhere.path().to_string_lossy().into_owned(),
        ..view[0].clone()
    }];
    let two = vec![child[0].clone(), child[0].clone()];
    for (what, left, right, media) in [
        ("reversed", &child, &view, TAR_GZIP),
        ("unrelated", &view, &other, TAR_GZIP),
        ("a changed left", &child, &child, TAR_GZIP),
        ("not lcfs", &outside, &child, TAR_GZIP),
        ("not lcfs", &view, &outside, TAR_GZIP),
        ("two mounts", &view, &two, TAR_GZIP),
        (
            "zstd",
            &view,
            &child,
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        ("docker", &view, &child, DOCKER_GZIP),
    ] {
        let e = c.diff_of(left, right, media).await.unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented, "{what}: {e}");
    }
    let epoch = DiffRequest {
        left: view.clone(),
        right: child.clone(),
        source_date_epoch: Some(prost_types::Timestamp::default()),
        ..DiffRequest::default()
    };
    let e = c.diff_request(epoch).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e}");
    assert_eq!(fake.state().streams, 0, "nothing was uploaded");

    // Without --containerd-address, every Diff is declined.
    let plain = Daemon::new(true);
    let mut c = plain.clients().await;
    let (view, child) = base_and_child(&plain, &mut c).await;
    let e = c.diff_of(&view, &child, TAR_GZIP).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e}");
    assert!(e.message().contains("--containerd-address"), "{e}");
}

#[tokio::test]
async fn a_failing_content_service_fails_the_diff_and_commits_nothing() {
    require!();
    let s = diff_setup();
    let (d, fake) = (&s.d, &s.fake);
    let mut c = d.clients().await;
    let (view, child) = base_and_child(d, &mut c).await;
    fake.state().fail_writes = true;
    let e = c.diff_of(&view, &child, TAR_GZIP).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("content service"), "{e}");
    assert!(e.message().contains("no space left"), "{e}");
    {
        let st = fake.state();
        assert!(st.blobs.is_empty(), "nothing committed");
        assert!(st.uploads.is_empty(), "the upload was aborted");
        assert_eq!(st.aborted.len(), 1);
        assert_eq!(st.deleted_leases, ["lease-1"], "its lease deleted");
    }

    // Once the service works again, so does the Diff.
    fake.state().fail_writes = false;
    c.diff_of(&view, &child, TAR_GZIP).await.unwrap();

    // containerd not there at all: Unavailable, not a decline.
    let gone = Daemon::with(false, Some(&d.dir.path().join("no-containerd.sock")));
    let mut c = gone.clients().await;
    let (view, child) = base_and_child(&gone, &mut c).await;
    let e = c.diff_of(&view, &child, TAR_GZIP).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
}

#[test]
fn containerd_address_needs_a_snapshotter() {
    let out = common::run_raw(&[
        "mount",
        "/nonexistent.img",
        "/nonexistent",
        "--containerd-address",
        "/x.sock",
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--containerd-address is for the differ"),
        "{stderr}"
    );
}
