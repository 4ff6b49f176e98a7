"""probe_loo: a lower-variance frozen-feature probe — ridge classification scored by exact
leave-one-out, its penalty chosen by the same leave-one-out.

The k-fold ``probe`` holds out a fifth of a small sample per fold and refits a logistic
regression five times; on 8 images per class its folds hold 1–2 images of a class, and its mean
swings with the split. Here every image is held out once, in closed form: features standardised
(on the whole sample), one-hot targets, ridge regression with an intercept; with ``X = U S Vᵀ``
the centred features, the hat matrix is ``H = U diag(s²/(s² + λ)) Uᵀ + 11ᵀ/n`` and the
leave-one-out prediction of image i is ``(ŷᵢ − hᵢᵢ yᵢ) / (1 − hᵢᵢ)`` — exactly what refitting
without image i gives (checked in the tests against refitting). One SVD serves every λ of
the grid ``λ = g · mean(s²)``, ``g ∈ 10^[−4, 2]`` (13 values); the λ with the best
leave-one-out balanced accuracy is kept (ties: the larger λ), and that accuracy is the value.
Choosing λ on the same leave-one-out makes the value slightly optimistic, equally for every
candidate. The sd is the standard error of the per-image correctness (``sd / √n``).
"""

from __future__ import annotations

import numpy as np

from .linear import balanced_accuracy
from .registry import SignalContext, labels_of, register_signal, require_labels
from .shared import matrix

GRID = np.logspace(-4, 2, 13)


def loo_predictions(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Leave-one-out ridge decision values (n, C) for int labels ``y`` (see the module docstring)."""
    return _loo_all(x, y, [lam])[0]


def _loo_all(x: np.ndarray, y: np.ndarray, lams, svd: tuple[np.ndarray, np.ndarray] | None = None) -> list[np.ndarray]:
    """Leave-one-out decision values for each λ; ``svd`` = (U, s) of the centred ``x`` when known."""
    x = np.asarray(x, np.float64)
    n = len(x)
    classes = np.unique(y)
    t = (y[:, None] == classes[None, :]).astype(np.float64)
    if svd is None:
        u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    else:
        u, s = svd
    keep = s > s.max() * max(x.shape) * np.finfo(np.float64).eps if s.size else s.astype(bool)
    u, s2 = u[:, keep], s[keep] ** 2
    tc = t - t.mean(0)
    proj = u.T @ tc
    out = []
    for lam in lams:
        shrink = s2 / (s2 + lam)
        fitted = t.mean(0) + u @ (shrink[:, None] * proj)
        h = (u * u) @ shrink + 1.0 / n
        out.append((fitted - h[:, None] * t) / (1.0 - h)[:, None])
    return out


def probe_loo(x: np.ndarray, y: np.ndarray, *, shared=None) -> tuple[float, float, float]:
    """(balanced accuracy, its sd, the chosen λ) of the leave-one-out ridge probe.

    ``shared``: the :class:`~proximity.signals.shared.FeatureMatrix` of ``x``, whose standardised
    features and their one SVD serve both the λ grid and the hat matrix.
    """
    from .shared import FeatureMatrix

    fm = shared if shared is not None else FeatureMatrix(x)
    z = fm.standardized()
    classes, yi = np.unique(y, return_inverse=True)
    u, s = fm.standardized_svd()
    s2_mean = float((s ** 2).mean())
    lams = [g * max(s2_mean, 1e-12) for g in GRID]
    best: tuple[float, float, float] | None = None
    for lam, dec in zip(lams, _loo_all(z, yi, lams, svd=(u, s)), strict=True):
        pred = dec.argmax(1)
        acc = balanced_accuracy(yi, pred)
        if best is None or acc >= best[0]:
            best = (acc, float(np.std(pred == yi) / np.sqrt(len(yi))), lam)
    assert best is not None  # GRID is not empty
    return best


@register_signal("probe_loo", higher_is_better=True, needs=("labels",),
                 description="leave-one-out ridge probe, balanced accuracy (penalty chosen by the same LOO)")
def probe_loo_signal(ctx: SignalContext):
    require_labels(ctx, "the probe")
    y = labels_of(ctx)
    acc, sd, lam = probe_loo(ctx.evidence.features, y, shared=matrix(ctx))
    return acc, sd, f"leave-one-out over {len(y)} images, λ = {lam:.3g}"
