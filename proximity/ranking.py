"""The fit score and the order (v0 rule, documented here and in the README).

* **with labels** (the probe could run): ``fit = probe − 0.02 · log(1 + early_shift)``
  (balanced accuracy, refined by proximity: a shift of 1.7 costs 2 points; without
  early_shift, ``fit = probe``);
* **label-free**: ``fit = −log(1 + early_shift)`` (0 is a perfect match, lower is farther).

A candidate whose fit cannot be computed in the run's mode gets ``fit = None`` and is ranked
after the others, by the prior then by id. Ties keep catalog order.
"""

from __future__ import annotations

import math
from typing import Literal, Mapping

from .signals import SignalValue

Mode = Literal["labels", "label-free"]
SHIFT_WEIGHT = 0.02


def fit_score(signals: Mapping[str, SignalValue], mode: Mode) -> float | None:
    """The fit of one candidate under ``mode`` (module docstring)."""
    shift = signals.get("early_shift")
    s = shift.value if shift is not None else None
    if mode == "labels":
        probe = signals.get("probe")
        if probe is None or probe.value is None:
            return None
        return probe.value - (SHIFT_WEIGHT * math.log1p(s) if s is not None else 0.0)
    return -math.log1p(s) if s is not None else None


def sort_key(fit: float | None, prior: float | None, index: int) -> tuple:
    """Best first: by fit, then (for fit-less ones) by prior, then catalog order."""
    if fit is not None:
        return (0, -fit, index)
    return (1, -(prior if prior is not None else -math.inf), index)
