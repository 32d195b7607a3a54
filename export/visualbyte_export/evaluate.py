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
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .model import CLASSIFIER_SCALE, IMAGENET_MEAN, IMAGENET_STD
from .photo_memory import photo_memory_card, photo_memory_report

MODALITIES = ("image", "text", "audio")
# Evaluation-only splits of the builder: typed questions in fonts and spoken ones from
# synthesizers never used in training, recorded people, held-out photographs and clip art; each
# with the row key that names its subsets.
OTHER_SPLITS = {
    "other_text": "font",
    "other_audio": "voice",
    "human_audio": "word",
    "photo_image": "class",
    "clipart_image": "class",
}
OTHER_TITLES = {
    "other_text": "text, other fonts (never in training)",
    "other_audio": "audio, other synthesizers (never in training)",
    "human_audio": "audio, recorded human speaker (never in training)",
    "photo_image": "photographs (held out) → class",
    "clipart_image": "clip art (held out) → class",
}
OTHER_INTROS = {
    "other_text": "Typed questions in fonts never used in training (Liberation Sans, Serif, "
    "Mono and Sans Italic, Noto Serif; Korean in Nanum Myeongjo and Barun Gothic), by font.",
    "other_audio": "Spoken questions from other synthesizers (flite's voices, festival's kal; "
    "the same kind of phrases, half mildly augmented), by voice.",
    "human_audio": "KTuberling's English word recordings (one human speaker, bare words) that "
    "name a class, by word.",
    "photo_image": "GCompris photographs never trained on (its two 'explore animals' "
    "activities and every fourth other photo of a class), matched against the evaluation "
    "pictures, by class.",
    "clipart_image": "openclipart pictures never trained on (every fourth of a class), matched "
    "against the evaluation pictures, by class.",
}
CONTRACT_KEY = "visualbyte.contract"


# -------------------------------------------------------------------------------- embedding
def normalise_pixels(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[N, S, S, 3]`` → float32 ``[N, 3, S, S]`` with ``(p / 255 - mean) / std``
    (CONTRACT.md)."""
    x = pixels.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def embed_arrays(
    fn: Callable, arr: np.ndarray, idx: np.ndarray | None, device, batch: int = 128
) -> np.ndarray:
    """Embed rows ``idx`` of a uint8 array with a torch function on normalised input."""
    idx = np.arange(len(arr)) if idx is None else np.asarray(idx)
    out = []
    for i in range(0, len(idx), batch):
        x = torch.from_numpy(normalise_pixels(np.asarray(arr[idx[i : i + batch]]))).to(device)
        out.append(fn(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class OnnxEmbedder:
    def __init__(self, path: Path, threads: int = 2) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
        out = [
            self.sess.run(None, {self.input: normalise_pixels(np.asarray(pixels[i : i + batch]))})[
                0
            ]
            for i in range(0, len(pixels), batch)
        ]
        return np.concatenate(out).astype(np.float32)


class TorchEmbedder:
    def __init__(self, checkpoint: Path, threads: int = 2) -> None:
        from .model import load_checkpoint_model

        torch.set_num_threads(threads)
        self.net, self.ckpt = load_checkpoint_model(checkpoint)

    def __call__(self, pixels: np.ndarray, batch: int = 128) -> np.ndarray:
        return embed_arrays(self.net.embed, pixels, None, "cpu", batch)


def find_runtime_binary() -> Path | None:
    """The Rust ``visualbyte`` binary: $VISUALBYTE_BIN, else the shared target dir (release,
    then debug)."""
    import os

    env = os.environ.get("VISUALBYTE_BIN")
    if env:
        return Path(env) if Path(env).exists() else None
    for sub in ("release", "debug"):
        p = Path("/var/cache/visualbyte/target") / sub / "visualbyte"
        if p.exists():
            return p
    return None


class RuntimeEmbedder:
    """Embeds through the Rust runtime: ``visualbyte embed --model M --input IN.u8 -o OUT.f32``."""

    def __init__(self, model: Path, binary: Path | None = None) -> None:
        self.model = Path(model)
        self.binary = binary or find_runtime_binary()
        if self.binary is None:
            raise FileNotFoundError(
                "visualbyte binary not found: build it (cargo build) or set VISUALBYTE_BIN"
            )

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        with tempfile.TemporaryDirectory() as td:
            inp, out = Path(td) / "in.u8", Path(td) / "out.f32"
            pixels.tofile(inp)
            cmd = [
                str(self.binary),
                "embed",
                "--model",
                str(self.model),
                "--input",
                str(inp),
                "-o",
                str(out),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}"
                )
            return np.fromfile(out, dtype="<f4").reshape(len(pixels), -1)


# -------------------------------------------------------------------------------- metrics
def recall_at_k(
    q: np.ndarray,
    qy: np.ndarray,
    g: np.ndarray,
    gy: np.ndarray,
    ks: Sequence[int] = (1, 5),
    exclude_self: bool = False,
    per_query: bool = False,
):
    """Recall@k of queries ``q`` (labels ``qy``) against gallery ``g`` (labels ``gy``), cosine
    similarity."""
    sim = q @ g.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    kmax = min(max(ks), g.shape[0])
    top = np.argpartition(-sim, kmax - 1, axis=1)[:, :kmax]
    order = np.take_along_axis(sim, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    hit = gy[top] == qy[:, None]
    res = {k: hit[:, : min(k, kmax)].any(axis=1) for k in ks}
    if per_query:
        return res, top
    return {k: float(v.mean()) for k, v in res.items()}


def best_scores(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    return (q @ g.T).max(axis=1) if len(q) else np.zeros(0, np.float32)


def calibrate_threshold(pos: np.ndarray, neg: np.ndarray, right: np.ndarray) -> dict:
    """Threshold maximising the mean of (true questions answered right) and (non-class words
    rejected). ``pos``: each true question's best score; ``right``: whether that best match has
    its class. A true question answered with a wrong class counts as a failure, like one answered
    "not in memory": a wrong answer is never better than none, and of thresholds that score the
    same the highest is taken."""
    ok = np.asarray(right, bool)
    cands = np.unique(np.concatenate([pos, neg]))
    cands = np.concatenate([cands, [cands[-1] + 1e-6]])
    best = None
    for t in cands:
        right_pos = float(((pos >= t) & ok).mean())
        rej_neg = float((neg < t).mean()) if len(neg) else 1.0
        score = 0.5 * (right_pos + rej_neg)
        # Of equal scores the highest threshold: accepting more that adds no right answer (only
        # wrong ones) is no gain.
        if best is None or score >= best[0] - 1e-12:
            best = (score, float(t), float((pos >= t).mean()), rej_neg)
    # Halfway to the next lower score: the same decisions, with a margin on both sides.
    score, t, acc_pos, rej_neg = best
    below = cands[cands < t]
    if len(below):
        t = 0.5 * (t + float(below[-1]))
    return {
        "threshold": round(float(t), 4),
        "true_accepted": acc_pos,
        "unknown_rejected": rej_neg,
        "balanced_accuracy": score,
        "n_true": int(len(pos)),
        "n_unknown": int(len(neg)),
    }


def best_matches(
    q: np.ndarray, qy: np.ndarray, g: np.ndarray, gy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each question's best score against the gallery, and whether that best match has its class."""
    if not len(q) or not len(g):
        return np.zeros(0, np.float32), np.zeros(0, bool)
    s = q @ g.T
    return s.max(axis=1), gy[s.argmax(axis=1)] == qy


def outcomes_at(best: np.ndarray, right: np.ndarray, threshold: float) -> dict:
    """The share of true questions answered with the right class (best match at or above
    ``threshold``, of the question's class) and the share answered with a wrong one."""
    if not len(best):
        return {"accepted_right": float("nan"), "accepted_wrong": float("nan")}
    accepted = best >= threshold
    return {
        "accepted_right": float((accepted & right).mean()),
        "accepted_wrong": float((accepted & ~right).mean()),
    }


def answer_outcomes(
    q: np.ndarray, qy: np.ndarray, g: np.ndarray, gy: np.ndarray, threshold: float
) -> dict:
    """What a robot says to true questions at ``threshold`` (:func:`outcomes_at`)."""
    return outcomes_at(*best_matches(q, qy, g, gy), threshold)


def threshold_tradeoff(
    best: np.ndarray, right: np.ndarray, neg: np.ndarray, wrong_at_most=(0.10, 0.05, 0.02, 0.01)
) -> list[dict]:
    """For a robot that must rarely answer wrongly: the lowest threshold at which true questions are
    answered with a wrong class at most ``w`` of the time, for each ``w``, with what it costs in
    right answers and what it gains in non-class words rejected. ``best``: each true question's
    best score; ``right``: whether that best match has its class; ``neg``: non-class best scores."""
    if not len(best):
        return []
    cands = np.unique(np.concatenate([best, [best.max() + 1e-6]]))
    wrong = np.array([float(((best >= t) & ~right).mean()) for t in cands])
    out = []
    for w in wrong_at_most:
        ok = np.nonzero(wrong <= w)[0]
        if not len(ok):
            continue
        t = float(cands[ok[0]])
        out.append(
            {
                "wrong_at_most": w,
                "threshold": round(t, 4),
                **outcomes_at(best, right, t),
                "unknown_rejected": float((neg < t).mean()) if len(neg) else float("nan"),
            }
        )
    return out


# -------------------------------------------------------------------------------- ONNX metadata
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
    import onnx

    m = onnx.load(str(model), load_external_data=False)
    for p in m.metadata_props:
        if p.key == CONTRACT_KEY:
            return json.loads(p.value)
    raise KeyError(f"{model} has no {CONTRACT_KEY} metadata")


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


# -------------------------------------------------------------------------------- figures
def _img(ax, pix, title=None, color="black"):
    ax.imshow(pix)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7, color=color)


def figure_retrieval_grid(path, ev, emb, names, classes_shown, k=3):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3 * (1 + k)
    fig, axes = plt.subplots(
        len(classes_shown), cols, figsize=(cols * 1.1, len(classes_shown) * 1.25)
    )
    axes = np.atleast_2d(axes)
    g, gy = emb["image"], ev["y"]["image"]
    for r, c in enumerate(classes_shown):
        for j, m in enumerate(MODALITIES[1:] + ("image",)):
            qi = np.flatnonzero(ev["y"][m] == c)
            col0 = j * (1 + k)
            if len(qi) == 0:
                for a in axes[r, col0 : col0 + 1 + k]:
                    a.axis("off")
                continue
            q = qi[0]
            sim = emb[m][q] @ g.T
            if m == "image":
                sim[q] = -np.inf
            top = np.argsort(-sim)[:k]
            _img(
                axes[r, col0], ev["x"][m][q], f"{m}: {names[c]}" if r == 0 or True else None, "navy"
            )
            for t, gi in enumerate(top):
                ok = gy[gi] == c
                _img(
                    axes[r, col0 + 1 + t],
                    ev["x"]["image"][gi],
                    f"{sim[gi]:.2f}",
                    "green" if ok else "red",
                )
    fig.suptitle(
        "query (text | audio | image) → top images from memory (green = right class)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_tsne(path, emb, ys, names, classes_shown, per_class=6, seed=0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    pts, lab, mod = [], [], []
    for m in MODALITIES:
        for c in classes_shown:
            idx = np.flatnonzero(ys[m] == c)
            idx = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else idx
            pts.append(emb[m][idx])
            lab += [c] * len(idx)
            mod += [m] * len(idx)
    x = np.concatenate(pts)
    z = TSNE(
        n_components=2, perplexity=min(30, max(5, len(x) // 4)), random_state=seed, init="pca"
    ).fit_transform(x)
    lab, mod = np.array(lab), np.array(mod)
    fig, ax = plt.subplots(figsize=(8, 7))
    cmap = plt.get_cmap("tab20")
    markers = {"image": "o", "text": "s", "audio": "^"}
    for ci, c in enumerate(classes_shown):
        for m in MODALITIES:
            sel = (lab == c) & (mod == m)
            ax.scatter(
                z[sel, 0],
                z[sel, 1],
                s=22,
                marker=markers[m],
                color=cmap(ci % 20),
                label=names[c] if m == "image" else None,
                alpha=0.8,
            )
    ax.legend(fontsize=6, ncol=2, loc="best", markerscale=0.8)
    ax.set_title("t-SNE of embeddings: ● image  ■ text  ▲ audio, colour = class", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_similarity(path, emb, ys, names, classes_shown):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def centroid(m, c):
        v = emb[m][ys[m] == c].mean(axis=0)
        return v / max(np.linalg.norm(v), 1e-12)

    t = np.stack([centroid("text", c) for c in classes_shown])
    im = np.stack([centroid("image", c) for c in classes_shown])
    sim = t @ im.T
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    h = ax.imshow(sim, cmap="viridis")
    labels = [names[c] for c in classes_shown]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("image (class mean)")
    ax.set_ylabel("text query (class mean)")
    fig.colorbar(h, ax=ax, fraction=0.046)
    ax.set_title("text-to-image cosine similarity", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------------------- model card
def _training_info(model: Path, checkpoint: Path | None) -> dict:
    info = {}
    if model.suffix == ".onnx":
        import onnx

        m = onnx.load(str(model), load_external_data=False)
        for p in m.metadata_props:
            if p.key == "visualbyte.training":
                info = json.loads(p.value)
    if checkpoint is not None and checkpoint.exists():
        ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
        info.update(args=ck.get("args"), step=ck.get("state", {}).get("step"))
        from .train import chain_init_model, checkpoint_recipe

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
    "lr_teacher_head", "no_photos", "drop_path", "seed", "threads",
)  # fmt: skip


def _teacher_on(args: dict) -> bool:
    return str(args.get("teacher_weight", "0")) not in ("0", "0.0", "None")


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
    from .train import DEFAULT_RUNS

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
    from .train import DEFAULT_RUNS

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
    size = contract.get("input", {}).get("size") or meta.get("size")
    dim = contract.get("embedding", {}).get("dim", "?")
    groups: dict[str, int] = {}
    for c in meta["classes"]:
        groups[c.get("group", "-")] = groups.get(c.get("group", "-"), 0) + 1
    nan = float("nan")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
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
        "## Data",
        f"Dataset `{data}` (seed {meta.get('seed')}): {len(meta['classes'])} classes ("
        + ", ".join(f"{k}: {v}" for k, v in sorted(groups.items()))
        + ").",
        "",
        "```json",
        json.dumps(_shorten(meta.get("splits")), indent=1, ensure_ascii=False),
        "```",
        "",
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
    for name, other in others.items():
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
    lines += photo_memory_card(res.get("photo_memory") or {})
    if res.get("classifier"):
        lines += [
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
            lines.append(
                f"| {OTHER_TITLES.get(m, m)} | {c['accuracy']:.3f} | {c['n']} | {confused} |"
            )
    if res.get("variants"):
        lines += [
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
    cal = res["threshold"]
    lines += [
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
    lines += [
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
    hist = info.get("history") or []
    if hist:
        lines += [
            "",
            "## Training curve (eval subset after each epoch)",
            "",
            "| epoch | image R@1 | text R@1 | audio R@1 |",
            "|---|---|---|---|",
        ]
        for h in hist[-15:]:
            lines.append(
                f"| {h['epoch']:.1f} | {h['image_r1']:.3f} | {h['text_r1']:.3f} | "
                f"{h['audio_r1']:.3f} |"
            )
    lines += [
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
        "- Training speech is synthetic (espeak-ng); recorded human speech is not measured here.",
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
    if notes is not None:
        lines += ["", notes.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")


# -------------------------------------------------------------------------------- main
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


def _recall_by(values: np.ndarray, hits: dict) -> list[tuple[str, dict]]:
    """R@1, R@5 and the count of the queries of each value of ``values`` (one per query)."""
    return [
        (
            v,
            {
                "R@1": float(hits[1][values == v].mean()),
                "R@5": float(hits[5][values == v].mean()),
                "n": int((values == v).sum()),
            },
        )
        for v in sorted(set(values))
    ]


def evaluate_other(
    q: np.ndarray,
    qy: np.ndarray,
    rows: list[dict] | None,
    g: np.ndarray,
    gy: np.ndarray,
    t: float,
    key: str,
) -> dict:
    """Questions in fonts or voices the model never saw in training, against the eval gallery:
    R@1/R@5 overall and per ``key`` of their rows (font, voice), and the answers at the
    threshold ``t``."""
    hits, _ = recall_at_k(q, qy, g, gy, (1, 5), per_query=True)
    out = {
        "overall": {"R@1": float(hits[1].mean()), "R@5": float(hits[5].mean()), "n": len(qy)},
        "by": key,
        "subsets": [],
    }
    if rows and len(rows) == len(qy):
        values = np.array([str(r.get(key)) for r in rows])
        out["subsets"] = [{key: v, **r} for v, r in _recall_by(values, hits)]
    best, right = best_matches(q, qy, g, gy)
    out["at_threshold"] = outcomes_at(best, right, t)
    return out


# What the held-out subsets are called in the builder's ``eval_{modality}_rows.jsonl``.
GROUP_KEYS = {"image": ("source", "style"), "text": ("lang", "font"), "audio": ("lang", "voice")}


def _by_group(ev: dict, per_query: dict) -> dict:
    out: dict[str, list] = {}
    for m, keys in GROUP_KEYS.items():
        rows = ev.get("rows", {}).get(m)
        if not rows:
            continue
        for key in keys:
            values = np.array([str(r.get(key)) for r in rows])
            if len(set(values)) < 2 and key != keys[0]:
                continue
            out.setdefault(key, []).extend(
                {"modality": m, "subset": v, **r} for v, r in _recall_by(values, per_query[m])
            )
    return out


def evaluate_embeddings(emb: dict, ev: dict, num_classes: int) -> dict:
    res = {"overall": {}, "per_class": {}}
    per_query = {}
    for m in MODALITIES:
        hits, _ = recall_at_k(
            emb[m],
            ev["y"][m],
            emb["image"],
            ev["y"]["image"],
            (1, 5),
            exclude_self=(m == "image"),
            per_query=True,
        )
        per_query[m] = hits
        res["overall"][f"{m}->image"] = {
            "R@1": float(hits[1].mean()),
            "R@5": float(hits[5].mean()),
            "n": int(len(hits[1])),
        }
    for c in range(num_classes):
        row = {}
        for m in MODALITIES:
            sel = ev["y"][m] == c
            if sel.any():
                row[f"{m}_R@1"] = float(per_query[m][1][sel].mean())
        if row:
            res["per_class"][c] = row
    res["by_group"] = _by_group(ev, per_query)
    gy = ev["y"]["image"]
    counts = np.bincount(gy, minlength=num_classes)
    res["chance_r1"] = {}
    for m in MODALITIES:
        own = counts[ev["y"][m]] - (1 if m == "image" else 0)
        res["chance_r1"][m] = float(np.mean(own / max(1, len(gy) - (m == "image"))))
    # The best R@1 the split allows: a query whose class has no (other) picture in the gallery
    # cannot be answered right. Image→image leaves the query out, and most held-out emoji classes
    # have one picture, so its ceiling is far below 1.
    res["ceiling_r1"] = {}
    for m in MODALITIES:
        own = counts[ev["y"][m]] - (1 if m == "image" else 0)
        res["ceiling_r1"][m] = float(np.mean(own > 0))
    return res


def class_confusions(
    scores: np.ndarray, y: np.ndarray, names: Sequence[str], top: int = 10
) -> dict:
    """For a model that ships the class posterior: how often its largest value is the query's
    class, and the (true, predicted) pairs it confuses most often."""
    pred = scores.argmax(1)
    wrong = pred != y
    pairs = Counter(zip(y[wrong].tolist(), pred[wrong].tolist(), strict=True))
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "accuracy": float(1.0 - wrong.mean()) if len(y) else float("nan"),
        "n": int(len(y)),
        "confused": [{"true": names[a], "predicted": names[b], "count": c} for (a, b), c in ranked],
    }


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    # Inputs read only at the end are checked first: a missing one used to fail after the model's
    # threshold and eval.json were already rewritten, leaving the card behind them.
    later = [("--notes", args.notes), ("--checkpoint", args.checkpoint)]
    for flag, path in later + [("--variant", v) for v in args.variant]:
        if path is not None and not path.is_file():
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return 2

    meta = json.loads((args.data / "meta.json").read_text())
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
    res["threshold"] = cal
    res["threshold_tradeoff"] = threshold_tradeoff(best, right, negs)
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

    res["variants"] = {}
    for v in args.variant:
        ve = OnnxEmbedder(v, args.threads)
        vemb = {m: ve(ev["x"][m]) for m in MODALITIES}
        vres = evaluate_embeddings(vemb, ev, num_classes)
        drift = max(float(np.abs(vemb[m] - emb[m]).max()) for m in MODALITIES)
        res["variants"][str(v)] = {
            "overall": vres["overall"],
            "max_abs_diff_vs_model": drift,
            "bytes": v.stat().st_size,
        }

    args.out.mkdir(parents=True, exist_ok=True)
    fig_dir = args.out / "figures"
    fig_dir.mkdir(exist_ok=True)
    present = [c for c in range(num_classes) if all((ev["y"][m] == c).any() for m in MODALITIES)]
    rng = np.random.default_rng(1)
    shown = sorted(rng.choice(present, size=min(20, len(present)), replace=False).tolist())
    figure_retrieval_grid(fig_dir / "retrieval_grid.png", ev, emb, names, shown[:8])
    figure_tsne(fig_dir / "tsne.png", emb, ev["y"], names, shown[:12])
    figure_similarity(fig_dir / "similarity.png", emb, ev["y"], names, shown)

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
