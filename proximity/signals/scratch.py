"""``scratch``: the candidate's architecture trained from random weights on the sample;
``finetune``: the candidate itself, briefly fine-tuned from its pretrained weights on the same split.

Not computed from the evidence pass: a run with ``--scratch`` trains each architecture once
(:mod:`proximity.scratch`) and puts the result under this name for every candidate of that
architecture, after the other signals; a run with ``--finetune`` fine-tunes each candidate.
Registered here so that they have a name, a direction and a version (recorded by a fit rule or
risk model that uses them) and so that a run without the option says how to get it.
"""

from __future__ import annotations

from ..errors import SignalUnavailable
from .registry import SignalContext, labels_of, register_signal

NOT_RUN = "not run: give --scratch (rank(scratch=True)) to train the architecture from scratch on the sample"


@register_signal("scratch", higher_is_better=True, needs=("labels",),
                 description="hold-out accuracy of the same architecture trained from random weights on the sample")
def scratch(ctx: SignalContext):
    """Placeholder until the run-level from-scratch training fills it in (module docstring)."""
    labels_of(ctx)
    raise SignalUnavailable(NOT_RUN)


NOT_RUN_FINETUNE = ("not run: give --finetune (rank(finetune=True)) to fine-tune each candidate briefly on the "
                    "sample")


@register_signal("finetune", higher_is_better=True, needs=("labels",),
                 description="hold-out accuracy of the candidate briefly fine-tuned from its pretrained weights on "
                             "the sample (same split and loop as scratch)")
def finetune(ctx: SignalContext):
    """Placeholder until the run-level short fine-tune (``--finetune``) fills it in."""
    labels_of(ctx)
    raise SignalUnavailable(NOT_RUN_FINETUNE)
