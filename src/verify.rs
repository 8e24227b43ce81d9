//! `trailkeep verify`: recompute every event hash from its stored envelope, rebuild every buffer
//! root and the cold tree, check every signed root and its signature, and compare the newest root
//! with the checkpoint file (and optionally a trusted checkpoint given by the operator).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::ledger::merkle::{CompactTree, Hash, mth};
use crate::ledger::{
    Checkpoint, Ledger, SignedRoot, check_against_checkpoint, format_micros, read_checkpoint, verify_root_signature,
};

/// One named problem found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub tree_size: u64,
    pub problems: Vec<Problem>,
}

fn problem(report: &mut Report, kind: &'static str, detail: String) {
    if report.problems.len() < 100 {
        report.problems.push(Problem { kind, detail });
    }
}

/// Verifies the database in `data_dir` (opened read-only).
pub fn verify(data_dir: &Path, against: Option<&Path>) -> anyhow::Result<Report> {
    let path = crate::store::db_path(data_dir);
    if !path.exists() {
        anyhow::bail!("no database at {}", path.display());
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut report = Report::default();
    if let Err(e) = check_log(&conn, data_dir, against, &mut report) {
        // A damaged page stops the scan: report where, then let SQLite's own check say more.
        let detail = format!("reading the log failed after {} events: {e}", report.events);
        problem(&mut report, "corrupt", detail);
    }
    let _ = conn.execute_batch("ROLLBACK");
    match conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
        Ok(ok) if ok == "ok" => {}
        Ok(msg) => problem(&mut report, "integrity", msg),
        Err(e) => problem(&mut report, "integrity", e.to_string()),
    }
    Ok(report)
}

fn check_log(conn: &Connection, data_dir: &Path, against: Option<&Path>, report: &mut Report) -> anyhow::Result<()> {
    let seed: [u8; 32] = crate::store::get_setting(conn, "signing_key")?
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("no signing key in the database"))?;
    let tree_name = String::from_utf8(crate::store::get_setting(conn, "tree_name")?.unwrap_or_default())?;
    let ledger = Ledger::new(CompactTree::new(), tree_name.clone(), seed);
    let key = ledger.public_key();

    conn.execute_batch("BEGIN")?;
    let mut tree = CompactTree::new();
    let mut events = conn.prepare("SELECT seq, buffer, hash, envelope FROM events ORDER BY seq")?;
    let mut rows = events.query([])?;
    let mut buffers = conn.prepare(
        "SELECT idx, first_seq, count, buffer_root, root_hash, published_at, signature FROM buffers ORDER BY idx",
    )?;
    let mut brows = buffers.query([])?;
    let mut expected_seq = 0i64;
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
            let row: Option<(i64, i64, Vec<u8>, String)> = match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                None => None,
            };
            let Some((seq, buffer, stored, envelope)) = row else {
                problem(report, "gap", format!("buffer {idx} is missing events"));
                break;
            };
            report.events += 1;
            if seq != expected_seq {
                problem(report, "gap", format!("event {expected_seq} missing (next is {seq})"));
            }
            expected_seq = seq + 1;
            if buffer != idx {
                problem(report, "leaf_mismatch", format!("event {seq} claims buffer {buffer}, stored in {idx}"));
            }
            let h: Hash = Sha256::digest(envelope.as_bytes()).into();
            if stored != h {
                problem(report, "leaf_mismatch", format!("event {seq}: the envelope does not hash to the stored hash"));
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
        let root = tree.root(tree.len()).unwrap_or([0; 32]);
        let stored_tree_root: Vec<u8> = b.get(4)?;
        if stored_tree_root != root {
            problem(report, "root_mismatch", format!("root at size {} differs from the recomputed root", tree.len()));
        }
        let published: i64 = b.get(5)?;
        let signature: Vec<u8> = b.get(6)?;
        let sr = SignedRoot {
            tree_name: tree_name.clone(),
            size: tree.len() as u64,
            root_hash: hex::encode(root),
            published_at: format_micros(published),
            signature: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, signature),
        };
        if !verify_root_signature(&key, &sr) {
            problem(report, "bad_signature", format!("root at size {} has an invalid signature", tree.len()));
        }
    }
    if let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        problem(report, "unsigned_tail", format!("event {seq} and later are not covered by a signed root"));
    }
    report.tree_size = tree.len() as u64;
    for (name, cp) in
        [("checkpoint file", read_checkpoint(data_dir)?), ("trusted checkpoint", against.map(read_file).transpose()?)]
    {
        if let Some(cp) = cp
            && let Err(e) = check_against_checkpoint(&tree, &tree_name, &cp)
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

fn read_file(path: &Path) -> anyhow::Result<Checkpoint> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}
