//! `lcfs layer diff NAME` through a real mount: changes made with ordinary file operations are
//! listed as `docker diff` lists them (one `A`/`C`/`D` line per path, sorted), also after the
//! mount is unmounted and mounted again; an unknown layer is an error that says what to do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;

use common::Mounted;

#[test]
fn layer_diff_lists_the_changes_as_docker_diff_does() {
    require!();
    let mut m = Mounted::new("1G");
    m.layer(&["create", "base"]);
    let base = m.layer_dir("base");
    fs::create_dir_all(base.join("etc")).unwrap();
    fs::write(base.join("etc/passwd"), b"root").unwrap();
    fs::write(base.join("etc/group"), b"wheel").unwrap();
    fs::create_dir_all(base.join("tmp/build")).unwrap();
    fs::write(base.join("tmp/build/out.o"), b"obj").unwrap();
    m.layer(&["commit", "base"]);
    let all = m.layer(&["diff", "base"]);
    let expected_base = [
        "A /etc", "A /etc/group", "A /etc/passwd", "A /tmp", "A /tmp/build", "A /tmp/build/out.o",
    ];
    assert_eq!(all.lines().collect::<Vec<_>>(), expected_base);

    m.layer(&["create", "web", "--parent", "base"]);
    let web = m.layer_dir("web");
    fs::write(web.join("etc/passwd"), b"root:x:0:0").unwrap();
    fs::remove_dir_all(web.join("tmp/build")).unwrap();
    fs::create_dir_all(web.join("var/log")).unwrap();
    fs::write(web.join("var/log/access.log"), b"GET /").unwrap();
    let expected = [
        "C /etc", "C /etc/passwd", "C /tmp", "D /tmp/build", "A /var", "A /var/log",
        "A /var/log/access.log",
    ];
    assert_eq!(m.layer(&["diff", "web"]).lines().collect::<Vec<_>>(), expected);

    m.umount();
    m.fsck_clean();
    m.mount();
    assert_eq!(m.layer(&["diff", "web"]).lines().collect::<Vec<_>>(), expected);

    let out = common::run_raw(&["layer", "diff", "nope", &m.mount_arg()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no layer called \"nope\""), "{err}");
}
