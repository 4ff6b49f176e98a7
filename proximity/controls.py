"""The random-weights control, shared: one pass per (architecture, input configuration) and sample.

Random weights do not depend on *which* checkpoint of an architecture a catalog entry names —
only on the network that is built and the preprocessing its images go through. So the control
evidence is keyed by :func:`control_identity` instead of the entry's source and revision: six
catalog entries that are fine-tuned ``resnet50``\\ s with one preprocessing share one control
pass, within a run (:class:`ControlPool`, also with ``--no-cache``) and across runs (the
evidence cache).

The identity holds what decides the random network, as timm builds it
(``timm.models._builder._update_default_model_kwargs``): the architecture, the repo's
``model_args`` (less ``num_classes``: the pooled network is always built with ``num_classes=0``),
proximity's own model kwargs, the pretrained configuration's defaults for ``global_pool``,
``in_chans`` and — for fixed-input-size models — ``img_size``, the truncation point, and the
preprocessing (``Preprocess.describe()``). A transformers model is built from its whole
``config.json``, so that is its identity. ``tests/test_controls.py`` checks that entries with
one identity get bit-identical random networks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .backbones import BackboneSpec
    from .data import Sample
    from .evidence import Evidence


def _repo_config(spec: "BackboneSpec") -> dict[str, Any]:
    """The config.json of a hf-hub: / local-dir: repo ({} for a timm: name)."""
    kind = spec.entry.kind
    if kind == "local-dir":
        with open(Path(spec.entry.locator) / "config.json", encoding="utf-8") as fh:
            return json.load(fh)
    if kind == "hf-hub":
        from .hub import download_config, split_repo

        repo, pinned = split_repo(spec.entry.locator)
        return download_config(repo, spec.revision or spec.entry.revision or pinned)[0]
    return {}


def control_identity(spec: "BackboneSpec") -> dict[str, Any]:
    """What decides the random-weights network of ``spec`` and its inputs (module docstring)."""
    cfg = _repo_config(spec)
    if spec.format == "transformers":
        blob = json.dumps(cfg, sort_keys=True, default=str).encode()
        return {"format": "transformers", "config": hashlib.sha256(blob).hexdigest(),
                "preprocess": spec.preprocess.describe()}
    if spec.entry.kind == "timm":
        from timm.models import get_pretrained_cfg

        found = get_pretrained_cfg(spec.create_name)
        pcfg = found.to_dict() if found is not None else {}
    else:
        pcfg = dict(cfg.get("pretrained_cfg")
                    or {k: v for k, v in cfg.items() if k not in ("architecture", "model_args")})
    args = {k: v for k, v in (cfg.get("model_args") or {}).items() if k != "num_classes"}
    size = pcfg.get("input_size")
    defaults = {"global_pool": pcfg.get("global_pool"), "in_chans": size[0] if size else None,
                "img_size": list(size[-2:]) if size and pcfg.get("fixed_input_size") else None}
    return {"format": spec.format, "architecture": spec.architecture, "model_args": args,
            "model_kwargs": spec.model_kwargs, "defaults": defaults, "truncated_at": spec.truncated_at,
            "preprocess": spec.preprocess.describe()}


class ControlPool:
    """The random-weights evidence of one run, one per (identity, sample): a second entry with
    the same identity gets the first one's pass (from memory, also with ``use_cache=False``)."""

    def __init__(self, given: "Evidence | BaseException | None" = None) -> None:
        self._memo: dict[str, "Evidence"] = {}
        self._given = given              # computed elsewhere (a Ray control task): returned, or raised
        self.passes = 0                  # control passes run (not served from memory or the cache)

    def get(self, spec: "BackboneSpec", sample: "Sample", *, device, batch_size: int, seed: int, use_cache: bool,
            progress: Callable[[int, int], None] | None = None, precision: str = "float32") -> "Evidence":
        """The control evidence of ``spec`` on ``sample`` (see :func:`proximity.evidence.collect_evidence`)."""
        if isinstance(self._given, BaseException):
            raise self._given
        if self._given is not None:
            if progress is not None:
                progress(sample.n, sample.n)
            return self._given
        from . import cache
        from .evidence import collect_evidence, evidence_ingredients

        key = cache.evidence_key(evidence_ingredients(spec, sample, pretrained=False, seed=seed, precision=precision))
        if key in self._memo:
            if progress is not None:
                progress(sample.n, sample.n)
            return self._memo[key]
        ev = collect_evidence(spec, sample, pretrained=False, device=device, batch_size=batch_size, seed=seed,
                              use_cache=use_cache, progress=progress, precision=precision)
        self.passes += not ev.cached
        self._memo[key] = ev
        return ev
