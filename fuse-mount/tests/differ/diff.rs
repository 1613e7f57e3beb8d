//! Diff, through a fake of containerd's Content and Leases services (`FakeContent`).

use super::*;

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
