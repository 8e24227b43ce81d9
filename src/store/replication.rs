//! SQL of replication (`crate::replication`): the watermark table (migration 0009), planning the
//! next object from the buffers table, and reading one object's buffers and events.
//!
//! The watermark is not a log table: the replication thread writes it on a connection of its own
//! (`open_side_rw`), in one-row transactions, never on the writer's connection, so ingest never
//! waits for object storage; the writer's `BEGIN IMMEDIATE` waits at most for that one commit.

use rusqlite::{Connection, OptionalExtension, params};

/// Where replication to one target stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark {
    /// Buffers (cold-tree leaves) below this are in the target, confirmed.
    pub next_leaf: u64,
    /// Events below this are in the target, confirmed.
    pub next_seq: i64,
    /// The object `[next_leaf, pending_last]` planned before its upload started.
    pub pending_last: Option<u64>,
    /// Objects uploaded to this target so far.
    pub objects: u64,
}

pub fn watermark(conn: &Connection, target: &str) -> rusqlite::Result<Watermark> {
    Ok(conn
        .prepare_cached("SELECT next_leaf, next_seq, pending_last, objects FROM replication WHERE target = ?1")?
        .query_row([target], |r| {
            Ok(Watermark {
                next_leaf: r.get::<_, i64>(0)? as u64,
                next_seq: r.get(1)?,
                pending_last: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                objects: r.get::<_, i64>(3)? as u64,
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// Stores `w` for `target` (one small transaction of its own).
pub fn save_watermark(conn: &Connection, target: &str, w: &Watermark, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO replication(target, next_leaf, next_seq, pending_last, objects, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(target) DO UPDATE SET next_leaf = excluded.next_leaf, next_seq = excluded.next_seq,
             pending_last = excluded.pending_last, objects = excluded.objects, updated_at = excluded.updated_at",
    )?
    .execute(params![
        target,
        w.next_leaf as i64,
        w.next_seq,
        w.pending_last.map(|v| v as i64),
        w.objects as i64,
        now
    ])?;
    Ok(())
}

/// The first seq not yet replicated to `target` (0 when nothing is).
pub fn replicated_seq(conn: &Connection, target: &str) -> rusqlite::Result<i64> {
    Ok(watermark(conn, target)?.next_seq)
}

/// (events, buffers) committed.
pub fn committed(conn: &Connection) -> rusqlite::Result<(i64, u64)> {
    let events: i64 = conn.query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
    let leaves: i64 = conn.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM buffers", [], |r| r.get(0))?;
    Ok((events, leaves as u64))
}

/// The receive time (µs) of event `seq`, if it is stored.
pub fn received_at(conn: &Connection, seq: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT received_at FROM events WHERE seq = ?1")?.query_row([seq], |r| r.get(0)).optional()
}

/// A buffer as replicated (one row of `buffers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferRow {
    pub idx: u64,
    pub first_seq: i64,
    pub count: u64,
    pub buffer_root: Vec<u8>,
    pub root_hash: Vec<u8>,
    pub published_at: i64,
    /// Empty for a root that is not the last of its write transaction.
    pub signature: Vec<u8>,
}

/// The last leaf of the next object starting at `first`: whole buffers below `end`, all of the
/// hour of `first`'s first event, at most `max_events` events (a single larger buffer is an object
/// of its own); `None` when no buffer in `first..end` is committed.
pub fn plan(conn: &Connection, first: u64, end: u64, max_events: u64) -> rusqlite::Result<Option<u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.idx, b.count, e.received_at FROM buffers b JOIN events e ON e.seq = b.first_seq
         WHERE b.idx >= ?1 AND b.idx < ?2 ORDER BY b.idx LIMIT 8192",
    )?;
    let mut rows = stmt.query([first as i64, end as i64])?;
    let (mut last, mut events, mut hour) = (None, 0u64, None);
    while let Some(r) = rows.next()? {
        let (idx, count, at): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let h = crate::time::hour_of(at);
        if last.is_some() && (hour != Some(h) || events + count as u64 > max_events) {
            break;
        }
        hour = Some(h);
        events += count as u64;
        last = Some(idx as u64);
    }
    Ok(last)
}

/// Buffers `first..=last`, in order.
pub fn buffers(conn: &Connection, first: u64, last: u64) -> rusqlite::Result<Vec<BufferRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, first_seq, count, buffer_root, root_hash, published_at, signature FROM buffers
         WHERE idx >= ?1 AND idx <= ?2 ORDER BY idx",
    )?;
    stmt.query_map([first as i64, last as i64], |r| {
        Ok(BufferRow {
            idx: r.get::<_, i64>(0)? as u64,
            first_seq: r.get(1)?,
            count: r.get::<_, i64>(2)? as u64,
            buffer_root: r.get(3)?,
            root_hash: r.get(4)?,
            published_at: r.get(5)?,
            signature: r.get(6)?,
        })
    })?
    .collect()
}
