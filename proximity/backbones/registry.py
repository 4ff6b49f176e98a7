"""The two registries of the build path, filled by decorators as timm's model registry is:

* a **source** (``timm:``, ``hf-hub:``, ``local-dir:``) knows where a backbone's files are: it
  parses the part after its prefix into its own typed config, finds the model's configuration
  and pins a revision (:meth:`Source.locate`, no weights), and hands out files;
* a **format** (``timm``, ``transformers``) knows how to read that configuration into a
  :class:`~proximity.backbones.spec.BackboneSpec` and how to build the network.

Any source can hold any format (an ``hf-hub:`` or ``local-dir:`` repo says which in its
``config.json``). A new source or format is one module with one decorated class (imported by
``proximity/backbones/__init__.py``); nothing else dispatches on a source kind.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, ContextManager, TypeVar

from ..catalog import CatalogEntry
from ..errors import UnsupportedModelError

if TYPE_CHECKING:
    from torch import nn

    from .spec import BackboneSpec


@dataclass(frozen=True)
class Location:
    """Where a backbone is, as its source found it (no weights loaded)."""

    format: str                     # the format that reads it ("" when its config.json names none)
    config: Mapping[str, Any]       # config.json; for timm: names, {"architecture", "pretrained_cfg"} from timm
    revision: str                   # what the cache key pins: Hub commit, timm version + name, content hash
    timm_name: str                  # what timm.create_model loads: "resnet18.a1_in1k", "hf-hub:O/N@SHA", "local-dir:P"
    repo: str = ""                  # what transformers' from_pretrained loads: a Hub repo id or a folder
    pin: str | None = None          # the revision handed to from_pretrained while resolving (None: a folder)


class Source(ABC):
    """Where backbones of one source kind live (see the module docstring)."""

    kind: ClassVar[str]             # the prefix in ``source = "KIND:..."``
    remote: ClassVar[bool]          # reads the Hugging Face Hub (so: offline unless it is reachable)
    holds_files: ClassVar[bool]     # a repo of files (a truncated network's weights can live there)

    @abstractmethod
    def locate(self, entry: CatalogEntry) -> Location:
        """Find the model's configuration and pin a revision, without loading weights.
        Raises ModelNotFoundError, GatedModelError, HubUnavailableError or UnsupportedModelError."""

    @abstractmethod
    def offline_config(self, entry: CatalogEntry) -> Mapping[str, Any] | None:
        """The model's configuration if it is known without the network, else None."""

    def format_of(self, entry: CatalogEntry, config: Mapping[str, Any]) -> str:
        """``timm`` / ``transformers`` / ``""`` (unknown): the entry's ``format``, else what its
        ``config.json`` says (``architecture`` → timm, ``model_type`` → transformers)."""
        if entry.format:
            return entry.format
        return "timm" if "architecture" in config else "transformers" if "model_type" in config else ""

    def load_revision(self, spec: BackboneSpec) -> str | None:
        """The revision to hand to loaders (from_pretrained, hf_hub_download); None for files on disk."""
        return None

    def file(self, spec: BackboneSpec, filename: str) -> Path:
        """A file of the model's repo on disk (downloaded when remote)."""
        raise UnsupportedModelError(spec.entry.id, f"a {self.kind}: source holds no repo files ('{filename}')")

    def reading(self, model: str) -> ContextManager[Any]:
        """The context in which this source's files are read (Hub errors mapped, offline when unreachable)."""
        return contextlib.nullcontext()


class Format(ABC):
    """How backbones of one format are resolved and built (see the module docstring)."""

    name: ClassVar[str]

    @abstractmethod
    def spec(self, entry: CatalogEntry, where: Location, source: Source) -> BackboneSpec:
        """The spec: preprocessing from the model's own config, the entry's overrides on top."""

    @abstractmethod
    def build(self, spec: BackboneSpec, source: Source, pretrained: bool) -> nn.Module:
        """The network, pooled output (N, d), no classifier; random weights when not ``pretrained``."""

    def meta_model(self, entry: CatalogEntry, config: Mapping[str, Any]) -> nn.Module | None:
        """The network on the meta device (no weights, no memory) from its config, or None when this
        format cannot build one offline."""
        return None


SOURCES: dict[str, Source] = {}
FORMATS: dict[str, Format] = {}
S = TypeVar("S", bound=type[Source])
F = TypeVar("F", bound=type[Format])


def register_source(cls: S) -> S:
    """Class decorator: register one instance of a :class:`Source` under its ``kind``."""
    if cls.kind in SOURCES:
        raise ValueError(f"source '{cls.kind}' is already registered")
    SOURCES[cls.kind] = cls()
    return cls


def register_format(cls: F) -> F:
    """Class decorator: register one instance of a :class:`Format` under its ``name``."""
    if cls.name in FORMATS:
        raise ValueError(f"format '{cls.name}' is already registered")
    FORMATS[cls.name] = cls()
    return cls


def get_source(entry: CatalogEntry) -> Source:
    """The source of ``entry``; UnsupportedModelError naming the ones there are."""
    try:
        return SOURCES[entry.kind]
    except KeyError:
        raise UnsupportedModelError(entry.id, f"proximity cannot load '{entry.kind}:' sources; it loads "
                                    f"{', '.join(k + ':' for k in SOURCES)}") from None


def get_format(name: str, entry: CatalogEntry) -> Format:
    """The format ``name`` (from :meth:`Source.format_of`); UnsupportedModelError when there is none."""
    if not name:
        raise UnsupportedModelError(entry.id,
                                    "config.json names neither a timm 'architecture' nor a transformers 'model_type'")
    try:
        return FORMATS[name]
    except KeyError:
        raise UnsupportedModelError(entry.id, f"no format '{name}'; proximity reads {', '.join(FORMATS)}") from None
