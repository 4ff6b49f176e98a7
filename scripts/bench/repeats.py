"""Would repeated trainings on the sample make ``--scratch`` / ``--finetune`` a risk that separates?

    python scripts/bench/repeats.py [--every 2] [--seeds 1 2 3 4]
                                    [--out scripts/bench/results/repeats.json] [--deadline SECONDS]

Issue 13 asks for a negative-transfer risk with AUROC ≥ 0.85. The label is the ground truth's:
a (backbone, target) pair is negative when its four fine-tuned seeds' mean test accuracy is below
the four from-scratch seeds' mean of its architecture. ``risk_ceiling.py`` showed that labels
that noisy still allow an oracle AUROC of 0.93–0.97, but that what one fine-tune and one
from-scratch training on the user's images can see stops at 0.73–0.88 (the ground truth's own
seed-0 validation runs), and two each at 0.77–0.89 (validation split-half). ``plateau.py``
refitted the risk leave-one-target-out on all 884 read pairs: at most 0.77. The evidence a run
can add is more trainings. This exploratory check (outside the product; nothing ships from it)
measures that with proximity's own code, unchanged: :func:`proximity.scratch.finetune_on_sample`
and :func:`~proximity.scratch.train_from_scratch` at the shipped recipes, at further seeds (each
seed is a different stratified 70/30 split of the user's images, a different head and batch
order), on a fixed half of the 52 read targets (``--every 2``: every second target of each
split, in name order, chosen before any repeat was run). Seed 0 is the page's own ``finetune``
and ``scratch`` (``v3/pairs.csv``, ``v4/pairs.csv``); on the first target the script trains seed
0 of one backbone again and stops unless it reproduces the page's values.

It reports, over the pairs of those targets, with 1, 2, 3 and 5 trainings of each kind (seeds 0,
0–1, 0–2, 0–4):

* the AUROC of the paired mean difference, fine-tuned − from scratch, as the risk (lower is
  riskier; one feature, so any monotone risk model has this AUROC), per split and pooled;
* the same with a penalised logistic refitted leave-one-target-out on (probe, scratch, finetune,
  gain) — the evidence set ``plateau.py`` found best — to see whether the other signals add;
* the shipped risk model (fitted on single trainings) with the mean from-scratch accuracy in place of
  one: its AUROC and Brier skill against the pairs' own negative rate (what ``--scratch --repeats
  k`` gives a user today);
* the weighted τ of the mean fine-tuned hold-out accuracy against the page's target (the mean
  test accuracy of the four fine-tuned seeds), next to LogME's on the same targets.

Resumable: every finished target is written to ``--out`` at once and skipped on a re-run.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from .finetune_rate import pending_samples  # noqa: E402
from .plateau import BACKBONES, RESULTS, _mean_by, read_pairs  # noqa: E402

#: numbers of trainings of each kind compared (seed 0 and the first ``k − 1`` of ``--seeds``)
K = (1, 2, 3, 5)


def chosen_targets(split: dict[str, str], every: int) -> list[str]:
    """Every ``every``-th target of each split, in name order (the first of each split included)."""
    out = []
    for s in sorted(set(split.values())):
        out += sorted(t for t in split if split[t] == s)[::every]
    return sorted(out)


def _by_split(y: np.ndarray, score: np.ndarray, sp: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {"all": round(float(roc_auc_score(y, score)), 4),
            **{s: round(float(roc_auc_score(y[sp == s], score[sp == s])), 4) for s in np.unique(sp)}}


def _shipped_risk(row: dict, scratch: float) -> float:
    """The shipped risk model (``catalog/risk_model.json``, through :func:`proximity.risk.estimate`) on
    the page's probe and gain with ``scratch`` as the from-scratch accuracy: the ``labels+scratch``
    variant a ``--scratch`` run gets."""
    from proximity.risk import estimate
    from proximity.types import SignalValue as V

    signals = {"probe": V(float(row["probe"]), float(row["probe.sd"])),
               "gain": V(float(row["gain"]), float(row["gain.sd"])), "scratch": V(scratch, 0.0)}
    risk = estimate(signals, int(float(row["n_images"])), int(float(row["n_classes"])))
    if risk.variant != "labels+scratch":
        raise SystemExit(f"{row['target']}/{row['backbone']}: the shipped risk ran {risk.variant}, not labels+scratch")
    return float(risk.value)


def separation(done: dict, rows: dict, split: dict, seeds: list[int]) -> dict:
    """AUROC of the mean paired difference and of the LOTO logistic, and τ, per number of trainings."""
    from scipy.stats import weightedtau
    from sklearn.linear_model import LogisticRegression

    out: dict = {}
    targets = sorted(done)
    for k in K:
        if k - 1 > len(seeds):
            continue
        use = seeds[:k - 1]
        flat, taus, taus_logme = [], {}, {}
        for t in targets:
            bbs = sorted(rows[t])
            ft = {b: float(np.mean([float(rows[t][b]["finetune"])] + [done[t]["finetune"][b][str(s)] for s in use]))
                  for b in bbs}
            sc = {b: float(np.mean([float(rows[t][b]["scratch"])] + [done[t]["scratch"][b][str(s)] for s in use]))
                  for b in bbs}
            for b in bbs:
                r = rows[t][b]
                flat.append({"t": t, "y": int(r["negative"] in ("1", "True")), "diff": ft[b] - sc[b],
                             "x": [float(r["probe"]), sc[b], ft[b], float(r["gain"])],
                             "shipped": _shipped_risk(r, sc[b])})
            acc = [float(rows[t][b]["finetuned"]) for b in bbs]
            taus[t] = float(weightedtau(np.array([ft[b] for b in bbs]), acc).statistic)
            taus_logme[t] = float(weightedtau(np.array([float(rows[t][b]["logme"]) for b in bbs]), acc).statistic)
        y = np.array([f["y"] for f in flat])
        tg = np.array([f["t"] for f in flat])
        sp = np.array([split[t] for t in tg])
        diff = -np.array([f["diff"] for f in flat])          # riskier when fine-tuning gains less
        x = np.array([f["x"] for f in flat])
        p = np.zeros(len(y))
        for t in targets:
            m = tg == t
            mu, sd = x[~m].mean(0), x[~m].std(0) + 1e-12
            clf = LogisticRegression(C=1.0).fit((x[~m] - mu) / sd, y[~m])
            p[m] = clf.predict_proba((x[m] - mu) / sd)[:, 1]

        shipped = np.array([f["shipped"] for f in flat])
        base = float(np.mean((y.mean() - y) ** 2))
        out[f"{k} training{'s' if k > 1 else ''}"] = {
            "auroc_finetune_minus_scratch": _by_split(y, diff, sp), "auroc_loto_logistic": _by_split(y, p, sp),
            "shipped_risk": {"auroc": _by_split(y, shipped, sp),
                             "brier_skill": round(1 - float(np.mean((shipped - y) ** 2)) / base, 4)},
            "tau_finetune": {k2: round(v, 4) for k2, v in _mean_by(taus, split).items()},
            "tau_logme": {k2: round(v, 4) for k2, v in _mean_by(taus_logme, split).items()}}
    return {"targets": len(targets), "pairs": sum(len(rows[t]) for t in targets), **out}


def main(argv: list[str] | None = None) -> None:
    import proximity.scratch as S
    from proximity.backbones import resolve_spec
    from proximity.catalog import adhoc_entry

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=int, default=2, help="every N-th target of each split (name order)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4], help="the seeds trained besides 0")
    ap.add_argument("--out", type=Path, default=RESULTS / "repeats.json")
    ap.add_argument("--deadline", type=float, default=None, help="start no new target after this many seconds")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    rows, split = read_pairs()
    targets = chosen_targets(split, args.every)
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    recipes = {"scratch": S.RECIPE, "finetune": S.FINETUNE_RECIPE}
    if record.get("recipes", recipes) != recipes or record.get("seeds", args.seeds) != args.seeds:
        raise SystemExit(f"{args.out} holds runs of other recipes or seeds: give another --out")
    record.update(recipes=recipes, seeds=args.seeds, every=args.every)
    done = record.setdefault("runs", {})
    checked = bool(done)
    for t, sample in pending_samples(targets, done, args.deadline, t_start):
        t0 = time.perf_counter()
        specs = {b: resolve_spec(adhoc_entry(f"local-dir:{(BACKBONES / b).resolve()}")) for b in sorted(rows[t])}
        if not checked:                              # the same code, images and split as the page's seed 0
            b = sorted(specs)[0]
            f0 = S.finetune_on_sample(specs[b], sample, device="cpu", seed=0, use_cache=False).accuracy
            s0 = S.train_from_scratch(specs[b], sample, device="cpu", seed=0, use_cache=False).accuracy
            page = (float(rows[t][b]["finetune"]), float(rows[t][b]["scratch"]))
            if not np.allclose((f0, s0), page, atol=1e-6):
                raise SystemExit(f"{t}/{b}: seed 0 gives finetune {f0}, scratch {s0}; the page {page}")
            checked = True
        out: dict = {"finetune": collections.defaultdict(dict), "scratch": collections.defaultdict(dict)}
        for s in args.seeds:
            pool = S.ScratchPool()                   # one from-scratch training per architecture identity
            for b, spec in specs.items():
                out["finetune"][b][str(s)] = S.finetune_on_sample(spec, sample, device="cpu", seed=s,
                                                                  use_cache=False).accuracy
                out["scratch"][b][str(s)] = pool.get(spec, sample, device="cpu", seed=s, use_cache=False).accuracy
        done[t] = out
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{t}: {time.perf_counter() - t0:.0f} s ({len(done)} of {len(targets)})", flush=True)
    if done:
        record["summary"] = separation(done, rows, split, args.seeds)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record["summary"], indent=1))


if __name__ == "__main__":
    main()
