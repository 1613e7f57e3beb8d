//! Helpers shared by the model's tests: a fresh model with one writable layer, short
//! constructors for times and flags, and checked wrappers that also run `check_invariants`.

#![allow(dead_code, reason = "each test file uses a different subset")]

use lcfs_model::{Attr, FileType, Ino, LayerId, Model, Timespec};

/// The logical time `n` (seconds).
pub fn t(n: i64) -> Timespec {
    Timespec::new(n, 0)
}

/// A model holding one writable layer "base" (id 1).
pub fn base() -> (Model, LayerId) {
    let mut model = Model::new();
    let layer = model.create_layer("base", None).expect("create base");
    (model, layer)
}

/// Creates a regular file `name` in `dir` at time `now`.
pub fn file(model: &mut Model, layer: LayerId, dir: Ino, name: &str, now: i64) -> Attr {
    let attr = model
        .mknod(layer, dir, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, t(now))
        .expect("create file");
    model.check_invariants();
    attr
}

/// Creates a directory `name` in `dir` at time `now`.
pub fn dir(model: &mut Model, layer: LayerId, parent: Ino, name: &str, now: i64) -> Attr {
    let attr = model.mkdir(layer, parent, name.as_bytes(), 0o755, 0, 0, t(now)).expect("mkdir");
    model.check_invariants();
    attr
}

/// The nlink of `ino`.
pub fn nlink(model: &Model, layer: LayerId, ino: Ino) -> u32 {
    model.getattr(layer, ino).expect("getattr").nlink
}
