//! The library of the `lcfs` binary (src/main.rs is a thin `fn main` over `cli::run`): the
//! FUSE mount of an lcfs image, its daemon, its runtime protocols (containerd's snapshotter,
//! Docker's graph driver) and its command line (docs/cli.md).
//!
//! Nothing here is a stable API: the modules are public only for the binary (`cli`) and for
//! the fuzz targets (`fuzzing`, fuzz/).

#[doc(hidden)]
pub mod cli;
mod control;
mod daemon;
#[doc(hidden)]
pub mod fuzzing;
mod graphdriver;
mod memory;
mod mount;
mod mounts;
mod nodes;
mod server;
mod snapshotter;
/// The generated gRPC code of containerd's diff, content and leases services, for the tests
/// that play containerd (a diff client, a fake content service) against the daemon.
pub use snapshotter::api as containerd_api;
mod sync;
mod sys;
/// How many of a file's pages the kernel caches (mincore), for the page-cache tests.
pub use sys::resident_pages;
