"""User folders and the on-disk evidence cache.

* cache: ``$PROXIMITY_CACHE_DIR``, else ``$XDG_CACHE_HOME/proximity``, else ``~/.cache/proximity``;
* data (zoo, reference statistics): ``$PROXIMITY_DATA_DIR``, else ``$XDG_DATA_HOME/proximity``,
  else ``~/.local/share/proximity``.

Never inside the installed package. Evidence files are ``.npz`` named by the SHA-256 of their
key, which is built from every ingredient (see :func:`evidence_key`); a file that cannot be read
is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

logger = logging.getLogger(__name__)

#: Bump when the content or meaning of cached evidence changes.
EVIDENCE_VERSION = 2


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


def load_arrays(key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays for ``key``, or None on a miss (or an unreadable file)."""
    path = _path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # truncated or foreign: recompute
        logger.warning("Ignoring unreadable cache file %s: %s", path, exc)
        return None


def save_arrays(key: str, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write atomically (temp file + rename), so an interrupted run never leaves half a file."""
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
