//! Observability: a request id on every response, one structured log line per request (method,
//! route pattern, status, latency; never bodies or keys), and Prometheus metrics at `/metrics`
//! (admin keys only).

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::apidoc::TAG_OPS;
use super::auth::{AuthFailure, authenticate};
use super::state::State;

/// `/metrics` error.
#[derive(utoipa::ToSchema)]
pub struct MetricsError {
    pub code: i32,
    pub message: String,
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder's pending histogram samples are folded into their buckets. It keeps
/// every recorded value (8 bytes and some) until a scrape or an upkeep drains them: without this,
/// a server nobody scrapes grows by every request it serves.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide metrics recorder once, and a thread that runs its upkeep.
pub fn init_metrics() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            .ok()?
            .set_buckets_for_metric(
                Matcher::Full("trailkeep_group_commit_events".into()),
                &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 20000.0],
            )
            .ok()?;
        let handle = builder.install_recorder().ok()?;
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("trailkeep-metrics".into()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histogram samples wait for a scrape");
        }
        Some(handle)
    });
}

/// Middleware: request id, access log, request metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let started = Instant::now();
    // No credential or other header needs more than 8 KiB: refuse before any auth work.
    if req.headers().iter().any(|(_, v)| v.len() > 8192) {
        let resp = HttpResponse::build(actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .json(serde_json::json!({"code": 3, "message": "request header too large", "details": []}));
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let method = req.method().to_string();
    let mut res = next.call(req).await?.map_into_left_body();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16();
    let secs = started.elapsed().as_secs_f64();
    let header = HeaderName::from_static("x-request-id");
    if !res.headers().contains_key(&header)
        && let Ok(v) = HeaderValue::from_str(&request_id)
    {
        res.headers_mut().insert(header, v);
    }
    let id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or(&request_id).to_string();
    tracing::info!(request_id = %id, method = %method, route = %route, status, latency_ms = secs * 1000.0, "request");
    let labels = [("route", route), ("method", method), ("status", status.to_string())];
    metrics::counter!("trailkeep_http_requests_total", &labels).increment(1);
    metrics::histogram!("trailkeep_http_request_duration_seconds", &labels[..2]).record(secs);
    if status == 401 {
        metrics::counter!("trailkeep_auth_failures_total").increment(1);
    }
    Ok(res)
}

/// Prometheus metrics
///
/// `GET /metrics`: Prometheus text format, admin keys only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = TAG_OPS,
    operation_id = "metrics",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or invalid key (code 16)", body = MetricsError),
        (status = 403, description = "Not an admin key (code 7)", body = MetricsError),
    ),
    security(("api_key" = [])),
)]
pub async fn metrics_endpoint(state: State, req: HttpRequest) -> HttpResponse {
    match authenticate(&state, &req).await {
        Ok(p) if p.scopes.admin => {}
        Ok(_) => return HttpResponse::Forbidden().json(serde_json::json!({"code": 7, "message": "permission denied"})),
        Err(AuthFailure::RateLimited(secs)) => {
            return HttpResponse::TooManyRequests()
                .insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()))
                .json(serde_json::json!({"code": 8, "message": "rate limit exceeded"}));
        }
        Err(_) => {
            return HttpResponse::Unauthorized().json(serde_json::json!({"code": 16, "message": "unauthenticated"}));
        }
    }
    metrics::gauge!("trailkeep_tree_size").set(state.ledger.size() as f64);
    let db = crate::store::db_path(&state.data_dir);
    let size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum();
    metrics::gauge!("trailkeep_database_bytes").set(size as f64);
    // Sets trailkeep_replication_lag_events / _seconds as of now.
    let _ = super::state::replication_report(&state).await;
    let body = HANDLE.get().and_then(|h| h.as_ref()).map(|h| h.render()).unwrap_or_default();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body)
}

#[cfg(test)]
mod tests {
    /// The recorder keeps histogram samples until something drains them: the upkeep thread runs
    /// beside it (benches/unscraped_rss.py measures what it keeps without one: ~20 bytes per
    /// request).
    #[test]
    fn the_recorder_comes_with_its_upkeep_thread() {
        super::init_metrics();
        let names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        };
        // A new thread names itself once it runs (the kernel keeps 15 bytes of the name).
        let found = (0..200).any(|_| {
            let found = names().iter().any(|n| n == "trailkeep-metri");
            if !found {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            found
        });
        assert!(found, "threads: {:?}", names());
    }
}
