"""Label-free signals of the feature space, and the same measured against random weights.

Pure functions (``x``: pooled features (n, d)):

* :func:`rankme` — effective rank ``exp(−Σ p_k log p_k)``, ``p_k = σ_k / Σσ + 1e-7`` over the
  singular values of the (uncentred) embeddings (Garrido et al., ICML 2023). Higher = the
  target spreads over more directions.
* :func:`alpha_req` — α of the power-law decay ``λ_i ∝ i^(−α)`` of the covariance eigenvalues
  (Agrawal et al., NeurIPS 2022), fitted by least squares on log–log over the non-negligible
  eigenvalues. α ≈ 1 is the regime the paper ties to good downstream accuracy, so the signal
  is ``−|α − 1|`` (higher is better) and the detail states α.
* :func:`cluster_separability` — the best mean silhouette (cosine) of k-means partitions with
  k = 2…8 of the target in the feature space: how clearly the unlabelled target falls into
  groups there.

Registered signals: ``rankme``, ``alpha_req``, ``cluster`` on the whole sample, and — the
per-architecture normalisation — ``rankme_rel`` (pretrained / random weights) and
``cluster_rel`` (pretrained − random weights), both on the run's control subset (``--control-images``,
default 64: :func:`proximity.scoring.control_subset`), where the random-weights network of the
same architecture runs. A ratio for the rank (scale-free across widths: a d = 96
and a d = 768 network's numbers both become "times what random weights give") and a
difference for the silhouette (already in [−1, 1]).
"""

from __future__ import annotations

import numpy as np

from ..errors import SignalUnavailable
from .registry import SignalContext, register_signal
from .shared import matrix


def rankme(x: np.ndarray, eps: float = 1e-7, *, s: np.ndarray | None = None) -> float:
    """RankMe of ``x`` (n, d); ``s``: its singular values when already known."""
    s = np.linalg.svd(np.asarray(x, np.float64), compute_uv=False) if s is None else s
    if s.sum() <= 0:
        raise SignalUnavailable("the features are all zero")
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def alpha_exponent(x: np.ndarray, *, s: np.ndarray | None = None) -> float:
    """The fitted decay exponent α of the covariance spectrum (see the module docstring);
    ``s``: the singular values of the centred ``x`` when already known."""
    if s is None:
        x = np.asarray(x, np.float64)
        s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    lam = s ** 2 / max(len(x) - 1, 1)
    lam = lam[lam > lam[0] * 1e-10] if lam.size and lam[0] > 0 else lam[:0]
    if lam.size < 3:
        raise SignalUnavailable("fewer than 3 non-negligible eigenvalues: no decay to fit")
    i = np.arange(1, lam.size + 1)
    slope = np.polyfit(np.log(i), np.log(lam), 1)[0]
    return float(-slope)


def alpha_req(x: np.ndarray) -> float:
    return -abs(alpha_exponent(x) - 1.0)


def cluster_separability(x: np.ndarray, seed: int = 0, k_max: int = 8, *,
                         distances: np.ndarray | None = None) -> tuple[float, int]:
    """(best mean cosine silhouette over k-means with k = 2…k_max, that k).

    The silhouettes of every k share one cosine distance matrix of the unit-length rows
    (``distances`` (n, n), when already known).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.metrics.pairwise import cosine_distances

    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if len(x) < 4 or (norms == 0).any():
        raise SignalUnavailable("fewer than 4 images, or an all-zero feature vector")
    z = x / norms
    dist = cosine_distances(z) if distances is None else distances
    best = (-1.0, 0)
    for k in range(2, min(k_max, len(x) - 1) + 1):
        lab = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(z)
        if len(np.unique(lab)) < 2:
            continue
        best = max(best, (float(silhouette_score(dist, lab, metric="precomputed")), k))
    if best[1] == 0:
        raise SignalUnavailable("k-means found no two clusters")
    return best


def _features(ctx: SignalContext) -> np.ndarray:
    f = ctx.evidence.features
    if f.shape[0] < 4:
        raise SignalUnavailable("fewer than 4 images")
    return f


def _pair(ctx: SignalContext) -> tuple[np.ndarray, np.ndarray]:
    """(pretrained, random-weights) features on the same subset of images."""
    if ctx.control_subset is None or ctx.control_subset_features is None:
        raise SignalUnavailable(ctx.control_reason if ctx.control_reason else "random-weights control was not run")
    return ctx.evidence.features[ctx.control_subset], ctx.control_subset_features


@register_signal("rankme", higher_is_better=True, description="effective rank of the target's embeddings (RankMe)")
def rankme_signal(ctx: SignalContext):
    f = _features(ctx)
    return rankme(f, s=matrix(ctx).svd()[1]), None, f"of {f.shape[0]} × {f.shape[1]} features"


@register_signal("alpha_req", higher_is_better=True, description="−|α − 1| of the eigenspectrum decay (α-ReQ)")
def alpha_req_signal(ctx: SignalContext):
    a = alpha_exponent(_features(ctx), s=matrix(ctx).centered_svd()[1])
    return -abs(a - 1.0), None, f"α = {a:.3f}"


@register_signal("cluster", higher_is_better=True, description="best k-means silhouette (cosine) of the target")
def cluster_signal(ctx: SignalContext):
    s, k = cluster_separability(_features(ctx), ctx.seed)
    return s, None, f"k = {k}"


@register_signal("rankme_rel", higher_is_better=True, needs=("control",),
                 description="RankMe of the pretrained features ÷ random weights' (same images)")
def rankme_rel(ctx: SignalContext):
    pre, ctl = _pair(ctx)
    return (rankme(pre, s=matrix(ctx, "pretrained-subset").svd()[1]) /
            rankme(ctl, s=matrix(ctx, "control-subset").svd()[1])), None, f"on {len(pre)} images"


@register_signal("cluster_rel", higher_is_better=True, needs=("control",),
                 description="k-means silhouette of the pretrained features − random weights' (same images)")
def cluster_rel(ctx: SignalContext):
    pre, ctl = _pair(ctx)
    (a, _), (b, _) = cluster_separability(pre, ctx.seed), cluster_separability(ctl, ctx.seed)
    return a - b, None, f"on {len(pre)} images"
