"""early_shift: how far the target's early-layer statistics are from the pretraining domain's.

For a batch-norm network the early BN layers store the *source* per-channel mean μₛ and variance
σₛ² of their inputs; for a network without early BN (ViT, ConvNeXt, VGG) μₛ, σₛ² are the reference
moments of the outputs of its first two ``feature_info`` modules (``proximity catalog
reference``). With μₜ, σₜ² the same moments of the same tensors on the target sample,

    shift_l = mean_c [ ((μₜ − μₛ)² + (σₜ − σₛ)²) / (σₛ² + ε) ],   ε = 1e-3 · mean_c σₛ²
    early_shift = mean_l shift_l

(a per-channel 1-D Fréchet distance made scale-free; ε keeps dead channels from dominating). The
detail gives ``shift_l`` layer by layer, shallowest first (the depth profile: where along the
first stage the target stops looking like the pretraining data).
The sd is a bootstrap over images (200 resamples, seeded), all resamples at once: a resample is
a row of image counts w, and its pooled moments are ``μ = w·m / n`` and ``σ² = w·v / n + w·m'² / n
− (w·m' / n)²`` with m' the per-image means less their sample mean (no cancellation). Lower is
closer.
"""

from __future__ import annotations

import numpy as np

from ..errors import SignalUnavailable
from .registry import SignalContext, register_signal

BOOTSTRAP = 200


def shift_from_moments(mu_t: np.ndarray, var_t: np.ndarray, mu_s: np.ndarray, var_s: np.ndarray) -> float:
    """One layer's shift (formula in the module docstring); arrays of shape (C,)."""
    mu_t, var_t, mu_s, var_s = (np.asarray(a, dtype=np.float64) for a in (mu_t, var_t, mu_s, var_s))
    if (var_s < 0).any() or (var_t < 0).any():
        raise SignalUnavailable("negative variance in the early-layer statistics")
    eps = 1e-3 * float(var_s.mean()) if var_s.mean() > 0 else 1e-12
    d = (mu_t - mu_s) ** 2 + (np.sqrt(var_t) - np.sqrt(var_s)) ** 2
    return float(np.mean(d / (var_s + eps)))


def _value(ev, sources, rows=None) -> float:
    return float(np.mean(_by_layer(ev, sources, rows)))


def _by_layer(ev, sources, rows=None) -> list[float]:
    return [shift_from_moments(*ev.layer_moments(i, rows), *sources[i]) for i in range(len(ev.layer_names))]


def depth_profile(names: list[str], shifts: list[float], most: int = 6) -> str:
    """``'by depth: conv1 0.12, …, layer1.0.bn2 0.34'`` — the shift of each watched layer from
    the shallowest to the deepest (at most ``most``, evenly spaced, the first and last always)."""
    idx = sorted({round(i * (len(names) - 1) / (most - 1)) for i in range(most)}) if len(names) > most \
        else list(range(len(names)))
    out = ""
    for j, i in enumerate(idx):                   # "…" only where layers are left out
        out += ("" if j == 0 else ", …, " if i > idx[j - 1] + 1 else ", ") + f"{names[i]} {shifts[i]:.3g}"
    return "by depth: " + out


def _sources(ctx: SignalContext) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(source moments per early layer, description): BN running statistics, else the reference."""
    ev, ref = ctx.evidence, ctx.reference
    if ev.layer_names and all(v.size for v in ev.source_vars):
        sources = list(zip(ev.source_means, ev.source_vars, strict=True))
        what = (f"{len(ev.layer_names)} early BN layers ({ev.layer_names[0]} … {ev.layer_names[-1]}) "
                "vs their running statistics")
        if ref is not None and all(ref.moments(n) is not None for n in ev.layer_names):
            shifts = []
            for (mu_s, var_s), n in zip(sources, ev.layer_names, strict=True):
                mu_r, var_r = ref.moments(n)
                shifts.append(shift_from_moments(mu_r, var_r, mu_s, var_s))
            gap = np.mean(shifts)
            what += (f"; the reference moments differ from the BN statistics by {gap:.2f}"
                     + (" (they disagree)" if gap > 0.25 else ""))
        return sources, what
    if not ev.layer_names:
        raise SignalUnavailable("no early layers found (no batch norm and no feature_info)")
    if ref is None:
        raise SignalUnavailable(ctx.reference_reason or
            "no batch-norm layers in the first stage (e.g. a LayerNorm network); early_shift then "
            "needs reference moments of the pretraining data: build them with `proximity catalog reference`")
    missing = [n for n in ev.layer_names if ref.moments(n) is None]
    if missing:
        raise SignalUnavailable(f"the reference statistics have no moments for layer(s) {missing}; rebuild them")
    bad = [n for i, n in enumerate(ev.layer_names) if ref.moments(n)[0].shape != ev.image_means[i].shape[1:]]
    if bad:
        raise SignalUnavailable(f"the reference moments of {bad} have another channel count: rebuild them")
    return ([ref.moments(n) for n in ev.layer_names],
            f"outputs of {', '.join(ev.layer_names)} vs reference moments of {ref.n} pretraining-domain images")


@register_signal("early_shift", higher_is_better=False, needs=("batchnorm|reference",),
                 description="distance of early-layer moments from the pretraining domain's")
def early_shift(ctx: SignalContext) -> tuple[float, float | None, str]:
    """Distance of the early-layer moments from the pretraining domain's (label-free)."""
    ev = ctx.evidence
    sources, what = _sources(ctx)
    shifts = _by_layer(ev, sources)
    value = float(np.mean(shifts))
    sd = None
    if ev.n >= 2:
        rng = np.random.default_rng(ctx.seed)
        rows = rng.integers(0, ev.n, (BOOTSTRAP, ev.n))    # the same draws as BOOTSTRAP calls of size n
        sd = float(np.std(bootstrap_values(ev, sources, rows), ddof=1))
    return value, sd, f"{what}; {depth_profile(list(ev.layer_names), shifts)}; bootstrap sd"


def bootstrap_values(ev, sources, rows: np.ndarray) -> np.ndarray:
    """The early shift of each resample of images ``rows`` (B, n), shape (B,): the value
    :func:`_value` gives for each row, computed for all rows at once (module docstring)."""
    b, n = rows.shape
    counts = np.zeros((b, ev.n))
    np.add.at(counts, (np.repeat(np.arange(b), n), rows.ravel()), 1.0)
    total = np.zeros(b)
    for layer in range(len(ev.layer_names)):
        m, v = ev.image_means[layer], ev.image_vars[layer]
        mc = m - m.mean(0)
        mean_c = counts @ mc / n
        var_t = counts @ v / n + counts @ (mc * mc) / n - mean_c ** 2
        mu_t = mean_c + m.mean(0)
        mu_s, var_s = (np.asarray(a, np.float64) for a in sources[layer])
        if (var_s < 0).any() or (var_t < -1e-12 * max(float(np.abs(var_t).max()), 1e-300)).any():
            raise SignalUnavailable("negative variance in the early-layer statistics")
        eps = 1e-3 * float(var_s.mean()) if var_s.mean() > 0 else 1e-12
        d = (mu_t - mu_s) ** 2 + (np.sqrt(np.maximum(var_t, 0.0)) - np.sqrt(var_s)) ** 2
        total += np.mean(d / (var_s + eps), axis=1)
    return total / len(ev.layer_names)
