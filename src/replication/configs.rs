//! `PREFIX/configs.json`: the audit configs the archive's events belong to (README, "The archive
//! layout"). Every config with its id, name, schema, signing mode, created/updated times and, for
//! server-signing configs, the **public** halves of its event-signing key versions (never a
//! private key). The uploader rewrites it whenever it differs from the database's configs, before
//! the next object, so a reader never finds an event whose config is undeclared; `restore`
//! recreates the configs from it and `verify --archive` checks every line's `config_id` against
//! it. An archive without it (written before configs existed) holds default-config events only.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::configs::schema::AuditSchema;
use crate::configs::{self, Signing};
use crate::time::{format_micros, parse_rfc3339};

/// The file's `format`.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveConfigs {
    pub format: u32,
    pub configs: Vec<ArchiveConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveConfig {
    pub id: String,
    pub name: String,
    /// The server's default config (exactly one).
    pub default: bool,
    /// The `AuditSchema` as the config API shows it.
    pub schema: Value,
    /// `none` or `server`.
    pub signing: String,
    /// Key-store name (`pvi_…`) of the event-signing key (`signing = server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// The public halves of the event-signing key's versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<PublicKeyVersion>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicKeyVersion {
    pub version: u32,
    /// SPKI PEM, as server-signed envelopes' `public_key` carries it.
    pub key: String,
}

impl ArchiveConfigs {
    /// The id of the default config.
    pub fn default_id(&self) -> Option<&str> {
        self.configs.iter().find(|c| c.default).map(|c| c.id.as_str())
    }

    /// Checks the file's shape: its format, one default config, valid and distinct ids, valid
    /// schemas and signing modes, parsable times and keys.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.format != FORMAT {
            bail!("configs.json: unknown format {}", self.format);
        }
        if self.configs.iter().filter(|c| c.default).count() != 1 {
            bail!("configs.json: declares no default config, or several");
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.configs {
            if !configs::valid_config_id(&c.id) || !seen.insert(c.id.as_str()) {
                bail!("configs.json: config id {:?} is malformed or declared twice", c.id);
            }
            AuditSchema::parse(&c.schema, "").map_err(|_| anyhow::anyhow!("configs.json: {}: invalid schema", c.id))?;
            let signing = Signing::parse(&c.signing).with_context(|| format!("configs.json: {}: signing", c.id))?;
            if (signing == Signing::Server) != c.signing_key.is_some() {
                bail!("configs.json: {}: a server-signing config names its key, others none", c.id);
            }
            for t in [&c.created_at, &c.updated_at] {
                parse_rfc3339(t).with_context(|| format!("configs.json: {}: malformed time", c.id))?;
            }
            for k in &c.public_keys {
                configs::signing::parse_public_key_pem(&k.key)
                    .with_context(|| format!("configs.json: {}: public key version {}", c.id, k.version))?;
            }
        }
        Ok(())
    }
}

/// The database's configs as `configs.json` declares them.
pub fn read(conn: &Connection, data_dir: &Path) -> anyhow::Result<ArchiveConfigs> {
    let all = configs::load_all(conn)?;
    let names: Vec<&str> = all.iter().filter_map(|c| c.signing_key.as_ref().map(|(n, _)| n.as_str())).collect();
    let keys = configs::signing::public_keys(conn, data_dir, &names)?;
    let configs = all
        .iter()
        .map(|c| {
            let key_name = c.signing_key.as_ref().map(|(n, _)| n.clone());
            let public_keys = key_name
                .as_ref()
                .map(|n| {
                    keys.range((n.clone(), 0)..=(n.clone(), u32::MAX))
                        .map(|((_, version), pem)| PublicKeyVersion { version: *version, key: pem.clone() })
                        .collect()
                })
                .unwrap_or_default();
            ArchiveConfig {
                id: c.id.clone(),
                name: c.name.clone(),
                default: c.is_default(),
                schema: c.schema.to_value(),
                signing: c.signing.name().to_string(),
                signing_key: key_name,
                public_keys,
                created_at: format_micros(c.created_at),
                updated_at: format_micros(c.updated_at),
            }
        })
        .collect();
    Ok(ArchiveConfigs { format: FORMAT, configs })
}

/// Recreates the archive's configs in a new database (`restore`): the default config takes the
/// archived default's id, name and times; the others are created in the archive's order, with
/// their field numbers; the public event-signing keys are recorded. Returns config id → number.
pub fn install(conn: &Connection, archived: &ArchiveConfigs) -> anyhow::Result<HashMap<String, i64>> {
    archived.check()?;
    let us = |t: &str| parse_rfc3339(t).map(|(us, _)| us).unwrap_or_default();
    let mut nums = HashMap::new();
    let mut next = configs::DEFAULT + 1;
    let mut keys: BTreeMap<String, BTreeMap<u32, String>> = BTreeMap::new();
    for c in &archived.configs {
        let schema_text = crate::event::canonical::to_canonical_string(&c.schema);
        let version = c.public_keys.iter().map(|k| k.version).max();
        let num = if c.default {
            conn.execute(
                "UPDATE audit_configs SET id = ?1, name = ?2, schema = ?3, created_at = ?4, updated_at = ?5 WHERE num = ?6",
                params![c.id, c.name, schema_text, us(&c.created_at), us(&c.updated_at), configs::DEFAULT],
            )?;
            configs::DEFAULT
        } else {
            let num = next;
            next += 1;
            conn.execute(
                "INSERT INTO audit_configs(num, id, name, schema, signing, signing_key, signing_version, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    num,
                    c.id,
                    c.name,
                    schema_text,
                    c.signing,
                    c.signing_key,
                    c.signing_key.as_ref().map(|_| version.unwrap_or(1)),
                    us(&c.created_at),
                    us(&c.updated_at)
                ],
            )?;
            num
        };
        let schema = AuditSchema::parse(&c.schema, "").map_err(|_| anyhow::anyhow!("configs.json: invalid schema"))?;
        configs::number_fields(conn, num, &schema)?;
        if let Some(name) = &c.signing_key {
            let entry = keys.entry(name.clone()).or_default();
            for k in &c.public_keys {
                entry.insert(k.version, k.key.clone());
            }
        }
        nums.insert(c.id.clone(), num);
    }
    if !keys.is_empty() {
        crate::store::put_setting(conn, configs::signing::PUBLIC_KEYS_SETTING, &serde_json::to_vec(&keys)?)?;
    }
    conn.execute("UPDATE config_state SET version = version + 1", [])?;
    Ok(nums)
}
