"""The whole ground-truth benchmark end to end: pretrain → fine-tune → evaluate.

    python scripts/bench/run.py --quick [--out DIR]    # a tiny slice in a few minutes (CI runs it)
    python scripts/bench/run.py [--out DIR]            # the full run (~50 min here), resumable
    python scripts/bench/run.py --protocol 2 [--quick]  # benchmark v2 (evaluate_v2.py; ≤ 8 CPU-hours)

Full run: the 9 backbones of ``pretrain.py`` into ``OUT/backbones``, every job of
``finetune.py`` into ``scripts/bench/results/groundtruth.jsonl`` (jobs already there are
skipped), then ``evaluate.py`` writes ``scripts/bench/results/RESULTS.md`` with its plots and
``pairs.csv``.

``--quick``: 3 backbones pretrained one epoch on 24 images per class, one dev and one test target
at 6 images per class, one learning rate × 3 seeds of one epoch, evaluated the same way — every
stage of the real pipeline, none of its statistical power. Everything goes under ``OUT``
(default ``$PROXIMITY_DATA_DIR/bench-quick``), never into the committed results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from . import evaluate  # noqa: E402
from . import evaluate_v2  # noqa: E402
from . import finetune  # noqa: E402
from . import pretrain  # noqa: E402

RESULTS = Path(__file__).parent / "results"
QUICK_TARGETS = ("stripes-new-angles", "shapes-new")   # one dev, one test
QUICK_TARGETS_V2 = ("cells-counts", "shapes-small", "textures-small", "faces")   # two dev, two test


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny slice of every stage (minutes)")
    ap.add_argument("--out", type=Path, default=None,
                    help="backbones (and, with --quick, results) [default: data dir/bench or bench-quick]")
    ap.add_argument("--protocol", type=int, choices=(1, 2), default=1)
    args = ap.parse_args(argv)
    out = args.out or data_dir() / ("bench-quick" if args.quick else "bench")
    if args.protocol == 2:
        return _v2(out, args.quick)
    store = out / "groundtruth" / "jobs.jsonl" if args.quick else RESULTS / "groundtruth.jsonl"
    page = out / "results" / "RESULTS.md" if args.quick else RESULTS / "RESULTS.md"
    quick = ["--quick"] if args.quick else []
    targets = ["--targets", *QUICK_TARGETS] if args.quick else []
    t0 = time.perf_counter()
    for name, stage, stage_args in (
            ("pretrain", pretrain.main, [*quick, "--out", str(out)]),
            ("finetune", finetune.main, [*quick, *targets, "--out", str(out), "--store", str(store)]),
            ("evaluate", evaluate.main, [*quick, "--out", str(out), "--store", str(store), "--page", str(page)])):
        print(f"== {name} ({time.perf_counter() - t0:.0f} s)", flush=True)
        stage(stage_args)
    print(f"== done in {time.perf_counter() - t0:.0f} s: {page}")


def _v2(out: Path, quick: bool) -> None:
    """Protocol 2: pretrain (17 backbones) → fine-tune (28 targets, 4 seeds) → evaluate_v2 with
    the fit selection on dev. ``quick``: 4 backbones, 4 targets, everything under ``out``."""
    q = ["--quick"] if quick else []
    store = out / "v2" / "groundtruth" / "jobs.jsonl" if quick else evaluate_v2.RESULTS_V2 / "groundtruth.jsonl"
    results = out / "v2" / "results" if quick else evaluate_v2.RESULTS
    t0 = time.perf_counter()
    for name, stage, stage_args in (
            ("pretrain", pretrain.main, [*q, "--protocol", "2", "--out", str(out)]),
            ("finetune", finetune.main, [*q, "--protocol", "2", "--out", str(out), "--store", str(store),
                                         *(["--targets", *QUICK_TARGETS_V2] if quick else [])]),
            ("evaluate", evaluate_v2.main, [*q, "--select", "--out", str(out), "--store", str(store),
                                            "--results", str(results)])):
        print(f"== {name} ({time.perf_counter() - t0:.0f} s)", flush=True)
        stage(stage_args)
    print(f"== done in {time.perf_counter() - t0:.0f} s: {results / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
