"""Regenerate ``literature_reference.json``: the authors' own code run on seeded data.

    python tests/data/make_literature_reference.py SFDA_CLONE NCTI_CLONE ETRAN_CLONE

Each argument is a local clone of the authors' repository (TencentARC/SFDA, BUserName/NCTI,
mgholamikn/ETran); their code is imported from there, run, and only the numbers it returns are
stored — none of it is part of this project. The data recipe is ``case_data`` below (the tests
rebuild the same arrays). Provenance (repository, commit, function) goes into the JSON.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CASES = {  # name: (n, d, classes, separation, seed)
    "n300_d72_c4": (300, 72, 4, 0.12, 0),
    "n200_d128_c5": (200, 128, 5, 0.08, 1),
    "n400_d96_c3": (400, 96, 3, 0.2, 2),
}


def case_data(n: int, d: int, c: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative (ReLU-like) features with a class signal and a decaying spectrum."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    x = rng.normal(size=(n, d)) * np.geomspace(2.0, 0.2, d) + sep * rng.normal(size=(c, d))[y]
    return np.maximum(x, 0.0), y


def _load(clone: str):
    sys.path.insert(0, clone)
    for name in ("metrics", "utils", "models"):
        sys.modules.pop(name, None)
    module = importlib.import_module("metrics")
    sys.path.remove(clone)
    commit = subprocess.run(["git", "-C", clone, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return module, commit


def main(sfda_clone: str, ncti_clone: str, etran_clone: str) -> None:
    out: dict = {"cases": {k: list(v) for k, v in CASES.items()}, "values": {}, "provenance": {}}
    quiet = contextlib.redirect_stdout(io.StringIO())
    sfda_mod, sfda_commit = _load(sfda_clone)
    out["provenance"]["sfda"] = f"TencentARC/SFDA@{sfda_commit} metrics.SFDA_Score"
    out["provenance"]["nleep"] = f"TencentARC/SFDA@{sfda_commit} metrics.NLEEP (np.random.seed(0) before the call)"
    for name, case in CASES.items():
        x, y = case_data(*case)
        with quiet:
            out["values"].setdefault(name, {})["sfda"] = float(sfda_mod.SFDA_Score(x.copy(), y))
            np.random.seed(0)
            out["values"][name]["nleep"] = float(sfda_mod.NLEEP(x.copy(), y))
    ncti_mod, ncti_commit = _load(ncti_clone)
    out["provenance"]["ncti"] = f"BUserName/NCTI@{ncti_commit} metrics.NCTI_Score → (seli, ncc, vc)"
    for name, case in CASES.items():
        x, y = case_data(*case)
        with quiet:
            seli, ncc, vc = ncti_mod.NCTI_Score(x.copy(), y)
        out["values"][name].update({"ncti_seli": float(seli), "ncti_ncc": float(ncc), "ncti_vc": float(vc)})
    etran_mod, etran_commit = _load(etran_clone)
    out["provenance"]["etran"] = (f"mgholamikn/ETran@{etran_commit} metrics.LDA_Score and "
                                  "metrics.Energy_Score(features, 0.5, 'bot')")
    for name, case in CASES.items():
        x, y = case_data(*case)
        with quiet:
            out["values"][name]["etran_lda"] = float(etran_mod.LDA_Score(x.copy(), y))
            out["values"][name]["etran_energy"] = float(etran_mod.Energy_Score(x.copy(), 0.5, "bot"))
    path = Path(__file__).with_name("literature_reference.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["values"], indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
