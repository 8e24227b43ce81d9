//! API keys: `tk_<key id>_<secret + checksum>`, stored only as argon2id hashes, looked up by key id,
//! with a short-lived cache of verified keys that re-checks revocation on every use. Also the
//! short-lived OIDC access tokens minted for the H2O `login_custom`/`login` flows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ledger::random_bytes;
use crate::store::Pool;
use crate::time::now_micros;

/// A verified secret stays cached while it is used at least this often. Revocation is checked on
/// every request whatever the cache says; the cache only spares argon2, whose 19 MiB working
/// memory per verification would otherwise come back every TTL for a key in constant use.
const CACHE_TTL: Duration = Duration::from_secs(60);
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
const ACCESS_PREFIX: &str = "tka_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    pub ingest: bool,
    pub search: bool,
    pub admin: bool,
}

impl Scopes {
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut s = Scopes::default();
        for item in items {
            for part in item.as_ref().split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part {
                    "ingest" => s.ingest = true,
                    "search" => s.search = true,
                    "admin" => s.admin = true,
                    other => return Err(format!("unknown scope '{other}' (expected ingest, search or admin)")),
                }
            }
        }
        Ok(s)
    }
    pub fn can_ingest(&self) -> bool {
        self.ingest || self.admin
    }
    pub fn can_search(&self) -> bool {
        self.search || self.admin
    }
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.ingest {
            v.push("ingest");
        }
        if self.search {
            v.push("search");
        }
        if self.admin {
            v.push("admin");
        }
        v
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub name: String,
    pub scopes: Scopes,
    /// Workspaces the key is limited to; empty means all.
    pub workspaces: Vec<String>,
    /// Audit configs the key is bound to (ids); empty means the default config. Admin keys reach
    /// every config whatever their bindings.
    pub configs: Vec<String>,
    /// `config_state.version` read with the key (the server reloads its configs when it moved).
    pub config_version: i64,
}

impl Principal {
    pub fn is_limited(&self) -> bool {
        !self.workspaces.is_empty()
    }
    pub fn may_see(&self, workspace: &str) -> bool {
        self.workspaces.is_empty() || self.workspaces.iter().any(|w| w == workspace)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("invalid credentials")]
    Invalid,
    #[error("storage failure")]
    Storage,
}

/// A new key as shown once to its creator.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub id: String,
    pub secret: String,
}

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Scopes,
    pub workspaces: Vec<String>,
    /// Audit config ids; empty means the default config.
    pub configs: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn checksum(id: &str, secret: &str) -> String {
    let d = Sha256::digest(format!("{id}.{secret}").as_bytes());
    hex::encode(&d[..3])
}

/// Splits `tk_<id>_<secret><checksum>`; a bad checksum is rejected without a database lookup.
pub fn parse_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("tk_")?;
    let (id, tail) = rest.split_once('_')?;
    if id.len() != 16 || tail.len() != 70 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (secret, sum) = tail.split_at(64);
    if !bool::from(checksum(id, secret).as_bytes().ct_eq(sum.as_bytes())) {
        return None;
    }
    Some((id, secret))
}

/// Creates a key for the default config.
pub fn create_key(conn: &Connection, name: &str, scopes: Scopes, workspaces: &[String]) -> anyhow::Result<CreatedKey> {
    create_key_with(conn, name, scopes, workspaces, &[])
}

/// Creates a key bound to `configs` (config ids, which must exist; empty: the default config).
pub fn create_key_with(
    conn: &Connection,
    name: &str,
    scopes: Scopes,
    workspaces: &[String],
    configs: &[String],
) -> anyhow::Result<CreatedKey> {
    if scopes == Scopes::default() {
        anyhow::bail!("a key needs at least one scope");
    }
    for w in workspaces {
        if w.is_empty() {
            anyhow::bail!("workspace names must not be empty");
        }
    }
    let mut bound: Vec<String> = Vec::with_capacity(configs.len());
    for c in configs {
        let exists: bool =
            conn.query_row("SELECT EXISTS (SELECT 1 FROM audit_configs WHERE id = ?1)", [c], |r| r.get(0))?;
        if !exists {
            anyhow::bail!("no audit config with id {c:?}");
        }
        if !bound.contains(c) {
            bound.push(c.clone());
        }
    }
    let id = hex::encode(random_bytes::<8>());
    let secret = hex::encode(random_bytes::<32>());
    let full = format!("tk_{id}_{secret}{}", checksum(&id, &secret));
    let hash =
        Argon2::default().hash_password(full.as_bytes()).map_err(|e| anyhow::anyhow!("argon2: {e}"))?.to_string();
    conn.execute(
        "INSERT INTO api_keys(id, name, secret_hash, scopes, workspaces, created_at, configs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            name,
            hash,
            scopes.names().join(","),
            serde_json::to_string(workspaces)?,
            now_micros(),
            serde_json::to_string(&bound)?
        ],
    )?;
    Ok(CreatedKey { id, secret: full })
}

pub fn list_keys(conn: &Connection) -> rusqlite::Result<Vec<KeyInfo>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, scopes, workspaces, created_at, last_used_at, revoked_at, configs FROM api_keys ORDER BY created_at",
    )?;
    let rows = stmt.query_map([], |r| {
        let scopes: String = r.get(2)?;
        let ws: String = r.get(3)?;
        let configs: String = r.get(7)?;
        Ok(KeyInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            scopes: Scopes::parse_list(&[scopes]).unwrap_or_default(),
            workspaces: serde_json::from_str(&ws).unwrap_or_default(),
            configs: serde_json::from_str(&configs).unwrap_or_default(),
            created_at: r.get(4)?,
            last_used_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Revokes a key by id (or by its full secret). Returns false if no active key matched.
pub fn revoke_key(conn: &Connection, id_or_secret: &str) -> rusqlite::Result<bool> {
    let id = parse_key(id_or_secret).map(|(id, _)| id).unwrap_or(id_or_secret);
    let n = conn.execute(
        "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
        params![now_micros(), id],
    )?;
    Ok(n == 1)
}

pub fn count_active_keys(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL", [], |r| r.get(0))
}

struct CacheEntry {
    /// Last verified or used.
    at: Instant,
}

struct AccessToken {
    key_id: String,
    expires: Instant,
}

/// Verifies presented keys and access tokens. All methods block: call them off the async workers.
pub struct KeyStore {
    pool: Pool,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    /// One lock per key being verified: concurrent first requests with the same key (clients
    /// starting together) wait for one argon2 verification instead of each running their own.
    verifying: Mutex<HashMap<[u8; 32], Arc<Mutex<()>>>>,
    /// Argon2 verifications of presented secrets run so far (also the metric below).
    argon2_runs: std::sync::atomic::AtomicU64,
    tokens: Mutex<HashMap<[u8; 32], AccessToken>>,
    last_used: Mutex<HashMap<String, i64>>,
}

impl KeyStore {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            cache: Mutex::default(),
            verifying: Mutex::default(),
            argon2_runs: Default::default(),
            tokens: Mutex::default(),
            last_used: Mutex::default(),
        }
    }

    /// Whether this secret was verified and used within the TTL; a hit renews it.
    fn cached(&self, digest: &[u8; 32]) -> bool {
        let mut cache = self.cache.lock();
        let Some(entry) = cache.get_mut(digest) else { return false };
        let now = Instant::now();
        if now.duration_since(entry.at) >= CACHE_TTL {
            return false;
        }
        entry.at = now;
        true
    }

    /// Verifies `presented` against its argon2 hash once, caching success; callers with the same
    /// key wait for a verification in progress and then use its cached result.
    fn verify_secret(&self, digest: [u8; 32], presented: &str, hash: &str) -> Result<(), AuthError> {
        if self.cached(&digest) {
            return Ok(());
        }
        let flight = self.verifying.lock().entry(digest).or_default().clone();
        let result = {
            let _turn = flight.lock();
            if self.cached(&digest) {
                Ok(())
            } else {
                self.argon2_runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("trailkeep_argon2_verifications_total").increment(1);
                let ok = PasswordHash::new(hash).is_ok_and(|parsed| {
                    argon2_slot(|| Argon2::default().verify_password(presented.as_bytes(), &parsed).is_ok())
                });
                if ok {
                    let mut cache = self.cache.lock();
                    if cache.len() > 10_000 {
                        cache.clear();
                    }
                    cache.insert(digest, CacheEntry { at: Instant::now() });
                    Ok(())
                } else {
                    Err(AuthError::Invalid)
                }
            }
        };
        // The last one out removes the lock (the map holds one reference, each caller another).
        let mut verifying = self.verifying.lock();
        if Arc::strong_count(&flight) == 2 {
            verifying.remove(&digest);
        }
        result
    }

    /// Authenticates an API key or a minted access token.
    pub fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let key_id = if presented.starts_with(ACCESS_PREFIX) {
            let mut tokens = self.tokens.lock();
            let Some(t) = tokens.get(&digest) else { return Err(AuthError::Invalid) };
            if t.expires < Instant::now() {
                tokens.remove(&digest);
                return Err(AuthError::Invalid);
            }
            t.key_id.clone()
        } else {
            let Some((id, _)) = parse_key(presented) else { return Err(AuthError::Invalid) };
            id.to_string()
        };
        let is_key = !presented.starts_with(ACCESS_PREFIX);
        let conn = self.pool.get().map_err(|_| AuthError::Storage)?;
        let row = load_key_row(&conn, &key_id).map_err(|_| AuthError::Storage)?;
        drop(conn);
        let Some((principal, hash, revoked)) = row else {
            // An unknown key id costs the same verification as a wrong secret (K-checks: the
            // answer time must not tell which key ids exist).
            if is_key {
                dummy_verify(presented);
            }
            return Err(AuthError::Invalid);
        };
        if revoked {
            self.cache.lock().remove(&digest);
            if is_key {
                dummy_verify(presented);
            }
            return Err(AuthError::Invalid);
        }
        if is_key {
            self.verify_secret(digest, presented, &hash)?;
        }
        self.last_used.lock().insert(principal.key_id.clone(), now_micros());
        Ok(principal)
    }

    /// Whether this exact token was verified recently (a verified-key cache hit, or a live access
    /// token): accepting it again needs no argon2 work, so failed-authentication throttling lets it
    /// through. Revocation is still checked by `authenticate`.
    pub fn recently_verified(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if presented.starts_with(ACCESS_PREFIX) {
            return self.tokens.lock().get(&digest).is_some_and(|t| t.expires > Instant::now());
        }
        self.cached(&digest)
    }

    /// Mints a short-lived access token bound to the key (OIDC refresh_token grant).
    pub fn mint_access_token(&self, principal: &Principal) -> String {
        let token = format!("{ACCESS_PREFIX}{}", hex::encode(random_bytes::<24>()));
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut tokens = self.tokens.lock();
        let now = Instant::now();
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(digest, AccessToken { key_id: principal.key_id.clone(), expires: now + ACCESS_TOKEN_TTL });
        token
    }

    /// Writes the recorded last-used times (called periodically by a background thread).
    pub fn flush_last_used(&self, conn: &Connection) -> rusqlite::Result<()> {
        let pending: Vec<(String, i64)> = self.last_used.lock().drain().collect();
        for (id, at) in pending {
            conn.execute("UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2", params![at, id])?;
        }
        Ok(())
    }
}

/// Verifications of presented secrets running at once, at most `ARGON2_SLOTS`: each takes
/// argon2's 19 MiB of working memory for ~50 ms of one core, so a burst of first uses of many
/// keys (or of wrong secrets) costs bounded memory and no more CPU than the cores give anyway.
const ARGON2_SLOTS: usize = 2;
static ARGON2_RUNNING: parking_lot::Mutex<usize> = parking_lot::Mutex::new(0);
static ARGON2_FREED: parking_lot::Condvar = parking_lot::Condvar::new();
/// Most verifications seen running at once (checked by a test).
static ARGON2_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn argon2_slot<T>(f: impl FnOnce() -> T) -> T {
    struct Slot;
    impl Drop for Slot {
        fn drop(&mut self) {
            *ARGON2_RUNNING.lock() -= 1;
            ARGON2_FREED.notify_one();
        }
    }
    let mut running = ARGON2_RUNNING.lock();
    while *running >= ARGON2_SLOTS {
        ARGON2_FREED.wait(&mut running);
    }
    *running += 1;
    ARGON2_PEAK.fetch_max(*running, std::sync::atomic::Ordering::Relaxed);
    drop(running);
    let _slot = Slot;
    f()
}

/// Runs one argon2 verification of `presented` against a hash made with the same parameters as
/// real keys, so that rejecting an unknown or revoked key id takes as long as a wrong secret.
fn dummy_verify(presented: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| {
        let secret = hex::encode(random_bytes::<32>());
        Argon2::default().hash_password(secret.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
    });
    if let Ok(parsed) = PasswordHash::new(hash) {
        argon2_slot(|| {
            let _ = Argon2::default().verify_password(presented.as_bytes(), &parsed);
        });
    }
}

fn load_key_row(conn: &Connection, id: &str) -> rusqlite::Result<Option<(Principal, String, bool)>> {
    conn.prepare_cached(
        "SELECT id, name, scopes, workspaces, secret_hash, revoked_at IS NOT NULL, configs,
                (SELECT version FROM config_state)
         FROM api_keys WHERE id = ?1",
    )?
    .query_row([id], |r| {
        let scopes: String = r.get(2)?;
        let ws: String = r.get(3)?;
        let configs: String = r.get(6)?;
        Ok((
            Principal {
                key_id: r.get(0)?,
                name: r.get(1)?,
                scopes: Scopes::parse_list(&[scopes]).unwrap_or_default(),
                workspaces: serde_json::from_str(&ws).unwrap_or_default(),
                configs: serde_json::from_str(&configs).unwrap_or_default(),
                config_version: r.get(7)?,
            },
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Connection, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let pool = crate::store::reader_pool(dir.path(), 2).unwrap();
        (dir, conn, KeyStore::new(pool))
    }

    /// Sixteen requests with the same key arriving together cost one argon2 verification and
    /// leave no lock behind.
    #[test]
    fn concurrent_first_uses_of_a_key_share_one_verification() {
        let (_dir, conn, store) = setup();
        let k = create_key(&conn, "t", Scopes { ingest: true, ..Default::default() }, &[]).unwrap();
        let store = Arc::new(store);
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (store, barrier, key) = (store.clone(), barrier.clone(), k.secret.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.authenticate(&key).map(|p| p.key_id)
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().is_ok());
        }
        assert_eq!(store.argon2_runs.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(store.verifying.lock().is_empty());
    }

    /// A key in constant use is not verified again when the TTL has passed since its first use;
    /// one idle for the TTL is.
    #[test]
    fn the_verified_key_cache_renews_on_use() {
        let (_dir, conn, store) = setup();
        let k = create_key(&conn, "t", Scopes { ingest: true, ..Default::default() }, &[]).unwrap();
        let digest: [u8; 32] = Sha256::digest(k.secret.as_bytes()).into();
        let runs = || store.argon2_runs.load(std::sync::atomic::Ordering::Relaxed);
        let age = |by: Duration| store.cache.lock().get_mut(&digest).unwrap().at -= by;
        store.authenticate(&k.secret).unwrap();
        assert_eq!(runs(), 1);
        for _ in 0..3 {
            age(CACHE_TTL - Duration::from_secs(1));
            store.authenticate(&k.secret).unwrap();
        }
        assert_eq!(runs(), 1, "used within the TTL each time: still cached");
        age(CACHE_TTL);
        store.authenticate(&k.secret).unwrap();
        assert_eq!(runs(), 2, "idle for the TTL: verified again");
    }

    /// Six different keys used for the first time at once: all verified, never more than
    /// `ARGON2_SLOTS` argon2 runs at the same time.
    #[test]
    fn argon2_runs_are_bounded() {
        let (_dir, conn, store) = setup();
        let keys: Vec<String> = (0..6)
            .map(|i| {
                create_key(&conn, &format!("k{i}"), Scopes { ingest: true, ..Default::default() }, &[]).unwrap().secret
            })
            .collect();
        let store = Arc::new(store);
        let barrier = Arc::new(std::sync::Barrier::new(keys.len()));
        let threads: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.authenticate(&key).is_ok()
                })
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        assert_eq!(store.argon2_runs.load(std::sync::atomic::Ordering::Relaxed), 6);
        let peak = ARGON2_PEAK.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1..=ARGON2_SLOTS).contains(&peak), "peak {peak}");
    }

    #[test]
    fn key_format_and_checksum() {
        let (_d, conn, _ks) = setup();
        let k = create_key(&conn, "t", Scopes { search: true, ..Default::default() }, &[]).unwrap();
        assert!(parse_key(&k.secret).is_some());
        let mut flipped = k.secret.clone().into_bytes();
        let last = flipped.len() - 10;
        flipped[last] = if flipped[last] == b'a' { b'b' } else { b'a' };
        assert!(parse_key(std::str::from_utf8(&flipped).unwrap()).is_none());
        let stored: String = conn.query_row("SELECT secret_hash FROM api_keys", [], |r| r.get(0)).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$"));
        assert!(!stored.contains(&k.secret[20..]));
    }

    #[test]
    fn authenticate_revoke_and_tokens() {
        let (_d, conn, ks) = setup();
        let k =
            create_key(&conn, "t", Scopes { ingest: true, ..Default::default() }, &["workspaces/w1".into()]).unwrap();
        let p = ks.authenticate(&k.secret).unwrap();
        assert!(p.scopes.can_ingest() && !p.scopes.can_search());
        assert!(p.may_see("workspaces/w1") && !p.may_see("workspaces/w2"));
        let token = ks.mint_access_token(&p);
        assert_eq!(ks.authenticate(&token).unwrap(), p);
        assert_eq!(ks.authenticate("tk_nope"), Err(AuthError::Invalid));
        assert!(revoke_key(&conn, &k.id).unwrap());
        assert_eq!(ks.authenticate(&k.secret), Err(AuthError::Invalid));
        assert_eq!(ks.authenticate(&token), Err(AuthError::Invalid));
    }
}
