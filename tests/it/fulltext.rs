//! Free-text rows are stored in batches by the writer (`fts_state.indexed_to` says how far):
//! a search still sees every event acknowledged before it, a search of the database alone never
//! decides a text term on an event whose text is not indexed yet, and a restart after an unclean
//! stop indexes what was pending.

use serde_json::{Value, json};
use trailkeep::config::Config;
use trailkeep::search::pangea_query;
use trailkeep::store::search::{PangeaQuery, pangea_search};

use crate::common::{self, TestApp, TestServer, call, h2o_event, uuid4};

fn h2o_batch(word: &str, n: usize) -> String {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = h2o_event(&format!("//svc/things/{i}"));
            e["metadata"] = json!({"message": format!("{word} number {i}")});
            json!({"event": e, "eventId": uuid4()})
        })
        .collect();
    json!({"requests": requests}).to_string()
}

async fn text_count(app: &impl TestApp, key: &str, query: &str) -> i64 {
    let result = common::pangea_search(app, key, json!({"query": query, "verbose": false, "limit": 1000})).await;
    result["count"].as_i64().unwrap()
}

fn offline_search(dir: &std::path::Path, query: &str) -> Vec<i64> {
    let conn = trailkeep::store::open_rw(dir).unwrap();
    let q = PangeaQuery {
        expr: pangea_query::parse(query).unwrap(),
        order_by: "received_at".into(),
        max_results: 10_000,
        ..Default::default()
    };
    pangea_search(&conn, &q).unwrap()
}

fn indexed_to(dir: &std::path::Path) -> i64 {
    let conn = trailkeep::store::open_rw(dir).unwrap();
    conn.query_row("SELECT indexed_to FROM fts_state", [], |r| r.get(0)).unwrap()
}

#[actix_web::test]
async fn a_search_sees_every_acknowledged_event_in_small_groups() {
    let s = TestServer::new();
    let app = s.app().await;
    // Single events and small batches, each searched right after it is acknowledged: far fewer
    // than a free-text batch, so their rows are pending until the search asks for them.
    for round in 1..=12 {
        let n = if round % 3 == 0 { 5 } else { 1 };
        let (st, body) = call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &h2o_batch("okapi", n)).await;
        assert_eq!(st, 200, "{body}");
        let expected = (1..=round).map(|r| if r % 3 == 0 { 5 } else { 1 }).sum::<i64>();
        assert_eq!(text_count(&app, &s.admin, "text:okapi").await, expected, "round {round}");
        assert_eq!(text_count(&app, &s.admin, "okapi").await, expected, "bare word, round {round}");
        assert_eq!(text_count(&app, &s.admin, "text:okapi AND -text:number").await, 0);
    }
}

#[actix_web::test]
async fn a_search_of_the_database_alone_sees_only_the_indexed_prefix() {
    let s = TestServer::new();
    let app = s.app().await;
    let (st, body) = call(&app, "POST", "/v1/events:batchCreate", Some(&s.admin), &h2o_batch("quokka", 3)).await;
    assert_eq!(st, 200, "{body}");
    // Without the server's help (no sync), whatever is pending is outside the result, for a
    // negated term too; whichever way the writer's idle flush raced this, the answer is exact
    // for the prefix the index covers.
    let upto = indexed_to(s.dir.path());
    let with = offline_search(s.dir.path(), "text:quokka");
    let without = offline_search(s.dir.path(), "-text:quokka");
    assert!(with.iter().chain(&without).all(|seq| *seq <= upto), "{with:?} {without:?} up to {upto}");
    assert_eq!(with.len() as i64 + without.len() as i64, upto + 1);
    assert!(without.is_empty(), "every stored event mentions quokka: {without:?}");
    // Plain filters that do not touch the index see everything stored.
    assert_eq!(offline_search(s.dir.path(), "action:\"actions/test/things/CREATE\"").len(), 3);
}

#[actix_web::test]
async fn a_restart_indexes_what_an_unclean_stop_left_pending() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::for_tests(dir.path());
        c.self_audit = false;
        c
    };
    let opened = trailkeep::server::open(config()).unwrap();
    let admin = opened.bootstrap_key.clone().unwrap();
    {
        let app = actix_web::test::init_service(
            actix_web::App::new().app_data(opened.state.clone()).configure(trailkeep::http::configure),
        )
        .await;
        for word in ["ibex", "tapir"] {
            let (st, body) = call(&app, "POST", "/v1/events:batchCreate", Some(&admin), &h2o_batch(word, 40)).await;
            assert_eq!(st, 200, "{body}");
        }
        assert_eq!(text_count(&app, &admin, "text:ibex").await, 40);
    }
    opened.state.writer.stop().await;
    drop(opened.state);
    opened.writer_thread.join().unwrap();
    // An unclean stop as the database sees it: the free-text index empty and behind.
    {
        let conn = trailkeep::store::open_rw(dir.path()).unwrap();
        conn.execute_batch(
            "INSERT INTO events_fts(events_fts) VALUES('delete-all'); UPDATE fts_state SET indexed_to = -1;",
        )
        .unwrap();
    }
    assert!(offline_search(dir.path(), "text:tapir").is_empty());

    let opened = trailkeep::server::open(config()).unwrap();
    assert_eq!(indexed_to(dir.path()), 79, "indexed at start");
    assert_eq!(offline_search(dir.path(), "text:tapir").len(), 40);
    assert_eq!(offline_search(dir.path(), "text:ibex OR text:tapir").len(), 80);
    let conn = trailkeep::store::open_rw(dir.path()).unwrap();
    let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    opened.state.writer.stop().await;
}
