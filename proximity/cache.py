"""User folders and the on-disk evidence cache.

* cache: ``$PROXIMITY_CACHE_DIR``, else ``$XDG_CACHE_HOME/proximity``, else ``~/.cache/proximity``;
* data (zoo, reference statistics): ``$PROXIMITY_DATA_DIR``, else ``$XDG_DATA_HOME/proximity``,
  else ``~/.local/share/proximity``.

Never inside the installed package. Evidence files are ``.npz`` named by the SHA-256 of their
key, which is built from every ingredient (see :func:`evidence_key`).

The cache is an optimisation, never a fault:

* each file records its own key and a SHA-256 of its arrays (``__meta__``); a file whose key or
  checksum does not match, that holds non-finite values, or that cannot be read at all is
  ignored with one warning in proximity's words and recomputed (then overwritten);
* a cache that cannot be written (read-only, full, a path under a file) gives **one** warning per
  run and the run goes on without caching, with the same results;
* files are written atomically (:func:`proximity.fileio.atomic_write`, mode 0o666 minus the
  umask); temporary files left by a killed save are removed once they are
  :data:`~proximity.fileio.STALE_TMP_SECONDS` old.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .fileio import atomic_write, remove_stale_tmp

logger = logging.getLogger(__name__)

#: Bump when the content or meaning of cached evidence changes (3: files carry key and checksum).
EVIDENCE_VERSION = 3
_META = "__meta__"


def cache_dir() -> Path:
    env = os.environ.get("PROXIMITY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "proximity"


def data_dir() -> Path:
    env = os.environ.get("PROXIMITY_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "proximity"


def evidence_key(ingredients: Mapping[str, Any]) -> str:
    """SHA-256 of the JSON of every ingredient (sorted keys), with the evidence version."""
    blob = json.dumps({"evidence_version": EVIDENCE_VERSION, **ingredients}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _path(key: str) -> Path:
    return cache_dir() / "evidence" / key[:2] / f"{key}.npz"


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class _Run:
    """Per-run state: the cache folder that could not be written (one warning, then no more attempts
    on it) and whether stale temporary files were looked for."""

    unwritable: Path | None = None
    swept: bool = False


def new_run() -> None:
    """Forget the previous run's write failure (called at the start of :func:`proximity.rank`)."""
    _Run.unwritable, _Run.swept = None, False


def load_arrays(key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays for ``key``, or None on a miss or a file that cannot be trusted."""
    path = _path(key)
    try:
        if not path.is_file():
            return None
        arrays, problem = _read(path, key)
    except OSError as exc:
        logger.warning("Cannot read the cache file %s (%s): recomputing.", path, exc.strerror or exc)
        return None
    if problem:
        logger.warning("Ignoring the cache file %s: %s; recomputing it.", path, problem)
        return None
    return arrays


def _read(path: Path, key: str) -> tuple[dict[str, np.ndarray] | None, str]:
    """(arrays, "") for a file that checks out, else (None, the problem in proximity's words).
    Raises OSError only when the file cannot be opened or read."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"PK":
            return None, "it is not a proximity cache file (not an .npz archive)"
        fh.seek(0)
        try:
            with np.load(fh, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile):
            return None, "it is damaged (truncated, or not a proximity cache file)"
    meta_raw = arrays.pop(_META, None)
    try:
        meta = json.loads(str(meta_raw)) if meta_raw is not None and meta_raw.dtype.kind == "U" else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        return None, "it records no key and checksum (not written by this version of proximity)"
    if meta.get("key") != key:
        return None, "it was written for another key (copied or renamed)"
    if meta.get("sha256") != checksum(arrays):
        return None, "its content does not match its checksum"
    bad = sorted(k for k, a in arrays.items() if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all())
    if bad:
        return None, f"it holds non-finite values (in {', '.join(bad[:3])})"
    return arrays, ""


def save_arrays(key: str, arrays: Mapping[str, np.ndarray]) -> Path | None:
    """Store ``arrays`` under ``key`` with their key and checksum; the path, or None when the cache
    cannot be written (one warning per run, no exception: the run goes on without caching)."""
    if _Run.unwritable is not None and _Run.unwritable == cache_dir():
        return None
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _Run.swept:                      # once per run: leftovers of killed saves
            _Run.swept = True
            for shard in path.parent.parent.glob("??"):
                remove_stale_tmp(shard)
        buf = io.BytesIO()
        meta = json.dumps({"key": key, "sha256": checksum(arrays)})
        payload: dict[str, Any] = {**arrays, _META: np.array(meta)}
        np.savez(buf, **payload)
        atomic_write(path, buf.getvalue())
    except OSError as exc:
        _Run.unwritable = cache_dir()
        logger.warning("The evidence cache in %s cannot be written (%s): this run goes on without caching. "
                       "Set PROXIMITY_CACHE_DIR to a writable folder, or pass --no-cache.",
                       cache_dir(), exc.strerror or exc)
        return None
    return path
