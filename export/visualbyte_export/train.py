"""``python -m visualbyte_export train``: train VisualByteNet on a rendered dataset.

Single process (CPU or one GPU) or ``torchrun --nproc_per_node N -m visualbyte_export train ...``
(DistributedDataParallel: gloo on CPU, nccl on GPU). Checkpoints are written to a temporary file and
renamed,
so a run killed at any moment resumes from its last checkpoint: run the same command again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from . import anchoring, speech_mix

# Augmentation, dataset loading, checkpoints and the training-time network wrapper live in their
# own modules; the names tests and older callers import from here are re-exported.
from .augment import _affine as _affine
from .augment import _blur as _blur
from .augment import _stroke_weight as _stroke_weight
from .augment import _style as _style
from .augment import _u as _u
from .augment import _voice as _voice
from .augment import augment as augment
from .augment import to_input
from .checkpoints import DEFAULT_RUNS, atomic_save, chain_init_model, checkpoint_recipe
from .checkpoints import init_recipe as init_recipe
from .embedders import embed_arrays
from .losses import LossWeights, curriculum_weights, unknown_loss, visualbyte_loss
from .metrics import recall_at_k
from .model import INPUT_NORMS, VisualByteNet, load_init_weights, pixels_to_input
from .onnx_init import load_onnx_weights, onnx_model_info
from .rendered import UNKNOWN_MODALITIES as UNKNOWN_MODALITIES
from .rendered import RenderedSplit, gather_rows, load_meta, load_unknown, unknown_rows
from .sampler import ClassBalancedTripleSampler
from .splits import MODALITIES
from .train_net import GlobalBatchNorm1d, TrainForward, lr_factor, param_groups, teacher_loss


# -------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visualbyte_export train", description=__doc__.splitlines()[0])
    _add_model_args(p)
    _add_schedule_args(p)
    _add_loss_args(p)
    _add_augmentation_args(p)
    _add_extra_training_args(p)
    _add_run_control_args(p)
    return p


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """The dataset, the run's name and directory, the network and the weights it starts from."""
    p.add_argument("--data", required=True, type=Path, help="dataset directory (meta.json + *.npy)")
    p.add_argument(
        "--name", default="default", help="run name: checkpoints in /var/cache/visualbyte/runs/NAME"
    )
    p.add_argument("--run-dir", type=Path, help="explicit run directory (overrides --name)")
    p.add_argument(
        "--arch", default="convnext_tiny", help="any timm convnext (atto/femto/pico/nano/tiny)"
    )
    p.add_argument("--size", type=int, help="input size; must equal the dataset's rendered size")
    p.add_argument("--embed-dim", type=int, default=512)
    p.add_argument(
        "--backbone-kwargs", default="{}", help="JSON overrides for timm (tests: depths, dims)"
    )
    p.add_argument(
        "--init",
        type=Path,
        help="start from these weights: a checkpoint (ours or a timm state dict) or an exported "
        "VisualByte ONNX model such as models/visualbyte.onnx (same architecture)",
    )


def _add_schedule_args(p: argparse.ArgumentParser) -> None:
    """Epochs, batch, learning rates, warm-up and weight decay."""
    p.add_argument("--epochs", type=float, default=30)
    p.add_argument(
        "--steps-per-epoch", type=int, help="default: ceil(train images / batch classes)"
    )
    p.add_argument(
        "--batch-classes", type=int, default=32, help="distinct classes per global batch"
    )
    p.add_argument("--lr-backbone", type=float, default=2e-3)
    p.add_argument("--lr-head", type=float, default=4e-3)
    p.add_argument(
        "--lr-floor", type=float, default=0.01, help="final lr as a fraction of the peak"
    )
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.05)


def _add_loss_args(p: argparse.ArgumentParser) -> None:
    """The weights of the loss terms and the classification-led curriculum."""
    p.add_argument("--audio-lambda", type=float, default=1.0, help="λ of the audio CLIP terms")
    p.add_argument(
        "--no-ce-audio", action="store_true", help="leave audio out of the classification loss"
    )
    p.add_argument(
        "--curriculum-epochs",
        type=float,
        default=0.0,
        help="classification-led epochs: alignment weight ramps from --align-start to 1",
    )
    p.add_argument(
        "--ce-weights",
        default="1,1,1",
        help="relative cross-entropy weights image,text,audio (the easy photos need less)",
    )
    p.add_argument("--align-start", type=float, default=0.1)
    p.add_argument(
        "--align-delay",
        type=float,
        default=0.0,
        help="epochs of classification only before the CLIP terms start to ramp in",
    )


def _add_augmentation_args(p: argparse.ArgumentParser) -> None:
    """Train-time augmentation of photos, text and speech."""
    p.add_argument(
        "--aug",
        type=float,
        default=1.0,
        help="train-time augmentation strength (0 = off): photos crop, mirror and colour; text "
        "zoom, move, rotate, slant and stroke weight; speech time stretch, shift and masks",
    )
    p.add_argument(
        "--aug-style",
        type=float,
        default=0.0,
        help="drawing-style augmentation of photos (blur, gamma, colour cast, grey; 0 = off), "
        "for held-out emoji styles",
    )
    p.add_argument(
        "--aug-voice",
        type=float,
        default=0.0,
        help="other-speaker augmentation of speech pictures (frequency-axis warp, tempo, EQ, "
        "smoothing across frequency; 0 = off), for voices and synthesizers never heard",
    )


def _add_extra_training_args(p: argparse.ArgumentParser) -> None:
    """Non-class questions, the picture teacher, the training photos, drop path, input norm."""
    p.add_argument(
        "--unknown-weight",
        type=float,
        default=0.0,
        help="weight of the loss that spreads the class posterior evenly over questions about "
        "words that are not classes (the dataset's unknown_text/unknown_audio.npy), so the "
        "model is unsure of what it has never seen (0 = off)",
    )
    p.add_argument(
        "--unknown-per-batch",
        type=int,
        default=8,
        help="non-class typed and spoken questions each, per step and rank, with --unknown-weight",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=0.0,
        help="weight of distilling the picture teacher (EfficientNet-lite0, ImageNet) into the "
        "picture rows: a training-only head predicts its features (`teacher` writes them) from "
        "the backbone's; 0 = off",
    )
    p.add_argument(
        "--lr-teacher-head",
        type=float,
        default=1e-3,
        help="learning rate of the teacher head (new at every run, so faster than --lr-head)",
    )
    p.add_argument(
        "--no-photos",
        action="store_true",
        help="leave the dataset's training photographs and clip art (train_photo.npy) out",
    )
    speech_mix.add_args(p)
    anchoring.add_args(p)
    p.add_argument("--drop-path", type=float, default=0.0)
    p.add_argument(
        "--input-norm",
        choices=INPUT_NORMS,
        default="none",
        help="per_image: standardise each picture inside the network (mixed-modality batches)",
    )


def _add_run_control_args(p: argparse.ArgumentParser) -> None:
    """Seed, threads and device; checkpoints, evaluation, budgets and stops; benchmarking."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument(
        "--ckpt-minutes", type=float, default=5.0, help="write last.pt at least this often"
    )
    p.add_argument(
        "--eval-limit", type=int, default=1000, help="eval queries per modality after each epoch"
    )
    p.add_argument("--no-eval", action="store_true")
    p.add_argument(
        "--budget-minutes",
        type=float,
        help="training time budget over all resumes: the cosine schedule ends when it is spent",
    )
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this long")
    p.add_argument(
        "--max-steps", type=int, help="stop (with a checkpoint) after this many steps in total"
    )
    p.add_argument(
        "--bench-steps", type=int, help="time this many steps after 2 warm-up ones, print, exit"
    )
    p.add_argument(
        "--no-resume", action="store_true", help="ignore an existing last.pt (starts over)"
    )
    p.add_argument("--no-progress", action="store_true")
    # Tests: the gradients of this process's first step (after DDP's all-reduce) go to this file.
    p.add_argument("--dump-grads", type=Path, help=argparse.SUPPRESS)


# -------------------------------------------------------------------------------- ranks, quick eval
def _dist_setup(device_arg: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_arg == "auto" else device_arg.startswith("cuda")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return world, rank, device


def quick_eval(net: VisualByteNet, ev: RenderedSplit, device, limit: int, batch: int = 128) -> dict:
    net.eval()
    rng = np.random.default_rng(0)
    emb, ys = {}, {}
    for m in MODALITIES:
        n = len(ev.y[m])
        idx = np.sort(rng.choice(n, size=min(n, limit), replace=False))
        emb[m] = embed_arrays(lambda x: net.embed(x), ev.x[m], idx, device, batch)
        ys[m] = ev.y[m][idx]
    out = {}
    for m in MODALITIES:
        r = recall_at_k(
            emb[m], ys[m], emb["image"], ys["image"], (1, 5), exclude_self=(m == "image")
        )
        out[f"{m}_r1"], out[f"{m}_r5"] = r[1], r[5]
    out["mean_r1"] = float(np.mean([out[f"{m}_r1"] for m in MODALITIES]))
    for name, (x, y) in ev.other.items():  # reported, not part of mean_r1 (which picks best.pt)
        idx = np.sort(rng.choice(len(y), size=min(len(y), limit), replace=False))
        q = embed_arrays(lambda t: net.embed(t), x, idx, device, batch)
        r = recall_at_k(q, y[idx], emb["image"], ys["image"], (1, 5))
        out[f"{name}_r1"], out[f"{name}_r5"] = r[1], r[5]
    net.train()
    return out


# -------------------------------------------------------------------------------- the run
@dataclass
class TrainRun:
    """What one run's setup made and its steps share: the data, the network and optimizer, the
    sampler, the state a checkpoint keeps, and the progress bar."""

    args: argparse.Namespace
    world: int
    rank: int
    device: torch.device
    log: Callable
    meta: dict
    train: RenderedSplit
    unknown: dict[str, np.ndarray]
    run_dir: Path
    net: VisualByteNet
    forward: TrainForward
    opt: torch.optim.Optimizer
    sampler: ClassBalancedTripleSampler
    steps_per_epoch: int
    total_steps: int
    state: dict
    module: nn.Module | None = None
    anchor: anchoring.Anchor | None = None
    evset: RenderedSplit | None = None
    weights: LossWeights | None = None
    pbar: object = None
    t_start: float = 0.0
    first_step: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def checkpoint(self, kind: str = "last") -> None:
        """Write ``{kind}.pt`` (model, optimizer, state, recipe) on the main rank."""
        if not self.is_main:
            return
        args, meta, forward = self.args, self.meta, self.forward
        ckpt = {
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "teacher_head": forward.teacher_head.state_dict()
            if forward.teacher_head is not None
            else None,
            "state": self.state,
            "model_config": self.net.config(),
            "size": self.train.size,
            "args": {k: str(v) for k, v in vars(args).items()},
            "classes": meta["classes"],
            "renderer": meta.get("renderer"),
            "dataset": str(args.data),
            "dataset_seed": meta.get("seed"),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_save(ckpt, self.run_dir / f"{kind}.pt")

    def progress(self) -> float:
        """The fraction of the run done: of its steps, or of its time budget when that is more."""
        budget_s = 60 * self.args.budget_minutes if self.args.budget_minutes else None
        p = self.state["step"] / self.total_steps
        return max(p, self.state["train_seconds"] / budget_s) if budget_s else p

    def evaluate_and_keep_best(self) -> None:
        """Measure on the eval subset, log it, and write best.pt when it is the best so far."""
        if self.evset is None:
            return
        state = self.state
        metrics = quick_eval(self.net, self.evset, self.device, self.args.eval_limit)
        metrics.update(step=state["step"], epoch=state["step"] / self.steps_per_epoch)
        state["history"].append(metrics)
        self.log(
            json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
        )
        with open(self.run_dir / "eval_log.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        if metrics["mean_r1"] > state["best"]:
            state["best"] = metrics["mean_r1"]
            self.checkpoint("best")


def _load_training_data(
    args: argparse.Namespace, is_main: bool
) -> tuple[dict, RenderedSplit, dict[str, np.ndarray], Path]:
    """meta.json, the train split (with photos and teacher features as asked), the non-class
    questions and the run directory (made on the main rank), after checking the flags."""
    meta = load_meta(args.data)
    if args.teacher_weight < 0:
        raise SystemExit(f"--teacher-weight {args.teacher_weight}: 0 (off) or positive")
    train = RenderedSplit(
        args.data, "train", photos=not args.no_photos, teacher=args.teacher_weight > 0
    )
    size = train.size
    if args.size and args.size != size:
        raise SystemExit(
            f"--size {args.size} but {args.data} is rendered at {size} px: render it at {args.size}"
        )
    if args.unknown_weight < 0 or (args.unknown_weight > 0 and args.unknown_per_batch < 1):
        raise SystemExit(
            f"--unknown-weight {args.unknown_weight} with --unknown-per-batch "
            f"{args.unknown_per_batch}: the weight must be 0 (off) or positive, with at least 1 "
            "non-class question per batch"
        )
    unknown = load_unknown(args.data) if args.unknown_weight > 0 else {}
    run_dir = args.run_dir or (DEFAULT_RUNS / args.name)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    return meta, train, unknown, run_dir


def _build_model(
    args: argparse.Namespace, train: RenderedSplit, num_classes: int, device
) -> tuple[VisualByteNet, TrainForward, torch.optim.Optimizer]:
    """The network (seeded), its training forward (with the teacher head) and the optimizer."""
    torch.manual_seed(args.seed)
    backbone_kwargs = json.loads(args.backbone_kwargs)
    net = VisualByteNet(
        args.arch, num_classes, args.embed_dim, backbone_kwargs, args.drop_path, args.input_norm
    ).to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    forward = TrainForward(net, train.teacher.shape[1] if train.teacher is not None else 0)
    forward.to(device)
    groups = param_groups(net, args.lr_backbone, args.lr_head, args.weight_decay)
    if forward.teacher_head is not None:
        head = list(forward.teacher_head.parameters())
        lr = args.lr_teacher_head
        groups.append({"params": head, "lr": lr, "base_lr": lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98))
    return net, forward, opt


def calibration_batch(train: RenderedSplit, sampler: ClassBalancedTripleSampler) -> torch.Tensor:
    """Two class-balanced batches of triples (64 classes' image, text and audio rows), normalised
    as the network sees them."""
    rows = np.concatenate(sampler.global_batches(0)[:2])
    return torch.cat(
        [pixels_to_input(gather_rows(train.x[m], rows[:, 1 + i])) for i, m in enumerate(MODALITIES)]
    )


def _resume_or_init(run: TrainRun) -> None:
    """Resume from the run's last.pt, or start from ``--init`` (a checkpoint or an ONNX model)."""
    args, net, forward, log = run.args, run.net, run.forward, run.log
    last = run.run_dir / "last.pt"
    if last.exists() and not args.no_resume and not args.bench_steps:
        ckpt = torch.load(last, map_location=run.device, weights_only=False)
        net.load_state_dict(ckpt["model"])
        if forward.teacher_head is not None:
            forward.teacher_head.load_state_dict(ckpt["teacher_head"])
        run.opt.load_state_dict(ckpt["optimizer"])
        run.state = ckpt["state"]
        run.state.setdefault("train_seconds", 0.0)
        log(f"resumed {last} at step {run.state['step']} / {run.total_steps}")
    elif args.init:
        if not args.init.exists():
            raise SystemExit(f"--init {args.init} does not exist")
        if args.init.suffix == ".onnx":
            # A shipped model: its weights, and the BatchNorms the exporter folded set from the
            # statistics of one class-balanced batch of every modality.
            calib = calibration_batch(run.train, run.sampler).to(run.device)
            loaded = load_onnx_weights(net, args.init, calib)
            log(f"--init {args.init}: {len(loaded)} tensors from the ONNX graph")
            run.state["init_model"] = onnx_model_info(args.init)
            run.state["init_recipe"] = []
        else:
            # Read once: its weights, the recipe of every run this one continues (oldest
            # first) and the exported model the first of them started from, so the model card
            # can print the whole chain of commands that re-creates the model.
            parent = torch.load(args.init, map_location="cpu", weights_only=False)
            loaded, skipped = load_init_weights(net, parent)
            log(f"--init {args.init}: {len(loaded)} tensors loaded, {len(skipped)} skipped")
            run.state["init_recipe"] = checkpoint_recipe(parent)
            root = chain_init_model(parent, run.state["init_recipe"])
            if root:
                run.state["init_model"] = root


def _rank_module(run: TrainRun) -> nn.Module:
    """The module the steps call: the training forward, wrapped in DDP over several ranks."""
    module = run.forward
    if run.world > 1:
        # Batch statistics over the global batch, so N ranks train exactly like one process.
        for bn in run.net.projector:
            if isinstance(bn, nn.BatchNorm1d):
                bn.__class__ = GlobalBatchNorm1d
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=[run.device.index] if run.device.type == "cuda" else None
        )
    return module


def _loss_weights(args: argparse.Namespace) -> LossWeights:
    """The loss weights of the flags (``--ce-weights`` checked)."""
    try:
        ce_modality = tuple(float(v) for v in args.ce_weights.split(","))
    except ValueError:
        ce_modality = ()
    if len(ce_modality) != 3 or min(ce_modality) < 0 or sum(ce_modality) <= 0:
        raise SystemExit(
            f"--ce-weights {args.ce_weights!r}: three non-negative numbers, e.g. 1,2,1"
        )
    return LossWeights(
        audio_lambda=args.audio_lambda, ce_audio=not args.no_ce_audio, ce_modality=ce_modality
    )


def setup_run(args: argparse.Namespace, world: int, rank: int, device) -> TrainRun:
    """Everything before the first step: data, network, optimizer, sampler, resume or ``--init``,
    DDP, the eval split, the loss weights; then the run's first line and the progress bar."""
    is_main = rank == 0
    log = print if is_main else (lambda *a, **k: None)
    meta, train, unknown, run_dir = _load_training_data(args, is_main)
    num_classes = len(meta["classes"])
    net, forward, opt = _build_model(args, train, num_classes, device)
    mix = speech_mix.for_run(args, train.y["audio"], log)
    sampler = ClassBalancedTripleSampler(
        train.y["image"],
        train.y["text"],
        mix.labels,
        args.batch_classes,
        num_classes=num_classes,
        steps_per_epoch=args.steps_per_epoch,
        seed=args.seed,
        rank=rank,
        world_size=world,
        audio_groups=mix.groups,
        audio_group_shares=mix.shares,
    )
    steps_per_epoch = len(sampler)
    run = TrainRun(
        args=args,
        world=world,
        rank=rank,
        device=device,
        log=log,
        meta=meta,
        train=train,
        unknown=unknown,
        run_dir=run_dir,
        net=net,
        forward=forward,
        opt=opt,
        sampler=sampler,
        steps_per_epoch=steps_per_epoch,
        total_steps=max(1, int(round(args.epochs * steps_per_epoch))),
        state={"step": 0, "best": -1.0, "history": [], "train_seconds": 0.0},
    )
    _resume_or_init(run)
    run.anchor = anchoring.for_run(args, run.net, run.state)
    run.module = _rank_module(run)
    if (
        is_main
        and not args.no_eval
        and not args.bench_steps
        and (args.data / "eval_image.npy").exists()
    ):
        run.evset = RenderedSplit(args.data, "eval")
    run.weights = _loss_weights(args)
    log(
        f"{args.arch} {train.size}px, {num_classes} classes, global batch "
        f"{sampler.batch_classes} triples on {world} rank(s), {steps_per_epoch} steps/epoch, "
        f"{run.total_steps} steps, device {device}, run {run_dir}"
    )
    run.t_start = time.time()
    run.first_step = run.state["step"]
    net.train()
    if is_main and not args.no_progress:
        from tqdm import tqdm

        run.pbar = tqdm(
            total=run.total_steps, initial=run.state["step"], dynamic_ncols=True, file=sys.stderr
        )
    return run


# -------------------------------------------------------------------------------- one step
def _batch_input(run: TrainRun, rows: np.ndarray, step: int) -> tuple[torch.Tensor, int]:
    """The step's (augmented, normalised) input: each modality's rows of the batch, then the
    non-class questions; and how many rows are of the batch's classes."""
    args, device, train = run.args, run.device, run.train
    x = torch.cat(
        [
            to_input(
                gather_rows(train.x[m], rows[:, 1 + i]),
                m,
                args.aug,
                device,
                args.aug_style,
                args.aug_voice,
            )
            for i, m in enumerate(MODALITIES)
        ]
    )
    n_known = x.shape[0]
    if run.unknown:
        x = torch.cat(
            [x]
            + [
                to_input(
                    gather_rows(
                        arr,
                        unknown_rows(len(arr), args.unknown_per_batch, args.seed, run.rank, step),
                    ),
                    m,
                    args.aug,
                    device,
                    args.aug_style,
                    args.aug_voice,
                )
                for m, arr in run.unknown.items()
            ]
        )
    return x, n_known


class StepResult(NamedTuple):
    """What one step reports: the loss terms, the logit scale, the learning-rate factor and the
    curriculum weights it used."""

    parts: dict
    scale: torch.Tensor
    lr: float
    w_cls: float
    w_align: float


def _train_step(run: TrainRun, rows: np.ndarray, step: int) -> StepResult:
    """One optimizer step on a batch of triples (and non-class questions)."""
    args, device, train, opt, net = run.args, run.device, run.train, run.opt, run.net
    b = run.sampler.local_batch
    f = lr_factor(step, run.progress(), args.warmup_steps, args.lr_floor)
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * f
    w_cls, w_align = curriculum_weights(
        step / run.steps_per_epoch,
        args.curriculum_epochs,
        args.align_start,
        align_delay=args.align_delay,
    )
    run.weights.cls, run.weights.align = w_cls, w_align
    labels = torch.from_numpy(rows[:, 0]).to(device)
    x, n_known = _batch_input(run, rows, step)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
        emb, logits, scale, guess = run.module(x, b if train.teacher is not None else 0)
    emb, logits = emb.float(), logits.float()
    e = dict(zip(MODALITIES, emb[:n_known].split(b), strict=False))
    lg = dict(zip(MODALITIES, logits[:n_known].split(b), strict=False))
    loss, parts = visualbyte_loss(e, lg, labels, scale, run.weights)
    if guess is not None:
        target = torch.from_numpy(train.teacher[rows[:, 1]].astype(np.float32)).to(device)
        distil = teacher_loss(guess.float(), target)
        loss = loss + args.teacher_weight * distil
        parts["teacher"] = float(distil.detach())
    if run.anchor is not None:
        drift = run.anchor.drift(x, logits, rows, b)
        loss = loss + args.anchor_weight * drift
        parts["anchor"] = float(drift.detach())
    if run.unknown:
        unk = unknown_loss(logits[n_known:])
        loss = loss + args.unknown_weight * unk
        parts["unknown"] = float(unk.detach())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if args.dump_grads and run.is_main and not args.dump_grads.exists():
        grads = {n: q.grad.detach().clone() for n, q in net.named_parameters()}
        torch.save({n: g for n, g in grads.items() if g is not None}, args.dump_grads)
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    return StepResult(parts, scale, f, w_cls, w_align)


def _log_bench(run: TrainRun, dt: float) -> None:
    """The ``--bench-steps`` line: the timed steps' speed."""
    args, sampler = run.args, run.sampler
    tps = args.bench_steps * sampler.batch_classes / dt
    run.log(
        json.dumps(
            {
                "arch": args.arch,
                "size": run.train.size,
                "batch_classes": sampler.batch_classes,
                "steps": args.bench_steps,
                "seconds": round(dt, 2),
                "triples_per_s": round(tps, 2),
                "images_per_s": round(3 * tps, 2),
            }
        )
    )


def _log_step(run: TrainRun, step: int, res: StepResult) -> None:
    """The progress bar (or a line every 20 steps without one) and train_log.jsonl every 50."""
    parts, scale, f = res.parts, res.scale, res.lr
    if run.pbar is not None:
        run.pbar.update(1)
        run.pbar.set_postfix(
            loss=f"{parts['loss']:.3f}",
            ce_i=f"{parts['ce_image']:.2f}",
            clip_ai=f"{parts['clip_ai']:.2f}",
            s=f"{float(scale.detach().exp()):.1f}",
            **({"unk": f"{parts['unknown']:.2f}"} if "unknown" in parts else {}),
        )
    steps_per_epoch = run.steps_per_epoch
    if run.pbar is None and run.is_main and step % 20 == 0:
        done = step + 1 - run.first_step
        rate = 3 * run.sampler.batch_classes * done / (time.time() - run.t_start)
        run.log(
            f"step {step} ({step / steps_per_epoch:.2f} ep, {100 * run.progress():.1f}%) "
            f"loss {parts['loss']:.3f} ce_img {parts['ce_image']:.2f} "
            f"ce_txt {parts['ce_text']:.2f} ce_aud {parts.get('ce_audio', 0):.2f} "
            f"clip_it {parts['clip_it']:.2f} clip_ai {parts['clip_ai']:.2f} "
            + (f"anchor {parts['anchor']:.4f} " if "anchor" in parts else "")
            + f"lr x{f:.3f} {rate:.1f} img/s",
            flush=True,
        )
    if run.is_main and step % 50 == 0:
        rec = {
            "step": step,
            "epoch": round(step / steps_per_epoch, 3),
            "lr_factor": round(f, 4),
            "w_cls": res.w_cls,
            "w_align": round(res.w_align, 3),
            "scale": float(scale.detach().exp()),
            **parts,
            "elapsed_s": round(time.time() - run.t_start, 1),
            "train_seconds": round(run.state["train_seconds"], 1),
        }
        with open(run.run_dir / "train_log.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")


# -------------------------------------------------------------------------------- the epochs
def _train_epochs(run: TrainRun) -> bool:
    """Steps until the run is done (its steps or time budget), stopped (``--max-minutes``,
    ``--max-steps``) or benched; measuring and checkpointing at each epoch's end and every
    ``--ckpt-minutes``. True when ``--bench-steps`` ended it (nothing more to write)."""
    args, state = run.args, run.state
    t_ckpt = time.time()
    bench_t0 = None
    stop = False
    finished = False
    while not finished and not stop:
        epoch, in_epoch = divmod(state["step"], run.steps_per_epoch)
        run.sampler.set_epoch(epoch)
        for rows in run.sampler.iter_from(in_epoch):
            step = state["step"]
            if run.progress() >= 1.0:
                finished = True
                break
            t_step = time.time()
            res = _train_step(run, rows, step)
            state["step"] = step + 1
            state["train_seconds"] += time.time() - t_step
            if args.bench_steps:
                if state["step"] == 2:
                    bench_t0 = time.time()
                elif state["step"] == 2 + args.bench_steps:
                    _log_bench(run, time.time() - bench_t0)
                    return True
                continue
            _log_step(run, step, res)
            out_of_time = (
                args.max_minutes is not None and time.time() - run.t_start > 60 * args.max_minutes
            )
            out_of_steps = args.max_steps is not None and state["step"] >= args.max_steps
            if out_of_time or out_of_steps:
                stop = True
            if time.time() - t_ckpt > 60 * args.ckpt_minutes or stop:
                run.checkpoint()
                t_ckpt = time.time()
            if stop:
                break
        else:
            # End of an epoch: measure, keep the best, checkpoint.
            run.evaluate_and_keep_best()
            run.checkpoint()
            t_ckpt = time.time()
            finished = run.progress() >= 1.0
            continue
        if finished and not stop:
            # The run ended inside an epoch (time budget or a fractional epoch): measure it too.
            run.evaluate_and_keep_best()
            run.checkpoint()
    return False


def _finish(run: TrainRun) -> None:
    """The last checkpoint (and best.pt if no evaluation wrote one), then the ranks part."""
    if run.pbar is not None:
        run.pbar.close()
    run.checkpoint()
    if run.is_main and not (run.run_dir / "best.pt").exists():
        run.checkpoint("best")
    if run.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    run.log(f"done at step {run.state['step']}: {run.run_dir}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    world, rank, device = _dist_setup(args.device)
    run = setup_run(args, world, rank, device)
    if _train_epochs(run):
        return 0  # --bench-steps: timed and printed
    _finish(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
