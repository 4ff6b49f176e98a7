"""proximity.signals.linear computes what its scikit-learn counterparts compute (issue 14: the
probe and kNN without importing scikit-learn)."""

import subprocess
import sys

import numpy as np
import pytest

from proximity.signals.linear import (balanced_accuracy, cosine_distances, knn_predict, logistic_fit, standardize,
                                      stratified_kfold)

LABELS = [
    np.repeat(np.arange(5), 20),                                    # sorted, balanced
    np.random.default_rng(1).permutation(np.repeat([3, 1, 2], [7, 12, 30])),  # shuffled, unbalanced, not 0-based
    np.array(list("bacbbaccabcabbcacbabca")),                       # strings, first appearance ≠ sorted order
    np.random.default_rng(2).integers(0, 8, 300),
]


@pytest.mark.parametrize("y", LABELS, ids=range(len(LABELS)))
@pytest.mark.parametrize("seed", [0, 7])
def test_stratified_kfold_gives_scikit_learns_folds(y, seed):
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    for k in sorted({2, min(5, counts.min()), counts.min()}):
        want = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
        got = stratified_kfold(y, k, seed)
        assert len(got) == len(want)
        for (a, b), (c, d) in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_stratified_kfold_refuses_more_folds_than_the_smallest_class():
    with pytest.raises(ValueError, match="smallest class"):
        stratified_kfold(np.array([0, 0, 1, 1, 1]), 3, 0)


def test_standardize_is_the_standard_scaler():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(40, 6))
    x[:, 2] = 5.0                                                   # a constant column stays unscaled
    other = rng.normal(size=(9, 6))
    sc = StandardScaler().fit(x)
    a, b = standardize(x, other)
    np.testing.assert_allclose(a, sc.transform(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b, sc.transform(other), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosine_distances_are_scikit_learns_bit_for_bit(dtype):
    from sklearn.metrics.pairwise import cosine_distances as sk_cosine

    x = np.random.default_rng(0).normal(size=(50, 33)).astype(dtype)
    x[4] = 0.0                                                      # a zero row: distance 1 to the others
    got = cosine_distances(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, sk_cosine(x))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_predict_is_the_classifier_on_precomputed_distances(k):
    """Also with tied votes and tied distances (integer distances)."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(k)
    for dist_kind in ("float", "ties"):
        d = rng.random((60, 90)) if dist_kind == "float" else rng.integers(0, 4, (60, 90)).astype(float)
        y = rng.permutation(np.repeat([2, 5, 9], 30))
        clf = KNeighborsClassifier(n_neighbors=k, metric="precomputed").fit(np.zeros((90, 90)), y)
        np.testing.assert_array_equal(knn_predict(d, y, k), clf.predict(d))


def test_balanced_accuracy_is_scikit_learns():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 80), rng.integers(0, 4, 80)
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-15)


@pytest.mark.parametrize("n_classes", [2, 3, 6])
@pytest.mark.parametrize("shape", [(120, 10), (60, 59)])
def test_logistic_fit_reaches_scikit_learns_optimum(n_classes, shape):
    """The same objective: the same decision values to the optimiser's tolerance, the same labels."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(n_classes * 100 + shape[1])
    n, d = shape
    y = rng.integers(0, n_classes, n) * 10 + 1                      # labels that are not 0..K-1
    centres = rng.normal(size=(n_classes, d))
    x = centres[(y - 1) // 10] * 0.8 + rng.normal(size=(n, d))
    test = rng.normal(size=(200, d)) + centres[rng.integers(0, n_classes, 200)] * 0.8
    ours = logistic_fit(x, y, C=1.0)
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    assert ours.converged
    np.testing.assert_array_equal(ours.classes, ref.classes_)
    got, want = ours.decision(test), ref.decision_function(test)
    if n_classes > 2:             # multinomial decision values are defined up to a constant per row
        got, want = got - got.mean(1, keepdims=True), want - want.mean(1, keepdims=True)
    else:
        got = got[:, 0]
    np.testing.assert_allclose(got, want, atol=2e-3 * np.abs(want).max())
    assert (ours.predict(test) == ref.predict(test)).mean() >= 0.99


def test_logistic_fit_reports_an_unconverged_fit():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 20)), rng.integers(0, 3, 80)
    assert not logistic_fit(x, y, max_iter=2).converged
    assert logistic_fit(x, y).converged


def test_a_labelled_run_never_imports_scikit_learn(target_dir, backbones, tmp_path):
    """The default signals of a labelled run (probe, kNN, control, gain, LogME…) need no scikit-learn
    (its import was ≈ 1.3 s of every labelled run)."""
    code = ("import sys, proximity; r = proximity.rank(sys.argv[1], models=[sys.argv[2]], sample=24, folds=3, "
            "use_cache=False); s = r.ranking[0].signals; "
            "assert all(s[n].value is not None for n in ('probe', 'knn', 'logme', 'control', 'gain')), s; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    out = subprocess.run([sys.executable, "-c", code, str(target_dir), f"local-dir:{backbones['A']}"],
                         capture_output=True, text=True, env={**__import__("os").environ,
                                                              "PROXIMITY_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
