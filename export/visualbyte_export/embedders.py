"""Embedding a uint8 pixel array: the normalisation of CONTRACT.md and the backends (a torch
function, onnxruntime, a training checkpoint, the Rust runtime binary)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .model import IMAGENET_MEAN, IMAGENET_STD


def normalise_pixels(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[N, S, S, 3]`` → float32 ``[N, 3, S, S]`` with ``(p / 255 - mean) / std``
    (CONTRACT.md)."""
    x = pixels.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def embed_arrays(
    fn: Callable, arr: np.ndarray, idx: np.ndarray | None, device, batch: int = 128
) -> np.ndarray:
    """Embed rows ``idx`` of a uint8 array with a torch function on normalised input."""
    idx = np.arange(len(arr)) if idx is None else np.asarray(idx)
    out = []
    for i in range(0, len(idx), batch):
        x = torch.from_numpy(normalise_pixels(np.asarray(arr[idx[i : i + batch]]))).to(device)
        out.append(fn(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class OnnxEmbedder:
    def __init__(self, path: Path, threads: int = 2) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
        out = [
            self.sess.run(None, {self.input: normalise_pixels(np.asarray(pixels[i : i + batch]))})[
                0
            ]
            for i in range(0, len(pixels), batch)
        ]
        return np.concatenate(out).astype(np.float32)


class TorchEmbedder:
    def __init__(self, checkpoint: Path, threads: int = 2) -> None:
        from .model import load_checkpoint_model

        torch.set_num_threads(threads)
        self.net, self.ckpt = load_checkpoint_model(checkpoint)

    def __call__(self, pixels: np.ndarray, batch: int = 128) -> np.ndarray:
        return embed_arrays(self.net.embed, pixels, None, "cpu", batch)


def find_runtime_binary() -> Path | None:
    """The Rust ``visualbyte`` binary: $VISUALBYTE_BIN, else the shared target dir (release,
    then debug)."""
    import os

    env = os.environ.get("VISUALBYTE_BIN")
    if env:
        return Path(env) if Path(env).exists() else None
    for sub in ("release", "debug"):
        p = Path("/var/cache/visualbyte/target") / sub / "visualbyte"
        if p.exists():
            return p
    return None


class RuntimeEmbedder:
    """Embeds through the Rust runtime: ``visualbyte embed --model M --input IN.u8 -o OUT.f32``."""

    def __init__(self, model: Path, binary: Path | None = None) -> None:
        self.model = Path(model)
        self.binary = binary or find_runtime_binary()
        if self.binary is None:
            raise FileNotFoundError(
                "visualbyte binary not found: build it (cargo build) or set VISUALBYTE_BIN"
            )

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        with tempfile.TemporaryDirectory() as td:
            inp, out = Path(td) / "in.u8", Path(td) / "out.f32"
            pixels.tofile(inp)
            cmd = [
                str(self.binary),
                "embed",
                "--model",
                str(self.model),
                "--input",
                str(inp),
                "-o",
                str(out),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}"
                )
            return np.fromfile(out, dtype="<f4").reshape(len(pixels), -1)
