"""``hf-hub:ORG/NAME[@REVISION]`` — a repo on the Hugging Face Hub (its ``config.json`` says the
format), pinned to the commit its files were read at."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import CatalogEntry
from .registry import Location, Source, register_source

if TYPE_CHECKING:
    from .spec import BackboneSpec


@dataclass(frozen=True)
class HubRepo:
    """``hf-hub:org/name@rev`` → repo ``org/name``, revision ``rev`` (None when not pinned)."""

    repo: str
    revision: str | None

    @classmethod
    def parse(cls, locator: str) -> HubRepo:
        from ..hub import split_repo

        return cls(*split_repo(locator))


@register_source
class HubSource(Source):
    kind = "hf-hub"
    remote = True
    holds_files = True

    def locate(self, entry: CatalogEntry) -> Location:
        from ..hub import download_config

        ref = HubRepo.parse(entry.locator)
        cfg, commit = download_config(ref.repo, entry.revision or ref.revision)
        return Location(format=self.format_of(entry, cfg), config=cfg, revision=commit,
                        timm_name=f"hf-hub:{ref.repo}@{commit}" if commit else f"hf-hub:{ref.repo}",
                        repo=ref.repo, pin=commit or entry.revision or ref.revision)

    def offline_config(self, entry: CatalogEntry) -> Mapping[str, Any] | None:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(HubRepo.parse(entry.locator).repo, "config.json", revision=entry.revision or None)
        if not isinstance(hit, str) or not Path(hit).is_file():
            return None
        return dict(json.loads(Path(hit).read_text()))

    def load_revision(self, spec: BackboneSpec) -> str | None:
        return spec.revision or None

    def file(self, spec: BackboneSpec, filename: str) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(HubRepo.parse(spec.entry.locator).repo, filename,
                                    revision=self.load_revision(spec)))

    @contextlib.contextmanager
    def reading(self, model: str) -> Iterator[None]:
        from ..hub import hub_errors, offline_unless_reachable

        with hub_errors(model), offline_unless_reachable():
            yield
