"""Negative-transfer risk: P(fine-tuning from this backbone ends below training the same
architecture from scratch), from a small logistic model fitted to ground truth.

The model ships as data, ``catalog/risk_model.json``, written by ``scripts/fit_risk.py`` from the
benchmark's *dev* targets (``scripts/bench``; provenance inside the file; protocol 4: the 40
targets protocols 2 and 3 had read) and validated on *test* targets no choice saw
(``scripts/bench/results/v4/``; earlier readings under ``results/v2.5`` and ``results/v3``).
Up to five variants, the first whose evidence a candidate has (their features are chosen on dev; the JSON names them):

* **labels+finetune** — used first, when the run also fine-tuned each candidate briefly on the
  sample (``--finetune`` with ``--scratch``): the fine-tuned hold-out accuracy against the
  from-scratch one on the same split and loop (``finetune_minus_scratch``), the direct, paired
  measurement of what the risk is about. Shipped only if it beats labels+scratch on the dev pairs;
  fitted on benchmark v2.5, it did not (leave-one-target-out log loss 0.516 against 0.497), so
  the shipped model has no such variant (``provenance.dropped_variants``).
* **labels+scratch** — used next, when the run trained the architectures from scratch on the
  sample (``--scratch``, :mod:`proximity.scratch`): the probe against that from-scratch hold-out
  accuracy (shipped: ``probe``, ``scratch`` and ``gain``; ``probe_minus_scratch`` was a candidate).
* **labels** — when the probe gain over the random-weights control exists (shipped: ``gain`` and
  ``log_rankme_rel``, the log effective rank relative to random weights).
* **label-free+reference** — label-free, when the candidate has reference statistics, so its
  Fréchet distance relative to a same-size sample of its reference Gaussian exists
  (``log_frechet_excess``). Not shipped: fitted on benchmark v2.4, it did not beat the plain
  label-free model on the dev pairs, so ``scripts/fit_risk.py`` dropped it (``provenance.dropped_variants``).
* **label-free** — when only label-free evidence exists (shipped: ``log_rankme_rel``, which
  every run with the control has; ``log_params_per_image``, v2.4's second feature, was not
  chosen again on protocol 4's 40 dev targets). The label-free variants are
  wider: their intervals carry the coefficient uncertainty of weaker models.

Every candidate feature set and penalty tried on dev (leave-one-target-out log loss) is in the
JSON's ``selection``; :func:`features` defines each feature.

Each estimate comes with a 90 % interval from the coefficients' covariance (a bootstrap over dev
targets for the shipped model, the JSON's ``provenance.covariance``; widened ×2 where a feature
lies outside the range the model was fitted on), a band (low < 0.2 ≤ medium < 0.5 ≤ high, on the
point estimate) and a one-line reason that names the evidence driving it. It is **unknown**
(None, band ``unknown``) with fewer than :data:`MIN_IMAGES` images or when no variant's evidence
exists. With labels but without the labels variant's evidence (fewer than 2 images per class, no
control) the label-free variant is used and the reason says why; a from-scratch result that the
labels+scratch variant cannot use (say, no gain) is named as unused in the labels variant's reason.

Calibration is claimed only for what the benchmark covers: small CNN/ViT/MBConv backbones and
64 px targets of 24–400 images in 2–10 classes (``coverage`` in the JSON). Outside it the numbers
are extrapolations, and the reason says so when a feature leaves the fitted range.

:func:`risk_v0` keeps the first, uncalibrated rule (``Φ(−gain/u)``; label-free
``shift/(shift+1)``) for comparison on the results page.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .errors import InvalidParameterError
from .types import SignalValue

BANDS = ((0.2, "low"), (0.5, "medium"), (1.01, "high"))
MIN_IMAGES = 20
Z90 = 1.6449
TAU_V0 = 0.03


def band(risk: float | None) -> str:
    """``low`` / ``medium`` / ``high`` by the documented thresholds, ``unknown`` for None."""
    if risk is None:
        return "unknown"
    return next(name for hi, name in BANDS if risk < hi)


@dataclass(frozen=True)
class Risk:
    """A risk estimate: probability, 90 % interval, band and the reason."""

    value: float | None
    low: float | None
    high: float | None
    band: str
    reason: str
    variant: str            # "labels+finetune" | "labels+scratch" |
                            # "labels" | "label-free+reference" | "label-free" | "v0" | "unknown"


def _v(signals: Mapping[str, SignalValue], name: str) -> tuple[float | None, float | None]:
    s = signals.get(name)
    return (None, None) if s is None or s.value is None else (s.value, s.sd)


def evidence(signals: Mapping[str, SignalValue], n_images: int, n_classes: int,
             context: Mapping[str, float | None] | None = None) -> dict[str, float | None]:
    """The raw quantities the risk model reads (also what ``scripts/fit_risk.py`` reads from a
    row). ``context`` holds run-level figures: ``best_probe``, the best probe of the run."""
    gain, gain_sd = _v(signals, "gain")
    probe = _v(signals, "probe")[0]
    best = (context or {}).get("best_probe")
    return {"gain": gain, "gain_sd": gain_sd, "probe": probe, "early_shift": _v(signals, "early_shift")[0],
            "frechet": _v(signals, "frechet")[0], "n_images": float(n_images), "n_classes": float(n_classes),
            "logme": _v(signals, "logme")[0], "rankme_rel": _v(signals, "rankme_rel")[0],
            "cluster_rel": _v(signals, "cluster_rel")[0], "params_log10": _v(signals, "params")[0],
            "scratch": _v(signals, "scratch")[0], "frechet_excess": _v(signals, "frechet_excess")[0],
            "finetune": _v(signals, "finetune")[0],
            "probe_gap": None if probe is None or best is None else probe - best}


def features(ev: Mapping[str, float | None]) -> dict[str, float | None]:
    """Model features from :func:`evidence` (None where the evidence is absent)."""
    def log1p(x):
        return None if x is None or x < 0 else math.log1p(x)

    ev = {k: (v if v is None or math.isfinite(v) else None) for k, v in ev.items()}   # NaN/inf = absent
    g, sd, n, k = ev.get("gain"), ev.get("gain_sd"), ev.get("n_images"), ev.get("n_classes")
    per_class = None if not n or not k else math.log(n / k)
    rel = ev.get("rankme_rel")
    pl = ev.get("params_log10")
    probe, scratch = ev.get("probe"), ev.get("scratch")
    fx = ev.get("frechet_excess")
    ft = ev.get("finetune")
    return {"gain": g,
            "gain_z": None if g is None else g / max(sd or 0.0, 0.01),
            "log_shift": log1p(ev.get("early_shift")),
            "log_frechet": log1p(ev.get("frechet")),
            "log_frechet_excess": None if fx is None or fx <= 0 else math.log(fx),
            "log_n": None if not n else math.log(n),
            "log_per_class": per_class,
            "gain_x_per_class": None if g is None or per_class is None else g * per_class,
            "probe_gap": ev.get("probe_gap"),
            "logme": ev.get("logme"),
            "log_rankme_rel": None if rel is None or rel <= 0 else math.log(rel),
            "cluster_rel": ev.get("cluster_rel"),
            "log_params_per_image": None if pl is None or not n else pl * math.log(10) + math.log(1e6 / n),
            "probe": probe,
            "scratch": scratch,
            "probe_minus_scratch": None if probe is None or scratch is None else probe - scratch,
            "finetune": ft,
            "finetune_minus_scratch": None if ft is None or scratch is None else ft - scratch,
            "finetune_minus_probe": None if ft is None or probe is None else ft - probe}


@dataclass(frozen=True)
class Variant:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]          # standardised features
    intercept: float
    cov: tuple[tuple[float, ...], ...]   # of (intercept, coef...)
    lo: tuple[float, ...]            # fitted range of each raw feature
    hi: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Variant":
        return cls(tuple(d["features"]), tuple(d["mean"]), tuple(d["scale"]), tuple(d["coef"]), float(d["intercept"]),
                   tuple(tuple(r) for r in d["cov"]), tuple(d["range"][0]), tuple(d["range"][1]))

    def predict(self, feats: Mapping[str, float | None]) -> tuple[float, float, float, list[tuple[str, float]],
                                                                  list[str]] | None:
        """(p, low, high, contributions [(feature, coef·z)], features outside the fitted range), or
        None when a feature is missing."""
        x = [v for v in (feats.get(f) for f in self.features) if v is not None]
        if len(x) < len(self.features):
            return None
        z = [(v - m) / s for v, m, s in zip(x, self.mean, self.scale, strict=True)]
        eta = self.intercept + sum(c * zi for c, zi in zip(self.coef, z, strict=True))
        vec = [1.0, *z]
        var = sum(vec[i] * self.cov[i][j] * vec[j] for i in range(len(vec)) for j in range(len(vec)))
        outside = [f for f, v, lo, hi in zip(self.features, x, self.lo, self.hi, strict=True)
                   if v < lo - 0.1 * (hi - lo) or v > hi + 0.1 * (hi - lo)]
        half = Z90 * math.sqrt(max(var, 0.0)) * (2.0 if outside else 1.0)
        return (_sigmoid(eta), _sigmoid(eta - half), _sigmoid(eta + half),
                [(f, c * zi) for f, c, zi in zip(self.features, self.coef, z, strict=True)], outside)


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))


@dataclass(frozen=True)
class RiskModel:
    variants: Mapping[str, Variant]
    provenance: Mapping[str, Any]
    path: Path | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: Path | None = None) -> "RiskModel":
        if d.get("schema") != 1:
            raise ValueError(f"risk model schema {d.get('schema')!r} is not 1")
        return cls({k: Variant.from_dict(v) for k, v in d["variants"].items()}, d.get("provenance", {}), path)


def model_path() -> Path:
    from .catalog import catalog_root

    return catalog_root() / "risk_model.json"


#: The signals each risk feature is computed from (their versions are checked against the model's).
FEATURE_SIGNALS = {"gain": ("probe", "control", "gain"), "gain_z": ("probe", "control", "gain"),
                   "log_shift": ("early_shift",), "log_frechet": ("frechet",),
                   "log_frechet_excess": ("frechet_excess",), "log_n": (), "log_per_class": (),
                   "gain_x_per_class": ("probe", "control", "gain"), "probe_gap": ("probe",), "logme": ("logme",),
                   "log_rankme_rel": ("rankme_rel",), "cluster_rel": ("cluster_rel",),
                   "log_params_per_image": ("params",), "scratch": ("scratch",), "probe": ("probe",),
                   "probe_minus_scratch": ("probe", "scratch"), "finetune": ("finetune",),
                   "finetune_minus_scratch": ("finetune", "scratch"), "finetune_minus_probe": ("finetune", "probe")}


def stale_versions(doc: Mapping[str, Any]) -> dict[str, tuple[int | None, int | None]]:
    """``{signal: (fitted on, in the code)}`` for every signal a variant uses whose version differs."""
    from .signals import signal_versions

    code = signal_versions()
    fitted = doc.get("provenance", {}).get("signal_versions", {})
    used = {s for v in doc.get("variants", {}).values() for f in v["features"] for s in FEATURE_SIGNALS.get(f, (f,))}
    return {s: (fitted.get(s), code.get(s)) for s in sorted(used) if fitted.get(s) != code.get(s)}


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> RiskModel | None:
    """The shipped risk model (None, with v0 used instead, when the file is absent, or — with a
    warning — when it was fitted on other versions of its signals: refit with scripts/fit_risk.py)."""
    p = Path(path) if path else model_path()
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    stale = stale_versions(doc)
    if stale:
        logging.getLogger(__name__).warning(
            "The shipped risk model was fitted on other signal versions (%s: fitted on, code); the uncalibrated "
            "v0 risk is used — refit it with scripts/fit_risk.py.", stale)
        return None
    return RiskModel.from_dict(doc, p)


_WORDS = {
    "gain": lambda ev, c: _gain_words(ev),
    "gain_z": lambda ev, c: _gain_words(ev),
    "log_shift": lambda ev, c: (f"early-layer statistics {_closeness(ev['early_shift'])} the pretraining data "
                                f"(shift {ev['early_shift']:.2f})"),
    "log_frechet": lambda ev, c: f"pooled features {'far from' if c > 0 else 'close to'} the reference "
                                 f"(Fréchet {ev['frechet']:.2f})",
    "log_frechet_excess": lambda ev, c: (f"pooled features {ev['frechet_excess']:.3g}× as far from the pretraining "
                                        "domain as a same-size sample of its reference Gaussian"),
    "log_n": lambda ev, c: f"{int(ev['n_images'])} images",
    "log_per_class": lambda ev, c: f"{ev['n_images'] / ev['n_classes']:.0f} images per class",
    "gain_x_per_class": lambda ev, c: (_gain_words(ev)
                                       + f" with {ev['n_images'] / ev['n_classes']:.0f} images per class"),
    "probe_gap": lambda ev, c: ("the best probe of the run" if ev["probe_gap"] >= 0 else
                                f"probe {abs(ev['probe_gap']) * 100:.1f} points below the run's best"),
    "logme": lambda ev, c: f"LogME {ev['logme']:.2f}",
    "log_rankme_rel": lambda ev, c: f"features span {ev['rankme_rel']:.2f}× the directions of random weights",
    "cluster_rel": lambda ev, c: f"clusters {'sharper' if ev['cluster_rel'] >= 0 else 'blurrier'} than random weights' "
                                 f"({ev['cluster_rel']:+.2f} silhouette)",
    "log_params_per_image": lambda ev, c: (f"{10 ** ev['params_log10']:.2g} M parameters for "
                                           f"{int(ev['n_images'])} images"),
    "probe": lambda ev, c: f"probe {ev['probe'] * 100:.0f} %",
    "scratch": lambda ev, c: f"the architecture trained from scratch reaches {ev['scratch'] * 100:.0f} % on a hold-out",
    "probe_minus_scratch": lambda ev, c: (f"probe {ev['probe'] * 100:.0f} % (balanced) against "
                                          f"{ev['scratch'] * 100:.0f} % for the architecture trained from scratch "
                                          "on the sample"),
    "finetune": lambda ev, c: f"fine-tuned briefly on the sample it reaches {ev['finetune'] * 100:.0f} % on a hold-out",
    "finetune_minus_scratch": lambda ev, c: (f"fine-tuned briefly on the sample {ev['finetune'] * 100:.0f} % against "
                                             f"{ev['scratch'] * 100:.0f} % from scratch on the same hold-out"),
    "finetune_minus_probe": lambda ev, c: (f"fine-tuning {'adds' if ev['finetune'] >= ev['probe'] else 'loses'} "
                                           f"{abs(ev['finetune'] - ev['probe']) * 100:.0f} points over the frozen "
                                           "probe"),
}


def _gain_words(ev) -> str:
    g, sd = ev["gain"], ev["gain_sd"] or 0.0
    return f"probe {'beats' if g >= 0 else 'trails'} random weights by {abs(g) * 100:.1f} ± {sd * 100:.1f} points"


def _closeness(shift: float) -> str:
    return "near" if shift < 0.25 else "far from" if shift > 1.0 else "moderately far from"


def _evidence_words(ev: Mapping[str, Any], contrib: list[tuple[str, float]]) -> str:
    """The (at most two) features that drive an estimate most, in words (the probe and the
    from-scratch accuracy, when both are features, as one comparison)."""
    named = dict(contrib)
    if "probe" in named and "scratch" in named and "probe_minus_scratch" not in named:
        together = abs(named.pop("probe")) + abs(named.pop("scratch"))
        contrib = [*named.items(), ("probe_minus_scratch", together)]
    if "finetune" in named and "scratch" in named and "finetune_minus_scratch" not in named:
        together = abs(named.pop("finetune")) + abs(named.pop("scratch"))
        contrib = [*named.items(), ("finetune_minus_scratch", together)]
    words: list[str] = []
    for f, c in sorted(contrib, key=lambda t: -abs(t[1])):
        w = _WORDS[f](ev, c)
        if w not in words and (abs(c) >= 0.1 or not words):
            words.append(w)
    return ("; ".join(words[:2])
            or "the benchmark's base rate: no signal separated negative transfer on its dev targets")


#: The variants in the order they are tried (module docstring).
VARIANTS = ("labels+finetune", "labels+scratch", "labels", "label-free+reference", "label-free")


def estimate(signals: Mapping[str, SignalValue], n_images: int, n_classes: int, *,
             model: RiskModel | None | str = "shipped", n_folds: int | None = None,
             context: Mapping[str, float | None] | None = None) -> Risk:
    """The risk of one candidate (module docstring). ``model=None`` forces the v0 rule."""
    if isinstance(model, str):
        if model != "shipped":
            raise InvalidParameterError("model", "estimate", "a RiskModel, None or 'shipped'", model)
        m = load_model()
    else:
        m = model
    if m is None:
        value, reason = risk_v0(signals, n_folds)
        return Risk(value, None, None, band(value), reason, "v0")
    if n_images < MIN_IMAGES:
        return Risk(None, None, None, "unknown", f"unknown: {n_images} images are too few to say (need ≥ {MIN_IMAGES})",
                    "unknown")
    ev = evidence(signals, n_images, n_classes, context)
    feats = features(ev)
    tried = []
    unused: list[str] = []       # opt-in evidence (--scratch, --finetune) that a richer variant could not use
    for name in VARIANTS:
        var = m.variants.get(name)
        if var is None:
            continue
        free = name.startswith("label-free")
        if not free and n_classes >= 2 and n_images / n_classes < 2:
            if name == "labels":
                tried.append("fewer than 2 images per class")
            continue
        out = var.predict(feats)
        if out is None:
            # without --scratch the labels model is the expected one, without a reference the plain
            # label-free one: no note for those (a note when a --scratch or --finetune result goes unused)
            _note_missing(name, var, feats, tried, unused)
            continue
        p, lo, hi, contrib, outside = out
        reason = _evidence_words(ev, contrib)
        if not name.startswith("label-free") and unused:   # opt-in evidence a richer labels variant could not use
            reason += f" ({'; '.join(unused)})"
        if free:
            reason = "label-free: " + reason
            if n_classes >= 2 and tried:         # labels were given, but the labels variant could not run
                reason = f"labels given, but {'; '.join(unused + tried)} — {reason}"
        if outside:
            reason += f"; {', '.join(outside)} outside the benchmark's range: extrapolated, interval widened"
        return Risk(p, lo, hi, band(p), reason + f" (90 % interval {lo:.2f}–{hi:.2f})", name)
    return Risk(None, None, None, "unknown", "unknown: " + "; ".join(tried + unused or ["no evidence"]), "unknown")


def _note_missing(name: str, var: Variant, feats: Mapping[str, float | None], tried: list[str],
                  unused: list[str]) -> None:
    """Why variant ``name`` could not run, where a user should hear it: the labels and label-free
    models always (``tried``); an opt-in variant only when its own evidence was there but went
    unused (``unused``)."""
    missing = ", ".join(f for f in var.features if feats.get(f) is None)
    if name in ("labels", "label-free"):
        tried.append(f"no {missing} for the {name} model")
    elif name == "labels+scratch" and feats.get("scratch") is not None:
        unused.append(f"the from-scratch result is unused: no {missing} for the {name} model")
    elif name == "labels+finetune" and feats.get("finetune") is not None:
        unused.append("the fine-tune result is unused: " + (
            "no from-scratch result (give --scratch too)" if feats.get("scratch") is None
            else f"no {missing} for the {name} model"))


def risk_v0(signals: Mapping[str, SignalValue], n_folds: int | None = None) -> tuple[float | None, str]:
    """The first, uncalibrated rule: with the gain g (sd s over k folds)
    ``Φ(−g / sqrt(s²/k + 0.03²))``; label-free ``shift / (shift + 1)``; else None."""
    gain = signals.get("gain")
    shift = signals.get("early_shift")
    if gain is not None and gain.value is not None:
        k = n_folds or 5
        s = gain.sd or 0.0
        u = math.sqrt(s * s / k + TAU_V0 * TAU_V0)
        risk = 0.5 * math.erfc(gain.value / u / math.sqrt(2.0))
        verb = "beats" if gain.value >= 0 else "trails"
        why = f"probe {verb} random weights by {abs(gain.value) * 100:.1f} ± {s * 100:.1f} points"
        if shift is not None and shift.value is not None:
            why += f"; early-layer shift {shift.value:.2f}"
        return risk, why + " (v0, uncalibrated)"
    if shift is not None and shift.value is not None:
        risk = shift.value / (shift.value + 1.0)
        basis = ("label-free" if gain is None or not gain.reason or "no labels" in gain.reason
                 else f"no gain ({gain.reason})")
        return risk, (f"{basis}: early-layer statistics {_closeness(shift.value)} the pretraining data "
                      f"(shift {shift.value:.2f}); v0, uncalibrated")
    missing = gain.reason if gain is not None and gain.reason else "no probe gain"
    return None, f"unknown: {missing}; and no early-layer statistics"
