"""The settings of one rank run: one frozen, validated object used by the CLI, the API and the result.

:class:`RankConfig` holds every option of :func:`proximity.rank` (``proximity rank``); its
constraints are declared as data (:data:`CONSTRAINTS`, scikit-learn's style) and checked on
construction with one error format everywhere::

    The 'batch_size' parameter of rank must be an int in the range [1, inf). Got 0 instead.

:meth:`RankConfig.settings` is the ``settings`` block of the JSON result. The CLI builds a
config from its flags, :func:`proximity.rank` from its keyword arguments; nothing else
re-states the options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from .errors import InvalidParameterError

Executor = Literal["serial", "ray"]
#: Catalog runs of more than this many candidates are screened first (``shortlist="auto"``).
AUTO_SHORTLIST_ABOVE = 20
#: How many candidates an automatic shortlist keeps for the full evaluation.
AUTO_SHORTLIST = 6


def _int(lo: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo), f"an int in the range [{lo}, inf)"


def _options(*names: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in names), "one of " + ", ".join(repr(n) for n in names)


def _bool() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, bool)), "a bool"


_SAMPLE = _int(1)
_SHORTLIST = _int(1)
_CONTROL_IMAGES = _int(8)

#: parameter -> (check, what it must be). Checked in this order.
CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "sample": ((lambda v: v is None or _SAMPLE[0](v)), "an int in the range [1, inf) or None"),
    "seed": _int(0),
    "intensity": _options("auto", "percentile", "full-range"),
    "device": _options("auto", "cpu", "cuda", "mps"),
    "batch_size": _int(1),
    "precision": _options("float32", "bfloat16", "float16"),
    "folds": _int(2),
    "control": _bool(),
    "signals": ((lambda v: v in ("core", "all") or
                 (isinstance(v, tuple) and len(v) > 0 and all(isinstance(x, str) and x for x in v))),
                "'core', 'all' or signal names"),
    "control_images": ((lambda v: v is None or _CONTROL_IMAGES[0](v)),
                       "an int in the range [8, inf) or None (every image)"),
    "use_cache": _bool(),
    "scratch": _bool(),
    "finetune": _bool(),
    "repeats": _int(1),
    "include_gated": _bool(),
    "max_params": ((lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and math.isfinite(v) and v > 0)), "a positive number of millions or None"),
    "shortlist": ((lambda v: v is None or v == "auto" or _SHORTLIST[0](v)),
                  "an int in the range [1, inf), 'auto' or None"),
    "executor": _options("serial", "ray"),
    "address": ((lambda v: v is None or (isinstance(v, str) and v.strip() != "")), "a Ray address string or None"),
}


def _tuple(v: str | Sequence[str] | None) -> tuple[str, ...]:
    return () if v is None else (v,) if isinstance(v, str) else tuple(v)


@dataclass(frozen=True)
class RankConfig:
    """Every option of a rank run (see :func:`proximity.rank` for their meaning).

    Raises
    ------
    InvalidParameterError : a value outside its declared domain (:data:`CONSTRAINTS`), or
        ``address`` without ``executor='ray'``.
    """

    # --- what to rank
    models: tuple[str, ...] = ()                 # --model strings; empty = the catalogs below
    catalog: tuple[str, ...] = ("default",)      # catalog names or folders, ranked together
    # --- the sample
    labels: str = "auto"                         # auto | folders | none | a CSV manifest path
    sample: int | None = 500
    seed: int = 0
    intensity: str = "auto"
    # --- the evidence passes
    device: str = "auto"
    batch_size: int = 32
    precision: str = "float32"                   # the networks' arithmetic (autocast); statistics stay float32
    control: bool = True
    control_images: int | None = 64              # the control's subset (stratified with labels); None: every image
    signals: str | tuple[str, ...] = "core"      # core (what the fit, the risk and the baselines use) | all | names
    use_cache: bool = True
    folds: int = 5
    scratch: bool = False                        # train each architecture from scratch on the sample (risk evidence)
    finetune: bool = False                       # fine-tune each candidate on the sample (a reported signal)
    repeats: int = 1                             # trainings of each kind (--scratch, --finetune), each its own split
    # --- which catalog entries
    domain: tuple[str, ...] = ()
    max_params: float | None = None
    license: tuple[str, ...] = ()
    include_gated: bool = False
    # --- scale
    shortlist: int | Literal["auto"] | None = "auto"   # candidates fully evaluated after a screen
    executor: str = "serial"                     # serial | ray (one task per backbone)
    address: str | None = None                   # Ray cluster address; None = local / RAY_ADDRESS

    def __post_init__(self) -> None:
        for name, (ok, what) in CONSTRAINTS.items():
            value = getattr(self, name)
            if not ok(value):
                raise InvalidParameterError(name, "rank", what, value)
        if self.address is not None and self.executor != "ray":
            raise InvalidParameterError("address", "rank", "None unless executor='ray'", self.address)

    @classmethod
    def build(cls, *, models: Sequence[str] | None = None, catalog: str | Path | Sequence[str | Path] = "default",
              labels: str | Path = "auto", domain: str | Sequence[str] | None = None,
              license: str | Sequence[str] | None = None, **options: Any) -> "RankConfig":
        """A config from :func:`proximity.rank`'s keyword arguments (strings or sequences)."""
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown rank option(s): {', '.join(sorted(unknown))}")
        cats = [catalog] if isinstance(catalog, (str, Path)) else list(catalog)
        sig = options.get("signals")
        if sig is not None:                # "core", "all", "a,b" or a list of names (added to core)
            parts = [str(s).strip() for s in (sig.split(",") if isinstance(sig, str) else sig)]
            parts = [p for p in parts if p]
            lowered = {p.lower() for p in parts}
            names = tuple(p for p in parts if p.lower() not in ("core", "all"))
            options["signals"] = ("all" if "all" in lowered else names if names else
                                  "core" if "core" in lowered else ())      # () is refused, saying what to give
        return cls(models=tuple(models or ()), catalog=tuple(str(c) for c in cats), labels=str(labels),
                   domain=_tuple(domain), license=_tuple(license), **options)

    def with_(self, **changes: Any) -> "RankConfig":
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def shortlist_for(self, n_candidates: int) -> int | None:
        """How many candidates get the full evaluation after the screen, or None (no screen):
        ``auto`` screens catalog runs of more than :data:`AUTO_SHORTLIST_ABOVE` candidates down to
        :data:`AUTO_SHORTLIST`, never an explicit ``--model`` list; an int always screens (when
        there are more candidates than that)."""
        if self.shortlist is None:
            return None
        if self.shortlist == "auto":
            if self.models or n_candidates <= AUTO_SHORTLIST_ABOVE:
                return None
            return AUTO_SHORTLIST
        return int(self.shortlist) if n_candidates > int(self.shortlist) else None

    def settings(self, *, device: str, controls: int, shortlist: int | None) -> dict[str, Any]:
        """The ``settings`` block of the JSON result (schema 2; ``shortlist`` and ``executor`` added)."""
        return {"catalog": None if self.models else list(self.catalog), "sample": self.sample, "seed": self.seed,
                "labels": self.labels, "intensity": self.intensity, "device": device, "batch_size": self.batch_size,
                "precision": self.precision,
                "folds": self.folds,
                "control": controls > 0,                 # a random-weights control pass ran for a candidate
                "control_requested": self.control,       # … and whether one was asked for (--no-control: no)
                "control_images": self.control_images,   # the size of its subset; None: every image
                "signals": self.signals if isinstance(self.signals, str) else list(self.signals),
                "scratch": self.scratch,                 # architectures trained from scratch on the sample
                "finetune": self.finetune,               # candidates fine-tuned briefly on the sample
                "repeats": self.repeats,                 # … each of those trainings this many times (seeds, splits)
                "domain": list(self.domain), "max_params": self.max_params, "license": list(self.license),
                "include_gated": self.include_gated,
                "shortlist": shortlist,                  # candidates fully evaluated after a screen; None: no screen
                "executor": self.executor}
