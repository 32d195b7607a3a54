"""Dataset builder on a tiny synthetic subset: fake emoji and Fashion-MNIST, real espeak-ng.

The runtime's renderer is replaced by tests/fake_visualbyte.py (same command line and manifest), so
these tests need neither the Rust build nor the downloads. One test uses the real binary if present.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import wave
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualbyte_export import classes as C
from visualbyte_export import data as D
from visualbyte_export import render as R
from visualbyte_export import speech_engines as E

HERE = Path(__file__).resolve().parent
TINY_EMOJI = {
    "tiger2": ("1F405", "TIGER"),
    "tiger": ("1F42F", "TIGER FACE"),
    "apple": ("1F34E", "RED APPLE"),
    "green_apple": ("1F34F", "GREEN APPLE"),
    "man": ("1F468", "MAN"),
    "dog2": ("1F415", "DOG"),
    "dog": ("1F436", "DOG FACE"),
}
SIZE = 32
# Fewer samples than --tiny, so that the tests stay fast on a busy machine.
TEST_COUNTS = D.Counts(
    audio_train=4,
    audio_eval=2,
    audio_other=2,
    text_other=2,
    text_train=4,
    text_eval=1,
    image_augs=1,
    image_train_max=3,
    image_eval_max=1,
    fashion_train=2,
    fashion_eval=1,
    ko_fraction=0.5,
    neg_en=2,
    neg_ko=1,
    unknown_en=2,
    unknown_ko=1,
    unknown_audio=2,
    unknown_text=3,
)


def _png(path: Path, seed: int, px: int = 64) -> None:
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (px, px, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((px, px)) < 0.3, 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)


def make_downloads(root: Path) -> Path:
    """emoji-datasource-{google,twitter,facebook} with the tiny classes' emoji (man: skin tones)."""
    entries = []
    for short, (code, name) in TINY_EMOJI.items():
        e = {
            "unified": code,
            "name": name,
            "image": f"{code.lower()}.png",
            "short_name": short,
            "short_names": [short],
            "category": "Animals & Nature",
            "subcategory": "x",
        }
        for style in ("google", "twitter", "facebook"):
            e[f"has_img_{style}"] = True
        if short == "man":
            e["skin_variations"] = {
                tone: {
                    "unified": f"{code}-{tone}",
                    "image": f"{code.lower()}-{tone.lower()}.png",
                    "has_img_google": True,
                    "has_img_twitter": True,
                    "has_img_facebook": True,
                }
                for tone in D.SKIN_TONES
            }
        entries.append(e)
    for style in ("google", "twitter", "facebook"):
        pkg = D.package_dir(root, D.STYLE_PACKAGE[style])
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "emoji.json").write_text(json.dumps(entries))
        for n, e in enumerate(entries):
            images = [e["image"]] + [v["image"] for v in e.get("skin_variations", {}).values()]
            for k, img in enumerate(images):
                _png(pkg / "img" / style / "64" / img, hash((style, n, k)) % 2**32)
    return root


def _idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def make_fashion(root: Path, per_class: int = 5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part in ("train", "t10k"):
        labels = np.repeat(np.arange(10), per_class)
        rng.shuffle(labels)
        _idx(root / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (labels.size, 28, 28)))
        _idx(root / f"{part}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "visualbyte"
    path.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_visualbyte.py"} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sources")
    fonts = {}
    for name in D.FONT_FILES:
        p = root / "fonts" / f"{name}.ttf"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"not a real font: the fake renderer only checks it exists")
        fonts[name] = str(p)
    return {
        "downloads": make_downloads(root / "downloads"),
        "fashion": make_fashion(root / "fashion"),
        "fonts": fonts,
    }


def tiny_config(out: Path, sources: dict, cache: Path | None = None, seed: int = 0) -> D.Config:
    return D.Config(
        out=out,
        size=SIZE,
        seed=seed,
        tiny=True,
        cache=cache,
        downloads=sources["downloads"],
        fashion=sources["fashion"],
        fonts=sources["fonts"],
        workers=2,
        counts=TEST_COUNTS,
        train_styles=("google", "twitter"),
        eval_styles=("facebook",),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory, sources, fake_bin) -> Path:
    out = tmp_path_factory.mktemp("ds") / "tiny"
    old = os.environ.get("VISUALBYTE_BIN")
    os.environ["VISUALBYTE_BIN"] = str(fake_bin)
    try:
        D.Builder(tiny_config(out, sources)).build()
    finally:
        if old is None:
            del os.environ["VISUALBYTE_BIN"]
        else:
            os.environ["VISUALBYTE_BIN"] = old
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------------------------------
# Classes


def test_class_table_is_consistent():
    classes = C.all_classes()
    C.check_classes(classes)
    groups = [c.group for c in classes]
    assert len(classes) >= 150
    assert groups.count("fashion") == 10
    assert sorted(c.fashion_label for c in classes if c.group == "fashion") == list(range(10))
    assert groups.count("cifar") >= 75
    assert all(c.ko for c in classes if c.group == "cifar")
    assert all(c.ko is None for c in classes if c.group != "cifar")
    # Groups are contiguous and in order: cifar, emoji, fashion.
    assert groups == sorted(groups, key=C.GROUPS.index)


def test_negative_words_are_not_class_names():
    names = {n.lower() for c in C.all_classes() for n in C.names_en(c) + C.names_ko(c)}
    words = {w.lower() for w in C.NEGATIVE_EN + C.NEGATIVE_KO}
    assert len(C.NEGATIVE_EN) >= 40
    assert not names & words
    # Nor a word inside a class name ("bell" in "bell pepper").
    name_words = {w for n in names for w in n.split()}
    assert not name_words & words


def test_unknown_training_words_are_neither_class_names_nor_calibration_words():
    names = {n.lower() for c in C.all_classes() for n in C.names_en(c) + C.names_ko(c)}
    name_words = {w for n in names for w in n.split()}
    unknown = {w.lower() for w in C.UNKNOWN_EN + C.UNKNOWN_KO}
    calibration = {w.lower() for w in C.NEGATIVE_EN + C.NEGATIVE_KO}
    assert len(C.UNKNOWN_EN) >= 100 and len(C.UNKNOWN_KO) >= 20
    assert len(unknown) == len(C.UNKNOWN_EN) + len(C.UNKNOWN_KO), "a word is listed twice"
    assert not unknown & (names | name_words)
    # The threshold is calibrated on words the model never trained on.
    assert not unknown & calibration
    # No class name starts with one ("ice" would teach it to doubt "ice cream").
    assert not [n for n in names for w in unknown if n.startswith(w)]


def _espeak_phonemes(words: list[str], voice: str) -> list[str]:
    out = subprocess.run(
        ["espeak-ng", "-q", "-x", "-v", voice],
        input="\n".join(words),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line.strip() for line in out.strip().split("\n")]
    assert len(lines) == len(words), "espeak-ng did not answer one line per word"
    return lines


def test_no_unknown_training_word_sounds_like_a_class_name():
    # The model is taught to be unsure of these words; one that a voice says exactly like a class
    # name ("son" and "sun") would teach it to doubt that class's own questions.
    names = sorted({n.lower() for c in C.all_classes() for n in C.names_en(c)})
    words = [w.lower() for w in C.UNKNOWN_EN]
    for voice in ("en-us", "en", "en-gb-scotland"):
        by_sound = dict(zip(_espeak_phonemes(names, voice), names, strict=True))
        same = [
            (w, by_sound[p])
            for w, p in zip(words, _espeak_phonemes(words, voice), strict=True)
            if p in by_sound
        ]
        assert not same, f"{voice}: {same}"
        # The comparison catches a homophone of a class name.
        assert by_sound.get(_espeak_phonemes(["son"], voice)[0]) == "sun"


def test_check_classes_refuses_an_unknown_training_word_that_names_a_class(monkeypatch):
    monkeypatch.setattr(C, "UNKNOWN_EN", (*C.UNKNOWN_EN, "tiger"))
    with pytest.raises(ValueError, match="unknown training words name a class.*tiger"):
        C.check_classes(C.all_classes())


def test_korean_particles_follow_the_last_syllable():
    assert C.ko_phrase("{n}{l} 찾아 줘", "호랑이") == "호랑이를 찾아 줘"
    assert C.ko_phrase("{n}{l} 찾아 줘", "곰") == "곰을 찾아 줘"
    assert C.ko_phrase("{n}{u} 어디에 있어?", "고층 빌딩") == "고층 빌딩은 어디에 있어?"
    assert C.en_phrase("do you see {a} {n}", "apple") == "do you see an apple"


def test_classes_only_writes_csv(tmp_path):
    assert D.main(["--classes-only", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "classes.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(C.all_classes())
    tiger = next(r for r in rows if r["key"] == "tiger")
    assert tiger["ko"] == "호랑이" and tiger["group"] == "cifar" and "tiger2" in tiger["emoji"]


# ------------------------------------------------------------------------------------------------
# Speech


def test_speech_augmentation_is_deterministic():
    x = D.espeak("where is the tiger", "en-us", "f3", 160, 50, 0)
    assert x.dtype == np.float32 and x.size > D.ESPEAK_RATE * 0.3
    aug = D.speech_aug(np.random.default_rng(1), 1.0)
    aug["rate"] = 16000
    aug["noise"] = {"colour": "pink", "snr_db": 10.0}
    aug["reverb"] = {"rt60": 0.3, "wet": 0.3}
    y1, r1 = D.augment_speech(x, aug)
    y2, r2 = D.augment_speech(x, aug)
    assert r1 == r2 == 16000
    np.testing.assert_array_equal(y1, y2)
    assert np.abs(y1).max() <= 1.0
    expected = (x.size + D.ESPEAK_RATE * (aug["lead_ms"] + aug["trail_ms"]) // 1000) * 16000 / 22050
    assert abs(y1.size - expected) < 0.35 * 16000  # reverb adds a tail of at most rt60 / 2


def test_held_out_voices_are_installed_and_disjoint():
    v = D.voice_sets()
    assert not set(v.en_train) & set(v.en_eval)
    assert not set(v.variants_train) & set(v.variants_eval)
    assert len(v.variants_train) >= 40


def _voice_file_parts(name: str) -> tuple[str, set[tuple[str, ...]]]:
    """The phoneme table and the replace rules of an installed English accent's voice file."""
    files = {}
    for p in (D.espeak_data_dir() / "lang" / "gmw").glob("en*"):
        first = next(ln.split() for ln in p.read_text().splitlines() if ln.startswith("language"))
        files[first[1]] = p  # the voice's own name is its file's first language line
    phonemes, replace = "en", set()
    for line in files[name].read_text().splitlines():
        words = line.split()
        if words[:1] == ["phonemes"]:
            phonemes = words[1]
        elif words[:1] == ["replace"]:
            replace.add(tuple(words[1:4]))
    return phonemes, replace


def test_synthetic_accents_recombine_training_accents_and_never_a_held_out_one():
    train = [_voice_file_parts(v) for v in D.EN_VOICES_TRAIN]
    held_out = [_voice_file_parts(v) for v in D.EN_VOICES_EVAL]
    assert set(D.ACCENT_PHONEMES) == {p for p, _ in train}
    assert not set(D.ACCENT_PHONEMES) & {p for p, _ in held_out}
    assert {p for p, _ in held_out} == set(D.ACCENT_PHONEMES_HELD_OUT)
    train_rules = set().union(*(r for _, r in train))
    assert {tuple(r) for r in D.ACCENT_REPLACE} <= train_rules
    # West Midlands h-dropping is only in a held-out accent, so no synthetic accent has it.
    held_out_only = set().union(*(r for _, r in held_out)) - train_rules
    assert ("00", "h", "NULL") in held_out_only
    rng = np.random.default_rng(0)
    specs = [D.accent_spec(rng) for _ in range(200)]
    assert {s["phonemes"] for s in specs} == set(D.ACCENT_PHONEMES)
    assert all(not {tuple(r) for r in s["replace"]} & held_out_only for s in specs)
    assert all(92 <= f <= 108 for s in specs for f in s["formants"])
    assert all({tuple(v) for v in s["shifts"]} <= set(D.ACCENT_VOWEL_SHIFTS) for s in specs)
    assert {s["tunes"] for s in specs} == set(D.ACCENT_TUNES)
    with pytest.raises(ValueError, match="not a training one"):
        D.accent_voice_text(dict(specs[0], phonemes="en-us-nyc"))


def test_an_accent_vowel_shift_and_tune_are_written_to_the_voice_and_heard():
    accent = {
        "phonemes": "en",
        "dictrules": [],
        "replace": [],
        "stress": list(D.ACCENT_STRESS[0]),
        "formants": [100, 100, 100],
    }
    shifted = dict(accent, shifts=[["E", "a"]], tunes=3)
    text = D.accent_voice_text(shifted)
    assert "replace 00 E a\n" in text and "tunes s3 c3 q3 e3\n" in text
    assert "tunes" not in D.accent_voice_text(accent)
    say = "where is the elephant?"
    plain = D.espeak(say, "accent", None, 160, 50, 0, accent)
    for changed in (dict(accent, shifts=[["E", "a"]]), dict(accent, tunes=3)):
        other = D.espeak(say, "accent", None, 160, 50, 0, changed)
        assert other.size != plain.size or not np.array_equal(other, plain), changed


def test_a_synthetic_accent_speaks_the_same_words_otherwise_and_reproducibly():
    accent = {
        "phonemes": "en-sc",
        "dictrules": [2, 5, 6, 7],
        "replace": [["03", "@", "V"], ["00", "T", "t["]],
        "stress": [180, 130, 200, 200, 0, 0, 250, 270],
        "formants": [95, 104, 100],
    }
    a1 = D.espeak("where is the elephant", "accent", "m3", 160, 50, 0, accent)
    a2 = D.espeak("where is the elephant", "accent", "m3", 160, 50, 0, accent)
    plain = D.espeak("where is the elephant", "en-us", "m3", 160, 50, 0)
    np.testing.assert_array_equal(a1, a2)
    assert a1.size > D.ESPEAK_RATE * 0.5 and np.abs(a1).max() > 0.05
    n = min(a1.size, plain.size)
    assert a1.size != plain.size or not np.array_equal(a1[:n], plain[:n])
    # The accent's formant shifts are heard with a variant that sets no formants of its own (and
    # with none); a variant's own formant lines win (93 of espeak-ng's 101 variants have them).
    moved = dict(accent, formants=[108, 92, 100])
    for variant, differs in ((None, True), ("m3", False)):
        a = D.espeak("where is the elephant", "accent", variant, 160, 50, 0, accent)
        b = D.espeak("where is the elephant", "accent", variant, 160, 50, 0, moved)
        assert (a.size != b.size or not np.array_equal(a, b)) == differs, variant


# ------------------------------------------------------------------------------------------------
# The tiny dataset


def test_tiny_dataset_layout(built):
    meta = json.loads((built / "meta.json").read_text(encoding="utf-8"))
    assert {"seed", "size", "renderer", "classes", "splits"} <= set(meta)
    assert meta["size"] == SIZE and meta["renderer"]["fake"] is True
    assert len(meta["renderer_binary"]["sha256"]) == 64
    classes = meta["classes"]
    assert [c["id"] for c in classes] == list(range(len(C.TINY_KEYS)))
    assert {c["group"] for c in classes} == {"cifar", "emoji", "fashion"}
    tiger = next(c for c in classes if c["en"] == "tiger")
    assert tiger == {"id": tiger["id"], "en": "tiger", "ko": "호랑이", "group": "cifar"}
    n_classes = len(classes)
    for split in ("train", "eval"):
        for modality in ("image", "text", "audio"):
            x = np.load(built / f"{split}_{modality}.npy")
            y = np.load(built / f"{split}_{modality}_y.npy")
            assert x.dtype == np.uint8 and x.shape[1:] == (SIZE, SIZE, 3)
            assert y.dtype == np.int64 and y.shape == (x.shape[0],)
            assert set(y.tolist()) == set(range(n_classes)), (split, modality)
            assert len(_rows(built / f"{split}_{modality}_rows.jsonl")) == x.shape[0]
    for name, per_class in (
        ("other_audio", TEST_COUNTS.audio_other),
        ("other_text", TEST_COUNTS.text_other),
    ):
        x, y = np.load(built / f"{name}.npy"), np.load(built / f"{name}_y.npy")
        assert x.dtype == np.uint8 and x.shape == (n_classes * per_class, SIZE, SIZE, 3)
        assert set(y.tolist()) == set(range(n_classes))
        assert meta["counts"][name] == x.shape[0]
    for name in ("neg_text", "neg_audio"):
        x = np.load(built / f"{name}.npy")
        assert x.dtype == np.uint8 and x.shape[1:] == (SIZE, SIZE, 3) and x.shape[0] > 0
    for m, per_word in (("text", TEST_COUNTS.unknown_text), ("audio", TEST_COUNTS.unknown_audio)):
        x = np.load(built / f"unknown_{m}.npy")
        n_words = TEST_COUNTS.unknown_en + TEST_COUNTS.unknown_ko
        assert x.dtype == np.uint8 and x.shape == (n_words * per_word, SIZE, SIZE, 3)
        assert len(_rows(built / f"unknown_{m}_rows.jsonl")) == x.shape[0]
        assert meta["counts"][f"unknown_{m}"] == x.shape[0]
    samples = sorted((built / "samples").glob("*.wav"))
    assert len(samples) == n_classes
    with wave.open(str(samples[0])) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 8000
    assert (built / "classes.csv").exists()
    assert meta["counts"]["train_audio"] == n_classes * TEST_COUNTS.audio_train


def test_tiny_dataset_holds_out_voices_fonts_and_styles(built):
    train = _rows(built / "train_audio_rows.jsonl")
    ev = _rows(built / "eval_audio_rows.jsonl")
    assert {r["variant"] for r in ev} <= set(D.VARIANTS_EVAL)
    assert not {r["variant"] for r in train} & set(D.VARIANTS_EVAL)
    assert {r["voice"] for r in ev} <= set(D.EN_VOICES_EVAL) | {D.KO_VOICE}
    assert not {r["voice"] for r in train} & set(D.EN_VOICES_EVAL)
    assert {r["lang"] for r in train} == {"en", "ko"}
    assert all(r["lang"] == "en" for r in train if r["class"] in ("dog", "trousers"))

    text_train = _rows(built / "train_text_rows.jsonl")
    text_eval = _rows(built / "eval_text_rows.jsonl")
    assert not [r["text"] for r in text_train + text_eval if r["text"].endswith("??")]
    assert {r["font"] for r in text_eval} == set(D.EVAL_FONTS)
    assert not {r["font"] for r in text_train} & set(D.EVAL_FONTS)
    for r in text_train:  # Korean only in fonts with Hangul
        if r["lang"] == "ko":
            assert r["font"] in D.HANGUL_FONTS or r["font"] == D.EMBEDDED_FONT

    img_train = _rows(built / "train_image_rows.jsonl")
    img_eval = _rows(built / "eval_image_rows.jsonl")
    assert {r["style"] for r in img_eval if r["source"] == "emoji"} == {"facebook"}
    assert "facebook" not in {r["style"] for r in img_train if r["source"] == "emoji"}
    assert {r["part"] for r in img_eval if r["source"] == "fashion"} == {"t10k"}
    assert {r["part"] for r in img_train if r["source"] == "fashion"} == {"train"}

    # Other synthesizers: every one of them, English only, and none of it in training.
    other = _rows(built / "other_audio_rows.jsonl")
    assert {r["voice"] for r in other} == {f"{a}:{b}" for a, b in D.OTHER_SYNTHS}
    assert {r["lang"] for r in other} == {"en"}
    assert not any("synth" in r for r in train)

    # Other fonts: none of them in training, Korean only where they have Hangul.
    other_text = _rows(built / "other_text_rows.jsonl")
    assert {r["font"] for r in other_text} <= set(D.OTHER_FONTS)
    assert len({r["font"] for r in other_text}) >= 3
    assert not set(D.OTHER_FONTS) & (set(D.TRAIN_FONTS) | set(D.EVAL_FONTS))
    assert {r["lang"] for r in other_text} == {"en", "ko"}
    assert all(r["font"] in D.HANGUL_FONTS for r in other_text if r["lang"] == "ko")

    neg = _rows(built / "neg_audio_rows.jsonl")
    assert {r["variant"] for r in neg} <= set(D.VARIANTS_EVAL)
    assert {r["font"] for r in _rows(built / "neg_text_rows.jsonl")} == set(D.EVAL_FONTS)


def test_non_class_training_words_are_asked_like_training_questions_never_held_out_ones(built):
    audio = _rows(built / "unknown_audio_rows.jsonl")
    text = _rows(built / "unknown_text_rows.jsonl")
    words = set(C.UNKNOWN_EN[: TEST_COUNTS.unknown_en] + C.UNKNOWN_KO[: TEST_COUNTS.unknown_ko])
    for rows in (audio, text):
        assert {r["word"] for r in rows} == words
        assert all(r["y"] == -1 for r in rows)
        assert all(r["word"] in r["text"] or r["word"] in r["text"].lower() for r in rows)
    # Training voices, variants and fonts only: the held-out ones stay unheard and unseen.
    assert not {r["variant"] for r in audio} & set(D.VARIANTS_EVAL)
    assert not {r["voice"] for r in audio} & set(D.EN_VOICES_EVAL)
    assert {r["font"] for r in text} <= set(D.TRAIN_FONTS)
    for r in text:
        if r["lang"] == "ko":
            assert r["font"] in D.HANGUL_FONTS or r["font"] == D.EMBEDDED_FONT
    assert {r["lang"] for r in audio} == {"en", "ko"}
    meta = json.loads((built / "meta.json").read_text(encoding="utf-8"))
    assert meta["splits"]["unknown"]["use"].startswith("training only")


def test_rebuild_reproduces_and_cache_is_reused(built, tmp_path, sources, fake_bin, monkeypatch):
    monkeypatch.setenv("VISUALBYTE_BIN", str(fake_bin))
    out = tmp_path / "again"
    D.Builder(tiny_config(out, sources)).build()  # fresh cache: everything regenerated
    for f in sorted(built.glob("*.npy")):
        np.testing.assert_array_equal(np.load(f), np.load(out / f.name), err_msg=f.name)
    # Same cache again: nothing is synthesised (the renderer is not even called).
    broken = tmp_path / "broken-bin"
    fake = f"{sys.executable} {HERE / 'fake_visualbyte.py'}"
    broken.write_text(
        f'#!/bin/sh\ncase "$2" in config) exec {fake} "$@";; '
        "*) echo renderer called >&2; exit 3;; esac\n"
    )
    broken.chmod(0o755)
    monkeypatch.setenv("VISUALBYTE_BIN", str(broken))
    D.Builder(tiny_config(tmp_path / "third", sources, cache=out / "cache")).build()
    np.testing.assert_array_equal(
        np.load(out / "train_audio.npy"), np.load(tmp_path / "third" / "train_audio.npy")
    )


def build_more(built, tmp_path, sources, fake_bin, monkeypatch, name, **counts):
    """Builds the tiny dataset again into ``tmp_path/name`` with more ``counts``, on a copy of the
    first build's cache: the output folder and the cached arrays this build had to make."""
    monkeypatch.setenv("VISUALBYTE_BIN", str(fake_bin))
    cache = tmp_path / "cache"
    shutil.copytree(built / "cache" / "rendered", cache / "rendered")
    before = {p.name for p in (cache / "rendered").iterdir()}
    cfg = tiny_config(tmp_path / name, sources, cache=cache)
    cfg.counts = D.Counts(**dict(asdict(TEST_COUNTS), **counts))
    D.Builder(cfg).build()
    made = {p.name for p in (cache / "rendered").iterdir()} - before
    return tmp_path / name, sorted(m.split("-")[0] for m in made)


def test_accent_speech_is_appended_to_training_speech_without_resynthesizing_it(
    built, tmp_path, sources, fake_bin, monkeypatch
):
    out, made = build_more(built, tmp_path, sources, fake_bin, monkeypatch, "acc", audio_accent=2)
    assert made == ["train_audio_accent"]
    old, new = np.load(built / "train_audio.npy"), np.load(out / "train_audio.npy")
    n_classes = len(C.select_classes(tiny=True))
    assert new.shape[0] == old.shape[0] + 2 * n_classes
    np.testing.assert_array_equal(new[: old.shape[0]], old)
    rows = _rows(out / "train_audio_rows.jsonl")[old.shape[0] :]
    y = np.load(out / "train_audio_y.npy")[old.shape[0] :]
    assert sorted(y.tolist()) == sorted(list(range(n_classes)) * 2)
    assert all(r["voice"] == "accent" and r["lang"] == "en" for r in rows)
    assert all(r["accent"]["phonemes"] in D.ACCENT_PHONEMES for r in rows)
    assert not {r["variant"] for r in rows} & set(D.VARIANTS_EVAL)
    for split in ("eval_audio", "other_audio", "unknown_audio"):
        np.testing.assert_array_equal(
            np.load(built / f"{split}.npy"), np.load(out / f"{split}.npy")
        )
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["counts_per_class"]["audio_accent"] == 2
    assert meta["splits"]["train"]["audio"]["accent_per_class"] == 2


def test_engine_speech_is_appended_to_training_speech_without_resynthesizing_it(
    built, tmp_path, sources, fake_bin, monkeypatch
):
    n_engines = len(E.ENGINES)
    out, made = build_more(
        built, tmp_path, sources, fake_bin, monkeypatch, "eng", audio_engines=n_engines
    )
    assert made == ["train_audio_engines"]
    old, new = np.load(built / "train_audio.npy"), np.load(out / "train_audio.npy")
    n_classes = len(C.select_classes(tiny=True))
    assert new.shape[0] == old.shape[0] + n_engines * n_classes
    np.testing.assert_array_equal(new[: old.shape[0]], old)
    rows = _rows(out / "train_audio_rows.jsonl")[old.shape[0] :]
    # Every class hears every engine once.
    assert {(r["class"], r["engine"]) for r in rows} == {
        (c.key, e) for c in C.select_classes(tiny=True) for e in E.ENGINES
    }
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["splits"]["train"]["audio"]["engines_per_class"] == n_engines
    assert set(meta["splits"]["train"]["audio"]["engines"]) == set(E.ENGINES)


def test_recorded_words_are_appended_to_training_speech_without_resynthesizing_it(
    built, tmp_path, sources, fake_bin, monkeypatch
):
    out, made = build_more(built, tmp_path, sources, fake_bin, monkeypatch, "rec", audio_recorded=2)
    assert made == ["train_audio_recorded"]
    old, new = np.load(built / "train_audio.npy"), np.load(out / "train_audio.npy")
    np.testing.assert_array_equal(new[: old.shape[0]], old)
    rows = _rows(out / "train_audio_rows.jsonl")[old.shape[0] :]
    assert rows and new.shape[0] == old.shape[0] + len(rows) and len(rows) % 2 == 0
    assert {r["engine"] for r in rows} == {"recorded"}
    assert not any(r["lang"].startswith("en") for r in rows)
    classes = C.select_classes(tiny=True)
    y = np.load(out / "train_audio_y.npy")[old.shape[0] :]
    assert all(classes[k].key == r["class"] for k, r in zip(y, rows, strict=True))
    # A recording's two views are two renders (their own augmentation), not one copied.
    assert rows[0]["file"] == rows[1]["file"]
    assert not np.array_equal(new[old.shape[0]], new[old.shape[0] + 1])
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["splits"]["train"]["audio"]["recorded_views"] == 2


def test_another_seed_gives_other_speech(sources, tmp_path):
    cfg0 = tiny_config(tmp_path / "a", sources, seed=0)
    cfg1 = tiny_config(tmp_path / "b", sources, seed=1)
    classes = C.select_classes(tiny=True)
    v = D.voice_sets()
    assert D.audio_jobs(cfg0, classes, "train", v) != D.audio_jobs(cfg1, classes, "train", v)
    assert D.audio_jobs(cfg0, classes, "train", v) == D.audio_jobs(cfg0, classes, "train", v)


# ------------------------------------------------------------------------------------------------
# The renderer


def test_missing_renderer_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VISUALBYTE_BIN", str(tmp_path / "nope"))
    with pytest.raises(R.RendererNotFound, match="VISUALBYTE_BIN"):
        R.find_binary()


def test_svg_styles_are_rasterised(tmp_path):
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError) as err:  # pragma: no cover - cairosvg or libcairo2 missing
        pytest.skip(f"cairosvg and libcairo2 rasterise the SVG emoji styles: {err}")
    root = tmp_path / "dl"
    make_downloads(root)
    om = D.package_dir(root, "openmoji")
    (om / "data").mkdir(parents=True)
    annotations = [{"hexcode": "1F405", "annotation": "tiger"}]
    (om / "data" / "openmoji.json").write_text(json.dumps(annotations))
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72">'
        '<circle cx="36" cy="36" r="30" fill="#f80"/></svg>'
    )
    (om / "color" / "svg").mkdir(parents=True)
    (om / "color" / "svg" / "1F405.svg").write_text(svg)
    flat = D.package_dir(root, "fluentui-emoji") / "icons" / "flat"
    flat.mkdir(parents=True)
    (flat / "tiger.svg").write_text(svg)
    index = D.EmojiIndex(root, tmp_path / "raster")
    for style in ("openmoji", "fluent-flat"):
        png = index.picture(style, "tiger2")
        assert png is not None, style
        img = Image.open(png)
        assert img.size == (128, 128) and img.mode == "RGBA"
        assert np.asarray(img)[64, 64, 3] == 255  # the circle is opaque
    assert index.picture("fluent-modern", "tiger2") is None


def test_real_renderer_if_built(tmp_path):
    try:
        binary = R.find_binary()
    except R.RendererNotFound as err:
        pytest.skip(f"the visualbyte binary is not built: {err}")
    wav = tmp_path / "a.wav"
    D.write_wav(wav, D.espeak("tiger", "en-us", None, 170, 50, 0), D.ESPEAK_RATE)
    png = tmp_path / "p.png"
    _png(png, 0)
    lines = [
        {"kind": "audio", "path": str(wav)},
        {"kind": "text", "text": "호랑이 tiger"},
        {"kind": "image", "path": str(png)},
    ]
    arr = R.render_batch(lines, 64, binary)
    assert arr.shape == (3, 64, 64, 3) and arr.dtype == np.uint8
    cfg = R.render_config(64, binary)
    assert cfg["size"] == 64


def test_a_dataset_can_be_rendered_with_an_older_models_settings(
    built, sources, fake_bin, tmp_path, monkeypatch
):
    """``--renderer-from MODEL``: the pixels that model was trained on, not this build's."""
    monkeypatch.setenv("VISUALBYTE_BIN", str(fake_bin))
    import fake_visualbyte

    old = fake_visualbyte.config(SIZE)
    old["text"] = {**old["text"], "keep_words": False}
    model = tmp_path / "old.onnx"  # what the fake renderer reads of a model
    model.write_text(json.dumps({"renderer": old}))
    cfg = tiny_config(tmp_path / "old", sources)
    cfg.renderer_model = model
    D.Builder(cfg).build()
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    assert meta["renderer"] == old
    # Recorded for the card's Re-create; this stand-in is no ONNX file, so it has no model id.
    assert meta["renderer_from"] == {"model_id": None, "sha256": D._file_sha256(model)}
    assert not np.array_equal(
        np.load(built / "train_text.npy"), np.load(tmp_path / "old/train_text.npy")
    )
    np.testing.assert_array_equal(
        np.load(built / "train_audio.npy"), np.load(tmp_path / "old/train_audio.npy")
    )
    model.write_text(json.dumps({"renderer": {**old, "size": SIZE * 2}}))
    with pytest.raises(R.RenderFailed, match=f"--size {SIZE * 2}"):
        D.Builder(cfg)


def test_other_synthesizers_speak_and_a_missing_one_is_a_clear_error(tmp_path, monkeypatch):
    for synth, voice in D.OTHER_SYNTHS:
        x = D.other_synth("where is the tiger", synth, voice)
        assert x.dtype == np.float32 and x.size > D.ESPEAK_RATE // 2, synth  # over half a second
        assert np.abs(x).max() > 0.05, synth
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get install flite festival"):
        D.other_synth("tiger", "flite", "slt")


def test_rebuilding_a_dataset_under_a_running_reader_leaves_its_memory_mapped_arrays_intact(
    sources, fake_bin, tmp_path, monkeypatch
):
    """A training run had the dataset memory-mapped when the builder rewrote the same files in
    place (to add a split): the files were truncated under it and it died of SIGBUS. A rebuild
    now replaces each file, so a reader keeps the arrays it opened."""
    monkeypatch.setenv("VISUALBYTE_BIN", str(fake_bin))
    out = tmp_path / "ds"
    D.Builder(tiny_config(out, sources, seed=0)).build()
    opened = {n: np.load(out / f"{n}.npy", mmap_mode="r") for n in ("train_audio", "train_text")}
    before = {n: np.array(a) for n, a in opened.items()}
    D.Builder(tiny_config(out, sources, seed=1)).build()  # other speech and text, same shapes
    for n, a in opened.items():
        rebuilt = np.load(out / f"{n}.npy")
        assert rebuilt.shape == before[n].shape and not np.array_equal(rebuilt, before[n]), n
        np.testing.assert_array_equal(a, before[n], err_msg=n)
    assert not list(out.glob("*.tmp"))


def test_photo_views_add_photo_human_and_label_splits_without_touching_the_others(
    built, tmp_path, sources, fake_bin, monkeypatch
):
    out, made = build_more(built, tmp_path, sources, fake_bin, monkeypatch, "ph", photo_views=2)
    assert made == ["clipart_image", "human_audio", "label_text", "photo_image", "train_photo"]
    classes = C.select_classes(tiny=True)
    train = _rows(out / "train_photo_rows.jsonl")
    held = _rows(out / "photo_image_rows.jsonl") + _rows(out / "clipart_image_rows.jsonl")
    assert train and held and not {r["ref"] for r in train} & {r["ref"] for r in held}
    assert {r["view"] for r in train} == {0, 1}  # the plain picture and one photographic view
    assert np.load(out / "train_photo.npy").shape[0] == len(train)
    dog = classes.index(next(c for c in classes if c.key == "dog"))
    assert dog in set(np.load(out / "photo_image_y.npy").tolist())  # GCompris' farm dog
    labels = _rows(out / "label_text_rows.jsonl")
    assert [r["text"] for r in labels] == [c.en for c in classes]
    assert {r["word"] for r in _rows(out / "human_audio_rows.jsonl")} <= {c.en for c in classes}
    # The emoji pictures are unchanged.
    np.testing.assert_array_equal(
        np.load(out / "train_image.npy"), np.load(built / "train_image.npy")
    )
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["counts"]["train_photo"] == len(train)
