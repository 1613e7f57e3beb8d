//! containerd's snapshotter as containerd sees it: a gRPC client of the same protos talks to
//! `lcfs mount --snapshotter SOCK`, the built binary. Every RPC, every error code containerd
//! expects (NotFound, AlreadyExists, FailedPrecondition, InvalidArgument), the parent and
//! child rules, labels and Update's field paths, List's filters, what survives an unmount and
//! a remount, and malformed requests (bad keys, unknown parents, oversized labels, garbage on
//! the socket) that must fail cleanly while the daemon keeps serving.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
use containerd_snapshots::api::snapshots::v1::*;
use containerd_snapshots::api::types::Mount;
use containerd_snapshots::tonic::transport::Channel;
use containerd_snapshots::tonic::{Code, Request};

/// An image mounted with the snapshotter on `socket`; unmounted on drop.
struct Daemon {
    _dir: tempfile::TempDir,
    image: PathBuf,
    mountpoint: PathBuf,
    socket: PathBuf,
    mounted: bool,
}

impl Daemon {
    fn new() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("lcfs.img");
        let mountpoint = dir.path().join("mnt");
        let socket = dir.path().join("run/snapshotter.sock");
        std::fs::create_dir(&mountpoint).unwrap();
        common::run(&["mkfs", "--size", "1G", image.to_str().unwrap()]);
        let mut d = Daemon {
            _dir: dir,
            image,
            mountpoint,
            socket,
            mounted: false,
        };
        d.mount();
        d
    }

    fn mount(&mut self) {
        common::run(&[
            "mount",
            self.image.to_str().unwrap(),
            self.mountpoint.to_str().unwrap(),
            "--snapshotter",
            self.socket.to_str().unwrap(),
        ]);
        self.mounted = true;
    }

    fn umount(&mut self) {
        common::run(&["umount", self.mountpoint.to_str().unwrap()]);
        self.mounted = false;
    }

    fn layers(&self) -> PathBuf {
        self.mountpoint.join("layers")
    }

    /// `lcfs layer ARGS --mount=this`.
    fn layer(&self, args: &[&str]) -> String {
        let mount = format!("--mount={}", self.mountpoint.display());
        let mut all = vec!["layer"];
        all.extend_from_slice(args);
        all.push(&mount);
        common::run(&all)
    }
    async fn client(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(common::grpc_channel(&self.socket).await)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.mounted {
            let path = self.mountpoint.to_str().unwrap_or_default().to_string();
            if !common::run_raw(&["umount", &path]).status.success() {
                let _ = common::run_raw(&["umount", "--lazy", &path]);
            }
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

type Client = SnapshotsClient<Channel>;

async fn prepare(c: &mut Client, key: &str, parent: &str) -> Result<Vec<Mount>, Code> {
    prepare_labeled(c, key, parent, HashMap::new()).await
}

async fn prepare_labeled(
    c: &mut Client,
    key: &str,
    parent: &str,
    labels: HashMap<String, String>,
) -> Result<Vec<Mount>, Code> {
    let req = PrepareSnapshotRequest {
        snapshotter: "lcfs".into(),
        key: key.into(),
        parent: parent.into(),
        labels,
    };
    c.prepare(req)
        .await
        .map(|r| r.into_inner().mounts)
        .map_err(|s| s.code())
}

async fn view(c: &mut Client, key: &str, parent: &str) -> Result<Vec<Mount>, Code> {
    let req = ViewSnapshotRequest {
        snapshotter: "lcfs".into(),
        key: key.into(),
        parent: parent.into(),
        labels: HashMap::new(),
    };
    c.view(req)
        .await
        .map(|r| r.into_inner().mounts)
        .map_err(|s| s.code())
}

async fn commit(
    c: &mut Client,
    name: &str,
    key: &str,
    labels: HashMap<String, String>,
) -> Result<(), Code> {
    let req = CommitSnapshotRequest {
        snapshotter: "lcfs".into(),
        name: name.into(),
        key: key.into(),
        labels,
    };
    c.commit(req).await.map(|_| ()).map_err(|s| s.code())
}

async fn remove(c: &mut Client, key: &str) -> Result<(), Code> {
    let req = RemoveSnapshotRequest {
        snapshotter: "lcfs".into(),
        key: key.into(),
    };
    c.remove(req).await.map(|_| ()).map_err(|s| s.code())
}

async fn stat(c: &mut Client, key: &str) -> Result<Info, Code> {
    let req = StatSnapshotRequest {
        snapshotter: "lcfs".into(),
        key: key.into(),
    };
    c.stat(req)
        .await
        .map(|r| r.into_inner().info.expect("info"))
        .map_err(|s| s.code())
}

async fn mounts(c: &mut Client, key: &str) -> Result<Vec<Mount>, Code> {
    let req = MountsRequest {
        snapshotter: "lcfs".into(),
        key: key.into(),
    };
    c.mounts(req)
        .await
        .map(|r| r.into_inner().mounts)
        .map_err(|s| s.code())
}

async fn update(
    c: &mut Client,
    key: &str,
    labels: HashMap<String, String>,
    paths: &[&str],
) -> Result<Info, Code> {
    let req = UpdateSnapshotRequest {
        snapshotter: "lcfs".into(),
        info: Some(Info {
            name: key.into(),
            labels,
            ..Info::default()
        }),
        update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    c.update(req)
        .await
        .map(|r| r.into_inner().info.expect("info"))
        .map_err(|s| s.code())
}

async fn usage(c: &mut Client, key: &str) -> Result<(i64, i64), Code> {
    let req = UsageRequest {
        snapshotter: "lcfs".into(),
        key: key.into(),
    };
    c.usage(req)
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.size, r.inodes)
        })
        .map_err(|s| s.code())
}

/// The keys List returns for `filters`, sorted.
async fn list(c: &mut Client, filters: &[&str]) -> Result<Vec<String>, Code> {
    let infos = list_infos(c, filters).await?;
    let mut keys: Vec<String> = infos.into_iter().map(|i| i.name).collect();
    keys.sort();
    Ok(keys)
}

async fn list_infos(c: &mut Client, filters: &[&str]) -> Result<Vec<Info>, Code> {
    let req = ListSnapshotsRequest {
        snapshotter: "lcfs".into(),
        filters: filters.iter().map(|f| f.to_string()).collect(),
    };
    let mut stream = c.list(req).await.map_err(|s| s.code())?.into_inner();
    let mut out = Vec::new();
    while let Some(batch) = stream.message().await.map_err(|s| s.code())? {
        out.extend(batch.info);
    }
    Ok(out)
}

const ACTIVE: i32 = 2;
const VIEW: i32 = 1;
const COMMITTED: i32 = 3;

/// The one bind mount of a snapshot: its layer directory, `rw` or `ro`.
fn assert_bind(mounts: &[Mount], source: &Path, access: &str) {
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let m = &mounts[0];
    assert_eq!(m.r#type, "bind");
    assert_eq!(Path::new(&m.source), source);
    assert_eq!(m.options, vec!["rbind".to_string(), access.to_string()]);
}

fn names(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn prepare_commit_and_view_follow_containerd_rules() {
    require!();
    let d = Daemon::new();
    let mut c = d.client().await;

    let m = prepare(&mut c, "default/1/extract-1", "").await.unwrap();
    let dir = d.layers().join("default%2F1%2Fextract-1");
    assert_bind(&m, &dir, "rw");
    std::fs::write(dir.join("hello"), b"from the base").unwrap();
    assert_bind(
        &mounts(&mut c, "default/1/extract-1").await.unwrap(),
        &dir,
        "rw",
    );
    let info = stat(&mut c, "default/1/extract-1").await.unwrap();
    assert_eq!((info.kind, info.parent.as_str()), (ACTIVE, ""));

    assert_eq!(
        prepare(&mut c, "default/1/extract-1", "").await,
        Err(Code::AlreadyExists)
    );
    commit(
        &mut c,
        "default/2/base",
        "default/1/extract-1",
        HashMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        stat(&mut c, "default/1/extract-1").await.map(|_| ()),
        Err(Code::NotFound)
    );
    let info = stat(&mut c, "default/2/base").await.unwrap();
    assert_eq!(
        (info.kind, info.name.as_str()),
        (COMMITTED, "default/2/base")
    );
    let base_dir = d.layers().join("default%2F2%2Fbase");
    assert_bind(
        &mounts(&mut c, "default/2/base").await.unwrap(),
        &base_dir,
        "ro",
    );
    assert_eq!(
        std::fs::read(base_dir.join("hello")).unwrap(),
        b"from the base"
    );
    assert!(
        !dir.exists(),
        "the active key's directory went with the rename"
    );

    // A child of a committed snapshot sees its files and writes its own.
    let m = prepare(&mut c, "c1", "default/2/base").await.unwrap();
    assert_bind(&m, &d.layers().join("c1"), "rw");
    assert_eq!(
        std::fs::read(d.layers().join("c1/hello")).unwrap(),
        b"from the base"
    );
    std::fs::write(d.layers().join("c1/own"), b"child").unwrap();
    assert_eq!(stat(&mut c, "c1").await.unwrap().parent, "default/2/base");
    assert!(!base_dir.join("own").exists());

    // A view is read-only, and neither it nor an active snapshot can be a parent.
    let m = view(&mut c, "v1", "default/2/base").await.unwrap();
    assert_bind(&m, &d.layers().join("v1"), "ro");
    assert_eq!(stat(&mut c, "v1").await.unwrap().kind, VIEW);
    assert_bind(
        &mounts(&mut c, "v1").await.unwrap(),
        &d.layers().join("v1"),
        "ro",
    );
    assert_eq!(view(&mut c, "v2", "").await.map(|_| ()), Ok(()));
    assert_eq!(prepare(&mut c, "x", "c1").await, Err(Code::InvalidArgument));
    assert_eq!(prepare(&mut c, "x", "v1").await, Err(Code::InvalidArgument));
    assert_eq!(view(&mut c, "x", "c1").await, Err(Code::InvalidArgument));
    assert_eq!(
        prepare(&mut c, "x", "no-such-parent").await,
        Err(Code::NotFound)
    );

    // Only an active snapshot commits, and only to a free name.
    let none = HashMap::new();
    assert_eq!(
        commit(&mut c, "n", "v1", none.clone()).await,
        Err(Code::FailedPrecondition)
    );
    assert_eq!(
        commit(&mut c, "n", "default/2/base", none.clone()).await,
        Err(Code::FailedPrecondition)
    );
    assert_eq!(
        commit(&mut c, "n", "nothing", none.clone()).await,
        Err(Code::NotFound)
    );
    assert_eq!(
        commit(&mut c, "v1", "c1", none.clone()).await,
        Err(Code::AlreadyExists)
    );
    assert_eq!(
        commit(&mut c, "c1", "c1", none.clone()).await,
        Err(Code::AlreadyExists)
    );
    assert_eq!(
        stat(&mut c, "c1").await.unwrap().kind,
        ACTIVE,
        "a refused commit changed c1"
    );
    commit(&mut c, "c1-committed", "c1", none).await.unwrap();
    assert_eq!(
        prepare(&mut c, "grandchild", "c1-committed")
            .await
            .map(|_| ()),
        Ok(())
    );
    assert_eq!(
        std::fs::read(d.layers().join("grandchild/own")).unwrap(),
        b"child"
    );

    assert_eq!(mounts(&mut c, "nothing").await, Err(Code::NotFound));
    assert_eq!(
        stat(&mut c, "nothing").await.map(|_| ()),
        Err(Code::NotFound)
    );
    assert_eq!(usage(&mut c, "nothing").await, Err(Code::NotFound));
    assert_eq!(
        update(&mut c, "nothing", HashMap::new(), &[])
            .await
            .map(|_| ()),
        Err(Code::NotFound)
    );
    c.cleanup(CleanupRequest {
        snapshotter: "lcfs".into(),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn remove_refuses_a_parent_and_takes_the_layer_away() {
    require!();
    let d = Daemon::new();
    let mut c = d.client().await;
    prepare(&mut c, "p-active", "").await.unwrap();
    commit(&mut c, "p", "p-active", HashMap::new())
        .await
        .unwrap();
    prepare(&mut c, "child", "p").await.unwrap();
    view(&mut c, "look", "p").await.unwrap();

    assert_eq!(remove(&mut c, "p").await, Err(Code::FailedPrecondition));
    assert_eq!(stat(&mut c, "p").await.unwrap().kind, COMMITTED);
    remove(&mut c, "child").await.unwrap();
    assert_eq!(remove(&mut c, "p").await, Err(Code::FailedPrecondition));
    remove(&mut c, "look").await.unwrap();
    assert!(!d.layers().join("look").exists());
    remove(&mut c, "p").await.unwrap();
    assert_eq!(remove(&mut c, "p").await, Err(Code::NotFound));
    assert_eq!(list(&mut c, &[]).await.unwrap(), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(d.layers()).unwrap().count(), 0);
    // The key is free again.
    prepare(&mut c, "p", "").await.unwrap();
}

#[tokio::test]
async fn bad_keys_and_labels_are_invalid_arguments_and_change_nothing() {
    require!();
    let d = Daemon::new();
    let mut c = d.client().await;
    prepare(&mut c, "base-a", "").await.unwrap();
    commit(&mut c, "base", "base-a", HashMap::new())
        .await
        .unwrap();

    let too_long = "k".repeat(256);
    let slashes = "/".repeat(86); // 258 bytes once escaped
    for key in ["", ".", "..", "a\0b", too_long.as_str(), slashes.as_str()] {
        assert_eq!(
            prepare(&mut c, key, "").await,
            Err(Code::InvalidArgument),
            "{key:?}"
        );
        assert_eq!(
            view(&mut c, key, "base").await,
            Err(Code::InvalidArgument),
            "{key:?}"
        );
        assert_eq!(
            stat(&mut c, key).await.map(|_| ()),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            remove(&mut c, key).await,
            Err(Code::InvalidArgument),
            "{key:?}"
        );
        assert_eq!(
            commit(&mut c, key, "base", HashMap::new()).await,
            Err(Code::InvalidArgument),
            "{key:?}"
        );
    }
    assert_eq!(
        prepare(&mut c, "ok", "..").await,
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        prepare(&mut c, "ok", &too_long).await,
        Err(Code::InvalidArgument)
    );

    // containerd allows 4096-byte labels; an item holds 1024 bytes of value and 238 of key.
    let big_value = labels(&[("k", &"v".repeat(1025))]);
    let big_key = labels(&[(&"k".repeat(239), "v")]);
    for l in [big_value.clone(), big_key.clone()] {
        assert_eq!(
            prepare_labeled(&mut c, "ok", "", l.clone()).await,
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            update(&mut c, "base", l.clone(), &[]).await.map(|_| ()),
            Err(Code::InvalidArgument)
        );
    }
    let fits = labels(&[(&"k".repeat(238), &"v".repeat(1024))]);
    prepare_labeled(&mut c, "fits", "", fits.clone())
        .await
        .unwrap();
    assert_eq!(stat(&mut c, "fits").await.unwrap().labels, fits);
    assert_eq!(
        commit(&mut c, "ok", "fits", big_value).await,
        Err(Code::InvalidArgument)
    );
    assert_eq!(stat(&mut c, "fits").await.unwrap().kind, ACTIVE);

    assert_eq!(list(&mut c, &[]).await.unwrap(), names(&["base", "fits"]));
    assert_eq!(stat(&mut c, "base").await.unwrap().labels, HashMap::new());

    // Keys with `/` and `%` round-trip; the layer names escape them.
    let odd = "ns/100%/a b/ü";
    prepare(&mut c, odd, "base").await.unwrap();
    assert!(d.layers().join("ns%2F100%25%2Fa b%2Fü").is_dir());
    assert_eq!(stat(&mut c, odd).await.unwrap().name, odd);
    assert!(list(&mut c, &[]).await.unwrap().contains(&odd.to_string()));
    let exactly = "/".repeat(85); // 255 bytes escaped
    prepare(&mut c, &exactly, "").await.unwrap();
    assert_eq!(stat(&mut c, &exactly).await.unwrap().name, exactly);
}

#[tokio::test]
async fn labels_follow_prepare_commit_and_update_field_paths() {
    require!();
    let d = Daemon::new();
    let mut c = d.client().await;
    let before = SystemTime::now();
    prepare_labeled(&mut c, "a", "", labels(&[("x", "1"), ("y", "2")]))
        .await
        .unwrap();
    let info = stat(&mut c, "a").await.unwrap();
    assert_eq!(info.labels, labels(&[("x", "1"), ("y", "2")]));
    let created = SystemTime::try_from(info.created_at.clone().unwrap()).unwrap();
    assert!(
        created >= before && created <= SystemTime::now(),
        "{created:?}"
    );
    assert_eq!(info.created_at, info.updated_at);

    // No field paths: the labels are replaced (empty values dropped).
    let i = update(&mut c, "a", labels(&[("z", "3"), ("e", "")]), &[])
        .await
        .unwrap();
    assert_eq!(i.labels, labels(&[("z", "3")]));
    assert_eq!(i.created_at, info.created_at);
    assert!(
        SystemTime::try_from(i.updated_at.clone().unwrap()).unwrap() >= created,
        "updated moves forward"
    );
    assert_eq!(i.kind, ACTIVE);
    // `labels.K`: one label set, or removed when absent or empty.
    let i = update(
        &mut c,
        "a",
        labels(&[("n", "4"), ("z", "ignored")]),
        &["labels.n"],
    )
    .await
    .unwrap();
    assert_eq!(i.labels, labels(&[("z", "3"), ("n", "4")]));
    let i = update(&mut c, "a", HashMap::new(), &["labels.z"])
        .await
        .unwrap();
    assert_eq!(i.labels, labels(&[("n", "4")]));
    let i = update(&mut c, "a", labels(&[("n", "")]), &["labels.n"])
        .await
        .unwrap();
    assert_eq!(i.labels, HashMap::new());
    // `labels`: all of them.
    let i = update(&mut c, "a", labels(&[("p", "5"), ("q", "6")]), &["labels"])
        .await
        .unwrap();
    assert_eq!(i.labels, labels(&[("p", "5"), ("q", "6")]));
    assert_eq!(stat(&mut c, "a").await.unwrap().labels, i.labels);
    // Nothing but labels can change.
    for path in ["parent", "kind", "name", "created_at"] {
        assert_eq!(
            update(&mut c, "a", HashMap::new(), &["labels.p", path])
                .await
                .map(|_| ()),
            Err(Code::InvalidArgument),
            "{path}"
        );
    }
    assert_eq!(
        stat(&mut c, "a").await.unwrap().labels,
        i.labels,
        "a refused update changed"
    );

    // A commit's labels are the ones it gives; the snapshot is new, so are its times.
    commit(&mut c, "b", "a", labels(&[("containerd.io/gc.root", "t")]))
        .await
        .unwrap();
    let b = stat(&mut c, "b").await.unwrap();
    assert_eq!(b.labels, labels(&[("containerd.io/gc.root", "t")]));
    assert!(b.created_at.unwrap().seconds >= info.created_at.unwrap().seconds);
    // A committed snapshot's labels may change.
    let i = update(&mut c, "b", labels(&[("k", "v")]), &["labels.k"])
        .await
        .unwrap();
    assert_eq!(i.labels.len(), 2);
    assert_eq!(i.kind, COMMITTED);
}

#[tokio::test]
async fn list_takes_containerd_filters() {
    require!();
    let d = Daemon::new();
    let mut c = d.client().await;
    prepare_labeled(&mut c, "base-a", "", labels(&[("role", "base")]))
        .await
        .unwrap();
    commit(
        &mut c,
        "ns/base",
        "base-a",
        labels(&[("containerd.io/gc.root", "1"), ("t", "b")]),
    )
    .await
    .unwrap();
    prepare_labeled(&mut c, "ns/c1", "ns/base", labels(&[("t", "c")]))
        .await
        .unwrap();
    view(&mut c, "ns/v1", "ns/base").await.unwrap();
    prepare(&mut c, "other", "").await.unwrap();
    // Layers the snapshotter did not make: one lists as active, one no key maps to does not.
    d.layer(&["create", "plain"]);
    d.layer(&["create", "odd%zz"]);

    let all = names(&["ns/base", "ns/c1", "ns/v1", "other", "plain"]);
    assert_eq!(list(&mut c, &[]).await.unwrap(), all);
    assert_eq!(list(&mut c, &[""]).await.unwrap(), all);
    assert_eq!(
        list(&mut c, &["kind==committed"]).await.unwrap(),
        names(&["ns/base"])
    );
    assert_eq!(
        list(&mut c, &["kind==view"]).await.unwrap(),
        names(&["ns/v1"])
    );
    assert_eq!(
        list(&mut c, &["kind==active"]).await.unwrap(),
        names(&["ns/c1", "other", "plain"])
    );
    assert_eq!(
        list(&mut c, &["name==ns/c1"]).await.unwrap(),
        names(&["ns/c1"])
    );
    assert_eq!(
        list(&mut c, &[r#"name=="ns/c1""#]).await.unwrap(),
        names(&["ns/c1"])
    );
    assert_eq!(
        list(&mut c, &["parent==ns/base"]).await.unwrap(),
        names(&["ns/c1", "ns/v1"])
    );
    assert_eq!(
        list(&mut c, &[r#"labels."containerd.io/gc.root"==1"#])
            .await
            .unwrap(),
        names(&["ns/base"])
    );
    assert_eq!(
        list(&mut c, &["labels.t"]).await.unwrap(),
        names(&["ns/base", "ns/c1"])
    );
    assert_eq!(
        list(&mut c, &["labels.role"]).await.unwrap(),
        names(&[]),
        "commit dropped it"
    );
    assert_eq!(
        list(&mut c, &["labels.t,kind==active"]).await.unwrap(),
        names(&["ns/c1"])
    );
    assert_eq!(
        list(&mut c, &["kind==view", "name==other"]).await.unwrap(),
        names(&["ns/v1", "other"])
    );
    assert_eq!(
        list(&mut c, &["kind==view||name==other"]).await.unwrap(),
        names(&["ns/v1", "other"])
    );
    assert_eq!(
        list(&mut c, &["kind!=active"]).await.unwrap(),
        names(&["ns/base", "ns/v1"])
    );
    assert_eq!(
        list(&mut c, &["name~=^ns/"]).await.unwrap(),
        names(&["ns/base", "ns/c1", "ns/v1"])
    );
    for bad in ["kind=", "kind==active,", "labels.\"open", "name~=("] {
        assert_eq!(
            list(&mut c, &[bad]).await,
            Err(Code::InvalidArgument),
            "{bad}"
        );
    }

    let infos = list_infos(&mut c, &["name==plain"]).await.unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!((infos[0].kind, infos[0].labels.len()), (ACTIVE, 0));
    d.layer(&["commit", "plain"]);
    let infos = list_infos(&mut c, &["name==plain"]).await.unwrap();
    assert_eq!(infos[0].kind, COMMITTED);
    assert_eq!(stat(&mut c, "plain").await.unwrap().kind, COMMITTED);
    prepare(&mut c, "on-plain", "plain").await.unwrap();
}

#[tokio::test]
async fn usage_counts_what_a_snapshot_wrote_not_what_it_inherited() {
    require!();
    let d = Daemon::new();
    let mut c = d.client().await;
    prepare(&mut c, "base-a", "").await.unwrap();
    let dir = d.layers().join("base-a");
    std::fs::create_dir(dir.join("d")).unwrap();
    for i in 0..3 {
        std::fs::write(dir.join(format!("d/f{i}")), vec![7u8; 1 << 20]).unwrap();
    }
    let (size, inodes) = usage(&mut c, "base-a").await.unwrap();
    assert!(size >= 3 << 20, "{size}");
    assert_eq!(inodes, 5, "root, d, three files");
    commit(&mut c, "base", "base-a", HashMap::new())
        .await
        .unwrap();
    let (size, _) = usage(&mut c, "base").await.unwrap();
    assert!(size >= 3 << 20, "{size}");

    prepare(&mut c, "child", "base").await.unwrap();
    assert_eq!(usage(&mut c, "child").await.unwrap(), (0, 0));
    std::fs::write(d.layers().join("child/new"), vec![1u8; 100_000]).unwrap();
    let (size, inodes) = usage(&mut c, "child").await.unwrap();
    assert!((100_000..3 << 20).contains(&size), "{size}");
    assert_eq!(inodes, 1);
}

#[tokio::test]
async fn snapshots_survive_an_unmount_and_a_remount() {
    require!();
    let mut d = Daemon::new();
    let mut c = d.client().await;
    prepare_labeled(&mut c, "ns/1/base-a", "", labels(&[("l", "active")]))
        .await
        .unwrap();
    std::fs::write(d.layers().join("ns%2F1%2Fbase-a/f"), b"data").unwrap();
    commit(
        &mut c,
        "ns/2/base",
        "ns/1/base-a",
        labels(&[("gc", "root")]),
    )
    .await
    .unwrap();
    prepare_labeled(&mut c, "ns/3/c", "ns/2/base", labels(&[("l", "c")]))
        .await
        .unwrap();
    view(&mut c, "ns/4/v", "ns/2/base").await.unwrap();
    update(&mut c, "ns/3/c", labels(&[("u", "1")]), &["labels.u"])
        .await
        .unwrap();
    let before = list_infos(&mut c, &[]).await.unwrap();
    assert_eq!(before.len(), 3);
    drop(c);
    d.umount();
    d.mount();

    let mut c = d.client().await;
    let mut after = list_infos(&mut c, &[]).await.unwrap();
    let mut before = before;
    before.sort_by(|a, b| a.name.cmp(&b.name));
    after.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(after, before, "keys, kinds, parents, labels and times");
    let c_info = stat(&mut c, "ns/3/c").await.unwrap();
    assert_eq!(c_info.labels, labels(&[("l", "c"), ("u", "1")]));
    assert_eq!(stat(&mut c, "ns/4/v").await.unwrap().kind, VIEW);
    assert_eq!(
        std::fs::read(d.layers().join("ns%2F3%2Fc/f")).unwrap(),
        b"data"
    );
    // And the rules still hold.
    assert_eq!(
        remove(&mut c, "ns/2/base").await,
        Err(Code::FailedPrecondition)
    );
    commit(&mut c, "ns/5/c", "ns/3/c", HashMap::new())
        .await
        .unwrap();
    assert_eq!(stat(&mut c, "ns/5/c").await.unwrap().parent, "ns/2/base");
}

#[tokio::test]
async fn garbage_on_the_socket_is_refused_and_the_daemon_keeps_serving() {
    require!();
    let d = Daemon::new();
    let mut c = d.client().await;
    prepare(&mut c, "before", "").await.unwrap();
    let socket = d.socket.clone();
    tokio::task::spawn_blocking(move || {
        for garbage in [
            &b"\x00\x01\x02garbage\xff\xfe"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00\xff\xff",
            &[0xffu8; 70_000][..],
        ] {
            let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(garbage);
            // The server answers with an error or closes; either way the read ends.
            let mut reply = Vec::new();
            let _ = s.read_to_end(&mut reply);
        }
    })
    .await
    .unwrap();
    // A well-formed HTTP/2 request whose body is not a protobuf message.
    let garbled = raw_call(
        &d.socket,
        "/containerd.services.snapshots.v1.Snapshots/Prepare",
    )
    .await;
    assert!(
        matches!(
            garbled,
            Code::Internal | Code::InvalidArgument | Code::Unknown
        ),
        "{garbled:?}"
    );
    prepare(&mut c, "after", "before-is-active")
        .await
        .unwrap_err();
    prepare(&mut c, "after", "").await.unwrap();
    let mut fresh = d.client().await;
    assert_eq!(
        list(&mut fresh, &[]).await.unwrap(),
        names(&["after", "before"])
    );
}

/// Sends bytes that are no protobuf message as a gRPC request to `path`; returns the code.
async fn raw_call(socket: &Path, path: &str) -> Code {
    use containerd_snapshots::tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use containerd_snapshots::tonic::Status;

    #[derive(Default)]
    struct Raw;
    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            use bytes::BufMut;
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            use bytes::Buf;
            let mut bytes = vec![0; src.remaining()];
            src.copy_to_slice(&mut bytes);
            Ok(Some(bytes))
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    let channel = common::grpc_channel(socket).await;
    let mut grpc = containerd_snapshots::tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path: containerd_snapshots::tonic::codegen::http::uri::PathAndQuery = path.parse().unwrap();
    let reply: Result<_, Status> = grpc
        .unary(
            Request::new(vec![0xffu8, 0xff, 0xff, 0x0f, 0x12]),
            path,
            Raw,
        )
        .await;
    reply
        .map(|_: containerd_snapshots::tonic::Response<Vec<u8>>| ())
        .expect_err("garbage decoded")
        .code()
}

#[tokio::test]
async fn concurrent_requests_for_one_key_create_it_once() {
    require!();
    let d = Daemon::new();
    let c = d.client().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            prepare(&mut c, "same", "").await.map(|_| ())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(Code::AlreadyExists))));
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    require!();
    let mut d = Daemon::new();
    d.umount();
    // The daemon is gone; its socket file may remain. Make sure one does.
    let _ = std::fs::remove_file(&d.socket);
    drop(std::os::unix::net::UnixListener::bind(&d.socket).unwrap());
    assert!(d.socket.exists());
    d.mount();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = d.client().await;
        prepare(&mut c, "k", "").await.unwrap();
    });

    // A second image cannot take a socket that is served.
    let other = tempfile::tempdir().unwrap();
    let image = other.path().join("img");
    let mnt = other.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    common::run(&["mkfs", "--size", "256M", image.to_str().unwrap()]);
    let out = common::run_raw(&[
        "mount",
        image.to_str().unwrap(),
        mnt.to_str().unwrap(),
        "--snapshotter",
        d.socket.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second daemon took a live socket");
    assert!(text.contains("served by another process"), "{text}");
    assert!(!std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .contains(mnt.to_str().unwrap()));
}
