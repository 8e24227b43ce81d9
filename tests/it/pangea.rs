use serde_json::{Value, json};
use trailkeep::ledger::merkle::{parse_hash, verify_membership};

use crate::common::{TestServer, call, h2o_event, pangea_search, uuid4};

fn envelope_hash(env: &Value) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(trailkeep::event::canonical::to_canonical_string(env).as_bytes()).into()
}

#[actix_web::test]
async fn log_search_and_prove() {
    let s = TestServer::new();
    let app = s.app().await;
    let (st, r) = call(
        &app,
        "POST",
        "/pangea/v1/log",
        Some(&s.admin),
        r#"{"event":{"message":"hello","actor":"alice"},"verbose":true}"#,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["status"], json!("Success"));
    let res = &r["result"];
    let leaf = envelope_hash(&res["envelope"]);
    assert_eq!(hex::encode(leaf), res["hash"].as_str().unwrap());
    let root = parse_hash(res["unpublished_root"].as_str().unwrap()).unwrap();
    assert!(verify_membership(&leaf, &root, res["membership_proof"].as_str().unwrap()));
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["request_id", "request_time", "response_time", "result", "status", "summary"]);

    let bulk = json!({"events": [{"event": {"message": "b1"}}, {"event": {"message": "b2", "tenant_id": "t"}}], "verbose": true});
    let (st, _) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &bulk.to_string()).await;
    assert_eq!(st, 200);
    let (st, found) =
        call(&app, "POST", "/pangea/v1/search", Some(&s.admin), r#"{"query":"message:b","order":"asc"}"#).await;
    assert_eq!(st, 200, "{found}");
    let res = &found["result"];
    assert_eq!(res["count"], json!(2));
    let root = parse_hash(res["root"]["root_hash"].as_str().unwrap()).unwrap();
    for e in res["events"].as_array().unwrap() {
        let leaf = envelope_hash(&e["envelope"]);
        assert!(verify_membership(&leaf, &root, e["membership_proof"].as_str().unwrap()));
        assert_eq!(e["published"], json!(true));
    }
    let (st, r) = call(&app, "POST", "/pangea/v1/root", Some(&s.admin), r#"{"tree_size":2}"#).await;
    assert_eq!((st, r["result"]["data"]["size"].as_u64()), (200, Some(2)));
    let (st, r) = call(&app, "POST", "/pangea/v1/root", Some(&s.admin), r#"{"tree_size":99}"#).await;
    assert_eq!((st, r["status"].as_str()), (404, Some("TreeNotFound")));
    let id = res["id"].as_str().unwrap();
    let (st, r) =
        call(&app, "POST", "/pangea/v1/results", Some(&s.admin), &json!({"id": id, "offset": 3}).to_string()).await;
    assert_eq!((st, r["status"].as_str()), (400, Some("BadOffset")));
}

#[actix_web::test]
async fn validation_errors() {
    let s = TestServer::new();
    let app = s.app().await;
    let cases = [
        (r#"{"event":{"actor":"x"}}"#, "FieldRequired", "/event/message"),
        (r#"{"event":{"message":"x","bogus":"y"}}"#, "UnexpectedProperty", "/event/bogus"),
        (r#"{"event":{"message":null}}"#, "InvalidString", "/event/message"),
        (r#"{"event":{"message":"x","timestamp":"yesterday"}}"#, "BadFormatDateTime", "/event/timestamp"),
        (r#"{"event":{"message":"x"},"extra":1}"#, "UnexpectedProperty", "/extra"),
        (r#"{"event":{"message":"x","message":"y"}}"#, "BadFormat", "/"),
        ("not json", "BadFormat", "/"),
    ];
    for (body, code, source) in cases {
        let (st, r) = call(&app, "POST", "/pangea/v1/log", Some(&s.admin), body).await;
        assert_eq!(st, 400, "{body}: {r}");
        assert_eq!(r["status"], json!("ValidationError"));
        assert_eq!(r["result"]["errors"][0]["code"], json!(code), "{body}: {r}");
        assert_eq!(r["result"]["errors"][0]["source"], json!(source), "{body}: {r}");
    }
    let long = "a".repeat(33);
    let (st, r) = call(
        &app,
        "POST",
        "/pangea/v1/log",
        Some(&s.admin),
        &json!({"event": {"message": "m", "action": long}}).to_string(),
    )
    .await;
    assert_eq!((st, r["result"]["errors"][0]["code"].as_str()), (400, Some("AboveMaxLength")));
    for q in ["\"alice", "alice AND", "(", ")", "nosuchfield:x"] {
        let (st, r) = call(&app, "POST", "/pangea/v1/search", Some(&s.admin), &json!({"query": q}).to_string()).await;
        assert_eq!((st, r["status"].as_str()), (400, Some("ValidationError")), "{q}");
    }
    assert_eq!(s.state.ledger.size(), 0);
}

#[actix_web::test]
async fn one_trail_across_dialects() {
    let s = TestServer::new();
    let app = s.app().await;
    let id = uuid4();
    let (st, _) = call(
        &app,
        "POST",
        &format!("/v1/events?eventId={id}"),
        Some(&s.admin),
        &h2o_event("//x/workspaces/w9/e").to_string(),
    )
    .await;
    assert_eq!(st, 200);
    let (_, r) = call(
        &app,
        "POST",
        "/pangea/v1/log",
        Some(&s.admin),
        r#"{"event":{"message":"p","tenant_id":"workspaces/w9","status":"7"}}"#,
    )
    .await;
    assert_eq!(r["status"], json!("Success"));
    let (_, found) =
        call(&app, "POST", "/pangea/v1/search", Some(&s.admin), r#"{"query":"tenant_id=workspaces/w9","order":"asc"}"#)
            .await;
    let events = found["result"]["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    let h2o = &events[0]["envelope"]["event"];
    assert_eq!(h2o["actor"], json!("users/a2b3b8a6-05c6-47d1-8ae1-774113404975"));
    assert_eq!(h2o["target"], json!("//x/workspaces/w9/e"));
    assert_eq!(h2o["event_id"], json!(id));
    let req = json!({"filter": {"workspaceExact": "workspaces/w9"}});
    let (_, page) = call(&app, "POST", "/v1/events:search", Some(&s.admin), &req.to_string()).await;
    let evs = page["events"].as_array().unwrap();
    assert_eq!(evs.len(), 2);
    let pangea = evs.iter().find(|e| e["eventSource"] == json!("pangea")).unwrap();
    assert_eq!(pangea["metadata"]["message"], json!("p"));
    assert_eq!(pangea["status"]["code"], json!(7));
    assert_eq!(pangea["workspace"], json!("workspaces/w9"));
}

#[actix_web::test]
async fn tenant_isolation() {
    let s = TestServer::new();
    let app = s.app().await;
    let t1 = s.key(&["ingest", "search"], &["t1"]);
    let (st, _) =
        call(&app, "POST", "/pangea/v1/log", Some(&t1), r#"{"event":{"message":"x","tenant_id":"t2"}}"#).await;
    assert_eq!(st, 403);
    let (st, _) =
        call(&app, "POST", "/pangea/v1/log", Some(&t1), r#"{"event":{"message":"mine","tenant_id":"t1"}}"#).await;
    assert_eq!(st, 200);
    let (_, _) =
        call(&app, "POST", "/pangea/v1/log", Some(&s.admin), r#"{"event":{"message":"theirs","tenant_id":"t2"}}"#)
            .await;
    let (_, r) = call(&app, "POST", "/pangea/v1/search", Some(&t1), r#"{"query":""}"#).await;
    assert_eq!(r["result"]["count"], json!(1));
    let (_, r) = call(&app, "POST", "/pangea/v1/search", Some(&s.admin), r#"{"query":""}"#).await;
    let id = r["result"]["id"].as_str().unwrap();
    let (st, _) = call(&app, "POST", "/pangea/v1/results", Some(&t1), &json!({"id": id}).to_string()).await;
    assert_eq!(st, 404);
}

/// Substring terms find text that JSON escapes in the stored envelope (quotes, backslashes,
/// control characters), non-ASCII text, and text inside `new`/`old` objects; key names of the
/// envelope are not values.
#[actix_web::test]
async fn substring_terms_match_escaped_and_unicode_text() {
    let s = TestServer::new();
    let app = s.app().await;
    let events = json!({"events": [
        {"event": {"message": "say \"hi\" now", "actor": "back\\slash"}},
        {"event": {"message": "line1\nline2\ttab", "target": "ctl\u{1}x"}},
        {"event": {"message": "café ☃ 🚀", "source": "é"}},
        {"event": {"message": "obj", "new": {"k": "q\"uote", "n": 1}, "old": "plain old"}},
        {"event": {"message": "nothing special", "tenant_id": "tn-1"}},
    ]});
    let (st, r) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &events.to_string()).await;
    assert_eq!(st, 200, "{r}");
    let mut h2o = h2o_event("//svc/workspaces/w1/things/t1");
    h2o["metadata"] = json!({"message": "h2o \"quoted\" \\ back"});
    let body = json!({"requests": [{"eventId": uuid4(), "event": h2o}]});
    let (st, r) = call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &body.to_string()).await;
    assert_eq!(st, 200, "{r}");

    let cases: &[(&str, &[&str])] = &[
        (r#""say \"hi""#, &["say \"hi\" now"]),
        (r"back\slash", &["say \"hi\" now"]),
        (r#"actor="back\\slash""#, &["say \"hi\" now"]),
        (r#""\\""#, &["say \"hi\" now", "obj", "h2o \"quoted\" \\ back"]),
        ("message:\"line1\nline2\"", &["line1\nline2\ttab"]),
        ("\"\ttab\"", &["line1\nline2\ttab"]),
        ("ctl\u{1}x", &["line1\nline2\ttab"]),
        ("☃", &["café ☃ 🚀"]),
        ("é", &["café ☃ 🚀"]),
        // `new` is stored as the object's canonical JSON text: its quote is escaped there.
        (r#"new:"q\\\"uote""#, &["obj"]),
        (r#"new:"\"n\":1""#, &["obj"]),
        ("old:plain", &["obj"]),
        (r#""h2o \"quoted\" \\ back""#, &["h2o \"quoted\" \\ back"]),
        ("tn-1", &["nothing special"]),
        (r#"message:i -"\\""#, &["line1\nline2\ttab", "nothing special"]),
        ("event_id", &[]),
        ("metadata", &[]),
        (r#""\"message\"""#, &[]),
    ];
    for (query, want) in cases {
        let res = pangea_search(&app, &s.admin, json!({"query": query, "limit": 100, "order": "asc"})).await;
        let mut got: Vec<&str> = res["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["envelope"]["event"]["message"].as_str().unwrap())
            .collect();
        got.sort_unstable();
        let mut want = want.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "query {query:?}");
    }
}
