//! Docker's graph-driver plugin API served by the daemon (`lcfs mount --graphdriver SOCK`,
//! DESIGN.md §8), driven over its unix socket the way dockerd drives it (RUNTIMES.md, "What the
//! graph-driver plugin sees"), by a small raw HTTP/1.1 client written here: every call and its
//! reply; the init-layer rule (a writable layer is committed when a layer is created on it);
//! ApplyDiff of tars with whiteouts and opaque directories, then Diff, Changes and DiffSize
//! against what the mount shows, and the Diff applied again on a sibling giving the same tree;
//! chunked request bodies; malformed requests, each answered with an error while the server
//! keeps serving; hostile tars changing nothing outside their layer; everything the same after
//! a remount, and fsck clean.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A reply as the client read it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply {} is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `Err` of an error reply (panics unless it is one).
    fn err(&self) -> String {
        assert_ne!(self.status, 200, "expected an error, got {:?}", self.json());
        let err = self.json()["Err"].as_str().unwrap_or_default().to_string();
        assert!(
            !err.is_empty(),
            "an error reply without Err: {:?}",
            self.json()
        );
        err
    }
}

/// Splits `bytes` at the first CRLF CRLF: the head lines and the rest.
fn split_head(bytes: &[u8]) -> (Vec<String>, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]);
    (
        head.split("\r\n").map(str::to_string).collect(),
        &bytes[end + 4..],
    )
}

/// Decodes a chunked body; returns it and what follows it.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(&String::from_utf8_lossy(&rest[..eol]), 16)
            .expect("hex chunk size");
        rest = &rest[eol + 2..];
        if size == 0 {
            assert_eq!(&rest[..2], b"\r\n", "no trailers expected");
            return (body, &rest[2..]);
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

/// Every reply in `bytes`, in order (interim 100 Continue replies skipped).
fn parse_responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (lines, rest) = split_head(bytes);
        let status: u16 = lines[0]
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {:?}", lines[0]));
        let headers: Vec<(String, String)> = lines[1..]
            .iter()
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            bytes = rest;
            continue;
        }
        if response.header("transfer-encoding") == Some("chunked") {
            let (body, after) = dechunk(rest);
            response.body = body;
            bytes = after;
        } else {
            let length: usize = response
                .header("content-length")
                .expect("a reply has a length or is chunked")
                .parse()
                .unwrap();
            response.body = rest[..length].to_vec();
            bytes = &rest[length..];
        }
        out.push(response);
    }
    out
}

/// Sends `raw` on a new connection, ends the sending half, and reads every reply.
fn exchange(socket: &Path, raw: &[u8]) -> Vec<Response> {
    let mut stream = UnixStream::connect(socket).expect("connect to the plugin socket");
    // A server that refuses early may close before all is sent: its reply is what counts.
    let _ = stream.write_all(raw);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read the replies");
    parse_responses(&bytes)
}

/// A POST of `body` with a Content-Length.
fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// The header of a chunked body.
const CHUNKED: &str = "Transfer-Encoding: chunked";
/// ApplyDiff into layer `l1`, a base layer.
const APPLY_L1: &str = "/GraphDriver.ApplyDiff?id=l1&parent=";

/// A POST with the given header lines and raw body bytes, framed or not as they say.
fn raw_post(path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("POST {path} HTTP/1.1\r\n").into_bytes();
    for header in headers {
        raw.extend_from_slice(format!("{header}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw
}

/// A POST of `body` in chunks of `chunk` bytes (as dockerd sends ApplyDiff).
fn post_chunked(path: &str, body: &[u8], chunk: usize) -> Vec<u8> {
    let mut raw =
        format!("POST {path} HTTP/1.1\r\nHost: plugin\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for part in body.chunks(chunk) {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

/// An image mounted by a daemon serving the graph driver on a socket of its own; unmounted on
/// drop.
struct Plugin {
    dir: tempfile::TempDir,
    image: PathBuf,
    mountpoint: PathBuf,
    socket: PathBuf,
    mounted: bool,
}

impl Plugin {
    fn new() -> Plugin {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("lcfs.img");
        let mountpoint = dir.path().join("mnt");
        fs::create_dir(&mountpoint).unwrap();
        common::run(&["mkfs", "--size", "1G", image.to_str().unwrap()]);
        // The socket's directory does not exist yet: the daemon creates it.
        let socket = dir.path().join("run/docker/plugins/lcfs.sock");
        let mut plugin = Plugin {
            dir,
            image,
            mountpoint: mountpoint.canonicalize().unwrap(),
            socket,
            mounted: false,
        };
        plugin.mount();
        plugin
    }

    fn mount(&mut self) {
        common::run(&[
            "mount",
            self.image.to_str().unwrap(),
            self.mountpoint.to_str().unwrap(),
            "--graphdriver",
            self.socket.to_str().unwrap(),
        ]);
        self.mounted = true;
        // `lcfs mount` returns once the mount answers; daemon.rs starts the runtime services
        // after that, so the plugin socket may take a moment more.
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "the daemon does not serve {} within 20 s",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn umount(&mut self) {
        common::run(&["umount", self.mountpoint.to_str().unwrap()]);
        self.mounted = false;
    }

    fn fsck_clean(&self) {
        let out = common::run(&["fsck", self.image.to_str().unwrap()]);
        assert!(out.contains("clean"), "fsck: {out}");
    }

    fn layer_dir(&self, id: &str) -> PathBuf {
        self.mountpoint.join("layers").join(id)
    }

    /// One request on its own connection; its one reply.
    fn send(&self, raw: &[u8]) -> Response {
        let mut replies = exchange(&self.socket, raw);
        assert_eq!(replies.len(), 1, "one request, one reply: {replies:?}");
        replies.remove(0)
    }

    /// `call` with JSON `args`: `Plugin.Activate`, or a `GraphDriver.` call named without
    /// its prefix (`Create`).
    fn call(&self, call: &str, args: Value) -> Response {
        let path = match call.contains('.') {
            true => format!("/{call}"),
            false => format!("/GraphDriver.{call}"),
        };
        self.send(&post(&path, args.to_string().as_bytes()))
    }

    /// A call that must succeed; its JSON reply.
    fn ok(&self, call: &str, args: Value) -> Value {
        let shown = args.to_string();
        let reply = self.call(call, args);
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, 200, "{call} {shown}: {text}");
        let value = reply.json();
        assert!(value.get("Err").is_none(), "{call} {shown}: {value}");
        value
    }

    /// A call that must fail; its `Err`.
    fn fails(&self, call: &str, args: Value) -> String {
        self.call(call, args).err()
    }

    fn apply(&self, id: &str, parent: &str, tar: &[u8]) -> Response {
        self.send(&post_chunked(
            &format!("/GraphDriver.ApplyDiff?id={id}&parent={parent}"),
            tar,
            7_000,
        ))
    }

    /// Create (or CreateReadWrite) and ApplyDiff: an image layer as dockerd makes one.
    fn image_layer(&self, id: &str, parent: &str, tar: &[u8]) -> u64 {
        self.ok("Create", on(id, parent));
        let reply = self.apply(id, parent, tar);
        assert_eq!(reply.status, 200, "{:?}", reply.json());
        reply.json()["Size"].as_u64().expect("Size")
    }

    fn state(&self, id: &str) -> String {
        let meta = self.ok("GetMetadata", self::id(id));
        meta["Metadata"]["State"].as_str().unwrap().to_string()
    }

    fn changes(&self, id: &str, parent: &str) -> Vec<(String, u64)> {
        let reply = self.ok("Changes", on(id, parent));
        reply["Changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["Path"].as_str().unwrap().to_string(),
                    c["Kind"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn diff(&self, id: &str, parent: &str) -> Vec<u8> {
        let reply = self.call("Diff", on(id, parent));
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, 200, "{text}");
        assert_eq!(reply.header("content-type"), Some("application/x-tar"));
        reply.body
    }

    fn diff_size(&self, id: &str, parent: &str) -> u64 {
        let reply = self.ok("DiffSize", on(id, parent));
        reply["Size"].as_u64().unwrap()
    }

    /// The server still answers.
    fn still_serving(&self) {
        let value = self.ok("Plugin.Activate", json!(null));
        assert_eq!(value, json!({ "Implements": ["GraphDriver"] }));
    }
}

/// The arguments naming layer `id`.
fn id(id: &str) -> Value {
    json!({ "ID": id })
}

/// The arguments naming layer `id` and its parent (empty: none).
fn on(id: &str, parent: &str) -> Value {
    json!({ "ID": id, "Parent": parent })
}

/// Expected changes, as Changes replies them.
fn changes(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(p, k)| (p.to_string(), *k)).collect()
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if self.mounted {
            let path = self.mountpoint.to_str().unwrap_or_default().to_string();
            let out = common::run_raw(&["umount", &path]);
            if !out.status.success() {
                let _ = common::run_raw(&["umount", "--lazy", &path]);
            }
        }
    }
}

/// A tar of `dir`'s content, as GNU tar writes it (numeric owners).
fn tar_of(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The entry names of a tar, as GNU tar lists them.
fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-tf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run tar");
    child.stdin.take().unwrap().write_all(tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tar -t refused the diff");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

/// A POSIX ustar header block for `name` (type `kind`, `size` bytes of data), checksummed.
fn ustar_header(name: &str, kind: u8, size: usize, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A tar of the given entries `(name, type, data, link target)`, hand-built.
fn raw_tar(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data, link) in entries {
        out.extend_from_slice(&ustar_header(name, *kind, data.len(), link));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A staging directory for a tar: `files` are `(path, content)`; a content starting with `->`
/// makes a symlink.
fn stage(base: &Path, files: &[(&str, &str)]) -> PathBuf {
    for (path, content) in files {
        let path = base.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match content.strip_prefix("->") {
            Some(target) => symlink(target, &path).unwrap(),
            None => fs::write(&path, content).unwrap(),
        }
    }
    base.to_path_buf()
}

const MODIFY: u64 = 0;
const ADD: u64 = 1;
const DELETE: u64 = 2;

#[test]
fn dockerd_s_start_calls_answer_as_it_expects() {
    require!();
    let p = Plugin::new();
    assert_eq!(
        std::fs::metadata(&p.socket).unwrap().mode() & 0o777,
        0o600,
        "the socket is root's only"
    );
    // Activate and Init, as dockerd starts the driver (Activate has an empty body).
    let activate =
        p.send(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(activate.json(), json!({ "Implements": ["GraphDriver"] }));
    let init =
        json!({ "Home": "/var/lib/docker/lcfs", "Opts": null, "UIDMaps": null, "GIDMaps": null });
    assert_eq!(p.ok("Init", init), json!({}));
    let err = p.fails("Init", json!({ "Home": "/h", "Opts": ["size=1G"] }));
    assert!(err.contains("no storage options"), "{err}");
    let maps = json!([{ "container_id": 0, "host_id": 100000, "size": 65536 }]);
    let err = p.fails(
        "Init",
        json!({ "Home": "/h", "UIDMaps": maps, "GIDMaps": maps }),
    );
    assert!(err.contains("--userns-remap"), "{err}");
    assert_eq!(
        p.ok("Capabilities", json!({})),
        json!({ "Capabilities": { "ReproducesExactDiffs": false } })
    );
    let status = p.ok("Status", json!({}));
    let pairs = status["Status"].as_array().unwrap();
    assert!(
        pairs.contains(&json!(["Backing Filesystem", "lcfs"])),
        "{status}"
    );
    assert!(pairs.contains(&json!(["Layers", "0"])), "{status}");
}

#[test]
fn a_container_s_layers_go_through_every_call_as_dockerd_makes_them() {
    require!("tar");
    let p = Plugin::new();
    // An image layer: Create, then ApplyDiff.
    let work = p.dir.path().join("stage-img");
    stage(
        &work,
        &[
            ("etc/hostname", "box\n"),
            ("bin/busybox", "ELF..."),
            ("bin/sh", "->busybox"),
        ],
    );
    let size = p.image_layer("img", "", &tar_of(&work));
    assert_eq!(size, 4 + 6, "the regular files' bytes");
    assert_eq!(p.ok("Exists", id("img")), json!({ "Exists": true }));
    assert_eq!(p.ok("Exists", id("nope")), json!({ "Exists": false }));
    let dir = p.ok("Get", json!({ "ID": "img", "MountLabel": "" }));
    assert_eq!(dir, json!({ "Dir": p.layer_dir("img") }));
    assert_eq!(
        fs::read_to_string(p.layer_dir("img").join("etc/hostname")).unwrap(),
        "box\n"
    );
    assert_eq!(p.ok("Put", id("img")), json!({}));
    let meta = p.ok("GetMetadata", id("img"));
    assert_eq!(meta["Metadata"]["Dir"], json!(p.layer_dir("img")));
    assert_eq!(p.state("img"), "writable");
    let err = p.fails("Get", id("nope"));
    assert!(err.contains("no layer called \"nope\""), "{err}");
    let err = p.fails("Put", id("nope"));
    assert!(err.contains("no layer called \"nope\""), "{err}");

    // docker create: <id>-init on the image, filled, then the container layer on it. Each
    // parent is committed when a layer is created on it.
    p.ok("CreateReadWrite", on("c1-init", "img"));
    assert_eq!(p.state("img"), "committed");
    assert_eq!(p.state("c1-init"), "writable");
    let init_dir = p.layer_dir("c1-init");
    fs::write(init_dir.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::create_dir(init_dir.join("dev")).unwrap();
    p.ok("CreateReadWrite", on("c1", "c1-init"));
    assert_eq!(p.state("c1-init"), "committed");
    let meta = p.ok("GetMetadata", id("c1"));
    assert_eq!(meta["Metadata"]["Parent"], json!("c1-init"));
    let err = p.apply("img", "", &tar_of(&work)).err();
    assert!(err.contains("committed"), "{err}");
    let err = p.fails("Create", on("c1", "c1"));
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(
        p.state("c1"),
        "writable",
        "a refused create commits no parent"
    );
    let err = p.fails("Create", on("x", "nope"));
    assert!(err.contains("no parent layer called \"nope\""), "{err}");
    let err = p.fails(
        "CreateReadWrite",
        json!({ "ID": "x", "StorageOpt": { "size": "1G" } }),
    );
    assert!(err.contains("storage options"), "{err}");

    // The container writes; docker diff and docker commit read it.
    let c1 = p.layer_dir("c1");
    fs::create_dir(c1.join("data")).unwrap();
    fs::write(c1.join("data/out"), "hello world").unwrap();
    fs::write(c1.join("etc/hostname"), "c1\n").unwrap();
    fs::remove_file(c1.join("bin/sh")).unwrap();
    let listed = p.changes("c1", "c1-init");
    let expected = changes(&[
        ("/bin", MODIFY),
        ("/bin/sh", DELETE),
        ("/data", ADD),
        ("/data/out", ADD),
        ("/etc", MODIFY),
        ("/etc/hostname", MODIFY),
    ]);
    assert_eq!(listed, expected);
    assert_eq!(p.diff_size("c1", "c1-init"), 11 + 3);
    let names = tar_names(&p.diff("c1", "c1-init"));
    assert_eq!(
        names,
        [
            "bin",
            "bin/.wh.sh",
            "data",
            "data/out",
            "etc",
            "etc/hostname"
        ]
    );

    // docker commit: the container's diff becomes a new image layer on the image.
    let tar = p.diff("c1", "c1-init");
    p.image_layer("img2", "img", &tar);
    assert_eq!(
        fs::read_to_string(p.layer_dir("img2").join("data/out")).unwrap(),
        "hello world"
    );
    assert!(!p.layer_dir("img2").join("bin/sh").exists());

    // docker rm: the container layer, then its init layer; a parent goes last.
    let err = p.fails("Remove", id("c1-init"));
    assert!(err.contains("child"), "{err}");
    assert_eq!(p.ok("Remove", id("c1")), json!({}));
    assert!(!c1.exists(), "the kernel was told the layer went");
    assert_eq!(p.ok("Remove", id("c1-init")), json!({}));
    assert_eq!(p.ok("Remove", id("c1")), json!({}), "idempotent");
    assert_eq!(p.ok("Exists", id("c1")), json!({ "Exists": false }));
    assert_eq!(p.ok("Cleanup", json!({})), json!({}));
    let status = p.ok("Status", json!({}));
    assert!(
        status["Status"]
            .as_array()
            .unwrap()
            .contains(&json!(["Layers", "2"])),
        "{status}"
    );
}

#[test]
fn apply_diff_with_whiteouts_then_diff_changes_and_diff_size() {
    require!("tar");
    let mut p = Plugin::new();
    let base = stage(
        &p.dir.path().join("stage-base"),
        &[
            ("a/keep", "old"),
            ("a/gone", "bye"),
            ("d/old1", "1"),
            ("d/sub/old2", "2"),
            ("f", "file"),
            ("l", "->f"),
        ],
    );
    fs::hard_link(base.join("f"), base.join("h")).unwrap();
    p.image_layer("base", "", &tar_of(&base));
    assert_eq!(
        p.diff_size("base", ""),
        3 + 3 + 1 + 1 + 4 + 1,
        "a hard link counts once"
    );

    // The next layer: a whiteout, an opaque directory, a replaced file, new files.
    let upper = stage(
        &p.dir.path().join("stage-upper"),
        &[
            ("a/.wh.gone", ""),
            ("a/keep", "new content"),
            ("d/.wh..wh..opq", ""),
            ("d/new", "fresh"),
            ("n/file", "nnn"),
            (".wh.l", ""),
        ],
    );
    // With `Expect: 100-continue`, as curl sends large bodies.
    let mut raw = post_chunked(
        "/GraphDriver.ApplyDiff?id=child&parent=base",
        &tar_of(&upper),
        100,
    );
    let at = raw.windows(2).position(|w| w == b"\r\n").unwrap();
    raw.splice(at..at, b"\r\nExpect: 100-continue".iter().copied());
    p.ok("Create", on("child", "base"));
    // The kernel learns the inherited names first: the apply must make it forget them.
    let child = p.layer_dir("child");
    assert_eq!(fs::read_to_string(child.join("a/keep")).unwrap(), "old");
    assert!(child.join("a/gone").exists() && child.join("d/sub/old2").exists());
    let reply = p.send(&raw);
    assert_eq!(reply.json(), json!({ "Size": 11 + 5 + 3 }));
    assert!(!child.join("a/gone").exists());
    assert!(!child.join("l").exists());
    assert_eq!(
        fs::read_to_string(child.join("a/keep")).unwrap(),
        "new content"
    );
    let mut in_d: Vec<String> = fs::read_dir(child.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_d.sort();
    assert_eq!(
        in_d,
        ["new"],
        "the opaque directory hides what the parent had"
    );
    assert_eq!(
        fs::read_to_string(p.layer_dir("base").join("a/gone")).unwrap(),
        "bye"
    );

    let expected = changes(&[
        ("/a", MODIFY),
        ("/a/gone", DELETE),
        ("/a/keep", MODIFY),
        ("/d", MODIFY),
        ("/d/new", ADD),
        ("/d/old1", DELETE),
        ("/d/sub", DELETE),
        ("/l", DELETE),
        ("/n", ADD),
        ("/n/file", ADD),
    ]);
    assert_eq!(p.changes("child", "base"), expected);
    assert_eq!(p.diff_size("child", "base"), 11 + 5 + 3);
    let tar = p.diff("child", "base");
    let names = tar_names(&tar);
    for name in [
        "a/.wh.gone",
        "a/keep",
        "d/.wh.old1",
        "d/.wh.sub",
        "d/new",
        ".wh.l",
        "n/file",
    ] {
        assert!(names.contains(&name.to_string()), "{name} not in {names:?}");
    }

    // The diff applied on a sibling gives the same tree and the same changes.
    p.image_layer("sibling", "base", &tar);
    assert_eq!(
        common::tree_snapshot(&p.layer_dir("sibling"), false),
        common::tree_snapshot(&child, false)
    );
    assert_eq!(p.changes("sibling", "base"), expected);

    // Another parent than the layer's own: an error, not a wrong answer.
    for call in ["Diff", "Changes", "DiffSize"] {
        let err = p.fails(call, id("child"));
        assert!(
            err.contains("own parent") && err.contains("parent \"base\""),
            "{err}"
        );
        let err = p.fails(call, on("child", "sibling"));
        assert!(err.contains("own parent"), "{err}");
    }
    let err = p.apply("sibling", "child", &tar).err();
    assert!(err.contains("own parent"), "{err}");
    p.umount();
    p.fsck_clean();
}

#[test]
fn malformed_requests_get_an_error_each_and_the_server_keeps_serving() {
    require!();
    let p = Plugin::new();
    p.ok("Create", id("l1"));
    let huge_header = format!(
        "POST /Plugin.Activate HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let file_tar = raw_tar(&[("f", b'0', b"data", "")]);
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("bad JSON", post("/GraphDriver.Create", b"{\"ID\": "), 400, "malformed JSON"),
        ("JSON not an object", post("/GraphDriver.Get", b"[1, 2]"), 400, "malformed JSON"),
        ("bad JSON, no-argument call", post("/GraphDriver.Status", b"{"), 400, "malformed JSON"),
        ("unknown call", post("/GraphDriver.Frobnicate", b"{}"), 404, "unknown call"),
        ("unknown path", post("/", b"{}"), 404, "unknown call"),
        ("missing id", post("/GraphDriver.Create", b"{}"), 400, "needs a layer id"),
        ("empty id", post("/GraphDriver.Exists", b"{\"ID\":\"\"}"), 400, "needs a layer id"),
        ("dockerd's empty retry", post("/GraphDriver.Remove", b""), 400, "empty body"),
        ("truncated body",
            raw_post("/GraphDriver.Get", &["Content-Length: 100"], b"{\"ID\":\"l1\"}"),
            400, "ends after 11 of its 100 bytes"),
        ("truncated chunked body", raw_post("/GraphDriver.Get", &[CHUNKED], b"20\r\n{\"ID\""),
            400, "ends inside a chunk"),
        ("bad chunk size", raw_post("/GraphDriver.Get", &[CHUNKED], b"xyz\r\n"),
            400, "malformed chunk size"),
        ("garbage bytes", b"\x16\x03\x01\x02\x00\xfc\x03\r\n\r\n".to_vec(), 400, "malformed"),
        ("garbage without line end", b"\x00\xff\xfe garbage".to_vec(), 400, "truncated"),
        ("huge header", huge_header.into_bytes(), 431, "16384 bytes"),
        ("GET", b"GET /Plugin.Activate HTTP/1.1\r\n\r\n".to_vec(), 405, "POST only"),
        ("HTTP/2", b"POST /Plugin.Activate HTTP/2.0\r\n\r\n".to_vec(), 505, "version"),
        ("both framings", raw_post("/Plugin.Activate", &["Content-Length: 2", CHUNKED], b"{}"),
            400, "both Content-Length and Transfer-Encoding"),
        ("ApplyDiff without id", post("/GraphDriver.ApplyDiff", b""), 400, "needs a layer"),
        ("ApplyDiff, unknown layer",
            post_chunked("/GraphDriver.ApplyDiff?id=nope&parent=", &[0u8; 1024], 512),
            500, "no layer called \"nope\""),
        ("ApplyDiff, truncated tar", post_chunked(APPLY_L1, &file_tar[..600], 100),
            500, "ends early"),
        ("ApplyDiff, not a tar", post_chunked(APPLY_L1, &[b'x'; 2048], 100),
            500, "malformed header"),
        ("bad query escape", post("/GraphDriver.ApplyDiff?id=%zz", b""), 400, "percent escape"),
    ];
    for (what, raw, status, message) in &cases {
        let reply = p.send(raw);
        let err = reply.err();
        assert_eq!(reply.status, *status, "{what}: {err}");
        assert!(
            err.contains(message),
            "{what}: {err:?} does not say {message:?}"
        );
        p.still_serving();
    }
}

#[test]
fn requests_on_one_connection_are_answered_in_order() {
    require!();
    let p = Plugin::new();
    p.ok("Create", id("l1"));
    // Keep-alive: requests on one connection are answered in order; a malformed one is
    // answered and ends the connection.
    let mut raw = post("/GraphDriver.Exists", b"{\"ID\":\"l1\"}");
    raw.extend(post("/GraphDriver.Exists", b"{\"ID\":\"l2\"}"));
    raw.extend(post("/GraphDriver.Get", b"{oops"));
    raw.extend(post("/GraphDriver.Exists", b"{\"ID\":\"l1\"}"));
    // A body the call did not read is drained: the next request still parses.
    raw.extend(post_chunked(
        "/GraphDriver.ApplyDiff?id=nope",
        &[7u8; 100_000],
        4096,
    ));
    raw.extend(post("/GraphDriver.Exists", b"{\"ID\":\"l1\"}"));
    raw.extend_from_slice(b"garbage\r\n\r\n");
    raw.extend(post("/GraphDriver.Exists", b"{\"ID\":\"l1\"}"));
    let replies = exchange(&p.socket, &raw);
    let bodies: Vec<Value> = replies.iter().map(Response::json).collect();
    assert_eq!(bodies.len(), 7, "{bodies:?}");
    assert_eq!(bodies[0], json!({ "Exists": true }));
    assert_eq!(bodies[1], json!({ "Exists": false }));
    assert!(replies[2].err().contains("malformed JSON"));
    assert_eq!(bodies[3], json!({ "Exists": true }));
    assert!(replies[4].err().contains("no layer called \"nope\""));
    assert_eq!(bodies[5], json!({ "Exists": true }));
    assert!(replies[6].err().contains("malformed request line"));
    assert_eq!(replies[6].header("connection"), Some("close"));
    // `Connection: close` is honoured.
    let raw = b"POST /Plugin.Activate HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n\
                POST /Plugin.Activate HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(exchange(&p.socket, raw).len(), 1);
    // A connection that closes before any byte, and one left idle, harm nothing.
    drop(UnixStream::connect(&p.socket).unwrap());
    let _idle = UnixStream::connect(&p.socket).unwrap();
    p.still_serving();
    assert_eq!(p.ok("Exists", id("l1")), json!({ "Exists": true }));
}

#[test]
fn a_hostile_tar_is_refused_and_nothing_outside_its_layer_changes() {
    require!("tar");
    let mut p = Plugin::new();
    let base = stage(
        &p.dir.path().join("stage-base"),
        &[("etc/passwd", "root"), ("escape", "->/")],
    );
    p.image_layer("base", "", &tar_of(&base));
    p.ok("Create", on("target", "base"));
    p.ok("Create", on("sibling", "base"));
    let base_before = common::tree_snapshot(&p.layer_dir("base"), false);
    let marker = format!("lcfs-graphdriver-test-{}", std::process::id());
    let hostile: [(&str, Vec<u8>, &str); 4] = [
        (
            "../ above the root",
            raw_tar(&[
                ("fine", b'0', b"ok", ""),
                (&format!("../{marker}"), b'0', b"evil", ""),
            ]),
            "climbs above the layer root",
        ),
        (
            "a path through an inherited symlink",
            raw_tar(&[(&format!("escape/tmp/{marker}"), b'0', b"evil", "")]),
            "symlink",
        ),
        (
            "a path through a symlink of the stream",
            raw_tar(&[
                ("out", b'2', b"", "/"),
                (&format!("out/tmp/{marker}"), b'0', b"evil", ""),
            ]),
            "symlink",
        ),
        (
            "a hard link to a name above the root",
            raw_tar(&[(&marker, b'1', b"", "../../../../etc/passwd")]),
            "unsafe",
        ),
    ];
    for (what, tar, message) in &hostile {
        let err = p.apply("target", "base", tar).err();
        assert!(err.contains(message), "{what}: {err}");
        for outside in [
            Path::new("/tmp").join(&marker),
            p.mountpoint.join("layers").join(&marker),
            p.mountpoint.join(&marker),
            p.dir.path().join(&marker),
        ] {
            assert!(
                !outside.exists(),
                "{what}: {} was written",
                outside.display()
            );
        }
        assert_eq!(
            p.changes("sibling", "base"),
            vec![],
            "{what}: the sibling changed"
        );
        assert_eq!(
            common::tree_snapshot(&p.layer_dir("base"), false),
            base_before,
            "{what}: the parent changed"
        );
        p.still_serving();
    }
    // What came before the bad entry was applied; dockerd removes the layer.
    assert_eq!(
        fs::read_to_string(p.layer_dir("target").join("fine")).unwrap(),
        "ok"
    );
    p.ok("Remove", id("target"));
    p.umount();
    p.fsck_clean();
}

#[test]
fn layers_and_their_diffs_survive_a_remount() {
    require!("tar");
    let mut p = Plugin::new();
    let img = stage(
        &p.dir.path().join("stage"),
        &[("etc/os-release", "lcfs"), ("usr/bin/x", "x")],
    );
    p.image_layer("img", "", &tar_of(&img));
    p.ok("CreateReadWrite", on("c-init", "img"));
    fs::write(p.layer_dir("c-init").join("etc/hosts"), "hosts").unwrap();
    p.ok("CreateReadWrite", on("c", "c-init"));
    fs::write(p.layer_dir("c").join("etc/os-release"), "changed").unwrap();
    fs::remove_file(p.layer_dir("c").join("usr/bin/x")).unwrap();
    let listed = p.changes("c", "c-init");
    let diff = p.diff("c", "c-init");
    let size = p.diff_size("c", "c-init");
    let view = common::tree_snapshot(&p.layer_dir("c"), false);

    p.umount();
    p.fsck_clean();
    // A socket file nobody serves is stale: the next daemon replaces it.
    if !p.socket.exists() {
        drop(UnixListener::bind(&p.socket).unwrap());
    }
    p.mount();
    for (layer, state) in [
        ("img", "committed"),
        ("c-init", "committed"),
        ("c", "writable"),
    ] {
        assert_eq!(p.ok("Exists", id(layer)), json!({ "Exists": true }));
        assert_eq!(p.state(layer), state, "{layer}");
    }
    assert_eq!(p.changes("c", "c-init"), listed);
    assert_eq!(p.diff("c", "c-init"), diff, "the same diff, byte for byte");
    assert_eq!(p.diff_size("c", "c-init"), size);
    assert_eq!(common::tree_snapshot(&p.layer_dir("c"), false), view);
    let err = p.fails("Remove", id("img"));
    assert!(err.contains("child"), "{err}");
}

/// Starts a daemon serving `image` on `mountpoint` with the graph driver on `socket`, which
/// must refuse to start; returns what it said. `lcfs mount` may return before the daemon
/// failed (daemon.rs starts the runtime services after the mount answers), so the message is
/// on its stderr or in its log. Leaves nothing behind: the mount is gone, and the control
/// files (`/run/lcfs/KEY.{json,sock,log}`) its error path leaves are removed.
fn refused_daemon(image: &Path, mountpoint: &Path, socket: &Path) -> String {
    let out = common::run_raw(&[
        "mount",
        image.to_str().unwrap(),
        mountpoint.to_str().unwrap(),
        "--graphdriver",
        socket.to_str().unwrap(),
    ]);
    let mountpoint = mountpoint.canonicalize().unwrap();
    let mut said = String::from_utf8_lossy(&out.stderr).into_owned();
    for path in fs::read_dir("/run/lcfs")
        .unwrap()
        .flatten()
        .map(|e| e.path())
    {
        let info: Value = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if path.extension().is_none_or(|e| e != "json")
            || info["mountpoint"].as_str() != mountpoint.to_str()
        {
            continue;
        }
        // The daemon's last words are in its log once it is gone.
        let process = PathBuf::from(format!("/proc/{}", info["pid"]));
        let deadline = Instant::now() + Duration::from_secs(20);
        while process.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        said += &fs::read_to_string(path.with_extension("log")).unwrap_or_default();
        let _ = fs::remove_file(info["socket"].as_str().unwrap_or_default());
        let _ = fs::remove_file(path.with_extension("log"));
        let _ = fs::remove_file(&path);
    }
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&format!(" {} ", mountpoint.display())),
        "the refused daemon left its mount behind"
    );
    said
}

#[test]
fn a_socket_another_daemon_serves_is_never_taken() {
    require!();
    let p = Plugin::new();
    let image = p.dir.path().join("second.img");
    let mountpoint = p.dir.path().join("mnt2");
    fs::create_dir(&mountpoint).unwrap();
    common::run(&["mkfs", "--size", "256M", image.to_str().unwrap()]);
    let said = refused_daemon(&image, &mountpoint, &p.socket);
    assert!(said.contains("served by another process"), "{said}");
    p.still_serving();
    // A file that is not a socket is not removed either.
    let file = p.dir.path().join("not-a-socket");
    fs::write(&file, "keep").unwrap();
    let said = refused_daemon(&image, &mountpoint, &file);
    assert!(said.contains("not a socket"), "{said}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
}
