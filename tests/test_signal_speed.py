"""The signals' shared decompositions (issue 14) give the numbers the signals gave before.

``tests/data/signal_golden.json`` was recorded by the implementation before the sharing (each
signal with its own SVDs, the probe's row space by an SVD per fold, a bootstrap loop, one
cosine matrix per silhouette); see ``tests/data/make_signal_golden.py``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from proximity.signals import compute_signals, signal_versions

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_signal_golden import CASES, golden_context  # noqa: E402

GOLDEN = json.loads((DATA / "signal_golden.json").read_text())
FOLDED = ("probe", "control", "gain", "knn")       # k-fold means: within their sd (in practice equal)


def test_golden_file_is_for_todays_signal_versions():
    """A changed definition bumps a version; then the golden values are stale and must be remade."""
    assert GOLDEN["versions"] == signal_versions()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_signal_gives_the_values_recorded_before_the_sharing(case):
    got = compute_signals(golden_context(*case))
    want = GOLDEN["cases"][case[0]]
    assert set(got) == set(want)
    for name, v in got.items():
        ref = want[name]
        if ref["value"] is None:
            assert v.value is None, name
            continue
        assert v.value is not None, (name, v.reason)
        if name.startswith("ncti"):           # scikit-learn's randomized PCA, unseeded: it varies run to run
            assert v.value == pytest.approx(ref["value"], rel=2e-2), name
        elif name in FOLDED:
            assert abs(v.value - ref["value"]) <= ref["sd"], name
            assert v.value == pytest.approx(ref["value"], abs=1e-12), name      # and in fact the same
        elif name == "logme":
            assert v.value == pytest.approx(ref["value"], rel=1e-10, abs=1e-12), name
        else:
            assert v.value == pytest.approx(ref["value"], rel=1e-9, abs=1e-12), name
        if ref["sd"] is not None and not name.startswith("ncti"):
            assert v.sd == pytest.approx(ref["sd"], rel=1e-7, abs=1e-12), name


@pytest.mark.parametrize("shape", [(30, 80), (60, 60), (25, 400)])
def test_gram_coordinates_span_the_training_rows_like_the_svd(shape):
    """Same coordinates as projecting on the SVD row-space basis, up to column signs."""
    from proximity.signals.probe import row_space
    from proximity.signals.shared import gram_coordinates

    rng = np.random.default_rng(0)
    n, d = shape
    xtr = rng.normal(size=(n, d))
    xtr -= xtr.mean(0)                              # centred like a standardised fold: rank n − 1
    xte = rng.normal(size=(7, d))
    ctr, cte = gram_coordinates(xtr, xte)
    basis = row_space(xtr)
    assert ctr.shape[1] == basis.shape[1] == np.linalg.matrix_rank(xtr)
    # Gram matrices (inner products) are basis-independent
    np.testing.assert_allclose(ctr @ ctr.T, (xtr @ basis) @ (xtr @ basis).T, atol=1e-8)
    np.testing.assert_allclose(cte @ ctr.T, (xte @ basis) @ (xtr @ basis).T, atol=1e-8)
    np.testing.assert_allclose(cte @ cte.T, (xte @ basis) @ (xte @ basis).T, atol=1e-8)


def test_probe_scores_match_the_per_fold_svd_route():
    """The probe through the fold Gram matrices scores every fold as the per-fold SVD did."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from proximity.signals.probe import probe_scores, row_space

    rng = np.random.default_rng(3)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 300)) + 0.3 * rng.normal(size=(3, 300))[y]
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(x, y))
    old = []
    for tr, te in splits:
        sc = StandardScaler().fit(x[tr])
        b = row_space(sc.transform(x[tr]))
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(x[tr]) @ b, y[tr])
        old.append(balanced_accuracy_score(y[te], clf.predict(sc.transform(x[te]) @ b)))
    new, _ = probe_scores(x, y, splits)
    np.testing.assert_allclose(new, old, atol=1e-12)


def test_knn_on_one_distance_matrix_equals_a_fit_per_fold():
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import KNeighborsClassifier

    from proximity.catalog import CatalogEntry
    from proximity.evidence import Evidence
    from proximity.signals import SignalContext
    from proximity.signals.probe import _splits

    rng = np.random.default_rng(1)
    y = np.arange(60) % 4
    f = np.abs(rng.normal(size=(60, 24)) + rng.normal(size=(4, 24))[y]).astype(np.float32)
    ev = Evidence(features=f, layer_names=[], image_means=[], image_vars=[], source_means=[], source_vars=[], seconds=0)
    ctx = SignalContext(evidence=ev, entry=CatalogEntry(id="x", source="timm:x"), labels=y)
    got = compute_signals(ctx, ["knn"])["knn"]
    scores = []
    for tr, te in _splits(ctx):
        clf = KNeighborsClassifier(n_neighbors=5, metric="cosine").fit(f[tr], y[tr])
        scores.append(balanced_accuracy_score(y[te], clf.predict(f[te])))
    assert got.value == pytest.approx(np.mean(scores), abs=1e-12)
    assert got.sd == pytest.approx(np.std(scores, ddof=1), abs=1e-12)


def test_bootstrap_at_once_equals_the_loop():
    """The vectorised early_shift bootstrap draws the same resamples and gives the same values."""
    from proximity.signals.early_shift import BOOTSTRAP, _value, bootstrap_values

    ctx = golden_context(*CASES[2])
    ev = ctx.evidence
    sources = list(zip(ev.source_means, ev.source_vars, strict=True))
    rng = np.random.default_rng(5)
    loop = [rng.integers(0, ev.n, ev.n) for _ in range(BOOTSTRAP)]
    rows = np.random.default_rng(5).integers(0, ev.n, (BOOTSTRAP, ev.n))
    np.testing.assert_array_equal(np.stack(loop), rows)
    np.testing.assert_allclose(bootstrap_values(ev, sources, rows), [_value(ev, sources, r) for r in loop], rtol=1e-12)


def test_hscore_in_n_space_equals_the_d_by_d_formula():
    from sklearn.covariance import ledoit_wolf_shrinkage

    from proximity.signals import literature as L
    from proximity.signals.shared import ledoit_wolf_from_svd

    rng = np.random.default_rng(2)
    for n, d in ((40, 100), (200, 30)):
        y = np.arange(n) % 3
        x = rng.normal(size=(n, d)) + rng.normal(size=(3, d))[y]
        xc = x - x.mean(0)
        alpha = float(ledoit_wolf_shrinkage(xc, assume_centered=True))
        cov_f = xc.T @ xc / n
        means = np.stack([xc[y == c].mean(0) for c in range(3)])
        g = means[y]
        expected = np.trace(np.linalg.solve(L._shrink(cov_f, alpha), (1 - alpha) * (g.T @ g / n)))
        assert L.hscore(x, y) == pytest.approx(expected, rel=1e-10)
        assert ledoit_wolf_from_svd(xc, np.linalg.svd(xc, compute_uv=False))[0] == pytest.approx(alpha, rel=1e-10)


def test_shared_features_are_read_only():
    from proximity.signals.shared import FeatureMatrix

    fm = FeatureMatrix(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError):
        fm.x64[0, 0] = 2.0


@pytest.mark.parametrize("n,d", [(30, 50), (120, 40), (10, 64)])
def test_frechet_from_the_shared_svd_equals_the_dense_computation(n, d):
    """The factored Fréchet distance (Σ₁ from an SVD, no eigendecomposition of it) against the
    dense one on the covariance gaussian_fit returns."""
    from proximity.signals.kernels import frechet_distance, frechet_distance_factored, gaussian_fit
    from proximity.signals.shared import FeatureMatrix, ledoit_wolf_from_svd

    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3.0
    mu, cov = gaussian_fit(x)
    fm = FeatureMatrix(x)
    _, s = fm.centered_svd()
    if n < 2 * d:
        alpha, m = ledoit_wolf_from_svd(fm.centered, s)
        eig, rest = (1 - alpha) * s ** 2 / n + alpha * m, alpha * m
    else:
        eig, rest = s ** 2 / (n - 1), 0.0
    a = rng.normal(size=(d, d))
    ref_cov, ref_mu = a @ a.T / d, rng.normal(size=d)
    dense = frechet_distance(mu, cov, ref_mu, ref_cov)
    assert frechet_distance_factored(mu, fm.centered_vt(), eig, rest, ref_mu, ref_cov) == pytest.approx(dense, rel=1e-9)
