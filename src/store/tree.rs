//! The cold tree's storage side: loading it at start, reading the leaves of a block when a proof
//! needs them (`TreeReader`), and finding the tree size of a root hash (`root_size_of`).
//!
//! The leaves are the `buffers` rows' `buffer_root`s, read by ranges of the primary key. The
//! prefixes of the root hashes are stored 4,096 to a row (`root_prefixes`, migration 0012); the
//! newest, incomplete chunk is in memory (`Ledger`'s recent roots).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use rusqlite::{Connection, params};

use crate::ledger::cold::{BLOCK_SHIFT, BlockCache, ColdTree, MissingBlock};
use crate::ledger::merkle::{CompactTree, Hash, Path};
use crate::ledger::{Ledger, ROOT_CHUNK};

/// An error for a database whose tree rows contradict each other or the in-memory tree (only
/// by editing it): reported as corruption, so `with_reader` callers log it and answer 503.
fn corrupt(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), Some(message))
}

fn hash_of(r: &rusqlite::Row<'_>, col: usize) -> rusqlite::Result<Option<Hash>> {
    Ok(r.get_ref(col)?.as_blob().ok().and_then(|b| <[u8; 32]>::try_from(b).ok()))
}

/// Rebuilds the cold tree from the stored buffer roots (blocks of `2^BLOCK_SHIFT` leaves).
pub fn load_tree(conn: &Connection) -> anyhow::Result<ColdTree> {
    let mut tree = ColdTree::new(BLOCK_SHIFT);
    let mut stmt = conn.prepare("SELECT idx, buffer_root FROM buffers ORDER BY idx")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let idx: i64 = r.get(0)?;
        if idx as usize != tree.len() {
            anyhow::bail!("the buffers table has a gap at index {}", tree.len());
        }
        tree.push(hash_of(r, 1)?.ok_or_else(|| anyhow::anyhow!("malformed buffer root at index {idx}"))?);
        if tree.len().is_multiple_of(1 << 16) {
            tree.take_completed();
        }
    }
    tree.take_completed();
    Ok(tree)
}

/// The leaves of block `index` (`2^shift` of them when the block is complete and committed).
pub fn read_block(conn: &Connection, index: usize, shift: u32) -> rusqlite::Result<Vec<Hash>> {
    let first = (index as i64) << shift;
    let mut stmt =
        conn.prepare_cached("SELECT idx, buffer_root FROM buffers WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")?;
    let mut rows = stmt.query([first, first + (1 << shift)])?;
    let mut leaves = Vec::with_capacity(1 << shift);
    while let Some(r) = rows.next()? {
        if r.get::<_, i64>(0)? != first + leaves.len() as i64 {
            return Err(corrupt(format!("the buffers table has a gap in cold-tree block {index}")));
        }
        // A malformed leaf (only by editing the database) fails the block's check.
        leaves.push(hash_of(r, 1)?.unwrap_or([0; 32]));
    }
    Ok(leaves)
}

/// Roots, paths and consistency proofs of the in-memory cold tree for a thread with a read
/// connection: a block a query needs is taken from the shared cache or read from the database and
/// checked against the tree (`ColdTree::accepts`). The tree's lock is held only while a query
/// runs, never while the database is read.
pub struct TreeReader<'a> {
    conn: &'a Connection,
    tree: &'a RwLock<ColdTree>,
    cache: &'a BlockCache,
    fetched: HashMap<usize, Arc<CompactTree>>,
}

impl<'a> TreeReader<'a> {
    pub fn new(conn: &'a Connection, ledger: &'a Ledger) -> Self {
        Self::over(conn, &ledger.tree, &ledger.blocks)
    }

    /// Over any tree and cache (`trailkeep export` loads its own).
    pub fn over(conn: &'a Connection, tree: &'a RwLock<ColdTree>, cache: &'a BlockCache) -> Self {
        Self { conn, tree, cache, fetched: HashMap::new() }
    }

    /// Runs `q` until it needs no block it does not have. A query needs at most two blocks; the
    /// bound only stops a tree that keeps changing under a caller.
    fn answer<T>(
        &mut self,
        q: impl Fn(&ColdTree, &HashMap<usize, Arc<CompactTree>>) -> Result<T, MissingBlock>,
    ) -> rusqlite::Result<T> {
        for _ in 0..8 {
            let missing = match q(&self.tree.read(), &self.fetched) {
                Ok(v) => return Ok(v),
                Err(MissingBlock(b)) => b,
            };
            self.fetch(missing)?;
        }
        Err(corrupt("the cold tree kept asking for blocks it was given".into()))
    }

    fn fetch(&mut self, index: usize) -> rusqlite::Result<()> {
        if let Some(block) = self.cache.get(index)
            && self.tree.read().accepts(index, &block)
        {
            self.fetched.insert(index, block);
            return Ok(());
        }
        let shift = self.tree.read().block_shift();
        let block = CompactTree::from_leaves(read_block(self.conn, index, shift)?);
        if !self.tree.read().accepts(index, &block) {
            return Err(corrupt(format!(
                "the stored leaves of cold-tree block {index} do not hash to the tree's node: the buffers table \
                 was altered; run `trailkeep verify`"
            )));
        }
        let block = Arc::new(block);
        self.cache.insert(index, block.clone());
        self.fetched.insert(index, block);
        Ok(())
    }

    /// `MTH` of the first `size` leaves; `None` if `size` is 0 or beyond the tree.
    pub fn root(&mut self, size: u64) -> rusqlite::Result<Option<Hash>> {
        self.answer(|t, b| t.root(size as usize, b))
    }

    /// The membership path of leaf `i` in the tree of `size` leaves.
    pub fn path(&mut self, i: u64, size: u64) -> rusqlite::Result<Path> {
        self.answer(|t, b| t.path(i as usize, size as usize, b))
    }

    /// The consistency proof from size `m` to size `n` (Pangea's encoding).
    pub fn consistency(&mut self, m: u64, n: u64) -> rusqlite::Result<Vec<String>> {
        self.answer(|t, b| t.consistency(m as usize, n as usize, b))
    }
}

/// The prefixes of the roots after the last stored chunk (the ledger's recent roots), storing any
/// complete chunk that is missing (a database written before migration 0012 gets its chunks from
/// the migration; this only repairs). Writer connection.
pub fn load_recent_roots(conn: &Connection) -> anyhow::Result<(u64, Vec<u32>)> {
    let (rows, next): (i64, i64) =
        conn.query_row("SELECT COUNT(*), COALESCE(MAX(chunk) + 1, 0) FROM root_prefixes", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if rows != next {
        tracing::warn!("the stored root-hash prefixes have holes; rebuilding them");
        conn.execute("DELETE FROM root_prefixes", [])?;
        return load_recent_roots_from(conn, 0);
    }
    load_recent_roots_from(conn, next as u64)
}

fn load_recent_roots_from(conn: &Connection, mut chunk: u64) -> anyhow::Result<(u64, Vec<u32>)> {
    let mut stmt = conn.prepare("SELECT root_hash FROM buffers WHERE idx >= ?1 ORDER BY idx")?;
    let mut rows = stmt.query([(chunk * ROOT_CHUNK) as i64])?;
    let mut prefixes = Vec::new();
    while let Some(r) = rows.next()? {
        // A malformed stored root (only by editing the database) gets a prefix no lookup confirms;
        // `verify` names the row.
        prefixes.push(crate::ledger::root_prefix(&hash_of(r, 0)?.unwrap_or([0; 32])));
        if prefixes.len() as u64 == ROOT_CHUNK {
            store_root_chunk(conn, chunk, &prefixes)?;
            prefixes.clear();
            chunk += 1;
        }
    }
    Ok((chunk * ROOT_CHUNK + 1, prefixes))
}

/// Stores one complete chunk of root-hash prefixes (writer connection).
pub fn store_root_chunk(conn: &Connection, chunk: u64, prefixes: &[u32]) -> rusqlite::Result<()> {
    let blob: Vec<u8> = prefixes.iter().flat_map(|p| p.to_be_bytes()).collect();
    conn.prepare_cached("INSERT OR REPLACE INTO root_prefixes(chunk, prefixes) VALUES (?1, ?2)")?
        .execute(params![chunk as i64, blob])?;
    Ok(())
}

/// The largest tree size below `below` whose root hash is `root` (a client's `prev_root`), or
/// `None`. Candidates come from the root-hash prefixes, newest first (clients send recent roots):
/// the ledger's recent roots in memory, then the stored chunks; each is confirmed against the
/// tree. Call it outside a read transaction: the stored chunks are read after the recent roots,
/// so a chunk the writer moves out of memory meanwhile is found in the table.
pub fn root_size_of(conn: &Connection, ledger: &Ledger, root: &Hash, below: u64) -> rusqlite::Result<Option<u64>> {
    let want = crate::ledger::root_prefix(root);
    let mut trees = TreeReader::new(conn, ledger);
    let (first, recent) = ledger.recent_root_candidates(want, below);
    for size in recent {
        if trees.root(size)?.as_ref() == Some(root) {
            return Ok(Some(size));
        }
    }
    let mut stmt =
        conn.prepare_cached("SELECT chunk, prefixes FROM root_prefixes WHERE chunk < ?1 ORDER BY chunk DESC")?;
    let mut rows = stmt.query([((first - 1) / ROOT_CHUNK) as i64])?;
    let key = want.to_be_bytes();
    while let Some(r) = rows.next()? {
        let chunk = r.get::<_, i64>(0)? as u64;
        let Ok(blob) = r.get_ref(1)?.as_blob() else { continue };
        for (k, p) in blob.chunks_exact(4).enumerate().rev() {
            let size = chunk * ROOT_CHUNK + k as u64 + 1;
            if p == key && size < below && trees.root(size)?.as_ref() == Some(root) {
                return Ok(Some(size));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::merkle::{consistency, mth, path};
    use sha2::{Digest, Sha256};

    fn leaf(i: usize) -> Hash {
        Sha256::digest((i as u64).to_le_bytes()).into()
    }

    /// Stores `n` buffers rows (leaf `i`'s buffer root and the tree's root at size `i + 1`), as the
    /// writer does; returns the full tree for reference.
    fn fill(conn: &Connection, from: usize, n: usize, full: &mut CompactTree) {
        conn.execute_batch("BEGIN").unwrap();
        for i in from..from + n {
            full.push(leaf(i));
            let root = full.root(i + 1).unwrap();
            conn.execute(
                "INSERT INTO buffers(idx, first_seq, count, workspace, buffer_root, root_hash, published_at, signature)
                 VALUES (?1, ?1, 1, 1, ?2, ?3, 0, x'')",
                params![i as i64, &leaf(i)[..], &root[..]],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    fn ledger(conn: &Connection) -> Ledger {
        let l = Ledger::new(load_tree(conn).unwrap(), "ab".repeat(32), [7; 32]);
        let (first, recent) = load_recent_roots(conn).unwrap();
        l.set_recent_roots(first, recent);
        l
    }

    #[test]
    fn proofs_read_old_blocks_from_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let mut full = CompactTree::new();
        let n = 5 * 256 + 77;
        fill(&conn, 0, n, &mut full);
        let l = ledger(&conn);
        assert_eq!(l.size(), n as u64);
        assert_eq!(l.tree.read().current_root(), full.root(n));
        let mut reader = TreeReader::new(&conn, &l);
        for size in [1, 2, 255, 256, 257, 300, 511, 512, 513, 1000, n - 1, n] {
            let d: Vec<Hash> = (0..size).map(leaf).collect();
            assert_eq!(reader.root(size as u64).unwrap(), mth(&d), "root {size}");
            for i in [0, size / 3, size - 1] {
                assert_eq!(reader.path(i as u64, size as u64).unwrap(), path(i, &d), "path {i} in {size}");
            }
            for m in [1, size / 2, size - 1] {
                if 0 < m && m < size {
                    assert_eq!(reader.consistency(m as u64, size as u64).unwrap(), consistency(m, &d));
                }
            }
        }
        assert_eq!(reader.root(n as u64 + 1).unwrap(), None);
        // The blocks read were kept for the next readers.
        assert!(!l.blocks.is_empty());
        assert!(l.blocks.len() <= 5);
    }

    #[test]
    fn altered_leaves_are_detected_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let mut full = CompactTree::new();
        fill(&conn, 0, 1000, &mut full);
        let l = ledger(&conn);
        conn.execute("UPDATE buffers SET buffer_root = zeroblob(32) WHERE idx = 300", []).unwrap();
        let mut reader = TreeReader::new(&conn, &l);
        let err = reader.path(260, 1000).unwrap_err().to_string();
        assert!(err.contains("block 1") && err.contains("altered"), "{err}");
        assert!(reader.root(301).is_err(), "a root ending in block 1 reads it");
        assert_eq!(reader.root(600).unwrap(), full.root(600), "[0, 512) is a node: block 1 is not read");
        assert_eq!(reader.path(10, 1000).unwrap(), full.path(10, 1000), "other blocks still serve");
        conn.execute("DELETE FROM buffers WHERE idx = 100", []).unwrap();
        assert!(TreeReader::new(&conn, &l).path(20, 1000).is_ok(), "block 0 was checked and cached");
        l.blocks.clear();
        let err = TreeReader::new(&conn, &l).path(20, 1000).unwrap_err().to_string();
        assert!(err.contains("gap"), "{err}");
    }

    #[test]
    fn prev_root_sizes_from_memory_and_stored_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let mut full = CompactTree::new();
        let n = 2 * ROOT_CHUNK as usize + 100;
        fill(&conn, 0, n, &mut full);
        let l = ledger(&conn);
        // Two chunks stored, the rest in memory.
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM root_prefixes", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(l.recent_roots_len(), 100);
        let root = |size: usize| full.root(size).unwrap();
        for size in [1, 2, 4095, 4096, 4097, 8192, 8193, n - 1] {
            assert_eq!(root_size_of(&conn, &l, &root(size), n as u64).unwrap(), Some(size as u64), "{size}");
        }
        assert_eq!(root_size_of(&conn, &l, &root(n), n as u64).unwrap(), None, "only sizes below");
        assert_eq!(root_size_of(&conn, &l, &root(4000), 4000).unwrap(), None);
        assert_eq!(root_size_of(&conn, &l, &[0xee; 32], n as u64).unwrap(), None);
        // A root whose prefix matches another size's is confirmed against the tree: the stored
        // chunk claims size 5000 has the prefix of size 10 (an edited row): 10 is still found,
        // and a hash with that prefix but other bytes is not.
        let mut blob: Vec<u8> =
            conn.query_row("SELECT prefixes FROM root_prefixes WHERE chunk = 1", [], |r| r.get(0)).unwrap();
        let k = 5000 - 4096 - 1;
        blob[4 * k..4 * k + 4].copy_from_slice(&root(10)[..4]);
        conn.execute("UPDATE root_prefixes SET prefixes = ?1 WHERE chunk = 1", [blob]).unwrap();
        assert_eq!(root_size_of(&conn, &l, &root(10), n as u64).unwrap(), Some(10));
        let mut near = root(10);
        near[31] ^= 1;
        assert_eq!(root_size_of(&conn, &l, &near, n as u64).unwrap(), None);
    }

    #[test]
    fn missing_chunks_are_rebuilt_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let mut full = CompactTree::new();
        let n = 3 * ROOT_CHUNK as usize + 5;
        fill(&conn, 0, n, &mut full);
        let stored = || -> Vec<(i64, Vec<u8>)> {
            let mut s = conn.prepare("SELECT chunk, prefixes FROM root_prefixes ORDER BY chunk").unwrap();
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
        };
        let (first, recent) = load_recent_roots(&conn).unwrap();
        assert_eq!((first, recent.len()), (3 * ROOT_CHUNK + 1, 5));
        let good = stored();
        assert_eq!(good.len(), 3);
        for (chunk, blob) in &good {
            let expect: Vec<u8> = (0..ROOT_CHUNK as usize)
                .flat_map(|k| full.root(*chunk as usize * 4096 + k + 1).unwrap()[..4].to_vec())
                .collect();
            assert_eq!(blob, &expect);
        }
        conn.execute("DELETE FROM root_prefixes WHERE chunk = 1", []).unwrap();
        load_recent_roots(&conn).unwrap();
        assert_eq!(stored(), good, "a hole is filled");
        conn.execute("DELETE FROM root_prefixes WHERE chunk = 2", []).unwrap();
        load_recent_roots(&conn).unwrap();
        assert_eq!(stored(), good, "a missing newest chunk is stored");
    }

    /// Migration 0012 computes the same chunks as the writer stores.
    #[test]
    fn migration_fills_the_chunks_of_an_older_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (_, sql) in &crate::store::MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 7).unwrap();
        let mut full = CompactTree::new();
        fill(&conn, 0, 2 * ROOT_CHUNK as usize + 3, &mut full);
        conn.execute("UPDATE buffers SET root_hash = x'0102' WHERE idx = 7", []).unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let migrated: Vec<(i64, Vec<u8>)> = {
            let mut s = conn.prepare("SELECT chunk, prefixes FROM root_prefixes ORDER BY chunk").unwrap();
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
        };
        conn.execute("DELETE FROM root_prefixes", []).unwrap();
        load_recent_roots(&conn).unwrap();
        let mut s = conn.prepare("SELECT chunk, prefixes FROM root_prefixes ORDER BY chunk").unwrap();
        let rebuilt: Vec<(i64, Vec<u8>)> =
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        assert_eq!(migrated.len(), 2);
        assert_eq!(migrated, rebuilt);
        assert_eq!(&migrated[0].1[28..32], &[0; 4], "a malformed root gets a prefix of zeros");
    }
}
