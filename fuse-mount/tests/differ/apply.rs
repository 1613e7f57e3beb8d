//! Apply: layers extracted in the engine, blobs checked, what is not this differ's declined.

use super::*;

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
