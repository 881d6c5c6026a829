//! The shape of the tree, as rules a change cannot break unnoticed: the top-level modules of
//! `src/` form layers and each imports only from layers below it (so there is no import cycle,
//! and an event walks forward through the tree), and no source file grows past 400 lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use `crate::X` only for X in a lower layer.
const LAYERS: &[&[&str]] = &[
    &["label", "shutdown", "config", "ratelimit", "state"],
    &["event"],
    &["journey"],
    &["metrics"],
    &["transport"],
    &["collector", "engine"],
    &["admin", "http", "ops", "replay"],
    &["server"],
];

const MAX_LINES: usize = 400;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// `crate::X` paths in code (comments left out), as the module names X.
fn uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn every_import_points_down_and_files_fit_in_a_head() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut wrong = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        let lines = text.lines().count();
        if lines > MAX_LINES {
            wrong.insert(rel.display().to_string(), format!("{lines} lines"));
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer(&top) else {
            wrong.insert(top.clone(), "not in LAYERS: place it".into());
            continue;
        };
        for used in uses(&text) {
            if used == top || used == "now_ms" {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                _ => _ = wrong.insert(rel.display().to_string(), format!("uses crate::{used}")),
            }
        }
    }
    assert!(wrong.is_empty(), "layout rules broken: {wrong:#?}");
}

#[test]
fn the_rule_sees_an_upward_import() {
    assert_eq!(
        uses("use crate::engine::Engine; // crate::x"),
        ["engine", "x"]
    );
    assert!(uses("//! see crate::engine").is_empty());
    assert!(layer("metrics") < layer("engine"));
}
