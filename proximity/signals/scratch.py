"""``scratch``: the candidate's architecture trained from random weights on the sample.

Not computed from the evidence pass: a run with ``--scratch`` trains each architecture once
(:mod:`proximity.scratch`) and puts the result under this name for every candidate of that
architecture, after the other signals. Registered here so that it has a name, a direction and a
version (the risk model records it) and so that a run without ``--scratch`` says how to get it.
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
