"""``python -m visualbyte_export blend``: a run blended in weight space with the exported model it
continued from, ``(1 - alpha) * start + alpha * run`` (weight-space ensembling of a fine-tuned model
with its starting point, "WiSE-FT").

A run that learnt new voices forgets a little of the old ones; the straight line between its
weights and those it started from often keeps most of both, at no training cost. The blend is
written as a training checkpoint, so ``export`` and ``evaluate`` treat it like any run.

Both networks are put in one parameterisation first, so that the line is a line between the
functions they compute: every BatchNorm that follows a convolution is folded into it (as the
exporter does), and every other BatchNorm becomes the exact per-channel affine map it computes in
eval mode. ``alpha = 0`` gives back the start model's function, ``alpha = 1`` the run's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from .checkpoints import atomic_save
from .model import VisualByteNet, load_checkpoint_model
from .onnx_init import FOLDED_NORMS, net_from_onnx, onnx_model_info


@torch.no_grad()
def fold_norms(net: VisualByteNet) -> VisualByteNet:
    """``net`` (in place, eval mode) with each BatchNorm folded into the layer before it (those
    the exporter folds, ``FOLDED_NORMS``, and any convolution or linear layer right before one in
    a ``Sequential``) and every other BatchNorm made the affine map it computes: weight ``a``,
    bias ``c``, mean 0, variance ``1 - eps``."""
    net.eval()
    mods = dict(net.named_modules())
    norm_type = nn.modules.batchnorm._BatchNorm
    layer_of = {}  # norm → the layer it is folded into
    for name, m in mods.items():
        for conv_suffix, norm_suffix in FOLDED_NORMS.items():
            if name.endswith("." + conv_suffix):
                norm = mods.get(name[: len(name) - len(conv_suffix)] + norm_suffix)
                if isinstance(norm, norm_type):
                    layer_of[norm] = m
    for m in mods.values():
        if isinstance(m, nn.Sequential):
            for a, b in zip(list(m)[:-1], list(m)[1:], strict=True):
                if isinstance(a, (nn.Linear, nn.Conv2d)) and isinstance(b, norm_type):
                    layer_of.setdefault(b, a)
    for norm, layer in layer_of.items():
        if layer.bias is None:
            raise ValueError(f"{layer} has no bias to fold its BatchNorm into")
        a, c = _affine(norm)
        layer.weight.mul_(a.view(-1, *[1] * (layer.weight.dim() - 1)))
        layer.bias.mul_(a).add_(c)
        _set_affine(norm, torch.ones_like(a), torch.zeros_like(c))
    for name, m in mods.items():
        if isinstance(m, norm_type) and m not in layer_of:
            if not m.affine:
                raise ValueError(f"{name}: a BatchNorm without weights and no layer to fold into")
            _set_affine(m, *_affine(m))
    return net


def _affine(bn) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``a * x + c``, per channel."""
    a = 1.0 / torch.sqrt(bn.running_var + bn.eps)
    if not bn.affine:
        return a, -bn.running_mean * a
    a = a * bn.weight
    return a, bn.bias - bn.running_mean * a


def _set_affine(bn, a: torch.Tensor, c: torch.Tensor) -> None:
    if bn.affine:
        bn.weight.copy_(a)
        bn.bias.copy_(c)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


@torch.no_grad()
def blend_states(start: VisualByteNet, run: VisualByteNet, alpha: float) -> dict:
    """The blended state dict of two networks of one architecture (both folded here)."""
    a, b = fold_norms(start).state_dict(), fold_norms(run).state_dict()
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise ValueError("the start model and the run have different architectures")
    return {
        k: torch.lerp(a[k].float(), b[k].float(), alpha).to(b[k].dtype)
        if b[k].is_floating_point()
        else b[k]
        for k in b
    }


def blend_checkpoint(start_onnx: Path, run_ckpt: Path, alpha: float, out: Path) -> dict:
    """Write the blend of ``run_ckpt`` (a ``train`` checkpoint) with the exported model it
    continued from, ``start_onnx``, as a checkpoint at ``out``; returns what it recorded."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    run, ckpt = load_checkpoint_model(run_ckpt)
    start = net_from_onnx(start_onnx)
    if start.config() != run.config():
        raise ValueError(f"{start_onnx} is not the architecture of {run_ckpt}")
    record = {"start": onnx_model_info(start_onnx), "run": str(run_ckpt), "alpha": alpha}
    state = dict(ckpt.get("state") or {})
    state["blend"] = record
    blended = dict(ckpt, model=blend_states(start, run, alpha), optimizer=None, state=state)
    blended.pop("teacher_head", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(blended, out)
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m visualbyte_export blend", description=__doc__)
    p.add_argument("--start", type=Path, required=True, help="the exported model the run continued")
    p.add_argument("--run", type=Path, required=True, help="the run's checkpoint (last.pt)")
    p.add_argument("--alpha", type=float, required=True, help="0 = the start model, 1 = the run")
    p.add_argument("--out", type=Path, required=True, help="the blended checkpoint to write")
    args = p.parse_args(argv)
    for f in (args.start, args.run):
        if not f.is_file():
            print(f"error: {f} not found", file=sys.stderr)
            return 2
    try:
        rec = blend_checkpoint(args.start, args.run, args.alpha, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"[blend] {args.out}: {1 - rec['alpha']:.2f} x {rec['start']['model_id']} + "
        f"{rec['alpha']:.2f} x {args.run}"
    )
    return 0
