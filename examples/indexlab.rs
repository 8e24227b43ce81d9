//! The substring index designs side by side on one pre-filled data directory (BENCHMARKS.md,
//! "Substring terms: the designs compared"):
//!
//! * `fts5`: an FTS5 table with the `trigram` tokenizer (`case_sensitive 1`, `detail=none`,
//!   contentless), one column per searchable text, rows written in transactions of 16,384 events
//!   as the writer batches its free-text rows; a term is the AND of its trigrams (`detail=none`
//!   refuses phrases), candidates in rowid order;
//! * `bloom`: per 4,096-event segment one Bloom filter of every trigram of its events (ClickHouse's
//!   `ngrambf_v1`: 10 bits per distinct trigram, 4 hashes), kept in memory; a search checks the
//!   segments whose filter may hold all the term's trigrams, newest first;
//! * `postings`: trailkeep's index (`store::ngram`): per segment, each trigram's events, and per
//!   group of segments each trigram's segments (read first);
//! * `segments`: the same without the groups (the segments' rows only);
//! * `scan`: no index.
//!
//! Every design ends in the same exact check (`store::search::pangea_filter`), and every answer
//! is compared with the scan's. Build costs are this process's CPU time for the index work only
//! (reading the events back and cutting their texts is timed on its own).
//!
//!   cargo run --release --example indexlab -- --dir COPY_OF_A_DATA_DIR [--queries 30]
//!
//! It adds tables to the database it is given: run it on a copy. With `--query TERM` (repeatable)
//! it only runs those searches through trailkeep's index and prints what the index did (rows,
//! candidates, index and check time), on any data directory, without building or adding anything.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use clap::Parser;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use trailkeep::search::ngram::{self, SEGMENT_EVENTS, SegmentBuilder};
use trailkeep::search::pangea_query;
use trailkeep::store::search::{
    PangeaQuery, SubstringStats, indexed_texts, pangea_filter, pangea_filter_range, pangea_search_scan,
    pangea_search_with_stats,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// A data directory (a copy: tables are added to it)
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Queries per kind and design
    #[arg(long, default_value_t = 30)]
    queries: usize,
    /// Bloom filter bits per distinct trigram of a segment
    #[arg(long, default_value_t = 10)]
    bloom_bits: usize,
    /// Designs whose searches run (answers are compared with the first)
    #[arg(long, default_value = "scan,postings,fts5,bloom")]
    designs: String,
    /// Skip the build (the tables of an earlier run are there)
    #[arg(long)]
    no_build: bool,
    /// Only these queries (repeatable), through the substring index, each with what the index did
    #[arg(long)]
    query: Vec<String>,
    /// SQLite memory-mapped I/O for this connection (`PRAGMA mmap_size`, bytes; 0: off, as the server)
    #[arg(long, default_value_t = 0)]
    mmap: i64,
}

const FTS_BATCH: usize = 16_384;
const BLOOM_HASHES: u64 = 4;

/// CPU seconds of this thread.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn vm_hwm_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Wall and CPU time of the work inside `run` calls.
#[derive(Default)]
struct Timer {
    wall: f64,
    cpu: f64,
}

impl Timer {
    fn run<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (w, c) = (Instant::now(), thread_cpu());
        let out = f();
        self.wall += w.elapsed().as_secs_f64();
        self.cpu += thread_cpu() - c;
        out
    }
    fn per_event(&self, n: i64) -> Value {
        json!({"wall_us": round(self.wall * 1e6 / n as f64), "cpu_us": round(self.cpu * 1e6 / n as f64)})
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Searchable texts of the events of one segment: (seq, texts).
fn segment_texts(conn: &Connection, seg: i64) -> rusqlite::Result<Vec<(i64, Vec<String>)>> {
    let lo = seg * SEGMENT_EVENTS as i64;
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, (SELECT value FROM strings WHERE id = e.actor), (SELECT value FROM strings WHERE id = e.action),
                (SELECT value FROM strings WHERE id = e.workspace), e.target, e.source, e.status, e.envelope
         FROM events e WHERE e.seq >= ?1 AND e.seq < ?2 AND e.purged_at IS NULL ORDER BY e.seq",
    )?;
    let mut rows = stmt.query(params![lo, lo + SEGMENT_EVENTS as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let t = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
        let env: String = r.get(7)?;
        let event = match serde_json::from_str::<Value>(&env) {
            Ok(Value::Object(mut m)) => match m.remove("event") {
                Some(Value::Object(e)) => e,
                _ => Default::default(),
            },
            _ => Default::default(),
        };
        let (a, b, w, x, y, z) = (t(1)?, t(2)?, t(3)?, t(4)?, t(5)?, t(6)?);
        let texts = indexed_texts(
            a.as_deref().unwrap_or(""),
            b.as_deref().unwrap_or(""),
            w.as_deref().unwrap_or(""),
            x.as_deref(),
            y.as_deref(),
            z.as_deref(),
            &event,
        );
        out.push((r.get(0)?, texts.into_iter().map(|t| t.into_owned()).collect()));
    }
    Ok(out)
}

fn table_bytes(conn: &Connection, like: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE ?1", [like], |r| r.get(0))
}

/// The in-memory Bloom filters of design `bloom`: one bit set per segment.
struct Blooms {
    bits: Vec<Vec<u64>>,
}

fn bloom_positions(key: u32, m: u64) -> impl Iterator<Item = u64> {
    let h = u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (h1, h2) = (h >> 32, (h & 0xffff_ffff) | 1);
    (0..BLOOM_HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
}

impl Blooms {
    fn may_hold(&self, seg: usize, keys: &[u32]) -> bool {
        let b = &self.bits[seg];
        let m = b.len() as u64 * 64;
        keys.iter().all(|k| bloom_positions(*k, m).all(|p| b[(p / 64) as usize] & (1 << (p % 64)) != 0))
    }
}

fn build(conn: &Connection, args: &Args, n: i64) -> anyhow::Result<(Blooms, Value)> {
    let segs = (n + SEGMENT_EVENTS as i64 - 1) / SEGMENT_EVENTS as i64;
    conn.execute_batch(
        "DROP TABLE IF EXISTS lab_tri; DROP TABLE IF EXISTS lab_bloom;
         CREATE VIRTUAL TABLE lab_tri USING fts5(t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, content='', detail='none',
             columnsize=0, tokenize='trigram case_sensitive 1');
         CREATE TABLE lab_bloom(seg INTEGER PRIMARY KEY, bits BLOB NOT NULL);
         DELETE FROM ngram_parts; UPDATE ngram_state SET indexed_to = -1;",
    )?;
    let (mut read, mut cut, mut fts, mut bloom, mut bloom_store, mut post, mut post_store) = (
        Timer::default(),
        Timer::default(),
        Timer::default(),
        Timer::default(),
        Timer::default(),
        Timer::default(),
        Timer::default(),
    );
    let mut blooms = Blooms { bits: Vec::new() };
    let mut fts_pending = 0usize;
    let mut insert_tri = conn.prepare(
        "INSERT INTO lab_tri(rowid, t0, t1, t2, t3, t4, t5, t6, t7, t8, t9) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    conn.execute_batch("BEGIN")?;
    let (mut distinct_sum, mut keys_sum) = (0usize, 0usize);
    for seg in 0..segs {
        let events = read.run(|| segment_texts(conn, seg))?;
        let keyed: Vec<(i64, Vec<u32>)> =
            cut.run(|| events.iter().map(|(s, t)| (*s, ngram::event_grams(t.iter().map(String::as_str)))).collect());
        // (a) FTS5 trigram rows, committed every FTS_BATCH events.
        fts.run(|| -> rusqlite::Result<()> {
            for (seq, texts) in &events {
                let cols: Vec<Option<&str>> = (0..10).map(|i| texts.get(i).map(String::as_str)).collect();
                insert_tri.execute(params![
                    seq, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9]
                ])?;
                fts_pending += 1;
                if fts_pending >= FTS_BATCH {
                    conn.execute_batch("COMMIT; BEGIN")?;
                    fts_pending = 0;
                }
            }
            Ok(())
        })?;
        // (b) one Bloom filter per segment.
        let bits = bloom.run(|| {
            let distinct: HashSet<u32> = keyed.iter().flat_map(|(_, k)| k.iter().copied()).collect();
            distinct_sum += distinct.len();
            keys_sum += keyed.iter().map(|(_, k)| k.len()).sum::<usize>();
            let m = (distinct.len() * args.bloom_bits).next_power_of_two().max(64) as u64;
            let mut bits = vec![0u64; (m / 64) as usize];
            for (_, keys) in &keyed {
                for k in keys {
                    for p in bloom_positions(*k, m) {
                        bits[(p / 64) as usize] |= 1 << (p % 64);
                    }
                }
            }
            bits
        });
        bloom_store.run(|| -> rusqlite::Result<()> {
            let bytes: Vec<u8> = bits.iter().flat_map(|w| w.to_le_bytes()).collect();
            conn.execute("INSERT INTO lab_bloom(seg, bits) VALUES (?1, ?2)", params![seg, bytes])?;
            Ok(())
        })?;
        blooms.bits.push(bits);
        // (c) posting lists.
        let rows = post.run(|| {
            let mut b = SegmentBuilder::default();
            for (seq, keys) in &keyed {
                b.add((*seq - seg * SEGMENT_EVENTS as i64) as usize, keys);
            }
            b.finish()
        });
        post_store.run(|| trailkeep::store::ngram::store_segment(conn, seg, &rows))?;
    }
    conn.execute_batch("COMMIT")?;
    // Only complete segments count as indexed (as in the server); the rest is the tail.
    let indexed_to = (n / SEGMENT_EVENTS as i64) * SEGMENT_EVENTS as i64 - 1;
    trailkeep::store::ngram::set_indexed_to(conn, indexed_to.max(-1))?;
    // (d) groups of segments over the stored segment rows, as the indexer thread builds them.
    let size = trailkeep::store::ngram::group_state(conn)?.group_segments;
    trailkeep::store::ngram::set_group_segments(conn, size)?;
    let last_seg = (indexed_to + 1) / SEGMENT_EVENTS as i64 - 1;
    let groups = (last_seg + size) / size;
    let (mut group_build, mut group_store) = (Timer::default(), Timer::default());
    let t_groups = Instant::now();
    for g in 0..groups {
        let rows = group_build.run(|| trailkeep::store::ngram::build_group(conn, g, size, last_seg))?;
        group_store.run(|| trailkeep::store::ngram::store_group(conn, g, &rows))?;
    }
    let group_ms = t_groups.elapsed().as_secs_f64() * 1e3;
    trailkeep::store::ngram::set_grouped_to(conn, last_seg)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    let per = |b: i64| round(b as f64 / n as f64);
    let report = json!({
        "events": n, "segments": segs,
        "distinct_trigrams_per_segment": distinct_sum as i64 / segs.max(1),
        "trigram_keys_per_event": round(keys_sum as f64 / n as f64),
        "read_and_parse_events": read.per_event(n),
        "cut_trigram_keys": cut.per_event(n),
        "fts5_trigram": {"insert_and_commit": fts.per_event(n), "bytes_per_event": per(table_bytes(conn, "lab_tri%")?)},
        "bloom": {"build": bloom.per_event(n), "store": bloom_store.per_event(n),
                  "bytes_per_event": per(table_bytes(conn, "lab_bloom")?),
                  "memory_mb": round(blooms.bits.iter().map(|b| b.len() * 8).sum::<usize>() as f64 / 1048576.0)},
        "postings": {"build": post.per_event(n), "store": post_store.per_event(n),
                     "bytes_per_event": per(table_bytes(conn, "ngram_parts")?)},
        "groups": {"groups": groups, "segments_per_group": size,
                   "ms_per_group": round(group_ms / groups.max(1) as f64),
                   "cpu_ms_per_group": round((group_build.cpu + group_store.cpu) * 1e3 / groups.max(1) as f64),
                   "bytes_per_event": per(table_bytes(conn, "ngram_groups")?)},
    });
    Ok((blooms, report))
}

/// Query terms drawn from the data: (kind, query text, terms the index designs look up).
fn kinds(conn: &Connection, n: i64, per_kind: usize) -> anyhow::Result<Vec<(&'static str, String, Vec<String>)>> {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut words: HashMap<String, usize> = HashMap::new();
    let (mut ids, mut actors) = (Vec::new(), Vec::new());
    let mut stmt = conn.prepare(
        "SELECT json_extract(envelope, '$.event.message') || ' ' || COALESCE(json_extract(envelope, '$.event.new'), ''),
                (SELECT value FROM strings WHERE id = actor) FROM events WHERE seq = ?1",
    )?;
    for _ in 0..3000 {
        let seq = (next() % n as u64) as i64;
        let Ok((msg, actor)) =
            stmt.query_row([seq], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<String>>(1)?)))
        else {
            continue;
        };
        for w in msg.unwrap_or_default().split(|c: char| !c.is_alphanumeric()) {
            if w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()) {
                ids.push(w.to_string());
            } else if w.len() >= 3 {
                *words.entry(w.to_string()).or_default() += 1;
            }
        }
        if let Some(a) =
            actor.and_then(|a| a.split_once('/').map(|x| x.1.to_string())).filter(|a| a.chars().count() >= 8)
        {
            actors.push(a);
        }
    }
    let mut ranked: Vec<(String, usize)> = words.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rank = |i: usize| ranked[i.min(ranked.len() - 1)].0.clone();
    let mut out = Vec::new();
    for _ in 0..per_kind {
        let r = next() as usize;
        out.push(("frequent_word", rank(r % 10), vec![rank(r % 10)]));
        let (a, b) = (rank(r % 20), rank(20 + (r / 20) % 180));
        out.push(("two_words", format!("{a} {b}"), vec![a, b]));
        if !ids.is_empty() {
            let id = ids[r % ids.len()].clone();
            out.push(("rare_term", id.clone(), vec![id]));
        }
        // Two frequent words' halves joined: their trigrams are common, the word is nowhere.
        let (x, y) = (rank(r % 30), rank((r / 30) % 30));
        let absent = format!("{}{}q{}", &x[..x.len() / 2], &y[y.len() / 2..], &x[x.len() / 2..]);
        out.push(("absent_term", absent.clone(), vec![absent]));
        if !actors.is_empty() {
            let a: Vec<char> = actors[r % actors.len()].chars().collect();
            let at = (r / 7) % (a.len() - 7);
            let part: String = a[at..at + 8].iter().collect();
            out.push(("actor_substring", format!("actor:\"{}\"", part.replace('"', "\\\"")), vec![part]));
        }
    }
    Ok(out)
}

fn query(text: &str) -> PangeaQuery {
    PangeaQuery {
        expr: pangea_query::parse(text).unwrap_or(None),
        order_by: "received_at".into(),
        max_results: 10_000,
        ..Default::default()
    }
}

/// Candidates in chunks through the exact check, newest first, until `max_results`.
fn drain(conn: &Connection, q: &PangeaQuery, candidates: impl Iterator<Item = i64>) -> rusqlite::Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut it = candidates.peekable();
    while out.len() < q.max_results {
        let want = (2 * (q.max_results - out.len())).clamp(256, 8192);
        chunk.extend(it.by_ref().take(want - chunk.len()));
        if chunk.is_empty() {
            break;
        }
        let mut qq = q.clone();
        qq.max_results = q.max_results - out.len();
        out.extend(pangea_filter(conn, &qq, std::mem::take(&mut chunk))?);
        if it.peek().is_none() {
            break;
        }
    }
    Ok(out)
}

fn fts_match(terms: &[String]) -> String {
    let mut grams: Vec<String> = Vec::new();
    for t in terms {
        let c: Vec<char> = t.chars().collect();
        for w in c.windows(3) {
            let g: String = w.iter().collect();
            let q = format!("\"{}\"", g.replace('"', "\"\""));
            if !grams.contains(&q) {
                grams.push(q);
            }
        }
    }
    grams.join(" AND ")
}

fn run_design(
    conn: &Connection,
    blooms: &Blooms,
    design: &str,
    text: &str,
    terms: &[String],
    n: i64,
) -> anyhow::Result<(Vec<i64>, Option<SubstringStats>)> {
    let q = query(text);
    Ok((
        match design {
            "scan" => pangea_search_scan(conn, &q)?,
            "postings" | "segments" => {
                let t0 = Instant::now();
                let (seqs, stats) = pangea_search_with_stats(conn, &q)?;
                if std::env::var_os("INDEXLAB_STATS").is_some() {
                    eprintln!(
                        "{:.1} ms {design} {text:?}: {} matches, {stats:?}",
                        t0.elapsed().as_secs_f64() * 1e3,
                        seqs.len()
                    );
                }
                return Ok((seqs, stats));
            }
            "fts5" => {
                let mut stmt =
                    conn.prepare_cached("SELECT rowid FROM lab_tri WHERE lab_tri MATCH ?1 ORDER BY rowid DESC")?;
                let rows: Vec<i64> =
                    stmt.query_map([fts_match(terms)], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
                drain(conn, &q, rows.into_iter())?
            }
            _ => {
                let keys: Vec<u32> = ngram::event_grams(terms.iter().map(String::as_str));
                let mut out = Vec::new();
                for seg in (0..blooms.bits.len()).rev() {
                    if !blooms.may_hold(seg, &keys) {
                        continue;
                    }
                    let lo = seg as i64 * SEGMENT_EVENTS as i64;
                    let mut qq = q.clone();
                    qq.max_results = q.max_results - out.len();
                    out.extend(pangea_filter_range(conn, &qq, lo, (lo + SEGMENT_EVENTS as i64 - 1).min(n - 1))?);
                    if out.len() >= q.max_results {
                        break;
                    }
                }
                out
            }
        },
        None,
    ))
}

/// Per kind and design: latencies (ms), matches, index rows read, groups evaluated.
type Tally = (Vec<f64>, usize, usize, usize);

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conn = trailkeep::store::open_rw(&args.dir)?;
    conn.pragma_update(None, "cache_size", -2_048)?;
    conn.pragma_update(None, "mmap_size", args.mmap)?;
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    if !args.query.is_empty() {
        for text in &args.query {
            for _ in 0..args.queries.clamp(1, 5) {
                let t0 = Instant::now();
                let (seqs, stats) = pangea_search_with_stats(&conn, &query(text))?;
                println!("{:.1} ms {text:?}: {} matches, {stats:?}", t0.elapsed().as_secs_f64() * 1e3, seqs.len());
            }
        }
        println!("VmHWM {:.0} MB", vm_hwm_mb());
        return Ok(());
    }
    let blooms = if args.no_build {
        let mut bits = Vec::new();
        let mut stmt = conn.prepare("SELECT bits FROM lab_bloom ORDER BY seg")?;
        for b in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
            bits.push(b?.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect());
        }
        Blooms { bits }
    } else {
        eprintln!("building the three designs over {n} events");
        let (blooms, built) = build(&conn, &args, n)?;
        println!("BUILD {built}");
        blooms
    };
    let kinds = kinds(&conn, n, args.queries)?;
    let designs: Vec<&str> = args.designs.split(',').collect();
    let mut lat: HashMap<(&str, &str), Tally> = HashMap::new();
    for (i, (kind, text, terms)) in kinds.iter().enumerate() {
        // The designs take turns going first: a search warms the OS cache for the next one.
        let mut answers: Vec<(&str, Vec<i64>)> = Vec::new();
        for k in 0..designs.len() {
            let d = designs[(i + k) % designs.len()];
            // `segments`: the groups of segments hidden for the search (rolled back after it).
            if d == "segments" {
                conn.execute_batch("SAVEPOINT lab; UPDATE ngram_group_state SET grouped_to = -1")?;
            }
            let t0 = Instant::now();
            let (got, stats) = run_design(&conn, &blooms, d, text, terms, n)?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if d == "segments" {
                conn.execute_batch("ROLLBACK TO lab; RELEASE lab")?;
            }
            let e = lat.entry((kind, d)).or_default();
            e.0.push(ms);
            e.1 += got.len();
            if let Some(st) = stats {
                e.2 += st.rows as usize;
                e.3 += st.groups as usize;
            }
            answers.push((d, got));
        }
        for (d, a) in &answers {
            assert_eq!(a, &answers[0].1, "{d} differs from {} for {text:?}", answers[0].0);
        }
    }
    for kind in ["frequent_word", "two_words", "rare_term", "absent_term", "actor_substring"] {
        for &d in &designs {
            if let Some((v, hits, rows, groups)) = lat.get_mut(&(kind, d)) {
                let k = v.len();
                println!(
                    "SEARCH {}",
                    json!({"kind": kind, "design": d, "queries": k, "mean_count": hits.checked_div(k).unwrap_or(0),
                           "p50_ms": round(pct(v, 50.0)), "p99_ms": round(pct(v, 99.0)),
                           "mean_index_rows": rows.checked_div(k).unwrap_or(0),
                           "mean_groups": groups.checked_div(k).unwrap_or(0)})
                );
            }
        }
    }
    println!("MEMORY {}", json!({"vmhwm_mb": round(vm_hwm_mb())}));
    Ok(())
}
