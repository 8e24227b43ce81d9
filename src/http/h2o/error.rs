//! The H2O dialect's errors (`{code, message, details}`, grpc-gateway style) and the key check
//! every H2O route makes.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::http::auth::{AuthFailure, authenticate};
use crate::http::body::BodyError;
use crate::http::state::{STORAGE_FULL_RETRY_S, State};
use crate::keys::Principal;
use crate::store::writer::WriteError;

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
    pub(super) fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 3, message)
    }
    pub(super) fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 16, "unauthenticated")
    }
    pub(super) fn denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, 7, "permission denied")
    }
    pub(super) fn conflict(id: &Uuid) -> Self {
        Self::new(StatusCode::CONFLICT, 6, format!("event events/{id} already exists"))
    }
    pub(super) fn unsupported_media_type() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, "the body must be sent as Content-Type: application/json")
    }
    pub(super) fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, 3, "request body too large")
    }
    pub(super) fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 13, "internal error")
    }
    pub(super) fn rate_limited(retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, 8, "rate limit exceeded") }
    }
    pub(super) fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, 14, "service unavailable")
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 5, "Not Found")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, 12, "Method Not Allowed")
    }
    pub(super) fn status_json(&self) -> Value {
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
            WriteError::Storage(_) | WriteError::ConfigChanged => Self::unavailable(),
            WriteError::ReadOnly(reason) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, 14, format!("service unavailable: {reason}"))
            }
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

/// Adds an `Allow` header to a 405.
pub fn allow(mut resp: HttpResponse, methods: &'static str) -> HttpResponse {
    resp.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(methods));
    resp
}

pub(super) type H2oResult = Result<HttpResponse, H2oError>;

/// The start of every H2O POST: a key with the scope (`require`), a JSON content type, and the
/// body read up to `limit` bytes.
pub(super) async fn require_json(
    state: &State,
    req: &HttpRequest,
    payload: actix_web::web::Payload,
    ingest: bool,
    limit: usize,
) -> Result<(Principal, actix_web::web::Bytes), H2oError> {
    let principal = require(state, req, ingest).await?;
    if !crate::http::body::is_json(req) {
        return Err(H2oError::unsupported_media_type());
    }
    let body = crate::http::body::read_body(req, payload, limit).await?;
    Ok((principal, body))
}

pub(super) async fn require(state: &State, req: &HttpRequest, ingest: bool) -> Result<Principal, H2oError> {
    let p = authenticate(state, req).await?;
    let ok = if ingest { p.scopes.can_ingest() } else { p.scopes.can_search() };
    if !ok {
        return Err(H2oError::denied());
    }
    // H2O events belong to the default audit config: a key bound only to other configs has no
    // access to them.
    if !crate::configs::may_use(&p, &state.configs.default_config()) {
        return Err(H2oError::new(
            StatusCode::FORBIDDEN,
            7,
            "permission denied: the key is not bound to the default audit config",
        ));
    }
    Ok(p)
}
