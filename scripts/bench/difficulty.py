"""The difficulty check of a fresh test set, run before any of its ground truth or scoring.

    python scripts/bench/difficulty.py [--protocol 4] [--out DIR]

Only so that no fresh target sits at chance or at 100 %: per target, a logistic regression on the
frozen pooled features of two benchmark backbones (``generalist-all`` and ``resnet-photos``),
trained on the user's images and scored on the held-out ones — close to the ``probe`` signal,
for those two only. No ranking of the 17 backbones and no fine-tuning result is looked at. The
figures go into the protocol's ``split.json`` ("difficulty"). (Protocol 4's figures and its one
adjustment were made before this script normalised its input as ``pretrain.py`` and ``finetune.py``
do, ``(x − 0.5) / 0.5``: see ``split.json``'s "difficulty_note".)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from . import pretrain, targets_v3, targets_v4  # noqa: E402

BACKBONES = ("generalist-all", "resnet-photos")


def features(folder: Path, imgs: np.ndarray) -> np.ndarray:
    import torch
    from safetensors.torch import load_file

    meta = json.loads((folder / "bench.json").read_text())
    model = pretrain._model(meta["arch"], 0)
    state = load_file(str(folder / "model.safetensors"))
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=False)
    model.eval()
    x = (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5   # the bench tier's input
    with torch.no_grad():
        return torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy()


def probe_accuracy(f_user, y_user, f_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(f_user)
    clf = LogisticRegression(max_iter=3000, C=1.0).fit(sc.transform(f_user), y_user)
    return float(clf.score(sc.transform(f_test), y_test))


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", type=int, choices=(3, 4), default=4)
    ap.add_argument("--out", type=Path, default=data_dir() / "bench")
    ap.add_argument("--targets", nargs="*", default=None)
    args = ap.parse_args(argv)
    module = targets_v4 if args.protocol == 4 else targets_v3
    out = {}
    for t in module.TARGETS:
        if args.targets and t.name not in args.targets:
            continue
        xu, yu, xt, yt, names = module.make_target(t.name)
        accs = {b: probe_accuracy(features(args.out / "v2" / "backbones" / b, xu), yu,
                                  features(args.out / "v2" / "backbones" / b, xt), yt) for b in BACKBONES}
        out[t.name] = {"chance": round(1 / len(names), 3), **{b: round(a, 3) for b, a in accs.items()}}
        print(f"{t.name:26s} chance {1 / len(names):.2f}  " + "  ".join(f"{b} {a:.2f}" for b, a in accs.items()),
              flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
