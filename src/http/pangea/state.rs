//! The Pangea dialect's state in memory: frozen search snapshots, async results, download
//! capabilities, and the results of committed log requests (for retries).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use crate::configs::AuditConfig;

/// A frozen search result (P9).
#[derive(Clone)]
pub struct Snapshot {
    pub key_id: String,
    /// The config searched (its fields are the download's columns).
    pub config: Arc<AuditConfig>,
    pub seqs: Arc<Vec<i64>>,
    pub verbose: bool,
    pub tree_size: u64,
    pub restriction: Value,
    pub expires_us: i64,
}

/// The stored result of an async request, for `GET request/{id}`.
#[derive(Clone)]
pub struct AsyncResult {
    pub key_id: String,
    pub result: Value,
}

/// What a download capability gives access to.
#[derive(Clone)]
pub struct Download {
    pub snapshot: Snapshot,
    pub format: String,
}

#[derive(Default)]
pub struct PangeaState {
    /// Results of committed log requests by request id, for retries (P27).
    pub logged: Expiring<AsyncResult>,
    pub searches: Expiring<Snapshot>,
    pub requests: Expiring<AsyncResult>,
    pub exports: Expiring<Snapshot>,
    pub downloads: Expiring<Download>,
}

/// What an entry of an [`Expiring`] map holds in memory, roughly (bytes).
pub trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for Snapshot {
    fn weight(&self) -> usize {
        // The seqs dominate (a snapshot shared by a search, an export and a download is counted
        // in each map: an upper bound).
        256 + self.key_id.len() + self.seqs.len() * std::mem::size_of::<i64>() + json_weight(&self.restriction)
    }
}

impl Weight for AsyncResult {
    fn weight(&self) -> usize {
        64 + self.key_id.len() + json_weight(&self.result)
    }
}

impl Weight for Download {
    fn weight(&self) -> usize {
        self.snapshot.weight() + self.format.len()
    }
}

/// About the bytes a JSON value takes in memory.
fn json_weight(v: &Value) -> usize {
    32 + match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(json_weight).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| 32 + k.len() + json_weight(v)).sum(),
        _ => 0,
    }
}

/// Most entries of one map.
const MAX_ENTRIES: usize = 10_000;
/// Most bytes ([`Weight`]) the entries of one map hold: 10,000 snapshots of 10,000 results each
/// would be 800 MB for their 48 hours; past this budget the entries closest to expiry go first
/// (a client paging through a search it started minutes ago keeps it).
pub const MAX_BYTES: usize = 32 << 20;

/// A small expiring map used for search snapshots, async results and download capabilities,
/// bounded in entries and in bytes.
pub struct Expiring<V> {
    inner: Mutex<Entries<V>>,
}

struct Entries<V> {
    map: HashMap<String, (V, i64, usize)>,
    bytes: usize,
}

impl<V: Clone + Weight> Default for Expiring<V> {
    fn default() -> Self {
        Self { inner: Mutex::new(Entries { map: HashMap::new(), bytes: 0 }) }
    }
}

impl<V: Clone + Weight> Expiring<V> {
    pub fn insert(&self, key: String, value: V, expires_us: i64) {
        let now = crate::time::now_micros();
        let weight = value.weight();
        let mut e = self.inner.lock();
        if e.map.len() >= 1000 || e.bytes + weight > MAX_BYTES {
            e.retain(|exp| exp > now);
        }
        if e.map.len() >= MAX_ENTRIES || e.bytes + weight > MAX_BYTES {
            // Drop the entries closest to expiry: down to half the entries, or to three quarters
            // of the bytes, so that eviction does not run on every insert.
            let mut exps: Vec<(i64, usize)> = e.map.values().map(|(_, exp, w)| (*exp, *w)).collect();
            exps.sort_unstable();
            let mut cut = if e.map.len() >= MAX_ENTRIES { exps[exps.len() / 2].0 } else { i64::MIN };
            let target = (MAX_BYTES / 4 * 3).saturating_sub(weight);
            let mut left = e.bytes;
            for (exp, w) in &exps {
                if left <= target {
                    break;
                }
                left -= w;
                cut = cut.max(*exp);
            }
            e.retain(|exp| exp > cut);
        }
        if let Some((_, _, old)) = e.map.insert(key, (value, expires_us, weight)) {
            e.bytes -= old;
        }
        e.bytes += weight;
    }
    pub fn get(&self, key: &str) -> Option<V> {
        let now = crate::time::now_micros();
        self.inner.lock().map.get(key).filter(|(_, exp, _)| *exp > now).map(|(v, _, _)| v.clone())
    }
    /// The entries and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let e = self.inner.lock();
        (e.map.len(), e.bytes)
    }
}

impl<V> Entries<V> {
    fn retain(&mut self, keep: impl Fn(i64) -> bool) {
        let mut gone = 0;
        self.map.retain(|_, (_, exp, w)| {
            let k = keep(*exp);
            if !k {
                gone += *w;
            }
            k
        });
        self.bytes -= gone;
    }
}

/// A random id with a prefix and 32 chars of `[a-z0-9]`.
pub fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = crate::ledger::random_bytes::<32>();
    let s: String = bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
    format!("{prefix}{s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(bytes: usize) -> AsyncResult {
        AsyncResult { key_id: "k".into(), result: Value::String("x".repeat(bytes)) }
    }

    #[test]
    fn bounded_in_bytes_keeping_the_latest_to_expire() {
        let m: Expiring<AsyncResult> = Expiring::default();
        let now = crate::time::now_micros();
        let big = MAX_BYTES / 10;
        for i in 0..100i64 {
            m.insert(format!("r{i}"), result(big), now + 3_600_000_000 + i);
            let (n, bytes) = m.usage();
            assert!(bytes <= MAX_BYTES && n <= 10, "{i}: {n} entries, {bytes} bytes");
        }
        // The entries closest to expiry went; the newest are kept.
        assert!(m.get("r99").is_some() && m.get("r98").is_some());
        assert!(m.get("r0").is_none() && m.get("r80").is_none());
        // Expired entries go first, whatever their size; replacing a key does not count twice.
        let m: Expiring<AsyncResult> = Expiring::default();
        m.insert("old".into(), result(big), now - 1);
        m.insert("a".into(), result(100), now + 1_000_000_000);
        m.insert("a".into(), result(100), now + 1_000_000_000);
        let (_, before) = m.usage();
        for i in 0..9 {
            m.insert(format!("b{i}"), result(big), now + 2_000_000_000);
        }
        assert!(m.get("a").is_some() && m.usage().1 <= MAX_BYTES);
        assert!(before < big + 1000);
    }

    #[test]
    fn bounded_in_entries() {
        let m: Expiring<AsyncResult> = Expiring::default();
        let now = crate::time::now_micros();
        for i in 0..(MAX_ENTRIES as i64 + 10) {
            m.insert(format!("r{i}"), result(1), now + 1_000_000 + i);
        }
        let (n, _) = m.usage();
        assert!((MAX_ENTRIES / 2 - 10..=MAX_ENTRIES).contains(&n), "{n}");
        assert!(m.get(&format!("r{}", MAX_ENTRIES + 9)).is_some());
    }
}
