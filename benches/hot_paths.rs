//! Criterion benches of the per-event and per-request hot paths (no timed assertions anywhere):
//! canonical JSON + SHA-256 of an envelope, strict parsing of a 1,000-event body, Merkle proofs
//! (in-buffer path, cold-tree path, consistency) and query building (Pangea query language → SQL,
//! H2O filter → SQL executed against an empty database, i.e. build + statement cache + plan).
//!
//! Run: `cargo bench --bench hot_paths` (add `-- --quick` for a short pass).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use sha2::Digest;

use trailkeep::event::canonical::{parse_strict, to_canonical_string};
use trailkeep::ledger::merkle::{self, CompactTree, Hash};
use trailkeep::search::pangea_query::{self, Columns};

fn envelope(i: usize) -> Value {
    json!({
        "event": {
            "action": "actions/project/UPDATE",
            "actor": format!("users/kalo.mine{i}"),
            "event_id": "6f1c2a9e-4b7d-4c1e-9a3f-2d5e8b7c6a10",
            "event_source": "svc-rutashi.api",
            "message": "pota vekalo shine ruel dazu orfi goheja kolymo nype satiwa",
            "metadata": {"message": "pota vekalo shine ruel dazu orfi goheja kolymo nype satiwa",
                          "region": "eu-west-1", "request_id": "9f2c4e1a7b3d5f60a1b2c3d4e5f60718", "ticket": "OPS-4242"},
            "read_only": false,
            "request_parameters": {},
            "source": "203.0.113.7",
            "status": "0",
            "status_message": "",
            "target": "//svc-rutashi.api/workspaces/0a1b2c3d4e5f/projects/kalo-004242",
            "tenant_id": "workspaces/0a1b2c3d4e5f",
            "timestamp": "2025-09-01T10:00:00.123456Z",
            "type": "TYPE_API",
            "user_agent": "python-requests/2.1.3 (linux)"
        },
        "received_at": "2025-09-01T10:00:01.000001Z"
    })
}

fn hash_of(i: u64) -> Hash {
    sha2::Sha256::digest(i.to_le_bytes()).into()
}

fn canonical_and_hash(c: &mut Criterion) {
    let env = envelope(1);
    let size = to_canonical_string(&env).len();
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("canonical_json+sha256 ({size} B envelope)"), |b| {
        b.iter(|| {
            let s = to_canonical_string(black_box(&env));
            let h: Hash = sha2::Sha256::digest(s.as_bytes()).into();
            black_box(h)
        })
    });
    g.bench_function("canonical_json only", |b| b.iter(|| black_box(to_canonical_string(black_box(&env)))));
    g.finish();

    let items: Vec<Value> = (0..1000).map(|i| json!({"event": envelope(i)["event"].clone()})).collect();
    let body = json!({"events": items}).to_string();
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1000));
    g.bench_function(format!("parse_strict 1000-event body ({} KB)", body.len() / 1024), |b| {
        b.iter(|| black_box(parse_strict(black_box(body.as_bytes()), 64).is_ok()))
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    // A buffer of 1,000 event hashes (in-buffer membership path) and a cold tree of 100,000 buffer roots.
    let buffer: Vec<Hash> = (0..1000).map(hash_of).collect();
    let tree = CompactTree::from_leaves((0..100_000u64).map(hash_of));
    let mut g = c.benchmark_group("proof");
    g.bench_function("buffer root (mth of 1000)", |b| b.iter(|| black_box(merkle::mth(black_box(&buffer)))));
    g.bench_function("in-buffer path (1000 leaves)", |b| b.iter(|| black_box(merkle::path(black_box(617), &buffer))));
    g.bench_function("cold-tree path (100k leaves)", |b| b.iter(|| black_box(tree.path(black_box(61_703), 100_000))));
    g.bench_function("cold-tree root at size", |b| b.iter(|| black_box(tree.root(black_box(99_999)))));
    g.bench_function("consistency 70k→100k", |b| b.iter(|| black_box(tree.consistency(black_box(70_001), 100_000))));
    g.bench_function("encode path", |b| {
        let p = tree.path(61_703, 100_000);
        b.iter(|| black_box(merkle::encode_path(black_box(&p))))
    });
    g.bench_function("push 1000 leaves onto 100k tree", |b| {
        b.iter_batched(
            || CompactTree::from_leaves((0..100_000u64).map(hash_of)),
            |mut t| {
                for h in &buffer {
                    t.push(*h);
                }
                black_box(t.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

struct Cols;

impl Columns for Cols {
    fn text(&self, field: &str) -> String {
        match field {
            "actor" => "NULLIF((SELECT value FROM strings WHERE id = e.actor), '')".into(),
            "message" => "json_extract(e.envelope, '$.event.message')".into(),
            f => format!("e.{f}"),
        }
    }
    fn micros(&self, field: &str) -> String {
        if field == "received_at" { "e.received_at".into() } else { "e.event_time".into() }
    }
    fn bare_fields(&self) -> Vec<String> {
        ["actor", "action", "message", "source", "status", "target"].iter().map(|s| s.to_string()).collect()
    }
}

fn queries(c: &mut Criterion) {
    let mut g = c.benchmark_group("query");
    let q = r#"actor:"users/kalo.mine17" AND (action:DELETE OR status:failure) AND -target:staging AND received_at>2025-09-01T00:00:00Z"#;
    g.bench_function("pangea parse", |b| b.iter(|| black_box(pangea_query::parse(black_box(q)).is_ok())));
    let expr = pangea_query::parse(q).ok().flatten();
    g.bench_function("pangea to_sql", |b| {
        b.iter(|| {
            let mut params = Vec::new();
            let sql = expr.as_ref().map(|e| pangea_query::to_sql(e, &Cols, &mut params));
            black_box((sql, params))
        })
    });
    // H2O: build the SQL and run it on an empty database (statement cache hit after the first).
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = trailkeep::store::open_rw(dir.path()).expect("open");
    let hq = trailkeep::store::search::H2oQuery {
        start_us: 0,
        end_us: i64::MAX,
        exact: vec![(trailkeep::store::search::H2oField::Principal, "users/kalo.mine17".into())],
        regex: vec![(trailkeep::store::search::H2oField::Action, "DELETE$".into())],
        limit: 51,
        ..Default::default()
    };
    g.bench_function("h2o build+run on empty db", |b| {
        b.iter(|| black_box(trailkeep::store::search::h2o_search(&conn, black_box(&hq)).map(|r| r.len())))
    });
    g.finish();
}

criterion_group!(benches, canonical_and_hash, proofs, queries);
criterion_main!(benches);
