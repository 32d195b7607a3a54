//! The tree keeps its own promises. The integration tests live in `tests/`, outside the crate, so cargo
//! cannot discover them (`autotests = false`) and a file nobody registers would never run. The library has
//! one module per stage, each depending only on the stages before it, and every source file says what it
//! owns in its first line and stays small enough to read.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[test]
fn every_integration_test_file_is_registered_in_the_crate_manifest() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let registered: BTreeSet<String> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path = \"../tests/"))
        .map(|rest| rest.trim_end_matches('"').to_string())
        .collect();
    let dir = crate_dir.join("../tests");
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".rs"))
        .collect();
    // Shared helpers are included by the tests that use them (`#[path = "onnx_meta.rs"] mod …;`).
    let helpers: BTreeSet<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("#[path = \""))
                .map(|rest| rest.split('"').next().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(helpers.contains("onnx_meta.rs"), "{helpers:?}");
    let files: BTreeSet<String> = files.difference(&helpers).cloned().collect();
    assert!(files.contains("layout.rs"), "{files:?}");
    let unregistered: Vec<_> = files.difference(&registered).collect();
    assert!(
        unregistered.is_empty(),
        "tests/{unregistered:?} are not registered: add a [[test]] entry for each to runtime/Cargo.toml"
    );
    let gone: Vec<_> = registered.difference(&files).collect();
    assert!(
        gone.is_empty(),
        "runtime/Cargo.toml registers missing tests {gone:?}"
    );
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_source_file_says_what_it_owns_and_stays_under_800_lines() {
    let mut files = Vec::new();
    for dir in [
        "runtime/src",
        "runtime/benches",
        "tests",
        "fuzz/fuzz_targets",
    ] {
        files.extend(rust_files(&repo().join(dir)));
    }
    assert!(files.len() > 50, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not start with a `//!` line saying what it owns",
            path.display()
        );
        let lines = text.lines().count();
        assert!(
            lines <= 800,
            "{} has {lines} lines (800 at most): split it",
            path.display()
        );
    }
}

/// The library's stages, lowest first: a module may use its own layer and the ones before it. The
/// renderers come first because capture shares their resampler and the model's contract carries their
/// settings.
const LAYERS: [&[&str]; 6] = [
    &["render"],
    &["capture", "endpoint"],
    &["embed"],
    &["index"],
    &["answer", "bench", "board"],
    &["listen"],
];

#[test]
fn library_stages_depend_only_on_the_stages_before_them() {
    let src = repo().join("runtime/src");
    let layer_of = |module: &str| LAYERS.iter().position(|l| l.contains(&module));
    let mut checked = 0;
    for path in rust_files(&src) {
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(module.as_str(), "lib" | "main" | "cli") || rel.iter().any(|c| c == "tests") {
            continue;
        }
        let own = layer_of(&module)
            .unwrap_or_else(|| panic!("runtime/src/{module} is in no layer of LAYERS"));
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests at the end of a file may use anything.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for used in line.split("crate::").skip(1) {
                let dep: String = used
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    !dep.is_empty(),
                    "{}: name the module after `crate::` (no grouped `crate::{{…}}` imports), so the layers can be checked: {line}",
                    rel.display()
                );
                let Some(dep_layer) = layer_of(&dep) else {
                    continue;
                };
                checked += 1;
                assert!(
                    dep_layer <= own,
                    "{} ({module}) uses crate::{dep}, a later stage: {line}",
                    rel.display()
                );
            }
        }
    }
    assert!(checked > 20, "only {checked} uses of other stages found");
}
