//! The indexed columns of an archived event, derived from its line exactly as the dialects set
//! them at ingest (`restore` stores them; `archive` derives them where objects are checked, in
//! parallel).

use serde_json::Value;

use crate::event::{EventType, Origin};

/// What `columns` reads of one archived line.
pub struct Line<'a> {
    pub origin: Origin,
    pub event_time: Option<&'a str>,
    /// Empty when retention removed the content.
    pub envelope: &'a str,
    pub workspace: Option<&'a str>,
}

/// An event's indexed columns, derived from its envelope exactly as the dialects set them.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub received_at: i64,
    pub event_time: i64,
    pub workspace: String,
    pub actor: String,
    pub action: String,
    pub event_source: String,
    pub target: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub status_code: Option<i64>,
    pub read_only: bool,
    pub event_type: i64,
    /// The free-text row (none for a purged event).
    pub fts: Option<String>,
}

/// The columns of one archived event. H2O and server events carry every column in their event
/// object (`parse_event` in the H2O dialect); Pangea events carry theirs as optional strings.
pub fn columns(row: &Line<'_>) -> Result<Columns, String> {
    let event_time = match row.event_time {
        Some(t) => crate::time::parse_rfc3339(t).map(|(us, _)| us).ok_or("malformed event_time")?,
        None => return Err("no event_time".into()),
    };
    if row.envelope.is_empty() {
        return Ok(Columns {
            received_at: 0,
            event_time,
            workspace: row.workspace.unwrap_or_default().to_string(),
            ..Default::default()
        });
    }
    let env: Value = serde_json::from_str(row.envelope).map_err(|_| "the envelope is not JSON")?;
    let received_at = env["received_at"]
        .as_str()
        .and_then(crate::time::parse_rfc3339)
        .map(|(us, _)| us)
        .ok_or("the envelope has no receive time")?;
    let Some(ev) = env.get("event").and_then(Value::as_object) else { return Err("the envelope has no event".into()) };
    let text = |k: &str| ev.get(k).and_then(Value::as_str).map(str::to_string);
    let status = text("status");
    let status_code = status.as_deref().and_then(|s| s.parse::<i32>().ok()).map(i64::from);
    let mut c = Columns {
        received_at,
        event_time,
        workspace: text("tenant_id").unwrap_or_default(),
        actor: text("actor").unwrap_or_default(),
        action: text("action").unwrap_or_default(),
        status,
        status_code,
        fts: Some(crate::event::fts_body(row.origin, ev)),
        ..Default::default()
    };
    match row.origin {
        Origin::Pangea => {
            c.event_source = "pangea".into();
            c.target = text("target");
            c.source = text("source");
        }
        Origin::H2o | Origin::Server => {
            c.event_source = text("event_source").unwrap_or_default();
            c.target = Some(text("target").unwrap_or_default());
            c.source = Some(text("source").unwrap_or_default());
            c.read_only = ev.get("read_only").and_then(Value::as_bool).unwrap_or(false);
            c.event_type = text("type").and_then(|t| EventType::from_name(&t)).unwrap_or(EventType::Unspecified) as i64;
        }
    }
    Ok(c)
}
