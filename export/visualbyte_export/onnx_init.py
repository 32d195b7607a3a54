"""Start training from a shipped ONNX model (``train --init models/visualbyte.onnx``).

Training checkpoints live outside the repository and are lost with the machine that wrote them;
the exported model is committed. Its graph holds every trained weight, so a later run can carry
on from it instead of from random weights:

- initializers named after a parameter (``backbone.stages.0.blocks.0.mlp.fc1.weight``, float16
  ones behind a ``Cast``) are copied as they are;
- the exporter folded each BatchNorm that follows a convolution (the stem's, every block's
  ``norm`` after its depthwise convolution) into that convolution's weights. The folded weights
  go into the convolution, and the BatchNorm becomes an affine map that gives back its input in
  eval mode *and* on a batch whose statistics match a calibration batch: running mean ``m`` and
  variance ``v`` of the folded convolution's output on real data, scale ``sqrt(v + eps)``, shift
  ``m``. Training then starts from the shipped function instead of a renormalised one;
- the layer scales are the constant inputs of each block's ``Mul``.

Nothing is guessed silently: every float tensor of the network must be assigned, or loading
fails and names what is missing. The CLIP logit scale is not in the graph (inference does not use
it), nor is the classifier in a graph exported with ``--output embedding``: those keep the values
the network starts with.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .model import VisualByteNet
from .onnx_meta import CONTRACT_KEY, TRAINING_KEY

# Which BatchNorm the exporter folded into which convolution (timm ConvNeXt with
# norm_layer="batchnorm2d").
FOLDED_NORMS = {"conv_dw": "norm", "stem.0": "stem.1"}


def _module_path(node_name: str) -> str:
    """A node's module: ``/backbone/stages/stages.0/blocks/blocks.0/conv_dw/Conv`` →
    ``backbone.stages.0.blocks.0.conv_dw``."""
    parts = node_name.strip("/").split("/")[:-1]
    out: list[str] = []
    for p in parts:
        if out and p.startswith(out[-1] + "."):
            out[-1] = p
        else:
            out.append(p)
    return ".".join(out)


def _values(graph) -> dict[str, np.ndarray]:
    """Every constant in the graph as arrays: initializers, Constant nodes, and the outputs of
    Casts and Identities of those."""
    from onnx import numpy_helper

    vals = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    vals[n.output[0]] = numpy_helper.to_array(a.t)
        elif n.op_type == "Cast" and n.input[0] in vals:
            vals[n.output[0]] = vals[n.input[0]].astype(np.float32)
        elif n.op_type == "Identity" and n.input[0] in vals:
            # How the exporter shares one initializer between layers with equal values.
            vals[n.output[0]] = vals[n.input[0]]
    return vals


def config_from_onnx(model) -> dict:
    """The network's config from the exported model's metadata (what ``export`` wrote)."""
    meta = {p.key: p.value for p in model.metadata_props}
    if TRAINING_KEY not in meta or CONTRACT_KEY not in meta:
        raise ValueError(f"not a VisualByte export: no {TRAINING_KEY!r}/{CONTRACT_KEY!r} metadata")
    training = json.loads(meta[TRAINING_KEY])
    if training.get("model_config"):
        return dict(training["model_config"])
    # Exports from before the config was stored: read it from the training arguments.
    args = training.get("args") or {}
    if isinstance(args, str):
        args = ast.literal_eval(args)
    kwargs = args.get("backbone_kwargs") or "{}"
    kwargs = json.loads(kwargs) if isinstance(kwargs, str) else kwargs
    vals = {i.name: list(i.dims) for i in model.graph.initializer}
    if "classifier.weight" not in vals:
        raise ValueError(
            "the ONNX model has no stored config and no classifier weights to read the class "
            "count from: export it again with this version"
        )
    num_classes, embed_dim = vals["classifier.weight"]
    return {
        "arch": args["arch"],
        "embed_dim": int(embed_dim),
        "num_classes": int(num_classes),
        "backbone_kwargs": kwargs,
        "input_norm": args.get("input_norm", "none"),
    }


def load_onnx_weights(
    net: VisualByteNet, path: Path, calibration: torch.Tensor | None = None, model=None
) -> list[str]:
    """Copy the exported model's weights into ``net`` (see the module doc). ``calibration``:
    normalised inputs ``[B, 3, S, S]`` whose statistics set the unfolded BatchNorms; without it
    they are plain identities (exact in eval mode, renormalising in train mode). ``model``: the
    graph of ``path`` when the caller has loaded it already.
    Returns the names of the tensors assigned."""
    import onnx

    model = model if model is not None else onnx.load(str(path))
    theirs, ours = config_from_onnx(model), net.config()
    differ = [k for k in theirs if theirs[k] != ours.get(k)]
    if differ:
        raise ValueError(
            f"{path} is a different network: "
            + "; ".join(f"{k} {theirs[k]!r} there, {ours.get(k)!r} here" for k in differ)
        )
    vals = _values(model.graph)
    own = net.state_dict()
    assigned: dict[str, torch.Tensor] = {}

    def put(name: str, arr: np.ndarray) -> None:
        if name not in own:
            raise ValueError(f"{path}: the graph has {name!r}, the network does not")
        t = torch.from_numpy(np.array(arr, dtype=np.float32)).reshape(own[name].shape)
        assigned[name] = t

    # Node by node: each operator's inputs belong to the module its name carries. (The exporter
    # shares one initializer between layers whose values are equal, e.g. zero biases, so
    # initializer names alone do not say where every tensor goes.)
    paths = {n.name: _module_path(n.name) for n in model.graph.node}
    graph_norms = {paths[n.name] for n in model.graph.node if n.op_type == "BatchNormalization"}
    folded: list[str] = []
    for n in model.graph.node:
        mod = paths[n.name]
        ins = [i if i in vals else None for i in n.input]
        if n.op_type == "Conv":
            put(f"{mod}.weight", vals[n.input[1]])
            if len(ins) > 2 and ins[2] is not None and f"{mod}.bias" in own:
                put(f"{mod}.bias", vals[ins[2]])
            for conv, norm in FOLDED_NORMS.items():
                sibling = mod[: len(mod) - len(conv)] + norm
                if mod.endswith(conv) and f"{sibling}.running_mean" in own:
                    if sibling not in graph_norms:
                        folded.append(sibling)
        elif n.op_type in ("BatchNormalization", "LayerNormalization"):
            names = ("weight", "bias", "running_mean", "running_var")
            for name, i in zip(names, ins[1:], strict=False):
                if i is not None and f"{mod}.{name}" in own:
                    put(f"{mod}.{name}", vals[i])
        elif n.op_type == "Gemm":
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            w = vals[n.input[1]]
            put(f"{mod}.weight", w if trans_b else w.T)
            if len(ins) > 2 and ins[2] is not None:
                put(f"{mod}.bias", vals[ins[2]])
        elif n.op_type == "Mul" and mod.startswith("backbone.stages") and n.name.endswith("/Mul"):
            if ins[1] is not None and f"{mod}.gamma" in own:
                put(f"{mod}.gamma", vals[ins[1]])
    # What no operator names (the classifier, normalised inside the graph): by initializer name.
    for name, arr in vals.items():
        if name in own and name not in assigned:
            put(name, arr)
    for norm in folded:
        c = own[f"{norm}.weight"].shape[0]
        put(f"{norm}.weight", np.ones(c))
        put(f"{norm}.bias", np.zeros(c))
        put(f"{norm}.running_mean", np.zeros(c))
        put(f"{norm}.running_var", np.ones(c) - net.get_submodule(norm).eps)
    # Not in any graph: the CLIP logit scale; not in an ``--output embedding`` graph: the
    # classifier. Both keep the values ``net`` has.
    fresh = {"logit_scale"}
    if "classifier.weight" not in vals:
        fresh.add("classifier.weight")
    missing = [
        k for k, v in own.items() if k not in assigned and v.is_floating_point() and k not in fresh
    ]
    if missing:
        raise ValueError(f"{path}: no weights in the graph for {', '.join(missing[:8])}")
    own.update(assigned)
    net.load_state_dict(own)
    if calibration is not None:
        _calibrate(net, folded, calibration)
    return sorted(assigned)


@torch.no_grad()
def _calibrate(net: VisualByteNet, norms: list[str], x: torch.Tensor) -> None:
    """Make each unfolded BatchNorm an identity that survives train mode on batches like ``x``.

    One forward pass in train mode, as the folded statistics were gathered: each norm takes the
    mean and variance of what reaches it (through the other BatchNorms' batch statistics) just
    before it runs, so every later one sees what the shipped network computes. The other
    BatchNorms' running statistics are left as they were."""
    targets = {net.get_submodule(n) for n in norms}
    others = [
        m
        for m in net.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in targets
    ]
    saved = [
        (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in others
    ]

    stats = {}

    def pre_hook(bn, inp):
        # Scale and shift before the norm runs (so what it passes on is its input); the running
        # statistics after the pass, which would otherwise blend them with its momentum update.
        y = inp[0].double()
        v, m = torch.var_mean(y, dim=(0, 2, 3), unbiased=False)
        stats[bn] = (m.float(), v.float())
        bn.weight.copy_(torch.sqrt(v + bn.eps).float())
        bn.bias.copy_(m.float())

    hooks = [bn.register_forward_pre_hook(pre_hook) for bn in targets]
    was_training = net.training
    net.train()
    try:
        net.embed(x)
    finally:
        for h in hooks:
            h.remove()
        for bn, (mean, var) in stats.items():
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        for m, (mean, var, count) in zip(others, saved, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
        net.train(was_training)


def onnx_model_info(path: Path) -> dict:
    """What a run started from: the file, its model id and the sha256 of its bytes."""
    import hashlib

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    return {
        "path": str(path),
        "model_id": json.loads(meta[CONTRACT_KEY])["model_id"],
        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
    }


def net_from_onnx(path: Path, calibration: torch.Tensor | None = None) -> VisualByteNet:
    """A :class:`VisualByteNet` with the exported model's architecture and weights."""
    import onnx

    from .model import build_from_config

    model = onnx.load(str(path))
    net = build_from_config(config_from_onnx(model))
    load_onnx_weights(net, path, calibration, model)
    return net.eval()
