import math

import pytest

from proximity.ranking import fit_score, sort_key
from proximity.risk import band, risk_v0
from proximity.signals import SignalValue as V

ABSENT = V(None, None, False, "no batch-norm layers")


def test_fit_with_labels_is_the_probe_and_ties_prefer_a_measured_shift():
    a = {"probe": V(1.0, 0.0), "early_shift": ABSENT, "prior": V(None)}
    b = {"probe": V(1.0, 0.0), "early_shift": V(0.4, 0.01, False), "prior": V(None)}
    c = {"probe": V(1.0, 0.0), "early_shift": V(0.2, 0.01, False), "prior": V(None)}
    assert fit_score(a, "labels") == fit_score(b, "labels") == 1.0
    order = sorted([(sort_key(fit_score(s, "labels"), s, i), n) for i, (n, s) in enumerate([("a", a), ("b", b), ("c", c)])])
    assert [n for _, n in order] == ["c", "b", "a"]


def test_label_free_fit_and_fitless_last_by_prior():
    near, far = {"early_shift": V(0.1, 0.0, False)}, {"early_shift": V(2.0, 0.0, False)}
    assert fit_score(near, "label-free") == pytest.approx(-math.log1p(0.1))
    assert fit_score(near, "label-free") > fit_score(far, "label-free")
    famous = {"early_shift": ABSENT, "prior": V(80.0)}
    obscure = {"early_shift": ABSENT, "prior": V(None)}
    keys = [sort_key(fit_score(s, "label-free"), s, i) for i, s in enumerate([obscure, famous, far])]
    assert sorted(range(3), key=lambda i: keys[i]) == [2, 1, 0]


def test_risk_v0_known_values_and_bands():
    r, why = risk_v0({"gain": V(0.0, 0.0)}, 5)
    assert r == pytest.approx(0.5) and band(r) == "high" and "v0, uncalibrated" in why
    r, _ = risk_v0({"gain": V(0.06, 0.0)}, 5)             # two allowances (τ = 0.03) above zero
    assert r == pytest.approx(0.02275, abs=1e-4) and band(r) == "low"
    r, _ = risk_v0({"gain": V(-0.05, 0.02)}, 5)
    assert r > 0.9 and "trails random weights by 5.0" in risk_v0({"gain": V(-0.05, 0.02)}, 5)[1]
    r, why = risk_v0({"gain": V(None), "early_shift": V(1.0, 0.1, False)}, 5)
    assert r == 0.5 and "label-free" in why
    r, why = risk_v0({"gain": V(None, reason="no labels"), "early_shift": ABSENT}, 5)
    assert r is None and band(r) == "unknown" and why.startswith("unknown: no labels")
    assert [band(x) for x in (0.0, 0.19, 0.2, 0.49, 0.5, 1.0)] == ["low", "low", "medium", "medium", "high", "high"]
