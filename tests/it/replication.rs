//! Replication to a directory (`file://`), in process: every event in exactly one object, the
//! objects' bytes a function of the log, `verify --archive` and `restore --from-archive` through
//! the binary. The same against a real S3 API (moto) with faults: `tests/replication/`.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{TestServer, call, h2o_event};

fn bin() -> String {
    env!("CARGO_BIN_EXE_trailkeep").to_string()
}

fn files(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()), &mut text)
        .unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn raw_lines(path: &std::path::Path) -> Vec<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()), &mut text)
        .unwrap();
    text.lines().map(str::to_string).collect()
}

/// A server replicating every 0.2 s to a new directory (`file://DIR/trail`), at most `max_events`
/// per object: (the directory, the target URL, the server).
/// `trailkeep restore --from-archive URL` into a new directory (without a signing key), which must
/// succeed.
fn restore_into_new_dir(url: &str) -> tempfile::TempDir {
    let restored = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["restore", "--from-archive", url, "--data-dir"])
        .arg(restored.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    restored
}

fn replicating_server(max_events: u64) -> (tempfile::TempDir, String, TestServer) {
    let archive = tempfile::tempdir().unwrap();
    let url = format!("file://{}/trail", archive.path().display());
    let s = TestServer::with_config(|c| {
        c.replication = Some(trailkeep::config::Replication { target: url.clone(), interval: 200_000, max_events });
    });
    (archive, url, s)
}

#[actix_web::test]
async fn replicates_to_a_directory_exactly_once_then_verifies_and_restores() {
    let (archive, url, s) = replicating_server(7);
    let app = s.app().await;
    let mut n = 0;
    for i in 0..6 {
        let (st, r) = call(
            &app,
            "POST",
            &format!("/v1/events?eventId={}", uuid::Uuid::new_v4()),
            Some(&s.admin),
            &h2o_event(&format!("//svc/workspaces/w{}/x", i % 2)).to_string(),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        let body = json!({"events": (0..4).map(|k| json!({"event": {"message": format!("m{i}.{k}"), "actor": "alice", "tenant_id": "workspaces/w1"}})).collect::<Vec<_>>()});
        let (st, r) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &body.to_string()).await;
        assert_eq!(st, 200, "{r}");
        n += 5;
    }
    let mut state = Value::Null;
    for _ in 0..200 {
        let (st, r) = call(&app, "GET", "/api/v1/replication", Some(&s.admin), "").await;
        assert_eq!(st, 200, "{r}");
        state = r;
        if state["lag_events"] == 0 && state["committed_events"] == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state["replicated_events"], n, "{state}");
    assert_eq!(state["target"], url.as_str());
    // The integrity page shows it: the target to admin keys without a workspace limit only.
    let (st, i) = call(&app, "GET", "/api/v1/integrity", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{i}");
    assert_eq!(i["replication"]["target"], url.as_str(), "{i}");
    assert_eq!((&i["replication"]["lag_events"], &i["replication"]["replicated_events"]), (&json!(0), &json!(n)));
    let search = s.key(&["search"], &[]);
    let (st, i) = call(&app, "GET", "/api/v1/integrity", Some(&search), "").await;
    assert_eq!(st, 200, "{i}");
    let shown: std::collections::BTreeSet<&str> =
        i["replication"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        shown,
        ["enabled", "lag_events", "lag_seconds", "last_upload_at", "replicated_events", "state"].into(),
        "{i}"
    );
    assert_eq!(i["replication"]["lag_events"], 0);
    let (st, ready) = call(&app, "GET", "/readyz", None, "").await;
    assert_eq!(st, 200);
    assert_eq!(ready["replication"]["lag_events"], 0, "{ready}");

    // Every event in exactly one object, in order; objects of whole buffers, at most 7 events
    // unless a single buffer is larger.
    let root = archive.path().join("trail");
    assert!(root.join("public-key.pem").exists());
    let mut seqs = Vec::new();
    for f in files(&root, ".jsonl.gz") {
        let ls = lines(&f);
        let leaves: std::collections::BTreeSet<u64> = ls.iter().map(|l| l["leaf_index"].as_u64().unwrap()).collect();
        assert!(ls.len() <= 7 || leaves.len() == 1, "{}: {} events", f.display(), ls.len());
        let proof = f.to_string_lossy().replace(".jsonl.gz", ".proof.json");
        assert!(std::path::Path::new(&proof).exists(), "{proof}");
        seqs.extend(ls.iter().map(|l| l["seq"].as_i64().unwrap()));
    }
    assert_eq!(seqs, (0..n as i64).collect::<Vec<_>>());

    // One line format: an archive line is the `jsonl.gz` export's line of the same event without
    // the export-only proof fields, byte for byte up to them.
    let archived: Vec<String> = files(&root, ".jsonl.gz").iter().flat_map(|f| raw_lines(f)).collect();
    let out = tempfile::tempdir().unwrap();
    let export = out.path().join("e.jsonl.gz");
    let st = Command::new(bin())
        .args(["export", "--format", "jsonl.gz", "--since", "1d", "--data-dir"])
        .arg(s.dir.path())
        .arg("--out")
        .arg(&export)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let exported = raw_lines(&export);
    assert_eq!(exported.len(), archived.len());
    for (e, a) in exported.iter().zip(&archived) {
        let cut = e.find(",\"membership_proof\":").unwrap_or_else(|| panic!("no proof in {e}"));
        assert_eq!(format!("{}}}", &e[..cut]), *a);
        let mut v: Value = serde_json::from_str(e).unwrap();
        for k in ["membership_proof", "tree_size", "root"] {
            assert!(v.as_object_mut().unwrap().remove(k).is_some(), "{k} in {e}");
        }
        assert_eq!(v, serde_json::from_str::<Value>(a).unwrap());
    }

    // The bytes of an object are a function of the log: rebuilt from the database, the same.
    let first = files(&root, ".jsonl.gz").remove(0);
    let conn = trailkeep::store::open_side_rw(s.dir.path()).unwrap();
    let count = lines(&first).len() as i64;
    let mut rebuilt = Vec::new();
    trailkeep::replication::uploader::write_events(&conn, 0, count - 1, |b| {
        rebuilt.extend_from_slice(&b);
        Ok(())
    })
    .unwrap();
    assert_eq!(rebuilt, std::fs::read(&first).unwrap());

    // verify --archive, with no database.
    let out = Command::new(bin()).args(["verify", "--archive", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{n} events")), "{text}");

    // restore --from-archive (no signing key: read-only), then the local verify passes.
    let restored = restore_into_new_dir(&url);
    let out = Command::new(bin()).args(["verify", "--data-dir"]).arg(restored.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // A second restore into the same directory is refused.
    let out = Command::new(bin())
        .args(["restore", "--from-archive", &url, "--data-dir"])
        .arg(restored.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let public = s.state.ledger.public_key_b64();
    let o = trailkeep::server::open(trailkeep::config::Config::for_tests(restored.path())).unwrap();
    assert!(!o.state.ledger.can_sign() && o.state.ledger.public_key_b64() == public);
    assert!(o.state.ledger.read_only().unwrap().contains("keys/root-signing.1.pem"));
    o.state.writer.stop().await;
    drop(o.state);
    o.writer_thread.join().unwrap();

    // With --signing-key (the trail's key file) and a passphrase: the key goes into the key store,
    // sealed, and the restored trail goes on; a key that is not the archive's is refused.
    let keyfile = trailkeep::serverkeys::keys_dir(s.dir.path()).join("root-signing.1.pem");
    let other = tempfile::tempdir().unwrap();
    let wrong = other.path().join("wrong.pem");
    {
        let ks = trailkeep::keystore::KeyStore::open(&other.path().join("keys"), None).unwrap();
        let v = ks.create_ed25519("root-signing").unwrap();
        std::fs::copy(other.path().join(format!("keys/root-signing.{v}.pem")), &wrong).unwrap();
    }
    let target = other.path().join("data");
    let restore = |key: &std::path::Path| {
        Command::new(bin())
            .args(["restore", "--from-archive", &url, "--signing-key"])
            .arg(key)
            .arg("--data-dir")
            .arg(&target)
            .env("TRAILKEEP_KEY_PASSPHRASE", "restore pw")
            .output()
            .unwrap()
    };
    let out = restore(&wrong);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not the key of this archive"));
    assert!(!target.join("trailkeep.db").exists());
    let out = restore(&keyfile);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("root-signing.1"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    let installed = target.join("keys/root-signing.1.pem");
    assert_eq!(std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(std::fs::read_to_string(&installed).unwrap().contains("TRAILKEEP ENCRYPTED KEY"));
    let mut config = trailkeep::config::Config::for_tests(&target);
    config.key_passphrase = Some(trailkeep::keystore::Passphrase::new("restore pw".into()).unwrap());
    let o = trailkeep::server::open(config).unwrap();
    assert!(o.state.ledger.can_sign() && o.state.ledger.public_key_b64() == public);
    let (st, r) = call(
        &actix_web::test::init_service(
            actix_web::App::new().app_data(o.state.clone()).configure(trailkeep::http::configure),
        )
        .await,
        "POST",
        "/pangea/v1/log",
        o.bootstrap_key.as_deref(),
        r#"{"event":{"message":"after the restore"}}"#,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    o.state.writer.stop().await;
    drop(o.state);
    o.writer_thread.join().unwrap();
    let report = trailkeep::verify::verify(&target, None).unwrap();
    assert!(report.problems.is_empty() && report.events == n as u64 + 1, "{:?}", report.problems);
}

#[actix_web::test]
async fn replication_state_is_for_admin_keys_and_says_when_disabled() {
    let s = TestServer::new();
    let app = s.app().await;
    let (st, r) = call(&app, "GET", "/api/v1/replication", Some(&s.admin), "").await;
    assert_eq!((st, r), (200, json!({"enabled": false})));
    let search = s.key(&["search"], &[]);
    let (st, _) = call(&app, "GET", "/api/v1/replication", Some(&search), "").await;
    assert_eq!(st, 403);
    let (st, _) = call(&app, "GET", "/api/v1/replication", None, "").await;
    assert_eq!(st, 401);
    let (st, ready) = call(&app, "GET", "/readyz", None, "").await;
    assert_eq!(st, 200);
    assert_eq!(ready["replication"], json!({"enabled": false}));
}

/// Events of every config, in order, through a search with `key` (and `config_id` when given).
async fn search(app: &impl crate::common::TestApp, key: &str, config_id: Option<&str>, query: &str) -> Vec<Value> {
    let mut body = json!({"query": query, "order": "asc", "limit": 1000});
    if let Some(c) = config_id {
        body["config_id"] = json!(c);
    }
    let (st, r) = call(app, "POST", "/pangea/v1/search", Some(key), &body.to_string()).await;
    assert_eq!(st, 200, "{r}");
    r["result"]["events"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn archives_carry_audit_configs_through_a_restore() {
    use trailkeep::configs::{NewConfig, Signing, schema::AuditSchema};
    let (archive, url, s) = replicating_server(5);
    let app = s.app().await;
    let schema = json!({"fields": [
        {"id": "message", "type": "text", "required": true},
        {"id": "amount", "type": "integer"},
        {"id": "merchant", "type": "string"},
    ]});
    let (pay, signed) = {
        let mut conn = trailkeep::store::open_rw(s.dir.path()).unwrap();
        let keys = trailkeep::keystore::KeyStore::open(&trailkeep::serverkeys::keys_dir(s.dir.path()), None).unwrap();
        let new = |name: &str, schema: &Value, signing| NewConfig {
            name: name.into(),
            schema: AuditSchema::parse(schema, "").unwrap(),
            signing,
        };
        let pay = trailkeep::configs::create(&mut conn, new("payments", &schema, Signing::None), None).unwrap();
        let standard = trailkeep::configs::schema::standard_schema().to_value();
        let signed =
            trailkeep::configs::create(&mut conn, new("signed", &standard, Signing::Server), Some(&keys)).unwrap();
        (pay.id, signed.id)
    };
    let log = |config: &str, events: Vec<Value>| {
        json!({"config_id": config, "events": events.into_iter().map(|e| json!({"event": e})).collect::<Vec<_>>()})
            .to_string()
    };
    let mut n = 0;
    for i in 0..4 {
        let (st, r) = call(
            &app,
            "POST",
            "/pangea/v2/log",
            Some(&s.admin),
            &json!({"events": [{"event": {"message": format!("plain {i}")}}]}).to_string(),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        let pays = (0..3)
            .map(|k| json!({"message": format!("pay {i}.{k}"), "amount": 1000 * k + i, "merchant": "acme"}))
            .collect();
        let (st, r) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &log(&pay, pays)).await;
        assert_eq!(st, 200, "{r}");
        let (st, r) = call(
            &app,
            "POST",
            "/pangea/v2/log",
            Some(&s.admin),
            &log(&signed, vec![json!({"message": format!("signed {i}")})]),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        n += 5;
    }
    for _ in 0..200 {
        let (_, r) = call(&app, "GET", "/api/v1/replication", Some(&s.admin), "").await;
        if r["lag_events"] == 0 && r["replicated_events"] == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Lines name their config (none for the default config); configs.json declares them with the
    // public halves of the event-signing key, no private key.
    let root = archive.path().join("trail");
    let all: Vec<Value> = files(&root, ".jsonl.gz").iter().flat_map(|f| lines(f)).collect();
    assert_eq!(all.len(), n as usize);
    let of = |c: Option<&str>| all.iter().filter(|l| l["config_id"].as_str() == c).count();
    assert_eq!((of(None), of(Some(&pay)), of(Some(&signed))), (4, 12, 4));
    let declared: Value = serde_json::from_slice(&std::fs::read(root.join("configs.json")).unwrap()).unwrap();
    let ids: Vec<&str> = declared["configs"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&pay.as_str()) && ids.contains(&signed.as_str()) && ids.len() == 3, "{declared}");
    let text = declared.to_string();
    assert!(text.contains("BEGIN PUBLIC KEY") && !text.contains("PRIVATE"), "{text}");

    let out = Command::new(bin()).args(["verify", "--archive", &url]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Export lines name their config as archive lines do.
    let dir = tempfile::tempdir().unwrap();
    for (config, count) in [(Some(pay.as_str()), 12), (None, n as usize)] {
        let export = dir.path().join("e.jsonl.gz");
        let mut cmd = Command::new(bin());
        cmd.args(["export", "--format", "jsonl.gz", "--since", "1d", "--data-dir"]).arg(s.dir.path());
        if let Some(c) = config {
            cmd.args(["--config", c]);
        }
        let out = cmd.arg("--out").arg(&export).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let exported = lines(&export);
        assert_eq!(exported.len(), count);
        if config.is_some() {
            assert!(exported.iter().all(|l| l["config_id"] == pay.as_str()));
        } else {
            let named = |c: &str| exported.iter().filter(|l| l["config_id"] == c).count();
            assert_eq!((named(&pay), named(&signed)), (12, 4));
        }
    }

    // Restored: every event in its config, custom fields searchable, server signatures verified.
    let restored = restore_into_new_dir(&url);
    let report = trailkeep::verify::verify(restored.path(), None).unwrap();
    assert!(report.problems.is_empty() && report.events == n as u64, "{:?}", report.problems);
    let out = Command::new(bin()).args(["verify", "--data-dir"]).arg(restored.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let mut config = trailkeep::config::Config::for_tests(restored.path());
    config.self_audit = false;
    let o = trailkeep::server::open(config).unwrap();
    let admin = o.bootstrap_key.clone().unwrap();
    let (default_key, pay_key) = {
        let conn = trailkeep::store::open_rw(restored.path()).unwrap();
        let scopes = || trailkeep::keys::Scopes::parse_list(&["ingest", "search"]).unwrap();
        (
            trailkeep::keys::create_key(&conn, "d", scopes(), &[]).unwrap().secret,
            trailkeep::keys::create_key_with(&conn, "p", scopes(), &[], std::slice::from_ref(&pay)).unwrap().secret,
        )
    };
    let r_app = actix_web::test::init_service(
        actix_web::App::new().app_data(o.state.clone()).configure(trailkeep::http::configure),
    )
    .await;
    let seen = search(&r_app, &default_key, None, "").await;
    assert_eq!(seen.len(), 4, "the default config's key sees its own events only");
    assert!(seen.iter().all(|e| e["envelope"]["event"]["message"].as_str().unwrap().starts_with("plain")));
    assert_eq!(search(&r_app, &pay_key, None, "").await.len(), 12);
    let big = search(&r_app, &pay_key, None, "amount>=1000").await;
    assert_eq!(big.len(), 8, "{big:?}");
    assert!(big.iter().all(|e| e["envelope"]["event"]["amount"].as_i64().unwrap() >= 1000));
    assert_eq!(search(&r_app, &pay_key, None, "merchant:acme amount:2003").await.len(), 1);
    let signed_events = search(&r_app, &admin, Some(&signed), "").await;
    assert_eq!(signed_events.len(), 4);
    assert!(signed_events.iter().all(|e| e["envelope"]["signature"].is_string()));
    // Its private key is not in the archive: writes to the config are refused, saying why.
    let (st, r) =
        call(&r_app, "POST", "/pangea/v2/log", Some(&admin), &log(&signed, vec![json!({"message": "new"})])).await;
    assert_eq!(st, 503, "{r}");
    assert!(r.to_string().contains("is not installed"), "{r}");
    o.state.writer.stop().await;
    drop(o.state);
    o.writer_thread.join().unwrap();

    // A line naming a config configs.json does not declare: refused by both commands, nothing restored.
    let mut declared = declared;
    declared["configs"].as_array_mut().unwrap().retain(|c| c["id"] != pay.as_str());
    std::fs::write(root.join("configs.json"), serde_json::to_vec(&declared).unwrap()).unwrap();
    let out = Command::new(bin()).args(["verify", "--archive", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("is not declared in configs.json"), "{text}");
    let again = tempfile::tempdir().unwrap();
    let out =
        Command::new(bin()).args(["restore", "--from-archive", &url, "--data-dir"]).arg(again.path()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not declared"));
    assert!(!again.path().join("trailkeep.db").exists());
}

/// Every stored column of every event, strings resolved (what a restore must reproduce).
fn stored_events(db: &std::path::Path) -> Vec<Vec<rusqlite::types::Value>> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT e.seq, e.uid, e.origin, e.received_at, e.event_time, w.value, a.value, ac.value, es.value,
                    e.target, e.source, e.status, e.status_code, e.read_only, e.type, e.buffer, e.hash,
                    e.envelope, e.config
             FROM events e JOIN strings w ON w.id = e.workspace JOIN strings a ON a.id = e.actor
             JOIN strings ac ON ac.id = e.action JOIN strings es ON es.id = e.event_source ORDER BY e.seq",
        )
        .unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, rusqlite::types::Value>(i)).collect())
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Objects of several thousand events (rows reach the restore in chunks while each object is
/// checked): the restored events equal the source's column for column; an object that fails its
/// check half-way leaves no database behind, though rows before the bad line were inserted.
#[actix_web::test]
async fn restores_large_objects_row_for_row_and_nothing_from_a_bad_one() {
    // The events first, then a server that replicates them: objects of up to 5,000 events, each
    // with 3 KiB of random hex, so that an object takes more than one 5 MiB part (a `file://`
    // target writes each part on a blocking thread while the database reader waits for the
    // upload to take its chunks).
    let s = TestServer::new();
    let app = s.app().await;
    let mut n = 0;
    let pad = || (0..96).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect::<String>();
    for b in 0..6 {
        let body = json!({"events": (0..1000).map(|k| json!({"event": {
            "message": format!("bulk {b}.{k} caf\u{e9} \"q\" {}", pad()), "actor": format!("user{}", k % 13),
            "action": "read", "tenant_id": format!("workspaces/w{}", k % 3), "target": format!("doc/{k}"),
            "status": if k % 2 == 0 { "200" } else { "denied" }}})).collect::<Vec<_>>()});
        let (st, r) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &body.to_string()).await;
        assert_eq!(st, 200, "{r}");
        let mut ev = h2o_event(&format!("//svc/workspaces/w{}/x", b % 2));
        ev["metadata"] = json!({"z": "last", "a": format!("first {b}"), "n": "7"});
        let (st, r) = call(
            &app,
            "POST",
            &format!("/v1/events?eventId={}", uuid::Uuid::new_v4()),
            Some(&s.admin),
            &ev.to_string(),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        n += 1001;
    }
    let admin = s.admin.clone();
    drop(app);
    let dir = s.stop().await;
    let archive = tempfile::tempdir().unwrap();
    let url = format!("file://{}/trail", archive.path().display());
    let mut config = trailkeep::config::Config::for_tests(dir.path());
    config.self_audit = false;
    config.replication =
        Some(trailkeep::config::Replication { target: url.clone(), interval: 200_000, max_events: 5_000 });
    let opened = trailkeep::server::open(config).unwrap();
    let app = actix_web::test::init_service(
        actix_web::App::new().app_data(opened.state.clone()).configure(trailkeep::http::configure),
    )
    .await;
    for _ in 0..300 {
        let (_, r) = call(&app, "GET", "/api/v1/replication", Some(&admin), "").await;
        if r["lag_events"] == 0 && r["committed_events"] == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let objects = files(&archive.path().join("trail"), ".jsonl.gz");
    assert!(objects.len() >= 2, "{objects:?}");
    assert!(objects.iter().any(|f| lines(f).len() > 2 * 2048), "no object of more than two chunks of rows");
    let largest = objects.iter().map(|f| std::fs::metadata(f).unwrap().len()).max().unwrap();
    assert!(largest > 5 << 20, "no object of more than one part: {largest} bytes");

    let restored = restore_into_new_dir(&url);
    let source = stored_events(&dir.path().join("trailkeep.db"));
    assert_eq!(source.len(), n as usize);
    assert_eq!(stored_events(&restored.path().join("trailkeep.db")), source);

    // The largest object edited well past its first chunk of rows: the restore fails naming it
    // and the line, and leaves no database (nor the file it was building).
    let victim = objects.iter().max_by_key(|f| lines(f).len()).unwrap();
    let mut text = raw_lines(victim);
    let line = text.len() - 10;
    assert!(line > 2048);
    text[line] = text[line].replacen("bulk ", "BULK ", 1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, (text.join("\n") + "\n").as_bytes()).unwrap();
    std::fs::write(victim, gz.finish().unwrap()).unwrap();
    let again = tempfile::tempdir().unwrap();
    let out =
        Command::new(bin()).args(["restore", "--from-archive", &url, "--data-dir"]).arg(again.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let name = victim.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name) && err.contains(&format!("line {}", line + 1)), "{err}");
    let left: Vec<_> = std::fs::read_dir(again.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.starts_with("trailkeep.db"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
