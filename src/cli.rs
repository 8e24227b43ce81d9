//! The `trailkeep` command line: argument parsing and dispatch to the library (`src/main.rs` only
//! calls [`main`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, FileConfig, Overrides, default_data_dir};
use crate::keystore::Passphrase;
use crate::logging::LogFormat;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "trailkeep", version, about = "A self-hosted, tamper-evident audit trail server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DataDir {
    /// Data directory (database, checkpoint file, key store). Default: $STATE_DIRECTORY, else ~/.local/share/trailkeep
    #[arg(long, env = "TRAILKEEP_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// File holding the key store's passphrase (its first line; also TRAILKEEP_KEY_PASSPHRASE):
    /// encrypts new key files and opens encrypted ones
    #[arg(long, env = "TRAILKEEP_KEY_PASSPHRASE_FILE", global = true)]
    key_passphrase_file: Option<PathBuf>,
}

impl DataDir {
    fn dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// The key passphrase: `--key-passphrase-file` (or `TRAILKEEP_KEY_PASSPHRASE_FILE`), else
    /// `TRAILKEEP_KEY_PASSPHRASE`, else none.
    fn passphrase(&self) -> anyhow::Result<Option<Passphrase>> {
        if let Some(f) = &self.key_passphrase_file {
            return Passphrase::from_file(f).map(Some);
        }
        match std::env::var("TRAILKEEP_KEY_PASSPHRASE") {
            Ok(p) => Passphrase::new(p).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("TRAILKEEP_KEY_PASSPHRASE is not valid UTF-8"),
        }
    }
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
    /// Manage audit configs (Pangea audit service configurations: schema, signing)
    Configs {
        #[command(subcommand)]
        command: ConfigsCommand,
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
        /// Also copy the key store (the private keys, encrypted if the store is) to FILE.keys/
        #[arg(long)]
        include_keys: bool,
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
        /// With --from-archive: the trail's Ed25519 root-signing key (PKCS#8 PEM), put into the
        /// key store (sealed with the key passphrase, if one is given) so that the restored server
        /// continues the same trail; without it the restored trail is served read-only
        #[arg(long, requires = "from_archive")]
        signing_key: Option<PathBuf>,
        /// With --from: key files to continue the trail with (default: FILE.keys/ if the backup
        /// has one)
        #[arg(long, conflicts_with = "from_archive")]
        keys: Option<PathBuf>,
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
        /// Only this audit config's events, with its fields (CSV columns, query fields); default:
        /// every event with the standard fields
        #[arg(long)]
        config: Option<String>,
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
    /// Serve HTTPS with this PEM certificate chain (server certificate first, then intermediates);
    /// read again on SIGHUP
    #[arg(long, env = "TRAILKEEP_TLS_CERT", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key (PKCS#8, RSA or EC, unencrypted); read again on SIGHUP
    #[arg(long, env = "TRAILKEEP_TLS_KEY", value_name = "PEM")]
    tls_key: Option<PathBuf>,
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
    /// Where online backups (POST /api/v1/backups) are written (default DATA_DIR/backups)
    #[arg(long, env = "TRAILKEEP_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
    /// Log format on stderr: auto = pretty on a terminal, JSON lines otherwise (colours only on a
    /// terminal, never with NO_COLOR)
    #[arg(long, env = "TRAILKEEP_LOG_FORMAT", value_parser = LogFormat::NAMES, default_value = "auto")]
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
                tls_cert: self.tls_cert.clone(),
                tls_key: self.tls_key.clone(),
                key_passphrase: self.dir.passphrase()?,
                backup_dir: self.backup_dir.clone(),
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
        /// Bind the key to an audit config (pci_…); repeatable. Default: the default config
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// List keys (never their secrets)
    List,
    /// Revoke a key by id; takes effect on a running server at once
    Revoke { id: String },
    /// Print the server's Ed25519 public key (base64) and tree name
    Public,
    /// List the key store's files (the server's own keys: name, version, kind, encrypted)
    Files,
    /// Encrypt the key store's files with the passphrase given (TRAILKEEP_KEY_PASSPHRASE or
    /// --key-passphrase-file); stop the server first
    Encrypt,
    /// Decrypt the key store's files (needs the passphrase); with `encrypt`, changes it
    Decrypt,
    /// Make a new version of a server-signing config's event-signing key (older events keep
    /// verifying with theirs)
    RotateSigning {
        #[arg(long)]
        config: String,
    },
}

#[derive(Subcommand)]
enum ConfigsCommand {
    /// Create a config; its id is printed alone on the last line
    Create {
        #[arg(long)]
        name: String,
        /// AuditSchema JSON file ({"fields": [{"id": …, "type": …}, …]}); default: the standard schema
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Who signs events: none (clients may, with sign_local) or server (the config's own key)
        #[arg(long, default_value = "none", value_parser = ["none", "server"])]
        signing: String,
    },
    /// List configs
    List,
    /// Print a config (AuditServiceConfig JSON, with its event count)
    Show { id: String },
    /// Rename a config or change its schema (while it holds events: add optional fields only)
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// AuditSchema JSON file
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Delete a config that holds no events and no active key is bound to
    Delete { id: String },
}

/// Parses the process arguments and runs the command: the binary's whole `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trailkeep: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Whatever this process creates (database, WAL, checkpoint, key files, backups, exports) is
    // private to its user; the library also sets 0600/0700 explicitly where it creates files.
    crate::datadir::private_umask();
    match cli.command {
        Command::Serve(a) => {
            let not_capped = crate::server::cap_malloc_arenas();
            crate::logging::init(a.log_format.parse().map_err(|e: String| anyhow::anyhow!(e))?);
            if let Some(e) = not_capped {
                tracing::warn!(error = %e, "could not restart with MALLOC_ARENA_MAX=2; running with glibc's default arenas");
            }
            let config = a.resolve()?;
            tracing::info!(data_dir = %config.data_dir.display(), "starting trailkeep {}", env!("CARGO_PKG_VERSION"));
            actix_web::rt::System::new().block_on(crate::server::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command, dir } => keys(command, &dir),
        Command::Configs { command, dir } => configs(command, &dir),
        Command::Config { command: ConfigCommand::Example } => {
            print!("{}", crate::config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command: ConfigCommand::Show(a) } => {
            print!("{}", a.resolve()?.show());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { dir, since, until, query, config, format, out } => {
            let n = crate::export::export_cli(
                &dir.dir(),
                crate::export::ExportArgs {
                    since: since.as_deref(),
                    until: until.as_deref(),
                    query: &query,
                    config: config.as_deref(),
                    format: &format,
                },
                out.as_deref(),
            )?;
            eprintln!("exported {n} events");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { dir, to, include_keys } => {
            let b = crate::backup::backup(&dir.dir(), &to, include_keys)?;
            let cp = &b.checkpoint.root;
            println!("backup written to {} (tree size {}, root {})", to.display(), cp.size, cp.root_hash);
            if include_keys {
                let ids: Vec<String> = b.keys.iter().map(|k| k.id()).collect();
                println!(
                    "key files copied to {}: {} (private keys: keep this copy as safe as the server)",
                    crate::backup::keys_beside(&to).display(),
                    ids.join(", ")
                );
            } else {
                println!("private keys not included (--include-keys copies them); the backup verifies without them");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { dir: d, from_archive: Some(url), signing_key, .. } => {
            let dir = d.dir();
            let r =
                crate::replication::restore::restore_from_archive(&url, &dir, signing_key.as_deref(), d.passphrase()?)?;
            println!(
                "restored {} events ({} objects, tree size {}) from {url} into {}; run `trailkeep verify` to check it",
                r.events,
                r.objects,
                r.tree_size,
                dir.display()
            );
            let t = &r.timing;
            println!(
                "took {:.2} s (CPU of the inserting thread {:.2} s, of the free-text thread {:.2} s; {:.2} s after the last object)",
                t.total.as_secs_f64(),
                t.insert_cpu.as_secs_f64(),
                t.free_text_cpu.as_secs_f64(),
                t.finish.as_secs_f64()
            );
            match &r.root_signing {
                Some(k) => {
                    println!("the trail continues with its root-signing key, now in the key store as {}", k.id())
                }
                None => println!(
                    "no --signing-key given: `serve` serves the restored trail read-only until the root-signing key \
                     (Ed25519 public key {}) is installed as {}/keys/{}.1.pem (`install -m 600 FILE ...`)",
                    r.public_key,
                    dir.display(),
                    crate::serverkeys::ROOT_SIGNING
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { dir, from, keys, .. } => {
            let dir = dir.dir();
            let from = from.ok_or_else(|| anyhow::anyhow!("give --from FILE or --from-archive URL"))?;
            let r = crate::backup::restore(&from, &dir, keys.as_deref())?;
            println!("restored {} into {}; run `trailkeep verify` to check it", from.display(), dir.display());
            println!("the trail needs its root-signing key to continue: Ed25519 public key {}", r.public_key);
            match (&r.root_signing, r.keys_in_database) {
                (Some(k), _) => println!("restored key files: {} (the trail continues with {})", ids(&r.keys), k.id()),
                _ if r.keys_in_database => println!(
                    "the backup was made by an older release and holds its keys; they move to the key store at the first start"
                ),
                (None, _) => println!(
                    "that key was not given: `serve` serves the trail read-only (searches, proofs, exports) \
                     until its file is in {}/keys (restore again with --keys DIR, or `install -m 600 FILE {}/keys/`)",
                    dir.display(),
                    dir.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { archive: Some(url), public_key, .. } => {
            let r = crate::replication::archive::verify_archive(&url, public_key.as_deref())?;
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
            let dir = dir.dir();
            let report = crate::verify::verify(&dir, against.as_deref())?;
            for p in &report.problems {
                println!("{}: {}", p.kind, p.detail);
            }
            if report.problems.is_empty() {
                let purged = if report.purge_pending > 0 {
                    format!(
                        " ({} with content removed by retention, {} of them awaiting their purge events: logged at the end of the purge run, or at the server's next start)",
                        report.purged, report.purge_pending
                    )
                } else if report.purged > 0 {
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

fn ids(keys: &[crate::keystore::KeyInfo]) -> String {
    keys.iter().map(|k| k.id()).collect::<Vec<_>>().join(", ")
}

fn keys(command: KeysCommand, d: &DataDir) -> anyhow::Result<ExitCode> {
    let dir = d.dir();
    let passphrase = d.passphrase()?;
    let key_dir = crate::serverkeys::keys_dir(&dir);
    // The API-key commands open the database (and finish moving an older release's keys out).
    let open = || crate::serverkeys::open_rw(&dir, passphrase.as_ref());
    match command {
        KeysCommand::Create { name, scopes, workspaces, configs } => {
            let conn = open()?;
            let scopes = crate::keys::Scopes::parse_list(&scopes).map_err(|e| anyhow::anyhow!(e))?;
            let k = crate::keys::create_key_with(&conn, &name, scopes, &workspaces, &configs)?;
            println!("created key {} ({}); the secret is shown only once:", k.id, scopes.names().join(","));
            println!("{}", k.secret);
        }
        KeysCommand::List => {
            let conn = open()?;
            println!(
                "{:<16}  {:<20}  {:<20}  {:<24}  {:<24}  {:<20}  configs",
                "id", "name", "scopes", "last used", "revoked", "workspaces"
            );
            for k in crate::keys::list_keys(&conn)? {
                let t = |v: Option<i64>| v.map(crate::time::format_micros).unwrap_or_else(|| "-".into());
                let ws = if k.workspaces.is_empty() { "all".to_string() } else { k.workspaces.join(",") };
                let cf = if k.configs.is_empty() { "default".to_string() } else { k.configs.join(",") };
                println!(
                    "{:<16}  {:<20}  {:<20}  {:<24}  {:<24}  {ws:<20}  {cf}",
                    k.id,
                    k.name,
                    k.scopes.names().join(","),
                    t(k.last_used_at),
                    t(k.revoked_at)
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !crate::keys::revoke_key(&open()?, &id)? {
                anyhow::bail!("no active key with id {id}");
            }
            println!("revoked {id}");
        }
        KeysCommand::Public => {
            let conn = open()?;
            let Some(public) = crate::serverkeys::public_key(&conn)? else {
                anyhow::bail!("no signing key yet: start the server once");
            };
            let tree = String::from_utf8(crate::store::get_setting(&conn, "tree_name")?.unwrap_or_default())?;
            println!("algorithm: ED25519");
            println!("tree_name: {tree}");
            println!("public_key: {}", B64.encode(public.as_bytes()));
        }
        KeysCommand::Files => {
            if !key_dir.exists() {
                anyhow::bail!("no key store at {} yet: start the server once", key_dir.display());
            }
            println!("{:<32}  {:<8}  {:<12}  {:<10}  public key", "name", "version", "kind", "encrypted");
            for k in crate::keystore::scan(&key_dir)? {
                let public = k.public_key.map(|p| B64.encode(p.as_bytes())).unwrap_or_else(|| "-".into());
                println!("{:<32}  {:<8}  {:<12}  {:<10}  {public}", k.name, k.version, k.kind.name(), k.encrypted);
            }
        }
        KeysCommand::Encrypt | KeysCommand::Decrypt => {
            let Some(p) = passphrase else {
                anyhow::bail!("give the passphrase with TRAILKEEP_KEY_PASSPHRASE or --key-passphrase-file");
            };
            let ks = crate::keystore::KeyStore::open(&key_dir, Some(p))?;
            if matches!(command, KeysCommand::Encrypt) {
                println!("encrypted {} key file(s) in {}", ks.encrypt_all()?, key_dir.display());
            } else {
                println!("decrypted {} key file(s) in {}", ks.decrypt_all()?, key_dir.display());
            }
        }
        KeysCommand::RotateSigning { config } => {
            let mut conn = open()?;
            let c = crate::configs::rotate_signing(&mut conn, &config, &key_store(d)?).map_err(config_error)?;
            let (name, version) = c.signing_key.unwrap_or_default();
            println!("config {}: events are now signed with key {name} version {version}", c.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The data directory's key store, with the passphrase if one is given.
fn key_store(d: &DataDir) -> anyhow::Result<crate::keystore::KeyStore> {
    let dir = crate::serverkeys::keys_dir(&d.dir());
    Ok(crate::keystore::KeyStore::open(&dir, d.passphrase()?)?)
}

/// A config error as the CLI reports it (validation problems with their JSON pointers).
fn config_error(e: crate::configs::ConfigError) -> anyhow::Error {
    match e {
        crate::configs::ConfigError::Invalid(problems) => {
            let lines: Vec<String> =
                problems.iter().map(|p| format!("{} ({}): {}", p.source, p.code, p.detail)).collect();
            anyhow::anyhow!("invalid config:\n  {}", lines.join("\n  "))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

fn read_schema(path: &std::path::Path) -> anyhow::Result<crate::configs::schema::AuditSchema> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let v = crate::event::canonical::parse_strict(&bytes, 16)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", path.display()))?;
    crate::configs::schema::AuditSchema::parse(&v, "/schema")
        .map_err(|p| config_error(crate::configs::ConfigError::Invalid(p)))
}

fn configs(command: ConfigsCommand, d: &DataDir) -> anyhow::Result<ExitCode> {
    use crate::configs::{self as cf, ConfigUpdate, NewConfig, Signing};
    let dir = d.dir();
    let mut conn = crate::serverkeys::open_rw(&dir, d.passphrase()?.as_ref())?;
    match command {
        ConfigsCommand::Create { name, schema, signing } => {
            let schema = match schema {
                Some(p) => read_schema(&p)?,
                None => cf::schema::standard_schema(),
            };
            let signing = Signing::parse(&signing).unwrap_or(Signing::None);
            // Only a server-signing config makes a key (sealed if the store is encrypted).
            let keys = match signing {
                Signing::Server => Some(key_store(d)?),
                Signing::None => None,
            };
            let keys = keys.as_ref().map(|k| k as &dyn cf::signing::SigningKeys);
            let c = cf::create(&mut conn, NewConfig { name, schema, signing }, keys).map_err(config_error)?;
            println!("created config {} ({} fields, signing {})", c.name, c.schema.fields.len(), c.signing.name());
            println!("{}", c.id);
        }
        ConfigsCommand::List => {
            println!("{:<36}  {:<20}  {:<7}  {:>6}  {:>10}  updated", "id", "name", "signing", "fields", "events");
            for c in cf::load_all(&conn)? {
                let name = if c.is_default() { format!("{} (default)", c.name) } else { c.name.clone() };
                println!(
                    "{:<36}  {:<20}  {:<7}  {:>6}  {:>10}  {}",
                    c.id,
                    name,
                    c.signing.name(),
                    c.schema.fields.len(),
                    c.events,
                    crate::time::format_micros(c.updated_at)
                );
            }
        }
        ConfigsCommand::Show { id } => {
            let c = cf::get(&conn, &id)?.ok_or_else(|| anyhow::anyhow!("no config with id {id}"))?;
            let mut v = c.to_api();
            v["events"] = serde_json::json!(c.events);
            if let Some((_, version)) = &c.signing_key {
                v["vault_key_version"] = serde_json::json!(version);
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ConfigsCommand::Update { id, name, schema } => {
            if name.is_none() && schema.is_none() {
                anyhow::bail!("nothing to change: give --name and/or --schema");
            }
            let schema = schema.as_deref().map(read_schema).transpose()?;
            let c = cf::update(&mut conn, &id, ConfigUpdate { name, schema, expect_updated_at: None })
                .map_err(config_error)?;
            println!("updated config {} ({})", c.id, c.name);
        }
        ConfigsCommand::Delete { id } => {
            let c = cf::delete(&mut conn, &id).map_err(config_error)?;
            println!("deleted config {} ({})", c.id, c.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
