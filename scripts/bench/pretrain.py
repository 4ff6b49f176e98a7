"""Pretrain the benchmark's small backbones on the source domains (supervised, seeded, resumable).

    python scripts/bench/pretrain.py [--out DIR] [--quick] [--only ID ...]

Each backbone is a timm ``local-dir`` repo in ``DIR/backbones/<id>/`` (config.json +
model.safetensors, 64 px, mean = std = 0.5) with ``bench.json`` (domain, architecture, seed,
epochs, held-out accuracy, seconds, code version), and reference statistics built by
``proximity.reference.build_reference`` on held-out images of its domain (written to
``DIR/domains/<domain>/reference/``). A backbone whose ``bench.json`` records the same
configuration is skipped, so an interrupted run resumes where it stopped.

Protocol 1: two architecture families, one of them without batch norm: timm ``test_resnet``
(BN) and ``test_convnext`` (LayerNorm), plus one ``test_vit``.

Protocol 2 (``--protocol 2``, into ``DIR/v2/backbones``): 17 backbones over four families —
BN conv nets (``test_resnet``), LayerNorm conv nets (``test_convnext``), ViTs (``test_vit``) and
depthwise MBConv nets (``test_efficientnet``) — and eight source domains, plus the
**generalist**: ``test_resnet`` at 1.5× width (0.8 M parameters against 0.1–0.4 M), trained on
the union of all eight domains (42 classes): the "famous ImageNet model" of this world. Each
architecture has its own schedule (``SCHEDULES``); a backbone must reach ``MIN_ACCURACY`` on
held-out source images, else it is retrained once with twice the epochs (and if it still
misses, ``bench.json`` says so and the results page lists it). Every backbone also gets its
**generic accuracy** — a linear probe on frozen features over one fixed evaluation set drawn
from all eight domains (the ImageNet top-1 of this world: the generalist should lead it) — and
its parameter count, the two static priors of protocol 2.

``convnext-lattice`` was planned and dropped: test_convnext reached 0.46 held-out on lattices
(twice the epochs included), far below the bar, so a ConvNeXt on blobs took its place before
any ground truth of it was used. ``efficientnet-lattice`` reached 0.50 as well: the lattice
domain (dots / hexagonal / checker / grid at random period and rotation) is too hard for these
small networks in their budget, so an EfficientNet on fashion took its place too; lattices stay
in the generalist's union and in two targets (then "near" only the generalist's data).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from .domains import SIZE, make  # noqa: E402


@dataclass(frozen=True)
class Plan:
    id: str
    arch: str
    domain: str
    n_per_class: int = 600
    epochs: int = 8
    seed: int = 0
    lr: float = 2e-3

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


MIN_ACCURACY = 0.80
# width × 1.5 of timm's test_resnet (channels 32/48/48/96, stem 16)
WIDE = {"channels": [48, 72, 72, 144], "stem_width": 24}
ARCHS = {"wide_resnet": ("test_resnet", WIDE)}
SCHEDULES = {"test_resnet": (8, 2e-3), "test_efficientnet": (10, 3e-3), "test_convnext": (16, 3e-3),
             "test_vit": (16, 1e-3), "wide_resnet": (12, 2e-3)}
V2_DOMAINS = ("stripes", "blobs", "shapes", "fashion", "photos", "cells", "lattice", "glyphs")
PLANS_V2 = tuple(Plan(f"{arch.split('_')[-1]}-{dom}", arch, dom, epochs=SCHEDULES[arch][0], lr=SCHEDULES[arch][1])
                 for arch, doms in (
                     ("test_resnet", ("stripes", "blobs", "shapes", "fashion", "photos", "cells")),
                     ("test_convnext", ("stripes", "shapes", "fashion", "blobs")),
                     ("test_vit", ("photos", "glyphs", "blobs")),
                     ("test_efficientnet", ("glyphs", "fashion", "cells")))
                 for dom in doms) + (Plan("generalist-all", "wide_resnet", "all", n_per_class=250,
                                          epochs=SCHEDULES["wide_resnet"][0], lr=SCHEDULES["wide_resnet"][1]),)
QUICK_V2 = tuple(Plan(p.id, p.arch, p.domain, n_per_class=12 if p.domain == "all" else 24, epochs=1, lr=p.lr)
                 for p in PLANS_V2
                 if p.id in ("resnet-stripes", "convnext-shapes", "efficientnet-cells", "generalist-all"))

PLANS = tuple(Plan(f"{arch.split('_')[1]}-{dom}", arch, dom) for arch, dom in (
    ("test_resnet", "stripes"), ("test_resnet", "blobs"), ("test_resnet", "shapes"), ("test_resnet", "fashion"),
    ("test_resnet", "photos"), ("test_convnext", "stripes"), ("test_convnext", "shapes"), ("test_convnext", "fashion"),
    ("test_vit", "photos"),
))
QUICK = tuple(Plan(p.id, p.arch, p.domain, n_per_class=24, epochs=1) for p in PLANS
              if p.id in ("resnet-stripes", "resnet-blobs", "convnext-shapes"))


def _model(arch: str, n_classes: int):
    import timm

    name, args = ARCHS.get(arch, (arch, {}))
    return timm.create_model(name, num_classes=n_classes, **args, **({"img_size": SIZE} if "vit" in arch else {}))


def source_data(domain: str, n_per_class: int, seed: int):
    """A domain's labelled images, or for ``all`` the union of the protocol-2 domains (classes
    renumbered domain by domain)."""
    if domain != "all":
        return make(domain, n_per_class, seed)
    imgs, labels, names = [], [], []
    for d in V2_DOMAINS:
        x, y, n = make(d, n_per_class, seed)
        imgs.append(x)
        labels.append(y + len(names))
        names += [f"{d}/{c}" for c in n]
    return np.concatenate(imgs), np.concatenate(labels), names


def _tensor(imgs: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5


NO_FLIP_DOMAINS = ("stripes", "glyphs")   # a mirror image changes the class (orientation, letters)


def train(plan: Plan, protocol: int = 1) -> tuple[torch.nn.Module, float]:
    """Train ``plan.arch`` on its domain; return the model (eval mode) and held-out accuracy.
    Random horizontal flips — under protocol 2 not for classes of ``NO_FLIP_DOMAINS`` (protocol 1
    flipped every class, stripes' 45°/135° included, which capped its stripes backbones at 0.75)."""
    imgs, labels, names = source_data(plan.domain, plan.n_per_class, plan.seed)
    no_flip = torch.tensor([protocol >= 2
                            and (plan.domain if plan.domain != "all" else n.split("/")[0]) in NO_FLIP_DOMAINS
                            for n in names])
    rng = np.random.default_rng(plan.seed)
    order = rng.permutation(len(labels))
    n_val = max(len(names), len(order) // 7)
    val, tr = order[:n_val], order[n_val:]
    x, y = _tensor(imgs), torch.from_numpy(labels).long()
    torch.manual_seed(plan.seed)
    model = _model(plan.arch, len(names))
    opt = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=0.05)
    steps = plan.epochs * max(1, len(tr) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=plan.lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(plan.seed)
    model.train()
    for _ in range(plan.epochs):
        perm = torch.from_numpy(tr)[torch.randperm(len(tr), generator=g)]
        for i in range(0, len(perm) - 63 if len(perm) >= 64 else 1, 64):
            idx = perm[i:i + 64]
            xb = x[idx]
            flip = (torch.rand(len(idx), generator=g) < 0.5) & ~no_flip[y[idx]]
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch < steps - 1:
                sched.step()
    model.eval()
    with torch.inference_mode():
        acc = float((model(x[val]).argmax(1) == y[val]).float().mean())
    return model, acc


def reference_images(domain: str, out: Path, n_per_class: int, seed: int) -> Path:
    """Held-out images of ``domain`` (another seed than training) as PNGs, for reference statistics."""
    folder = out / "domains" / domain / f"reference-{n_per_class}"
    if not folder.is_dir():
        imgs, _, _ = source_data(domain, n_per_class, seed + 1000)
        folder.mkdir(parents=True)
        for i, img in enumerate(imgs):
            Image.fromarray(img).save(folder / f"{i:05d}.png")
    return folder


def _code_version() -> str:
    if os.environ.get("BENCH_CODE_VERSION"):      # a copy of the tree without .git (a lent GPU machine)
        return os.environ["BENCH_CODE_VERSION"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


GENERIC_PER_CLASS = 40     # the generic evaluation set: 40 + 40 images per class of all 42 classes


def generic_accuracy(model: torch.nn.Module, seed: int = 7) -> float:
    """The "ImageNet top-1" of this world: a logistic probe on the frozen pooled features of
    ``model``, trained on 40 images per class of all eight protocol-2 domains (42 classes) and
    scored on 40 others (seeds that no backbone was trained on)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    feats, labels = [], []
    for s in (seed, seed + 1):
        imgs, y, _ = source_data("all", GENERIC_PER_CLASS, 5000 + s)
        with torch.inference_mode():
            x = _tensor(imgs)
            feats.append(torch.cat([model.forward_head(model.forward_features(x[i:i + 256]), pre_logits=True)
                                    for i in range(0, len(x), 256)]).numpy())
        labels.append(y)
    scaler = StandardScaler().fit(feats[0])
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(feats[0]), labels[0])
    return float(clf.score(scaler.transform(feats[1]), labels[1]))


def build_one(plan: Plan, out: Path, ref_per_class: int, min_accuracy: float = 0.0, priors: bool = False) -> dict:
    from timm.models import save_for_hf

    from proximity.backbones import resolve_spec
    from proximity.catalog import adhoc_entry
    from proximity.reference import build_reference

    folder = out / "backbones" / plan.id
    meta_file = folder / "bench.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()).get("key") == plan.key():
        return json.loads(meta_file.read_text()) | {"status": "up-to-date"}
    t = time.perf_counter()
    model, acc = train(plan, 2 if priors else 1)
    attempts = [{"epochs": plan.epochs, "val_accuracy": acc}]
    if acc < min_accuracy:          # the stated bar: retrain once with twice the epochs
        retry = Plan(plan.id, plan.arch, plan.domain, plan.n_per_class, plan.epochs * 2, plan.seed, plan.lr)
        model2, acc2 = train(retry, 2 if priors else 1)
        attempts.append({"epochs": retry.epochs, "val_accuracy": acc2})
        if acc2 > acc:
            model, acc = model2, acc2
    model.pretrained_cfg = {**dict(model.pretrained_cfg), "input_size": (3, SIZE, SIZE), "crop_pct": 1.0,
                            "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear"}
    save_for_hf(model, str(folder), safe_serialization=True, model_args=ARCHS.get(plan.arch, ("", None))[1])
    train_s = time.perf_counter() - t
    spec = resolve_spec(adhoc_entry(f"local-dir:{folder}"))
    ref = build_reference(spec, reference_images(plan.domain, out, ref_per_class, plan.seed), top_k=64,
                          output=folder / "reference.npz")
    meta = {**asdict(plan), "key": plan.key(), "val_accuracy": acc, "train_seconds": round(train_s, 1),
            "reference": str(ref.relative_to(folder)), "code_version": _code_version(),
            "torch": torch.__version__}
    if priors:
        meta |= {"attempts": attempts, "min_accuracy": min_accuracy, "meets_min_accuracy": acc >= min_accuracy,
                 "params_m": sum(p.numel() for n, p in model.named_parameters()
                                 if not n.startswith(model.default_cfg.get("classifier", "head"))) / 1e6,
                 "generic_accuracy": generic_accuracy(model)}
    meta_file.write_text(json.dumps(meta, indent=2))
    return meta | {"status": "built"}


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=data_dir() / "bench")
    ap.add_argument("--quick", action="store_true", help="three backbones, tiny data, one epoch (minutes)")
    ap.add_argument("--only", nargs="*", help="backbone ids to build")
    ap.add_argument("--protocol", type=int, choices=(1, 2), default=1,
                    help="2: the protocol-2 backbones, into OUT/v2/backbones")
    args = ap.parse_args(argv)
    if args.protocol == 2:
        out, plans, bar = args.out / "v2", (QUICK_V2 if args.quick else PLANS_V2), (0.0 if args.quick else MIN_ACCURACY)
    else:
        out, plans, bar = args.out, (QUICK if args.quick else PLANS), 0.0
    for plan in plans:
        if args.only and plan.id not in args.only:
            continue
        meta = build_one(plan, out, ref_per_class=8 if args.quick else 100, min_accuracy=bar, priors=args.protocol == 2)
        extra = (f"  generic {meta['generic_accuracy']:.3f}  {meta['params_m']:.2f} M" if "generic_accuracy" in meta
                 else "")
        print(f"{plan.id:18s} {meta['status']:10s} held-out acc {meta['val_accuracy']:.3f}  "
              f"train {meta['train_seconds']:6.1f} s{extra}", flush=True)


if __name__ == "__main__":
    main()
