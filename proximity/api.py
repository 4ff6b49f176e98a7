"""The public entry point: :func:`rank`."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from . import cache
from . import signals as sig
from .backbones import resolve_device, resolve_spec
from .catalog import CatalogEntry, adhoc_entry, load_catalog
from .data import Intensity, Sample, load_sample
from .errors import InvalidParameterError, NoCandidatesError, ProximityError, UnknownSourceError
from .errors import one_line as _one_line
from .evidence import collect_evidence
from .filters import Filters
from .ranking import fit_scores, sort_key
from .signals.labelfree import CONTROL_SUBSET
from .signals.probe import folds_used
from .reference import find_reference
from .report import Candidate, Failure, Ranking, RunPlan, SampleSummary
from . import risk as risk_mod
from .types import Exclusion, Stage

logger = logging.getLogger(__name__)

#: progress(task, done, total): task is "sample", "<model>" or "<model> (control)".
ProgressCallback = Callable[[str, int, int], None]
#: What the probe-like signals say when labels were switched off on purpose (not "no labels, give …").
LABELS_OFF = "not run: labels switched off (--labels none)"


def _entries(models: Sequence[str] | None, catalog: str | Path | Sequence[str | Path], failed: list[Failure],
             filters: Filters, excluded: list[Exclusion]) -> list[CatalogEntry]:
    if not models:
        catalogs = [catalog] if isinstance(catalog, (str, Path)) else list(catalog)
        seen: dict[str, CatalogEntry] = {}
        for cat in catalogs:
            for e in load_catalog(cat):
                if e.id in seen:
                    logger.warning("Entry '%s' of catalog '%s' is already in an earlier catalog; keeping the first.",
                                   e.id, cat)
                    continue
                seen[e.id] = e
        kept = []
        for e in seen.values():
            why = filters.exclusion(e)
            if why is None:
                kept.append(e)
            else:
                excluded.append(why)
        return kept
    out = []
    for m in models:
        try:
            out.append(adhoc_entry(m))
        except UnknownSourceError:
            raise                   # a usage error (``--model resnet18``): said before anything is decoded
        except ProximityError as exc:
            failed.append(Failure.from_exception(m, exc, "load"))
            logger.warning("%s", exc)
    return out


def _summary(s: Sample) -> SampleSummary:
    classes: dict[str, int] = {}
    if s.labels is not None:
        for code in s.labels:
            classes[s.class_names[code]] = classes.get(s.class_names[code], 0) + 1
    return SampleSummary(path=str(s.root), n_images=s.n, n_found=s.n_found,
                         skipped=[{"path": x.path, "reason": x.reason} for x in s.skipped],
                         labels=s.labels_source, labels_note=s.labels_note, classes=classes)


def rank(
    path_or_sample: str | Path | Sample,
    models: Sequence[str] | None = None,
    catalog: str | Path | Sequence[str | Path] = "default",
    labels: Literal["auto", "folders", "none"] | str | Path = "auto",
    sample: int | None = 500,
    seed: int = 0,
    *,
    intensity: Intensity = "auto",
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto",
    batch_size: int = 32,
    control: bool = True,
    use_cache: bool = True,
    folds: int = 5,
    domain: str | Sequence[str] | None = None,
    max_params: float | None = None,
    license: str | Sequence[str] | None = None,
    include_gated: bool = False,
    progress: ProgressCallback | None = None,
    on_start: Callable[[RunPlan], None] | None = None,
) -> Ranking:
    """Rank candidate backbones by measured fit to a sample of images.

    Parameters
    ----------
    path_or_sample : a folder of images, or a :class:`~proximity.data.Sample`.
    models : ``--model`` strings (``timm:NAME``, ``hf-hub:ORG/NAME[@REV]``,
        ``local-dir:PATH``); when given, only these are ranked and ``catalog`` is ignored.
    catalog : ``"default"``, ``"zoo"``, a folder of TOML entries, or a list of these (their
        entries are ranked together; an id seen twice keeps its first entry).
    labels, sample, seed, intensity : see :func:`proximity.data.load_sample`.
    device : ``auto`` = CUDA, else MPS, else CPU.
    batch_size : images per forward batch.
    control : run the random-weights control (a second, separately timed pass per backbone,
        only when labels allow a probe).
    use_cache : read and write the on-disk evidence cache.
    folds : k of the stratified k-fold probe.
    domain, max_params, license, include_gated : which catalog entries to consider (see
        :class:`~proximity.filters.Filters`; not applied to ``models``). Entries set aside are
        listed in ``Ranking.excluded`` with the reason, as are entries marked not loadable.
    progress : optional callback ``(task, done, total)``.
    on_start : optional callback, called once with a :class:`~proximity.report.RunPlan` when the
        inputs are checked and the sample is decoded, before the first backbone (the CLI's banner).

    Returns
    -------
    Ranking : candidates best first (``.ranking``), failures (``.failed``), the sample summary.

    Raises
    ------
    EmptySampleError, LabelsError, CatalogError, CatalogNotFoundError, InvalidParameterError,
    UnknownSourceError (a ``models`` string without a known source prefix, before any decoding).
    A failing backbone never raises: it is recorded in ``Ranking.failed`` and the run goes on.
    """
    for name, value, lo in (("batch_size", batch_size, 1), ("folds", folds, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise InvalidParameterError(name, "rank", f"an int in the range [{lo}, inf)", value)
    as_tuple = lambda v: () if v is None else (v,) if isinstance(v, str) else tuple(v)  # noqa: E731
    filters = Filters(domains=as_tuple(domain), max_params=max_params, licenses=as_tuple(license),
                      include_gated=include_gated)
    filters.validate()
    dev = resolve_device(device)
    cache.new_run()
    failed: list[Failure] = []
    excluded: list[Exclusion] = []
    entries = _entries(models, catalog, failed, filters, excluded)  # catalog and --model errors before any decoding
    if not models and not entries:
        raise NoCandidatesError(excluded)
    if isinstance(path_or_sample, Sample):
        smp = path_or_sample
    else:
        cb = (lambda d, t: progress("sample", d, t)) if progress else None
        smp = load_sample(path_or_sample, labels=labels, sample=sample, seed=seed, intensity=intensity, progress=cb)
    usable_labels = smp.labels is not None and smp.n_classes >= 2
    if smp.labels is not None and smp.n_classes < 2:
        logger.warning("Only one class (%s) in the sample: label-using signals are skipped.", smp.class_names)
    labels_off = str(labels) == "none" and not isinstance(path_or_sample, Sample)
    if on_start is not None:
        on_start(RunPlan(n_candidates=len(entries), n_excluded=len(excluded), n_images=smp.n,
                         n_classes=smp.n_classes, labelled=usable_labels,
                         control="off" if not control else "all" if usable_labels else "subset",
                         control_images=0 if not control else smp.n if usable_labels else min(smp.n, CONTROL_SUBSET)))
    scored, controls = [], 0
    for index, entry in enumerate(entries):
        out = _score_one(entry, smp, dev=dev, batch_size=batch_size, seed=seed, folds=folds, control=control,
                         use_cache=use_cache, progress=progress, labels_off=labels_off)
        if isinstance(out, Failure):
            failed.append(out)
        else:
            *out, control_ran = out
            controls += control_ran
            scored.append((index, entry, *out))
    # the mode the ranking ran in; with nothing scored, the mode the labels asked for
    probes = [s["probe"].value is not None for *_, s, _t, _c, _k in scored]
    mode = "labels" if usable_labels and (any(probes) or not scored) else "label-free"
    cats = None if models else [str(c) for c in ([catalog] if isinstance(catalog, (str, Path)) else catalog)]
    settings = {"catalog": cats, "sample": sample, "seed": seed, "labels": str(labels), "intensity": intensity,
                "device": str(dev), "batch_size": batch_size, "folds": folds,
                "control": controls > 0,                 # a random-weights control pass ran for a candidate
                "control_requested": control,            # … and whether one was asked for (--no-control: no)
                "domain": list(filters.domains), "max_params": max_params, "license": list(filters.licenses),
                "include_gated": include_gated}
    ranked, rule = _order(scored, mode, smp)
    if labels_off:
        _say_labels_off(ranked)
    return Ranking(sample=_summary(smp), ranking=ranked, failed=failed, mode=mode, settings=settings,
                   excluded=excluded, fit_rule=rule, risk_model=_risk_model_info())


def _say_labels_off(ranked: list[Candidate]) -> None:
    """Under an explicit ``--labels none`` the label-using signals say so, instead of the signals'
    own "no labels (give class sub-folders …)" advice (after the risk, which reads the reasons)."""
    for c in ranked:
        c.signals = {n: (replace(v, reason=LABELS_OFF) if v.value is None and v.reason.startswith("no labels") else v)
                     for n, v in c.signals.items()}


def _risk_model_info() -> dict:
    """Which risk model ran and what its calibration covers (named in every result)."""
    m = risk_mod.load_model()
    if m is None:
        return {"name": "v0", "calibrated": False,
                "coverage": "uncalibrated rule (no shipped risk model could be used): read the risk as a rough guide"}
    prov = dict(m.provenance)
    return {"name": "calibrated", "calibrated": True, "fitted": prov.get("fitted"),
            "coverage": prov.get("coverage", ""),
            "dev_targets": list(prov.get("dev_targets", []))}


_GAIN_WORDS = re.compile(r"probe (beats|trails) random weights by (\d+\.\d) ± (\d+\.\d) points")


def _plain_gain(reason: str) -> str:
    """A gain that rounds to zero, or that is the same on every fold, in words: never
    "beats random weights by 0.0 ± 0.0 points"."""
    def words(m: re.Match) -> str:
        verb, g, sd = m.groups()
        if g == "0.0":
            return ("probe and random weights score the same on every fold (gain 0.0 points)" if sd == "0.0"
                    else f"probe ties random weights (gain 0.0 ± {sd} points over folds)")
        return f"probe {verb} random weights by {g} points on every fold" if sd == "0.0" else m.group(0)
    return _GAIN_WORDS.sub(words, reason)


def _order(scored: list[tuple], mode: str, smp: Sample) -> tuple[list[Candidate], dict]:
    """Fit, risk and rank for every scored entry, best first (rules in ranking.py and risk.py);
    also the rule that ran."""
    n_classes = smp.n_classes if smp.labels is not None else 0
    smallest = (int(np.bincount(np.unique(smp.labels, return_inverse=True)[1]).min())
                if n_classes >= 2 and smp.labels is not None else None)
    rule, fits = fit_scores([s[2] for s in scored], mode, smallest_class=smallest)  # type: ignore[arg-type]
    probes = [s[2]["probe"].value for s in scored if s[2].get("probe") is not None and s[2]["probe"].value is not None]
    context = {"best_probe": max(probes) if probes else None}   # the run-level evidence the risk may use
    candidates = []
    for (index, entry, signals, timings, cached, k), (fit, basis) in zip(scored, fits, strict=True):
        r = risk_mod.estimate(signals, len(smp.images), n_classes, n_folds=k, context=context)
        candidates.append((sort_key(fit, signals, index), Candidate(
            rank=0, model=entry.id, domain=entry.domain, fit=fit, risk=r.value, risk_band=r.band,
            risk_reason=_plain_gain(r.reason), signals=signals, timings=timings, cached=cached,
            risk_interval=None if r.low is None or r.high is None else (r.low, r.high), fit_basis=basis)))
    ranked = [c for _, c in sorted(candidates, key=lambda t: t[0])]
    for i, c in enumerate(ranked, 1):
        c.rank = i
    return ranked, {"mode": mode, **rule.to_dict()}


def _score_one(entry: CatalogEntry, smp: Sample, *, dev, batch_size: int, seed: int, folds: int, control: bool,
               use_cache: bool, progress: ProgressCallback | None, labels_off: bool = False):
    """Evidence + signals for one entry (and whether its control pass ran); a Failure instead of raising."""
    stage: Stage = "fetch"
    try:
        spec = resolve_spec(entry)
        stage = "load"
        cb = (lambda d, t: progress(entry.id, d, t)) if progress else None
        ev = collect_evidence(spec, smp, pretrained=True, device=dev, batch_size=batch_size, seed=seed,
                              use_cache=use_cache, progress=cb)
    except Exception as exc:  # one failing backbone never stops the run (reported in Ranking.failed)
        failure = Failure.from_exception(entry.id, exc, stage)
        logger.info("%s failed (%s): %s", entry.id, failure.stage, exc)
        logger.debug("traceback", exc_info=True)
        return failure
    ctl, ctl_reason, ctl_s = None, "random-weights control skipped (--no-control)" if not control else "", 0.0
    labelled = smp.labels is not None and smp.n_classes >= 2
    sub_idx = np.sort(np.random.default_rng(seed).permutation(smp.n)[:CONTROL_SUBSET])
    ctl_sub, ctl_cached = None, True
    if control:
        # with labels: the full control (the probe needs it); label-free: the same random
        # weights on a fixed subset of at most CONTROL_SUBSET images (the normalisation of the
        # label-free signals needs no more)
        sub = smp if labelled else Sample(root=smp.root, paths=[smp.paths[i] for i in sub_idx],
                                          images=[smp.images[i] for i in sub_idx], labels=None, class_names=[],
                                          intensity=smp.intensity)
        try:
            cb = (lambda d, t: progress(f"{entry.id} (control)", d, t)) if progress else None
            got = collect_evidence(spec, sub, pretrained=False, device=dev, batch_size=batch_size, seed=seed,
                                   use_cache=use_cache, progress=cb)
            ctl_s, ctl_cached = got.seconds, got.cached
            ctl, ctl_sub = (got, got.features[sub_idx]) if labelled else (None, got.features)
            if not labelled:
                ctl_reason = (f"{LABELS_OFF}: the control probe needs labels" if labels_off
                              else "no labels with ≥ 2 classes: the control probe cannot run")
        except Exception as exc:
            ctl_reason = f"random-weights control failed: {_one_line(exc)}"
            logger.warning("%s: %s", entry.id, ctl_reason)
    ref, ref_reason = None, ""
    try:
        ref = find_reference(spec)
    except ProximityError as exc:
        logger.warning("%s: %s", entry.id, exc)
        ref_reason = str(exc)
    ctx = sig.SignalContext(evidence=ev, entry=entry, labels=smp.labels, control=ctl, reference=ref,
                            reference_reason=ref_reason,
                            control_reason=ctl_reason or "control unavailable", folds=folds, seed=seed,
                            control_subset=sub_idx if ctl_sub is not None else None,
                            control_subset_features=ctl_sub)
    t0 = time.perf_counter()
    try:
        signals = sig.compute_signals(ctx)
    except Exception as exc:
        logger.debug("traceback", exc_info=True)
        return Failure.from_exception(entry.id, exc, "signal")
    timings = {"evidence_s": ev.seconds, "control_s": ctl_s, "signals_s": time.perf_counter() - t0}
    k = folds_used(ctx)  # the folds the probe really used
    return signals, timings, ev.cached and ctl_cached, k, ctl is not None or ctl_sub is not None
