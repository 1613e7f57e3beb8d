//! Layer tar streams: the OCI/Docker layer format read into a writable layer (`apply_diff`,
//! Docker's ApplyDiff) and written from a layer's changes (`write_diff`, Docker's Diff).
//! docs/tar.md describes the format subset and the rules for hostile input.
//!
//! Invariants:
//! - nothing outside the target layer is ever touched: every change goes through the public
//!   `Fs` API with the target `LayerId`, and the engine's namespace is per layer;
//! - a path of the stream never climbs above the layer root and is never resolved through a
//!   symlink (a symlink in a path component is an error, never followed);
//! - every quantity the stream controls is bounded before it is used ([`Limits`]): headers,
//!   extension-header sizes, name and path lengths, file sizes;
//! - a failed apply leaves the engine consistent (every change is one engine operation); the
//!   entries applied before the failure remain, and the caller removes the layer.
//!
//! Modules: `header` (the 512-byte block), `pax` (extended records), `reader` (entries of a
//! stream), `path` (path cleaning), `apply` (into a layer), `writer` and `diff` (out of one).

mod apply;
mod diff;
mod header;
mod path;
mod pax;
mod reader;
mod writer;

pub use apply::{apply_diff, apply_diff_with, ApplyOptions};
pub use diff::{write_diff, write_layer_diff, ChangeKind};
pub use header::EntryKind;
pub use reader::{Entry, Reader};
pub use writer::{EntrySpec, Writer};

use crate::types::FILE_SIZE_MAX;

/// The tar block size: headers and data are padded to it.
pub const BLOCK_BYTES: usize = 512;

/// The bounds a stream is held to (all checked before any allocation they size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Headers of every kind (entries and extension headers) in one stream.
    pub headers_max: u64,
    /// The data of one PAX ('x', 'g') or GNU long name/link ('L', 'K') header, in bytes.
    pub extension_bytes_max: u64,
    /// Extension headers in a row before the entry they describe.
    pub extensions_in_a_row_max: u32,
    /// A path (after cleaning), in bytes, as Linux's PATH_MAX.
    pub path_bytes_max: usize,
    /// Extended attributes on one entry.
    pub xattrs_per_entry_max: usize,
    /// The size of one regular file.
    pub file_bytes_max: u64,
    /// The paths an apply remembers (those the stream created, for opaque markers), in bytes:
    /// with `headers_max`, what bounds the memory of an apply.
    pub tracked_path_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            headers_max: 1 << 21,
            extension_bytes_max: 1 << 20,
            extensions_in_a_row_max: 16,
            path_bytes_max: 4096,
            xattrs_per_entry_max: 1024,
            file_bytes_max: FILE_SIZE_MAX,
            tracked_path_bytes_max: 256 << 20,
        }
    }
}

/// What went wrong with a stream, without saying where (see [`TarError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarErrorKind {
    /// A header or extended record that does not decode.
    #[error("malformed header: {0}")]
    Header(&'static str),
    /// An entry that would reach outside its place in the layer.
    #[error("unsafe entry: {0}")]
    Unsafe(&'static str),
    /// A bound of [`Limits`] or of the engine.
    #[error("limit exceeded: {0}")]
    Limit(&'static str),
    /// A valid tar feature outside the subset lcfs reads.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The stream ended inside a header, an entry's data or before the end-of-archive marker.
    #[error("the stream ends early: {0}")]
    Truncated(&'static str),
    /// Reading the input or writing the output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The engine refused an operation.
    #[error("engine: {0}")]
    Engine(#[from] crate::Error),
}

impl TarErrorKind {
    /// The errno a POSIX caller sees.
    pub fn errno(&self) -> i32 {
        match self {
            TarErrorKind::Engine(e) => e.errno(),
            TarErrorKind::Io(_) => 5, // EIO
            _ => 22,                  // EINVAL
        }
    }
}

/// An error of a tar stream, naming the entry: its index in the stream (counting every header),
/// the byte offset of its header and its path as the stream gave it.
#[derive(Debug, thiserror::Error)]
#[error("tar entry {index} at byte {offset} ({name:?}): {kind}")]
pub struct TarError {
    pub index: u64,
    pub offset: u64,
    /// The entry's path, lossily decoded and cut at 256 characters; empty when the header
    /// itself did not decode.
    pub name: String,
    pub kind: TarErrorKind,
}

impl TarError {
    /// The errno a POSIX caller sees (EINVAL for the stream's own faults).
    pub fn errno(&self) -> i32 {
        self.kind.errno()
    }
}

/// A result of the tar module.
pub type TarResult<T> = std::result::Result<T, TarError>;

/// A lossy, shortened rendering of a raw name for error messages.
pub(crate) fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).chars().take(256).collect()
}
