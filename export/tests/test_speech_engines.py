"""The training speech engines besides espeak-ng: each one installed and speaking, tempo, Kokoro's
blended speakers, the held-out synthesizers kept out, and the dataset's engine questions."""

from pathlib import Path

import numpy as np
import pytest

from visualbyte_export import data as D
from visualbyte_export import speech_engines as E

RATE = 16000


@pytest.mark.parametrize(("engine", "voice"), E.all_voices(), ids=lambda v: str(v))
def test_every_training_engine_says_a_word_as_non_silent_speech_of_plausible_length(engine, voice):
    x = E.synthesize("tiger", engine, voice, 1.0, RATE)
    seconds = x.size / RATE
    assert 0.2 <= seconds <= 3.0, f"{engine}:{voice} said 'tiger' in {seconds:.2f} s"
    # Speech, not a click or a hum: loud enough, and its loud 20 ms frames span at least 150 ms.
    frames = x[: x.size // 320 * 320].reshape(-1, 320)
    loud = np.sqrt((frames**2).mean(axis=1)) > 0.02
    assert np.abs(x).max() > 0.1 and np.sqrt((x**2).mean()) > 0.01, f"{engine}:{voice} is quiet"
    assert loud.sum() * 0.02 >= 0.15, f"{engine}:{voice}: {loud.sum()} loud frames"
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.5


@pytest.mark.parametrize(
    ("engine", "voice"),
    [("mbrola", "mb-us1"), ("pico", "en-GB"), ("festival", "rab_diphone"), ("kokoro", "jm_kumo")],
)
def test_a_faster_tempo_says_the_same_words_in_less_time(engine, voice):
    slow = E.synthesize("where is the elephant", engine, voice, 0.8, RATE)
    fast = E.synthesize("where is the elephant", engine, voice, 1.25, RATE)
    assert fast.size < 0.85 * slow.size, (fast.size, slow.size)


def test_a_blended_kokoro_speaker_lies_between_its_two_styles():
    styles = {"a": np.zeros((3, 4), np.float32), "b": np.ones((3, 4), np.float32)}
    np.testing.assert_allclose(E.kokoro_style("a+b@0.25", styles), 0.25)
    np.testing.assert_allclose(E.kokoro_style("a+b", styles), 0.5)
    assert E.kokoro_style("b", styles) is styles["b"]
    with pytest.raises(ValueError, match="no Kokoro style 'c'"):
        E.kokoro_style("a+c", styles)


def test_kokoro_reads_english_through_espeak_ipa_in_its_own_symbols():
    ipa = E.english_phonemes("where is the tiger")
    assert "I" in ipa and "aɪ" not in ipa  # the diphthong of "tiger" as Kokoro's one symbol


def test_held_out_synthesizers_and_unknown_engines_are_refused():
    held = (("flite", "slt"), ("festival", "kal_diphone"), ("festival", "ked_diphone"))
    for engine, voice in held:
        with pytest.raises(ValueError, match="held-out"):
            E.synthesize("tiger", engine, voice, 1.0, RATE)
    with pytest.raises(ValueError, match="unknown speech engine"):
        E.synthesize("tiger", "espeak", "en", 1.0, RATE)
    # No training voice is a held-out speaker under another engine's name.
    held_out = {voice.split("_")[0] for _, voice in D.OTHER_SYNTHS}
    assert held_out <= set(E.HELD_OUT_SPEAKERS)
    for engine, voice in E.all_voices():
        assert not E.speakers_of(voice) & set(E.HELD_OUT_SPEAKERS), f"{engine}:{voice}"
    with pytest.raises(ValueError, match="held-out"):
        E.synthesize("tiger", "rhvoice", "slt", 1.0, RATE)


def test_engine_questions_take_turns_are_reproducible_and_use_training_voices(tmp_path: Path):
    counts = D.Counts.tiny()
    counts.audio_engines = 12
    cfg = D.Config(out=tmp_path, tiny=True, counts=counts)
    classes = D.select_classes(True)
    jobs = D.engine_jobs(cfg, classes)
    assert jobs == D.engine_jobs(cfg, classes)
    assert len(jobs) == 12 * len(classes)
    per_engine = {e: sum(j["engine"] == e for j in jobs) for e in E.ENGINES}
    assert set(per_engine.values()) == {12 * len(classes) // len(E.ENGINES)}, per_engine
    for j in jobs:
        engine, voice = j["voice"].split(":", 1)
        assert engine == j["engine"] and j["lang"] == "en"
        speakers = voice.split("@")[0].split("+")
        assert all(s in E.ENGINES[engine] for s in speakers), voice
        assert 0.8 <= j["tempo"] <= 1.25
    assert any("+" in j["voice"] for j in jobs if j["engine"] == "kokoro")
