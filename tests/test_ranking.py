import json
import math

import numpy as np

import pytest

from proximity.ranking import fit_score, sort_key
from proximity.risk import band, risk_v0
from proximity.signals import SignalValue
from proximity.signals import SignalValue as V

ABSENT = V(None, None, False, "no batch-norm layers")


def test_fit_with_labels_is_the_probe_and_ties_prefer_a_measured_shift():
    a = {"probe": V(1.0, 0.0), "early_shift": ABSENT, "prior": V(None)}
    b = {"probe": V(1.0, 0.0), "early_shift": V(0.4, 0.01, False), "prior": V(None)}
    c = {"probe": V(1.0, 0.0), "early_shift": V(0.2, 0.01, False), "prior": V(None)}
    assert fit_score(a, "labels") == fit_score(b, "labels") == 1.0
    order = sorted([(sort_key(fit_score(s, "labels"), s, i), n)
                    for i, (n, s) in enumerate([("a", a), ("b", b), ("c", c)])])
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


# --- shipped fit rules -----------------------------------------------------------------------

from proximity.ranking import FitRule, fit_scores, load_rules  # noqa: E402
from proximity.signals import signal_versions  # noqa: E402


def _sv(**values):
    return {k: SignalValue(v, None, k not in ("early_shift", "ncti_vc")) for k, v in values.items()}


def test_z_mean_rule_normalises_within_the_run_and_respects_direction():
    rule = FitRule("z", "z-mean", (("logme", 1.0), ("early_shift", 1.0)))
    sets = [_sv(logme=1.0, early_shift=0.1), _sv(logme=0.0, early_shift=0.3), _sv(logme=0.5, early_shift=0.2)]
    fits = [f for f, _ in rule.scores(sets)]
    # logme higher and early_shift lower are both better: the first is best on both
    assert fits[0] > fits[2] > fits[1]
    assert fits[0] == pytest.approx(np.sqrt(1.5))          # z = +√1.5 on both terms
    # a candidate without one signal uses the other, and says so
    sets.append(_sv(logme=1.0))
    (fit, basis) = rule.scores(sets)[-1]
    assert basis == ["logme"] and fit is not None
    assert rule.scores([{}])[0] == (None, [])


def test_rank_mean_single_and_small_sample_switch():
    sets = [_sv(probe=0.9, logme=0.1), _sv(probe=0.5, logme=0.3), _sv(probe=0.7, logme=0.2)]
    assert [f for f, _ in FitRule("r", "rank-mean", (("probe", 1.0),)).scores(sets)] == [1.0, 0.0, 0.5]
    assert [f for f, _ in FitRule("s", "single", (("probe", 1.0),)).scores(sets)] == [0.9, 0.5, 0.7]
    rule = FitRule("big", "single", (("probe", 1.0),), small=FitRule("small", "single", (("logme", 1.0),)),
                   small_below=5)
    assert fit_scores(sets, "labels", smallest_class=3, rules={"labels": rule})[0].name == "small"
    assert fit_scores(sets, "labels", smallest_class=8, rules={"labels": rule})[0].name == "big"


def test_a_rule_fitted_on_other_signal_versions_is_not_used(tmp_path, caplog):
    versions = signal_versions()
    good = FitRule("good", "single", (("logme", 1.0),), versions={"logme": versions["logme"]})
    stale = FitRule("stale", "single", (("logme", 1.0),), versions={"logme": versions["logme"] + 1})
    for rule, expected in ((good, "good"), (stale, "v0: probe")):
        path = tmp_path / "rule.json"
        path.write_text(json.dumps({"rules": {"labels": rule.to_dict()}}))
        assert load_rules(path)["labels"].name == expected
    assert "other signal versions" in caplog.text


def test_the_shipped_rules_match_the_code():
    """Fails when a signal's definition (its version) changed after the shipped rule was chosen."""
    for mode, rule in load_rules().items():
        assert all(signal_versions()[n] == v for n, v in rule.versions.items()), mode
