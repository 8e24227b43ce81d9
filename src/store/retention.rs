//! Retention: events received longer ago than their workspace's period lose their content. The
//! row keeps seq, hash, buffer, workspace and times, so every proof and `trailkeep verify` still
//! pass; the envelope becomes `''`, content columns are cleared, the free-text entry is deleted
//! and `purged_at` is set. Each purge run is itself logged: one event per workspace, declaring how
//! many of its events the run purged and their seq range; `verify` checks that every purged row
//! is covered by such an event. The run's batches add their rows to `purge_pending` in their own
//! transactions; the events are written, and the pending rows deleted, in one transaction at the
//! end of the run (or at the next start of the writer after a crash).
//!
//! Purge events themselves are never purged.
//!
//! The purge runs on the writer thread (see `writer::WriterHandle::purge`), in transactions of
//! at most [`BATCH`] events spread over at most [`MAX_SEGMENTS`] log segments, between group
//! commits: a purge touching many segments never holds appends up for longer than one segment's
//! index updates. Its scans start at a floor (`settings`: `retention_floor` for the default period,
//! `retention_floor_ws:<workspace>` for a workspace's own period) below which every row is purged,
//! so a purge reads the rows it may purge, not the log from its first row. With replication configured (and `[retention] require_replicated`,
//! the default) it never reaches the replication watermark: content not yet in the archive stays.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::config::Retention;
use crate::event::system::{PURGE_ACTION, PurgeInfo};

/// Most events purged in one transaction: about 30 ms of the writer's time (a request that
/// arrives during a batch waits for it).
pub const BATCH: usize = 1_024;
/// Most log segments one purge transaction touches. The transaction rewrites the substring-index
/// rows (without the purged events) and rebuilds the summaries of each: a retention period on a
/// busy workspace, whose events are in every segment, would otherwise hold the writer for
/// seconds.
pub const MAX_SEGMENTS: usize = 1;

/// Where a batch whose first row is `first` stops (exclusive): [`MAX_SEGMENTS`] segments on, so
/// its query reads no row it will not purge.
fn segment_cap(first: i64) -> i64 {
    ((first >> super::SEG_SHIFT) + MAX_SEGMENTS as i64) << super::SEG_SHIFT
}

/// The outcome of one purge run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PurgeReport {
    /// Events whose content was removed, in all.
    pub purged: u64,
    /// Per workspace.
    pub workspaces: BTreeMap<String, u64>,
    /// Purge events appended to the log.
    pub purge_events: u64,
}

/// A row to purge: (seq, origin, envelope, config).
pub type Row = (i64, i64, String, i64);
/// One batch of rows to purge: (workspace, period, rows).
pub type Batch = Vec<(String, i64, Vec<Row>)>;

/// The id of an interned string, if it was ever stored.
pub fn string_id(conn: &Connection, value: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM strings WHERE value = ?1")?.query_row([value], |r| r.get(0)).optional()
}

/// The first seq received at or after `t` (µs); seqs are contiguous and `received_at` grows
/// strictly with seq, so this is a binary search over primary-key lookups.
pub fn boundary_seq(conn: &Connection, t: i64) -> rusqlite::Result<i64> {
    let n: i64 = conn.query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached("SELECT received_at FROM events WHERE seq = ?1")?;
    let (mut lo, mut hi) = (0i64, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at: i64 = stmt.query_row([mid], |r| r.get(0))?;
        if at < t { lo = mid + 1 } else { hi = mid }
    }
    Ok(lo)
}

/// The next batch of rows due for purging under `r` at `now`, or an empty batch when done.
/// `floor` (settings `retention_floor`) is where the default-period scan resumes; it restarts at
/// 0 whenever the set of workspaces with their own period changes.
pub fn next_batch(conn: &Connection, r: &Retention, now: i64) -> rusqlite::Result<(Batch, Option<i64>)> {
    // (seq, origin, envelope, workspace, config)
    type Found = (i64, i64, String, i64, i64);
    let rows = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<Vec<Found>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let it = stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        it.collect()
    };
    // Purge events are never purged: `verify` needs what they declare (they hold no personal data).
    let keep = string_id(conn, PURGE_ACTION)?.unwrap_or(-1);
    // With `require_replicated`, nothing at or above the replication watermark is purged.
    let hold = match &r.replicated_to {
        Some(target) => super::replication::replicated_seq(conn, target)?,
        None => i64::MAX,
    };
    // Workspaces with their own period.
    for (ws, period) in &r.workspaces {
        if *period == i64::MAX {
            continue;
        }
        let Some(ws_id) = string_id(conn, ws)? else { continue };
        let bound = boundary_seq(conn, now.saturating_sub(*period))?.min(hold);
        // Every row of the workspace below its floor is purged (or a purge event): the scans
        // start there rather than at the first row of the log.
        let floor_key = format!("retention_floor_ws:{ws}");
        let floor: i64 =
            super::get_setting(conn, &floor_key)?.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        let due = "FROM events WHERE workspace = ?1 AND seq >= ?2 AND seq < ?3 AND purged_at IS NULL
                        AND NOT (origin = 2 AND action = ?4)";
        let first: Option<i64> = conn
            .prepare_cached(&format!("SELECT seq {due} ORDER BY seq LIMIT 1"))?
            .query_row(params![ws_id, floor, bound, keep], |r| r.get(0))
            .optional()?;
        let Some(first) = first else {
            if bound > floor {
                super::put_setting(conn, &floor_key, bound.to_string().as_bytes())?;
            }
            continue;
        };
        let cap = bound.min(segment_cap(first));
        let found = rows(
            &format!("SELECT seq, origin, envelope, workspace, config {due} ORDER BY seq LIMIT {BATCH}"),
            &[&ws_id, &first, &cap, &keep],
        )?;
        // Purged in this transaction: everything due below the cap, or up to the last row taken.
        let next_floor = if found.len() == BATCH { found.last().map_or(cap, |r| r.0 + 1) } else { cap };
        super::put_setting(conn, &floor_key, next_floor.to_string().as_bytes())?;
        if !found.is_empty() {
            let batch = vec![(ws.clone(), *period, found.into_iter().map(|(s, o, e, _, c)| (s, o, e, c)).collect())];
            return Ok((batch, None));
        }
    }
    // Everything else, under the default period.
    let Some(period) = r.default else { return Ok((Vec::new(), None)) };
    let fingerprint = r.workspaces.keys().cloned().collect::<Vec<_>>().join("\n");
    let same = super::get_setting(conn, "retention_workspaces")?.is_some_and(|v| v == fingerprint.as_bytes());
    let floor: i64 = if same {
        super::get_setting(conn, "retention_floor")?.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0)
    } else {
        0
    };
    let mut exempt = Vec::new();
    for ws in r.workspaces.keys() {
        if let Some(id) = string_id(conn, ws)? {
            exempt.push(id.to_string());
        }
    }
    let bound = boundary_seq(conn, now.saturating_sub(period))?.min(hold);
    if floor >= bound {
        return Ok((Vec::new(), None));
    }
    let due = format!(
        "FROM events WHERE seq >= ?1 AND seq < ?2 AND purged_at IS NULL AND workspace NOT IN ({})
               AND NOT (origin = 2 AND action = ?3)",
        if exempt.is_empty() { "-1".to_string() } else { exempt.join(",") }
    );
    let first: Option<i64> = conn
        .prepare_cached(&format!("SELECT seq {due} ORDER BY seq LIMIT 1"))?
        .query_row(params![floor, bound, keep], |r| r.get(0))
        .optional()?;
    let Some(first) = first else { return Ok((Vec::new(), Some(bound))) };
    let cap = bound.min(segment_cap(first));
    let found = rows(
        &format!("SELECT seq, origin, envelope, workspace, config {due} ORDER BY seq LIMIT {BATCH}"),
        &[&floor, &cap, &keep],
    )?;
    // Resume after this batch next time (or at its cap when nothing is left below it).
    let next_floor = if found.len() == BATCH { found.last().map_or(cap, |r| r.0 + 1) } else { cap };
    let mut names: BTreeMap<i64, String> = BTreeMap::new();
    let mut groups: Batch = Vec::new();
    for (seq, origin, envelope, ws_id, config) in found {
        if let std::collections::btree_map::Entry::Vacant(v) = names.entry(ws_id) {
            v.insert(conn.query_row("SELECT value FROM strings WHERE id = ?1", [ws_id], |r| r.get(0))?);
        }
        let name = &names[&ws_id];
        match groups.iter_mut().find(|(w, _, _)| w == name) {
            Some((_, _, g)) => g.push((seq, origin, envelope, config)),
            None => groups.push((name.clone(), period, vec![(seq, origin, envelope, config)])),
        }
    }
    Ok((groups, Some(next_floor)))
}

/// The free-text body of a row to purge, whose entry the caller deletes with [`forget_text`].
pub fn purged_text(row: &Row, text_of: &super::FtsText) -> Option<String> {
    let (seq, origin, envelope, config) = (row.0, row.1, row.2.as_str(), row.3);
    match serde_json::from_str::<serde_json::Value>(envelope) {
        Ok(v) => v
            .get("event")
            .and_then(|e| e.as_object())
            .map(|ev| text_of(crate::event::Origin::from_i64(origin), config, ev)),
        Err(e) => {
            tracing::warn!(seq, error = %e, "purging an event whose envelope does not parse; its free-text entry stays");
            None
        }
    }
}

/// Removes the content of the rows `seqs` (inside the caller's transaction): each row is deleted
/// and inserted again without its content. An UPDATE that shrinks a row leaves its page as full
/// as it was (SQLite merges pages only after a delete), so a purged log kept ~750 bytes of empty
/// page per purged event; deleted rows free their pages for the rows that follow.
pub fn clear_rows(conn: &Connection, empty_id: i64, seqs: Vec<i64>, now: i64) -> rusqlite::Result<()> {
    use rusqlite::types::Value;
    let seqs = std::rc::Rc::new(seqs.into_iter().map(Value::from).collect::<Vec<_>>());
    let kept = conn
        .prepare_cached(
            "SELECT seq, uid, origin, received_at, event_time, workspace, read_only, type, buffer, hash, config
             FROM events WHERE seq IN rarray(?1)",
        )?
        .query_map([&seqs], |r| (0..11).map(|i| r.get::<_, Value>(i)).collect::<rusqlite::Result<Vec<Value>>>())?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    conn.prepare_cached("DELETE FROM events WHERE seq IN rarray(?1)")?.execute([&seqs])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, read_only, type, buffer, hash,
                            config, actor, action, event_source, envelope, purged_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?12, '', ?13)",
    )?;
    for row in &kept {
        let mut values: Vec<&dyn rusqlite::ToSql> = row.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        values.push(&empty_id);
        values.push(&now);
        insert.execute(values.as_slice())?;
    }
    conn.prepare_cached("DELETE FROM event_fields WHERE seq IN rarray(?1)")?.execute([seqs])?;
    Ok(())
}

/// Deletes purged rows' free-text entries: `(seq, body)` as [`purged_text`] gave them. Run
/// it last in the transaction: FTS5 writes its pending changes out as a new index segment at
/// every statement that opens a statement journal (a DELETE or UPDATE of `events`, whose foreign
/// keys may abort it, among others), so deletes interleaved with the row updates wrote one
/// segment per purged row and spent most of the purge merging them.
pub fn forget_text(conn: &Connection, bodies: &[(i64, String)]) -> rusqlite::Result<()> {
    let mut delete = conn.prepare_cached("INSERT INTO events_fts(events_fts, rowid, body) VALUES('delete', ?1, ?2)")?;
    for (seq, body) in bodies {
        delete.execute(params![seq, body])?;
    }
    Ok(())
}

/// Adds a batch's purged rows of one workspace to what its next purge event declares (inside the
/// batch's transaction; table `purge_pending`).
pub fn add_pending(conn: &Connection, info: &PurgeInfo) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO purge_pending(workspace, first_seq, last_seq, count, cutoff, period) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(workspace) DO UPDATE SET first_seq = min(first_seq, excluded.first_seq),
             last_seq = max(last_seq, excluded.last_seq), count = count + excluded.count,
             cutoff = max(cutoff, excluded.cutoff), period = excluded.period",
    )?
    .execute(params![info.workspace, info.first_seq, info.last_seq, info.count as i64, info.cutoff, info.period])?;
    Ok(())
}

/// Takes what the pending purge events declare, one per workspace (inside the caller's
/// transaction, which logs them).
pub fn take_pending(conn: &Connection) -> rusqlite::Result<Vec<PurgeInfo>> {
    let pending = conn
        .prepare_cached(
            "SELECT workspace, first_seq, last_seq, count, cutoff, period FROM purge_pending ORDER BY workspace",
        )?
        .query_map([], |r| {
            Ok(PurgeInfo {
                workspace: r.get(0)?,
                first_seq: r.get(1)?,
                last_seq: r.get(2)?,
                count: r.get::<_, i64>(3)? as u64,
                cutoff: r.get(4)?,
                period: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    conn.prepare_cached("DELETE FROM purge_pending")?.execute([])?;
    Ok(pending)
}

/// Saves where the default-period scan resumes.
pub fn save_floor(conn: &Connection, r: &Retention, floor: i64) -> rusqlite::Result<()> {
    let fingerprint = r.workspaces.keys().cloned().collect::<Vec<_>>().join("\n");
    conn.execute(
        "INSERT INTO settings(key, value) VALUES ('retention_floor', ?1), ('retention_workspaces', ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![floor.to_string().into_bytes(), fingerprint.into_bytes()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_ends_after_its_first_segments() {
        let seg = |s: i64| s << crate::store::SEG_SHIFT;
        assert_eq!(segment_cap(0), seg(MAX_SEGMENTS as i64));
        assert_eq!(segment_cap(seg(7) + 4095), seg(7 + MAX_SEGMENTS as i64));
        assert_eq!(segment_cap(seg(7)), seg(7 + MAX_SEGMENTS as i64));
    }
}
