//! Pangea events of a config on their way to the writer: the canonical event from an event
//! checked against the config's schema, client public keys in canonical form, and the server's
//! signature for configs with `signing = server`.

use serde_json::Value;
use uuid::Uuid;

use super::schema::{Checked, Problem};
use super::signing::EventSigner;
use super::{AuditConfig, Signing};
use crate::event::canonical::{parse_strict, to_canonical_string};
use crate::event::{EventType, NewEvent, Origin};
use crate::store::writer::FieldRows;

/// A client's `public_key` as stored: a JSON object in canonical form (sorted keys, as Pangea
/// stores it whatever order the client sent, e.g. the Node SDK's `{"key":…,"algorithm":…}`);
/// anything else (a raw base64 key) verbatim.
pub fn canonical_public_key(public_key: &str) -> String {
    match parse_strict(public_key.as_bytes(), 16) {
        Ok(v @ Value::Object(_)) => to_canonical_string(&v),
        _ => public_key.to_string(),
    }
}

/// Client signatures are refused in server-signing configs (the envelope has one signature, and
/// it is the server's there); `at` is the JSON pointer of the log item.
pub fn check_client_signature(
    config: &AuditConfig,
    signature: Option<&str>,
    public_key: Option<&str>,
    at: &str,
) -> Result<(), Problem> {
    if config.signing == Signing::Server && (signature.is_some() || public_key.is_some()) {
        let field = if signature.is_some() { "signature" } else { "public_key" };
        return Err(Problem {
            code: "MutuallyExclusive",
            detail:
                "this config signs events on the server (vault signing); send events without signature and public_key"
                    .into(),
            source: format!("{at}/{field}"),
        });
    }
    Ok(())
}

/// The canonical event of a checked Pangea event of `config`, with its custom-field rows.
pub fn new_event(
    config: &AuditConfig,
    checked: Checked,
    signature: Option<String>,
    public_key: Option<String>,
) -> (NewEvent, FieldRows) {
    let Checked { event, rows, actor, action, tenant, target, source, status, event_time } = checked;
    let fts_body = config.fts_text(&event);
    let ev = NewEvent {
        // Time-ordered ids keep the unique index append-only for Pangea events.
        uid: Uuid::now_v7(),
        origin: Origin::Pangea,
        workspace: tenant.unwrap_or_default(),
        actor: actor.unwrap_or_default(),
        action: action.unwrap_or_default(),
        event_source: "pangea".into(),
        target,
        source,
        status_code: status.as_deref().and_then(|s| s.parse::<i32>().ok()).map(i64::from),
        status,
        read_only: false,
        event_type: EventType::Unspecified,
        event_time,
        fts_body,
        event,
        signature,
        public_key: public_key.as_deref().map(canonical_public_key),
    };
    (ev, rows)
}

/// Signs events with the config's current event-signing key (CPU work: run it off the async
/// workers, e.g. in `web::block`, for a batch).
pub fn sign_all(signer: &EventSigner, events: &mut [(NewEvent, FieldRows)]) {
    for (ev, _) in events {
        let (signature, public_key) = signer.sign(&ev.event);
        ev.signature = Some(signature);
        ev.public_key = Some(public_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_public_keys_are_stored_in_canonical_form() {
        let node = r#"{"key":"-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n","algorithm":"ED25519"}"#;
        assert_eq!(
            canonical_public_key(node),
            r#"{"algorithm":"ED25519","key":"-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n"}"#
        );
        let python = r#"{"algorithm":"ED25519","extra":"ü","key":"k"}"#;
        assert_eq!(canonical_public_key(python), python, "the Python SDK's form is already canonical");
        let spaced = "{\"key\": \"k\", \"algorithm\": \"ED25519\"}";
        assert_eq!(canonical_public_key(spaced), r#"{"algorithm":"ED25519","key":"k"}"#);
        for verbatim in ["lvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=", "[1,2]", "\"k\"", "{bad", ""] {
            assert_eq!(canonical_public_key(verbatim), verbatim);
        }
    }
}
