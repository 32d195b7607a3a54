"""models/MODEL_CARD.md: what the model was trained on and how, its numbers from eval.json, and the
command lines that re-create it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoints import DEFAULT_RUNS, chain_init_model, checkpoint_recipe
from .model import CLASSIFIER_SCALE
from .onnx_meta import read_contract, read_training
from .photo_memory import photo_memory_card
from .splits import OTHER_INTROS, OTHER_TITLES


def _training_info(model: Path, checkpoint: Path | None) -> dict:
    info = read_training(model) if model.suffix == ".onnx" else {}
    if checkpoint is not None and checkpoint.exists():
        ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
        info.update(args=ck.get("args"), step=ck.get("state", {}).get("step"))
        info["init_recipe"] = checkpoint_recipe(ck)[:-1]  # the runs it continued, not itself
        info["history"] = ck.get("state", {}).get("history", [])
        root = chain_init_model(ck)
        if root:
            info["init_model"] = root
    return info


def _shorten(obj, n: int = 6):
    """Long lists cut to their first items and a count (the card stays readable)."""
    if isinstance(obj, dict):
        return {k: _shorten(v, n) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shorten(v, n) for v in obj[:n]] + (
            [f"... {len(obj)} in all"] if len(obj) > n else []
        )
    return obj


RECIPE_FLAGS = (
    "arch", "backbone_kwargs", "input_norm", "embed_dim", "epochs", "budget_minutes",
    "steps_per_epoch", "batch_classes", "lr_backbone", "lr_head", "warmup_steps", "weight_decay",
    "audio_lambda", "ce_weights", "no_ce_audio", "curriculum_epochs", "align_start", "align_delay",
    "aug", "aug_style", "aug_voice", "unknown_weight", "unknown_per_batch", "teacher_weight",
    "lr_teacher_head", "anchor", "anchor_weight", "anchor_engines", "no_photos", "espeak_share",
    "recorded_share", "leave_out_engine", "probe_engines", "heard_only", "drop_path", "seed",
    "threads",
)  # fmt: skip


def _weight_on(args: dict, key: str) -> bool:
    """Whether a stored run's ``--*-weight`` flag turned its term on."""
    return str(args.get(key, "0")) not in ("0", "0.0", "None")


def _teacher_on(args: dict) -> bool:
    return _weight_on(args, "teacher_weight")


def _model_from_history(mid: str) -> str:
    """The shell line that takes the model with id ``mid`` out of the repository's history (the
    ``models/visualbyte.onnx`` committed with the first card that names it) to /tmp/MID.onnx."""
    return (
        f"git show $(git log --reverse --format=%H -S {mid} -- models/MODEL_CARD.md | head -1)"
        f":models/visualbyte.onnx > /tmp/{mid}.onnx"
    )


def _data_command(meta: dict, dataset: str) -> list[str]:
    """The ``data`` command (with any line it needs first) that rebuilt the dataset, from its
    ``meta.json``: size, seed, the per-class counts that differ from the defaults, and the model
    whose renderer settings it followed (``--renderer-from``)."""
    from dataclasses import asdict

    from .data import Counts

    tiny = bool(meta.get("tiny"))
    defaults = asdict(Counts.tiny() if tiny else Counts())
    parts = ["python -m visualbyte_export data", f"--out {dataset}"]
    parts += [f"--size {meta.get('size', 96)}", f"--seed {meta.get('seed', 0)}"]
    if tiny:
        parts.append("--tiny")
    for key, value in (meta.get("counts_per_class") or {}).items():
        if key.startswith("neg_") or key == "ko_fraction" or defaults.get(key) == value:
            continue
        parts.append(f"--{key.replace('_', '-')} {value}")
    lines = []
    source = meta.get("renderer_from")
    if source and source.get("model_id"):
        lines.append(_model_from_history(source["model_id"]))
        parts.append(f"--renderer-from /tmp/{source['model_id']}.onnx")
    elif source:
        lines.append(
            f"# MODEL.onnx: the model (sha256 {source.get('sha256', '?')[:16]}…) whose renderer "
            "settings the dataset follows"
        )
        parts.append("--renderer-from MODEL.onnx")
    parts.append("--fetch")
    return [*lines, " \\\n  ".join(parts)]


def _train_commands(
    args: dict,
    parents: list[dict],
    dataset: str,
    init_model: dict | None = None,
    data_meta: dict | None = None,
) -> str:
    """The command lines that re-create a run: the dataset (from ``data_meta``, its
    ``meta.json``), then one ``train`` per run it continued (``--init``), oldest first, each
    starting from the previous one's last checkpoint, then the run itself. A chain that starts
    from an exported model (``init_model``) first takes that model out of the repository's
    history."""
    names = [f"default-stage{i + 1}" for i in range(len(parents))] + ["default"]
    commands = []
    first = None
    if init_model:
        mid = init_model["model_id"]
        first = f"/tmp/{mid}.onnx"
        commands += [
            f"# the first run starts from model {mid}"
            f" (sha256 {init_model.get('sha256', '?')[:16]}…),",
            "# a models/visualbyte.onnx committed earlier; its own recipe is in the",
            "# MODEL_CARD.md committed with it",
            _model_from_history(mid),
        ]
    if data_meta is not None:
        data_lines = _data_command(data_meta, dataset)
        if init_model and (data_meta.get("renderer_from") or {}).get("model_id") == mid:
            data_lines = data_lines[1:]  # that model is already in /tmp
        commands += data_lines
    if any(_teacher_on(a) for a in [*parents, args]):
        commands.append(f"python -m visualbyte_export teacher --data {dataset}")
    for i, run_args in enumerate([*parents, args]):
        init = f"{DEFAULT_RUNS}/{names[i - 1]}/last.pt" if i else first
        commands.append(_train_command(run_args, dataset, names[i], init))
    return "\n".join(commands)


def _train_command(args: dict, dataset: str, name: str = "default", init: str | None = None) -> str:
    """The ``train`` command line of the run, from the arguments stored in its checkpoint."""
    parts = ["python -m visualbyte_export train", f"--data {dataset}", f"--name {name}"]
    if init is not None:
        parts.append(f"--init {init}")
    unknown_off = str(args.get("unknown_weight", "0")) in ("0", "0.0", "None")
    for key in RECIPE_FLAGS:
        value = args.get(key)
        if value in (None, "None", "False", False, ""):
            continue
        if key.startswith("unknown_") and unknown_off:
            continue
        if key in ("teacher_weight", "lr_teacher_head") and not _teacher_on(args):
            continue
        if key.startswith("anchor") and not _weight_on(args, "anchor_weight"):
            continue
        flag = "--" + key.replace("_", "-")
        if value in ("True", True):
            parts.append(flag)
        elif key == "backbone_kwargs":
            parts.append(f"{flag} '{value}'")
        else:
            parts.append(f"{flag} {value}")
    return " \\\n  ".join(parts)


def _export_command(info: dict, data: str) -> str:
    """The `export` call that made the model (from the checkpoint the card's `train` command
    writes): its output and, when not f32, its weights' type."""
    weights = info.get("weights", "f32")
    return (
        f"python -m visualbyte_export export --checkpoint {DEFAULT_RUNS}/default/last.pt "
        "--out models/visualbyte.onnx "
        f"--output {info.get('output', 'embedding')} "
        + (f"--weights {weights} " if weights != "f32" else "")
        + f"--data {data} --require-runtime"
    )


def _backbone_note(args: dict) -> str:
    """`` with {...}`` for the timm overrides a run used (e.g. BatchNorm instead of LayerNorm)."""
    raw = args.get("backbone_kwargs")
    try:
        kwargs = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    except (TypeError, ValueError):
        return ""
    if not kwargs:
        return ""
    return " with " + ", ".join(f"`{k}={json.dumps(v)}`" for k, v in sorted(kwargs.items()))


def _summary_lines(model: Path, contract: dict, meta: dict, info: dict, args: dict) -> list[str]:
    """The card's title and what the model is: file, architecture, input."""
    size = contract.get("input", {}).get("size") or meta.get("size")
    dim = contract.get("embedding", {}).get("dim", "?")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return [
        "# VisualByte model card",
        "",
        f"- **Model**: `{model.name}`, id `{contract.get('model_id', '?')}`, "
        f"{model.stat().st_size / 1e6:.1f} MB; card written by "
        f"`python -m visualbyte_export evaluate` on {stamp}.",
        f"- **Architecture**: timm `{args.get('arch', '?')}`{_backbone_note(args)} (random init, "
        "no pretrained weights) → BatchNorm·Linear·GELU·Linear·BatchNorm projector → L2 norm"
        + (
            f", then the cosine classifier's class posterior (softmax of {CLASSIFIER_SCALE:g}·cos "
            f"to each class prototype), L2-normalised: the shipped vector has {dim} values, one "
            "per training class."
            if info.get("output") == "posterior"
            else f", embedding {dim}-d."
        )
        + " One network for photos, rendered text and log-mel spectrogram images.",
        f"- **Input**: {size}×{size} RGB, ImageNet mean/std (docs/CONTRACT.md). {size} px keeps a "
        "rendered word and the 80 mel rows legible while training fits two CPU cores and a query "
        "embeds in milliseconds on the device; cost grows with the square of the size.",
        "",
    ]


def _data_lines(meta: dict, data: Path) -> list[str]:
    """## Data: the dataset, its classes by group and its splits."""
    groups: dict[str, int] = {}
    for c in meta["classes"]:
        groups[c.get("group", "-")] = groups.get(c.get("group", "-"), 0) + 1
    return [
        "## Data",
        f"Dataset `{data}` (seed {meta.get('seed')}): {len(meta['classes'])} classes ("
        + ", ".join(f"{k}: {v}" for k, v in sorted(groups.items()))
        + ").",
        "",
        "```json",
        json.dumps(_shorten(meta.get("splits")), indent=1, ensure_ascii=False),
        "```",
        "",
    ]


def _recipe_lines(args: dict, info: dict) -> list[str]:
    """## Recipe: the run's settings (from its checkpoint) and the loss and augmentation."""
    lines = [
        "## Recipe",
        "",
    ]
    keys = (
        "arch", "epochs", "steps_per_epoch", "batch_classes", "lr_backbone", "lr_head",
        "weight_decay", "warmup_steps", "audio_lambda", "no_ce_audio", "curriculum_epochs",
        "align_start", "align_delay", "backbone_kwargs", "aug", "aug_style", "aug_voice",
        "embed_dim", "seed",
    )  # fmt: skip
    if args:
        lines += ["| setting | value |", "|---|---|"]
        lines += [f"| {k} | {args[k]} |" for k in keys if k in args]
        lines.append(f"| steps trained | {info.get('step')} |")
    lines += [
        "",
        "Loss: cross-entropy (cosine classifier) on image, text and audio + CLIP(image↔text) + "
        "λ·(CLIP(audio↔image) + CLIP(audio↔text)), learnable logit scale from ln(1/0.07); "
        "class-balanced batches (distinct classes, one image/text/audio triple each); AdamW with "
        "separate backbone/head learning rates, warm-up then cosine. Augmentation on the batch: "
        "crop/flip/colour (and with `aug_style` drawing style) for photos, shift/scale/rotation/"
        "slant/stroke weight for text, time shift/stretch and frequency/time masks for audio "
        "(and with `aug_voice` a frequency warp about the low end, tempo, EQ and smoothing "
        "across frequency, for other speakers and synthesizers).",
        "",
    ]
    return lines


def _recall_lines(res: dict, meta: dict) -> list[str]:
    """## Numbers: recall of each modality and evaluation-only split, chance and ceiling."""
    lines = [
        "## Numbers (held-out eval split)",
        f"Backend: {res['backend']}. Gallery = the eval images; image→image leaves the query out.",
        "",
        "| query → image | R@1 | R@5 | queries |",
        "|---|---|---|---|",
    ]
    for k, v in res["overall"].items():
        lines.append(f"| {k.split('->')[0]} | {v['R@1']:.3f} | {v['R@5']:.3f} | {v['n']} |")
    others = res.get("other") or {}
    for name, other in others.items():
        o = other["overall"]
        lines.append(
            f"| {OTHER_TITLES.get(name, name)} | {o['R@1']:.3f} | {o['R@5']:.3f} | {o['n']} |"
        )
    chance = res.get("chance_r1", {})
    lines += [
        "",
        "Chance R@1 (a random gallery image has the query's class): "
        + ", ".join(f"{m} {v:.3f}" for m, v in chance.items())
        + f"; {len(meta['classes'])} classes.",
    ]
    ceiling = res.get("ceiling_r1", {})
    if ceiling:
        lines += [
            "",
            "Ceiling R@1 (share of queries whose class has another picture in the gallery; "
            "no model can do better on this split): "
            + ", ".join(f"{m} {v:.3f}" for m, v in ceiling.items())
            + ".",
        ]
    return lines


def _subset_lines(res: dict) -> list[str]:
    """Recall by held-out subset (image style, font, voice...) and by subset of each
    evaluation-only split, with its answers at the threshold."""
    nan = float("nan")
    lines = []
    for group, rows in (res.get("by_group") or {}).items():
        lines += [
            "",
            f"By {group}:",
            "",
            "| query | subset | R@1 | R@5 | n |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['modality']} | {r['subset']} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['n']} |"
            for r in rows
        ]
    for name, other in (res.get("other") or {}).items():
        if not other.get("subsets"):
            continue
        at, key = other.get("at_threshold", {}), other["by"]
        lines += [
            "",
            f"{OTHER_INTROS.get(name, name)} At the threshold they are answered right "
            f"{at.get('accepted_right', nan):.1%} and wrong {at.get('accepted_wrong', nan):.1%} "
            "of the time:",
            "",
            f"| {key} | R@1 | R@5 | n |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r[key]} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['n']} |" for r in other["subsets"]
        ]
    return lines


def _classifier_lines(res: dict) -> list[str]:
    """The most likely class, for a model that ships the class posterior."""
    if not res.get("classifier"):
        return []
    lines = [
        "",
        "### The most likely class",
        "",
        "The shipped vector is the class posterior: how often its largest value is the "
        "question's own class (whatever the gallery holds), and the confusions it makes most "
        "(true → heard or read, count):",
        "",
        "| query | right | n | most confused |",
        "|---|---|---|---|",
    ]
    for m, c in res["classifier"].items():
        confused = ", ".join(
            f"{p['true']} → {p['predicted']} ×{p['count']}" for p in c["confused"][:6]
        )
        lines.append(f"| {OTHER_TITLES.get(m, m)} | {c['accuracy']:.3f} | {c['n']} | {confused} |")
        for value, sub in c.get("subsets", {}).items():
            lines.append(f"| … {c['by']} {value} | {sub['accuracy']:.3f} | {sub['n']} | |")
    return lines


def _variant_lines(res: dict) -> list[str]:
    """Compressed weights: the other exports' size, drift and recall."""
    if not res.get("variants"):
        return []
    lines = [
        "",
        "### Compressed weights",
        "",
        "| file | MB | max abs diff | text R@1 | audio R@1 | image R@1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in res["variants"].items():
        vo = v["overall"]
        lines.append(
            f"| {Path(name).name} | {v['bytes'] / 1e6:.1f} | "
            f"{v['max_abs_diff_vs_model']:.2e} | "
            f"{vo['text->image']['R@1']:.3f} | {vo['audio->image']['R@1']:.3f} | "
            f"{vo['image->image']['R@1']:.3f} |"
        )
    return lines


def _threshold_lines(res: dict) -> list[str]:
    """## "I don't know" threshold: how it was chosen, what it does, and higher ones."""
    nan = float("nan")
    cal = res["threshold"]
    lines = [
        "",
        '## "I don\'t know" threshold',
        f"Threshold **{cal['threshold']}** (stored in the ONNX metadata): a best-match cosine to "
        'the gallery below it is answered "not in memory". Chosen to maximise the mean of:',
        "",
        "- true held-out text/audio queries answered with the right class: "
        f"{cal.get('accepted_right', nan):.3f} (n={cal['n_true']}; a wrong answer counts as a "
        'failure, like "not in memory")',
        f"- words that are not classes rejected: {cal['unknown_rejected']:.3f} (typed "
        f"{cal.get('text_unknown_rejected', nan):.3f}, spoken "
        f"{cal.get('audio_unknown_rejected', nan):.3f}; n={cal['n_unknown']})",
        "",
        "At this threshold the true held-out questions are accepted "
        f"{cal['true_accepted']:.1%} of the time (typed "
        f"{cal.get('text_true_accepted', nan):.1%}, spoken "
        f"{cal.get('audio_true_accepted', nan):.1%}): answered with the right class "
        f"{cal.get('accepted_right', nan):.1%} of the time and with a wrong one "
        f'{cal.get("accepted_wrong", nan):.1%} of the time (the rest: "not in memory"). '
        "A robot that must answer wrongly even less often can raise it (`--threshold` in the "
        "runtime; the table below).",
        "",
    ]
    trade = res.get("threshold_tradeoff") or []
    if trade:
        lines += [
            "Higher thresholds for fewer wrong answers (the same questions; pass one to the "
            "runtime with `--threshold`):",
            "",
            "| wrong answers at most | threshold | answered right | answered wrong | non-class "
            "words rejected |",
            "|---|---|---|---|---|",
        ]
        for r in trade:
            lines.append(
                f"| {r['wrong_at_most']:.0%} | {r['threshold']:.4f} | {r['accepted_right']:.1%} | "
                f"{r['accepted_wrong']:.1%} | {r['unknown_rejected']:.1%} |"
            )
        lines.append("")
    return lines


def _per_class_lines(res: dict) -> list[str]:
    """## Per class: the weakest and the strongest classes."""
    lines = [
        "## Per class (mean R@1 over the three query modalities)",
        "",
    ]
    per = res.get("per_class_named", {})
    ranked = sorted(per.items(), key=lambda kv: np.mean(list(kv[1].values())))
    if ranked:

        def fmt(kv):
            return f"{kv[0]} ({np.mean(list(kv[1].values())):.2f})"

        lines.append("Weakest: " + ", ".join(fmt(kv) for kv in ranked[:10]) + ".")
        lines.append("")
        lines.append("Strongest: " + ", ".join(fmt(kv) for kv in ranked[::-1][:10]) + ".")
        lines.append("")
        lines.append("Every class: `eval.json` (`per_class_named`).")
    return lines


def _history_lines(info: dict) -> list[str]:
    """## Training curve: the last epochs' recall on the eval subset."""
    hist = info.get("history") or []
    if not hist:
        return []
    lines = [
        "",
        "## Training curve (eval subset after each epoch)",
        "",
        "| epoch | image R@1 | text R@1 | audio R@1 |",
        "|---|---|---|---|",
    ]
    for h in hist[-15:]:
        lines.append(
            f"| {h['epoch']:.1f} | {h['image_r1']:.3f} | {h['text_r1']:.3f} | {h['audio_r1']:.3f} |"
        )
    return lines


def _closing_lines(info: dict, args: dict, meta: dict, data: Path) -> list[str]:
    """## Figures, ## Known weaknesses and ## Re-create (the command lines)."""
    return [
        "",
        "## Figures",
        "- `figures/retrieval_grid.png`: text, audio, image queries → top images (green = right)",
        "- `figures/tsne.png`: t-SNE of the three modalities",
        "- `figures/similarity.png`: text-to-image similarity of class means",
        "",
        "## Known weaknesses",
        "- Trained from random initialisation on two shared CPU cores for a short time: the "
        "numbers "
        "above are what that buys, not what the recipe reaches with a longer (GPU) run.",
        "- Training speech is synthesized (espeak-ng, and the engines and recordings the data "
        "line adds); how it carries to recorded English speakers is the human-speaker split "
        "above, where the dataset has one.",
        "- The threshold is calibrated against the eval gallery; a robot's own memory (its size "
        "and "
        "content) shifts best-match scores, so recalibrate on the deployed index when possible.",
        "- Closed vocabulary: only the classes above; a word that is not a class can still land "
        "near one.",
        "",
        "## Re-create",
        "```",
        _train_commands(
            args,
            info.get("init_recipe") or [],
            info.get("dataset") or "DATASET",
            info.get("init_model"),
            meta,
        ),
        _export_command(info, data),
        f"python -m visualbyte_export evaluate --model models/visualbyte.onnx --data {data}",
        "cargo run --release -p visualbyte -- index build models/memory -o models/memory.vbi "
        "--model models/visualbyte.onnx",
        "```",
        "",
        "`scripts/recreate-model.sh` runs these lines from the repository root (`--dry-run` prints "
        "them); the training step takes its `--budget-minutes` on two CPU cores.",
    ]


def write_model_card(
    path: Path,
    res: dict,
    meta: dict,
    model: Path,
    checkpoint: Path | None,
    data: Path,
    notes: Path | None = None,
) -> None:
    """models/MODEL_CARD.md: data, recipe, input size, numbers, threshold, known weaknesses."""
    info = _training_info(model, checkpoint)
    args = info.get("args") or {}
    contract = read_contract(model) if model.suffix == ".onnx" else {}
    lines = _summary_lines(model, contract, meta, info, args)
    lines += _data_lines(meta, data)
    lines += _recipe_lines(args, info)
    lines += _recall_lines(res, meta)
    lines += _subset_lines(res)
    lines += photo_memory_card(res.get("photo_memory") or {})
    lines += _classifier_lines(res)
    lines += _variant_lines(res)
    lines += _threshold_lines(res)
    lines += _per_class_lines(res)
    lines += _history_lines(info)
    lines += _closing_lines(info, args, meta, data)
    if notes is not None:
        lines += ["", notes.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")
