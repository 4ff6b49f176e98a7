"""The signal registry: :class:`SignalContext`, :func:`register_signal`, :func:`compute_signals`.

Signal modules register themselves here; ``proximity.signals`` imports them and re-exports these
names, so no module takes names from the package ``__init__``.
"""


from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..catalog import CatalogEntry
from ..errors import NumericalError, SignalUnavailable
from ..types import SignalNeeds, SignalValue

if TYPE_CHECKING:  # pragma: no cover - the evidence module imports torch; signals need only its arrays
    from ..evidence import Evidence


@dataclass
class SignalContext:
    """Inputs of every signal for one candidate. ``memo`` lets signals share work (probe folds)."""

    evidence: Evidence
    entry: CatalogEntry
    labels: np.ndarray | None = None            # (n,) int codes
    control: Evidence | None = None             # random-weights evidence
    control_reason: str = "random-weights control was not run"
    folds: int = 5
    seed: int = 0
    reference: Any = None                       # proximity.reference.ReferenceStats, when built
    reference_reason: str = ""                  # why a reference that exists could not be used
    control_subset: np.ndarray | None = None    # indices of the images the label-free control saw
    control_subset_features: np.ndarray | None = None   # random-weights features of those images
    memo: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Signal:
    name: str
    func: Callable[[SignalContext], SignalValue]
    higher_is_better: bool
    needs: tuple[str, ...]
    description: str
    version: int = 1

    @property
    def requirements(self) -> SignalNeeds:
        """``needs`` parsed (:class:`proximity.types.SignalNeeds`)."""
        return SignalNeeds.parse(self.needs)


SIGNALS: dict[str, Signal] = {}
logger = logging.getLogger(__name__)


def register_signal(name: str, *, higher_is_better: bool, needs: tuple[str, ...] = (), description: str = "",
                    version: int = 1):
    """Decorator: register ``func(ctx) -> (value, sd, detail)`` as signal ``name``."""
    def deco(func: Callable[[SignalContext], tuple[float, float | None, str]]):
        def wrapped(ctx: SignalContext) -> SignalValue:
            value, sd, detail = func(ctx)
            for what, x in (("value", value), ("sd", sd)):
                if x is not None and not math.isfinite(x):
                    raise NumericalError(f"signal '{name}' produced a non-finite {what}", x)
            return SignalValue(float(value), None if sd is None else float(sd), higher_is_better, detail)
        if name in SIGNALS:
            raise ValueError(f"signal '{name}' is already registered")
        SignalNeeds.parse(needs)   # an unknown need is an error here, not a signal silently never shown
        SIGNALS[name] = Signal(name, wrapped, higher_is_better, needs,
                               description or (func.__doc__ or "").strip().split("\n")[0], version)
        return func
    return deco


def compute_signals(ctx: SignalContext, names: list[str] | None = None) -> dict[str, SignalValue]:
    """Every registered signal (or ``names``) for one candidate; absent ones carry their reason."""
    out = {}
    for name in names or list(SIGNALS):
        sig = SIGNALS[name]
        try:
            out[name] = sig.func(ctx)
        except SignalUnavailable as exc:
            out[name] = SignalValue(None, None, sig.higher_is_better, exc.reason)
        except NumericalError as exc:  # said loudly, and the other signals still count
            logger.warning("%s: signal '%s' failed numerically: %s", ctx.entry.id, name, exc)
            out[name] = SignalValue(None, None, sig.higher_is_better, f"numerical failure: {exc}")
        except Exception as exc:  # a bug or an odd input in one signal: loud, absent, and the run goes on
            logger.warning("%s: signal '%s' failed: %s: %s", ctx.entry.id, name, exc.__class__.__name__, exc)
            logger.debug("traceback", exc_info=True)
            out[name] = SignalValue(None, None, sig.higher_is_better, f"failed: {exc.__class__.__name__}: {exc}")
    return out


def require_labels(ctx: SignalContext, what: str = "the signal") -> np.ndarray:
    """The per-class counts of ``ctx.labels``, after the preconditions every label-using signal
    shares (labels given, ≥ 2 classes, ≥ 2 images per class); else SignalUnavailable saying which."""
    classes, counts = np.unique(labels_of(ctx), return_counts=True)
    if len(classes) < 2:
        raise SignalUnavailable(f"only one class in the sample: {what} needs at least two")
    if counts.min() < 2:
        raise SignalUnavailable(f"a class has only {counts.min()} image(s): {what} needs ≥ 2 per class")
    return counts


def labels_of(ctx: SignalContext) -> np.ndarray:
    """``ctx.labels`` for a signal that needs them (SignalUnavailable when there are none)."""
    if ctx.labels is None:
        raise SignalUnavailable("no labels (give class sub-folders or --labels FILE.csv)")
    return ctx.labels


def signal_versions() -> dict[str, int]:
    """``{name: version}`` of every registered signal."""
    return {name: sig.version for name, sig in SIGNALS.items()}
