"""Training data for a machine that takes a few tens of MB at a time (a lent GPU machine).

``pack`` cuts a dataset directory's training arrays into N parts, each a class-balanced 1/N of
every training array, in a ``.tar.xz`` of its own (grey arrays stored as one channel). ``unpack``
joins any of the parts back into a dataset directory that ``train`` reads, in the source's row
order and without duplicates. ``strip`` makes a checkpoint small enough to come back from such a
machine: without the optimizer, cut into pieces (float16 over a size); ``join`` puts it back
together. Evaluation splits stay out of the bundle: a bundle trains, the full dataset evaluates.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .speech_mix import HEARD_FILE, engine_rows

BUNDLE_VERSION = 1
MANIFEST = "bundle.json"


@dataclass(frozen=True)
class Family:
    """Training arrays aligned row by row: ``{name}.npy`` and its companions."""

    name: str
    labelled: bool  # has ``{name}_y.npy``; the non-class questions have none
    teacher: bool = False  # may have ``{name}_teacher.npy``


FAMILIES = (
    Family("train_image", True, teacher=True),
    Family("train_photo", True, teacher=True),
    Family("train_text", True),
    Family("train_audio", True),
    Family("unknown_text", False),
    Family("unknown_audio", False),
)


def family_files(root: Path, fam: Family) -> list[str]:
    """The array files of a family present in ``root`` (the rows array first)."""
    names = [f"{fam.name}.npy"]
    names += [f"{fam.name}_y.npy"] if fam.labelled else []
    names += [f"{fam.name}_teacher.npy"] if fam.teacher else []
    return [n for n in names if (root / n).exists()]


def read_rows_file(root: Path, fam: Family) -> list[str] | None:
    path = root / f"{fam.name}_rows.jsonl"
    return (
        [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else None
    )


# -------------------------------------------------------------------------------- which part
def assign_parts(
    classes: np.ndarray, engines: np.ndarray | None, parts: int, seed: int
) -> list[np.ndarray]:
    """The source rows of each part. Each class's rows, shuffled within each engine and laid
    engine after engine, are dealt round the parts from a random first part, so every part gets
    a 1/N of each class and, over the classes, of each engine. A class with fewer rows than
    ``parts`` gives each part one of its rows in turn, so every part holds every class (unpack
    drops the repeats). Rows of a part are in source order."""
    rng = np.random.default_rng(seed)
    engines = np.zeros(len(classes), dtype=np.int64) if engines is None else engines
    out: list[list[np.ndarray]] = [[] for _ in range(parts)]
    for c in np.unique(classes):
        mine = np.flatnonzero(classes == c)
        rows = np.concatenate(
            [rng.permutation(mine[engines[mine] == e]) for e in np.unique(engines[mine])]
        )
        first = rng.integers(parts)
        for k in range(parts):
            if len(rows) < parts:  # one row a part, taking turns: every row is in some part
                out[k].append(rows[[(k - first) % len(rows)]])
            else:
                out[k].append(rows[(k - first) % parts :: parts])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in out]


# -------------------------------------------------------------------------------- pack
def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # the same part from the same dataset is the same file
    tar.addfile(info, io.BytesIO(data))


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def is_grey(arr: np.ndarray) -> bool:
    """True for uint8 [N,S,S,3] pictures whose three channels are equal (speech and text)."""
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        return False
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all())


@dataclass
class Plan:
    """What every part is cut from: each family's source rows per part and its rows file's lines
    (speech rows with ``engine_row`` filled in), read once for all the parts."""

    rows_of: dict[str, list[np.ndarray]]
    lines: dict[str, list[str] | None]


def plan(root: Path, parts: int, seed: int) -> Plan:
    """The source rows of each part, per family present in ``root``."""
    rows_of, lines = {}, {}
    for i, fam in enumerate(FAMILIES):
        if not (root / f"{fam.name}.npy").exists():
            continue
        n = len(np.load(root / f"{fam.name}.npy", mmap_mode="r"))
        classes = np.load(root / f"{fam.name}_y.npy") if fam.labelled else np.zeros(n, np.int64)
        lines[fam.name] = read_rows_file(root, fam)
        engines = None
        if fam.name == "train_audio" and lines[fam.name] is not None:
            engines, places = engine_rows(root)
            lines[fam.name] = _with_engine_rows(lines[fam.name], places)
        rows_of[fam.name] = assign_parts(classes, engines, parts, seed + i)
    return Plan(rows_of, lines)


def write_part(root: Path, out: Path, k: int, parts: int, seed: int, cut: Plan) -> dict:
    """``part-K-of-N.tar.xz``: the part's rows of every family, its rows files (speech rows
    keep their place among their engine's, so a probe holds out the same questions), the
    verdicts of ``hearing`` about them, meta.json and the manifest. Returns the manifest."""
    meta = json.loads((root / "meta.json").read_text())
    manifest = {
        "version": BUNDLE_VERSION,
        "source": str(root),
        "source_meta_sha256": hashlib.sha256((root / "meta.json").read_bytes()).hexdigest(),
        "part": k,
        "parts": parts,
        "seed": seed,
        "families": {},
    }
    path = out / f"part-{k:03d}-of-{parts:03d}.tar.xz"
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w:xz", preset=6) as tar:
        for fam in FAMILIES:
            if fam.name not in cut.rows_of:
                continue
            rows = cut.rows_of[fam.name][k]
            grey = []
            for name in family_files(root, fam):
                arr = np.load(root / name, mmap_mode="r")[rows]
                if name == f"{fam.name}.npy" and is_grey(arr):
                    arr, grey = arr[..., 0], [name]
                _add_bytes(tar, name, _npy_bytes(arr))
            _add_bytes(tar, f"{fam.name}_source_rows.npy", _npy_bytes(rows.astype(np.int64)))
            lines = cut.lines[fam.name]
            if lines is not None:
                text = "".join(lines[r] + "\n" for r in rows)
                _add_bytes(tar, f"{fam.name}_rows.jsonl", text.encode())
            manifest["families"][fam.name] = {"rows": int(len(rows)), "grey": grey}
        heard = root / HEARD_FILE
        if heard.exists() and "train_audio" in cut.rows_of:
            _add_bytes(tar, HEARD_FILE, heard.read_bytes())  # by source row; unpack renumbers
        _add_bytes(tar, "meta.json", json.dumps(meta, ensure_ascii=False).encode())
        _add_bytes(tar, MANIFEST, json.dumps(manifest).encode())
    tmp.replace(path)
    return manifest


def _with_engine_rows(lines: list[str], places: np.ndarray) -> list[str]:
    """The speech rows with ``engine_row`` (the row's place among its engine's rows) filled in."""
    out = []
    for line, place in zip(lines, places, strict=True):
        row = json.loads(line)
        row["engine_row"] = int(place)
        out.append(json.dumps(row, ensure_ascii=False))
    return out


# -------------------------------------------------------------------------------- unpack
def read_part(path: Path) -> tuple[dict, dict[str, bytes]]:
    """A part's manifest and files (by name)."""
    files = {}
    try:
        with tarfile.open(path, "r:xz") as tar:
            for member in tar:
                if member.isfile():
                    files[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, lzma.LZMAError, EOFError) as err:
        raise SystemExit(f"{path}: not a whole bundle part ({err})") from None
    if MANIFEST not in files:
        raise SystemExit(f"{path}: no {MANIFEST}: not a part written by `bundle pack`")
    manifest = json.loads(files[MANIFEST])
    if manifest.get("version") != BUNDLE_VERSION:
        raise SystemExit(f"{path}: bundle version {manifest.get('version')}, not {BUNDLE_VERSION}")
    return manifest, files


def _load(files: dict[str, bytes], name: str) -> np.ndarray:
    return np.load(io.BytesIO(files[name]), allow_pickle=False)


def unpack(paths: list[Path], out: Path, log=print) -> dict:
    """Joins parts of one bundle into the dataset directory ``out``; returns the joined manifest."""
    if not paths:
        raise SystemExit("unpack: name at least one part")
    loaded = [read_part(p) for p in paths]
    first = loaded[0][0]
    seen = set()
    for p, (m, _) in zip(paths, loaded, strict=True):
        same = all(m[key] == first[key] for key in ("source_meta_sha256", "parts", "seed"))
        if not same:
            raise SystemExit(f"{p}: a part of another bundle than {paths[0]}")
        if m["part"] in seen:
            raise SystemExit(f"{p}: part {m['part']} is named twice")
        seen.add(m["part"])
    out.mkdir(parents=True, exist_ok=True)
    families = {}
    for fam in FAMILIES:
        have = [files for m, files in loaded if fam.name in m["families"]]
        if not have:
            continue
        src = np.concatenate([_load(f, f"{fam.name}_source_rows.npy") for f in have])
        src, keep = np.unique(src, return_index=True)  # source order, copies dropped
        for name in (f"{fam.name}.npy", f"{fam.name}_y.npy", f"{fam.name}_teacher.npy"):
            if name not in have[0]:
                continue
            arr = np.concatenate([_load(f, name) for f in have])[keep]
            if arr.ndim == 3 and name == f"{fam.name}.npy":  # stored grey: three channels again
                arr = np.repeat(arr[..., None], 3, axis=-1)
            np.save(out / name, arr)
        rows_name = f"{fam.name}_rows.jsonl"
        if rows_name in have[0]:
            lines = [ln for f in have for ln in f[rows_name].decode().splitlines() if ln.strip()]
            (out / rows_name).write_text("".join(lines[i] + "\n" for i in keep))
        families[fam.name] = {"rows": int(len(src)), "source_rows": src}
    if HEARD_FILE in loaded[0][1] and "train_audio" in families:
        _renumber_verdicts(loaded[0][1][HEARD_FILE], families["train_audio"]["source_rows"], out)
    meta = json.loads(loaded[0][1]["meta.json"])
    meta["counts"] = {**meta.get("counts", {}), **{k: v["rows"] for k, v in families.items()}}
    meta["bundle"] = {k: first[k] for k in ("source", "parts", "seed")} | {"included": sorted(seen)}
    (out / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
    counts = {k: v["rows"] for k, v in families.items()}
    log(f"unpacked parts {sorted(seen)} of {first['parts']} into {out}: {counts}")
    return meta["bundle"] | {"counts": counts}


def _renumber_verdicts(data: bytes, source_rows: np.ndarray, out: Path) -> None:
    """``hearing``'s verdicts about the joined rows, by their row in the joined dataset."""
    where = {int(s): i for i, s in enumerate(source_rows)}
    lines = []
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        v = json.loads(line)
        if v["row"] in where:
            lines.append(json.dumps(v | {"row": where[v["row"]]}, ensure_ascii=False))
    (out / HEARD_FILE).write_text("".join(x + "\n" for x in lines))


# -------------------------------------------------------------------------------- checkpoints
def _saved(ckpt: dict) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def strip(checkpoint: Path, out: Path, piece_mb: float, max_mb: float | None = None) -> list[Path]:
    """The checkpoint without its optimizer, cut into pieces of at most ``piece_mb`` MB:
    ``NAME.pt.000``, ``.001``, … and ``NAME.pt.sha256``. Over ``max_mb`` in all, the weights
    are stored as float16 (half the size; ``train --init`` and ``export`` read them)."""
    import torch

    size = int(piece_mb * 1e6)
    if size < 1:
        raise SystemExit(f"--piece-mb {piece_mb}: a positive size")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    ckpt.pop("optimizer", None)
    data = _saved(ckpt)
    if max_mb is not None and len(data) > max_mb * 1e6:
        for key in ("model", "teacher_head"):
            if ckpt.get(key):
                ckpt[key] = {
                    k: v.half() if v.is_floating_point() else v for k, v in ckpt[key].items()
                }
        data = _saved(ckpt)
        if len(data) > max_mb * 1e6:
            raise SystemExit(
                f"{checkpoint}: {len(data) / 1e6:.1f} MB even in float16, over --max-mb {max_mb}"
            )
    out.mkdir(parents=True, exist_ok=True)
    pieces = []
    for i in range(0, len(data), size):
        pieces.append(out / f"{checkpoint.name}.{i // size:03d}")
        pieces[-1].write_bytes(data[i : i + size])
    (out / f"{checkpoint.name}.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
    return pieces


def join(first_piece: Path, out: Path) -> None:
    """Puts the pieces ``strip`` wrote back together, checked against their sha256."""
    base = first_piece.with_suffix("") if first_piece.suffix[1:].isdigit() else first_piece
    pieces = sorted(base.parent.glob(f"{base.name}.[0-9][0-9][0-9]"))
    digest_file = base.parent / f"{base.name}.sha256"
    if not pieces or not digest_file.exists():
        raise SystemExit(f"{base}: no pieces {base.name}.000… with {digest_file.name} beside them")
    data = b"".join(p.read_bytes() for p in pieces)
    if hashlib.sha256(data).hexdigest() != digest_file.read_text().strip():
        raise SystemExit(f"{base}: the {len(pieces)} pieces do not make the checkpoint (sha256)")
    out.write_bytes(data)


# -------------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m visualbyte_export bundle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="verb", required=True)
    pk = sub.add_parser("pack", help="cut a dataset's training arrays into parts")
    pk.add_argument("--data", required=True, type=Path, help="dataset directory")
    pk.add_argument("--out", required=True, type=Path, help="folder for part-K-of-N.tar.xz")
    pk.add_argument("--parts", type=int, required=True, help="how many parts (each ~1/N)")
    pk.add_argument("--only", default="", metavar="K1,K2", help="write only these parts")
    pk.add_argument("--seed", type=int, default=0)
    up = sub.add_parser("unpack", help="join parts into a dataset directory train reads")
    up.add_argument("parts", nargs="+", type=Path, help="part-K-of-N.tar.xz files")
    up.add_argument("--out", required=True, type=Path, help="dataset directory to write")
    st = sub.add_parser("strip", help="a checkpoint without optimizer, cut into pieces")
    st.add_argument("checkpoint", type=Path)
    st.add_argument("--out", required=True, type=Path, help="folder for the pieces")
    st.add_argument("--piece-mb", type=float, default=15.0, help="largest piece (default 15)")
    st.add_argument(
        "--max-mb", type=float, help="over this many MB in all, store the weights as float16"
    )
    jn = sub.add_parser("join", help="put strip's pieces back together")
    jn.add_argument("piece", type=Path, help="NAME.pt.000 (or NAME.pt) beside its pieces")
    jn.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb == "pack":
        return _pack(args)
    if args.verb == "unpack":
        unpack(args.parts, args.out)
    elif args.verb == "strip":
        pieces = strip(args.checkpoint, args.out, args.piece_mb, args.max_mb)
        print(f"{args.checkpoint} -> {len(pieces)} pieces in {args.out}")
    else:
        join(args.piece, args.out)
        print(f"joined {args.out}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    if args.parts < 1:
        raise SystemExit(f"--parts {args.parts}: at least 1")
    if not (args.data / "meta.json").exists():
        raise SystemExit(f"{args.data}: no meta.json: not a dataset directory")
    only = sorted({int(k) for k in args.only.split(",") if k}) or list(range(args.parts))
    if any(not 0 <= k < args.parts for k in only):
        raise SystemExit(f"--only {args.only}: parts are 0..{args.parts - 1}")
    cut = plan(args.data, args.parts, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for k in only:
        t = time.time()
        m = write_part(args.data, args.out, k, args.parts, args.seed, cut)
        path = args.out / f"part-{k:03d}-of-{args.parts:03d}.tar.xz"
        counts = {f: v["rows"] for f, v in m["families"].items()}
        mb = path.stat().st_size / 1e6
        print(f"{path.name}: {mb:.1f} MB in {time.time() - t:.0f} s, {counts}", file=sys.stderr)
    return 0
