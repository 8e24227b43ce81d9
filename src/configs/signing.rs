//! Server-side event signing (Pangea's "Vault signing"): a config with `signing = server` has its
//! own Ed25519 event-signing key, kept in the key store (`keystore`, `DATA_DIR/keys/`) under a
//! `pvi_…` name with numbered versions (never the root-signing key, never in the database). The server signs each event's
//! canonical JSON (the bytes the SDK's `canonicalize_event` gives) and the envelope carries
//! `signature` (base64) and `public_key`, the canonical JSON of
//! `{"algorithm": "ED25519", "key": <SPKI PEM>, "vault_key_id": <name>, "vault_key_version": <n>}`.
//! Rotation makes a new version; events keep the version (and public key) they were signed with.
//! A data directory restored from an archive records the versions' public halves in the database
//! (`PUBLIC_KEYS_SETTING`), so `verify` checks their signatures before the key files are installed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value, json};

use crate::event::canonical::{to_canonical_string, write_canonical_map};
use crate::keystore::KeyStore;

/// Where event-signing keys live: named keys with numbered versions (1, 2, …).
pub trait SigningKeys: Send + Sync {
    /// Creates version 1 of a new key.
    fn create(&self, name: &str) -> anyhow::Result<u32>;
    /// Creates the next version of a key and returns its number.
    fn rotate(&self, name: &str) -> anyhow::Result<u32>;
    /// The private key of one version.
    fn signing_key(&self, name: &str, version: u32) -> anyhow::Result<SigningKey>;
    /// The public key of one version.
    fn verifying_key(&self, name: &str, version: u32) -> anyhow::Result<VerifyingKey> {
        Ok(self.signing_key(name, version)?.verifying_key())
    }
}

/// The key store (`DATA_DIR/keys/`, `<name>.<version>.pem`, sealed when a passphrase is given)
/// holds the event-signing keys next to the server's own.
impl SigningKeys for KeyStore {
    fn create(&self, name: &str) -> anyhow::Result<u32> {
        if !self.versions(name)?.is_empty() {
            anyhow::bail!("the key {name} exists already");
        }
        Ok(self.create_ed25519(name)?)
    }

    fn rotate(&self, name: &str) -> anyhow::Result<u32> {
        if self.versions(name)?.is_empty() {
            anyhow::bail!("no key named {name} in the key store");
        }
        Ok(self.create_ed25519(name)?)
    }

    fn signing_key(&self, name: &str, version: u32) -> anyhow::Result<SigningKey> {
        Ok(self.ed25519(name, version)?)
    }

    fn verifying_key(&self, name: &str, version: u32) -> anyhow::Result<VerifyingKey> {
        Ok(self.public_key(name, version)?)
    }
}

/// The `public_key` text of a server-signed envelope: canonical JSON of Pangea's key fields.
pub fn public_key_json(name: &str, version: u32, key: &VerifyingKey) -> String {
    let pem = key.to_public_key_pem(LineEnding::LF).unwrap_or_default();
    to_canonical_string(&json!({
        "algorithm": "ED25519",
        "key": pem,
        "vault_key_id": name,
        "vault_key_version": version,
    }))
}

/// One version of a config's event-signing key, ready to sign.
pub struct EventSigner {
    key: SigningKey,
    public_key: String,
    pub name: String,
    pub version: u32,
}

impl EventSigner {
    pub fn new(name: &str, version: u32, key: SigningKey) -> Self {
        let public_key = public_key_json(name, version, &key.verifying_key());
        Self { key, public_key, name: name.to_string(), version }
    }

    /// Loads the version from the key store.
    pub fn load(keys: &dyn SigningKeys, name: &str, version: u32) -> anyhow::Result<Self> {
        Ok(Self::new(name, version, keys.signing_key(name, version)?))
    }

    /// (signature in base64, public_key text) for an event object.
    pub fn sign(&self, event: &Map<String, Value>) -> (String, String) {
        let mut text = String::with_capacity(512);
        write_canonical_map(event, &mut text);
        let sig = self.key.sign(text.as_bytes());
        (B64.encode(sig.to_bytes()), self.public_key.clone())
    }
}

/// The key fields of a server-signed envelope's `public_key`: (name, version, the PEM key).
pub fn parse_public_key(public_key: &str) -> Option<(String, u32, String)> {
    let v: Value = serde_json::from_str(public_key).ok()?;
    let name = v.get("vault_key_id")?.as_str()?.to_string();
    let version = u32::try_from(v.get("vault_key_version")?.as_u64()?).ok()?;
    let pem = v.get("key")?.as_str()?.to_string();
    Some((name, version, pem))
}

/// Whether `signature` (base64) is `key`'s signature of the event's canonical JSON.
pub fn verify_event(event: &Map<String, Value>, signature: &str, key: &VerifyingKey) -> bool {
    let Ok(bytes) = B64.decode(signature) else { return false };
    let Ok(sig) = Signature::from_slice(&bytes) else { return false };
    let mut text = String::new();
    write_canonical_map(event, &mut text);
    key.verify(text.as_bytes(), &sig).is_ok()
}

/// The SPKI PEM of a public key (as `public_key_json` writes it).
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// Setting (`settings` table) holding the public halves of event-signing keys whose private
/// halves are not in the key store (a data directory restored from an archive):
/// JSON `{"name": {"version": PEM}}`.
pub const PUBLIC_KEYS_SETTING: &str = "event_signing_public_keys";

/// An SPKI PEM public key (as `public_key_pem` writes it).
pub fn parse_public_key_pem(pem: &str) -> anyhow::Result<VerifyingKey> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| anyhow::anyhow!("not an Ed25519 public key PEM"))
}

/// The public event-signing keys recorded in the database (restored data directories).
pub fn stored_public_keys(
    conn: &rusqlite::Connection,
) -> anyhow::Result<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, String>>> {
    match crate::store::get_setting(conn, PUBLIC_KEYS_SETTING)? {
        Some(bytes) => {
            Ok(serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("the stored event-signing public keys: {e}"))?)
        }
        None => Ok(Default::default()),
    }
}

/// Every public event-signing key known for the key names given: the key store's (read without
/// its passphrase), else the database's record. (name, version) → SPKI PEM.
pub fn public_keys(
    conn: &rusqlite::Connection,
    data_dir: &std::path::Path,
    names: &[&str],
) -> anyhow::Result<std::collections::BTreeMap<(String, u32), String>> {
    let mut out = std::collections::BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    for (name, versions) in stored_public_keys(conn)? {
        if names.contains(&name.as_str()) {
            for (v, pem) in versions {
                out.insert((name.clone(), v), pem);
            }
        }
    }
    let dir = crate::serverkeys::keys_dir(data_dir);
    if dir.exists() {
        for k in crate::keystore::scan(&dir)? {
            if let Some(key) = k.public_key.filter(|_| names.contains(&k.name.as_str())) {
                out.insert((k.name, k.version), public_key_pem(&key));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_and_old_versions_keep_verifying() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::open(&dir.path().join("keys"), None).unwrap();
        assert_eq!(keys.create("pvi_test").unwrap(), 1);
        assert!(keys.create("pvi_test").is_err());
        let v1 = EventSigner::load(&keys, "pvi_test", 1).unwrap();
        assert_eq!(keys.rotate("pvi_test").unwrap(), 2);
        let v2 = EventSigner::load(&keys, "pvi_test", 2).unwrap();
        let event: Map<String, Value> = serde_json::from_value(json!({"message": "é", "n": 5, "ok": true})).unwrap();
        let (s1, pk1) = v1.sign(&event);
        let (s2, pk2) = v2.sign(&event);
        assert_ne!(pk1, pk2);
        let (name, version, pem) = parse_public_key(&pk1).unwrap();
        assert_eq!((name.as_str(), version), ("pvi_test", 1));
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(verify_event(&event, &s1, &keys.verifying_key("pvi_test", 1).unwrap()));
        assert!(verify_event(&event, &s2, &keys.verifying_key("pvi_test", 2).unwrap()));
        assert!(!verify_event(&event, &s1, &keys.verifying_key("pvi_test", 2).unwrap()));
        assert!(keys.rotate("pvi_other").is_err());
        assert!(keys.signing_key("../x", 1).is_err());
    }

    /// The public-key text is canonical JSON with Pangea's key names, and the signed bytes are the
    /// SDK's `canonicalize_event` (same as the canonical writer for strings, integers, booleans).
    #[test]
    fn public_key_json_shape() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pk = public_key_json("pvi_abc", 3, &key.verifying_key());
        assert!(
            pk.starts_with(r#"{"algorithm":"ED25519","key":"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"#),
            "{pk}"
        );
        assert!(pk.ends_with(r#"-----END PUBLIC KEY-----\n","vault_key_id":"pvi_abc","vault_key_version":3}"#), "{pk}");
    }
}
