//! `v1/search`, `v1/results` and `v1/root`: frozen search snapshots, pages with proofs, and
//! signed roots.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::envelope::{
    Ctx, PResult, PangeaError, any_key, body_object, can_search, check_keys, config_of, finish, invalid, opt_bool,
    opt_int, opt_string, require, truncate,
};
use super::ingest::LOG_LIMIT;
use super::schema::{
    PangeaErrorResponse, PangeaResponse, PangeaResultsBadRequest, PangeaResultsRequest, PangeaResultsResult,
    PangeaRootRequest, PangeaRootResult, PangeaSearchRequest, PangeaSearchResult, PangeaValidationErrorResponse,
};
use super::state::{Snapshot, random_id};
use crate::configs::AuditConfig;
use crate::http::apidoc::TAG_PANGEA;
use crate::http::state::{State, with_reader};
use crate::keys::Principal;
use crate::ledger::SignedRoot;
use crate::ledger::merkle::{CompactTree, encode_path};
use crate::search::catalog::{Catalog, FieldKind};
use crate::search::pangea_query;
use crate::store::search::{EventRow, PANGEA_ORDER_BY, PangeaQuery, buffer_hashes, pangea_search, rows_by_seq};
use crate::store::tree::TreeReader;
use crate::store::writer::{self};
use crate::time::{format_micros, parse_duration, parse_pangea_time};

const SEARCH_TTL_US: i64 = 48 * 3600 * 1_000_000;

pub(super) fn parse_time_arg(body: &Map<String, Value>, key: &str, now: i64) -> Result<Option<i64>, PangeaError> {
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

/// Whether `search_restriction` may name `field`: the vendor's six fields in the default config,
/// any searchable string or text field in a custom config.
fn restrictable(catalog: &Catalog, field: &str) -> bool {
    if catalog.is_standard() {
        RESTRICTION_FIELDS.contains(&field)
    } else {
        catalog.field(field).is_some_and(|f| f.kind == FieldKind::Text)
    }
}

fn parse_restriction(body: &Map<String, Value>, key: &str, catalog: &Catalog) -> Result<Restriction, PangeaError> {
    let obj = match body.get(key) {
        None | Some(Value::Null) => return Ok((Vec::new(), json!({}))),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(invalid("InvalidObject", format!("'{key}' must be an object"), format!("/{key}"))),
    };
    let mut out = Vec::new();
    for (field, values) in obj {
        let src = format!("/{key}/{}", truncate(field, 64));
        if !restrictable(catalog, field) {
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
pub(super) async fn search(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
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
    let config = config_of(state, &principal, &body).await?;
    let catalog = config.catalog();
    let query = opt_string(&body, "query", 4096)?.unwrap_or("");
    let expr = pangea_query::parse_in(query, &catalog).map_err(|e| invalid("BadFormat", e.detail, "/query"))?;
    let ascending = match opt_string(&body, "order", 8)? {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(invalid("NotEnumMember", "'order' must be one of asc, desc", "/order")),
    };
    let order_by = order_by(&body, &catalog)?;
    let now = state.ledger.now_micros();
    let start = parse_time_arg(&body, "start", now)?.unwrap_or(now - 14 * 86_400 * 1_000_000);
    let end = parse_time_arg(&body, "end", now)?;
    if end.is_some_and(|e| start > e) {
        return Err(invalid("BadState", "'start' must not be after 'end'", "/start"));
    }
    let limit = opt_int(&body, "limit", 1, 1000)?.unwrap_or(20) as usize;
    let max_results = opt_int(&body, "max_results", 1, 10_000)?.unwrap_or(10_000) as usize;
    let verbose = opt_bool(&body, "verbose")?.unwrap_or(true);
    let (restrictions, restriction_json) = parse_restriction(&body, "search_restriction", &catalog)?;
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
        catalog: Some(catalog),
    };
    let snapshot = run_snapshot(state, &principal, &config, q, verbose, restriction_json, now + SEARCH_TTL_US).await?;
    let id = random_id("pas_");
    state.pangea.searches.insert(id.clone(), snapshot.clone(), snapshot.expires_us);
    let mut page = render_page(state, &snapshot, 0, limit).await?;
    page["id"] = json!(id);
    page["expires_at"] = json!(format_micros(snapshot.expires_us));
    Ok(page)
}

/// `order_by`: `received_at` (the default) or a field the config can sort by (the vendor's list
/// in the default config).
pub(super) fn order_by(body: &Map<String, Value>, catalog: &Catalog) -> Result<String, PangeaError> {
    let allowed = |f: &str| {
        if catalog.is_standard() { PANGEA_ORDER_BY.contains(&f) } else { f == "received_at" || catalog.orderable(f) }
    };
    match opt_string(body, "order_by", 32)? {
        None => Ok("received_at".to_string()),
        Some(f) if allowed(f) => Ok(f.to_string()),
        Some(_) => {
            let names: Vec<&str> = if catalog.is_standard() {
                PANGEA_ORDER_BY.to_vec()
            } else {
                catalog.fields.iter().filter(|f| catalog.orderable(&f.name)).map(|f| f.name.as_str()).collect()
            };
            Err(invalid("NotEnumMember", format!("'order_by' must be one of {}", names.join(", ")), "/order_by"))
        }
    }
}

/// Runs the query and freezes the result list together with the tree size it is proven against.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_snapshot(
    state: &State,
    principal: &Principal,
    config: &Arc<AuditConfig>,
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
    Ok(Snapshot {
        key_id: principal.key_id.clone(),
        config: config.clone(),
        seqs: Arc::new(seqs),
        verbose,
        tree_size,
        restriction,
        expires_us,
    })
}

/// Renders `limit` events from `offset` of a snapshot, with proofs and roots when verbose.
pub(super) async fn render_page(state: &State, snap: &Snapshot, offset: usize, limit: usize) -> PResult {
    let seqs: Vec<i64> = snap.seqs.iter().skip(offset).take(limit).copied().collect();
    let verbose = snap.verbose;
    let size = snap.tree_size;
    let ledger = state.ledger.clone();
    let (rows, mut proofs, root) = with_reader(state, move |c| {
        let rows = rows_by_seq(c, &seqs)?;
        // Membership proofs of the published events: the path in the event's buffer, then the
        // buffer's path in the cold tree of the snapshot's size; one buffer tree per buffer.
        let mut proofs = std::collections::HashMap::new();
        let mut root = None;
        if verbose {
            let mut buffers = std::collections::HashMap::new();
            let mut tree = TreeReader::new(c, &ledger);
            for r in rows.iter().filter(|r| r.buffer < size) {
                if let std::collections::hash_map::Entry::Vacant(v) = buffers.entry(r.buffer) {
                    let (first, hashes) = buffer_hashes(c, r.buffer)?;
                    v.insert((first, CompactTree::from_leaves(hashes), tree.path(r.buffer, size)?));
                }
                let (first, hot, cold) = &buffers[&r.buffer];
                let mut proof = hot.path((r.seq - first) as usize, hot.len());
                proof.extend(cold.iter().copied());
                proofs.insert(r.seq, encode_path(&proof));
            }
            if let Some(r) = writer::root_at(c, &ledger, size)? {
                root = Some(with_consistency(c, &ledger, r)?);
            }
        }
        Ok((rows, proofs, root))
    })
    .await
    .map_err(|()| PangeaError::Unavailable)?;
    let events: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut e = json!({"envelope": envelope_of(r), "hash": hex::encode(r.hash), "published": r.buffer < size});
            if let Some(proof) = proofs.remove(&r.seq) {
                e["leaf_index"] = json!(r.buffer);
                e["membership_proof"] = json!(proof);
            }
            e
        })
        .collect();
    let mut out = json!({"count": snap.seqs.len(), "events": events});
    if let Some((root, consistency)) = root {
        let mut rj = root_json(&root, consistency);
        rj.as_object_mut().map(|o| o.remove("signature"));
        out["root"] = rj;
        out["unpublished_root"] = json!({"tree_name": root.tree_name, "size": root.size, "root_hash": root.root_hash});
    }
    Ok(out)
}

/// A signed root with the consistency proof from the size before (reader thread).
fn with_consistency(
    c: &rusqlite::Connection,
    ledger: &crate::ledger::Ledger,
    root: SignedRoot,
) -> rusqlite::Result<(SignedRoot, Option<Vec<String>>)> {
    let consistency =
        if root.size >= 2 { Some(TreeReader::new(c, ledger).consistency(root.size - 1, root.size)?) } else { None };
    Ok((root, consistency))
}

fn envelope_of(r: &EventRow) -> Value {
    serde_json::from_str(&r.envelope).unwrap_or(Value::Null)
}

fn root_json(root: &SignedRoot, consistency: Option<Vec<String>>) -> Value {
    let mut v = json!({
        "tree_name": root.tree_name,
        "size": root.size,
        "root_hash": root.root_hash,
        "published_at": root.published_at,
        "url": format!("urn:audit-root:{}:{}", root.tree_name, root.size),
        "signature": root.signature,
    });
    if let Some(items) = consistency {
        v["consistency_proof"] = json!(items);
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
pub(super) async fn results(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = results_inner(&state, &req, payload).await;
    finish(ctx, |v| format!("Found {} event(s)", v["count"].as_u64().unwrap_or(0)), r)
}

pub(super) fn snapshot_for(state: &State, principal: &Principal, id: &str) -> Result<Snapshot, PangeaError> {
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
    // A config_id (the SDK sends its own on every call) must be the search's.
    if opt_string(&body, "config_id", 64)?.is_some_and(|c| c != snap.config.id) {
        return Err(PangeaError::NotFound);
    }
    if body.contains_key("assert_search_restriction") {
        let (_, asserted) = parse_restriction(&body, "assert_search_restriction", &snap.config.catalog())?;
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
pub(super) async fn root(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = root_inner(&state, &req, payload).await;
    finish(ctx, |_| "Root found".into(), r)
}

async fn root_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> PResult {
    let principal = require(state, req, any_key).await?;
    let body = body_object(req, payload, LOG_LIMIT).await?;
    check_keys(&body, &["tree_size"], "")?;
    // The one tree holds every config's events; a config_id given must still be the key's.
    if body.contains_key("config_id") {
        config_of(state, &principal, &body).await?;
    }
    let size = opt_int(&body, "tree_size", 1, i64::MAX)?;
    let ledger = state.ledger.clone();
    let (root, consistency) = with_reader(state, move |c| {
        let root = match size {
            Some(s) => writer::root_at(c, &ledger, s as u64)?,
            None => writer::latest_root(c, &ledger.tree_name)?,
        };
        root.map(|r| with_consistency(c, &ledger, r)).transpose()
    })
    .await
    .map_err(|()| PangeaError::Unavailable)?
    .ok_or(PangeaError::TreeNotFound)?;
    Ok(json!({"data": root_json(&root, consistency)}))
}
