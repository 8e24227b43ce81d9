//! Canonical JSON (Pangea dialect, spec §8.1) and a strict JSON parser for request bodies.
//!
//! The canonical form is byte-identical to Python's
//! `json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)`
//! encoded as UTF-8: no whitespace, object keys sorted by code point (recursively), strings
//! escaped minimally, integers in plain decimal and floats in Python `repr` form.
//!
//! [`parse_strict`] is a hand-written parser rather than `serde_json::from_slice` because
//! serde_json turns the integer `-0` into the float `-0.0` (Python keeps them apart: `0` vs
//! `-0.0`), silently keeps the last of duplicate keys, and cannot report the other hostile-input
//! cases of spec §16 with a precise kind. It is iterative, so `max_depth` bounds memory only,
//! never the call stack.

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// Python refuses to convert integer strings longer than this (`sys.int_info.default_max_str_digits`).
const MAX_INT_DIGITS: usize = 4300;
/// Longest piece of input ever echoed in an error detail.
const MAX_ECHO_CHARS: usize = 64;

/// Canonical JSON text of `v` (spec §8.1).
pub fn to_canonical_string(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

/// Appends the canonical JSON text of `v` to `out`.
///
/// Non-finite floats cannot occur in a `serde_json::Value` (`Number::from_f64` refuses them),
/// so this never fails. Recursion depth equals the nesting depth of `v`.
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_canonical_map(map, out),
    }
}

/// Appends the canonical JSON text of an object.
pub fn write_canonical_map(map: &serde_json::Map<String, Value>, out: &mut String) {
    // Sort explicitly: the map's own order depends on serde_json features
    // (`preserve_order`) that another crate in the build could switch on.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(k, out);
        out.push(':');
        write_canonical(item, out);
    }
    out.push('}');
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    hex::encode(digest)
}

pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        if esc.is_none() && c >= '\u{20}' {
            continue;
        }
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = c as u32 as usize; // < 0x20 here
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn write_number(n: &Number, out: &mut String) {
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else {
        // With serde_json's `arbitrary_precision` feature a big integer is kept as text;
        // print it as Python would print the int. Without that feature `Display` of a float
        // always contains `.` or `e`, so this branch only ever sees real integers.
        let text = n.to_string();
        let digits = text.strip_prefix('-').unwrap_or(&text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let trimmed = digits.trim_start_matches('0');
            if trimmed.is_empty() {
                out.push('0');
            } else {
                if text.starts_with('-') {
                    out.push('-');
                }
                out.push_str(trimmed);
            }
        } else if let Some(f) = n.as_f64() {
            write_python_float(f, out);
        } else {
            // Unreachable for values built through serde_json's API; keep its own spelling.
            out.push_str(&text);
        }
    }
}

/// Python `repr(float)` for a finite `f`.
fn write_python_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        // Python raises (allow_nan=False); a Value cannot hold these. Emit JSON null
        // rather than invalid JSON.
        out.push_str("null");
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    // `{:e}` gives the shortest round-trip digit count, but on an exact tie between two
    // shortest candidates it rounds half up, while Python (David Gay's dtoa) takes the one
    // nearest to the exact value, half to even. Rust's fixed-precision formatting is exact and
    // rounds half to even, so re-format at the shortest length and keep that if it round-trips.
    let shortest = format!("{:e}", f.abs());
    let len = shortest.split('e').next().map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let nearest = format!("{:.*e}", len.saturating_sub(1), f.abs());
    let sci = if nearest.parse::<f64>() == Ok(f.abs()) { nearest } else { shortest };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
    }
}

/// Why [`parse_strict`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub kind: JsonErrorKind,
    /// Short human-readable reason; never echoes more than 64 characters of input.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    Syntax,
    DuplicateKey,
    TooDeep,
    LoneSurrogate,
    NumberOutOfRange,
    Bom,
    NotUtf8,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for JsonError {}

fn err(kind: JsonErrorKind, detail: impl Into<String>) -> JsonError {
    JsonError { kind, detail: detail.into() }
}

/// Strict parser for request bodies: rejects invalid UTF-8, a UTF-8 BOM, trailing data, nesting
/// deeper than `max_depth` (each array/object is one level; scalars at top level are depth 0),
/// duplicate object keys (compared after unescaping; detail names the key, max 64 chars, e.g.
/// `duplicate key "k"`), lone surrogate escapes (`\ud800` unpaired), integers with more than
/// 4300 digits, and numbers outside f64 range. Returns the Value otherwise.
///
/// Grammar is RFC 8259 exactly (no NaN/Infinity, no comments, whitespace = space, tab, LF, CR).
/// The integer `-0` becomes `0`. Integers that fit neither `u64` nor `i64` are stored as `f64`
/// (lossy; the canonical form then prints the float), because a `Value` without serde_json's
/// `arbitrary_precision` cannot hold them.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(err(JsonErrorKind::Bom, "byte order mark is not allowed"));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| err(JsonErrorKind::NotUtf8, format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    Parser { s: text, b: text.as_bytes(), pos: 0, max_depth }.parse()
}

/// A container being built by the iterative parser.
enum Frame {
    Array(Vec<Value>),
    /// Object so far plus the key whose value is being parsed.
    Object(Map<String, Value>, String),
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn syntax(&self, what: &str) -> JsonError {
        err(JsonErrorKind::Syntax, format!("{what} at byte {}", self.pos))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn parse(mut self) -> Result<Value, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            // Parse one value (or open a container).
            self.skip_ws();
            let mut value = match self.peek() {
                Some(b'{') | Some(b'[') => {
                    if stack.len() >= self.max_depth {
                        return Err(err(JsonErrorKind::TooDeep, format!("nesting deeper than {}", self.max_depth)));
                    }
                    let is_obj = self.peek() == Some(b'{');
                    self.pos += 1;
                    self.skip_ws();
                    if is_obj {
                        if self.peek() == Some(b'}') {
                            self.pos += 1;
                            Value::Object(Map::new())
                        } else {
                            let key = self.parse_key()?;
                            stack.push(Frame::Object(Map::new(), key));
                            continue 'value;
                        }
                    } else if self.peek() == Some(b']') {
                        self.pos += 1;
                        Value::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'"') => Value::String(self.parse_string()?),
                Some(b't') => self.literal("true", Value::Bool(true))?,
                Some(b'f') => self.literal("false", Value::Bool(false))?,
                Some(b'n') => self.literal("null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => Value::Number(self.parse_number()?),
                Some(_) => return Err(self.syntax("unexpected character")),
                None => return Err(self.syntax("unexpected end of input")),
            };
            // Attach the finished value to its parent, closing containers as needed.
            loop {
                let Some(frame) = stack.last_mut() else {
                    self.skip_ws();
                    if self.pos != self.b.len() {
                        return Err(self.syntax("trailing data"));
                    }
                    return Ok(value);
                };
                self.skip_ws();
                match frame {
                    Frame::Array(items) => {
                        items.push(value);
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => self.pos += 1,
                            _ => return Err(self.syntax("expected ',' or ']'")),
                        }
                    }
                    Frame::Object(map, key) => {
                        map.insert(std::mem::take(key), value);
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_ws();
                                let next = self.parse_key()?;
                                if map.contains_key(&next) {
                                    return Err(duplicate(&next));
                                }
                                *key = next;
                                continue 'value;
                            }
                            Some(b'}') => self.pos += 1,
                            _ => return Err(self.syntax("expected ',' or '}'")),
                        }
                    }
                }
                value = match stack.pop() {
                    Some(Frame::Array(items)) => Value::Array(items),
                    Some(Frame::Object(map, _)) => Value::Object(map),
                    None => return Err(self.syntax("internal parser state")),
                };
            }
        }
    }

    /// Parses `"key"` followed by `:`.
    fn parse_key(&mut self) -> Result<String, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("expected object key"));
        }
        let key = self.parse_string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.syntax("expected ':'"));
        }
        self.pos += 1;
        Ok(key)
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, JsonError> {
        if self.b[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(chunk) = self.b.get(self.pos..self.pos + 4) else {
            return Err(self.syntax("truncated \\u escape"));
        };
        let mut v = 0u32;
        for &c in chunk {
            let d = char::from(c).to_digit(16).ok_or_else(|| self.syntax("invalid \\u escape"))?;
            v = v * 16 + d;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Parses a string starting at the opening quote.
    fn parse_string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        let mut start = self.pos;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.syntax("unterminated string"));
            };
            match c {
                b'"' => {
                    out.push_str(&self.s[start..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.s[start..self.pos]);
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.syntax("unterminated string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => {
                            self.pos -= 1;
                            return Err(self.syntax("invalid escape"));
                        }
                    }
                    start = self.pos;
                }
                0x00..=0x1F => return Err(self.syntax("control character in string")),
                _ => self.pos += 1, // input is valid UTF-8; continuation bytes pass through
            }
        }
    }

    /// After `\u`: one code point, combining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let lone = |p: &Self| err(JsonErrorKind::LoneSurrogate, format!("lone surrogate escape at byte {}", p.pos));
        let hi = self.hex4()?;
        match hi {
            0xD800..=0xDBFF => {
                if !self.b[self.pos..].starts_with(b"\\u") {
                    return Err(lone(self));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(lone(self));
                }
                let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                char::from_u32(cp).ok_or_else(|| lone(self))
            }
            0xDC00..=0xDFFF => Err(lone(self)),
            _ => char::from_u32(hi).ok_or_else(|| lone(self)),
        }
    }

    fn parse_number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.syntax("invalid number")),
        }
        let int_digits = self.pos - int_start;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number"));
            }
            self.skip_digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number"));
            }
            self.skip_digits();
            is_float = true;
        }
        let text = &self.s[start..self.pos];
        let out_of_range = || err(JsonErrorKind::NumberOutOfRange, format!("number out of range at byte {start}"));
        if !is_float {
            if int_digits > MAX_INT_DIGITS {
                return Err(out_of_range());
            }
            if neg {
                if let Ok(i) = text.parse::<i64>() {
                    // `-0` is the integer 0 (Python: `json.loads("-0") == 0`).
                    return Ok(Number::from(i));
                }
            } else if let Ok(u) = text.parse::<u64>() {
                return Ok(Number::from(u));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Number::from_f64(f).ok_or_else(out_of_range),
            _ => Err(out_of_range()),
        }
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

fn duplicate(key: &str) -> JsonError {
    let shown: String = key.chars().take(MAX_ECHO_CHARS).collect();
    let mut quoted = String::new();
    write_string(&shown, &mut quoted);
    err(JsonErrorKind::DuplicateKey, format!("duplicate key {quoted}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(input: &str) -> String {
        to_canonical_string(&parse_strict(input.as_bytes(), 64).expect("parses"))
    }

    fn kind(input: &[u8]) -> JsonErrorKind {
        parse_strict(input, 64).expect_err("must be rejected").kind
    }

    fn check_vector(input: &str, canonical: Option<&str>, hash: &str) {
        let c = canon(input);
        if let Some(expected) = canonical {
            assert_eq!(c, expected);
        }
        assert_eq!(sha256_hex(c.as_bytes()), hash);
        // Canonical form is a fixed point.
        assert_eq!(canon(&c), c);
    }

    #[test]
    fn vector_a_signed_event() {
        let canonical = r#"{"event":{"action":"login","actor":"alice","message":"hello world","new":"{\"a\":1,\"b\":2}","status":"success","timestamp":"2024-05-01T12:00:00.123456Z"},"public_key":"{\"algorithm\":\"ED25519\",\"key\":\"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAlvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=\\n-----END PUBLIC KEY-----\\n\"}","received_at":"2024-05-01T12:00:01.000001Z","signature":"IYDK5DI6n09gliJsXE8eGuHkERWcRoBKm5WEAW5hNdpBojHSq/gro9ejgviyFlsmurVXZprebf1k7V00QjXBCw=="}"#;
        let hash = "5410ef7c0caebf6c3d1f11374983e1f5cb967e33e7952711bdc4e1952cfa053d";
        check_vector(canonical, Some(canonical), hash);
        // Same envelope with Python's default ", " / ": " separators and shuffled keys.
        let spaced = r#"{"signature": "IYDK5DI6n09gliJsXE8eGuHkERWcRoBKm5WEAW5hNdpBojHSq/gro9ejgviyFlsmurVXZprebf1k7V00QjXBCw==", "received_at": "2024-05-01T12:00:01.000001Z", "public_key": "{\"algorithm\":\"ED25519\",\"key\":\"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAlvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=\\n-----END PUBLIC KEY-----\\n\"}", "event": {"timestamp": "2024-05-01T12:00:00.123456Z", "status": "success", "new": "{\"a\":1,\"b\":2}", "message": "hello world", "actor": "alice", "action": "login"}}"#;
        check_vector(spaced, Some(canonical), hash);
        // The stringified `new` is itself canonical JSON of {"b":2,"a":1}.
        assert_eq!(to_canonical_string(&json!({"b": 2, "a": 1})), r#"{"a":1,"b":2}"#);
    }

    #[test]
    fn vector_minimal() {
        check_vector(
            r#"{"event":{"message":"test"}}"#,
            Some(r#"{"event":{"message":"test"}}"#),
            "9c9c3b5a627cce035d517c14c10779656e900532bf6e76a5d2c69148e45fdb8d",
        );
    }

    #[test]
    fn vector_d_string_escapes() {
        let input = r#"{"received_at":"2024-05-01T00:00:00.000000Z","event":{"old":"t\tq\u0000\u001f\u000b","message":"caf\u00e9 \u2028 \u007f <b>&</b> /","actor":"\ud83d\ude00"}}"#;
        let expected_hex = "7b226576656e74223a7b226163746f72223a22f09f9880222c226d657373616765223a22636166c3a920e280a8207f203c623e263c2f623e202f222c226f6c64223a22745c74715c75303030305c75303031665c7530303062227d2c2272656365697665645f6174223a22323032342d30352d30315430303a30303a30302e3030303030305a227d";
        let c = canon(input);
        assert_eq!(hex::encode(c.as_bytes()), expected_hex);
        check_vector(input, None, "f57ff0c6aec4b5bafb821ecffe621bda3bc34e2140156d7c32c3dd536c846db2");
    }

    #[test]
    fn vector_e_numbers() {
        check_vector(
            r#"{"event":{"message":"n","z":[1,2.5,-0,1e16,1e-05,1E2,0.10,-0.0,12345678901234567890,true,null]},"received_at":"2024-05-01T00:00:00.000000Z"}"#,
            Some(
                r#"{"event":{"message":"n","z":[1,2.5,0,1e+16,1e-05,100.0,0.1,-0.0,12345678901234567890,true,null]},"received_at":"2024-05-01T00:00:00.000000Z"}"#,
            ),
            "1ac7be16933ecc86280ee32c6e947c5af05eaa7ee1e8d64ce333a39dfb6b6a6c",
        );
    }

    #[test]
    fn vector_b_event_hashes() {
        let expected = [
            "66e5918c7a42791f5cb1d676d9d7129d2555ae682f97c84489e5b57e46336c7a",
            "ef20458a78a9e18aa4041139480de9b475d3b6abbb093a82c636dba60f11ae1d",
            "5d2fafb0d8b8afbf68ea12d3a9e3e749a36d7454b555bd24e47deff150ba5337",
            "2dafed0106af42ce1318c5c24953309cb909006cdb3f739a94a1901636362eeb",
            "a838d1fe593362c7610e210ad6df3a622d1aa0986af864a157d6294d3d307186",
        ];
        for (i, h) in expected.iter().enumerate() {
            let input = format!(r#"{{"event":{{"message":"e{i}"}},"received_at":"2024-05-01T00:00:0{i}.000000Z"}}"#);
            check_vector(&input, Some(&input), h);
        }
    }

    #[test]
    fn production_envelope_hash() {
        // Spec §15.6 (live Pangea service).
        let input = r#"{"event":{"actor":"Actor","action":"Action","message":"sigtest100","new":"New","old":"Old","source":"Source","status":"Status","target":"Target"},"received_at":"2022-09-20T13:09:28.673562Z","public_key":"lvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=","signature":"dg7Wg+E8QzZzhECzQoH3v3pbjWObR8ve7SHREAyA9JlFOusKPHVb16t5D3rbscnv80ry/aWzfMTscRNSYJFzDA=="}"#;
        check_vector(input, None, "afa77464cad6e1b34e23d4847106081577f0b78f9c407ab501d16c09b23be202");
    }

    #[test]
    fn nested_keys_sorted_independent_of_insertion_order() {
        let mut inner1 = Map::new();
        inner1.insert("zeta".into(), json!(1));
        inner1.insert("alpha".into(), json!({"y": [3, {"d": 1, "c": 2}], "x": null}));
        inner1.insert("é".into(), json!("e-acute"));
        inner1.insert("Z".into(), json!(true));
        let mut outer1 = Map::new();
        outer1.insert("b".into(), Value::Object(inner1));
        outer1.insert("a".into(), json!([]));
        outer1.insert("😀".into(), json!({}));
        outer1.insert("\u{ffff}".into(), json!(0));

        let mut inner2 = Map::new();
        inner2.insert("Z".into(), json!(true));
        inner2.insert("é".into(), json!("e-acute"));
        inner2.insert("alpha".into(), json!({"x": null, "y": [3, {"c": 2, "d": 1}]}));
        inner2.insert("zeta".into(), json!(1));
        let mut outer2 = Map::new();
        outer2.insert("\u{ffff}".into(), json!(0));
        outer2.insert("😀".into(), json!({}));
        outer2.insert("a".into(), json!([]));
        outer2.insert("b".into(), Value::Object(inner2));

        let expected = "{\"a\":[],\"b\":{\"Z\":true,\"alpha\":{\"x\":null,\"y\":[3,{\"c\":2,\"d\":1}]},\"zeta\":1,\"é\":\"e-acute\"},\"\u{ffff}\":0,\"😀\":{}}";
        let c1 = to_canonical_string(&Value::Object(outer1));
        let c2 = to_canonical_string(&Value::Object(outer2));
        assert_eq!(c1, expected);
        assert_eq!(c2, expected);
        // Code-point order: U+FFFF sorts before U+1F600 (Python sorts by code point, not UTF-16).
        assert!(c1.find('\u{ffff}') < c1.find('😀'));
    }

    #[test]
    fn write_canonical_appends() {
        let mut out = String::from("prefix:");
        write_canonical(&json!({"k": "v"}), &mut out);
        assert_eq!(out, r#"prefix:{"k":"v"}"#);
    }

    #[test]
    fn string_escapes() {
        let all_controls: String = (0u32..0x20).filter_map(char::from_u32).collect();
        let c = to_canonical_string(&Value::String(all_controls));
        assert_eq!(
            c,
            r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f""#
        );
        let raw = "\"\\/<>&'\u{7f}\u{80}\u{9f}\u{2028}\u{2029}\u{fffd}";
        assert_eq!(to_canonical_string(&json!(raw)), "\"\\\"\\\\/<>&'\u{7f}\u{80}\u{9f}\u{2028}\u{2029}\u{fffd}\"");
        assert_eq!(to_canonical_string(&json!("")), r#""""#);
        assert_eq!(canon(r#""\/\"\\""#), r#""/\"\\""#);
    }

    #[test]
    fn python_float_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (2.5, "2.5"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.7, "1234567890123456.8"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e100, "1e+100"),
            (-1e-100, "-1e-100"),
            (123.456, "123.456"),
            (-3.25, "-3.25"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (0.30000000000000004, "0.30000000000000004"),
            (1.2345678901234567e23, "1.2345678901234567e+23"),
            // Exact ties between two shortest candidates: Python rounds half to even.
            (140747802121625.0 + 0.125, "140747802121625.12"),
            (946409069529315.0 + 0.25, "946409069529315.2"),
            (1436630632076785.0 + 0.25, "1436630632076785.2"),
        ];
        for &(f, expected) in cases {
            let mut out = String::new();
            write_python_float(f, &mut out);
            assert_eq!(out, expected, "repr of {f:e}");
            assert_eq!(to_canonical_string(&Value::Number(Number::from_f64(f).expect("finite"))), expected);
        }
    }

    #[test]
    fn integers() {
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("-0"), "0");
        assert_eq!(canon("-1"), "-1");
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
        assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
        assert!(parse_strict(b"-0", 64).expect("ok").is_u64());
        assert!(parse_strict(b"-0.0", 64).expect("ok").is_f64());
        assert!(parse_strict(b"-0e0", 64).expect("ok").is_f64());
        assert_eq!(canon("-0e0"), "-0.0");
        // Beyond u64/i64: stored as f64 (documented lossy behaviour).
        assert_eq!(canon("123456789012345678901234"), "1.2345678901234569e+23");
        assert_eq!(canon("-9223372036854775809"), "-9.223372036854776e+18");
        assert_eq!(canon("1e-400"), "0.0");
        assert_eq!(canon("0.000"), "0.0");
    }

    #[test]
    fn number_limits() {
        let big = "9".repeat(4301);
        assert_eq!(kind(big.as_bytes()), JsonErrorKind::NumberOutOfRange);
        assert_eq!(kind(format!("-{big}").as_bytes()), JsonErrorKind::NumberOutOfRange);
        // 400 digits: allowed by Python, but outside f64 range for us.
        assert_eq!(kind("1".repeat(400).as_bytes()), JsonErrorKind::NumberOutOfRange);
        assert_eq!(kind(b"1e400"), JsonErrorKind::NumberOutOfRange);
        assert_eq!(kind(b"-1e309"), JsonErrorKind::NumberOutOfRange);
        assert_eq!(kind(b"[1.8e308]"), JsonErrorKind::NumberOutOfRange);
        assert_eq!(kind(b"1e99999999999999999999"), JsonErrorKind::NumberOutOfRange);
        assert_eq!(canon("1.7976931348623157e308"), "1.7976931348623157e+308");
        let e = parse_strict(big.as_bytes(), 64).expect_err("rejected");
        assert!(e.detail.len() <= 200 && !e.detail.contains("999"));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            " ",
            "{",
            "}",
            "[",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "{'a':1}",
            "01",
            "-",
            "+1",
            "1.",
            ".5",
            "1e",
            "1e+",
            "0x10",
            "NaN",
            "Infinity",
            "-Infinity",
            "tru",
            "nul",
            "True",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"a\tb\"",
            "\"a\nb\"",
            "\"\u{1}\"",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "/* c */1",
            "\u{a0}1",
        ] {
            assert_eq!(kind(bad.as_bytes()), JsonErrorKind::Syntax, "input {bad:?}");
        }
    }

    #[test]
    fn trailing_data_rejected() {
        assert_eq!(kind(b"{} {}"), JsonErrorKind::Syntax);
        assert_eq!(kind(b"1 2"), JsonErrorKind::Syntax);
        assert_eq!(kind(b"{}x"), JsonErrorKind::Syntax);
        assert_eq!(kind(b"{}\0"), JsonErrorKind::Syntax);
        assert_eq!(canon(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n "), r#"{"a":[1,2]}"#);
    }

    #[test]
    fn bom_and_utf8() {
        assert_eq!(kind(b"\xEF\xBB\xBF{}"), JsonErrorKind::Bom);
        assert_eq!(kind(b"\"\xFF\""), JsonErrorKind::NotUtf8);
        assert_eq!(kind(b"\xFF\xFE{}"), JsonErrorKind::NotUtf8);
        // CESU-8 / encoded surrogate.
        assert_eq!(kind(b"\"\xED\xA0\x80\""), JsonErrorKind::NotUtf8);
        assert_eq!(kind(b"\"\xC3\""), JsonErrorKind::NotUtf8);
        // Raw multi-byte UTF-8 is fine.
        assert_eq!(canon("\"é😀\u{2028}\""), "\"é😀\u{2028}\"");
    }

    #[test]
    fn lone_surrogates() {
        for bad in [
            r#""\ud800""#,
            r#""\ud800x""#,
            r#""\udbff\u0041""#,
            r#""\udc00""#,
            r#""a\udfffb""#,
            r#""\ud800\ud800""#,
            r#"{"\ud83d":1}"#,
            r#"["\ud83d\n"]"#,
        ] {
            assert_eq!(kind(bad.as_bytes()), JsonErrorKind::LoneSurrogate, "input {bad}");
        }
        assert_eq!(canon(r#""\uD83D\uDE00""#), "\"😀\"");
        assert_eq!(canon(r#""\udbff\udfff""#), "\"\u{10ffff}\"");
        assert_eq!(canon(r#""\uFFFF\u0041""#), "\"\u{ffff}A\"");
    }

    #[test]
    fn duplicate_keys() {
        let e = parse_strict(br#"{"k":1,"k":2}"#, 64).expect_err("dup");
        assert_eq!(e.kind, JsonErrorKind::DuplicateKey);
        assert_eq!(e.detail, r#"duplicate key "k""#);
        // Compared after unescaping.
        assert_eq!(kind(br#"{"a":1,"\u0061":2}"#), JsonErrorKind::DuplicateKey);
        // Nested objects are checked too; same key in sibling objects is fine.
        assert_eq!(kind(br#"{"x":{"a":1,"b":{},"a":3}}"#), JsonErrorKind::DuplicateKey);
        assert_eq!(kind(br#"[{"a":1},{"b":[{"c":1,"c":1}]}]"#), JsonErrorKind::DuplicateKey);
        assert_eq!(canon(r#"{"x":{"a":1},"y":{"a":1}}"#), r#"{"x":{"a":1},"y":{"a":1}}"#);
        // Long keys are truncated to 64 characters in the detail.
        let long = "é".repeat(500);
        let input = format!(r#"{{"{long}":1,"{long}":2}}"#);
        let e = parse_strict(input.as_bytes(), 64).expect_err("dup");
        assert_eq!(e.kind, JsonErrorKind::DuplicateKey);
        assert_eq!(e.detail, format!("duplicate key \"{}\"", "é".repeat(64)));
        // Control characters in the key are escaped in the detail.
        let e = parse_strict(br#"{"a\n":1,"a\n":2}"#, 64).expect_err("dup");
        assert_eq!(e.detail, r#"duplicate key "a\n""#);
    }

    #[test]
    fn depth_limit() {
        let nest = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        assert_eq!(canon(&nest(64)), nest(64));
        assert_eq!(kind(nest(65).as_bytes()), JsonErrorKind::TooDeep);
        let obj = |d: usize| format!("{}1{}", r#"{"a":"#.repeat(d), "}".repeat(d));
        assert!(parse_strict(obj(3).as_bytes(), 3).is_ok());
        assert_eq!(parse_strict(obj(4).as_bytes(), 3).expect_err("deep").kind, JsonErrorKind::TooDeep);
        assert!(parse_strict(b"1", 0).is_ok());
        assert_eq!(parse_strict(b"[]", 0).expect_err("deep").kind, JsonErrorKind::TooDeep);
        // Very deep hostile input fails fast without recursion (no stack overflow).
        let hostile = "[".repeat(1_000_000);
        assert_eq!(kind(hostile.as_bytes()), JsonErrorKind::TooDeep);
        // Depth counts open containers, not siblings.
        assert!(parse_strict(br#"[[1],[2],{"a":[3]}]"#, 3).is_ok());
    }

    #[test]
    fn parses_values_faithfully() {
        let v = parse_strict(br#"{"s":"x\u00e9","n":[0,-5,1.5,true,false,null],"o":{},"a":[]}"#, 64).expect("ok");
        assert_eq!(v, json!({"s": "x\u{e9}", "n": [0, -5, 1.5, true, false, null], "o": {}, "a": []}));
        // Canonical output always re-parses to the same value.
        let c = to_canonical_string(&v);
        assert_eq!(parse_strict(c.as_bytes(), 64).expect("reparse"), v);
    }

    #[test]
    fn error_details_short() {
        let long_garbage = format!("[\"{}\" x]", "A".repeat(10_000));
        let e = parse_strict(long_garbage.as_bytes(), 64).expect_err("bad");
        assert_eq!(e.kind, JsonErrorKind::Syntax);
        assert!(e.detail.len() < 64, "{}", e.detail);
        assert!(!e.to_string().contains("AAAA"));
    }

    #[test]
    fn sha256_hex_known() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
