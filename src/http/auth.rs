//! Authentication of a request's bearer token, memoised per request and throttled on failure
//! (`authlimit`).

use std::net::IpAddr;

use actix_web::{HttpMessage, HttpRequest, web};

use std::sync::Arc;

use super::authlimit;
use super::state::State;
use crate::configs::{AuditConfig, SelectError};
use crate::keys::{AuthError, Principal};

/// Why authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Unauthenticated,
    Unavailable,
    /// Too many failed authentications from this address or for this key id: 429 with
    /// `Retry-After` of this many seconds.
    RateLimited(u64),
}

/// The outcome of authenticating one request, kept in its extensions so that handlers calling
/// `authenticate` more than once do the work (and charge a failure) once.
#[derive(Clone)]
struct AuthOutcome(Result<Principal, AuthFailure>);

/// Reads `Authorization: Bearer <token>` and authenticates it off the async workers. A request
/// that presents credentials which fail is charged to the failed-authentication limits of its
/// peer address and key id (`authlimit`); a request without an `Authorization` header is not.
pub async fn authenticate(state: &State, req: &HttpRequest) -> Result<Principal, AuthFailure> {
    if let Some(done) = req.extensions().get::<AuthOutcome>() {
        return done.0.clone();
    }
    let outcome = authenticate_uncached(state, req).await;
    req.extensions_mut().insert(AuthOutcome(outcome.clone()));
    outcome
}

async fn authenticate_uncached(state: &State, req: &HttpRequest) -> Result<Principal, AuthFailure> {
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION).ok_or(AuthFailure::Unauthenticated)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() && token.len() <= 512
        })
        .map(|(_, token)| token.trim().to_string());
    verify_token(state, req.peer_addr().map(|a| a.ip()), token).await
}

/// Verifies a presented token (`None`: credentials present but malformed) under the
/// failed-authentication limits of `peer` and of the key id the token names.
pub async fn verify_token(
    state: &State,
    peer: Option<IpAddr>,
    token: Option<String>,
) -> Result<Principal, AuthFailure> {
    let mut subjects = Vec::with_capacity(2);
    if let Some(ip) = peer {
        subjects.push(authlimit::Subject::addr(ip));
    }
    if let Some((id, _)) = token.as_deref().and_then(crate::keys::parse_key) {
        subjects.push(authlimit::Subject::KeyId(id.to_string()));
    }
    let limited = |wait| {
        metrics::counter!("trailkeep_auth_rate_limited_total").increment(1);
        AuthFailure::RateLimited(authlimit::retry_after_secs(wait))
    };
    let trusted = token.as_deref().is_some_and(|t| state.keys.recently_verified(t));
    if !trusted && let Some(wait) = state.auth_limit.blocked(&subjects) {
        return Err(limited(wait));
    }
    let result = match token {
        Some(token) => {
            let keys = state.keys.clone();
            web::block(move || keys.authenticate(&token)).await
        }
        None => Ok(Err(AuthError::Invalid)),
    };
    match result {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(AuthError::Invalid)) => match state.auth_limit.failed(&subjects) {
            Some(wait) => Err(limited(wait)),
            None => Err(AuthFailure::Unauthenticated),
        },
        Ok(Err(AuthError::Storage)) | Err(_) => Err(AuthFailure::Unavailable),
    }
}

/// Why a request cannot use the config it asked for (or the one its key implies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAccess {
    Denied(SelectError),
    /// The configs could not be reloaded.
    Unavailable,
}

/// The audit config a request works on: the one it names (`config_id`), else the key's only
/// bound config, else the default config (`configs::Registry::select`). The server's configs are
/// reloaded first (off the async workers) when the key's row showed a newer `config_state`
/// version: a config created or changed by another process (the CLI) is seen at once.
pub async fn config_for(
    state: &State,
    principal: &Principal,
    requested: Option<&str>,
) -> Result<Arc<AuditConfig>, ConfigAccess> {
    refresh_configs(state, principal.config_version).await?;
    state.configs.select(principal, requested).map_err(ConfigAccess::Denied)
}

/// Reloads the configs if `seen` is newer than the loaded version.
pub async fn refresh_configs(state: &State, seen: i64) -> Result<(), ConfigAccess> {
    if seen <= state.configs.version() {
        return Ok(());
    }
    let configs = state.configs.clone();
    match web::block(move || configs.refresh(seen)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot reload the audit configs");
            Err(ConfigAccess::Unavailable)
        }
        Err(_) => Err(ConfigAccess::Unavailable),
    }
}
