//! The trail's own keys in its data directory: the key store `DATA_DIR/keys`, the root-signing key
//! (Ed25519, signs every root) and the page-token key (HMAC-SHA256, H2O page tokens). The
//! database records only the root-signing *public* key. Databases written before the key store
//! held both private keys as rows; [`move_keys_out`] moves them into files and wipes them from
//! the database files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::Connection;

use crate::keystore::{KeyStore, Passphrase};
use crate::{datadir, store};

pub const KEYS_DIR: &str = "keys";
pub const ROOT_SIGNING: &str = "root-signing";
pub const PAGE_TOKEN: &str = "page-token";

pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(KEYS_DIR)
}

/// The trail's public key as the database records it; in a database not yet upgraded, derived
/// from the private key it still holds. `None` for a new database.
pub fn public_key(conn: &Connection) -> anyhow::Result<Option<VerifyingKey>> {
    if let Some(pk) = store::get_setting(conn, store::PUBLIC_KEY)? {
        let pk: [u8; 32] = pk.try_into().map_err(|_| anyhow::anyhow!("the recorded public key is malformed"))?;
        return Ok(Some(VerifyingKey::from_bytes(&pk).context("the recorded public key is malformed")?));
    }
    Ok(store::legacy_keys(conn)?.signing.map(|s| legacy_signing_key(&s)).transpose()?.map(|k| k.verifying_key()))
}

fn legacy_signing_key(seed: &[u8]) -> anyhow::Result<SigningKey> {
    let seed: &[u8; 32] = seed.try_into().map_err(|_| anyhow::anyhow!("the stored signing key is malformed"))?;
    Ok(SigningKey::from_bytes(seed))
}

/// Opens the database read-write with migrations applied and the keys of a database written
/// before the key store moved out (see [`move_keys_out`]).
pub fn open_rw(data_dir: &Path, passphrase: Option<&Passphrase>) -> anyhow::Result<Connection> {
    let conn = store::open_rw(data_dir)?;
    move_keys_out(&conn, data_dir, passphrase)?;
    Ok(conn)
}

/// Moves the private keys of a database written before the key store into key files, crash-safe:
/// the data directory is made private (0700, files 0600: the old release left it 0755/0644);
/// the key files are written and fsynced (encrypted if a passphrase is given); then one
/// transaction records the public key and deletes the rows; then `VACUUM` and a truncating WAL
/// checkpoint leave no copy of their bytes in the database files, and the pending mark goes. A
/// restart after a crash anywhere repeats what is missing (writing a key file again is
/// idempotent). Returns whether there was anything to do.
pub fn move_keys_out(conn: &Connection, data_dir: &Path, passphrase: Option<&Passphrase>) -> anyhow::Result<bool> {
    let legacy = store::legacy_keys(conn)?;
    if !legacy.any() {
        return Ok(false);
    }
    let narrowed = datadir::make_private(data_dir)
        .with_context(|| format!("cannot make the data directory {} private", data_dir.display()))?;
    if narrowed > 0 {
        tracing::warn!(
            data_dir = %data_dir.display(),
            modes_changed = narrowed,
            "the data directory was readable by other users (an older release made it so); it is now 0700 and its files 0600. \
             Its signing key was readable until now"
        );
    }
    if legacy.signing.is_some() || legacy.page_token.is_some() {
        let ks = KeyStore::open(&keys_dir(data_dir), passphrase.cloned())?;
        let public = match &legacy.signing {
            Some(seed) => {
                let key = legacy_signing_key(seed)?;
                ks.put_ed25519(ROOT_SIGNING, 1, &key)?;
                Some(key.verifying_key().to_bytes())
            }
            None => None,
        };
        if let Some(t) = &legacy.page_token {
            let t: &[u8; 32] =
                t.as_slice().try_into().map_err(|_| anyhow::anyhow!("the stored page-token key is malformed"))?;
            ks.put_hmac(PAGE_TOKEN, 1, t)?;
        }
        store::drop_legacy_keys(conn, public.as_ref()).context("cannot remove the keys from the database")?;
    }
    tracing::info!(
        "wiping the old key rows from the database files (VACUUM; once, may take a while on a large database)"
    );
    store::wipe_deleted_keys(conn)?;
    tracing::info!(key_store = %keys_dir(data_dir).display(), "the server's keys moved out of the database into the key store");
    Ok(true)
}

/// The trail's root-signing key, or why there is none.
pub enum RootSigning {
    Key(SigningKey),
    /// The key store does not hold the key whose public key the database records (a restore
    /// without keys, a wrong key directory): the trail can be served read-only. `help` says so and
    /// how to install the key, naming only the data directory's own layout (`keys/…`), so it can
    /// go to clients as well as to the log.
    Missing {
        public: VerifyingKey,
        help: String,
    },
}

/// The trail's root-signing key from the key store: the version whose public key the database
/// records. A new trail gets one (created, or the newest already in the store) and records its
/// public key. When the store does not hold it: `Missing`, with the file name to install it as.
pub fn root_signing_key(conn: &Connection, ks: &KeyStore) -> anyhow::Result<RootSigning> {
    let versions = ks.versions(ROOT_SIGNING)?;
    let Some(recorded) = public_key(conn)? else {
        if store::writer::latest_root(conn, "")?.is_some() {
            bail!("the database holds signed roots but records no public key: it was altered; run `trailkeep verify`");
        }
        let version = match versions.last() {
            Some(v) => *v,
            None => ks.create_ed25519(ROOT_SIGNING)?,
        };
        let key = ks.ed25519(ROOT_SIGNING, version)?;
        store::put_setting(conn, store::PUBLIC_KEY, key.verifying_key().as_bytes())?;
        return Ok(RootSigning::Key(key));
    };
    for v in versions.iter().rev() {
        if ks.public_key(ROOT_SIGNING, *v)? == recorded {
            return Ok(RootSigning::Key(ks.ed25519(ROOT_SIGNING, *v)?));
        }
    }
    let next = versions.last().map_or(1, |v| v + 1);
    Ok(RootSigning::Missing { public: recorded, help: missing_key_help(&recorded, next) })
}

/// What a read-only trail tells its clients and its operator.
pub fn missing_key_help(public: &VerifyingKey, version: u32) -> String {
    format!(
        "the trail's root-signing key is not in the key store, so this server is read-only \
         (searches, proofs, exports and downloads work; nothing can be logged). To continue the trail, \
         install the key whose Ed25519 public key is {} as keys/{ROOT_SIGNING}.{version}.pem in the data \
         directory (PKCS#8 PEM, mode 0600; `trailkeep restore --keys DIR` or `--signing-key FILE` does it \
         when restoring) and restart the server",
        B64.encode(public.as_bytes()),
    )
}

/// Puts the trail's root-signing key into the key store (sealed if the store has a passphrase)
/// unless a version with the same public key is there; returns its version.
pub fn install_root_signing_key(ks: &KeyStore, key: &SigningKey) -> anyhow::Result<u32> {
    let versions = ks.versions(ROOT_SIGNING)?;
    for v in versions.iter().rev() {
        if ks.public_key(ROOT_SIGNING, *v)? == key.verifying_key() {
            return Ok(*v);
        }
    }
    let version = versions.last().map_or(1, |v| v + 1);
    ks.put_ed25519(ROOT_SIGNING, version, key)?;
    Ok(version)
}

/// The page-token HMAC key, created on first use.
pub fn page_token_key(ks: &KeyStore) -> anyhow::Result<[u8; 32]> {
    if ks.hmac_key(PAGE_TOKEN)?.is_none() {
        ks.create_hmac(PAGE_TOKEN)?;
    }
    let key = ks.hmac_key(PAGE_TOKEN)?.context("the page-token key vanished")?;
    Ok(*key)
}
