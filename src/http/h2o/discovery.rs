//! What the H2O client's `login()` and `login_custom()` call: `/version`, the OpenID
//! configuration, `POST /oauth/token` (an API key as refresh token) and the H2O cloud discovery
//! service.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::schema::{
    DiscoveryClientsResponse, DiscoveryComponentsResponse, DiscoveryEnvironmentResponse, DiscoveryLinksResponse,
    DiscoveryServicesResponse, H2oVersion, OAuthError, OAuthTokenRequest, OAuthTokenResponse, OpenIdConfiguration,
};
use crate::http::apidoc::TAG_H2O;
use crate::http::auth::{AuthFailure, verify_token};
use crate::http::body::read_body;
use crate::http::state::{State, base_url};

/// Server version
///
/// Reachability check of the H2O client's `login()` and `login_custom()`; always at the host root.
#[utoipa::path(
    get,
    path = "/version",
    tag = TAG_H2O,
    operation_id = "h2o_version",
    responses((status = 200, description = "The server version", body = H2oVersion)),
)]
pub(super) async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

/// OpenID configuration
///
/// Tells the H2O login where the token endpoint is. `<BASE>` is the configured public URL, else
/// the request's scheme and host.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = TAG_H2O,
    operation_id = "openid_configuration",
    responses((status = 200, description = "Provider metadata", body = OpenIdConfiguration)),
)]
pub(super) async fn openid_configuration(state: State, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    HttpResponse::Ok().json(json!({
        "issuer": base,
        "token_endpoint": format!("{base}/oauth/token"),
        "grant_types_supported": ["refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
        "response_types_supported": [],
    }))
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

/// Exchange an API key for an access token
///
/// OAuth 2.0 refresh-token grant where the refresh token is an API key. The access token is valid
/// for an hour, bound to the key's scopes and workspaces, and void once the key is revoked.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = TAG_H2O,
    operation_id = "oauth_token",
    request_body(content = OAuthTokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A new access token", body = OAuthTokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type` or `invalid_grant`", body = OAuthError),
    ),
)]
pub(super) async fn token(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let Ok(body) = read_body(&req, payload, 64 * 1024).await else {
        return oauth_error("invalid_request", "request body too large");
    };
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return oauth_error("invalid_request", "grant_type is required");
    };
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(grant) = get("grant_type") else { return oauth_error("invalid_request", "grant_type is required") };
    if grant != "refresh_token" {
        return oauth_error("unsupported_grant_type", "only refresh_token is supported");
    }
    let Some(refresh) = get("refresh_token") else {
        return oauth_error("invalid_request", "refresh_token is required");
    };
    if crate::keys::parse_key(&refresh).is_none() {
        // Only API keys are refresh tokens: an access token cannot renew itself.
        return oauth_error("invalid_grant", "invalid refresh token");
    }
    // The refresh token is an API key: checked under the same failed-authentication limits.
    match verify_token(&state, req.peer_addr().map(|a| a.ip()), Some(refresh)).await {
        Ok(p) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({
            "access_token": state.keys.mint_access_token(&p),
            "token_type": "Bearer",
            "expires_in": crate::keys::ACCESS_TOKEN_TTL.as_secs(),
        })),
        Err(AuthFailure::RateLimited(secs)) => HttpResponse::TooManyRequests()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::RETRY_AFTER, secs.to_string()))
            .json(json!({"error": "slow_down", "error_description": "too many failed attempts; retry later"})),
        Err(_) => oauth_error("invalid_grant", "invalid refresh token"),
    }
}

/// Discovery: environment
///
/// H2O Cloud discovery for `login(environment=…)`.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/environment",
    tag = TAG_H2O,
    operation_id = "discovery_environment",
    responses((status = 200, description = "The environment", body = DiscoveryEnvironmentResponse)),
)]
pub(super) async fn discovery_environment(state: State, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    HttpResponse::Ok().json(json!({"environment": {
        "h2oCloudEnvironment": base,
        "issuerUrl": base,
        "h2oCloudPlatformOauth2Scope": "openid offline_access",
        "h2oCloudVersion": env!("CARGO_PKG_VERSION"),
    }}))
}

/// Discovery: services
///
/// The `audit-trail` service, whose `uri` is this server.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/services",
    tag = TAG_H2O,
    operation_id = "discovery_services",
    responses((status = 200, description = "The services", body = DiscoveryServicesResponse)),
)]
pub(super) async fn discovery_services(state: State, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    HttpResponse::Ok().json(json!({"services": [{
        "name": "services/audit-trail",
        "displayName": "Audit Trail",
        "uri": base,
        "version": env!("CARGO_PKG_VERSION"),
    }]}))
}

/// Discovery: clients
///
/// The `platform` OAuth client id (configured) used by the H2O login.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/clients",
    tag = TAG_H2O,
    operation_id = "discovery_clients",
    responses((status = 200, description = "The clients", body = DiscoveryClientsResponse)),
)]
pub(super) async fn discovery_clients(state: State) -> HttpResponse {
    HttpResponse::Ok().json(json!({"clients": [{
        "name": "clients/platform",
        "displayName": "Platform",
        "oauth2ClientId": state.config.oauth_client_id,
    }]}))
}

/// Discovery: links
///
/// Always empty.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/links",
    tag = TAG_H2O,
    operation_id = "discovery_links",
    responses((status = 200, description = "No links", body = DiscoveryLinksResponse)),
)]
pub(super) async fn discovery_links() -> HttpResponse {
    HttpResponse::Ok().json(json!({"links": []}))
}

/// Discovery: components
///
/// Always empty.
#[utoipa::path(
    get,
    path = "/.ai.h2o.cloud.discovery/v1/components",
    tag = TAG_H2O,
    operation_id = "discovery_components",
    responses((status = 200, description = "No components", body = DiscoveryComponentsResponse)),
)]
pub(super) async fn discovery_components() -> HttpResponse {
    HttpResponse::Ok().json(json!({"components": []}))
}
