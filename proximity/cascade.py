"""The catalog cascade: a cheap first look decides which candidates get the full evaluation.

``--shortlist N`` (on by default for catalog runs of more than 20 candidates, see
:meth:`proximity.config.RankConfig.shortlist_for`):

1. **screen** — every candidate's evidence pass on a seeded, stratified sub-sample of
   :func:`screen_size` images (a quarter of the sample, at least :data:`SCREEN_MIN`), no
   random-weights control, every signal that needs no control computed on those images, and
   the fit rule the run will use applied to them across the candidates: the *screen score*;
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

    rule, fits = fit_scores([s for _, _, s in scored], mode, smallest_class=smallest_class)  # type: ignore[arg-type]
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
