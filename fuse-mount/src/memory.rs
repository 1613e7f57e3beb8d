//! Returning the memory the daemon freed to the system.
//!
//! The engine's dirty pages are 4 KiB allocations, up to `dirty_limit_bytes` of them (256 MiB)
//! between two checkpoints, made by whichever thread writes: FUSE workers, a graph-driver
//! connection, the differ's blocking threads. glibc serves each thread from an arena of its
//! own (up to 8 per core) and gives an arena's memory back only from its top, so once a
//! checkpoint freed the pages, blocks still in use above them (cache entries, tree nodes)
//! keep every arena's freed pages resident: the daemon measured 849 to 1,062 MiB of RSS in
//! the Docker reproduction with 128 MiB of caches (docs/caching.md, "What else uses memory").
//! A thread of the daemon watches the allocator's free bytes and has them released
//! (`malloc_trim`) once they moved by [`TRIM_CHURN_BYTES`] since the last trim: free bytes
//! that were handed out again and freed again are resident again even when their total is
//! back where it was, so the watcher counts movement, not growth.
//!
//! Invariants:
//! - a trim follows only movement of the free bytes, never a fixed clock: an idle daemon is
//!   trimmed at most once, when it becomes idle;
//! - the watcher holds nothing of the engine: it ends with the daemon's process.

use std::time::Duration;

use crate::sys;

/// Movement of the allocator's free bytes (up and down, added up) since the last trim that
/// makes the next trim due: an eighth of the dirty limit, so the pages a checkpoint freed do
/// not stay resident for long.
pub const TRIM_CHURN_BYTES: u64 = 32 << 20;

/// Movement since the last trim that is trimmed once the free bytes stand still (the end of
/// a burst of work, whose last pages may have been reused and freed between two looks).
const SETTLED_CHURN_BYTES: u64 = 1 << 20;

/// How often the watcher looks at the allocator.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// When a trim is due, from the allocator's free bytes looked at now and then.
#[derive(Debug, Default)]
pub struct TrimPolicy {
    /// The free bytes at the last look (`None`: no look yet).
    last: Option<u64>,
    /// How far the free bytes moved, up and down, since the last trim.
    churn: u64,
}

impl TrimPolicy {
    /// Whether, with `free` bytes free now, a trim is due. After a trim, the caller reports
    /// the free bytes it left through `trimmed`.
    pub fn due(&mut self, free: u64) -> bool {
        let moved = self.last.map_or(0, |last| free.abs_diff(last));
        self.churn = self.churn.saturating_add(moved);
        self.last = Some(free);
        // Pages handed out and freed again between two looks move nothing the watcher sees:
        // once the free bytes stand still after any movement, the burst is over: trim then.
        self.churn >= TRIM_CHURN_BYTES || (moved == 0 && self.churn >= SETTLED_CHURN_BYTES)
    }

    /// A trim left `free` bytes free (glibc keeps trimmed pages as free chunks that are no
    /// longer resident, so they still count): movement is counted from there.
    pub fn trimmed(&mut self, free: u64) {
        self.last = Some(free);
        self.churn = 0;
    }
}

/// Starts the watcher thread (where the allocator cannot be asked, none).
pub fn start_trimmer() {
    if sys::allocator_free_bytes().is_none() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("lcfs-trim".to_string())
        .spawn(|| {
            let mut policy = TrimPolicy::default();
            loop {
                std::thread::sleep(WATCH_INTERVAL);
                let Some(free) = sys::allocator_free_bytes() else {
                    return;
                };
                if policy.due(free) {
                    sys::release_free_memory();
                    policy.trimmed(sys::allocator_free_bytes().unwrap_or(free));
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("lcfs: cannot start the memory trimmer ({e}); freed memory stays resident");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_trim_follows_movement_of_the_free_bytes() {
        let mut policy = TrimPolicy::default();
        assert!(!policy.due(500 * MIB), "the first look is no movement");
        assert!(!policy.due(510 * MIB));
        assert!(policy.due(500 * MIB + TRIM_CHURN_BYTES), "freed pages make a trim due");
        policy.trimmed(540 * MIB);
        // Freed memory handed out again, then freed again: the total is back where it was,
        // but the pages are resident again.
        assert!(!policy.due(520 * MIB));
        assert!(policy.due(540 * MIB), "20 MiB reused and freed: {policy:?}");
        policy.trimmed(540 * MIB);
        // A burst smaller than that is trimmed once it is over.
        assert!(!policy.due(536 * MIB));
        assert!(policy.due(536 * MIB), "the free bytes stand still after moving");
        policy.trimmed(536 * MIB);
        // An idle daemon (nothing moves) is not trimmed again.
        for _ in 0..10 {
            assert!(!policy.due(536 * MIB));
        }
    }
}
