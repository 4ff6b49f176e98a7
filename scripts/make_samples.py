"""Write small labelled image folders from real offline data, for the quickstart.

    python scripts/make_samples.py samples            # -> samples/<folder>/<class>/<i>.png

Folders (each ``<class>/<i>.png``, seeded, deterministic):

* ``natural``     — 96 px crops of scikit-learn's and scikit-image's colour photos (class = photo);
* ``textures``    — 96 px crops of scikit-image's brick, grass and gravel textures;
* ``microscopy``  — 96 px crops of scikit-image's ``cell`` (phase contrast) and
  ``immunohistochemistry`` (stained tissue) images;
* ``documents``   — 64 px crops of scikit-image's ``page`` (scanned text) and ``text`` (scene text);
* ``digits``      — scikit-learn's 8×8 handwritten digits, upscaled to 32 px;
* ``fashion-mnist`` — 28 px Fashion-MNIST test images (10 classes), from Debian's
  ``dataset-fashion-mnist`` when ``/usr/share/datasets/fashion-mnist`` exists (else skipped).

Needs scikit-image (``pip install 'proximity[samples]'``). Only bundled images are used:
those that scikit-image would download (``pooch``) are not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench.domains import FASHION, FASHION_CLASSES, read_idx   # scripts/bench (this script's folder is on sys.path)
from PIL import Image


def _crops(img: np.ndarray, n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        s = int(rng.integers(size, max(size + 1, min(h, w) // 2)))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = Image.fromarray(img[y:y + s, x:x + s]).resize((size, size), Image.Resampling.LANCZOS)
        out.append(np.asarray(crop))
    return out


def _write(root: Path, classes: dict[str, list[np.ndarray]]) -> int:
    n = 0
    for label, images in classes.items():
        d = root / label
        d.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            Image.fromarray(img).save(d / f"{i:03d}.png")
            n += 1
    return n


def natural(rng, per_class):
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "cat": data.chelsea(), "rocket": data.rocket(),
              "temple": china, "flower": flower}
    return {k: _crops(v, per_class, 96, rng) for k, v in photos.items()}


def textures(rng, per_class):
    from skimage import data

    return {k: _crops(getattr(data, k)(), per_class, 96, rng) for k in ("brick", "grass", "gravel")}


def microscopy(rng, per_class):
    from skimage import data

    return {"phase-contrast-cell": _crops(data.cell(), per_class, 96, rng),
            "ihc-stained-tissue": _crops(data.immunohistochemistry(), per_class, 96, rng)}


def documents(rng, per_class):
    from skimage import data

    return {"scanned-page": _crops(data.page(), per_class, 64, rng),
            "scene-text": _crops(data.text(), per_class, 64, rng)}


def digits(rng, per_class):
    from sklearn.datasets import load_digits

    d = load_digits()
    out = {}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(d.target == c))[:per_class]
        grey = [Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)) for i in idx]
        imgs = [np.asarray(g.resize((32, 32), Image.Resampling.BICUBIC)) for g in grey]
        out[f"digit-{c}"] = imgs
    return out


def fashion_mnist(rng, per_class):
    images, labels = read_idx(FASHION / "t10k-images-idx3-ubyte.gz"), read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    return {name: [images[i] for i in rng.permutation(np.flatnonzero(labels == c))[:per_class]]
            for c, name in enumerate(FASHION_CLASSES)}


BUILDERS = {"natural": natural, "textures": textures, "microscopy": microscopy, "documents": documents,
            "digits": digits, "fashion-mnist": fashion_mnist}


def main() -> None:
    ap = argparse.ArgumentParser(description="Write labelled sample image folders from real offline data.")
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument("--per-class", type=int, default=40, help="images per class (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name, build in BUILDERS.items():
        if name == "fashion-mnist" and not FASHION.is_dir():
            print(f"skipped {name}: {FASHION} not found (apt-get install dataset-fashion-mnist)")
            continue
        n = _write(args.out / name, build(np.random.default_rng(args.seed), args.per_class))
        print(f"wrote {n:4d} images to {args.out / name}")


if __name__ == "__main__":
    main()
