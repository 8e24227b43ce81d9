//! Retention purge and the admin API.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{TestApp, TestServer, call, h2o_event, pangea_search, uuid4};

const SEC: i64 = 1_000_000;

fn verify(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trailkeep")).args(["verify", "--data-dir"]).arg(dir).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn count(dir: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

async fn ingest(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    key: &str,
    ws: &str,
    n: usize,
    word: &str,
) {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = h2o_event(&format!("//svc/things/{i}"));
            e["workspaceOverride"] = json!(ws);
            e["metadata"] = json!({"message": format!("{word} number {i}")});
            json!({"event": e, "eventId": uuid4()})
        })
        .collect();
    let (st, body) =
        call(app, "POST", "/v1/events:batchCreate", Some(key), &json!({"requests": requests}).to_string()).await;
    assert_eq!(st, 200, "{body}");
    let body = json!({"events": [{"event": {"message": format!("{word} via pangea"), "tenant_id": ws}}]});
    let (st, body) = call(app, "POST", "/pangea/v2/log", Some(key), &body.to_string()).await;
    assert_eq!(st, 200, "{body}");
}

/// A server that keeps `workspaces/old` for a second.
fn retaining_old() -> TestServer {
    TestServer::with_config(|c| {
        c.retention.workspaces.insert("workspaces/old".into(), SEC);
    })
}

async fn search(app: &impl TestApp, key: &str, query: &str) -> Value {
    pangea_search(app, key, json!({"query": query, "verbose": true})).await
}

#[actix_web::test]
async fn purge_removes_content_keeps_proofs_and_is_logged() {
    let s = retaining_old();
    let app = s.app().await;
    ingest(&app, &s.admin, "workspaces/old", 5, "zebracorn").await;
    ingest(&app, &s.admin, "workspaces/keep", 3, "lemurfish").await;
    assert_eq!(search(&app, &s.admin, "zebracorn").await["count"], 6);
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["purged"], 6, "{report}");
    assert_eq!(report["workspaces"]["workspaces/old"], 6);
    assert_eq!(report["purge_events"], 1);

    // Content gone from search (both dialects) and from the free-text index; the rest untouched.
    assert_eq!(search(&app, &s.admin, "zebracorn").await["count"], 0);
    let fts = count(s.dir.path(), "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'zebracorn'");
    assert_eq!(fts, 0, "free-text entries of purged events are deleted");
    assert_eq!(
        count(
            s.dir.path(),
            "SELECT count(*) FROM events WHERE purged_at IS NOT NULL AND envelope = '' AND target IS NULL"
        ),
        6
    );
    let kept = search(&app, &s.admin, "lemurfish").await;
    assert_eq!(kept["count"], 4);
    let filter = json!({"workspaceExact": "workspaces/old"});
    let (st, found) = call(
        &app,
        "POST",
        "/v1/events:search",
        Some(&s.admin),
        &json!({"filter": filter, "pageSize": 100}).to_string(),
    )
    .await;
    assert_eq!(st, 200, "{found}");
    let events = found["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "only the purge event is left in the workspace: {found}");
    assert_eq!(events[0]["action"], "actions/audittrail/events/PURGE");
    assert_eq!(events[0]["metadata"]["purged"], "6");

    // Proofs of kept events still verify against the current root.
    let root = kept["root"]["root_hash"].as_str().unwrap().to_string();
    for e in kept["events"].as_array().unwrap() {
        let leaf = trailkeep::ledger::merkle::parse_hash(e["hash"].as_str().unwrap()).unwrap();
        let root = trailkeep::ledger::merkle::parse_hash(&root).unwrap();
        let proof = e["membership_proof"].as_str().unwrap();
        assert!(trailkeep::ledger::merkle::verify_membership(&leaf, &root, proof), "{e}");
    }

    // verify passes and counts the purged rows; a second purge finds nothing to do.
    let (ok, out) = verify(s.dir.path());
    assert!(ok && out.contains("6 with content removed by retention"), "{out}");
    let (_, again) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(again["purged"], 0, "{again}");
    let (st, status) = call(&app, "GET", "/api/v1/retention", Some(&s.admin), "").await;
    assert_eq!(st, 200);
    assert_eq!(status["workspaces"]["workspaces/old"], "1s");
    assert_eq!(status["last_run"]["ok"], true);

    // Blanking an event by hand is not a purge: verify names it.
    let conn = rusqlite::Connection::open(s.dir.path().join("trailkeep.db")).unwrap();
    let seq: i64 = conn
        .query_row("SELECT seq FROM events WHERE purged_at IS NULL AND envelope LIKE '%lemurfish%' LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute("UPDATE events SET envelope = '', purged_at = 1 WHERE seq = ?1", [seq]).unwrap();
    let (ok, out) = verify(s.dir.path());
    assert!(!ok && out.contains("unexplained_purge"), "{out}");
}

#[actix_web::test]
async fn a_purge_over_many_segments_commits_a_few_segments_at_a_time() {
    use trailkeep::store::retention::MAX_SEGMENTS;
    let s = TestServer::with_config(|c| {
        c.retention.workspaces.insert("workspaces/hot".into(), SEC);
    });
    let app = s.app().await;
    // One event in ten is the hot workspace's, in every segment the log fills.
    for b in 0..40 {
        let requests: Vec<Value> = (0..1000)
            .map(|i| {
                let hot = i % 10 == 0;
                let mut e = h2o_event(&format!("//svc/things/{b}-{i}"));
                e["workspaceOverride"] = json!(if hot { "workspaces/hot" } else { "workspaces/cold" });
                e["metadata"] = json!({"message": format!("{} number {i}", if hot { "hotword" } else { "coldword" })});
                json!({"event": e, "eventId": uuid4()})
            })
            .collect();
        let (st, body) =
            call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &json!({"requests": requests}).to_string())
                .await;
        assert_eq!(st, 200, "{body}");
    }
    let segments = count(
        s.dir.path(),
        "SELECT count(DISTINCT seq >> 12) FROM events WHERE workspace = (SELECT id FROM strings WHERE value = 'workspaces/hot')",
    );
    assert!(segments > 2 * MAX_SEGMENTS as i64, "{segments}");
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["purged"], 4000, "{report}");
    // One transaction per MAX_SEGMENTS segments, one purge event for the run.
    assert_eq!(report["purge_events"], 1, "{report}");
    let declared = "SELECT CAST(json_extract(envelope, '$.event.metadata.purged') AS INTEGER) FROM events
                    WHERE action = (SELECT id FROM strings WHERE value = 'actions/audittrail/events/PURGE')";
    assert_eq!(count(s.dir.path(), declared), 4000);
    assert_eq!(count(s.dir.path(), "SELECT count(*) FROM purge_pending"), 0);
    assert_eq!(search(&app, &s.admin, "hotword").await["count"], 0);
    assert_eq!(count(s.dir.path(), "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'hotword'"), 0);
    let kept = "SELECT count(*) FROM events WHERE purged_at IS NULL AND envelope LIKE '%coldword%'";
    assert_eq!(count(s.dir.path(), kept), 36000);
    // The workspace's floor: every hot row below it is purged, and the next purge's scans start
    // there (not at the start of the log).
    let hot = "(SELECT id FROM strings WHERE value = 'workspaces/hot')";
    let floor =
        "SELECT CAST(CAST(value AS TEXT) AS INTEGER) FROM settings WHERE key = 'retention_floor_ws:workspaces/hot'";
    let first_floor = count(s.dir.path(), floor);
    let purged_max =
        count(s.dir.path(), &format!("SELECT max(seq) FROM events WHERE workspace = {hot} AND purged_at IS NOT NULL"));
    assert!(first_floor > purged_max, "{first_floor} {purged_max}");
    let below = format!(
        "SELECT count(*) FROM events WHERE workspace = {hot} AND seq < ({floor}) AND purged_at IS NULL AND action != (SELECT id FROM strings WHERE value = 'actions/audittrail/events/PURGE')"
    );
    assert_eq!(count(s.dir.path(), &below), 0);
    ingest(&app, &s.admin, "workspaces/hot", 7, "later").await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["purged"], 8, "seven H2O events and one Pangea event: {report}");
    assert!(count(s.dir.path(), floor) > first_floor);
    assert_eq!(count(s.dir.path(), &below), 0);
    let (ok, out) = verify(s.dir.path());
    assert!(ok && out.contains("4008 with content removed by retention"), "{out}");
}

#[actix_web::test]
async fn default_period_with_exemption() {
    let s = TestServer::with_config(|c| {
        c.retention.default = Some(SEC);
        c.retention.workspaces.insert("workspaces/legal".into(), i64::MAX);
    });
    let app = s.app().await;
    ingest(&app, &s.admin, "workspaces/a", 4, "alpha").await;
    ingest(&app, &s.admin, "workspaces/legal", 2, "beta").await;
    ingest(&app, &s.admin, "workspaces/b", 3, "gamma").await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["purged"], 9, "{report}");
    assert_eq!(report["purge_events"], 2);
    assert_eq!(search(&app, &s.admin, "beta").await["count"], 3, "the exempt workspace keeps everything");
    // Later: the purge events themselves are old enough, but are never purged.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, again) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(again["purged"], 0, "{again}");
    let (ok, out) = verify(s.dir.path());
    assert!(ok && out.contains("9 with content removed"), "{out}");
}

#[actix_web::test]
async fn purge_without_retention_is_a_conflict() {
    let s = TestServer::new();
    let app = s.app().await;
    let (st, body) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!((st, body["code"].as_str()), (409, Some("retention_disabled")));
}

#[actix_web::test]
async fn purge_events_pending_after_an_interrupted_run_are_logged_at_the_next_start() {
    let s = retaining_old();
    {
        let app = s.app().await;
        ingest(&app, &s.admin, "workspaces/old", 5, "zebracorn").await;
        ingest(&app, &s.admin, "workspaces/keep", 3, "lemurfish").await;
    }
    let dir = s.stop().await;
    // What a run's committed batches leave when the server stops before the run's end: rows
    // purged, declared in `purge_pending` only.
    {
        let conn = rusqlite::Connection::open(dir.path().join("trailkeep.db")).unwrap();
        let old = "(SELECT id FROM strings WHERE value = 'workspaces/old')";
        let (first, last, n): (i64, i64, i64) = conn
            .query_row(&format!("SELECT min(seq), max(seq), count(*) FROM events WHERE workspace = {old}"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(n, 6);
        conn.execute(&format!("UPDATE events SET envelope = '', purged_at = 1 WHERE workspace = {old}"), []).unwrap();
        conn.execute(
            "INSERT INTO purge_pending(workspace, first_seq, last_seq, count, cutoff, period) VALUES ('workspaces/old', ?1, ?2, ?3, 1, ?4)",
            rusqlite::params![first, last, n, SEC],
        )
        .unwrap();
    }
    let (ok, out) = verify(dir.path());
    assert!(ok && out.contains("6 with content removed by retention, 6 of them awaiting their purge events"), "{out}");
    // A pending row that declares more than was purged does not pass.
    {
        let conn = rusqlite::Connection::open(dir.path().join("trailkeep.db")).unwrap();
        conn.execute("UPDATE purge_pending SET count = 7", []).unwrap();
        let (ok, out) = verify(dir.path());
        assert!(!ok && out.contains("declare 7 purged events, 6 found"), "{out}");
        conn.execute("UPDATE purge_pending SET count = 6", []).unwrap();
    }
    // The next start logs the purge event.
    let mut config = trailkeep::config::Config::for_tests(dir.path());
    config.self_audit = false;
    let opened = trailkeep::server::open(config).unwrap();
    opened.state.writer.stop().await;
    drop(opened.state);
    opened.writer_thread.join().unwrap();
    let (ok, out) = verify(dir.path());
    assert!(ok && out.contains("(6 with content removed by retention)"), "{out}");
    assert_eq!(count(dir.path(), "SELECT count(*) FROM purge_pending"), 0);
    let declared = "SELECT CAST(json_extract(envelope, '$.event.metadata.purged') AS INTEGER) FROM events
                    WHERE action = (SELECT id FROM strings WHERE value = 'actions/audittrail/events/PURGE')";
    assert_eq!(count(dir.path(), declared), 6);
}

#[actix_web::test]
async fn purged_rows_free_their_pages() {
    let s = retaining_old();
    let app = s.app().await;
    for _ in 0..2 {
        ingest(&app, &s.admin, "workspaces/old", 1000, &"padding ".repeat(100)).await;
    }
    let pages = "SELECT count(*) FROM dbstat WHERE name = 'events'";
    let before = count(s.dir.path(), pages);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!((st, &report["purged"]), (200, &json!(2002)), "{report}");
    // A row updated in place would keep its page as full as before.
    let after = count(s.dir.path(), pages);
    assert!(after * 4 < before, "the events table: {before} pages before the purge, {after} after");
    let (ok, out) = verify(s.dir.path());
    assert!(ok && out.contains("2002 with content removed"), "{out}");
}

#[actix_web::test]
async fn a_second_purge_is_refused_while_one_runs() {
    use trailkeep::http::admin::{PurgeRunError, run_purge};
    let s = retaining_old();
    let app = s.app().await;
    ingest(&app, &s.admin, "workspaces/old", 5, "zebracorn").await;
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    // Two runs at once (a scheduled one and one asked for): the second is refused at once.
    let (first, second) = futures_util::future::join(run_purge(&s.state), run_purge(&s.state)).await;
    assert_eq!(first.ok().map(|r| r.purged), Some(6));
    assert!(matches!(second, Err(PurgeRunError::Running { .. })));
    // Through the API, with the state of a run in progress shown by GET.
    s.state.retention.lock().running = Some(trailkeep::http::state::RunningPurge {
        started_at: trailkeep::time::now_micros(),
        purged: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(42)),
    });
    let (st, body) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!((st, body["code"].as_str()), (409, Some("purge_running")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("42 events purged so far"), "{body}");
    let (st, policy) = call(&app, "GET", "/api/v1/retention", Some(&s.admin), "").await;
    assert_eq!((st, &policy["running"]["purged"]), (200, &json!(42)), "{policy}");
    assert_eq!(policy["last_run"]["report"]["purged"], 6, "{policy}");
    s.state.retention.lock().running = None;
    let (st, again) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!((st, &again["purged"]), (200, &json!(0)), "{again}");
    let (_, policy) = call(&app, "GET", "/api/v1/retention", Some(&s.admin), "").await;
    assert_eq!(policy["running"], Value::Null, "{policy}");
}

#[actix_web::test]
async fn admin_key_api() {
    let s = TestServer::new();
    let app = s.app().await;
    let body = json!({"name": "ci ingest", "scopes": ["ingest"], "workspaces": ["workspaces/w1"]});
    let (st, created) = call(&app, "POST", "/api/v1/keys", Some(&s.admin), &body.to_string()).await;
    assert_eq!(st, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with(&format!("tk_{id}_")));

    let (st, list) = call(&app, "GET", "/api/v1/keys", Some(&s.admin), "").await;
    assert_eq!(st, 200);
    let listed = list["keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert_eq!(listed["scopes"], json!(["ingest"]));
    assert!(!list.to_string().contains(&secret[20..]), "secrets are never listed");

    // The new key works within its scope, and may not administer.
    let (st, _) = call(&app, "GET", "/api/v1/whoami", Some(&secret), "").await;
    assert_eq!(st, 200);
    let (st, _) = call(&app, "GET", "/api/v1/keys", Some(&secret), "").await;
    assert_eq!(st, 403);
    let limited_admin = s.key(&["admin"], &["workspaces/w1"]);
    let (st, _) = call(&app, "GET", "/api/v1/keys", Some(&limited_admin), "").await;
    assert_eq!(st, 403, "workspace-limited admins do not manage keys");
    let (st, _) = call(&app, "GET", "/api/v1/keys", None, "").await;
    assert_eq!(st, 401);

    for bad in [
        json!({"name": "", "scopes": ["ingest"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": ["search"], "extra": 1}),
    ] {
        let (st, body) = call(&app, "POST", "/api/v1/keys", Some(&s.admin), &bad.to_string()).await;
        assert_eq!(st, 400, "{bad} -> {body}");
    }

    let (st, _) = call(&app, "DELETE", &format!("/api/v1/keys/{id}"), Some(&s.admin), "").await;
    assert_eq!(st, 204);
    let (st, _) = call(&app, "GET", "/api/v1/whoami", Some(&secret), "").await;
    assert_eq!(st, 401, "revoked at once");
    let (st, _) = call(&app, "DELETE", &format!("/api/v1/keys/{id}"), Some(&s.admin), "").await;
    assert_eq!(st, 404, "already revoked");
    let (st, _) = call(&app, "PUT", "/api/v1/keys", Some(&s.admin), "").await;
    assert_eq!(st, 405);

    // Key changes are logged as events (stored before the response).
    let filter = json!({"actionRegex": "actions/audittrail/keys/.*"});
    let (st, found) =
        call(&app, "POST", "/v1/events:search", Some(&s.admin), &json!({"filter": filter}).to_string()).await;
    assert_eq!(st, 200, "{found}");
    let actions: Vec<&str> =
        found["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["actions/audittrail/keys/REVOKE", "actions/audittrail/keys/CREATE"], "{found}");
}

#[actix_web::test]
async fn admin_key_api_rejects_bad_bodies_without_storing() {
    let s = TestServer::new();
    let app = s.app().await;
    let before = count(s.dir.path(), "SELECT count(*) FROM api_keys");
    for (body, code) in [
        (r#"{"name":"a","name":"b","scopes":["search"]}"#, "invalid_json"),
        (r#"{"name":"a","scopes":["search"]"#, "invalid_json"),
        ("[1]", "invalid_body"),
        (r#"{"name":"a","scopes":"search"}"#, "invalid_body"),
        (r#"{"name":"a","scopes":["search"],"workspaces":[""]}"#, "invalid_workspaces"),
    ] {
        let (st, r) = call(&app, "POST", "/api/v1/keys", Some(&s.admin), body).await;
        assert_eq!((st, r["code"].as_str()), (400, Some(code)), "{body} -> {r}");
    }
    let big = format!(r#"{{"name":"{}","scopes":["search"]}}"#, "x".repeat(70_000));
    let (st, _) = call(&app, "POST", "/api/v1/keys", Some(&s.admin), &big).await;
    assert_eq!(st, 413);
    assert_eq!(count(s.dir.path(), "SELECT count(*) FROM api_keys"), before, "nothing stored");
}
