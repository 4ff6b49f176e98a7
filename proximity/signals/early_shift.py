"""early_shift: how far the target's early-layer statistics are from the pretraining domain's.

For a batch-norm network the early BN layers store the *source* per-channel mean μₛ and variance
σₛ² of their inputs. With μₜ, σₜ² the same moments of the same tensors on the target sample,

    shift_l = mean_c [ ((μₜ − μₛ)² + (σₜ − σₛ)²) / (σₛ² + ε) ],   ε = 1e-3 · mean_c σₛ²
    early_shift = mean_l shift_l

(a per-channel 1-D Fréchet distance made scale-free; ε keeps dead channels from dominating).
The sd is a bootstrap over images (200 resamples, seeded). Lower is closer.
"""

from __future__ import annotations

import numpy as np

from ..errors import SignalUnavailable
from . import SignalContext, register_signal

BOOTSTRAP = 200


def shift_from_moments(mu_t: np.ndarray, var_t: np.ndarray, mu_s: np.ndarray, var_s: np.ndarray) -> float:
    """One layer's shift (formula in the module docstring); arrays of shape (C,)."""
    mu_t, var_t, mu_s, var_s = (np.asarray(a, dtype=np.float64) for a in (mu_t, var_t, mu_s, var_s))
    if (var_s < 0).any() or (var_t < 0).any():
        raise SignalUnavailable("negative variance in the early-layer statistics")
    eps = 1e-3 * float(var_s.mean()) if var_s.mean() > 0 else 1e-12
    d = (mu_t - mu_s) ** 2 + (np.sqrt(var_t) - np.sqrt(var_s)) ** 2
    return float(np.mean(d / (var_s + eps)))


def _value(ev, rows=None) -> float:
    return float(np.mean([shift_from_moments(*ev.layer_moments(l, rows), ev.source_means[l], ev.source_vars[l])
                          for l in range(len(ev.layer_names))]))


@register_signal("early_shift", higher_is_better=False, needs=("batchnorm",),
                 description="distance of early-layer input moments from the BN running statistics")
def early_shift(ctx: SignalContext) -> tuple[float, float | None, str]:
    """Distance of the early-layer input moments from the BN running statistics (label-free)."""
    ev = ctx.evidence
    if not ev.layer_names:
        raise SignalUnavailable(
            "no batch-norm layers in the first stage (e.g. a LayerNorm network); early_shift then "
            "needs reference moments of the pretraining data, which this backbone does not have")
    if any(s.size == 0 for s in ev.source_vars):
        raise SignalUnavailable("the early batch-norm layers keep no running statistics")
    value = _value(ev)
    sd = None
    if ev.n >= 2:
        rng = np.random.default_rng(ctx.seed)
        boots = [_value(ev, rng.integers(0, ev.n, ev.n)) for _ in range(BOOTSTRAP)]
        sd = float(np.std(boots, ddof=1))
    return value, sd, f"{len(ev.layer_names)} early BN layers ({ev.layer_names[0]} … {ev.layer_names[-1]}), bootstrap sd"
