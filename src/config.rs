//! Settings: defaults < TOML file < `TRAILKEEP_*` environment < flags (the last two via clap).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Failed authentications allowed at once per client address and per key id before 429.
pub const DEFAULT_AUTH_FAIL_BURST: u32 = 20;
/// Failed authentications per second allowed after the burst (the refill rate).
pub const DEFAULT_AUTH_FAIL_PER_SEC: f64 = 1.0;

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
    /// Failed authentications per client address and per key id allowed in a burst before 429
    /// (0 turns the limit off).
    pub auth_fail_burst: u32,
    /// Failed authentications per second allowed after the burst (> 0).
    pub auth_fail_per_sec: f64,
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub redact_private_ips: Option<bool>,
    pub self_audit: Option<bool>,
    pub oauth_client_id: Option<String>,
    pub auth_fail_burst: Option<u32>,
    pub auth_fail_per_sec: Option<f64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
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
            auth_fail_burst: DEFAULT_AUTH_FAIL_BURST,
            auth_fail_per_sec: DEFAULT_AUTH_FAIL_PER_SEC,
        }
    }
}
