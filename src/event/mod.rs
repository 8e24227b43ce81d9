//! The canonical event: what both dialects map into, and the Pangea-form envelope whose
//! canonical JSON is hashed.

pub mod canonical;
pub mod system;

use serde_json::{Map, Value};
use uuid::Uuid;

/// Which API brought an event in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    H2o = 0,
    Pangea = 1,
    Server = 2,
}

impl Origin {
    pub fn from_i64(v: i64) -> Self {
        match v {
            0 => Self::H2o,
            1 => Self::Pangea,
            _ => Self::Server,
        }
    }
}

/// H2O event types; stored as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Unspecified = 0,
    Api = 1,
    System = 2,
}

impl EventType {
    pub const NAMES: [&'static str; 3] = ["TYPE_UNSPECIFIED", "TYPE_API", "TYPE_SYSTEM"];
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "TYPE_UNSPECIFIED" => Some(Self::Unspecified),
            "TYPE_API" => Some(Self::Api),
            "TYPE_SYSTEM" => Some(Self::System),
            _ => None,
        }
    }
    pub fn from_i64(v: i64) -> Self {
        match v {
            1 => Self::Api,
            2 => Self::System,
            _ => Self::Unspecified,
        }
    }
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A validated event on its way to the writer. The writer assigns `received_at`, builds the
/// envelope `{event, received_at, signature?, public_key?}` and hashes its canonical JSON.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub uid: Uuid,
    pub origin: Origin,
    pub workspace: String,
    pub actor: String,
    pub action: String,
    pub event_source: String,
    pub target: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub status_code: Option<i64>,
    pub read_only: bool,
    pub event_type: EventType,
    /// Microseconds; `None` means "use received_at".
    pub event_time: Option<i64>,
    /// Text indexed for free-text search.
    pub fts_body: String,
    /// The Pangea-form event object, stored verbatim inside the envelope.
    pub event: Map<String, Value>,
    pub signature: Option<String>,
    pub public_key: Option<String>,
}

/// A custom field's value as searched (`event_fields`): integers, booleans (0/1) and datetimes
/// (µs since the epoch) as integers, strings as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Int(i64),
    Text(String),
}

/// The text indexed for free-text search, from the stored event object. Ingest and the
/// retention purge both use it: contentless FTS5 rows can only be deleted with the same text.
pub fn fts_body(origin: Origin, event: &Map<String, Value>) -> String {
    let metadata = match event.get("metadata") {
        Some(Value::Object(m)) => Some(m.values().filter_map(Value::as_str)),
        _ => None,
    };
    fts_body_of(origin, |k| event.get(k).and_then(Value::as_str), metadata.into_iter().flatten())
}

/// `fts_body` from an event's string fields (`text`: the field's value where it is a string) and
/// the string values of its `metadata` object in key order, for a reader that did not build a
/// `serde_json::Value` (`replication::columns`).
pub fn fts_body_of<'a>(
    origin: Origin,
    text: impl Fn(&str) -> Option<&'a str>,
    metadata: impl Iterator<Item = &'a str>,
) -> String {
    let mut parts: Vec<&str> = Vec::new();
    match origin {
        Origin::Pangea => {
            parts.extend(
                ["message", "actor", "action", "target", "source", "status", "new", "old"]
                    .map(text)
                    .into_iter()
                    .flatten(),
            );
        }
        Origin::H2o | Origin::Server => {
            parts.extend(["message", "actor", "action", "target", "event_source"].map(|k| text(k).unwrap_or("")));
            parts.extend(metadata);
        }
    }
    parts.join(" ")
}

/// The envelope's canonical JSON up to its receive time (`{"event":…,"public_key":…,"received_at":`)
/// and SHA-256 absorbed over those bytes. The envelope is `{event, public_key?, received_at,
/// signature?}` in canonical JSON (keys in code-point order), written from its parts; its bytes
/// are what is stored and hashed. It is built where an event is submitted, on the
/// caller's thread (`store::writer::WriterHandle::append`), so the one writer thread only appends
/// the receive time and the signature and finishes the hash.
#[derive(Clone)]
pub struct EnvelopeHead {
    text: String,
    sha: sha2::Sha256,
}

/// Bytes of a quoted receive time and the closing brace: `"2026-12-02T04:00:00.000001Z"}`.
const RECEIVED_AT_LEN: usize = 30;

impl EnvelopeHead {
    pub fn new(ev: &NewEvent) -> Self {
        use canonical::{write_canonical_map, write_string};
        use sha2::Digest;
        let mut text = String::with_capacity(768);
        text.push_str("{\"event\":");
        write_canonical_map(&ev.event, &mut text);
        if let Some(k) = &ev.public_key {
            text.push_str(",\"public_key\":");
            write_string(k, &mut text);
        }
        text.push_str(",\"received_at\":");
        let sha = sha2::Sha256::new_with_prefix(text.as_bytes());
        // Room for the tail (`finish`), so the writer thread does not reallocate and copy.
        text.reserve(RECEIVED_AT_LEN + ev.signature.as_ref().map_or(0, |s| s.len() + 16));
        Self { text, sha }
    }

    /// Whether `envelope` (a stored one) has this head's event and public key and `signature`:
    /// the same canonical bytes, whatever its receive time.
    pub fn matches(&self, envelope: &str, signature: Option<&str>) -> bool {
        let Some(rest) = envelope.strip_prefix(self.text.as_str()) else { return false };
        // The receive time is a JSON string without escapes; what follows it is the tail.
        let Some(tail) = rest.strip_prefix('"').and_then(|r| r.find('"').map(|i| &r[i + 1..])) else {
            return false;
        };
        let mut expected = String::new();
        if let Some(s) = signature {
            expected.push_str(",\"signature\":");
            canonical::write_string(s, &mut expected);
        }
        expected.push('}');
        tail == expected
    }

    /// Whether two heads have the same event and public key.
    pub fn same_event(&self, other: &EnvelopeHead) -> bool {
        self.text == other.text
    }

    /// The whole envelope received at `received_at`, with the event's `signature`, and its SHA-256.
    pub fn finish(self, received_at: &str, signature: Option<&str>) -> (String, [u8; 32]) {
        use canonical::write_string;
        use sha2::Digest;
        let Self { mut text, mut sha } = self;
        let head = text.len();
        write_string(received_at, &mut text);
        if let Some(s) = signature {
            text.push_str(",\"signature\":");
            write_string(s, &mut text);
        }
        text.push('}');
        sha.update(&text.as_bytes()[head..]);
        (text, sha.finalize().into())
    }
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub uid: Uuid,
    pub origin: Origin,
    pub received_at: i64,
    pub buffer: u64,
    pub hash: [u8; 32],
    pub envelope: String,
}

impl StoredEvent {
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
    pub fn envelope_value(&self) -> Value {
        serde_json::from_str(&self.envelope).unwrap_or(Value::Null)
    }
}

/// Private and special-purpose addresses redacted to `private` (H2O §7.5).
pub fn is_private_ip(s: &str) -> bool {
    use std::net::IpAddr;
    let Ok(ip) = s.parse::<IpAddr>() else { return false };
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback() || (seg0 & 0xfe00) == 0xfc00 || (seg0 & 0xffc0) == 0xfe80
        }
    }
}

fn private_v4(ip: std::net::Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 10
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || o[0] == 127
        || (o[0] == 169 && o[1] == 254)
        || (o[0] == 100 && (64..128).contains(&o[1]))
}

/// First `workspaces/<id>` pair among the `/`-separated segments of a resource name.
pub fn workspace_from_resource(resource: &str) -> String {
    let segs: Vec<&str> = resource.split('/').collect();
    for w in segs.windows(2) {
        if w[0] == "workspaces" && !w[1].is_empty() {
            return format!("workspaces/{}", w[1]);
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope written from its parts is byte for byte the canonical JSON of the envelope
    /// value, with and without the optional signature fields, for awkward keys and values.
    #[test]
    fn canonical_envelope_equals_the_canonical_value() {
        let event: Map<String, Value> = serde_json::from_str(
            r#"{"zeta": 1.5, "message": "h\u00e9llo \"q\" \\ \n\u0001", "é": [1, {"b": null, "a": true}],
                "Actor": "x", "new": {"k": 1e300, "j": -0.0}, "timestamp": "2025-01-01T00:00:00Z", "": ""}"#,
        )
        .unwrap();
        for (signature, public_key) in [(None, None), (Some("c2ln"), Some("{\"key\": \"k\"}")), (Some("s"), None)] {
            let ev = NewEvent {
                uid: Uuid::nil(),
                origin: Origin::Pangea,
                workspace: String::new(),
                actor: String::new(),
                action: String::new(),
                event_source: String::new(),
                target: None,
                source: None,
                status: None,
                status_code: None,
                read_only: false,
                event_type: EventType::Unspecified,
                event_time: None,
                fts_body: String::new(),
                event: event.clone(),
                signature: signature.map(str::to_string),
                public_key: public_key.map(str::to_string),
            };
            let mut env = Map::new();
            env.insert("event".into(), Value::Object(event.clone()));
            env.insert("received_at".into(), Value::String("2026-12-02T04:00:00.000001Z".into()));
            if let Some(s) = signature {
                env.insert("signature".into(), Value::String(s.into()));
            }
            if let Some(k) = public_key {
                env.insert("public_key".into(), Value::String(k.into()));
            }
            let expected = canonical::to_canonical_string(&Value::Object(env));
            let canonical_envelope =
                |ev: &NewEvent, at: &str| EnvelopeHead::new(ev).finish(at, ev.signature.as_deref()).0;
            let (text, hash) = EnvelopeHead::new(&ev).finish("2026-12-02T04:00:00.000001Z", signature);
            assert_eq!(text, expected);
            let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(expected.as_bytes()).into();
            assert_eq!(hash, digest, "the hash absorbed in two parts is the hash of the whole text");
            let head = EnvelopeHead::new(&ev);
            assert!(head.matches(&expected, signature));
            assert!(head.matches(&canonical_envelope(&ev, "2027-01-01T00:00:00.000000Z"), signature));
            assert!(!head.matches(&expected, Some("other")));
            let mut changed = ev.clone();
            changed.event.insert("zeta".into(), Value::from(2));
            assert!(!head.matches(&canonical_envelope(&changed, "2026-12-02T04:00:00.000001Z"), signature));
            assert!(!head.same_event(&EnvelopeHead::new(&changed)));
            assert!(head.same_event(&EnvelopeHead::new(&ev)));
        }
    }

    #[test]
    fn redacts_private_ranges_only() {
        for ip in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:10.1.2.3",
        ] {
            assert!(is_private_ip(ip), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "not-an-ip", ""] {
            assert!(!is_private_ip(ip), "{ip}");
        }
    }

    #[test]
    fn derives_workspace() {
        assert_eq!(workspace_from_resource("workspaces/w1/daiEngine/e1"), "workspaces/w1");
        assert_eq!(workspace_from_resource("//engine-manager/workspaces/w1/daiEngines/e1"), "workspaces/w1");
        assert_eq!(workspace_from_resource("//audittrail"), "");
        assert_eq!(workspace_from_resource("workspaces/"), "");
    }
}
