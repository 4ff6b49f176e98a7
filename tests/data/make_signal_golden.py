"""Golden values of every registered signal, recorded from the implementation *before* issue 14's
speed-ups (commit d273569), on the seeded evidence of :func:`golden_context`.

    python tests/data/make_signal_golden.py     # rewrites tests/data/signal_golden.json

``tests/test_signal_speed.py`` checks that today's signals still give these numbers: LogME to
1e-10 (relative), the k-fold probes within their sd (in practice: equal), the rest to 1e-7. The
file is data about the *old* code: regenerate it only on purpose, when a signal's definition
(and so its version) changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: (name, n, d, classes, seed): d > n, n > d, and an uneven small case.
CASES = (("wide", 120, 300, 4, 0), ("tall", 200, 40, 3, 1), ("small", 45, 64, 5, 2))


def _features(rng: np.random.Generator, n: int, d: int, y: np.ndarray, signal: float) -> np.ndarray:
    """ReLU-like, correlated, partly informative features (as a real network's pooled output)."""
    c = int(y.max()) + 1
    z = rng.normal(size=(n, d)) + signal * rng.normal(size=(c, d))[y]
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return np.maximum(z @ mix, 0.0).astype(np.float32)


def golden_context(name: str, n: int, d: int, classes: int, seed: int):
    """A SignalContext with labels, a control on a 32-image subset and a reference. (The file was
    first recorded with control v1's contract — control evidence on every image, the same 32 for
    the label-free signals —; control and gain were re-recorded at v2.)"""
    from proximity.catalog import CatalogEntry
    from proximity.evidence import Evidence
    from proximity.reference import ReferenceStats
    from proximity.signals import SignalContext

    rng = np.random.default_rng(seed)
    y = np.sort(np.arange(n) % classes)
    chans = (8, 16)

    def evidence(signal: float) -> Evidence:
        return Evidence(features=_features(rng, n, d, y, signal), layer_names=["l0", "l1"],
                        image_means=[rng.normal(0.2, 0.3, (n, k)) for k in chans],
                        image_vars=[rng.uniform(0.5, 1.5, (n, k)) for k in chans],
                        source_means=[np.zeros(k) for k in chans], source_vars=[np.ones(k) for k in chans], seconds=0.0)

    ev, ctl = evidence(0.25), evidence(0.05)
    ref_x = _features(rng, 3 * d, d, np.zeros(3 * d, int), 0.0).astype(np.float64)
    w, v = np.linalg.eigh(np.cov(ref_x, rowvar=False))
    k = min(16, d)
    top = np.argsort(w)[::-1][:k]
    ref = ReferenceStats(mu=ref_x.mean(0).astype(np.float32), eigvecs=v[:, top].astype(np.float32), eigvals=w[top],
                         residual=float((w.sum() - w[top].sum()) / (d - k)) if d > k else 0.0, n=3 * d,
                         layer_names=(), layer_means=(), layer_vars=(), provenance={}, path=Path("golden"))
    sub = np.sort(np.random.default_rng(seed).permutation(n)[:32])
    entry = CatalogEntry(id=name, source="timm:x", imagenet_top1=70.0, params_m=5.0)
    ctl = Evidence(features=ctl.features[sub], layer_names=[], image_means=[], image_vars=[], source_means=[],
                   source_vars=[], seconds=0.0)       # the control evidence holds its subset's images only
    return SignalContext(evidence=ev, entry=entry, labels=y, control=ctl, reference=ref, folds=5, seed=seed,
                         control_subset=sub, control_subset_features=ctl.features)


def main(argv: list[str] | None = None) -> None:
    """Rewrite the file (only with the code the values are to come from), or with ``--rerecord
    NAME …`` replace the named signals' values and versions alone — for a signal whose definition
    changed on purpose — and say so in the file's provenance."""
    import argparse

    from proximity.signals import compute_signals, signal_versions

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rerecord", nargs="+", metavar="NAME", help="re-record only these signals")
    ap.add_argument("--why", default="definition changed on purpose (its version bumped); the other values keep their "
                                     "provenance", help="with --rerecord: the reason written into the file")
    args = ap.parse_args(argv)
    path = Path(__file__).with_name("signal_golden.json")
    if args.rerecord:
        out = json.loads(path.read_text())
        for case in CASES:
            values = compute_signals(golden_context(*case), args.rerecord)
            for name, v in values.items():
                out["cases"][case[0]][name] = {"value": v.value, "sd": v.sd}
        for name in args.rerecord:
            out["versions"][name] = signal_versions()[name]
        out.setdefault("rerecorded", []).append(
            {"signals": {n: signal_versions()[n] for n in args.rerecord},
             "why": args.why})
    else:
        out = {"provenance": "proximity at commit d273569 (before issue 14), tests/data/make_signal_golden.py",
               "versions": signal_versions(), "cases": {}}
        for case in CASES:
            values = compute_signals(golden_context(*case))
            out["cases"][case[0]] = {name: {"value": v.value, "sd": v.sd} for name, v in values.items()}
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
