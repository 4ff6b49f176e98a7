"""Negative-transfer risk, v0 — **uncalibrated**.

The risk is meant as P(fine-tuning from this backbone ends below training the same architecture
from scratch). v0 is a documented first estimate, not yet fitted to ground truth (a later
benchmark calibrates it); treat its numbers as an ordering with a rough scale.

* **with labels and the random-weights control** — the probe gain g (pretrained − random
  balanced accuracy, paired over k folds, sd s) is the evidence:
  ``risk = Φ(−g / u)``, ``u = sqrt(s²/k + τ²)``, τ = 0.03 (an allowance for the gap between
  a linear probe's gain and a fine-tune's). A gain of 0 gives 0.5; a gain of 2u gives 0.02.
* **label-free** (no labels or no control) — from early_shift only:
  ``risk = shift / (shift + 1)`` (a shift of 1 — the target's early moments a source standard
  deviation away — gives 0.5), flagged "label-free, uncalibrated".
* **neither** — null, band ``unknown``.

Bands: low < 0.2 ≤ medium < 0.5 ≤ high.
"""

from __future__ import annotations

import math
from typing import Mapping

from .signals import SignalValue

TAU = 0.03
BANDS = ((0.2, "low"), (0.5, "medium"), (1.01, "high"))


def band(risk: float | None) -> str:
    """``low`` / ``medium`` / ``high`` by the documented thresholds, ``unknown`` for None."""
    if risk is None:
        return "unknown"
    return next(name for hi, name in BANDS if risk < hi)


def estimate_risk(signals: Mapping[str, SignalValue], n_folds: int | None = None) -> tuple[float | None, str]:
    """Return (risk in [0, 1] or None, one-line reason naming the evidence).

    ``n_folds`` is the number of folds the probe really used (k of the module docstring).
    """
    gain = signals.get("gain")
    shift = signals.get("early_shift")
    if gain is not None and gain.value is not None:
        k = n_folds or 5
        s = gain.sd or 0.0
        u = math.sqrt(s * s / k + TAU * TAU)
        risk = 0.5 * math.erfc(gain.value / u / math.sqrt(2.0))
        verb = "beats" if gain.value >= 0 else "trails"
        why = f"probe {verb} random weights by {abs(gain.value) * 100:.1f} ± {s * 100:.1f} points"
        if shift is not None and shift.value is not None:
            why += f"; early-layer shift {shift.value:.2f}"
        return risk, why + " (v0, uncalibrated)"
    if shift is not None and shift.value is not None:
        risk = shift.value / (shift.value + 1.0)
        closeness = "near" if shift.value < 0.25 else "far from" if shift.value > 1.0 else "moderately far from"
        basis = "label-free" if gain is None or not gain.reason or "no labels" in gain.reason else f"no gain ({gain.reason})"
        return risk, (f"{basis}: early-layer statistics {closeness} the pretraining data "
                      f"(shift {shift.value:.2f}); uncalibrated")
    missing = gain.reason if gain is not None and gain.reason else "no probe gain"
    return None, f"unknown: {missing}; and no early-layer statistics"
