"""Pretrain the benchmark's small backbones on the source domains (supervised, seeded, resumable).

    python scripts/bench/pretrain.py [--out DIR] [--quick] [--only ID ...]

Each backbone is a timm ``local-dir`` repo in ``DIR/backbones/<id>/`` (config.json +
model.safetensors, 64 px, mean = std = 0.5) with ``bench.json`` (domain, architecture, seed,
epochs, held-out accuracy, seconds, code version), and reference statistics built by
``proximity.reference.build_reference`` on held-out images of its domain (written to
``DIR/domains/<domain>/reference/``). A backbone whose ``bench.json`` records the same
configuration is skipped, so an interrupted run resumes where it stopped.

Two architecture families, one of them without batch norm: timm ``test_resnet`` (BN) and
``test_convnext`` (LayerNorm), plus one ``test_vit``.
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

sys.path.insert(0, str(Path(__file__).parent))
from domains import SIZE, make  # noqa: E402


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


PLANS = tuple(Plan(f"{arch.split('_')[1]}-{dom}", arch, dom) for arch, dom in (
    ("test_resnet", "stripes"), ("test_resnet", "blobs"), ("test_resnet", "shapes"), ("test_resnet", "fashion"),
    ("test_resnet", "photos"), ("test_convnext", "stripes"), ("test_convnext", "shapes"), ("test_convnext", "fashion"),
    ("test_vit", "photos"),
))
QUICK = tuple(Plan(p.id, p.arch, p.domain, n_per_class=24, epochs=1) for p in PLANS
              if p.id in ("resnet-stripes", "resnet-blobs", "convnext-shapes"))


def _model(arch: str, n_classes: int):
    import timm

    return timm.create_model(arch, num_classes=n_classes, **({"img_size": SIZE} if "vit" in arch else {}))


def _tensor(imgs: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5


def train(plan: Plan) -> tuple[torch.nn.Module, float]:
    """Train ``plan.arch`` on its domain; return the model (eval mode) and held-out accuracy."""
    imgs, labels, names = make(plan.domain, plan.n_per_class, plan.seed)
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
            flip = torch.rand(len(idx), generator=g) < 0.5
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
        imgs, _, _ = make(domain, n_per_class, seed + 1000)
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


def build_one(plan: Plan, out: Path, ref_per_class: int) -> dict:
    from timm.models import save_for_hf

    from proximity.backbones import resolve_spec
    from proximity.catalog import adhoc_entry
    from proximity.reference import build_reference

    folder = out / "backbones" / plan.id
    meta_file = folder / "bench.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()).get("key") == plan.key():
        return json.loads(meta_file.read_text()) | {"status": "up-to-date"}
    t = time.perf_counter()
    model, acc = train(plan)
    model.pretrained_cfg = {**dict(model.pretrained_cfg), "input_size": (3, SIZE, SIZE), "crop_pct": 1.0,
                            "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear"}
    save_for_hf(model, str(folder), safe_serialization=True)
    train_s = time.perf_counter() - t
    spec = resolve_spec(adhoc_entry(f"local-dir:{folder}"))
    ref = build_reference(spec, reference_images(plan.domain, out, ref_per_class, plan.seed), top_k=64,
                          output=folder / "reference.npz")
    meta = {**asdict(plan), "key": plan.key(), "val_accuracy": acc, "train_seconds": round(train_s, 1),
            "reference": str(ref.relative_to(folder)), "code_version": _code_version(),
            "torch": torch.__version__}
    meta_file.write_text(json.dumps(meta, indent=2))
    return meta | {"status": "built"}


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=data_dir() / "bench")
    ap.add_argument("--quick", action="store_true", help="three backbones, tiny data, one epoch (minutes)")
    ap.add_argument("--only", nargs="*", help="backbone ids to build")
    args = ap.parse_args(argv)
    plans = [p for p in (QUICK if args.quick else PLANS) if not args.only or p.id in args.only]
    for plan in plans:
        meta = build_one(plan, args.out, ref_per_class=8 if args.quick else 100)
        print(f"{plan.id:18s} {meta['status']:10s} held-out acc {meta['val_accuracy']:.3f}  "
              f"train {meta['train_seconds']:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
