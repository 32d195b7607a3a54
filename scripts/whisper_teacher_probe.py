#!/usr/bin/env python3
"""Would Whisper base's encoder teach the audio branch? Before distilling it, this asks how well
its pooled features tell the classes apart across voices, beside a VisualByte model's audio
embeddings on the same questions.

A gallery of 8 training questions a class (4 espeak-ng, 4 other engines; seed 0) and two query sets
the models never trained on: the other synthesizers (flite, festival kal/ked) and the recorded human
words. Each question is embedded by Whisper's encoder (its first 4 s, mean over the frames that
hold speech; the clean synthesis, before augmentation) and by each model (the dataset's rendered
rows); a query counts right when its nearest gallery question (1-NN), or the nearest class mean,
is its class.

    python scripts/whisper_teacher_probe.py --data DIR --whisper WORK/whisper-base \
        --model NAME=A.onnx [--model NAME=B.onnx ...]

Needs Whisper as scripts/whisper_anchor.py does; about 0.2 s a question on one core (~10 min).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
from visualbyte_export.data.speech import spoken  # noqa: E402
from visualbyte_export.embedders import OnnxEmbedder  # noqa: E402
from visualbyte_export.hearing import ESPEAK_RATE, WHISPER_RATE, resample, whisper_model  # noqa: E402
from visualbyte_export.speech_mix import ESPEAK, read_engines  # noqa: E402

WINDOW_FRAMES = 400  # 4 s of 10 ms frames: the questions are shorter, and 30 s costs 10x


def gallery_rows(data: Path, per_group: int = 4, seed: int = 0) -> np.ndarray:
    """``per_group`` espeak-ng and ``per_group`` other-engine training questions of each class."""
    y = np.load(data / "train_audio_y.npy")
    espeak = read_engines(data) == ESPEAK
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(int(y.max()) + 1):
        for group in (espeak, ~espeak):
            rows += list(rng.choice(np.flatnonzero((y == c) & group), per_group, replace=False))
    return np.array(rows)


def whisper_encoder(model_dir: Path):
    """Pooled, unit-length Whisper base encoder features of 16 kHz samples."""
    import ctranslate2
    from faster_whisper import WhisperModel

    model = WhisperModel(str(whisper_model(model_dir)), device="cpu", compute_type="int8")

    def encode(samples: np.ndarray) -> np.ndarray:
        mel = model.feature_extractor(samples)
        n = min(mel.shape[-1], WINDOW_FRAMES)
        mel = np.pad(mel, ((0, 0), (0, WINDOW_FRAMES)))[:, :WINDOW_FRAMES]
        view = ctranslate2.StorageView.from_array(mel[None].astype(np.float32))
        frames = np.array(model.model.encode(view, to_cpu=True))[0]
        e = frames[: max(1, n // 2)].mean(0)  # the encoder halves the frame rate
        return e / np.linalg.norm(e)

    return encode


def scores(q: np.ndarray, qy: np.ndarray, g: np.ndarray, gy: np.ndarray) -> tuple[float, float]:
    """1-NN and nearest-class-mean accuracy of unit queries against a unit gallery."""
    nearest = gy[(q @ g.T).argmax(1)]
    classes = np.unique(gy)
    means = np.stack([g[gy == c].mean(0) for c in classes])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return float(np.mean(nearest == qy)), float(np.mean(classes[(q @ means.T).argmax(1)] == qy))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="dataset with human_audio (ds96g)")
    p.add_argument(
        "--whisper", type=Path, required=True, help="Whisper base folder (made if need be)"
    )
    p.add_argument(
        "--model", action="append", default=[], metavar="NAME=ONNX", help="models to compare"
    )
    args = p.parse_args()
    d = args.data
    rows = [json.loads(x) for x in (d / "train_audio_rows.jsonl").read_text().splitlines()]
    gal = gallery_rows(d)
    gy = np.load(d / "train_audio_y.npy")[gal]
    other = [json.loads(x) for x in (d / "other_audio_rows.jsonl").read_text().splitlines()]
    human = [json.loads(x) for x in (d / "human_audio_rows.jsonl").read_text().splitlines()]
    sets = {
        "other synthesizers": np.load(d / "other_audio_y.npy"),
        "recorded human words": np.load(d / "human_audio_y.npy"),
    }
    for (title, y), jobs in zip(sets.items(), (other, human), strict=True):
        if [r["y"] for r in jobs] != y.tolist():
            raise SystemExit(f"{d}: the {title} rows file does not match its labels")
    print("| embedder | question set | 1-NN | nearest class mean |\n|---|---|---|---|")

    def report(name: str, g: np.ndarray, queries: list[np.ndarray]) -> None:
        for (title, qy), q in zip(sets.items(), queries, strict=True):
            nn, mean = scores(q, qy, g, gy)
            print(f"| {name} | {title} (n={len(qy)}) | {nn:.3f} | {mean:.3f} |", flush=True)

    from faster_whisper import decode_audio

    encode = whisper_encoder(args.whisper)
    clean = [resample(spoken(rows[i]), ESPEAK_RATE, WHISPER_RATE) for i in gal]
    g = np.stack([encode(s) for s in clean])
    queries = [
        np.stack([encode(resample(spoken(r), ESPEAK_RATE, WHISPER_RATE)) for r in other]),
        np.stack([encode(decode_audio(r["file"], sampling_rate=WHISPER_RATE)) for r in human]),
    ]
    report("Whisper base encoder", g, queries)
    audio = np.load(d / "train_audio.npy", mmap_mode="r")
    order = np.argsort(gal)
    for named in args.model:
        name, _, path = named.partition("=")
        if not path:
            raise SystemExit(f"--model {named}: NAME=ONNX")
        embed = OnnxEmbedder(Path(path), threads=1)

        def unit(x: np.ndarray, embed=embed) -> np.ndarray:
            v = embed(x)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        sorted_rows = unit(np.asarray(audio[gal[order]]))  # sorted reads of the memory map
        g = np.empty_like(sorted_rows)
        g[order] = sorted_rows
        queries = [unit(np.load(d / "other_audio.npy")), unit(np.load(d / "human_audio.npy"))]
        report(name, g, queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
