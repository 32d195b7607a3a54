"""VisualByte next to the tools a user would pick instead: one run, same inputs, same threads.

    /var/cache/visualbyte/venv/bin/python scripts/bench_side_by_side.py \
        --bin /var/cache/visualbyte/target/release/visualbyte \
        --checkpoint RUN/best.pt --out BENCHMARKS.md

Compared, per thread count (--threads, default 1,2):
  * embedding one image with the default model: tract (`visualbyte bench`) vs onnxruntime
    (same ONNX file) vs PyTorch eager (the checkpoint the ONNX was exported from; its output
    is checked against onnxruntime's);
  * log-mel of 1 s and 2 s of speech: our front end vs librosa (and torchaudio when
    installed), checked against the float64 reference the Rust golden test pins;
  * exact top-10 over 100k random 512-d vectors: our scan vs a numpy flat scan (faiss when
    installed).
  * where one embedding's time goes, per kind of operator, on the first thread count: tract
    (`visualbyte bench --ops`) vs onnxruntime's own profiler (depthwise convolutions counted
    apart from the other convolutions).
Writes a Markdown table (medians, p10–p90 spread, ratios) to --out, raw numbers to --json.
Run it on an otherwise idle machine: everything runs in turn, never two at once.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def stats(samples_ms: list[float]) -> dict:
    s = np.sort(np.asarray(samples_ms))
    n = len(s)

    def rank(q: float) -> float:
        return float(s[min(n, max(1, int(np.ceil(q * n)))) - 1])

    return {"runs": n, "median_ms": float(np.median(s)), "p10_ms": rank(0.1), "p90_ms": rank(0.9)}


def timeit(fn, runs: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return stats(out)


def ours(
    binary: Path,
    model: Path,
    index: Path,
    threads: int,
    runs: int,
    search: bool,
    ops: bool = True,
) -> dict:
    """``visualbyte bench`` on ``model`` (and the memory ``index`` built with it); with ``ops``,
    also where one embedding's time goes."""
    cmd = [str(binary), "bench", "--json", "--threads", str(threads), "--runs", str(runs)]
    cmd += ["--ops"] if ops else []
    cmd += ["--model", str(model), "--index", str(index)]
    cmd += [
        "--search-sizes",
        "100000" if search else "0",
        "--vector-types",
        "f32,i8",
        "--batch",
        "0",
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(r.stdout)
    report["by_name"] = {s["name"]: s for s in report["stages"]}
    return report


def rendered_query(binary: Path, model: Path, text: str) -> np.ndarray:
    from PIL import Image

    with tempfile.TemporaryDirectory() as d:
        png = Path(d) / "q.png"
        subprocess.run(
            [str(binary), "render", "text", text, "--model", str(model), "--out", str(png)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        return np.asarray(Image.open(png).convert("RGB"))


def normalise(pixels: np.ndarray) -> np.ndarray:
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = (pixels.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def ort_session(model: Path, threads: int, profile_prefix: str | None = None):
    """An onnxruntime CPU session as both comparisons use it (sequential, every graph
    optimisation), profiling into `profile_prefix` when given."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def ort_ops(model: Path, x: np.ndarray, threads: int, runs: int) -> dict[str, float]:
    """Milliseconds per run in each kind of onnxruntime node (its profiler; depthwise convolutions
    apart), over `runs` runs after three untimed ones."""
    with tempfile.TemporaryDirectory() as d:
        sess = ort_session(model, threads, str(Path(d) / "ort"))
        name = sess.get_inputs()[0].name
        for _ in range(3 + runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    # Node events come in order, one per node per run: keep the last `runs` runs.
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(nodes) // (3 + runs)
    totals: dict[str, float] = {}
    for e in nodes[-per_run * runs :]:
        op = e.get("args", {}).get("op_name", "?")
        if "conv_dw" in e["name"]:
            op += " (depthwise)"
        totals[op] = totals.get(op, 0.0) + e["dur"] / 1e3 / runs
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def reference_log_mel():
    spec = importlib.util.spec_from_file_location(
        "make_golden", ROOT / "tests/fixtures/mel/make_golden.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.log_mel


def librosa_log_mel(x: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=x,
        sr=16000,
        n_fft=400,
        hop_length=160,
        n_mels=80,
        power=2.0,
        center=True,
        pad_mode="reflect",
        window="hann",
        htk=False,
        norm="slaney",
    )[:, :-1]
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def median_round(pairs: list[tuple[dict, dict]]) -> tuple[int, list[float]]:
    """Of alternating rounds (ours, peer), the index of the one whose ratio of medians is the
    median of all the rounds' ratios (the lower middle one for an even count), and every ratio."""
    ratios = [a["median_ms"] / b["median_ms"] for a, b in pairs]
    return int(np.argsort(ratios, kind="stable")[(len(ratios) - 1) // 2]), ratios


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "–"


def cell(s: dict | None) -> str:
    if not s:
        return "–"
    return f"{s['median_ms']:.3f} ({s['p10_ms']:.3f}–{s['p90_ms']:.3f})"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--bin", type=Path, default=Path("/var/cache/visualbyte/target/release/visualbyte")
    )
    ap.add_argument("--model", type=Path, default=ROOT / "models/visualbyte.onnx")
    ap.add_argument(
        "--index",
        type=Path,
        default=ROOT / "models/memory.vbi",
        help="the image-memory index built with --model (for the search stage of our bench)",
    )
    ap.add_argument(
        "--checkpoint", type=Path, help="the training checkpoint the model was exported from"
    )
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of the embedding comparison; the median round's ratio is reported",
    )
    ap.add_argument("--text", default="where is the tiger")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, help="raw numbers (default: next to --out)")
    return ap.parse_args()


def torch_net(model: Path, checkpoint: Path | None):
    """The PyTorch module the ONNX file was exported from (same output), or None without the
    checkpoint."""
    import onnx

    if not (checkpoint and checkpoint.exists()):
        return None
    sys.path.insert(0, str(ROOT / "export"))
    from visualbyte_export.model import EmbeddingOnly, load_checkpoint_model

    full, _ = load_checkpoint_model(checkpoint)
    # The same output as the ONNX file (the projector embedding or the class posterior).
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    output = json.loads(meta.get("visualbyte.training", "{}")).get("output", "embedding")
    return EmbeddingOnly(full, output).eval()


def embedding_rounds(args, t: int, first_t: bool, x: np.ndarray, net) -> list[dict]:
    """Alternating rounds at ``t`` threads: our bench, then onnxruntime, then PyTorch eager."""
    import torch

    runs = args.runs
    sess = ort_session(args.model, t)
    name = sess.get_inputs()[0].name
    rounds = []
    # Alternating rounds: the VM's speed drifts by ±20 % within minutes, so one round of each
    # side in turn can favour either; the ratio reported is the median of the rounds' ratios.
    for r in range(args.rounds):
        tag = f"threads {t}, round {r + 1}/{args.rounds}"
        print(f"{tag}: VisualByte …", file=sys.stderr)
        # The search and the operator profile are read from the first round only.
        first = r == 0
        vb = ours(args.bin, args.model, args.index, t, runs, first and first_t, first)
        print(f"{tag}: onnxruntime …", file=sys.stderr)
        ort_out = sess.run(None, {name: x})[0]
        ort_s = timeit(lambda s=sess, n=name: s.run(None, {n: x}), runs)
        torch_s, torch_diff = None, None
        if net is not None:
            print(f"{tag}: PyTorch …", file=sys.stderr)
            torch.set_num_threads(t)
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                torch_diff = float(np.abs(net(xt).numpy() - ort_out).max())
                torch_s = timeit(lambda a=xt: net(a), runs)
        rounds.append(
            {
                "visualbyte": vb,
                "onnxruntime": ort_s,
                "torch": torch_s,
                "torch_vs_ort_max_abs": torch_diff,
            }
        )
    return rounds


def compare_embedding(args, threads: list[int], x: np.ndarray, net, rows: list, notes: list):
    """Embedding one image, per thread count: each thread count's first round (with every
    round's embedding numbers); the median round's row for each peer goes to ``rows``, the
    rounds' ratios to ``notes``."""
    per_threads = {}
    for t in threads:
        rounds = embedding_rounds(args, t, t == threads[0], x, net)
        per_threads[t] = dict(rounds[0])
        per_threads[t]["rounds"] = [
            {"visualbyte": rd["visualbyte"]["by_name"]["embed"]}
            | {k: rd[k] for k in ("onnxruntime", "torch")}
            for rd in rounds
        ]
        for peer, key in (("onnxruntime", "onnxruntime"), ("PyTorch eager", "torch")):
            if not rounds[0][key]:
                continue
            pairs = [(rd["visualbyte"]["by_name"]["embed"], rd[key]) for rd in rounds]
            mid, ratios = median_round(pairs)
            e, p = pairs[mid]
            rows.append((f"embed 1 image, {t} thread(s)", "tract", e, peer, p))
            if len(rounds) > 1:
                notes.append(
                    f"embedding vs {peer}, {t} thread(s), {len(rounds)} alternating rounds: "
                    + ", ".join(f"{q:.2f}×" for q in ratios)
                    + " (the table shows the median round)"
                )
    return per_threads


def compare_mel(vb: dict, runs: int, have_torchaudio: bool, rows: list) -> dict:
    """Log-mel of 1 s and 2 s of speech: librosa (and torchaudio) beside our front end."""
    import librosa
    import torch

    sr = 16000
    y, _ = librosa.load(str(ROOT / "models/samples/tiger.wav"), sr=sr)
    ref = reference_log_mel()
    mel = {}
    for sec in (1, 2):
        clip = np.resize(y, sec * sr).astype(np.float32)
        lib_s = timeit(lambda c=clip: librosa_log_mel(c), runs)
        diff = float(np.abs(librosa_log_mel(clip).astype(np.float64) - ref(clip)).max())
        mel[f"{sec}s"] = {"librosa": lib_s, "librosa_vs_reference_max_abs": diff}
        rows.append(
            (
                f"log-mel of {sec} s",
                "VisualByte",
                vb["by_name"][f"log_mel_{sec}s"],
                "librosa",
                lib_s,
            )
        )
        if have_torchaudio:
            import torchaudio

            tm = torchaudio.transforms.MelSpectrogram(
                sample_rate=sr,
                n_fft=400,
                hop_length=160,
                n_mels=80,
                norm="slaney",
                mel_scale="slaney",
            )
            torch.set_num_threads(1)
            ct = torch.from_numpy(clip)
            ta_s = timeit(lambda f=tm, a=ct: (f(a) + 1e-10).log10(), runs)
            mel[f"{sec}s"]["torchaudio"] = ta_s
            rows.append(
                (
                    f"log-mel of {sec} s",
                    "VisualByte",
                    vb["by_name"][f"log_mel_{sec}s"],
                    "torchaudio",
                    ta_s,
                )
            )
    return mel


def compare_search(vb: dict, runs: int, have_faiss: bool, rows: list) -> dict:
    """Exact top-10 over 100k random unit vectors of the model's size: numpy (and faiss) beside
    our scan."""
    rng = np.random.default_rng(7)
    n, d = 100_000, vb["dim"]
    vecs = rng.uniform(-1, 1, (n, d)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    q = vecs[0] + 0.1
    q /= np.linalg.norm(q)

    def flat():
        s = vecs @ q
        top = np.argpartition(s, -10)[-10:]
        return top[np.argsort(-s[top])]

    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            np_s = timeit(flat, runs)
    except ImportError:
        np_s = timeit(flat, runs)
    search = {"numpy_f32_1_thread": np_s}
    rows.append(
        (
            "top-10 of 100k (f32)",
            "VisualByte",
            vb["by_name"].get("search_100000_f32"),
            "numpy flat",
            np_s,
        )
    )
    if "search_100000_i8" in vb["by_name"]:
        rows.append(
            (
                "top-10 of 100k (i8)",
                "VisualByte",
                vb["by_name"]["search_100000_i8"],
                "numpy flat f32",
                np_s,
            )
        )
    if have_faiss:
        import faiss

        faiss.omp_set_num_threads(1)
        ix = faiss.IndexFlatIP(d)
        ix.add(vecs)
        fs = timeit(lambda: ix.search(q[None], 10), runs)
        search["faiss_flat_1_thread"] = fs
        rows.append(
            (
                "top-10 of 100k (f32)",
                "VisualByte",
                vb["by_name"].get("search_100000_f32"),
                "faiss IndexFlatIP",
                fs,
            )
        )
    return search


def notes_lines(res: dict, round_notes: list[str], have_torchaudio: bool, have_faiss: bool):
    """The notes under the table: rounds, numerical differences, recall, peers not compared."""
    notes = list(round_notes)
    for t, v in res["embedding"].items():
        if v["torch_vs_ort_max_abs"] is not None:
            notes.append(
                f"PyTorch vs onnxruntime embedding max abs difference ({t} thread(s)): "
                f"{v['torch_vs_ort_max_abs']:.2e}"
            )
    for k, v in res["mel"].items():
        notes.append(
            f"librosa log-mel of {k} vs the float64 reference: "
            f"max abs {v['librosa_vs_reference_max_abs']:.2e}"
        )
    for r in res["visualbyte_recall"] or []:
        notes.append(
            f"VisualByte {r['vector_type']} recall@10 vs f32 over {r['size']} random memories: "
            f"{r['recall_at_10']:.3f}"
        )
    if not have_torchaudio:
        notes.append("torchaudio: not installed in this environment (not compared)")
    if not have_faiss:
        notes.append("faiss: not installed in this environment (not compared)")
    return notes


def ops_table(ops: dict) -> list[str]:
    """Where one embedding's time goes, tract's operators beside onnxruntime's."""
    ops_t = ops["tract"]
    ops_o = ops["onnxruntime"]
    op_lines = [
        (
            f"Where one embedding's time goes ({ops['threads']} thread, ms per embedding, "
            "summed per operator kind; each runtime's own profiler):"
        ),
        "",
        "| tract operator | nodes | ms | | onnxruntime operator | ms |",
        "|---|---|---|---|---|---|",
    ]
    ort_items = list(ops_o.items())
    for i in range(max(len(ops_t), len(ort_items))):
        a = ops_t[i] if i < len(ops_t) else None
        b = ort_items[i] if i < len(ort_items) else None
        left = f"{a['op']} | {a['nodes']} | {a['ms_per_run']:.3f}" if a else " | | "
        right = f"{b[0]} | {b[1]:.3f}" if b else " | "
        op_lines.append(f"| {left} | | {right} |")
    op_lines.append(
        f"| **all** | | **{sum(o['ms_per_run'] for o in ops_t):.3f}** | | **all** | "
        f"**{sum(ops_o.values()):.3f}** |"
    )
    return op_lines


def report_block(res: dict, rows: list, notes: list[str], first: dict, d: int) -> str:
    """The Markdown block: machine, peers, model, the comparison table, the operator table and
    the notes. ``first``: our bench at the first thread count."""
    m, versions = res["machine"], res["versions"]
    lines = [
        "| what | VisualByte | median ms (p10–p90) | peer | median ms (p10–p90) | ours / peer |",
        "|---|---|---|---|---|---|",
    ]
    for what, ours_name, o, peer, p in rows:
        r = ratio(o["median_ms"], p["median_ms"]) if o and p else "–"
        lines.append(f"| {what} | {ours_name} | {cell(o)} | {peer} | {cell(p)} | {r} |")
    table = "\n".join(lines)
    table += "\n\n" + "\n".join(ops_table(res["ops"]))
    return (
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['os']}; {res['date']}.\n"
        f"Peers: onnxruntime {versions['onnxruntime']}, PyTorch {versions['torch']}, "
        f"librosa {versions['librosa']}, numpy {versions['numpy']}.\n"
        f"Model: {first['model_id']} "
        f"({first['input_size']} px, {d}-d).\n\n{table}\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n"
    )


def write_report(out: Path, json_path: Path | None, res: dict, block: str) -> None:
    """Raw numbers to ``json_path`` (default: next to ``out``); the block into ``out`` between
    its markers (appended with them when it has none)."""
    jpath = json_path or out.with_suffix(".json")
    jpath.write_text(json.dumps(res, indent=1, default=str) + "\n")
    begin, end = "<!-- side-by-side:begin -->", "<!-- side-by-side:end -->"
    text = out.read_text() if out.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{block}{end}{tail}"
    else:
        text += f"\n{begin}\n{block}{end}\n"
    out.write_text(text)


def main() -> None:
    args = parse_args()

    import onnxruntime as ort
    import torch

    threads = [int(t) for t in args.threads.split(",")]
    runs = args.runs
    res: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    versions = {"onnxruntime": ort.__version__, "torch": torch.__version__, "numpy": np.__version__}
    import librosa

    versions["librosa"] = librosa.__version__
    have_torchaudio = importlib.util.find_spec("torchaudio") is not None
    have_faiss = importlib.util.find_spec("faiss") is not None
    res["versions"] = versions

    pixels = rendered_query(args.bin, args.model, args.text)
    x = normalise(pixels)
    net = torch_net(args.model, args.checkpoint)

    rows = []
    round_notes: list[str] = []
    per_threads = compare_embedding(args, threads, x, net, rows, round_notes)
    res["embedding"] = per_threads
    t0 = threads[0]
    print(f"threads {t0}: operator profiles …", file=sys.stderr)
    ort_profile = ort_ops(args.model, x, t0, runs)
    res["ops"] = {
        "threads": t0,
        "tract": per_threads[t0]["visualbyte"].get("ops", []),
        "onnxruntime": ort_profile,
    }

    # Mel front end (single-threaded on both sides: librosa's STFT is numpy).
    vb = per_threads[threads[0]]["visualbyte"]
    res["mel"] = compare_mel(vb, runs, have_torchaudio, rows)

    # Search: exact top-10 over 100k random 512-d unit vectors.
    res["search"] = compare_search(vb, runs, have_faiss, rows)
    res["visualbyte_recall"] = vb.get("recall")

    # The Markdown table.
    notes = notes_lines(res, round_notes, have_torchaudio, have_faiss)
    block = report_block(res, rows, notes, vb, vb["dim"])
    write_report(args.out, args.json, res, block)
    print(block)


if __name__ == "__main__":
    main()
