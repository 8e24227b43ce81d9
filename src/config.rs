//! Settings: defaults < TOML file (`--config`) < `TRAILKEEP_*` environment < flags. The last two
//! are merged by clap into [`Overrides`]; [`Config::resolve`] applies them over the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::keystore::Passphrase;
use crate::time::{format_duration, parse_duration};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How often the retention purge runs when a retention period is configured.
pub const DEFAULT_PURGE_INTERVAL_US: i64 = 3600 * 1_000_000;
/// Failed authentications allowed at once per client address and per key id before 429.
pub const DEFAULT_AUTH_FAIL_BURST: u32 = 20;
/// Failed authentications per second allowed after the burst (the refill rate).
pub const DEFAULT_AUTH_FAIL_PER_SEC: f64 = 1.0;
/// How often replication uploads what was committed since the last upload.
pub const DEFAULT_REPLICATION_INTERVAL_US: i64 = 60 * 1_000_000;
/// Most events in one replicated object.
pub const DEFAULT_REPLICATION_MAX_EVENTS: u64 = 100_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Public base URL used in OIDC documents, discovery and download links; else taken from the request.
    pub public_url: Option<String>,
    /// Redact private source IPs to `private` (H2O §7.5).
    pub redact_private_ips: bool,
    /// Record one event per first-page H2O search.
    pub self_audit: bool,
    /// Start even though the database disagrees with the checkpoint file (operator decision).
    pub accept_db_state: bool,
    /// OAuth client id advertised by H2O discovery.
    pub oauth_client_id: String,
    pub retention: Retention,
    /// Failed authentications per client address and per key id allowed in a burst before 429
    /// (0 turns the limit off).
    pub auth_fail_burst: u32,
    /// Failed authentications per second allowed after the burst (> 0).
    pub auth_fail_per_sec: f64,
    /// Replication to object storage (none by default).
    pub replication: Option<Replication>,
    /// Unlocks (and, for new keys, seals) the key store's files; from `TRAILKEEP_KEY_PASSPHRASE`
    /// or `--key-passphrase-file`, never from the file.
    pub key_passphrase: Option<Passphrase>,
    /// Serve HTTPS with this certificate chain and private key (PEM files, read again on SIGHUP).
    pub tls: Option<TlsFiles>,
    /// Where `POST /api/v1/backups` writes (default `<data_dir>/backups`).
    pub backup_dir: Option<PathBuf>,
}

/// Where and how often events are replicated (`crate::replication`). Credentials are never part
/// of it: they come from the standard AWS variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Replication {
    /// The normalised target URL (`s3://bucket/prefix` or `file:///path`).
    pub target: String,
    /// Microseconds between uploads.
    pub interval: i64,
    pub max_events: u64,
}

/// The PEM files HTTPS is served with (`src/tls.rs` reads them).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// The server's certificate first, then any intermediates (e.g. certbot's `fullchain.pem`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), unencrypted.
    pub key: PathBuf,
}

/// Retention periods, in microseconds: events received longer ago than their workspace's period
/// lose their content (their hashes stay in the log). `None`/absent = kept forever.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    /// Applies to every workspace without its own entry (including events without a workspace).
    pub default: Option<i64>,
    /// Per-workspace periods (`workspaces/w1`, or a Pangea `tenant_id`); `""` is "no workspace".
    pub workspaces: BTreeMap<String, i64>,
    /// How often the purge runs.
    pub interval: i64,
    /// The replication target whose watermark bounds the purge (`[retention] require_replicated`,
    /// on by default when replication is configured): content not yet replicated there is kept.
    pub replicated_to: Option<String>,
}

impl Retention {
    pub fn is_enabled(&self) -> bool {
        self.default.is_some() || !self.workspaces.is_empty()
    }
}

/// The TOML file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub redact_private_ips: Option<bool>,
    pub self_audit: Option<bool>,
    pub oauth_client_id: Option<String>,
    pub retention: Option<RetentionFile>,
    pub auth_fail_burst: Option<u32>,
    pub auth_fail_per_sec: Option<f64>,
    pub replication: Option<ReplicationFile>,
    pub tls: Option<TlsFile>,
    pub backup_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationFile {
    pub target: Option<String>,
    pub interval: Option<String>,
    pub max_events: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    pub default: Option<String>,
    pub interval: Option<String>,
    pub require_replicated: Option<bool>,
    #[serde(default)]
    pub workspaces: BTreeMap<String, String>,
}

/// What the environment and the command line set (clap merges `TRAILKEEP_*` and flags).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub no_redact_private_ips: bool,
    pub no_self_audit: bool,
    pub accept_db_state: bool,
    pub retention_default: Option<String>,
    pub auth_fail_burst: Option<u32>,
    pub auth_fail_per_sec: Option<f64>,
    pub replicate_to: Option<String>,
    pub replication_interval: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub key_passphrase: Option<Passphrase>,
    pub backup_dir: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

fn duration_setting(name: &str, value: &str) -> anyhow::Result<i64> {
    match parse_duration(value.trim()) {
        Some(d) if d > 0 => Ok(d),
        _ => anyhow::bail!("{name}: {value:?} is not a duration such as 30d, 12h or 1y"),
    }
}

/// The documented default data directory: `$STATE_DIRECTORY` under systemd, else the XDG data dir
/// (`~/.local/share/trailkeep` on Linux), else `./trailkeep-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("", "", "trailkeep")
        .map(|p| p.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("trailkeep-data"))
}

impl Config {
    pub fn for_tests(data_dir: &Path) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            data_dir: data_dir.to_path_buf(),
            public_url: None,
            redact_private_ips: true,
            self_audit: true,
            accept_db_state: false,
            oauth_client_id: "trailkeep".into(),
            retention: Retention { interval: DEFAULT_PURGE_INTERVAL_US, ..Default::default() },
            auth_fail_burst: DEFAULT_AUTH_FAIL_BURST,
            auth_fail_per_sec: DEFAULT_AUTH_FAIL_PER_SEC,
            replication: None,
            tls: None,
            key_passphrase: None,
            backup_dir: None,
        }
    }

    /// Where online backups go: `backup_dir`, else `backups/` in the data directory.
    pub fn backups(&self) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| self.data_dir.join("backups"))
    }

    /// Applies the environment and flags over the file over the defaults.
    pub fn resolve(file: FileConfig, o: Overrides) -> anyhow::Result<Self> {
        let listen = match (o.listen, &file.listen) {
            (Some(l), _) => l,
            (None, Some(l)) => l.parse().map_err(|e| anyhow::anyhow!("invalid listen address {l:?}: {e}"))?,
            (None, None) => DEFAULT_LISTEN.parse()?,
        };
        if let Some(u) = o.public_url.as_ref().or(file.public_url.as_ref())
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            anyhow::bail!("public_url: {u:?} must start with http:// or https://");
        }
        let rf = file.retention.unwrap_or_default();
        let default = match o.retention_default.as_deref().or(rf.default.as_deref()) {
            None | Some("") | Some("forever") => None,
            Some(d) => Some(duration_setting("retention.default", d)?),
        };
        let mut workspaces = BTreeMap::new();
        for (w, d) in &rf.workspaces {
            if d != "forever" {
                workspaces.insert(w.clone(), duration_setting(&format!("retention.workspaces.{w:?}"), d)?);
            } else if default.is_some() {
                // "forever" exempts a workspace from the default; recorded as i64::MAX.
                workspaces.insert(w.clone(), i64::MAX);
            }
        }
        let auth_fail_burst = o.auth_fail_burst.or(file.auth_fail_burst).unwrap_or(DEFAULT_AUTH_FAIL_BURST);
        let auth_fail_per_sec = o.auth_fail_per_sec.or(file.auth_fail_per_sec).unwrap_or(DEFAULT_AUTH_FAIL_PER_SEC);
        if !(auth_fail_per_sec.is_finite() && auth_fail_per_sec > 0.0) {
            anyhow::bail!("auth_fail_per_sec must be a positive number");
        }
        let tls = resolve_tls(file.tls.unwrap_or_default(), o.tls_cert.clone(), o.tls_key.clone())?;
        let interval = match rf.interval.as_deref() {
            Some(i) => duration_setting("retention.interval", i)?,
            None => DEFAULT_PURGE_INTERVAL_US,
        };
        let replication = resolve_replication(file.replication.unwrap_or_default(), &o)?;
        let replicated_to =
            replication.as_ref().filter(|_| rf.require_replicated.unwrap_or(true)).map(|r| r.target.clone());
        Ok(Self {
            listen,
            data_dir: o.data_dir.or(file.data_dir).unwrap_or_else(default_data_dir),
            public_url: o.public_url.or(file.public_url).map(|u| u.trim_end_matches('/').to_string()),
            redact_private_ips: !o.no_redact_private_ips && file.redact_private_ips.unwrap_or(true),
            self_audit: !o.no_self_audit && file.self_audit.unwrap_or(true),
            accept_db_state: o.accept_db_state,
            oauth_client_id: file.oauth_client_id.unwrap_or_else(|| "trailkeep".into()),
            retention: Retention { default, workspaces, interval, replicated_to },
            auth_fail_burst,
            auth_fail_per_sec,
            replication,
            tls,
            key_passphrase: o.key_passphrase,
            backup_dir: o.backup_dir.or(file.backup_dir),
        })
    }

    /// The effective configuration as TOML (what `trailkeep config show` prints). Nothing secret
    /// lives in the configuration (API keys are in the database, the server's keys in the key
    /// store; the key passphrase only says whether it is set); credentials embedded in
    /// `public_url` are masked all the same.
    pub fn show(&self) -> String {
        let mut s = String::new();
        let q = |v: &str| toml::Value::String(v.to_string()).to_string();
        let _ = writeln!(s, "listen = {}", q(&self.listen.to_string()));
        let _ = writeln!(s, "data_dir = {}", q(&self.data_dir.display().to_string()));
        match &self.public_url {
            Some(u) => _ = writeln!(s, "public_url = {}", q(&mask_userinfo(u))),
            None => s.push_str("# public_url: not set (taken from each request's Host header)\n"),
        }
        let _ = writeln!(s, "redact_private_ips = {}", self.redact_private_ips);
        let _ = writeln!(s, "self_audit = {}", self.self_audit);
        let _ = writeln!(s, "oauth_client_id = {}", q(&self.oauth_client_id));
        let _ = writeln!(s, "backup_dir = {}", q(&self.backups().display().to_string()));
        let _ = writeln!(s, "auth_fail_burst = {}", self.auth_fail_burst);
        let _ = writeln!(s, "auth_fail_per_sec = {:?}", self.auth_fail_per_sec);
        if self.key_passphrase.is_some() {
            s.push_str("# key passphrase: set (the key store's files are encrypted)\n");
        }
        match &self.tls {
            Some(t) => {
                s.push_str("\n[tls]\n");
                let _ = writeln!(s, "cert = {}", q(&t.cert.display().to_string()));
                let _ = writeln!(s, "key = {}", q(&t.key.display().to_string()));
            }
            None => s.push_str("# [tls]: not set (plain HTTP)\n"),
        }
        s.push_str("\n[retention]\n");
        match self.retention.default {
            Some(d) => _ = writeln!(s, "default = {}", q(&format_duration(d))),
            None => s.push_str("default = \"forever\"\n"),
        }
        let _ = writeln!(s, "interval = {}", q(&format_duration(self.retention.interval)));
        if self.replication.is_some() {
            let _ = writeln!(s, "require_replicated = {}", self.retention.replicated_to.is_some());
        }
        if !self.retention.workspaces.is_empty() {
            s.push_str("\n[retention.workspaces]\n");
            for (w, d) in &self.retention.workspaces {
                let d = if *d == i64::MAX { "forever".to_string() } else { format_duration(*d) };
                let _ = writeln!(s, "{} = {}", q(w), q(&d));
            }
        }
        match &self.replication {
            Some(r) => {
                s.push_str("\n[replication]\n");
                let _ = writeln!(s, "target = {}", q(&r.target));
                let _ = writeln!(s, "interval = {}", q(&format_duration(r.interval)));
                let _ = writeln!(s, "max_events = {}", r.max_events);
                if r.target.starts_with("s3://") {
                    // Never the values: only which of the standard variables are set.
                    let set: Vec<&str> = AWS_VARS.iter().copied().filter(|v| std::env::var_os(v).is_some()).collect();
                    let _ = writeln!(
                        s,
                        "# S3 settings from the environment (values not shown): {}",
                        if set.is_empty() { "none".to_string() } else { set.join(", ") }
                    );
                }
            }
            None => s.push_str("\n# [replication]: not configured\n"),
        }
        s
    }
}

/// The standard AWS variables replication reads (`crate::replication`).
pub const AWS_VARS: [&str; 8] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_ENDPOINT_URL_S3",
];

fn resolve_replication(f: ReplicationFile, o: &Overrides) -> anyhow::Result<Option<Replication>> {
    let Some(target) = o.replicate_to.as_deref().or(f.target.as_deref()).filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let target = ReplicationTarget::parse(target).map_err(|e| anyhow::anyhow!("replication.target: {e}"))?;
    let interval = match o.replication_interval.as_deref().or(f.interval.as_deref()) {
        Some(i) => duration_setting("replication.interval", i)?,
        None => DEFAULT_REPLICATION_INTERVAL_US,
    };
    let max_events = f.max_events.unwrap_or(DEFAULT_REPLICATION_MAX_EVENTS);
    if max_events == 0 {
        anyhow::bail!("replication.max_events must be at least 1");
    }
    Ok(Some(Replication { target: target.url, interval, max_events }))
}

/// A replication target URL, checked and normalised: `s3://bucket[/prefix]` or
/// `file:///absolute/path`. Credentials never go in it (they come from the standard AWS
/// variables), so a URL with a user part is refused without repeating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationTarget {
    /// The normalised URL.
    pub url: String,
    pub kind: TargetKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    S3 { bucket: String, prefix: String },
    File { root: PathBuf },
}

impl ReplicationTarget {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let rest = rest.trim_end_matches('/');
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.contains('@') || bucket.contains(':') {
                anyhow::bail!(
                    "the replication target must not hold credentials or a port: use s3://bucket/prefix with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL"
                );
            }
            if bucket.is_empty() || bucket.contains(['?', '#']) || prefix.contains(['?', '#']) {
                anyhow::bail!("the replication target must look like s3://bucket/prefix");
            }
            let prefix = prefix.trim_matches('/').to_string();
            let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
            return Ok(Self { url, kind: TargetKind::S3 { bucket: bucket.to_string(), prefix } });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                anyhow::bail!("a file:// replication target needs an absolute path (file:///var/archive)");
            }
            let root = PathBuf::from(path.trim_end_matches('/'));
            let root = if root.as_os_str().is_empty() { PathBuf::from("/") } else { root };
            return Ok(Self { url: format!("file://{}", root.display()), kind: TargetKind::File { root } });
        }
        anyhow::bail!("the replication target must be s3://bucket/prefix or file:///path")
    }
}

/// The certificate and key come as a pair, each from the flag/environment or else the file.
fn resolve_tls(file: TlsFile, cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<TlsFiles>> {
    match (cert.or(file.cert), key.or(file.key)) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => anyhow::bail!(
            "a TLS certificate is set but no private key: give --tls-key (TRAILKEEP_TLS_KEY, [tls] key) too"
        ),
        (None, Some(_)) => anyhow::bail!(
            "a TLS private key is set but no certificate: give --tls-cert (TRAILKEEP_TLS_CERT, [tls] cert) too"
        ),
    }
}

fn mask_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && !userinfo.contains('/')
    {
        return format!("{scheme}://***@{host}");
    }
    url.to_string()
}

/// A commented example file (`trailkeep config example`); a unit test checks it parses.
pub const EXAMPLE: &str = r#"# trailkeep configuration (TOML). Every key is optional; the values shown are the defaults
# unless marked "example". Precedence: defaults < this file < TRAILKEEP_* environment < flags.
# Unknown keys are an error. Secrets are never configured here: API keys live in the database
# (`trailkeep keys`), the server's signing keys in the key store DATA_DIR/keys, encrypted when
# TRAILKEEP_KEY_PASSPHRASE or --key-passphrase-file gives a passphrase.

# Address and port to listen on (env TRAILKEEP_LISTEN, flag --listen).
listen = "127.0.0.1:8080"

# Where the database, WAL and checkpoint file live (env TRAILKEEP_DATA_DIR, flag --data-dir).
# Default: $STATE_DIRECTORY under systemd, else ~/.local/share/trailkeep.
# data_dir = "/var/lib/trailkeep"

# Public base URL, used in OIDC/discovery documents and Pangea download links
# (env TRAILKEEP_PUBLIC_URL). Default: taken from each request's Host header.
# public_url = "https://audit.example.com"        # example

# Store private source IP addresses as "private" (H2O). Env TRAILKEEP_NO_REDACT_PRIVATE_IPS=1 turns it off.
redact_private_ips = true

# Record one event for each first-page H2O search (who searched for what).
# Env TRAILKEEP_NO_SELF_AUDIT=1 turns it off.
self_audit = true

# OAuth client id advertised by the H2O discovery endpoints.
oauth_client_id = "trailkeep"

# Failed authentications allowed at once per client address and per key id before requests with
# credentials from there get 429 (0 turns the limit off), and the refill rate per second.
# Env TRAILKEEP_AUTH_FAIL_BURST / TRAILKEEP_AUTH_FAIL_PER_SEC, flags --auth-fail-burst / --auth-fail-per-sec.
auth_fail_burst = 20
auth_fail_per_sec = 1.0

# Where online backups taken by the running server (`POST /api/v1/backups`, admin keys) are
# written; each is a database file, its .checkpoint and, if asked for, a copy of the key store.
# Default: DATA_DIR/backups. Env TRAILKEEP_BACKUP_DIR, flag --backup-dir.
# backup_dir = "/srv/backups/trailkeep"          # example

[tls]
# Serve HTTPS (TLS 1.2 and 1.3 only) with this certificate chain (the server's certificate first,
# then intermediates, e.g. certbot's fullchain.pem) and its private key (PKCS#8, RSA or EC), both
# PEM. Both files are read again on SIGHUP (`systemctl reload trailkeep`, `kill -HUP`), so a
# renewed certificate takes effect without a restart or dropped connections. Default: plain HTTP.
# Env TRAILKEEP_TLS_CERT / TRAILKEEP_TLS_KEY, flags --tls-cert / --tls-key.
# cert = "/etc/trailkeep/tls/fullchain.pem"       # example
# key = "/etc/trailkeep/tls/privkey.pem"          # example

[retention]
# Events received longer ago than their workspace's period lose their content; their hashes
# stay, so proofs and `trailkeep verify` still pass, and each purge is itself logged as an
# event. "forever" (the default) keeps everything. Units: s, mins, h, d, w, mo, y.
# Env TRAILKEEP_RETENTION_DEFAULT, flag --retention-default.
default = "forever"
# How often the purge runs.
interval = "1h"

# With replication configured, never remove the content of an event that is not yet in the
# replication target (default true when [replication] is set).
# require_replicated = true

[retention.workspaces]
# Per-workspace periods override the default; "forever" exempts a workspace.
# "workspaces/legal" = "forever"                 # example
# "workspaces/sandbox" = "30d"                   # example

# [replication]
# Copy every committed event to object storage as time-partitioned .jsonl.gz objects (see the
# README for the layout), exactly once. Env TRAILKEEP_REPLICATE_TO, flag --replicate-to.
# S3 credentials, region and endpoint come from the standard AWS variables (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL; AWS_ALLOW_HTTP=true
# for an http:// endpoint); they are never written here.
# target = "s3://my-bucket/trailkeep"             # example; or "file:///var/lib/trailkeep-archive"
# How often to upload what was committed since (env TRAILKEEP_REPLICATION_INTERVAL, flag --replication-interval).
# interval = "60s"
# Most events per object.
# max_events = 100000
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_resolves_to_the_defaults() {
        let file = FileConfig::parse(EXAMPLE).expect("example parses");
        let c = Config::resolve(file, Overrides { data_dir: Some("/d".into()), ..Default::default() }).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.redact_private_ips && c.self_audit);
        assert_eq!(c.retention.default, None);
        assert!(!c.retention.is_enabled());
        // Uncommenting the examples still parses.
        assert_eq!(c.tls, None);
        let uncommented = EXAMPLE
            .replace("# \"workspaces/", "\"workspaces/")
            .replace("# public_url", "public_url")
            .replace("# cert = ", "cert = ")
            .replace("# key = ", "key = ");
        let c = Config::resolve(FileConfig::parse(&uncommented).unwrap(), Overrides::default()).unwrap();
        assert_eq!(c.retention.workspaces.get("workspaces/sandbox"), Some(&(30 * 86_400 * 1_000_000)));
        assert_eq!(c.public_url.as_deref(), Some("https://audit.example.com"));
        let tls = c.tls.as_ref().expect("[tls] set");
        assert_eq!(tls.cert, Path::new("/etc/trailkeep/tls/fullchain.pem"));
        assert_eq!(tls.key, Path::new("/etc/trailkeep/tls/privkey.pem"));
        let shown = c.show();
        assert!(shown.contains("[tls]\ncert = \"/etc/trailkeep/tls/fullchain.pem\"\nkey = "), "{shown}");
        let again = Config::resolve(FileConfig::parse(&shown).unwrap(), Overrides::default()).unwrap();
        assert_eq!(again.tls, c.tls, "config show round-trips [tls]");
    }

    #[test]
    fn precedence_and_errors() {
        let file = FileConfig::parse(
            "listen = \"127.0.0.1:9000\"\nself_audit = false\n[retention]\ndefault = \"90d\"\n[retention.workspaces]\n\"workspaces/a\" = \"forever\"\n\"workspaces/b\" = \"7d\"\n",
        )
        .unwrap();
        let o = Overrides { listen: Some("127.0.0.1:9100".parse().unwrap()), ..Default::default() };
        let c = Config::resolve(file, o).unwrap();
        assert_eq!(c.listen.port(), 9100, "flag/env beat the file");
        assert!(!c.self_audit, "file beats the default");
        assert_eq!(c.retention.default, Some(90 * 86_400 * 1_000_000));
        assert_eq!(c.retention.workspaces["workspaces/a"], i64::MAX);
        let shown = c.show();
        assert!(shown.contains("default = \"90d\"") && shown.contains("\"workspaces/a\" = \"forever\""), "{shown}");
        assert!(FileConfig::parse(&shown).is_ok(), "config show output is itself a valid file:\n{shown}");

        let err = FileConfig::parse("listne = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `listne`"), "{err}");
        let bad = FileConfig::parse("[retention]\ndefault = \"soon\"").unwrap();
        let err = Config::resolve(bad, Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("retention.default"), "{err}");
    }

    #[test]
    fn replication_settings_and_the_purge_hold() {
        let file = FileConfig::parse(
            "[replication]\ntarget = \"s3://b/p\"\ninterval = \"30s\"\nmax_events = 500\n[retention]\ndefault = \"1d\"\n",
        )
        .unwrap();
        let c = Config::resolve(file, Overrides::default()).unwrap();
        let r = c.replication.clone().unwrap();
        assert_eq!((r.target.as_str(), r.interval, r.max_events), ("s3://b/p", 30_000_000, 500));
        assert_eq!(c.retention.replicated_to.as_deref(), Some("s3://b/p"), "require_replicated is on by default");
        let shown = c.show();
        assert!(shown.contains("[replication]") && shown.contains("require_replicated = true"), "{shown}");
        let again = Config::resolve(FileConfig::parse(&shown).unwrap(), Overrides::default()).unwrap();
        assert_eq!(again.replication, c.replication);
        // Flags and environment beat the file; the hold can be turned off.
        let o = Overrides {
            replicate_to: Some("file:///var/archive/".into()),
            replication_interval: Some("5s".into()),
            ..Default::default()
        };
        let file = FileConfig::parse("[retention]\nrequire_replicated = false\n").unwrap();
        let c = Config::resolve(file, o).unwrap();
        let r = c.replication.unwrap();
        assert_eq!((r.target.as_str(), r.interval, r.max_events), ("file:///var/archive", 5_000_000, 100_000));
        assert_eq!(c.retention.replicated_to, None);
        // Not configured: no hold, nothing shown but a comment.
        let c = Config::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert!(c.replication.is_none() && c.retention.replicated_to.is_none());
        for bad in ["[replication]\ntarget = \"ftp://x\"", "[replication]\ntarget = \"s3://b\"\nmax_events = 0"] {
            assert!(Config::resolve(FileConfig::parse(bad).unwrap(), Overrides::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_cert_and_key_come_as_a_pair() {
        let file = || FileConfig::parse("[tls]\ncert = \"/f/cert.pem\"\nkey = \"/f/key.pem\"\n").unwrap();
        let c = Config::resolve(file(), Overrides::default()).unwrap();
        assert_eq!(c.tls, Some(TlsFiles { cert: "/f/cert.pem".into(), key: "/f/key.pem".into() }));
        // Flags/environment beat the file, each file on its own.
        let o = Overrides { tls_cert: Some("/o/cert.pem".into()), ..Default::default() };
        let c = Config::resolve(file(), o).unwrap();
        assert_eq!(c.tls, Some(TlsFiles { cert: "/o/cert.pem".into(), key: "/f/key.pem".into() }));
        let o = Overrides { tls_key: Some("/o/key.pem".into()), ..Default::default() };
        let err = Config::resolve(FileConfig::default(), o).unwrap_err().to_string();
        assert!(err.contains("no certificate") && err.contains("--tls-cert"), "{err}");
        let o = Overrides { tls_cert: Some("/o/cert.pem".into()), ..Default::default() };
        let err = Config::resolve(FileConfig::default(), o).unwrap_err().to_string();
        assert!(err.contains("no private key") && err.contains("--tls-key"), "{err}");
        let shown = Config::resolve(FileConfig::default(), Overrides::default()).unwrap().show();
        assert!(shown.contains("# [tls]: not set (plain HTTP)"), "{shown}");
        let err = FileConfig::parse("[tls]\ncertificate = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `certificate`"), "{err}");
    }

    #[test]
    fn the_key_passphrase_is_never_shown() {
        let o = Overrides { key_passphrase: Some(Passphrase::new("hunter2".into()).unwrap()), ..Default::default() };
        let c = Config::resolve(FileConfig::default(), o).unwrap();
        let shown = c.show();
        assert!(shown.contains("# key passphrase: set") && !shown.contains("hunter2"), "{shown}");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(FileConfig::parse(&shown).is_ok());
        assert!(!Config::resolve(FileConfig::default(), Overrides::default()).unwrap().show().contains("passphrase"));
    }

    #[test]
    fn masks_credentials_in_urls() {
        assert_eq!(mask_userinfo("https://u:p@host/x"), "https://***@host/x");
        assert_eq!(mask_userinfo("https://host/a@b"), "https://host/a@b");
    }
}
