//! RE2-compatible regex front end (`search::re2`, design reliability.md Z5).
//!
//! Input: a mode byte, then `pattern 0xFF haystack` (0xFF never occurs in UTF-8). Modes:
//! * 0 (raw): `translate` and `compile` never panic and are deterministic; a rejection has a
//!   non-empty reason of at most 200 characters, and patterns over 1024 bytes are rejected;
//!   an accepted pattern's translation parses with `regex-syntax`, and `compile` then only
//!   fails with "pattern too complex" (the 64 KiB program limit); the compiled regex runs on the
//!   haystack (and agrees with a plain `regex` build of the translation).
//! * 1 (quoted): the pattern text escaped like RE2's `QuoteMeta` must be accepted and match
//!   exactly the haystacks that contain the text.
//! * 2 (`\Q…\E`): the same with the text between `\Q` and `\E`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailkeep::search::re2;

const MAX_PATTERN_BYTES: usize = re2::MAX_PATTERN_BYTES;

/// RE2's `QuoteMeta`: backslash before every ASCII byte that is not `[A-Za-z0-9_]`, NUL as `\x00`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c == '\0' {
            out.push_str(r"\x00");
        } else if c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '_') {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

fn check_reason(e: &re2::Re2Error) {
    let n = e.reason.chars().count();
    assert!(n > 0 && n <= 200, "reason of {n} chars: {:?}", e.reason);
}

/// A literal pattern must be accepted (unless too big) and match exactly the haystacks
/// containing `text`.
fn check_literal(pattern: &str, text: &str, haystack: &str) {
    match re2::compile(pattern) {
        Ok(re) => {
            assert_eq!(re.is_match(haystack), haystack.contains(text), "{pattern:?} on {haystack:?}");
            assert!(re.is_match(text), "{pattern:?} does not match its own text");
            let sandwich = format!("x{text}y");
            assert!(re.is_match(&sandwich), "{pattern:?} does not match inside {sandwich:?}");
        }
        Err(e) if pattern.len() > MAX_PATTERN_BYTES || e.reason == "pattern too complex" => {}
        Err(e) => panic!("literal pattern {pattern:?} rejected: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (pat, hay) = match rest.iter().position(|&b| b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(pattern) = std::str::from_utf8(pat) else { return };
    let haystack = String::from_utf8_lossy(hay);
    match mode % 3 {
        0 => {
            let translated = re2::translate(pattern);
            assert_eq!(translated, re2::translate(pattern), "translate is not deterministic");
            match translated {
                Err(e) => {
                    check_reason(&e);
                    assert!(re2::compile(pattern).is_err(), "compile accepted what translate rejected");
                }
                Ok(t) => {
                    assert!(pattern.len() <= MAX_PATTERN_BYTES, "pattern of {} bytes accepted", pattern.len());
                    if let Err(e) = regex_syntax::Parser::new().parse(&t) {
                        panic!("translation {t:?} of {pattern:?} does not parse: {e}");
                    }
                    match re2::compile(pattern) {
                        Ok(re) => {
                            let plain = regex::Regex::new(&t).expect("unlimited build of an accepted translation");
                            let m = re.is_match(&haystack);
                            assert_eq!(m, plain.is_match(&haystack), "{t:?} on {haystack:?}");
                            let _ = re.find_iter(&haystack).count();
                        }
                        Err(e) => {
                            check_reason(&e);
                            assert_eq!(e.reason, "pattern too complex", "translated {t:?} but compile failed");
                        }
                    }
                }
            }
        }
        1 => check_literal(&quote_meta(pattern), pattern, &haystack),
        _ => {
            if pattern.contains(r"\E") {
                return;
            }
            check_literal(&format!(r"\Q{pattern}\E"), pattern, &haystack);
        }
    }
});
