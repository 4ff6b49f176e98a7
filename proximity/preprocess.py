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
   sides to ``floor(size / crop_pct)``; ``'border'`` is treated as ``'center'``. Bilinear, bicubic
   and nearest are ``torch.nn.functional.interpolate``'s; lanczos, box and hamming are PIL's
   separable filters (``Image.resize``), computed in float64 (:func:`resample`). Any other
   interpolation is refused, never replaced.
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


def _sinc(x: torch.Tensor) -> torch.Tensor:
    return torch.sinc(x)                       # sin(πx) / (πx), 1 at 0


#: PIL's separable filters that F.interpolate lacks: name → (support, kernel), as in Pillow's Resample.c.
FILTERS = {
    "lanczos": (3.0, lambda x: torch.where((x >= -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3.0), 0.0)),
    "box": (0.5, lambda x: ((x > -0.5) & (x <= 0.5)).to(x.dtype)),
    "hamming": (1.0, lambda x: torch.where(x.abs() < 1.0, _sinc(x) * (0.54 + 0.46 * torch.cos(torch.pi * x)), 0.0)),
}
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", *FILTERS)


def _filter_weights(n_in: int, n_out: int, name: str) -> torch.Tensor:
    """(n_out, n_in) float64 weights of PIL's antialiased resampling along one axis: output pixel
    ``i`` centred at ``(i + ½)·s`` (s = n_in / n_out), the kernel stretched by ``max(s, 1)``, the
    window Pillow uses, each row normalised to sum 1."""
    support, kernel = FILTERS[name]
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    lo = torch.trunc(centre - support * stretch + 0.5).clamp(min=0)
    hi = torch.trunc(centre + support * stretch + 0.5).clamp(max=n_in)
    pixel = torch.arange(n_in, dtype=torch.float64)
    w = kernel((pixel[None, :] + 0.5 - centre[:, None]) / stretch)
    w = torch.where((pixel[None, :] >= lo[:, None]) & (pixel[None, :] < hi[:, None]), w, 0.0)
    total = w.sum(1, keepdim=True)
    return torch.where(total != 0, w / total, w)


def resample(x: torch.Tensor, size: tuple[int, int], name: str) -> torch.Tensor:
    """``x`` of shape (C, H, W) resized to ``size`` (h, w) with PIL's filter ``name`` (lanczos, box,
    hamming), in float64, returned as float32."""
    wh = _filter_weights(x.shape[1], size[0], name)
    ww = _filter_weights(x.shape[2], size[1], name)
    return torch.einsum("ih,chw,jw->cij", wh, x.double(), ww).float()


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
        interp = str(cfg.get("interpolation") or "bilinear")
        if interp not in INTERPOLATIONS:
            raise UnsupportedModelError("<preprocessing>", f"interpolation '{interp}' is not one proximity implements "
                                        f"({', '.join(INTERPOLATIONS)})")
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
        if mode in FILTERS:
            x = resample(x, scaled, mode)
        else:
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
