//! The data directory is private and the server's keys are files: modes whatever the umask, the
//! refusals of a directory or key file others can use, the encrypted key store, the move of an
//! older release's keys out of its database (crash-safe), backup and restore with and without
//! keys (without: served read-only until the key is installed), and the CLI (`keys files|encrypt|decrypt`, `serve` on an encrypted store).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use trailkeep::config::Config;
use trailkeep::keystore::{KeyStore, Passphrase};
use trailkeep::ledger::cold::NoBlocks;
use trailkeep::server::Opened;
use trailkeep::serverkeys::{self, PAGE_TOKEN, ROOT_SIGNING};

use crate::common::{call, uuid4};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn pass(s: &str) -> Option<Passphrase> {
    Some(Passphrase::new(s.into()).unwrap())
}

fn open(dir: &Path, passphrase: Option<Passphrase>) -> anyhow::Result<Opened> {
    let mut config = Config::for_tests(dir);
    config.self_audit = false;
    config.key_passphrase = passphrase;
    trailkeep::server::open(config)
}

/// Stops an opened server's writer (WAL checkpointed) and waits for it.
async fn close(o: Opened) {
    o.state.writer.stop().await;
    drop(o.state);
    o.writer_thread.join().unwrap();
}

/// Opens, logs `n` Pangea events with the admin key given (or the bootstrap key), closes.
/// Returns the admin key and the public key.
async fn ingest(dir: &Path, passphrase: Option<Passphrase>, admin: Option<&str>, n: usize) -> (String, String) {
    let o = open(dir, passphrase).unwrap();
    let admin = admin.map(str::to_string).or(o.bootstrap_key.clone()).unwrap();
    let public = o.state.ledger.public_key_b64();
    if n > 0 {
        let app = actix_web::test::init_service(
            actix_web::App::new().app_data(o.state.clone()).configure(trailkeep::http::configure),
        )
        .await;
        let events: Vec<Value> = (0..n).map(|i| json!({"event": {"message": format!("ks {i}")}})).collect();
        let (st, body) =
            call(&app, "POST", "/pangea/v2/log", Some(&admin), &json!({"events": events}).to_string()).await;
        assert_eq!(st, 200, "{body}");
    }
    close(o).await;
    (admin, public)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether any database file (`trailkeep.db`, `-wal`, `-shm`) holds `bytes`.
fn database_holds(dir: &Path, bytes: &[u8]) -> bool {
    ["trailkeep.db", "trailkeep.db-wal", "trailkeep.db-shm"]
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .any(|b| contains(&b, bytes))
}

fn key_bytes(dir: &Path) -> ([u8; 32], [u8; 32]) {
    let ks = KeyStore::open(&serverkeys::keys_dir(dir), None).unwrap();
    let seed = ks.ed25519(ROOT_SIGNING, 1).unwrap().to_bytes();
    let token = *ks.hmac_key(PAGE_TOKEN).unwrap().unwrap();
    (seed, token)
}

fn settings(dir: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
    let mut s = c.prepare("SELECT key FROM settings ORDER BY key").unwrap();
    s.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[actix_web::test]
async fn a_new_data_directory_is_private_and_its_keys_are_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (_, public) = ingest(&dir, None, None, 3).await;
    // The test process keeps its own umask (022 here): the modes come from the code.
    assert_eq!(mode(&dir), 0o700);
    for f in ["trailkeep.db", "checkpoint.latest"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let o = open(&dir, None).unwrap();
    for f in ["trailkeep.db-wal", "trailkeep.db-shm"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}: SQLite gives the WAL the database file's mode");
    }
    assert_eq!(o.state.ledger.public_key_b64(), public, "the same key after a restart");
    close(o).await;
    let keys = serverkeys::keys_dir(&dir);
    assert_eq!(mode(&keys), 0o700);
    let listed: Vec<String> = KeyStore::open(&keys, None).unwrap().list().unwrap().iter().map(|k| k.id()).collect();
    assert_eq!(listed, ["page-token.1", "root-signing.1"]);
    for f in ["root-signing.1.pem", "page-token.1.pem"] {
        assert_eq!(mode(&keys.join(f)), 0o600, "{f}");
    }
    let pem = std::fs::read_to_string(keys.join("root-signing.1.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let ks = KeyStore::open(&keys, None).unwrap();
    assert_eq!(B64.encode(ks.public_key(ROOT_SIGNING, 1).unwrap().as_bytes()), public);

    let (seed, token) = key_bytes(&dir);
    assert!(!database_holds(&dir, &seed), "the signing key is not in the database files");
    assert!(!database_holds(&dir, &token), "the page-token key is not in the database files");
    assert_eq!(settings(&dir), ["public_key", "tree_name"]);
    let report = trailkeep::verify::verify(&dir, None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[actix_web::test]
async fn page_tokens_survive_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (admin, _) = ingest(&dir, None, None, 0).await;
    let o = open(&dir, None).unwrap();
    let token = {
        let app = actix_web::test::init_service(
            actix_web::App::new().app_data(o.state.clone()).configure(trailkeep::http::configure),
        )
        .await;
        for _ in 0..3 {
            let ev = crate::common::h2o_event("//svc/workspaces/w1/things/x");
            let (st, _) =
                call(&app, "POST", &format!("/v1/events?eventId={}", uuid4()), Some(&admin), &ev.to_string()).await;
            assert_eq!(st, 200);
        }
        let (st, body) = call(&app, "POST", "/v1/events:search", Some(&admin), r#"{"filter":{},"pageSize":1}"#).await;
        assert_eq!(st, 200, "{body}");
        body["nextPageToken"].as_str().unwrap().to_string()
    };
    close(o).await;
    let o = open(&dir, None).unwrap();
    let app = actix_web::test::init_service(
        actix_web::App::new().app_data(o.state.clone()).configure(trailkeep::http::configure),
    )
    .await;
    let body = json!({"filter": {}, "pageSize": 1, "pageToken": token}).to_string();
    let (st, page) = call(&app, "POST", "/v1/events:search", Some(&admin), &body).await;
    assert_eq!(st, 200, "a page token from before the restart still verifies: {page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    drop(app);
    close(o).await;
}

#[actix_web::test]
async fn a_data_directory_or_key_file_others_can_use_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    ingest(&dir, None, None, 1).await;

    chmod(&dir, 0o755);
    let err = open(&dir, None).err().expect("refused").to_string();
    assert!(err.contains(&format!("chmod 700 {}", dir.display())) && err.contains("mode 0755"), "{err}");
    chmod(&dir, 0o700);

    let file = serverkeys::keys_dir(&dir).join("root-signing.1.pem");
    chmod(&file, 0o640);
    let err = open(&dir, None).err().expect("refused").to_string();
    assert!(err.contains(&format!("chmod 600 {}", file.display())), "{err}");
    chmod(&file, 0o600);

    chmod(&serverkeys::keys_dir(&dir), 0o711);
    let err = open(&dir, None).err().expect("refused").to_string();
    assert!(err.contains(&format!("chmod 700 {}", serverkeys::keys_dir(&dir).display())), "{err}");
    chmod(&serverkeys::keys_dir(&dir), 0o700);
    close(open(&dir, None).unwrap()).await;

    // An empty directory made by `mkdir` under umask 022 (or a container volume) is narrowed.
    let fresh = root.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    chmod(&fresh, 0o755);
    close(open(&fresh, None).unwrap()).await;
    assert_eq!(mode(&fresh), 0o700);
}

#[actix_web::test]
async fn an_encrypted_key_store_needs_its_passphrase() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (admin, public) = ingest(&dir, pass("correct horse"), None, 2).await;
    let keys = serverkeys::keys_dir(&dir);
    for f in ["root-signing.1.pem", "page-token.1.pem"] {
        let text = std::fs::read_to_string(keys.join(f)).unwrap();
        assert!(text.starts_with("-----BEGIN TRAILKEEP ENCRYPTED KEY-----\n"), "{f}: {text}");
    }
    let err = open(&dir, None).err().expect("refused without the passphrase").to_string();
    assert!(err.contains("encrypted") && err.contains("TRAILKEEP_KEY_PASSPHRASE"), "{err}");
    let err = open(&dir, pass("wrong")).err().expect("refused with a wrong passphrase").to_string();
    assert!(err.contains("wrong key passphrase"), "{err}");
    // verify needs no private key.
    let report = trailkeep::verify::verify(&dir, None).unwrap();
    assert!(report.problems.is_empty() && report.events == 2, "{:?}", report.problems);
    let (_, again) = ingest(&dir, pass("correct horse"), Some(&admin), 1).await;
    assert_eq!(again, public);
}

/// Makes a current data directory look as a release before the key store left it: keys in the
/// settings rows, no key files, schema 6, modes 0755/0644.
fn make_legacy(dir: &Path) -> ([u8; 32], [u8; 32]) {
    let (seed, token) = key_bytes(dir);
    std::fs::remove_dir_all(serverkeys::keys_dir(dir)).unwrap();
    let c = rusqlite::Connection::open(dir.join("trailkeep.db")).unwrap();
    c.execute("DELETE FROM settings WHERE key = 'public_key'", []).unwrap();
    c.execute("INSERT INTO settings(key, value) VALUES ('signing_key', ?1), ('page_token_key', ?2)", [&seed, &token])
        .unwrap();
    // Back to the schema of 0.1.0: what later migrations added goes (0010: audit configs).
    c.execute_batch(
        "DROP TABLE audit_configs; DROP TABLE config_fields; DROP TABLE event_fields; DROP TABLE config_state;
         ALTER TABLE events DROP COLUMN config; ALTER TABLE api_keys DROP COLUMN configs;",
    )
    .unwrap();
    c.pragma_update(None, "user_version", 6).unwrap();
    drop(c);
    chmod(dir, 0o755);
    for f in ["trailkeep.db", "checkpoint.latest"] {
        chmod(&dir.join(f), 0o644);
    }
    assert!(database_holds(dir, &seed));
    (seed, token)
}

fn assert_moved(dir: &Path, seed: &[u8; 32], token: &[u8; 32]) {
    assert_eq!(key_bytes(dir), (*seed, *token), "the key files hold the database's keys");
    assert!(!database_holds(dir, seed), "the signing key's bytes are gone from the database files");
    assert!(!database_holds(dir, token), "the page-token key's bytes are gone from the database files");
    assert_eq!(settings(dir), ["public_key", "tree_name"]);
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(&dir.join("trailkeep.db")), 0o600);
    assert_eq!(mode(&dir.join("checkpoint.latest")), 0o600);
    let report = trailkeep::verify::verify(dir, None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[actix_web::test]
async fn an_older_databases_keys_move_to_files_and_are_wiped() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (admin, public) = ingest(&dir, None, None, 5).await;
    let (seed, token) = make_legacy(&dir);
    let report = trailkeep::verify::verify(&dir, None).unwrap();
    assert!(report.problems.is_empty(), "verify reads an older database too: {:?}", report.problems);

    let (_, after) = ingest(&dir, None, Some(&admin), 2).await;
    assert_eq!(after, public);
    assert_moved(&dir, &seed, &token);

    // With a passphrase the moved keys are sealed at once.
    let (seed, token) = make_legacy(&dir);
    ingest(&dir, pass("pw"), Some(&admin), 1).await;
    let ks = KeyStore::open(&serverkeys::keys_dir(&dir), pass("pw")).unwrap();
    assert!(ks.list().unwrap().iter().all(|k| k.encrypted));
    assert_eq!(ks.ed25519(ROOT_SIGNING, 1).unwrap().to_bytes(), seed);
    assert!(!database_holds(&dir, &seed) && !database_holds(&dir, &token));
}

#[actix_web::test]
async fn an_interrupted_key_move_is_finished_at_the_next_open() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (admin, _) = ingest(&dir, None, None, 3).await;
    let (seed, token) = key_bytes(&dir);
    let db = dir.join("trailkeep.db");

    // Stopped after the key files were written, before the rows were deleted.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("INSERT INTO settings(key, value) VALUES ('signing_key', ?1), ('page_token_key', ?2)", [&seed, &token])
        .unwrap();
    c.execute("INSERT INTO settings(key, value) VALUES ('keys_move_pending', x'01')", []).unwrap();
    drop(c);
    ingest(&dir, None, Some(&admin), 1).await;
    assert_moved(&dir, &seed, &token);

    // Stopped after the rows were deleted, before VACUUM: their bytes are still in the file.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.pragma_update(None, "secure_delete", "OFF").unwrap();
    c.execute("INSERT INTO settings(key, value) VALUES ('keys_move_pending', x'01')", []).unwrap();
    c.execute("INSERT INTO settings(key, value) VALUES ('signing_key', ?1)", [&seed]).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    c.execute("DELETE FROM settings WHERE key = 'signing_key'", []).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(c);
    assert!(database_holds(&dir, &seed), "a deleted row's bytes stay in the file until VACUUM");
    ingest(&dir, None, Some(&admin), 1).await;
    assert_moved(&dir, &seed, &token);

    // A key file that holds another key than the database's is a conflict, not an overwrite.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("INSERT INTO settings(key, value) VALUES ('signing_key', ?1)", [&[9u8; 32]]).unwrap();
    drop(c);
    let err = open(&dir, None).err().expect("refused").to_string();
    assert!(err.contains("holds a different key"), "{err}");
}

#[actix_web::test]
async fn restore_continues_the_trail_only_with_its_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (admin, public) = ingest(&dir, None, None, 4).await;
    let (seed, token) = key_bytes(&dir);
    let size = trailkeep::ledger::read_checkpoint(&dir).unwrap().unwrap().root.size;

    let bare = root.path().join("bare.db");
    let b = trailkeep::backup::backup(&dir, &bare, false).unwrap();
    assert!(b.keys.is_empty() && !trailkeep::backup::keys_beside(&bare).exists());
    assert_eq!(b.checkpoint.public_key, public);
    for p in [bare.clone(), trailkeep::backup::checkpoint_beside(&bare)] {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    let bytes = std::fs::read(&bare).unwrap();
    assert!(!contains(&bytes, &seed) && !contains(&bytes, &token), "a backup holds no private key");

    let full = root.path().join("full.db");
    let b = trailkeep::backup::backup(&dir, &full, true).unwrap();
    let ids: Vec<String> = b.keys.iter().map(|k| k.id()).collect();
    assert_eq!(ids, ["page-token.1", "root-signing.1"]);
    let copied = trailkeep::backup::keys_beside(&full);
    assert_eq!(mode(&copied), 0o700);
    for k in &b.keys {
        assert_eq!(mode(&k.path), 0o600);
    }
    assert!(trailkeep::backup::backup(&dir, &full, true).is_err(), "never overwrites");

    // Without keys: restored, verifiable, and served read-only: searches and proofs answer,
    // writes are refused in each dialect saying which key to install where.
    let r1 = root.path().join("r1");
    let r = trailkeep::backup::restore(&bare, &r1, None).unwrap();
    assert!(r.root_signing.is_none() && r.keys.is_empty() && r.public_key == public);
    assert_eq!(mode(&r1), 0o700);
    assert_eq!(mode(&r1.join("trailkeep.db")), 0o600);
    let report = trailkeep::verify::verify(&r1, None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    read_only_until_the_key_is_installed(&r1, &admin, &public, size, &full).await;
    // Another key directory's key is not taken for it.
    let other = root.path().join("other");
    ingest(&other, None, None, 0).await;
    let r2 = root.path().join("r2");
    let err = trailkeep::backup::restore(&bare, &r2, Some(&serverkeys::keys_dir(&other))).err().unwrap().to_string();
    assert!(err.contains("holds no root-signing key") && !r2.join("trailkeep.db").exists(), "{err}");

    // With the keys (FILE.keys/ found beside the backup): the trail continues.
    let r3 = root.path().join("r3");
    let r = trailkeep::backup::restore(&full, &r3, None).unwrap();
    assert_eq!(r.root_signing.map(|k| k.id()).as_deref(), Some("root-signing.1"));
    let o = open(&r3, None).unwrap();
    assert_eq!(o.state.ledger.public_key_b64(), public);
    // A small trail: every leaf is in the newest block, in memory.
    let root_at = |o: &Opened, size| o.state.ledger.tree.read().root(size as usize, &NoBlocks).unwrap();
    let old_root = root_at(&o, size).unwrap();
    close(o).await;
    ingest(&r3, None, Some(&admin), 2).await;
    let o = open(&r3, None).unwrap();
    assert_eq!(o.state.ledger.size(), size + 1, "new events append to the restored trail");
    assert_eq!(root_at(&o, size).unwrap(), old_root, "the restored roots stay");
    close(o).await;
    let report = trailkeep::verify::verify(&r3, None).unwrap();
    assert!(report.problems.is_empty() && report.events == 6, "{:?}", report.problems);
}

/// A trail whose key store lacks its root-signing key is served read-only: searches, proofs, the
/// public key and exports answer; event writes (both dialects), key changes and purges get 503
/// naming the key file to install and its public key. Installing it (the file from `keys_from`)
/// makes the next start writable.
async fn read_only_until_the_key_is_installed(dir: &Path, admin: &str, public: &str, size: u64, keys_from: &Path) {
    let o = open(dir, None).expect("a trail without its key opens read-only");
    assert!(!o.state.ledger.can_sign());
    assert_eq!(o.state.ledger.public_key_b64(), public);
    let app = actix_web::test::init_service(
        actix_web::App::new().app_data(o.state.clone()).configure(trailkeep::http::configure),
    )
    .await;
    let says_how =
        |text: &str| text.contains("read-only") && text.contains(public) && text.contains("keys/root-signing.1.pem");
    let search = json!({"query": "message:ks", "limit": 10, "start": "1d"}).to_string();
    let (st, body) = call(&app, "POST", "/pangea/v1/search", Some(admin), &search).await;
    assert_eq!((st, body["result"]["count"].as_u64()), (200, Some(4)), "{body}");
    let (st, body) = call(&app, "POST", "/pangea/v1/root", Some(admin), &json!({"tree_size": size}).to_string()).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = call(&app, "GET", "/api/v1/public-key", None, "").await;
    assert_eq!((st, body["public_key"].as_str()), (200, Some(public)));
    let (st, body) = call(&app, "GET", "/api/v1/export?format=json&query=message:ks", Some(admin), "").await;
    assert_eq!((st, body.as_array().map(Vec::len)), (200, Some(4)), "{body}");

    let (st, body) = call(&app, "POST", "/pangea/v1/log", Some(admin), r#"{"event":{"message":"no"}}"#).await;
    assert_eq!((st, body["status"].as_str()), (503, Some("ServiceNotAvailable")), "{body}");
    assert!(says_how(body["summary"].as_str().unwrap()), "{body}");
    let h2o = json!({"requests": [{"event": crate::common::h2o_event("//svc/things/1"), "eventId": uuid4()}]});
    let (st, body) = call(&app, "POST", "/v1/events:batchCreate", Some(admin), &h2o.to_string()).await;
    assert_eq!((st, body["code"].as_i64()), (503, Some(14)), "{body}");
    assert!(says_how(body["message"].as_str().unwrap()), "{body}");
    let (st, body) =
        call(&app, "POST", "/api/v1/keys", Some(admin), &json!({"name": "n", "scopes": ["search"]}).to_string()).await;
    assert_eq!((st, body["code"].as_str()), (503, Some("read_only")), "{body}");
    assert!(says_how(body["detail"].as_str().unwrap()), "{body}");
    close(o).await;

    // The key, installed as the message says: the trail goes on.
    let key = trailkeep::backup::keys_beside(keys_from).join("root-signing.1.pem");
    std::fs::copy(&key, serverkeys::keys_dir(dir).join("root-signing.1.pem")).unwrap();
    ingest(dir, None, Some(admin), 1).await;
    let o = open(dir, None).unwrap();
    assert!(o.state.ledger.can_sign() && o.state.ledger.size() == size + 1);
    close(o).await;
}

fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailkeep"));
    cmd.args(args).arg("--data-dir").arg(dir).env_remove("TRAILKEEP_KEY_PASSPHRASE").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `serve` until it listens, then SIGTERM; returns its exit status and stderr.
fn serve_once(dir: &Path, env: &[(&str, &str)]) -> (bool, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailkeep"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("TRAILKEEP_KEY_PASSPHRASE")
        .env("MALLOC_ARENA_MAX", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    if out.lines().map_while(Result::ok).any(|l| l.starts_with("listening on ")) {
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.success(), err)
}

#[test]
fn the_cli_encrypts_decrypts_and_serve_asks_for_the_passphrase() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (ok, err) = serve_once(&dir, &[]);
    assert!(ok, "{err}");
    let out = cli(&dir, &["keys", "files"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("root-signing") && text.contains("false"), "{text}");

    let pw = root.path().join("pw");
    std::fs::write(&pw, "s3cret passphrase\n").unwrap();
    let pw = pw.to_str().unwrap();
    let out = cli(&dir, &["keys", "encrypt"], &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("TRAILKEEP_KEY_PASSPHRASE"));
    let out = cli(&dir, &["keys", "encrypt", "--key-passphrase-file", pw], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("encrypted 2 key file(s)"));

    let (ok, err) = serve_once(&dir, &[]);
    assert!(!ok && err.contains("is encrypted") && err.contains("--key-passphrase-file"), "{err}");
    let (ok, err) = serve_once(&dir, &[("TRAILKEEP_KEY_PASSPHRASE", "nope")]);
    assert!(!ok && err.contains("wrong key passphrase"), "{err}");
    let (ok, err) = serve_once(&dir, &[("TRAILKEEP_KEY_PASSPHRASE", "s3cret passphrase")]);
    assert!(ok, "{err}");

    let out = cli(&dir, &["keys", "decrypt"], &[("TRAILKEEP_KEY_PASSPHRASE_FILE", pw)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, err) = serve_once(&dir, &[]);
    assert!(ok, "{err}");

    // A data directory others can read: refused with the fix, exit status 2.
    chmod(&dir, 0o750);
    let (ok, err) = serve_once(&dir, &[]);
    assert!(!ok && err.contains(&format!("chmod 700 {}", dir.display())), "{err}");
}

#[actix_web::test]
async fn backups_restores_and_exports_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (_, public) = ingest(&dir, None, None, 2).await;
    let path = |n: &str| root.path().join(n);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    let out = cli(&dir, &["backup", "--to", &s(&path("b.db"))], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("private keys not included"), "{text}");
    let out = cli(&dir, &["backup", "--to", &s(&path("k.db")), "--include-keys"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("page-token.1, root-signing.1"), "{text}");
    for p in ["b.db", "b.db.checkpoint", "k.db", "k.db.checkpoint", "k.db.keys/root-signing.1.pem"] {
        assert_eq!(mode(&path(p)), 0o600, "{p}");
    }

    let out = cli(&path("r1"), &["restore", "--from", &s(&path("b.db"))], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&public) && text.contains("read-only"), "{text}");
    let (ok, err) = serve_once(&path("r1"), &[]);
    assert!(
        ok && err.contains("read-only") && err.contains(&public) && err.contains("keys/root-signing.1.pem"),
        "{err}"
    );
    let out = cli(&path("r2"), &["restore", "--from", &s(&path("b.db")), "--keys", &s(&path("k.db.keys"))], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("the trail continues with root-signing.1"), "{text}");
    let (ok, err) = serve_once(&path("r2"), &[]);
    assert!(ok, "{err}");

    let export = path("out.csv");
    let out = cli(&dir, &["export", "--since", "1d", "--format", "csv", "--out", &s(&export)], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&export), 0o600);
}
