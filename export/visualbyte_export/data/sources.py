"""What the dataset is made from, on disk: the pinned npm emoji packages (fetched with
``--fetch``), the emoji of each style (``EmojiIndex``) and the Fashion-MNIST files."""

from __future__ import annotations

import gzip
import json
import re
import struct
import subprocess
import tarfile
from pathlib import Path

import numpy as np

from .config import log

# npm packages of the emoji styles, pinned.
NPM_PACKAGES = {
    "emoji-datasource-google": "16.0.0",
    "emoji-datasource-twitter": "16.0.0",
    "emoji-datasource-facebook": "16.0.0",
    "fluentui-emoji": "1.3.0",
    "openmoji": "17.0.0",
}
STYLE_PACKAGE = {
    "google": "emoji-datasource-google",
    "twitter": "emoji-datasource-twitter",
    "facebook": "emoji-datasource-facebook",
    "openmoji": "openmoji",
    "fluent-flat": "fluentui-emoji",
    "fluent-modern": "fluentui-emoji",
}
SKIN_TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
FLUENT_TONES = {
    "1F3FB": "light",
    "1F3FC": "medium-light",
    "1F3FD": "medium",
    "1F3FE": "medium-dark",
    "1F3FF": "dark",
}


# ------------------------------------------------------------------------------------------------
# Downloads


def fetch_packages(downloads: Path, styles: tuple[str, ...]) -> None:
    """``npm pack`` the pinned emoji packages the styles need; unpack them under ``downloads/x``."""
    downloads.mkdir(parents=True, exist_ok=True)
    for name in sorted(
        {STYLE_PACKAGE[s] for s in styles} | {"emoji-datasource-google", "openmoji"}
    ):
        version = NPM_PACKAGES[name]
        dest = downloads / "x" / f"{name}-{version}"
        if (dest / "package").is_dir():
            continue
        tgz = downloads / f"{name}-{version}.tgz"
        if not tgz.exists():
            log(f"npm pack {name}@{version}")
            subprocess.run(
                ["npm", "pack", f"{name}@{version}"],
                cwd=downloads,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tf:
            tf.extractall(dest, filter="data")


def package_dir(downloads: Path, name: str) -> Path:
    return downloads / "x" / f"{name}-{NPM_PACKAGES[name]}" / "package"


# ------------------------------------------------------------------------------------------------
# Emoji pictures


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class EmojiIndex:
    """Finds the picture of an emoji (by emoji-datasource short name) in every style."""

    def __init__(self, downloads: Path, raster_dir: Path):
        self.downloads = Path(downloads)
        self.raster_dir = Path(raster_dir)
        base = package_dir(self.downloads, "emoji-datasource-google")
        path = base / "emoji.json"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: run with --fetch (npm pack the emoji packages into "
                f"{self.downloads}) or point --downloads at them"
            )
        entries = json.loads(path.read_text(encoding="utf-8"))
        self.by_short: dict[str, dict] = {}
        for e in entries:
            for s in e["short_names"]:
                self.by_short[s] = e
        self.annotation: dict[str, str] = {}
        om = package_dir(self.downloads, "openmoji") / "data" / "openmoji.json"
        if om.exists():
            for o in json.loads(om.read_text(encoding="utf-8")):
                self.annotation[o["hexcode"]] = o["annotation"]

    def entry(self, short: str) -> dict:
        try:
            return self.by_short[short]
        except KeyError:
            raise KeyError(f"emoji short name {short!r} is not in emoji.json") from None

    def tones(self, short: str) -> list[str | None]:
        """``None`` (the default yellow) plus the five skin tones where the emoji has them."""
        e = self.entry(short)
        return [None, *SKIN_TONES] if e.get("skin_variations") else [None]

    def code(self, short: str, tone: str | None = None) -> str:
        u = self.entry(short)["unified"]
        return u if tone is None else f"{u}-{tone}"

    def picture(self, style: str, short: str, tone: str | None = None) -> Path | None:
        """PNG of the emoji in the style (SVG styles are rasterised once, cached), or None."""
        e = self.entry(short)
        if style in ("google", "twitter", "facebook"):
            root = package_dir(self.downloads, STYLE_PACKAGE[style]) / "img" / style / "64"
            if tone is None:
                if not e.get(f"has_img_{style}"):
                    return None
                name = e["image"]
            else:
                var = (e.get("skin_variations") or {}).get(tone)
                if not var or not var.get(f"has_img_{style}"):
                    return None
                name = var["image"]
            p = root / name
            return p if p.exists() else None
        if style == "openmoji":
            root = package_dir(self.downloads, "openmoji") / "color" / "svg"
            u = e["unified"]
            cands = [u, u.replace("-FE0F", "")]
            if tone is not None:
                cands = [f"{c}-{tone}" for c in cands]
            for c in cands:
                if (root / f"{c}.svg").exists():
                    return self._raster(style, root / f"{c}.svg", self.code(short, tone))
            return None
        if style in ("fluent-flat", "fluent-modern"):
            root = package_dir(self.downloads, "fluentui-emoji") / "icons" / style.split("-")[1]
            u = e["unified"]
            ann = self.annotation.get(u) or self.annotation.get(u.replace("-FE0F", "")) or e["name"]
            slug = _slug(ann or "")
            suffixes = ["", "-default"] if tone is None else [f"-{FLUENT_TONES[tone]}"]
            for suf in suffixes:
                p = root / f"{slug}{suf}.svg"
                if p.exists():
                    return self._raster(style, p, self.code(short, tone))
            return None
        raise ValueError(f"unknown emoji style {style!r}")

    def _raster(self, style: str, svg: Path, code: str, px: int = 128) -> Path:
        out = self.raster_dir / style / f"{code}.png"
        if out.exists():
            return out
        import cairosvg

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.png")
        cairosvg.svg2png(url=str(svg), write_to=str(tmp), output_width=px, output_height=px)
        tmp.replace(out)
        return out


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST


def load_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``part``: "train" (60k) or "t10k" (10k). Images uint8 [N, 28, 28], labels uint8 [N]."""
    images = root / f"{part}-images-idx3-ubyte.gz"
    labels = root / f"{part}-labels-idx1-ubyte.gz"
    for p in (images, labels):
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing: apt-get install dataset-fashion-mnist")
    return load_idx(images), load_idx(labels)
