//! The import graph of `src/`: no cycle between files, and each top-level module imports only
//! modules of lower layers (ARCHITECTURE.md, "Layers").
//!
//! Nodes are the `.rs` files under `src/`. File A has an edge to file B when A names a module that
//! B defines (a file module, or an inline `mod x { … }` inside B):
//! * `use` trees starting with `crate`, `super`, `self` (and `trailkeep` in the binary's `main.rs`);
//! * inline paths such as `crate::store::db_path(…)` or `super::h2o::H2oError`, attributes included;
//! * paths that start with the name of a child module in scope (`pangea::configure` in
//!   `http/mod.rs`), or of a child of a glob-imported module.
//!
//! A parent's `mod child;` declaration is not an edge. Test modules count: a test that reaches up a
//! layer makes the layers lie as much as code does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::openapi::{Tok, rust_files, tokenize};

/// Top-level modules of the library from the top layer down (`main` is the binary, `lib` the crate
/// root). A module may import only modules of a later group; modules of one group are independent
/// of each other. A new top-level module must be placed here.
const LAYERS: &[&[&str]] = &[
    &["main", "lib"],
    &["cli"],
    &["server"],
    &["http"],
    &["replication"],
    &["export", "verify", "backup", "tls"],
    &["configs"],
    &["keys", "serverkeys"],
    &["store"],
    &["config"],
    &["keystore"],
    &["ledger", "search"],
    &["event"],
    &["time", "datadir", "logging"],
];

/// The crate a file belongs to: the library or the binary (`src/main.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Krate {
    Lib,
    Bin,
}

type ModPath = (Krate, Vec<String>);

/// The file-level import graph.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// File names relative to `src/`.
    files: Vec<String>,
    /// from → (to → where the first reference is, `file:line`).
    edges: BTreeMap<usize, BTreeMap<usize, String>>,
}

fn file_module(rel: &str) -> ModPath {
    if rel == "main.rs" {
        return (Krate::Bin, Vec::new());
    }
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    (Krate::Lib, parts)
}

fn is_path_sep(toks: &[(Tok, usize)], i: usize) -> bool {
    matches!(toks.get(i), Some((Tok::Punct(':'), _))) && matches!(toks.get(i + 1), Some((Tok::Punct(':'), _)))
}

fn ident(toks: &[(Tok, usize)], i: usize) -> Option<&str> {
    match toks.get(i) {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn punct(toks: &[(Tok, usize)], i: usize, c: char) -> bool {
    matches!(toks.get(i), Some((Tok::Punct(p), _)) if *p == c)
}

/// The module path of every token: the file's module plus the inline modules around the token;
/// also registers each inline module.
fn inline_modules(
    base: &ModPath,
    toks: &[(Tok, usize)],
    known: &mut BTreeMap<ModPath, usize>,
    file: usize,
) -> Vec<Vec<String>> {
    let mut at = Vec::with_capacity(toks.len());
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let current = |stack: &[(String, usize)]| -> Vec<String> {
        let mut p = base.1.clone();
        p.extend(stack.iter().map(|(n, _)| n.clone()));
        p
    };
    let mut i = 0;
    while i < toks.len() {
        at.push(current(&stack));
        match &toks[i].0 {
            Tok::Ident(m) if m == "mod" && ident(toks, i + 1).is_some() && punct(toks, i + 2, '{') => {
                let name = ident(toks, i + 1).unwrap().to_string();
                at.push(current(&stack));
                at.push(current(&stack));
                depth += 1;
                stack.push((name, depth));
                known.insert((base.0, current(&stack)), file);
                i += 3;
                continue;
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    at
}

/// One path named in a file: its segments, whether it is a glob import, the name a `use` binds
/// it to, and its line.
struct Named {
    segs: Vec<String>,
    glob: bool,
    alias: Option<String>,
    line: usize,
    /// The module the path was written in.
    module: Vec<String>,
}

/// Parses the use tree starting at `i` (after `use`) into leaf paths; returns the index after it.
fn use_tree(toks: &[(Tok, usize)], mut i: usize, prefix: &[String], module: &[String], out: &mut Vec<Named>) -> usize {
    let mut segs = prefix.to_vec();
    if is_path_sep(toks, i) {
        i += 2;
    }
    loop {
        match toks.get(i) {
            Some((Tok::Ident(s), line)) => {
                let line = *line;
                segs.push(s.clone());
                i += 1;
                if is_path_sep(toks, i) {
                    i += 2;
                    continue;
                }
                let mut alias = None;
                if ident(toks, i) == Some("as") {
                    alias = ident(toks, i + 1).map(str::to_string);
                    i += 2;
                }
                if segs.last().is_some_and(|s| s == "self") {
                    segs.pop();
                }
                let alias = alias.or_else(|| segs.last().cloned());
                out.push(Named { segs, glob: false, alias, line, module: module.to_vec() });
                return i;
            }
            Some((Tok::Punct('*'), line)) => {
                out.push(Named { segs, glob: true, alias: None, line: *line, module: module.to_vec() });
                return i + 1;
            }
            Some((Tok::Punct('{'), _)) => {
                i += 1;
                while !punct(toks, i, '}') && i < toks.len() {
                    i = use_tree(toks, i, &segs, module, out);
                    if punct(toks, i, ',') {
                        i += 1;
                    }
                }
                return i + 1;
            }
            _ => return i,
        }
    }
}

/// Builds the graph of `sources` (file names relative to `src/`, texts).
pub(crate) fn graph(sources: &[(String, String)]) -> Graph {
    let mut known: BTreeMap<ModPath, usize> = BTreeMap::new();
    let mut parsed = Vec::new();
    for (n, (rel, text)) in sources.iter().enumerate() {
        let base = file_module(rel);
        known.insert(base.clone(), n);
        let toks = tokenize(text);
        let at = inline_modules(&base, &toks, &mut known, n);
        parsed.push((base, toks, at));
    }
    let children = |k: Krate, m: &[String]| -> Vec<String> {
        known
            .keys()
            .filter(|(kk, p)| *kk == k && p.len() == m.len() + 1 && p.starts_with(m))
            .map(|(_, p)| p[m.len()].clone())
            .collect()
    };
    let mut g = Graph { files: sources.iter().map(|(f, _)| f.clone()).collect(), edges: BTreeMap::new() };
    for (n, (base, toks, at)) in parsed.iter().enumerate() {
        let krate = base.0;
        // Every path the file names: use trees first, then paths in code.
        let mut named = Vec::new();
        let mut in_use = vec![false; toks.len()];
        let mut i = 0;
        while i < toks.len() {
            if ident(toks, i) == Some("use") {
                let end = use_tree(toks, i + 1, &[], &at[i], &mut named);
                in_use[i..end.min(toks.len())].iter_mut().for_each(|b| *b = true);
                i = end;
            } else {
                i += 1;
            }
        }
        // Resolves a path written in `module` to the module it names (longest known prefix), and
        // whether the whole path is that module.
        let resolve =
            |segs: &[String], module: &[String], bound: &BTreeMap<String, ModPath>| -> Option<(ModPath, bool)> {
                let first = segs.first()?;
                let (k, mut abs, rest) = match first.as_str() {
                    "crate" => (krate, Vec::new(), &segs[1..]),
                    "trailkeep" if krate == Krate::Bin => (Krate::Lib, Vec::new(), &segs[1..]),
                    "self" => (krate, module.to_vec(), &segs[1..]),
                    "super" => {
                        let mut m = module.to_vec();
                        let mut k = 0;
                        while segs.get(k).is_some_and(|s| s == "super") {
                            m.pop()?;
                            k += 1;
                        }
                        (krate, m, &segs[k..])
                    }
                    name if children(krate, module).iter().any(|c| c == name) => (krate, module.to_vec(), segs),
                    name => {
                        let (k, m) = bound.get(name)?;
                        (*k, m.clone(), &segs[1..])
                    }
                };
                let mut best = known.contains_key(&(k, abs.clone())).then(|| (k, abs.clone()));
                let mut whole = true;
                for s in rest {
                    abs.push(s.clone());
                    if known.contains_key(&(k, abs.clone())) {
                        best = Some((k, abs.clone()));
                    } else {
                        whole = false;
                        break;
                    }
                }
                best.map(|b| (b, whole))
            };
        // Module names a `use` brings into scope: the children of a glob-imported module, and a
        // module imported by name (`use super::h2o;` then `h2o::ingest::create_event`).
        let mut bound: BTreeMap<String, ModPath> = BTreeMap::new();
        for u in &named {
            let Some(((k, m), whole)) = resolve(&u.segs, &u.module, &BTreeMap::new()) else { continue };
            if u.glob {
                for c in children(k, &m) {
                    let mut p = m.clone();
                    p.push(c.clone());
                    bound.insert(c, (k, p));
                }
            } else if whole && let Some(alias) = &u.alias {
                bound.insert(alias.clone(), (k, m));
            }
        }
        for i in 0..toks.len() {
            let Some(first) = ident(toks, i) else { continue };
            if in_use[i] || !is_path_sep(toks, i + 1) || (i >= 2 && is_path_sep(toks, i - 2)) {
                continue;
            }
            let mut segs = vec![first.to_string()];
            let mut j = i + 1;
            while is_path_sep(toks, j)
                && let Some(s) = ident(toks, j + 2)
            {
                segs.push(s.to_string());
                j += 3;
            }
            named.push(Named { segs, glob: false, alias: None, line: toks[i].1, module: at[i].clone() });
        }
        for u in &named {
            let Some((target, _)) = resolve(&u.segs, &u.module, &bound) else { continue };
            let to = known[&target];
            if to != n {
                g.edges.entry(n).or_default().entry(to).or_insert_with(|| format!("src/{}:{}", sources[n].0, u.line));
            }
        }
    }
    g
}

impl Graph {
    fn name(&self, f: usize) -> &str {
        &self.files[f]
    }

    /// Each set of files that import each other (strongly connected component), with one cycle
    /// through it as `a.rs → b.rs → a.rs` and the line of each reference.
    pub(crate) fn cycles(&self) -> Vec<String> {
        let n = self.files.len();
        let succ =
            |v: usize| -> Vec<usize> { self.edges.get(&v).map(|m| m.keys().copied().collect()).unwrap_or_default() };
        // Kosaraju: finishing order on the graph, then components on the reverse graph.
        let mut order = Vec::new();
        let mut seen = vec![false; n];
        for s in 0..n {
            if seen[s] {
                continue;
            }
            seen[s] = true;
            let mut stack = vec![(s, succ(s), 0usize)];
            while let Some((v, next, k)) = stack.last_mut() {
                if let Some(&w) = next.get(*k) {
                    *k += 1;
                    if !seen[w] {
                        seen[w] = true;
                        stack.push((w, succ(w), 0));
                    }
                } else {
                    order.push(*v);
                    stack.pop();
                }
            }
        }
        let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (a, tos) in &self.edges {
            for b in tos.keys() {
                pred[*b].push(*a);
            }
        }
        let mut comp = vec![usize::MAX; n];
        let mut comps: Vec<Vec<usize>> = Vec::new();
        for &s in order.iter().rev() {
            if comp[s] != usize::MAX {
                continue;
            }
            let c = comps.len();
            comps.push(Vec::new());
            let mut stack = vec![s];
            comp[s] = c;
            while let Some(v) = stack.pop() {
                comps[c].push(v);
                for &w in &pred[v] {
                    if comp[w] == usize::MAX {
                        comp[w] = c;
                        stack.push(w);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (c, members) in comps.iter().enumerate() {
            if members.len() < 2 {
                continue;
            }
            // Shortest way back to the component's first file, within the component.
            let start = *members.iter().min().unwrap();
            let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut last = None;
            'bfs: while let Some(v) = queue.pop_front() {
                for w in succ(v) {
                    if comp[w] != c {
                        continue;
                    }
                    if w == start {
                        last = Some(v);
                        break 'bfs;
                    }
                    if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                        e.insert(v);
                        queue.push_back(w);
                    }
                }
            }
            let mut back = Vec::new();
            let mut v = last.expect("a component of two or more files has a cycle");
            while v != start {
                back.push(v);
                v = prev[&v];
            }
            let path: Vec<usize> = std::iter::once(start).chain(back.into_iter().rev()).chain([start]).collect();
            let mut names: Vec<&str> = members.iter().map(|m| self.name(*m)).collect();
            names.sort_unstable();
            let mut text =
                format!("{} files import each other ({}), e.g. {}", names.len(), names.join(", "), self.name(path[0]));
            for w in path.windows(2) {
                text += &format!(" → {} ({})", self.name(w[1]), self.edges[&w[0]][&w[1]]);
            }
            out.push(text);
        }
        out
    }

    /// Top-level module of a file: `main` for the binary, `lib` for the crate root.
    fn top(&self, f: usize) -> String {
        match file_module(self.name(f)) {
            (Krate::Bin, _) => "main".into(),
            (Krate::Lib, p) => p.first().cloned().unwrap_or_else(|| "lib".into()),
        }
    }

    /// Imports that do not point to a lower layer, and top-level modules missing from `layers`.
    pub(crate) fn layer_violations(&self, layers: &[&[&str]]) -> Vec<String> {
        let rank = |m: &str| layers.iter().position(|g| g.contains(&m));
        let mut out = BTreeSet::new();
        for f in 0..self.files.len() {
            let top = self.top(f);
            if rank(&top).is_none() {
                out.insert(format!("top-level module `{top}` ({}) has no layer in LAYERS", self.name(f)));
            }
        }
        for (a, tos) in &self.edges {
            for (b, at) in tos {
                let (ta, tb) = (self.top(*a), self.top(*b));
                if ta == tb {
                    continue;
                }
                if let (Some(ra), Some(rb)) = (rank(&ta), rank(&tb))
                    && ra >= rb
                {
                    let how = if ra == rb { "the same layer" } else { "a higher layer" };
                    out.insert(format!("`{ta}` imports `{tb}`, {how}: {} → {} ({at})", self.name(*a), self.name(*b)));
                }
            }
        }
        out.into_iter().collect()
    }

    /// `from → to` for every edge (for failure messages and debugging).
    fn describe(&self) -> String {
        let mut s = String::new();
        for (a, tos) in &self.edges {
            for b in tos.keys() {
                s += &format!("{} → {}\n", self.name(*a), self.name(*b));
            }
        }
        s
    }
}

fn src_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(f).unwrap())
        })
        .collect()
}

#[test]
fn src_has_no_import_cycle() {
    let g = graph(&src_sources());
    let cycles = g.cycles();
    assert!(cycles.is_empty(), "import cycles under src/:\n{}\n\nall edges:\n{}", cycles.join("\n"), g.describe());
}

#[test]
fn top_level_modules_import_only_lower_layers() {
    let g = graph(&src_sources());
    let bad = g.layer_violations(LAYERS);
    assert!(bad.is_empty(), "layering (see ARCHITECTURE.md, \"Layers\"):\n{}", bad.join("\n"));
}

#[test]
fn the_graph_sees_the_known_edges() {
    // The scanner must see each way of naming a module, or the two tests above would pass on
    // anything.
    let g = graph(&src_sources());
    let has = |a: &str, b: &str| {
        let (Some(a), Some(b)) = (g.files.iter().position(|f| f == a), g.files.iter().position(|f| f == b)) else {
            return false;
        };
        g.edges.get(&a).is_some_and(|m| m.contains_key(&b))
    };
    for (a, b) in [
        ("main.rs", "cli.rs"),
        ("cli.rs", "server.rs"),
        ("server.rs", "http/mod.rs"),
        ("http/mod.rs", "http/openapi.rs"),
        ("store/writer.rs", "ledger/mod.rs"),
        ("store/writer.rs", "event/mod.rs"),
        ("http/openapi.rs", "http/h2o/ingest.rs"),
        ("http/pangea/ingest.rs", "http/pangea/envelope.rs"),
        ("http/h2o/search.rs", "event/system.rs"),
    ] {
        assert!(has(a, b), "no edge {a} → {b}:\n{}", g.describe());
    }
}

fn synthetic(files: &[(&str, &str)]) -> Graph {
    graph(&files.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect::<Vec<_>>())
}

#[test]
fn a_cycle_through_use_and_inline_paths_is_named() {
    let g = synthetic(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        ("a.rs", "use crate::b::{self, Thing as T};\n"),
        (
            "b.rs",
            "// crate::a::x in a comment is no edge\nfn f() -> &'static str { \"crate::a\" }\nfn g() { crate::c::h() }\n",
        ),
        ("c.rs", "#[attr(body = crate::a::X)]\nfn h() {}\n"),
    ]);
    let cycles = g.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(
        cycles[0],
        "3 files import each other (a.rs, b.rs, c.rs), e.g. a.rs → b.rs (src/a.rs:1) → c.rs (src/b.rs:3) → a.rs (src/c.rs:1)"
    );
}

#[test]
fn parent_child_glob_and_alias_references_are_edges_but_mod_declarations_and_tests_are_not() {
    let g = synthetic(&[
        ("lib.rs", "pub mod http;\n"),
        ("http/mod.rs", "pub mod pangea;\npub mod state;\npub fn configure() { pangea::configure() }\n"),
        ("http/pangea.rs", "pub fn configure() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
        ("http/state.rs", "use super::*;\nfn f() { pangea::configure() }\n"),
        ("http/openapi.rs", "use super::{h2o as h, state};\nfn f() { h::ingest::create() }\n"),
        ("http/h2o/mod.rs", "pub mod ingest;\n"),
        ("http/h2o/ingest.rs", "pub fn create() {}\n"),
    ]);
    assert!(g.cycles().is_empty(), "{:?}\n{}", g.cycles(), g.describe());
    assert_eq!(
        g.describe(),
        "http/mod.rs → http/pangea.rs\nhttp/state.rs → http/mod.rs\nhttp/state.rs → http/pangea.rs\n\
         http/openapi.rs → http/state.rs\nhttp/openapi.rs → http/h2o/mod.rs\nhttp/openapi.rs → http/h2o/ingest.rs\n"
    );
    let g = synthetic(&[
        ("lib.rs", "pub mod http;\n"),
        ("http/mod.rs", "pub mod pangea;\npub struct State;\npub fn configure() { pangea::configure() }\n"),
        ("http/pangea.rs", "use super::State;\npub fn configure() {}\n"),
    ]);
    assert_eq!(
        g.cycles(),
        [
            "2 files import each other (http/mod.rs, http/pangea.rs), e.g. http/mod.rs → http/pangea.rs (src/http/mod.rs:3) → http/mod.rs (src/http/pangea.rs:1)"
        ]
    );
}

#[test]
fn an_import_of_a_higher_or_same_layer_is_reported() {
    let g = synthetic(&[
        ("lib.rs", "pub mod event;\npub mod http;\npub mod store;\npub mod extra;\n"),
        ("main.rs", "fn main() { trailkeep::http::serve() }\n"),
        ("event/mod.rs", "pub mod system;\n"),
        ("event/system.rs", "use crate::store::Pool;\n"),
        ("store/mod.rs", "pub struct Pool;\n"),
        ("http/mod.rs", "use crate::{event, store::Pool};\n"),
        ("extra.rs", ""),
    ]);
    assert!(g.cycles().is_empty());
    let layers: &[&[&str]] = &[&["main", "lib"], &["http"], &["store"], &["event"]];
    assert_eq!(
        g.layer_violations(layers),
        [
            "`event` imports `store`, a higher layer: event/system.rs → store/mod.rs (src/event/system.rs:1)",
            "top-level module `extra` (extra.rs) has no layer in LAYERS",
        ]
    );
}
