"""The fit score and the order.

The fit is a **rule over the signals of all candidates of one run**, shipped as data
(``catalog/fit_rule.json``, chosen by ``scripts/bench/evaluate_v2.py`` on the benchmark's dev
targets by leave-one-target-out, with the versions of the signals it was chosen on) and named in
every result (``fit_rule``; per candidate ``fit_basis``: the signals its fit used). Rule kinds:

* ``single`` — one signal, sign-adjusted (``higher_is_better``), in its own units;
* ``z-mean`` — weighted mean of the signals' z-scores *across the run's candidates* (each
  sign-adjusted; a signal with fewer than two values or no spread contributes 0); the weights
  of a learned pairwise model are such weights too;
* ``rank-mean`` — weighted mean of within-run rank percentiles (0 = worst, 1 = best);
* a rule may carry ``small`` and ``small_below``: the rule used when the sample has fewer than
  ``small_below`` labelled images in its smallest class.

A labelled run whose every candidate was fine-tuned on the sample (``--finetune``: a ``finetune``
value each) uses the shipped ``labels+finetune`` rule when there is one (:data:`FINETUNE_MODE`);
every other labelled run, the ``labels`` rule.

A candidate missing some of the rule's signals gets the weighted mean over those it has (its
``fit_basis`` says which); one with none gets ``fit = None`` and ranks after the others, by the
prior then by catalog order.

Without a shipped rule for a mode (or when its signal versions differ from the code's, which is
warned about), the **v0 rule** runs: with labels ``fit = probe`` (balanced accuracy of the
frozen-feature probe), ties broken by ``early_shift``; label-free ``fit = −log(1 + early_shift)``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from .signals import SIGNALS, SignalValue, signal_versions

Mode = Literal["labels", "label-free"]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitRule:
    name: str
    kind: str                                        # "single" | "z-mean" | "rank-mean"
    terms: tuple[tuple[str, float], ...]             # (signal, weight)
    small: "FitRule | None" = None
    small_below: float | None = None                 # images in the smallest class
    versions: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FitRule":
        small = cls.from_dict(d["small"]) if d.get("small") else None
        return cls(d["name"], d["kind"], tuple((t, float(w)) for t, w in d["terms"]), small, d.get("small_below"),
                   dict(d.get("versions", {})))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "terms": [list(t) for t in self.terms]}
        if self.small is not None:
            out |= {"small": self.small.to_dict(), "small_below": self.small_below}
        if self.versions:
            out["versions"] = dict(self.versions)
        return out

    def signals(self) -> set[str]:
        return {t for t, _ in self.terms} | (self.small.signals() if self.small else set())

    def for_sample(self, smallest_class: int | None) -> "FitRule":
        if self.small is not None and smallest_class is not None and smallest_class < (self.small_below or 0):
            return self.small
        return self

    def scores(self, signal_sets: Sequence[Mapping[str, SignalValue]]) -> list[tuple[float | None, list[str]]]:
        """(fit, basis) for each candidate of one run."""
        cols: dict[str, list[float | None]] = {}
        for name, _ in self.terms:
            sign = -1.0 if name in SIGNALS and not SIGNALS[name].higher_is_better else 1.0
            vals = [None if (sv := s.get(name)) is None or sv.value is None else sign * sv.value for s in signal_sets]
            cols[name] = vals if self.kind == "single" else _normalise(vals, self.kind)
        out: list[tuple[float | None, list[str]]] = []
        for i in range(len(signal_sets)):
            parts = [(v, w) for n, w in self.terms if (v := cols[n][i]) is not None]
            basis = [n for n, _ in self.terms if cols[n][i] is not None]
            if not parts or sum(abs(w) for _, w in parts) == 0:
                out.append((None, []))
            else:   # weights may be negative (a learned model): normalised by Σ|w|
                out.append((sum(v * w for v, w in parts) / sum(abs(w) for _, w in parts), basis))
        return out


def _normalise(vals: list[float | None], kind: str) -> list[float | None]:
    present = np.array([v for v in vals if v is not None], float)
    if kind == "rank-mean":
        if present.size < 2:
            return [None if v is None else 0.5 for v in vals]
        from scipy.stats import rankdata

        ranks = iter((rankdata(present) - 1) / (present.size - 1))
        return [None if v is None else float(next(ranks)) for v in vals]
    sd = float(present.std()) if present.size >= 2 else 0.0
    mu = float(present.mean()) if present.size else 0.0
    return [None if v is None else ((v - mu) / sd if sd > 0 else 0.0) for v in vals]


V0 = {"labels": FitRule("v0: probe", "single", (("probe", 1.0),)),
      "label-free": FitRule("v0: −log(1 + early_shift)", "v0-shift", (("early_shift", 1.0),))}


def rule_path() -> Path:
    from .catalog import catalog_root

    return catalog_root() / "fit_rule.json"


def load_rules(path: str | Path | None = None) -> dict[str, FitRule]:
    """The shipped rules by mode; a mode without one, or whose signal versions differ from the
    code's, gets the v0 rule (the latter with a warning)."""
    p = Path(path) if path else rule_path()
    rules = dict(V0)
    if not p.is_file():
        return rules
    doc = json.loads(p.read_text())
    code = signal_versions()
    for mode, d in doc.get("rules", {}).items():
        rule = FitRule.from_dict(d)
        stale = {n: v for n, v in rule.versions.items() if code.get(n) != v}
        if stale or not rule.signals() <= set(code):
            logger.warning("The shipped %s fit rule was chosen on other signal versions (%s); the v0 rule runs "
                           "instead — refit it with scripts/bench/evaluate_v2.py.", mode, stale or "unknown signals")
            continue
        rules[mode] = rule
    return rules


#: The rule of a labelled run whose candidates all have a ``finetune`` value (module docstring).
FINETUNE_MODE = "labels+finetune"


def rule_key(signal_sets: Sequence[Mapping[str, SignalValue]], mode: Mode, rules: Mapping[str, FitRule]) -> str:
    """Which of ``rules`` runs: ``mode``, or :data:`FINETUNE_MODE` for a labelled run with a
    ``finetune`` value for every candidate when that rule is shipped."""
    if mode == "labels" and FINETUNE_MODE in rules and signal_sets and all(
            (sv := s.get("finetune")) is not None and sv.value is not None for s in signal_sets):
        return FINETUNE_MODE
    return mode


def fit_scores(signal_sets: Sequence[Mapping[str, SignalValue]], mode: Mode, *, smallest_class: int | None = None,
               rules: Mapping[str, FitRule] | None = None) -> tuple[FitRule, list[tuple[float | None, list[str]]]]:
    """The rule that runs for ``mode`` (:func:`rule_key`) and (fit, fit_basis) per candidate."""
    rules = rules or load_rules()
    rule = rules[rule_key(signal_sets, mode, rules)].for_sample(smallest_class if mode == "labels" else None)
    if rule.kind == "v0-shift":
        return rule, [(fit_score(s, "label-free"), ["early_shift"] if fit_score(s, "label-free") is not None else [])
                      for s in signal_sets]
    return rule, rule.scores(signal_sets)


def fit_score(signals: Mapping[str, SignalValue], mode: Mode) -> float | None:
    """The v0 fit of one candidate under ``mode`` (module docstring)."""
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
