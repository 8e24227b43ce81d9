//! The local key store: a directory (0700) of key files, one per key name and version
//! (`<name>.<version>.pem`, 0600), never rows of the database. Ed25519 keys are PKCS#8 PEM,
//! HMAC keys a PEM block of their own; with a passphrase every file is sealed (argon2id +
//! XChaCha20-Poly1305, see [`format`]). Writes are atomic (temp file, fsync, rename, directory
//! fsync); versions only grow, so a rotated key's older versions stay readable for the data they
//! signed. No SQL and no HTTP here: [`trail`] ties the store to a data directory's database.

pub mod format;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use parking_lot::Mutex;
use zeroize::Zeroizing;

pub use format::Kind;
use format::{FormatError, KeyFile, Secret};

use crate::datadir;

/// A key-store passphrase; never printed (`Debug` shows `***`), wiped when dropped.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

impl Passphrase {
    pub fn new(p: String) -> anyhow::Result<Self> {
        let p = Zeroizing::new(p);
        if p.is_empty() {
            anyhow::bail!("the key passphrase is empty");
        }
        Ok(Self(p))
    }

    /// Reads a passphrase file: its contents without one trailing newline (`\n` or `\r\n`).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the key passphrase file {}: {e}", path.display()))?,
        );
        let trimmed = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        Self::new(trimmed.to_string())
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(
        "the key store {} is encrypted: give its passphrase with TRAILKEEP_KEY_PASSPHRASE or --key-passphrase-file",
        .0.display()
    )]
    PassphraseRequired(PathBuf),
    #[error("wrong key passphrase for {} (or the file was altered)", .0.display())]
    WrongPassphrase(PathBuf),
    #[error("{} is not a usable key file: {why}", .path.display())]
    Malformed { path: PathBuf, why: String },
    #[error("{} holds a {found} key, not {expected}", .path.display())]
    WrongKind { path: PathBuf, expected: &'static str, found: &'static str },
    #[error("{} already exists and holds a different key", .0.display())]
    Conflict(PathBuf),
    #[error("key {name} version {version} is not in the key store {}", .dir.display())]
    Missing { dir: PathBuf, name: String, version: u32 },
    #[error("invalid key name {0:?} (letters, digits, '-' and '_', at most 100)")]
    BadName(String),
    #[error(transparent)]
    NotPrivate(#[from] datadir::NotPrivate),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

type Result<T> = std::result::Result<T, KeyStoreError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io { path: path.to_path_buf(), source }
}

/// One key file, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    pub version: u32,
    pub kind: Kind,
    pub encrypted: bool,
    /// Ed25519 keys only.
    pub public_key: Option<VerifyingKey>,
    pub path: PathBuf,
}

impl KeyInfo {
    /// `name.version`, the file's stem.
    pub fn id(&self) -> String {
        format!("{}.{}", self.name, self.version)
    }
}

/// Key names: letters, digits, `-` and `_`, starting with a letter or digit, at most 100.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `name.version.pem` → (name, version).
fn parse_file_name(file: &str) -> Option<(&str, u32)> {
    let stem = file.strip_suffix(".pem")?;
    let (name, version) = stem.rsplit_once('.')?;
    let v: u32 = version.parse().ok().filter(|v| *v > 0 && !version.starts_with('0'))?;
    valid_name(name).then_some((name, v))
}

/// The key files of a directory (any directory: a data directory's store or a backup's copy),
/// read without the passphrase. Files that are not key files are ignored.
pub fn scan(dir: &Path) -> Result<Vec<KeyInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let file = entry.file_name();
        let Some((name, version)) = file.to_str().and_then(parse_file_name) else { continue };
        let path = entry.path();
        let parsed = read_file(&path)?;
        out.push(KeyInfo {
            name: name.to_string(),
            version,
            kind: parsed.kind(),
            encrypted: parsed.is_sealed(),
            public_key: parsed.public(),
            path,
        });
    }
    out.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    Ok(out)
}

fn read_file(path: &Path) -> Result<KeyFile> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    format::parse(&text).map_err(|e| KeyStoreError::Malformed { path: path.to_path_buf(), why: e.to_string() })
}

/// A key store directory opened for use.
pub struct KeyStore {
    dir: PathBuf,
    passphrase: Option<Passphrase>,
    /// Serialises version allocation within this process.
    create: Mutex<()>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("dir", &self.dir).field("encrypting", &self.passphrase.is_some()).finish()
    }
}

impl KeyStore {
    /// Opens (creating it 0700 if missing) the key store `dir`. Refuses a directory or key file
    /// that other users can read or write, and a store holding encrypted keys when no passphrase
    /// is given; with a passphrase, keys created from now on are encrypted. A wrong passphrase is
    /// reported when a key is read.
    pub fn open(dir: &Path, passphrase: Option<Passphrase>) -> Result<Self> {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => datadir::sync_dir(dir.parent().unwrap_or(Path::new("."))).map_err(io(dir))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(dir)(e)),
        }
        check_private(dir, "the key store directory")?;
        let store = Self { dir: dir.to_path_buf(), passphrase, create: Mutex::new(()) };
        let keys = store.list()?;
        for k in &keys {
            check_private(&k.path, "the key file")?;
        }
        if store.passphrase.is_none() && keys.iter().any(|k| k.encrypted) {
            return Err(KeyStoreError::PassphraseRequired(dir.to_path_buf()));
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether keys written by this store are encrypted (a passphrase was given).
    pub fn encrypting(&self) -> bool {
        self.passphrase.is_some()
    }

    /// Every key file, sorted by name and version.
    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        scan(&self.dir)
    }

    /// The versions of `name`, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>> {
        check_name(name)?;
        Ok(self.list()?.into_iter().filter(|k| k.name == name).map(|k| k.version).collect())
    }

    fn path(&self, name: &str, version: u32) -> PathBuf {
        self.dir.join(format!("{name}.{version}.pem"))
    }

    /// Reads and, if sealed, decrypts one key file.
    fn read(&self, name: &str, version: u32) -> Result<Secret> {
        check_name(name)?;
        let path = self.path(name, version);
        if !path.exists() {
            return Err(KeyStoreError::Missing { dir: self.dir.clone(), name: name.into(), version });
        }
        match read_file(&path)? {
            KeyFile::Plain(s) => Ok(s),
            KeyFile::Sealed(sealed) => {
                let Some(p) = &self.passphrase else { return Err(KeyStoreError::PassphraseRequired(self.dir.clone())) };
                format::open_sealed(&sealed, p.bytes(), &format!("{name}.{version}")).map_err(|e| match e {
                    FormatError::WrongPassphrase => KeyStoreError::WrongPassphrase(path.clone()),
                    FormatError::Malformed(why) => KeyStoreError::Malformed { path: path.clone(), why: why.into() },
                })
            }
        }
    }

    fn encode(&self, secret: &Secret, name: &str, version: u32) -> Result<Zeroizing<String>> {
        let malformed =
            |e: FormatError| KeyStoreError::Malformed { path: self.path(name, version), why: e.to_string() };
        match &self.passphrase {
            Some(p) => format::encode_sealed(secret, p.bytes(), &format!("{name}.{version}"))
                .map(Zeroizing::new)
                .map_err(malformed),
            None => format::encode_plain(secret).map_err(malformed),
        }
    }

    /// Writes a new file (temp file, fsync, rename, directory fsync).
    fn write(&self, secret: &Secret, name: &str, version: u32) -> Result<()> {
        let path = self.path(name, version);
        let text = self.encode(secret, name, version)?;
        datadir::write_atomic(&path, text.as_bytes()).map_err(io(&path))
    }

    /// Stores `secret` as the next version of `name`; returns that version.
    fn create(&self, name: &str, secret: &Secret) -> Result<u32> {
        let _one = self.create.lock();
        let version = self.versions(name)?.last().copied().unwrap_or(0) + 1;
        self.write(secret, name, version)?;
        Ok(version)
    }

    /// Stores `secret` as `name` version `version` unless that file already holds the same key
    /// (idempotent, for moving keys in); a different key there is a conflict.
    fn put(&self, name: &str, version: u32, secret: &Secret) -> Result<()> {
        check_name(name)?;
        let _one = self.create.lock();
        let path = self.path(name, version);
        if path.exists() {
            let same = match (self.read(name, version)?, secret) {
                (Secret::Ed25519(a), Secret::Ed25519(b)) => a.to_bytes() == b.to_bytes(),
                (Secret::Hmac(a), Secret::Hmac(b)) => *a == **b,
                _ => false,
            };
            return if same { Ok(()) } else { Err(KeyStoreError::Conflict(path)) };
        }
        self.write(secret, name, version)
    }

    /// Generates a new Ed25519 key as the next version of `name`.
    pub fn create_ed25519(&self, name: &str) -> Result<u32> {
        let seed = Zeroizing::new(crate::ledger::random_bytes::<32>());
        self.create(name, &Secret::Ed25519(SigningKey::from_bytes(&seed)))
    }

    /// Stores a given Ed25519 key as `name` version `version` (idempotent).
    pub fn put_ed25519(&self, name: &str, version: u32, key: &SigningKey) -> Result<()> {
        self.put(name, version, &Secret::Ed25519(key.clone()))
    }

    /// The Ed25519 key `name` version `version`.
    pub fn ed25519(&self, name: &str, version: u32) -> Result<SigningKey> {
        let path = self.path(name, version);
        match self.read(name, version)? {
            Secret::Ed25519(k) => Ok(k),
            Secret::Hmac(_) => Err(KeyStoreError::WrongKind { path, expected: "ed25519", found: "hmac-sha256" }),
        }
    }

    /// The public half of Ed25519 key `name` version `version`, read without the passphrase.
    pub fn public_key(&self, name: &str, version: u32) -> Result<VerifyingKey> {
        check_name(name)?;
        let path = self.path(name, version);
        if !path.exists() {
            return Err(KeyStoreError::Missing { dir: self.dir.clone(), name: name.into(), version });
        }
        let file = read_file(&path)?;
        file.public().ok_or(KeyStoreError::WrongKind { path, expected: "ed25519", found: file.kind().name() })
    }

    /// Generates a new 32-byte HMAC key as the next version of `name`.
    pub fn create_hmac(&self, name: &str) -> Result<u32> {
        self.create(name, &Secret::Hmac(Zeroizing::new(crate::ledger::random_bytes::<32>())))
    }

    /// Stores a given HMAC key as `name` version `version` (idempotent).
    pub fn put_hmac(&self, name: &str, version: u32, key: &[u8; 32]) -> Result<()> {
        self.put(name, version, &Secret::Hmac(Zeroizing::new(*key)))
    }

    /// The newest version of HMAC key `name`, if any.
    pub fn hmac_key(&self, name: &str) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let Some(version) = self.versions(name)?.last().copied() else { return Ok(None) };
        let path = self.path(name, version);
        match self.read(name, version)? {
            Secret::Hmac(k) => Ok(Some(k)),
            Secret::Ed25519(_) => Err(KeyStoreError::WrongKind { path, expected: "hmac-sha256", found: "ed25519" }),
        }
    }

    /// Rewrites every plain key file sealed with this store's passphrase (`trailkeep keys
    /// encrypt`); files already sealed must open with it. Returns how many files were rewritten.
    pub fn encrypt_all(&self) -> Result<usize> {
        if self.passphrase.is_none() {
            return Err(KeyStoreError::PassphraseRequired(self.dir.clone()));
        }
        self.rewrite(|k| !k.encrypted, self)
    }

    /// Rewrites every sealed key file in plain PEM (`trailkeep keys decrypt`). Returns how many.
    pub fn decrypt_all(&self) -> Result<usize> {
        let plain = KeyStore { dir: self.dir.clone(), passphrase: None, create: Mutex::new(()) };
        self.rewrite(|k| k.encrypted, &plain)
    }

    /// Reads every key (so a wrong passphrase stops everything before any change) and rewrites
    /// the selected ones through `writer`.
    fn rewrite(&self, select: impl Fn(&KeyInfo) -> bool, writer: &KeyStore) -> Result<usize> {
        let _one = self.create.lock();
        let keys = self.list()?;
        let mut secrets = Vec::with_capacity(keys.len());
        for k in &keys {
            secrets.push(self.read(&k.name, k.version)?);
        }
        let mut n = 0;
        for (k, s) in keys.iter().zip(&secrets) {
            if select(k) {
                writer.write(s, &k.name, k.version)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn check_name(name: &str) -> Result<()> {
    if valid_name(name) { Ok(()) } else { Err(KeyStoreError::BadName(name.to_string())) }
}

fn check_private(path: &Path, what: &'static str) -> Result<()> {
    match datadir::not_private(path, what).map_err(io(path))? {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn pass(s: &str) -> Option<Passphrase> {
        Some(Passphrase::new(s.into()).unwrap())
    }

    #[test]
    fn names_and_versions() {
        assert!(valid_name("root-signing") && valid_name("event_signing-pci_1") && valid_name("a"));
        for bad in ["", "-x", "a.b", "a/b", "..", "é", &"x".repeat(101)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(parse_file_name("root-signing.1.pem"), Some(("root-signing", 1)));
        assert_eq!(parse_file_name("a.b.12.pem"), None);
        for bad in ["x.0.pem", "x.01.pem", "x.pem", "x.1.pem.tmp", ".x.1.pem.tmp", "x.1"] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }

        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(&dir.path().join("keys"), None).unwrap();
        assert_eq!(mode(ks.dir()), 0o700);
        assert_eq!(ks.versions("root-signing").unwrap(), Vec::<u32>::new());
        assert_eq!(ks.create_ed25519("root-signing").unwrap(), 1);
        assert_eq!(ks.create_ed25519("root-signing").unwrap(), 2);
        assert_eq!(ks.create_hmac("page-token").unwrap(), 1);
        assert_eq!(ks.versions("root-signing").unwrap(), vec![1, 2]);
        let k1 = ks.ed25519("root-signing", 1).unwrap();
        let k2 = ks.ed25519("root-signing", 2).unwrap();
        assert_ne!(k1.to_bytes(), k2.to_bytes());
        assert_eq!(ks.public_key("root-signing", 2).unwrap(), k2.verifying_key());
        assert!(matches!(ks.ed25519("root-signing", 3), Err(KeyStoreError::Missing { .. })));
        assert!(matches!(ks.ed25519("page-token", 1), Err(KeyStoreError::WrongKind { .. })));
        assert!(matches!(ks.create_ed25519("../x"), Err(KeyStoreError::BadName(_))));
        let listed: Vec<String> = ks.list().unwrap().iter().map(KeyInfo::id).collect();
        assert_eq!(listed, ["page-token.1", "root-signing.1", "root-signing.2"]);
        for k in ks.list().unwrap() {
            assert_eq!(mode(&k.path), 0o600, "{}", k.path.display());
        }
        // Reopened: the same keys; other files in the directory are ignored.
        std::fs::write(ks.dir().join("README"), b"x").unwrap();
        drop(ks);
        let ks = KeyStore::open(&dir.path().join("keys"), None).unwrap();
        assert_eq!(ks.ed25519("root-signing", 1).unwrap().to_bytes(), k1.to_bytes());
        assert_eq!(ks.hmac_key("page-token").unwrap().map(|k| k.len()), Some(32));
    }

    #[test]
    fn put_is_idempotent_and_refuses_a_different_key() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(&dir.path().join("keys"), None).unwrap();
        let k = SigningKey::from_bytes(&[1; 32]);
        ks.put_ed25519("root-signing", 1, &k).unwrap();
        ks.put_ed25519("root-signing", 1, &k).unwrap();
        let other = SigningKey::from_bytes(&[2; 32]);
        assert!(matches!(ks.put_ed25519("root-signing", 1, &other), Err(KeyStoreError::Conflict(_))));
        ks.put_hmac("page-token", 1, &[3; 32]).unwrap();
        ks.put_hmac("page-token", 1, &[3; 32]).unwrap();
        assert!(matches!(ks.put_hmac("page-token", 1, &[4; 32]), Err(KeyStoreError::Conflict(_))));
        assert_eq!(*ks.hmac_key("page-token").unwrap().unwrap(), [3; 32]);
    }

    #[test]
    fn lax_permissions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let ks = KeyStore::open(&keys, None).unwrap();
        ks.create_ed25519("root-signing").unwrap();
        let file = keys.join("root-signing.1.pem");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyStore::open(&keys, None).unwrap_err().to_string();
        assert!(err.contains(&format!("chmod 600 {}", file.display())), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o750)).unwrap();
        let err = KeyStore::open(&keys, None).unwrap_err().to_string();
        assert!(err.contains(&format!("chmod 700 {}", keys.display())), "{err}");
    }

    #[test]
    fn encrypted_store_needs_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let ks = KeyStore::open(&keys, pass("s3cret")).unwrap();
        ks.create_ed25519("root-signing").unwrap();
        ks.create_hmac("page-token").unwrap();
        let k = ks.ed25519("root-signing", 1).unwrap();
        let text = std::fs::read_to_string(keys.join("root-signing.1.pem")).unwrap();
        assert!(text.starts_with("-----BEGIN TRAILKEEP ENCRYPTED KEY-----"), "{text}");
        assert!(!text.contains(&hex::encode(k.to_bytes())));
        drop(ks);

        let err = KeyStore::open(&keys, None).unwrap_err();
        assert!(matches!(err, KeyStoreError::PassphraseRequired(_)), "{err}");
        assert!(err.to_string().contains("TRAILKEEP_KEY_PASSPHRASE"), "{err}");
        let wrong = KeyStore::open(&keys, pass("nope")).unwrap();
        assert!(matches!(wrong.ed25519("root-signing", 1), Err(KeyStoreError::WrongPassphrase(_))));
        // The public key is readable without the passphrase.
        assert_eq!(wrong.public_key("root-signing", 1).unwrap(), k.verifying_key());
        let ks = KeyStore::open(&keys, pass("s3cret")).unwrap();
        assert_eq!(ks.ed25519("root-signing", 1).unwrap().to_bytes(), k.to_bytes());

        // A renamed file (another name or version) does not open: the name is bound to the seal.
        std::fs::copy(keys.join("root-signing.1.pem"), keys.join("root-signing.2.pem")).unwrap();
        assert!(matches!(ks.ed25519("root-signing", 2), Err(KeyStoreError::WrongPassphrase(_))));
    }

    #[test]
    fn encrypt_and_decrypt_a_whole_store() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let ks = KeyStore::open(&keys, None).unwrap();
        ks.create_ed25519("root-signing").unwrap();
        ks.create_hmac("page-token").unwrap();
        let k = ks.ed25519("root-signing", 1).unwrap();
        let t = ks.hmac_key("page-token").unwrap().unwrap();
        assert!(matches!(ks.encrypt_all(), Err(KeyStoreError::PassphraseRequired(_))));

        let ks = KeyStore::open(&keys, pass("pw")).unwrap();
        assert_eq!(ks.encrypt_all().unwrap(), 2);
        assert_eq!(ks.encrypt_all().unwrap(), 0, "already encrypted");
        assert!(ks.list().unwrap().iter().all(|k| k.encrypted));
        assert!(KeyStore::open(&keys, None).is_err());
        // Another passphrase cannot encrypt (or decrypt) a store sealed with the first.
        let other = KeyStore::open(&keys, pass("other")).unwrap();
        assert!(matches!(other.encrypt_all(), Err(KeyStoreError::WrongPassphrase(_))));
        assert!(matches!(other.decrypt_all(), Err(KeyStoreError::WrongPassphrase(_))));

        assert_eq!(ks.decrypt_all().unwrap(), 2);
        let ks = KeyStore::open(&keys, None).unwrap();
        assert_eq!(ks.ed25519("root-signing", 1).unwrap().to_bytes(), k.to_bytes());
        assert_eq!(*ks.hmac_key("page-token").unwrap().unwrap(), *t);
        for k in ks.list().unwrap() {
            assert_eq!(mode(&k.path), 0o600);
        }
    }

    #[test]
    fn passphrase_files_lose_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "a b \r\n").unwrap();
        assert_eq!(Passphrase::from_file(&p).unwrap().bytes(), b"a b ");
        std::fs::write(&p, "x\n\n").unwrap();
        assert_eq!(Passphrase::from_file(&p).unwrap().bytes(), b"x\n");
        std::fs::write(&p, "\n").unwrap();
        assert!(Passphrase::from_file(&p).is_err());
        assert_eq!(format!("{:?}", Passphrase::new("hunter2".into()).unwrap()), "Passphrase(***)");
    }
}
