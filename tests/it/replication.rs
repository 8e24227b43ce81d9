//! Replication to a directory (`file://`), in process: every event in exactly one object, the
//! objects' bytes a function of the log, `verify --archive` and `restore --from-archive` through
//! the binary. The same against a real S3 API (moto) with faults: `tests/replication/`.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{TestServer, call, h2o_event};

fn bin() -> String {
    env!("CARGO_BIN_EXE_trailkeep").to_string()
}

fn files(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()), &mut text)
        .unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[actix_web::test]
async fn replicates_to_a_directory_exactly_once_then_verifies_and_restores() {
    let archive = tempfile::tempdir().unwrap();
    let url = format!("file://{}/trail", archive.path().display());
    let s = TestServer::with_config(|c| {
        c.replication = Some(trailkeep::config::Replication { target: url.clone(), interval: 200_000, max_events: 7 });
    });
    let app = s.app().await;
    let mut n = 0;
    for i in 0..6 {
        let (st, r) = call(
            &app,
            "POST",
            &format!("/v1/events?eventId={}", uuid::Uuid::new_v4()),
            Some(&s.admin),
            &h2o_event(&format!("//svc/workspaces/w{}/x", i % 2)).to_string(),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        let body = json!({"events": (0..4).map(|k| json!({"event": {"message": format!("m{i}.{k}"), "actor": "alice", "tenant_id": "workspaces/w1"}})).collect::<Vec<_>>()});
        let (st, r) = call(&app, "POST", "/pangea/v2/log", Some(&s.admin), &body.to_string()).await;
        assert_eq!(st, 200, "{r}");
        n += 5;
    }
    let mut state = Value::Null;
    for _ in 0..200 {
        let (st, r) = call(&app, "GET", "/api/v1/replication", Some(&s.admin), "").await;
        assert_eq!(st, 200, "{r}");
        state = r;
        if state["lag_events"] == 0 && state["committed_events"] == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state["replicated_events"], n, "{state}");
    assert_eq!(state["target"], url.as_str());
    let (st, ready) = call(&app, "GET", "/readyz", None, "").await;
    assert_eq!(st, 200);
    assert_eq!(ready["replication"]["lag_events"], 0, "{ready}");

    // Every event in exactly one object, in order; objects of whole buffers, at most 7 events
    // unless a single buffer is larger.
    let root = archive.path().join("trail");
    assert!(root.join("public-key.pem").exists());
    let mut seqs = Vec::new();
    for f in files(&root, ".jsonl.gz") {
        let ls = lines(&f);
        let leaves: std::collections::BTreeSet<u64> = ls.iter().map(|l| l["leaf_index"].as_u64().unwrap()).collect();
        assert!(ls.len() <= 7 || leaves.len() == 1, "{}: {} events", f.display(), ls.len());
        let proof = f.to_string_lossy().replace(".jsonl.gz", ".proof.json");
        assert!(std::path::Path::new(&proof).exists(), "{proof}");
        seqs.extend(ls.iter().map(|l| l["seq"].as_i64().unwrap()));
    }
    assert_eq!(seqs, (0..n as i64).collect::<Vec<_>>());

    // The bytes of an object are a function of the log: rebuilt from the database, the same.
    let first = files(&root, ".jsonl.gz").remove(0);
    let conn = trailkeep::store::open_side_rw(s.dir.path()).unwrap();
    let count = lines(&first).len() as i64;
    let mut rebuilt = Vec::new();
    trailkeep::replication::uploader::write_events(&conn, 0, count - 1, |b| {
        rebuilt.extend_from_slice(&b);
        Ok(())
    })
    .unwrap();
    assert_eq!(rebuilt, std::fs::read(&first).unwrap());

    // verify --archive, with no database.
    let out = Command::new(bin()).args(["verify", "--archive", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{n} events")), "{text}");

    // restore --from-archive (no signing key: read-only), then the local verify passes.
    let restored = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["restore", "--from-archive", &url, "--data-dir"])
        .arg(restored.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(bin()).args(["verify", "--data-dir"]).arg(restored.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // A second restore into the same directory is refused.
    let out = Command::new(bin())
        .args(["restore", "--from-archive", &url, "--data-dir"])
        .arg(restored.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[actix_web::test]
async fn replication_state_is_for_admin_keys_and_says_when_disabled() {
    let s = TestServer::new();
    let app = s.app().await;
    let (st, r) = call(&app, "GET", "/api/v1/replication", Some(&s.admin), "").await;
    assert_eq!((st, r), (200, json!({"enabled": false})));
    let search = s.key(&["search"], &[]);
    let (st, _) = call(&app, "GET", "/api/v1/replication", Some(&search), "").await;
    assert_eq!(st, 403);
    let (st, _) = call(&app, "GET", "/api/v1/replication", None, "").await;
    assert_eq!(st, 401);
    let (st, ready) = call(&app, "GET", "/readyz", None, "").await;
    assert_eq!(st, 200);
    assert_eq!(ready["replication"], json!({"enabled": false}));
}
