//! Pangea query language (spec pangea-api.md §7, design reliability.md Z4).
//!
//! The input is the query text. Properties:
//! * `parse` never panics; errors are non-empty and at most 200 characters (spec §16);
//!   `Ok(None)` only for blank queries; the AST respects the term and nesting limits.
//! * Printing the AST back (every value quoted, every group parenthesised) and re-parsing
//!   gives the same AST, and surrounding whitespace changes nothing.
//! * `to_sql` binds every value: its SQL text holds only column names and fixed keywords and
//!   one `?` per parameter.
//! * On a real schema (`store::migrate`) with a two-workspace fixture, `pangea_search` never
//!   fails (no `SQLITE_ERROR` can become a 5xx), a workspace-limited search returns exactly
//!   the unlimited result restricted to that workspace (nothing leaks across the `OR`s of a
//!   query), and `NOT q` is the exact complement of `q` (no NULL holes).
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use trailkeep::search::pangea_query::{self, Columns, Expr, FIELDS, MAX_DEPTH, MAX_QUERY_BYTES, MAX_TERMS, Op};
use trailkeep::store::search::{PANGEA_ORDER_BY, PangeaQuery, pangea_search};

/// (workspace, actor, action, source, status, target, message, new, event time)
type Row = (&'static str, &'static str, &'static str, Opt, Opt, Opt, &'static str, Opt, &'static str);
type Opt = Option<&'static str>;

const EVENTS: &[Row] = &[
    (
        "w1",
        "alice",
        "login",
        Some("web"),
        Some("success"),
        Some("portal"),
        "Alice logged in",
        None,
        "2024-01-01T10:00:00Z",
    ),
    (
        "w2",
        "bob",
        "delete",
        Some("web"),
        Some("failure"),
        Some("OPS-306"),
        "deleted \"report.pdf\"",
        None,
        "2024-01-02T00:00:00Z",
    ),
    (
        "w1",
        "Jane Doe",
        "update",
        Some("api"),
        None,
        Some("user:42"),
        "changed role",
        Some("admin"),
        "2024-02-01T00:00:00.5Z",
    ),
    ("w2", "' OR 1=1--", "login", None, Some("failure"), None, "weird actor", None, "2024-03-01T00:00:00Z"),
    (
        "w1",
        "ALICE",
        "LOGIN",
        Some("api"),
        Some("success"),
        Some("portal"),
        "",
        Some("{\"k\":\"v\"}"),
        "2024-03-02T00:00:00Z",
    ),
    (
        "w2",
        "carol",
        "and",
        Some("cron"),
        None,
        Some("http://example.com/x"),
        "or and not",
        None,
        "2024-03-03T00:00:00Z",
    ),
    (
        "w1",
        "dave",
        "read",
        Some("api"),
        Some("success"),
        Some("back\\slash"),
        "café naïve 日本語 ok",
        None,
        "2024-03-04T00:00:00Z",
    ),
    (
        "w2",
        "eve",
        "read",
        Some("web"),
        Some("success"),
        Some("portal"),
        "disk full (again)",
        Some("x"),
        "2024-03-05T12:30:00+02:00",
    ),
];

fn fixture() -> (Connection, BTreeSet<i64>, BTreeSet<i64>) {
    let mut c = Connection::open_in_memory().expect("in-memory database");
    trailkeep::store::migrate(&mut c).expect("migrations");
    let intern = |c: &Connection, v: &str| -> i64 {
        c.execute("INSERT OR IGNORE INTO strings(value) VALUES (?1)", [v]).expect("intern");
        c.query_row("SELECT id FROM strings WHERE value = ?1", [v], |r| r.get(0)).expect("interned")
    };
    let (mut all, mut w1) = (BTreeSet::new(), BTreeSet::new());
    for (seq, &(ws, actor, action, source, status, target, message, new, ts)) in EVENTS.iter().enumerate() {
        let seq = seq as i64;
        let event_time = trailkeep::time::parse_rfc3339(ts).expect("fixture timestamp").0;
        let received_at = 1_711_929_600_000_000 + seq * 1_000_000;
        let mut event = serde_json::json!({"actor": actor, "action": action, "message": message, "timestamp": ts});
        for (k, v) in [("source", source), ("status", status), ("target", target), ("new", new)] {
            if let Some(v) = v {
                event[k] = v.into();
            }
        }
        let envelope = trailkeep::event::canonical::to_canonical_string(&serde_json::json!({
            "event": event, "received_at": trailkeep::time::format_micros(received_at),
        }));
        let (w, a, ac) = (intern(&c, ws), intern(&c, actor), intern(&c, action));
        let src = intern(&c, "fuzz");
        c.execute(
            "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                target, source, status, status_code, read_only, type, buffer, hash, envelope)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, 0, 0, 0, ?12, ?13)",
            rusqlite::params![
                seq,
                seq.to_be_bytes().repeat(2),
                received_at,
                event_time,
                w,
                a,
                ac,
                src,
                target,
                source,
                status,
                vec![0u8; 32],
                envelope
            ],
        )
        .expect("insert event");
        let body = [actor, action, message, target.unwrap_or(""), new.unwrap_or("")].join(" ");
        c.execute("INSERT INTO events_fts(rowid, body) VALUES (?1, ?2)", rusqlite::params![seq, body])
            .expect("fts row");
        all.insert(seq);
        if ws == "w1" {
            w1.insert(seq);
        }
    }
    (c, all, w1)
}

thread_local! {
    static DB: (Connection, BTreeSet<i64>, BTreeSet<i64>) = fixture();
}

/// Columns whose SQL is a single identifier, so the generated SQL can be checked word by word.
struct PlainColumns;

impl Columns for PlainColumns {
    fn text(&self, field: &str) -> String {
        format!("t_{field}")
    }
    fn micros(&self, field: &str) -> String {
        format!("us_{field}")
    }
    fn bare_fields(&self) -> Vec<String> {
        vec!["actor".into(), "message".into()]
    }
    fn fulltext(&self) -> Option<String> {
        Some("fts_match(?)".into())
    }
}

const SQL_WORDS: &[&str] = &["NOT", "AND", "OR", "IS", "NULL", "instr", "fts_match", "0", "1"];

fn check_sql(expr: &Expr) {
    let mut params = Vec::new();
    let sql = pangea_query::to_sql(expr, &PlainColumns, &mut params);
    assert_eq!(sql.matches('?').count(), params.len(), "placeholders vs parameters in {sql}");
    for word in sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()) {
        let known = SQL_WORDS.contains(&word)
            || word.strip_prefix("t_").is_some_and(|f| FIELDS.contains(&f))
            || word.strip_prefix("us_").is_some_and(|f| f == "timestamp" || f == "received_at");
        assert!(known, "user text {word:?} reached the SQL text: {sql}");
    }
    for c in sql.chars() {
        assert!(c.is_ascii_alphanumeric() || "_ ()?<>=,".contains(c), "unexpected {c:?} in SQL: {sql}");
    }
    for p in &params {
        assert!(matches!(p, SqlValue::Text(_) | SqlValue::Integer(_)), "parameter {p:?}");
    }
}

fn terms(e: &Expr) -> usize {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().map(terms).sum(),
        Expr::Not(inner) => terms(inner),
        Expr::Term(_) => 1,
    }
}

/// Nesting of the printed form (each And/Or/Not prints one pair of parentheses).
fn depth(e: &Expr) -> usize {
    match e {
        Expr::And(v) | Expr::Or(v) => 1 + v.iter().map(depth).max().unwrap_or(0),
        Expr::Not(inner) => 1 + depth(inner),
        Expr::Term(_) => 0,
    }
}

fn quote(v: &str, out: &mut String) {
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn print(e: &Expr, out: &mut String) {
    match e {
        Expr::And(v) | Expr::Or(v) => {
            let sep = if matches!(e, Expr::And(_)) { " AND " } else { " OR " };
            out.push('(');
            for (i, item) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                print(item, out);
            }
            out.push(')');
        }
        Expr::Not(inner) => {
            out.push_str("-(");
            print(inner, out);
            out.push(')');
        }
        Expr::Term(t) => {
            if let Some(f) = &t.field {
                out.push_str(f);
                out.push_str(match t.op {
                    Op::Contains => ":",
                    Op::Equals => "=",
                    Op::Gt => ">",
                    Op::Ge => ">=",
                    Op::Lt => "<",
                    Op::Le => "<=",
                });
            }
            quote(&t.value, out);
        }
    }
}

fn search(c: &Connection, expr: Expr, workspaces: Option<Vec<String>>, order: usize) -> BTreeSet<i64> {
    let q = PangeaQuery {
        expr: Some(expr),
        allowed_workspaces: workspaces,
        ascending: order.is_multiple_of(2),
        order_by: PANGEA_ORDER_BY[order % PANGEA_ORDER_BY.len()].to_string(),
        max_results: 1000,
        ..PangeaQuery::default()
    };
    match pangea_search(c, &q) {
        Ok(seqs) => {
            let set: BTreeSet<i64> = seqs.iter().copied().collect();
            assert_eq!(set.len(), seqs.len(), "duplicate rows");
            set
        }
        Err(e) => panic!("search failed (would be a 5xx): {e} for {:?}", q.expr),
    }
}

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data);
    let parsed = pangea_query::parse(&q);
    assert_eq!(parsed, pangea_query::parse(&q), "parse is not deterministic");
    let expr = match parsed {
        Err(e) => {
            let n = e.detail.chars().count();
            assert!(n > 0 && n <= 200, "error detail of {n} chars: {:?}", e.detail);
            return;
        }
        Ok(None) => {
            assert!(q.trim().is_empty(), "non-blank query {q:?} parsed as empty");
            return;
        }
        Ok(Some(expr)) => expr,
    };
    assert!(q.len() <= MAX_QUERY_BYTES);
    assert!(terms(&expr) <= MAX_TERMS, "{} terms accepted", terms(&expr));
    if q.len() + 2 <= MAX_QUERY_BYTES {
        assert_eq!(pangea_query::parse(&format!(" {q}\n")), Ok(Some(expr.clone())), "whitespace changed the AST");
    }
    let mut printed = String::new();
    print(&expr, &mut printed);
    if printed.len() <= MAX_QUERY_BYTES && depth(&expr) <= MAX_DEPTH {
        assert_eq!(pangea_query::parse(&printed), Ok(Some(expr.clone())), "printed form {printed:?}");
    }
    check_sql(&expr);

    DB.with(|(c, all_rows, w1_rows)| {
        let order = data.len();
        let all = search(c, expr.clone(), None, order);
        assert!(all.is_subset(all_rows));
        let w1 = search(c, expr.clone(), Some(vec!["w1".into()]), order + 1);
        let expected: BTreeSet<i64> = all.intersection(w1_rows).copied().collect();
        assert_eq!(w1, expected, "workspace-limited result differs from the unlimited one restricted to w1");
        let none = search(c, expr.clone(), Some(Vec::new()), order);
        assert!(none.is_empty(), "a key with no workspaces saw {none:?}");
        let not = search(c, Expr::Not(Box::new(expr)), None, order + 3);
        assert!(not.is_disjoint(&all), "q and NOT q overlap");
        let union: BTreeSet<i64> = not.union(&all).copied().collect();
        assert_eq!(&union, all_rows, "q and NOT q do not cover every row");
    });
});
