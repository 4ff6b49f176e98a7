import numpy as np
import pytest

from proximity.catalog import CatalogEntry
from proximity.evidence import Evidence
from proximity.signals import SIGNALS, SignalContext, SignalValue, compute_signals
from proximity.signals.early_shift import shift_from_moments

ENTRY = CatalogEntry(id="x", source="timm:x")


def _evidence(n=40, d=6, c=3, seed=0, shift=0.0, features=None):
    rng = np.random.default_rng(seed)
    return Evidence(
        features=rng.normal(size=(n, d)).astype(np.float32) if features is None else features,
        layer_names=["bn1"], image_means=[rng.normal(shift, 0.1, size=(n, c))],
        image_vars=[np.full((n, c), 1.0)], source_means=[np.zeros(c)], source_vars=[np.ones(c)], seconds=0.0)


@pytest.mark.parametrize("name", list(SIGNALS))
def test_signal_contract(name):
    """Every registered signal declares a direction and returns a value or an absent one with a reason."""
    sig = SIGNALS[name]
    assert isinstance(sig.higher_is_better, bool) and sig.description
    ctx = SignalContext(evidence=_evidence(), entry=ENTRY, labels=None)
    out = compute_signals(ctx, [name])[name]
    assert isinstance(out, SignalValue) and out.higher_is_better == sig.higher_is_better
    if out.value is None:
        assert out.reason
    else:
        assert np.isfinite(out.value)


def test_early_shift_known_answers():
    z, o = np.zeros(4), np.ones(4)
    assert shift_from_moments(z, o, z, o) == 0.0
    # one channel, hand case: μₜ=1, σₜ=2 against μₛ=0, σₛ=1: ((1)² + (2−1)²) / (1 + 1e-3) = 2/1.001
    assert shift_from_moments([1.0], [4.0], [0.0], [1.0]) == pytest.approx(2 / 1.001)
    # scale-free: multiplying all moments' scale by 10 leaves it unchanged
    assert shift_from_moments([10.0], [400.0], [0.0], [100.0]) == pytest.approx(2 / 1.001)


def test_early_shift_grows_with_the_gap_and_has_sd():
    near = compute_signals(SignalContext(evidence=_evidence(shift=0.1), entry=ENTRY), ["early_shift"])["early_shift"]
    far = compute_signals(SignalContext(evidence=_evidence(shift=1.0), entry=ENTRY), ["early_shift"])["early_shift"]
    assert near.value < far.value and far.sd > 0 and not far.higher_is_better


def test_early_shift_reports_its_depth_profile():
    from proximity.signals.early_shift import depth_profile

    rng = np.random.default_rng(0)
    n, c = 30, 3
    ev = Evidence(features=rng.normal(size=(n, 4)).astype(np.float32), layer_names=["stem", "deep"],
                  image_means=[rng.normal(0.0, 0.1, (n, c)), rng.normal(1.0, 0.1, (n, c))],
                  image_vars=[np.ones((n, c)), np.ones((n, c))], source_means=[np.zeros(c)] * 2,
                  source_vars=[np.ones(c)] * 2, seconds=0.0)
    out = compute_signals(SignalContext(evidence=ev, entry=ENTRY), ["early_shift"])["early_shift"]
    stem = shift_from_moments(*ev.layer_moments(0), np.zeros(c), np.ones(c))
    deep = shift_from_moments(*ev.layer_moments(1), np.zeros(c), np.ones(c))
    assert out.value == pytest.approx((stem + deep) / 2) and stem < 0.05 < 0.9 < deep
    assert f"by depth: stem {stem:.3g}, deep {deep:.3g}" in out.reason
    # many layers: six of them, evenly spaced, first and last kept
    names = [f"l{i}" for i in range(11)]
    assert depth_profile(names, [float(i) for i in range(11)]) == \
        "by depth: l0 0, …, l2 2, …, l4 4, …, l6 6, …, l8 8, …, l10 10"


def test_early_shift_without_bn_needs_reference_moments():
    from types import SimpleNamespace
    ev = _evidence()
    ev.source_means, ev.source_vars = [np.zeros(0)], [np.zeros(0)]       # a module output, no BN stats
    out = compute_signals(SignalContext(evidence=ev, entry=ENTRY), ["early_shift"])["early_shift"]
    assert out.value is None and "no batch-norm layers" in out.reason and "catalog reference" in out.reason
    ref = SimpleNamespace(n=10, moments=lambda name: (np.zeros(3), np.ones(3)) if name == "bn1" else None)
    with_ref = compute_signals(SignalContext(evidence=ev, entry=ENTRY, reference=ref), ["early_shift"])["early_shift"]
    bn = compute_signals(SignalContext(evidence=_evidence(), entry=ENTRY), ["early_shift"])["early_shift"]
    assert with_ref.value == pytest.approx(bn.value) and "reference moments of 10" in with_ref.reason
    ev.layer_names, ev.image_means, ev.image_vars, ev.source_means, ev.source_vars = [], [], [], [], []
    assert "no early layers" in compute_signals(SignalContext(evidence=ev, entry=ENTRY),
                                                ["early_shift"])["early_shift"].reason


def test_probe_knn_control_gain_on_separable_features():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    good = (rng.normal(size=(60, 8)) + 3 * np.eye(3, 8)[y]).astype(np.float32)
    noise = rng.normal(size=(60, 8)).astype(np.float32)
    ctx = SignalContext(evidence=_evidence(features=good, n=60), entry=ENTRY, labels=y,
                        control=_evidence(features=noise, n=60))
    s = compute_signals(ctx)
    assert s["probe"].value > 0.9 and s["knn"].value > 0.8
    assert s["control"].value < 0.6
    assert s["gain"].value == pytest.approx(s["probe"].value - s["control"].value)
    assert s["probe"].sd >= 0


def test_label_signals_absent_with_reasons():
    one = SignalContext(evidence=_evidence(), entry=ENTRY, labels=np.zeros(40, int))
    assert "only one class" in compute_signals(one, ["probe"])["probe"].reason
    tiny = SignalContext(evidence=_evidence(n=3), entry=ENTRY, labels=np.array([0, 0, 1]))
    assert "only 1 image" in compute_signals(tiny, ["probe"])["probe"].reason
    none = SignalContext(evidence=_evidence(), entry=ENTRY, labels=None)
    assert "no labels" in compute_signals(none, ["knn"])["knn"].reason
    noctl = SignalContext(evidence=_evidence(), entry=ENTRY, labels=np.repeat([0, 1], 20),
                          control_reason="skipped (--no-control)")
    assert compute_signals(noctl, ["gain"])["gain"].reason == "skipped (--no-control)"


def test_prior_from_catalog_facts():
    e = CatalogEntry(id="m", source="timm:m", imagenet_top1=80.1, provenance={"facts.imagenet_top1": "paper"})
    out = compute_signals(SignalContext(evidence=_evidence(), entry=e), ["prior"])["prior"]
    assert out.value == 80.1 and "paper" in out.reason
    assert compute_signals(SignalContext(evidence=_evidence(), entry=ENTRY), ["prior"])["prior"].value is None


def test_nan_is_never_passed_on(caplog):
    ev = _evidence()
    ev.image_means[0][0, 0] = np.nan
    with caplog.at_level("WARNING", logger="proximity"):
        out = compute_signals(SignalContext(evidence=ev, entry=ENTRY), ["early_shift", "prior"])
    assert out["early_shift"].value is None and "numerical failure" in out["early_shift"].reason
    assert "non-finite" in out["early_shift"].reason and "failed numerically" in caplog.text


def test_probe_in_row_space_equals_the_full_fit():
    """The row-space projection is exact for an L2 logistic probe (d > n)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from proximity.signals.probe import probe_scores, row_space
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 15)
    x = rng.normal(size=(45, 200)) + 0.4 * rng.normal(size=(3, 200))[y]
    xs = StandardScaler().fit_transform(x[:36])
    b = row_space(xs)
    assert b.shape == (200, 35) and np.allclose(b.T @ b, np.eye(35))   # centred rows: rank n − 1
    full = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(xs, y[:36])
    proj = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(xs @ b, y[:36])
    np.testing.assert_allclose(full.coef_, proj.coef_ @ b.T, atol=1e-5)
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(x, y))
    scores, _ = probe_scores(x, y, splits)
    assert scores.shape == (3,) and (scores > 0.5).all()


def test_probe_loo_is_exactly_leave_one_out_refitting():
    """The closed-form leave-one-out decision values equal refitting ridge without each image."""
    from sklearn.linear_model import Ridge

    from proximity.signals.probe_loo import loo_predictions, probe_loo

    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    x = rng.normal(size=(30, 12)) + 0.8 * rng.normal(size=(3, 12))[y]
    lam = 2.5
    fast = loo_predictions(x, y, lam)
    t = np.eye(3)[y]
    for i in range(30):
        rest = np.arange(30) != i
        ref = Ridge(alpha=lam).fit(x[rest], t[rest]).predict(x[i:i + 1])[0]
        np.testing.assert_allclose(fast[i], ref, rtol=1e-8, atol=1e-10)
    acc, sd, chosen = probe_loo(x, y)
    assert 0.6 < acc <= 1.0 and 0 <= sd < 0.2 and chosen > 0
    # d > n (the row space route) and labels that carry nothing
    xw = rng.normal(size=(20, 200))
    yw = np.arange(20) % 2
    assert probe_loo(xw, yw)[0] <= 0.8
