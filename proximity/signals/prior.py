"""prior: the static "fame" prior from catalog facts — reported as a baseline, never hidden.

The value is the entry's ImageNet-1k top-1 accuracy (%) when the catalog records it. Published
evidence shows such a prior already beats many transferability estimators on ImageNet-like
targets; proximity must show it next to its own ranking.
"""

from __future__ import annotations

from ..errors import SignalUnavailable
from .registry import SignalContext, register_signal

#: The signals that read no image: catalog facts, or the size of the network as loaded. A fit
#: rule made of these alone orders the candidates without looking at the user's data, and the
#: reports say so.
STATIC = frozenset({"prior", "params"})


@register_signal("prior", higher_is_better=True, needs=("facts",),
                 description="static prior: ImageNet-1k top-1 (%) from the catalog")
def prior(ctx: SignalContext) -> tuple[float, float | None, str]:
    """Static prior: ImageNet-1k top-1 (%) recorded in the catalog entry."""
    top1 = ctx.entry.imagenet_top1
    if top1 is None:
        raise SignalUnavailable("no ImageNet top-1 recorded for this backbone"
                                + (" (ad-hoc --model: no catalog facts)" if ctx.entry.path is None else ""))
    src = ctx.entry.provenance.get("facts.imagenet_top1", "catalog")
    return float(top1), None, f"ImageNet-1k top-1 from {src}"


@register_signal("params", higher_is_better=True, needs=(),
                 description="static prior: log10 of the parameter count (millions), from the catalog or counted")
def params(ctx: SignalContext) -> tuple[float, float | None, str]:
    """Static prior: model size. A baseline in the literature (bigger models transfer better
    within one pool), and a fact the fit may use. The catalog's count where it records one, else
    the count of the network as loaded (truncation included), so an ad-hoc ``--model`` has it too."""
    import math

    p = ctx.entry.params_m
    if p is not None and p > 0:
        return math.log10(p), None, f"{p:g} M parameters"
    counted = ctx.evidence.n_params
    if not counted:
        raise SignalUnavailable("no parameter count recorded for this backbone, and none counted")
    return math.log10(counted / 1e6), None, f"{counted / 1e6:.3g} M parameters, counted in the loaded network"
