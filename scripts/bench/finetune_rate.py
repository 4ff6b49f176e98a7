"""Does proximity's ``--finetune`` rank better at the higher learning rate the ground truth prefers?

    python scripts/bench/finetune_rate.py [--split dev test test-v3 test-v4]
                                          [--out scripts/bench/results/finetune-rate.json] [--deadline SECONDS]

``plateau.py`` (question 4) read from the ground truth's own runs that one fine-tune on 70 % of the
user's images, scored on the other 30 %, ranks the 17 protocol-2 backbones at τ 0.52 at the middle
head rate (1e-3, the rate ``--finetune`` uses) but 0.66 at the highest (3e-3), above LogME (0.64),
against seeds 3–4's test accuracy over the 52 read targets; the sweep chose 3e-3 for 50–67 % of
the pairs in every family (ties, 386 of 884, go to the lower rate). Those runs use the ground
truth's recipe (flips where a target allows them, its own split). This exploratory check (outside
the product; nothing ships from it) asks whether proximity's own fine-tune, which has neither,
shows the same: it runs :func:`proximity.scratch.finetune_on_sample` unchanged except for the
rates (head 3e-3, backbone 3e-4, as the ground truth pairs them) on the read targets of the splits
asked for (all four: ``--split dev test test-v3 test-v4``), and scores the accuracies against the
same target as plateau.py, next to the shipped ``finetune`` signal and LogME from the pages, and the
better of the two rates' hold-out accuracies per candidate (a 2-rate sweep a user could run).

Resumable: each finished target is written to ``--out`` at once and skipped on a re-run.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from .plateau import BACKBONES, RESULTS, _mean_by, _z, chosen_rate, finetune_runs, read_pairs  # noqa: E402

#: the rates tried (the ground truth's highest head rate, the backbone at a tenth)
RATES = {"lr": 3e-3, "backbone_lr": 3e-4}


def seeds_3_4(targets: list[str]) -> dict[tuple[str, str], float]:
    """{(target, backbone): mean test accuracy of seeds 3–4 at the rate seed 0 chose} (plateau.py's target)."""
    out = {}
    for key, rs in finetune_runs().items():
        if key[0] not in targets:
            continue
        lr = chosen_rate(rs)
        if (lr, 3) in rs and (lr, 4) in rs:    # (records of other backbones in the stores lack them)
            out[key] = float(np.mean([rs[(lr, s)]["test_acc"] for s in (3, 4)]))
    return out


def pending_samples(targets: list[str], done: dict, deadline: float | None, t_start: float):
    """``(target, Sample)`` of each target not in ``done``, its user images written to a temporary
    folder (removed after the caller's step) and loaded as a user's run does; none after ``deadline``
    seconds from ``t_start`` (then it says how to go on)."""
    from proximity.data import load_sample

    from .evaluate_v2 import write_user_images

    for t in targets:
        if t in done:
            continue
        if deadline is not None and time.perf_counter() - t_start > deadline:
            print(f"deadline reached after {len(done)} of {len(targets)} targets; run again to go on")
            return
        with tempfile.TemporaryDirectory() as tmp:
            yield t, load_sample(write_user_images(t, Path(tmp) / t), labels="auto", sample=None)


def main(argv: list[str] | None = None) -> None:
    from scipy.stats import weightedtau

    import proximity.scratch as S
    from proximity.backbones import resolve_spec
    from proximity.catalog import adhoc_entry

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", nargs="+", default=["dev"],
                    help="which read splits' targets (dev, test, test-v3, test-v4)")
    ap.add_argument("--out", type=Path, default=RESULTS / "finetune-rate.json")
    ap.add_argument("--deadline", type=float, default=None, help="start no new target after this many seconds")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    rows, split = read_pairs()
    targets = [t for t in sorted(rows) if split[t] in args.split]
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    S.FINETUNE_RECIPE = {**S.FINETUNE_RECIPE, **RATES}     # this process only; the product's stays 1e-3 / 1e-4
    if record.get("recipe", S.FINETUNE_RECIPE) != S.FINETUNE_RECIPE:
        raise SystemExit(f"{args.out} holds runs of another recipe: give another --out")
    record["recipe"] = S.FINETUNE_RECIPE
    done = record.setdefault("runs", {})
    for t, sample in pending_samples(targets, done, args.deadline, t_start):
        t0 = time.perf_counter()
        acc = {}
        for b in sorted(rows[t]):
            spec = resolve_spec(adhoc_entry(f"local-dir:{(BACKBONES / b).resolve()}"))
            acc[b] = S.finetune_on_sample(spec, sample, device="cpu", use_cache=False).accuracy
        done[t] = acc
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{t}: {time.perf_counter() - t0:.0f} s", flush=True)
    gt = seeds_3_4(list(done))
    taus: dict = collections.defaultdict(dict)
    for t, acc in done.items():
        bbs = sorted(acc)
        target = [gt[(t, b)] for b in bbs]
        logme = _z([float(rows[t][b]["logme"]) for b in bbs])
        high = _z([acc[b] for b in bbs])
        shipped = [float(rows[t][b]["finetune"]) for b in bbs]
        best = np.maximum(shipped, [acc[b] for b in bbs])   # a 2-rate sweep: each candidate's better hold-out
        scores = {"logme": logme, "finetune (shipped, 1e-3 / 1e-4)": shipped,
                  "finetune at 3e-3 / 3e-4": high, "z-mean(logme, finetune at 3e-3 / 3e-4)": logme + high,
                  "the better of the two rates per candidate (2 trainings)": best}
        for name, s in scores.items():
            taus[name][t] = float(weightedtau(np.asarray(s, np.float64), target).statistic)
    record["summary"] = {"targets": dict(collections.Counter(split[t] for t in done)),
                         "mean_weighted_tau_vs_seeds_3_4": {k: _mean_by(v, split) for k, v in taus.items()}}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for k, v in record["summary"]["mean_weighted_tau_vs_seeds_3_4"].items():
        print(f"{k:40s} " + "  ".join(f"{s} {x:.3f}" for s, x in v.items()))


if __name__ == "__main__":
    main()
