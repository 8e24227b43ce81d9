//! The H2O event shape, written as a string: search pages, `create` and `batchCreate` answers.

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::event::Origin;
use crate::time::format_protojson;

/// A JSON object written field by field, values as serde_json writes them.
struct ObjectWriter {
    buf: Vec<u8>,
    first: bool,
}

impl ObjectWriter {
    fn new() -> Self {
        Self { buf: Vec::with_capacity(1024), first: true }
    }

    fn key(&mut self, key: &str) {
        self.buf.push(if self.first { b'{' } else { b',' });
        self.first = false;
        let _ = serde_json::to_writer(&mut self.buf, key);
        self.buf.push(b':');
    }

    fn field<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.key(key);
        // Writing strings, booleans, numbers and maps with string keys into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, value);
    }
}

/// An event's H2O JSON in two parts around its receive time, which a new event has only once it
/// is stored: `{"action":…,"receiveTime":` and `,"requestParameters":…}`. Keys in code-point order
/// (as serde_json writes a map). The one renderer of the H2O shape: search pages, `create` and
/// `batchCreate` (which renders before the writer takes the event) all use it.
pub(super) struct H2oJson {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl H2oJson {
    pub(super) fn finish(self, received_at: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        let _ = serde_json::to_writer(&mut *out, &format_protojson(received_at, 0));
        out.extend_from_slice(&self.tail);
    }
}

/// The event time as the H2O shape shows it: an H2O event's own text (its precision kept), a
/// Pangea event's time in microseconds.
pub(super) fn h2o_event_time(ev: &Map<String, Value>, origin: Origin, event_time: i64) -> String {
    match origin {
        Origin::Pangea => format_protojson(event_time, 0),
        _ => ev.get("timestamp").and_then(Value::as_str).unwrap_or("").to_string(),
    }
}

/// Renders a stored event object (the envelope's `event`) in the H2O shape (architecture.md's
/// mapping for Pangea events).
pub(super) fn h2o_json(
    ev: &Map<String, Value>,
    origin: Origin,
    uid: Uuid,
    event_time: i64,
    workspace: &str,
) -> H2oJson {
    let text = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
    let empty = Value::Object(Map::new());
    let mut o = ObjectWriter::new();
    let pangea = origin == Origin::Pangea;
    let status_text = ev.get("status").and_then(Value::as_str);
    o.field("action", text("action"));
    o.field("eventSource", if pangea { "pangea" } else { text("event_source") });
    o.field("eventTime", &h2o_event_time(ev, origin, event_time));
    o.field("loginPrincipal", "");
    if pangea {
        let mut metadata = Map::new();
        for k in ["message", "new", "old"] {
            if let Some(v @ Value::String(_)) = ev.get(k) {
                metadata.insert(k.into(), v.clone());
            }
        }
        if let Some(st) = status_text.filter(|st| st.parse::<i32>().is_err()) {
            metadata.insert("status".into(), json!(st));
        }
        o.field("metadata", &metadata);
        o.field("name", &format!("events/{uid}"));
    } else {
        o.field("metadata", ev.get("metadata").unwrap_or(&empty));
        o.field("name", &format!("events/{}", text("event_id")));
    }
    o.field("principal", text("actor"));
    o.field("readOnly", &(!pangea && ev.get("read_only").and_then(Value::as_bool).unwrap_or(false)));
    o.key("receiveTime");
    let head = std::mem::take(&mut o.buf);
    o.field("requestParameters", if pangea { &empty } else { ev.get("request_parameters").unwrap_or(&empty) });
    o.field("resource", text("target"));
    o.field("sourceIpAddress", text("source"));
    if pangea {
        if let Some(code) = status_text.and_then(|c| c.parse::<i32>().ok()) {
            o.field("status", &json!({"code": code, "message": ""}));
        }
        o.field("type", "TYPE_UNSPECIFIED");
        o.field("userAgent", "");
    } else {
        if let Some(code) = status_text.and_then(|c| c.parse::<i64>().ok()) {
            o.field("status", &json!({"code": code, "message": text("status_message")}));
        }
        o.field("type", ev.get("type").and_then(Value::as_str).unwrap_or("TYPE_UNSPECIFIED"));
        o.field("userAgent", text("user_agent"));
    }
    o.field("workspace", workspace);
    o.buf.push(b'}');
    H2oJson { head, tail: o.buf }
}

/// The event object of a stored envelope.
pub(super) fn envelope_event(envelope: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(envelope) {
        Ok(Value::Object(mut env)) => match env.remove("event") {
            Some(Value::Object(ev)) => ev,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

pub(super) fn json_response(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(ev: &Value, origin: Origin, event_time: i64) -> String {
        let uid = Uuid::parse_str("b096430b-c7a8-47f2-a129-d9ae58cf454f").unwrap();
        let mut out = Vec::new();
        h2o_json(ev.as_object().unwrap(), origin, uid, event_time, "workspaces/w1")
            .finish(1_764_633_600_123_456, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The H2O shape, written field by field, is byte for byte serde_json's writing of the
    /// expected object (keys sorted), for both origins, with and without a status.
    #[test]
    fn h2o_json_is_the_h2o_shape() {
        let h2o = json!({"action": "a \"q\"", "actor": "users/é", "event_id": "b096430b-c7a8-47f2-a129-d9ae58cf454f",
            "event_source": "svc", "message": "m", "metadata": {"k": "v", "message": "m"}, "read_only": true,
            "request_parameters": {"p": "1"}, "source": "private", "status": "7", "status_message": "nope",
            "target": "//x/workspaces/w1", "tenant_id": "workspaces/w1", "timestamp": "2025-01-01T00:00:00.123456789Z",
            "type": "TYPE_API", "user_agent": "ua\n"});
        let expected = json!({"action": "a \"q\"", "eventSource": "svc", "eventTime": "2025-01-01T00:00:00.123456789Z",
            "loginPrincipal": "", "metadata": {"k": "v", "message": "m"}, "name": "events/b096430b-c7a8-47f2-a129-d9ae58cf454f",
            "principal": "users/é", "readOnly": true, "receiveTime": "2025-12-02T00:00:00.123456Z",
            "requestParameters": {"p": "1"}, "resource": "//x/workspaces/w1", "sourceIpAddress": "private",
            "status": {"code": 7, "message": "nope"}, "type": "TYPE_API", "userAgent": "ua\n", "workspace": "workspaces/w1"});
        assert_eq!(rendered(&h2o, Origin::H2o, 0), expected.to_string());
        let mut no_status = h2o.clone();
        no_status.as_object_mut().unwrap().remove("status");
        let mut expected_no_status = expected.clone();
        expected_no_status.as_object_mut().unwrap().remove("status");
        assert_eq!(rendered(&no_status, Origin::H2o, 0), expected_no_status.to_string());

        let pangea = json!({"action": "login", "actor": "al", "message": "hi", "new": {"x": 1}, "old": "was",
            "source": "1.2.3.4", "status": "failed", "target": "t", "tenant_id": "workspaces/w1",
            "timestamp": "2025-01-01T00:00:00Z"});
        let expected = json!({"action": "login", "eventSource": "pangea", "eventTime": "2025-01-01T00:00:00.000001Z",
            "loginPrincipal": "", "metadata": {"message": "hi", "old": "was", "status": "failed"},
            "name": "events/b096430b-c7a8-47f2-a129-d9ae58cf454f", "principal": "al", "readOnly": false,
            "receiveTime": "2025-12-02T00:00:00.123456Z", "requestParameters": {}, "resource": "t",
            "sourceIpAddress": "1.2.3.4", "type": "TYPE_UNSPECIFIED", "userAgent": "", "workspace": "workspaces/w1"});
        assert_eq!(rendered(&pangea, Origin::Pangea, 1_735_689_600_000_001), expected.to_string());
        let mut numeric = pangea.clone();
        numeric["status"] = json!("404");
        let mut expected_numeric = expected.clone();
        expected_numeric["metadata"].as_object_mut().unwrap().remove("status");
        expected_numeric["status"] = json!({"code": 404, "message": ""});
        assert_eq!(rendered(&numeric, Origin::Pangea, 1_735_689_600_000_001), expected_numeric.to_string());
    }
}
