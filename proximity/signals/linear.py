"""The probe's and kNN's numerical parts in NumPy/SciPy, without importing scikit-learn (issue 14).

A labelled rank run spent more time around scikit-learn than in its own arithmetic: the import
of ``sklearn.model_selection`` / ``linear_model`` / ``neighbors`` (≈ 1.3 s here) and 30 estimator
fits (4.3 s under the profiler for two backbones). The fit here is an L-BFGS loop over a NumPy
objective, on one BLAS thread: SciPy's OpenBLAS (the optimiser) alternating with NumPy's (the
objective) makes two thread pools spin against each other on two cores, 2.0 s per fit of a
400 × 400 problem instead of 0.18 s. Each function computes what its scikit-learn counterpart
(≥ 1.3) computes; ``tests/test_linear.py`` checks them against it:

* :func:`stratified_kfold` — the same folds as ``StratifiedKFold(k, shuffle=True,
  random_state=seed).split`` (same allocation, same ``RandomState`` draws: the benchmark's
  stored scores keep their splits);
* :func:`standardize` — ``StandardScaler`` (population sd; a constant column is left unscaled);
* :func:`cosine_distances` — ``sklearn.metrics.pairwise.cosine_distances`` of one matrix with
  itself, the same operations in the same dtype;
* :func:`knn_predict` — ``KNeighborsClassifier(k, metric="precomputed").predict`` (the same
  ``argpartition`` choice of neighbours, the smallest label among tied votes);
* :func:`logistic_fit` (→ :class:`LogisticModel`) — ``LogisticRegression(C, max_iter)`` with
  its default solver: the same objective (mean log-loss + ‖W‖² / (2·C·n), intercept not
  penalised; multinomial for ≥ 3 classes, binomial for 2), the same L-BFGS-B settings
  (``gtol = 1e-4``, ``ftol = 64 ε``, ``maxls = 50``), started from zero. The minimiser is unique
  (strictly convex in W), so the predictions agree but where L-BFGS stops a hair apart;
* :func:`balanced_accuracy` — ``balanced_accuracy_score``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def stratified_kfold(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) index pairs of a shuffled stratified k-fold split of ``y``.

    Classes are taken in order of first appearance; fold f receives, of class c, the number of
    c's among the sorted labels at positions f, f + k, f + 2k, …; within a class the fold
    numbers are shuffled by ``np.random.RandomState(seed)``, one class after another.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError("stratified_kfold: y must be one-dimensional")
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    order = np.argsort(first)                       # classes by first appearance
    encoded = np.empty(len(order), dtype=np.intp)
    encoded[order] = np.arange(len(order))
    y_enc = encoded[inverse.ravel()]
    counts = np.bincount(y_enc)
    if k < 2 or k > counts.min():
        raise ValueError(f"stratified_kfold: k = {k} needs 2 ≤ k ≤ the smallest class ({counts.min()})")
    sorted_enc = np.sort(y_enc)
    allocation = np.array([np.bincount(sorted_enc[i::k], minlength=len(counts)) for i in range(k)])
    rng = np.random.RandomState(seed)
    test_fold = np.empty(len(y), dtype=np.intp)
    for c in range(len(counts)):
        folds = np.arange(k).repeat(allocation[:, c])
        rng.shuffle(folds)
        test_fold[y_enc == c] = folds
    everything = np.arange(len(y))
    return [(everything[test_fold != f], everything[test_fold == f]) for f in range(k)]


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``train`` and ``others`` centred and scaled by the training rows' mean and population sd."""
    mean = train.mean(0)
    scale = np.sqrt(((train - mean) ** 2).mean(0))
    scale = np.where(scale < 10 * np.finfo(scale.dtype).eps, 1.0, scale)
    return [(a - mean) / scale for a in (train, *others)]


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """1 − cosine similarity between the rows of ``x`` (its dtype; clipped to [0, 2]; diagonal 0)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0.0] = 1.0
    xn = x / norms[:, np.newaxis]
    s = xn @ xn.T
    s *= -1
    s += 1
    np.clip(s, 0, 2, out=s)
    np.fill_diagonal(s, 0.0)
    return s


def knn_predict(dist_test_train: np.ndarray, y_train: np.ndarray, k: int) -> np.ndarray:
    """Majority label of each test row's k nearest training rows (ties: the smallest label)."""
    classes, y_enc = np.unique(y_train, return_inverse=True)
    neigh = np.argpartition(dist_test_train, k - 1, axis=1)[:, :k]
    votes = np.zeros((len(dist_test_train), len(classes)), dtype=np.intp)
    np.add.at(votes, (np.arange(len(neigh))[:, None], y_enc.ravel()[neigh]), 1)
    return classes[votes.argmax(1)]


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """The mean over the classes present in ``y`` of the share of their images predicted right."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


class LogisticModel:
    """A fitted L2 logistic regression: ``classes``, ``coef`` (K', d), ``intercept`` (K',)
    (K' = 1 for two classes), ``n_iter`` and ``converged``."""

    def __init__(self, classes, coef, intercept, n_iter: int, converged: bool) -> None:
        self.classes, self.coef, self.intercept = classes, coef, intercept
        self.n_iter, self.converged = n_iter, converged

    def decision(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.coef.T + self.intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = self.decision(x)
        if self.coef.shape[0] == 1:
            return self.classes[(z[:, 0] > 0).astype(np.intp)]
        return self.classes[z.argmax(1)]


def _multinomial(w: np.ndarray, x: np.ndarray, onehot: np.ndarray, l2: float):
    """Loss and gradient at ``w`` = [W (K·d, row-major), b (K)] (contiguous blocks: fast products)."""
    n, d = x.shape
    kk = onehot.shape[1]
    coef, bias = w[:kk * d].reshape(kk, d), w[kk * d:]
    z = x @ coef.T + bias
    zmax = z.max(1, keepdims=True)
    ez = np.exp(z - zmax)
    total = ez.sum(1, keepdims=True)
    lse = np.log(total) + zmax
    loss = float((lse[:, 0] - (z * onehot).sum(1)).mean()) + 0.5 * l2 * float(coef.ravel() @ coef.ravel())
    resid = (ez / total - onehot) / n
    grad = np.empty_like(w)
    grad[:kk * d] = (resid.T @ x + l2 * coef).ravel()
    grad[kk * d:] = resid.sum(0)
    return loss, grad


def _binomial(w: np.ndarray, x: np.ndarray, t: np.ndarray, l2: float):
    n, d = x.shape
    z = x @ w[:d] + w[d]
    loss = float((np.logaddexp(0.0, z) - t * z).mean()) + 0.5 * l2 * float(w[:d] @ w[:d])
    resid = (0.5 * (1.0 + np.tanh(0.5 * z)) - t) / n            # sigmoid, overflow-free
    grad = np.empty_like(w)
    grad[:d] = x.T @ resid + l2 * w[:d]
    grad[d] = resid.sum()
    return loss, grad


def logistic_fit(x: np.ndarray, y: np.ndarray, *, C: float = 1.0, max_iter: int = 1000) -> LogisticModel:
    """L2-penalised logistic regression of ``y`` on ``x`` (see the module docstring)."""
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    x = np.ascontiguousarray(x, dtype=np.float64)
    classes, y_enc = np.unique(y, return_inverse=True)
    y_enc = y_enc.ravel()
    if len(classes) < 2:
        raise ValueError("logistic_fit needs at least two classes")
    n, d = x.shape
    l2 = 1.0 / (C * n)
    fun: Callable[..., tuple[float, np.ndarray]]
    if len(classes) == 2:
        fun, target, size = _binomial, y_enc.astype(np.float64), d + 1
    else:
        fun, target, size = _multinomial, np.eye(len(classes))[y_enc], len(classes) * (d + 1)
    # One BLAS thread: the products are tiny, and L-BFGS-B (SciPy's OpenBLAS) alternating with
    # them (NumPy's own OpenBLAS) makes two spinning thread pools fight over the cores: 10× slower.
    with threadpool_limits(limits=1, user_api="blas"):
        res = minimize(fun, np.zeros(size), args=(x, target, l2), method="L-BFGS-B", jac=True,
                       options={"maxiter": max_iter, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps})
    kk = size // (d + 1)
    coef, bias = res.x[:kk * d].reshape(kk, d), res.x[kk * d:]
    return LogisticModel(classes, coef, bias, int(res.nit), bool(res.success) and res.nit < max_iter)
