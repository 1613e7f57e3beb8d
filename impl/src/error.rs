//! The engine's one error type. POSIX-shaped kinds map to errno; `Corrupt` and `Io` carry what
//! went wrong on the device.

use lcfs_device::DeviceError;

/// Every error the engine returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no such file, directory or layer")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("name too long")]
    NameTooLong,
    #[error("read-only: the layer is committed")]
    ReadOnly,
    #[error("busy: {0}")]
    Busy(&'static str),
    #[error("no space left on the device")]
    NoSpace,
    #[error("no such attribute")]
    NoData,
    #[error("file too large")]
    FileTooBig,
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("attribute name out of range")]
    Range,
    #[error("too many links")]
    TooManyLinks,
    #[error("stale handle: the layer or inode is gone")]
    Stale,
    #[error("corrupt metadata at block {block}: {what}")]
    Corrupt { block: u64, what: String },
    #[error("not an lcfs image: {0}")]
    NotLcfs(String),
    #[error(transparent)]
    Io(#[from] DeviceError),
}

/// A result of an engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The errno a POSIX caller sees for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => 2,            // ENOENT
            Error::Exists => 17,             // EEXIST
            Error::NotDir => 20,             // ENOTDIR
            Error::IsDir => 21,              // EISDIR
            Error::NotEmpty => 39,           // ENOTEMPTY
            Error::InvalidArgument(_) => 22, // EINVAL
            Error::NameTooLong => 36,        // ENAMETOOLONG
            Error::ReadOnly => 30,           // EROFS
            Error::Busy(_) => 16,            // EBUSY
            Error::NoSpace => 28,            // ENOSPC
            Error::NoData => 61,             // ENODATA
            Error::FileTooBig => 27,         // EFBIG
            Error::NotPermitted(_) => 1,     // EPERM
            Error::Range => 34,              // ERANGE
            Error::TooManyLinks => 31,       // EMLINK
            Error::Stale => 116,             // ESTALE
            Error::Corrupt { .. } | Error::NotLcfs(_) => 117, // EUCLEAN
            Error::Io(_) => 5,               // EIO
        }
    }

    /// A corruption error at `block`.
    pub fn corrupt(block: u64, what: impl Into<String>) -> Self {
        Error::Corrupt { block, what: what.into() }
    }
}
