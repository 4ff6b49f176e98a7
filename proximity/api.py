"""The public entry point: :func:`rank`."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Literal, Sequence, cast

import numpy as np

from . import cache
from . import risk as risk_mod
from .catalog import CatalogEntry, adhoc_entry, load_catalog
from .config import RankConfig
from .data import Intensity, Sample, load_sample
from .errors import InvalidParameterError, NoCandidatesError, ProximityError, UnknownSourceError
from .executors import check_available, make_executor
from .filters import Filters
from .ranking import fit_scores, load_rules, rule_key, sort_key
from .report import Candidate, Failure, Ranking, RunPlan, SampleSummary
from .scoring import LABELS_OFF, control_subset
from .types import Exclusion

logger = logging.getLogger(__name__)

#: progress(task, done, total): task is "sample", "<model>", "<model> (control)" or "<model> (screen)".
ProgressCallback = Callable[[str, int, int], None]


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
    precision: Literal["float32", "bfloat16", "float16"] = "float32",
    control: bool = True,
    control_images: int | None = 64,
    signals: str | Sequence[str] = "core",
    use_cache: bool = True,
    folds: int = 5,
    scratch: bool = False,
    finetune: bool = False,
    repeats: int = 1,
    domain: str | Sequence[str] | None = None,
    max_params: float | None = None,
    license: str | Sequence[str] | None = None,
    include_gated: bool = False,
    shortlist: int | Literal["auto"] | None = "auto",
    executor: Literal["serial", "ray"] = "serial",
    address: str | None = None,
    progress: ProgressCallback | None = None,
    on_start: Callable[[RunPlan], None] | None = None,
    config: RankConfig | None = None,
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
    precision : the networks' arithmetic: ``float32`` (default), or autocast to ``bfloat16``
        (CPU, CUDA) or ``float16`` (CUDA, MPS) — faster on GPUs with tensor cores; the pooled
        features and the early-layer moments are still accumulated and stored in float32, but
        they move at the ~1 % level, so signals may move within their sd (cached apart).
    control : run the random-weights control (one pass per architecture and input
        configuration, shared by the candidates that have it, on a fixed subset of the sample).
    control_images : the size of that subset (default 64; with labels stratified, at least
        ``folds`` images per class, or all a class has; ``gain`` is the probe − control on it,
        paired per fold); None: every image (the control costs a whole second pass; ``gain`` is
        then paired on the whole sample).
    signals : which signals to compute: ``"core"`` (default: those the shipped fit rules and risk
        model use, and the baselines — probe, kNN, control, gain, LogME, early_shift, frechet,
        prior, params), ``"all"`` (also the literature's other estimators and label-free
        statistics), or names (a list or ``"a,b"``; the core ones are added).
    use_cache : read and write the on-disk cache of evidence and signal results (a fully cached
        re-run runs no forward pass and computes no signal).
    folds : k of the stratified k-fold probe.
    scratch : also train each architecture from random weights on the sample (once per
        architecture and input configuration, cached; :mod:`proximity.scratch`): the ``scratch``
        signal, which the risk model compares the probe with. Needs labels; opt-in because it
        trains (seconds for small networks, tens of minutes for a ResNet-50 at
        224 px on a CPU).
    finetune : also fine-tune each candidate briefly from its pretrained weights on the same split
        and loop (:data:`proximity.scratch.FINETUNE_RECIPE`, cached): the ``finetune`` signal,
        reported; the shipped fit and risk do not use it (benchmark v2.5: it ranked below the
        frozen probe and did not sharpen the risk on dev). Needs labels; opt-in because it trains
        every candidate evaluated in full (with a shortlist, only those).
    repeats : how many times each ``scratch`` and ``finetune`` training runs (seeds ``seed`` …
        ``seed + repeats − 1``, each its own stratified 70/30 split, head and batch order); the
        signal is their mean, its sd the spread of the repeats over √repeats (never below the
        binomial sd of the pooled hold-outs, :func:`proximity.scratch.repeated_value`). One hold-out of 30 %
        is noisy: on 26 of the benchmark's targets, 5 trainings of each kind raised the AUROC of
        fine-tuned − from scratch as a negative-transfer predictor from 0.75 to 0.81
        (``scripts/bench/repeats.py``). The shipped risk model was calibrated on single trainings.
        Costs ``repeats`` times the trainings (each cached on its own: a later run with more
        repeats trains only the new ones).
    domain, max_params, license, include_gated : which catalog entries to consider (see
        :class:`~proximity.filters.Filters`; not applied to ``models``). Entries set aside are
        listed in ``Ranking.excluded`` with the reason, as are entries marked not loadable.
    shortlist : how many candidates get the full evaluation after a cheap screen of all of them
        (:mod:`proximity.cascade`); ``"auto"`` (default) screens catalog runs of more than 20
        candidates down to 6 and never a ``models`` list; None never screens. Screened-out
        candidates follow the evaluated ones in ``Ranking.ranking``, marked ``screened``.
    executor : ``"serial"`` (this process) or ``"ray"`` (one Ray task per backbone; needs
        ``pip install 'proximity[ray]'``), see :mod:`proximity.executors`.
    address : the Ray cluster to use (``ray://HOST:10001``, ``HOST:6379`` or ``auto``); None
        starts a local one unless ``RAY_ADDRESS`` is set. Only with ``executor="ray"``.
    progress : optional callback ``(task, done, total)``.
    on_start : optional callback, called once with a :class:`~proximity.report.RunPlan` when the
        inputs are checked and the sample is decoded, before the first backbone (the CLI's banner).
    config : a :class:`~proximity.config.RankConfig` holding all the options above at once (then
        leave them at their defaults); the CLI passes one.

    Returns
    -------
    Ranking : candidates best first (``.ranking``), failures (``.failed``), the sample summary.

    Raises
    ------
    EmptySampleError, LabelsError, CatalogError, CatalogNotFoundError, InvalidParameterError,
    UnknownSourceError (a ``models`` string without a known source prefix, before any decoding).
    A failing backbone never raises: it is recorded in ``Ranking.failed`` and the run goes on.
    """
    given = RankConfig.build(models=models, catalog=catalog, labels=labels, sample=sample, seed=seed,
                             intensity=intensity, device=device, batch_size=batch_size, precision=precision,
                             control=control, control_images=control_images, signals=signals,
                             use_cache=use_cache, folds=folds, scratch=scratch, finetune=finetune, repeats=repeats,
                             domain=domain,
                             max_params=max_params,
                             license=license, include_gated=include_gated, shortlist=shortlist,
                             executor=executor, address=address)
    if config is not None and given != RankConfig():
        raise InvalidParameterError("config", "rank", "given alone (leave the other options at their defaults)",
                                    "config and options")
    return run(path_or_sample, config or given, progress=progress, on_start=on_start)


def run(path_or_sample: str | Path | Sample, cfg: RankConfig, *, progress: ProgressCallback | None = None,
        on_start: Callable[[RunPlan], None] | None = None) -> Ranking:
    """:func:`rank` with its options in one :class:`~proximity.config.RankConfig`."""
    from .scoring import signal_names

    signal_names(cfg)                   # an unknown signal name fails here, before any decoding
    filters = Filters(domains=cfg.domain, max_params=cfg.max_params, licenses=cfg.license,
                      include_gated=cfg.include_gated)
    filters.validate()
    if cfg.device in ("cuda", "mps"):
        from .backbones import resolve_device

        resolve_device(cfg.device)               # an absent GPU is said before anything is decoded
    if cfg.precision != "float32" and cfg.executor == "serial":   # (a Ray worker checks its own device)
        from .backbones import autocast_dtype, resolve_device

        autocast_dtype(cfg.precision, resolve_device(cfg.device))  # float16 on a CPU: said before decoding
    check_available(cfg.executor)               # so is an executor that is not installed
    cache.new_run()
    failed: list[Failure] = []
    excluded: list[Exclusion] = []
    entries = _entries(cfg.models or None, list(cfg.catalog), failed, filters, excluded)  # before any decoding
    if not cfg.models and not entries:
        raise NoCandidatesError(excluded)
    if isinstance(path_or_sample, Sample):
        smp = path_or_sample
    else:
        cb = (lambda d, t: progress("sample", d, t)) if progress else None
        smp = load_sample(path_or_sample, labels=cfg.labels, sample=cfg.sample, seed=cfg.seed,
                          intensity=cast(Intensity, cfg.intensity), progress=cb)
    usable_labels = smp.labels is not None and smp.n_classes >= 2
    if smp.labels is not None and smp.n_classes < 2:
        logger.warning("Only one class (%s) in the sample: label-using signals are skipped.", smp.class_names)
    labels_off = cfg.labels == "none" and not isinstance(path_or_sample, Sample)
    keep = cfg.shortlist_for(len(entries))
    if on_start is not None:
        n_control = len(control_subset(smp, cfg.seed, cfg.control_images, cfg.folds)) if cfg.control else 0
        on_start(RunPlan(n_candidates=len(entries), n_excluded=len(excluded), n_images=smp.n,
                         n_classes=smp.n_classes, labelled=usable_labels,
                         control="off" if not cfg.control else "all" if n_control == smp.n else "subset",
                         control_images=n_control, shortlist=keep, scratch=cfg.scratch and usable_labels,
                         finetune=cfg.finetune and usable_labels, repeats=cfg.repeats))
    _say_idle_repeats(cfg)
    executor = make_executor(cfg)
    try:
        screens, full = _screen(entries, smp, cfg, keep, executor, usable_labels, labels_off, failed, progress)
        results = executor.run([entries[i] for i in full], smp, cfg, labels_off=labels_off, progress=progress)
    finally:
        executor.close()
    scored = []
    for index, out in zip(full, results, strict=True):
        if isinstance(out, Failure):
            failed.append(out)
        else:
            scored.append((index, entries[index], out))
    if cfg.scratch and not usable_labels:
        logger.warning("--scratch needs labels with at least 2 classes (class sub-folders or --labels FILE.csv): "
                       "no architecture is trained from scratch.")
    elif cfg.scratch:
        if not cfg.control:
            logger.warning("--scratch with --no-control: the risk's from-scratch model also reads the gain over the "
                           "random-weights control, so the from-scratch results will not be used by the risk; "
                           "drop --no-control to use them.")
        from .scratch import attach

        attach([(e, s) for _, e, s in scored], smp, cfg, labels_off=labels_off, progress=progress)
    if cfg.finetune and not usable_labels:
        logger.warning("--finetune needs labels with at least 2 classes (class sub-folders or --labels FILE.csv): "
                       "no candidate is fine-tuned.")
    elif cfg.finetune:
        from .scratch import attach as attach_training

        attach_training([(e, s) for _, e, s in scored], smp, cfg, labels_off=labels_off, progress=progress,
                        finetune=True)
    # the mode the ranking ran in; with nothing scored, the mode the labels asked for
    probes = [out.signals["probe"].value is not None for *_, out in scored if "probe" in out.signals]
    mode = "labels" if usable_labels and (any(probes) or not scored) else "label-free"
    settings = cfg.settings(device=_device_used([s for *_, s in scored], cfg),
                            controls=sum(out.control_ran for *_, out in scored), shortlist=keep)
    ranked, rule = _order(scored, mode, smp)
    ranked += _screened_out(screens, entries, len(ranked))
    if labels_off:
        _say_labels_off(ranked)
    return Ranking(sample=_summary(smp), ranking=ranked, failed=failed, mode=mode, settings=settings,
                   excluded=excluded, fit_rule=rule, risk_model=_risk_model_info())


def _say_idle_repeats(cfg: RankConfig) -> None:
    if cfg.repeats > 1 and not (cfg.scratch or cfg.finetune):
        logger.warning("--repeats %d has nothing to repeat: it repeats the trainings of --scratch and --finetune; "
                       "add one of them (or drop --repeats).", cfg.repeats)


def _screen(entries, smp: Sample, cfg: RankConfig, keep: int | None, executor, usable_labels: bool, labels_off: bool,
            failed: list[Failure], progress) -> tuple[list, list[int]]:
    """The cascade's first look (:mod:`proximity.cascade`): (screen results, indices of the
    entries to evaluate in full); without a shortlist, every entry is evaluated."""
    if keep is None:
        return [], list(range(len(entries)))
    from .cascade import run_screen

    cb = (lambda task, d, t: progress(f"{task} (screen)", d, t)) if progress else None
    screens, fails = run_screen(entries, smp, cfg, keep, mode="labels" if usable_labels else "label-free",
                                smallest_class=_smallest_class(smp),
                                run=lambda es, s, c: executor.run(es, s, c, labels_off=labels_off, progress=cb))
    failed.extend(fails)
    return [r for r in screens if not r.kept], [r.index for r in screens if r.kept]


def _screened_out(screens, entries, after: int) -> list[Candidate]:
    """The candidates left out by the screen, by screen rank, after the ``after`` evaluated ones."""
    out: list[Candidate] = []
    for r in sorted(screens, key=lambda r: r.rank):
        e = entries[r.index]
        out.append(Candidate(rank=after + len(out) + 1, model=e.id, domain=e.domain, fit=None, risk=None,
                             risk_band="unknown", risk_reason=f"not evaluated: screened out ({r.reason})", signals={},
                             screened=True, screen={"score": r.score, "rank": r.rank, "reason": r.reason}))
    return out


def _device_used(scored: list, cfg: RankConfig) -> str:
    """The device the passes ran on; for a run served wholly from the cache, the one the cached
    results were computed on (no torch is imported to find out)."""
    seen = [s.device for s in scored if s.device]
    if seen:
        return seen[0]
    if cfg.device == "cpu":
        return "cpu"
    from .backbones import resolve_device

    return str(resolve_device(cfg.device))


def _smallest_class(smp: Sample) -> int | None:
    if smp.labels is None or smp.n_classes < 2:
        return None
    return int(np.bincount(np.unique(smp.labels, return_inverse=True)[1]).min())


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
    """Fit, risk and rank for every scored entry ``(index, entry, Scored)``, best first (rules in
    ranking.py and risk.py); also the rule that ran."""
    n_classes = smp.n_classes if smp.labels is not None else 0
    rules = load_rules()
    sets = [s.signals for *_, s in scored]
    rule, fits = fit_scores(sets, mode, smallest_class=_smallest_class(smp), rules=rules)  # type: ignore[arg-type]
    used = rule_key(sets, mode, rules)  # type: ignore[arg-type]
    probes = [s.signals["probe"].value for *_, s in scored
              if s.signals.get("probe") is not None and s.signals["probe"].value is not None]
    context = {"best_probe": max(probes) if probes else None}   # the run-level evidence the risk may use
    candidates = []
    for (index, entry, s), (fit, basis) in zip(scored, fits, strict=True):
        r = risk_mod.estimate(s.signals, len(smp.images), n_classes, n_folds=s.k, context=context)
        candidates.append((sort_key(fit, s.signals, index), Candidate(
            rank=0, model=entry.id, domain=entry.domain, fit=fit, risk=r.value, risk_band=r.band,
            risk_reason=_plain_gain(r.reason), signals=s.signals, timings=s.timings, cached=s.cached,
            risk_interval=None if r.low is None or r.high is None else (r.low, r.high), fit_basis=basis,
            risk_variant=r.variant)))
    ranked = [c for _, c in sorted(candidates, key=lambda t: t[0])]
    for i, c in enumerate(ranked, 1):
        c.rank = i
    # "rule_mode": the shipped rule of another mode that ran (labels+finetune), when one did
    return ranked, {"mode": mode, **({"rule_mode": used} if used != mode else {}), **rule.to_dict()}
