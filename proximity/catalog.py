"""The catalog: one TOML file per candidate backbone, validated on load.

An entry file (``catalog/models/resnet18.a1_in1k.toml``)::

    source = "timm:resnet18.a1_in1k"      # timm:NAME | hf-hub:ORG/NAME | local-dir:PATH | external:URL
    name = "ResNet-18, timm A1 recipe"
    revision = ""                          # pinned Hub commit, when known
    format = ""                            # "" (read from config.json) | "timm" | "transformers"

    [pretraining]
    datasets = ["imagenet-1k"]
    domains = ["natural"]                  # tags from catalog/domains.toml
    method = "supervised"                  # supervised | self-supervised | image-text | unknown

    [input]                                # only what differs from the model's own config
    size = 224
    channels = 3

    [facts]
    params_m = 11.7
    license = "apache-2.0"
    gated = false
    imagenet_top1 = 71.5

    [load]
    loadable = true
    reason = ""                            # why not, when loadable = false
    truncated_at = ""                      # last layer kept when cut from a larger network
    family = ""                            # hf-hub repos: timm module (vision_transformer) or transformers
                                           # model_type (dinov2) of its config.json; timm: names need none

    [provenance]                           # where each fact came from
    "facts.imagenet_top1" = "timm results-imagenet.csv (…)"
    checked = "2026-11-26"

The id of an entry is its file name without ``.toml``. Relative ``local-dir:`` paths resolve
against the entry's folder. Named catalogs: ``default`` (``catalog/models`` in this repository,
packaged into the wheel) and ``zoo`` (built by ``proximity zoo build`` in the user data folder).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import CatalogError, CatalogNotFoundError, EntryNotFoundError, UnknownSourceError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Source prefixes a backbone can be loaded from (each has a source in proximity.backbones' registry).
LOADABLE_SOURCES = ("timm", "hf-hub", "local-dir")
#: Every prefix an entry may have; external: catalogued, never loaded (loadable = false).
SOURCES = (*LOADABLE_SOURCES, "external")
METHODS = ("supervised", "self-supervised", "image-text", "unknown")
FORMATS = ("", "timm", "transformers")


@dataclass(frozen=True)
class CatalogEntry:
    """One candidate backbone. Fields are grouped as in the TOML file."""

    # --- identity and source
    id: str                                  # file stem, or the --model string for ad-hoc ones
    source: str                              # "timm:NAME" | "hf-hub:ORG/NAME" | "local-dir:/abs/path"
    name: str = ""                           # human-readable name
    revision: str = ""                       # pinned Hub commit (hf-hub) when known
    format: str = ""                         # "" = read from config.json; "timm" | "transformers"
    # --- pretraining
    datasets: tuple[str, ...] = ()           # pretraining datasets
    domains: tuple[str, ...] = ()            # domain tags (catalog/domains.toml)
    method: str = "unknown"                  # supervised | self-supervised | image-text | unknown
    # --- input overrides (None = the model's own config)
    input_size: int | None = None
    channels: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    # --- facts
    params_m: float | None = None            # parameters, millions
    license: str = ""
    gated: bool = False
    imagenet_top1: float | None = None       # ImageNet-1k top-1 (%), where known
    downloads: int | None = None             # Hub downloads (last 30 days) at the last refresh
    likes: int | None = None                 # Hub likes at the last refresh
    # --- loading
    loadable: bool = True
    load_reason: str = ""                    # why not loadable
    truncated_at: str = ""                   # last kept layer of a truncated network
    family: str = ""                         # hf-hub: the timm module / transformers model_type of config.json
    reference: str = ""                      # reference statistics (.npz), "" = none
    # --- provenance: fact -> where it came from
    provenance: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None                 # the TOML file, None for ad-hoc entries

    @property
    def kind(self) -> str:
        """The source kind: ``timm``, ``hf-hub`` or ``local-dir``."""
        return self.source.split(":", 1)[0]

    @property
    def locator(self) -> str:
        """The part after the source prefix (as :func:`parse_source` reads it)."""
        return self.source.partition(":")[2].strip()

    @property
    def domain(self) -> str:
        """Domain tags joined for display; ``unknown`` when none are recorded."""
        return ",".join(self.domains) if self.domains else "unknown"


# TOML table -> {toml key: dataclass field}
_SCHEMA: dict[str | None, dict[str, str]] = {
    None: {"source": "source", "name": "name", "revision": "revision", "format": "format",
           "reference": "reference"},
    "pretraining": {"datasets": "datasets", "domains": "domains", "method": "method"},
    "input": {"size": "input_size", "channels": "channels", "mean": "mean", "std": "std"},
    "facts": {"params_m": "params_m", "license": "license", "gated": "gated",
              "imagenet_top1": "imagenet_top1", "downloads": "downloads", "likes": "likes"},
    "load": {"loadable": "loadable", "reason": "load_reason", "truncated_at": "truncated_at", "family": "family"},
}
_TYPES: dict[str, tuple[type, ...]] = {
    "source": (str,), "name": (str,), "revision": (str,), "format": (str,), "reference": (str,),
    "datasets": (list,), "domains": (list,), "method": (str,), "input_size": (int,),
    "channels": (int,), "mean": (list,), "std": (list,), "params_m": (int, float),
    "license": (str,), "gated": (bool,), "imagenet_top1": (int, float), "loadable": (bool,),
    "load_reason": (str,), "truncated_at": (str,), "downloads": (int,), "likes": (int,), "family": (str,),
}


def parse_source(model: str) -> tuple[str, str]:
    """Split ``'timm:resnet18'`` into ``('timm', 'resnet18')``; raise UnknownSourceError."""
    kind, sep, rest = model.partition(":")
    if not sep or kind not in SOURCES or not rest.strip():
        raise UnknownSourceError(model, LOADABLE_SOURCES)
    return kind, rest.strip()


def entry_from_mapping(data: Mapping[str, Any], *, entry_id: str, path: Path | None = None) -> CatalogEntry:
    """Validate a parsed TOML mapping and build the entry (raises CatalogError naming the field)."""
    values = _typed_fields(data, path)
    if "source" not in values:
        raise CatalogError("is required (e.g. source = \"timm:resnet18.a1_in1k\")", path=path, field="source")
    try:
        kind, rest = parse_source(values["source"])
    except UnknownSourceError as exc:
        raise CatalogError(str(exc), path=path, field="source") from None
    if kind == "local-dir" and path is not None and not Path(rest).is_absolute():
        values["source"] = f"local-dir:{(path.parent / rest).resolve()}"
    if kind == "external" and values.get("loadable", True):
        raise CatalogError("external: sources name weights proximity cannot load (a foreign library, a release "
                           "outside the Hub); set [load] loadable = false and the reason", path=path, field="source")
    if values.get("method", "unknown") not in METHODS:
        raise CatalogError(f"must be one of {', '.join(METHODS)}", path=path, field="pretraining.method")
    if values.get("format", "") not in FORMATS:
        raise CatalogError("must be 'timm' or 'transformers' (or left out)", path=path, field="format")
    _check_ranges(values, path)
    if values.get("loadable", True) is False and not values.get("load_reason"):
        raise CatalogError("an entry with loadable = false must say why (load.reason)", path=path, field="load.reason")
    prov = data.get("provenance", {})
    if not isinstance(prov, dict) or not all(isinstance(v, str) for v in prov.values()):
        raise CatalogError("must be a table of strings", path=path, field="provenance")
    for key in ("datasets", "domains"):
        if not all(isinstance(v, str) for v in values.get(key, ())):
            raise CatalogError("must be a list of strings", path=path, field=f"pretraining.{key}")
    return CatalogEntry(id=entry_id, provenance=dict(prov), path=path, **values)


def _typed_fields(data: Mapping[str, Any], path: Path | None) -> dict[str, Any]:
    """``{dataclass field: value}`` of the TOML tables, each key known and of its type (lists as tuples)."""
    values: dict[str, Any] = {}
    for table, keys in _SCHEMA.items():
        block = data if table is None else data.get(table, {})
        if table is not None and not isinstance(block, dict):
            raise CatalogError(f"must be a table [{table}]", path=path, field=table)
        allowed = set(keys) | ({t for t in _SCHEMA if t} | {"provenance"} if table is None else set())
        for key in block:
            if key not in allowed:
                raise CatalogError(f"unknown key; valid keys here: {', '.join(sorted(allowed))}",
                                   path=path, field=f"{table + '.' if table else ''}{key}")
        for key, attr in keys.items():
            if key in block:
                value = block[key]
                if not isinstance(value, _TYPES[attr]) or (isinstance(value, bool) and bool not in _TYPES[attr]):
                    raise CatalogError(f"must be of type {'/'.join(t.__name__ for t in _TYPES[attr])}, "
                                       f"got {type(value).__name__}", path=path, field=key)
                values[attr] = tuple(value) if isinstance(value, list) else value
    return values


def _check_ranges(values: Mapping[str, Any], path: Path | None) -> None:
    """Physical ranges, checked like user input: sizes and channels ≥ 1, finite mean, std > 0,
    mean/std of one length (= channels when given), params ≥ 0, top-1 in [0, 100], counts ≥ 0."""
    def bad(key: str, expected: str, got: object) -> CatalogError:
        return CatalogError(f"must be {expected}, got {got!r}", path=path, field=key)

    for attr, key in (("input_size", "input.size"), ("channels", "input.channels")):
        if attr in values and values[attr] < 1:
            raise bad(key, "an integer ≥ 1", values[attr])
    for attr, key in (("downloads", "facts.downloads"), ("likes", "facts.likes")):
        if attr in values and values[attr] < 0:
            raise bad(key, "an integer ≥ 0", values[attr])
    if "params_m" in values and not (math.isfinite(values["params_m"]) and values["params_m"] >= 0):
        raise bad("facts.params_m", "a finite number ≥ 0 (millions of parameters)", values["params_m"])
    top1 = values.get("imagenet_top1")
    if top1 is not None and not (math.isfinite(top1) and 0 <= top1 <= 100):
        raise bad("facts.imagenet_top1", "a percentage in [0, 100]", top1)
    mean, std, channels = values.get("mean"), values.get("std"), values.get("channels")
    for name, vec in (("mean", mean), ("std", std)):
        if vec is None:
            continue
        if not vec or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                              for v in vec):
            raise bad(f"input.{name}", "a non-empty list of finite numbers", list(vec))
        if channels is not None and len(vec) != channels:
            raise bad(f"input.{name}", f"one value per channel ({channels})", list(vec))
    if std is not None and not all(v > 0 for v in std):
        raise bad("input.std", "positive (it divides the pixel values)", list(std))
    if mean is not None and std is not None and len(mean) != len(std):
        raise CatalogError(f"mean has {len(mean)} values but std has {len(std)}: give one per channel",
                           path=path, field="input.std")


def load_entry(path: Path) -> CatalogEntry:
    """Read and validate one TOML entry file; a file that cannot be read is a CatalogError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"is not valid TOML: {exc}", path=path) from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                           "save it as UTF-8", path=path) from None
    except IsADirectoryError:
        raise CatalogError("is a folder, not a TOML file: rename or remove it", path=path) from None
    except FileNotFoundError:
        what = (f"is a symbolic link to '{os.readlink(path)}', which does not exist" if path.is_symlink()
                else "does not exist")
        raise CatalogError(f"{what}: fix or remove it", path=path) from None
    except OSError as exc:
        raise CatalogError(f"cannot be read ({exc.strerror or exc})", path=path) from None
    return entry_from_mapping(data, entry_id=path.stem, path=path)


@dataclass(frozen=True)
class Catalog:
    """A validated set of entries, in file-name order."""

    name: str
    path: Path
    entries: tuple[CatalogEntry, ...]

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def get(self, entry_id: str) -> CatalogEntry:
        for e in self.entries:
            if e.id == entry_id or e.source == entry_id:
                return e
        raise EntryNotFoundError(entry_id, self.ids(), catalog=self.name)


def catalog_root() -> Path:
    """The packaged ``catalog/`` folder (inside the wheel, or the repo's top level when editable)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "_catalog", here.parent / "catalog"):
        if (cand / "domains.toml").is_file():
            return cand
    raise CatalogError("the packaged catalog/ folder is missing; reinstall proximity", path=here)


def named_catalogs() -> dict[str, Path]:
    """Named catalogs and their folders (``zoo`` may not be built yet)."""
    from .cache import data_dir

    return {"default": catalog_root() / "models", "zoo": data_dir() / "zoo" / "catalog"}


def load_catalog(catalog: str | Path = "default") -> Catalog:
    """Load a named catalog (``default``, ``zoo``) or a folder of TOML entries, validating each.

    Raises CatalogNotFoundError for an unknown name/path and CatalogError for an invalid entry.
    """
    named = named_catalogs()
    if isinstance(catalog, str) and catalog in named:
        folder, name = named[catalog], catalog
        if not folder.is_dir() and catalog == "zoo":
            raise CatalogNotFoundError("zoo", list(named), (
                f"The catalog 'zoo' is not built yet (no {folder}). Run `proximity zoo build` "
                "first (it needs `pip install 'proximity[zoo]'`)."))
    else:
        folder, name = Path(catalog), str(catalog)
    if folder.is_file() and folder.suffix == ".toml":
        return Catalog(name=name, path=folder.parent, entries=(load_entry(folder),))
    if not folder.is_dir():
        raise CatalogNotFoundError(str(catalog), list(named))
    files = sorted(p for p in folder.glob("*.toml") if p.name != "domains.toml")
    if not files:
        raise CatalogError("holds no *.toml entries", path=folder)
    return Catalog(name=name, path=folder, entries=tuple(load_entry(p) for p in files))


@lru_cache(maxsize=1)
def domain_tags() -> dict[str, Any]:
    """``catalog/domains.toml``: ``{"domains": {tag: description}, "datasets": {name: [tags]}}``."""
    with open(catalog_root() / "domains.toml", "rb") as fh:
        return tomllib.load(fh)


def validate_catalog(catalog: str | Path = "default") -> list[str]:
    """Load every entry and check it against ``domains.toml``. Returns warnings; raises on errors."""
    cat = load_catalog(catalog)
    tags = domain_tags()
    known_domains, known_datasets = set(tags.get("domains", {})), set(tags.get("datasets", {}))
    warnings = []
    for e in cat:
        if e.kind == "local-dir" and not Path(e.locator).is_dir():
            raise CatalogError(f"the local-dir folder '{e.locator}' does not exist: fix the path, or build it "
                               "(`proximity zoo build` for the zoo)", path=e.path, field="source")
        bad = [d for d in e.domains if d not in known_domains]
        if bad:
            raise CatalogError(f"unknown domain tag(s) {bad}; known: {', '.join(sorted(known_domains))}",
                               path=e.path, field="pretraining.domains")
        for ds in e.datasets:
            if ds not in known_datasets:
                warnings.append(f"{e.id}: dataset '{ds}' is not mapped in domains.toml")
        for fact in ("imagenet_top1", "params_m", "license"):
            if getattr(e, fact) not in (None, "") and not any(k.endswith(fact) for k in e.provenance):
                warnings.append(f"{e.id}: fact '{fact}' has no provenance")
    return warnings


def dump_entry(data: Mapping[str, Any]) -> str:
    """TOML text of an entry (tomli-w): top-level keys, then the tables in schema order, provenance
    last; empty tables are left out."""
    import tomli_w

    tables = [t for t in _SCHEMA if t] + ["provenance"]
    order = tables + [t for t in data if isinstance(data[t], dict) and t not in tables]
    doc = {k: v for k, v in data.items() if not isinstance(v, dict)}
    doc.update({t: data[t] for t in order if isinstance(data.get(t), dict) and data[t]})
    return tomli_w.dumps(doc)


def read_entry_data(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def adhoc_entry(model: str) -> CatalogEntry:
    """An entry for a ``--model`` string given on the command line (no facts, id = the string)."""
    kind, rest = parse_source(model)
    if kind == "external":
        raise UnknownSourceError(model, LOADABLE_SOURCES)
    source = model
    if kind == "local-dir":
        source = f"local-dir:{Path(rest).expanduser().resolve()}"
    return CatalogEntry(id=model, source=source)


def __getattr__(name: str) -> Any:
    """``proximity.catalog.Filters``: it lived here before :mod:`proximity.filters` (imported on
    use, since filters imports this module)."""
    if name == "Filters":
        from .filters import Filters

        return Filters
    raise AttributeError(f"module 'proximity.catalog' has no attribute '{name}'")
