//! `v1/log`, `v2/log`, `v2/log_async` and `v1/log_stream` (Auth0): validation of Pangea events,
//! their mapping to the canonical event, membership and consistency proofs, and retried requests.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use std::sync::Arc;

use super::envelope::{
    Ctx, PResult, PangeaError, body_object, can_ingest, check_keys, config_of, finish, invalid, opt_bool, opt_string,
    require,
};
use super::poll::{REQUEST_TTL_US, accepted, summary_for_result};
use super::schema::{
    Empty, PangeaAcceptedResponse, PangeaErrorResponse, PangeaLogBulkRequest, PangeaLogBulkResult, PangeaLogRequest,
    PangeaLogResult, PangeaLogStreamRequest, PangeaResponse, PangeaValidationErrorResponse,
};
use super::state::AsyncResult;
use crate::configs::ingest::{check_client_signature, new_event, sign_all};
use crate::configs::schema::{Problem, check_event};
use crate::configs::{AuditConfig, Signing};
use crate::event::canonical::to_canonical_string;
use crate::event::{NewEvent, StoredEvent};
use crate::http::apidoc::TAG_PANGEA;
use crate::http::auth::authenticate;
use crate::http::state::{State, with_reader};
use crate::keys::Principal;
use crate::ledger::merkle::{encode_path, parse_hash, path};
use crate::store::search::buffer_hashes;
use crate::store::tree::{TreeReader, root_size_of};
use crate::store::writer::{Appended, ConfigStamp, FieldRows, Outcome};
use crate::time::{now_micros, parse_pangea_time};

pub(super) const LOG_LIMIT: usize = 1 << 20;
const BULK_LIMIT: usize = 16 << 20;
const RETRY_TTL_US: i64 = 600 * 1_000_000;
const RETRY_MAX_EVENTS: usize = 100;

/// Pangea's `DateTimeRel` RFC 3339 pattern (offset optional).
fn timestamp_ok(s: &str) -> bool {
    parse_pangea_time(s).is_some()
}

/// Schema problems as a Pangea validation error.
fn problems(p: Vec<Problem>) -> PangeaError {
    PangeaError::Validation(p.into_iter().map(|p| (p.code, p.detail, p.source)).collect())
}

/// One item of a log request (`prefix`: its JSON pointer) → the canonical event of `config` with
/// its custom-field rows, checking the event against the config's schema and that the key may
/// write its tenant.
fn parse_item(
    item: &Map<String, Value>,
    prefix: &str,
    principal: &Principal,
    config: &AuditConfig,
) -> Result<(NewEvent, FieldRows), PangeaError> {
    let checked = check_event(&config.fields, item.get("event"), &format!("{prefix}/event")).map_err(problems)?;
    let signature = opt_string(item, "signature", 1024)?.map(str::to_string);
    let public_key = opt_string(item, "public_key", 1024)?.map(str::to_string);
    check_client_signature(config, signature.as_deref(), public_key.as_deref(), prefix)
        .map_err(|p| problems(vec![p]))?;
    if !principal.may_see(checked.tenant.as_deref().unwrap_or("")) {
        return Err(PangeaError::Forbidden);
    }
    Ok(new_event(config, checked, signature, public_key))
}

/// Appends events of `config`: signed by the server first if the config says so (one Ed25519
/// signature per event, on a blocking thread, not on the writer's), then stored only if the
/// config still has the revision they were checked against.
async fn append(
    state: &State,
    config: &Arc<AuditConfig>,
    mut events: Vec<(NewEvent, FieldRows)>,
) -> Result<Appended, PangeaError> {
    if config.signing == Signing::Server {
        let (registry, cfg) = (state.configs.clone(), config.clone());
        events = web::block(move || -> Result<_, PangeaError> {
            match registry.signer(&cfg) {
                Ok(Some(signer)) => sign_all(&signer, &mut events),
                Ok(None) => {}
                Err(_)
                    if let Some((name, version)) = &cfg.signing_key
                        && registry.keys().verifying_key(name, *version).is_err() =>
                {
                    // Not in the key store at all: a data directory restored from an archive
                    // holds only the key's public half.
                    return Err(PangeaError::ReadOnly(format!(
                        "this config's event-signing key {name} version {version} is not installed: copy \
                         keys/{name}.{version}.pem from the original data directory (or a backup's keys) into \
                         the data directory's keys/; until then its events can be read but not written"
                    )));
                }
                Err(e) => {
                    tracing::error!(error = %e, config = %cfg.id, "cannot load the config's event-signing key");
                    return Err(PangeaError::Unavailable);
                }
            }
            Ok(events)
        })
        .await
        .map_err(|_| PangeaError::Unavailable)??;
    }
    let stamp = ConfigStamp { num: config.num, revision: config.revision };
    Ok(state.writer.append_to(stamp, events).await?)
}

fn stored_of(outcome: Outcome) -> Result<StoredEvent, PangeaError> {
    match outcome {
        Outcome::Stored(s) | Outcome::Existing(s) => Ok(s),
        Outcome::Conflict => Err(PangeaError::Unavailable),
    }
}

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
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable, or the trail read-only because its root-signing key is not installed (the summary says how to install it)", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn log(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
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
    let config = config_of(state, &principal, &body).await?;
    let verbose = opt_bool(&body, "verbose")?.unwrap_or(false);
    let prev_root = opt_string(&body, "prev_root", 64)?.map(str::to_string);
    let ev = parse_item(&body, "", &principal, &config)?;
    let appended = append(state, &config, vec![ev]).await?;
    let tree_size = appended.tree_size;
    let stored = stored_of(appended.outcomes.into_iter().next().ok_or(PangeaError::Unavailable)?)?;
    let mut result = json!({"hash": stored.hash_hex()});
    if !verbose {
        return Ok(result);
    }
    result["envelope"] = stored.envelope_value();
    let buffer = stored.buffer;
    let seq = stored.seq;
    let prev = prev_root.as_deref().and_then(parse_hash);
    let ledger = state.ledger.clone();
    let (root_hash, proof, consistency) = with_reader(state, move |c| {
        let (first, hashes) = buffer_hashes(c, buffer)?;
        let mut proof = path((seq - first) as usize, &hashes);
        let mut tree = TreeReader::new(c, &ledger);
        let root = tree.root(tree_size)?.unwrap_or([0; 32]);
        proof.extend(tree.path(buffer, tree_size)?);
        // A client's previous root: the proof from it, when it is a root of this tree.
        let consistency = match prev {
            Some(prev) => match root_size_of(c, &ledger, &prev, tree_size)? {
                Some(m) => Some(tree.consistency(m, tree_size)?),
                None => None,
            },
            None => None,
        };
        Ok((root, proof, consistency))
    })
    .await
    .map_err(|()| PangeaError::Unavailable)?;
    result["unpublished_root"] = json!(hex::encode(root_hash));
    result["membership_proof"] = json!(encode_path(&proof));
    if let Some(items) = consistency.filter(|c| !c.is_empty()) {
        result["consistency_proof"] = json!(items);
    }
    Ok(result)
}

/// A bulk request's key, config, events and verbosity.
type Bulk = (Principal, Arc<AuditConfig>, Vec<(NewEvent, FieldRows)>, bool);

async fn parse_bulk(state: &State, req: &HttpRequest, payload: web::Payload) -> Result<Bulk, PangeaError> {
    let principal = require(state, req, can_ingest).await?;
    let body = body_object(req, payload, BULK_LIMIT).await?;
    check_keys(&body, &["events", "verbose"], "")?;
    let config = config_of(state, &principal, &body).await?;
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
        match parse_item(obj, &prefix, &principal, &config) {
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
    Ok((principal, config, events, verbose))
}

async fn bulk_result(
    state: &State,
    config: &Arc<AuditConfig>,
    events: Vec<(NewEvent, FieldRows)>,
    verbose: bool,
) -> PResult {
    let appended = append(state, config, events).await?;
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
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable, or the trail read-only because its root-signing key is not installed (the summary says how to install it)", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn log_bulk(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    if let Some(r) = replayed(&state, &req, &ctx).await {
        return r;
    }
    let r = match parse_bulk(&state, &req, payload).await {
        Ok((_, config, events, verbose)) => bulk_result(&state, &config, events, verbose).await,
        Err(e) => Err(e),
    };
    remember(&state, &req, &ctx, &r).await;
    finish(ctx, logged_summary, r)
}

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
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable, or the trail read-only because its root-signing key is not installed (the summary says how to install it)", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn log_stream(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_ingest).await?;
        let body = body_object(&req, payload, BULK_LIMIT).await?;
        let config = config_of(&state, &principal, &body).await?;
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
            let item = Map::from_iter([("event".to_string(), Value::Object(auth0_event(data)))]);
            events.push(parse_item(&item, &format!("/logs/{i}"), &principal, &config)?);
        }
        append(&state, &config, events).await?;
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
        (status = 503, description = "`ServiceNotAvailable`: storage busy or unavailable, or the trail read-only because its root-signing key is not installed (the summary says how to install it)", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn log_bulk_async(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = match parse_bulk(&state, &req, payload).await {
        Ok((principal, config, events, verbose)) => {
            bulk_result(&state, &config, events, verbose).await.map(|v| (principal, v))
        }
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
