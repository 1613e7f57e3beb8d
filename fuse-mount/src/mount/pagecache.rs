//! One copy of a shared file in memory: which kernel inodes may hold cached pages of which
//! engine inode, and when to drop them.
//!
//! The kernel caches a file's pages per FUSE inode, and every layer shows a file under a node
//! of its own (`nodes.rs`), so N containers reading one image file would cache it N times.
//! The daemon reads through the engine, whose caches and the image file's own page cache key on
//! block numbers: there a shared file is in memory once. So the policy is:
//!
//! - a file keeps its pages in the kernel node it is read through, across opens
//!   (`FOPEN_KEEP_CACHE`): one container re-reading its files is served by the kernel;
//! - when another kernel node opens the file, idle nodes (no open handle) drop their pages:
//!   the copy moves to the new reader instead of being doubled (an image written through the
//!   mount, then read by one container);
//! - a file open through two nodes at once is *shared* (several containers use it): from then
//!   on every node drops its pages at its last close. Reads while a file is open are still
//!   cached by the kernel.
//!
//! So containers using a file one after another hold one kernel copy between them, and
//! containers using it together hold none once they closed it; with the daemon's copy, at most
//! two copies whatever their number. (Counting layers that used a file one after another as
//! sharing it made one container's re-reads go to the daemon after two earlier ones had come
//! and gone, which the peers benchmark showed.)
//!
//! Engine inode numbers are never reused and a child sees its parent's inodes under the same
//! numbers, so one number across layers is one file, or a copy of it made by a write in one
//! layer. Such a copy is taken for shared too, which costs only re-reads, never correctness:
//! dropping clean pages loses nothing, as writes reach the daemon before they complete.
//!
//! Invariants:
//! - a node is listed under an inode while it may hold that inode's pages: from its first open
//!   until the daemon asked the kernel to drop them;
//! - a shared inode's nodes with no open handle hold no pages, once the drops asked for are done;
//! - at most `TRACKED` inodes are tracked; past it, the idle ones are forgotten (their pages
//!   stay where they are, as without this module).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use lcfs::Ino;

/// Most engine inodes tracked at once (each entry costs a few dozen bytes).
pub const TRACKED: usize = 65_536;

#[derive(Debug, Default)]
struct Holders {
    /// Kernel nodes that may hold the inode's pages, with their open handles.
    nodes: Vec<(u64, u32)>,
    /// Was open through two nodes at once: every node drops its pages at its last close.
    shared: bool,
}

/// The tracker; `opened` and `released` return the nodes whose pages to drop now.
#[derive(Debug, Default)]
pub struct PageShare {
    inodes: Mutex<HashMap<Ino, Holders>>,
}

impl PageShare {
    fn lock(&self) -> MutexGuard<'_, HashMap<Ino, Holders>> {
        self.inodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Kernel node `node` opened engine inode `ino`.
    pub fn opened(&self, ino: Ino, node: u64) -> Vec<u64> {
        let mut inodes = self.lock();
        if inodes.len() >= TRACKED && !inodes.contains_key(&ino) {
            inodes.retain(|_, h| h.nodes.iter().any(|&(_, open)| open > 0));
        }
        let holders = inodes.entry(ino).or_default();
        match holders.nodes.iter_mut().find(|(n, _)| *n == node) {
            Some((_, open)) => *open += 1,
            None => holders.nodes.push((node, 1)),
        }
        if holders.nodes.iter().filter(|&&(_, open)| open > 0).count() > 1 {
            holders.shared = true;
        }
        let idle: Vec<u64> = holders
            .nodes
            .iter()
            .filter(|&&(n, open)| open == 0 && n != node)
            .map(|&(n, _)| n)
            .collect();
        holders.nodes.retain(|&(_, open)| open > 0);
        idle
    }

    /// A handle kernel node `node` had on `ino` was closed.
    pub fn released(&self, ino: Ino, node: u64) -> Vec<u64> {
        let mut inodes = self.lock();
        let Some(holders) = inodes.get_mut(&ino) else {
            return Vec::new();
        };
        let Some(at) = holders.nodes.iter().position(|&(n, _)| n == node) else {
            return Vec::new();
        };
        let open = &mut holders.nodes[at].1;
        *open = open.saturating_sub(1);
        if *open > 0 || !holders.shared {
            return Vec::new();
        }
        holders.nodes.swap_remove(at);
        vec![node]
    }

    /// Engine inodes tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Kernel nodes that may hold pages of `ino`.
    pub fn holders(&self, ino: Ino) -> usize {
        self.lock().get(&ino).map_or(0, |h| h.nodes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INO: Ino = Ino(42);

    #[test]
    fn a_file_of_one_layer_keeps_its_pages_across_opens() {
        let p = PageShare::default();
        assert!(p.opened(INO, 100).is_empty());
        assert!(p.released(INO, 100).is_empty());
        assert!(p.opened(INO, 100).is_empty());
        assert!(p.released(INO, 100).is_empty());
    }

    #[test]
    fn a_second_layer_takes_the_idle_copy_over_and_keeps_it() {
        // An image layer wrote the file through the mount; one container reads it, twice.
        let p = PageShare::default();
        p.opened(INO, 100);
        p.released(INO, 100);
        assert_eq!(p.opened(INO, 200), vec![100]);
        assert!(p.released(INO, 200).is_empty());
        assert!(p.opened(INO, 200).is_empty());
        assert!(p.released(INO, 200).is_empty());
        assert_eq!(p.holders(INO), 1);
    }

    #[test]
    fn two_nodes_open_at_once_share_and_drop_at_their_last_close() {
        let p = PageShare::default();
        p.opened(INO, 100);
        p.opened(INO, 100);
        assert!(p.opened(INO, 200).is_empty(), "node 100 is still open");
        assert!(p.released(INO, 100).is_empty(), "one handle of 100 is left");
        assert_eq!(p.released(INO, 100), vec![100]);
        assert_eq!(p.released(INO, 200), vec![200]);
        assert_eq!(p.holders(INO), 0);
    }

    #[test]
    fn containers_reading_one_by_one_hand_one_copy_on() {
        let p = PageShare::default();
        let mut dropped = Vec::new();
        for node in 1..=20u64 {
            dropped.extend(p.opened(INO, node));
            dropped.extend(p.released(INO, node));
        }
        assert_eq!(dropped, (1..=19).collect::<Vec<u64>>());
        assert_eq!(p.holders(INO), 1, "the last reader holds the one kernel copy");
    }

    #[test]
    fn once_shared_later_readers_drop_at_their_last_close() {
        let p = PageShare::default();
        p.opened(INO, 1);
        p.opened(INO, 2);
        p.released(INO, 1);
        p.released(INO, 2);
        for node in 3..=5u64 {
            assert!(p.opened(INO, node).is_empty());
            assert_eq!(p.released(INO, node), vec![node]);
        }
        assert_eq!(p.holders(INO), 0);
    }

    #[test]
    fn other_files_are_not_affected() {
        let p = PageShare::default();
        p.opened(INO, 100);
        p.released(INO, 100);
        assert!(p.opened(Ino(43), 200).is_empty());
        assert!(p.released(Ino(43), 200).is_empty());
        assert!(p.opened(INO, 100).is_empty());
        assert_eq!((p.holders(INO), p.holders(Ino(43))), (1, 1));
    }

    #[test]
    fn past_the_bound_idle_files_are_forgotten_and_open_ones_kept() {
        let p = PageShare::default();
        p.opened(Ino(1), 1);
        p.opened(Ino(1), 2);
        for i in 2..TRACKED as u64 + 1 {
            p.opened(Ino(i), 1);
            p.released(Ino(i), 1);
        }
        assert!(p.tracked() <= TRACKED);
        // Ino 1 is open through two nodes: still tracked and shared.
        assert_eq!(p.released(Ino(1), 1), vec![1]);
    }
}
