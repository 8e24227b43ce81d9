//! `trailkeep verify --archive URL`: checks an archive with no database. Every line's hash
//! (SHA-256 of its envelope), every buffer root, every root of the cold tree rebuilt from the
//! buffers, every stored signature and each object's signed root (against the public key), the
//! consistency proof from object to object, the hour partition, and that leaf indexes and event
//! positions have no gap and no overlap. Objects are fetched and checked a few at a time, in
//! parallel; the chain is followed in order and stops at the first bad object, which is named
//! (with the line, where one is at fault).
//!
//! The same walk feeds `restore` (`Feed`): each object's rows are streamed to the restore while
//! the object is checked (so inserting starts long before a large object is done), and its
//! `Checked` (buffers, roots) follows once the object chained. A data directory is only ever
//! rebuilt from objects that verified: the restore builds a file of its own and throws it away
//! when the walk names a problem.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layout::{self, ObjectName, Proof};
use super::{Target, error_chain};
use crate::ledger::cold::ColdTree;
use crate::ledger::merkle::{Hash, mth, parse_hash, verify_consistency};
use crate::ledger::{SignedRoot, verify_root_signature};

/// Objects fetched and checked ahead of the one being chained.
const AHEAD: usize = 4;

/// What `verify --archive` found.
#[derive(Debug, Default)]
pub struct ArchiveReport {
    pub objects: u64,
    pub events: u64,
    /// Lines whose content retention removed before replication (their hashes stand).
    pub purged: u64,
    pub tree_size: u64,
    /// The signed root the archive ends at.
    pub last_root: Option<SignedRoot>,
    /// The first problem (naming the object, and the line where one is at fault); empty = intact.
    pub problem: Option<String>,
    /// Observations that are not failures (an upload in flight at the end, foreign objects).
    pub notes: Vec<String>,
}

/// The fields of an event line after its envelope (whose exact bytes, `split_line`, are what is
/// hashed).
#[derive(Deserialize)]
struct LineRef<'a> {
    hash: &'a str,
    leaf_index: u64,
    seq: i64,
    #[serde(borrow, default)]
    id: Option<&'a str>,
    #[serde(borrow, default)]
    origin: Option<&'a str>,
    #[serde(borrow, default)]
    event_time: Option<&'a str>,
    #[serde(default)]
    workspace: Option<String>,
    /// Absent for the default config.
    #[serde(borrow, default)]
    config_id: Option<&'a str>,
}

/// Rows streamed to a restore in chunks of this many.
const ROWS_CHUNK: usize = 2048;

/// What a restore reads from the walk: for every object in order, a channel of its rows (in
/// chunks, in order; closed early when the object fails a check), then on `objects` the object
/// itself once it verified and chained.
pub struct Feed {
    pub rows: std::sync::mpsc::Sender<std::sync::mpsc::Receiver<Vec<Row>>>,
    pub objects: tokio::sync::mpsc::Sender<Checked>,
}

/// One event of a checked object, ready to be stored again (`restore`).
#[derive(Debug, Clone)]
pub struct Row {
    pub seq: i64,
    pub buffer: u64,
    pub hash: Hash,
    pub uid: uuid::Uuid,
    pub origin: crate::event::Origin,
    pub event_time: Option<String>,
    /// Empty when retention removed the content.
    pub envelope: String,
    /// For a purged line.
    pub workspace: Option<String>,
    /// The event's audit config (declared in `configs.json`); `None`: the default config.
    pub config_id: Option<String>,
    /// The indexed columns, derived from the envelope where the object is checked (in parallel).
    pub columns: super::columns::Columns,
}

/// An object whose own content verified (before the chain checks).
pub struct Checked {
    pub name: ObjectName,
    pub proof: Proof,
    pub roots: Vec<Hash>,
    pub events: u64,
    pub purged: u64,
}

/// Reads a public key: an SPKI PEM (`public-key.pem`) or the base64 of its 32 bytes
/// (`trailkeep keys public`).
pub fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(t).map_err(|_| anyhow::anyhow!("not an Ed25519 public key PEM"));
    }
    let t = t.strip_prefix("public_key:").unwrap_or(t).trim();
    let bytes: [u8; 32] = B64
        .decode(t)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("not an Ed25519 public key (PEM, or base64 of 32 bytes)")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| anyhow::anyhow!("not a valid Ed25519 public key"))
}

/// A multi-threaded runtime for the archive tools.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// `trailkeep verify --archive URL [--public-key FILE]`.
pub fn verify_archive(url: &str, public_key: Option<&Path>) -> anyhow::Result<ArchiveReport> {
    let target = Target::parse(url)?;
    let trusted = public_key
        .map(|p| {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            parse_public_key(&text).with_context(|| format!("{}", p.display()))
        })
        .transpose()?;
    runtime()?.block_on(async {
        let (store, prefix) = target.open()?;
        let walk = Walk::open(store, prefix, trusted).await?;
        Ok(walk.run(None).await)
    })
}

/// The archive being walked.
pub struct Walk {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    pub key: VerifyingKey,
    /// Objects in leaf order: (name of the events object, whether it exists, whether the proof does).
    entries: Vec<(ObjectName, bool, bool)>,
    /// `configs.json`; `None` for an archive without it (default-config events only).
    pub configs: Option<super::configs::ArchiveConfigs>,
    notes: Vec<String>,
    /// Where the listing stops the walk, and the problem there (none for an upload in flight).
    structural: Option<(usize, Option<String>)>,
}

impl Walk {
    /// Lists the archive and settles the public key (`trusted`, else the archive's own).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        prefix: ObjPath,
        trusted: Option<VerifyingKey>,
    ) -> anyhow::Result<Self> {
        let mut notes = Vec::new();
        let own = match store.get(&layout::key(&prefix, layout::PUBLIC_KEY_FILE)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
                Some(parse_public_key(&String::from_utf8_lossy(&bytes)).context("public-key.pem")?)
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => bail!("cannot read the archive: {}", error_chain(&e)),
        };
        let key = match (trusted, own) {
            (Some(t), Some(o)) if t != o => {
                bail!("the archive's public-key.pem is not the public key given with --public-key")
            }
            (Some(t), _) => t,
            (None, Some(o)) => {
                notes.push(
                    "signatures checked against the archive's own public-key.pem; give --public-key to check them against a key you trust"
                        .to_string(),
                );
                o
            }
            (None, None) => bail!("the archive has no public-key.pem: give the trail's key with --public-key"),
        };
        let configs = match store.get(&layout::key(&prefix, layout::CONFIGS_FILE)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
                let c: super::configs::ArchiveConfigs =
                    serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("configs.json: unreadable: {e}"))?;
                c.check()?;
                Some(c)
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => bail!("cannot read the archive: {}", error_chain(&e)),
        };
        let events_dir = layout::key(&prefix, layout::EVENTS_DIR);
        let mut listed = store.list(Some(&events_dir));
        let mut found: BTreeMap<(u64, u64, String), (bool, bool)> = BTreeMap::new();
        let skip = if prefix.as_ref().is_empty() { 0 } else { prefix.as_ref().len() + 1 };
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| anyhow::anyhow!("cannot list the archive: {}", error_chain(&e)))?;
            let rel = &meta.location.as_ref()[skip..];
            match layout::parse_name(rel) {
                Some(n) => {
                    let e = found.entry((n.first, n.last, n.hour)).or_default();
                    if n.proof { e.1 = true } else { e.0 = true }
                }
                None => notes.push(format!("{rel}: not an archive object name (ignored)")),
            }
        }
        let entries: Vec<(ObjectName, bool, bool)> = found
            .into_iter()
            .map(|((first, last, hour), (ev, pr))| (ObjectName { first, last, hour, proof: false }, ev, pr))
            .collect();
        let structural = structure(&entries, &mut notes);
        Ok(Self { store, prefix, key, entries, configs, notes, structural })
    }

    /// Checks every object in order; with a `feed`, each object's events are streamed to it as
    /// they are checked, and the object follows once it chained.
    pub async fn run(self, feed: Option<Feed>) -> ArchiveReport {
        let mut report = ArchiveReport { notes: self.notes.clone(), ..Default::default() };
        let upto = self.structural.as_ref().map_or(self.entries.len(), |(i, _)| *i);
        let store = self.store.clone();
        let prefix = self.prefix.clone();
        let declared: Arc<Declared> = Arc::new(Declared::of(self.configs.as_ref()));
        let (feeds, tx) = match feed {
            Some(f) => (Some(f.rows), Some(f.objects)),
            None => (None, None),
        };
        // Called in order (`buffered`): each object's row channel is handed over in leaf order.
        let mut checks = futures_util::stream::iter(self.entries[..upto].to_vec())
            .map(move |(name, _, _)| {
                let (store, prefix, declared) = (store.clone(), prefix.clone(), declared.clone());
                let rows = feeds.as_ref().and_then(|f| {
                    let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel(4);
                    f.send(rows_rx).ok().map(|()| rows_tx)
                });
                tokio::spawn(async move { fetch_and_check(store, prefix, name, rows, declared).await })
            })
            .buffered(AHEAD);
        let mut chain = Chain::new(self.key);
        while let Some(joined) = checks.next().await {
            let checked = match joined {
                Ok(Ok(c)) => c,
                Ok(Err(problem)) => {
                    report.problem = Some(problem);
                    return report;
                }
                Err(_) => {
                    report.problem = Some("checking an object stopped unexpectedly".into());
                    return report;
                }
            };
            if let Err(problem) = chain.add(&checked) {
                report.problem = Some(format!("{}: {problem}", checked.name.name()));
                return report;
            }
            report.objects += 1;
            report.events += checked.events;
            report.purged += checked.purged;
            report.tree_size = checked.proof.last_leaf + 1;
            report.last_root = Some(checked.proof.signed_root.clone());
            if let Some(tx) = &tx
                && tx.send(checked).await.is_err()
            {
                report.problem = Some("the restore stopped".into());
                return report;
            }
        }
        if let Some((_, problem)) = self.structural {
            report.problem = problem;
        }
        report
    }
}

/// Gaps, overlaps and missing halves in the listing: the index of the first bad entry and why.
/// A last object whose events are not there yet (its proof is uploaded first) is an upload in
/// flight: noted, not a failure.
fn structure(entries: &[(ObjectName, bool, bool)], notes: &mut Vec<String>) -> Option<(usize, Option<String>)> {
    let mut expected = 0u64;
    for (i, (n, events, proof)) in entries.iter().enumerate() {
        if n.first > expected {
            let gap = if n.first - 1 == expected {
                format!("leaf {expected} is")
            } else {
                format!("leaves {expected}..{} are", n.first - 1)
            };
            return Some((i, Some(format!("{gap} in no object (missing before {})", n.name()))));
        }
        if n.first < expected {
            return Some((
                i,
                Some(format!("{}: overlaps leaves already in an earlier object (leaf {} again)", n.name(), n.first)),
            ));
        }
        if !proof {
            let p = ObjectName { proof: true, ..n.clone() };
            return Some((i, Some(format!("{}: missing (its events are in {})", p.name(), n.name()))));
        }
        if !events {
            if i + 1 == entries.len() {
                notes.push(format!(
                    "{}: not uploaded yet (in flight or interrupted); the archive ends before it",
                    n.name()
                ));
                return Some((i, None));
            }
            return Some((i, Some(format!("{}: missing", n.name()))));
        }
        expected = n.last + 1;
    }
    None
}

async fn fetch(store: &Arc<dyn ObjectStore>, path: &ObjPath, name: &str) -> Result<bytes::Bytes, String> {
    let get = store.get(path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => format!("{name}: missing"),
        e => format!("{name}: cannot be read: {}", error_chain(&e)),
    })?;
    get.bytes().await.map_err(|e| format!("{name}: cannot be read: {}", error_chain(&e)))
}

async fn fetch_and_check(
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    name: ObjectName,
    rows: Option<std::sync::mpsc::SyncSender<Vec<Row>>>,
    declared: Arc<Declared>,
) -> Result<Checked, String> {
    let proof_name = ObjectName { proof: true, ..name.clone() }.name();
    let events_name = name.name();
    let (proof_path, events_path) = (layout::key(&prefix, &proof_name), layout::key(&prefix, &events_name));
    let (proof, events) =
        tokio::join!(fetch(&store, &proof_path, &proof_name), fetch(&store, &events_path, &events_name));
    let (proof, events) = (proof?, events?);
    tokio::task::spawn_blocking(move || check_object(name, &proof, &events, rows.as_ref(), &declared))
        .await
        .map_err(|_| "checking an object stopped unexpectedly".to_string())?
}

/// The config ids `configs.json` declares (none without it: every line must be the default
/// config's).
#[derive(Debug, Default)]
pub struct Declared(std::collections::HashSet<String>);

impl Declared {
    pub fn of(configs: Option<&super::configs::ArchiveConfigs>) -> Self {
        Self(configs.map(|c| c.configs.iter().map(|c| c.id.clone()).collect()).unwrap_or_default())
    }
}

/// Checks one object on its own: the proof's shape, every line (hash, position, buffer, hour,
/// declared config) and every buffer root. With `rows_out`, its events go there in chunks as they
/// are checked (a failing object's channel closes early, after the rows before the bad line).
pub fn check_object(
    name: ObjectName,
    proof: &[u8],
    events: &[u8],
    rows_out: Option<&std::sync::mpsc::SyncSender<Vec<Row>>>,
    declared: &Declared,
) -> Result<Checked, String> {
    let events_name = name.name();
    let proof_name = ObjectName { proof: true, ..name.clone() }.name();
    let proof: Proof = serde_json::from_slice(proof).map_err(|e| format!("{proof_name}: unreadable: {e}"))?;
    let bad = |what: String| format!("{proof_name}: {what}");
    if proof.format != layout::FORMAT {
        return Err(bad(format!("unknown format {}", proof.format)));
    }
    if proof.first_leaf != name.first || proof.last_leaf != name.last {
        return Err(bad(format!(
            "describes leaves {}..={}, not the leaves of its name (the object was renamed or swapped)",
            proof.first_leaf, proof.last_leaf
        )));
    }
    let mut seq = proof.first_seq;
    for (k, b) in proof.buffers.iter().enumerate() {
        if b.leaf_index != name.first + k as u64 || b.first_seq != seq || b.count == 0 {
            return Err(bad(format!("buffer {} is out of place", b.leaf_index)));
        }
        seq += b.count as i64;
    }
    if proof.buffers.len() as u64 != name.last - name.first + 1
        || seq - proof.first_seq != proof.events as i64
        || proof.last_seq != seq - 1
    {
        return Err(bad("its buffers do not add up to its leaves and events".into()));
    }
    let hour_prefix = {
        let h = &name.hour; // YYYY/MM/DD/HH
        format!("{}-{}-{}T{}", &h[0..4], &h[5..7], &h[8..10], &h[11..13])
    };
    let mut text = Vec::with_capacity(events.len() * 6);
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(events), &mut text)
        .map_err(|e| format!("{events_name}: not a readable gzip file: {e}"))?;
    let mut lines = text.split(|&b| b == b'\n');
    let mut rows = Vec::with_capacity(if rows_out.is_some() { ROWS_CHUNK } else { 0 });
    let mut roots = Vec::with_capacity(proof.buffers.len());
    let mut purged = 0u64;
    let mut line_no = 0usize;
    let mut hashes: Vec<Hash> = Vec::new();
    let mut tail = Vec::with_capacity(512);
    for b in &proof.buffers {
        hashes.clear();
        for i in 0..b.count {
            line_no += 1;
            let expected_seq = b.first_seq + i as i64;
            let at = |what: &str| format!("{events_name}: line {line_no}: {what}");
            let Some(line) = lines.next().filter(|l| !l.is_empty()) else {
                return Err(format!("{events_name}: ends at line {}, before event {expected_seq}", line_no - 1));
            };
            let (raw, rest) = split_line(line, &mut tail)
                .ok_or_else(|| at("not an event line: it must start with the envelope, then its other fields"))?;
            let l: LineRef = serde_json::from_slice(rest).map_err(|e| at(&format!("not an event line: {e}")))?;
            if l.seq != expected_seq {
                return Err(at(&format!("event {} where event {expected_seq} belongs", l.seq)));
            }
            if l.leaf_index != b.leaf_index {
                return Err(at(&format!(
                    "claims leaf {}, but event {expected_seq} is in leaf {}",
                    l.leaf_index, b.leaf_index
                )));
            }
            let hash = parse_hash(l.hash).ok_or_else(|| at("malformed hash"))?;
            if let Some(config) = l.config_id
                && !declared.0.contains(config)
            {
                return Err(at(&format!("event {expected_seq}: its config {config} is not declared in configs.json")));
            }
            let envelope = if raw == "null" {
                purged += 1;
                String::new()
            } else {
                let h: Hash = Sha256::digest(raw.as_bytes()).into();
                if h != hash {
                    return Err(at(&format!("event {expected_seq}: the envelope does not hash to its hash (edited)")));
                }
                let received = raw
                    .rfind(",\"received_at\":\"")
                    .map(|i| &raw[i + 16..])
                    .ok_or_else(|| at("the envelope has no receive time"))?;
                if !received.starts_with(&hour_prefix) {
                    return Err(at(&format!(
                        "event {expected_seq} was received outside the object's hour {}",
                        name.hour
                    )));
                }
                raw.to_string()
            };
            hashes.push(hash);
            if let Some(out) = rows_out {
                let uid = l.id.and_then(|s| uuid::Uuid::parse_str(s).ok()).ok_or_else(|| at("no event id"))?;
                let origin = match l.origin {
                    Some("h2o") => crate::event::Origin::H2o,
                    Some("pangea") => crate::event::Origin::Pangea,
                    Some("server") => crate::event::Origin::Server,
                    _ => return Err(at("no origin")),
                };
                let mut row = Row {
                    seq: expected_seq,
                    buffer: b.leaf_index,
                    hash,
                    uid,
                    origin,
                    event_time: l.event_time.map(str::to_string),
                    envelope,
                    workspace: l.workspace,
                    config_id: l.config_id.map(str::to_string),
                    columns: Default::default(),
                };
                row.columns = super::columns::columns(&super::columns::Line {
                    origin: row.origin,
                    event_time: row.event_time.as_deref(),
                    envelope: &row.envelope,
                    workspace: row.workspace.as_deref(),
                })
                .map_err(|e| at(&format!("event {expected_seq}: {e}")))?;
                rows.push(row);
                if rows.len() == ROWS_CHUNK {
                    let full = std::mem::replace(&mut rows, Vec::with_capacity(ROWS_CHUNK));
                    out.send(full).map_err(|_| "the restore stopped".to_string())?;
                }
            }
        }
        let root = mth(&hashes).unwrap_or([0; 32]);
        if hex::encode(root) != b.buffer_root {
            return Err(format!(
                "{events_name}: the events of leaf {} do not give its buffer root (lines {}..={line_no})",
                b.leaf_index,
                line_no + 1 - b.count as usize
            ));
        }
        roots.push(root);
    }
    if lines.any(|l| !l.is_empty()) {
        return Err(format!("{events_name}: line {}: more events than its proof declares", line_no + 1));
    }
    if let Some(out) = rows_out
        && !rows.is_empty()
    {
        out.send(rows).map_err(|_| "the restore stopped".to_string())?;
    }
    Ok(Checked { name, events: proof.events, proof, roots, purged })
}

/// Splits a line `{"envelope":…,"k":…}` into the envelope's bytes, exactly as written, and the
/// object of the other fields (`{"k":…}`, built in `tail`).
fn split_line<'a>(line: &'a [u8], tail: &'a mut Vec<u8>) -> Option<(&'a str, &'a [u8])> {
    let rest = line.strip_prefix(b"{\"envelope\":")?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
    values.next()?.ok()?;
    let end = values.byte_offset();
    let others = rest[end..].strip_prefix(b",")?;
    tail.clear();
    tail.push(b'{');
    tail.extend_from_slice(others);
    Some((std::str::from_utf8(&rest[..end]).ok()?, tail.as_slice()))
}

/// The checks across objects: the cold tree rebuilt from every buffer root, stored roots and
/// signatures, each object's signed root, consistency from the previous one, contiguous events.
struct Chain {
    key: VerifyingKey,
    tree: ColdTree,
    tree_name: Option<String>,
    next_seq: i64,
    last_published: String,
    previous: Option<SignedRoot>,
}

impl Chain {
    fn new(key: VerifyingKey) -> Self {
        Self {
            key,
            tree: ColdTree::default(),
            tree_name: None,
            next_seq: 0,
            last_published: String::new(),
            previous: None,
        }
    }

    fn add(&mut self, c: &Checked) -> Result<(), String> {
        let p = &c.proof;
        if p.first_seq != self.next_seq {
            return Err(format!("starts at event {}, expected event {}", p.first_seq, self.next_seq));
        }
        let name = self.tree_name.get_or_insert_with(|| p.signed_root.tree_name.clone()).clone();
        if p.signed_root.tree_name != name {
            return Err(format!("belongs to tree {}, not {name}", p.signed_root.tree_name));
        }
        let mut unsigned: Vec<(u64, &str)> = Vec::new();
        let mut signed: Vec<(u64, String, Vec<u8>)> = Vec::new();
        for (b, root) in p.buffers.iter().zip(&c.roots) {
            self.tree.push(*root);
            // Only the current root is needed: completed blocks are dropped (bounded memory).
            self.tree.take_completed();
            let size = self.tree.len() as u64;
            let tree_root = hex::encode(self.tree.current_root().unwrap_or([0; 32]));
            if tree_root != b.root_hash {
                return Err(format!("the root at size {size} differs from the tree rebuilt from the buffers"));
            }
            if b.published_at < self.last_published {
                return Err(format!("the root at size {size} was published before an earlier root"));
            }
            self.last_published = b.published_at.clone();
            if b.signature.is_empty() {
                unsigned.push((size, &b.published_at));
                continue;
            }
            if let Some((s, _)) = unsigned.iter().find(|(_, at)| *at != b.published_at) {
                return Err(format!("the root at size {s} is unsigned and not covered by the next signed root"));
            }
            unsigned.clear();
            let sig = B64.decode(&b.signature).unwrap_or_default();
            let msg = crate::ledger::signed_message(&name, size, &b.root_hash, &b.published_at);
            signed.push((size, msg, sig));
        }
        let end = &p.signed_root;
        let last = p.buffers.last().ok_or("no buffers")?;
        if end.size != p.last_leaf + 1 || end.root_hash != last.root_hash || end.published_at != last.published_at {
            return Err("its signed root is not the root after its last leaf".into());
        }
        if !verify_root_signature(&self.key, end) {
            return Err(format!("the signature of its signed root (size {}) does not verify", end.size));
        }
        if let Some((s, _)) = unsigned.iter().find(|(_, at)| **at != end.published_at) {
            return Err(format!("the root at size {s} is unsigned and not covered by a signed root"));
        }
        if let Some(size) = bad_signatures(&self.key, &signed) {
            return Err(format!("the signature of the root at size {size} does not verify"));
        }
        match (&self.previous, &p.consistency) {
            (None, None) => {}
            (Some(prev), Some(cp)) => {
                let ok = cp.from_size == prev.size
                    && cp.from_root == prev.root_hash
                    && parse_hash(&end.root_hash)
                        .zip(parse_hash(&prev.root_hash))
                        .is_some_and(|(new, old)| verify_consistency(&new, &old, &cp.proof));
                if !ok {
                    return Err(format!("its consistency proof from size {} does not verify", prev.size));
                }
            }
            (Some(_), None) => return Err("its consistency proof is missing".into()),
            (None, Some(_)) => return Err("the first object claims a previous root".into()),
        }
        self.previous = Some(end.clone());
        self.next_seq = p.last_seq + 1;
        Ok(())
    }
}

/// The size of the first root whose signature does not verify (batch verification first).
fn bad_signatures(key: &VerifyingKey, items: &[(u64, String, Vec<u8>)]) -> Option<u64> {
    if items.is_empty() {
        return None;
    }
    let sigs: Option<Vec<Signature>> = items.iter().map(|(_, _, s)| Signature::from_slice(s).ok()).collect();
    if let Some(sigs) = sigs {
        let msgs: Vec<&[u8]> = items.iter().map(|(_, m, _)| m.as_bytes()).collect();
        if ed25519_dalek::verify_batch(&msgs, &sigs, &vec![*key; items.len()]).is_ok() {
            return None;
        }
    }
    items
        .iter()
        .find(|(_, m, s)| Signature::from_slice(s).map_or(true, |sig| key.verify(m.as_bytes(), &sig).is_err()))
        .map(|(size, _, _)| *size)
}
