"""The values that cross module boundaries, as typed classes with declared attributes.

A leaf module (it imports only :mod:`proximity.errors` and the standard library), so that the
report, the risk and the command line can use these types without loading torch:

* :class:`SignalValue` — one signal's outcome for one candidate (value ± sd, or absent with why);
* :class:`SignalNeeds` — what a signal needs, parsed once from its registration;
* :class:`Failure` and :data:`Stage` — a backbone that could not be ranked, and where; the stage
  is decided in one place, :meth:`Failure.from_exception`;
* :class:`Exclusion` and :data:`ExclusionKind` — a catalog entry a run set aside, and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from .errors import ProximityError, one_line

# --------------------------------------------------------------------------- signals


@dataclass(frozen=True)
class SignalValue:
    """A signal's outcome. ``value`` is None (with ``reason``) when the signal is absent."""

    value: float | None
    sd: float | None = None
    higher_is_better: bool = True
    reason: str = ""           # why absent, or a short detail of how the value was obtained

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "sd": self.sd, "higher_is_better": self.higher_is_better, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SignalValue:
        return cls(d.get("value"), d.get("sd"), bool(d.get("higher_is_better", True)), str(d.get("reason", "")))


#: The words a signal's ``needs`` may hold (``register_signal(..., needs=(...))``).
Need = Literal["labels", "control", "facts", "reference", "batchnorm|reference"]
NEEDS: tuple[str, ...] = get_args(Need)


@dataclass(frozen=True)
class SignalNeeds:
    """What a signal needs, parsed from the words of its registration (:data:`NEEDS`)."""

    labels: bool = False                   # labels with ≥ 2 classes (known only at run time)
    control: bool = False                  # the random-weights control pass (run time)
    facts: bool = False                    # catalog facts (ImageNet top-1)
    reference: bool = False                # reference statistics of the pretraining data
    batchnorm_or_reference: bool = False   # early BN layers in the network, or reference moments

    @classmethod
    def parse(cls, needs: Iterable[str]) -> SignalNeeds:
        """Raises ValueError for a word that is not one of :data:`NEEDS`."""
        words = tuple(needs)
        bad = [w for w in words if w not in NEEDS]
        if bad:
            raise ValueError(f"unknown signal need(s) {bad}; valid: {', '.join(NEEDS)}")
        return cls(labels="labels" in words, control="control" in words, facts="facts" in words,
                   reference="reference" in words, batchnorm_or_reference="batchnorm|reference" in words)

    def supported(self, *, facts: bool, reference: bool, batchnorm: bool | None) -> bool | None:
        """Whether a catalog entry can have this signal, before any run: False when it lacks what
        the signal needs, None when that is not known offline (``batchnorm`` None), else True.
        Labels and the control are the run's, not the entry's: they do not count here."""
        if (self.facts and not facts) or (self.reference and not reference):
            return False
        if self.batchnorm_or_reference and not reference:
            return None if batchnorm is None else batchnorm
        return True


# --------------------------------------------------------------------------- failures

#: Where a backbone failed: fetching its files, building it, its forward pass, or its signals.
Stage = Literal["fetch", "load", "forward", "signal"]
STAGES: tuple[str, ...] = get_args(Stage)


@dataclass(frozen=True)
class Failure:
    """A backbone that could not be ranked, and at which stage."""

    model: str
    stage: Stage
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "stage": self.stage, "error": self.error}

    @classmethod
    def from_exception(cls, model: str, exc: BaseException, phase: Stage) -> Failure:
        """The failure of ``model`` from ``exc``, raised while the run was in ``phase``.

        The one place a stage is decided: the stage an error's class declares
        (:attr:`ProximityError.stage`: Hub errors are ``fetch``, an unsupported model ``load``, a
        failed forward pass ``forward``), else the phase. The error is one line
        (:func:`proximity.errors.one_line`).
        """
        declared = exc.stage if isinstance(exc, ProximityError) else None
        stage = declared if declared in STAGES else phase
        return cls(model, cast(Stage, stage), one_line(exc))


# --------------------------------------------------------------------------- exclusions

#: Why a run set a catalog entry aside (``rank``'s filters, or ``loadable = false``); ``other``
#: only for a reason read back from a file that none of the kinds below wrote.
ExclusionKind = Literal["not-loadable", "domain", "params-unknown", "max-params", "license", "gated", "other"]

#: kind → (words in the terminal's summary, how its reason opens). The reasons are written by
#: :meth:`proximity.filters.Filters.exclusion`; a saved result (JSON) keeps the reason only, and
#: :meth:`Exclusion.from_dict` reads the kind back from these openings.
EXCLUSION_KINDS: dict[str, tuple[str, re.Pattern[str]]] = {
    "not-loadable": ("not loadable", re.compile(r"not loadable: ")),
    "gated": ("gated (--include-gated)", re.compile(r"gated on the Hub")),
    "domain": ("outside --domain", re.compile(r"domain .* \(asked: ")),
    "params-unknown": ("of unknown size", re.compile(r"parameter count unknown: ")),
    "max-params": ("over --max-params", re.compile(r"\S+ M parameters > --max-params ")),
    "license": ("other license", re.compile(r"license '.*' \(asked: ")),
}


@dataclass(frozen=True)
class Exclusion(Mapping[str, str]):
    """A catalog entry a run set aside: ``model`` (its id), ``kind`` and the ``reason`` in words.

    It reads as its JSON record too (``x["model"]``, ``x["reason"]``, ``dict(x)``), as
    ``Ranking.excluded`` items always have.
    """

    model: str
    kind: ExclusionKind
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in get_args(ExclusionKind):
            raise ValueError(f"unknown exclusion kind {self.kind!r}; valid: {', '.join(get_args(ExclusionKind))}")

    @property
    def label(self) -> str:
        """The kind in the terminal's words (``over --max-params``); the reason itself for ``other``."""
        return EXCLUSION_KINDS[self.kind][0] if self.kind in EXCLUSION_KINDS else self.reason

    def to_dict(self) -> dict[str, str]:
        """The JSON record (``{"model", "reason"}``: the schema's, unchanged)."""
        return {"model": self.model, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Exclusion:
        """An exclusion read back from a saved result; its kind from the reason's opening words."""
        if isinstance(d, Exclusion):
            return d
        reason = str(d.get("reason", ""))
        kind = next((k for k, (_, opening) in EXCLUSION_KINDS.items() if opening.match(reason)), "other")
        return cls(str(d.get("model", "")), cast(ExclusionKind, kind), reason)

    # the JSON record's keys, read as a mapping
    def __getitem__(self, key: str) -> str:
        if key not in ("model", "reason"):
            raise KeyError(key)
        return cast(str, getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(("model", "reason"))

    def __len__(self) -> int:
        return 2


__all__ = ["EXCLUSION_KINDS", "NEEDS", "STAGES", "Exclusion", "ExclusionKind", "Failure", "Need", "SignalNeeds",
           "SignalValue", "Stage"]
