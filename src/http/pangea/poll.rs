//! Async requests: the 202 answer and `GET /pangea/request/{id}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::envelope::{Ctx, PangeaError, any_key, finish, require};
use super::schema::{PangeaErrorResponse, PangeaPollResult, PangeaResponse};
use crate::http::apidoc::TAG_PANGEA;
use crate::http::state::{State, base_url};

pub(super) const REQUEST_TTL_US: i64 = 3600 * 1_000_000;

pub(super) fn accepted(ctx: &Ctx, state: &State, req: &HttpRequest) -> HttpResponse {
    let location = format!("{}/pangea/request/{}", base_url(state, req), ctx.request_id);
    ctx.respond(
        StatusCode::ACCEPTED,
        "Accepted",
        &format!("Request accepted; poll request/{} for the result", ctx.request_id),
        json!({"ttl_mins": 60, "retry_counter": 0, "location": location}),
    )
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
pub(super) async fn poll(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
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

pub(super) fn summary_for_result(v: &Value) -> String {
    if let Some(r) = v.get("results").and_then(Value::as_array) {
        return format!("Logged {} record(s)", r.len());
    }
    "Success".into()
}
