//! The test suite keeps its own promises: the integration tests live in `tests/`, outside the crate,
//! so cargo cannot discover them (`autotests = false`) and a file nobody registers would never run.
use std::collections::BTreeSet;
use std::path::Path;

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
