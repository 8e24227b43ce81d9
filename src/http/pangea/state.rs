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

/// A small expiring map used for search snapshots, async results and download capabilities.
pub struct Expiring<V> {
    inner: Mutex<HashMap<String, (V, i64)>>,
}

impl<V: Clone> Default for Expiring<V> {
    fn default() -> Self {
        Self { inner: Mutex::new(HashMap::new()) }
    }
}

impl<V: Clone> Expiring<V> {
    pub fn insert(&self, key: String, value: V, expires_us: i64) {
        let now = crate::time::now_micros();
        let mut m = self.inner.lock();
        if m.len() >= 1000 {
            m.retain(|_, (_, exp)| *exp > now);
        }
        if m.len() >= 10_000 {
            // Bounded: drop the entries closest to expiry.
            let mut exps: Vec<i64> = m.values().map(|(_, e)| *e).collect();
            exps.sort_unstable();
            let cut = exps[exps.len() / 2];
            m.retain(|_, (_, exp)| *exp > cut);
        }
        m.insert(key, (value, expires_us));
    }
    pub fn get(&self, key: &str) -> Option<V> {
        let now = crate::time::now_micros();
        self.inner.lock().get(key).filter(|(_, exp)| *exp > now).map(|(v, _)| v.clone())
    }
}

/// A random id with a prefix and 32 chars of `[a-z0-9]`.
pub fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = crate::ledger::random_bytes::<32>();
    let s: String = bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
    format!("{prefix}{s}")
}
