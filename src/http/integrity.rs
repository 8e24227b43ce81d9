//! The web UI's integrity page: `GET /api/v1/integrity` (the log's size, its newest signed root,
//! the checkpoint file, the server's public key and the last verification) and the verification
//! job, `GET /api/v1/verify` (its state) and `POST /api/v1/verify` (admin keys without a workspace
//! limit: run `trailkeep verify`'s checks now, on a thread of its own over a read-only snapshot,
//! logged as an event). The last finished run is kept in the database (`settings`, `last_verify`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::admin::{admin, allow};
use super::apidoc::{Problem, TAG_UI};
use super::state::{RunningVerify, State, replication_report, with_reader};
use super::ui::{principal, problem};
use crate::event::system;
use crate::keys::Principal;
use crate::time::{format_micros, now_micros};

const LAST_VERIFY: &str = "last_verify";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/integrity").route(web::get().to(integrity)).default_service(allow("GET")))
        .service(
            web::resource("/api/v1/verify")
                .route(web::get().to(verify_status))
                .route(web::post().to(start_verify))
                .default_service(allow("GET, POST")),
        );
}

/// The checkpoint file compared with the database.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CheckpointState {
    /// `consistent` (the database holds the recorded root), `missing` (no file yet: an empty
    /// log), `mismatch` (rollback or fork: `detail` says which) or `unreadable`.
    state: String,
    size: Option<u64>,
    root_hash: Option<String>,
    #[schema(format = DateTime)]
    published_at: Option<String>,
    detail: Option<String>,
}

/// One problem a verification found.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VerifyProblem {
    /// `leaf_mismatch`, `gap`, `root_mismatch`, `bad_signature`, `unsigned_root`, `unsigned_tail`,
    /// `corrupt`, `integrity`, `unexplained_purge`, `size_regression`,
    /// `inconsistent_with_trusted_checkpoint`.
    kind: String,
    /// What and where (admin keys without a workspace limit only).
    detail: Option<String>,
}

/// A finished verification.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VerifyResult {
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    finished_at: String,
    /// No problem found.
    ok: bool,
    events: u64,
    /// Events whose content retention removed (their hashes were checked).
    purged: u64,
    /// Of those, the ones whose purge events are not logged yet (a purge run in progress).
    purge_pending: u64,
    tree_size: u64,
    problems: Vec<VerifyProblem>,
    /// Set when the verification could not run at all.
    error: Option<String>,
}

/// The verification job.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VerifyState {
    running: bool,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    /// Events checked so far, of `total` (while running).
    checked: Option<u64>,
    total: Option<u64>,
    /// The last finished run; null before the first.
    last: Option<VerifyResult>,
}

/// The log's integrity at a glance.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Integrity {
    tree_name: String,
    /// Leaves of the Merkle tree (sealed buffers); a signed root exists for each size.
    tree_size: u64,
    events: u64,
    /// The newest signed root and the exact message signed; null for an empty log.
    newest_root: Option<super::ui::SignedRoot>,
    checkpoint: CheckpointState,
    public_key: PublicKeyPem,
    verify: VerifyState,
    /// Replication to object storage (`GET /api/v1/replication`'s answer): `{"enabled": false}`
    /// when not configured; null when its state cannot be read. Keys other than admin keys
    /// without a workspace limit get `enabled`, `state`, `replicated_events`, `lag_events`,
    /// `lag_seconds` and `last_upload_at` only (no target, no error text).
    replication: Option<super::replication::ReplicationState>,
}

/// The key that signs the roots, as base64 and as a PEM `PUBLIC KEY`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PublicKeyPem {
    #[schema(example = "ED25519")]
    algorithm: String,
    public_key: String,
    pem: String,
}

/// Only keys that may search see the integrity page.
async fn reviewer(state: &State, req: &HttpRequest) -> Result<Principal, HttpResponse> {
    match principal(state, req).await {
        Ok(p) if p.scopes.can_search() => Ok(p),
        Ok(_) => Err(problem(StatusCode::FORBIDDEN, "forbidden", "this key may not search")),
        Err(r) => Err(r),
    }
}

fn public_key(state: &State) -> Value {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    let pem = state.ledger.public_key().to_public_key_pem(LineEnding::LF).unwrap_or_default();
    json!({"algorithm": "ED25519", "public_key": state.ledger.public_key_b64(), "pem": pem})
}

/// Integrity of the log
///
/// Tree size, events, the newest signed root (to check its signature with `public_key`), the
/// checkpoint file compared with the database, and the last verification.
#[utoipa::path(
    get,
    path = "/api/v1/integrity",
    tag = TAG_UI,
    operation_id = "integrity",
    responses(
        (status = 200, description = "The integrity state", body = Integrity),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "The key may not search", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Storage unavailable", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn integrity(state: State, req: HttpRequest) -> HttpResponse {
    let p = match reviewer(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ledger = state.ledger.clone();
    let read = with_reader(&state, move |c| {
        let events: i64 = c.query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
        let root = crate::store::writer::latest_root(c, &ledger.tree_name)?;
        let last = crate::store::get_setting(c, LAST_VERIFY)?;
        Ok((events, root, last))
    })
    .await;
    let Ok((events, root, last)) = read else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable");
    };
    let (dir, ledger) = (state.data_dir.clone(), state.ledger.clone());
    let checkpoint = with_reader(&state, move |c| Ok(checkpoint_state(c, &dir, &ledger)))
        .await
        .unwrap_or_else(|_| json!({"state": "unreadable", "detail": "the checkpoint file could not be read"}));
    let newest_root = root.map(|r| {
        json!({"tree_name": r.tree_name, "size": r.size, "root_hash": r.root_hash, "published_at": r.published_at,
            "signature": r.signature, "signed_message": r.message()})
    });
    HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({
        "tree_name": state.ledger.tree_name,
        "tree_size": state.ledger.size(),
        "events": events,
        "newest_root": newest_root,
        "checkpoint": checkpoint,
        "public_key": public_key(&state),
        "verify": job_state(&state, last.as_deref(), may_see_details(&p)),
        "replication": replication(&state, &p).await,
    }))
}

/// The replication report, reduced to where it stands for keys that may not see its target.
async fn replication(state: &State, p: &Principal) -> Value {
    let Some(mut report) = replication_report(state).await else { return Value::Null };
    if !may_see_details(p)
        && let Some(o) = report.as_object_mut()
    {
        const SHOWN: [&str; 6] =
            ["enabled", "state", "replicated_events", "lag_events", "lag_seconds", "last_upload_at"];
        o.retain(|k, _| SHOWN.contains(&k.as_str()));
    }
    report
}

fn checkpoint_state(c: &rusqlite::Connection, dir: &std::path::Path, ledger: &crate::ledger::Ledger) -> Value {
    match crate::ledger::read_checkpoint(dir) {
        Ok(None) => json!({"state": "missing"}),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the checkpoint file");
            json!({"state": "unreadable", "detail": "the checkpoint file could not be read or parsed"})
        }
        Ok(Some(cp)) => {
            // The root at the checkpoint's size may need an older block of the tree from the database.
            let check = crate::store::tree::TreeReader::new(c, ledger)
                .root(cp.root.size)
                .map_err(anyhow::Error::from)
                .and_then(|root| crate::ledger::check_against_checkpoint(ledger.size(), root, &ledger.tree_name, &cp));
            let mut v = json!({"state": if check.is_ok() { "consistent" } else { "mismatch" }, "size": cp.root.size,
                "root_hash": cp.root.root_hash, "published_at": cp.root.published_at});
            if let Err(e) = check {
                v["detail"] = json!(e.to_string());
            }
            v
        }
    }
}

/// Problem details name events and workspaces: for admin keys without a workspace limit only.
fn may_see_details(p: &Principal) -> bool {
    p.scopes.admin && p.workspaces.is_empty()
}

/// The job's state for the response; `last` is the stored last run (JSON).
fn job_state(state: &State, last: Option<&[u8]>, details: bool) -> Value {
    let job = state.verify.lock();
    // This process's last run, else the stored one (also from before a restart).
    let mut last: Value = match &job.last {
        Some(v) => v.clone(),
        None => last.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null),
    };
    if !details && let Some(problems) = last.get_mut("problems").and_then(Value::as_array_mut) {
        for p in problems {
            p["detail"] = Value::Null;
        }
    }
    match &job.running {
        Some(r) => json!({"running": true, "started_at": format_micros(r.started_at),
            "checked": r.checked.load(Ordering::Relaxed), "total": r.total, "last": last}),
        None => json!({"running": false, "started_at": null, "checked": null, "total": null, "last": last}),
    }
}

/// Verification state
///
/// Whether a verification runs (with its progress) and the last finished one.
#[utoipa::path(
    get,
    path = "/api/v1/verify",
    tag = TAG_UI,
    operation_id = "verify_status",
    responses(
        (status = 200, description = "The verification job", body = VerifyState),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "The key may not search", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Storage unavailable", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn verify_status(state: State, req: HttpRequest) -> HttpResponse {
    let p = match reviewer(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match with_reader(&state, |c| crate::store::get_setting(c, LAST_VERIFY)).await {
        Ok(last) => HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(job_state(
            &state,
            last.as_deref(),
            may_see_details(&p),
        )),
        Err(()) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
    }
}

/// Verify the log now
///
/// Starts `trailkeep verify`'s checks (every event hash, buffer root, tree root and signature,
/// purges, the checkpoint file, SQLite's quick check) in the background on a read-only snapshot;
/// ingest goes on. Logged as an event (`actions/audittrail/log/VERIFY`).
#[utoipa::path(
    post,
    path = "/api/v1/verify",
    tag = TAG_UI,
    operation_id = "verify_start",
    responses(
        (status = 202, description = "Started; poll `GET /api/v1/verify`", body = VerifyState),
        (status = 409, description = "A verification is already running", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing or invalid key", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key without a workspace limit", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Too many failed authentications", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "Storage unavailable", content_type = "application/problem+json", body = Problem),
    ),
    security(("api_key" = [])),
)]
async fn start_verify(state: State, req: HttpRequest) -> HttpResponse {
    let p = match admin(&state, &req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok((total, last)) = with_reader(&state, |c| {
        let n: i64 = c.query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
        Ok((n as u64, crate::store::get_setting(c, LAST_VERIFY)?))
    })
    .await
    else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable");
    };
    let checked = Arc::new(AtomicU64::new(0));
    {
        let mut job = state.verify.lock();
        if job.running.is_some() {
            return problem(StatusCode::CONFLICT, "verify_running", "a verification is already running");
        }
        job.running = Some(RunningVerify { started_at: now_micros(), checked: checked.clone(), total });
    }
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    if let Some(ev) = system::verify_started(&p.key_id, peer, state.ledger.size(), state.config.redact_private_ips)
        && let Err(e) = state.writer.append(vec![ev]).await
    {
        tracing::warn!(error = %e, "verification event not recorded");
    }
    let st = state.clone();
    let spawned = std::thread::Builder::new().name("trailkeep-verify".into()).spawn(move || run(&st, &checked));
    if spawned.is_err() {
        state.verify.lock().running = None;
        return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the verification could not start; retry");
    }
    HttpResponse::Accepted().json(job_state(&state, last.as_deref(), true))
}

/// The verification thread: runs the checks, stores the result, ends the job.
fn run(state: &State, checked: &AtomicU64) {
    let started = state.verify.lock().running.as_ref().map_or_else(now_micros, |r| r.started_at);
    let result = match crate::verify::verify_with_progress(&state.data_dir, None, checked) {
        Ok(report) => {
            let problems: Vec<Value> = report
                .problems
                .iter()
                .map(|p| {
                    // These carry SQLite's own words: the CLI shows them on the server.
                    let detail = match p.kind {
                        "corrupt" | "integrity" => {
                            "the database file is damaged; run `trailkeep verify` on the server for details".to_string()
                        }
                        _ => p.detail.clone(),
                    };
                    json!({"kind": p.kind, "detail": detail})
                })
                .collect();
            tracing::info!(events = report.events, problems = problems.len(), "verification finished");
            json!({"ok": problems.is_empty(), "events": report.events, "purged": report.purged,
                "purge_pending": report.purge_pending, "tree_size": report.tree_size, "problems": problems, "error": null})
        }
        Err(e) => {
            tracing::error!(error = %e, "verification could not run");
            json!({"ok": false, "events": 0, "purged": 0, "purge_pending": 0, "tree_size": 0, "problems": [],
                "error": "the verification could not read the database"})
        }
    };
    let mut result = result;
    result["started_at"] = json!(format_micros(started));
    result["finished_at"] = json!(format_micros(now_micros()));
    let stored = crate::store::open_side_rw(&state.data_dir)
        .and_then(|c| crate::store::put_setting(&c, LAST_VERIFY, result.to_string().as_bytes()));
    if let Err(e) = stored {
        tracing::warn!(error = %e, "cannot store the verification result");
    }
    let mut job = state.verify.lock();
    job.last = Some(result);
    job.running = None;
}
