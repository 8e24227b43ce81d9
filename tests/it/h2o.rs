use serde_json::json;

use crate::common::{TestServer, call, h2o_event, uuid4};

#[actix_web::test]
async fn create_then_search_newest_first() {
    let s = TestServer::new();
    let app = s.app().await;
    let ws = format!("workspaces/{}", uuid4());
    let mut names = Vec::new();
    for i in 0..3 {
        let mut ev = h2o_event(&format!("//x/{ws}/things/{i}"));
        ev["eventTime"] = json!(format!("2025-07-02T10:00:0{i}Z"));
        let id = uuid4();
        let (st, body) = call(&app, "POST", &format!("/v1/events?eventId={id}"), Some(&s.admin), &ev.to_string()).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["event"]["workspace"], json!(ws));
        assert_eq!(body["event"]["sourceIpAddress"], json!("private"));
        names.push(body["event"]["name"].clone());
    }
    let req = json!({"filter": {"workspaceExact": ws}, "pageSize": 2, "pageToken": ""});
    let (st, page1) = call(&app, "POST", "/v1/events:search", Some(&s.admin), &req.to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(page1["events"][0]["name"], names[2]);
    assert_eq!(page1["events"][1]["name"], names[1]);
    let token = page1["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let req = json!({"filter": {"workspaceExact": ws}, "pageSize": 2, "pageToken": token});
    let (_, page2) = call(&app, "POST", "/v1/events:search", Some(&s.admin), &req.to_string()).await;
    assert_eq!(page2["events"].as_array().unwrap().len(), 1);
    assert_eq!(page2["events"][0]["name"], names[0]);
    assert_eq!(page2["nextPageToken"], json!(""));
    assert_eq!(page2["searchedUntilTime"], json!("2025-07-01T00:00:00Z"));
    // The token is bound to the filter.
    let req = json!({"filter": {"workspaceExact": "workspaces/other"}, "pageSize": 2, "pageToken": token});
    let (st, body) = call(&app, "POST", "/v1/events:search", Some(&s.admin), &req.to_string()).await;
    assert_eq!((st, body["message"].as_str()), (400, Some("page_token does not match the search request")));
    // The writer keeps each segment's event-time range (which the filtered search relies on) in
    // step with the events (the clients' events: `server_events_stay_out_of_segment_ranges`).
    let conn = rusqlite::Connection::open(s.dir.path().join("trailkeep.db")).unwrap();
    let ranges = |sql: &str| -> Vec<(i64, i64, i64)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    let kept = ranges("SELECT seg, min_event_time, max_event_time FROM segments ORDER BY seg");
    let actual = ranges(&format!(
        "SELECT seq >> {}, MIN(event_time), MAX(event_time) FROM events WHERE origin != 2 GROUP BY 1 ORDER BY 1",
        trailkeep::store::SEG_SHIFT
    ));
    assert_eq!(kept, actual);
    assert!(kept[0].1 <= 1_751_450_400_000_000 && kept[0].2 >= 1_751_450_402_000_000, "{kept:?}");
}

/// The server's own events (here the searches' self-audit, at the wall clock) do not widen a
/// segment's event-time range, and exact filters still find them, newest first.
#[actix_web::test]
async fn server_events_stay_out_of_segment_ranges() {
    let s = TestServer::with_config(|c| c.self_audit = true);
    let app = s.app().await;
    let ws = format!("workspaces/{}", uuid4());
    for i in 0..3 {
        let mut ev = h2o_event(&format!("//x/{ws}/things/{i}"));
        ev["eventTime"] = json!(format!("2025-07-02T10:00:0{i}Z"));
        let path = format!("/v1/events?eventId={}", uuid4());
        assert_eq!(call(&app, "POST", &path, Some(&s.admin), &ev.to_string()).await.0, 200);
    }
    let ws_search = json!({"filter": {"workspaceExact": ws}, "pageSize": 10}).to_string();
    for _ in 0..2 {
        let (st, body) = call(&app, "POST", "/v1/events:search", Some(&s.admin), &ws_search).await;
        assert_eq!((st, body["events"].as_array().map(Vec::len)), (200, Some(3)), "{body}");
    }
    // The self-audit is written in the background.
    let conn = rusqlite::Connection::open(s.dir.path().join("trailkeep.db")).unwrap();
    let server_events = || conn.query_row("SELECT count(*) FROM events WHERE origin = 2", [], |r| r.get::<_, i64>(0));
    for _ in 0..100 {
        if server_events().unwrap() >= 2 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(server_events().unwrap() >= 2);
    let (lo, hi): (i64, i64) = conn
        .query_row("SELECT min_event_time, max_event_time FROM segments WHERE seg = 0", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((lo, hi), (1_751_450_400_000_000, 1_751_450_402_000_000));
    let req = json!({"filter": {"actionExact": "actions/audittrail/events/SEARCH",
        "startEventTime": "2020-01-01T00:00:00Z", "endEventTime": "2100-01-01T00:00:00Z"}, "pageSize": 10});
    let (st, audit) = call(&app, "POST", "/v1/events:search", Some(&s.admin), &req.to_string()).await;
    assert_eq!(st, 200, "{audit}");
    let times: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["eventTime"].as_str().unwrap()).collect();
    assert!(times.len() >= 2 && times.iter().all(|t| *t > "2026"), "{times:?}");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // A filter matching both kinds merges them: the server's events are the newest.
    let req = json!({"filter": {"actionRegex": ".", "startEventTime": "2020-01-01T00:00:00Z",
        "endEventTime": "2100-01-01T00:00:00Z"}, "pageSize": 100});
    let (_, all) = call(&app, "POST", "/v1/events:search", Some(&s.admin), &req.to_string()).await;
    let all = all["events"].as_array().unwrap();
    assert!(all.len() >= 5, "{all:?}");
    assert!(
        all[0]["eventTime"].as_str().unwrap() > "2026"
            && all[all.len() - 1]["eventTime"] == json!("2025-07-02T10:00:00Z")
    );
}

#[actix_web::test]
async fn idempotent_retry_and_conflict() {
    let s = TestServer::new();
    let app = s.app().await;
    let id = uuid4();
    let ev = h2o_event("//x/workspaces/w1/a");
    let path = format!("/v1/events?eventId={id}");
    let (st, first) = call(&app, "POST", &path, Some(&s.admin), &ev.to_string()).await;
    assert_eq!(st, 200);
    let (st, again) = call(&app, "POST", &path, Some(&s.admin), &ev.to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(first, again);
    let mut changed = ev.clone();
    changed["action"] = json!("other");
    let (st, body) = call(&app, "POST", &path, Some(&s.admin), &changed.to_string()).await;
    assert_eq!(st, 409);
    assert_eq!(body, json!({"code": 6, "message": format!("event events/{id} already exists"), "details": []}));
}

/// Duplicate ids are found in any segment (the id index is clustered by segment and filtered in
/// memory): retries of events stored thousands of events ago return the stored event, and
/// changed content is a conflict, one by one and inside a batch.
#[actix_web::test]
async fn retries_find_events_in_older_segments() {
    let s = TestServer::new();
    let app = s.app().await;
    let per_segment = 1usize << trailkeep::store::SEG_SHIFT;
    let mut ids = Vec::new();
    let mut event = h2o_event("//x/workspaces/w1/a");
    while ids.len() < per_segment + 1_500 {
        let batch: Vec<(String, serde_json::Value)> = (0..1_000).map(|_| (uuid4(), event.clone())).collect();
        let req =
            json!({"requests": batch.iter().map(|(id, e)| json!({"eventId": id, "event": e})).collect::<Vec<_>>()});
        let (st, body) = call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &req.to_string()).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["failedRequests"], json!({}));
        ids.extend(batch.into_iter().map(|(id, _)| id));
    }
    let (old, newer) = (&ids[0], &ids[per_segment + 10]);
    let (st, body) = call(&app, "POST", &format!("/v1/events?eventId={old}"), Some(&s.admin), &event.to_string()).await;
    assert_eq!((st, body["event"]["name"].as_str()), (200, Some(format!("events/{old}").as_str())));
    event["action"] = json!("changed");
    let (st, _) = call(&app, "POST", &format!("/v1/events?eventId={old}"), Some(&s.admin), &event.to_string()).await;
    assert_eq!(st, 409);
    let fresh = uuid4();
    let req = json!({"requests": [
        {"eventId": newer, "event": h2o_event("//x/workspaces/w1/a")},
        {"eventId": ids[5], "event": event},
        {"eventId": fresh, "event": event},
    ]});
    let (st, body) = call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &req.to_string()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["failedRequests"]["1"]["code"], json!(6), "{body}");
    let names: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, [format!("events/{newer}"), format!("events/{fresh}")]);
    let conn = rusqlite::Connection::open(s.dir.path().join("trailkeep.db")).unwrap();
    let stored: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(stored as usize, ids.len() + 1);
}

#[actix_web::test]
async fn bad_input_gets_clear_errors_and_stores_nothing() {
    let s = TestServer::new();
    let app = s.app().await;
    let cases: Vec<(String, String, &str)> = vec![
        ("/v1/events?eventId=x".into(), h2o_event("r").to_string(), "event_id must be in UUIDv4 format"),
        (format!("/v1/events?eventId={}", uuid4()), "{".into(), "invalid request body"),
        (
            format!("/v1/events?eventId={}", uuid4()),
            r#"{"action":"a","action":"b"}"#.into(),
            "invalid request body: duplicate key \"action\"",
        ),
        (
            format!("/v1/events?eventId={}", uuid4()),
            h2o_event("r").to_string().replace("+00:00", ""),
            "event.event_time must be an RFC 3339 timestamp with a UTC offset",
        ),
        (
            format!("/v1/events?eventId={}", uuid4()),
            h2o_event("r").to_string().replace("k_1", "K"),
            "event.metadata key \"K\" must match",
        ),
        (
            format!("/v1/events?eventId={}", uuid4()),
            h2o_event("r").to_string().replace("\"TYPE_SYSTEM\"", "2"),
            "event.type must be one of",
        ),
        (
            "/v1/events:search".into(),
            json!({"filter": {"principalRegex": "(a"}}).to_string(),
            "filter.principal_regex is not a valid RE2 pattern:",
        ),
        ("/v1/events:search".into(), json!({"pageSize": -1}).to_string(), "page_size must not be negative"),
        ("/v1/events:search".into(), json!({"pageToken": "forged"}).to_string(), "invalid page_token"),
    ];
    for (path, body, msg) in cases {
        let (st, resp) = call(&app, "POST", &path, Some(&s.admin), &body).await;
        assert_eq!(st, 400, "{path} {body}: {resp}");
        assert_eq!(resp["code"], json!(3));
        assert!(resp["message"].as_str().unwrap().starts_with(msg), "{resp}");
    }
    assert_eq!(s.state.ledger.size(), 0);
    let (st, _) = call(&app, "GET", "/v1/events", Some(&s.admin), "").await;
    assert_eq!(st, 405);
    let (st, body) = call(&app, "POST", "/v1/nothing", Some(&s.admin), "").await;
    assert_eq!((st, body["code"].as_i64()), (404, Some(5)));
}

#[actix_web::test]
async fn batch_partial_failures() {
    let s = TestServer::new();
    let app = s.app().await;
    let dup = uuid4();
    let ev = h2o_event("//x/workspaces/w1/a");
    let req = json!({"requests": [
        {"eventId": uuid4(), "event": ev}, {"eventId": "not-a-uuid", "event": ev},
        {"eventId": dup, "event": ev}, {"eventId": dup, "event": ev}, {"eventId": uuid4()}
    ]});
    let (st, body) = call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &req.to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    assert_eq!(body["failedRequests"]["1"]["code"], json!(3));
    assert_eq!(body["failedRequests"]["3"]["code"], json!(6));
    assert_eq!(body["failedRequests"]["4"]["message"], json!("event is required"));
    let many: Vec<_> = (0..1001).map(|_| json!({"eventId": uuid4(), "event": ev})).collect();
    let (st, _) =
        call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &json!({"requests": many}).to_string()).await;
    assert_eq!(st, 400);
}

#[actix_web::test]
async fn scopes_and_workspace_limits() {
    let s = TestServer::new();
    let app = s.app().await;
    let ingest = s.key(&["ingest"], &[]);
    let w1_search = s.key(&["search"], &["workspaces/w1"]);
    let w1_ingest = s.key(&["ingest"], &["workspaces/w1"]);
    for (res, key) in [("//x/workspaces/w1/a", &ingest), ("//x/workspaces/w2/a", &ingest)] {
        let (st, _) =
            call(&app, "POST", &format!("/v1/events?eventId={}", uuid4()), Some(key), &h2o_event(res).to_string())
                .await;
        assert_eq!(st, 200);
    }
    let (st, body) = call(&app, "POST", "/v1/events:search", Some(&ingest), "{}").await;
    assert_eq!((st, body["message"].as_str()), (403, Some("permission denied")));
    let (st, _) =
        call(&app, "POST", &format!("/v1/events?eventId={}", uuid4()), Some(&w1_search), &h2o_event("x").to_string())
            .await;
    assert_eq!(st, 403);
    let (st, _) = call(
        &app,
        "POST",
        &format!("/v1/events?eventId={}", uuid4()),
        Some(&w1_ingest),
        &h2o_event("//x/workspaces/w2/a").to_string(),
    )
    .await;
    assert_eq!(st, 403);
    let (_, all) = call(&app, "POST", "/v1/events:search", Some(&w1_search), "{}").await;
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert!(events.iter().all(|e| e["workspace"] == json!("workspaces/w1")));
    let req = json!({"filter": {"workspaceExact": "workspaces/w2"}});
    let (st, other) = call(&app, "POST", "/v1/events:search", Some(&w1_search), &req.to_string()).await;
    assert_eq!((st, other["events"].as_array().unwrap().len()), (200, 0));
    let (st, body) = call(&app, "POST", "/v1/events:search", Some("tk_bogus"), "{}").await;
    assert_eq!((st, body["code"].as_i64()), (401, Some(16)));
    let (st, _) = call(&app, "POST", "/v1/events:search", None, "{}").await;
    assert_eq!(st, 401);
}

#[actix_web::test]
async fn oidc_token_flow() {
    let s = TestServer::new();
    let app = s.app().await;
    let (st, doc) = call(&app, "GET", "/.well-known/openid-configuration", None, "").await;
    assert_eq!(st, 200);
    assert!(doc["token_endpoint"].as_str().unwrap().ends_with("/oauth/token"));
    let req = actix_web::test::TestRequest::post()
        .uri("/oauth/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(format!("grant_type=refresh_token&client_id=x&refresh_token={}", s.admin))
        .to_request();
    let body: serde_json::Value = actix_web::test::call_and_read_body_json(&app, req).await;
    let token = body["access_token"].as_str().unwrap().to_string();
    assert!(body["expires_in"].is_number() && body.get("refresh_token").is_none());
    let (st, _) = call(&app, "POST", "/v1/events:search", Some(&token), "{}").await;
    assert_eq!(st, 200);
    let (_, services) = call(&app, "GET", "/.ai.h2o.cloud.discovery/v1/services", None, "").await;
    assert!(services.get("nextPageToken").is_none());
}
