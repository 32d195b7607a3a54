"""Picture jobs (emoji of each style, Fashion-MNIST rows) and the picture augmentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from ..classes import ClassSpec
from .config import Config, rng_for
from .sources import EmojiIndex


def augment_picture(src: Path, rng: np.random.Generator, canvas: int = 160) -> Image.Image:
    """An emoji on a random background: scale, position, rotation, mirror, colour, blur."""
    sprite = Image.open(src).convert("RGBA")
    side = int(canvas * rng.uniform(0.5, 0.95))
    sprite = sprite.resize((side, side), Image.LANCZOS)
    if rng.random() < 0.5:
        sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-20, 20))
    sprite = sprite.rotate(angle, resample=Image.BICUBIC, expand=True)
    bg = _background(rng, canvas)
    max_x = max(canvas - sprite.width, 0)
    max_y = max(canvas - sprite.height, 0)
    x = int(rng.integers(0, max_x + 1)) if max_x else (canvas - sprite.width) // 2
    y = int(rng.integers(0, max_y + 1)) if max_y else (canvas - sprite.height) // 2
    bg.paste(sprite, (x, y), sprite)
    img = bg.convert("RGB")
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.8, 1.2)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(0.8, 1.2)))
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.7, 1.3)))
    if rng.random() < 0.2:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    return img


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    kind = rng.choice(
        ["white", "light", "colour", "gradient", "noise"], p=[0.3, 0.25, 0.1, 0.2, 0.15]
    )
    if kind == "white":
        return Image.new("RGBA", (size, size), (255, 255, 255, 255))
    if kind == "light":
        c = tuple(int(v) for v in rng.integers(190, 256, 3))
        return Image.new("RGBA", (size, size), (*c, 255))
    if kind == "colour":
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        return Image.new("RGBA", (size, size), (*c, 255))
    if kind == "gradient":
        a = rng.integers(0, 256, 3).astype(np.float32)
        b = rng.integers(0, 256, 3).astype(np.float32)
        t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        grad = (a * (1 - t) + b * t).repeat(size, axis=1)
        if rng.random() < 0.5:
            grad = grad.transpose(1, 0, 2)
        arr = grad.astype(np.uint8)
    else:
        base = rng.integers(60, 220, 3)
        noise = rng.normal(0, 25, (size // 8, size // 8, 3))
        arr = np.clip(base + noise, 0, 255).astype(np.uint8)
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))
    rgba = np.concatenate([arr, np.full((size, size, 1), 255, np.uint8)], axis=2)
    return Image.fromarray(rgba, "RGBA")


def augment_fashion(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror, a shift of up to 2 pixels, brightness and contrast."""
    out = img
    if rng.random() < 0.5:
        out = out[:, ::-1]
    pad = np.pad(out, 2)
    dx, dy = (int(v) for v in rng.integers(0, 5, 2))
    out = pad[dy : dy + 28, dx : dx + 28].astype(np.float32)
    out = (out - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20)
    return np.clip(out, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Jobs: one dict per sample, fully describing it (the cache key is their digest).


def image_jobs(
    cfg: Config,
    classes: list[ClassSpec],
    split: str,
    emoji: EmojiIndex | None,
    fashion_rows: dict | None = None,
) -> list[dict]:
    """Pictures of a split; ``fashion_rows[(split, key)]``: Fashion-MNIST rows (fashion_pick)."""
    cnt = cfg.counts
    jobs = []
    for cid, c in enumerate(classes):
        rows = []
        if c.group == "fashion":
            part = "train" if split == "train" else "t10k"
            rows = [
                {
                    "source": "fashion",
                    "part": part,
                    "index": index,
                    "aug": split == "train" and i % 2 == 1,
                }
                for i, index in enumerate(fashion_rows[(split, c.key)])
            ]
        else:
            assert emoji is not None
            styles = cfg.train_styles if split == "train" else cfg.eval_styles
            base = []
            for short in c.emoji:
                for tone in emoji.tones(short):
                    for style in styles:
                        if emoji.picture(style, short, tone) is not None:
                            base.append(
                                {
                                    "source": "emoji",
                                    "style": style,
                                    "emoji": short,
                                    "code": emoji.code(short, tone),
                                    "tone": tone,
                                }
                            )
            if not base:
                raise RuntimeError(f"class {c.key}: no {split} picture in styles {styles}")
            augs = cnt.image_augs if split == "train" else 0
            limit = cnt.image_train_max if split == "train" else cnt.image_eval_max
            rng = rng_for(cfg.seed, "image-pick", split, c.key)
            # Plain pictures first (default tone before skin tones), then augmented copies.
            plain = [dict(b, aug=None) for b in base]
            plain.sort(key=lambda b: b["tone"] is not None)
            if len(plain) > limit:
                keep_default = [b for b in plain if b["tone"] is None]
                others = [b for b in plain if b["tone"] is not None]
                order = list(rng.permutation(len(others)))
                plain = (keep_default + [others[j] for j in order])[:limit]
            extra = []
            for a in range(augs):
                for b in base:
                    extra.append(dict(b, aug=a))
            order = list(rng.permutation(len(extra)))
            rows = plain + [extra[j] for j in order][: max(limit - len(plain), 0)]
        for r in rows:
            jobs.append({"y": cid, "class": c.key, **r})
    return jobs


def fashion_pick(cfg: Config, classes: list[ClassSpec], labels_train, labels_test) -> dict:
    """Which Fashion-MNIST rows each fashion class uses, per split (seeded, disjoint by file)."""
    picks = {}
    for c in classes:
        if c.group != "fashion":
            continue
        for split, labels, k in (
            ("train", labels_train, cfg.counts.fashion_train),
            ("eval", labels_test, cfg.counts.fashion_eval),
        ):
            idx = np.flatnonzero(labels == c.fashion_label)
            rng = rng_for(cfg.seed, "fashion", split, c.key)
            picks[(split, c.key)] = [int(v) for v in rng.choice(idx, size=k, replace=False)]
    return picks
