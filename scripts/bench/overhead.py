"""Benchmark: the cost of a `proximity rank` run next to the bare forward passes it needs.

Builds (once, in a temporary folder) 500 labelled 256×256 JPEG images (5 classes of smoothed
noise) and two small backbones saved as timm local-dir repos (resnet18 and
mobilenetv3_large_100 architectures, 224 px, seeded random weights: weights do not change the
cost). Then measures, in the same process:

1. bare forward: ``model(x)`` over the already-preprocessed 500 images, per backbone;
2. rank, control excluded: ``proximity.rank(..., control=False, use_cache=False)``;
3. the random-weights control pass on its own (from the timings of a run with control);
4. a cached re-run.

Prints the figures and the ratio (2) / (1): the overhead of everything that is not the forward
pass (decode, preprocessing, moments, probes). Usage: ``python scripts/bench/overhead.py [--n 500]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter


def make_images(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = i % 5
        img = gaussian_filter(rng.normal(size=(256, 256, 3)), sigma=(1 + 2 * cls, 1 + 2 * cls, 0))
        img = np.clip(128 + 40 * img / (img.std() + 1e-8), 0, 255).astype(np.uint8)
        d = root / f"class{cls}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:04d}.jpg", quality=90)
    return root


def make_backbone(arch: str, folder: Path) -> Path:
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=10)
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def bare_forward(model_dir: Path, sample, batch_size: int) -> float:
    from proximity.backbones import open_backbone, resolve_spec
    from proximity.catalog import adhoc_entry

    spec = resolve_spec(adhoc_entry(f"local-dir:{model_dir}"))
    bb = open_backbone(spec)
    batches = [spec.preprocess(b) for b in sample.batches(batch_size)]
    with torch.inference_mode():
        bb.model(batches[0][:2])  # warm-up
        t = time.perf_counter()
        for x in batches:
            bb.model(x)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="proximity-bench-"))
    os.environ.setdefault("PROXIMITY_CACHE_DIR", str(tmp / "cache"))
    import proximity

    images = make_images(tmp / "images", args.n)
    archs = ["resnet18", "mobilenetv3_large_100"]
    dirs = [make_backbone(a, tmp / a) for a in archs]
    models = [f"local-dir:{d}" for d in dirs]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} images, batch {args.batch_size}")

    t = time.perf_counter()
    sample = proximity.load_sample(images, sample=args.n)
    t_decode = time.perf_counter() - t
    bare = {a: bare_forward(d, sample, args.batch_size) for a, d in zip(archs, dirs, strict=True)}
    for a in archs:
        print(f"bare forward {a:24s} {bare[a]:7.2f} s  ({args.n / bare[a]:6.1f} img/s)")
    bare_total = sum(bare.values())

    t = time.perf_counter()
    r = proximity.rank(images, models=models, sample=args.n, control=False, use_cache=False, batch_size=args.batch_size)
    t_rank = time.perf_counter() - t
    signals = sum(c.timings["signals_s"] for c in r.ranking)
    print(f"decode {args.n} images once             {t_decode:7.2f} s")
    print(f"rank, control excluded (no cache)       {t_rank:7.2f} s  = {t_rank / bare_total:.2f} x bare forward "
          f"({bare_total:.2f} s)")
    print(f"  of which signals (probes, kNN, shift) {signals:7.2f} s")

    r = proximity.rank(images, models=models, sample=args.n, control=True, use_cache=True, batch_size=args.batch_size)
    for c in r.ranking:
        print(f"random-weights control pass {c.model.split('/')[-1]:12s} {c.timings['control_s']:7.2f} s"
              f" (BN re-estimation on 256 images + forward)")
    t = time.perf_counter()
    r2 = proximity.rank(images, models=models, sample=args.n, control=True, use_cache=True, batch_size=args.batch_size)
    t_cached = time.perf_counter() - t
    assert all(c.cached for c in r2.ranking)
    print(f"cached re-run (incl. decoding + signals) {t_cached:6.2f} s")


if __name__ == "__main__":
    main()
