//! `trailkeep restore --from-archive URL --data-dir DIR [--signing-key FILE]`: rebuilds a data
//! directory from an archive, verifying it on the way (`archive::Walk`): the events with their
//! columns, interned strings, free-text rows and segments, the buffers with their stored roots and
//! signatures, the tree name, the checkpoint file, and the audit configs of `configs.json` (each
//! event in its config, custom fields indexed as ingest indexes them; event-signing keys by their
//! public halves only). The database is built as
//! `trailkeep.db.restoring` and renamed into place only when complete, so an interrupted restore
//! leaves no database that could be served (run it again; `serve` refuses to start beside it).
//! The substring index (`store::ngram`) and the segment summaries (`store::aggregate`) are not
//! part of it: the restored server builds both from the stored rows when it starts (searches and
//! counts read the rows until they are built).
//!
//! A pipeline over threads: objects are fetched, gunzipped, parsed and checked a few at a time
//! (`archive::Walk`, the columns of every event derived there), their rows streamed in chunks as
//! they are checked; one thread inserts the events as they come, and each object's buffers once
//! it chained (one transaction per object); another builds the free-text index in a database file of its own
//! (`trailkeep.db.restoring-fts`, whose FTS5 tables are copied into the database at the end, while
//! the events' indexes are built), so tokenizing never holds up the row inserts.
//!
//! The archive carries the public key only (`public-key.pem`, checked against every signed root on
//! the way): the database records it. With `--signing-key` (the trail's Ed25519 key, PKCS#8 PEM,
//! which must match it) the key goes into the data directory's key store (`keys/root-signing.N.pem`,
//! 0600, sealed when a key passphrase is given) and the restored server continues the same trail;
//! without it the server serves the trail read-only (searches, proofs, exports; writes get 503
//! saying how to install the key).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{Connection, params};

use super::Target;
use super::archive::{Checked, Feed, Row, Walk, runtime};
use crate::event::{FieldValue, Origin};
use crate::keystore::{KeyInfo, KeyStore, Passphrase};
use crate::ledger::{Checkpoint, checkpoint_path, write_checkpoint};
use crate::store::{self, SEG_SHIFT};
use crate::{datadir, serverkeys};

/// The file a restore builds before renaming it to `trailkeep.db`.
pub const RESTORING: &str = "trailkeep.db.restoring";
/// The free-text index built beside it (copied into it at the end, then removed).
const RESTORING_FTS: &str = "trailkeep.db.restoring-fts";

pub fn restoring_path(data_dir: &Path) -> PathBuf {
    data_dir.join(RESTORING)
}

/// Removes a database file a restore was building, with its side files.
fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[derive(Debug)]
pub struct RestoreReport {
    pub objects: u64,
    pub events: u64,
    pub tree_size: u64,
    /// The trail's public key (base64), as the archive's `public-key.pem` and its roots say.
    pub public_key: String,
    /// The root-signing key file put into the key store, when `--signing-key` was given (the trail
    /// can go on); `None`: the restored trail is served read-only.
    pub root_signing: Option<KeyInfo>,
    pub timing: RestoreTiming,
}

/// Where a restore's time went. The stages overlap (a pipeline): objects are fetched and checked
/// while earlier ones are inserted and indexed, so only `total` and `finish` are wall clock; the
/// threads' figures are their CPU time (steadier than wall clock on a shared machine; zero where
/// the system does not say).
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreTiming {
    pub total: Duration,
    /// CPU time of the inserting thread (events, strings, buffers).
    pub insert_cpu: Duration,
    /// CPU time of the free-text thread (tokenizing, its final merge).
    pub free_text_cpu: Duration,
    /// After the last object: summary rows, the free-text index copied in, the switch to WAL.
    pub finish: Duration,
}

/// The CPU time (user + system) of the calling thread so far, from `/proc/thread-self/stat`
/// (clock ticks of 1/100 s); zero where it cannot be read.
fn thread_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else { return Duration::ZERO };
    // The fields after the command name (which is in parentheses and may hold spaces): state is
    // the first, utime and stime the 12th and 13th.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return Duration::ZERO };
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

/// Reads the trail's signing key: a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub fn read_signing_key(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim())
        .map_err(|_| anyhow::anyhow!("{}: not an Ed25519 private key in PKCS#8 PEM", path.display()))
}

pub fn restore_from_archive(
    url: &str,
    data_dir: &Path,
    signing_key: Option<&Path>,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<RestoreReport> {
    let started = Instant::now();
    let target = Target::parse(url)?;
    if store::db_path(data_dir).exists() || checkpoint_path(data_dir).exists() {
        bail!("{} already holds a database; restore into an empty directory", data_dir.display());
    }
    let key = signing_key.map(read_signing_key).transpose()?;
    datadir::prepare_dir(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    datadir::check_private(data_dir, "the data directory")?;
    // Opened (and a sealed file's passphrase checked) before the long part.
    let key_store = match &key {
        Some(_) => Some(KeyStore::open(&serverkeys::keys_dir(data_dir), passphrase)?),
        None => None,
    };
    let tmp = restoring_path(data_dir);
    let fts_tmp = data_dir.join(RESTORING_FTS);
    remove_db(&tmp);
    remove_db(&fts_tmp);
    datadir::touch_private(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    datadir::touch_private(&fts_tmp).with_context(|| format!("cannot create {}", fts_tmp.display()))?;
    let rt = runtime()?;
    let (walk, conn) = rt
        .block_on(async {
            let (store, prefix) = target.open()?;
            let walk = Walk::open(store, prefix, None).await?;
            anyhow::Ok(walk)
        })
        .and_then(|walk| {
            if let Some(k) = &key
                && k.verifying_key() != walk.key
            {
                bail!("the signing key given is not the key of this archive (its public-key.pem differs)");
            }
            Ok((walk, create(&tmp)?))
        })
        .inspect_err(|_| {
            remove_db(&tmp);
            remove_db(&fts_tmp);
        })?;
    let public = walk.key;
    let fail = |e: anyhow::Error| {
        remove_db(&tmp);
        remove_db(&fts_tmp);
        e
    };
    let configs = install_configs(&conn, walk.configs.as_ref()).map_err(fail)?;
    let fts = FtsBuilder::start(&fts_tmp, &conn).map_err(fail)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Checked>(2);
    let (feeds_tx, feeds) = std::sync::mpsc::channel::<std::sync::mpsc::Receiver<Vec<Row>>>();
    let db_path = tmp.clone();
    let inserter = std::thread::spawn(move || -> anyhow::Result<Inserter> {
        let mut ins = Inserter::new(conn, db_path, fts, configs);
        // Per object: its rows as they are checked, then the object once it chained. A walk that
        // stops early closes both (the file is then thrown away).
        for rows in feeds {
            ins.begin()?;
            for chunk in rows {
                ins.rows(chunk)?;
            }
            let Some(obj) = rx.blocking_recv() else { break };
            ins.end(obj)?;
        }
        ins.busy = thread_cpu();
        Ok(ins)
    });
    let report = rt.block_on(walk.run(Some(Feed { rows: feeds_tx, objects: tx })));
    let ins = inserter.join().map_err(|_| fail(anyhow::anyhow!("the restore stopped unexpectedly")))?;
    let mut ins = ins.map_err(fail)?;
    if let Some(problem) = report.problem {
        drop(ins);
        let _ = fail(anyhow::anyhow!("stopped"));
        bail!("the archive does not verify, nothing restored: {problem}");
    }
    let Some(last_root) = report.last_root.clone() else {
        drop(ins);
        let _ = fail(anyhow::anyhow!("stopped"));
        bail!("the archive holds no events");
    };
    let finishing = Instant::now();
    ins.finish(&target, &last_root.tree_name, &public, report.objects).map_err(fail)?;
    let mut timing = RestoreTiming {
        insert_cpu: ins.busy,
        free_text_cpu: ins.fts_busy,
        finish: finishing.elapsed(),
        ..Default::default()
    };
    drop(ins);
    remove_db(&fts_tmp);
    // The key file before the database: a restore cut short here is run again (the key file is
    // written idempotently), never a database whose key was meant to be installed but is not.
    let root_signing = match (&key, &key_store) {
        (Some(k), Some(ks)) => {
            let version = serverkeys::install_root_signing_key(ks, k).map_err(fail)?;
            ks.list()?.into_iter().find(|i| i.name == serverkeys::ROOT_SIGNING && i.version == version)
        }
        _ => None,
    };
    let db = store::db_path(data_dir);
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &db)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    write_checkpoint(data_dir, &Checkpoint { root: last_root, public_key: B64.encode(public.as_bytes()) })?;
    timing.total = started.elapsed();
    Ok(RestoreReport {
        objects: report.objects,
        events: report.events,
        tree_size: report.tree_size,
        public_key: B64.encode(public.as_bytes()),
        root_signing,
        timing,
    })
}

/// The archive's audit configs, recreated in the new database (`configs.json`; an archive
/// without it has default-config events only).
fn install_configs(
    conn: &Connection,
    archived: Option<&super::configs::ArchiveConfigs>,
) -> anyhow::Result<RestoredConfigs> {
    let ids = match archived {
        Some(a) => super::configs::install(conn, a)?,
        None => HashMap::new(),
    };
    let by_num = crate::configs::load_all(conn)?.into_iter().map(|c| (c.num, c)).collect();
    Ok(RestoredConfigs { ids, by_num, counts: HashMap::new() })
}

/// The restored configs: id → number, number → config, and events counted per config.
struct RestoredConfigs {
    ids: HashMap<String, i64>,
    by_num: HashMap<i64, crate::configs::AuditConfig>,
    counts: HashMap<i64, i64>,
}

/// A new database file with the current schema, tuned for one bulk load (no journal, no fsync
/// until the end: an interrupted restore is thrown away and run again). The indexes of `events`
/// stay during the load: rows arrive in seq order and every index leads with the segment
/// (`seq >> 12`) or the event time, so each insert lands on a cached page near the end. That costs
/// less CPU than building them at the end (a full scan of the table per index) and runs while the
/// next objects are checked rather than after all of them.
fn create(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -131_072)?;
    store::migrate(&mut conn)?;
    Ok(conn)
}

/// Free-text rows of one object: (seq, body).
type FtsRows = Vec<(i64, String)>;

/// The thread that builds the free-text index in a database file of its own (the same FTS5
/// definition as the database's `events_fts`), one transaction per object, with no incremental
/// merging during the load and one `optimize` at the end. Its FTS5 tables are then copied into the
/// database (`Inserter::finish`): the same index, built beside the row inserts rather than on
/// their thread.
struct FtsBuilder {
    tx: std::sync::mpsc::SyncSender<FtsRows>,
    thread: std::thread::JoinHandle<anyhow::Result<Duration>>,
    path: PathBuf,
}

impl FtsBuilder {
    fn start(path: &Path, main: &Connection) -> anyhow::Result<Self> {
        let definition: String =
            main.query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events_fts'", [], |r| {
                r.get(0)
            })?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.execute_batch(&definition)?;
        conn.execute_batch("INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', 0)")?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<FtsRows>(4);
        let thread =
            std::thread::Builder::new().name("restore-fts".into()).spawn(move || -> anyhow::Result<Duration> {
                for rows in rx {
                    conn.execute_batch("BEGIN")?;
                    let mut insert = conn.prepare_cached("INSERT INTO events_fts(rowid, body) VALUES (?1, ?2)")?;
                    for (seq, body) in &rows {
                        insert.execute(params![seq, body])?;
                    }
                    drop(insert);
                    conn.execute_batch("COMMIT")?;
                }
                conn.execute_batch("INSERT INTO events_fts(events_fts) VALUES ('optimize')")?;
                conn.close().map_err(|(_, e)| e)?;
                Ok(thread_cpu())
            })?;
        Ok(Self { tx, thread, path: path.to_path_buf() })
    }

    /// Hands one object's rows over; an error is the thread's own (it stopped).
    fn send(self, rows: FtsRows) -> Result<Self, anyhow::Error> {
        match self.tx.send(rows) {
            Ok(()) => Ok(self),
            Err(_) => Err(self.wait().err().unwrap_or_else(|| anyhow::anyhow!("the free-text index stopped"))),
        }
    }

    /// Waits for the index to be complete (every row inserted, merged into one segment): its
    /// file, and the CPU time the thread spent building it.
    fn wait(self) -> anyhow::Result<(PathBuf, Duration)> {
        drop(self.tx);
        let busy =
            self.thread.join().map_err(|_| anyhow::anyhow!("building the free-text index stopped unexpectedly"))??;
        Ok((self.path, busy))
    }
}

/// A string's id, from the cache of those already stored or stored now.
fn intern(conn: &Connection, strings: &mut HashMap<String, i64>, value: &str) -> rusqlite::Result<i64> {
    if let Some(id) = strings.get(value) {
        return Ok(*id);
    }
    let id = store::intern(conn, value)?;
    strings.insert(value.to_string(), id);
    Ok(id)
}

struct Inserter {
    conn: Connection,
    path: PathBuf,
    fts: Option<FtsBuilder>,
    strings: HashMap<String, i64>,
    segments: BTreeMap<i64, (i64, i64)>,
    next_seq: i64,
    /// The seq after the last event inserted.
    next_row: i64,
    next_leaf: u64,
    last_received: i64,
    now: i64,
    /// CPU time of the inserting thread.
    busy: Duration,
    /// CPU time of the free-text thread.
    fts_busy: Duration,
    configs: RestoredConfigs,
    /// The workspace of each buffer of the object being inserted (its first event's).
    buffer_ws: HashMap<u64, i64>,
}

impl Inserter {
    fn new(conn: Connection, path: PathBuf, fts: FtsBuilder, configs: RestoredConfigs) -> Self {
        Self {
            conn,
            path,
            fts: Some(fts),
            strings: HashMap::new(),
            segments: BTreeMap::new(),
            next_seq: 0,
            next_row: 0,
            next_leaf: 0,
            last_received: 0,
            now: crate::time::now_micros(),
            busy: Duration::ZERO,
            fts_busy: Duration::ZERO,
            configs,
            buffer_ws: HashMap::new(),
        }
    }

    fn intern(&mut self, value: &str) -> rusqlite::Result<i64> {
        intern(&self.conn, &mut self.strings, value)
    }

    /// Starts an object: one transaction for its events and buffers.
    fn begin(&mut self) -> anyhow::Result<()> {
        self.conn.execute_batch("BEGIN")?;
        self.buffer_ws.clear();
        Ok(())
    }

    /// Inserts a chunk of an object's events (in order).
    fn rows(&mut self, mut rows: Vec<Row>) -> anyhow::Result<()> {
        let mut fts_rows: FtsRows = Vec::with_capacity(rows.len());
        let empty = self.intern("")?;
        let conn = &self.conn;
        let strings = &mut self.strings;
        let mut insert_event = conn.prepare_cached(
            "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                target, source, status, status_code, read_only, type, buffer, hash, envelope, purged_at, config)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        )?;
        for row in &mut rows {
            let config = match &row.config_id {
                None => crate::configs::DEFAULT,
                Some(id) => *self.configs.ids.get(id).ok_or_else(|| {
                    anyhow::anyhow!("event {}: its config {id} is not declared in configs.json", row.seq)
                })?,
            };
            *self.configs.counts.entry(config).or_default() += 1;
            let (mut custom, field_rows) = Self::custom_columns(&self.configs, config, row)?;
            let c = match custom.as_mut() {
                Some(c) => c,
                None => &mut row.columns,
            };
            let ws = intern(conn, strings, &c.workspace)?;
            self.buffer_ws.entry(row.buffer).or_insert(ws);
            let purged = row.envelope.is_empty();
            let (actor, action, source) = if purged {
                (empty, empty, empty)
            } else {
                (
                    intern(conn, strings, &c.actor)?,
                    intern(conn, strings, &c.action)?,
                    intern(conn, strings, &c.event_source)?,
                )
            };
            // A purged event's receive time is not in the archive: one microsecond after the
            // previous event's keeps receive times strictly increasing with seq.
            let received_at = if purged { self.last_received + 1 } else { c.received_at };
            self.last_received = received_at;
            insert_event.execute(params![
                row.seq,
                &row.uid.as_bytes()[..],
                row.origin as i64,
                received_at,
                c.event_time,
                ws,
                actor,
                action,
                source,
                c.target,
                c.source,
                c.status,
                c.status_code,
                c.read_only,
                c.event_type,
                row.buffer as i64,
                &row.hash[..],
                row.envelope,
                purged.then_some(self.now),
                config,
            ])?;
            if !field_rows.is_empty() {
                let mut insert_field =
                    conn.prepare_cached("INSERT INTO event_fields(seq, field, value) VALUES (?1, ?2, ?3)")?;
                for (field, value) in field_rows {
                    match value {
                        FieldValue::Int(v) => insert_field.execute(params![row.seq, field, v])?,
                        FieldValue::Text(v) => insert_field.execute(params![row.seq, field, v])?,
                    };
                }
            }
            if let Some(body) = c.fts.take() {
                fts_rows.push((row.seq, body));
            }
            self.next_row = row.seq + 1;
            // As the writer keeps them: the server's events stay out of the segments' ranges.
            if row.origin != Origin::Server {
                let range = self.segments.entry(row.seq >> SEG_SHIFT).or_insert((c.event_time, c.event_time));
                *range = (range.0.min(c.event_time), range.1.max(c.event_time));
            }
        }
        drop(insert_event);
        let fts = self.fts.take().context("the free-text index is closed")?;
        self.fts = Some(fts.send(fts_rows)?);
        Ok(())
    }

    /// Ends an object whose events are in (and which verified): its buffers, then the commit.
    fn end(&mut self, obj: Checked) -> anyhow::Result<()> {
        let empty = self.intern("")?;
        let conn = &self.conn;
        let last = obj.proof.buffers.len() - 1;
        let mut insert_buffer = conn.prepare_cached(
            "INSERT INTO buffers(idx, first_seq, count, workspace, buffer_root, root_hash, published_at, signature)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (k, b) in obj.proof.buffers.iter().enumerate() {
            // The object's last root is signed in its proof even where the log stored it
            // unsigned (the same signature: Ed25519 is deterministic).
            let sig = if b.signature.is_empty() && k == last { &obj.proof.signed_root.signature } else { &b.signature };
            let published = crate::time::parse_rfc3339(&b.published_at).map(|(us, _)| us).context("published_at")?;
            insert_buffer.execute(params![
                b.leaf_index as i64,
                b.first_seq,
                b.count as i64,
                self.buffer_ws.get(&b.leaf_index).copied().unwrap_or(empty),
                &obj.roots[k][..],
                hex::decode(&b.root_hash)?,
                published,
                B64.decode(sig)?,
            ])?;
        }
        drop(insert_buffer);
        conn.execute_batch("COMMIT")?;
        if self.next_row != obj.proof.last_seq + 1 {
            bail!("{}: its events did not all arrive", obj.name.name());
        }
        self.next_seq = obj.proof.last_seq + 1;
        self.next_leaf = obj.proof.last_leaf + 1;
        Ok(())
    }

    /// For a Pangea event of a config other than the default one: its columns, free-text row and
    /// custom-field rows exactly as ingest derived them from the config's schema.
    #[allow(clippy::type_complexity)]
    fn custom_columns(
        configs: &RestoredConfigs,
        config: i64,
        row: &super::archive::Row,
    ) -> anyhow::Result<(Option<super::columns::Columns>, Vec<(i64, FieldValue)>)> {
        if config == crate::configs::DEFAULT || row.origin != Origin::Pangea || row.envelope.is_empty() {
            return Ok((None, Vec::new()));
        }
        let cfg = configs.by_num.get(&config).context("a restored config is missing")?;
        let env: serde_json::Value = serde_json::from_str(&row.envelope)?;
        let checked = crate::configs::schema::check_event(&cfg.fields, env.get("event"), "").map_err(|p| {
            anyhow::anyhow!(
                "event {}: does not fit its config {}'s schema: {}",
                row.seq,
                cfg.id,
                p.first().map(|p| p.detail.as_str()).unwrap_or("")
            )
        })?;
        let mut c = row.columns.clone();
        c.actor = checked.actor.unwrap_or_default();
        c.action = checked.action.unwrap_or_default();
        c.workspace = checked.tenant.unwrap_or_default();
        c.target = checked.target;
        c.source = checked.source;
        c.status_code = checked.status.as_deref().and_then(|s| s.parse::<i32>().ok()).map(i64::from);
        c.status = checked.status;
        c.fts = Some(cfg.fts_text(&checked.event));
        Ok((Some(c), checked.rows))
    }

    fn finish(
        &mut self,
        target: &Target,
        tree_name: &str,
        public: &ed25519_dalek::VerifyingKey,
        objects: u64,
    ) -> anyhow::Result<()> {
        let c = &self.conn;
        c.execute_batch("BEGIN")?;
        for (seg, (lo, hi)) in &self.segments {
            c.execute(
                "INSERT INTO segments(seg, min_event_time, max_event_time) VALUES (?1, ?2, ?3)",
                params![seg, lo, hi],
            )?;
        }
        c.execute("UPDATE fts_state SET indexed_to = ?1", [self.next_seq - 1])?;
        for (num, events) in &self.configs.counts {
            c.execute("UPDATE audit_configs SET events = ?1 WHERE num = ?2", params![events, num])?;
        }
        store::put_setting(c, "tree_name", tree_name.as_bytes())?;
        // Only the public key: private keys live in the key store, never in the database.
        store::put_setting(c, store::PUBLIC_KEY, public.as_bytes())?;
        // The archive it came from already holds all of it.
        let wm = store::replication::Watermark {
            next_leaf: self.next_leaf,
            next_seq: self.next_seq,
            pending_last: None,
            objects,
        };
        store::replication::save_watermark(c, target.url(), &wm, self.now)?;
        c.execute_batch("COMMIT")?;
        // The free-text index: its FTS5 tables copied as they are (the same definition).
        let (fts, fts_busy) = self.fts.take().context("the free-text index is closed")?.wait()?;
        self.fts_busy = fts_busy;
        let shadow: Vec<String> = c
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table'
                 AND name IN ('events_fts_data', 'events_fts_idx', 'events_fts_content', 'events_fts_docsize', 'events_fts_config')",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        c.execute("ATTACH DATABASE ?1 AS fts_src", [fts.to_str().context("a data directory path that is not UTF-8")?])?;
        c.execute_batch("BEGIN")?;
        for table in &shadow {
            c.execute_batch(&format!(
                "DELETE FROM main.\"{table}\"; INSERT INTO main.\"{table}\" SELECT * FROM fts_src.\"{table}\";"
            ))?;
        }
        c.execute_batch("COMMIT; DETACH DATABASE fts_src;")?;
        // A new connection: the FTS5 table of this one cached the empty index.
        let conn = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        conn.close().map_err(|(_, e)| e)?;
        self.conn = Connection::open(&self.path)?;
        let c = &self.conn;
        c.pragma_update(None, "journal_mode", "OFF")?;
        // Incremental merging as the writer has it.
        c.execute_batch("INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', 4)")?;
        c.pragma_update(None, "synchronous", "FULL")?;
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("cannot switch the restored database to WAL");
        }
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(())
    }
}
