//! `GET /api/v1/replication`: the replication state for the UI's integrity page and operators
//! (admin keys without a workspace limit).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::apidoc::{Problem, TAG_UI};
use super::state::{State, replication_report};
use super::ui::{principal, problem};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/replication").route(web::get().to(replication_status)).default_service(
        web::to(|| async {
            let mut r = problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET");
            r.headers_mut()
                .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("GET"));
            r
        }),
    ));
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReplicationState {
    /// Whether replication is configured (when false, no other field is present).
    enabled: bool,
    /// `s3://bucket/prefix` or `file:///path` (never credentials).
    target: Option<String>,
    interval_seconds: Option<f64>,
    max_events: Option<u64>,
    /// `starting`, `idle`, `uploading`, `retrying`, `stopped` or `refused`.
    state: Option<String>,
    committed_events: Option<i64>,
    /// Events in the target (the watermark: every event below it is there, confirmed).
    replicated_events: Option<i64>,
    replicated_leaves: Option<u64>,
    lag_events: Option<i64>,
    /// Age of the oldest event not yet replicated (0 when none is).
    lag_seconds: Option<f64>,
    objects: Option<u64>,
    last_upload_at: Option<String>,
    consecutive_failures: Option<u64>,
    /// `{at, kind, message}` of the last failed upload (kinds: `unreachable`, `throttled`,
    /// `server_error`, `denied`, `not_found`, `conflict`, `database`, `other`).
    #[schema(value_type = Option<Object>)]
    last_error: Option<Value>,
}

/// Replication state
///
/// Where replication to object storage stands: target, watermark, lag, last upload, last failure.
#[utoipa::path(
    get,
    path = "/api/v1/replication",
    tag = TAG_UI,
    operation_id = "replication_status",
    responses(
        (status = 200, description = "The state", body = ReplicationState),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The database cannot be read", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
pub async fn replication_status(state: State, req: HttpRequest) -> HttpResponse {
    match principal(&state, &req).await {
        Ok(p) if p.scopes.admin && p.workspaces.is_empty() => {}
        Ok(_) => {
            return problem(StatusCode::FORBIDDEN, "forbidden", "this needs an admin key without a workspace limit");
        }
        Err(r) => return r,
    }
    match replication_report(&state).await {
        Some(v) => HttpResponse::Ok().json(v),
        None => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
    }
}
