"""The runtime's renderer, called from Python: every training image of audio or text is drawn by it.

The binary is ``$VISUALBYTE_BIN`` if set, else
``/var/cache/visualbyte/target/{release,debug}/visualbyte`` (see docs/CONTRACT.md, "Commands the
export step uses").
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_TARGET = Path("/var/cache/visualbyte/target")


class RendererNotFound(RuntimeError):
    pass


class RenderFailed(RuntimeError):
    pass


def find_binary() -> Path:
    """Path of the ``visualbyte`` binary, or a RendererNotFound that says how to get one."""
    env = os.environ.get("VISUALBYTE_BIN")
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise RendererNotFound(f"VISUALBYTE_BIN={env} is not an executable file")
    candidates = [
        DEFAULT_TARGET / "release" / "visualbyte",
        DEFAULT_TARGET / "debug" / "visualbyte",
    ]
    for p in candidates:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise RendererNotFound(
        "the visualbyte binary was not found (looked at $VISUALBYTE_BIN, "
        + ", ".join(str(p) for p in candidates)
        + "). Build it in the repository root with\n"
        "  CARGO_TARGET_DIR=/var/cache/visualbyte/target cargo build --release -p visualbyte\n"
        "or point VISUALBYTE_BIN at it."
    )


def _run(args: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(args, capture_output=True, text=True)
    except OSError as err:
        raise RenderFailed(f"{what}: cannot run {args[0]}: {err}") from err
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        raise RenderFailed(f"{what} failed (exit {proc.returncode}): {' '.join(args)}\n{msg}")
    return proc


def _settings_args(size: int, model: Path | None) -> list[str]:
    """``--model M`` (that model's contract settings, its size included) or ``--size S``."""
    return ["--model", str(model)] if model is not None else ["--size", str(size)]


def render_config(size: int, binary: Path | None = None, model: Path | None = None) -> dict:
    """The renderer settings (``visualbyte render config --size S``, or ``--model M``: the
    settings that model was trained with) as a dict."""
    binary = binary or find_binary()
    args = [str(binary), "render", "config", *_settings_args(size, model)]
    proc = _run(args, "render config")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise RenderFailed(f"render config printed no JSON: {proc.stdout[:500]!r}") from err


def write_manifest(lines: list[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def render_batch(
    lines: list[dict],
    size: int,
    binary: Path | None = None,
    workdir: Path | None = None,
    model: Path | None = None,
) -> np.ndarray:
    """Renders manifest lines (``{"kind": "audio"|"text"|"image", ...}``) to uint8 [N, S, S, 3],
    with this build's settings for ``size`` or with ``model``'s (whose size must be ``size``)."""
    binary = binary or find_binary()
    if not lines:
        return np.zeros((0, size, size, 3), np.uint8)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        out = Path(tmp) / "out.u8"
        write_manifest(lines, manifest)
        args = [str(binary), "render", "batch", "--manifest", str(manifest)]
        args += [*_settings_args(size, model), "-o", str(out)]
        _run(args, f"render batch of {len(lines)} items")
        data = np.fromfile(out, np.uint8)
    expected = len(lines) * size * size * 3
    if data.size != expected:
        raise RenderFailed(
            f"render batch wrote {data.size} bytes for {len(lines)} items of {size}x{size}x3 "
            f"(expected {expected})"
        )
    return data.reshape(len(lines), size, size, 3)
