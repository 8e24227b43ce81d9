use std::io::BufRead;
use std::process::Command;

use crate::common::{TestServer, call};

fn bin() -> String {
    env!("CARGO_BIN_EXE_trailkeep").to_string()
}

async fn seeded() -> (TestServer, std::path::PathBuf) {
    let s = TestServer::new();
    {
        let app = s.app().await;
        for i in 0..5 {
            let body = format!(r#"{{"events":[{{"event":{{"message":"m{i}a"}}}},{{"event":{{"message":"m{i}b"}}}}]}}"#);
            let (st, _) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &body).await;
            assert_eq!(st, 200);
        }
    }
    let dir = s.dir.path().to_path_buf();
    (s, dir)
}

fn verify(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(bin()).args(["verify", "--data-dir"]).arg(dir).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sql(dir: &std::path::Path, statement: &str) {
    let conn = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[actix_web::test]
async fn verify_passes_then_detects_tampering() {
    let (_s, dir) = seeded().await;
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    assert!(out.contains("ok: 10 events, tree size 5"), "{out}");
    sql(&dir, "UPDATE events SET envelope = replace(envelope, 'm2a', 'mXa') WHERE seq = 4");
    let (ok, out) = verify(&dir);
    assert!(!ok && out.contains("leaf_mismatch"), "{out}");
}

#[actix_web::test]
async fn verify_detects_deleted_rows_and_reordering() {
    let (_s, dir) = seeded().await;
    sql(&dir, "DELETE FROM events WHERE seq = 3");
    let (ok, out) = verify(&dir);
    assert!(!ok && out.contains("gap"), "{out}");
    let (_s2, dir2) = seeded().await;
    sql(&dir2, "UPDATE events SET envelope = (SELECT envelope FROM events WHERE seq = 1) WHERE seq = 0");
    let (ok, out) = verify(&dir2);
    assert!(!ok && out.contains("leaf_mismatch"), "{out}");
}

#[actix_web::test]
async fn rollback_is_refused_at_start() {
    let (s, dir) = seeded().await;
    s.state.writer.stop().await;
    std::thread::sleep(std::time::Duration::from_millis(200));
    sql(&dir, "DELETE FROM events WHERE buffer = 4; DELETE FROM buffers WHERE idx = 4;");
    let (ok, out) = verify(&dir);
    assert!(!ok && out.contains("size_regression"), "{out}");
    let mut config = trailkeep::config::Config::for_tests(&dir);
    let err = trailkeep::server::open(config.clone()).err().expect("must refuse").to_string();
    assert!(err.contains("rollback detected"), "{err}");
    config.accept_db_state = true;
    assert!(trailkeep::server::open(config).is_ok());
}

#[actix_web::test]
async fn backup_while_serving_restores_and_verifies() {
    let (_s, dir) = seeded().await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("copy.db");
    let st = Command::new(bin()).args(["backup", "--data-dir"]).arg(&dir).arg("--to").arg(&file).status().unwrap();
    assert!(st.success());
    let restored = out.path().join("restored");
    let st =
        Command::new(bin()).args(["restore", "--data-dir"]).arg(&restored).arg("--from").arg(&file).status().unwrap();
    assert!(st.success());
    let (ok, text) = verify(&restored);
    assert!(ok && text.contains("tree size 5"), "{text}");
    let st =
        Command::new(bin()).args(["restore", "--data-dir"]).arg(&restored).arg("--from").arg(&file).output().unwrap();
    assert!(!st.status.success(), "restore over an existing database must be refused");
}

/// An online backup taken by the writer while requests keep coming: the copy takes many steps
/// of one page, with commits in between, ends at one of them (the checkpoint beside it matches
/// what it holds, and it restores and verifies), and the log goes on after it.
#[actix_web::test]
async fn online_backup_between_commits_restores_and_verifies() {
    let s = TestServer::new();
    let dir = s.dir.path().to_path_buf();
    let app = s.app().await;
    let batch = |b: usize| {
        let events: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"event":{{"message":"batch {b} event {i} {}"}}}}"#, "x".repeat(300)))
            .collect();
        format!(r#"{{"events":[{}]}}"#, events.join(","))
    };
    for b in 0..150 {
        assert_eq!(call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &batch(b)).await.0, 200);
    }
    let before = s.state.ledger.size();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("online.db");
    let ingest = async {
        for b in 150..210 {
            assert_eq!(call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &batch(b)).await.0, 200);
        }
    };
    let (copy, ()) = futures_util::future::join(s.state.writer.backup(file.clone(), 1), ingest).await;
    let copy = copy.unwrap();
    let after = s.state.ledger.size();
    assert!(copy.steps as i64 >= copy.pages && copy.pages > 50, "{copy:?}");
    let b = trailkeep::backup::finish_online(&dir, &file, false).unwrap();
    let size = b.checkpoint.root.size;
    // Commits came in while it copied (the first batch is queued before the first steps end).
    assert!(size > before && size <= after, "{before} < {size} <= {after}");
    let restored = out.path().join("restored");
    trailkeep::backup::restore(&file, &restored, None).unwrap();
    let (ok, text) = verify(&restored);
    assert!(ok && text.contains(&format!("tree size {size}")), "{text}");
    // The live log was not disturbed.
    assert_eq!(call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &batch(999)).await.0, 200);
    drop(app);
    let dir = s.stop().await;
    let (ok, text) = verify(dir.path());
    assert!(ok, "{text}");
}

/// `POST /api/v1/backups`: admin keys only; the backup lands in the backup directory with its
/// checkpoint (and key copy when asked for), is recorded as an event it holds itself, and
/// restores with the trail continuing.
#[actix_web::test]
async fn backup_endpoint_writes_a_restorable_backup() {
    let backups = tempfile::tempdir().unwrap();
    let into = backups.path().join("nightly");
    let s = TestServer::with_config(|c| c.backup_dir = Some(into.clone()));
    let dir = s.dir.path().to_path_buf();
    let app = s.app().await;
    for b in 0..3 {
        let body = format!(r#"{{"events":[{{"event":{{"message":"m{b}"}}}}]}}"#);
        assert_eq!(call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &body).await.0, 200);
    }
    let search = s.key(&["search", "ingest"], &[]);
    let (st, body) = call(&app, "POST", "/api/v1/backups", Some(&search), "").await;
    assert_eq!((st, body["type"].as_str().is_some()), (403, true), "{body}");
    let (st, body) = call(&app, "POST", "/api/v1/backups", Some(&s.admin), r#"{"include_keys":"yes"}"#).await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = call(&app, "POST", "/api/v1/backups", Some(&s.admin), r#"{"other":1}"#).await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = call(&app, "POST", "/api/v1/backups", Some(&s.admin), "").await;
    assert_eq!(st, 201, "{body}");
    let file = std::path::PathBuf::from(body["file"].as_str().unwrap());
    assert_eq!(file.parent(), Some(into.as_path()));
    assert!(body["keys"].as_array().unwrap().is_empty() && !trailkeep::backup::keys_beside(&file).exists());
    assert_eq!(body["bytes"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()));
    use std::os::unix::fs::PermissionsExt;
    for p in [into.clone(), file.clone(), trailkeep::backup::checkpoint_beside(&file)] {
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o077, 0, "{}", p.display());
    }
    // 3 events and the backup's own event, each committed alone.
    assert_eq!(body["tree_size"], 4, "{body}");
    let copy = rusqlite::Connection::open(&file).unwrap();
    let mode: String = copy.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete");
    let recorded: i64 = copy
        .query_row("SELECT count(*) FROM events WHERE envelope LIKE '%actions/audittrail/log/BACKUP%'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(recorded, 1);
    drop(copy);

    let (st, body) = call(&app, "POST", "/api/v1/backups", Some(&s.admin), r#"{"include_keys":true}"#).await;
    assert_eq!(st, 201, "{body}");
    let with_keys = std::path::PathBuf::from(body["file"].as_str().unwrap());
    assert!(body["keys"].as_array().unwrap().iter().any(|k| k.as_str().unwrap().starts_with("root-signing")), "{body}");
    let restored = backups.path().join("restored");
    let r = trailkeep::backup::restore(&with_keys, &restored, None).unwrap();
    assert!(r.root_signing.is_some());
    let (ok, text) = verify(&restored);
    assert!(ok && text.contains("tree size 5"), "{text}");
    drop(app);
    drop(s);
    let mut config = trailkeep::config::Config::for_tests(&restored);
    config.self_audit = false;
    let opened = trailkeep::server::open(config).unwrap();
    assert!(opened.state.ledger.read_only().is_none(), "the trail continues with the copied keys");
    let _ = dir;
}

#[actix_web::test]
async fn export_cli_streams_every_format() {
    let (_s, dir) = seeded().await;
    let out = tempfile::tempdir().unwrap();
    for fmt in ["csv", "json", "jsonl.gz"] {
        let file = out.path().join(format!("e.{fmt}"));
        let st = Command::new(bin())
            .args(["export", "--format", fmt, "--query", "message:a", "--data-dir"])
            .arg(&dir)
            .arg("--out")
            .arg(&file)
            .output()
            .unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        let bytes = std::fs::read(&file).unwrap();
        let text = if fmt == "jsonl.gz" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut s).unwrap();
            s
        } else {
            String::from_utf8(bytes).unwrap()
        };
        let rows = match fmt {
            "csv" => text.lines().count() - 1,
            "json" => serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap().len(),
            _ => text.lines().count(),
        };
        assert_eq!(rows, 5, "{fmt}: {text}");
    }
}

/// Every event of a JSON Lines export carries its membership proof to the newest signed root:
/// the envelope hashes to `hash`, the proof folds to the root, and the root's signature verifies
/// with the public key alone; events of several buffers share one root. CSV and JSON hold the
/// same events without proofs.
#[actix_web::test]
async fn export_rows_verify_with_only_the_public_key() {
    use base64::Engine;
    use sha2::Digest;
    use trailkeep::ledger::merkle::{parse_hash, verify_membership};
    use trailkeep::ledger::{SignedRoot, verify_root_signature};

    let (s, dir) = seeded().await;
    let public = base64::engine::general_purpose::STANDARD.decode(s.state.ledger.public_key_b64()).unwrap();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let export = |fmt: &str| {
        let file = out.path().join(format!("e.{fmt}"));
        let mut cmd = Command::new(bin());
        cmd.args(["export", "--format", fmt, "--data-dir"]).arg(&dir).arg("--out").arg(&file);
        assert!(cmd.status().unwrap().success());
        std::fs::read(&file).unwrap()
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&export("jsonl.gz")[..]), &mut text).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 10);
    let mut buffers = std::collections::BTreeSet::new();
    for row in &lines {
        let envelope = trailkeep::event::canonical::to_canonical_string(&row["envelope"]);
        let hash = hex::encode(sha2::Sha256::digest(envelope.as_bytes()));
        assert_eq!(row["hash"], hash.as_str());
        let r = &row["root"];
        let root = SignedRoot {
            tree_name: r["tree_name"].as_str().unwrap().into(),
            size: r["size"].as_u64().unwrap(),
            root_hash: r["root_hash"].as_str().unwrap().into(),
            published_at: r["published_at"].as_str().unwrap().into(),
            signature: r["signature"].as_str().unwrap().into(),
        };
        assert_eq!((root.size, row["tree_size"].as_u64()), (5, Some(5)), "{row}");
        assert_eq!(row["published"], true);
        let leaf = parse_hash(&hash).unwrap();
        assert!(verify_membership(
            &leaf,
            &parse_hash(&root.root_hash).unwrap(),
            row["membership_proof"].as_str().unwrap()
        ));
        assert!(verify_root_signature(&public, &root), "{row}");
        let mut forged = root.clone();
        forged.size = 4;
        assert!(!verify_root_signature(&public, &forged));
        buffers.insert(row["leaf_index"].as_u64().unwrap());
    }
    assert_eq!(buffers.len(), 5);

    let array: Vec<serde_json::Value> = serde_json::from_slice(&export("json")).unwrap();
    let without_proofs = |row: &serde_json::Value| {
        let mut row = row.clone();
        for k in ["membership_proof", "tree_size", "root"] {
            row.as_object_mut().unwrap().remove(k);
        }
        row
    };
    assert_eq!(array, lines.iter().map(without_proofs).collect::<Vec<_>>());
    let csv = String::from_utf8(export("csv")).unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let hash_col = rows.headers().unwrap().iter().position(|h| h == "hash").unwrap();
    let hashes: Vec<String> = rows.records().map(|r| r.unwrap()[hash_col].to_string()).collect();
    assert_eq!(hashes, lines.iter().map(|r| r["hash"].as_str().unwrap().to_string()).collect::<Vec<_>>());
}

/// The export CLI on 100,000 events: every event once, in order, in every format, streamed
/// (the exporting process stays small).
#[actix_web::test]
async fn export_cli_100k_events() {
    const N: usize = 100_000;
    let s = TestServer::new();
    {
        let app = s.app().await;
        for b in 0..N / 1000 {
            let events: Vec<serde_json::Value> = (0..1000)
                .map(|i| serde_json::json!({"event": {"message": format!("bulk {} of batch {b}", b * 1000 + i), "actor": format!("u{}", i % 50)}}))
                .collect();
            let body = serde_json::json!({"events": events}).to_string();
            let (st, r) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &body).await;
            assert_eq!(st, 200, "{r}");
        }
    }
    let dir = s.dir.path().to_path_buf();
    let out = tempfile::tempdir().unwrap();
    for fmt in ["jsonl.gz", "csv", "json"] {
        let file = out.path().join(format!("e.{fmt}"));
        let mut child = Command::new(bin())
            .args(["export", "--format", fmt, "--since", "1d", "--data-dir"])
            .arg(&dir)
            .arg("--out")
            .arg(&file)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut peak_kb = 0u64;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
            {
                peak_kb = peak_kb.max(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "export {fmt} failed");
        assert!(peak_kb < 150 * 1024, "export {fmt} is not streaming: peak RSS {peak_kb} KiB");
        let file = std::fs::File::open(&file).unwrap();
        let reader: Box<dyn std::io::BufRead> = if fmt == "jsonl.gz" {
            Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
        } else {
            Box::new(std::io::BufReader::new(file))
        };
        let messages: Vec<String> = match fmt {
            "json" => serde_json::from_reader::<_, Vec<serde_json::Value>>(reader)
                .unwrap()
                .iter()
                .map(|e| e["envelope"]["event"]["message"].as_str().unwrap().to_string())
                .collect(),
            "csv" => reader
                .lines()
                .skip(1)
                .map(|l| l.unwrap())
                .filter_map(|l| {
                    l.split(',').find(|c| c.starts_with("bulk ")).map(|c| c.split(" of ").next().unwrap().to_string())
                })
                .collect(),
            _ => reader
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
                    v["envelope"]["event"]["message"].as_str().unwrap().to_string()
                })
                .collect(),
        };
        assert_eq!(messages.len(), N, "{fmt}");
        let mut numbers: Vec<usize> = messages
            .iter()
            .map(|m| m.trim_start_matches("bulk ").split(' ').next().unwrap().parse().unwrap())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), N, "{fmt}: every event exactly once");
        eprintln!("export {fmt}: {N} events, peak RSS {peak_kb} KiB");
    }
    // A query term of three or more characters goes through the substring index (complete
    // segments are indexed by now, or checked directly if not yet): the export's connection
    // answers it like the server's.
    let file = out.path().join("u49.jsonl");
    let st = Command::new(bin())
        .args(["export", "--format", "jsonl.gz", "--query", "actor:u49", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()), &mut text)
        .unwrap();
    let actors: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["envelope"]["event"]["actor"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(actors.len(), N / 50);
    assert!(actors.iter().all(|a| a == "u49"), "{:?}", &actors[..3]);
}

#[actix_web::test]
async fn verify_names_each_root_with_a_bad_signature() {
    let (_s, dir) = seeded().await;
    // Replace the signatures of the roots of sizes 2 and 4, in a database of 5 roots.
    sql(&dir, "UPDATE buffers SET signature = randomblob(64) WHERE idx IN (1, 3)");
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    let bad: Vec<&str> = out.lines().filter(|l| l.starts_with("bad_signature")).collect();
    assert_eq!(
        bad,
        [
            "bad_signature: root at size 2 has an invalid signature",
            "bad_signature: root at size 4 has an invalid signature"
        ],
        "{out}"
    );
}

/// One request with three tenants is one transaction sealing three buffers: only the last root
/// is stored with a signature; the others are signed when asked for (the same deterministic
/// Ed25519 bytes), share its published_at, and verify passes. A root whose signature is removed
/// without a signed root of its time after it is reported.
#[actix_web::test]
async fn one_signature_per_transaction_covers_its_roots() {
    let s = TestServer::new();
    let app = s.app().await;
    let body = r#"{"events":[{"event":{"message":"a","tenant_id":"t1"}},{"event":{"message":"b","tenant_id":"t2"}},
                              {"event":{"message":"c","tenant_id":"t3"}},{"event":{"message":"d","tenant_id":"t1"}}]}"#;
    let (st, _) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), body).await;
    assert_eq!(st, 200);
    let dir = s.dir.path().to_path_buf();
    let conn = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
    let rows: Vec<(i64, i64, i64)> = conn
        .prepare("SELECT idx, published_at, length(signature) FROM buffers ORDER BY idx")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), [0, 0, 64]);
    assert!(rows.iter().all(|r| r.1 == rows[2].1), "one published_at per transaction: {rows:?}");
    let key = s.state.ledger.public_key();
    for size in 1..=3u64 {
        let (st, root) =
            call(&app, "POST", "/pangea/v1/root", Some(&s.admin), &format!(r#"{{"tree_size":{size}}}"#)).await;
        assert_eq!(st, 200, "{root}");
        let d = &root["result"]["data"];
        let signed = trailkeep::store::writer::root_at(&conn, &s.state.ledger, size).unwrap().unwrap();
        assert_eq!(d["root_hash"], signed.root_hash.as_str());
        assert!(trailkeep::ledger::verify_root_signature(&key, &signed), "size {size}");
        let (st, ui) = call(&app, "GET", &format!("/api/v1/roots/{size}"), Some(&s.admin), "").await;
        assert_eq!((st, ui["signature"].as_str()), (200, Some(signed.signature.as_str())), "size {size}");
    }
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    // A root edited in the database is not signed on request.
    let saved: String = conn.query_row("SELECT hex(root_hash) FROM buffers WHERE idx = 0", [], |r| r.get(0)).unwrap();
    sql(&dir, "UPDATE buffers SET root_hash = zeroblob(32) WHERE idx = 0");
    let (st, ui) = call(&app, "GET", "/api/v1/roots/1", Some(&s.admin), "").await;
    assert_eq!((st, ui["signature"].as_str()), (200, Some("")), "{ui}");
    sql(&dir, &format!("UPDATE buffers SET root_hash = X'{saved}' WHERE idx = 0"));
    // An unsigned root's time is bound to its signed root's.
    sql(&dir, "UPDATE buffers SET published_at = published_at - 1 WHERE idx = 0");
    let (ok, out) = verify(&dir);
    assert!(!ok && out.contains("unsigned_root: root at size 1"), "{out}");
    let (_, ui) = call(&app, "GET", "/api/v1/roots/1", Some(&s.admin), "").await;
    assert_eq!(ui["signature"].as_str(), Some(""), "{ui}");
    sql(&dir, "UPDATE buffers SET published_at = published_at + 1 WHERE idx = 0");
    assert!(verify(&dir).0);
    // The signed root loses its signature: nothing signed covers the transaction any more.
    sql(&dir, "UPDATE buffers SET signature = X'' WHERE idx = 2");
    let (ok, out) = verify(&dir);
    assert!(!ok && out.contains("unsigned_root: root at size 3"), "{out}");
}
