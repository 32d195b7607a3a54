"""The evaluation's figures: the retrieval grid, the t-SNE of the three modalities and the
text-to-image similarity of class means."""

from __future__ import annotations

import numpy as np

from .splits import MODALITIES


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
