//! Pangea's response envelope (`{request_id, request_time, response_time, status, summary,
//! result}`), its errors, the key check, and request-body parsing.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use std::sync::Arc;

use super::state::random_id;
use crate::configs::{AuditConfig, SelectError};
use crate::event::canonical::parse_strict;
use crate::http::auth::{AuthFailure, ConfigAccess, authenticate, config_for};
use crate::http::body::{BodyError, is_json, read_body};
use crate::http::state::{STORAGE_FULL_RETRY_S, State};
use crate::keys::Principal;
use crate::store::writer::WriteError;

const MAX_DEPTH: usize = 64;

pub(super) struct Ctx {
    pub(super) request_id: String,
    request_time: String,
}

impl Ctx {
    pub(super) fn new() -> Self {
        Self { request_id: random_id("prq_"), request_time: now_ms() }
    }
    pub(super) fn respond(&self, http: StatusCode, status: &str, summary: &str, result: Value) -> HttpResponse {
        HttpResponse::build(http).insert_header(("x-request-id", self.request_id.as_str())).json(json!({
            "request_id": self.request_id,
            "request_time": self.request_time,
            "response_time": now_ms(),
            "status": status,
            "summary": summary,
            "result": result,
        }))
    }
    pub(super) fn ok(&self, summary: &str, result: Value) -> HttpResponse {
        self.respond(StatusCode::OK, "Success", summary, result)
    }
    pub(super) fn error(&self, e: PangeaError) -> HttpResponse {
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
            PangeaError::MissingConfigId => self.respond(
                StatusCode::BAD_REQUEST,
                "MissingConfigID",
                "The key is bound to several audit configs: send config_id to choose one",
                Value::Null,
            ),
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
                    actix_web::http::header::HeaderValue::from(STORAGE_FULL_RETRY_S),
                );
                r
            }
            PangeaError::ReadOnly(reason) => {
                self.respond(StatusCode::SERVICE_UNAVAILABLE, "ServiceNotAvailable", &reason, Value::Null)
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
pub(super) enum PangeaError {
    /// (code, detail, source JSON pointer)
    Validation(Vec<(&'static str, String, String)>),
    TooLarge,
    UnsupportedMediaType,
    Unauthenticated,
    Forbidden,
    NotFound,
    /// The key is bound to several configs and the request names none (Pangea's status
    /// `MissingConfigID`; the SDK raises `MissingConfigID`).
    MissingConfigId,
    BadOffset,
    TreeNotFound,
    /// 429 with `Retry-After` in seconds.
    RateLimited(u64),
    Unavailable,
    /// 503: the disk is full, nothing was stored.
    StorageFull,
    /// 503: the trail's root-signing key is not installed (the text says how to install it).
    ReadOnly(String),
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
            WriteError::ReadOnly(reason) => Self::ReadOnly(reason),
            _ => Self::Unavailable,
        }
    }
}

impl From<ConfigAccess> for PangeaError {
    fn from(e: ConfigAccess) -> Self {
        match e {
            ConfigAccess::Denied(SelectError::Missing) => Self::MissingConfigId,
            ConfigAccess::Denied(SelectError::Malformed) => {
                invalid("BadFormat", "'config_id' must be a config id (pci_ and 32 letters or digits)", "/config_id")
            }
            // Not bound, or no such config: alike, so a key cannot probe which configs exist.
            ConfigAccess::Denied(SelectError::Refused) => Self::Forbidden,
            ConfigAccess::Denied(SelectError::NotFound) => Self::NotFound,
            ConfigAccess::Unavailable => Self::Unavailable,
        }
    }
}

/// The audit config a request works on: its `config_id`, else the key's (`auth::config_for`).
pub(super) async fn config_of(
    state: &State,
    principal: &Principal,
    body: &Map<String, Value>,
) -> Result<Arc<AuditConfig>, PangeaError> {
    let requested = opt_string(body, "config_id", 64)?;
    Ok(config_for(state, principal, requested).await?)
}

pub(super) fn invalid(code: &'static str, detail: impl Into<String>, source: impl Into<String>) -> PangeaError {
    PangeaError::Validation(vec![(code, detail.into(), source.into())])
}

pub(super) type PResult = Result<Value, PangeaError>;

/// Renders a handler result as a Success envelope, or its error.
pub(super) fn finish(ctx: Ctx, summary: impl FnOnce(&Value) -> String, r: PResult) -> HttpResponse {
    match r {
        Ok(v) => {
            let s = summary(&v);
            ctx.ok(&s, v)
        }
        Err(e) => ctx.error(e),
    }
}

pub(super) async fn require(
    state: &State,
    req: &HttpRequest,
    need: fn(&Principal) -> bool,
) -> Result<Principal, PangeaError> {
    let p = authenticate(state, req).await?;
    if need(&p) { Ok(p) } else { Err(PangeaError::Forbidden) }
}

pub(super) fn can_ingest(p: &Principal) -> bool {
    p.scopes.can_ingest()
}

pub(super) fn can_search(p: &Principal) -> bool {
    p.scopes.can_search()
}

pub(super) fn any_key(_: &Principal) -> bool {
    true
}

pub(super) async fn body_object(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Map<String, Value>, PangeaError> {
    if !is_json(req) {
        return Err(PangeaError::UnsupportedMediaType);
    }
    let bytes = read_body(req, payload, limit).await?;
    match parse_strict(&bytes, MAX_DEPTH) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("InvalidObject", "the request body must be a JSON object", "/")),
        Err(e) => Err(invalid("BadFormat", format!("invalid JSON: {}", truncate(&e.detail, 180)), "/")),
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

pub(super) fn check_keys(body: &Map<String, Value>, allowed: &[&str], prefix: &str) -> Result<(), PangeaError> {
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

pub(super) fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, PangeaError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid("InvalidBool", format!("'{key}' must be a boolean"), format!("/{key}"))),
    }
}

pub(super) fn opt_string<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<&'a str>, PangeaError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s)),
        Some(Value::String(_)) => {
            Err(invalid("AboveMaxLength", format!("'{key}' is longer than {max} characters"), format!("/{key}")))
        }
        Some(_) => Err(invalid("InvalidString", format!("'{key}' must be a string"), format!("/{key}"))),
    }
}

pub(super) fn opt_int(body: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<i64>, PangeaError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(invalid("NotWithinRange", format!("'{key}' must be between {min} and {max}"), format!("/{key}"))),
        },
        Some(_) => Err(invalid("InvalidInteger", format!("'{key}' must be an integer"), format!("/{key}"))),
    }
}
