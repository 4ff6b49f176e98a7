"""How well *can* a negative-transfer risk separate on this benchmark? The label noise ceiling.

    python scripts/bench/risk_ceiling.py [--json FILE] [--draws N]

The benchmark calls a (backbone, target) pair *negative* when the mean test accuracy of its four
fine-tuning seeds (1–4) is below the mean of the four from-scratch seeds of its architecture
(``evaluate_v2.py``). Those means are noisy: on a small target two seeds differ by several
points, so a pair whose fine-tuning and from-scratch accuracies are close is negative or not by
the luck of the seeds. No risk model can predict that luck, so issue 13's bars (AUROC ≥ 0.85,
Brier skill ≥ 0.20) are only reachable where the labels themselves are reproducible. This script
measures how reproducible they are, from the ground truth alone (no signal, no rule, nothing
chosen), per split, as two figures that bracket the ceiling:

* **split-half** (pessimistic): the difference of the seed-1–2 means (fine-tuned − from
  scratch) as the predictor of the label that seeds 3–4 give, and the other way round, averaged.
  A predictor with two seeds' noise against labels with two seeds' noise: both sides are noisier
  than the benchmark's four-seed labels, so this understates what a perfect model could reach.
* **oracle** (optimistic): a model that knows each pair's expected difference exactly, judged
  against four-seed labels drawn around it. The seed noise is the target's pooled per-seed
  variance, fine-tuning per pair and from scratch shared by the backbones of one architecture
  (one draw per target and architecture, as in the ground truth). The expected differences are
  the observed four-seed differences pulled toward the split's mean so that their variance is
  that of the true differences, ``variance(observed) − mean(noise variance)`` (the factor
  ``sqrt(1 − mean(noise variance) / variance(observed))``, clipped to [0, 1]): the observed
  differences contain the seed noise once more, and taking them for the truth made labels that
  are pure seed luck look predictable (AUROC 0.83, Brier skill 0.33 on such labels, where the
  truth is 0.5 and 0; now ≈ 0.5 and ≈ 0, and a known intermediate case, tested). AUROC is the
  mean over ``--draws`` simulated label sets; the Brier skill is exact, 1 − E[p(1−p)] / (b(1−b))
  with p = P(negative) per pair and b its mean. Gaussian noise with the stalled seeds in its
  variance: an estimate, not a proven bound.

A third figure estimates what a run's *own* trainings can see: the ground truth's seed-0 runs are
trained on the user's images (their validation split is part of the sample), so the difference of
their best validation accuracies over the learning rates tried, fine-tuned − from scratch, is
about what one ``--finetune`` and one ``--scratch`` training per rate could measure
(**seed-0 validation AUROC**; one estimator, the best validation accuracy over rates and epochs,
not a proven bound: another statistic of the same trainings could separate somewhat better).
The **validation split-half** figure is the split-half one with the predictor from seeds 1–2's
(3–4's) accuracies on that validation split: what two fine-tunings and two from-scratch trainings
per pair on the user's images could see, against the other two seeds' label. Stalled from-scratch
runs (best epoch the first while another seed ended far higher) are counted too.

Each figure is a statement about the ground truth, not about proximity: it is the same for every
risk model, so it may be read next to any protocol's results without a new protocol version.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.special import ndtr
from sklearn.metrics import roc_auc_score

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from .evaluate_v2 import SEEDS, ground_truth  # noqa: E402
from .finetune import read_records  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# the pages' pairs (v3's: dev, test and test-v3; v4's: test-v4) and the ground-truth stores
# that hold their seeds (each protocol's fresh targets have their own names)
PAIRS = ("v3/pairs.csv", "v4/pairs.csv")
STORES = ("v2/groundtruth.jsonl", "v3/groundtruth.jsonl", "v4/groundtruth.jsonl")


def auroc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of ``score`` for the positives ``y``; NaN when one class is absent."""
    y = np.asarray(y, bool)
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def seed_accuracies(stores: list[Path]) -> dict[tuple[str, str, str], dict[int, float]]:
    """``{(kind, model, target): {seed: test accuracy}}`` at the learning rate seed 0 chose, by
    :func:`evaluate_v2.ground_truth` (the rule every page uses), over several stores."""
    out: dict = {}
    for store in stores:
        for kind, pairs in ground_truth(store).items():
            out.update({(kind, model, target): v["seeds"] for (model, target), v in pairs.items()})
    return out


def chosen_rates(store: Path) -> dict[tuple[str, str, str], float]:
    """``{(kind, model, target): learning rate}`` that seed 0 chose, by :func:`evaluate_v2.ground_truth`."""
    return {(kind, model, target): v["lr"] for kind, pairs in ground_truth(store).items()
            for (model, target), v in pairs.items()}


def stalled_runs(stores: list[Path], gap: float = 0.2) -> dict[tuple[str, str, str], int]:
    """``{(kind, model, target): n}``: seeds 1–4 at the chosen rate whose best epoch was the first
    while another of those seeds ended ≥ ``gap`` higher — a run that never left its start on a
    target its recipe can learn. Such a seed moves its group's mean by ``gap``/4 or more."""
    out = {}
    for store in stores:
        chosen = chosen_rates(store)
        runs: dict = defaultdict(list)
        for r in read_records(store):
            key = (r["kind"], r["model"], r["target"])
            if chosen.get(key) == r["lr"] and r["seed"] in SEEDS:
                runs[key].append(r)
        for key, rs in runs.items():
            best = max(r["test_acc"] for r in rs)
            out[key] = sum(1 for r in rs if r["best_epoch"] == 0 and best - r["test_acc"] >= gap)
    return out


def seed0_validation(stores: list[Path]) -> dict[tuple[str, str, str], float]:
    """``{(kind, model, target): accuracy}``: the best validation accuracy of seed 0 over the
    learning rates it tried — one training per rate on the user's own images (the validation
    split is part of the sample): about what a run's own trainings can see."""
    out: dict = {}
    for store in stores:
        for r in read_records(store):
            if r["seed"] == 0 and r.get("protocol") in (2, 3, 4):
                key = (r["kind"], r["model"], r["target"])
                out[key] = max(out.get(key, 0.0), r["val_acc"])
    return out


def seed_validations(stores: list[Path]) -> dict[tuple[str, str, str], dict[int, float]]:
    """``{(kind, model, target): {seed: validation accuracy}}`` of seeds 1–4 at the learning rate
    seed 0 chose (the sample's own validation split, as :func:`seed_accuracies`' test accuracies)."""
    out: dict = {}
    for store in stores:
        chosen = chosen_rates(store)
        for r in read_records(store):
            key = (r["kind"], r["model"], r["target"])
            if chosen.get(key) == r["lr"] and r["seed"] in SEEDS and r.get("protocol") in (2, 3, 4):
                out.setdefault(key, {})[r["seed"]] = r["val_acc"]
    return out


def validation_split_half(rows: list[dict], val: dict) -> float:
    """:func:`split_half` with the predictor from the *validation* accuracies of seeds 1–2 (3–4):
    two fine-tunings and two from-scratch trainings per pair on the user's own sample, judged
    against the label of the other two seeds' held-out test accuracies (independent trainings)."""
    out = []
    for a, b in (((1, 2), slice(2, 4)), ((3, 4), slice(0, 2))):
        d = np.array([np.mean([val[("finetune", r["backbone"], r["target"])][s] for s in a])
                      - np.mean([val[("scratch", r["arch"], r["target"])][s] for s in a]) for r in rows])
        y = np.array([r["ft"][b].mean() < r["sc"][b].mean() for r in rows])
        out.append(auroc(-d, y))
    return float(np.mean(out))


def load_pairs(pairs_csv: Path, acc: dict) -> list[dict]:
    """The pairs of a page with their seeds: split, target, backbone, arch, ``ft`` and ``sc``
    (accuracies of seeds 1–4, from :func:`seed_accuracies`) and the page's label, checked
    against the seeds."""
    rows = []
    with open(pairs_csv) as fh:
        for r in csv.DictReader(fh):
            ft = acc[("finetune", r["backbone"], r["target"])]
            sc = acc[("scratch", r["arch"], r["target"])]
            ft_a, sc_a = np.array([ft[s] for s in SEEDS]), np.array([sc[s] for s in SEEDS])
            negative = int(ft_a.mean() < sc_a.mean())
            if negative != int(r["negative"]):
                raise ValueError(f"{r['target']}/{r['backbone']}: the seeds give negative={negative}, "
                                 f"the page {r['negative']} — a different ground truth")
            rows.append({"split": r["split"], "target": r["target"], "backbone": r["backbone"],
                         "arch": r["arch"], "ft": ft_a, "sc": sc_a, "negative": negative})
    return rows


def split_half(rows: list[dict]) -> float:
    """Mean AUROC of the seed-1–2 difference for the seed-3–4 label and the other way round."""
    out = []
    for a, b in ((slice(0, 2), slice(2, 4)), (slice(2, 4), slice(0, 2))):
        d = np.array([r["ft"][a].mean() - r["sc"][a].mean() for r in rows])
        y = np.array([r["ft"][b].mean() < r["sc"][b].mean() for r in rows])
        out.append(auroc(-d, y))
    return float(np.mean(out))


def oracle(rows: list[dict], draws: int = 400, seed: int = 0) -> dict:
    """The oracle's AUROC (mean over ``draws`` simulated four-seed label sets), its exact Brier
    skill and the mean P(negative) of a pair (see the module docstring)."""
    k = len(SEEDS)
    var_ft: dict = defaultdict(list)
    var_sc: dict = {}
    for r in rows:
        var_ft[r["target"]].append(r["ft"].var(ddof=1))
        var_sc[(r["target"], r["arch"])] = r["sc"].var(ddof=1)
    s_ft = {t: np.sqrt(np.mean(v) / k) for t, v in var_ft.items()}
    sc_by_t: dict = defaultdict(list)
    for (t, _), v in var_sc.items():
        sc_by_t[t].append(v)
    s_sc = {t: np.sqrt(np.mean(v) / k) for t, v in sc_by_t.items()}

    mu_ft = np.array([r["ft"].mean() for r in rows])
    mu_sc = np.array([r["sc"].mean() for r in rows])
    sft = np.array([s_ft[r["target"]] for r in rows])
    ssc = np.array([s_sc[r["target"]] for r in rows])
    total = np.sqrt(sft ** 2 + ssc ** 2)
    d_obs = mu_ft - mu_sc
    var_d = float(d_obs.var(ddof=1)) if len(rows) > 1 else 0.0
    shrink = float(np.sqrt(np.clip(1 - np.mean(total ** 2) / var_d, 0.0, 1.0))) if var_d > 0 else 0.0
    d_hat = d_obs.mean() + shrink * (d_obs - d_obs.mean())     # the expected differences' estimate
    p = ndtr(-d_hat / np.maximum(total, 1e-12))                 # P(negative) given the expectations
    groups = sorted({(r["target"], r["arch"]) for r in rows})
    g_index = np.array([groups.index((r["target"], r["arch"])) for r in rows])

    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(draws):
        e_sc = rng.standard_normal(len(groups))[g_index] * ssc     # one from-scratch draw per group
        e_ft = rng.standard_normal(len(rows)) * sft
        y = (d_hat + e_ft) < e_sc
        aucs.append(auroc(p, y))
    b = float(p.mean())
    drawn = [a for a in aucs if np.isfinite(a)]              # a draw with one class has no AUROC
    return {"auroc": float(np.mean(drawn)) if drawn else float("nan"),
            "auroc_sd": float(np.std(drawn)) if drawn else float("nan"),
            "brier": float(np.mean(p * (1 - p))), "base_brier": b * (1 - b),
            "brier_skill": float(1 - np.mean(p * (1 - p)) / (b * (1 - b))), "mean_p": b, "shrinkage": shrink}


def ceilings(rows: list[dict], draws: int = 400, stalls: dict | None = None, seed0: dict | None = None,
             val: dict | None = None) -> dict:
    """Per split: pairs, negatives, the split-half AUROC, the oracle's figures, (with ``stalls``
    from :func:`stalled_runs`) the stalled from-scratch runs and the pairs they touch, and (with
    ``seed0`` from :func:`seed0_validation`) the AUROC of the seed-0 difference, fine-tuned −
    from scratch, on the sample's own validation split, and (with ``val`` from
    :func:`seed_validations`) :func:`validation_split_half`."""
    out = {}
    by: dict = defaultdict(list)
    for r in rows:
        by[r["split"]].append(r)
    for split, rs in by.items():
        out[split] = {"pairs": len(rs), "targets": len({r["target"] for r in rs}),
                      "negative": int(sum(r["negative"] for r in rs)),
                      "split_half_auroc": split_half(rs), "oracle": oracle(rs, draws)}
        if stalls is not None:
            groups = {(r["arch"], r["target"]) for r in rs}
            out[split]["scratch_runs"] = len(groups) * len(SEEDS)
            out[split]["scratch_runs_stalled"] = sum(stalls.get(("scratch", a, t), 0) for a, t in groups)
            out[split]["pairs_on_a_stalled_scratch"] = sum(
                1 for r in rs if stalls.get(("scratch", r["arch"], r["target"]), 0))
        if seed0 is not None:
            d0 = np.array([seed0[("finetune", r["backbone"], r["target"])] - seed0[("scratch", r["arch"], r["target"])]
                           for r in rs])
            out[split]["seed0_validation_auroc"] = auroc(-d0, np.array([r["negative"] for r in rs]))
        if val is not None:
            out[split]["validation_split_half_auroc"] = validation_split_half(rs, val)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--draws", type=int, default=400, help="simulated label sets for the oracle's AUROC")
    args = ap.parse_args(argv)
    stores = [RESULTS / s for s in STORES]
    acc = seed_accuracies(stores)
    rows: list[dict] = []
    for pairs in PAIRS:
        rows += load_pairs(RESULTS / pairs, acc)
    res = ceilings(rows, args.draws, stalled_runs(stores), seed0_validation(stores), seed_validations(stores))
    print(f"{'split':10s} {'pairs':>5s} {'neg':>4s} {'split-half AUROC':>17s} {'oracle AUROC':>13s} "
          f"{'oracle Brier skill':>19s} {'seed-0 validation AUROC':>24s} {'validation split-half':>22s} "
          f"{'stalled scratch runs':>21s} {'pairs touched':>14s}")
    for split, r in res.items():
        o = r["oracle"]
        print(f"{split:10s} {r['pairs']:5d} {r['negative']:4d} {r['split_half_auroc']:17.3f} "
              f"{o['auroc']:8.3f} ±{o['auroc_sd']:.3f} {o['brier_skill']:19.3f} {r['seed0_validation_auroc']:24.3f} "
              f"{r['validation_split_half_auroc']:22.3f} "
              f"{r['scratch_runs_stalled']:>13d} of {r['scratch_runs']:<4d} {r['pairs_on_a_stalled_scratch']:>14d}")
    if args.json:
        args.json.write_text(json.dumps({"seeds": list(SEEDS), "draws": args.draws, "splits": res}, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
