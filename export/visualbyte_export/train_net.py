"""What training wraps around VisualByteNet: the forward with the teacher head (the module DDP
wraps), BatchNorm over every rank, the teacher loss, parameter groups and the learning-rate
schedule."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .model import VisualByteNet


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
        feats = net.features(x)
        emb = net.embed_features(feats)
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
