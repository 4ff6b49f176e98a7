"""Evaluate every ranker against the fine-tuning ground truth and write the results page.

    python scripts/bench/evaluate.py [--out DIR] [--store FILE] [--page FILE] [--quick]

For each target with complete ground truth (every backbone and every scratch architecture with
3 seeds at its best learning rate), ``proximity.rank`` scores the benchmark backbones on the
target's *training* split (what a user would hold), with labels and label-free. Rankers:
proximity's fit (labels / label-free), each signal alone, the static prior (the backbone's
held-out source-task accuracy: the "fame" of this zoo) and random. Per target: weighted Kendall τ
(``scipy.stats.weightedtau(score, finetuned_acc)``), top-1 regret (accuracy lost by taking the
top pick) and top-3 hit; mean over dev and over test targets with 95 % bootstrap intervals over
targets. Risk: AUROC and Brier score of proximity's risk against the negative-transfer labels
(fine-tuned mean below from-scratch mean), next to the base rate. Cost: the wall time of the
proximity runs against the summed job time of the ground truth.

Besides the page it writes, next to it, ``pairs.csv`` (one row per (target, backbone): every
signal, the risk, fine-tuned and from-scratch accuracy, the negative-transfer label — what
``scripts/fit_risk.py`` fits the risk model on) and two plots (``tau.png``, ``reliability.png``).
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

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from .finetune import split  # noqa: E402
from .targets import TARGETS, make_target  # noqa: E402

SIGNALS = {"probe": 1, "knn": 1, "logme": 1, "gain": 1, "early_shift": -1, "frechet": -1}
#: target name → "dev" | "test"
SPLIT_OF = {t.name: t.split for t in TARGETS}


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


def _write_split(target: str, folder: Path, n_per_class: int | None = None) -> Path:
    imgs, labels, names = make_target(target, 0, n_per_class)
    tr, _, _ = split(labels)
    for i in tr:
        d = folder / names[labels[i]]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(imgs[i]).save(d / f"{i:05d}.png")
    return folder


def score_targets(out: Path | None, targets: list[str], backbones: list[str], n_per_class: int | None = None,
                  catalog: list[Path] | None = None) -> tuple[dict, dict]:
    """proximity.rank on every target, with labels and label-free, each without the evidence cache:
    ({target: {mode: Ranking}}, {target: {mode: wall seconds}}). The candidates are the benchmark
    backbones under ``out``, or the catalog entries ``catalog`` (the zoo tier)."""
    import time

    import proximity

    res, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        if catalog is None:
            catalog = Path(tmp) / "catalog"  # entries that point at each backbone's own reference statistics
            catalog.mkdir()
            for b in backbones:
                folder = (out / "backbones" / b).resolve()
                (catalog / f"{b}.toml").write_text(f'source = "local-dir:{folder}"\nreference = '
                                                   f'"{folder / "reference.npz"}"\n')
        for t in targets:
            folder = _write_split(t, Path(tmp) / t, n_per_class)
            res[t], seconds[t] = {}, {}
            for mode, labels in (("labels", "auto"), ("label-free", "none")):   # each cold: the cost a user pays
                t0 = time.perf_counter()
                res[t][mode] = proximity.rank(folder, catalog=catalog, sample=None, labels=labels, batch_size=64,
                                              use_cache=False, signals="all")
                seconds[t][mode] = time.perf_counter() - t0
    return res, seconds


def _boot(values: list[float], seed: int = 0) -> tuple[float, float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = [v[rng.integers(0, v.size, v.size)].mean() for _ in range(2000)]
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _metrics(score: dict, acc: dict) -> tuple[float | None, float, float]:
    """(weighted τ, top-1 regret, best in the top 3) of one target; τ None with fewer than 3 scored.
    The same score for every candidate orders nothing: τ 0 (as ``evaluate_v2.metrics``), not the NaN
    weightedtau returns, which the bootstrap would silently drop from the mean."""
    names = [m for m in acc if score.get(m) is not None]
    if len(names) < 3:
        return None, float("nan"), float("nan")
    s, a = np.array([score[m] for m in names]), np.array([acc[m] for m in names])
    tau = weightedtau(s, a).statistic if np.ptp(s) > 0 else 0.0
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
    """scikit-learn's ROC AUC (ties count half); NaN when ``labels`` hold one class only."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's Brier score, mean (p − y)²."""
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(y, p))


PAIR_SIGNALS = ("probe", "knn", "logme", "control", "gain", "early_shift", "frechet")


def pair_rows(scored: dict, ft: dict, sc: dict, arch_of: dict, split_of: dict) -> list[dict]:
    """One row per (target, backbone): signals (value and sd; early_shift/frechet from the
    label-free run, the rest from the run with labels), v0 risks, accuracies, the label."""
    from proximity.risk import load_model, risk_v0

    calibrated = load_model() is not None
    rows = []
    for t, runs in scored.items():
        free = {c.model: c for c in runs["label-free"].ranking}
        for c in runs["labels"].ranking:
            b, arch = c.model, arch_of[c.model]
            row = {"target": t, "split": split_of[t], "backbone": b, "arch": arch,
                   "n": runs["labels"].sample.n_images, "classes": runs["labels"].sample.n_classes,
                   "fit_labels": c.fit, "fit_free": free[b].fit if b in free else None,
                   "risk_v0": risk_v0(c.signals)[0], "risk_v0_free": risk_v0(free[b].signals)[0] if b in free else None}
            if calibrated:
                row.update(risk_cal=c.risk, risk_cal_free=free[b].risk if b in free else None)
            for name in PAIR_SIGNALS:
                v = (free.get(b) if name in ("early_shift", "frechet") else c)
                sv = v.signals.get(name) if v is not None else None
                row[name] = None if sv is None else sv.value
                row[f"{name}_sd"] = None if sv is None else sv.sd
            fa, sa = ft[(b, t)], sc[(arch, t)]
            row.update(ft_mean=float(np.mean(fa)), ft_sd=float(np.std(fa, ddof=1)), scratch_mean=float(np.mean(sa)),
                       scratch_sd=float(np.std(sa, ddof=1)), negative=int(np.mean(fa) < np.mean(sa)))
            rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=data_dir() / "bench")
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / "results" / "groundtruth.jsonl")
    ap.add_argument("--page", type=Path, default=Path(__file__).parent / "results" / "RESULTS.md")
    ap.add_argument("--quick", action="store_true", help="targets at finetune.py --quick's tiny size")
    ap.add_argument("--rescore", action="store_true",
                    help="re-render the page from the saved state.json with the current risk model (no proximity runs)")
    ap.add_argument("--zoo-store", type=Path, default=Path(__file__).parent / "results" / "groundtruth-zoo.jsonl",
                    help="ground truth of the zoo tier (finetune.py --tier zoo); skipped when absent")
    ap.add_argument("--zoo", action="store_true",
                    help="recompute only the zoo tier (its ground truth grew) into the saved state.json and re-render")
    args = ap.parse_args(argv)
    state_path = args.page.parent / "state.json"
    if args.rescore:
        return render(json.loads(state_path.read_text()), args.page, rescore=True)
    if args.zoo:
        state = json.loads(state_path.read_text())
        state["zoo"] = zoo_tier(args.zoo_store, None)
        state_path.write_text(json.dumps(state, indent=None) + "\n")
        return render(state, args.page)
    ft, sc = ground_truth(args.store)
    meta = {p.parent.name: json.loads(p.read_text()) for p in (args.out / "backbones").glob("*/bench.json")}
    backbones = sorted(meta)
    archs = sorted({m["arch"] for m in meta.values()})
    complete = [t.name for t in TARGETS if all((b, t.name) in ft for b in backbones)
                and all((a, t.name) in sc for a in archs)]
    if not complete:
        raise SystemExit("no target has complete ground truth yet: run scripts/bench/finetune.py first")
    scored, seconds = score_targets(args.out, complete, backbones, 6 if args.quick else None)
    prior = {b: meta[b]["val_accuracy"] for b in backbones}
    per = {}
    for t in complete:
        acc = {b: float(np.mean(ft[(b, t)])) for b in backbones}
        rk = rankers(scored[t]["labels"], scored[t]["label-free"], prior)
        rng = np.random.default_rng(0)
        rand = [_metrics({b: float(x) for b, x in zip(backbones, rng.random(len(backbones)), strict=True)}, acc)
                for _ in range(200)]
        per[t] = {name: _metrics(score, acc) for name, score in rk.items()}
        per[t]["random (200 draws)"] = tuple(float(np.mean([r[i] for r in rand])) for i in range(3))
    rows = pair_rows(scored, ft, sc, {b: meta[b]["arch"] for b in backbones}, SPLIT_OF)
    args.page.parent.mkdir(parents=True, exist_ok=True)
    # now already: the zoo tier below takes minutes (render rewrites it)
    write_csv(args.page.parent / "pairs.csv", rows)
    jobs = [json.loads(x) for x in args.store.read_text().splitlines() if x.strip()]
    cost = {"proximity_labels_s": sum(v["labels"] for v in seconds.values()),
            "proximity_free_s": sum(v["label-free"] for v in seconds.values()),
            "finetune_s": sum(r["seconds"] for r in jobs if r["target"] in complete),
            "n_jobs": sum(r["target"] in complete for r in jobs)}
    zoo = None if args.quick else zoo_tier(args.zoo_store, None)
    state = {"per": per, "rows": rows, "complete": complete, "backbones": backbones, "meta": meta, "cost": cost,
             "zoo": zoo,
             "ft": {f"{m}|{t}": v for (m, t), v in ft.items()}, "sc": {f"{m}|{t}": v for (m, t), v in sc.items()}}
    state_path.write_text(json.dumps(state, indent=None) + "\n")
    render(state, args.page)


def render(state: dict, page: Path, rescore: bool = False) -> None:
    """Page, plots and pairs CSVs from the saved state; ``rescore`` recomputes the calibrated risk
    columns with the currently shipped model from each pair's recorded signals."""
    rows, zoo, per, complete = state["rows"], state["zoo"], state["per"], state["complete"]
    per = {t: {k: tuple(v) for k, v in d.items()} for t, d in per.items()}
    if rescore:
        for r in rows + (zoo["rows"] if zoo else []):
            _rescore(r)
    write_csv(page.parent / "pairs.csv", rows)
    if zoo:
        write_csv(page.parent / "pairs-zoo.csv", zoo["rows"])
    plots = write_plots(page.parent, per, rows, complete, SPLIT_OF)
    ft = {tuple(k.split("|")): v for k, v in state["ft"].items()}
    sc = {tuple(k.split("|")): v for k, v in state["sc"].items()}
    write_page(page, per, rows, complete, state["backbones"], ft, sc, state["meta"], state["cost"], plots, zoo)
    print(f"wrote {page}, pairs.csv and {len(plots)} plot(s) ({len(complete)} targets)")


def _rescore(row: dict) -> None:
    from proximity.risk import estimate, load_model
    from proximity.signals import SignalValue as V

    load_model.cache_clear()
    if load_model() is None:
        return
    sig = {"gain": V(row["gain"], row["gain_sd"]), "probe": V(row["probe"], row["probe_sd"]),
           "early_shift": V(row["early_shift"], row["early_shift_sd"], False),
           "frechet": V(row["frechet"], None, False)}
    row["risk_cal"] = estimate(sig, int(row["n"]), int(row["classes"])).value
    free = {**sig, "gain": V(None, reason="no labels"), "probe": V(None, reason="no labels")}
    row["risk_cal_free"] = estimate(free, int(row["n"]), 0).value


def zoo_tier(store: Path, n_per_class: int | None) -> dict | None:
    """The second tier: the real offline zoo members with ground truth (``finetune.py --tier zoo``),
    ranked by proximity on every target where at least two members have complete ground truth —
    with exactly those members as its candidates, as a user holding them would run it (the fit is
    relative to the run's candidates). None when there is none. A member whose ground truth is
    still being made (the job is resumable) is in the tier for the targets it has."""
    from proximity.catalog import load_catalog, named_catalogs

    if not store.is_file():
        return None
    ft, sc = ground_truth(store)
    folder = named_catalogs()["zoo"]
    if not folder.is_dir():
        print(f"{store.name}: the zoo is not built here (`proximity zoo build`): second tier skipped")
        return None
    entries = {e.id: e for e in load_catalog("zoo")}
    members = sorted({m for m, _ in ft} & set(entries))
    missing = sorted(set(entries) - set(members))
    avail = {t.name: [m for m in members if (m, t.name) in ft and (m, t.name) in sc] for t in TARGETS}
    targets = [t.name for t in TARGETS if len(avail[t.name]) >= 2]
    if len(members) < 2 or not targets:
        return None
    scored, seconds = {}, {}
    for group in sorted({tuple(avail[t]) for t in targets}):       # one catalog per set of candidates
        ts = [t for t in targets if tuple(avail[t]) == group]
        got, secs = score_targets(None, ts, list(group), n_per_class, catalog=[folder / f"{m}.toml" for m in group])
        scored.update(got)
        seconds.update(secs)
    rows = pair_rows(scored, ft, sc, {m: m for m in members}, SPLIT_OF)
    prior = {m: entries[m].imagenet_top1 for m in members}
    jobs = [json.loads(x) for x in store.read_text().splitlines() if x.strip()]
    picks = {}
    for t in targets:
        rk = scored[t]["labels"].ranking
        picks[t] = {"proximity (labels)": rk[0].model,
                    "logme": max(rk, key=lambda c: -np.inf if c.signals["logme"].value is None
                                 else c.signals["logme"].value).model}
    return {"members": members, "missing": missing, "targets": targets, "rows": rows, "prior": prior,
            "avail": {t: avail[t] for t in targets},
            "picks": picks, "seconds": seconds, "ft": {f"{m}|{t}": v for (m, t), v in ft.items()},
            "sc": {f"{m}|{t}": v for (m, t), v in sc.items()},
            "job_s": sum(r["seconds"] for r in jobs), "devices": sorted({r.get("device", "cpu") for r in jobs}),
            "job_s_by_device": {d: sum(r["seconds"] for r in jobs if r.get("device", "cpu") == d)
                                for d in sorted({r.get("device", "cpu") for r in jobs})}}


def zoo_lines(z: dict) -> list[str]:
    members = z["members"]
    avail = z.get("avail") or {t: members for t in z["targets"]}    # a state saved before partial members
    ft = {tuple(k.split("|")): v for k, v in z["ft"].items()}
    sc = {tuple(k.split("|")): v for k, v in z["sc"].items()}
    short = {m: m.split(".")[0] for m in members}
    by_device = z.get("job_s_by_device") or {", ".join(z["devices"]): z["job_s"]}
    cost = ", ".join(f"{s_ / 60:.1f} min on {d}" for d, s_ in by_device.items())
    partial = {m: sum(m in avail[t] for t in z["targets"]) for m in members}
    partial = {m: k for m, k in partial.items() if k < len(z["targets"])}
    lines = ["## Second tier: the real offline zoo (64 px)", "",
             f"Members with ground truth: {', '.join(members)} — fine-tuned and trained from scratch at the targets' "
             f"64 px (not their native 224–260 px), the same protocol (3 learning rates, 3 seeds); job time {cost}. "
             "proximity ranks the members a target has ground truth for, at their own resolution, from the same "
             "training split, as a user would.", ""]
    if partial:
        lines += ["Ground truth still being made (`finetune.py --tier zoo` resumes it): "
                  + ", ".join(f"{m} on {k} of {len(z['targets'])} targets" for m, k in partial.items())
                  + "; '—' below.", ""]
    if z["missing"]:
        lines += [f"No ground truth for {', '.join(z['missing'])}: each VGG16 trunk costs about 85 s per training job "
                  "at 64 px on these 2 cores (about 6 CPU-hours for the two over the 12 targets: 240 jobs). They are "
                  "not in this tier's numbers.", ""]
    head = [f"{short[m]} fine-tuned" for m in members] + [f"{short[m]} scratch" for m in members]
    lines += ["| target | split | " + " | ".join(head) + " | best | proximity | LogME | prior |",
              "|---|---|" + "---|" * (len(head) + 4)]
    picks: dict[str, list[float]] = {"proximity (labels)": [], "logme": [], "prior (ImageNet top-1)": []}
    every = {k: [] for k in picks}                       # the targets with every member
    for t in z["targets"]:
        have = avail[t]
        acc = {m: float(np.mean(ft[(m, t)])) for m in have}
        cells = [f"{acc[m]:.2f} ± {np.std(ft[(m, t)], ddof=1):.2f}" if m in have else "—" for m in members]
        cells += [f"{np.mean(sc[(m, t)]):.2f}" if m in have else "—" for m in members]
        by = {**z["picks"][t], "prior (ImageNet top-1)": max(have, key=lambda m: z["prior"][m] or 0)}
        best = max(acc, key=acc.get)
        for k, m in by.items():
            picks[k].append(acc[best] - acc[m])
            if len(have) == len(members):
                every[k].append(acc[best] - acc[m])
        lines.append(f"| {t} | {SPLIT_OF[t]} | " + " | ".join(cells) + f" | {short[best]} | "
                     + " | ".join(short[by[k]] for k in picks) + " |")
    lines += ["", "| ranker | picks the best-fine-tuning member | mean regret |"
              + (f" on the {len(every['logme'])} targets with all {len(members)} members |" if partial else ""),
              "|---|---|---|" + ("---|" if partial else "")]
    for k, reg in picks.items():
        extra = (f" {sum(r == 0 for r in every[k])} / {len(every[k])}, {np.mean(every[k]) * 100:.1f} pts |"
                 if partial and every[k] else " — |" if partial else "")
        lines.append(f"| {k} | {sum(r == 0 for r in reg)} / {len(reg)} | {np.mean(reg) * 100:.1f} pts |" + extra)
    lines += zoo_tau_lines(z)
    lines += ["",
              "Negative-transfer risk on all of this tier's pairs (none of them was used to fit or choose anything):",
              "",
              "| risk | AUROC (95 % CI) | Brier (95 % CI) | Brier of the base rate | negative pairs |",
              "|---|---|---|---|---|"]
    for key, label in (("risk_v0", "v0 (uncalibrated), with labels"), ("risk_cal", "calibrated, with labels"),
                       ("risk_cal_free", "calibrated, label-free")):
        if z["rows"] and key in z["rows"][0]:
            lines += _risk_lines(z["rows"], key, label)
    lab = sum(v["labels"] for v in z["seconds"].values())
    lines += ["",
              f"Cost: proximity with labels on the {len(z['targets'])} targets {lab:.0f} s on this machine's 2 CPU "
              f"cores (the ground truth: {cost}).", ""]
    return lines


#: the zoo tier's rankers over its members: name → (row key, sign); "prior" is the catalog's ImageNet top-1
ZOO_RANKERS = {"proximity (labels)": ("fit_labels", 1), "proximity (label-free)": ("fit_free", 1),
               "logme": ("logme", 1), "knn": ("knn", 1), "probe": ("probe", 1), "gain": ("gain", 1),
               "early_shift": ("early_shift", -1), "prior (ImageNet top-1; none = last)": ("prior", 1)}


def zoo_tau(z: dict) -> dict[str, dict]:
    """Per ranker over the zoo tier's targets that have every member: per-target weighted τ and
    top-1 regret (:func:`_metrics`, the main tier's), their means with 95 % bootstrap intervals over
    targets. A member without an ImageNet top-1 (the VGG16 trunks) ranks last under the prior, as
    the fame prior treats an unknown model; a ranker needs a value for ≥ 3 members of a target, and
    ``members`` says how many it scored (early_shift has none for a network without batch norm)."""
    members = z["members"]
    avail = z.get("avail") or {t: members for t in z["targets"]}
    by = {(r["target"], r["backbone"]): r for r in z["rows"]}
    targets = [t for t in z["targets"] if len(avail[t]) == len(members) and all((t, m) in by for m in members)]
    out = {}
    for name, (key, sign) in ZOO_RANKERS.items():
        taus, regrets, scored = [], [], set()
        for t in targets:
            acc = {m: by[(t, m)]["ft_mean"] for m in members}
            if key == "prior":
                score = {m: (z["prior"].get(m) or 0.0) for m in members}
            else:
                score = {m: None if by[(t, m)].get(key) is None else sign * by[(t, m)][key] for m in members}
            tau, regret, _ = _metrics(score, acc)
            if tau is not None:
                taus.append(tau)
                regrets.append(regret)
                scored |= {m for m, v in score.items() if v is not None}
        if taus:
            out[name] = {"tau": _boot(taus), "regret_pts": float(np.mean(regrets)) * 100, "n_targets": len(taus),
                         "members": len(scored)}
    return out


def zoo_tau_lines(z: dict) -> list[str]:
    res = zoo_tau(z)
    if not res:
        return []
    n = max(v["n_targets"] for v in res.values())
    lines = ["", f"Weighted τ over the {len(z['members'])} members (mean over the {n} targets with every member, "
             "95 % bootstrap interval over targets; with four members a target's τ moves in coarse steps, so read "
             "differences above 0.2):", "",
             "| ranker | weighted τ (95 % CI) | top-1 regret | targets | members scored |", "|---|---|---|---|---|"]
    for name, v in res.items():
        m, lo, hi = v["tau"]
        lines.append(f"| {name} | {m:.2f} ({lo:.2f}, {hi:.2f}) | {v['regret_pts']:.1f} pts | {v['n_targets']} "
                     f"| {v.get('members', len(z['members']))} |")
    return lines


def _risk_lines(rows: list[dict], key: str, label: str) -> list[str]:
    r = [x for x in rows if x[key] is not None]
    if not r:
        return []
    p, y = np.array([x[key] for x in r], float), np.array([x["negative"] for x in r], float)
    targets = sorted({x["target"] for x in r})
    base = float(y.mean())
    a, b = (_boot_pairs(r, key, f) for f in (auroc, brier))
    return [f"| {label} | {auroc(p, y):.2f} ({a[0]:.2f}, {a[1]:.2f}) | {brier(p, y):.3f} ({b[0]:.3f}, {b[1]:.3f}) "
            f"| {brier(np.full_like(y, base), y):.3f} | {int(y.sum())} / {y.size} ({len(targets)} targets) |"]


def _boot_pairs(rows: list[dict], key: str, stat, seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of ``stat(p, y)`` resampling *targets* (pairs of a target stay together)."""
    targets = sorted({x["target"] for x in rows})
    by = {t: [x for x in rows if x["target"] == t] for t in targets}
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        pick = [x for t in rng.choice(targets, len(targets)) for x in by[t]]
        p, y = np.array([x[key] for x in pick], float), np.array([x["negative"] for x in pick], float)
        v = stat(p, y)
        if np.isfinite(v):
            vals.append(v)
    return (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if vals else (float("nan"),) * 2


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 5) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per equal-width probability bin with data: scikit-learn's
    ``calibration_curve``, with the count of each bin (its binning: the inner edges, searched from the left)."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], p), minlength=bins)
    counts = counts[counts > 0]
    if counts.size != predicted.size:   # scikit-learn changed its binning: the counts would be mislabelled
        raise RuntimeError(f"calibration_curve gave {predicted.size} bins, the counts {counts.size}")
    return [(float(a), float(b), int(c)) for a, b, c in zip(predicted, observed, counts, strict=True)]


def write_plots(folder: Path, per: dict, rows: list[dict], complete: list[str], split_of: dict) -> list[str]:
    """tau.png (weighted τ per ranker, dev and test, 95 % CI) and reliability.png (risk on test)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install matplotlib)")
        return []
    names = list(next(iter(per.values())))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    for j, (part, colour) in enumerate((("dev", "#999999"), ("test", "#1f77b4"))):
        ts = [t for t in complete if split_of[t] == part]
        if not ts:
            continue
        stats = [_boot([per[t][n][0] for t in ts]) for n in names]
        ypos = np.arange(len(names)) + (j - 0.5) * 0.35
        ax.errorbar([s[0] for s in stats], ypos, xerr=[[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]],
                    fmt="o", color=colour, label=f"{part} ({len(ts)} targets)", capsize=2)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("weighted Kendall τ vs fine-tuned accuracy (mean over targets, 95 % CI)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "tau.png", dpi=110)
    plt.close(fig)
    out = ["tau.png"]
    test = [r for r in rows if r["split"] == "test"]
    keys = [(k, lab) for k, lab in (("risk_v0", "v0 (uncalibrated)"), ("risk_cal", "calibrated (labels)"),
                                    ("risk_cal_free", "calibrated (label-free)"))
            if test and test[0].get(k) is not None]
    if keys:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], "k--", lw=0.7, label="perfect calibration")
        base = np.mean([r["negative"] for r in test])
        ax.axhline(base, color="#999999", lw=0.7, label=f"base rate {base:.2f}")
        for k, lab in keys:
            pts = reliability(np.array([r[k] for r in test], float), np.array([r["negative"] for r in test], float))
            ax.plot([x[0] for x in pts], [x[1] for x in pts], "o-", label=lab)
            for x in pts:
                ax.annotate(str(x[2]), (x[0], x[1]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("predicted negative-transfer risk (bin mean)")
        ax.set_ylabel("observed negative-transfer rate")
        ax.set_title(f"test targets: {len(test)} pairs (bin counts annotated)", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(folder / "reliability.png", dpi=110)
        plt.close(fig)
        out.append("reliability.png")
    return out


def write_page(page: Path, per, rows, complete, backbones, ft, sc, meta, cost, plots, zoo=None) -> None:
    relation = {t.name: t.relation for t in TARGETS}
    names = list(next(iter(per.values())))
    lines = ["# Benchmark results", "", "Generated by `python scripts/bench/evaluate.py` from "
             "`groundtruth.jsonl` (protocol in `scripts/bench/finetune.py`). Targets with complete ground truth: "
             f"{len(complete)} ({', '.join(complete)}). Every ranker sees only the target's *training* split; "
             "the intervals are 95 % bootstrap intervals over targets. Per-pair data: `pairs.csv`.", ""]
    if "tau.png" in plots:
        lines += ["![weighted tau per ranker](tau.png)", ""]
    for part in ("dev", "test"):
        ts = [t for t in complete if SPLIT_OF[t] == part]
        lines += [f"## {part} targets ({len(ts)})", "", "| ranker | weighted τ (95 % CI) | top-1 regret | top-3 hit |",
                  "|---|---|---|---|"]
        for name in names:
            tau, reg, hit = (_boot([per[t][name][i] for t in ts]) for i in range(3))
            lines.append(f"| {name} | {tau[0]:.2f} ({tau[1]:.2f}, {tau[2]:.2f}) | {reg[0] * 100:.1f} pts "
                         f"({reg[1] * 100:.1f}, {reg[2] * 100:.1f}) | {hit[0]:.2f} |")
        lines.append("")
    show = [n for n in ("proximity (labels)", "logme", "probe", "prior (source accuracy)", "proximity (label-free)")
            if n in names]
    lines += ["## Per target: weighted τ / top-1 regret (points)", "",
              "| target | split | relation | " + " | ".join(show) + " |", "|---|---|---|" + "---|" * len(show)]
    for t in complete:
        cells = [("n/a" if per[t][n][0] is None else f"{per[t][n][0]:.2f} / {per[t][n][1] * 100:.1f}") for n in show]
        lines.append(f"| {t} | {SPLIT_OF[t]} | {relation[t]} | " + " | ".join(cells) + " |")
    lines.append("")
    test = [r for r in rows if r["split"] == "test"]
    lines += ["## Negative-transfer risk on test targets", "",
              "A pair is negative when its fine-tuned mean is below the from-scratch mean of the same architecture.",
              "", "| risk | AUROC (95 % CI) | Brier (95 % CI) | Brier of the base rate | negative pairs |",
              "|---|---|---|---|---|"]
    for key, label in (("risk_v0", "v0 (uncalibrated), with labels"), ("risk_v0_free", "v0 (uncalibrated), label-free"),
                       ("risk_cal", "calibrated, with labels"), ("risk_cal_free", "calibrated, label-free")):
        if test and key in test[0]:
            lines += _risk_lines(test, key, label)
    if "reliability.png" in plots:
        lines += ["", "![reliability diagram](reliability.png)"]
    lines.append("")
    ratio = cost["finetune_s"] / max(cost["proximity_labels_s"], 1e-9)
    lines += ["## Cost", "",
              f"proximity on all {len(complete)} targets, without the evidence cache: "
              f"{cost['proximity_labels_s']:.0f} s with labels (random-weights control included), "
              f"{cost['proximity_free_s']:.0f} s label-free. The ground truth for the same "
              f"targets: {cost['n_jobs']} training jobs, {cost['finetune_s'] / 60:.1f} min of job time — "
              f"**{ratio:.0f}×** the proximity runs with labels.", ""]
    archs = sorted({m["arch"] for m in meta.values()})
    lines += ["## Fine-tuned test accuracy (mean of 3 seeds at the best learning rate) vs from scratch", "",
              "| target | " + " | ".join(backbones) + " | scratch (" + ", ".join(archs) + ") |",
              "|---" * (len(backbones) + 2) + "|"]
    for t in complete:
        cells = [f"{np.mean(ft[(b, t)]):.2f}" for b in backbones]
        scratch = ", ".join(f"{np.mean(sc[(a, t)]):.2f}" for a in archs)
        lines.append(f"| {t} ({SPLIT_OF[t]}) | " + " | ".join(cells) + f" | {scratch} |")
    if zoo:
        lines += [""] + zoo_lines(zoo)
    reading = page.parent / "reading.md"
    if reading.is_file():
        lines += ["", reading.read_text().rstrip()]
    page.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
