"""proximity — which pretrained backbone should I start from for my data?

Scores a catalog of pretrained backbones against a sample of your images (early-layer
statistics, frozen-feature probes, a random-weights control, a static prior) and returns a
ranked list with the evidence and a negative-transfer risk for each candidate.

>>> import proximity
>>> result = proximity.rank("./my_images", models=["timm:resnet18.a1_in1k"])  # doctest: +SKIP
>>> result.best.model, result.to_json()                                       # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import rank
from .catalog import Catalog, CatalogEntry, load_catalog, validate_catalog
from .data import Sample, load_sample, sample_from_arrays
from .errors import ProximityError
from .report import Candidate, Failure, Ranking

__all__ = [
    "__version__", "rank", "Ranking", "Candidate", "Failure", "Sample", "load_sample", "sample_from_arrays",
    "Catalog", "CatalogEntry", "load_catalog", "validate_catalog", "ProximityError",
]
