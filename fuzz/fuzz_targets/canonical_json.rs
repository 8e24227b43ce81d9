//! Strict JSON parser and canonical JSON encoder (`event::canonical`, spec pangea-api.md §8.1,
//! design reliability.md Z1). The input is a request body.
//!
//! Properties:
//! * `parse_strict` never panics; error details are at most 200 characters; a syntax or
//!   UTF-8 rejection is also a `serde_json` rejection, and whatever it accepts `serde_json`
//!   accepts too (it is strictly stricter), except for the few numbers just below f64::MAX that
//!   serde_json's inexact float parser turns into an overflow.
//! * Canonicalising is idempotent: `canonical(parse(canonical(x))) == canonical(x)`, and
//!   `parse(canonical(x)) == x`; the output is valid JSON.
//! * Without floats the canonical text equals `serde_json`'s compact output with sorted keys
//!   (same string escapes, integers, no whitespace).
//! * Every float is printed in Python `repr` form: shortest round-trip digits, fixed notation
//!   with a `.` exactly when the decimal exponent is in [-4, 16), else `d[.ddd]e±XX`.
//! * The envelope hash of the canonical bytes is stable and lowercase hex.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use trailkeep::event::canonical::{JsonErrorKind, parse_strict, sha256_hex, to_canonical_string};

/// The request-body nesting limit used by both APIs.
const MAX_DEPTH: usize = 64;

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fn floats(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Number(n) if n.is_f64() => out.extend(n.as_f64()),
        Value::Array(items) => items.iter().for_each(|i| floats(i, out)),
        Value::Object(map) => map.values().for_each(|i| floats(i, out)),
        _ => {}
    }
}

/// Python `repr(float)` shape checks for one float.
fn check_float(f: f64) {
    let text = to_canonical_string(&Value::from(f));
    assert_eq!(text.parse::<f64>().map(f64::to_bits), Ok(f.to_bits()), "{text} does not round-trip {f:?}");
    assert_eq!(text.starts_with('-'), f.is_sign_negative(), "sign of {f:?} in {text}");
    let body = text.trim_start_matches('-');
    let (mantissa, exp) = match body.split_once('e') {
        Some((m, e)) => {
            let digits = e.trim_start_matches(['+', '-']);
            assert!(e.starts_with(['+', '-']) && digits.len() >= 2, "exponent of {text}");
            (m, e.parse::<i32>().expect("exponent"))
        }
        None => (body, 0),
    };
    // Significant digits, and the decimal exponent of the first one.
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let sig = digits.trim_matches('0');
    let int_len = mantissa.split('.').next().map_or(0, str::len) as i32;
    let sci_exp = if sig.is_empty() { 0 } else { exp + int_len - 1 - lead as i32 };
    let shortest = format!("{:e}", f.abs());
    let (rust_mantissa, rust_exp) = shortest.split_once('e').expect("{:e} has an exponent");
    let rust_sig: String = rust_mantissa.chars().filter(char::is_ascii_digit).collect();
    let rust_sig = rust_sig.trim_end_matches('0');
    if f != 0.0 {
        assert_eq!(sig.len(), rust_sig.len().max(1), "{text} is not the shortest repr of {f:?} ({shortest})");
        assert_eq!(sci_exp, rust_exp.parse::<i32>().expect("exponent"), "exponent of {text} vs {shortest}");
    }
    let fixed = (-4..16).contains(&sci_exp);
    assert_eq!(!body.contains('e'), fixed, "{text}: notation for exponent {sci_exp}");
    if fixed {
        assert!(mantissa.contains('.') && !mantissa.ends_with('.'), "{text} lacks a fraction");
    } else {
        assert!(!mantissa.ends_with('0') || mantissa.len() == 1, "{text} has trailing zeros");
    }
}

/// Whether `serde_json::Map` iterates in key order (false with `preserve_order`).
fn maps_are_sorted() -> bool {
    let mut m = Map::new();
    m.insert("b".into(), Value::Null);
    m.insert("a".into(), Value::Null);
    m.keys().next().is_some_and(|k| k == "a")
}

fuzz_target!(|data: &[u8]| {
    let v = match parse_strict(data, MAX_DEPTH) {
        Err(e) => {
            let n = e.detail.chars().count();
            assert!(n > 0 && n <= 200, "detail of {n} chars: {:?}", e.detail);
            if matches!(e.kind, JsonErrorKind::Syntax | JsonErrorKind::NotUtf8 | JsonErrorKind::LoneSurrogate) {
                assert!(
                    serde_json::from_slice::<Value>(data).is_err(),
                    "serde_json accepts what parse_strict calls {:?}: {}",
                    e.kind,
                    e.detail
                );
            }
            return;
        }
        Ok(v) => v,
    };
    if let Err(e) = serde_json::from_slice::<Value>(data) {
        // serde_json's default float parser is not exact: it overflows on a few literals just
        // below the rounding boundary to infinity (`1.7976931348623158e308` is f64::MAX).
        assert!(e.to_string().contains("number out of range"), "serde_json rejects accepted input: {e}");
    }

    let canonical = to_canonical_string(&v);
    let again = parse_strict(canonical.as_bytes(), MAX_DEPTH).expect("canonical output parses strictly");
    assert_eq!(again, v, "parse(canonical(x)) != x");
    assert_eq!(to_canonical_string(&again), canonical, "canonicalisation is not idempotent");
    let loose: Value = serde_json::from_str(&canonical).expect("canonical output is valid JSON");
    if !has_float(&v) {
        assert_eq!(loose, v);
        if maps_are_sorted() {
            assert_eq!(serde_json::to_string(&v).expect("serialise"), canonical, "differs from sorted compact JSON");
        }
    }
    let mut fs = Vec::new();
    floats(&v, &mut fs);
    fs.into_iter().for_each(check_float);

    let hash = sha256_hex(canonical.as_bytes());
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(hash, sha256_hex(to_canonical_string(&again).as_bytes()));
});
