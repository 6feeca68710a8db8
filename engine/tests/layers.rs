//! The library's modules depend on each other one way, in pipeline order (`lib.rs`): a module may
//! use the modules before it in [`LAYERS`] and none after it, so there is no import cycle and a
//! stage's configuration type lives with the stage. This test reads the sources and names every
//! reference that breaks the order, with its file and line.

use std::path::{Path, PathBuf};

/// Bottom to top. `cli` is the binary's and may use everything.
const LAYERS: &[&str] = &[
    "error", "schema", "parse", "scan", "route", "sink", "catalog", "stats", "security", "batch",
    "detect", "report", "alert", "archive", "config", "ingest", "generate",
];

/// The modules named right after `crate::` in `src` (`crate::a::x` and `crate::{a::x, b}`), with
/// the line of each.
fn referenced_modules(src: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (at, _) in src.match_indices("crate::") {
        let line = src[..at].matches('\n').count() + 1;
        let rest = &src[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.push((name, line));
                        start = false;
                    }
                    c if c.is_whitespace() => {}
                    _ => start = false,
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push((name, line));
        }
    }
    found
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).expect("module directory is readable") {
        files.extend(rust_files(&entry.expect("directory entry").path()));
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
    files
}

#[test]
fn modules_depend_only_on_the_stages_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (rank, module) in LAYERS.iter().enumerate() {
        let file = src.join(format!("{module}.rs"));
        let root = if file.exists() {
            file
        } else {
            src.join(module)
        };
        assert!(root.exists(), "{module} is in LAYERS but not in src/");
        for path in rust_files(&root) {
            let text = std::fs::read_to_string(&path).expect("source is readable");
            for (name, line) in referenced_modules(&text) {
                // Names that are not modules (`crate::Error`, `crate::Result`) are the crate root's.
                if LAYERS.iter().position(|m| *m == name) > Some(rank) {
                    broken.push(format!(
                        "{}:{line}: {module} uses {name}, a later stage",
                        path.strip_prefix(&src).unwrap_or(&path).display()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn every_module_of_the_library_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs is readable");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(!declared.is_empty());
    for module in declared {
        assert!(
            LAYERS.contains(&module),
            "{module} is declared in lib.rs but has no place in LAYERS"
        );
    }
}

#[test]
fn the_reference_reader_sees_groups_and_paths() {
    let src = "use crate::a::b;\nuse crate::{c::{d, e}, f};\nlet x = crate::g::h();";
    let names: Vec<(String, usize)> = referenced_modules(src);
    let names: Vec<(&str, usize)> = names.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    assert_eq!(names, [("a", 1), ("c", 2), ("f", 2), ("g", 3)]);
}
