"""VisualByteNet: one ConvNeXt for every modality, a projector to the shared embedding, a classifier
head.

The network sees what the device sees: ``float32 [B, 3, S, S]`` NCHW, ``x = (pixel / 255 - mean[c])
/ std[c]``
(docs/CONTRACT.md). Training keeps rendered data as ``uint8 [B, S, S, 3]`` and converts with
:func:`pixels_to_input`, the same formula the runtime applies.
"""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCHS = ("convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny")
DEFAULT_EMBED_DIM = 512
CLIP_INIT_SCALE = math.log(1 / 0.07)
CLASSIFIER_SCALE = 16.0


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """``uint8 [B, S, S, 3]`` (NHWC) → normalised ``float32 [B, 3, S, S]`` exactly as
    CONTRACT.md says."""
    if pixels.dim() != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"expected [B, S, S, 3] pixels, got {tuple(pixels.shape)}")
    x = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


INPUT_NORMS = ("none", "per_image")


class PerImageStandardise(nn.Module):
    """Each picture to zero mean and unit variance over all its values, inside the network.

    Rendered words are mostly white, spectrograms mostly dark, photos in between: in a batch that
    mixes them, the BatchNorm statistics are dominated by which modality a row is, and the small
    differences inside one modality (which word, which sound) learned far more slowly (a 5-minute
    probe with text loss in mixed batches: CE 5.06 without, 4.60 with this, chance 5.40). Part of
    the exported graph, so the runtime's input contract does not change.
    """

    eps = 1e-3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dim=(1, 2, 3), keepdim=True)
        return centred / torch.sqrt(var + self.eps)


def create_backbone(
    arch: str, backbone_kwargs: dict | None = None, drop_path_rate: float = 0.0
) -> nn.Module:
    """A randomly initialised timm ConvNeXt without its classifier (pooled features out)."""
    if not arch.startswith("convnext"):
        raise ValueError(f"unsupported arch {arch!r}: any timm convnext (e.g. {', '.join(ARCHS)})")
    kwargs = dict(backbone_kwargs or {})
    return timm.create_model(
        arch, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate, **kwargs
    )


class VisualByteNet(nn.Module):
    """ConvNeXt → Linear·GELU·Linear projector → L2 norm, plus a cosine classifier on the
    embedding."""

    def __init__(
        self,
        arch: str = "convnext_tiny",
        num_classes: int = 0,
        embed_dim: int = DEFAULT_EMBED_DIM,
        backbone_kwargs: dict | None = None,
        drop_path_rate: float = 0.0,
        input_norm: str = "none",
    ) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm {input_norm!r}: one of {', '.join(INPUT_NORMS)}")
        self.arch = arch
        self.input_norm = input_norm
        self.standardise = PerImageStandardise() if input_norm == "per_image" else nn.Identity()
        self.embed_dim = embed_dim
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.backbone = create_backbone(arch, self.backbone_kwargs, drop_path_rate)
        feat = self.backbone.num_features
        # Batch normalisation before and after the MLP. A random-init ConvNeXt's pooled
        # features share a large common component (cosine ~0.6 between unrelated images,
        # ~0.99 between rendered words), and with AdamW the projector turned it into one
        # direction that every embedding collapsed onto within ~50 steps on ds96 (CLIP at
        # ln(batch), CE at chance), at lr 2e-3, 1e-3 and 4e-4. Centring the output per
        # dimension makes that collapse impossible. At inference both are fixed per-
        # channel affine maps (running statistics).
        self.projector = nn.Sequential(
            nn.BatchNorm1d(feat),
            nn.Linear(feat, embed_dim),
            nn.GELU(),
            nn.Linear(embed_dim, embed_dim),
            nn.BatchNorm1d(embed_dim, affine=False),
        )
        # Cosine classifier: class weights live on the same sphere as the embeddings, so the class
        # prototypes pull image, text and audio of one class to one place, which is what
        # retrieval needs.
        self.classifier = nn.Linear(embed_dim, num_classes, bias=False) if num_classes > 0 else None
        self.logit_scale = nn.Parameter(torch.tensor(CLIP_INIT_SCALE, dtype=torch.float32))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input ``[B, 3, S, S]`` → L2-normalised embedding ``[B, D]``."""
        return self.embed_features(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled features ``[B, F]`` (what a training-only teacher head reads)."""
        return self.backbone(self.standardise(x))

    def embed_features(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(feats), dim=-1)

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise RuntimeError("model has no classifier head (num_classes=0)")
        w = F.normalize(self.classifier.weight, dim=-1)
        return CLASSIFIER_SCALE * emb @ w.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

    def head_parameters(self) -> list[nn.Parameter]:
        params = list(self.projector.parameters()) + [self.logit_scale]
        if self.classifier is not None:
            params += list(self.classifier.parameters())
        return params

    def config(self) -> dict:
        return {
            "arch": self.arch,
            "embed_dim": self.embed_dim,
            "num_classes": 0 if self.classifier is None else self.classifier.out_features,
            "backbone_kwargs": self.backbone_kwargs,
            "input_norm": self.input_norm,
        }


OUTPUTS = ("embedding", "posterior")


class EmbeddingOnly(nn.Module):
    """What ships: normalised image in, normalised vector out (no logit scale).

    ``output="embedding"``: the L2-normalised projector output. ``output="posterior"``: the
    L2-normalised class posterior of the cosine classifier, ``softmax(scale · cos(e, w_k))``, one
    value per training class. Each modality's embeddings can sit in their own region of the sphere
    (a modality gap: the nearest photo of a typed word is then not of its class even when the
    shared classifier reads the word right); the posterior of every modality lives in the same
    class space, so nearest neighbours across modalities agree when the classifier does.
    """

    def __init__(self, net: VisualByteNet, output: str = "embedding") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output {output!r}: one of {', '.join(OUTPUTS)}")
        if output == "posterior" and net.classifier is None:
            raise ValueError("output 'posterior' needs a model with a classifier head")
        self.output = output
        self.standardise = net.standardise
        self.backbone = net.backbone
        self.projector = net.projector
        self.classifier = net.classifier if output == "posterior" else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        z = self.projector(self.backbone(self.standardise(image)))
        # Written out instead of F.normalize so the exported graph is a handful of basic ops.
        z = z / torch.sqrt(torch.sum(z * z, dim=-1, keepdim=True).clamp_min(1e-12))
        if self.classifier is None:
            return z
        w = self.classifier.weight
        w = w / torch.sqrt(torch.sum(w * w, dim=-1, keepdim=True).clamp_min(1e-12))
        p = torch.softmax(CLASSIFIER_SCALE * z @ w.t(), dim=-1)
        return p / torch.sqrt(torch.sum(p * p, dim=-1, keepdim=True).clamp_min(1e-12))


def build_from_config(cfg: dict) -> VisualByteNet:
    return VisualByteNet(
        arch=cfg["arch"],
        num_classes=int(cfg.get("num_classes", 0)),
        embed_dim=int(cfg.get("embed_dim", DEFAULT_EMBED_DIM)),
        backbone_kwargs=cfg.get("backbone_kwargs") or {},
        input_norm=cfg.get("input_norm", "none"),
    )


def load_checkpoint_model(path, map_location="cpu") -> tuple[VisualByteNet, dict]:
    """Load a training checkpoint (``train`` writes them) → (model in eval mode, checkpoint
    dict)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    net = build_from_config(ckpt["model_config"])
    net.load_state_dict(ckpt["model"])
    net.eval()
    return net, ckpt


def load_init_weights(net: VisualByteNet, source) -> tuple[list[str], list[str]]:
    """``--init``: load a local checkpoint (ours, or a plain timm/ConvNeXt state dict) where
    shapes agree. ``source`` is its path or the object ``torch.load`` already read from it."""
    if isinstance(source, (str, Path)):
        obj = torch.load(source, map_location="cpu", weights_only=False)
    else:
        obj = source
    state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else obj
    own = net.state_dict()
    loaded, skipped = [], []
    mapped = {}
    for k, v in state.items():
        for cand in (k, "backbone." + k):
            if cand in own and own[cand].shape == v.shape:
                mapped[cand] = v
                loaded.append(cand)
                break
        else:
            skipped.append(k)
    own.update(mapped)
    net.load_state_dict(own)
    return loaded, skipped
