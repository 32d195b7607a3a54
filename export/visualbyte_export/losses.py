"""Training losses: classification on every modality plus CLIP alignment between modalities.

``total = w_cls · mean(CE_image, CE_text[, CE_audio]) + w_align · (CLIP(i↔t) + λ·(CLIP(a↔i) +
CLIP(a↔t)))``

In a batch every row is a different class, so row ``k`` of one modality is the positive of row ``k``
of the
other. Under DistributedDataParallel each rank holds a slice of the global batch: the embeddings of
the other
ranks are gathered (as constants) and the rank's own slice stays live, so every rank computes the
full global
CLIP loss; multiplying it by the world size makes DDP's gradient average equal the single-process
gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = math.log(100.0)


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised ``a [N, D]`` and ``b [N, D]``; row i of a matches
    row i of b."""
    scale = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
    logits = scale * a @ b.t()
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def gather_keep_local(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows in rank order; the local rows keep their graph, the others are constants."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@dataclass
class LossWeights:
    cls: float = 1.0
    align: float = 1.0
    audio_lambda: float = 1.0
    ce_audio: bool = True
    # Relative weight of each modality's cross-entropy (normalised, so the mean stays a mean).
    ce_modality: tuple[float, float, float] = (1.0, 1.0, 1.0)


def visualbyte_loss(
    emb: dict[str, torch.Tensor],
    logits: dict[str, torch.Tensor],
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``emb``/``logits``: dicts with keys image/text/audio (local rows). Returns (loss, parts
    for logging)."""
    mods = ["image", "text"] + (["audio"] if weights.ce_audio else [])
    ce = {m: F.cross_entropy(logits[m], labels) for m in mods}
    w = dict(zip(("image", "text", "audio"), weights.ce_modality, strict=True))
    ce_mean = sum(w[m] * ce[m] for m in mods) / sum(w[m] for m in mods)
    ws = world_size()
    g = {m: gather_keep_local(emb[m]) for m in ("image", "text", "audio")}
    # Every rank sees the whole loss through the shared scale: give it 1/ws of the gradient
    # per rank.
    scale = logit_scale / ws + (logit_scale * (1 - 1 / ws)).detach() if ws > 1 else logit_scale
    c_it = clip_loss(g["image"], g["text"], scale)
    c_ai = clip_loss(g["audio"], g["image"], scale)
    c_at = clip_loss(g["audio"], g["text"], scale)
    align = c_it + weights.audio_lambda * (c_ai + c_at)
    total = weights.cls * ce_mean + weights.align * ws * align
    parts = {f"ce_{m}": float(v.detach()) for m, v in ce.items()}
    parts.update(
        clip_it=float(c_it.detach()), clip_ai=float(c_ai.detach()), clip_at=float(c_at.detach())
    )
    parts["loss"] = float(weights.cls * ce_mean.detach() + weights.align * align.detach())
    return total, parts


def unknown_loss(logits: torch.Tensor) -> torch.Tensor:
    """For questions about words that are not classes: the cross-entropy of the class posterior
    against the uniform distribution, less its minimum ``log C``, so 0 when the posterior is even
    and large when it picks a class. Teaches the model to be unsure of what it has never seen
    (outlier exposure), which lowers the score such a question reaches against the memory."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    per_row = torch.logsumexp(logits, dim=1) - logits.mean(dim=1)
    return per_row.mean() - math.log(logits.shape[1])


def curriculum_weights(
    epoch_progress: float,
    curriculum_epochs: float,
    align_start: float = 0.1,
    cls_end: float = 1.0,
    align_delay: float = 0.0,
) -> tuple[float, float]:
    """(w_cls, w_align) at a fractional epoch: classification only for ``align_delay`` epochs, then
    alignment ramped in linearly from ``align_start`` to 1 over ``curriculum_epochs``."""
    if epoch_progress < align_delay:
        return 1.0, 0.0
    epoch_progress -= align_delay
    if curriculum_epochs <= 0:
        return cls_end, 1.0
    t = min(1.0, max(0.0, epoch_progress / curriculum_epochs))
    return 1.0 + (cls_end - 1.0) * t, align_start + (1.0 - align_start) * t
