"""Lay out the default image memory in models/memory/<label>/: one Google-style emoji per emoji
class (Apache-2.0, from the npm package emoji-datasource-google) and two Fashion-MNIST test
photographs per clothing class (MIT, Debian's dataset-fashion-mnist). The index over it is built by
the runtime:

    python scripts/make_memory.py --data /var/cache/visualbyte/data/ds96 \
        --google /var/cache/visualbyte/data/downloads/emoji-datasource-google-16.0.0.tgz
    cargo run -p visualbyte -- index build models/memory -o models/memory.vbi \
        --model models/visualbyte.onnx
"""

import argparse
import gzip
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

FASHION = Path("/usr/share/datasets/fashion-mnist")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", type=Path, required=True, help="dataset folder (meta.json, *_rows.jsonl)"
    )
    ap.add_argument("--google", type=Path, required=True, help="emoji-datasource-google .tgz")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "models/memory"
    )
    ap.add_argument("--photos-per-class", type=int, default=2)
    args = ap.parse_args()

    meta = json.loads((args.data / "meta.json").read_text())
    classes = {c["id"]: c for c in meta["classes"]}
    if args.out.exists():
        shutil.rmtree(args.out)
    codes: dict[int, str] = {}
    with (args.data / "train_image_rows.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            if (
                row["source"] == "emoji"
                and row["style"] == "google"
                and not row["aug"]
                and not row["tone"]
            ):
                codes.setdefault(row["y"], row["code"].lower())
    with tarfile.open(args.google) as tar:
        for y, code in sorted(codes.items()):
            label = classes[y]["en"]
            member = tar.extractfile(f"package/img/google/64/{code}.png")
            if member is None:
                raise SystemExit(f"no google emoji {code} for {label}")
            dest = args.out / label / f"google-{code}.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(member.read())
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    fashion = [c for c in meta["classes"] if c["group"] == "fashion"]
    for k, c in enumerate(fashion):
        # The last rows of t10k of each class.
        idx = np.nonzero(labels == k)[0][-args.photos_per_class :]
        for i in idx:
            dest = args.out / c["en"] / f"fashion-mnist-t10k-{i}.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(dest)  # as the training data shows them
    n = sum(1 for _ in args.out.rglob("*.png"))
    labels = len({p.parent for p in args.out.rglob("*.png")})
    print(f"{n} pictures in {labels} labels under {args.out}")


if __name__ == "__main__":
    main()
