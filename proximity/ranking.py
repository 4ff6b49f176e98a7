"""The fit score and the order (v0 rule, documented here and in the README).

* **with labels** (the probe could run): ``fit = probe`` (balanced accuracy of the frozen-feature
  probe); candidates with equal fit are ordered by ``early_shift`` (closer first; a candidate
  without it comes after those with it, so a missing signal is never an advantage);
* **label-free**: ``fit = −log(1 + early_shift)`` (0 is a perfect match, lower is farther).

A candidate whose fit cannot be computed in the run's mode gets ``fit = None`` and is ranked
after the others, by the prior then by id. Remaining ties keep catalog order.
"""

from __future__ import annotations

import math
from typing import Literal, Mapping

from .signals import SignalValue

Mode = Literal["labels", "label-free"]


def fit_score(signals: Mapping[str, SignalValue], mode: Mode) -> float | None:
    """The fit of one candidate under ``mode`` (module docstring)."""
    if mode == "labels":
        probe = signals.get("probe")
        return None if probe is None or probe.value is None else probe.value
    shift = signals.get("early_shift")
    return -math.log1p(shift.value) if shift is not None and shift.value is not None else None


def sort_key(fit: float | None, signals: Mapping[str, SignalValue], index: int) -> tuple:
    """Best first: by fit, then by early_shift (present before absent), then catalog order;
    fit-less candidates last, by prior."""
    shift = signals.get("early_shift")
    s = shift.value if shift is not None and shift.value is not None else math.inf
    if fit is not None:
        return (0, -round(fit, 12), s, index)
    prior = signals.get("prior")
    p = prior.value if prior is not None and prior.value is not None else -math.inf
    return (1, -p, s, index)
