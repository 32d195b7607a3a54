"""Speech: espeak-ng voices and synthetic accents, the other synthesizers, the speech
augmentation (noise, reverb, band limit, rate) and the spoken-question jobs."""

from __future__ import annotations

import atexit
import hashlib
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import ClassSpec
from ..speech_engines import ENGINES, synthesize
from ..wav import read_wav, resample
from .config import Config, rng_for
from .phrases import _lang, _phrase

# espeak-ng voices (language accents) and variants (voice qualities, file names under voices/!v).
EN_VOICES_TRAIN = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-029")
EN_VOICES_EVAL = ("en-us-nyc", "en-gb-x-gbcwmd")
KO_VOICE = "ko"
VARIANTS_EVAL = ("f4", "m4", "Annie", "Michael", "klatt3", "steph2", "grandma", "travis")
# Not used at all: "fast" is a speed test, "Mr serious" has a space in its name.
VARIANTS_UNUSED = ("fast", "Mr serious")
ESPEAK_RATE = 22050
# Other synthesizers: held out, evaluation only (never trained, so their numbers stay comparable).
# flite's built-in voices and festival's kal diphone voice (Debian flite, festival,
# festvox-kallpc16k); English only.
OTHER_SYNTHS = (
    ("flite", "kal"),
    ("flite", "awb"),
    ("flite", "rms"),
    ("flite", "slt"),
    ("festival", "kal_diphone"),
)
OTHER_SYNTH_PACKAGES = "flite festival festvox-kallpc16k"
# Synthetic English accents (training speech only, ``Counts.audio_accent``): espeak-ng voices that
# recombine the pronunciation parts of the *training* accents' voice files (lang/gmw/en*): phoneme
# table, spelling-rule options, vowel and consonant replacements and stress timing, with the first
# formants moved a little (heard only with a variant that sets no formants itself: 8 of espeak-ng's
# 101 variants; the others' formant lines win), plus generic vowel shifts and an intonation tune
# (ACCENT_VOWEL_SHIFTS, ACCENT_TUNES). Nothing comes from the held-out accents (en-us-nyc's and
# en-wm's phoneme tables, the West Midlands h-dropping), so those stay unheard.
ACCENT_PHONEMES = ("en", "en-us", "en-rp", "en-sc", "en-n", "en-wi")
ACCENT_PHONEMES_HELD_OUT = ("en-us-nyc", "en-wm")
ACCENT_DICTRULES = ((), (3, 6), (2, 5, 6, 7), (8,))
ACCENT_REPLACE = (
    ("03", "I", "i"),
    ("03", "I2", "i"),
    ("03", "@", "a#"),
    ("03", "3", "a#"),
    ("03", "@", "V"),
    ("03", "N", "n"),
    ("03", "i", "I2"),
    ("01", "aI", "aI2"),
    ("02", "a", "a/"),
    ("02", "u:", "U"),
    ("00", "D", "d"),
    ("00", "T", "t["),
    ("00", "U@", "o@"),
    ("00", "o@", "O@"),
)
# Vowel shifts (``replace 00``) that move one English vowel to a neighbour on the vowel chart or
# flatten a diphthong to its first part: generic accent variety, not any one accent's rules (each
# changes espeak-ng's output with the en table; E->e does nothing with en-wi), each drawn with
# probability ACCENT_SHIFT_P. Intonation: espeak-ng's tune sets 1-6 (``tunes``; 1 is its default).
ACCENT_VOWEL_SHIFTS = (
    ("E", "a"),
    ("E", "e"),
    ("E", "I"),
    ("a", "E"),
    ("I", "i"),
    ("I", "E"),
    ("i:", "I"),
    ("u:", "U"),
    ("U", "V"),
    ("V", "U"),
    ("V", "0"),
    ("O:", "0"),
    ("3:", "E"),
    ("@", "I"),
    ("e@", "E"),
    ("eI", "E"),
    ("oU", "O:"),
    ("aI", "a"),
    ("aU", "a"),
)
ACCENT_SHIFT_P = 0.12
ACCENT_TUNES = (1, 2, 3, 4, 5, 6)
ACCENT_STRESS = (
    (140, 120, 190, 170, 0, 0, 255, 300),
    (175, 175, 175, 175, 220, 220, 250, 290),
    (180, 130, 200, 200, 0, 0, 250, 270),
    (160, 150, 180, 180, 220, 220, 290, 290),
)

OUTPUT_RATES = (16000, 22050, 44100, 48000)
OUTPUT_RATE_P = (0.45, 0.35, 0.1, 0.1)


def espeak_data_dir() -> Path:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError("espeak-ng is needed for speech: apt-get install espeak-ng") from err
    m = re.search(r"Data at:\s*(\S+)", out.stdout)
    if not m:
        raise RuntimeError(f"cannot find espeak-ng's data directory in {out.stdout!r}")
    return Path(m.group(1))


def espeak_variants() -> list[str]:
    """Installed variant names (files under voices/!v), sorted."""
    vdir = espeak_data_dir() / "voices" / "!v"
    return sorted(p.name for p in vdir.iterdir() if p.is_file())


@dataclass(frozen=True)
class VoiceSets:
    en_train: tuple[str, ...]
    en_eval: tuple[str, ...]
    variants_train: tuple[str, ...]
    variants_eval: tuple[str, ...]


def voice_sets() -> VoiceSets:
    installed = espeak_variants()
    missing = [v for v in VARIANTS_EVAL if v not in installed]
    if missing:
        raise RuntimeError(f"espeak-ng lacks the held-out variants {missing}")
    train = tuple(v for v in installed if v not in VARIANTS_EVAL and v not in VARIANTS_UNUSED)
    return VoiceSets(EN_VOICES_TRAIN, EN_VOICES_EVAL, train, VARIANTS_EVAL)


def accent_spec(rng: np.random.Generator) -> dict:
    """A random synthetic English accent (see ACCENT_PHONEMES): the parts of an espeak-ng voice."""
    picks = [r for r in ACCENT_REPLACE if rng.random() < 0.3]
    return {
        "phonemes": str(rng.choice(ACCENT_PHONEMES)),
        "dictrules": list(ACCENT_DICTRULES[int(rng.integers(len(ACCENT_DICTRULES)))]),
        "replace": [list(r) for r in picks],
        "stress": list(ACCENT_STRESS[int(rng.integers(len(ACCENT_STRESS)))]),
        "formants": [int(rng.integers(92, 109)) for _ in range(3)],
        "shifts": [list(v) for v in ACCENT_VOWEL_SHIFTS if rng.random() < ACCENT_SHIFT_P],
        "tunes": int(rng.choice(ACCENT_TUNES)),
    }


def accent_voice_text(accent: dict) -> str:
    """The espeak-ng voice file of ``accent`` (an :func:`accent_spec`)."""
    if accent["phonemes"] not in ACCENT_PHONEMES:
        raise ValueError(f"accent phoneme table {accent['phonemes']!r} is not a training one")
    lines = ["name visualbyte-accent", "language en", f"phonemes {accent['phonemes']}"]
    if accent["dictrules"]:
        lines.append("dictrules " + " ".join(str(d) for d in accent["dictrules"]))
    lines.append("stressLength " + " ".join(str(v) for v in accent["stress"]))
    lines += [f"replace {a} {b} {c}" for a, b, c in accent["replace"]]
    lines += [f"replace 00 {a} {b}" for a, b in accent.get("shifts", [])]
    lines += [f"formant {i + 1} {f} 100 100" for i, f in enumerate(accent["formants"])]
    if accent.get("tunes"):
        n = accent["tunes"]
        lines.append(f"tunes s{n} c{n} q{n} e{n}")
    return "\n".join(lines) + "\n"


_ACCENT_DATA: Path | None = None
_ACCENT_LOCK = threading.Lock()


def _accent_voice(accent: dict) -> tuple[Path, str]:
    """An espeak-ng data directory (the installed one, linked, plus a voices/vbaccent folder)
    and the voice name of ``accent`` in it; made once per process, voice files on demand."""
    global _ACCENT_DATA
    with _ACCENT_LOCK:
        if _ACCENT_DATA is None:
            src = espeak_data_dir()
            root = Path(tempfile.mkdtemp(prefix="visualbyte-espeak-"))
            atexit.register(shutil.rmtree, root, True)
            (root / "voices" / "vbaccent").mkdir(parents=True)
            for entry in src.iterdir():
                if entry.name != "voices":
                    (root / entry.name).symlink_to(entry)
            for entry in (src / "voices").iterdir():
                (root / "voices" / entry.name).symlink_to(entry)
            _ACCENT_DATA = root
        text = accent_voice_text(accent)
        name = "a" + hashlib.sha256(text.encode()).hexdigest()[:16]
        path = _ACCENT_DATA / "voices" / "vbaccent" / name
        if not path.exists():
            path.write_text(text)
    return _ACCENT_DATA, f"vbaccent/{name}"


def espeak(
    text: str,
    voice: str,
    variant: str | None,
    speed: int,
    pitch: int,
    gap: int,
    accent: dict | None = None,
) -> np.ndarray:
    """Speech as float32 mono at 22.05 kHz; ``accent`` (an :func:`accent_spec`) replaces
    ``voice`` with that synthetic accent."""
    args = ["espeak-ng"]
    if accent is not None:
        data, voice = _accent_voice(accent)
        args.append(f"--path={data}")
    v = f"{voice}+{variant}" if variant else voice
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        args += ["-v", v, "-s", str(speed), "-p", str(pitch), "-g", str(gap)]
        args += ["-w", tmp.name, "--", text]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {' '.join(args)}: {proc.stderr.strip()}")
        x, rate = read_wav(Path(tmp.name))
    if rate != ESPEAK_RATE:
        x = resample(x, rate, ESPEAK_RATE)
    return x


def other_synth(text: str, synth: str, voice: str) -> np.ndarray:
    """Speech from another synthesizer (``OTHER_SYNTHS``) as float32 mono at 22.05 kHz."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        if synth == "flite":
            args = ["flite", "-voice", voice, "-t", text, "-o", tmp.name]
            stdin = None
        elif synth == "festival":
            args = ["text2wave", "-o", tmp.name, "-eval", f"(voice_{voice})"]
            stdin = text
        else:
            raise ValueError(f"unknown synthesizer {synth!r}")
        try:
            proc = subprocess.run(args, input=stdin, capture_output=True, text=True)
        except FileNotFoundError:
            raise RuntimeError(
                f"{args[0]} is not installed (apt-get install {OTHER_SYNTH_PACKAGES}), or pass "
                "--audio-other 0 to build no other-synthesizer speech"
            ) from None
        if proc.returncode != 0 or not Path(tmp.name).stat().st_size:
            raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
        x, rate = read_wav(Path(tmp.name))
    if rate != ESPEAK_RATE:
        x = resample(x, rate, ESPEAK_RATE)
    return x


def spoken(job: dict) -> np.ndarray:
    """A speech job's clean samples (float32 mono at ``ESPEAK_RATE``), before augmentation: its
    synthesizer, engine or espeak-ng voice saying its text. Silence is an error."""
    if "synth" in job:
        x = other_synth(job["text"], job["synth"], job["voice"].split(":", 1)[1])
    elif "engine" in job:
        voice = job["voice"].split(":", 1)[1]
        x = synthesize(job["text"], job["engine"], voice, job["tempo"], ESPEAK_RATE)
    else:
        x = espeak(
            job["text"],
            job["voice"],
            job["variant"],
            job["speed"],
            job["pitch"],
            job["gap"],
            job.get("accent"),
        )
    if x.size == 0 or not np.any(x):
        raise RuntimeError(f"{job.get('synth', 'espeak-ng')} produced silence for {job}")
    return x


def _coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if colour == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.arange(spec.size, dtype=np.float32)
    f[0] = 1.0
    spec = spec / (np.sqrt(f) if colour == "pink" else f)
    out = np.fft.irfft(spec, n).astype(np.float32)
    return out / (np.std(out) + 1e-9)


def _room_ir(rng: np.random.Generator, rate: int, rt60: float) -> np.ndarray:
    n = int(rate * rt60)
    t = np.arange(n, dtype=np.float32) / rate
    tail = rng.standard_normal(n).astype(np.float32) * np.exp(-6.9 * t / rt60)
    ir = tail * 0.3
    ir[0] = 1.0
    return ir / np.sqrt(np.sum(ir**2))


def augment_speech(x: np.ndarray, aug: dict, rate: int = ESPEAK_RATE) -> tuple[np.ndarray, int]:
    """Applies the recipe ``aug`` (see :func:`speech_aug`); returns the samples and their rate."""
    from scipy.signal import butter, fftconvolve, sosfilt

    rng = np.random.default_rng(aug["noise_seed"])
    speech_rms = float(np.sqrt(np.mean(x**2)) + 1e-9)
    if aug.get("reverb"):
        ir = _room_ir(rng, rate, aug["reverb"]["rt60"])
        wet = fftconvolve(x, ir)[: len(x) + len(ir) // 2].astype(np.float32)
        dry = np.pad(x, (0, len(wet) - len(x)))
        mix = aug["reverb"]["wet"]
        x = (1 - mix) * dry + mix * wet
    if aug.get("band"):
        lo, hi = aug["band"]
        sos = butter(4, [lo, min(hi, rate / 2 - 100)], btype="bandpass", fs=rate, output="sos")
        x = sosfilt(sos, x).astype(np.float32)
    lead = int(rate * aug["lead_ms"] / 1000)
    trail = int(rate * aug["trail_ms"] / 1000)
    x = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(trail, np.float32)])
    x = x * np.float32(10 ** (aug["gain_db"] / 20))
    if aug.get("noise"):
        colour, snr = aug["noise"]["colour"], aug["noise"]["snr_db"]
        level = speech_rms * 10 ** (aug["gain_db"] / 20) / 10 ** (snr / 20)
        x = x + _coloured_noise(rng, len(x), colour) * np.float32(level)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    out_rate = aug["rate"]
    if out_rate != rate:
        x = resample(x, rate, out_rate)
    return x, out_rate


def speech_aug(rng: np.random.Generator, strength: float = 1.0) -> dict:
    """A random augmentation recipe. ``strength`` 0 gives clean speech (only the time shift)."""
    aug: dict = {
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
        "lead_ms": int(rng.integers(0, 500)),
        "trail_ms": int(rng.integers(0, 300)),
        "gain_db": round(float(rng.uniform(-18, 6)) * strength, 2),
        "rate": int(rng.choice(OUTPUT_RATES, p=OUTPUT_RATE_P)),
        "noise": None,
        "reverb": None,
        "band": None,
    }
    if strength <= 0:
        return aug
    if rng.random() < 0.6 * strength:
        aug["noise"] = {
            "colour": str(rng.choice(["white", "pink", "brown"])),
            "snr_db": round(float(rng.uniform(5, 35)), 1),
        }
    if rng.random() < 0.3 * strength:
        aug["reverb"] = {
            "rt60": round(float(rng.uniform(0.15, 0.6)), 3),
            "wet": round(float(rng.uniform(0.15, 0.5)), 3),
        }
    if rng.random() < 0.2 * strength:
        aug["band"] = [int(rng.integers(80, 400)), int(rng.integers(3400, 7500))]
    return aug


# ------------------------------------------------------------------------------------------------
# Jobs: one dict per sample, fully describing it (the cache key is their digest).


def audio_jobs(cfg: Config, classes: list[ClassSpec], split: str, voices: VoiceSets) -> list[dict]:
    n = cfg.counts.audio_train if split == "train" else cfg.counts.audio_eval
    en_voices = voices.en_train if split == "train" else voices.en_eval
    variants = voices.variants_train if split == "train" else voices.variants_eval
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(n):
            rng = rng_for(cfg.seed, "audio", split, c.key, i)
            lang = _lang(c, i, n, cfg.counts.ko_fraction)
            voice = KO_VOICE if lang == "ko" else str(rng.choice(en_voices))
            if split == "train":
                speed, pitch = int(rng.integers(110, 211)), int(rng.integers(15, 86))
                strength = 1.0
            else:
                speed, pitch = int(rng.integers(130, 191)), int(rng.integers(30, 71))
                strength = 0.0 if i % 2 == 0 else 0.7  # half clean, half mildly augmented
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": lang,
                    "text": _phrase(c, lang, rng),
                    "voice": voice,
                    "variant": str(rng.choice(variants)),
                    "speed": speed,
                    "pitch": pitch,
                    "gap": int(rng.integers(0, 5)),
                    "aug": speech_aug(rng, strength),
                }
            )
    return jobs


def _training_delivery(rng: np.random.Generator, voices: VoiceSets) -> dict:
    """How a training question is spoken, after its words and voice: a training variant, speed,
    pitch, word gap and full augmentation (drawn from ``rng`` in that order)."""
    return {
        "variant": str(rng.choice(voices.variants_train)),
        "speed": int(rng.integers(110, 211)),
        "pitch": int(rng.integers(15, 86)),
        "gap": int(rng.integers(0, 5)),
        "aug": speech_aug(rng, 1.0),
    }


def accent_jobs(cfg: Config, classes: list[ClassSpec], voices: VoiceSets) -> list[dict]:
    """Extra English training questions per class spoken in synthetic accents (:func:`accent_spec`),
    with training variants, speeds, carriers and augmentation (``Counts.audio_accent``)."""
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(cfg.counts.audio_accent):
            rng = rng_for(cfg.seed, "audio-accent", c.key, i)
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": "en",
                    "text": _phrase(c, "en", rng),
                    "voice": "accent",
                    "accent": accent_spec(rng),
                    **_training_delivery(rng, voices),
                }
            )
    return jobs


def engine_jobs(cfg: Config, classes: list[ClassSpec]) -> list[dict]:
    """Extra English training questions per class spoken by the other engines
    (``Counts.audio_engines``): the engines take turns, each question draws a voice of its engine
    (a Kokoro voice may be a blend of two speakers), a tempo, a carrier and augmentation."""
    engines = list(ENGINES)
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(cfg.counts.audio_engines):
            rng = rng_for(cfg.seed, "audio-engine", c.key, i)
            engine = engines[(cid + i) % len(engines)]
            voice = str(rng.choice(ENGINES[engine]))
            if engine == "kokoro" and rng.random() < 0.6:
                other = str(rng.choice([v for v in ENGINES[engine] if v != voice]))
                voice = f"{voice}+{other}@{rng.uniform(0.2, 0.8):.2f}"
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": "en",
                    "text": _phrase(c, "en", rng),
                    "engine": engine,
                    "voice": f"{engine}:{voice}",
                    "tempo": round(float(rng.uniform(0.8, 1.25)), 3),
                    "aug": speech_aug(rng, 1.0),
                }
            )
    return jobs


def other_audio_jobs(cfg: Config, classes: list[ClassSpec]) -> list[dict]:
    """English questions from the other synthesizers, for evaluation only: the same phrases and
    mild augmentation as the held-out espeak-ng split, voices taken in turn."""
    n = cfg.counts.audio_other
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(n):
            rng = rng_for(cfg.seed, "audio-other", c.key, i)
            synth, voice = OTHER_SYNTHS[(cid + i) % len(OTHER_SYNTHS)]
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": "en",
                    "text": _phrase(c, "en", rng),
                    "synth": synth,
                    "voice": f"{synth}:{voice}",
                    "aug": speech_aug(rng, 0.0 if i % 2 == 0 else 0.7),
                }
            )
    return jobs
