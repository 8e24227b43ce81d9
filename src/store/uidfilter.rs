//! A Bloom filter over every stored event id, kept in a file of the data directory
//! (`uid-filter`) rather than in memory. The event-id index is clustered by segment (migration
//! 0005), so "is this id stored?" would otherwise probe every segment; the filter answers "no" for
//! almost every new id (false positives ≈ 0.1% at its capacity) and only a "maybe" is confirmed
//! against the index, newest segment first. Writer thread only.
//!
//! The filter is blocked: an id's 8 bits are in one 64-byte block, so a lookup is one read of the
//! file (the kernel's page cache, ~1 µs) and the process holds only the blocks changed since they
//! were last written (at most [`MAX_DIRTY`], 1 MiB): its memory does not grow with the log, where
//! an in-memory filter took 16 bits per id (32 MiB at 10,000,000 ids, twice that during a
//! rebuild). The kernel may drop the file's pages under memory pressure; lookups then read the
//! disk.
//!
//! The file is a cache of what the database holds: a server stopped cleanly records the log's
//! size and newest event hash in its header, and the next start uses the file only if the
//! database still ends there; otherwise (a crash, a restored or copied database) it is built
//! again from the stored ids, once at start.
//!
//! When the filter holds more ids than it was sized for, a file twice as large is built from the
//! database on a thread of its own (`Uids`): a scan of every stored id, seconds at millions of
//! ids, that the writer does not wait for. Meanwhile the writer keeps answering from the old
//! filter (more false positives, never a false negative) and notes every id it adds; once built,
//! the new filter gets those ids too, a bounded number between two transactions (`CATCH_UP`), and
//! is renamed into place when it has them all. The scan reads a snapshot taken after the writer
//! started noting, so every stored id is in the snapshot or in the notes.
//!
//! An id added for a transaction that rolls back stays in the filter: that costs a false positive,
//! never a missed duplicate. A file that cannot be read or written makes every id a "maybe"
//! (answered by the index, slowly but correctly) until a rebuild succeeds.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::BuildHasherDefault;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use crate::search::ngram::FxHasher;

/// Filter bits per id at capacity.
const BITS_PER_ID: usize = 16;
/// Bits set per id, all in one block.
const PROBES: u64 = 8;
/// A block: 512 bits.
const BLOCK_WORDS: usize = 8;
const BLOCK_BYTES: u64 = 64;
type Block = [u64; BLOCK_WORDS];
/// The smallest capacity (ids).
const MIN_CAPACITY: usize = 1 << 16;
/// Bytes before the first block: the header, padded to a page.
const HEADER_BYTES: u64 = 4096;
const MAGIC: &[u8; 8] = b"TKUIDF01";
/// Changed blocks held in memory before a thread writes them to the file (~0.6 MB; at most four
/// times as many while the previous ones are being written).
pub const MAX_DIRTY: usize = 8_192;

/// The filter file in the data directory, and the one a rebuild writes before renaming it there.
pub const FILE: &str = "uid-filter";
const BUILDING: &str = "uid-filter.building";

/// Where the log ends: (next seq, hash of the newest event), as the header of a cleanly closed
/// filter records it.
type LogEnd = (i64, Vec<u8>);

fn log_end(conn: &Connection) -> rusqlite::Result<LogEnd> {
    Ok(conn
        .query_row("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get::<_, i64>(0)? + 1, r.get(1)?))
        })
        .optional()?
        .unwrap_or((0, Vec::new())))
}

fn open_rw(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(create).truncate(create).mode(0o600).open(path)
}

pub struct UidFilter {
    file: File,
    nblocks: u64,
    count: usize,
    capacity: usize,
    /// Blocks changed since they were last written: every bit of the block.
    dirty: Blocks,
    /// Changed blocks a thread is writing to the file.
    writing: Option<Writing>,
    /// Blocks lookups read from the file since the last `write_behind`: the insert of an id just
    /// looked up (an H2O event's) finds its block here.
    read: RefCell<Blocks>,
    /// A read or write of the file failed: every id may be stored.
    failed: Cell<bool>,
}

type Blocks = HashMap<u64, Block, BuildHasherDefault<FxHasher>>;

/// Blocks being written by a thread of their own (the writer goes on meanwhile, reading them
/// from here).
struct Writing {
    blocks: Arc<Blocks>,
    done: Receiver<std::io::Result<()>>,
}

/// Writes blocks to the filter's file, in file order.
fn write_blocks(file: &File, blocks: &Blocks) -> std::io::Result<()> {
    let mut order: Vec<(&u64, &Block)> = blocks.iter().collect();
    order.sort_unstable_by_key(|(b, _)| **b);
    let mut bytes = [0u8; BLOCK_BYTES as usize];
    for (b, block) in order {
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(block) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        file.write_all_at(&bytes, HEADER_BYTES + b * BLOCK_BYTES)?;
    }
    Ok(())
}

impl UidFilter {
    /// Builds the filter of every id in the database into a new file at `path`, with room for a
    /// quarter more at least (capacities are powers of two, so a rebuild doubles it): 16 bits per
    /// id at capacity, a 32 MiB file at 10,000,000 ids. The bits are set in memory and written
    /// once (the memory is freed when this returns).
    pub fn build(conn: &Connection, path: &Path) -> anyhow::Result<Self> {
        let n = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as usize;
        let capacity = (n + n / 4).max(MIN_CAPACITY).next_power_of_two();
        let nblocks = (capacity * BITS_PER_ID) as u64 / (BLOCK_WORDS as u64 * 64);
        let mut blocks: Vec<Block> = vec![[0; BLOCK_WORDS]; nblocks as usize];
        let mut count = 0;
        let mut stmt = conn.prepare("SELECT uid FROM events INDEXED BY events_seg_uid")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            if let Some(uid) = r.get_ref(0)?.as_blob().ok().and_then(|b| Uuid::from_slice(b).ok()) {
                let (b, bits) = place(&uid, nblocks);
                set(&mut blocks[b as usize], &bits);
                count += 1;
            }
        }
        let file = open_rw(path, true)?;
        file.set_len(HEADER_BYTES + nblocks * BLOCK_BYTES)?;
        let mut bytes = Vec::with_capacity(1 << 20);
        for (i, chunk) in blocks.chunks(16_384).enumerate() {
            bytes.clear();
            for block in chunk {
                block.iter().for_each(|w| bytes.extend_from_slice(&w.to_le_bytes()));
            }
            file.write_all_at(&bytes, HEADER_BYTES + (i * 16_384) as u64 * BLOCK_BYTES)?;
        }
        let f = Self {
            file,
            nblocks,
            count,
            capacity,
            dirty: Default::default(),
            writing: None,
            read: Default::default(),
            failed: Cell::new(false),
        };
        f.write_header(None)?;
        Ok(f)
    }

    /// Opens the filter file at `path` if it was closed cleanly where the log still ends, and
    /// marks it open (a crash from now on has it built again at the next start).
    fn open_clean(path: &Path, end: &LogEnd) -> Option<Self> {
        let file = open_rw(path, false).ok()?;
        let mut h = [0u8; 80];
        file.read_exact_at(&mut h, 0).ok()?;
        let word = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or_default());
        let (nblocks, count, capacity, clean, seq) = (word(8), word(16), word(24), word(32), word(40));
        let expected_len = HEADER_BYTES.checked_add(nblocks.checked_mul(BLOCK_BYTES)?)?;
        let hash_ok = end.1.len() <= 32 && h[48..48 + end.1.len()] == end.1[..];
        if &h[..8] != MAGIC
            || clean != 1
            || seq != end.0 as u64
            || !hash_ok
            || !nblocks.is_power_of_two()
            || capacity as usize * BITS_PER_ID != (nblocks * BLOCK_BYTES * 8) as usize
            || file.metadata().ok()?.len() != expected_len
        {
            return None;
        }
        let f = Self {
            file,
            nblocks,
            count: count as usize,
            capacity: capacity as usize,
            dirty: Default::default(),
            writing: None,
            read: Default::default(),
            failed: Cell::new(false),
        };
        f.write_header(None).ok()?;
        f.file.sync_data().ok()?;
        Some(f)
    }

    /// Writes the header: closed cleanly where the log ends (`Some`), or open.
    fn write_header(&self, closed: Option<&LogEnd>) -> std::io::Result<()> {
        let mut h = [0u8; 80];
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.nblocks.to_le_bytes());
        h[16..24].copy_from_slice(&(self.count as u64).to_le_bytes());
        h[24..32].copy_from_slice(&(self.capacity as u64).to_le_bytes());
        if let Some((seq, hash)) = closed {
            h[32..40].copy_from_slice(&1u64.to_le_bytes());
            h[40..48].copy_from_slice(&(*seq as u64).to_le_bytes());
            let n = hash.len().min(32);
            h[48..48 + n].copy_from_slice(&hash[..n]);
        }
        self.file.write_all_at(&h, 0)
    }

    /// Writes the changed blocks, makes them durable and records where the log ends (the writer,
    /// stopping cleanly).
    fn close(&mut self, end: &LogEnd) -> std::io::Result<()> {
        self.flush()?;
        if self.failed.get() {
            return Err(std::io::Error::other("the filter file failed earlier"));
        }
        self.file.sync_data()?;
        self.write_header(Some(end))?;
        self.file.sync_data()
    }

    /// More ids than the filter was sized for: the caller rebuilds it to keep false positives
    /// rare.
    pub fn is_full(&self) -> bool {
        self.count > self.capacity
    }

    fn block(&self, b: u64) -> Option<Block> {
        if let Some(block) = self.dirty.get(&b).or_else(|| self.writing.as_ref()?.blocks.get(&b)) {
            return Some(*block);
        }
        if let Some(block) = self.read.borrow().get(&b) {
            return Some(*block);
        }
        let mut bytes = [0u8; BLOCK_BYTES as usize];
        if let Err(e) = self.file.read_exact_at(&mut bytes, HEADER_BYTES + b * BLOCK_BYTES) {
            if !self.failed.replace(true) {
                tracing::warn!(error = %e, "cannot read the event-id filter; duplicates are looked up in the index until it is rebuilt");
            }
            return None;
        }
        let mut block = [0u64; BLOCK_WORDS];
        for (w, chunk) in block.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        }
        self.read.borrow_mut().insert(b, block);
        Some(block)
    }

    pub fn insert(&mut self, uid: &Uuid) {
        self.count += 1;
        if self.failed.get() {
            return;
        }
        let (b, bits) = place(uid, self.nblocks);
        let Some(mut block) = self.block(b) else { return };
        self.read.get_mut().remove(&b);
        set(&mut block, &bits);
        self.dirty.insert(b, block);
    }

    /// Whether enough blocks changed that they should be written ([`Self::write_behind`]).
    pub fn should_flush(&self) -> bool {
        self.dirty.len() >= MAX_DIRTY
    }

    fn write_failed(&self, e: &std::io::Error) {
        if !self.failed.replace(true) {
            tracing::warn!(error = %e, "cannot write the event-id filter; duplicates are looked up in the index until it is rebuilt");
        }
    }

    /// Waits for the blocks being written, if any.
    fn finish_writing(&mut self) {
        if let Some(w) = self.writing.take() {
            match w.done.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.write_failed(&e),
                Err(_) => self.write_failed(&std::io::Error::other("the writing thread stopped")),
            }
        }
    }

    /// Once [`MAX_DIRTY`] blocks changed, has a thread write them while the writer goes on (it
    /// waits only if four times as many changed before the previous write ended).
    pub fn write_behind(&mut self) {
        self.read.get_mut().clear();
        if let Some(w) = &self.writing {
            let ended = match w.done.try_recv() {
                Err(TryRecvError::Empty) => None,
                Ok(result) => Some(result),
                Err(TryRecvError::Disconnected) => Some(Err(std::io::Error::other("the writing thread stopped"))),
            };
            if let Some(result) = ended {
                self.writing = None;
                if let Err(e) = result {
                    self.write_failed(&e);
                }
            }
        }
        if !self.should_flush() || self.failed.get() {
            return;
        }
        if self.writing.is_some() {
            if self.dirty.len() < 4 * MAX_DIRTY {
                return;
            }
            self.finish_writing();
        }
        let blocks = Arc::new(std::mem::take(&mut self.dirty));
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let started = self.file.try_clone().and_then(|file| {
            let theirs = Arc::clone(&blocks);
            std::thread::Builder::new()
                .name("trailkeep-idfilter-write".into())
                .spawn(move || {
                    let _ = tx.send(write_blocks(&file, &theirs));
                })
                .map(|_| ())
        });
        match started {
            Ok(()) => self.writing = Some(Writing { blocks, done }),
            Err(_) => {
                // No thread: written here.
                if let Err(e) = write_blocks(&self.file, &blocks) {
                    self.write_failed(&e);
                }
            }
        }
    }

    /// Writes every changed block to the file before returning.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.finish_writing();
        let blocks = std::mem::take(&mut self.dirty);
        if let Err(e) = write_blocks(&self.file, &blocks) {
            self.write_failed(&e);
            return Err(e);
        }
        Ok(())
    }

    /// Bytes the filter holds in memory (its changed blocks).
    pub fn heap_bytes(&self) -> usize {
        let writing = self.writing.as_ref().map_or(0, |w| w.blocks.capacity());
        (self.dirty.capacity() + writing + self.read.borrow().capacity()) * (BLOCK_BYTES as usize + 8)
    }

    /// Bytes of the filter's file.
    pub fn file_bytes(&self) -> u64 {
        HEADER_BYTES + self.nblocks * BLOCK_BYTES
    }

    /// False: the id is not stored. True: it may be.
    pub fn may_contain(&self, uid: &Uuid) -> bool {
        if self.failed.get() {
            return true;
        }
        let (b, bits) = place(uid, self.nblocks);
        match self.block(b) {
            Some(block) => bits.iter().all(|&bit| block[(bit / 64) as usize] & (1 << (bit % 64)) != 0),
            None => true,
        }
    }
}

/// An id's block and its bits in it.
fn place(uid: &Uuid, nblocks: u64) -> (u64, [u16; PROBES as usize]) {
    let (h1, h2) = hashes(uid);
    let mut bits = [0u16; PROBES as usize];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = (mix(h2 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 511) as u16;
    }
    (h1 & (nblocks - 1), bits)
}

fn set(block: &mut Block, bits: &[u16]) {
    for &bit in bits {
        block[(bit / 64) as usize] |= 1 << (bit % 64);
    }
}

/// The writer's filter of every stored event id, grown in the background (see the module
/// documentation).
pub struct Uids {
    current: UidFilter,
    rebuild: Option<Rebuild>,
    data_dir: PathBuf,
    /// After a failed rebuild, none is started before this time.
    retry_at: Option<Instant>,
}

/// A larger filter being built on another thread.
struct Rebuild {
    done: Receiver<anyhow::Result<UidFilter>>,
    /// Ids added since the build started: its snapshot may not hold them.
    since: Vec<Uuid>,
    /// The finished filter while the ids in `since` are added to it, `applied` of them so far.
    built: Option<UidFilter>,
    applied: usize,
    /// `since.len()` at the previous `maintain`.
    seen: usize,
    started: Instant,
}

/// Ids noted during a build that one `maintain` call adds to the finished filter (at least twice
/// the ids added since the previous call, so the catch-up always ends).
const CATCH_UP: usize = 8_192;

/// Wait after a failed rebuild before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

impl Uids {
    /// The filter of every id in the database in `data_dir` (at start, on the writer's
    /// connection): its file as the last clean stop left it if the log still ends there, else
    /// built again from the stored ids.
    pub fn load(conn: &Connection, data_dir: PathBuf) -> anyhow::Result<Self> {
        let path = data_dir.join(FILE);
        let _ = std::fs::remove_file(data_dir.join(BUILDING));
        let current = match UidFilter::open_clean(&path, &log_end(conn)?) {
            Some(f) => f,
            None => {
                let started = Instant::now();
                let f = UidFilter::build(conn, &path)?;
                tracing::info!(ids = f.count, ms = started.elapsed().as_millis() as u64, "event-id filter built");
                f
            }
        };
        Ok(Self { current, rebuild: None, data_dir, retry_at: None })
    }

    pub fn insert(&mut self, uid: &Uuid) {
        self.current.insert(uid);
        if let Some(r) = &mut self.rebuild {
            r.since.push(*uid);
        }
    }

    /// False: the id is not stored. True: it may be.
    pub fn may_contain(&self, uid: &Uuid) -> bool {
        self.current.may_contain(uid)
    }

    /// Called by the writer between transactions: writes the changed blocks once there are
    /// enough; adds the ids noted meanwhile to a finished rebuild, a bounded number per call, and
    /// swaps it in once it has them all; or starts a rebuild when the filter is full or its file
    /// failed. Never waits for the database.
    pub fn maintain(&mut self) {
        self.current.write_behind();
        if let Some(r) = &mut self.rebuild {
            if r.built.is_none() {
                match r.done.try_recv() {
                    Ok(Ok(filter)) => r.built = Some(filter),
                    Err(TryRecvError::Empty) => {}
                    Ok(Err(e)) => return self.failed(&e.to_string()),
                    Err(TryRecvError::Disconnected) => return self.failed("the rebuild thread stopped"),
                }
            }
            let added = r.since.len() - r.seen;
            r.seen = r.since.len();
            let Some(filter) = &mut r.built else { return };
            let end = r.since.len().min(r.applied + CATCH_UP.max(2 * added));
            for uid in &r.since[r.applied..end] {
                filter.insert(uid);
            }
            filter.write_behind();
            r.applied = end;
            if r.applied == r.since.len() {
                // Renamed with its changed blocks still in memory or being written: the file is
                // trusted again only after a clean stop.
                let placed = if filter.failed.get() {
                    Err(std::io::Error::other("the new filter file failed"))
                } else {
                    std::fs::rename(self.data_dir.join(BUILDING), self.data_dir.join(FILE))
                };
                if let Err(e) = placed {
                    return self.failed(&e.to_string());
                }
                if let Some(filter) = r.built.take() {
                    tracing::info!(
                        ids = filter.count,
                        capacity = filter.capacity,
                        build_ms = r.started.elapsed().as_millis() as u64,
                        noted = r.since.len(),
                        "event-id filter rebuilt"
                    );
                    self.current = filter;
                }
                self.rebuild = None;
            }
            return;
        }
        if (self.current.is_full() || self.current.failed.get()) && self.retry_at.is_none_or(|t| Instant::now() >= t) {
            self.start_rebuild();
        }
    }

    /// Writes the changed blocks and records where the log ends, so that the next start uses the
    /// file as it is (the writer, stopping cleanly after its last commit).
    pub fn close(&mut self, conn: &Connection) {
        self.rebuild = None;
        let _ = std::fs::remove_file(self.data_dir.join(BUILDING));
        let closed = log_end(conn).map_err(anyhow::Error::from).and_then(|end| Ok(self.current.close(&end)?));
        if let Err(e) = closed {
            tracing::warn!(error = %e, "cannot close the event-id filter; it is built again at the next start");
        }
    }

    fn failed(&mut self, error: &str) {
        // The old filter stays: still no false negatives, only more false positives.
        tracing::warn!(error, "cannot rebuild the event-id filter; trying again in a minute");
        self.rebuild = None;
        let _ = std::fs::remove_file(self.data_dir.join(BUILDING));
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
    }

    fn start_rebuild(&mut self) {
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let dir = self.data_dir.clone();
        let spawned = std::thread::Builder::new().name("trailkeep-idfilter".into()).spawn(move || {
            let built = super::open_ro(&dir)
                .map_err(anyhow::Error::from)
                .and_then(|conn| UidFilter::build(&conn, &dir.join(BUILDING)));
            let _ = tx.send(built);
        });
        match spawned {
            Ok(_) => {
                self.rebuild =
                    Some(Rebuild { done, since: Vec::new(), built: None, applied: 0, seen: 0, started: Instant::now() })
            }
            Err(e) => self.failed(&e.to_string()),
        }
    }

    /// Starts a rebuild now, full or not (`examples/memlab.rs` measures the writer's side of one).
    pub fn rebuild_now(&mut self) {
        if self.rebuild.is_none() {
            self.start_rebuild();
        }
    }

    /// Whether a rebuild is running (tests).
    pub fn rebuilding(&self) -> bool {
        self.rebuild.is_some()
    }

    /// (ids added, capacity) of the filter in use (tests and figures).
    pub fn fill(&self) -> (usize, usize) {
        (self.current.count, self.current.capacity)
    }

    /// Bytes of the filter in use held in memory (its changed blocks).
    pub fn heap_bytes(&self) -> usize {
        self.current.heap_bytes()
    }

    /// Bytes of the filter's file.
    pub fn file_bytes(&self) -> u64 {
        self.current.file_bytes()
    }
}

/// Two independent 64-bit hashes of the id (UUIDv7 ids start with a timestamp, so the bytes are
/// mixed rather than used as they are); the second is odd, so the probes cycle through all bits.
fn hashes(uid: &Uuid) -> (u64, u64) {
    let b = uid.as_bytes();
    let hi = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let lo = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    let h1 = mix(hi ^ mix(lo));
    let h2 = mix(h1 ^ lo) | 1;
    (h1, h2)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
impl UidFilter {
    /// An empty filter for `ids` ids in a new file at `path`.
    fn with_capacity(path: &Path, ids: usize) -> Self {
        let capacity = ids.max(MIN_CAPACITY).next_power_of_two();
        let nblocks = (capacity * BITS_PER_ID) as u64 / (BLOCK_WORDS as u64 * 64);
        let file = open_rw(path, true).unwrap();
        file.set_len(HEADER_BYTES + nblocks * BLOCK_BYTES).unwrap();
        let f = Self {
            file,
            nblocks,
            count: 0,
            capacity,
            dirty: Default::default(),
            writing: None,
            read: Default::default(),
            failed: Cell::new(false),
        };
        f.write_header(None).unwrap();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_id(conn: &Connection, seq: i64, id: &Uuid) {
        conn.execute(
            "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                read_only, type, buffer, hash, envelope)
             VALUES (?1, ?2, 0, ?1, ?1, 1, 1, 1, 1, 0, 0, 0, randomblob(32), '{}')",
            rusqlite::params![seq, &id.as_bytes()[..]],
        )
        .unwrap();
    }

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        conn.execute("INSERT INTO strings(id, value) VALUES (1, 'x')", []).unwrap();
        (dir, conn)
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = UidFilter::with_capacity(&dir.path().join(FILE), 100_000);
        let stored: Vec<Uuid> =
            (0..100_000).map(|i| if i % 2 == 0 { Uuid::new_v4() } else { Uuid::now_v7() }).collect();
        for (i, u) in stored.iter().enumerate() {
            f.insert(u);
            if i == 50_000 {
                f.flush().unwrap();
            }
        }
        assert!(stored.iter().all(|u| f.may_contain(u)), "from memory and from the file");
        f.flush().unwrap();
        assert!(f.dirty.is_empty());
        assert!(stored.iter().all(|u| f.may_contain(u)), "from the file");
        assert!(!f.failed.get());
        assert!(!f.is_full());
        let false_positives = (0..200_000).filter(|_| f.may_contain(&Uuid::new_v4())).count();
        // 16 bits and 8 probes per id in blocks of 512 bits: ~0.1% expected at capacity (this
        // filter is at 76%).
        assert!(false_positives < 400, "{false_positives} false positives in 200,000");
    }

    #[test]
    fn builds_from_every_stored_id_and_reports_when_full() {
        let (dir, conn) = database();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for (seq, id) in ids.iter().enumerate() {
            store_id(&conn, seq as i64 * 5_000, id);
        }
        let mut f = UidFilter::build(&conn, &dir.path().join(FILE)).unwrap();
        assert!(ids.iter().all(|u| f.may_contain(u)));
        assert_eq!((f.count, f.capacity), (3, MIN_CAPACITY));
        assert_eq!(f.file_bytes(), HEADER_BYTES + (MIN_CAPACITY * BITS_PER_ID / 8) as u64);
        for _ in 0..MIN_CAPACITY {
            f.insert(&Uuid::new_v4());
        }
        assert!(f.is_full());
    }

    /// The process holds at most the changed blocks: `maintain` has them written once there are
    /// [`MAX_DIRTY`].
    #[test]
    fn memory_stays_bounded_as_ids_are_added() {
        let (dir, conn) = database();
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        let ids: Vec<Uuid> = (0..3 * MAX_DIRTY).map(|_| Uuid::new_v4()).collect();
        for chunk in ids.chunks(1000) {
            chunk.iter().for_each(|u| uids.insert(u));
            uids.maintain();
            // Up to four times the limit while the previous blocks are being written.
            assert!(uids.current.dirty.len() < 4 * MAX_DIRTY + 1000);
            assert!(uids.heap_bytes() < 16 << 20, "{}", uids.heap_bytes());
        }
        assert!(ids.iter().all(|u| uids.may_contain(u)));
        assert!(!uids.current.failed.get(), "answered from the filter, not as a failed one");
        uids.current.flush().unwrap();
        assert!(uids.current.dirty.is_empty() && uids.current.writing.is_none());
        assert!(ids.iter().all(|u| uids.may_contain(u)));
        assert!(!uids.current.failed.get());
    }

    /// A clean stop leaves a file the next start uses as it is; a start after a crash, or on a
    /// log that moved on or was replaced, builds it again from the stored ids.
    #[test]
    fn the_file_is_used_again_only_where_the_log_still_ends() {
        let (dir, conn) = database();
        let path = dir.path().join(FILE);
        let before: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
        for (seq, id) in before.iter().enumerate() {
            store_id(&conn, seq as i64, id);
        }
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        // Ids the writer added (stored): a clean stop keeps them in the file.
        let added: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for (i, id) in added.iter().enumerate() {
            uids.insert(id);
            store_id(&conn, 10 + i as i64, id);
        }
        // An id in the filter only (a rolled-back transaction): found again only when the file
        // is used as it was left.
        let marker = Uuid::new_v4();
        uids.insert(&marker);
        uids.close(&conn);
        drop(uids);
        let uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        assert!(uids.may_contain(&marker), "the cleanly closed file is used as it is");
        assert!(before.iter().chain(&added).all(|u| uids.may_contain(u)));
        drop(uids);
        // No clean stop since that start (a crash): built again.
        let uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        assert!(!uids.may_contain(&marker), "built again after a crash");
        let mut uids = uids;
        uids.insert(&marker);
        uids.close(&conn);
        drop(uids);
        // The log moved on while the server was stopped: built again, with the new id.
        let later = Uuid::new_v4();
        store_id(&conn, 15, &later);
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        assert!(!uids.may_contain(&marker) && uids.may_contain(&later));
        uids.insert(&marker);
        uids.close(&conn);
        drop(uids);
        // The same length with another newest event (a different database): built again.
        conn.execute("UPDATE events SET hash = randomblob(32) WHERE seq = 15", []).unwrap();
        let uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        assert!(!uids.may_contain(&marker));
        // A damaged file is built again too.
        let mut uids = uids;
        uids.insert(&marker);
        uids.close(&conn);
        drop(uids);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(HEADER_BYTES + 64).unwrap();
        let uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        assert!(!uids.may_contain(&marker) && uids.may_contain(&later));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A filter whose file cannot be read answers "may be stored" for every id (the index
    /// decides) and is rebuilt.
    #[test]
    fn a_failing_file_gives_no_false_negative() {
        let (dir, conn) = database();
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        let id = Uuid::new_v4();
        // A file opened write-only cannot be read.
        uids.current.file = std::fs::OpenOptions::new().write(true).open(dir.path().join(FILE)).unwrap();
        assert!(uids.may_contain(&id));
        assert!(uids.current.failed.get());
        assert!(uids.may_contain(&Uuid::new_v4()));
        uids.maintain();
        assert!(uids.rebuilding(), "a failed file is rebuilt");
        while uids.rebuilding() {
            std::thread::sleep(std::time::Duration::from_millis(5));
            uids.maintain();
        }
        assert!(!uids.current.failed.get());
        assert!(!uids.may_contain(&id));
    }

    /// A full filter is rebuilt on another thread while the writer goes on: every id stored
    /// before, during and after the rebuild is found, before and after the swap.
    #[test]
    fn rebuilds_in_the_background_without_false_negatives() {
        let (dir, conn) = database();
        let before: Vec<Uuid> = (0..MIN_CAPACITY as i64 + 1).map(|_| Uuid::new_v4()).collect();
        conn.execute_batch("BEGIN").unwrap();
        for (seq, id) in before.iter().enumerate() {
            store_id(&conn, seq as i64, id);
        }
        conn.execute_batch("COMMIT").unwrap();
        // Built with room for a quarter more (a power of two); fill it up with ids the "writer" stores.
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        let (count, capacity) = uids.fill();
        assert_eq!((count, capacity), (before.len(), 2 * MIN_CAPACITY));
        let mut stored = before.clone();
        let store = |uids: &mut Uids, stored: &mut Vec<Uuid>, n: usize| {
            conn.execute_batch("BEGIN").unwrap();
            for _ in 0..n {
                let id = Uuid::new_v4();
                uids.insert(&id);
                store_id(&conn, stored.len() as i64, &id);
                stored.push(id);
            }
            conn.execute_batch("COMMIT").unwrap();
        };
        store(&mut uids, &mut stored, capacity - count + 1);
        uids.maintain();
        assert!(uids.rebuilding(), "a full filter starts a rebuild");
        // Transactions go on during the rebuild; their ids are found all along.
        let mut rounds = 0;
        while uids.rebuilding() {
            store(&mut uids, &mut stored, 500);
            uids.maintain();
            assert!(stored.iter().rev().take(1000).all(|u| uids.may_contain(u)));
            rounds += 1;
            assert!(rounds < 10_000, "the rebuild did not finish");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(stored.iter().all(|u| uids.may_contain(u)), "no false negative after the swap");
        let (count, capacity) = uids.fill();
        assert!(count >= stored.len() && capacity >= (stored.len() - 500 * rounds) * 5 / 4, "{count} {capacity}");
        assert!(!uids.current.is_full() && !uids.current.failed.get());
        assert!(!dir.path().join(BUILDING).exists());
        assert_eq!(std::fs::metadata(dir.path().join(FILE)).unwrap().len(), uids.file_bytes());
    }

    /// The ids noted during a build reach the finished filter a bounded number per call, and it is
    /// swapped in only once it has them all (ids added during the catch-up included).
    #[test]
    fn catch_up_is_bounded_and_complete() {
        let (dir, conn) = database();
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        let noted: Vec<Uuid> = (0..12 * CATCH_UP + 5).map(|_| Uuid::new_v4()).collect();
        let (_tx, done) = std::sync::mpsc::sync_channel(1);
        uids.rebuild = Some(Rebuild {
            done,
            since: noted.clone(),
            built: Some(UidFilter::with_capacity(&dir.path().join(BUILDING), 8 * MIN_CAPACITY)),
            applied: 0,
            seen: noted.len(),
            started: Instant::now(),
        });
        for id in &noted {
            uids.current.insert(id);
        }
        let mut all = noted;
        let mut calls = 0;
        while uids.rebuilding() {
            let id = Uuid::new_v4();
            uids.insert(&id);
            all.push(id);
            uids.maintain();
            calls += 1;
            assert!(all.iter().all(|u| uids.may_contain(u)));
            assert!(calls < 100);
        }
        assert_eq!(calls, 13, "8,192 ids per call");
        assert_eq!(uids.fill().1, 8 * MIN_CAPACITY, "the new filter is in use");
        assert!(all.iter().all(|u| uids.may_contain(u)));
        assert!(!uids.current.failed.get());
    }

    /// A rebuild that cannot read the database leaves the old filter in place.
    #[test]
    fn failed_rebuild_keeps_the_old_filter() {
        let (dir, conn) = database();
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        uids.data_dir = dir.path().join("elsewhere");
        let ids: Vec<Uuid> = (0..=MIN_CAPACITY).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            uids.insert(id);
        }
        uids.maintain();
        for _ in 0..1000 {
            if !uids.rebuilding() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            uids.maintain();
        }
        assert!(!uids.rebuilding());
        assert!(uids.retry_at.is_some());
        assert!(ids.iter().all(|u| uids.may_contain(u)));
        uids.maintain();
        assert!(!uids.rebuilding(), "no new try before the retry time");
    }
}
