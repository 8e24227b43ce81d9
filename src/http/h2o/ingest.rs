//! `POST /v1/events` and `POST /v1/events:batchCreate`: validation of H2O events and their mapping
//! to the canonical event.

use actix_web::{HttpRequest, web};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::{H2oError, H2oResult, require_json};
use super::render::{H2oJson, h2o_json, json_response};
use super::schema::{H2oBatchCreateRequest, H2oBatchCreateResponse, H2oCreateEventResponse, H2oEventInput, H2oStatus};
use crate::event::canonical::{JsonErrorKind, parse_strict};
use crate::event::{EventType, NewEvent, Origin, is_private_ip, workspace_from_resource};
use crate::http::apidoc::TAG_H2O;
use crate::http::state::State;
use crate::store::writer::Outcome;
use crate::time::{format_protojson, parse_rfc3339};

pub(super) const SINGLE_LIMIT: usize = 1 << 20;
const BATCH_LIMIT: usize = 16 << 20;
const MAX_BATCH: usize = 1000;
const MAX_STRING: usize = 8192;
const MAX_MAP: usize = 256;
const MAX_DEPTH: usize = 64;

pub(super) fn parse_body(bytes: &[u8]) -> Result<Value, H2oError> {
    parse_strict(bytes, MAX_DEPTH).map_err(|e| match e.kind {
        JsonErrorKind::DuplicateKey => H2oError::invalid(format!("invalid request body: {}", e.detail)),
        _ => H2oError::invalid(format!("invalid request body: {}", truncate(&e.detail, 200))),
    })
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Canonical UUIDv4: 8-4-4-4-12 hex, version 4, RFC 4122 variant.
pub fn parse_uuid4(s: &str) -> Option<Uuid> {
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let u = Uuid::try_parse(s).ok()?;
    (u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122).then_some(u)
}

pub(super) fn bad_type(field: &str, what: &str) -> H2oError {
    H2oError::invalid(format!("invalid request body: {field} must be {what}"))
}

pub(super) fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> Result<Option<&'a str>, H2oError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() > MAX_STRING {
                return Err(H2oError::invalid(format!("{field} exceeds the maximum size of {MAX_STRING}")));
            }
            Ok(Some(s))
        }
        Some(_) => Err(bad_type(field, "a string")),
    }
}

pub(super) fn string_map(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    check_keys: bool,
) -> Result<Map<String, Value>, H2oError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            if m.len() > MAX_MAP {
                return Err(H2oError::invalid(format!("{field} exceeds the maximum size of {MAX_MAP}")));
            }
            for (k, v) in m {
                if !v.is_string() {
                    return Err(bad_type(&format!("{field} values"), "strings"));
                }
                if v.as_str().is_some_and(|s| s.len() > MAX_STRING) {
                    return Err(H2oError::invalid(format!("{field} exceeds the maximum size of {MAX_STRING}")));
                }
                if k.len() > 256 {
                    return Err(H2oError::invalid(format!("{field} exceeds the maximum size of 256")));
                }
                if check_keys && !valid_metadata_key(k) {
                    return Err(H2oError::invalid(format!(
                        "{field} key \"{}\" must match ^[a-z]([a-z0-9_]{{0,61}}[a-z0-9])?$",
                        truncate(k, 64)
                    )));
                }
            }
            Ok(m.clone())
        }
        Some(_) => Err(bad_type(field, "an object of strings")),
    }
}

fn valid_metadata_key(k: &str) -> bool {
    let b = k.as_bytes();
    if b.is_empty() || b.len() > 63 || !b[0].is_ascii_lowercase() {
        return false;
    }
    if !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_') {
        return false;
    }
    b.len() == 1 || b[b.len() - 1] != b'_'
}

/// Validates an H2O Event object and maps it to the canonical event.
fn parse_event(value: &Value, uid: Uuid, redact: bool) -> Result<NewEvent, H2oError> {
    let Value::Object(obj) = value else { return Err(bad_type("event", "an object")) };
    let event_time = match obj.get("eventTime") {
        None | Some(Value::Null) => return Err(H2oError::invalid("event.event_time is required")),
        Some(Value::String(s)) => parse_rfc3339(s)
            .ok_or_else(|| H2oError::invalid("event.event_time must be an RFC 3339 timestamp with a UTC offset"))?,
        Some(_) => return Err(H2oError::invalid("event.event_time must be an RFC 3339 timestamp with a UTC offset")),
    };
    let required = |key: &str, field: &str| -> Result<String, H2oError> {
        match opt_str(obj, key, &format!("event.{field}"))? {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(H2oError::invalid(format!("event.{field} is required"))),
        }
    };
    let event_source = required("eventSource", "event_source")?;
    let action = required("action", "action")?;
    let principal = required("principal", "principal")?;
    let mut source_ip = required("sourceIpAddress", "source_ip_address")?;
    let read_only = match obj.get("readOnly") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_type("event.read_only", "a boolean")),
    };
    let resource = opt_str(obj, "resource", "event.resource")?.unwrap_or_default().to_string();
    let user_agent = opt_str(obj, "userAgent", "event.user_agent")?.unwrap_or_default().to_string();
    let metadata = string_map(obj, "metadata", "event.metadata", true)?;
    let request_parameters = string_map(obj, "requestParameters", "event.request_parameters", false)?;
    let event_type = match obj.get("type") {
        None | Some(Value::Null) => EventType::Unspecified,
        Some(Value::String(s)) => EventType::from_name(s).ok_or_else(type_error)?,
        Some(_) => return Err(type_error()),
    };
    let status = match obj.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::Object(s)) => {
            let code = match s.get("code") {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) => n
                    .as_i64()
                    .filter(|c| i32::try_from(*c).is_ok())
                    .ok_or_else(|| bad_type("event.status.code", "an int32"))?,
                Some(_) => return Err(bad_type("event.status.code", "an int32")),
            };
            let message = opt_str(s, "message", "event.status.message")?.unwrap_or_default().to_string();
            Some((code, message))
        }
        Some(_) => return Err(bad_type("event.status", "an object")),
    };
    let workspace = match obj.get("workspaceOverride") {
        None | Some(Value::Null) => workspace_from_resource(&resource),
        Some(Value::String(w)) => {
            let ok =
                w.is_empty() || w.strip_prefix("workspaces/").is_some_and(|id| !id.is_empty() && !id.contains('/'));
            if !ok {
                return Err(H2oError::invalid("event.workspace_override must have the form workspaces/{workspace}"));
            }
            w.clone()
        }
        Some(_) => return Err(bad_type("event.workspace_override", "a string")),
    };
    if redact && is_private_ip(&source_ip) {
        source_ip = "private".into();
    }
    let timestamp = format_protojson(event_time.0, event_time.1);
    let message = metadata.get("message").and_then(Value::as_str).unwrap_or(&action).to_string();
    let mut ev = Map::new();
    ev.insert("action".into(), json!(action));
    ev.insert("actor".into(), json!(principal));
    ev.insert("event_id".into(), json!(uid.to_string()));
    ev.insert("event_source".into(), json!(event_source));
    ev.insert("message".into(), json!(message));
    ev.insert("metadata".into(), Value::Object(metadata));
    ev.insert("read_only".into(), json!(read_only));
    ev.insert("request_parameters".into(), Value::Object(request_parameters));
    ev.insert("source".into(), json!(source_ip));
    if let Some((code, msg)) = &status {
        ev.insert("status".into(), json!(code.to_string()));
        ev.insert("status_message".into(), json!(msg));
    }
    ev.insert("target".into(), json!(resource));
    if !workspace.is_empty() {
        ev.insert("tenant_id".into(), json!(workspace));
    }
    ev.insert("timestamp".into(), json!(timestamp));
    ev.insert("type".into(), json!(event_type.name()));
    ev.insert("user_agent".into(), json!(user_agent));
    let fts_body = crate::event::fts_body(Origin::H2o, &ev);
    Ok(NewEvent {
        uid,
        origin: Origin::H2o,
        workspace,
        actor: principal,
        action,
        event_source,
        target: Some(resource),
        source: Some(source_ip),
        status: status.as_ref().map(|(c, _)| c.to_string()),
        status_code: status.as_ref().map(|(c, _)| *c),
        read_only,
        event_type,
        event_time: Some(event_time.0),
        fts_body,
        event: ev,
        signature: None,
        public_key: None,
    })
}

fn type_error() -> H2oError {
    H2oError::invalid("event.type must be one of TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM")
}

#[derive(serde::Deserialize)]
struct CreateQuery {
    #[serde(rename = "eventId")]
    event_id: Option<String>,
}

/// Create an event
///
/// Validates and stores one event under the id given as `eventId`; the workspace is taken from
/// `workspaceOverride` or from the first `workspaces/<id>` pair in `resource`. A retry with the same
/// id and content returns the stored event; the same id with other content is a conflict.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = TAG_H2O,
    operation_id = "h2o_create_event",
    params(("eventId" = String, Query, format = "uuid", description = "The new event's id: a canonical UUIDv4",
        example = "b096430b-c7a8-47f2-a129-d9ae58cf454f")),
    request_body(content = H2oEventInput, description = "The bare event"),
    responses(
        (status = 200, description = "The stored event", body = H2oCreateEventResponse),
        (status = 400, description = "Invalid id, body or field (code 3)", body = H2oStatus),
        (status = 401, description = "Missing or invalid key (code 16)", body = H2oStatus),
        (status = 403, description = "The key may not ingest, or not into this workspace (code 7)", body = H2oStatus),
        (status = 409, description = "The id exists with different content (code 6)", body = H2oStatus),
        (status = 413, description = "Body over 1 MiB (code 3)", body = H2oStatus),
        (status = 415, description = "Body not sent as `application/json` (code 3)", body = H2oStatus),
        (status = 503, description = "Storage busy or unavailable, or the trail read-only because its root-signing key is not installed (code 14; the message says how to install it)", body = H2oStatus),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn create_event(state: State, req: HttpRequest, payload: web::Payload) -> H2oResult {
    let (principal, body) = require_json(&state, &req, payload, true, SINGLE_LIMIT).await?;
    let q = web::Query::<CreateQuery>::from_query(req.query_string()).ok();
    let uid = q
        .and_then(|q| q.event_id.clone())
        .as_deref()
        .and_then(parse_uuid4)
        .ok_or_else(|| H2oError::invalid("event_id must be in UUIDv4 format"))?;
    let value = parse_body(&body)?;
    let ev = parse_event(&value, uid, state.config.redact_private_ips)?;
    if !principal.may_see(&ev.workspace) {
        return Err(H2oError::denied());
    }
    // Rendered now: the writer takes the event object. A stored original (a retry) has the same.
    let json = h2o_json(&ev.event, Origin::H2o, uid, 0, &ev.workspace);
    let appended = state.writer.append(vec![ev]).await?;
    match appended.outcomes.into_iter().next() {
        Some(Outcome::Stored(s)) | Some(Outcome::Existing(s)) => {
            let mut body = b"{\"event\":".to_vec();
            json.finish(s.received_at, &mut body);
            body.push(b'}');
            Ok(json_response(body))
        }
        Some(Outcome::Conflict) => Err(H2oError::conflict(&uid)),
        None => Err(H2oError::internal()),
    }
}

/// Create events in a batch
///
/// Up to 1000 events. Valid items are committed together in one transaction; invalid ones are
/// reported in `failedRequests` under their index, with the error an individual create would give,
/// and the status stays 200.
#[utoipa::path(
    post,
    path = "/v1/events:batchCreate",
    tag = TAG_H2O,
    operation_id = "h2o_batch_create_events",
    request_body(content = H2oBatchCreateRequest),
    responses(
        (status = 200, description = "Created events and per-item failures", body = H2oBatchCreateResponse),
        (status = 400, description = "Invalid body or more than 1000 requests (code 3)", body = H2oStatus),
        (status = 401, description = "Missing or invalid key (code 16)", body = H2oStatus),
        (status = 403, description = "The key may not ingest (code 7)", body = H2oStatus),
        (status = 413, description = "Body over 16 MiB (code 3)", body = H2oStatus),
        (status = 415, description = "Body not sent as `application/json` (code 3)", body = H2oStatus),
        (status = 503, description = "Storage busy or unavailable, or the trail read-only because its root-signing key is not installed (code 14; the message says how to install it)", body = H2oStatus),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn batch_create_events(state: State, req: HttpRequest, payload: web::Payload) -> H2oResult {
    let (principal, body) = require_json(&state, &req, payload, true, BATCH_LIMIT).await?;
    let mut value = parse_body(&body)?;
    let requests = match value.get_mut("requests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => std::mem::take(a),
        Some(_) => return Err(bad_type("requests", "an array")),
    };
    if !value.is_object() {
        return Err(bad_type("body", "an object"));
    }
    if requests.len() > MAX_BATCH {
        return Err(H2oError::invalid("requests: at most 1000 events can be created in a batch"));
    }
    let mut failed = Map::new();
    let mut valid: Vec<(usize, NewEvent)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, item) in requests.iter().enumerate() {
        match parse_batch_item(item, state.config.redact_private_ips) {
            Ok(ev) if !principal.may_see(&ev.workspace) => {
                failed.insert(i.to_string(), H2oError::denied().status_json());
            }
            Ok(ev) if !seen.insert(ev.uid) => {
                failed.insert(i.to_string(), H2oError::conflict(&ev.uid).status_json());
            }
            Ok(ev) => valid.push((i, ev)),
            Err(e) => {
                failed.insert(i.to_string(), e.status_json());
            }
        }
    }
    let mut body = Vec::with_capacity(1024 * (valid.len() + 1));
    body.extend_from_slice(b"{\"events\":[");
    if !valid.is_empty() {
        let (idx, evs): (Vec<usize>, Vec<NewEvent>) = valid.into_iter().unzip();
        let uids: Vec<Uuid> = evs.iter().map(|e| e.uid).collect();
        // Rendered now: the writer takes the event objects. A stored original (a retry) has the
        // same content, so the same rendering with its own receive time.
        let rendered: Vec<H2oJson> =
            evs.iter().map(|e| h2o_json(&e.event, Origin::H2o, e.uid, 0, &e.workspace)).collect();
        let appended = state.writer.append(evs).await?;
        let mut first = true;
        for (k, (outcome, json)) in appended.outcomes.into_iter().zip(rendered).enumerate() {
            match outcome {
                Outcome::Stored(s) | Outcome::Existing(s) => {
                    if !first {
                        body.push(b',');
                    }
                    first = false;
                    json.finish(s.received_at, &mut body);
                }
                Outcome::Conflict => {
                    failed.insert(idx[k].to_string(), H2oError::conflict(&uids[k]).status_json());
                }
            }
        }
    }
    body.extend_from_slice(b"],\"failedRequests\":");
    let _ = serde_json::to_writer(&mut body, &failed);
    body.push(b'}');
    Ok(json_response(body))
}

fn parse_batch_item(item: &Value, redact: bool) -> Result<NewEvent, H2oError> {
    let Value::Object(obj) = item else { return Err(bad_type("requests[]", "an object")) };
    let uid = obj
        .get("eventId")
        .and_then(Value::as_str)
        .and_then(parse_uuid4)
        .ok_or_else(|| H2oError::invalid("event_id must be in UUIDv4 format"))?;
    match obj.get("event") {
        None | Some(Value::Null) => Err(H2oError::invalid("event is required")),
        Some(ev) => parse_event(ev, uid, redact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::system;

    /// The server's own events (`event::system`) are the events the H2O parser makes of the same
    /// H2O bodies, with origin `Server`: they render in this dialect like any other event.
    #[test]
    fn server_events_are_what_the_h2o_parser_makes_of_them() {
        let as_parsed = |built: &NewEvent, mut body: Value, redact: bool| -> String {
            body["eventTime"] = built.event["timestamp"].clone();
            body["status"] = json!({"code": 0, "message": ""});
            let mut parsed = parse_event(&body, built.uid, redact).expect("the H2O parser accepts it");
            parsed.origin = Origin::Server;
            format!("{parsed:?}")
        };
        let ua = "agent/1 ".repeat(200);
        let built = system::search_audit("k1", Some("10.1.2.3".into()), &ua, "{\"x\":1}".into(), true).unwrap();
        let body = json!({"eventSource": "h2oai-audittrail-server", "action": "actions/audittrail/events/SEARCH",
            "readOnly": true, "principal": "keys/k1", "sourceIpAddress": "10.1.2.3", "resource": "//audittrail",
            "requestParameters": {"filter": "{\"x\":1}"}, "userAgent": truncate(&ua, 1024), "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, true));
        let built = system::search_audit("k1", None, "", "{}".into(), false).unwrap();
        let body = json!({"eventSource": "h2oai-audittrail-server", "action": "actions/audittrail/events/SEARCH",
            "readOnly": true, "principal": "keys/k1", "sourceIpAddress": "unknown", "resource": "//audittrail",
            "requestParameters": {"filter": "{}"}, "userAgent": "", "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, false));

        let built = system::key_created("adm", Some("192.0.2.1".into()), "k2", "ci bot", true).unwrap();
        let body = json!({"eventSource": "trailkeep", "action": "actions/audittrail/keys/CREATE", "readOnly": false,
            "principal": "keys/adm", "sourceIpAddress": "192.0.2.1", "resource": "//audittrail/keys/k2",
            "metadata": {"key_id": "k2", "name": "ci bot"}, "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, true));
        let built = system::key_revoked("adm", None, "k2", false).unwrap();
        let body = json!({"eventSource": "trailkeep", "action": "actions/audittrail/keys/REVOKE", "readOnly": false,
            "principal": "keys/adm", "sourceIpAddress": "unknown", "resource": "//audittrail/keys/k2",
            "metadata": {"key_id": "k2"}, "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, false));
        let built = system::verify_started("adm", Some("10.0.0.9".into()), 42, true).unwrap();
        let body = json!({"eventSource": "trailkeep", "action": "actions/audittrail/log/VERIFY", "readOnly": true,
            "principal": "keys/adm", "sourceIpAddress": "10.0.0.9", "resource": "//audittrail/log",
            "metadata": {"tree_size": "42"}, "type": "TYPE_API"});
        assert_eq!(format!("{built:?}"), as_parsed(&built, body, true));

        for workspace in ["", "workspaces/w1"] {
            let info = system::PurgeInfo {
                workspace: workspace.into(),
                count: 3,
                first_seq: 10,
                last_seq: 12,
                cutoff: 1_764_633_600_000_000,
                period: 90 * 86_400_000_000,
            };
            let built = system::purge(&info);
            let body = json!({"eventSource": "trailkeep", "action": "actions/audittrail/events/PURGE", "readOnly": false,
                "principal": "trailkeep/retention", "sourceIpAddress": "unknown", "resource": "//audittrail",
                "metadata": {"message": "retention: removed the content of 3 events received before 2025-12-02T00:00:00.000000Z",
                    "purged": "3", "first_seq": "10", "last_seq": "12", "cutoff": "2025-12-02T00:00:00.000000Z",
                    "retention": "90d"},
                "type": "TYPE_SYSTEM", "workspaceOverride": workspace});
            assert_eq!(format!("{built:?}"), as_parsed(&built, body, false));
        }

        // A value the H2O parser refuses (over 8 KiB) is not recorded either.
        let long = "x".repeat(system::MAX_VALUE + 1);
        assert!(system::search_audit("k1", None, "", long.clone(), false).is_none());
        let body = json!({"eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "unknown",
            "eventTime": "2025-01-01T00:00:00Z", "requestParameters": {"filter": long}});
        assert!(parse_event(&body, Uuid::new_v4(), false).is_err());
        assert!(system::search_audit("k1", None, "", "x".repeat(system::MAX_VALUE), false).is_some());
    }

    #[test]
    fn uuid4_strictness() {
        assert!(parse_uuid4("b096430b-c7a8-47f2-a129-d9ae58cf454f").is_some());
        assert!(parse_uuid4("B096430B-C7A8-47F2-A129-D9AE58CF454F").is_some());
        assert!(parse_uuid4("b096430bc7a847f2a129d9ae58cf454f").is_none());
        assert!(parse_uuid4("b096430b-c7a8-17f2-a129-d9ae58cf454f").is_none());
        assert!(parse_uuid4("b096430b-c7a8-47f2-c129-d9ae58cf454f").is_none());
        assert!(parse_uuid4("{b096430b-c7a8-47f2-a129-d9ae58cf454f}").is_none());
    }

    #[test]
    fn metadata_keys() {
        for k in ["a", "k_1", "abc", "a1"] {
            assert!(valid_metadata_key(k), "{k}");
        }
        for k in ["", "A", "1a", "a_", "a-b", &"a".repeat(64)] {
            assert!(!valid_metadata_key(k), "{k}");
        }
    }
}
