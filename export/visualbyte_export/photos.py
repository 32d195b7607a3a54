"""Photographs and photo-like pictures of the classes: GCompris' photographs (inside its Qt
resource files), Tux Paint's stamps (photographic cut-outs, named by file and by their
description), openclipart's clip art (named by file), and the photographic views made of them for
training.

Which picture is held out is fixed by its source, never by a score: the photographs of GCompris'
two "explore animals" activities (one photo an animal), every fourth of a class's other GCompris
photographs (by sorted name) and every fourth Tux Paint photograph (sorted by class, then path)
are the held-out photo split; every fourth clip-art file of a class the held-out clip-art split.
Neither is ever trained on. GCompris' ``lang`` word pictures and Tux Paint's cartoon stamps are
drawings: they train as clip art.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

GCOMPRIS_RCC = Path("/usr/share/gcompris-qt/rcc")
OPENCLIPART = Path("/usr/share/openclipart/png")
TUXPAINT = Path("/usr/share/tuxpaint/stamps")
PHOTO_PACKAGES = "gcompris-qt-data openclipart-png tuxpaint-stamps-default"
# GCompris activities whose pictures are photographs, and its word pictures (drawings).
PHOTO_ACTIVITIES = (
    "erase",
    "explore_farm_animals",
    "explore_world_animals",
    "categorization",
    "babyshapes",
    "clickgame",
)
HELD_OUT_ACTIVITIES = ("explore_farm_animals", "explore_world_animals")
DRAWING_ACTIVITIES = ("lang",)
HELD_OUT_EVERY = 4
# Photographs without any class in them: backgrounds for cut-outs.
BACKGROUND_ACTIVITIES = ("explore_monuments", "paintings", "details")
CLIPART_PER_CLASS = 12
# Tux Paint stamp folders without class pictures (letters, coins, road signs, notes), and the
# folders whose stamps are drawn, not photographed.
TUXPAINT_SKIP = ("symbols",)
TUXPAINT_DRAWN = ("cartoon", "toys")
# Stamps that are not the class their file name or last words say ("vw beetle" is a car, a
# "sea lion" no lion).
NOT_THE_CLASS = (
    "sea lion",
    "teddy bear",
    "edward bear",
    "rubber duck",
    "roast turkey",
    "vw beetle",
    "silver garbage can",
    "trophy cup",
    "american football",
    "t shirt",
    "adenium desert rose",
)


class PhotoSourceMissing(RuntimeError):
    pass


# ------------------------------------------------------------------------------ Qt resources
def read_rcc(data: bytes) -> dict[str, bytes]:
    """Every file in a Qt binary resource (``.rcc``) by its path: header ``qres``, version,
    tree, data and name offsets; tree entries of 14 bytes (22 from version 2); zlib-compressed
    files carry their size in 4 big-endian bytes first. zstd-compressed files are left out."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource file (no 'qres' magic)")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    entry = 14 if version < 2 else 22

    def name_at(off: int) -> str:
        (n,) = struct.unpack(">H", data[names + off : names + off + 2])
        return data[names + off + 6 : names + off + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        o = tree + i * entry
        name_off, flags = struct.unpack(">IH", data[o : o + 6])
        name = name_at(name_off) if i else ""
        if flags & 2:  # a directory: its children are consecutive entries
            count, first = struct.unpack(">II", data[o + 6 : o + 14])
            path = f"{prefix}{name}/" if i else ""
            stack.extend((c, path) for c in range(first, first + count))
            continue
        (off,) = struct.unpack(">I", data[o + 10 : o + 14])
        (size,) = struct.unpack(">I", data[payload + off : payload + off + 4])
        raw = data[payload + off + 4 : payload + off + 4 + size]
        if flags & 4:
            continue
        out[prefix + name] = zlib.decompress(raw[4:]) if flags & 1 else raw
    return out


def _activity(path: str) -> str:
    parts = path.split("/")
    return parts[3] if len(parts) > 3 and parts[2] == "activities" else ""


def _words(stem: str) -> str:
    return re.sub(r" +", " ", re.sub(r"[^a-z]+", " ", stem.lower())).strip()


def _names(c) -> list[str]:
    return [c.en.lower(), *(a.lower() for a in c.en_aliases if a)]


def _matches(words: str, names: list[str], exact: bool) -> bool:
    for n in names:
        if words == n or words.replace(" ", "") == n.replace(" ", ""):
            return True
        if not exact and words.startswith(n + " ") and not words[len(n) + 1 :].isalpha():
            return True
    return False


def stamp_name(png: Path) -> str:
    """What a Tux Paint stamp shows, from the first line of its ``.txt`` ("An elephant."), as
    plain lower-case words without the article; "" without one."""
    txt = png.with_suffix(".txt")
    if not txt.is_file():
        return ""
    lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    return re.sub(r"^(an?|the|some) ", "", _words(lines[0])) if lines else ""


def stamp_class(png: Path, classes):
    """The class a Tux Paint stamp shows: its file name or its description is a class name
    (``tiger.png``, "An elephant."), or a description of two or three words ends in one
    ("sumatran tiger"); else None."""
    name = stamp_name(png)
    if name in NOT_THE_CLASS:  # checked first: ``beetle.png`` is a car
        return None
    exact = [_words(png.stem), _words(re.sub(r"[-_]?\d+$", "", png.stem)), name]
    for c in classes:
        if any(w and _matches(w, _names(c), exact=True) for w in exact):
            return c
    words = name.split()
    if not 1 < len(words) <= 3:
        return None
    for c in classes:
        if any(_matches(" ".join(words[-k:]), _names(c), exact=True) for k in (2, 1)):
            return c
    return None


@dataclass(frozen=True)
class Picture:
    source: str  # "photo" (GCompris, Tux Paint), "drawing" (word picture, cartoon), "clipart"
    ref: str  # "file.rcc:path/in/resource" or a file path
    key: str  # the class key
    held_out: bool


# ------------------------------------------------------------------------------ sources
class PhotoSources:
    """The photo-like pictures this machine has, read once."""

    def __init__(
        self,
        rcc_dir: Path = GCOMPRIS_RCC,
        clipart_dir: Path = OPENCLIPART,
        stamps_dir: Path = TUXPAINT,
    ) -> None:
        missing = [str(p) for p in (rcc_dir, clipart_dir, stamps_dir) if not p.is_dir()]
        if missing:
            raise PhotoSourceMissing(
                f"{', '.join(missing)} not found: apt-get install {PHOTO_PACKAGES}"
            )
        self.rcc_dir = Path(rcc_dir)
        self.clipart_dir = Path(clipart_dir)
        self.stamps_dir = Path(stamps_dir)
        self._rcc: dict[str, dict[str, bytes]] = {}

    def rcc(self, name: str) -> dict[str, bytes]:
        if name not in self._rcc:
            self._rcc[name] = read_rcc((self.rcc_dir / name).read_bytes())
        return self._rcc[name]

    def _gcompris_files(self, activities: tuple[str, ...]) -> list[tuple[str, str]]:
        found = []
        for path in sorted(self.rcc_dir.glob("*.rcc")):
            if path.stem not in activities:
                continue
            for inner in sorted(self.rcc(path.name)):
                if inner.lower().endswith((".webp", ".jpg", ".jpeg")) and (
                    _activity(inner) in activities
                ):
                    found.append((path.name, inner))
        return found

    def gcompris(self, classes) -> list[Picture]:
        """GCompris photographs and word drawings named after a class (``cow.webp``,
        ``fish12.webp``)."""
        found: dict[tuple[str, str], list[str]] = {}
        for rcc, inner in self._gcompris_files(PHOTO_ACTIVITIES + DRAWING_ACTIVITIES):
            words = _words(Path(inner).stem)
            drawing = _activity(inner) in DRAWING_ACTIVITIES
            for c in classes:
                if _matches(words, _names(c), exact=drawing):
                    kind = "drawing" if drawing else "photo"
                    found.setdefault((kind, c.key), []).append(f"{rcc}:{inner}")
                    break
        out = []
        for (kind, key), refs in sorted(found.items()):
            rest = 0
            for ref in sorted(refs):
                if kind == "photo" and _activity(ref.split(":", 1)[1]) in HELD_OUT_ACTIVITIES:
                    held = True
                else:
                    held = kind == "photo" and rest % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
                    rest += 1
                out.append(Picture(kind, ref, key, held))
        return out

    def openclipart(self, classes) -> list[Picture]:
        """Clip art named after a class (``apple_red_01.png``), up to CLIPART_PER_CLASS each."""
        by_words: dict[str, list[Path]] = {}
        for png in sorted(self.clipart_dir.rglob("*.png")):
            by_words.setdefault(_words(png.stem), []).append(png)
        out = []
        for c in classes:
            names = _names(c)
            files = sorted(
                p for w, ps in by_words.items() if _matches(w, names, exact=False) for p in ps
            )[:CLIPART_PER_CLASS]
            for i, p in enumerate(files):
                held = i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
                out.append(Picture("clipart", str(p), c.key, held))
        return out

    def tuxpaint(self, classes) -> list[Picture]:
        """Tux Paint's stamps of a class: photographs, or drawings where the folder says so."""
        found = []
        for png in sorted(self.stamps_dir.rglob("*.png")):
            folders = png.relative_to(self.stamps_dir).parts[:-1]
            if folders[:1] == TUXPAINT_SKIP:
                continue
            c = stamp_class(png, classes)
            if c is not None:
                drawn = any(f in TUXPAINT_DRAWN for f in folders)
                found.append(("drawing" if drawn else "photo", c.key, str(png)))
        out, photos = [], 0
        for kind, key, ref in sorted(found, key=lambda f: (f[1], f[2])):
            held = kind == "photo" and photos % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
            photos += kind == "photo"
            out.append(Picture(kind, ref, key, held))
        return out

    def all_pictures(self, classes) -> list[Picture]:
        return self.gcompris(classes) + self.tuxpaint(classes) + self.openclipart(classes)

    def backgrounds(self) -> list[str]:
        return [f"{r}:{i}" for r, i in self._gcompris_files(BACKGROUND_ACTIVITIES)]

    def load(self, ref: str) -> Image.Image:
        if ref.endswith(".png") and Path(ref).is_file():  # clip art and stamps
            return Image.open(ref).convert("RGBA")
        rcc, inner = ref.split(":", 1)
        return Image.open(io.BytesIO(self.rcc(rcc)[inner])).convert("RGBA")


# ------------------------------------------------------------------------------ views
def is_cut_out(img: Image.Image) -> bool:
    """A picture with a transparent surround (clip art) rather than a full frame."""
    alpha = np.asarray(img.getchannel("A"))
    return bool((alpha < 128).mean() > 0.05)


def plain_view(img: Image.Image, canvas: int = 160) -> Image.Image:
    """The picture as a camera memory would hold it: on white, centred, unaltered."""
    bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
    bg.alpha_composite(img)
    bg = bg.convert("RGB")
    bg.thumbnail((canvas * 2, canvas * 2), Image.LANCZOS)
    return bg


def photo_view(
    img: Image.Image,
    rng: np.random.Generator,
    backgrounds: list[Image.Image],
    canvas: int = 160,
) -> Image.Image:
    """One photographic view: a cut-out composited on a photo background or a full photo
    cropped; then perspective, colour cast, light, blur, sensor noise and JPEG."""
    if is_cut_out(img):
        if backgrounds and rng.random() < 0.7:
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
            side = int(min(bg.size) * rng.uniform(0.3, 1.0))
            x0 = int(rng.integers(0, bg.width - side + 1))
            y0 = int(rng.integers(0, bg.height - side + 1))
            frame = bg.crop((x0, y0, x0 + side, y0 + side)).resize((canvas, canvas)).convert("RGBA")
        else:
            grey = int(rng.integers(150, 256))
            frame = Image.new("RGBA", (canvas, canvas), (grey, grey, grey, 255))
        sprite = img
        scale = canvas * rng.uniform(0.45, 0.95) / max(sprite.size)
        sprite = sprite.resize(
            (max(1, int(sprite.width * scale)), max(1, int(sprite.height * scale))), Image.LANCZOS
        )
        if rng.random() < 0.5:
            sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
        sprite = sprite.rotate(float(rng.uniform(-15, 15)), Image.BICUBIC, expand=True)
        x = int(rng.integers(0, max(canvas - sprite.width, 0) + 1))
        y = int(rng.integers(0, max(canvas - sprite.height, 0) + 1))
        frame.paste(sprite, (x, y), sprite)
        view = frame.convert("RGB")
    else:
        full = plain_view(img, canvas * 2)
        w, h = full.size
        side = int(min(w, h) * rng.uniform(0.65, 1.0))
        x0 = int(rng.integers(0, w - side + 1))
        y0 = int(rng.integers(0, h - side + 1))
        view = full.crop((x0, y0, x0 + side, y0 + side)).resize((canvas, canvas), Image.BICUBIC)
        if rng.random() < 0.5:
            view = view.transpose(Image.FLIP_LEFT_RIGHT)
    return camera(view, rng)


def camera(view: Image.Image, rng: np.random.Generator) -> Image.Image:
    """What a cheap camera does to a scene: tilt, white balance, exposure, focus, noise, JPEG."""
    w, h = view.size
    if rng.random() < 0.5:
        d = rng.uniform(-0.08, 0.08, 8) * np.array([w, h] * 4)
        quad = np.array([0, 0, 0, h, w, h, w, 0], np.float64) + d
        view = view.transform((w, h), Image.QUAD, tuple(quad.tolist()), Image.BICUBIC)
    arr = np.asarray(view).astype(np.float32)
    arr *= rng.uniform(0.8, 1.2, 3)[None, None, :]  # colour cast
    arr = (arr - 128) * rng.uniform(0.75, 1.25) + 128 + rng.uniform(-25, 25)
    view = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    view = ImageEnhance.Color(view).enhance(float(rng.uniform(0.6, 1.3)))
    if rng.random() < 0.4:
        view = view.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    if rng.random() < 0.5:
        arr = np.asarray(view).astype(np.float32)
        arr += rng.normal(0, rng.uniform(2, 10), arr.shape)
        view = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    view.save(buf, "JPEG", quality=int(rng.integers(30, 92)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


# ------------------------------------------------------------------------------ dataset splits
KTUBERLING_SOUNDS = Path("/usr/share/ktuberling/sounds")
KTUBERLING_EN = KTUBERLING_SOUNDS / "en"


def ktuberling_word(ogg: Path) -> str:
    """The English word a KTuberling recording says, from its file name in any language
    folder (``egypt_palmtree.ogg`` → "palm tree")."""
    return _words(ogg.stem.split("_", 1)[-1].replace("palmtree", "palm tree"))


def photo_jobs(pictures: list[Picture], classes, views: int) -> dict[str, list[dict]]:
    """Rows of the photo splits: ``train_photo`` (every training picture plain, then ``views - 1``
    photographic views), ``photo_image`` (held-out photographs, plain) and ``clipart_image``
    (held-out clip art, plain)."""
    ids = {c.key: i for i, c in enumerate(classes)}
    out: dict[str, list[dict]] = {"train_photo": [], "photo_image": [], "clipart_image": []}
    for p in pictures:
        row = {"y": ids[p.key], "class": p.key, "source": p.source, "ref": p.ref}
        if not p.held_out:
            out["train_photo"].extend(dict(row, view=v) for v in range(views))
        elif p.source == "photo":
            out["photo_image"].append(dict(row, view=0))
        elif p.source == "clipart":
            out["clipart_image"].append(dict(row, view=0))
    return out


def human_speech_jobs(
    classes, folder: Path = KTUBERLING_EN, stamps: Path | None = None
) -> list[dict]:
    """Recorded English words that name a class (evaluation only): KTuberling's (one speaker,
    the bare word), then, given Tux Paint's ``stamps``, its stamps' English descriptions spoken
    ("An elephant.", ``elephant_desc.ogg``) where the description is just the class name."""
    if not folder.is_dir():
        raise PhotoSourceMissing(f"{folder} not found: apt-get install ktuberling-data")
    found = []
    for ogg in sorted(folder.glob("*.ogg")):
        found.append((ktuberling_word(ogg), ogg, "ktuberling"))
    if stamps is not None:
        for ogg in sorted(stamps.rglob("*_desc.ogg")):
            word = stamp_name(ogg.with_name(ogg.name[: -len("_desc.ogg")] + ".png"))
            found.append((word, ogg, "tuxpaint"))
    jobs = []
    for word, ogg, speaker in found:
        for i, c in enumerate(classes):
            if _matches(word, _names(c), exact=True):
                jobs.append(
                    {"y": i, "class": c.key, "file": str(ogg), "word": word, "speaker": speaker}
                )
                break
    return jobs


def label_jobs(classes) -> list[dict]:
    """Each class name typed once in the embedded font: what `index build` stores as a label."""
    return [{"y": i, "class": c.key, "text": c.en} for i, c in enumerate(classes)]


class PhotoStage:
    """Makes the picture files and WAVs the renderer reads for the rows above."""

    def __init__(self, seed: int, sources: PhotoSources) -> None:
        self.seed = seed
        self.sources = sources
        self._backgrounds: list[Image.Image] | None = None

    def backgrounds(self) -> list[Image.Image]:
        if self._backgrounds is None:
            self._backgrounds = [
                self.sources.load(b).convert("RGB") for b in self.sources.backgrounds()
            ]
        return self._backgrounds

    def picture_lines(self, jobs: list[dict], workdir: Path) -> list[dict]:
        lines = []
        ref, img = None, None
        for i, job in enumerate(jobs):
            if job["ref"] != ref:  # a picture's views are consecutive rows: decode it once
                ref, img = job["ref"], self.sources.load(job["ref"])
            if job["view"] == 0:
                view = plain_view(img)
            else:
                key = f"{self.seed}|photo-view|{job['ref']}|{job['view']}".encode()
                rng = np.random.default_rng(
                    int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
                )
                view = photo_view(img, rng, self.backgrounds())
            path = workdir / f"{i:06d}.png"
            view.save(path)
            lines.append({"kind": "image", "path": str(path)})
        return lines

    @staticmethod
    def human_lines(jobs: list[dict], workdir: Path) -> list[dict]:
        lines = []
        for i, job in enumerate(jobs):
            wav = workdir / f"{i:04d}.wav"
            subprocess.run(
                ["sox", job["file"], "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True
            )
            lines.append({"kind": "audio", "path": str(wav)})
        return lines
