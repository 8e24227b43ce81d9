//! `POST /v1/events:search`: the filter, page tokens (HMAC'd, bound to filter, key and frozen
//! end) and the self-audit of first pages.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::{H2oError, H2oResult, require_json};
use super::ingest::{SINGLE_LIMIT, bad_type, opt_str, parse_body, string_map, truncate};
use super::render::{envelope_event, h2o_event_time, h2o_json, json_response};
use super::schema::{H2oSearchRequest, H2oSearchResponse, H2oStatus};
use crate::event::EventType;
use crate::event::canonical::to_canonical_string;
use crate::event::system;
use crate::http::apidoc::TAG_H2O;
use crate::http::state::{State, with_reader};
use crate::keys::Principal;
use crate::search::re2;
use crate::store::search::{H2oField, H2oQuery, h2o_search};
use crate::time::{format_protojson, parse_rfc3339};

const DEFAULT_START: &str = "2025-07-01T00:00:00Z";
const TOKEN_TTL_US: i64 = 24 * 3600 * 1_000_000;

const STRING_FILTERS: [(&str, &str, H2oField); 6] = [
    ("eventSource", "event_source", H2oField::EventSource),
    ("resource", "resource", H2oField::Resource),
    ("principal", "principal", H2oField::Principal),
    ("sourceIpAddress", "source_ip_address", H2oField::SourceIp),
    ("workspace", "workspace", H2oField::Workspace),
    ("action", "action", H2oField::Action),
];

struct ParsedSearch {
    query: H2oQuery,
    start: (i64, u32),
    page_size: usize,
    filter_hash: [u8; 16],
    normalized: Value,
}

fn filter_time(f: &Map<String, Value>, key: &str, field: &str) -> Result<Option<(i64, u32)>, H2oError> {
    let err = || H2oError::invalid(format!("filter.{field} must be an RFC 3339 timestamp with a UTC offset"));
    match f.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(s).map(Some).ok_or_else(err),
        Some(_) => Err(err()),
    }
}

fn check_regex(pattern: &str, field: &str) -> Result<(), H2oError> {
    re2::compile(pattern).map(|_| ()).map_err(|e| {
        H2oError::invalid(format!("filter.{field} is not a valid RE2 pattern: {}", truncate(&e.reason, 200)))
    })
}

fn type_list(f: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<i64>, H2oError> {
    let err = || H2oError::invalid(format!("filter.{field} must contain only TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM"));
    match f.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().and_then(EventType::from_name).map(|t| t as i64).ok_or_else(err)).collect()
        }
        Some(_) => Err(err()),
    }
}

fn parse_search(value: &Value, principal: &Principal) -> Result<ParsedSearch, H2oError> {
    let Value::Object(body) = value else { return Err(bad_type("body", "an object")) };
    let empty = Map::new();
    let filter = match body.get("filter") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(f)) => f,
        Some(_) => return Err(bad_type("filter", "an object")),
    };
    let page_size = match body.get("pageSize") {
        None | Some(Value::Null) => 50,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) if n < 0 => return Err(H2oError::invalid("page_size must not be negative")),
            Some(0) => 50,
            Some(n) => n.min(1000) as usize,
            None => return Err(bad_type("page_size", "an integer")),
        },
        Some(_) => return Err(bad_type("page_size", "an integer")),
    };
    let mut q = H2oQuery { limit: page_size + 1, ..Default::default() };
    let start = filter_time(filter, "startEventTime", "start_event_time")?
        .unwrap_or_else(|| parse_rfc3339(DEFAULT_START).unwrap_or((0, 0)));
    let end = filter_time(filter, "endEventTime", "end_event_time")?;
    q.start_us = start.0;
    q.end_us = end.map(|e| e.0).unwrap_or(i64::MAX);
    for (wire, field, f) in STRING_FILTERS {
        if let Some(v) = opt_str(filter, &format!("{wire}Exact"), &format!("filter.{field}_exact"))? {
            q.exact.push((f, v.to_string()));
        }
        if let Some(v) = opt_str(filter, &format!("{wire}Regex"), &format!("filter.{field}_regex"))? {
            check_regex(v, &format!("{field}_regex"))?;
            q.regex.push((f, v.to_string()));
        }
    }
    q.read_only = match filter.get("readOnly") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad_type("filter.read_only", "a boolean")),
    };
    if let Some(re) = opt_str(filter, "statusCodeRegex", "filter.status_code_regex")? {
        check_regex(re, "status_code_regex")?;
        q.status_code_regex = Some(re.to_string());
    }
    for (k, v) in string_map(filter, "metadataExact", "filter.metadata_exact", false)? {
        q.metadata_exact.push((k, v.as_str().unwrap_or_default().to_string()));
    }
    for (k, v) in string_map(filter, "metadataRegex", "filter.metadata_regex", false)? {
        let pattern = v.as_str().unwrap_or_default().to_string();
        check_regex(&pattern, &format!("metadata_regex[\"{}\"]", truncate(&k, 64)))?;
        q.metadata_regex.push((k, pattern));
    }
    q.include_types = type_list(filter, "includeTypes", "include_types")?;
    q.exclude_types = type_list(filter, "excludeTypes", "exclude_types")?;
    if principal.is_limited() {
        q.allowed_workspaces = Some(principal.workspaces.clone());
    }
    // The normalized filter: null, empty maps and empty lists dropped.
    let mut normalized = Map::new();
    for (k, v) in filter {
        let keep = match v {
            Value::Null => false,
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if keep {
            normalized.insert(k.clone(), v.clone());
        }
    }
    let normalized = Value::Object(normalized);
    let digest = Sha256::digest(format!("{}|{page_size}", to_canonical_string(&normalized)).as_bytes());
    let mut filter_hash = [0u8; 16];
    filter_hash.copy_from_slice(&digest[..16]);
    Ok(ParsedSearch { query: q, start, page_size, filter_hash, normalized })
}

/// Page token: version | filter hash | frozen end | last (event_time, seq) | issued | key id, HMAC'd.
struct PageToken {
    filter_hash: [u8; 16],
    end_us: i64,
    last_time: i64,
    last_seq: i64,
    issued_us: i64,
    key_id: [u8; 8],
}

impl PageToken {
    fn encode(&self, key: &[u8; 32]) -> String {
        let mut p = vec![1u8];
        p.extend_from_slice(&self.filter_hash);
        for v in [self.end_us, self.last_time, self.last_seq, self.issued_us] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        p.extend_from_slice(&self.key_id);
        let tag = mac(key, &p);
        p.extend_from_slice(&tag);
        B64URL.encode(p)
    }

    fn decode(token: &str, key: &[u8; 32]) -> Option<Self> {
        let raw = B64URL.decode(token).ok()?;
        if raw.len() != 1 + 16 + 32 + 8 + 16 || raw[0] != 1 {
            return None;
        }
        let (payload, tag) = raw.split_at(raw.len() - 16);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&mac(key, payload)[..], tag)) {
            return None;
        }
        let int = |i: usize| i64::from_be_bytes(payload[17 + i * 8..25 + i * 8].try_into().unwrap_or([0; 8]));
        let mut filter_hash = [0u8; 16];
        filter_hash.copy_from_slice(&payload[1..17]);
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&payload[49..57]);
        Some(Self { filter_hash, end_us: int(0), last_time: int(1), last_seq: int(2), issued_us: int(3), key_id })
    }
}

fn key_id_bytes(id: &str) -> [u8; 8] {
    let d = Sha256::digest(id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    b
}

fn mac(key: &[u8; 32], payload: &[u8]) -> [u8; 16] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload);
    let out = m.finalize().into_bytes();
    let mut t = [0u8; 16];
    t.copy_from_slice(&out[..16]);
    t
}

/// Search events
///
/// Newest first (event time, then ingestion order). The end of the window is frozen at the first
/// page; `nextPageToken` is bound to the filter, page size and key, and is `""` on the last page.
/// A key limited to workspaces only ever sees those workspaces.
#[utoipa::path(
    post,
    path = "/v1/events:search",
    tag = TAG_H2O,
    operation_id = "h2o_search_events",
    request_body(content = H2oSearchRequest),
    responses(
        (status = 200, description = "One page of events", body = H2oSearchResponse),
        (status = 400, description = "Invalid filter, regex, time range or page token (code 3)", body = H2oStatus),
        (status = 401, description = "Missing or invalid key (code 16)", body = H2oStatus),
        (status = 403, description = "The key may not search (code 7)", body = H2oStatus),
        (status = 413, description = "Body over 1 MiB (code 3)", body = H2oStatus),
        (status = 415, description = "Body not sent as `application/json` (code 3)", body = H2oStatus),
        (status = 503, description = "Storage unavailable or search deadline exceeded (code 14)", body = H2oStatus),
    ),
    security(("api_key" = [])),
)]
pub(super) async fn search_events(state: State, req: HttpRequest, payload: web::Payload) -> H2oResult {
    let (principal, body) = require_json(&state, &req, payload, false, SINGLE_LIMIT).await?;
    let value = parse_body(&body)?;
    let mut parsed = parse_search(&value, &principal)?;
    let now = state.ledger.now_micros();
    let token = match value.get("pageToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => {
            let tok = PageToken::decode(t, &state.token_key)
                .filter(|tok| now - tok.issued_us < TOKEN_TTL_US && tok.key_id == key_id_bytes(&principal.key_id))
                .ok_or_else(|| H2oError::invalid("invalid page_token"))?;
            if tok.filter_hash != parsed.filter_hash {
                return Err(H2oError::invalid("page_token does not match the search request"));
            }
            Some(tok)
        }
        Some(_) => return Err(bad_type("page_token", "a string")),
    };
    // Freeze the end of the window at the first page.
    let end_us = match &token {
        Some(t) => t.end_us,
        None => parsed.query.end_us.min(now),
    };
    parsed.query.end_us = end_us;
    if parsed.query.start_us >= end_us {
        return Err(H2oError::invalid("filter.start_event_time must be before filter.end_event_time"));
    }
    parsed.query.after = token.as_ref().map(|t| (t.last_time, t.last_seq));
    let query = parsed.query.clone();
    let mut rows =
        with_reader(&state, move |conn| h2o_search(conn, &query)).await.map_err(|()| H2oError::unavailable())?;
    let more = rows.len() > parsed.page_size;
    rows.truncate(parsed.page_size);
    let mut body = Vec::with_capacity(1024 * (rows.len() + 1));
    body.extend_from_slice(b"{\"events\":[");
    let mut last_time = String::new();
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let ev = envelope_event(&row.envelope);
        h2o_json(&ev, row.origin, row.uid, row.event_time, &row.workspace).finish(row.received_at, &mut body);
        if i + 1 == rows.len() {
            last_time = h2o_event_time(&ev, row.origin, row.event_time);
        }
    }
    let (next, until) = match (more, rows.last()) {
        (true, Some(last)) => {
            let tok = PageToken {
                filter_hash: parsed.filter_hash,
                end_us,
                last_time: last.event_time,
                last_seq: last.seq,
                issued_us: token.as_ref().map(|t| t.issued_us).unwrap_or(now),
                key_id: key_id_bytes(&principal.key_id),
            };
            (tok.encode(&state.token_key), last_time)
        }
        _ => (String::new(), format_protojson(parsed.start.0, parsed.start.1)),
    };
    // A read-only trail (no root-signing key) cannot log it.
    if token.is_none() && state.config.self_audit && state.ledger.can_sign() {
        self_audit(&state, &req, &principal, &parsed.normalized);
    }
    body.extend_from_slice(b"],\"nextPageToken\":");
    let _ = serde_json::to_writer(&mut body, &next);
    body.extend_from_slice(b",\"searchedUntilTime\":");
    let _ = serde_json::to_writer(&mut body, &until);
    body.push(b'}');
    Ok(json_response(body))
}

/// Records one event per first-page search, asynchronously (H2O §9.4).
fn self_audit(state: &State, req: &HttpRequest, principal: &Principal, filter: &Value) {
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let ua = req.headers().get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or("");
    let filter = to_canonical_string(filter);
    let Some(ev) = system::search_audit(&principal.key_id, peer, ua, filter, state.config.redact_private_ips) else {
        return;
    };
    let writer = state.writer.clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = writer.append(vec![ev]).await {
            tracing::warn!(error = %e, "self-audit event not recorded");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_token_round_trip_and_tamper() {
        let key = [3u8; 32];
        let t = PageToken { filter_hash: [1; 16], end_us: 5, last_time: 4, last_seq: 3, issued_us: 2, key_id: [9; 8] };
        let enc = t.encode(&key);
        let d = PageToken::decode(&enc, &key).unwrap();
        assert_eq!((d.end_us, d.last_time, d.last_seq, d.issued_us), (5, 4, 3, 2));
        assert!(PageToken::decode(&enc, &[4u8; 32]).is_none());
        let mut raw = B64URL.decode(&enc).unwrap();
        raw[20] ^= 1;
        assert!(PageToken::decode(&B64URL.encode(raw), &key).is_none());
        assert!(PageToken::decode("garbage", &key).is_none());
    }
}
