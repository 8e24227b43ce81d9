//! Streaming exports (CSV, JSON array, gzipped JSON Lines): rows are read page by page on a
//! blocking thread and sent as chunks, so a large export never sits in memory.

use std::io::Write;

use actix_web::web::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc::Sender;

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

fn csv_record(r: &EventRow) -> Vec<String> {
    let v: Value = serde_json::from_str(&r.envelope).unwrap_or(Value::Null);
    let ev = &v["event"];
    let s = |x: &Value| x.as_str().map(csv_safe).unwrap_or_default();
    vec![
        s(&v["received_at"]),
        hex::encode(r.hash),
        "true".into(),
        r.buffer.to_string(),
        String::new(),
        String::new(),
        s(&ev["timestamp"]),
        s(&ev["actor"]),
        s(&ev["action"]),
        s(&ev["status"]),
        s(&ev["source"]),
        s(&ev["target"]),
        s(&ev["tenant_id"]),
        s(&ev["message"]),
        s(&ev["new"]),
        s(&ev["old"]),
        s(&v["signature"]),
        s(&v["public_key"]),
    ]
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

/// Runs the query and streams every matching row in `format` (`csv`, `json`, `jsonl.gz`).
pub fn stream(pool: &Pool, q: &PangeaQuery, format: &str, tx: &Sender<Chunk>) -> anyhow::Result<()> {
    let conn = pool.get()?;
    let seqs = pangea_search(&conn, q)?;
    let mut sink = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
    match format {
        "csv" => {
            let mut w = csv::Writer::from_writer(&mut sink);
            w.write_record(CSV_COLUMNS)?;
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(&conn, page)? {
                    w.write_record(csv_record(&r))?;
                }
            }
            w.flush()?;
        }
        "json" => {
            sink.write_all(b"[")?;
            let mut first = true;
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(&conn, page)? {
                    if !first {
                        sink.write_all(b",\n")?;
                    }
                    first = false;
                    serde_json::to_writer(&mut sink, &row_json(&r))?;
                }
            }
            sink.write_all(b"]\n")?;
        }
        _ => {
            let mut gz = flate2::write::GzEncoder::new(&mut sink, flate2::Compression::fast());
            for page in seqs.chunks(PAGE) {
                for r in rows_by_seq(&conn, page)? {
                    serde_json::to_writer(&mut gz, &row_json(&r))?;
                    gz.write_all(b"\n")?;
                }
            }
            gz.finish()?;
        }
    }
    sink.flush()?;
    Ok(())
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
