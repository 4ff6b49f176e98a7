"""Target tasks of the ground-truth benchmark, split up front into dev and test (seeded).

Each target is labelled 64 px RGB images with *new* classes, relative to the source domains of
``domains.py``: near one source, near none, small-n (the start matters most there), and
colour/contrast shifts of a source. ``dev`` targets may be used to choose how signals are
combined; ``test`` targets only to report.

``make_target(name, seed)`` returns ``(images uint8 (N, 64, 64, 3), labels int (N,), names)``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from . import domains as D


@dataclass(frozen=True)
class Target:
    name: str
    split: str            # "dev" | "test"
    relation: str         # what it is near, for the results page
    n_per_class: int
    build: Callable[[int, np.random.Generator], tuple[list, list, list]]


def _stripes_at(angles, contrast=1.0, invert=False):
    def build(n, rng):
        yy, xx = np.mgrid[0:D.SIZE, 0:D.SIZE].astype(np.float64)
        imgs, labels = [], []
        for c, angle in enumerate(angles):
            for _ in range(n):
                t = np.deg2rad(angle + rng.normal(0, 3))
                g = np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * (xx * np.cos(t) + yy * np.sin(t)) + rng.uniform(0, 6.3))
                g = np.clip((contrast * (g + 0.4 * rng.normal(size=g.shape)) + 1.4) / 2.8, 0, 1)
                rgb = D._colourise(g, rng)
                imgs.append(D._to_uint8(1 - rgb if invert else rgb))
                labels.append(c)
        return imgs, labels, [f"{a:g}deg" for a in angles]
    return build


def _blob_scales(scales):
    def build(n, rng):
        imgs, labels = [], []
        for c, s in enumerate(scales):
            for _ in range(n):
                from scipy.ndimage import gaussian_filter

                g = gaussian_filter(rng.normal(size=(D.SIZE, D.SIZE)), s * rng.uniform(0.9, 1.1), mode="wrap")
                imgs.append(D._to_uint8(D._colourise((g - g.min()) / (np.ptp(g) + 1e-8), rng)))
                labels.append(c)
        return imgs, labels, [f"s{s:g}" for s in scales]
    return build


def _new_shapes(n, rng):
    names = ["ellipse", "ring", "diamond"]
    imgs, labels = [], []
    for c, shape in enumerate(names):
        for _ in range(n):
            im = Image.fromarray(D._to_uint8(D._colourise(np.clip(0.5 + 0.15 * rng.normal(size=(D.SIZE, D.SIZE)), 0, 1),
                                                          rng)))
            d = ImageDraw.Draw(im)
            r = rng.uniform(12, 24)
            cx, cy = rng.uniform(r, D.SIZE - r, 2)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            if shape == "ellipse":
                d.ellipse([cx - r, cy - r / 2, cx + r, cy + r / 2], fill=fill)
            elif shape == "ring":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=4)
            else:
                d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
            imgs.append(np.asarray(im))
            labels.append(c)
    return imgs, labels, names


def _fashion_subset(classes, invert=False, test_split=True):
    def build(n, rng):
        images = D.read_idx(D.FASHION / ("t10k-images-idx3-ubyte.gz" if test_split else "train-images-idx3-ubyte.gz"))
        labels = D.read_idx(D.FASHION / ("t10k-labels-idx1-ubyte.gz" if test_split else "train-labels-idx1-ubyte.gz"))
        out, lab = [], []
        for c, k in enumerate(classes):
            for i in rng.permutation(np.flatnonzero(labels == k))[:n]:
                img = D._grey_to_rgb64(images[i])
                out.append(255 - img if invert else img)
                lab.append(c)
        return out, lab, [f"class{k}" for k in classes]
    return build


def _digits(n, rng):
    return D.digits(n, rng)


def _grey_photos(n, rng):
    from skimage import data

    src = {"camera": data.camera(), "coins": data.coins(), "moon": data.moon(), "clock": data.clock()}
    out, lab = [], []
    for c, img in enumerate(src.values()):
        h, w = img.shape[:2]
        for _ in range(n):
            s = int(rng.integers(D.SIZE, min(h, w) // 2))
            y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
            out.append(D._grey_to_rgb64(np.asarray(Image.fromarray(img[y:y + s, x:x + s]))))
            lab.append(c)
    return out, lab, list(src)


def _textures(n, rng):
    from skimage import data

    out, lab = [], []
    for c, name in enumerate(("brick", "grass", "gravel")):
        img = getattr(data, name)()
        for _ in range(n):
            s = int(rng.integers(D.SIZE, 200))
            y, x = int(rng.integers(0, 512 - s)), int(rng.integers(0, 512 - s))
            out.append(D._grey_to_rgb64(np.asarray(Image.fromarray(img[y:y + s, x:x + s]))))
            lab.append(c)
    return out, lab, ["brick", "grass", "gravel"]


def _microscopy(n, rng):
    from skimage import data

    out, lab = [], []
    for c, img in enumerate((data.cell(), data.immunohistochemistry())):
        h, w = img.shape[:2]
        for _ in range(n):
            s = int(rng.integers(D.SIZE, min(h, w) // 3))
            y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
            crop = Image.fromarray(img[y:y + s, x:x + s]).resize((D.SIZE, D.SIZE), Image.Resampling.LANCZOS)
            arr = np.asarray(crop)
            out.append(arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2))
            lab.append(c)
    return out, lab, ["phase-contrast", "ihc"]


TARGETS = (
    Target("stripes-new-angles", "dev", "near stripes", 60, _stripes_at((22.5, 67.5, 112.5, 157.5))),
    Target("stripes-low-contrast-inverted", "test", "colour/contrast shift of stripes", 60,
           _stripes_at((10, 55, 100, 145), contrast=0.4, invert=True)),
    Target("blobs-new-scales", "dev", "near blobs", 60, _blob_scales((1.5, 3, 6))),
    Target("shapes-new", "test", "near shapes", 60, _new_shapes),
    Target("fashion-5-small", "dev", "near fashion, small n", 20, _fashion_subset((0, 2, 4, 6, 8))),
    Target("fashion-inverted", "test", "contrast shift of fashion", 40, _fashion_subset((1, 3, 5, 7, 9), invert=True)),
    Target("digits", "dev", "near none (handwriting)", 40, _digits),
    Target("digits-small", "test", "near none, small n", 20, _digits),
    Target("grey-photos", "test", "grey natural photos (near photos, colour removed)", 40, _grey_photos),
    Target("textures", "dev", "near none (natural textures)", 60, _textures),
    Target("microscopy", "test", "near none (microscopy)", 40, _microscopy),
    Target("stripes-fine-angles", "dev", "near stripes, hard", 50, _stripes_at((0, 15, 30, 45))),
)


def make_target(name: str, seed: int = 0, n_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The target's images; the random stream depends on (seed, name), so targets drawn from the
    same data (digits / digits-small) do not share images by construction of the stream."""
    t = next((t for t in TARGETS if t.name == name), None)
    if t is None:
        raise KeyError(f"unknown target '{name}'; known: {', '.join(x.name for x in TARGETS)}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    imgs, labels, names = t.build(n_per_class or t.n_per_class, rng)
    return np.stack(imgs), np.asarray(labels), names
