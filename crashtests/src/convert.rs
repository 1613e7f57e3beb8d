//! Conversions between the model's types (`lcfs_model`) and the engine's (`lcfs`), field by
//! field, so that results can be compared with `==`.
//!
//! Invariants:
//! - an engine `Attr` becomes a model `Attr` with `blocks` = 0 (the model does not account
//!   blocks; the harness never compares them);
//! - an engine error becomes the model's `Errno` through `Error::errno()`, the number a POSIX
//!   caller would see;
//! - every other conversion is lossless.

use lcfs_model as model;

/// The engine's error as the model's errno.
pub fn errno(error: &lcfs::Error) -> model::Errno {
    model::Errno(error.errno())
}

/// An engine result with its value converted by `f` and its error as an errno.
pub fn result<T, U>(result: lcfs::Result<T>, f: impl FnOnce(T) -> U) -> model::Result<U> {
    result.map(f).map_err(|error| errno(&error))
}

pub fn ino(ino: model::Ino) -> lcfs::Ino {
    lcfs::Ino(ino.0)
}

pub fn layer_id(id: model::LayerId) -> lcfs::LayerId {
    lcfs::LayerId(id.0)
}

pub fn timespec(time: model::Timespec) -> lcfs::Timespec {
    lcfs::Timespec::new(time.sec, time.nsec)
}

pub fn timespec_back(time: lcfs::Timespec) -> model::Timespec {
    model::Timespec::new(time.sec, time.nsec)
}

pub fn file_type(kind: model::FileType) -> lcfs::FileType {
    match kind {
        model::FileType::Regular => lcfs::FileType::Regular,
        model::FileType::Directory => lcfs::FileType::Directory,
        model::FileType::Symlink => lcfs::FileType::Symlink,
        model::FileType::Fifo => lcfs::FileType::Fifo,
        model::FileType::CharDevice => lcfs::FileType::CharDevice,
        model::FileType::BlockDevice => lcfs::FileType::BlockDevice,
        model::FileType::Socket => lcfs::FileType::Socket,
    }
}

pub fn file_type_back(kind: lcfs::FileType) -> model::FileType {
    match kind {
        lcfs::FileType::Regular => model::FileType::Regular,
        lcfs::FileType::Directory => model::FileType::Directory,
        lcfs::FileType::Symlink => model::FileType::Symlink,
        lcfs::FileType::Fifo => model::FileType::Fifo,
        lcfs::FileType::CharDevice => model::FileType::CharDevice,
        lcfs::FileType::BlockDevice => model::FileType::BlockDevice,
        lcfs::FileType::Socket => model::FileType::Socket,
    }
}

/// The engine's attributes as the model's, with `blocks` = 0.
pub fn attr_back(attr: lcfs::Attr) -> model::Attr {
    model::Attr {
        ino: model::Ino(attr.ino.0),
        kind: file_type_back(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        size: attr.size,
        blocks: 0,
        atime: timespec_back(attr.atime),
        mtime: timespec_back(attr.mtime),
        ctime: timespec_back(attr.ctime),
    }
}

pub fn set_attr(set: &model::SetAttr) -> lcfs::SetAttr {
    lcfs::SetAttr {
        perm: set.perm,
        uid: set.uid,
        gid: set.gid,
        size: set.size,
        atime: set.atime.map(timespec),
        mtime: set.mtime.map(timespec),
    }
}

pub fn rename_flags(flags: model::RenameFlags) -> lcfs::RenameFlags {
    lcfs::RenameFlags { noreplace: flags.noreplace, exchange: flags.exchange }
}

pub fn xattr_flags(flags: model::XattrFlags) -> lcfs::XattrFlags {
    match flags {
        model::XattrFlags::Any => lcfs::XattrFlags::Any,
        model::XattrFlags::Create => lcfs::XattrFlags::Create,
        model::XattrFlags::Replace => lcfs::XattrFlags::Replace,
    }
}

pub fn layer_info_back(info: lcfs::LayerInfo) -> model::LayerInfo {
    model::LayerInfo {
        id: model::LayerId(info.id.0),
        name: info.name,
        parent: info.parent,
        state: match info.state {
            lcfs::LayerState::Writable => model::LayerState::Writable,
            lcfs::LayerState::Committed => model::LayerState::Committed,
        },
        children: info.children,
    }
}

pub fn dir_entry_back(entry: lcfs::DirEntry) -> model::DirEntry {
    model::DirEntry {
        name: entry.name,
        ino: model::Ino(entry.ino.0),
        kind: file_type_back(entry.kind),
    }
}
