//! What a key file holds, without I/O. Three PEM (RFC 7468) labels:
//!
//! * `PRIVATE KEY`: an Ed25519 key as PKCS#8 (RFC 8410, version 1: OpenSSL 3.0 cannot read the
//!   version 2 form that carries the public key), readable by `openssl pkey` and every PKCS#8
//!   library;
//! * `TRAILKEEP HMAC KEY`: the 32 bytes of an HMAC-SHA256 key;
//! * `TRAILKEEP ENCRYPTED KEY`: either of the above sealed with a passphrase. Its bytes are a
//!   header followed by the XChaCha20-Poly1305 ciphertext and tag:
//!
//! ```text
//!  0  "TKE1"                       magic and format version
//!  4  kind                         1 = Ed25519 (plaintext: PKCS#8 DER), 2 = HMAC-SHA256 (32 bytes)
//!  5  m_cost, t_cost, p_cost       argon2id parameters, u32 big-endian each (KiB, passes, lanes)
//! 17  salt[16]                     argon2id salt
//! 33  nonce[24]                    XChaCha20-Poly1305 nonce
//! 57  public[32]                   the Ed25519 public key (zeros for HMAC keys), readable without the passphrase
//! 89  ciphertext || tag[16]
//! ```
//!
//! The AEAD key is argon2id(passphrase, salt) with the stored parameters; the associated data is
//! the header and the file's name and version (`root-signing.1`), so a sealed key cannot be
//! passed off under another name or version, nor its public key swapped.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes, SecretDocument};
use ed25519_dalek::{SigningKey, VerifyingKey};
use pem_rfc7468::{self as pem, LineEnding};
use zeroize::{Zeroize, Zeroizing};

pub const LABEL_ED25519: &str = "PRIVATE KEY";
pub const LABEL_HMAC: &str = "TRAILKEEP HMAC KEY";
pub const LABEL_SEALED: &str = "TRAILKEEP ENCRYPTED KEY";

const MAGIC: &[u8; 4] = b"TKE1";
const HEADER_LEN: usize = 89;
const TAG_LEN: usize = 16;

/// argon2id parameters for new sealed files: 64 MiB, 3 passes, 1 lane (RFC 9106's second
/// recommended setting with one lane; about 0.2 s on one core). Stored in each file, so they can
/// change without breaking old files.
pub const KDF_M_COST: u32 = 64 * 1024;
pub const KDF_T_COST: u32 = 3;
pub const KDF_P_COST: u32 = 1;
/// Upper bounds accepted when reading a file (a crafted file must not ask for 4 TiB of memory).
const MAX_M_COST: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ed25519,
    Hmac,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ed25519 => "ed25519",
            Kind::Hmac => "hmac-sha256",
        }
    }
    fn code(self) -> u8 {
        match self {
            Kind::Ed25519 => 1,
            Kind::Hmac => 2,
        }
    }
}

/// A key in memory; wiped when dropped.
pub enum Secret {
    Ed25519(SigningKey),
    Hmac(Zeroizing<[u8; 32]>),
}

impl Secret {
    pub fn kind(&self) -> Kind {
        match self {
            Secret::Ed25519(_) => Kind::Ed25519,
            Secret::Hmac(_) => Kind::Hmac,
        }
    }
    pub fn public(&self) -> Option<VerifyingKey> {
        match self {
            Secret::Ed25519(k) => Some(k.verifying_key()),
            Secret::Hmac(_) => None,
        }
    }
    /// The plaintext a sealed file encrypts.
    fn plaintext(&self) -> Result<Zeroizing<Vec<u8>>, FormatError> {
        match self {
            Secret::Ed25519(k) => Ok(Zeroizing::new(pkcs8_v1(k)?.as_bytes().to_vec())),
            Secret::Hmac(k) => Ok(Zeroizing::new(k.to_vec())),
        }
    }
    fn from_plaintext(kind: Kind, bytes: &[u8]) -> Result<Self, FormatError> {
        match kind {
            Kind::Ed25519 => SigningKey::from_pkcs8_der(bytes)
                .map(Secret::Ed25519)
                .map_err(|_| FormatError::Malformed("the sealed Ed25519 key is not PKCS#8")),
            Kind::Hmac => <[u8; 32]>::try_from(bytes)
                .map(|k| Secret::Hmac(Zeroizing::new(k)))
                .map_err(|_| FormatError::Malformed("the sealed HMAC key is not 32 bytes")),
        }
    }
}

/// PKCS#8 version 1 (no public key inside) of an Ed25519 key.
fn pkcs8_v1(k: &SigningKey) -> Result<SecretDocument, FormatError> {
    let mut pair = KeypairBytes { secret_key: k.to_bytes(), public_key: None };
    let der = pair.to_pkcs8_der().map_err(|_| FormatError::Malformed("cannot encode the key as PKCS#8"));
    pair.secret_key.zeroize();
    der
}

/// A sealed key as read from its file: what is readable without the passphrase, and the rest.
pub struct Sealed {
    pub kind: Kind,
    pub public: Option<VerifyingKey>,
    header: Vec<u8>,
    body: Vec<u8>,
}

/// A parsed key file.
pub enum KeyFile {
    Plain(Secret),
    Sealed(Sealed),
}

impl KeyFile {
    pub fn kind(&self) -> Kind {
        match self {
            KeyFile::Plain(s) => s.kind(),
            KeyFile::Sealed(s) => s.kind,
        }
    }
    pub fn public(&self) -> Option<VerifyingKey> {
        match self {
            KeyFile::Plain(s) => s.public(),
            KeyFile::Sealed(s) => s.public,
        }
    }
    pub fn is_sealed(&self) -> bool {
        matches!(self, KeyFile::Sealed(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Malformed(&'static str),
    /// The AEAD tag does not verify: a wrong passphrase, or the file was altered.
    #[error("wrong passphrase, or the file was altered")]
    WrongPassphrase,
}

/// The file text of a key, plain.
pub fn encode_plain(secret: &Secret) -> Result<Zeroizing<String>, FormatError> {
    match secret {
        Secret::Ed25519(k) => pkcs8_v1(k)?
            .to_pem(LABEL_ED25519, LineEnding::LF)
            .map_err(|_| FormatError::Malformed("cannot encode the key as PKCS#8")),
        Secret::Hmac(k) => pem::encode_string(LABEL_HMAC, LineEnding::LF, k.as_slice())
            .map(Zeroizing::new)
            .map_err(|_| FormatError::Malformed("cannot encode the key")),
    }
}

fn derive(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> Result<Zeroizing<[u8; 32]>, FormatError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|_| FormatError::Malformed("bad key-derivation parameters"))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut_slice())
        .map_err(|_| FormatError::Malformed("bad key-derivation parameters"))?;
    Ok(out)
}

fn aad(header: &[u8], id: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + 1 + id.len());
    a.extend_from_slice(header);
    a.push(0);
    a.extend_from_slice(id.as_bytes());
    a
}

/// The file text of a key sealed with `passphrase`. `id` is the file's `name.version`.
pub fn encode_sealed(secret: &Secret, passphrase: &[u8], id: &str) -> Result<String, FormatError> {
    encode_sealed_with(secret, passphrase, id, (KDF_M_COST, KDF_T_COST, KDF_P_COST))
}

fn encode_sealed_with(
    secret: &Secret,
    passphrase: &[u8],
    id: &str,
    (m, t, p): (u32, u32, u32),
) -> Result<String, FormatError> {
    let salt: [u8; 16] = crate::ledger::random_bytes();
    let nonce: [u8; 24] = crate::ledger::random_bytes();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(secret.kind().code());
    for v in [m, t, p] {
        header.extend_from_slice(&v.to_be_bytes());
    }
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    header.extend_from_slice(&secret.public().map(|k| k.to_bytes()).unwrap_or([0; 32]));
    debug_assert_eq!(header.len(), HEADER_LEN);
    let key = derive(passphrase, &salt, m, t, p)?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let plaintext = secret.plaintext()?;
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: &plaintext, aad: &aad(&header, id) })
        .map_err(|_| FormatError::Malformed("encryption failed"))?;
    let mut bytes = header;
    bytes.extend_from_slice(&ct);
    pem::encode_string(LABEL_SEALED, LineEnding::LF, &bytes)
        .map_err(|_| FormatError::Malformed("cannot encode the key"))
}

/// Parses a key file's text. Sealed files are not decrypted here (see [`open_sealed`]).
pub fn parse(text: &str) -> Result<KeyFile, FormatError> {
    let label = pem::decode_label(text.as_bytes()).map_err(|_| FormatError::Malformed("not a PEM file"))?;
    match label {
        LABEL_ED25519 => SigningKey::from_pkcs8_pem(text)
            .map(|k| KeyFile::Plain(Secret::Ed25519(k)))
            .map_err(|_| FormatError::Malformed("not a PKCS#8 Ed25519 private key")),
        LABEL_HMAC => {
            let (_, bytes) = pem::decode_vec(text.as_bytes()).map_err(|_| FormatError::Malformed("not a PEM file"))?;
            let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(bytes);
            Secret::from_plaintext(Kind::Hmac, &bytes).map(KeyFile::Plain)
        }
        LABEL_SEALED => {
            let (_, bytes) = pem::decode_vec(text.as_bytes()).map_err(|_| FormatError::Malformed("not a PEM file"))?;
            parse_sealed(bytes).map(KeyFile::Sealed)
        }
        _ => Err(FormatError::Malformed("not a trailkeep key file (unknown PEM label)")),
    }
}

fn parse_sealed(mut bytes: Vec<u8>) -> Result<Sealed, FormatError> {
    if bytes.len() < HEADER_LEN + TAG_LEN || &bytes[..4] != MAGIC {
        return Err(FormatError::Malformed("not a sealed key of a known format"));
    }
    let kind = match bytes[4] {
        1 => Kind::Ed25519,
        2 => Kind::Hmac,
        _ => return Err(FormatError::Malformed("unknown key kind")),
    };
    let (m, t, p) = kdf_params(&bytes);
    if !(8..=MAX_M_COST).contains(&m) || !(1..=MAX_T_COST).contains(&t) || !(1..=MAX_P_COST).contains(&p) {
        return Err(FormatError::Malformed("key-derivation parameters out of range"));
    }
    let public = match kind {
        Kind::Ed25519 => Some(
            VerifyingKey::from_bytes(bytes[57..89].try_into().expect("32 bytes"))
                .map_err(|_| FormatError::Malformed("bad public key"))?,
        ),
        Kind::Hmac => None,
    };
    let body = bytes.split_off(HEADER_LEN);
    Ok(Sealed { kind, public, header: bytes, body })
}

fn kdf_params(header: &[u8]) -> (u32, u32, u32) {
    let u = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    (u(5), u(9), u(13))
}

/// Decrypts a sealed key; `id` is the file's `name.version`.
pub fn open_sealed(sealed: &Sealed, passphrase: &[u8], id: &str) -> Result<Secret, FormatError> {
    let h = &sealed.header;
    let (m, t, p) = kdf_params(h);
    let key = derive(passphrase, &h[17..33], m, t, p)?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let nonce: [u8; 24] = h[33..57].try_into().expect("24 bytes");
    let plaintext = cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: &sealed.body, aad: &aad(h, id) })
        .map(Zeroizing::new)
        .map_err(|_| FormatError::WrongPassphrase)?;
    let secret = Secret::from_plaintext(sealed.kind, &plaintext)?;
    if secret.public() != sealed.public {
        return Err(FormatError::Malformed("the sealed key does not match its public key"));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: (u32, u32, u32) = (64, 1, 1);

    fn ed(seed: u8) -> Secret {
        Secret::Ed25519(SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn plain_ed25519_is_pkcs8_pem() {
        let text = encode_plain(&ed(7)).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", *text);
        // Version 1, 48 bytes of DER: the RFC 8410 shape with the seed as the only key material.
        let (_, der) = pem::decode_vec(text.as_bytes()).unwrap();
        assert_eq!(der.len(), 48);
        assert_eq!(&der[..16], &hex::decode("302e020100300506032b657004220420").unwrap()[..]);
        let KeyFile::Plain(Secret::Ed25519(k)) = parse(&text).unwrap() else { panic!("not an Ed25519 key") };
        assert_eq!(k.to_bytes(), [7; 32]);
        // RFC 8410 test vector: the PKCS#8 v1 encoding of a known seed parses to that seed.
        let rfc = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let KeyFile::Plain(Secret::Ed25519(k)) = parse(rfc).unwrap() else { panic!("not an Ed25519 key") };
        assert_eq!(hex::encode(k.to_bytes()), "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842");
    }

    #[test]
    fn plain_hmac_round_trip() {
        let text = encode_plain(&Secret::Hmac(Zeroizing::new([9; 32]))).unwrap();
        assert!(text.starts_with("-----BEGIN TRAILKEEP HMAC KEY-----\n"), "{}", *text);
        let KeyFile::Plain(Secret::Hmac(k)) = parse(&text).unwrap() else { panic!("not an HMAC key") };
        assert_eq!(*k, [9; 32]);
        let short = pem::encode_string(LABEL_HMAC, LineEnding::LF, &[1; 31]).unwrap();
        assert!(parse(&short).is_err());
    }

    #[test]
    fn sealed_round_trip_and_wrong_passphrase() {
        for secret in [ed(3), Secret::Hmac(Zeroizing::new([5; 32]))] {
            let text = encode_sealed_with(&secret, b"correct horse", "k.1", FAST).unwrap();
            assert!(text.starts_with("-----BEGIN TRAILKEEP ENCRYPTED KEY-----\n"));
            let KeyFile::Sealed(s) = parse(&text).unwrap() else { panic!("not sealed") };
            assert_eq!(s.kind, secret.kind());
            assert_eq!(s.public, secret.public(), "the public key is readable without the passphrase");
            let opened = open_sealed(&s, b"correct horse", "k.1").unwrap();
            assert_eq!(encode_plain(&opened).unwrap(), encode_plain(&secret).unwrap());
            assert_eq!(open_sealed(&s, b"wrong", "k.1").err(), Some(FormatError::WrongPassphrase));
            assert_eq!(open_sealed(&s, b"correct horse", "k.2").err(), Some(FormatError::WrongPassphrase));
        }
    }

    #[test]
    fn sealed_files_resist_tampering() {
        let text = encode_sealed_with(&ed(3), b"pw", "k.1", FAST).unwrap();
        let (_, bytes) = pem::decode_vec(text.as_bytes()).unwrap();
        // Flip every byte in turn: the file no longer parses, or does not open.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let t = pem::encode_string(LABEL_SEALED, LineEnding::LF, &b).unwrap();
            let opened = match parse(&t) {
                Ok(KeyFile::Sealed(s)) => open_sealed(&s, b"pw", "k.1").is_ok(),
                _ => false,
            };
            assert!(!opened, "byte {i} flipped and the key still opened");
        }
        // Absurd parameters are refused before any work.
        let mut b = bytes.clone();
        b[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        let t = pem::encode_string(LABEL_SEALED, LineEnding::LF, &b).unwrap();
        assert!(matches!(parse(&t), Err(FormatError::Malformed(_))));
        assert!(parse("hello").is_err());
        assert!(parse(&pem::encode_string("CERTIFICATE", LineEnding::LF, &[1, 2]).unwrap()).is_err());
    }
}
