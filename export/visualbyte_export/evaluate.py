"""``python -m visualbyte_export evaluate``: recall, figures, the "I don't know" threshold and the
model card.

Queries are the held-out eval split (voices, font, image style and photos the model never trained
on); the
gallery — the robot's image memory — is the eval images. Recall@k counts a query as answered when
one of the
top-k gallery images has the query's class. Image→image leaves the query itself out of the gallery.

The threshold is calibrated on best-match scores: words that are not classes (``neg_text``,
``neg_audio``)
should score below it, true held-out text/audio queries above it. It is written into the ONNX
metadata.

The command lives here; its parts in their own modules: ``embedders`` (the backends), ``metrics``,
``onnx_meta`` (the contract and the threshold in the ONNX metadata), ``figures``, ``card`` (the
model card) and ``splits``. The names they held here are re-exported below.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .card import (
    RECIPE_FLAGS,
    _export_command,
    _train_command,
    _train_commands,
    _training_info,
    write_model_card,
)
from .embedders import (
    OnnxEmbedder,
    RuntimeEmbedder,
    TorchEmbedder,
    embed_arrays,
    find_runtime_binary,
    normalise_pixels,
)
from .figures import figure_retrieval_grid, figure_similarity, figure_tsne
from .metrics import (
    GROUP_KEYS,
    answer_outcomes,
    best_matches,
    best_scores,
    calibrate_threshold,
    class_confusions,
    class_right_by,
    evaluate_embeddings,
    evaluate_other,
    outcomes_at,
    recall_at_k,
    threshold_tradeoff,
)
from .onnx_meta import (
    CONTRACT_KEY,
    RENDERER_FIELD_DEFAULTS,
    model_renderer,
    read_contract,
    renderer_differences,
    set_threshold,
    write_metadata,
)
from .photo_memory import photo_memory_report
from .splits import CLASSIFIER_SUBSETS, MODALITIES, OTHER_INTROS, OTHER_SPLITS, OTHER_TITLES

# What other modules, scripts and tests import from here (re-exported from the modules above).
__all__ = [
    "CONTRACT_KEY",
    "GROUP_KEYS",
    "MODALITIES",
    "OTHER_INTROS",
    "OTHER_SPLITS",
    "OTHER_TITLES",
    "RECIPE_FLAGS",
    "RENDERER_FIELD_DEFAULTS",
    "OnnxEmbedder",
    "RuntimeEmbedder",
    "TorchEmbedder",
    "_export_command",
    "_train_command",
    "_train_commands",
    "_training_info",
    "answer_outcomes",
    "best_matches",
    "best_scores",
    "build_parser",
    "calibrate_threshold",
    "class_confusions",
    "embed_arrays",
    "evaluate_embeddings",
    "evaluate_other",
    "figure_retrieval_grid",
    "figure_similarity",
    "figure_tsne",
    "find_runtime_binary",
    "load_eval",
    "main",
    "model_renderer",
    "normalise_pixels",
    "outcomes_at",
    "read_contract",
    "recall_at_k",
    "renderer_differences",
    "set_threshold",
    "threshold_tradeoff",
    "write_metadata",
    "write_model_card",
]


# -------------------------------------------------------------------------------- eval split
def load_eval(data: Path, limit: int | None, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ev = {"x": {}, "y": {}}
    for m in MODALITIES:
        x = np.load(data / f"eval_{m}.npy", mmap_mode="r")
        y = np.load(data / f"eval_{m}_y.npy").astype(np.int64)
        idx = np.arange(len(y))
        if limit and len(y) > limit:
            idx = np.sort(rng.choice(len(y), size=limit, replace=False))
        ev["x"][m], ev["y"][m] = np.asarray(x[idx]), y[idx]
        rows = _read_rows(data / f"eval_{m}_rows.jsonl")
        if rows is not None and len(rows) == len(y):
            ev.setdefault("rows", {})[m] = [rows[i] for i in idx]
    for m in ("text", "audio"):
        p = data / f"neg_{m}.npy"
        ev["x"][f"neg_{m}"] = np.asarray(np.load(p, mmap_mode="r")) if p.exists() else None
    for name in OTHER_SPLITS:  # questions in other fonts and synthesizers (evaluation only)
        p = data / f"{name}.npy"
        if not p.exists():
            continue
        ev["x"][name] = np.asarray(np.load(p, mmap_mode="r"))
        ev["y"][name] = np.load(data / f"{name}_y.npy").astype(np.int64)
        rows = _read_rows(data / f"{name}_rows.jsonl")
        if rows is not None:
            ev.setdefault("rows", {})[name] = rows
    if (data / "label_text.npy").exists():  # each class name typed once: the memories' labels
        ev["x"]["label_text"] = np.load(data / "label_text.npy")
        ev["y"]["label_text"] = np.load(data / "label_text_y.npy").astype(np.int64)
    return ev


def _read_rows(path: Path) -> list[dict] | None:
    """A builder's ``*_rows.jsonl`` (what each row is), or None when there is none."""
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="visualbyte_export evaluate", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--model", required=True, type=Path, help="ONNX model (or a training checkpoint .pt)"
    )
    p.add_argument("--data", required=True, type=Path)
    p.add_argument(
        "--backend", choices=("onnxruntime", "runtime", "torch"), help="default: by model suffix"
    )
    p.add_argument(
        "--limit", type=int, default=3000, help="eval queries per modality (random subset)"
    )
    p.add_argument(
        "--out", type=Path, default=Path("models"), help="figures, eval.json and MODEL_CARD.md"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="training checkpoint the model came from (recipe for the card)",
    )
    p.add_argument(
        "--variant",
        type=Path,
        action="append",
        default=[],
        help="another ONNX export of the same checkpoint (e.g. f16 weights): recall reported too",
    )
    p.add_argument(
        "--no-threshold", action="store_true", help="do not write the threshold into the model"
    )
    p.add_argument("--no-card", action="store_true")
    p.add_argument(
        "--notes", type=Path, help="markdown appended to the model card (e.g. measurements)"
    )
    p.add_argument("--threads", type=int, default=2)
    return p


def _missing_input(args: argparse.Namespace) -> bool:
    """Whether an input read only at the end is missing (said on stderr)."""
    # Inputs read only at the end are checked first: a missing one used to fail after the model's
    # threshold and eval.json were already rewritten, leaving the card behind them.
    later = [("--notes", args.notes), ("--checkpoint", args.checkpoint)]
    for flag, path in later + [("--variant", v) for v in args.variant]:
        if path is not None and not path.is_file():
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return True
    return False


def _renderer_mismatch(args: argparse.Namespace, meta: dict) -> bool:
    """Whether the dataset was rendered with other settings than the model's (said on stderr)."""
    expected = model_renderer(args.model)
    differ = renderer_differences(expected, meta.get("renderer") or {}) if expected else []
    if differ:
        # Recall on pixels the model was not trained to read says little about the model.
        print(
            f"error: {args.data} was rendered with other settings than {args.model} expects "
            f"({'; '.join(differ)}). Rebuild it with the model's settings: python -m "
            f"visualbyte_export data --out DIR --renderer-from {args.model} (other flags as "
            "before)",
            file=sys.stderr,
        )
        return True
    return False


def _calibrate(emb: dict, neg: dict, ev: dict) -> tuple[dict, list[dict]]:
    """The threshold (with what it does to typed and spoken questions) and the higher ones for
    fewer wrong answers, from every true typed and spoken question and the non-class words."""
    g = emb["image"]
    # Every true typed and spoken question against the gallery, once.
    best, right = best_matches(
        np.concatenate([emb["text"], emb["audio"]]),
        np.concatenate([ev["y"]["text"], ev["y"]["audio"]]),
        g,
        ev["y"]["image"],
    )
    negs = (
        np.concatenate([best_scores(v, g) for v in neg.values()])
        if neg
        else np.zeros(0, np.float32)
    )
    cal = calibrate_threshold(best, negs, right)
    n_text = len(emb["text"])
    for m, sel in (("text", slice(0, n_text)), ("audio", slice(n_text, None))):
        t = cal["threshold"]
        cal[f"{m}_true_accepted"] = float((best[sel] >= t).mean())
        if m in neg:
            cal[f"{m}_unknown_rejected"] = float((best_scores(neg[m], g) < t).mean())
    cal.update(outcomes_at(best, right, cal["threshold"]))
    return cal, threshold_tradeoff(best, right, negs)


def _evaluate_other_splits(
    args: argparse.Namespace, res: dict, emb_fn, ev: dict, emb: dict, names: list[str]
) -> None:
    """Into ``res``: the evaluation-only splits at the threshold, the photo memory, and (for a
    model that ships the class posterior) its most likely class."""
    g, cal = emb["image"], res["threshold"]
    other_emb = {
        name: emb_fn(ev["x"][name]) for name in OTHER_SPLITS if ev["x"].get(name) is not None
    }
    res["other"] = {
        name: evaluate_other(
            other_emb[name],
            ev["y"][name],
            ev.get("rows", {}).get(name),
            g,
            ev["y"]["image"],
            cal["threshold"],
            key,
        )
        for name, key in OTHER_SPLITS.items()
        if name in other_emb
    }
    if ev["x"].get("label_text") is not None:
        other_emb["label_text"] = emb_fn(ev["x"]["label_text"])
        res["photo_memory"] = photo_memory_report({**emb, **other_emb}, ev["y"], cal["threshold"])
        other_emb.pop("label_text")
    if _training_info(args.model, None).get("output") == "posterior":
        # The shipped vector is the class posterior, so its largest value names the class the
        # network heard or read, whatever the gallery holds.
        res["classifier"] = {
            m: class_confusions(e, ev["y"][m], names) for m, e in {**emb, **other_emb}.items()
        }
        for m, key in CLASSIFIER_SUBSETS.items():
            rows = ev.get("rows", {}).get(m)
            if m in other_emb and rows and len(rows) == len(ev["y"][m]):
                values = [str(r.get(key)) for r in rows]
                res["classifier"][m]["by"] = key
                res["classifier"][m]["subsets"] = class_right_by(other_emb[m], ev["y"][m], values)


def _evaluate_variants(
    args: argparse.Namespace, ev: dict, emb: dict, num_classes: int
) -> dict[str, dict]:
    """Recall of the other exports (``--variant``), their drift from the model, their size."""
    variants = {}
    for v in args.variant:
        ve = OnnxEmbedder(v, args.threads)
        vemb = {m: ve(ev["x"][m]) for m in MODALITIES}
        vres = evaluate_embeddings(vemb, ev, num_classes)
        drift = max(float(np.abs(vemb[m] - emb[m]).max()) for m in MODALITIES)
        variants[str(v)] = {
            "overall": vres["overall"],
            "max_abs_diff_vs_model": drift,
            "bytes": v.stat().st_size,
        }
    return variants


def _write_figures(out: Path, ev: dict, emb: dict, names: list[str], num_classes: int) -> None:
    """``out/figures``: the retrieval grid, the t-SNE and the similarity of a few classes."""
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    present = [c for c in range(num_classes) if all((ev["y"][m] == c).any() for m in MODALITIES)]
    rng = np.random.default_rng(1)
    shown = sorted(rng.choice(present, size=min(20, len(present)), replace=False).tolist())
    figure_retrieval_grid(fig_dir / "retrieval_grid.png", ev, emb, names, shown[:8])
    figure_tsne(fig_dir / "tsne.png", emb, ev["y"], names, shown[:12])
    figure_similarity(fig_dir / "similarity.png", emb, ev["y"], names, shown)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if _missing_input(args):
        return 2

    meta = json.loads((args.data / "meta.json").read_text())
    if _renderer_mismatch(args, meta):
        return 2
    names = [c.get("en", str(c.get("id"))) for c in meta["classes"]]
    num_classes = len(names)
    backend = args.backend or ("torch" if args.model.suffix == ".pt" else "onnxruntime")
    emb_fn = {
        "onnxruntime": lambda m: OnnxEmbedder(m, args.threads),
        "runtime": RuntimeEmbedder,
        "torch": lambda m: TorchEmbedder(m, args.threads),
    }[backend](args.model)
    ev = load_eval(args.data, args.limit)
    t0 = time.time()
    emb = {m: emb_fn(ev["x"][m]) for m in MODALITIES}
    neg = {
        m: emb_fn(ev["x"][f"neg_{m}"])
        for m in ("text", "audio")
        if ev["x"].get(f"neg_{m}") is not None
    }
    n_emb = sum(len(v) for v in emb.values()) + sum(len(v) for v in neg.values())
    embed_s = time.time() - t0
    res = evaluate_embeddings(emb, ev, num_classes)
    res["backend"] = backend
    res["embed_images_per_s"] = round(n_emb / max(embed_s, 1e-9), 1)

    cal, tradeoff = _calibrate(emb, neg, ev)
    res["threshold"] = cal
    res["threshold_tradeoff"] = tradeoff
    _evaluate_other_splits(args, res, emb_fn, ev, emb, names)
    res["variants"] = _evaluate_variants(args, ev, emb, num_classes)
    _write_figures(args.out, ev, emb, names, num_classes)

    if args.model.suffix == ".onnx" and not args.no_threshold:
        set_threshold(args.model, cal["threshold"])
        for v in args.variant:
            set_threshold(v, cal["threshold"])
    res["per_class_named"] = {names[c]: v for c, v in res.pop("per_class").items()}
    (args.out / "eval.json").write_text(json.dumps(res, indent=1))
    if not args.no_card:
        write_model_card(
            args.out / "MODEL_CARD.md",
            res,
            meta,
            args.model,
            args.checkpoint,
            args.data,
            args.notes,
        )
    o = res["overall"]
    print(json.dumps({k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in o.items()}))
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in cal.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
