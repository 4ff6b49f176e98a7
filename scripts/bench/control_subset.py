"""Benchmark: the gain on the control's 64-image subset against the gain on every image.

    python scripts/bench/control_subset.py [--old DIR] [--new DIR] [--json FILE]

Since issue 14 the random-weights control sees a stratified subset of the sample
(``--control-images``, default 64) instead of every image, and ``gain`` is the probe − control
on that subset, paired per fold (``gain`` version 2). This script reads the benchmark's labelled
runs scored both ways — the v2.0 scores (control on every image, ``gain`` version 1) kept in
``DIR/v2/scores-v2.0`` and the v2.2 scores in ``DIR/v2/scores`` — and prints, over every
(target, backbone) pair:

* the gain's fold sd, each way (median, 90th percentile, max) — the bound the README states;
* how far the subset gain is from the whole-sample gain (|Δ| median, 90th percentile), their
  Pearson and Spearman correlation, and how often they agree on the sign (pretrained above
  random weights or not);
* the control's cost each way (the control_s timings of those runs).

Nothing here is fitted; it only compares two scorings of the same images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _pairs(folder: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for f in sorted(folder.glob("*.json")):
        doc = json.loads(f.read_text())
        for c in doc["labels"]["ranking"]:
            g = c["signals"].get("gain", {})
            if g.get("value") is not None:
                out[(f.stem, c["model"])] = {"gain": g["value"], "sd": g["sd"],
                                             "control_s": c["timings"].get("control_s", 0.0),
                                             "n": doc["labels"]["sample"]["n_images"]}
    return out


def compare(old_dir: Path, new_dir: Path) -> dict:
    from scipy.stats import pearsonr, spearmanr

    old, new = _pairs(old_dir), _pairs(new_dir)
    keys = sorted(set(old) & set(new))
    if not keys:
        raise SystemExit(f"no (target, backbone) pair has a gain in both {old_dir} and {new_dir}")
    g0 = np.array([old[k]["gain"] for k in keys])
    g1 = np.array([new[k]["gain"] for k in keys])
    s0 = np.array([old[k]["sd"] for k in keys])
    s1 = np.array([new[k]["sd"] for k in keys])
    d = np.abs(g1 - g0)

    def q(x):
        return {"median": round(float(np.median(x)), 4), "p90": round(float(np.quantile(x, 0.9)), 4),
                "max": round(float(x.max()), 4)}

    return {"pairs": len(keys), "targets": len({k[0] for k in keys}),
            "images_per_target": {"median": float(np.median([old[k]["n"] for k in keys]))},
            "gain_sd": {"every_image": q(s0), "subset_64": q(s1)},
            "abs_difference": q(d),
            "pearson": round(float(pearsonr(g0, g1)[0]), 3), "spearman": round(float(spearmanr(g0, g1)[0]), 3),
            "same_sign": round(float(np.mean(np.sign(g0) == np.sign(g1))), 3),
            "control_seconds": {"every_image": round(float(sum(old[k]["control_s"] for k in keys)), 1),
                                "subset_64": round(float(sum(new[k]["control_s"] for k in keys)), 1)}}


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    root = data_dir() / "bench" / "v2"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, default=root / "scores-v2.0", help="scores with the control on every image")
    ap.add_argument("--new", type=Path, default=root / "scores", help="scores with the control on the subset")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res = compare(args.old, args.new)
    sd0, sd1, diff = res["gain_sd"]["every_image"], res["gain_sd"]["subset_64"], res["abs_difference"]
    print(f"{res['pairs']} (target, backbone) pairs on {res['targets']} targets "
          f"(median {res['images_per_target']['median']:.0f} images each)")
    print(f"gain fold sd, control on every image   median {sd0['median']:.3f}  p90 {sd0['p90']:.3f}  "
          f"max {sd0['max']:.3f}")
    print(f"gain fold sd, control on 64 images      median {sd1['median']:.3f}  p90 {sd1['p90']:.3f}  "
          f"max {sd1['max']:.3f}")
    print(f"|gain(64) − gain(every image)|          median {diff['median']:.3f}  p90 {diff['p90']:.3f}  "
          f"max {diff['max']:.3f}")
    print(f"correlation: Pearson {res['pearson']:.3f}, Spearman {res['spearman']:.3f}; "
          f"same sign on {100 * res['same_sign']:.0f} % of pairs")
    cs = res["control_seconds"]
    print(f"control time over these runs: every image {cs['every_image']:.0f} s, 64 images {cs['subset_64']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
