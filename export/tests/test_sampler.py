"""Class-balanced triple batches, alone and split across distributed ranks."""

from collections import Counter

import numpy as np
import pytest

from visualbyte_export.sampler import ClassBalancedTripleSampler


def labels(num_classes, per_class, seed):
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat(np.arange(num_classes), per_class))


def make(world=1, rank=0, batch=8, classes=10, seed=3, **kw):
    img, txt, aud = labels(classes, 7, 1), labels(classes, 3, 2), labels(classes, 5, 3)
    s = ClassBalancedTripleSampler(
        img, txt, aud, batch, seed=seed, rank=rank, world_size=world, **kw
    )
    return s, (img, txt, aud)


def test_batches_hold_distinct_classes_with_matching_triples():
    s, (img, txt, aud) = make()
    assert len(s) == -(-70 // 8)
    for batch in s:
        assert batch.shape == (8, 4)
        assert len(set(batch[:, 0])) == 8
        assert (img[batch[:, 1]] == batch[:, 0]).all()
        assert (txt[batch[:, 2]] == batch[:, 0]).all()
        assert (aud[batch[:, 3]] == batch[:, 0]).all()


def test_classes_and_samples_are_balanced_over_an_epoch():
    s, _ = make(steps_per_epoch=50)
    rows = np.concatenate(list(s))
    counts = Counter(rows[:, 0].tolist())
    assert set(counts) == set(range(10))
    assert max(counts.values()) - min(counts.values()) <= 1
    # Within a class the image samples are cycled, not drawn with replacement at random.
    per_image = Counter(rows[:, 1].tolist())
    assert max(per_image.values()) - min(per_image.values()) <= 1


def test_epochs_differ_and_are_reproducible():
    a, _ = make()
    b, _ = make()
    first, again = list(a), list(b)
    assert len(first) == len(again) > 0, "an epoch has batches"
    assert all((x == y).all() for x, y in zip(first, again, strict=True))
    b.set_epoch(1)
    other = list(b)
    assert len(other) == len(first)
    assert any((x != y).any() for x, y in zip(first, other, strict=True))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_split_the_global_batch_exactly(world):
    single, _ = make()
    ranks = [make(world=world, rank=r)[0] for r in range(world)]
    for r in ranks:
        assert r.local_batch == 8 // world
    for step, whole in enumerate(single):
        parts = [list(r)[step] for r in ranks]
        assert np.array_equal(np.concatenate(parts), whole)
        seen = np.concatenate([p[:, 0] for p in parts])
        assert len(set(seen.tolist())) == len(seen)


def test_resume_mid_epoch_yields_the_remaining_batches():
    s, _ = make()
    full = list(s)
    rest = list(s.iter_from(3))
    assert len(full) > 3 and len(rest) == len(full) - 3
    assert all((x == y).all() for x, y in zip(full[3:], rest, strict=True))


def test_batch_is_capped_by_classes_and_made_divisible_by_ranks():
    s, _ = make(batch=64, classes=5, world=2)
    assert s.batch_classes == 4 and s.local_batch == 2
    with pytest.raises(ValueError):
        make(batch=8, classes=1)
