//! The cold tree in bounded memory. Its leaves are the sealed buffers' roots, which the log
//! stores (`buffers.buffer_root`), so memory keeps only what appending and most proofs need:
//!
//! * the *upper levels*: the hash of every complete aligned subtree of at least one block of
//!   `2^shift` leaves (a [`CompactTree`] over the blocks' roots), `2 · 32 / 2^shift` bytes per leaf;
//! * the newest, incomplete block as a [`CompactTree`] of every level, so appending a leaf and the
//!   root of the current size cost O(log n) hashing and never read storage;
//! * the blocks completed since the writer last took them ([`ColdTree::take_completed`]): their
//!   leaves may not be committed to storage yet.
//!
//! A root, path or consistency proof whose tree size ends inside an older block, or a path from a
//! leaf of one, needs that block's leaves: the query answers [`MissingBlock`] naming it; the caller
//! reads the block's leaves from storage (`store::tree`), builds its [`CompactTree`], checks it with
//! [`ColdTree::accepts`] (its root must equal the upper level's node, so a leaf changed in storage
//! is detected and never used) and asks again with the block in its [`Blocks`]. One query needs at
//! most two blocks: the leaf's and the one in which the tree size ends.
//!
//! Every answer equals [`CompactTree`]'s over the same leaves, and so the reference functions of
//! `merkle`. No I/O here; nothing panics on caller input.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::merkle::{CompactTree, Hash, Path, Side, consistency_item, hash_pair, split_point, subtrees};

/// Leaves per block: `1 << BLOCK_SHIFT`. Chosen by measurement (ARCHITECTURE.md, `ledger`): 256
/// leaves are read from storage in ~0.1 ms and hashed in ~0.03 ms, and the upper levels hold a
/// quarter of a byte per leaf.
pub const BLOCK_SHIFT: u32 = 8;

/// Complete blocks (each a [`CompactTree`] of exactly `2^shift` leaves) that the caller has read
/// from storage, by block index.
pub trait Blocks {
    fn block(&self, index: usize) -> Option<&CompactTree>;
}

impl Blocks for HashMap<usize, Arc<CompactTree>> {
    fn block(&self, index: usize) -> Option<&CompactTree> {
        self.get(&index).map(Arc::as_ref)
    }
}

/// No stored blocks: enough for the root of the current size and for anything inside the newest
/// block and the upper levels.
pub struct NoBlocks;

impl Blocks for NoBlocks {
    fn block(&self, _: usize) -> Option<&CompactTree> {
        None
    }
}

/// A query needs the leaves of this complete block (by index), which is neither in memory nor
/// among the [`Blocks`] given (or was given with leaves that do not hash to its node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingBlock(pub usize);

/// The cold tree: see the module documentation.
#[derive(Debug, Clone)]
pub struct ColdTree {
    shift: u32,
    len: usize,
    /// A tree whose leaves are the roots of the complete blocks: its level `j` is level
    /// `shift + j` of the cold tree.
    upper: CompactTree,
    /// The leaves of the newest block (fewer than `2^shift`), every level.
    tail: CompactTree,
    /// Blocks completed since `take_completed`, by index.
    completed: Vec<(usize, Arc<CompactTree>)>,
}

impl Default for ColdTree {
    fn default() -> Self {
        Self::new(BLOCK_SHIFT)
    }
}

impl ColdTree {
    /// An empty tree with blocks of `2^shift` leaves (`shift` is capped at 32).
    pub fn new(shift: u32) -> Self {
        Self {
            shift: shift.min(32),
            len: 0,
            upper: CompactTree::new(),
            tail: CompactTree::new(),
            completed: Vec::new(),
        }
    }

    /// A tree of `leaves` (tests and tools; the server loads its tree with `store::tree`).
    pub fn from_leaves(shift: u32, leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new(shift);
        for leaf in leaves {
            t.push(leaf);
        }
        t.completed.clear();
        t
    }

    pub fn block_shift(&self) -> u32 {
        self.shift
    }

    /// Leaves per block.
    pub fn block_len(&self) -> usize {
        1 << self.shift
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of complete blocks.
    pub fn complete_blocks(&self) -> usize {
        self.upper.len()
    }

    /// Appends a leaf; amortised O(1) hashing. A block it completes is kept in memory until
    /// [`take_completed`](Self::take_completed).
    pub fn push(&mut self, leaf: Hash) {
        self.tail.push(leaf);
        self.len += 1;
        if self.tail.len() == self.block_len() {
            let block = std::mem::take(&mut self.tail);
            self.upper.push(block.root(block.len()).unwrap_or([0; 32]));
            self.completed.push((self.upper.len() - 1, Arc::new(block)));
        }
    }

    /// The blocks completed since the last call, by index (the writer calls this once their
    /// leaves are committed, and keeps them in its cache of recent blocks).
    pub fn take_completed(&mut self) -> Vec<(usize, Arc<CompactTree>)> {
        std::mem::take(&mut self.completed)
    }

    /// The root of complete block `index`.
    pub fn block_root(&self, index: usize) -> Option<Hash> {
        self.upper.leaf(index)
    }

    /// Whether `block` holds the leaves of complete block `index`: all `2^shift` of them, hashing
    /// to the block's node in the upper levels.
    pub fn accepts(&self, index: usize, block: &CompactTree) -> bool {
        block.len() == self.block_len() && self.block_root(index).is_some_and(|r| block.root(block.len()) == Some(r))
    }

    /// Bytes of hashes held in memory (upper levels, newest block, completed blocks), with the
    /// vectors' spare capacity.
    pub fn heap_bytes(&self) -> usize {
        let completed: usize = self.completed.iter().map(|(_, b)| b.heap_bytes()).sum();
        self.upper.heap_bytes() + self.tail.heap_bytes() + completed
    }

    /// The tree of block `b` from memory or `blocks` (checked against the upper levels).
    fn block_tree<'a>(&'a self, b: usize, blocks: &'a impl Blocks) -> Result<&'a CompactTree, MissingBlock> {
        if b == self.upper.len() {
            return Ok(&self.tail);
        }
        if let Some((_, t)) = self.completed.iter().find(|(i, _)| *i == b) {
            return Ok(t);
        }
        blocks.block(b).filter(|t| self.accepts(b, t)).ok_or(MissingBlock(b))
    }

    /// `MTH(D[s:e])`, as [`CompactTree::range_hash`] (the all-zero hash if `s >= e` or `e > len`).
    pub fn range_hash(&self, s: usize, e: usize, blocks: &impl Blocks) -> Result<Hash, MissingBlock> {
        if s >= e || e > self.len {
            return Ok([0; 32]);
        }
        let size = e - s;
        if size >= self.block_len() && size.is_power_of_two() && s.is_multiple_of(size) {
            return Ok(self.upper.range_hash(s >> self.shift, e >> self.shift));
        }
        let b = s >> self.shift;
        if (e - 1) >> self.shift == b {
            let base = b << self.shift;
            return Ok(self.block_tree(b, blocks)?.range_hash(s - base, e - base));
        }
        let k = split_point(size);
        Ok(hash_pair(&self.range_hash(s, s + k, blocks)?, &self.range_hash(s + k, e, blocks)?))
    }

    /// `MTH(D[0:size])`; `None` if `size == 0` or `size > len`.
    pub fn root(&self, size: usize, blocks: &impl Blocks) -> Result<Option<Hash>, MissingBlock> {
        if size == 0 || size > self.len { Ok(None) } else { self.range_hash(0, size, blocks).map(Some) }
    }

    /// The root of the current size (never needs a stored block); `None` when empty.
    pub fn current_root(&self) -> Option<Hash> {
        self.root(self.len, &NoBlocks).ok().flatten()
    }

    /// As [`CompactTree`]'s walk: siblings of the node `[s, e)` up to the root of the tree of
    /// `size` leaves, leaf upward; empty if `[s, e)` is not a node of it or `size > len`.
    fn walk(&self, s: usize, e: usize, size: usize, blocks: &impl Blocks) -> Result<Path, MissingBlock> {
        if s >= e || e > size || size > self.len {
            return Ok(Vec::new());
        }
        let mut top_down = Vec::new();
        let (mut a, mut b) = (0, size);
        while (a, b) != (s, e) {
            let k = split_point(b - a);
            if k == 0 {
                return Ok(Vec::new());
            }
            let mid = a + k;
            if e <= mid {
                top_down.push((Side::R, self.range_hash(mid, b, blocks)?));
                b = mid;
            } else if s >= mid {
                top_down.push((Side::L, self.range_hash(a, mid, blocks)?));
                a = mid;
            } else {
                return Ok(Vec::new());
            }
        }
        top_down.reverse();
        Ok(top_down)
    }

    /// `PATH(i, D[0:size])`; empty if `i >= size` or `size > len`.
    pub fn path(&self, i: usize, size: usize, blocks: &impl Blocks) -> Result<Path, MissingBlock> {
        self.walk(i, i.saturating_add(1), size, blocks)
    }

    /// `NODE_PATH(s, e, D[0:size])`; empty if `[s, e)` is not a node of that tree, is its root,
    /// or `size > len`.
    pub fn node_path(&self, s: usize, e: usize, size: usize, blocks: &impl Blocks) -> Result<Path, MissingBlock> {
        self.walk(s, e, size, blocks)
    }

    /// `CONSISTENCY(m, D[0:n])`; empty unless `0 < m < n <= len`.
    pub fn consistency(&self, m: usize, n: usize, blocks: &impl Blocks) -> Result<Vec<String>, MissingBlock> {
        if m == 0 || m >= n || n > self.len {
            return Ok(Vec::new());
        }
        subtrees(m)
            .into_iter()
            .rev()
            .map(|(s, e)| Ok(consistency_item(&self.range_hash(s, e, blocks)?, &self.node_path(s, e, n, blocks)?)))
            .collect()
    }
}

/// A cached block: (block index, its tree, last use).
type CacheEntry = (usize, Arc<CompactTree>, u64);

/// The most recently used complete blocks, shared by the threads that build proofs.
pub struct BlockCache {
    capacity: usize,
    /// (use clock, entries).
    entries: Mutex<(u64, Vec<CacheEntry>)>,
}

impl BlockCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: Mutex::new((0, Vec::with_capacity(capacity))) }
    }

    pub fn get(&self, index: usize) -> Option<Arc<CompactTree>> {
        let mut guard = self.entries.lock();
        let (clock, entries) = &mut *guard;
        *clock += 1;
        let entry = entries.iter_mut().find(|(i, _, _)| *i == index)?;
        entry.2 = *clock;
        Some(entry.1.clone())
    }

    /// Keeps `block` as block `index`, replacing the least recently used entry when full.
    pub fn insert(&self, index: usize, block: Arc<CompactTree>) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.entries.lock();
        let (clock, entries) = &mut *guard;
        *clock += 1;
        if let Some(entry) = entries.iter_mut().find(|(i, _, _)| *i == index) {
            *entry = (index, block, *clock);
        } else if entries.len() < self.capacity {
            entries.push((index, block, *clock));
        } else if let Some(oldest) = entries.iter_mut().min_by_key(|(_, _, used)| *used) {
            *oldest = (index, block, *clock);
        }
    }

    /// Forgets every block (the writer, after rebuilding the tree from storage).
    pub fn clear(&self) {
        self.entries.lock().1.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::merkle::{consistency, mth, node_path, path};
    use sha2::{Digest, Sha256};

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| Sha256::digest((i as u64).to_le_bytes()).into()).collect()
    }

    /// The complete blocks of `d` as a caller would read them from storage.
    fn all_blocks(d: &[Hash], shift: u32) -> HashMap<usize, Arc<CompactTree>> {
        d.chunks_exact(1 << shift)
            .enumerate()
            .map(|(i, c)| (i, Arc::new(CompactTree::from_leaves(c.iter().copied()))))
            .collect()
    }

    /// Asks `q` until it stops naming missing blocks, fetching each from `d`; returns the answer
    /// and the blocks it needed.
    fn fetching<T>(
        d: &[Hash],
        t: &ColdTree,
        q: impl Fn(&HashMap<usize, Arc<CompactTree>>) -> Result<T, MissingBlock>,
    ) -> (T, Vec<usize>) {
        let all = all_blocks(d, t.block_shift());
        let mut have = HashMap::new();
        let mut needed = Vec::new();
        loop {
            match q(&have) {
                Ok(v) => return (v, needed),
                Err(MissingBlock(b)) => {
                    assert!(!needed.contains(&b), "block {b} asked for twice");
                    needed.push(b);
                    have.insert(b, all[&b].clone());
                }
            }
        }
    }

    /// Every size, leaf, node and consistency pair of a 70-leaf tree, for blocks of 1 to 16
    /// leaves: the answers equal the reference, and each query needs at most two blocks.
    #[test]
    fn matches_reference_for_every_query() {
        const N: usize = 70;
        let d = leaves(N);
        for shift in 0..5 {
            let t = ColdTree::from_leaves(shift, d.iter().copied());
            assert_eq!(t.len(), N);
            assert_eq!(t.complete_blocks(), N >> shift);
            for n in 1..=N {
                let prefix = &d[..n];
                let (root, _) = fetching(&d, &t, |b| t.root(n, b));
                assert_eq!(root, mth(prefix), "root {n}, shift {shift}");
                for i in 0..n {
                    let (p, needed) = fetching(&d, &t, |b| t.path(i, n, b));
                    assert_eq!(p, path(i, prefix), "path {i} in {n}, shift {shift}");
                    assert!(needed.len() <= 2);
                }
                for m in 1..n {
                    for &(s, e) in &subtrees(m) {
                        let (np, _) = fetching(&d, &t, |b| t.node_path(s, e, n, b));
                        assert_eq!(np, node_path(s, e, prefix));
                    }
                    let (c, needed) = fetching(&d, &t, |b| t.consistency(m, n, b));
                    assert_eq!(c, consistency(m, prefix), "consistency {m}->{n}, shift {shift}");
                    assert!(needed.len() <= 2);
                }
            }
            assert_eq!(t.root(N + 1, &NoBlocks), Ok(None));
            assert_eq!(t.root(0, &NoBlocks), Ok(None));
            assert_eq!(t.path(N, N, &NoBlocks), Ok(Vec::new()));
            assert_eq!(t.consistency(3, N + 1, &NoBlocks), Ok(Vec::new()));
        }
    }

    /// Appending and the current root never need a stored block, and completed blocks stay
    /// answerable from memory until taken.
    #[test]
    fn current_root_and_recent_blocks_from_memory() {
        let d = leaves(600);
        let mut t = ColdTree::new(4);
        for (n, leaf) in d.iter().enumerate() {
            t.push(*leaf);
            assert_eq!(t.current_root(), mth(&d[..=n]));
            assert_eq!(t.root(n + 1, &NoBlocks), Ok(mth(&d[..=n])));
            // The newest leaf's path, and any path in blocks completed since the last take.
            assert_eq!(t.path(n, n + 1, &NoBlocks), Ok(path(n, &d[..=n])));
            if n % 50 == 49 {
                let taken = t.take_completed();
                assert!(taken.iter().all(|(i, b)| t.accepts(*i, b)));
            }
        }
        assert!(t.take_completed().len() <= 4);
        assert_eq!(t.path(0, 600, &NoBlocks), Err(MissingBlock(0)));
        assert_eq!(t.root(17, &NoBlocks), Err(MissingBlock(1)));
        assert_eq!(t.root(16, &NoBlocks), Ok(mth(&d[..16])), "a whole block is an upper node");
    }

    /// A block whose leaves do not hash to its node is never used.
    #[test]
    fn wrong_blocks_are_refused() {
        let d = leaves(64);
        let t = ColdTree::from_leaves(3, d.iter().copied());
        let mut blocks = all_blocks(&d, 3);
        let mut bad = d[8..16].to_vec();
        bad[3][0] ^= 1;
        blocks.insert(1, Arc::new(CompactTree::from_leaves(bad)));
        assert!(!t.accepts(1, &blocks[&1]));
        assert_eq!(t.path(11, 64, &blocks), Err(MissingBlock(1)));
        blocks.insert(1, Arc::new(CompactTree::from_leaves(d[8..15].iter().copied())));
        assert_eq!(t.path(11, 64, &blocks), Err(MissingBlock(1)), "a short block");
        blocks.insert(1, Arc::new(CompactTree::from_leaves(d[16..24].iter().copied())));
        assert_eq!(t.path(11, 64, &blocks), Err(MissingBlock(1)), "another block's leaves");
        assert!(t.accepts(0, &blocks[&0]));
        assert_eq!(t.path(3, 64, &blocks), Ok(path(3, &d)));
    }

    /// Memory: the upper levels and one block, not the leaves.
    #[test]
    fn memory_is_bounded_by_the_blocks() {
        let mut t = ColdTree::new(BLOCK_SHIFT);
        let n = 1 << 18;
        for i in 0..n as u64 {
            let mut leaf = [0u8; 32];
            leaf[..8].copy_from_slice(&i.to_le_bytes());
            t.push(leaf);
            if i % 1000 == 0 {
                t.take_completed();
            }
        }
        t.take_completed();
        let full = CompactTree::from_leaves((0..n as u64).map(|i| {
            let mut leaf = [0u8; 32];
            leaf[..8].copy_from_slice(&i.to_le_bytes());
            leaf
        }));
        assert_eq!(t.current_root(), full.root(n));
        // 1,024 block roots and their levels (with spare capacity), and an empty newest block.
        assert!(t.heap_bytes() <= 4 * 1024 * 32, "{} bytes", t.heap_bytes());
        assert!(full.heap_bytes() >= 2 * n * 32 - 64);
    }

    #[test]
    fn cache_keeps_the_most_recently_used() {
        let c = BlockCache::new(2);
        let b = |i: u8| Arc::new(CompactTree::from_leaves([[i; 32]]));
        c.insert(1, b(1));
        c.insert(2, b(2));
        assert!(c.get(1).is_some());
        c.insert(3, b(3)); // evicts 2, the least recently used
        assert!(c.get(2).is_none());
        assert_eq!(c.get(1).and_then(|t| t.leaf(0)), Some([1; 32]));
        assert_eq!(c.get(3).and_then(|t| t.leaf(0)), Some([3; 32]));
        c.insert(3, b(4));
        assert_eq!(c.get(3).and_then(|t| t.leaf(0)), Some([4; 32]));
        assert_eq!(c.len(), 2);
        c.clear();
        assert!(c.is_empty());
        let none = BlockCache::new(0);
        none.insert(1, b(1));
        assert!(none.get(1).is_none());
    }
}
