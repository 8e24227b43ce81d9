//! Audit configs over the Pangea dialect: `v1/schema` (the selected config's `AuditSchema`, for
//! log viewers) and the config management routes `v1beta/config`, `v1beta/config/create`,
//! `v1beta/config/update`, `v1beta/config/delete`, `v1beta/config/list` (admin keys). Each change
//! is logged as an event of the default config (`actions/audittrail/configs/…`).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::envelope::{
    Ctx, PResult, PangeaError, any_key, body_object, check_keys, config_of, finish, invalid, opt_bool, opt_int,
    opt_string, require,
};
use super::ingest::LOG_LIMIT;
use super::schema::{PangeaErrorResponse, PangeaResponse, PangeaValidationErrorResponse};
use crate::configs::schema::{AuditSchema, standard_schema};
use crate::configs::{AuditConfig, ConfigError, ConfigUpdate, NewConfig, Signing, valid_config_id};
use crate::event::system;
use crate::http::apidoc::TAG_PANGEA;
use crate::http::auth::refresh_configs;
use crate::http::state::State;
use crate::keys::Principal;
use crate::time::parse_pangea_time;

/// Most configs in one `v1beta/config/list` page.
const MAX_PAGE: usize = 1000;

/// `AuditSchemaField`: one field of an audit schema.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditSchemaField {
    /// `^[a-z][0-9a-z_]*$`, at most 32 characters, not `received_at`.
    id: String,
    /// `boolean`, `datetime`, `integer`, `string`, `string-unindexed` (stored, not searchable) or
    /// `text` (full text).
    #[schema(example = "string")]
    r#type: String,
    /// Events must contain it.
    required: Option<bool>,
    /// Longest value in code points (strings only; default 32,766).
    size: Option<u32>,
    name: Option<String>,
    description: Option<String>,
    redact: Option<bool>,
    partitioned: Option<bool>,
    ui_default_visible: Option<bool>,
}

/// `AuditSchema`: the fields of a config's events (unknown fields are refused).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditSchemaDoc {
    fields: Vec<AuditSchemaField>,
    client_signable: Option<bool>,
    /// Always on here.
    tamper_proofing: Option<bool>,
    /// Only `reject`.
    save_malformed: Option<String>,
    vendor_id: Option<String>,
    json_path: Option<String>,
}

/// `AuditServiceConfig` (version 2 shape).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditServiceConfigDoc {
    /// `pci_` + 32 characters `[a-z0-9]`.
    #[schema(example = "pci_x6fdiizbon6j3bsdvnpmwxsz2aan7fqd")]
    id: String,
    version: u32,
    name: String,
    schema: AuditSchemaDoc,
    /// `true`: the server signs every event with the config's event-signing key.
    vault_sign: bool,
    /// The key store's name of that key (when `vault_sign`).
    vault_key_id: Option<String>,
    created_at: String,
    updated_at: String,
}

/// `v1/schema` request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PangeaSchemaRequest {
    /// The config (else the key's only config, else the default config).
    config_id: Option<String>,
}

/// `v1beta/config` and `v1beta/config/delete` request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PangeaConfigIdRequest {
    id: String,
}

/// `v1beta/config/create` request: `name` and `schema` (default: the standard schema);
/// `vault_sign: true` for server-side signing. Other `AuditServiceConfig` settings (retention,
/// redaction, forwarding, …) are not supported and refused.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PangeaConfigCreateRequest {
    name: String,
    version: Option<u32>,
    schema: Option<AuditSchemaDoc>,
    vault_sign: Option<bool>,
}

/// `v1beta/config/update` request: `id`, `name` and the `updated_at` last read (a config changed
/// since is a `ValidationError`); a `schema` may add optional fields while the config holds
/// events. `vault_sign` cannot change.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PangeaConfigUpdateRequest {
    id: String,
    name: String,
    updated_at: String,
    version: Option<u32>,
    schema: Option<AuditSchemaDoc>,
    vault_sign: Option<bool>,
}

/// `v1beta/config/list` request (`AuditServiceConfigList`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PangeaConfigListRequest {
    /// `id`, `id__contains`, `id__in`, `created_at`, `created_at__gt|__gte|__lt|__lte`,
    /// `updated_at` and the same comparisons.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    /// The `last` of the previous page.
    last: Option<String>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
    /// `id`, `created_at` (default) or `updated_at`.
    order_by: Option<String>,
    /// Page size (1–1000, default 20).
    size: Option<u32>,
}

/// `v1beta/config/list` result.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PangeaConfigListResult {
    /// Configs matching the filter (all pages).
    count: u64,
    /// Give it back as `last` for the next page; absent on the last page.
    last: Option<String>,
    items: Vec<AuditServiceConfigDoc>,
}

/// Config management needs an admin key without a workspace limit (configs span every tenant).
fn can_admin(p: &Principal) -> bool {
    p.scopes.admin && p.workspaces.is_empty()
}

/// A config operation's error as a Pangea error.
fn config_error(e: ConfigError, conflict_source: &str) -> PangeaError {
    match e {
        ConfigError::NotFound => PangeaError::NotFound,
        ConfigError::Invalid(p) => {
            PangeaError::Validation(p.into_iter().map(|p| (p.code, p.detail, p.source)).collect())
        }
        ConfigError::Conflict(detail) => invalid("BadState", detail, conflict_source),
        ConfigError::Storage(e) => {
            tracing::error!(error = %e, "audit config change failed");
            PangeaError::Unavailable
        }
    }
}

/// Runs a config change on a connection of its own (off the async workers), then reloads the
/// server's configs.
pub(crate) async fn change_config<T: Send + 'static>(
    state: &State,
    op: impl FnOnce(&mut rusqlite::Connection, &dyn crate::configs::signing::SigningKeys) -> Result<T, ConfigError>
    + Send
    + 'static,
) -> Result<T, ConfigError> {
    let (dir, registry) = (state.data_dir.clone(), state.configs.clone());
    web::block(move || {
        let mut conn = crate::store::open_side_rw(&dir).map_err(|e| ConfigError::Storage(e.into()))?;
        let out = op(&mut conn, registry.keys().as_ref())?;
        if let Err(e) = registry.reload() {
            tracing::warn!(error = %e, "cannot reload the audit configs after a change");
        }
        Ok(out)
    })
    .await
    .map_err(|e| ConfigError::Storage(anyhow::anyhow!("{e}")))?
}

/// Logs a config change as an event of the default config, before the response goes out.
pub(crate) async fn record_config_change(
    state: &State,
    req: &HttpRequest,
    p: &Principal,
    action: &'static str,
    config: &AuditConfig,
) {
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let mut metadata = Map::from_iter([("name".to_string(), json!(config.name))]);
    if let Some((key, version)) = &config.signing_key {
        metadata.insert("signing_key".into(), json!(key));
        metadata.insert("signing_key_version".into(), json!(version.to_string()));
    }
    let Some(ev) =
        system::config_changed(action, &p.key_id, peer, &config.id, metadata, state.config.redact_private_ips)
    else {
        return;
    };
    if let Err(e) = state.writer.append(vec![ev]).await {
        tracing::warn!(error = %e, "config change event not recorded");
    }
}

/// The config schema
///
/// The `AuditSchema` of the selected config (`config_id`, else the key's only config, else the
/// default config): the fields log viewers display. Any key that may use the config.
#[utoipa::path(
    post,
    path = "/pangea/v1/schema",
    tag = TAG_PANGEA,
    operation_id = "pangea_schema",
    request_body(content = PangeaSchemaRequest),
    responses(
        (status = 200, description = "`Success`: the schema", body = PangeaResponse<AuditSchemaDoc>),
        (status = 400, description = "`ValidationError`, or `MissingConfigID` (the key has several configs)", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: the key may not use that config (or there is none)", body = PangeaErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn schema(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, any_key).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        check_keys(&body, &[], "")?;
        let config = config_of(&state, &principal, &body).await?;
        Ok(config.schema.to_value())
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

/// The config with `id` (admin keys).
async fn by_id(state: &State, principal: &Principal, id: &str) -> Result<Arc<AuditConfig>, PangeaError> {
    if !valid_config_id(id) {
        return Err(PangeaError::NotFound);
    }
    refresh_configs(state, principal.config_version).await?;
    state.configs.get(id).ok_or(PangeaError::NotFound)
}

fn required_id(body: &Map<String, Value>) -> Result<&str, PangeaError> {
    opt_string(body, "id", 64)?.ok_or_else(|| invalid("FieldRequired", "'id' is a required property", "/id"))
}

/// Get an audit config
///
/// The config with `id`, as an `AuditServiceConfig`. Admin keys.
#[utoipa::path(
    post,
    path = "/pangea/v1beta/config",
    tag = TAG_PANGEA,
    operation_id = "pangea_config_get",
    request_body(content = PangeaConfigIdRequest),
    responses(
        (status = 200, description = "`Success`: the config", body = PangeaResponse<AuditServiceConfigDoc>),
        (status = 400, description = "`ValidationError`", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: not an admin key", body = PangeaErrorResponse),
        (status = 404, description = "`NotFound`: no such config", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn config_get(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_admin).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        check_keys(&body, &["id"], "")?;
        Ok(by_id(&state, &principal, required_id(&body)?).await?.to_api())
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

/// Settings of `AuditServiceConfig` this server does not implement: refused rather than ignored.
const UNSUPPORTED: [&str; 15] = [
    "retention",
    "cold_query_result_retention",
    "hot_storage",
    "warm_storage",
    "cold_storage",
    "query_result_retention",
    "redact_service_config_id",
    "redaction_fields",
    "shards",
    "vault_service_config_id",
    "vault_key_id",
    "ui_metadata",
    "forwarding_configuration",
    "partition_overrides",
    "datastore",
];

/// Checks the keys of a create/update body: what is supported, `version`, and refuses the rest.
fn check_config_body(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), PangeaError> {
    let mut errors = Vec::new();
    for k in body.keys() {
        if allowed.contains(&k.as_str()) || k == "config_id" {
            continue;
        }
        let detail = if UNSUPPORTED.contains(&k.as_str()) {
            format!("'{k}' is not supported by this server")
        } else {
            format!("'{}' is not an allowed property", k.chars().take(64).collect::<String>())
        };
        errors.push(("UnexpectedProperty", detail, format!("/{}", k.chars().take(64).collect::<String>())));
    }
    if !errors.is_empty() {
        return Err(PangeaError::Validation(errors));
    }
    opt_int(body, "version", 1, 3)?;
    Ok(())
}

fn parse_schema(body: &Map<String, Value>) -> Result<Option<AuditSchema>, PangeaError> {
    match body.get("schema") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => AuditSchema::parse(v, "/schema")
            .map(Some)
            .map_err(|p| PangeaError::Validation(p.into_iter().map(|p| (p.code, p.detail, p.source)).collect())),
    }
}

/// Create an audit config
///
/// A new config (`pci_…` id) with a name, an `AuditSchema` (default: the standard schema) and
/// `vault_sign` (server-side event signing with a key of its own). Admin keys. Logged as an event
/// (`actions/audittrail/configs/CREATE`).
#[utoipa::path(
    post,
    path = "/pangea/v1beta/config/create",
    tag = TAG_PANGEA,
    operation_id = "pangea_config_create",
    request_body(content = PangeaConfigCreateRequest),
    responses(
        (status = 200, description = "`Success`: the new config", body = PangeaResponse<AuditServiceConfigDoc>),
        (status = 400, description = "`ValidationError`: the schema or a setting, with a JSON pointer", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: not an admin key", body = PangeaErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: not stored", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn config_create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_admin).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        if body.contains_key("id") {
            return Err(invalid("UnexpectedProperty", "creating a config does not accept an id", "/id"));
        }
        check_config_body(&body, &["name", "version", "schema", "vault_sign", "created_at", "updated_at"])?;
        let name = opt_string(&body, "name", 200)?
            .ok_or_else(|| invalid("FieldRequired", "'name' is a required property", "/name"))?
            .to_string();
        let schema = parse_schema(&body)?.unwrap_or_else(standard_schema);
        let signing = if opt_bool(&body, "vault_sign")?.unwrap_or(false) { Signing::Server } else { Signing::None };
        let new = NewConfig { name, schema, signing };
        let created = change_config(&state, move |c, keys| crate::configs::create(c, new, Some(keys)))
            .await
            .map_err(|e| config_error(e, "/name"))?;
        record_config_change(&state, &req, &principal, system::CONFIG_CREATE_ACTION, &created).await;
        Ok(created.to_api())
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

/// Update an audit config
///
/// Renames a config and/or changes its schema (while it holds events: only new optional fields).
/// `updated_at` must be the config's current one (else `ValidationError`: fetch it again).
/// `vault_sign` cannot change. Admin keys. Logged as an event (`actions/audittrail/configs/UPDATE`).
#[utoipa::path(
    post,
    path = "/pangea/v1beta/config/update",
    tag = TAG_PANGEA,
    operation_id = "pangea_config_update",
    request_body(content = PangeaConfigUpdateRequest),
    responses(
        (status = 200, description = "`Success`: the config as updated", body = PangeaResponse<AuditServiceConfigDoc>),
        (status = 400, description = "`ValidationError`: a stale `updated_at`, an incompatible schema change, …", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: not an admin key", body = PangeaErrorResponse),
        (status = 404, description = "`NotFound`: no such config", body = PangeaErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: not stored", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn config_update(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_admin).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        check_config_body(&body, &["id", "name", "version", "schema", "vault_sign", "created_at", "updated_at"])?;
        let current = by_id(&state, &principal, required_id(&body)?).await?;
        let name = opt_string(&body, "name", 200)?
            .ok_or_else(|| invalid("FieldRequired", "'name' is a required property", "/name"))?
            .to_string();
        let seen = opt_string(&body, "updated_at", 64)?
            .ok_or_else(|| invalid("FieldRequired", "'updated_at' is a required property", "/updated_at"))?;
        let seen = parse_pangea_time(seen)
            .ok_or_else(|| invalid("BadFormatDateTime", "'updated_at' must be an RFC 3339 date-time", "/updated_at"))?;
        if opt_bool(&body, "vault_sign")?.is_some_and(|v| v != (current.signing == Signing::Server)) {
            return Err(invalid("BadState", "'vault_sign' is fixed when a config is created", "/vault_sign"));
        }
        let change = ConfigUpdate { name: Some(name), schema: parse_schema(&body)?, expect_updated_at: Some(seen) };
        let id = current.id.clone();
        let updated = change_config(&state, move |c, _| crate::configs::update(c, &id, change))
            .await
            .map_err(|e| config_error(e, "/updated_at"))?;
        record_config_change(&state, &req, &principal, system::CONFIG_UPDATE_ACTION, &updated).await;
        Ok(updated.to_api())
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

/// Delete an audit config
///
/// Deletes a config that holds no events (an audit log never drops events) and that no active key
/// is bound to; the default config stays. Answers the deleted config. Admin keys. Logged as an
/// event (`actions/audittrail/configs/DELETE`).
#[utoipa::path(
    post,
    path = "/pangea/v1beta/config/delete",
    tag = TAG_PANGEA,
    operation_id = "pangea_config_delete",
    request_body(content = PangeaConfigIdRequest),
    responses(
        (status = 200, description = "`Success`: the deleted config", body = PangeaResponse<AuditServiceConfigDoc>),
        (status = 400, description = "`ValidationError` (`BadState`): the config holds events, keys are bound to it, or it is the default config", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: not an admin key", body = PangeaErrorResponse),
        (status = 404, description = "`NotFound`: no such config", body = PangeaErrorResponse),
        (status = 503, description = "`ServiceNotAvailable`: not deleted", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn config_delete(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = async {
        let principal = require(&state, &req, can_admin).await?;
        let body = body_object(&req, payload, LOG_LIMIT).await?;
        check_keys(&body, &["id"], "")?;
        let id = by_id(&state, &principal, required_id(&body)?).await?.id.clone();
        let deleted = change_config(&state, move |c, _| crate::configs::delete(c, &id))
            .await
            .map_err(|e| config_error(e, "/id"))?;
        record_config_change(&state, &req, &principal, system::CONFIG_DELETE_ACTION, &deleted).await;
        Ok(deleted.to_api())
    }
    .await;
    finish(ctx, |_| "Success".into(), r)
}

/// Whether a config passes a `v1beta/config/list` filter.
fn matches_filter(c: &AuditConfig, filter: &Map<String, Value>) -> Result<bool, PangeaError> {
    for (k, v) in filter {
        let src = format!("/filter/{}", k.chars().take(64).collect::<String>());
        let strings = || -> Result<Vec<&str>, PangeaError> {
            v.as_array()
                .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
                .ok_or_else(|| invalid("InvalidArray", format!("'{k}' must be an array of strings"), src.clone()))
        };
        let time = || -> Result<i64, PangeaError> {
            v.as_str().and_then(parse_pangea_time).ok_or_else(|| {
                invalid("BadFormatDateTime", format!("'{k}' must be an RFC 3339 date-time"), src.clone())
            })
        };
        let (field, op) = k.split_once("__").unwrap_or((k.as_str(), ""));
        let ok = match (field, op) {
            ("id", "") => {
                v.as_str().ok_or_else(|| invalid("InvalidString", "'id' must be a string", src.clone()))? == c.id
            }
            ("id", "contains") => strings()?.iter().all(|s| c.id.contains(s)),
            ("id", "in") => strings()?.contains(&c.id.as_str()),
            ("created_at" | "updated_at", op) => {
                let at = if field == "created_at" { c.created_at } else { c.updated_at };
                let t = time()?;
                match op {
                    "" => at == t,
                    "gt" => at > t,
                    "gte" => at >= t,
                    "lt" => at < t,
                    "lte" => at <= t,
                    _ => return Err(invalid("UnexpectedProperty", format!("'{k}' is not an allowed property"), src)),
                }
            }
            _ => return Err(invalid("UnexpectedProperty", format!("'{k}' is not an allowed property"), src)),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// List audit configs
///
/// Every config (filtered, sorted and paged as `AuditServiceConfigList` says). Admin keys.
#[utoipa::path(
    post,
    path = "/pangea/v1beta/config/list",
    tag = TAG_PANGEA,
    operation_id = "pangea_config_list",
    request_body(content = PangeaConfigListRequest),
    responses(
        (status = 200, description = "`Success`: a page of configs", body = PangeaResponse<PangeaConfigListResult>),
        (status = 400, description = "`ValidationError`", body = PangeaValidationErrorResponse),
        (status = 401, description = "`Unauthorized`: missing or invalid token", body = PangeaErrorResponse),
        (status = 403, description = "`Unauthorized`: not an admin key", body = PangeaErrorResponse),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn config_list(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let ctx = Ctx::new();
    let r = list_inner(&state, &req, payload).await;
    finish(ctx, |v| format!("Found {} config(s)", v["count"].as_u64().unwrap_or(0)), r)
}

async fn list_inner(state: &State, req: &HttpRequest, payload: web::Payload) -> PResult {
    let principal = require(state, req, can_admin).await?;
    let body = body_object(req, payload, LOG_LIMIT).await?;
    check_keys(&body, &["filter", "last", "order", "order_by", "size"], "")?;
    refresh_configs(state, principal.config_version).await?;
    let filter = match body.get("filter") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(f)) => f.clone(),
        Some(_) => return Err(invalid("InvalidObject", "'filter' must be an object", "/filter")),
    };
    let descending = match opt_string(&body, "order", 8)? {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(invalid("NotEnumMember", "'order' must be one of asc, desc", "/order")),
    };
    let order_by = opt_string(&body, "order_by", 16)?.unwrap_or("created_at");
    let size = opt_int(&body, "size", 1, MAX_PAGE as i64)?.unwrap_or(20) as usize;
    let mut all = Vec::new();
    for c in state.configs.all() {
        if matches_filter(&c, &filter)? {
            all.push(c);
        }
    }
    match order_by {
        "id" => all.sort_by(|a, b| a.id.cmp(&b.id)),
        "created_at" => all.sort_by_key(|c| (c.created_at, c.num)),
        "updated_at" => all.sort_by_key(|c| (c.updated_at, c.num)),
        _ => return Err(invalid("NotEnumMember", "'order_by' must be one of id, created_at, updated_at", "/order_by")),
    }
    if descending {
        all.reverse();
    }
    let start =
        match opt_string(&body, "last", 64)? {
            Some(last) => all.iter().position(|c| c.id == last).map(|i| i + 1).ok_or_else(|| {
                invalid("BadFormat", "'last' is not the last config of a page of this listing", "/last")
            })?,
            None => 0,
        };
    let page: Vec<&Arc<AuditConfig>> = all.iter().skip(start).take(size).collect();
    let mut out = json!({"count": all.len(), "items": page.iter().map(|c| c.to_api()).collect::<Vec<_>>()});
    if start + page.len() < all.len()
        && let Some(last) = page.last()
    {
        out["last"] = json!(last.id);
    }
    Ok(out)
}
