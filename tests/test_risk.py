"""The calibrated negative-transfer risk: shipped model, estimate(), and the fitting script."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from proximity import risk as R
from proximity.signals import SignalValue as V

ROOT = Path(__file__).resolve().parents[1]


def _var(f, c, lo_, hi_):
    k = len(f) + 1
    return {"features": list(f), "mean": [0.0] * len(f), "scale": [0.1] * len(f), "coef": list(c),
            "intercept": -0.5,
            "cov": (np.eye(k) * 0.04).tolist(), "range": [list(lo_), list(hi_)]}


def _model(features=("gain",), coef=(-2.0,), lo=(-0.1,), hi=(0.3,), free=("log_shift",), free_coef=(0.5,), extra=None):
    return R.RiskModel.from_dict({"schema": 1, "variants": {"labels": _var(features, coef, lo, hi),
                                                            "label-free": _var(free, free_coef, (0.0,), (2.0,)),
                                                            **(extra or {})}})


def test_shipped_model_has_its_variants_and_provenance():
    m = R.load_model()
    assert m is not None and set(m.variants) == {"labels+scratch", "labels", "label-free"}
    assert any("scratch" in R.FEATURE_SIGNALS[f] for f in m.variants["labels+scratch"].features)
    # the label-free model a run always has evidence for (no reference statistics needed); the
    # reference variant was fitted and dropped on dev, and the file says why
    assert not {s for f in m.variants["label-free"].features for s in R.FEATURE_SIGNALS[f]} & {"frechet",
                                                                                                "frechet_excess"}
    dropped = m.provenance["dropped_variants"]["label-free+reference"]
    assert dropped["loto_logloss"] >= dropped["fallback_loto_logloss"] - 0.005 and dropped["selection"]
    prov = m.provenance
    assert prov["script"] == "scripts/fit_risk.py" and len(prov["groundtruth"]["sha256"]) == 16
    assert len(prov["dev_targets"]) >= 5 and "coverage" in prov
    doc = json.loads(R.model_path().read_text())
    for v in doc["variants"].values():                       # every choice is on record
        assert v["selection"] and v["n_rows"] >= 40 and set(v["features"]) <= set(R.features({}))


def test_estimate_orders_by_gain_with_interval_band_and_reason():
    m = _model()
    strong = R.estimate({"gain": V(0.25, 0.02)}, 200, 4, model=m)
    weak = R.estimate({"gain": V(-0.02, 0.03)}, 200, 4, model=m)
    assert strong.value < weak.value
    for r in (strong, weak):
        assert r.low < r.value < r.high and r.band == R.band(r.value) and r.variant == "labels"
    assert "probe beats random weights by 25.0 ± 2.0 points" in strong.reason
    assert "trails random weights by 2.0" in weak.reason and "90 % interval" in weak.reason


def test_outside_the_fitted_range_widens_and_says_so():
    m, wide = _model(), _model(hi=(1.0,))
    inside = R.estimate({"gain": V(0.9, 0.02)}, 200, 4, model=wide)      # the same evidence, fitted range covers it
    outside = R.estimate({"gain": V(0.9, 0.02)}, 200, 4, model=m)
    assert "outside the benchmark's range" in outside.reason and "outside" not in inside.reason
    assert outside.value == pytest.approx(inside.value)
    eta = lambda p: math.log(p / (1 - p))                  # noqa: E731
    assert eta(outside.high) - eta(outside.low) == pytest.approx(2 * (eta(inside.high) - eta(inside.low)), rel=1e-6)


def test_unknown_or_label_free_when_the_data_cannot_say():
    m = _model()
    tiny = R.estimate({"gain": V(0.2, 0.02)}, 12, 4, model=m)
    assert tiny.value is None and tiny.band == "unknown" and "too few" in tiny.reason
    no_gain = R.estimate({"gain": V(None, reason="no labels"), "early_shift": V(1.5, 0.1, False)}, 200, 0, model=m)
    assert no_gain.variant == "label-free" and no_gain.reason.startswith("label-free:") and "far from" in no_gain.reason
    nothing = R.estimate({"gain": V(None, reason="no labels"), "early_shift": V(None)}, 200, 0, model=m)
    assert nothing.value is None and nothing.reason.startswith("unknown: ")
    assert "no log_shift for the label-free model" in nothing.reason        # it says what the run lacks
    assert R.estimate({"gain": V(0.0, 0.0)}, 200, 4, model=None).variant == "v0"


def test_label_free_risk_with_and_without_a_reference():
    """A model with a label-free+reference variant: a candidate with reference statistics gets it,
    one without (most catalog entries) the plain label-free variant, with no note about the other."""
    m = _model(extra={"label-free+reference": _var(("log_frechet_excess",), (0.6,), (0.0,), (9.0,))})
    base = {"gain": V(None, reason="no labels"), "early_shift": V(0.5, 0.1, False)}
    noref = R.estimate(base, 200, 0, model=m)
    near = R.estimate({**base, "frechet_excess": V(2.0, None, False)}, 200, 0, model=m)
    far = R.estimate({**base, "frechet_excess": V(500.0, None, False)}, 200, 0, model=m)
    assert noref.variant == "label-free" and near.variant == far.variant == "label-free+reference"
    assert near.value < far.value and all(r.reason.startswith("label-free: ") for r in (noref, near, far))
    assert "500× as far from the pretraining domain as a same-size sample of its reference Gaussian" in far.reason
    assert "log_frechet_excess" not in noref.reason


def test_a_variant_that_needs_more_evidence_ships_only_when_it_predicts_better():
    from scripts.fit_risk import drop_unhelpful, fit_variant

    rng = np.random.default_rng(0)
    rows = []
    for t in range(6):
        for _ in range(30):
            x = rng.normal()
            rows.append({"target": f"t{t}", "split": "dev", "y": int(rng.random() < 1 / (1 + math.exp(-3 * x))),
                         "f": {"useful": x, "noise": rng.normal()}})
    def variants(extra):                                                           # noqa: E306
        cands = {"label-free": [("noise",)] if extra == "useful" else [("useful",)], "label-free+reference": [(extra,)]}
        return {n: fit_variant(rows, n, cands) for n in cands}
    helps, no_help = variants("useful"), variants("noise")
    assert drop_unhelpful(helps, rows) == {} and "label-free+reference" in helps
    dropped = drop_unhelpful(no_help, rows)
    assert set(no_help) == {"label-free"} and dropped["label-free+reference"]["fallback"] == "label-free"
    assert dropped["label-free+reference"]["loto_logloss"] > dropped["label-free+reference"]["fallback_loto_logloss"]


def test_fit_script_recovers_the_sign_and_is_deterministic(tmp_path):
    from scripts import fit_risk
    rng = np.random.default_rng(0)
    lines = ["target,split,n,classes,gain,gain_sd,probe,early_shift,frechet,negative"]
    for t in range(6):
        for _ in range(9):
            g = rng.normal(0.1, 0.15)
            neg = int(rng.random() < 1 / (1 + math.exp(12 * g)))
            lines.append(f"t{t},dev,{rng.integers(60, 240)},4,{g},{abs(rng.normal(0.03, 0.01))},0.5,"
                         f"{abs(rng.normal(1, 0.5))},{abs(rng.normal(0.5, 0.2))},{neg}")
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    for name in ("a.json", "b.json"):
        fit_risk.main(["--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / name)])
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    a["provenance"].pop("fitted"), b["provenance"].pop("fitted")
    assert a == b
    # --splits (protocol 4: fitted on several splits): a split the pairs lack is refused, by name
    with pytest.raises(SystemExit, match="has no split test-v9"):
        fit_risk.main(["--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "c.json"),
                       "--splits", "dev", "test-v9"])
    fit_risk.main(["--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "c.json"), "--splits", "dev"])
    assert "dev_splits" not in json.loads((tmp_path / "c.json").read_text())["provenance"]
    lab = a["variants"]["labels"]
    assert lab["features"][0] in ("gain", "gain_z") and lab["coef"][0] < 0      # more gain, less risk
    m = R.RiskModel.from_dict(a)
    good = R.estimate({"gain": V(0.3, 0.03)}, 150, 4, model=m)
    bad = R.estimate({"gain": V(-0.1, 0.03)}, 150, 4, model=m)
    assert good.value < bad.value


def test_the_shipped_risk_model_was_fitted_on_the_codes_signal_versions():
    """Fails when a signal the risk model uses changed its definition (version) after the fit:
    refit with scripts/fit_risk.py."""
    import json

    from proximity.risk import model_path, stale_versions

    assert stale_versions(json.loads(model_path().read_text())) == {}


def test_a_risk_model_fitted_on_other_signal_versions_is_not_used(tmp_path, caplog):
    import json

    from proximity.risk import load_model, model_path

    doc = json.loads(model_path().read_text())
    doc["provenance"]["signal_versions"]["gain"] = 99
    path = tmp_path / "risk.json"
    path.write_text(json.dumps(doc))
    assert load_model(str(path)) is None and "other signal versions" in caplog.text


def test_fit_risk_protocol_2_learns_from_gain_and_reports_bootstrap_intervals(tmp_path):
    """fit_risk.py --protocol 2 on synthetic v2 pairs where fine-tuning loses exactly when the
    probe trails random weights: the chosen labels model uses the gain and separates the pairs."""
    import csv
    import json

    from scripts import fit_risk

    from proximity.risk import RiskModel, estimate
    from proximity.signals import SignalValue

    rng = np.random.default_rng(0)
    rows = []
    for t in range(6):
        for b in range(8):
            gain = rng.normal(0.05, 0.15)
            rows.append({"target": f"t{t}", "split": "dev" if t < 5 else "test", "backbone": f"b{b}", "n_images": 120,
                         "n_classes": 4, "negative": int(gain + rng.normal(0, 0.03) < 0), "gain": gain, "gain.sd": 0.05,
                         "probe": 0.6 + gain, "logme": rng.normal(), "rankme_rel": rng.uniform(0.5, 2),
                         "cluster_rel": rng.normal(0, 0.1), "params": -0.5, "early_shift": rng.uniform(0, 1),
                         "frechet": ""})
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "risk.json"
    fit_risk.main(["--protocol", "2", "--pairs", str(pairs), "--out", str(out), "--bootstrap", "30"])
    doc = json.loads(out.read_text())
    lab = doc["variants"]["labels"]
    assert "gain" in lab["features"][0] or "gain" in "".join(lab["features"])
    assert doc["provenance"]["covariance"].startswith("bootstrap") and doc["provenance"]["signal_versions"]
    model = RiskModel.from_dict(doc, out)
    sig = lambda g: {"gain": SignalValue(g, 0.05), "probe": SignalValue(0.6 + g, 0.05)}  # noqa: E731
    low, high = estimate(sig(0.3), 120, 4, model=model), estimate(sig(-0.3), 120, 4, model=model)
    assert low.value < 0.2 < 0.8 < high.value and low.low <= low.value <= low.high
