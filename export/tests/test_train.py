"""Training end to end on a tiny synthetic dataset: checkpoints, resume after a stop, --init."""

import json
from pathlib import Path

import pytest
import torch

from visualbyte_export import train
from visualbyte_export.fixture import tiny_train_args

TINY = tiny_train_args(2)


def run(dataset, run_dir, *extra):
    return train.main(["--data", str(dataset), "--run-dir", str(run_dir), *TINY, *extra])


def test_training_writes_checkpoints_logs_and_evaluates(dataset, tmp_path):
    assert run(dataset, tmp_path, "--epochs", "2") == 0
    ckpt = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ckpt["state"]["step"] == 12  # 24 images / 4 classes = 6 steps per epoch
    assert ckpt["size"] == 32 and ckpt["model_config"]["num_classes"] == 6
    assert ckpt["renderer"] == {"placeholder": True, "size": 32}
    assert (tmp_path / "best.pt").exists()
    evals = [json.loads(x) for x in (tmp_path / "eval_log.jsonl").read_text().splitlines()]
    assert len(evals) == 2 and {"text_r1", "audio_r1", "image_r1"} <= set(evals[0])
    # The dataset has questions in other fonts and from other synthesizers: probed too, kept out
    # of mean_r1.
    for name in ("other_text", "other_audio"):
        assert 0.0 <= evals[0][f"{name}_r1"] <= evals[0][f"{name}_r5"] <= 1.0
    three = [evals[0][f"{m}_r1"] for m in ("image", "text", "audio")]
    assert evals[0]["mean_r1"] == pytest.approx(sum(three) / 3)
    assert (tmp_path / "train_log.jsonl").read_text().strip()
    assert not list(tmp_path.glob("*.tmp*")), "temporary checkpoint files must be renamed away"


def test_a_stopped_run_resumes_where_it_stopped_and_matches_an_unbroken_run(dataset, tmp_path):
    broken, whole = tmp_path / "broken", tmp_path / "whole"
    common = ("--epochs", "1.5", "--aug", "0", "--no-eval")
    assert run(dataset, broken, *common, "--max-steps", "4") == 0
    assert torch.load(broken / "last.pt", weights_only=False)["state"]["step"] == 4
    assert run(dataset, broken, *common) == 0
    assert run(dataset, whole, *common) == 0
    a = torch.load(broken / "last.pt", weights_only=False)
    b = torch.load(whole / "last.pt", weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 9
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5), k


def test_init_starts_from_a_local_checkpoint_and_a_missing_one_is_an_error(dataset, tmp_path):
    assert run(dataset, tmp_path / "a", "--max-steps", "1", "--no-eval") == 0
    assert (
        run(
            dataset,
            tmp_path / "b",
            "--max-steps",
            "1",
            "--no-eval",
            "--init",
            str(tmp_path / "a" / "last.pt"),
        )
        == 0
    )
    with pytest.raises(SystemExit, match="does not exist"):
        run(dataset, tmp_path / "c", "--init", str(tmp_path / "nope.pt"))


def test_size_must_match_the_rendered_dataset(dataset, tmp_path):
    with pytest.raises(SystemExit, match="rendered at 32"):
        run(dataset, tmp_path, "--size", "64")


def test_bench_prints_throughput(dataset, tmp_path, capsys):
    assert run(dataset, tmp_path, "--bench-steps", "2") == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["triples_per_s"] > 0 and out["images_per_s"] == pytest.approx(
        3 * out["triples_per_s"], rel=0.01
    )
    assert not Path(tmp_path / "last.pt").exists()


def test_a_time_budget_ends_the_schedule_and_measures_the_last_model(dataset, tmp_path):
    assert run(dataset, tmp_path, "--epochs", "50", "--budget-minutes", "0.002") == 0
    ckpt = torch.load(tmp_path / "last.pt", weights_only=False)
    assert 1 <= ckpt["state"]["step"] < 300
    assert ckpt["state"]["train_seconds"] >= 0.12
    assert (tmp_path / "eval_log.jsonl").read_text().strip()
    assert (tmp_path / "best.pt").exists()


def test_lr_schedule_warms_up_then_decays_with_progress():
    assert train.lr_factor(0, 0.0, 10, 0.01) == pytest.approx(0.1)
    assert train.lr_factor(10, 0.0, 10, 0.01) == pytest.approx(1.0)
    assert train.lr_factor(50, 0.5, 10, 0.01) == pytest.approx(0.505)
    assert train.lr_factor(99, 1.0, 10, 0.01) == pytest.approx(0.01)


def test_model_card_train_command_parses_back_to_the_run_arguments():
    import shlex

    from visualbyte_export.evaluate import _train_command
    from visualbyte_export.train import build_parser

    argv = [
        "--data", "/d", "--arch", "convnext_atto", "--backbone-kwargs", '{"conv_mlp": true}',
        "--input-norm", "per_image", "--ce-weights", "0.5,1.5,1", "--align-delay", "4",
        "--aug", "0", "--no-ce-audio", "--lr-head", "0.0015",
    ]  # fmt: skip
    ran = build_parser().parse_args(argv)
    stored = {k: str(v) for k, v in vars(ran).items()}  # as train stores them in a checkpoint
    words = shlex.split(_train_command(stored, "/d").replace("\\\n", " "))
    assert words[:3] == ["python", "-m", "visualbyte_export"] and words[3] == "train"
    again = build_parser().parse_args(words[4:])
    for key in ("arch", "backbone_kwargs", "input_norm", "ce_weights", "align_delay", "aug"):
        assert str(getattr(again, key)) == stored[key], key
    assert again.no_ce_audio and again.lr_head == 0.0015


def test_card_recreates_a_fine_tune_with_every_run_it_continued(dataset, tmp_path):
    import shlex

    from visualbyte_export.evaluate import _train_commands, _training_info
    from visualbyte_export.train import DEFAULT_RUNS, build_parser

    one, two, three = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    quick = ("--max-steps", "1", "--no-eval")
    assert run(dataset, one, *quick, "--aug", "0.7") == 0
    assert run(dataset, two, *quick, "--aug", "0.3", "--init", str(one / "last.pt")) == 0
    assert run(dataset, three, *quick, "--aug", "0", "--init", str(two / "last.pt")) == 0
    info = _training_info(tmp_path / "none.pt", three / "last.pt")
    assert [a["aug"] for a in info["init_recipe"]] == ["0.7", "0.3"]
    text = _train_commands(info["args"], info["init_recipe"], "/d").replace("\\\n", " ")
    runs = [build_parser().parse_args(shlex.split(line)[4:]) for line in text.splitlines()]
    assert [r.aug for r in runs] == [0.7, 0.3, 0.0]
    assert [r.name for r in runs] == ["default-stage1", "default-stage2", "default"]
    assert runs[0].init is None
    assert runs[1].init == DEFAULT_RUNS / "default-stage1" / "last.pt"
    assert runs[2].init == DEFAULT_RUNS / "default-stage2" / "last.pt"
    # A checkpoint from before runs recorded their parents: the chain is read from --init's file.
    ck = torch.load(three / "last.pt", weights_only=False)
    del ck["state"]["init_recipe"]
    torch.save(ck, tmp_path / "old.pt")
    assert [
        a["aug"] for a in _training_info(tmp_path / "x.pt", tmp_path / "old.pt")["init_recipe"]
    ] == ["0.7", "0.3"]


def _unknown_top_probability(ckpt_path, dataset) -> float:
    """Mean largest class probability the checkpoint gives the dataset's non-class questions."""
    import numpy as np

    from visualbyte_export.model import load_checkpoint_model
    from visualbyte_export.train import to_input

    net, _ = load_checkpoint_model(ckpt_path)
    net.eval()
    x = torch.cat(
        [
            to_input(torch.from_numpy(np.load(dataset / f"unknown_{m}.npy")), None, 0.0, "cpu")
            for m in ("text", "audio")
        ]
    )
    with torch.no_grad():
        return float(torch.softmax(net.classify(net.embed(x)), dim=1).max(dim=1).values.mean())


def test_unknown_weight_makes_the_model_unsure_of_non_class_questions(dataset, tmp_path):
    common = ("--epochs", "3", "--aug", "0", "--no-eval", "--seed", "3")
    assert run(dataset, tmp_path / "off", *common) == 0
    assert run(dataset, tmp_path / "on", *common, "--unknown-weight", "10") == 0
    off = _unknown_top_probability(tmp_path / "off" / "last.pt", dataset)
    on = _unknown_top_probability(tmp_path / "on" / "last.pt", dataset)
    assert on < off - 0.1, (on, off)  # measured 0.31 against 0.54
    logged = json.loads((tmp_path / "on" / "train_log.jsonl").read_text().splitlines()[0])
    assert logged["unknown"] >= 0.0
    assert "unknown" not in json.loads(
        (tmp_path / "off" / "train_log.jsonl").read_text().splitlines()[0]
    )


def test_a_resumed_run_with_unknown_weight_draws_the_same_non_class_rows(dataset, tmp_path):
    broken, whole = tmp_path / "broken", tmp_path / "whole"
    common = ("--epochs", "1.5", "--aug", "0", "--no-eval", "--unknown-weight", "1")
    assert run(dataset, broken, *common, "--max-steps", "4") == 0
    assert run(dataset, broken, *common) == 0
    assert run(dataset, whole, *common) == 0
    a = torch.load(broken / "last.pt", weights_only=False)
    b = torch.load(whole / "last.pt", weights_only=False)
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5), k


def test_unknown_weight_on_a_dataset_without_non_class_words_is_a_clear_error(dataset, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    (old / "unknown_audio.npy").unlink()
    with pytest.raises(SystemExit, match="unknown_audio.npy.*rebuild the dataset"):
        run(old, tmp_path / "run", "--max-steps", "1", "--unknown-weight", "1")
    for bad in (("--unknown-weight", "-1"), ("--unknown-weight", "1", "--unknown-per-batch", "0")):
        with pytest.raises(SystemExit, match="must be 0 .off. or positive"):
            run(dataset, tmp_path / "bad", "--max-steps", "1", *bad)


def test_model_card_train_command_keeps_the_unknown_weight_and_omits_it_when_off():
    import shlex

    from visualbyte_export.evaluate import _train_command
    from visualbyte_export.train import build_parser

    for argv, want in (([], None), (["--unknown-weight", "0.5", "--unknown-per-batch", "4"], 0.5)):
        ran = build_parser().parse_args(["--data", "/d", *argv])
        stored = {k: str(v) for k, v in vars(ran).items()}
        line = _train_command(stored, "/d").replace("\\\n", " ")
        again = build_parser().parse_args(shlex.split(line)[4:])
        if want is None:
            assert "--unknown" not in line
        else:
            assert again.unknown_weight == want and again.unknown_per_batch == 4


def with_photos_and_teacher(dataset, tmp_path, teacher=True):
    """A copy of the dataset with training photos (two per class) and teacher features."""
    import shutil

    import numpy as np

    out = tmp_path / "ds"
    shutil.copytree(dataset, out)
    y = np.load(out / "train_image_y.npy")
    n_img = len(y)
    photo_y = np.repeat(np.arange(y.max() + 1), 2)
    rng = np.random.default_rng(0)
    np.save(out / "train_photo.npy", rng.integers(0, 255, (len(photo_y), 32, 32, 3), np.uint8))
    np.save(out / "train_photo_y.npy", photo_y)
    if teacher:
        for name, n in (("train_image", n_img), ("train_photo", len(photo_y))):
            f = rng.normal(size=(n, 24)).astype(np.float32)
            np.save(
                out / f"{name}_teacher.npy",
                (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float16),
            )
    return out, n_img + len(photo_y)


def test_training_photos_join_the_pictures_unless_left_out(dataset, tmp_path):
    ds, n = with_photos_and_teacher(dataset, tmp_path, teacher=False)
    assert len(train.RenderedSplit(ds, "train").y["image"]) == n
    assert len(train.RenderedSplit(ds, "train", photos=False).y["image"]) == n - 12


def test_teacher_weight_distils_into_a_saved_head_and_resumes(dataset, tmp_path):
    ds, _ = with_photos_and_teacher(dataset, tmp_path)
    assert run(ds, tmp_path / "r", "--epochs", "1", "--teacher-weight", "1.0") == 0
    ckpt = torch.load(tmp_path / "r" / "last.pt", weights_only=False)
    assert ckpt["teacher_head"]["weight"].shape == (
        24,
        ckpt["model"]["projector.1.weight"].shape[1],
    )
    logged = [json.loads(x) for x in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    assert 0.0 < logged[0]["teacher"] <= 2.0
    # The head is a training aid: the exported network's weights do not include it.
    assert not any(k.startswith("teacher") for k in ckpt["model"])
    assert run(ds, tmp_path / "r", "--epochs", "2", "--teacher-weight", "1.0") == 0


def test_teacher_weight_without_teacher_features_names_the_command(dataset, tmp_path):
    ds, _ = with_photos_and_teacher(dataset, tmp_path, teacher=False)
    with pytest.raises(SystemExit, match="visualbyte_export teacher --data"):
        run(ds, tmp_path / "r", "--epochs", "1", "--teacher-weight", "1.0")


def test_card_recreates_the_teacher_step_and_flags_only_when_the_teacher_was_on():
    import shlex

    from visualbyte_export.evaluate import _train_commands
    from visualbyte_export.train import build_parser

    for argv, on in (([], False), (["--teacher-weight", "0.5", "--no-photos"], True)):
        ran = build_parser().parse_args(["--data", "/d", *argv])
        stored = {k: str(v) for k, v in vars(ran).items()}
        block = _train_commands(stored, [], "/d")
        assert ("python -m visualbyte_export teacher --data /d" in block) == on
        line = block.splitlines()
        train_line = "\n".join(line[line.index(next(x for x in line if " train" in x)) :])
        again = build_parser().parse_args(shlex.split(train_line.replace("\\\n", " "))[4:])
        assert again.teacher_weight == (0.5 if on else 0.0) and again.no_photos == on


def _rows_as_input(dataset, name, rows=None):
    import numpy as np

    from visualbyte_export.train import to_input

    pixels = np.load(dataset / f"{name}.npy")
    return to_input(torch.from_numpy(pixels if rows is None else pixels[rows]), None, 0.0, "cpu")


def _drift_from(anchor_ckpt, ckpt, x) -> float:
    """Mean KL(anchor's class posterior || the checkpoint's) over inputs ``x``, both networks in
    eval mode."""
    from visualbyte_export.anchoring import anchor_loss
    from visualbyte_export.model import load_checkpoint_model

    with torch.no_grad():
        old, new = (load_checkpoint_model(p)[0].eval() for p in (anchor_ckpt, ckpt))
        return float(anchor_loss(new.classify(new.embed(x)), old.classify(old.embed(x))))


def test_anchor_loss_is_zero_for_the_anchors_own_posterior_and_grows_as_it_drifts():
    from visualbyte_export.anchoring import anchor_loss

    g = torch.Generator().manual_seed(0)
    old = torch.randn(8, 5, generator=g) * 4
    assert float(anchor_loss(old, old)) == pytest.approx(0.0, abs=1e-6)
    near = float(anchor_loss(old + 0.3 * torch.randn(8, 5, generator=g), old))
    far = float(anchor_loss(old + 3.0 * torch.randn(8, 5, generator=g), old))
    assert 0.0 < near < far


def test_an_anchored_run_stays_nearer_its_anchor_than_a_free_one_and_resumes(dataset, tmp_path):
    start = tmp_path / "start"
    # Long enough for settled BatchNorm statistics: the anchor is read in eval mode.
    assert run(dataset, start, "--epochs", "4", "--aug", "0", "--no-eval") == 0
    common = ("--epochs", "3", "--aug", "0", "--no-eval", "--seed", "5")
    common += ("--init", str(start / "last.pt"))
    anchored = ("--anchor", str(start / "last.pt"), "--anchor-weight", "20")
    assert run(dataset, tmp_path / "free", *common) == 0
    # Stopped and resumed: the anchor is read again from --anchor, not from the run's weights.
    assert run(dataset, tmp_path / "kept", *common, *anchored, "--max-steps", "5") == 0
    assert run(dataset, tmp_path / "kept", *common, *anchored) == 0
    x = torch.cat([_rows_as_input(dataset, f"train_{m}") for m in ("image", "text")])
    free = _drift_from(start / "last.pt", tmp_path / "free" / "last.pt", x)
    kept = _drift_from(start / "last.pt", tmp_path / "kept" / "last.pt", x)
    assert kept < 0.5 * free, (kept, free)  # measured 0.10 against 0.54
    logged = [
        json.loads(x) for x in (tmp_path / "kept" / "train_log.jsonl").read_text().splitlines()
    ]
    assert logged and all(rec["anchor"] >= 0.0 for rec in logged)


def test_anchor_engines_keep_those_engines_spoken_rows_near_the_anchor(dataset, tmp_path):
    import shutil

    import numpy as np

    data = tmp_path / "ds"
    shutil.copytree(dataset, data)
    n = len(np.load(data / "train_audio_y.npy"))
    rows = [{"engine": "kokoro"} if i % 2 else {"engine": "espeak"} for i in range(n)]
    (data / "train_audio_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = tmp_path / "start"
    assert run(data, start, "--epochs", "4", "--aug", "0", "--no-eval") == 0
    common = ("--epochs", "3", "--aug", "0", "--no-eval", "--seed", "5")
    common += ("--init", str(start / "last.pt"), "--anchor", str(start / "last.pt"))
    common += ("--anchor-weight", "20")
    assert run(data, tmp_path / "pictures", *common) == 0
    assert run(data, tmp_path / "espeak", *common, "--anchor-engines", "espeak") == 0
    espeak = _rows_as_input(data, "train_audio", list(range(0, n, 2)))
    loose = _drift_from(start / "last.pt", tmp_path / "pictures" / "last.pt", espeak)
    kept = _drift_from(start / "last.pt", tmp_path / "espeak" / "last.pt", espeak)
    assert kept < 0.5 * loose, (kept, loose)
    with pytest.raises(SystemExit, match="--anchor-engines festival: the dataset's speech engines"):
        run(data, tmp_path / "x", *common, "--anchor-engines", "festival")
    with pytest.raises(SystemExit, match="--anchor-engines needs --anchor MODEL"):
        run(data, tmp_path / "y", "--max-steps", "1", "--anchor-engines", "espeak")


def test_an_anchor_weight_without_an_anchor_model_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(SystemExit, match="needs --anchor MODEL"):
        run(dataset, tmp_path / "a", "--max-steps", "1", "--anchor-weight", "1")
    with pytest.raises(SystemExit, match="needs --anchor MODEL"):
        run(
            dataset,
            tmp_path / "b",
            *("--max-steps", "1", "--anchor-weight", "1", "--anchor", str(tmp_path / "no.onnx")),
        )
    with pytest.raises(SystemExit, match="0 \\(off\\) or positive"):
        run(dataset, tmp_path / "c", "--max-steps", "1", "--anchor-weight", "-1")


def test_card_keeps_the_anchor_flags_only_when_the_anchor_was_on():
    import shlex

    from visualbyte_export.evaluate import _train_command
    from visualbyte_export.train import build_parser

    for argv, on in (
        (["--anchor", "/m/visualbyte.onnx"], False),
        (
            [
                "--anchor",
                "/m/visualbyte.onnx",
                "--anchor-weight",
                "2",
                "--anchor-engines",
                "espeak",
            ],
            True,
        ),
    ):
        ran = build_parser().parse_args(["--data", "/d", *argv])
        stored = {k: str(v) for k, v in vars(ran).items()}
        line = _train_command(stored, "/d")
        assert ("--anchor" in line) == on
        again = build_parser().parse_args(shlex.split(line.replace("\\\n", " "))[4:])
        assert again.anchor_weight == (2.0 if on else 0.0)
        assert (str(again.anchor) == "/m/visualbyte.onnx") == on
        assert again.anchor_engines == ("espeak" if on else "")
