//! `v1/export`, `v1/download_results` and the download capability URLs (`GET
//! /download/{token}/{name}`, no key needed) that serve CSV or JSON.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::envelope::{
    Ctx, PangeaError, body_object, can_search, check_keys, config_of, finish, invalid, opt_bool, opt_string, require,
};
use super::ingest::LOG_LIMIT;
use super::poll::accepted;
use super::schema::{
    DownloadError, PangeaAcceptedResponse, PangeaDownloadRequest, PangeaDownloadResult, PangeaErrorResponse,
    PangeaExportRequest, PangeaResponse, PangeaValidationErrorResponse,
};
use super::search::{order_by, parse_time_arg, render_page, run_snapshot, snapshot_for};
use super::state::{AsyncResult, Download};
use crate::export::{csv_columns, csv_row_for};
use crate::http::apidoc::TAG_PANGEA;
use crate::http::state::{State, base_url};
use crate::store::search::PangeaQuery;
use crate::time::format_micros;

const EXPORT_TTL_US: i64 = 24 * 3600 * 1_000_000;
const EXPORT_MAX: usize = 1_000_000;

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
pub(super) async fn export(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_search).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        check_keys(&body, &["format", "start", "end", "order_by", "order", "verbose"], "")?;
        let config = config_of(&state, &principal, &body).await?;
        match opt_string(&body, "format", 8)? {
            None | Some("csv") | Some("json") => {}
            Some(_) => return Err(invalid("NotEnumMember", "'format' must be one of csv, json", "/format")),
        }
        let now = state.ledger.now_micros();
        let start = parse_time_arg(&body, "start", now)?;
        let end = parse_time_arg(&body, "end", now)?;
        let ascending = opt_string(&body, "order", 8)? == Some("asc");
        let order_by = order_by(&body, &config.catalog())?;
        let verbose = opt_bool(&body, "verbose")?.unwrap_or(true);
        let q = PangeaQuery {
            start_us: start,
            end_us: end,
            allowed_workspaces: principal.is_limited().then(|| principal.workspaces.clone()),
            ascending,
            order_by,
            max_results: EXPORT_MAX,
            catalog: Some(config.catalog()),
            ..Default::default()
        };
        let snap = run_snapshot(&state, &principal, &config, q, verbose, json!({}), now + EXPORT_TTL_US).await?;
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
pub(super) async fn download_results(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
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
        let snap: super::state::Snapshot = match (result_id, request_id) {
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
        if opt_string(&body, "config_id", 64)?.is_some_and(|c| c != snap.config.id) {
            return Err(PangeaError::NotFound);
        }
        let token = hex::encode(crate::ledger::random_bytes::<16>());
        let expires = snap.expires_us;
        state.pangea.downloads.insert(token.clone(), Download { snapshot: snap, format: format.into() }, expires);
        let url = format!("{}/download/{token}/trailkeep-results.{format}.gz", base_url(&state, &req));
        Ok(json!({"dest_url": url, "expires_at": format_micros(expires)}))
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

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
pub(super) async fn download_file(state: State, path: web::Path<(String, String)>) -> HttpResponse {
    let (token, _) = path.into_inner();
    let Some(dl) = state.pangea.downloads.get(&token) else {
        return HttpResponse::NotFound().json(json!({"error": "not found or expired"}));
    };
    let total = dl.snapshot.seqs.len();
    let fields: Vec<String> = dl.snapshot.config.schema.fields.iter().map(|f| f.id.clone()).collect();
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut csv_writer = (dl.format == "csv").then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(w) = csv_writer.as_mut() {
        let _ = w.write_record(csv_columns(&fields));
    }
    let mut offset = 0;
    while offset < total.max(1) && offset < total {
        let Ok(page) = render_page(&state, &dl.snapshot, offset, 1000).await else {
            return HttpResponse::ServiceUnavailable().json(json!({"error": "service unavailable"}));
        };
        let size = dl.snapshot.tree_size;
        for e in page["events"].as_array().into_iter().flatten() {
            write_download_row(&mut out, csv_writer.as_mut(), e, size, &fields);
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
    fields: &[String],
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
            let row = csv_row_for(e, published.then_some(tree_size), fields);
            let _ = w.write_record(row);
        }
    }
}
