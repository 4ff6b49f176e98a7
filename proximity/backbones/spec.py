"""What every source and format shares: the resolved :class:`BackboneSpec`, the built
:class:`Backbone`, the device choice, and the step from a pretrained config to a spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..catalog import CatalogEntry
from ..errors import InvalidParameterError, UnsupportedModelError
from ..preprocess import Preprocess

#: Images (shuffled, seeded) and batch size used to re-estimate the batch-norm statistics of the
#: random-weights control — fixed, so that the control does not depend on ``--batch-size``.
BN_REESTIMATE_IMAGES = 256
BN_REESTIMATE_BATCH = 64


@dataclass(frozen=True)
class BackboneSpec:
    """What is known of a backbone before its weights are loaded."""

    entry: CatalogEntry
    create_name: str                 # what the format loads: timm.create_model's name, or a transformers repo/folder
    architecture: str                # timm architecture, or "transformers:<model_type>"
    revision: str                    # commit / version / content hash: part of the cache key
    data_config: dict[str, Any]      # resolved timm data config (input_size, mean, std, ...)
    preprocess: Preprocess
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    truncated_at: str = ""           # "features.39": the network is cut after this module
    format: str = "timm"             # a registered format: "timm" | "transformers"


@dataclass
class Backbone:
    """A built network in eval mode with what the evidence pass needs."""

    spec: BackboneSpec
    model: nn.Module
    early_layers: list[tuple[str, nn.BatchNorm2d]]    # early BN layers (inputs watched)
    feature_dim: int
    device: torch.device
    pretrained: bool = True
    early_modules: list[tuple[str, nn.Module]] = field(default_factory=list)  # no BN: outputs watched
    early_channels: dict[str, int] = field(default_factory=dict)              # their channel counts
    channels_last: bool = False      # weights and inputs in (N, H, W, C) memory: see use_channels_last

    @torch.inference_mode()
    def use_channels_last(self) -> bool:
        """Keep a convolutional network's weights and inputs channels-last, where it runs that way.

        The tensors keep their (N, C, H, W) shape — only the memory order changes —, so every
        hook and statistic reads them as before; the convolutions pick other kernels, whose sums
        round differently (features agree to ~1e-6 relative). On CPU (oneDNN) and CUDA (cuDNN)
        those kernels are faster for convolutional networks: resnet18 at 224 px 0.92 → 0.67 s and
        mobilenetv3_large_100 0.37 → 0.25 s per 32 images on this 2-core machine. Not for MPS,
        nor for a network with fewer than two convolutions (a ViT's patch embedding: no gain).
        A network that cannot run channels-last (a ``view`` of a convolution's output) is found
        by one two-image forward of zeros before any image is seen, and left as it was.
        Returns whether it is on.
        """
        convs = sum(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if self.device.type not in ("cpu", "cuda") or convs < 2:
            return False
        size = tuple(self.spec.data_config.get("input_size") or (3, 224, 224))
        self.model.to(memory_format=torch.channels_last)
        try:
            self.model(torch.zeros((2, *size), device=self.device).to(memory_format=torch.channels_last))
        except Exception:          # whatever failed here, the network runs as it was (and fails there if broken)
            self.model.to(memory_format=torch.contiguous_format)
            return False
        self.channels_last = True
        return True

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """A preprocessed batch on the device, in the network's memory format."""
        x = x.to(self.device, non_blocking=True)                  # asynchronous from pinned memory
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    @torch.inference_mode()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of shape (N, feature_dim) for a preprocessed batch (N, C, H, W)."""
        out = self.model(self.to_input(x))
        if out.ndim != 2:
            raise UnsupportedModelError(self.spec.entry.id,
                                        f"pooled output has shape {tuple(out.shape)}, expected (N, d)")
        return out


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU. Raises InvalidParameterError for an absent device."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if device not in ("cpu", "cuda", "mps"):
        raise InvalidParameterError("device", "rank", "one of 'auto', 'cpu', 'cuda', 'mps'", device)
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError("device", "rank", "'cpu' or 'auto' here: no CUDA device is available", device)
    if device == "mps" and not _mps_available():
        raise InvalidParameterError("device", "rank", "'cpu' or 'auto' here: MPS is not available", device)
    return torch.device(device)


#: The autocast dtypes each device type supports here (``--precision``).
PRECISIONS = {"cpu": ("bfloat16",), "cuda": ("bfloat16", "float16"), "mps": ("float16",)}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype ``--precision`` autocasts the networks to on ``device`` (None: float32, no
    autocast). Raises InvalidParameterError for a combination the device does not run."""
    if precision == "float32":
        return None
    ok = PRECISIONS.get(device.type, ())
    if precision not in ok:
        raise InvalidParameterError("precision", "rank",
                                    f"one of {', '.join(('float32',) + ok)} on {device.type}", precision)
    return getattr(torch, precision)


def make_spec(entry: CatalogEntry, *, create_name: str, architecture: str, pretrained_cfg: dict[str, Any],
              revision: str, fmt: str, truncated_at: str = "",
              model_kwargs: dict[str, Any] | None = None) -> BackboneSpec:
    """The spec from a model's own pretrained config with the entry's ``[input]`` overrides on top."""
    from timm.data import resolve_data_config

    data_config = resolve_data_config(pretrained_cfg=overlay_input(pretrained_cfg, entry))
    return BackboneSpec(entry=entry, create_name=create_name, architecture=architecture, revision=revision,
                        data_config=data_config, preprocess=Preprocess.from_data_config(data_config),
                        model_kwargs=dict(model_kwargs or {}), truncated_at=truncated_at, format=fmt)


def overlay_input(pcfg: dict[str, Any], entry: CatalogEntry) -> dict[str, Any]:
    """``pcfg`` with the entry's input size, channels, mean and std where it gives them."""
    pcfg = dict(pcfg)
    c, h, w = pcfg.get("input_size") or (3, 224, 224)
    if entry.channels:
        c = entry.channels
    if entry.input_size:
        h = w = entry.input_size
    pcfg["input_size"] = (c, h, w)
    if entry.mean:
        pcfg["mean"] = entry.mean
    if entry.std:
        pcfg["std"] = entry.std
    return pcfg
