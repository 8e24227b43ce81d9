//! `trailkeep verify`: recompute every event hash from its stored envelope, rebuild every buffer
//! root and the cold tree, check every signed root and its signature, check the server's
//! signature of every event of a server-signing audit config (against the key version the
//! event names: the key store's public key, else the one a restore recorded), and compare the
//! newest root with the checkpoint file (and optionally a trusted checkpoint given by the
//! operator).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::event::system::PURGE_ACTION;
use crate::ledger::cold::ColdTree;
use crate::ledger::merkle::{Hash, mth};
use crate::ledger::{Checkpoint, check_against_checkpoint, read_checkpoint, signed_message};
use crate::time::format_micros;

/// One named problem found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    /// Events whose content was removed by retention (their stored hashes are used).
    pub purged: u64,
    /// Of those, the ones a purge run declared in `purge_pending` but not yet by a purge event
    /// (the run was in progress, or stopped before its end; the writer logs them at its start).
    pub purge_pending: u64,
    pub tree_size: u64,
    /// Events whose server signature was checked (server-signing configs).
    pub server_signed: u64,
    pub problems: Vec<Problem>,
}

fn problem(report: &mut Report, kind: &'static str, detail: String) {
    if report.problems.len() < 100 {
        report.problems.push(Problem { kind, detail });
    }
}

/// Verifies the database in `data_dir` (opened read-only).
pub fn verify(data_dir: &Path, against: Option<&Path>) -> anyhow::Result<Report> {
    verify_with_progress(data_dir, against, &AtomicU64::new(0))
}

/// `verify`, counting the events checked so far in `progress` (for a run in the background). It
/// reads one snapshot of the log, so it can run while the server writes.
pub fn verify_with_progress(data_dir: &Path, against: Option<&Path>, progress: &AtomicU64) -> anyhow::Result<Report> {
    let path = crate::store::db_path(data_dir);
    if !path.exists() {
        anyhow::bail!("no database at {}", path.display());
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // SQLite's own structural check runs on a second connection and core while the log is read.
    let quick_check = std::thread::spawn(move || -> Result<String, String> {
        let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.to_string())?;
        c.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
        c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)).map_err(|e| e.to_string())
    });
    let mut report = Report::default();
    if let Err(e) = check_log(&conn, data_dir, against, progress, &mut report) {
        // A damaged page stops the scan: report where, then let SQLite's own check say more.
        let detail = format!("reading the log failed after {} events: {e}", report.events);
        problem(&mut report, "corrupt", detail);
    }
    let _ = conn.execute_batch("ROLLBACK");
    match quick_check.join() {
        Ok(Ok(ok)) if ok == "ok" => {}
        Ok(Ok(msg)) | Ok(Err(msg)) => problem(&mut report, "integrity", msg),
        Err(_) => problem(&mut report, "integrity", "the integrity check stopped unexpectedly".into()),
    }
    Ok(report)
}

fn check_log(
    conn: &Connection,
    data_dir: &Path,
    against: Option<&Path>,
    progress: &AtomicU64,
    report: &mut Report,
) -> anyhow::Result<()> {
    // The checkpoint files first: each records a root committed before it was written, so the
    // snapshot read next holds it even while a server appends.
    let checkpoints =
        [("checkpoint file", read_checkpoint(data_dir)?), ("trusted checkpoint", against.map(read_file).transpose()?)];
    // Only the public key is needed: verify works without the key store (a restore without keys,
    // an encrypted store without its passphrase, a copy of the database alone).
    let key = crate::serverkeys::public_key(conn)?
        .ok_or_else(|| anyhow::anyhow!("the database records no public key (no signed root yet)"))?;
    let tree_name = String::from_utf8(crate::store::get_setting(conn, "tree_name")?.unwrap_or_default())?;

    // The recomputed roots at the checkpoints' sizes, taken as the tree grows past them.
    let mut roots_at: Vec<(u64, Option<Hash>)> =
        checkpoints.iter().flat_map(|(_, cp)| cp).map(|cp| (cp.root.size, None)).collect();

    conn.execute_batch("BEGIN")?;
    // The upper levels and the newest block only: roots of the growing tree need no more.
    let mut tree = ColdTree::default();
    // A database of a release before audit configs (not migrated: verify opens it read-only) has
    // no `events.config`: every event is the default config's.
    let configs: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'config')", [], |r| {
            r.get(0)
        })?;
    let mut events = conn.prepare(&format!(
        "SELECT e.seq, e.buffer, e.hash, e.envelope, e.purged_at IS NOT NULL,
                CASE WHEN e.purged_at IS NOT NULL OR e.origin = 2 THEN (SELECT value FROM strings WHERE id = e.workspace) END,
                {}
         FROM events e ORDER BY e.seq",
        if configs { "e.config" } else { "0" }
    ))?;
    let mut purges = Purges::default();
    // A database of a release before `purge_pending` (not migrated) has none.
    let pending_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'purge_pending')",
        [],
        |r| r.get(0),
    )?;
    if pending_table {
        let mut stmt = conn.prepare("SELECT workspace, first_seq, last_seq, count FROM purge_pending")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            purges.pending(r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64);
        }
    }
    let mut signatures = SignatureChecker::start();
    let mut event_signatures = EventSignatures::new(conn, data_dir, configs)?;
    let mut rows = events.query([])?;
    let mut buffers = conn.prepare(
        "SELECT idx, first_seq, count, buffer_root, root_hash, published_at, signature FROM buffers ORDER BY idx",
    )?;
    let mut brows = buffers.query([])?;
    let mut expected_seq = 0i64;
    // (size, published_at) of unsigned roots awaiting the signed root that covers them.
    let mut unsigned: Vec<(u64, i64)> = Vec::new();
    while let Some(b) = brows.next()? {
        let idx: i64 = b.get(0)?;
        let first: i64 = b.get(1)?;
        let count: i64 = b.get(2)?;
        if idx as usize != tree.len() {
            problem(report, "gap", format!("buffer {} missing", tree.len()));
        }
        if first != expected_seq {
            problem(report, "gap", format!("buffer {idx} starts at event {first}, expected {expected_seq}"));
        }
        let mut hashes: Vec<Hash> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            type Row = (i64, i64, Vec<u8>, String, bool, Option<String>, i64);
            let row: Option<Row> = match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                None => None,
            };
            let Some((seq, buffer, stored, envelope, purged, workspace, config)) = row else {
                problem(report, "gap", format!("buffer {idx} is missing events"));
                break;
            };
            report.events += 1;
            progress.store(report.events, Ordering::Relaxed);
            if seq != expected_seq {
                problem(report, "gap", format!("event {expected_seq} missing (next is {seq})"));
            }
            expected_seq = seq + 1;
            if buffer != idx {
                problem(report, "leaf_mismatch", format!("event {seq} claims buffer {buffer}, stored in {idx}"));
            }
            if purged {
                // Content removed by retention: the stored hash stands in for it; a purge event
                // must account for the row (checked below).
                report.purged += 1;
                purges.purged.push((seq, workspace.unwrap_or_default()));
                hashes.push(stored.as_slice().try_into().unwrap_or([0; 32]));
                continue;
            }
            if let Some(ws) = workspace
                && envelope.contains(PURGE_ACTION)
            {
                purges.declared(seq, ws, &envelope);
            }
            let h: Hash = Sha256::digest(envelope.as_bytes()).into();
            if stored != h {
                problem(report, "leaf_mismatch", format!("event {seq}: the envelope does not hash to the stored hash"));
            }
            if let Err(detail) = event_signatures.check(seq, config, &envelope) {
                problem(report, "bad_event_signature", detail);
            }
            hashes.push(h);
        }
        let buffer_root = mth(&hashes).unwrap_or([0; 32]);
        let stored_root: Vec<u8> = b.get(3)?;
        if stored_root != buffer_root {
            problem(
                report,
                "leaf_mismatch",
                format!("buffer {idx}: recomputed buffer root differs from the stored one"),
            );
        }
        tree.push(buffer_root);
        tree.take_completed();
        let root = tree.current_root().unwrap_or([0; 32]);
        for (_, at) in roots_at.iter_mut().filter(|(size, _)| *size == tree.len() as u64) {
            *at = Some(root);
        }
        let stored_tree_root: Vec<u8> = b.get(4)?;
        if stored_tree_root != root {
            problem(report, "root_mismatch", format!("root at size {} differs from the recomputed root", tree.len()));
        }
        let published: i64 = b.get(5)?;
        let signature: Vec<u8> = b.get(6)?;
        let size = tree.len() as u64;
        if signature.is_empty() {
            // Not the last root of its write transaction: the transaction's signed root covers
            // it and must carry the same published_at.
            unsigned.push((size, published));
            continue;
        }
        for (s, p) in unsigned.drain(..) {
            if p != published {
                problem(
                    report,
                    "unsigned_root",
                    format!("root at size {s} is unsigned and not covered by the next signed root"),
                );
            }
        }
        let message = signed_message(&tree_name, size, &hex::encode(root), &format_micros(published));
        signatures.push(size, message.into_bytes(), signature, key);
    }
    for (s, _) in unsigned {
        problem(report, "unsigned_root", format!("root at size {s} is unsigned and no signed root follows"));
    }
    for size in signatures.finish() {
        problem(report, "bad_signature", format!("root at size {size} has an invalid signature"));
    }
    report.server_signed = event_signatures.checked;
    for seq in event_signatures.signatures.finish() {
        problem(report, "bad_event_signature", format!("event {seq}: the server's signature does not verify"));
    }
    if let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        problem(report, "unsigned_tail", format!("event {seq} and later are not covered by a signed root"));
    }
    report.tree_size = tree.len() as u64;
    purges.check(report);
    for (name, cp) in checkpoints {
        let root_at = |size: u64| roots_at.iter().find(|(s, _)| *s == size).and_then(|(_, r)| *r);
        if let Some(cp) = cp
            && let Err(e) = check_against_checkpoint(tree.len() as u64, root_at(cp.root.size), &tree_name, &cp)
        {
            let kind = if e.to_string().contains("rollback") {
                "size_regression"
            } else {
                "inconsistent_with_trusted_checkpoint"
            };
            problem(report, kind, format!("{name}: {e}"));
        }
    }
    Ok(())
}

/// (id: a root's tree size or an event's seq, signed message, signature bytes, public key).
type SignedItem = (u64, Vec<u8>, Vec<u8>, VerifyingKey);

/// Checks signatures on a second thread, in batches (Ed25519 batch verification is ~2× cheaper
/// per signature; a failed batch is re-checked one by one to name the bad items).
struct SignatureChecker {
    batch: Vec<SignedItem>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<SignedItem>>>,
    thread: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl SignatureChecker {
    const BATCH: usize = 256;

    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<SignedItem>>(16);
        let thread = std::thread::spawn(move || {
            let mut bad = Vec::new();
            for batch in rx {
                bad.extend(Self::check(&batch));
            }
            bad
        });
        Self { batch: Vec::with_capacity(Self::BATCH), tx: Some(tx), thread: Some(thread) }
    }

    fn check(batch: &[SignedItem]) -> Vec<u64> {
        let sigs: Option<Vec<Signature>> = batch.iter().map(|(_, _, s, _)| Signature::from_slice(s).ok()).collect();
        if let Some(sigs) = sigs {
            let msgs: Vec<&[u8]> = batch.iter().map(|(_, m, _, _)| m.as_slice()).collect();
            let keys: Vec<VerifyingKey> = batch.iter().map(|(_, _, _, k)| *k).collect();
            if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
                return Vec::new();
            }
        }
        batch
            .iter()
            .filter(|(_, m, s, k)| Signature::from_slice(s).map_or(true, |sig| k.verify(m, &sig).is_err()))
            .map(|(id, _, _, _)| *id)
            .collect()
    }

    fn push(&mut self, id: u64, message: Vec<u8>, signature: Vec<u8>, key: VerifyingKey) {
        self.batch.push((id, message, signature, key));
        if self.batch.len() == Self::BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::BATCH));
        if let Some(tx) = &self.tx {
            let _ = tx.send(batch);
        }
    }

    /// Sizes of the roots whose signature does not verify, in order.
    fn finish(&mut self) -> Vec<u64> {
        self.flush();
        self.tx = None;
        let mut bad = self.thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        bad.sort_unstable();
        bad
    }
}

/// The server's signatures of the events of server-signing configs: each such event must carry
/// a signature and a `public_key` naming the config's key and a version the key store holds, with
/// that version's key; the signatures themselves are checked in batches on a second thread.
struct EventSignatures {
    /// Config number → its event-signing key name, for configs with `signing = server`.
    signing: std::collections::HashMap<i64, String>,
    /// (name, version) → the key store's public key and its PEM (read without the passphrase).
    public: std::collections::HashMap<(String, u32), (VerifyingKey, String)>,
    signatures: SignatureChecker,
    checked: u64,
}

impl EventSignatures {
    /// `configs`: whether the database has audit configs (else nothing is server-signed).
    fn new(conn: &Connection, data_dir: &Path, configs: bool) -> anyhow::Result<Self> {
        let signing: std::collections::HashMap<i64, String> = if configs {
            crate::configs::load_all(conn)?
                .into_iter()
                .filter_map(|c| c.signing_key.map(|(name, _)| (c.num, name)))
                .collect()
        } else {
            Default::default()
        };
        // The key store's public keys, else (a data directory restored from an archive, whose
        // private halves are not there) those the database records.
        let mut public = std::collections::HashMap::new();
        let names: Vec<&str> = signing.values().map(String::as_str).collect();
        for ((name, version), pem) in crate::configs::signing::public_keys(conn, data_dir, &names)? {
            let key = crate::configs::signing::parse_public_key_pem(&pem)?;
            public.insert((name, version), (key, pem));
        }
        Ok(Self { signing, public, signatures: SignatureChecker::start(), checked: 0 })
    }

    fn check(&mut self, seq: i64, config: i64, envelope: &str) -> Result<(), String> {
        use crate::configs::signing::parse_public_key;
        let Some(expected) = self.signing.get(&config) else { return Ok(()) };
        let v: serde_json::Value =
            serde_json::from_str(envelope).map_err(|_| format!("event {seq}: unreadable envelope"))?;
        let (Some(event), Some(signature), Some(public_key)) =
            (v["event"].as_object(), v["signature"].as_str(), v["public_key"].as_str())
        else {
            return Err(format!("event {seq}: its config is signed by the server, but the event carries no signature"));
        };
        let Some((name, version, pem)) = parse_public_key(public_key).filter(|(n, _, _)| n == expected) else {
            return Err(format!("event {seq}: the public key is not its config's event-signing key"));
        };
        let Some((key, stored_pem)) = self.public.get(&(name.clone(), version)) else {
            return Err(format!("event {seq}: signing key {name} version {version} is not in the key store"));
        };
        if *stored_pem != pem {
            return Err(format!("event {seq}: the public key differs from key {name} version {version}"));
        }
        let Ok(sig) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, signature) else {
            return Err(format!("event {seq}: the signature is not base64"));
        };
        let mut message = String::new();
        crate::event::canonical::write_canonical_map(event, &mut message);
        self.signatures.push(seq as u64, message.into_bytes(), sig, *key);
        self.checked += 1;
        Ok(())
    }
}

/// Purged rows and the purge events that declare them.
#[derive(Default)]
struct Purges {
    /// (seq, workspace) of every purged row.
    purged: Vec<(i64, String)>,
    /// workspace → (first_seq, last_seq, count, purge event seq; `i64::MAX` for a pending one).
    declared: std::collections::HashMap<String, Vec<(i64, i64, u64, i64)>>,
}

impl Purges {
    /// Rows a purge run declared in `purge_pending`, before its purge event.
    fn pending(&mut self, workspace: String, first: i64, last: i64, count: u64) {
        self.declared.entry(workspace).or_default().push((first, last, count, i64::MAX));
    }

    fn declared(&mut self, seq: i64, workspace: String, envelope: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(envelope) else { return };
        let ev = &v["event"];
        if ev["action"] != PURGE_ACTION {
            return;
        }
        let m = &ev["metadata"];
        let num = |k: &str| m[k].as_str().and_then(|s| s.parse::<i64>().ok());
        if let (Some(first), Some(last), Some(count)) = (num("first_seq"), num("last_seq"), num("purged")) {
            self.declared.entry(workspace).or_default().push((first, last, count as u64, seq));
        }
    }

    /// Every purged row lies in a range declared by a later purge event of its workspace, and
    /// per workspace the purged rows number exactly what the purge events declare.
    fn check(&self, report: &mut Report) {
        let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for (seq, ws) in &self.purged {
            *counts.entry(ws).or_default() += 1;
            let covered = self
                .declared
                .get(ws)
                .is_some_and(|d| d.iter().any(|(first, last, _, at)| first <= seq && seq <= last && seq < at));
            if !covered {
                problem(report, "unexplained_purge", format!("event {seq}: content removed without a purge event"));
            }
        }
        report.purge_pending = self.declared.values().flatten().filter(|d| d.3 == i64::MAX).map(|d| d.2).sum();
        for (ws, d) in &self.declared {
            let declared: u64 = d.iter().map(|x| x.2).sum();
            let found = counts.get(ws.as_str()).copied().unwrap_or(0);
            if declared != found {
                problem(
                    report,
                    "unexplained_purge",
                    format!("workspace {ws:?}: purge events declare {declared} purged events, {found} found"),
                );
            }
        }
        for (ws, n) in counts {
            if !self.declared.contains_key(ws) {
                problem(report, "unexplained_purge", format!("workspace {ws:?}: {n} purged events, no purge event"));
            }
        }
    }
}

fn read_file(path: &Path) -> anyhow::Result<Checkpoint> {
    crate::ledger::parse_checkpoint(&std::fs::read(path)?)
}
