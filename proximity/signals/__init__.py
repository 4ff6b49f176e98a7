"""Signals: small pure functions over evidence, registered by name.

Each signal declares ``higher_is_better`` (the ranking never guesses a direction) and what it
needs (``labels``, ``control``, ``batchnorm``, ``facts``). It returns a :class:`SignalValue`
(value ± sd and a short detail) or raises :class:`~proximity.errors.SignalUnavailable` with the
reason; :func:`compute_signals` turns that into an absent value (``value=None``) carrying the
reason. A value is never made up.

=============  =================  ===================================================
name           higher_is_better   meaning
=============  =================  ===================================================
early_shift    False              scale-free distance of early-layer moments from the
                                  BN running statistics, or from reference moments
                                  for networks without BN (label-free)
probe          True               k-fold logistic-regression balanced accuracy
knn            True               k-fold cosine kNN balanced accuracy
control        True               the same probe on random weights (a baseline)
gain           True               probe − control, paired per fold
logme          True               LogME, log maximum evidence of a linear model
frechet        False              Fréchet distance of pooled features to the reference
                                  Gaussian, divided by tr(Σ_ref) (label-free)
prior          True               static "fame" prior: ImageNet-1k top-1 from the catalog
sfda, nleep,   True               the literature's estimators (``signals.literature``):
hscore,                           SFDA, N-LEEP, regularised H-score, TransRate, ETran's
transrate,                        classification score; ETran's energy is label-free;
etran_lda,                        NCTI's three components (``ncti_vc``: lower is better)
etran_energy,
ncti_*
=============  =================  ===================================================

Every signal carries a ``version`` (:func:`signal_versions`): bumped whenever its definition
changes, recorded by the fitted rules and the risk model, and checked against the code by the
tests, so a shipped rule is never applied to a signal it was not fitted on.
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


from . import early_shift, estimators, frechet, labelfree, prior, probe, probe_loo  # noqa: E402,F401  (registration)

from .kernels import frechet_distance, gaussian_fit, logme  # noqa: E402  (public kernels)

__all__ = ["SIGNALS", "Signal", "SignalContext", "SignalValue", "compute_signals", "register_signal", "signal_versions",
           "frechet_distance", "gaussian_fit", "logme"]
