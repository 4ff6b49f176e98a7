"""Label-free signals on documented cases (hand-derived answers)."""

import numpy as np
import pytest

from proximity.errors import SignalUnavailable
from proximity.signals import SIGNALS
from proximity.signals.labelfree import alpha_exponent, alpha_req, cluster_separability, rankme


def test_rankme_counts_equal_directions():
    # k orthogonal directions of equal energy: p_k = 1/k, entropy log k, RankMe = k (up to the 1e-7 offset)
    for k in (1, 3, 10):
        x = np.zeros((20, 16))
        x[np.arange(k), np.arange(k)] = 5.0
        assert rankme(x) == pytest.approx(k, rel=1e-4)
    # unequal energies give fewer effective directions than their count
    x = np.diag([10.0, 1.0, 1.0, 1.0])
    assert 1.0 < rankme(x) < 4.0


def test_alpha_req_recovers_a_power_law_spectrum():
    rng = np.random.default_rng(0)
    d, alpha = 40, 1.6
    q, _ = np.linalg.qr(rng.normal(size=(2000, d)))
    x = q * np.sqrt(np.arange(1, d + 1) ** -alpha) * np.sqrt(1999)     # exact covariance eigenvalues i^-α
    assert alpha_exponent(x - x.mean(0)) == pytest.approx(alpha, abs=0.05)
    assert alpha_req(x) == pytest.approx(-abs(alpha_exponent(x) - 1.0))
    with pytest.raises(SignalUnavailable):
        alpha_exponent(np.ones((5, 3)))


def test_cluster_separability_sees_groups_and_not_noise():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 8)) * 10
    grouped = np.repeat(centres, 30, 0) + 0.1 * rng.normal(size=(90, 8))
    sil, k = cluster_separability(grouped)
    assert sil > 0.9 and k == 3
    noise, _ = cluster_separability(rng.normal(size=(90, 8)))
    assert noise < 0.3


def test_label_free_signals_are_registered_without_labels():
    for name in ("rankme", "alpha_req", "cluster", "rankme_rel", "cluster_rel", "etran_energy"):
        assert "labels" not in SIGNALS[name].needs and SIGNALS[name].higher_is_better
    assert "control" in SIGNALS["rankme_rel"].needs
