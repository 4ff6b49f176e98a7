"""Synthetic domains and tiny trained backbones for the tests (deterministic for a seed).

Two domains with the **same** per-channel pixel mean (0.5) and standard deviation (0.15) that
differ only in structure, so that no brightness statistic can tell them apart:

* ``gratings`` — sinusoidal gratings (class = orientation), random frequency and phase;
* ``blobs`` — smoothed white noise (class = blob scale), isotropic.

Each image is standardised to mean 0.5, sd 0.15 and repeated over 3 channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

SIZE = 48
MEAN, SD = 0.5, 0.15


def _standardise(x: np.ndarray) -> np.ndarray:
    x = (x - x.mean()) / (x.std() + 1e-8)
    return np.clip(MEAN + SD * x, 0.0, 1.0)


def gratings(n: int, angles_deg, rng: np.random.Generator, size: int = SIZE, noise: float = 0.3):
    """``n`` gratings per angle. Returns (images (N, size, size) float in [0,1], labels (N,) str)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    imgs, labels = [], []
    for a in angles_deg:
        for _ in range(n):
            t = np.deg2rad(a + rng.normal(0, 3))
            f = rng.uniform(0.08, 0.2)
            ph = rng.uniform(0, 2 * np.pi)
            img = np.sin(2 * np.pi * f * (xx * np.cos(t) + yy * np.sin(t)) + ph) + noise * rng.normal(size=(size, size))
            imgs.append(_standardise(img))
            labels.append(f"angle{a:g}")
    return np.stack(imgs), np.array(labels)


def blobs(n: int, scales, rng: np.random.Generator, size: int = SIZE):
    """``n`` smoothed-noise images per blob scale (Gaussian sigma in pixels)."""
    imgs, labels = [], []
    for s in scales:
        for _ in range(n):
            img = gaussian_filter(rng.normal(size=(size, size)), sigma=s * rng.uniform(0.85, 1.15), mode="wrap")
            imgs.append(_standardise(img))
            labels.append(f"scale{s:g}")
    return np.stack(imgs), np.array(labels)


def to_uint8_rgb(imgs: np.ndarray) -> np.ndarray:
    return np.repeat(np.rint(imgs * 255).astype(np.uint8)[..., None], 3, axis=-1)


def train_backbone(imgs: np.ndarray, labels: np.ndarray, *, seed: int = 0, epochs: int = 4, arch: str = "test_resnet"):
    """Train a tiny timm network on (imgs, labels) for a few seconds; return it in eval mode."""
    import timm

    torch.manual_seed(seed)
    classes = sorted(set(labels.tolist()))
    y = torch.tensor([classes.index(v) for v in labels])
    x = (torch.from_numpy(imgs).float().unsqueeze(1).expand(-1, 3, -1, -1) - 0.5) / 0.5
    model = timm.create_model(arch, num_classes=len(classes))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 32):
            idx = perm[i:i + 32]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    return model, acc


def save_repo(model, folder: Path, size: int = SIZE) -> Path:
    """Save as a timm-format repo (config.json + model.safetensors) with this preprocessing."""
    from timm.models import save_for_hf

    model.pretrained_cfg = {**dict(model.pretrained_cfg), "input_size": (3, size, size), "crop_pct": 1.0,
                            "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear"}
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def write_folder(root: Path, imgs: np.ndarray, labels: np.ndarray | None) -> Path:
    """Write PNGs: ``root/<label>/<i>.png`` (or ``root/<i>.png`` without labels)."""
    rgb = to_uint8_rgb(imgs)
    for i, img in enumerate(rgb):
        d = root / labels[i] if labels is not None else root
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


def save_transformers_repo(kind: str, folder: Path, seed: int = 0) -> Path:
    """A tiny transformers vision backbone (``vit``, ``dinov2``, ``beit``, ``resnet``, ``convnext``,
    ``clip``, ``siglip``)
    at 32 px with its image processor, saved as a Hub-style folder (config.json,
    model.safetensors, preprocessor_config.json)."""
    import transformers as T

    torch.manual_seed(seed)
    vit_like = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    if kind == "vit":
        model = T.ViTModel(T.ViTConfig(intermediate_size=64, **vit_like), add_pooling_layer=False)
        proc = T.ViTImageProcessor(size={"height": 32, "width": 32})
    elif kind == "dinov2":
        model = T.Dinov2Model(T.Dinov2Config(mlp_ratio=2, **vit_like))
        proc = T.BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                                   do_center_crop=True, image_mean=[0.485, 0.456, 0.406],
                                   image_std=[0.229, 0.224, 0.225])
    elif kind == "beit":
        model = T.BeitModel(T.BeitConfig(intermediate_size=64, use_mean_pooling=True, **vit_like))
        proc = T.BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    elif kind == "resnet":
        model = T.ResNetModel(T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"))
        proc = T.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=None)
    elif kind == "convnext":
        model = T.ConvNextModel(T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, patch_size=4))
        proc = T.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=None)
    elif kind == "dinov3_vit":
        model = T.DINOv3ViTModel(T.DINOv3ViTConfig(intermediate_size=64, **vit_like))
        processor = getattr(T, "DINOv3ViTImageProcessorFast", T.ViTImageProcessor)
        proc = processor(size={"height": 32, "width": 32})
    elif kind in ("clip", "siglip"):
        text = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
        vision = dict(intermediate_size=64, **vit_like)
        if kind == "clip":
            model = T.CLIPModel(T.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
            proc = T.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        else:
            model = T.SiglipModel(T.SiglipConfig(text_config=text, vision_config=vision))
            proc = T.SiglipImageProcessor(size={"height": 32, "width": 32})
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
