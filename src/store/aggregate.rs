//! Counts for the UI's timeline and top values: the events of a search per time bucket and
//! outcome, and the most frequent tenants, actors, actions, statuses and targets.
//!
//! Every complete segment of 4,096 events (`seq >> SEG_SHIFT`) gets a summary (migration 0011):
//! its events per received second and outcome, and per field the `KEPT` most frequent values with
//! their counts (and the largest count it left out), over all workspaces (`agg_all`) and per
//! workspace (`agg_workspace`). The [`Builder`] thread builds them from the stored rows once a
//! segment is complete and hands them to the writer, which stores them (`store_segment`) and
//! rebuilds a stored segment's summary when a purge removes content from it (`rebuild_segment`).
//!
//! An aggregation ([`aggregate`]) maps its receive-time window to a seq range (receive times grow
//! with seq) and walks it newest first: a segment that lies wholly inside, is built and needs no
//! query condition is read from its summary; everything else (the window's edges, the open
//! segment, segments not built yet, and any search with a query) is counted from the rows, under
//! a budget of rows read: past it the result covers only the newest part of the window and says
//! from when. Counts of values a summary left out are unknown: such values' counts are lower
//! bounds, with an upper bound (as search engines report shard-level top terms).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSql, Value as SqlValue};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};

use super::SEG_SHIFT;
use super::search::{Candidates, PangeaQuery, SubstringStats, aggregate_condition};

/// The fields whose most frequent values are counted, named as in the Pangea query language.
pub const FIELDS: [&str; 5] = ["tenant_id", "actor", "action", "status", "target"];
/// Of `FIELDS`, the first three are interned (`strings` ids); the others are text columns.
const ID_FIELDS: usize = 3;
/// Values kept per field in a segment's summary.
const KEPT: usize = 64;
const BLOB_VERSION: u8 = 1;
const SEG_EVENTS: i64 = 1 << SEG_SHIFT;
/// Segments read by one statement when counting from the rows.
const SCAN_CHUNK_SEGMENTS: i64 = 16;
const SECOND: i64 = 1_000_000;
/// Substring-index candidates an aggregation checks per statement, about.
const CANDIDATE_BATCH: u64 = 4 * SEG_EVENTS as u64;

/// Bucket sizes of the timeline, in seconds.
const BUCKETS_S: [i64; 24] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    1_209_600, 2_592_000, 7_776_000, 31_536_000,
];

/// How an event ended, from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// No status, or one that says neither.
    Other,
}

impl Outcome {
    fn index(self) -> usize {
        self as usize
    }
}

/// The outcome of a status: a numeric code (H2O's `status.code`, or a Pangea status that is a
/// number) is a success when 0 (google.rpc OK) or 100–399 (HTTP), a failure when 1–99 (google.rpc
/// errors) or 400–599 (HTTP); a text status is a success or failure by its words.
pub fn outcome(status: Option<&str>, code: Option<i64>) -> Outcome {
    if let Some(c) = code {
        return match c {
            0 | 100..=399 => Outcome::Success,
            1..=99 | 400..=599 => Outcome::Failure,
            _ => Outcome::Other,
        };
    }
    let Some(s) = status.map(str::trim).filter(|s| !s.is_empty() && s.len() <= 64) else {
        return Outcome::Other;
    };
    const OK: [&str; 12] = [
        "success",
        "succeeded",
        "successful",
        "ok",
        "allowed",
        "allow",
        "pass",
        "passed",
        "granted",
        "true",
        "done",
        "completed",
    ];
    const BAD: [&str; 11] = [
        "fail",
        "error",
        "denied",
        "deny",
        "reject",
        "forbidden",
        "unauthori",
        "invalid",
        "timeout",
        "refused",
        "blocked",
    ];
    // Lower-cased on the stack: this runs for every event counted.
    let mut buf = [0u8; 64];
    let lower = &mut buf[..s.len()];
    lower.copy_from_slice(s.as_bytes());
    lower.make_ascii_lowercase();
    let lower = &*lower;
    if OK.iter().any(|w| w.as_bytes() == lower) {
        Outcome::Success
    } else if lower == b"false" || BAD.iter().any(|w| lower.windows(w.len()).any(|x| x == w.as_bytes())) {
        Outcome::Failure
    } else {
        Outcome::Other
    }
}

// ------------------------------------------------------------------------------------------------
// Counting rows

/// The columns an aggregation reads; `count_rows` takes them in this order.
const ROW_SQL: &str =
    "SELECT e.seq, e.received_at, e.workspace, e.actor, e.action, e.status, e.status_code, e.target FROM events e";

/// A multiply-rotate hasher for the integer keys of the counting maps (ids the database gave,
/// seconds, dictionary numbers): several times cheaper than SipHash, and no key is chosen by a
/// client. Texts are hashed with the standard (randomly keyed) hasher, in `Dict`.
#[derive(Default, Clone, Copy)]
struct IntHasher(u64);

impl std::hash::Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IntMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IntHasher>>;

/// The distinct texts (statuses, targets) of the rows counted, numbered.
#[derive(Default)]
struct Dict {
    numbers: HashMap<String, u32>,
    /// The key (`text_key`) of each text, by number.
    keys: Vec<u64>,
}

impl Dict {
    fn number(&mut self, s: &str) -> u32 {
        if let Some(n) = self.numbers.get(s) {
            return *n;
        }
        let n = self.keys.len() as u32;
        self.keys.push(text_key(s));
        self.numbers.insert(s.to_string(), n);
        n
    }
}

/// One row as counted: its outcome decided, its texts numbered (`Dict`).
struct Row {
    seq: i64,
    received_at: i64,
    ids: [i64; ID_FIELDS],
    outcome: Outcome,
    texts: [Option<u32>; 2],
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u64,
    /// The first event with the value (to read the text back).
    first: i64,
}

/// Exact counts of some rows: per time unit (`unit_us`) and outcome, and per field value (texts
/// by their `Dict` number).
struct Counts {
    unit_us: i64,
    hist: IntMap<i64, [u64; 3]>,
    ids: [IntMap<i64, Tally>; ID_FIELDS],
    texts: [IntMap<u32, Tally>; 2],
    total: u64,
}

impl Counts {
    fn new(unit_us: i64) -> Self {
        Self { unit_us, hist: IntMap::default(), ids: Default::default(), texts: Default::default(), total: 0 }
    }

    /// Counts one row; values equal to `empty` (the id of "") are not values.
    fn add(&mut self, r: &Row, empty: Option<i64>) {
        self.total += 1;
        self.hist.entry(r.received_at.div_euclid(self.unit_us)).or_default()[r.outcome.index()] += 1;
        for (k, id) in r.ids.iter().enumerate() {
            if Some(*id) != empty {
                self.ids[k].entry(*id).or_insert(Tally { count: 0, first: r.seq }).count += 1;
            }
        }
        for (k, n) in r.texts.iter().enumerate() {
            if let Some(n) = n {
                self.texts[k].entry(*n).or_insert(Tally { count: 0, first: r.seq }).count += 1;
            }
        }
    }
}

/// Counts the rows of a statement (whose columns are `ROW_SQL`'s) into `counts`, and, when given,
/// into per-workspace counts too; their texts are numbered in `dict`.
fn count_rows(
    rows: &mut rusqlite::Rows<'_>,
    counts: &mut Counts,
    mut per_workspace: Option<&mut IntMap<i64, Counts>>,
    dict: &mut Dict,
    empty: Option<i64>,
) -> rusqlite::Result<()> {
    while let Some(r) = rows.next()? {
        let (status, target) = (r.get_ref(5)?.as_str_or_null()?, r.get_ref(7)?.as_str_or_null()?);
        let code: Option<i64> = r.get(6)?;
        let row = Row {
            seq: r.get(0)?,
            received_at: r.get(1)?,
            ids: [r.get(2)?, r.get(3)?, r.get(4)?],
            outcome: outcome(status, code),
            texts: [status, target].map(|t| t.filter(|t| !t.is_empty()).map(|t| dict.number(t))),
        };
        counts.add(&row, empty);
        if let Some(ws) = per_workspace.as_deref_mut() {
            ws.entry(row.ids[0]).or_insert_with(|| Counts::new(counts.unit_us)).add(&row, empty);
        }
    }
    Ok(())
}

/// FNV-1a: the key of a text value in summaries (stable across versions and processes).
fn text_key(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ------------------------------------------------------------------------------------------------
// Segment summaries

fn put_u(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_i(out: &mut Vec<u8>, v: i64) {
    put_u(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Reads a summary blob.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.data.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn i(&mut self) -> Option<i64> {
        let v = self.u()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    fn fixed64(&mut self) -> Option<u64> {
        let b = self.data.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

/// The `KEPT` largest (count, then key) of `entries`, and the largest count left out (0: none).
fn kept<K: Ord + Copy>(mut entries: Vec<(K, Tally)>) -> (Vec<(K, Tally)>, u64) {
    entries.sort_unstable_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
    let dropped = entries.get(KEPT).map_or(0, |e| e.1.count);
    entries.truncate(KEPT);
    (entries, dropped)
}

/// A segment's summary (counts per received second) as stored. `base` is the segment's first seq.
fn encode(c: &Counts, dict: &Dict, base: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(BLOB_VERSION);
    put_u(&mut out, c.total);
    let mut hist: Vec<(&i64, &[u64; 3])> = c.hist.iter().collect();
    hist.sort_unstable_by_key(|h| *h.0);
    put_u(&mut out, hist.len() as u64);
    let mut prev = 0i64;
    for (sec, n) in hist {
        put_i(&mut out, sec - prev);
        prev = *sec;
        for x in n {
            put_u(&mut out, *x);
        }
    }
    for ids in &c.ids {
        let (entries, dropped) = kept(ids.iter().map(|(k, t)| (*k, *t)).collect());
        put_u(&mut out, dropped);
        put_u(&mut out, entries.len() as u64);
        for (id, t) in entries {
            put_u(&mut out, id as u64);
            put_u(&mut out, t.count);
        }
    }
    for texts in &c.texts {
        let (entries, dropped) = kept(texts.iter().map(|(n, t)| (dict.keys[*n as usize], *t)).collect());
        put_u(&mut out, dropped);
        put_u(&mut out, entries.len() as u64);
        for (key, t) in entries {
            out.extend_from_slice(&key.to_le_bytes());
            put_u(&mut out, (t.first - base) as u64);
            put_u(&mut out, t.count);
        }
    }
    out
}

/// Builds segment `seg`'s summaries from its stored events (purged ones are not counted): over
/// all workspaces, and per workspace id.
pub fn build_segment(conn: &Connection, seg: i64) -> rusqlite::Result<Summaries> {
    let base = seg << SEG_SHIFT;
    let empty = super::lookup_string(conn, "")?;
    let mut all = Counts::new(SECOND);
    let mut per_ws: IntMap<i64, Counts> = IntMap::default();
    let mut dict = Dict::default();
    let mut stmt = conn.prepare_cached(&format!("{ROW_SQL} WHERE e.seq BETWEEN ?1 AND ?2 AND e.purged_at IS NULL"))?;
    let mut rows = stmt.query(params![base, base + SEG_EVENTS - 1])?;
    count_rows(&mut rows, &mut all, Some(&mut per_ws), &mut dict, empty)?;
    let mut workspaces: Vec<(i64, Vec<u8>)> = per_ws.iter().map(|(ws, c)| (*ws, encode(c, &dict, base))).collect();
    workspaces.sort_unstable_by_key(|w| w.0);
    Ok(Summaries { all: encode(&all, &dict, base), workspaces })
}

/// One segment's encoded summaries: over all workspaces, and per workspace id.
#[derive(Debug)]
pub struct Summaries {
    pub all: Vec<u8>,
    pub workspaces: Vec<(i64, Vec<u8>)>,
}

/// Stores segment `seg`'s summaries (replacing any), inside the caller's write transaction.
pub fn store_segment(conn: &Connection, seg: i64, summaries: &Summaries) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM agg_workspace WHERE seg = ?1")?.execute([seg])?;
    conn.prepare_cached("INSERT OR REPLACE INTO agg_all(seg, data) VALUES (?1, ?2)")?
        .execute(params![seg, summaries.all])?;
    let mut insert = conn.prepare_cached("INSERT INTO agg_workspace(seg, workspace, data) VALUES (?1, ?2, ?3)")?;
    for (ws, data) in &summaries.workspaces {
        insert.execute(params![seg, ws, data])?;
    }
    Ok(())
}

/// Builds and stores segment `seg`'s summaries again (after a purge, in its transaction).
pub fn rebuild_segment(conn: &Connection, seg: i64) -> rusqlite::Result<()> {
    store_segment(conn, seg, &build_segment(conn, seg)?)
}

/// The newest segment whose summaries are stored (-1: none).
pub fn built_to(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT built_to FROM agg_state")?.query_row([], |r| r.get(0))
}

pub fn set_built_to(conn: &Connection, seg: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE agg_state SET built_to = ?1")?.execute([seg])?;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The builder thread

/// A segment's summaries built by the [`Builder`], for the writer to store.
#[derive(Debug)]
pub struct BuiltSegment {
    pub seg: i64,
    /// The builder's purge epoch when it read the segment: a purge since then makes it stale.
    pub epoch: u64,
    pub summaries: Summaries,
}

#[derive(Debug, Default)]
struct Progress {
    /// The newest committed seq.
    committed: i64,
    /// The newest segment whose summaries are stored.
    built: i64,
    /// Purges committed so far.
    epoch: u64,
    stop: bool,
}

/// The writer's side of the thread that builds segment summaries from the stored rows.
pub struct Builder {
    shared: Arc<(Mutex<Progress>, Condvar)>,
    join: std::thread::JoinHandle<()>,
}

/// How long the builder waits for the writer to store what it delivered before building it again.
const STORE_WAIT: Duration = Duration::from_secs(5);

impl Builder {
    /// Starts building at the segment after `built`; `committed` is the newest stored seq. Built
    /// segments go to `deliver`, which returns false once the writer is gone.
    pub fn start(
        data_dir: &std::path::Path,
        built: i64,
        committed: i64,
        mut deliver: impl FnMut(BuiltSegment) -> bool + Send + 'static,
    ) -> anyhow::Result<Self> {
        let conn = Connection::open_with_flags(
            super::db_path(data_dir),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        super::configure(&conn)?;
        conn.pragma_update(None, "cache_size", -2_048)?;
        let shared = Arc::new((Mutex::new(Progress { committed, built, ..Default::default() }), Condvar::new()));
        let behind = (committed + 1) / SEG_EVENTS - (built + 1);
        if behind > 1 {
            tracing::info!(segments = behind, "building the timeline and top-value summaries in the background");
        }
        let sh = shared.clone();
        let join = std::thread::Builder::new()
            .name("trailkeep-aggregate".into())
            .spawn(move || builder_loop(&conn, &sh, &mut deliver))?;
        Ok(Self { shared, join })
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let (lock, cv) = &*self.shared;
        f(&mut lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        cv.notify_all();
    }

    /// After a COMMIT that stored events up to `upto`.
    pub fn committed(&self, upto: i64) {
        let (lock, cv) = &*self.shared;
        let mut p = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Woken only when a segment is complete.
        let wake = (upto + 1) >> SEG_SHIFT > (p.committed + 1) >> SEG_SHIFT;
        p.committed = p.committed.max(upto);
        drop(p);
        if wake {
            cv.notify_all();
        }
    }

    /// After a COMMIT that stored segment `seg`'s summaries.
    pub fn stored(&self, seg: i64) {
        self.update(|p| p.built = p.built.max(seg));
    }

    /// After a COMMIT that purged events (summaries read before it are stale).
    pub fn purged(&self) {
        self.update(|p| p.epoch += 1);
    }

    /// Purges committed so far.
    pub fn epoch(&self) -> u64 {
        self.shared.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).epoch
    }

    /// Stops the thread (what it had not delivered is built again at the next start).
    pub fn stop(self) {
        self.update(|p| p.stop = true);
        let _ = self.join.join();
    }
}

fn builder_loop(conn: &Connection, shared: &(Mutex<Progress>, Condvar), deliver: &mut dyn FnMut(BuiltSegment) -> bool) {
    let (lock, cv) = shared;
    let guard = || lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let (seg, epoch) = {
            let mut p = guard();
            loop {
                if p.stop {
                    return;
                }
                let next = p.built + 1;
                if ((next + 1) << SEG_SHIFT) - 1 <= p.committed {
                    break (next, p.epoch);
                }
                p = cv.wait(p).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        let built = conn.unchecked_transaction().and_then(|tx| {
            let b = build_segment(conn, seg);
            drop(tx);
            b
        });
        match built {
            Ok(summaries) => {
                if !deliver(BuiltSegment { seg, epoch, summaries }) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(segment = seg, error = %e, "cannot read a segment to summarise; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        }
        // Wait until the writer stored it, or a purge made it stale, or the writer could not store
        // it (then it is built again).
        let deadline = Instant::now() + STORE_WAIT;
        let mut p = guard();
        while !p.stop && p.built < seg && p.epoch == epoch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            p = cv.wait_timeout(p, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Aggregation

/// What to aggregate.
#[derive(Debug, Clone)]
pub struct AggRequest {
    /// The search: its query, inclusive receive-time bounds and workspace limit (restrictions,
    /// order and `after_seq` are not used).
    pub query: PangeaQuery,
    /// The server's now (µs): the timeline of a window without an end stops here.
    pub now_us: i64,
    /// Most buckets in the timeline.
    pub max_buckets: usize,
    /// Values per field.
    pub top: usize,
    /// Rows (or substring-index candidates) read at most; past it the counts cover the newest part
    /// of the window only.
    pub row_budget: u64,
    /// Time spent counting at most (checked between statements, each of at most
    /// `SCAN_CHUNK_SEGMENTS` segments, once [`TIME_BUDGET_FLOOR`] rows are read): past it the
    /// counts cover the newest part only, as with the row budget.
    pub time_budget: Duration,
}

/// Rows (or candidates) an aggregation always reads, if the window has them, before its time budget
/// may cut it short.
pub const TIME_BUDGET_FLOOR: u64 = 20_000;

/// One field's most frequent values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopField {
    pub field: &'static str,
    /// Most frequent first (then by value).
    pub values: Vec<TopValue>,
    /// False when summaries left values out: a value not listed may count more than listed ones.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopValue {
    pub value: String,
    /// Events counted with this value (exact when `count == max`).
    pub count: u64,
    /// The most events it can have.
    pub max: u64,
}

#[derive(Debug, Clone)]
pub struct Aggregation {
    /// Matching events counted.
    pub total: u64,
    /// False when the row budget ran out: the counts cover events received from `counted_from` on.
    pub complete: bool,
    pub counted_from: Option<i64>,
    /// The timeline: buckets of `bucket_us` from `first_bucket_us`, events per outcome
    /// (success, failure, other).
    pub bucket_us: i64,
    pub first_bucket_us: i64,
    pub buckets: Vec<[u64; 3]>,
    /// The window the timeline spans (µs, inclusive).
    pub from_us: i64,
    pub to_us: i64,
    pub top: Vec<TopField>,
}

/// The smallest bucket size (µs) from `BUCKETS_S` giving at most `max` buckets over `[lo, hi]`.
fn bucket_size(lo: i64, hi: i64, max: usize) -> i64 {
    let n = |b: i64| hi.div_euclid(b) - lo.div_euclid(b) + 1;
    let max = max.max(1) as i64;
    for s in BUCKETS_S {
        if n(s * SECOND) <= max {
            return s * SECOND;
        }
    }
    let year = 31_536_000 * SECOND;
    year * ((hi - lo) / year / max + 1)
}

#[derive(Debug)]
enum Example {
    Id(i64),
    Seq(i64),
}

#[derive(Debug)]
struct Val {
    count: u64,
    /// The sum of the dropped counts of the summaries that kept this value.
    dropped_kept: u64,
    example: Example,
}

#[derive(Debug, Default)]
struct FieldMerge {
    values: HashMap<u64, Val>,
    /// The sum of the largest dropped counts of every summary merged.
    dropped: u64,
}

impl FieldMerge {
    fn add(&mut self, key: u64, count: u64, dropped: u64, example: impl FnOnce() -> Example) {
        let v = self.values.entry(key).or_insert_with(|| Val { count: 0, dropped_kept: 0, example: example() });
        v.count += count;
        v.dropped_kept += dropped;
    }
}

/// Counts merged from summaries and rows.
struct Merge {
    bucket_us: i64,
    /// `received_at.div_euclid(bucket_us)` of the first bucket.
    origin: i64,
    buckets: Vec<[u64; 3]>,
    total: u64,
    fields: [FieldMerge; 5],
}

impl Merge {
    fn bucket(&mut self, key: i64) -> &mut [u64; 3] {
        let last = self.buckets.len() as i64 - 1;
        &mut self.buckets[(key - self.origin).clamp(0, last) as usize]
    }

    fn add_counts(&mut self, c: Counts, dict: &Dict) {
        debug_assert_eq!(c.unit_us, self.bucket_us);
        self.total += c.total;
        for (key, n) in c.hist {
            let b = self.bucket(key);
            for k in 0..3 {
                b[k] += n[k];
            }
        }
        for (k, map) in c.ids.into_iter().enumerate() {
            for (id, t) in map {
                self.fields[k].add(id as u64, t.count, 0, || Example::Id(id));
            }
        }
        for (k, map) in c.texts.into_iter().enumerate() {
            for (n, t) in map {
                self.fields[ID_FIELDS + k].add(dict.keys[n as usize], t.count, 0, || Example::Seq(t.first));
            }
        }
    }

    /// Merges one summary blob of the segment starting at `base`; false if it is malformed (then
    /// nothing of it was merged).
    fn add_blob(&mut self, data: &[u8], base: i64) -> bool {
        let Some(parsed) = parse_blob(data) else { return false };
        self.add_parsed(parsed, base);
        true
    }

    fn add_parsed(&mut self, parsed: ParsedBlob, base: i64) {
        self.total += parsed.total;
        let per = self.bucket_us / SECOND;
        for (sec, n) in parsed.hist {
            let b = self.bucket(sec.div_euclid(per));
            for k in 0..3 {
                b[k] += n[k];
            }
        }
        for (k, (dropped, entries)) in parsed.fields.into_iter().enumerate() {
            let f = &mut self.fields[k];
            f.dropped += dropped;
            for (key, first, count) in entries {
                if k < ID_FIELDS {
                    f.add(key, count, dropped, || Example::Id(key as i64));
                } else {
                    f.add(key, count, dropped, || Example::Seq(base + first as i64));
                }
            }
        }
    }

    /// The `n` most frequent values of each field, read back as text.
    fn top(&self, conn: &Connection, n: usize) -> rusqlite::Result<Vec<TopField>> {
        let mut out = Vec::with_capacity(FIELDS.len());
        for (k, f) in self.fields.iter().enumerate() {
            let mut vals: Vec<(&u64, &Val)> = f.values.iter().collect();
            vals.sort_unstable_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
            vals.truncate(n);
            let mut values = Vec::with_capacity(vals.len());
            for (_, v) in vals {
                let value = match &v.example {
                    Example::Id(id) => conn
                        .prepare_cached("SELECT value FROM strings WHERE id = ?1")?
                        .query_row([id], |r| r.get(0))
                        .optional()?,
                    Example::Seq(seq) => conn
                        .prepare_cached(if k == ID_FIELDS {
                            "SELECT status FROM events WHERE seq = ?1"
                        } else {
                            "SELECT target FROM events WHERE seq = ?1"
                        })?
                        .query_row([seq], |r| r.get::<_, Option<String>>(0))
                        .optional()?
                        .flatten(),
                };
                let Some(value) = value else { continue };
                values.push(TopValue { value, count: v.count, max: v.count + (f.dropped - v.dropped_kept) });
            }
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            out.push(TopField { field: FIELDS[k], values, complete: f.dropped == 0 });
        }
        Ok(out)
    }
}

type Hist = Vec<(i64, [u64; 3])>;
/// Per field: the largest dropped count and (key, first-seq offset, count) of each kept value.
type FieldEntries = Vec<(u64, Vec<(u64, u64, u64)>)>;

struct ParsedBlob {
    total: u64,
    hist: Hist,
    fields: FieldEntries,
}

fn parse_blob(data: &[u8]) -> Option<ParsedBlob> {
    let mut r = Reader { data, pos: 0 };
    if data.first() != Some(&BLOB_VERSION) {
        return None;
    }
    r.pos = 1;
    let total = r.u()?;
    let n = r.u()? as usize;
    let mut hist = Vec::with_capacity(n.min(SEG_EVENTS as usize));
    let mut sec = 0i64;
    for _ in 0..n {
        sec = sec.checked_add(r.i()?)?;
        hist.push((sec, [r.u()?, r.u()?, r.u()?]));
    }
    let mut fields = Vec::with_capacity(FIELDS.len());
    for k in 0..FIELDS.len() {
        let dropped = r.u()?;
        let n = r.u()? as usize;
        let mut entries = Vec::with_capacity(n.min(KEPT));
        for _ in 0..n {
            if k < ID_FIELDS {
                entries.push((r.u()?, 0, r.u()?));
            } else {
                entries.push((r.fixed64()?, r.u()?, r.u()?));
            }
        }
        fields.push((dropped, entries));
    }
    (r.pos == data.len()).then_some(ParsedBlob { total, hist, fields })
}

fn received_at(conn: &Connection, seq: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT received_at FROM events WHERE seq = ?1")?.query_row([seq], |r| r.get(0))
}

/// The first seq received at or after `t` (`max_seq + 1` if none): receive times grow with seq.
fn first_seq_at(conn: &Connection, t: i64, max_seq: i64) -> rusqlite::Result<i64> {
    let (mut lo, mut hi) = (0, max_seq + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if received_at(conn, mid)? >= t {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Whether segment summaries (which count every event) answer a search of `q`'s events: one of
/// every event, or of the default config while no other audit config holds events.
fn summaries_cover(conn: &Connection, q: &PangeaQuery) -> rusqlite::Result<bool> {
    match &q.catalog {
        None => Ok(true),
        Some(c) if c.config == super::DEFAULT_CONFIG => conn.query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM audit_configs WHERE num != ?1 AND events > 0)",
            [super::DEFAULT_CONFIG],
            |r| r.get(0),
        ),
        Some(_) => Ok(false),
    }
}

/// Counts the events a Pangea search finds in its window: the timeline and the top values.
pub fn aggregate(conn: &Connection, req: &AggRequest) -> rusqlite::Result<Aggregation> {
    // One read transaction: summaries, state and rows from the same snapshot.
    let tx = conn.unchecked_transaction()?;
    let q = &req.query;
    let max_seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), -1) FROM events", [], |r| r.get(0))?;
    let (first_t, last_t) =
        if max_seq >= 0 { (received_at(conn, 0)?, received_at(conn, max_seq)?) } else { (i64::MIN, req.now_us) };
    // The timeline spans the window up to now; a window without a start (or starting at the
    // epoch: "all time") from the first event on.
    let to_us = q.end_us.unwrap_or(i64::MAX).min(req.now_us.max(last_t));
    let mut from_us = match q.start_us {
        Some(s) if s > 0 => s,
        _ if max_seq >= 0 => first_t,
        _ => to_us,
    };
    if from_us > to_us {
        from_us = to_us;
    }
    let bucket_us = bucket_size(from_us, to_us, req.max_buckets);
    let origin = from_us.div_euclid(bucket_us);
    let n = (to_us.div_euclid(bucket_us) - origin + 1) as usize;
    let mut m = Merge { bucket_us, origin, buckets: vec![[0; 3]; n], total: 0, fields: Default::default() };

    let a = match q.start_us {
        Some(t) => first_seq_at(conn, t, max_seq)?,
        None => 0,
    };
    let b = match q.end_us {
        Some(t) => first_seq_at(conn, t.saturating_add(1), max_seq)? - 1,
        None => max_seq,
    };
    let counted_from = if a <= b { walk(conn, req, &mut m, a, b)? } else { None };
    let top = m.top(conn, req.top)?;
    drop(tx);
    Ok(Aggregation {
        total: m.total,
        complete: counted_from.is_none(),
        counted_from,
        bucket_us,
        first_bucket_us: origin * bucket_us,
        buckets: m.buckets,
        from_us,
        to_us,
        top,
    })
}

/// Counts seqs `a..=b` newest first, from summaries where possible; returns the receive time
/// from which on the counts are complete if the row budget or the time budget ran out (`None`:
/// all counted).
///
/// A query with a substring term (three or more characters every match contains) reads the
/// substring index of the segments it covers and checks only their candidates (with the same
/// condition as a scan); the events after the index are scanned. Candidates count against the
/// row budget as rows do.
fn walk(conn: &Connection, req: &AggRequest, m: &mut Merge, a: i64, b: i64) -> rusqlite::Result<Option<i64>> {
    let started = Instant::now();
    let q = &req.query;
    let summaries = q.expr.is_none() && q.restrictions.is_empty() && q.after_seq.is_none() && summaries_cover(conn, q)?;
    let built = if summaries { built_to(conn)? } else { -1 };
    let workspaces = match &q.allowed_workspaces {
        Some(ws) => Some(workspace_ids(conn, ws)?),
        None => None,
    };
    let scan_q = PangeaQuery { start_us: None, end_us: None, after_seq: None, ..q.clone() };
    let (cond, params) = aggregate_condition(&scan_q);
    let sql = format!("{ROW_SQL} WHERE e.seq BETWEEN ? AND ? AND {cond}");
    let check_sql = format!("{ROW_SQL} WHERE e.seq IN rarray(?) AND {cond}");
    let empty = super::lookup_string(conn, "")?;
    let count = |m: &mut Merge, query: &str, first: Vec<Box<dyn ToSql>>| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(query)?;
        let mut counts = Counts::new(m.bucket_us);
        let mut dict = Dict::default();
        let all = first.iter().map(|p| p.as_ref()).chain(params.iter().map(|p| p as &dyn ToSql));
        let mut rows = stmt.query(params_from_iter(all))?;
        count_rows(&mut rows, &mut counts, None, &mut dict, empty)?;
        m.add_counts(counts, &dict);
        Ok(())
    };
    let scan = |m: &mut Merge, lo: i64, hi: i64| count(m, &sql, vec![Box::new(lo), Box::new(hi)]);
    let stats = std::cell::Cell::new(SubstringStats::default());
    let mut index = if summaries { None } else { Candidates::new(conn, &scan_q, a, b, &stats)? };
    // A key limited to workspaces: the candidates narrowed to those workspaces' events first (read
    // from the workspace index), so a frequent word in a small workspace checks few events.
    let allowed = match (&index, &workspaces) {
        (Some(i), Some(ids)) => workspace_seqs(conn, ids, a, b.min(i.indexed_to))?,
        _ => None,
    };
    let mut batch = 1usize;
    // A segment read from its summaries: whole, inside the window, built.
    let from_summary = |seg: i64| seg <= built && seg << SEG_SHIFT >= a && ((seg + 1) << SEG_SHIFT) - 1 <= b;
    let mut read = 0u64;
    // The time budget cuts only past the first `TIME_BUDGET_FLOOR` rows: a small log is always
    // counted whole, whatever the machine's speed.
    let over_time = |read: u64| read >= TIME_BUDGET_FLOOR && started.elapsed() > req.time_budget;
    let mut hi = b;
    while hi >= a {
        let seg = hi >> SEG_SHIFT;
        if from_summary(seg) {
            let mut low = seg;
            while low > 0 && from_summary(low - 1) {
                low -= 1;
            }
            for bad in add_summaries(conn, m, low, seg, workspaces.as_deref())? {
                tracing::warn!(segment = bad, "a segment summary is unreadable; counting its rows");
                scan(m, bad << SEG_SHIFT, ((bad + 1) << SEG_SHIFT) - 1)?;
            }
            hi = (low << SEG_SHIFT) - 1;
            continue;
        }
        if let Some(index) = index.as_mut().filter(|i| hi <= i.indexed_to) {
            // Whole indexed segments (`hi` ends one, or the window): their candidates, in batches
            // that grow while candidates are few.
            let segs: Vec<i64> = (a >> SEG_SHIFT..=seg).rev().take(batch).collect();
            let lo = (segs[segs.len() - 1] << SEG_SHIFT).max(a);
            let mut found = Vec::new();
            index.segments(&segs, &mut found)?;
            if let Some(allowed) = &allowed {
                found.retain(|s| allowed.binary_search(s).is_ok());
            }
            let rows = found.len() as u64;
            if read > 0 && (read + rows > req.row_budget || over_time(read)) {
                return Ok(Some(received_at(conn, hi + 1)?));
            }
            if rows * 2 > (hi - lo + 1) as u64 {
                // Most events are candidates (a frequent word): reading the range is cheaper than
                // looking each one up, and the condition decides the same.
                scan(m, lo, hi)?;
            } else if !found.is_empty() {
                count(m, &check_sql, vec![Box::new(seq_array(found))])?;
            }
            read += rows;
            hi = lo - 1;
            // About `CANDIDATE_BATCH` candidates per statement: the budgets are checked between
            // statements.
            batch = if rows < CANDIDATE_BATCH { (batch * 2).min(index.batch()) } else { (batch / 2).max(1) };
            continue;
        }
        // Down to the next summary (or the index), at most SCAN_CHUNK_SEGMENTS, and about what
        // the budget has left.
        let floor = match &index {
            Some(i) => a.max(i.indexed_to + 1),
            None => a,
        };
        let left = req.row_budget.saturating_sub(read);
        let mut lo = (seg << SEG_SHIFT).max(floor);
        while lo > floor
            && seg - ((lo - 1) >> SEG_SHIFT) < SCAN_CHUNK_SEGMENTS
            && ((hi - lo + 1) as u64) < left
            && !from_summary((lo - 1) >> SEG_SHIFT)
        {
            lo = (((lo - 1) >> SEG_SHIFT) << SEG_SHIFT).max(floor);
        }
        let rows = (hi - lo + 1) as u64;
        if read > 0 && (read + rows > req.row_budget || over_time(read)) {
            return Ok(Some(received_at(conn, hi + 1)?));
        }
        scan(m, lo, hi)?;
        read += rows;
        hi = lo - 1;
    }
    if index.is_some() {
        let st = stats.get();
        tracing::debug!(
            groups = st.groups,
            segments = st.segments,
            rows = st.rows,
            candidates = read,
            index_us = st.index_us,
            "aggregation through the substring index"
        );
    }
    Ok(None)
}

fn seq_array(seqs: Vec<i64>) -> std::rc::Rc<Vec<SqlValue>> {
    std::rc::Rc::new(seqs.into_iter().map(SqlValue::Integer).collect())
}

/// Most events of a key's workspaces `workspace_seqs` collects (past it the candidates are
/// checked without that narrowing).
const MAX_WORKSPACE_SEQS: usize = 2_000_000;

/// The seqs in `lo..=hi` of the workspaces `ids`, sorted, from the workspace index
/// (`events_seg_workspace`); `None` past
/// `MAX_WORKSPACE_SEQS`.
fn workspace_seqs(conn: &Connection, ids: &[i64], lo: i64, hi: i64) -> rusqlite::Result<Option<Vec<i64>>> {
    let mut out = Vec::new();
    if lo > hi {
        return Ok(Some(out));
    }
    // One seek per segment and workspace in the segment-clustered workspace index.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq FROM events WHERE (seq >> {SEG_SHIFT}) = ?1 AND workspace = ?2 AND seq BETWEEN ?3 AND ?4"
    ))?;
    for seg in lo >> SEG_SHIFT..=hi >> SEG_SHIFT {
        for id in ids {
            let mut rows = stmt.query([seg, *id, lo, hi])?;
            while let Some(r) = rows.next()? {
                if out.len() >= MAX_WORKSPACE_SEQS {
                    return Ok(None);
                }
                out.push(r.get(0)?);
            }
        }
    }
    out.sort_unstable();
    Ok(Some(out))
}

/// The ids of the named workspaces that exist.
fn workspace_ids(conn: &Connection, names: &[String]) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM strings WHERE value = ?1")?;
    let mut ids = Vec::new();
    for n in names {
        if let Some(id) = stmt.query_row([n], |r| r.get(0)).optional()? {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Merges the summaries of segments `lo..=hi` (of the given workspaces, or of all); returns the
/// segments whose summaries are unreadable.
fn add_summaries(
    conn: &Connection,
    m: &mut Merge,
    lo: i64,
    hi: i64,
    workspaces: Option<&[i64]>,
) -> rusqlite::Result<Vec<i64>> {
    let mut bad = Vec::new();
    match workspaces {
        None => {
            let mut stmt = conn.prepare_cached("SELECT seg, data FROM agg_all WHERE seg BETWEEN ?1 AND ?2")?;
            let mut rows = stmt.query([lo, hi])?;
            let mut next = lo;
            while let Some(r) = rows.next()? {
                let seg: i64 = r.get(0)?;
                bad.extend(next..seg); // missing rows
                next = seg + 1;
                if !m.add_blob(r.get_ref(1)?.as_blob()?, seg << SEG_SHIFT) {
                    bad.push(seg);
                }
            }
            bad.extend(next..=hi);
        }
        Some(ids) => {
            let mut stmt = conn.prepare_cached("SELECT data FROM agg_workspace WHERE seg = ?1 AND workspace = ?2")?;
            for seg in lo..=hi {
                let mut parsed = Vec::with_capacity(ids.len());
                for ws in ids {
                    if let Some(data) = stmt.query_row([seg, *ws], |r| r.get::<_, Vec<u8>>(0)).optional()? {
                        parsed.push(parse_blob(&data));
                    }
                }
                match parsed.into_iter().collect::<Option<Vec<_>>>() {
                    Some(blobs) => blobs.into_iter().for_each(|p| m.add_parsed(p, seg << SEG_SHIFT)),
                    None => bad.push(seg),
                }
            }
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::pangea_query;

    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    const WORKSPACES: [&str; 4] = ["", "ws-a", "ws-b", "ws-c"];
    const STATUSES: [Option<&str>; 5] = [None, Some("success"), Some("failure"), Some("0"), Some("weird")];

    /// 3.5 segments of events: few actors and actions, a target that is mostly unique, some
    /// purged rows, receive times one to a few seconds apart.
    fn database() -> (tempfile::TempDir, Connection, i64) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let intern = |v: &str| crate::store::intern(&conn, v).unwrap();
        let ws: Vec<i64> = WORKSPACES.iter().map(|w| intern(w)).collect();
        let actors: Vec<i64> = (0..20).map(|k| intern(&format!("user-{k}"))).chain([intern("")]).collect();
        let actions: Vec<i64> = (0..7).map(|k| intern(&format!("act-{k}"))).collect();
        let mut next = xorshift(0x5eed_1234_abcd_0001);
        let n = (SEG_EVENTS * 7) / 2;
        let mut t = 1_700_000_000 * SECOND;
        conn.execute_batch("BEGIN").unwrap();
        let mut insert = conn
            .prepare(
                "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                    target, status, status_code, read_only, type, buffer, hash, envelope, purged_at)
                 VALUES (?1, randomblob(16), 1, ?2, ?2, ?3, ?4, ?5, ?3, ?6, ?7, ?8, 0, 0, 0, zeroblob(32), '{}', ?9)",
            )
            .unwrap();
        for seq in 0..n {
            t += (next() % 3_000_000) as i64 + 1;
            let status = STATUSES[(next() % 5) as usize];
            let code = status.and_then(|s| s.parse::<i64>().ok());
            let target = match next() % 10 {
                0 => None,
                1..=3 => Some("hot-target".to_string()),
                _ => Some(format!("t-{}", next() % 5_000)),
            };
            insert
                .execute(params![
                    seq,
                    t,
                    ws[(next() % 4) as usize],
                    actors[(next() % 21).min(next() % 30) as usize % 21],
                    actions[(next() % 7) as usize],
                    target,
                    status,
                    code,
                    next().is_multiple_of(50).then_some(1),
                ])
                .unwrap();
        }
        drop(insert);
        conn.execute_batch("COMMIT").unwrap();
        (dir, conn, t)
    }

    fn build_all(conn: &Connection, upto: i64) {
        for seg in 0..=upto {
            store_segment(conn, seg, &build_segment(conn, seg).unwrap()).unwrap();
        }
        set_built_to(conn, upto).unwrap();
    }

    fn request(query: &str, start: Option<i64>, end: Option<i64>, ws: Option<&[&str]>, now: i64) -> AggRequest {
        AggRequest {
            query: PangeaQuery {
                expr: pangea_query::parse(query).unwrap(),
                start_us: start,
                end_us: end,
                allowed_workspaces: ws.map(|w| w.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            now_us: now,
            max_buckets: 40,
            top: 8,
            row_budget: u64::MAX,
            time_budget: Duration::MAX,
        }
    }

    /// What a plain count of the rows says: events in the window and per field value.
    fn expected(conn: &Connection, start: i64, end: i64, ws: Option<&[&str]>) -> (u64, HashMap<(usize, String), u64>) {
        let mut stmt = conn
            .prepare(
                "SELECT (SELECT value FROM strings WHERE id = e.workspace), (SELECT value FROM strings WHERE id = e.actor),
                        (SELECT value FROM strings WHERE id = e.action), e.status, e.target
                 FROM events e WHERE e.purged_at IS NULL AND e.received_at BETWEEN ?1 AND ?2",
            )
            .unwrap();
        let mut total = 0;
        let mut values = HashMap::new();
        let rows = stmt
            .query_map([start, end], |r| Ok((0..5).map(|k| r.get::<_, Option<String>>(k).unwrap()).collect::<Vec<_>>()))
            .unwrap();
        for row in rows {
            let row = row.unwrap();
            if ws.is_some_and(|w| !w.contains(&row[0].as_deref().unwrap_or(""))) {
                continue;
            }
            total += 1;
            for (k, v) in row.into_iter().enumerate() {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    *values.entry((k, v)).or_default() += 1;
                }
            }
        }
        (total, values)
    }

    /// With summaries or counting every row, the timeline and the top values are the same, and
    /// match a plain count: exactly for the fields the summaries kept whole, within the reported
    /// bounds for the mostly unique target.
    #[test]
    fn summaries_count_what_the_rows_count() {
        let (_dir, conn, last) = database();
        let first: i64 = received_at(&conn, 0).unwrap();
        let mut next = xorshift(99);
        let mut compared = 0;
        for round in 0..40 {
            let (start, end) = match round % 5 {
                0 => (None, None),
                1 => (Some(first - 10 * SECOND), Some(last + 10 * SECOND)),
                _ => {
                    let a = first + (next() % (last - first) as u64) as i64;
                    let b = a + (next() % (last - a + 1) as u64) as i64;
                    (Some(a), Some(b))
                }
            };
            let ws: Option<&[&str]> = match round % 4 {
                0 => Some(&["ws-a"]),
                1 => Some(&["ws-b", "", "nowhere"]),
                _ => None,
            };
            set_built_to(&conn, -1).unwrap();
            let scanned = aggregate(&conn, &request("", start, end, ws, last)).unwrap();
            if round == 0 {
                build_all(&conn, 2);
            }
            set_built_to(&conn, 2).unwrap();
            let summed = aggregate(&conn, &request("", start, end, ws, last)).unwrap();
            let (total, values) = expected(&conn, start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX), ws);
            assert_eq!(scanned.total, total, "round {round}");
            assert_eq!(summed.total, total, "round {round}");
            assert!(scanned.complete && summed.complete);
            assert_eq!(scanned.buckets, summed.buckets, "round {round}");
            assert_eq!(scanned.buckets.iter().flatten().sum::<u64>(), total);
            assert!(scanned.buckets.len() <= 41);
            for (s, m) in scanned.top.iter().zip(&summed.top) {
                let k = FIELDS.iter().position(|f| *f == s.field).unwrap();
                assert!(s.complete, "{}: counting rows is exact", s.field);
                for v in &s.values {
                    assert_eq!((v.count, v.max), (values[&(k, v.value.clone())], v.count), "{}", s.field);
                }
                if m.complete {
                    assert_eq!(s, m, "round {round}");
                } else {
                    assert_eq!(s.field, "target", "round {round}: only targets overflow");
                    assert_eq!(m.values[0], s.values[0], "the hot target is exact");
                    for v in &m.values {
                        let truth = values[&(k, v.value.clone())];
                        assert!(v.count <= truth && truth <= v.max, "{}: {v:?} vs {truth}", s.field);
                    }
                }
                compared += s.values.len();
            }
            // A limited key sees only its workspaces.
            if let Some(ws) = ws {
                assert!(summed.top[0].values.iter().all(|v| ws.contains(&v.value.as_str())));
            }
        }
        assert!(compared > 500, "{compared}");
    }

    #[test]
    fn a_query_counts_its_matches_and_the_budget_cuts_at_a_time() {
        let (_dir, conn, last) = database();
        build_all(&conn, 2);
        let all = aggregate(&conn, &request("actor:user-1", None, None, None, last)).unwrap();
        let n = conn
            .query_row(
                "SELECT count(*) FROM events e WHERE purged_at IS NULL AND (SELECT value FROM strings WHERE id = e.actor) LIKE '%user-1%'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64;
        assert_eq!(all.total, n);
        assert!(all.complete && all.top[1].values.iter().all(|v| v.value.contains("user-1") && v.count == v.max));
        let mut req = request("actor:user-1", None, None, None, last);
        req.row_budget = 5_000;
        let part = aggregate(&conn, &req).unwrap();
        let from = part.counted_from.expect("the budget ran out");
        assert!(!part.complete);
        let n = conn
            .query_row(
                "SELECT count(*) FROM events e WHERE purged_at IS NULL AND received_at >= ?1
                 AND (SELECT value FROM strings WHERE id = e.actor) LIKE '%user-1%'",
                [from],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64;
        assert_eq!(part.total, n);
        assert!(part.total < all.total);
        // No time at all: a log smaller than the time budget's floor is still counted whole.
        let mut req = request("actor:user-1", None, None, None, last);
        req.time_budget = Duration::ZERO;
        let events: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
        assert!(events < TIME_BUDGET_FLOOR as i64);
        let whole = aggregate(&conn, &req).unwrap();
        assert!(whole.complete && whole.total == all.total);
    }

    #[test]
    fn empty_log_and_windows_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let now = 1_700_000_000 * SECOND;
        let r = aggregate(&conn, &request("", Some(now - 3_600 * SECOND), None, None, now)).unwrap();
        assert_eq!((r.total, r.complete, r.buckets.len()), (0, true, 41.min(r.buckets.len())));
        assert!(r.buckets.iter().all(|b| *b == [0; 3]));
        assert_eq!(r.from_us, now - 3_600 * SECOND);
        assert_eq!(r.bucket_us, 120 * SECOND);
        let (_dir, conn, last) = database();
        let r = aggregate(&conn, &request("", Some(last + SECOND), Some(last + 2 * SECOND), None, last)).unwrap();
        assert_eq!(r.total, 0);
        let r = aggregate(&conn, &request("", Some(0), Some(5), None, last)).unwrap();
        assert_eq!(r.total, 0);
    }

    #[test]
    fn blobs_round_trip_and_reject_damage() {
        let (_dir, conn, _) = database();
        let all = build_segment(&conn, 1).unwrap().all;
        let p = parse_blob(&all).unwrap();
        assert!(p.total > 4_000 && p.fields.len() == 5);
        for cut in [0, 1, all.len() / 2, all.len() - 1] {
            assert!(parse_blob(&all[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = all.clone();
        longer.push(0);
        assert!(parse_blob(&longer).is_none());
    }

    #[test]
    fn outcomes() {
        use Outcome::*;
        for (status, code, want) in [
            (Some("success"), None, Success),
            (Some("Succeeded"), None, Success),
            (Some("failure"), None, Failure),
            (Some("ACCESS_DENIED"), None, Failure),
            (Some("login-error"), None, Failure),
            (Some("pending"), None, Other),
            (None, None, Other),
            (Some("0"), Some(0), Success),
            (Some("7"), Some(7), Failure),
            (Some("200"), Some(200), Success),
            (Some("404"), Some(404), Failure),
            (Some("1000"), Some(1000), Other),
        ] {
            assert_eq!(outcome(status, code), want, "{status:?}");
        }
    }

    #[test]
    fn bucket_sizes_follow_the_window() {
        let h = 3_600 * SECOND;
        assert_eq!(bucket_size(0, 15 * 60 * SECOND, 60), 30 * SECOND);
        assert_eq!(bucket_size(0, 24 * h, 60), h / 2);
        assert_eq!(bucket_size(0, 24 * h, 25), h);
        assert_eq!(bucket_size(0, 7 * 24 * h, 60), 3 * h);
        assert_eq!(bucket_size(0, 0, 60), SECOND);
        let big = bucket_size(0, 100 * 365 * 24 * h, 10);
        assert!(100 * 365 * 24 * h / big < 10);
    }

    /// A limited key's events are read with one seek per segment in the segment-clustered
    /// workspace index, not by scanning the events.
    #[test]
    fn workspace_seqs_seek_the_workspace_index() {
        let (_dir, conn, _) = database();
        let query = format!(
            "EXPLAIN QUERY PLAN SELECT seq FROM events WHERE (seq >> {SEG_SHIFT}) = ?1 AND workspace = ?2 AND seq BETWEEN ?3 AND ?4"
        );
        let plan: Vec<String> =
            conn.prepare(&query).unwrap().query_map([0, 1, 0, 10], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert!(
            plan.iter().any(|p| p.contains("USING COVERING INDEX events_seg_workspace (<expr>=? AND workspace=?")),
            "{plan:?}"
        );
        // And they are the workspace's events in the range, sorted.
        let ws = crate::store::lookup_string(&conn, "ws-b").unwrap().unwrap();
        let got = workspace_seqs(&conn, &[ws], 1_000, 9_000).unwrap().unwrap();
        let want: Vec<i64> = conn
            .prepare("SELECT seq FROM events WHERE workspace = ?1 AND seq BETWEEN 1000 AND 9000 ORDER BY seq")
            .unwrap()
            .query_map([ws], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(want.len() > 1_000, "{}", want.len());
        assert_eq!(got, want);
    }
}
