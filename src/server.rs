//! Opening a data directory into a running service: settings, signing key, tree, checkpoint check,
//! first admin key, writer thread, reader pool; and serving it over HTTP or HTTPS (certificate
//! reloaded on SIGHUP) with graceful shutdown.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{App, HttpServer, web};
use anyhow::{Context, bail};

use crate::config::Config;
use crate::configs::Registry;
use crate::configs::signing::SigningKeys;
use crate::datadir;
use crate::http::pangea::state::PangeaState;
use crate::http::state::AppState;
use crate::keys::{KeyStore, Scopes};
use crate::keystore;
use crate::ledger::{Ledger, check_against_checkpoint, random_bytes, read_checkpoint, verify_root_signature};
use crate::serverkeys;
use crate::store::{self, writer};
use crate::tls::Tls;

/// An opened data directory, ready to serve.
pub struct Opened {
    pub state: web::Data<AppState>,
    pub writer_thread: std::thread::JoinHandle<()>,
    /// The replication thread, when replication is configured (stops with `state.shutdown`).
    pub replication_thread: Option<std::thread::JoinHandle<()>>,
    /// The admin key created on first start (shown once).
    pub bootstrap_key: Option<String>,
}

pub fn open(config: Config) -> anyhow::Result<Opened> {
    let data_dir = config.data_dir.clone();
    let restoring = crate::replication::restore::restoring_path(&data_dir);
    if restoring.exists() && !store::db_path(&data_dir).exists() {
        bail!(
            "{} is left from an interrupted `trailkeep restore --from-archive`: run the restore again (or remove the file)",
            restoring.display()
        );
    }
    let conn = open_private_data_dir(&config)?;
    let tree_name = String::from_utf8(store::setting_or_init(&conn, "tree_name", || {
        hex::encode(random_bytes::<32>()).into_bytes()
    })?)?;
    let key_store =
        Arc::new(keystore::KeyStore::open(&serverkeys::keys_dir(&data_dir), config.key_passphrase.clone())?);
    if key_store.encrypting() && key_store.list()?.iter().any(|k| !k.encrypted) {
        tracing::warn!(
            key_store = %key_store.dir().display(),
            "a key passphrase is given but some key files are not encrypted: run `trailkeep keys encrypt` to encrypt them"
        );
    }
    let signing = serverkeys::root_signing_key(&conn, &key_store)?;
    let token_key = serverkeys::page_token_key(&key_store)?;
    let started = std::time::Instant::now();
    let tree = store::tree::load_tree(&conn)?;
    let leaves = tree.len();
    let ledger = Arc::new(match signing {
        serverkeys::RootSigning::Key(key) => {
            let seed = zeroize::Zeroizing::new(key.to_bytes());
            Ledger::new(tree, tree_name, *seed)
        }
        serverkeys::RootSigning::Missing { public, help } => {
            tracing::warn!(data_dir = %data_dir.display(), "{help}");
            Ledger::verify_only(tree, tree_name, public, help)
        }
    });
    let (first, recent) = store::tree::load_recent_roots(&conn)?;
    ledger.set_recent_roots(first, recent);
    tracing::info!(leaves, ms = started.elapsed().as_millis() as u64, "cold tree loaded");
    check_log(&conn, &ledger, &config)?;

    let mut bootstrap_key = None;
    if crate::keys::count_active_keys(&conn)? == 0 {
        let scopes = Scopes { admin: true, ..Default::default() };
        let key = crate::keys::create_key(&conn, "admin", scopes, &[])?;
        // The secret goes to the terminal only (`run`), never into the log.
        tracing::info!(key_id = %key.id, "first start: created the administrator key \"admin\", printed on stdout");
        bootstrap_key = Some(key.secret);
    }
    let pool = store::reader_pool(&data_dir, 8)?;
    let keys = Arc::new(KeyStore::new(pool.clone()));
    let signing_keys: Arc<dyn SigningKeys> = key_store;
    let configs = Arc::new(Registry::open(&conn, pool.clone(), signing_keys)?);
    let registry = configs.clone();
    let fts_text: store::FtsText = Arc::new(move |origin, config, event| registry.fts_text(origin, config, event));
    let (writer, writer_thread) = writer::spawn(conn, ledger.clone(), data_dir.clone(), fts_text)?;
    spawn_last_used_flusher(&data_dir, keys.clone(), writer.backup_active());
    let auth_limit = crate::http::authlimit::AuthLimiter::new(config.auth_fail_burst, config.auth_fail_per_sec);
    let shutdown = tokio::sync::watch::channel(false).0;
    let (replication, replication_thread) = match &config.replication {
        Some(r) => {
            let settings = crate::replication::uploader::Settings {
                target: crate::replication::Target::parse(&r.target)?,
                interval: std::time::Duration::from_micros(r.interval.max(1) as u64),
                max_events: r.max_events,
            };
            let handles = crate::replication::uploader::Handles {
                pool: pool.clone(),
                ledger: ledger.clone(),
                data_dir: data_dir.clone(),
                shutdown: shutdown.subscribe(),
                backup_active: writer.backup_active(),
            };
            let (status, join) = crate::replication::uploader::spawn(settings, handles)?;
            (Some(status), Some(join))
        }
        None => (None, None),
    };
    let state = web::Data::new(AppState {
        config,
        data_dir,
        pool,
        writer,
        ledger,
        keys,
        configs,
        auth_limit,
        token_key,
        pangea: PangeaState::default(),
        started: std::time::Instant::now(),
        shutdown,
        retention: Default::default(),
        verify: Default::default(),
        replication,
    });
    Ok(Opened { state, writer_thread, replication_thread, bootstrap_key })
}

/// Opens the data directory's database, private: a new directory is created 0700 (an empty one
/// narrowed to it); one that other users can read or write is refused with the `chmod` that fixes
/// it, except one written by a release before the key store, which the key move makes private.
fn open_private_data_dir(config: &Config) -> anyhow::Result<rusqlite::Connection> {
    let dir = &config.data_dir;
    datadir::prepare_dir(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    if let Err(e) = datadir::check_private(dir, "the data directory")
        && !store::written_before_key_store(dir)?
    {
        return Err(e);
    }
    let conn = serverkeys::open_rw(dir, config.key_passphrase.as_ref())?;
    datadir::check_private(dir, "the data directory")?;
    Ok(conn)
}

/// The latest stored root must match the tree rebuilt from the buffer roots and carry a valid
/// signature; the checkpoint file must not be ahead of (or forked from) the database.
fn check_log(conn: &rusqlite::Connection, ledger: &Ledger, config: &Config) -> anyhow::Result<()> {
    let mut tree = store::tree::TreeReader::new(conn, ledger);
    if let Some(root) = writer::latest_root(conn, &ledger.tree_name)? {
        let rebuilt = tree.root(root.size)?.map(hex::encode).unwrap_or_default();
        if rebuilt != root.root_hash {
            bail!(
                "the stored root at size {} does not match the stored buffer roots: the database was altered; run `trailkeep verify`",
                root.size
            );
        }
        if !verify_root_signature(&ledger.public_key(), &root) {
            bail!("the signature of the stored root at size {} does not verify: the database was altered", root.size);
        }
    }
    if let Some(cp) = read_checkpoint(&config.data_dir)?
        && let Err(e) = check_against_checkpoint(ledger.size(), tree.root(cp.root.size)?, &ledger.tree_name, &cp)
    {
        if config.accept_db_state {
            tracing::warn!(error = %e, "starting anyway: --accept-db-state given");
        } else {
            bail!(
                "{e}. Refusing to start; after investigating, restart with --accept-db-state to accept the database as it is"
            );
        }
    }
    Ok(())
}

/// Writes the keys' last-use times every 5 s, on a connection of its own; not while an online
/// backup runs (a commit by another connection makes the copy start over): they wait in memory.
fn spawn_last_used_flusher(data_dir: &std::path::Path, keys: Arc<KeyStore>, backup_active: Arc<AtomicBool>) {
    let dir = data_dir.to_path_buf();
    let _ = std::thread::Builder::new().name("trailkeep-keys".into()).spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            if backup_active.load(Ordering::Acquire) {
                continue;
            }
            if let Ok(conn) = rusqlite::Connection::open(store::db_path(&dir)) {
                let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
                if let Err(e) = keys.flush_last_used(&conn) {
                    tracing::debug!(error = %e, "last-used flush failed");
                }
            }
        }
    });
}

/// SQLite allocates with the C library, and glibc gives threads that allocate at the same time
/// arenas of their own, which keep what they once held: the page caches of the reader connections,
/// used from many blocking threads, spread over up to 8 arenas per core (`BENCHMARKS.md`, memory).
/// `trailkeep serve` therefore starts itself again, once, with `MALLOC_ARENA_MAX=2` (same process
/// id, same arguments) unless the environment already sets it or `GLIBC_TUNABLES`. Returns only
/// if the arena count is already settled, or with the error that kept the new image from starting
/// (the server then runs as it is).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn cap_malloc_arenas() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Some(e),
    };
    Some(std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("MALLOC_ARENA_MAX", "2").exec())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn cap_malloc_arenas() -> Option<std::io::Error> {
    None
}

/// Reads the certificate and key when TLS is configured; logs what is served and any validity
/// warning. Checked before the data directory is opened, so a bad file stops `serve` at once.
fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<Tls>>> {
    let Some(files) = config.tls.clone() else { return Ok(None) };
    let (tls, info) = Tls::load(files)?;
    tracing::info!(certificate = %info, "HTTPS: TLS 1.2 and 1.3");
    warn_about_tls(&info);
    if let Some(u) = &config.public_url
        && u.starts_with("http://")
    {
        tracing::warn!(
            "public_url starts with http:// while the server speaks HTTPS only: links it hands out will not work"
        );
    }
    Ok(Some(Arc::new(tls)))
}

fn warn_about_tls(info: &crate::tls::CertInfo) {
    for w in info.warnings(chrono::Utc::now().timestamp()) {
        tracing::warn!("{w}");
    }
}

/// SIGHUP reads the certificate and key again (`systemctl reload`, certbot's deploy hook); new
/// handshakes get the new certificate, open connections are untouched, and a bad new pair is
/// logged and ignored. Without TLS there is nothing to reload, and SIGHUP no longer stops the
/// server.
fn reload_tls_on_sighup(tls: Option<Arc<Tls>>) -> anyhow::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(tls) = tls.clone() else {
                tracing::info!("SIGHUP: nothing to reload (TLS is off)");
                continue;
            };
            match web::block(move || tls.reload()).await {
                Ok(Ok(info)) => {
                    tracing::info!(certificate = %info, "SIGHUP: TLS certificate reloaded");
                    warn_about_tls(&info);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; still serving the previous one")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload did not run; still serving the previous one"),
            }
        }
    });
    Ok(())
}

/// Serves until SIGINT/SIGTERM, then drains in-flight requests and closes the database.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    crate::http::observe::init_metrics();
    let tls = load_tls(&config)?;
    let opened = open(config)?;
    // Plain lines on stdout, not log events: the operator reads them once (and scripts parse
    // them), whatever the log format; the secret never reaches a log line.
    let mut out = std::io::stdout();
    if let Some(key) = &opened.bootstrap_key {
        writeln!(out, "first start: created an administrator API key (shown only once, keep it safe):")?;
        writeln!(out, "admin key: {key}")?;
    }
    let state = opened.state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap(actix_web::middleware::from_fn(crate::http::observe::observe))
            .wrap(actix_web::middleware::NormalizePath::new(actix_web::middleware::TrailingSlash::MergeOnly))
            .configure(crate::http::configure)
    })
    .workers(2)
    // SQLite reads, argon2 and file I/O run on the blocking pool: a small cap bounds memory
    // (each thread gets its own malloc arena and SQLite scratch) without limiting throughput on
    // a few cores.
    .worker_max_blocking_threads(16)
    .shutdown_timeout(30)
    .disable_signals();
    let server = match &tls {
        Some(tls) => server.bind_rustls_0_23(listen, tls.server_config()?),
        None => server.bind(listen),
    }
    .with_context(|| format!("cannot listen on {listen}"))?;
    let addrs = server.addrs();
    let server = server.run();
    // Our own signal handling, registered before we announce the address, so a SIGTERM at any
    // moment after "listening on" is a graceful stop.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    reload_tls_on_sighup(tls)?;
    // A read-only trail (no root-signing key) cannot log the purge events: no scheduled purge.
    if opened.state.config.retention.is_enabled() && opened.state.ledger.can_sign() {
        let state = opened.state.clone();
        actix_web::rt::spawn(async move {
            let every = std::time::Duration::from_micros(state.config.retention.interval.max(1_000_000) as u64);
            let mut stop = state.shutdown.subscribe();
            loop {
                match crate::http::admin::run_purge(&state).await {
                    Ok(_) => {}
                    Err(crate::http::admin::PurgeRunError::Running { .. }) => {
                        tracing::debug!("retention purge: one asked for through the API is still running")
                    }
                    Err(crate::http::admin::PurgeRunError::Failed(e)) => tracing::warn!(error = %e, "retention purge"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => break,
                }
            }
        });
    }
    let handle = server.handle();
    let shutdown = opened.state.shutdown.clone();
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received: finishing in-flight requests");
        let _ = shutdown.send(true);
        handle.stop(true).await;
    });
    for a in &addrs {
        tracing::info!(address = %a, scheme, "listening");
        writeln!(out, "listening on {scheme}://{a}")?;
    }
    out.flush()?;
    server.await?;
    tracing::info!("HTTP server stopped; closing the database");
    opened.state.writer.stop().await;
    let _ = opened.state.shutdown.send(true);
    drop(opened.state);
    opened.writer_thread.join().map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    if let Some(t) = opened.replication_thread {
        let _ = t.join();
    }
    Ok(())
}
