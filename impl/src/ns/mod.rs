//! Namespace operations of one layer: inodes, directories, file data, xattrs, rename.
//! SKELETON: owned by the namespace helper.

/// A layer's file data not yet written to the device.
#[derive(Debug, Default)]
pub struct DirtyPages {}
