//! The substring index's storage (migration 0008) and the thread that builds it.
//!
//! Every event's searchable texts (`indexed_texts`, Pangea's bare-term fields) are cut
//! into trigram keys on the thread that submits the event (`writer::WriterHandle::append`). After
//! a commit the writer hands the committed events' keys to the indexer thread, which collects a
//! segment's posting lists in memory (`search::ngram::SegmentBuilder`) and, once the segment's
//! 4,096 events are all committed, encodes its rows and hands them back to the writer, which
//! stores them in its next transaction and moves `ngram_state.indexed_to`. So the writer thread
//! only moves vectors and inserts ~256 rows per 4,096 events; the cutting and the building run on
//! other threads.
//!
//! The indexer reads events back from the database whenever it lacks their keys: after a start
//! (the segment in progress was only in memory, and a log migrated from before 0008 is indexed
//! from scratch) and when the writer could not hand keys over (a full channel: ingest never waits
//! for the index). A purge removes its events from the rows of the stored segments it touched, in
//! its own transaction (`strip_segment`: the rows are decoded, lose the purged offsets and are
//! written back, without reading the segment's events), and the writer rebuilds a segment it
//! receives after a purge touched it from the store rather than storing the indexer's rows, so the
//! index never keeps trigrams of purged content.
//!
//! Groups (migration 0013): as the writer commits segments, the indexer reads a group's stored
//! segment rows back a part at a time and builds the group's rows (`search::ngram::group_part`:
//! per trigram, the group's segments that hold it) — the group in progress again every eighth of
//! a group, a complete group once more with its last segment — which the writer stores like
//! segment rows, recording the newest segment they cover in `grouped_to`. A search reads a
//! group's rows first and skips the covered segments it rules out. Purges leave groups as they are
//! (a superset of what the segments hold: a segment read more, never a match missed).
//!
//! The clustered layout (migration 0015): once every segment of a group is stored, the writer
//! moves the group's segment rows, a few parts per transaction, to `ngram_clustered`, where one
//! part's rows of the group's segments are consecutive ([`Cluster`]); every reader finds a row in
//! either table ([`segment_rows`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use rusqlite::{Connection, params};
use serde_json::{Map, Value};

use super::SEG_SHIFT;
use crate::search::ngram::{self, SEGMENT_EVENTS, SegmentBuilder};

const _: () = assert!(1 << SEG_SHIFT == SEGMENT_EVENTS);
// `row_id` and the clustered layout's SQL take a part as the id's low 8 bits.
const _: () = assert!(ngram::PARTS == 256);

/// Keys handed to the indexer per committed event: (seq, trigram keys).
pub type Keyed = (i64, Vec<u32>);

/// A segment's rows, built by the indexer for the writer to store.
#[derive(Debug)]
pub struct SegmentRows {
    pub seg: i64,
    pub rows: Vec<(u32, Vec<u8>)>,
}

/// A group's rows (`ngram_groups`) over its segments up to `upto`, built by the indexer for the
/// writer to store.
#[derive(Debug)]
pub struct GroupRows {
    pub group: i64,
    pub upto: i64,
    pub rows: Vec<(u32, Vec<u8>)>,
}

/// What the indexer hands to the writer.
#[derive(Debug)]
pub enum Built {
    Segment(SegmentRows),
    Group(GroupRows),
}

/// Segments per group in a new database (`ngram_group_state.group_segments`): 262,144 events.
pub const GROUP_SEGMENTS: i64 = 64;

/// Events per read-back statement.
const READ_CHUNK: i64 = 1024;
/// Messages of committed events the indexer may lag behind before the writer stops handing keys
/// over (the indexer then reads those events back).
const CHANNEL_DEPTH: usize = 256;
/// Events whose keys may wait for the indexer at once (~1.2 KB each, so ~10 MB; two segments,
/// ~160 ms of bulk ingest at 50,000 events/s): beyond it the writer stops handing keys over,
/// which bounds the memory a lagging indexer costs (32,768 cost ~30 MB more peak RSS under bulk
/// ingest).
const MAX_WAITING_EVENTS: usize = 8_192;

/// The row id of part `part` of segment `seg`.
pub fn row_id(seg: i64, part: u32) -> i64 {
    (seg << 8) | i64::from(part)
}

/// The fields a bare term searches, and whose texts the substring index holds.
pub const INDEXED_FIELDS: [&str; 10] =
    ["actor", "action", "message", "new", "old", "source", "status", "target", "tenant_id", "timestamp"];

/// An event's texts in [`INDEXED_FIELDS`] as `store::search`'s Pangea columns read them: the interned actor,
/// action and workspace, the target, source and status columns, and the event object's
/// `message`, `new`, `old` and `timestamp` as `json_extract` returns them (a string as itself, an
/// integer in decimal, a boolean as 1 or 0, an object or array as its JSON text, which is the
/// canonical JSON stored). Empty texts are left out (they match no term of three characters).
pub fn indexed_texts<'a>(
    actor: &'a str,
    action: &'a str,
    workspace: &'a str,
    target: Option<&'a str>,
    source: Option<&'a str>,
    status: Option<&'a str>,
    event: &'a Map<String, Value>,
) -> Vec<Cow<'a, str>> {
    let mut out: Vec<Cow<'a, str>> = [Some(actor), Some(action), Some(workspace), target, source, status]
        .into_iter()
        .flatten()
        .map(Cow::Borrowed)
        .collect();
    for field in ["message", "new", "old", "timestamp"] {
        let text = match event.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Some(Value::Bool(b)) => Cow::Borrowed(if *b { "1" } else { "0" }),
            Some(Value::Number(n)) => Cow::Owned(n.to_string()),
            Some(v) => Cow::Owned(crate::event::canonical::to_canonical_string(v)),
        };
        out.push(text);
    }
    out.retain(|t| !t.is_empty());
    out
}

/// The trigram keys of an event from its parts (the fields of `indexed_texts`).
pub fn event_keys(
    actor: &str,
    action: &str,
    workspace: &str,
    target: Option<&str>,
    source: Option<&str>,
    status: Option<&str>,
    event: &Map<String, Value>,
) -> Vec<u32> {
    let texts = indexed_texts(actor, action, workspace, target, source, status, event);
    ngram::event_grams(texts.iter().map(|t| t.as_ref()))
}

/// The keys of the stored, not purged events with seq in `lo..=hi`, in seq order.
pub fn stored_keys(conn: &Connection, lo: i64, hi: i64) -> rusqlite::Result<Vec<Keyed>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, (SELECT value FROM strings WHERE id = e.actor), (SELECT value FROM strings WHERE id = e.action),
                (SELECT value FROM strings WHERE id = e.workspace), e.target, e.source, e.status, e.envelope
         FROM events e WHERE e.seq >= ?1 AND e.seq <= ?2 AND e.purged_at IS NULL ORDER BY e.seq",
    )?;
    let mut rows = stmt.query(params![lo, hi])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let text = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
        let envelope: String = r.get(7)?;
        let event = match serde_json::from_str::<Value>(&envelope) {
            Ok(Value::Object(mut env)) => match env.remove("event") {
                Some(Value::Object(ev)) => ev,
                _ => Map::new(),
            },
            // `trailkeep verify` reports such a row; its texts from the columns are still indexed.
            _ => Map::new(),
        };
        let (actor, action, ws) = (text(1)?.unwrap_or_default(), text(2)?.unwrap_or_default(), text(3)?);
        let (target, source, status) = (text(4)?, text(5)?, text(6)?);
        let keys = event_keys(
            &actor,
            &action,
            ws.as_deref().unwrap_or_default(),
            target.as_deref(),
            source.as_deref(),
            status.as_deref(),
            &event,
        );
        out.push((seq, keys));
    }
    Ok(out)
}

/// Builds the rows of segment `seg` from the stored events (inside the caller's transaction).
pub fn build_from_store(conn: &Connection, seg: i64) -> rusqlite::Result<Vec<(u32, Vec<u8>)>> {
    let lo = seg << SEG_SHIFT;
    let mut b = SegmentBuilder::default();
    for (seq, keys) in stored_keys(conn, lo, lo + SEGMENT_EVENTS as i64 - 1)? {
        b.add((seq - lo) as usize, &keys);
    }
    Ok(b.finish())
}

/// Replaces the stored rows of segment `seg` (inside the writer's transaction), each part where
/// the clustered layout puts it.
pub fn store_segment(conn: &Connection, seg: i64, rows: &[(u32, Vec<u8>)]) -> rusqlite::Result<()> {
    let c = cluster_state(conn)?;
    conn.prepare_cached("DELETE FROM ngram_parts WHERE id >= ?1 AND id < ?2")?
        .execute(params![row_id(seg, 0), row_id(seg + 1, 0)])?;
    if c.unit(seg, 0) < c.moved {
        let ids: Vec<rusqlite::types::Value> =
            (0..ngram::PARTS).map(|p| rusqlite::types::Value::Integer(c.id(seg, p))).collect();
        conn.prepare_cached("DELETE FROM ngram_clustered WHERE id IN rarray(?1)")?.execute([std::rc::Rc::new(ids)])?;
    }
    let mut insert = conn.prepare_cached("INSERT INTO ngram_parts(id, data) VALUES (?1, ?2)")?;
    let mut clustered = conn.prepare_cached("INSERT INTO ngram_clustered(id, data) VALUES (?1, ?2)")?;
    for (part, data) in rows {
        if c.unit(seg, *part) < c.moved {
            clustered.execute(params![c.id(seg, *part), data])?;
        } else {
            insert.execute(params![row_id(seg, *part), data])?;
        }
    }
    Ok(())
}

/// Where the clustered layout (migration 0015) stands: per group of `group_segments` segments
/// whose segments are all stored, the writer moves the group's rows from `ngram_parts` (a
/// segment's 256 rows together, `row_id`) to `ngram_clustered` (a part's rows of the group's
/// segments together, [`Cluster::id`]), a few parts per transaction ([`cluster_step`]), in order
/// of (group, part) units: `moved` units are there. A search reading one part of many consecutive segments (a term
/// whose trigrams every segment holds) then reads a few pages instead of a 16 KiB page per
/// segment. Readers look a row up in both tables in one statement ([`segment_rows`]), so a move
/// committed between two of their statements never hides a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cluster {
    pub group_segments: i64,
    pub moved: i64,
}

impl Cluster {
    /// The (group, part) unit of part `part` of segment `seg`.
    pub fn unit(&self, seg: i64, part: u32) -> i64 {
        (seg / self.group_segments) * i64::from(ngram::PARTS) + i64::from(part)
    }

    /// The `ngram_clustered` id of part `part` of segment `seg`.
    pub fn id(&self, seg: i64, part: u32) -> i64 {
        self.unit(seg, part) * self.group_segments + seg % self.group_segments
    }

    /// The segment row id (`row_id`) of an `ngram_clustered` id.
    pub fn row_id(&self, id: i64) -> i64 {
        let unit = id / self.group_segments;
        let parts = i64::from(ngram::PARTS);
        row_id((unit / parts) * self.group_segments + id % self.group_segments, (unit % parts) as u32)
    }

    /// Units whose segments are all stored when the index covers seqs up to `indexed_to`.
    pub fn complete_units(&self, indexed_to: i64) -> i64 {
        (((indexed_to + 1) >> SEG_SHIFT) / self.group_segments) * i64::from(ngram::PARTS)
    }
}

pub fn cluster_state(conn: &Connection) -> rusqlite::Result<Cluster> {
    conn.prepare_cached("SELECT g.group_segments, c.moved FROM ngram_group_state g, ngram_cluster_state c")?
        .query_row([], |r| Ok(Cluster { group_segments: r.get::<_, i64>(0)?.max(1), moved: r.get(1)? }))
}

/// [`segment_rows`]' statement: the rows at their `row_id`s (?1) and their clustered ids (?2).
pub const SEGMENT_ROWS_SQL: &str = "SELECT 0, id, data FROM ngram_parts WHERE id IN rarray(?1)
     UNION ALL SELECT 1, id, data FROM ngram_clustered WHERE id IN rarray(?2)";

/// The stored rows among the segment rows `ids` (`row_id`), wherever the clustered layout has
/// them, read in one statement (one snapshot): `(row id, data)` in row id order.
pub fn segment_rows(conn: &Connection, group_segments: i64, ids: &[i64]) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let c = Cluster { group_segments: group_segments.max(1), moved: 0 };
    let plain: Vec<rusqlite::types::Value> = ids.iter().map(|&id| rusqlite::types::Value::Integer(id)).collect();
    let clustered: Vec<rusqlite::types::Value> =
        ids.iter().map(|&id| rusqlite::types::Value::Integer(c.id(id >> 8, (id & 0xff) as u32))).collect();
    let mut stmt = conn.prepare_cached(SEGMENT_ROWS_SQL)?;
    let mut out: Vec<(i64, Vec<u8>)> = stmt
        .query_map([std::rc::Rc::new(plain), std::rc::Rc::new(clustered)], |r| {
            let id: i64 = r.get(1)?;
            Ok((if r.get::<_, i64>(0)? == 1 { c.row_id(id) } else { id }, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok(out)
}

/// Moves up to `max_units` units of the groups complete when the index covers seqs up to
/// `indexed_to` to `ngram_clustered` (inside the writer's transaction) in one statement; returns
/// `moved` after. Several consecutive parts per call: a segment's rows of those parts share pages,
/// which the move frees whole; one part at a time rewrote a 16 KiB page of `ngram_parts` per
/// segment for each ~3 KB row moved.
pub fn cluster_step(conn: &Connection, indexed_to: i64, max_units: i64) -> rusqlite::Result<i64> {
    let c = cluster_state(conn)?;
    let end = c.complete_units(indexed_to).min(c.moved + max_units.max(0));
    if end <= c.moved {
        return Ok(c.moved);
    }
    let parts = i64::from(ngram::PARTS);
    let ids: Vec<rusqlite::types::Value> = (c.moved..end)
        .flat_map(|unit| {
            let (first, part) = ((unit / parts) * c.group_segments, (unit % parts) as u32);
            (first..first + c.group_segments).map(move |seg| rusqlite::types::Value::Integer(row_id(seg, part)))
        })
        .collect();
    let ids = std::rc::Rc::new(ids);
    // `Cluster::id` in SQL (?2: group_segments).
    conn.prepare_cached(
        "INSERT INTO ngram_clustered(id, data)
         SELECT (((id >> 8) / ?2) * 256 + (id & 255)) * ?2 + (id >> 8) % ?2, data
         FROM ngram_parts WHERE id IN rarray(?1) ORDER BY 1",
    )?
    .execute(params![ids.clone(), c.group_segments])?;
    conn.prepare_cached("DELETE FROM ngram_parts WHERE id IN rarray(?1)")?.execute([ids])?;
    conn.prepare_cached("UPDATE ngram_cluster_state SET moved = ?1")?.execute([end])?;
    Ok(end)
}

/// Moves every clustered row back to `ngram_parts` (before the group size changes).
fn uncluster(conn: &Connection) -> rusqlite::Result<()> {
    let c = cluster_state(conn)?;
    let g = c.group_segments;
    conn.execute(
        "INSERT INTO ngram_parts(id, data)
         SELECT ((((id / ?1) / 256) * ?1 + id % ?1) << 8) | ((id / ?1) % 256), data FROM ngram_clustered",
        [g],
    )?;
    conn.execute_batch("DELETE FROM ngram_clustered; UPDATE ngram_cluster_state SET moved = 0;")
}

/// Rebuilds the rows of a stored segment from its events.
pub fn rebuild_segment(conn: &Connection, seg: i64) -> rusqlite::Result<()> {
    let rows = build_from_store(conn, seg)?;
    store_segment(conn, seg, &rows)
}

/// Removes the events at offsets `gone` (just purged) from the stored rows of segment `seg`
/// (inside the purge's transaction): the rows become those [`rebuild_segment`] would build, from
/// the segment's own rows rather than its 4,096 envelopes. A malformed row (only by editing the
/// database) has the segment rebuilt from its events.
pub fn strip_segment(conn: &Connection, seg: i64, gone: &ngram::Bits) -> rusqlite::Result<()> {
    let c = cluster_state(conn)?;
    let ids: Vec<i64> = (0..ngram::PARTS).map(|p| row_id(seg, p)).collect();
    let rows = segment_rows(conn, c.group_segments, &ids)?;
    let mut stripped = Vec::with_capacity(rows.len());
    for (id, data) in &rows {
        match ngram::strip_part(data, gone) {
            Some(row) => stripped.push((*id, row)),
            None => return rebuild_segment(conn, seg),
        }
    }
    for ((id, row), (_, before)) in stripped.into_iter().zip(&rows) {
        let part = (id & 0xff) as u32;
        let (table, id) =
            if c.unit(seg, part) < c.moved { ("ngram_clustered", c.id(seg, part)) } else { ("ngram_parts", id) };
        match row {
            Some(data) if data != *before => conn
                .prepare_cached(&format!("UPDATE {table} SET data = ?2 WHERE id = ?1"))?
                .execute(params![id, data])?,
            Some(_) => 0,
            None => conn.prepare_cached(&format!("DELETE FROM {table} WHERE id = ?1"))?.execute([id])?,
        };
    }
    Ok(())
}

/// The coarse layer (migration 0013): per group of `group_segments` consecutive segments (group
/// `g` = segments `g * group_segments ..`), one row per part in `ngram_groups` (same ids as
/// segment rows: `g << 8 | part`) whose members are the group's segments
/// (`search::ngram::group_part`). `grouped_to`: the newest segment the stored group rows cover
/// (every older one is covered too; -1: none); the rows of the group in progress cover its
/// segments up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupState {
    pub group_segments: i64,
    pub grouped_to: i64,
}

pub fn group_state(conn: &Connection) -> rusqlite::Result<GroupState> {
    conn.prepare_cached("SELECT group_segments, grouped_to FROM ngram_group_state")?
        .query_row([], |r| Ok(GroupState { group_segments: r.get(0)?, grouped_to: r.get(1)? }))
}

pub fn set_grouped_to(conn: &Connection, seg: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE ngram_group_state SET grouped_to = ?1")?.execute([seg])?;
    Ok(())
}

/// Changes the group size (1 to 4,096 segments; [`GROUP_SEGMENTS`] in a new database) and drops
/// the stored groups, which the indexer builds again at the next start. For a stopped server
/// (tests lower it to reach groups with few events).
pub fn set_group_segments(conn: &Connection, group_segments: i64) -> anyhow::Result<()> {
    if !(1..=SEGMENT_EVENTS as i64).contains(&group_segments) {
        anyhow::bail!("a group has 1 to {SEGMENT_EVENTS} segments, not {group_segments}");
    }
    uncluster(conn)?;
    conn.execute_batch("DELETE FROM ngram_groups")?;
    conn.execute("UPDATE ngram_group_state SET group_segments = ?1, grouped_to = -1", [group_segments])?;
    Ok(())
}

/// Segments the group in progress grows by between two builds of its rows (an eighth of a group).
pub fn group_step(group_segments: i64) -> i64 {
    (group_segments / 8).max(1)
}

/// Builds the rows of group `group` over its segments up to `upto` from their stored rows, a part
/// at a time (one statement of at most `group_segments` rows each: bounded memory). The segments
/// must be indexed.
pub fn build_group(
    conn: &Connection,
    group: i64,
    group_segments: i64,
    upto: i64,
) -> rusqlite::Result<Vec<(u32, Vec<u8>)>> {
    let first = group * group_segments;
    let last = upto.min(first + group_segments - 1);
    let mut out = Vec::new();
    for part in 0..ngram::PARTS {
        let ids: Vec<i64> = (first..=last).map(|seg| row_id(seg, part)).collect();
        let rows: Vec<(usize, Vec<u8>)> = segment_rows(conn, group_segments, &ids)?
            .into_iter()
            .map(|(id, data)| (((id >> 8) - first) as usize, data))
            .collect();
        if let Some(data) = ngram::group_part(&rows) {
            out.push((part, data));
        }
    }
    Ok(out)
}

/// Replaces the stored rows of group `group` (inside the writer's transaction).
pub fn store_group(conn: &Connection, group: i64, rows: &[(u32, Vec<u8>)]) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM ngram_groups WHERE id >= ?1 AND id < ?2")?
        .execute(params![row_id(group, 0), row_id(group + 1, 0)])?;
    let mut insert = conn.prepare_cached("INSERT INTO ngram_groups(id, data) VALUES (?1, ?2)")?;
    for (part, data) in rows {
        insert.execute(params![row_id(group, *part), data])?;
    }
    Ok(())
}

pub fn indexed_to(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT indexed_to FROM ngram_state")?.query_row([], |r| r.get(0))
}

pub fn set_indexed_to(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE ngram_state SET indexed_to = ?1")?.execute([seq])?;
    Ok(())
}

/// The writer's side of the indexer thread.
pub struct Indexer {
    tx: SyncSender<Vec<Keyed>>,
    join: std::thread::JoinHandle<()>,
    /// Events handed over and not yet taken by the indexer.
    waiting: Arc<AtomicUsize>,
    /// The newest committed seq.
    committed: Arc<AtomicI64>,
    /// `ngram_state.indexed_to` as last committed by the writer.
    stored: Arc<AtomicI64>,
}

impl Indexer {
    /// Starts the indexer at the event after `indexed_to`; `committed` is the newest stored seq.
    /// Built segments and groups go to `deliver`, which returns false once the writer is gone.
    pub fn start(
        data_dir: &std::path::Path,
        indexed_to: i64,
        committed: i64,
        deliver: impl FnMut(Built) -> bool + Send + 'static,
    ) -> anyhow::Result<Self> {
        let conn = super::open_ro(data_dir)?;
        let groups = group_state(&conn)?;
        let stored = Arc::new(AtomicI64::new(indexed_to));
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_DEPTH);
        let waiting = Arc::new(AtomicUsize::new(0));
        let committed_at = Arc::new(AtomicI64::new(committed));
        let mut state = IndexerState {
            waiting: waiting.clone(),
            conn,
            next: indexed_to + 1,
            committed: committed_at.clone(),
            builder: SegmentBuilder::default(),
            deliver: Box::new(deliver),
            stored: stored.clone(),
            group_segments: groups.group_segments.clamp(1, SEGMENT_EVENTS as i64),
            grouped: groups.grouped_to,
        };
        if committed > indexed_to {
            tracing::info!(events = committed - indexed_to, "indexing events for substring search in the background");
        }
        let join = std::thread::Builder::new().name("trailkeep-ngram".into()).spawn(move || state.run(rx))?;
        Ok(Self { tx, join, waiting, committed: committed_at, stored })
    }

    /// The writer committed the segment rows up to `indexed_to` (groups of them can be built).
    pub fn stored(&self, indexed_to: i64) {
        self.stored.fetch_max(indexed_to, Ordering::Release);
    }

    /// Hands over the keys of committed events (in seq order). Never blocks: when the indexer
    /// lags (or too many keys wait for it), it reads these events back from the database instead.
    pub fn committed(&self, events: Vec<Keyed>, upto: i64) {
        self.committed.fetch_max(upto, Ordering::Release);
        let n = events.len();
        if n == 0 || self.waiting.load(Ordering::Relaxed) + n > MAX_WAITING_EVENTS {
            return;
        }
        self.waiting.fetch_add(n, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(events) {
            self.waiting.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Stops the thread (what it had not delivered is built again at the next start).
    pub fn stop(self) {
        drop(self.tx);
        let _ = self.join.join();
    }
}

struct IndexerState {
    waiting: Arc<AtomicUsize>,
    conn: Connection,
    /// The next seq to add.
    next: i64,
    /// The newest committed seq (the writer's).
    committed: Arc<AtomicI64>,
    builder: SegmentBuilder,
    deliver: Box<dyn FnMut(Built) -> bool + Send>,
    /// `ngram_state.indexed_to` as committed (the segment rows groups are built from).
    stored: Arc<AtomicI64>,
    group_segments: i64,
    /// The newest segment the delivered group rows cover.
    grouped: i64,
}

impl IndexerState {
    fn run(&mut self, rx: Receiver<Vec<Keyed>>) {
        use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
        loop {
            // A group whose segments are all stored is built (one per turn: messages are taken
            // in between, so a backfill of many groups does not hold the segments up).
            let grouping = self.group_ready();
            if let Some((group, upto)) = grouping
                && !self.build_group(group, upto)
            {
                return;
            }
            let grouping = grouping.is_some();
            // Read back what is committed but was not handed over, a chunk at a time, taking
            // messages in between; when caught up, wait for the next message (and look at the
            // writer's progress now and then: it may have kept keys back).
            let behind = self.next <= self.committed.load(Ordering::Acquire);
            let msg = if behind || grouping {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match rx.recv_timeout(std::time::Duration::from_millis(250)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let ok = match msg {
                Some(events) => {
                    self.waiting.fetch_sub(events.len(), Ordering::Relaxed);
                    self.take(events)
                }
                None if behind => self.read_back(),
                None => true,
            };
            if !ok {
                return;
            }
        }
    }

    /// The group to build next and the newest segment its rows cover: the group after the
    /// covered segments, once its stored segments are complete or an eighth of a group more.
    fn group_ready(&self) -> Option<(i64, i64)> {
        let stored_seg = ((self.stored.load(Ordering::Acquire) + 1) >> SEG_SHIFT) - 1;
        if stored_seg <= self.grouped {
            return None;
        }
        let group = (self.grouped + 1) / self.group_segments;
        let end = (group + 1) * self.group_segments - 1;
        let upto = stored_seg.min(end);
        (upto == end || upto - self.grouped >= group_step(self.group_segments)).then_some((group, upto))
    }

    /// Builds a group's rows over its stored segments up to `upto` and delivers them; false once
    /// the writer is gone.
    fn build_group(&mut self, group: i64, upto: i64) -> bool {
        let t0 = std::time::Instant::now();
        match build_group(&self.conn, group, self.group_segments, upto) {
            Ok(rows) => {
                tracing::debug!(
                    group,
                    upto,
                    rows = rows.len(),
                    bytes = rows.iter().map(|r| r.1.len()).sum::<usize>(),
                    ms = t0.elapsed().as_millis() as u64,
                    "substring index group built"
                );
                self.grouped = upto;
                (self.deliver)(Built::Group(GroupRows { group, upto, rows }))
            }
            Err(e) => {
                tracing::warn!(error = %e, "substring indexer cannot read segment rows; retrying");
                std::thread::sleep(std::time::Duration::from_millis(500));
                true
            }
        }
    }

    /// Adds handed-over events; events already added are skipped, and events after a gap wait
    /// for the read-back.
    fn take(&mut self, events: Vec<Keyed>) -> bool {
        if events.first().is_some_and(|e| e.0 > self.next) {
            return true;
        }
        for (seq, keys) in events {
            if seq == self.next && !self.add(seq, &keys) {
                return false;
            }
        }
        true
    }

    fn read_back(&mut self) -> bool {
        let seg_end = self.next | (SEGMENT_EVENTS as i64 - 1);
        let hi = self.committed.load(Ordering::Acquire).min(seg_end).min(self.next + READ_CHUNK - 1);
        let events = match stored_keys(&self.conn, self.next, hi) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "substring indexer cannot read events; retrying");
                std::thread::sleep(std::time::Duration::from_millis(500));
                return true;
            }
        };
        let mut events = events.into_iter().peekable();
        while self.next <= hi {
            // Purged events have no keys (and no postings).
            let keys = match events.peek() {
                Some((s, _)) if *s == self.next => events.next().map(|e| e.1).unwrap_or_default(),
                _ => Vec::new(),
            };
            if !self.add(self.next, &keys) {
                return false;
            }
        }
        true
    }

    /// Adds the event `seq` (= `next`); delivers the segment it completes.
    fn add(&mut self, seq: i64, keys: &[u32]) -> bool {
        let offset = seq.rem_euclid(SEGMENT_EVENTS as i64) as usize;
        self.builder.add(offset, keys);
        self.next = seq + 1;
        if offset + 1 < SEGMENT_EVENTS {
            return true;
        }
        let builder = std::mem::take(&mut self.builder);
        let rows = SegmentRows { seg: seq >> SEG_SHIFT, rows: builder.finish() };
        (self.deliver)(Built::Segment(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clustered ids: a part's rows of a group's segments are consecutive, groups and parts in
    /// order, and every id maps back to its segment row.
    #[test]
    fn clustered_ids_are_consecutive_per_part_and_map_back() {
        for g in [1, 2, 3, 64] {
            let c = Cluster { group_segments: g, moved: 0 };
            let mut seen = std::collections::BTreeSet::new();
            for seg in 0..4 * g + 1 {
                for part in [0, 1, 17, 255] {
                    let id = c.id(seg, part);
                    assert_eq!(c.row_id(id), row_id(seg, part), "g {g} seg {seg} part {part}");
                    assert!(seen.insert(id));
                    if seg % g > 0 {
                        assert_eq!(c.id(seg - 1, part), id - 1);
                    }
                }
            }
            assert_eq!(c.id(g, 0), c.id(g - 1, 255) + 1);
            assert_eq!(c.complete_units(-1), 0);
            assert_eq!(c.complete_units(g * SEGMENT_EVENTS as i64 - 2), 0);
            assert_eq!(c.complete_units(g * SEGMENT_EVENTS as i64 - 1), 256);
        }
    }
}
