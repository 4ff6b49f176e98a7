"""Benchmark: what a `proximity rank` run costs next to the bare forward passes it needs, as a user meets it.

    python scripts/bench/overhead.py [--images DIR] [--model SRC ...] [--n 500] [--repeat 2] [--batch-size 32]
                                     [--cascade K] [--device cpu|cuda|mps] [--precision float32|bfloat16|float16]
                                     [--json FILE]

Every figure is the wall time of a separate process (imports, decoding and preprocessing
included), on the same images, the best of ``--repeat`` runs (≥ 2):

1. **bare forward** — a plain timm script (``BARE`` below): decode each image with PIL, timm's
   own eval transform, ``model(x)`` in batches, for each backbone in turn; and the same script
   with the model and its inputs channels-last, as rank runs convolutional networks (the
   ratios against it are rank's own overhead, the memory format's gain set aside);
2. **rank label-free** — ``proximity rank DIR --model … --labels none`` (its control: one
   random-weights pass per architecture on 64 of the images);
3. **rank with labels** — ``proximity rank DIR --model …`` (the control on 64 stratified images,
   the default ``--control-images``; the core signals, the default ``--signals``);
4. **cached re-run** — (3) again on the cache (3) wrote: no forward pass, no signal;
5. the **share of the signals** in (3) (the ``signals_s`` of its JSON over its wall time);
6. with ``--cascade K``: the catalog cascade on K benchmark dev targets with every offline
   backbone (``scripts/bench/cascade.py``): its speed-up and how often it keeps the top 3;
7. the **throughput** of (1)–(3) in images/s (images × backbones / wall time): on a GPU
   (``--device cuda``) issue 14's goal is rank at ≥ 70 % of the bare script's.

``--device`` and ``--precision`` apply to the bare script (``model.to(device)``, the same
autocast) and to rank (``--device``, ``--precision``; rank also runs convolutional networks
channels-last, the bare script does not).

Both read every image of the folder. Each rank run has an empty evidence cache of its own.
Without ``--images``, 500 labelled 256 px
JPEGs (5 classes of smoothed noise) are made; without ``--model``, two backbones are saved as
timm ``local-dir`` repos (resnet18 and mobilenetv3_large_100 at 224 px, seeded random weights:
weights do not change the cost). Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script (python scripts/bench/overhead.py): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"

BARE = r'''
import contextlib, sys, time
from pathlib import Path
import timm, torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
root, batch, device, precision, memory = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
models = sys.argv[6:]
fmt = torch.channels_last if memory == "channels_last" else torch.contiguous_format
files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
amp = (torch.autocast(device, dtype=getattr(torch, precision)) if precision != "float32"
       else contextlib.nullcontext())
for name in models:
    model = timm.create_model(name.removeprefix("timm:"), pretrained=True, num_classes=0).eval().to(device)
    model = model.to(memory_format=fmt)
    tf = create_transform(**resolve_data_config(model=model))
    with torch.inference_mode(), amp:
        for i in range(0, len(files), batch):
            x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files[i:i + batch]])
            model(x.to(device).contiguous(memory_format=fmt)).float().cpu()
'''


def make_images(root: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    for i in range(n):
        cls = i % 5
        img = gaussian_filter(rng.normal(size=(256, 256, 3)), sigma=(1 + 2 * cls, 1 + 2 * cls, 0))
        img = np.clip(128 + 40 * img / (img.std() + 1e-8), 0, 255).astype(np.uint8)
        d = root / f"class{cls}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:04d}.jpg", quality=90)
    return root


def make_backbone(arch: str, folder: Path) -> str:
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(0)
    save_for_hf(timm.create_model(arch, num_classes=10), str(folder), safe_serialization=True)
    return f"local-dir:{folder}"


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return wall


def _rank_cmd(images: Path, models: list[str], n: int, batch: int, out: Path, *extra: str,
              device: str = "cpu", precision: str = "float32") -> list[str]:
    cmd = [sys.executable, "-m", "proximity", "rank", str(images), "--sample", str(n), "--batch-size", str(batch),
           "--device", device, "--precision", precision, "--quiet", "--format", "json", "--output", str(out), *extra]
    for m in models:
        cmd += ["--model", m]
    return cmd


def measure(images: Path, models: list[str], *, batch: int, repeat: int, tmp: Path, device: str = "cpu",
            precision: str = "float32") -> dict:
    env = dict(os.environ)
    best: dict[str, float] = {}
    signals_share = []

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, float("inf")), value)

    n_files = len([p for p in images.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")])
    n = n_files          # the bare script reads every file: rank takes them all too
    for r in range(repeat):
        keep("bare", _wall([sys.executable, "-c", BARE, str(images), str(batch), device, precision, "contiguous",
                            *models], env))
        keep("bare_channels_last", _wall([sys.executable, "-c", BARE, str(images), str(batch), device, precision,
                                          "channels_last", *models], env))
        out = tmp / f"lf{r}.json"
        on = {"device": device, "precision": precision}
        keep("label_free", _wall(_rank_cmd(images, models, n, batch, out, "--labels", "none", **on),
                                 {**env, "PROXIMITY_CACHE_DIR": str(tmp / f"cache-lf{r}")}))
        out = tmp / f"lab{r}.json"
        cache_env = {**env, "PROXIMITY_CACHE_DIR": str(tmp / f"cache-lab{r}")}
        wall = _wall(_rank_cmd(images, models, n, batch, out, **on), cache_env)
        keep("labels", wall)
        got = json.loads(out.read_text())
        signals_share.append(sum(c["timings"].get("signals_s", 0.0) for c in got["ranking"]) / wall)
        keep("cached", _wall(_rank_cmd(images, models, n, batch, tmp / f"again{r}.json", **on), cache_env))
        again = json.loads((tmp / f"again{r}.json").read_text())
        assert all(c["cached"] for c in again["ranking"]), "the re-run was not served from the cache"
        print(f"  best after run {r + 1}/{repeat}: " + ", ".join(f"{k} {v:.1f} s" for k, v in best.items()), flush=True)
    return {"images": n_files, "models": models, "batch_size": batch, "repeat": repeat, "device": device,
            "precision": precision,
            "images_per_s": {k: round(n_files * len(models) / best[k], 1) for k in ("bare", "label_free", "labels")},
            "seconds": {k: round(v, 2) for k, v in best.items()},
            "ratios": {"label_free": round(best["label_free"] / best["bare"], 3),
                       "labels": round(best["labels"] / best["bare"], 3),
                       "label_free_vs_channels_last": round(best["label_free"] / best["bare_channels_last"], 3),
                       "labels_vs_channels_last": round(best["labels"] / best["bare_channels_last"], 3),
                       "cached_vs_first": round(best["cached"] / best["labels"], 3)},
            "signals_share_of_labels_run": round(min(signals_share), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=None, help="a folder of labelled images (class sub-folders)")
    ap.add_argument("--model", action="append", default=None, help="a backbone source (repeatable)")
    ap.add_argument("--n", type=int, default=500, help="images to make when no --images is given")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2, help="runs per figure; the best is kept (≥ 2)")
    ap.add_argument("--cascade", type=int, default=0, help="also measure the cascade on this many dev targets")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"),
                    help="where both the bare script and rank run (a GPU: the throughput goal, ≥ 70 %% of the bare "
                         "script's images/s)")
    ap.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "float16"),
                    help="autocast both the bare script and rank (--precision) to this dtype")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.repeat < 2:
        ap.error("--repeat must be at least 2 (each figure is the best of ≥ 2 runs)")
    tmp = Path(tempfile.mkdtemp(prefix="proximity-overhead-"))
    images = args.images or make_images(tmp / "images", args.n)
    models = args.model or [make_backbone(a, tmp / a) for a in ("resnet18", "mobilenetv3_large_100")]
    import torch

    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
               f"threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{machine}\n{args.repeat} runs per figure, best kept; models: {', '.join(models)}")
    res = measure(images, models, batch=args.batch_size, repeat=args.repeat, tmp=tmp, device=args.device,
                  precision=args.precision)
    res["machine"] = machine
    s, r = res["seconds"], res["ratios"]
    print(f"\n{res['images']} images, batch {args.batch_size}, {args.device}, {args.precision}")
    print(f"bare forward passes (plain timm script)   {s['bare']:8.1f} s")
    print(f"bare, channels-last (as rank runs them)   {s['bare_channels_last']:8.1f} s")
    print(f"rank, label-free                          {s['label_free']:8.1f} s  = {r['label_free']:.2f} × bare, "
          f"{r['label_free_vs_channels_last']:.2f} × bare channels-last")
    print(f"rank, with labels (control included)      {s['labels']:8.1f} s  = {r['labels']:.2f} × bare, "
          f"{r['labels_vs_channels_last']:.2f} × bare channels-last")
    print(f"cached re-run                             {s['cached']:8.1f} s  = "
          f"{100 * r['cached_vs_first']:.0f} % of the first")
    print(f"share of the signals in the labelled run  {100 * res['signals_share_of_labels_run']:7.1f} %")
    ips = res["images_per_s"]
    print(f"images/s (images × backbones / wall)       bare {ips['bare']}, label-free {ips['label_free']} "
          f"({100 * ips['label_free'] / ips['bare']:.0f} %), with labels {ips['labels']} "
          f"({100 * ips['labels'] / ips['bare']:.0f} %)")
    if args.cascade:
        from . import cascade

        from proximity.cache import data_dir

        cats = cascade.offline_catalogs(data_dir() / "bench" / "v2", True, tmp)
        res["cascade"] = cascade.measure(cascade.dev_targets(args.cascade), cats, per_class=32, shortlist=6,
                                         labels="auto", tmp=tmp)
        print("cascade: " + cascade.summary_line(res["cascade"]))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
