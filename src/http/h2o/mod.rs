//! The H2O Audit Trail dialect (`spec/h2o-api.md`): create, batch create, search, `/version`,
//! and the OIDC + discovery endpoints the official client's login functions use. This file only
//! registers the routes.

pub mod discovery;
pub mod error;
pub mod ingest;
pub mod render;
pub mod schema;
pub mod search;

use actix_web::{ResponseError, web};

use discovery::{
    discovery_clients, discovery_components, discovery_environment, discovery_links, discovery_services,
    openid_configuration, token, version,
};
use error::{H2oError, allow};
use ingest::{batch_create_events, create_event};
use search::search_events;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let mna = || web::to(|| async { allow(H2oError::method_not_allowed().error_response(), "POST") });
    let mna_get = || web::to(|| async { allow(H2oError::method_not_allowed().error_response(), "GET") });
    cfg.service(web::resource("/v1/events").route(web::post().to(create_event)).default_service(mna()))
        .service(
            web::resource(["/v1/events:batchCreate", "/v1/events%3AbatchCreate", "/v1/events%3abatchCreate"])
                .route(web::post().to(batch_create_events))
                .default_service(mna()),
        )
        .service(
            web::resource(["/v1/events:search", "/v1/events%3Asearch", "/v1/events%3asearch"])
                .route(web::post().to(search_events))
                .default_service(mna()),
        )
        .service(web::resource("/version").route(web::get().to(version)).default_service(mna_get()))
        .service(web::resource("/.well-known/openid-configuration").route(web::get().to(openid_configuration)))
        .service(web::resource("/oauth/token").route(web::post().to(token)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/environment").route(web::get().to(discovery_environment)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/services").route(web::get().to(discovery_services)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/clients").route(web::get().to(discovery_clients)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/links").route(web::get().to(discovery_links)))
        .service(web::resource("/.ai.h2o.cloud.discovery/v1/components").route(web::get().to(discovery_components)));
}
