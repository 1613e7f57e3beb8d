//! The superblock (owned by the core).
