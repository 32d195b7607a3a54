#!/usr/bin/env python3
"""Does label matching help on real-world input? Builds memories, asks them by voice and by text
with `--match picture` and `--match both`, and prints how often the right label comes first.

    python3 scripts/label_matching.py [--bin target/release/visualbyte] [--out DIR]

Memories (format 2, built by `visualbyte index build` with the default model):
- ``emoji``: the shipped memory, models/memory.
- ``clipart``: photo-like clip art of memory classes from Debian's ``openclipart-png`` (a file
  named ``apple_red_01.png`` is an apple), up to 5 pictures a class. A model trained with
  ``data --photo-views`` has seen some of these files; for such a model, `evaluate`'s photo-memory
  table (held-out pictures only) is the measurement to trust.
Questions (none is ever trained on):
- ``human``: KTuberling's English word recordings (``ktuberling-data``) that name a memory class.
- ``flite``: "where is the X" for each class X, spoken by flite's voices (a held-out synthesizer).
- ``typed``: the class names typed.
Needs: `apt-get install ktuberling-data openclipart-png flite sox` and a built `visualbyte`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KTUBERLING = Path("/usr/share/ktuberling/sounds/en")
OPENCLIPART = Path("/usr/share/openclipart/png")
FLITE_VOICES = ("slt", "kal", "awb", "rms")
PER_CLASS = 5


def memory_labels() -> list[str]:
    return sorted(p.name for p in (ROOT / "models" / "memory").iterdir() if p.is_dir())


def words_of(label: str) -> str:
    return label.lower().replace("_", " ")


def clipart_memory(labels: list[str], out: Path) -> dict[str, int]:
    """Links up to PER_CLASS clip-art pictures per label whose file name starts with it."""
    by_stem = defaultdict(list)
    for png in sorted(OPENCLIPART.rglob("*.png")):
        stem = re.sub(r"[^a-z ]+", " ", png.stem.lower()).strip()
        by_stem[stem].append(png)
    counts = {}
    for label in labels:
        word = words_of(label)
        found = [
            p
            for stem, ps in by_stem.items()
            if stem == word or stem.startswith(word + " ")
            for p in ps
        ][:PER_CLASS]
        if len(found) >= 2:
            d = out / label
            d.mkdir(parents=True, exist_ok=True)
            for i, p in enumerate(found):
                shutil.copy(p, d / f"{i}.png")
            counts[label] = len(found)
    return counts


def human_questions(labels: list[str], out: Path) -> dict[str, str]:
    """KTuberling's English words that are memory labels, as 16 kHz WAVs: file -> label."""
    by_word = {words_of(label): label for label in labels}
    asked = {}
    out.mkdir(parents=True, exist_ok=True)
    for ogg in sorted(KTUBERLING.glob("*.ogg")):
        word = ogg.stem.split("_", 1)[-1].replace("palmtree", "palm tree")
        if word in by_word:
            wav = out / f"{ogg.stem}.wav"
            subprocess.run(["sox", str(ogg), "-r", "16000", "-c", "1", str(wav)], check=True)
            asked[wav.name] = by_word[word]
    return asked


def flite_questions(labels: list[str], out: Path) -> dict[str, str]:
    asked = {}
    out.mkdir(parents=True, exist_ok=True)
    for label in labels:
        for voice in FLITE_VOICES:
            wav = out / f"{label.replace(' ', '_')}-{voice}.wav"
            text = f"where is the {words_of(label)}"
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
            asked[wav.name] = label
    return asked


def run_demo(
    binary: Path, index: Path, how: str, source: list[str], stdin: str | None = None
) -> list[dict]:
    """`demo --json` over `index` with `--match how`: its JSON lines."""
    args = [str(binary), "demo", *source, "--json", "--index", str(index), "--match", how]
    args += ["--top-k", "5"]
    r = subprocess.run(args, input=stdin, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in r.stdout.splitlines()]


def ask_wavs(binary: Path, index: Path, wavs: Path, how: str) -> dict[str, dict]:
    """The first answer per WAV file of `demo --source wav:DIR --json`."""
    answers = {}
    for rec in run_demo(binary, index, how, ["--source", f"wav:{wavs}", "--pace", "fast"]):
        if rec.get("event") == "answer" or rec.get("answer"):
            answers.setdefault(Path(rec["source"]).name, rec["answer"])
    return answers


def ask_typed(binary: Path, index: Path, labels: list[str], how: str) -> dict[str, dict]:
    typed = "".join(words_of(label) + "\n" for label in labels)
    lines = run_demo(binary, index, how, ["--source", "none", "--text-stdin"], stdin=typed)
    answers = [rec["answer"] for rec in lines if rec.get("answer")]
    return {label: a for label, a in zip(labels, answers, strict=True)}


def score(answers: dict[str, dict], truth: dict[str, str]) -> str:
    n = len(truth)
    first = sum(1 for q, lab in truth.items() if answers.get(q, {}).get("label") == lab)
    right = sum(
        1
        for q, lab in truth.items()
        if answers.get(q, {}).get("label") == lab and not answers[q]["not_in_memory"]
    )
    wrong = sum(
        1
        for q, lab in truth.items()
        if q in answers and answers[q]["label"] != lab and not answers[q]["not_in_memory"]
    )
    by_label = sum(
        1 for q in truth if (answers.get(q) or {}).get("hits", [{}])[0].get("matched") == "label"
    )
    return (
        f"{n:4d} questions  right first {first / n:6.1%}  at the threshold: right {right / n:6.1%}"
        f" wrong {wrong / n:6.1%}; first hit by label {by_label / n:6.1%}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    p.add_argument("--bin", type=Path, default=target / "release" / "visualbyte")
    p.add_argument("--out", type=Path, default=Path("/tmp/visualbyte-label-matching"))
    args = p.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    labels = memory_labels()
    clip = clipart_memory(labels, args.out / "clipart")
    print(
        f"clipart memory: {sum(clip.values())} pictures of {len(clip)} classes: "
        + ", ".join(sorted(clip))
    )
    indexes = {}
    for name, folder in (("emoji", ROOT / "models" / "memory"), ("clipart", args.out / "clipart")):
        indexes[name] = args.out / f"{name}.vbi"
        subprocess.run(
            [str(args.bin), "index", "build", str(folder), "-o", str(indexes[name]), "--quiet"],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
    for name, index in indexes.items():
        in_memory = labels if name == "emoji" else sorted(clip)
        human = human_questions(in_memory, args.out / name / "human")
        flite = flite_questions(in_memory, args.out / name / "flite")
        for how in ("picture", "both"):
            print(f"\n{name} memory, --match {how}")
            for kind, truth in (("human", human), ("flite", flite)):
                answers = ask_wavs(args.bin, index, args.out / name / kind, how)
                print(f"  {kind}   {score(answers, truth)}")
            typed = ask_typed(args.bin, index, in_memory, how)
            print(f"  typed   {score(typed, {label: label for label in in_memory})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
