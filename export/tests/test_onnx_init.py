"""Training continues from an exported model (``train --init model.onnx``): the weights come back
out of the graph, folded BatchNorms included, and the card says where the run started."""

import shlex

import numpy as np
import pytest
import torch
from test_export import _batchnorm_convnext, _save_checkpoint
from test_train import run

from visualbyte_export.evaluate import (
    OnnxEmbedder,
    _train_commands,
    _training_info,
    read_contract,
)
from visualbyte_export.export_onnx import export_checkpoint
from visualbyte_export.fixture import FIXTURE_SIZE
from visualbyte_export.model import EmbeddingOnly, VisualByteNet
from visualbyte_export.onnx_init import load_onnx_weights, net_from_onnx
from visualbyte_export.train import build_parser

RENDERER = {"placeholder": True, "size": FIXTURE_SIZE}


def _pictures(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, FIXTURE_SIZE, FIXTURE_SIZE, generator=g)
    return (x * torch.rand(n, 3, 1, 1, generator=g) - 0.45) / 0.23


@pytest.mark.parametrize("weights", ["f32", "f16"])
def test_a_model_read_back_from_its_onnx_computes_what_the_onnx_computes(tmp_path, weights):
    net = _batchnorm_convnext()
    _save_checkpoint(net, tmp_path / "bn.pt", RENDERER)
    export_checkpoint(
        tmp_path / "bn.pt", tmp_path / "bn.onnx", weights, output="posterior", runtime=False
    )
    back = net_from_onnx(tmp_path / "bn.onnx", calibration=_pictures(32, 1))
    x = _pictures(6, 2)
    with torch.no_grad():
        got = EmbeddingOnly(back, "posterior").eval()(x).numpy()
        original = EmbeddingOnly(net, "posterior").eval()(x).numpy()
    pixels = np.random.default_rng(3).integers(0, 256, (6, FIXTURE_SIZE, FIXTURE_SIZE, 3))
    pixels = pixels.astype(np.uint8)
    onnx_out = OnnxEmbedder(tmp_path / "bn.onnx")(pixels)
    from visualbyte_export.model import pixels_to_input

    with torch.no_grad():
        same = EmbeddingOnly(back, "posterior").eval()(pixels_to_input(torch.from_numpy(pixels)))
    assert np.abs(same.numpy() - onnx_out).max() <= 1e-5
    # f16 weights change the function a little; f32 ones not at all.
    assert np.abs(got - original).max() <= (1e-5 if weights == "f32" else 2e-2)
    assert np.abs(original - original[0]).max() > 1e-3  # the inputs give different answers


def test_unfolded_norms_give_their_input_back_in_train_mode_on_the_calibration_batch(tmp_path):
    net = _batchnorm_convnext()
    _save_checkpoint(net, tmp_path / "bn.pt", RENDERER)
    export_checkpoint(tmp_path / "bn.pt", tmp_path / "bn.onnx", runtime=False)
    calib = _pictures(32, 1)
    back = net_from_onnx(tmp_path / "bn.onnx", calibration=calib)
    # An embedding-output graph has no classifier: it keeps its fresh weights, the rest is read.
    fresh = VisualByteNet(
        "convnext_atto", 6, net.embed_dim, net.backbone_kwargs, input_norm="per_image"
    )
    loaded = load_onnx_weights(fresh, tmp_path / "bn.onnx")
    assert "classifier.weight" not in loaded and "backbone.stem.0.weight" in loaded
    norms = [n for n, m in back.backbone.named_modules() if n.endswith("norm") and "stages" in n]
    norms.append("stem.1")
    pairs = {}

    def hook(name):
        return lambda _m, i, o: pairs.__setitem__(name, (i[0], o))

    hooks = [back.backbone.get_submodule(n).register_forward_hook(hook(n)) for n in norms]
    back.train()
    with torch.no_grad():
        back.embed(calib)
    for h in hooks:
        h.remove()
    assert len(pairs) == len(norms) >= 5
    for name, (i, o) in pairs.items():
        assert torch.allclose(i, o, atol=1e-3, rtol=1e-3), name
    # Without calibration they are identities in eval mode only: train mode renormalises.
    plain = net_from_onnx(tmp_path / "bn.onnx")
    stem = plain.backbone.stem
    plain.train()
    with torch.no_grad():
        y = stem[0](plain.standardise(calib))
        assert not torch.allclose(stem[1](y), y, atol=1e-2)


def test_an_onnx_of_another_network_is_refused_with_what_differs(tmp_path):
    net = _batchnorm_convnext()
    _save_checkpoint(net, tmp_path / "bn.pt", RENDERER)
    export_checkpoint(tmp_path / "bn.pt", tmp_path / "bn.onnx", runtime=False)
    other = VisualByteNet(
        "convnext_atto", 7, net.embed_dim, net.backbone_kwargs, input_norm="per_image"
    )
    with pytest.raises(ValueError, match="num_classes 6 there, 7 here"):
        load_onnx_weights(other, tmp_path / "bn.onnx")


def test_training_continues_from_an_exported_model_and_the_card_says_from_which(dataset, tmp_path):
    assert run(dataset, tmp_path / "a", "--max-steps", "2", "--no-eval") == 0
    export_checkpoint(
        tmp_path / "a" / "last.pt", tmp_path / "a.onnx", "f16", output="posterior", runtime=False
    )
    contract = read_contract(tmp_path / "a.onnx")
    # Another seed (other random weights) and learning rates of zero: what the run ends with is
    # what it started from.
    quick = ("--max-steps", "1", "--no-eval", "--seed", "1", "--lr-backbone", "0", "--lr-head", "0")
    assert run(dataset, tmp_path / "b", *quick, "--init", str(tmp_path / "a.onnx")) == 0
    ck = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    assert ck["state"]["init_model"]["model_id"] == contract["model_id"]
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model"]
    for w in ("backbone.stages.0.blocks.0.mlp.fc1.weight", "classifier.weight"):
        assert torch.allclose(ck["model"][w], a[w], atol=2e-3, rtol=2e-3), w
    export_checkpoint(
        tmp_path / "b" / "last.pt", tmp_path / "b.onnx", output="posterior", runtime=False
    )
    info = _training_info(tmp_path / "b.onnx", tmp_path / "b" / "last.pt")
    text = _train_commands(info["args"], info["init_recipe"], "/d", info.get("init_model"))
    lines = text.replace("\\\n", " ").splitlines()
    assert any(f"-S {contract['model_id']} -- models/MODEL_CARD.md" in x for x in lines)
    last = build_parser().parse_args(shlex.split(lines[-1])[4:])
    assert str(last.init) == f"/tmp/{contract['model_id']}.onnx"


def test_a_run_continuing_one_that_started_from_an_exported_model_keeps_that_start_in_its_card(
    dataset, tmp_path
):
    # What broke: only the run started with --init MODEL.onnx recorded the model; runs that
    # continued it lost it, so their card's chain began with a train from random weights.
    assert run(dataset, tmp_path / "a", "--max-steps", "1", "--no-eval") == 0
    export_checkpoint(tmp_path / "a" / "last.pt", tmp_path / "a.onnx", runtime=False)
    mid = read_contract(tmp_path / "a.onnx")["model_id"]
    quick = ("--max-steps", "1", "--no-eval", "--lr-backbone", "0", "--lr-head", "0")
    assert run(dataset, tmp_path / "b", *quick, "--init", str(tmp_path / "a.onnx")) == 0
    assert run(dataset, tmp_path / "c", *quick, "--init", str(tmp_path / "b" / "last.pt")) == 0
    ck = torch.load(tmp_path / "c" / "last.pt", weights_only=False)
    assert ck["state"]["init_model"]["model_id"] == mid
    export_checkpoint(tmp_path / "c" / "last.pt", tmp_path / "c.onnx", runtime=False)

    def commands(checkpoint):
        info = _training_info(tmp_path / "c.onnx", checkpoint)
        text = _train_commands(info["args"], info["init_recipe"], "/d", info.get("init_model"))
        trains = [
            x for x in text.replace("\\\n", " ").splitlines() if "visualbyte_export train" in x
        ]
        return [build_parser().parse_args(shlex.split(x)[4:]) for x in trains]

    first, second = commands(tmp_path / "c" / "last.pt")
    assert str(first.init) == f"/tmp/{mid}.onnx"
    assert str(second.init).endswith("default-stage1/last.pt")
    # A checkpoint saved before runs passed the model on: read from its oldest run's --init file.
    del ck["state"]["init_model"]
    torch.save(ck, tmp_path / "old.pt")
    assert str(commands(tmp_path / "old.pt")[0].init) == f"/tmp/{mid}.onnx"


def test_a_checkpoint_given_to_init_is_read_from_disk_once(dataset, tmp_path, monkeypatch):
    # What broke: train read an --init checkpoint twice at start-up, once for its weights and
    # again for the recipe of the runs behind it.
    assert run(dataset, tmp_path / "a", "--max-steps", "1", "--no-eval") == 0
    parent = tmp_path / "a" / "last.pt"
    reads = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        reads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    quick = ("--max-steps", "1", "--no-eval", "--lr-backbone", "0", "--lr-head", "0")
    assert run(dataset, tmp_path / "b", *quick, "--init", str(parent)) == 0
    assert reads.count(str(parent)) == 1
    monkeypatch.undo()
    ck = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    assert [r["run_dir"] for r in ck["state"]["init_recipe"]] == [str(tmp_path / "a")]
