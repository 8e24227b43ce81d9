//! `GET /api/v1/aggregate`: the timeline and top values count what a search finds, with the
//! search's key limits, from rows and from segment summaries (also after a purge).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestApp, TestServer, call, h2o_event, pangea_search, uuid4};

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("q", s)]).unwrap()[2..].to_string()
}

async fn aggregate(app: &impl TestApp, key: &str, query: &str, extra: &str) -> Value {
    let (st, body) = call(app, "GET", &format!("/api/v1/aggregate?query={}{extra}", enc(query)), Some(key), "").await;
    assert_eq!(st, 200, "{query}: {body}");
    body
}

async fn count(app: &impl TestApp, key: &str, query: &str) -> u64 {
    let r = pangea_search(
        app,
        key,
        json!({"query": query, "start": "1970-01-01T00:00:00Z", "limit": 1, "max_results": 10000}),
    )
    .await;
    r["count"].as_u64().unwrap()
}

fn bucket_sum(a: &Value) -> u64 {
    a["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| ["success", "failure", "other"].iter().map(|k| b[k].as_u64().unwrap()).sum::<u64>())
        .sum()
}

/// Every value listed for `field` has as many events as a search for it finds.
async fn check_top(app: &impl TestApp, key: &str, query: &str, a: &Value, field: &str) {
    let values = a["top"][field]["values"].as_array().unwrap();
    for v in values {
        let value = v["value"].as_str().unwrap();
        let q = format!(
            "{field}=\"{}\"{}",
            value.replace('"', "\\\""),
            if query.is_empty() { String::new() } else { format!(" AND ({query})") }
        );
        assert_eq!(v["count"].as_u64().unwrap(), count(app, key, &q).await, "{field}={value} in {query:?}");
    }
}

#[actix_web::test]
async fn counts_equal_the_search_counts_and_follow_key_limits() {
    let s = TestServer::new();
    let app = s.app().await;
    let tag = &uuid4()[..8];
    let events: Vec<Value> = (0..90)
        .map(|i| {
            let (actor, action) = (["alice", "bob", "carol", ""][i % 4], ["login", "logout", "update"][i % 3]);
            let (status, tenant) = (["success", "failure", "200", "weird"][i % 4], ["w1", "w2", "w3"][i % 3]);
            json!({"event": {
                "message": format!("{tag} message {i}"), "actor": actor, "action": action, "status": status,
                "target": format!("doc-{}", i % 7), "tenant_id": tenant,
            }})
        })
        .collect();
    let (st, body) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &json!({"events": events}).to_string()).await;
    assert_eq!(st, 200, "{body}");
    for i in 0..5 {
        let (st, body) = call(
            &app,
            "POST",
            &format!("/v1/events?eventId={}", uuid4()),
            Some(&s.admin),
            &h2o_event(&format!("//svc/workspaces/w1/doc-{i}")).to_string(),
        )
        .await;
        assert_eq!(st, 200, "{body}");
    }
    for query in [
        "",
        &format!("message:{tag}")[..],
        "actor:alice",
        "status:failure",
        "tenant_id=w2 OR actor:bob",
        "-action:login",
        tag,
    ] {
        let a = aggregate(&app, &s.admin, query, "").await;
        let n = count(&app, &s.admin, query).await;
        assert_eq!(a["total"], n, "{query:?}: {a}");
        assert_eq!(bucket_sum(&a), n, "{query:?}");
        assert_eq!(a["complete"], true);
        for field in ["actor", "action", "status", "target", "tenant_id"] {
            check_top(&app, &s.admin, query, &a, field).await;
        }
    }
    let a = aggregate(&app, &s.admin, &format!("message:{tag}"), "").await;
    let actors: Vec<&str> =
        a["top"]["actor"]["values"].as_array().unwrap().iter().map(|v| v["value"].as_str().unwrap()).collect();
    assert_eq!(actors, ["alice", "bob", "carol"], "empty actors are no value");
    let outcome = |k: &str| a["buckets"].as_array().unwrap().iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((outcome("success"), outcome("failure"), outcome("other")), (45, 23, 22));

    // A window in the past: nothing; parameters shape the answer.
    let a =
        aggregate(&app, &s.admin, "", "&start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z&buckets=24&top=1").await;
    assert_eq!((a["total"].as_u64(), a["bucket_seconds"].as_u64()), (Some(0), Some(7200)));
    assert_eq!(a["buckets"].as_array().unwrap().len(), 13);
    let a = aggregate(&app, &s.admin, "", "&start=1h&top=1").await;
    assert_eq!(a["top"]["actor"]["values"].as_array().unwrap().len(), 1);
    assert!(a["buckets"].as_array().unwrap().len() <= 61);

    // A key limited to w1 counts w1 only, whatever the query says.
    let limited = s.key(&["search"], &["w1"]);
    for query in ["", "tenant_id=w2", "actor:alice"] {
        let a = aggregate(&app, &limited, query, "").await;
        assert_eq!(a["total"], count(&app, &limited, query).await, "{query}");
        let tenants: Vec<&str> =
            a["top"]["tenant_id"]["values"].as_array().unwrap().iter().map(|v| v["value"].as_str().unwrap()).collect();
        assert!(tenants.iter().all(|t| *t == "w1"), "{tenants:?}");
    }
    assert_eq!(aggregate(&app, &limited, "tenant_id=w2", "").await["total"], 0);

    // Errors.
    for (path, key, status, code) in [
        ("/api/v1/aggregate?query=actor%3A%22open", Some(&s.admin), 400, "invalid_query"),
        ("/api/v1/aggregate?start=yesterday", Some(&s.admin), 400, "invalid_timestamp"),
        ("/api/v1/aggregate?buckets=0", Some(&s.admin), 400, "invalid_parameter"),
        ("/api/v1/aggregate?top=51", Some(&s.admin), 400, "invalid_parameter"),
        ("/api/v1/aggregate", None, 401, "invalid_credentials"),
        ("/api/v1/aggregate", Some(&s.key(&["ingest"], &[])), 403, "forbidden"),
    ] {
        let (st, body) = call(&app, "GET", path, key.map(String::as_str), "").await;
        assert_eq!((st, body["code"].as_str().unwrap_or("")), (status, code), "{path}: {body}");
    }
    let (st, _) = call(&app, "POST", "/api/v1/aggregate", Some(&s.admin), "{}").await;
    assert_eq!(st, 405);
}

fn db_count(dir: &std::path::Path, sql: &str) -> u64 {
    let conn = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
    conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

/// Waits until the summaries of segments up to `seg` are stored.
fn wait_built(dir: &std::path::Path, seg: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db_count(dir, "SELECT built_to + 1 FROM agg_state") < seg + 1 {
        assert!(Instant::now() < deadline, "segment {seg} was not summarised");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Over 12,000 events (three complete segments and a partial one): the summaries are built and
/// stored, counts from them equal what the rows say; after a purge, the rebuilt summaries count
/// no purged event.
#[actix_web::test]
async fn summaries_count_like_rows_and_follow_purges() {
    let s = TestServer::with_config(|c| {
        c.retention.workspaces.insert("workspaces/old".into(), 1_000_000);
    });
    let app = s.app().await;
    for batch in 0..13 {
        let requests: Vec<Value> = (0..1000)
            .map(|i| {
                let mut e = h2o_event(&format!("//svc/things/{}", i % 300));
                e["workspaceOverride"] = json!(if (batch + i) % 3 == 0 { "workspaces/old" } else { "workspaces/keep" });
                e["principal"] = json!(format!("users/u{}", i % 11));
                if i % 10 == 0 {
                    e["status"] = json!({"code": 7, "message": "denied"});
                }
                json!({"event": e, "eventId": uuid4()})
            })
            .collect();
        let (st, body) =
            call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &json!({"requests": requests}).to_string())
                .await;
        assert_eq!(st, 200, "{body}");
    }
    wait_built(s.dir.path(), 2);
    let dir = s.dir.path();
    let check = |a: &Value, purged: bool| {
        let live = "FROM events e WHERE purged_at IS NULL";
        assert_eq!(a["total"].as_u64().unwrap(), db_count(dir, &format!("SELECT count(*) {live}")));
        assert_eq!(bucket_sum(a), a["total"].as_u64().unwrap());
        let failures: u64 = a["buckets"].as_array().unwrap().iter().map(|b| b["failure"].as_u64().unwrap()).sum();
        assert_eq!(failures, db_count(dir, &format!("SELECT count(*) {live} AND status_code = 7")));
        for v in a["top"]["actor"]["values"].as_array().unwrap() {
            let sql = format!(
                "SELECT count(*) {live} AND actor = (SELECT id FROM strings WHERE value = '{}')",
                v["value"].as_str().unwrap()
            );
            assert_eq!(v["count"].as_u64().unwrap(), db_count(dir, &sql), "{v}");
        }
        for v in a["top"]["tenant_id"]["values"].as_array().unwrap() {
            let sql = format!(
                "SELECT count(*) {live} AND workspace = (SELECT id FROM strings WHERE value = '{}')",
                v["value"].as_str().unwrap()
            );
            assert_eq!(v["count"].as_u64().unwrap(), db_count(dir, &sql), "{v}");
            // After the purge, only its purge events are left in the old workspace.
            assert!(!purged || v["value"] != "workspaces/old" || v["count"].as_u64().unwrap() < 10, "{v}");
        }
        assert_eq!(a["top"]["actor"]["complete"], true);
    };
    let a = aggregate(&app, &s.admin, "", "").await;
    check(&a, false);
    assert!(db_count(dir, "SELECT count(*) FROM agg_all") >= 3);
    let limited = s.key(&["search"], &["workspaces/keep"]);
    let l = aggregate(&app, &limited, "", "").await;
    assert_eq!(
        l["total"].as_u64().unwrap(),
        db_count(
            dir,
            "SELECT count(*) FROM events WHERE workspace = (SELECT id FROM strings WHERE value = 'workspaces/keep')"
        )
    );

    std::thread::sleep(Duration::from_millis(1100));
    let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{report}");
    assert!(report["purged"].as_u64().unwrap() > 4000, "{report}");
    check(&aggregate(&app, &s.admin, "", "").await, true);
    let after = aggregate(&app, &limited, "", "").await;
    assert_eq!(after["total"], l["total"], "the kept workspace is untouched");
}
