"""Benchmark: the catalog cascade's speed-up and whether it keeps the top 3.

    python scripts/bench/cascade.py [--targets 8] [--per-class 16] [--shortlist 6] [--zoo] [--out FILE]

The candidates are every offline backbone there is: the benchmark v2 backbones
(``DATA/bench/v2/backbones``, 17; ``scripts/bench/pretrain.py`` makes them) and, with ``--zoo``,
the zoo's (``proximity zoo build``). For each benchmark *dev* target (its user images written
as class folders of PNGs, ``--per-class`` images per class), ``proximity rank`` runs twice as a
user runs it — a separate process each, wall time, imports and decoding included, each with an
empty evidence cache of its own — once evaluating every candidate (``--shortlist 0``) and once
with ``--shortlist N``. Reported per target and in total: both wall times, the speed-up, and
whether the cascade's top 3 equals the full run's (as an ordered list and as a set). JSON too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"


def _rank(folder: Path, catalogs: list[Path | str], shortlist: int, cache: Path, labels: str,
          extra: tuple[str, ...] = ()) -> tuple[float, dict]:
    out = cache.parent / f"{cache.name}.json"
    cmd = [sys.executable, "-m", "proximity", "rank", str(folder), "--sample", "100000", "--quiet", "--format", "json",
           "--output", str(out), "--shortlist", str(shortlist), "--labels", labels, *extra]
    for c in catalogs:
        cmd += ["--catalog", str(c)]
    env = {**os.environ, "PROXIMITY_CACHE_DIR": str(cache)}
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"rank failed ({res.returncode}): {res.stderr[-2000:]}")
    return wall, json.loads(out.read_text())


def _top3(result: dict) -> list[str]:
    return [c["model"] for c in result["ranking"] if not c.get("screened")][:3]


def measure(targets: list[str], catalogs: list[Path | str], *, per_class: int, shortlist: int, labels: str,
            tmp: Path, extra: tuple[str, ...] = ()) -> dict:
    from . import evaluate_v2

    rows = []
    for target in targets:
        folder = evaluate_v2.write_user_images(target, tmp / "images" / target, per_class)
        full_s, full = _rank(folder, catalogs, 0, tmp / f"cache-{target}-full", labels, extra)
        cut_s, cut = _rank(folder, catalogs, shortlist, tmp / f"cache-{target}-cascade", labels, extra)
        a, b = _top3(full), _top3(cut)
        n, k = full["sample"]["n_images"], len(full["ranking"])
        rows.append({"target": target, "n_images": n, "candidates": k,
                     "full_s": round(full_s, 1), "cascade_s": round(cut_s, 1), "speedup": round(full_s / cut_s, 2),
                     "speedup_bound": round(speedup_bound(n, k, shortlist), 2),
                     "top3_full": a, "top3_cascade": b, "same_top3_ordered": a == b, "same_top3_set": set(a) == set(b),
                     "failed": [f["model"] for f in cut["failed"]]})
        print(f"{target:24s} n={rows[-1]['n_images']:4d}  full {full_s:7.1f} s  cascade {cut_s:7.1f} s  "
              f"×{full_s / cut_s:5.2f}  top-3 {'same' if a == b else 'same set' if set(a) == set(b) else 'DIFFERENT'}",
              flush=True)
    total_full, total_cut = sum(r["full_s"] for r in rows), sum(r["cascade_s"] for r in rows)
    return {"targets": rows, "shortlist": shortlist, "labels": labels, "per_class": per_class,
            "candidates": rows[0]["candidates"] if rows else 0, "full_s": round(total_full, 1),
            "cascade_s": round(total_cut, 1), "speedup": round(total_full / total_cut, 2) if total_cut else None,
            "same_top3_ordered": sum(r["same_top3_ordered"] for r in rows) / max(len(rows), 1),
            "same_top3_set": sum(r["same_top3_set"] for r in rows) / max(len(rows), 1),
            # the ceiling of the whole, weighted as the full runs' times weight the targets
            "speedup_bound": (round(total_full / sum(r["full_s"] / r["speedup_bound"] for r in rows), 2)
                              if rows else None)}


def speedup_bound(n_images: int, candidates: int, shortlist: int) -> float:
    """The most a screen on :func:`proximity.cascade.screen_size` images can save when every
    candidate costs the same per image and nothing is fixed: full / (screen + shortlist) =
    1 / (screen fraction + shortlist / candidates). Fixed costs (start-up, building each network)
    only lower it; a control pass the screened-out architectures skip raises it a little."""
    from proximity.cascade import screen_size

    return 1.0 / (screen_size(n_images) / n_images + min(shortlist, candidates) / candidates)


def summary_line(res: dict) -> str:
    """One line of :func:`measure`'s result: speed-up and top-3 agreement."""
    return (f"{len(res['targets'])} targets, {res['candidates']} candidates, shortlist {res['shortlist']}: "
            f"full {res['full_s']:.0f} s, cascade {res['cascade_s']:.0f} s = ×{res['speedup']} (the screen's ceiling "
            f"on these samples: ×{res.get('speedup_bound', float('nan')):.2f}); same top 3 on "
            f"{100 * res['same_top3_ordered']:.0f} % of targets ({100 * res['same_top3_set']:.0f} % as a set)")


def offline_catalogs(bench_root: Path, with_zoo: bool, tmp: Path) -> list[Path | str]:
    """The benchmark backbones as one catalog folder, and the zoo's."""
    from . import evaluate_v2

    backbones = sorted(p.name for p in (bench_root / "backbones").iterdir() if (p / "config.json").is_file())
    cats: list[Path | str] = [evaluate_v2.bench_catalog(bench_root, tmp / "bench-catalog", backbones)]
    return cats + (["zoo"] if with_zoo else [])


def dev_targets(k: int, skip: int = 0) -> list[str]:
    from . import targets_v2

    return [t.name for t in targets_v2.TARGETS if t.split == "dev"][skip:skip + k]


def main() -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=int, default=8, help="how many dev targets (in the benchmark's order)")
    ap.add_argument("--skip", type=int, default=0, help="start after this many dev targets")
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--shortlist", type=int, default=6)
    ap.add_argument("--labels", default="auto", help="auto (with labels) or none")
    ap.add_argument("--zoo", action="store_true", help="add the zoo's backbones (proximity zoo build)")
    ap.add_argument("--bench-root", type=Path, default=None, help="default: DATA/bench/v2")
    ap.add_argument("--max-params", type=float, default=None, help="leave out larger backbones (millions)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="proximity-cascade-"))
    cats = offline_catalogs(args.bench_root or data_dir() / "bench" / "v2", args.zoo, tmp)
    extra = ("--max-params", str(args.max_params)) if args.max_params else ()
    res = measure(dev_targets(args.targets, args.skip), cats, per_class=args.per_class, shortlist=args.shortlist,
                  labels=args.labels, tmp=tmp, extra=extra)
    res["max_params"] = args.max_params
    print(summary_line(res))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
