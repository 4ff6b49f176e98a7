"""Signal results cached with the evidence, so that a fully cached re-run computes no signal,
runs no forward pass and imports no torch.

A record holds one candidate's signals (value, sd, direction, reason), the timings of the run
that computed them, the folds the probe used and whether a control pass ran. It is stored in the
evidence cache (:mod:`proximity.cache`: same folder, same checks and atomic writes) under the
SHA-256 of every ingredient of the result:

* the candidate: its catalog entry (every field: the prior reads its facts) and what pins its
  network without loading it (:func:`candidate_identity`): the timm and transformers versions,
  plus the content of a ``local-dir:`` folder or the pinned commit of a ``hf-hub:`` repo; an
  unpinned Hub repo has no such identity before it is resolved, and is keyed by its resolved
  evidence ingredients instead (:func:`spec_identity`);
* the sample (its fingerprint), the labels, ``--labels none``, folds, seed, whether the control
  was asked for and how it is sampled;
* the reference statistics the candidate could use (every file it may read, by content);
* every signal's name and version, and :data:`SIGNAL_CACHE_VERSION`.

Records are written only for complete results: not when the control pass failed or a signal
failed with an unexpected error (both may not happen again).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import cache

if TYPE_CHECKING:  # pragma: no cover
    from .backbones import BackboneSpec
    from .catalog import CatalogEntry
    from .config import RankConfig
    from .data import Sample

logger = logging.getLogger(__name__)

#: Bump when the content or meaning of a signal record changes.
SIGNAL_CACHE_VERSION = 1
#: The control's batch-norm re-estimation (images, batch) of :mod:`proximity.backbones`, restated
#: here so that a key needs no torch; ``tests/test_signal_cache.py`` checks that they agree.
CONTROL_BN = (256, 64)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def folder_content(folder: Path) -> str:
    """SHA-256 over the names and bytes of the regular files directly in ``folder``."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file():
            h.update(p.name.encode() + b"\0")
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()


def _entry_fields(entry: "CatalogEntry") -> dict[str, Any]:
    d = asdict(entry)
    d["provenance"] = dict(entry.provenance)
    d["path"] = None if entry.path is None else str(entry.path)
    return d


def candidate_identity(entry: "CatalogEntry") -> dict[str, Any] | None:
    """What pins a candidate's network and preprocessing without resolving it (no torch, no Hub
    request), or None when only resolving can tell (an unpinned ``hf-hub:`` repo)."""
    from .catalog import parse_source

    if not entry.loadable:
        return None
    kind, rest = parse_source(entry.source)
    out: dict[str, Any] = {"entry": _entry_fields(entry), "timm": _version("timm"),
                           "transformers": _version("transformers")}
    if kind == "timm":
        return out
    if kind == "local-dir":
        folder = Path(rest)
        if not (folder / "config.json").is_file():
            return None
        return out | {"content": folder_content(folder)}
    from .hub import split_repo

    commit = entry.revision or (split_repo(rest)[1] or "")
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        return out | {"commit": commit}
    return None


def spec_identity(spec: "BackboneSpec") -> dict[str, Any]:
    """A resolved candidate's identity: its entry and its pretrained evidence ingredients."""
    return {"entry": _entry_fields(spec.entry), "revision": spec.revision, "preprocess": spec.preprocess.describe(),
            "truncated_at": spec.truncated_at, "model_kwargs": spec.model_kwargs, "format": spec.format}


def reference_state(entry: "CatalogEntry") -> list[tuple[str, str]]:
    """(path, content hash or 'absent') of every reference file the candidate could read."""
    from .cache import data_dir
    from .reference import _explicit, _safe, hub_reference_path

    if entry.reference:
        paths = [_explicit(entry)]
    else:
        stored = sorted((data_dir() / "reference").glob(f"{_safe(entry.source)}--*.npz"))
        paths = stored + [hub_reference_path(entry.id)]
    out = []
    for p in paths:
        try:
            out.append((str(p), hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "absent"))
        except OSError as exc:
            out.append((str(p), f"unreadable: {exc.__class__.__name__}"))
    return out


def _labels_digest(sample: "Sample") -> str | None:
    if sample.labels is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(sample.labels, dtype=np.int64).tobytes()).hexdigest()


def signal_key(identity: dict[str, Any], entry: "CatalogEntry", sample: "Sample", cfg: "RankConfig",
               *, labels_off: bool) -> str:
    """The cache key of a candidate's signal results (module docstring)."""
    from .scoring import signal_names
    from .signals import signal_versions

    return cache.evidence_key({
        "kind": "signals", "signal_cache_version": SIGNAL_CACHE_VERSION, "candidate": identity,
        "sample": sample.fingerprint, "labels": _labels_digest(sample), "labels_off": labels_off,
        "folds": cfg.folds, "seed": cfg.seed, "control": cfg.control, "control_images": cfg.control_images,
        **({"precision": cfg.precision} if cfg.precision != "float32" else {}),     # float32: earlier keys
        "computed": signal_names(cfg),
        "bn": list(CONTROL_BN), "reference": reference_state(entry),
        "signals": signal_versions()})


def load(key: str) -> dict[str, Any] | None:
    """The record under ``key`` ({signals, timings, k, control_ran, device}), or None."""
    arrays = cache.load_arrays(key)
    if arrays is None or "signal_record" not in arrays:
        return None
    try:
        rec = json.loads(str(arrays["signal_record"]))
        rec["signals"] = {name: _value(v) for name, v in rec["signals"].items()}
        return rec
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("Ignoring a cached signal record that cannot be read (%s): recomputing.", exc)
        return None


def _value(d: dict[str, Any]):
    from .signals import SignalValue

    return SignalValue(d["value"], d["sd"], bool(d["higher_is_better"]), str(d["reason"]))


def save(key: str, *, signals: dict, timings: dict[str, float], k: int | None, control_ran: bool,
         device: str) -> None:
    """Store a record (never raises: an unwritable cache is one warning per run)."""
    rec = {"signals": {name: v.to_dict() for name, v in signals.items()}, "timings": timings, "k": k,
           "control_ran": control_ran, "device": device}
    cache.save_arrays(key, {"signal_record": np.array(json.dumps(rec))})
