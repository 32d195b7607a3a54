"""The real scenario as a metric: a robot's memory of photographs it was never trained on, asked
by typed and spoken questions, with and without label matching.

The memory is a held-out picture split (``photo_image``: GCompris photographs; ``clipart_image``:
openclipart). Each picture is labelled with its class name, whose typed rendering
(``label_text``) is what ``visualbyte index build`` stores beside it. A question scores a memory
by the picture alone, or by the higher of picture and label (the runtime's ``--match both``).
"""

from __future__ import annotations

import numpy as np

GALLERIES = {"photo_image": "held-out photographs", "clipart_image": "held-out clip art"}


def _ranked(scores: np.ndarray, gy: np.ndarray, qy: np.ndarray) -> dict:
    order = np.argsort(-scores, axis=1, kind="stable")
    top = gy[order]
    best = scores[np.arange(len(scores)), order[:, 0]]
    right = top[:, 0] == qy
    return {
        "R@1": float(right.mean()),
        "R@5": float((top[:, :5] == qy[:, None]).any(1).mean()),
        "n": int(len(qy)),
        "best": best,
        "right": right,
    }


def ask_memory(
    q: np.ndarray, qy: np.ndarray, g: np.ndarray, gy: np.ndarray, labels: np.ndarray, t: float
) -> dict:
    """Questions ``q`` (class ``qy``) against the pictures ``g`` (class ``gy``): by picture and
    by the higher of picture and label (``labels[c]``: class c's typed label), R@1/R@5 and the
    answers at the threshold ``t``. Only questions whose class is in the memory are asked (at
    least one must be)."""
    keep = np.isin(qy, gy)
    if not keep.any():
        raise ValueError("no question is about a class in the memory")
    q, qy = q[keep], qy[keep]
    picture = q @ g.T
    both = np.maximum(picture, q @ labels[gy].T)
    out = {}
    for name, scores in (("picture", picture), ("both", both)):
        r = _ranked(scores, gy, qy)
        accepted = r.pop("best") >= t
        right = r.pop("right")
        r["accepted_right"] = float((accepted & right).mean())
        r["accepted_wrong"] = float((accepted & ~right).mean())
        out[name] = r
    return out


def photo_memory_report(emb: dict, ys: dict, t: float) -> dict:
    """Every gallery of GALLERIES present in ``emb`` asked by every question split present:
    ``text``/``audio`` (held-out fonts and voices), ``other_audio`` (other synthesizers) and
    ``human_audio`` (recorded people). Also each question split's class accuracy by label
    alone (the nearest typed class name), the text-speech reference the memory is held to."""
    if "label_text" not in emb:
        return {}
    labels = emb["label_text"]
    questions = [m for m in ("text", "audio", "other_audio", "human_audio") if m in emb]
    report: dict = {"by_label": {}}
    for m in questions:
        r = _ranked(emb[m] @ labels.T, ys["label_text"], ys[m])
        report["by_label"][m] = {k: r[k] for k in ("R@1", "R@5", "n")}
    for name in GALLERIES:
        if name not in emb:
            continue
        gy = ys[name]
        report[name] = {
            "pictures": int(len(gy)),
            "classes": int(len(set(gy.tolist()))),
            "asked": {
                m: ask_memory(emb[m], ys[m], emb[name], gy, labels, t)
                for m in questions
                if np.isin(ys[m], gy).any()  # a split with no question about the memory's classes
            },
        }
    return report


QUESTION_TITLES = {
    "text": "typed (held-out fonts)",
    "audio": "spoken (held-out espeak-ng voices)",
    "other_audio": "spoken (other synthesizers)",
    "human_audio": "spoken (recorded person)",
}


def photo_memory_card(report: dict) -> list[str]:
    """The model card's section on the photo memory (Markdown lines)."""
    if not report:
        return []
    lines = [
        "",
        "### A memory of photographs asked by voice and text",
        "",
        "The memory holds held-out pictures, each labelled with its class name as `index build` "
        "stores it; questions are asked only about classes in the memory. 'picture': scored "
        "by the picture alone (`--match picture`); 'both': by the higher of picture and label "
        "(`--match both`, the default). Right/wrong: answers at the model's threshold.",
        "",
        "| memory | question | picture R@1 | both R@1 | both R@5 | right / wrong at threshold "
        "(both) | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, title in GALLERIES.items():
        g = report.get(name)
        if not g:
            continue
        for m, r in g["asked"].items():
            p, b = r["picture"], r["both"]
            lines.append(
                f"| {title} ({g['pictures']} pictures, {g['classes']} classes) | "
                f"{QUESTION_TITLES.get(m, m)} | {p['R@1']:.3f} | {b['R@1']:.3f} | {b['R@5']:.3f} "
                f"| {b['accepted_right']:.1%} / {b['accepted_wrong']:.1%} | {b['n']} |"
            )
    lines += [
        "",
        "Reference, the class by label alone (each question against the 221 typed class "
        "names): "
        + ", ".join(
            f"{QUESTION_TITLES.get(m, m)} {r['R@1']:.3f}" for m, r in report["by_label"].items()
        )
        + ".",
    ]
    return lines
