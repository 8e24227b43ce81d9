//! What every handler shares: the application state, the pooled-reader helper and the public base
//! URL.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{HttpRequest, web};
use parking_lot::Mutex;

use super::authlimit::AuthLimiter;
use super::pangea::state::PangeaState;
use crate::config::Config;
use crate::configs::Registry;
use crate::keys::KeyStore;
use crate::ledger::Ledger;
use crate::store::Pool;
use crate::store::retention::PurgeReport;
use crate::store::writer::WriterHandle;

/// Everything handlers need.
pub struct AppState {
    pub config: Config,
    pub data_dir: PathBuf,
    pub pool: Pool,
    pub writer: WriterHandle,
    pub ledger: Arc<Ledger>,
    pub keys: Arc<KeyStore>,
    /// The audit configs (reloaded when a request's key saw a newer `config_state.version`).
    pub configs: Arc<Registry>,
    /// Failed-authentication throttling per client address and key id.
    pub auth_limit: AuthLimiter,
    /// HMAC key for H2O page tokens.
    pub token_key: [u8; 32],
    pub pangea: PangeaState,
    pub started: std::time::Instant,
    /// Flips to `true` when the server is shutting down (ends live-tail streams).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The last retention purge (for `GET /api/v1/retention`).
    pub retention: Mutex<RetentionStatus>,
    /// The verification run from the admin API (`/api/v1/verify`).
    pub verify: Mutex<VerifyJob>,
    /// Replication to object storage, when configured (`GET /api/v1/replication`, `/readyz`,
    /// `/metrics`).
    pub replication: Option<Arc<crate::replication::uploader::Status>>,
}

pub type State = web::Data<AppState>;

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

/// The replication report (`{"enabled": false}` when not configured); `None` if the database
/// cannot be read. Also refreshes the lag gauges.
pub async fn replication_report(state: &State) -> Option<serde_json::Value> {
    let Some(status) = state.replication.clone() else { return Some(serde_json::json!({"enabled": false})) };
    with_reader(state, move |c| status.report(c)).await.ok()
}

/// The public base URL: configured, else from the request's scheme (always `https` when the server
/// speaks TLS itself) and Host.
pub fn base_url(state: &State, req: &HttpRequest) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let info = req.connection_info();
    let scheme = if state.config.tls.is_some() { "https" } else { info.scheme() };
    format!("{scheme}://{}", info.host())
}

/// The last purge run (time in µs, and what it did), and the one in progress.
#[derive(Default)]
pub struct RetentionStatus {
    pub last_run: Option<(i64, Result<PurgeReport, String>)>,
    pub running: Option<RunningPurge>,
}

/// A purge in progress: when it started (µs) and the events it has purged so far (the writer
/// adds each batch as it commits).
pub struct RunningPurge {
    pub started_at: i64,
    pub purged: Arc<std::sync::atomic::AtomicU64>,
}

/// A verification of the log running in the background, started through the admin API.
pub struct RunningVerify {
    /// µs.
    pub started_at: i64,
    /// Events checked so far (`verify::verify_with_progress`).
    pub checked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Events in the log when it started.
    pub total: u64,
}

#[derive(Default)]
pub struct VerifyJob {
    pub running: Option<RunningVerify>,
    /// The last run finished by this process (JSON, as stored in `settings`).
    pub last: Option<serde_json::Value>,
}

/// `Retry-After` of a 503 for a full disk.
pub const STORAGE_FULL_RETRY_S: u64 = 5;
