"""Label-using signals: the frozen-feature probe, kNN, the random-weights control and the gain.

All use the same seeded stratified k-fold split (k = min(folds, smallest class size)):

* probe — standardised features → multinomial logistic regression (L2, C = 1) → balanced
  accuracy on the held-out fold; mean ± sd over folds (fitted in the training rows' span:
  exact, and fast when d > n; the span from the fold's Gram matrix, see
  :func:`proximity.signals.shared.gram_coordinates`);
* knn — cosine k-nearest neighbours (k = min(5, n_train − 1)), balanced accuracy, mean ± sd
  (one cosine distance matrix for the sample, sliced per fold);
* control — the probe on the *random-weights* features of the same architecture, on the run's
  control subset (``--control-images``, default 64, stratified, at least min(folds, class size)
  per class: :func:`proximity.scoring.control_subset`) with its own stratified k-fold split;
* gain — the probe on the *pretrained* features of that same subset − control, paired fold by
  fold (the same training and test images), mean ± sd of the differences. On the whole sample
  (``--control-images all``) this is the probe − control of every image.
"""

from __future__ import annotations

import numpy as np

from ..errors import SignalUnavailable
from .linear import balanced_accuracy, knn_predict, logistic_fit, standardize, stratified_kfold
from .registry import SignalContext, labels_of, register_signal, require_labels
from .kernels import rank_mask
from .shared import gram_coordinates, matrix


def _splits(ctx: SignalContext) -> list[tuple[np.ndarray, np.ndarray]]:
    if "splits" in ctx.memo:
        return ctx.memo["splits"]
    counts = require_labels(ctx, "the probe")
    y = labels_of(ctx)
    ctx.memo["splits"] = stratified_kfold(y, int(min(ctx.folds, counts.min())), ctx.seed)
    return ctx.memo["splits"]


def _control_splits(ctx: SignalContext) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(the control subset's labels, its stratified k-fold split); the whole sample's split when the
    subset is every image."""
    if ctx.control is None:
        raise SignalUnavailable(ctx.control_reason)
    require_labels(ctx, "the control probe")     # the sample's own preconditions first (their reasons)
    y = labels_of(ctx)
    if ctx.control_subset is None or len(ctx.control_subset) == len(y):   # the control saw every image
        if len(ctx.control.features) != len(y):
            raise ValueError("the control's features do not match the sample: give control_subset")
        return y, _splits(ctx)
    if len(ctx.control.features) != len(ctx.control_subset):
        raise ValueError(f"the control evidence has {len(ctx.control.features)} images, its subset "
                         f"{len(ctx.control_subset)}: it must hold the subset's images only")
    if "control_splits" not in ctx.memo:
        ys = y[ctx.control_subset]
        _, counts = np.unique(ys, return_counts=True)
        if len(counts) < len(np.unique(y)) or counts.min() < 2:
            raise SignalUnavailable(f"the control's {len(ys)} images hold fewer than 2 images of a class: "
                                    "give --control-images a larger number or 'all'")
        ctx.memo["control_splits"] = (ys, stratified_kfold(ys, int(min(ctx.folds, counts.min())), ctx.seed))
    return ctx.memo["control_splits"]


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
    scores, unconverged = [], 0
    for tr, te in splits:
        xtr, xte = standardize(features[tr], features[te])
        if xtr.shape[1] >= xtr.shape[0]:
            xtr, xte = gram_coordinates(xtr, xte)
        elif xtr.shape[1] > 32:
            basis = row_space(xtr)
            xtr, xte = xtr @ basis, xte @ basis
        clf = logistic_fit(xtr, labels[tr], C=1.0, max_iter=1000)
        unconverged += not clf.converged
        scores.append(balanced_accuracy(labels[te], clf.predict(xte)))
    return np.array(scores), unconverged


def _probe(ctx: SignalContext, which: str) -> tuple[np.ndarray, int]:
    """Per-fold probe scores: ``pretrained`` (every image), ``random`` (the control subset's
    random-weights features) or ``pretrained-subset`` (the pretrained features of that subset,
    the same folds as ``random``: the gain's pair)."""
    key = f"probe:{which}"
    if key not in ctx.memo:
        if which == "pretrained":
            ctx.memo[key] = probe_scores(matrix(ctx).x64, labels_of(ctx), _splits(ctx))
        else:
            ys, splits = _control_splits(ctx)
            if which == "pretrained-subset" and len(ys) == len(labels_of(ctx)):
                return _probe(ctx, "pretrained")
            fm = matrix(ctx, "control" if which == "random" else "pretrained-subset")
            ctx.memo[key] = probe_scores(fm.x64, ys, splits)
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
    y, scores = labels_of(ctx), []
    splits = _splits(ctx)
    dist = matrix(ctx).cosine()         # the sample's cosine distances, once for every fold
    for tr, te in splits:
        k = max(1, min(5, len(tr) - 1))
        scores.append(balanced_accuracy(y[te], knn_predict(dist[np.ix_(te, tr)], y[tr], k)))
    s = np.array(scores)
    return float(s.mean()), float(s.std(ddof=1)), f"{len(s)}-fold, k≤5 cosine neighbours"


@register_signal("control", higher_is_better=True, needs=("labels", "control"), version=2,
                 description="the same probe on random weights of the same architecture (baseline)")
def control(ctx: SignalContext):
    """The same probe on random weights of the same architecture (a baseline)."""
    value, sd, detail = _fmt(*_probe(ctx, "random"))
    n = len(ctx.control.features) if ctx.control is not None else 0
    return value, sd, f"random weights (seed {ctx.seed}, BN re-estimated on them), {n} images; {detail}"


@register_signal("gain", higher_is_better=True, needs=("labels", "control"), version=2,
                 description="probe − control on the control's images, paired per fold")
def gain(ctx: SignalContext):
    """Probe accuracy minus random-weights probe accuracy, paired per fold."""
    c, _ = _probe(ctx, "random")
    p, _ = _probe(ctx, "pretrained-subset")
    d = p - c
    n = len(ctx.control.features) if ctx.control is not None else 0
    return float(d.mean()), float(d.std(ddof=1)), f"pretrained − random probe on {n} images, {len(d)} paired folds"


@register_signal("logme", higher_is_better=True, needs=("labels",), version=2,
                 description="LogME: log maximum evidence of a Bayesian linear model on the features")
def logme_signal(ctx: SignalContext):
    """LogME (You et al., 2021) of the frozen features for the labels (fully converged)."""
    from .kernels import logme

    _splits(ctx)  # same preconditions as the probe: labels, ≥ 2 classes, ≥ 2 images per class
    fm = matrix(ctx)
    return logme(fm.x64, labels_of(ctx), svd=fm.svd()), None, "log evidence per sample, mean over classes"
