//! The embedded web UI (`web/`, rust-embed) and the JSON routes it uses beyond the Pangea
//! dialect: who am I, the server public key, signed roots, live tail (SSE) and streamed export.
//! Every other unknown path answers 404 in the H2O error shape (GET on non-API paths falls back
//! to `index.html` so UI URLs can be shared).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use rust_embed::RustEmbed;
use serde_json::{Value, json};

use super::apidoc::{Problem, TAG_OPS, TAG_UI};
use super::auth::{AuthFailure, ConfigAccess, authenticate, config_for, refresh_configs};
use super::h2o::error::H2oError;
use super::pangea::schema::PangeaEnvelope;
use super::state::{State, replication_report, with_reader};
use crate::configs::{AuditConfig, SelectError};
use crate::keys::Principal;
use crate::search::pangea_query;
use crate::store::search::{PangeaQuery, pangea_search, rows_by_seq};
use crate::store::writer;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// The key making the request.
#[derive(utoipa::ToSchema)]
pub struct WhoAmI {
    pub key_id: String,
    pub name: String,
    /// `ingest`, `search`, `admin`.
    pub scopes: Vec<String>,
    /// Empty: every workspace.
    pub workspaces: Vec<String>,
    /// The audit configs the key may use (admin keys: all), the default config first when the
    /// key may use it. A UI shows a config selector when there are several and passes the chosen
    /// `config_id` to the Pangea routes, `tail` and `export`.
    pub configs: Vec<WhoAmIConfig>,
}

/// An audit config a key may use.
#[derive(utoipa::ToSchema)]
pub struct WhoAmIConfig {
    /// `pci_…`
    pub id: String,
    pub name: String,
    /// Whether this is the default config (Pangea's standard schema; H2O events).
    pub default: bool,
    /// Whether the server signs its events (`vault_sign`).
    pub vault_sign: bool,
}

/// The key that signs the roots.
#[derive(utoipa::ToSchema)]
pub struct PublicKey {
    #[schema(example = "ED25519")]
    pub algorithm: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub tree_name: String,
}

/// A signed root and the exact message that was signed.
#[derive(utoipa::ToSchema)]
pub struct SignedRoot {
    pub tree_name: String,
    pub size: u64,
    #[schema(min_length = 64, max_length = 64)]
    pub root_hash: String,
    #[schema(format = DateTime)]
    pub published_at: String,
    /// Base64 Ed25519 signature of `signed_message`.
    pub signature: String,
    /// Canonical JSON of `{published_at, root_hash, size, tree_name}`.
    pub signed_message: String,
}

#[derive(utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Ready when the database answers, the writer runs and the tree matches the checkpoint file.
#[derive(utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub database: bool,
    pub writer: bool,
    pub checkpoint: bool,
    pub tree_size: u64,
    /// Replication (never affects readiness): `{"enabled": false}`, or `enabled`, `state`,
    /// `lag_events`, `lag_seconds`, `replicated_events`, `last_upload_at`.
    #[schema(value_type = Object)]
    pub replication: serde_json::Value,
}

/// One exported event: an element of a JSON export, a line of a `jsonl.gz` export (which adds
/// `membership_proof`, `tree_size` and `root`) and of a replicated object (README, "The line
/// format"; `crate::export::write_line`).
#[derive(utoipa::ToSchema)]
pub struct ExportedEvent {
    /// The stored envelope, byte for byte: SHA-256 of its canonical JSON is `hash`. `null` when
    /// retention removed the event's content.
    pub envelope: Option<PangeaEnvelope>,
    /// When the event happened (µs precision).
    #[schema(format = DateTime)]
    pub event_time: String,
    #[schema(min_length = 64, max_length = 64)]
    pub hash: String,
    /// The event id (a UUID).
    pub id: String,
    /// The event's buffer: its leaf in the cold tree.
    pub leaf_index: u64,
    /// `h2o`, `pangea` or `server`: the API that brought the event in.
    pub origin: String,
    pub published: bool,
    /// The event's position in the log (0-based, contiguous).
    pub seq: u64,
    /// Only when retention removed the content: the event's workspace.
    #[schema(nullable = false)]
    pub workspace: Option<String>,
    /// `jsonl.gz` exports only: `l:<hex>,r:<hex>,…` from `hash` to `root.root_hash`.
    #[schema(nullable = false)]
    pub membership_proof: Option<String>,
    /// `jsonl.gz` exports only: the size of the tree `root` is the root of.
    #[schema(nullable = false)]
    pub tree_size: Option<u64>,
    /// `jsonl.gz` exports only: the signed root (`published_at`, `root_hash`, `signature`, `size`,
    /// `tree_name`); its signature verifies with the server's public key.
    #[schema(nullable = false, value_type = Option<Object>)]
    pub root: Option<serde_json::Value>,
}

const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/whoami", web::get().to(whoami))
        .route("/api/v1/public-key", web::get().to(public_key))
        .route("/api/v1/roots/{size}", web::get().to(signed_root))
        .route("/api/v1/tail", web::get().to(tail))
        .route("/api/v1/export", web::get().to(export))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .default_service(web::to(fallback));
}

/// Problem-style errors for the UI routes.
pub(super) fn problem(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(json!({"type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "code": code, "detail": detail}))
}

pub(super) async fn principal(state: &State, req: &HttpRequest) -> Result<Principal, HttpResponse> {
    authenticate(state, req).await.map_err(|f| match f {
        AuthFailure::Unauthenticated => {
            let mut r = problem(StatusCode::UNAUTHORIZED, "invalid_credentials", "a valid API key is required");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            r
        }
        AuthFailure::Unavailable => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
        AuthFailure::RateLimited(secs) => {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed authentication attempts; retry later",
            );
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            r
        }
    })
}

/// Liveness
///
/// Answers as long as the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = TAG_OPS,
    operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Health)),
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness
///
/// Ready when the database answers, the writer runs, and the tree matches the checkpoint file.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = TAG_OPS,
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; the flags say what failed", body = Readiness),
    ),
)]
async fn readyz(state: State) -> HttpResponse {
    let db = with_reader(&state, |c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).await.is_ok();
    let writer = !state.writer.is_closed();
    let dir = state.data_dir.clone();
    let ledger = state.ledger.clone();
    let checkpoint = with_reader(&state, move |c| {
        Ok(match crate::ledger::read_checkpoint(&dir) {
            Ok(Some(cp)) => {
                let root = crate::store::tree::TreeReader::new(c, &ledger).root(cp.root.size)?;
                crate::ledger::check_against_checkpoint(ledger.size(), root, &ledger.tree_name, &cp).is_ok()
            }
            Ok(None) => true,
            Err(_) => false,
        })
    })
    .await
    .unwrap_or(false);
    let ready = db && writer && checkpoint;
    // Replication lag is reported, never a reason to be unready: ingest does not depend on it.
    let replication = match replication_report(&state).await {
        Some(r) if r["enabled"] == true => json!({
            "enabled": true, "state": r["state"], "lag_events": r["lag_events"], "lag_seconds": r["lag_seconds"],
            "replicated_events": r["replicated_events"], "last_upload_at": r["last_upload_at"],
        }),
        Some(r) => r,
        None => json!({"enabled": state.replication.is_some()}),
    };
    let body = json!({"ready": ready, "database": db, "writer": writer, "checkpoint": checkpoint,
        "tree_size": state.ledger.size(), "replication": replication});
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

/// The calling key
///
/// The key's id, name, scopes and workspace limits (used by the UI's sign-in).
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = TAG_UI,
    operation_id = "whoami",
    responses(
        (status = 200, description = "The key", body = WhoAmI),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Key store unavailable", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn whoami(state: State, req: HttpRequest) -> HttpResponse {
    let p = match principal(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if refresh_configs(&state, p.config_version).await.is_err() {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable");
    }
    let configs: Vec<Value> = state
        .configs
        .usable(&p)
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name, "default": c.is_default(), "vault_sign": c.signing_key.is_some()}))
        .collect();
    HttpResponse::Ok().json(json!({
        "key_id": p.key_id, "name": p.name, "scopes": p.scopes.names(), "workspaces": p.workspaces, "configs": configs,
    }))
}

/// The config a UI request works on (`config_id`, else the key's), or a problem response.
/// The caller as a key that may search, and the audit config its request selects: the start of
/// every UI read route (tail, export, aggregate).
pub(super) async fn searcher(
    state: &State,
    req: &HttpRequest,
    requested: Option<&str>,
) -> Result<(Principal, Arc<AuditConfig>), HttpResponse> {
    let p = match principal(state, req).await {
        Ok(p) if p.scopes.can_search() => p,
        Ok(_) => return Err(problem(StatusCode::FORBIDDEN, "forbidden", "this key may not search")),
        Err(r) => return Err(r),
    };
    let config = ui_config(state, &p, requested).await?;
    Ok((p, config))
}

pub(super) async fn ui_config(
    state: &State,
    p: &Principal,
    requested: Option<&str>,
) -> Result<Arc<AuditConfig>, HttpResponse> {
    config_for(state, p, requested.filter(|c| !c.is_empty())).await.map_err(|e| match e {
        ConfigAccess::Denied(SelectError::Missing) => problem(
            StatusCode::BAD_REQUEST,
            "config_required",
            "this key is bound to several audit configs: give config_id",
        ),
        ConfigAccess::Denied(SelectError::Malformed) => {
            problem(StatusCode::BAD_REQUEST, "invalid_config_id", "config_id must be pci_ and 32 letters or digits")
        }
        ConfigAccess::Denied(SelectError::Refused) => {
            problem(StatusCode::FORBIDDEN, "forbidden", "this key may not use that audit config")
        }
        ConfigAccess::Denied(SelectError::NotFound) => {
            problem(StatusCode::NOT_FOUND, "not_found", "no audit config with that id")
        }
        ConfigAccess::Unavailable => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
    })
}

/// The server's public key
///
/// The Ed25519 key that signs the roots, and the tree name. No key needed.
#[utoipa::path(
    get,
    path = "/api/v1/public-key",
    tag = TAG_UI,
    operation_id = "public_key",
    responses((status = 200, description = "The public key", body = PublicKey)),
)]
async fn public_key(state: State) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "algorithm": "ED25519",
        "public_key": state.ledger.public_key_b64(),
        "tree_name": state.ledger.tree_name,
    }))
}

/// A signed root
///
/// The signed root of the tree at exactly `size` leaves, with the signed message.
#[utoipa::path(
    get,
    path = "/api/v1/roots/{size}",
    tag = TAG_UI,
    operation_id = "signed_root",
    params(("size" = u64, Path, description = "Tree size", example = 1)),
    responses(
        (status = 200, description = "The signed root", body = SignedRoot),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No signed root of that size", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Storage unavailable", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn signed_root(state: State, req: HttpRequest, size: web::Path<String>) -> HttpResponse {
    if let Err(r) = principal(&state, &req).await {
        return r;
    }
    let Ok(size) = size.parse::<u64>() else {
        return problem(StatusCode::NOT_FOUND, "not_found", "no signed root of that size");
    };
    let ledger = state.ledger.clone();
    match with_reader(&state, move |c| writer::root_at(c, &ledger, size)).await {
        Ok(Some(root)) => HttpResponse::Ok().json(json!({
            "tree_name": root.tree_name, "size": root.size, "root_hash": root.root_hash,
            "published_at": root.published_at, "signature": root.signature, "signed_message": root.message(),
        })),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not_found", "no signed root of that size"),
        Err(()) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
    }
}

#[derive(serde::Deserialize)]
struct TailParams {
    query: Option<String>,
    config_id: Option<String>,
}

/// Live tail
///
/// Server-sent events: one `data:` line per newly committed event that matches the query and the
/// key's workspaces (JSON `{"envelope", "hash", "published", "leaf_index"}`, as a Pangea search
/// event), and a comment every 15 s.
#[utoipa::path(
    get,
    path = "/api/v1/tail",
    tag = TAG_UI,
    operation_id = "tail",
    params(
        ("query" = Option<String>, Query, description = "Pangea query language (the config's fields); empty: every event",
            example = "actor:alice"),
        ("config_id" = Option<String>, Query, description = "The audit config (else the key's only config, else the default config)"),
    ),
    responses(
        (status = 200, description = "An endless event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid query", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "The key may not search", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Storage unavailable", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn tail(state: State, req: HttpRequest, params: web::Query<TailParams>) -> HttpResponse {
    let (p, config) = match searcher(&state, &req, params.config_id.as_deref()).await {
        Ok(pc) => pc,
        Err(r) => return r,
    };
    let expr = match pangea_query::parse_in(params.query.as_deref().unwrap_or(""), &config.catalog()) {
        Ok(e) => e,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_query", &e.detail),
    };
    let catalog = config.catalog();
    let mut notify = state.writer.committed.subscribe();
    let Ok(mut last_seq) =
        with_reader(&state, |c| c.query_row("SELECT COALESCE(MAX(seq), -1) FROM events", [], |r| r.get::<_, i64>(0)))
            .await
    else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable");
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<crate::export::Chunk>(16);
    let st = state.clone();
    let mut shutdown = state.shutdown.subscribe();
    actix_web::rt::spawn(async move {
        let _ = tx.send(Ok(web::Bytes::from_static(b": tail started\n\n"))).await;
        loop {
            tokio::select! {
                r = notify.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        break;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(15)) => {
                    if tx.send(Ok(web::Bytes::from_static(b": keep-alive\n\n"))).await.is_err() {
                        break;
                    }
                    continue;
                }
                _ = shutdown.changed() => break,
                _ = tx.closed() => break,
            }
            let q = PangeaQuery {
                expr: expr.clone(),
                allowed_workspaces: p.is_limited().then(|| p.workspaces.clone()),
                ascending: true,
                order_by: "received_at".into(),
                max_results: 500,
                after_seq: Some(last_seq),
                catalog: Some(catalog.clone()),
                ..Default::default()
            };
            if q.uses_fulltext() {
                st.writer.sync_fts().await;
            }
            let Ok(rows) = with_reader(&st, move |c| {
                let seqs = pangea_search(c, &q)?;
                rows_by_seq(c, &seqs)
            })
            .await
            else {
                continue;
            };
            for r in rows {
                last_seq = last_seq.max(r.seq);
                let ev = json!({
                    "envelope": serde_json::from_str::<Value>(&r.envelope).unwrap_or(Value::Null),
                    "hash": hex::encode(r.hash), "published": true, "leaf_index": r.buffer,
                });
                if tx.send(Ok(web::Bytes::from(format!("data: {ev}\n\n")))).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}

#[derive(serde::Deserialize)]
struct ExportParams {
    format: Option<String>,
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    config_id: Option<String>,
}

/// Export events
///
/// Streams every matching event (newest first, within the key's workspaces) as a CSV, JSON or
/// gzipped JSON Lines attachment, page by page.
#[utoipa::path(
    get,
    path = "/api/v1/export",
    tag = TAG_UI,
    operation_id = "ui_export",
    params(
        ("format" = Option<String>, Query, description = "`csv`, `json` (default) or `jsonl.gz`", example = "csv"),
        ("query" = Option<String>, Query, description = "Pangea query language (the config's fields); empty: every event"),
        ("config_id" = Option<String>, Query, description = "The audit config (else the key's only config, else the default config); CSV has a column per field of its schema"),
        ("start" = Option<String>, Query, format = DateTime, description = "Earliest `received_at` (RFC 3339)"),
        ("end" = Option<String>, Query, format = DateTime, description = "Latest `received_at` (RFC 3339)"),
    ),
    responses(
        (status = 200, description = "The events as an attachment", content(
            (Vec<ExportedEvent> = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/gzip"),
        )),
        (status = 400, description = "Invalid format, query or time", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "The key may not search", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn export(state: State, req: HttpRequest, params: web::Query<ExportParams>) -> HttpResponse {
    let (p, config) = match searcher(&state, &req, params.config_id.as_deref()).await {
        Ok(pc) => pc,
        Err(r) => return r,
    };
    let format = params.format.clone().unwrap_or_else(|| "json".into());
    if !["csv", "json", "jsonl.gz"].contains(&format.as_str()) {
        return problem(StatusCode::BAD_REQUEST, "invalid_format", "format must be csv, json or jsonl.gz");
    }
    let expr = match pangea_query::parse_in(params.query.as_deref().unwrap_or(""), &config.catalog()) {
        Ok(e) => e,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_query", &e.detail),
    };
    let time = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(crate::time::parse_pangea_time);
    let (start, end) = (time(&params.start), time(&params.end));
    if start.is_some_and(|t| t.is_none()) || end.is_some_and(|t| t.is_none()) {
        return problem(StatusCode::BAD_REQUEST, "invalid_timestamp", "start and end must be RFC 3339 date-times");
    }
    let q = PangeaQuery {
        expr,
        start_us: start.flatten(),
        end_us: end.flatten(),
        allowed_workspaces: p.is_limited().then(|| p.workspaces.clone()),
        order_by: "received_at".into(),
        max_results: 10_000_000,
        catalog: Some(config.catalog()),
        ..Default::default()
    };
    if q.uses_fulltext() {
        state.writer.sync_fts().await;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<crate::export::Chunk>(4);
    let pool = state.pool.clone();
    let ledger = state.ledger.clone();
    let fmt = format.clone();
    let fields: Vec<String> = config.schema.fields.iter().map(|f| f.id.clone()).collect();
    std::thread::spawn(move || {
        if let Err(e) = crate::export::stream(&pool, ledger, &q, &fmt, &fields, &tx) {
            tracing::warn!(error = %e, "export stopped");
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let (ctype, ext) = match format.as_str() {
        "csv" => ("text/csv; charset=utf-8", "csv"),
        "json" => ("application/json", "json"),
        _ => ("application/gzip", "jsonl.gz"),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, ctype))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"trailkeep-export.{ext}\"")))
        .streaming(stream)
}

fn is_api_path(path: &str) -> bool {
    ["/v1/", "/pangea/", "/api/", "/oauth/", "/.well-known/", "/.ai.h2o.cloud.discovery/", "/download/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Embedded assets with ETag, strict CSP and nosniff; `index.html` for `/` and for browser
/// navigations (Accept: text/html) to other UI paths; H2O-shaped 404 everywhere else.
async fn fallback(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    let get_routes = ["/api/v1/whoami", "/api/v1/public-key", "/api/v1/tail", "/api/v1/export", "/healthz", "/readyz"];
    if req.method() != actix_web::http::Method::GET
        && (get_routes.contains(&path) || path.starts_with("/api/v1/roots/"))
    {
        let mut r = problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return r;
    }
    if req.method() != actix_web::http::Method::GET && req.method() != actix_web::http::Method::HEAD
        || is_api_path(path)
    {
        return H2oError::not_found().error_response();
    }
    let name = path.trim_start_matches('/');
    let wants_html =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    let file = match Assets::get(name) {
        Some(f) if !name.is_empty() => f,
        _ if !name.is_empty() && (!wants_html || name.contains('.')) => return H2oError::not_found().error_response(),
        _ => match Assets::get("index.html") {
            Some(f) => f,
            None => return H2oError::not_found().error_response(),
        },
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let not_modified = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    let mut resp = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    let mime = file.metadata.mimetype();
    let charset = if mime.starts_with("text/") || mime.contains("javascript") || mime.contains("json") {
        "; charset=utf-8"
    } else {
        ""
    };
    resp.insert_header((header::CONTENT_TYPE, format!("{mime}{charset}")))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if not_modified {
        return resp.finish();
    }
    resp.body(file.data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_with_a_known_type() {
        let names: Vec<_> = Assets::iter().collect();
        assert!(names.iter().any(|n| n == "index.html"), "{names:?}");
        for n in names {
            let f = Assets::get(&n).unwrap();
            let mime = f.metadata.mimetype();
            assert!(mime != "application/octet-stream" || n.contains("LICENSE"), "no content type for {n}");
        }
    }
}
