"""``local-dir:PATH`` — a folder laid out as a Hub repo (``config.json`` and the weights), for
air-gapped use; pinned by a hash of the contents of its files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import CatalogEntry
from ..errors import ModelNotFoundError
from ..fileio import hash_file
from .registry import Location, Source, register_source

if TYPE_CHECKING:
    from .spec import BackboneSpec

#: Weight files a repo folder may hold (one of them is required).
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class LocalDir:
    """``local-dir:/abs/path`` → the folder."""

    folder: Path

    @classmethod
    def parse(cls, locator: str) -> LocalDir:
        return cls(Path(locator))

    def revision(self) -> str:
        """``sha256:`` + 16 hex digits over the names and bytes of config.json and the weight files."""
        h = hashlib.sha256()
        for p in sorted(self.folder.iterdir()):
            if p.is_file() and (p.name == "config.json" or p.suffix in (".safetensors", ".bin", ".pth")):
                h.update(p.name.encode())
                hash_file(p, h)
        return "sha256:" + h.hexdigest()[:16]


@register_source
class LocalDirSource(Source):
    kind = "local-dir"
    remote = False
    holds_files = True

    def locate(self, entry: CatalogEntry) -> Location:
        ref = LocalDir.parse(entry.locator)
        folder = ref.folder
        if not folder.is_dir():
            raise ModelNotFoundError(entry.id, f"local folder '{folder}' does not exist")
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(entry.id, f"'{folder}' has no config.json (a timm-format repo has config.json "
                                     "and model.safetensors)")
        if not any((folder / f).is_file() for f in WEIGHTS):
            raise ModelNotFoundError(entry.id, f"'{folder}' has no model.safetensors")
        with open(folder / "config.json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        return Location(format=self.format_of(entry, cfg), config=cfg, revision=ref.revision(),
                        timm_name=f"local-dir:{folder}", repo=str(folder), pin=None)

    def offline_config(self, entry: CatalogEntry) -> Mapping[str, Any] | None:
        path = LocalDir.parse(entry.locator).folder / "config.json"
        return dict(json.loads(path.read_text())) if path.is_file() else None

    def file(self, spec: BackboneSpec, filename: str) -> Path:
        return LocalDir.parse(spec.entry.locator).folder / filename
