"""The literature's estimators (:mod:`proximity.signals.literature`) as registered signals.

Each runs on the frozen pooled features of the sample; the supervised ones need labels with at
least two classes and two images per class (the probe's preconditions), and say so otherwise.
None has a fold structure, so none reports an sd.
"""

from __future__ import annotations

import numpy as np

from ..errors import SignalUnavailable
from .registry import SignalContext, labels_of, register_signal, require_labels
from . import literature as L
from .shared import matrix


def _labelled(ctx: SignalContext) -> tuple[np.ndarray, np.ndarray]:
    require_labels(ctx, "the estimator")
    return matrix(ctx).x64, labels_of(ctx)


def _ncti(ctx: SignalContext) -> tuple[float, float, float]:
    if "ncti" not in ctx.memo:
        ctx.memo["ncti"] = L.ncti_components(*_labelled(ctx))
    return ctx.memo["ncti"]


@register_signal("sfda", higher_is_better=True, needs=("labels",), version=L.VERSIONS["sfda"],
                 description="SFDA: self-challenging Fisher discriminant posterior of the true class")
def sfda(ctx: SignalContext):
    return L.sfda(*_labelled(ctx)), None, "regularised FDA, ConfMix, refit; mean true-class posterior"


@register_signal("nleep", higher_is_better=True, needs=("labels",), version=L.VERSIONS["nleep"],
                 description="N-LEEP: LEEP over Gaussian-mixture components of the features")
def nleep(ctx: SignalContext):
    return L.nleep(*_labelled(ctx), seed=ctx.seed), None, f"PCA 80 %, 5 components per class, seed {ctx.seed}"


@register_signal("hscore", higher_is_better=True, needs=("labels",), version=L.VERSIONS["hscore"],
                 description="shrinkage-regularised H-score")
def hscore(ctx: SignalContext):
    value = L.hscore(*_labelled(ctx), centered_svd=matrix(ctx).centered_svd())
    return value, None, "tr(Σ̃_f⁻¹ (1 − α) Σ_g), Ledoit–Wolf α"


@register_signal("transrate", higher_is_better=True, needs=("labels",), version=L.VERSIONS["transrate"],
                 description="TransRate: coding rate minus class-conditional coding rate")
def transrate(ctx: SignalContext):
    return L.transrate(*_labelled(ctx)), None, "R(Z, 1e-4) − mean_c R(Z_c, 1e-4)"


@register_signal("etran_lda", higher_is_better=True, needs=("labels",), version=L.VERSIONS["etran_lda"],
                 description="ETran's classification score (as its published code computes it)")
def etran_lda(ctx: SignalContext):
    return L.etran_lda(*_labelled(ctx)), None, "nearest-mean posterior of the true class"


@register_signal("etran_energy", higher_is_better=True, version=L.VERSIONS["etran_energy"],
                 description="ETran's energy score: low tail of logsumexp over the features (label-free)")
def etran_energy(ctx: SignalContext):
    f = ctx.evidence.features
    if f.shape[0] < 2:
        raise SignalUnavailable("fewer than 2 images")
    return L.etran_energy(f), None, "mean of the lowest 0.5 % of per-image logsumexp energies"


@register_signal("ncti_seli", higher_is_better=True, needs=("labels",), version=L.VERSIONS["ncti_seli"],
                 description="NCTI: nuclear norm of the LDA-projected features")
def ncti_seli(ctx: SignalContext):
    return _ncti(ctx)[0], None, "‖centred LDA projection‖_*"


@register_signal("ncti_ncc", higher_is_better=True, needs=("labels",), version=L.VERSIONS["ncti_ncc"],
                 description="NCTI: mean LDA posterior of the true class")
def ncti_ncc(ctx: SignalContext):
    return _ncti(ctx)[1], None, "mean true-class LDA posterior"


@register_signal("ncti_vc", higher_is_better=False, needs=("labels",), version=L.VERSIONS["ncti_vc"],
                 description="NCTI: log of the class-wise nuclear norms of the posteriors (lower is better)")
def ncti_vc(ctx: SignalContext):
    return _ncti(ctx)[2], None, "log Σ_c ‖P_c‖_*"
