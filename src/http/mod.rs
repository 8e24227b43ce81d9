//! HTTP: the actix app factory shared by the server and the tests, authentication, and the two
//! dialects (`h2o`, `pangea`) plus the UI routes (`ui`).

pub mod admin;
pub mod authlimit;
pub mod h2o;
pub mod observe;
pub mod openapi;
pub mod pangea;
pub mod replication;
pub mod ui;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use parking_lot::Mutex;

use crate::config::Config;
use crate::keys::{AuthError, KeyStore, Principal};
use crate::ledger::Ledger;
use crate::store::Pool;
use crate::store::writer::WriterHandle;

/// Everything handlers need.
pub struct AppState {
    pub config: Config,
    pub data_dir: PathBuf,
    pub pool: Pool,
    pub writer: WriterHandle,
    pub ledger: Arc<Ledger>,
    pub keys: Arc<KeyStore>,
    /// Failed-authentication throttling per client address and key id.
    pub auth_limit: authlimit::AuthLimiter,
    /// HMAC key for H2O page tokens.
    pub token_key: [u8; 32],
    pub pangea: pangea::PangeaState,
    pub started: std::time::Instant,
    /// Flips to `true` when the server is shutting down (ends live-tail streams).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The last retention purge (for `GET /api/v1/retention`).
    pub retention: Mutex<admin::RetentionStatus>,
    /// Replication to object storage, when configured (`GET /api/v1/replication`, `/readyz`).
    pub replication: Option<Arc<crate::replication::Status>>,
}

pub type State = web::Data<AppState>;

/// Registers every route: H2O at the root, Pangea under `/pangea`, the OpenAPI document and its
/// docs page, UI at `/` (its fallback last). Every route must be documented in `openapi`
/// (`tests/it/openapi.rs` fails otherwise).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(observe::metrics_endpoint));
    pangea::configure(cfg);
    h2o::configure(cfg);
    admin::configure(cfg);
    replication::configure(cfg);
    openapi::configure(cfg);
    ui::configure(cfg);
}

/// Why authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Unauthenticated,
    Unavailable,
    /// Too many failed authentications from this address or for this key id: 429 with
    /// `Retry-After` of this many seconds.
    RateLimited(u64),
}

/// The outcome of authenticating one request, kept in its extensions so that handlers calling
/// `authenticate` more than once do the work (and charge a failure) once.
#[derive(Clone)]
struct AuthOutcome(Result<Principal, AuthFailure>);

/// Reads `Authorization: Bearer <token>` and authenticates it off the async workers. A request
/// that presents credentials which fail is charged to the failed-authentication limits of its
/// peer address and key id (`authlimit`); a request without an `Authorization` header is not.
pub async fn authenticate(state: &State, req: &HttpRequest) -> Result<Principal, AuthFailure> {
    if let Some(done) = req.extensions().get::<AuthOutcome>() {
        return done.0.clone();
    }
    let outcome = authenticate_uncached(state, req).await;
    req.extensions_mut().insert(AuthOutcome(outcome.clone()));
    outcome
}

async fn authenticate_uncached(state: &State, req: &HttpRequest) -> Result<Principal, AuthFailure> {
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION).ok_or(AuthFailure::Unauthenticated)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() && token.len() <= 512
        })
        .map(|(_, token)| token.trim().to_string());
    verify_token(state, req.peer_addr().map(|a| a.ip()), token).await
}

/// Verifies a presented token (`None`: credentials present but malformed) under the
/// failed-authentication limits of `peer` and of the key id the token names.
pub async fn verify_token(
    state: &State,
    peer: Option<IpAddr>,
    token: Option<String>,
) -> Result<Principal, AuthFailure> {
    let mut subjects = Vec::with_capacity(2);
    if let Some(ip) = peer {
        subjects.push(authlimit::Subject::addr(ip));
    }
    if let Some((id, _)) = token.as_deref().and_then(crate::keys::parse_key) {
        subjects.push(authlimit::Subject::KeyId(id.to_string()));
    }
    let limited = |wait| {
        metrics::counter!("trailkeep_auth_rate_limited_total").increment(1);
        AuthFailure::RateLimited(authlimit::retry_after_secs(wait))
    };
    let trusted = token.as_deref().is_some_and(|t| state.keys.recently_verified(t));
    if !trusted && let Some(wait) = state.auth_limit.blocked(&subjects) {
        return Err(limited(wait));
    }
    let result = match token {
        Some(token) => {
            let keys = state.keys.clone();
            web::block(move || keys.authenticate(&token)).await
        }
        None => Ok(Err(AuthError::Invalid)),
    };
    match result {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(AuthError::Invalid)) => match state.auth_limit.failed(&subjects) {
            Some(wait) => Err(limited(wait)),
            None => Err(AuthFailure::Unauthenticated),
        },
        Ok(Err(AuthError::Storage)) | Err(_) => Err(AuthFailure::Unavailable),
    }
}

/// Whether the request declares a JSON body (`application/json` or `…+json`).
pub fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|t| t == "application/json" || (t.starts_with("application/") && t.ends_with("+json")))
}

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Read,
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, BodyError> {
    // Chunks are kept as they arrive and joined once at the end, into one buffer of the exact size
    // (no doubling growth). A body over the limit is not kept: it is read on and dropped, up to
    // twice the limit, so that a client sending it whole before reading the answer gets the 413
    // rather than a reset connection; with a declared length over the limit nothing is kept at all.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut keep = declared.is_none_or(|n| n <= limit);
    let mut chunks: Vec<web::Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => BodyError::TooLarge,
            _ => BodyError::Read,
        })?;
        len += chunk.len();
        if len > limit {
            keep = false;
            chunks = Vec::new();
            if len > limit.saturating_mul(2) {
                break;
            }
        } else if keep {
            chunks.push(chunk);
        }
    }
    if !keep {
        return Err(BodyError::TooLarge);
    }
    Ok(match chunks.len() {
        0 => web::Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut body = web::BytesMut::with_capacity(len);
            for c in &chunks {
                body.extend_from_slice(c);
            }
            body.freeze()
        }
    })
}

/// Runs a blocking closure with a pooled read connection.
pub async fn with_reader<T, F>(state: &State, f: F) -> Result<T, ()>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let pool = state.pool.clone();
    let res = web::block(move || {
        let conn = pool.get().map_err(|e| tracing::error!(error = %e, "reader pool"))?;
        f(&conn).map_err(|e| tracing::error!(error = %e, "read query failed"))
    })
    .await;
    match res {
        Ok(Ok(v)) => Ok(v),
        _ => Err(()),
    }
}

/// The public base URL: configured, else from the request's scheme and Host.
pub fn base_url(state: &State, req: &HttpRequest) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
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
        let now = crate::keys::now_micros();
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
        let now = crate::keys::now_micros();
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
