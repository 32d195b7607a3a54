"""Two-process DistributedDataParallel on CPU (gloo) through torchrun, with a tiny model."""

import os
import subprocess
import sys

import torch

from visualbyte_export import train
from visualbyte_export.fixture import tiny_train_args

EXPORT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [*tiny_train_args(1), "--aug", "0"]


def launch(nproc, *args):
    env = dict(
        os.environ,
        PYTHONPATH=EXPORT_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "visualbyte_export",
        "train",
        *args,
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def test_two_ranks_train_with_the_single_process_gradient_and_checkpoint(dataset, tmp_path):
    common = ["--data", str(dataset), *TINY, "--no-eval"]
    # The reference: one process on the whole batch (in this process).
    assert train.main([*common, "--run-dir", str(tmp_path / "one"), "--max-steps", "1",
                       "--dump-grads", str(tmp_path / "one.pt")]) == 0  # fmt: skip
    res = launch(2, *common, "--run-dir", str(tmp_path / "two"), "--max-steps", "2",
                 "--dump-grads", str(tmp_path / "two.pt"))  # fmt: skip
    assert "2 rank(s)" in res.stdout
    assert torch.load(tmp_path / "two" / "last.pt", weights_only=False)["state"]["step"] == 2
    one = torch.load(tmp_path / "one.pt")
    two = torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and "logit_scale" in one
    for k in one:
        tol = 1e-4 * max(1.0, one[k].abs().max().item())
        assert torch.allclose(one[k], two[k], atol=tol, rtol=1e-3), (
            k,
            (one[k] - two[k]).abs().max(),
        )
