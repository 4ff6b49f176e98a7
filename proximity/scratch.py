"""The from-scratch baseline: the candidate's architecture trained from random weights on the sample.

Negative transfer means "fine-tuning from this checkpoint ends below training the same
architecture from scratch". The random-weights *probe* (the control) says little about the second
half: a frozen random network is a poor stand-in for one that is trained. So ``--scratch`` trains
it, briefly and once per architecture and input configuration (the control's identity,
:func:`proximity.controls.control_identity`: six fine-tuned ``resnet50``\\ s share one run), and
the risk model reads its hold-out accuracy (``scratch``) next to the pretrained probe.

The recipe (:data:`RECIPE`) is the benchmark's from-scratch recipe at its middle learning rate,
on the user's images only: a seeded stratified hold-out of 30 % (at least one image per class),
the network with a linear head on its pooled features, every layer trained with AdamW (learning
rate 1e-3, weight decay 0.05, batches of 32, one warm-up epoch then cosine decay), at most 30
epochs, early stopping on the hold-out accuracy (patience 5 after at least 10 epochs); the value
is the best hold-out accuracy, its sd the binomial one. No augmentation (a flip may change a
class). It costs 10–30 epochs of training on 70 % of the sample per architecture: seconds for
the benchmark's small networks at 64 px, 20–60 min for a ResNet-50 at 224 px on 500 images on two
CPU cores (9 s per 32-image step there) — hence opt-in. Results are cached with the evidence
(keyed by identity, sample, labels, recipe, seed).

``--finetune`` (:func:`finetune_on_sample`, :data:`FINETUNE_RECIPE`) is its counterpart: each
*candidate* started from its pretrained weights and fine-tuned on the same split with the same
loop, the backbone at a tenth of the head's learning rate (as the benchmark's ground truth). It
measures literally what the risk is about — fine-tuning against training from scratch, on the
same images, split and loop — at the price of training every candidate (once each, cached).
The two trainings share the hold-out, so their difference (``finetune`` − ``scratch``) is paired.
On benchmark v2.5 it ranked below the frozen probe and did not make the risk sharper on dev
(``scripts/bench/results/v2.5/READING.md``): the shipped fit and risk do not use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .backbones import BackboneSpec
    from .data import Sample
    from .types import SignalValue

logger = logging.getLogger(__name__)

#: The training recipe; part of the cache key and written into every result's detail.
RECIPE: dict[str, Any] = {"holdout": 0.3, "lr": 1e-3, "weight_decay": 0.05, "batch": 32, "max_epochs": 30,
                          "min_epochs": 10, "patience": 5, "warmup_epochs": 1, "version": 1}
#: The fine-tune (``--finetune``): the from-scratch recipe — hold-out, optimiser, schedule, epochs,
#: early stopping — from the pretrained weights, the backbone at ``backbone_lr`` (a tenth of the
#: head's, as in the benchmark's ground truth). Not shorter: with a few images an epoch is one
#: step, and a version with at most 12 epochs and at least 4 stopped after 4 steps, when
#: BatchNorm's running statistics were still mostly the pretraining domain's: 0 % on a
#: brightness task whose training split it fitted.
FINETUNE_RECIPE: dict[str, Any] = {**RECIPE, "backbone_lr": 1e-4, "version": 1}


@dataclass(frozen=True)
class ScratchResult:
    accuracy: float          # best hold-out accuracy
    n_holdout: int
    n_train: int
    epochs: int              # epochs run (early stopping included)
    best_epoch: int
    seconds: float
    cached: bool = False
    pretrained: bool = False  # True: fine-tuned from the pretrained weights (--finetune)

    @property
    def sd(self) -> float:
        """Binomial sd of the hold-out accuracy."""
        p = self.accuracy
        return math.sqrt(max(p * (1 - p), 0.0) / max(self.n_holdout, 1))

    def detail(self) -> str:
        start = "fine-tuned from the pretrained weights" if self.pretrained else "accuracy from random weights"
        return (f"{start}, trained on {self.n_train} images, best of {self.epochs} epochs "
                f"(epoch {self.best_epoch + 1}) on a {self.n_holdout}-image stratified hold-out (also its early "
                "stopping: optimistic on a small hold-out)")


def holdout_split(labels: np.ndarray, seed: int, share: float = RECIPE["holdout"]) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, hold-out) indices: ``round(share · class size)`` of each class held
    out, at least one, and at least one left to train on."""
    rng = np.random.default_rng([seed, 7])
    tr, ho = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(1, round(share * len(idx))), len(idx) - 1)
        ho += idx[:k].tolist()
        tr += idx[k:].tolist()
    return np.sort(np.array(tr, dtype=int)), np.sort(np.array(ho, dtype=int))


def scratch_key(spec: "BackboneSpec", sample: "Sample", seed: int) -> str:
    from . import cache
    from .controls import control_identity

    labels = hashlib.sha256(np.ascontiguousarray(np.asarray(sample.labels, dtype=np.int64)).data).hexdigest()
    return cache.evidence_key({"scratch": control_identity(spec), "sample": sample.fingerprint, "labels": labels,
                               "recipe": json.dumps(RECIPE, sort_keys=True), "seed": seed})


def train_from_scratch(spec: "BackboneSpec", sample: "Sample", *, device: Any = "auto", seed: int = 0,
                       use_cache: bool = True, progress: Callable[[int, int], None] | None = None,
                       key: str | None = None) -> ScratchResult:
    """Train ``spec``'s architecture from random weights on ``sample`` (module docstring).

    Raises ValueError when the sample has no labels, fewer than 2 classes or a class with fewer
    than 2 images (nothing to hold out). ``key``: :func:`scratch_key`, when the caller has it."""
    y_all = _check_labels(sample, "training from scratch")
    return _cached_train(spec, sample, y_all, key or scratch_key(spec, sample, seed), pretrained=False, device=device,
                         seed=seed, use_cache=use_cache, progress=progress)


def _cached_train(spec, sample, y_all: np.ndarray, key: str, *, pretrained: bool, device, seed: int, use_cache: bool,
                  progress) -> ScratchResult:
    """The cached result under ``key``, else :func:`_train` (then cached)."""
    if use_cache:
        hit = _load(key, pretrained=pretrained)
        if hit is not None:
            if progress is not None:
                progress(1, 1)
            return hit
    out = _train(spec, sample, y_all, device=device, seed=seed, progress=progress, pretrained=pretrained)
    if use_cache:
        _save(key, out)
    return out


_FIELDS = ("accuracy", "n_holdout", "n_train", "epochs", "best_epoch", "seconds")


def _save(key: str, out: ScratchResult) -> None:
    from . import cache

    cache.save_arrays(key, {k: np.asarray(getattr(out, k)) for k in _FIELDS})


def _load(key: str, pretrained: bool) -> ScratchResult | None:
    from . import cache

    hit = cache.load_arrays(key)
    if hit is None or "accuracy" not in hit:
        return None
    return ScratchResult(float(hit["accuracy"]), int(hit["n_holdout"]), int(hit["n_train"]), int(hit["epochs"]),
                         int(hit["best_epoch"]), float(hit["seconds"]), cached=True, pretrained=pretrained)


def _check_labels(sample: "Sample", what: str) -> np.ndarray:
    if sample.labels is None:
        raise ValueError(f"no labels: {what} needs class labels")
    y_all = np.asarray(sample.labels)
    classes, counts = np.unique(y_all, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError(f"{what} needs ≥ 2 classes with ≥ 2 images each")
    return y_all


def finetune_key(spec: "BackboneSpec", sample: "Sample", seed: int) -> str:
    from . import cache
    from .evidence import evidence_ingredients

    labels = hashlib.sha256(np.ascontiguousarray(np.asarray(sample.labels, dtype=np.int64)).data).hexdigest()
    return cache.evidence_key({"finetune": evidence_ingredients(spec, sample, pretrained=True, seed=seed),
                               "labels": labels, "recipe": json.dumps(FINETUNE_RECIPE, sort_keys=True), "seed": seed})


def finetune_on_sample(spec: "BackboneSpec", sample: "Sample", *, device: Any = "auto", seed: int = 0,
                       use_cache: bool = True, progress: Callable[[int, int], None] | None = None) -> ScratchResult:
    """Fine-tune ``spec`` from its pretrained weights on ``sample`` (:data:`FINETUNE_RECIPE`; the
    hold-out is :func:`holdout_split`'s, the from-scratch training's): its best hold-out accuracy.

    Raises ValueError as :func:`train_from_scratch` does."""
    y_all = _check_labels(sample, "fine-tuning on the sample")
    return _cached_train(spec, sample, y_all, finetune_key(spec, sample, seed), pretrained=True, device=device,
                         seed=seed, use_cache=use_cache, progress=progress)


def _train(spec, sample, y_all: np.ndarray, *, device, seed: int, progress, pretrained: bool = False) -> ScratchResult:
    import torch

    from .backbones import open_backbone, resolve_device
    from .evidence import _inputs

    t0 = time.perf_counter()
    if isinstance(device, str):
        device = resolve_device(device)
    _, codes = np.unique(y_all, return_inverse=True)
    n_classes = int(codes.max()) + 1
    tr, ho = holdout_split(codes, seed)
    recipe = FINETUNE_RECIPE if pretrained else RECIPE
    backbone = open_backbone(spec, pretrained=pretrained, device=device, seed=seed)
    dev = backbone.device
    with torch.inference_mode():                   # decoded and preprocessed as the evidence pass does it
        x = torch.cat([batch for _, batch in _inputs(backbone, sample, 64, overlap=False)])
        backbone.model.eval()
        width = int(backbone.model(x[:2].to(dev)).shape[1])  # what it outputs (timm's num_features may differ)
    x = x.clone()                                  # a normal tensor: inference tensors cannot enter autograd
    y = torch.from_numpy(codes.astype(np.int64))
    # seeded, in a forked RNG: the same numbers every time, and the caller's global RNG as it was
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        head = torch.nn.Linear(width, n_classes)
        net = torch.nn.Sequential(backbone.model, head).to(dev)
        groups = ([{"params": backbone.model.parameters(), "lr": recipe["backbone_lr"]},
                   {"params": head.parameters(), "lr": recipe["lr"]}] if pretrained else
                  [{"params": net.parameters(), "lr": recipe["lr"]}])
        best, best_epoch, epochs = _fit(net, x, y, tr, ho, dev, seed, progress, recipe, groups)
    return ScratchResult(best, len(ho), len(tr), epochs, best_epoch, round(time.perf_counter() - t0, 3),
                         pretrained=pretrained)


def _fit(net, x, y, tr: np.ndarray, ho: np.ndarray, dev, seed: int, progress, recipe: dict[str, Any] = RECIPE,
         groups: list[dict] | None = None) -> tuple[float, int, int]:
    """The recipe's training loop; (best hold-out accuracy, its epoch, epochs run). ``groups``:
    the optimiser's parameter groups with their peak learning rates (default: every parameter at
    the recipe's ``lr``)."""
    import torch

    opt = torch.optim.AdamW(groups or [{"params": net.parameters(), "lr": recipe["lr"]}],
                            weight_decay=recipe["weight_decay"])
    peaks = [g["lr"] for g in opt.param_groups]
    bs = recipe["batch"]
    steps_per_epoch = max(1, math.ceil(len(tr) / bs))
    total = recipe["max_epochs"] * steps_per_epoch
    warm = recipe["warmup_epochs"] * steps_per_epoch
    g = torch.Generator().manual_seed(seed)
    best, best_epoch, step, epoch = -1.0, 0, 0, 0
    tr_t = torch.from_numpy(tr)
    for epoch in range(recipe["max_epochs"]):
        net.train()
        perm = tr_t[torch.randperm(len(tr), generator=g)]
        for i in range(0, len(perm), bs):
            frac = (step + 1) / warm if step < warm else \
                0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for pg, peak in zip(opt.param_groups, peaks, strict=True):
                pg["lr"] = peak * frac
            idx = perm[i:i + bs]
            if len(idx) < 2 and len(perm) > 1:      # a batch of one breaks BatchNorm in train mode
                continue
            loss = torch.nn.functional.cross_entropy(net(x[idx].to(dev)), y[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        acc = _accuracy(net, x[ho], y[ho], dev)
        if acc > best:
            best, best_epoch = acc, epoch
        elif epoch + 1 >= recipe["min_epochs"] and epoch - best_epoch >= recipe["patience"]:
            break
        if progress is not None:                   # in images trained on, of the most the recipe allows
            progress((epoch + 1) * len(tr), recipe["max_epochs"] * len(tr))
    if progress is not None:                       # early stopping ends it before the most
        progress(recipe["max_epochs"] * len(tr), recipe["max_epochs"] * len(tr))
    return best, best_epoch, epoch + 1


def _accuracy(net, x, y, dev) -> float:
    import torch

    net.eval()
    with torch.inference_mode():
        pred = torch.cat([net(x[i:i + 256].to(dev)).argmax(1).cpu() for i in range(0, len(x), 256)])
    return float((pred == y).float().mean())


def repeated_value(results: list[ScratchResult], seeds: list[int], higher_is_better: bool) -> "SignalValue":
    """The signal of one or more trainings: one, its hold-out accuracy with the binomial sd; several
    (``--repeats``, each seed its own split), their mean with the sd of that mean: the spread of the
    repeats over √k (it holds the split-to-split variation that one hold-out's binomial sd leaves
    out), but never below the binomial sd of all k hold-outs pooled — with 2–3 repeats the spread is
    itself noisy, and 0 when they happen to agree. The accuracies are in the reason."""
    from .types import SignalValue

    if len(results) == 1:
        return SignalValue(results[0].accuracy, results[0].sd, higher_is_better, results[0].detail())
    acc = np.array([r.accuracy for r in results], dtype=np.float64)
    k = len(acc)
    first = results[0]
    p = float(acc.mean())
    pooled = math.sqrt(max(p * (1 - p), 0.0) / max(k * first.n_holdout, 1))
    sd = max(float(acc.std(ddof=1) / math.sqrt(k)), pooled)
    start = "fine-tuned from the pretrained weights" if first.pretrained else "accuracy from random weights"
    each = ", ".join(f"{a * 100:.0f}" for a in acc)
    reason = (f"{start}: mean of {k} trainings (seeds {seeds[0]}–{seeds[-1]}, each its own stratified "
              f"{first.n_train}/{first.n_holdout} split; best hold-out accuracy of each, early-stopped on it: "
              f"{each} %); sd of the mean {sd * 100:.1f} points")
    return SignalValue(p, sd, higher_is_better, reason)


class ScratchPool:
    """The from-scratch results of one run, one per (control identity, sample): entries of one
    architecture and input configuration share one training."""

    def __init__(self) -> None:
        self._memo: dict[str, ScratchResult | BaseException] = {}
        self.trainings = 0

    def get(self, spec, sample, *, device, seed: int, use_cache: bool, progress=None) -> ScratchResult:
        key = scratch_key(spec, sample, seed)
        if key not in self._memo:
            try:
                res = train_from_scratch(spec, sample, device=device, seed=seed, use_cache=use_cache,
                                         progress=progress, key=key)
                self.trainings += not res.cached
                self._memo[key] = res
            except Exception as exc:   # remembered: the next entry of this architecture gets the same failure
                self._memo[key] = exc.with_traceback(None)   # not its frames (they hold the network, the images)
        got = self._memo[key]
        if isinstance(got, BaseException):
            raise got
        return got


def attach(scored: list[tuple[Any, Any]], sample: "Sample", cfg, *, labels_off: bool = False,
           progress: Callable[[str, int, int], None] | None = None, finetune: bool = False) -> None:
    """Fill in the ``scratch`` signal of every ``(entry, Scored)`` of a run (``--scratch``): one
    training per architecture identity; with ``finetune=True`` the ``finetune`` signal instead
    (``--finetune``): one short fine-tune per candidate. A failure is that signal's reason, never
    the run's."""
    from .signals import SIGNALS
    from .types import SignalValue

    name, what = ("finetune", "fine-tuning on the sample") if finetune else ("scratch", "training from scratch")
    hib = SIGNALS[name].higher_is_better
    if labels_off or sample.labels is None or sample.n_classes < 2:
        return                                   # the placeholder already says why (no labels)
    if np.unique(np.asarray(sample.labels), return_counts=True)[1].min() < 2:
        for _, s in scored:
            s.signals = {**s.signals, name: SignalValue(
                None, None, hib, f"a class has only 1 image: {what} needs ≥ 2 per class "
                                 "(add images or drop that class)")}
        return
    from .backbones import resolve_spec

    pool = None if finetune else ScratchPool()   # fine-tunes are per candidate: nothing to share
    device = cfg.device                          # resolved (torch imported) only when one must train
    k = cfg.repeats
    seeds = [cfg.seed + r for r in range(k)]     # each its own split, head and batch order
    for entry, s in scored:
        t0 = time.perf_counter()
        fresh = True                             # trained (or failed) in this run, not read from the cache
        try:
            spec = resolve_spec(entry)
            results = []
            for r, seed in enumerate(seeds):
                label = f"{entry.id} ({'fine-tuning' if finetune else 'from scratch'}"
                label += f" {r + 1}/{k})" if k > 1 else ")"
                cb = (lambda d, t, label=label: progress(label, d, t)) if progress else None
                if pool is None:
                    results.append(finetune_on_sample(spec, sample, device=device, seed=seed,
                                                      use_cache=cfg.use_cache, progress=cb))
                else:
                    results.append(pool.get(spec, sample, device=device, seed=seed, use_cache=cfg.use_cache,
                                            progress=cb))
            value = repeated_value(results, seeds, hib)
            fresh = not all(res.cached for res in results)
        except Exception as exc:
            logger.warning("%s: %s failed: %s: %s", entry.id, what, exc.__class__.__name__, exc)
            logger.debug("traceback", exc_info=True)
            value = SignalValue(None, None, hib, f"failed: {exc.__class__.__name__}: {exc}")
        s.signals = {**s.signals, name: value}
        s.timings = {**s.timings, f"{name}_s": round(time.perf_counter() - t0, 3)}
        s.cached = s.cached and not fresh
