//! `trailkeep restore --from-archive URL --data-dir DIR [--signing-key FILE]`: rebuilds a data
//! directory from an archive, verifying it on the way (`archive::Walk`): the events with their
//! columns, interned strings, free-text rows and segments, the buffers with their stored roots and
//! signatures, the tree name, the checkpoint file, and the audit configs of `configs.json` (each
//! event in its config, custom fields indexed as ingest indexes them; event-signing keys by their
//! public halves only). The database is built as
//! `trailkeep.db.restoring` and renamed into place only when complete, so an interrupted restore
//! leaves no database that could be served (run it again; `serve` refuses to start beside it).
//!
//! The archive carries the public key only (`public-key.pem`, checked against every signed root on
//! the way): the database records it. With `--signing-key` (the trail's Ed25519 key, PKCS#8 PEM,
//! which must match it) the key goes into the data directory's key store (`keys/root-signing.N.pem`,
//! 0600, sealed when a key passphrase is given) and the restored server continues the same trail;
//! without it the server serves the trail read-only (searches, proofs, exports; writes get 503
//! saying how to install the key).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{Connection, params};

use super::Target;
use super::archive::{Checked, Walk, runtime};
use crate::event::{FieldValue, Origin};
use crate::keystore::{KeyInfo, KeyStore, Passphrase};
use crate::ledger::{Checkpoint, checkpoint_path, write_checkpoint};
use crate::store::{self, SEG_SHIFT};
use crate::{datadir, serverkeys};

/// The file a restore builds before renaming it to `trailkeep.db`.
pub const RESTORING: &str = "trailkeep.db.restoring";

pub fn restoring_path(data_dir: &Path) -> PathBuf {
    data_dir.join(RESTORING)
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
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    datadir::touch_private(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
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
        })?;
    let (conn, indexes) = conn;
    let public = walk.key;
    let configs = match install_configs(&conn, walk.configs.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Checked>(2);
    let inserter = std::thread::spawn(move || -> anyhow::Result<Inserter> {
        let mut ins = Inserter::new(conn, indexes, configs);
        while let Some(obj) = rx.blocking_recv() {
            ins.insert(obj)?;
        }
        Ok(ins)
    });
    let report = rt.block_on(walk.run(true, Some(tx)));
    let ins = inserter.join().map_err(|_| anyhow::anyhow!("the restore stopped unexpectedly"))?;
    let fail = |e: anyhow::Error| {
        let _ = std::fs::remove_file(&tmp);
        e
    };
    let mut ins = ins.map_err(fail)?;
    if let Some(problem) = report.problem {
        let _ = std::fs::remove_file(&tmp);
        bail!("the archive does not verify, nothing restored: {problem}");
    }
    let Some(last_root) = report.last_root.clone() else {
        let _ = std::fs::remove_file(&tmp);
        bail!("the archive holds no events");
    };
    ins.finish(&target, &last_root.tree_name, &public, report.objects).map_err(fail)?;
    drop(ins);
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
    Ok(RestoreReport {
        objects: report.objects,
        events: report.events,
        tree_size: report.tree_size,
        public_key: B64.encode(public.as_bytes()),
        root_signing,
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
/// until the end: an interrupted restore is thrown away and run again). The secondary indexes of
/// `events` are dropped for the load and built again at the end from their own definitions
/// (building an index from sorted rows is much cheaper than keeping it up to date row by row).
fn create(path: &Path) -> anyhow::Result<(Connection, Vec<String>)> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -131_072)?;
    store::migrate(&mut conn)?;
    let indexes: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, _) in &indexes {
        conn.execute_batch(&format!("DROP INDEX \"{name}\""))?;
    }
    // No incremental merging of the free-text index during the load (one merge at the end).
    conn.execute_batch("INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', 0)")?;
    Ok((conn, indexes.into_iter().map(|(_, sql)| sql).collect()))
}

struct Inserter {
    conn: Connection,
    strings: HashMap<String, i64>,
    segments: BTreeMap<i64, (i64, i64)>,
    next_seq: i64,
    next_leaf: u64,
    last_received: i64,
    now: i64,
    /// The definitions of the indexes dropped for the load.
    indexes: Vec<String>,
    configs: RestoredConfigs,
}

impl Inserter {
    fn new(conn: Connection, indexes: Vec<String>, configs: RestoredConfigs) -> Self {
        Self {
            conn,
            strings: HashMap::new(),
            segments: BTreeMap::new(),
            next_seq: 0,
            next_leaf: 0,
            last_received: 0,
            now: crate::time::now_micros(),
            indexes,
            configs,
        }
    }

    fn intern(&mut self, value: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.strings.get(value) {
            return Ok(*id);
        }
        let id = store::intern(&self.conn, value)?;
        self.strings.insert(value.to_string(), id);
        Ok(id)
    }

    fn insert(&mut self, obj: Checked) -> anyhow::Result<()> {
        self.conn.execute_batch("BEGIN")?;
        let mut buffer_ws: HashMap<u64, i64> = HashMap::new();
        let empty = self.intern("")?;
        for row in &obj.rows {
            let config = match &row.config_id {
                None => crate::configs::DEFAULT,
                Some(id) => *self.configs.ids.get(id).ok_or_else(|| {
                    anyhow::anyhow!("event {}: its config {id} is not declared in configs.json", row.seq)
                })?,
            };
            *self.configs.counts.entry(config).or_default() += 1;
            let (custom, field_rows) = self.custom(config, row)?;
            let c = custom.as_ref().unwrap_or(&row.columns);
            let ws = self.intern(&c.workspace)?;
            buffer_ws.entry(row.buffer).or_insert(ws);
            let purged = row.envelope.is_empty();
            let (actor, action, source) = if purged {
                (empty, empty, empty)
            } else {
                (self.intern(&c.actor)?, self.intern(&c.action)?, self.intern(&c.event_source)?)
            };
            // A purged event's receive time is not in the archive: one microsecond after the
            // previous event's keeps receive times strictly increasing with seq.
            let received_at = if purged { self.last_received + 1 } else { c.received_at };
            self.last_received = received_at;
            self.conn
                .prepare_cached(
                    "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                        target, source, status, status_code, read_only, type, buffer, hash, envelope, purged_at, config)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                )?
                .execute(params![
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
            for (field, value) in field_rows {
                let mut insert =
                    self.conn.prepare_cached("INSERT INTO event_fields(seq, field, value) VALUES (?1, ?2, ?3)")?;
                match value {
                    FieldValue::Int(v) => insert.execute(params![row.seq, field, v])?,
                    FieldValue::Text(v) => insert.execute(params![row.seq, field, v])?,
                };
            }
            if let Some(body) = &c.fts {
                self.conn
                    .prepare_cached("INSERT INTO events_fts(rowid, body) VALUES (?1, ?2)")?
                    .execute(params![row.seq, body])?;
            }
            let range = self.segments.entry(row.seq >> SEG_SHIFT).or_insert((c.event_time, c.event_time));
            *range = (range.0.min(c.event_time), range.1.max(c.event_time));
        }
        let last = obj.proof.buffers.len() - 1;
        for (k, b) in obj.proof.buffers.iter().enumerate() {
            // The object's last root is signed in its proof even where the log stored it
            // unsigned (the same signature: Ed25519 is deterministic).
            let sig = if b.signature.is_empty() && k == last { &obj.proof.signed_root.signature } else { &b.signature };
            let published = crate::time::parse_rfc3339(&b.published_at).map(|(us, _)| us).context("published_at")?;
            self.conn
                .prepare_cached(
                    "INSERT INTO buffers(idx, first_seq, count, workspace, buffer_root, root_hash, published_at, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    b.leaf_index as i64,
                    b.first_seq,
                    b.count as i64,
                    buffer_ws.get(&b.leaf_index).copied().unwrap_or(empty),
                    &obj.roots[k][..],
                    hex::decode(&b.root_hash)?,
                    published,
                    B64.decode(sig)?,
                ])?;
        }
        self.conn.execute_batch("COMMIT")?;
        self.next_seq = obj.proof.last_seq + 1;
        self.next_leaf = obj.proof.last_leaf + 1;
        Ok(())
    }

    /// For a Pangea event of a config other than the default one: its columns, free-text row and
    /// custom-field rows exactly as ingest derived them from the config's schema.
    #[allow(clippy::type_complexity)]
    fn custom(
        &self,
        config: i64,
        row: &super::archive::Row,
    ) -> anyhow::Result<(Option<super::columns::Columns>, Vec<(i64, FieldValue)>)> {
        if config == crate::configs::DEFAULT || row.origin != Origin::Pangea || row.envelope.is_empty() {
            return Ok((None, Vec::new()));
        }
        let cfg = self.configs.by_num.get(&config).context("a restored config is missing")?;
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
        for sql in &self.indexes {
            c.execute_batch(sql)?;
        }
        c.execute_batch(
            "INSERT INTO events_fts(events_fts) VALUES ('optimize');
             INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', 4);",
        )?;
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
        c.pragma_update(None, "synchronous", "FULL")?;
        c.pragma_update(None, "locking_mode", "NORMAL")?;
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("cannot switch the restored database to WAL");
        }
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(())
    }
}
