"""Evaluate every ranker against the fine-tuning ground truth and write the results page.

    python scripts/bench/evaluate.py [--out DIR] [--store FILE] [--page FILE]

For each target with complete ground truth (every backbone and every scratch architecture with
3 seeds at its best learning rate), ``proximity.rank`` scores the benchmark backbones on the
target's *training* split (what a user would hold), with labels and label-free. Rankers:
proximity's fit (labels / label-free), each signal alone, the static prior (the backbone's
held-out source-task accuracy: the "fame" of this zoo) and random. Per target: weighted Kendall τ
(``scipy.stats.weightedtau(score, finetuned_acc)``), top-1 regret (accuracy lost by taking the
top pick) and top-3 hit; mean over dev and over test targets with 95 % bootstrap intervals over
targets. Risk: AUROC and Brier score of proximity's risk against the negative-transfer labels
(fine-tuned mean below from-scratch mean), next to the base rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import weightedtau

sys.path.insert(0, str(Path(__file__).parent))
from finetune import split  # noqa: E402
from targets import TARGETS, make_target  # noqa: E402

SIGNALS = {"probe": 1, "knn": 1, "logme": 1, "gain": 1, "early_shift": -1, "frechet": -1}


def ground_truth(store: Path) -> tuple[dict, dict]:
    """(finetuned[(model, target)] = [accs], scratch[(arch, target)] = [accs]) at the best lr, 3 seeds."""
    recs = [json.loads(x) for x in store.read_text().splitlines() if x.strip()]
    by = {}
    for r in recs:
        by.setdefault((r["kind"], r["model"], r["target"]), []).append(r)
    out = {"finetune": {}, "scratch": {}}
    for (kind, model, target), rs in by.items():
        stage1 = [r for r in rs if r["seed"] == 0]
        if not stage1:
            continue
        best_lr = max(stage1, key=lambda r: r["val_acc"])["lr"]
        accs = [r["test_acc"] for r in rs if r["lr"] == best_lr]
        if len(accs) >= 3:
            out[kind][(model, target)] = accs
    return out["finetune"], out["scratch"]


def _write_split(target: str, folder: Path) -> Path:
    imgs, labels, names = make_target(target, 0)
    tr, _, _ = split(labels)
    for i in tr:
        d = folder / names[labels[i]]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(imgs[i]).save(d / f"{i:05d}.png")
    return folder


def score_targets(out: Path, targets: list[str], backbones: list[str]) -> dict:
    """proximity.rank on every target (with labels and label-free): {target: {mode: Ranking}}."""
    import proximity

    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog"  # entries that point at each backbone's own reference statistics
        catalog.mkdir()
        for b in backbones:
            folder = (out / "backbones" / b).resolve()
            (catalog / f"{b}.toml").write_text(f'source = "local-dir:{folder}"\nreference = "{folder / "reference.npz"}"\n')
        for t in targets:
            folder = _write_split(t, Path(tmp) / t)
            res[t] = {"labels": proximity.rank(folder, catalog=catalog, sample=None, batch_size=64),
                      "label-free": proximity.rank(folder, catalog=catalog, sample=None, labels="none", batch_size=64)}
    return res


def _boot(values: list[float], seed: int = 0) -> tuple[float, float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = [v[rng.integers(0, v.size, v.size)].mean() for _ in range(2000)]
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _metrics(score: dict, acc: dict) -> tuple[float | None, float, float]:
    names = [m for m in acc if score.get(m) is not None]
    if len(names) < 3:
        return None, float("nan"), float("nan")
    s, a = np.array([score[m] for m in names]), np.array([acc[m] for m in names])
    tau = weightedtau(s, a).statistic
    top = names[int(np.argmax(s))]
    best = max(acc.values())
    top3 = [names[i] for i in np.argsort(-s)[:3]]
    return float(tau), float(best - acc[top]), float(max(acc, key=acc.get) in top3)


def rankers(ranking_labels, ranking_free, prior: dict) -> dict[str, dict]:
    out = {"proximity (labels)": {c.model: c.fit for c in ranking_labels.ranking},
           "proximity (label-free)": {c.model: c.fit for c in ranking_free.ranking},
           "prior (source accuracy)": prior}
    for name, sign in SIGNALS.items():
        src = ranking_free if name in ("early_shift", "frechet") else ranking_labels
        out[name] = {c.model: (None if c.signals[name].value is None else sign * c.signals[name].value)
                     for c in src.ranking}
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size))


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=data_dir() / "bench")
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / "results" / "groundtruth.jsonl")
    ap.add_argument("--page", type=Path, default=Path(__file__).parent / "results" / "RESULTS.md")
    args = ap.parse_args(argv)
    ft, sc = ground_truth(args.store)
    meta = {p.parent.name: json.loads(p.read_text()) for p in (args.out / "backbones").glob("*/bench.json")}
    backbones = sorted(meta)
    archs = sorted({m["arch"] for m in meta.values()})
    complete = [t.name for t in TARGETS if all((b, t.name) in ft for b in backbones) and all((a, t.name) in sc for a in archs)]
    if not complete:
        raise SystemExit("no target has complete ground truth yet: run scripts/bench/finetune.py first")
    scored = score_targets(args.out, complete, backbones)
    prior = {b: meta[b]["val_accuracy"] for b in backbones}
    per, risk_rows = {}, []
    for t in complete:
        acc = {b: float(np.mean(ft[(b, t)])) for b in backbones}
        rk = rankers(scored[t]["labels"], scored[t]["label-free"], prior)
        rng = np.random.default_rng(0)
        rand = [_metrics({b: float(x) for b, x in zip(backbones, rng.random(len(backbones)))}, acc) for _ in range(200)]
        per[t] = {name: _metrics(score, acc) for name, score in rk.items()}
        per[t]["random (200 draws)"] = tuple(float(np.mean([r[i] for r in rand])) for i in range(3))
        for c in scored[t]["labels"].ranking:
            b = c.model
            neg = float(np.mean(ft[(b, t)]) < np.mean(sc[(meta[b]["arch"], t)]))
            risk_rows.append((t, b, c.risk, neg))
    write_page(args.page, per, risk_rows, complete, backbones, ft, sc, meta)
    print(f"wrote {args.page} ({len(complete)} targets)")


def write_page(page: Path, per, risk_rows, complete, backbones, ft, sc, meta) -> None:
    split_of = {t.name: t.split for t in TARGETS}
    names = list(next(iter(per.values())))
    lines = ["# Benchmark results", "", "Generated by `python scripts/bench/evaluate.py` from "
             "`groundtruth.jsonl` (protocol in `scripts/bench/finetune.py`). Targets with complete ground truth: "
             f"{len(complete)} ({', '.join(complete)}).", ""]
    for part in ("dev", "test"):
        ts = [t for t in complete if split_of[t] == part]
        lines += [f"## {part} targets ({len(ts)})", "", "| ranker | weighted τ (95 % CI) | top-1 regret | top-3 hit |", "|---|---|---|---|"]
        for name in names:
            tau, reg, hit = (_boot([per[t][name][i] for t in ts]) for i in range(3))
            lines.append(f"| {name} | {tau[0]:.2f} ({tau[1]:.2f}, {tau[2]:.2f}) | {reg[0] * 100:.1f} pts "
                         f"({reg[1] * 100:.1f}, {reg[2] * 100:.1f}) | {hit[0]:.2f} |")
        lines.append("")
    test_rows = [r for r in risk_rows if split_of[r[0]] == "test" and r[2] is not None]
    if test_rows:
        p = np.array([r[2] for r in test_rows])
        y = np.array([r[3] for r in test_rows])
        base = float(y.mean())
        lines += ["## Negative-transfer risk (v0, uncalibrated) on test targets", "",
                  f"{int(y.sum())} negative-transfer pairs of {y.size}. AUROC {auroc(p, y):.2f}; Brier {np.mean((p - y) ** 2):.3f} "
                  f"(base rate {base:.2f} gives Brier {np.mean((base - y) ** 2):.3f}).", ""]
    lines += ["## Fine-tuned test accuracy (mean of 3 seeds at the best learning rate) vs from scratch", "",
              "| target | " + " | ".join(backbones) + " | scratch (" + ", ".join(sorted({m['arch'] for m in meta.values()})) + ") |",
              "|---" * (len(backbones) + 2) + "|"]
    for t in complete:
        cells = [f"{np.mean(ft[(b, t)]):.2f}" for b in backbones]
        scratch = ", ".join(f"{np.mean(sc[(a, t)]):.2f}" for a in sorted({m['arch'] for m in meta.values()}))
        lines.append(f"| {t} ({split_of[t]}) | " + " | ".join(cells) + f" | {scratch} |")
    page.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
