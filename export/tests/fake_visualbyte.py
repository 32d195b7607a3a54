"""A stand-in for ``visualbyte render config|batch``: the dataset tests run without the Rust build.

It reads every input the real renderer would (WAV header and samples, picture, font file) and draws
a deterministic image from it; it checks manifest lines the same way (unknown keys, missing files).
"""

from __future__ import annotations

import hashlib
import json
import sys
import wave
from pathlib import Path

import numpy as np
from PIL import Image


def config(size: int) -> dict:
    return {"version": 1, "size": size, "fake": True, "text": {"font": "NanumSquareR"}}


def _fill(seed: bytes, size: int) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed).digest()[:8], "little"))
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def render(line: dict, base: Path, size: int, cfg: dict) -> np.ndarray:
    kind = line.get("kind")
    keys = set(line) - {"kind"}
    if kind == "audio":
        assert keys == {"path"}, line
        path = base / line["path"]
        with wave.open(str(path), "rb") as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2
            data = w.readframes(w.getnframes())
            rate = w.getframerate()
        assert len(data) > 0, f"{path}: no samples"
        return _fill(data + str(rate).encode(), size)
    if kind == "text":
        assert keys <= {"text", "font"}, line
        assert line["text"].strip(), "empty text"
        font = line.get("font")
        if font is not None:
            assert (base / font).is_file(), f"font {font} missing"
        layout = json.dumps(cfg.get("text", {}), sort_keys=True)  # the settings change the pixels
        return _fill(f"{font}|{line['text']}|{layout}".encode(), size)
    if kind == "image":
        assert keys == {"path"}, line
        img = Image.open(base / line["path"]).convert("RGB").resize((size, size))
        return np.asarray(img, np.uint8)
    raise AssertionError(f"unknown kind in {line}")


def settings(argv: list[str]) -> dict:
    """``--size S`` (this build's settings) or ``--model M``; a fake model is a JSON file
    ``{"renderer": settings}``."""
    if "--model" in argv:
        assert "--size" not in argv, "--size and --model conflict"
        return json.loads(Path(argv[argv.index("--model") + 1]).read_text())["renderer"]
    return config(int(argv[argv.index("--size") + 1]))


def main(argv: list[str]) -> int:
    if argv[:2] == ["render", "config"]:
        print(json.dumps(settings(argv), indent=2))
        return 0
    if argv[:2] == ["render", "batch"]:
        manifest = Path(argv[argv.index("--manifest") + 1])
        cfg = settings(argv)
        size = int(cfg["size"])
        out = Path(argv[argv.index("-o") + 1])
        text = manifest.read_text(encoding="utf-8")
        lines = [json.loads(s) for s in text.splitlines() if s.strip()]
        with open(out, "wb") as f:
            for line in lines:
                f.write(render(line, manifest.parent, size, cfg).tobytes())
        return 0
    print(f"fake visualbyte: unsupported arguments {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
