//! Streaming exports (CSV, JSON array, gzipped JSON Lines): rows are read page by page on a
//! blocking thread and sent as chunks, so a large export never sits in memory. Gzipped JSON Lines
//! is the verifiable archive: each line also carries the event's membership proof and the signed
//! root it leads to (the newest when the export read its rows), so one line verifies with only
//! the server's public key. JSON rows are the same lines without the proof fields, and CSV rows
//! the Pangea search event columns without proofs: a proof (one hash per doubling of the buffer
//! and of the tree) makes a row several times larger. Replicated objects hold the same lines as
//! JSON (`write_line` with `LineProof::Omitted`): each object's proof file proves them all.

use std::io::Write;

use actix_web::web::Bytes;
use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::mpsc::Sender;

use crate::event::Origin;
use crate::ledger::Ledger;
use crate::ledger::cold::{BlockCache, ColdTree};
use crate::ledger::merkle::{CompactTree, encode_path};
use crate::store::Pool;
use crate::store::search::{EventRow, PangeaQuery, buffer_hashes, pangea_search, rows_by_seq};
use crate::store::tree::{TreeReader, load_tree};
use crate::store::writer::latest_root;

/// CSV columns of the default config's events.
pub const CSV_COLUMNS: [&str; 18] = [
    "received_at",
    "hash",
    "published",
    "leaf_index",
    "membership_proof",
    "tree_size",
    "timestamp",
    "actor",
    "action",
    "status",
    "source",
    "target",
    "tenant_id",
    "message",
    "new",
    "old",
    "signature",
    "public_key",
];

const PAGE: usize = 500;
const CHUNK: usize = 64 * 1024;

pub type Chunk = Result<Bytes, std::io::Error>;

/// Prefixes cells that spreadsheets would evaluate as formulas.
pub fn csv_safe(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\0') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// An exported event without its proof (CSV and JSON), as a Pangea search event.
fn row_json(r: &EventRow) -> Value {
    json!({
        "envelope": serde_json::from_str::<Value>(&r.envelope).unwrap_or(Value::Null),
        "hash": hex::encode(r.hash),
        "published": true,
        "leaf_index": r.buffer,
    })
}

/// The event fields of the default config's CSV columns, in column order.
const STANDARD_FIELDS: [&str; 10] =
    ["timestamp", "actor", "action", "status", "source", "target", "tenant_id", "message", "new", "old"];

/// CSV columns for events with these fields (a config's schema fields, in schema order): the
/// search-event columns, one per field, then `signature` and `public_key`. For the standard
/// schema they are `CSV_COLUMNS`.
pub fn csv_columns(fields: &[String]) -> Vec<String> {
    let mut cols: Vec<String> = CSV_COLUMNS[..6].iter().map(|c| c.to_string()).collect();
    cols.extend(fields.iter().cloned());
    cols.extend(["signature".to_string(), "public_key".to_string()]);
    cols
}

fn standard_fields() -> Vec<String> {
    STANDARD_FIELDS.iter().map(|f| f.to_string()).collect()
}

/// The name of an event's origin in export lines.
pub fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::H2o => "h2o",
        Origin::Pangea => "pangea",
        Origin::Server => "server",
    }
}

/// What a line carries after the fields common to exports and archive objects.
pub enum LineProof<'a> {
    /// Nothing: a line of a JSON export, or of an archive object (whose proof file proves the
    /// whole object, `crate::replication::layout`).
    Omitted,
    /// A `jsonl.gz` export line's own proof: the event's membership proof to the signed root of
    /// `tree_size` leaves, and that root (canonical JSON of `published_at`, `root_hash`,
    /// `signature`, `size`, `tree_name`), so the line verifies on its own.
    Signed { membership_proof: &'a str, tree_size: u64, root: &'a str },
    /// An export line for an event no signed root covers yet: `"published":false`, no proof.
    Unpublished,
}

/// One event as a line of exports and of replicated objects (README, "The line format"), without
/// the newline. The common fields, keys in this order: `{"envelope":…,"event_time":…,"hash":…,
/// "id":…,"leaf_index":…,"origin":…,"published":true,"seq":…`; then `"config_id":…` for an event
/// of an audit config other than the default one (absent: the default config); then `"workspace":…` for an event
/// whose content retention removed (`envelope` is `null`); then, in `jsonl.gz` exports only,
/// `"membership_proof":…,"tree_size":…,"root":{…}` (`proof`). `envelope` is the stored canonical
/// JSON, byte for byte, so SHA-256 of it (and of its canonical re-serialisation) is `hash`.
/// `leaf_index` is the buffer (cold-tree leaf) holding the event, `seq` its position in the log
/// (0-based, contiguous), `id` its event id, `origin` the API that brought it (`h2o`, `pangea`,
/// `server`), `event_time` the time it happened (µs precision).
pub fn write_line(out: &mut Vec<u8>, r: &EventRow, proof: LineProof<'_>) {
    use std::fmt::Write as _;
    let purged = r.envelope.is_empty();
    out.extend_from_slice(b"{\"envelope\":");
    out.extend_from_slice(if purged { b"null" } else { r.envelope.as_bytes() });
    let mut tail = String::with_capacity(200);
    let _ = write!(
        tail,
        ",\"event_time\":\"{}\",\"hash\":\"{}\",\"id\":\"{}\",\"leaf_index\":{},\"origin\":\"{}\",\"published\":{},\"seq\":{}",
        crate::time::format_micros(r.event_time),
        hex::encode(r.hash),
        r.uid.hyphenated(),
        r.buffer,
        origin_name(r.origin),
        !matches!(proof, LineProof::Unpublished),
        r.seq
    );
    if let Some(config) = &r.config_id {
        tail.push_str(",\"config_id\":");
        crate::event::canonical::write_string(config, &mut tail);
    }
    if purged {
        // Content removed by retention: the hash stands; the workspace says whose it was.
        tail.push_str(",\"workspace\":");
        crate::event::canonical::write_string(&r.workspace, &mut tail);
    }
    if let LineProof::Signed { membership_proof, tree_size, root } = proof {
        tail.push_str(",\"membership_proof\":");
        crate::event::canonical::write_string(membership_proof, &mut tail);
        let _ = write!(tail, ",\"tree_size\":{tree_size},\"root\":{root}");
    }
    tail.push('}');
    out.extend_from_slice(tail.as_bytes());
}

/// The proofs of exported events: the newest signed root, the cold tree (one leaf per buffer
/// root), and the buffer last used (rows come in seq order, so a buffer's events are consecutive).
struct Proofs {
    /// The root's size and the canonical JSON of the `root` object every line carries.
    signed: Option<(u64, String)>,
    cold: Cold,
    buffer: Option<BufferProofs>,
}

/// The server's cold tree, or (`trailkeep export`) one loaded from the database.
enum Cold {
    Shared(std::sync::Arc<Ledger>),
    Own(parking_lot::RwLock<ColdTree>, BlockCache),
}

impl Cold {
    fn reader<'a>(&'a self, conn: &'a rusqlite::Connection) -> TreeReader<'a> {
        match self {
            Cold::Shared(ledger) => TreeReader::new(conn, ledger),
            Cold::Own(tree, cache) => TreeReader::over(conn, tree, cache),
        }
    }
}

/// One buffer's tree of event hashes and its (encoded) path up the cold tree, shared by its events.
struct BufferProofs {
    idx: u64,
    first_seq: i64,
    tree: CompactTree,
    cold_path: String,
}

impl Proofs {
    /// Reads the newest signed root, then the buffer roots: called after the rows were selected,
    /// the root covers every one of them (each write transaction signs its last root).
    fn load(conn: &rusqlite::Connection, ledger: Option<std::sync::Arc<Ledger>>) -> anyhow::Result<Self> {
        let tree_name = crate::store::get_setting(conn, "tree_name")?.unwrap_or_default();
        let tree_name = String::from_utf8(tree_name).context("the stored tree name is not UTF-8")?;
        let root = latest_root(conn, &tree_name)?;
        let cold = match ledger {
            Some(l) => Cold::Shared(l),
            None if root.is_some() => Cold::Own(parking_lot::RwLock::new(load_tree(conn)?), BlockCache::new(4)),
            None => Cold::Own(parking_lot::RwLock::default(), BlockCache::new(0)),
        };
        let signed = root.map(|root| {
            let value = json!({
                "tree_name": root.tree_name, "size": root.size, "root_hash": root.root_hash,
                "published_at": root.published_at, "signature": root.signature,
            });
            (root.size, crate::event::canonical::to_canonical_string(&value))
        });
        Ok(Self { signed, cold, buffer: None })
    }

    /// One exported event with its proof (`write_line` with `LineProof::Signed`); unpublished and
    /// without proof for an event newer than the root, which the rows' order rules out.
    fn write_line(&mut self, conn: &rusqlite::Connection, out: &mut Vec<u8>, r: &EventRow) -> rusqlite::Result<()> {
        let Some((size, root)) = self.signed.as_ref().filter(|(size, _)| r.buffer < *size) else {
            write_line(out, r, LineProof::Unpublished);
            return Ok(());
        };
        if self.buffer.as_ref().is_none_or(|b| b.idx != r.buffer) {
            let (first_seq, hashes) = buffer_hashes(conn, r.buffer)?;
            let cold_path = encode_path(&self.cold.reader(conn).path(r.buffer, *size)?);
            let tree = CompactTree::from_leaves(hashes);
            self.buffer = Some(BufferProofs { idx: r.buffer, first_seq, tree, cold_path });
        }
        let Some(b) = &self.buffer else {
            write_line(out, r, LineProof::Unpublished);
            return Ok(());
        };
        let hot = encode_path(&b.tree.path((r.seq - b.first_seq) as usize, b.tree.len()));
        let proof = match (hot.is_empty(), b.cold_path.is_empty()) {
            (true, _) => b.cold_path.clone(),
            (false, true) => hot,
            (false, false) => format!("{hot},{}", b.cold_path),
        };
        write_line(out, r, LineProof::Signed { membership_proof: &proof, tree_size: *size, root });
        Ok(())
    }
}

/// One CSV row (columns `CSV_COLUMNS`) from a search-event JSON (`envelope`, `hash`, `published`,
/// `leaf_index`, `membership_proof`), with formula-like cells defused.
pub fn csv_row(e: &Value, tree_size: Option<u64>) -> Vec<String> {
    csv_row_for(e, tree_size, &standard_fields())
}

/// One CSV row (columns `csv_columns(fields)`) from a search-event JSON, with formula-like cells
/// defused; integers and booleans as JSON writes them.
pub fn csv_row_for(e: &Value, tree_size: Option<u64>, fields: &[String]) -> Vec<String> {
    let env = &e["envelope"];
    let ev = &env["event"];
    let s = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => csv_safe(s),
        other => other.to_string(),
    };
    let mut row = vec![
        s(&env["received_at"]),
        s(&e["hash"]),
        s(&e["published"]),
        s(&e["leaf_index"]),
        s(&e["membership_proof"]),
        tree_size.map(|t| t.to_string()).unwrap_or_default(),
    ];
    row.extend(fields.iter().map(|k| s(&ev[k.as_str()])));
    row.extend([s(&env["signature"]), s(&env["public_key"])]);
    row
}

/// A sink that forwards bytes to the HTTP response in chunks; fails once the client is gone.
struct ChannelWriter<'a> {
    tx: &'a Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChannelWriter<'_> {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("client went away"))
    }
}

impl Write for ChannelWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_chunk()
    }
}

/// Runs the query and streams every matching row in `format` (`csv`, `json`, `jsonl.gz`) to the
/// HTTP response.
/// CSV has one column per field of `fields`.
pub fn stream(
    pool: &Pool,
    ledger: std::sync::Arc<Ledger>,
    q: &PangeaQuery,
    format: &str,
    fields: &[String],
    tx: &Sender<Chunk>,
) -> anyhow::Result<()> {
    let conn = pool.get()?;
    let mut sink = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
    write_export(&conn, Some(ledger), q, format, fields, &mut sink, |_, _| {})?;
    sink.flush()?;
    Ok(())
}

/// Writes every event matching `q` to `out`, page by page; `progress(done, total)` after each page.
/// CSV has one column per field of `fields`. Returns the number of events written. Proofs come
/// from the server's cold tree when `ledger` is given, else from one loaded from the database.
pub fn write_export<W: Write>(
    conn: &rusqlite::Connection,
    ledger: Option<std::sync::Arc<Ledger>>,
    q: &PangeaQuery,
    format: &str,
    fields: &[String],
    out: W,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<usize> {
    let seqs = pangea_search(conn, q)?;
    let total = seqs.len();
    let mut done = 0;
    match format {
        "csv" => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(csv_columns(fields))?;
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(conn, page)? {
                    w.write_record(csv_row_for(&row_json(&r), None, fields))?;
                }
                done += page.len();
                progress(done, total);
            }
            w.flush()?;
        }
        "json" => {
            let mut out = out;
            let mut line = Vec::with_capacity(2048);
            out.write_all(b"[")?;
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(conn, page)? {
                    if done > 0 {
                        out.write_all(b",\n")?;
                    }
                    done += 1;
                    line.clear();
                    write_line(&mut line, &r, LineProof::Omitted);
                    out.write_all(&line)?;
                }
                progress(done, total);
            }
            out.write_all(b"]\n")?;
            out.flush()?;
        }
        "jsonl.gz" => {
            let mut proofs =
                Proofs::load(conn, ledger).context("cannot read the signed roots (run `trailkeep verify`)")?;
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            let mut line = Vec::with_capacity(2048);
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(conn, page)? {
                    line.clear();
                    proofs.write_line(conn, &mut line, &r)?;
                    line.push(b'\n');
                    gz.write_all(&line)?;
                }
                done += page.len();
                progress(done, total);
            }
            gz.finish()?.flush()?;
        }
        other => anyhow::bail!("unknown export format {other} (csv, json or jsonl.gz)"),
    }
    Ok(total)
}

/// What `trailkeep export` exports.
pub struct ExportArgs<'a> {
    /// Start and end of the receive-time window (RFC 3339 or a duration before now).
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    /// Pangea query language.
    pub query: &'a str,
    /// Only this audit config's events, with its fields; `None`: every event, standard fields.
    pub config: Option<&'a str>,
    pub format: &'a str,
}

/// `trailkeep export`: reads the database directly (read-only), with a progress bar on a terminal.
pub fn export_cli(
    data_dir: &std::path::Path,
    args: ExportArgs<'_>,
    out: Option<&std::path::Path>,
) -> anyhow::Result<usize> {
    use std::io::IsTerminal;
    let ExportArgs { since, until, query, config, format } = args;
    let now = crate::time::now_micros();
    let time = |s: Option<&str>| -> anyhow::Result<Option<i64>> {
        match s {
            None => Ok(None),
            Some(s) => crate::time::parse_time_or_duration(s, now)
                .map(Some)
                .ok_or_else(|| anyhow::anyhow!("invalid time {s:?}: use RFC 3339 or a duration such as 7d")),
        }
    };
    // The store's read-only connection: searches through the substring index need its modules.
    let conn = crate::store::open_ro(data_dir)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let (catalog, fields) = match config {
        Some(id) => {
            let c = crate::configs::get(&conn, id)?.ok_or_else(|| anyhow::anyhow!("no audit config with id {id}"))?;
            (Some(c.catalog()), c.schema.fields.iter().map(|f| f.id.clone()).collect())
        }
        None => (None, standard_fields()),
    };
    let expr = match &catalog {
        Some(c) => crate::search::pangea_query::parse_in(query, c),
        None => crate::search::pangea_query::parse(query),
    }
    .map_err(|e| anyhow::anyhow!("invalid query: {}", e.detail))?;
    let q = PangeaQuery {
        expr,
        start_us: time(since)?,
        end_us: time(until)?,
        ascending: true,
        order_by: "received_at".into(),
        max_results: usize::MAX >> 1,
        catalog,
        ..Default::default()
    };
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let n = match out {
        Some(path) => {
            let f = std::io::BufWriter::new(crate::datadir::open_export(path)?);
            write_export(&conn, None, &q, format, &fields, f, progress)?
        }
        None => {
            write_export(&conn, None, &q, format, &fields, std::io::BufWriter::new(std::io::stdout().lock()), progress)?
        }
    };
    bar.finish_and_clear();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_columns_are_the_csv_columns() {
        assert_eq!(csv_columns(&standard_fields()), CSV_COLUMNS.map(String::from).to_vec());
        let e = serde_json::json!({"envelope": {"event": {"n": 5, "ok": true, "s": "=x"}, "received_at": "t"}, "hash": "h"});
        let fields = ["n".to_string(), "ok".to_string(), "s".to_string(), "gone".to_string()];
        assert_eq!(csv_row_for(&e, None, &fields)[6..10], ["5", "true", "'=x", ""]);
    }

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(csv_safe("=1+1"), "'=1+1");
        assert_eq!(csv_safe("@x"), "'@x");
        assert_eq!(csv_safe("plain"), "plain");
    }
}
