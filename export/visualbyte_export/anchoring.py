"""Keeping a run near a frozen model (``train --anchor``): the flags, the frozen network, which
rows it holds, and the loss. Teaching new voices otherwise moves what the pictures and typed
questions mean too."""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import speech_mix
from .model import VisualByteNet, load_init_weights
from .onnx_init import load_onnx_weights, onnx_model_info


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--anchor",
        type=Path,
        help="a model (.onnx or checkpoint of the same network) whose class posteriors of the "
        "batch's pictures and typed questions --anchor-weight keeps this run near, so teaching "
        "new voices does not move what the gallery and typed questions mean",
    )
    p.add_argument(
        "--anchor-weight",
        type=float,
        default=0.0,
        help="weight of KL(anchor's posterior || this run's) on the picture and typed rows; "
        "0 = off",
    )
    p.add_argument(
        "--anchor-engines",
        default="",
        help="also keep these engines' spoken rows near --anchor (comma-separated, e.g. espeak: "
        "voices the anchor already answers well); the other engines' rows stay free",
    )


def anchor_loss(logits: torch.Tensor, anchor_logits: torch.Tensor) -> torch.Tensor:
    """KL(anchor's class posterior || this network's), averaged over rows: how far training has
    moved what these inputs mean."""
    return F.kl_div(
        F.log_softmax(logits, dim=1),
        F.log_softmax(anchor_logits, dim=1),
        reduction="batchmean",
        log_target=True,
    )


@dataclass
class Anchor:
    """The frozen network and, per training speech row, whether its engine is anchored too."""

    net: VisualByteNet
    spoken: np.ndarray | None

    def drift(self, x: torch.Tensor, logits: torch.Tensor, rows: np.ndarray, b: int):
        """The loss on a step's input ``x`` (``b`` rows a modality: pictures, typed, spoken) and
        the run's logits of it; ``rows`` are the sampler's triples."""
        kept = np.arange(2 * b)  # the picture and typed rows, which come first
        if self.spoken is not None:
            kept = np.concatenate([kept, 2 * b + np.flatnonzero(self.spoken[rows[:, 3]])])
        kept = torch.from_numpy(kept).to(x.device)
        with torch.no_grad():
            old = self.net.classify(self.net.embed(x[kept])).float()
        return anchor_loss(logits[kept], old)


def for_run(args: argparse.Namespace, net: VisualByteNet, state: dict) -> Anchor | None:
    """The ``--anchor`` model, frozen in eval mode (its exported behaviour), with the rows of
    ``--anchor-engines``; None when ``--anchor-weight`` is 0. An ONNX anchor is recorded in
    ``state``."""
    named = [e for e in args.anchor_engines.split(",") if e]
    if args.anchor_weight < 0:
        raise SystemExit(f"--anchor-weight {args.anchor_weight}: 0 (off) or positive")
    if args.anchor_weight == 0:
        if named:
            raise SystemExit("--anchor-engines needs --anchor MODEL and a positive --anchor-weight")
        return None
    if args.anchor is None or not args.anchor.exists():
        raise SystemExit(
            f"--anchor-weight {args.anchor_weight} needs --anchor MODEL, an existing .onnx or "
            f"checkpoint (got {args.anchor})"
        )
    frozen = copy.deepcopy(net)  # the same network; every weight is replaced below
    if args.anchor.suffix == ".onnx":
        # No calibration batch: the folded BatchNorms are exact in eval mode.
        load_onnx_weights(frozen, args.anchor)
        state["anchor_model"] = onnx_model_info(args.anchor)
    else:
        _, skipped = load_init_weights(
            frozen, torch.load(args.anchor, map_location="cpu", weights_only=False)
        )
        if skipped:
            raise SystemExit(f"--anchor {args.anchor}: not this network ({', '.join(skipped)})")
    frozen.eval()
    frozen.requires_grad_(False)
    spoken = None
    if named:
        engines = speech_mix.read_engines(args.data)
        speech_mix.check_engines(engines, named, "--anchor-engines")
        spoken = np.isin(engines, named)
    return Anchor(frozen, spoken)
