"""Is the zoo tier's labelled failure the resolution mismatch? LogME at 64 px against native size.

    python scripts/bench/zoo_resolution.py [--state scripts/bench/results/state.json]

The zoo tier's ground truth fine-tunes every member at the targets' 64 px, while proximity scores
each member at its native input size (224–260 px, the images upsampled), as a user's run would.
This exploratory check (outside the product; nothing ships from it) computes LogME of each
member's frozen pooled features on each target's training split twice — at 64 px and at the
member's native size, bilinear, with the member's own mean and std — and prints, per target and
on average, the weighted τ against the tier's fine-tuned accuracies and the top-1 regret.
Measured 2026-12-02: mean τ 0.02 (regret 6.6 points) at 64 px, −0.08 (6.5) at native size; the
page's LogME through proximity's own preprocessing, −0.10 (6.8).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from .finetune import split  # noqa: E402
from .targets import make_target  # noqa: E402


def features(backbone, data_config: dict, imgs: np.ndarray, size: int) -> np.ndarray:
    """Pooled features of uint8 images (N, H, W) or (N, H, W, 3) at ``size`` px, float64."""
    import torch

    x = torch.from_numpy(imgs).float() / 255.0
    x = x[:, None].repeat(1, 3, 1, 1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(data_config["mean"]).view(1, 3, 1, 1)) / torch.tensor(data_config["std"]).view(1, 3, 1, 1)
    return torch.cat([backbone.features(x[i:i + 64]) for i in range(0, len(x), 64)]).double().numpy()


def main(argv: list[str] | None = None) -> None:
    from scipy.stats import weightedtau

    from proximity.backbones.builder import open_backbone, resolve_spec
    from proximity.catalog import load_catalog
    from proximity.signals.kernels import logme

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", type=Path, default=Path(__file__).parent / "results" / "state.json")
    args = ap.parse_args(argv)
    z = json.loads(args.state.read_text()).get("zoo")
    if not z:
        raise SystemExit(f"{args.state} has no zoo tier: run `python scripts/bench/evaluate.py --zoo` first")
    acc = {tuple(k.split("|")): float(np.mean(v)) for k, v in z["ft"].items()}
    entries = {e.id: e for e in load_catalog("zoo")}
    nets = {}
    for m in z["members"]:
        spec = resolve_spec(entries[m])
        nets[m] = (open_backbone(spec), spec.data_config)
    sizes = {"64 px": lambda m: 64, "native": lambda m: int(nets[m][1]["input_size"][-1])}
    per: dict[str, list[tuple[float, float]]] = {k: [] for k in sizes}
    for t in z["targets"]:
        imgs, labels, _ = make_target(t, 0, None)
        tr, _, _ = split(labels)
        x, y = imgs[tr], np.asarray(labels)[tr]
        a = [acc[(m, t)] for m in z["members"]]
        line = []
        for name, size in sizes.items():
            s = {m: logme(features(nets[m][0], nets[m][1], x, size(m)), y) for m in z["members"]}
            tau = float(weightedtau([s[m] for m in z["members"]], a).statistic)
            regret = max(a) - acc[(max(s, key=s.get), t)]
            per[name].append((tau, regret))
            line.append(f"{name}: tau {tau:+.2f}, regret {100 * regret:.1f} pts")
        print(f"{t:32s} " + "; ".join(line), flush=True)
    for name, v in per.items():
        print(f"mean over {len(v)} targets, {name}: tau {np.mean([x[0] for x in v]):+.2f}, "
              f"regret {100 * np.mean([x[1] for x in v]):.1f} pts")


if __name__ == "__main__":
    main()
