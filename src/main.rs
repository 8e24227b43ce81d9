//! The `trailkeep` command line. Parsing only; everything else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use trailkeep::config::{Config, FileConfig, Overrides, default_data_dir};

/// mimalloc instead of glibc malloc: the request path builds and drops many small JSON values, and
/// glibc's bin management (`_int_malloc`, `unlink_chunk`) took over half of the HTTP threads' CPU in
/// bulk ingest (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "trailkeep", version, about = "A self-hosted, tamper-evident audit trail server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DataDir {
    /// Data directory (database, checkpoint file). Default: $STATE_DIRECTORY, else ~/.local/share/trailkeep
    #[arg(long, env = "TRAILKEEP_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Serve(ServeArgs),
    /// Manage API keys
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Take a consistent online copy of the database (and its checkpoint) while the server runs
    Backup {
        #[command(flatten)]
        dir: DataDir,
        /// Destination file (must not exist); its checkpoint is written to FILE.checkpoint
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup, or an archive made by replication, into an empty data directory
    Restore {
        #[command(flatten)]
        dir: DataDir,
        /// The backup file written by `trailkeep backup`
        #[arg(long, required_unless_present = "from_archive", conflicts_with = "from_archive")]
        from: Option<PathBuf>,
        /// A replication archive (s3://bucket/prefix or file:///path; S3 settings from the AWS_*
        /// variables): verified, then rebuilt into a data directory
        #[arg(long)]
        from_archive: Option<String>,
        /// With --from-archive: the trail's Ed25519 signing key (PKCS#8 PEM), so that the restored
        /// server continues the same trail; without it the restored data is served read-only
        #[arg(long, requires = "from_archive")]
        signing_key: Option<PathBuf>,
    },
    /// Export events (streamed; a progress bar on a terminal)
    Export {
        #[command(flatten)]
        dir: DataDir,
        /// Start of the receive-time window (RFC 3339 or a duration such as 7d)
        #[arg(long)]
        since: Option<String>,
        /// End of the receive-time window (RFC 3339 or a duration)
        #[arg(long)]
        until: Option<String>,
        /// Pangea query language, e.g. 'actor:alice AND -status:ok'
        #[arg(long, default_value = "")]
        query: String,
        /// csv, json or jsonl.gz
        #[arg(long, default_value = "jsonl.gz", value_parser = ["csv", "json", "jsonl.gz"])]
        format: String,
        /// Output file (default: standard output)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print an example configuration file, or the effective configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Verify the whole log: hashes, trees, signed roots and the checkpoint file; or, with
    /// --archive, a replication archive with no database
    Verify {
        #[command(flatten)]
        dir: DataDir,
        /// Also compare with a trusted checkpoint file kept elsewhere
        #[arg(long, conflicts_with = "archive")]
        against: Option<PathBuf>,
        /// Verify a replication archive instead (s3://bucket/prefix or file:///path)
        #[arg(long)]
        archive: Option<String>,
        /// With --archive: the trail's public key to check signatures against (PEM, or the base64
        /// printed by `trailkeep keys public`); default: the archive's own public-key.pem
        #[arg(long, requires = "archive")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "TRAILKEEP_LISTEN")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    dir: DataDir,
    /// TOML configuration file
    #[arg(long, env = "TRAILKEEP_CONFIG")]
    config: Option<PathBuf>,
    /// Public base URL (for OIDC, discovery and download links)
    #[arg(long, env = "TRAILKEEP_PUBLIC_URL")]
    public_url: Option<String>,
    /// Keep private source IP addresses instead of redacting them to "private"
    #[arg(long, env = "TRAILKEEP_NO_REDACT_PRIVATE_IPS")]
    no_redact_private_ips: bool,
    /// Do not record an event for each H2O search
    #[arg(long, env = "TRAILKEEP_NO_SELF_AUDIT")]
    no_self_audit: bool,
    /// Start even if the database disagrees with the checkpoint file (after an operator decided so)
    #[arg(long)]
    accept_db_state: bool,
    /// Default retention period (e.g. 400d; "forever" keeps everything)
    #[arg(long, env = "TRAILKEEP_RETENTION_DEFAULT")]
    retention_default: Option<String>,
    /// Failed authentications per client address and per key id allowed in a burst before 429
    /// (default 20; 0 turns the limit off)
    #[arg(long, env = "TRAILKEEP_AUTH_FAIL_BURST")]
    auth_fail_burst: Option<u32>,
    /// Failed authentications per second allowed after the burst (default 1; fractions allowed)
    #[arg(long, env = "TRAILKEEP_AUTH_FAIL_PER_SEC")]
    auth_fail_per_sec: Option<f64>,
    /// Replicate every event to object storage: s3://bucket/prefix or file:///path (S3
    /// credentials, region and endpoint from the standard AWS_* variables)
    #[arg(long, env = "TRAILKEEP_REPLICATE_TO")]
    replicate_to: Option<String>,
    /// How often replication uploads what was committed since (default 60s)
    #[arg(long, env = "TRAILKEEP_REPLICATION_INTERVAL")]
    replication_interval: Option<String>,
    /// Log format
    #[arg(long, env = "TRAILKEEP_LOG_FORMAT", value_parser = ["pretty", "json"], default_value = "pretty")]
    log_format: String,
}

impl ServeArgs {
    fn resolve(&self) -> anyhow::Result<Config> {
        let file = self.config.as_deref().map(FileConfig::load).transpose()?.unwrap_or_default();
        Config::resolve(
            file,
            Overrides {
                listen: self.listen,
                data_dir: self.dir.data_dir.clone(),
                public_url: self.public_url.clone(),
                no_redact_private_ips: self.no_redact_private_ips,
                no_self_audit: self.no_self_audit,
                accept_db_state: self.accept_db_state,
                retention_default: self.retention_default.clone(),
                auth_fail_burst: self.auth_fail_burst,
                auth_fail_per_sec: self.auth_fail_per_sec,
                replicate_to: self.replicate_to.clone(),
                replication_interval: self.replication_interval.clone(),
            },
        )
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a commented example configuration file
    Example,
    /// Print the effective configuration (file < TRAILKEEP_* environment < flags), secrets masked
    Show(Box<ServeArgs>),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed alone on the last line
    Create {
        #[arg(long)]
        name: String,
        /// ingest, search or admin (admin implies all); repeatable
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Limit the key to a workspace (e.g. workspaces/w1); repeatable
        #[arg(long = "workspace")]
        workspaces: Vec<String>,
    },
    /// List keys (never their secrets)
    List,
    /// Revoke a key by id; takes effect on a running server at once
    Revoke { id: String },
    /// Print the server's Ed25519 public key (base64) and tree name
    Public,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trailkeep: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAILKEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" { b.json().init() } else { b.init() }
}

fn data_dir(d: &DataDir) -> PathBuf {
    d.data_dir.clone().unwrap_or_else(default_data_dir)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => {
            let not_capped = trailkeep::server::cap_malloc_arenas();
            init_logs(&a.log_format);
            if let Some(e) = not_capped {
                tracing::warn!(error = %e, "could not restart with MALLOC_ARENA_MAX=2; running with glibc's default arenas");
            }
            let config = a.resolve()?;
            tracing::info!(data_dir = %config.data_dir.display(), "starting trailkeep {}", env!("CARGO_PKG_VERSION"));
            actix_web::rt::System::new().block_on(trailkeep::server::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command, dir } => keys(command, &data_dir(&dir)),
        Command::Config { command: ConfigCommand::Example } => {
            print!("{}", trailkeep::config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command: ConfigCommand::Show(a) } => {
            print!("{}", a.resolve()?.show());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { dir, since, until, query, format, out } => {
            let n = trailkeep::export::export_cli(
                &data_dir(&dir),
                since.as_deref(),
                until.as_deref(),
                &query,
                &format,
                out.as_deref(),
            )?;
            eprintln!("exported {n} events");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { dir, to } => {
            let cp = trailkeep::backup::backup(&data_dir(&dir), &to)?;
            println!("backup written to {} (tree size {}, root {})", to.display(), cp.root.size, cp.root.root_hash);
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { dir, from_archive: Some(url), signing_key, .. } => {
            let dir = data_dir(&dir);
            let r = trailkeep::replication::restore::restore_from_archive(&url, &dir, signing_key.as_deref())?;
            println!(
                "restored {} events ({} objects, tree size {}) from {url} into {}; run `trailkeep verify` to check it",
                r.events,
                r.objects,
                r.tree_size,
                dir.display()
            );
            if !r.writable {
                println!(
                    "no --signing-key given: the restored trail is served read-only; restore again with the trail's signing key to continue it"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { dir, from, .. } => {
            let dir = data_dir(&dir);
            let from = from.ok_or_else(|| anyhow::anyhow!("give --from FILE or --from-archive URL"))?;
            trailkeep::backup::restore(&from, &dir)?;
            println!("restored {} into {}; run `trailkeep verify` to check it", from.display(), dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { archive: Some(url), public_key, .. } => {
            let r = trailkeep::replication::archive::verify_archive(&url, public_key.as_deref())?;
            for n in &r.notes {
                println!("note: {n}");
            }
            match &r.problem {
                None => {
                    let purged = if r.purged > 0 {
                        format!(" ({} with content removed by retention)", r.purged)
                    } else {
                        String::new()
                    };
                    let root = r
                        .last_root
                        .as_ref()
                        .map_or(String::new(), |s| format!(", root {} published {}", s.root_hash, s.published_at));
                    println!("ok: {} objects, {} events{purged}, tree size {}{root}", r.objects, r.events, r.tree_size);
                    Ok(ExitCode::SUCCESS)
                }
                Some(p) => {
                    println!("verified {} objects ({} events) before the first problem", r.objects, r.events);
                    println!("FAILED: {p}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Verify { dir, against, .. } => {
            let dir = data_dir(&dir);
            let report = trailkeep::verify::verify(&dir, against.as_deref())?;
            for p in &report.problems {
                println!("{}: {}", p.kind, p.detail);
            }
            if report.problems.is_empty() {
                let purged = if report.purged > 0 {
                    format!(" ({} with content removed by retention)", report.purged)
                } else {
                    String::new()
                };
                println!("ok: {} events{purged}, tree size {}", report.events, report.tree_size);
                Ok(ExitCode::SUCCESS)
            } else {
                println!("FAILED: {} problem(s)", report.problems.len());
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn keys(command: KeysCommand, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let conn = trailkeep::store::open_rw(dir)?;
    match command {
        KeysCommand::Create { name, scopes, workspaces } => {
            let scopes = trailkeep::keys::Scopes::parse_list(&scopes).map_err(|e| anyhow::anyhow!(e))?;
            let k = trailkeep::keys::create_key(&conn, &name, scopes, &workspaces)?;
            println!("created key {} ({}); the secret is shown only once:", k.id, scopes.names().join(","));
            println!("{}", k.secret);
        }
        KeysCommand::List => {
            println!(
                "{:<16}  {:<20}  {:<20}  {:<24}  {:<24}  workspaces",
                "id", "name", "scopes", "last used", "revoked"
            );
            for k in trailkeep::keys::list_keys(&conn)? {
                let t = |v: Option<i64>| v.map(trailkeep::ledger::format_micros).unwrap_or_else(|| "-".into());
                let ws = if k.workspaces.is_empty() { "all".to_string() } else { k.workspaces.join(",") };
                println!(
                    "{:<16}  {:<20}  {:<20}  {:<24}  {:<24}  {ws}",
                    k.id,
                    k.name,
                    k.scopes.names().join(","),
                    t(k.last_used_at),
                    t(k.revoked_at)
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !trailkeep::keys::revoke_key(&conn, &id)? {
                anyhow::bail!("no active key with id {id}");
            }
            println!("revoked {id}");
        }
        KeysCommand::Public => {
            let Some(key) = trailkeep::store::public_key(&conn)? else {
                anyhow::bail!("no signing key yet: start the server once");
            };
            let tree = String::from_utf8(trailkeep::store::get_setting(&conn, "tree_name")?.unwrap_or_default())?;
            let l = trailkeep::ledger::Ledger::verify_only(Default::default(), tree.clone(), key);
            println!("algorithm: ED25519");
            println!("tree_name: {tree}");
            println!("public_key: {}", l.public_key_b64());
        }
    }
    Ok(ExitCode::SUCCESS)
}
