"""Retrieval metrics on embeddings: recall@k, the "I don't know" threshold and what a robot answers
at it, recall per held-out subset, and the classifier's confusions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .splits import MODALITIES


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


def class_right_by(scores: np.ndarray, y: np.ndarray, values: Sequence[str]) -> dict:
    """How often the largest value is the query's class, per value of a row key (a speaker):
    ``{value: {"accuracy", "n"}}`` in sorted order."""
    right = scores.argmax(1) == y
    values = np.asarray(values)
    return {
        str(v): {"accuracy": float(right[values == v].mean()), "n": int((values == v).sum())}
        for v in sorted(set(values.tolist()))
    }


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
