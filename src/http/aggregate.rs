//! `GET /api/v1/aggregate`: the web UI's timeline and top values of a search in one call (the
//! counting is `store::aggregate`). Same key checks as search: the search scope, and a key limited
//! to workspaces only ever counts their events.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::admin::allow;
use super::apidoc::{Problem, TAG_UI};
use super::state::{State, with_reader};
use super::ui::{problem, searcher};
use crate::search::pangea_query;
use crate::store::aggregate::{AggRequest, Aggregation, aggregate};
use crate::store::search::PangeaQuery;
use crate::time::{format_micros, parse_time_or_duration};

/// Rows an aggregation with a query (or over segments not summarised yet) reads at most: past
/// it the counts cover the newest part of the window (`complete: false`, `counted_from`).
const ROW_BUDGET: u64 = 2_000_000;
/// Time an aggregation spends counting at most (past it, as past the row budget, the counts cover
/// the newest part of the window).
const TIME_BUDGET: std::time::Duration = std::time::Duration::from_millis(750);
/// The same for a window of at most a day, which a reviewer narrows to and redraws often: its
/// timeline answers at once, counted from the newest events if need be.
const DAY_TIME_BUDGET: std::time::Duration = std::time::Duration::from_millis(200);
const DAY_US: i64 = 86_400_000_000;
const DEFAULT_BUCKETS: usize = 60;
const MAX_BUCKETS: usize = 500;
const DEFAULT_TOP: usize = 10;
const MAX_TOP: usize = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/aggregate").route(web::get().to(aggregate_events)).default_service(allow("GET")),
    );
}

#[derive(serde::Deserialize)]
struct AggregateParams {
    query: Option<String>,
    config_id: Option<String>,
    start: Option<String>,
    end: Option<String>,
    buckets: Option<String>,
    top: Option<String>,
}

/// Events of one timeline bucket, by outcome.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AggBucket {
    /// The bucket's first instant; it lasts `bucket_seconds`.
    #[schema(format = DateTime)]
    start: String,
    /// Status 0, 100–399 or a word such as `success`, `ok`, `allowed`.
    success: u64,
    /// Status 1–99, 400–599 or a word such as `failure`, `error`, `denied`.
    failure: u64,
    /// No status, or neither.
    other: u64,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AggValue {
    value: String,
    /// Events with this value.
    count: u64,
    /// Present when `count` is a lower bound: the value has at most this many events.
    max: Option<u64>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AggField {
    /// Most frequent first.
    values: Vec<AggValue>,
    /// False when some per-segment summaries kept only their most frequent values: then a value
    /// not listed may have more events than the last one listed.
    complete: bool,
}

/// Top values per field.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AggTop {
    tenant_id: AggField,
    actor: AggField,
    action: AggField,
    status: AggField,
    target: AggField,
}

/// The timeline and top values of a search.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AggResult {
    /// Matching events counted (the sum of the buckets).
    total: u64,
    /// False when the search read its budget of rows (or time) before the window's start: the counts
    /// cover events received from `counted_from` on.
    complete: bool,
    #[schema(format = DateTime)]
    counted_from: Option<String>,
    /// The window of the timeline: `start` (none or the epoch: the first event) to `end` (or now).
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
    /// Chosen from the window: 1 s to 365 days, at most `buckets` buckets.
    bucket_seconds: u64,
    buckets: Vec<AggBucket>,
    top: AggTop,
}

fn bad(code: &str, detail: &str) -> HttpResponse {
    problem(StatusCode::BAD_REQUEST, code, detail)
}

fn number(s: Option<&str>, default: usize, max: usize, name: &str) -> Result<usize, String> {
    match s.map(str::parse::<usize>) {
        None => Ok(default),
        Some(Ok(n)) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(format!("{name} must be a number from 1 to {max}")),
    }
}

/// Timeline and top values
///
/// Counts the events a Pangea search (`query`, `start`, `end`, as in `POST /pangea/v1/search`)
/// finds: per time bucket and outcome, and the most frequent tenants, actors, actions, statuses
/// and targets, of one audit config (`config_id`). A key limited to workspaces counts only their
/// events.
#[utoipa::path(
    get,
    path = "/api/v1/aggregate",
    tag = TAG_UI,
    operation_id = "aggregate",
    params(
        ("query" = Option<String>, Query, description = "Pangea query language; empty: every event", example = "actor:alice"),
        ("config_id" = Option<String>, Query, description = "The audit config counted (`pci_…`); default: the key's only config, else the default config"),
        ("start" = Option<String>, Query, description = "Earliest `received_at`: RFC 3339 or a duration back from now (`7d`); default (or the epoch): the first event"),
        ("end" = Option<String>, Query, description = "Latest `received_at`: RFC 3339 or a duration back from now; default: now"),
        ("buckets" = Option<u32>, Query, description = "Most timeline buckets (1–500, default 60)"),
        ("top" = Option<u32>, Query, description = "Values per field (1–50, default 10)"),
    ),
    responses(
        (status = 200, description = "The counts", body = AggResult),
        (status = 400, description = "Invalid query, time or parameter", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "The key may not search", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Storage unavailable", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn aggregate_events(state: State, req: HttpRequest, params: web::Query<AggregateParams>) -> HttpResponse {
    let (p, config) = match searcher(&state, &req, params.config_id.as_deref()).await {
        Ok(pc) => pc,
        Err(r) => return r,
    };
    let catalog = config.catalog();
    let expr = match pangea_query::parse_in(params.query.as_deref().unwrap_or(""), &catalog) {
        Ok(e) => e,
        Err(e) => return bad("invalid_query", &e.detail),
    };
    let now = state.ledger.now_micros();
    let time = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(|s| parse_time_or_duration(s, now));
    let (start, end) = (time(&params.start), time(&params.end));
    if start.is_some_and(|t| t.is_none()) || end.is_some_and(|t| t.is_none()) {
        return bad("invalid_timestamp", "start and end must be RFC 3339 date-times or durations such as 7d");
    }
    let (max_buckets, top) = match (
        number(params.buckets.as_deref(), DEFAULT_BUCKETS, MAX_BUCKETS, "buckets"),
        number(params.top.as_deref(), DEFAULT_TOP, MAX_TOP, "top"),
    ) {
        (Ok(b), Ok(t)) => (b, t),
        (Err(e), _) | (_, Err(e)) => return bad("invalid_parameter", &e),
    };
    let query = PangeaQuery {
        expr,
        start_us: start.flatten(),
        end_us: end.flatten(),
        allowed_workspaces: p.is_limited().then(|| p.workspaces.clone()),
        catalog: Some(catalog),
        ..Default::default()
    };
    if query.uses_fulltext() {
        state.writer.sync_fts().await;
    }
    let within_a_day = query.start_us.is_some_and(|s| query.end_us.unwrap_or(now).saturating_sub(s) <= DAY_US);
    let time_budget = if within_a_day { DAY_TIME_BUDGET } else { TIME_BUDGET };
    let request = AggRequest { query, now_us: now, max_buckets, top, row_budget: ROW_BUDGET, time_budget };
    match with_reader(&state, move |c| aggregate(c, &request)).await {
        Ok(a) => HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(render(&a)),
        Err(()) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
    }
}

fn render(a: &Aggregation) -> Value {
    let buckets: Vec<Value> = a
        .buckets
        .iter()
        .enumerate()
        .map(|(i, [s, f, o])| {
            json!({"start": format_micros(a.first_bucket_us + i as i64 * a.bucket_us), "success": s, "failure": f, "other": o})
        })
        .collect();
    let mut top = Map::new();
    for f in &a.top {
        let values: Vec<Value> = f
            .values
            .iter()
            .map(|v| {
                let mut o = json!({"value": v.value, "count": v.count});
                if v.max > v.count {
                    o["max"] = json!(v.max);
                }
                o
            })
            .collect();
        top.insert(f.field.to_string(), json!({"values": values, "complete": f.complete}));
    }
    json!({
        "total": a.total,
        "complete": a.complete,
        "counted_from": a.counted_from.map(format_micros),
        "start": format_micros(a.from_us),
        "end": format_micros(a.to_us),
        "bucket_seconds": a.bucket_us / 1_000_000,
        "buckets": buckets,
        "top": top,
    })
}
