"""Evidence: everything every signal needs, from **one** forward pass per (backbone, weights).

Collected per image:

* pooled features, ``features`` of shape (n, d), float32;
* at each early BN layer *l* (see :mod:`proximity.backbones`), the per-channel mean and variance
  of the layer's **input** over the spatial positions of that image, float64, shape (n, C_l);
  for a network without early BN, the same of the **outputs** of its first two ``feature_info``
  modules (over positions, or over tokens for a ViT).
  All images share one input size, so the pooled moments over the sample are exact:
  ``μ = mean_i m_i`` and ``σ² = mean_i v_i + var_i m_i`` — and they can be bootstrapped over
  images for an uncertainty. Memory is n × (d + 2 Σ_l C_l) numbers: no growth beyond that.
* the layers' source statistics (``running_mean``, ``running_var``), recorded as they are.

Evidence is cached on disk (:mod:`proximity.cache`), keyed by the backbone source, revision,
preprocessing, weights (pretrained, or random with seed), sample fingerprint and batch-norm
re-estimation size, so a re-run performs no forward pass. The random-weights control is keyed by
what decides the random network instead of the checkpoint (:func:`proximity.controls.control_identity`),
so that entries of one architecture and preprocessing share it; no signal reads its early-layer
moments, so its pass collects the pooled features only.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from . import cache
from .backbones import (BN_REESTIMATE_BATCH, BN_REESTIMATE_IMAGES, Backbone, BackboneSpec, autocast_dtype,
                        open_backbone, reestimate_batchnorm)
from .data import Sample
from .errors import ForwardError, NumericalError

Progress = Callable[[int, int], None]


@dataclass
class Evidence:
    """The outcome of one evidence pass. See the module docstring for shapes."""

    features: np.ndarray                    # (n, d) float32
    layer_names: list[str]
    image_means: list[np.ndarray]           # per layer (n, C_l) float64
    image_vars: list[np.ndarray]            # per layer (n, C_l) float64
    source_means: list[np.ndarray]          # per layer (C_l,) BN running_mean
    source_vars: list[np.ndarray]           # per layer (C_l,) BN running_var
    seconds: float                          # wall time of the pass that computed it (kept in the cache)
    cached: bool = False
    n_params: int | None = None             # parameters of the network that produced it (as loaded, truncated)

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    def layer_moments(self, layer: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pooled per-channel (mean, variance) of layer ``layer`` over images ``rows`` (all by default)."""
        m = self.image_means[layer] if rows is None else self.image_means[layer][rows]
        v = self.image_vars[layer] if rows is None else self.image_vars[layer][rows]
        return m.mean(0), v.mean(0) + m.var(0)

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"features": self.features, "layer_names": np.array(self.layer_names, dtype=str),
                  "seconds": np.array(self.seconds)}
        if self.n_params is not None:
            arrays["n_params"] = np.array(self.n_params, dtype=np.int64)
        for i in range(len(self.layer_names)):
            arrays.update({f"im_{i}": self.image_means[i], f"iv_{i}": self.image_vars[i],
                           f"sm_{i}": self.source_means[i], f"sv_{i}": self.source_vars[i]})
        return arrays

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "Evidence":
        names = [str(x) for x in a["layer_names"]]
        r = range(len(names))
        return cls(features=a["features"], layer_names=names,
                   image_means=[a[f"im_{i}"] for i in r], image_vars=[a[f"iv_{i}"] for i in r],
                   source_means=[a[f"sm_{i}"] for i in r], source_vars=[a[f"sv_{i}"] for i in r],
                   seconds=float(a["seconds"]), cached=True,
                   n_params=int(a["n_params"]) if "n_params" in a else None)


def evidence_ingredients(spec: BackboneSpec, sample: Sample, *, pretrained: bool, seed: int,
                         precision: str = "float32") -> dict:
    """Every ingredient of the evidence cache key (``precision`` only when not float32: the keys
    of float32 evidence are those of earlier versions)."""
    amp = {"precision": precision} if precision != "float32" else {}
    if not pretrained:
        from .controls import control_identity

        return {"control": control_identity(spec), "moments": False, "sample": sample.fingerprint,
                "weights": f"random:seed={seed}:bn={BN_REESTIMATE_IMAGES}x{BN_REESTIMATE_BATCH}", **amp}
    return {"source": spec.entry.source, "revision": spec.revision, "preprocess": spec.preprocess.describe(),
            "truncated_at": spec.truncated_at, "model_kwargs": spec.model_kwargs,
            "weights": ("pretrained" if pretrained
                        else f"random:seed={seed}:bn={BN_REESTIMATE_IMAGES}x{BN_REESTIMATE_BATCH}"),
            "sample": sample.fingerprint, "evidence": 2,     # 2: the parameter count is part of the evidence
            **amp}


def collect_evidence(
    spec: BackboneSpec,
    sample: Sample,
    *,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    seed: int = 0,
    use_cache: bool = True,
    progress: Progress | None = None,
    precision: str = "float32",
) -> Evidence:
    """Return the evidence for ``spec`` on ``sample``, from the cache or from one forward pass.

    With ``pretrained=False`` this is the random-weights control: timm's initialisation under
    ``seed``, BN statistics first re-estimated on up to ``BN_REESTIMATE_IMAGES`` sample images in
    a seeded random order (batches of ``BN_REESTIMATE_BATCH``, never class-sorted), averaged over
    batches as ``torch.optim.swa_utils.update_bn`` does.
    """
    dev = torch.device(device)
    amp = autocast_dtype(precision, dev)        # an unsupported combination is refused before any work
    key = cache.evidence_key(evidence_ingredients(spec, sample, pretrained=pretrained, seed=seed, precision=precision))
    if use_cache:
        hit = cache.load_arrays(key)
        try:
            ev = Evidence.from_arrays(hit) if hit is not None else None
        except (KeyError, ValueError, TypeError, IndexError):  # a file of another layout under this key: recompute
            ev = None
        if ev is not None:
            if ev.n == sample.n:
                if progress is not None:
                    progress(sample.n, sample.n)
                return ev
    start = time.perf_counter()
    backbone = open_backbone(spec, pretrained=pretrained, device=dev, seed=seed)
    with torch.autocast(dev.type, dtype=amp) if amp is not None else contextlib.nullcontext():
        if not pretrained:   # contiguous: train-mode BN's channels-last sums depend on the thread count
            sub = _subsample(sample, BN_REESTIMATE_IMAGES, seed)
            reestimate_batchnorm(backbone, (spec.preprocess(b) for b in sub.batches(BN_REESTIMATE_BATCH)))
        backbone.use_channels_last()
        try:
            ev = forward_pass(backbone, sample, batch_size=batch_size, progress=progress, moments=pretrained)
        except Exception as exc:  # reported at the 'forward' stage (ForwardError.stage)
            raise ForwardError(spec.entry.id, exc) from exc
    ev.seconds = time.perf_counter() - start
    if use_cache:
        cache.save_arrays(key, ev.to_arrays())   # never raises: an unwritable cache is one warning
    return ev


def _subsample(sample: Sample, n: int, seed: int) -> Sample:
    """Up to ``n`` images in a seeded random order (a sorted sample would give class-pure batches)."""
    idx = np.random.default_rng(seed).permutation(sample.n)[:n]
    return Sample(root=sample.root, paths=[sample.paths[i] for i in idx], images=[sample.images[i] for i in idx],
                  labels=None, class_names=[], intensity=sample.intensity)


@torch.inference_mode()
def forward_pass(backbone: Backbone, sample: Sample, *, batch_size: int = 32,
                 progress: Progress | None = None, moments: bool = True, overlap: bool | None = None) -> Evidence:
    """The single forward pass: pooled features + per-image moments at the early BN inputs
    (``moments=False``: the pooled features only, no early layers). ``overlap``: decode and
    preprocess the next batch in a thread while the model runs this one (:func:`_inputs`; default:
    on an accelerator, where the model does not need the CPU's cores)."""
    bn = bool(backbone.early_layers)
    layers = (backbone.early_layers if bn else backbone.early_modules) if moments else []
    means: list[list[torch.Tensor]] = [[] for _ in layers]
    vars_: list[list[torch.Tensor]] = [[] for _ in layers]

    unusable: set[int] = set()

    def record(i: int, x) -> None:
        """Per-image, per-channel moments; a layout it cannot read drops the layer (never raises)."""
        if isinstance(x, (tuple, list)):
            x = next((t for t in x if isinstance(t, torch.Tensor)), None)
        dims = _reduce_dims(x, None if bn else backbone.early_channels.get(layers[i][0]))
        if dims is None:
            unusable.add(i)
            return
        v, m = channel_moments(x, dims)
        means[i].append(m.double().reshape(m.shape[0], -1).cpu())
        vars_[i].append(v.double().reshape(v.shape[0], -1).cpu())

    if bn:
        handles = [m.register_forward_pre_hook(lambda mod, inp, i=i: record(i, inp[0]))
                   for i, (_, m) in enumerate(layers)]
    else:
        handles = [m.register_forward_hook(lambda mod, inp, out, i=i: record(i, out))
                   for i, (_, m) in enumerate(layers)]
    feats, done = [], 0
    try:
        for n, x in _inputs(backbone, sample, batch_size, backbone.device.type != "cpu" if overlap is None
                            else overlap):
            f = backbone.features(x)
            feats.append(f.float().cpu().numpy())
            done += n
            if progress is not None:
                progress(done, sample.n)
    finally:
        for h in handles:
            h.remove()
    features = np.concatenate(feats, axis=0)
    keep = [i for i in range(len(layers)) if i not in unusable and means[i]]
    layers, means, vars_ = [layers[i] for i in keep], [means[i] for i in keep], [vars_[i] for i in keep]
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=1).sum())
        raise NumericalError(f"{backbone.spec.entry.id}: non-finite pooled features for {bad} image(s)", "nan/inf")
    return Evidence(
        features=features, layer_names=[n for n, _ in layers],
        image_means=[torch.cat(m).numpy() for m in means], image_vars=[torch.cat(v).numpy() for v in vars_],
        source_means=[_running(m, "running_mean") for _, m in layers],
        source_vars=[_running(m, "running_var") for _, m in layers],
        seconds=0.0, n_params=sum(p.numel() for p in backbone.model.parameters()),
    )


def _inputs(backbone: Backbone, sample: Sample, batch_size: int, overlap: bool) -> Iterator[tuple[int, torch.Tensor]]:
    """(images, preprocessed batch) in order. With ``overlap``, one worker thread decodes and
    preprocesses batch k + 1 (into pinned memory for CUDA, so the copy to the device can run
    asynchronously) while the caller runs the model on batch k: torch's kernels release the GIL,
    so the two proceed together. The batches and their order are the same either way."""
    prep = backbone.spec.preprocess
    starts = range(0, sample.n, batch_size)
    pin = backbone.device.type == "cuda"

    def make(start: int) -> tuple[int, torch.Tensor]:
        x = prep([sample.as_float(i) for i in range(start, min(start + batch_size, sample.n))])
        return x.shape[0], (x.pin_memory() if pin else x)

    if not overlap:
        yield from (make(s) for s in starts)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="proximity-prefetch") as pool:
        pending = [pool.submit(make, s) for s in starts[:1]]
        for s in starts[1:]:
            pending.append(pool.submit(make, s))      # the next batch, while this one runs
            yield pending.pop(0).result()
        yield from (f.result() for f in pending)


def _running(module, attr: str) -> np.ndarray:
    """A BN layer's running statistic; empty for a non-BN module (its reference comes from a file)."""
    value = getattr(module, attr, None)
    return value.double().cpu().numpy() if isinstance(value, torch.Tensor) else np.zeros(0)


def channel_moments(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(variance, mean) over ``dims`` in float32, keeping one value per (image, channel).

    Two passes — the mean, then the norm of the centred values —: as exact as ``torch.var_mean``
    (relative 1e-6, also for a mean 500× the sd, where E[x²] − E[x]² loses it) at about 0.6× its
    time on CPU; these early layers hold the network's largest activations.
    """
    xf = x.float()
    count = math.prod(xf.shape[d] for d in dims)
    if dims == (2, 3) and xf.ndim == 4 and xf.shape[1] > 1 and xf.is_contiguous(memory_format=torch.channels_last):
        # A channels-last (N, C, H, W) tensor is (N, H·W, C) in memory: there torch's reductions
        # over H, W stride across channels (2.5× the contiguous time); one batched product with a
        # column of 1/(H·W) per pass is contiguous.
        n, c = xf.shape[:2]
        y = xf.permute(0, 2, 3, 1).reshape(n, count, c)                  # a view, no copy
        w = torch.full((n, 1, count), 1.0 / count, dtype=xf.dtype, device=xf.device)
        m = torch.bmm(w, y)                                                 # (N, 1, C)
        d = y - m
        md = torch.bmm(w, d)                # what the float32 sum of the mean missed (corrected two-pass)
        v = torch.bmm(w, d.mul_(d)).sub_(md * md)
        return v.reshape(n, c), (m + md).reshape(n, c, 1, 1)
    m = xf.mean(dim=dims, keepdim=True)
    return torch.linalg.vector_norm(xf - m, dim=dims).square_() / count, m


def _reduce_dims(x, channels: int | None) -> tuple[int, ...] | None:
    """Axes to average over so that one value per (image, channel) remains, or None when the
    layout cannot be read: (N, C, H, W) → (2, 3); channels-last (N, H, W, C) → (1, 2);
    tokens (N, L, C) → (1,). With ``channels`` known (feature_info), the channel axis is found
    by its size; BN inputs are always (N, C, H, W)."""
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        return None
    if channels is None:
        return (2, 3) if x.ndim == 4 else (1,)
    if x.ndim == 4:
        return (2, 3) if x.shape[1] == channels else (1, 2) if x.shape[3] == channels else None
    return (1,) if x.shape[2] == channels else (2,) if x.shape[1] == channels else None
