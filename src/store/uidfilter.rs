//! An in-memory Bloom filter over every stored event id. The event-id index is clustered by
//! segment (migration 0005), so "is this id stored?" would otherwise probe every segment; the
//! filter answers "no" for almost every new id (false positives ≈ 0.06% at its capacity) and only
//! a "maybe" is confirmed against the index, newest segment first. Writer thread only.
//!
//! When the filter holds more ids than it was sized for, a filter twice as large is built from the
//! database on a thread of its own (`Uids`): a scan of every stored id, seconds at millions of ids,
//! that the writer does not wait for. Meanwhile the writer keeps answering from the old filter
//! (more false positives, never a false negative) and notes every id it adds; once built, the new
//! filter gets those ids too, a bounded number between two transactions (`CATCH_UP`), and is
//! swapped in when it has them all. The scan reads a snapshot
//! taken after the writer started noting, so every stored id is in the snapshot or in the notes.
//!
//! An id added for a transaction that rolls back stays in the filter: that costs a false positive,
//! never a missed duplicate.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use uuid::Uuid;

/// Filter bits per id at capacity.
const BITS_PER_ID: usize = 16;
/// Probes per id.
const PROBES: u64 = 8;
/// The smallest capacity (ids).
const MIN_CAPACITY: usize = 1 << 16;

pub struct UidFilter {
    bits: Vec<u64>,
    mask: u64,
    count: usize,
    capacity: usize,
}

impl UidFilter {
    pub fn with_capacity(ids: usize) -> Self {
        let capacity = ids.max(MIN_CAPACITY).next_power_of_two();
        let nbits = capacity * BITS_PER_ID;
        Self { bits: vec![0; nbits / 64], mask: nbits as u64 - 1, count: 0, capacity }
    }

    /// Builds the filter from every id in the database, with room for a quarter more at least
    /// (capacities are powers of two, so a rebuild doubles it): 16 bits per id at capacity, 32 MiB
    /// at 10,000,000 ids where room for as many again took 64 MiB.
    pub fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let n = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as usize;
        let mut filter = Self::with_capacity(n + n / 4);
        let mut stmt = conn.prepare("SELECT uid FROM events INDEXED BY events_seg_uid")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            if let Some(uid) = r.get_ref(0)?.as_blob().ok().and_then(|b| Uuid::from_slice(b).ok()) {
                filter.insert(&uid);
            }
        }
        Ok(filter)
    }

    /// More ids than the filter was sized for: the caller rebuilds it (`load`) to keep false
    /// positives rare.
    pub fn is_full(&self) -> bool {
        self.count > self.capacity
    }

    pub fn insert(&mut self, uid: &Uuid) {
        let (h1, h2) = hashes(uid);
        for i in 0..PROBES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.count += 1;
    }

    /// Bytes of the filter's bits.
    pub fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8
    }

    /// False: the id is not stored. True: it may be.
    pub fn may_contain(&self, uid: &Uuid) -> bool {
        let (h1, h2) = hashes(uid);
        (0..PROBES).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
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
    done: Receiver<rusqlite::Result<UidFilter>>,
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
/// the ids added since the previous call, so the catch-up always ends): ~3 ms at 10M ids.
const CATCH_UP: usize = 32_768;

/// Wait after a failed rebuild before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

impl Uids {
    /// Builds the filter from every id in the database in `data_dir` (at start, on the writer's
    /// connection).
    pub fn load(conn: &Connection, data_dir: PathBuf) -> rusqlite::Result<Self> {
        Ok(Self { current: UidFilter::load(conn)?, rebuild: None, data_dir, retry_at: None })
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

    /// Called by the writer between transactions: adds the ids noted meanwhile to a finished
    /// rebuild, a bounded number per call, and swaps it in once it has them all; or starts a
    /// rebuild when the filter is full. Never waits for the database.
    pub fn maintain(&mut self) {
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
            r.applied = end;
            if r.applied == r.since.len()
                && let Some(filter) = r.built.take()
            {
                tracing::info!(
                    ids = filter.count,
                    capacity = filter.capacity,
                    build_ms = r.started.elapsed().as_millis() as u64,
                    noted = r.since.len(),
                    "event-id filter rebuilt"
                );
                self.current = filter;
                self.rebuild = None;
            }
            return;
        }
        if self.current.is_full() && self.retry_at.is_none_or(|t| Instant::now() >= t) {
            self.start_rebuild();
        }
    }

    fn failed(&mut self, error: &str) {
        // The old filter stays: still no false negatives, only more false positives.
        tracing::warn!(error, "cannot rebuild the event-id filter; trying again in a minute");
        self.rebuild = None;
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
    }

    fn start_rebuild(&mut self) {
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let dir = self.data_dir.clone();
        let spawned = std::thread::Builder::new().name("trailkeep-idfilter".into()).spawn(move || {
            let _ = tx.send(super::open_ro(&dir).and_then(|conn| UidFilter::load(&conn)));
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

    /// Bytes of the filter in use.
    pub fn heap_bytes(&self) -> usize {
        self.current.heap_bytes()
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
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut f = UidFilter::with_capacity(100_000);
        let stored: Vec<Uuid> =
            (0..100_000).map(|i| if i % 2 == 0 { Uuid::new_v4() } else { Uuid::now_v7() }).collect();
        for u in &stored {
            f.insert(u);
        }
        assert!(stored.iter().all(|u| f.may_contain(u)));
        assert!(!f.is_full());
        let false_positives = (0..200_000).filter(|_| f.may_contain(&Uuid::new_v4())).count();
        // 16 bits and 8 probes per id: ~0.06% expected at capacity (this filter is at 76%).
        assert!(false_positives < 400, "{false_positives} false positives in 200,000");
    }

    #[test]
    fn loads_every_stored_id_and_reports_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        conn.execute("INSERT INTO strings(id, value) VALUES (1, 'x')", []).unwrap();
        for (seq, id) in ids.iter().enumerate() {
            conn.execute(
                "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                    read_only, type, buffer, hash, envelope)
                 VALUES (?1, ?2, 0, ?1, ?1, 1, 1, 1, 1, 0, 0, 0, zeroblob(32), '{}')",
                rusqlite::params![seq as i64 * 5_000, &id.as_bytes()[..]],
            )
            .unwrap();
        }
        let mut f = UidFilter::load(&conn).unwrap();
        assert!(ids.iter().all(|u| f.may_contain(u)));
        assert_eq!(f.capacity, MIN_CAPACITY);
        for _ in 0..MIN_CAPACITY {
            f.insert(&Uuid::new_v4());
        }
        assert!(f.is_full());
    }

    fn store_id(conn: &Connection, seq: i64, id: &Uuid) {
        conn.execute(
            "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                read_only, type, buffer, hash, envelope)
             VALUES (?1, ?2, 0, ?1, ?1, 1, 1, 1, 1, 0, 0, 0, zeroblob(32), '{}')",
            rusqlite::params![seq, &id.as_bytes()[..]],
        )
        .unwrap();
    }

    /// A full filter is rebuilt on another thread while the writer goes on: every id stored
    /// before, during and after the rebuild is found, before and after the swap.
    #[test]
    fn rebuilds_in_the_background_without_false_negatives() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        conn.execute("INSERT INTO strings(id, value) VALUES (1, 'x')", []).unwrap();
        let before: Vec<Uuid> = (0..MIN_CAPACITY as i64 + 1).map(|_| Uuid::new_v4()).collect();
        conn.execute_batch("BEGIN").unwrap();
        for (seq, id) in before.iter().enumerate() {
            store_id(&conn, seq as i64, id);
        }
        conn.execute_batch("COMMIT").unwrap();
        // Loaded with room for a quarter more (a power of two); fill it up with ids the "writer" stores.
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
        assert!(!uids.current.is_full());
    }

    /// The ids noted during a build reach the finished filter a bounded number per call, and it is
    /// swapped in only once it has them all (ids added during the catch-up included).
    #[test]
    fn catch_up_is_bounded_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let mut uids = Uids::load(&conn, dir.path().to_path_buf()).unwrap();
        let noted: Vec<Uuid> = (0..3 * CATCH_UP + 5).map(|_| Uuid::new_v4()).collect();
        let (_tx, done) = std::sync::mpsc::sync_channel(1);
        uids.rebuild = Some(Rebuild {
            done,
            since: noted.clone(),
            built: Some(UidFilter::with_capacity(8 * MIN_CAPACITY)),
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
        assert_eq!(calls, 4, "32,768 ids per call");
        assert_eq!(uids.fill().1, 8 * MIN_CAPACITY, "the new filter is in use");
        assert!(all.iter().all(|u| uids.may_contain(u)));
    }

    /// A rebuild that cannot read the database leaves the old filter in place.
    #[test]
    fn failed_rebuild_keeps_the_old_filter() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let mut uids = Uids::load(&conn, dir.path().join("elsewhere")).unwrap();
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
