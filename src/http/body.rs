//! Request bodies: the JSON content-type check and bounded reading.

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

/// Whether the request declares a JSON body (`application/json` or `…+json`).
pub fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|t| t == "application/json" || (t.starts_with("application/") && t.ends_with("+json")))
}

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Read,
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, BodyError> {
    // Chunks are kept as they arrive and joined once at the end, into one buffer of the exact size
    // (no doubling growth). A body over the limit is not kept: it is read on and dropped, up to
    // twice the limit, so that a client sending it whole before reading the answer gets the 413
    // rather than a reset connection; with a declared length over the limit nothing is kept at all.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut keep = declared.is_none_or(|n| n <= limit);
    let mut chunks: Vec<web::Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => BodyError::TooLarge,
            _ => BodyError::Read,
        })?;
        len += chunk.len();
        if len > limit {
            keep = false;
            chunks = Vec::new();
            if len > limit.saturating_mul(2) {
                break;
            }
        } else if keep {
            chunks.push(chunk);
        }
    }
    if !keep {
        return Err(BodyError::TooLarge);
    }
    Ok(match chunks.len() {
        0 => web::Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut body = web::BytesMut::with_capacity(len);
            for c in &chunks {
                body.extend_from_slice(c);
            }
            body.freeze()
        }
    })
}
