//! The admin API (admin-scoped keys without a workspace limit): API keys and retention.
//! Errors use the UI routes' problem JSON. Key changes are themselves logged as events (stored
//! before the response).
//!
//! - `GET /api/v1/keys` — list keys (never secrets)
//! - `POST /api/v1/keys` `{name, scopes: [..], workspaces?: [..], configs?: [..]}` — create; the
//!   secret is in the response only
//! - `DELETE /api/v1/keys/{id}` — revoke (takes effect at once)
//! - `POST /api/v1/configs/{id}/rotate-signing` — a new version of a server-signing audit
//!   config's event-signing key
//! - `GET /api/v1/retention` — the effective retention policy and the last purge
//! - `POST /api/v1/retention/purge` — run the retention purge now
//! - `POST /api/v1/backups` `{include_keys?}` — an online backup into the backup directory

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::apidoc::{Problem, TAG_UI};
use super::body::{is_json, read_body};
use super::pangea::configs::{change_config, record_config_change};
use super::state::{RunningPurge, State, with_reader};
use super::ui::{principal, problem};
use crate::event::system;
use crate::keys::{Principal, Scopes, list_keys};
use crate::store::retention::PurgeReport;
use crate::time::{format_duration, format_micros};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/keys")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(allow("GET, POST")),
    )
    .service(web::resource("/api/v1/keys/{id}").route(web::delete().to(revoke)).default_service(allow("DELETE")))
    .service(
        web::resource("/api/v1/configs/{id}/rotate-signing")
            .route(web::post().to(rotate_signing))
            .default_service(allow("POST")),
    )
    .service(web::resource("/api/v1/retention").route(web::get().to(retention)).default_service(allow("GET")))
    .service(web::resource("/api/v1/retention/purge").route(web::post().to(purge_now)).default_service(allow("POST")))
    .service(web::resource("/api/v1/backups").route(web::post().to(create_backup)).default_service(allow("POST")));
}

/// A key as listed (never its secret).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyListed {
    id: String,
    name: String,
    /// `ingest`, `search`, `admin`.
    scopes: Vec<String>,
    /// Empty: every workspace.
    workspaces: Vec<String>,
    /// Audit config ids the key is bound to; empty: the default config.
    configs: Vec<String>,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyList {
    keys: Vec<KeyListed>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyCreate {
    /// 1–200 bytes.
    name: String,
    /// At least one of `ingest`, `search`, `admin` (`admin` implies the others).
    scopes: Vec<String>,
    /// Limit the key to these workspaces; empty or absent: all.
    workspaces: Option<Vec<String>>,
    /// Bind the key to these audit configs (ids); empty or absent: the default config.
    configs: Option<Vec<String>>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyCreated {
    id: String,
    name: String,
    scopes: Vec<String>,
    workspaces: Vec<String>,
    configs: Vec<String>,
    /// `tk_<id>_<secret><checksum>`: shown only in this response.
    secret: String,
}

/// A config's event-signing key after a rotation.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SigningRotated {
    config_id: String,
    /// The key store's name of the key (`public_key.vault_key_id` of the events).
    vault_key_id: String,
    /// The new version: events from now on are signed with it.
    vault_key_version: u32,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RetentionPolicy {
    /// Whether any retention period is configured.
    enabled: bool,
    /// The default period (`400d`, …) or `forever`.
    default: String,
    /// Per-workspace periods (`forever` exempts one).
    workspaces: std::collections::BTreeMap<String, String>,
    /// How often the purge runs.
    interval: String,
    /// The last run: `{at, ok, report}` or `{at, ok: false, error}`; null before the first.
    #[schema(value_type = Option<Object>)]
    last_run: Option<Value>,
    /// The purge in progress: `{started_at, purged}` (events purged so far); null when none runs.
    #[schema(value_type = Option<Object>)]
    running: Option<Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PurgeResult {
    /// Events whose content was removed.
    purged: u64,
    /// Per workspace.
    workspaces: std::collections::BTreeMap<String, u64>,
    /// Purge events appended to the log.
    purge_events: u64,
}

/// 405 with `Allow` for the other methods on a resource.
pub(super) fn allow(methods: &'static str) -> actix_web::Route {
    web::to(move || async move {
        let mut r = problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &format!("use {methods}"));
        r.headers_mut()
            .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(methods));
        r
    })
}

/// Only admin keys without a workspace limit manage keys and retention.
pub(super) async fn admin(state: &State, req: &HttpRequest) -> Result<Principal, HttpResponse> {
    let p = principal(state, req).await?;
    if !p.scopes.admin || !p.workspaces.is_empty() {
        return Err(problem(StatusCode::FORBIDDEN, "forbidden", "this needs an admin key without a workspace limit"));
    }
    Ok(p)
}

/// Key changes are logged as events: a read-only trail (no root-signing key) cannot take them
/// (`trailkeep keys create|revoke` on the server still can).
fn refuse_if_read_only(state: &State) -> Option<HttpResponse> {
    state.ledger.read_only().map(|reason| problem(StatusCode::SERVICE_UNAVAILABLE, "read_only", reason))
}

fn key_json(k: &crate::keys::KeyInfo) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "scopes": k.scopes.names(),
        "workspaces": k.workspaces,
        "configs": k.configs,
        "created_at": format_micros(k.created_at),
        "last_used_at": k.last_used_at.map(format_micros),
        "revoked_at": k.revoked_at.map(format_micros),
    })
}

/// List API keys
///
/// Every key with its scopes, workspaces and times; never a secret.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = TAG_UI,
    operation_id = "admin_list_keys",
    responses(
        (status = 200, description = "The keys", body = KeyList),
        (status = 503, description = "Database unavailable", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn list(state: State, req: HttpRequest) -> HttpResponse {
    if let Err(r) = admin(&state, &req).await {
        return r;
    }
    match with_reader(&state, list_keys).await {
        Ok(keys) => HttpResponse::Ok().json(json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()})),
        Err(()) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
    }
}

/// Create an API key
///
/// The secret is in this response only; the creation is logged as an event (`actions/audittrail/keys/CREATE`).
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = TAG_UI,
    operation_id = "admin_create_key",
    request_body(content = KeyCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = KeyCreated),
        (status = 400, description = "Invalid body, name, scopes or workspaces", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Body over 64 KiB", content_type = "application/problem+json", body = Problem),
        (status = 415, description = "Not JSON", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Not stored (retry), or the trail is read-only (`read_only`: its root-signing key is not installed)", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let p = match admin(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = refuse_if_read_only(&state) {
        return r;
    }
    if !is_json(&req) {
        return problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json");
    }
    let Ok(body) = read_body(&req, payload, 64 << 10).await else {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the body is limited to 64 KiB");
    };
    let body = match crate::event::canonical::parse_strict(&body, 8) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return problem(StatusCode::BAD_REQUEST, "invalid_body", "the body must be a JSON object"),
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()),
    };
    if let Some(k) = body.keys().find(|k| !["name", "scopes", "workspaces", "configs"].contains(&k.as_str())) {
        return problem(StatusCode::BAD_REQUEST, "invalid_body", &format!("unknown field {k:?}"));
    }
    let name = match body.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 200 => n.to_string(),
        _ => return problem(StatusCode::BAD_REQUEST, "invalid_name", "name: a non-empty string of at most 200 bytes"),
    };
    let strings = |k: &str| -> Option<Vec<String>> {
        match body.get(k) {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
            _ => None,
        }
    };
    let (Some(scope_names), Some(workspaces), Some(configs)) =
        (strings("scopes"), strings("workspaces"), strings("configs"))
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "scopes, workspaces and configs must be arrays of strings",
        );
    };
    if super::auth::refresh_configs(&state, p.config_version).await.is_err() {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable");
    }
    if configs.len() > 100 || configs.iter().any(|c| state.configs.get(c).is_none()) {
        return problem(StatusCode::BAD_REQUEST, "invalid_configs", "configs must be ids of existing audit configs");
    }
    let scopes = match Scopes::parse_list(&scope_names) {
        Ok(s) if s != Scopes::default() => s,
        Ok(_) => return problem(StatusCode::BAD_REQUEST, "invalid_scopes", "at least one of ingest, search, admin"),
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_scopes", &e),
    };
    if workspaces.iter().any(|w| w.is_empty() || w.len() > 200) || workspaces.len() > 1000 {
        return problem(StatusCode::BAD_REQUEST, "invalid_workspaces", "workspaces must be non-empty names");
    }
    let dir = state.data_dir.clone();
    let (n, ws, cf) = (name.clone(), workspaces.clone(), configs.clone());
    let created = web::block(move || -> anyhow::Result<crate::keys::CreatedKey> {
        let conn = crate::store::open_side_rw(&dir)?;
        crate::keys::create_key_with(&conn, &n, scopes, &ws, &cf)
    })
    .await;
    match created {
        Ok(Ok(k)) => {
            record(&state, &req, &p, &k.id, Some(&name)).await;
            HttpResponse::Created().json(json!({
                "id": k.id, "name": name, "scopes": scopes.names(), "workspaces": workspaces, "configs": configs,
                "secret": k.secret,
            }))
        }
        _ => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the key could not be stored; retry"),
    }
}

/// Revoke an API key
///
/// Takes effect at once, also for access tokens minted from the key; logged as an event (`actions/audittrail/keys/REVOKE`).
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = TAG_UI,
    operation_id = "admin_revoke_key",
    params(("id" = String, Path, description = "The key id (16 hex digits)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No active key with that id", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Not revoked (retry), or the trail is read-only (`read_only`: its root-signing key is not installed)", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn revoke(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let p = match admin(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = refuse_if_read_only(&state) {
        return r;
    }
    let id = id.into_inner();
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return problem(StatusCode::NOT_FOUND, "not_found", "no active key with that id");
    }
    let dir = state.data_dir.clone();
    let key_id = id.clone();
    let done = web::block(move || -> anyhow::Result<bool> {
        let conn = crate::store::open_side_rw(&dir)?;
        Ok(crate::keys::revoke_key(&conn, &key_id)?)
    })
    .await;
    match done {
        Ok(Ok(true)) => {
            record(&state, &req, &p, &id, None).await;
            HttpResponse::NoContent().finish()
        }
        Ok(Ok(false)) => problem(StatusCode::NOT_FOUND, "not_found", "no active key with that id"),
        _ => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the key could not be revoked; retry"),
    }
}

/// Rotate a config's event-signing key
///
/// Makes a new version of a server-signing audit config's event-signing key in the key store;
/// events from now on are signed with it, earlier ones keep verifying with theirs. Logged as an
/// event (`actions/audittrail/configs/ROTATE_SIGNING_KEY`).
#[utoipa::path(
    post,
    path = "/api/v1/configs/{id}/rotate-signing",
    tag = TAG_UI,
    operation_id = "admin_rotate_signing",
    params(("id" = String, Path, description = "The config id (`pci_…`)")),
    responses(
        (status = 200, description = "Rotated", body = SigningRotated),
        (status = 404, description = "No such config", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The config is not signed by the server", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Not rotated; retry", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn rotate_signing(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    use crate::configs::ConfigError;
    let p = match admin(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = id.into_inner();
    if !crate::configs::valid_config_id(&id) {
        return problem(StatusCode::NOT_FOUND, "not_found", "no audit config with that id");
    }
    let target = id.clone();
    let rotated = change_config(&state, move |c, keys| crate::configs::rotate_signing(c, &target, keys)).await;
    match rotated {
        Ok(c) => {
            record_config_change(&state, &req, &p, system::CONFIG_ROTATE_ACTION, &c).await;
            let (name, version) = c.signing_key.clone().unwrap_or_default();
            HttpResponse::Ok().json(json!({"config_id": c.id, "vault_key_id": name, "vault_key_version": version}))
        }
        Err(ConfigError::NotFound) => problem(StatusCode::NOT_FOUND, "not_found", "no audit config with that id"),
        Err(ConfigError::Conflict(m)) => problem(StatusCode::CONFLICT, "not_server_signed", &m),
        Err(ConfigError::Invalid(_)) | Err(ConfigError::Storage(_)) => {
            problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the key could not be rotated; retry")
        }
    }
}

/// Logs the creation (`created`: the new key's name) or revocation of key `key_id` as an event,
/// before the response goes out.
async fn record(state: &State, req: &HttpRequest, p: &Principal, key_id: &str, created: Option<&str>) {
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let redact = state.config.redact_private_ips;
    let ev = match created {
        Some(name) => system::key_created(&p.key_id, peer, key_id, name, redact),
        None => system::key_revoked(&p.key_id, peer, key_id, redact),
    };
    let Some(ev) = ev else { return };
    if let Err(e) = state.writer.append(vec![ev]).await {
        tracing::warn!(error = %e, "admin event not recorded");
    }
}

/// Retention policy
///
/// The effective retention periods and the outcome of the last purge.
#[utoipa::path(
    get,
    path = "/api/v1/retention",
    tag = TAG_UI,
    operation_id = "admin_retention",
    responses(
        (status = 200, description = "The policy", body = RetentionPolicy),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn retention(state: State, req: HttpRequest) -> HttpResponse {
    if let Err(r) = admin(&state, &req).await {
        return r;
    }
    let r = &state.config.retention;
    let period = |d: i64| if d == i64::MAX { "forever".to_string() } else { format_duration(d) };
    let (last, running) = {
        let status = state.retention.lock();
        let last = status.last_run.as_ref().map(|(at, res)| match res {
            Ok(rep) => json!({"at": format_micros(*at), "ok": true, "report": rep}),
            Err(e) => json!({"at": format_micros(*at), "ok": false, "error": e}),
        });
        let running = status.running.as_ref().map(|r| {
            json!({"started_at": format_micros(r.started_at), "purged": r.purged.load(std::sync::atomic::Ordering::Relaxed)})
        });
        (last, running)
    };
    HttpResponse::Ok().json(json!({
        "enabled": r.is_enabled(),
        "default": r.default.map_or("forever".to_string(), period),
        "workspaces": r.workspaces.iter().map(|(w, d)| (w.clone(), json!(period(*d)))).collect::<serde_json::Map<_, _>>(),
        "interval": format_duration(r.interval),
        "last_run": last,
        "running": running,
    }))
}

/// Run the retention purge now
///
/// Removes the content of events older than their workspace's period (hashes stay; each run is logged by one purge event per workspace). One run at a time: while one is in progress (scheduled or asked for) the answer is 409 `purge_running`.
#[utoipa::path(
    post,
    path = "/api/v1/retention/purge",
    tag = TAG_UI,
    operation_id = "admin_purge",
    responses(
        (status = 200, description = "What was purged", body = PurgeResult),
        (status = 409, description = "No retention period is configured (`retention_disabled`), or a purge is already running (`purge_running`; `GET /api/v1/retention` shows it)", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The purge failed or the writer is busy (retry), or the trail is read-only (`read_only`: its root-signing key is not installed)", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn purge_now(state: State, req: HttpRequest) -> HttpResponse {
    if let Err(r) = admin(&state, &req).await {
        return r;
    }
    if !state.config.retention.is_enabled() {
        return problem(StatusCode::CONFLICT, "retention_disabled", "no retention period is configured");
    }
    if let Some(r) = refuse_if_read_only(&state) {
        return r;
    }
    match run_purge(&state).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(PurgeRunError::Running { started_at, purged }) => problem(
            StatusCode::CONFLICT,
            "purge_running",
            &format!(
                "a purge is already running (started {}, {purged} events purged so far); GET /api/v1/retention shows its outcome when it ends",
                format_micros(started_at)
            ),
        ),
        Err(PurgeRunError::Failed(e)) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e),
    }
}

/// Why a purge did not run to its end.
pub enum PurgeRunError {
    /// Another purge (scheduled or asked for) is in progress: when it started (µs), and what it
    /// has purged so far.
    Running { started_at: i64, purged: u64 },
    /// The purge failed; the message is for the client.
    Failed(String),
}

/// Runs one purge through the writer and records the outcome for `GET /api/v1/retention`; one
/// at a time (a second is refused at once rather than queued behind the first).
pub async fn run_purge(state: &State) -> Result<PurgeReport, PurgeRunError> {
    let now = crate::time::now_micros();
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let mut r = state.retention.lock();
        if let Some(running) = &r.running {
            return Err(PurgeRunError::Running {
                started_at: running.started_at,
                purged: running.purged.load(std::sync::atomic::Ordering::Relaxed),
            });
        }
        r.running = Some(RunningPurge { started_at: now, purged: progress.clone() });
    }
    // On a task of its own: a client that goes away does not end the run's bookkeeping, which
    // the writer's run outlives.
    let st = state.clone();
    let run = actix_web::rt::spawn(async move {
        let res = st.writer.purge(st.config.retention.clone(), now, progress).await.map_err(|e| match e {
            crate::store::writer::WriteError::Busy => "the writer is busy; retry".to_string(),
            crate::store::writer::WriteError::ReadOnly(reason) => reason,
            _ => "the purge failed; it is retried at the next run".to_string(),
        });
        let mut status = st.retention.lock();
        status.last_run = Some((now, res.clone()));
        status.running = None;
        res
    });
    match run.await {
        Ok(res) => res.map_err(PurgeRunError::Failed),
        Err(_) => {
            state.retention.lock().running = None;
            Err(PurgeRunError::Failed("the purge stopped; it is retried at the next run".to_string()))
        }
    }
}

/// Pages an online backup copies per step of the writer (16 KiB each): a few milliseconds, after
/// which the writer serves its queue for as long.
const BACKUP_STEP_PAGES: i32 = 256;

/// The outcome of an online backup.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BackupResult {
    /// The backup's database file, in the server's backup directory; `<file>.checkpoint` beside
    /// it is the signed root it ends at, `<file>.keys/` the copy of the key store, if asked for.
    file: String,
    bytes: u64,
    /// The log the copy holds: its size and root (as in `<file>.checkpoint`).
    tree_size: u64,
    root_hash: String,
    /// Key files copied (`name.version`), with `include_keys`.
    keys: Vec<String>,
    seconds: f64,
    /// Times a write by another connection made the copy start over.
    restarts: u32,
}

/// Take an online backup
///
/// Copies the database into a new file of the server's backup directory (`backup_dir`, default `DATA_DIR/backups`) on the server's writer, a few pages between commits: ingest goes on, and the WAL does not grow as under `trailkeep backup`'s long read. The copy ends at a commit; `<file>.checkpoint` beside it holds the signed root it ends at, so it restores (`trailkeep restore --from FILE`) and verifies on its own. With `{"include_keys": true}` the key store's files are copied to `<file>.keys/` (keep that copy as safe as the server). The backup is recorded as an event first (`actions/audittrail/log/BACKUP`), which the copy holds.
#[utoipa::path(
    post,
    path = "/api/v1/backups",
    tag = TAG_UI,
    operation_id = "admin_backup",
    responses(
        (status = 201, description = "The backup written", body = BackupResult),
        (status = 400, description = "Invalid body", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The backup failed (disk full, the writer stopped; nothing is left behind), or the trail is read-only", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn create_backup(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let p = match admin(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = refuse_if_read_only(&state) {
        return r;
    }
    let Ok(body) = read_body(&req, payload, 4 << 10).await else {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the body is limited to 4 KiB");
    };
    let include_keys = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        if !is_json(&req) {
            return problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json");
        }
        let body = match crate::event::canonical::parse_strict(&body, 4) {
            Ok(Value::Object(o)) => o,
            Ok(_) => return problem(StatusCode::BAD_REQUEST, "invalid_body", "the body must be a JSON object"),
            Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()),
        };
        if let Some(k) = body.keys().find(|k| k.as_str() != "include_keys") {
            return problem(StatusCode::BAD_REQUEST, "invalid_body", &format!("unknown field {k:?}"));
        }
        match body.get("include_keys") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return problem(StatusCode::BAD_REQUEST, "invalid_body", "include_keys: true or false"),
        }
    };
    let dir = state.config.backups();
    let name = format!("trailkeep-{}.db", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let file = dir.join(&name);
    let prepared = {
        let (dir, file) = (dir.clone(), file.clone());
        web::block(move || -> anyhow::Result<()> {
            crate::datadir::prepare_dir(&dir)?;
            crate::backup::check_free(&file)
        })
        .await
    };
    if !matches!(prepared, Ok(Ok(()))) {
        tracing::error!("cannot prepare the backup directory");
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the backup directory cannot be written");
    }
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let recorded = match system::backup_started(&p.key_id, peer, &name, include_keys, state.config.redact_private_ips) {
        Some(ev) => state.writer.append(vec![ev]).await.is_ok(),
        None => false,
    };
    if !recorded {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the backup could not be recorded; retry");
    }
    // On a task of its own: a client that goes away does not leave a copy half made.
    let (writer, data_dir, to) = (state.writer.clone(), state.data_dir.clone(), file.clone());
    let made = actix_web::rt::spawn(async move {
        let started = std::time::Instant::now();
        let copy = writer.backup(to.clone(), BACKUP_STEP_PAGES).await.map_err(|e| match e {
            crate::store::writer::WriteError::Busy => "the writer is busy; retry",
            _ => "the backup failed; nothing was kept",
        })?;
        let sealed = web::block(move || {
            let sealed = crate::backup::finish_online(&data_dir, &to, include_keys)
                .and_then(|b| Ok((b, std::fs::metadata(&to)?.len())));
            if sealed.is_err() {
                let _ = std::fs::remove_dir_all(crate::backup::keys_beside(&to));
                let _ = std::fs::remove_file(crate::backup::checkpoint_beside(&to));
                let _ = std::fs::remove_file(&to);
            }
            sealed
        })
        .await;
        match sealed {
            Ok(Ok((b, bytes))) => Ok((copy, b, bytes, started.elapsed())),
            _ => {
                tracing::error!("cannot finish the online backup");
                Err("the backup failed; nothing was kept")
            }
        }
    });
    let (copy, b, bytes, took) = match made.await {
        Ok(Ok(done)) => done,
        Ok(Err(why)) => return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why),
        Err(_) => {
            return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the backup failed; nothing was kept");
        }
    };
    tracing::info!(file = %name, bytes, tree_size = b.checkpoint.root.size, restarts = copy.restarts, "online backup written");
    HttpResponse::Created().json(json!({
        "file": file.display().to_string(),
        "bytes": bytes,
        "tree_size": b.checkpoint.root.size,
        "root_hash": b.checkpoint.root.root_hash,
        "keys": b.keys.iter().map(|k| k.id()).collect::<Vec<_>>(),
        "seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
        "restarts": copy.restarts,
    }))
}
