//! Streaming exports (CSV, JSON array, gzipped JSON Lines): rows are read page by page on a
//! blocking thread and sent as chunks, so a large export never sits in memory.

use std::io::Write;

use actix_web::web::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc::Sender;

use crate::event::Origin;
use crate::store::Pool;
use crate::store::search::{EventRow, PangeaQuery, pangea_search, rows_by_seq};

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

fn row_json(r: &EventRow) -> Value {
    json!({
        "envelope": serde_json::from_str::<Value>(&r.envelope).unwrap_or(Value::Null),
        "hash": hex::encode(r.hash),
        "published": true,
        "leaf_index": r.buffer,
    })
}

/// The name of an event's origin in export lines.
pub fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::H2o => "h2o",
        Origin::Pangea => "pangea",
        Origin::Server => "server",
    }
}

/// One event as a line of `jsonl.gz` exports and of replicated objects (the same format), without
/// the newline: `{"envelope":…,"event_time":…,"hash":…,"id":…,"leaf_index":…,"origin":…,
/// "published":true,"seq":…}`, keys in this order. `envelope` is the stored canonical JSON, byte
/// for byte, so SHA-256 of it (and of its canonical re-serialisation) is `hash`; `null` for an
/// event whose content retention removed (such a line ends with a `workspace` key). `leaf_index` is the buffer (cold-tree leaf) holding the
/// event, `seq` its position in the log (0-based, contiguous), `id` its event id, `origin` the API
/// that brought it (`h2o`, `pangea`, `server`), `event_time` the time it happened (µs precision).
pub fn write_line(out: &mut Vec<u8>, r: &EventRow) {
    use std::fmt::Write as _;
    let purged = r.envelope.is_empty();
    out.extend_from_slice(b"{\"envelope\":");
    out.extend_from_slice(if purged { b"null" } else { r.envelope.as_bytes() });
    let mut tail = String::with_capacity(200);
    let _ = write!(
        tail,
        ",\"event_time\":\"{}\",\"hash\":\"{}\",\"id\":\"{}\",\"leaf_index\":{},\"origin\":\"{}\",\"published\":true,\"seq\":{}",
        crate::ledger::format_micros(r.event_time),
        hex::encode(r.hash),
        r.uid.hyphenated(),
        r.buffer,
        origin_name(r.origin),
        r.seq
    );
    if purged {
        // Content removed by retention: the hash stands; the workspace says whose it was.
        tail.push_str(",\"workspace\":");
        crate::event::canonical::write_string(&r.workspace, &mut tail);
    }
    tail.push('}');
    out.extend_from_slice(tail.as_bytes());
}

fn csv_record(r: &EventRow) -> Vec<String> {
    csv_row(&row_json(r), None)
}

/// One CSV row (columns `CSV_COLUMNS`) from a search-event JSON (`envelope`, `hash`, `published`,
/// `leaf_index`, `membership_proof`), with formula-like cells defused.
pub fn csv_row(e: &Value, tree_size: Option<u64>) -> Vec<String> {
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
    row.extend(
        ["timestamp", "actor", "action", "status", "source", "target", "tenant_id", "message", "new", "old"]
            .map(|k| s(&ev[k])),
    );
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
pub fn stream(pool: &Pool, q: &PangeaQuery, format: &str, tx: &Sender<Chunk>) -> anyhow::Result<()> {
    let conn = pool.get()?;
    let mut sink = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
    write_export(&conn, q, format, &mut sink, |_, _| {})?;
    sink.flush()?;
    Ok(())
}

/// Writes every event matching `q` to `out`, page by page; `progress(done, total)` after each page.
/// Returns the number of events written.
pub fn write_export<W: Write>(
    conn: &rusqlite::Connection,
    q: &PangeaQuery,
    format: &str,
    out: W,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<usize> {
    let seqs = pangea_search(conn, q)?;
    let total = seqs.len();
    let mut done = 0;
    match format {
        "csv" => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_COLUMNS)?;
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(conn, page)? {
                    w.write_record(csv_record(&r))?;
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
                    write_line(&mut line, &r);
                    out.write_all(&line)?;
                }
                progress(done, total);
            }
            out.write_all(b"]\n")?;
            out.flush()?;
        }
        "jsonl.gz" => {
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            let mut line = Vec::with_capacity(2048);
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(conn, page)? {
                    line.clear();
                    write_line(&mut line, &r);
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

/// `trailkeep export`: reads the database directly (read-only), with a progress bar on a terminal.
pub fn export_cli(
    data_dir: &std::path::Path,
    since: Option<&str>,
    until: Option<&str>,
    query: &str,
    format: &str,
    out: Option<&std::path::Path>,
) -> anyhow::Result<usize> {
    use std::io::IsTerminal;
    let now = crate::keys::now_micros();
    let time = |s: Option<&str>| -> anyhow::Result<Option<i64>> {
        match s {
            None => Ok(None),
            Some(s) => crate::http::pangea::parse_time_or_duration(s, now)
                .map(Some)
                .ok_or_else(|| anyhow::anyhow!("invalid time {s:?}: use RFC 3339 or a duration such as 7d")),
        }
    };
    let expr = crate::search::pangea_query::parse(query).map_err(|e| anyhow::anyhow!("invalid query: {}", e.detail))?;
    let q = PangeaQuery {
        expr,
        start_us: time(since)?,
        end_us: time(until)?,
        ascending: true,
        order_by: "received_at".into(),
        max_results: usize::MAX >> 1,
        ..Default::default()
    };
    let conn = rusqlite::Connection::open_with_flags(
        crate::store::db_path(data_dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
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
            let f = std::io::BufWriter::new(std::fs::File::create(path)?);
            write_export(&conn, &q, format, f, progress)?
        }
        None => write_export(&conn, &q, format, std::io::BufWriter::new(std::io::stdout().lock()), progress)?,
    };
    bar.finish_and_clear();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(csv_safe("=1+1"), "'=1+1");
        assert_eq!(csv_safe("@x"), "'@x");
        assert_eq!(csv_safe("plain"), "plain");
    }
}
