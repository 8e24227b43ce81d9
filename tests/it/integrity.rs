//! `GET /api/v1/integrity` and the verification job (`GET|POST /api/v1/verify`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestApp, TestServer, call, pangea_search};

async fn wait_finished(app: &impl TestApp, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, body) = call(app, "GET", "/api/v1/verify", Some(key), "").await;
        assert_eq!(st, 200, "{body}");
        if body["running"] == false && !body["last"].is_null() {
            return body;
        }
        assert!(Instant::now() < deadline, "the verification did not finish: {body}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn integrity_state_and_verification_in_the_background() {
    let s = TestServer::new();
    let app = s.app().await;
    let events: Vec<Value> =
        (0..20).map(|i| json!({"event": {"message": format!("integrity {i}"), "actor": "alice"}})).collect();
    let (st, body) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &json!({"events": events}).to_string()).await;
    assert_eq!(st, 200, "{body}");

    let (st, i) = call(&app, "GET", "/api/v1/integrity", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{i}");
    assert_eq!(i["events"], 20);
    assert_eq!(i["tree_size"], i["newest_root"]["size"]);
    assert_eq!(i["checkpoint"]["state"], "consistent", "{i}");
    assert_eq!(i["checkpoint"]["root_hash"], i["newest_root"]["root_hash"]);
    assert!(i["public_key"]["pem"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(i["verify"]["running"], false);
    assert!(i["verify"]["last"].is_null());
    assert_eq!(i["replication"], json!({"enabled": false}), "no replication configured");
    let signed: Value = serde_json::from_str(i["newest_root"]["signed_message"].as_str().unwrap()).unwrap();
    assert_eq!(signed["root_hash"], i["newest_root"]["root_hash"]);

    let search = s.key(&["search"], &[]);
    let ingest = s.key(&["ingest"], &[]);
    let limited_admin = s.key(&["admin"], &["w1"]);
    assert_eq!(call(&app, "GET", "/api/v1/integrity", Some(&search), "").await.0, 200);
    assert_eq!(call(&app, "GET", "/api/v1/integrity", Some(&ingest), "").await.0, 403);
    assert_eq!(call(&app, "GET", "/api/v1/integrity", None, "").await.0, 401);
    for key in [&search, &ingest, &limited_admin] {
        assert_eq!(call(&app, "POST", "/api/v1/verify", Some(key), "").await.0, 403);
    }
    assert_eq!(call(&app, "DELETE", "/api/v1/verify", Some(&s.admin), "").await.0, 405);

    let (st, started) = call(&app, "POST", "/api/v1/verify", Some(&s.admin), "").await;
    assert_eq!(st, 202, "{started}");
    let done = wait_finished(&app, &s.admin).await;
    let last = &done["last"];
    assert_eq!(last["ok"], true, "{done}");
    assert_eq!(last["events"], 21, "the run's own event is in the log it checked: {done}");
    assert!(last["finished_at"].as_str().unwrap() >= last["started_at"].as_str().unwrap());
    let found = pangea_search(&app, &s.admin, json!({"query": "action=\"actions/audittrail/log/VERIFY\""})).await;
    assert_eq!(found["count"], 1, "the verification is logged");

    // An edited envelope: the next run reports it; details only for admin keys without a limit.
    let conn = rusqlite::Connection::open(s.dir.path().join("trailkeep.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let n = conn
        .execute("UPDATE events SET envelope = replace(envelope, 'integrity 3', 'integrity 4') WHERE seq = 3", [])
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    assert_eq!(call(&app, "POST", "/api/v1/verify", Some(&s.admin), "").await.0, 202);
    let done = wait_finished(&app, &s.admin).await;
    let last = &done["last"];
    assert_eq!(last["ok"], false, "{done}");
    let problems = last["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["kind"] == "leaf_mismatch" && p["detail"].as_str().unwrap().contains("event 3")),
        "{done}"
    );
    let (_, seen) = call(&app, "GET", "/api/v1/verify", Some(&search), "").await;
    assert_eq!(seen["last"]["ok"], false);
    assert!(
        seen["last"]["problems"].as_array().unwrap().iter().all(|p| p["detail"].is_null() && p["kind"].is_string())
    );
    // Kept in the database: a restarted server shows it too.
    let stored: Vec<u8> = rusqlite::Connection::open(s.dir.path().join("trailkeep.db"))
        .unwrap()
        .query_row("SELECT value FROM settings WHERE key = 'last_verify'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&stored).unwrap()["ok"], false);
}
