//! The server's own events: the self-audit of H2O searches, API-key changes, verifications and
//! backups started from the admin API, and retention purges.
//!
//! They are H2O-shaped events (event source, principal, resource, metadata, …; origin `Server`)
//! so that both dialects and the UI render them like any other event, and each value stays
//! within what an H2O client may send (8 KiB per string): a builder returns `None` for an event
//! it cannot record whole. Their time is the wall clock and their status OK (code 0).

use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{EventType, NewEvent, Origin, fts_body, is_private_ip, workspace_from_resource};
use crate::time::{format_duration, format_micros, format_protojson, now_micros};

/// The action of the event that records a purge.
pub const PURGE_ACTION: &str = "actions/audittrail/events/PURGE";
/// The action of a search's self-audit event.
pub const SEARCH_ACTION: &str = "actions/audittrail/events/SEARCH";
/// The actions of API-key changes.
pub const KEY_CREATE_ACTION: &str = "actions/audittrail/keys/CREATE";
pub const KEY_REVOKE_ACTION: &str = "actions/audittrail/keys/REVOKE";
/// The actions of audit-config changes.
pub const CONFIG_CREATE_ACTION: &str = "actions/audittrail/configs/CREATE";
pub const CONFIG_UPDATE_ACTION: &str = "actions/audittrail/configs/UPDATE";
pub const CONFIG_DELETE_ACTION: &str = "actions/audittrail/configs/DELETE";
pub const CONFIG_ROTATE_ACTION: &str = "actions/audittrail/configs/ROTATE_SIGNING_KEY";
/// The action of a verification of the whole log started through the admin API.
pub const VERIFY_ACTION: &str = "actions/audittrail/log/VERIFY";
/// The action of an online backup taken through the admin API.
pub const BACKUP_ACTION: &str = "actions/audittrail/log/BACKUP";

/// The longest string value of an event (as in an H2O request).
pub const MAX_VALUE: usize = 8192;
/// User agents are cut to this many characters.
const MAX_USER_AGENT_CHARS: usize = 1024;

/// What a server event says, in the H2O event's terms.
struct Fields {
    event_source: &'static str,
    action: &'static str,
    read_only: bool,
    principal: String,
    source_ip: String,
    resource: String,
    metadata: Map<String, Value>,
    request_parameters: Map<String, Value>,
    user_agent: String,
    event_type: EventType,
}

/// The self-audit event of a first-page H2O search by key `key_id` from `peer` (None: unknown),
/// recording the canonical JSON of its `filter`.
pub fn search_audit(
    key_id: &str,
    peer: Option<String>,
    user_agent: &str,
    filter: String,
    redact: bool,
) -> Option<NewEvent> {
    build(
        Fields {
            event_source: "h2oai-audittrail-server",
            action: SEARCH_ACTION,
            read_only: true,
            principal: format!("keys/{key_id}"),
            source_ip: peer.filter(|p| !p.is_empty()).unwrap_or_else(|| "unknown".into()),
            resource: "//audittrail".into(),
            metadata: Map::new(),
            request_parameters: Map::from_iter([("filter".to_string(), json!(filter))]),
            user_agent: user_agent.chars().take(MAX_USER_AGENT_CHARS).collect(),
            event_type: EventType::Api,
        },
        redact,
    )
}

/// The event recording that admin key `actor_key_id` (from `peer`) created key `key_id` named
/// `name`.
pub fn key_created(
    actor_key_id: &str,
    peer: Option<String>,
    key_id: &str,
    name: &str,
    redact: bool,
) -> Option<NewEvent> {
    key_change(KEY_CREATE_ACTION, actor_key_id, peer, key_id, Some(name), redact)
}

/// The event recording that admin key `actor_key_id` (from `peer`) revoked key `key_id`.
pub fn key_revoked(actor_key_id: &str, peer: Option<String>, key_id: &str, redact: bool) -> Option<NewEvent> {
    key_change(KEY_REVOKE_ACTION, actor_key_id, peer, key_id, None, redact)
}

fn key_change(
    action: &'static str,
    actor_key_id: &str,
    peer: Option<String>,
    key_id: &str,
    name: Option<&str>,
    redact: bool,
) -> Option<NewEvent> {
    let mut metadata = Map::from_iter([("key_id".to_string(), json!(key_id))]);
    if let Some(name) = name {
        metadata.insert("name".into(), json!(name));
    }
    build(
        Fields {
            event_source: "trailkeep",
            action,
            read_only: false,
            principal: format!("keys/{actor_key_id}"),
            source_ip: peer.unwrap_or_else(|| "unknown".into()),
            resource: format!("//audittrail/keys/{key_id}"),
            metadata,
            request_parameters: Map::new(),
            user_agent: String::new(),
            event_type: EventType::Api,
        },
        redact,
    )
}

/// The event recording that admin key `actor_key_id` (from `peer`) changed audit config
/// `config_id` (`action`: one of the `CONFIG_*_ACTION`s), with what changed in `metadata`
/// (name, signing key version, …). It belongs to the default config.
pub fn config_changed(
    action: &'static str,
    actor_key_id: &str,
    peer: Option<String>,
    config_id: &str,
    metadata: Map<String, Value>,
    redact: bool,
) -> Option<NewEvent> {
    let mut metadata = metadata;
    metadata.insert("config_id".into(), json!(config_id));
    build(
        Fields {
            event_source: "trailkeep",
            action,
            read_only: false,
            principal: format!("keys/{actor_key_id}"),
            source_ip: peer.unwrap_or_else(|| "unknown".into()),
            resource: format!("//audittrail/configs/{config_id}"),
            metadata,
            request_parameters: Map::new(),
            user_agent: String::new(),
            event_type: EventType::Api,
        },
        redact,
    )
}

/// The event recording that admin key `actor_key_id` (from `peer`) started a verification of the
/// log of `tree_size` leaves.
pub fn verify_started(actor_key_id: &str, peer: Option<String>, tree_size: u64, redact: bool) -> Option<NewEvent> {
    log_read(VERIFY_ACTION, actor_key_id, peer, [("tree_size", tree_size.to_string())], redact)
}

/// The event recording that admin key `actor_key_id` (from `peer`) took a backup of the log
/// into the file named `file`, with a copy of the private keys if `include_keys`. Appended
/// before the copy starts, so the backup holds it.
pub fn backup_started(
    actor_key_id: &str,
    peer: Option<String>,
    file: &str,
    include_keys: bool,
    redact: bool,
) -> Option<NewEvent> {
    let metadata = [("file", file.to_string()), ("include_keys", include_keys.to_string())];
    log_read(BACKUP_ACTION, actor_key_id, peer, metadata, redact)
}

/// An admin key's read of the whole log (`//audittrail/log`), with string `metadata`.
fn log_read<const N: usize>(
    action: &'static str,
    actor_key_id: &str,
    peer: Option<String>,
    metadata: [(&str, String); N],
    redact: bool,
) -> Option<NewEvent> {
    build(
        Fields {
            event_source: "trailkeep",
            action,
            read_only: true,
            principal: format!("keys/{actor_key_id}"),
            source_ip: peer.unwrap_or_else(|| "unknown".into()),
            resource: "//audittrail/log".into(),
            metadata: metadata.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect(),
            request_parameters: Map::new(),
            user_agent: String::new(),
            event_type: EventType::Api,
        },
        redact,
    )
}

/// What one purge event declares: the retention purge removed the content of `count` events of
/// `workspace` (seq `first_seq..=last_seq`) received before `cutoff`.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeInfo {
    pub workspace: String,
    pub count: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Events received before this time (µs) were purged.
    pub cutoff: i64,
    /// The retention period applied (µs).
    pub period: i64,
}

/// The event that records a retention purge, in the purged workspace. `verify` reads its
/// metadata.
pub fn purge(info: &PurgeInfo) -> NewEvent {
    let cutoff = format_micros(info.cutoff);
    let metadata = [
        ("message", format!("retention: removed the content of {} events received before {cutoff}", info.count)),
        ("purged", info.count.to_string()),
        ("first_seq", info.first_seq.to_string()),
        ("last_seq", info.last_seq.to_string()),
        ("cutoff", cutoff.clone()),
        ("retention", format_duration(info.period)),
    ];
    let mut ev = build(
        Fields {
            event_source: "trailkeep",
            action: PURGE_ACTION,
            read_only: false,
            principal: "trailkeep/retention".into(),
            source_ip: "unknown".into(),
            resource: "//audittrail".into(),
            metadata: metadata.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect(),
            request_parameters: Map::new(),
            user_agent: String::new(),
            event_type: EventType::System,
        },
        false,
    )
    .expect("the purge event is valid");
    ev.workspace = info.workspace.clone();
    if info.workspace.is_empty() {
        ev.event.remove("tenant_id");
    } else {
        ev.event.insert("tenant_id".into(), json!(info.workspace));
    }
    ev
}

/// The canonical event of `f`, now; `None` if a value is longer than [`MAX_VALUE`].
fn build(f: Fields, redact: bool) -> Option<NewEvent> {
    let strings = [f.event_source, f.action, &f.principal, &f.source_ip, &f.resource, &f.user_agent];
    let map_values = f.metadata.values().chain(f.request_parameters.values()).filter_map(Value::as_str);
    if strings.into_iter().chain(map_values).any(|s| s.len() > MAX_VALUE) {
        return None;
    }
    let event_time = now_micros();
    let workspace = workspace_from_resource(&f.resource);
    let source_ip = if redact && is_private_ip(&f.source_ip) { "private".to_string() } else { f.source_ip };
    let message = f.metadata.get("message").and_then(Value::as_str).unwrap_or(f.action).to_string();
    let mut ev = Map::new();
    ev.insert("action".into(), json!(f.action));
    ev.insert("actor".into(), json!(f.principal));
    let uid = Uuid::new_v4();
    ev.insert("event_id".into(), json!(uid.to_string()));
    ev.insert("event_source".into(), json!(f.event_source));
    ev.insert("message".into(), json!(message));
    ev.insert("metadata".into(), Value::Object(f.metadata));
    ev.insert("read_only".into(), json!(f.read_only));
    ev.insert("request_parameters".into(), Value::Object(f.request_parameters));
    ev.insert("source".into(), json!(source_ip));
    ev.insert("status".into(), json!("0"));
    ev.insert("status_message".into(), json!(""));
    ev.insert("target".into(), json!(f.resource));
    if !workspace.is_empty() {
        ev.insert("tenant_id".into(), json!(workspace));
    }
    ev.insert("timestamp".into(), json!(format_protojson(event_time, 0)));
    ev.insert("type".into(), json!(f.event_type.name()));
    ev.insert("user_agent".into(), json!(f.user_agent));
    let fts_body = fts_body(Origin::Server, &ev);
    Some(NewEvent {
        uid,
        origin: Origin::Server,
        workspace,
        actor: f.principal,
        action: f.action.to_string(),
        event_source: f.event_source.to_string(),
        target: Some(f.resource),
        source: Some(source_ip),
        status: Some("0".into()),
        status_code: Some(0),
        read_only: f.read_only,
        event_type: f.event_type,
        event_time: Some(event_time),
        fts_body,
        event: ev,
        signature: None,
        public_key: None,
    })
}
