"""``python -m visualbyte_export train``: train VisualByteNet on a rendered dataset.

Single process (CPU or one GPU) or ``torchrun --nproc_per_node N -m visualbyte_export train ...``
(DistributedDataParallel: gloo on CPU, nccl on GPU). Checkpoints are written to a temporary file and
renamed,
so a run killed at any moment resumes from its last checkpoint: run the same command again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .evaluate import OTHER_SPLITS
from .losses import LossWeights, curriculum_weights, unknown_loss, visualbyte_loss
from .model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_NORMS,
    VisualByteNet,
    load_init_weights,
    pixels_to_input,
)
from .onnx_init import load_onnx_weights, onnx_model_info
from .sampler import ClassBalancedTripleSampler

MODALITIES = ("image", "text", "audio")
DEFAULT_RUNS = Path("/var/cache/visualbyte/runs")


# -------------------------------------------------------------------------------- data
class RenderedSplit:
    """One split of a dataset directory: ``{split}_{modality}.npy`` uint8 [N,S,S,3] and
    ``..._y.npy``."""

    def __init__(
        self, root: Path, split: str, mmap: bool = True, photos: bool = True, teacher: bool = False
    ) -> None:
        self.root = Path(root)
        self.split = split
        mode = "r" if mmap else None
        self.x = {m: np.load(self.root / f"{split}_{m}.npy", mmap_mode=mode) for m in MODALITIES}
        self.y = {m: np.load(self.root / f"{split}_{m}_y.npy").astype(np.int64) for m in MODALITIES}
        # Training photographs and clip art (``data --photo-views``) are pictures like the others.
        parts = ["image"] + (
            ["photo"] if photos and (self.root / f"{split}_photo.npy").exists() else []
        )
        if len(parts) > 1:
            self.x["image"] = np.concatenate(
                [np.load(self.root / f"{split}_{p}.npy") for p in parts]
            )
            self.y["image"] = np.concatenate(
                [np.load(self.root / f"{split}_{p}_y.npy").astype(np.int64) for p in parts]
            )
        self.teacher = None
        if teacher:
            missing = [p for p in parts if not (self.root / f"{split}_{p}_teacher.npy").exists()]
            if missing:
                raise SystemExit(
                    f"--teacher-weight needs {split}_{missing[0]}_teacher.npy in {self.root}: run "
                    f"`python -m visualbyte_export teacher --data {self.root}` first"
                )
            self.teacher = np.concatenate(
                [np.load(self.root / f"{split}_{p}_teacher.npy") for p in parts]
            )
            if len(self.teacher) != len(self.y["image"]):
                raise SystemExit(f"{self.root}: teacher features do not match the pictures")
        for m in MODALITIES:
            if len(self.x[m]) != len(self.y[m]):
                raise ValueError(
                    f"{split}_{m}: {len(self.x[m])} samples but {len(self.y[m])} labels"
                )
        self.size = int(self.x["image"].shape[1])
        # Questions in other fonts and from other synthesizers (evaluation-only splits).
        self.other = {}
        for name in OTHER_SPLITS if split == "eval" else ():
            if (self.root / f"{name}.npy").exists():
                self.other[name] = (
                    np.load(self.root / f"{name}.npy", mmap_mode=mode),
                    np.load(self.root / f"{name}_y.npy").astype(np.int64),
                )


UNKNOWN_MODALITIES = ("text", "audio")


def load_unknown(root: Path) -> dict[str, np.ndarray]:
    """The dataset's questions about non-class words (``unknown_{text,audio}.npy``, memory
    mapped), for ``--unknown-weight``; a clear error when the dataset predates them."""
    missing = [
        f"unknown_{m}.npy" for m in UNKNOWN_MODALITIES if not (root / f"unknown_{m}.npy").exists()
    ]
    if missing:
        raise SystemExit(
            f"--unknown-weight needs {' and '.join(missing)} in {root}: rebuild the dataset with "
            "this version's `python -m visualbyte_export data` (it adds the non-class training "
            "words), or leave --unknown-weight at 0"
        )
    out = {m: np.load(root / f"unknown_{m}.npy", mmap_mode="r") for m in UNKNOWN_MODALITIES}
    empty = [m for m, a in out.items() if len(a) == 0]
    if empty:
        raise SystemExit(f"--unknown-weight: unknown_{empty[0]}.npy in {root} has no rows")
    return out


def unknown_rows(n_rows: int, k: int, seed: int, rank: int, step: int) -> np.ndarray:
    """``k`` distinct rows (fewer if there are fewer) of a non-class split for one step, the same
    for the same seed, rank and step (so a resumed run draws what it would have drawn)."""
    rng = np.random.default_rng([seed, rank, step, n_rows])
    return rng.choice(n_rows, size=min(k, n_rows), replace=False)


def load_meta(root: Path) -> dict:
    return json.loads((Path(root) / "meta.json").read_text())


def gather_rows(arr: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    order = np.argsort(idx, kind="stable")
    rows = np.asarray(arr[idx[order]])  # sorted reads are kind to memory-mapped files
    out = np.empty_like(rows)
    out[order] = rows
    return torch.from_numpy(out)


def init_recipe(path: Path) -> list[dict]:
    """The stored arguments of the run a checkpoint file came from, after those of the runs it
    continued (oldest first); empty for a checkpoint that is not ours."""
    return checkpoint_recipe(torch.load(path, map_location="cpu", weights_only=False))


def checkpoint_recipe(obj) -> list[dict]:
    """:func:`init_recipe` of an already loaded checkpoint: its parents' recorded recipes (or,
    for a checkpoint saved before runs recorded them, those read through its ``--init`` file),
    then its own arguments."""
    if not isinstance(obj, dict) or not isinstance(obj.get("args"), dict):
        return []
    parents = (obj.get("state") or {}).get("init_recipe")
    if parents is None:
        init = obj["args"].get("init")
        exists = init not in (None, "", "None") and Path(init).exists()
        parents = init_recipe(Path(init)) if exists else []
    return [*parents, obj["args"]]


def chain_init_model(obj, recipe: list[dict] | None = None) -> dict | None:
    """The exported model (``onnx_model_info``) that the chain of runs behind a loaded checkpoint
    started from, or None when it started from random weights. A run passes it on to the runs
    that continue it; for a checkpoint saved before runs did, it is read from the ``--init`` file
    of the oldest run in its recipe (``recipe``, when the caller already has
    :func:`checkpoint_recipe` of it), when that is an ONNX file still on disk."""
    if not isinstance(obj, dict):
        return None
    known = (obj.get("state") or {}).get("init_model")
    if known:
        return known
    recipe = checkpoint_recipe(obj) if recipe is None else recipe
    init = recipe[0].get("init") if recipe else None
    if init not in (None, "", "None") and str(init).endswith(".onnx") and Path(init).exists():
        return onnx_model_info(Path(init))
    return None


def calibration_batch(train: RenderedSplit, sampler: ClassBalancedTripleSampler) -> torch.Tensor:
    """Two class-balanced batches of triples (64 classes' image, text and audio rows), normalised
    as the network sees them."""
    rows = np.concatenate(sampler.global_batches(0)[:2])
    return torch.cat(
        [pixels_to_input(gather_rows(train.x[m], rows[:, 1 + i])) for i, m in enumerate(MODALITIES)]
    )


# -------------------------------------------------------------------------------- augmentation
def _affine(x: torch.Tensor, sx, sy, tx, ty, rot=None, shear=None) -> torch.Tensor:
    """Resample ``x`` through the per-sample affine map (output grid → input): scale, then
    rotation, plus a horizontal ``shear`` (input x += shear · output y, so letters lean)."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    if rot is None:
        theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    else:
        c, s = torch.cos(rot), torch.sin(rot)
        theta[:, 0, 0], theta[:, 0, 1] = sx * c, -sx * s
        theta[:, 1, 0], theta[:, 1, 1] = sy * s, sy * c
    if shear is not None:
        theta[:, 0, 1] = theta[:, 0, 1] + shear * theta[:, 1, 1]
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _u(n, lo, hi, g, device):
    return (
        torch.empty(n, device=device).uniform_(lo, hi, generator=g)
        if g is not None
        else (torch.empty(n, device=device).uniform_(lo, hi))
    )


def _blur(x: torch.Tensor, sigma: torch.Tensor, axis: int, radius: int = 3) -> torch.Tensor:
    """Gaussian blur of each picture along ``axis`` (2: down the rows, 3: along them), ``sigma``
    pixels per picture (~0 gives the identity tap); edges replicated."""
    n, c, h, w = x.shape
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype).view(1, -1)
    k = torch.exp(-0.5 * (taps / sigma.clamp_min(1e-3).view(n, 1)) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    if axis == 2:
        pad, shape = (0, 0, radius, radius), (n * c, 1, -1, 1)
    else:
        pad, shape = (radius, radius, 0, 0), (n * c, 1, 1, -1)
    flat = F.pad(x.reshape(1, n * c, h, w), pad, mode="replicate")
    return F.conv2d(flat, k.view(shape), groups=n * c).reshape(n, c, h, w)


def _style(x: torch.Tensor, s: float, g, dev) -> torch.Tensor:
    """Drawing-style changes on photos and emoji, so that a style the network never saw (a held-out
    emoji vendor, a camera) still reads: blur that softens outlines and flat fills, gamma, a mild
    colour cast, and grey pictures. Colours keep their hue (a red apple stays red)."""
    n = x.shape[0]
    sigma = _u(n, 0, 1.2 * s, g, dev)  # pixels at the input size
    x = _blur(_blur(x, sigma, axis=3), sigma, axis=2)
    gamma = torch.exp(_u(n, -0.4 * s, 0.4 * s, g, dev)).view(n, 1, 1, 1)
    x = x.clamp(0, 1) ** gamma
    cast = 1 + torch.empty(n, 3, 1, 1, device=dev).uniform_(-0.1 * s, 0.1 * s, generator=g)
    x = x * cast
    grey = (_u(n, 0, 1, g, dev) < 0.1 * s).view(n, 1, 1, 1)
    return torch.where(grey, x.mean(dim=1, keepdim=True).expand_as(x), x)


def _stroke_weight(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Bolder (``w`` > 0) or lighter (``w`` < 0) dark-on-light strokes, as another font weight
    would draw them: a blend, by ``|w|`` (≤ 1), toward the 3×3 minimum (ink spreads one pixel)
    or the 3×3 maximum (ink shrinks one pixel)."""
    bolder = -F.max_pool2d(-x, 3, stride=1, padding=1)
    lighter = F.max_pool2d(x, 3, stride=1, padding=1)
    w = w.view(-1, 1, 1, 1)
    target = torch.where(w > 0, bolder, lighter)
    return x + (target - x) * w.abs().clamp(max=1)


def _voice(x: torch.Tensor, v: float, g, dev) -> torch.Tensor:
    """Another speaker or synthesizer, drawn on the log-mel picture (low frequencies in the bottom
    row, time from the left): the frequency axis stretched or squeezed about its low end by up to
    ±12 % (formants and pitch move, as with another vocal tract), the tempo by up to ±15 % about
    the start, a smooth random EQ (tilt and one ripple, up to ~±5 dB at 80 dB per unit) on what
    is above the floor, and smoothing across frequency (blurred harmonics, as a coarser vocoder
    draws them)."""
    n, s = x.shape[0], x.shape[-1]
    alpha = torch.exp(_u(n, -0.12 * v, 0.12 * v, g, dev))
    tempo = torch.exp(_u(n, -0.15 * v, 0.15 * v, g, dev))
    # Output → input: y_in = y / alpha + (1 - 1/alpha) keeps the bottom row (y = 1) in place;
    # x_in = tempo · x + (tempo - 1) keeps the first column (x = -1).
    x = _affine(x, tempo, 1 / alpha, tempo - 1, 1 - 1 / alpha)
    pos = torch.linspace(-1, 1, s, device=dev).view(1, s)
    tilt = _u(n, -0.06 * v, 0.06 * v, g, dev).view(n, 1)
    ripple = _u(n, -0.04 * v, 0.04 * v, g, dev).view(n, 1)
    cycles = _u(n, 0.5, 2.0, g, dev).view(n, 1)
    phase = _u(n, 0, 6.2832, g, dev).view(n, 1)
    curve = tilt * pos + ripple * torch.sin(3.1416 * cycles * pos + phase)
    x = x + curve.view(n, 1, s, 1) * (x > 0.02).to(x.dtype)
    x = _blur(x.clamp(0, 1), _u(n, 0, 1.0 * v, g, dev), axis=2)
    return x.clamp(0, 1)


def augment(
    x: torch.Tensor,
    modality: str,
    strength: float = 1.0,
    generator=None,
    style: float = 0.0,
    voice: float = 0.0,
) -> torch.Tensor:
    """Random train-time changes on a float ``[B, 3, S, S]`` batch in [0, 1] (before
    normalisation). ``style`` (photos only, applied at any ``strength``) adds drawing-style
    changes (:func:`_style`); ``voice`` (speech only, at any ``strength``) other-speaker and
    other-synthesizer changes (:func:`_voice`)."""
    n, dev, g = x.shape[0], x.device, generator
    if modality == "image" and style > 0:
        x = _style(x, style, g, dev).clamp(0, 1)
    if modality == "audio" and voice > 0:
        x = _voice(x, voice, g, dev)
    if strength <= 0:
        return x
    s = strength
    if modality == "image":
        zoom = _u(n, 1 - 0.35 * s, 1.0, g, dev)  # grid scale < 1 = crop of 65..100 % of the side
        aspect = torch.exp(_u(n, -0.15 * s, 0.15 * s, g, dev))
        flip = torch.where(_u(n, 0, 1, g, dev) < 0.5, -1.0, 1.0)
        sx, sy = zoom * aspect.sqrt() * flip, zoom / aspect.sqrt()
        tx, ty = (1 - zoom) * _u(n, -1, 1, g, dev), (1 - zoom) * _u(n, -1, 1, g, dev)
        x = _affine(x, sx, sy, tx, ty)
        b = _u(n, -0.25 * s, 0.25 * s, g, dev).view(n, 1, 1, 1)
        c = _u(n, 1 - 0.3 * s, 1 + 0.3 * s, g, dev).view(n, 1, 1, 1)
        sat = _u(n, 1 - 0.4 * s, 1 + 0.4 * s, g, dev).view(n, 1, 1, 1)
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * sat
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean + b
    elif modality == "text":
        zoom = _u(n, 1 - 0.1 * s, 1 + 0.25 * s, g, dev)  # > 1 shrinks the word
        tx, ty = _u(n, -0.12 * s, 0.12 * s, g, dev), _u(n, -0.12 * s, 0.12 * s, g, dev)
        rot = _u(n, -0.07 * s, 0.07 * s, g, dev)
        shear = _u(n, -0.25 * s, 0.25 * s, g, dev)  # slanted (italic-like) letters
        x = _affine(x, zoom, zoom, tx, ty, rot, shear)
        x = _stroke_weight(x, _u(n, -0.5 * s, 0.8 * s, g, dev))
    elif modality == "audio":
        # Time only: shift and slight stretch; frequency rows keep their meaning.
        sx = _u(n, 1 - 0.1 * s, 1 + 0.1 * s, g, dev)
        tx = _u(n, -0.1 * s, 0.1 * s, g, dev)
        x = _affine(x, sx, torch.ones(n, device=dev), tx, torch.zeros(n, device=dev))
        S = x.shape[-1]
        fill = x.amin(dim=(1, 2, 3), keepdim=True)
        rows = torch.arange(S, device=dev).view(1, S)
        for axis in (2, 3):  # one frequency band and one time band, each on half the clips
            width = (_u(n, 0, 0.12 * s, g, dev) * S).long().view(n, 1)
            start = (_u(n, 0, 1, g, dev) * S).long().view(n, 1)
            on = (_u(n, 0, 1, g, dev) < 0.5).view(n, 1)
            band = ((rows >= start) & (rows < start + width) & on).to(x.dtype)
            band = band.view(n, 1, S, 1) if axis == 2 else band.view(n, 1, 1, S)
            x = x * (1 - band) + fill * band
    else:
        raise ValueError(modality)
    return x.clamp(0, 1)


def to_input(
    pixels: torch.Tensor,
    modality: str | None,
    aug_strength: float,
    device,
    style: float = 0.0,
    voice: float = 0.0,
) -> torch.Tensor:
    """uint8 NHWC → (augmented) normalised float NCHW, as CONTRACT.md."""
    x = pixels.to(device).permute(0, 3, 1, 2).float() / 255.0
    if modality is not None and (aug_strength > 0 or style > 0 or voice > 0):
        x = augment(x, modality, aug_strength, style=style, voice=voice)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# -------------------------------------------------------------------------------- model wrapper
class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics cover every rank's rows (gloo or nccl).

    ``torch.nn.SyncBatchNorm`` needs GPUs; this works on CPU too. The sums go through the autograd
    all-reduce, so gradients are those of one process on the whole batch. Same state dict.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        n = torch.tensor([float(x.shape[0])], device=x.device, dtype=x.dtype)
        total = all_reduce(torch.cat([x.sum(0), (x * x).sum(0), n]))
        count = total[-1]
        mean = total[:c] / count
        var = (total[c : 2 * c] / count - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * unbiased.detach())
                self.num_batches_tracked.add_(1)
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y


class TrainForward(nn.Module):
    """The DDP-wrapped module: one forward gives embeddings, class logits, the logit scale and,
    with a teacher, the teacher's features predicted from the first ``n_pictures`` rows' pooled
    backbone features (a training-only head: it is not exported)."""

    def __init__(self, net: VisualByteNet, teacher_dim: int = 0) -> None:
        super().__init__()
        self.net = net
        feat = net.backbone.num_features
        self.teacher_head = nn.Linear(feat, teacher_dim) if teacher_dim else None

    def forward(self, x: torch.Tensor, n_pictures: int = 0):
        net = self.net
        feats = net.backbone(net.standardise(x))
        emb = F.normalize(net.projector(feats), dim=-1)  # net.embed, keeping the features
        guess = None
        if self.teacher_head is not None and n_pictures:
            guess = self.teacher_head(feats[:n_pictures])
        return emb, net.classify(emb), net.logit_scale, guess


def teacher_loss(guess: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − cosine between the head's guess and the teacher's features of the same pictures."""
    return (1 - F.cosine_similarity(guess, target, dim=1)).mean()


def param_groups(net: VisualByteNet, lr_backbone: float, lr_head: float, wd: float) -> list[dict]:
    groups = {("b", True): [], ("b", False): [], ("h", True): [], ("h", False): []}
    head_ids = {id(p) for p in net.head_parameters()}
    for name, p in net.named_parameters():
        part = "h" if id(p) in head_ids else "b"
        decay = p.ndim >= 2 and name != "logit_scale"
        groups[(part, decay)].append(p)
    out = []
    for (part, decay), params in groups.items():
        if params:
            lr = lr_head if part == "h" else lr_backbone
            out.append(
                {"params": params, "lr": lr, "base_lr": lr, "weight_decay": wd if decay else 0.0}
            )
    return out


def lr_factor(step: int, progress: float, warmup: int, floor: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``floor`` as ``progress`` → 1.

    ``progress``: the fraction of the run done, of its steps or of its time budget.
    """
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, max(0.0, progress))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


# -------------------------------------------------------------------------------- checkpoints
def atomic_save(obj, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visualbyte_export train", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="dataset directory (meta.json + *.npy)")
    p.add_argument(
        "--name", default="default", help="run name: checkpoints in /var/cache/visualbyte/runs/NAME"
    )
    p.add_argument("--run-dir", type=Path, help="explicit run directory (overrides --name)")
    p.add_argument(
        "--arch", default="convnext_tiny", help="any timm convnext (atto/femto/pico/nano/tiny)"
    )
    p.add_argument("--size", type=int, help="input size; must equal the dataset's rendered size")
    p.add_argument("--embed-dim", type=int, default=512)
    p.add_argument(
        "--backbone-kwargs", default="{}", help="JSON overrides for timm (tests: depths, dims)"
    )
    p.add_argument(
        "--init",
        type=Path,
        help="start from these weights: a checkpoint (ours or a timm state dict) or an exported "
        "VisualByte ONNX model such as models/visualbyte.onnx (same architecture)",
    )
    p.add_argument("--epochs", type=float, default=30)
    p.add_argument(
        "--steps-per-epoch", type=int, help="default: ceil(train images / batch classes)"
    )
    p.add_argument(
        "--batch-classes", type=int, default=32, help="distinct classes per global batch"
    )
    p.add_argument("--lr-backbone", type=float, default=2e-3)
    p.add_argument("--lr-head", type=float, default=4e-3)
    p.add_argument(
        "--lr-floor", type=float, default=0.01, help="final lr as a fraction of the peak"
    )
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--audio-lambda", type=float, default=1.0, help="λ of the audio CLIP terms")
    p.add_argument(
        "--no-ce-audio", action="store_true", help="leave audio out of the classification loss"
    )
    p.add_argument(
        "--curriculum-epochs",
        type=float,
        default=0.0,
        help="classification-led epochs: alignment weight ramps from --align-start to 1",
    )
    p.add_argument(
        "--ce-weights",
        default="1,1,1",
        help="relative cross-entropy weights image,text,audio (the easy photos need less)",
    )
    p.add_argument("--align-start", type=float, default=0.1)
    p.add_argument(
        "--align-delay",
        type=float,
        default=0.0,
        help="epochs of classification only before the CLIP terms start to ramp in",
    )
    p.add_argument(
        "--aug",
        type=float,
        default=1.0,
        help="train-time augmentation strength (0 = off): photos crop, mirror and colour; text "
        "zoom, move, rotate, slant and stroke weight; speech time stretch, shift and masks",
    )
    p.add_argument(
        "--aug-style",
        type=float,
        default=0.0,
        help="drawing-style augmentation of photos (blur, gamma, colour cast, grey; 0 = off), "
        "for held-out emoji styles",
    )
    p.add_argument(
        "--aug-voice",
        type=float,
        default=0.0,
        help="other-speaker augmentation of speech pictures (frequency-axis warp, tempo, EQ, "
        "smoothing across frequency; 0 = off), for voices and synthesizers never heard",
    )
    p.add_argument(
        "--unknown-weight",
        type=float,
        default=0.0,
        help="weight of the loss that spreads the class posterior evenly over questions about "
        "words that are not classes (the dataset's unknown_text/unknown_audio.npy), so the "
        "model is unsure of what it has never seen (0 = off)",
    )
    p.add_argument(
        "--unknown-per-batch",
        type=int,
        default=8,
        help="non-class typed and spoken questions each, per step and rank, with --unknown-weight",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=0.0,
        help="weight of distilling the picture teacher (EfficientNet-lite0, ImageNet) into the "
        "picture rows: a training-only head predicts its features (`teacher` writes them) from "
        "the backbone's; 0 = off",
    )
    p.add_argument(
        "--lr-teacher-head",
        type=float,
        default=1e-3,
        help="learning rate of the teacher head (new at every run, so faster than --lr-head)",
    )
    p.add_argument(
        "--no-photos",
        action="store_true",
        help="leave the dataset's training photographs and clip art (train_photo.npy) out",
    )
    p.add_argument("--drop-path", type=float, default=0.0)
    p.add_argument(
        "--input-norm",
        choices=INPUT_NORMS,
        default="none",
        help="per_image: standardise each picture inside the network (mixed-modality batches)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument(
        "--ckpt-minutes", type=float, default=5.0, help="write last.pt at least this often"
    )
    p.add_argument(
        "--eval-limit", type=int, default=1000, help="eval queries per modality after each epoch"
    )
    p.add_argument("--no-eval", action="store_true")
    p.add_argument(
        "--budget-minutes",
        type=float,
        help="training time budget over all resumes: the cosine schedule ends when it is spent",
    )
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this long")
    p.add_argument(
        "--max-steps", type=int, help="stop (with a checkpoint) after this many steps in total"
    )
    p.add_argument(
        "--bench-steps", type=int, help="time this many steps after 2 warm-up ones, print, exit"
    )
    p.add_argument(
        "--no-resume", action="store_true", help="ignore an existing last.pt (starts over)"
    )
    p.add_argument("--no-progress", action="store_true")
    # Tests: the gradients of this process's first step (after DDP's all-reduce) go to this file.
    p.add_argument("--dump-grads", type=Path, help=argparse.SUPPRESS)
    return p


def _dist_setup(device_arg: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_arg == "auto" else device_arg.startswith("cuda")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return world, rank, device


def quick_eval(net: VisualByteNet, ev: RenderedSplit, device, limit: int, batch: int = 128) -> dict:
    from .evaluate import embed_arrays, recall_at_k

    net.eval()
    rng = np.random.default_rng(0)
    emb, ys = {}, {}
    for m in MODALITIES:
        n = len(ev.y[m])
        idx = np.sort(rng.choice(n, size=min(n, limit), replace=False))
        emb[m] = embed_arrays(lambda x: net.embed(x), ev.x[m], idx, device, batch)
        ys[m] = ev.y[m][idx]
    out = {}
    for m in MODALITIES:
        r = recall_at_k(
            emb[m], ys[m], emb["image"], ys["image"], (1, 5), exclude_self=(m == "image")
        )
        out[f"{m}_r1"], out[f"{m}_r5"] = r[1], r[5]
    out["mean_r1"] = float(np.mean([out[f"{m}_r1"] for m in MODALITIES]))
    for name, (x, y) in ev.other.items():  # reported, not part of mean_r1 (which picks best.pt)
        idx = np.sort(rng.choice(len(y), size=min(len(y), limit), replace=False))
        q = embed_arrays(lambda t: net.embed(t), x, idx, device, batch)
        r = recall_at_k(q, y[idx], emb["image"], ys["image"], (1, 5))
        out[f"{name}_r1"], out[f"{name}_r5"] = r[1], r[5]
    net.train()
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    world, rank, device = _dist_setup(args.device)
    is_main = rank == 0
    log = print if is_main else (lambda *a, **k: None)

    meta = load_meta(args.data)
    if args.teacher_weight < 0:
        raise SystemExit(f"--teacher-weight {args.teacher_weight}: 0 (off) or positive")
    train = RenderedSplit(
        args.data, "train", photos=not args.no_photos, teacher=args.teacher_weight > 0
    )
    size = train.size
    if args.size and args.size != size:
        raise SystemExit(
            f"--size {args.size} but {args.data} is rendered at {size} px: render it at {args.size}"
        )
    num_classes = len(meta["classes"])
    if args.unknown_weight < 0 or (args.unknown_weight > 0 and args.unknown_per_batch < 1):
        raise SystemExit(
            f"--unknown-weight {args.unknown_weight} with --unknown-per-batch "
            f"{args.unknown_per_batch}: the weight must be 0 (off) or positive, with at least 1 "
            "non-class question per batch"
        )
    unknown = load_unknown(args.data) if args.unknown_weight > 0 else {}
    run_dir = args.run_dir or (DEFAULT_RUNS / args.name)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    backbone_kwargs = json.loads(args.backbone_kwargs)
    net = VisualByteNet(
        args.arch, num_classes, args.embed_dim, backbone_kwargs, args.drop_path, args.input_norm
    ).to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    forward = TrainForward(net, train.teacher.shape[1] if train.teacher is not None else 0)
    forward.to(device)
    groups = param_groups(net, args.lr_backbone, args.lr_head, args.weight_decay)
    if forward.teacher_head is not None:
        head = list(forward.teacher_head.parameters())
        lr = args.lr_teacher_head
        groups.append({"params": head, "lr": lr, "base_lr": lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98))

    sampler = ClassBalancedTripleSampler(
        train.y["image"],
        train.y["text"],
        train.y["audio"],
        args.batch_classes,
        num_classes=num_classes,
        steps_per_epoch=args.steps_per_epoch,
        seed=args.seed,
        rank=rank,
        world_size=world,
    )
    steps_per_epoch = len(sampler)
    total_steps = max(1, int(round(args.epochs * steps_per_epoch)))
    state = {"step": 0, "best": -1.0, "history": [], "train_seconds": 0.0}

    last = run_dir / "last.pt"
    if last.exists() and not args.no_resume and not args.bench_steps:
        ckpt = torch.load(last, map_location=device, weights_only=False)
        net.load_state_dict(ckpt["model"])
        if forward.teacher_head is not None:
            forward.teacher_head.load_state_dict(ckpt["teacher_head"])
        opt.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        state.setdefault("train_seconds", 0.0)
        log(f"resumed {last} at step {state['step']} / {total_steps}")
    elif args.init:
        if not args.init.exists():
            raise SystemExit(f"--init {args.init} does not exist")
        if args.init.suffix == ".onnx":
            # A shipped model: its weights, and the BatchNorms the exporter folded set from the
            # statistics of one class-balanced batch of every modality.
            calib = calibration_batch(train, sampler).to(device)
            loaded = load_onnx_weights(net, args.init, calib)
            log(f"--init {args.init}: {len(loaded)} tensors from the ONNX graph")
            state["init_model"] = onnx_model_info(args.init)
            state["init_recipe"] = []
        else:
            # Read once: its weights, the recipe of every run this one continues (oldest
            # first) and the exported model the first of them started from, so the model card
            # can print the whole chain of commands that re-creates the model.
            parent = torch.load(args.init, map_location="cpu", weights_only=False)
            loaded, skipped = load_init_weights(net, parent)
            log(f"--init {args.init}: {len(loaded)} tensors loaded, {len(skipped)} skipped")
            state["init_recipe"] = checkpoint_recipe(parent)
            root = chain_init_model(parent, state["init_recipe"])
            if root:
                state["init_model"] = root

    module = forward
    if world > 1:
        # Batch statistics over the global batch, so N ranks train exactly like one process.
        for bn in net.projector:
            if isinstance(bn, nn.BatchNorm1d):
                bn.__class__ = GlobalBatchNorm1d
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    evset = None
    if (
        is_main
        and not args.no_eval
        and not args.bench_steps
        and (args.data / "eval_image.npy").exists()
    ):
        evset = RenderedSplit(args.data, "eval")

    def checkpoint(kind: str = "last") -> None:
        if not is_main:
            return
        ckpt = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "teacher_head": forward.teacher_head.state_dict()
            if forward.teacher_head is not None
            else None,
            "state": state,
            "model_config": net.config(),
            "size": size,
            "args": {k: str(v) for k, v in vars(args).items()},
            "classes": meta["classes"],
            "renderer": meta.get("renderer"),
            "dataset": str(args.data),
            "dataset_seed": meta.get("seed"),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_save(ckpt, run_dir / f"{kind}.pt")

    try:
        ce_modality = tuple(float(v) for v in args.ce_weights.split(","))
    except ValueError:
        ce_modality = ()
    if len(ce_modality) != 3 or min(ce_modality) < 0 or sum(ce_modality) <= 0:
        raise SystemExit(
            f"--ce-weights {args.ce_weights!r}: three non-negative numbers, e.g. 1,2,1"
        )
    weights = LossWeights(
        audio_lambda=args.audio_lambda, ce_audio=not args.no_ce_audio, ce_modality=ce_modality
    )
    b = sampler.local_batch
    log(
        f"{args.arch} {size}px, {num_classes} classes, global batch {sampler.batch_classes} "
        f"triples on {world} rank(s), {steps_per_epoch} steps/epoch, {total_steps} steps, "
        f"device {device}, run {run_dir}"
    )
    t_start = time.time()
    first_step = state["step"]
    t_ckpt = time.time()
    bench_t0 = None
    net.train()
    pbar = None
    if is_main and not args.no_progress:
        from tqdm import tqdm

        pbar = tqdm(total=total_steps, initial=state["step"], dynamic_ncols=True, file=sys.stderr)
    stop = False
    budget_s = 60 * args.budget_minutes if args.budget_minutes else None

    def progress() -> float:
        p = state["step"] / total_steps
        return max(p, state["train_seconds"] / budget_s) if budget_s else p

    def evaluate_and_keep_best() -> None:
        if evset is None:
            return
        metrics = quick_eval(net, evset, device, args.eval_limit)
        metrics.update(step=state["step"], epoch=state["step"] / steps_per_epoch)
        state["history"].append(metrics)
        log(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
        with open(run_dir / "eval_log.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        if metrics["mean_r1"] > state["best"]:
            state["best"] = metrics["mean_r1"]
            checkpoint("best")

    finished = False
    while not finished and not stop:
        epoch, in_epoch = divmod(state["step"], steps_per_epoch)
        sampler.set_epoch(epoch)
        for rows in sampler.iter_from(in_epoch):
            step = state["step"]
            if progress() >= 1.0:
                finished = True
                break
            t_step = time.time()
            f = lr_factor(step, progress(), args.warmup_steps, args.lr_floor)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * f
            w_cls, w_align = curriculum_weights(
                step / steps_per_epoch,
                args.curriculum_epochs,
                args.align_start,
                align_delay=args.align_delay,
            )
            weights.cls, weights.align = w_cls, w_align
            labels = torch.from_numpy(rows[:, 0]).to(device)
            x = torch.cat(
                [
                    to_input(
                        gather_rows(train.x[m], rows[:, 1 + i]),
                        m,
                        args.aug,
                        device,
                        args.aug_style,
                        args.aug_voice,
                    )
                    for i, m in enumerate(MODALITIES)
                ]
            )
            n_known = x.shape[0]
            if unknown:
                x = torch.cat(
                    [x]
                    + [
                        to_input(
                            gather_rows(
                                arr,
                                unknown_rows(
                                    len(arr), args.unknown_per_batch, args.seed, rank, step
                                ),
                            ),
                            m,
                            args.aug,
                            device,
                            args.aug_style,
                            args.aug_voice,
                        )
                        for m, arr in unknown.items()
                    ]
                )
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
                emb, logits, scale, guess = module(x, b if train.teacher is not None else 0)
            emb, logits = emb.float(), logits.float()
            e = dict(zip(MODALITIES, emb[:n_known].split(b), strict=False))
            lg = dict(zip(MODALITIES, logits[:n_known].split(b), strict=False))
            loss, parts = visualbyte_loss(e, lg, labels, scale, weights)
            if guess is not None:
                target = torch.from_numpy(train.teacher[rows[:, 1]].astype(np.float32)).to(device)
                distil = teacher_loss(guess.float(), target)
                loss = loss + args.teacher_weight * distil
                parts["teacher"] = float(distil.detach())
            if unknown:
                unk = unknown_loss(logits[n_known:])
                loss = loss + args.unknown_weight * unk
                parts["unknown"] = float(unk.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.dump_grads and is_main and not args.dump_grads.exists():
                grads = {n: q.grad.detach().clone() for n, q in net.named_parameters()}
                torch.save({n: g for n, g in grads.items() if g is not None}, args.dump_grads)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            state["step"] = step + 1
            state["train_seconds"] += time.time() - t_step
            if args.bench_steps:
                if state["step"] == 2:
                    bench_t0 = time.time()
                elif state["step"] == 2 + args.bench_steps:
                    dt = time.time() - bench_t0
                    tps = args.bench_steps * sampler.batch_classes / dt
                    log(
                        json.dumps(
                            {
                                "arch": args.arch,
                                "size": size,
                                "batch_classes": sampler.batch_classes,
                                "steps": args.bench_steps,
                                "seconds": round(dt, 2),
                                "triples_per_s": round(tps, 2),
                                "images_per_s": round(3 * tps, 2),
                            }
                        )
                    )
                    return 0
                continue
            if pbar is not None:
                pbar.update(1)
                pbar.set_postfix(
                    loss=f"{parts['loss']:.3f}",
                    ce_i=f"{parts['ce_image']:.2f}",
                    clip_ai=f"{parts['clip_ai']:.2f}",
                    s=f"{float(scale.detach().exp()):.1f}",
                    **({"unk": f"{parts['unknown']:.2f}"} if "unknown" in parts else {}),
                )
            if pbar is None and is_main and step % 20 == 0:
                rate = 3 * sampler.batch_classes * (step + 1 - first_step) / (time.time() - t_start)
                log(
                    f"step {step} ({step / steps_per_epoch:.2f} ep, {100 * progress():.1f}%) "
                    f"loss {parts['loss']:.3f} ce_img {parts['ce_image']:.2f} "
                    f"ce_txt {parts['ce_text']:.2f} ce_aud {parts.get('ce_audio', 0):.2f} "
                    f"clip_it {parts['clip_it']:.2f} clip_ai {parts['clip_ai']:.2f} "
                    f"lr x{f:.3f} {rate:.1f} img/s",
                    flush=True,
                )
            if is_main and step % 50 == 0:
                rec = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 3),
                    "lr_factor": round(f, 4),
                    "w_cls": w_cls,
                    "w_align": round(w_align, 3),
                    "scale": float(scale.detach().exp()),
                    **parts,
                    "elapsed_s": round(time.time() - t_start, 1),
                    "train_seconds": round(state["train_seconds"], 1),
                }
                with open(run_dir / "train_log.jsonl", "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            out_of_time = (
                args.max_minutes is not None and time.time() - t_start > 60 * args.max_minutes
            )
            out_of_steps = args.max_steps is not None and state["step"] >= args.max_steps
            if out_of_time or out_of_steps:
                stop = True
            if time.time() - t_ckpt > 60 * args.ckpt_minutes or stop:
                checkpoint()
                t_ckpt = time.time()
            if stop:
                break
        else:
            # End of an epoch: measure, keep the best, checkpoint.
            evaluate_and_keep_best()
            checkpoint()
            t_ckpt = time.time()
            finished = progress() >= 1.0
            continue
        if finished and not stop:
            # The run ended inside an epoch (time budget or a fractional epoch): measure it too.
            evaluate_and_keep_best()
            checkpoint()
    if pbar is not None:
        pbar.close()
    checkpoint()
    if is_main and not (run_dir / "best.pt").exists():
        checkpoint("best")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    log(f"done at step {state['step']}: {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
