//! `GET /openapi.json` against the routes the server really registers.
//!
//! Three views of the routes must agree:
//! * the **router**: every resource pattern of the app that `trailkeep::http::configure` builds,
//!   read from actix's resource map at run time (so nothing can be registered unseen);
//! * the **source**: every registration in `src/http/**/*.rs` (`web::scope`, `web::resource`,
//!   `.route`, resource helpers such as `post_resource`, actix attribute macros), which gives the
//!   methods; any registration form the scanner does not understand fails the test;
//! * the **document**: every (method, path) of `/openapi.json`.
//!
//! Then every documented operation is called, and must reach its own route (not the fallback) and
//! answer one of its documented statuses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::dev::Service;
use actix_web::{App, HttpResponse, test, web};
use serde_json::Value;

use crate::common::TestServer;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async fn fetch_doc(s: &TestServer) -> Value {
    let app = s.app().await;
    let resp = test::call_service(&app, test::TestRequest::get().uri("/openapi.json").to_request()).await;
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    serde_json::from_slice(&test::read_body(resp).await).expect("/openapi.json is JSON")
}

/// (METHOD, path) of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[actix_web::test]
async fn document_is_openapi_3_and_self_consistent() {
    let s = TestServer::new();
    let doc = fetch_doc(&s).await;
    let version = doc["openapi"].as_str().unwrap_or("");
    assert!(version.starts_with("3.1."), "openapi version {version}");
    assert_eq!(doc["info"]["title"], "trailkeep");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
    let tags: BTreeSet<&str> = doc["tags"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(tags, BTreeSet::from(["H2O Audit Trail", "Pangea Secure Audit Log", "UI & admin", "Operations"]));
    // Literal colons, and Pangea under its prefix.
    let paths = doc["paths"].as_object().unwrap();
    for p in ["/v1/events", "/v1/events:batchCreate", "/v1/events:search", "/pangea/v1/log", "/pangea/v2/log"] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(!paths.keys().any(|p| p.contains("%3A") || p.starts_with("/v1/log")), "{:?}", paths.keys());
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let where_ = format!("{} {path}", m.to_uppercase());
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{where_}: no operationId"));
            assert!(ids.insert(id.to_string()), "{where_}: duplicate operationId {id}");
            let tags = op["tags"].as_array().unwrap_or_else(|| panic!("{where_}: no tags"));
            assert_eq!(tags.len(), 1, "{where_}");
            assert!(tags.iter().all(|t| t.as_str().is_some_and(|t| tags_contains(&doc, t))), "{where_}: unknown tag");
            let summary = op["summary"].as_str().unwrap_or("");
            assert!(
                !summary.is_empty() && summary.len() <= 60 && !summary.contains('\n'),
                "{where_}: summary {summary:?}"
            );
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{where_}: no responses");
            // Path parameters are declared, and only those.
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            assert_eq!(declared, template_params(path), "{where_}: path parameters");
            // Authenticated operations name the bearer scheme; the others declare none.
            if let Some(sec) = op.get("security") {
                assert_eq!(sec, &serde_json::json!([{"api_key": []}]), "{where_}");
            }
            // The Pangea dialect documents its envelope for every JSON answer.
            if path.starts_with("/pangea/") {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    let text = resp.to_string();
                    assert!(
                        text.contains("request_id") || text.contains("#/components/schemas/Pangea"),
                        "{where_} {status}: not a Pangea envelope: {text}"
                    );
                }
            }
        }
    }
    // Every $ref resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

fn tags_contains(doc: &Value, tag: &str) -> bool {
    doc["tags"].as_array().is_some_and(|t| t.iter().any(|x| x["name"] == tag))
}

fn template_params(path: &str) -> BTreeSet<String> {
    path.split('{').skip(1).filter_map(|p| p.split('}').next()).map(str::to_string).collect()
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Coverage

#[actix_web::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let s = TestServer::new();
    let doc = fetch_doc(&s).await;
    let documented = documented(&doc);
    let scanned = scan_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http")).unwrap_or_else(|e| panic!("{e}"));
    let router = router_paths(|_| {}).await;

    // The scanner saw exactly the router's resources (else a registration escaped it).
    let scanned_paths: BTreeSet<String> = scanned.iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        scanned_paths, router,
        "routes found in src/http/ differ from the routes the app registers: teach the scanner in \
         tests/it/openapi.rs the new registration form"
    );
    // Both directions.
    let (undocumented, unserved) = compare(&scanned, &documented);
    assert!(undocumented.is_empty(), "routes without OpenAPI documentation (add #[utoipa::path]): {undocumented:#?}");
    assert!(unserved.is_empty(), "documented operations that no route serves: {unserved:#?}");
    assert!(documented.len() >= 30, "{documented:?}");

    // Call every documented operation: it must reach its own route and answer a documented status.
    let app = s.app().await;
    for (method, path) in &documented {
        let op = &doc["paths"][path.as_str()][method.to_lowercase()];
        let uri = concrete(path, op);
        let req = match method.as_str() {
            "GET" => test::TestRequest::get(),
            "POST" => test::TestRequest::post(),
            "PUT" => test::TestRequest::put(),
            "DELETE" => test::TestRequest::delete(),
            "PATCH" => test::TestRequest::patch(),
            other => panic!("no probe for {other}"),
        }
        .uri(&uri)
        .insert_header(("authorization", format!("Bearer {}", s.admin)))
        .insert_header(("content-type", "application/json"))
        .set_payload("{}")
        .to_request();
        let resp = app.call(req).await.unwrap();
        let status = resp.status().as_u16();
        let matched = resp.request().match_pattern().map(|p| normalize(&p));
        assert_eq!(matched.as_deref(), Some(path.as_str()), "{method} {uri} was not routed to {path} ({status})");
        let statuses = op["responses"].as_object().unwrap();
        assert!(
            statuses.contains_key(&status.to_string()) || statuses.contains_key("default"),
            "{method} {uri} answered {status}, not a documented status {:?}",
            statuses.keys().collect::<Vec<_>>()
        );
        // Streaming answers (live tail, export) are dropped unread here.
        drop(resp);
    }
}

/// A request URI for a path template, using each path parameter's example.
fn concrete(path: &str, op: &Value) -> String {
    let mut uri = path.to_string();
    for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "path") {
        let name = p["name"].as_str().unwrap();
        let example = match &p["example"] {
            Value::String(s) => s.clone(),
            Value::Null => "x".to_string(),
            other => other.to_string(),
        };
        uri = uri.replace(&format!("{{{name}}}"), &example);
    }
    uri
}

/// Undocumented (method, path) registrations, and documented operations without a route.
fn compare(scanned: &[Reg], documented: &BTreeSet<(String, String)>) -> (Vec<String>, Vec<String>) {
    let mut undocumented = Vec::new();
    for r in scanned {
        let ok = if r.method == "ANY" {
            documented.iter().any(|(_, p)| *p == r.path)
        } else {
            documented.contains(&(r.method.clone(), r.path.clone()))
        };
        if !ok {
            undocumented.push(format!("{} {} ({})", r.method, r.path, r.at));
        }
    }
    let mut unserved = Vec::new();
    for (m, p) in documented {
        if !scanned.iter().any(|r| r.path == *p && (r.method == *m || r.method == "ANY")) {
            unserved.push(format!("{m} {p}"));
        }
    }
    (undocumented, unserved)
}

/// `%3A` → `:`, `{name:regex}` → `{name}`.
fn normalize(path: &str) -> String {
    let path = path.replace("%3A", ":").replace("%3a", ":");
    let mut out = String::new();
    let mut depth = 0;
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    skipping = false;
                    out.push(c);
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    skipping = false;
                    out.push(c);
                    continue;
                }
            }
            ':' if depth == 1 => skipping = true,
            _ => {}
        }
        if !skipping {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The router's resources, from actix's resource map

/// Every resource pattern (normalized, full path) of the app built by `configure` (plus `extra`).
async fn router_paths(extra: impl FnOnce(&mut web::ServiceConfig)) -> BTreeSet<String> {
    let seen = Arc::new(Mutex::new(None::<String>));
    let sink = seen.clone();
    let app = App::new().configure(extra).configure(trailkeep::http::configure).wrap_fn(move |req, srv| {
        *sink.lock().unwrap() = Some(format!("{:?}", req.resource_map()));
        srv.call(req)
    });
    let app = test::init_service(app).await;
    let _ = test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
    let text = seen.lock().unwrap().take().expect("resource map captured");
    let tree = DebugParser::new(&text).value();
    let mut out = BTreeSet::new();
    walk_rmap(&tree, "", &mut out);
    assert!(!out.is_empty(), "no resources parsed from {text}");
    out
}

/// A parsed `{:?}` value.
#[derive(Debug)]
enum D {
    Struct(String, Vec<(String, D)>),
    Tuple(String, Vec<D>),
    List(Vec<D>),
    Map,
    Str(String),
    Atom(String),
}

impl D {
    fn field(&self, name: &str) -> Option<&D> {
        match self {
            D::Struct(_, fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn walk_rmap(node: &D, prefix: &str, out: &mut BTreeSet<String>) {
    let D::Struct(name, _) = node else { panic!("not a ResourceMap: {node:?}") };
    assert_eq!(name, "ResourceMap");
    let patterns: Vec<String> = match node.field("pattern").and_then(|p| p.field("patterns")) {
        Some(D::Tuple(kind, items)) if kind == "Single" => match items.as_slice() {
            [D::Str(s)] => vec![s.clone()],
            other => panic!("{other:?}"),
        },
        Some(D::Tuple(kind, items)) if kind == "List" => match items.as_slice() {
            [D::List(l)] => l.iter().map(|d| if let D::Str(s) = d { s.clone() } else { panic!("{d:?}") }).collect(),
            other => panic!("{other:?}"),
        },
        other => panic!("unexpected patterns {other:?}"),
    };
    match node.field("nodes") {
        Some(D::Tuple(kind, items)) if kind == "Some" => {
            // The root or a scope: its pattern prefixes the children.
            let [D::List(children)] = items.as_slice() else { panic!("{items:?}") };
            let pre = format!("{prefix}{}", patterns.first().map(String::as_str).unwrap_or(""));
            for c in children {
                walk_rmap(c, &pre, out);
            }
        }
        Some(D::Atom(a)) if a == "None" => {
            for p in patterns {
                out.insert(normalize(&format!("{prefix}{p}")));
            }
        }
        other => panic!("unexpected nodes {other:?}"),
    }
}

struct DebugParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> DebugParser<'a> {
    fn new(s: &'a str) -> Self {
        Self { s: s.as_bytes(), i: 0 }
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> u8 {
        self.ws();
        self.s.get(self.i).copied().unwrap_or(0)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == c {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) {
        assert!(self.eat(c), "expected {:?} at {} in {:?}", c as char, self.i, String::from_utf8_lossy(self.s));
    }
    fn string(&mut self) -> String {
        self.expect(b'"');
        let mut out = String::new();
        let text = std::str::from_utf8(&self.s[self.i..]).unwrap();
        let mut chars = text.char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                '"' => {
                    self.i += k + 1;
                    return out;
                }
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take_while(|(_, c)| *c != '}').map(|(_, c)| c).collect();
                        let hex = hex.trim_start_matches('{');
                        out.push(char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap());
                    }
                    Some(e) => out.push(e),
                    None => break,
                },
                c => out.push(c),
            }
        }
        panic!("unterminated string");
    }
    fn word(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && !b"{}()[],:\" \n".contains(&self.s[self.i]) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn items(&mut self, close: u8) -> Vec<D> {
        let mut out = Vec::new();
        while !self.eat(close) {
            out.push(self.value());
            self.eat(b',');
        }
        out
    }
    fn value(&mut self) -> D {
        match self.peek() {
            b'"' => D::Str(self.string()),
            b'[' => {
                self.i += 1;
                D::List(self.items(b']'))
            }
            b'(' => {
                self.i += 1;
                D::Tuple(String::new(), self.items(b')'))
            }
            b'{' => {
                self.i += 1;
                // A map (only `named` resources, which are nested again below): skipped.
                while !self.eat(b'}') {
                    self.value();
                    self.expect(b':');
                    self.value();
                    self.eat(b',');
                }
                D::Map
            }
            _ => {
                let name = self.word();
                assert!(!name.is_empty(), "unexpected {:?} at {}", self.peek() as char, self.i);
                match self.peek() {
                    b'{' => {
                        self.i += 1;
                        let mut fields = Vec::new();
                        while !self.eat(b'}') {
                            let f = self.word();
                            self.expect(b':');
                            fields.push((f, self.value()));
                            self.eat(b',');
                        }
                        D::Struct(name, fields)
                    }
                    b'(' => {
                        self.i += 1;
                        D::Tuple(name, self.items(b')'))
                    }
                    _ => D::Atom(name),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Route registrations in the source

/// One registration: METHOD (or `ANY`), normalized full path, and where it is.
#[derive(Debug, Clone)]
struct Reg {
    method: String,
    path: String,
    at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
    Other,
}

/// Tokens with their line numbers; comments, char literals and lifetimes dropped (also used by
/// `layering.rs`).
pub(crate) fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some((raw, hashes, body)) = string_start(&c, i) {
            // "…", b"…", r"…", r#"…"#, br"…"
            let start_line = line;
            i = body;
            let mut value = String::new();
            while let Some(&x) = c.get(i) {
                if x == '\n' {
                    line += 1;
                }
                if !raw && x == '\\' {
                    value.push(x);
                    value.push(c[i + 1]);
                    i += 2;
                    continue;
                }
                if x == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                value.push(x);
                i += 1;
            }
            out.push((Tok::Str(value), start_line));
        } else if ch == '\'' || (ch == 'b' && c.get(i + 1) == Some(&'\'')) {
            // char literal or lifetime
            let j = if ch == 'b' { i + 1 } else { i };
            if c.get(j + 1) == Some(&'\\') {
                i = j + 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(j + 2) == Some(&'\'') {
                i = j + 3;
            } else {
                i = j + 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            out.push((Tok::Other, line));
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
            out.push((Tok::Other, line));
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// If a string literal starts at `i`: (raw, number of `#`, index of the first content char).
fn string_start(c: &[char], i: usize) -> Option<(bool, usize, usize)> {
    let mut k = i;
    if c.get(k) == Some(&'b') {
        k += 1;
    }
    let raw = c.get(k) == Some(&'r');
    if raw {
        k += 1;
    }
    let mut hashes = 0;
    while raw && c.get(k) == Some(&'#') {
        hashes += 1;
        k += 1;
    }
    if c.get(k) != Some(&'"') {
        return None;
    }
    // An identifier ending in b or r (e.g. `attr"`) is not a prefix: only at a token start.
    if k > i && i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    Some((raw, hashes, k + 1))
}

struct Src {
    file: String,
    toks: Vec<(Tok, usize)>,
}

impl Src {
    fn new(file: &str, text: &str) -> Self {
        let toks = tokenize(text);
        let mut src = Self { file: file.to_string(), toks };
        src.drop_test_modules();
        src
    }
    fn tok(&self, i: usize) -> &Tok {
        self.toks.get(i).map(|t| &t.0).unwrap_or(&Tok::Other)
    }
    fn is(&self, i: usize, seq: &[&str]) -> bool {
        seq.iter().enumerate().all(|(k, want)| match self.tok(i + k) {
            Tok::Ident(s) => s == want,
            Tok::Punct(c) => want.len() == 1 && want.starts_with(*c),
            _ => false,
        })
    }
    fn at(&self, i: usize) -> String {
        format!("{}:{}", self.file, self.toks.get(i).map(|t| t.1).unwrap_or(0))
    }
    /// Index of the bracket closing the one at `open`.
    fn close(&self, open: usize) -> usize {
        let mut depth = 0i32;
        for k in open..self.toks.len() {
            match self.tok(k) {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth == 0 {
                        return k;
                    }
                }
                _ => {}
            }
        }
        self.toks.len()
    }
    /// End (exclusive) of the expression containing `i`: the first unmatched closing bracket, or
    /// `;` / `,` at depth 0.
    fn expr_end(&self, i: usize) -> usize {
        let mut depth = 0i32;
        for k in i..self.toks.len() {
            match self.tok(k) {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth < 0 {
                        return k;
                    }
                }
                Tok::Punct(';' | ',') if depth == 0 => return k,
                _ => {}
            }
        }
        self.toks.len()
    }
    fn drop_test_modules(&mut self) {
        let mut k = 0;
        while k < self.toks.len() {
            if self.is(k, &["#", "[", "cfg", "(", "test", ")", "]", "mod"]) {
                let open = (k..self.toks.len()).find(|&j| self.tok(j) == &Tok::Punct('{')).unwrap_or(self.toks.len());
                let end = self.close(open);
                self.toks.drain(k..=end.min(self.toks.len() - 1));
                continue;
            }
            k += 1;
        }
    }
    /// The HTTP method given by a route expression starting at `i`: `web::get()` etc.,
    /// `web::method(Method::X)`, or `ANY` for `web::to(…)`/`web::route()`.
    fn method_at(&self, i: usize) -> Option<String> {
        let Tok::Ident(m) = self.tok(i + 3) else { return None };
        if !self.is(i, &["web", ":", ":"]) {
            return None;
        }
        let m = m.as_str();
        if ["get", "post", "put", "delete", "patch", "head", "trace", "options"].contains(&m) {
            return Some(m.to_uppercase());
        }
        if m == "to" {
            return Some("ANY".into());
        }
        if m == "method" {
            let end = self.close(i + 4);
            return (i + 5..end).rev().find_map(|k| match self.tok(k) {
                Tok::Ident(x) => Some(x.to_uppercase()),
                _ => None,
            });
        }
        None
    }
}

#[derive(Debug, Default)]
struct Helper {
    /// Methods fixed inside the helper.
    fixed: Vec<String>,
    /// The helper takes the route as a parameter: its method comes from the call.
    param: bool,
}

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn scan_dir(dir: &Path) -> Result<Vec<Reg>, String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    files.sort();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let name = f.strip_prefix(root).unwrap_or(f).display().to_string();
            (name, std::fs::read_to_string(f).unwrap())
        })
        .collect();
    scan(&sources)
}

/// Finds every route registration in the given sources.
fn scan(sources: &[(String, String)]) -> Result<Vec<Reg>, String> {
    let srcs: Vec<Src> = sources.iter().map(|(f, t)| Src::new(f, t)).collect();
    let mut regs = Vec::new();
    let mut helpers: BTreeMap<String, Helper> = BTreeMap::new();
    let mut errors = Vec::new();
    // Pass 1: scopes, resources, literal routes, attribute macros; helpers are collected.
    let mut pending_calls = Vec::new();
    for src in &srcs {
        let mut scopes: Vec<(usize, usize, String)> = Vec::new();
        let mut handled = BTreeSet::new();
        for i in 0..src.toks.len() {
            if src.is(i, &["web", ":", ":", "scope", "("]) {
                match src.tok(i + 5) {
                    Tok::Str(p) if src.tok(i + 6) == &Tok::Punct(')') => {
                        scopes.push((i, src.expr_end(i), p.clone()));
                    }
                    _ => errors.push(format!("{}: web::scope with a non-literal prefix", src.at(i))),
                }
            }
        }
        let prefix = |i: usize| -> String {
            let mut s: Vec<&(usize, usize, String)> = scopes.iter().filter(|(a, b, _)| *a <= i && i < *b).collect();
            s.sort_by_key(|(a, _, _)| *a);
            s.iter().map(|(_, _, p)| p.as_str()).collect()
        };
        let push = |regs: &mut Vec<Reg>, method: String, path: &str, i: usize| {
            regs.push(Reg { method, path: normalize(&format!("{}{path}", prefix(i))), at: src.at(i) });
        };
        for i in 0..src.toks.len() {
            // web::resource(PATH | [PATH, …] | param).chain…
            if src.is(i, &["web", ":", ":", "resource", "("]) {
                let open = i + 4;
                let close = src.close(open);
                let mut paths = Vec::new();
                let mut param = None;
                match src.tok(open + 1) {
                    Tok::Str(p) if close == open + 2 => paths.push(p.clone()),
                    Tok::Punct('[') => {
                        for k in open + 2..close - 1 {
                            match src.tok(k) {
                                Tok::Str(p) => paths.push(p.clone()),
                                Tok::Punct(',') => {}
                                _ => errors.push(format!("{}: web::resource list with a non-literal path", src.at(k))),
                            }
                        }
                    }
                    Tok::Ident(name) if close == open + 2 => param = Some(name.clone()),
                    _ => errors.push(format!("{}: web::resource with an unsupported argument", src.at(i))),
                }
                // The builder chain: .route(…), .to(…), and ignorable settings.
                let mut methods = Vec::new();
                let mut takes_route_param = false;
                let mut k = close + 1;
                while src.is(k, &["."]) {
                    let Tok::Ident(name) = src.tok(k + 1).clone() else { break };
                    if src.tok(k + 2) != &Tok::Punct('(') {
                        break;
                    }
                    let end = src.close(k + 2);
                    match name.as_str() {
                        "route" => {
                            handled.insert(k + 1);
                            match (src.method_at(k + 3), src.tok(k + 3)) {
                                (Some(m), _) => methods.push(m),
                                (None, Tok::Ident(_)) if end == k + 4 => takes_route_param = true,
                                _ => errors.push(format!("{}: resource .route() with an unknown method", src.at(k))),
                            }
                        }
                        "to" => methods.push("ANY".into()),
                        "default_service" | "name" | "wrap" | "wrap_fn" | "app_data" => {}
                        other => errors.push(format!("{}: unsupported resource method .{other}()", src.at(k))),
                    }
                    k = end + 1;
                }
                if let Some(_param) = param {
                    // A helper `fn NAME(path: &str, …) -> Resource { web::resource(path)… }`.
                    let f = (0..i).rev().find(|&j| src.is(j, &["fn"]) && src.close(body_open(src, j)) > i);
                    match f.and_then(|j| match src.tok(j + 1) {
                        Tok::Ident(n) => Some(n.clone()),
                        _ => None,
                    }) {
                        Some(name) => {
                            let h = helpers.entry(name).or_default();
                            h.fixed.extend(methods);
                            h.param |= takes_route_param;
                        }
                        None => errors.push(format!("{}: web::resource(variable) outside a helper fn", src.at(i))),
                    }
                } else {
                    if methods.is_empty() {
                        errors.push(format!("{}: web::resource without a route", src.at(i)));
                    }
                    for p in &paths {
                        for m in &methods {
                            push(&mut regs, m.clone(), p, i);
                        }
                    }
                }
            }
        }
        for i in 0..src.toks.len() {
            // .route("/path", web::get()…) on an App, ServiceConfig or Scope.
            if src.is(i, &[".", "route", "("]) && !handled.contains(&(i + 1)) {
                match (src.tok(i + 3), src.tok(i + 4)) {
                    (Tok::Str(p), Tok::Punct(',')) => match src.method_at(i + 5) {
                        Some(m) => push(&mut regs, m, p, i),
                        None => errors.push(format!("{}: .route({p:?}, …) with an unknown method", src.at(i))),
                    },
                    _ => errors.push(format!("{}: unrecognised .route(…) registration", src.at(i))),
                }
            }
            // #[get("/path")] and friends, #[route("/path", method = "GET", …)].
            if src.is(i, &["#", "["])
                && let (Tok::Ident(m), Tok::Punct('('), Tok::Str(p)) = (src.tok(i + 2), src.tok(i + 3), src.tok(i + 4))
            {
                let m = m.as_str();
                if ["get", "post", "put", "delete", "patch", "head", "trace", "options"].contains(&m) {
                    push(&mut regs, m.to_uppercase(), p, i);
                } else if m == "route" {
                    let end = src.close(i + 3);
                    let mut any = false;
                    for k in i + 5..end {
                        if src.is(k, &["method", "="])
                            && let Tok::Str(mm) = src.tok(k + 2)
                        {
                            push(&mut regs, mm.to_uppercase(), p, i);
                            any = true;
                        }
                    }
                    if !any {
                        errors.push(format!("{}: #[route] without a method", src.at(i)));
                    }
                }
            }
            // Registration forms the scanner does not follow.
            for bad in [
                &["Resource", ":", ":", "new"][..],
                &["Scope", ":", ":", "new"],
                &["web", ":", ":", "service", "("],
                &["SwaggerUi", ":", ":", "new"],
                &[".", "external_resource"],
                &["web", ":", ":", "redirect"],
            ] {
                if src.is(i, bad) {
                    errors.push(format!("{}: unsupported registration form {}", src.at(i), bad.concat()));
                }
            }
        }
        pending_calls.push(scopes);
    }
    // Pass 2: calls of resource helpers, e.g. post_resource("/v1/log", web::post().to(log)).
    for (src, scopes) in srcs.iter().zip(&pending_calls) {
        for i in 0..src.toks.len() {
            let Tok::Ident(name) = src.tok(i) else { continue };
            let Some(h) = helpers.get(name) else { continue };
            if i > 0 && src.is(i - 1, &["fn"]) {
                continue;
            }
            if src.tok(i + 1) != &Tok::Punct('(') {
                continue;
            }
            let Tok::Str(path) = src.tok(i + 2) else {
                errors.push(format!("{}: {name}(…) with a non-literal path", src.at(i)));
                continue;
            };
            let mut methods = h.fixed.clone();
            if h.param {
                match src.method_at(i + 4) {
                    Some(m) => methods.push(m),
                    None => errors.push(format!("{}: {name}(…) with an unknown method", src.at(i))),
                }
            }
            let mut s: Vec<&(usize, usize, String)> = scopes.iter().filter(|(a, b, _)| *a <= i && i < *b).collect();
            s.sort_by_key(|(a, _, _)| *a);
            let pre: String = s.iter().map(|(_, _, p)| p.as_str()).collect();
            for m in methods {
                regs.push(Reg { method: m, path: normalize(&format!("{pre}{path}")), at: src.at(i) });
            }
        }
    }
    if errors.is_empty() { Ok(regs) } else { Err(errors.join("\n")) }
}

/// The `{` opening the body of the fn at `fn_tok`.
fn body_open(src: &Src, fn_tok: usize) -> usize {
    (fn_tok..src.toks.len()).find(|&j| src.tok(j) == &Tok::Punct('{')).unwrap_or(src.toks.len() - 1)
}

// ---------------------------------------------------------------------------------------------
// The checks themselves can fail

#[actix_web::test]
async fn scanner_finds_routes_of_a_new_module_and_flags_them_undocumented() {
    let admin = r#"
        //! cfg.route("/commented/out", web::get().to(x));
        pub fn configure(cfg: &mut web::ServiceConfig) {
            cfg.service(
                web::scope("/api/v1")
                    .route("/keys", web::get().to(list_keys))
                    .service(web::resource("/keys/{id}").route(web::delete().to(revoke)).default_service(web::to(nope)))
                    .service(web::resource(["/retention", "/retention/"]).route(web::put().to(set)).route(web::get().to(get))),
            )
            .route("/plain", web::method(Method::PATCH).to(p))
            .service(guarded("/g", web::post().to(g)));
        }
        fn guarded(path: &str, route: actix_web::Route) -> actix_web::Resource {
            web::resource(path).route(route)
        }
        #[get("/macro/{x}")]
        async fn m() -> &'static str { "'" }
        #[cfg(test)]
        mod tests { fn t() { cfg.route("/only/in/tests", web::get().to(t)); } }
    "#;
    let regs = scan(&[("src/http/admin.rs".into(), admin.into())]).unwrap();
    let got: BTreeSet<(String, String)> = regs.iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    let want: BTreeSet<(String, String)> = [
        ("GET", "/api/v1/keys"),
        ("DELETE", "/api/v1/keys/{id}"),
        ("PUT", "/api/v1/retention"),
        ("GET", "/api/v1/retention"),
        ("PUT", "/api/v1/retention/"),
        ("GET", "/api/v1/retention/"),
        ("PATCH", "/plain"),
        ("POST", "/g"),
        ("GET", "/macro/{x}"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);
    let documented = BTreeSet::from([("GET".to_string(), "/api/v1/keys".to_string())]);
    let (undocumented, unserved) = compare(&regs, &documented);
    assert_eq!(undocumented.len(), 8, "{undocumented:?}");
    assert!(unserved.is_empty());
    let (_, unserved) = compare(&regs, &BTreeSet::from([("POST".to_string(), "/api/v1/keys".to_string())]));
    assert_eq!(unserved, ["POST /api/v1/keys"]);

    // Forms it cannot follow are errors, not silently skipped.
    for bad in [
        r#"fn c(cfg: &mut web::ServiceConfig) { cfg.route(PATH, web::get().to(h)); }"#,
        r#"fn c(cfg: &mut web::ServiceConfig) { cfg.service(web::resource("/x").guard(guard::Get()).to(h)); }"#,
        r#"fn c(cfg: &mut web::ServiceConfig) { cfg.service(web::scope(PREFIX).route("/x", web::get().to(h))); }"#,
        r#"fn c(cfg: &mut web::ServiceConfig) { cfg.service(Resource::new("/x").to(h)); }"#,
    ] {
        assert!(scan(&[("src/http/x.rs".into(), bad.into())]).is_err(), "{bad}");
    }
}

#[actix_web::test]
async fn router_view_sees_routes_registered_anywhere() {
    let base = router_paths(|_| {}).await;
    assert!(base.contains("/pangea/v1/log") && base.contains("/v1/events:batchCreate"), "{base:?}");
    let more = router_paths(|cfg| {
        cfg.service(web::scope("/api/v1").route("/widgets/{id:[0-9a-f]+}", web::delete().to(HttpResponse::Ok)));
    })
    .await;
    let added: Vec<_> = more.difference(&base).collect();
    assert_eq!(added, ["/api/v1/widgets/{id}"]);
}
