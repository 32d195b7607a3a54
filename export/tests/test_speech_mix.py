"""The speech mix of a run: left-out engines, probe rows, the espeak-ng share; the probe table."""

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from visualbyte_export import probe, speech_mix, train
from visualbyte_export.fixture import tiny_train_args
from visualbyte_export.sampler import ClassBalancedTripleSampler

ENGINES = np.array(["espeak", "kokoro", "mbrola", "kokoro", "espeak", "kokoro", "mbrola", "kokoro"])
PLACES = speech_mix.places_in_engine(ENGINES)


def test_probe_rows_are_every_third_row_of_each_probe_engine():
    mask = speech_mix.probe_mask(ENGINES, ["kokoro", "mbrola"], PLACES)
    # kokoro rows 1, 3, 5, 7 → the 1st and 4th; mbrola rows 2, 6 → the 1st.
    assert np.flatnonzero(mask).tolist() == [1, 2, 7]
    assert not speech_mix.probe_mask(ENGINES, [], PLACES).any()


def test_left_out_engines_and_probe_rows_are_never_drawable():
    labels = np.arange(len(ENGINES))
    out = speech_mix.drawable_labels(labels, ENGINES, ["mbrola"], ["kokoro"], PLACES)
    assert out.tolist() == [0, -1, -1, 3, 4, 5, -1, -1]
    assert speech_mix.summary(out, ENGINES) == {"espeak": 2, "kokoro": 2}


def test_an_engine_the_dataset_lacks_is_a_clear_error():
    with pytest.raises(SystemExit, match="--leave-out-engine piper: .*espeak, kokoro, mbrola"):
        speech_mix.drawable_labels(np.zeros(8), ENGINES, ["piper"], [], PLACES)


def _sampler(audio_labels, groups=None, shares=None, classes=2, per_class=40):
    y = np.repeat(np.arange(classes), per_class)
    return ClassBalancedTripleSampler(
        y, y, audio_labels, classes, steps_per_epoch=400, seed=3,
        audio_groups=groups, audio_group_shares=shares,
    )  # fmt: skip


def test_the_espeak_share_sets_how_often_each_group_speaks():
    y = np.repeat(np.arange(2), 40)
    groups = np.tile(np.array([0] * 36 + [1] * 4), 2)  # most rows are espeak-ng's, as in a dataset
    drawn = np.concatenate(_sampler(y, groups, [0.25, 0.75]).global_batches())[:, 3]
    share = Counter(groups[drawn].tolist())[0] / len(drawn)
    assert 0.20 < share < 0.30, share
    # Without groups every row of a class is as likely: espeak-ng's 90 %.
    plain = np.concatenate(_sampler(y).global_batches())[:, 3]
    assert Counter(groups[plain].tolist())[0] / len(plain) > 0.85
    # A zero share draws none of that group's rows.
    only = np.concatenate(_sampler(y, groups, [0.0, 1.0]).global_batches())[:, 3]
    assert set(groups[only].tolist()) == {1}


def test_the_recorded_share_is_taken_first_and_the_rest_split_by_the_espeak_share():
    engines = np.array(["espeak"] * 6 + ["kokoro"] * 2 + ["recorded"] * 2)
    drawable = np.zeros(len(engines))
    assert speech_mix.recorded_groups(engines).tolist() == [0] * 6 + [1] * 2 + [2] * 2
    assert speech_mix.group_shares(drawable, engines, 0.5, 0.2) == pytest.approx([0.4, 0.4, 0.2])
    # Without --espeak-share the synthesizers' rows split as they are drawable: 6 to 2.
    assert speech_mix.group_shares(drawable, engines, None, 0.2) == pytest.approx([0.6, 0.2, 0.2])


def test_the_sampler_never_draws_rows_that_are_not_drawable():
    y = np.repeat(np.arange(2), 40)
    labels = y.copy()
    labels[::2] = -1
    drawn = np.concatenate(_sampler(labels).global_batches())[:, 3]
    assert (drawn % 2 == 1).all()
    batches = np.concatenate(_sampler(labels).global_batches())
    assert (y[batches[:, 3]] == batches[:, 0]).all()


def test_groups_must_match_the_audio_rows():
    y = np.repeat(np.arange(2), 40)
    with pytest.raises(ValueError, match="79 audio groups for 80 audio rows"):
        _sampler(y, np.zeros(79, np.int64), [1.0])


def _with_engines(dataset, tmp_path):
    """A copy of the fixture dataset whose every other training question is Kokoro's."""
    data = tmp_path / "ds"
    shutil.copytree(dataset, data)
    n = len(np.load(data / "train_audio_y.npy"))
    rows = [{"engine": "kokoro"} if i % 2 else {} for i in range(n)]
    (data / "train_audio_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_training_leaves_out_an_engine_and_says_what_it_draws(dataset, tmp_path, capsys):
    data = _with_engines(dataset, tmp_path)
    args = ["--data", str(data), "--run-dir", str(tmp_path / "run"), *tiny_train_args(1)]
    mix = ["--leave-out-engine", "kokoro", "--espeak-share", "0.5", "--max-steps", "2", "--no-eval"]
    assert train.main(args + mix) == 0
    assert "speech rows drawn per engine: {'espeak': 12}" in capsys.readouterr().out


def test_training_speech_mix_flags_fail_clearly(dataset, tmp_path):
    args = ["--data", str(dataset), "--run-dir", str(tmp_path / "run"), *tiny_train_args(1)]
    with pytest.raises(SystemExit, match="train_audio_rows.jsonl is missing"):
        train.main(args + ["--leave-out-engine", "kokoro"])
    with pytest.raises(SystemExit, match="--espeak-share 1.5: a share between 0 and 1"):
        train.main(args + ["--espeak-share", "1.5"])


def test_a_recorded_share_without_recorded_words_is_a_clear_error(dataset, tmp_path):
    data = _with_engines(dataset, tmp_path)
    args = ["--data", str(data), "--run-dir", str(tmp_path / "run"), *tiny_train_args(1)]
    with pytest.raises(SystemExit, match="--recorded-share 0.2: .* has no recorded words"):
        train.main(args + ["--recorded-share", "0.2"])
    with pytest.raises(SystemExit, match="--recorded-share -1.0: a share between 0 and 1"):
        train.main(args + ["--recorded-share", "-1"])


def test_training_draws_recorded_words_at_their_share(dataset, tmp_path, capsys):
    data = _with_engines(dataset, tmp_path)
    rows = (data / "train_audio_rows.jsonl").read_text().splitlines()
    rows[::4] = ['{"engine": "recorded"}'] * len(rows[::4])
    (data / "train_audio_rows.jsonl").write_text("\n".join(rows) + "\n")
    args = ["--data", str(data), "--run-dir", str(tmp_path / "run"), *tiny_train_args(1)]
    mix = ["--espeak-share", "0.5", "--recorded-share", "0.2", "--max-steps", "2", "--no-eval"]
    assert train.main(args + mix) == 0
    assert "(espeak-ng, other engines, recorded): [0.4, 0.4, 0.2]" in capsys.readouterr().out


def test_probe_table_has_a_row_per_question_set_and_a_column_per_model():
    r = {"R@1": 0.5, "class": 0.25, "n": 4}
    text = probe.table(
        {"a": {"kokoro": r, "human": {**r, "class": None}}, "b": {"kokoro": r, "human": r}}
    )
    lines = text.splitlines()
    assert lines[0] == "| questions | n | a | b |"
    assert lines[2] == "| kokoro | 4 | 0.500 / 0.25 | 0.500 / 0.25 |"
    assert lines[3] == "| human | 4 | 0.500 | 0.500 / 0.25 |"


def test_probe_asks_the_held_out_rows_of_each_probe_engine(dataset, tmp_path):
    data = _with_engines(dataset, tmp_path)
    engines, places = speech_mix.engine_rows(data)
    sets = probe.question_sets(data, engines, places, ["kokoro"], espeak_limit=5)
    rows = np.flatnonzero(speech_mix.probe_mask(engines, ["kokoro"], places))
    x, y = sets["kokoro (held-out rows)"]
    assert len(y) == len(rows) and (y == np.load(data / "train_audio_y.npy")[rows]).all()
    assert len(sets["espeak-ng held-out voices"][1]) == 5
    assert "other synthesizers" in sets


def test_model_card_train_command_keeps_the_speech_mix():
    import shlex

    from visualbyte_export.card import _train_command

    argv = ["--data", "/d", "--espeak-share", "0.3", "--leave-out-engine", "kokoro,piper"]
    argv += ["--recorded-share", "0.2"]
    stored = {k: str(v) for k, v in vars(train.build_parser().parse_args(argv)).items()}
    words = shlex.split(_train_command(stored, "/d").replace("\\\n", " "))
    again = train.build_parser().parse_args(words[4:])
    assert again.espeak_share == 0.3 and again.leave_out_engine == "kokoro,piper"
    assert again.recorded_share == 0.2
    assert "--probe-engines" not in words
