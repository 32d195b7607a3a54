//! Test helper shared by the integration tests that include it (`#[path = "util.rs"] mod util;`): the
//! fixtures and the shipped models, running the `visualbyte` binary, and reading what it prints.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A file or folder under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// The tiny fixture model, `tests/fixtures/tiny.onnx` (32-pixel input, 32-value embedding).
pub fn tiny_model() -> PathBuf {
    let path = fixture("tiny.onnx");
    assert!(path.is_file(), "fixture model missing: {}", path.display());
    path
}

/// The shipped default: `models/` of this checkout.
pub fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The `visualbyte` binary of this build.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_visualbyte"))
}

/// Runs `visualbyte ARGS` in `cwd`, with no default models folder to fall back on.
pub fn run(cwd: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(cwd)
        .env("VISUALBYTE_MODELS", cwd.join("no-models-here"))
        .env_remove("RUST_LOG")
        .output()
        .expect("the visualbyte binary runs")
}

/// Runs `visualbyte index build PICTURES --model <the tiny model> -o INDEX EXTRA…` in `cwd`.
pub fn index_build(cwd: &Path, pictures: &str, index: &str, extra: &[&str]) -> Output {
    let model = tiny_model();
    let mut args = vec![
        "index",
        "build",
        pictures,
        "--model",
        model.to_str().unwrap(),
        "-o",
        index,
    ];
    args.extend_from_slice(extra);
    run(cwd, &args)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Fails the test unless `out` is a success; its (stdout, stderr).
pub fn ok(out: Output) -> (String, String) {
    expect_success(&out, true)
}

/// Fails the test if `out` is a success; its stderr.
pub fn fails(out: Output) -> String {
    expect_success(&out, false).1
}

/// Runs `cmd` and fails the test unless it succeeds.
pub fn succeeded(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command runs");
    expect_success(&out, true);
    out
}

fn expect_success(out: &Output, success: bool) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let wrong = if success {
        "failed"
    } else {
        "succeeded but should not"
    };
    assert!(
        out.status.success() == success,
        "{wrong} ({}): {stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// Every line of `bytes` (UTF-8), parsed as JSON.
pub fn json_lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Fails the test, showing `text`, unless it contains every one of `parts`.
pub fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} is missing from: {text}");
    }
}

/// Where speech starts in `tests/fixtures/demo/three_questions.wav`, seconds.
pub const ONSETS: [f64; 3] = [0.80, 3.19, 5.80];

/// Each answer's `start_s`.
pub fn starts(lines: &[Value]) -> Vec<f64> {
    lines
        .iter()
        .map(|l| l["start_s"].as_f64().unwrap())
        .collect()
}

/// Each utterance starts with its 250 ms pre-roll before the onset.
pub fn assert_onsets(lines: &[Value], onsets: &[f64]) {
    let got = starts(lines);
    assert_eq!(got.len(), onsets.len(), "{lines:?}");
    for (s, onset) in got.iter().zip(onsets) {
        assert!(
            (s - (onset - 0.25)).abs() < 0.12,
            "start {s} for onset {onset}: {got:?}"
        );
    }
    let ns: Vec<u64> = lines.iter().map(|l| l["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, (1..=onsets.len() as u64).collect::<Vec<_>>());
}
