//! Audit configs (Pangea's audit service configurations): several per server, each with an id
//! (`pci_` + 32 `[a-z0-9]`), a name, an event schema (`schema`), a signing mode (`signing`) and
//! created/updated times. Every event belongs to one config and all configs share the one log;
//! a config is a visibility boundary (keys are bound to configs, `keys`). Config 0, the default
//! config, has Pangea's standard schema; H2O events and the server's own events belong to it.
//!
//! The tables (`audit_configs`, `config_fields`, `config_state`; migration 0010) are written here,
//! by the server and by the CLI while a server runs; every change bumps `config_state.version`,
//! which each authenticated request reads with its key, so a server reloads its [`Registry`] when
//! another process changed a config. The writer stores an event only under the config revision it
//! was validated against, and counts each config's events (a config holding events is never
//! deleted).

pub mod ingest;
pub mod schema;
pub mod signing;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value, json};

use crate::event::Origin;
use crate::search::catalog::{Catalog, FieldKind, QueryField, Storage};
use crate::store::Pool;
use crate::time::{format_micros, now_micros};
use schema::{AuditSchema, FieldType, Problem, StoredField, needs_row, standard_storage};
use signing::{EventSigner, SigningKeys};

/// The default config's number (`events.config`).
pub const DEFAULT: i64 = crate::store::DEFAULT_CONFIG;
/// Longest config name (bytes).
pub const MAX_NAME: usize = 200;

/// Who signs a config's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Only clients (`sign_local`), if they want.
    None,
    /// The server, with the config's event-signing key.
    Server,
}

impl Signing {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Server => "server",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "server" => Some(Self::Server),
            _ => None,
        }
    }
}

/// One audit config.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub num: i64,
    pub id: String,
    pub name: String,
    pub schema: AuditSchema,
    /// The schema's fields with where each is stored.
    pub fields: Vec<StoredField>,
    pub signing: Signing,
    /// Key-store name (`pvi_…`) and newest version of the event-signing key (`signing = server`).
    pub signing_key: Option<(String, u32)>,
    /// The fields queries may name (built from `fields`).
    query_fields: Arc<Catalog>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
    /// Events stored (as of loading).
    pub events: i64,
}

/// `pci_` + 32 `[a-z0-9]`.
pub fn valid_config_id(id: &str) -> bool {
    id.strip_prefix("pci_")
        .is_some_and(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// A random id: `prefix` + 32 `[a-z0-9]`.
fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = crate::ledger::random_bytes::<32>();
    let s: String = bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
    format!("{prefix}{s}")
}

impl AuditConfig {
    pub fn is_default(&self) -> bool {
        self.num == DEFAULT
    }

    /// The fields queries may name, with their kinds and storage.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.query_fields.clone()
    }

    fn build_catalog(num: i64, stored: &[StoredField]) -> Catalog {
        const ORDER: [&str; 10] =
            ["actor", "action", "message", "new", "old", "source", "status", "target", "tenant_id", "timestamp"];
        let kind = |f: &StoredField| match (f.field.ty, f.storage) {
            (FieldType::StringUnindexed, _) => FieldKind::Unsearchable,
            (FieldType::String | FieldType::Text, _) => FieldKind::Text,
            (FieldType::Integer, _) => FieldKind::Integer,
            (FieldType::Boolean, _) => FieldKind::Boolean,
            (FieldType::Datetime, Storage::Timestamp) => FieldKind::Time,
            (FieldType::Datetime, _) => FieldKind::Datetime,
        };
        let field = |f: &StoredField| QueryField { name: f.field.id.clone(), kind: kind(f), storage: f.storage };
        let standard = |f: &&StoredField| standard_storage(&f.field.id, f.field.ty).is_some();
        let mut fields: Vec<QueryField> =
            ORDER.iter().filter_map(|n| stored.iter().filter(standard).find(|f| f.field.id == *n)).map(field).collect();
        fields.extend(stored.iter().filter(|f| !standard(f)).map(field));
        fields.push(Catalog::received_at());
        Catalog { config: num, fields }
    }

    /// The config as Pangea's `AuditServiceConfig` (version 2 shape).
    pub fn to_api(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "version": 2,
            "name": self.name,
            "schema": self.schema.to_value(),
            "vault_sign": self.signing == Signing::Server,
            "created_at": format_micros(self.created_at),
            "updated_at": format_micros(self.updated_at),
        });
        if let Some((name, _)) = &self.signing_key {
            v["vault_key_id"] = json!(name);
        }
        v
    }

    /// The free-text body of one of this config's events (Pangea events; ingest and purge).
    pub fn fts_text(&self, event: &Map<String, Value>) -> String {
        schema::fts_text(&self.fields, event)
    }
}

/// Why a config operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no such config")]
    NotFound,
    /// Validation errors (Pangea `ValidationError` items).
    #[error("invalid config: {}", .0.first().map(|p| p.detail.as_str()).unwrap_or(""))]
    Invalid(Vec<Problem>),
    /// The change conflicts with the config's state (events, bound keys, default, stale update).
    #[error("{0}")]
    Conflict(String),
    #[error("storage failure: {0}")]
    Storage(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for ConfigError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Storage(e.into())
    }
}

fn invalid(code: &'static str, detail: impl Into<String>, source: &str) -> ConfigError {
    ConfigError::Invalid(vec![Problem { code, detail: detail.into(), source: source.to_string() }])
}

/// A config name: 1–200 bytes after trimming.
pub fn check_name(name: &str) -> Result<String, ConfigError> {
    let n = name.trim();
    if n.is_empty() || n.len() > MAX_NAME {
        return Err(invalid("BadFormat", "'name' must be a non-empty string of at most 200 bytes", "/name"));
    }
    Ok(n.to_string())
}

/// The current `config_state.version`.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT version FROM config_state", [], |r| r.get(0))
}

fn bump_version(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE config_state SET version = version + 1", [])?;
    Ok(())
}

const CONFIG_COLUMNS: &str =
    "num, id, name, schema, signing, signing_key, signing_version, created_at, updated_at, revision, events";

type ConfigRow = (i64, String, String, String, String, Option<String>, Option<i64>, i64, i64, i64, i64);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConfigRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

/// Builds a config from its row and its field numbers.
fn from_row(row: ConfigRow, numbers: &HashMap<String, i64>) -> anyhow::Result<AuditConfig> {
    let (num, id, name, schema_text, signing, key, key_version, created_at, updated_at, revision, events) = row;
    let value: Value = serde_json::from_str(&schema_text)?;
    let schema = AuditSchema::parse(&value, "")
        .map_err(|p| anyhow::anyhow!("the stored schema of config {id} is invalid: {p:?}"))?;
    let fields = stored_fields(&schema, numbers);
    let query_fields = Arc::new(AuditConfig::build_catalog(num, &fields));
    Ok(AuditConfig {
        query_fields,
        num,
        id,
        name,
        schema,
        fields,
        signing: Signing::parse(&signing).unwrap_or(Signing::None),
        signing_key: key.zip(key_version.map(|v| v as u32)),
        created_at,
        updated_at,
        revision,
        events,
    })
}

fn stored_fields(schema: &AuditSchema, numbers: &HashMap<String, i64>) -> Vec<StoredField> {
    schema
        .fields
        .iter()
        .map(|f| {
            let storage = standard_storage(&f.id, f.ty).unwrap_or_else(|| match numbers.get(&f.id) {
                Some(no) if needs_row(f.ty) => Storage::Indexed(*no),
                _ => Storage::Envelope,
            });
            StoredField { field: f.clone(), storage }
        })
        .collect()
}

fn field_numbers(conn: &Connection) -> rusqlite::Result<HashMap<i64, HashMap<String, i64>>> {
    let mut out: HashMap<i64, HashMap<String, i64>> = HashMap::new();
    let mut stmt = conn.prepare("SELECT config, id, no FROM config_fields")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
        let (config, id, no) = row?;
        out.entry(config).or_default().insert(id, no);
    }
    Ok(out)
}

/// Every config, default first.
pub fn load_all(conn: &Connection) -> anyhow::Result<Vec<AuditConfig>> {
    let numbers = field_numbers(conn)?;
    let mut stmt = conn.prepare(&format!("SELECT {CONFIG_COLUMNS} FROM audit_configs ORDER BY num"))?;
    let rows = stmt.query_map([], read_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    let empty = HashMap::new();
    rows.into_iter().map(|r| from_row(r.clone(), numbers.get(&r.0).unwrap_or(&empty))).collect()
}

/// One config by id.
pub fn get(conn: &Connection, id: &str) -> anyhow::Result<Option<AuditConfig>> {
    let row = conn
        .query_row(&format!("SELECT {CONFIG_COLUMNS} FROM audit_configs WHERE id = ?1"), [id], read_row)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let numbers = field_numbers(conn)?.remove(&row.0).unwrap_or_default();
    Ok(Some(from_row(row, &numbers)?))
}

/// Numbers the `event_fields` fields of a config's schema that have none yet.
pub(crate) fn number_fields(conn: &Connection, num: i64, schema: &AuditSchema) -> rusqlite::Result<()> {
    for f in &schema.fields {
        if standard_storage(&f.id, f.ty).is_none() && needs_row(f.ty) {
            conn.execute(
                "INSERT INTO config_fields(config, id, type) VALUES (?1, ?2, ?3) ON CONFLICT(config, id) DO NOTHING",
                params![num, f.id, f.ty.name()],
            )?;
        }
    }
    Ok(())
}

/// A config to create.
pub struct NewConfig {
    pub name: String,
    pub schema: AuditSchema,
    pub signing: Signing,
}

/// Creates a config (and, for `signing = server`, its event-signing key in `keys`, which only
/// that needs).
pub fn create(
    conn: &mut Connection,
    new: NewConfig,
    keys: Option<&dyn SigningKeys>,
) -> Result<AuditConfig, ConfigError> {
    let name = check_name(&new.name)?;
    let id = new_id("pci_");
    let key = match (new.signing, keys) {
        (Signing::Server, Some(keys)) => {
            let key_name = new_id("pvi_");
            let v = keys.create(&key_name)?;
            Some((key_name, v))
        }
        (Signing::Server, None) => {
            return Err(ConfigError::Storage(anyhow::anyhow!("a server-signing config needs the key store")));
        }
        (Signing::None, _) => None,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let num: i64 = tx.query_row("SELECT COALESCE(MAX(num), 0) + 1 FROM audit_configs", [], |r| r.get(0))?;
    let now = now_micros();
    tx.execute(
        "INSERT INTO audit_configs(num, id, name, schema, signing, signing_key, signing_version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            num,
            id,
            name,
            crate::event::canonical::to_canonical_string(&new.schema.to_value()),
            new.signing.name(),
            key.as_ref().map(|k| k.0.clone()),
            key.as_ref().map(|k| k.1),
            now
        ],
    )?;
    number_fields(&tx, num, &new.schema)?;
    bump_version(&tx)?;
    let created = get(&tx, &id)?.ok_or(ConfigError::NotFound)?;
    tx.commit()?;
    Ok(created)
}

/// What an update changes.
#[derive(Default)]
pub struct ConfigUpdate {
    pub name: Option<String>,
    pub schema: Option<AuditSchema>,
    /// The `updated_at` (µs) the caller last saw; a newer config is a conflict.
    pub expect_updated_at: Option<i64>,
}

/// Changes a config's name and/or schema. While the config holds events, a schema may only add
/// optional fields (see `AuditSchema::incompatible_change`).
pub fn update(conn: &mut Connection, id: &str, change: ConfigUpdate) -> Result<AuditConfig, ConfigError> {
    let name = change.name.as_deref().map(check_name).transpose()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = get(&tx, id)?.ok_or(ConfigError::NotFound)?;
    if let Some(seen) = change.expect_updated_at
        && seen != current.updated_at
    {
        return Err(ConfigError::Conflict(format!(
            "the config was changed at {}; fetch it again and retry",
            format_micros(current.updated_at)
        )));
    }
    let now = now_micros().max(current.updated_at + 1);
    if let Some(schema) = &change.schema {
        if current.events > 0 {
            if let Some(p) = current.schema.incompatible_change(schema) {
                return Err(ConfigError::Invalid(vec![p]));
            }
        } else {
            tx.execute("DELETE FROM config_fields WHERE config = ?1", [current.num])?;
        }
        number_fields(&tx, current.num, schema)?;
        tx.execute(
            "UPDATE audit_configs SET schema = ?1, revision = revision + 1 WHERE num = ?2",
            params![crate::event::canonical::to_canonical_string(&schema.to_value()), current.num],
        )?;
    }
    if let Some(n) = &name {
        tx.execute("UPDATE audit_configs SET name = ?1 WHERE num = ?2", params![n, current.num])?;
    }
    tx.execute("UPDATE audit_configs SET updated_at = ?1 WHERE num = ?2", params![now, current.num])?;
    bump_version(&tx)?;
    let updated = get(&tx, id)?.ok_or(ConfigError::NotFound)?;
    tx.commit()?;
    Ok(updated)
}

/// Deletes a config that holds no events, is not the default and no active key is bound to.
pub fn delete(conn: &mut Connection, id: &str) -> Result<AuditConfig, ConfigError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = get(&tx, id)?.ok_or(ConfigError::NotFound)?;
    if current.is_default() {
        return Err(ConfigError::Conflict("the default config cannot be deleted".into()));
    }
    if current.events > 0 {
        return Err(ConfigError::Conflict(format!(
            "the config holds {} events and an audit log never drops events; it cannot be deleted",
            current.events
        )));
    }
    let bound: i64 = tx.query_row(
        "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND EXISTS (SELECT 1 FROM json_each(api_keys.configs) WHERE value = ?1)",
        [id],
        |r| r.get(0),
    )?;
    if bound > 0 {
        return Err(ConfigError::Conflict(format!("{bound} active key(s) are bound to the config; revoke them first")));
    }
    tx.execute("DELETE FROM config_fields WHERE config = ?1", [current.num])?;
    // `events = 0` again inside the transaction: the writer counts in its own transactions.
    let n = tx.execute("DELETE FROM audit_configs WHERE num = ?1 AND events = 0", [current.num])?;
    if n != 1 {
        return Err(ConfigError::Conflict("the config holds events; it cannot be deleted".into()));
    }
    bump_version(&tx)?;
    tx.commit()?;
    Ok(current)
}

/// Makes a new version of a server-signing config's event-signing key; later events are signed
/// with it, earlier ones keep theirs.
pub fn rotate_signing(conn: &mut Connection, id: &str, keys: &dyn SigningKeys) -> Result<AuditConfig, ConfigError> {
    let current = get(conn, id)?.ok_or(ConfigError::NotFound)?;
    let Some((name, _)) = &current.signing_key else {
        return Err(ConfigError::Conflict("the config is not signed by the server (signing = none)".into()));
    };
    let version = keys.rotate(name)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE audit_configs SET signing_version = MAX(COALESCE(signing_version, 0), ?1), updated_at = ?2 WHERE num = ?3",
        params![version, now_micros().max(current.updated_at + 1), current.num],
    )?;
    bump_version(&tx)?;
    let updated = get(&tx, id)?.ok_or(ConfigError::NotFound)?;
    tx.commit()?;
    Ok(updated)
}

/// Why a request's config could not be selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectError {
    /// The key is bound to several configs and the request names none (Pangea's
    /// `MissingConfigID`).
    Missing,
    /// `config_id` is not a config id (`pci_` + 32 `[a-z0-9]`).
    Malformed,
    /// The key is not bound to that config, or there is no such config: refused alike, so a key
    /// cannot tell which configs exist.
    Refused,
    /// No such config (admin keys, which reach every config).
    NotFound,
}

/// Whether the key may use `config`: admin keys reach every config; other keys their bound
/// configs, or the default config when bound to none.
pub fn may_use(principal: &crate::keys::Principal, config: &AuditConfig) -> bool {
    principal.scopes.admin
        || principal.configs.contains(&config.id)
        || (principal.configs.is_empty() && config.is_default())
}

impl Registry {
    /// The config a request works on: the one it names (`config_id`), else the key's only bound
    /// config, else the default config. Call `refresh` with the key's `config_version` first.
    pub fn select(
        &self,
        principal: &crate::keys::Principal,
        requested: Option<&str>,
    ) -> Result<Arc<AuditConfig>, SelectError> {
        match requested {
            Some(id) if !valid_config_id(id) => Err(SelectError::Malformed),
            Some(id) => match self.get(id) {
                Some(c) if may_use(principal, &c) => Ok(c),
                None if principal.scopes.admin => Err(SelectError::NotFound),
                _ => Err(SelectError::Refused),
            },
            None => match principal.configs.as_slice() {
                [] => Ok(self.default_config()),
                [one] => self.get(one).ok_or(SelectError::Refused),
                _ => Err(SelectError::Missing),
            },
        }
    }

    /// The configs a key may use (admin keys: all), default first.
    pub fn usable(&self, principal: &crate::keys::Principal) -> Vec<Arc<AuditConfig>> {
        self.all().into_iter().filter(|c| may_use(principal, c)).collect()
    }
}

/// The configs as the running server knows them, reloaded when `config_state.version` moves.
pub struct Registry {
    loaded: RwLock<Loaded>,
    pool: Pool,
    keys: Arc<dyn SigningKeys>,
    signers: Mutex<HashMap<(String, u32), Arc<EventSigner>>>,
}

struct Loaded {
    version: i64,
    configs: Vec<Arc<AuditConfig>>,
}

impl Registry {
    /// Loads every config (blocking).
    pub fn open(conn: &Connection, pool: Pool, keys: Arc<dyn SigningKeys>) -> anyhow::Result<Self> {
        let loaded = Loaded { version: version(conn)?, configs: load_all(conn)?.into_iter().map(Arc::new).collect() };
        Ok(Self { loaded: RwLock::new(loaded), pool, keys, signers: Mutex::default() })
    }

    /// The version of the loaded configs.
    pub fn version(&self) -> i64 {
        self.loaded.read().version
    }

    /// Reloads every config from the database (blocking).
    pub fn reload(&self) -> anyhow::Result<()> {
        let conn = self.pool.get()?;
        conn.execute_batch("BEGIN")?;
        let result = (|| -> anyhow::Result<Loaded> {
            Ok(Loaded { version: version(&conn)?, configs: load_all(&conn)?.into_iter().map(Arc::new).collect() })
        })();
        let _ = conn.execute_batch("COMMIT");
        let fresh = result?;
        let mut loaded = self.loaded.write();
        if fresh.version >= loaded.version {
            *loaded = fresh;
        }
        Ok(())
    }

    /// Reloads if a request saw a newer `config_state.version` than the loaded one (blocking).
    pub fn refresh(&self, seen: i64) -> anyhow::Result<()> {
        if seen > self.version() { self.reload() } else { Ok(()) }
    }

    pub fn get(&self, id: &str) -> Option<Arc<AuditConfig>> {
        self.loaded.read().configs.iter().find(|c| c.id == id).cloned()
    }

    pub fn by_num(&self, num: i64) -> Option<Arc<AuditConfig>> {
        self.loaded.read().configs.iter().find(|c| c.num == num).cloned()
    }

    pub fn default_config(&self) -> Arc<AuditConfig> {
        self.by_num(DEFAULT).expect("the default config always exists (migration 0010)")
    }

    pub fn all(&self) -> Vec<Arc<AuditConfig>> {
        self.loaded.read().configs.clone()
    }

    /// The key store of the event-signing keys.
    pub fn keys(&self) -> &Arc<dyn SigningKeys> {
        &self.keys
    }

    /// The current event signer of a server-signing config (blocking on first use of a version:
    /// it reads the key store).
    pub fn signer(&self, config: &AuditConfig) -> anyhow::Result<Option<Arc<EventSigner>>> {
        let Some((name, version)) = &config.signing_key else { return Ok(None) };
        let key = (name.clone(), *version);
        if let Some(s) = self.signers.lock().get(&key) {
            return Ok(Some(s.clone()));
        }
        let signer = Arc::new(EventSigner::load(self.keys.as_ref(), name, *version)?);
        self.signers.lock().insert(key, signer.clone());
        Ok(Some(signer))
    }

    /// The free-text body of a stored event (the writer's purge and recovery): what ingest
    /// indexed for it.
    pub fn fts_text(&self, origin: Origin, config: i64, event: &Map<String, Value>) -> String {
        if origin != Origin::Pangea {
            return crate::event::fts_body(origin, event);
        }
        let found = self.by_num(config).or_else(|| {
            // Created by another process since the last reload.
            if let Err(e) = self.reload() {
                tracing::warn!(error = %e, "cannot reload the audit configs");
            }
            self.by_num(config)
        });
        match found {
            Some(c) => c.fts_text(event),
            None => crate::event::fts_body(origin, event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Connection, crate::keystore::KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let keys = crate::keystore::KeyStore::open(&dir.path().join("keys"), None).unwrap();
        (dir, conn, keys)
    }

    fn schema(v: Value) -> AuditSchema {
        AuditSchema::parse(&v, "/schema").unwrap()
    }

    /// Migration 0010 on a database of the schema before audit configs, with events and keys:
    /// every event joins the default config (counted), keys are bound to none, the standard schema
    /// is stored, and the configs load.
    #[test]
    fn configs_migration_on_an_older_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(crate::store::db_path(dir.path())).unwrap();
        let before = crate::store::MIGRATIONS.iter().position(|(n, _)| *n == "0010_configs.sql").unwrap();
        for (i, (_, sql)) in crate::store::MIGRATIONS[..before].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64).unwrap();
        }
        let s = crate::store::intern(&conn, "").unwrap();
        for seq in 0..5i64 {
            conn.execute(
                "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                    read_only, type, buffer, hash, envelope)
                 VALUES (?1, randomblob(16), ?1 % 3, ?1, ?1, ?2, ?2, ?2, ?2, 0, 0, 0, zeroblob(32), '{}')",
                params![seq, s],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO api_keys(id, name, secret_hash, scopes, workspaces, created_at) VALUES ('k', 'n', 'h', 'admin', '[]', 0)",
            [],
        )
        .unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, crate::store::MIGRATIONS.len() as i64);
        let (num, id, events, schema): (i64, String, i64, String) = conn
            .query_row("SELECT num, id, events, schema FROM audit_configs", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!((num, events), (DEFAULT, 5));
        assert!(id.starts_with("pci_") && id.len() == 36, "{id}");
        assert_eq!(schema, schema::STANDARD_SCHEMA_JSON);
        let configs: String = conn.query_row("SELECT configs FROM api_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(configs, "[]");
        let other: i64 = conn.query_row("SELECT COUNT(*) FROM events WHERE config != 0", [], |r| r.get(0)).unwrap();
        assert_eq!(other, 0);
        assert_eq!(load_all(&conn).unwrap().len(), 1);
    }

    #[test]
    fn the_default_config_has_the_standard_catalog() {
        let (_d, conn, _k) = setup();
        let all = load_all(&conn).unwrap();
        assert_eq!(all.len(), 1);
        let d = &all[0];
        assert!(d.is_default() && valid_config_id(&d.id), "{}", d.id);
        assert_eq!(d.schema, schema::standard_schema());
        assert_eq!(*d.catalog(), Catalog::standard());
        assert!(d.catalog().is_standard());
    }

    #[test]
    fn create_update_delete() {
        let (_d, mut conn, keys) = setup();
        let v0 = version(&conn).unwrap();
        let s = schema(json!({"fields": [
            {"id": "message", "type": "text", "required": true},
            {"id": "user", "type": "string"}, {"id": "n", "type": "integer"}, {"id": "blob", "type": "string-unindexed"},
        ]}));
        let c = create(&mut conn, NewConfig { name: " pci ".into(), schema: s, signing: Signing::Server }, Some(&keys))
            .unwrap();
        assert!(valid_config_id(&c.id) && c.name == "pci" && c.num == 1);
        assert!(version(&conn).unwrap() > v0);
        let (key, v) = c.signing_key.clone().unwrap();
        assert!(key.starts_with("pvi_") && v == 1);
        let storages: Vec<Storage> = c.fields.iter().map(|f| f.storage).collect();
        assert!(matches!(
            storages[..],
            [Storage::Envelope, Storage::Indexed(_), Storage::Indexed(_), Storage::Envelope]
        ));
        let cat = c.catalog();
        assert_eq!(cat.field("blob").unwrap().kind, FieldKind::Unsearchable);
        assert_eq!(cat.field("n").unwrap().kind, FieldKind::Integer);
        assert_eq!(c.to_api()["vault_key_id"], json!(key));

        // Events: only optional additions; the field numbers stay.
        conn.execute("UPDATE audit_configs SET events = 3 WHERE num = 1", []).unwrap();
        let mut grown = c.schema.to_value();
        grown["fields"].as_array_mut().unwrap().insert(0, json!({"id": "added", "type": "boolean"}));
        let u = update(&mut conn, &c.id, ConfigUpdate { schema: Some(schema(grown)), ..Default::default() }).unwrap();
        assert_eq!(u.revision, c.revision + 1);
        assert_eq!(u.fields[2].storage, c.fields[1].storage, "existing fields keep their numbers");
        assert!(matches!(u.fields[0].storage, Storage::Indexed(_)));
        let shrunk = schema(json!({"fields": [{"id": "message", "type": "text"}]}));
        assert!(matches!(
            update(&mut conn, &c.id, ConfigUpdate { schema: Some(shrunk), ..Default::default() }),
            Err(ConfigError::Invalid(_))
        ));
        let stale =
            ConfigUpdate { name: Some("x".into()), expect_updated_at: Some(c.updated_at), ..Default::default() };
        assert!(matches!(update(&mut conn, &c.id, stale), Err(ConfigError::Conflict(_))));
        assert!(matches!(delete(&mut conn, &c.id), Err(ConfigError::Conflict(m)) if m.contains("holds 3 events")));
        let default_id = load_all(&conn).unwrap()[0].id.clone();
        assert!(matches!(delete(&mut conn, &default_id), Err(ConfigError::Conflict(_))));

        let rotated = rotate_signing(&mut conn, &c.id, &keys).unwrap();
        assert_eq!(rotated.signing_key.as_ref().unwrap().1, 2);
        assert!(matches!(rotate_signing(&mut conn, &default_id, &keys), Err(ConfigError::Conflict(_))));

        let empty = create(
            &mut conn,
            NewConfig {
                name: "e".into(),
                schema: schema(json!({"fields": [{"id": "a", "type": "integer"}]})),
                signing: Signing::None,
            },
            None,
        )
        .unwrap();
        let k = crate::keys::create_key_with(
            &conn,
            "b",
            crate::keys::Scopes { search: true, ..Default::default() },
            &[],
            std::slice::from_ref(&empty.id),
        )
        .unwrap();
        assert!(matches!(delete(&mut conn, &empty.id), Err(ConfigError::Conflict(m)) if m.contains("bound")));
        crate::keys::revoke_key(&conn, &k.id).unwrap();
        delete(&mut conn, &empty.id).unwrap();
        assert!(get(&conn, &empty.id).unwrap().is_none());
        assert!(matches!(delete(&mut conn, &empty.id), Err(ConfigError::NotFound)));
    }
}
