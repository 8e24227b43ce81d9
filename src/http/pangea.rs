//! The Pangea Secure Audit Log dialect under `/pangea` (`spec/pangea-api.md`): log, bulk and async
//! log, search, results, root, download_results, export, and the async poll.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::openapi::{
    DownloadError, Empty, PangeaAcceptedResponse, PangeaDownloadRequest, PangeaDownloadResult, PangeaErrorResponse,
    PangeaExportRequest, PangeaLogBulkRequest, PangeaLogBulkResult, PangeaLogRequest, PangeaLogResult,
    PangeaLogStreamRequest, PangeaPollResult, PangeaResponse, PangeaResultsBadRequest, PangeaResultsRequest,
    PangeaResultsResult, PangeaRootRequest, PangeaRootResult, PangeaSearchRequest, PangeaSearchResult,
    PangeaValidationErrorResponse, TAG_PANGEA,
};
use super::{AuthFailure, BodyError, Expiring, State, authenticate, base_url, random_id, read_body, with_reader};
use crate::event::canonical::{parse_strict, to_canonical_string};
use crate::event::{EventType, NewEvent, Origin, StoredEvent};
use crate::export::CSV_COLUMNS;
use crate::keys::Principal;
use crate::ledger::Ledger;
use crate::ledger::merkle::{CompactTree, Hash, encode_path, parse_hash, path};
use crate::search::pangea_query;
use crate::store::search::{EventRow, PANGEA_ORDER_BY, PangeaQuery, buffer_hashes, pangea_search, rows_by_seq};
use crate::store::writer::{self, Outcome, WriteError};
use crate::time::{format_micros, now_micros, parse_duration, parse_pangea_time};

const LOG_LIMIT: usize = 1 << 20;
const BULK_LIMIT: usize = 16 << 20;
const MAX_DEPTH: usize = 64;
const SEARCH_TTL_US: i64 = 48 * 3600 * 1_000_000;
const REQUEST_TTL_US: i64 = 3600 * 1_000_000;
const RETRY_TTL_US: i64 = 600 * 1_000_000;
const RETRY_MAX_EVENTS: usize = 100;
const EXPORT_TTL_US: i64 = 24 * 3600 * 1_000_000;
const EXPORT_MAX: usize = 1_000_000;

/// Standard event fields and their maximum lengths (code points).
const EVENT_FIELDS: [(&str, usize); 10] = [
    ("message", 32766),
    ("actor", 128),
    ("action", 32),
    ("new", 32766),
    ("old", 32766),
    ("source", 128),
    ("status", 32),
    ("target", 128),
    ("tenant_id", 128),
    ("timestamp", 128),
];

/// A frozen search result (P9).
#[derive(Clone)]
pub struct Snapshot {
    pub key_id: String,
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

// ---------------------------------------------------------------------------------------------
// Envelope and errors

struct Ctx {
    request_id: String,
    request_time: String,
}

impl Ctx {
    fn new() -> Self {
        Self { request_id: random_id("prq_"), request_time: now_ms() }
    }
    fn respond(&self, http: StatusCode, status: &str, summary: &str, result: Value) -> HttpResponse {
        HttpResponse::build(http).insert_header(("x-request-id", self.request_id.as_str())).json(json!({
            "request_id": self.request_id,
            "request_time": self.request_time,
            "response_time": now_ms(),
            "status": status,
            "summary": summary,
            "result": result,
        }))
    }
    fn ok(&self, summary: &str, result: Value) -> HttpResponse {
        self.respond(StatusCode::OK, "Success", summary, result)
    }
    fn error(&self, e: PangeaError) -> HttpResponse {
        match e {
            PangeaError::Validation(errors) => {
                let summary = format!("There was {} error(s) in the given payload.", errors.len());
                let errors: Vec<Value> = errors
                    .into_iter()
                    .map(|(code, detail, source)| json!({"code": code, "detail": detail, "source": source}))
                    .collect();
                self.respond(StatusCode::BAD_REQUEST, "ValidationError", &summary, json!({"errors": errors}))
            }
            PangeaError::TooLarge => self.respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ValidationError",
                "There was 1 error(s) in the given payload.",
                json!({"errors": [{"code": "AboveMaxLength", "detail": "request body too large", "source": "/"}]}),
            ),
            PangeaError::UnsupportedMediaType => self.respond(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "ValidationError",
                "There was 1 error(s) in the given payload.",
                json!({"errors": [{"code": "BadFormat", "detail": "the body must be sent as Content-Type: application/json", "source": "/"}]}),
            ),
            PangeaError::Unauthenticated => {
                let mut r = self.respond(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Not authorized to access this resource",
                    Value::Null,
                );
                r.headers_mut().insert(
                    actix_web::http::header::WWW_AUTHENTICATE,
                    actix_web::http::header::HeaderValue::from_static("Bearer"),
                );
                r
            }
            PangeaError::Forbidden => self.respond(
                StatusCode::FORBIDDEN,
                "Unauthorized",
                "Not authorized to access this resource",
                Value::Null,
            ),
            PangeaError::NotFound => self.respond(StatusCode::NOT_FOUND, "NotFound", "Resource not found", Value::Null),
            PangeaError::BadOffset => {
                self.respond(StatusCode::BAD_REQUEST, "BadOffset", "Offset is beyond the result set", Value::Null)
            }
            PangeaError::TreeNotFound => {
                self.respond(StatusCode::NOT_FOUND, "TreeNotFound", "Tree not found", Value::Null)
            }
            PangeaError::RateLimited(secs) => {
                let mut r = self.respond(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many failed authentication attempts; retry later",
                    Value::Null,
                );
                r.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(secs),
                );
                r
            }
            PangeaError::StorageFull => {
                let mut r = self.respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceNotAvailable",
                    "Storage is full; nothing was logged, retry later",
                    Value::Null,
                );
                r.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(super::h2o::STORAGE_FULL_RETRY_S),
                );
                r
            }
            PangeaError::Unavailable => self.respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceNotAvailable",
                "Service temporarily unavailable",
                Value::Null,
            ),
        }
    }
}

fn now_ms() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[derive(Debug)]
enum PangeaError {
    /// (code, detail, source JSON pointer)
    Validation(Vec<(&'static str, String, String)>),
    TooLarge,
    UnsupportedMediaType,
    Unauthenticated,
    Forbidden,
    NotFound,
    BadOffset,
    TreeNotFound,
    /// 429 with `Retry-After` in seconds.
    RateLimited(u64),
    Unavailable,
    /// 503: the disk is full, nothing was stored.
    StorageFull,
}

fn invalid(code: &'static str, detail: impl Into<String>, source: impl Into<String>) -> PangeaError {
    PangeaError::Validation(vec![(code, detail.into(), source.into())])
}

impl From<AuthFailure> for PangeaError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Unauthenticated => Self::Unauthenticated,
            AuthFailure::Unavailable => Self::Unavailable,
            AuthFailure::RateLimited(secs) => Self::RateLimited(secs),
        }
    }
}

impl From<BodyError> for PangeaError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Self::TooLarge,
            BodyError::Read => invalid("BadFormat", "cannot read the request body", "/"),
        }
    }
}

impl From<WriteError> for PangeaError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Full => Self::StorageFull,
            _ => Self::Unavailable,
        }
    }
}

type PResult = Result<Value, PangeaError>;

/// Renders a handler result as a Success envelope, or its error.
fn finish(ctx: Ctx, summary: impl FnOnce(&Value) -> String, r: PResult) -> HttpResponse {
    match r {
        Ok(v) => {
            let s = summary(&v);
            ctx.ok(&s, v)
        }
        Err(e) => ctx.error(e),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/pangea")
            .service(post_resource("/v1/log", web::post().to(log)))
            .service(post_resource("/v2/log", web::post().to(log_bulk)))
            .service(post_resource("/v2/log_async", web::post().to(log_bulk_async)))
            .service(post_resource("/v1/log_stream", web::post().to(log_stream)))
            .service(post_resource("/v1/search", web::post().to(search)))
            .service(post_resource("/v1/results", web::post().to(results)))
            .service(post_resource("/v1/root", web::post().to(root)))
            .service(post_resource("/v1/download_results", web::post().to(download_results)))
            .service(post_resource("/v1/export", web::post().to(export)))
            .route("/request/{id}", web::get().to(poll))
            .default_service(web::to(|| async { Ctx::new().error(PangeaError::NotFound) })),
    )
    .route("/download/{token}/{name}", web::get().to(download_file));
}

fn post_resource(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(route).default_service(web::to(|| async {
        let mut r = Ctx::new().respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "ValidationError",
            "There was 1 error(s) in the given payload.",
            json!({"errors": [{"code": "BadFormat", "detail": "method not allowed; use POST", "source": "/"}]}),
        );
        r.headers_mut()
            .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("POST"));
        r
    }))
}

async fn require(state: &State, req: &HttpRequest, need: fn(&Principal) -> bool) -> Result<Principal, PangeaError> {
    let p = authenticate(state, req).await?;
    if need(&p) { Ok(p) } else { Err(PangeaError::Forbidden) }
}

fn can_ingest(p: &Principal) -> bool {
    p.scopes.can_ingest()
}
fn can_search(p: &Principal) -> bool {
    p.scopes.can_search()
}
fn any_key(_: &Principal) -> bool {
    true
}

// ---------------------------------------------------------------------------------------------
// Body parsing

async fn body_object(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Map<String, Value>, PangeaError> {
    if !super::is_json(req) {
        return Err(PangeaError::UnsupportedMediaType);
    }
    let bytes = read_body(req, payload, limit).await?;
    match parse_strict(&bytes, MAX_DEPTH) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("InvalidObject", "the request body must be a JSON object", "/")),
        Err(e) => Err(invalid("BadFormat", format!("invalid JSON: {}", truncate(&e.detail, 180)), "/")),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn check_keys(body: &Map<String, Value>, allowed: &[&str], prefix: &str) -> Result<(), PangeaError> {
    let errors: Vec<_> = body
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()) && k.as_str() != "config_id")
        .map(|k| {
            (
                "UnexpectedProperty",
                format!("'{}' is not an allowed property", truncate(k, 64)),
                format!("{prefix}/{}", truncate(k, 64)),
            )
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(PangeaError::Validation(errors)) }
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, PangeaError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid("InvalidBool", format!("'{key}' must be a boolean"), format!("/{key}"))),
    }
}

fn opt_string<'a>(body: &'a Map<String, Value>, key: &str, max: usize) -> Result<Option<&'a str>, PangeaError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s)),
        Some(Value::String(_)) => {
            Err(invalid("AboveMaxLength", format!("'{key}' is longer than {max} characters"), format!("/{key}")))
        }
        Some(_) => Err(invalid("InvalidString", format!("'{key}' must be a string"), format!("/{key}"))),
    }
}

fn opt_int(body: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<i64>, PangeaError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(invalid("NotWithinRange", format!("'{key}' must be between {min} and {max}"), format!("/{key}"))),
        },
        Some(_) => Err(invalid("InvalidInteger", format!("'{key}' must be an integer"), format!("/{key}"))),
    }
}

/// Pangea's `DateTimeRel` RFC 3339 pattern (offset optional).
fn timestamp_ok(s: &str) -> bool {
    parse_pangea_time(s).is_some()
}

/// A standard Pangea event, validated (§5.2). `source` is the JSON pointer of the event object.
fn parse_event(v: Option<&Value>, source: &str) -> Result<Map<String, Value>, PangeaError> {
    let obj = match v {
        None | Some(Value::Null) => {
            return Err(invalid("FieldRequired", "'event' is a required property", source.to_string()));
        }
        Some(Value::Object(o)) => o,
        Some(_) => return Err(invalid("InvalidObject", "'event' must be an object", source.to_string())),
    };
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (k, val) in obj {
        let src = format!("{source}/{}", truncate(k, 64));
        let Some((_, max)) = EVENT_FIELDS.iter().find(|(f, _)| f == k) else {
            errors.push(("UnexpectedProperty", format!("'{}' is not an allowed property", truncate(k, 64)), src));
            continue;
        };
        let s = match val {
            Value::String(s) => s.clone(),
            Value::Object(_) | Value::Array(_) if matches!(k.as_str(), "message" | "new" | "old") => {
                if !integers_only(val) {
                    errors.push((
                        "InvalidString",
                        format!("'{k}' may contain only strings, integers, booleans and null"),
                        src,
                    ));
                    continue;
                }
                to_canonical_string(val)
            }
            _ => {
                errors.push(("InvalidString", format!("'{k}' must be a string"), src));
                continue;
            }
        };
        if s.chars().count() > *max {
            errors.push(("AboveMaxLength", format!("'{k}' is longer than {max} characters"), src));
            continue;
        }
        if k == "timestamp" && !timestamp_ok(&s) {
            errors.push(("BadFormatDateTime", "'timestamp' must be an RFC 3339 date-time".to_string(), src));
            continue;
        }
        out.insert(k.clone(), Value::String(s));
    }
    if !out.contains_key("message") && !errors.iter().any(|e| e.2.ends_with("/message")) {
        errors.push(("FieldRequired", "'message' is a required property".into(), format!("{source}/message")));
    }
    if errors.is_empty() { Ok(out) } else { Err(PangeaError::Validation(errors)) }
}

fn integers_only(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(a) => a.iter().all(integers_only),
        Value::Object(o) => o.values().all(integers_only),
        _ => true,
    }
}

/// One item of a log request → canonical event.
fn parse_item(item: &Map<String, Value>, prefix: &str, principal: &Principal) -> Result<NewEvent, PangeaError> {
    let event = parse_event(item.get("event"), &format!("{prefix}/event"))?;
    let signature = opt_string(item, "signature", 1024)?.map(str::to_string);
    let public_key = opt_string(item, "public_key", 1024)?.map(str::to_string);
    new_event(event, signature, public_key, principal)
}

/// A validated standard event → canonical event, checking the key may write its tenant.
fn new_event(
    event: Map<String, Value>,
    signature: Option<String>,
    public_key: Option<String>,
    principal: &Principal,
) -> Result<NewEvent, PangeaError> {
    let tenant = event.get("tenant_id").and_then(Value::as_str).unwrap_or("").to_string();
    if !principal.may_see(&tenant) {
        return Err(PangeaError::Forbidden);
    }
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_string);
    let status = text("status");
    let fts_body = crate::event::fts_body(Origin::Pangea, &event);
    Ok(NewEvent {
        // Time-ordered ids keep the unique index append-only for Pangea events.
        uid: Uuid::now_v7(),
        origin: Origin::Pangea,
        workspace: tenant,
        actor: text("actor").unwrap_or_default(),
        action: text("action").unwrap_or_default(),
        event_source: "pangea".into(),
        target: text("target"),
        source: text("source"),
        status_code: status.as_deref().and_then(|s| s.parse::<i32>().ok()).map(i64::from),
        status,
        read_only: false,
        event_type: EventType::Unspecified,
        event_time: text("timestamp").and_then(|t| parse_pangea_time(&t)),
        fts_body,
        event,
        signature,
        public_key,
    })
}

fn stored_of(outcome: Outcome) -> Result<StoredEvent, PangeaError> {
    match outcome {
        Outcome::Stored(s) | Outcome::Existing(s) => Ok(s),
        Outcome::Conflict => Err(PangeaError::Unavailable),
    }
}

// ---------------------------------------------------------------------------------------------
// Log endpoints

/// Log an event
///
/// Appends one event to the tamper-evident log. With `verbose`, the answer carries the envelope, the
/// unpublished root after this append and a membership proof (plus a consistency proof from
/// `prev_root`). A retry naming a committed request in `X-Pangea-Retried-Request-Ids` gets the
/// stored result and logs nothing.
#[utoipa::path(
    post,
    path = "/pangea/v1/log",
    tag = TAG_PANGEA,
    operation_id = "pangea_log",
    params(("X-Pangea-Retried-Request-Ids" = Option<String>, Header,
        description = "Comma-separated request ids of earlier attempts (sent by the SDK on retries)")),
    request_body(content = PangeaLogRequest),
    responses(
        (status = 200, description = "`Success`: logged", body = PangeaResponse<PangeaLogResult>),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope, or may not write this `tenant_id`", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 1 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn log(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    if let Some(r) = replayed(&state, &req, &ctx).await {
        return r;
    }
    let r = log_inner(&state, &req, payload).await;
    remember(&state, &req, &ctx, &r).await;
    finish(ctx, |_| "Logged 1 record(s)".into(), r)
}

/// P27: a retry naming an already committed log request gets the stored result, nothing new is logged.
async fn replayed(state: &State, req: &HttpRequest, ctx: &Ctx) -> Option<HttpResponse> {
    let ids = req.headers().get("x-pangea-retried-request-ids")?.to_str().ok()?.to_string();
    let principal = authenticate(state, req).await.ok()?;
    for id in ids.split(',').map(str::trim) {
        if let Some(found) = state.pangea.logged.get(id)
            && found.key_id == principal.key_id
        {
            return Some(ctx.ok(&summary_for_result(&found.result), found.result));
        }
    }
    None
}

/// Keeps a committed log result for retries. The SDK retries within seconds, so entries live
/// 10 minutes; results of more than `RETRY_MAX_EVENTS` events are not kept (memory stays bounded
/// under bulk ingest; such a retry is in doubt and is logged again).
async fn remember(state: &State, req: &HttpRequest, ctx: &Ctx, r: &PResult) {
    let Ok(result) = r else { return };
    if result.get("results").and_then(Value::as_array).is_some_and(|a| a.len() > RETRY_MAX_EVENTS) {
        return;
    }
    if let Ok(p) = authenticate(state, req).await {
        let entry = AsyncResult { key_id: p.key_id, result: result.clone() };
        state.pangea.logged.insert(ctx.request_id.clone(), entry, now_micros() + RETRY_TTL_US);
    }
}

async fn log_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> PResult {
    let principal = require(state, req, can_ingest).await?;
    let body = body_object(req, payload, LOG_LIMIT).await?;
    check_keys(&body, &["event", "verbose", "signature", "public_key", "prev_root"], "")?;
    let verbose = opt_bool(&body, "verbose")?.unwrap_or(false);
    let prev_root = opt_string(&body, "prev_root", 64)?.map(str::to_string);
    let ev = parse_item(&body, "", &principal)?;
    let appended = state.writer.append(vec![ev]).await?;
    let tree_size = appended.tree_size;
    let stored = stored_of(appended.outcomes.into_iter().next().ok_or(PangeaError::Unavailable)?)?;
    let mut result = json!({"hash": stored.hash_hex()});
    if !verbose {
        return Ok(result);
    }
    result["envelope"] = stored.envelope_value();
    let buffer = stored.buffer;
    let seq = stored.seq;
    let (first, hashes) =
        with_reader(state, move |c| buffer_hashes(c, buffer)).await.map_err(|()| PangeaError::Unavailable)?;
    let ledger = state.ledger.clone();
    let (root_hash, cold_path, consistency) = {
        let tree = ledger.tree.read();
        let root = tree.root(tree_size as usize).unwrap_or([0; 32]);
        let cold = tree.path(buffer as usize, tree_size as usize);
        (root, cold, None::<Vec<String>>)
    };
    let mut proof = path((seq - first) as usize, &hashes);
    proof.extend(cold_path);
    result["unpublished_root"] = json!(hex::encode(root_hash));
    result["membership_proof"] = json!(encode_path(&proof));
    let consistency = match (consistency, prev_root.as_deref().and_then(parse_hash)) {
        (_, Some(prev)) => root_size_of(&ledger, &prev, tree_size)
            .map(|m| ledger.tree.read().consistency(m as usize, tree_size as usize)),
        (c, None) => c,
    };
    if let Some(items) = consistency.filter(|c| !c.is_empty()) {
        result["consistency_proof"] = json!(items);
    }
    Ok(result)
}

/// The tree size below `below` whose root hash is `root` (a client's `prev_root`): candidates
/// from the ledger's root-hash prefixes, newest first (clients usually send a recent root), each
/// confirmed against the in-memory tree.
fn root_size_of(ledger: &Ledger, root: &Hash, below: u64) -> Option<u64> {
    let mut upper = below;
    while let Some(size) = ledger.root_size_candidate(root, upper) {
        if ledger.tree.read().root(size as usize).as_ref() == Some(root) {
            return Some(size);
        }
        upper = size;
    }
    None
}

async fn parse_bulk(
    state: &State,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Principal, Vec<NewEvent>, bool), PangeaError> {
    let principal = require(state, req, can_ingest).await?;
    let body = body_object(req, payload, BULK_LIMIT).await?;
    check_keys(&body, &["events", "verbose"], "")?;
    let verbose = opt_bool(&body, "verbose")?.unwrap_or(false);
    let items = match body.get("events") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Err(invalid("FieldRequired", "'events' is a required property", "/events")),
        Some(_) => return Err(invalid("InvalidArray", "'events' must be an array", "/events")),
    };
    if items.is_empty() {
        return Err(invalid("BelowMinItems", "'events' must contain at least 1 item", "/events"));
    }
    if items.len() > 1000 {
        return Err(invalid("AboveMaxItems", "'events' must contain at most 1000 items", "/events"));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let mut forbidden = false;
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("/events/{i}");
        let Value::Object(obj) = item else {
            errors.push(("InvalidObject", "each item must be an object".to_string(), prefix));
            continue;
        };
        if let Err(PangeaError::Validation(e)) = check_keys(obj, &["event", "signature", "public_key"], &prefix) {
            errors.extend(e);
            continue;
        }
        match parse_item(obj, &prefix, &principal) {
            Ok(ev) => events.push(ev),
            Err(PangeaError::Validation(e)) => errors.extend(e),
            Err(PangeaError::Forbidden) => forbidden = true,
            Err(e) => return Err(e),
        }
    }
    if !errors.is_empty() {
        errors.truncate(100);
        return Err(PangeaError::Validation(errors));
    }
    if forbidden {
        return Err(PangeaError::Forbidden);
    }
    Ok((principal, events, verbose))
}

async fn bulk_result(state: &State, events: Vec<NewEvent>, verbose: bool) -> PResult {
    let appended = state.writer.append(events).await?;
    let mut results = Vec::with_capacity(appended.outcomes.len());
    for o in appended.outcomes {
        let s = stored_of(o)?;
        let mut r = json!({"hash": s.hash_hex()});
        if verbose {
            r["envelope"] = s.envelope_value();
        }
        results.push(r);
    }
    Ok(json!({"results": results}))
}

fn logged_summary(v: &Value) -> String {
    format!("Logged {} record(s)", v["results"].as_array().map(Vec::len).unwrap_or(0))
}

/// Log events in bulk
///
/// Appends 1–1000 events, validated all or nothing (error sources point into the item, e.g.
/// `/events/3/event/message`).
#[utoipa::path(
    post,
    path = "/pangea/v2/log",
    tag = TAG_PANGEA,
    operation_id = "pangea_log_bulk",
    params(("X-Pangea-Retried-Request-Ids" = Option<String>, Header,
        description = "Comma-separated request ids of earlier attempts (sent by the SDK on retries)")),
    request_body(content = PangeaLogBulkRequest),
    responses(
        (status = 200, description = "`Success`: one result per event, in order", body = PangeaResponse<PangeaLogBulkResult>),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope, or may not write one of the `tenant_id`s", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 16 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn log_bulk(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    if let Some(r) = replayed(&state, &req, &ctx).await {
        return r;
    }
    let r = match parse_bulk(&state, &req, payload).await {
        Ok((_, events, verbose)) => bulk_result(&state, events, verbose).await,
        Err(e) => Err(e),
    };
    remember(&state, &req, &ctx, &r).await;
    finish(ctx, logged_summary, r)
}

// `v1/log_stream`: Auth0 log-streaming batches, one standard event per `logs[i]` (P21).
/// Log an Auth0 log stream
///
/// Auth0 log-streaming batches: each `logs[i].data` becomes one standard event (`message` =
/// description or type, `actor` = user name or id, `action` = type, `source` = `auth0`, `target` =
/// client id, `timestamp` = date, `new` = the whole `data` as canonical JSON).
#[utoipa::path(
    post,
    path = "/pangea/v1/log_stream",
    tag = TAG_PANGEA,
    operation_id = "pangea_log_stream",
    request_body(content = PangeaLogStreamRequest),
    responses(
        (status = 200, description = "`Success`, `result` `{}`", body = PangeaResponse<Empty>),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope, or may not write the tenant", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 16 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn log_stream(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_ingest).await?;
        let body = body_object(&req, payload, BULK_LIMIT).await?;
        let Some(Value::Array(logs)) = body.get("logs") else {
            return Err(invalid("FieldRequired", "'logs' is a required property (Auth0 log streaming)", "/logs"));
        };
        if logs.is_empty() || logs.len() > 1000 {
            return Err(invalid("NotWithinRange", "'logs' must contain 1 to 1000 items", "/logs"));
        }
        let mut events = Vec::with_capacity(logs.len());
        for (i, item) in logs.iter().enumerate() {
            let Some(Value::Object(data)) = item.get("data") else {
                return Err(invalid("FieldRequired", "'data' is a required property", format!("/logs/{i}/data")));
            };
            events.push(new_event(auth0_event(data), None, None, &principal)?);
        }
        state.writer.append(events).await?;
        Ok(json!({}))
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

fn auth0_event(data: &Map<String, Value>) -> Map<String, Value> {
    let text = |k: &str| data.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let cut = |s: &str, n: usize| -> String { s.chars().take(n).collect() };
    let mut ev = Map::new();
    let message = text("description").or(text("type")).unwrap_or("auth0 log");
    ev.insert("message".into(), json!(cut(message, 32766)));
    if let Some(a) = text("user_name").or(text("user_id")) {
        ev.insert("actor".into(), json!(cut(a, 128)));
    }
    if let Some(t) = text("type") {
        ev.insert("action".into(), json!(cut(t, 32)));
    }
    ev.insert("source".into(), json!("auth0"));
    if let Some(c) = text("client_id") {
        ev.insert("target".into(), json!(cut(c, 128)));
    }
    if let Some(d) = text("date").filter(|d| timestamp_ok(d)) {
        ev.insert("timestamp".into(), json!(d));
    }
    ev.insert("new".into(), json!(cut(&to_canonical_string(&Value::Object(data.clone())), 32766)));
    ev
}

fn accepted(ctx: &Ctx, state: &State, req: &HttpRequest) -> HttpResponse {
    let location = format!("{}/pangea/request/{}", base_url(state, req), ctx.request_id);
    ctx.respond(
        StatusCode::ACCEPTED,
        "Accepted",
        &format!("Request accepted; poll request/{} for the result", ctx.request_id),
        json!({"ttl_mins": 60, "retry_counter": 0, "location": location}),
    )
}

// Commits first, then answers 202; the poll returns the LogBulkResult (P19).
/// Log events in bulk, asynchronously
///
/// Same body as `v2/log`. The events are committed before the answer, a 202; `GET
/// /pangea/request/{request_id}` then returns the bulk result.
#[utoipa::path(
    post,
    path = "/pangea/v2/log_async",
    tag = TAG_PANGEA,
    operation_id = "pangea_log_bulk_async",
    request_body(content = PangeaLogBulkRequest),
    responses(
        (status = 202, description = "`Accepted`: committed; poll `result.location` for the result", body = PangeaAcceptedResponse),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope, or may not write one of the `tenant_id`s", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 16 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn log_bulk_async(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = match parse_bulk(&state, &req, payload).await {
        Ok((principal, events, verbose)) => bulk_result(&state, events, verbose).await.map(|v| (principal, v)),
        Err(e) => Err(e),
    };
    match r {
        Ok((principal, result)) => {
            let expires = now_micros() + REQUEST_TTL_US;
            state.pangea.requests.insert(
                ctx.request_id.clone(),
                AsyncResult { key_id: principal.key_id, result },
                expires,
            );
            accepted(&ctx, &state, &req)
        }
        Err(e) => ctx.error(e),
    }
}

/// Poll an asynchronous request
///
/// The result of a `v2/log_async` or `v1/export` request, for the key that made it.
#[utoipa::path(
    get,
    path = "/pangea/request/{id}",
    tag = TAG_PANGEA,
    operation_id = "pangea_poll_request",
    params(("id" = String, Path, description = "The `request_id` of the 202 answer",
        example = "prq_x6fdiizbon6j3bsdvnpmwxsz2aan7fqd")),
    responses(
        (status = 200, description = "`Success`: the original call's result", body = PangeaResponse<PangeaPollResult>),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the request belongs to another key", body = PangeaErrorResponse),
        (status = 404, description = "`NotFound`: unknown or expired request id", body = PangeaErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn poll(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, any_key).await?;
        let found = state.pangea.requests.get(&id).ok_or(PangeaError::NotFound)?;
        if found.key_id != principal.key_id {
            return Err(PangeaError::Forbidden);
        }
        Ok(found.result)
    }
    .await;
    finish(ctx, summary_for_result, r)
}

fn summary_for_result(v: &Value) -> String {
    if let Some(r) = v.get("results").and_then(Value::as_array) {
        return format!("Logged {} record(s)", r.len());
    }
    "Success".into()
}

// ---------------------------------------------------------------------------------------------
// Search

fn parse_time_arg(body: &Map<String, Value>, key: &str, now: i64) -> Result<Option<i64>, PangeaError> {
    let Some(s) = opt_string(body, key, 128)? else { return Ok(None) };
    if let Some(us) = parse_pangea_time(s) {
        return Ok(Some(us));
    }
    if let Some(d) = parse_duration(s) {
        return Ok(Some(now - d));
    }
    Err(invalid(
        "BadFormatDateTime",
        format!("'{key}' must be an RFC 3339 date-time or a duration such as 7d"),
        format!("/{key}"),
    ))
}

const RESTRICTION_FIELDS: [&str; 6] = ["actor", "action", "source", "status", "target", "tenant_id"];

/// Field → allowed values, plus the restriction as given (for `assert_search_restriction`).
type Restriction = (Vec<(String, Vec<String>)>, Value);

fn parse_restriction(body: &Map<String, Value>, key: &str) -> Result<Restriction, PangeaError> {
    let obj = match body.get(key) {
        None | Some(Value::Null) => return Ok((Vec::new(), json!({}))),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(invalid("InvalidObject", format!("'{key}' must be an object"), format!("/{key}"))),
    };
    let mut out = Vec::new();
    for (field, values) in obj {
        let src = format!("/{key}/{}", truncate(field, 64));
        if !RESTRICTION_FIELDS.contains(&field.as_str()) {
            return Err(invalid(
                "UnexpectedProperty",
                format!("'{}' is not an allowed property", truncate(field, 64)),
                src,
            ));
        }
        let Value::Array(items) = values else {
            return Err(invalid("InvalidArray", "restriction values must be arrays of strings", src));
        };
        let mut list = Vec::new();
        for v in items {
            let Value::String(s) = v else {
                return Err(invalid("InvalidString", "restriction values must be strings", src));
            };
            list.push(s.clone());
        }
        out.push((field.clone(), list));
    }
    Ok((out, Value::Object(obj.clone())))
}

/// Search the log
///
/// Runs the query over `received_at` in `[start, end]` and freezes the matching list (at most
/// `max_results`) with the roots it is proven against for 48 h; page on with `v1/results`. Verbose
/// answers carry membership proofs, `leaf_index`, `root` and `unpublished_root`. A key limited to
/// workspaces only sees its tenants.
#[utoipa::path(
    post,
    path = "/pangea/v1/search",
    tag = TAG_PANGEA,
    operation_id = "pangea_search",
    request_body(content = PangeaSearchRequest),
    responses(
        (status = 200, description = "`Success`: the first page and the search id", body = PangeaResponse<PangeaSearchResult>),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 1 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn search(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = search_inner(&state, &req, payload).await;
    finish(ctx, |v| format!("Found {} event(s)", v["count"].as_u64().unwrap_or(0)), r)
}

async fn search_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> PResult {
    let principal = require(state, req, can_search).await?;
    let body = body_object(req, payload, LOG_LIMIT).await?;
    check_keys(
        &body,
        &[
            "query",
            "order",
            "order_by",
            "start",
            "end",
            "limit",
            "max_results",
            "search_restriction",
            "verbose",
            "return_context",
        ],
        "",
    )?;
    let query = opt_string(&body, "query", 4096)?.unwrap_or("");
    let expr = pangea_query::parse(query).map_err(|e| invalid("BadFormat", e.detail, "/query"))?;
    let ascending = match opt_string(&body, "order", 8)? {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(invalid("NotEnumMember", "'order' must be one of asc, desc", "/order")),
    };
    let order_by = match opt_string(&body, "order_by", 32)? {
        None => "received_at".to_string(),
        Some(f) if PANGEA_ORDER_BY.contains(&f) => f.to_string(),
        Some(_) => {
            return Err(invalid(
                "NotEnumMember",
                format!("'order_by' must be one of {}", PANGEA_ORDER_BY.join(", ")),
                "/order_by",
            ));
        }
    };
    let now = state.ledger.now_micros();
    let start = parse_time_arg(&body, "start", now)?.unwrap_or(now - 14 * 86_400 * 1_000_000);
    let end = parse_time_arg(&body, "end", now)?;
    if end.is_some_and(|e| start > e) {
        return Err(invalid("BadState", "'start' must not be after 'end'", "/start"));
    }
    let limit = opt_int(&body, "limit", 1, 1000)?.unwrap_or(20) as usize;
    let max_results = opt_int(&body, "max_results", 1, 10_000)?.unwrap_or(10_000) as usize;
    let verbose = opt_bool(&body, "verbose")?.unwrap_or(true);
    let (restrictions, restriction_json) = parse_restriction(&body, "search_restriction")?;
    let q = PangeaQuery {
        expr,
        start_us: Some(start),
        end_us: end,
        restrictions,
        allowed_workspaces: principal.is_limited().then(|| principal.workspaces.clone()),
        ascending,
        order_by,
        max_results,
        after_seq: None,
    };
    let snapshot = run_snapshot(state, &principal, q, verbose, restriction_json, now + SEARCH_TTL_US).await?;
    let id = random_id("pas_");
    state.pangea.searches.insert(id.clone(), snapshot.clone(), snapshot.expires_us);
    let mut page = render_page(state, &snapshot, 0, limit).await?;
    page["id"] = json!(id);
    page["expires_at"] = json!(format_micros(snapshot.expires_us));
    Ok(page)
}

/// Runs the query and freezes the result list together with the tree size it is proven against.
async fn run_snapshot(
    state: &State,
    principal: &Principal,
    q: PangeaQuery,
    verbose: bool,
    restriction: Value,
    expires_us: i64,
) -> Result<Snapshot, PangeaError> {
    if q.uses_fulltext() {
        state.writer.sync_fts().await;
    }
    let (seqs, tree_size) = with_reader(state, move |c| {
        c.execute_batch("BEGIN")?;
        let size: i64 = c.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM buffers", [], |r| r.get(0))?;
        let seqs = pangea_search(c, &q);
        c.execute_batch("COMMIT")?;
        Ok((seqs?, size as u64))
    })
    .await
    .map_err(|()| PangeaError::Unavailable)?;
    Ok(Snapshot { key_id: principal.key_id.clone(), seqs: Arc::new(seqs), verbose, tree_size, restriction, expires_us })
}

/// Renders `limit` events from `offset` of a snapshot, with proofs and roots when verbose.
async fn render_page(state: &State, snap: &Snapshot, offset: usize, limit: usize) -> PResult {
    let seqs: Vec<i64> = snap.seqs.iter().skip(offset).take(limit).copied().collect();
    let verbose = snap.verbose;
    let size = snap.tree_size;
    let ledger = state.ledger.clone();
    let (rows, buffers, root) = with_reader(state, move |c| {
        let rows = rows_by_seq(c, &seqs)?;
        let mut buffers = std::collections::HashMap::new();
        if verbose {
            for r in &rows {
                if let std::collections::hash_map::Entry::Vacant(v) = buffers.entry(r.buffer) {
                    let (first, hashes) = buffer_hashes(c, r.buffer)?;
                    v.insert((first, CompactTree::from_leaves(hashes)));
                }
            }
        }
        let root = writer::root_at(c, &ledger, size)?;
        Ok((rows, buffers, root))
    })
    .await
    .map_err(|()| PangeaError::Unavailable)?;
    let tree = state.ledger.tree.read();
    let events: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut e = json!({"envelope": envelope_of(r), "hash": hex::encode(r.hash), "published": r.buffer < size});
            if verbose && r.buffer < size {
                let (first, hot) = &buffers[&r.buffer];
                let mut proof = hot.path((r.seq - first) as usize, hot.len());
                proof.extend(tree.path(r.buffer as usize, size as usize));
                e["leaf_index"] = json!(r.buffer);
                e["membership_proof"] = json!(encode_path(&proof));
            }
            e
        })
        .collect();
    let mut out = json!({"count": snap.seqs.len(), "events": events});
    if verbose && let Some(root) = root {
        let mut rj = root_json(state, &root, &tree);
        rj.as_object_mut().map(|o| o.remove("signature"));
        out["root"] = rj;
        out["unpublished_root"] = json!({"tree_name": root.tree_name, "size": root.size, "root_hash": root.root_hash});
    }
    Ok(out)
}

fn envelope_of(r: &EventRow) -> Value {
    serde_json::from_str(&r.envelope).unwrap_or(Value::Null)
}

fn root_json(state: &State, root: &crate::ledger::SignedRoot, tree: &crate::ledger::merkle::CompactTree) -> Value {
    let mut v = json!({
        "tree_name": root.tree_name,
        "size": root.size,
        "root_hash": root.root_hash,
        "published_at": root.published_at,
        "url": format!("urn:audit-root:{}:{}", root.tree_name, root.size),
        "signature": root.signature,
    });
    let _ = state;
    if root.size >= 2 {
        v["consistency_proof"] = json!(tree.consistency(root.size as usize - 1, root.size as usize));
    }
    v
}

/// Page through search results
///
/// A page of a frozen search (or export), with the same roots as the original search. `offset`
/// equal to `count` gives an empty page; beyond it is `BadOffset`.
#[utoipa::path(
    post,
    path = "/pangea/v1/results",
    tag = TAG_PANGEA,
    operation_id = "pangea_results",
    request_body(content = PangeaResultsRequest),
    responses(
        (status = 200, description = "`Success`: one page", body = PangeaResponse<PangeaResultsResult>),
        (status = 400, description = "`ValidationError`, or `BadOffset` (offset beyond the result set)", body = PangeaResultsBadRequest),
        (status = 404, description = "`NotFound`: unknown or expired search id, or another key's", body = PangeaErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 1 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn results(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = results_inner(&state, &req, payload).await;
    finish(ctx, |v| format!("Found {} event(s)", v["count"].as_u64().unwrap_or(0)), r)
}

fn snapshot_for(state: &State, principal: &Principal, id: &str) -> Result<Snapshot, PangeaError> {
    let snap = state.pangea.searches.get(id).or_else(|| state.pangea.exports.get(id)).ok_or(PangeaError::NotFound)?;
    if snap.key_id != principal.key_id {
        return Err(PangeaError::NotFound);
    }
    Ok(snap)
}

async fn results_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> PResult {
    let principal = require(state, req, can_search).await?;
    let body = body_object(req, payload, LOG_LIMIT).await?;
    check_keys(&body, &["id", "limit", "offset", "assert_search_restriction", "return_context"], "")?;
    let id =
        opt_string(&body, "id", 128)?.ok_or_else(|| invalid("FieldRequired", "'id' is a required property", "/id"))?;
    let limit = opt_int(&body, "limit", 1, 1000)?.unwrap_or(20) as usize;
    let offset = opt_int(&body, "offset", 0, i64::MAX)?.unwrap_or(0) as usize;
    let snap = snapshot_for(state, &principal, id)?;
    if body.contains_key("assert_search_restriction") {
        let (_, asserted) = parse_restriction(&body, "assert_search_restriction")?;
        if asserted != snap.restriction {
            return Err(invalid(
                "BadState",
                "the search restriction does not match the original search",
                "/assert_search_restriction",
            ));
        }
    }
    if offset > snap.seqs.len() {
        return Err(PangeaError::BadOffset);
    }
    render_page(state, &snap, offset, limit).await
}

/// Get a signed root
///
/// The latest published root, or the root of exactly `tree_size`, with a consistency proof from
/// the previous size and the server's Ed25519 signature. Any valid key may ask.
#[utoipa::path(
    post,
    path = "/pangea/v1/root",
    tag = TAG_PANGEA,
    operation_id = "pangea_root",
    request_body(content = PangeaRootRequest),
    responses(
        (status = 200, description = "`Success`: the root, under `data`", body = PangeaResponse<PangeaRootResult>),
        (status = 404, description = "`TreeNotFound`: nothing published yet, or `tree_size` beyond the latest", body = PangeaErrorResponse),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 1 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn root(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = root_inner(&state, &req, payload).await;
    finish(ctx, |_| "Root found".into(), r)
}

async fn root_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> PResult {
    require(state, req, any_key).await?;
    let body = body_object(req, payload, LOG_LIMIT).await?;
    check_keys(&body, &["tree_size"], "")?;
    let size = opt_int(&body, "tree_size", 1, i64::MAX)?;
    let ledger = state.ledger.clone();
    let root = with_reader(state, move |c| match size {
        Some(s) => writer::root_at(c, &ledger, s as u64),
        None => writer::latest_root(c, &ledger.tree_name),
    })
    .await
    .map_err(|()| PangeaError::Unavailable)?
    .ok_or(PangeaError::TreeNotFound)?;
    let tree = state.ledger.tree.read();
    Ok(json!({"data": root_json(state, &root, &tree)}))
}

// ---------------------------------------------------------------------------------------------
// Export and download

/// Export the log
///
/// Freezes the events in the time range (at most 1,000,000) for 24 h and answers 202. Poll `GET
/// /pangea/request/{request_id}` (result `{}`), then `v1/download_results` with that `request_id`.
#[utoipa::path(
    post,
    path = "/pangea/v1/export",
    tag = TAG_PANGEA,
    operation_id = "pangea_export",
    request_body(content = PangeaExportRequest),
    responses(
        (status = 202, description = "`Accepted`: the export is ready to download", body = PangeaAcceptedResponse),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 1 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn export(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_search).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        check_keys(&body, &["format", "start", "end", "order_by", "order", "verbose"], "")?;
        match opt_string(&body, "format", 8)? {
            None | Some("csv") | Some("json") => {}
            Some(_) => return Err(invalid("NotEnumMember", "'format' must be one of csv, json", "/format")),
        }
        let now = state.ledger.now_micros();
        let start = parse_time_arg(&body, "start", now)?;
        let end = parse_time_arg(&body, "end", now)?;
        let ascending = opt_string(&body, "order", 8)? == Some("asc");
        let order_by = match opt_string(&body, "order_by", 32)? {
            None => "received_at".to_string(),
            Some(f) if PANGEA_ORDER_BY.contains(&f) => f.to_string(),
            Some(_) => return Err(invalid("NotEnumMember", "unknown 'order_by'", "/order_by")),
        };
        let verbose = opt_bool(&body, "verbose")?.unwrap_or(true);
        let q = PangeaQuery {
            start_us: start,
            end_us: end,
            allowed_workspaces: principal.is_limited().then(|| principal.workspaces.clone()),
            ascending,
            order_by,
            max_results: EXPORT_MAX,
            ..Default::default()
        };
        let snap = run_snapshot(&state, &principal, q, verbose, json!({}), now + EXPORT_TTL_US).await?;
        state.pangea.exports.insert(ctx.request_id.clone(), snap, now + EXPORT_TTL_US);
        state.pangea.requests.insert(
            ctx.request_id.clone(),
            AsyncResult { key_id: principal.key_id, result: json!({}) },
            now + EXPORT_TTL_US,
        );
        Ok(())
    }
    .await;
    match r {
        Ok(()) => accepted(&ctx, &state, &req),
        Err(e) => ctx.error(e),
    }
}

/// Download search or export results
///
/// Returns a capability URL (no key needed) for a gzipped CSV or JSON Lines file of every event of
/// a search (`result_id`) or an export (`request_id`), valid until the result expires.
#[utoipa::path(
    post,
    path = "/pangea/v1/download_results",
    tag = TAG_PANGEA,
    operation_id = "pangea_download_results",
    request_body(content = PangeaDownloadRequest),
    responses(
        (status = 200, description = "`Success`: the download URL", body = PangeaResponse<PangeaDownloadResult>),
        (status = 404, description = "`NotFound`: unknown or expired id, or another key's", body = PangeaErrorResponse),
        (status = 400, description = "`ValidationError`: `result.errors` lists each problem with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key lacks the scope", body = PangeaErrorResponse),
        (status = 413, description = "`ValidationError`: body over 1 MiB", body = PangeaValidationErrorResponse),
        (status = 415, description = "`ValidationError`: body not sent as `application/json`", body = PangeaValidationErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
async fn download_results(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_search).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        check_keys(&body, &["result_id", "request_id", "format", "return_context"], "")?;
        let result_id = opt_string(&body, "result_id", 128)?;
        let request_id = opt_string(&body, "request_id", 128)?;
        let format = match opt_string(&body, "format", 8)? {
            None | Some("csv") => "csv",
            Some("json") => "json",
            Some(_) => return Err(invalid("NotEnumMember", "'format' must be one of csv, json", "/format")),
        };
        let snap = match (result_id, request_id) {
            (Some(_), Some(_)) => {
                return Err(invalid("MutuallyExclusive", "give either 'result_id' or 'request_id'", "/result_id"));
            }
            (None, None) => return Err(invalid("MustProvideOne", "give 'result_id' or 'request_id'", "/result_id")),
            (Some(id), None) => snapshot_for(&state, &principal, id)?,
            (None, Some(id)) => {
                let snap = state.pangea.exports.get(id).ok_or(PangeaError::NotFound)?;
                if snap.key_id != principal.key_id {
                    return Err(PangeaError::NotFound);
                }
                snap
            }
        };
        let token = hex::encode(crate::ledger::random_bytes::<16>());
        let expires = snap.expires_us;
        state.pangea.downloads.insert(token.clone(), Download { snapshot: snap, format: format.into() }, expires);
        let url = format!("{}/download/{token}/trailkeep-results.{format}.gz", base_url(&state, &req));
        Ok(json!({"dest_url": url, "expires_at": format_micros(expires)}))
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

// `GET /download/{token}/{name}`: the capability URL; no key needed, expires with the result.
/// Download a results file
///
/// The `dest_url` of `v1/download_results`: a gzipped CSV (with header row) or JSON Lines file.
/// The token is the capability; no key is sent.
#[utoipa::path(
    get,
    path = "/download/{token}/{name}",
    tag = TAG_PANGEA,
    operation_id = "pangea_download_file",
    params(
        ("token" = String, Path, description = "The capability token from `dest_url`",
            example = "00112233445566778899aabbccddeeff"),
        ("name" = String, Path, description = "File name (ignored)", example = "trailkeep-results.csv.gz"),
    ),
    responses(
        (status = 200, description = "The gzipped file", content_type = "application/gzip", body = Vec<u8>),
        (status = 404, description = "Unknown or expired token", body = DownloadError),
        (status = 503, description = "Storage unavailable", body = DownloadError),
    ),
)]
async fn download_file(state: State, path: web::Path<(String, String)>) -> HttpResponse {
    let (token, _) = path.into_inner();
    let Some(dl) = state.pangea.downloads.get(&token) else {
        return HttpResponse::NotFound().json(json!({"error": "not found or expired"}));
    };
    let total = dl.snapshot.seqs.len();
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut csv_writer = (dl.format == "csv").then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(w) = csv_writer.as_mut() {
        let _ = w.write_record(CSV_COLUMNS);
    }
    let mut offset = 0;
    while offset < total.max(1) && offset < total {
        let Ok(page) = render_page(&state, &dl.snapshot, offset, 1000).await else {
            return HttpResponse::ServiceUnavailable().json(json!({"error": "service unavailable"}));
        };
        let size = dl.snapshot.tree_size;
        for e in page["events"].as_array().into_iter().flatten() {
            write_download_row(&mut out, csv_writer.as_mut(), e, size);
        }
        offset += 1000;
    }
    if let Some(w) = csv_writer {
        let bytes = w.into_inner().unwrap_or_default();
        let _ = std::io::Write::write_all(&mut out, &bytes);
    }
    let body = out.finish().unwrap_or_default();
    HttpResponse::Ok().content_type("application/gzip").body(body)
}

fn write_download_row(
    out: &mut impl std::io::Write,
    csv_writer: Option<&mut csv::Writer<Vec<u8>>>,
    e: &Value,
    tree_size: u64,
) {
    match csv_writer {
        None => {
            let mut line = e.clone();
            if e["published"].as_bool() == Some(true) {
                line["tree_size"] = json!(tree_size);
            }
            let _ = writeln!(out, "{line}");
        }
        Some(w) => {
            let published = e["published"].as_bool() == Some(true);
            let row = crate::export::csv_row(e, published.then_some(tree_size));
            let _ = w.write_record(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prev_root_size_is_confirmed_against_the_tree() {
        let mut tree = CompactTree::new();
        let mut roots = Vec::new();
        for i in 0..6u8 {
            tree.push([i; 32]);
            roots.push(tree.root(tree.len()).unwrap());
        }
        let ledger = Ledger::new(tree, "ab".repeat(32), [7u8; 32]);
        let mut prefixes: Vec<u32> = roots.iter().map(crate::ledger::root_prefix).collect();
        prefixes[4] = prefixes[1]; // size 5's prefix collides with size 2's: skipped, not returned
        ledger.set_root_prefixes(prefixes);
        assert_eq!(root_size_of(&ledger, &roots[1], 6), Some(2));
        assert_eq!(root_size_of(&ledger, &roots[4], 6), None); // its own prefix was replaced
        assert_eq!(root_size_of(&ledger, &roots[3], 6), Some(4));
        assert_eq!(root_size_of(&ledger, &roots[3], 4), None); // only sizes below the current one
        assert_eq!(root_size_of(&ledger, &[0xee; 32], 6), None);
    }
}
