"""proximity — which pretrained backbone should I start from for my data?

Scores a catalog of pretrained backbones against a sample of your images (early-layer
statistics, frozen-feature probes, a random-weights control, a static prior) and returns a
ranked list with the evidence and a negative-transfer risk for each candidate.

>>> import proximity
>>> result = proximity.rank("./my_images", models=["timm:resnet18.a1_in1k"])  # doctest: +SKIP
>>> result.best.model, result.to_json()                                       # doctest: +SKIP

Importing the package is cheap (no torch): the names below are imported on first use, so that
the command line can answer Ctrl-C at any moment (see :mod:`proximity.__main__`).
"""

from __future__ import annotations

TYPE_CHECKING = False       # not typing's: importing typing would lengthen the window before Ctrl-C is handled

_LAZY = {
    "__version__": "._version",
    "rank": ".api",
    "Catalog": ".catalog", "CatalogEntry": ".catalog", "load_catalog": ".catalog", "validate_catalog": ".catalog",
    "Sample": ".data", "load_sample": ".data", "sample_from_arrays": ".data",
    "ProximityError": ".errors",
    "Candidate": ".report", "Ranking": ".report", "Failure": ".types",
    "RankConfig": ".config",
}

__all__ = [
    "__version__", "rank", "Ranking", "Candidate", "Failure", "Sample", "load_sample", "sample_from_arrays",
    "Catalog", "CatalogEntry", "load_catalog", "validate_catalog", "ProximityError", "RankConfig",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from typing import Any

    from ._version import __version__
    from .api import rank
    from .catalog import Catalog, CatalogEntry, load_catalog, validate_catalog
    from .config import RankConfig
    from .data import Sample, load_sample, sample_from_arrays
    from .errors import ProximityError
    from .report import Candidate, Ranking
    from .types import Failure


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'proximity' has no attribute '{name}'")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
