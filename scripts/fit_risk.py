"""Fit the negative-transfer risk model on the benchmark's dev targets and write it as data.

    python scripts/fit_risk.py [--pairs scripts/bench/results/pairs.csv] [--out catalog/risk_model.json]

Reads the per-pair rows that ``scripts/bench/evaluate.py`` writes (signals of every (target,
backbone) pair, and whether fine-tuning ended below training from scratch), keeps the **dev**
targets only, and for each variant (``labels``, ``label-free``) chooses a feature set and an L2
strength by leave-one-target-out log loss among the documented candidates below, then fits it on
all dev rows. Logistic regression on standardised features by Newton's method, the intercept
unpenalised; the coefficient covariance is the inverse of the penalised Hessian (what the
90 % intervals of :mod:`proximity.risk` use). Deterministic: the same rows give the same file.

Protocol 2 (``--protocol 2``, the v2 pairs of ``scripts/bench/evaluate_v2.py``): richer
candidates — the gain with its spread, images per class and their interaction, the candidate's
probe relative to the run's best (``probe_gap``), LogME, the random-weights-relative label-free
signals, parameters per image — and the coefficient covariance from a bootstrap over dev
*targets* (``--bootstrap``; refits on resampled targets) instead of the Laplace approximation,
so the 90 % intervals carry the between-target variation. From protocol v2.3 on, when the pairs
carry the ``scratch`` signal (the labelled runs were scored with ``--scratch``), a third variant,
``labels+scratch``, is chosen the same way among :data:`CANDIDATES_V23`'s feature sets (the probe
against the architecture trained from scratch on the sample, and what may add to it). From v2.4 on,
when the pairs carry ``frechet_excess``, a fourth variant, ``label-free+reference``, for candidates
with reference statistics (:data:`CANDIDATES_V24`: the label-free distance made comparable across
architectures); the plain label-free variant stays for the many catalog entries without a reference.
A variant that needs such extra evidence ships only when it beats the variant it would replace on the
same dev rows by more than the tie margin (:func:`drop_unhelpful`); otherwise the model's provenance
records it under ``dropped_variants``. From v2.5 on, when the pairs carry ``finetune`` (the labelled
runs were scored with ``--finetune`` too), a fifth variant is fitted, ``labels+finetune``
(:data:`CANDIDATES_V25`: the candidate fine-tuned on the sample against the architecture trained
from scratch on the same hold-out); it ships only if it beats the surviving variant below it
(``labels+scratch``, else ``labels``) on the same dev rows.

Refit after a new ground truth: ``python scripts/bench/evaluate.py && python scripts/fit_risk.py
&& python scripts/bench/evaluate.py`` (the second evaluation reports the new model on test).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import subprocess
from datetime import date
from pathlib import Path

import numpy as np

from proximity.risk import features

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = {
    "labels": [("gain",), ("gain_z",), ("gain", "log_shift"), ("gain_z", "log_shift"), ("gain", "log_per_class"),
               ("gain", "log_shift", "log_per_class"), ("gain", "gain_z")],
    "label-free": [(), ("log_shift",), ("log_frechet",), ("log_shift", "log_frechet"), ("log_shift", "log_n")],
}
CANDIDATES_V2 = {
    "labels": [("gain",), ("gain_z",), ("gain", "log_per_class"), ("gain", "log_per_class", "gain_x_per_class"),
               ("gain", "probe_gap"), ("gain_z", "probe_gap"), ("gain", "probe_gap", "log_per_class"),
               ("gain", "logme"), ("gain", "log_rankme_rel"), ("gain", "probe_gap", "log_params_per_image")],
    "label-free": [(), ("log_rankme_rel",), ("cluster_rel",), ("log_rankme_rel", "cluster_rel"), ("log_shift",),
                   ("log_rankme_rel", "log_params_per_image"), ("log_rankme_rel", "log_per_class")],
}
#: Protocol 2.3: a third variant for runs that trained the architectures from scratch (--scratch).
CANDIDATES_V23 = {
    "labels+scratch": [("probe_minus_scratch",), ("probe", "scratch"), ("probe_minus_scratch", "gain"),
                       ("probe_minus_scratch", "log_per_class"), ("probe_minus_scratch", "probe_gap"),
                       ("probe_minus_scratch", "log_rankme_rel"), ("probe", "scratch", "gain"),
                       ("probe_minus_scratch", "gain", "log_rankme_rel")],
    **CANDIDATES_V2,
}
#: Protocol 2.4: a label-free variant for candidates with reference statistics, on the null-normalised
#: Fréchet distance (``frechet_excess``); the plain label-free variant stays for those without.
CANDIDATES_V24 = {
    **CANDIDATES_V23,
    "label-free+reference": [("log_frechet_excess",), ("log_frechet_excess", "log_params_per_image"),
                             ("log_frechet_excess", "log_rankme_rel")],
}
#: Protocol 2.5: a variant for runs that also fine-tuned each candidate briefly on the sample
#: (--finetune with --scratch): fine-tuning against training from scratch on the same hold-out.
CANDIDATES_V25 = {
    "labels+finetune": [("finetune_minus_scratch",), ("finetune", "scratch"), ("finetune_minus_scratch", "gain"),
                        ("finetune_minus_scratch", "probe_minus_scratch"),
                        ("finetune_minus_scratch", "log_per_class"),
                        ("finetune_minus_scratch", "finetune_minus_probe")],
    **CANDIDATES_V24,
}
LAMBDAS = (0.3, 1.0, 3.0)       # L2 strength on the standardised coefficients
TIE = 0.005                     # log-loss difference treated as a tie (then: fewer features, stronger penalty)


def read_rows(path: Path) -> list[dict]:
    def num(v):
        return None if v in ("", "None") else float(v)
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            ev = {"gain": num(r["gain"]), "gain_sd": num(r["gain_sd"]), "probe": num(r["probe"]),
                  "early_shift": num(r["early_shift"]), "frechet": num(r["frechet"]),
                  "n_images": num(r["n"]), "n_classes": num(r["classes"])}
            rows.append({"target": r["target"], "split": r["split"], "y": int(r["negative"]), "f": features(ev)})
    return rows


def read_rows_v2(path: Path) -> list[dict]:
    """Rows of evaluate_v2's pairs.csv, with the run-level ``probe_gap`` computed per target."""
    def num(v):
        return None if v in ("", "None", None) else float(v)
    raw = list(csv.DictReader(open(path, newline="")))
    best: dict = {}
    for r in raw:
        if num(r.get("probe")) is not None:
            best[r["target"]] = max(best.get(r["target"], -1.0), num(r["probe"]))
    rows = []
    for r in raw:
        probe = num(r.get("probe"))
        ev = {"gain": num(r.get("gain")), "gain_sd": num(r.get("gain.sd")), "probe": probe,
              "early_shift": num(r.get("early_shift")), "frechet": num(r.get("frechet")),
              "n_images": num(r["n_images"]), "n_classes": num(r["n_classes"]), "logme": num(r.get("logme")),
              "rankme_rel": num(r.get("rankme_rel")), "cluster_rel": num(r.get("cluster_rel")),
              "params_log10": num(r.get("params")),
              # the --scratch signal; files before v2.3 have no "scratch_gt" column and their
              # "scratch" is the ground truth's from-scratch accuracy, which no run may see
              "scratch": num(r.get("scratch")) if "scratch_gt" in r else None,
              "frechet_excess": num(r.get("frechet_excess")),
              "finetune": num(r.get("finetune")),
              "probe_gap": None if probe is None or r["target"] not in best else probe - best[r["target"]]}
        rows.append({"target": r["target"], "split": r["split"], "y": int(r["negative"]), "f": features(ev)})
    return rows


def bootstrap_cov(rows: list[dict], feats: tuple[str, ...], lam: float, mean, scale, n: int,
                  seed: int = 0) -> np.ndarray:
    """Covariance of (intercept, coef) over refits on dev targets resampled with replacement."""
    targets = sorted({r["target"] for r in rows})
    by = {t: [r for r in rows if r["target"] == t] for t in targets}
    rng = np.random.default_rng(seed)
    ws = []
    for _ in range(n):
        pick = [r for t in rng.choice(targets, len(targets)) for r in by[t]]
        x, y = _matrix(pick, feats)
        if 0 < y.sum() < len(y):
            ws.append(fit((x - mean) / scale, y, lam)[0])
    return np.cov(np.array(ws), rowvar=False).reshape(len(feats) + 1, len(feats) + 1)


def fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Penalised logistic regression by Newton; returns (w with intercept first, covariance)."""
    a = np.hstack([np.ones((len(x), 1)), x])
    pen = np.full(a.shape[1], lam)
    pen[0] = 0.0
    w = np.zeros(a.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-a @ w))
        grad = a.T @ (p - y) + pen * w
        h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(pen) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(h, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    p = 1.0 / (1.0 + np.exp(-a @ w))
    h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(pen) + 1e-9 * np.eye(a.shape[1])
    return w, np.linalg.inv(h)


def _matrix(rows: list[dict], feats: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([[r["f"][k] for k in feats] for r in rows], float).reshape(len(rows), len(feats)), \
        np.array([r["y"] for r in rows], float)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0) if x.size else np.zeros(x.shape[1])
    scale = x.std(0) if x.size else np.ones(x.shape[1])
    return mean, np.where(scale > 1e-12, scale, 1.0)


def loto_logloss(rows: list[dict], feats: tuple[str, ...], lam: float) -> float:
    """Leave-one-target-out log loss over all rows."""
    losses = []
    for t in sorted({r["target"] for r in rows}):
        tr = [r for r in rows if r["target"] != t]
        te = [r for r in rows if r["target"] == t]
        x, y = _matrix(tr, feats)
        mean, scale = _standardise(x)
        w, _ = fit((x - mean) / scale, y, lam)
        xt, yt = _matrix(te, feats)
        p = 1.0 / (1.0 + np.exp(-(w[0] + ((xt - mean) / scale) @ w[1:])))
        p = np.clip(p, 1e-6, 1 - 1e-6)
        losses += (-(yt * np.log(p) + (1 - yt) * np.log(1 - p))).tolist()
    return float(np.mean(losses))


def fit_variant(all_rows: list[dict], name: str, candidates: dict | None = None, bootstrap: int = 0) -> dict:
    # candidates are compared on the rows where every candidate's features exist (one failed control
    # must not rule a whole feature out); the number of rows left out is recorded
    candidates = candidates or CANDIDATES
    needed = {k for feats in candidates[name] for k in feats}
    rows = [r for r in all_rows if all(r["f"][k] is not None for k in needed)]
    if len({r["target"] for r in rows}) < 3:
        raise SystemExit(f"{name}: fewer than 3 dev targets have every feature ({len(rows)} rows)")
    table = []
    for feats in candidates[name]:
        for lam in LAMBDAS:
            table.append({"features": list(feats), "lambda": lam,
                          "loto_logloss": round(loto_logloss(rows, feats, lam), 5)})
    ok = table
    best = min(c["loto_logloss"] for c in ok)
    chosen = min((c for c in ok if c["loto_logloss"] <= best + TIE), key=lambda c: (len(c["features"]), -c["lambda"]))
    feats = tuple(chosen["features"])
    x, y = _matrix(rows, feats)
    mean, scale = _standardise(x)
    w, cov = fit((x - mean) / scale, y, chosen["lambda"])
    if bootstrap:
        cov = bootstrap_cov(rows, feats, chosen["lambda"], mean, scale, bootstrap)
    return {"features": list(feats), "mean": mean.tolist(), "scale": scale.tolist(), "intercept": float(w[0]),
            "coef": w[1:].tolist(), "cov": cov.tolist(), "lambda": chosen["lambda"],
            "range": [x.min(0).tolist() if x.size else [], x.max(0).tolist() if x.size else []],
            "n_rows": len(rows), "n_rows_left_out": len(all_rows) - len(rows),
            "n_negative": int(y.sum()), "base_rate": float(y.mean()),
            "loto_logloss": chosen["loto_logloss"], "selection": table}


#: A variant that needs more evidence than another (more than a run always has) and the variant a
#: candidate falls back to without it.
FALLBACK = {"labels+finetune": "labels+scratch", "labels+scratch": "labels", "label-free+reference": "label-free"}


def _depth(name: str) -> int:
    """How many fallbacks lie below ``name`` in :data:`FALLBACK` (0 for a variant that has none)."""
    return 0 if name not in FALLBACK else 1 + _depth(FALLBACK[name])


def drop_unhelpful(variants: dict, all_rows: list[dict]) -> dict:
    """Remove (in place) each variant of :data:`FALLBACK` whose leave-one-target-out log loss on its
    dev rows is not lower than its fallback's chosen model's on the same rows by more than
    :data:`TIE`: evidence that some runs lack earns its own model only by predicting better.
    Returns what was dropped and why (recorded in the model's provenance)."""
    dropped = {}
    # the chain's bottom first (labels+scratch before labels+finetune), each variant against the
    # first of its fallbacks that survives: the model it would really replace
    for name in sorted(FALLBACK, key=_depth):
        if name not in variants:
            continue
        base = FALLBACK[name]
        while base not in variants and base in FALLBACK:
            base = FALLBACK[base]
        if base not in variants:
            raise SystemExit(f"{name}: no fallback variant ({FALLBACK[name]}) to compare it with")
        v, b = variants[name], variants[base]
        rows = [r for r in all_rows if all(r["f"][k] is not None for k in (*v["features"], *b["features"]))]
        own, fallback = loto_logloss(rows, tuple(v["features"]), v["lambda"]), loto_logloss(
            rows, tuple(b["features"]), b["lambda"])
        if own >= fallback - TIE:
            del variants[name]
            dropped[name] = {"features": v["features"], "lambda": v["lambda"], "loto_logloss": round(own, 5),
                             "fallback": base, "fallback_loto_logloss": round(fallback, 5), "rows": len(rows),
                             "why": f"not better than the {base} model on the same dev rows by more than {TIE}",
                             "selection": v["selection"]}
    return dropped


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=Path, default=ROOT / "scripts" / "bench" / "results" / "pairs.csv")
    ap.add_argument("--out", type=Path, default=ROOT / "catalog" / "risk_model.json")
    ap.add_argument("--protocol", type=int, choices=(1, 2), default=1,
                    help="2: the v2 pairs (default scripts/bench/results/v2.5/pairs.csv) and candidates")
    ap.add_argument("--bootstrap", type=int, default=None,
                    help="coefficient covariance from this many target-bootstrap refits [protocol 2: 200]")
    ap.add_argument("--splits", nargs="+", default=["dev"], metavar="SPLIT",
                    help="the splits of PAIRS fitted on [dev]; protocol 4: every split of results/v3/pairs.csv "
                         "(dev test test-v3: the 40 targets protocols 2 and 3 have read)")
    args = ap.parse_args(argv)
    if args.protocol == 2 and args.pairs == ROOT / "scripts" / "bench" / "results" / "pairs.csv":
        args.pairs = ROOT / "scripts" / "bench" / "results" / "v2.5" / "pairs.csv"
    boot = args.bootstrap if args.bootstrap is not None else (200 if args.protocol == 2 else 0)
    reader = read_rows_v2 if args.protocol == 2 else read_rows
    every = reader(args.pairs)
    unknown = sorted(set(args.splits) - {r["split"] for r in every})
    if unknown:
        raise SystemExit(f"{args.pairs} has no split {', '.join(unknown)} (it has "
                         f"{', '.join(sorted({r['split'] for r in every}))})")
    rows = [r for r in every if r["split"] in args.splits]
    if len({r["target"] for r in rows}) < 3:
        raise SystemExit(f"{args.pairs}: fewer than 3 dev targets — run scripts/bench/evaluate.py on the full ground "
                         "truth first")
    if args.protocol == 2:      # the scratch variant only where the pairs have the scratch signal (v2.3 on),
        # the null-normalised Fréchet distance only where they have frechet_excess (v2.4 on)
        cands = (CANDIDATES_V25 if any(r["f"]["finetune"] is not None for r in rows) else
                 CANDIDATES_V24 if any(r["f"]["log_frechet_excess"] is not None for r in rows) else
                 CANDIDATES_V23 if any(r["f"]["scratch"] is not None for r in rows) else CANDIDATES_V2)
    else:
        cands = CANDIDATES
    variants = {name: fit_variant(rows, name, cands, boot) for name in cands}
    dropped = drop_unhelpful(variants, rows)
    try:
        code = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        code = "unknown"
    gt = args.pairs.parent / "groundtruth.jsonl"
    if not gt.is_file():     # a later protocol version's pairs (results/v2.2) on v2's ground truth
        gt = ROOT / "scripts" / "bench" / "results" / "v2" / "groundtruth.jsonl"
    from proximity.risk import FEATURE_SIGNALS
    from proximity.signals import signal_versions

    used = {s for v in variants.values() for f in v["features"] for s in FEATURE_SIGNALS.get(f, (f,))}
    doc = {"schema": 1, "variants": variants, "provenance": {
        "signal_versions": {s: signal_versions()[s] for s in sorted(used)},
        "fitted": date.today().isoformat(), "script": "scripts/fit_risk.py", "code_version": code,
        "pairs": {"file": str(args.pairs.relative_to(ROOT)) if args.pairs.is_relative_to(ROOT) else str(args.pairs),
                  "sha256": _sha(args.pairs)},
        "groundtruth": {"file": str(gt.relative_to(ROOT)) if gt.is_relative_to(ROOT) else str(gt), "sha256": _sha(gt),
                        "protocol": args.protocol},
        "covariance": f"bootstrap over dev targets ({boot} refits)" if boot else "Laplace (inverse penalised Hessian)",
        "dev_targets": sorted({r["target"] for r in rows}),
        **({"dev_splits": list(args.splits),
            "protocol": "protocol 4: fitted on every target protocols 2 and 3 have read (results/v4/PROTOCOL.md)"}
           if args.splits != ["dev"] else {}),
        **({"dropped_variants": dropped} if dropped else {}),
        "coverage": "benchmark v2: 17 small backbones (timm test_resnet / test_convnext / test_vit / "
                    "test_efficientnet and a 1.5x-wide ResNet generalist, 64 px) pretrained on 8 synthetic and real "
                    "domains; 64 px targets of 24-400 user images, 2-10 classes" if args.protocol == 2 else
                    "benchmark tier 1: 9 small backbones (timm test_resnet / test_convnext / test_vit, 64 px) "
                    "pretrained on 5 synthetic and real domains; 64 px targets of 40-240 training images, "
                    "2-10 classes"}}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for name, d in dropped.items():
        print(f"{name}: dropped — LOTO log loss {d['loto_logloss']:.4f} against {d['fallback_loto_logloss']:.4f} "
              f"for {d['fallback']} on the same {d['rows']} rows ({d['why']})")
    for name, v in variants.items():
        print(f"{name:10s} features {v['features']} λ {v['lambda']}: LOTO log loss {v['loto_logloss']:.4f} "
              f"(base rate {v['base_rate']:.2f}, log loss {_h(v['base_rate']):.4f}); "
              f"{v['n_negative']}/{v['n_rows']} negative")
    print(f"wrote {args.out}")


def _h(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0


if __name__ == "__main__":
    main()
