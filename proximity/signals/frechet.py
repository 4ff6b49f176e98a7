"""frechet: Fréchet distance of the target's pooled features to the pretraining domain's.

``frechet = FD(N(μₜ, Σₜ), N(μᵣ, Σᵣ)) / tr(Σᵣ)`` with ``FD = ‖μₜ − μᵣ‖² + tr(Σₜ + Σᵣ − 2(ΣₜΣᵣ)^½)``
(:func:`proximity.signals.frechet_distance`), Σₜ Ledoit–Wolf-shrunk when n < 2d, and the
reference Gaussian from ``proximity catalog reference`` (top-k eigenpairs + isotropic residual).
Dividing by tr(Σᵣ) removes the feature *scale*, but not the dependence on d and n: even a sample
drawn from the reference distribution itself scores higher at larger d or smaller n, and keeping
only the top-k eigenpairs adds a small floor. Compare values between backbones of the same feature
size on the same sample; the v0 fit does not use this signal. Lower is closer. No sd: a bootstrap
would cost one d×d eigendecomposition per resample.
"""

from __future__ import annotations

from ..errors import SignalUnavailable
from . import SignalContext, register_signal
from .kernels import frechet_distance, gaussian_fit


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
    mu, cov = gaussian_fit(f)
    fd = frechet_distance(mu, cov, ref.mu, ref.covariance())
    shrunk = "Ledoit–Wolf-shrunk " if f.shape[0] < 2 * f.shape[1] else ""
    return fd / ref.trace(), None, f"FD / tr(Σ_ref), {shrunk}target covariance vs {ref.n} reference images"
