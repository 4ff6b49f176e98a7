"""frechet: Fréchet distance of the target's pooled features to the pretraining domain's.

``frechet = FD(N(μₜ, Σₜ), N(μᵣ, Σᵣ)) / tr(Σᵣ)`` with ``FD = ‖μₜ − μᵣ‖² + tr(Σₜ + Σᵣ − 2(ΣₜΣᵣ)^½)``
(:func:`proximity.signals.frechet_distance`), Σₜ Ledoit–Wolf-shrunk when n < 2d, and the
reference Gaussian from ``proximity catalog reference`` (top-k eigenpairs + isotropic residual).
Dividing by tr(Σᵣ) removes the feature *scale*, but not the dependence on d and n: even a sample
drawn from the reference distribution itself scores higher at larger d or smaller n, and keeping
only the top-k eigenpairs adds a small floor. Compare values between backbones of the same feature
size on the same sample; the v0 fit does not use this signal. Lower is closer. No sd: a bootstrap
would cost one d×d eigendecomposition per resample. The target Gaussian and its square root come
from the centred SVD the other signals share (:mod:`proximity.signals.shared`), so one d × d
eigendecomposition remains (of Σₜ^½ Σᵣ Σₜ^½), where there were three.
"""

from __future__ import annotations

import numpy as np

from ..errors import NumericalError, SignalUnavailable
from .registry import SignalContext, register_signal
from .kernels import frechet_distance_factored
from .shared import matrix


def target_gaussian(ctx: SignalContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(μ, Vᵀ, eigenvalues on V, eigenvalue elsewhere) of the Gaussian :func:`~proximity.signals.kernels.gaussian_fit`
    fits to the features — from the shared centred SVD ``X_c = U S Vᵀ`` instead of a d × d
    covariance: the Ledoit–Wolf estimate ``(1 − α) S²/n + α μ`` on V and ``α μ`` elsewhere when
    n < 2d, else the sample covariance ``S²/(n − 1)``."""
    fm = matrix(ctx)
    n, d = fm.x64.shape
    _, s = fm.centered_svd()
    if n < 2 * d:
        alpha, mu = fm.ledoit_wolf()
        return fm.x64.mean(0), fm.centered_vt(), (1.0 - alpha) * s ** 2 / n + alpha * mu, alpha * mu
    return fm.x64.mean(0), fm.centered_vt(), s ** 2 / (n - 1), 0.0


@register_signal("frechet", higher_is_better=False, needs=("reference",),
                 description="Fréchet distance of pooled features to the reference Gaussian / tr(Σ_ref)")
def frechet(ctx: SignalContext):
    """Fréchet distance of the pooled features to the reference Gaussian, divided by tr(Σ_ref)."""
    ref = ctx.reference
    if ref is None:
        raise SignalUnavailable(ctx.reference_reason or "no reference statistics for this backbone: build them with "
                                "`proximity catalog reference MODEL IMAGES`")
    f = ctx.evidence.features
    if f.shape[1] != ref.dim:
        raise SignalUnavailable(f"the reference has {ref.dim} features, the backbone {f.shape[1]}: rebuild it")
    if f.shape[0] < 2:
        raise SignalUnavailable("fewer than 2 images: no covariance")
    mu, vt, eig, rest = target_gaussian(ctx)
    if ref.eigvals.size and (ref.eigvals.min() < -1e-8 * max(float(np.abs(ref.eigvals).max()), 1e-300)
                             or ref.residual < 0):
        raise NumericalError("the reference covariance is not positive semi-definite",
                             float(min(ref.eigvals.min(), ref.residual)))
    fd = frechet_distance_factored(mu, vt, eig, rest, ref.mu, ref.covariance())
    shrunk = "Ledoit–Wolf-shrunk " if f.shape[0] < 2 * f.shape[1] else ""
    return fd / ref.trace(), None, f"FD / tr(Σ_ref), {shrunk}target covariance vs {ref.n} reference images"
