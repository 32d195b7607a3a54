"""``blend``: a run blended with the exported model it started from computes the start model at
alpha 0, the run at alpha 1, and a model between them in between; folding keeps the function."""

import copy

import pytest
import torch
from test_export import _batchnorm_convnext, _save_checkpoint

from visualbyte_export.blend import blend_checkpoint, fold_norms, main
from visualbyte_export.export_onnx import export_checkpoint
from visualbyte_export.fixture import FIXTURE_SIZE
from visualbyte_export.model import load_checkpoint_model

RENDERER = {"placeholder": True, "size": FIXTURE_SIZE}


def _pictures(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, FIXTURE_SIZE, FIXTURE_SIZE, generator=g)


def _trained_on(net, seed: int):
    """``net`` moved away from where it was: weights nudged, running statistics updated."""
    net = copy.deepcopy(net)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        net.train()
        for _ in range(2):
            net.embed(_pictures(16, seed + 10))
    return net.eval()


def test_folding_the_norms_keeps_what_the_network_computes():
    net = _trained_on(_batchnorm_convnext(), 3)
    x = _pictures(8, 1)
    with torch.no_grad():
        before = net(x)
        after = fold_norms(copy.deepcopy(net))(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    folded = fold_norms(copy.deepcopy(net)).backbone.stem[1]
    assert torch.all(folded.weight == 1) and torch.all(folded.running_mean == 0)


@pytest.fixture
def start_and_run(tmp_path):
    start = _batchnorm_convnext()
    _save_checkpoint(start, tmp_path / "start.pt", RENDERER)
    export_checkpoint(
        tmp_path / "start.pt", tmp_path / "start.onnx", "f32", output="posterior", runtime=False
    )
    run = _trained_on(start, 7)
    _save_checkpoint(run, tmp_path / "run.pt", RENDERER)
    return tmp_path, start, run


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_blend_at_either_end_is_that_model(start_and_run, alpha):
    tmp, start, run = start_and_run
    rec = blend_checkpoint(tmp / "start.onnx", tmp / "run.pt", alpha, tmp / "b.pt")
    assert rec["alpha"] == alpha and rec["run"] == str(tmp / "run.pt")
    blended, ckpt = load_checkpoint_model(tmp / "b.pt")
    assert ckpt["state"]["blend"]["start"]["model_id"] and ckpt["optimizer"] is None
    x = _pictures(8, 2)
    with torch.no_grad():
        want = (run if alpha == 1.0 else start).eval()(x)
        torch.testing.assert_close(blended(x), want, atol=2e-4, rtol=2e-4)


def test_a_blend_halfway_lies_between_the_two_models(start_and_run):
    tmp, start, run = start_and_run
    blend_checkpoint(tmp / "start.onnx", tmp / "run.pt", 0.5, tmp / "half.pt")
    half, _ = load_checkpoint_model(tmp / "half.pt")
    x = _pictures(8, 2)
    with torch.no_grad():
        a, b, h = start.eval()(x), run(x), half(x)
    # Not one of its ends, and nearer to each than they are to each other.
    assert (h - a).abs().max() > 1e-3 and (h - b).abs().max() > 1e-3
    assert (h - a).norm() < (b - a).norm() and (h - b).norm() < (b - a).norm()


def test_blend_refuses_an_alpha_outside_zero_to_one_and_a_missing_file(start_and_run, capsys):
    tmp, _, _ = start_and_run
    args = ["--start", str(tmp / "start.onnx"), "--run", str(tmp / "run.pt"), "--out"]
    assert main([*args, str(tmp / "x.pt"), "--alpha", "1.5"]) == 2
    assert "alpha must be in [0, 1]" in capsys.readouterr().err
    missing = ["--start", str(tmp / "nope.onnx"), *args[2:], str(tmp / "x.pt")]
    assert main([*missing, "--alpha", "0.5"]) == 2
    assert "nope.onnx not found" in capsys.readouterr().err
    assert not (tmp / "x.pt").exists()
