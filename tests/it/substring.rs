//! The substring index: Pangea searches answered through it equal a plain scan, on randomised
//! data (both dialects, non-ASCII, JSON-escaped and control characters, `new`/`old` objects,
//! purged rows) and randomised queries, also after a restart and after indexing a whole log from
//! scratch (a database migrated from before the index).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trailkeep::search::pangea_query;
use trailkeep::store::aggregate::{AggRequest, aggregate};
use trailkeep::store::search::{PangeaQuery, pangea_search_scan, pangea_search_with_stats};

use crate::common::{TestApp, TestServer, call, pangea_search as http_search, uuid4};

const SEGMENT: i64 = 4096;
const SEC: i64 = 1_000_000;

/// xorshift64*: deterministic test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Pieces of generated texts: few enough that trigrams repeat across events and fields (so the
/// index yields candidates the exact check must reject), with quotes, backslashes, control
/// characters, non-ASCII letters, combining marks and characters outside the BMP.
const PIECES: &[&str] = &[
    "ab", "ba", "abc", "cab", "x", "y-", "-z", " ", "  ", "\"", "\\", "\\\"", "\n", "\t", "\u{1}", "\u{7f}", "é",
    "e\u{301}", "日本", "本語", "😀", "ß", "::", "{", "}", "0", "12", "3.4", "ÅÄÖ", "ok", "ko", "%_", "*", "?", "[",
    "]",
];

fn text(r: &mut Rng, max_pieces: usize) -> String {
    (0..1 + r.below(max_pieces)).map(|_| *r.pick(PIECES)).collect()
}

/// Texts that went into the log, per Pangea field name, to draw query terms from.
#[derive(Default)]
struct Samples(Vec<(&'static str, String)>);

impl Samples {
    fn add(&mut self, field: &'static str, v: &str) {
        if !v.is_empty() && self.0.len() < 20_000 {
            self.0.push((field, v.to_string()));
        }
    }
}

fn pangea_event(r: &mut Rng, ws: &str, samples: &mut Samples) -> Value {
    let mut ev = serde_json::Map::new();
    // At least three characters, so that every event has trigrams.
    let message = format!("m {}", text(r, 6));
    samples.add("message", &message);
    ev.insert("message".into(), json!(message));
    for (field, max) in [("actor", 5), ("action", 3), ("target", 6), ("source", 3), ("status", 3)] {
        if r.below(4) > 0 {
            let v = text(r, max);
            samples.add(field, &v);
            ev.insert(field.into(), json!(v));
        }
    }
    for field in ["new", "old"] {
        match r.below(4) {
            0 => {}
            1 => {
                let v = text(r, 4);
                samples.add(field, &v);
                ev.insert(field.into(), json!(v));
            }
            // Objects are stored as their canonical JSON text (escapes and all).
            _ => {
                let obj = json!({"k": text(r, 3), "n": r.below(1000), "b": r.below(2) == 1, "z": null, text(r, 2): text(r, 2)});
                samples.add(field, &trailkeep::event::canonical::to_canonical_string(&obj));
                ev.insert(field.into(), obj);
            }
        }
    }
    if r.below(3) > 0 {
        let ts =
            format!("2025-0{}-1{}T0{}:3{}:00.{}Z", 1 + r.below(9), r.below(10), r.below(10), r.below(6), r.below(1000));
        samples.add("timestamp", &ts);
        ev.insert("timestamp".into(), json!(ts));
    }
    if !ws.is_empty() {
        ev.insert("tenant_id".into(), json!(ws));
    }
    json!({"event": ev})
}

fn h2o_request(r: &mut Rng, ws: &str, samples: &mut Samples) -> Value {
    let principal = format!("users/{}", text(r, 4));
    let action = format!("actions/{}", text(r, 2));
    let resource = format!("//svc/{}", text(r, 5));
    let message = text(r, 6);
    for (f, v) in [("actor", &principal), ("action", &action), ("target", &resource), ("message", &message)] {
        samples.add(f, v);
    }
    let mut e = json!({
        "eventTime": "2025-07-02T10:00:00.123456Z", "eventSource": "svc", "action": action, "readOnly": false,
        "principal": principal, "sourceIpAddress": format!("203.0.113.{}", r.below(255)), "resource": resource,
        "metadata": {"message": message, "other": text(r, 3)}, "status": {"code": r.below(3), "message": ""},
    });
    if !ws.is_empty() {
        e["workspaceOverride"] = json!(ws);
    }
    json!({"eventId": uuid4(), "event": e})
}

/// Ingests `n` random events in requests of up to 500, alternating dialects.
async fn ingest(app: &impl TestApp, key: &str, r: &mut Rng, n: usize, samples: &mut Samples) {
    let workspaces = ["", "workspaces/a", "workspaces/b", "workspaces/old"];
    let mut done = 0;
    let mut pangea = true;
    while done < n {
        let k = (n - done).min(1 + r.below(500));
        let ws: Vec<&str> = (0..k).map(|_| *r.pick(&workspaces)).collect();
        let (path, body) = if pangea {
            let events: Vec<Value> = ws.iter().map(|w| pangea_event(r, w, samples)).collect();
            ("/pangea/v2/log", json!({"events": events}))
        } else {
            let requests: Vec<Value> = ws.iter().map(|w| h2o_request(r, w, samples)).collect();
            ("/v1/events:batchCreate", json!({"requests": requests}))
        };
        let (st, body) = call(app, "POST", path, Some(key), &body.to_string()).await;
        assert_eq!(st, 200, "{path}: {body}");
        done += k;
        pangea = !pangea;
    }
}

fn db_value(dir: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Waits until the substring index covers every complete segment of the log.
fn wait_indexed(dir: &std::path::Path) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let events = db_value(dir, "SELECT COUNT(*) FROM events");
        let want = (events / SEGMENT) * SEGMENT - 1;
        let indexed = db_value(dir, "SELECT indexed_to FROM ngram_state");
        if indexed >= want {
            return indexed;
        }
        assert!(Instant::now() < deadline, "substring index stuck at {indexed} of {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The stored segments hold postings of every event that is not purged (all have texts of three
/// or more characters) and of none that is.
fn assert_no_purged_postings(dir: &std::path::Path) {
    let conn = trailkeep::store::open_side_rw(dir).unwrap();
    let indexed: i64 = conn.query_row("SELECT indexed_to FROM ngram_state", [], |r| r.get(0)).unwrap();
    let size = trailkeep::store::ngram::cluster_state(&conn).unwrap().group_segments;
    let mut purged_seen = 0;
    for seg in 0..=(indexed >> 12) {
        let mut all = trailkeep::search::ngram::Bits::empty();
        let ids: Vec<i64> = (0..256).map(|p| trailkeep::store::ngram::row_id(seg, p)).collect();
        for (_, data) in trailkeep::store::ngram::segment_rows(&conn, size, &ids).unwrap() {
            all.or(&trailkeep::search::ngram::part_events(&data).unwrap());
        }
        let mut stmt = conn.prepare("SELECT seq, purged_at IS NOT NULL FROM events WHERE seq >> 12 = ?1").unwrap();
        for row in stmt.query_map([seg], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))).unwrap() {
            let (seq, purged) = row.unwrap();
            assert_eq!(all.contains((seq & 4095) as usize), !purged, "seq {seq}, purged {purged}");
            purged_seen += usize::from(purged);
        }
    }
    assert!(purged_seen > 1000, "{purged_seen}");
}

fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A piece of `s` of 1–9 characters.
fn piece(r: &mut Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let len = (1 + r.below(9)).min(chars.len());
    let start = r.below(chars.len() - len + 1);
    chars[start..start + len].iter().collect()
}

fn term(r: &mut Rng, samples: &Samples) -> String {
    let (field, sample) = r.pick(&samples.0);
    match r.below(8) {
        0 => format!("{field}:{}", quoted(&piece(r, sample))),
        1 => format!("{field}={}", quoted(sample)),
        2 => format!("{}:{}", r.pick(&["actor", "message", "target", "new", "status"]), quoted(&piece(r, sample))),
        3 => quoted(&text(r, 3)),
        4 => format!("-{}", quoted(&piece(r, sample))),
        _ => quoted(&piece(r, sample)),
    }
}

fn query(r: &mut Rng, samples: &Samples) -> String {
    match r.below(6) {
        0 => format!("{} {}", term(r, samples), term(r, samples)),
        1 => format!("{} OR {}", term(r, samples), term(r, samples)),
        2 => format!("({} OR {}) {}", term(r, samples), term(r, samples), term(r, samples)),
        _ => term(r, samples),
    }
}

/// Compares indexed and plain answers for `rounds` random queries; returns the matches compared,
/// how many queries the index could narrow and the groups of segments they evaluated.
fn compare(
    state: &trailkeep::http::state::AppState,
    r: &mut Rng,
    samples: &Samples,
    rounds: usize,
) -> (usize, usize, u64) {
    let conn = state.pool.get().unwrap();
    let (mut matched, mut narrowed, mut groups) = (0, 0, 0);
    for round in 0..rounds {
        let text = query(r, samples);
        let expr = pangea_query::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let order_by = if round % 5 == 0 { "actor" } else { "received_at" };
        let q = PangeaQuery {
            expr,
            start_us: (round % 7 == 0).then_some(0),
            end_us: (round % 11 == 0).then_some(i64::MAX / 2),
            ascending: round % 3 == 0,
            order_by: order_by.into(),
            max_results: if round % 4 == 0 { 1 + r.below(50) } else { 10_000 },
            after_seq: (round % 13 == 0).then(|| r.below(20_000) as i64),
            ..Default::default()
        };
        let (indexed, stats) = pangea_search_with_stats(&conn, &q).unwrap();
        groups += stats.map_or(0, |s| s.groups);
        let plain = pangea_search_scan(&conn, &q).unwrap();
        assert_eq!(indexed, plain, "round {round}: {text:?} {q:?}");
        matched += plain.len();
        // The aggregation of the same query (through the substring index where the query has a
        // substring term) counts exactly the events a full scan finds, in its timeline too; also
        // with a key limited to one workspace.
        let agg_q = PangeaQuery {
            order_by: "received_at".into(),
            ascending: false,
            max_results: 1_000_000,
            after_seq: None,
            allowed_workspaces: (round % 4 == 1).then(|| vec!["workspaces/a".to_string()]),
            ..q.clone()
        };
        let all = pangea_search_scan(&conn, &agg_q).unwrap();
        let request = AggRequest {
            query: agg_q,
            now_us: trailkeep::time::now_micros(),
            max_buckets: 60,
            top: 5,
            row_budget: u64::MAX,
            time_budget: Duration::MAX,
        };
        let a = aggregate(&conn, &request).unwrap();
        assert!(a.complete, "round {round}: {text:?}");
        assert_eq!(a.total, all.len() as u64, "round {round}: {text:?} {:?}", request.query);
        assert_eq!(a.buckets.iter().flatten().sum::<u64>(), a.total, "round {round}: {text:?}");
        if trailkeep::search::ngram::need(q.expr.as_ref().unwrap(), &|_| true).is_some() {
            narrowed += 1;
        }
    }
    (matched, narrowed, groups)
}

#[actix_web::test]
async fn indexed_search_equals_a_scan() {
    let seed = 0x5eed_0f5a_b57a_1e00_u64;
    let mut r = Rng(seed);
    let s = TestServer::with_config(|c| {
        c.retention.workspaces.insert("workspaces/old".into(), SEC);
    });
    let app = s.app().await;
    let mut samples = Samples::default();
    ingest(&app, &s.admin, &mut r, 3 * SEGMENT as usize + 500, &mut samples).await;
    let indexed = wait_indexed(s.dir.path());
    assert!(indexed >= 3 * SEGMENT - 1, "{indexed}");
    // Purge one workspace's events (spread over every segment, stored or not).
    std::thread::sleep(Duration::from_millis(1100));
    let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&s.admin), "").await;
    assert_eq!(st, 200, "{report}");
    assert!(report["purged"].as_u64().unwrap() > 2000, "{report}");
    ingest(&app, &s.admin, &mut r, SEGMENT as usize, &mut samples).await;
    wait_indexed(s.dir.path());
    assert_no_purged_postings(s.dir.path());
    let (matched, narrowed, _) = compare(&s.state, &mut r, &samples, 200);
    assert!(matched > 20_000 && narrowed > 100, "seed {seed:#x}: {matched} matches, {narrowed} narrowed");

    // A term that spans two fields matches nowhere, even where the index holds all its trigrams.
    let body = json!({"events": [
        {"event": {"message": "m", "actor": "qwer-", "target": "-erty"}},
        {"event": {"message": "m", "actor": "qwe", "action": "rty"}},
        {"event": {"message": "xqwertyx"}},
    ]});
    let (st, _) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &body.to_string()).await;
    assert_eq!(st, 200);
    let found = http_search(&app, &s.admin, json!({"query": "qwerty"})).await;
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["events"][0]["envelope"]["event"]["message"], "xqwertyx");

    // After a restart (the segment in progress was only in memory) and after indexing the whole
    // log from scratch, as a database migrated from before the index is; with groups of a few
    // segments (built at the start from the stored segments, then as segments complete), a purge
    // after the groups were built, and a damaged group row.
    drop(app);
    let dir = s.stop().await;
    for (from_scratch, group_segments) in [(false, 2), (true, 3)] {
        let conn = rusqlite::Connection::open(dir.path().join("trailkeep.db")).unwrap();
        if from_scratch {
            conn.execute_batch(
                "DELETE FROM ngram_parts; DELETE FROM ngram_clustered; UPDATE ngram_cluster_state SET moved = 0;
                 UPDATE ngram_state SET indexed_to = -1;",
            )
            .unwrap();
        } else {
            // A database from before migration 0013: the migration adds the groups' tables, and
            // the server builds the groups of the indexed segments when it starts.
            conn.execute_batch("DROP TABLE ngram_groups; DROP TABLE ngram_group_state; PRAGMA user_version = 12;")
                .unwrap();
            drop(trailkeep::store::open_rw(dir.path()).unwrap());
            let state = trailkeep::store::ngram::group_state(&conn).unwrap();
            assert_eq!((state.group_segments, state.grouped_to), (trailkeep::store::ngram::GROUP_SEGMENTS, -1));
        }
        trailkeep::store::ngram::set_group_segments(&conn, group_segments).unwrap();
        drop(conn);
        let mut config = trailkeep::config::Config::for_tests(dir.path());
        config.retention.workspaces.insert("workspaces/old".into(), SEC);
        let opened = trailkeep::server::open(config).unwrap();
        let app = actix_web::test::init_service(
            actix_web::App::new().app_data(opened.state.clone()).configure(trailkeep::http::configure),
        )
        .await;
        let conn = trailkeep::store::open_rw(dir.path()).unwrap();
        let scopes = trailkeep::keys::Scopes::parse_list(&["admin"]).unwrap();
        let key = trailkeep::keys::create_key(&conn, "t", scopes, &[]).unwrap().secret;
        drop(conn);
        ingest(&app, &key, &mut r, 700, &mut samples).await;
        wait_indexed(dir.path());
        let grouped = wait_grouped(dir.path());
        assert!(grouped >= 0, "{grouped}");
        // The complete groups' rows are in the clustered layout (and the purge below strips them
        // there).
        let moved = wait_clustered(dir.path());
        assert!(moved >= 256, "{moved}");
        assert!(db_value(dir.path(), "SELECT COUNT(*) FROM ngram_clustered") >= 256 * group_segments);
        assert_no_purged_postings(dir.path());
        assert_groups_cover_segments(dir.path());
        let (matched, _, groups) = compare(&opened.state, &mut r, &samples, 40);
        assert!(matched > 2_000 && groups >= 10, "{matched} matches, {groups} groups");
        // Purged after its group was built: the group may list segments for trigrams they no
        // longer hold (a superset), never miss one.
        std::thread::sleep(Duration::from_millis(1100));
        let (st, report) = call(&app, "POST", "/api/v1/retention/purge", Some(&key), "").await;
        assert_eq!(st, 200, "{report}");
        assert!(report["purged"].as_u64().unwrap() > 50, "{report}");
        assert_no_purged_postings(dir.path());
        assert_groups_cover_segments(dir.path());
        let (matched, _, _) = compare(&opened.state, &mut r, &samples, 40);
        assert!(matched > 2_000, "{matched}");
        if !from_scratch {
            // Groups that cover fewer segments than are indexed (the indexer behind the writer):
            // the group of the newest segment built over the one before it only, which the search
            // must not take as ruling the newest out.
            let last_seg = db_value(dir.path(), "SELECT indexed_to FROM ngram_state") / SEGMENT;
            assert!(last_seg % 2 == 1, "{last_seg}");
            let conn = trailkeep::store::open_side_rw(dir.path()).unwrap();
            let rows = trailkeep::store::ngram::build_group(&conn, last_seg / 2, 2, last_seg - 1).unwrap();
            trailkeep::store::ngram::store_group(&conn, last_seg / 2, &rows).unwrap();
            trailkeep::store::ngram::set_grouped_to(&conn, last_seg - 1).unwrap();
            drop(conn);
            let (matched, _, groups) = compare(&opened.state, &mut r, &samples, 40);
            assert!(matched > 2_000 && groups >= 10, "{matched} matches, {groups} groups");
        } else {
            // A damaged group row reads as "every segment of the group".
            let conn = trailkeep::store::open_side_rw(dir.path()).unwrap();
            let n = conn.execute("UPDATE ngram_groups SET data = x'ff80'", []).unwrap();
            assert!(n > 100, "{n}");
            drop(conn);
            let (matched, _, groups) = compare(&opened.state, &mut r, &samples, 40);
            assert!(matched > 2_000 && groups >= 10, "{matched} matches, {groups} groups");
        }
        opened.state.writer.stop().await;
        drop(app);
        drop(opened.state);
        opened.writer_thread.join().unwrap();
    }
}

/// Waits until the groups cover every indexed segment (groups of fewer than 16 segments are built
/// again with each segment); returns `grouped_to`.
fn wait_grouped(dir: &std::path::Path) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let indexed = db_value(dir, "SELECT indexed_to FROM ngram_state");
        let size = db_value(dir, "SELECT group_segments FROM ngram_group_state");
        assert_eq!(trailkeep::store::ngram::group_step(size), 1);
        let want = (indexed + 1) / SEGMENT - 1;
        let grouped = db_value(dir, "SELECT grouped_to FROM ngram_group_state");
        if grouped >= want {
            return grouped;
        }
        assert!(Instant::now() < deadline, "groups stuck at {grouped} of {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every complete group's rows are in the clustered layout; returns the units moved.
fn wait_clustered(dir: &std::path::Path) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let conn = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
        let c = trailkeep::store::ngram::cluster_state(&conn).unwrap();
        let want = c.complete_units(db_value(dir, "SELECT indexed_to FROM ngram_state"));
        if c.moved >= want {
            assert_eq!(c.moved, want);
            return c.moved;
        }
        assert!(Instant::now() < deadline, "clustered layout stuck at {} of {want}", c.moved);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every trigram of a stored segment's rows is listed for that segment in its group's rows (those
/// of the group in progress too).
fn assert_groups_cover_segments(dir: &std::path::Path) {
    use trailkeep::search::ngram::{find_in_part, part_keys};
    let conn = trailkeep::store::open_side_rw(dir).unwrap();
    let size = db_value(dir, "SELECT group_segments FROM ngram_group_state");
    let grouped = db_value(dir, "SELECT grouped_to FROM ngram_group_state");
    let mut checked = 0;
    let ids: Vec<i64> =
        (0..=grouped).flat_map(|seg| (0..256).map(move |p| trailkeep::store::ngram::row_id(seg, p))).collect();
    for (id, data) in trailkeep::store::ngram::segment_rows(&conn, size, &ids).unwrap() {
        let (seg, part) = (id >> 8, id & 255);
        let group: Option<Vec<u8>> = conn
            .query_row("SELECT data FROM ngram_groups WHERE id = ?1", [((seg / size) << 8) | part], |r| r.get(0))
            .ok();
        let group = group.unwrap_or_else(|| panic!("segment {seg}: no group row for part {part}"));
        for k in part_keys(&data).unwrap() {
            let members = find_in_part(&group, k).unwrap_or_else(|| panic!("segment {seg}: key {k} not in its group"));
            assert!(members.contains((seg % size) as usize), "segment {seg}: key {k}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}
