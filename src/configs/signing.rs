//! Server-side event signing (Pangea's "Vault signing"): a config with `signing = server` has its
//! own Ed25519 event-signing key, kept in the key store under a `pvi_…` name with numbered
//! versions (never the root-signing key, never in the database). The server signs each event's
//! canonical JSON (the bytes the SDK's `canonicalize_event` gives) and the envelope carries
//! `signature` (base64) and `public_key`, the canonical JSON of
//! `{"algorithm": "ED25519", "key": <SPKI PEM>, "vault_key_id": <name>, "vault_key_version": <n>}`.
//! Rotation makes a new version; events keep the version (and public key) they were signed with.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value, json};

use crate::event::canonical::{to_canonical_string, write_canonical_map};

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

/// Event-signing keys as PKCS#8 PEM files `DATA_DIR/keys/<name>.v<version>.pem` (mode 0600, in a
/// 0700 directory).
pub struct FileKeys {
    dir: PathBuf,
}

impl FileKeys {
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("keys") }
    }

    fn path(&self, name: &str, version: u32) -> anyhow::Result<PathBuf> {
        if !valid_key_name(name) {
            anyhow::bail!("invalid key name {name:?}");
        }
        Ok(self.dir.join(format!("{name}.v{version}.pem")))
    }

    fn versions(&self, name: &str) -> anyhow::Result<Vec<u32>> {
        let prefix = format!("{name}.v");
        let mut out = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries {
                    let file = e?.file_name().to_string_lossy().into_owned();
                    if let Some(v) = file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".pem"))
                        && let Ok(v) = v.parse::<u32>()
                    {
                        out.push(v);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        out.sort_unstable();
        Ok(out)
    }

    fn write(&self, name: &str, version: u32) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let key = SigningKey::from_bytes(&crate::ledger::random_bytes::<32>());
        let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("cannot encode the key: {e}"))?;
        let path = self.path(name, version)?;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// Key-store names: `[A-Za-z0-9_-]`, 1–64 characters.
fn valid_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl SigningKeys for FileKeys {
    fn create(&self, name: &str) -> anyhow::Result<u32> {
        if !self.versions(name)?.is_empty() {
            anyhow::bail!("the key {name} exists already");
        }
        self.write(name, 1)?;
        Ok(1)
    }

    fn rotate(&self, name: &str) -> anyhow::Result<u32> {
        let Some(last) = self.versions(name)?.last().copied() else {
            anyhow::bail!("no key named {name}");
        };
        self.write(name, last + 1)?;
        Ok(last + 1)
    }

    fn signing_key(&self, name: &str, version: u32) -> anyhow::Result<SigningKey> {
        let path = self.path(name, version)?;
        let pem =
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read key {name} v{version}: {e}"))?;
        SigningKey::from_pkcs8_pem(&pem).map_err(|e| anyhow::anyhow!("key {name} v{version} is malformed: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_and_old_versions_keep_verifying() {
        let dir = tempfile::tempdir().unwrap();
        let keys = FileKeys::new(dir.path());
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
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("keys/pvi_test.v2.pem")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
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
