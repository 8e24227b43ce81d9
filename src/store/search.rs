//! Search SQL for both dialects. Every user value is a bound parameter; sort keys come from an
//! allowlist. Regexes go through the RE2 front end (`regexp` function); Pangea free text uses
//! case-sensitive substring matching, never FTS5 MATCH on user text.

use std::collections::HashMap;
use std::rc::Rc;

use rusqlite::types::{ToSql, Value as SqlValue};
use rusqlite::{Connection, params_from_iter};

use super::{SEG_SHIFT, ngram as stored_ngram};
use crate::event::Origin;
use crate::search::catalog::{Catalog, FieldKind, QueryField, Storage};
use crate::search::ngram::{self, Need};
use crate::search::pangea_query::{self, Columns, Expr, Op};

/// An event row as read back for rendering.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub uid: uuid::Uuid,
    pub origin: Origin,
    pub received_at: i64,
    pub event_time: i64,
    pub workspace: String,
    pub buffer: u64,
    pub hash: [u8; 32],
    pub envelope: String,
    /// The id of the event's audit config; `None` for the default config.
    pub config_id: Option<String>,
}

pub(crate) const ROW_COLUMNS: &str = "e.seq, e.uid, e.origin, e.received_at, e.event_time, (SELECT value FROM strings WHERE id = e.workspace), e.buffer, e.hash, e.envelope, CASE WHEN e.config = 0 THEN NULL ELSE (SELECT id FROM audit_configs WHERE num = e.config) END";

pub(crate) fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: r.get(0)?,
        uid: uuid::Uuid::from_slice(&r.get::<_, Vec<u8>>(1)?).unwrap_or_default(),
        origin: Origin::from_i64(r.get(2)?),
        received_at: r.get(3)?,
        event_time: r.get(4)?,
        workspace: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        buffer: r.get::<_, i64>(6)? as u64,
        hash: r.get::<_, Vec<u8>>(7)?.try_into().unwrap_or([0; 32]),
        envelope: r.get(8)?,
        config_id: r.get(9)?,
    })
}

/// H2O string fields and how they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2oField {
    EventSource,
    Resource,
    Principal,
    SourceIp,
    Workspace,
    Action,
}

impl H2oField {
    /// (interned column, plain text column)
    fn column(self) -> (Option<&'static str>, &'static str) {
        match self {
            Self::EventSource => (Some("e.event_source"), ""),
            Self::Principal => (Some("e.actor"), ""),
            Self::Workspace => (Some("e.workspace"), ""),
            Self::Action => (Some("e.action"), ""),
            Self::Resource => (None, "COALESCE(e.target, '')"),
            Self::SourceIp => (None, "COALESCE(e.source, '')"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct H2oQuery {
    pub start_us: i64,
    pub end_us: i64,
    pub exact: Vec<(H2oField, String)>,
    pub regex: Vec<(H2oField, String)>,
    pub read_only: Option<bool>,
    pub status_code_regex: Option<String>,
    pub metadata_exact: Vec<(String, String)>,
    pub metadata_regex: Vec<(String, String)>,
    pub include_types: Vec<i64>,
    pub exclude_types: Vec<i64>,
    /// The caller's workspaces when the key is limited.
    pub allowed_workspaces: Option<Vec<String>>,
    /// Continue strictly after this (event_time, seq).
    pub after: Option<(i64, i64)>,
    pub limit: usize,
}

struct Sql {
    clauses: Vec<String>,
    params: Vec<SqlValue>,
}

impl Sql {
    fn new() -> Self {
        Self { clauses: Vec::new(), params: Vec::new() }
    }
    fn push(&mut self, clause: impl Into<String>, params: impl IntoIterator<Item = SqlValue>) {
        self.clauses.push(clause.into());
        self.params.extend(params);
    }
    fn where_sql(&self) -> String {
        if self.clauses.is_empty() { "1".into() } else { self.clauses.join(" AND ") }
    }
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_string())
}

fn workspace_limit(sql: &mut Sql, allowed: &Option<Vec<String>>) {
    if let Some(ws) = allowed {
        let marks = vec!["?"; ws.len().max(1)].join(",");
        let mut params: Vec<SqlValue> = ws.iter().map(|w| text(w)).collect();
        if params.is_empty() {
            params.push(SqlValue::Null);
        }
        sql.push(format!("e.workspace IN (SELECT id FROM strings WHERE value IN ({marks}))"), params);
    }
}

/// Runs an H2O search: newest first by (event_time, seq), `limit` rows.
pub fn h2o_search(conn: &Connection, q: &H2oQuery) -> rusqlite::Result<Vec<EventRow>> {
    let (sql, upper) = h2o_clauses(q);
    let clustered = |f: &H2oField| matches!(f, H2oField::Principal | H2oField::Workspace | H2oField::Action);
    let segmented = q.exact.iter().chain(&q.regex).any(|(f, _)| clustered(f));
    if segmented {
        // The exact values' trigrams: segments whose substring index lacks one are skipped.
        let grams: Vec<Need> = q
            .exact
            .iter()
            .filter(|(f, _)| clustered(f))
            .filter_map(|(_, v)| ngram::term_grams(v).map(Need::Grams))
            .collect();
        let need = match grams.len() {
            0 => None,
            1 => grams.into_iter().next(),
            _ => Some(Need::And(grams)),
        };
        segmented_search(conn, &sql, (q.start_us, upper), q.limit, need)
    } else {
        // The event-time index serves the window directly.
        window_search(conn, &sql, q.limit)
    }
}

/// The WHERE clauses of an H2O query and the window's effective upper bound.
fn h2o_clauses(q: &H2oQuery) -> (Sql, i64) {
    let mut sql = Sql::new();
    sql.push("e.purged_at IS NULL", []);
    // H2O events are the default config's; other configs' events have other fields.
    sql.push(format!("e.config = {}", super::DEFAULT_CONFIG), []);
    // Keyset paging: the continuation's time is folded into the one upper bound SQLite uses for
    // the index range, so page 1000 costs what page 1 does.
    let upper = match q.after {
        Some((t, _)) => q.end_us.min(t.saturating_add(1)),
        None => q.end_us,
    };
    sql.push("e.event_time >= ? AND e.event_time < ?", [SqlValue::Integer(q.start_us), SqlValue::Integer(upper)]);
    for (f, v) in &q.exact {
        match f.column() {
            (Some(col), _) => sql.push(format!("{col} = (SELECT id FROM strings WHERE value = ?)"), [text(v)]),
            (None, expr) => sql.push(format!("{expr} = ?"), [text(v)]),
        }
    }
    for (f, v) in &q.regex {
        match f.column() {
            (Some(col), _) => sql.push(format!("{col} IN (SELECT id FROM strings WHERE regexp(?, value))"), [text(v)]),
            (None, expr) => sql.push(format!("regexp(?, {expr})"), [text(v)]),
        }
    }
    if let Some(ro) = q.read_only {
        sql.push("e.read_only = ?", [SqlValue::Integer(ro as i64)]);
    }
    if let Some(re) = &q.status_code_regex {
        sql.push("regexp(?, COALESCE(CAST(e.status_code AS TEXT), ''))", [text(re)]);
    }
    const META: &str = "json_each(e.envelope, CASE WHEN e.origin = 1 THEN '$.event' ELSE '$.event.metadata' END)";
    for (k, v) in &q.metadata_exact {
        sql.push(format!("EXISTS (SELECT 1 FROM {META} m WHERE m.key = ? AND m.value = ?)"), [text(k), text(v)]);
    }
    for (k, v) in &q.metadata_regex {
        sql.push(format!("EXISTS (SELECT 1 FROM {META} m WHERE m.key = ? AND regexp(?, m.value))"), [text(k), text(v)]);
    }
    if !q.include_types.is_empty() {
        let marks = vec!["?"; q.include_types.len()].join(",");
        sql.push(format!("e.type IN ({marks})"), q.include_types.iter().map(|t| SqlValue::Integer(*t)));
    }
    if !q.exclude_types.is_empty() {
        let marks = vec!["?"; q.exclude_types.len()].join(",");
        sql.push(format!("e.type NOT IN ({marks})"), q.exclude_types.iter().map(|t| SqlValue::Integer(*t)));
    }
    workspace_limit(&mut sql, &q.allowed_workspaces);
    if let Some((t, s)) = q.after {
        sql.push("(e.event_time < ? OR e.seq < ?)", [SqlValue::Integer(t), SqlValue::Integer(s)]);
    }
    (sql, upper)
}

/// Most segments one statement of `segmented_search` visits.
const MAX_SEGMENT_BATCH: usize = 64;

/// The page of `segments` segments (a power of two); the first parameters are the segments.
fn segment_query(sql: &Sql, limit: usize, segments: usize) -> String {
    let seg = if segments == 1 { "= ?".to_string() } else { format!("IN ({})", vec!["?"; segments].join(",")) };
    format!(
        "SELECT {ROW_COLUMNS} FROM events e WHERE (e.seq >> {shift}) {seg} AND e.origin != {server} AND {} ORDER BY e.event_time DESC, e.seq DESC LIMIT {limit}",
        sql.where_sql(),
        shift = super::SEG_SHIFT,
        server = Origin::Server as i64,
    )
}

fn window_search(conn: &Connection, sql: &Sql, limit: usize) -> rusqlite::Result<Vec<EventRow>> {
    let query = format!(
        "SELECT {ROW_COLUMNS} FROM events e WHERE {} ORDER BY e.event_time DESC, e.seq DESC LIMIT {limit}",
        sql.where_sql()
    );
    let mut stmt = conn.prepare_cached(&query)?;
    let rows = stmt.query_map(params_from_iter(sql.params.iter()), read_row)?;
    rows.collect()
}

/// Newest-first search through the segment-clustered indexes (migration 0005): the segments whose
/// event-time range overlaps the window are searched newest range first, and the pages are
/// merged; a segment whose newest event is older than the page's last row ends the search. While
/// the page is not full (a sparse value), each statement takes twice as many segments as the last
/// (up to `MAX_SEGMENT_BATCH`, one index seek each): a value found in few of a million events'
/// 250 segments costs a handful of statements, not one per segment. With `need` (the trigrams of
/// the exact values), once `PRUNE_AFTER` segments left the page short, a segment the substring
/// index covers and says cannot hold them is skipped without a seek: a rare value in a log of
/// thousands of segments visits the few that hold it.
/// The server's own events are in no segment's range (migration 0014); their own indexes answer
/// for them.
fn segmented_search(
    conn: &Connection,
    sql: &Sql,
    (start_us, end_us): (i64, i64),
    limit: usize,
    need: Option<Need>,
) -> rusqlite::Result<Vec<EventRow>> {
    let mut out: Vec<EventRow> = Vec::new();
    if limit == 0 || start_us >= end_us {
        return Ok(out);
    }
    let mut segs = conn.prepare_cached(
        "SELECT seg, max_event_time FROM segments WHERE max_event_time >= ?1 AND min_event_time < ?2
         ORDER BY max_event_time DESC, seg DESC",
    )?;
    let segs: Vec<(i64, i64)> =
        segs.query_map([start_us, end_us], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    let query = format!(
        "SELECT {ROW_COLUMNS} FROM events e WHERE e.origin = {server} AND {} ORDER BY e.event_time DESC, e.seq DESC LIMIT {limit}",
        sql.where_sql(),
        server = Origin::Server as i64,
    );
    let mut stmt = conn.prepare_cached(&query)?;
    for row in stmt.query_map(params_from_iter(sql.params.iter()), read_row)? {
        out.push(row?);
    }
    let stats = std::cell::Cell::new(SubstringStats::default());
    // The index is asked only once the page is still short after `PRUNE_AFTER` segments: a
    // frequent value fills it from the newest segments and reads no index row.
    let (mut need, mut prune) = (need, None);
    // Segments to search, in walk order, that the index did not rule out.
    let mut ready: std::collections::VecDeque<(i64, i64)> = std::collections::VecDeque::new();
    // `probe`: segments the index is asked about at once, doubling (a frequent value fills the
    // page from the first segment and pays for one segment's rows).
    let (mut next, mut batch, mut probe) = (0, 1, 1);
    loop {
        while ready.len() < batch && next < segs.len() {
            if next >= PRUNE_AFTER
                && out.len() < limit
                && let Some(need) = need.take()
            {
                prune = Some(SegmentFilter::new(conn, need, &stats)?);
            }
            let take = match prune.as_ref() {
                Some(p) => {
                    let take = probe.min(p.reader.batch());
                    probe = (probe * 2).min(MAX_SEGMENT_BATCH);
                    take
                }
                None => batch - ready.len(),
            };
            let chunk = &segs[next..(next + take).min(segs.len())];
            next += chunk.len();
            match prune.as_mut() {
                Some(p) => p.keep(chunk, &mut ready)?,
                None => ready.extend(chunk),
            }
        }
        let Some(&(_, newest)) = ready.front() else { break };
        if out.len() >= limit && out.last().is_some_and(|r| newest < r.event_time) {
            break;
        }
        let n = batch.min(ready.len());
        let ids: Vec<i64> = ready.drain(..n).map(|s| s.0).collect();
        // Padded to the batch size with the last segment again, so only a few statement shapes
        // exist (and stay in the statement cache).
        let padded = (0..batch).map(|i| SqlValue::Integer(ids[i.min(n - 1)]));
        let mut stmt = conn.prepare_cached(&segment_query(sql, limit, batch))?;
        for row in stmt.query_map(params_from_iter(padded.chain(sql.params.iter().cloned())), read_row)? {
            out.push(row?);
        }
        out.sort_unstable_by_key(|r| std::cmp::Reverse((r.event_time, r.seq)));
        out.truncate(limit);
        batch = if out.len() < limit { (batch * 2).min(MAX_SEGMENT_BATCH) } else { 1 };
    }
    Ok(out)
}

/// Segments `segmented_search` reads without asking the substring index first.
const PRUNE_AFTER: usize = if cfg!(test) { 2 } else { MAX_SEGMENT_BATCH };

/// The substring index as a filter of whole segments for `segmented_search`.
struct SegmentFilter<'a> {
    reader: IndexReader<'a>,
    /// The newest segment the index covers whole.
    covered: i64,
}

impl<'a> SegmentFilter<'a> {
    fn new(conn: &'a Connection, need: Need, stats: &'a std::cell::Cell<SubstringStats>) -> rusqlite::Result<Self> {
        let indexed_to = stored_ngram::indexed_to(conn)?;
        let covered = ((indexed_to + 1) >> SEG_SHIFT) - 1;
        Ok(Self { reader: IndexReader::new(conn, need, 0, i64::MAX, stats)?, covered })
    }

    /// Appends the segments of `chunk` that may hold a match to `ready` (in the order given).
    fn keep(
        &mut self,
        chunk: &[(i64, i64)],
        ready: &mut std::collections::VecDeque<(i64, i64)>,
    ) -> rusqlite::Result<()> {
        let indexed: Vec<i64> = chunk.iter().map(|s| s.0).filter(|&seg| seg <= self.covered).collect();
        let mut candidates = Vec::new();
        if !indexed.is_empty() {
            self.reader.candidates(&indexed, true, &mut candidates)?;
        }
        let hit: std::collections::HashSet<i64> = candidates.iter().map(|s| s >> SEG_SHIFT).collect();
        ready.extend(chunk.iter().filter(|s| s.0 > self.covered || hit.contains(&s.0)));
        Ok(())
    }
}

/// Pangea field → SQL, for the fields of one config (`Catalog`).
struct ConfigColumns<'a>(&'a Catalog);

/// `event_fields` value of field `no` for the current event (NULL when absent).
fn field_value(no: i64) -> String {
    format!("(SELECT value FROM event_fields WHERE seq = e.seq AND field = {no})")
}

/// The JSON path of a field in the envelope; field names are `[a-z][0-9a-z_]*` (checked when the
/// schema was accepted), anything else reads nothing.
fn envelope_text(name: &str) -> String {
    if name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_')) && !name.is_empty() {
        format!("json_extract(e.envelope, '$.event.{name}')")
    } else {
        "NULL".into()
    }
}

/// SQL yielding a field's text (or NULL when absent): what `:` and `=` on text compare and what
/// bare terms search.
fn text_sql(f: &QueryField) -> String {
    match f.storage {
        Storage::Actor => "NULLIF((SELECT value FROM strings WHERE id = e.actor), '')".into(),
        Storage::Action => "NULLIF((SELECT value FROM strings WHERE id = e.action), '')".into(),
        Storage::Tenant => "NULLIF((SELECT value FROM strings WHERE id = e.workspace), '')".into(),
        Storage::Source => "e.source".into(),
        Storage::Status => "e.status".into(),
        Storage::Target => "e.target".into(),
        Storage::ReceivedAt => "json_extract(e.envelope, '$.received_at')".into(),
        Storage::Timestamp | Storage::Envelope => envelope_text(&f.name),
        Storage::Indexed(no) => match f.kind {
            FieldKind::Integer => format!("CAST({} AS TEXT)", field_value(no)),
            FieldKind::Boolean => format!("(CASE {} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)", field_value(no)),
            // A datetime's text as logged.
            FieldKind::Datetime => envelope_text(&f.name),
            _ => field_value(no),
        },
    }
}

impl Columns for ConfigColumns<'_> {
    fn text(&self, field: &str) -> String {
        self.0.field(field).map_or_else(|| "NULL".into(), text_sql)
    }
    fn micros(&self, field: &str) -> String {
        match self.0.field(field).map(|f| f.storage) {
            Some(Storage::ReceivedAt) => "e.received_at".into(),
            Some(Storage::Timestamp) => "e.event_time".into(),
            _ => "NULL".into(),
        }
    }
    fn fulltext(&self) -> Option<String> {
        Some("e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)".into())
    }
    fn bare_fields(&self) -> Vec<String> {
        self.0.bare_fields().map(|f| f.name.clone()).collect()
    }
    fn kind(&self, field: &str) -> FieldKind {
        self.0.field(field).map_or(FieldKind::Text, |f| f.kind)
    }
    fn typed(&self, field: &str) -> String {
        match self.0.field(field).map(|f| f.storage) {
            Some(Storage::Indexed(no)) => field_value(no),
            _ => "NULL".into(),
        }
    }
    fn is_fulltext(&self, field: &str) -> bool {
        field == pangea_query::FULLTEXT_FIELD && self.0.field(field).is_none()
    }
    fn verbatim(&self, field: &str) -> Option<String> {
        // `json_extract` on the envelope (`text_sql`): the envelope is the canonical JSON the
        // writer built (`event::canonical`), hashed as stored.
        let f = self.0.field(field)?;
        match (f.storage, f.kind) {
            (Storage::Timestamp | Storage::Envelope, _) | (Storage::Indexed(_), FieldKind::Datetime) => {
                Some("e.envelope".into())
            }
            _ => None,
        }
    }
    fn interned(&self, field: &str) -> Option<String> {
        // Text fields only: a field of another kind is never tested as text by `pangea_query`.
        match self.0.field(field).filter(|f| f.kind == FieldKind::Text)?.storage {
            Storage::Actor => Some("e.actor".into()),
            Storage::Action => Some("e.action".into()),
            Storage::Tenant => Some("e.workspace".into()),
            _ => None,
        }
    }
}

/// The sort expression of an `order_by` field: integers, booleans and datetimes by value.
fn sort_sql(f: &QueryField) -> String {
    match (f.storage, f.kind) {
        (Storage::Indexed(no), FieldKind::Integer | FieldKind::Boolean | FieldKind::Datetime) => field_value(no),
        _ => text_sql(f),
    }
}

pub use super::ngram::{INDEXED_FIELDS, indexed_texts};

pub const PANGEA_ORDER_BY: &[&str] =
    &["actor", "action", "message", "received_at", "source", "status", "target", "timestamp"];

static STANDARD: std::sync::LazyLock<Catalog> = std::sync::LazyLock::new(Catalog::standard);

#[derive(Debug, Clone, Default)]
pub struct PangeaQuery {
    pub expr: Option<Expr>,
    /// Inclusive bounds on received_at, µs.
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    /// field → allowed values (field from the Pangea restriction allowlist).
    pub restrictions: Vec<(String, Vec<String>)>,
    pub allowed_workspaces: Option<Vec<String>>,
    pub ascending: bool,
    /// `received_at` or a field `catalog` can sort by (`PANGEA_ORDER_BY` for the default config).
    pub order_by: String,
    pub max_results: usize,
    /// Only events with seq strictly greater (live tail).
    pub after_seq: Option<i64>,
    /// The config searched: only its events, with its fields. `None`: every event, with the
    /// standard fields (`trailkeep export` without `--config`).
    pub catalog: Option<std::sync::Arc<Catalog>>,
}

impl PangeaQuery {
    /// Whether the query reads the free-text index (callers serving a search first let the writer
    /// index what is pending: `WriterHandle::sync_fts`).
    pub fn uses_fulltext(&self) -> bool {
        pangea_sql(self, true).0.contains("events_fts")
    }

    fn fields(&self) -> &Catalog {
        self.catalog.as_deref().unwrap_or(&STANDARD)
    }
}

/// Runs a Pangea search and returns the matching seqs in result order (at most `max_results`).
/// A conjunct on an indexed custom field drives it through the value index (`value_search`);
/// else substring terms of three or more characters are looked up in the substring index first
/// (`indexed_search`); the answer is the one [`pangea_search_scan`] gives.
pub fn pangea_search(conn: &Connection, q: &PangeaQuery) -> rusqlite::Result<Vec<i64>> {
    pangea_search_with_stats(conn, q).map(|(seqs, _)| seqs)
}

/// What a search through the substring index read and checked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SubstringStats {
    /// Segments whose index rows were evaluated.
    pub segments: u64,
    /// Groups of segments (`ngram_groups`) evaluated; their segments that cannot match are
    /// decided without their rows.
    pub groups: u64,
    /// Index rows read.
    pub rows: u64,
    /// Candidates the exact check saw (from the index).
    pub candidates: u64,
    /// Events after `ngram_state.indexed_to` checked without the index.
    pub tail: u64,
    /// Microseconds spent reading and evaluating index rows.
    pub index_us: u64,
    /// Microseconds spent in the exact check (candidates and tail).
    pub check_us: u64,
}

/// [`pangea_search`], and what the substring index did for it (`None`: not used).
pub fn pangea_search_with_stats(
    conn: &Connection,
    q: &PangeaQuery,
) -> rusqlite::Result<(Vec<i64>, Option<SubstringStats>)> {
    if let Some(driver) = index_driver(q) {
        return Ok((value_search(conn, q, &driver)?, None));
    }
    if let Some(need) = substring_need(q) {
        let stats = std::cell::Cell::new(SubstringStats::default());
        if let Some(seqs) = indexed_search(conn, q, &need, &stats)? {
            let st = stats.get();
            tracing::debug!(
                groups = st.groups,
                segments = st.segments,
                rows = st.rows,
                candidates = st.candidates,
                tail = st.tail,
                index_us = st.index_us,
                check_us = st.check_us,
                matches = seqs.len(),
                "search through the substring index"
            );
            return Ok((seqs, Some(st)));
        }
    }
    Ok((pangea_search_scan(conn, q)?, None))
}

fn count(stats: &std::cell::Cell<SubstringStats>, f: impl FnOnce(&mut SubstringStats)) {
    let mut s = stats.get();
    f(&mut s);
    stats.set(s);
}

/// [`pangea_search`] without the substring index: every event in the window is checked (the
/// equivalence tests and the benchmark compare the two).
pub fn pangea_search_scan(conn: &Connection, q: &PangeaQuery) -> rusqlite::Result<Vec<i64>> {
    let (query, params) = pangea_sql(q, true);
    let mut stmt = conn.prepare_cached(&query)?;
    let rows = stmt.query_map(params_from_iter(params.iter()), |r| r.get(0))?;
    rows.collect()
}

/// The condition the substring index can check for `q`, if any: none when a full-text term
/// drives the query (FTS5 answers it in receive order already).
/// Only the standard fields are in the substring index: searches of a custom config scan.
fn substring_need(q: &PangeaQuery) -> Option<Need> {
    if q.catalog.as_ref().is_some_and(|c| c.config != super::DEFAULT_CONFIG) {
        return None;
    }
    let expr = q.expr.as_ref()?;
    if sort_field(q).is_none() && split_fulltext(expr, &ConfigColumns(q.fields())).is_some() {
        return None;
    }
    ngram::need(expr, &|f| f.is_none_or(|f| INDEXED_FIELDS.contains(&f)))
}

fn sort_field(q: &PangeaQuery) -> Option<&str> {
    Some(q.order_by.as_str()).filter(|f| *f != "received_at" && PANGEA_ORDER_BY.contains(f))
}

/// Most candidates a sorted search collects through the index; beyond it, a scan sorts anyway.
const MAX_SORTED_CANDIDATES: usize = 200_000;
/// Most index rows one statement reads (segments × parts).
const MAX_ROWS_PER_READ: usize = 1024;

/// A Pangea search through the substring index. Events up to `ngram_state.indexed_to` are
/// narrowed to the candidates of their segments' posting lists; the events after it (the
/// segment in progress) are checked directly. Every candidate goes through the same SQL
/// condition as a scan. In receive order, segments are visited from the end the order starts
/// at, and the search stops at `max_results`. `None`: a sorted search with too many candidates
/// (the caller scans).
fn indexed_search(
    conn: &Connection,
    q: &PangeaQuery,
    need: &Need,
    stats: &std::cell::Cell<SubstringStats>,
) -> rusqlite::Result<Option<Vec<i64>>> {
    let sql = pangea_where(q);
    let indexed_to = stored_ngram::indexed_to(conn)?;
    let Some((lo, hi)) = seq_bounds(conn, q)? else { return Ok(Some(Vec::new())) };
    let mut index = IndexReader::new(conn, need.clone(), lo, hi, stats)?;
    let (seg_lo, seg_hi) = (lo >> SEG_SHIFT, hi.min(indexed_to) >> SEG_SHIFT);
    let tail = (lo.max(indexed_to + 1), hi);
    if let Some(field) = sort_field(q) {
        let mut candidates = Vec::new();
        let mut seg = seg_lo;
        while seg <= seg_hi && hi.min(indexed_to) >= lo {
            let segs: Vec<i64> = (seg..=seg_hi).take(index.batch()).collect();
            seg += segs.len() as i64;
            index.candidates(&segs, false, &mut candidates)?;
            if candidates.len() > MAX_SORTED_CANDIDATES {
                return Ok(None);
            }
        }
        let order = format!(
            "{} {dir}, e.seq {dir}",
            ConfigColumns(q.fields()).text(field),
            dir = if q.ascending { "ASC" } else { "DESC" }
        );
        let query = format!(
            "SELECT e.seq FROM events e WHERE (e.seq IN rarray(?) OR (e.seq >= ? AND e.seq <= ?)) AND {} ORDER BY {order} LIMIT {}",
            sql.where_sql(),
            q.max_results
        );
        let mut params: Vec<Box<dyn ToSql>> = vec![Box::new(seq_array(candidates)), Box::new(tail.0), Box::new(tail.1)];
        params.extend(sql.params.iter().map(|p| Box::new(p.clone()) as Box<dyn ToSql>));
        let mut stmt = conn.prepare_cached(&query)?;
        let rows = stmt.query_map(params_from_iter(params.iter()), |r| r.get(0))?;
        return rows.collect::<rusqlite::Result<Vec<i64>>>().map(Some);
    }
    if tail.0 <= tail.1 {
        count(stats, |s| s.tail = (tail.1 - tail.0 + 1) as u64);
    }
    let mut out =
        Check { conn, sql: &sql, ascending: q.ascending, max: q.max_results, seqs: Vec::new(), stats: Some(stats) };
    if !q.ascending && tail.0 <= tail.1 {
        out.range(tail.0, tail.1)?;
    }
    // Segments from the end the order starts at, in growing batches while matches are few.
    let mut pending: Vec<i64> = Vec::new();
    let (mut next, mut batch) = (if q.ascending { seg_lo } else { seg_hi }, 1usize);
    while !out.full() && seg_lo <= seg_hi && (seg_lo..=seg_hi).contains(&next) {
        let segs: Vec<i64> = if q.ascending {
            (next..=seg_hi).take(batch).collect()
        } else {
            (seg_lo..=next).rev().take(batch).collect()
        };
        next = if q.ascending { next + segs.len() as i64 } else { next - segs.len() as i64 };
        index.candidates(&segs, !q.ascending, &mut pending)?;
        let last = !(seg_lo..=seg_hi).contains(&next);
        while !out.full() && !pending.is_empty() && (last || pending.len() >= out.chunk()) {
            let n = out.chunk().min(pending.len());
            let chunk: Vec<i64> = pending.drain(..n).collect();
            count(stats, |s| s.candidates += chunk.len() as u64);
            out.candidates(chunk)?;
        }
        batch = if pending.len() < out.chunk() { (batch * 2).min(index.batch()) } else { 1 };
    }
    if q.ascending && !out.full() && tail.0 <= tail.1 {
        out.range(tail.0, tail.1)?;
    }
    Ok(Some(out.seqs))
}

/// The substring index as a candidate filter for an aggregation over the seqs `lo..=hi`: the
/// candidates of whole segments up to `indexed_to`, newest first (the caller checks them with the
/// same condition a scan uses, and scans the events after `indexed_to`).
pub(super) struct Candidates<'a> {
    reader: IndexReader<'a>,
    /// The last seq the index covers.
    pub indexed_to: i64,
}

impl<'a> Candidates<'a> {
    /// `None` when `q` puts no condition on trigrams (no term of three or more characters that
    /// every match must contain).
    pub(super) fn new(
        conn: &'a Connection,
        q: &PangeaQuery,
        lo: i64,
        hi: i64,
        stats: &'a std::cell::Cell<SubstringStats>,
    ) -> rusqlite::Result<Option<Self>> {
        // Only the standard fields are in the substring index.
        if q.catalog.as_ref().is_some_and(|c| c.config != super::DEFAULT_CONFIG) {
            return Ok(None);
        }
        let Some(expr) = q.expr.as_ref() else { return Ok(None) };
        let Some(need) = ngram::need(expr, &|f| f.is_none_or(|f| INDEXED_FIELDS.contains(&f))) else {
            return Ok(None);
        };
        let indexed_to = stored_ngram::indexed_to(conn)?;
        let reader = IndexReader::new(conn, need, lo, hi, stats)?;
        Ok(Some(Self { reader, indexed_to }))
    }

    /// Most segments one call should take.
    pub(super) fn batch(&self) -> usize {
        self.reader.batch()
    }

    /// Appends the candidates of `segs` (each at most `indexed_to >> SEG_SHIFT`), in the order
    /// given, each segment's seqs descending.
    pub(super) fn segments(&mut self, segs: &[i64], out: &mut Vec<i64>) -> rusqlite::Result<()> {
        self.reader.candidates(segs, true, out)
    }
}

/// The events among `candidates` that match `q` (receive order as `q.ascending` says, at most
/// `q.max_results`): the exact check every candidate of the substring index goes through. Public
/// for the index designs compared in `examples/indexlab.rs`.
pub fn pangea_filter(conn: &Connection, q: &PangeaQuery, candidates: Vec<i64>) -> rusqlite::Result<Vec<i64>> {
    let sql = pangea_where(q);
    let mut check =
        Check { conn, sql: &sql, ascending: q.ascending, max: q.max_results, seqs: Vec::new(), stats: None };
    check.candidates(candidates)?;
    Ok(check.seqs)
}

/// The events with seq in `lo..=hi` that match `q` (as [`pangea_filter`]).
pub fn pangea_filter_range(conn: &Connection, q: &PangeaQuery, lo: i64, hi: i64) -> rusqlite::Result<Vec<i64>> {
    let sql = pangea_where(q);
    let mut check =
        Check { conn, sql: &sql, ascending: q.ascending, max: q.max_results, seqs: Vec::new(), stats: None };
    check.range(lo, hi)?;
    Ok(check.seqs)
}

fn seq_array(seqs: Vec<i64>) -> rusqlite::vtab::array::Array {
    Rc::new(seqs.into_iter().map(SqlValue::Integer).collect())
}

/// The index rows a search reads and the condition it evaluates on them.
struct IndexReader<'a> {
    conn: &'a Connection,
    /// The condition, its rarest trigrams first once a segment has been read whole.
    need: Need,
    ordered: bool,
    /// The parts (rows per segment) holding the condition's trigrams.
    parts: Vec<u32>,
    /// The seq window, inclusive.
    lo: i64,
    hi: i64,
    stats: &'a std::cell::Cell<SubstringStats>,
    groups: Groups,
}

/// The coarse layer as one search reads it (`store::ngram`, `ngram_groups`).
struct Groups {
    /// Segments per group.
    size: i64,
    /// The newest segment the stored groups cover (-1: none, or groups no longer read).
    upto: i64,
    /// The condition, ordered by how many segments of the first group read hold each trigram.
    need: Need,
    ordered: bool,
    /// Each evaluated group's segments that may match.
    found: HashMap<i64, ngram::Bits>,
    /// Groups evaluated beyond those a call needs, in the direction of travel (doubles per read).
    ahead: i64,
    /// `upto` when the search began.
    covered: i64,
    /// Groups evaluated, and whether any of them ruled a segment out.
    evaluated: usize,
    pruned: bool,
}

/// Most groups evaluated ahead of the segments a call asks for.
const MAX_GROUPS_AHEAD: i64 = 64;

#[derive(Clone, Copy)]
enum Rows {
    Segments,
    Groups,
}

impl<'a> IndexReader<'a> {
    fn new(
        conn: &'a Connection,
        need: Need,
        lo: i64,
        hi: i64,
        stats: &'a std::cell::Cell<SubstringStats>,
    ) -> rusqlite::Result<Self> {
        let mut keys = Vec::new();
        need.keys(&mut keys);
        let mut parts: Vec<u32> = keys.iter().map(|k| ngram::part(*k)).collect();
        parts.sort_unstable();
        parts.dedup();
        let g = stored_ngram::group_state(conn)?;
        let groups = Groups {
            size: g.group_segments.clamp(1, ngram::SEGMENT_EVENTS as i64),
            upto: g.grouped_to,
            covered: g.grouped_to,
            need: need.clone(),
            ordered: false,
            found: HashMap::new(),
            ahead: 1,
            evaluated: 0,
            pruned: false,
        };
        Ok(Self { conn, need, ordered: false, parts, lo, hi, stats, groups })
    }

    /// Most segments per read.
    fn batch(&self) -> usize {
        (MAX_ROWS_PER_READ / self.parts.len().max(1)).clamp(1, 64)
    }

    /// Reads the rows `ids` into `rows` (an id without a row: `None`).
    fn fetch(&self, table: Rows, ids: Vec<i64>, rows: &mut HashMap<i64, Option<Vec<u8>>>) -> rusqlite::Result<()> {
        count(self.stats, |s| s.rows += ids.len() as u64);
        for id in &ids {
            rows.insert(*id, None);
        }
        if let Rows::Segments = table {
            for (id, data) in stored_ngram::segment_rows(self.conn, self.groups.size, &ids)? {
                rows.insert(id, Some(data));
            }
            return Ok(());
        }
        let mut stmt = self.conn.prepare_cached("SELECT id, data FROM ngram_groups WHERE id IN rarray(?1)")?;
        let mut it = stmt.query([seq_array(ids)])?;
        while let Some(r) = it.next()? {
            rows.insert(r.get(0)?, Some(r.get(1)?));
        }
        Ok(())
    }

    /// Evaluates `need` over `units` (segments or groups, per `table`) in steps, each step
    /// reading, in one statement, the one row every undecided unit needs next: a rare term costs
    /// a row or two per unit rather than one per trigram.
    fn evaluate(
        &self,
        need: &Need,
        enough: &dyn Fn(usize, usize) -> bool,
        table: Rows,
        units: &[i64],
        rows: &mut HashMap<i64, Option<Vec<u8>>>,
        found: &mut HashMap<i64, ngram::Bits>,
    ) -> rusqlite::Result<()> {
        let mut undecided: Vec<i64> = units.to_vec();
        while !undecided.is_empty() {
            let mut wanted = Vec::new();
            undecided.retain(|&unit| {
                let result = need.try_eval_until(enough, &mut |k| {
                    let id = stored_ngram::row_id(unit, ngram::part(k));
                    match rows.get(&id) {
                        None => Err(k),
                        Some(None) => Ok(None),
                        Some(Some(d)) => Ok(ngram::find_in_part(d, k)),
                    }
                });
                match result {
                    Ok(bits) => {
                        found.insert(unit, bits);
                        false
                    }
                    Err(k) => {
                        wanted.push(stored_ngram::row_id(unit, ngram::part(k)));
                        true
                    }
                }
            });
            if !wanted.is_empty() {
                self.fetch(table, wanted, rows)?;
            }
        }
        Ok(())
    }

    /// Appends the candidates of `segs` (in the order given; each segment's seqs descending if
    /// `desc`) to `out`. Segments in stored groups go through their groups' rows first (each
    /// group evaluated once per search, with some groups ahead in the direction of travel; no
    /// more once two groups have ruled no segment out): a segment whose group says it cannot
    /// match is decided without reading its rows. The others are evaluated on their own rows. The first group and the first segment read are read
    /// whole, to order the trigrams by how rare they are there.
    fn candidates(&mut self, segs: &[i64], desc: bool, out: &mut Vec<i64>) -> rusqlite::Result<()> {
        let t0 = std::time::Instant::now();
        let result = self.candidates_timed(segs, desc, out);
        count(self.stats, |s| s.index_us += t0.elapsed().as_micros() as u64);
        result
    }

    /// Evaluates the stored groups of `segs` not evaluated yet, and some more ahead.
    fn evaluate_groups(&mut self, segs: &[i64], desc: bool) -> rusqlite::Result<()> {
        let size = self.groups.size;
        let mut wanted: Vec<i64> = Vec::new();
        for &seg in segs {
            let g = seg / size;
            if seg <= self.groups.upto && !self.groups.found.contains_key(&g) && !wanted.contains(&g) {
                wanted.push(g);
            }
        }
        let Some(&last) = wanted.last() else { return Ok(()) };
        // Groups ahead, within the window and the stored groups.
        let (g_lo, g_hi) = ((self.lo >> SEG_SHIFT) / size, (self.hi >> SEG_SHIFT).min(self.groups.upto) / size);
        let mut g = last;
        for _ in 0..self.groups.ahead {
            g = if desc { g - 1 } else { g + 1 };
            if g < g_lo || g > g_hi {
                break;
            }
            if !self.groups.found.contains_key(&g) {
                wanted.push(g);
            }
        }
        self.groups.ahead = (self.groups.ahead * 2).min(MAX_GROUPS_AHEAD);
        let mut rows: HashMap<i64, Option<Vec<u8>>> = HashMap::new();
        if !self.groups.ordered {
            let first = wanted[0];
            self.fetch(Rows::Groups, self.parts.iter().map(|p| stored_ngram::row_id(first, *p)).collect(), &mut rows)?;
            let count = |k: u32| match rows.get(&stored_ngram::row_id(first, ngram::part(k))) {
                Some(Some(d)) => ngram::find_in_part(d, k).map_or(0, |b| b.len()),
                _ => 0,
            };
            self.groups.need.order_by_rarity(&count);
            self.groups.ordered = true;
        }
        count(self.stats, |s| s.groups += wanted.len() as u64);
        let mut found = HashMap::new();
        self.evaluate(&self.groups.need, &ngram::group_enough, Rows::Groups, &wanted, &mut rows, &mut found)?;
        // Groups that rule no segment out (every trigram in every segment: hex ids, frequent
        // words) are not read any further for this search.
        self.groups.pruned |= found.values().any(|b| (0..size).any(|i| !b.contains(i as usize)));
        self.groups.evaluated += found.len();
        if !self.groups.pruned && self.groups.evaluated >= 2 {
            self.groups.upto = -1;
        }
        self.groups.found.extend(found);
        Ok(())
    }

    fn candidates_timed(&mut self, segs: &[i64], desc: bool, out: &mut Vec<i64>) -> rusqlite::Result<()> {
        self.evaluate_groups(segs, desc)?;
        let (size, covered) = (self.groups.size, self.groups.covered);
        // A group's rows speak for the segments they covered when the search began.
        let ruled_out = |seg: i64| {
            seg <= covered && self.groups.found.get(&(seg / size)).is_some_and(|b| !b.contains((seg % size) as usize))
        };
        let segs: Vec<i64> = segs.iter().copied().filter(|&seg| !ruled_out(seg)).collect();
        let mut rows: HashMap<i64, Option<Vec<u8>>> = HashMap::new();
        if !self.ordered
            && let Some(&first) = segs.first()
        {
            self.fetch(
                Rows::Segments,
                self.parts.iter().map(|p| stored_ngram::row_id(first, *p)).collect(),
                &mut rows,
            )?;
            let count = |k: u32| match rows.get(&stored_ngram::row_id(first, ngram::part(k))) {
                Some(Some(d)) => ngram::find_in_part(d, k).map_or(0, |b| b.len()),
                _ => 0,
            };
            self.need.order_by_rarity(&count);
            self.ordered = true;
        }
        count(self.stats, |s| s.segments += segs.len() as u64);
        let mut found: HashMap<i64, ngram::Bits> = HashMap::new();
        let enough = |_, after| after <= ngram::FEW_CANDIDATES;
        self.evaluate(&self.need, &enough, Rows::Segments, &segs, &mut rows, &mut found)?;
        for &seg in &segs {
            let Some(bits) = found.get(&seg) else { continue };
            let base = seg << SEG_SHIFT;
            let start = out.len();
            out.extend(bits.iter().map(|o| base + o as i64).filter(|s| (self.lo..=self.hi).contains(s)));
            if desc {
                out[start..].reverse();
            }
        }
        Ok(())
    }
}

/// The exact check of candidates, collecting matches in result order up to `max`.
struct Check<'a> {
    conn: &'a Connection,
    sql: &'a Sql,
    ascending: bool,
    max: usize,
    seqs: Vec<i64>,
    stats: Option<&'a std::cell::Cell<SubstringStats>>,
}

impl Check<'_> {
    fn full(&self) -> bool {
        self.seqs.len() >= self.max
    }

    /// Candidates checked per statement: about what is still missing (most candidates of a
    /// word match), at least a few hundred.
    fn chunk(&self) -> usize {
        (2 * (self.max - self.seqs.len().min(self.max))).clamp(256, 8192)
    }

    fn dir(&self) -> &'static str {
        if self.ascending { "ASC" } else { "DESC" }
    }

    fn run(&mut self, query: &str, first: Vec<Box<dyn ToSql>>) -> rusqlite::Result<()> {
        let t0 = std::time::Instant::now();
        let result = self.run_timed(query, first);
        if let Some(stats) = self.stats {
            count(stats, |s| s.check_us += t0.elapsed().as_micros() as u64);
        }
        result
    }

    fn run_timed(&mut self, query: &str, first: Vec<Box<dyn ToSql>>) -> rusqlite::Result<()> {
        let mut params = first;
        params.extend(self.sql.params.iter().map(|p| Box::new(p.clone()) as Box<dyn ToSql>));
        let mut stmt = self.conn.prepare_cached(query)?;
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        while let Some(r) = rows.next()? {
            self.seqs.push(r.get(0)?);
            if self.full() {
                break;
            }
        }
        Ok(())
    }

    /// Candidates in result order.
    fn candidates(&mut self, seqs: Vec<i64>) -> rusqlite::Result<()> {
        let query = candidates_sql(self.sql, self.dir());
        self.run(&query, vec![Box::new(seq_array(seqs))])
    }

    /// Every event with seq in `lo..=hi` (the part the index does not cover yet).
    fn range(&mut self, lo: i64, hi: i64) -> rusqlite::Result<()> {
        let query = format!(
            "SELECT e.seq FROM events e WHERE e.seq >= ? AND e.seq <= ? AND {} ORDER BY e.seq {}",
            self.sql.where_sql(),
            self.dir()
        );
        self.run(&query, vec![Box::new(lo), Box::new(hi)])
    }
}

/// The exact check of a list of candidates (the first parameter), one row lookup each.
fn candidates_sql(sql: &Sql, dir: &str) -> String {
    format!("SELECT e.seq FROM events e WHERE e.seq IN rarray(?) AND {} ORDER BY e.seq {dir}", sql.where_sql())
}

/// The seqs `q`'s window can hold, inclusive (receive times grow with seq), or `None` when empty.
fn seq_bounds(conn: &Connection, q: &PangeaQuery) -> rusqlite::Result<Option<(i64, i64)>> {
    let n: i64 = conn.prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM events")?.query_row([], |r| r.get(0))?;
    let mut at = conn.prepare_cached("SELECT received_at FROM events WHERE seq = ?1")?;
    // The first seq received at or after `t`.
    let mut first_at = |t: i64| -> rusqlite::Result<i64> {
        let (mut lo, mut hi) = (0i64, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let received: i64 = at.query_row([mid], |r| r.get(0))?;
            if received < t { lo = mid + 1 } else { hi = mid }
        }
        Ok(lo)
    };
    let mut lo = match q.start_us {
        Some(s) => first_at(s)?,
        None => 0,
    };
    let hi = match q.end_us {
        Some(e) => first_at(e.saturating_add(1))? - 1,
        None => n - 1,
    };
    if let Some(after) = q.after_seq {
        lo = lo.max(after + 1);
    }
    Ok((lo <= hi).then_some((lo, hi)))
}

/// The WHERE clauses of a Pangea search on `events e`, except the receive-time window and the
/// full-text driver: deleted content and the config (with `base`), `expr`, restrictions,
/// workspaces.
fn pangea_clauses(q: &PangeaQuery, expr: Option<&Expr>, base: bool) -> Sql {
    let cols = ConfigColumns(q.fields());
    let mut sql = Sql::new();
    if base {
        sql.push("e.purged_at IS NULL", []);
        if let Some(c) = &q.catalog {
            sql.push("e.config = ?", [SqlValue::Integer(c.config)]);
        }
    }
    if let Some(after) = q.after_seq {
        sql.push("e.seq > ?", [SqlValue::Integer(after)]);
    }
    if let Some(expr) = expr {
        let mut params = Vec::new();
        let clause = pangea_query::to_sql(expr, &cols, &mut params);
        sql.push(format!("({clause})"), params);
    }
    for (field, values) in &q.restrictions {
        if values.is_empty() {
            continue;
        }
        let marks = vec!["?"; values.len()].join(",");
        let clause = match cols.interned(field) {
            // The id test of `pangea_query`'s interned columns (the empty text is absent).
            Some(id) => format!("+{id} IN (SELECT id FROM strings WHERE value IN ({marks}) AND value <> '')"),
            None => format!("{} IN ({marks})", cols.text(field)),
        };
        sql.push(clause, values.iter().map(|v| text(v)));
    }
    workspace_limit(&mut sql, &q.allowed_workspaces);
    sql
}

/// The SQL of a Pangea search. With `drive_fts`, a full-text term among the query's top-level
/// conjuncts, in receive order, drives the query: FTS5 walks the words' document list in rowid
/// (= receive) order and the join stops at `max_results`, instead of collecting every match of a
/// frequent word before the first row comes out.
fn pangea_sql(q: &PangeaQuery, drive_fts: bool) -> (String, Vec<SqlValue>) {
    let catalog = q.fields();
    // A field to sort by; otherwise receive order (`received_at`, or an unknown name).
    let sort_field =
        catalog.field(&q.order_by).filter(|f| f.storage != Storage::ReceivedAt && catalog.orderable(&f.name));
    let cols = ConfigColumns(catalog);
    let driving = q.expr.as_ref().filter(|_| drive_fts && sort_field.is_none()).and_then(|e| split_fulltext(e, &cols));
    let sql = pangea_conditions(q, driving.as_ref());
    let dir = if q.ascending { "ASC" } else { "DESC" };
    let (from, order) = match (&driving, sort_field) {
        (Some(_), _) => ("events_fts f CROSS JOIN events e", format!("f.rowid {dir}")),
        (None, Some(f)) => ("events e", format!("{} {dir}, e.seq {dir}", sort_sql(f))),
        (None, None) => ("events e", format!("e.seq {dir}")),
    };
    let query = format!("SELECT e.seq FROM {from} WHERE {} ORDER BY {order} LIMIT {}", sql.where_sql(), q.max_results);
    (query, sql.params)
}

/// The condition of a Pangea search over `events e` with no full-text term driving it.
fn pangea_where(q: &PangeaQuery) -> Sql {
    pangea_conditions(q, None)
}

/// The conditions of a Pangea search as one SQL condition over `events e` (no order, no
/// full-text driving, no substring index) and its parameters: the events an aggregation counts.
pub(super) fn aggregate_condition(q: &PangeaQuery) -> (String, Vec<SqlValue>) {
    let sql = pangea_where(q);
    (sql.where_sql(), sql.params)
}

/// The conditions of a Pangea search; with `driving` (a full-text term's FTS5 query and the rest
/// of the expression), over `events_fts f CROSS JOIN events e`.
fn pangea_conditions(q: &PangeaQuery, driving: Option<&(String, Option<Expr>)>) -> Sql {
    let expr = match driving {
        Some((_, rest)) => rest.as_ref(),
        None => q.expr.as_ref(),
    };
    let mut sql = Sql::new();
    if let Some((words, _)) = &driving {
        sql.push("f.events_fts MATCH ? AND e.seq = f.rowid", [text(words)]);
    }
    if let Some(s) = q.start_us {
        sql.push("e.received_at >= ?", [SqlValue::Integer(s)]);
    }
    if let Some(e) = q.end_us {
        sql.push("e.received_at <= ?", [SqlValue::Integer(e)]);
    }
    let rest = pangea_clauses(q, expr, true);
    sql.clauses.extend(rest.clauses);
    sql.params.extend(rest.params);
    if driving.is_some() || sql.where_sql().contains("events_fts") {
        // The free-text index covers events up to fts_state.indexed_to (the writer stores rows in
        // batches): the search sees that prefix of the log, so that a negated or OR-ed text term
        // is never decided on an event whose text is not indexed yet.
        sql.push("e.seq <= (SELECT indexed_to FROM fts_state)", []);
    }
    sql
}

/// A top-level conjunct on an indexed custom field (`event_fields`) that can drive a search in
/// receive order: the field, the SQL comparisons with their bound values (one; or two for a
/// range bounded on both sides, `n>=a AND n<b`, read as one slice of the index), and the rest of
/// the query.
#[derive(Debug)]
struct IndexDriver {
    field: i64,
    bounds: Vec<(&'static str, SqlValue)>,
    rest: Option<Expr>,
}

/// The conjunct of `q` that the value index of `event_fields` can answer (equality on a string,
/// equality or a comparison on an integer, boolean or datetime), when the search is in receive
/// order.
fn index_driver(q: &PangeaQuery) -> Option<IndexDriver> {
    let catalog = q.catalog.as_deref()?;
    if catalog.field(&q.order_by).is_some_and(|f| f.storage != Storage::ReceivedAt && catalog.orderable(&f.name)) {
        return None;
    }
    let driver = |e: &Expr| -> Option<(i64, &'static str, SqlValue)> {
        let Expr::Term(t) = e else { return None };
        let f = catalog.field(t.field.as_deref()?)?;
        let Storage::Indexed(no) = f.storage else { return None };
        let sym = match t.op {
            Op::Contains | Op::Equals => "=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        };
        let value = match f.kind {
            FieldKind::Text if t.op == Op::Equals => text(&t.value),
            FieldKind::Integer => SqlValue::Integer(t.value.parse().ok()?),
            FieldKind::Boolean => SqlValue::Integer(match t.value.as_str() {
                "true" => 1,
                "false" => 0,
                _ => return None,
            }),
            // Exact comparisons only: a bound between two µs is left to the generic SQL.
            FieldKind::Datetime if t.op != Op::Contains => match pangea_query::instant_micros(&t.value)? {
                (us, false) => SqlValue::Integer(us),
                (_, true) => return None,
            },
            _ => return None,
        };
        Some((no, sym, value))
    };
    match q.expr.as_ref()? {
        Expr::And(items) => {
            let (i, (field, symbol, value)) = items.iter().enumerate().find_map(|(i, e)| driver(e).map(|d| (i, d)))?;
            let mut bounds = vec![(symbol, value)];
            // The other side of a range on the same field, if there is one.
            let side = |s: &str| match s {
                ">" | ">=" => 1,
                "<" | "<=" => -1,
                _ => 0,
            };
            let other = (side(symbol) != 0)
                .then(|| {
                    items.iter().enumerate().find_map(|(j, e)| {
                        let (f, s, v) = driver(e).filter(|_| j != i)?;
                        (f == field && side(s) == -side(symbol)).then_some((j, s, v))
                    })
                })
                .flatten();
            let mut rest = items.clone();
            if let Some((j, s, v)) = other {
                bounds.push((s, v));
                rest.remove(i.max(j));
                rest.remove(i.min(j));
            } else {
                rest.remove(i);
            }
            let rest = match rest.len() {
                0 => None,
                1 => rest.pop(),
                _ => Some(Expr::And(rest)),
            };
            Some(IndexDriver { field, bounds, rest })
        }
        e => {
            let (field, symbol, value) = driver(e)?;
            Some(IndexDriver { field, bounds: vec![(symbol, value)], rest: None })
        }
    }
}

/// A search driven by the segment-clustered value index of `event_fields`: the segments of the
/// receive-time window are visited in result order, each answering its matches in seq order from
/// the index; the events table is read only when the rest of the query, the key's workspaces or
/// the full-text bound need it. Stops at `max_results`.
fn value_search(conn: &Connection, q: &PangeaQuery, d: &IndexDriver) -> rusqlite::Result<Vec<i64>> {
    let mut out = Vec::new();
    let Some((lo, hi)) = seq_window(conn, q.start_us, q.end_us)? else { return Ok(out) };
    let lo = q.after_seq.map_or(lo, |a| lo.max(a + 1));
    if lo > hi || q.max_results == 0 {
        return Ok(out);
    }
    // Purged events have no event_fields rows, and the field number implies the config; the
    // window is the seq range.
    let probe = PangeaQuery { after_seq: None, ..q.clone() };
    let mut rest = pangea_clauses(&probe, d.rest.as_ref(), false);
    if rest.where_sql().contains("events_fts") {
        rest.push("e.seq <= (SELECT indexed_to FROM fts_state)", []);
    }
    let shift = super::SEG_SHIFT;
    // Equal values are in seq order in the index: SQLite returns the newest (or oldest) first and
    // stops at the limit. A range's matches come in value order: all of a segment's are read and
    // sorted here (cheaper than SQLite's sorter for a segment that mostly matches).
    let symbols: Vec<&str> = d.bounds.iter().map(|b| b.0).collect();
    let ordered = symbols == ["="];
    let query = indexed_query(&symbols, &rest, ordered.then_some(q.ascending));
    let mut stmt = conn.prepare_cached(&query)?;
    let mut several = conn.prepare_cached(&indexed_query_segments(&symbols, &rest))?;
    let segments: Vec<i64> = if q.ascending {
        ((lo >> shift)..=(hi >> shift)).collect()
    } else {
        ((lo >> shift)..=(hi >> shift)).rev().collect()
    };
    let (mut next, mut visited, mut matched) = (0, 0, 0);
    let mut segment: Vec<i64> = Vec::new();
    while next < segments.len() && out.len() < q.max_results {
        let want = q.max_results - out.len();
        // One segment per statement while matches are dense; for an equality where the segments
        // read so far had few, about as many as should give what is still wanted (at most 64) in
        // one statement: a value with a few hundred matches over the log costs a few statements,
        // not a lookup per segment. (A range's slices are read whole and sorted: it stays at one
        // segment per statement, which measured faster for ranges whose matches are bunched.)
        let step = if visited == 0 || !ordered {
            1
        } else {
            (want * visited / matched.max(1)).clamp(1, MAX_SEGMENTS_PER_LOOKUP)
        };
        let step = &segments[next..(next + step).min(segments.len())];
        next += step.len();
        visited += step.len();
        let mut params: Vec<SqlValue> = Vec::new();
        if let [seg] = step {
            params.push(SqlValue::Integer(*seg));
        }
        params.push(SqlValue::Integer(d.field));
        params.extend(d.bounds.iter().map(|b| b.1.clone()));
        params.extend([SqlValue::Integer(lo), SqlValue::Integer(hi)]);
        params.extend(rest.params.iter().cloned());
        segment.clear();
        if let [_] = step {
            if ordered {
                params.push(SqlValue::Integer(want as i64));
            }
            for seq in stmt.query_map(params_from_iter(params.iter()), |r| r.get::<_, i64>(0))? {
                segment.push(seq?);
            }
        } else {
            let step = seq_array(step.to_vec());
            let mut all: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as &dyn rusqlite::ToSql).collect();
            all.push(&step);
            for seq in several.query_map(&all[..], |r| r.get::<_, i64>(0))? {
                segment.push(seq?);
            }
        }
        matched += segment.len();
        if !ordered || step.len() > 1 {
            if q.ascending {
                segment.sort_unstable()
            } else {
                segment.sort_unstable_by(|a, b| b.cmp(a))
            }
            segment.truncate(want);
        }
        out.extend_from_slice(&segment);
    }
    Ok(out)
}

/// Most segments one statement of an index-driven search looks up.
const MAX_SEGMENTS_PER_LOOKUP: usize = 64;

/// The statement of one segment of an index-driven search; with `order` (`Some(ascending)`) in
/// seq order with a limit, else every match in index order. `symbols`: the comparison of each
/// bound. Parameters in text order: segment, field, the bounds' values, first and last seq, the
/// rest's, the limit (ordered only).
fn indexed_query(symbols: &[&str], rest: &Sql, order: Option<bool>) -> String {
    let tail = match order {
        Some(true) => " ORDER BY f.seq ASC LIMIT ?",
        Some(false) => " ORDER BY f.seq DESC LIMIT ?",
        None => "",
    };
    indexed_select(&format!("(f.seq >> {}) = ? AND ", super::SEG_SHIFT), symbols, rest, "", tail)
}

/// The statement of several segments of an index-driven search: every match, in index order.
/// Parameters in text order: field, the bounds' values, first and last seq, the rest's, the
/// segments (an array).
fn indexed_query_segments(symbols: &[&str], rest: &Sql) -> String {
    indexed_select("", symbols, rest, &format!(" AND (f.seq >> {}) IN rarray(?)", super::SEG_SHIFT), "")
}

/// `SELECT seq` over the value index: `first` and `last` go before and after the conditions.
fn indexed_select(first: &str, symbols: &[&str], rest: &Sql, last: &str, tail: &str) -> String {
    let values: String = symbols.iter().map(|s| format!(" AND f.value {s} ?")).collect();
    let head = format!("{first}f.field = ?{values} AND f.seq BETWEEN ? AND ?");
    // The value index, always: for a range SQLite would rather walk the primary key in seq order
    // (no sort) across the whole window than read one segment's slice.
    let from = "event_fields f INDEXED BY event_fields_seg_value";
    if rest.clauses.is_empty() {
        format!("SELECT f.seq FROM {from} WHERE {head}{last}{tail}")
    } else {
        format!(
            "SELECT e.seq FROM {from} CROSS JOIN events e WHERE {head} AND e.seq = f.seq AND ({}){last}{tail}",
            rest.where_sql()
        )
    }
}

/// The seqs of the events received within `[start, end]` (inclusive, µs), as (first, last):
/// receive times grow with seq, so each bound is a binary search over rowid lookups.
pub fn seq_window(conn: &Connection, start: Option<i64>, end: Option<i64>) -> rusqlite::Result<Option<(i64, i64)>> {
    use super::retention::boundary_seq;
    let lo = match start {
        Some(s) => boundary_seq(conn, s)?,
        None => 0,
    };
    let hi = match end {
        Some(e) => boundary_seq(conn, e.saturating_add(1))? - 1,
        None => conn.query_row("SELECT COALESCE(MAX(seq), -1) FROM events", [], |r| r.get(0))?,
    };
    Ok((lo <= hi).then_some((lo, hi)))
}

/// A full-text term among the top-level conjuncts of `expr`: its FTS5 query, and the rest of
/// the expression (`None` when the term was all of it).
fn split_fulltext(expr: &Expr, cols: &ConfigColumns<'_>) -> Option<(String, Option<Expr>)> {
    use pangea_query::fts_query;
    let words = |e: &Expr| match e {
        Expr::Term(t)
            if t.field.as_deref().is_some_and(|f| cols.is_fulltext(f)) && matches!(t.op, Op::Contains | Op::Equals) =>
        {
            fts_query(&t.value)
        }
        _ => None,
    };
    match expr {
        Expr::And(items) => {
            let (i, w) = items.iter().enumerate().find_map(|(i, e)| words(e).map(|w| (i, w)))?;
            let mut rest = items.clone();
            rest.remove(i);
            Some((w, Some(Expr::And(rest))))
        }
        e => words(e).map(|w| (w, None)),
    }
}

/// Loads rows by seq, in the order given.
pub fn rows_by_seq(conn: &Connection, seqs: &[i64]) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM events e WHERE e.seq = ?1"))?;
    let mut out = Vec::with_capacity(seqs.len());
    for s in seqs {
        if let Some(r) = stmt.query_map([s], read_row)?.next() {
            out.push(r?);
        }
    }
    Ok(out)
}

/// Events `first_seq..=last_seq` in order, `page` rows per query (no read transaction is held
/// between pages: for committed rows, which do not change, such as replication's).
pub fn for_each_event(
    conn: &Connection,
    first_seq: i64,
    last_seq: i64,
    mut f: impl FnMut(&EventRow) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    const PAGE: i64 = 2048;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM events e WHERE e.seq >= ?1 AND e.seq <= ?2 ORDER BY e.seq"
    ))?;
    let mut lo = first_seq;
    while lo <= last_seq {
        let hi = (lo + PAGE - 1).min(last_seq);
        let mut rows = stmt.query([lo, hi])?;
        let mut expected = lo;
        while let Some(r) = rows.next()? {
            let row = read_row(r)?;
            if row.seq != expected {
                anyhow::bail!("event {expected} is missing from the database");
            }
            expected += 1;
            f(&row)?;
        }
        if expected != hi + 1 {
            anyhow::bail!("event {expected} is missing from the database");
        }
        lo = hi + 1;
    }
    Ok(())
}

/// Event hashes of one buffer, in log order, and the buffer's first seq.
pub fn buffer_hashes(conn: &Connection, buffer: u64) -> rusqlite::Result<(i64, Vec<[u8; 32]>)> {
    let (first, count): (i64, i64) = conn
        .prepare_cached("SELECT first_seq, count FROM buffers WHERE idx = ?1")?
        .query_row([buffer as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut stmt = conn.prepare_cached("SELECT hash FROM events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq")?;
    let hashes = stmt
        .query_map([first, first + count], |r| r.get::<_, Vec<u8>>(0))?
        .map(|h| h.map(|h| h.try_into().unwrap_or([0; 32])))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((first, hashes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence for test data.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Events spread over 24 segments whose event-time ranges overlap, plus back-dated events in
    /// the newest segment, server events far ahead of the clients' times (outside the segments'
    /// ranges), a substring index over most segments, and a rare value that leaves pages unfilled
    /// (so statements take growing batches of segments): the segmented search must return exactly
    /// what one plain ordered query over the whole table returns, page after page.
    #[test]
    fn segmented_search_equals_a_plain_ordered_scan() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let ids: Vec<i64> = ["", "alice", "bob", "carol", "ws-1", "ws-2", "read", "write", "dave"]
            .iter()
            .map(|v| crate::store::intern(&conn, v).unwrap())
            .collect();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let mut insert = conn
            .prepare(
                "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                    read_only, type, buffer, hash, envelope)
                 VALUES (?1, randomblob(16), ?2, ?1, ?3, ?4, ?5, ?6, ?7, 0, 0, 0, zeroblob(32), '{}')",
            )
            .unwrap();
        for seg in 0..24i64 {
            for j in 0..100i64 {
                let seq = (seg << crate::store::SEG_SHIFT) + j;
                // Each segment's times overlap the next one's; a few are back-dated far.
                let mut t = seg * 3_000 + (next() % 5_000) as i64;
                if seg == 23 && j % 25 == 0 {
                    t = (next() % 2_000) as i64;
                }
                let pick = |k: u64, from: usize, n: u64| ids[from + (k % n) as usize];
                let (ws, mut actor, action) = (pick(next(), 4, 2), pick(next(), 1, 3), pick(next(), 6, 2));
                // A rare value, in a few segments only (the substring index rules the others out).
                if seg % 7 == 3 && next().is_multiple_of(12) {
                    actor = ids[8];
                }
                // The server's events, at a clock far ahead of the clients' times.
                let origin = if j % 40 == 7 { 2 } else { 0 };
                if origin == 2 {
                    t = 150_000 + seq;
                }
                insert.execute(rusqlite::params![seq, origin, t, ws, actor, action, ids[0]]).unwrap();
            }
        }
        drop(insert);
        conn.execute_batch(&format!(
            "INSERT INTO segments SELECT seq >> {s}, MIN(event_time), MAX(event_time) FROM events WHERE origin != 2
             GROUP BY seq >> {s}",
            s = crate::store::SEG_SHIFT
        ))
        .unwrap();
        // The substring index covers the first 20 segments; the last 4 are searched without it.
        for seg in 0..20 {
            stored_ngram::rebuild_segment(&conn, seg).unwrap();
        }
        stored_ngram::set_indexed_to(&conn, (20 << crate::store::SEG_SHIFT) - 1).unwrap();
        let fields = [
            (H2oField::Principal, "bob"),
            (H2oField::Workspace, "ws-2"),
            (H2oField::Action, "write"),
            (H2oField::Principal, "dave"),
        ];
        let mut checked = 0;
        for round in 0..60u64 {
            let mut q = H2oQuery {
                start_us: (next() % 60_000) as i64 - 1_000,
                limit: 1 + (next() % 70) as usize,
                ..Default::default()
            };
            q.end_us = q.start_us + 1 + (next() % 200_000) as i64;
            let filters = if round % 4 == 0 { 2 } else { 1 };
            for k in 0..filters {
                let (f, v) = fields[((round + k) % 4) as usize];
                q.exact.push((f, v.to_string()));
            }
            if round % 5 == 1 {
                // A regex on an interned column alone also takes the segmented path.
                q.exact.clear();
                q.regex.push((H2oField::Principal, "^(alice|carol)$".into()));
            }
            let mut pages = 0;
            loop {
                let (sql, _) = h2o_clauses(&q);
                let expected = window_search(&conn, &sql, q.limit).unwrap();
                let got = h2o_search(&conn, &q).unwrap();
                let key = |v: &[EventRow]| v.iter().map(|r| (r.event_time, r.seq)).collect::<Vec<_>>();
                assert_eq!(key(&got), key(&expected), "round {round} page {pages}");
                checked += got.len();
                match got.last() {
                    Some(last) if got.len() == q.limit && pages < 40 => q.after = Some((last.event_time, last.seq)),
                    _ => break,
                }
                pages += 1;
            }
        }
        assert!(checked > 1_000, "only {checked} rows compared");
    }

    /// Each filter column's segment query is answered from its clustered index (equality on the
    /// segment and the value, range on the time), without sorting: the index expression of
    /// migration 0005 and `SEG_SHIFT` agree.
    #[test]
    fn segment_queries_use_the_clustered_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        for (field, index) in [
            (H2oField::Principal, "events_seg_actor"),
            (H2oField::Workspace, "events_seg_workspace"),
            (H2oField::Action, "events_seg_action"),
        ] {
            let q = H2oQuery {
                start_us: 0,
                end_us: 10,
                exact: vec![(field, "x".into())],
                after: Some((5, 7)),
                limit: 50,
                ..Default::default()
            };
            let (sql, _) = h2o_clauses(&q);
            let found = query_plan(&conn, &sql, q.limit, 1);
            assert!(found.contains(&format!("SEARCH e USING INDEX {index} (<expr>=?")), "{field:?}: {found}");
            assert!(!found.contains("TEMP B-TREE"), "{field:?} sorts: {found}");
            // Several segments in one statement: one seek per segment in the same index (their
            // pages are merged by a bounded sort).
            let found = query_plan(&conn, &sql, q.limit, 8);
            assert!(found.contains(&format!("SEARCH e USING INDEX {index} (<expr>=?")), "{field:?} x8: {found}");
            // A regex: the matching values' entries are read from the same index.
            let q = H2oQuery { exact: vec![], regex: vec![(field, "^x".into())], ..q };
            let (sql, _) = h2o_clauses(&q);
            let found = query_plan(&conn, &sql, q.limit, 1);
            assert!(found.contains(&format!("SEARCH e USING INDEX {index} (<expr>=?")), "{field:?} regex: {found}");
        }
    }

    /// A full-text term driving the query (FTS5 in rowid order, stopping at the page) returns
    /// exactly what the same query with the term as an `IN (…MATCH…)` condition returns.
    #[test]
    fn fulltext_driven_search_equals_the_plain_query() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let names: Vec<i64> = ["", "alice", "bob"].iter().map(|v| crate::store::intern(&conn, v).unwrap()).collect();
        let mut next = xorshift(0x2545_f491_4f6c_dd1d_u64);
        for seq in 0..1_500i64 {
            // Skewed words: w0 is in most events, w9 in few.
            let body: Vec<String> = (0..4).map(|_| format!("w{}", (next() % 10).min(next() % 12))).collect();
            let actor = names[1 + (next() % 2) as usize];
            conn.execute(
                "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                    read_only, type, buffer, hash, envelope, purged_at)
                 VALUES (?1, randomblob(16), 1, ?1, ?1, ?2, ?3, ?2, ?2, 0, 0, 0, zeroblob(32), '{}', ?4)",
                rusqlite::params![seq, names[0], actor, (seq % 97 == 0).then_some(1)],
            )
            .unwrap();
            conn.execute("INSERT INTO events_fts(rowid, body) VALUES (?1, ?2)", rusqlite::params![seq, body.join(" ")])
                .unwrap();
        }
        conn.execute("UPDATE fts_state SET indexed_to = 1499", []).unwrap();
        let queries = [
            "text:w0",
            "text:w9",
            "text:w1 AND actor:alice",
            "actor:bob AND text:w3",
            "text:\"w2 w4\"",
            "text:w1 OR actor:bob",
            "text:w5 AND text:w0",
            "text:nowhere",
        ];
        let mut compared = 0;
        for round in 0..120u64 {
            let order_by = ["received_at", "received_at", "actor", "nonsense"][(round % 4) as usize];
            let q = PangeaQuery {
                expr: pangea_query::parse(queries[(round % queries.len() as u64) as usize]).unwrap(),
                start_us: (round % 3 == 0).then(|| (next() % 800) as i64),
                end_us: (round % 5 == 0).then(|| 700 + (next() % 800) as i64),
                after_seq: (round % 7 == 0).then(|| (next() % 1_000) as i64),
                ascending: round % 2 == 1,
                order_by: order_by.into(),
                max_results: 1 + (next() % 120) as usize,
                ..Default::default()
            };
            let plain = |drive| {
                let (sql, params) = pangea_sql(&q, drive);
                let mut stmt = conn.prepare(&sql).unwrap();
                stmt.query_map(params_from_iter(params.iter()), |r| r.get::<_, i64>(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
            };
            let got = pangea_search(&conn, &q).unwrap();
            assert_eq!(got, plain(false), "round {round}: {q:?}");
            assert_eq!(got, plain(true));
            compared += got.len();
        }
        assert!(compared > 2_000, "only {compared} rows compared");
        // The driven form is the one used, and it needs no sort.
        let q = PangeaQuery {
            expr: pangea_query::parse("text:w0 AND actor:alice").unwrap(),
            order_by: "received_at".into(),
            max_results: 50,
            ..Default::default()
        };
        let (sql, params) = pangea_sql(&q, true);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> =
            stmt.query_map(params_from_iter(params.iter()), |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert!(plan[0].starts_with("SCAN f VIRTUAL TABLE"), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// A config with custom fields over 12 segments of events (some purged, some of another
    /// config): every search the value index drives returns exactly what the plain SQL returns.
    #[test]
    fn index_driven_search_equals_the_plain_query() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open_rw(dir.path()).unwrap();
        // The catalog a config with these fields has (`configs::AuditConfig::catalog`).
        let field = |name: &str, kind, storage| QueryField { name: name.into(), kind, storage };
        let catalog = std::sync::Arc::new(Catalog {
            config: 1,
            fields: vec![
                field("tenant_id", FieldKind::Text, Storage::Tenant),
                field("message", FieldKind::Text, Storage::Envelope),
                field("user", FieldKind::Text, Storage::Indexed(1)),
                field("n", FieldKind::Integer, Storage::Indexed(2)),
                field("ok", FieldKind::Boolean, Storage::Indexed(3)),
                field("at", FieldKind::Datetime, Storage::Indexed(4)),
                Catalog::received_at(),
            ],
        });
        let config = crate::store::DEFAULT_CONFIG + 1;
        let (user, n, ok, at) = (1i64, 2i64, 3i64, 4i64);
        let names: Vec<i64> = ["", "t1", "t2"].iter().map(|v| crate::store::intern(&conn, v).unwrap()).collect();
        let mut next = xorshift(0x51_7cc1_b727_220a_u64);
        let total = 12 << crate::store::SEG_SHIFT;
        let tx = conn.transaction().unwrap();
        {
            let mut ev = tx
                .prepare(
                    "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                        read_only, type, buffer, hash, envelope, purged_at, config)
                     VALUES (?1, randomblob(16), 1, ?1 * 10, ?1, ?2, ?3, ?3, ?3, 0, 0, 0, zeroblob(32), ?4, ?5, ?6)",
                )
                .unwrap();
            let mut field = tx.prepare("INSERT INTO event_fields(seq, field, value) VALUES (?1, ?2, ?3)").unwrap();
            for seq in 0..total {
                let other = next().is_multiple_of(9);
                let purged = next().is_multiple_of(31);
                let u = format!("u{}", next() % 40);
                let envelope =
                    serde_json::json!({"event": {"message": format!("m{}", seq % 5), "user": u}}).to_string();
                let ws = names[1 + (next() % 2) as usize];
                ev.execute(rusqlite::params![
                    seq,
                    ws,
                    names[0],
                    if purged { String::new() } else { envelope },
                    purged.then_some(1),
                    if other { 0 } else { config },
                ])
                .unwrap();
                if other || purged {
                    continue;
                }
                field.execute(rusqlite::params![seq, user, u]).unwrap();
                field.execute(rusqlite::params![seq, n, (next() % 200) as i64 - 100]).unwrap();
                if next().is_multiple_of(2) {
                    field.execute(rusqlite::params![seq, ok, (next() % 2) as i64]).unwrap();
                }
                field
                    .execute(rusqlite::params![seq, at, 1_700_000_000_000_000 + (next() % 1000) as i64 * 1_000_000])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        let queries = [
            "user=u7",
            "n=5",
            "n>90",
            "n<=-95 AND user:u1",
            "ok:true",
            "ok<true",
            "at>=2023-11-14T22:20:00Z",
            "at=2023-11-14T22:13:21Z",
            "n>50 AND message:m3",
            "user=u3 OR n=1",
            "n<0 AND -user=u5 AND tenant_id:t1",
            "user=nobody",
            "n>=-20 AND n<30",
            "user:u2 AND n<=10 AND ok=true AND n>-10",
            "at>=2023-11-14T22:15:00Z AND at<2023-11-14T22:25:00Z",
        ];
        let mut compared = 0;
        for round in 0..160u64 {
            let text = queries[(round % queries.len() as u64) as usize];
            let q = PangeaQuery {
                expr: pangea_query::parse_in(text, &catalog).unwrap(),
                start_us: (round % 3 == 0).then(|| (next() % total as u64) as i64 * 10),
                end_us: (round % 5 == 0).then(|| (next() % total as u64) as i64 * 10 + 20_000),
                after_seq: (round % 7 == 0).then(|| (next() % total as u64) as i64),
                ascending: round % 2 == 1,
                order_by: "received_at".into(),
                max_results: 1 + (next() % 3000) as usize,
                allowed_workspaces: (round % 11 == 0).then(|| vec!["t2".to_string()]),
                catalog: Some(catalog.clone()),
                ..Default::default()
            };
            let (sql, params) = pangea_sql(&q, true);
            let mut stmt = conn.prepare(&sql).unwrap();
            let plain: Vec<i64> = stmt
                .query_map(params_from_iter(params.iter()), |r| r.get::<_, i64>(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let driven = index_driver(&q).is_some();
            assert_eq!(driven, !text.contains(" OR "), "{text}");
            assert_eq!(pangea_search(&conn, &q).unwrap(), plain, "round {round}: {text} {q:?}");
            compared += plain.len();
        }
        assert!(compared > 20_000, "only {compared} rows compared");
        // An exact filter alone reads the value index only.
        let q = PangeaQuery {
            expr: pangea_query::parse_in("n=5", &catalog).unwrap(),
            order_by: "received_at".into(),
            max_results: 10,
            catalog: Some(catalog.clone()),
            ..Default::default()
        };
        let d = index_driver(&q).unwrap();
        assert!(d.rest.is_none());
        // A range bounded on both sides is one slice of the index; the rest stays.
        let q = PangeaQuery { expr: pangea_query::parse_in("n<30 AND ok=true AND n>=-20", &catalog).unwrap(), ..q };
        let d = index_driver(&q).unwrap();
        assert_eq!(d.bounds.iter().map(|b| b.0).collect::<Vec<_>>(), ["<", ">="]);
        assert!(matches!(d.rest, Some(Expr::Term(_))), "{:?}", d.rest);
        // Equality and ranges, alone or with more conditions, read the segment's slice of the value
        // index (a range is never answered by walking the primary key over the whole window).
        let plan = |symbol: &str, rest: &Sql| -> String {
            let order = (symbol == "=").then_some(false);
            let sql = format!("EXPLAIN QUERY PLAN {}", indexed_query(&[symbol], rest, order));
            let mut params: Vec<SqlValue> = [0, n, 5, 0, 100].into_iter().map(SqlValue::Integer).collect();
            params.extend(rest.params.iter().cloned());
            if order.is_some() {
                params.push(SqlValue::Integer(10));
            }
            let mut stmt = conn.prepare(&sql).unwrap();
            let rows = stmt.query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
        };
        let mut rest = Sql::new();
        rest.push("e.purged_at IS NULL", []);
        for (symbol, want) in [("=", "value=?"), (">", "value>?"), ("<=", "value<?")] {
            let found = plan(symbol, &Sql::new());
            assert!(!found.contains("TEMP B-TREE"), "no sort by SQLite: {found}");
            assert!(
                found.contains(&format!("COVERING INDEX event_fields_seg_value (<expr>=? AND field=? AND {want}")),
                "{found}"
            );
            let found = plan(symbol, &rest);
            assert!(
                found.contains(&format!("INDEX event_fields_seg_value (<expr>=? AND field=? AND {want}")),
                "{found}"
            );
            // Several segments in one statement: one seek per segment, the same slices.
            for r in [&Sql::new(), &rest] {
                let sql = format!("EXPLAIN QUERY PLAN {}", indexed_query_segments(&[symbol], r));
                let mut params: Vec<SqlValue> = [n, 5, 0, 100].into_iter().map(SqlValue::Integer).collect();
                params.extend(r.params.iter().cloned());
                let segments = seq_array(vec![0, 2]);
                let mut all: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as &dyn rusqlite::ToSql).collect();
                all.push(&segments);
                let mut stmt = conn.prepare(&sql).unwrap();
                let rows = stmt.query_map(&all[..], |r| r.get::<_, String>(3)).unwrap();
                let found = rows.map(Result::unwrap).collect::<Vec<_>>().join("\n");
                assert!(
                    found.contains(&format!("INDEX event_fields_seg_value (<expr>=? AND field=? AND {want}")),
                    "{found}"
                );
            }
        }
    }

    #[test]
    fn candidate_checks_look_rows_up() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        for (ascending, text) in [(false, "abc actor:xyz -status:nope"), (true, "abc"), (false, "tashi elquus")] {
            let q = PangeaQuery {
                expr: pangea_query::parse(text).unwrap(),
                start_us: ascending.then_some(5),
                order_by: "received_at".into(),
                ascending,
                max_results: 10,
                ..Default::default()
            };
            let sql = pangea_where(&q);
            let query = format!("EXPLAIN QUERY PLAN {}", candidates_sql(&sql, if ascending { "ASC" } else { "DESC" }));
            let mut params: Vec<Box<dyn ToSql>> = vec![Box::new(seq_array(vec![1, 2, 3]))];
            params.extend(sql.params.iter().map(|p| Box::new(p.clone()) as Box<dyn ToSql>));
            let mut stmt = conn.prepare(&query).unwrap();
            let plan: Vec<String> =
                stmt.query_map(params_from_iter(params.iter()), |r| r.get(3)).unwrap().map(Result::unwrap).collect();
            let plan = plan.join("\n");
            assert!(plan.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)"), "{plan}");
            assert!(!plan.contains("SCAN e"), "{plan}");
        }
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", stored_ngram::SEGMENT_ROWS_SQL)).unwrap();
        let plan: Vec<String> = stmt
            .query_map([seq_array(vec![1, 2]), seq_array(vec![3, 4])], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(plan.iter().filter(|p| p.contains("USING INTEGER PRIMARY KEY (rowid=?)")).count(), 2, "{plan:?}");
        assert!(!plan.iter().any(|p| p.starts_with("SCAN ngram_")), "{plan:?}");
    }

    fn query_plan(conn: &Connection, sql: &Sql, limit: usize, segments: usize) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {}", segment_query(sql, limit, segments));
        let params = std::iter::repeat_n(SqlValue::Integer(0), segments).chain(sql.params.iter().cloned());
        let mut stmt = conn.prepare(&explain).unwrap();
        let plan: Vec<String> =
            stmt.query_map(params_from_iter(params), |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
        plan.join("\n")
    }
}
