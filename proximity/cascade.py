"""The catalog cascade: a cheap first look decides which candidates get the full evaluation.

``--shortlist N`` (on by default for catalog runs of more than 20 candidates, see
:meth:`proximity.config.RankConfig.shortlist_for`):

1. **screen** — every candidate's evidence pass on a seeded, stratified sub-sample of
   :func:`screen_size` images (a quarter of the sample, at least :data:`SCREEN_MIN`), no
   random-weights control, every signal that needs no control computed on those images, and a
   rule over them across the candidates: the *screen score*. Label-free it is the fit rule the
   run will use; with labels, the mean z-score of the rule's signals and of
   :data:`SCREEN_SIGNALS` — four estimates of how well a linear read-out of the features
   separates the classes, because any one of them is noisy on a quarter of the images (on the
   benchmark's dev targets, the k-fold probe alone kept the full run's top 3 within the first
   6 on 7 of 8 targets, the four together on 8 of 8);
2. **evaluate** — the N best by screen score (ties: as the ranking breaks them) get the full
   evaluation (every image, the control, every signal), exactly as without a screen;
3. the others stay in the result, after the evaluated ones, marked ``screened`` with their
   screen score and the reason (no fit, no risk: they were not measured in full).

The screen's passes and signals are cached like any others (their sample is the sub-sample), so
a re-run screens from the cache. A candidate that fails during the screen is a failed candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .data import Sample

#: The screen sees ``max(SCREEN_MIN, ceil(SCREEN_FRACTION · n))`` images (all of them when fewer).
SCREEN_FRACTION = 0.25
SCREEN_MIN = 32
#: With labels, the screen averages the z-scores of these signals with the fit rule's own.
SCREEN_SIGNALS = ("probe", "probe_loo", "knn", "logme")


@dataclass(frozen=True)
class ScreenResult:
    """One candidate's first look."""

    index: int                     # position in the run's candidate list
    score: float | None            # the fit rule over the screen's signals (None: it has none of them)
    rank: int                      # 1 = best screen score
    kept: bool                     # in the shortlist: fully evaluated
    reason: str


def screen_size(n: int) -> int:
    return min(n, max(SCREEN_MIN, math.ceil(SCREEN_FRACTION * n)))


def screen_sample(sample: Sample, m: int, seed: int) -> Sample:
    """``m`` images of ``sample``, seeded, stratified by label when there are labels (each class
    in proportion, at least 2 images where it has them), in the sample's order."""
    rng = np.random.default_rng(seed + 1)             # not the control subset's stream
    if sample.labels is None or m >= sample.n:
        idx = rng.permutation(sample.n)[:m]
    else:
        classes, counts = np.unique(sample.labels, return_counts=True)
        want = np.maximum(np.minimum(counts, 2), np.round(counts * m / sample.n).astype(int))
        idx = np.concatenate([rng.permutation(np.flatnonzero(sample.labels == c))[:k]
                              for c, k in zip(classes, want, strict=True)])
    idx = np.sort(idx)
    labels = None if sample.labels is None else sample.labels[idx]
    return Sample(root=sample.root, paths=[sample.paths[i] for i in idx], images=[sample.images[i] for i in idx],
                  labels=labels, class_names=list(sample.class_names), intensity=sample.intensity)


def shortlist(scored: Sequence[tuple[int, Any, dict]], keep: int, mode: str, smallest_class: int | None,
              n_images: int) -> list[ScreenResult]:
    """Screen scores and the shortlist of ``keep`` candidates from ``(index, entry, signals)`` of
    the screened candidates (signals on the sub-sample of ``n_images`` images)."""
    from .ranking import fit_scores, sort_key

    rule = screen_rule(mode, smallest_class)
    signal_sets = [s for _, _, s in scored]
    fits = rule.scores(signal_sets) if mode == "labels" else fit_scores(signal_sets, mode)[1]  # type: ignore[arg-type]
    order = sorted(range(len(scored)), key=lambda i: sort_key(fits[i][0], scored[i][2], scored[i][0]))
    out = []
    for rank, i in enumerate(order, 1):
        index, entry, _ = scored[i]
        fit = fits[i][0]
        kept = rank <= keep
        shown = "none of the rule's signals" if fit is None else f"{fit:.4g}"
        reason = (f"screen score {shown} ({rule.name} on {n_images} images, no control) ranks {rank} of "
                  f"{len(scored)}: " + ("shortlisted" if kept else f"outside the shortlist of {keep}"))
        out.append(ScreenResult(index, fit, rank, kept, reason))
    return sorted(out, key=lambda r: r.index)


def screen_rule(mode: str, smallest_class: int | None):
    """The rule that makes screen scores (module docstring): the run's fit rule label-free; with
    labels the z-score mean of its signals and :data:`SCREEN_SIGNALS` (each once, weight 1)."""
    from .ranking import FitRule, load_rules

    rule = load_rules()[mode].for_sample(smallest_class if mode == "labels" else None)
    if mode != "labels":
        return rule
    names = list(dict.fromkeys([t for t, _ in rule.terms] + list(SCREEN_SIGNALS)))
    return FitRule(f"screen: z-mean of {', '.join(names)}", "z-mean", tuple((n, 1.0) for n in names))


def run_screen(entries: Sequence[Any], sample: Sample, cfg, keep: int, *, mode: str, smallest_class: int | None,
               run: Callable[[Sequence[Any], Sample, Any], list]) -> tuple[list[ScreenResult], list]:
    """Screen ``entries`` (``run(entries, sample, cfg)`` scores them on a sample); returns the
    screen results of those that could be screened and the failures."""
    from .report import Failure

    sub = screen_sample(sample, screen_size(sample.n), cfg.seed)
    results = run(entries, sub, cfg.with_(control=False))
    failed = [r for r in results if isinstance(r, Failure)]
    ok = [(i, e, r.signals) for i, (e, r) in enumerate(zip(entries, results, strict=True))
          if not isinstance(r, Failure)]
    return shortlist(ok, keep, mode, smallest_class, sub.n), failed
