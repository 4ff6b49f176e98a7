"""Per-backbone preprocessing: channel adaptation, resize + centre crop, normalisation.

Input: float32 images in ``[0, 1]`` from :meth:`proximity.data.Sample.batches` (``(H, W)`` or
``(H, W, C)``). The steps follow timm's evaluation transform, from the backbone's own data
config (``input_size``, ``crop_pct``, ``crop_mode``, ``interpolation``, ``mean``, ``std``):

1. **channels** — images whose channel count equals the model's pass unchanged; otherwise alpha
   is dropped (``LA`` → 1 channel, ``RGBA`` → 3); a 1-channel image for a
   3-channel model is repeated; a 3-channel image for a 1-channel model becomes luminance
   ``0.299 R + 0.587 G + 0.114 B``; any other mismatch (e.g. 6-band images, 3-channel model)
   is an error that names the numbers: no silent guess.
2. **resize** — the shorter side to ``floor(size / crop_pct)`` (antialiased, in float, so 16-bit
   precision survives), then a centre crop to ``size``. ``crop_mode='squash'`` resizes both
   sides to ``floor(size / crop_pct)``; ``'border'`` is treated as ``'center'``.
3. **normalise** — clip to ``[0, 1]`` (bicubic overshoot), then ``(x - mean) / std``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ChannelMismatchError, UnsupportedModelError

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


@dataclass(frozen=True)
class Preprocess:
    """A backbone's evaluation preprocessing (see module docstring). Callable on a batch."""

    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    crop_mode: str = "center"

    @classmethod
    def from_data_config(cls, cfg: Mapping[str, Any]) -> "Preprocess":
        c, h, w = cfg["input_size"]
        interp = str(cfg.get("interpolation", "bilinear"))
        if interp not in ("bilinear", "bicubic", "nearest"):
            interp = "bilinear"
        return cls(
            channels=int(c), size=(int(h), int(w)),
            mean=tuple(float(m) for m in _per_channel(cfg.get("mean", (0.5,)), int(c))),
            std=tuple(float(s) for s in _per_channel(cfg.get("std", (0.5,)), int(c))),
            interpolation=interp, crop_pct=float(cfg.get("crop_pct") or 1.0),
            crop_mode=str(cfg.get("crop_mode") or "center"),
        )

    def describe(self) -> str:
        """A stable one-line description (part of the evidence cache key)."""
        return (f"c={self.channels};size={self.size};mean={self.mean};std={self.std};"
                f"interp={self.interpolation};crop_pct={self.crop_pct};mode={self.crop_mode}")

    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Turn float32 images in [0, 1] into a normalised tensor of shape (N, C, H, W)."""
        out = torch.empty((len(images), self.channels, *self.size), dtype=torch.float32)
        for i, img in enumerate(images):
            out[i] = self._one(img)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (out - mean) / std

    def _one(self, img: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        x = _adapt_channels(x, self.channels)
        th, tw = self.size
        if self.crop_mode == "squash":
            scaled = (math.floor(th / self.crop_pct), math.floor(tw / self.crop_pct))
        else:
            short = min(x.shape[1], x.shape[2])
            scale = math.floor(min(th, tw) / self.crop_pct) / short
            scaled = (max(th, round(x.shape[1] * scale)), max(tw, round(x.shape[2] * scale)))
        mode = self.interpolation
        x = F.interpolate(x.unsqueeze(0), size=scaled, mode=mode,
                          antialias=mode != "nearest",
                          **({} if mode == "nearest" else {"align_corners": False}))[0]
        top, left = (x.shape[1] - th) // 2, (x.shape[2] - tw) // 2
        return x[:, top:top + th, left:left + tw].clamp_(0.0, 1.0)


def _per_channel(values: Any, c: int) -> Sequence[float]:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if len(values) == c:
        return values
    if len(values) == 1:
        return values * c
    if c == 1:
        return [float(np.mean(values))]
    raise UnsupportedModelError("<preprocessing>", f"mean/std have {len(values)} values for {c} channels")


def _adapt_channels(x: torch.Tensor, want: int) -> torch.Tensor:
    have = x.shape[0]
    if have == want:
        return x
    if have in (2, 4):  # grey+alpha, RGB+alpha for a model that does not take 2/4 channels: drop alpha
        x, have = x[: have - 1], have - 1
    if have == want:
        return x
    if have == 1 and want == 3:
        return x.expand(3, -1, -1)
    if have == 3 and want == 1:
        return (x * _LUMA).sum(0, keepdim=True)
    raise ChannelMismatchError(want, have)
