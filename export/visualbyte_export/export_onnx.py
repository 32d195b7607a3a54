"""``python -m visualbyte_export export``: training checkpoint → ONNX with the metadata contract.

The graph is the embedding path only: input ``image`` float32 ``[batch, 3, S, S]`` (normalised as
CONTRACT.md
says), output ``embedding`` float32 ``[batch, D]`` (L2-normalised), opset 17, symbolic batch axis
``batch``.
``--weights f16`` stores conv/linear weights as float16 initializers feeding a Cast to float32 (half
the
size; tract loads it). Parity is measured, not assumed: torch vs onnxruntime, and vs the Rust
runtime when its
binary is built; the numbers go into ``<model>.report.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .embedders import OnnxEmbedder, RuntimeEmbedder, find_runtime_binary
from .model import (
    CLASSIFIER_SCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OUTPUTS,
    EmbeddingOnly,
    VisualByteNet,
    load_checkpoint_model,
)
from .onnx_meta import CONTRACT_KEY, TRAINING_KEY

OPSET = 17
CONTRACT_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
PARITY_TOL = 1e-4


def weights_sha256(onnx_model) -> str:
    """sha256 over the graph's initializers (name + raw bytes, in name order): the weights as
    stored."""
    from onnx import numpy_helper

    h = hashlib.sha256()
    for init in sorted(onnx_model.graph.initializer, key=lambda t: t.name):
        h.update(init.name.encode())
        h.update(np.ascontiguousarray(numpy_helper.to_array(init)).tobytes())
    return h.hexdigest()


def model_id(arch: str, size: int, digest: str, date: str | None = None) -> str:
    date = date or time.strftime("%Y%m%d", time.gmtime())
    return f"vb-{arch}-{size}-{date}-{digest[:8]}"


def build_contract(
    mid: str, size: int, dim: int, renderer: dict, threshold: float | None = None
) -> dict:
    return {
        "contract_version": CONTRACT_VERSION,
        "model_id": mid,
        "input": {
            "name": INPUT_NAME,
            "size": int(size),
            "layout": "NCHW",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        "embedding": {"name": OUTPUT_NAME, "dim": int(dim)},
        "renderer": renderer,
        "threshold": None if threshold is None else round(float(threshold), 4),
    }


def renderer_config(
    size: int, renderer_json: Path | None = None, binary: Path | None = None
) -> dict:
    """What ``visualbyte render config --size S`` prints; a JSON file stands in where no binary
    is built."""
    if renderer_json is not None:
        return json.loads(Path(renderer_json).read_text())
    binary = binary or find_runtime_binary()
    if binary is None:
        raise FileNotFoundError(
            "no renderer settings: build the runtime (cargo build) or pass --renderer-json"
        )
    out = subprocess.run(
        [str(binary), "render", "config", "--size", str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def torch_to_onnx(net: VisualByteNet, size: int, path: Path, output: str = "embedding") -> None:
    """Export the embedding path (classic TorchScript exporter: stable, plain opset-17 ops)."""
    wrapper = EmbeddingOnly(net, output).eval()
    dummy = torch.zeros(1, 3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The classic exporter is chosen on purpose (plain opset-17 graph that tract reads).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def weights_to_f16(model, min_elements: int = 64):
    """Store float32 conv/linear weight initializers (rank ≥ 2) as float16, each behind a Cast
    to float32."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    consumers = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node.op_type)
    new_inits, casts = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        ops = set(consumers.get(init.name, []))
        if (
            init.data_type == TensorProto.FLOAT
            and arr.ndim >= 2
            and arr.size >= min_elements
            and ops
            and ops <= {"Conv", "MatMul", "Gemm"}
        ):
            half = init.name + "_f16"
            new_inits.append(numpy_helper.from_array(arr.astype(np.float16), half))
            casts.append(
                helper.make_node(
                    "Cast", [half], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast"
                )
            )
        else:
            new_inits.append(init)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return model


def finalize(
    onnx_path: Path,
    arch: str,
    size: int,
    dim: int,
    renderer: dict,
    threshold: float | None,
    weights: str = "f32",
    extra_meta: dict | None = None,
) -> dict:
    """Post-process an exported file: optional f16 weights, model id from the weights, metadata
    contract."""
    import onnx

    m = onnx.load(str(onnx_path))
    if weights == "f16":
        m = weights_to_f16(m)
    elif weights != "f32":
        raise ValueError(f"--weights {weights}: f32 or f16")
    mid = model_id(arch, size, weights_sha256(m))
    contract = build_contract(mid, size, dim, renderer, threshold)
    del m.metadata_props[:]
    m.metadata_props.add(key=CONTRACT_KEY, value=json.dumps(contract))
    for k, v in (extra_meta or {}).items():
        m.metadata_props.add(key=k, value=v if isinstance(v, str) else json.dumps(v))
    m.producer_name = "visualbyte_export"
    onnx.checker.check_model(m)
    tmp = Path(str(onnx_path) + ".tmp")
    onnx.save(m, str(tmp))
    tmp.replace(onnx_path)
    return contract


def parity_inputs(size: int, n: int = 4, data: Path | None = None, seed: int = 0) -> np.ndarray:
    """uint8 pixels: real rendered samples of every modality when a dataset is given, else
    random."""
    rng = np.random.default_rng(seed)
    if data is not None:
        parts = []
        for m in ("image", "text", "audio"):
            p = Path(data) / f"eval_{m}.npy"
            if p.exists():
                x = np.load(p, mmap_mode="r")
                parts.append(
                    np.asarray(x[np.sort(rng.choice(len(x), size=min(n, len(x)), replace=False))])
                )
        if parts:
            return np.concatenate(parts)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def parity(
    net: VisualByteNet,
    onnx_path: Path,
    pixels: np.ndarray,
    runtime: bool | None = None,
    output: str = "embedding",
) -> dict:
    """Max abs difference of embeddings: torch vs onnxruntime (and vs the Rust runtime when
    built)."""
    from .embedders import normalise_pixels

    with torch.no_grad():
        ref = EmbeddingOnly(net, output).eval()(torch.from_numpy(normalise_pixels(pixels))).numpy()
    out = {
        "n": int(len(pixels)),
        "onnxruntime_max_abs": float(np.abs(OnnxEmbedder(onnx_path)(pixels) - ref).max()),
    }
    binary = find_runtime_binary()
    if runtime or (runtime is None and binary is not None):
        rt = RuntimeEmbedder(onnx_path, binary)(pixels)
        out["runtime_max_abs"] = float(np.abs(rt - ref).max())
        out["runtime_binary"] = str(binary)
    return out


def export_checkpoint(
    ckpt_path: Path,
    out: Path,
    weights: str = "f32",
    renderer_json: Path | None = None,
    threshold: float | None = None,
    data: Path | None = None,
    runtime: bool | None = None,
    output: str = "embedding",
) -> dict:
    net, ckpt = load_checkpoint_model(ckpt_path)
    cfg = ckpt["model_config"]
    dim = int(cfg["num_classes"]) if output == "posterior" else int(cfg["embed_dim"])
    size = int(ckpt["size"])
    if renderer_json is not None:
        renderer = json.loads(Path(renderer_json).read_text())
    elif ckpt.get("renderer"):
        renderer = ckpt["renderer"]
    else:
        renderer = renderer_config(size)
    torch_to_onnx(net, size, out, output)
    training = {
        "output": output,
        "checkpoint": str(ckpt_path),
        "step": ckpt.get("state", {}).get("step"),
        "dataset": ckpt.get("dataset"),
        "args": ckpt.get("args"),
        "model_config": cfg,
        "weights": weights,
    }
    init_model = ckpt.get("state", {}).get("init_model")
    if init_model:
        # The exported model this run continued (``train --init model.onnx``).
        training["init_model"] = init_model
    contract = finalize(
        out,
        cfg["arch"],
        size,
        dim,
        renderer,
        threshold,
        weights,
        {TRAINING_KEY: training},
    )
    report = {
        "model": str(out),
        "model_id": contract["model_id"],
        "weights": weights,
        "bytes": out.stat().st_size,
        "output": output,
        "parity": parity(net, out, parity_inputs(size, data=data), runtime, output),
    }
    Path(str(out) + ".report.json").write_text(json.dumps(report, indent=1))
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="visualbyte_export export", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--checkpoint", required=True, type=Path, help="training checkpoint (best.pt / last.pt)"
    )
    p.add_argument("--out", type=Path, default=Path("models/visualbyte.onnx"))
    p.add_argument("--weights", choices=("f32", "f16"), default="f32")
    p.add_argument(
        "--output",
        choices=OUTPUTS,
        default="embedding",
        help="embedding: the projector output; posterior: the class posterior of the cosine "
        "classifier (one value per training class; closes the gap between modalities)",
    )
    p.add_argument(
        "--renderer-json", type=Path, help="renderer settings (default: stored with the checkpoint)"
    )
    p.add_argument(
        "--threshold", type=float, help="'I don't know' threshold (evaluate calibrates and sets it)"
    )
    p.add_argument(
        "--data", type=Path, help="dataset: parity on real rendered samples of every modality"
    )
    p.add_argument(
        "--require-runtime", action="store_true", help="fail if the Rust runtime is not built"
    )
    p.add_argument("--tolerance", type=float, default=PARITY_TOL)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(2)
    report = export_checkpoint(
        args.checkpoint,
        args.out,
        args.weights,
        args.renderer_json,
        args.threshold,
        args.data,
        True if args.require_runtime else None,
        args.output,
    )
    print(json.dumps(report, indent=1))
    par = report["parity"]
    tol = args.tolerance if args.weights == "f32" else max(args.tolerance, 5e-2)
    if args.output == "posterior":
        # softmax(16·cos): a posterior moves by at most 16/4 = 4× what the cosine moves, so the
        # embedding tolerance becomes 4× larger on the posterior.
        tol *= CLASSIFIER_SCALE / 4
    worst = max(v for k, v in par.items() if k.endswith("_max_abs"))
    if worst > tol:
        print(f"parity FAILED: max abs {worst:.3g} > {tol:g}")
        return 1
    if "runtime_max_abs" not in par:
        print("note: Rust runtime not built, parity checked against onnxruntime only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
