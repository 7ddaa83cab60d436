//! The module graph of `builder/src` and `measurements/src` has no cycle (docs/architecture.md:
//! data flows one way, no stage imports the sequencer or a later stage).
//!
//! Every `.rs` file is a node. A file depends on another when it names it: a `crate::`,
//! `super::` or `self::` path (in `use` trees, braces expanded, or inline), a path through a
//! module it declares (`mod x;` then `x::...`), or a path through a module alias its `use`
//! lines bring in (`use crate::tree::{self, ..}` then `tree::apply::...`). A path resolves to
//! the deepest module that exists as a file. A module's own file naming its descendants is no
//! edge: it declares them, re-exports them and delegates to them (the facade); a descendant
//! naming its ancestor's items is an edge, so an ancestor that is also named back through a
//! sibling closes a cycle. Comments and string literals are skipped; `main.rs` (another crate)
//! is not part of the library's graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["tree", "apply"]`; the crate root is empty).
type ModPath = Vec<String>;

/// One source file, parsed.
struct File {
    rel: String,
    module: ModPath,
    text: String,
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<File>) {
    let mut entries: Vec<PathBuf> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, root, out);
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == "main.rs" || rel.starts_with("bin/") {
            continue;
        }
        let mut module: ModPath = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_owned)
            .collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
            module.pop();
        }
        let text = strip_comments(&fs_err::read_to_string(&p).unwrap());
        out.push(File { rel, module, text });
    }
}

/// Removes `//` line comments and `/* */` block comments, and blanks string literals (so a
/// `"crate::x"` in a message is no edge).
fn strip_comments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' && !(i > 0 && (b[i - 1] == b'\'' || b[i - 1] == b'#')) {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            // Multi-byte characters are copied whole.
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a `use` tree (whitespace removed) into full paths: `a::{b,c::{self,d}}` (` as ` already replaced by `@`) →
/// `a::b`, `a::c`, `a::c::d`. Returns (path segments, local alias) pairs.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        if let Some(brace) = part.find('{') {
            let mut head: Vec<String> = prefix.to_vec();
            head.extend(
                part[..brace]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            let inner = &part[brace + 1..part.len() - 1];
            expand_use(inner, &head, out);
            continue;
        }
        let (path, alias) = match part.split_once('@') {
            Some((p, a)) => (p, Some(a.to_owned())),
            None => (part, None),
        };
        let mut segs: Vec<String> = prefix.to_vec();
        for s in path.split("::").filter(|s| !s.is_empty()) {
            if s == "self" {
                continue;
            }
            segs.push(s.to_owned());
        }
        let alias = alias.unwrap_or_else(|| segs.last().cloned().unwrap_or_default());
        out.push((segs, alias));
    }
}

/// Every identifier path (`a::b::c`) in `text`, as segments, with its start offset.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        let prev_ok = i == 0 || {
            let p = chars[i - 1].1;
            !is_ident(p) && p != ':'
        };
        if !(is_ident(c) && prev_ok) {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        loop {
            let start = i;
            while i < chars.len() && is_ident(chars[i].1) {
                i += 1;
            }
            segs.push(chars[start..i].iter().map(|(_, c)| *c).collect::<String>());
            if i + 2 < chars.len()
                && chars[i].1 == ':'
                && chars[i + 1].1 == ':'
                && is_ident(chars[i + 2].1)
            {
                i += 2;
            } else {
                break;
            }
        }
        if segs.len() > 1 {
            out.push(segs);
        }
    }
    out
}

/// The module graph of one crate's `src` directory: file → files it names.
fn graph(src: &Path) -> (Vec<File>, BTreeMap<usize, BTreeSet<usize>>) {
    let mut files = Vec::new();
    collect(src, src, &mut files);
    let by_module: BTreeMap<ModPath, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    // The deepest module file a path names (absolute segments).
    let resolve = |segs: &[String]| -> Option<usize> {
        (0..=segs.len())
            .rev()
            .find_map(|n| by_module.get(&segs[..n]).copied())
    };
    let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (fi, f) in files.iter().enumerate() {
        // Makes a path relative to this file absolute, if it starts at a known anchor.
        let absolute = |segs: &[String], aliases: &BTreeMap<String, ModPath>| -> Option<ModPath> {
            let first = segs.first()?.as_str();
            let mut base: ModPath;
            let mut rest = segs;
            match first {
                "crate" => {
                    base = Vec::new();
                    rest = &segs[1..];
                }
                "self" => {
                    base = f.module.clone();
                    rest = &segs[1..];
                }
                "super" => {
                    base = f.module.clone();
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                }
                name => {
                    let mut child = f.module.clone();
                    child.push(name.to_owned());
                    if by_module.contains_key(&child) {
                        base = f.module.clone();
                    } else if let Some(a) = aliases.get(name) {
                        base = a.clone();
                        rest = &segs[1..];
                    } else {
                        return None;
                    }
                }
            }
            base.extend(rest.iter().cloned());
            Some(base)
        };
        let mut aliases: BTreeMap<String, ModPath> = BTreeMap::new();
        let mut targets: Vec<ModPath> = Vec::new();
        // `use` statements first (they define aliases).
        let mut rest = f.text.as_str();
        while let Some(at) = rest.find("use ") {
            let ok = at == 0 || !is_ident(rest[..at].chars().last().unwrap_or(' '));
            let after = &rest[at + 4..];
            let Some(end) = after.find(';') else { break };
            if ok {
                let tree: String = after[..end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .replace(" as ", "@")
                    .replace(' ', "");
                let mut uses = Vec::new();
                expand_use(&tree, &[], &mut uses);
                for (segs, alias) in uses {
                    if let Some(abs) = absolute(&segs, &aliases) {
                        if by_module.contains_key(&abs) {
                            aliases.insert(alias, abs.clone());
                        }
                        targets.push(abs);
                    }
                }
            }
            rest = &after[end..];
        }
        for segs in paths(&f.text) {
            if let Some(abs) = absolute(&segs, &aliases) {
                targets.push(abs);
            }
        }
        for t in targets {
            if let Some(to) = resolve(&t) {
                if !files[to].module.starts_with(&f.module) {
                    edges.entry(fi).or_default().insert(to);
                }
            }
        }
    }
    (files, edges)
}

/// Every cycle (one per strongly connected component), as file names in order.
fn cycles(n: usize, edges: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<(Vec<usize>, Vec<usize>)> {
    // Tarjan's algorithm, iteratively small enough to recurse: module graphs are shallow.
    struct State<'a> {
        edges: &'a BTreeMap<usize, BTreeSet<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        sccs: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let succ: Vec<usize> = s.edges.get(&v).into_iter().flatten().copied().collect();
        for w in succ {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.sccs.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    // One concrete cycle per component: a shortest path back to its first member (BFS).
    s.sccs
        .into_iter()
        .map(|scc| {
            let members: BTreeSet<usize> = scc.iter().copied().collect();
            let start = *members.iter().next().unwrap();
            let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut end = start;
            'bfs: while let Some(v) = queue.pop_front() {
                for &w in edges.get(&v).into_iter().flatten() {
                    if !members.contains(&w) {
                        continue;
                    }
                    if w == start {
                        end = v;
                        break 'bfs;
                    }
                    if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                        e.insert(v);
                        queue.push_back(w);
                    }
                }
            }
            let mut path = vec![end];
            while let Some(&p) = prev.get(path.last().unwrap()) {
                path.push(p);
            }
            path.reverse();
            if path[0] != start {
                path.insert(0, start);
            }
            (path, members.into_iter().collect())
        })
        .collect()
}

/// One line per cycle: a shortest cycle through the component's first file, then every file
/// of the component.
fn check_crate(src: &Path) -> Vec<String> {
    let (files, edges) = graph(src);
    cycles(files.len(), &edges)
        .into_iter()
        .map(|(c, all)| {
            let mut names: Vec<&str> = c.iter().map(|&i| files[i].rel.as_str()).collect();
            names.push(names[0]);
            let all: Vec<&str> = all.iter().map(|&i| files[i].rel.as_str()).collect();
            format!(
                "{}: {} (the component: {})",
                src.display(),
                names.join(" -> "),
                all.join(", ")
            )
        })
        .collect()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

#[test]
fn no_module_cycles() {
    let mut found = Vec::new();
    for krate in ["builder/src", "measurements/src"] {
        found.extend(check_crate(&repo().join(krate)));
    }
    assert!(
        found.is_empty(),
        "module cycles (each file names the next):\n{}",
        found.join("\n")
    );
}

/// The analysis finds the cycles it must: files naming each other through `super::`,
/// `crate::` with braces, and a `self` alias; a parent naming its children is no edge.
#[test]
fn the_analysis_sees_cycles() {
    let tmp = tempfile::tempdir().unwrap();
    let w = |p: &str, s: &str| {
        let path = tmp.path().join(p);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, s).unwrap();
    };
    w("lib.rs", "mod a;\nmod t;\npub fn run() { a::go() }\n");
    w(
        "a.rs",
        "use crate::{t::{self, X}};\n// use crate::lib;\nfn f() { t::u::g(); }\n",
    );
    w("t/mod.rs", "pub mod u;\npub struct X;\nfn y() { u::g() }\n");
    w("t/u.rs", "pub fn g() { let _ = \"crate::a\"; }\n");
    assert_eq!(check_crate(tmp.path()), Vec::<String>::new());
    // u names a (through two `super`s): a -> t/u.rs -> a.
    w("t/u.rs", "pub fn g() { super::super::a::h() }\n");
    let found = check_crate(tmp.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(": a.rs -> t/u.rs -> a.rs"), "{found:?}");
    // A child naming the root, which names it back: the facade rule, no cycle.
    w("t/u.rs", "pub fn g() { crate::run() }\n");
    w(
        "lib.rs",
        "mod a;\nmod t;\npub fn run() { crate::a::go() }\n",
    );
    w("a.rs", "pub fn go() {}\n");
    assert_eq!(check_crate(tmp.path()), Vec::<String>::new());
    // Siblings naming each other's files: a.rs and t/mod.rs.
    w("a.rs", "pub fn go() { let _ = crate::t::X; }\n");
    w("t/mod.rs", "pub mod u;\nfn z() { crate::a::go() }\n");
    let found = check_crate(tmp.path());
    assert!(
        found.len() == 1 && found[0].contains("a.rs -> t/mod.rs -> a.rs"),
        "{found:?}"
    );
}

/// Every source file (`name.rs`) and module directory (`name/`) that docs/architecture.md
/// names in backticks exists.
#[test]
fn the_architecture_names_only_modules_that_exist() {
    let doc = fs_err::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let bases = [
        "builder/src",
        "measurements/src",
        "verifier/src",
        "attested-server/src",
        "guest-init/src",
        "builder/tests",
        "",
    ];
    let mut missing = Vec::new();
    let mut named = 0;
    for quoted in doc.split('`').skip(1).step_by(2) {
        let is_file = quoted.ends_with(".rs");
        let is_dir = quoted.ends_with('/') && quoted.len() > 1;
        let plain = quoted
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-'));
        if !(plain && (is_file || is_dir)) {
            continue;
        }
        named += 1;
        if !bases.iter().any(|b| repo().join(b).join(quoted).exists()) {
            missing.push(quoted.to_owned());
        }
    }
    assert!(
        named > 20,
        "only {named} module names found: the scan is broken"
    );
    assert!(
        missing.is_empty(),
        "docs/architecture.md names {missing:?}, which do not exist"
    );
}

/// The command line's types stay in `cli.rs` (STYLE 3): no other file of the library, code
/// or comment, mentions `clap`; `main.rs` parses with it and nothing else. The modules a
/// subcommand runs take plain option structs (`cli` converts).
#[test]
fn only_the_cli_knows_clap() {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in fs_err::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|e| e == "rs")
                && fs_err::read_to_string(&p).unwrap().contains("clap")
            {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let src = repo().join("builder/src");
    let mut found = Vec::new();
    walk(&src, &src, &mut found);
    found.sort();
    assert!(
        found.contains(&"cli.rs".to_owned()),
        "cli.rs does not mention clap: the scan is broken ({found:?})"
    );
    found.retain(|f| f != "cli.rs" && f != "main.rs");
    assert!(
        found.is_empty(),
        "these files under builder/src mention clap; move the command-line types to cli.rs \
         and pass plain options: {found:?}"
    );
}
