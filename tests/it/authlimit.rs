//! Failed-authentication throttling (reliability.md §5 E-401): per peer address and per key id,
//! 429 with `Retry-After` in each dialect's error shape, recovery after the refill, valid keys
//! from other addresses unaffected, recently verified keys never throttled.

use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use serde_json::Value;

use crate::common::TestServer;

/// A well-formed key (valid checksum) for `key_id` with a random secret.
fn forge(key_id: Option<&str>) -> String {
    use sha2::Digest;
    let id = key_id.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_string());
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let sum = hex::encode(&sha2::Sha256::digest(format!("{id}.{secret}").as_bytes())[..3]);
    format!("tk_{id}_{secret}{sum}")
}

fn key_id(key: &str) -> &str {
    key.split('_').nth(1).unwrap()
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    body: Value,
    text: String,
}

async fn send(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    method: &str,
    path: &str,
    peer: &str,
    key: Option<&str>,
) -> Reply {
    let mut req = match method {
        "GET" => test::TestRequest::get(),
        _ => test::TestRequest::post(),
    }
    .uri(path)
    .peer_addr(peer.parse().unwrap());
    if path == "/oauth/token" {
        req = req
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!("grant_type=refresh_token&refresh_token={}", key.unwrap_or("")));
    } else {
        req = req.insert_header(("content-type", "application/json")).set_payload("{}");
        if let Some(k) = key {
            req = req.insert_header(("authorization", format!("Bearer {k}")));
        }
    }
    let resp = test::call_service(app, req.to_request()).await;
    let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (retry_after, content_type) = (header("retry-after"), header("content-type").unwrap_or_default());
    let status = resp.status().as_u16();
    let bytes = test::read_body(resp).await;
    Reply {
        status,
        retry_after,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn rate_limited_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("trailkeep_auth_rate_limited_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

const H2O: (&str, &str) = ("POST", "/v1/events:search");
const PANGEA: (&str, &str) = ("POST", "/pangea/v1/search");
const UI: (&str, &str) = ("GET", "/api/v1/whoami");

// Refill periods are long (10 s) where a test relies on a block lasting, and short where it
// waits for the refill, so that a slow machine cannot change the outcome.

#[actix_web::test]
async fn failed_auth_is_throttled_per_address() {
    trailkeep::http::observe::init_metrics();
    let s = TestServer::with_config(|c| {
        c.auth_fail_burst = 3;
        c.auth_fail_per_sec = 0.1;
    });
    let app = s.app().await;
    let searcher = s.key(&["search"], &[]);
    let metrics_before = send(&app, "GET", "/metrics", "192.0.2.99:1", Some(&s.admin)).await;
    assert_eq!(metrics_before.status, 200);
    let attacker = "192.0.2.10:40000";
    // The burst: plain 401s, malformed and well-formed unknown keys alike.
    for bad in ["not-a-key".to_string(), forge(None), forge(None)] {
        let r = send(&app, H2O.0, H2O.1, attacker, Some(&bad)).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // Over the limit: 429 with Retry-After in every dialect's own error shape.
    let r = send(&app, H2O.0, H2O.1, attacker, Some(&forge(None))).await;
    assert_eq!((r.status, r.retry_after.as_deref()), (429, Some("10")), "{}", r.text);
    assert_eq!(r.body, serde_json::json!({"code": 8, "message": "rate limit exceeded", "details": []}));
    let r = send(&app, PANGEA.0, PANGEA.1, attacker, Some(&forge(None))).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.retry_after.is_some());
    assert_eq!(r.body["status"], "TooManyRequests");
    assert_eq!(r.body["result"], Value::Null);
    let r = send(&app, UI.0, UI.1, attacker, Some(&forge(None))).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.retry_after.is_some());
    assert!(r.content_type.starts_with("application/problem+json"), "{}", r.content_type);
    assert_eq!((r.body["status"].as_u64(), r.body["code"].as_str()), (Some(429), Some("rate_limited")));
    let r = send(&app, "POST", "/oauth/token", attacker, Some(&forge(None))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (429, Some("slow_down")), "{}", r.text);
    assert!(r.retry_after.is_some());
    // No credentials at all: still the plain 401 (nothing to throttle).
    assert_eq!(send(&app, H2O.0, H2O.1, attacker, None).await.status, 401);
    // A valid key not verified yet is refused from the blocked address (no argon2 work there)...
    assert_eq!(send(&app, UI.0, UI.1, attacker, Some(&searcher)).await.status, 429);
    // ...while the same key from another address is served, unaffected by these failures,
    let r = send(&app, UI.0, UI.1, "192.0.2.11:40000", Some(&searcher)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // and once verified it is accepted from the blocked address too (a cache hit proves the secret).
    assert_eq!(send(&app, UI.0, UI.1, attacker, Some(&searcher)).await.status, 200);
    // The throttled requests are counted.
    let metrics = send(&app, "GET", "/metrics", "192.0.2.99:1", Some(&s.admin)).await;
    let counted = rate_limited_total(&metrics.text) - rate_limited_total(&metrics_before.text);
    assert!(counted >= 5, "trailkeep_auth_rate_limited_total rose by {counted}:\n{}", metrics.text);
}

#[actix_web::test]
async fn throttled_address_recovers_after_retry_after() {
    let s = TestServer::with_config(|c| {
        c.auth_fail_burst = 2;
        c.auth_fail_per_sec = 2.0;
    });
    let app = s.app().await;
    let attacker = "192.0.2.20:1";
    async fn until_throttled(
        app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
        peer: &str,
    ) -> (Vec<u16>, Option<String>) {
        let mut statuses = Vec::new();
        for _ in 0..8 {
            let r = send(app, H2O.0, H2O.1, peer, Some(&forge(None))).await;
            statuses.push(r.status);
            if r.status == 429 {
                return (statuses, r.retry_after);
            }
        }
        (statuses, None)
    }
    let (statuses, retry_after) = until_throttled(&app, attacker).await;
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.len() >= 3, "at least the burst of 2 failures is answered 401 first: {statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"), "a 0.5 s refill rounds up to 1 s");
    // Waiting Retry-After restores the allowance: failures get 401 again, then 429 again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = send(&app, H2O.0, H2O.1, attacker, Some(&forge(None))).await;
    assert_eq!(r.status, 401, "after Retry-After: {}", r.text);
    let (statuses, _) = until_throttled(&app, attacker).await;
    assert_eq!(statuses.last(), Some(&429), "throttled again after the refilled allowance: {statuses:?}");
}

#[actix_web::test]
async fn failed_auth_is_throttled_per_key_id() {
    let s = TestServer::with_config(|c| {
        c.auth_fail_burst = 3;
        c.auth_fail_per_sec = 0.1;
    });
    let app = s.app().await;
    let target = key_id(&s.admin).to_string();
    // The real key is used once before the attack (verified, cached).
    assert_eq!(send(&app, UI.0, UI.1, "203.0.113.200:1", Some(&s.admin)).await.status, 200);
    // Wrong secrets for one key id, spread over addresses: the key id's bucket runs out.
    for i in 1..=3 {
        let r = send(&app, PANGEA.0, PANGEA.1, &format!("203.0.113.{i}:1"), Some(&forge(Some(&target)))).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = send(&app, PANGEA.0, PANGEA.1, "203.0.113.4:1", Some(&forge(Some(&target)))).await;
    assert_eq!((r.status, r.retry_after.as_deref()), (429, Some("10")), "refill 0.1/s: {}", r.text);
    // From any address, guesses at that key id are refused now...
    let r = send(&app, H2O.0, H2O.1, "203.0.113.5:1", Some(&forge(Some(&target)))).await;
    assert_eq!(r.status, 429, "{}", r.text);
    // ...other key ids are not,
    assert_eq!(send(&app, H2O.0, H2O.1, "203.0.113.6:1", Some(&forge(None))).await.status, 401);
    // and the owner's verified key keeps working from a fresh address.
    let r = send(&app, UI.0, UI.1, "203.0.113.7:1", Some(&s.admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A key id that does not exist is throttled the same way (a 429 tells nothing about existence).
    let ghost = forge(None);
    let ghost_id = key_id(&ghost).to_string();
    let mut statuses = Vec::new();
    for i in 10..14 {
        statuses
            .push(send(&app, H2O.0, H2O.1, &format!("203.0.113.{i}:1"), Some(&forge(Some(&ghost_id)))).await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
}

#[actix_web::test]
async fn zero_burst_turns_throttling_off() {
    let s = TestServer::with_config(|c| c.auth_fail_burst = 0);
    let app = s.app().await;
    for _ in 0..30 {
        assert_eq!(send(&app, H2O.0, H2O.1, "192.0.2.50:1", Some("not-a-key")).await.status, 401);
    }
}
