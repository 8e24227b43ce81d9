//! The single writer: one OS thread owns the only read-write connection. Requests queue on a
//! bounded channel; each loop drains what is queued (group commit) into one transaction that
//! inserts rows, seals one buffer per workspace (of at most `BUFFER_MAX` events), appends the
//! buffer roots to the cold tree and signs every new root. After COMMIT it writes the checkpoint
//! file, and only then replies.
//!
//! Free-text rows are written in batches: FTS5 writes and merges a segment at every COMMIT that
//! touched it, which cost a small group more than its rows. The writer keeps the rows of recent
//! events in memory and stores them inside a group's transaction once `FTS_BATCH` are pending
//! (more for large groups), after `FTS_IDLE` without requests, before a purge, at stop, and when a search asks
//! (`WriterHandle::sync_fts`). `fts_state.indexed_to` (same transaction) says how far the index
//! goes; full-text searches see events up to it, and a restart indexes the events above it again
//! from their stored envelopes (the pending rows were only in memory).
//!
//! Disk full: the checkpoint file is written in place into blocks it already has, or, when it is
//! not yet a two-slot file, into a spare allocated before BEGIN (`ledger::prepare_checkpoint_spare`),
//! so running out of space fails the spare or the transaction, never the step after COMMIT. Either way nothing is stored and the requests get
//! `WriteError::Full` (503); the next group tries again, so writes resume by themselves once
//! space returns. Any other failure after COMMIT (an I/O error, the directory made unwritable)
//! leaves the group committed but unacknowledged: its replies are held (never a 5xx for stored
//! rows, never an ack before the file) while the file write is retried, and new work gets `Busy`.
//!
//! Segment summaries for the UI's timeline and top values (`aggregate`) are built off this thread
//! by the aggregate builder from committed rows; the writer stores each in a short transaction of
//! its own when it arrives, and rebuilds those a purge touches inside the purge's transaction.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::aggregate::{self, BuiltSegment};
use super::backup_copy;
use super::ngram::{self as stored_ngram, Built, GroupRows, Indexer, Keyed, SegmentRows};
use super::retention::{self, PurgeReport};
use super::tree::{TreeReader, load_recent_roots, load_tree, store_root_chunk};
use super::uidfilter::Uids;
use crate::config::Retention;
use crate::event::system;
use crate::event::{EnvelopeHead, FieldValue, NewEvent, Origin, StoredEvent};
use crate::ledger::cold::ColdTree;
use crate::ledger::merkle::{Hash, mth};
use crate::ledger::{Checkpoint, Ledger, SignedRoot, prepare_checkpoint_spare, write_checkpoint};
use crate::search::ngram;
use crate::time::format_micros;

/// Most events in one group commit.
const MAX_GROUP_EVENTS: usize = 20_000;
/// Most events in one buffer: a commit seals one buffer per workspace, and more when a workspace
/// brings more events. A search answer proves each event's membership in its buffer from all the
/// buffer's hashes (`store::search::buffer_hashes`), so small buffers keep pages of events spread
/// over the log (a filter on a custom field, a rare actor) cheap to prove.
pub const BUFFER_MAX: usize = 256;
/// Restarts (commits by other connections during the copy) after which an online backup gives up.
const MAX_BACKUP_RESTARTS: u32 = 8;
/// Queue depth (requests) before callers get `Busy`.
const QUEUE_DEPTH: usize = 4096;
/// Pending free-text rows are stored inside the group commit that brings them to
/// `FTS_BATCH`, or to four times the group's own events for large groups (bulk ingest: fewer,
/// larger FTS5 segments), but never more than `FTS_MAX_BATCH`.
const FTS_BATCH: usize = 1024;
const FTS_MAX_BATCH: usize = 16_384;
/// Pending free-text rows are stored after this long without requests.
const FTS_IDLE: Duration = Duration::from_millis(50);
/// Units of complete groups' substring-index rows moved to the clustered layout at once
/// (`store::ngram::cluster_step`): in a group commit once its events (and those before it since
/// the last move) make up for them, and in a transaction of the writer's own when it has nothing
/// else to do (a log migrated from before the layout is moved in the background).
const CLUSTER_STEP: i64 = 16;
/// Events of group commits per unit moved: 256 units per group of 64 segments of 4,096 events,
/// the pace of ingest; each commit also counts for `CLUSTER_BONUS_EVENTS` more, which catches a
/// backlog up under load.
const EVENTS_PER_UNIT: i64 = 1024;
const CLUSTER_BONUS_EVENTS: i64 = 256;
/// Events committed after which the checkpoint thread copies the WAL into the database file
/// (PASSIVE: it never blocks the writer). The writer's own automatic checkpoint, at 10,000 WAL
/// frames, then only copies what is left and lets the WAL start over.
const CHECKPOINT_EVENTS: u64 = 16_384;

/// The WAL checkpoint thread: a second connection that copies committed pages into the database
/// file while the writer goes on with the next transactions.
struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
    /// Checkpoints the thread has run (`WriterHandle::background_checkpoints`).
    runs: Arc<AtomicI64>,
    join: std::thread::JoinHandle<()>,
    /// Events committed since the thread was last woken.
    pending: u64,
}

impl Checkpointer {
    fn start(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let conn = super::open_side_rw(data_dir)?;
        let (wake, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let runs = Arc::new(AtomicI64::new(0));
        let counter = runs.clone();
        let join = std::thread::Builder::new().name("trailkeep-ckpt".into()).spawn(move || {
            while rx.recv().is_ok() {
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    Ok(()) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("trailkeep_wal_checkpoints_total").increment(1);
                    }
                    Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
                }
            }
        })?;
        Ok(Self { wake, runs, join, pending: 0 })
    }

    fn committed(&mut self, events: u64) {
        self.pending += events;
        if self.pending >= CHECKPOINT_EVENTS {
            self.pending = 0;
            // Full: a checkpoint is about to run anyway.
            let _ = self.wake.try_send(());
        }
    }

    fn stop(self) {
        drop(self.wake);
        let _ = self.join.join();
    }
}

#[derive(Debug)]
pub enum Outcome {
    /// Newly stored.
    Stored(StoredEvent),
    /// The same id with the same content was already stored: the original is returned.
    Existing(StoredEvent),
    /// The same id exists with different content.
    Conflict,
}

#[derive(Debug)]
pub struct Appended {
    pub outcomes: Vec<Outcome>,
    /// Cold-tree size right after this commit.
    pub tree_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the write queue is full")]
    Busy,
    #[error("the writer has stopped")]
    Stopped,
    #[error("storage full")]
    Full,
    #[error("storage failure: {0}")]
    Storage(String),
    /// The audit config the events were validated against changed (or was deleted) before they
    /// were stored: nothing was stored; validate again.
    #[error("the audit config changed")]
    ConfigChanged,
    /// The key store lacks the trail's root-signing key: nothing can be appended. The text says
    /// how to install the key (no path beyond the data directory's own layout).
    #[error("read-only: {0}")]
    ReadOnly(String),
}

/// The audit config and schema revision an append request's events were validated against; the
/// writer stores them only if the config still has that revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigStamp {
    pub num: i64,
    pub revision: i64,
}

/// Custom-field rows of one event (`event_fields`: field number, value).
pub type FieldRows = Vec<(i64, FieldValue)>;

/// An event, its envelope head and its substring-index keys, built by the submitting thread
/// (`seal`), with its config and custom-field rows. The event object itself is only needed for
/// the head and the keys: `seal` takes it out and frees it there, so the event's `event` map is
/// empty on the writer thread, which compares heads instead.
struct Sealed {
    event: NewEvent,
    head: EnvelopeHead,
    keys: Vec<u32>,
    config: i64,
    rows: FieldRows,
}

struct Job {
    events: Vec<Sealed>,
    stamp: Option<ConfigStamp>,
    reply: oneshot::Sender<Result<Appended, WriteError>>,
}

struct PurgeJob {
    retention: Retention,
    now: i64,
    /// Events purged so far, updated after each committed batch.
    progress: Arc<std::sync::atomic::AtomicU64>,
    reply: oneshot::Sender<Result<PurgeReport, WriteError>>,
}

enum Msg {
    Append(Job),
    Purge(PurgeJob),
    /// A segment's or a group's substring-index rows from the indexer thread.
    Ngram(Built),
    /// Store the pending free-text rows, then reply.
    SyncFts(oneshot::Sender<()>),
    /// A segment's summaries from the aggregate builder, to store.
    Aggregates(BuiltSegment),
    /// Copy the database into a new file (`WriterState::run_backup`).
    Backup(BackupJob),
    Stop,
}

struct BackupJob {
    to: PathBuf,
    /// Pages copied per step.
    pages: i32,
    reply: oneshot::Sender<Result<BackupCopy, WriteError>>,
}

/// What an online backup copied.
#[derive(Debug, Clone, Copy)]
pub struct BackupCopy {
    /// Database pages in the copy.
    pub pages: i64,
    /// Steps taken, and how often a write by another connection made the copy start over.
    pub steps: u64,
    pub restarts: u32,
}

/// How far the log and its free-text index go (seq; -1 for none), as of the last COMMIT.
#[derive(Debug)]
struct FtsProgress {
    committed: AtomicI64,
    indexed: AtomicI64,
}

/// A notification for live tail.
#[derive(Debug, Clone)]
pub struct Committed {
    pub event: StoredEvent,
    pub workspace: String,
    pub config: i64,
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    pub committed: broadcast::Sender<Arc<Committed>>,
    fts: Arc<FtsProgress>,
    checkpoints: Arc<AtomicI64>,
    backup_active: Arc<AtomicBool>,
}

impl WriterHandle {
    /// Appends events of the default config without custom fields (H2O, the server's own events).
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Appended, WriteError> {
        let events = events.into_iter().map(|e| seal(e, super::DEFAULT_CONFIG, Vec::new())).collect();
        self.submit(events, None).await
    }

    /// Appends events validated against the config and revision of `stamp`, each with its
    /// custom-field rows. Nothing is stored (`ConfigChanged`) if the config changed meanwhile.
    pub async fn append_to(
        &self,
        stamp: ConfigStamp,
        events: Vec<(NewEvent, FieldRows)>,
    ) -> Result<Appended, WriteError> {
        let events = events.into_iter().map(|(e, rows)| seal(e, stamp.num, rows)).collect();
        self.submit(events, Some(stamp)).await
    }

    async fn submit(&self, events: Vec<Sealed>, stamp: Option<ConfigStamp>) -> Result<Appended, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(Msg::Append(Job { events, stamp, reply })).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Busy,
            mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
        })?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Runs the retention purge for `retention` as of `now` (µs) on the writer thread, between
    /// group commits; the run is recorded by one event per workspace (`event::system::purge`).
    /// `progress` counts the events purged so far, batch by batch.
    pub async fn purge(
        &self,
        retention: Retention,
        now: i64,
        progress: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<PurgeReport, WriteError> {
        let (reply, rx) = oneshot::channel();
        let job = PurgeJob { retention, now, progress, reply };
        self.tx.send(Msg::Purge(job)).await.map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Waits until every event committed before the call is in the free-text index, so that a
    /// full-text search run next sees them (it sees events up to `fts_state.indexed_to`). Returns
    /// at once when nothing is pending; if the writer has stopped, the search sees what is stored.
    pub async fn sync_fts(&self) {
        if self.fts.indexed.load(Ordering::Acquire) >= self.fts.committed.load(Ordering::Acquire) {
            return;
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::SyncFts(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Copies the database into the new file `to` on the writer's connection, `pages` at a time
    /// between group commits (`WriterState::run_backup`). The copy ends at a commit: the signed
    /// root it holds vouches for all of it.
    pub async fn backup(&self, to: PathBuf, pages: i32) -> Result<BackupCopy, WriteError> {
        let (reply, rx) = oneshot::channel();
        let job = BackupJob { to, pages: pages.max(1), reply };
        self.tx.send(Msg::Backup(job)).await.map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// True while an online backup runs: writers on other connections (the keys' last use, the
    /// replication watermark) hold back, since each of their commits makes the copy start over.
    pub fn backup_active(&self) -> Arc<AtomicBool> {
        self.backup_active.clone()
    }

    /// WAL checkpoints run by the checkpoint thread so far.
    pub fn background_checkpoints(&self) -> i64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Asks the writer to finish what is queued, checkpoint the WAL and stop.
    pub async fn stop(&self) {
        let _ = self.tx.send(Msg::Stop).await;
    }
}

/// Starts the writer thread. It ends when every `WriterHandle` is dropped, after a TRUNCATE checkpoint.
/// `fts_text` gives a stored event's free-text body (for purges and for indexing after an unclean
/// stop).
pub fn spawn(
    conn: Connection,
    ledger: Arc<Ledger>,
    data_dir: PathBuf,
    fts_text: super::FtsText,
) -> anyhow::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let (committed, _) = broadcast::channel(1024);
    let backup_active = Arc::new(AtomicBool::new(false));
    // The state is made on the writer's thread (its connection is shared with an online backup
    // there, `Rc`): what the handle needs comes back once it is loaded.
    let (ready, started) = std::sync::mpsc::sync_channel(1);
    let (to_ngram, to_aggregates) = (tx.downgrade(), tx.downgrade());
    let (on_commit, active) = (committed.clone(), backup_active.clone());
    let join = std::thread::Builder::new().name("trailkeep-writer".into()).spawn(move || {
        let start = || -> anyhow::Result<(WriterState, tokio::runtime::Runtime)> {
            let mut state = WriterState::load(conn, ledger, data_dir, on_commit, fts_text)?;
            state.backup_active = active;
            state.checkpointer = Some(Checkpointer::start(&state.data_dir)?);
            let deliver =
                move |rows: Built| to_ngram.upgrade().is_some_and(|tx| tx.blocking_send(Msg::Ngram(rows)).is_ok());
            state.indexer = Some(Indexer::start(&state.data_dir, state.ngram_indexed, state.next_seq - 1, deliver)?);
            let deliver = move |b: BuiltSegment| {
                to_aggregates.upgrade().is_some_and(|tx| tx.blocking_send(Msg::Aggregates(b)).is_ok())
            };
            state.aggregates =
                Some(aggregate::Builder::start(&state.data_dir, state.agg_built, state.next_seq - 1, deliver)?);
            Ok((state, tokio::runtime::Builder::new_current_thread().enable_time().build()?))
        };
        match start() {
            Ok((mut state, clock)) => {
                let runs = state.checkpointer.as_ref().map(|c| c.runs.clone()).unwrap_or_default();
                let _ = ready.send(Ok((state.fts.clone(), runs)));
                // A purge run that stopped before its end (a crash) left its events pending.
                match state.log_pending_purges() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purge_events = n, "logged the purge events of an interrupted purge run"),
                    Err(e) => tracing::warn!(error = %e, "cannot log pending purge events; the next purge run does"),
                }
                state.run(rx, &clock);
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    })?;
    let (fts, checkpoints) = started.recv().context("the writer thread ended while starting")??;
    Ok((WriterHandle { tx, committed, fts, checkpoints, backup_active }, join))
}

struct WriterState {
    /// Shared only with an online backup in progress (`run_backup`), on this thread.
    conn: Rc<Connection>,
    /// True while an online backup runs (`WriterHandle::backup_active`).
    backup_active: Arc<AtomicBool>,
    checkpointer: Option<Checkpointer>,
    ledger: Arc<Ledger>,
    data_dir: PathBuf,
    next_seq: i64,
    last_received: i64,
    interned: HashMap<String, i64>,
    committed: broadcast::Sender<Arc<Committed>>,
    /// The newest signed root written by this writer's last transaction (`None` after a rollback
    /// until the next write): the checkpoint file is written from it without reading it back.
    newest_root: Option<SignedRoot>,
    /// Every stored event id, for the duplicate check of client-chosen ids.
    uids: Uids,
    /// Free-text rows (seq, text) of committed events not yet in `events_fts`, in seq order
    /// (plus, during a transaction, those of its events).
    fts_pending: Vec<(i64, String)>,
    fts: Arc<FtsProgress>,
    fts_text: super::FtsText,
    /// The thread building segment summaries, and the newest segment whose summaries are stored.
    aggregates: Option<aggregate::Builder>,
    agg_built: i64,
    /// The substring indexer thread (none until `spawn` starts it).
    indexer: Option<Indexer>,
    /// Keys of the current transaction's events, handed to the indexer after COMMIT.
    ngram_out: Vec<Keyed>,
    /// Segments built by the indexer, stored in the next transaction.
    ngram_pending: Vec<SegmentRows>,
    /// `ngram_state.indexed_to` as of the last COMMIT.
    ngram_indexed: i64,
    /// Groups built by the indexer, stored in the next transaction.
    ngram_groups_pending: Vec<GroupRows>,
    /// `ngram_group_state.grouped_to` (a segment) as of the last COMMIT, and as in the current
    /// transaction; the group size.
    ngram_grouped: i64,
    ngram_grouped_tx: i64,
    ngram_group_segments: i64,
    /// `ngram_cluster_state.moved` as of the last COMMIT, and as in the current transaction.
    ngram_moved: i64,
    ngram_moved_tx: i64,
    /// Events committed towards the next move (`EVENTS_PER_UNIT` per unit).
    ngram_credit: i64,
    /// Segments not yet stored that a purge touched: stored from the events, not the indexer.
    ngram_dirty: std::collections::BTreeSet<i64>,
    /// Online backups asked for, run one after the other (`run_backup`).
    backups: std::collections::VecDeque<BackupJob>,
    /// When the loop last did some work (the free-text rows' idle flush counts from it), and
    /// whether the last idle flush failed (the next waits for a message).
    idle_since: std::time::Instant,
    idle_flush_failed: bool,
    /// Purge jobs in progress, oldest first: one batch at a time between group commits.
    purges: std::collections::VecDeque<(PurgeJob, PurgeReport)>,
    /// No purge batch before this: after a batch, the writer serves appends alone for as long
    /// as the batch took (closed-loop clients, such as single-event ones, would otherwise get
    /// one request through per batch); no rest when nothing arrived during the batch.
    purge_rest_until: std::time::Instant,
    /// The wall clock (µs) receive times come from (a fixed one in tests).
    clock: fn() -> i64,
}

struct Pending {
    job: usize,
    item: usize,
    event: NewEvent,
    head: EnvelopeHead,
    keys: Vec<u32>,
    config: i64,
    rows: FieldRows,
}

fn seal(mut ev: NewEvent, config: i64, rows: FieldRows) -> Sealed {
    let head = EnvelopeHead::new(&ev);
    let keys = stored_ngram::event_keys(
        &ev.actor,
        &ev.action,
        &ev.workspace,
        ev.target.as_deref(),
        ev.source.as_deref(),
        ev.status.as_deref(),
        &ev.event,
    );
    drop(std::mem::take(&mut ev.event));
    Sealed { event: ev, head, keys, config, rows }
}

impl WriterState {
    fn load(
        conn: Connection,
        ledger: Arc<Ledger>,
        data_dir: PathBuf,
        committed: broadcast::Sender<Arc<Committed>>,
        fts_text: super::FtsText,
    ) -> anyhow::Result<Self> {
        let (next_seq, last_received): (i64, i64) =
            conn.query_row("SELECT COALESCE(MAX(seq) + 1, 0), COALESCE(MAX(received_at), 0) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        ledger.note_received(last_received);
        let uids = Uids::load(&conn, data_dir.clone())?;
        let indexed: i64 = conn.query_row("SELECT indexed_to FROM fts_state", [], |r| r.get(0))?;
        let ngram_indexed = stored_ngram::indexed_to(&conn)?;
        let groups = stored_ngram::group_state(&conn)?;
        let cluster = stored_ngram::cluster_state(&conn)?;
        let fts = Arc::new(FtsProgress { committed: AtomicI64::new(next_seq - 1), indexed: AtomicI64::new(indexed) });
        let agg_built = aggregate::built_to(&conn)?;
        let mut state = Self {
            conn: Rc::new(conn),
            backup_active: Default::default(),
            checkpointer: None,
            ledger,
            data_dir,
            next_seq,
            last_received,
            interned: HashMap::new(),
            committed,
            newest_root: None,
            uids,
            fts_pending: Vec::new(),
            fts,
            fts_text,
            aggregates: None,
            agg_built,
            indexer: None,
            ngram_out: Vec::new(),
            ngram_pending: Vec::new(),
            ngram_indexed,
            ngram_groups_pending: Vec::new(),
            ngram_grouped: groups.grouped_to,
            ngram_grouped_tx: groups.grouped_to,
            ngram_group_segments: groups.group_segments.max(1),
            ngram_moved: cluster.moved,
            ngram_moved_tx: cluster.moved,
            ngram_credit: 0,
            ngram_dirty: Default::default(),
            backups: Default::default(),
            idle_since: std::time::Instant::now(),
            idle_flush_failed: false,
            purges: Default::default(),
            purge_rest_until: std::time::Instant::now(),
            clock: crate::time::now_micros,
        };
        state.recover_fts(indexed)?;
        Ok(state)
    }

    /// Indexes the events above `indexed` (stored, but their free-text rows were pending in the
    /// memory of a writer that did not stop cleanly), from their stored envelopes.
    fn recover_fts(&mut self, indexed: i64) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, origin, envelope, config FROM events WHERE seq > ?1 AND purged_at IS NULL ORDER BY seq",
        )?;
        let rows = stmt.query_map([indexed], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })?;
        for row in rows {
            let (seq, origin, envelope, config) = row?;
            let value = match serde_json::from_str::<serde_json::Value>(&envelope) {
                Ok(v) => v,
                Err(e) => {
                    // `trailkeep verify` reports such a row; the server still starts.
                    tracing::warn!(seq, error = %e, "an event's envelope does not parse; its free text is not indexed");
                    continue;
                }
            };
            if let Some(ev) = value.get("event").and_then(|e| e.as_object()) {
                self.fts_pending.push((seq, (self.fts_text)(Origin::from_i64(origin), config, ev)));
            }
        }
        drop(stmt);
        if self.next_seq - 1 > indexed {
            tracing::info!(
                events = self.fts_pending.len(),
                "indexing the free text of events stored before an unclean stop"
            );
            if !self.flush_pending() {
                anyhow::bail!("cannot index the free text of events stored before an unclean stop");
            }
        }
        Ok(())
    }

    /// Inserts the pending free-text rows and moves `fts_state.indexed_to` to the newest event of
    /// the current transaction (inside it); the pending list is cleared by `fts_stored` after COMMIT.
    fn store_fts_pending(&mut self) -> rusqlite::Result<()> {
        let mut insert = self.conn.prepare_cached("INSERT INTO events_fts(rowid, body) VALUES (?1, ?2)")?;
        for (seq, body) in &self.fts_pending {
            insert.execute(params![seq, body])?;
        }
        self.conn.prepare_cached("UPDATE fts_state SET indexed_to = ?1")?.execute([self.next_seq - 1])?;
        Ok(())
    }

    /// After a COMMIT that stored the rows up to `upto`.
    fn fts_stored(&mut self, upto: i64) {
        self.fts_pending.retain(|(seq, _)| *seq > upto);
        self.fts.indexed.store(upto, Ordering::Release);
    }

    /// Stores the segments the indexer built (in order; one out of order is dropped, the indexer
    /// having been restarted) and moves `ngram_state.indexed_to`, inside the current transaction.
    /// A segment a purge touched is built from the stored events instead. Returns the new
    /// `indexed_to`; the pending list is cleared by `ngram_stored` after COMMIT.
    fn store_ngram_pending(&mut self, cluster_units: i64) -> rusqlite::Result<i64> {
        let mut upto = self.ngram_indexed;
        for seg in &self.ngram_pending {
            if seg.seg != (upto + 1) >> super::SEG_SHIFT {
                continue;
            }
            if self.ngram_dirty.contains(&seg.seg) {
                stored_ngram::rebuild_segment(&self.conn, seg.seg)?;
            } else {
                stored_ngram::store_segment(&self.conn, seg.seg, &seg.rows)?;
            }
            upto = ((seg.seg + 1) << super::SEG_SHIFT) - 1;
        }
        if upto != self.ngram_indexed {
            stored_ngram::set_indexed_to(&self.conn, upto)?;
        }
        // Groups in order: the one after the covered segments (one out of order is dropped, as
        // segments are).
        let mut grouped = self.ngram_grouped;
        for g in &self.ngram_groups_pending {
            if g.group == (grouped + 1) / self.ngram_group_segments && g.upto > grouped {
                stored_ngram::store_group(&self.conn, g.group, &g.rows)?;
                grouped = g.upto;
            }
        }
        if grouped != self.ngram_grouped {
            stored_ngram::set_grouped_to(&self.conn, grouped)?;
        }
        self.ngram_grouped_tx = grouped;
        // Complete groups' rows to the clustered layout, `CLUSTER_STEP` units at a time.
        self.ngram_moved_tx = self.ngram_moved;
        if self.ngram_moved >= self.cluster(self.ngram_moved).complete_units(upto) {
            // Nothing to move: no credit banked beyond one step.
            self.ngram_credit = self.ngram_credit.min(CLUSTER_STEP * EVENTS_PER_UNIT);
        } else if cluster_units > 0 {
            self.ngram_moved_tx = stored_ngram::cluster_step(&self.conn, upto, cluster_units)?;
            let moved = self.ngram_moved_tx - self.ngram_moved;
            self.ngram_credit = (self.ngram_credit - moved * EVENTS_PER_UNIT).max(0);
        }
        Ok(upto)
    }

    fn cluster(&self, moved: i64) -> stored_ngram::Cluster {
        stored_ngram::Cluster { group_segments: self.ngram_group_segments, moved }
    }

    /// After a COMMIT that stored the substring index up to `upto` (and the groups
    /// `store_ngram_pending` stored).
    fn ngram_stored(&mut self, upto: i64) {
        self.ngram_pending.clear();
        self.ngram_groups_pending.clear();
        self.ngram_dirty.retain(|seg| *seg > upto >> super::SEG_SHIFT);
        self.ngram_indexed = upto;
        self.ngram_grouped = self.ngram_grouped_tx;
        self.ngram_moved = self.ngram_moved_tx;
        if let Some(ix) = &self.indexer {
            ix.stored(upto);
        }
    }

    /// Rows from the indexer, for the next transaction.
    fn take_ngram(&mut self, built: Built) {
        match built {
            Built::Segment(rows) => self.ngram_pending.push(rows),
            Built::Group(rows) => self.ngram_groups_pending.push(rows),
        }
    }

    fn ngram_idle(&self) -> bool {
        self.ngram_pending.is_empty()
            && self.ngram_groups_pending.is_empty()
            && self.ngram_moved >= self.cluster(self.ngram_moved).complete_units(self.ngram_indexed)
    }

    /// After a COMMIT: the committed events' keys go to the indexer.
    fn hand_keys_over(&mut self) {
        let keys = std::mem::take(&mut self.ngram_out);
        if let Some(ix) = &self.indexer {
            ix.committed(keys, self.next_seq - 1);
        }
    }

    /// Stores the pending free-text rows and substring-index segments in a transaction of their
    /// own; false if that failed (they stay pending).
    fn flush_pending(&mut self) -> bool {
        if self.fts_pending.is_empty()
            && self.fts.indexed.load(Ordering::Acquire) >= self.next_seq - 1
            && self.ngram_idle()
        {
            return true;
        }
        let result = self.conn.execute_batch("BEGIN IMMEDIATE").and_then(|()| {
            self.store_fts_pending()?;
            let upto = self.store_ngram_pending(CLUSTER_STEP)?;
            self.conn.execute_batch("COMMIT")?;
            Ok(upto)
        });
        match result {
            Ok(upto) => {
                self.fts_stored(self.next_seq - 1);
                self.ngram_stored(upto);
                true
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::warn!(error = %e, "cannot store pending free-text rows; they stay pending");
                false
            }
        }
    }

    fn run(&mut self, mut rx: mpsc::Receiver<Msg>, clock: &tokio::runtime::Runtime) {
        loop {
            let stop = match self.backups.pop_front() {
                Some(job) => self.run_backup(job, &mut rx, clock),
                None => self.turn(&mut rx, clock, None),
            };
            if stop {
                break;
            }
        }
        for job in self.backups.drain(..) {
            let _ = job.reply.send(Err(WriteError::Stopped));
        }
        for (job, _) in self.purges.drain(..) {
            let _ = job.reply.send(Err(WriteError::Stopped));
        }
        // A purge run stopped here: what its committed batches purged is declared now.
        if let Err(e) = self.log_pending_purges() {
            tracing::warn!(error = %e, "cannot log pending purge events at stop; the next start does");
        }
        // Nothing more comes in; the indexer and the summary builder, if waiting to deliver a
        // segment, give up (what they had not delivered is built again at the next start).
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Ngram(rows) => self.take_ngram(rows),
                Msg::Aggregates(b) => self.store_aggregates(b),
                _ => {}
            }
        }
        if let Some(ix) = self.indexer.take() {
            ix.stop();
        }
        if let Some(b) = self.aggregates.take() {
            b.stop();
        }
        self.flush_pending();
        // After the last commit: the next start uses the filter's file as it is.
        self.uids.close(&self.conn);
        if let Some(c) = self.checkpointer.take() {
            c.stop();
        }
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        tracing::info!("writer stopped");
    }

    /// One round of the loop: waits for the next message (at most `cap`, when given: an online
    /// backup's pacing) and serves it, an append with the group queued behind it. True once a
    /// stop was asked for.
    fn turn(&mut self, rx: &mut mpsc::Receiver<Msg>, clock: &tokio::runtime::Runtime, cap: Option<Duration>) -> bool {
        let capped = |d: Duration| cap.map_or(d, |c| c.min(d));
        let next = if !self.purges.is_empty() {
            // A purge in progress goes on whenever nothing else is waiting and its last batch
            // has been rested for; meanwhile messages are served as they come.
            let rest = self.purge_rest_until.saturating_duration_since(std::time::Instant::now());
            if rest.is_zero() {
                match rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.purge_step();
                        // Nothing arrived during the batch: no rest, the next one goes on at once.
                        if rx.is_empty() {
                            self.purge_rest_until = std::time::Instant::now();
                        }
                        self.idle_since = std::time::Instant::now();
                        return false;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            } else {
                match clock.block_on(async { tokio::time::timeout(capped(rest), rx.recv()).await }) {
                    Ok(msg) => msg,
                    Err(_) => return false,
                }
            }
        } else if (self.fts_pending.is_empty() && self.ngram_idle()) || self.idle_flush_failed {
            match cap {
                None => rx.blocking_recv(),
                Some(cap) => match clock.block_on(async { tokio::time::timeout(cap, rx.recv()).await }) {
                    Ok(msg) => msg,
                    Err(_) => return false,
                },
            }
        } else {
            // After `FTS_IDLE` without work, the pending free-text rows are stored.
            let idle = FTS_IDLE.saturating_sub(self.idle_since.elapsed());
            match clock.block_on(async { tokio::time::timeout(capped(idle), rx.recv()).await }) {
                Ok(msg) => msg,
                Err(_) => {
                    if self.idle_since.elapsed() >= FTS_IDLE {
                        self.idle_flush_failed = !self.flush_pending();
                        self.idle_since = std::time::Instant::now();
                    }
                    return false;
                }
            }
        };
        self.idle_flush_failed = false;
        self.idle_since = std::time::Instant::now();
        let first = match next {
            Some(Msg::Append(j)) => j,
            Some(Msg::Ngram(rows)) => {
                self.take_ngram(rows);
                return false;
            }
            Some(Msg::Purge(p)) => {
                self.start_purge(p);
                return false;
            }
            Some(Msg::SyncFts(reply)) => {
                self.flush_pending();
                let _ = reply.send(());
                return false;
            }
            Some(Msg::Aggregates(b)) => {
                self.store_aggregates(b);
                return false;
            }
            Some(Msg::Backup(job)) => {
                self.backups.push_back(job);
                return false;
            }
            Some(Msg::Stop) | None => return true,
        };
        let mut n = first.events.len();
        let mut jobs = vec![first];
        let mut syncs = Vec::new();
        let mut stopping = false;
        while n < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(Msg::Append(j)) => {
                    n += j.events.len();
                    jobs.push(j);
                }
                Ok(Msg::SyncFts(reply)) => syncs.push(reply),
                Ok(Msg::Aggregates(b)) => self.store_aggregates(b),
                Ok(Msg::Ngram(rows)) => self.take_ngram(rows),
                Ok(Msg::Purge(p)) => self.start_purge(p),
                Ok(Msg::Backup(job)) => self.backups.push_back(job),
                Ok(Msg::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        stopping |= self.commit_group(jobs, rx, !syncs.is_empty());
        if !syncs.is_empty() {
            // Normally stored by the group's transaction; if that failed, on their own.
            self.flush_pending();
            for reply in syncs {
                let _ = reply.send(());
            }
        }
        // At most one purge batch per group commit, and only once the last one has been
        // rested for: appends wait for at most one batch, and a purge takes at most about
        // half of the writer's time however long it runs.
        if std::time::Instant::now() >= self.purge_rest_until {
            self.purge_step();
        }
        self.idle_since = std::time::Instant::now();
        stopping
    }

    /// Copies the database into the new file `job.to` with SQLite's online backup on this
    /// connection, `job.pages` at a time: after each step the loop serves the queue for at least
    /// as long as the step took, so a backup takes at most about half of the writer's time. No read
    /// transaction outlives a step, so checkpoints go on and the WAL stays as small as without a
    /// backup; a page a commit changes after it was copied reaches the copy with that commit
    /// (SQLite keeps a backup of the connection that writes up to date), so the copy ends at a
    /// commit. A commit by another connection makes the copy start over. True once a stop was
    /// asked for (the copy is abandoned and removed).
    fn run_backup(&mut self, job: BackupJob, rx: &mut mpsc::Receiver<Msg>, clock: &tokio::runtime::Runtime) -> bool {
        self.backup_active.store(true, Ordering::Release);
        let src = self.conn.clone();
        let mut stop = false;
        let mut copy = || -> anyhow::Result<Option<BackupCopy>> {
            let mut dest = backup_copy::open_target(&job.to)?;
            let flusher = backup_copy::Flusher::start(&job.to)?;
            let backup = rusqlite::backup::Backup::new(&src, &mut dest)?;
            let mut done = BackupCopy { pages: 0, steps: 0, restarts: 0 };
            let (mut copied, mut unflushed) = (0, 0);
            loop {
                let began = std::time::Instant::now();
                let step = backup.step(job.pages)?;
                done.steps += 1;
                unflushed += i64::from(job.pages);
                if unflushed >= backup_copy::FLUSH_PAGES {
                    unflushed = 0;
                    flusher.nudge();
                }
                let p = backup.progress();
                if p.pagecount - p.remaining < copied {
                    done.restarts += 1;
                    if done.restarts > MAX_BACKUP_RESTARTS {
                        anyhow::bail!(
                            "the database was changed by another connection {} times during the copy",
                            done.restarts
                        );
                    }
                }
                copied = p.pagecount - p.remaining;
                if step == rusqlite::backup::StepResult::Done {
                    done.pages = i64::from(p.pagecount);
                    return Ok(Some(done));
                }
                let until = std::time::Instant::now() + began.elapsed();
                loop {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    if self.turn(rx, clock, Some(left)) {
                        stop = true;
                        return Ok(None);
                    }
                }
            }
        };
        let result = copy();
        self.backup_active.store(false, Ordering::Release);
        let reply = match result {
            Ok(Some(done)) => Ok(done),
            Ok(None) => Err(WriteError::Stopped),
            Err(e) => {
                tracing::error!(error = %e, "online backup failed");
                Err(WriteError::Storage(format!("{e:#}")))
            }
        };
        if reply.is_err() {
            let _ = std::fs::remove_file(&job.to);
        }
        let _ = job.reply.send(reply);
        stop
    }

    /// Commits one group and replies. Returns true if a stop was requested meanwhile.
    /// With `index_now`, the group's transaction also stores every pending free-text row.
    fn commit_group(&mut self, jobs: Vec<Job>, rx: &mut mpsc::Receiver<Msg>, index_now: bool) -> bool {
        let mut inputs: Vec<(Option<ConfigStamp>, Vec<Sealed>)> = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            inputs.push((j.stamp, j.events));
            replies.push(j.reply);
        }
        let mut stop = false;
        if let Some(reason) = self.ledger.read_only() {
            for reply in replies {
                let _ = reply.send(Err(WriteError::ReadOnly(reason.to_string())));
            }
            return stop;
        }
        if let Err(e) = prepare_checkpoint_spare(&self.data_dir) {
            let full = e.kind() == std::io::ErrorKind::StorageFull;
            tracing::error!(error = %e, "cannot allocate the next checkpoint file; refusing writes (nothing stored)");
            for reply in replies {
                let _ = reply.send(Err(if full { WriteError::Full } else { WriteError::Storage(e.to_string()) }));
            }
            return stop;
        }
        // The filter's changed blocks are written here, and a full filter, rebuilt twice as large
        // on another thread, is swapped in.
        self.uids.maintain();
        match self.write(inputs, index_now) {
            Ok((results, tree_size, committed)) => {
                if let Err(e) = self.publish_checkpoint() {
                    // Committed but not yet in the checkpoint file: hold the replies (never ack
                    // before the checkpoint) and retry; meanwhile refuse new work with 503.
                    tracing::error!(error = %e, "cannot write the checkpoint file; holding replies and retrying");
                    let (ok, stopped) = self.retry_checkpoint(rx);
                    stop = stopped;
                    if !ok {
                        for reply in replies {
                            let _ = reply.send(Err(WriteError::Storage("checkpoint file not writable".into())));
                        }
                        return stop;
                    }
                }
                metrics::histogram!("trailkeep_group_commit_events").record(committed.len() as f64);
                metrics::counter!("trailkeep_events_ingested_total").increment(committed.len() as u64);
                if let Some(c) = &mut self.checkpointer {
                    c.committed(committed.len() as u64);
                }
                for (reply, outcomes) in replies.into_iter().zip(results) {
                    let _ = reply.send(outcomes.map(|outcomes| Appended { outcomes, tree_size }));
                }
                for c in committed {
                    let _ = self.committed.send(Arc::new(c));
                }
            }
            Err(e) => {
                // Rolled back (a failing COMMIT is rolled back too): re-derive all writer state
                // from the database, which is the authority on what is stored.
                tracing::error!(error = %e, "write failed and rolled back; nothing of this group was stored");
                self.interned.clear();
                if let Err(e) = self.reload_state() {
                    tracing::error!(error = %e, "cannot reload the writer state after a failed write");
                }
                let full = is_storage_full(&e);
                for reply in replies {
                    let _ = reply.send(Err(if full { WriteError::Full } else { WriteError::Storage(e.to_string()) }));
                }
            }
        }
        stop
    }

    /// Retries the checkpoint write until it succeeds or a stop is requested, answering queued
    /// requests with `Busy` (503, nothing stored) meanwhile. Returns (written, stop requested).
    fn retry_checkpoint(&mut self, rx: &mut mpsc::Receiver<Msg>) -> (bool, bool) {
        let mut stop = false;
        while !stop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Msg::Append(j) => {
                        let _ = j.reply.send(Err(WriteError::Busy));
                    }
                    Msg::Purge(p) => {
                        let _ = p.reply.send(Err(WriteError::Busy));
                    }
                    Msg::SyncFts(reply) => {
                        let _ = reply.send(());
                    }
                    Msg::Backup(job) => {
                        let _ = job.reply.send(Err(WriteError::Busy));
                    }
                    Msg::Aggregates(_) => {}
                    Msg::Ngram(rows) => self.take_ngram(rows),
                    Msg::Stop => stop = true,
                }
            }
            if self.publish_checkpoint().is_ok() {
                tracing::info!("checkpoint file written again; resuming");
                return (true, stop);
            }
        }
        (false, stop)
    }

    /// Queues a retention purge job (run by [`Self::purge_step`]), or refuses it on a read-only
    /// log.
    fn start_purge(&mut self, job: PurgeJob) {
        match self.ledger.read_only() {
            Some(reason) => {
                let _ = job.reply.send(Err(WriteError::ReadOnly(reason.to_string())));
            }
            None => self.purges.push_back((job, PurgeReport::default())),
        }
    }

    /// Purges the next batch of the oldest purge job, and replies once the job is done or failed.
    fn purge_step(&mut self) {
        let Some((job, mut report)) = self.purges.pop_front() else { return };
        let started = std::time::Instant::now();
        let batch = self.purge_batch(&job, &mut report);
        self.purge_rest_until = std::time::Instant::now() + started.elapsed();
        job.progress.store(report.purged, Ordering::Relaxed);
        let result = match batch {
            Ok(true) => {
                self.purges.push_front((job, report));
                return;
            }
            Ok(false) => self.log_pending_purges().map(|n| report.purge_events = n),
            Err(e) => Err(e),
        };
        let reply = match result {
            Ok(()) => {
                if report.purged > 0 {
                    tracing::info!(purged = report.purged, purge_events = report.purge_events, "retention purge");
                }
                metrics::counter!("trailkeep_events_purged_total").increment(report.purged);
                Ok(report)
            }
            Err(e) => {
                tracing::error!(error = %e, "retention purge failed; it resumes at the next run");
                self.interned.clear();
                if let Err(e) = self.reload_state() {
                    tracing::error!(error = %e, "cannot reload the writer state after a failed purge");
                }
                Err(WriteError::Storage(e.to_string()))
            }
        };
        let _ = job.reply.send(reply);
    }

    /// Purges one batch in one transaction, its rows added to the run's pending purge events
    /// (`purge_pending`); false when done.
    fn purge_batch(&mut self, job: &PurgeJob, report: &mut PurgeReport) -> anyhow::Result<bool> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let pending = self.fts_pending.len();
        let keyed = self.ngram_out.len();
        let indexed = self.next_seq - 1;
        let mut ngram_upto = self.ngram_indexed;
        let result = (|| -> anyhow::Result<bool> {
            // A purged row's free-text entry is deleted with its text: it must be stored first.
            self.store_fts_pending()?;
            ngram_upto = self.store_ngram_pending(0)?;
            let (batch, floor) = retention::next_batch(&self.conn, &job.retention, job.now)?;
            if let Some(f) = floor {
                retention::save_floor(&self.conn, &job.retention, f)?;
            }
            if batch.is_empty() {
                return Ok(false);
            }
            let empty = self.intern("")?;
            // The purged offsets of each segment touched.
            let mut segments = std::collections::BTreeMap::<i64, ngram::Bits>::new();
            let mut bodies = Vec::new();
            let mut seqs = Vec::new();
            for (_, _, rows) in &batch {
                for row in rows {
                    seqs.push(row.0);
                    if let Some(body) = retention::purged_text(row, &self.fts_text) {
                        bodies.push((row.0, body));
                    }
                    let offset = (row.0 & (ngram::SEGMENT_EVENTS as i64 - 1)) as usize;
                    segments.entry(row.0 >> super::SEG_SHIFT).or_insert_with(ngram::Bits::empty).insert(offset);
                }
            }
            retention::clear_rows(&self.conn, empty, seqs, job.now)?;
            // The substring index keeps no trigram of purged content: stored segments lose the
            // purged events' postings, segments still to come will be built from the store.
            for (&seg, gone) in &segments {
                if ((seg + 1) << super::SEG_SHIFT) - 1 <= ngram_upto {
                    stored_ngram::strip_segment(&self.conn, seg, gone)?;
                } else {
                    self.ngram_dirty.insert(seg);
                }
            }
            // Declared by the run's purge events, at its end.
            for (workspace, period, rows) in batch {
                let info = system::PurgeInfo {
                    workspace: workspace.clone(),
                    count: rows.len() as u64,
                    first_seq: rows.first().map_or(0, |r| r.0),
                    last_seq: rows.last().map_or(0, |r| r.0),
                    cutoff: job.now.saturating_sub(period),
                    period,
                };
                retention::add_pending(&self.conn, &info)?;
                report.purged += info.count;
                *report.workspaces.entry(workspace).or_default() += info.count;
            }
            // Stored summaries must not count purged events.
            for seg in segments.into_keys().filter(|s| *s <= self.agg_built) {
                aggregate::rebuild_segment(&self.conn, seg)?;
            }
            // Last: no statement after it makes FTS5 write a segment of its own.
            retention::forget_text(&self.conn, &bodies)?;
            Ok(true)
        })();
        match result {
            Ok(more) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.fts_pending.truncate(pending);
                    self.ngram_out.truncate(keyed);
                    return Err(e.into());
                }
                self.fts_stored(indexed);
                self.ngram_stored(ngram_upto);
                if let Some(b) = &self.aggregates {
                    b.purged();
                }
                Ok(more)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.fts_pending.truncate(pending);
                self.ngram_out.truncate(keyed);
                Err(e)
            }
        }
    }

    /// Logs the pending purge events (`purge_pending`: one per workspace, declaring the rows the
    /// batches since the last ones purged) and clears them, in one transaction; returns how many.
    fn log_pending_purges(&mut self) -> anyhow::Result<u64> {
        if self.ledger.read_only().is_some() {
            return Ok(0);
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let pending = self.fts_pending.len();
        let keyed = self.ngram_out.len();
        let result = (|| -> anyhow::Result<Vec<Committed>> {
            let infos = retention::take_pending(&self.conn)?;
            if infos.is_empty() {
                return Ok(Vec::new());
            }
            let events = infos.iter().map(|i| seal(system::purge(i), super::DEFAULT_CONFIG, Vec::new())).collect();
            let (_, _, committed) = self.write_in_tx(vec![events])?;
            Ok(committed)
        })();
        let committed = match result.and_then(|c| Ok(self.conn.execute_batch("COMMIT").map(|()| c)?)) {
            Ok(c) => c,
            Err(e) => {
                // Rolled back: the writer's state comes from the database again (the pending
                // rows stay for the next try).
                let _ = self.conn.execute_batch("ROLLBACK");
                self.fts_pending.truncate(pending);
                self.ngram_out.truncate(keyed);
                self.interned.clear();
                if let Err(e) = self.reload_state() {
                    tracing::error!(error = %e, "cannot reload the writer state after failing to log purge events");
                }
                return Err(e);
            }
        };
        self.ledger.roots_committed();
        // The purge events' own free-text rows stay pending, as an append's.
        self.hand_keys_over();
        self.fts.committed.store(self.next_seq - 1, Ordering::Release);
        if let Some(b) = &self.aggregates {
            b.committed(self.next_seq - 1);
        }
        let n = committed.len() as u64;
        if n > 0 {
            self.publish_checkpoint()?;
            metrics::counter!("trailkeep_events_ingested_total").increment(n);
            for c in committed {
                let _ = self.committed.send(Arc::new(c));
            }
        }
        Ok(n)
    }

    /// Stores a segment's summaries from the builder, in a transaction of their own, if they are
    /// the next ones and no purge committed since they were read (else they are dropped and the
    /// builder reads the segment again).
    fn store_aggregates(&mut self, b: BuiltSegment) {
        let Some(builder) = &self.aggregates else { return };
        if b.seg != self.agg_built + 1 || b.epoch != builder.epoch() {
            return;
        }
        let result = self.conn.execute_batch("BEGIN IMMEDIATE").and_then(|()| {
            aggregate::store_segment(&self.conn, b.seg, &b.summaries)?;
            aggregate::set_built_to(&self.conn, b.seg)?;
            self.conn.execute_batch("COMMIT")
        });
        match result {
            Ok(()) => {
                self.agg_built = b.seg;
                builder.stored(b.seg);
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::warn!(segment = b.seg, error = %e, "cannot store a segment summary; it is built again");
            }
        }
    }

    fn reload_state(&mut self) -> anyhow::Result<()> {
        self.newest_root = None;
        let (next_seq, last_received) = next_positions(&self.conn)?;
        self.next_seq = next_seq;
        self.last_received = self.last_received.max(last_received);
        let tree = load_tree(&self.conn)?;
        *self.ledger.tree.write() = tree;
        self.ledger.blocks.clear();
        let (first, prefixes) = load_recent_roots(&self.conn)?;
        self.ledger.set_recent_roots(first, prefixes);
        Ok(())
    }

    fn intern(&mut self, value: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.interned.get(value) {
            return Ok(*id);
        }
        let id = super::intern(&self.conn, value)?;
        if self.interned.len() > 200_000 {
            self.interned.clear();
        }
        self.interned.insert(value.to_string(), id);
        Ok(id)
    }

    /// Jobs whose config no longer has the revision they were validated against (changed or
    /// deleted by another connection): read inside the write transaction, so a config change and
    /// a write are ordered.
    fn stale_jobs(&self, inputs: &[(Option<ConfigStamp>, Vec<Sealed>)]) -> rusqlite::Result<Vec<bool>> {
        let mut seen: HashMap<i64, Option<i64>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached("SELECT revision FROM audit_configs WHERE num = ?1")?;
        let mut out = Vec::with_capacity(inputs.len());
        for (stamp, _) in inputs {
            let stale = match stamp {
                None => false,
                Some(s) => {
                    let rev = match seen.get(&s.num) {
                        Some(r) => *r,
                        None => {
                            let r = stmt.query_row([s.num], |r| r.get::<_, i64>(0)).optional()?;
                            seen.insert(s.num, r);
                            r
                        }
                    };
                    rev != Some(s.revision)
                }
            };
            out.push(stale);
        }
        Ok(out)
    }

    /// One group commit: per job its outcomes, or `ConfigChanged` for a job whose config changed.
    #[allow(clippy::type_complexity)]
    fn write(
        &mut self,
        inputs: Vec<(Option<ConfigStamp>, Vec<Sealed>)>,
        index_now: bool,
    ) -> anyhow::Result<(Vec<Result<Vec<Outcome>, WriteError>>, u64, Vec<Committed>)> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let pending = self.fts_pending.len();
        let keyed = self.ngram_out.len();
        let first_seq = self.next_seq;
        let result = self.stale_jobs(&inputs).map_err(anyhow::Error::from).and_then(|stale| {
            let events = inputs
                .into_iter()
                .zip(&stale)
                .map(|((_, events), stale)| if *stale { Vec::new() } else { events })
                .collect();
            let (outcomes, size, committed) = self.write_in_tx(events)?;
            let outcomes = outcomes
                .into_iter()
                .zip(stale)
                .map(|(o, stale)| if stale { Err(WriteError::ConfigChanged) } else { Ok(o) })
                .collect();
            Ok((outcomes, size, committed))
        });
        let result = result.and_then(|r| {
            let group = self.fts_pending.len() - pending;
            let index = index_now || self.fts_pending.len() >= (4 * group).clamp(FTS_BATCH, FTS_MAX_BATCH);
            if index {
                self.store_fts_pending()?;
            }
            self.ngram_credit += self.next_seq - first_seq + CLUSTER_BONUS_EVENTS;
            let steps = self.ngram_credit / (EVENTS_PER_UNIT * CLUSTER_STEP);
            let ngram_upto = self.store_ngram_pending(steps * CLUSTER_STEP)?;
            Ok((r, index, ngram_upto))
        });
        match result {
            Ok((r, indexed, ngram_upto)) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.fts_pending.truncate(pending);
                    self.ngram_out.truncate(keyed);
                    return Err(e.into());
                }
                self.ledger.roots_committed();
                let upto = self.next_seq - 1;
                self.fts.committed.store(upto, Ordering::Release);
                if let Some(b) = &self.aggregates {
                    b.committed(upto);
                }
                if indexed {
                    self.fts_stored(upto);
                }
                self.ngram_stored(ngram_upto);
                self.hand_keys_over();
                Ok(r)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.fts_pending.truncate(pending);
                self.ngram_out.truncate(keyed);
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn write_in_tx(&mut self, inputs: Vec<Vec<Sealed>>) -> anyhow::Result<(Vec<Vec<Outcome>>, u64, Vec<Committed>)> {
        let mut results: Vec<Vec<Option<Outcome>>> = inputs.iter().map(|v| v.iter().map(|_| None).collect()).collect();
        // Deduplicate against stored events and within this group.
        let mut seen: HashMap<Uuid, (usize, usize)> = HashMap::new();
        let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        let mut aliases: Vec<(usize, usize, usize, usize, bool)> = Vec::new();
        for (j, events) in inputs.into_iter().enumerate() {
            for (i, Sealed { event: ev, head, keys, config, rows }) in events.into_iter().enumerate() {
                if let Some(&(pj, pi)) = seen.get(&ev.uid) {
                    // Same id earlier in this group: resolved once that one is stored.
                    let earlier = groups.iter().flat_map(|(_, g)| g.iter()).find(|p| p.job == pj && p.item == pi);
                    let same = earlier.is_some_and(|p| p.head.same_event(&head) && p.event.signature == ev.signature);
                    aliases.push((j, i, pj, pi, same));
                    continue;
                }
                // Only H2O clients choose event ids; the server's own ids (UUIDv7 for Pangea
                // events, v4 for its own events) are fresh, and the unique index still guards them.
                let client_id = ev.origin == Origin::H2o;
                if let Some(stored) = if client_id { self.find_uid(ev.uid)? } else { None } {
                    let same = head.matches(&stored.envelope, ev.signature.as_deref());
                    results[j][i] = Some(if same { Outcome::Existing(stored) } else { Outcome::Conflict });
                    continue;
                }
                seen.insert(ev.uid, (j, i));
                let pending = Pending { job: j, item: i, event: ev, head, keys, config, rows };
                match group_of.get(&pending.event.workspace) {
                    Some(&g) if groups[g].1.len() < BUFFER_MAX => groups[g].1.push(pending),
                    _ => {
                        group_of.insert(pending.event.workspace.clone(), groups.len());
                        groups.push((pending.event.workspace.clone(), vec![pending]));
                    }
                }
            }
        }
        let mut committed = Vec::new();
        let mut per_config: BTreeMap<i64, i64> = BTreeMap::new();
        let mut segments: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let ledger = self.ledger.clone();
        let mut tree = ledger.tree.write();
        // The blocks completed by earlier transactions are committed: from now on they are read
        // from the cache or the database.
        for (index, block) in tree.take_completed() {
            ledger.blocks.insert(index, block);
        }
        let mut sealed: Vec<(u64, i64, usize, i64, Hash, Hash)> = Vec::with_capacity(groups.len());
        let mut chunks = Vec::new();
        for (workspace, group) in groups {
            let ws_id = self.intern(&workspace)?;
            let mut buffer = tree.len() as u64;
            let mut first_seq = self.next_seq;
            let mut hour = None;
            let mut hashes: Vec<Hash> = Vec::with_capacity(group.len());
            for mut p in group {
                let received_at = self.next_received_at();
                // A buffer never spans two UTC hours: replication cuts objects at whole buffers
                // and partitions them by the hour (`replication` module).
                let h = crate::time::hour_of(received_at);
                if hour.is_some_and(|prev| prev != h) {
                    let (buffer_root, root) = self.seal_buffer(&mut tree, &hashes, &mut chunks);
                    sealed.push((buffer, first_seq, hashes.len(), ws_id, buffer_root, root));
                    hashes.clear();
                    buffer = tree.len() as u64;
                    first_seq = self.next_seq;
                }
                hour = Some(h);
                let stored = self.insert_event(
                    &p.event,
                    p.head,
                    received_at,
                    (p.config, &p.rows),
                    (ws_id, buffer),
                    &mut segments,
                )?;
                self.fts_pending.push((stored.seq, std::mem::take(&mut p.event.fts_body)));
                self.ngram_out.push((stored.seq, p.keys));
                hashes.push(stored.hash);
                *per_config.entry(p.config).or_default() += 1;
                committed.push(Committed { event: stored.clone(), workspace: workspace.clone(), config: p.config });
                results[p.job][p.item] = Some(Outcome::Stored(stored));
            }
            let (buffer_root, root) = self.seal_buffer(&mut tree, &hashes, &mut chunks);
            sealed.push((buffer, first_seq, hashes.len(), ws_id, buffer_root, root));
        }
        // Every buffer of the transaction is published at its end. Only the transaction's last
        // root is signed when stored: it commits to every earlier leaf, and its published_at,
        // which the earlier roots share, authenticates theirs. An earlier root's signature is
        // made when it is asked for (`root_at`); Ed25519 is deterministic, so it is the same
        // signature as one made now.
        let published_at = self.last_received;
        let last = sealed.len().saturating_sub(1);
        for (k, (buffer, first_seq, count, ws_id, buffer_root, root)) in sealed.into_iter().enumerate() {
            let sig = if k == last {
                let at = format_micros(published_at);
                let sig = self.ledger.sign(buffer + 1, &root, &at).to_vec();
                self.newest_root = Some(SignedRoot {
                    tree_name: self.ledger.tree_name.clone(),
                    size: buffer + 1,
                    root_hash: hex::encode(root),
                    published_at: at,
                    signature: B64.encode(&sig),
                });
                sig
            } else {
                Vec::new()
            };
            self.conn
                .prepare_cached(
                    "INSERT INTO buffers(idx, first_seq, count, workspace, buffer_root, root_hash, published_at, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![buffer as i64, first_seq, count as i64, ws_id, &buffer_root[..], &root[..], published_at, sig])?;
        }
        let tree_size = tree.len() as u64;
        drop(tree);
        for (config, n) in per_config {
            self.conn
                .prepare_cached("UPDATE audit_configs SET events = events + ?1 WHERE num = ?2")?
                .execute([n, config])?;
        }
        for (chunk, prefixes) in chunks {
            store_root_chunk(&self.conn, chunk, &prefixes)?;
        }
        for (seg, (lo, hi)) in segments {
            self.conn
                .prepare_cached(
                    "INSERT INTO segments(seg, min_event_time, max_event_time) VALUES (?1, ?2, ?3)
                     ON CONFLICT(seg) DO UPDATE SET min_event_time = MIN(min_event_time, excluded.min_event_time),
                                                    max_event_time = MAX(max_event_time, excluded.max_event_time)",
                )?
                .execute(params![seg, lo, hi])?;
        }
        for (j, i, pj, pi, same) in aliases {
            results[j][i] = Some(match (&results[pj][pi], same) {
                (Some(Outcome::Stored(s)), true) => Outcome::Existing(s.clone()),
                _ => Outcome::Conflict,
            });
        }
        let outcomes =
            results.into_iter().map(|v| v.into_iter().map(|o| o.unwrap_or(Outcome::Conflict)).collect()).collect();
        Ok((outcomes, tree_size, committed))
    }

    /// The next receive time (µs): the wall clock, but strictly after the previous one.
    fn next_received_at(&mut self) -> i64 {
        let now = (self.clock)();
        let received_at = now.max(self.last_received + 1);
        self.last_received = received_at;
        self.ledger.note_received(received_at);
        received_at
    }

    /// Seals one buffer: its root becomes the next cold-tree leaf. Returns (buffer root, new root).
    fn seal_buffer(&self, tree: &mut ColdTree, hashes: &[Hash], chunks: &mut Vec<(u64, Vec<u32>)>) -> (Hash, Hash) {
        let buffer_root = mth(hashes).unwrap_or([0; 32]);
        tree.push(buffer_root);
        let root = tree.current_root().unwrap_or([0; 32]);
        chunks.extend(self.ledger.push_root(&root));
        (buffer_root, root)
    }

    /// Inserts one event received at `received_at` (of `config`, with its custom-field rows) into
    /// workspace `ws_id` and `buffer`, and widens its segment's event-time range in `segments` (a
    /// client's event only).
    fn insert_event(
        &mut self,
        ev: &NewEvent,
        head: EnvelopeHead,
        received_at: i64,
        (config, rows): (i64, &FieldRows),
        (ws_id, buffer): (i64, u64),
        segments: &mut BTreeMap<i64, (i64, i64)>,
    ) -> anyhow::Result<StoredEvent> {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Only H2O clients choose ids (see `write`): a Pangea event's UUIDv7 is never looked up.
        if ev.origin != Origin::Pangea {
            self.uids.insert(&ev.uid);
        }
        let (envelope, hash) = head.finish(&format_micros(received_at), ev.signature.as_deref());
        let event_time = ev.event_time.unwrap_or(received_at);
        // The server's events are found through their own indexes (migration 0014): their wall
        // clock would widen the segment's range of client event times.
        if ev.origin != Origin::Server {
            let range = segments.entry(seq >> super::SEG_SHIFT).or_insert((event_time, event_time));
            *range = (range.0.min(event_time), range.1.max(event_time));
        }
        let actor = self.intern(&ev.actor)?;
        let action = self.intern(&ev.action)?;
        let source = self.intern(&ev.event_source)?;
        self.conn
            .prepare_cached(
                "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                    target, source, status, status_code, read_only, type, buffer, hash, envelope, config)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?
            .execute(params![
                seq,
                &ev.uid.as_bytes()[..],
                ev.origin as i64,
                received_at,
                event_time,
                ws_id,
                actor,
                action,
                source,
                ev.target,
                ev.source,
                ev.status,
                ev.status_code,
                ev.read_only,
                ev.event_type as i64,
                buffer as i64,
                &hash[..],
                envelope,
                config,
            ])?;
        if !rows.is_empty() {
            let mut insert =
                self.conn.prepare_cached("INSERT INTO event_fields(seq, field, value) VALUES (?1, ?2, ?3)")?;
            for (field, value) in rows {
                match value {
                    FieldValue::Int(v) => insert.execute(params![seq, field, v])?,
                    FieldValue::Text(v) => insert.execute(params![seq, field, v])?,
                };
            }
        }
        Ok(StoredEvent { seq, uid: ev.uid, origin: ev.origin, received_at, buffer, hash, envelope })
    }

    /// The stored event with this id: the filter rules out almost every new id; a possible match
    /// is looked up segment by segment, newest first (a retry's original is usually recent).
    fn find_uid(&self, uid: Uuid) -> rusqlite::Result<Option<StoredEvent>> {
        if !self.uids.may_contain(&uid) {
            return Ok(None);
        }
        let mut stmt = self.conn.prepare_cached(&find_uid_sql())?;
        for seg in (0..=(self.next_seq - 1).max(0) >> super::SEG_SHIFT).rev() {
            let found = stmt.query_row(params![seg, &uid.as_bytes()[..]], |r| {
                Ok(StoredEvent {
                    seq: r.get(0)?,
                    uid,
                    origin: Origin::from_i64(r.get(1)?),
                    received_at: r.get(2)?,
                    buffer: r.get::<_, i64>(3)? as u64,
                    hash: r.get::<_, Vec<u8>>(4)?.try_into().unwrap_or([0; 32]),
                    envelope: r.get(5)?,
                })
            });
            if let Some(stored) = found.optional()? {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }

    fn publish_checkpoint(&self) -> anyhow::Result<()> {
        let root = match &self.newest_root {
            Some(r) => r.clone(),
            None => match latest_root(&self.conn, &self.ledger.tree_name)? {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        write_checkpoint(&self.data_dir, &Checkpoint { root, public_key: self.ledger.public_key_b64() })
    }
}

/// One segment's lookup of an event id (parameters: segment, id).
pub(super) fn find_uid_sql() -> String {
    format!(
        "SELECT seq, origin, received_at, buffer, hash, envelope FROM events WHERE (seq >> {}) = ?1 AND uid = ?2",
        super::SEG_SHIFT
    )
}

/// Whether a failed write ran out of disk space (SQLite's `SQLITE_FULL`, or `ENOSPC`).
fn is_storage_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>().and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DiskFull)
            || c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
    })
}

/// The next seq and the newest receive time in the database.
fn next_positions(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("SELECT COALESCE(MAX(seq) + 1, 0), COALESCE(MAX(received_at), 0) FROM events", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

/// The newest signed root stored in the database.
pub fn latest_root(conn: &Connection, tree_name: &str) -> rusqlite::Result<Option<SignedRoot>> {
    conn.query_row("SELECT idx, root_hash, published_at, signature FROM buffers ORDER BY idx DESC LIMIT 1", [], |r| {
        root_from_row(r, tree_name)
    })
    .optional()
}

/// The signed root of exactly `size`. A root stored without its signature (not the last of its
/// write transaction) is signed now, the same bytes as signing it when it was stored, but only
/// if it is the root of the in-memory tree at that size and shares its published_at with the
/// transaction's signed root; a row edited in the database is never signed (it is served
/// unsigned, and `verify` names it).
pub fn root_at(conn: &Connection, ledger: &Ledger, size: u64) -> rusqlite::Result<Option<SignedRoot>> {
    if size == 0 {
        return Ok(None);
    }
    let row = conn
        .prepare_cached("SELECT idx, root_hash, published_at, signature FROM buffers WHERE idx = ?1")?
        .query_row([size as i64 - 1], |r| Ok((root_from_row(r, &ledger.tree_name)?, r.get::<_, i64>(2)?)))
        .optional()?;
    let Some((mut root, published)) = row else { return Ok(None) };
    if root.signature.is_empty() {
        let covering: Option<i64> = conn
            .prepare_cached(
                "SELECT published_at FROM buffers WHERE idx > ?1 AND length(signature) > 0 ORDER BY idx LIMIT 1",
            )?
            .query_row([size as i64 - 1], |r| r.get(0))
            .optional()?;
        let in_tree = TreeReader::new(conn, ledger).root(size)?.map(hex::encode);
        if ledger.can_sign() && covering == Some(published) && in_tree.as_deref() == Some(root.root_hash.as_str()) {
            let hash: Hash = hex::decode(&root.root_hash).ok().and_then(|h| h.try_into().ok()).unwrap_or([0; 32]);
            root.signature = B64.encode(ledger.sign(root.size, &hash, &root.published_at));
        }
    }
    Ok(Some(root))
}

fn root_from_row(r: &rusqlite::Row<'_>, tree_name: &str) -> rusqlite::Result<SignedRoot> {
    Ok(SignedRoot {
        tree_name: tree_name.to_string(),
        size: r.get::<_, i64>(0)? as u64 + 1,
        root_hash: hex::encode(r.get::<_, Vec<u8>>(1)?),
        published_at: format_micros(r.get(2)?),
        signature: B64.encode(r.get::<_, Vec<u8>>(3)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    /// The duplicate check reads one segment's slice of the event-id index (here, not in
    /// store::search's tests: search does not import the writer).
    #[test]
    fn id_lookup_uses_the_clustered_id_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let explain = format!("EXPLAIN QUERY PLAN {}", find_uid_sql());
        let plan: String = conn.query_row(&explain, rusqlite::params![0, &[0u8; 16][..]], |r| r.get(3)).unwrap();
        assert_eq!(plan, "SEARCH events USING INDEX events_seg_uid (<expr>=? AND uid=?)");
    }

    fn event(workspace: &str, i: usize) -> Sealed {
        let mut ev = serde_json::Map::new();
        ev.insert("message".into(), serde_json::Value::String(format!("m{i}")));
        seal(
            NewEvent {
                uid: Uuid::new_v4(),
                origin: Origin::Pangea,
                workspace: workspace.into(),
                actor: String::new(),
                action: String::new(),
                event_source: "pangea".into(),
                target: None,
                source: None,
                status: None,
                status_code: None,
                read_only: false,
                event_type: EventType::Unspecified,
                event_time: None,
                fts_body: format!("m{i}"),
                event: ev,
                signature: None,
                public_key: None,
            },
            super::super::DEFAULT_CONFIG,
            Vec::new(),
        )
    }

    /// Receive times that cross an hour within one group: the workspace's events go into two
    /// buffers, each within one UTC hour (replication cuts objects at buffers, by the hour).
    #[test]
    fn a_buffer_never_spans_two_utc_hours() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_rw(dir.path()).unwrap();
        let ledger = Arc::new(Ledger::new(ColdTree::default(), "t".repeat(64), [3; 32]));
        let mut st = WriterState::load(
            conn,
            ledger,
            dir.path().to_path_buf(),
            broadcast::channel(16).0,
            super::super::standard_fts_text(),
        )
        .unwrap();
        // A wall clock stuck 2 µs before 2026-12-06T14:00:00Z: receive times go on from there.
        st.clock = || 1_796_565_600_000_000 - 2;
        let events = (0..5).map(|i| event("workspaces/a", i)).chain((5..7).map(|i| event("workspaces/b", i))).collect();
        st.write(vec![(None, events)], true).unwrap();
        let mut stmt = st
            .conn
            .prepare(
                "SELECT b.idx, b.count, MIN(e.received_at), MAX(e.received_at) FROM buffers b
                 JOIN events e ON e.buffer = b.idx GROUP BY b.idx ORDER BY b.idx",
            )
            .unwrap();
        let rows: Vec<(i64, i64, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![2, 3, 2], "{rows:?}");
        for (idx, _, lo, hi) in &rows {
            assert_eq!(crate::time::hour_of(*lo), crate::time::hour_of(*hi), "buffer {idx}");
        }
        // The tree holds the three buffers, and the transaction's last root is signed.
        assert_eq!(st.ledger.size(), 3);
        let root = latest_root(&st.conn, &st.ledger.tree_name).unwrap().unwrap();
        assert_eq!(root.size, 3);
        assert!(crate::ledger::verify_root_signature(&st.ledger.public_key(), &root));
    }
}
