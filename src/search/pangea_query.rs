//! Pangea search query language (spec `pangea-api.md` §7) → AST → parameterised SQL.
//!
//! Grammar (§7.2), precedence NOT (`-`) > AND (implicit or `AND`) > OR:
//!
//! ```text
//! query    = ws* [ or_expr ] ws*
//! or_expr  = and_expr { ws+ "OR" ws+ and_expr }
//! and_expr = unary { ( ws+ "AND" ws+ | ws+ ) unary }
//! unary    = [ "-" ] primary
//! primary  = "(" ws* or_expr ws* ")" | term
//! term     = [ field op ] value
//! field    = [a-z_][a-z0-9_]*            ; only when immediately followed by op
//! op       = ":" | "=" | ">=" | "<=" | ">" | "<"
//! value    = quoted | bare
//! quoted   = '"' { any char except '"' and '\'  |  '\"'  |  '\\' } '"'
//! bare     = 1*( any char except whitespace, '"', '(', ')' )
//! ```
//!
//! Decisions on the cases the grammar leaves open (all covered by tests):
//!
//! * Only the unquoted, uppercase words `AND` and `OR` are operators; `NOT` is *reserved*: an
//!   unquoted `NOT` is a syntax error (a user typing `NOT x` expects negation, and silently
//!   searching for the text "NOT" would be wrong). Write `-x` to negate, `"NOT"` to search for
//!   the word. Lowercase `and`/`or`/`not` are ordinary terms. After an op the value is always
//!   a value: `actor:AND` searches actors containing "AND".
//! * The grammar is applied strictly: two operands must be separated by whitespace, and
//!   `AND`/`OR` must have whitespace on both sides. So `NEAR(a b)`, `a(b)`, `(a)(b)`,
//!   `foo"bar"`, `"a"b` and `a OR(b)` are syntax errors (at the token that follows without a
//!   space). FTS5 syntax (`NEAR(`) is therefore rejected instead of being silently misread.
//! * `*` has no special meaning: it is an ordinary character matched literally.
//! * A word that starts like a field name and is immediately followed by an op *is* a
//!   field term, so its field must be one of [`FIELDS`]: `http://example.com` is an error
//!   `unknown field 'http'`. Quote such values (`"http://example.com"`) or give a field
//!   (`target:http://example.com`; the value keeps its later `:`). Words that do not start
//!   with `[a-z_]` are bare (`OPS-306`, `Actor:x`, `12:30`).
//! * `-` negates only when it is immediately followed by something (`-x`, `-"a b"`, `-(a b)`);
//!   a lone `-` (followed by whitespace, `)` or the end) is the bare value `-`. `--x` is
//!   NOT(bare `-x`).
//! * An op with no value (`actor:`, `actor: x`, `(actor:)`) is `syntax error at actor:`. Use
//!   `actor:""` for "field exists".
//! * In quoted values only `\"` and `\\` are escapes; any other backslash sequence is a
//!   syntax error. In bare values `\` is an ordinary character.
//! * Comparisons `>`, `>=`, `<`, `<=` are allowed only on `timestamp` and `received_at`; the
//!   value must be an RFC 3339 date-time: the §5.2 pattern (1–2 digit fields, `T`, optional
//!   fraction, offset `Z`, `±H[H]`, `±HHMM`, `±H[H]:M[M]` or none = UTC), also accepting
//!   lowercase `t`/`z` and more than 6 fraction digits (compared exactly: sub-µs parts round
//!   the bound in the direction that keeps the comparison exact on µs values).
//! * Limits: 4096 bytes, 64 terms, and 32 nested parentheses (bounds the recursion).
//! * Error details are at most 200 chars (offending tokens are clipped).
//!
//! SQL: every user value becomes a bound `?` parameter; the SQL text only holds what
//! [`Columns`] returns and fixed keywords. Every generated expression is non-NULL, so `NOT`
//! is a true complement (a missing field makes `f:v` false and `-f:v` true).

use rusqlite::types::Value;

use super::catalog::{Catalog, FieldKind};

/// Maximum query length in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Maximum number of terms in a query.
pub const MAX_TERMS: usize = 64;
/// Maximum nesting of parentheses.
pub const MAX_DEPTH: usize = 32;

/// Fields allowed before an op.
pub const FIELDS: &[&str] = &[
    "actor",
    "action",
    "message",
    "new",
    "old",
    "source",
    "status",
    "target",
    "tenant_id",
    "timestamp",
    "received_at",
    "text",
];

/// The full-text pseudo-field (an extension): `text:word` matches events whose indexed text
/// contains every word of the value as a whole word (FTS5), e.g. `text:"disk full"`.
pub const FULLTEXT_FIELD: &str = "text";

/// Fields that accept the comparisons `>`, `>=`, `<`, `<=`.
const TIME_FIELDS: &[&str] = &["timestamp", "received_at"];

/// A query that cannot be parsed. `detail` is meant for a `BadFormat` validation error at
/// `/query` and is at most 200 characters long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub detail: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for QueryError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `f:v` (and bare terms): case-sensitive substring.
    Contains,
    /// `f=v`: exact equality.
    Equals,
    /// `f>v`
    Gt,
    /// `f>=v`
    Ge,
    /// `f<v`
    Lt,
    /// `f<=v`
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// `None` for a bare term (matches if any of [`Columns::bare_fields`] contains it).
    pub field: Option<String>,
    pub op: Op,
    /// The unescaped value. For comparisons, the RFC 3339 text as written.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Term(Term),
}

static STANDARD: std::sync::LazyLock<Catalog> = std::sync::LazyLock::new(Catalog::standard);

/// Parse per §7.2 against the default config's fields. Returns `Ok(None)` for an
/// empty/whitespace query (matches everything). `message:""` means "message exists".
/// Comparisons `>`,`<`,`>=`,`<=` are only allowed for `timestamp`/`received_at`, and their value
/// must be RFC 3339 (else `QueryError`).
pub fn parse(q: &str) -> Result<Option<Expr>, QueryError> {
    parse_in(q, &STANDARD)
}

/// Parse per §7.2 against the fields of one config (`catalog`): field names must be its
/// searchable fields (or `text`, the full-text pseudo-field, unless the config has a field of
/// that name); comparisons are allowed on time, datetime, integer and boolean fields; values of
/// integer, boolean and datetime fields must parse as such.
pub fn parse_in(q: &str, catalog: &Catalog) -> Result<Option<Expr>, QueryError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(error(format!("query too long (max {MAX_QUERY_BYTES} bytes)")));
    }
    let mut p = Parser { s: q, pos: 0, terms: 0, depth: 0, catalog };
    p.skip_ws();
    if p.at_end() {
        return Ok(None);
    }
    let e = p.or_expr()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.syntax_here());
    }
    Ok(Some(e))
}

/// How a Pangea field maps to SQL. The caller supplies it.
pub trait Columns {
    /// SQL expression yielding the field's TEXT value or NULL when absent (e.g. "e.actor").
    /// Called with names from [`FIELDS`] (for parsed queries) and from [`Columns::bare_fields`].
    fn text(&self, field: &str) -> String;
    /// SQL expression yielding an integer microseconds-since-epoch for timestamp/received_at
    /// comparisons (NULL if absent).
    fn micros(&self, field: &str) -> String;
    /// Fields a bare term (no field) searches: the term matches if ANY of them contains it.
    /// These are field *names*: each is passed to [`Columns::text`].
    fn bare_fields(&self) -> Vec<String>;
    /// SQL yielding a boolean for a full-text match against the bound FTS5 query `?`
    /// (e.g. `e.seq IN (SELECT rowid FROM fts WHERE fts MATCH ?)`); `None` if unsupported.
    fn fulltext(&self) -> Option<String> {
        None
    }
    /// For a field stored as an id into an interned table (`strings(id, value)`, `value` unique):
    /// the id column (e.g. `e.actor`, never NULL). A contains or equals test on it is then
    /// decided once per statement over the distinct texts (`id IN (SELECT id FROM strings …)`),
    /// not by reading the text back for every row; the answer is the one [`Columns::text`]'s
    /// expression (`NULLIF(text, '')`) gives.
    fn interned(&self, _field: &str) -> Option<String> {
        None
    }
    /// How the field compares (default: `timestamp` and `received_at` are [`FieldKind::Time`],
    /// every other field [`FieldKind::Text`]).
    fn kind(&self, field: &str) -> FieldKind {
        if TIME_FIELDS.contains(&field) { FieldKind::Time } else { FieldKind::Text }
    }
    /// SQL expression yielding the INTEGER value of an integer, boolean (0/1) or datetime (µs)
    /// field, or NULL when absent.
    fn typed(&self, field: &str) -> String {
        let _ = field;
        "NULL".into()
    }
    /// Whether `field` in a term means the full-text pseudo-field.
    fn is_fulltext(&self, field: &str) -> bool {
        field == FULLTEXT_FIELD
    }
    /// SQL of a text that holds the field's value verbatim, for a field [`Columns::text`] reads
    /// out of it (e.g. `e.envelope` for `json_extract(e.envelope, '$.event.message')`, the
    /// envelope being canonical JSON: strings with only `"`, `\` and control characters
    /// escaped, no whitespace). Whenever the field's text contains a [`verbatim_term`], this
    /// text contains it too, so a contains test first asks `tk_contains(text, term)` (a byte
    /// search) and parses the JSON only for the rows that pass.
    fn verbatim(&self, _field: &str) -> Option<String> {
        None
    }
}

/// Whether a contains test for `value` can be pre-checked on a field's verbatim text
/// ([`Columns::verbatim`]): `value` has no character canonical JSON escapes (so a string
/// holding it holds it unescaped in the JSON text), and some character no number or boolean
/// reads as (`json_extract` returns numbers and booleans as SQL numbers, whose text — `1` for
/// `true`, `1.0e+21`, `Inf` — is not the JSON text).
pub fn verbatim_term(value: &str) -> bool {
    !value.is_empty()
        && !value.chars().any(|c| c == '"' || c == '\\' || c < '\u{20}')
        && value.chars().any(|c| !"0123456789.+-eEInf".contains(c))
}

/// A word of the full-text index: a run of characters that SQLite FTS5's `unicode61` tokenizer
/// (the `events_fts` tokenizer) treats as token characters, so that each quoted word is exactly
/// one FTS5 token. unicode61 keeps letters, numbers and private-use characters (`L*`, `N*`,
/// `Co`) and separates on everything else, including the combining marks that Rust's
/// `char::is_alphanumeric` counts as alphabetic (Devanagari vowel signs, U+0345, circled
/// letters). A quoted word of two tokens is a phrase query, which `detail='none'` rejects with an
/// SQL error ("phrase queries are not supported"), so this class must never be wider than
/// unicode61's. Its tables are older than Rust's: the New Tai Lue vowels U+19B0–U+19C9 and the
/// Vedic signs U+1CF2–U+1CF3 became letters later and are separators there, so they are
/// excluded too (the unit test checks every character against the bundled SQLite). Caught by the
/// `query_parser` fuzz target: `text:काक` was a 503 from `v1/search`.
static FTS_WORD: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"[[\p{L}\p{N}\p{Co}]--[\x{19B0}-\x{19C9}\x{1CF2}\x{1CF3}]]+").expect("static regex")
});

/// Words of a full-text value as an FTS5 query: each word (see [`FTS_WORD`]) double-quoted,
/// joined by spaces (AND). User text is never FTS5 syntax, and every quoted word is a single
/// FTS5 token, never a phrase.
pub fn fts_query(value: &str) -> Option<String> {
    let words: Vec<String> =
        FTS_WORD.find_iter(value).take(MAX_TERMS).map(|w| format!("\"{}\"", w.as_str().replace('"', "\"\""))).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Build a SQL boolean expression. Every user value goes into `params` as a bound parameter
/// (`?`, in order of appearance), never into the SQL text. The result is never NULL.
///
/// * Contains: `(col IS NOT NULL AND instr(col, ?) > 0)` (case-sensitive substring; an empty
///   value gives `(col IS NOT NULL)`).
/// * Equals: `(col IS NOT NULL AND col = ?)`.
/// * Time comparisons: `(micros IS NOT NULL AND micros > ?)` with the instant as i64 µs.
/// * Bare term: the OR of the Contains (or Equals) test over [`Columns::bare_fields`].
/// * `(NOT (inner))`; And/Or joined with AND/OR and parenthesised (empty And = `(1)`, empty
///   Or = `(0)`).
///
/// A term the parser would never produce (comparison on no field, unparsable instant)
/// yields `(0)`.
pub fn to_sql(expr: &Expr, cols: &dyn Columns, params: &mut Vec<Value>) -> String {
    match expr {
        Expr::And(items) => join(items, " AND ", "(1)", cols, params),
        Expr::Or(items) => join(items, " OR ", "(0)", cols, params),
        Expr::Not(inner) => format!("(NOT {})", to_sql(inner, cols, params)),
        Expr::Term(t) => term_sql(t, cols, params),
    }
}

fn join(items: &[Expr], sep: &str, empty: &str, cols: &dyn Columns, params: &mut Vec<Value>) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    let parts: Vec<String> = items.iter().map(|e| to_sql(e, cols, params)).collect();
    format!("({})", parts.join(sep))
}

fn term_sql(t: &Term, cols: &dyn Columns, params: &mut Vec<Value>) -> String {
    match (&t.field, t.op) {
        (Some(f), Op::Contains | Op::Equals) if cols.is_fulltext(f) => match (cols.fulltext(), fts_query(&t.value)) {
            (Some(sql), Some(q)) => {
                params.push(Value::Text(q));
                format!("({sql})")
            }
            (Some(_), None) => "(1)".to_string(),
            (None, _) => "(0)".to_string(),
        },
        (None, Op::Contains | Op::Equals) => {
            // Fields read out of a verbatim text are tested together after the others, behind
            // one pre-check per text.
            let guarded = |f: &String| cols.verbatim(f).filter(|_| t.op == Op::Contains && verbatim_term(&t.value));
            let fields = cols.bare_fields();
            let mut parts: Vec<String> = fields
                .iter()
                .filter(|f| guarded(f).is_none())
                .map(|f| field_test(cols, f, t.op, &t.value, params))
                .collect();
            let mut texts: Vec<String> = fields.iter().filter_map(guarded).collect();
            texts.dedup();
            for text in texts {
                parts.push(pre_checked(&text, &t.value, params, |params| {
                    let tests: Vec<String> = fields
                        .iter()
                        .filter(|f| guarded(f).as_ref() == Some(&text))
                        .map(|f| field_test(cols, f, t.op, &t.value, params))
                        .collect();
                    format!("({})", tests.join(" OR "))
                }));
            }
            if parts.is_empty() { "(0)".to_string() } else { format!("({})", parts.join(" OR ")) }
        }
        (None, _) => "(0)".to_string(),
        (Some(f), op) => {
            let comparison = !matches!(op, Op::Contains | Op::Equals);
            match cols.kind(f) {
                FieldKind::Unsearchable => "(0)".to_string(),
                FieldKind::Text if comparison => "(0)".to_string(),
                FieldKind::Text => match cols.verbatim(f).filter(|_| op == Op::Contains && verbatim_term(&t.value)) {
                    Some(text) => {
                        pre_checked(&text, &t.value, params, |params| field_test(cols, f, op, &t.value, params))
                    }
                    None => field_test(cols, f, op, &t.value, params),
                },
                FieldKind::Time | FieldKind::Datetime if op == Op::Contains => {
                    text_test(&cols.text(f), op, &t.value, params)
                }
                FieldKind::Time if op == Op::Equals => text_test(&cols.text(f), op, &t.value, params),
                FieldKind::Time => instant_test(&cols.micros(f), op, &t.value, params),
                FieldKind::Datetime => instant_test(&cols.typed(f), op, &t.value, params),
                FieldKind::Integer => match t.value.parse::<i64>() {
                    Ok(v) => typed_test(&cols.typed(f), op, v, params),
                    Err(_) => "(0)".to_string(),
                },
                FieldKind::Boolean => match bool_value(&t.value) {
                    Some(b) => typed_test(&cols.typed(f), op, i64::from(b), params),
                    None => "(0)".to_string(),
                },
            }
        }
    }
}

/// `tests` (SQL of contains tests for `value`, their parameters pushed by the closure) behind the
/// byte search of `value` in the verbatim `text` ([`Columns::verbatim`]), whose parameter comes
/// first.
fn pre_checked(
    text: &str,
    value: &str,
    params: &mut Vec<Value>,
    tests: impl FnOnce(&mut Vec<Value>) -> String,
) -> String {
    params.push(Value::Text(value.to_string()));
    format!("(tk_contains({text}, ?) AND {})", tests(params))
}

fn field_test(cols: &dyn Columns, field: &str, op: Op, value: &str, params: &mut Vec<Value>) -> String {
    match cols.interned(field) {
        Some(id) => id_test(&id, op, value, params),
        None => text_test(&cols.text(field), op, value, params),
    }
}

/// [`text_test`] on an interned column, as a test of its id against the matching texts' ids (an
/// uncorrelated subquery SQLite evaluates once per statement). The texts are those of
/// `NULLIF(value, '')`: the empty text is absent, so it contains nothing and equals nothing. The
/// id column is never NULL, so the test is true or false (never NULL, also under NOT); the unary
/// `+` keeps the column's indexes out of the plan, which stays the one the text test had.
fn id_test(id: &str, op: Op, value: &str, params: &mut Vec<Value>) -> String {
    if value.is_empty() {
        return match op {
            Op::Equals => "(0)".to_string(),
            _ => format!("(+{id} IN (SELECT id FROM strings WHERE value <> ''))"),
        };
    }
    params.push(Value::Text(value.to_string()));
    if op == Op::Equals {
        format!("(+{id} IN (SELECT id FROM strings WHERE value = ?))")
    } else {
        format!("(+{id} IN (SELECT id FROM strings WHERE instr(value, ?) > 0))")
    }
}

/// SQL comparison symbol of an operator (`:` and `=` are equality).
fn symbol(op: Op) -> &'static str {
    match op {
        Op::Contains | Op::Equals => "=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
    }
}

/// `value op v` on an INTEGER expression; false when the value is absent.
fn typed_test(value: &str, op: Op, v: i64, params: &mut Vec<Value>) -> String {
    params.push(Value::Integer(v));
    format!("({value} IS NOT NULL AND {value} {} ?)", symbol(op))
}

/// `micros op instant`, exact on integer µs: x > v ⇔ x > ⌊v⌋, x <= v ⇔ x <= ⌊v⌋,
/// x >= v ⇔ x >= ⌈v⌉, x < v ⇔ x < ⌈v⌉, and x = v never holds for a v between two µs.
fn instant_test(micros: &str, op: Op, value: &str, params: &mut Vec<Value>) -> String {
    let Some((floor, fraction)) = parse_instant(value) else {
        return "(0)".to_string();
    };
    let ceil = floor + i64::from(fraction);
    let bound = match op {
        Op::Gt | Op::Le => floor,
        Op::Contains | Op::Equals if fraction => return "(0)".to_string(),
        _ => ceil,
    };
    params.push(Value::Integer(bound));
    format!("({micros} IS NOT NULL AND {micros} {} ?)", symbol(op))
}

fn text_test(col: &str, op: Op, value: &str, params: &mut Vec<Value>) -> String {
    if op == Op::Contains && value.is_empty() {
        return format!("({col} IS NOT NULL)");
    }
    params.push(Value::Text(value.to_string()));
    if op == Op::Equals {
        format!("({col} IS NOT NULL AND {col} = ?)")
    } else {
        format!("({col} IS NOT NULL AND instr({col}, ?) > 0)")
    }
}

// ---------------------------------------------------------------------------------------
// Parser (scannerless recursive descent over the input string).

fn error(detail: String) -> QueryError {
    QueryError { detail }
}

/// Clip user text quoted in an error so the detail stays ≤ 200 chars.
fn clip(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push_str("...");
        out
    }
}

fn syntax(token: &str) -> QueryError {
    error(format!("syntax error at {}", clip(token)))
}

fn is_delim(c: char) -> bool {
    c.is_whitespace() || c == '"' || c == '(' || c == ')'
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    terms: usize,
    depth: usize,
    catalog: &'a Catalog,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Skips whitespace; true if any was skipped.
    fn skip_ws(&mut self) -> bool {
        let rest = self.rest();
        let skipped = rest.len() - rest.trim_start().len();
        self.pos += skipped;
        skipped > 0
    }

    /// The bare word at the current position (possibly empty).
    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        let end = rest.find(is_delim).unwrap_or(rest.len());
        &rest[..end]
    }

    /// A syntax error naming the token at (or after whitespace at) the current position.
    fn syntax_here(&self) -> QueryError {
        let rest = self.rest().trim_start();
        match rest.chars().next() {
            None => syntax("end of query"),
            Some(c @ ('(' | ')' | '"')) => syntax(&c.to_string()),
            Some(_) => {
                let end = rest.find(is_delim).unwrap_or(rest.len());
                syntax(&rest[..end])
            }
        }
    }

    fn or_expr(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.and_expr()?];
        loop {
            let save = self.pos;
            if !self.skip_ws() || self.peek_word() != "OR" {
                self.pos = save;
                break;
            }
            self.pos += "OR".len();
            if !self.skip_ws() {
                return Err(self.syntax_here());
            }
            items.push(self.and_expr()?);
        }
        Ok(collapse(items, Expr::Or))
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.unary()?];
        loop {
            let save = self.pos;
            if !self.skip_ws() {
                break;
            }
            if matches!(self.peek(), None | Some(')')) || self.peek_word() == "OR" {
                self.pos = save;
                break;
            }
            if self.peek_word() == "AND" {
                self.pos += "AND".len();
                if !self.skip_ws() {
                    return Err(self.syntax_here());
                }
            }
            items.push(self.unary()?);
        }
        Ok(collapse(items, Expr::And))
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.peek() == Some('-') {
            let next = self.rest()[1..].chars().next();
            if let Some(c) = next
                && !c.is_whitespace()
                && c != ')'
            {
                self.pos += 1;
                return Ok(Expr::Not(Box::new(self.primary()?)));
            }
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        match self.peek() {
            None | Some(')') => Err(self.syntax_here()),
            Some('(') => {
                if self.depth >= MAX_DEPTH {
                    return Err(error(format!("query nested too deeply (max {MAX_DEPTH} levels)")));
                }
                self.depth += 1;
                self.pos += 1;
                self.skip_ws();
                let e = self.or_expr()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.syntax_here());
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(_) => {
                let word = self.peek_word();
                if matches!(word, "AND" | "OR" | "NOT") {
                    return Err(syntax(word));
                }
                self.term().map(Expr::Term)
            }
        }
    }

    fn term(&mut self) -> Result<Term, QueryError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(error(format!("too many terms (max {MAX_TERMS})")));
        }
        let start = self.pos;
        let Some((field, op, after)) = self.field_op() else {
            let value = self.value()?;
            return Ok(Term { field: None, op: Op::Contains, value });
        };
        self.pos = after;
        if self.peek() != Some('"') && self.peek_word().is_empty() {
            return Err(syntax(&self.s[start..after]));
        }
        let value = self.value()?;
        let sym = &self.s[start + field.len()..after];
        check_term(self.catalog, field, op, sym, &value)?;
        Ok(Term { field: Some(field.to_string()), op, value })
    }

    /// `[a-z_][a-z0-9_]*` immediately followed by an op: (field, op, position after the op).
    fn field_op(&self) -> Option<(&'a str, Op, usize)> {
        let rest = self.rest();
        let b = rest.as_bytes();
        if !matches!(b.first(), Some(b'a'..=b'z' | b'_')) {
            return None;
        }
        let n = b.iter().position(|c| !matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))?;
        let (op, len) = match (b[n], b.get(n + 1)) {
            (b'>', Some(b'=')) => (Op::Ge, 2),
            (b'<', Some(b'=')) => (Op::Le, 2),
            (b'>', _) => (Op::Gt, 1),
            (b'<', _) => (Op::Lt, 1),
            (b':', _) => (Op::Contains, 1),
            (b'=', _) => (Op::Equals, 1),
            _ => return None,
        };
        Some((&rest[..n], op, self.pos + n + len))
    }

    /// A quoted or bare value at the current position (the caller ensured one starts here).
    fn value(&mut self) -> Result<String, QueryError> {
        if self.peek() != Some('"') {
            let word = self.peek_word();
            self.pos += word.len();
            return Ok(word.to_string());
        }
        let rest = self.rest();
        let mut out = String::new();
        let mut chars = rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    Some((j, e)) => return Err(syntax(&rest[i..j + e.len_utf8()])),
                    None => break,
                },
                _ => out.push(c),
            }
        }
        Err(syntax(rest))
    }
}

fn collapse(mut items: Vec<Expr>, wrap: fn(Vec<Expr>) -> Expr) -> Expr {
    match items.len() {
        1 => items.remove(0),
        _ => wrap(items),
    }
}

/// Checks a field term against the config's fields: the field exists and is searchable, the
/// operator suits its kind, and the value parses as the kind's type.
fn check_term(catalog: &Catalog, field: &str, op: Op, sym: &str, value: &str) -> Result<(), QueryError> {
    if field == FULLTEXT_FIELD && catalog.field(field).is_none() {
        return if matches!(op, Op::Contains | Op::Equals) {
            Ok(())
        } else {
            Err(error(format!("operator '{sym}' not allowed for field '{field}' (full text)")))
        };
    }
    let Some(f) = catalog.field(field) else {
        return Err(error(format!("unknown field '{}'", clip(field))));
    };
    let comparison = !matches!(op, Op::Contains | Op::Equals);
    match f.kind {
        FieldKind::Unsearchable => Err(error(format!("field '{field}' is not searchable"))),
        FieldKind::Text if comparison => {
            let only: Vec<&str> = catalog
                .fields
                .iter()
                .filter(|f| !matches!(f.kind, FieldKind::Text | FieldKind::Unsearchable))
                .map(|f| f.name.as_str())
                .collect();
            Err(error(format!("operator '{sym}' not allowed for field '{field}' (only {})", clip(&only.join(", ")))))
        }
        FieldKind::Text => Ok(()),
        FieldKind::Time if comparison => instant(value).map(|_| ()),
        FieldKind::Time => Ok(()),
        FieldKind::Datetime if op == Op::Contains => Ok(()),
        FieldKind::Datetime => instant(value).map(|_| ()),
        FieldKind::Integer => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| error(format!("invalid integer '{}' for field '{field}'", clip(value)))),
        FieldKind::Boolean => bool_value(value)
            .map(|_| ())
            .ok_or_else(|| error(format!("invalid boolean '{}' for field '{field}' (true or false)", clip(value)))),
    }
}

fn instant(value: &str) -> Result<(i64, bool), QueryError> {
    parse_instant(value).ok_or_else(|| error(format!("invalid timestamp '{}' (expected RFC 3339)", clip(value))))
}

fn bool_value(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// RFC 3339 instants.

/// An RFC 3339 date-time as accepted in comparisons: (⌊µs since the epoch⌋, whether a sub-µs
/// fraction was dropped).
pub fn instant_micros(s: &str) -> Option<(i64, bool)> {
    parse_instant(s)
}

/// Parses an RFC 3339 date-time (see module docs for the accepted forms) into
/// (⌊µs since the epoch⌋, whether a sub-µs fraction was dropped).
fn parse_instant(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    let mut i = 0;
    let year = digits(b, &mut i, 4, 4)?;
    lit(b, &mut i, b"-")?;
    let month = digits(b, &mut i, 1, 2)?;
    lit(b, &mut i, b"-")?;
    let day = digits(b, &mut i, 1, 2)?;
    lit(b, &mut i, b"Tt")?;
    let hour = digits(b, &mut i, 1, 2)?;
    lit(b, &mut i, b":")?;
    let minute = digits(b, &mut i, 1, 2)?;
    lit(b, &mut i, b":")?;
    let second = digits(b, &mut i, 1, 2)?;
    let (mut micros, mut dropped) = (0i64, false);
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            let d = i64::from(d - b'0');
            if i - start < 6 {
                micros = micros * 10 + d;
            } else if d != 0 {
                dropped = true;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let run = i - start;
            let (h, m) = if b.get(i) == Some(&b':') {
                if !(1..=2).contains(&run) {
                    return None;
                }
                let h = number(&b[start..i]);
                i += 1;
                (h, digits(b, &mut i, 1, 2)?)
            } else {
                match run {
                    1 | 2 => (number(&b[start..i]), 0),
                    3 | 4 => (number(&b[start..i - 2]), number(&b[i - 2..i])),
                    _ => return None,
                }
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if sign == b'-' { -secs } else { secs }
        }
        Some(_) => return None,
    };
    if i != b.len()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some((secs * 1_000_000 + micros, dropped))
}

/// Reads `min..=max` ASCII digits.
fn digits(b: &[u8], i: &mut usize, min: usize, max: usize) -> Option<i64> {
    let start = *i;
    while *i - start < max && b.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    (*i - start >= min).then(|| number(&b[start..*i]))
}

fn number(digits: &[u8]) -> i64 {
    digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0'))
}

/// Expects one of `any` at `b[*i]`.
fn lit(b: &[u8], i: &mut usize, any: &[u8]) -> Option<()> {
    let c = b.get(*i)?;
    any.contains(c).then(|| *i += 1)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn bare(v: &str) -> Expr {
        Expr::Term(Term { field: None, op: Op::Contains, value: v.to_string() })
    }

    fn ft(f: &str, op: Op, v: &str) -> Expr {
        Expr::Term(Term { field: Some(f.to_string()), op, value: v.to_string() })
    }

    fn and(v: Vec<Expr>) -> Expr {
        Expr::And(v)
    }

    fn or(v: Vec<Expr>) -> Expr {
        Expr::Or(v)
    }

    fn not(e: Expr) -> Expr {
        Expr::Not(Box::new(e))
    }

    fn err(q: &str) -> String {
        match parse(q) {
            Err(e) => e.detail,
            Ok(v) => panic!("{q:?} parsed as {v:?}"),
        }
    }

    /// Matching rowids of an FTS5 query against a `detail='none'` table like `events_fts`.
    fn fts_rows(c: &Connection, q: &str) -> rusqlite::Result<Vec<i64>> {
        c.prepare("SELECT rowid FROM f WHERE f MATCH ?1 ORDER BY rowid")?.query_map([q], |r| r.get(0))?.collect()
    }

    #[test]
    fn fts_words_are_single_unicode61_tokens() {
        // Regression (query_parser fuzz target): `text:काक` became the FTS5 query "काक", which
        // unicode61 splits at the vowel sign into two tokens: a phrase query, an SQL error under
        // detail='none', a 503 from v1/search.
        assert_eq!(fts_query("काक").as_deref(), Some(r#""क" "क""#));
        assert_eq!(fts_query("a\u{345}b ⓐx").as_deref(), Some(r#""a" "b" "x""#));
        assert_eq!(fts_query("disk full, 99%! é_1").as_deref(), Some(r#""disk" "full" "99" "é" "1""#));
        assert_eq!(fts_query(" -- \"\" "), None);
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(body, content='', detail='none');
             INSERT INTO f(rowid, body) VALUES (1, 'काक disk full'), (2, 'a\u{345}b');",
        )
        .unwrap();
        assert!(fts_rows(&c, "\"काक\"").is_err(), "the old query is an SQL error");
        assert_eq!(fts_rows(&c, &fts_query("काक").unwrap()), Ok(vec![1]));
        assert_eq!(fts_rows(&c, &fts_query("a\u{345}b").unwrap()), Ok(vec![2]));
        // Every character kept inside a word is a token character for unicode61: "a<c>b" is a
        // single token (else the phrase fails). Checked in chunks, bisected on a failure.
        let kept: Vec<char> =
            ('\u{80}'..=char::MAX).filter(|ch| FTS_WORD.is_match(ch.encode_utf8(&mut [0; 4]))).collect();
        assert!(kept.len() > 100_000, "{} word characters", kept.len());
        for chunk in kept.chunks(200) {
            let q = |chars: &[char]| chars.iter().map(|ch| format!("\"a{ch}b\"")).collect::<Vec<_>>().join(" OR ");
            if fts_rows(&c, &q(chunk)).is_err() {
                let bad: Vec<String> = chunk
                    .iter()
                    .filter(|ch| fts_rows(&c, &q(&[**ch])).is_err())
                    .map(|ch| format!("U+{:04X}", *ch as u32))
                    .collect();
                panic!("unicode61 separates on word characters {bad:?}");
            }
        }
    }

    #[test]
    fn empty_queries() {
        for q in ["", " ", "  \t\n ", "\u{3000}"] {
            assert_eq!(parse(q), Ok(None), "{q:?}");
        }
    }

    #[test]
    fn ast_table() {
        use Op::*;
        let cases: Vec<(&str, Expr)> = vec![
            ("alice", bare("alice")),
            ("  alice  ", bare("alice")),
            ("alice bob", and(vec![bare("alice"), bare("bob")])),
            ("alice AND bob", and(vec![bare("alice"), bare("bob")])),
            ("alice \t AND\n bob", and(vec![bare("alice"), bare("bob")])),
            ("alice and bob", and(vec![bare("alice"), bare("and"), bare("bob")])),
            ("alice or not bob", and(vec![bare("alice"), bare("or"), bare("not"), bare("bob")])),
            ("a OR b", or(vec![bare("a"), bare("b")])),
            ("a OR b OR c", or(vec![bare("a"), bare("b"), bare("c")])),
            ("a OR b c", or(vec![bare("a"), and(vec![bare("b"), bare("c")])])),
            ("a b OR c", or(vec![and(vec![bare("a"), bare("b")]), bare("c")])),
            ("a AND b OR c AND d", or(vec![and(vec![bare("a"), bare("b")]), and(vec![bare("c"), bare("d")])])),
            ("(a OR b) c", and(vec![or(vec![bare("a"), bare("b")]), bare("c")])),
            ("-a b", and(vec![not(bare("a")), bare("b")])),
            ("-a OR b", or(vec![not(bare("a")), bare("b")])),
            ("-(a OR b) c", and(vec![not(or(vec![bare("a"), bare("b")])), bare("c")])),
            ("(a)", bare("a")),
            ("((a))", bare("a")),
            ("( a  b )", and(vec![bare("a"), bare("b")])),
            ("(a b) c", and(vec![and(vec![bare("a"), bare("b")]), bare("c")])),
            ("actor:alice", ft("actor", Contains, "alice")),
            ("actor=alice", ft("actor", Equals, "alice")),
            ("actor:\"Jane Doe\"", ft("actor", Contains, "Jane Doe")),
            ("-actor:\"Dennis\"", not(ft("actor", Contains, "Dennis"))),
            ("message:\"\"", ft("message", Contains, "")),
            ("new=\"\"", ft("new", Equals, "")),
            ("\"\"", bare("")),
            (r#""say \"hi\" \\o/""#, bare(r#"say "hi" \o/"#)),
            (r"back\slash", bare(r"back\slash")),
            ("actor:b:c", ft("actor", Contains, "b:c")),
            ("actor:=x", ft("actor", Contains, "=x")),
            ("actor=:x", ft("actor", Equals, ":x")),
            ("tenant_id:t1", ft("tenant_id", Contains, "t1")),
            ("OPS-306", bare("OPS-306")),
            ("ops-306", bare("ops-306")),
            ("Actor:x", bare("Actor:x")),
            ("12:30", bare("12:30")),
            ("actor", bare("actor")),
            ("a-b", bare("a-b")),
            ("-", bare("-")),
            ("a -", and(vec![bare("a"), bare("-")])),
            ("(a -)", and(vec![bare("a"), bare("-")])),
            ("--x", not(bare("-x"))),
            ("-\"x y\"", not(bare("x y"))),
            ("-and", not(bare("and"))),
            ("*", bare("*")),
            ("alice*", bare("alice*")),
            ("actor:AND", ft("actor", Contains, "AND")),
            ("\"AND\" \"OR\"", and(vec![bare("AND"), bare("OR")])),
            ("ANDY ORACLE NOTE", and(vec![bare("ANDY"), bare("ORACLE"), bare("NOTE")])),
            ("' OR 1=1--", or(vec![bare("'"), bare("1=1--")])),
            ("target:http://x", ft("target", Contains, "http://x")),
            ("\"http://x\"", bare("http://x")),
            ("a\tb\nc", and(vec![bare("a"), bare("b"), bare("c")])),
            ("timestamp:2024-01", ft("timestamp", Contains, "2024-01")),
            ("timestamp>2024-01-01T00:00:00Z", ft("timestamp", Gt, "2024-01-01T00:00:00Z")),
            (
                "timestamp>=\"2024-01-01T00:00:00.123456+05:30\"",
                ft("timestamp", Ge, "2024-01-01T00:00:00.123456+05:30"),
            ),
            ("received_at<2024-1-2T3:4:5", ft("received_at", Lt, "2024-1-2T3:4:5")),
            ("received_at<=2024-01-01t00:00:00z", ft("received_at", Le, "2024-01-01t00:00:00z")),
            ("timestamp=2024-01-01T00:00:00Z", ft("timestamp", Equals, "2024-01-01T00:00:00Z")),
            ("é:x ü", and(vec![bare("é:x"), bare("ü")])),
        ];
        for (q, want) in cases {
            assert_eq!(parse(q), Ok(Some(want)), "{q:?}");
        }
    }

    #[test]
    fn error_table() {
        let cases: &[(&str, &str)] = &[
            ("alice AND", "syntax error at end of query"),
            ("alice AND ", "syntax error at end of query"),
            ("alice OR", "syntax error at end of query"),
            ("OR x", "syntax error at OR"),
            ("AND", "syntax error at AND"),
            ("NOT", "syntax error at NOT"),
            ("NOT alice", "syntax error at NOT"),
            ("alice NOT bob", "syntax error at NOT"),
            ("alice OR OR bob", "syntax error at OR"),
            ("alice AND OR bob", "syntax error at OR"),
            ("a AND AND b", "syntax error at AND"),
            ("-AND", "syntax error at AND"),
            ("(", "syntax error at end of query"),
            (")", "syntax error at )"),
            ("a)", "syntax error at )"),
            ("a )", "syntax error at )"),
            ("(a", "syntax error at end of query"),
            ("()", "syntax error at )"),
            ("( )", "syntax error at )"),
            ("(a OR)", "syntax error at )"),
            ("\"alice", "syntax error at \"alice"),
            ("actor:\"alice", "syntax error at \"alice"),
            ("\"a\\\"", "syntax error at \"a\\\""),
            ("NEAR(a b)", "syntax error at ("),
            ("a(b)", "syntax error at ("),
            ("(a)(b)", "syntax error at ("),
            ("(a)b", "syntax error at b"),
            ("foo\"bar\"", "syntax error at \""),
            ("\"a\"b", "syntax error at b"),
            ("a AND(b)", "syntax error at ("),
            ("a OR(b)", "syntax error at ("),
            ("a OR\"b\"", "syntax error at \""),
            ("actor:", "syntax error at actor:"),
            ("actor: alice", "syntax error at actor:"),
            ("(actor:)", "syntax error at actor:"),
            ("timestamp>=", "syntax error at timestamp>="),
            ("actor:(x)", "syntax error at actor:"),
            ("\"bad \\n escape\"", "syntax error at \\n"),
            ("actor:'); DROP TABLE e; --", "syntax error at )"),
            ("foo:bar", "unknown field 'foo'"),
            ("_x=1", "unknown field '_x'"),
            ("http://example.com", "unknown field 'http'"),
            ("a https://example.com", "unknown field 'https'"),
            ("actor>alice", "operator '>' not allowed for field 'actor' (only timestamp, received_at)"),
            ("status<=x", "operator '<=' not allowed for field 'status' (only timestamp, received_at)"),
            ("timestamp>yesterday", "invalid timestamp 'yesterday' (expected RFC 3339)"),
            ("timestamp>\"\"", "invalid timestamp '' (expected RFC 3339)"),
            ("timestamp>2024-01-01", "invalid timestamp '2024-01-01' (expected RFC 3339)"),
        ];
        for (q, want) in cases {
            assert_eq!(err(q), *want, "{q:?}");
        }
    }

    /// A custom config's fields: operators by kind, typed values, unsearchable and unknown fields.
    #[test]
    fn custom_fields_by_kind() {
        use crate::search::catalog::{QueryField, Storage};
        let f = |name: &str, kind, storage| QueryField { name: name.into(), kind, storage };
        let cat = Catalog {
            config: 3,
            fields: vec![
                f("user", FieldKind::Text, Storage::Indexed(1)),
                f("n", FieldKind::Integer, Storage::Indexed(2)),
                f("ok", FieldKind::Boolean, Storage::Indexed(3)),
                f("at", FieldKind::Datetime, Storage::Indexed(4)),
                f("blob", FieldKind::Unsearchable, Storage::Envelope),
                Catalog::received_at(),
            ],
        };
        for q in [
            "user:a",
            "user=a",
            "n:5",
            "n=-5",
            "n>=9223372036854775807",
            "ok:true",
            "ok<true",
            "at:2024",
            "at=2024-01-01T00:00:00Z",
            "at>2024-01-01T00:00:00Z",
            "received_at<2024-01-01T00:00:00Z",
            "text:word",
            "plain -n=3",
        ] {
            assert!(parse_in(q, &cat).is_ok(), "{q}");
        }
        let err = |q: &str| parse_in(q, &cat).unwrap_err().detail;
        assert_eq!(err("n>x"), "invalid integer 'x' for field 'n'");
        assert_eq!(err("n=9223372036854775808"), "invalid integer '9223372036854775808' for field 'n'");
        assert_eq!(err("ok:maybe"), "invalid boolean 'maybe' for field 'ok' (true or false)");
        assert_eq!(err("blob:x"), "field 'blob' is not searchable");
        assert_eq!(err("user>a"), "operator '>' not allowed for field 'user' (only n, ok, at, received_at)");
        assert_eq!(err("at=yesterday"), "invalid timestamp 'yesterday' (expected RFC 3339)");
        assert_eq!(err("actor:x"), "unknown field 'actor'");
        assert_eq!(err("text>x"), "operator '>' not allowed for field 'text' (full text)");
        // A field named `text` is that field, not the full-text pseudo-field.
        let mut with_text = cat.clone();
        with_text.fields.push(f("text", FieldKind::Integer, Storage::Indexed(9)));
        assert!(parse_in("text>3", &with_text).is_ok());
        assert_eq!(parse_in("text:word", &with_text).unwrap_err().detail, "invalid integer 'word' for field 'text'");
    }

    #[test]
    fn invalid_instants_rejected() {
        for v in [
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+01:60",
            "2024-01-01T00:00:00+123456",
            "2024-01-01T00:00:00+",
            "2024-01-01T00:00:00ZZ",
            "2024-01-01 00:00:00Z",
            "24-01-01T00:00:00Z",
            "2024-001-01T00:00:00Z",
            "+2024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_instant(v), None, "{v}");
            assert!(err(&format!("timestamp<\"{v}\"")).starts_with("invalid timestamp"), "{v}");
        }
    }

    #[test]
    fn instants() {
        const S: i64 = 1_000_000;
        let cases: &[(&str, i64, bool)] = &[
            ("1970-01-01T00:00:00Z", 0, false),
            ("1970-01-01T00:00:00", 0, false),
            ("1969-12-31T23:59:59.999999Z", -1, false),
            ("2024-01-01T00:00:00Z", 1_704_067_200 * S, false),
            ("2024-02-29T12:00:00Z", 1_709_208_000 * S, false),
            ("2000-02-29T00:00:00Z", 951_782_400 * S, false),
            ("2024-01-01T05:30:00+05:30", 1_704_067_200 * S, false),
            ("2024-01-01T05:30:00+0530", 1_704_067_200 * S, false),
            ("2024-01-01T05:30:00+530", 1_704_067_200 * S, false),
            ("2024-01-01T05:00:00+5", 1_704_067_200 * S, false),
            ("2023-12-31T19:00:00-05:00", 1_704_067_200 * S, false),
            ("2024-1-1T0:0:0Z", 1_704_067_200 * S, false),
            ("2024-01-01t00:00:00.5z", 1_704_067_200 * S + 500_000, false),
            ("2024-01-01T00:00:00.000001Z", 1_704_067_200 * S + 1, false),
            ("2024-01-01T00:00:00.0000019Z", 1_704_067_200 * S + 1, true),
            ("2024-01-01T00:00:00.1234560000Z", 1_704_067_200 * S + 123_456, false),
            ("2016-12-31T23:59:60Z", 1_483_228_800 * S, false),
            ("9999-12-31T23:59:59Z", 253_402_300_799 * S, false),
            ("0000-01-01T00:00:00Z", -62_167_219_200 * S, false),
        ];
        for (s, us, dropped) in cases {
            assert_eq!(parse_instant(s), Some((*us, *dropped)), "{s}");
        }
    }

    #[test]
    fn limits() {
        let long = "a".repeat(MAX_QUERY_BYTES);
        assert_eq!(parse(&long), Ok(Some(bare(&long))));
        let longer = "a".repeat(MAX_QUERY_BYTES + 1);
        assert_eq!(err(&longer), "query too long (max 4096 bytes)");
        // Multi-byte: the limit is in bytes.
        assert_eq!(err(&"é".repeat(2049)), "query too long (max 4096 bytes)");

        let terms = |n: usize| vec!["x"; n].join(" ");
        assert!(matches!(parse(&terms(MAX_TERMS)), Ok(Some(Expr::And(v))) if v.len() == 64));
        assert_eq!(err(&terms(MAX_TERMS + 1)), "too many terms (max 64)");
        let ors = vec!["actor:x"; MAX_TERMS + 1].join(" OR ");
        assert_eq!(err(&ors), "too many terms (max 64)");

        let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(parse(&nested(MAX_DEPTH)), Ok(Some(bare("x"))));
        assert_eq!(err(&nested(MAX_DEPTH + 1)), "query nested too deeply (max 32 levels)");
        let deep = "(".repeat(MAX_QUERY_BYTES);
        assert_eq!(err(&deep), "query nested too deeply (max 32 levels)");
        let negs = "-(".repeat(40);
        assert!(err(&negs).starts_with("query nested too deeply"));
    }

    #[test]
    fn error_details_are_short() {
        let big = "z".repeat(3000);
        for q in [
            format!("\"{big}"),
            format!("{big}:x"),
            format!("timestamp>{big}"),
            format!("a {big}("),
            format!("a ){big}"),
            format!("\"{big}\\q\""),
        ] {
            let d = err(&q);
            assert!(d.chars().count() <= 200, "{d}");
            assert!(!d.is_empty());
        }
    }

    // -----------------------------------------------------------------------------------
    // SQL

    struct Cols;

    impl Columns for Cols {
        fn text(&self, field: &str) -> String {
            match field {
                "received_at" => "CAST(e.received_us AS TEXT)".to_string(),
                f => format!("e.{f}"),
            }
        }
        fn micros(&self, field: &str) -> String {
            match field {
                "timestamp" => "e.ts_us",
                "received_at" => "e.received_us",
                _ => "NULL",
            }
            .to_string()
        }
        fn bare_fields(&self) -> Vec<String> {
            FIELDS[..10].iter().map(|f| f.to_string()).collect()
        }
    }

    fn us(s: &str) -> i64 {
        parse_instant(s).expect(s).0
    }

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE e(id INTEGER PRIMARY KEY, actor TEXT, action TEXT, message TEXT,
               new TEXT, old TEXT, source TEXT, status TEXT, target TEXT, tenant_id TEXT,
               timestamp TEXT, ts_us INTEGER, received_us INTEGER);",
        )
        .unwrap();
        // Columns: id, actor, action, message, new, old, source, status, target, tenant_id,
        // timestamp. ts_us/received_us are derived below (received = ts + 1 s, or 2024-03-01).
        c.execute_batch(
            r#"INSERT INTO e(id, actor, action, message, new, old, source, status, target,
                   tenant_id, timestamp) VALUES
             (1, 'alice', 'login', 'Alice logged in', NULL, NULL, 'web', 'success', 'portal',
              't1', '2024-01-01T10:00:00Z'),
             (2, 'bob', 'delete', 'deleted file "report.pdf"', NULL, NULL, 'web', 'failure',
              'OPS-306', 't1', '2024-01-02T00:00:00Z'),
             (3, 'Jane Doe', 'update', 'changed role', 'admin', 'user', 'api', 'success',
              'user:42', 't2', '2024-02-01T00:00:00+02:00'),
             (4, NULL, 'backup', 'nightly backup', NULL, NULL, 'cron', NULL, NULL, NULL, NULL),
             (5, ''' OR 1=1--', 'login', 'weird actor', NULL, NULL, 'web', 'failure', 'portal',
              't2', '2024-03-01T00:00:00.5Z'),
             (6, 'ALICE', 'LOGIN', 'uppercase alice', NULL, NULL, 'api', 'success', 'portal',
              't1', '2024-03-02T00:00:00Z'),
             (7, 'carol', 'and', 'or and not', NULL, NULL, 'web', NULL, 'http://example.com/x',
              't1', '2024-03-03T00:00:00Z'),
             (8, 'dave', 'read', '', '{"k":"v"}', NULL, 'api', 'success', 'back\slash', 't2',
              '2024-03-04T00:00:00Z');"#,
        )
        .unwrap();
        let stamps: Vec<(i64, Option<String>)> = c
            .prepare("SELECT id, timestamp FROM e")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (id, ts) in stamps {
            let ts_us = ts.as_deref().map(us);
            let received = ts_us.map_or(us("2024-03-01T00:00:00Z"), |t| t + 1_000_000);
            c.execute("UPDATE e SET ts_us = ?, received_us = ? WHERE id = ?", rusqlite::params![ts_us, received, id])
                .unwrap();
        }
        c
    }

    /// Ids of rows matching `q`, via `to_sql`.
    fn ids(c: &Connection, q: &str) -> Vec<i64> {
        let Some(expr) = parse(q).unwrap_or_else(|e| panic!("{q:?}: {e}")) else {
            return c
                .prepare("SELECT id FROM e ORDER BY id")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        };
        select(c, &expr)
    }

    fn select(c: &Connection, expr: &Expr) -> Vec<i64> {
        let mut params = Vec::new();
        let sql = to_sql(expr, &Cols, &mut params);
        assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
        let full = format!("SELECT id FROM e WHERE {sql} ORDER BY id");
        c.prepare(&full)
            .unwrap_or_else(|e| panic!("{full}: {e}"))
            .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn sql_matches() {
        let c = db();
        let all = vec![1, 2, 3, 4, 5, 6, 7, 8];
        let cases: Vec<(&str, Vec<i64>)> = vec![
            ("", all.clone()),
            ("message:\"\"", all.clone()),
            ("\"\"", all.clone()),
            // Case-sensitive substring.
            ("alice", vec![1, 6]),
            ("Alice", vec![1]),
            ("ALICE", vec![6]),
            ("actor:alice", vec![1]),
            ("actor:lic", vec![1]),
            ("action:LOGIN", vec![6]),
            ("action:Login", vec![]),
            ("actor=Jane", vec![]),
            ("actor=alice", vec![1]),
            ("actor:Jane", vec![3]),
            // Negation, including missing fields.
            ("-actor:alice", vec![2, 3, 4, 5, 6, 7, 8]),
            ("status:success", vec![1, 3, 6, 8]),
            ("-status:success", vec![2, 4, 5, 7]),
            ("new:\"\"", vec![3, 8]),
            ("-new:\"\"", vec![1, 2, 4, 5, 6, 7]),
            ("-alice", vec![2, 3, 4, 5, 7, 8]),
            ("-actor=alice", vec![2, 3, 4, 5, 6, 7, 8]),
            // Quoted phrases.
            ("actor:\"Jane Doe\"", vec![3]),
            ("\"Jane Doe\"", vec![3]),
            ("Jane Doe", vec![3]),
            ("\"Doe Jane\"", vec![]),
            (r#"message:"file \"report.pdf\"""#, vec![2]),
            (r#"new="{\"k\":\"v\"}""#, vec![8]),
            (r#"target:"back\\slash""#, vec![8]),
            (r"back\slash", vec![8]),
            // Precedence.
            ("login OR delete", vec![1, 2, 5]),
            ("alice OR bob status:failure", vec![1, 2, 6]),
            ("(alice OR bob) status:failure", vec![2]),
            ("source:web AND status:failure OR source:cron", vec![2, 4, 5]),
            ("-(source:web OR source:api)", vec![4]),
            ("-source:web -source:api", vec![4]),
            ("tenant_id=t1 -action:login", vec![2, 6, 7]),
            // Lowercase and/or are terms.
            ("and", vec![7]),
            ("or", vec![1, 2, 5, 6, 7]),
            ("carol and", vec![7]),
            ("alice and", vec![]),
            // Injection-looking values.
            ("actor:\"' OR 1=1--\"", vec![5]),
            ("actor=\"' OR 1=1--\"", vec![5]),
            ("' OR 1=1--", vec![5]),
            ("\"'; DROP TABLE e; --\"", vec![]),
            ("actor:';DROP_TABLE_e;--", vec![]),
            ("\"e.actor\"", vec![]),
            ("*", vec![]),
            ("%", vec![]),
            ("_", vec![]),
            // Odd values.
            ("OPS-306", vec![2]),
            ("target:user:42", vec![3]),
            ("target:http://example.com/x", vec![7]),
            ("\"http://example.com\"", vec![7]),
            // Time.
            ("timestamp:2024-03", vec![5, 6, 7, 8]),
            ("timestamp>2024-02-01T00:00:00Z", vec![5, 6, 7, 8]),
            ("timestamp>=2024-02-01T00:00:00+02:00", vec![3, 5, 6, 7, 8]),
            ("timestamp>2024-02-01T00:00:00+02:00", vec![5, 6, 7, 8]),
            ("timestamp<2024-01-02T00:00:00Z", vec![1]),
            ("timestamp<=2024-01-02T00:00:00Z", vec![1, 2]),
            ("timestamp<=2024-01-01T19:00:00-05:00", vec![1, 2]),
            ("-timestamp<2024-02-01T00:00:00Z", vec![4, 5, 6, 7, 8]),
            ("received_at>2024-02-15T00:00:00Z", vec![4, 5, 6, 7, 8]),
            ("timestamp>=2024-01-01T00:00:00Z timestamp<2024-02-01T00:00:00Z", vec![1, 2, 3]),
            // Sub-µs bounds are exact.
            ("timestamp>=2024-03-01T00:00:00.4999999Z", vec![5, 6, 7, 8]),
            ("timestamp>=2024-03-01T00:00:00.5000001Z", vec![6, 7, 8]),
            ("timestamp>2024-03-01T00:00:00.4999999Z", vec![5, 6, 7, 8]),
            ("timestamp>2024-03-01T00:00:00.5000001Z", vec![6, 7, 8]),
            ("timestamp<2024-03-01T00:00:00.5000001Z", vec![1, 2, 3, 5]),
            ("timestamp<2024-03-01T00:00:00.4999999Z", vec![1, 2, 3]),
            ("timestamp<=2024-03-01T00:00:00.5000001Z", vec![1, 2, 3, 5]),
            ("timestamp<=2024-03-01T00:00:00.4999999Z", vec![1, 2, 3]),
        ];
        for (q, want) in &cases {
            assert_eq!(&ids(&c, q), want, "{q:?}");
            // NOT is an exact complement (no NULLs anywhere).
            if let Ok(Some(e)) = parse(q) {
                let neg = select(&c, &not(e));
                let expect: Vec<i64> = all.iter().copied().filter(|i| !want.contains(i)).collect();
                assert_eq!(neg, expect, "-({q})");
            }
        }
        let n: i64 = c.query_row("SELECT count(*) FROM e", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 8);
    }

    #[test]
    fn sql_shape() {
        let mut p = Vec::new();
        let e = parse("-actor:\"' OR 1=1--\" OR message:\"\" timestamp>1970-01-01T00:00:01Z").unwrap().unwrap();
        let sql = to_sql(&e, &Cols, &mut p);
        assert_eq!(
            sql,
            "((NOT (e.actor IS NOT NULL AND instr(e.actor, ?) > 0)) OR \
             ((e.message IS NOT NULL) AND (e.ts_us IS NOT NULL AND e.ts_us > ?)))"
        );
        assert_eq!(p, vec![Value::Text("' OR 1=1--".into()), Value::Integer(1_000_000)]);
        let mut p = Vec::new();
        assert_eq!(to_sql(&parse("actor=x").unwrap().unwrap(), &Cols, &mut p), "(e.actor IS NOT NULL AND e.actor = ?)");
        assert_eq!(to_sql(&and(vec![]), &Cols, &mut p), "(1)");
        assert_eq!(to_sql(&or(vec![]), &Cols, &mut p), "(0)");
        let bad_time = ft("timestamp", Op::Gt, "nope");
        assert_eq!(to_sql(&bad_time, &Cols, &mut p), "(0)");
        assert_eq!(p.len(), 1);
    }

    /// xorshift64*: deterministic, dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_queries_never_panic_and_sql_runs() {
        const PIECES: &[&str] = &[
            " ",
            " ",
            " ",
            "\t",
            "\"",
            "\"",
            "\\",
            "(",
            ")",
            "-",
            "-",
            ":",
            "=",
            ">",
            "<",
            ">=",
            "a",
            "b",
            "alice",
            "Alice",
            "AND",
            "OR",
            "NOT",
            "and",
            "actor",
            "message",
            "timestamp",
            "received_at",
            "foo",
            "_",
            "2024-01-01T00:00:00Z",
            "2024-03-01",
            "'",
            ";",
            "--",
            "*",
            "é",
            "\u{3000}",
            "\0",
            "?",
            "1",
            "%",
            "OPS-306",
            "ü",
        ];
        let c = db();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..4000 {
            let n = rng.below(14);
            let q: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            match parse(&q) {
                Ok(Some(e)) => {
                    ok += 1;
                    let mut params = Vec::new();
                    let sql = to_sql(&e, &Cols, &mut params);
                    // User text never reaches the SQL text.
                    for bad in ['\'', '"', ';', '\\', '\0', '%', '*'] {
                        assert!(!sql.contains(bad), "{q:?} -> {sql}");
                    }
                    let yes = select(&c, &e);
                    let no = select(&c, &not(e));
                    assert_eq!(yes.len() + no.len(), 8, "{q:?}");
                }
                Ok(None) => {}
                Err(e) => {
                    failed += 1;
                    assert!(!e.detail.is_empty() && e.detail.chars().count() <= 200);
                }
            }
        }
        // The generator exercises both outcomes.
        assert!(ok > 500 && failed > 500, "ok={ok} failed={failed}");
    }
}
