//! The Pangea Secure Audit Log dialect under `/pangea` (`spec/pangea-api.md`): log, bulk and async
//! log, search, results, root, download_results, export, and the async poll. This file only
//! registers the routes.

pub mod configs;
pub mod download;
pub mod envelope;
pub mod ingest;
pub mod poll;
pub mod schema;
pub mod search;
pub mod state;

use actix_web::http::StatusCode;
use actix_web::web;
use serde_json::json;

use configs::{config_create, config_delete, config_get, config_list, config_update, schema};
use download::{download_file, download_results, export};
use envelope::{Ctx, PangeaError};
use ingest::{log, log_bulk, log_bulk_async, log_stream};
use poll::poll;
use search::{results, root, search};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/pangea")
            .service(post_resource("/v1/log", web::post().to(log)))
            .service(post_resource("/v2/log", web::post().to(log_bulk)))
            .service(post_resource("/v2/log_async", web::post().to(log_bulk_async)))
            .service(post_resource("/v1/log_stream", web::post().to(log_stream)))
            .service(post_resource("/v1/search", web::post().to(search)))
            .service(post_resource("/v1/results", web::post().to(results)))
            .service(post_resource("/v1/root", web::post().to(root)))
            .service(post_resource("/v1/download_results", web::post().to(download_results)))
            .service(post_resource("/v1/export", web::post().to(export)))
            .service(post_resource("/v1/schema", web::post().to(schema)))
            .service(post_resource("/v1beta/config", web::post().to(config_get)))
            .service(post_resource("/v1beta/config/create", web::post().to(config_create)))
            .service(post_resource("/v1beta/config/update", web::post().to(config_update)))
            .service(post_resource("/v1beta/config/delete", web::post().to(config_delete)))
            .service(post_resource("/v1beta/config/list", web::post().to(config_list)))
            .route("/request/{id}", web::get().to(poll))
            .default_service(web::to(|| async { Ctx::new().error(PangeaError::NotFound) })),
    )
    .route("/download/{token}/{name}", web::get().to(download_file));
}

fn post_resource(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(route).default_service(web::to(|| async {
        let mut r = Ctx::new().respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "ValidationError",
            "There was 1 error(s) in the given payload.",
            json!({"errors": [{"code": "BadFormat", "detail": "method not allowed; use POST", "source": "/"}]}),
        );
        r.headers_mut()
            .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("POST"));
        r
    }))
}
