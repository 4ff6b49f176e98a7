"""The version of proximity, read from the installed package's metadata (``pyproject.toml``'s
``version`` is the one place it is written).

A leaf module: only the standard library, so that any module of the package can take the
version from here instead of from the package ``__init__`` (which would import upward).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: What a source tree that is not installed reports (``PYTHONPATH=… python -m proximity``).
UNKNOWN = "0+unknown"

try:
    __version__ = version("proximity")
except PackageNotFoundError:  # pragma: no cover - only in an uninstalled source tree
    __version__ = UNKNOWN
