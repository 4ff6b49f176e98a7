"""Label-using signals: the frozen-feature probe, kNN, the random-weights control and the gain.

All use the same seeded stratified k-fold split (k = min(folds, smallest class size)):

* probe — standardised features → multinomial logistic regression (L2, C = 1) → balanced
  accuracy on the held-out fold; mean ± sd over folds (fitted in the training rows' span:
  exact, and fast when d > n; the span from the fold's Gram matrix, see
  :func:`proximity.signals.shared.gram_coordinates`);
* knn — cosine k-nearest neighbours (k = min(5, n_train − 1)), balanced accuracy, mean ± sd
  (one cosine distance matrix for the sample, sliced per fold);
* control — the probe on the *random-weights* features of the same architecture;
* gain — probe − control, paired fold by fold, mean ± sd of the differences.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import SignalUnavailable
from .registry import SignalContext, labels_of, register_signal, require_labels
from .kernels import rank_mask
from .shared import gram_coordinates, matrix


def _splits(ctx: SignalContext) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    if "splits" in ctx.memo:
        return ctx.memo["splits"]
    counts = require_labels(ctx, "the probe")
    y = labels_of(ctx)
    k = int(min(ctx.folds, counts.min()))
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=ctx.seed)
    ctx.memo["splits"] = list(skf.split(np.zeros(len(y)), y))
    return ctx.memo["splits"]


def folds_used(ctx: SignalContext) -> int | None:
    """The k of the folds the probe-like signals used for ``ctx``; None when none of them ran."""
    splits = ctx.memo.get("splits")
    return len(splits) if splits else None


def row_space(x_train: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, r) of the span of the training rows, r = rank ≤ min(n_train, d).

    An L2-penalised linear model's weights lie in that span (the loss gradient is a combination
    of training rows), so fitting on ``x @ basis`` gives exactly the same predictions with
    r instead of d coordinates — about 10× faster for n = 400, d = 1280. (The probe takes the
    same span from the Gram matrix when d ≥ n_train: :func:`~proximity.signals.shared.gram_coordinates`.)
    """
    _, s, vt = np.linalg.svd(x_train, full_matrices=False)
    keep = rank_mask(s, x_train.shape)
    return vt[keep].T


def probe_scores(features: np.ndarray, labels: np.ndarray, splits) -> tuple[np.ndarray, int]:
    """Balanced accuracy per fold of the logistic probe; also the number of unconverged fits.

    Per fold: standardise on the training part, project onto its row space (exact, see
    :func:`row_space`), multinomial logistic regression with C = 1. The fold's standardisation
    makes its matrix its own, so each fold needs its own basis: from the n_train × n_train Gram
    matrix when d ≥ n_train (:func:`~proximity.signals.shared.gram_coordinates`), else by the
    SVD of the n_train × d matrix (cheap then).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    scores, unconverged = [], 0
    for tr, te in splits:
        scaler = StandardScaler().fit(features[tr])
        xtr, xte = scaler.transform(features[tr]), scaler.transform(features[te])
        if xtr.shape[1] >= xtr.shape[0]:
            xtr, xte = gram_coordinates(xtr, xte)
        elif xtr.shape[1] > 32:
            basis = row_space(xtr)
            xtr, xte = xtr @ basis, xte @ basis
        clf = LogisticRegression(C=1.0, max_iter=1000)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(xtr, labels[tr])
        unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        scores.append(balanced_accuracy_score(labels[te], clf.predict(xte)))
    return np.array(scores), unconverged


def _probe(ctx: SignalContext, which: str) -> np.ndarray:
    key = f"probe:{which}"
    if key not in ctx.memo:
        ev = ctx.evidence if which == "pretrained" else ctx.control
        if ev is None:
            raise SignalUnavailable(ctx.control_reason)
        splits = _splits(ctx)
        ctx.memo[key] = probe_scores(matrix(ctx, "pretrained" if which == "pretrained" else "control").x64,
                                      labels_of(ctx), splits)
    return ctx.memo[key]


def _fmt(scores: np.ndarray, unconverged: int) -> tuple[float, float, str]:
    detail = f"{len(scores)}-fold balanced accuracy"
    if unconverged:
        detail += f"; {unconverged} fold fit(s) hit max_iter"
    return float(scores.mean()), float(scores.std(ddof=1)), detail


@register_signal("probe", higher_is_better=True, needs=("labels",),
                 description="k-fold logistic-regression balanced accuracy on frozen features")
def probe(ctx: SignalContext):
    """k-fold logistic-regression balanced accuracy on frozen features."""
    return _fmt(*_probe(ctx, "pretrained"))


@register_signal("knn", higher_is_better=True, needs=("labels",),
                 description="k-fold cosine kNN balanced accuracy on frozen features")
def knn(ctx: SignalContext):
    """k-fold cosine kNN balanced accuracy on frozen features."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import KNeighborsClassifier

    y, scores = labels_of(ctx), []
    splits = _splits(ctx)
    dist = matrix(ctx).cosine()         # the sample's cosine distances, once for every fold
    for tr, te in splits:
        k = max(1, min(5, len(tr) - 1))
        clf = KNeighborsClassifier(n_neighbors=k, metric="precomputed").fit(dist[np.ix_(tr, tr)], y[tr])
        scores.append(balanced_accuracy_score(y[te], clf.predict(dist[np.ix_(te, tr)])))
    s = np.array(scores)
    return float(s.mean()), float(s.std(ddof=1)), f"{len(s)}-fold, k≤5 cosine neighbours"


@register_signal("control", higher_is_better=True, needs=("labels", "control"),
                 description="the same probe on random weights of the same architecture (baseline)")
def control(ctx: SignalContext):
    """The same probe on random weights of the same architecture (a baseline)."""
    value, sd, detail = _fmt(*_probe(ctx, "random"))
    return value, sd, f"random weights (seed {ctx.seed}, BN re-estimated on the sample); {detail}"


@register_signal("gain", higher_is_better=True, needs=("labels", "control"),
                 description="probe − control, paired per fold")
def gain(ctx: SignalContext):
    """Probe accuracy minus random-weights probe accuracy, paired per fold."""
    p, _ = _probe(ctx, "pretrained")
    c, _ = _probe(ctx, "random")
    d = p - c
    return float(d.mean()), float(d.std(ddof=1)), f"pretrained − random probe over {len(d)} paired folds"


@register_signal("logme", higher_is_better=True, needs=("labels",), version=2,
                 description="LogME: log maximum evidence of a Bayesian linear model on the features")
def logme_signal(ctx: SignalContext):
    """LogME (You et al., 2021) of the frozen features for the labels (fully converged)."""
    from .kernels import logme

    _splits(ctx)  # same preconditions as the probe: labels, ≥ 2 classes, ≥ 2 images per class
    fm = matrix(ctx)
    return logme(fm.x64, labels_of(ctx), svd=fm.svd()), None, "log evidence per sample, mean over classes"
