//! The archive's layout (documented in the README for other readers):
//!
//! ```text
//! PREFIX/public-key.pem                                          the trail's Ed25519 public key (SPKI PEM)
//! PREFIX/configs.json                                            the audit configs (`replication::configs`)
//! PREFIX/events/YYYY/MM/DD/HH/<first>-<last>.jsonl.gz            the events of leaves first..=last
//! PREFIX/events/YYYY/MM/DD/HH/<first>-<last>.proof.json          their buffers, signed root, consistency proof
//! ```
//!
//! `YYYY/MM/DD/HH` is the UTC hour of the events' receive times (an object never spans two hours:
//! the writer never lets a buffer span two, and objects hold whole buffers); `first`/`last` are
//! cold-tree leaf (= buffer) indexes, zero-padded to at least 12 digits. One line per event in the
//! format of `trailkeep export --format jsonl.gz` (`export::write_line`), naming its audit config
//! (`config_id`) unless it is the default one. The bytes of both objects are a function of the
//! log alone, so an upload repeated after a crash writes the same key with the same bytes.

use object_store::path::Path as ObjPath;
use serde::{Deserialize, Serialize};

use crate::ledger::SignedRoot;

pub const EVENTS_DIR: &str = "events";
pub const PUBLIC_KEY_FILE: &str = "public-key.pem";
/// The audit configs the events belong to (`replication::configs`).
pub const CONFIGS_FILE: &str = "configs.json";
/// Digits of the zero-padded leaf indexes in object names (more when an index needs them).
pub const INDEX_DIGITS: usize = 12;
pub const EVENTS_SUFFIX: &str = ".jsonl.gz";
pub const PROOF_SUFFIX: &str = ".proof.json";
/// The proof file's `format`.
pub const FORMAT: u32 = 1;

/// `PREFIX/rest` as an object path.
pub fn key(prefix: &ObjPath, rest: &str) -> ObjPath {
    if prefix.as_ref().is_empty() { ObjPath::from(rest) } else { ObjPath::from(format!("{prefix}/{rest}")) }
}

/// `YYYY/MM/DD/HH` of a receive time (µs).
pub fn hour_dir(received_at_us: i64) -> String {
    let t = crate::time::format_micros(received_at_us);
    format!("{}/{}/{}/{}", &t[0..4], &t[5..7], &t[8..10], &t[11..13])
}

/// The object name (relative to the prefix) of leaves `first..=last` in `hour` (`YYYY/MM/DD/HH`).
pub fn object_name(hour: &str, first: u64, last: u64, suffix: &str) -> String {
    format!("{EVENTS_DIR}/{hour}/{first:0w$}-{last:0w$}{suffix}", w = INDEX_DIGITS)
}

/// A parsed object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectName {
    pub first: u64,
    pub last: u64,
    /// `YYYY/MM/DD/HH`.
    pub hour: String,
    pub proof: bool,
}

impl ObjectName {
    /// The name relative to the prefix.
    pub fn name(&self) -> String {
        object_name(&self.hour, self.first, self.last, if self.proof { PROOF_SUFFIX } else { EVENTS_SUFFIX })
    }
}

/// Parses `events/YYYY/MM/DD/HH/<first>-<last>.(jsonl.gz|proof.json)` (relative to the prefix).
pub fn parse_name(rel: &str) -> Option<ObjectName> {
    let rest = rel.strip_prefix(EVENTS_DIR)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [y, mo, d, h, file] = parts.as_slice() else { return None };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(mo, 2) && digits(d, 2) && digits(h, 2)) {
        return None;
    }
    let (stem, proof) = if let Some(s) = file.strip_suffix(EVENTS_SUFFIX) {
        (s, false)
    } else {
        (file.strip_suffix(PROOF_SUFFIX)?, true)
    };
    let (a, b) = stem.split_once('-')?;
    let index = |s: &str| (s.len() >= INDEX_DIGITS && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?;
    let (first, last) = (index(a)?, index(b)?);
    let hour = format!("{y}/{mo}/{d}/{h}");
    // Only the canonical spelling: a name is a function of (hour, first, last).
    let parsed = ObjectName { first, last, hour, proof };
    (parsed.name() == rel && first <= last).then_some(parsed)
}

/// One buffer of an object, as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofBuffer {
    pub leaf_index: u64,
    pub first_seq: i64,
    pub count: u64,
    /// Merkle root (hex) of the buffer's event hashes, in order.
    pub buffer_root: String,
    /// Root (hex) of the cold tree of size `leaf_index + 1`.
    pub root_hash: String,
    pub published_at: String,
    /// Ed25519 signature (base64) of that root; empty when the root is not the last of its write
    /// transaction (a later root with the same `published_at` is signed).
    pub signature: String,
}

/// A consistency proof between two signed roots (Pangea's encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    pub from_size: u64,
    pub from_root: String,
    pub proof: Vec<String>,
}

/// `<first>-<last>.proof.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub format: u32,
    pub first_leaf: u64,
    pub last_leaf: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: u64,
    pub buffers: Vec<ProofBuffer>,
    /// The signed root of size `last_leaf + 1`: the tree right after the object's last event.
    pub signed_root: SignedRoot,
    /// From the previous object's signed root (size `first_leaf`) to `signed_root`; absent for the
    /// first object.
    pub consistency: Option<Consistency>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_canonical_ones_parse() {
        let n = object_name("2026/12/06/13", 10, 15, EVENTS_SUFFIX);
        assert_eq!(n, "events/2026/12/06/13/000000000010-000000000015.jsonl.gz");
        let p = parse_name(&n).unwrap();
        assert_eq!((p.first, p.last, p.proof, p.hour.as_str()), (10, 15, false, "2026/12/06/13"));
        let big = object_name("2026/12/06/13", 1_234_567_890_123, 1_234_567_890_124, PROOF_SUFFIX);
        assert!(parse_name(&big).unwrap().proof);
        for bad in [
            "events/2026/12/06/13/10-15.jsonl.gz",
            "events/2026/12/6/13/000000000010-000000000015.jsonl.gz",
            "events/2026/12/06/13/000000000015-000000000010.jsonl.gz",
            "events/2026/12/06/13/000000000010-000000000015.json",
            "other/2026/12/06/13/000000000010-000000000015.jsonl.gz",
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
        assert_eq!(hour_dir(1_765_026_000_000_000), "2025/12/06/13");
        assert_eq!(key(&ObjPath::from("a/b"), "events/x").as_ref(), "a/b/events/x");
        assert_eq!(key(&ObjPath::default(), "events/x").as_ref(), "events/x");
    }
}
