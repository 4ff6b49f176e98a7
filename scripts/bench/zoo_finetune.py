"""Does a short fine-tune on the user's images rank the real zoo where frozen features do not?

    python scripts/bench/zoo_finetune.py [--state scripts/bench/results/state.json]
                                         [--out scripts/bench/results/zoo-finetune.json] [--deadline SECONDS]
                                         [--rates HEAD BACKBONE] [--best-of OTHER.json]

On the zoo tier (the four real offline members, 12 protocol-1 targets at 64 px) the labelled
frozen-feature ranking scores τ −0.08: the brain-MRI VGG16's frozen features probe up to 38 points
below the scene-text trunk's, yet it fine-tunes best on four targets (README, *Benchmarks*).
``scripts/bench/plateau.py`` found the same kind of miss on the main tier: frozen features do not
see how far a network moves when it is fine-tuned. This exploratory check (outside the product;
nothing ships from it) measures that directly with proximity's own ``--finetune`` signal
(:func:`proximity.scratch.finetune_on_sample`: the same code, split and seed, and the shipped
recipe unless ``--rates`` gives other learning rates), on the same
user images the tier was scored on (each target's training split), at the ground truth's 64 px
instead of each member's native size. The native size costs 12–16× the compute and is what a
user's run would use, so this is the signal's best case on resolution, not a user's run.
``scripts/bench/zoo_resolution.py`` showed the frozen LogME does no better at 64 px.

Resumable: every finished (member, target) is written to ``--out`` at once and skipped on a re-run.
Prints each run's hold-out accuracy and, over the targets, weighted τ (95 % CI; a target where a
ranker gives every member the same score counts τ 0, :func:`evaluate._metrics`), top-1 regret (a
tie at the top broken by member order, as the page does), and how often the ranker's top is the
best member alone or a tie that holds it, next to the page's probe, kNN, LogME and the shipped rules.
``--best-of OTHER.json`` adds a ranker that takes, per member, the better hold-out accuracy of this
file's runs and another rate's (a 2-rate sweep chosen on the hold-out, as a user could run it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from .evaluate import _boot, _metrics, _write_split  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: the page's rankers read next to ``finetune``: (row key, sign)
PAGE = {"proximity (labels)": ("fit_labels", 1), "proximity (label-free)": ("fit_free", 1),
        "5-fold probe": ("probe", 1), "LogME": ("logme", 1), "kNN": ("knn", 1)}


def at_64(spec):
    """``spec`` with its preprocessing at 64 × 64 px (the ground truth's size), nothing else changed."""
    pre = dataclasses.replace(spec.preprocess, size=(64, 64), crop_pct=1.0)
    cfg = {**spec.data_config, "input_size": (spec.data_config["input_size"][0], 64, 64), "crop_pct": 1.0}
    return dataclasses.replace(spec, preprocess=pre, data_config=cfg)


def summarise(z: dict, done: dict) -> dict:
    """Per ranker over the targets where every member has a fine-tune: τ (95 % CI), regret, picks."""
    members = z["members"]
    by = {(r["target"], r["backbone"]): r for r in z["rows"]}
    targets = [t for t in z["targets"] if all(f"{m}|{t}" in done for m in members)]
    rankers = {"finetune (64 px)": {t: {m: done[f"{m}|{t}"]["accuracy"] for m in members} for t in targets}}
    for name, (key, sign) in PAGE.items():
        rankers[name] = {t: {m: None if by[(t, m)].get(key) is None else sign * by[(t, m)][key] for m in members}
                         for t in targets}
    out = {"targets": targets}
    for name, scores in rankers.items():
        taus, regrets, picks, tied, best_in_tie = [], [], 0, 0, 0
        for t in targets:
            acc = {m: by[(t, m)]["ft_mean"] for m in members}
            tau, regret, _ = _metrics(scores[t], acc)
            if tau is None:
                continue
            taus.append(tau)
            regrets.append(regret)   # a tie at the top is broken by member order (_metrics' argmax)
            s = {m: v for m, v in scores[t].items() if v is not None}
            top = [m for m, v in s.items() if v >= max(s.values()) - 1e-12]
            best = max(acc, key=acc.get)
            if len(top) == 1:
                picks += int(top[0] == best)
            else:
                tied += 1
                best_in_tie += int(best in top)
        if taus:
            m, lo, hi = _boot(taus)
            out[name] = {"tau": round(m, 3), "ci": [round(lo, 3), round(hi, 3)],
                         "regret_pts": round(100 * float(np.mean(regrets)), 3), "picks_best": picks,
                         "ties_at_top": tied, "best_in_tie": best_in_tie, "n_targets": len(taus)}
    return out


def main(argv: list[str] | None = None) -> None:
    from proximity.backbones.builder import resolve_spec
    from proximity.catalog import load_catalog
    from proximity.data import load_sample
    import proximity.scratch as S

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", type=Path, default=RESULTS / "state.json")
    ap.add_argument("--out", type=Path, default=RESULTS / "zoo-finetune.json")
    ap.add_argument("--deadline", type=float, default=None, help="stop starting new trainings after this many s")
    ap.add_argument("--rates", type=float, nargs=2, metavar=("HEAD", "BACKBONE"), default=None,
                    help="other learning rates than --finetune's (this process only; e.g. 3e-3 3e-4)")
    ap.add_argument("--best-of", type=Path, default=None, metavar="OTHER.json",
                    help="another rate's runs of the same members and targets: also score, per member, the "
                         "better of the two hold-out accuracies (a 2-rate sweep)")
    args = ap.parse_args(argv)
    if args.rates:
        S.FINETUNE_RECIPE = {**S.FINETUNE_RECIPE, "lr": args.rates[0], "backbone_lr": args.rates[1]}
    t_start = time.perf_counter()
    z = json.loads(args.state.read_text()).get("zoo")
    if not z:
        raise SystemExit(f"{args.state} has no zoo tier: run `python scripts/bench/evaluate.py --zoo` first")
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if record.get("recipe", S.FINETUNE_RECIPE) != S.FINETUNE_RECIPE:
        raise SystemExit(f"{args.out} holds runs of another recipe: give another --out")
    record["recipe"] = S.FINETUNE_RECIPE
    record.setdefault("size", 64)
    done = record.setdefault("runs", {})
    entries = {e.id: e for e in load_catalog("zoo")}
    specs = {m: at_64(resolve_spec(entries[m])) for m in z["members"]}
    stopped = False
    for t in z["targets"]:
        todo = [m for m in z["members"] if f"{m}|{t}" not in done]
        if not todo:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            sample = load_sample(_write_split(t, Path(tmp) / t), labels="auto", sample=None)
            for m in todo:
                if args.deadline is not None and time.perf_counter() - t_start > args.deadline:
                    stopped = True
                    break
                r = S.finetune_on_sample(specs[m], sample, device="cpu", use_cache=False)
                done[f"{m}|{t}"] = {"accuracy": r.accuracy, "n_train": r.n_train, "n_holdout": r.n_holdout,
                                    "epochs": r.epochs, "best_epoch": r.best_epoch, "seconds": r.seconds}
                args.out.write_text(json.dumps(record, indent=1) + "\n")
                print(f"{t:30s} {m:28s} {r.accuracy:.3f} ({r.n_holdout} held out, {r.epochs} epochs, "
                      f"{r.seconds:.0f} s)", flush=True)
        if stopped:
            print(f"deadline reached: {len(done)} of {len(z['members']) * len(z['targets'])} done; run again to go on")
            break
    record["summary"] = summarise(z, done)
    if args.best_of:
        other = json.loads(args.best_of.read_text())
        both = {k: {"accuracy": max(r["accuracy"], other["runs"][k]["accuracy"])}
                for k, r in done.items() if k in other.get("runs", {})}
        best = summarise(z, both)["finetune (64 px)"]
        record["summary"]["the better of the two rates per member (2 trainings)"] = {
            **best, "rates": [[record["recipe"]["lr"], record["recipe"]["backbone_lr"]],
                              [other["recipe"]["lr"], other["recipe"]["backbone_lr"]]]}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for name, v in record["summary"].items():
        if name != "targets":
            print(f"{name:24s} τ {v['tau']:+.2f} ({v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}), "
                  f"regret {v['regret_pts']:.1f} pts; of {v['n_targets']}: the best alone on {v['picks_best']}, "
                  f"a tie at the top on {v['ties_at_top']} (the best in it on {v['best_in_tie']})")


if __name__ == "__main__":
    main()
