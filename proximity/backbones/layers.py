"""Where the evidence pass watches a network, and the surgery some backbones need.

**Early layers** are the batch-norm layers (``nn.BatchNorm2d`` and subclasses such as timm's
``BatchNormAct2d``), in module order, from the stem up to and including the end of the *first
stage*: the module named by the second entry of timm's ``feature_info`` (the first block after
the stem, at reduction 4 for a ResNet: ``conv1``/``bn1`` plus ``layer1``). A model with a single
``feature_info`` entry uses that one; a model without ``feature_info`` uses the first quarter of
its BN layers. Their *inputs* are what the early-shift signal compares with their running stats.
A network without early BN layers is watched at the *outputs* of its first two ``feature_info``
modules instead (:func:`find_early_modules`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import UnsupportedModelError

if TYPE_CHECKING:
    from .spec import Backbone


def feature_info(model: nn.Module) -> list[tuple[str, int]]:
    """``(module name, channels)`` of each entry of the model's timm-style ``feature_info`` (a
    timm ``FeatureInfo``, or a list of dicts as :class:`TruncatedBackbone` and transformers
    backbones carry); empty when it has none."""
    info = getattr(model, "feature_info", None)
    if info is not None and hasattr(info, "module_name") and hasattr(info, "channels"):
        return list(zip(info.module_name(), info.channels(), strict=True))
    if isinstance(info, list):
        return [(f.get("module"), int(f.get("num_chs", 0))) for f in info]
    return []


def early_channels(model: nn.Module) -> dict[str, int]:
    """``feature_info`` channel counts by module name (tells where the channel axis of an output is)."""
    return dict(feature_info(model))


def find_early_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """For networks without early BN layers: the modules named by the first two ``feature_info``
    entries (ViT ``blocks.0``/``blocks.1``, ConvNeXt ``stages.0``/``stages.1``, VGG
    ``features.3``/``features.8``), whose *outputs* are watched. Their reference moments come
    from ``proximity catalog reference``, not from the network."""
    out = []
    for name, _ in feature_info(model)[:2]:
        for candidate in (name, name.replace("_", ".")):
            try:
                out.append((name, model.get_submodule(candidate)))
                break
            except AttributeError:
                continue
    return out


def find_early_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """The early batch-norm layers, as defined in the module docstring."""
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    names = [n for n, _ in feature_info(model)]
    if not names:
        return bns[: max(1, len(bns) // 4)] if bns else []
    boundary = names[1] if len(names) > 1 else names[0]
    boundary = boundary.replace("_", ".") if not any(n == boundary for n, _ in model.named_modules()) else boundary
    out, inside = [], False
    for n, m in model.named_modules():
        under = n == boundary or n.startswith(boundary + ".")
        if inside and not under:
            break
        inside = inside or under
        if isinstance(m, nn.BatchNorm2d):
            out.append((n, m))
    return out


class TruncatedBackbone(nn.Module):
    """``features[: k + 1]`` of a timm network, globally average-pooled to (N, C).

    Module names (``features.0`` …) are those of the original network, so checkpoint keys and
    ``feature_info`` entries keep their meaning.
    """

    def __init__(self, features: nn.Sequential, feature_info: list[dict[str, Any]], truncated_at: str) -> None:
        super().__init__()
        self.features = features
        self.feature_info = feature_info
        self.truncated_at = truncated_at
        convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
        self.num_features = convs[-1].out_channels if convs else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def truncate(model: nn.Module, truncated_at: str) -> TruncatedBackbone:
    """Cut a timm network after module ``truncated_at`` (``'<sequential>.<index>'``)."""
    parent, _, index = truncated_at.rpartition(".")
    seq = model.get_submodule(parent) if parent else None
    if not isinstance(seq, nn.Sequential) or not index.isdigit() or int(index) >= len(seq):
        raise UnsupportedModelError(truncated_at,
                                    "truncated_at must name an index of a Sequential (e.g. 'features.39'); "
                                    f"got '{truncated_at}'")
    k = int(index)
    if parent != "features":
        raise UnsupportedModelError(truncated_at,
                                    "only truncation inside the top-level 'features' Sequential is supported")
    info = [f for f in (getattr(model, "feature_info", None) or [])
            if f.get("module", "").startswith("features.") and int(f["module"].split(".")[1]) <= k]
    return TruncatedBackbone(nn.Sequential(*list(seq)[: k + 1]), info, truncated_at)


@torch.inference_mode()
def reestimate_batchnorm(backbone: Backbone, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BN layer's running statistics by the plain average over ``batches``.

    Returns the number of images used. Only BN layers switch to train mode (dropout stays off).
    """
    bns = [m for m in backbone.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over batches
        m.train()
    n = 0
    try:
        for x in batches:
            backbone.model(backbone.to_input(x))
            n += x.shape[0]
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
            m.eval()
    return n
