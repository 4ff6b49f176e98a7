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
    """A SignalContext with labels, a control, the label-free control subset and a reference."""
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
    return SignalContext(evidence=ev, entry=entry, labels=y, control=ctl, reference=ref, folds=5, seed=seed,
                         control_subset=sub, control_subset_features=ctl.features[sub])


def main() -> None:
    from proximity.signals import compute_signals, signal_versions

    out = {"provenance": "proximity at commit d273569 (before issue 14), tests/data/make_signal_golden.py",
           "versions": signal_versions(), "cases": {}}
    for case in CASES:
        values = compute_signals(golden_context(*case))
        out["cases"][case[0]] = {name: {"value": v.value, "sd": v.sd} for name, v in values.items()}
    path = Path(__file__).with_name("signal_golden.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
