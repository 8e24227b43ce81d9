//! RE2-compatible front end over the `regex` crate (spec §9.2, design §2.4).
//!
//! Users write Google RE2 syntax; matching is an unanchored partial match (like
//! `re2.search`). [`translate`] lexes the RE2 pattern with RE2's own parsing rules and
//! emits an equivalent pattern for Rust's `regex` crate, or rejects it with a short
//! reason. [`compile`] additionally builds the regex under tight size limits.
//!
//! What the translation does:
//! * Perl classes `\d \s \w` (and negations) become explicit ASCII classes, `\b`/`\B`
//!   become `(?-u:\b)`/`(?-u:\B)`; POSIX classes become explicit ASCII ranges.
//! * Every literal is re-emitted escaped, so `[a&&b]`, `[a~~b]`, `[[a]]`, `\<`, `\>`,
//!   `a{,3}` keep RE2's literal meaning; `\Q…\E`, octal `\101`, `\x41`, `\a`, `\v` become
//!   `\x{..}` literals.
//! * `\p{..}` is restricted to the names RE2 knows (case-sensitive general categories,
//!   scripts, `Any`), with `\p{^X}` negation; RE2's `\pC` excludes unassigned code points.
//! * Named groups become plain capture groups (RE2 allows names Rust does not, and
//!   duplicates); flag groups are normalised (`(?i-i)`, `(?)`).
//! * RE2's limits are enforced: repeat counts ≤ 1000, also multiplied through nesting.
//! * Rejected although RE2 accepts them: `\C` (one byte; cannot be emulated on `&str`);
//!   patterns nested deeper than the `regex` crate's nest limit (250); patterns whose
//!   compiled program exceeds 64 KiB (e.g. `\pL\pL`, `.{50}`, `\d{1000}`).
//! * Known match difference: RE2 evaluates `\B` also between the bytes of a multi-byte
//!   character (`\B` matches `"aéa"` in RE2 only).
//! * Unicode tables are the `regex` crate's (Unicode 16) versus RE2's (15.1); scripts new in
//!   Unicode 16 are rejected because RE2 does not know them.
//!
//! Tested against real RE2 by `tests/re2/corpus.tsv` (regenerate with
//! `tests/re2/gen_corpus.py`, PyPI `google-re2`).
#![forbid(unsafe_code)]

use std::fmt;

/// Why an RE2 pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Re2Error {
    /// Short human-readable reason (at most 200 characters, never echoes more than a
    /// short snippet of the pattern).
    pub reason: String,
}

impl fmt::Display for Re2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Re2Error {}

/// Longest accepted pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Compiled-program size limit passed to `RegexBuilder::size_limit`.
const SIZE_LIMIT: usize = 64 * 1024;
/// Lazy-DFA cache limit passed to `RegexBuilder::dfa_size_limit`.
const DFA_SIZE_LIMIT: usize = 1024 * 1024;
/// RE2's maximum repeat count (also bounds the product of nested counted repeats).
const MAX_REPEAT: u64 = 1000;
const MAX_REASON_CHARS: usize = 200;
const MAX_SNIPPET_CHARS: usize = 40;
/// The never-matching class (RE2 accepts surrogate escapes; valid UTF-8 never holds them).
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";
const ANYTHING: &str = r"[\x{0}-\x{10FFFF}]";

/// Unicode scripts accepted by both RE2 (Unicode 15.1 tables) and `regex-syntax`.
#[rustfmt::skip]
const SCRIPTS: &[&str] = &[
    "Adlam", "Ahom", "Anatolian_Hieroglyphs", "Arabic", "Armenian", "Avestan", "Balinese", "Bamum", "Bassa_Vah",
    "Batak", "Bengali", "Bhaiksuki", "Bopomofo", "Brahmi", "Braille", "Buginese", "Buhid", "Canadian_Aboriginal",
    "Carian", "Caucasian_Albanian", "Chakma", "Cham", "Cherokee", "Chorasmian", "Common", "Coptic", "Cuneiform",
    "Cypriot", "Cypro_Minoan", "Cyrillic", "Deseret", "Devanagari", "Dives_Akuru", "Dogra", "Duployan",
    "Egyptian_Hieroglyphs", "Elbasan", "Elymaic", "Ethiopic", "Georgian", "Glagolitic", "Gothic", "Grantha", "Greek",
    "Gujarati", "Gunjala_Gondi", "Gurmukhi", "Han", "Hangul", "Hanifi_Rohingya", "Hanunoo", "Hatran", "Hebrew",
    "Hiragana", "Imperial_Aramaic", "Inherited", "Inscriptional_Pahlavi", "Inscriptional_Parthian", "Javanese",
    "Kaithi", "Kannada", "Katakana", "Kawi", "Kayah_Li", "Kharoshthi", "Khitan_Small_Script", "Khmer", "Khojki",
    "Khudawadi", "Lao", "Latin", "Lepcha", "Limbu", "Linear_A", "Linear_B", "Lisu", "Lycian", "Lydian", "Mahajani",
    "Makasar", "Malayalam", "Mandaic", "Manichaean", "Marchen", "Masaram_Gondi", "Medefaidrin", "Meetei_Mayek",
    "Mende_Kikakui", "Meroitic_Cursive", "Meroitic_Hieroglyphs", "Miao", "Modi", "Mongolian", "Mro", "Multani",
    "Myanmar", "Nabataean", "Nag_Mundari", "Nandinagari", "New_Tai_Lue", "Newa", "Nko", "Nushu",
    "Nyiakeng_Puachue_Hmong", "Ogham", "Ol_Chiki", "Old_Hungarian", "Old_Italic", "Old_North_Arabian", "Old_Permic",
    "Old_Persian", "Old_Sogdian", "Old_South_Arabian", "Old_Turkic", "Old_Uyghur", "Oriya", "Osage", "Osmanya",
    "Pahawh_Hmong", "Palmyrene", "Pau_Cin_Hau", "Phags_Pa", "Phoenician", "Psalter_Pahlavi", "Rejang", "Runic",
    "Samaritan", "Saurashtra", "Sharada", "Shavian", "Siddham", "SignWriting", "Sinhala", "Sogdian", "Sora_Sompeng",
    "Soyombo", "Sundanese", "Syloti_Nagri", "Syriac", "Tagalog", "Tagbanwa", "Tai_Le", "Tai_Tham", "Tai_Viet",
    "Takri", "Tamil", "Tangsa", "Tangut", "Telugu", "Thaana", "Thai", "Tibetan", "Tifinagh", "Tirhuta", "Toto",
    "Ugaritic", "Vai", "Vithkuqi", "Wancho", "Warang_Citi", "Yezidi", "Yi", "Zanabazar_Square",
];

/// General categories accepted by RE2 (`C` is special-cased, see [`unicode_group`]).
const CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd", "Nl", "No", "P",
    "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs",
];

/// RE2's POSIX classes (all ASCII), as inclusive ranges.
const POSIX: &[(&str, &[(u32, u32)])] = &[
    ("alnum", &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)]),
    ("alpha", &[(0x41, 0x5A), (0x61, 0x7A)]),
    ("ascii", &[(0x00, 0x7F)]),
    ("blank", &[(0x09, 0x09), (0x20, 0x20)]),
    ("cntrl", &[(0x00, 0x1F), (0x7F, 0x7F)]),
    ("digit", &[(0x30, 0x39)]),
    ("graph", &[(0x21, 0x7E)]),
    ("lower", &[(0x61, 0x7A)]),
    ("print", &[(0x20, 0x7E)]),
    ("punct", &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)]),
    ("space", &[(0x09, 0x0D), (0x20, 0x20)]),
    ("upper", &[(0x41, 0x5A)]),
    ("word", &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A), (0x5F, 0x5F)]),
    ("xdigit", &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)]),
];

/// RE2's Perl classes `\d \s \w` (ASCII; `\s` has no `\v`).
fn perl_class(c: char) -> Option<(&'static [(u32, u32)], bool)> {
    const D: &[(u32, u32)] = &[(0x30, 0x39)];
    const S: &[(u32, u32)] = &[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)];
    const W: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A), (0x5F, 0x5F)];
    match c {
        'd' => Some((D, false)),
        'D' => Some((D, true)),
        's' => Some((S, false)),
        'S' => Some((S, true)),
        'w' => Some((W, false)),
        'W' => Some((W, true)),
        _ => None,
    }
}

fn err(reason: impl Into<String>) -> Re2Error {
    let mut reason: String = reason.into();
    if reason.chars().count() > MAX_REASON_CHARS {
        reason = reason.chars().take(MAX_REASON_CHARS - 1).collect();
        reason.push('…');
    }
    Re2Error { reason }
}

/// A short, quotable piece of the pattern.
fn snip(s: &str) -> String {
    if s.chars().count() <= MAX_SNIPPET_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX_SNIPPET_CHARS).collect();
        t.push('…');
        t
    }
}

/// Appends one code point as a class endpoint (always unambiguous inside `[...]`).
fn push_class_char(out: &mut String, c: u32) {
    match char::from_u32(c) {
        Some(ch) if ch.is_ascii_alphanumeric() => out.push(ch),
        _ => out.push_str(&format!("\\x{{{c:X}}}")),
    }
}

/// Appends a range to a class body, dropping surrogates (they never match UTF-8 text).
/// Returns whether anything was appended.
fn push_range(out: &mut String, lo: u32, hi: u32) -> bool {
    let mut any = false;
    let mut part = |a: u32, b: u32| {
        push_class_char(out, a);
        if b != a {
            out.push('-');
            push_class_char(out, b);
        }
        any = true;
    };
    if hi < 0xD800 || lo > 0xDFFF {
        part(lo, hi);
    } else {
        if lo < 0xD800 {
            part(lo, 0xD7FF);
        }
        if hi > 0xDFFF {
            part(0xE000, hi);
        }
    }
    any
}

/// A set of ranges as class-body items: inline when positive, nested `[^..]` when negated.
fn ranges_item(ranges: &[(u32, u32)], negated: bool) -> String {
    let mut s = String::new();
    for &(lo, hi) in ranges {
        push_range(&mut s, lo, hi);
    }
    if negated { format!("[^{s}]") } else { s }
}

/// Class-body items for RE2's `\p{name}` (`negated` for `\P`/`^`).
fn unicode_group(name: &str, negated: bool) -> Result<String, Re2Error> {
    let positive = if name == "Any" {
        ranges_item(&[(0, 0x10FFFF)], false)
    } else if name == "C" {
        // RE2's C is Cc|Cf|Co|Cs: no unassigned code points (Rust's \p{C} includes Cn).
        // Surrogates (Cs) never occur in UTF-8 text.
        r"\p{gc=Cc}\p{gc=Cf}\p{gc=Co}".to_string()
    } else if name == "Cs" {
        return Ok(if negated { ranges_item(&[(0, 0x10FFFF)], false) } else { NOTHING.to_string() });
    } else if CATEGORIES.contains(&name) {
        return Ok(format!("\\{}{{gc={name}}}", if negated { 'P' } else { 'p' }));
    } else if SCRIPTS.contains(&name) {
        return Ok(format!("\\{}{{sc={name}}}", if negated { 'P' } else { 'p' }));
    } else {
        return Err(err(format!("unknown Unicode class \\p{{{}}}", snip(name))));
    };
    Ok(if negated { format!("[^{positive}]") } else { positive })
}

/// Why `(?…` is not a valid RE2 group opener; `rest` starts at the `(`.
fn bad_group_reason(rest: &str) -> String {
    let after = &rest[2..];
    let quoted = snip(&rest[..rest.len().min(2 + after.chars().take(4).map(char::len_utf8).sum::<usize>())]);
    if after.starts_with('=') || after.starts_with('!') || after.starts_with("<=") || after.starts_with("<!") {
        "lookaround assertions are not supported".into()
    } else if after.starts_with("P=") {
        "backreferences are not supported".into()
    } else if after.starts_with("P>")
        || after.starts_with('&')
        || after.starts_with('R')
        || after.starts_with(|c: char| c.is_ascii_digit() || c == '+')
    {
        "recursion is not supported".into()
    } else if after.starts_with('>') {
        "atomic groups are not supported".into()
    } else if after.starts_with('#') {
        "comments (?#…) are not supported".into()
    } else if after.starts_with('|') {
        "branch reset groups are not supported".into()
    } else if after.starts_with("P<") || after.starts_with('<') {
        format!("invalid named capture group {quoted}")
    } else {
        match after.chars().find(|c| !matches!(c, 'i' | 'm' | 's' | 'U' | '-')) {
            Some(c) if c.is_alphabetic() => {
                format!("flag {c} is not supported (RE2 supports only i, m, s, U)")
            }
            _ => format!("invalid group syntax {quoted}"),
        }
    }
}

fn is_valid_capture_name(name: &str) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    // RE2 allows Unicode letters, Nl, Mn, Mc, Nd and Pc. Check with a tiny class.
    let hir = regex_syntax::parse(r"[\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]");
    let Ok(hir) = hir else { return false };
    let HirKind::Class(Class::Unicode(cls)) = hir.kind() else { return false };
    !name.is_empty() && name.chars().all(|c| cls.ranges().iter().any(|r| r.start() <= c && c <= r.end()))
}

#[derive(Clone, Copy)]
struct Operand {
    /// Byte range of the operand in the output.
    start: usize,
    end: usize,
    /// Largest product of counted-repeat maxima along any nesting path inside it.
    product: u64,
    /// Whether a repetition operator was already applied to it.
    repeated: bool,
}

#[derive(Clone, Copy)]
struct Frame {
    /// Output offset of this group's opening parenthesis.
    open_at: usize,
    /// The latest operand (what a following repetition operator applies to).
    operand: Option<Operand>,
    /// Largest repeat product among this frame's earlier operands.
    max_product: u64,
}

impl Frame {
    fn new(open_at: usize) -> Self {
        Frame { open_at, operand: None, max_product: 1 }
    }

    fn product(&self) -> u64 {
        self.operand.map_or(self.max_product, |o| o.product.max(self.max_product))
    }
}

struct Translator<'a> {
    pat: &'a str,
    pos: usize,
    out: String,
    stack: Vec<Frame>,
    cur: Frame,
}

impl<'a> Translator<'a> {
    fn rest(&self) -> &'a str {
        &self.pat[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Emits `text` as a new operand.
    fn atom(&mut self, text: &str) {
        self.cur.max_product = self.cur.product();
        let start = self.out.len();
        self.out.push_str(text);
        self.cur.operand = Some(Operand { start, end: self.out.len(), product: 1, repeated: false });
    }

    fn literal(&mut self, c: u32) {
        match char::from_u32(c) {
            None => self.atom(NOTHING),
            Some(ch) if ch.is_ascii_alphanumeric() => self.atom(ch.encode_utf8(&mut [0; 4])),
            Some(ch) if regex_syntax::is_meta_character(ch) => self.atom(&format!("\\{ch}")),
            Some(ch) if ch.is_ascii_graphic() || !(ch.is_ascii() || ch.is_control() || ch.is_whitespace()) => {
                self.atom(ch.encode_utf8(&mut [0; 4]))
            }
            Some(_) => self.atom(&format!("\\x{{{c:X}}}")),
        }
    }

    fn run(mut self) -> Result<String, Re2Error> {
        let mut last_repeat = false;
        while let Some(c) = self.peek() {
            let was_repeat = std::mem::replace(&mut last_repeat, false);
            match c {
                '(' => self.open_group()?,
                ')' => self.close_group()?,
                '|' => {
                    self.bump();
                    self.cur.max_product = self.cur.product();
                    self.cur.operand = None;
                    self.out.push('|');
                }
                '*' | '+' | '?' => {
                    let start = self.pos;
                    self.bump();
                    if self.peek() == Some('?') {
                        self.bump();
                    }
                    let op = &self.pat[start..self.pos];
                    self.repeat(op, op, 1, was_repeat)?;
                    last_repeat = true;
                }
                '{' => match parse_repeat(self.rest()) {
                    None => {
                        self.bump();
                        self.literal('{' as u32);
                    }
                    Some((lo, hi, len)) => {
                        let start = self.pos;
                        self.pos += len;
                        let lazy = self.peek() == Some('?');
                        if lazy {
                            self.bump();
                        }
                        let quoted = snip(&self.pat[start..self.pos]);
                        if was_repeat {
                            return Err(err(format!("bad repetition operator {quoted}")));
                        }
                        if hi.is_some_and(|h| h < lo) {
                            return Err(err(format!("invalid repeat range {quoted} (max below min)")));
                        }
                        if lo > MAX_REPEAT || hi.is_some_and(|h| h > MAX_REPEAT) {
                            return Err(err("repeat count above 1000"));
                        }
                        let op = match hi {
                            Some(h) if h == lo => format!("{{{lo}}}"),
                            Some(h) => format!("{{{lo},{h}}}"),
                            None => format!("{{{lo},}}"),
                        } + if lazy { "?" } else { "" };
                        let factor = hi.unwrap_or(lo).max(1);
                        self.repeat(&op, &quoted, factor, false)?;
                        last_repeat = true;
                    }
                },
                '[' => {
                    let class = self.class()?;
                    self.atom(&class);
                }
                '^' | '$' | '.' => {
                    self.bump();
                    self.atom(c.encode_utf8(&mut [0; 4]));
                }
                '\\' => self.escape()?,
                _ => {
                    self.bump();
                    self.literal(c as u32);
                }
            }
        }
        if !self.stack.is_empty() {
            return Err(err("missing closing )"));
        }
        Ok(self.out)
    }

    /// Applies a repetition operator (already validated) to the latest operand.
    fn repeat(&mut self, op: &str, quoted: &str, factor: u64, stacked: bool) -> Result<(), Re2Error> {
        if stacked {
            return Err(err(format!("bad repetition operator {quoted} (repeats cannot be stacked)")));
        }
        let Some(mut operand) = self.cur.operand else {
            return Err(err(format!("missing argument to repetition operator {quoted}")));
        };
        let product = operand.product.saturating_mul(factor);
        if product > MAX_REPEAT {
            return Err(err("repeat count above 1000 (nested repeats multiply)"));
        }
        if operand.repeated {
            // RE2 applies it to the repeated operand; make that explicit for Rust.
            self.out.insert_str(operand.start, "(?:");
            operand.end += 3;
            self.out.insert(operand.end, ')');
            operand.end += 1;
        }
        self.out.insert_str(operand.end, op);
        operand.end += op.len();
        operand.product = product;
        operand.repeated = true;
        self.cur.operand = Some(operand);
        Ok(())
    }

    fn open_group(&mut self) -> Result<(), Re2Error> {
        let rest = self.rest();
        if !rest.starts_with("(?") {
            self.bump();
            self.push_group("(");
            return Ok(());
        }
        // Named capture: (?P<name> or (?<name> (not (?<= / (?<!).
        let named = rest.starts_with("(?P<")
            || (rest.starts_with("(?<") && !rest.starts_with("(?<=") && !rest.starts_with("(?<!"));
        if named {
            let begin = if rest.as_bytes()[2] == b'P' { 4 } else { 3 };
            let Some(end) = rest[2..].find('>').map(|e| e + 2) else {
                return Err(err(format!("invalid named capture group {}", snip(rest))));
            };
            let name = &rest[begin..end];
            if !is_valid_capture_name(name) {
                return Err(err(format!("invalid named capture group {}", snip(&rest[..=end]))));
            }
            self.pos += end + 1;
            // Names do not affect matching; RE2 allows names (and duplicates) Rust rejects.
            self.push_group("(");
            return Ok(());
        }
        // Flags: (?flags) or (?flags:
        let mut on = String::new();
        let mut off = String::new();
        let mut negated = false;
        let mut saw_flag = false;
        let mut len = 2;
        let opens_group = loop {
            let Some(c) = rest[len..].chars().next() else {
                return Err(err(format!("missing closing ) after {}", snip(rest))));
            };
            len += c.len_utf8();
            match c {
                'i' | 'm' | 's' | 'U' => {
                    saw_flag = true;
                    let (add, remove) = if negated { (&mut off, &mut on) } else { (&mut on, &mut off) };
                    remove.retain(|f| f != c);
                    if !add.contains(c) {
                        add.push(c);
                    }
                }
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' => break true,
                ')' => break false,
                _ => return Err(err(bad_group_reason(rest))),
            }
        };
        if negated && !saw_flag {
            return Err(err(format!("invalid flag group {}", snip(&rest[..len]))));
        }
        self.pos += len;
        let flags = match (on.is_empty(), off.is_empty()) {
            (true, true) => String::new(),
            (false, true) => on,
            (_, false) => format!("{on}-{off}"),
        };
        if opens_group {
            self.push_group(&format!("(?{flags}:"));
        } else if !flags.is_empty() {
            // Not an operand: a following repetition applies to the previous operand.
            self.out.push_str(&format!("(?{flags})"));
        }
        Ok(())
    }

    fn push_group(&mut self, opener: &str) {
        self.cur.max_product = self.cur.product();
        self.stack.push(self.cur);
        self.cur = Frame::new(self.out.len());
        self.out.push_str(opener);
    }

    fn close_group(&mut self) -> Result<(), Re2Error> {
        self.bump();
        let Some(outer) = self.stack.pop() else {
            return Err(err("unexpected ) without matching ("));
        };
        self.out.push(')');
        let product = self.cur.product();
        let start = self.cur.open_at;
        self.cur = outer;
        self.cur.operand = Some(Operand { start, end: self.out.len(), product, repeated: false });
        Ok(())
    }

    /// A backslash sequence outside a class.
    fn escape(&mut self) -> Result<(), Re2Error> {
        match self.peek2() {
            Some('b') => {
                self.pos += 2;
                self.atom(r"(?-u:\b)");
            }
            Some('B') => {
                self.pos += 2;
                self.atom(r"(?-u:\B)");
            }
            Some('A') => {
                self.pos += 2;
                self.atom(r"\A");
            }
            Some('z') => {
                self.pos += 2;
                self.atom(r"\z");
            }
            Some('Z') => return Err(err(r"\Z is not supported (use \z or $)")),
            Some('C') => return Err(err(r"\C (match any byte) is not supported")),
            Some('Q') => {
                self.pos += 2;
                while !self.rest().is_empty() {
                    if self.rest().starts_with(r"\E") {
                        self.pos += 2;
                        break;
                    }
                    if let Some(c) = self.bump() {
                        self.literal(c as u32);
                    }
                }
            }
            Some('p' | 'P') => {
                let items = self.unicode_escape()?;
                self.atom(&format!("[{items}]"));
            }
            Some(c) if perl_class(c).is_some() => {
                self.pos += 2;
                if let Some((ranges, negated)) = perl_class(c) {
                    let items = ranges_item(ranges, false);
                    self.atom(&if negated { format!("[^{items}]") } else { format!("[{items}]") });
                }
            }
            _ => {
                let c = self.parse_escape()?;
                self.literal(c);
            }
        }
        Ok(())
    }

    /// `\p{..}`/`\pX` at the current position, as class-body items.
    fn unicode_escape(&mut self) -> Result<String, Re2Error> {
        let start = self.pos;
        let negated = self.peek2() == Some('P');
        self.pos += 2;
        let name = match self.bump() {
            None => return Err(err(r"incomplete \p escape")),
            Some('{') => {
                let Some(end) = self.rest().find('}') else {
                    return Err(err(format!("missing }} in {}", snip(&self.pat[start..]))));
                };
                let name = &self.rest()[..end];
                self.pos += end + 1;
                name
            }
            Some(_) => &self.pat[start + 2..self.pos],
        };
        match name.strip_prefix('^') {
            Some(name) => unicode_group(name, !negated),
            None => unicode_group(name, negated),
        }
    }

    /// RE2's `ParseEscape`: a single code point from a backslash sequence.
    fn parse_escape(&mut self) -> Result<u32, Re2Error> {
        self.bump(); // backslash
        let Some(c) = self.bump() else {
            return Err(err("trailing backslash at end of pattern"));
        };
        let digit = |c: Option<char>| c.and_then(|c| c.to_digit(8));
        match c {
            '1'..='7' if digit(self.peek()).is_none() => Err(err("backreferences are not supported")),
            '0'..='7' => {
                let mut code = c as u32 - '0' as u32;
                for _ in 0..2 {
                    match digit(self.peek()) {
                        Some(d) => {
                            code = code * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                Ok(code)
            }
            '8' | '9' | 'k' | 'g' => Err(err("backreferences are not supported")),
            'x' => {
                let bad = || err(r"invalid hex escape (use \xHH or \x{HHHH})");
                if self.peek() == Some('{') {
                    self.bump();
                    let mut code: u32 = 0;
                    let mut digits = 0;
                    loop {
                        match self.bump() {
                            Some('}') if digits > 0 => return Ok(code),
                            Some(h) if h.is_ascii_hexdigit() => {
                                code = code * 16 + h.to_digit(16).unwrap_or(0);
                                digits += 1;
                                if code > 0x10FFFF {
                                    return Err(bad());
                                }
                            }
                            _ => return Err(bad()),
                        }
                    }
                }
                let hi = self.bump().and_then(|h| h.to_digit(16));
                let lo = self.bump().and_then(|h| h.to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => Ok(hi * 16 + lo),
                    _ => Err(bad()),
                }
            }
            'a' => Ok(0x07),
            'f' => Ok(0x0C),
            'n' => Ok(0x0A),
            'r' => Ok(0x0D),
            't' => Ok(0x09),
            'v' => Ok(0x0B),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c as u32),
            c => Err(err(format!("invalid escape sequence \\{c}"))),
        }
    }

    /// A bracketed class at the current position, as a Rust class.
    fn class(&mut self) -> Result<String, Re2Error> {
        let start = self.pos;
        self.bump(); // '['
        let negated = self.peek() == Some('^');
        if negated {
            self.bump();
        }
        let missing = || err("missing closing ]");
        let mut items = String::new();
        let mut first = true;
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Err(missing());
            }
            if rest.starts_with(']') && !first {
                self.bump();
                break;
            }
            first = false;
            // RE2 looks for the closing ":]" anywhere in the rest of the pattern.
            if rest.len() > 2
                && rest.starts_with("[:")
                && let Some(end) = rest[2..].find(":]").map(|e| e + 4)
            {
                let name = &rest[..end];
                let (neg, bare) = match name[2..end - 2].strip_prefix('^') {
                    Some(bare) => (true, bare),
                    None => (false, &name[2..end - 2]),
                };
                let Some((_, ranges)) = POSIX.iter().find(|(n, _)| *n == bare) else {
                    return Err(err(format!("unknown POSIX class {}", snip(name))));
                };
                items.push_str(&ranges_item(ranges, neg));
                self.pos += end;
                continue;
            }
            if rest.len() > 2 && (rest.starts_with(r"\p") || rest.starts_with(r"\P")) {
                items.push_str(&self.unicode_escape()?);
                continue;
            }
            if rest.len() > 1
                && rest.starts_with('\\')
                && let Some((ranges, neg)) = self.peek2().and_then(perl_class)
            {
                items.push_str(&ranges_item(ranges, neg));
                self.pos += 2;
                continue;
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            let rest = self.rest();
            if rest.len() >= 2 && rest.starts_with('-') && !rest[1..].starts_with(']') {
                self.bump();
                hi = self.class_char()?;
                if hi < lo {
                    return Err(err(format!("invalid class range in {}", snip(&self.pat[start..self.pos]))));
                }
            }
            push_range(&mut items, lo, hi);
        }
        Ok(match (items.is_empty(), negated) {
            (true, false) => NOTHING.to_string(),
            (true, true) => ANYTHING.to_string(),
            (false, false) => format!("[{items}]"),
            (false, true) => format!("[^{items}]"),
        })
    }

    fn class_char(&mut self) -> Result<u32, Re2Error> {
        match self.peek() {
            None => Err(err("missing closing ]")),
            Some('\\') => self.parse_escape(),
            Some(c) => {
                self.bump();
                Ok(c as u32)
            }
        }
    }
}

/// RE2's `MaybeParseRepeat` on `{...`: `(min, max, length)`; `max` is `None` for `{n,}`.
/// Returns `None` when the text is not a repeat (RE2 then treats `{` as a literal).
fn parse_repeat(s: &str) -> Option<(u64, Option<u64>, usize)> {
    fn int(b: &[u8], i: &mut usize) -> Option<u64> {
        let start = *i;
        let mut n: u64 = 0;
        while let Some(d) = b.get(*i).filter(|d| d.is_ascii_digit()) {
            if n >= 100_000_000 {
                return None;
            }
            n = n * 10 + u64::from(d - b'0');
            *i += 1;
        }
        // At least one digit, no leading zeros.
        if *i == start || (*i - start > 1 && b[start] == b'0') {
            return None;
        }
        Some(n)
    }
    let b = s.as_bytes();
    let mut i = 1;
    let lo = int(b, &mut i)?;
    let hi = if b.get(i) == Some(&b',') {
        i += 1;
        if b.get(i) == Some(&b'}') { None } else { Some(int(b, &mut i)?) }
    } else {
        Some(lo)
    };
    (b.get(i) == Some(&b'}')).then_some((lo, hi, i + 1))
}

/// Translates an RE2 pattern to an equivalent pattern for the `regex` crate, or rejects it.
pub fn translate(pattern: &str) -> Result<String, Re2Error> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(err(format!("pattern too long (max {MAX_PATTERN_BYTES} bytes)")));
    }
    let out = Translator { pat: pattern, pos: 0, out: String::new(), stack: Vec::new(), cur: Frame::new(0) }.run()?;
    regex_syntax::ParserBuilder::new().build().parse(&out).map_err(|e| syntax_reason(&e.to_string()))?;
    Ok(out)
}

fn syntax_reason(msg: &str) -> Re2Error {
    if msg.contains("nest") {
        return err("pattern nests too deeply");
    }
    let last = msg.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let last = last.trim().trim_start_matches("error:").trim();
    err(format!("unsupported pattern: {}", snip(last)))
}

/// Translates an RE2 pattern and builds it with bounded compiled and DFA sizes.
pub fn compile(pattern: &str) -> Result<regex::Regex, Re2Error> {
    let translated = translate(pattern)?;
    regex::RegexBuilder::new(&translated).size_limit(SIZE_LIMIT).dfa_size_limit(DFA_SIZE_LIMIT).build().map_err(|e| {
        match e {
            regex::Error::CompiledTooBig(_) => err("pattern too complex"),
            regex::Error::Syntax(msg) => syntax_reason(&msg),
            _ => err("pattern could not be compiled"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, haystack: &str) -> bool {
        match compile(pattern) {
            Ok(re) => re.is_match(haystack),
            Err(e) => panic!("{pattern:?} rejected: {e}"),
        }
    }

    fn reason(pattern: &str) -> String {
        match compile(pattern) {
            Ok(re) => panic!("{pattern:?} accepted as {:?}", re.as_str()),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert!(matches(r"\d", "7"));
        assert!(!matches(r"\d", "\u{663}"));
        assert!(matches(r"\D", "\u{663}"));
        assert!(matches(r"\w", "_"));
        assert!(!matches(r"\w", "é"));
        assert!(matches(r"\W", "é"));
        assert!(matches(r"\s", "\t\n\x0C\r "));
        assert!(!matches(r"\s", "\x0B"));
        assert!(!matches(r"\s", "\u{a0}"));
        assert!(matches(r"\S", "\u{a0}"));
        assert!(matches(r"[\d_]", "_"));
        assert!(!matches(r"[\d_]", "\u{663}"));
        assert!(matches(r"[^\D]", "5"));
        assert!(matches(r"[\d-z]", "-"));
        assert!(matches(r"(?i)\w", "ſ"));
        assert!(!matches(r"(?i)\W", "ſ"));
    }

    #[test]
    fn word_boundaries_are_ascii() {
        assert!(matches(r"\bfoo\b", "a foo b"));
        assert!(matches(r"\bfoo\b", "éfooé"));
        assert!(!matches(r"\bfoo\b", "afoo"));
        assert!(matches(r"é\B", "é"));
        assert!(!matches(r"\b", "é"));
        assert_eq!(translate(r"\b\B").unwrap(), r"(?-u:\b)(?-u:\B)");
    }

    #[test]
    fn quoted_literals() {
        assert!(matches(r"\Qa.b\E", "a.b"));
        assert!(!matches(r"\Qa.b\E", "axb"));
        assert!(matches(r"\Qa.b", "xa.b"));
        assert!(matches(r"\Q(a)\E+", "(a)))"));
        assert!(matches(r"^\Qab\E*$", "a"));
        assert!(matches(r"\Qa\\E", "a\\"));
        assert!(reason(r"\Q\E*").contains("missing argument"));
        assert!(reason(r"\Ea").contains("invalid escape"));
    }

    #[test]
    fn any_byte_is_rejected() {
        assert!(reason(r"\C").contains(r"\C"));
        assert!(reason(r"a\Cb").contains(r"\C"));
    }

    #[test]
    fn octal_and_hex_escapes() {
        assert!(matches(r"\101", "A"));
        assert_eq!(translate(r"\101").unwrap(), "A");
        assert!(matches(r"^\0$", "\0"));
        assert!(matches(r"^\012$", "\n"));
        assert!(matches(r"^\0123$", "\n3"));
        assert!(matches(r"^\12$", "\n"));
        assert!(matches(r"^\777$", "\u{1ff}"));
        assert!(matches(r"^\x41\x{1F600}$", "A\u{1F600}"));
        assert!(matches(r"^\a\f\t\n\r\v$", "\x07\x0C\t\n\r\x0B"));
        assert!(reason(r"\1").contains("backreference"));
        assert!(reason(r"(a)\1").contains("backreference"));
        assert!(reason(r"\18").contains("backreference"));
        assert!(reason(r"\8").contains("backreference"));
        assert!(reason(r"\x4").contains("hex"));
        assert!(reason(r"\x{110000}").contains("hex"));
        assert!(reason(r"\e").contains("invalid escape"));
        assert!(!matches(r"\x{D800}", "a"));
        assert!(matches(r"[\x{D7FF}-\x{E000}]", "\u{e000}"));
        assert!(matches(r"[^\x{D800}]", "a"));
    }

    #[test]
    fn malformed_counted_repeats_are_literals() {
        assert!(matches("^a{,3}$", "a{,3}"));
        assert!(!matches("a{,3}", "aa"));
        assert!(matches("^a{01}$", "a{01}"));
        assert!(matches("^a{ 1}$", "a{ 1}"));
        assert!(matches("^a{1,$", "a{1,"));
        assert!(matches("^a{1000000000}$", "a{1000000000}"));
        assert!(matches("^{}$", "{}"));
        assert!(reason("{2}").contains("missing argument"));
    }

    #[test]
    fn class_set_operators_are_literals() {
        assert!(matches("[a&&b]", "&"));
        assert!(matches("[a&&b]", "b"));
        assert!(matches("[a~~b]", "~"));
        assert!(matches("^[a-z&&[aeiou]]$", "&]"));
        assert!(matches("^[[a]]$", "a]"));
        assert!(!matches("^[[a]]$", "a"));
        assert!(matches("[]a]", "]"));
        assert!(matches("[^]a]", "b"));
        assert!(!matches("[^]a]", "]"));
        assert!(matches("[--]", "-"));
        assert!(matches("[a-b-c]", "-"));
        assert!(reason("[a--b]").contains("range"));
        assert!(reason("[z-a]").contains("range"));
        assert!(reason("[]").contains("]"));
        assert!(reason("[a").contains("]"));
    }

    #[test]
    fn angle_escapes_are_literals() {
        assert!(matches(r"\<a\>", "<a>"));
        assert!(!matches(r"\<a\>", "a"));
    }

    #[test]
    fn flags() {
        assert!(matches("(?i)abc", "xABCx"));
        assert!(matches("(?i:a)b", "Ab"));
        assert!(!matches("(?i:a)b", "AB"));
        assert!(matches("(?m)^b$", "a\nb\nc"));
        assert!(!matches("^b$", "a\nb\nc"));
        assert!(matches("(?s).", "\n"));
        assert!(!matches(".", "\n"));
        assert!(matches("(?ii)a", "A"));
        assert!(!matches("(?i-i)a", "A"));
        assert!(matches("(?)a", "a"));
        assert!(matches("^ab(?i)*$", "abbb"));
        assert!(matches("(?i)Σ", "ς"));
        assert!(reason("(?x)a").contains("flag x"));
        assert!(reason("(?u)a").contains("flag u"));
        assert!(reason("(?R)").contains("recursion"));
        assert!(reason("(?-)a").contains("flag"));
        assert!(reason("(?i)*").contains("missing argument"));
        assert!(reason("(?#c)").contains("comment"));
        assert!(reason("(?>a)").contains("atomic"));
    }

    #[test]
    fn groups_pass_through() {
        assert!(matches("(?P<n>a)", "a"));
        assert!(matches("(?<n>a)", "a"));
        assert!(matches("(?P<n>a)(?P<n>b)", "ab"));
        assert!(matches("(?P<1a>a)", "a"));
        assert!(matches("(?P<é>a)", "a"));
        assert!(reason("(?P<a.b>a)").contains("named capture"));
        assert!(reason("(?P<>a)").contains("named capture"));
        assert!(reason("(?P=n)").contains("backreference"));
        assert!(reason(r"\k<n>").contains("backreference"));
        assert!(reason("(a").contains("missing closing )"));
        assert!(reason("a)").contains("unexpected )"));
    }

    #[test]
    fn unicode_and_posix_classes() {
        assert!(matches(r"\p{Greek}", "α"));
        assert!(!matches(r"\p{Greek}", "a"));
        assert!(matches(r"\pN", "\u{663}"));
        assert!(matches(r"\p{^Greek}", "a"));
        assert!(matches(r"\P{^Greek}", "α"));
        assert!(matches(r"^\pLu$", "Au"));
        assert!(matches(r"(?i)\p{Lu}", "a"));
        assert!(matches(r"\pC", "\x01"));
        assert!(!matches(r"\pC", "\u{378}"));
        assert!(matches(r"\PC", "\u{378}"));
        assert!(matches(r"[^\pC]", "\u{378}"));
        assert!(matches(r"\p{Any}", "x"));
        assert!(reason(r"\p{Cn}").contains("Unicode class"));
        assert!(reason(r"\p{greek}").contains("Unicode class"));
        assert!(reason(r"\p{Letter}").contains("Unicode class"));
        assert!(reason(r"\pX").contains("Unicode class"));
        assert!(reason(r"\p{L").contains("missing }"));
        assert!(matches("[[:alpha:]]", "q"));
        assert!(!matches("[[:alpha:]]", "é"));
        assert!(matches("[[:^alpha:]]", "é"));
        assert!(matches("[[:space:]]", "\x0B"));
        assert!(matches("(?i)[[:upper:]]", "a"));
        assert!(!matches("(?i)[[:^upper:]]", "a"));
        assert!(matches("^[[:alpha]$", ":"));
        assert!(reason("[[:foo:]]").contains("POSIX"));
    }

    #[test]
    fn repeat_limits() {
        assert!(matches("a{1000}", &"a".repeat(1000)));
        assert_eq!(reason("a{1001}"), "repeat count above 1000");
        assert_eq!(reason("a{2,1001}"), "repeat count above 1000");
        assert_eq!(reason("a{1001,}"), "repeat count above 1000");
        assert!(reason("(a{10}){101}").contains("above 1000"));
        assert!(reason("(?:(?:a{2}){1}){501}").contains("above 1000"));
        assert!(matches("((a{2}){0,1}){50}", ""));
        assert!(matches("(a*){100}", ""));
        assert!(matches(r"^\p{Cs}?$", ""));
        assert!(matches(r"\P{Cs}", "a"));
        assert!(reason("a{2,1}").contains("max below min"));
        assert!(reason("a**").contains("bad repetition"));
        assert!(reason("a{2}{3}").contains("bad repetition"));
        assert!(reason("a{2}??").contains("bad repetition"));
        assert!(reason("*").contains("missing argument"));
        assert!(reason("x|{2}").contains("missing argument"));
        assert!(matches("^a*\\Q\\E*$", "aaa"));
        assert!(matches("^*", "a"));
        assert_eq!(reason("((a{100}){10}){1}x{1000}.{100}"), "pattern too complex");
        assert_eq!(reason(r"\pL{1000}"), "pattern too complex");
    }

    #[test]
    fn anchors_and_empty() {
        assert!(matches(r"\Aa\z", "a"));
        assert!(!matches(r"a\z", "a\n"));
        assert!(!matches("a$", "a\n"));
        assert!(matches("", ""));
        assert!(matches("", "anything"));
        assert!(reason(r"\Z").contains(r"\Z"));
        assert!(reason(r"(?=a)").contains("lookaround"));
        assert!(reason(r"(?!a)").contains("lookaround"));
        assert!(reason(r"(?<=a)b").contains("lookaround"));
        assert!(reason(r"(?<!a)b").contains("lookaround"));
        assert!(reason("\\").contains("trailing"));
    }

    #[test]
    fn length_and_nesting_limits() {
        let ok = "a".repeat(MAX_PATTERN_BYTES);
        assert!(compile(&ok).is_ok());
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert_eq!(reason(&long), "pattern too long (max 1024 bytes)");
        let deep = format!("{}{}", "(".repeat(300), ")".repeat(300));
        assert_eq!(reason(&deep), "pattern nests too deeply");
    }

    #[test]
    fn reasons_are_short_and_do_not_echo_input() {
        let secret = "s".repeat(500);
        for p in [
            format!("(?P<{secret}"),
            format!("[{secret}"),
            format!(r"\p{{{secret}}}"),
            format!("(?P<{secret}.>a)"),
            format!("[[:{secret}:]]"),
            format!("(?x{secret})"),
        ] {
            let r = reason(&p);
            assert!(r.chars().count() <= 200, "{r}");
            assert!(!r.contains(&"s".repeat(61)), "{r}");
        }
        let e = compile("a{1001}").unwrap_err();
        assert_eq!(e.to_string(), e.reason);
    }

    /// Decodes one JSON string literal (the corpus's column encoding).
    fn json_string(s: &str) -> String {
        let inner = s.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
        let inner = inner.unwrap_or_else(|| panic!("not a JSON string: {s}"));
        let mut out = String::new();
        let mut chars = inner.chars();
        let mut pending_high: Option<u32> = None;
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = chars.next().expect("escape");
            let simple = match e {
                '"' => Some('"'),
                '\\' => Some('\\'),
                '/' => Some('/'),
                'b' => Some('\x08'),
                'f' => Some('\x0C'),
                'n' => Some('\n'),
                'r' => Some('\r'),
                't' => Some('\t'),
                _ => None,
            };
            if let Some(ch) = simple {
                out.push(ch);
                continue;
            }
            assert_eq!(e, 'u', "bad escape in {s}");
            let hex: String = chars.by_ref().take(4).collect();
            let unit = u32::from_str_radix(&hex, 16).expect("hex");
            match (pending_high.take(), unit) {
                (None, 0xD800..=0xDBFF) => pending_high = Some(unit),
                (Some(hi), 0xDC00..=0xDFFF) => {
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (unit - 0xDC00);
                    out.push(char::from_u32(cp).expect("scalar"));
                }
                (None, _) => out.push(char::from_u32(unit).expect("scalar")),
                (Some(_), _) => panic!("unpaired surrogate in {s}"),
            }
        }
        out
    }

    #[test]
    fn json_decoder() {
        assert_eq!(json_string(r#""a\tb\n\"\\\u00e9\ud83d\ude00""#), "a\tb\n\"\\é\u{1F600}");
    }

    /// Differential test against real RE2 (`tests/re2/gen_corpus.py`, PyPI google-re2).
    #[test]
    fn corpus_agrees_with_re2() {
        // RE2 accepts these, we reject on purpose.
        let deliberate: &[(&str, &str)] = &[
            (r"\C", "matches a single byte; cannot be emulated on UTF-8 text"),
            (r"a\Cb", "matches a single byte; cannot be emulated on UTF-8 text"),
            (r"\pL{1000}", "compiled program above the 64 KiB size limit"),
            ("((a{2}){0,1}){500}", "compiled program above the 64 KiB size limit"),
            ("(a*){1000}", "compiled program above the 64 KiB size limit"),
        ];
        // Accepted by both; the result differs on purpose.
        let known_mismatch: &[(&str, &str, &str)] =
            &[(r"\B", "aéa", "RE2 also tests \\B between the bytes of a multi-byte character")];
        let corpus = include_str!("../../tests/re2/corpus.tsv");
        let mut cases = 0;
        let mut failures = Vec::new();
        for line in corpus.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "bad corpus line: {line}");
            let pattern = json_string(cols[0]);
            let haystack = json_string(cols[1]);
            let (accept, matched) = (cols[2] == "1", cols[3] == "1");
            cases += 1;
            let ours = compile(&pattern);
            let limit = pattern.len() > MAX_PATTERN_BYTES
                || ours.as_ref().is_err_and(|e| e.reason == "pattern nests too deeply");
            if accept && (limit || deliberate.iter().any(|(p, _)| *p == pattern)) {
                if ours.is_ok() {
                    failures.push(format!("{pattern:?}: expected a deliberate rejection"));
                }
                continue;
            }
            match ours {
                Err(e) if accept => failures.push(format!("{pattern:?}: RE2 accepts, we reject: {e}")),
                Ok(re) if !accept => {
                    failures.push(format!("{pattern:?}: RE2 rejects, we accept as {:?}", re.as_str()));
                }
                Ok(re) => {
                    let expected = if known_mismatch.iter().any(|(p, h, _)| *p == pattern && *h == haystack) {
                        !matched
                    } else {
                        matched
                    };
                    if re.is_match(&haystack) != expected {
                        failures.push(format!(
                            "{pattern:?} on {haystack:?}: RE2 match={matched}, ours as {:?}",
                            re.as_str()
                        ));
                    }
                }
                Err(_) => {}
            }
        }
        assert!(cases >= 150, "corpus too small: {cases}");
        assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
    }
}
