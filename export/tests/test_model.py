"""VisualByteNet shapes, input normalisation, parameter groups and augmentation."""

import numpy as np
import pytest
import torch

from visualbyte_export.fixture import FIXTURE_BACKBONE
from visualbyte_export.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EmbeddingOnly,
    VisualByteNet,
    load_init_weights,
    pixels_to_input,
)
from visualbyte_export.train import (
    _affine,
    _stroke_weight,
    _voice,
    augment,
    param_groups,
    to_input,
)


def tiny(num_classes=5, arch="convnext_atto"):
    torch.manual_seed(0)
    return VisualByteNet(arch, num_classes, embed_dim=16, backbone_kwargs=FIXTURE_BACKBONE).eval()


def test_pixels_are_normalised_exactly_as_the_contract_says():
    px = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    x = pixels_to_input(px)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    for c in range(3):
        want = (px[..., c].float() / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(x[:, c], want, atol=1e-6)
    assert torch.allclose(to_input(px, None, 0.0, "cpu"), x)


@pytest.mark.parametrize("arch", ["convnext_atto", "convnext_tiny"])
def test_embeddings_are_unit_length_and_the_projector_follows_the_backbone(arch):
    net = tiny(arch=arch)
    assert net.projector[1].in_features == net.backbone.num_features == 64
    x = torch.randn(3, 3, 32, 32)
    e = net.embed(x)
    assert e.shape == (3, 16)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert net.classify(e).shape == (3, 5)
    assert torch.allclose(EmbeddingOnly(net)(x), e, atol=1e-6)


def test_logit_scale_starts_near_clip():
    assert tiny().logit_scale.item() == pytest.approx(np.log(1 / 0.07), abs=1e-4)


def test_param_groups_cover_every_parameter_once_with_two_learning_rates():
    net = tiny()
    groups = param_groups(net, 1e-4, 1e-3, 0.05)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())
    head = {id(p) for p in net.head_parameters()}
    for g in groups:
        assert all((id(p) in head) == (g["lr"] == 1e-3) for p in g["params"])
        if any(p.ndim < 2 for p in g["params"]):
            assert g["weight_decay"] == 0.0


def test_init_loads_matching_weights_from_a_local_file(tmp_path):
    a, b = tiny(), tiny()
    with torch.no_grad():
        for p in a.parameters():
            p.add_(1.0)
    torch.save({"model": a.state_dict()}, tmp_path / "a.pt")
    loaded, skipped = load_init_weights(b, tmp_path / "a.pt")
    assert not skipped and len(loaded) == len(a.state_dict())
    torch.save(a.backbone.state_dict(), tmp_path / "timm.pt")
    c = tiny()
    load_init_weights(c, tmp_path / "timm.pt")
    assert torch.equal(c.backbone.stem[0].weight, a.backbone.stem[0].weight)


@pytest.mark.parametrize("modality", ["image", "text", "audio"])
def test_augmentation_keeps_shape_and_range_and_zero_strength_is_identity(modality):
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    y = augment(x, modality, 1.0)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)
    assert torch.equal(augment(x, modality, 0.0), x)


def test_audio_augmentation_keeps_frequency_rows_in_place():
    torch.manual_seed(0)
    x = torch.zeros(8, 3, 32, 32)
    x[:, :, 10:12, :] = 1.0  # one bright frequency band
    y = augment(x, "audio", 1.0)
    rows = y.mean(dim=(0, 1, 3))
    assert rows[10:12].min() > 0.5 and rows[:8].max() < 0.05


def test_text_stroke_weight_makes_ink_bolder_or_lighter_by_its_sign():
    x = torch.ones(3, 3, 32, 32)
    x[:, :, 8:24, 15:17] = 0.0  # a 2-pixel dark stroke on white
    y = _stroke_weight(x, torch.tensor([1.0, -1.0, 0.0]))
    ink = (1 - y).sum(dim=(1, 2, 3))
    assert ink[0] > 1.5 * ink[2]  # bolder: the stroke spreads one pixel each side
    assert ink[1] < 0.1 * ink[2]  # lighter: a 2-pixel stroke is eaten from both sides
    assert torch.equal(y[2], x[2])


def test_text_shear_leans_letters_one_way_by_its_sign():
    x = torch.ones(2, 1, 32, 32)
    x[:, :, 4:28, 15:17] = 0.0  # a vertical stroke
    one = torch.ones(2)
    zero = torch.zeros(2)
    y = _affine(x, one, one, zero, zero, zero, torch.tensor([0.3, -0.3]))

    def column(img, row):
        return int((1 - img[0, row]).argmax())

    # A positive shear leans the stroke's top to the right, as italic letters; negative to the left.
    assert column(y[0], 6) > column(y[0], 25) and column(y[1], 6) < column(y[1], 25)


def test_voice_augmentation_warps_frequency_about_the_low_end_and_touches_only_speech():
    torch.manual_seed(0)
    x = torch.zeros(64, 3, 48, 48)
    x[:, :, 46:48, 4:40] = 0.8  # the lowest band (bottom rows)
    x[:, :, 20:22, 4:40] = 0.8  # a band half-way up
    y = _voice(x, 1.0, None, x.device)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    # The lowest band stays at the bottom; the middle one moves up or down with the warp.
    assert (y[:, 0, 44:48, 4:30].mean(dim=(1, 2)) > 0.3).all()
    centre = (y[:, 0, 8:40, 4:30].mean(dim=2) * torch.arange(8, 40)).sum(1) / y[
        :, 0, 8:40, 4:30
    ].mean(dim=2).sum(1)
    assert centre.std() > 0.5 and (centre - 20.5).abs().max() < 5
    # Only speech pictures change, and a zero strength changes nothing.
    for modality in ("image", "text"):
        assert torch.equal(augment(x, modality, 0.0, voice=1.0), x)
    assert torch.equal(augment(x, "audio", 0.0, voice=0.0), x)
    assert not torch.allclose(augment(x, "audio", 0.0, voice=1.0), x)


def test_style_augmentation_changes_only_photos_and_keeps_their_hue():
    torch.manual_seed(0)
    x = torch.zeros(16, 3, 32, 32)
    x[:, 0, 8:24, 8:24] = 0.9  # a red square on black
    y = augment(x, "image", 0.0, style=1.0)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)
    # Red stays the strongest channel in the square for every picture that was not made grey.
    centre = y[:, :, 14:18, 14:18].mean(dim=(2, 3))
    coloured = (centre[:, 0] - centre[:, 1]).abs() > 1e-6
    assert coloured.any()
    assert (centre[coloured, 0] > centre[coloured, 1]).all()
    assert (centre[coloured, 0] > centre[coloured, 2]).all()
    # Blur spreads the edge: some pixel just outside the square lights up.
    assert y[:, 0, 7, 8:24].max() > 0.05
    for modality in ("text", "audio"):
        assert torch.equal(augment(x, modality, 0.0, style=1.0), x)
