"""One build path for every backbone: sources × formats, each a small registered class.

=============  ==========================================================  ========================
module         what                                                        registered as
=============  ==========================================================  ========================
registry       :class:`Source` and :class:`Format`, their registries        —
spec           :class:`BackboneSpec`, :class:`Backbone`, the device         —
builder        :func:`resolve_spec` (no weights) and :func:`open_backbone`  —
layers         early layers, feature_info, truncation, BN re-estimation     —
source_timm    ``timm:NAME[.TAG]`` — timm's own registry                    source ``timm``
source_hf_hub  ``hf-hub:ORG/NAME[@REV]`` — a Hub repo, pinned to a commit   source ``hf-hub``
source_local   ``local-dir:PATH`` — a repo folder, pinned by content hash   source ``local-dir``
format_timm    timm architecture + pretrained_cfg (truncation)              format ``timm``
format_trans…  transformers ``model_type`` + AutoImageProcessor             format ``transformers``
=============  ==========================================================  ========================

An ``hf-hub:`` or ``local-dir:`` repo's ``config.json`` says its format (``architecture`` → timm,
``model_type`` → transformers; an entry's ``format`` overrides). A backbone cut from a larger
network is a timm architecture truncated after its last mapped layer, pooled by global average,
with ``truncated_at`` recorded. Weights load from safetensors (pickled checkpoints only with
``weights_only=True``); never ``trust_remote_code``.
"""

from __future__ import annotations

from . import format_timm, format_transformers, source_hf_hub, source_local_dir, source_timm  # noqa: F401  (registration)
from .builder import has_early_batchnorm, open_backbone, resolve_spec
from .format_transformers import POOLED_TYPES, TransformersBackbone
from .layers import (TruncatedBackbone, early_channels, feature_info, find_early_layers, find_early_modules,
                     reestimate_batchnorm, truncate)
from .registry import (FORMATS, SOURCES, Format, Location, Source, get_format, get_source, register_format,
                       register_source)
from .spec import (BN_REESTIMATE_BATCH, BN_REESTIMATE_IMAGES, PRECISIONS, Backbone, BackboneSpec, autocast_dtype,
                   resolve_device)

__all__ = ["BN_REESTIMATE_BATCH", "BN_REESTIMATE_IMAGES", "FORMATS", "POOLED_TYPES", "PRECISIONS", "SOURCES",
           "Backbone", "BackboneSpec", "Format", "Location", "Source", "TransformersBackbone", "TruncatedBackbone",
           "autocast_dtype",
           "early_channels", "feature_info", "find_early_layers", "find_early_modules", "get_format", "get_source",
           "has_early_batchnorm", "open_backbone", "reestimate_batchnorm", "register_format", "register_source",
           "resolve_device", "resolve_spec", "truncate"]
