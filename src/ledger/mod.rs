//! The tamper-evident log: Merkle math (`merkle`), the cold tree in bounded memory (`cold`), the
//! signed roots, and the checkpoint file kept outside the database. Merkle math does no I/O;
//! signing and the checkpoint live here.

pub mod cold;
pub mod merkle;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use cold::{BlockCache, ColdTree};
use merkle::Hash;

pub const CHECKPOINT_FILE: &str = "checkpoint.latest";

/// Roots per stored row of root-hash prefixes (`root_prefixes`, migration 0012).
pub const ROOT_CHUNK: u64 = 4096;

/// Complete blocks of the cold tree kept for proofs (64 × 16 KiB with blocks of 256 leaves).
const BLOCK_CACHE: usize = 64;

/// The shared view of the log: the cold tree of sealed buffer roots (bounded memory, see `cold`),
/// a cache of its recently used blocks, the prefixes of the newest root hashes, the tree name and
/// the server's signing key. Only the writer pushes leaves.
pub struct Ledger {
    pub tree: RwLock<ColdTree>,
    pub blocks: BlockCache,
    recent_roots: RwLock<RecentRoots>,
    pub tree_name: String,
    /// None when the key store does not hold the trail's key (a restore without it): the trail is
    /// served read-only, and `read_only` says why and how to install the key.
    signing: Option<SigningKey>,
    verifying: VerifyingKey,
    read_only: Option<String>,
    /// The newest receive time handed out (µs); receive times only grow, whatever the wall clock does.
    last_received: std::sync::atomic::AtomicI64,
}

/// The first four bytes of the root hashes not yet in a committed `root_prefixes` row, for
/// `prev_root` lookups (`store::tree::root_size_of`): at most a chunk and a transaction's roots.
#[derive(Debug, Default)]
struct RecentRoots {
    /// The tree size of `prefixes[0]`'s root: a multiple of `ROOT_CHUNK`, plus one.
    first_size: u64,
    prefixes: Vec<u32>,
    /// Leading chunks of `prefixes` handed to the writer to store (`push_root`), dropped once
    /// committed (`roots_committed`).
    handed: usize,
}

pub fn root_prefix(root: &Hash) -> u32 {
    u32::from_be_bytes([root[0], root[1], root[2], root[3]])
}

/// A signed root as stored and served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedRoot {
    pub tree_name: String,
    pub size: u64,
    pub root_hash: String,
    pub published_at: String,
    pub signature: String,
}

impl SignedRoot {
    /// The exact bytes that are signed: canonical JSON of the four root fields.
    pub fn message(&self) -> String {
        signed_message(&self.tree_name, self.size, &self.root_hash, &self.published_at)
    }
}

pub fn signed_message(tree_name: &str, size: u64, root_hash: &str, published_at: &str) -> String {
    let v = serde_json::json!({
        "published_at": published_at, "root_hash": root_hash, "size": size, "tree_name": tree_name,
    });
    crate::event::canonical::to_canonical_string(&v)
}

impl Ledger {
    pub fn new(tree: ColdTree, tree_name: String, signing_seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&signing_seed);
        let verifying = signing.verifying_key();
        Self {
            tree: RwLock::new(tree),
            blocks: BlockCache::new(BLOCK_CACHE),
            recent_roots: RwLock::new(RecentRoots { first_size: 1, ..Default::default() }),
            tree_name,
            signing: Some(signing),
            verifying,
            read_only: None,
            last_received: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// A ledger that can check but not sign (the key store lacks the trail's root-signing key):
    /// the writer refuses appends and purges with `reason`, which says how to install the key.
    pub fn verify_only(tree: ColdTree, tree_name: String, key: VerifyingKey, reason: String) -> Self {
        Self {
            tree: RwLock::new(tree),
            blocks: BlockCache::new(BLOCK_CACHE),
            recent_roots: RwLock::new(RecentRoots { first_size: 1, ..Default::default() }),
            tree_name,
            signing: None,
            verifying: key,
            read_only: Some(reason),
            last_received: std::sync::atomic::AtomicI64::new(0),
        }
    }

    pub fn can_sign(&self) -> bool {
        self.signing.is_some()
    }

    /// Why the trail is read-only (`verify_only`), for the clients whose writes are refused.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// Replaces the recent roots' prefixes (the writer, after loading the tree): those of the
    /// roots of sizes `first_size …`, where `first_size - 1` is a multiple of `ROOT_CHUNK` and the
    /// roots before it are in stored chunks.
    pub fn set_recent_roots(&self, first_size: u64, prefixes: Vec<u32>) {
        *self.recent_roots.write() = RecentRoots { first_size, prefixes, handed: 0 };
    }

    /// Records the root of the next tree size (the writer, as it pushes a leaf). Returns a chunk
    /// that this root completes, `(chunk index, its prefixes)`, for the writer to store in the
    /// same transaction; the chunk stays in memory until `roots_committed`.
    pub fn push_root(&self, root: &Hash) -> Option<(u64, Vec<u32>)> {
        let mut r = self.recent_roots.write();
        r.prefixes.push(root_prefix(root));
        let chunk = ROOT_CHUNK as usize;
        if r.prefixes.len() < (r.handed + 1) * chunk {
            return None;
        }
        let start = r.handed * chunk;
        r.handed += 1;
        let index = (r.first_size - 1) / ROOT_CHUNK + r.handed as u64 - 1;
        Some((index, r.prefixes[start..start + chunk].to_vec()))
    }

    /// After the COMMIT that stored the chunks handed out by `push_root`: drops them from memory.
    pub fn roots_committed(&self) {
        let mut r = self.recent_roots.write();
        if r.handed > 0 {
            let n = r.handed * ROOT_CHUNK as usize;
            r.prefixes.drain(..n);
            r.first_size += n as u64;
            r.handed = 0;
        }
    }

    /// The tree sizes below `below` whose root hash starts with `prefix`, among the roots kept in
    /// memory, newest first; with the first size kept in memory (smaller sizes are in stored
    /// chunks).
    pub fn recent_root_candidates(&self, prefix: u32, below: u64) -> (u64, Vec<u64>) {
        let r = self.recent_roots.read();
        let end = below.saturating_sub(r.first_size).min(r.prefixes.len() as u64) as usize;
        let sizes = r.prefixes[..end]
            .iter()
            .enumerate()
            .rev()
            .filter(|&(_, &p)| p == prefix)
            .map(|(i, _)| r.first_size + i as u64)
            .collect();
        (r.first_size, sizes)
    }

    /// Prefixes kept in memory (for tests and the memory figures).
    pub fn recent_roots_len(&self) -> usize {
        self.recent_roots.read().prefixes.len()
    }

    /// The server's "now" for search windows (µs): the wall clock, but never earlier than just
    /// after the newest receive time, so a clock stepped backwards does not hide stored events.
    pub fn now_micros(&self) -> i64 {
        let newest = self.last_received.load(std::sync::atomic::Ordering::Relaxed);
        chrono::Utc::now().timestamp_micros().max(newest.saturating_add(1))
    }

    /// Called by the writer as it hands out receive times.
    pub fn note_received(&self, at: i64) {
        self.last_received.fetch_max(at, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.verifying
    }

    pub fn public_key_b64(&self) -> String {
        B64.encode(self.public_key().as_bytes())
    }

    /// The signature of a root; all zeros (never valid) without the signing key, which callers
    /// check with `can_sign` first.
    pub fn sign(&self, size: u64, root_hash: &Hash, published_at: &str) -> [u8; 64] {
        let msg = signed_message(&self.tree_name, size, &hex::encode(root_hash), published_at);
        self.signing.as_ref().map_or([0; 64], |k| k.sign(msg.as_bytes()).to_bytes())
    }

    pub fn size(&self) -> u64 {
        self.tree.read().len() as u64
    }
}

pub fn verify_root_signature(key: &VerifyingKey, root: &SignedRoot) -> bool {
    let Ok(sig) = B64.decode(&root.signature) else { return false };
    let Ok(sig) = Signature::from_slice(&sig) else { return false };
    key.verify(root.message().as_bytes(), &sig).is_ok()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

/// The checkpoint file outside the database: the newest signed root, synced and put in place
/// (see `write_checkpoint`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    #[serde(flatten)]
    pub root: SignedRoot,
    pub public_key: String,
}

pub fn checkpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CHECKPOINT_FILE)
}

/// The next checkpoint file, allocated in advance (see `prepare_checkpoint_spare`).
pub const CHECKPOINT_SPARE: &str = "checkpoint.latest.tmp";
/// Bytes of a checkpoint file: its JSON (about 450 bytes) padded with whitespace, so that a spare
/// of this size is written in place without allocating disk space.
pub const CHECKPOINT_SLOT: usize = 4096;

pub fn checkpoint_spare_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CHECKPOINT_SPARE)
}

/// Makes sure the spare checkpoint file exists with `CHECKPOINT_SLOT` bytes allocated. The writer
/// calls this before each transaction, so a full disk surfaces here, before anything is committed,
/// and not between COMMIT and the checkpoint write, where the group would be in doubt.
pub fn prepare_checkpoint_spare(data_dir: &Path) -> std::io::Result<()> {
    let path = checkpoint_spare_path(data_dir);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && m.len() >= CHECKPOINT_SLOT as u64 => return Ok(()),
        Ok(m) if !m.is_file() => {
            return Err(std::io::Error::other(format!("{} is not a regular file", path.display())));
        }
        _ => {}
    }
    let mut f = crate::datadir::open_private(&path, false)?;
    // Real bytes, not a sparse file or an unwritten extent: writing over them later needs no space.
    f.write_all(&[b' '; CHECKPOINT_SLOT])
}

/// Writes the checkpoint file: the JSON into the pre-allocated spare (in place), fdatasync, the
/// spare exchanged with `checkpoint.latest` (`renameat2(RENAME_EXCHANGE)`; a rename over it where
/// the file system cannot exchange, or the first time), fsync of the directory. A crash at any
/// point leaves `checkpoint.latest` whole, old or new. The exchanged-out file is the next spare,
/// already allocated: the next write overwrites its blocks, changing neither its size nor its
/// allocation, and no file is created per write.
pub fn write_checkpoint(data_dir: &Path, cp: &Checkpoint) -> anyhow::Result<()> {
    let path = checkpoint_path(data_dir);
    let spare = checkpoint_spare_path(data_dir);
    let mut body = serde_json::to_vec_pretty(cp)?;
    body.push(b'\n');
    if body.len() < CHECKPOINT_SLOT {
        // Whitespace after a JSON value is still the same JSON document.
        body.resize(CHECKPOINT_SLOT - 1, b' ');
        body.push(b'\n');
    }
    prepare_checkpoint_spare(data_dir).context("cannot create checkpoint file")?;
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&spare).context("cannot open checkpoint file")?;
        f.write_all(&body).context("cannot write checkpoint file")?;
        if f.metadata()?.len() > body.len() as u64 {
            f.set_len(body.len() as u64)?;
        }
        f.sync_data().context("cannot sync checkpoint file")?;
    }
    put_in_place(&spare, &path).context("cannot replace checkpoint file")?;
    crate::datadir::sync_dir(data_dir)?;
    Ok(())
}

/// Moves the written spare to `path`: exchanged with the regular file there, keeping it as the
/// next spare; renamed over it when there is none (the first checkpoint) or the exchange fails
/// (a file system that cannot exchange; a failed exchange changes nothing, so the rename is the
/// whole fallback and reports any error). Anything but a regular file at `path` (a directory
/// squatting on it) is left to the rename, which fails.
fn put_in_place(spare: &Path, path: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && renameat_with(CWD, spare, CWD, path, RenameFlags::EXCHANGE).is_ok()
    {
        return Ok(());
    }
    std::fs::rename(spare, path)
}

pub fn read_checkpoint(data_dir: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let path = checkpoint_path(data_dir);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).context("the checkpoint file is unreadable")?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("cannot read the checkpoint file"),
    }
}

/// Compares the database's tree with the checkpoint file, given the tree's size and its root at
/// the checkpoint's size (`None` when the tree is smaller). `Ok(())` when consistent or when the
/// database is legitimately ahead (a crash between COMMIT and the file write).
pub fn check_against_checkpoint(
    db_size: u64,
    root_at_checkpoint: Option<Hash>,
    tree_name: &str,
    cp: &Checkpoint,
) -> anyhow::Result<()> {
    if cp.root.tree_name != tree_name {
        bail!("the checkpoint file belongs to tree {} but the database holds tree {tree_name}", cp.root.tree_name);
    }
    if db_size < cp.root.size {
        bail!(
            "rollback detected: the database holds {db_size} signed roots but the checkpoint file records size {} \
             (lost tail, truncated rows or an older backup)",
            cp.root.size
        );
    }
    let root = root_at_checkpoint.map(hex::encode).unwrap_or_default();
    if root != cp.root.root_hash {
        bail!(
            "fork detected: the database's root at size {} is {root} but the checkpoint file records {}",
            cp.root.size,
            cp.root.root_hash
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_roots_give_candidate_sizes_newest_first_and_hand_out_chunks() {
        let l = Ledger::new(ColdTree::default(), "ab".repeat(32), [7u8; 32]);
        let root = |i: u64| -> Hash {
            let mut h = [1u8; 32];
            h[..4].copy_from_slice(&((i % 5000) as u32).to_be_bytes());
            h
        };
        // Roots of sizes 4,097 … continue the stored chunk 0.
        l.set_recent_roots(ROOT_CHUNK + 1, (ROOT_CHUNK + 1..ROOT_CHUNK + 11).map(|s| root_prefix(&root(s))).collect());
        assert_eq!(
            l.recent_root_candidates(root_prefix(&root(ROOT_CHUNK + 3)), 100_000),
            (ROOT_CHUNK + 1, vec![ROOT_CHUNK + 3])
        );
        assert_eq!(l.recent_root_candidates(root_prefix(&root(ROOT_CHUNK + 3)), ROOT_CHUNK + 3).1, Vec::<u64>::new());
        assert_eq!(l.recent_root_candidates(root_prefix(&root(ROOT_CHUNK + 3)), 0).1, Vec::<u64>::new());
        let mut handed = Vec::new();
        for size in ROOT_CHUNK + 11..=3 * ROOT_CHUNK + 7 {
            if let Some(c) = l.push_root(&root(size)) {
                handed.push(c);
            }
        }
        // Chunks 1 and 2 are complete: handed out once each, still answered from memory.
        assert_eq!(handed.len(), 2);
        assert_eq!(handed[0].0, 1);
        assert_eq!(handed[1].0, 2);
        assert_eq!(handed[1].1.len(), ROOT_CHUNK as usize);
        assert_eq!(handed[1].1[0], root_prefix(&root(2 * ROOT_CHUNK + 1)));
        // Sizes 5,000 apart share a prefix here: both found, newest first.
        let p = root_prefix(&root(ROOT_CHUNK + 5));
        assert_eq!(l.recent_root_candidates(p, u64::MAX).1, vec![ROOT_CHUNK + 5 + 5000, ROOT_CHUNK + 5]);
        l.roots_committed();
        assert_eq!(l.recent_roots_len(), 7);
        assert_eq!(l.recent_root_candidates(p, u64::MAX), (3 * ROOT_CHUNK + 1, vec![]));
        assert_eq!(
            l.recent_root_candidates(root_prefix(&root(3 * ROOT_CHUNK + 7)), u64::MAX).1,
            vec![3 * ROOT_CHUNK + 7]
        );
        assert!(l.push_root(&root(3 * ROOT_CHUNK + 8)).is_none());
    }

    #[test]
    fn signed_root_round_trip() {
        let l = Ledger::new(ColdTree::default(), "ab".repeat(32), [7u8; 32]);
        let root = [1u8; 32];
        let sig = l.sign(1, &root, "2024-01-01T00:00:00.000000Z");
        let sr = SignedRoot {
            tree_name: l.tree_name.clone(),
            size: 1,
            root_hash: hex::encode(root),
            published_at: "2024-01-01T00:00:00.000000Z".into(),
            signature: B64.encode(sig),
        };
        assert!(verify_root_signature(&l.public_key(), &sr));
        let mut bad = sr.clone();
        bad.size = 2;
        assert!(!verify_root_signature(&l.public_key(), &bad));
        assert_eq!(
            sr.message(),
            format!(
                "{{\"published_at\":\"2024-01-01T00:00:00.000000Z\",\"root_hash\":\"{}\",\"size\":1,\"tree_name\":\"{}\"}}",
                hex::encode(root),
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn checkpoint_detects_rollback_and_fork() {
        let tree = merkle::CompactTree::from_leaves([[1; 32], [2; 32]]);
        let cp = |size: u64, root: Hash| Checkpoint {
            root: SignedRoot {
                tree_name: "t".into(),
                size,
                root_hash: hex::encode(root),
                published_at: String::new(),
                signature: String::new(),
            },
            public_key: String::new(),
        };
        let r2 = tree.root(2).unwrap();
        assert!(check_against_checkpoint(2, tree.root(2), "t", &cp(2, r2)).is_ok());
        assert!(check_against_checkpoint(2, tree.root(1), "t", &cp(1, tree.root(1).unwrap())).is_ok());
        assert!(check_against_checkpoint(2, None, "t", &cp(3, r2)).unwrap_err().to_string().contains("rollback"));
        assert!(
            check_against_checkpoint(2, tree.root(2), "t", &cp(2, [9; 32])).unwrap_err().to_string().contains("fork")
        );
        assert!(
            check_against_checkpoint(2, tree.root(2), "u", &cp(2, r2)).unwrap_err().to_string().contains("belongs")
        );
    }

    #[test]
    fn checkpoint_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_checkpoint(dir.path()).unwrap().is_none());
        let cp = Checkpoint {
            root: SignedRoot {
                tree_name: "t".into(),
                size: 3,
                root_hash: "00".repeat(32),
                published_at: "x".into(),
                signature: "s".into(),
            },
            public_key: "k".into(),
        };
        write_checkpoint(dir.path(), &cp).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(cp.clone()));
        let text = std::fs::read_to_string(checkpoint_path(dir.path())).unwrap();
        assert_eq!(text.len(), CHECKPOINT_SLOT, "padded to the slot size");
        assert!(!checkpoint_spare_path(dir.path()).exists(), "the spare became the checkpoint");
        // The next spare is allocated whole; a rewrite through it replaces the file.
        prepare_checkpoint_spare(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(checkpoint_spare_path(dir.path())).unwrap().len(), CHECKPOINT_SLOT as u64);
        {
            use std::os::unix::fs::MetadataExt;
            let mode = |p: PathBuf| std::fs::metadata(p).unwrap().mode() & 0o777;
            assert_eq!(mode(checkpoint_spare_path(dir.path())), 0o600, "private whatever the umask");
            assert_eq!(mode(checkpoint_path(dir.path())), 0o600);
        }
        let mut next = cp.clone();
        next.root.size = 4;
        write_checkpoint(dir.path(), &next).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(next.clone()));
        // Exchanged: the previous file, whole and private, is the next spare.
        let spare = std::fs::metadata(checkpoint_spare_path(dir.path())).unwrap();
        assert_eq!(spare.len(), CHECKPOINT_SLOT as u64);
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(spare.mode() & 0o777, 0o600);
        }
        let mut third = next.clone();
        third.root.size = 5;
        write_checkpoint(dir.path(), &third).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(third));
        assert_eq!(std::fs::read(checkpoint_path(dir.path())).unwrap().len(), CHECKPOINT_SLOT);
        // A spare left short (e.g. by a crash while it was created) is completed; one that is not a
        // regular file is an error, not a silent fallback.
        std::fs::write(checkpoint_spare_path(dir.path()), b"{").unwrap();
        write_checkpoint(dir.path(), &cp).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(cp.clone()));
        std::fs::remove_file(checkpoint_spare_path(dir.path())).unwrap();
        std::fs::create_dir(checkpoint_spare_path(dir.path())).unwrap();
        assert!(prepare_checkpoint_spare(dir.path()).is_err());
        assert!(write_checkpoint(dir.path(), &cp).is_err());
    }
}
