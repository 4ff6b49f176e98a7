"""Do pseudo-labels give a label-free signal that ranks across architecture families? (issue 12)

    python scripts/bench/labelfree_pseudo.py [--work DIR] [--out scripts/bench/results/labelfree-pseudo.json]

An exploratory check (outside the product; nothing ships from it) on the 52 targets protocols 2–4
have read, each with the 17 protocol-2 backbones and its fine-tuning ground truth. All of them are
dev for any later protocol, so nothing here is a test reading. Issue 12 names "cluster separability
of the target in the backbone's feature space (e.g. k-means pseudo-labels scored by LogME or kNN)";
the registered ``cluster`` signal is a silhouette. This asks whether LogME on *pseudo-labels* — the
strongest labelled signal, given labels the run invents — carries across families where every
stored label-free signal fails (:func:`pseudo_label_scores`):

- **self**: LogME of a backbone's final pooled features on k-means clusters of those same features;
- **cross**: on each *other* backbone's clusters, averaged (a backbone is not judged by its own clusters);
- **consensus**: on clusters of all 17 backbones' features side by side, each reduced to 32 principal
  components and scaled to unit mean squared norm; **consensus, others**: the same without its own;
- **pixels**: on clusters of the images' own 32 × 32 pixels (32 principal components), which no
  backbone chose;
- **agreement**: mean linear CKA with the other backbones (Kornblith et al. 2019), no clusters.

Each clustering is k-means (4 restarts, seed 0) at k ∈ {2, 3, 4, 6, 8} with k ≤ n / 4, the LogME
averaged over k: a label-free run does not know the number of classes. The features and images are
the ones :mod:`scripts.bench.plateau` extracts (its cache is shared; the final features reproduce
the page's LogME there).

It reports, against the mean of seeds 1–4's fine-tuned accuracy: the mean weighted τ across all 17
backbones (per split), within each family of ≥ 3 backbones, and for z-means with the parameter
count; the stored label-free signals and LogME with the true labels beside them; how well k-means
(k = the number of classes, a diagnostic only) finds the classes (adjusted Rand index), the
signals' τ where it does and where not, and whether a label-free gate — the backbones' clusterings
agreeing (:func:`clustering_agreement`) — can tell a run which case it is in; and the
label-free negative-transfer risk refitted leave-one-target-out on all 884 pairs with each
label-free evidence set, these included.

Measured 2026-12-02 (``results/labelfree-pseudo.json``; ``results/plateau.md`` reads it).
"""

from __future__ import annotations

import argparse
import collections
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

from .plateau import RESULTS, WORK, _mean_by, _z, extract, logme_or_last, loto_auroc, read_pairs  # noqa: E402

KS = (2, 3, 4, 6, 8)
#: the stored label-free signals (pairs.csv columns) and their direction; LogME (labels) for scale
STORED = {"params": 1, "prior": 1, "alpha_req": 1, "rankme": 1, "rankme_rel": 1, "cluster": 1, "cluster_rel": 1,
          "etran_energy": 1, "early_shift": -1, "frechet_excess": -1, "logme (labels)": 1}
NEW = ("self", "cross", "consensus", "consensus, others", "pixels", "agreement")


def _reduce(x: np.ndarray, dims: int = 32) -> np.ndarray:
    """Centred, the first ``dims`` principal components, scaled to unit mean squared norm."""
    x = np.asarray(x, np.float64) - np.mean(x, 0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    z = x @ vt[:dims].T
    return z / (np.sqrt((z ** 2).sum(1).mean()) + 1e-12)


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=4, random_state=0).fit_predict(x)


def _tau(s, a) -> float:
    """Weighted τ of scores ``s`` against accuracies ``a``; constant scores order nothing: τ 0."""
    from scipy.stats import weightedtau

    s = np.asarray(s, np.float64)
    return float(weightedtau(s, np.asarray(a, np.float64)).statistic) if np.ptp(s) > 0 else 0.0


def _cka(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(0), b - b.mean(0)
    ka, kb = a @ a.T, b @ b.T
    return float((ka * kb).sum() / (np.linalg.norm(ka) * np.linalg.norm(kb) + 1e-12))


def pseudo_label_scores(feats: dict[str, np.ndarray], pixels: np.ndarray | None = None,
                        ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    """``{signal: {backbone: score}}`` for the module docstring's signals (higher: better).

    ``feats``: each backbone's final pooled features of the same n images, in the same order;
    ``pixels``: the images flattened (n, d), or None to skip that signal.
    """
    names = sorted(feats)
    n = len(next(iter(feats.values())))
    ks = tuple(k for k in ks if k <= n // 4) or (2,)
    z = {b: _reduce(feats[b]) for b in names}
    own = {b: [_kmeans(z[b], k) for k in ks] for b in names}
    together = [_kmeans(np.concatenate([z[b] for b in names], 1), k) for k in ks]
    out: dict[str, dict[str, float]] = {s: {} for s in NEW}
    if pixels is None:
        del out["pixels"]
        pix = None
    else:
        pix = [_kmeans(_reduce(pixels), k) for k in ks]
    for b in names:
        x = feats[b]
        out["self"][b] = float(np.mean([logme_or_last(x, y) for y in own[b]]))
        out["cross"][b] = float(np.mean([logme_or_last(x, y) for c in names if c != b for y in own[c]]))
        out["consensus"][b] = float(np.mean([logme_or_last(x, y) for y in together]))
        others = np.concatenate([z[c] for c in names if c != b], 1)
        out["consensus, others"][b] = float(np.mean([logme_or_last(x, _kmeans(others, k)) for k in ks]))
        if pix is not None:
            out["pixels"][b] = float(np.mean([logme_or_last(x, y) for y in pix]))
        out["agreement"][b] = float(np.mean([_cka(x, feats[c]) for c in names if c != b]))
    return out


def _pixels(target: str, work: Path) -> np.ndarray:
    """The target's user images as 32 × 32 RGB in [0, 1], flattened, in plateau.extract's order (cached)."""
    from PIL import Image

    from .evaluate_v2 import write_user_images

    path = work / f"{target}.pixels.npy"
    if path.is_file():
        return np.load(path)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_user_images(target, Path(tmp) / target)
        x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32), Image.BILINEAR), np.float32).ravel()
                      / 255.0 for c in sorted(d.name for d in folder.iterdir())
                      for f in sorted((folder / c).glob("*.png"))])
    np.save(path, x)
    return x


def scores(rows: dict, work: Path) -> tuple[dict, dict]:
    """Every target's new signals (cached as ``work/<target>.pseudo.json``) and its k-means ARI."""
    from sklearn.metrics import adjusted_rand_score

    out, ari = {}, {}
    for i, t in enumerate(sorted(rows), 1):
        with (work / f"{t}.pkl").open("rb") as fh:
            d = pickle.load(fh)
        bbs = sorted(rows[t])
        feats = {b: d["feats"][b][-1] for b in bbs}
        cache = work / f"{t}.pseudo.json"
        if cache.is_file():
            out[t] = json.loads(cache.read_text())
        else:
            t0 = time.perf_counter()
            out[t] = pseudo_label_scores(feats, _pixels(t, work))
            cache.write_text(json.dumps(out[t]))
            print(f"[{i}/{len(rows)}] {t}: {time.perf_counter() - t0:.1f} s", flush=True)
        y, k = d["y"], len(set(d["y"].tolist()))
        z = {b: _reduce(feats[b]) for b in bbs}
        ari[t] = {"consensus": float(adjusted_rand_score(y, _kmeans(np.concatenate([z[b] for b in bbs], 1), k))),
                  "best backbone (chosen with the labels)": max(float(adjusted_rand_score(y, _kmeans(z[b], k)))
                                                                for b in bbs),
                  "agreement": clustering_agreement(z)}
    return out, ari


def clustering_agreement(z: dict[str, np.ndarray], ks: tuple[int, ...] = KS) -> float:
    """Label-free: how much the backbones' own k-means clusterings agree (mean pairwise adjusted Rand
    index), at the k in ``ks`` where they agree most — a run's guess at whether its pseudo-labels are real."""
    from sklearn.metrics import adjusted_rand_score

    names = sorted(z)
    n = len(z[names[0]])
    best = -1.0
    for k in tuple(q for q in ks if q <= n // 4) or (2,):
        lab = {b: _kmeans(z[b], k) for b in names}
        best = max(best, float(np.mean([adjusted_rand_score(lab[b], lab[c])
                                        for i, b in enumerate(names) for c in names[i + 1:]])))
    return best


def when_clusters_are_classes(rows: dict, new: dict, ari: dict) -> dict:
    """τ of the pseudo-label signals where k-means finds the classes (consensus ARI > 0.3) and where
    not (a diagnostic that needs the labels), and the label-free gate a run could use instead: the
    signal where the backbones' clusterings agree above a threshold, the parameter count elsewhere,
    the threshold chosen leaving each target out (among the others' values and one below all of them:
    the highest mean τ on the others; ties: the higher threshold)."""
    from scipy.stats import spearmanr

    ts = sorted(rows)
    bbs = sorted(rows[ts[0]])
    tau = {t: {name: _tau([_value(rows, new, t, b, name) for b in bbs], [float(rows[t][b]["finetuned"]) for b in bbs])
               for name in ("params", "logme (labels)", "cross", "consensus, others", "self")} for t in ts}
    real = [t for t in ts if ari[t]["consensus"] > 0.3]
    rest = [t for t in ts if t not in real]
    out: dict = {"targets where k-means finds the classes (consensus ARI > 0.3)": len(real),
                 "tau there / elsewhere": {name: [round(float(np.mean([tau[t][name] for t in real])), 4),
                                                  round(float(np.mean([tau[t][name] for t in rest])), 4)]
                                           for name in tau[ts[0]]}}
    agree = {t: ari[t]["agreement"] for t in ts}

    def grid(sub):  # a threshold at each of these targets' values, and one below all (gate every target)
        return [min(agree[u] for u in sub) - 1.0, *sorted({agree[u] for u in sub})]
    out["spearman(agreement, consensus ARI)"] = round(float(spearmanr([agree[t] for t in ts],
                                                                      [ari[t]["consensus"] for t in ts])[0]), 4)
    gated: dict = {}
    for name in ("cross", "consensus, others"):

        def mean(th, sub, name=name):
            return float(np.mean([tau[u][name] if agree[u] > th else tau[u]["params"] for u in sub]))
        picks = []
        for t in ts:
            others = [u for u in ts if u != t]
            th = max(grid(others), key=lambda q: (mean(q, others), q))
            picks.append(tau[t][name] if agree[t] > th else tau[t]["params"])
        best = max(grid(ts), key=lambda q: (mean(q, ts), q))
        gated[name] = {"loto": round(float(np.mean(picks)), 4), "in-sample best": round(mean(best, ts), 4),
                       "targets gated at the in-sample best": int(sum(agree[t] > best for t in ts))}
    out["gated by agreement (else params)"] = gated
    out["params"] = round(float(np.mean([tau[t]["params"] for t in ts])), 4)
    return out


def _value(rows: dict, new: dict, t: str, b: str, name: str) -> float:
    if name in new[t]:
        return new[t][name][b]
    col = "logme" if name == "logme (labels)" else name
    return STORED[name] * float(rows[t][b][col])


def taus(rows: dict, split: dict, new: dict) -> dict:
    """Mean weighted τ across the 17 backbones (per split), within each family, and z-means with params."""
    from .evaluate_v2 import FAMILY

    tau = _tau
    ts = sorted(rows)
    bbs = sorted(rows[ts[0]])
    fam = {b: FAMILY[rows[ts[0]][b]["arch"]] for b in bbs}
    families = {f: [b for b in bbs if fam[b] == f] for f in sorted(set(fam.values()))}
    families = {f: m for f, m in families.items() if len(m) >= 3}
    acc = {t: [float(rows[t][b]["finetuned"]) for b in bbs] for t in ts}
    out: dict = {"across families": {}, "within family": {}, "z-mean with params": {}}
    for name in (*STORED, *NEW):
        per = {t: tau([_value(rows, new, t, b, name) for b in bbs], acc[t]) for t in ts}
        out["across families"][name] = _mean_by(per, split)
        out["within family"][name] = {
            f: round(float(np.mean([tau([_value(rows, new, t, b, name) for b in m],
                                        [float(rows[t][b]["finetuned"]) for b in m]) for t in ts])), 4)
            for f, m in families.items()}
    for name in ("alpha_req", "early_shift", "rankme", *NEW):
        per = {t: tau(_z([_value(rows, new, t, b, "params") for b in bbs])
                      + _z([_value(rows, new, t, b, name) for b in bbs]), acc[t]) for t in ts}
        out["z-mean with params"][name] = _mean_by(per, split)
    return out


def risk_loto(rows: dict, split: dict, new: dict) -> dict:
    """The label-free negative-transfer risk, leave-one-target-out (penalised logistic, C = 1), per evidence set."""
    ts = sorted(rows)
    bbs = sorted(rows[ts[0]])

    def rel(t, b, name):  # the candidate against the others in the run (z within the target)
        v = np.array([_value(rows, new, t, c, name) for c in bbs])
        return (_value(rows, new, t, b, name) - v.mean()) / (v.std() + 1e-12)

    def log_params_per_image(t, b):  # params is log10 of millions
        return float(rows[t][b]["params"]) * np.log(10) + np.log(1e6) - np.log(float(rows[t][b]["n_images"]))

    feature = {
        "log images": lambda t, b: np.log(float(rows[t][b]["n_images"])),
        "log params per image": log_params_per_image,
        "rankme_rel [shipped]": lambda t, b: float(rows[t][b]["rankme_rel"]),
        "alpha_req": lambda t, b: float(rows[t][b]["alpha_req"]),
        "early_shift": lambda t, b: float(rows[t][b]["early_shift"]),
        "frechet_excess": lambda t, b: float(rows[t][b]["frechet_excess"]),
        "cross (within the run)": lambda t, b: rel(t, b, "cross"),
        "agreement (within the run)": lambda t, b: rel(t, b, "agreement"),
    }
    sets = [("rankme_rel [shipped]",), ("log images",), ("log params per image",), ("alpha_req",),
            ("early_shift",), ("frechet_excess",), ("cross (within the run)",), ("agreement (within the run)",),
            ("log params per image", "rankme_rel [shipped]"),
            ("log images", "log params per image", "rankme_rel [shipped]"),
            ("log params per image", "cross (within the run)"),
            ("log images", "log params per image", "rankme_rel [shipped]", "alpha_req", "early_shift",
             "frechet_excess", "cross (within the run)", "agreement (within the run)")]
    pairs = [(t, b) for t in ts for b in bbs]
    y = np.array([int(rows[t][b]["negative"] in ("1", "True")) for t, b in pairs])
    tg = np.array([t for t, _ in pairs])
    sp = np.array([split[t] for t in tg])
    out: dict = {"pairs": len(pairs), "negative_rate": round(float(y.mean()), 4)}
    for s in sets:
        out[" + ".join(s)] = loto_auroc(np.array([[feature[f](t, b) for f in s] for t, b in pairs]), y, tg, sp)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=WORK,
                    help="the feature cache shared with plateau.py (about 150 MB)")
    ap.add_argument("--out", type=Path, default=RESULTS / "labelfree-pseudo.json")
    args = ap.parse_args(argv)
    rows, split = read_pairs()
    extract(sorted(rows), sorted(next(iter(rows.values()))), args.work)
    new, ari = scores(rows, args.work)
    cons = [a["consensus"] for a in ari.values()]
    result = {"targets": len(rows), "backbones": len(next(iter(rows.values()))),
              "splits": dict(collections.Counter(split.values())), "ks": list(KS),
              "mean_weighted_tau": taus(rows, split, new),
              "kmeans_finds_the_classes": {
                  "consensus ARI mean": round(float(np.mean(cons)), 4),
                  "consensus ARI median": round(float(np.median(cons)), 4),
                  "targets with consensus ARI > 0.3": int(sum(a > 0.3 for a in cons)),
                  "best single backbone ARI mean (chosen with the labels)": round(float(np.mean(
                      [a["best backbone (chosen with the labels)"] for a in ari.values()])), 4)},
              "when_clusters_are_classes": when_clusters_are_classes(rows, new, ari),
              "label_free_risk_loto_auroc": risk_loto(rows, split, new)}
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    tab = result["mean_weighted_tau"]
    w = max(map(len, tab["across families"]))
    for name, v in tab["across families"].items():
        fam = "  ".join(f"{f.split()[0]} {x:+.2f}" for f, x in tab["within family"][name].items())
        print(f"{name:{w}s}  " + "  ".join(f"{k} {x:.3f}" for k, x in v.items()) + f"   | within: {fam}")
    for name, v in tab["z-mean with params"].items():
        print(f"params + {name:{w}s}  " + "  ".join(f"{k} {x:.3f}" for k, x in v.items()))
    print(json.dumps(result["kmeans_finds_the_classes"], indent=1))
    print(json.dumps(result["when_clusters_are_classes"], indent=1, ensure_ascii=False))
    print(json.dumps(result["label_free_risk_loto_auroc"], indent=1))


if __name__ == "__main__":
    main()
