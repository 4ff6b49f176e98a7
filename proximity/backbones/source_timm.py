"""``timm:NAME[.TAG]`` — a model of timm's own registry, weights from timm's pretrained config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..catalog import CatalogEntry
from ..errors import ModelNotFoundError
from .registry import Location, Source, register_source


@dataclass(frozen=True)
class TimmName:
    """``timm:resnet18.a1_in1k`` → name ``resnet18.a1_in1k``, architecture ``resnet18``, tag ``a1_in1k``."""

    name: str
    architecture: str
    tag: str

    @classmethod
    def parse(cls, locator: str) -> TimmName:
        from timm.models import split_model_name_tag

        arch, tag = split_model_name_tag(locator)
        return cls(locator, arch, tag)


@register_source
class TimmSource(Source):
    """Pinned by the installed timm's version and the name (timm's pretrained configs are code)."""

    kind = "timm"
    remote = True
    holds_files = False

    def locate(self, entry: CatalogEntry) -> Location:
        import timm
        from timm.models import get_pretrained_cfg

        ref = TimmName.parse(entry.locator)
        if not timm.is_model(ref.architecture):
            close = timm.list_models(f"*{ref.architecture.split('_')[0]}*")[:6]
            hint = f"; similar timm models: {', '.join(close)}" if close else ""
            raise ModelNotFoundError(entry.id, f"timm has no architecture '{ref.architecture}'{hint}")
        try:
            cfg = get_pretrained_cfg(ref.name) if ref.tag else get_pretrained_cfg(ref.architecture)
        except RuntimeError:  # timm: invalid tag for a known architecture
            cfg = None
        if cfg is None:
            tags = timm.list_pretrained(f"{ref.architecture}.*")[:6]
            raise ModelNotFoundError(entry.id, f"timm has no pretrained weights '{ref.name}'; "
                                     f"available: {', '.join(tags) or 'none'}")
        return Location(format="timm", config={"architecture": ref.architecture, "pretrained_cfg": cfg.to_dict()},
                        revision=f"timm=={timm.__version__}:{ref.name}", timm_name=ref.name)

    def offline_config(self, entry: CatalogEntry) -> Mapping[str, Any] | None:
        return {"architecture": entry.locator.split(".")[0]}

    def format_of(self, entry: CatalogEntry, config: Mapping[str, Any]) -> str:
        return "timm"
