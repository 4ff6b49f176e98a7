"""The ``transformers`` format: a repo whose ``config.json`` has a ``model_type`` that the installed
transformers knows (never ``trust_remote_code``: a model type it does not know is reported, not run).

The preprocessing comes from ``AutoImageProcessor`` (size, crop, mean/std, resample → a timm-style
data config), the network from ``AutoModel`` (``AutoConfig`` + ``from_config`` for the
random-weights control). The pooled feature is the first (CLS) token of the last hidden state for
token models — the pooler's dense layer is skipped, since self-supervised checkpoints (DINO, iBOT)
do not train it — and the model's own pooled output for convolutional ones, for token models
without a class token (SigLIP's attention pooling, Swin), for CLIP (the class token after its
post-LayerNorm) and for BEiT/DiT with mean pooling. Of an image-text model (CLIP, SigLIP) only the
image tower (``vision_model``) is used. Weights are used in float32 whatever dtype the checkpoint
was saved in. Early layers: the first two blocks of the first block list (``layers`` /
``encoder.layer``) of a token model, or the embedder and first stage (``encoder.stages``) of a
convolutional one, as for timm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..catalog import CatalogEntry
from ..errors import UnsupportedModelError
from .registry import Format, Location, Source, register_format
from .spec import BackboneSpec, make_spec

#: PIL's filter codes, as image processors give their ``resample``.
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@register_format
class TransformersFormat(Format):
    name = "transformers"

    def spec(self, entry: CatalogEntry, where: Location, source: Source) -> BackboneSpec:
        if entry.truncated_at:
            raise UnsupportedModelError(entry.id, "truncated_at is supported for timm networks only")
        with source.reading(entry.id):
            pcfg = processor_config(entry, where.config, where.repo, where.pin)
        return make_spec(entry, create_name=where.repo, architecture=f"transformers:{where.config['model_type']}",
                         pretrained_cfg=pcfg, revision=where.revision, fmt=self.name)

    def build(self, spec: BackboneSpec, source: Source, pretrained: bool) -> nn.Module:
        return _open(spec, source, pretrained)


def processor_config(entry: CatalogEntry, cfg: Mapping[str, Any], ref: str, revision: str | None) -> dict[str, Any]:
    """A timm-style pretrained_cfg from the repo's ``AutoImageProcessor`` (no weights loaded)."""
    from transformers import AutoImageProcessor

    model_type = cfg.get("model_type", "")
    _check_model_type(entry, model_type)
    try:
        proc = AutoImageProcessor.from_pretrained(ref, revision=revision or None, trust_remote_code=False)
    except OSError as exc:
        if "preprocessor_config" in str(exc) or "does not appear to have" in str(exc):
            if entry.input_size and entry.mean and entry.std:      # the entry says how, with provenance
                c = int(cfg.get("num_channels", 3))
                return {"input_size": (c, entry.input_size, entry.input_size), "mean": entry.mean, "std": entry.std,
                        "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bicubic"}
            raise UnsupportedModelError(entry.id, "the repo has no preprocessor_config.json (AutoImageProcessor); "
                                        "set [input] size, mean and std in its catalog entry") from None
        raise
    except ValueError as exc:
        raise UnsupportedModelError(entry.id, "AutoImageProcessor cannot read this repo without remote code: "
                                    f"{str(exc)[:200]}") from None
    size = dict(getattr(proc, "size", None) or {})
    crop = dict(getattr(proc, "crop_size", None) or {}) if getattr(proc, "do_center_crop", False) else {}
    short = size.get("shortest_edge")
    h, w = (crop.get("height"), crop.get("width")) if crop else (size.get("height", short), size.get("width", short))
    crop_pct = (int(h) / short) if crop and short and h else 1.0
    if not crop and short and getattr(proc, "crop_pct", None) and short < 384:   # ConvNeXt-style: resize, crop
        crop_pct = float(proc.crop_pct)
    if not h or not w:
        raise UnsupportedModelError(entry.id, f"cannot read an input size from its image processor (size={size})")
    normalise = getattr(proc, "do_normalize", True)
    c = int(cfg.get("num_channels", 3))
    return {"input_size": (c, int(h), int(w)),
            "mean": tuple(proc.image_mean) if normalise else (0.0,) * c,
            "std": tuple(proc.image_std) if normalise else (1.0,) * c,
            "crop_pct": crop_pct, "crop_mode": "center", "interpolation": _interpolation(entry, proc)}


def _interpolation(entry: CatalogEntry, proc: Any) -> str:
    """The processor's ``resample`` (a PIL filter code) by name; bilinear when it gives none."""
    resample = getattr(proc, "resample", None)
    if resample is None:
        return "bilinear"
    if int(resample) not in _RESAMPLE:
        raise UnsupportedModelError(entry.id, f"its image processor resamples with PIL filter {resample!r}, which "
                                    f"proximity does not know (known: {_RESAMPLE})")
    return _RESAMPLE[int(resample)]


def _check_model_type(entry: CatalogEntry, model_type: str) -> None:
    from transformers import CONFIG_MAPPING

    if not model_type:
        raise UnsupportedModelError(entry.id, "config.json has no model_type (remote-code models are not run)")
    if model_type not in CONFIG_MAPPING:
        import transformers

        raise UnsupportedModelError(entry.id, f"transformers {transformers.__version__} has no model type "
                                    f"'{model_type}' (it may need remote code, which proximity never runs)")


#: transformers model types whose own pooled output is the feature even though they have a class
#: token: CLIP's pooler is the class token *after* post_layernorm; BEiT/DiT/data2vec-vision with
#: ``use_mean_pooling`` pool the patch tokens through their pooler LayerNorm (what their heads use).
POOLED_TYPES = frozenset({"clip", "clip_vision_model", "beit", "data2vec-vision"})


def _uses_cls_token(model: nn.Module, model_type: str) -> bool:
    """CLS token for token models that have one (ViT, DINOv2, DINOv3, ...); the pooled output for
    the types above, for models without a class token (SigLIP, Swin, ...) and for conv nets."""
    if model_type.startswith("clip"):
        return False
    if model_type in POOLED_TYPES:                 # BEiT family: the class token only without mean pooling
        return not getattr(model.config, "use_mean_pooling", True)
    emb = getattr(model, "embeddings", None)
    return emb is not None and getattr(emb, "cls_token", None) is not None


def _open(spec: BackboneSpec, source: Source, pretrained: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    pin = source.load_revision(spec)
    rev = {"revision": pin} if pin else {}
    config = AutoConfig.from_pretrained(spec.create_name, trust_remote_code=False, **rev)
    if getattr(config, "model_type", "") == "vit_mae":
        config.mask_ratio = 0.0                   # MAE masks 75 % of the patches even in eval mode
    if pretrained:
        model, info = AutoModel.from_pretrained(spec.create_name, config=config, trust_remote_code=False,
                                                output_loading_info=True, **rev)
        # a pooler the checkpoint lacks: its dense layer is never used (CLS token), its LayerNorm
        # (BEiT mean pooling) starts as the identity affine map, deterministically
        missing = [k for k in info.get("missing_keys", ())
                   if not (k.startswith("pooler.") and (".layernorm." in k or "dense" in k))]
        if missing or info.get("mismatched_keys"):
            raise UnsupportedModelError(spec.entry.id, f"weights do not match {type(model).__name__}: missing "
                                        f"{sorted(missing)[:4]}, mismatched "
                                        f"{list(info.get('mismatched_keys', ()))[:2]}")
    else:
        model = AutoModel.from_config(config)
    model = model.float()                         # transformers 5 loads a checkpoint's own dtype (bf16...)
    model_type = getattr(model.config, "model_type", "")
    if hasattr(model, "vision_model"):            # image-text models (CLIP, SigLIP): the image tower only
        model = model.vision_model
    return TransformersBackbone(model, cls_token=_uses_cls_token(model, model_type))


class TransformersBackbone(nn.Module):
    """A transformers vision model as proximity uses it: pixel values in, pooled (N, d) out, with
    a timm-style ``feature_info`` naming its early blocks (module docstring)."""

    def __init__(self, model: nn.Module, cls_token: bool = True) -> None:
        super().__init__()
        self.model = model
        self.cls_token = cls_token
        cfg = model.config
        sizes = getattr(cfg, "hidden_sizes", None)
        self.num_features = int(getattr(cfg, "hidden_size", 0) or (sizes[-1] if sizes else 0))
        blocks = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) >= 1
                       and n.rsplit(".", 1)[-1] in ("layer", "layers", "stages", "blocks", "model")), None)
        self.feature_info: list[dict[str, Any]] = []
        if blocks is not None and blocks[0].rsplit(".", 1)[-1] == "stages":      # convolutional: stem + first stage
            first = int(sizes[0]) if sizes else 0
            stem = next((n for n in ("embedder", "embeddings", "stem") if hasattr(model, n)), None)
            if stem:
                self.feature_info.append({"module": f"model.{stem}",
                                          "num_chs": int(getattr(cfg, "embedding_size", 0) or first)})
            self.feature_info.append({"module": f"model.{blocks[0]}.0", "num_chs": first})
        elif blocks is not None and len(blocks[1]) >= 2:                          # token model: first two blocks
            self.feature_info = [{"module": f"model.{blocks[0]}.{i}", "num_chs": self.num_features} for i in (0, 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        h = out.last_hidden_state
        if h.ndim == 3 and self.cls_token:
            return h[:, 0]                         # the class token of the last hidden state
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        return h.mean(dim=(2, 3)) if h.ndim == 4 else h.mean(dim=1)
