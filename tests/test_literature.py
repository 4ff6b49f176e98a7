"""The literature's estimators against their authors' code and hand-derived cases.

``tests/data/literature_reference.json`` holds what the authors' own code returned on the seeded
data of ``tests/data/make_literature_reference.py`` (repositories and commits inside); the
reference code itself is not part of this project.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from proximity.signals import SIGNALS, signal_versions
from proximity.signals import literature as L

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_literature_reference import case_data  # noqa: E402

REF = json.loads((DATA / "literature_reference.json").read_text())
CASES = list(REF["cases"])


def _case(name):
    return case_data(*REF["cases"][name]), REF["values"][name]


@pytest.mark.parametrize("name", CASES)
def test_sfda_reproduces_the_authors_code(name):
    (x, y), ref = _case(name)
    assert L.sfda(x, y, exact_top=False) == pytest.approx(ref["sfda"], abs=1e-9)
    # exact σ_max instead of 3 power steps: the shrinkage moves a little, the score by ≤ 0.2 %
    assert L.sfda(x, y) == pytest.approx(ref["sfda"], rel=2e-3)


@pytest.mark.parametrize("name", CASES)
def test_nleep_ncti_and_etran_reproduce_the_authors_code(name):
    (x, y), ref = _case(name)
    assert L.nleep(x, y, seed=0) == pytest.approx(ref["nleep"], abs=1e-9)
    seli, ncc, vc = L.ncti_components(x, y)
    assert (seli, ncc, vc) == pytest.approx((ref["ncti_seli"], ref["ncti_ncc"], ref["ncti_vc"]), rel=1e-9)
    assert L.etran_lda(x, y) == pytest.approx(ref["etran_lda"], abs=1e-12)
    assert L.etran_energy(x) == pytest.approx(ref["etran_energy"], abs=1e-12)


def test_hscore_against_an_independent_implementation_and_by_hand():
    from sklearn.covariance import LedoitWolf

    (x, y), _ = _case(CASES[0])
    a = LedoitWolf().fit(x).shrinkage_
    cov = np.cov(x, rowvar=False, bias=True)
    g = np.stack([x[y == c].mean(0) for c in np.unique(y)])[y]
    shrunk = (1 - a) * cov + a * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    expected = np.trace(np.linalg.inv(shrunk) @ ((1 - a) * np.cov(g, rowvar=False, bias=True)))
    assert L.hscore(x, y) == pytest.approx(expected, rel=1e-9)
    # by hand: features that *are* their class means, placed isotropically (±e_i), have
    # Σ_f = Σ_g = s·I, so shrinkage leaves Σ_f alone and H = (1 − α)·d
    d = 3
    centres = np.vstack([np.eye(d), -np.eye(d)])
    xs, ys = np.repeat(centres, 50, 0), np.repeat(np.arange(2 * d), 50)
    alpha = LedoitWolf().fit(xs).shrinkage_
    assert L.hscore(xs, ys) == pytest.approx((1 - alpha) * d, rel=1e-9)
    # labels that carry nothing score lower than the true ones
    assert L.hscore(x, np.random.default_rng(0).permutation(y)) < L.hscore(x, y)


def test_transrate_by_hand_and_both_gram_routes():
    # two classes at constant ±a: globally centred, each class is a constant row, so
    # R(Z_c) = ½ log(1 + a²/ε) = R(Z) and TransRate = 0
    a, eps = 0.3, 1e-4
    x, y = np.repeat([[a], [-a]], 20, 0), np.repeat([0, 1], 20)
    assert L.coding_rate(x, eps) == pytest.approx(0.5 * np.log(1 + a * a / eps), rel=1e-12)
    assert L.transrate(x, y, eps=eps) == pytest.approx(0.0, abs=1e-12)
    # d > n takes the n × n Gram matrix: the same number as the d × d one (Sylvester)
    z = np.random.default_rng(1).normal(size=(20, 50))
    _, direct = np.linalg.slogdet(np.eye(50) + z.T @ z / (20 * eps))
    assert L.coding_rate(z, eps) == pytest.approx(0.5 * direct, rel=1e-10)
    (xf, yf), _ = _case(CASES[1])
    assert L.transrate(xf, yf) > L.transrate(xf, np.random.default_rng(0).permutation(yf))


def test_every_estimator_is_registered_with_a_version_and_a_direction():
    versions = signal_versions()
    for name in L.VERSIONS:
        assert name in SIGNALS and versions[name] == L.VERSIONS[name]
    assert SIGNALS["ncti_vc"].higher_is_better is False and SIGNALS["sfda"].higher_is_better
    assert "labels" not in SIGNALS["etran_energy"].needs
    assert versions["logme"] == 2          # the n ≤ d maximiser changed its values


def test_estimators_need_two_classes():
    from proximity.errors import SignalUnavailable

    x = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(SignalUnavailable):
        L.sfda(x, np.zeros(10, int))
