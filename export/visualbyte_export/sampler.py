"""Class-balanced batches of (image, text, audio) triples, split across distributed ranks.

Every batch holds ``batch_classes`` distinct classes and one triple per class, so the diagonal of a
batch's
similarity matrix is the positive set of a CLIP loss. Classes are dealt from shuffled decks, so over
an epoch
every class appears equally often (±1). Every rank builds the same global sequence from ``(seed,
epoch)`` and
keeps its own contiguous slice of each batch: the ranks together see exactly the single-process
batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def _indices_by_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    return [np.flatnonzero(labels == c) for c in range(num_classes)]


class ClassBalancedTripleSampler:
    """Yields, per step, an ``int64 [b, 4]`` array of rows ``(class, image_idx, text_idx,
    audio_idx)``.

    ``b = batch_classes / world_size`` on each rank. Only classes present in all three
    modalities are used.
    """

    def __init__(
        self,
        image_labels: Sequence[int],
        text_labels: Sequence[int],
        audio_labels: Sequence[int],
        batch_classes: int,
        *,
        num_classes: int | None = None,
        steps_per_epoch: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        audio_groups: Sequence[int] | None = None,
        audio_group_shares: Sequence[float] | None = None,
    ) -> None:
        labels = [np.asarray(x, dtype=np.int64) for x in (image_labels, text_labels, audio_labels)]
        # Optional groups of audio rows (e.g. espeak-ng / other engines) drawn with fixed shares:
        # a class's audio comes from group g with probability shares[g], renormalised over the
        # groups that class has rows in. Without groups every audio row of a class is as likely.
        self.audio_split = None
        if audio_groups is not None:
            groups = np.asarray(audio_groups, dtype=np.int64)
            shares = np.asarray(audio_group_shares, dtype=np.float64)
            if len(groups) != len(labels[2]):
                raise ValueError(f"{len(groups)} audio groups for {len(labels[2])} audio rows")
            if groups.min() < 0 or groups.max() >= len(shares) or (shares < 0).any():
                raise ValueError("audio groups must index non-negative shares")
            self.audio_split = (groups, shares)
        if num_classes is None:
            num_classes = int(max(int(x.max()) for x in labels if len(x)) + 1)
        self.by_class = [_indices_by_class(x, num_classes) for x in labels]
        self.classes = np.array(
            [c for c in range(num_classes) if all(len(m[c]) for m in self.by_class)], dtype=np.int64
        )
        if len(self.classes) < 2:
            raise ValueError("need at least two classes with image, text and audio samples")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        batch_classes = min(batch_classes, len(self.classes))
        batch_classes -= batch_classes % world_size
        if batch_classes < world_size or batch_classes < 2:
            raise ValueError(
                f"{len(self.classes)} classes cannot fill a batch on {world_size} ranks"
            )
        self.batch_classes = batch_classes
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        n_images = sum(len(self.by_class[0][c]) for c in self.classes)
        self.steps_per_epoch = steps_per_epoch or max(1, -(-n_images // batch_classes))

    @property
    def local_batch(self) -> int:
        return self.batch_classes // self.world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def global_batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """All global batches of an epoch (identical on every rank)."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        # A per-class, per-modality shuffled queue: samples of a class are used evenly too.
        queues = [
            [rng.permutation(m[c]) if len(m[c]) else m[c] for c in range(len(m))]
            for m in self.by_class
        ]
        pos = [[0] * len(m) for m in self.by_class]

        def advance(qs: list, ps: list, i: int, j: int) -> int:
            """The next row of queue ``qs[i][j]``, reshuffled when it is used up."""
            q = qs[i][j]
            if ps[i][j] >= len(q):
                qs[i][j] = q = rng.permutation(q)
                ps[i][j] = 0
            ps[i][j] += 1
            return int(q[ps[i][j] - 1])

        if self.audio_split is not None:
            groups, shares = self.audio_split
            parts = [[q[groups[q] == g] for g in range(len(shares))] for q in queues[2]]
            gpos = [[0] * len(shares) for _ in parts]

        def take_audio(c: int) -> int:
            if self.audio_split is None:
                return advance(queues, pos, 2, c)
            p = np.array([shares[g] if len(parts[c][g]) else 0.0 for g in range(len(shares))])
            if p.sum() == 0:  # the class only has rows of zero-share groups
                p = np.array([float(len(part) > 0) for part in parts[c]])
            return advance(parts, gpos, c, int(rng.choice(len(p), p=p / p.sum())))

        deck: list[int] = []
        out = []
        for _ in range(self.steps_per_epoch):
            chosen: list[int] = []
            while len(chosen) < self.batch_classes:
                if not deck:
                    deck = list(rng.permutation(self.classes))
                # Deal the next class not yet in this batch; skipped ones stay at
                # the top of the deck.
                for i, c in enumerate(deck):
                    if c not in chosen:
                        chosen.append(int(deck.pop(i)))
                        break
                else:
                    deck = deck + list(rng.permutation(self.classes))
            rows = [
                (c, advance(queues, pos, 0, c), advance(queues, pos, 1, c), take_audio(c))
                for c in chosen
            ]
            out.append(np.array(rows, dtype=np.int64))
        return out

    def rank_slice(self, batch: np.ndarray) -> np.ndarray:
        b = self.local_batch
        return batch[self.rank * b : (self.rank + 1) * b]

    def iter_from(self, start_step: int = 0) -> Iterator[np.ndarray]:
        for batch in self.global_batches()[start_step:]:
            yield self.rank_slice(batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_from(0)
