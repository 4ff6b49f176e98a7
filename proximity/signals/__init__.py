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
frechet_excess False              that distance ÷ the one a same-size sample of the
                                  reference Gaussian gets (label-free; comparable
                                  across architectures)
prior          True               static "fame" prior: ImageNet-1k top-1 from the catalog
sfda, nleep,   True               the literature's estimators (``signals.literature``):
hscore,                           SFDA, N-LEEP, regularised H-score, TransRate, ETran's
transrate,                        classification score; ETran's energy is label-free;
etran_lda,                        NCTI's three components (``ncti_vc``: lower is better)
etran_energy,
ncti_*
scratch        True               hold-out accuracy of the same architecture trained
                                  from random weights on the sample (``--scratch``,
                                  :mod:`proximity.scratch`; a baseline the risk reads)
finetune       True               hold-out accuracy of the candidate fine-tuned briefly
                                  from its pretrained weights on the same split
                                  (``--finetune``; reported, not used by the shipped
                                  fit or risk)
=============  =================  ===================================================

Every signal carries a ``version`` (:func:`signal_versions`): bumped whenever its definition
changes, recorded by the fitted rules and the risk model, and checked against the code by the
tests, so a shipped rule is never applied to a signal it was not fitted on.
"""

from . import early_shift, estimators, frechet, labelfree, prior, probe, probe_loo, scratch  # noqa: F401  (registration)
from ..types import SignalValue
from .kernels import frechet_distance, gaussian_fit, logme  # public kernels
from .registry import (SIGNALS, Signal, SignalContext, compute_signals, labels_of, register_signal, require_labels,
                       signal_versions)

__all__ = ["SIGNALS", "Signal", "SignalContext", "SignalValue", "compute_signals", "register_signal", "signal_versions",
           "labels_of", "require_labels", "frechet_distance", "gaussian_fit", "logme"]
