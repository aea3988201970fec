//! The storage crate's files import each other without a circle (issue 20:
//! a circle is how `impl Store` once came to be split across two files that
//! needed each other). A module is a top-level file of `src/` or a
//! directory (its files count as one module); an edge is any `crate::m`
//! path in its code (comments left out), and `crate::Item` counts as an edge to the module `lib.rs`
//! re-exports `Item` from.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_two_storage_files_import_each_other_even_around_a_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let modules = modules(&src);
    assert!(modules.len() > 10, "found only {:?}", modules.keys());
    let exports = reexports(&lib);
    let mut graph = Graph::new();
    for (module, text) in &modules {
        let edges = graph.entry(module.clone()).or_default();
        for name in crate_paths(text) {
            let target = if modules.contains_key(&name) {
                Some(name)
            } else {
                exports.get(&name).cloned()
            };
            if let Some(target) = target.filter(|t| t != module) {
                edges.insert(target);
            }
        }
    }
    // The check can see edges at all (negative space: a graph without any
    // would pass vacuously).
    assert!(graph["store"].contains("commit"), "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", cycle.join(" -> "));
    }
}

/// Module name → its source text (a directory's files concatenated).
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            out.insert(stem, read_tree(&path));
        } else if stem != "lib" && path.extension().is_some_and(|e| e == "rs") {
            out.insert(stem, fs::read_to_string(&path).expect("read"));
        }
    }
    out
}

fn read_tree(dir: &Path) -> String {
    let mut text = String::new();
    for entry in fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            text.push_str(&read_tree(&path));
        } else {
            text.push_str(&fs::read_to_string(&path).expect("read"));
        }
    }
    text
}

/// `Item` → module, from `pub use module::{A, B};` and `pub use module::A;`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace());
        for item in items.split(',') {
            let item = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !item.is_empty() {
                out.insert(item.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// The first name after every `crate::` in code (not in comments: a doc
/// link is not an import), including inside `use crate::{a, b}`.
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| [line, "\n"])
        .collect();
    let text = code.as_str();
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                out.push(ident(part.trim()));
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// A cycle, if any, by depth-first search.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_a_loop_and_passes_a_tree() {
    let edge = |a: &str, b: &str| (a.to_string(), BTreeSet::from([b.to_string()]));
    let looped: Graph = [edge("a", "b"), edge("b", "c"), edge("c", "a")].into();
    assert_eq!(find_cycle(&looped).map(|c| c.len()), Some(4));
    let tree: Graph = [edge("a", "b"), edge("b", "c")].into();
    assert_eq!(find_cycle(&tree), None);
}
