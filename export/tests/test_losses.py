"""Loss values and gradients on tiny inputs."""

import math

import pytest
import torch
import torch.nn.functional as F

from visualbyte_export.losses import (
    LossWeights,
    clip_loss,
    curriculum_weights,
    unknown_loss,
    visualbyte_loss,
)


def test_clip_loss_of_identical_rows_is_log_n():
    a = F.normalize(torch.ones(5, 4), dim=-1)
    assert clip_loss(a, a, torch.tensor(2.0)).item() == pytest.approx(math.log(5), abs=1e-6)


def test_clip_loss_of_aligned_orthogonal_rows_is_small():
    a = torch.eye(4)
    loss = clip_loss(a, a, torch.tensor(math.log(100.0)))
    # logits 100 on the diagonal, 0 elsewhere: CE = log(1 + 3 e^-100) ~ 0
    assert loss.item() < 1e-6
    swapped = clip_loss(a, a[[1, 0, 2, 3]], torch.tensor(math.log(100.0)))
    assert swapped.item() > 40


def test_clip_loss_matches_a_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = F.normalize(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), dim=-1)
    s = 2.0
    logits = s * a @ b.t()
    row = -(torch.log_softmax(logits, 1).diagonal()).mean()
    col = -(torch.log_softmax(logits.t(), 1).diagonal()).mean()
    got = clip_loss(a, b, torch.tensor(math.log(s)))
    assert got.item() == pytest.approx(0.5 * (row + col).item(), abs=1e-6)


def test_clip_loss_scale_is_clamped_at_100():
    a = torch.eye(3)
    b = torch.eye(3)[[1, 2, 0]]
    assert clip_loss(a, b, torch.tensor(10.0)).item() == pytest.approx(
        clip_loss(a, b, torch.tensor(math.log(100.0))).item()
    )


def test_clip_loss_gradients_match_finite_differences():
    torch.manual_seed(0)
    a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, s: clip_loss(F.normalize(a, dim=-1), F.normalize(b, dim=-1), s), (a, b, s)
    )


def _batch(n=4, d=8, c=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = {
        m: F.normalize(torch.randn(n, d, generator=g), dim=-1).requires_grad_()
        for m in ("image", "text", "audio")
    }
    logits = {
        m: torch.randn(n, c, generator=g, requires_grad=True) for m in ("image", "text", "audio")
    }
    return emb, logits, torch.tensor([0, 3, 1, 5][:n])


def test_total_loss_is_the_weighted_sum_of_its_parts():
    emb, logits, y = _batch()
    scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    w = LossWeights(cls=0.7, align=0.3, audio_lambda=0.5)
    loss, parts = visualbyte_loss(emb, logits, y, scale, w)
    ce = sum(F.cross_entropy(logits[m], y) for m in ("image", "text", "audio")) / 3
    clip = clip_loss(emb["image"], emb["text"], scale) + 0.5 * (
        clip_loss(emb["audio"], emb["image"], scale) + clip_loss(emb["audio"], emb["text"], scale)
    )
    assert loss.item() == pytest.approx((0.7 * ce + 0.3 * clip).item(), abs=1e-5)
    assert parts["loss"] == pytest.approx(loss.item(), abs=1e-5)
    loss.backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)
    for m in ("image", "text", "audio"):
        assert emb[m].grad.abs().sum() > 0 and logits[m].grad.abs().sum() > 0


def test_audio_can_be_left_out_of_classification():
    emb, logits, y = _batch()
    loss, parts = visualbyte_loss(
        emb, logits, y, torch.tensor(2.0), LossWeights(ce_audio=False, align=0.0)
    )
    assert "ce_audio" not in parts
    loss.backward()
    assert logits["audio"].grad is None


def test_curriculum_ramps_alignment_in():
    assert curriculum_weights(0, 0) == (1.0, 1.0)
    assert curriculum_weights(0, 4, align_start=0.1) == (1.0, pytest.approx(0.1))
    assert curriculum_weights(2, 4, align_start=0.1)[1] == pytest.approx(0.55)
    assert curriculum_weights(10, 4, align_start=0.1)[1] == pytest.approx(1.0)


def test_curriculum_delay_keeps_alignment_off_then_ramps():
    assert curriculum_weights(0, 4, align_start=0.1, align_delay=2) == (1.0, 0.0)
    assert curriculum_weights(1.99, 4, align_start=0.1, align_delay=2) == (1.0, 0.0)
    assert curriculum_weights(2, 4, align_start=0.1, align_delay=2)[1] == pytest.approx(0.1)
    assert curriculum_weights(4, 4, align_start=0.1, align_delay=2)[1] == pytest.approx(0.55)


def test_modality_weights_tilt_the_classification_mean():
    torch.manual_seed(0)
    labels = torch.arange(4)
    emb = {m: F.normalize(torch.randn(4, 8), dim=-1) for m in ("image", "text", "audio")}
    logits = {m: torch.randn(4, 4) for m in emb}
    logits["text"] = 10 * torch.eye(4)  # text is nearly solved, image and audio are not
    scale = torch.tensor(1.0)
    even, parts = visualbyte_loss(emb, logits, labels, scale, LossWeights(align=0.0))
    tilted, _ = visualbyte_loss(
        emb, logits, labels, scale, LossWeights(align=0.0, ce_modality=(0.0, 1.0, 0.0))
    )
    assert tilted == pytest.approx(parts["ce_text"], rel=1e-5)
    assert even == pytest.approx((parts["ce_image"] + parts["ce_text"] + parts["ce_audio"]) / 3)


def test_unknown_loss_is_zero_for_an_even_posterior_and_grows_as_it_picks_a_class():
    even = torch.full((3, 5), 2.0)
    assert unknown_loss(even).item() == pytest.approx(0.0, abs=1e-6)
    sure = torch.tensor([[16.0, 0, 0, 0, 0]])
    unsure = torch.tensor([[4.0, 0, 0, 0, 0]])
    assert unknown_loss(sure).item() > unknown_loss(unsure).item() > 0
    # Cross-entropy against the uniform distribution, less log C, by hand.
    p = F.softmax(unsure, dim=1)
    by_hand = -(p.log().mean()) - math.log(5)
    assert unknown_loss(unsure).item() == pytest.approx(by_hand.item(), abs=1e-5)
    # No rows (no non-class questions in the batch): zero, and still a graph.
    empty = torch.zeros(0, 5, requires_grad=True)
    assert unknown_loss(empty).item() == 0.0


def test_unknown_loss_gradient_lowers_the_top_class_and_raises_the_rest():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]], requires_grad=True)
    unknown_loss(logits).backward()
    g = logits.grad[0]
    assert g[0] > 0  # descent lowers the top class
    assert g[3] < 0  # ... and raises the least likely
    assert g.sum().abs().item() < 1e-6  # a shift of every logit changes nothing
