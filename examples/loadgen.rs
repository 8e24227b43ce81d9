//! trailkeep load generator and baselines (see BENCHMARKS.md and benches/run.sh).
//!
//! Runs of up to 250,000 events build their requests (or rows) before the clock starts
//! (`PREBUILD_MAX_EVENTS`): the generator shares the machine's cores with the system it measures.
//!
//! Every mode prints one line `RESULT {json}` per measurement, which `benches/run.sh` collects and
//! `loadgen report` turns into the results table. All loops end by count or by time; all traffic
//! goes to the URL given (127.0.0.1 in run.sh).
//!
//! Modes:
//! * `bulk`    — HTTP bulk ingest, Pangea `v2/log` or H2O `v1/events:batchCreate`, `--batch` events per
//!   request over `--conns` concurrent keep-alive connections.
//! * `single`  — HTTP single-event ingest (H2O `v1/events` or Pangea `v1/log`) from `--clients` clients.
//! * `search`  — search latencies: each kind alone (1 client), then a mixed load (`--clients`).
//! * `paging`  — H2O keyset pagination: page 1 vs page 1000 of 50.
//! * `soak`    — a paced (open-loop) mix of bulk and single-event ingest in both dialects and
//!   searches for `--seconds`, one RESULT line per kind and `--window` of seconds (latency from the
//!   intended send time); `benches/soak.py` drives it.
//! * `workspaces` — the hottest workspaces of the generated stream, one per line.
//! * `aggregate` — the UI's timeline and top values (`GET /api/v1/aggregate`): last 24 hours, 7 days
//!   and all time, with an admin key and with a key limited to the busiest workspace, and with a query.
//! * `sqlite`  — raw SQLite baseline: the same events into trailkeep's schema (`store::open_rw`),
//!   rows and FTS rows inserted as the writer does, no HTTP, no hashing in the timed part.
//! * `writer`  — the server's own writer in-process (`server::open` + `writer.append`), no HTTP.
//! * `pg`      — PostgreSQL baseline: batched multi-row INSERT of `--batch` rows, `--conns` connections.
//! * `pgsearch`— the same search kinds as SQL against the PostgreSQL table (for reference).
//! * `custom-search` — searches on the custom fields of the `six` shape (exact and range filters,
//!   the Pangea SDK's defaults) in one audit config (`benches/configs.sh`).
//! * `schema`  — print the AuditSchema of the `six` shape (for `trailkeep configs create`).
//! * `sample`  — print a few generated events (H2O and Pangea form) and their sizes.
//! * `report`  — read the RESULT lines of a run and print the markdown results table with ratios.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};
use sha2::Digest;

/// The same allocator as the server binary, so the in-process baselines compare like with like and
/// the client spends less of the shared CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// ------------------------------------------------------------------------------------------------
// Deterministic event model

/// Base of the generated event times: event i happens at BASE + i * STEP (+ jitter).
const BASE_US: i64 = 1_756_684_800_000_000; // 2025-09-01T00:00:00Z
const STEP_US: i64 = 10_000; // 10 ms: 100,000 events span 1,000 s
const JITTER_US: i64 = 5_000_000; // ±5 s, so arrival order and event time differ a little

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64*: tiny, seedable, good enough for load shapes.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(splitmix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Skewed pick: index ~ n * u^k (k > 1 makes low indexes hot).
    fn skewed(&mut self, n: usize, k: f64) -> usize {
        ((self.unit().powf(k) * n as f64) as usize).min(n - 1)
    }
}

/// The vocabulary of the synthetic trail.
struct World {
    principals: Vec<String>,
    workspaces: Vec<String>,
    actions: Vec<String>,
    sources: Vec<String>,
    words: Vec<String>,
    /// Cumulative Zipf weights over `words`.
    word_cdf: Vec<f64>,
    agents: Vec<String>,
}

const META_KEYS: [&str; 10] =
    ["request_id", "region", "client", "ticket", "duration_ms", "trace_id", "reason", "scope", "ip_country", "version"];
const REGIONS: [&str; 6] = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "sa-east-1"];
const NOUNS: [&str; 40] = [
    "project",
    "dataset",
    "model",
    "engine",
    "notebook",
    "secret",
    "token",
    "user",
    "group",
    "role",
    "policy",
    "bucket",
    "object",
    "pipeline",
    "job",
    "run",
    "artifact",
    "deploy",
    "endpoint",
    "cluster",
    "node",
    "volume",
    "snapshot",
    "backup",
    "key",
    "cert",
    "domain",
    "route",
    "alert",
    "report",
    "invoice",
    "plan",
    "quota",
    "license",
    "webhook",
    "session",
    "device",
    "app",
    "workspace",
    "team",
];
const VERBS: [&str; 5] = ["CREATE", "READ", "UPDATE", "DELETE", "LIST"];

/// The AuditSchema of the `six` event shape: the standard `message` and six custom fields.
const SIX_FIELDS_SCHEMA: &str = r#"{"fields": [
  {"id": "message", "type": "text", "required": true},
  {"id": "user", "type": "string", "size": 128},
  {"id": "region", "type": "string", "size": 32},
  {"id": "amount", "type": "integer"},
  {"id": "bytes", "type": "integer"},
  {"id": "ok", "type": "boolean"},
  {"id": "at", "type": "datetime"}
]}"#;
/// `amount` is uniform in `0..AMOUNT_RANGE`.
const AMOUNT_RANGE: u64 = 1_000_000;

impl World {
    fn new() -> Self {
        let mut r = Rng::new(42);
        let syll = [
            "ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "da", "zu", "ri", "an", "el", "or", "us", "qu",
            "fi", "go", "he", "ja", "ko", "ly", "mo", "ny", "pe", "sa", "ti", "vo", "wa",
        ];
        let mut words = Vec::with_capacity(2000);
        let mut seen = std::collections::HashSet::new();
        while words.len() < 2000 {
            let n = 2 + r.below(3);
            let w: String = (0..n).map(|_| syll[r.below(syll.len())]).collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut acc = 0.0;
        let word_cdf = (0..words.len())
            .map(|k| {
                acc += 1.0 / (k as f64 + 1.0);
                acc
            })
            .collect();
        let hex = |r: &mut Rng, n: usize| -> String { (0..n).map(|_| format!("{:x}", r.below(16))).collect() };
        let principals = (0..5000)
            .map(|k| match k % 10 {
                0 => format!("serviceaccounts/{}-{}", words[k % 300], hex(&mut r, 6)),
                _ => format!("users/{}.{}{}", words[(k * 7) % 1500], words[(k * 13 + 5) % 1500], k),
            })
            .collect();
        let workspaces = (0..500).map(|_| hex(&mut r, 12)).collect();
        let actions = (0..200).map(|k| format!("actions/{}/{}", NOUNS[k / 5], VERBS[k % 5])).collect();
        let sources =
            (0..20).map(|k| format!("svc-{}.{}", words[k + 40], ["api", "worker", "gateway"][k % 3])).collect();
        let agents = (0..12)
            .map(|k| {
                format!(
                    "{}/{}.{}.{} ({})",
                    ["python-requests", "Go-http-client", "curl", "Mozilla/5.0", "h2o-cli", "terraform"][k % 6],
                    1 + k % 3,
                    k,
                    7 * k % 10,
                    ["linux", "darwin", "windows"][k % 3]
                )
            })
            .collect();
        Self { principals, workspaces, actions, sources, words, word_cdf, agents }
    }

    fn word(&self, r: &mut Rng) -> &str {
        let total = *self.word_cdf.last().unwrap_or(&1.0);
        let x = r.unit() * total;
        let i = self.word_cdf.partition_point(|c| *c < x).min(self.words.len() - 1);
        &self.words[i]
    }

    fn event(&self, seed: u64, i: u64) -> Ev {
        let mut r = Rng::new(seed.wrapping_mul(0x1000_0000_01B3) ^ i);
        let mut uid = [0u8; 16];
        uid[..8].copy_from_slice(&splitmix(seed ^ (i << 1)).to_le_bytes());
        uid[8..].copy_from_slice(&splitmix(splitmix(seed) ^ i).to_le_bytes());
        let uid = uuid::Builder::from_random_bytes(uid).into_uuid();
        let jitter = (r.next() % (2 * JITTER_US as u64)) as i64 - JITTER_US;
        let time_us = BASE_US + i as i64 * STEP_US + jitter;
        let p = r.skewed(self.principals.len(), 1.6);
        let ws = r.skewed(self.workspaces.len(), 1.3);
        let a = r.skewed(self.actions.len(), 1.4);
        let s = r.below(self.sources.len());
        let noun = NOUNS[a / 5];
        let resource = format!(
            "//{}/workspaces/{}/{}s/{}-{:06}",
            self.sources[s],
            self.workspaces[ws],
            noun,
            &self.words[r.below(300)],
            r.below(1_000_000)
        );
        let ip =
            format!("{}.{}.{}.{}", [203, 198, 81, 34, 52][r.below(5)], r.below(256), r.below(256), 1 + r.below(254));
        let nmsg = 6 + r.below(7);
        let mut message = String::with_capacity(nmsg * 7);
        for k in 0..nmsg {
            if k > 0 {
                message.push(' ');
            }
            message.push_str(self.word(&mut r));
        }
        let nmeta = 3 + r.below(3); // 3..=5 keys, one of them "message"
        let mut metadata = vec![("message".to_string(), message.clone())];
        let start = r.below(META_KEYS.len());
        for k in 0..nmeta - 1 {
            let key = META_KEYS[(start + k) % META_KEYS.len()];
            let v = match key {
                // A request touches a few events: three consecutive events share a request id.
                "request_id" => request_id(seed, i),
                "trace_id" => format!("{:016x}{:016x}", r.next(), r.next()),
                "region" => REGIONS[r.below(REGIONS.len())].to_string(),
                "client" => self.agents[r.below(self.agents.len())].split('/').next().unwrap_or("x").to_string(),
                "ticket" => format!("OPS-{}", r.below(100_000)),
                "duration_ms" => format!("{}", r.below(5000)),
                "reason" => format!("{} {} {}", self.word(&mut r), self.word(&mut r), self.word(&mut r)),
                "scope" => format!("{}:{}", noun, ["read", "write", "admin"][r.below(3)]),
                "ip_country" => ["US", "DE", "FR", "IN", "BR", "JP", "CZ"][r.below(7)].to_string(),
                _ => format!("{}.{}.{}", r.below(4), r.below(20), r.below(50)),
            };
            metadata.push((key.to_string(), v));
        }
        // Messages name the request they belong to, as audit messages often do.
        if let Some((_, id)) = metadata.iter().find(|(k, _)| k == "request_id") {
            message = format!("{message} (request {id})");
            metadata[0].1 = message.clone();
        }
        let failed = r.below(20) == 0;
        Ev {
            uid,
            time_us,
            source: s,
            action: a,
            principal: p,
            workspace: ws,
            resource,
            ip,
            read_only: VERBS[a % 5] == "READ" || VERBS[a % 5] == "LIST",
            status_code: if failed { [3, 5, 7, 13][r.below(4)] } else { 0 },
            metadata,
            message,
            agent: r.below(self.agents.len()),
            system: r.below(10) == 0,
        }
    }
}

/// The request id of event `i` (shared by events `3k`, `3k + 1`, `3k + 2`; present in an event's
/// metadata when its `request_id` key is drawn).
fn request_id(seed: u64, i: u64) -> String {
    let g = splitmix(seed.wrapping_mul(0x9E37_79B9) ^ (i / 3));
    format!("{:016x}{:016x}", g, splitmix(g))
}

struct Ev {
    uid: uuid::Uuid,
    time_us: i64,
    source: usize,
    action: usize,
    principal: usize,
    workspace: usize,
    resource: String,
    ip: String,
    read_only: bool,
    status_code: i32,
    metadata: Vec<(String, String)>,
    message: String,
    agent: usize,
    system: bool,
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

impl Ev {
    fn h2o_event(&self, w: &World) -> Value {
        let meta: Map<String, Value> = self.metadata.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let mut ev = json!({
            "eventTime": rfc3339(self.time_us),
            "eventSource": w.sources[self.source],
            "action": w.actions[self.action],
            "readOnly": self.read_only,
            "principal": w.principals[self.principal],
            "sourceIpAddress": self.ip,
            "resource": self.resource,
            "userAgent": w.agents[self.agent],
            "metadata": meta,
            "type": if self.system { "TYPE_SYSTEM" } else { "TYPE_API" },
        });
        if self.status_code != 0 {
            ev["status"] = json!({"code": self.status_code, "message": "request failed"});
        } else {
            ev["status"] = json!({"code": 0, "message": ""});
        }
        ev
    }
    fn h2o_batch_item(&self, w: &World) -> Value {
        json!({"eventId": self.uid.to_string(), "event": self.h2o_event(w)})
    }
    fn pangea_event(&self, w: &World) -> Value {
        let new: Map<String, Value> =
            self.metadata.iter().filter(|(k, _)| k != "message").map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({
            "message": self.message,
            "actor": w.principals[self.principal],
            "action": w.actions[self.action],
            "target": self.resource,
            "source": self.ip,
            "status": if self.status_code == 0 { "success".to_string() } else { format!("failure-{}", self.status_code) },
            "tenant_id": format!("workspaces/{}", w.workspaces[self.workspace]),
            "timestamp": rfc3339(self.time_us),
            "new": new,
        })
    }
    /// The `six` shape: the event of a config with six custom fields (`SIX_FIELDS_SCHEMA`).
    fn custom_event(&self, w: &World) -> Value {
        let h = splitmix(self.uid.as_u128() as u64);
        let region = self.metadata.iter().find(|(k, _)| k == "region").map(|(_, v)| v.as_str());
        json!({
            "message": self.message,
            "user": w.principals[self.principal],
            "region": region.unwrap_or(REGIONS[self.workspace % REGIONS.len()]),
            "amount": (h % AMOUNT_RANGE) as i64,
            "bytes": ((h >> 20) % 10_000_000) as i64,
            "ok": self.status_code == 0,
            "at": rfc3339(self.time_us),
        })
    }
    /// The text the server indexes for free text (as the H2O adapter builds it).
    fn fts_body(&self, w: &World) -> String {
        let mut parts = vec![
            self.message.clone(),
            w.principals[self.principal].clone(),
            w.actions[self.action].clone(),
            self.resource.clone(),
            w.sources[self.source].clone(),
        ];
        parts.extend(self.metadata.iter().filter(|(k, _)| k != "message").map(|(_, v)| v.clone()));
        parts.join(" ")
    }
}

// ------------------------------------------------------------------------------------------------
// Measurement helpers

#[derive(Default)]
struct Lat(Vec<f64>);

impl Lat {
    fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let idx = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
        v[idx.min(v.len() - 1)]
    }
    fn summary(&self) -> Value {
        json!({"n": self.0.len(), "p50_ms": r3(self.pct(50.0)), "p90_ms": r3(self.pct(90.0)), "p95_ms": r3(self.pct(95.0)),
               "p99_ms": r3(self.pct(99.0)), "max_ms": r3(self.pct(100.0))})
    }
}

fn r3(x: f64) -> f64 {
    if x.is_finite() { (x * 1000.0).round() / 1000.0 } else { -1.0 }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn emit(v: Value) {
    println!("RESULT {v}");
    let _ = std::io::stdout().flush();
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Clock ticks per second for /proc stat times (100 on Linux).
const TICKS: f64 = 100.0;

/// CPU seconds of each live thread of a process: tid → (name with digits folded, seconds).
fn thread_cpu(pid: u32) -> BTreeMap<String, (String, f64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name: String = stat[open + 1..close].chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let (u, s) = (f.get(11).and_then(|x| x.parse::<f64>().ok()), f.get(12).and_then(|x| x.parse::<f64>().ok()));
        out.insert(t.file_name().to_string_lossy().into_owned(), (name, (u.unwrap_or(0.0) + s.unwrap_or(0.0)) / TICKS));
    }
    out
}

/// CPU seconds of a whole process (including threads that have exited).
fn proc_cpu(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let u: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let s: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (u + s) / TICKS
}

fn proc_cpu_self() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let u: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let s: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (u + s) / TICKS
}

/// CPU seconds of all live processes with this command name (e.g. the PostgreSQL server's).
fn procs_cpu_named(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    let mut total = 0.0;
    for e in dir.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == name {
            total += proc_cpu(&pid);
        }
    }
    total
}

/// Machine-wide busy CPU seconds (all cores) from /proc/stat.
fn machine_busy() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else { return 0.0 };
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...: busy = all - idle - iowait
    let total: f64 = v.iter().sum();
    (total - v.get(3).copied().unwrap_or(0.0) - v.get(4).copied().unwrap_or(0.0)) / TICKS
}

/// Bytes written to and read from whole block devices so far (/proc/diskstats; partitions skipped).
fn disk_bytes() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
    let mut names: Vec<(String, f64, f64)> = Vec::new();
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 || f[2].starts_with("loop") || f[2].starts_with("ram") {
            continue;
        }
        let read: f64 = f[5].parse().unwrap_or(0.0) * 512.0;
        let written: f64 = f[9].parse().unwrap_or(0.0) * 512.0;
        names.push((f[2].to_string(), written, read));
    }
    let all: Vec<String> = names.iter().map(|n| n.0.clone()).collect();
    // A partition (vda1, nvme0n1p1) has its disk (vda, nvme0n1) listed too: count disks only.
    let is_part = |n: &str| {
        all.iter()
            .any(|d| d != n && n.starts_with(d.as_str()) && n[d.len()..].trim_start_matches('p').parse::<u32>().is_ok())
    };
    names.iter().filter(|n| !is_part(&n.0)).fold((0.0, 0.0), |acc, n| (acc.0 + n.1, acc.1 + n.2))
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Watches a server process during a phase: peak RSS (sampled) and the per-thread CPU split.
struct Watch {
    pid: Option<u32>,
    cpu0: BTreeMap<String, (String, f64)>,
    proc0: f64,
    self0: f64,
    busy0: f64,
    disk0: (f64, f64),
    t0: Instant,
    peak_rss_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(pid: Option<u32>) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = pid.map(|pid| {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kb) = status_kb(pid, "VmRSS:") {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        Self {
            pid,
            cpu0: pid.map(thread_cpu).unwrap_or_default(),
            proc0: pid.map(|p| proc_cpu(&p.to_string())).unwrap_or(0.0),
            self0: proc_cpu_self(),
            busy0: machine_busy(),
            disk0: disk_bytes(),
            t0: Instant::now(),
            peak_rss_kb: peak,
            stop,
            sampler,
        }
    }

    fn finish(mut self) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        let wall = self.t0.elapsed().as_secs_f64();
        let own = proc_cpu_self() - self.self0;
        let busy = machine_busy() - self.busy0;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let disk = disk_bytes();
        let mut out = json!({"loadgen_cpu_s": r3(own), "wall_s": r3(wall), "machine_busy_cpu_s": r3(busy),
            "loadavg_end": load.split_whitespace().next().unwrap_or(""),
            "disk_written_mb": r3((disk.0 - self.disk0.0) / 1e6), "disk_read_mb": r3((disk.1 - self.disk0.1) / 1e6)});
        if let Some(pid) = self.pid {
            let cpu1 = thread_cpu(pid);
            let mut split: BTreeMap<String, f64> = BTreeMap::new();
            for (tid, (name, v)) in &cpu1 {
                let d = v - self.cpu0.get(tid).map(|x| x.1).unwrap_or(0.0);
                *split.entry(name.clone()).or_insert(0.0) += d;
            }
            let split: Map<String, Value> =
                split.into_iter().filter(|(_, d)| *d >= 0.01).map(|(k, d)| (k, json!(r3(d)))).collect();
            let total = proc_cpu(&pid.to_string()) - self.proc0;
            let external = if pid == std::process::id() { 0.0 } else { total };
            out["server_cpu_s"] = json!(r3(total));
            // CPU used by anything else on the machine during the phase (noise indicator).
            out["other_cpu_s"] = json!(r3((busy - own - external).max(0.0)));
            out["server_threads_cpu_s"] = Value::Object(split);
            out["server_rss_peak_sampled_mb"] = json!(r3(self.peak_rss_kb.load(Ordering::Relaxed) as f64 / 1024.0));
            out["server_vmhwm_mb"] = json!(r3(status_kb(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0));
        } else {
            out["other_cpu_s"] = json!(r3((busy - own).max(0.0)));
        }
        out
    }
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

// ------------------------------------------------------------------------------------------------
// HTTP

fn agent(conns: usize) -> ureq::Agent {
    let cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Per-phase timeouts, not a global one: with a global timeout ureq resolves the host on
        // a fresh thread per request (a quarter of this client's CPU in single-event runs).
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .timeout_per_write(Some(Duration::from_secs(120)))
        .max_idle_connections(conns.max(1) * 2)
        .max_idle_connections_per_host(conns.max(1) * 2)
        .build();
    ureq::Agent::new_with_config(cfg)
}

/// POSTs a JSON body; returns (status, body). Transport errors are status 0.
fn post(agent: &ureq::Agent, url: &str, key: &str, body: &str) -> (u16, String) {
    let res = agent
        .post(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(body);
    match res {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default();
            (status, text)
        }
        Err(e) => (0, e.to_string()),
    }
}

#[derive(Default)]
struct Tally {
    lat: Lat,
    ok_events: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.lat.0.extend(o.lat.0);
        self.ok_events += o.ok_events;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

#[derive(Parser)]
#[command(about = "trailkeep load generator and baselines")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// Server base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// API key (admin key printed on first start)
    #[arg(long, env = "TRAILKEEP_BENCH_KEY")]
    key: String,
    /// Server pid, to sample its RSS and per-thread CPU
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(clap::Args, Clone)]
struct Range {
    /// Seed of the event stream
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First event index (events are a pure function of seed and index)
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Number of events
    #[arg(long)]
    events: u64,
}

#[derive(Subcommand)]
enum Cmd {
    Bulk {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        range: Range,
        /// pangea | h2o
        #[arg(long, default_value = "pangea")]
        dialect: String,
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        #[arg(long, default_value_t = 4)]
        conns: usize,
        /// A name for this measurement (e.g. prefill, run1)
        #[arg(long, default_value = "run")]
        label: String,
        /// Print progress every this many events (0 = never)
        #[arg(long, default_value_t = 0)]
        progress: u64,
        /// Pangea event shape: standard (Pangea's standard schema) or six (`SIX_FIELDS_SCHEMA`)
        #[arg(long, default_value = "standard", value_parser = ["standard", "six"])]
        shape: String,
        /// Audit config id sent as `config_id` (Pangea)
        #[arg(long)]
        config_id: Option<String>,
    },
    CustomSearch {
        #[command(flatten)]
        target: Target,
        /// Events of the `six` shape in the config (seed's indexes 0..N)
        #[arg(long)]
        db_events: u64,
        #[arg(long)]
        config_id: String,
        /// Requests per kind
        #[arg(long, default_value_t = 200)]
        per_kind: usize,
        #[arg(long, default_value = "run")]
        label: String,
    },
    Schema,
    Single {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        range: Range,
        /// h2o | pangea
        #[arg(long, default_value = "h2o")]
        dialect: String,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Stop after this many seconds even if `--events` are not all sent
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value = "run")]
        label: String,
    },
    Search {
        #[command(flatten)]
        target: Target,
        /// Events in the database (of the generated stream with this seed, indexes 0..N)
        #[arg(long)]
        db_events: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Requests per kind in the isolated phase
        #[arg(long, default_value_t = 200)]
        per_kind: usize,
        /// Clients of the mixed phase
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds of the mixed phase
        #[arg(long, default_value_t = 15.0)]
        seconds: f64,
        #[arg(long, default_value = "run")]
        label: String,
        /// Only these isolated kinds (names as reported, comma-separated); all if empty
        #[arg(long, default_value = "")]
        kinds: String,
        /// Skip the mixed phase
        #[arg(long)]
        no_mixed: bool,
    },
    Soak {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        soak: SoakArgs,
    },
    Workspaces {
        /// How many of the hottest workspaces to print
        #[arg(long, default_value_t = 1)]
        top: usize,
    },
    Aggregate {
        #[command(flatten)]
        target: Target,
        /// Requests per kind
        #[arg(long, default_value_t = 100)]
        per_kind: usize,
        #[arg(long, default_value = "run")]
        label: String,
    },
    Paging {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1000)]
        pages: usize,
        #[arg(long, default_value_t = 50)]
        page_size: usize,
        #[arg(long, default_value = "run")]
        label: String,
    },
    Sqlite {
        /// Data directory (created; must be new for a clean baseline)
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        range: Range,
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        /// Buffer rows per commit as the writer seals them: workspace | commit | none
        #[arg(long, default_value = "workspace")]
        buffers: String,
        #[arg(long, default_value = "run")]
        label: String,
        #[arg(long, default_value_t = 0)]
        progress: u64,
    },
    Writer {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        range: Range,
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        #[arg(long, default_value_t = 4)]
        conns: usize,
        #[arg(long, default_value = "run")]
        label: String,
        #[arg(long, default_value_t = 0)]
        progress: u64,
    },
    Pg {
        /// libpq-style connection string
        #[arg(long, default_value = "host=/tmp port=55432 user=postgres dbname=postgres")]
        pg: String,
        #[command(flatten)]
        range: Range,
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        #[arg(long, default_value_t = 4)]
        conns: usize,
        #[arg(long, default_value = "run")]
        label: String,
        #[arg(long, default_value_t = 0)]
        progress: u64,
    },
    Pgsearch {
        #[arg(long, default_value = "host=/tmp port=55432 user=postgres dbname=postgres")]
        pg: String,
        #[arg(long)]
        db_events: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        per_kind: usize,
        #[arg(long, default_value = "run")]
        label: String,
    },
    Sample {
        #[arg(long, default_value_t = 3)]
        n: u64,
    },
    Report {
        /// File with the RESULT lines of one run
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Bulk { target, range, dialect, batch, conns, label, progress, shape, config_id } => {
            let shape = Shape { six: shape == "six", config_id };
            bulk(&target, &range, &dialect, &shape, batch, conns, &label, progress)
        }
        Cmd::CustomSearch { target, db_events, config_id, per_kind, label } => {
            custom_search(&target, db_events, &config_id, per_kind, &label)
        }
        Cmd::Schema => {
            println!("{SIX_FIELDS_SCHEMA}");
            Ok(())
        }
        Cmd::Single { target, range, dialect, clients, seconds, label } => {
            single(&target, &range, &dialect, clients, seconds, &label)
        }
        Cmd::Search { target, db_events, seed, per_kind, clients, seconds, label, kinds, no_mixed } => {
            let only: Vec<&str> = kinds.split(',').filter(|k| !k.is_empty()).collect();
            let seconds = if no_mixed { 0.0 } else { seconds };
            search(&target, db_events, seed, per_kind, clients, seconds, &label, &only)
        }
        Cmd::Soak { target, soak: a } => soak(&target, &a),
        Cmd::Workspaces { top } => {
            let w = World::new();
            // `event` picks workspace k with the skew 1.3: index 0 is the hottest.
            for ws in w.workspaces.iter().take(top) {
                println!("workspaces/{ws}");
            }
            Ok(())
        }
        Cmd::Paging { target, pages, page_size, label } => paging(&target, pages, page_size, &label),
        Cmd::Aggregate { target, per_kind, label } => aggregate(&target, per_kind, &label),
        Cmd::Sqlite { dir, range, batch, buffers, label, progress } => {
            sqlite_baseline(&dir, &range, batch, &buffers, &label, progress)
        }
        Cmd::Writer { dir, range, batch, conns, label, progress } => {
            writer_baseline(&dir, &range, batch, conns, &label, progress)
        }
        Cmd::Pg { pg, range, batch, conns, label, progress } => {
            pg_baseline(&pg, &range, batch, conns, &label, progress)
        }
        Cmd::Pgsearch { pg, db_events, seed, per_kind, label } => pg_search(&pg, db_events, seed, per_kind, &label),
        Cmd::Sample { n } => {
            let w = World::new();
            for i in 0..n {
                let e = w.event(1, i);
                let h = e.h2o_batch_item(&w).to_string();
                let p = json!({"event": e.pangea_event(&w)}).to_string();
                println!("h2o ({} bytes): {h}\npangea ({} bytes): {p}\n", h.len(), p.len());
            }
            let (mut hs, mut ps) = (0usize, 0usize);
            for i in 0..1000 {
                let e = w.event(1, i);
                hs += e.h2o_batch_item(&w).to_string().len();
                ps += json!({"event": e.pangea_event(&w)}).to_string().len();
            }
            println!("mean over 1000: h2o {} bytes, pangea {} bytes", hs / 1000, ps / 1000);
            Ok(())
        }
        Cmd::Report { file } => report(&file),
    }
}

/// Runs of at most this many events have their requests (or rows) built before the clock starts,
/// so the measured rate is the system's, not the generator's: the generator shares the two cores
/// with the server, and building 1,000 events of JSON costs about as much CPU as storing them.
/// Longer runs (the pre-fill) build each batch in the timed loop.
const PREBUILD_MAX_EVENTS: u64 = 250_000;

/// The work items of batches `0..nbatches`, built up front when the run is short enough
/// (`PREBUILD_MAX_EVENTS`), else `None`. A slot is taken by the worker that sends it.
fn prebuild<T: Send>(events: u64, nbatches: u64, make: impl Fn(u64) -> T + Sync) -> Option<Vec<Mutex<Option<T>>>> {
    if events > PREBUILD_MAX_EVENTS {
        return None;
    }
    let next = AtomicU64::new(0);
    let mut built: Vec<(u64, T)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (next, make) = (&next, &make);
                s.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= nbatches {
                            break out;
                        }
                        out.push((b, make(b)));
                    }
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    built.sort_by_key(|(b, _)| *b);
    Some(built.into_iter().map(|(_, t)| Mutex::new(Some(t))).collect())
}

/// Batch `b`: taken from the prebuilt set, or built now.
fn take_or_build<T>(pre: &Option<Vec<Mutex<Option<T>>>>, b: u64, make: impl Fn(u64) -> T) -> T {
    pre.as_ref().and_then(|v| v[b as usize].lock().unwrap_or_else(|p| p.into_inner()).take()).unwrap_or_else(|| make(b))
}

/// Runs `conns` workers pulling batch numbers until `nbatches` are taken.
fn run_batches<F>(conns: usize, nbatches: u64, progress_every: u64, batch: u64, f: F) -> (Tally, f64)
where
    F: Fn(usize, u64) -> (Result<u64, String>, f64) + Sync,
{
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let t0 = Instant::now();
    let total = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let (next, done, f) = (&next, &done, &f);
                s.spawn(move || {
                    let mut t = Tally::default();
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= nbatches {
                            break;
                        }
                        let (res, lat_ms) = f(c, b);
                        t.lat.0.push(lat_ms);
                        match res {
                            Ok(n) => t.ok_events += n,
                            Err(e) => {
                                t.errors += 1;
                                t.first_error.get_or_insert(e);
                            }
                        }
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if progress_every > 0 && (d * batch) % progress_every < batch {
                            eprintln!(
                                "  .. {} events in {:.1}s ({:.0}/s)",
                                d * batch,
                                t0.elapsed().as_secs_f64(),
                                (d * batch) as f64 / t0.elapsed().as_secs_f64()
                            );
                        }
                    }
                    t
                })
            })
            .collect();
        let mut total = Tally::default();
        for h in handles {
            if let Ok(t) = h.join() {
                total.add(t);
            }
        }
        total
    });
    (total, t0.elapsed().as_secs_f64())
}

/// The Pangea events of a bulk run: their shape and the config they go to.
struct Shape {
    six: bool,
    config_id: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn bulk(
    t: &Target,
    r: &Range,
    dialect: &str,
    shape: &Shape,
    batch: u64,
    conns: usize,
    label: &str,
    progress: u64,
) -> anyhow::Result<()> {
    let w = World::new();
    let nb = r.events.div_ceil(batch);
    if !matches!(dialect, "pangea" | "h2o" | "mixed") {
        anyhow::bail!("unknown dialect {dialect}");
    }
    // `mixed`: batches alternate, Pangea first (with --start a multiple of 2 × batch, event i
    // went in through Pangea iff (i / batch) is even).
    let pangea = |b: u64| dialect == "pangea" || (dialect == "mixed" && b.is_multiple_of(2));
    let url = |b: u64| {
        if pangea(b) { format!("{}/pangea/v2/log", t.url) } else { format!("{}/v1/events:batchCreate", t.url) }
    };
    let agents: Vec<ureq::Agent> = (0..conns).map(|_| agent(1)).collect();
    let make = |b: u64| -> String {
        let lo = r.start + b * batch;
        let hi = (lo + batch).min(r.start + r.events);
        let items: Vec<Value> = (lo..hi)
            .map(|i| {
                let e = w.event(r.seed, i);
                match (pangea(b), shape.six) {
                    (true, true) => json!({"event": e.custom_event(&w)}),
                    (true, false) => json!({"event": e.pangea_event(&w)}),
                    _ => e.h2o_batch_item(&w),
                }
            })
            .collect();
        let mut body = if pangea(b) { json!({"events": items}) } else { json!({"requests": items}) };
        if let Some(id) = &shape.config_id {
            body["config_id"] = json!(id);
        }
        body.to_string()
    };
    let pre = prebuild(r.events, nb, make);
    let watch = Watch::start(t.pid);
    let (tally, wall) = run_batches(conns, nb, progress, batch, |c, b| {
        let lo = r.start + b * batch;
        let hi = (lo + batch).min(r.start + r.events);
        let body = take_or_build(&pre, b, make);
        let t0 = Instant::now();
        let (status, text) = post(&agents[c], &url(b), &t.key, &body);
        let lat = ms(t0.elapsed());
        let n = hi - lo;
        let res = if status != 200 {
            Err(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()))
        } else if !pangea(b) && !text.contains("\"failedRequests\":{}") {
            Err(format!("failedRequests: {}", text.chars().rev().take(300).collect::<String>()))
        } else {
            Ok(n)
        };
        (res, lat)
    });
    let system = match (dialect, shape.six) {
        ("pangea", true) => "trailkeep-http-pangea-six".to_string(),
        _ => format!("trailkeep-http-{dialect}"),
    };
    let out = json!({
        "kind": "ingest", "system": system, "label": label, "events": tally.ok_events, "config_id": shape.config_id,
        "start": r.start, "batch": batch, "conns": conns, "events_per_s": r3(tally.ok_events as f64 / wall),
        "errors": tally.errors, "first_error": tally.first_error, "latency": tally.lat.summary(),
    });
    emit(merge(out, watch.finish()));
    Ok(())
}

fn single(t: &Target, r: &Range, dialect: &str, clients: usize, seconds: f64, label: &str) -> anyhow::Result<()> {
    let w = World::new();
    let next = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let watch = Watch::start(t.pid);
    let t0 = Instant::now();
    let tally = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|_| {
                let (next, w) = (&next, &w);
                s.spawn(move || {
                    let a = agent(1);
                    let mut tl = Tally::default();
                    while Instant::now() < deadline {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= r.events {
                            break;
                        }
                        let e = w.event(r.seed, r.start + k);
                        let (url, body) = if dialect == "pangea" {
                            (format!("{}/pangea/v1/log", t.url), json!({"event": e.pangea_event(w)}).to_string())
                        } else {
                            (format!("{}/v1/events?eventId={}", t.url, e.uid), e.h2o_event(w).to_string())
                        };
                        let t1 = Instant::now();
                        let (status, text) = post(&a, &url, &t.key, &body);
                        tl.lat.0.push(ms(t1.elapsed()));
                        if status == 200 {
                            tl.ok_events += 1;
                        } else {
                            tl.errors += 1;
                            tl.first_error.get_or_insert(format!(
                                "HTTP {status}: {}",
                                text.chars().take(300).collect::<String>()
                            ));
                        }
                    }
                    tl
                })
            })
            .collect();
        let mut total = Tally::default();
        for h in hs {
            if let Ok(x) = h.join() {
                total.add(x);
            }
        }
        total
    });
    let wall = t0.elapsed().as_secs_f64();
    let out = json!({
        "kind": "single", "system": format!("trailkeep-http-{dialect}"), "label": label, "clients": clients,
        "events": tally.ok_events, "start": r.start, "events_per_s": r3(tally.ok_events as f64 / wall),
        "errors": tally.errors, "first_error": tally.first_error, "latency": tally.lat.summary(),
    });
    emit(merge(out, watch.finish()));
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Search

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// H2O principalExact over the whole time range, newest 50
    ExactPrincipal,
    /// H2O workspaceExact over a 1-hour window, newest 50
    ExactWorkspace,
    /// Pangea `text:<word>` (FTS5), newest 50 (limit 50, max_results 50, not verbose)
    FtsWord,
    /// Pangea bare `<word>` with the client defaults (limit 50, max_results default, verbose default),
    /// a word from the 1,000 most frequent
    BareWordDefault,
    /// Pangea bare `<word>`, one of the 10 most frequent words (client defaults)
    FrequentWord,
    /// Pangea `<word> <word>`: one of the 20 most frequent and one of ranks 20–200 (client defaults)
    TwoWords,
    /// Pangea bare request id: a handful of events share it (client defaults)
    RareTerm,
    /// Pangea bare word made of the vocabulary's syllables that no event holds (client defaults)
    AbsentTerm,
    /// Pangea `actor:<8 characters of a principal's id>` (client defaults)
    FieldSubstring,
    /// H2O resourceRegex that rarely matches, over a 100,000-event time window
    RegexWindow,
    /// H2O actionRegex (interned actions) over a 100,000-event window
    ActionRegexWindow,
}

const KINDS: [Kind; 11] = [
    Kind::ExactPrincipal,
    Kind::ExactWorkspace,
    Kind::FtsWord,
    Kind::BareWordDefault,
    Kind::FrequentWord,
    Kind::TwoWords,
    Kind::RareTerm,
    Kind::AbsentTerm,
    Kind::FieldSubstring,
    Kind::RegexWindow,
    Kind::ActionRegexWindow,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ExactPrincipal => "exact_principal_50",
            Kind::ExactWorkspace => "exact_workspace_1h_50",
            Kind::FtsWord => "fts_word_50",
            Kind::BareWordDefault => "pangea_bare_word_defaults",
            Kind::FrequentWord => "pangea_frequent_word",
            Kind::TwoWords => "pangea_two_words",
            Kind::RareTerm => "pangea_rare_term",
            Kind::AbsentTerm => "pangea_absent_term",
            Kind::FieldSubstring => "pangea_actor_substring",
            Kind::RegexWindow => "regex_resource_100k_window",
            Kind::ActionRegexWindow => "regex_action_100k_window",
        }
    }
}

struct Queries {
    w: World,
    db_events: u64,
    seed: u64,
    fts_form: String,
    /// Words of the vocabulary's syllables that are not in it (nor inside any of its words).
    absent: Vec<String>,
}

impl Queries {
    fn new(db_events: u64, seed: u64, fts_form: String) -> Self {
        let w = World::new();
        let syll = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "zu", "ri", "qu", "wa", "ly", "ny"];
        let mut r = Rng::new(4242);
        let mut absent = Vec::new();
        while absent.len() < 64 {
            let cand: String = (0..3).map(|_| syll[r.below(syll.len())]).collect();
            let used = w.words.iter().chain(&w.principals).chain(&w.sources).any(|x| x.contains(&cand));
            if !used && !absent.contains(&cand) {
                absent.push(cand);
            }
        }
        Self { w, db_events, seed, fts_form, absent }
    }
}

impl Queries {
    /// (path, body) of one query of a kind.
    fn make(&self, k: Kind, r: &mut Rng) -> (String, String) {
        self.make_at(k, r, self.db_events)
    }

    /// A query of kind `k` over a database holding events `0..db_events` of the stream.
    fn make_at(&self, k: Kind, r: &mut Rng, db_events: u64) -> (String, String) {
        let w = &self.w;
        let span_end = BASE_US + db_events as i64 * STEP_US + 2 * JITTER_US;
        match k {
            Kind::ExactPrincipal => {
                let p = &w.principals[r.skewed(w.principals.len(), 1.6)];
                let body = json!({"filter": {"principalExact": p, "startEventTime": rfc3339(BASE_US - 3_600_000_000),
                    "endEventTime": rfc3339(span_end)}, "pageSize": 50});
                ("/v1/events:search".into(), body.to_string())
            }
            Kind::ExactWorkspace => {
                let ws = &w.workspaces[r.skewed(w.workspaces.len(), 1.3)];
                let t0 = BASE_US + (r.below(db_events.max(1) as usize) as i64) * STEP_US;
                let body = json!({"filter": {"workspaceExact": format!("workspaces/{ws}"),
                    "startEventTime": rfc3339(t0), "endEventTime": rfc3339(t0 + 3_600_000_000)}, "pageSize": 50});
                ("/v1/events:search".into(), body.to_string())
            }
            Kind::FtsWord => {
                // Words from the top 1,000 of the Zipf vocabulary: from very common to rare.
                let word = &w.words[r.below(1000)];
                let q = self.fts_form.replace("{w}", word);
                let body = json!({"query": q, "limit": 50, "max_results": 50, "verbose": false});
                ("/pangea/v1/search".into(), body.to_string())
            }
            Kind::BareWordDefault => {
                let word = &w.words[r.below(1000)];
                let body = json!({"query": word, "limit": 50});
                ("/pangea/v1/search".into(), body.to_string())
            }
            Kind::FrequentWord | Kind::TwoWords | Kind::RareTerm | Kind::AbsentTerm | Kind::FieldSubstring => {
                let query = match k {
                    Kind::FrequentWord => w.words[r.below(10)].clone(),
                    Kind::TwoWords => format!("{} {}", w.words[r.below(20)], w.words[20 + r.below(180)]),
                    Kind::RareTerm => {
                        // The request id of a stored event that has one (the next one that does).
                        let mut i = r.below(self.db_events.max(1) as usize) as u64;
                        loop {
                            let e = w.event(self.seed, i);
                            if e.metadata.iter().any(|(k, _)| k == "request_id") || i + 1 >= self.db_events {
                                break request_id(self.seed, i);
                            }
                            i += 1;
                        }
                    }
                    Kind::AbsentTerm => self.absent[r.below(self.absent.len())].clone(),
                    _ => {
                        let p = &w.principals[r.skewed(w.principals.len(), 1.6)];
                        let id: Vec<char> = p.split_once('/').map_or(p.as_str(), |x| x.1).chars().collect();
                        let at = r.below(id.len().saturating_sub(8) + 1);
                        let part: String = id[at..(at + 8).min(id.len())].iter().collect();
                        format!("actor:\"{part}\"")
                    }
                };
                let body = json!({"query": query, "limit": 50});
                ("/pangea/v1/search".into(), body.to_string())
            }
            Kind::RegexWindow | Kind::ActionRegexWindow => {
                let n = db_events.max(100_001);
                let first = r.below((n - 100_000) as usize) as i64;
                let t0 = BASE_US + first * STEP_US;
                let (field, pattern) = if k == Kind::RegexWindow {
                    // Rare: resources end in -NNNNNN; ask for one exact six-digit tail across all nouns.
                    ("resourceRegex", format!("/[a-z]+s/[a-z]+-{:06}$", r.below(1_000_000)))
                } else {
                    ("actionRegex", format!("^actions/{}/(DELETE|UPDATE)$", NOUNS[r.below(NOUNS.len())]))
                };
                let body = json!({"filter": {field: pattern, "startEventTime": rfc3339(t0),
                    "endEventTime": rfc3339(t0 + 100_000 * STEP_US)}, "pageSize": 50});
                ("/v1/events:search".into(), body.to_string())
            }
        }
    }
}

/// Number of events in a search response (H2O `events`, Pangea `result.events`) and the total
/// it reports (Pangea `result.count`; H2O has none: the page size).
fn hits(text: &str) -> Option<(usize, usize)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let n = v.get("events").or_else(|| v.get("result").and_then(|r| r.get("events")))?.as_array().map(Vec::len)?;
    let count = v.pointer("/result/count").and_then(Value::as_u64).map_or(n, |c| c as usize);
    Some((n, count))
}

fn run_query(a: &ureq::Agent, t: &Target, path: &str, body: &str) -> (f64, Result<(usize, usize), String>) {
    let t0 = Instant::now();
    let (status, text) = post(a, &format!("{}{path}", t.url), &t.key, body);
    let lat = ms(t0.elapsed());
    if status != 200 {
        return (lat, Err(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>())));
    }
    (lat, hits(&text).ok_or_else(|| "no events array".to_string()))
}

#[allow(clippy::too_many_arguments)]
fn search(
    t: &Target,
    db_events: u64,
    seed: u64,
    per_kind: usize,
    clients: usize,
    seconds: f64,
    label: &str,
    only: &[&str],
) -> anyhow::Result<()> {
    let a = agent(1);
    // Which full-text form does the server take? `text:word` (FTS5) if supported, else a bare word.
    let probe = json!({"query": "text:ka", "limit": 1, "max_results": 1, "verbose": false}).to_string();
    let (_, res) = run_query(&a, t, "/pangea/v1/search", &probe);
    let fts_form = if res.is_ok() { "text:{w}".to_string() } else { "{w}".to_string() };
    eprintln!("  full-text query form: {fts_form}");
    let q = Queries::new(db_events, seed, fts_form.clone());
    // Isolated: one kind at a time, one client.
    for k in KINDS.into_iter().filter(|k| only.is_empty() || only.contains(&k.name())) {
        let mut r = Rng::new(7 + k as u64);
        for _ in 0..5 {
            let (p, b) = q.make(k, &mut r);
            let _ = run_query(&a, t, &p, &b);
        }
        let watch = Watch::start(t.pid);
        let mut tl = Tally::default();
        let (mut hit_sum, mut count_sum) = (0usize, 0usize);
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..per_kind {
            if Instant::now() > deadline {
                break;
            }
            let (p, b) = q.make(k, &mut r);
            let (lat, res) = run_query(&a, t, &p, &b);
            tl.lat.0.push(lat);
            match res {
                Ok((h, c)) => {
                    tl.ok_events += 1;
                    hit_sum += h;
                    count_sum += c;
                }
                Err(e) => {
                    tl.errors += 1;
                    tl.first_error.get_or_insert(e);
                }
            }
        }
        let out = json!({"kind": "search", "mode": "isolated", "query": k.name(), "label": label, "clients": 1,
            "db_events": db_events, "fts_form": fts_form, "requests": tl.lat.0.len(), "errors": tl.errors, "first_error": tl.first_error,
            "mean_hits": r3(hit_sum as f64 / tl.ok_events.max(1) as f64),
            "mean_count": r3(count_sum as f64 / tl.ok_events.max(1) as f64), "latency": tl.lat.summary()});
        emit(merge(out, watch.finish()));
    }
    if seconds <= 0.0 {
        return Ok(());
    }
    // Mixed: clients pick kinds by weight for `seconds`.
    let mix: [(Kind, u32); 5] = [
        (Kind::ExactPrincipal, 40),
        (Kind::ExactWorkspace, 20),
        (Kind::FtsWord, 25),
        (Kind::RegexWindow, 10),
        (Kind::ActionRegexWindow, 5),
    ];
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let watch = Watch::start(t.pid);
    let t0 = Instant::now();
    let per: Mutex<HashMap<&'static str, (Tally, usize)>> = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for c in 0..clients {
            let (q, per) = (&q, &per);
            s.spawn(move || {
                let a = agent(1);
                let mut r = Rng::new(1000 + c as u64);
                let mut local: HashMap<&'static str, (Tally, usize)> = HashMap::new();
                let mut n = 0;
                while Instant::now() < deadline && n < 1_000_000 {
                    n += 1;
                    let mut x = r.below(100) as u32;
                    let k = mix.iter().find(|(_, wt)| {
                        if x < *wt {
                            true
                        } else {
                            x -= wt;
                            false
                        }
                    });
                    let k = k.map(|k| k.0).unwrap_or(Kind::ExactPrincipal);
                    let (p, b) = q.make(k, &mut r);
                    let (lat, res) = run_query(&a, t, &p, &b);
                    let e = local.entry(k.name()).or_default();
                    e.0.lat.0.push(lat);
                    match res {
                        Ok((h, _)) => {
                            e.0.ok_events += 1;
                            e.1 += h;
                        }
                        Err(err) => {
                            e.0.errors += 1;
                            e.0.first_error.get_or_insert(err);
                        }
                    }
                }
                let mut g = per.lock().unwrap_or_else(|p| p.into_inner());
                for (k, (tl, h)) in local {
                    let e = g.entry(k).or_default();
                    e.0.add(tl);
                    e.1 += h;
                }
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let per = per.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut kinds = Map::new();
    let mut total = 0usize;
    for (k, (tl, h)) in &per {
        total += tl.lat.0.len();
        kinds.insert(
            k.to_string(),
            json!({"requests": tl.lat.0.len(), "errors": tl.errors, "first_error": tl.first_error,
                "mean_hits": r3(*h as f64 / tl.ok_events.max(1) as f64), "latency": tl.lat.summary()}),
        );
    }
    let out = json!({"kind": "search", "mode": "mixed", "label": label, "clients": clients, "db_events": db_events,
        "queries_per_s": r3(total as f64 / wall), "per_kind": kinds});
    emit(merge(out, watch.finish()));
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Soak

#[derive(clap::Args, Clone)]
struct SoakArgs {
    /// Seed of the event stream
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First event index (events already stored must be below it: H2O event ids derive from it)
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Events of this stream already stored (indexes 0..N), for the search windows
    #[arg(long, default_value_t = 0)]
    db_events: u64,
    #[arg(long, default_value_t = 3600.0)]
    seconds: f64,
    /// Seconds per latency window: one RESULT line per kind and window
    #[arg(long, default_value_t = 300.0)]
    window: f64,
    /// Bulk events per second: half Pangea `v2/log`, half H2O `batchCreate`
    #[arg(long, default_value_t = 15_000.0)]
    bulk_rate: f64,
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Connections per bulk dialect
    #[arg(long, default_value_t = 2)]
    bulk_conns: usize,
    /// Single-event requests per second: half Pangea `v1/log`, half H2O create
    #[arg(long, default_value_t = 3_000.0)]
    single_rate: f64,
    /// Clients per single-event dialect
    #[arg(long, default_value_t = 16)]
    single_clients: usize,
    /// Searches per second: H2O exact principal (40%) and workspace (20%), Pangea word (25%), H2O
    /// resource regex (10%) and action regex (5%)
    #[arg(long, default_value_t = 20.0)]
    search_rate: f64,
    #[arg(long, default_value_t = 4)]
    search_clients: usize,
    #[arg(long, default_value = "soak")]
    label: String,
}

/// Latencies of one soak, by (window, kind).
type SoakTallies = Mutex<BTreeMap<(u64, &'static str), Tally>>;

/// Paced loop: call `f(intended)` at `t0 + phase + k * interval` until `end` (open loop: a late
/// call is made at once and its latency counts from the intended time). `progress` holds the
/// window of the next intended call once the previous one finished.
fn paced(
    t0: Instant,
    end: Instant,
    interval: f64,
    phase: f64,
    window: f64,
    progress: &AtomicU64,
    mut f: impl FnMut(Instant),
) {
    let mut k = 0u64;
    loop {
        let offset = phase + k as f64 * interval;
        let intended = t0 + Duration::from_secs_f64(offset);
        progress.store((offset / window) as u64, Ordering::Release);
        if intended >= end {
            progress.store(u64::MAX, Ordering::Release);
            return;
        }
        let now = Instant::now();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        f(intended);
        k += 1;
    }
}

fn soak_record(
    tallies: &SoakTallies,
    t0: Instant,
    window: f64,
    kind: &'static str,
    intended: Instant,
    res: Result<u64, String>,
) {
    let lat = ms(intended.elapsed());
    let w = (intended.duration_since(t0).as_secs_f64() / window) as u64;
    let mut g = tallies.lock().unwrap_or_else(|p| p.into_inner());
    let t = g.entry((w, kind)).or_default();
    t.lat.0.push(lat);
    match res {
        Ok(n) => t.ok_events += n,
        Err(e) => {
            t.errors += 1;
            t.first_error.get_or_insert(e);
        }
    }
}

fn soak(t: &Target, a: &SoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.window > 0.0 && a.seconds > 0.0 && a.batch > 0,
        "--seconds, --window and --batch must be positive"
    );
    let w = World::new();
    let probe = json!({"query": "text:ka", "limit": 1, "max_results": 1, "verbose": false}).to_string();
    let fts_form = if run_query(&agent(1), t, "/pangea/v1/search", &probe).1.is_ok() { "text:{w}" } else { "{w}" };
    let q = Queries::new(a.db_events, a.seed, fts_form.to_string());
    let next = AtomicU64::new(a.start);
    let tallies: SoakTallies = Mutex::new(BTreeMap::new());
    // (kind, dialect, workers, interval between one worker's calls)
    let mut plan: Vec<(&'static str, &'static str, usize, f64)> = Vec::new();
    for (kind, dialect) in [("pangea_bulk", "pangea"), ("h2o_bulk", "h2o")] {
        if a.bulk_rate > 0.0 && a.bulk_conns > 0 {
            plan.push((kind, dialect, a.bulk_conns, a.batch as f64 * a.bulk_conns as f64 / (a.bulk_rate / 2.0)));
        }
    }
    for (kind, dialect) in [("pangea_single", "pangea"), ("h2o_single", "h2o")] {
        if a.single_rate > 0.0 && a.single_clients > 0 {
            plan.push((kind, dialect, a.single_clients, a.single_clients as f64 / (a.single_rate / 2.0)));
        }
    }
    if a.search_rate > 0.0 && a.search_clients > 0 {
        plan.push(("search", "", a.search_clients, a.search_clients as f64 / a.search_rate));
    }
    let workers: usize = plan.iter().map(|p| p.2).sum();
    let progress: Vec<AtomicU64> = (0..workers).map(|_| AtomicU64::new(0)).collect();
    let mix: [(Kind, u32, &'static str); 5] = [
        (Kind::ExactPrincipal, 40, "h2o_exact_principal"),
        (Kind::ExactWorkspace, 20, "h2o_exact_workspace_1h"),
        (Kind::FtsWord, 25, "pangea_word"),
        (Kind::RegexWindow, 10, "h2o_regex_resource"),
        (Kind::ActionRegexWindow, 5, "h2o_regex_action"),
    ];
    eprintln!(
        "soak: {:.0} s, bulk {:.0} events/s (batches of {}), single {:.0} requests/s, search {:.1}/s, windows of {:.0} s",
        a.seconds, a.bulk_rate, a.batch, a.single_rate, a.search_rate, a.window
    );
    let t0 = Instant::now() + Duration::from_millis(200);
    let end = t0 + Duration::from_secs_f64(a.seconds);
    let (w, q, next, tallies, progress) = (&w, &q, &next, &tallies, &progress);
    std::thread::scope(|s| {
        let mut slot = 0;
        for &(kind, dialect, n, interval) in &plan {
            for i in 0..n {
                let phase = interval * i as f64 / n as f64;
                let prog = &progress[slot];
                slot += 1;
                s.spawn(move || {
                    let ag = agent(1);
                    let mut r = Rng::new(a.seed ^ (0x50a4 + slot as u64));
                    paced(t0, end, interval, phase, a.window, prog, |intended| {
                        let res = match kind {
                            "pangea_bulk" | "h2o_bulk" => {
                                let lo = next.fetch_add(a.batch, Ordering::Relaxed);
                                let items: Vec<Value> = (lo..lo + a.batch)
                                    .map(|i| {
                                        let e = w.event(a.seed, i);
                                        if dialect == "pangea" {
                                            json!({"event": e.pangea_event(w)})
                                        } else {
                                            e.h2o_batch_item(w)
                                        }
                                    })
                                    .collect();
                                let (url, body) = if dialect == "pangea" {
                                    (format!("{}/pangea/v2/log", t.url), json!({"events": items}))
                                } else {
                                    (format!("{}/v1/events:batchCreate", t.url), json!({"requests": items}))
                                };
                                let (status, text) = post(&ag, &url, &t.key, &body.to_string());
                                if status != 200 {
                                    Err(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()))
                                } else if dialect == "h2o" && !text.contains("\"failedRequests\":{}") {
                                    Err(format!("failedRequests: {}", text.chars().rev().take(300).collect::<String>()))
                                } else {
                                    Ok(a.batch)
                                }
                            }
                            "pangea_single" | "h2o_single" => {
                                let e = w.event(a.seed, next.fetch_add(1, Ordering::Relaxed));
                                let (url, body) = if dialect == "pangea" {
                                    (
                                        format!("{}/pangea/v1/log", t.url),
                                        json!({"event": e.pangea_event(w)}).to_string(),
                                    )
                                } else {
                                    (format!("{}/v1/events?eventId={}", t.url, e.uid), e.h2o_event(w).to_string())
                                };
                                let (status, text) = post(&ag, &url, &t.key, &body);
                                if status == 200 {
                                    Ok(1)
                                } else {
                                    Err(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()))
                                }
                            }
                            _ => {
                                let mut x = r.below(100) as u32;
                                let (k, name) = mix
                                    .iter()
                                    .find(|(_, wt, _)| {
                                        if x < *wt {
                                            true
                                        } else {
                                            x -= wt;
                                            false
                                        }
                                    })
                                    .map(|m| (m.0, m.2))
                                    .unwrap_or((Kind::ExactPrincipal, "h2o_exact_principal"));
                                let stored = a.db_events + next.load(Ordering::Relaxed).saturating_sub(a.start);
                                let (p, b) = q.make_at(k, &mut r, stored);
                                let res = run_query(&ag, t, &p, &b).1.map(|_| 0);
                                soak_record(tallies, t0, a.window, name, intended, res.clone());
                                res
                            }
                        };
                        soak_record(tallies, t0, a.window, kind, intended, res);
                    });
                });
            }
        }
        // Report each window once every worker is past it.
        let mut emitted = 0u64;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let done = progress.iter().map(|p| p.load(Ordering::Acquire)).min().unwrap_or(u64::MAX);
            let last = (a.seconds / a.window).ceil() as u64;
            while emitted < done.min(last) {
                soak_emit(tallies, a, emitted);
                emitted += 1;
            }
            if done == u64::MAX {
                break;
            }
        }
    });
    Ok(())
}

fn soak_emit(tallies: &SoakTallies, a: &SoakArgs, window: u64) {
    let taken: Vec<(&'static str, Tally)> = {
        let mut g = tallies.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<_> = g.keys().filter(|(w, _)| *w == window).copied().collect();
        keys.into_iter().filter_map(|k| g.remove(&k).map(|t| (k.1, t))).collect()
    };
    let span = a.window.min(a.seconds - window as f64 * a.window);
    for (kind, t) in taken {
        emit(
            json!({"kind": "soak", "label": a.label, "window": window, "window_start_s": r3(window as f64 * a.window),
            "window_s": r3(span), "op": kind, "requests": t.lat.0.len(), "events": t.ok_events,
            "events_per_s": r3(t.ok_events as f64 / span), "requests_per_s": r3(t.lat.0.len() as f64 / span),
            "errors": t.errors, "first_error": t.first_error, "latency": t.lat.summary()}),
        );
    }
}

/// GETs a path; returns (status, body). Transport errors are status 0.
fn get(agent: &ureq::Agent, url: &str, key: &str) -> (u16, String) {
    match agent.get(url).header("Authorization", &format!("Bearer {key}")).call() {
        Ok(mut r) => {
            let status = r.status().as_u16();
            (status, r.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// The UI's timeline and top values, one kind at a time (one client): an admin key over the last
/// 24 hours, 7 days and all time; a key limited to the busiest workspace; a query (counted from
/// the rows, under the server's row budget).
fn aggregate(t: &Target, per_kind: usize, label: &str) -> anyhow::Result<()> {
    let a = agent(1);
    let w = World::new();
    let busiest = format!("workspaces/{}", w.workspaces[0]);
    let body = json!({"name": "bench-aggregate", "scopes": ["search"], "workspaces": [busiest]}).to_string();
    let (status, text) = post(&a, &format!("{}/api/v1/keys", t.url), &t.key, &body);
    anyhow::ensure!(status == 201, "cannot create a workspace key: HTTP {status} {text}");
    let limited: Value = serde_json::from_str(&text)?;
    let limited = limited["secret"].as_str().unwrap_or_default().to_string();
    let enc = |s: &str| serde_urlencoded::to_string([("v", s)]).unwrap_or_default()[2..].to_string();
    let actor = enc(&format!("actor:\"{}\"", w.principals[0]));
    let kinds: [(&str, String, &str); 6] = [
        ("agg_24h", "start=24h".into(), &t.key),
        ("agg_7d", "start=7d".into(), &t.key),
        ("agg_all_time", "start=1970-01-01T00:00:00Z".into(), &t.key),
        ("agg_24h_workspace_key", "start=24h".into(), &limited),
        ("agg_all_time_workspace_key", "start=1970-01-01T00:00:00Z".into(), &limited),
        ("agg_24h_query_actor", format!("start=24h&query={actor}"), &t.key),
    ];
    for (name, params, key) in kinds {
        let url = format!("{}/api/v1/aggregate?{params}", t.url);
        for _ in 0..3 {
            let _ = get(&a, &url, key);
        }
        let watch = Watch::start(t.pid);
        let mut tl = Tally::default();
        let (mut total, mut complete) = (0u64, true);
        let deadline = Instant::now() + Duration::from_secs(120);
        for _ in 0..per_kind {
            if Instant::now() > deadline {
                break;
            }
            let t0 = Instant::now();
            let (status, text) = get(&a, &url, key);
            tl.lat.0.push(ms(t0.elapsed()));
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status == 200 && v["total"].is_u64() {
                tl.ok_events += 1;
                total = v["total"].as_u64().unwrap_or(0);
                complete = v["complete"].as_bool().unwrap_or(false);
            } else {
                tl.errors += 1;
                tl.first_error.get_or_insert(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()));
            }
        }
        let out = json!({"kind": "aggregate", "query": name, "label": label, "requests": tl.lat.0.len(),
            "errors": tl.errors, "first_error": tl.first_error, "events_counted": total, "complete": complete,
            "latency": tl.lat.summary()});
        emit(merge(out, watch.finish()));
    }
    Ok(())
}

/// Searches on the custom fields of the `six` shape, one kind at a time (one client), with the
/// Pangea SDK's defaults (limit 20, max_results 10,000, verbose): exact and range filters.
fn custom_search(t: &Target, db_events: u64, config_id: &str, per_kind: usize, label: &str) -> anyhow::Result<()> {
    let w = World::new();
    let a = agent(1);
    let n = db_events.max(1);
    type MakeQuery<'a> = &'a dyn Fn(&mut Rng) -> String;
    let kinds: [(&str, MakeQuery); 5] = [
        ("exact_user", &|r: &mut Rng| format!("user={}", w.principals[r.skewed(w.principals.len(), 1.6)])),
        ("exact_amount", &|r: &mut Rng| format!("amount={}", r.below(AMOUNT_RANGE as usize))),
        ("range_amount_1pct", &|r: &mut Rng| {
            let lo = r.below((AMOUNT_RANGE - AMOUNT_RANGE / 100) as usize);
            format!("amount>={lo} AND amount<{}", lo + (AMOUNT_RANGE / 100) as usize)
        }),
        ("range_at_1h", &|r: &mut Rng| {
            let t0 = BASE_US + r.below(n as usize) as i64 * STEP_US;
            format!("at>={} AND at<{}", rfc3339(t0), rfc3339(t0 + 3_600_000_000))
        }),
        ("exact_failed", &|_: &mut Rng| "ok=false".to_string()),
    ];
    for (name, make) in kinds {
        let mut r = Rng::new(11 + name.len() as u64);
        let body = |q: String| json!({"query": q, "config_id": config_id}).to_string();
        for _ in 0..5 {
            let _ = run_query(&a, t, "/pangea/v1/search", &body(make(&mut r)));
        }
        let watch = Watch::start(t.pid);
        let mut tl = Tally::default();
        let mut hit_sum = 0usize;
        let mut count_sum = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..per_kind {
            if Instant::now() > deadline {
                break;
            }
            let t0 = Instant::now();
            let (status, text) = post(&a, &format!("{}/pangea/v1/search", t.url), &t.key, &body(make(&mut r)));
            tl.lat.0.push(ms(t0.elapsed()));
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match (status, v["result"]["events"].as_array()) {
                (200, Some(events)) => {
                    tl.ok_events += 1;
                    hit_sum += events.len();
                    count_sum += v["result"]["count"].as_u64().unwrap_or(0);
                }
                _ => {
                    tl.errors += 1;
                    tl.first_error
                        .get_or_insert(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()));
                }
            }
        }
        let ok = tl.ok_events.max(1) as f64;
        let out = json!({"kind": "search", "mode": "isolated", "query": format!("custom_{name}"), "label": label,
            "clients": 1, "db_events": db_events, "requests": tl.lat.0.len(), "errors": tl.errors,
            "first_error": tl.first_error, "mean_hits": r3(hit_sum as f64 / ok), "mean_count": r3(count_sum as f64 / ok),
            "latency": tl.lat.summary()});
        emit(merge(out, watch.finish()));
    }
    Ok(())
}

fn paging(t: &Target, pages: usize, page_size: usize, label: &str) -> anyhow::Result<()> {
    let a = agent(1);
    let filter = json!({"startEventTime": rfc3339(BASE_US - 3_600_000_000)});
    let mut token = String::new();
    let mut lat = Vec::with_capacity(pages);
    let mut errors = 0;
    let mut first_error = None;
    let watch = Watch::start(t.pid);
    for _ in 0..pages {
        let body = json!({"filter": filter, "pageSize": page_size, "pageToken": token}).to_string();
        let t0 = Instant::now();
        let (status, text) = post(&a, &format!("{}/v1/events:search", t.url), &t.key, &body);
        lat.push(ms(t0.elapsed()));
        if status != 200 {
            errors += 1;
            first_error.get_or_insert(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
            break;
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        token = v["nextPageToken"].as_str().unwrap_or("").to_string();
        if token.is_empty() {
            break;
        }
    }
    let n = lat.len();
    let first10 = Lat(lat.iter().take(10).copied().collect());
    let last10 = Lat(lat.iter().skip(n.saturating_sub(10)).copied().collect());
    let out = json!({"kind": "paging", "label": label, "pages": n, "page_size": page_size, "errors": errors,
        "first_error": first_error, "page1_ms": r3(lat.first().copied().unwrap_or(f64::NAN)),
        "page_last_ms": r3(lat.last().copied().unwrap_or(f64::NAN)),
        "pages_1_10_p50_ms": r3(first10.pct(50.0)), "pages_last10_p50_ms": r3(last10.pct(50.0)),
        "all_pages": Lat(lat).summary()});
    emit(merge(out, watch.finish()));
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Raw SQLite baseline: the same rows into trailkeep's schema, as the writer inserts them.

/// A row prepared outside the timed part.
struct Row {
    uid: [u8; 16],
    received_at: i64,
    event_time: i64,
    workspace: String,
    actor: String,
    action: String,
    source_name: String,
    target: String,
    source_ip: String,
    status: Option<String>,
    status_code: Option<i64>,
    read_only: bool,
    typ: i64,
    hash: [u8; 32],
    envelope: String,
    fts: String,
}

fn prepare_row(w: &World, e: &Ev, received_at: i64) -> Row {
    // The envelope as the H2O adapter builds it (Pangea-form event), canonical JSON, hashed.
    let mut ev = Map::new();
    let meta: Map<String, Value> = e.metadata.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    ev.insert("action".into(), json!(w.actions[e.action]));
    ev.insert("actor".into(), json!(w.principals[e.principal]));
    ev.insert("event_id".into(), json!(e.uid.to_string()));
    ev.insert("event_source".into(), json!(w.sources[e.source]));
    ev.insert("message".into(), json!(e.message));
    ev.insert("metadata".into(), Value::Object(meta));
    ev.insert("read_only".into(), json!(e.read_only));
    ev.insert("request_parameters".into(), json!({}));
    ev.insert("source".into(), json!(e.ip));
    ev.insert("status".into(), json!(e.status_code.to_string()));
    ev.insert("status_message".into(), json!(if e.status_code == 0 { "" } else { "request failed" }));
    ev.insert("target".into(), json!(e.resource));
    ev.insert("tenant_id".into(), json!(format!("workspaces/{}", w.workspaces[e.workspace])));
    ev.insert("timestamp".into(), json!(rfc3339(e.time_us)));
    ev.insert("type".into(), json!(if e.system { "TYPE_SYSTEM" } else { "TYPE_API" }));
    ev.insert("user_agent".into(), json!(w.agents[e.agent]));
    let env = json!({"event": Value::Object(ev), "received_at": rfc3339(received_at)});
    let envelope = trailkeep::event::canonical::to_canonical_string(&env);
    let hash: [u8; 32] = sha2::Sha256::digest(envelope.as_bytes()).into();
    Row {
        uid: *e.uid.as_bytes(),
        received_at,
        event_time: e.time_us,
        workspace: format!("workspaces/{}", w.workspaces[e.workspace]),
        actor: w.principals[e.principal].clone(),
        action: w.actions[e.action].clone(),
        source_name: w.sources[e.source].clone(),
        target: e.resource.clone(),
        source_ip: e.ip.clone(),
        status: Some(e.status_code.to_string()),
        status_code: Some(e.status_code as i64),
        read_only: e.read_only,
        typ: if e.system { 2 } else { 1 },
        hash,
        envelope,
        fts: e.fts_body(w),
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn sqlite_baseline(
    dir: &std::path::Path,
    r: &Range,
    batch: u64,
    buffers: &str,
    label: &str,
    progress: u64,
) -> anyhow::Result<()> {
    use rusqlite::{OptionalExtension, params};
    let w = World::new();
    let conn = trailkeep::store::open_rw(dir)?;
    let mut interned: HashMap<String, i64> = HashMap::new();
    let mut intern = |conn: &rusqlite::Connection, s: &str| -> rusqlite::Result<i64> {
        if let Some(id) = interned.get(s) {
            return Ok(*id);
        }
        let id = match conn
            .prepare_cached("SELECT id FROM strings WHERE value = ?1")?
            .query_row([s], |r| r.get(0))
            .optional()?
        {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO strings(value) VALUES (?1)")?.execute([s])?;
                conn.last_insert_rowid()
            }
        };
        interned.insert(s.to_string(), id);
        Ok(id)
    };
    let (mut seq, mut buffer): (i64, i64) = conn.query_row(
        "SELECT (SELECT COALESCE(MAX(seq) + 1, 0) FROM events), (SELECT COALESCE(MAX(idx) + 1, 0) FROM buffers)",
        [],
        |x| Ok((x.get(0)?, x.get(1)?)),
    )?;
    let mut in_tx = Duration::ZERO;
    let mut lat = Lat::default();
    let mut done = 0u64;
    let t_all = Instant::now();
    let watch = Watch::start(None);
    let mut rng = Rng::new(99);
    // Free-text rows in batches, as the writer stores them (store::writer: pending rows go in
    // with the transaction that brings them to 4x its own events, between 1,024 and 16,384).
    let mut fts_pending: Vec<(i64, String)> = Vec::new();
    let store_fts = |conn: &rusqlite::Connection, pending: &mut Vec<(i64, String)>| -> rusqlite::Result<()> {
        for (seq, body) in pending.drain(..) {
            conn.prepare_cached("INSERT INTO events_fts(rowid, body) VALUES (?1, ?2)")?.execute(params![seq, body])?;
        }
        Ok(())
    };
    while done < r.events {
        let n = batch.min(r.events - done);
        let rows: Vec<Row> =
            (0..n).map(|k| prepare_row(&w, &w.event(r.seed, r.start + done + k), now_us() + k as i64)).collect();
        let t0 = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        // Group by workspace as the writer does: one buffer per workspace per commit.
        let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
        match buffers {
            "workspace" => {
                for row in &rows {
                    groups.entry(row.workspace.as_str()).or_default().push(row);
                }
            }
            _ => {
                groups.insert("", rows.iter().collect());
            }
        }
        for (ws, g) in &groups {
            let ws_id = intern(&conn, if ws.is_empty() { &g[0].workspace } else { ws })?;
            let first = seq;
            for row in g {
                let actor = intern(&conn, &row.actor)?;
                let action = intern(&conn, &row.action)?;
                let src = intern(&conn, &row.source_name)?;
                conn.prepare_cached(
                    "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                        target, source, status, status_code, read_only, type, buffer, hash, envelope)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                )?
                .execute(params![
                    seq,
                    &row.uid[..],
                    0i64,
                    row.received_at,
                    row.event_time,
                    ws_id,
                    actor,
                    action,
                    src,
                    row.target,
                    row.source_ip,
                    row.status,
                    row.status_code,
                    row.read_only,
                    row.typ,
                    buffer,
                    &row.hash[..],
                    row.envelope,
                ])?;
                fts_pending.push((seq, row.fts.clone()));
                seq += 1;
            }
            if buffers != "none" {
                let mut root = [0u8; 32];
                let mut rh = [0u8; 32];
                for k in 0..4 {
                    root[k * 8..k * 8 + 8].copy_from_slice(&rng.next().to_le_bytes());
                    rh[k * 8..k * 8 + 8].copy_from_slice(&rng.next().to_le_bytes());
                }
                conn.prepare_cached(
                    "INSERT INTO buffers(idx, first_seq, count, workspace, buffer_root, root_hash, published_at, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![buffer, first, g.len() as i64, ws_id, &root[..], &rh[..], now_us(), &[0u8; 64][..]])?;
                buffer += 1;
            }
        }
        if fts_pending.len() >= (4 * n as usize).clamp(1_024, 16_384) || done + n == r.events {
            store_fts(&conn, &mut fts_pending)?;
            conn.prepare_cached("UPDATE fts_state SET indexed_to = ?1")?.execute([seq - 1])?;
        }
        conn.execute_batch("COMMIT")?;
        let d = t0.elapsed();
        in_tx += d;
        lat.0.push(ms(d));
        done += n;
        if progress > 0 && done % progress < batch {
            eprintln!("  .. {done} events, {:.0}/s in transactions", done as f64 / in_tx.as_secs_f64());
        }
    }
    let wall = t_all.elapsed().as_secs_f64();
    let total_events: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |x| x.get(0))?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |x| x.get(0))?;
    let out = json!({"kind": "ingest", "system": "sqlite-raw", "label": label, "events": done, "start": r.start,
        "batch": batch, "buffers": buffers, "events_per_s": r3(done as f64 / in_tx.as_secs_f64()),
        "events_per_s_incl_prepare": r3(done as f64 / wall), "latency": lat.summary(), "errors": 0,
        "db_events": total_events, "page_size": page_size, "db_bytes": db_bytes(dir)});
    emit(merge(out, watch.finish()));
    Ok(())
}

/// The server's writer in-process: `server::open` + `writer.append`, `conns` concurrent appenders.
fn writer_baseline(
    dir: &std::path::Path,
    r: &Range,
    batch: u64,
    conns: usize,
    label: &str,
    progress: u64,
) -> anyhow::Result<()> {
    use trailkeep::event::{EventType, NewEvent, Origin};
    let w = Arc::new(World::new());
    let opened = trailkeep::server::open(trailkeep::config::Config::for_tests(dir))?;
    let writer = opened.state.writer.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let to_new = |e: &Ev| -> NewEvent {
        let row = prepare_row(&w, e, 0);
        let env: Value = serde_json::from_str(&row.envelope).unwrap_or(Value::Null);
        let event = env["event"].as_object().cloned().unwrap_or_default();
        NewEvent {
            uid: e.uid,
            origin: Origin::H2o,
            workspace: row.workspace,
            actor: row.actor,
            action: row.action,
            event_source: row.source_name,
            target: Some(row.target),
            source: Some(row.source_ip),
            status: row.status,
            status_code: row.status_code,
            read_only: row.read_only,
            event_type: if e.system { EventType::System } else { EventType::Api },
            event_time: Some(e.time_us),
            fts_body: row.fts,
            event,
            signature: None,
            public_key: None,
        }
    };
    let nb = r.events.div_ceil(batch);
    let make = |b: u64| -> Vec<NewEvent> {
        let lo = r.start + b * batch;
        let hi = (lo + batch).min(r.start + r.events);
        (lo..hi).map(|i| to_new(&w.event(r.seed, i))).collect()
    };
    let pre = prebuild(r.events, nb, make);
    let watch = Watch::start(Some(std::process::id()));
    let (tally, wall) = run_batches(conns, nb, progress, batch, |_, b| {
        let evs = take_or_build(&pre, b, make);
        let t0 = Instant::now();
        let res = rt.block_on(writer.append(evs));
        let lat = ms(t0.elapsed());
        match res {
            Ok(a) => (Ok(a.outcomes.len() as u64), lat),
            Err(e) => (Err(e.to_string()), lat),
        }
    });
    let watched = watch.finish();
    rt.block_on(writer.stop());
    drop(writer);
    drop(opened.state);
    let _ = opened.writer_thread.join();
    let out = json!({"kind": "ingest", "system": "trailkeep-writer-inprocess", "label": label, "events": tally.ok_events,
        "start": r.start, "batch": batch, "conns": conns, "events_per_s": r3(tally.ok_events as f64 / wall),
        "errors": tally.errors, "first_error": tally.first_error, "latency": tally.lat.summary(), "db_bytes": db_bytes(dir)});
    emit(merge(out, watched));
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL baseline

const PG_COLS: &str = "uid, origin, received_at, event_time, workspace, actor, action, event_source, target, source, status, status_code, read_only, type, hash, body, envelope";
const PG_NCOLS: usize = 17;

fn pg_baseline(pg: &str, r: &Range, batch: u64, conns: usize, label: &str, progress: u64) -> anyhow::Result<()> {
    use postgres::types::ToSql;
    let w = World::new();
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(Mutex::new(postgres::Client::connect(pg, postgres::NoTls)?));
    }
    let stmt_sql = |n: usize| -> String {
        let mut s = format!("INSERT INTO events ({PG_COLS}) VALUES ");
        for row in 0..n {
            if row > 0 {
                s.push(',');
            }
            s.push('(');
            for c in 0..PG_NCOLS {
                if c > 0 {
                    s.push(',');
                }
                let p = row * PG_NCOLS + c + 1;
                s.push_str(&format!("${p}"));
            }
            s.push(')');
        }
        s
    };
    let full = stmt_sql(batch as usize);
    let mut stmts = Vec::new();
    for c in &clients {
        stmts.push(c.lock().unwrap_or_else(|p| p.into_inner()).prepare(&full)?);
    }
    let nb = r.events.div_ceil(batch);
    type P = (
        uuid::Uuid,
        i16,
        i64,
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<i32>,
        bool,
        i16,
        Vec<u8>,
        String,
        String,
    );
    let make = |b: u64| -> Vec<P> {
        let lo = r.start + b * batch;
        let hi = (lo + batch).min(r.start + r.events);
        let rows: Vec<Row> = (lo..hi).map(|i| prepare_row(&w, &w.event(r.seed, i), now_us())).collect();
        rows.into_iter()
            .map(|x| {
                (
                    uuid::Uuid::from_bytes(x.uid),
                    0i16,
                    x.received_at,
                    x.event_time,
                    x.workspace,
                    x.actor,
                    x.action,
                    x.source_name,
                    x.target,
                    x.source_ip,
                    x.status,
                    x.status_code.map(|s| s as i32),
                    x.read_only,
                    x.typ as i16,
                    x.hash.to_vec(),
                    x.fts,
                    x.envelope,
                )
            })
            .collect()
    };
    let pre = prebuild(r.events, nb, make);
    let watch = Watch::start(None);
    let pg_cpu0 = procs_cpu_named("postgres");
    let (tally, wall) = run_batches(conns, nb, progress, batch, |c, b| {
        let vals = take_or_build(&pre, b, make);
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(vals.len() * PG_NCOLS);
        for v in &vals {
            params.extend_from_slice(&[
                &v.0, &v.1, &v.2, &v.3, &v.4, &v.5, &v.6, &v.7, &v.8, &v.9, &v.10, &v.11, &v.12, &v.13, &v.14, &v.15,
                &v.16,
            ]);
        }
        let mut client = clients[c].lock().unwrap_or_else(|p| p.into_inner());
        let t0 = Instant::now();
        let res = if vals.len() == batch as usize {
            client.execute(&stmts[c], &params)
        } else {
            client.execute(stmt_sql(vals.len()).as_str(), &params)
        };
        let lat = ms(t0.elapsed());
        (res.map_err(|e| e.to_string()), lat)
    });
    let mut c0 = clients[0].lock().unwrap_or_else(|p| p.into_inner());
    let total: i64 = c0.query_one("SELECT COUNT(*) FROM events", &[])?.get(0);
    let bytes: i64 = c0.query_one("SELECT pg_total_relation_size('events')", &[])?.get(0);
    let out = json!({"kind": "ingest", "system": "postgresql", "label": label, "events": tally.ok_events, "start": r.start,
        "batch": batch, "conns": conns, "events_per_s": r3(tally.ok_events as f64 / wall), "errors": tally.errors,
        "first_error": tally.first_error, "latency": tally.lat.summary(), "db_events": total, "db_bytes": bytes});
    let mut watched = watch.finish();
    // The database server is the PostgreSQL processes: count their CPU as server CPU, not as noise.
    let pg_cpu = procs_cpu_named("postgres") - pg_cpu0;
    watched["server_cpu_s"] = json!(r3(pg_cpu));
    let other = watched["other_cpu_s"].as_f64().unwrap_or(0.0);
    watched["other_cpu_s"] = json!(r3((other - pg_cpu).max(0.0)));
    emit(merge(out, watched));
    Ok(())
}

fn pg_search(pg: &str, db_events: u64, seed: u64, per_kind: usize, label: &str) -> anyhow::Result<()> {
    let _ = seed;
    let w = World::new();
    let mut c = postgres::Client::connect(pg, postgres::NoTls)?;
    let span_end = BASE_US + db_events as i64 * STEP_US + 2 * JITTER_US;
    let cols = "seq, uid, received_at, event_time, workspace, hash, envelope";
    for (name, sql) in [
        (
            "exact_principal_50",
            format!(
                "SELECT {cols} FROM events WHERE actor = $1 AND event_time >= $2 AND event_time < $3 ORDER BY event_time DESC, seq DESC LIMIT 51"
            ),
        ),
        ("fts_word_50", format!("SELECT {cols} FROM events WHERE body ~ $1 ORDER BY seq DESC LIMIT 50")),
        (
            "regex_resource_100k_window",
            format!(
                "SELECT {cols} FROM events WHERE target ~ $1 AND event_time >= $2 AND event_time < $3 ORDER BY event_time DESC, seq DESC LIMIT 51"
            ),
        ),
    ] {
        let stmt = c.prepare(&sql)?;
        let mut r = Rng::new(7);
        let mut lat = Lat::default();
        let mut hit = 0usize;
        for k in 0..per_kind + 5 {
            let t0 = Instant::now();
            let rows = match name {
                "exact_principal_50" => {
                    let p = &w.principals[r.skewed(w.principals.len(), 1.6)];
                    c.query(&stmt, &[p, &(BASE_US - 3_600_000_000), &span_end])?
                }
                "fts_word_50" => {
                    let word = format!("\\m{}\\M", w.words[r.below(1000)]);
                    c.query(&stmt, &[&word])?
                }
                _ => {
                    let first = r.below((db_events.max(100_001) - 100_000) as usize) as i64;
                    let t0 = BASE_US + first * STEP_US;
                    let pat = format!("/[a-z]+s/[a-z]+-{:06}$", r.below(1_000_000));
                    c.query(&stmt, &[&pat, &t0, &(t0 + 100_000 * STEP_US)])?
                }
            };
            if k >= 5 {
                lat.0.push(ms(t0.elapsed()));
                hit += rows.len();
            }
        }
        emit(json!({"kind": "search", "mode": "isolated", "system": "postgresql", "query": name, "label": label,
            "mean_hits": r3(hit as f64 / per_kind.max(1) as f64), "latency": lat.summary()}));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Report

fn report(file: &std::path::Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(file)?;
    let mut results: Vec<Value> = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        if let Some(j) = line.strip_prefix("RESULT ")
            && let Ok(v) = serde_json::from_str::<Value>(j)
        {
            results.push(v);
        }
    }
    if results.iter().any(|v| scale_of(v).is_some()) {
        report_scale(&results);
        return Ok(());
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let f = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
    // Ingest: median of the measured runs (label starting with "run") per system.
    let mut ingest: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for v in &results {
        if (s(v, "kind") == "ingest" || s(v, "kind") == "single") && s(v, "label").starts_with("run") {
            ingest.entry(format!("{}|{}", s(v, "kind"), s(v, "system"))).or_default().push(v);
        }
    }
    let rate = |key: &str| ingest.get(key).map(|v| median(v.iter().map(|x| f(x, "/events_per_s")).collect()));
    let pg = rate("ingest|postgresql");
    let raw = rate("ingest|sqlite-raw");
    println!("### Ingest (median of measured runs after the pre-fill)\n");
    println!(
        "| system | runs | events/s (median) | min–max | p50 ms | p99 ms | errors | server CPU µs/event | disk KB written/event | other CPU (noise) | vs PostgreSQL | vs raw SQLite |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (k, runs) in &ingest {
        let rates: Vec<f64> = runs.iter().map(|x| f(x, "/events_per_s")).collect();
        let med = median(rates.clone());
        let lo = rates.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().cloned().fold(0.0, f64::max);
        let p50 = median(runs.iter().map(|x| f(x, "/latency/p50_ms")).collect());
        let p99 = median(runs.iter().map(|x| f(x, "/latency/p99_ms")).collect());
        let errs: f64 = runs.iter().map(|x| f(x, "/errors")).sum();
        // Server CPU per stored event (HTTP runs: the server process; in-process writer: the whole process).
        let cpu_per_ev = median(runs.iter().map(|x| f(x, "/server_cpu_s") * 1e6 / f(x, "/events")).collect());
        let cpu_col = if cpu_per_ev.is_finite() { format!("{cpu_per_ev:.0}") } else { "–".into() };
        // Share of the 2 cores used by other processes during the runs.
        let dkb = median(runs.iter().map(|x| f(x, "/disk_written_mb") * 1e3 / f(x, "/events")).collect());
        let disk_col = if dkb.is_finite() { format!("{dkb:.1}") } else { "–".into() };
        let noise = median(runs.iter().map(|x| f(x, "/other_cpu_s") / f(x, "/wall_s") / 2.0 * 100.0).collect());
        let noise_col = if noise.is_finite() { format!("{noise:.0}%") } else { "–".into() };
        let ratio = |b: Option<f64>| {
            b.filter(|b| *b > 0.0 && b.is_finite()).map(|b| format!("{:.2}×", med / b)).unwrap_or("–".into())
        };
        let (kind, sys) = k.split_once('|').unwrap_or(("", k));
        let name = if kind == "single" {
            format!("{sys} single-event, {} clients", runs[0].get("clients").and_then(Value::as_u64).unwrap_or(0))
        } else {
            format!(
                "{sys} (batch {}, {} conns)",
                runs[0]["batch"],
                runs[0].get("conns").and_then(Value::as_u64).unwrap_or(1)
            )
        };
        println!(
            "| {name} | {} | {:.0} | {:.0}–{:.0} | {:.1} | {:.1} | {errs} | {cpu_col} | {disk_col} | {noise_col} | {} | {} |",
            runs.len(),
            med,
            lo,
            hi,
            p50,
            p99,
            ratio(pg),
            ratio(raw)
        );
    }
    println!("\n### Pre-fill\n");
    println!("| system | events | events/s | wall s |");
    println!("|---|---|---|---|");
    for v in &results {
        if s(v, "kind") == "ingest" && s(v, "label") == "prefill" {
            let n = f(v, "/events");
            let r = f(v, "/events_per_s");
            println!("| {} | {n:.0} | {r:.0} | {:.0} |", s(v, "system"), n / r);
        }
    }
    println!("\n### Search (isolated = one client, one kind; mixed = concurrent clients, weighted mix)\n");
    println!("| system | query | mode | n | mean hits | p50 ms | p99 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut iso: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for v in &results {
        if s(v, "kind") == "search" && s(v, "mode") == "isolated" {
            let sys = if s(v, "system").is_empty() { "trailkeep-http".to_string() } else { s(v, "system") };
            iso.entry(format!("{sys}|{}", s(v, "query"))).or_default().push(v);
        }
    }
    for (k, runs) in &iso {
        let (sys, q) = k.split_once('|').unwrap_or(("", k));
        let n: f64 = runs.iter().map(|x| f(x, "/latency/n")).sum();
        println!(
            "| {sys} | {q} | isolated ×{} | {n:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {} |",
            runs.len(),
            median(runs.iter().map(|x| f(x, "/mean_hits")).collect()),
            median(runs.iter().map(|x| f(x, "/latency/p50_ms")).collect()),
            median(runs.iter().map(|x| f(x, "/latency/p99_ms")).collect()),
            median(runs.iter().map(|x| f(x, "/latency/max_ms")).collect()),
            runs.iter().map(|x| f(x, "/errors")).filter(|x| x.is_finite()).sum::<f64>().abs()
        );
    }
    let mixed: Vec<&Value> = results.iter().filter(|v| s(v, "kind") == "search" && s(v, "mode") == "mixed").collect();
    if let Some(m0) = mixed.first() {
        let kinds: Vec<String> = m0["per_kind"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        for k in kinds {
            let g = |p: &str| median(mixed.iter().map(|m| f(m, &format!("/per_kind/{k}{p}"))).collect());
            println!(
                "| trailkeep-http | {k} | mixed, {} clients ×{} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0} |",
                m0["clients"],
                mixed.len(),
                g("/requests"),
                g("/mean_hits"),
                g("/latency/p50_ms"),
                g("/latency/p99_ms"),
                g("/latency/max_ms"),
                g("/errors")
            );
        }
        println!(
            "\nmixed throughput: {:.0} queries/s (median)",
            median(mixed.iter().map(|m| f(m, "/queries_per_s")).collect())
        );
    }
    let mut agg: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for v in results.iter().filter(|v| s(v, "kind") == "aggregate") {
        agg.entry(s(v, "query")).or_default().push(v);
    }
    if !agg.is_empty() {
        println!("\n### Timeline and top values (`GET /api/v1/aggregate`, one client)\n");
        println!("| kind | runs | n | events counted | complete | p50 ms | p95 ms | p99 ms | max ms | errors |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for (k, runs) in &agg {
            let g = |p: &str| median(runs.iter().map(|x| f(x, p)).collect());
            println!(
                "| {k} | {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
                runs.len(),
                runs.iter().map(|x| f(x, "/latency/n")).sum::<f64>(),
                g("/events_counted"),
                runs.iter().all(|x| x["complete"] == true),
                g("/latency/p50_ms"),
                g("/latency/p95_ms"),
                g("/latency/p99_ms"),
                g("/latency/max_ms"),
                runs.iter().map(|x| f(x, "/errors")).sum::<f64>()
            );
        }
    }
    let paging: Vec<&Value> = results.iter().filter(|v| s(v, "kind") == "paging").collect();
    if !paging.is_empty() {
        println!("\n### Keyset paging (H2O, unfiltered, pages of 50)\n");
        println!("| runs | pages | page 1–10 p50 ms | last 10 pages p50 ms | all pages p99 ms |");
        println!("|---|---|---|---|---|");
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            paging.len(),
            median(paging.iter().map(|x| f(x, "/pages")).collect()),
            median(paging.iter().map(|x| f(x, "/pages_1_10_p50_ms")).collect()),
            median(paging.iter().map(|x| f(x, "/pages_last10_p50_ms")).collect()),
            median(paging.iter().map(|x| f(x, "/all_pages/p99_ms")).collect())
        );
    }
    let other: Vec<&Value> = results
        .iter()
        .filter(|v| s(v, "kind") == "verify" || s(v, "kind") == "disk" || s(v, "kind") == "rss")
        .collect();
    if !other.is_empty() {
        println!("\n### Verify, disk, memory\n");
        let verify: Vec<f64> =
            other.iter().filter(|v| s(v, "kind") == "verify").map(|v| f(v, "/events_per_s")).collect();
        if !verify.is_empty() {
            println!("- `trailkeep verify`: {:.0} events/s (median of {})", median(verify.clone()), verify.len());
        }
        for v in &other {
            match s(v, "kind").as_str() {
                "disk" => println!(
                    "- disk, {}: {:.0} bytes/event ({:.0} MB for {:.0} events)",
                    s(v, "system"),
                    f(v, "/bytes_per_event"),
                    f(v, "/bytes") / 1e6,
                    f(v, "/events")
                ),
                "rss" => println!("- server peak RSS (VmHWM over the whole run): {:.0} MB", f(v, "/vmhwm_mb")),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The database size a scale-mode result was measured at (label `s<events>-…`).
fn scale_of(v: &Value) -> Option<u64> {
    let label = v.get("label")?.as_str()?;
    label.strip_prefix('s')?.split('-').next()?.parse().ok()
}

/// Scale mode (`benches/run.sh --scale`): every figure at each database size, one column per size.
fn report_scale(results: &[Value]) {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let f = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let mut sizes: Vec<u64> = results.iter().filter_map(scale_of).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let at = |size: u64, pred: &dyn Fn(&Value) -> bool| -> Vec<&Value> {
        results.iter().filter(|v| scale_of(v) == Some(size) && pred(v)).collect()
    };
    let cell = |vals: Vec<f64>, digits: usize| -> String {
        let m = median(vals.into_iter().filter(|x| x.is_finite()).collect());
        if m.is_finite() { format!("{m:.digits$}") } else { "–".into() }
    };
    let measured = |v: &Value| !s(v, "label").ends_with("-prefill");
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: String, per: &dyn Fn(u64) -> String| {
        rows.push((name, sizes.iter().map(|z| per(*z)).collect()));
    };
    row("pre-fill to this size (mixed bulk), events/s".into(), &|z| {
        cell(at(z, &|v| s(v, "kind") == "ingest" && !measured(v)).iter().map(|v| f(v, "/events_per_s")).collect(), 0)
    });
    for (dialect, name) in [("pangea", "Pangea `v2/log`"), ("h2o", "H2O `batchCreate`")] {
        let sys = format!("trailkeep-http-{dialect}");
        row(format!("bulk ingest {name}, 1,000/request, events/s (median)"), &|z| {
            let runs = at(z, &|v| s(v, "kind") == "ingest" && s(v, "system") == sys && measured(v));
            cell(runs.iter().map(|v| f(v, "/events_per_s")).collect(), 0)
        });
    }
    row("single-event H2O, 32 clients, events/s (median)".into(), &|z| {
        cell(at(z, &|v| s(v, "kind") == "single").iter().map(|v| f(v, "/events_per_s")).collect(), 0)
    });
    row("single-event p99 ms".into(), &|z| {
        cell(at(z, &|v| s(v, "kind") == "single").iter().map(|v| f(v, "/latency/p99_ms")).collect(), 1)
    });
    let mut kinds: Vec<String> = results
        .iter()
        .filter(|v| scale_of(v).is_some() && s(v, "kind") == "search" && s(v, "mode") == "isolated")
        .map(|v| s(v, "query"))
        .collect();
    kinds.sort();
    kinds.dedup();
    for k in &kinds {
        let runs = |z: u64| at(z, &|v| s(v, "kind") == "search" && s(v, "mode") == "isolated" && &s(v, "query") == k);
        row(format!("{k}: p50 / p99 ms (mean count)"), &|z| {
            let r = runs(z);
            if r.is_empty() {
                return "–".into();
            }
            format!(
                "{} / {} ({})",
                cell(r.iter().map(|v| f(v, "/latency/p50_ms")).collect(), 2),
                cell(r.iter().map(|v| f(v, "/latency/p99_ms")).collect(), 2),
                cell(r.iter().map(|v| f(v, "/mean_count")).collect(), 0)
            )
        });
    }
    row("paging: pages 1–10 / last 10 of 1,000, p50 ms".into(), &|z| {
        let r = at(z, &|v| s(v, "kind") == "paging");
        if r.is_empty() {
            return "–".into();
        }
        format!(
            "{} / {}",
            cell(r.iter().map(|v| f(v, "/pages_1_10_p50_ms")).collect(), 2),
            cell(r.iter().map(|v| f(v, "/pages_last10_p50_ms")).collect(), 2)
        )
    });
    row("`trailkeep verify`, events/s (median)".into(), &|z| {
        cell(at(z, &|v| s(v, "kind") == "verify").iter().map(|v| f(v, "/events_per_s")).collect(), 0)
    });
    row("server peak RSS (VmHWM while at this size), MB".into(), &|z| {
        cell(at(z, &|v| s(v, "kind") == "rss").iter().map(|v| f(v, "/vmhwm_mb")).collect(), 0)
    });
    row("disk, bytes/event (every file, every index)".into(), &|z| {
        cell(at(z, &|v| s(v, "kind") == "disk").iter().map(|v| f(v, "/bytes_per_event")).collect(), 0)
    });
    row("events stored after the measurements".into(), &|z| {
        cell(at(z, &|v| s(v, "kind") == "disk").iter().map(|v| f(v, "/events")).collect(), 0)
    });
    println!("### Scale: every figure at each database size\n");
    let head: Vec<String> = sizes.iter().map(|z| format!("{z} events")).collect();
    println!("| figure | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(sizes.len()));
    for (name, cells) in rows {
        println!("| {name} | {} |", cells.join(" | "));
    }
}
