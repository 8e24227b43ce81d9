//! Pangea's `AuditSchema` (vendored OpenAPI `AuditSchema`, `AuditSchemaField`): parsing and
//! checking a schema, and validating a logged event against it.
//!
//! Field types: `boolean`, `datetime`, `integer`, `string` (with `size`), `string-unindexed`
//! (stored, not searchable) and `text` (full text). Fields named like Pangea's standard fields with
//! the standard type (`actor`, `action`, `status`, `source`, `target`, `tenant_id` as strings,
//! `timestamp` as a datetime, `message`, `new`, `old` as text) are stored in the event columns the
//! default config uses; any other searchable field goes to `event_fields` (see
//! [`standard_storage`], [`needs_row`]).

use serde_json::{Map, Value};

use crate::event::FieldValue;
use crate::event::canonical::to_canonical_string;
use crate::search::catalog::Storage;
use crate::time::parse_pangea_time;

/// Longest string or text value when the schema gives no `size` (code points): Pangea's limit
/// for `message`, `new` and `old`.
pub const MAX_TEXT: usize = 32_766;
/// Longest datetime value (code points; Pangea's limit for `timestamp`).
const MAX_DATETIME: usize = 128;
/// Most fields in one schema.
pub const MAX_FIELDS: usize = 100;
/// The standard fields whose text the free-text index holds, in the order it joins them.
const FTS_STANDARD: [&str; 8] = ["message", "actor", "action", "target", "source", "status", "new", "old"];
/// Names of Pangea's standard event fields.
pub const STANDARD_FIELDS: [&str; 10] =
    ["message", "actor", "action", "new", "old", "source", "status", "target", "tenant_id", "timestamp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Boolean,
    Datetime,
    Integer,
    String,
    StringUnindexed,
    Text,
}

impl FieldType {
    pub const ALL: [FieldType; 6] = [
        FieldType::Boolean,
        FieldType::Datetime,
        FieldType::Integer,
        FieldType::String,
        FieldType::StringUnindexed,
        FieldType::Text,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Datetime => "datetime",
            Self::Integer => "integer",
            Self::String => "string",
            Self::StringUnindexed => "string-unindexed",
            Self::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    pub fn is_string(self) -> bool {
        matches!(self, Self::String | Self::StringUnindexed)
    }
}

/// The storage of a field named like a standard field with the standard type, if it is one: such
/// fields use the event columns (and the envelope) exactly as the default config does.
pub fn standard_storage(id: &str, ty: FieldType) -> Option<Storage> {
    Some(match (id, ty) {
        ("actor", FieldType::String) => Storage::Actor,
        ("action", FieldType::String) => Storage::Action,
        ("tenant_id", FieldType::String) => Storage::Tenant,
        ("target", FieldType::String) => Storage::Target,
        ("source", FieldType::String) => Storage::Source,
        ("status", FieldType::String) => Storage::Status,
        ("timestamp", FieldType::Datetime) => Storage::Timestamp,
        ("message" | "new" | "old", FieldType::Text) => Storage::Envelope,
        _ => return None,
    })
}

/// Whether a field of this type (not a standard one) is kept in `event_fields` for search; `text`
/// and `string-unindexed` values are read from the envelope.
pub fn needs_row(ty: FieldType) -> bool {
    matches!(ty, FieldType::Boolean | FieldType::Datetime | FieldType::Integer | FieldType::String)
}

/// One field of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaField {
    pub id: String,
    pub ty: FieldType,
    pub required: bool,
    /// Maximum length in code points (strings).
    pub size: Option<usize>,
    /// The field object as given (for display and the API).
    pub raw: Map<String, Value>,
}

impl SchemaField {
    /// The longest value allowed, in code points (strings and text).
    pub fn max_len(&self) -> usize {
        self.size.unwrap_or(MAX_TEXT)
    }

    pub fn searchable(&self) -> bool {
        self.ty != FieldType::StringUnindexed
    }
}

/// A parsed `AuditSchema`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSchema {
    pub fields: Vec<SchemaField>,
    /// The schema object as given, fields included.
    pub raw: Map<String, Value>,
}

/// A problem with a schema or an event: a Pangea validation error item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub detail: String,
    /// JSON pointer into the request.
    pub source: String,
}

fn problem(code: &'static str, detail: impl Into<String>, source: impl Into<String>) -> Problem {
    Problem { code, detail: detail.into(), source: source.into() }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Pangea's standard event schema, as the default config holds it (migration 0010 writes the same).
pub fn standard_schema() -> AuditSchema {
    let v: Value = serde_json::from_str(STANDARD_SCHEMA_JSON).expect("the standard schema is valid JSON");
    AuditSchema::parse(&v, "").expect("the standard schema is a valid AuditSchema")
}

pub const STANDARD_SCHEMA_JSON: &str = r#"{"client_signable":true,"fields":[{"id":"timestamp","name":"Timestamp","type":"datetime","ui_default_visible":true},{"id":"actor","name":"Actor","size":128,"type":"string","ui_default_visible":true},{"id":"action","name":"Action","size":32,"type":"string","ui_default_visible":true},{"id":"status","name":"Status","size":32,"type":"string","ui_default_visible":true},{"id":"source","name":"Source","size":128,"type":"string","ui_default_visible":false},{"id":"target","name":"Target","size":128,"type":"string","ui_default_visible":true},{"id":"tenant_id","name":"Tenant ID","size":128,"type":"string","ui_default_visible":false},{"id":"message","name":"Message","required":true,"type":"text","ui_default_visible":true},{"id":"new","name":"New","type":"text","ui_default_visible":false},{"id":"old","name":"Old","type":"text","ui_default_visible":false}],"save_malformed":"reject","tamper_proofing":true}"#;

impl AuditSchema {
    /// Parses and checks an `AuditSchema` object; `at` is the JSON pointer of the schema in the
    /// request (problems name their place below it).
    pub fn parse(v: &Value, at: &str) -> Result<Self, Vec<Problem>> {
        let Value::Object(obj) = v else {
            return Err(vec![problem("InvalidObject", "the schema must be an object", at)]);
        };
        let mut problems = Vec::new();
        for (k, val) in obj {
            let src = format!("{at}/{}", clip(k));
            match k.as_str() {
                "client_signable" | "tamper_proofing" if !val.is_boolean() => {
                    problems.push(problem("InvalidBool", format!("'{k}' must be a boolean"), src));
                }
                "tamper_proofing" if val == &Value::Bool(false) => problems.push(problem(
                    "NotEnumMember",
                    "every event is tamper-proofed here; 'tamper_proofing' cannot be false",
                    src,
                )),
                "vendor_id" | "json_path" if !val.is_string() => {
                    problems.push(problem("InvalidString", format!("'{k}' must be a string"), src));
                }
                "save_malformed" if val.as_str() != Some("reject") => problems.push(problem(
                    "NotEnumMember",
                    "only 'reject' is supported: events that do not match the schema are refused",
                    src,
                )),
                "client_signable" | "tamper_proofing" | "vendor_id" | "json_path" | "save_malformed" | "fields" => {}
                _ => problems.push(problem(
                    "UnexpectedProperty",
                    format!("'{}' is not an allowed property", clip(k)),
                    src,
                )),
            }
        }
        let fields = match obj.get("fields") {
            Some(Value::Array(items)) => parse_fields(items, &format!("{at}/fields"), &mut problems),
            Some(_) => {
                problems.push(problem("InvalidArray", "'fields' must be an array", format!("{at}/fields")));
                Vec::new()
            }
            None => {
                problems.push(problem("FieldRequired", "'fields' is a required property", format!("{at}/fields")));
                Vec::new()
            }
        };
        if problems.is_empty() { Ok(Self { fields, raw: obj.clone() }) } else { Err(problems) }
    }

    pub fn field(&self, id: &str) -> Option<&SchemaField> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The schema as JSON (as given).
    pub fn to_value(&self) -> Value {
        Value::Object(self.raw.clone())
    }

    /// Why `new` may not replace this schema while the config holds events, if it may not:
    /// fields may be added (optional ones only) and their descriptions changed, but none removed,
    /// retyped, resized smaller or made required.
    pub fn incompatible_change(&self, new: &AuditSchema) -> Option<Problem> {
        for (i, old) in self.fields.iter().enumerate() {
            let Some(f) = new.field(&old.id) else {
                return Some(problem(
                    "BadState",
                    format!("field '{}' cannot be removed: the config holds events", old.id),
                    format!("/schema/fields/{i}"),
                ));
            };
            let src = format!("/schema/fields/{}", new.fields.iter().position(|x| x.id == old.id).unwrap_or(0));
            if f.ty != old.ty {
                return Some(problem(
                    "BadState",
                    format!("the type of field '{}' cannot change: the config holds events", old.id),
                    format!("{src}/type"),
                ));
            }
            if f.required && !old.required {
                return Some(problem(
                    "BadState",
                    format!("field '{}' cannot become required: the config holds events", old.id),
                    format!("{src}/required"),
                ));
            }
            if f.max_len() < old.max_len() && f.ty.is_string() {
                return Some(problem(
                    "BadState",
                    format!("the size of field '{}' cannot shrink: the config holds events", old.id),
                    format!("{src}/size"),
                ));
            }
        }
        for (i, f) in new.fields.iter().enumerate() {
            if f.required && self.field(&f.id).is_none() {
                return Some(problem(
                    "BadState",
                    format!("a field added while the config holds events must be optional ('{}')", f.id),
                    format!("/schema/fields/{i}/required"),
                ));
            }
        }
        None
    }
}

fn parse_fields(items: &[Value], at: &str, problems: &mut Vec<Problem>) -> Vec<SchemaField> {
    if items.is_empty() {
        problems.push(problem("BelowMinItems", "'fields' must contain at least 1 item", at));
    }
    if items.len() > MAX_FIELDS {
        problems.push(problem("AboveMaxItems", format!("'fields' must contain at most {MAX_FIELDS} items"), at));
        return Vec::new();
    }
    let mut out: Vec<SchemaField> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let src = format!("{at}/{i}");
        if let Some(f) = parse_field(item, &src, problems) {
            if out.iter().any(|o| o.id == f.id) {
                problems.push(problem("BadState", format!("field id '{}' appears twice", f.id), format!("{src}/id")));
            }
            out.push(f);
        }
    }
    out
}

/// `^[a-z][0-9a-z_]*$`, at most 32 characters, not `received_at`.
pub fn valid_field_id(id: &str) -> bool {
    let b = id.as_bytes();
    matches!(b.first(), Some(b'a'..=b'z'))
        && b.len() <= 32
        && b.iter().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && id != "received_at"
}

fn parse_field(item: &Value, at: &str, problems: &mut Vec<Problem>) -> Option<SchemaField> {
    let Value::Object(obj) = item else {
        problems.push(problem("InvalidObject", "each field must be an object", at));
        return None;
    };
    let before = problems.len();
    for (k, val) in obj {
        let src = format!("{at}/{}", clip(k));
        let ok = match k.as_str() {
            "id" | "type" => true, // checked below
            "description" => val.as_str().is_some_and(|s| s.chars().count() <= 255),
            "name" => val.as_str().is_some_and(|s| s.chars().count() <= 64),
            "redact" | "required" | "partitioned" | "ui_default_visible" => val.is_boolean(),
            "size" => val.as_u64().is_some_and(|n| (1..=MAX_TEXT as u64).contains(&n)),
            _ => {
                problems.push(problem("UnexpectedProperty", format!("'{}' is not an allowed property", clip(k)), src));
                continue;
            }
        };
        if !ok {
            let what = match k.as_str() {
                "description" => "a string of at most 255 characters",
                "name" => "a string of at most 64 characters",
                "size" => "an integer from 1 to 32766",
                _ => "a boolean",
            };
            problems.push(problem("BadFormat", format!("'{k}' must be {what}"), src));
        }
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) if valid_field_id(s) => s.clone(),
        Some(_) => {
            problems.push(problem(
                "BadFormat",
                "'id' must match ^[a-z][0-9a-z_]*$, have at most 32 characters and not be 'received_at'",
                format!("{at}/id"),
            ));
            String::new()
        }
        None => {
            problems.push(problem("FieldRequired", "'id' is a required property", format!("{at}/id")));
            String::new()
        }
    };
    let ty = match obj.get("type").and_then(Value::as_str).map(FieldType::parse) {
        Some(Some(t)) => Some(t),
        Some(None) | None if obj.contains_key("type") => {
            problems.push(problem(
                "NotEnumMember",
                "'type' must be one of boolean, datetime, integer, string, string-unindexed, text",
                format!("{at}/type"),
            ));
            None
        }
        _ => {
            problems.push(problem("FieldRequired", "'type' is a required property", format!("{at}/type")));
            None
        }
    };
    let ty = ty?;
    if obj.contains_key("size") && !ty.is_string() {
        problems.push(problem("BadState", "'size' is only valid for string fields", format!("{at}/size")));
    }
    if obj.get("redact") == Some(&Value::Bool(true)) && !ty.is_string() && ty != FieldType::Text {
        problems.push(problem("BadState", "'redact' is only valid for string fields", format!("{at}/redact")));
    }
    if problems.len() > before {
        return None;
    }
    Some(SchemaField {
        id,
        ty,
        required: obj.get("required") == Some(&Value::Bool(true)),
        size: obj.get("size").and_then(Value::as_u64).map(|n| n as usize),
        raw: obj.clone(),
    })
}

/// An event checked against a schema, with what the writer stores besides the envelope.
#[derive(Debug, Default)]
pub struct Checked {
    /// The event object as stored in the envelope.
    pub event: Map<String, Value>,
    /// `event_fields` rows: (field number, value).
    pub rows: Vec<(i64, FieldValue)>,
    /// Values of the standard columns.
    pub actor: Option<String>,
    pub action: Option<String>,
    pub tenant: Option<String>,
    pub target: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    /// The standard `timestamp` as µs.
    pub event_time: Option<i64>,
}

/// A schema field with its storage, as a config holds it.
#[derive(Debug, Clone)]
pub struct StoredField {
    pub field: SchemaField,
    pub storage: Storage,
}

/// Validates one event object (`v`, at JSON pointer `at`) against `fields`: unknown fields,
/// missing required fields, wrong types and values over `size` are problems naming the field.
pub fn check_event(fields: &[StoredField], v: Option<&Value>, at: &str) -> Result<Checked, Vec<Problem>> {
    let obj = match v {
        None | Some(Value::Null) => return Err(vec![problem("FieldRequired", "'event' is a required property", at)]),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(vec![problem("InvalidObject", "'event' must be an object", at)]),
    };
    let mut out = Checked::default();
    let mut problems = Vec::new();
    // The JSON pointer of a field is only built for a problem (this runs for every logged event).
    let src = |k: &str| format!("{at}/{}", clip(k));
    for (k, val) in obj {
        let Some(f) = fields.iter().find(|f| f.field.id == *k) else {
            problems.push(problem("UnexpectedProperty", format!("'{}' is not an allowed property", clip(k)), src(k)));
            continue;
        };
        match check_value(&f.field, val, matches!(f.storage, Storage::Indexed(_))) {
            Ok((stored, typed)) => {
                record(&mut out, f.storage, &stored, typed);
                out.event.insert(k.clone(), stored);
            }
            Err((code, detail)) => problems.push(problem(code, detail, src(k))),
        }
    }
    for f in fields {
        if f.field.required && !obj.contains_key(&f.field.id) {
            let id = &f.field.id;
            problems.push(problem("FieldRequired", format!("'{id}' is a required property"), format!("{at}/{id}")));
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Keeps what the writer needs of one valid field value.
fn record(out: &mut Checked, storage: Storage, stored: &Value, typed: Option<FieldValue>) {
    let text = || stored.as_str().map(str::to_string);
    match storage {
        Storage::Actor => out.actor = text(),
        Storage::Action => out.action = text(),
        Storage::Tenant => out.tenant = text(),
        Storage::Target => out.target = text(),
        Storage::Source => out.source = text(),
        Storage::Status => out.status = text(),
        Storage::Timestamp => {
            out.event_time = match typed {
                Some(FieldValue::Int(us)) => Some(us),
                _ => None,
            }
        }
        Storage::Envelope | Storage::ReceivedAt => {}
        Storage::Indexed(no) => {
            if let Some(t) = typed {
                out.rows.push((no, t));
            }
        }
    }
}

/// One value: what the envelope keeps and its typed form (`event_fields`, event time; strings only
/// when `indexed`), or a problem's code and detail.
fn check_value(
    f: &SchemaField,
    val: &Value,
    indexed: bool,
) -> Result<(Value, Option<FieldValue>), (&'static str, String)> {
    let id = &f.id;
    match f.ty {
        FieldType::String | FieldType::StringUnindexed | FieldType::Text => {
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Object(_) | Value::Array(_) if f.ty == FieldType::Text => {
                    if !integers_only(val) {
                        return Err((
                            "InvalidString",
                            format!("'{id}' may contain only strings, integers, booleans and null"),
                        ));
                    }
                    to_canonical_string(val)
                }
                _ => return Err(("InvalidString", format!("'{id}' must be a string"))),
            };
            if s.chars().count() > f.max_len() {
                return Err(("AboveMaxLength", format!("'{id}' is longer than {} characters", f.max_len())));
            }
            let typed = (f.ty == FieldType::String && indexed).then(|| FieldValue::Text(s.clone()));
            Ok((Value::String(s), typed))
        }
        FieldType::Integer => match val {
            Value::Number(n) if n.is_i64() => Ok((val.clone(), n.as_i64().map(FieldValue::Int))),
            Value::Number(n) if n.is_u64() => {
                Err(("NotWithinRange", format!("'{id}' must be between -9223372036854775808 and 9223372036854775807")))
            }
            _ => Err(("InvalidInteger", format!("'{id}' must be an integer"))),
        },
        FieldType::Boolean => match val {
            Value::Bool(b) => Ok((val.clone(), Some(FieldValue::Int(i64::from(*b))))),
            _ => Err(("InvalidBool", format!("'{id}' must be a boolean"))),
        },
        FieldType::Datetime => {
            let Value::String(s) = val else {
                return Err(("InvalidString", format!("'{id}' must be a string")));
            };
            if s.chars().count() > MAX_DATETIME {
                return Err(("AboveMaxLength", format!("'{id}' is longer than {MAX_DATETIME} characters")));
            }
            match parse_pangea_time(s) {
                Some(us) => Ok((val.clone(), Some(FieldValue::Int(us)))),
                None => Err(("BadFormatDateTime", format!("'{id}' must be an RFC 3339 date-time"))),
            }
        }
    }
}

fn integers_only(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(a) => a.iter().all(integers_only),
        Value::Object(o) => o.values().all(integers_only),
        _ => true,
    }
}

/// The text the free-text index holds for an event of a config with these fields: the standard
/// text fields in a fixed order, then the other searchable string and text fields in schema order.
/// For the standard schema this is exactly `event::fts_body` of a Pangea event (ingest and the
/// retention purge must produce the same text).
pub fn fts_text(fields: &[StoredField], event: &Map<String, Value>) -> String {
    let text_field = |f: &StoredField| matches!(f.field.ty, FieldType::String | FieldType::Text);
    let mut parts: Vec<&str> = Vec::new();
    for name in FTS_STANDARD {
        if fields.iter().any(|f| f.field.id == name && text_field(f))
            && let Some(s) = event.get(name).and_then(Value::as_str)
        {
            parts.push(s);
        }
    }
    for f in fields {
        if text_field(f)
            && !STANDARD_FIELDS.contains(&f.field.id.as_str())
            && let Some(s) = event.get(&f.field.id).and_then(Value::as_str)
        {
            parts.push(s);
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(schema: &AuditSchema) -> Vec<StoredField> {
        let mut next = 100;
        schema
            .fields
            .iter()
            .map(|f| {
                let storage = standard_storage(&f.id, f.ty).unwrap_or_else(|| {
                    if needs_row(f.ty) {
                        next += 1;
                        Storage::Indexed(next)
                    } else {
                        Storage::Envelope
                    }
                });
                StoredField { field: f.clone(), storage }
            })
            .collect()
    }

    fn custom() -> AuditSchema {
        AuditSchema::parse(
            &json!({"fields": [
                {"id": "message", "type": "text", "required": true},
                {"id": "user", "type": "string", "size": 8, "required": true},
                {"id": "count", "type": "integer"},
                {"id": "ok", "type": "boolean"},
                {"id": "at", "type": "datetime"},
                {"id": "note", "type": "string-unindexed"},
                {"id": "body", "type": "text"},
                {"id": "actor", "type": "integer"},
            ]}),
            "/schema",
        )
        .unwrap()
    }

    #[test]
    fn the_standard_schema_parses_and_maps_to_the_standard_columns() {
        let s = standard_schema();
        assert_eq!(s.fields.len(), 10);
        let v: Value = serde_json::from_str(STANDARD_SCHEMA_JSON).unwrap();
        assert_eq!(to_canonical_string(&v), STANDARD_SCHEMA_JSON, "stored in canonical form");
        for f in &s.fields {
            assert!(standard_storage(&f.id, f.ty).is_some(), "{}", f.id);
        }
        let migration = include_str!("../../migrations/0010_configs.sql");
        assert!(migration.contains(STANDARD_SCHEMA_JSON), "migration 0010 writes the same schema");
    }

    #[test]
    fn schema_problems_name_their_place() {
        let cases = [
            (json!([]), "InvalidObject", "/schema"),
            (json!({}), "FieldRequired", "/schema/fields"),
            (json!({"fields": []}), "BelowMinItems", "/schema/fields"),
            (json!({"fields": [{"id": "Bad", "type": "string"}]}), "BadFormat", "/schema/fields/0/id"),
            (json!({"fields": [{"id": "received_at", "type": "string"}]}), "BadFormat", "/schema/fields/0/id"),
            (json!({"fields": [{"id": "a", "type": "float"}]}), "NotEnumMember", "/schema/fields/0/type"),
            (json!({"fields": [{"id": "a"}]}), "FieldRequired", "/schema/fields/0/type"),
            (json!({"fields": [{"id": "a", "type": "integer", "size": 3}]}), "BadState", "/schema/fields/0/size"),
            (json!({"fields": [{"id": "a", "type": "string", "size": 0}]}), "BadFormat", "/schema/fields/0/size"),
            (json!({"fields": [{"id": "a", "type": "string", "x": 1}]}), "UnexpectedProperty", "/schema/fields/0/x"),
            (
                json!({"fields": [{"id": "a", "type": "string"}, {"id": "a", "type": "text"}]}),
                "BadState",
                "/schema/fields/1/id",
            ),
            (
                json!({"fields": [{"id": "a", "type": "string"}], "save_malformed": "all"}),
                "NotEnumMember",
                "/schema/save_malformed",
            ),
            (json!({"fields": [{"id": "a", "type": "string"}], "other": 1}), "UnexpectedProperty", "/schema/other"),
        ];
        for (v, code, src) in cases {
            let p = AuditSchema::parse(&v, "/schema").unwrap_err();
            assert!(p.iter().any(|p| p.code == code && p.source == src), "{v}: {p:?}");
        }
        let long = "a".repeat(33);
        assert!(AuditSchema::parse(&json!({"fields": [{"id": long, "type": "string"}]}), "").is_err());
    }

    #[test]
    fn events_are_checked_field_by_field() {
        let fields = stored(&custom());
        let ok = check_event(
            &fields,
            Some(&json!({"message": {"b": 1, "a": [true, null]}, "user": "ü1234567", "count": -5, "ok": true,
                         "at": "2024-01-02T03:04:05.5+01:00", "note": "n", "body": "b", "actor": 7})),
            "/event",
        )
        .unwrap();
        assert_eq!(
            ok.event["message"],
            json!(r#"{"a":[true,null],"b":1}"#),
            "objects in text fields become canonical JSON"
        );
        assert_eq!(
            ok.rows,
            vec![
                (105, FieldValue::Int(7)),
                (104, FieldValue::Int(1_704_161_045_500_000)),
                (102, FieldValue::Int(-5)),
                (103, FieldValue::Int(1)),
                (101, FieldValue::Text("ü1234567".into())),
            ]
        );
        assert_eq!(ok.actor, None, "an integer 'actor' is a custom field");
        let bad = |event: Value| check_event(&fields, Some(&event), "/event").unwrap_err();
        let codes = |p: Vec<Problem>| p.into_iter().map(|p| (p.code, p.source)).collect::<Vec<_>>();
        assert_eq!(codes(bad(json!({"message": "m"}))), vec![("FieldRequired", "/event/user".to_string())]);
        assert_eq!(
            codes(bad(json!({"message": "m", "user": "123456789", "count": 1.5, "ok": "yes", "at": "today",
                             "extra": 1, "note": 3}))),
            vec![
                ("BadFormatDateTime", "/event/at".to_string()),
                ("InvalidInteger", "/event/count".to_string()),
                ("UnexpectedProperty", "/event/extra".to_string()),
                ("InvalidString", "/event/note".to_string()),
                ("InvalidBool", "/event/ok".to_string()),
                ("AboveMaxLength", "/event/user".to_string()),
            ]
        );
        assert_eq!(
            codes(bad(json!({"message": "m", "user": "u", "count": 9_223_372_036_854_775_808u64}))),
            vec![("NotWithinRange", "/event/count".to_string())]
        );
        let p = bad(json!({"message": "m", "user": "u", "count": "1"}));
        assert!(p[0].detail.contains("'count'"), "the detail names the field: {}", p[0].detail);
    }

    #[test]
    fn free_text_is_the_standard_body_for_the_standard_schema() {
        let std_fields = stored(&standard_schema());
        let ev: Map<String, Value> = serde_json::from_value(json!({
            "message": "m", "actor": "a", "action": "x", "target": "t", "source": "s", "status": "ok",
            "new": "n", "old": "o", "tenant_id": "w", "timestamp": "2024-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(fts_text(&std_fields, &ev), crate::event::fts_body(crate::event::Origin::Pangea, &ev));
        let fields = stored(&custom());
        let ev: Map<String, Value> = serde_json::from_value(json!({
            "message": "m", "user": "u", "count": 1, "note": "hidden", "body": "b", "actor": 3
        }))
        .unwrap();
        assert_eq!(fts_text(&fields, &ev), "m u b", "string-unindexed and non-text fields stay out");
    }

    #[test]
    fn schema_changes_while_events_exist() {
        let old = custom();
        let mut v = old.to_value();
        v["fields"].as_array_mut().unwrap().push(json!({"id": "added", "type": "string"}));
        let grown = AuditSchema::parse(&v, "").unwrap();
        assert_eq!(old.incompatible_change(&grown), None);
        let mut v = old.to_value();
        v["fields"].as_array_mut().unwrap().push(json!({"id": "added", "type": "string", "required": true}));
        assert!(old.incompatible_change(&AuditSchema::parse(&v, "").unwrap()).is_some());
        let mut v = old.to_value();
        v["fields"].as_array_mut().unwrap().remove(2);
        assert!(old.incompatible_change(&AuditSchema::parse(&v, "").unwrap()).unwrap().detail.contains("removed"));
        let mut v = old.to_value();
        v["fields"][2]["type"] = json!("string");
        assert!(old.incompatible_change(&AuditSchema::parse(&v, "").unwrap()).unwrap().detail.contains("type"));
        let mut v = old.to_value();
        v["fields"][1]["size"] = json!(4);
        assert!(old.incompatible_change(&AuditSchema::parse(&v, "").unwrap()).unwrap().detail.contains("size"));
    }
}
