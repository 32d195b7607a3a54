"""``python -m visualbyte_export fixture --out tests/fixtures/tiny.onnx``: a tiny model for the
runtime's tests.

A seeded, randomly initialised timm ConvNeXt (depths 1,1,1,1, dims 8,16,32,64) with the shipped
projector,
input 32 px, embedding 32-d: the same op set and the full metadata contract as the real model, in a
few KB.
Its renderer section is what ``visualbyte render config --size 32`` prints (``--renderer-json``
stands in
where the binary is not built yet). Next to it, ``<out>.io.npz`` holds golden inputs and outputs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from .export_onnx import finalize, parity, renderer_config, torch_to_onnx
from .model import VisualByteNet

FIXTURE_SIZE = 32
FIXTURE_DIM = 32
FIXTURE_BACKBONE = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]}


def tiny_train_args(threads: int) -> list[str]:
    """``train`` flags for a tiny model that trains in seconds (the tests' runs)."""
    return [
        *("--arch", "convnext_atto", "--backbone-kwargs", json.dumps(FIXTURE_BACKBONE)),
        *("--embed-dim", "16", "--batch-classes", "4", "--warmup-steps", "2"),
        *("--no-progress", "--threads", str(threads)),
    ]


# The shipped family: the atto..nano ConvNeXts use 1x1 convolutions in their blocks, tiny uses
# linear layers.
FIXTURE_ARCH = "convnext_atto"


def build_fixture_net(arch: str = FIXTURE_ARCH, seed: int = 0) -> VisualByteNet:
    torch.manual_seed(seed)
    net = VisualByteNet(
        arch, num_classes=0, embed_dim=FIXTURE_DIM, backbone_kwargs=FIXTURE_BACKBONE
    )
    # Trained-looking normalisation statistics, so the golden outputs exercise every op.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in net.projector if isinstance(m, torch.nn.BatchNorm1d)):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if bn.affine:
                bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
                bn.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return net.eval()


def write_fixture(
    out: Path,
    renderer: dict,
    arch: str = FIXTURE_ARCH,
    seed: int = 0,
    threshold: float | None = 0.5,
) -> dict:
    net = build_fixture_net(arch, seed)
    torch_to_onnx(net, FIXTURE_SIZE, out)
    contract = finalize(out, arch, FIXTURE_SIZE, FIXTURE_DIM, renderer, threshold)
    # Golden I/O: uint8 pixels in, the embedding torch computes out (the runtime must match
    # within 1e-4).
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(3, FIXTURE_SIZE, FIXTURE_SIZE, 3), dtype=np.uint8)
    pixels[1] = 255  # a blank white page
    pixels[2, :, :, :] = np.linspace(0, 255, FIXTURE_SIZE, dtype=np.uint8)[None, :, None]
    from .embedders import normalise_pixels
    from .model import EmbeddingOnly

    with torch.no_grad():
        emb = EmbeddingOnly(net)(torch.from_numpy(normalise_pixels(pixels))).numpy()
    pixels.tofile(str(out) + ".in.u8")
    emb.astype("<f4").tofile(str(out) + ".out.f32")
    return contract


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="visualbyte_export fixture", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", type=Path, default=Path("tests/fixtures/tiny.onnx"))
    p.add_argument(
        "--renderer-json", type=Path, help="renderer settings when the runtime binary is not built"
    )
    p.add_argument("--arch", default=FIXTURE_ARCH)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    renderer = renderer_config(FIXTURE_SIZE, args.renderer_json)
    contract = write_fixture(args.out, renderer, args.arch, args.seed)
    net = build_fixture_net(args.arch, args.seed)
    report = parity(
        net, args.out, np.fromfile(str(args.out) + ".in.u8", np.uint8).reshape(-1, 32, 32, 3)
    )
    print(
        json.dumps(
            {
                "out": str(args.out),
                "bytes": args.out.stat().st_size,
                "model_id": contract["model_id"],
                "parity": report,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def write_synthetic_dataset(
    root: Path,
    num_classes: int = 6,
    per_class: int = 4,
    size: int = 32,
    seed: int = 0,
    renderer: dict | None = None,
) -> Path:
    """A tiny dataset in the builder's format (meta.json + ``{split}_{modality}[_y].npy`` +
    ``other_{text,audio}*`` + ``neg_*`` + ``unknown_*``).

    Each class gets a colour (images), a stripe period (text) and a band of rows (audio), so a
    few steps of
    training move the numbers; used by the tests only.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(num_classes, 3))
    yy, xx = np.mgrid[0:size, 0:size]

    def sample(modality: str, c: int) -> np.ndarray:
        if modality == "image":
            img = np.full((size, size, 3), 255.0)
            cy, cx = rng.integers(size // 4, 3 * size // 4, size=2)
            r = rng.integers(size // 6, size // 3)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = colours[c]
        elif modality == "text":
            period = 2 + c
            img = np.full((size, size, 3), 255.0)
            band = (yy > size // 3) & (yy < 2 * size // 3) & ((xx // period) % 2 == 0)
            img[band] = 0
        else:
            img = np.zeros((size, size, 3))
            row = int((c + 0.5) * size / max(num_classes, 1))
            img[max(0, row - 2) : row + 2, :] = 200
        img += rng.normal(0, 12, size=img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)

    for split, n in (("train", per_class), ("eval", max(1, per_class // 2))):
        for m in ("image", "text", "audio"):
            ys = np.repeat(np.arange(num_classes), n)
            np.save(root / f"{split}_{m}.npy", np.stack([sample(m, int(c)) for c in ys]))
            np.save(root / f"{split}_{m}_y.npy", ys.astype(np.int64))
    for m in ("text", "audio"):
        neg = np.clip(rng.normal(128, 60, size=(4, size, size, 3)), 0, 255).astype(np.uint8)
        np.save(root / f"neg_{m}.npy", neg)
    # Questions "in other fonts" and "spoken by other synthesizers": two of each taking turns.
    ys = np.arange(num_classes).repeat(2)
    for m, key, names in (
        ("text", "font", ("LiberationSans", "NotoSerif")),
        ("audio", "voice", ("flite:slt", "festival:kal_diphone")),
    ):
        np.save(root / f"other_{m}.npy", np.stack([sample(m, int(c)) for c in ys]))
        np.save(root / f"other_{m}_y.npy", ys.astype(np.int64))
        rows = [{"y": int(c), key: names[i % 2], "lang": "en"} for i, c in enumerate(ys)]
        (root / f"other_{m}_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Questions about words that are not classes (``train --unknown-weight``): speckle, with an
    # rng of its own so the arrays above stay as they were.
    unk_rng = np.random.default_rng([seed, 1])
    for m in ("text", "audio"):
        unk = unk_rng.normal(128, 60, size=(6, size, size, 3))
        np.save(root / f"unknown_{m}.npy", np.clip(unk, 0, 255).astype(np.uint8))
    meta = {
        "seed": seed,
        "size": size,
        "renderer": renderer or {"placeholder": True, "size": size},
        "classes": [
            {"id": c, "en": f"class{c}", "ko": f"부류{c}", "group": "synthetic"}
            for c in range(num_classes)
        ],
        "splits": {"train": "synthetic", "eval": "synthetic"},
    }
    (root / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
    return root
