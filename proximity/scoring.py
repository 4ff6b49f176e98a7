"""One candidate's evidence and signals — the unit of work of a run, on any executor.

:func:`score_candidate` looks the candidate's signal results up in the cache first (no torch,
no forward pass, see :mod:`proximity.signal_cache`), else resolves it, runs (or reads) its
evidence pass and its random-weights control (shared per architecture, :mod:`proximity.controls`),
computes every registered signal and stores the results. It never raises for a failing
backbone: it returns a :class:`~proximity.report.Failure` with the stage that failed. Its
inputs and outputs are plain picklable values, so that an executor may run it in another
process or on another machine (:mod:`proximity.executors`).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import signal_cache
from .catalog import CatalogEntry
from .config import RankConfig
from .data import Sample
from .errors import ProximityError, one_line
from .types import Failure, Stage

logger = logging.getLogger(__name__)

#: progress(task, done, total): task is "<model>" or "<model> (control)".
ProgressCallback = Callable[[str, int, int], None]
#: What the probe-like signals say when labels were switched off on purpose (not "no labels, give …").
LABELS_OFF = "not run: labels switched off (--labels none)"


@dataclass
class Scored:
    """A candidate's signals and how they were obtained."""

    model: str
    signals: dict[str, Any]                  # name -> SignalValue
    timings: dict[str, float]                # evidence_s, control_s, signals_s (of the run that computed them)
    cached: bool                             # every part came from the cache
    k: int | None                            # the folds the probe really used
    control_ran: bool                        # a control pass (or its cached result) was used
    device: str | None = None                # where the passes ran (None: unknown)


#: Computed in every run (``signals="core"``): the baselines a result is shown next to.
SHOWN_SIGNALS = ("probe", "knn", "control", "gain", "logme", "early_shift", "frechet", "prior", "params")


def signal_names(cfg: RankConfig) -> list[str]:
    """The signals a run computes, in registry order: every one for ``signals="all"``; else
    :data:`SHOWN_SIGNALS`, the cascade screen's (:data:`proximity.cascade.SCREEN_SIGNALS`), those
    the fit rules (:func:`proximity.ranking.load_rules`, v0 ones included) and the risk model use,
    and any named. InvalidParameterError for an unknown name."""
    from .errors import InvalidParameterError
    from .ranking import rule_path
    from .risk import model_path
    from .signals import SIGNALS

    if cfg.signals == "all":
        return list(SIGNALS)
    named = set() if cfg.signals == "core" else set(cfg.signals)
    unknown = sorted(named - set(SIGNALS))
    if unknown:
        raise InvalidParameterError("signals", "rank", f"'core', 'all' or names among {', '.join(SIGNALS)}",
                                    ",".join(unknown))
    from .cascade import SCREEN_SIGNALS

    want = (set(SHOWN_SIGNALS) | set(SCREEN_SIGNALS) | named
            | _used_by_shipped(_stamp(rule_path()), _stamp(model_path())))
    return [n for n in SIGNALS if n in want]


def _stamp(path) -> tuple[str, int] | None:
    return (str(path), path.stat().st_mtime_ns) if path.is_file() else None


@functools.lru_cache(maxsize=8)
def _used_by_shipped(rules: tuple[str, int] | None, model: tuple[str, int] | None) -> frozenset[str]:
    """The signals the fit rules (v0 ones included) and the risk model use; read once per version
    of their files (the arguments), not once per candidate."""
    from .ranking import V0, load_rules
    from .risk import FEATURE_SIGNALS, load_model

    want: set[str] = set()
    for rule in [*V0.values(), *load_rules().values()]:
        want |= rule.signals()
    risk = load_model()
    if risk is not None:
        want |= {s for v in risk.variants.values() for f in v.features for s in FEATURE_SIGNALS.get(f, (f,))}
    return frozenset(want)


def control_subset(sample: Sample, seed: int, size: int | None, folds: int = 5) -> np.ndarray:
    """Indices (sorted) of the images the random-weights control sees: every image when ``size`` is
    None or ≥ the sample; else, with labels (≥ 2 classes), a seeded stratified subset — each class
    ``round(size · share)`` images but at least ``folds`` (or all it has), so the control probe
    has every class in every one of its k folds: with many classes the subset grows beyond
    ``size`` rather than the probe dropping to 2 folds —; without labels, the first ``size`` of a
    seeded permutation."""
    n = sample.n
    if size is None or size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if sample.labels is None or sample.n_classes < 2:
        return np.sort(rng.permutation(n)[:size])
    y = np.asarray(sample.labels)
    keep = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        quota = min(len(members), max(folds, round(size * len(members) / n)))
        keep.append(rng.permutation(members)[:quota])
    return np.sort(np.concatenate(keep))


def control_sample(sample: Sample, cfg: RankConfig) -> tuple[np.ndarray, Sample]:
    """(indices, the sub-sample) the control runs on (:func:`control_subset`), labels kept."""
    idx = control_subset(sample, cfg.seed, cfg.control_images, cfg.folds)
    if len(idx) == sample.n:
        return idx, sample
    labels = None if sample.labels is None else np.asarray(sample.labels)[idx]
    return idx, Sample(root=sample.root, paths=[sample.paths[i] for i in idx], images=[sample.images[i] for i in idx],
                       labels=labels, class_names=list(sample.class_names) if labels is not None else [],
                       intensity=sample.intensity)


def cached_result(entry: CatalogEntry, sample: Sample, cfg: RankConfig, *, labels_off: bool) -> Scored | None:
    """The candidate's results from the signal cache, without resolving it (no torch), or None."""
    if not cfg.use_cache:
        return None
    identity = signal_cache.candidate_identity(entry)
    if identity is None:
        return None
    rec = signal_cache.load(signal_cache.signal_key(identity, entry, sample, cfg, labels_off=labels_off))
    return None if rec is None else _from_record(entry, rec)


def _from_record(entry: CatalogEntry, rec: dict[str, Any]) -> Scored:
    return Scored(entry.id, rec["signals"], dict(rec["timings"]), True, rec["k"], bool(rec["control_ran"]),
                  rec.get("device"))


def score_candidate(entry: CatalogEntry, sample: Sample, cfg: RankConfig, *, labels_off: bool = False,
                    controls=None, progress: ProgressCallback | None = None, device=None) -> Scored | Failure:
    """Evidence + signals for one candidate (module docstring); a Failure instead of raising.

    ``controls``: the run's :class:`~proximity.controls.ControlPool` (a fresh one when None);
    ``device``: a resolved torch device (resolved from ``cfg.device`` when None).
    """
    quick = signal_cache.candidate_identity(entry) if cfg.use_cache else None
    key = None
    if quick is not None:
        key = signal_cache.signal_key(quick, entry, sample, cfg, labels_off=labels_off)
        rec = signal_cache.load(key)
        if rec is not None:
            if progress is not None:
                progress(entry.id, sample.n, sample.n)
            return _from_record(entry, rec)
    from .backbones import resolve_device, resolve_spec
    from .controls import ControlPool
    from .evidence import collect_evidence

    stage: Stage = "fetch"
    try:
        spec = resolve_spec(entry)
        stage = "load"
        if cfg.use_cache and quick is None:      # known only now that it is resolved (an unpinned Hub repo)
            key = signal_cache.signal_key(signal_cache.spec_identity(spec), entry, sample, cfg, labels_off=labels_off)
            rec = signal_cache.load(key)
            if rec is not None:
                if progress is not None:
                    progress(entry.id, sample.n, sample.n)
                return _from_record(entry, rec)
        dev = device if device is not None else resolve_device(cfg.device)
        cb = (lambda d, t: progress(entry.id, d, t)) if progress else None
        ev = collect_evidence(spec, sample, pretrained=True, device=dev, batch_size=cfg.batch_size, seed=cfg.seed,
                              use_cache=cfg.use_cache, progress=cb, precision=cfg.precision)
    except Exception as exc:  # one failing backbone never stops the run (reported in Ranking.failed)
        failure = Failure.from_exception(entry.id, exc, stage)
        logger.info("%s failed (%s): %s", entry.id, failure.stage, exc)
        logger.debug("traceback", exc_info=True)
        return failure
    pool = controls if controls is not None else ControlPool()
    ctl = _control(entry, spec, sample, cfg, pool, dev, labels_off, progress)
    return _signals(entry, spec, sample, cfg, ev, ctl, key, str(dev))


def _control(entry, spec, sample: Sample, cfg: RankConfig, pool, dev, labels_off: bool, progress) -> dict[str, Any]:
    """The random-weights control on the run's control subset (:func:`control_sample`): the
    control probe and the gain (with labels) and the normalisation of the label-free signals."""
    out: dict[str, Any] = {"evidence": None, "sub": None, "seconds": 0.0, "cached": True, "failed": False,
                           "reason": "" if cfg.control else "random-weights control skipped (--no-control)"}
    if not cfg.control:
        return out
    labelled = sample.labels is not None and sample.n_classes >= 2
    sub_idx, sub = control_sample(sample, cfg)
    try:
        cb = (lambda d, t: progress(f"{entry.id} (control)", d, t)) if progress else None
        got = pool.get(spec, sub, device=dev, batch_size=cfg.batch_size, seed=cfg.seed, use_cache=cfg.use_cache,
                       progress=cb, precision=cfg.precision)
    except Exception as exc:
        out.update(failed=True, reason=f"random-weights control failed: {one_line(exc)}")
        logger.warning("%s: %s", entry.id, out["reason"])
        return out
    out.update(seconds=got.seconds, cached=got.cached, sub_idx=sub_idx, sub=got.features)
    if labelled:
        out.update(evidence=got)
    else:
        out.update(reason=(f"{LABELS_OFF}: the control probe needs labels" if labels_off
                           else "no labels with ≥ 2 classes: the control probe cannot run"))
    return out


def _signals(entry, spec, sample: Sample, cfg: RankConfig, ev, ctl: dict[str, Any], key: str | None,
             device: str) -> Scored | Failure:
    from . import signals as sig
    from .reference import find_reference
    from .signals.probe import folds_used

    ref, ref_reason = None, ""
    try:
        ref = find_reference(spec)
    except ProximityError as exc:
        logger.warning("%s: %s", entry.id, exc)
        ref_reason = str(exc)
    ctx = sig.SignalContext(evidence=ev, entry=entry, labels=sample.labels, control=ctl["evidence"], reference=ref,
                            reference_reason=ref_reason, control_reason=ctl["reason"] or "control unavailable",
                            folds=cfg.folds, seed=cfg.seed,
                            control_subset=ctl.get("sub_idx") if ctl["sub"] is not None else None,
                            control_subset_features=ctl["sub"])
    t0 = time.perf_counter()
    try:
        signals = sig.compute_signals(ctx, signal_names(cfg))
    except Exception as exc:
        logger.debug("traceback", exc_info=True)
        return Failure.from_exception(entry.id, exc, "signal")
    timings = {"evidence_s": ev.seconds, "control_s": ctl["seconds"], "signals_s": time.perf_counter() - t0}
    k = folds_used(ctx)  # the folds the probe really used
    ran = ctl["evidence"] is not None or ctl["sub"] is not None
    complete = not ctl["failed"] and not any(v.reason.startswith("failed:") for v in signals.values())
    if key is not None and complete:
        signal_cache.save(key, signals=signals, timings=timings, k=k, control_ran=ran, device=device)
    return Scored(entry.id, signals, timings, ev.cached and ctl["cached"], k, ran, device)
