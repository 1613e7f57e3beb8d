//! Describes the differences between two `LayerDump`s (the model's and the engine's) in a few
//! readable lines, so a failing case says what differs and where rather than printing two
//! whole trees.
//!
//! Invariants: `diff_layer(a, b)` is `None` exactly when `a == b`; the description is bounded
//! (at most `LINES_MAX` lines).

use std::collections::BTreeSet;

use lcfs_model::{Attr, Content, FileData, InodeDump, LayerDump};

use crate::walk::show;

/// The most lines of a description.
const LINES_MAX: usize = 24;

/// How `model` and `engine` differ, or `None` when they are equal.
pub fn diff_layer(model: &LayerDump, engine: &LayerDump) -> Option<String> {
    if model == engine {
        return None;
    }
    let mut lines = Vec::new();
    if model.info != engine.info {
        lines.push(format!("layer info: model {:?}, engine {:?}", model.info, engine.info));
    }
    let paths: BTreeSet<&Vec<u8>> = model.paths.keys().chain(engine.paths.keys()).collect();
    for path in paths {
        match (model.paths.get(path), engine.paths.get(path)) {
            (Some(a), Some(b)) if a != b => {
                lines.push(format!("{}: model {a:?}, engine {b:?}", show(path)))
            }
            (Some(a), None) => lines.push(format!("{}: only in the model ({a:?})", show(path))),
            (None, Some(b)) => lines.push(format!("{}: only in the engine ({b:?})", show(path))),
            _ => {}
        }
    }
    for (ino, a) in &model.inodes {
        if let Some(b) = engine.inodes.get(ino) {
            diff_inode(&format!("{ino:?}"), a, b, &mut lines);
        }
    }
    if lines.is_empty() {
        lines.push("the dumps differ (no detail found)".to_owned());
    }
    let more = lines.len().saturating_sub(LINES_MAX);
    lines.truncate(LINES_MAX);
    if more > 0 {
        lines.push(format!("... and {more} more differences"));
    }
    Some(format!("layer {:?}:\n  {}", model.info.name, lines.join("\n  ")))
}

fn diff_inode(name: &str, a: &InodeDump, b: &InodeDump, lines: &mut Vec<String>) {
    if a.attr != b.attr {
        lines.push(format!("{name}: attr {}", diff_attr(&a.attr, &b.attr)));
    }
    match (&a.content, &b.content) {
        (Content::Regular(x), Content::Regular(y)) if x != y => {
            lines.push(format!("{name}: data {}", diff_data(x, y)))
        }
        (Content::Symlink(x), Content::Symlink(y)) if x != y => {
            lines.push(format!("{name}: target model {}, engine {}", show(x), show(y)))
        }
        (x, y) if std::mem::discriminant(x) != std::mem::discriminant(y) => {
            lines.push(format!("{name}: content kind model {x:?}, engine {y:?}"))
        }
        _ => {}
    }
    if a.xattrs != b.xattrs {
        let show_all = |dump: &InodeDump| {
            let names: Vec<String> =
                dump.xattrs.iter().map(|(k, v)| format!("{}={}B", show(k), v.len())).collect();
            names.join(",")
        };
        lines.push(format!("{name}: xattrs model [{}], engine [{}]", show_all(a), show_all(b)));
    }
}

/// The fields of two attributes that differ.
fn diff_attr(a: &Attr, b: &Attr) -> String {
    let mut out = Vec::new();
    let mut field = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{what} model {x} engine {y}"));
        }
    };
    field("ino", format!("{:?}", a.ino), format!("{:?}", b.ino));
    field("kind", format!("{:?}", a.kind), format!("{:?}", b.kind));
    field("perm", format!("{:o}", a.perm), format!("{:o}", b.perm));
    field("nlink", a.nlink.to_string(), b.nlink.to_string());
    field("uid", a.uid.to_string(), b.uid.to_string());
    field("gid", a.gid.to_string(), b.gid.to_string());
    field("rdev", a.rdev.to_string(), b.rdev.to_string());
    field("size", a.size.to_string(), b.size.to_string());
    field("blocks", a.blocks.to_string(), b.blocks.to_string());
    field("atime", format!("{:?}", a.atime), format!("{:?}", b.atime));
    field("mtime", format!("{:?}", a.mtime), format!("{:?}", b.mtime));
    field("ctime", format!("{:?}", a.ctime), format!("{:?}", b.ctime));
    out.join("; ")
}

/// Where two files' bytes differ first.
fn diff_data(a: &FileData, b: &FileData) -> String {
    if a.size() != b.size() {
        return format!("size model {} engine {}", a.size(), b.size());
    }
    let pages: BTreeSet<u64> = a.pages().chain(b.pages()).map(|(index, _)| index).collect();
    for index in pages {
        let offset = index * lcfs_model::PAGE_SIZE;
        let (x, y) = (a.read(offset, lcfs_model::PAGE_SIZE), b.read(offset, lcfs_model::PAGE_SIZE));
        if let Some(at) = x.iter().zip(&y).position(|(p, q)| p != q) {
            return format!(
                "first differs at byte {} (model {:#04x}, engine {:#04x})",
                offset + at as u64,
                x[at],
                y[at]
            );
        }
    }
    "differs".to_owned()
}
