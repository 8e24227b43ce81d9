//! The H2O Audit Trail dialect (`spec/h2o-api.md`): create, batch create, search, `/version`,
//! and the OIDC + discovery endpoints the official client's login functions use.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::openapi::{
    DiscoveryClientsResponse, DiscoveryComponentsResponse, DiscoveryEnvironmentResponse, DiscoveryLinksResponse,
    DiscoveryServicesResponse, H2oBatchCreateRequest, H2oBatchCreateResponse, H2oCreateEventResponse, H2oEventInput,
    H2oSearchRequest, H2oSearchResponse, H2oStatus, H2oVersion, OAuthError, OAuthTokenRequest, OAuthTokenResponse,
    OpenIdConfiguration, TAG_H2O,
};
use super::{AuthFailure, BodyError, State, authenticate, base_url, read_body, with_reader};
use crate::event::canonical::{JsonErrorKind, parse_strict, to_canonical_string};
use crate::event::system;
use crate::event::{EventType, NewEvent, Origin, is_private_ip, workspace_from_resource};
use crate::keys::Principal;
use crate::ledger::random_bytes;
use crate::search::re2;
use crate::store::search::{H2oField, H2oQuery, h2o_search};
use crate::store::writer::{Outcome, WriteError};
use crate::time::{format_protojson, parse_rfc3339};

const SINGLE_LIMIT: usize = 1 << 20;
const BATCH_LIMIT: usize = 16 << 20;
const MAX_BATCH: usize = 1000;
const MAX_STRING: usize = 8192;
const MAX_MAP: usize = 256;
const MAX_DEPTH: usize = 64;
const DEFAULT_START: &str = "2025-07-01T00:00:00Z";
const TOKEN_TTL_US: i64 = 24 * 3600 * 1_000_000;
/// `Retry-After` of a 503 for a full disk.
pub const STORAGE_FULL_RETRY_S: u64 = 5;

/// An H2O error: grpc-gateway body `{code, message, details}` with the matching HTTP status.
#[derive(Debug, Clone)]
pub struct H2oError {
    pub status: StatusCode,
    pub code: i32,
    pub message: String,
    /// `Retry-After` in seconds (429, and 503 for a full disk).
    pub retry_after: Option<u64>,
}

impl H2oError {
    fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 3, message)
    }
    fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 16, "unauthenticated")
    }
    fn denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, 7, "permission denied")
    }
    fn conflict(id: &Uuid) -> Self {
        Self::new(StatusCode::CONFLICT, 6, format!("event events/{id} already exists"))
    }
    fn unsupported_media_type() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, "the body must be sent as Content-Type: application/json")
    }
    fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, 3, "request body too large")
    }
    fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 13, "internal error")
    }
    fn rate_limited(retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, 8, "rate limit exceeded") }
    }
    fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, 14, "service unavailable")
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 5, "Not Found")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, 12, "Method Not Allowed")
    }
    fn status_json(&self) -> Value {
        json!({"code": self.code, "message": self.message, "details": []})
    }
}

impl std::fmt::Display for H2oError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl ResponseError for H2oError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            b.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(secs) = self.retry_after {
            b.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        b.json(self.status_json())
    }
}

/// Adds an `Allow` header to a 405.
pub fn allow(mut resp: HttpResponse, methods: &'static str) -> HttpResponse {
    resp.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(methods));
    resp
}

impl From<AuthFailure> for H2oError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Unauthenticated => Self::unauthenticated(),
            AuthFailure::Unavailable => Self::unavailable(),
            AuthFailure::RateLimited(secs) => Self::rate_limited(secs),
        }
    }
}

impl From<BodyError> for H2oError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Self::too_large(),
            BodyError::Read => Self::invalid("invalid request body: cannot read the body"),
        }
    }
}

impl From<WriteError> for H2oError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Busy | WriteError::Stopped => Self::unavailable(),
            WriteError::Storage(_) => Self::unavailable(),
            WriteError::Full => Self {
                retry_after: Some(STORAGE_FULL_RETRY_S),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    14,
                    "service unavailable: storage full, nothing was stored; retry later",
                )
            },
        }
    }
}

type H2oResult = Result<HttpResponse, H2oError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let mna = || web::to(|| async { allow(H2oError::method_not_allowed().error_response(), "POST") });
    let mna_get = || web::to(|| async { allow(H2oError::method_not_allowed().error_response(), "GET") });
    cfg.service(web::resource("/v1/events").route(web::post().to(create_event)).default_service(mna()))
        .service(
            web::resource(["/v1/events:batchCreate", "/v1/events%3AbatchCreate", "/v1/events%3abatchCreate"])
                .route(web::post().to(batch_create_events))
                .default_service(mna()),
        )
        .service(
            web::resource(["/v1/events:search", "/v1/events%3Asearch", "/v1/events%3asearch"])
                .route(web::post().to(search_events))
                .default_service(mna()),
        )
        .service(web::resource("/version").route(web::get().to(version)).default_service(mna_get()))
        .service(web::resource("/.well-known/openid-configuration").route(web::get().to(openid_configuration)))
        .service(web::resource("/oauth/token").route(web::post().to(token)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/environment").route(web::get().to(discovery_environment)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/services").route(web::get().to(discovery_services)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/clients").route(web::get().to(discovery_clients)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/links").route(web::get().to(discovery_links)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/components").route(web::get().to(discovery_components)));
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation

fn parse_body(bytes: &[u8]) -> Result<Value, H2oError> {
    parse_strict(bytes, MAX_DEPTH).map_err(|e| match e.kind {
        JsonErrorKind::DuplicateKey => H2oError::invalid(format!("invalid request body: {}", e.detail)),
        _ => H2oError::invalid(format!("invalid request body: {}", truncate(&e.detail, 200))),
    })
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Canonical UUIDv4: 8-4-4-4-12 hex, version 4, RFC 4122 variant.
pub fn parse_uuid4(s: &str) -> Option<Uuid> {
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let u = Uuid::try_parse(s).ok()?;
    (u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122).then_some(u)
}

fn bad_type(field: &str, what: &str) -> H2oError {
    H2oError::invalid(format!("invalid request body: {field} must be {what}"))
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> Result<Option<&'a str>, H2oError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() > MAX_STRING {
                return Err(H2oError::invalid(format!("{field} exceeds the maximum size of {MAX_STRING}")));
            }
            Ok(Some(s))
        }
        Some(_) => Err(bad_type(field, "a string")),
    }
}

fn string_map(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    check_keys: bool,
) -> Result<Map<String, Value>, H2oError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            if m.len() > MAX_MAP {
                return Err(H2oError::invalid(format!("{field} exceeds the maximum size of {MAX_MAP}")));
            }
            for (k, v) in m {
                if !v.is_string() {
                    return Err(bad_type(&format!("{field} values"), "strings"));
                }
                if v.as_str().is_some_and(|s| s.len() > MAX_STRING) {
                    return Err(H2oError::invalid(format!("{field} exceeds the maximum size of {MAX_STRING}")));
                }
                if k.len() > 256 {
                    return Err(H2oError::invalid(format!("{field} exceeds the maximum size of 256")));
                }
                if check_keys && !valid_metadata_key(k) {
                    return Err(H2oError::invalid(format!(
                        "{field} key \"{}\" must match ^[a-z]([a-z0-9_]{{0,61}}[a-z0-9])?$",
                        truncate(k, 64)
                    )));
                }
            }
            Ok(m.clone())
        }
        Some(_) => Err(bad_type(field, "an object of strings")),
    }
}

fn valid_metadata_key(k: &str) -> bool {
    let b = k.as_bytes();
    if b.is_empty() || b.len() > 63 || !b[0].is_ascii_lowercase() {
        return false;
    }
    if !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_') {
        return false;
    }
    b.len() == 1 || b[b.len() - 1] != b'_'
}

/// Validates an H2O Event object and maps it to the canonical event.
fn parse_event(value: &Value, uid: Uuid, redact: bool) -> Result<NewEvent, H2oError> {
    let Value::Object(obj) = value else { return Err(bad_type("event", "an object")) };
    let event_time = match obj.get("eventTime") {
        None | Some(Value::Null) => return Err(H2oError::invalid("event.event_time is required")),
        Some(Value::String(s)) => parse_rfc3339(s)
            .ok_or_else(|| H2oError::invalid("event.event_time must be an RFC 3339 timestamp with a UTC offset"))?,
        Some(_) => return Err(H2oError::invalid("event.event_time must be an RFC 3339 timestamp with a UTC offset")),
    };
    let required = |key: &str, field: &str| -> Result<String, H2oError> {
        match opt_str(obj, key, &format!("event.{field}"))? {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(H2oError::invalid(format!("event.{field} is required"))),
        }
    };
    let event_source = required("eventSource", "event_source")?;
    let action = required("action", "action")?;
    let principal = required("principal", "principal")?;
    let mut source_ip = required("sourceIpAddress", "source_ip_address")?;
    let read_only = match obj.get("readOnly") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_type("event.read_only", "a boolean")),
    };
    let resource = opt_str(obj, "resource", "event.resource")?.unwrap_or_default().to_string();
    let user_agent = opt_str(obj, "userAgent", "event.user_agent")?.unwrap_or_default().to_string();
    let metadata = string_map(obj, "metadata", "event.metadata", true)?;
    let request_parameters = string_map(obj, "requestParameters", "event.request_parameters", false)?;
    let event_type = match obj.get("type") {
        None | Some(Value::Null) => EventType::Unspecified,
        Some(Value::String(s)) => EventType::from_name(s).ok_or_else(type_error)?,
        Some(_) => return Err(type_error()),
    };
    let status = match obj.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::Object(s)) => {
            let code = match s.get("code") {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) => n
                    .as_i64()
                    .filter(|c| i32::try_from(*c).is_ok())
                    .ok_or_else(|| bad_type("event.status.code", "an int32"))?,
                Some(_) => return Err(bad_type("event.status.code", "an int32")),
            };
            let message = opt_str(s, "message", "event.status.message")?.unwrap_or_default().to_string();
            Some((code, message))
        }
        Some(_) => return Err(bad_type("event.status", "an object")),
    };
    let workspace = match obj.get("workspaceOverride") {
        None | Some(Value::Null) => workspace_from_resource(&resource),
        Some(Value::String(w)) => {
            let ok =
                w.is_empty() || w.strip_prefix("workspaces/").is_some_and(|id| !id.is_empty() && !id.contains('/'));
            if !ok {
                return Err(H2oError::invalid("event.workspace_override must have the form workspaces/{workspace}"));
            }
            w.clone()
        }
        Some(_) => return Err(bad_type("event.workspace_override", "a string")),
    };
    if redact && is_private_ip(&source_ip) {
        source_ip = "private".into();
    }
    let timestamp = format_protojson(event_time.0, event_time.1);
    let message = metadata.get("message").and_then(Value::as_str).unwrap_or(&action).to_string();
    let mut ev = Map::new();
    ev.insert("action".into(), json!(action));
    ev.insert("actor".into(), json!(principal));
    ev.insert("event_id".into(), json!(uid.to_string()));
    ev.insert("event_source".into(), json!(event_source));
    ev.insert("message".into(), json!(message));
    ev.insert("metadata".into(), Value::Object(metadata));
    ev.insert("read_only".into(), json!(read_only));
    ev.insert("request_parameters".into(), Value::Object(request_parameters));
    ev.insert("source".into(), json!(source_ip));
    if let Some((code, msg)) = &status {
        ev.insert("status".into(), json!(code.to_string()));
        ev.insert("status_message".into(), json!(msg));
    }
    ev.insert("target".into(), json!(resource));
    if !workspace.is_empty() {
        ev.insert("tenant_id".into(), json!(workspace));
    }
    ev.insert("timestamp".into(), json!(timestamp));
    ev.insert("type".into(), json!(event_type.name()));
    ev.insert("user_agent".into(), json!(user_agent));
    let fts_body = crate::event::fts_body(Origin::H2o, &ev);
    Ok(NewEvent {
        uid,
        origin: Origin::H2o,
        workspace,
        actor: principal,
        action,
        event_source,
        target: Some(resource),
        source: Some(source_ip),
        status: status.as_ref().map(|(c, _)| c.to_string()),
        status_code: status.as_ref().map(|(c, _)| *c),
        read_only,
        event_type,
        event_time: Some(event_time.0),
        fts_body,
        event: ev,
        signature: None,
        public_key: None,
    })
}

fn type_error() -> H2oError {
    H2oError::invalid("event.type must be one of TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM")
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// A JSON object written field by field, values as serde_json writes them.
struct ObjectWriter {
    buf: Vec<u8>,
    first: bool,
}

impl ObjectWriter {
    fn new() -> Self {
        Self { buf: Vec::with_capacity(1024), first: true }
    }

    fn key(&mut self, key: &str) {
        self.buf.push(if self.first { b'{' } else { b',' });
        self.first = false;
        let _ = serde_json::to_writer(&mut self.buf, key);
        self.buf.push(b':');
    }

    fn field<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.key(key);
        // Writing strings, booleans, numbers and maps with string keys into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, value);
    }
}

/// An event's H2O JSON in two parts around its receive time, which a new event has only once it
/// is stored: `{"action":…,"receiveTime":` and `,"requestParameters":…}`. Keys in code-point order
/// (as serde_json writes a map). The one renderer of the H2O shape: search pages, `create` and
/// `batchCreate` (which renders before the writer takes the event) all use it.
struct H2oJson {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl H2oJson {
    fn finish(self, received_at: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        let _ = serde_json::to_writer(&mut *out, &format_protojson(received_at, 0));
        out.extend_from_slice(&self.tail);
    }
}

/// The event time as the H2O shape shows it: an H2O event's own text (its precision kept), a
/// Pangea event's time in microseconds.
fn h2o_event_time(ev: &Map<String, Value>, origin: Origin, event_time: i64) -> String {
    match origin {
        Origin::Pangea => format_protojson(event_time, 0),
        _ => ev.get("timestamp").and_then(Value::as_str).unwrap_or("").to_string(),
    }
}

/// Renders a stored event object (the envelope's `event`) in the H2O shape (architecture.md's
/// mapping for Pangea events).
fn h2o_json(ev: &Map<String, Value>, origin: Origin, uid: Uuid, event_time: i64, workspace: &str) -> H2oJson {
    let text = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
    let empty = Value::Object(Map::new());
    let mut o = ObjectWriter::new();
    let pangea = origin == Origin::Pangea;
    let status_text = ev.get("status").and_then(Value::as_str);
    o.field("action", text("action"));
    o.field("eventSource", if pangea { "pangea" } else { text("event_source") });
    o.field("eventTime", &h2o_event_time(ev, origin, event_time));
    o.field("loginPrincipal", "");
    if pangea {
        let mut metadata = Map::new();
        for k in ["message", "new", "old"] {
            if let Some(v @ Value::String(_)) = ev.get(k) {
                metadata.insert(k.into(), v.clone());
            }
        }
        if let Some(st) = status_text.filter(|st| st.parse::<i32>().is_err()) {
            metadata.insert("status".into(), json!(st));
        }
        o.field("metadata", &metadata);
        o.field("name", &format!("events/{uid}"));
    } else {
        o.field("metadata", ev.get("metadata").unwrap_or(&empty));
        o.field("name", &format!("events/{}", text("event_id")));
    }
    o.field("principal", text("actor"));
    o.field("readOnly", &(!pangea && ev.get("read_only").and_then(Value::as_bool).unwrap_or(false)));
    o.key("receiveTime");
    let head = std::mem::take(&mut o.buf);
    o.field("requestParameters", if pangea { &empty } else { ev.get("request_parameters").unwrap_or(&empty) });
    o.field("resource", text("target"));
    o.field("sourceIpAddress", text("source"));
    if pangea {
        if let Some(code) = status_text.and_then(|c| c.parse::<i32>().ok()) {
            o.field("status", &json!({"code": code, "message": ""}));
        }
        o.field("type", "TYPE_UNSPECIFIED");
        o.field("userAgent", "");
    } else {
        if let Some(code) = status_text.and_then(|c| c.parse::<i64>().ok()) {
            o.field("status", &json!({"code": code, "message": text("status_message")}));
        }
        o.field("type", ev.get("type").and_then(Value::as_str).unwrap_or("TYPE_UNSPECIFIED"));
        o.field("userAgent", text("user_agent"));
    }
    o.field("workspace", workspace);
    o.buf.push(b'}');
    H2oJson { head, tail: o.buf }
}

/// The event object of a stored envelope.
fn envelope_event(envelope: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(envelope) {
        Ok(Value::Object(mut env)) => match env.remove("event") {
            Some(Value::Object(ev)) => ev,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

fn json_response(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn require(state: &State, req: &HttpRequest, ingest: bool) -> Result<Principal, H2oError> {
    let p = authenticate(state, req).await?;
    let ok = if ingest { p.scopes.can_ingest() } else { p.scopes.can_search() };
    if ok { Ok(p) } else { Err(H2oError::denied()) }
}

#[derive(serde::Deserialize)]
struct CreateQuery {
    #[serde(rename = "eventId")]
    event_id: Option<String>,
}

/// Create an event
///
/// Validates and stores one event under the id given as `eventId`; the workspace is taken from
/// `workspaceOverride` or from the first `workspaces/<id>` pair in `resource`. A retry with the same
/// id and content returns the stored event; the same id with other content is a conflict.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = TAG_H2O,
    operation_id = "h2o_create_event",
    params(("eventId" = String, Query, format = "uuid", description = "The new event's id: a canonical UUIDv4",
        example = "b096430b-c7a8-47f2-a129-d9ae58cf454f")),
    request_body(content = H2oEventInput, description = "The bare event"),
    responses(
        (status = 200, description = "The stored event", body = H2oCreateEventResponse),
        (status = 400, description = "Invalid id, body or field (code 3)", body = H2oStatus),
        (status = 401, description = "Missing or invalid key (code 16)", body = H2oStatus),
        (status = 403, description = "The key may not ingest, or not into this workspace (code 7)", body = H2oStatus),
        (status = 409, description = "The id exists with different content (code 6)", body = H2oStatus),
        (status = 413, description = "Body over 1 MiB (code 3)", body = H2oStatus),
        (status = 415, description = "Body not sent as `application/json` (code 3)", body = H2oStatus),
        (status = 503, description = "Storage busy or unavailable (code 14)", body = H2oStatus),
    ),
    security(("api_key" = [])),
)]
async fn create_event(state: State, req: HttpRequest, payload: web::Payload) -> H2oResult {
    let principal = require(&state, &req, true).await?;
    if !super::is_json(&req) {
        return Err(H2oError::unsupported_media_type());
    }
    let body = read_body(&req, payload, SINGLE_LIMIT).await?;
    let q = web::Query::<CreateQuery>::from_query(req.query_string()).ok();
    let uid = q
        .and_then(|q| q.event_id.clone())
        .as_deref()
        .and_then(parse_uuid4)
        .ok_or_else(|| H2oError::invalid("event_id must be in UUIDv4 format"))?;
    let value = parse_body(&body)?;
    let ev = parse_event(&value, uid, state.config.redact_private_ips)?;
    if !principal.may_see(&ev.workspace) {
        return Err(H2oError::denied());
    }
    // Rendered now: the writer takes the event object. A stored original (a retry) has the same.
    let json = h2o_json(&ev.event, Origin::H2o, uid, 0, &ev.workspace);
    let appended = state.writer.append(vec![ev]).await?;
    match appended.outcomes.into_iter().next() {
        Some(Outcome::Stored(s)) | Some(Outcome::Existing(s)) => {
            let mut body = b"{\"event\":".to_vec();
            json.finish(s.received_at, &mut body);
            body.push(b'}');
            Ok(json_response(body))
        }
        Some(Outcome::Conflict) => Err(H2oError::conflict(&uid)),
        None => Err(H2oError::internal()),
    }
}

/// Create events in a batch
///
/// Up to 1000 events. Valid items are committed together in one transaction; invalid ones are
/// reported in `failedRequests` under their index, with the error an individual create would give,
/// and the status stays 200.
#[utoipa::path(
    post,
    path = "/v1/events:batchCreate",
    tag = TAG_H2O,
    operation_id = "h2o_batch_create_events",
    request_body(content = H2oBatchCreateRequest),
    responses(
        (status = 200, description = "Created events and per-item failures", body = H2oBatchCreateResponse),
        (status = 400, description = "Invalid body or more than 1000 requests (code 3)", body = H2oStatus),
        (status = 401, description = "Missing or invalid key (code 16)", body = H2oStatus),
        (status = 403, description = "The key may not ingest (code 7)", body = H2oStatus),
        (status = 413, description = "Body over 16 MiB (code 3)", body = H2oStatus),
        (status = 415, description = "Body not sent as `application/json` (code 3)", body = H2oStatus),
        (status = 503, description = "Storage busy or unavailable (code 14)", body = H2oStatus),
    ),
    security(("api_key" = [])),
)]
async fn batch_create_events(state: State, req: HttpRequest, payload: web::Payload) -> H2oResult {
    let principal = require(&state, &req, true).await?;
    if !super::is_json(&req) {
        return Err(H2oError::unsupported_media_type());
    }
    let body = read_body(&req, payload, BATCH_LIMIT).await?;
    let mut value = parse_body(&body)?;
    let requests = match value.get_mut("requests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => std::mem::take(a),
        Some(_) => return Err(bad_type("requests", "an array")),
    };
    if !value.is_object() {
        return Err(bad_type("body", "an object"));
    }
    if requests.len() > MAX_BATCH {
        return Err(H2oError::invalid("requests: at most 1000 events can be created in a batch"));
    }
    let mut failed = Map::new();
    let mut valid: Vec<(usize, NewEvent)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, item) in requests.iter().enumerate() {
        match parse_batch_item(item, state.config.redact_private_ips) {
            Ok(ev) if !principal.may_see(&ev.workspace) => {
                failed.insert(i.to_string(), H2oError::denied().status_json());
            }
            Ok(ev) if !seen.insert(ev.uid) => {
                failed.insert(i.to_string(), H2oError::conflict(&ev.uid).status_json());
            }
            Ok(ev) => valid.push((i, ev)),
            Err(e) => {
                failed.insert(i.to_string(), e.status_json());
            }
        }
    }
    let mut body = Vec::with_capacity(1024 * (valid.len() + 1));
    body.extend_from_slice(b"{\"events\":[");
    if !valid.is_empty() {
        let (idx, evs): (Vec<usize>, Vec<NewEvent>) = valid.into_iter().unzip();
        let uids: Vec<Uuid> = evs.iter().map(|e| e.uid).collect();
        // Rendered now: the writer takes the event objects. A stored original (a retry) has the
        // same content, so the same rendering with its own receive time.
        let rendered: Vec<H2oJson> =
            evs.iter().map(|e| h2o_json(&e.event, Origin::H2o, e.uid, 0, &e.workspace)).collect();
        let appended = state.writer.append(evs).await?;
        let mut first = true;
        for (k, (outcome, json)) in appended.outcomes.into_iter().zip(rendered).enumerate() {
            match outcome {
                Outcome::Stored(s) | Outcome::Existing(s) => {
                    if !first {
                        body.push(b',');
                    }
                    first = false;
                    json.finish(s.received_at, &mut body);
                }
                Outcome::Conflict => {
                    failed.insert(idx[k].to_string(), H2oError::conflict(&uids[k]).status_json());
                }
            }
        }
    }
    body.extend_from_slice(b"],\"failedRequests\":");
    let _ = serde_json::to_writer(&mut body, &failed);
    body.push(b'}');
    Ok(json_response(body))
}

fn parse_batch_item(item: &Value, redact: bool) -> Result<NewEvent, H2oError> {
    let Value::Object(obj) = item else { return Err(bad_type("requests[]", "an object")) };
    let uid = obj
        .get("eventId")
        .and_then(Value::as_str)
        .and_then(parse_uuid4)
        .ok_or_else(|| H2oError::invalid("event_id must be in UUIDv4 format"))?;
    match obj.get("event") {
        None | Some(Value::Null) => Err(H2oError::invalid("event is required")),
        Some(ev) => parse_event(ev, uid, redact),
    }
}

// ---------------------------------------------------------------------------------------------
// Search

const STRING_FILTERS: [(&str, &str, H2oField); 6] = [
    ("eventSource", "event_source", H2oField::EventSource),
    ("resource", "resource", H2oField::Resource),
    ("principal", "principal", H2oField::Principal),
    ("sourceIpAddress", "source_ip_address", H2oField::SourceIp),
    ("workspace", "workspace", H2oField::Workspace),
    ("action", "action", H2oField::Action),
];

struct ParsedSearch {
    query: H2oQuery,
    start: (i64, u32),
    page_size: usize,
    filter_hash: [u8; 16],
    normalized: Value,
}

fn filter_time(f: &Map<String, Value>, key: &str, field: &str) -> Result<Option<(i64, u32)>, H2oError> {
    let err = || H2oError::invalid(format!("filter.{field} must be an RFC 3339 timestamp with a UTC offset"));
    match f.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(s).map(Some).ok_or_else(err),
        Some(_) => Err(err()),
    }
}

fn check_regex(pattern: &str, field: &str) -> Result<(), H2oError> {
    re2::compile(pattern).map(|_| ()).map_err(|e| {
        H2oError::invalid(format!("filter.{field} is not a valid RE2 pattern: {}", truncate(&e.reason, 200)))
    })
}

fn type_list(f: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<i64>, H2oError> {
    let err = || H2oError::invalid(format!("filter.{field} must contain only TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM"));
    match f.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().and_then(EventType::from_name).map(|t| t as i64).ok_or_else(err)).collect()
        }
        Some(_) => Err(err()),
    }
}

fn parse_search(value: &Value, principal: &Principal) -> Result<ParsedSearch, H2oError> {
    let Value::Object(body) = value else { return Err(bad_type("body", "an object")) };
    let empty = Map::new();
    let filter = match body.get("filter") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(f)) => f,
        Some(_) => return Err(bad_type("filter", "an object")),
    };
    let page_size = match body.get("pageSize") {
        None | Some(Value::Null) => 50,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) if n < 0 => return Err(H2oError::invalid("page_size must not be negative")),
            Some(0) => 50,
            Some(n) => n.min(1000) as usize,
            None => return Err(bad_type("page_size", "an integer")),
        },
        Some(_) => return Err(bad_type("page_size", "an integer")),
    };
    let mut q = H2oQuery { limit: page_size + 1, ..Default::default() };
    let start = filter_time(filter, "startEventTime", "start_event_time")?
        .unwrap_or_else(|| parse_rfc3339(DEFAULT_START).unwrap_or((0, 0)));
    let end = filter_time(filter, "endEventTime", "end_event_time")?;
    q.start_us = start.0;
    q.end_us = end.map(|e| e.0).unwrap_or(i64::MAX);
    for (wire, field, f) in STRING_FILTERS {
        if let Some(v) = opt_str(filter, &format!("{wire}Exact"), &format!("filter.{field}_exact"))? {
            q.exact.push((f, v.to_string()));
        }
        if let Some(v) = opt_str(filter, &format!("{wire}Regex"), &format!("filter.{field}_regex"))? {
            check_regex(v, &format!("{field}_regex"))?;
            q.regex.push((f, v.to_string()));
        }
    }
    q.read_only = match filter.get("readOnly") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad_type("filter.read_only", "a boolean")),
    };
    if let Some(re) = opt_str(filter, "statusCodeRegex", "filter.status_code_regex")? {
        check_regex(re, "status_code_regex")?;
        q.status_code_regex = Some(re.to_string());
    }
    for (k, v) in string_map(filter, "metadataExact", "filter.metadata_exact", false)? {
        q.metadata_exact.push((k, v.as_str().unwrap_or_default().to_string()));
    }
    for (k, v) in string_map(filter, "metadataRegex", "filter.metadata_regex", false)? {
        let pattern = v.as_str().unwrap_or_default().to_string();
        check_regex(&pattern, &format!("metadata_regex[\"{}\"]", truncate(&k, 64)))?;
        q.metadata_regex.push((k, pattern));
    }
    q.include_types = type_list(filter, "includeTypes", "include_types")?;
    q.exclude_types = type_list(filter, "excludeTypes", "exclude_types")?;
    if principal.is_limited() {
        q.allowed_workspaces = Some(principal.workspaces.clone());
    }
    // The normalized filter: null, empty maps and empty lists dropped.
    let mut normalized = Map::new();
    for (k, v) in filter {
        let keep = match v {
            Value::Null => false,
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if keep {
            normalized.insert(k.clone(), v.clone());
        }
    }
    let normalized = Value::Object(normalized);
    let digest = Sha256::digest(format!("{}|{page_size}", to_canonical_string(&normalized)).as_bytes());
    let mut filter_hash = [0u8; 16];
    filter_hash.copy_from_slice(&digest[..16]);
    Ok(ParsedSearch { query: q, start, page_size, filter_hash, normalized })
}

/// Page token: version | filter hash | frozen end | last (event_time, seq) | issued | key id, HMAC'd.
struct PageToken {
    filter_hash: [u8; 16],
    end_us: i64,
    last_time: i64,
    last_seq: i64,
    issued_us: i64,
    key_id: [u8; 8],
}

fn key_id_bytes(id: &str) -> [u8; 8] {
    let d = Sha256::digest(id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    b
}

fn mac(key: &[u8; 32], payload: &[u8]) -> [u8; 16] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload);
    let out = m.finalize().into_bytes();
    let mut t = [0u8; 16];
    t.copy_from_slice(&out[..16]);
    t
}

impl PageToken {
    fn encode(&self, key: &[u8; 32]) -> String {
        let mut p = vec![1u8];
        p.extend_from_slice(&self.filter_hash);
        for v in [self.end_us, self.last_time, self.last_seq, self.issued_us] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        p.extend_from_slice(&self.key_id);
        let tag = mac(key, &p);
        p.extend_from_slice(&tag);
        B64URL.encode(p)
    }

    fn decode(token: &str, key: &[u8; 32]) -> Option<Self> {
        let raw = B64URL.decode(token).ok()?;
        if raw.len() != 1 + 16 + 32 + 8 + 16 || raw[0] != 1 {
            return None;
        }
        let (payload, tag) = raw.split_at(raw.len() - 16);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&mac(key, payload)[..], tag)) {
            return None;
        }
        let int = |i: usize| i64::from_be_bytes(payload[17 + i * 8..25 + i * 8].try_into().unwrap_or([0; 8]));
        let mut filter_hash = [0u8; 16];
        filter_hash.copy_from_slice(&payload[1..17]);
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&payload[49..57]);
        Some(Self { filter_hash, end_us: int(0), last_time: int(1), last_seq: int(2), issued_us: int(3), key_id })
    }
}

/// Search events
///
/// Newest first (event time, then ingestion order). The end of the window is frozen at the first
/// page; `nextPageToken` is bound to the filter, page size and key, and is `""` on the last page.
/// A key limited to workspaces only ever sees those workspaces.
#[utoipa::path(
    post,
    path = "/v1/events:search",
    tag = TAG_H2O,
    operation_id = "h2o_search_events",
    request_body(content = H2oSearchRequest),
    responses(
        (status = 200, description = "One page of events", body = H2oSearchResponse),
        (status = 400, description = "Invalid filter, regex, time range or page token (code 3)", body = H2oStatus),
        (status = 401, description = "Missing or invalid key (code 16)", body = H2oStatus),
        (status = 403, description = "The key may not search (code 7)", body = H2oStatus),
        (status = 413, description = "Body over 1 MiB (code 3)", body = H2oStatus),
        (status = 415, description = "Body not sent as `application/json` (code 3)", body = H2oStatus),
        (status = 503, description = "Storage unavailable or search deadline exceeded (code 14)", body = H2oStatus),
    ),
    security(("api_key" = [])),
)]
async fn search_events(state: State, req: HttpRequest, payload: web::Payload) -> H2oResult {
    let principal = require(&state, &req, false).await?;
    if !super::is_json(&req) {
        return Err(H2oError::unsupported_media_type());
    }
    let body = read_body(&req, payload, SINGLE_LIMIT).await?;
    let value = parse_body(&body)?;
    let mut parsed = parse_search(&value, &principal)?;
    let now = state.ledger.now_micros();
    let token = match value.get("pageToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => {
            let tok = PageToken::decode(t, &state.token_key)
                .filter(|tok| now - tok.issued_us < TOKEN_TTL_US && tok.key_id == key_id_bytes(&principal.key_id))
                .ok_or_else(|| H2oError::invalid("invalid page_token"))?;
            if tok.filter_hash != parsed.filter_hash {
                return Err(H2oError::invalid("page_token does not match the search request"));
            }
            Some(tok)
        }
        Some(_) => return Err(bad_type("page_token", "a string")),
    };
    // Freeze the end of the window at the first page.
    let end_us = match &token {
        Some(t) => t.end_us,
        None => parsed.query.end_us.min(now),
    };
    parsed.query.end_us = end_us;
    if parsed.query.start_us >= end_us {
        return Err(H2oError::invalid("filter.start_event_time must be before filter.end_event_time"));
    }
    parsed.query.after = token.as_ref().map(|t| (t.last_time, t.last_seq));
    let query = parsed.query.clone();
    let mut rows =
        with_reader(&state, move |conn| h2o_search(conn, &query)).await.map_err(|()| H2oError::unavailable())?;
    let more = rows.len() > parsed.page_size;
    rows.truncate(parsed.page_size);
    let mut body = Vec::with_capacity(1024 * (rows.len() + 1));
    body.extend_from_slice(b"{\"events\":[");
    let mut last_time = String::new();
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let ev = envelope_event(&row.envelope);
        h2o_json(&ev, row.origin, row.uid, row.event_time, &row.workspace).finish(row.received_at, &mut body);
        if i + 1 == rows.len() {
            last_time = h2o_event_time(&ev, row.origin, row.event_time);
        }
    }
    let (next, until) = match (more, rows.last()) {
        (true, Some(last)) => {
            let tok = PageToken {
                filter_hash: parsed.filter_hash,
                end_us,
                last_time: last.event_time,
                last_seq: last.seq,
                issued_us: token.as_ref().map(|t| t.issued_us).unwrap_or(now),
                key_id: key_id_bytes(&principal.key_id),
            };
            (tok.encode(&state.token_key), last_time)
        }
        _ => (String::new(), format_protojson(parsed.start.0, parsed.start.1)),
    };
    if token.is_none() && state.config.self_audit {
        self_audit(&state, &req, &principal, &parsed.normalized);
    }
    body.extend_from_slice(b"],\"nextPageToken\":");
    let _ = serde_json::to_writer(&mut body, &next);
    body.extend_from_slice(b",\"searchedUntilTime\":");
    let _ = serde_json::to_writer(&mut body, &until);
    body.push(b'}');
    Ok(json_response(body))
}

/// Records one event per first-page search, asynchronously (H2O §9.4).
fn self_audit(state: &State, req: &HttpRequest, principal: &Principal, filter: &Value) {
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let ua = req.headers().get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or("");
    let filter = to_canonical_string(filter);
    let Some(ev) = system::search_audit(&principal.key_id, peer, ua, filter, state.config.redact_private_ips) else {
        return;
    };
    let writer = state.writer.clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = writer.append(vec![ev]).await {
            tracing::warn!(error = %e, "self-audit event not recorded");
        }
    });
}

/// Server version
///
/// Reachability check of the H2O client's `login()` and `login_custom()`; always at the host root.
#[utoipa::path(
    get,
    path = "/version",
    tag = TAG_H2O,
    operation_id = "h2o_version",
    responses((status = 200, description = "The server version", body = H2oVersion)),
)]
async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

// ---------------------------------------------------------------------------------------------
// OIDC and discovery

/// OpenID configuration
///
/// Tells the H2O login where the token endpoint is. `<BASE>` is the configured public URL, else
/// the request's scheme and host.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = TAG_H2O,
    operation_id = "openid_configuration",
    responses((status = 200, description = "Provider metadata", body = OpenIdConfiguration)),
)]
async fn openid_configuration(state: State, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    HttpResponse::Ok().json(json!({
        "issuer": base,
        "token_endpoint": format!("{base}/oauth/token"),
        "grant_types_supported": ["refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
        "response_types_supported": [],
    }))
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

/// Exchange an API key for an access token
///
/// OAuth 2.0 refresh-token grant where the refresh token is an API key. The access token is valid
/// for an hour, bound to the key's scopes and workspaces, and void once the key is revoked.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = TAG_H2O,
    operation_id = "oauth_token",
    request_body(content = OAuthTokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A new access token", body = OAuthTokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type` or `invalid_grant`", body = OAuthError),
    ),
)]
async fn token(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let Ok(body) = read_body(&req, payload, 64 * 1024).await else {
        return oauth_error("invalid_request", "request body too large");
    };
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return oauth_error("invalid_request", "grant_type is required");
    };
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(grant) = get("grant_type") else { return oauth_error("invalid_request", "grant_type is required") };
    if grant != "refresh_token" {
        return oauth_error("unsupported_grant_type", "only refresh_token is supported");
    }
    let Some(refresh) = get("refresh_token") else {
        return oauth_error("invalid_request", "refresh_token is required");
    };
    if crate::keys::parse_key(&refresh).is_none() {
        // Only API keys are refresh tokens: an access token cannot renew itself.
        return oauth_error("invalid_grant", "invalid refresh token");
    }
    // The refresh token is an API key: checked under the same failed-authentication limits.
    match super::verify_token(&state, req.peer_addr().map(|a| a.ip()), Some(refresh)).await {
        Ok(p) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({
            "access_token": state.keys.mint_access_token(&p),
            "token_type": "Bearer",
            "expires_in": crate::keys::ACCESS_TOKEN_TTL.as_secs(),
        })),
        Err(AuthFailure::RateLimited(secs)) => HttpResponse::TooManyRequests()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::RETRY_AFTER, secs.to_string()))
            .json(json!({"error": "slow_down", "error_description": "too many failed attempts; retry later"})),
        Err(_) => oauth_error("invalid_grant", "invalid refresh token"),
    }
}

/// Discovery: environment
///
/// H2O Cloud discovery for `login(environment=…)`.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/environment",
    tag = TAG_H2O,
    operation_id = "discovery_environment",
    responses((status = 200, description = "The environment", body = DiscoveryEnvironmentResponse)),
)]
async fn discovery_environment(state: State, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    HttpResponse::Ok().json(json!({"environment": {
        "h2oCloudEnvironment": base,
        "issuerUrl": base,
        "h2oCloudPlatformOauth2Scope": "openid offline_access",
        "h2oCloudVersion": env!("CARGO_PKG_VERSION"),
    }}))
}

/// Discovery: services
///
/// The `audit-trail` service, whose `uri` is this server.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/services",
    tag = TAG_H2O,
    operation_id = "discovery_services",
    responses((status = 200, description = "The services", body = DiscoveryServicesResponse)),
)]
async fn discovery_services(state: State, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    HttpResponse::Ok().json(json!({"services": [{
        "name": "services/audit-trail",
        "displayName": "Audit Trail",
        "uri": base,
        "version": env!("CARGO_PKG_VERSION"),
    }]}))
}

/// Discovery: clients
///
/// The `platform` OAuth client id (configured) used by the H2O login.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/clients",
    tag = TAG_H2O,
    operation_id = "discovery_clients",
    responses((status = 200, description = "The clients", body = DiscoveryClientsResponse)),
)]
async fn discovery_clients(state: State) -> HttpResponse {
    HttpResponse::Ok().json(json!({"clients": [{
        "name": "clients/platform",
        "displayName": "Platform",
        "oauth2ClientId": state.config.oauth_client_id,
    }]}))
}

/// Discovery: links
///
/// Always empty.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/links",
    tag = TAG_H2O,
    operation_id = "discovery_links",
    responses((status = 200, description = "No links", body = DiscoveryLinksResponse)),
)]
async fn discovery_links() -> HttpResponse {
    HttpResponse::Ok().json(json!({"links": []}))
}

/// Discovery: components
///
/// Always empty.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/components",
    tag = TAG_H2O,
    operation_id = "discovery_components",
    responses((status = 200, description = "No components", body = DiscoveryComponentsResponse)),
)]
async fn discovery_components() -> HttpResponse {
    HttpResponse::Ok().json(json!({"components": []}))
}

#[allow(dead_code)]
fn random_token_key() -> [u8; 32] {
    random_bytes::<32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own events (`event::system`) are the events the H2O parser makes of the same
    /// H2O bodies, with origin `Server`: they render in this dialect like any other event.
    #[test]
    fn server_events_are_what_the_h2o_parser_makes_of_them() {
        let as_parsed = |built: &NewEvent, mut body: Value, redact: bool| -> String {
            body["eventTime"] = built.event["timestamp"].clone();
            body["status"] = json!({"code": 0, "message": ""});
            let mut parsed = parse_event(&body, built.uid, redact).expect("the H2O parser accepts it");
            parsed.origin = Origin::Server;
            format!("{parsed:?}")
        };
        let ua = "agent/1 ".repeat(200);
        let built = system::search_audit("k1", Some("10.1.2.3".into()), &ua, "{\"x\":1}".into(), true).unwrap();
        let body = json!({"eventSource": "h2oai-audittrail-server", "action": "actions/audittrail/events/SEARCH",
            "readOnly": true, "principal": "keys/k1", "sourceIpAddress": "10.1.2.3", "resource": "//audittrail",
            "requestParameters": {"filter": "{\"x\":1}"}, "userAgent": truncate(&ua, 1024), "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, true));
        let built = system::search_audit("k1", None, "", "{}".into(), false).unwrap();
        let body = json!({"eventSource": "h2oai-audittrail-server", "action": "actions/audittrail/events/SEARCH",
            "readOnly": true, "principal": "keys/k1", "sourceIpAddress": "unknown", "resource": "//audittrail",
            "requestParameters": {"filter": "{}"}, "userAgent": "", "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, false));

        let built = system::key_created("adm", Some("192.0.2.1".into()), "k2", "ci bot", true).unwrap();
        let body = json!({"eventSource": "trailkeep", "action": "actions/audittrail/keys/CREATE", "readOnly": false,
            "principal": "keys/adm", "sourceIpAddress": "192.0.2.1", "resource": "//audittrail/keys/k2",
            "metadata": {"key_id": "k2", "name": "ci bot"}, "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, true));
        let built = system::key_revoked("adm", None, "k2", false).unwrap();
        let body = json!({"eventSource": "trailkeep", "action": "actions/audittrail/keys/REVOKE", "readOnly": false,
            "principal": "keys/adm", "sourceIpAddress": "unknown", "resource": "//audittrail/keys/k2",
            "metadata": {"key_id": "k2"}, "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, false));

        for workspace in ["", "workspaces/w1"] {
            let info = system::PurgeInfo {
                workspace: workspace.into(),
                count: 3,
                first_seq: 10,
                last_seq: 12,
                cutoff: 1_764_633_600_000_000,
                period: 90 * 86_400_000_000,
            };
            let built = system::purge(&info);
            let body = json!({"eventSource": "trailkeep", "action": "actions/audittrail/events/PURGE", "readOnly": false,
                "principal": "trailkeep/retention", "sourceIpAddress": "unknown", "resource": "//audittrail",
                "metadata": {"message": "retention: removed the content of 3 events received before 2025-12-02T00:00:00.000000Z",
                    "purged": "3", "first_seq": "10", "last_seq": "12", "cutoff": "2025-12-02T00:00:00.000000Z",
                    "retention": "90d"},
                "type": "TYPE_SYSTEM", "workspaceOverride": workspace});
            assert_eq!(format!("{built:?}"), as_parsed(&built, body, false));
        }

        // A value the H2O parser refuses (over 8 KiB) is not recorded either.
        let long = "x".repeat(system::MAX_VALUE + 1);
        assert!(system::search_audit("k1", None, "", long.clone(), false).is_none());
        let body = json!({"eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "unknown",
            "eventTime": "2025-01-01T00:00:00Z", "requestParameters": {"filter": long}});
        assert!(parse_event(&body, Uuid::new_v4(), false).is_err());
        assert!(system::search_audit("k1", None, "", "x".repeat(system::MAX_VALUE), false).is_some());
    }

    fn rendered(ev: &Value, origin: Origin, event_time: i64) -> String {
        let uid = Uuid::parse_str("b096430b-c7a8-47f2-a129-d9ae58cf454f").unwrap();
        let mut out = Vec::new();
        h2o_json(ev.as_object().unwrap(), origin, uid, event_time, "workspaces/w1")
            .finish(1_764_633_600_123_456, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The H2O shape, written field by field, is byte for byte serde_json's writing of the
    /// expected object (keys sorted), for both origins, with and without a status.
    #[test]
    fn h2o_json_is_the_h2o_shape() {
        let h2o = json!({"action": "a \"q\"", "actor": "users/é", "event_id": "b096430b-c7a8-47f2-a129-d9ae58cf454f",
            "event_source": "svc", "message": "m", "metadata": {"k": "v", "message": "m"}, "read_only": true,
            "request_parameters": {"p": "1"}, "source": "private", "status": "7", "status_message": "nope",
            "target": "//x/workspaces/w1", "tenant_id": "workspaces/w1", "timestamp": "2025-01-01T00:00:00.123456789Z",
            "type": "TYPE_API", "user_agent": "ua\n"});
        let expected = json!({"action": "a \"q\"", "eventSource": "svc", "eventTime": "2025-01-01T00:00:00.123456789Z",
            "loginPrincipal": "", "metadata": {"k": "v", "message": "m"}, "name": "events/b096430b-c7a8-47f2-a129-d9ae58cf454f",
            "principal": "users/é", "readOnly": true, "receiveTime": "2025-12-02T00:00:00.123456Z",
            "requestParameters": {"p": "1"}, "resource": "//x/workspaces/w1", "sourceIpAddress": "private",
            "status": {"code": 7, "message": "nope"}, "type": "TYPE_API", "userAgent": "ua\n", "workspace": "workspaces/w1"});
        assert_eq!(rendered(&h2o, Origin::H2o, 0), expected.to_string());
        let mut no_status = h2o.clone();
        no_status.as_object_mut().unwrap().remove("status");
        let mut expected_no_status = expected.clone();
        expected_no_status.as_object_mut().unwrap().remove("status");
        assert_eq!(rendered(&no_status, Origin::H2o, 0), expected_no_status.to_string());

        let pangea = json!({"action": "login", "actor": "al", "message": "hi", "new": {"x": 1}, "old": "was",
            "source": "1.2.3.4", "status": "failed", "target": "t", "tenant_id": "workspaces/w1",
            "timestamp": "2025-01-01T00:00:00Z"});
        let expected = json!({"action": "login", "eventSource": "pangea", "eventTime": "2025-01-01T00:00:00.000001Z",
            "loginPrincipal": "", "metadata": {"message": "hi", "old": "was", "status": "failed"},
            "name": "events/b096430b-c7a8-47f2-a129-d9ae58cf454f", "principal": "al", "readOnly": false,
            "receiveTime": "2025-12-02T00:00:00.123456Z", "requestParameters": {}, "resource": "t",
            "sourceIpAddress": "1.2.3.4", "type": "TYPE_UNSPECIFIED", "userAgent": "", "workspace": "workspaces/w1"});
        assert_eq!(rendered(&pangea, Origin::Pangea, 1_735_689_600_000_001), expected.to_string());
        let mut numeric = pangea.clone();
        numeric["status"] = json!("404");
        let mut expected_numeric = expected.clone();
        expected_numeric["metadata"].as_object_mut().unwrap().remove("status");
        expected_numeric["status"] = json!({"code": 404, "message": ""});
        assert_eq!(rendered(&numeric, Origin::Pangea, 1_735_689_600_000_001), expected_numeric.to_string());
    }

    #[test]
    fn uuid4_strictness() {
        assert!(parse_uuid4("b096430b-c7a8-47f2-a129-d9ae58cf454f").is_some());
        assert!(parse_uuid4("B096430B-C7A8-47F2-A129-D9AE58CF454F").is_some());
        assert!(parse_uuid4("b096430bc7a847f2a129d9ae58cf454f").is_none());
        assert!(parse_uuid4("b096430b-c7a8-17f2-a129-d9ae58cf454f").is_none());
        assert!(parse_uuid4("b096430b-c7a8-47f2-c129-d9ae58cf454f").is_none());
        assert!(parse_uuid4("{b096430b-c7a8-47f2-a129-d9ae58cf454f}").is_none());
    }

    #[test]
    fn metadata_keys() {
        for k in ["a", "k_1", "abc", "a1"] {
            assert!(valid_metadata_key(k), "{k}");
        }
        for k in ["", "A", "1a", "a_", "a-b", &"a".repeat(64)] {
            assert!(!valid_metadata_key(k), "{k}");
        }
    }

    #[test]
    fn page_token_round_trip_and_tamper() {
        let key = [3u8; 32];
        let t = PageToken { filter_hash: [1; 16], end_us: 5, last_time: 4, last_seq: 3, issued_us: 2, key_id: [9; 8] };
        let enc = t.encode(&key);
        let d = PageToken::decode(&enc, &key).unwrap();
        assert_eq!((d.end_us, d.last_time, d.last_seq, d.issued_us), (5, 4, 3, 2));
        assert!(PageToken::decode(&enc, &[4u8; 32]).is_none());
        let mut raw = B64URL.decode(&enc).unwrap();
        raw[20] ^= 1;
        assert!(PageToken::decode(&B64URL.encode(raw), &key).is_none());
        assert!(PageToken::decode("garbage", &key).is_none());
    }
}
