"""Whisper's check of the training speech (`hearing`), with a stand-in transcriber, and what
`train --heard-only` leaves out."""

import json
import shutil

import numpy as np
import pytest

from visualbyte_export import hearing, train
from visualbyte_export.fixture import tiny_train_args


@pytest.mark.parametrize(
    "transcript, key, said",
    [
        (" Where is the palm tree?", "palm_tree", True),
        ("Find the T-shirts.", "tshirt", True),
        ("Where is the hotdog?", "hot_dog", True),
        ("Can you find the foxes", "fox", True),
        ("Where is the palm?", "palm_tree", False),
        ("Where is the cathedral?", "cat", False),
        ("", "cat", False),
    ],
)
def test_a_transcript_names_its_class_only_with_the_whole_name(transcript, key, said):
    assert hearing.names_class(transcript, hearing.class_names(key)) is said


def test_a_question_said_with_an_alias_is_heard_by_that_name():
    # The dataset asks "where did you see the sofa" of the class couch.
    assert "sofa" in hearing.class_names("couch")
    assert hearing.names_class("Where did you see the sofa?", hearing.class_names("couch"))


ROWS = [
    {"class": "cat", "voice": "en-us", "lang": "en"},
    {"class": "cat", "engine": "kokoro", "voice": "kokoro:jf_alpha", "lang": "en"},
    {"class": "dog", "engine": "kokoro", "voice": "kokoro:jf_alpha+jm_kumo@0.50", "lang": "en"},
    {"class": "dog", "engine": "pico", "voice": "pico:en-US", "lang": "en"},
    {"class": "dog", "voice": "ko", "lang": "ko"},
    {"class": "cat", "engine": "kokoro", "voice": "kokoro:jf_nezumi", "lang": "en"},
]


def test_the_check_takes_every_nth_english_question_of_each_engine():
    assert hearing.chosen_rows(ROWS, ["kokoro", "pico"], 1) == [1, 2, 3, 5]
    assert hearing.chosen_rows(ROWS, ["kokoro"], 2) == [1, 5]
    assert hearing.chosen_rows(ROWS, ["espeak"], 1) == [0]  # the Korean question is not asked


def _dataset_with_rows(dataset, tmp_path):
    data = tmp_path / "ds"
    shutil.copytree(dataset, data)
    n = len(np.load(data / "train_audio_y.npy"))
    rows = [{**ROWS[i % len(ROWS)], "class": f"c{i}"} for i in range(n)]
    (data / "train_audio_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, rows


def test_a_stopped_check_resumes_and_reports_each_voice(dataset, tmp_path, monkeypatch, capsys):
    data, rows = _dataset_with_rows(dataset, tmp_path)
    monkeypatch.setattr(hearing, "spoken", lambda row: np.ones(2205, np.float32) * 0.1)
    asked = []

    def fake_whisper(model_dir, threads):
        def transcribe(samples):
            assert len(samples) == 1600  # 0.1 s, resampled to Whisper's 16 kHz
            asked.append(len(asked))
            # Hears the class of every second question it is asked.
            return f"where is the c{len(asked) - 1}" if len(asked) % 2 else "where is the moon"

        return transcribe

    # The first run stops after three questions, as a killed process would.
    todo = hearing.chosen_rows(rows, ["kokoro"], 1)
    hearing.check(data, rows, todo[:3], fake_whisper(None, 1))
    monkeypatch.setattr(hearing, "whisper_transcriber", fake_whisper)
    asked.clear()
    assert hearing.main(["--data", str(data), "--engines", "kokoro"]) == 0
    verdicts = hearing.read_verdicts(data)
    assert sorted(verdicts) == todo and len(asked) == len(todo) - 3
    table = capsys.readouterr().out
    heard = sum(v["heard"] for v in verdicts.values())
    assert f"| kokoro | all | {heard}/{len(todo)} " in table
    assert "| kokoro | blends |" in table and "| kokoro | jf_alpha |" in table


def test_a_check_killed_mid_line_resumes_without_a_broken_line(dataset, tmp_path, monkeypatch):
    data, rows = _dataset_with_rows(dataset, tmp_path)
    monkeypatch.setattr(hearing, "spoken", lambda row: np.ones(2205, np.float32) * 0.1)
    whole = json.dumps({"row": 1, "voice": "kokoro:jf_alpha", "heard": True, "transcript": "x"})
    (data / hearing.HEARD_FILE).write_text(whole + "\n" + '{"row": 2, "voi')
    assert list(hearing.read_verdicts(data)) == [1]  # the cut line is not a verdict
    hearing.check(data, rows, [2, 3], lambda samples: "where is the c2")
    verdicts = hearing.read_verdicts(data)
    assert sorted(verdicts) == [1, 2, 3] and verdicts[2]["heard"] and not verdicts[3]["heard"]


def test_heard_only_training_leaves_out_what_whisper_did_not_hear(dataset, tmp_path, capsys):
    data, rows = _dataset_with_rows(dataset, tmp_path)
    verdicts = [{"row": i, "voice": rows[i]["voice"], "heard": i % 3 != 0} for i in (0, 1, 3, 6)]
    (data / hearing.HEARD_FILE).write_text("".join(json.dumps(v) + "\n" for v in verdicts))
    mask = hearing.unheard_rows(data, len(rows))
    assert np.flatnonzero(mask).tolist() == [0, 3, 6]
    args = ["--data", str(data), "--run-dir", str(tmp_path / "run"), *tiny_train_args(1)]
    assert train.main(args + ["--heard-only", "--max-steps", "1", "--no-eval"]) == 0
    out = capsys.readouterr().out
    drawn = json.loads(
        out.split("speech rows drawn per engine: ")[1].splitlines()[0].replace("'", '"')
    )
    assert sum(drawn.values()) == len(rows) - 3


def test_heard_only_without_a_check_names_the_command(dataset, tmp_path):
    data, rows = _dataset_with_rows(dataset, tmp_path)
    with pytest.raises(SystemExit, match="run `python -m visualbyte_export hearing --data"):
        hearing.unheard_rows(data, len(rows))
