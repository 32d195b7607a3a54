"""A rendered dataset as training reads it: the splits' uint8 arrays and labels (with the training
photos and the teacher's features), the non-class questions, meta.json, and row gathering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .splits import MODALITIES, OTHER_SPLITS


class RenderedSplit:
    """One split of a dataset directory: ``{split}_{modality}.npy`` uint8 [N,S,S,3] and
    ``..._y.npy``."""

    def __init__(
        self, root: Path, split: str, mmap: bool = True, photos: bool = True, teacher: bool = False
    ) -> None:
        self.root = Path(root)
        self.split = split
        mode = "r" if mmap else None
        self.x = {m: np.load(self.root / f"{split}_{m}.npy", mmap_mode=mode) for m in MODALITIES}
        self.y = {m: np.load(self.root / f"{split}_{m}_y.npy").astype(np.int64) for m in MODALITIES}
        # Training photographs and clip art (``data --photo-views``) are pictures like the others.
        parts = ["image"] + (
            ["photo"] if photos and (self.root / f"{split}_photo.npy").exists() else []
        )
        if len(parts) > 1:
            self.x["image"] = np.concatenate(
                [np.load(self.root / f"{split}_{p}.npy") for p in parts]
            )
            self.y["image"] = np.concatenate(
                [np.load(self.root / f"{split}_{p}_y.npy").astype(np.int64) for p in parts]
            )
        self.teacher = None
        if teacher:
            missing = [p for p in parts if not (self.root / f"{split}_{p}_teacher.npy").exists()]
            if missing:
                raise SystemExit(
                    f"--teacher-weight needs {split}_{missing[0]}_teacher.npy in {self.root}: run "
                    f"`python -m visualbyte_export teacher --data {self.root}` first"
                )
            self.teacher = np.concatenate(
                [np.load(self.root / f"{split}_{p}_teacher.npy") for p in parts]
            )
            if len(self.teacher) != len(self.y["image"]):
                raise SystemExit(f"{self.root}: teacher features do not match the pictures")
        for m in MODALITIES:
            if len(self.x[m]) != len(self.y[m]):
                raise ValueError(
                    f"{split}_{m}: {len(self.x[m])} samples but {len(self.y[m])} labels"
                )
        self.size = int(self.x["image"].shape[1])
        # Questions in other fonts and from other synthesizers (evaluation-only splits).
        self.other = {}
        for name in OTHER_SPLITS if split == "eval" else ():
            if (self.root / f"{name}.npy").exists():
                self.other[name] = (
                    np.load(self.root / f"{name}.npy", mmap_mode=mode),
                    np.load(self.root / f"{name}_y.npy").astype(np.int64),
                )


UNKNOWN_MODALITIES = ("text", "audio")


def load_unknown(root: Path) -> dict[str, np.ndarray]:
    """The dataset's questions about non-class words (``unknown_{text,audio}.npy``, memory
    mapped), for ``--unknown-weight``; a clear error when the dataset predates them."""
    missing = [
        f"unknown_{m}.npy" for m in UNKNOWN_MODALITIES if not (root / f"unknown_{m}.npy").exists()
    ]
    if missing:
        raise SystemExit(
            f"--unknown-weight needs {' and '.join(missing)} in {root}: rebuild the dataset with "
            "this version's `python -m visualbyte_export data` (it adds the non-class training "
            "words), or leave --unknown-weight at 0"
        )
    out = {m: np.load(root / f"unknown_{m}.npy", mmap_mode="r") for m in UNKNOWN_MODALITIES}
    empty = [m for m, a in out.items() if len(a) == 0]
    if empty:
        raise SystemExit(f"--unknown-weight: unknown_{empty[0]}.npy in {root} has no rows")
    return out


def unknown_rows(n_rows: int, k: int, seed: int, rank: int, step: int) -> np.ndarray:
    """``k`` distinct rows (fewer if there are fewer) of a non-class split for one step, the same
    for the same seed, rank and step (so a resumed run draws what it would have drawn)."""
    rng = np.random.default_rng([seed, rank, step, n_rows])
    return rng.choice(n_rows, size=min(k, n_rows), replace=False)


def load_meta(root: Path) -> dict:
    return json.loads((Path(root) / "meta.json").read_text())


def gather_rows(arr: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    order = np.argsort(idx, kind="stable")
    rows = np.asarray(arr[idx[order]])  # sorted reads are kind to memory-mapped files
    out = np.empty_like(rows)
    out[order] = rows
    return torch.from_numpy(out)
