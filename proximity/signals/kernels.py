"""The numerical kernels behind the signals, public for scripts: Fréchet distance and LogME.

Both work in float64 and never hide a numerical failure: a value that cannot be trusted raises
:class:`~proximity.errors.NumericalError` with the number that went wrong.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError, NumericalError


def rank_mask(s: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Which singular values ``s`` of a matrix of ``shape`` count towards its numerical rank: those
    above ``σ_max · max(shape) · eps`` (numpy's ``matrix_rank`` tolerance)."""
    return s > s.max() * max(shape) * np.finfo(np.float64).eps if s.size else s.astype(bool)


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix through eigh (negatives within round-off → 0)."""
    w, v = np.linalg.eigh(a)
    tol = 1e-8 * max(float(np.abs(w).max()), 1e-300)
    if w.min() < -tol:
        raise NumericalError("covariance matrix is not positive semi-definite", float(w.min()))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)``, with the trace of the matrix square root computed as
    ``Σ √λ`` for ``λ = eigvalsh(Σ₁^½ Σ₂ Σ₁^½)`` (symmetric, real, same spectrum as Σ₁Σ₂).
    Eigenvalues above ``−1e-8 · max λ`` are round-off and clipped to 0; a more negative one raises.

    Parameters
    ----------
    mu1, mu2 : ndarray of shape (d,)
    sigma1, sigma2 : ndarray of shape (d, d), symmetric positive semi-definite

    Returns
    -------
    float ≥ 0 (unnormalised; the ``frechet`` signal divides it by tr(Σ_ref)).

    Raises
    ------
    InvalidParameterError : shapes disagree.
    NumericalError : a covariance is not PSD, or the result is not finite.
    """
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InvalidParameterError("sigma1/sigma2/mu2", "frechet_distance", f"shapes ({d},) and ({d}, {d})",
                                    (mu2.shape, s1.shape, s2.shape))
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise NumericalError(f"frechet_distance: {name} has non-finite values", int((~np.isfinite(a)).sum()))
    s1, s2 = (s1 + s1.T) / 2.0, (s2 + s2.T) / 2.0
    root1 = _sym_sqrt(s1)
    _sym_sqrt(s2)  # the same PSD check for Σ₂
    lam = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tol = 1e-8 * max(float(np.abs(lam).max()), 1e-300)
    if lam.min() < -tol:
        raise NumericalError("negative eigenvalue of Σ₁^½ Σ₂ Σ₁^½ beyond round-off", float(lam.min()))
    trace_sqrt = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
    if not np.isfinite(fd):
        raise NumericalError("Fréchet distance is not finite", fd)
    if fd < -1e-8 * max(float(np.trace(s1) + np.trace(s2)), 1e-300):
        raise NumericalError("Fréchet distance is negative beyond round-off", fd)
    return max(fd, 0.0)  # round-off only


def frechet_distance_factored(mu1: np.ndarray, vt1: np.ndarray, eig1: np.ndarray, rest1: float,
                              mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """:func:`frechet_distance` for a Σ₁ given by its eigenpairs: ``Σ₁ = V diag(eig1) Vᵀ +
    rest1 · (I − V Vᵀ)`` with ``Vᵀ = vt1`` of shape (k, d), orthonormal rows (an SVD's), k ≤ d.

    ``Σ₁^½ = V diag(√eig1) Vᵀ + √rest1 · (I − V Vᵀ)`` then needs no eigendecomposition, and
    ``tr Σ₁ = Σ eig1 + (d − k) rest1``; the rest is :func:`frechet_distance`'s computation and
    checks, less the positive semi-definiteness check of Σ₂, which the caller vouches for (a
    reference covariance is PSD by construction: non-negative eigenvalues and residual).
    The same number as ``frechet_distance(mu1, Σ₁, mu2, sigma2)``, to round-off.
    """
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    vt1, eig1, s2 = np.asarray(vt1, np.float64), np.asarray(eig1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    k = eig1.shape[0]
    if mu2.shape != (d,) or s2.shape != (d, d) or vt1.shape != (k, d) or k > d:
        raise InvalidParameterError("vt1/eig1/mu2/sigma2", "frechet_distance_factored",
                                    f"shapes (k, {d}), (k,), ({d},) and ({d}, {d}) with k ≤ {d}",
                                    (vt1.shape, eig1.shape, mu2.shape, s2.shape))
    _check_factored((("mu1", mu1), ("eig1", eig1), ("mu2", mu2), ("sigma2", s2)), eig1, rest1)
    root_rest = np.sqrt(max(rest1, 0.0))
    root1 = (vt1.T * (np.sqrt(np.clip(eig1, 0.0, None)) - root_rest)) @ vt1
    root1.flat[:: d + 1] += root_rest
    s2 = (s2 + s2.T) / 2.0
    lam = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tol = 1e-8 * max(float(np.abs(lam).max()), 1e-300)
    if lam.min() < -tol:
        raise NumericalError("negative eigenvalue of Σ₁^½ Σ₂ Σ₁^½ beyond round-off", float(lam.min()))
    trace_sqrt = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    trace1 = float(eig1.sum() + (d - k) * max(rest1, 0.0))
    return _assemble(mu1 - mu2, trace1, float(np.trace(s2)), trace_sqrt)


def _check_factored(arrays, eig1: np.ndarray | None = None, rest1: float = 0.0) -> None:
    """NumericalError for a non-finite input among ``arrays`` ((name, array) pairs), and — given
    ``eig1`` — for a Σ₁ = V diag(eig1) Vᵀ + rest1 (I − V Vᵀ) that is not positive semi-definite."""
    for name, a in arrays:
        if not np.isfinite(a).all():
            raise NumericalError(f"frechet_distance: {name} has non-finite values", int((~np.isfinite(a)).sum()))
    if eig1 is None:
        return
    k = eig1.shape[0]
    top = max(float(np.abs(eig1).max()) if k else 0.0, abs(rest1), 1e-300)
    if (k and eig1.min() < -1e-8 * top) or rest1 < -1e-8 * top:
        raise NumericalError("covariance matrix is not positive semi-definite", float(min(eig1.min(), rest1)))


def _assemble(diff: np.ndarray, trace1: float, trace2: float, trace_sqrt: float) -> float:
    fd = float(diff @ diff + trace1 + trace2 - 2.0 * trace_sqrt)
    if not np.isfinite(fd):
        raise NumericalError("Fréchet distance is not finite", fd)
    if fd < -1e-8 * max(trace1 + trace2, 1e-300):
        raise NumericalError("Fréchet distance is negative beyond round-off", fd)
    return max(fd, 0.0)


def frechet_distance_lowrank(mu1: np.ndarray, vt1: np.ndarray, eig1: np.ndarray, rest1: float,
                             mu2: np.ndarray, v2: np.ndarray, eig2: np.ndarray, rest2: float) -> float:
    """:func:`frechet_distance_factored` with Σ₂ given as a reference stores it: ``Σ₂ = rest2 · I +
    V₂ diag(eig2 − rest2) V₂ᵀ`` (``v2`` (d, k₂); the same matrix as ``V₂ diag(eig2) V₂ᵀ + rest2 (I −
    V₂V₂ᵀ)``, with no orthonormality needed), without any d × d matrix when k₁ + k₂ < d.

    Both covariances act as multiples of the identity outside S = span(V₁, V₂) and map S into
    itself, so with Q an orthonormal basis of S (m ≤ k₁ + k₂ columns), Σ₁^½ Σ₂ Σ₁^½ has the
    eigenvalues of the m × m matrix ``A B A`` (A = QᵀΣ₁^½Q, B = QᵀΣ₂Q) and ``rest1 · rest2`` d − m
    times: ``tr (Σ₁^½ Σ₂ Σ₁^½)^½ = Σ √eig(ABA) + (d − m) √(rest1 · rest2)``. For d = 2048 pooled
    features, 500 images and a rank-256 reference that is one 756 × 756 eigendecomposition instead
    of a 2048 × 2048 one and two 2048³ products. Falls back to the dense route when k₁ + k₂ ≥ d.
    """
    vt1, eig1 = np.asarray(vt1, np.float64), np.asarray(eig1, np.float64).ravel()
    v2, eig2 = np.asarray(v2, np.float64), np.asarray(eig2, np.float64).ravel()
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    d = mu1.shape[0]
    k1, k2 = eig1.shape[0], eig2.shape[0]
    if mu2.shape != (d,) or vt1.shape != (k1, d) or v2.shape != (d, k2):
        raise InvalidParameterError("mu2/vt1/eig1/v2/eig2", "frechet_distance_lowrank",
                                    f"mu2 ({d},), vt1 (len(eig1), {d}) and v2 ({d}, len(eig2))",
                                    (mu2.shape, vt1.shape, eig1.shape, v2.shape, eig2.shape))
    _check_factored((("rest1", np.float64(rest1)), ("rest2", np.float64(rest2)), ("vt1", vt1), ("v2", v2)))
    if k1 + k2 >= d:
        sigma2 = (v2 * (eig2 - rest2)) @ v2.T
        sigma2.flat[:: d + 1] += rest2
        return frechet_distance_factored(mu1, vt1, eig1, rest1, mu2, sigma2)
    _check_factored((("mu1", mu1), ("eig1", eig1), ("mu2", mu2), ("eig2", eig2)), eig1, rest1)
    q, _ = np.linalg.qr(np.concatenate([vt1.T, v2], axis=1))
    m = q.shape[1]
    root_rest = np.sqrt(max(rest1, 0.0))
    a1 = q.T @ vt1.T                                          # (m, k1)
    a = (a1 * (np.sqrt(np.clip(eig1, 0.0, None)) - root_rest)) @ a1.T
    a.flat[:: m + 1] += root_rest
    b2 = q.T @ v2                                             # (m, k2)
    b = (b2 * (eig2 - rest2)) @ b2.T
    b.flat[:: m + 1] += rest2
    inner = a @ ((b + b.T) / 2.0) @ a
    lam = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    tol = 1e-8 * max(float(np.abs(lam).max()), 1e-300)
    if lam.min() < -tol:
        raise NumericalError("negative eigenvalue of Σ₁^½ Σ₂ Σ₁^½ beyond round-off", float(lam.min()))
    trace_sqrt = float(np.sqrt(np.clip(lam, 0.0, None)).sum()) + (d - m) * float(np.sqrt(max(rest1, 0.0) *
                                                                                        max(rest2, 0.0)))
    trace1 = float(eig1.sum() + (d - k1) * max(rest1, 0.0))
    trace2 = float(d * rest2 + ((eig2 - rest2) * (v2 * v2).sum(0)).sum())     # tr Σ₂ exactly, V₂ as given
    return _assemble(mu1 - mu2, trace1, trace2, trace_sqrt)


def gaussian_fit(features: np.ndarray, *, shrink: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of ``features`` of shape (n, d); n ≥ 2.

    ``shrink=None`` applies Ledoit–Wolf shrinkage when n < 2d (the sample covariance is then
    rank-deficient and noisy), ``True``/``False`` force it.
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InvalidParameterError("features", "gaussian_fit", "an array of shape (n, d) with n ≥ 2",
                                    getattr(x, "shape", None))
    n, d = x.shape
    mu = x.mean(0)
    if shrink if shrink is not None else n < 2 * d:
        from sklearn.covariance import ledoit_wolf

        cov, _ = ledoit_wolf(x, assume_centered=False)
    else:
        cov = np.cov(x, rowvar=False, ddof=1).reshape(d, d)
    return mu, cov


def _profile_max(sigma: np.ndarray, z2: np.ndarray, rest: float, n: int, t_floor: float, t_ceil: float) -> float:
    """The t = α/β that maximises the evidence, by a global search on the profile evidence.

    With α = tβ the evidence's maximum over β for fixed t is closed-form, β = n / (r² + t·m²),
    which leaves the 1-D *profile*::

        P(t) = k/2·log t − ½ Σᵢ₌₁ᵏ log(t + σᵢ) − n/2·log(r²(t) + t·m²(t))   (+ const)

    Its stationary points are exactly the fixed points of You et al.'s iteration (α = γ/m²,
    β = (n − γ)/r²), but when n ≤ d it can have several, and the iteration from α = β = 1 may
    stop at one that is not the maximum (measured: 0.10120 against a maximum of 0.10240 on
    n = 100, d = 256). So: P on a grid of 40 points per decade over [t_floor, t_ceil], then
    Brent's method in the two cells around the best grid point (to 1e-12 in log t). A maximum
    at either end is the limit there (within ~1e-10 of it, see :func:`logme`).
    """
    from scipy.optimize import minimize_scalar

    k = sigma.size
    lo, hi = np.log(t_floor), np.log(t_ceil)

    def profile(u: np.ndarray) -> np.ndarray:
        t = np.exp(np.atleast_1d(u))[:, None]
        m2 = (sigma * z2 / (sigma + t) ** 2).sum(1)
        r2 = (z2 * t * t / (sigma + t) ** 2).sum(1) + rest
        return k / 2.0 * np.log(t[:, 0]) - 0.5 * np.log(sigma + t).sum(1) - n / 2.0 * np.log(r2 + t[:, 0] * m2)

    grid = np.linspace(lo, hi, int(np.ceil((hi - lo) / np.log(10) * 40)) + 1)
    values = np.concatenate([profile(grid[i:i + 256]) for i in range(0, grid.size, 256)])
    if not np.isfinite(values).any():
        raise NumericalError("LogME: the evidence is not finite for any t", float(values[0]))
    i = int(np.nanargmax(np.where(np.isfinite(values), values, -np.inf)))
    if i in (0, grid.size - 1):
        return float(np.exp(grid[i]))
    res = minimize_scalar(lambda u: -float(profile(u)[0]), bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                          options={"xatol": 1e-12})
    u = float(res.x) if -res.fun >= values[i] else float(grid[i])
    return float(np.exp(u))


def logme(features: np.ndarray, labels: np.ndarray, *,
          svd: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """LogME (You et al., ICML 2021): the log maximum evidence of a Bayesian linear model.

    For each class c, the one-hot target ``y_c`` is modelled as ``y = F w + ε`` with prior
    ``w ~ N(0, α⁻¹ I_d)`` and noise ``ε ~ N(0, β⁻¹ I_n)``. With ``F = U diag(s) Vᵀ`` (rank k),
    ``σ = s²``, ``z = Uᵀ y`` and ``t = α / β``::

        m² = Σ σ z² / (σ + t)²,   r² = Σ z² t² / (σ + t)² + (‖y‖² − ‖z‖²)

    For fixed t the best β is ``n / (r² + t m²)`` (α = tβ); the best t is found by a global
    search over the 1-D profile evidence (:func:`_profile_max`) — not by the authors' fixed-point
    iteration (You et al., JMLR 2022), whose stationary points are the same but which can stop
    at one that is not the maximum when n ≤ d. The maximum log evidence per sample is::

        L = [ d/2 log α + n/2 log β − ½ Σᵢ₌₁ᵈ log(α + β σᵢ) − β/2 r² − α/2 m² − n/2 log 2π ] / n

    where σᵢ = 0 for i > k (so the sum includes ``(d − k) log α`` when d > n). LogME is the
    mean of L over classes; higher is better. When n ≤ d a class can be interpolated exactly and
    its maximum may lie at t → 0, and for uninformative features at t → ∞; L has finite limits
    there, taken at ``t = 1e-10 · min σ`` or ``1e10 · max σ`` (L within ~1e-10 of the limit).

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,) of int class codes
    svd : optional ``(U, s)`` of ``np.linalg.svd(features, full_matrices=False)`` (float64), when
        another signal has computed it already (:mod:`proximity.signals.shared`)

    Differences from the reference code (thuml/LogME, ``_fit_fixed_point``), measured in the
    tests: besides the solver above, it stops after 11 iterations or at ``|Δt|/t ≤ 1e-3`` and adds 1e-5 to m² and r²
    (equal to 1e-6 relative when n > d and it converges); and it sums ``log(α + βσ)`` over the
    k = min(n, d) non-zero σ only, which for d > n omits ``(d − k)/2 · log α`` — the ICML
    variant of the same code includes it, as here.
    """
    f = np.asarray(features, np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or y.shape != (f.shape[0],):
        raise InvalidParameterError("features/labels", "logme", "shapes (n, d) and (n,)", (f.shape, y.shape))
    n, d = f.shape
    u, s = svd if svd is not None else np.linalg.svd(f, full_matrices=False)[:2]
    keep = rank_mask(s, f.shape)
    u, sigma = u[:, keep], s[keep] ** 2
    k = sigma.size
    out = []
    if k == 0:
        raise NumericalError("LogME: the features are all zero", 0.0)
    t_floor, t_ceil = 1e-10 * float(sigma.min()), 1e10 * float(sigma.max())

    def stats(t: float, z2: np.ndarray, rest: float) -> tuple[float, float]:
        m2 = float((sigma * z2 / (sigma + t) ** 2).sum())
        r2 = float((z2 * t * t / (sigma + t) ** 2).sum()) + rest
        if m2 <= 0 or r2 <= 0:
            raise NumericalError("LogME: a degenerate class target (no variance to explain)", (m2, r2))
        return m2, r2

    for c in np.unique(y):
        yc = (y == c).astype(np.float64)
        z = u.T @ yc
        z2, rest = z * z, float(yc @ yc - z @ z)
        rest = 0.0 if k == n or rest < 1e-10 * float(yc @ yc) else rest  # in the span up to round-off
        t = _profile_max(sigma, z2, rest, n, t_floor, t_ceil)
        m2, r2 = stats(t, z2, rest)
        beta = n / (r2 + t * m2)
        alpha = t * beta
        evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
                    - 0.5 * (np.log(alpha + beta * sigma).sum() + (d - k) * np.log(alpha))
                    - beta / 2.0 * r2 - alpha / 2.0 * m2 - n / 2.0 * np.log(2 * np.pi))
        out.append(evidence / n)
    value = float(np.mean(out))
    if not np.isfinite(value):
        raise NumericalError("LogME is not finite", value)
    return value
