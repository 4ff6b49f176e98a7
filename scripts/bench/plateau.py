"""Is there a labelled rule or a risk model the read targets say could clear issues 11 and 13's bars?

    python scripts/bench/plateau.py [--work DIR] [--out scripts/bench/results/plateau.json]

An exploratory check (outside the product; nothing ships from it) on the 52 targets protocols 2–4
have read: protocol 2's 14 dev and 14 test targets, protocol 3's 12, protocol 4's 12, each with
the 17 protocol-2 backbones and its fine-tuning ground truth (``v3/pairs.csv``, ``v4/pairs.csv``).
All four sets have been read, so this is dev work for a protocol 5: it may look at all of them,
and nothing it finds is a test reading. It asks three things.

1. **Potential-energy descent** (PED; Li et al., ICCV 2023, arXiv:2308.15074). Before LogME, the
   classes of the frozen features are pushed apart as the paper's force model describes — the
   features standardised per dimension (by the backbone's reference statistics, or by the sample's
   own), class *i* moved along (μᵢ − μⱼ)/‖μᵢ − μⱼ‖ by min(½·dt²·F, F) for every class *j* with
   overlap F = max(nσ·(Rᵢ + Rⱼ) − ‖μᵢ − μⱼ‖, 0), Rᵢ = √(Σ_d var_d of class i), for at most 6
   steps, stopping before a step that moves at most half as far as the first. The reference's
   per-dimension variance is the diagonal of its stored top-64 PCA plus the isotropic residual
   (exact for backbones of ≤ 64 features, an approximation for wider ones). Written from the paper's
   description (:func:`ped_move`; its test is a hand-computed two-class case), not from its code.
2. **LogME at several depths**: pooled features of every intermediate stage (timm's
   ``forward_intermediates``), LogME at each, their max and mean (over all depths, final
   included, or the last three), and LogME of the last two intermediate stages concatenated. The final
   pooled features are extracted the same way and must reproduce the page's LogME to 1e-6 (the
   script stops otherwise), so the other depths are measured on the same images and weights.
3. **How far the combinations and the risk can go**: the per-target τ difference between the
   shipped two-signal mean and LogME alone (its sd says how large a true gain a 12-target test
   set can show), the z-mean of LogME with the short ``finetune``, and the negative-transfer risk
   refitted leave-one-target-out on all 884 pairs with each evidence set; and what LogME misses,
   per backbone and architecture (:func:`residuals`).
4. **What fine-tunes on the sample could rank**, read from the ground truth's own runs, which
   train on 70 % of the user's images and score the other 30 % (:func:`finetune_bound`): one
   fine-tune at each fixed rate, the best of a 3-rate sweep, one or two more at the swept rate,
   and some beside LogME, against seeds 3–4's test accuracy.

Measured 2026-12-02 (``results/plateau.json``, ``results/plateau.md`` reads it).
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"

RESULTS = Path(__file__).resolve().parent / "results"
PAIRS = (RESULTS / "v3" / "pairs.csv", RESULTS / "v4" / "pairs.csv")
BACKBONES = RESULTS / "v2" / "backbones"
#: the extracted-feature cache (about 150 MB), shared with labelfree_pseudo.py
WORK = Path(tempfile.gettempdir()) / "proximity-plateau"
#: the variants of question 1: (nσ, dt, standardised by) — the paper's two nσ (0.3, 0.6), its dt
#: (0.1), and a larger value of each
PED_VARIANTS = [(ns, dt, by) for ns in (0.3, 0.6, 1.0) for dt in (0.1, 1.0) for by in ("reference", "sample")]


def ped_move(x: np.ndarray, y: np.ndarray, mu: np.ndarray | None = None, var: np.ndarray | None = None, *,
             nsigma: float = 0.6, dt: float = 0.1, exit_ratio: float = 0.5, max_steps: int = 6,
             eps: float = 1e-3) -> np.ndarray:
    """The features after potential-energy descent (the module docstring, question 1).

    ``mu``/``var``: per-dimension reference moments to standardise by; None: the sample's own.
    Every image of a class moves with its class. Returns a new float64 array.
    """
    x = np.array(x, np.float64)
    y = np.asarray(y)
    if mu is None:
        mu, sd = x.mean(0), x.std(0)
    else:
        sd = np.sqrt(np.asarray(var, np.float64))
    sd = np.maximum(sd, eps)
    classes, idx = np.unique(y, return_inverse=True)
    first = None
    for _ in range(max_steps):
        z = (x - mu) / sd
        means = np.stack([z[idx == k].mean(0) for k in range(classes.size)])
        radius = np.sqrt(np.array([z[idx == k].var(0).sum() for k in range(classes.size)]))
        diff = means[:, None, :] - means[None, :, :]                      # μ_i − μ_j
        dist = np.linalg.norm(diff, axis=2)
        overlap = np.maximum(nsigma * (radius[:, None] + radius[None, :]) - dist, 0.0)
        np.fill_diagonal(overlap, 0.0)
        step = np.minimum(0.5 * dt * dt * overlap, overlap)
        unit = np.divide(diff, dist[..., None], out=np.zeros_like(diff), where=dist[..., None] > 0)
        disp = (step[..., None] * unit).sum(1)                            # (classes, d), standardised
        moved = float(np.abs(disp).sum())
        first = moved if first is None else first
        if first == 0 or moved / first <= exit_ratio:
            break
        x = x + (disp * sd)[idx]
    return x


def read_pairs() -> tuple[dict, dict]:
    """``{target: {backbone: row}}`` and ``{target: split}``."""
    rows: dict = collections.defaultdict(dict)
    split = {}
    for p in PAIRS:
        for r in csv.DictReader(p.open()):
            rows[r["target"]][r["backbone"]] = r
            split[r["target"]] = r["split"]
    return dict(rows), split


def extract(targets: list[str], backbones: list[str], work: Path) -> None:
    """Pooled features at every depth, per target (cached in ``work``), through timm's local-dir loader."""
    import timm
    import torch
    from PIL import Image

    from .evaluate_v2 import write_user_images

    work.mkdir(parents=True, exist_ok=True)
    todo = [t for t in targets if not (work / f"{t}.pkl").is_file()]
    if not todo:
        return
    models = {b: timm.create_model(f"local-dir:{(BACKBONES / b).resolve()}", pretrained=True, num_classes=0).eval()
              for b in backbones}
    for i, t in enumerate(todo, 1):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_user_images(t, Path(tmp) / t)
            classes = sorted(d.name for d in folder.iterdir())
            imgs, ys = [], []
            for ci, c in enumerate(classes):
                for f in sorted((folder / c).glob("*.png")):
                    imgs.append(np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.BILINEAR),
                                           np.float32) / 255.0)
                    ys.append(ci)
        x = torch.from_numpy((np.stack(imgs) - 0.5) / 0.5).permute(0, 3, 1, 2).contiguous()
        feats = {}
        with torch.no_grad():
            for b, m in models.items():
                parts = []
                for j in range(0, len(x), 128):
                    inter = m.forward_intermediates(x[j:j + 128], intermediates_only=True)
                    pooled = [z.mean((2, 3)) if z.ndim == 4 else z.mean(1) for z in inter]
                    parts.append([q.double().numpy() for q in pooled] + [m(x[j:j + 128]).double().numpy()])
                feats[b] = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        with (work / f"{t}.pkl").open("wb") as fh:
            pickle.dump({"y": np.array(ys), "feats": feats}, fh)
        print(f"[{i}/{len(todo)}] {t}: {len(ys)} images, {time.perf_counter() - t0:.1f} s", flush=True)


def logme_or_last(x: np.ndarray, y: np.ndarray) -> float:
    """LogME of ``x`` on labels ``y``; degenerate features (e.g. an all-zero depth) rank last (−1e9)."""
    from proximity.errors import NumericalError
    from proximity.signals.kernels import logme

    try:
        return float(logme(x, y))
    except NumericalError:
        return -1e9


def loto_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, split: np.ndarray) -> dict[str, float]:
    """AUROC of a penalised logistic (C = 1, features standardised on the training fold) fitted
    leaving each group (target) out, overall and per split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    p = np.zeros(len(y))
    for g in np.unique(groups):
        m = groups == g
        mu, sd = x[~m].mean(0), x[~m].std(0) + 1e-12
        p[m] = LogisticRegression(C=1.0).fit((x[~m] - mu) / sd, y[~m]).predict_proba((x[m] - mu) / sd)[:, 1]
    return {"all": round(float(roc_auc_score(y, p)), 4),
            **{s: round(float(roc_auc_score(y[split == s], p[split == s])), 4) for s in np.unique(split)}}


def _z(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return (v - v.mean()) / (v.std() + 1e-12)


def _mean_by(values: dict[str, float], split: dict[str, str]) -> dict[str, float]:
    by = collections.defaultdict(list)
    for t, v in values.items():
        by[split[t]].append(v)
    return {"all": round(float(np.mean(list(values.values()))), 4),
            **{s: round(float(np.mean(v)), 4) for s, v in sorted(by.items())}}


def rankers(rows: dict, split: dict, work: Path) -> dict[str, dict[str, float]]:
    """Mean weighted τ per ranker, overall and per split."""
    from scipy.stats import weightedtau

    from proximity.reference import load_reference

    lm = logme_or_last
    refs = {}
    for b in sorted(next(iter(rows.values()))):
        r = load_reference(BACKBONES / b / "reference.npz")
        refs[b] = (r.mu.astype(np.float64), np.diag(r.covariance()))
    taus: dict = collections.defaultdict(dict)
    for t in sorted(rows):
        with (work / f"{t}.pkl").open("rb") as fh:
            d = pickle.load(fh)
        y, bbs = d["y"], sorted(rows[t])
        acc = [float(rows[t][b]["finetuned"]) for b in bbs]
        depth = {b: [lm(x, y) for x in d["feats"][b]] for b in bbs}
        page = np.array([float(rows[t][b]["logme"]) for b in bbs])
        head = np.array([depth[b][-1] for b in bbs])
        if not np.allclose(head, page, atol=1e-6, rtol=0):
            raise SystemExit(f"{t}: the final features' LogME differs from the page's "
                             f"(max {np.abs(head - page).max():.2e}): not the same images or weights")
        col = {k: _z([float(rows[t][b][k]) for b in bbs]) for k in ("logme", "knn", "probe", "params", "finetune")}
        scores = {
            "logme": head,
            "z-mean(logme, knn) [shipped rule]": col["logme"] + col["knn"],
            "z-mean(logme, knn, probe)": col["logme"] + col["knn"] + col["probe"],
            "finetune": col["finetune"],
            "z-mean(logme, finetune)": col["logme"] + col["finetune"],
            "z-mean(logme, finetune, params)": col["logme"] + col["finetune"] + col["params"],
            "logme, last intermediate stage": [depth[b][-2] for b in bbs],
            "logme, the stage before": [depth[b][-3] for b in bbs],
            "logme, max over depths": [max(depth[b]) for b in bbs],
            "logme, max over the last three": [max(depth[b][-3:]) for b in bbs],
            "logme, mean over the last three": [float(np.mean(depth[b][-3:])) for b in bbs],
            "logme, mean over depths": [float(np.mean(depth[b])) for b in bbs],
            "logme of the last two stages concatenated": [lm(np.concatenate(d["feats"][b][-3:-1], 1), y) for b in bbs],
        }
        for ns, dt, by in PED_VARIANTS:
            moved = [ped_move(d["feats"][b][-1], y, *(refs[b] if by == "reference" else (None, None)),
                              nsigma=ns, dt=dt) for b in bbs]
            scores[f"PED(nσ {ns}, dt {dt}, by {by}) + logme"] = [lm(x, y) for x in moved]
        for name, s in scores.items():
            taus[name][t] = float(weightedtau(np.asarray(s, np.float64), acc).statistic)
    return taus


def risk_loto(rows: dict, split: dict) -> dict[str, dict]:
    """The negative-transfer label, leave-one-target-out, per evidence set (penalised logistic, C = 1)."""
    g = float
    sets = {
        "probe − scratch": lambda r: [g(r["probe"]) - g(r["scratch"])],
        "finetune − scratch": lambda r: [g(r["finetune"]) - g(r["scratch"])],
        "probe, scratch, gain [shipped features]": lambda r: [g(r["probe"]), g(r["scratch"]), g(r["gain"])],
        "probe, scratch, finetune, gain": lambda r: [g(r["probe"]), g(r["scratch"]), g(r["finetune"]), g(r["gain"])],
        "… + log(images per class), logme": lambda r: [g(r["probe"]), g(r["scratch"]), g(r["finetune"]), g(r["gain"]),
                                                       np.log(g(r["n_images"]) / g(r["n_classes"])), g(r["logme"])],
    }
    flat = [r for t in sorted(rows) for r in rows[t].values()]
    y = np.array([int(r["negative"] in ("1", "True")) for r in flat])
    tg = np.array([r["target"] for r in flat])
    sp = np.array([split[t] for t in tg])
    out = {"pairs": len(flat), "negative_rate": round(float(y.mean()), 4)}
    for name, f in sets.items():
        out[name] = loto_auroc(np.array([f(r) for r in flat]), y, tg, sp)
    return out


def detectable(taus: dict[str, dict[str, float]], base: str = "logme", n_test: int = 12) -> dict[str, dict]:
    """Per-target τ differences against ``base``: their mean, sd, and the standard error on ``n_test`` targets."""
    out = {}
    for name in ("z-mean(logme, knn) [shipped rule]", "z-mean(logme, knn, probe)"):
        d = np.array([taus[name][t] - taus[base][t] for t in taus[base]])
        sd = float(d.std(ddof=1))
        out[name] = {"mean_difference": round(float(d.mean()), 4), "sd": round(sd, 4),
                     f"se_on_{n_test}_targets": round(sd / np.sqrt(n_test), 4)}
    return out


def finetune_runs() -> dict[tuple[str, str], dict[tuple[float, int], dict]]:
    """Protocols 2–4's fine-tuning records: ``{(target, backbone): {(lr, seed): record}}``."""
    from .finetune import read_records

    runs: dict = collections.defaultdict(dict)
    for v in ("v2", "v3", "v4"):
        for r in read_records(RESULTS / v / "groundtruth.jsonl"):
            if r["kind"] == "finetune" and r.get("protocol") in (2, 3, 4):
                runs[(r["target"], r["model"])][(r["lr"], r["seed"])] = r
    return dict(runs)


def chosen_rate(runs: dict[tuple[float, int], dict]) -> float:
    """The learning rate seed 0 chose on its hold-out (ties to the lower rate), as the ground truth does."""
    return max((k for k in runs if k[1] == 0), key=lambda k: (runs[k]["val_acc"], -k[0]))[0]


def finetune_bound(rows: dict, split: dict) -> dict[str, dict[str, float]]:
    """What fine-tunes on the user's images could rank, read from the ground truth's own runs.

    Protocol 2–4's ground truth trains every backbone on 70 % of the user's images and scores it on
    the other 30 % (``val_acc``) as well as on the target's separate test set (``test_acc``): seed 0
    at three head learning rates (3e-4, 1e-3, 3e-3; the backbone at a tenth), then seeds 1–4 at the
    rate seed 0 chose. So a run's hold-out accuracy is what a fine-tune on the sample sees, and
    seeds 3–4's mean test accuracy is the target: no ranker below trained those runs, but the rate
    they ran at was chosen on seed 0's hold-out, which two rankers read (the best of the sweep,
    the highest rate), and seeds 1–2's hold-out images are the same. Every ranker here,
    LogME included, is scored against that target (so its figures are not the page's, which use
    seeds 1–4). ``finetune`` (proximity's signal: the middle rate, no flips, its own 70/30 split)
    is next to them for comparison; the ground truth's runs use flips where the target allows."""
    from scipy.stats import weightedtau

    recs = finetune_runs()
    taus: dict = collections.defaultdict(dict)
    for t in sorted(rows):
        bbs = sorted(rows[t])
        f = {}
        for b in bbs:
            runs = recs[(t, b)]
            lr = chosen_rate(runs)
            val = {s: runs[(lr, s)]["val_acc"] for s in (0, 1, 2)}
            f[b] = {"target": float(np.mean([runs[(lr, s)]["test_acc"] for s in (3, 4)])),
                    "ceiling": float(np.mean([runs[(lr, s)]["test_acc"] for s in (1, 2)])),
                    "fixed": runs[(1e-3, 0)]["val_acc"], "high": runs[(3e-3, 0)]["val_acc"],
                    "low": runs[(3e-4, 0)]["val_acc"], "swept": val[0], "swept+1": val[1],
                    "swept+2": float(np.mean([val[1], val[2]]))}
        col = {k: _z([f[b][k] for b in bbs]) for k in ("fixed", "high", "low", "swept", "swept+1", "swept+2")}
        logme = _z([float(rows[t][b]["logme"]) for b in bbs])
        scores = {
            "logme": logme,
            "finetune (proximity's signal)": [float(rows[t][b]["finetune"]) for b in bbs],
            "1 fine-tune at the lowest rate, 3e-4 (1 training)": col["low"],
            "1 fine-tune at the middle rate, 1e-3 (1 training)": col["fixed"],
            "1 fine-tune at the highest rate, 3e-3 (1 training)": col["high"],
            "the best of the 3-rate sweep (3 trainings)": col["swept"],
            "1 fine-tune at the swept rate (4 trainings)": col["swept+1"],
            "2 fine-tunes at the swept rate (5 trainings)": col["swept+2"],
            "z-mean(logme, 1 at the highest rate)": logme + col["high"],
            "z-mean(logme, best of the sweep)": logme + col["swept"],
            "z-mean(logme, 1 at the swept rate)": logme + col["swept+1"],
            "z-mean(logme, 2 at the swept rate)": logme + col["swept+2"],
            "noise ceiling: seeds 1-2's test accuracy": [f[b]["ceiling"] for b in bbs],
        }
        target = [f[b]["target"] for b in bbs]
        for name, s in scores.items():
            taus[name][t] = float(weightedtau(np.asarray(s, np.float64), target).statistic)
    return {name: _mean_by(v, split) for name, v in taus.items()}


def residuals(rows: dict) -> dict[str, dict[str, float]]:
    """What LogME misses: per backbone and per architecture, the mean over targets of
    z(fine-tuned accuracy) − z(LogME), both standardised within the target (positive: fine-tunes
    better than its LogME says)."""
    by_bb: dict = collections.defaultdict(list)
    by_arch: dict = collections.defaultdict(list)
    for t in sorted(rows):
        bbs = sorted(rows[t])
        d = _z([float(rows[t][b]["finetuned"]) for b in bbs]) - _z([float(rows[t][b]["logme"]) for b in bbs])
        for b, v in zip(bbs, d, strict=True):
            by_bb[b].append(v)
            by_arch[rows[t][b]["arch"]].append(v)

    def summary(d):
        return {k: {"mean": round(float(np.mean(v)), 3), "se": round(float(np.std(v, ddof=1) / np.sqrt(len(v))), 3)}
                for k, v in sorted(d.items())}
    return {"by_backbone": summary(by_bb), "by_architecture": summary(by_arch)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=WORK,
                    help="where the extracted features are cached (about 150 MB)")
    ap.add_argument("--out", type=Path, default=RESULTS / "plateau.json")
    args = ap.parse_args(argv)
    rows, split = read_pairs()
    backbones = sorted(next(iter(rows.values())))
    extract(sorted(rows), backbones, args.work)
    taus = rankers(rows, split, args.work)
    table = {name: _mean_by(v, split) for name, v in taus.items()}
    result = {"targets": len(rows), "backbones": len(backbones),
              "splits": dict(collections.Counter(split.values())),
              "mean_weighted_tau": table, "difference_to_logme": detectable(taus),
              "finetune_on_the_sample_vs_seeds_3_4": finetune_bound(rows, split),
              "logme_residual": residuals(rows), "risk_loto_auroc": risk_loto(rows, split)}
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    w = max(map(len, table))
    for name, v in table.items():
        print(f"{name:{w}s}  " + "  ".join(f"{k} {x:.3f}" for k, x in v.items()))
    print(json.dumps(result["difference_to_logme"], indent=1, ensure_ascii=False))
    for name, v in result["finetune_on_the_sample_vs_seeds_3_4"].items():
        print(f"{name:45s}  " + "  ".join(f"{k} {x:.3f}" for k, x in v.items()))
    print(json.dumps(result["logme_residual"]["by_architecture"], ensure_ascii=False))
    print(json.dumps(result["risk_loto_auroc"], indent=1, ensure_ascii=False))
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
