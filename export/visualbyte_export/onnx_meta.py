"""The ONNX model's metadata: the contract (read, written in place, its threshold) and the renderer
settings a model was trained with, compared with a dataset's."""

from __future__ import annotations

import json
from pathlib import Path

import torch

CONTRACT_KEY = "visualbyte.contract"
TRAINING_KEY = "visualbyte.training"

# Renderer settings added after contract version 1, with the value an older contract (which lacks
# them) means; the runtime reads them the same way (serde defaults in runtime/src/render/mod.rs).
RENDERER_FIELD_DEFAULTS = {("text", "keep_words"): False}


def renderer_differences(model: dict, data: dict) -> list[str]:
    """Where a model's renderer settings and a dataset's differ (``text.keep_words: False here,
    True there``); empty when the dataset's pixels are the ones the model expects."""

    def flat(d: dict, prefix: tuple = ()) -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, (*prefix, k)))
            else:
                out[(*prefix, k)] = v
        return out

    a, b = flat(model), flat(data)
    for key, default in RENDERER_FIELD_DEFAULTS.items():
        a.setdefault(key, default)
        b.setdefault(key, default)
    return [
        f"{'.'.join(k)}: {a.get(k)!r} in the model, {b.get(k)!r} in the dataset"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def model_renderer(model: Path) -> dict | None:
    """The renderer settings a model (ONNX contract, or training checkpoint) was trained with."""
    if model.suffix == ".onnx":
        return read_contract(model).get("renderer")
    ck = torch.load(model, map_location="cpu", weights_only=False)
    return ck.get("renderer") if isinstance(ck, dict) else None


def read_contract(model: Path) -> dict:
    contract = _read_json_metadata(model, CONTRACT_KEY)
    if contract is None:
        raise KeyError(f"{model} has no {CONTRACT_KEY} metadata")
    return contract


def read_training(model: Path) -> dict:
    """How an exported model was trained (``visualbyte.training``: its output, recipe, ...); empty
    for a model without it."""
    return _read_json_metadata(model, TRAINING_KEY) or {}


def _read_json_metadata(model: Path, key: str) -> dict | None:
    import onnx

    m = onnx.load(str(model), load_external_data=False)
    for p in m.metadata_props:
        if p.key == key:
            return json.loads(p.value)
    return None


def write_metadata(model: Path, updates: dict[str, str]) -> None:
    """Set metadata_props keys in place (temp file + rename)."""
    import onnx

    m = onnx.load(str(model))
    props = {p.key: p.value for p in m.metadata_props}
    props.update(updates)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    tmp = Path(str(model) + ".tmp")
    onnx.save(m, str(tmp))
    tmp.replace(model)


def set_threshold(model: Path, threshold: float | None) -> None:
    c = read_contract(model)
    c["threshold"] = None if threshold is None else round(float(threshold), 4)
    write_metadata(model, {CONTRACT_KEY: json.dumps(c)})
