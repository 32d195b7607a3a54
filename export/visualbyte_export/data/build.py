"""The dataset ``Builder``: turns every stage's jobs into renderer inputs, renders them through
the runtime (cached by digest), and writes the arrays, rows, samples and ``meta.json``."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from .. import render
from ..classes import (
    NEGATIVE_EN,
    NEGATIVE_KO,
    UNKNOWN_EN,
    UNKNOWN_KO,
    check_classes,
    select_classes,
    write_classes_csv,
)
from ..photos import (
    TUXPAINT,
    PhotoSources,
    PhotoStage,
    human_speech_jobs,
    label_jobs,
    photo_jobs,
)
from ..speech_engines import ENGINES
from ..wav import write_wav
from .config import DATA_VERSION, Config, _progress, digest, log, rng_for
from .images import augment_fashion, augment_picture, fashion_pick, image_jobs
from .nonclass import negative_jobs, unknown_jobs
from .recorded import recorded_lines, recorded_speech_jobs
from .sources import EmojiIndex, _slug, load_fashion
from .speech import (
    ACCENT_PHONEMES,
    ACCENT_SHIFT_P,
    ACCENT_TUNES,
    ACCENT_VOWEL_SHIFTS,
    KO_VOICE,
    OTHER_SYNTHS,
    VoiceSets,
    accent_jobs,
    audio_jobs,
    augment_speech,
    engine_jobs,
    espeak,
    other_audio_jobs,
    spoken,
    voice_sets,
)
from .text import (
    EMBEDDED_FONT,
    EVAL_FONTS,
    FONT_PACKAGES,
    HANGUL_FONTS,
    OTHER_FONTS,
    TRAIN_FONTS,
    other_text_jobs,
    text_jobs,
)

# ------------------------------------------------------------------------------------------------
# Turning jobs into renderer inputs


class Builder:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.cache = cfg.cache_dir()
        self.work = self.cache / "work"
        self.binary = render.find_binary()
        self.renderer = render.render_config(cfg.size, self.binary, cfg.renderer_model)
        if int(self.renderer.get("size", cfg.size)) != cfg.size:
            raise render.RenderFailed(
                f"--renderer-from {cfg.renderer_model} renders {self.renderer['size']} px, "
                f"not --size {cfg.size}: pass --size {self.renderer['size']}"
            )
        self.classes = select_classes(cfg.tiny, cfg.classes)
        check_classes(self.classes)
        self._emoji: EmojiIndex | None = None
        self._fashion: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.timings: dict[str, float] = {}

    # -- sources
    @property
    def emoji(self) -> EmojiIndex:
        if self._emoji is None:
            self._emoji = EmojiIndex(self.cfg.downloads, self.cache / "emoji-raster")
        return self._emoji

    def fashion(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        if part not in self._fashion:
            self._fashion[part] = load_fashion(self.cfg.fashion, part)
        return self._fashion[part]

    def font_path(self, name: str) -> str | None:
        if name == EMBEDDED_FONT:
            return None
        path = self.cfg.fonts.get(name)
        if not path or not Path(path).exists():
            raise FileNotFoundError(
                f"font {name} not found at {path}: apt-get install {FONT_PACKAGES}"
            )
        return path

    # -- caching
    def cached(self, name: str, jobs: list[dict], make_lines, post=None) -> np.ndarray:
        """Renders ``jobs`` (cached by their digest, the renderer settings and DATA_VERSION)."""
        key = digest(
            {"v": DATA_VERSION, "renderer": self.renderer, "size": self.cfg.size, "jobs": jobs}
        )
        path = self.cache / "rendered" / f"{name}-{key[:20]}.npy"
        if path.exists():
            log(f"{name}: {len(jobs)} rows from cache {path.name}")
            return np.load(path)
        t0 = time.time()
        workdir = self.work / name
        workdir.mkdir(parents=True, exist_ok=True)
        lines = make_lines(jobs, workdir)
        t1 = time.time()
        log(f"{name}: rendering {len(lines)} items with {self.binary.name} render batch")
        arr = render.render_batch(
            lines, self.cfg.size, self.binary, workdir=self.work, model=self.cfg.renderer_model
        )
        if post is not None:
            arr = post(jobs, arr)
        t2 = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
        if not self.cfg.keep_work:
            shutil.rmtree(workdir, ignore_errors=True)
        self.timings[f"{name}.prepare_s"] = round(t1 - t0, 1)
        self.timings[f"{name}.render_s"] = round(t2 - t1, 1)
        log(f"{name}: prepared in {t1 - t0:.1f}s, rendered in {t2 - t1:.1f}s")
        return arr

    # -- speech
    def speech_lines(self, jobs: list[dict], workdir: Path) -> list[dict]:
        def one(job: dict) -> dict:
            path = workdir / f"{digest(job)[:24]}.wav"
            if not path.exists():
                self.synth(job, path)
            return {"kind": "audio", "path": str(path)}

        with ThreadPoolExecutor(max_workers=max(self.cfg.workers, 1)) as pool:
            it = pool.map(one, jobs)
            return list(_progress(it, len(jobs), f"speech {workdir.name}"))

    def synth(self, job: dict, path: Path) -> None:
        y, rate = augment_speech(spoken(job), job["aug"])
        write_wav(path, y, rate)

    # -- text
    def text_lines(self, jobs: list[dict], workdir: Path) -> list[dict]:
        lines = []
        for job in jobs:
            line = {"kind": "text", "text": job["text"]}
            font = self.font_path(job["font"])
            if font:
                line["font"] = font
            lines.append(line)
        return lines

    @staticmethod
    def text_post(jobs: list[dict], arr: np.ndarray) -> np.ndarray:
        """Shrinks and moves the rendered text of jobs with a ``jitter`` (white fill)."""
        out = arr.copy()
        s = arr.shape[1]
        for i, job in enumerate(jobs):
            j = job.get("jitter")
            if not j:
                continue
            side = max(int(round(s * j["scale"])), 8)
            small = np.asarray(Image.fromarray(arr[i]).resize((side, side), Image.BILINEAR))
            x = int(round((s - side) * j["x"]))
            y = int(round((s - side) * j["y"]))
            canvas = np.full_like(arr[i], 255)
            canvas[y : y + side, x : x + side] = small
            out[i] = canvas
        return out

    # -- pictures
    def image_lines(self, jobs: list[dict], workdir: Path) -> list[dict]:
        lines = []
        for job in _progress(jobs, len(jobs), f"pictures {workdir.name}"):
            if job["source"] == "fashion":
                images, _ = self.fashion(job["part"])
                img = images[job["index"]]
                if job["aug"]:
                    img = augment_fashion(img, rng_for(self.cfg.seed, "fashion-aug", job["index"]))
                path = workdir / f"fashion-{job['part']}-{job['index']}-{int(job['aug'])}.png"
                Image.fromarray(img, "L").save(path)
            else:
                tone = job["code"].split("-")[-1] if job["tone"] else None
                src = self.emoji.picture(job["style"], job["emoji"], tone)
                if job["aug"] is None:
                    path = src
                else:
                    rng = rng_for(self.cfg.seed, "emoji-aug", job["style"], job["code"], job["aug"])
                    path = workdir / f"{job['style']}-{job['code']}-{job['aug']}.png"
                    augment_picture(src, rng).save(path)
            lines.append({"kind": "image", "path": str(path)})
        return lines

    # -- the whole dataset
    def build(self) -> dict:
        cfg = self.cfg
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        t_start = time.time()
        log(f"{len(self.classes)} classes, size {cfg.size}, seed {cfg.seed}, cache {self.cache}")
        voices = voice_sets()
        fonts_needed = set(TRAIN_FONTS) | set(EVAL_FONTS)
        if cfg.counts.text_other > 0:
            fonts_needed |= set(OTHER_FONTS)
        for f in fonts_needed:
            self.font_path(f)
        embedded = str(self.renderer.get("text", {}).get("font", ""))
        if any(_slug(e) in _slug(embedded) for e in (*EVAL_FONTS, *OTHER_FONTS) if embedded):
            raise RuntimeError(f"the runtime's embedded font {embedded!r} is the held-out font")

        picks = {}
        if any(c.group == "fashion" for c in self.classes):
            picks = fashion_pick(
                cfg, self.classes, self.fashion("train")[1], self.fashion("t10k")[1]
            )
        counts: dict[str, int] = {}
        for split in ("train", "eval"):
            # pictures
            jobs = image_jobs(cfg, self.classes, split, self._emoji_if_needed(), picks)
            self._save(
                out, split, "image", jobs, self.cached(f"{split}_image", jobs, self.image_lines)
            )
            # text
            jobs = text_jobs(cfg, self.classes, split)
            arr = self.cached(f"{split}_text", jobs, self.text_lines, self.text_post)
            self._save(out, split, "text", jobs, arr)
            # speech
            jobs = audio_jobs(cfg, self.classes, split, voices)
            arr = self.cached(f"{split}_audio", jobs, self.speech_lines)
            if split == "train" and cfg.counts.audio_accent > 0:
                # a separate cached array, so that adding accents re-synthesizes nothing else
                more = accent_jobs(cfg, self.classes, voices)
                arr = np.concatenate(
                    [arr, self.cached("train_audio_accent", more, self.speech_lines)]
                )
                jobs = jobs + more
            if split == "train" and cfg.counts.audio_engines > 0:
                more = engine_jobs(cfg, self.classes)
                arr = np.concatenate(
                    [arr, self.cached("train_audio_engines", more, self.speech_lines)]
                )
                jobs = jobs + more
            if split == "train" and cfg.counts.audio_recorded > 0:
                more = recorded_speech_jobs(
                    self.classes, cfg.counts.audio_recorded, cfg.seed, stamps=TUXPAINT
                )
                arr = np.concatenate(
                    [arr, self.cached("train_audio_recorded", more, recorded_lines)]
                )
                jobs = jobs + more
            self._save(out, split, "audio", jobs, arr)
            for m in ("image", "text", "audio"):
                counts[f"{split}_{m}"] = int(np.load(out / f"{split}_{m}_y.npy").shape[0])

        if cfg.counts.text_other > 0:
            jobs = other_text_jobs(cfg, self.classes)
            arr = self.cached("other_text", jobs, self.text_lines)
            self._save(out, "other", "text", jobs, arr)
            counts["other_text"] = len(jobs)
        if cfg.counts.audio_other > 0:
            jobs = other_audio_jobs(cfg, self.classes)
            arr = self.cached("other_audio", jobs, self.speech_lines)
            self._save(out, "other", "audio", jobs, arr)
            counts["other_audio"] = len(jobs)

        if cfg.counts.photo_views > 0:
            counts.update(self.photo_splits(out))

        neg_text, neg_audio = negative_jobs(cfg, voices)
        arr = self.cached("neg_text", neg_text, self.text_lines)
        self._save_neg(out, "neg_text", neg_text, arr)
        arr = self.cached("neg_audio", neg_audio, self.speech_lines)
        self._save_neg(out, "neg_audio", neg_audio, arr)
        counts["neg_text"], counts["neg_audio"] = len(neg_text), len(neg_audio)

        unk_text, unk_audio = unknown_jobs(cfg, voices)
        if unk_text:
            arr = self.cached("unknown_text", unk_text, self.text_lines)
            self._save_neg(out, "unknown_text", unk_text, arr)
        if unk_audio:
            arr = self.cached("unknown_audio", unk_audio, self.speech_lines)
            self._save_neg(out, "unknown_audio", unk_audio, arr)
        counts["unknown_text"], counts["unknown_audio"] = len(unk_text), len(unk_audio)

        self.write_samples(out / "samples", voices)
        write_classes_csv(self.classes, out / "classes.csv")
        meta = self.meta(voices, counts)
        meta["timings_s"] = dict(self.timings, total=round(time.time() - t_start, 1))
        (out / "meta.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        log(f"done in {time.time() - t_start:.0f}s: {counts}")
        return meta

    def photo_splits(self, out: Path) -> dict[str, int]:
        """Photographs and clip art (``train_photo`` and the held-out ``photo_image``,
        ``clipart_image``), recorded human speech (``human_audio``, evaluation only) and each
        class name typed once (``label_text``, what a labelled memory is also found by)."""
        sources = PhotoSources()
        stage = PhotoStage(self.cfg.seed, sources)
        pictures = sources.all_pictures(self.classes)
        counts = {}
        for name, jobs in photo_jobs(pictures, self.classes, self.cfg.counts.photo_views).items():
            split, modality = name.split("_", 1)
            self._save(out, split, modality, jobs, self.cached(name, jobs, stage.picture_lines))
            counts[name] = len(jobs)
        jobs = human_speech_jobs(self.classes, stamps=sources.stamps_dir)
        self._save(out, "human", "audio", jobs, self.cached("human_audio", jobs, stage.human_lines))
        counts["human_audio"] = len(jobs)
        jobs = [dict(j, font=EMBEDDED_FONT) for j in label_jobs(self.classes)]
        self._save(out, "label", "text", jobs, self.cached("label_text", jobs, self.text_lines))
        return counts

    def _emoji_if_needed(self) -> EmojiIndex | None:
        return self.emoji if any(c.group != "fashion" for c in self.classes) else None

    @staticmethod
    def _save(out: Path, split: str, modality: str, jobs: list[dict], arr: np.ndarray) -> None:
        y = np.array([j["y"] for j in jobs], np.int64)
        assert arr.shape[0] == y.shape[0]
        _save_array(out / f"{split}_{modality}.npy", arr)
        _save_array(out / f"{split}_{modality}_y.npy", y)
        _write_rows(out / f"{split}_{modality}_rows.jsonl", jobs)

    @staticmethod
    def _save_neg(out: Path, name: str, jobs: list[dict], arr: np.ndarray) -> None:
        _save_array(out / f"{name}.npy", arr)
        _write_rows(out / f"{name}_rows.jsonl", jobs)

    def write_samples(self, folder: Path, voices: VoiceSets) -> None:
        """One WAV per class, "where is the <name>" (or the Korean question) in a held-out voice."""
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for cid, c in enumerate(self.classes):
            rng = rng_for(self.cfg.seed, "sample", c.key)
            voice = voices.en_eval[cid % len(voices.en_eval)]
            variant = voices.variants_eval[cid % len(voices.variants_eval)]
            template = {
                "one": "where is the {n}",
                "plural": "where are the {n}",
                "mass": "where is the {n}",
            }[c.number]
            text = template.format(n=c.en)
            path = folder / f"{cid:03d}-{c.key}.wav"
            if not path.exists():
                x = espeak(text, voice, variant, int(rng.integers(150, 180)), 50, 0)
                y, rate = augment_speech(
                    x,
                    {
                        "noise_seed": 0,
                        "lead_ms": 200,
                        "trail_ms": 200,
                        "gain_db": -3.0,
                        "rate": 16000,
                    },
                )
                write_wav(path, y, rate)
            rows.append(
                {
                    "file": path.name,
                    "id": cid,
                    "key": c.key,
                    "text": text,
                    "voice": f"{voice}+{variant}",
                }
            )
        _write_rows(folder / "index.jsonl", rows)

    def meta(self, voices: VoiceSets, counts: dict) -> dict:
        cfg = self.cfg
        cnt = cfg.counts
        return {
            "seed": cfg.seed,
            "size": cfg.size,
            "renderer": self.renderer,
            "classes": [
                {"id": i, "en": c.en, "ko": c.ko, "group": c.group}
                for i, c in enumerate(self.classes)
            ],
            "splits": {
                "train": {
                    "image": {
                        "emoji_styles": list(cfg.train_styles),
                        "emoji_per_class": "every style and skin tone plain, plus "
                        f"{cnt.image_augs} augmented copies each, at most "
                        f"{cnt.image_train_max} per class",
                        "fashion": f"{cnt.fashion_train} per class from train-images-idx3 "
                        "(every second one augmented)",
                    },
                    "text": {
                        "fonts": list(TRAIN_FONTS),
                        "korean_fonts": ["NanumSquareR", EMBEDDED_FONT],
                        "per_class": cnt.text_train,
                        "jitter": "30% shrunk to 60-95% and moved, white fill",
                    },
                    "audio": {
                        "en_voices": list(voices.en_train),
                        "ko_voice": KO_VOICE,
                        "variants": list(voices.variants_train),
                        "per_class": cnt.audio_train,
                        "accent_per_class": cnt.audio_accent,
                        "engines_per_class": cnt.audio_engines,
                        "engines": {e: list(v) for e, v in ENGINES.items()}
                        if cnt.audio_engines
                        else {},
                        "recorded_views": cnt.audio_recorded,
                        "recorded": "KTuberling's words in its languages other than English and "
                        "Tux Paint's stamp descriptions spoken in other languages, where they name "
                        "a class (engine 'recorded'); English recordings are never trained on",
                        "accents": "synthetic: training accents' phoneme tables "
                        f"{list(ACCENT_PHONEMES)}, spelling rules, replacements and stress "
                        "recombined, formants 1-3 at 92-108% (unless the variant sets its own), "
                        f"each of {len(ACCENT_VOWEL_SHIFTS)} vowel shifts at {ACCENT_SHIFT_P:.0%}, "
                        f"tunes {ACCENT_TUNES[0]}-{ACCENT_TUNES[-1]}",
                        "speed_wpm": [110, 210],
                        "pitch": [15, 85],
                        "augment": "noise 60% (white/pink/brown, SNR 5-35 dB), reverb 30% "
                        "(RT60 0.15-0.6 s), band limit 20%, gain -18..+6 dB, lead 0-500 ms, "
                        "trail 0-300 ms, rate 16/22.05/44.1/48 kHz",
                    },
                },
                "eval": {
                    "image": {
                        "emoji_styles": list(cfg.eval_styles),
                        "emoji_per_class": f"plain, at most {cnt.image_eval_max}",
                        "fashion": f"{cnt.fashion_eval} per class from t10k-images-idx3",
                    },
                    "text": {"fonts": list(EVAL_FONTS), "per_class": cnt.text_eval},
                    "audio": {
                        "en_voices": list(voices.en_eval),
                        "ko_voice": KO_VOICE,
                        "variants": list(voices.variants_eval),
                        "per_class": cnt.audio_eval,
                        "speed_wpm": [130, 190],
                        "pitch": [30, 70],
                        "augment": "even rows clean, odd rows mild (strength 0.7)",
                    },
                },
                "other_fonts": {
                    "fonts": list(OTHER_FONTS),
                    "korean_fonts": [f for f in OTHER_FONTS if f in HANGUL_FONTS],
                    "per_class": cnt.text_other,
                    "use": "evaluation only (other_text.npy)",
                },
                "other_speech": {
                    "synthesizers": [f"{a}:{b}" for a, b in OTHER_SYNTHS],
                    "per_class": cnt.audio_other,
                    "language": "en",
                    "augment": "even rows clean, odd rows mild (strength 0.7)",
                    "use": "evaluation only (other_audio.npy)",
                },
                "negatives": {
                    "en": list(NEGATIVE_EN[: cnt.neg_en]),
                    "ko": list(NEGATIVE_KO[: cnt.neg_ko]),
                    "forms": "bare word and 'where is the <word>' / '<word> 어디 있어'",
                    "text_font": EVAL_FONTS[0],
                    "audio": "2 renderings each, eval voices and variants",
                },
                "unknown": {
                    "en": len(UNKNOWN_EN[: cnt.unknown_en]),
                    "ko": len(UNKNOWN_KO[: cnt.unknown_ko]),
                    "per_word": {"text": cnt.unknown_text, "audio": cnt.unknown_audio},
                    "forms": "bare word or a training carrier phrase",
                    "fonts_voices": "the training fonts, voices, variants and augmentation",
                    "use": "training only (unknown_*.npy, train --unknown-weight)",
                },
                "korean_fraction": cnt.ko_fraction,
                "photos": {
                    "train": "GCompris photographs and word drawings, Tux Paint's photographic "
                    "and cartoon stamps, openclipart clip art (up to 12 a class), each plain plus "
                    f"{cnt.photo_views - 1} photographic views "
                    "(photos.photo_view: cut-outs on photo backgrounds, crops, perspective, colour "
                    "cast, blur, noise, JPEG)",
                    "held_out": "photo_image.npy: GCompris' 'explore animals' photographs, "
                    "every fourth other GCompris photo of a class and every fourth Tux Paint "
                    "photograph; clipart_image.npy: every fourth clip-art file of a class (plain, "
                    "evaluation only)",
                    "human_speech": "human_audio.npy: KTuberling's English word recordings and "
                    "Tux Paint's spoken stamp descriptions that name a class (evaluation only)",
                    "labels": "label_text.npy: each class name typed once in the embedded font",
                }
                if cnt.photo_views
                else {},
            },
            "counts": counts,
            "data_version": DATA_VERSION,
            "renderer_binary": {"path": str(self.binary), "sha256": _file_sha256(self.binary)},
            "tiny": cfg.tiny,
            "counts_per_class": asdict(cnt),
            "renderer_from": _model_id_and_digest(cfg.renderer_model)
            if cfg.renderer_model
            else None,
        }


def _model_id_and_digest(path: Path) -> dict:
    """The model whose renderer settings a dataset was built with (``--renderer-from``)."""
    from ..onnx_init import onnx_model_info

    try:
        info = onnx_model_info(Path(path))
    except Exception:  # the renderer took its settings from it; only its id is unknown here
        return {"model_id": None, "sha256": _file_sha256(Path(path))}
    return {"model_id": info["model_id"], "sha256": info["sha256"]}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _save_array(path: Path, arr: np.ndarray) -> None:
    """``np.save`` to a new file that then replaces ``path``: a training run that has the old
    array memory-mapped keeps reading it (rewriting the file in place truncated it under the
    reader, which died of SIGBUS)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    tmp.replace(path)


def _write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
