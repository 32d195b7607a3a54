//! `visualbyte demo` end to end with the tiny fixture model: JSON answers per utterance of
//! `tests/fixtures/demo/three_questions.wav`, answer pictures, thresholds, typed questions, bad input.
#[path = "util.rs"]
mod util;

use std::path::{Path, PathBuf};

use util::{
    assert_mentions, assert_onsets, bin, fails, fixture, index_build, json_lines, ok, succeeded,
    text, tiny_model, ONSETS,
};

/// An index of two pictures built with `visualbyte index build`.
fn tiny_index(dir: &Path) -> PathBuf {
    let pictures = dir.join("pictures");
    for (label, shade) in [("tiger", 40u8), ("cup", 200u8)] {
        std::fs::create_dir_all(pictures.join(label)).unwrap();
        let img = image::RgbImage::from_fn(40, 40, |x, y| {
            image::Rgb([shade, (x * 6) as u8, (y * 6) as u8])
        });
        img.save(pictures.join(label).join("1.png")).unwrap();
    }
    ok(index_build(dir, "pictures", "memory.vbi", &[]));
    dir.join("memory.vbi")
}

#[test]
fn demo_cli_prints_one_json_answer_per_utterance_and_a_picture() {
    let dir = tempfile::tempdir().unwrap();
    let index = tiny_index(dir.path());
    let picture = dir.path().join("answer_%n.png");
    let out = succeeded(
        bin()
            .args([
                "demo", "--pace", "fast", "--json", "--top-k", "2", "--source",
            ])
            .arg(format!("wav:{}", fixture("demo").display()))
            .arg("--model")
            .arg(tiny_model())
            .arg("--index")
            .arg(&index)
            .arg("--answer-image")
            .arg(&picture),
    );
    let stderr = text(&out.stderr);
    let lines = json_lines(&out.stdout);
    assert_onsets(&lines, &ONSETS);
    for l in &lines {
        let a = &l["answer"];
        assert_eq!(a["modality"], "audio");
        assert_eq!(a["hits"].as_array().unwrap().len(), 2);
        let best = a["hits"][0]["score"].as_f64().unwrap();
        match a["threshold"].as_f64() {
            Some(t) => assert_eq!(a["not_in_memory"], best < t),
            None => assert_eq!(a["not_in_memory"], false),
        }
        assert!(l["latency_ms"]["embed_ms"].as_f64().unwrap() > 0.0);
        let png = l["answer_image"].as_str().unwrap();
        let img = image::open(png).unwrap();
        assert_eq!(img.width(), 3 * 160 + 4 * 8, "question + 2 memories");
    }
    // `%n` numbers the pictures: one file per answer, none overwritten.
    let pictures: Vec<String> = lines
        .iter()
        .map(|l| l["answer_image"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (1..=lines.len())
        .map(|n| {
            dir.path()
                .join(format!("answer_{n}.png"))
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(pictures, want);
    assert!(stderr.contains("done: 3 utterance(s)"), "{stderr}");
}

#[test]
fn demo_help_prints_the_answer_image_number_placeholder_instead_of_a_line_break() {
    // clap turns a literal `{n}` in help text into a line break: the help read
    // "to this PNG (" / " becomes the answer number)".
    let (help, _) = ok(bin().args(["demo", "--help"]).output().unwrap());
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--answer-image"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        line.contains("`%n` in the name becomes the answer number"),
        "{help}"
    );
}

#[test]
fn demo_cli_threshold_flag_turns_answers_into_not_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let index = tiny_index(dir.path());
    // By picture: a typed label matches its own label vector at exactly 1.0 (see the next test).
    let (stdout, _) = ok(demo_typed(
        &index,
        &["--threshold", "1.0", "--match", "picture"],
        "tiger\nred cup\n",
    ));
    let answers: Vec<&str> = stdout.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(answers.len(), 2, "{stdout}");
    assert!(
        answers[0].starts_with("#1 typed \"tiger\": not in memory"),
        "{stdout}"
    );
    assert!(
        answers[1].starts_with("#2 typed \"red cup\": not in memory"),
        "{stdout}"
    );
}

#[test]
fn demo_cli_rejects_bad_profiles_and_sources_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("robot.toml");
    let board =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/rpi4.toml"))
            .unwrap();
    std::fs::write(&bad, format!("{board}\nwheels = 4\n")).unwrap();
    let stderr = fails(bin().args(["demo", "--board"]).arg(&bad).output().unwrap());
    assert_mentions(&stderr, &["wheels", "robot.toml"]);

    let stderr = fails(
        bin()
            .args(["demo", "--source", "speaker"])
            .output()
            .unwrap(),
    );
    assert!(stderr.contains("wav:FILE_OR_FOLDER"), "{stderr}");

    let stderr = fails(bin().args(["demo", "--board", "toaster"]).output().unwrap());
    assert!(stderr.contains("rpi5"), "{stderr}");
}

#[test]
fn demo_cli_answers_a_typed_label_by_its_label_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let index = tiny_index(dir.path());
    let (stdout, _) = ok(demo_typed(&index, &["--threshold", "1.0"], "tiger\n"));
    assert!(
        stdout.starts_with("#1 typed \"tiger\": tiger (1.000, by its label)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/tiger/1.png  (by its label)\n"),
        "{stdout}"
    );
}

/// `visualbyte demo --pace fast --text-stdin` with the tiny model, `index`, the extra `args`, and
/// `typed` on stdin.
fn demo_typed(index: &Path, args: &[&str], typed: &str) -> std::process::Output {
    bin()
        .args(["demo", "--pace", "fast", "--text-stdin", "--model"])
        .arg(tiny_model())
        .arg("--index")
        .arg(index)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(typed.as_bytes()).unwrap();
            drop(stdin);
            child.wait_with_output()
        })
        .unwrap()
}
