"""Source domains of the ground-truth benchmark: labelled 64 px RGB images, offline, seeded.

Procedural families (formula-driven pretraining data is a published method) and real offline
data, chosen for distinct low-level statistics:

=========  ==========  ===========================================================  =========
name       kind        images                                                       classes
=========  ==========  ===========================================================  =========
stripes    procedural  coloured sinusoidal gratings + noise                         orientation (4)
blobs      procedural  coloured smoothed noise                                      blob scale (4)
shapes     procedural  filled shapes on a noisy background                          shape (4)
fashion    real        Fashion-MNIST train (Debian ``dataset-fashion-mnist``)       item (10)
digits     real        scikit-learn handwritten digits (8 px, upscaled)             digit (10)
photos     real        crops of scikit-learn / scikit-image colour photos           photo (6)
cells      procedural  fluorescence-like nuclei on a dark background (protocol 2)   layout (4)
lattice    procedural  periodic dot / grid / checker patterns (protocol 2)          lattice (4)
glyphs     procedural  letters in Pillow's default font, dark on light (protocol 2) letter (6)
=========  ==========  ===========================================================  =========

``make(name, n_per_class, seed)`` returns ``(images uint8 (N, 64, 64, 3), labels int (N,),
class_names)``; the same arguments give the same arrays.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

SIZE = 64
FASHION = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))  # Debian's files
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _colourise(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) in [0, 1] → (H, W, 3) between two random colours."""
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    return a + (b - a) * grey[..., None]


def stripes(n: int, rng: np.random.Generator):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    names = ["0deg", "45deg", "90deg", "135deg"]
    imgs, labels = [], []
    for c, angle in enumerate((0, 45, 90, 135)):
        for _ in range(n):
            t = np.deg2rad(angle + rng.normal(0, 4))
            g = np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * (xx * np.cos(t) + yy * np.sin(t))
                       + rng.uniform(0, 2 * np.pi))
            g = (g + 0.4 * rng.normal(size=g.shape) + 1.4) / 2.8
            imgs.append(_to_uint8(_colourise(np.clip(g, 0, 1), rng)))
            labels.append(c)
    return imgs, labels, names


def blobs(n: int, rng: np.random.Generator):
    names = ["s1", "s2", "s4", "s8"]
    imgs, labels = [], []
    for c, sigma in enumerate((1, 2, 4, 8)):
        for _ in range(n):
            g = gaussian_filter(rng.normal(size=(SIZE, SIZE)), sigma * rng.uniform(0.85, 1.15), mode="wrap")
            g = (g - g.min()) / (np.ptp(g) + 1e-8)
            imgs.append(_to_uint8(_colourise(g, rng)))
            labels.append(c)
    return imgs, labels, names


def shapes(n: int, rng: np.random.Generator):
    names = ["circle", "square", "triangle", "cross"]
    imgs, labels = [], []
    for c, shape in enumerate(names):
        for _ in range(n):
            bg = _colourise(np.clip(0.5 + 0.15 * rng.normal(size=(SIZE, SIZE)), 0, 1), rng)
            im = Image.fromarray(_to_uint8(bg))
            d = ImageDraw.Draw(im)
            r = rng.uniform(10, 24)
            cx, cy = rng.uniform(r, SIZE - r, 2)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            if shape == "circle":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            elif shape == "square":
                d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
            elif shape == "triangle":
                d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
            else:
                w = r / 3
                d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
                d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
            imgs.append(np.asarray(im))
            labels.append(c)
    return imgs, labels, names


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed, unsigned bytes) as MNIST and Fashion-MNIST ship: the big-endian
    magic number's last byte is the number of dimensions, then one uint32 per dimension, then data."""
    with gzip.open(path, "rb") as fh:
        magic = struct.unpack(">I", fh.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), fh.read(4 * (magic & 0xFF)))
        return np.frombuffer(fh.read(), dtype=np.uint8).reshape(dims)


def _grey_to_rgb64(img: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(Image.fromarray(img).resize((SIZE, SIZE), Image.Resampling.BICUBIC))[..., None], 3,
                     axis=2)


def fashion(n: int, rng: np.random.Generator):
    if not FASHION.is_dir():
        raise FileNotFoundError(f"{FASHION} not found: apt-get install dataset-fashion-mnist")
    images, labels = read_idx(FASHION / "train-images-idx3-ubyte.gz"), read_idx(FASHION / "train-labels-idx1-ubyte.gz")
    names = list(FASHION_CLASSES)
    out, lab = [], []
    for c in range(10):
        for i in rng.permutation(np.flatnonzero(labels == c))[:n]:
            out.append(_grey_to_rgb64(images[i]))
            lab.append(c)
    return out, lab, names


def digits(n: int, rng: np.random.Generator):
    from sklearn.datasets import load_digits

    d = load_digits()
    out, lab = [], []
    for c in range(10):
        for i in rng.permutation(np.flatnonzero(d.target == c))[:n]:
            out.append(_grey_to_rgb64((d.images[i] * 255 / 16).astype(np.uint8)))
            lab.append(c)
    return out, lab, [f"digit{c}" for c in range(10)]


def photos(n: int, rng: np.random.Generator):
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    src = {"astronaut": data.astronaut(), "coffee": data.coffee(), "cat": data.chelsea(), "rocket": data.rocket(),
           "temple": china, "flower": flower}
    out, lab = [], []
    for c, img in enumerate(src.values()):
        h, w = img.shape[:2]
        for _ in range(n):
            s = int(rng.integers(SIZE, min(h, w) // 2))
            y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
            out.append(np.asarray(Image.fromarray(img[y:y + s, x:x + s]).resize((SIZE, SIZE),
                                                                                Image.Resampling.LANCZOS)))
            lab.append(c)
    return out, lab, list(src)


def _nuclei(centres, radii, angles, rng) -> np.ndarray:
    """Fluorescence-like image: bright smooth ellipses on a dark noisy background, one random tint."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    g = np.zeros((SIZE, SIZE))
    for (cy, cx), (ra, rb), t in zip(centres, radii, angles, strict=True):
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        g = np.maximum(g, rng.uniform(0.5, 1.0) * np.exp(-((u / ra) ** 2 + (v / rb) ** 2) ** 2))
    g = gaussian_filter(g, 0.8) + 0.04 * rng.normal(size=g.shape) + 0.05
    tint = rng.dirichlet((0.6, 0.6, 0.6)) * 1.6
    return _to_uint8(np.clip(g[..., None] * tint, 0, 1))


def cells_layout(kind: str, rng: np.random.Generator, count: int | None = None) -> np.ndarray:
    if kind == "sparse":
        k = count or int(rng.integers(4, 9))
        c = rng.uniform(6, SIZE - 6, (k, 2))
    elif kind == "dense":
        k = count or int(rng.integers(25, 40))
        c = rng.uniform(3, SIZE - 3, (k, 2))
    elif kind == "clustered":
        k = count or int(rng.integers(12, 20))
        hubs = rng.uniform(14, SIZE - 14, (int(rng.integers(2, 4)), 2))
        c = hubs[rng.integers(0, len(hubs), k)] + rng.normal(0, 4, (k, 2))
    else:  # elongated
        k = count or int(rng.integers(8, 16))
        c = rng.uniform(5, SIZE - 5, (k, 2))
    r = rng.uniform(2.2, 3.8, (len(c), 1)) * (np.array([[2.6, 0.7]]) if kind == "elongated" else np.ones((1, 2)))
    return _nuclei(c, r, rng.uniform(0, np.pi, len(c)), rng)


def cells(n: int, rng: np.random.Generator):
    names = ["sparse", "dense", "clustered", "elongated"]
    imgs = [cells_layout(k, rng) for k in names for _ in range(n)]
    return imgs, [c for c in range(4) for _ in range(n)], names


def lattice_pattern(kind: str, rng: np.random.Generator, period: float | None = None) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    t = rng.uniform(0, np.pi)
    u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    p = period or rng.uniform(6, 14)
    ph = rng.uniform(0, 2 * np.pi, 2)
    su, sv = np.sin(2 * np.pi * u / p + ph[0]), np.sin(2 * np.pi * v / p + ph[1])
    if kind == "dots":
        g = ((su > 0.6) & (sv > 0.6)).astype(float)
    elif kind == "hex":
        a = [np.cos(2 * np.pi / p * (xx * np.cos(t + k * np.pi / 3) + yy * np.sin(t + k * np.pi / 3)) + ph[0])
             for k in range(3)]
        g = (sum(a) > 1.5).astype(float)
    elif kind == "checker":
        g = (su * sv > 0).astype(float)
    else:  # grid lines
        g = ((np.abs(su) > 0.8) | (np.abs(sv) > 0.8)).astype(float)
    g = gaussian_filter(g, 0.6) + 0.12 * rng.normal(size=g.shape)
    return _to_uint8(_colourise(np.clip(g, 0, 1), rng))


def lattice(n: int, rng: np.random.Generator):
    names = ["dots", "hex", "checker", "grid"]
    imgs = [lattice_pattern(k, rng) for k in names for _ in range(n)]
    return imgs, [c for c in range(4) for _ in range(n)], names


def glyph(text: str, rng: np.random.Generator, size: tuple[int, int] = (26, 44)) -> np.ndarray:
    """``text`` in Pillow's default (scalable) font, dark ink on a light noisy page, jittered."""
    from PIL import ImageFont

    page = np.clip(rng.uniform(0.75, 0.95) + 0.05 * rng.normal(size=(SIZE, SIZE)), 0, 1)
    im = Image.fromarray(_to_uint8(page)).convert("L")
    font = ImageFont.load_default(size=int(rng.integers(*size)))
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
    x = rng.uniform(-x0, max(-x0 + 1, SIZE - x1))
    y = rng.uniform(-y0, max(-y0 + 1, SIZE - y1))
    d.text((x, y), text, font=font, fill=int(rng.integers(0, 70)))
    im = im.rotate(rng.normal(0, 8), resample=Image.Resampling.BILINEAR, fillcolor=int(page.mean() * 255))
    g = np.asarray(im) / 255.0
    ink, paper = rng.uniform(0, 0.35, 3), rng.uniform(0.7, 1.0, 3)
    return _to_uint8(ink + (paper - ink) * g[..., None])


def glyphs(n: int, rng: np.random.Generator):
    names = list("AKOSTX")
    imgs = [glyph(ch, rng) for ch in names for _ in range(n)]
    return imgs, [c for c in range(len(names)) for _ in range(n)], names


DOMAINS = {"stripes": stripes, "blobs": blobs, "shapes": shapes, "fashion": fashion, "digits": digits, "photos": photos,
           "cells": cells, "lattice": lattice, "glyphs": glyphs}


def make(name: str, n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n_per_class`` images per class of domain ``name`` (fewer where the data has fewer)."""
    if name not in DOMAINS:
        raise KeyError(f"unknown domain '{name}'; known: {', '.join(DOMAINS)}")
    imgs, labels, names = DOMAINS[name](n_per_class, np.random.default_rng(seed))
    return np.stack(imgs), np.asarray(labels), names
