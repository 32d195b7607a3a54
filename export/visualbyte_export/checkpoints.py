"""Training checkpoints: where runs keep them, the atomic write, and the recipe chain a checkpoint
records (the runs it continued, the exported model the first started from)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .onnx_init import onnx_model_info

DEFAULT_RUNS = Path("/var/cache/visualbyte/runs")


def atomic_save(obj, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
