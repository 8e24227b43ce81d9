//! Memory, latency and stall figures of the cold tree and the event-id filter at millions of
//! leaves and ids, on synthetic databases (BENCHMARKS.md, "Where the time goes": Memory).
//!
//! * `fill --dir D --leaves N --ids M` — a new database (`store::open_rw`, every migration) with N
//!   `buffers` rows (leaf i = SHA-256 of i; the stored root of each size is the tree's) and M
//!   `events` rows whose ids are random (the other columns minimal). Not a servable trail (no
//!   keys, no signatures): it holds what the cold tree and the id filter read.
//! * `tree --dir D` — loading the cold tree (`store::tree::load_tree`, three runs) and its memory
//!   against the full tree's; reading and hashing one block of 2^k leaves for k = 6 … 12; paths at
//!   the current size from random leaves with an empty and a warm block cache; `prev_root`
//!   lookups (`store::tree::root_size_of`) of a recent, an old and an unknown root.
//! * `ids --dir D` — building the event-id filter from the database (`UidFilter::build`: what the
//!   writer does at a start that cannot use the filter's file as it was left), a lookup and an
//!   insert of a million new ids (the writer's work per H2O event), then a background rebuild (`Uids::rebuild_now`) while a simulated writer adds 1,000 ids every
//!   millisecond: the longest `maintain` call (the writer's stall) and the build time.
//!
//! Figures are printed as `RESULT {json}` lines. Run on an otherwise quiet machine; the database
//! is read from the OS cache after `fill` (warm).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};
use rusqlite::params;
use serde_json::json;
use sha2::Digest;
use trailkeep::ledger::Ledger;
use trailkeep::ledger::cold::ColdTree;
use trailkeep::ledger::merkle::{CompactTree, Hash};
use trailkeep::store::tree::{TreeReader, load_recent_roots, load_tree, read_block, root_size_of};
use trailkeep::store::uidfilter::{UidFilter, Uids};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "cold-tree and id-filter figures on synthetic databases")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Fill {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        leaves: u64,
        #[arg(long, default_value_t = 0)]
        ids: u64,
    },
    Tree {
        #[arg(long)]
        dir: PathBuf,
        /// Random queries per figure
        #[arg(long, default_value_t = 400)]
        queries: usize,
    },
    Ids {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Fill { dir, leaves, ids } => fill(&dir, leaves, ids),
        Cmd::Tree { dir, queries } => tree(&dir, queries),
        Cmd::Ids { dir } => ids(&dir),
    }
}

fn leaf(i: u64) -> Hash {
    sha2::Sha256::digest(i.to_le_bytes()).into()
}

/// splitmix64: reproducible random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::from_u64_pair(self.next(), self.next())
    }
}

fn vm_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn result(v: serde_json::Value) {
    println!("RESULT {v}");
}

/// (p50, p99, max) of durations in µs.
fn percentiles(mut us: Vec<f64>) -> serde_json::Value {
    us.sort_by(f64::total_cmp);
    let at = |p: f64| us.get(((us.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    json!({"n": us.len(), "p50_us": at(0.5).round(), "p99_us": at(0.99).round(), "max_us": at(1.0).round()})
}

fn fill(dir: &Path, leaves: u64, ids: u64) -> anyhow::Result<()> {
    let conn = trailkeep::store::open_rw(dir)?;
    conn.execute("INSERT OR IGNORE INTO strings(id, value) VALUES (1, 'lab')", [])?;
    let started = Instant::now();
    let mut tree = ColdTree::default();
    const TX: u64 = 100_000;
    for from in (0..leaves).step_by(TX as usize) {
        conn.execute_batch("BEGIN")?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO buffers(idx, first_seq, count, workspace, buffer_root, root_hash, published_at, signature)
             VALUES (?1, ?1, 1, 1, ?2, ?3, ?1, x'')",
        )?;
        for i in from..(from + TX).min(leaves) {
            tree.push(leaf(i));
            tree.take_completed();
            let root = tree.current_root().unwrap_or([0; 32]);
            insert.execute(params![i as i64, &leaf(i)[..], &root[..]])?;
        }
        drop(insert);
        conn.execute_batch("COMMIT")?;
    }
    // The stored chunks of root-hash prefixes, as the writer would have stored them.
    load_recent_roots(&conn)?;
    let buffers_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut rng = Rng(7);
    for from in (0..ids).step_by(TX as usize) {
        conn.execute_batch("BEGIN")?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                read_only, type, buffer, hash, envelope)
             VALUES (?1, ?2, 0, ?1, ?1, 1, 1, 1, 1, 0, 0, 0, zeroblob(32), '{}')",
        )?;
        for seq in from..(from + TX).min(ids) {
            insert.execute(params![seq as i64, &rng.uuid().as_bytes()[..]])?;
        }
        drop(insert);
        conn.execute_batch("COMMIT")?;
    }
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    result(
        json!({"fill": {"leaves": leaves, "ids": ids, "buffers_s": buffers_s, "events_s": started.elapsed().as_secs_f64()}}),
    );
    Ok(())
}

fn tree(dir: &Path, queries: usize) -> anyhow::Result<()> {
    let conn = trailkeep::store::open_ro(dir)?;
    // Loading, three runs (the first also warms the OS cache further).
    let mut load_ms = Vec::new();
    let rss_before = vm_kb("VmRSS:");
    let mut cold = ColdTree::default();
    for _ in 0..3 {
        let started = Instant::now();
        cold = load_tree(&conn)?;
        load_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let n = cold.len() as u64;
    let full_bytes = {
        // The full tree of every level, as `CompactTree` kept it: measured on the first 1,048,576
        // leaves and scaled (its size is linear in the leaves).
        let sample = n.min(1 << 20);
        let t = CompactTree::from_leaves((0..sample).map(leaf));
        t.heap_bytes() as f64 * n as f64 / sample.max(1) as f64
    };
    result(json!({"tree_load": {
        "leaves": n, "load_ms": load_ms, "cold_tree_bytes": cold.heap_bytes(),
        "full_tree_bytes_estimate": full_bytes.round(), "rss_kb_before_load": rss_before, "rss_kb_after": vm_kb("VmRSS:"),
    }}));
    let started = Instant::now();
    let (first, recent) = {
        let rw = trailkeep::store::open_side_rw(dir)?;
        load_recent_roots(&rw)?
    };
    result(json!({"recent_roots_load": {"ms": started.elapsed().as_secs_f64() * 1000.0, "in_memory": recent.len()}}));

    // One block of 2^k leaves: read by primary-key range and hashed (every level).
    let mut rng = Rng(11);
    for shift in [6u32, 8, 10, 12] {
        let blocks = n >> shift;
        if blocks == 0 {
            continue;
        }
        let mut us = Vec::new();
        for _ in 0..queries {
            let b = rng.below(blocks) as usize;
            let started = Instant::now();
            let t = CompactTree::from_leaves(read_block(&conn, b, shift)?);
            std::hint::black_box(t.root(t.len()));
            us.push(started.elapsed().as_secs_f64() * 1e6);
        }
        result(
            json!({"block_read": {"leaves_per_block": 1u64 << shift, "upper_bytes_per_leaf": 64.0 / (1u64 << shift) as f64, "latency": percentiles(us)}}),
        );
    }

    // Paths at the current size from random leaves: empty cache (a block read per path) and a
    // cache holding what the previous paths read.
    let ledger = Ledger::new(cold, "ab".repeat(32), [7; 32]);
    ledger.set_recent_roots(first, recent);
    for warm in [false, true] {
        let mut us = Vec::new();
        let leaves: Vec<u64> = (0..queries).map(|_| rng.below(n)).collect();
        if warm {
            for &i in &leaves {
                TreeReader::new(&conn, &ledger).path(i, n)?;
            }
        }
        for &i in &leaves {
            if !warm {
                ledger.blocks.clear();
            }
            let started = Instant::now();
            std::hint::black_box(TreeReader::new(&conn, &ledger).path(i, n)?);
            us.push(started.elapsed().as_secs_f64() * 1e6);
        }
        result(json!({"path": {"cache": if warm { "warm" } else { "empty" }, "latency": percentiles(us)}}));
    }
    // A root and a consistency proof at an old size (a search snapshot's or `v1/root`'s).
    let mut us = Vec::new();
    for _ in 0..queries {
        ledger.blocks.clear();
        let size = 2 + rng.below(n - 2);
        let started = Instant::now();
        let mut r = TreeReader::new(&conn, &ledger);
        std::hint::black_box((r.root(size)?, r.consistency(size - 1, size)?));
        us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    result(json!({"old_root_and_consistency": {"cache": "empty", "latency": percentiles(us)}}));

    // prev_root lookups: the size of a recent root, an old one, and of a hash that is no root.
    let mut reader = TreeReader::new(&conn, &ledger);
    let cases = [("recent", n - 10), ("middle", n / 2), ("oldest", 1)];
    for (name, size) in cases {
        let root = reader.root(size)?.unwrap_or([0; 32]);
        let mut us = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let found = root_size_of(&conn, &ledger, &root, n)?;
            us.push(started.elapsed().as_secs_f64() * 1e6);
            assert_eq!(found, Some(size));
        }
        result(json!({"prev_root": {"root": name, "size": size, "latency": percentiles(us)}}));
    }
    let mut us = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(root_size_of(&conn, &ledger, &[0xee; 32], n)?, None);
        us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    result(json!({"prev_root": {"root": "unknown", "latency": percentiles(us)}}));
    Ok(())
}

fn ids(dir: &Path) -> anyhow::Result<()> {
    let conn = trailkeep::store::open_ro(dir)?;
    let mut load_ms = Vec::new();
    let scratch = tempfile::tempdir()?;
    let mut f = None;
    for _ in 0..3 {
        let started = Instant::now();
        f = Some(UidFilter::build(&conn, &scratch.path().join("uid-filter"))?);
        load_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut f = f.expect("built");
    result(json!({"id_filter_build": {"inline_stall_ms": load_ms, "file_bytes": f.file_bytes()}}));
    // The writer's side of an H2O event: a lookup of a new id, then its insert; the changed
    // blocks handed to a thread to write whenever they reach the limit, as `maintain` does.
    let mut rng = Rng(17);
    let n = 1_000_000;
    let started = Instant::now();
    let mut maybe = 0;
    for _ in 0..n {
        let id = rng.uuid();
        maybe += usize::from(f.may_contain(&id));
        f.insert(&id);
        f.write_behind();
    }
    result(json!({"id_filter_ops": {
        "lookup_and_insert_us": started.elapsed().as_secs_f64() * 1e6 / n as f64,
        "false_positives": maybe, "ids": n, "heap_bytes": f.heap_bytes(),
    }}));
    // The writer's side of a background rebuild: 1,000 ids added per "transaction", one every
    // millisecond, `maintain` between transactions as in `commit_group`.
    let rw = trailkeep::store::open_side_rw(dir)?;
    let mut uids = Uids::load(&rw, dir.to_path_buf())?;
    let mut rng = Rng(13);
    let started = Instant::now();
    let call = Instant::now();
    uids.rebuild_now();
    let mut maintain_us = vec![call.elapsed().as_secs_f64() * 1e6];
    let mut added = 0u64;
    while uids.rebuilding() {
        for _ in 0..1000 {
            uids.insert(&rng.uuid());
        }
        added += 1000;
        let call = Instant::now();
        uids.maintain();
        maintain_us.push(call.elapsed().as_secs_f64() * 1e6);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    result(json!({"id_filter_rebuild": {
        "build_ms": started.elapsed().as_secs_f64() * 1000.0, "ids_added_meanwhile": added,
        "writer_maintain": percentiles(maintain_us), "heap_bytes": uids.heap_bytes(),
    }}));
    Ok(())
}
