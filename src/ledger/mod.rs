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

/// The checkpoint file outside the database: the newest signed root (see `write_checkpoint`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    #[serde(flatten)]
    pub root: SignedRoot,
    pub public_key: String,
}

pub fn checkpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CHECKPOINT_FILE)
}

/// Where a new checkpoint file is written before it is renamed into place (see
/// `prepare_checkpoint_spare`).
pub const CHECKPOINT_SPARE: &str = "checkpoint.latest.tmp";
/// Bytes of one slot of the checkpoint file: a header line and the JSON (about 450 bytes), padded
/// with whitespace.
pub const CHECKPOINT_SLOT: usize = 4096;
/// Bytes of the checkpoint file: two slots, written alternately in place.
pub const CHECKPOINT_BYTES: usize = 2 * CHECKPOINT_SLOT;
/// How a slot begins: `#trailkeep-checkpoint gen=<n> len=<JSON bytes> sha256=<hex of the JSON>`.
const SLOT_MAGIC: &[u8] = b"#trailkeep-checkpoint ";

pub fn checkpoint_spare_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CHECKPOINT_SPARE)
}

/// One slot: header line, JSON, whitespace up to `CHECKPOINT_SLOT` (the last byte a newline).
fn slot_bytes(generation: u64, cp: &Checkpoint) -> anyhow::Result<Vec<u8>> {
    use sha2::Digest;
    let json = serde_json::to_vec_pretty(cp)?;
    let mut slot = Vec::with_capacity(CHECKPOINT_SLOT);
    slot.extend_from_slice(SLOT_MAGIC);
    writeln!(slot, "gen={generation} len={} sha256={}", json.len(), hex::encode(sha2::Sha256::digest(&json)))?;
    slot.extend_from_slice(&json);
    slot.push(b'\n');
    if slot.len() > CHECKPOINT_SLOT {
        bail!("a checkpoint of {} bytes does not fit its slot", slot.len());
    }
    slot.resize(CHECKPOINT_SLOT - 1, b' ');
    slot.push(b'\n');
    Ok(slot)
}

fn blank_slot() -> Vec<u8> {
    let mut slot = vec![b' '; CHECKPOINT_SLOT];
    slot[CHECKPOINT_SLOT - 1] = b'\n';
    slot
}

/// A slot's generation and JSON, its checksum verified; `None` for a blank, torn or altered slot.
/// The JSON is not parsed here: the writer only needs to know which slot to overwrite.
fn slot_json(slot: &[u8]) -> Option<(u64, &[u8])> {
    use sha2::Digest;
    let rest = slot.strip_prefix(SLOT_MAGIC)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&rest[..nl]).ok()?;
    let (mut generation, mut len, mut sha) = (None, None, None);
    for field in header.split(' ') {
        match field.split_once('=')? {
            ("gen", v) => generation = v.parse::<u64>().ok(),
            ("len", v) => len = v.parse::<usize>().ok(),
            ("sha256", v) => sha = hex::decode(v).ok(),
            _ => {}
        }
    }
    let json = rest.get(nl + 1..(nl + 1).checked_add(len?)?)?;
    if sha2::Sha256::digest(json).as_slice() != sha?.as_slice() {
        return None;
    }
    Some((generation?, json))
}

/// The newest intact slot of a two-slot checkpoint file (index, generation, JSON); `None` when
/// `bytes` is not one (an older release's file, or a checkpoint kept elsewhere: one JSON document).
fn newest_slot(bytes: &[u8]) -> Option<(usize, u64, &[u8])> {
    if bytes.len() != CHECKPOINT_BYTES {
        return None;
    }
    bytes
        .chunks(CHECKPOINT_SLOT)
        .enumerate()
        .filter_map(|(i, s)| slot_json(s).map(|(g, json)| (i, g, json)))
        .max_by_key(|(_, g, _)| *g)
}

/// A checkpoint file's content: the newest valid slot of the two-slot file `write_checkpoint`
/// writes, or a single JSON document (a file of an earlier release, a backup's `.checkpoint`, a
/// trusted copy made by hand).
pub fn parse_checkpoint(bytes: &[u8]) -> anyhow::Result<Checkpoint> {
    if let Some((_, _, json)) = newest_slot(bytes) {
        return serde_json::from_slice(json).context("the checkpoint file is unreadable");
    }
    if bytes.len() == CHECKPOINT_BYTES && bytes.chunks(CHECKPOINT_SLOT).any(|s| s.starts_with(SLOT_MAGIC)) {
        bail!("neither slot of the checkpoint file is intact");
    }
    serde_json::from_slice(bytes).context("the checkpoint file is unreadable")
}

/// Makes sure the next checkpoint write needs no disk space: nothing to do when `checkpoint.latest`
/// is a two-slot file (written in place); otherwise (no checkpoint yet, an earlier release's
/// file) the spare it will be written into first exists with `CHECKPOINT_BYTES` allocated. The
/// writer calls this before each transaction, so a full disk surfaces here, before anything is
/// committed, and not between COMMIT and the checkpoint write, where the group would be in doubt.
pub fn prepare_checkpoint_spare(data_dir: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(checkpoint_path(data_dir))
        .is_ok_and(|m| m.is_file() && m.len() == CHECKPOINT_BYTES as u64)
    {
        return Ok(());
    }
    allocate_spare(data_dir)
}

fn allocate_spare(data_dir: &Path) -> std::io::Result<()> {
    let path = checkpoint_spare_path(data_dir);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && m.len() >= CHECKPOINT_BYTES as u64 => return Ok(()),
        Ok(m) if !m.is_file() => {
            return Err(std::io::Error::other(format!("{} is not a regular file", path.display())));
        }
        _ => {}
    }
    let mut f = crate::datadir::open_private(&path, false)?;
    // Real bytes, not a sparse file or an unwritten extent: writing over them later needs no space.
    f.write_all(&[b' '; CHECKPOINT_BYTES])
}

/// Writes the checkpoint file. `checkpoint.latest` holds two slots, each a generation number, the
/// JSON and its SHA-256; a write overwrites the slot that does not hold the newest generation, in
/// place, and syncs it (`fdatasync`: the file's size and blocks do not change). A crash or power
/// cut during the write leaves the other slot, one checkpoint older, intact; a reader takes the
/// newest slot whose checksum holds. One sync per write, no directory change.
///
/// The first time (or over an earlier release's one-document file, or a file whose slots are both
/// unreadable) the whole two-slot file is written into the pre-allocated spare, synced, renamed
/// over `checkpoint.latest`, and the directory synced: a crash leaves the old file or the new.
pub fn write_checkpoint(data_dir: &Path, cp: &Checkpoint) -> anyhow::Result<()> {
    let path = checkpoint_path(data_dir);
    if write_in_place(&path, cp)? {
        return Ok(());
    }
    let mut body = slot_bytes(1, cp)?;
    body.extend_from_slice(&blank_slot());
    allocate_spare(data_dir).context("cannot create checkpoint file")?;
    let spare = checkpoint_spare_path(data_dir);
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&spare).context("cannot open checkpoint file")?;
        f.write_all(&body).context("cannot write checkpoint file")?;
        if f.metadata()?.len() > body.len() as u64 {
            f.set_len(body.len() as u64)?;
        }
        f.sync_data().context("cannot sync checkpoint file")?;
    }
    std::fs::rename(&spare, &path).context("cannot replace checkpoint file")?;
    crate::datadir::sync_dir(data_dir)?;
    Ok(())
}

/// The in-place write of `write_checkpoint`; `Ok(false)` when `path` is not a two-slot file with
/// an intact slot (missing, an earlier format, anything but a regular file), for the rename.
fn write_in_place(path: &Path, cp: &Checkpoint) -> anyhow::Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(_) => return Ok(false),
    };
    let meta = f.metadata().context("cannot read checkpoint file")?;
    if !meta.is_file() || meta.len() != CHECKPOINT_BYTES as u64 {
        return Ok(false);
    }
    let mut bytes = vec![0u8; CHECKPOINT_BYTES];
    f.read_exact_at(&mut bytes, 0).context("cannot read checkpoint file")?;
    let Some((newest, generation, _)) = newest_slot(&bytes) else { return Ok(false) };
    let slot = slot_bytes(generation + 1, cp)?;
    f.write_all_at(&slot, ((1 - newest) * CHECKPOINT_SLOT) as u64).context("cannot write checkpoint file")?;
    f.sync_data().context("cannot sync checkpoint file")?;
    Ok(true)
}

pub fn read_checkpoint(data_dir: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let path = checkpoint_path(data_dir);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(parse_checkpoint(&b)?)),
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

    fn parse_slot(slot: &[u8]) -> Option<(u64, Checkpoint)> {
        slot_json(slot).map(|(g, json)| (g, serde_json::from_slice(json).unwrap()))
    }

    fn sample_checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            root: SignedRoot {
                tree_name: "t".into(),
                size,
                root_hash: "00".repeat(32),
                published_at: "x".into(),
                signature: "s".into(),
            },
            public_key: "k".into(),
        }
    }

    fn mode(p: PathBuf) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn checkpoint_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_path(dir.path());
        assert!(read_checkpoint(dir.path()).unwrap().is_none());
        // The first write goes through the spare, allocated before it (as the writer does before
        // each transaction), and renames it into place.
        prepare_checkpoint_spare(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(checkpoint_spare_path(dir.path())).unwrap().len(), CHECKPOINT_BYTES as u64);
        let cp = sample_checkpoint(3);
        write_checkpoint(dir.path(), &cp).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(cp.clone()));
        assert!(!checkpoint_spare_path(dir.path()).exists(), "the spare became the checkpoint");
        assert_eq!(mode(path.clone()), 0o600, "private whatever the umask");
        let first = std::fs::read(&path).unwrap();
        assert_eq!(first.len(), CHECKPOINT_BYTES);
        // A two-slot file needs no spare: later writes are in place, alternating slots, and the
        // file keeps its size and inode.
        prepare_checkpoint_spare(dir.path()).unwrap();
        assert!(!checkpoint_spare_path(dir.path()).exists());
        let inode = || {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(checkpoint_path(dir.path())).unwrap().ino()
        };
        let ino = inode();
        for size in 4..9 {
            write_checkpoint(dir.path(), &sample_checkpoint(size)).unwrap();
            assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(sample_checkpoint(size)));
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), CHECKPOINT_BYTES);
            let slots: Vec<_> = bytes.chunks(CHECKPOINT_SLOT).map(|s| parse_slot(s).unwrap()).collect();
            // Slot 0 has generation 1 (size 3); size s is generation s − 2, in slot (s − 3) % 2.
            assert_eq!(slots[((size - 3) % 2) as usize].0, size - 2);
            assert_eq!(slots[((size - 2) % 2) as usize].1.root.size, size - 1, "the previous one is kept");
        }
        assert_eq!(inode(), ino);
        assert_eq!(mode(path.clone()), 0o600);
    }

    #[test]
    fn a_torn_or_altered_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_path(dir.path());
        write_checkpoint(dir.path(), &sample_checkpoint(3)).unwrap();
        write_checkpoint(dir.path(), &sample_checkpoint(4)).unwrap();
        // Size 4 is in slot 1. Tear it (its second half never reached the disk) or alter one byte
        // of its JSON: the reader takes slot 0, one checkpoint older.
        let good = std::fs::read(&path).unwrap();
        let mut torn = good.clone();
        torn[CHECKPOINT_SLOT + 200..].fill(0);
        assert_eq!(parse_checkpoint(&torn).unwrap(), sample_checkpoint(3));
        let mut altered = good.clone();
        let at = CHECKPOINT_SLOT + altered[CHECKPOINT_SLOT..].windows(3).position(|w| w == b"\"si").unwrap();
        altered[at + 1] = b'S';
        assert_eq!(parse_checkpoint(&altered).unwrap(), sample_checkpoint(3));
        // The next write goes over the bad slot, keeping the good one.
        std::fs::write(&path, &torn).unwrap();
        write_checkpoint(dir.path(), &sample_checkpoint(5)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(parse_slot(&bytes[..CHECKPOINT_SLOT]).unwrap().1, sample_checkpoint(3));
        assert_eq!(parse_slot(&bytes[CHECKPOINT_SLOT..]).unwrap(), (2, sample_checkpoint(5)));
        // Both slots bad: unreadable, named as such; a write replaces the file whole.
        let mut both = good.clone();
        both[200..CHECKPOINT_SLOT].fill(b' ');
        both[CHECKPOINT_SLOT + 200..].fill(b' ');
        assert!(parse_checkpoint(&both).unwrap_err().to_string().contains("neither slot"));
        std::fs::write(&path, &both).unwrap();
        assert!(read_checkpoint(dir.path()).is_err());
        write_checkpoint(dir.path(), &sample_checkpoint(6)).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(sample_checkpoint(6)));
    }

    #[test]
    fn an_earlier_one_document_checkpoint_is_read_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_path(dir.path());
        // An earlier release's file: one JSON document padded to 4 KiB.
        let mut old = serde_json::to_vec_pretty(&sample_checkpoint(7)).unwrap();
        old.resize(4095, b' ');
        old.push(b'\n');
        std::fs::write(&path, &old).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(sample_checkpoint(7)));
        assert!(parse_checkpoint(b"{\"tree_name\": \"x\", \"size\": ").is_err());
        // Not a two-slot file: the next transaction's spare is allocated, and the write replaces it.
        prepare_checkpoint_spare(dir.path()).unwrap();
        assert!(checkpoint_spare_path(dir.path()).exists());
        write_checkpoint(dir.path(), &sample_checkpoint(8)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), CHECKPOINT_BYTES);
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(sample_checkpoint(8)));
        // A spare left short (e.g. by a crash while it was created) is completed; one that is not
        // a regular file is an error, not a silent fallback.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(checkpoint_spare_path(dir.path()), b"{").unwrap();
        write_checkpoint(dir.path(), &sample_checkpoint(3)).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(sample_checkpoint(3)));
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(checkpoint_spare_path(dir.path())).unwrap();
        assert!(prepare_checkpoint_spare(dir.path()).is_err());
        assert!(write_checkpoint(dir.path(), &sample_checkpoint(3)).is_err());
        // A directory squatting on the checkpoint file's name: the write fails.
        std::fs::remove_dir(checkpoint_spare_path(dir.path())).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(write_checkpoint(dir.path(), &sample_checkpoint(3)).is_err());
    }
}
