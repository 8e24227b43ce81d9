//! The uploader: a thread with its own async runtime that copies committed buffers to the
//! target, whole buffers per object, and moves the watermark only after a confirmed upload.
//!
//! Exactly once: the next object `[next_leaf, last]` is planned from the log and recorded as
//! `pending_last` (a one-row transaction) before its upload starts; after a crash or restart the
//! same object is uploaded again first, under the same key with the same bytes (objects are a
//! function of the log), so no event ever lands in two objects and none is skipped. Each object
//! is its proof file, then its events (multipart above `PART` bytes); only when both are
//! confirmed does the watermark move past it. Failed uploads are retried with exponential backoff
//! and jitter for as long as it takes; ingest never waits (the log is read from the reader pool).
//!
//! Pacing: every `interval` the uploader takes the tree size and uploads everything committed
//! before it, in objects of at most `max_events` events that never span two UTC hours.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::layout::{self, Consistency, Proof, ProofBuffer};
use super::{FailureKind, Target, error_chain};
use crate::ledger::Ledger;
use crate::store::replication::{self as sql, Watermark};
use crate::store::{Pool, writer};
use crate::time::format_micros;

/// Multipart part size (S3's minimum, 5 MiB); smaller objects are one PUT. One part is in flight
/// at a time while the next fills, so an upload holds about two parts, whatever the object's size.
const PART: usize = 5 * 1024 * 1024;
/// Gzip output is handed to the upload in chunks of about this size (each one allocation of
/// `CHUNK_CAPACITY` bytes).
const CHUNK: usize = 512 * 1024;
/// Room past `CHUNK` for the compressor's last block (so a chunk's buffer never has to grow).
const CHUNK_CAPACITY: usize = CHUNK + 128 * 1024;
/// Longest wait between two attempts at an object.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What replication is configured to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub target: Target,
    pub interval: Duration,
    pub max_events: u64,
}

/// The failure that last stopped an upload.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub at: String,
    pub kind: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// `starting`, `idle`, `uploading`, `retrying`, `stopped` or `refused`.
    pub state: &'static str,
    pub replicated_leaves: u64,
    pub replicated_events: i64,
    /// Objects uploaded to this target in all (from the database).
    pub objects: u64,
    pub last_upload_at: Option<String>,
    pub consecutive_failures: u64,
    pub last_error: Option<LastError>,
}

/// The replication state shared with `/readyz`, `/metrics` and `GET /api/v1/replication`.
pub struct Status {
    pub settings: Settings,
    progress: Mutex<Progress>,
}

/// How far replication lags behind the log.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Lag {
    pub committed_events: i64,
    pub lag_events: i64,
    /// Age of the oldest event not yet replicated (0 when none is).
    pub lag_seconds: f64,
}

impl Status {
    pub fn new(settings: Settings) -> Self {
        Self { settings, progress: Mutex::new(Progress { state: "starting", ..Default::default() }) }
    }

    pub fn progress(&self) -> Progress {
        self.progress.lock().clone()
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock());
    }

    /// The lag now (a reader connection; two primary-key lookups), also set as the gauges.
    pub fn lag(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Lag> {
        let replicated = sql::replicated_seq(conn, self.settings.target.url())?;
        let (committed, _) = sql::committed(conn)?;
        let lag_seconds = match sql::received_at(conn, replicated)? {
            Some(at) if replicated < committed => {
                ((crate::time::now_micros() - at).max(0) as f64 / 1e6 * 1000.0).round() / 1000.0
            }
            _ => 0.0,
        };
        let lag = Lag { committed_events: committed, lag_events: (committed - replicated).max(0), lag_seconds };
        metrics::gauge!("trailkeep_replication_lag_events").set(lag.lag_events as f64);
        metrics::gauge!("trailkeep_replication_lag_seconds").set(lag.lag_seconds);
        Ok(lag)
    }

    /// The JSON of `GET /api/v1/replication` (and of `/readyz`'s `replication`).
    pub fn report(&self, conn: &rusqlite::Connection) -> rusqlite::Result<serde_json::Value> {
        let lag = self.lag(conn)?;
        let p = self.progress();
        let s = &self.settings;
        Ok(serde_json::json!({
            "enabled": true,
            "target": s.target.url(),
            "interval_seconds": s.interval.as_secs_f64(),
            "max_events": s.max_events,
            "state": p.state,
            "committed_events": lag.committed_events,
            "replicated_events": p.replicated_events,
            "replicated_leaves": p.replicated_leaves,
            "lag_events": lag.lag_events,
            "lag_seconds": lag.lag_seconds,
            "objects": p.objects,
            "last_upload_at": p.last_upload_at,
            "consecutive_failures": p.consecutive_failures,
            "last_error": p.last_error,
        }))
    }
}

/// What the uploader needs from the running server.
pub struct Handles {
    pub pool: Pool,
    pub ledger: Arc<Ledger>,
    pub data_dir: std::path::PathBuf,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// True while the writer takes an online backup (`WriterHandle::backup_active`).
    pub backup_active: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts the uploader thread. It stops when `shutdown` turns true.
pub fn spawn(settings: Settings, cx: Handles) -> anyhow::Result<(Arc<Status>, std::thread::JoinHandle<()>)> {
    let status = Arc::new(Status::new(settings));
    let st = status.clone();
    // Its blocking work runs on two threads that live as long as the uploader: a thread made
    // per object and left to end would leave the allocator's pages of each object's buffers
    // behind it, committed, until another thread happened to reuse them. Two, not one: while
    // the database reader waits for the upload to take its chunks, a `file://` target writes
    // each part on a blocking thread too.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .thread_name("trailkeep-replication-io")
        .build()?;
    let join = std::thread::Builder::new().name("trailkeep-replication".into()).spawn(move || {
        rt.block_on(async move {
            let mut u = match Uploader::new(st.clone(), cx) {
                Ok(u) => u,
                Err(e) => {
                    let message = error_text(&e);
                    tracing::error!(target = %st.settings.target, error = %message, "replication cannot start");
                    st.update(|p| {
                        p.state = "refused";
                        p.last_error = Some(LastError { at: now_text(), kind: "other", message });
                    });
                    return;
                }
            };
            u.run().await;
        });
    })?;
    Ok((status, join))
}

fn now_text() -> String {
    format_micros(crate::time::now_micros())
}

fn error_text(e: &anyhow::Error) -> String {
    super::redact(&format!("{e:#}"))
}

/// An upload failure: its kind and its (secret-free) text.
#[derive(Debug)]
struct Failure {
    kind: FailureKind,
    message: String,
}

impl Failure {
    fn store(e: object_store::Error) -> Self {
        Self { kind: FailureKind::of(&e), message: error_chain(&e) }
    }
    fn db(e: impl std::fmt::Display) -> Self {
        Self { kind: FailureKind::Database, message: super::redact(&e.to_string()) }
    }
}

struct Uploader {
    status: Arc<Status>,
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    pool: Pool,
    ledger: Arc<Ledger>,
    side: rusqlite::Connection,
    shutdown: tokio::sync::watch::Receiver<bool>,
    backup_active: Arc<std::sync::atomic::AtomicBool>,
    /// When the last "lag too high" warning was logged.
    warned_lag: Option<std::time::Instant>,
    warned_failure: Option<(std::time::Instant, FailureKind)>,
    data_dir: std::path::PathBuf,
    /// The bytes of `configs.json` known to be in the archive.
    configs_published: Option<Vec<u8>>,
}

impl Uploader {
    fn new(status: Arc<Status>, cx: Handles) -> anyhow::Result<Self> {
        let (store, prefix) = status.settings.target.open()?;
        let side = crate::store::open_side_rw(&cx.data_dir).context("cannot open the database for the watermark")?;
        Ok(Self {
            status,
            store,
            prefix,
            pool: cx.pool,
            ledger: cx.ledger,
            side,
            shutdown: cx.shutdown,
            backup_active: cx.backup_active,
            warned_lag: None,
            warned_failure: None,
            data_dir: cx.data_dir,
            configs_published: None,
        })
    }

    fn target(&self) -> &str {
        self.status.settings.target.url()
    }

    /// Waits while the writer takes an online backup: a commit on this connection would make the
    /// copy start over. Replication pauses at its next watermark write (before an object's
    /// upload, or after it) until the copy ends.
    async fn no_backup_running(&self) {
        while self.backup_active.load(std::sync::atomic::Ordering::Acquire) && !self.stopping() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `d` unless the server stops first; false when it stops.
    async fn sleep(&mut self, d: Duration) -> bool {
        let mut stop = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    async fn run(&mut self) {
        let wm = sql::watermark(&self.side, self.target()).unwrap_or_default();
        self.status.update(|p| {
            p.replicated_leaves = wm.next_leaf;
            p.replicated_events = wm.next_seq;
            p.objects = wm.objects;
        });
        tracing::info!(target = %self.status.settings.target, from_leaf = wm.next_leaf, "replication started");
        if self.retry(|u| Box::pin(u.publish_public_key())).await.is_none() {
            return self.stopped();
        }
        let interval = self.status.settings.interval;
        loop {
            let tick = tokio::time::Instant::now();
            // Everything committed before this tick goes out now; later buffers at the next one.
            // (From the database: the in-memory tree also holds the leaves of a transaction that
            // is not committed yet.)
            let end = match self.pool.get().map_err(Failure::db).and_then(|c| sql::committed(&c).map_err(Failure::db)) {
                Ok((_, leaves)) => leaves,
                Err(f) => {
                    self.failed(&f);
                    0
                }
            };
            loop {
                let wm = match sql::watermark(&self.side, self.target()) {
                    Ok(w) => w,
                    Err(e) => {
                        self.failed(&Failure::db(e));
                        break;
                    }
                };
                if wm.pending_last.is_none() && wm.next_leaf >= end {
                    break;
                }
                if self.retry(move |u| Box::pin(u.upload_next(end))).await.is_none() {
                    return self.stopped();
                }
                if self.stopping() {
                    return self.stopped();
                }
            }
            self.status.update(|p| {
                if p.state != "refused" {
                    p.state = "idle";
                }
            });
            self.check_lag();
            let elapsed = tick.elapsed();
            if !self.sleep(interval.saturating_sub(elapsed)).await {
                return self.stopped();
            }
        }
    }

    fn stopped(&mut self) {
        self.status.update(|p| p.state = "stopped");
        tracing::info!("replication stopped");
    }

    /// Runs `op` until it succeeds, waiting between attempts with exponential backoff and full
    /// jitter; `None` when the server stops first.
    async fn retry<T>(
        &mut self,
        mut op: impl for<'a> FnMut(&'a mut Self) -> std::pin::Pin<Box<dyn Future<Output = Result<T, Failure>> + 'a>>,
    ) -> Option<T> {
        let cap = MAX_BACKOFF.min(self.status.settings.interval.max(Duration::from_secs(2)));
        let mut delay = Duration::from_millis(500);
        loop {
            if self.stopping() {
                return None;
            }
            let mut stop = self.shutdown.clone();
            let outcome = tokio::select! {
                r = op(self) => r,
                _ = stop.wait_for(|s| *s) => return None,
            };
            match outcome {
                Ok(v) => {
                    self.status.update(|p| p.consecutive_failures = 0);
                    self.warned_failure = None;
                    return Some(v);
                }
                Err(f) => {
                    self.failed(&f);
                    self.check_lag();
                    let jittered = delay.mul_f64(0.5 + 0.5 * random_unit());
                    if !self.sleep(jittered).await {
                        return None;
                    }
                    delay = (delay * 2).min(cap);
                }
            }
        }
    }

    fn failed(&mut self, f: &Failure) {
        metrics::counter!("trailkeep_replication_failures_total", "kind" => f.kind.name()).increment(1);
        self.status.update(|p| {
            p.state = "retrying";
            p.consecutive_failures += 1;
            p.last_error = Some(LastError { at: now_text(), kind: f.kind.name(), message: f.message.clone() });
        });
        // One line per kind of failure and then once a minute, not one per attempt.
        let now = std::time::Instant::now();
        let quiet =
            self.warned_failure.is_some_and(|(at, k)| k == f.kind && now.duration_since(at) < Duration::from_secs(60));
        if !quiet {
            self.warned_failure = Some((now, f.kind));
            tracing::warn!(kind = f.kind.name(), error = %f.message, "replication upload failed; retrying");
        }
    }

    /// Logs a warning (at most once a minute) when the lag exceeds 10 × interval.
    fn check_lag(&mut self) {
        let Ok(conn) = self.pool.get() else { return };
        let Ok(lag) = self.status.lag(&conn) else { return };
        let limit = self.status.settings.interval.as_secs_f64() * 10.0;
        if lag.lag_seconds > limit && self.warned_lag.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            self.warned_lag = Some(std::time::Instant::now());
            tracing::warn!(
                lag_events = lag.lag_events,
                lag_seconds = lag.lag_seconds,
                interval_seconds = self.status.settings.interval.as_secs_f64(),
                "replication lag exceeds 10 x interval"
            );
        }
    }

    /// `PREFIX/public-key.pem`: written when absent; an archive of another key is refused.
    async fn publish_public_key(&mut self) -> Result<(), Failure> {
        let pem = public_key_pem(&self.ledger.public_key());
        let path = layout::key(&self.prefix, layout::PUBLIC_KEY_FILE);
        match self.store.get(&path).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(Failure::store)?;
                if bytes.as_ref() == pem.as_bytes() {
                    return Ok(());
                }
                let message = format!(
                    "{} already holds the archive of another trail (its public-key.pem differs); refusing to replicate there",
                    self.target()
                );
                tracing::error!("{message}");
                self.status.update(|p| {
                    p.state = "refused";
                    p.last_error = Some(LastError { at: now_text(), kind: "conflict", message: message.clone() });
                });
                // Stays refused (the operator must choose another prefix): never retried.
                std::future::pending::<()>().await;
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.store.put(&path, PutPayload::from(pem.into_bytes())).await.map_err(Failure::store)?;
                metrics::counter!("trailkeep_replication_uploads_total", "kind" => "public_key").increment(1);
                Ok(())
            }
            Err(e) => Err(Failure::store(e)),
        }
    }

    /// `PREFIX/configs.json`: rewritten when the database's audit configs differ from what the
    /// archive holds. Called after an object is planned and before it is uploaded: every config
    /// of its (committed) events exists by then, and configs holding events are never deleted.
    async fn publish_configs(&mut self) -> Result<(), Failure> {
        let pool = self.pool.clone();
        let data_dir = self.data_dir.clone();
        let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Failure> {
            let conn = pool.get().map_err(Failure::db)?;
            let configs = super::configs::read(&conn, &data_dir).map_err(|e| Failure::db(format!("{e:#}")))?;
            serde_json::to_vec_pretty(&configs).map_err(Failure::db)
        })
        .await
        .map_err(Failure::db)??;
        if self.configs_published.as_deref() == Some(&bytes[..]) {
            return Ok(());
        }
        let path = layout::key(&self.prefix, layout::CONFIGS_FILE);
        let current = match self.store.get(&path).await {
            Ok(found) => Some(found.bytes().await.map_err(Failure::store)?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(Failure::store(e)),
        };
        if current.as_deref() != Some(&bytes[..]) {
            self.store.put(&path, PutPayload::from(bytes.clone())).await.map_err(Failure::store)?;
            metrics::counter!("trailkeep_replication_uploads_total", "kind" => "configs").increment(1);
        }
        self.configs_published = Some(bytes);
        Ok(())
    }

    /// Plans (or resumes) the next object below leaf `end`, uploads it and moves the watermark.
    async fn upload_next(&mut self, end: u64) -> Result<u64, Failure> {
        let wm = sql::watermark(&self.side, self.target()).map_err(Failure::db)?;
        let max_events = self.status.settings.max_events;
        let last = match wm.pending_last {
            Some(last) => last,
            None => {
                let pool = self.pool.clone();
                let first = wm.next_leaf;
                let last = tokio::task::spawn_blocking(move || -> Result<Option<u64>, Failure> {
                    let conn = pool.get().map_err(Failure::db)?;
                    sql::plan(&conn, first, end, max_events).map_err(Failure::db)
                })
                .await
                .map_err(Failure::db)??;
                let Some(last) = last else {
                    return Err(Failure::db(format!("leaf {first} is not in the database")));
                };
                let planned = Watermark { pending_last: Some(last), ..wm };
                self.no_backup_running().await;
                sql::save_watermark(&self.side, self.target(), &planned, crate::time::now_micros())
                    .map_err(Failure::db)?;
                last
            }
        };
        self.status.update(|p| p.state = "uploading");
        self.publish_configs().await?;
        let proof = self.build_proof(wm.next_leaf, last).await?;
        let hour = {
            let pool = self.pool.clone();
            let seq = proof.first_seq;
            tokio::task::spawn_blocking(move || -> Result<i64, Failure> {
                let conn = pool.get().map_err(Failure::db)?;
                sql::received_at(&conn, seq).map_err(Failure::db)?.ok_or_else(|| Failure::db("event missing"))
            })
            .await
            .map_err(Failure::db)??
        };
        let hour = layout::hour_dir(hour);
        let name = |suffix| layout::object_name(&hour, wm.next_leaf, last, suffix);
        let proof_bytes = serde_json::to_vec_pretty(&proof).map_err(Failure::db)?;
        let proof_path = layout::key(&self.prefix, &name(layout::PROOF_SUFFIX));
        self.store.put(&proof_path, PutPayload::from(proof_bytes)).await.map_err(Failure::store)?;
        metrics::counter!("trailkeep_replication_uploads_total", "kind" => "proof").increment(1);
        let events_path = layout::key(&self.prefix, &name(layout::EVENTS_SUFFIX));
        let bytes = self.upload_events(&events_path, proof.first_seq, proof.last_seq).await?;
        metrics::counter!("trailkeep_replication_uploads_total", "kind" => "events").increment(1);
        metrics::counter!("trailkeep_replication_events_total").increment(proof.events);
        metrics::counter!("trailkeep_replication_bytes_total").increment(bytes);
        let done = Watermark {
            next_leaf: last + 1,
            next_seq: proof.last_seq + 1,
            pending_last: None,
            objects: wm.objects + 1,
        };
        self.no_backup_running().await;
        sql::save_watermark(&self.side, self.target(), &done, crate::time::now_micros()).map_err(Failure::db)?;
        self.status.update(|p| {
            p.replicated_leaves = done.next_leaf;
            p.replicated_events = done.next_seq;
            p.objects = done.objects;
            p.last_upload_at = Some(now_text());
        });
        tracing::debug!(object = %events_path, events = proof.events, bytes, "replicated");
        Ok(last)
    }

    /// The proof of leaves `first..=last`, from a reader connection and the in-memory tree.
    async fn build_proof(&self, first: u64, last: u64) -> Result<Proof, Failure> {
        let pool = self.pool.clone();
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get().map_err(Failure::db)?;
            build_proof(&conn, &ledger, first, last).map_err(Failure::db)
        })
        .await
        .map_err(Failure::db)?
    }

    /// Streams the gzipped lines of events `first_seq..=last_seq` into the object at `path`.
    async fn upload_events(&self, path: &ObjPath, first_seq: i64, last_seq: i64) -> Result<u64, Failure> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        let pool = self.pool.clone();
        let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let conn = pool.get()?;
            write_events(&conn, first_seq, last_seq, |chunk| {
                tx.blocking_send(chunk).map_err(|_| anyhow::anyhow!("upload abandoned"))
            })
        });
        let mut w = object_store::buffered::BufWriter::with_capacity(self.store.clone(), path.clone(), PART)
            .with_max_concurrency(1);
        let mut total = 0u64;
        let mut failure = None;
        while let Some(chunk) = rx.recv().await {
            total += chunk.len() as u64;
            if let Err(e) = w.put(chunk).await {
                failure = Some(Failure::store(e));
                break;
            }
        }
        drop(rx);
        let produced = producer.await.map_err(Failure::db).and_then(|r| r.map_err(|e| Failure::db(format!("{e:#}"))));
        if let Some(f) = failure {
            let _ = w.abort().await;
            return Err(f);
        }
        if let Err(f) = produced {
            let _ = w.abort().await;
            return Err(f);
        }
        w.shutdown().await.map_err(|e| {
            let e = object_store::Error::Generic { store: "replication", source: Box::new(e) };
            Failure::store(e)
        })?;
        Ok(total)
    }
}

/// A number in [0, 1) from the OS generator (backoff jitter).
fn random_unit() -> f64 {
    let b = crate::ledger::random_bytes::<8>();
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The trail's public key as an SPKI PEM (`PREFIX/public-key.pem`).
pub fn public_key_pem(key: &ed25519_dalek::VerifyingKey) -> String {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap_or_default()
}

/// The proof of leaves `first..=last`: their stored buffer rows, the signed root of size
/// `last + 1` (signed now if it was stored unsigned: the same bytes, Ed25519 being
/// deterministic) and the consistency proof from size `first`.
pub fn build_proof(conn: &rusqlite::Connection, ledger: &Ledger, first: u64, last: u64) -> anyhow::Result<Proof> {
    let rows = sql::buffers(conn, first, last)?;
    if rows.len() as u64 != last - first + 1 || rows.first().is_none_or(|r| r.idx != first) {
        anyhow::bail!("buffers {first}..={last} are not all in the database");
    }
    let signed_root = writer::root_at(conn, ledger, last + 1)?
        .filter(|r| !r.signature.is_empty())
        .with_context(|| format!("no signed root of size {}", last + 1))?;
    let consistency = if first == 0 {
        None
    } else {
        let mut tree = crate::store::tree::TreeReader::new(conn, ledger);
        let from_root = tree.root(first)?.context("the tree is shorter than the watermark")?;
        Some(Consistency {
            from_size: first,
            from_root: hex::encode(from_root),
            proof: tree.consistency(first, last + 1)?,
        })
    };
    let first_seq = rows[0].first_seq;
    let events: u64 = rows.iter().map(|r| r.count).sum();
    let buffers = rows
        .into_iter()
        .map(|r| ProofBuffer {
            leaf_index: r.idx,
            first_seq: r.first_seq,
            count: r.count,
            buffer_root: hex::encode(&r.buffer_root),
            root_hash: hex::encode(&r.root_hash),
            published_at: format_micros(r.published_at),
            signature: B64.encode(&r.signature),
        })
        .collect();
    Ok(Proof {
        format: layout::FORMAT,
        first_leaf: first,
        last_leaf: last,
        first_seq,
        last_seq: first_seq + events as i64 - 1,
        events,
        buffers,
        signed_root,
        consistency,
    })
}

/// Writes the gzipped JSON Lines of events `first_seq..=last_seq`, handing out chunks of about
/// `CHUNK` bytes. Deterministic: the same rows give the same bytes.
pub fn write_events(
    conn: &rusqlite::Connection,
    first_seq: i64,
    last_seq: i64,
    mut sink: impl FnMut(Bytes) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(CHUNK_CAPACITY), flate2::Compression::fast());
    let mut line = Vec::with_capacity(4096);
    crate::store::search::for_each_event(conn, first_seq, last_seq, |r| {
        line.clear();
        crate::export::write_line(&mut line, r, crate::export::LineProof::Omitted);
        line.push(b'\n');
        gz.write_all(&line)?;
        if gz.get_ref().len() >= CHUNK {
            let full = std::mem::replace(gz.get_mut(), Vec::with_capacity(CHUNK_CAPACITY));
            sink(Bytes::from(full))?;
        }
        Ok(())
    })?;
    let rest = gz.finish()?;
    if !rest.is_empty() {
        sink(Bytes::from(rest))?;
    }
    Ok(())
}
