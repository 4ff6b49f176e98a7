"""One decomposition per feature matrix, shared by every signal that needs it.

The signals of one candidate run one after another on one :class:`~proximity.signals.SignalContext`;
the views and decompositions of its feature matrices are computed on first use and kept in
``ctx.memo`` (:func:`matrix`), so that, for n images and d features:

=====================================  ==========================================================
computed once per matrix               used by
=====================================  ==========================================================
``x64`` float64 copy                   every signal that reads the features
``svd()`` of X (uncentred)             LogME (its U and singular values), RankMe (the values)
``centered_svd()`` of X − mean         α-ReQ (the values), H-score (U and the values), Fréchet
                                       (Vᵀ and the values: Σ_t and its square root, Ledoit–Wolf α)
``standardized_svd()`` of Z            probe_loo (Z = X standardised over the sample)
``cosine()`` distances (n, n)          kNN (sliced per fold), the k-means silhouettes
=====================================  ==========================================================

The k-fold probe standardises each fold on its own training rows, so its matrix differs per
fold and no decomposition can serve two folds exactly; each fold gets the cheapest exact one,
the eigendecomposition of its n_train × n_train Gram matrix (:func:`gram_coordinates`), in
place of a singular value decomposition of the n_train × d matrix (3–7× faster for d ≥ n).

Every shared result is the same computation the signal made on its own before (the same LAPACK
call on the same array), or an algebraically exact rewriting of it that agrees to round-off;
``tests/test_signal_speed.py`` checks every signal against values recorded before the sharing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Gram eigenvalues at or below this fraction of the largest are round-off: an eigenvalue λ of
#: XXᵀ carries an absolute error of about n·eps·λ_max, so below ~1e-10·λ_max its direction is noise.
#: The directions dropped carry at most (1e-5)² of the features' energy: nothing an L2-penalised
#: model can use.
GRAM_FLOOR = 1e-10


def _svd_keep(s: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The singular values that are not round-off (the criterion LogME and the probes used)."""
    if not s.size:
        return s.astype(bool)
    return s > s.max() * max(shape) * np.finfo(np.float64).eps


class FeatureMatrix:
    """Lazily computed views and decompositions of one feature matrix of shape (n, d).

    Each property is computed on first use and kept; arrays returned are shared, never modify them.
    """

    def __init__(self, features: np.ndarray):
        self.features = features
        self._memo: dict[str, Any] = {}

    def _get(self, key: str, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def x64(self) -> np.ndarray:
        """The features as float64, shape (n, d)."""
        def make():
            x = np.array(self.features, np.float64)       # a copy, read-only: signals share it
            x.setflags(write=False)
            return x
        return self._get("x64", make)

    def svd(self) -> tuple[np.ndarray, np.ndarray]:
        """(U (n, k), s (k,)) of ``np.linalg.svd(X, full_matrices=False)``, all k = min(n, d)."""
        def make():
            u, s, _ = np.linalg.svd(self.x64, full_matrices=False)
            return u, s
        return self._get("svd", make)

    @property
    def centered(self) -> np.ndarray:
        """X − column means, float64 (n, d)."""
        return self._get("centered", lambda: self.x64 - self.x64.mean(0))

    def centered_svd(self) -> tuple[np.ndarray, np.ndarray]:
        """(U (n, k), s (k,)) of the centred features, all k = min(n, d)."""
        def make():
            u, s, vt = np.linalg.svd(self.centered, full_matrices=False)
            self._memo["centered_vt"] = vt
            return u, s
        return self._get("centered_svd", make)

    def centered_vt(self) -> np.ndarray:
        """Vᵀ (k, d) of the same SVD of the centred features (orthonormal rows)."""
        self.centered_svd()
        return self._memo["centered_vt"]

    def ledoit_wolf(self) -> tuple[float, float]:
        """(shrinkage α, μ = tr(S)/d) of scikit-learn's Ledoit–Wolf estimate of the covariance
        S = X_cᵀX_c / n, from the centred SVD (:func:`ledoit_wolf_from_svd`)."""
        return self._get("ledoit_wolf", lambda: ledoit_wolf_from_svd(self.centered, self.centered_svd()[1]))

    def standardized(self) -> np.ndarray:
        """(X − mean) / sd over the sample (sd ≤ 1e-12 → 1), float64 (n, d)."""
        def make():
            sd = self.x64.std(0)
            return (self.x64 - self.x64.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
        return self._get("standardized", make)

    def standardized_svd(self) -> tuple[np.ndarray, np.ndarray]:
        """(U (n, k), s (k,)) of the standardised features, centred once more (as probe_loo does)."""
        def make():
            z = self.standardized()
            u, s, _ = np.linalg.svd(z - z.mean(0), full_matrices=False)
            return u, s
        return self._get("standardized_svd", make)

    def cosine(self) -> np.ndarray:
        """Cosine distances (n, n) between the rows, as scikit-learn computes them (float32
        features stay float32), diagonal 0."""
        def make():
            from .linear import cosine_distances

            return cosine_distances(self.features)
        return self._get("cosine", make)


def ledoit_wolf_from_svd(xc: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(shrinkage, μ = tr Σ / d) of ``sklearn.covariance.ledoit_wolf_shrinkage(xc, assume_centered=True)``
    for centred ``xc`` (n, d) with singular values ``s``, its sums taken in n-space:
    Σ_jk (X²ᵀX²)_jk = Σ_i (Σ_j x_ij²)² and Σ_jk (XᵀX)_jk² = Σ s⁴ (the same numbers, to round-off)."""
    n, d = xc.shape
    x2 = xc ** 2
    trace = x2.sum() / n
    mu = trace / d
    if d == 1:
        return 0.0, mu
    beta_ = float((x2.sum(1) ** 2).sum())
    delta_ = float((s ** 4).sum()) / n ** 2
    beta = 1.0 / (d * n) * (beta_ / n - delta_)
    delta = (delta_ - 2.0 * mu * trace + d * mu ** 2) / d
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), mu


def matrix(ctx, which: str = "pretrained") -> FeatureMatrix:
    """The shared :class:`FeatureMatrix` of one of the context's feature matrices.

    ``which``: ``pretrained`` (the evidence), ``control`` (the random-weights evidence), or
    ``pretrained-subset`` / ``control-subset`` (the label-free control's images).
    """
    key = f"matrix:{which}"
    if key not in ctx.memo:
        if which == "pretrained":
            f = ctx.evidence.features
        elif which == "control":
            f = ctx.control.features
        elif which == "pretrained-subset":
            f = ctx.evidence.features[ctx.control_subset]
        elif which == "control-subset":
            f = ctx.control_subset_features
        else:
            raise ValueError(f"unknown feature matrix '{which}': "
                             "pretrained, control, pretrained-subset, control-subset")
        ctx.memo[key] = FeatureMatrix(f)
    return ctx.memo[key]


def gram_coordinates(x_train: np.ndarray, x_other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the training rows and of other rows in an orthonormal basis V (d, r) of
    the span of the training rows: ``(x_train @ V, x_other @ V)``, without forming V.

    With ``x_train x_trainᵀ = U Λ Uᵀ`` (eigenvalues above :data:`GRAM_FLOOR` · max),
    V = x_trainᵀ U Λ^-½,
    so ``x_train V = U Λ^½`` and ``x_other V = (x_other x_trainᵀ) U Λ^-½``. An L2-penalised linear
    model's weights lie in that span (its loss gradient is a combination of training rows), so a
    fit on these r ≤ n_train coordinates gives the same predictions as a fit on all d features.
    This is the basis :func:`proximity.signals.probe.row_space` computes by an SVD, up to the
    signs of its columns, for an n_train² · d matrix product and an n_train × n_train eigh.
    """
    gram = x_train @ x_train.T
    w, u = np.linalg.eigh(gram)
    keep = w > max(float(w[-1]), 0.0) * GRAM_FLOOR if w.size else w.astype(bool)
    if not keep.any():
        return np.zeros((x_train.shape[0], 0)), np.zeros((x_other.shape[0], 0))
    u, root = u[:, keep], np.sqrt(w[keep])
    return u * root, (x_other @ x_train.T) @ (u / root)
