//! The indexed columns of an archived event, derived from its line exactly as the dialects set
//! them at ingest (`restore` stores them; `archive` derives them where objects are checked, in
//! parallel). The envelope is read for the few fields the columns need, borrowing its strings
//! (no `serde_json::Value` is built): the same values `serde_json::Value` lookups give (a field
//! that is not a string counts as absent, the last of duplicate keys wins, `metadata` in key
//! order).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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
    let env: Envelope<'_> = serde_json::from_str(row.envelope).map_err(|_| "the envelope is not JSON")?;
    let received_at = env
        .received_at
        .as_ref()
        .and_then(Loose::as_str)
        .and_then(crate::time::parse_rfc3339)
        .map(|(us, _)| us)
        .ok_or("the envelope has no receive time")?;
    let Some(ev) = env.event else { return Err("the envelope has no event".into()) };
    let text = |k: &str| ev.text(k).map(str::to_string);
    let status = text("status");
    let status_code = status.as_deref().and_then(|s| s.parse::<i32>().ok()).map(i64::from);
    let metadata = ev.metadata.iter().flat_map(|m| m.values().filter_map(Loose::as_str));
    let mut c = Columns {
        received_at,
        event_time,
        workspace: text("tenant_id").unwrap_or_default(),
        actor: text("actor").unwrap_or_default(),
        action: text("action").unwrap_or_default(),
        status,
        status_code,
        fts: Some(crate::event::fts_body_of(row.origin, |k| ev.text(k), metadata)),
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
            c.read_only = matches!(ev.get("read_only"), Some(Loose::Bool(true)));
            c.event_type = text("type").and_then(|t| EventType::from_name(&t)).unwrap_or(EventType::Unspecified) as i64;
        }
    }
    Ok(c)
}

/// The event fields the columns and the free-text row read.
const FIELDS: [&str; 12] = [
    "tenant_id",
    "actor",
    "action",
    "status",
    "target",
    "source",
    "message",
    "new",
    "old",
    "event_source",
    "type",
    "read_only",
];

/// A JSON value of which only a string (borrowed where it has no escapes) or a boolean is kept.
#[derive(Debug, PartialEq)]
enum Loose<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Other,
}

impl Loose<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

/// An object key, borrowed where it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Loose::deserialize(d)? {
            Loose::Str(s) => Ok(Key(s)),
            _ => Err(serde::de::Error::custom("an object key that is not a string")),
        }
    }
}

/// The envelope's `event` (when it is an object) and `received_at`.
struct Envelope<'a> {
    event: Option<Event<'a>>,
    received_at: Option<Loose<'a>>,
}

/// The fields of `FIELDS` in an event object, `metadata` when it is an object.
#[derive(Default)]
struct Event<'a> {
    fields: [Option<Loose<'a>>; FIELDS.len()],
    metadata: Option<BTreeMap<Cow<'a, str>, Loose<'a>>>,
}

impl<'a> Event<'a> {
    fn get(&self, k: &str) -> Option<&Loose<'a>> {
        FIELDS.iter().position(|f| *f == k).and_then(|i| self.fields[i].as_ref())
    }
    fn text(&self, k: &str) -> Option<&str> {
        self.get(k).and_then(Loose::as_str)
    }
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an envelope object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut env = Envelope { event: None, received_at: None };
                while let Some(Key(k)) = map.next_key::<Key>()? {
                    match k.as_ref() {
                        "event" => env.event = map.next_value::<EventOrNot>()?.0,
                        "received_at" => env.received_at = Some(map.next_value::<Loose>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

/// The visitor methods of every value but an object, each giving `$none`.
macro_rules! not_an_object {
    ($none:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            LooseVisitor.visit_seq(seq).map(|_| $none)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// An event object, or `None` for any other value.
struct EventOrNot<'a>(Option<Event<'a>>);

impl<'de> Deserialize<'de> for EventOrNot<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventOrNot<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut ev = Event::default();
                while let Some(Key(k)) = map.next_key::<Key>()? {
                    if k == "metadata" {
                        ev.metadata = map.next_value::<MetadataOrNot>()?.0;
                    } else if let Some(i) = FIELDS.iter().position(|f| *f == k) {
                        ev.fields[i] = Some(map.next_value::<Loose>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(EventOrNot(Some(ev)))
            }
            not_an_object!(EventOrNot(None));
        }
        d.deserialize_any(V)
    }
}

/// A `metadata` object (its values by key), or `None` for any other value.
struct MetadataOrNot<'a>(Option<BTreeMap<Cow<'a, str>, Loose<'a>>>);

impl<'de> Deserialize<'de> for MetadataOrNot<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetadataOrNot<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut m = BTreeMap::new();
                while let Some(Key(k)) = map.next_key::<Key>()? {
                    m.insert(k, map.next_value::<Loose>()?);
                }
                Ok(MetadataOrNot(Some(m)))
            }
            not_an_object!(MetadataOrNot(None));
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// received_at, workspace, actor, event_source, target, source, status, read_only, type, fts.
    type Expected = (i64, String, String, String, Option<String>, Option<String>, Option<String>, bool, i64, String);

    /// The columns exactly as the `serde_json::Value` reading gives them.
    fn by_value(origin: Origin, envelope: &str) -> Result<Expected, String> {
        let env: serde_json::Value = serde_json::from_str(envelope).map_err(|_| "the envelope is not JSON")?;
        let received_at = env["received_at"]
            .as_str()
            .and_then(crate::time::parse_rfc3339)
            .map(|(us, _)| us)
            .ok_or("the envelope has no receive time")?;
        let ev = env.get("event").and_then(serde_json::Value::as_object).ok_or("the envelope has no event")?;
        let text = |k: &str| ev.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
        let h2o = origin != Origin::Pangea;
        Ok((
            received_at,
            text("tenant_id").unwrap_or_default(),
            text("actor").unwrap_or_default(),
            if h2o { text("event_source").unwrap_or_default() } else { "pangea".into() },
            if h2o { Some(text("target").unwrap_or_default()) } else { text("target") },
            if h2o { Some(text("source").unwrap_or_default()) } else { text("source") },
            text("status"),
            h2o && ev.get("read_only").and_then(serde_json::Value::as_bool).unwrap_or(false),
            if h2o {
                text("type").and_then(|t| EventType::from_name(&t)).unwrap_or(EventType::Unspecified) as i64
            } else {
                0
            },
            crate::event::fts_body(origin, ev),
        ))
    }

    #[test]
    fn borrowed_reading_equals_the_value_reading() {
        let at = r#""received_at":"2026-12-02T04:00:00.000001Z""#;
        let cases = [
            format!(
                r#"{{"event":{{"actor":"a"b","message":"mé","metadata":{{"z":"last","a":"first","n":5,"o":{{"x":"y"}}}},"read_only":true,"type":"EVENT_TYPE_ACTION","target":"t","event_source":"s"}},{at}}}"#
            ),
            format!(
                r#"{{"event":{{"actor":7,"status":"404","new":{{"k":"v"}},"old":"o","source":["x"],"tenant_id":"w"}},"public_key":"pk",{at},"signature":"sig"}}"#
            ),
            format!(
                r#"{{"event":{{"metadata":"not an object","metadata":{{"b":"2"}},"actor":"x","actor":"y","read_only":"yes"}},{at}}}"#
            ),
            format!(r#"{{"event":{{"metadata":{{"b":"1"}},"metadata":null,"status":null}},{at}}}"#),
            format!(r#"{{"event":"not an object",{at}}}"#),
            r#"{"event":{},"received_at":5}"#.to_string(),
            r#"{"event":{}}"#.to_string(),
            r#"[1,2]"#.to_string(),
            r#"{"event":{"#.to_string(),
        ];
        for envelope in &cases {
            for origin in [Origin::Pangea, Origin::H2o, Origin::Server] {
                let line = Line { origin, event_time: Some("2026-12-02T04:00:00Z"), envelope, workspace: None };
                let ours = columns(&line).map(|c| {
                    (
                        c.received_at,
                        c.workspace,
                        c.actor,
                        c.event_source,
                        c.target,
                        c.source,
                        c.status,
                        c.read_only,
                        c.event_type,
                        c.fts.unwrap_or_default(),
                    )
                });
                let expected = by_value(origin, envelope);
                match (&ours, &expected) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{envelope} ({origin:?})"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("{envelope} ({origin:?}): {ours:?} against {expected:?}"),
                }
            }
        }
        // The failures name the same fault.
        let line = |envelope| Line {
            origin: Origin::H2o,
            event_time: Some("2026-12-02T04:00:00Z"),
            envelope,
            workspace: None,
        };
        assert_eq!(columns(&line(r#"{"event":{}}"#)).unwrap_err(), "the envelope has no receive time");
        assert_eq!(
            columns(&line(r#"{"event":1,"received_at":"2026-12-02T04:00:00Z"}"#)).unwrap_err(),
            "the envelope has no event"
        );
        assert_eq!(columns(&line("{")).unwrap_err(), "the envelope is not JSON");
    }
}
