"""Benchmark v2 (protocol 2): ground truth, noise ceiling, every ranker, the fit chosen on dev.

    python scripts/bench/evaluate_v2.py [--out DIR] [--store FILE] [--results DIR] [--select] [--quick]

1. **Ground truth** (``results/v2/groundtruth.jsonl``, ``finetune.py --protocol 2``): per
   (backbone, target) the learning rate chosen by seed 0's validation accuracy; the accuracy is
   the mean test accuracy of seeds 1–4 at that rate (seed 0 chose it, so it is left out); the
   same per from-scratch architecture. A pair is *negative transfer* when its fine-tuned mean is
   below the from-scratch mean of the same architecture.
2. **Noise ceiling** per target: weighted τ between the backbone orders by the mean of seeds
   1–2 and by the mean of seeds 3–4 — the best a ranker can expect.
3. **Scoring, as a user does**: each complete target's user images (class folders of PNGs) go
   through ``proximity.rank`` with a catalog of the benchmark backbones (``local-dir`` sources,
   their reference statistics, and two facts: parameter count and the *generic accuracy* as the
   ``imagenet_top1`` of this world), once with labels and once label-free. Each result is kept in
   ``OUT/v2/scores/<target>.json`` and reused.
4. **Rankers**: every registered signal alone, ETran's and NCTI's set-level combinations, the
   static priors (generic accuracy, parameter count, and — a baseline no user has — each
   backbone's mean fine-tuned accuracy on the *other* targets), random, and proximity's fit as
   the shipped rule computes it (``proximity.ranking.fit_scores``: the same code as the CLI).
5. **Fit selection** (``--select``): the documented candidates of ``CANDIDATES`` are scored on
   the dev targets by leave-one-target-out (a learned rule is trained on the other dev targets);
   the best mean weighted τ wins (ties: lower regret), per mode; the rule, the whole selection
   table and the signal versions go to ``catalog/fit_rule.json``. Test targets are never read
   by the selection.
6. **Results**: ``RESULTS.md`` and ``summary.json`` (schema in the module ``summarise``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import weightedtau

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from . import pretrain  # noqa: E402
from . import targets_v2, targets_v3, targets_v4  # noqa: E402

RESULTS_V2 = Path(__file__).parent / "results" / "v2"          # the ground truth and the v2.0 reading
RESULTS = Path(__file__).parent / "results" / "v2.5"           # this protocol's page
RESULTS_V3 = Path(__file__).parent / "results" / "v3"          # protocol 3: the fresh test set's ground truth and page
RESULTS_V4 = Path(__file__).parent / "results" / "v4"          # protocol 4: its declaration, fresh set and page
ROOT = Path(__file__).resolve().parents[2]
FRESH = "test-v3"                 # protocol 3's targets on the page (split.json: all of them test)
POOLED = "test, v2 + v3"          # both test sets together
FRESH_V4 = "test-v4"              # protocol 4's targets (read with the rules chosen on the 40 read before)
CHANCE_MARGIN = 0.05
SEEDS = (1, 2, 3, 4)
FAMILY = {"test_resnet": "BN conv (ResNet)", "test_convnext": "LN conv (ConvNeXt)", "test_vit": "ViT",
          "test_efficientnet": "MBConv (EfficientNet)", "wide_resnet": "generalist"}
PROTOCOL_NAME = "protocol 2 (v2.5)"
PROTOCOL_NOTE = (
    "**v2.5 is a protocol version made after the v2.4 test reading** (`results/v2.4/`, kept as it was). "
    "One change, for issue 13's risk (v2.3's reading: \"what is missing now is the fine-tuning side\"): the "
    "labelled runs were re-scored with `--finetune` as well as `--scratch` — each candidate fine-tuned from its "
    "pretrained weights on the target's user images with the from-scratch training's split, loop and budget, the "
    "backbone at a tenth of the head's learning rate (`proximity.scratch.FINETUNE_RECIPE`) — giving a new signal, "
    "`finetune`. Two things were chosen on dev by leave-one-target-out, then test was read once: a risk variant "
    "`labels+finetune` (six feature sets × three penalties, `fit_risk.CANDIDATES_V25`; shipped only if it beats "
    "`labels+scratch` on the same dev rows by more than 0.005) and a fit rule for runs with `--finetune` (eight "
    "candidates; shipped only if it differs from the labels rule). **Neither ships**: the variant's best LOTO log "
    "loss was 0.516 against 0.497 for `labels+scratch`, and dev chose the labels rule itself (0.775 against 0.772 "
    "for the same pairwise model with `finetune`; `finetune` alone 0.605). The labels and label-free rules, "
    "re-selected by the same code on the same dev data, came out as v2.4's, and the shipped risk model's variants "
    "are v2.4's, so every shipped figure below is v2.4's; what is new is `finetune`'s row. Its recipe is the "
    "ground truth's at one learning rate and seed, without flips, on 70 % of the same user images, scored on the "
    "other 30 %: on this benchmark the recipe is close to the ground truth's (its measurement is not: sd 0.15 "
    "against the ground truth's fine-tuned accuracy on dev), so its figures are an upper bound for a user whose "
    "final training differs. The label-free runs, the ground truth and the split are v2.4's.\n\n"
    "v2.4's own note: "
    "**v2.4 is a protocol version made after the v2.3 test reading** (`results/v2.3/`, kept as it was). "
    "One change, for issue 12's label-free ranking: a new label-free signal, `frechet_excess` — the Fréchet distance "
    "to the reference divided by what a same-size sample of the reference Gaussian itself gets (a null that removes "
    "the estimator's dependence on n and d, so the number means the same across architectures). The label-free "
    "runs were re-scored with it (the other signals reproduce v2.3's), three label-free candidates were added to "
    "the dev selection (it alone; it with the parameter count; the parameter count with it as a tie-break inside "
    "one size, weight 0.05) — found while exploring on the dev targets only — the label-free rule was chosen "
    "again on dev by leave-one-target-out, the risk model's label-free variant got three candidate feature sets "
    "with it and was refitted on the dev pairs, and then test was read once. The labelled runs, their rule, the "
    "ground truth and the split are v2.3's. **Two changes after that reading, said here.** (1) The dev selection had "
    "put `frechet_excess` into *the* label-free risk model, but it needs reference statistics, which most catalog "
    "entries lack, so a label-free run on them would have had no risk at all: the model with it became a separate "
    "variant, `label-free+reference`, and the plain `label-free` variant is v2.3's again (the same dev selection "
    "without those three candidates: `log_rankme_rel` and `log_params_per_image`). (2) A variant that needs evidence "
    "some runs lack now ships only if it beats the variant it would replace on the same dev rows by more than the "
    "tie margin (`fit_risk.drop_unhelpful`; a comparison on dev only, which the protocol lacked): "
    "`label-free+reference` does not (leave-one-target-out log loss 0.6826 against 0.6825) and is not shipped, "
    "`labels+scratch` does (0.497 against 0.638). So `risk (label-free)` below is v2.3's model; the first reading "
    "of the `frechet_excess` model on test (AUROC 0.58, Brier 0.250 against 0.244 for the base rate) is in the "
    "hand-written reading.\n\n"
    "v2.3's own note: **v2.3 is a protocol version made after the v2.2 test reading** (`results/v2.2/`, kept as it "
    "was). "
    "One change, for issue 13's risk: the labelled runs were scored with `--scratch` — each architecture trained "
    "from random weights on the target's user images (70 % / 30 % stratified hold-out, the ground truth's "
    "from-scratch recipe at its middle learning rate, no augmentation; `proximity.scratch`) — and the risk model "
    "gained a third variant, `labels+scratch`, chosen on the dev pairs by leave-one-target-out log loss "
    "(`scripts/fit_risk.py`); then test was read once. Before that choice, while exploring whether the idea was "
    "worth building, a within-test leave-one-target-out AUROC of the ground truth's own seed-0 validation "
    "accuracy as such a feature was computed once (0.72–0.78 by learning rate): a look at test, said here. The fit "
    "rules, the other signals, the ground truth and the split are v2.2's; `risk (labels)` is what a run with "
    "`--scratch` gets, `risk (labels, without --scratch)` what a run without it gets.\n\n"
    "v2.2's own note: **v2.2 is a protocol version made after the v2.0 test reading** (`results/v2/`, kept as it was). "
    "One change, for issue 14's speed: the random-weights control sees a 64-image stratified subset "
    "(`--control-images 64`; at least 2 per class when scored, at least 5 per class since: the same images on "
    "all 28 targets) and `gain` is the probe − control on that subset, paired "
    "per fold (`control` and `gain` version 2). The labelled runs were re-scored (the label-free runs, whose "
    "signals did not change, are v2.0's); the labels fit rule was chosen again on dev by leave-one-target-out, "
    "the risk model refitted on the dev pairs, and then test was read once. Ground truth and split are "
    "v2.0's. `scripts/bench/control_subset.py` compares the two gains.")


# --- ground truth -------------------------------------------------------------------------------

def ground_truth(store: Path, seeds: tuple[int, ...] = SEEDS) -> dict[str, dict]:
    """``{"finetune"|"scratch": {(model, target): {"lr", "seeds": {seed: acc}, "mean"}}}`` for
    pairs with every seed of ``seeds`` at their chosen learning rate."""
    from .finetune import read_records

    recs = read_records(store)
    by: dict = {}
    for r in recs:
        if r.get("protocol") in (2, 3, 4):        # 3, 4: the fresh test targets (their names are new)
            by.setdefault((r["kind"], r["model"], r["target"]), []).append(r)
    out: dict = {"finetune": {}, "scratch": {}}
    for (kind, model, target), rs in by.items():
        stage1 = [r for r in rs if r["seed"] == 0]
        if not stage1:
            continue
        lr = max(stage1, key=lambda r: (r["val_acc"], -r["lr"]))["lr"]
        accs = {r["seed"]: r["test_acc"] for r in rs if r["lr"] == lr and r["seed"] in seeds}
        if len(accs) == len(seeds):
            out[kind][(model, target)] = {"lr": lr, "seeds": accs, "mean": float(np.mean(list(accs.values())))}
    return out


def noise_ceiling(gt: dict, target: str, backbones: list[str]) -> float | None:
    """Weighted τ between the orders by the mean of the first and of the second half of the seeds."""
    half = len(SEEDS) // 2
    a = [np.mean([gt["finetune"][(b, target)]["seeds"][s] for s in SEEDS[:half]]) for b in backbones]
    c = [np.mean([gt["finetune"][(b, target)]["seeds"][s] for s in SEEDS[half:]]) for b in backbones]
    return float(weightedtau(a, c).statistic) if len(backbones) >= 3 else None


# --- scoring through proximity -------------------------------------------------------------------

def bench_catalog(root: Path, folder: Path, backbones: list[str]) -> Path:
    """A catalog folder of the benchmark backbones, each with its reference statistics and two facts."""
    folder.mkdir(parents=True, exist_ok=True)
    for b in backbones:
        src = (root / "backbones" / b).resolve()
        meta = json.loads((src / "bench.json").read_text())
        facts = ""
        if "params_m" in meta:
            facts = (f"\n[facts]\nparams_m = {meta['params_m']:.6f}\nimagenet_top1 = "
                     f"{100 * meta['generic_accuracy']:.4f}\n"
                     "\n[provenance]\n\"facts.imagenet_top1\" = \"benchmark generic accuracy "
                     "(pretrain.generic_accuracy), "
                     f"standing in for ImageNet top-1\"\n\"facts.params_m\" = \"counted by pretrain.py\"\n")
        (folder / f"{b}.toml").write_text(f'source = "local-dir:{src}"\nreference = "{src / "reference.npz"}"\n{facts}')
    return folder


def write_user_images(target: str, folder: Path, n_per_class: int | None = None) -> Path:
    module = next((m for m in (targets_v3, targets_v4) if any(t.name == target for t in m.TARGETS)), targets_v2)
    xu, yu, _, _, names = module.make_target(target, 0, n_per_class, 0)
    for i, (img, lab) in enumerate(zip(xu, yu, strict=True)):
        d = folder / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")
    return folder


def score_target(target: str, root: Path, catalog: Path, n_per_class: int | None = None) -> dict:
    """``{"labels": ranking dict, "label-free": ranking dict, "seconds": {...}}``, from
    ``root/scores/<target>.json`` when it was scored with the same backbones before."""
    import tempfile

    import proximity

    from proximity.signals import signal_versions

    path = root / "scores" / f"{target}.json"
    wanted = sorted(p.stem for p in catalog.glob("*.toml"))
    out: dict = {"backbones": wanted, "seconds": {}, "versions": {}}
    modes = {"labels": "auto", "label-free": "none"}
    if path.is_file():
        done = json.loads(path.read_text())
        if done.get("backbones") == wanted:
            out = done
            # a mode is re-scored when a signal it computed has changed version since (a score
            # without recorded versions is v2.0's: its labelled run predates control/gain v2)
            now = signal_versions()
            was = done.get("versions") or {"labels": {**now, "control": 1, "gain": 1}, "label-free": now}
            modes = {m: lab for m, lab in modes.items()
                     if any(was[m].get(k) != now.get(k) for c in done[m]["ranking"] for k in c["signals"])
                     or (m == "labels" and not all(c["signals"].get(k, {}).get("value") is not None
                                                   for c in done[m]["ranking"] for k in ("scratch", "finetune")))
                     # a label-free signal registered since (v2.4: frechet_excess)
                     or (m == "label-free" and any(k in now and k not in c["signals"]
                                                   for c in done[m]["ranking"] for k in LABEL_FREE))}
            if not modes:
                return done
            out.setdefault("versions", was)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_user_images(target, Path(tmp) / target, n_per_class)
        for mode, labels in modes.items():
            t0 = time.perf_counter()
            r = proximity.rank(folder, catalog=catalog, sample=None, labels=labels, batch_size=64, signals="all",
                               scratch=mode == "labels", finetune=mode == "labels")
            out["seconds"][mode] = round(time.perf_counter() - t0, 2)
            out[mode] = r.to_dict()
            out["versions"][mode] = signal_versions()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


# --- rankers -------------------------------------------------------------------------------------

def _signals(scored: dict, mode: str) -> dict[str, dict]:
    """{model: {signal: SignalValue}} of one run."""
    from proximity.signals import SignalValue

    return {c["model"]: {k: SignalValue(v["value"], v["sd"], v["higher_is_better"], v["reason"])
                         for k, v in c["signals"].items()} for c in scored[mode]["ranking"]}


LABEL_FREE = ("early_shift", "frechet", "frechet_excess", "rankme", "alpha_req", "cluster", "rankme_rel", "cluster_rel",
              "etran_energy", "prior", "params")


def merged_signals(scored: dict) -> dict[str, dict]:
    """Each backbone's signals: label-free ones from the label-free run (what a user without labels
    gets), the others from the run with labels."""
    free, lab = _signals(scored, "label-free"), _signals(scored, "labels")
    return {m: {**{k: v for k, v in lab.get(m, {}).items() if k not in LABEL_FREE},
                **{k: v for k, v in free[m].items() if k in LABEL_FREE}} for m in free}


def _minmax(d: dict) -> dict:
    v = np.array(list(d.values()), float)
    lo, hi = np.nanmin(v), np.nanmax(v)
    return {k: (x - lo) / (hi - lo) if hi > lo else 0.0 for k, x in d.items()}


def combination_rankers(sig: dict[str, dict]) -> dict[str, dict]:
    """ETran (0.15·minmax(energy) + 0.85·minmax(LDA score)) and NCTI (minmax(ncc) + minmax(seli) −
    minmax(vc)), as their authors combine them across the candidate models."""
    def col(name):
        return {m: s[name].value for m, s in sig.items() if name in s and s[name].value is not None}

    out = {}
    e, l_ = col("etran_energy"), col("etran_lda")
    if e and l_ and set(e) == set(l_):
        e, l_ = _minmax(e), _minmax(l_)
        out["etran"] = {m: 0.15 * e[m] + 0.85 * l_[m] for m in e}
    a, b, c = col("ncti_ncc"), col("ncti_seli"), col("ncti_vc")
    if a and set(a) == set(b) == set(c):
        a, b, c = _minmax(a), _minmax(b), _minmax(c)
        out["ncti"] = {m: a[m] + b[m] - c[m] for m in a}
    return out


def signal_rankers(sig: dict[str, dict]) -> dict[str, dict]:
    from proximity.signals import SIGNALS

    names = sorted({k for s in sig.values() for k in s})
    out = {}
    for n in names:
        sign = -1.0 if n in SIGNALS and not SIGNALS[n].higher_is_better else 1.0
        out[n] = {m: sign * s[n].value for m, s in sig.items() if n in s and s[n].value is not None}
    return out


# --- metrics -------------------------------------------------------------------------------------

def metrics(score: dict, acc: dict) -> dict | None:
    names = [m for m in acc if score.get(m) is not None]
    if len(names) < 3:
        return None
    s, a = np.array([score[m] for m in names], float), np.array([acc[m] for m in names])
    order = np.argsort(-s, kind="stable")
    best = max(acc.values())
    top = a[s == s.max()]          # a tie at the top is a draw among the tied: expected regret and top-1
    tau = float(weightedtau(s, a).statistic) if np.ptp(s) > 0 else 0.0   # constant scores order nothing: τ 0
    return {"tau": tau, "regret": 100 * float(best - top.mean()),
            "top1": float(np.mean(top == best)), "top3": float(best in a[order[:3]])}


def boot(values: list[float], seed: int = 0, n: int = 2000) -> tuple[float, float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n, v.size))].mean(1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# --- fit candidates and selection ----------------------------------------------------------------

def _z(col: dict) -> dict:
    v = np.array(list(col.values()), float)
    sd = v.std()
    return {k: (x - v.mean()) / sd if sd > 0 else 0.0 for k, x in col.items()}


def rule_scores(rule, sig: dict[str, dict]) -> dict:
    """A FitRule applied exactly as the CLI applies it."""
    models = list(sig)
    fits = rule.scores([sig[m] for m in models])
    return {m: f for m, (f, _) in zip(models, fits, strict=True) if f is not None}


def as_ranked(fits: dict, sig: dict[str, dict]) -> dict:
    """Scores that reproduce the order of ``proximity.rank``'s output: fit first, ties broken as
    ``proximity.ranking.sort_key`` breaks them (lower early_shift, then catalog order)."""
    from proximity.ranking import sort_key

    order = sorted(sig, key=lambda m: sort_key(fits.get(m), sig[m], sorted(sig).index(m)))
    return {m: float(len(order) - i) for i, m in enumerate(order)}


def pairwise_weights(train: list[tuple[dict, dict]], terms: tuple[str, ...]) -> dict[str, float]:
    """A learned pairwise ranking model: logistic regression (no intercept, C = 1) on the
    differences of within-target z-scored, sign-adjusted signals, one row per ordered pair of
    backbones with different accuracy; its coefficients are the weights of a z-mean rule."""
    from sklearn.linear_model import LogisticRegression

    from proximity.signals import SIGNALS

    xs, ys = [], []
    for sig, acc in train:
        models = [m for m in acc if m in sig]
        z = {}
        for t in terms:
            sign = -1.0 if t in SIGNALS and not SIGNALS[t].higher_is_better else 1.0
            col = {m: sign * sig[m][t].value for m in models if t in sig[m] and sig[m][t].value is not None}
            zz = _z(col) if len(col) >= 2 else {}
            z[t] = {m: zz.get(m, 0.0) for m in models}
        for i in models:
            for j in models:
                if i != j and acc[i] != acc[j]:
                    xs.append([z[t][i] - z[t][j] for t in terms])
                    ys.append(int(acc[i] > acc[j]))
    clf = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000).fit(np.array(xs), np.array(ys))
    return {t: float(w) for t, w in zip(terms, clf.coef_[0], strict=True)}


def single(n: str) -> dict:
    """A fit candidate: one signal alone."""
    return {"name": n, "kind": "single", "terms": [[n, 1.0]]}


def zmean(*ns: str) -> dict:
    """A fit candidate: the unweighted mean of the signals' within-run z-scores."""
    return {"name": "z-mean(" + ", ".join(ns) + ")", "kind": "z-mean", "terms": [[n, 1.0] for n in ns]}


def candidates() -> dict[str, list[dict]]:
    """The documented candidates per mode (at most 20 each): dicts of FitRule fields, or
    ``{"learned": terms}`` for a pairwise model trained on the other dev targets."""
    labels = [single(n) for n in ("probe", "probe_loo", "logme", "sfda", "nleep", "knn", "hscore", "transrate",
                                  "etran_lda", "ncti_ncc")]
    labels += [zmean("probe", "logme"), zmean("probe_loo", "logme"), zmean("logme", "sfda"),
               zmean("probe", "logme", "sfda", "knn"),
               zmean("logme", "gain"), zmean("probe", "logme", "prior"),
               {"name": "rank-mean(probe, logme, sfda, knn, nleep)", "kind": "rank-mean",
                "terms": [[n, 1.0] for n in ("probe", "logme", "sfda", "knn", "nleep")]},
               {"name": "small-n switch: logme below 10 per class, else probe", "kind": "single",
                "terms": [["probe", 1.0]],
                "small": single("logme"), "small_below": 10},
               {"name": "pairwise(probe, logme, sfda, knn, gain)",
                "learned": ["probe", "logme", "sfda", "knn", "gain"]},
               {"name": "pairwise(probe, logme, sfda, knn, gain, prior, params)",
                "learned": ["probe", "logme", "sfda", "knn", "gain", "prior", "params"]}]
    free = [single(n) for n in ("early_shift", "frechet", "rankme", "rankme_rel", "cluster", "cluster_rel", "alpha_req",
                                "etran_energy", "prior", "params")]
    free += [zmean("rankme_rel", "cluster_rel"), zmean("cluster_rel", "prior"), zmean("rankme_rel", "prior"),
             zmean("early_shift", "cluster_rel"), zmean("cluster", "prior"),
             # v2.4: the null-normalised Fréchet distance, alone, with size, and as size's tie-break
             single("frechet_excess"), zmean("frechet_excess", "params"),
             {"name": "params, ties by frechet_excess", "kind": "z-mean",
              "terms": [["params", 1.0], ["frechet_excess", 0.05]]},
             {"name": "pairwise(label-free signals)",
              "learned": ["early_shift", "rankme_rel", "cluster_rel", "alpha_req", "etran_energy"]},
             {"name": "pairwise(label-free signals, prior, params)",
              "learned": ["early_shift", "rankme_rel", "cluster_rel", "alpha_req", "etran_energy", "prior", "params"]}]
    # v2.5: the rule of labelled runs with --finetune (every candidate fine-tuned on the sample)
    tuned = [single("finetune"), zmean("finetune", "logme"), zmean("finetune", "probe"),
             zmean("finetune", "probe", "logme"), zmean("finetune", "knn", "logme"),
             {"name": "rank-mean(finetune, probe, logme, knn)", "kind": "rank-mean",
              "terms": [[n, 1.0] for n in ("finetune", "probe", "logme", "knn")]},
             {"name": "pairwise(probe, logme, sfda, knn, gain, prior, params)",
              "learned": ["probe", "logme", "sfda", "knn", "gain", "prior", "params"]},
             {"name": "pairwise(finetune, probe, logme, sfda, knn, gain, prior, params)",
              "learned": ["finetune", "probe", "logme", "sfda", "knn", "gain", "prior", "params"]}]
    return {"labels": labels, "label-free": free, "labels+finetune": tuned}


def candidates_v4() -> dict[str, list[dict]]:
    """Protocol 4's candidates, declared in ``results/v4/PROTOCOL.md`` before the first run: fewer
    than protocol 2's (chosen on 40 dev targets: every target protocols 2 and 3 have read); the
    ``labels+finetune`` mode's are the labelled ones and three with the ``finetune`` signal."""
    labels = [single(n) for n in ("logme", "knn", "probe", "probe_loo", "sfda", "nleep")]
    labels += [zmean("logme", "knn"), zmean("logme", "knn", "probe"), zmean("logme", "knn", "params"),
               {"name": "rank-mean(logme, knn)", "kind": "rank-mean", "terms": [["logme", 1.0], ["knn", 1.0]]},
               {"name": "pairwise(probe, logme, sfda, knn, gain, prior, params)",
                "learned": ["probe", "logme", "sfda", "knn", "gain", "prior", "params"]},
               {"name": "pairwise(logme, knn, prior, params)", "learned": ["logme", "knn", "prior", "params"]}]
    free = [single(n) for n in ("params", "prior", "frechet_excess", "alpha_req")]
    free += [{"name": "params, ties by frechet_excess", "kind": "z-mean",
              "terms": [["params", 1.0], ["frechet_excess", 0.05]]},
             zmean("params", "alpha_req"),
             {"name": "pairwise(label-free signals, prior, params)",
              "learned": ["early_shift", "rankme_rel", "cluster_rel", "alpha_req", "etran_energy", "prior", "params"]},
             {"name": "pairwise(alpha_req, frechet_excess, rankme_rel, params)",
              "learned": ["alpha_req", "frechet_excess", "rankme_rel", "params"]}]
    tuned = labels + [single("finetune"), zmean("finetune", "logme", "knn"),
                      {"name": "pairwise(finetune, logme, knn, prior, params)",
                       "learned": ["finetune", "logme", "knn", "prior", "params"]}]
    return {"labels": labels, "label-free": free, "labels+finetune": tuned}


def cand_terms(cand: dict) -> list[str]:
    """The signals a candidate combines (a learned pairwise model: its terms)."""
    return list(cand["learned"]) if "learned" in cand else [n for n, _ in cand["terms"]]


def n_terms(cand: dict) -> int:
    return len(cand_terms(cand))


def rule_doc(chosen: dict, protocol: str, dev: list[str], ground_truth, how: str, **extra) -> dict:
    """``catalog/fit_rule.json``'s document from :func:`select`'s choice: the rules (the ``--finetune``
    rule only where dev chose something other than the labels rule itself), every selection table,
    provenance; ``extra`` keys follow ``ground_truth``."""
    same = "labels+finetune" in chosen and chosen["labels+finetune"]["rule"] == chosen["labels"]["rule"]
    return {"schema": 1, "protocol": protocol, "date": str(date.today()), "code_version": pretrain._code_version(),
            "dev_targets": dev, "ground_truth": ground_truth, **extra,
            "rules": {mode: c["rule"] for mode, c in chosen.items() if not (same and mode == "labels+finetune")},
            "selection": {mode: c["table"] for mode, c in chosen.items()},
            **({"not_shipped": {"labels+finetune": "dev chose the labels rule itself: runs with --finetune "
                                                   "use the labels rule"}} if same else {}),
            "how": how}


def _as_rule(cand: dict, train: list[tuple[dict, dict]]):
    from proximity.ranking import FitRule

    if "learned" in cand:
        w = pairwise_weights(train, tuple(cand["learned"]))
        return FitRule(cand["name"], "z-mean", tuple(w.items()))
    return FitRule.from_dict(cand)


def select(data: dict[str, tuple[dict, dict]], dev: list[str], smallest: dict[str, int],
           cand_sets: dict[str, list[dict]] | None = None, simplest_within: float | None = None) -> dict:
    """Leave-one-target-out over the dev targets for every candidate of each mode; returns the
    selection table and the chosen rule per mode (trained on all dev targets when learned).
    ``simplest_within`` (protocol 4): among the candidates within that much of the best mean τ, the
    one with the fewest terms wins, then the lower regret; otherwise the best τ, ties by regret."""
    from proximity.signals import signal_versions

    out = {}
    for mode, cands in (cand_sets or candidates()).items():
        table = []
        for cand in cands:
            taus, regrets = [], []
            for held in dev:
                rule = _as_rule(cand, [data[t] for t in dev if t != held])
                sig, acc = data[held]
                if rule.small is not None:
                    rule = rule.for_sample(smallest[held])
                m = metrics(rule_scores(rule, sig), acc)
                taus.append(None if m is None else m["tau"])
                regrets.append(None if m is None else m["regret"])
            ok = [t for t in taus if t is not None]
            table.append({"name": cand["name"], "loto_tau": float(np.mean(ok)) if ok else None,
                          "loto_regret": float(np.mean([r for r in regrets if r is not None])) if ok else None,
                          "targets": len(ok)})
        scored = [r for r in table if r["loto_tau"] is not None and r["targets"] == len(dev)]
        best = max(scored, key=lambda r: (round(r["loto_tau"], 6), -r["loto_regret"]))
        if simplest_within is not None:
            size = {c["name"]: n_terms(c) for c in cands}
            near = [r for r in scored if r["loto_tau"] >= best["loto_tau"] - simplest_within]
            best = min(near, key=lambda r: (size[r["name"]], r["loto_regret"], -r["loto_tau"]))
        cand = next(c for c in cands if c["name"] == best["name"])
        rule = _as_rule(cand, [data[t] for t in dev])
        versions = signal_versions()
        rule_d = rule.to_dict() | {"versions": {n: versions[n] for n in sorted(rule.signals())}}
        out[mode] = {"rule": rule_d, "table": table}
    return out


def data_from_rows(rows: list[dict]) -> dict[str, tuple[dict, dict]]:
    """``{target: (signals, accuracies)}`` rebuilt from a page's stored pair rows (the signals a run
    gave, as ``merged_signals`` keeps them; the ground truth's fine-tuned accuracy) — selection
    without rescoring."""
    from proximity.signals import SIGNALS, SignalValue

    data: dict[str, tuple[dict, dict]] = {}
    for r in rows:
        sig, acc = data.setdefault(r["target"], ({}, {}))
        sig[r["backbone"]] = {k: SignalValue(r[k], r.get(f"{k}.sd"), SIGNALS[k].higher_is_better)
                              for k in SIGNALS if r.get(k) is not None}
        acc[r["backbone"]] = r["finetuned"]
    return data


def select_stored(state_path: Path, rule_file: Path, scores_dir: Path | None = None) -> dict:
    """Protocol 4: choose the fit rules on every target a page holds (``results/v3/state.json``:
    protocol 2's dev and test targets and protocol 3's fresh ones — all read already, all dev now)
    among :func:`candidates_v4`, by leave-one-target-out on the stored signals, and write
    ``rule_file`` (``catalog/fit_rule.json``). Refuses a page whose signal versions differ from the
    code's (the page's rules' terms; with ``scores_dir``, every candidate's terms as each target's
    scores recorded them): the stored values would not be what a run computes now."""
    from proximity.signals import signal_versions

    state_path = state_path.resolve()
    state = json.loads(state_path.read_text())
    recorded = {n: v for d in state["rules"].values() for n, v in d.get("versions", {}).items()}
    # where the scores behind the page are at hand (OUT/v2/scores), every candidate term's version as
    # scored, not only the page's rules' terms
    terms = {t for cs in candidates_v4().values() for c in cs for t in cand_terms(c)}
    for target in state["targets"]:
        if scores_dir is not None and (scores_dir / f"{target}.json").is_file():
            versions = json.loads((scores_dir / f"{target}.json").read_text()).get("versions") or {}
            for mode in versions.values():
                recorded.update({n: v for n, v in mode.items() if n in terms})
    moved = {n: (v, signal_versions().get(n)) for n, v in recorded.items() if signal_versions().get(n) != v}
    if moved:
        raise SystemExit(f"{state_path}: signal versions changed since it was scored ({moved}): rescore its targets "
                         "and make the page again (evaluate_v2.py, then --fresh for protocol 3's) before selecting")
    data = data_from_rows(state["rows"])
    dev = list(state["targets"])
    if set(dev) != set(data):
        raise SystemExit(f"{state_path}: its rows do not cover its targets: make the page again with evaluate_v2.py")
    # no protocol-4 candidate switches rule on small samples, so no sample sizes are needed
    chosen = select(data, dev, {}, candidates_v4(), simplest_within=0.01)
    doc = rule_doc(chosen, "protocol 4", dev, ["v2/groundtruth.jsonl", "v3/groundtruth.jsonl"],
                   "scripts/bench/evaluate_v2.py --select-stored: leave-one-target-out on the 40 targets protocols 2 "
                   "and 3 have read, the candidates declared in results/v4/PROTOCOL.md; the highest mean weighted "
                   "tau, and among the candidates within 0.01 of it the fewest terms, then the lower regret",
                   signals_from=str(state_path.relative_to(ROOT) if state_path.is_relative_to(ROOT) else state_path))
    rule_file.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def smallest_class(scored: dict) -> int:
    return int(min(scored["labels"]["sample"]["classes"].values()))


# --- the whole evaluation ------------------------------------------------------------------------

def frozen_rules(split_file: Path | None = None) -> dict[str, bool]:
    """Protocols 3 and 4: whether each shipped rule file is the one whose digest the protocol's
    ``split.json`` (default ``results/v3/split.json``) recorded when its fresh test set was defined
    (False: it changed after, and the page says so)."""
    import hashlib

    doc = json.loads((split_file or RESULTS_V3 / "split.json").read_text())
    root = Path(__file__).parents[2]
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() == digest
            for name, digest in doc["frozen"].items() if name != "commit"}


def evaluate(root: Path, store: Path, results: Path, *, do_select: bool, quick: bool,
             fresh: Path | None = None, base_state: Path | None = None, fresh_protocol: int = 3) -> dict:
    """Score every target with complete ground truth and compute every ranker's figures. ``fresh``:
    protocol 3's ground truth store: only its targets are scored (as split :data:`FRESH`, with the
    shipped rules, no selection) and joined to protocol 2's figures as ``base_state`` (the
    ``state.json`` of the page that read the shipped rules: v2.5's) holds them. ``fresh_protocol``
    4: protocol 4's store instead; its targets are read alone (as :data:`FRESH_V4`; its dev targets
    are the 40 read before, whose figures are the selection's), after the declared exclusion."""

    from proximity.ranking import FitRule, load_rules

    if fresh is not None and do_select:
        raise SystemExit(f"protocol {fresh_protocol} reads the shipped rules on its fresh test targets; --select "
                         "chooses rules on dev: run the selection without --fresh first")
    metas = {p.parent.name: json.loads(p.read_text()) for p in sorted((root / "backbones").glob("*/bench.json"))}
    backbones = sorted(metas)
    archs = sorted({m["arch"] for m in metas.values()})
    gt, tlist, excluded = complete_targets(store, fresh, fresh_protocol, quick, backbones, archs)
    catalog = bench_catalog(root, root / "bench-catalog", backbones)
    n_pc = 6 if quick else None
    data, scored, ceilings = {}, {}, {}
    for t in tlist:
        print(f"scoring {t.name} ({t.split})", flush=True)
        scored[t.name] = score_target(t.name, root, catalog, n_pc)
        sig = merged_signals(scored[t.name])
        acc = {b: gt["finetune"][(b, t.name)]["mean"] for b in backbones}
        data[t.name] = (sig, acc)
        ceilings[t.name] = noise_ceiling(gt, t.name, backbones)
    dev = [t.name for t in tlist if t.split == "dev"]
    if do_select:
        chosen = select(data, dev, {t: smallest_class(scored[t]) for t in dev})
        doc = rule_doc(chosen, PROTOCOL_NAME, dev, str(store.name),
                       "scripts/bench/evaluate_v2.py --select: leave-one-target-out on the dev targets; "
                       "best mean weighted tau, ties by lower regret")
        rule_file = (results / "fit_rule.json") if quick else Path(__file__).parents[2] / "catalog" / "fit_rule.json"
        rule_file.write_text(json.dumps(doc, indent=1) + "\n")
        rules = {m: FitRule.from_dict(d) for m, d in doc["rules"].items()}
        selection, not_shipped = doc["selection"], doc.get("not_shipped", {})
    else:
        rules = load_rules()
        shipped = Path(__file__).parents[2] / "catalog" / "fit_rule.json"
        shipped_doc = json.loads(shipped.read_text()) if shipped.is_file() and not quick else {}
        selection, not_shipped = shipped_doc.get("selection", {}), shipped_doc.get("not_shipped", {})
    per: dict = {}
    # the leave-one-target-out prior: over the scored targets; with --fresh over every target with
    # complete ground truth (protocol 2's 28 and the fresh ones), the others of each
    pool = sorted({t for _, t in gt["finetune"] if all((b, t) in gt["finetune"] for b in backbones)
                   and t not in excluded}) if fresh \
        else list(data)
    prior_ft = {b: {t: gt["finetune"][(b, t)]["mean"] for t in pool} for b in backbones}
    for t in tlist:
        sig, acc = data[t.name]
        rk = {**signal_rankers(sig), **combination_rankers(sig)}
        for mode in ("labels", "label-free", "labels+finetune"):
            if mode not in rules:
                continue
            rule = rules[mode]
            if mode != "label-free" and rule.small is not None:     # as ranking.fit_scores does
                rule = rule.for_sample(smallest_class(scored[t.name]))
            if rule.kind == "v0-shift":
                from proximity.ranking import fit_score
                rk[f"proximity ({mode})"] = {m: fit_score(s, "label-free") for m, s in sig.items()}
            else:
                rk[f"proximity ({mode})"] = rule_scores(rule, sig)
            # v2.1 (added after the v2.0 test reading): the order the CLI prints, i.e. the fit with
            # proximity.ranking.sort_key's tie-breaks (early_shift), as a score
            rk[f"proximity ({mode}, as ranked)"] = as_ranked(rk[f"proximity ({mode})"], sig)
        rk["prior: mean fine-tuned accuracy on the other targets"] = {
            b: np.mean([v for k, v in prior_ft[b].items() if k != t.name]) for b in backbones} if len(pool) > 1 else {}
        rng = np.random.default_rng(0)
        per[t.name] = {name: metrics(s, acc) for name, s in rk.items()}
        draws = [metrics(dict(zip(backbones, rng.permutation(len(backbones)), strict=True)), acc) for _ in range(200)]
        per[t.name]["random"] = {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}
        fams: dict = {}
        for b in backbones:
            fams.setdefault(FAMILY.get(metas[b]["arch"], metas[b]["arch"]), []).append(b)
        per[t.name]["_families"] = {
            f: {name: metrics({m: s[m] for m in members if m in s}, {m: acc[m] for m in members})
                for name, s in rk.items() if name.startswith("proximity")}
            for f, members in fams.items() if len(members) >= 3}
    rows = pair_rows(tlist, data, gt, metas, scored)
    state = {"targets": [t.name for t in tlist], "split": {t.name: t.split for t in tlist},
             "group": {t.name: t.group for t in tlist}, "per": per, "ceilings": ceilings, "rows": rows,
             "backbones": {b: {k: metas[b].get(k) for k in ("arch", "domain", "val_accuracy", "generic_accuracy",
                                                             "params_m", "meets_min_accuracy")} for b in backbones},
             "rules": {m: r.to_dict() for m, r in rules.items()}, "selection": selection,
             "not_shipped": not_shipped,
             "seconds": {t: scored[t]["seconds"] for t in scored}}
    if fresh is not None and fresh_protocol == 4:
        _protocol4(state, excluded)
    elif fresh is not None:
        _join_fresh(state, [t.name for t in tlist], base_state)
    return state


def complete_targets(store: Path, fresh: Path | None, fresh_protocol: int, quick: bool, backbones: list[str],
                     archs: list[str]) -> tuple[dict, list, dict]:
    """The ground truth, the targets with all of it (a fresh set: all of them, or an error), and
    protocol 4's declared exclusion (``{target: {"chance", "best"}}``), those left out."""
    from dataclasses import replace

    gt = ground_truth(store)
    if fresh is not None:
        # protocol 4: protocol 3's ground truth too (only for the leave-one-target-out prior's pool)
        for extra in ([RESULTS_V3 / "groundtruth.jsonl"] if fresh_protocol == 4 else []) + [fresh]:
            for kind, pairs in ground_truth(extra).items():
                gt[kind].update(pairs)
    fresh_module, fresh_split = (targets_v4, FRESH_V4) if fresh_protocol == 4 else (targets_v3, FRESH)
    every = [replace(t, split=fresh_split) for t in fresh_module.TARGETS] if fresh else list(targets_v2.TARGETS)
    tlist = [t for t in every
             if all((b, t.name) in gt["finetune"] for b in backbones)
             and all((a, t.name) in gt["scratch"] for a in archs)]
    if not tlist:
        raise SystemExit(f"no target has complete ground truth in {fresh or store}")
    if fresh is not None and not quick and len(tlist) < len(every):
        missing = sorted({t.name for t in every} - {t.name for t in tlist})
        raise SystemExit(f"protocol {fresh_protocol} is read once, on all {len(every)} fresh targets: {len(missing)} "
                         f"lack complete ground truth in {fresh} ({', '.join(missing)}); run finetune.py --protocol "
                         f"{fresh_protocol} first")
    excluded: dict = {}
    # the declared exclusion (results/v4/PROTOCOL.md); not under --quick, whose one-epoch runs on six
    # images per class sit near chance by design
    if fresh is not None and fresh_protocol == 4 and not quick:
        excluded = at_chance(tlist, gt, backbones, archs)
        tlist = [t for t in tlist if t.name not in excluded]
    return gt, tlist, excluded


def at_chance(tlist, gt: dict, backbones: list[str], archs: list[str]) -> dict[str, dict]:
    """Protocol 4's declared exclusion: the targets where every start — each fine-tuned backbone and
    each from-scratch architecture, the mean of seeds 1–4 — is within :data:`CHANCE_MARGIN` of
    chance (1 / classes), above or below: ``{target: {"chance", "best", "worst"}}``."""
    out = {}
    for t in tlist:
        k = len(set(t.build(2, np.random.default_rng(0))[1]))
        accs = [gt["finetune"][(b, t.name)]["mean"] for b in backbones] + \
            [gt["scratch"][(a, t.name)]["mean"] for a in archs]
        if max(accs) <= 1 / k + CHANCE_MARGIN and min(accs) >= 1 / k - CHANCE_MARGIN:
            out[t.name] = {"chance": 1 / k, "best": max(accs), "worst": min(accs)}
    return out


def data_digest(module, name: str) -> str:
    """sha256 of a fresh target's user and test images and labels, as ``split.json`` records it."""
    import hashlib

    h = hashlib.sha256()
    for a in module.make_target(name)[:4]:
        h.update(a.tobytes())
    return h.hexdigest()


def _protocol4(state: dict, excluded: dict) -> None:
    """Protocol 4's page: the fresh targets alone, the selection table of the 40 dev targets, the
    declared exclusion, and the checks that what ran is what ``results/v4/split.json`` froze."""
    from proximity.ranking import FitRule

    shipped = json.loads((ROOT / "catalog" / "fit_rule.json").read_text())
    file_rules = {m: FitRule.from_dict(d).to_dict() for m, d in shipped["rules"].items()}
    split = json.loads((RESULTS_V4 / "split.json").read_text())
    v3_state = RESULTS_V3 / "state.json"
    frozen = {**frozen_rules(RESULTS_V4 / "split.json"),
              "rules as loaded = catalog/fit_rule.json": state["rules"] == file_rules,
              "catalog/fit_rule.json is protocol 4's selection": shipped.get("protocol") == "protocol 4",
              "targets' images = split.json's digests": all(
                  data_digest(targets_v4, r["name"]) == r["data_sha256"] for r in split["targets"]),
              "backbones = protocol 3's page's (the dev targets')": v3_state.is_file() and
              state["backbones"] == json.loads(v3_state.read_text())["backbones"]}
    changed = [k for k, ok in frozen.items() if not ok]
    n = len(state["targets"])
    state["protocol"] = f"protocol 4 (rules chosen on 40 read targets, read on {n} fresh test targets)"
    state["excluded"] = excluded
    state["frozen"] = frozen
    state["note"] = (
        f"**Protocol 4** (`results/v4/PROTOCOL.md`, declared before anything of it was built): the fit rules and "
        "the risk model were chosen by leave-one-target-out on the 40 targets protocols 2 and 3 had read (their "
        "figures are the selection tables below: those targets are dev now, and their earlier test readings are "
        "on the v2.5 and v3 pages), then twelve fresh targets were defined (`scripts/bench/targets_v4.py`, "
        "`results/v4/split.json` with the chosen rules' digests, committed before any of them was trained on or "
        f"scored) and read once, as the split `{FRESH_V4}` ({n} targets). Backbones, recipe, seeds and scoring are "
        "protocol 2's. The earlier test sets are not pooled in: for these rules they are dev. "
        + (f"Left out by the declared exclusion (every start within {100 * CHANCE_MARGIN:.0f} points of chance): "
           + ", ".join(f"`{t}` (best start {v['best']:.3f}, chance {v['chance']:.3f})" for t, v in excluded.items())
           + ". " if excluded else "No target met the declared exclusion (every start within 5 points of chance). ")
        + ("What ran was what was frozen (checked: " + "; ".join(frozen) + ")." if not changed else
           f"**Changed since the set was defined: {', '.join(changed)}** — its figures are not a blind reading."))


def _join_fresh(state: dict, fresh_names: list[str], base_state: Path | None) -> None:
    """Protocol 3: join protocol 2's figures (``base_state``) to the fresh targets' ``state``, check
    that what ran is what was frozen, and write the page's protocol name and note."""
    from proximity.ranking import FitRule

    base = json.loads((base_state or RESULTS / "state.json").read_text())
    if set(base["targets"]) & set(fresh_names):
        raise SystemExit(f"{base_state or RESULTS / 'state.json'} already holds fresh targets: it is a protocol-3 "
                         "state, not protocol 2's (pass --base-state with protocol 2's)")
    n_fresh, n_base_test = len(fresh_names), sum(sp == "test" for sp in base["split"].values())
    # what ran must be what was frozen: the rule files' digests, the rules as loaded (no fallback to
    # another rule because a signal's version moved), protocol 2's rules and backbones
    file_rules = {m: FitRule.from_dict(d).to_dict()
                  for m, d in json.loads((Path(__file__).parents[2] / "catalog" / "fit_rule.json")
                                         .read_text())["rules"].items()}
    frozen = {**frozen_rules(),
              "rules as loaded = catalog/fit_rule.json": state["rules"] == file_rules,
              "rules = protocol 2's page's": state["rules"] == base["rules"],
              "backbones = protocol 2's page's": state["backbones"] == base["backbones"]}
    state["targets"] = base["targets"] + state["targets"]
    for key in ("split", "group", "per", "ceilings", "seconds"):
        state[key] = {**base[key], **state[key]}
    state["rows"] = base["rows"] + state["rows"]
    changed = [k for k, ok in frozen.items() if not ok]
    state["protocol"] = f"protocol 3 (v2.5's shipped rules on {n_fresh} fresh test targets)"
    state["note"] = (
        f"**Protocol 3** adds {n_fresh} fresh test targets (`scripts/bench/targets_v3.py`, split and the shipped "
        "rules' digests committed in `results/v3/split.json` before any of them was trained on or scored) to "
        f"protocol 2, as the split `{FRESH}`; `{POOLED}` pools them with v2's {n_base_test} test targets. "
        "Backbones, recipe, seeds and "
        "scoring are protocol 2's; nothing was chosen here: the rules and the risk model are the ones shipped "
        "when the set was defined, and protocol 2's figures are v2.5's page's (`results/v2.5/state.json`: the "
        "same rules; only the fresh targets were scored for this page). The leave-one-target-out fine-tuning "
        "prior of a fresh target averages every other target's ground truth, protocol 2's included. "
        + ("They were unchanged when this page was made (checked: " + "; ".join(frozen) + ")." if not changed else
           f"**Changed since the set was defined: {', '.join(changed)}** — a choice made after defining the test "
           "set; its figures are not a blind reading.")
        + "\n\nProtocol 2's note:\n\n" + PROTOCOL_NOTE)
    state["frozen"] = frozen


def score_share(root: Path, share: tuple[int, int], fresh: bool = False, fresh_protocol: int = 3) -> None:
    """Score every ``share[1]``-th target (dev targets first; the shares are fixed by the target
    list alone, so processes started at different times never overlap); scoring does not read
    the ground truth. ``fresh``: protocol 3's (or ``fresh_protocol`` 4's) targets instead."""
    backbones = sorted(p.parent.name for p in (root / "backbones").glob("*/bench.json"))
    tlist = list((targets_v4 if fresh_protocol == 4 else targets_v3).TARGETS) if fresh else \
        sorted(targets_v2.TARGETS, key=lambda t: t.split != "dev")
    catalog = bench_catalog(root, root / "bench-catalog", backbones)
    for t in tlist[share[0]::share[1]]:
        t0 = time.perf_counter()
        score_target(t.name, root, catalog)
        print(f"scored {t.name} ({t.split}) in {time.perf_counter() - t0:.0f} s", flush=True)


def pair_rows(tlist, data, gt, metas, scored) -> list[dict]:
    """One row per (target, backbone): every signal (value and sd), the risks as the shipped risk
    model gives them *now* (recomputed from the stored signals, so a refitted model is judged
    without re-running proximity), accuracies and the negative-transfer label."""
    from proximity.risk import estimate

    rows = []
    for t in tlist:
        sig, acc = data[t.name]
        lab, free = _signals(scored[t.name], "labels"), _signals(scored[t.name], "label-free")
        sample = scored[t.name]["labels"]["sample"]
        probes = [s["probe"].value for s in lab.values() if "probe" in s and s["probe"].value is not None]
        context = {"best_probe": max(probes) if probes else None}
        for b, s in sig.items():
            arch = metas[b]["arch"]
            sc = gt["scratch"][(arch, t.name)]["mean"]
            r_lab = estimate(lab.get(b, {}), sample["n_images"], sample["n_classes"], context=context)
            r_free = estimate(free.get(b, {}), sample["n_images"], 0)
            # the label-free risk of a candidate without reference statistics (most catalog entries)
            r_noref = estimate({k: v for k, v in free.get(b, {}).items() if k not in ("frechet", "frechet_excess")},
                               sample["n_images"], 0)
            # "scratch_gt": the ground truth's from-scratch accuracy ("scratch" is the signal of
            # --scratch, from the user's images only); the labels risk also as a run without --scratch gets it
            plain = {k: v for k, v in lab.get(b, {}).items() if k not in ("scratch", "finetune")}
            r_plain = estimate(plain, sample["n_images"], sample["n_classes"], context=context)
            # v2.5: and as a run with --scratch but without --finetune gets it
            no_ft = {k: v for k, v in lab.get(b, {}).items() if k != "finetune"}
            r_noft = estimate(no_ft, sample["n_images"], sample["n_classes"], context=context)
            row = {"target": t.name, "split": t.split, "group": t.group, "backbone": b, "arch": arch,
                   "n_images": sample["n_images"], "n_classes": sample["n_classes"],
                   "finetuned": acc[b], "scratch_gt": sc, "negative": int(acc[b] < sc),
                   "risk": r_lab.value, "risk_variant": r_lab.variant, "risk_without_scratch": r_plain.value,
                   "risk_without_finetune": r_noft.value, "risk_without_finetune_variant": r_noft.variant,
                   "risk_label_free": r_free.value, "risk_label_free_variant": r_free.variant,
                   "risk_label_free_without_reference": r_noref.value}
            for k, v in s.items():
                row[k] = v.value
                row[f"{k}.sd"] = v.sd
            rows.append(row)
    return rows


def summarise(state: dict) -> dict:
    """``summary.json``: per split the rankers' mean weighted τ with a 95 % bootstrap interval over
    targets, regret (accuracy points), top-1 rate, the noise ceiling; by family and by relation;
    the risk's AUROC, Brier (and the base rate's), ECE over 10 equal-width bins."""
    from proximity.signals import SIGNALS

    out: dict = {"protocol": state.get("protocol", PROTOCOL_NAME), "splits": {}}
    has_fresh = FRESH in state["split"].values()
    for split, members in (("dev", ("dev",)), ("test", ("test",)), (FRESH, (FRESH,)), (POOLED, ("test", FRESH)),
                           (FRESH_V4, (FRESH_V4,))):
        ts = [t for t in state["targets"] if state["split"][t] in members]
        if not ts or (split == POOLED and not has_fresh):
            continue
        names = sorted({n for t in ts for n in state["per"][t] if not n.startswith("_")})
        rankers = {}
        for n in names:
            ms = [state["per"][t].get(n) for t in ts]
            ms = [m for m in ms if m]
            if not ms:
                continue
            tau, lo, hi = boot([m["tau"] for m in ms])
            kind = "proximity" if n.startswith("proximity") else "random" if n == "random" else \
                "prior" if n.startswith("prior") or n in ("params",) else "signal"
            labels = (n.startswith("proximity (labels") or (n in SIGNALS and "labels" in SIGNALS[n].needs)
                      or n in ("etran", "ncti"))
            rankers[n] = {"kind": kind, "labels": bool(labels), "tau": tau, "ci": [lo, hi],
                          "regret_pts": float(np.mean([m["regret"] for m in ms])),
                          "top1": float(np.mean([m["top1"] for m in ms])),
                          "top3": float(np.mean([m["top3"] for m in ms])),
                          "n_targets": len(ms)}
        ceil = [state["ceilings"][t] for t in ts if state["ceilings"][t] is not None]
        by_family: dict = {}
        for t in ts:
            for fam, d in state["per"][t].get("_families", {}).items():
                for n, m in d.items():
                    if m:
                        by_family.setdefault(fam, {}).setdefault(n, []).append(m["tau"])
        by_relation: dict = {}
        for t in ts:
            for n in ("proximity (labels)", "proximity (label-free)", "proximity (labels+finetune)"):
                m = state["per"][t].get(n)
                if m:
                    by_relation.setdefault(state["group"][t], {}).setdefault(n, []).append(m["tau"])
        fame: dict = {}
        for t in ts:
            prox, prior = state["per"][t].get("proximity (labels)"), state["per"][t].get("prior")
            if prox and prior:
                gain = prior["regret"] - prox["regret"]          # accuracy points of proximity's pick over fame's
                for g in ("all", state["group"][t]):
                    fame.setdefault(g, []).append(gain)
        out["splits"][split] = {
            "fame": {g: {"n_targets": len(v), "proximity_better": int(sum(x > 0.05 for x in v)),
                         "fame_better": int(sum(x < -0.05 for x in v)), "tied": int(sum(abs(x) <= 0.05 for x in v)),
                         "mean_gain_pts": float(np.mean(v))} for g, v in fame.items()},
            "n_targets": len(ts), "noise_ceiling": float(np.mean(ceil)) if ceil else None, "rankers": rankers,
            "by_family": {f: {n: {"tau": boot(v)[0], "ci": list(boot(v)[1:]), "n_targets": len(v)}
                              for n, v in d.items()}
                          for f, d in by_family.items()},
            "by_relation": {g: {n: {"tau": boot(v)[0], "ci": list(boot(v)[1:]), "n_targets": len(v)}
                                for n, v in d.items()}
                            for g, d in by_relation.items()},
            "risk": risk_summary([r for r in state["rows"] if r["split"] in members])}
    return out


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean() for b in range(bins)
                     if (idx == b).any()))


def risk_summary(rows: list[dict]) -> dict:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    out = {}
    with_scratch = any(r.get("risk_variant") in ("labels+scratch", "labels+finetune") for r in rows)
    with_ft = any(r.get("risk_variant") == "labels+finetune" for r in rows)
    keys = [("risk", "labels")] + ([("risk_without_finetune", "labels, without --finetune")] if with_ft else [])
    keys += [("risk_without_scratch", "labels, without --scratch")] if with_scratch else []
    with_ref = any(r.get("risk_label_free_variant") == "label-free+reference" for r in rows)
    keys += [("risk_label_free", "label-free")]
    keys += [("risk_label_free_without_reference", "label-free, without a reference")] if with_ref else []
    for key, name in keys:
        rs = [r for r in rows if r.get(key) is not None]
        if not rs:
            continue
        p, y = np.array([r[key] for r in rs], float), np.array([r["negative"] for r in rs])
        base = y.mean()
        brier, base_brier = float(brier_score_loss(y, p)), float(np.mean((base - y) ** 2))
        out[name] = {"auroc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None,
                     "brier": brier, "base_brier": base_brier,
                     "brier_skill": 1 - brier / base_brier if base_brier > 0 else None,
                     "ece": ece(p, y), "pairs": len(rs), "negative": int(y.sum()), "bins": reliability(p, y)}
    return out


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """The reliability diagram's points: per non-empty equal-width bin, its pairs, mean predicted
    risk and observed negative rate."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "pairs": int((idx == b).sum()),
             "predicted": float(p[idx == b].mean()), "observed": float(y[idx == b].mean())}
            for b in range(bins) if (idx == b).any()]


def reliability_svg(bins_by_mode: dict[str, list[dict]], title: str) -> str:
    """A small self-contained SVG reliability diagram (no plotting dependency): the diagonal, and
    per mode the bins' (predicted, observed) points sized by their pair count."""
    size, pad = 320, 40
    xy = lambda p, o: (pad + p * (size - 2 * pad), size - pad - o * (size - 2 * pad))  # noqa: E731
    colours = {"labels": "#1f77b4", "label-free": "#d62728", "labels, without --scratch": "#9467bd",
               "labels, without --finetune": "#2ca02c",
               "label-free, without a reference": "#ff7f0e"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 20}" font-family="sans-serif" '
             'font-size="11">', f'<text x="{pad}" y="14">{title}</text>',
             f'<rect x="{pad}" y="{pad}" width="{size - 2 * pad}" height="{size - 2 * pad}" fill="none" '
             'stroke="#999"/>',
             '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 3"/>'.format(
                 *xy(0, 0), *xy(1, 1))]
    for t in (0, 0.5, 1):
        x, y = xy(t, 0)
        parts.append(f'<text x="{x - 6}" y="{y + 14}">{t:g}</text>')
        x, y = xy(0, t)
        parts.append(f'<text x="{x - 22}" y="{y + 4}">{t:g}</text>')
    parts.append(f'<text x="{size / 2 - 40}" y="{size - 6}">predicted risk</text>')
    parts.append(f'<text x="4" y="{size / 2}" transform="rotate(-90 10 {size / 2})">observed negative rate</text>')
    for k, (mode, bins) in enumerate(bins_by_mode.items()):
        c = colours.get(mode, "#333")
        pts = [xy(b["predicted"], b["observed"]) for b in bins]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{c}" points="{points}"/>')
        for b, (x, y) in zip(bins, pts, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{2 + 1.2 * np.sqrt(b["pairs"]):.1f}" fill="{c}" '
                         f'fill-opacity="0.5"><title>{mode}: {b["pairs"]} pairs, predicted {b["predicted"]:.2f}, '
                         f'observed {b["observed"]:.2f}</title></circle>')
        parts.append(f'<text x="{pad + 8}" y="{pad + 16 + 14 * k}" fill="{c}">{mode}</text>')
    return "\n".join(parts + ["</svg>"]) + "\n"


def _selection_lines(state: dict) -> list[str]:
    """The dev selection tables of the fit rules, best first, and what was chosen but not shipped."""
    lines: list[str] = []
    for mode, table in (state.get("selection") or {}).items():
        lines += [f"### Fit selection ({mode}): leave-one-target-out on the dev targets", "",
                  "| candidate | LOTO weighted τ | LOTO regret |", "|---|---|---|"]
        for r in sorted(table, key=lambda r: -(r["loto_tau"] if r["loto_tau"] is not None else -9)):
            tau = "n/a" if r["loto_tau"] is None else f"{r['loto_tau']:.3f}"
            reg = "n/a" if r["loto_regret"] is None else f"{r['loto_regret']:.1f}"
            lines.append(f"| {r['name']} | {tau} | {reg} |")
        lines += [""]
        if mode in state.get("not_shipped", {}):
            lines += [f"**Not shipped:** {state['not_shipped'][mode]}.", ""]
    return lines


def write_page(state: dict, summary: dict, page: Path) -> None:
    lines = [f"# Benchmark v2 — {state.get('protocol', PROTOCOL_NAME)}", "",
             f"Generated by `python scripts/bench/evaluate_v2.py` from `groundtruth.jsonl`. Targets with complete "
             f"ground truth: {len(state['targets'])}. Every ranker sees only the target's user images; τ is "
             "`scipy.stats.weightedtau(score, fine-tuned accuracy)` averaged over targets with a 95 % bootstrap "
             "interval; regret in accuracy points; the noise ceiling is the τ between seed halves (1–2 vs 3–4).", "",
             state.get("note", PROTOCOL_NOTE), ""]
    for split, d in summary["splits"].items():
        lines += [f"## {split} targets ({d['n_targets']}) — noise ceiling {d['noise_ceiling']:.2f}"
                  if d["noise_ceiling"] is not None else f"## {split} targets ({d['n_targets']})", "",
                  "| ranker | kind | labels | weighted τ (95 % CI) | top-1 regret | top-1 | top-3 |",
                  "|---|---|---|---|---|---|---|"]
        for n, r in sorted(d["rankers"].items(), key=lambda kv: -kv[1]["tau"] if np.isfinite(kv[1]["tau"]) else 9):
            lines.append(f"| {n} | {r['kind']} | {'yes' if r['labels'] else 'no'} | {r['tau']:.2f} ({r['ci'][0]:.2f}, "
                         f"{r['ci'][1]:.2f}) | {r['regret_pts']:.1f} | {r['top1']:.2f} | {r['top3']:.2f} |")
        lines += [""]
        for what in ("by_family", "by_relation"):
            if d[what]:
                lines += [f"**{what.replace('_', ' ')}** (weighted τ, targets):", ""]
                for g, v in d[what].items():
                    lines.append(f"- {g}: " + "; ".join(f"{n} {x['tau']:.2f} ({x['n_targets']})" for n, x in v.items()))
                lines += [""]
        fame = d.get("fame")
        if fame:
            lines += ["**Domain proximity against fame** (top pick of proximity (labels) against the top pick of the "
                      "fame prior, the generic accuracy; accuracy points of the fine-tuned top pick):", ""]
            for g, v in fame.items():
                lines.append(f"- {g}: proximity better on {v['proximity_better']}, fame better on {v['fame_better']}, "
                             f"tied on {v['tied']} of {v['n_targets']} targets; mean difference "
                             f"{v['mean_gain_pts']:+.1f} pts")
            lines += [""]
        for mode, r in d["risk"].items():
            skill = "n/a" if r.get("brier_skill") is None else f"{r['brier_skill']:.2f}"
            lines.append(f"- risk ({mode}): AUROC {r['auroc'] if r['auroc'] is None else round(r['auroc'], 3)}, Brier "
                         f"{r['brier']:.3f} vs base rate {r['base_brier']:.3f} (skill {skill}), ECE {r['ece']:.3f}, "
                         f"{r['negative']}/{r['pairs']} negative pairs")
        if d["risk"]:
            svg = page.parent / f"reliability-{split.replace(', ', '-').replace(' + ', '+').replace(' ', '')}.svg"
            svg.write_text(reliability_svg({m: r["bins"] for m, r in d["risk"].items()},
                                           f"Reliability of the risk, {split} pairs"))
            lines += ["", f"![reliability diagram, {split}]({svg.name})", "",
                      "| risk | bin | pairs | mean predicted | observed |", "|---|---|---|---|---|"]
            for mode, r in d["risk"].items():
                lines += [f"| {mode} | {b['lo']:.1f}–{b['hi']:.1f} | {b['pairs']} | {b['predicted']:.2f} | "
                          f"{b['observed']:.2f} |" for b in r["bins"]]
        lines += [""]
    lines += ["## Backbones", "", "| backbone | arch | source | held-out source acc. | generic acc. | params (M) |",
              "|---|---|---|---|---|---|"]
    for b, m in state["backbones"].items():
        lines.append(f"| {b} | {m['arch']} | {m['domain']} | {m['val_accuracy']:.3f} | "
                     f"{(m['generic_accuracy'] or float('nan')):.3f} | {(m['params_m'] or float('nan')):.2f} |")
    lines += ["", "Fit rules that ran: " + "; ".join(f"{k}: {v['name']}" for k, v in state["rules"].items()), ""]
    lines += _selection_lines(state)
    reading = page.parent / "READING.md"        # the hand-written reading of these figures, when there is one
    if reading.is_file():
        lines += [reading.read_text()]
    page.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=data_dir() / "bench")
    ap.add_argument("--store", type=Path, default=RESULTS_V2 / "groundtruth.jsonl")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--select", action="store_true", help="choose the fit rules on dev and write catalog/fit_rule.json")
    ap.add_argument("--quick", action="store_true", help="tiny targets (CI); never writes into the committed results")
    ap.add_argument("--fresh", type=Path, default=None, metavar="STORE",
                    help="protocol 3: also read the fresh test targets (their ground truth: results/v3/"
                         "groundtruth.jsonl) with the shipped rules [results: results/v3]")
    ap.add_argument("--base-state", type=Path, default=None,
                    help="with --fresh: protocol 2's figures to join [default: the v2.5 page's state.json]")
    ap.add_argument("--score-only", metavar="I/N", default=None,
                    help="only score this share of the targets with complete ground truth (processes side by side "
                         "fill OUT/v2/scores; a later run without it reads them)")
    ap.add_argument("--fresh-protocol", type=int, choices=(3, 4), default=3,
                    help="with --fresh: 3 (joined to protocol 2's figures) or 4 (read alone, after the declared "
                         "exclusion) [results: results/v3 or results/v4]")
    ap.add_argument("--select-stored", type=Path, default=None, metavar="STATE",
                    help="protocol 4: choose the fit rules on every target of STATE (results/v3/state.json) from "
                         "its stored signals and write catalog/fit_rule.json (--quick: RESULTS/fit_rule.json)")
    args = ap.parse_args(argv)
    if args.select_stored is not None:
        out = (args.results / "fit_rule.json") if args.quick else ROOT / "catalog" / "fit_rule.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = select_stored(args.select_stored, out, args.out / "v2" / "scores")
        for mode, table in doc["selection"].items():
            print(f"{mode}:")
            for r in table:
                print(f"  {r['name']:60s} LOTO tau {r['loto_tau']:.3f}  regret {r['loto_regret']:.1f}")
            print(f"  -> {doc['rules'].get(mode, {}).get('name', 'not shipped')}")
        print(f"wrote {out}")
        return
    if args.score_only:
        score_share(args.out / "v2", tuple(int(v) for v in args.score_only.split("/")), args.fresh is not None,
                    args.fresh_protocol)
        return
    if args.fresh is not None and args.results == RESULTS:
        if args.quick:
            raise SystemExit("--quick --fresh needs --results (a folder outside the committed results)")
        args.results = RESULTS_V4 if args.fresh_protocol == 4 else RESULTS_V3
    if args.fresh is not None and args.fresh_protocol == 4 and args.base_state is not None:
        raise SystemExit("protocol 4 reads its fresh targets alone: --base-state is protocol 3's")
    base = args.base_state or RESULTS / "state.json"
    if args.fresh is not None and args.fresh_protocol == 3 and base.parent.resolve() == args.results.resolve():
        raise SystemExit("--fresh would overwrite the protocol-2 state it joins: choose another --results")
    args.results.mkdir(parents=True, exist_ok=True)
    state = evaluate(args.out / "v2", args.store, args.results, do_select=args.select, quick=args.quick,
                     fresh=args.fresh, base_state=args.base_state, fresh_protocol=args.fresh_protocol)
    summary = summarise(state)
    (args.results / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.results / "state.json").write_text(json.dumps(state, default=float) + "\n")
    import csv

    with open(args.results / "pairs.csv", "w", newline="") as fh:
        keys = sorted({k for r in state["rows"] for k in r}, key=lambda k: (k not in state["rows"][0], k))
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(state["rows"])
    write_page(state, summary, args.results / "RESULTS.md")
    print(f"wrote {args.results / 'RESULTS.md'} and summary.json")


if __name__ == "__main__":
    main()
