//! HTTPS built in: the certificate chain and private key are read from PEM files into a rustls
//! server configuration (the `ring` provider, TLS 1.2 and 1.3 only, rustls' default cipher suites:
//! AES-GCM and ChaCha20-Poly1305 with ECDHE), and the certificate lives in a resolver whose
//! `Arc<CertifiedKey>` is swapped on SIGHUP ([`Tls::reload`]): handshakes after the swap get the new
//! certificate, connections already open keep theirs, and a reload that fails keeps the old one.
//!
//! Errors name the file and what is wrong with it, never its contents.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use der::asn1::{GeneralizedTime, UtcTime};
use der::{Decode, Reader, SliceReader, Tag, TagNumber};
use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// A certificate this close to expiry is reported at load and on every reload.
const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;

/// Why a certificate or key could not be used. Display names files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: &'static str },
    #[error("no certificate in {} (expected PEM blocks \"-----BEGIN CERTIFICATE-----\"){hint}", path.display())]
    NoCertificate { path: PathBuf, hint: &'static str },
    #[error(
        "no private key in {} (expected one PEM block \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\"){hint}",
        path.display()
    )]
    NoKey { path: PathBuf, hint: &'static str },
    #[error(
        "the private key in {} is encrypted: trailkeep needs it unencrypted (`openssl pkey -in KEY -out PLAIN`, then keep PLAIN readable by the server only)",
        path.display()
    )]
    EncryptedKey { path: PathBuf },
    #[error("{} holds more than one private key: keep only the server certificate's key", path.display())]
    SeveralKeys { path: PathBuf },
    #[error("the private key in {} is not a supported RSA, ECDSA (P-256, P-384) or Ed25519 key", path.display())]
    UnsupportedKey { path: PathBuf },
    #[error("the first certificate in {} is not a valid X.509 certificate", path.display())]
    BadCertificate { path: PathBuf },
    #[error(
        "the private key in {} does not belong to the first certificate in {} (the server's own certificate must come first, then its intermediates)",
        key.display(), cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

/// What the loaded certificate says about itself, for logs.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// DNS names of the server certificate (subject alternative names).
    pub names: Vec<String>,
    /// Validity window, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Certificates in the chain, the server's own included.
    pub chain_len: usize,
    /// The key file's permissions let every local user read it.
    pub key_world_readable: bool,
}

impl CertInfo {
    /// Warnings worth an operator's attention at `now` (Unix seconds): the certificate's validity
    /// and a private key file any local user can read.
    pub fn warnings(&self, now: i64) -> Vec<String> {
        let mut w: Vec<String> = self.validity_warning(now).into_iter().collect();
        if self.key_world_readable {
            w.push("the TLS private key file is readable by every local user: chmod o-r it".to_string());
        }
        w
    }

    /// A warning when the certificate is expired, not yet valid or expires within 14 days at `now`
    /// (Unix seconds): clients would reject it, or soon will.
    pub fn validity_warning(&self, now: i64) -> Option<String> {
        if now > self.not_after {
            Some(format!(
                "the TLS certificate expired at {}: clients will reject it; renew it",
                rfc3339(self.not_after)
            ))
        } else if now < self.not_before {
            Some(format!(
                "the TLS certificate is not valid before {}: clients will reject it until then (is the clock right?)",
                rfc3339(self.not_before)
            ))
        } else if self.not_after - now < EXPIRY_WARNING_SECS {
            Some(format!(
                "the TLS certificate expires at {} (in {} h): renew it, then reload (SIGHUP)",
                rfc3339(self.not_after),
                (self.not_after - now) / 3600
            ))
        } else {
            None
        }
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = if self.names.is_empty() { "no DNS names".to_string() } else { self.names.join(", ") };
        write!(
            f,
            "{names}; valid {} to {}; chain of {}",
            rfc3339(self.not_before),
            rfc3339(self.not_after),
            self.chain_len
        )
    }
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}

/// The served certificate: handed to every handshake, swapped whole on reload.
#[derive(Debug)]
struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

/// HTTPS for `serve`: the files, the crypto provider and the certificate being served.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    slot: Arc<CertSlot>,
}

impl Tls {
    /// Reads and checks the certificate chain and key (blocking file I/O).
    pub fn load(files: TlsFiles) -> Result<(Self, CertInfo), TlsError> {
        // ring, not rustls' default aws-lc-rs (which compiles C). rustls 0.23.48 deprecates it for
        // lacking post-quantum key exchange (X25519MLKEM768); X25519 and the NIST curves remain.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, info) = load_pair(&files, &provider)?;
        let slot = Arc::new(CertSlot(RwLock::new(Arc::new(key))));
        Ok((Self { files, provider, slot }, info))
    }

    /// The rustls configuration `serve` binds with: TLS 1.3 and 1.2, no client certificates, the
    /// certificate from the swappable slot. (actix adds the `http/1.1` ALPN protocol.)
    pub fn server_config(&self) -> Result<ServerConfig, rustls::Error> {
        Ok(ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.slot.clone()))
    }

    /// Reads both files again and, if they are good, serves the new certificate from the next
    /// handshake on. On error the certificate being served stays (blocking file I/O).
    pub fn reload(&self) -> Result<CertInfo, TlsError> {
        let (key, info) = load_pair(&self.files, &self.provider)?;
        *self.slot.0.write() = Arc::new(key);
        Ok(info)
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

fn pem_error(path: &Path, e: &pem::Error) -> TlsError {
    let reason = match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no matching \"-----END …-----\" line",
        pem::Error::IllegalSectionStart { .. } => "a \"-----BEGIN …-----\" line is malformed",
        pem::Error::Base64Decode(_) => "a block is not valid base64",
        pem::Error::SectionTooLarge => "a block is too large",
        _ => "it cannot be parsed",
    };
    TlsError::Pem { path: path.to_path_buf(), reason }
}

/// The certificate chain and key of `files`, checked to belong together.
fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<(CertifiedKey, CertInfo), TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| TlsError::UnsupportedKey { path: files.key.clone() })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // `Unknown`: the provider cannot tell (ring always can); rustls accepts it the same way.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone() });
        }
        Err(_) => return Err(TlsError::BadCertificate { path: files.cert.clone() }),
    }
    let mut info = cert_info(&certified.cert).ok_or_else(|| TlsError::BadCertificate { path: files.cert.clone() })?;
    info.key_world_readable = world_readable(&files.key);
    Ok((certified, info))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read("certificate", path)?;
    let chain =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(path, &e))?;
    if chain.is_empty() {
        let hint = if PrivateKeyDer::pem_slice_iter(&bytes).next().is_some() {
            ": it holds a private key; are the certificate and key files swapped?"
        } else if !contains(&bytes, b"-----BEGIN ") {
            ": it has no PEM block at all (a DER file? `openssl x509 -inform der -in FILE -out FILE.pem`)"
        } else {
            ""
        };
        return Err(TlsError::NoCertificate { path: path.to_path_buf(), hint });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("private key", path)?;
    let mut keys = PrivateKeyDer::pem_slice_iter(&bytes);
    let key = match keys.next() {
        Some(Ok(key)) => key,
        Some(Err(e)) => return Err(pem_error(path, &e)),
        None if contains(&bytes, b"ENCRYPTED PRIVATE KEY") || contains(&bytes, b"Proc-Type: 4,ENCRYPTED") => {
            return Err(TlsError::EncryptedKey { path: path.to_path_buf() });
        }
        None => {
            let hint = if CertificateDer::pem_slice_iter(&bytes).next().is_some() {
                ": it holds a certificate; are the certificate and key files swapped?"
            } else if !contains(&bytes, b"-----BEGIN ") {
                ": it has no PEM block at all"
            } else {
                ""
            };
            return Err(TlsError::NoKey { path: path.to_path_buf(), hint });
        }
    };
    match keys.next() {
        None => Ok(key),
        Some(Ok(_)) => Err(TlsError::SeveralKeys { path: path.to_path_buf() }),
        Some(Err(e)) => Err(pem_error(path, &e)),
    }
}

fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn cert_info(chain: &[CertificateDer<'static>]) -> Option<CertInfo> {
    let leaf = chain.first()?;
    let names = webpki::EndEntityCert::try_from(leaf).ok()?.valid_dns_names().map(str::to_string).collect();
    let (not_before, not_after) = validity(leaf).ok()?;
    Some(CertInfo { names, not_before, not_after, chain_len: chain.len(), key_world_readable: false })
}

/// `notBefore` and `notAfter` of an X.509 certificate (RFC 5280 §4.1), Unix seconds:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity SEQUENCE { notBefore Time, notAfter Time }, … }, … }`.
fn validity(cert: &[u8]) -> der::Result<(i64, i64)> {
    let mut r = SliceReader::new(cert)?;
    r.sequence(|c| {
        let window = c.sequence(|tbs| {
            let version = Tag::ContextSpecific { constructed: true, number: TagNumber(0) };
            if Tag::peek(tbs)? == version {
                tbs.tlv_bytes()?;
            }
            for _serial_signature_issuer in 0..3 {
                tbs.tlv_bytes()?;
            }
            let window = tbs.sequence(|v| der::Result::Ok((time(v)?, time(v)?)))?;
            skip_rest(tbs)?;
            der::Result::Ok(window)
        })?;
        skip_rest(c)?;
        der::Result::Ok(window)
    })
}

fn time<'a>(r: &mut impl Reader<'a>) -> der::Result<i64> {
    let since_epoch = if Tag::peek(r)? == Tag::UtcTime {
        UtcTime::decode(r)?.to_unix_duration()
    } else {
        GeneralizedTime::decode(r)?.to_unix_duration()
    };
    Ok(i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX))
}

fn skip_rest<'a>(r: &mut impl Reader<'a>) -> der::Result<()> {
    while !r.is_finished() {
        r.tlv_bytes()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Issued {
        cert_pem: String,
        key_pem: String,
    }

    fn issue(names: &[&str], not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.self_signed(&key).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    fn load_err(files: &TlsFiles) -> String {
        match Tls::load(files.clone()) {
            Ok(_) => panic!("loaded {files:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn loads_a_pair_and_reports_its_names_and_validity() {
        let dir = tempfile::tempdir().unwrap();
        let a = issue(&["audit.example.com", "localhost"], (2020, 1, 2), (2040, 3, 4));
        let f = files(dir.path(), &a.cert_pem, &a.key_pem);
        let (tls, info) = Tls::load(f).unwrap();
        assert_eq!(info.names, ["audit.example.com", "localhost"]);
        assert_eq!(rfc3339(info.not_before), "2020-01-02T00:00:00Z");
        assert_eq!(rfc3339(info.not_after), "2040-03-04T00:00:00Z");
        assert_eq!(info.chain_len, 1);
        assert!(info.to_string().starts_with("audit.example.com, localhost; valid 2020-01-02T00:00:00Z"), "{info}");
        assert!(tls.server_config().is_ok());
    }

    #[test]
    fn validity_warnings() {
        let (not_before, not_after) = (1_000_000, 1_000_000 + 100 * 86_400);
        let info = CertInfo { names: vec![], not_before, not_after, chain_len: 1, key_world_readable: false };
        assert_eq!(info.validity_warning(not_before), None);
        assert_eq!(info.validity_warning(not_after - 15 * 86_400), None);
        let w = info.validity_warning(not_after + 1).unwrap();
        assert!(w.contains("expired at 1970-04-22T13:46:40Z"), "{w}");
        let w = info.validity_warning(not_before - 1).unwrap();
        assert!(w.contains("not valid before 1970-01-12T13:46:40Z"), "{w}");
        let w = info.validity_warning(not_after - 3 * 86_400).unwrap();
        assert!(w.contains("expires at") && w.contains("(in 72 h)"), "{w}");

        // Read from a real (expired) certificate with GeneralizedTime after 2049 as well.
        let dir = tempfile::tempdir().unwrap();
        let old = issue(&["old.example"], (2001, 1, 1), (2002, 1, 1));
        let (_, info) = Tls::load(files(dir.path(), &old.cert_pem, &old.key_pem)).unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(info.validity_warning(now).unwrap().contains("expired at 2002-01-01T00:00:00Z"));
        let far = issue(&["far.example"], (2049, 6, 1), (2077, 1, 1));
        let (_, info) = Tls::load(files(dir.path(), &far.cert_pem, &far.key_pem)).unwrap();
        assert_eq!(
            (rfc3339(info.not_before), rfc3339(info.not_after)),
            ("2049-06-01T00:00:00Z".into(), "2077-01-01T00:00:00Z".into())
        );
    }

    #[test]
    fn warns_of_a_key_file_every_user_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = issue(&["a.example"], (2020, 1, 1), (2040, 1, 1));
        let f = files(dir.path(), &a.cert_pem, &a.key_pem);
        let now = chrono::Utc::now().timestamp();
        std::fs::set_permissions(&f.key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (tls, info) = Tls::load(f.clone()).unwrap();
        assert!(!info.key_world_readable && info.warnings(now).is_empty(), "{:?}", info.warnings(now));
        std::fs::set_permissions(&f.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let info = tls.reload().unwrap();
        assert_eq!(info.warnings(now), ["the TLS private key file is readable by every local user: chmod o-r it"]);
    }

    #[test]
    fn rsa_pkcs1_and_ec_sec1_and_ed25519_keys() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["k.example".to_string()]).unwrap().self_signed(&key).unwrap();
            let pkcs8 = key.serialize_pem();
            assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
            Tls::load(files(dir.path(), &cert.pem(), &pkcs8)).unwrap();
        }
        // SEC1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE KEY") as OpenSSL writes them.
        for (cert, key) in [(EC_CERT, EC_SEC1_KEY), (RSA_CERT, RSA_PKCS1_KEY)] {
            let (_, info) = Tls::load(files(dir.path(), cert, key)).unwrap();
            assert_eq!(info.names, ["legacy.example"]);
        }
    }

    #[test]
    fn clear_errors_without_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let a = issue(&["a.example"], (2020, 1, 1), (2040, 1, 1));
        let b = issue(&["b.example"], (2020, 1, 1), (2040, 1, 1));
        let secret_line = a.key_pem.lines().nth(1).unwrap().to_string();

        let missing = TlsFiles { cert: dir.path().join("nope.pem"), key: dir.path().join("key.pem") };
        let e = load_err(&missing);
        assert!(e.starts_with("cannot read the TLS certificate file ") && e.contains("nope.pem"), "{e}");
        let f = files(dir.path(), &a.cert_pem, &a.key_pem);
        let e = load_err(&TlsFiles { key: dir.path().join("gone.pem"), ..f.clone() });
        assert!(e.starts_with("cannot read the TLS private key file ") && e.contains("gone.pem"), "{e}");

        let mut errors = vec![];
        for (cert, key, want) in [
            (&a.cert_pem, &b.key_pem, "does not belong to the first certificate"),
            (&a.key_pem, &a.cert_pem, "are the certificate and key files swapped?"),
            (&a.cert_pem, &a.cert_pem, "no private key in"),
            (&"\u{30}\u{82}binary".to_string(), &a.key_pem, "no PEM block at all"),
            (&a.cert_pem, &format!("{}{}", a.key_pem, b.key_pem), "more than one private key"),
            (
                &a.cert_pem,
                &a.key_pem.replace("-----END PRIVATE KEY-----", ""),
                "not valid PEM: a block has no matching",
            ),
            (&a.cert_pem, &ENCRYPTED_KEY.to_string(), "is encrypted"),
            (
                &a.cert_pem,
                &"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_string(),
                "not a supported",
            ),
            (
                &"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string(),
                &a.key_pem,
                "not a valid X.509",
            ),
        ] {
            let e = load_err(&files(dir.path(), cert, key));
            assert!(e.contains(want), "want {want:?}, got {e}");
            errors.push(e);
        }
        for e in errors {
            assert!(!e.contains(&secret_line) && !e.contains("MII"), "key material in {e}");
        }
    }

    #[test]
    fn reload_swaps_the_certificate_and_a_failed_reload_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = issue(&["a.example"], (2020, 1, 1), (2040, 1, 1));
        let b = issue(&["b.example"], (2020, 1, 1), (2040, 1, 1));
        let f = files(dir.path(), &a.cert_pem, &a.key_pem);
        let (tls, _) = Tls::load(f.clone()).unwrap();
        let served = |tls: &Tls| tls.slot.0.read().cert[0].clone();
        let first = served(&tls);
        files(dir.path(), &b.cert_pem, &b.key_pem);
        assert_eq!(tls.reload().unwrap().names, ["b.example"]);
        let second = served(&tls);
        assert_ne!(first, second);
        files(dir.path(), &a.cert_pem, &b.key_pem);
        assert!(matches!(tls.reload(), Err(TlsError::KeyMismatch { .. })));
        assert_eq!(served(&tls), second, "a failed reload keeps the certificate being served");
    }

    // Made with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=legacy.example
    // -addext subjectAltName=DNS:legacy.example -days 36500 -nodes` and `openssl ec`/`openssl rsa
    // -traditional` (SEC1, PKCS#1); test keys only.
    const EC_CERT: &str = include_str!("../tests/tls/ec-cert.pem");
    const EC_SEC1_KEY: &str = include_str!("../tests/tls/ec-sec1-key.pem");
    const RSA_CERT: &str = include_str!("../tests/tls/rsa-cert.pem");
    const RSA_PKCS1_KEY: &str = include_str!("../tests/tls/rsa-pkcs1-key.pem");
    const ENCRYPTED_KEY: &str = include_str!("../tests/tls/encrypted-key.pem");
}
