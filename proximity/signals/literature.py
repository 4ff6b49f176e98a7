"""Transferability estimators from the literature, as pure functions and registered signals.

Each function takes frozen features ``x`` (n, d) and, where it needs them, int labels ``y`` (n,),
and returns one float (higher = predicted to transfer better, except where said). Each was checked
against its authors' published code on seeded data (``tests/data/literature_reference.json``,
with provenance) or, where no official code was available here, against a hand-derived case and
an independent re-implementation in the tests. Where this code departs from the authors' on
purpose, the docstring says how and why.

==============  ======  =====================================================================
signal          labels  estimator
==============  ======  =====================================================================
sfda            yes     Self-challenging Fisher Discriminant Analysis (Shao et al., ECCV 2022)
nleep           yes     N-LEEP: LEEP over a Gaussian mixture's components (Li et al., CVPR 2021)
hscore          yes     shrinkage-regularised H-score (Ibrahim et al., ICLR 2023; H-score:
                        Bao et al., ICIP 2019)
transrate       yes     TransRate: coding rate minus class-conditional coding rate (Huang et
                        al., ICML 2022)
etran_lda       yes     ETran's classification score (Gholami et al., ICCV 2023)
etran_energy    no      ETran's energy score: the low tail of logsumexp of the features
ncti_seli       yes     NCTI components (Wang et al., CVPR 2023): nuclear norm of the
ncti_ncc        yes     LDA-projected features (seli), nearest-centre accuracy (ncc) and the
ncti_vc         yes     class-wise nuclear norm of predictions (vc; lower is better)
==============  ======  =====================================================================

ETran and NCTI combine their components by min–max scaling *across the candidate models* of
one target, so the combinations are rankers (``proximity.ranking``), not per-model signals.
"""

from __future__ import annotations

from typing import overload

import numpy as np

from ..errors import InvalidParameterError, SignalUnavailable

#: Version of each estimator's definition here; a fitted rule records the versions it used.
VERSIONS = {"sfda": 1, "nleep": 1, "hscore": 1, "transrate": 1, "etran_lda": 1, "etran_energy": 1,
            "ncti_seli": 1, "ncti_ncc": 1, "ncti_vc": 1}


@overload
def _check(x: np.ndarray, y: None = None) -> tuple[np.ndarray, None]: ...
@overload
def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def _check(x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InvalidParameterError("features", "literature estimator", "an array of shape (n, d), n ≥ 2",
                                    getattr(x, "shape", None))
    if y is None:
        return x, None
    y = np.unique(np.asarray(y), return_inverse=True)[1]
    if y.shape != (x.shape[0],):
        raise InvalidParameterError("labels", "literature estimator", f"shape ({x.shape[0]},)", y.shape)
    if y.max() < 1:
        raise SignalUnavailable("only one class: a supervised estimator needs at least two")
    return x, y


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _shrink(cov: np.ndarray, lam: float) -> np.ndarray:
    """(1 − λ)·Σ + λ·(tr Σ / d)·I, the shrinkage of scikit-learn's LDA and of the SFDA code."""
    d = cov.shape[0]
    out = (1.0 - lam) * cov
    out.flat[:: d + 1] += lam * np.trace(cov) / d
    return out


def _power_top(a: np.ndarray, iterations: int = 3) -> float:
    """The SFDA code's estimate of the largest eigenvalue: 3 power steps from the row sums."""
    v = a.sum(1)
    for _ in range(iterations):
        w = a @ v
        u = w / np.linalg.norm(w)
        w = a @ u
        v = w / np.linalg.norm(w)
    return float(v @ a @ u)


def _top_eigenvalue(a: np.ndarray) -> float:
    """The largest eigenvalue of a symmetric matrix, alone (LAPACK's syevr on one index: the
    same number as the last of ``eigvalsh``, without the rest of the spectrum)."""
    from scipy.linalg import eigh

    d = a.shape[0]
    return float(eigh(a, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0])


def _fda_proba(x: np.ndarray, y: np.ndarray, lam: float | None, exact_top: bool = True) -> tuple[np.ndarray, float]:
    """Regularised Fisher discriminant posteriors p(y | x) and the shrinkage used.

    Within-class scatter ``S_w = Σ_c p_c Σ_c`` (biased covariances), shrinkage
    ``λ = max(exp(−5 σ_max(S_w)), 1e-10)`` unless given. The SFDA paper's classifier projects
    on *all* generalised eigenvectors V of (S_b, S̃_w) with ``Vᵀ S̃_w V = I``, so ``V Vᵀ = S̃_w⁻¹``
    and its scores are the LDA scores ``x S̃_w⁻¹ μ_c − ½ μ_c S̃_w⁻¹ μ_c + log p_c``, computed
    here by one symmetric solve instead of the generalised eigenproblem (the same numbers). The
    largest eigenvalue is exact here, where the authors' code takes 3 power iterations.
    """
    n, d = x.shape
    classes = np.bincount(y)
    priors = classes / n
    means = np.zeros((classes.size, d))
    np.add.at(means, y, x)
    means /= classes[:, None]
    sw = np.zeros((d, d))
    for c in range(classes.size):
        xc = x[y == c] - means[c]
        sw += priors[c] * (xc.T @ xc) / len(xc)
    if lam is None:
        top = _top_eigenvalue(sw) if exact_top else _power_top(sw)
        lam = max(float(np.exp(-5.0 * top)), 1e-10)
    a = _shrink(sw, lam)
    coef = np.linalg.solve(a, means.T).T              # μ_c S̃_w⁻¹ (S̃_w symmetric)
    logits = x @ coef.T - 0.5 * np.einsum("cd,cd->c", means, coef) + np.log(priors)
    return _softmax(logits), lam


def sfda(x: np.ndarray, y: np.ndarray, *, exact_top: bool = True) -> float:
    """SFDA score: mean posterior of the true class after a self-challenging second fit.

    1. Regularised FDA on the features (see :func:`_fda_proba`) → posteriors P.
    2. Soften: ``P' = softmax(P)`` (as the authors' code does, on the probabilities).
    3. ConfMix: each sample moves towards the mean of the *other* classes' means in
       proportion to how unsure it is, ``x ← p'·x + (1 − p')·μ̄₋c``.
    4. Refit with the same shrinkage; the score is the mean posterior of the true class.

    ``exact_top=False`` estimates σ_max(S_w) by the authors' 3 power steps instead of exactly
    (it then agrees with their code to round-off; exactly, within ~0.1 % on the test cases).
    """
    x, y = _check(x, y)
    x = x.copy()
    p, lam = _fda_proba(x, y, None, exact_top)
    p = _softmax(p)
    counts = np.bincount(y)
    means = np.zeros((counts.size, x.shape[1]))
    np.add.at(means, y, x)
    means /= counts[:, None]
    others = (means.sum(0, keepdims=True) - means) / (counts.size - 1)
    conf = p[np.arange(len(y)), y][:, None]
    x = conf * x + (1.0 - conf) * others[y]
    p2, _ = _fda_proba(x, y, lam)
    return float(p2[np.arange(len(y)), y].mean())


def nleep(x: np.ndarray, y: np.ndarray, *, component_ratio: int = 5, seed: int = 0) -> float:
    """N-LEEP: PCA keeping 80 % of the variance, a full-covariance Gaussian mixture with
    ``component_ratio × C`` components (scikit-learn defaults, seeded), then LEEP with the
    mixture's components as the "source labels": ``mean_i Σ_z p(y_i | z) p(z | x_i)``.
    At most ``n − 1`` components (a mixture needs more samples than components)."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    x, y = _check(x, y)
    n, n_classes = len(y), int(y.max()) + 1
    z = PCA(n_components=0.8).fit_transform(x)
    k = min(component_ratio * n_classes, n - 1)
    gmm = GaussianMixture(n_components=k, random_state=np.random.RandomState(seed)).fit(z)
    prob = gmm.predict_proba(z)                                    # p(z | x), n × k
    joint = np.stack([prob[y == c].sum(0) for c in range(n_classes)]) / n   # p(y, z)
    cond = joint / joint.sum(0, keepdims=True)                     # p(y | z)
    return float((prob @ cond.T)[np.arange(n), y].mean())


def hscore(x: np.ndarray, y: np.ndarray, *, centered_svd: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Shrinkage-regularised H-score: ``tr( Σ̃_f⁻¹ (1 − α) Σ_g )`` with Σ_f the feature
    covariance, Σ_g the covariance of the class-conditional means ``g(x) = E[f | y]``, and
    ``Σ̃_f = (1 − α) Σ_f + α (tr Σ_f / d) I`` shrunk by the Ledoit–Wolf α (Ibrahim et al.); the
    plain H-score (α = 0) is unstable when n is not ≫ d.

    Computed in the n-dimensional span of the centred features instead of with d × d matrices
    (the same number, to round-off): with ``X_c = U S Vᵀ``, Σ̃_f has eigenvalues
    ``(1 − α) s_k²/n + α μ`` on V and ``α μ`` elsewhere, and ``g(X) = P U S Vᵀ`` (P averages
    within classes) lies in V's span, so the trace is ``Σ_k (1 − α) s_k² ‖P u_k‖² / ((1 − α) s_k²
    + n α μ)``. The Ledoit–Wolf α is scikit-learn's formula with ``‖X_cᵀX_c‖_F² = Σ s⁴``.
    ``centered_svd``: (U, s) of the centred ``x`` when already known.
    """
    x, y = _check(x, y)
    n, d = x.shape
    if centered_svd is None:
        u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    else:
        u, s = centered_svd
    xc = x - x.mean(0)
    from .shared import ledoit_wolf_from_svd

    alpha, mu = ledoit_wolf_from_svd(xc, s)
    counts = np.bincount(y)
    means = np.zeros((counts.size, u.shape[1]))
    np.add.at(means, y, u)
    means /= counts[:, None]
    pu2 = (counts[:, None] * means ** 2).sum(0)          # ‖P u_k‖²
    s2 = s ** 2
    den = (1.0 - alpha) * s2 + n * alpha * mu
    num = (1.0 - alpha) * s2 * pu2
    ok = den > 0                                          # den = 0 only where s_k = 0 and α = 0: no term
    return float((num[ok] / den[ok]).sum())


def coding_rate(z: np.ndarray, eps: float) -> float:
    """``R(Z, ε) = ½ log det(I_d + ZᵀZ / (n ε))`` for Z of shape (n, d), in the convention of
    the TransRate paper's code (its ε stands for ε²/d of the coding-rate literature); through
    the n × n Gram matrix when d > n (Sylvester: the same determinant)."""
    n, d = z.shape
    gram = z @ z.T if d > n else z.T @ z
    sign, logdet = np.linalg.slogdet(np.eye(gram.shape[0]) + gram / (n * eps))
    return 0.5 * float(logdet)


def transrate(x: np.ndarray, y: np.ndarray, *, eps: float = 1e-4) -> float:
    """TransRate: ``R(Z, ε) − (1/C) Σ_c R(Z_c, ε)`` on centred features Z (how much the
    features compress once the class is known: large = informative and well separated)."""
    x, y = _check(x, y)
    z = x - x.mean(0)
    k = int(y.max()) + 1
    return coding_rate(z, eps) - sum(coding_rate(z[y == c], eps) for c in range(k)) / k


def etran_lda(x: np.ndarray, y: np.ndarray) -> float:
    """ETran's classification score as its authors' code computes it: the mean posterior of
    the true class under ``softmax(x μ_cᵀ − ½‖μ_c‖² + log p_c)``.

    The paper describes an LDA projection; the published code takes ``eigh(S_w⁻¹ S_b)``, whose
    eigenvectors (numpy's ``eigh`` reads one triangle of the non-symmetric matrix) are
    orthonormal and complete, so its ``coef = μ V Vᵀ`` is ``μ`` itself: a nearest-mean
    classifier in the raw feature space. Reproduced as published (checked in the tests)."""
    x, y = _check(x, y)
    counts = np.bincount(y)
    means = np.zeros((counts.size, x.shape[1]))
    np.add.at(means, y, x)
    means /= counts[:, None]
    logits = x @ means.T - 0.5 * (means**2).sum(1) + np.log(counts / len(y))
    return float(_softmax(logits)[np.arange(len(y)), y].mean())


def etran_energy(x: np.ndarray, *, fraction: float = 0.005) -> float:
    """ETran's energy score (label-free): per image ``E(x) = logsumexp_j f_j(x)`` over the
    feature dimensions, averaged over the ``fraction`` of images with the *lowest* energy (the
    authors' code: 0.5 %; at least one image). Higher = more "in-distribution"."""
    from scipy.special import logsumexp

    x, _ = _check(x)
    e = np.sort(logsumexp(x, axis=1))
    k = max(1, int(fraction * len(e)))
    return float(e[:k].mean())


def ncti_components(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """NCTI's three per-model components ``(seli, ncc, vc)``:

    PCA to 64 dimensions (at most min(n, d)); shrinkage ``max(exp(−Σ top-32 explained
    variances), 1e-10)`` (at the floor: scikit-learn's SVD solver, unshrunk); LDA fitted and
    applied to the same images → ``seli`` = nuclear norm of the centred projection, ``ncc`` =
    mean posterior of the true class, ``vc`` = log Σ_c ‖P_c‖_* of each class's posteriors
    (lower is better). The combination ``minmax(ncc) + minmax(seli) − minmax(vc)`` over the
    candidate models is a ranker (``ncti``)."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, y = _check(x, y)
    k = min(64, x.shape[0], x.shape[1])
    pca = PCA(n_components=k)
    z = pca.fit_transform(x)
    temp = max(float(np.exp(-pca.explained_variance_[:32].sum())), 1e-10)
    clf = LinearDiscriminantAnalysis(solver="svd") if temp == 1e-10 else \
        LinearDiscriminantAnalysis(solver="eigen", shrinkage=temp)
    low = clf.fit_transform(z, y)
    low = low - low.mean(0, keepdims=True)
    seli = float(np.linalg.norm(low, ord="nuc"))
    pred = clf.predict_proba(z)
    ncc = float(pred[np.arange(len(y)), y].mean())
    vc = float(np.log(sum(np.linalg.norm(pred[y == c], ord="nuc") for c in range(int(y.max()) + 1))))
    return seli, ncc, vc
