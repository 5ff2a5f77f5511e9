//! Which file of a crate imports which, read from the source text: for tests that keep a
//! crate's shape (`controlplane/tests/layers.rs`, `agent/tests/imports.rs`).
//!
//! A file imports another when its code names an item of that file by a path: `crate::a::b`,
//! `super::x` or `child::x` of a child it declares, or uses a name it re-exports. A parent's
//! `mod` and `pub use` lines alone declare and re-export its children and are not imports;
//! inline `#[cfg(test)] mod … { … }` modules are skipped (a test reads what it tests; a test
//! module in a file of its own is a leaf nothing imports). Comments are ignored. `main.rs` is
//! skipped (its `crate` is the binary).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file as its module path (`["judge", "policy"]` for `src/judge/policy.rs`; `["lib"]`).
pub type Module = Vec<String>;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(src: &Path, path: &Path) -> Module {
    let rel = path.strip_prefix(src).expect("under src");
    let s = rel.with_extension("").to_string_lossy().replace('\\', "/");
    if s == "lib" || s == "main" {
        return vec![s];
    }
    s.split('/').map(str::to_string).collect()
}

/// Whether a line is a re-export (`pub use …;`, `pub(crate) use …;`).
fn is_reexport(t: &str) -> bool {
    t.starts_with("pub use ")
        || (t.starts_with("pub(")
            && t.split_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with("use ")))
}

/// The code of a file without comments and re-export lines.
pub fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.split("//").next().unwrap_or("");
        let t = line.trim_start();
        // An inline test module (`#[cfg(test)] mod tests { … }`) reads whatever it tests; it
        // is skipped to its closing brace.
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod ") && n.trim_end().ends_with('{'))
        {
            let mut depth = 0i64;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                if depth <= 0 {
                    break;
                }
            }
            continue;
        }
        if is_reexport(t) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The names a file re-exports, with the path each comes from (`pub use a::{B, c::D as E};`
/// gives `B` → `a::B` and `E` → `a::c::D`). A file that re-exports a name and then uses it
/// imports it.
fn reexports(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.split("//").next().unwrap_or("").trim();
        if pending.is_empty() && !is_reexport(t) {
            continue;
        }
        pending.push_str(t);
        pending.push(' ');
        if !t.ends_with(';') {
            continue; // a re-export over several lines
        }
        let stmt = std::mem::take(&mut pending);
        let body = stmt[stmt.find("use ").map_or(0, |i| i + 4)..]
            .trim()
            .trim_end_matches(';');
        let (prefix, items) = match body.split_once('{') {
            Some((p, rest)) => (p.trim_end_matches("::"), rest.trim_end_matches('}')),
            None => match body.rsplit_once("::") {
                Some((p, last)) => (p, last),
                None => continue,
            },
        };
        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (path, alias) = match item.split_once(" as ") {
                Some((p, a)) => (p.trim(), a.trim()),
                None => (item, item.rsplit("::").next().unwrap_or(item)),
            };
            let mut full: Vec<String> = prefix.split("::").map(str::to_string).collect();
            full.extend(path.split("::").map(str::to_string));
            out.push((alias.to_string(), full));
        }
    }
    out
}

/// Whether `word` occurs in `code` as a whole identifier.
fn uses_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        !before.is_some_and(|c| ident(c) || c == ':') && !after.is_some_and(ident)
    })
}

fn ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `word::a::b…` path in `code` (the segments after `word`), where `word` stands alone
/// (not after `::`, `$` or an identifier character).
pub fn paths_after(code: &str, word: &str) -> Vec<Vec<String>> {
    let needle = format!("{word}::");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find(&needle) {
        let at = from + i;
        from = at + needle.len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| ident(c) || c == ':' || c == '$') {
            continue;
        }
        let (prefix, rest) = prefix_of(&code[from..]);
        // `word::a::{b, c::d}`: each item of the group is a path of its own.
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let segs = segments(item.trim());
                if !segs.is_empty() && segs[0] != "self" {
                    out.push(prefix.iter().cloned().chain(segs).collect());
                }
            }
            continue;
        }
        out.push(prefix.into_iter().chain(segments(rest)).collect());
    }
    out
}

/// The `a::b::` segments at the start of `s` when a `{` group follows them, and the rest
/// from the `{`; otherwise no segments and `s` whole.
fn prefix_of(s: &str) -> (Vec<String>, &str) {
    let mut segs = Vec::new();
    let mut cur = s;
    loop {
        let n = cur.find(|c: char| !ident(c)).unwrap_or(cur.len());
        if n == 0 {
            break;
        }
        match cur[n..].strip_prefix("::") {
            Some(r) => {
                segs.push(cur[..n].to_string());
                if r.starts_with('{') {
                    return (segs, r);
                }
                cur = r;
            }
            None => break,
        }
    }
    (Vec::new(), s)
}

/// The `a::b::c` path at the start of `s`.
fn segments(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut cur = s;
    loop {
        let n = cur.find(|c: char| !ident(c)).unwrap_or(cur.len());
        if n == 0 {
            break;
        }
        segs.push(cur[..n].to_string());
        match cur[n..].strip_prefix("::") {
            Some(r) => cur = r,
            None => break,
        }
    }
    segs
}

/// The longest prefix of `path` that is a file of the crate.
fn resolve(path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains(m))
}

pub fn imports(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = &all_modules(src);
    let mut paths = Vec::new();
    files(src, &mut paths);
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for p in paths {
        let m = module_of(src, &p);
        if m == ["main"] {
            continue; // the binary's `crate` is itself; it reaches the library by name
        }
        let text = std::fs::read_to_string(&p).expect("read file");
        let code = code(&text);
        let own = if m == ["lib"] { vec![] } else { m.clone() };
        let mut to = BTreeSet::new();
        for segs in paths_after(&code, "crate") {
            if let Some(r) = resolve(&segs, modules) {
                to.insert(r);
            }
        }
        for segs in paths_after(&code, "super") {
            let mut base = own[..own.len().saturating_sub(1)].to_vec();
            let mut rest = segs.as_slice();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            let full: Vec<String> = base.iter().cloned().chain(rest.iter().cloned()).collect();
            let parent = if base.is_empty() {
                vec!["lib".to_string()]
            } else {
                base
            };
            if let Some(r) = resolve(&full, modules).or(Some(parent)) {
                to.insert(r);
            }
        }
        for (name, path) in reexports(&text) {
            if !uses_word(&code, &name) {
                continue;
            }
            let full: Vec<String> = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("super") => {
                    let mut base = own[..own.len().saturating_sub(1)].to_vec();
                    base.extend(path[1..].iter().cloned());
                    base
                }
                _ => own.iter().cloned().chain(path.iter().cloned()).collect(),
            };
            if let Some(r) = resolve(&full, modules) {
                to.insert(r);
            }
        }
        for line in code.lines() {
            let t = line.trim();
            let decl = t
                .strip_prefix("pub mod ")
                .or_else(|| t.strip_prefix("mod "))
                .or_else(|| t.split_once(") mod ").map(|(_, r)| r));
            if let Some(name) = decl.and_then(|r| r.strip_suffix(';')) {
                let child: Module = own.iter().cloned().chain([name.to_string()]).collect();
                if modules.contains(&child) && !paths_after(&code, name).is_empty() {
                    to.insert(child);
                }
            }
        }
        to.remove(&m);
        edges.insert(m, to);
    }
    edges
}

pub fn all_modules(src: &Path) -> BTreeSet<Module> {
    let mut paths = Vec::new();
    files(src, &mut paths);
    paths.iter().map(|p| module_of(src, p)).collect()
}

/// `judge/policy`.
pub fn name(m: &Module) -> String {
    m.join("/")
}

/// The import circles of `edges`: each set of files that import one another, directly or
/// through others, once, as names, sorted.
pub fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    let reach = |start: &Module| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(m) = stack.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    stack.push(n.clone());
                }
            }
        }
        seen
    };
    let mut out: BTreeSet<Vec<String>> = BTreeSet::new();
    for m in edges.keys() {
        let r = reach(m);
        if r.contains(m) {
            let members: Vec<String> = edges
                .keys()
                .filter(|n| r.contains(*n) && reach(n).contains(m))
                .map(name)
                .collect();
            out.insert(members);
        }
    }
    out.into_iter().collect()
}

/// Panics with every import circle among the files under `src`, each as `a ↔ b ↔ …`.
pub fn assert_no_circles(src: &Path) {
    let circles = circles(&imports(src));
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles
            .iter()
            .map(|c| c.join(" ↔ "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
