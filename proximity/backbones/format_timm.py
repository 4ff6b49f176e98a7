"""The ``timm`` format: a timm architecture with its ``pretrained_cfg`` (timm's registry, or a
repo's ``config.json``), built by ``timm.create_model``; optionally truncated after one module
of its ``features`` Sequential, with the truncated weights from the repo's ``model.safetensors``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..catalog import CatalogEntry
from ..errors import UnsupportedModelError
from .layers import truncate
from .registry import Format, Location, Source, register_format
from .spec import BackboneSpec, make_spec


@register_format
class TimmFormat(Format):
    name = "timm"

    def spec(self, entry: CatalogEntry, where: Location, source: Source) -> BackboneSpec:
        cfg = where.config
        if "architecture" not in cfg:
            raise UnsupportedModelError(entry.id, "config.json names neither a timm 'architecture' nor a transformers "
                                        "'model_type'")
        pcfg = dict(cfg.get("pretrained_cfg")
                    or {k: v for k, v in cfg.items() if k not in ("architecture", "model_args")})
        truncated = entry.truncated_at or (cfg.get("proximity") or {}).get("truncated_at", "")
        if truncated and not source.holds_files:
            raise UnsupportedModelError(entry.id,
                                        "truncated_at needs a hf-hub: or local-dir: repo holding the truncated "
                                        "weights")
        spec = make_spec(entry, create_name=where.timm_name, architecture=cfg["architecture"], pretrained_cfg=pcfg,
                         revision=where.revision, fmt=self.name, truncated_at=truncated)
        if entry.channels:                        # timm adapts the stem's weights to the channel count
            spec = replace(spec, model_kwargs={"in_chans": int(spec.data_config["input_size"][0])})
        return spec

    def build(self, spec: BackboneSpec, source: Source, pretrained: bool) -> nn.Module:
        import timm

        if not spec.truncated_at:
            return timm.create_model(spec.create_name, pretrained=pretrained, num_classes=0, **spec.model_kwargs)
        model = truncate(timm.create_model(spec.create_name, pretrained=False, num_classes=0, **spec.model_kwargs),
                         spec.truncated_at)
        if pretrained:
            self._load_truncated_weights(model, spec, source)
        return model

    @staticmethod
    def _load_truncated_weights(model: nn.Module, spec: BackboneSpec, source: Source) -> None:
        from safetensors.torch import load_file

        state = load_file(str(source.file(spec, "model.safetensors")))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise UnsupportedModelError(spec.entry.id, f"truncated weights do not match {spec.architecture} cut at "
                                        f"{spec.truncated_at}: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def meta_model(self, entry: CatalogEntry, config: Mapping[str, Any]) -> nn.Module | None:
        import timm

        args = {**dict(config.get("model_args") or {}), "num_classes": 0}
        with torch.device("meta"):
            model = timm.create_model(config["architecture"], pretrained=False, **args)
        return truncate(model, entry.truncated_at) if entry.truncated_at else model
