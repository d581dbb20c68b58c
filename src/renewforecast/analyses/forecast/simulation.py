"""Monte Carlo outcomes: correlated renewals and deals (a one-factor Gaussian copula) and evergreen survival.

Outcomes are correlated through one common factor per simulation, which
keeps every contract's own probability exact; the factor's strength is
estimated from how much past monthly rates varied beyond what chance alone
explains (:func:`copula_rho`).
"""

from __future__ import annotations

import contextlib

import numpy as np
from scipy import optimize, special, stats

__all__ = ["CHUNK", "copula_rho", "one_blas_thread", "simulate_evergreen", "simulate_revenue"]

CHUNK = 100  # simulations per block at most
_CELLS = 1 << 24  # outcomes (simulations x rows) drawn at once: bounds memory on large books


def one_blas_thread():
    """A context in which BLAS runs on one thread.

    The statistical fits here (statsmodels state space, lifelines) do
    thousands of tiny matrix operations; a second BLAS thread only adds
    hand-offs, and on a busy machine each hand-off can wait for a time slice
    (fits over 100 times slower). Results are the same, up to rounding in the
    last digits of a few sums.

    Examples
    --------
    >>> with one_blas_thread():
    ...     pass
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def copula_rho(rates: np.ndarray, counts: np.ndarray, p: float) -> float:
    """Correlation of a one-factor Gaussian copula matching the rates' excess variance.

    Between periods the observed rate varies by chance (``p(1-p)/n``) and by a
    common shock; the shock's variance is ``Phi2(t, t; rho) - p**2`` with
    ``t = Phi^-1(p)``. Solved for ``rho`` by root finding; 0 when the rates
    vary no more than chance, capped at 0.5.

    Parameters
    ----------
    rates : array
        Observed rate of each period.
    counts : array
        Number of outcomes behind each rate (periods without any are ignored).
    p : float
        The long-run rate.

    Examples
    --------
    >>> import numpy as np
    >>> copula_rho(np.full(12, 0.8), np.full(12, 50.0), 0.8)  # no variation beyond chance
    0.0
    >>> round(copula_rho(np.array([0.6, 0.95] * 6), np.full(12, 50.0), 0.775), 2)
    0.3
    """
    ok = counts > 0
    rates, counts = rates[ok], counts[ok]
    if len(rates) < 6 or not 0 < p < 1:
        return 0.0
    w = counts / counts.sum()
    mean = float(np.sum(w * rates))
    var = float(np.sum(w * (rates - mean) ** 2)) * len(rates) / (len(rates) - 1)
    excess = var - float(np.mean(p * (1 - p) / counts))
    if excess <= 0:
        return 0.0
    t = special.ndtri(p)

    def gap(rho: float) -> float:
        cov = [[1.0, rho], [rho, 1.0]]
        return float(stats.multivariate_normal(mean=[0, 0], cov=cov).cdf([t, t])) - p * p - excess

    if gap(0.5) < 0:
        return 0.5
    return float(optimize.brentq(gap, 0.0, 0.5, xtol=1e-4))


def _chain_levels(chain_start: np.ndarray, order: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rows that continue a chain, by depth: (rows, the row before each in its chain), in ``order`` positions.

    Rows ``chain_start[i] .. i`` are row ``i``'s chain (contiguous). Depth 1
    comes first, so applying the levels in turn carries a failure down the
    whole chain.
    """
    n = len(chain_start)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    depth = np.arange(n) - chain_start
    levels = []
    for d in range(1, int(depth.max()) + 1 if n else 1):
        rows = np.flatnonzero(depth == d)
        if len(rows):
            levels.append((pos[rows], pos[rows - 1]))
    return levels


def simulate_revenue(
    out: np.ndarray,
    probability: np.ndarray,
    rho: float,
    rng: np.random.Generator,
    revenue: np.ndarray,
    codes: np.ndarray,
    chain_start: np.ndarray | None = None,
) -> None:
    """Add each simulation's revenue of the rows that succeed: ``out[s, g, :] += sum of revenue[i]``.

    Row ``i`` (of group ``codes[i]``) succeeds when
    ``sqrt(rho) Z + sqrt(1 - rho) e_i < Phi^-1(probability[i])`` (``Z``
    common to the simulation), so ``P(success) = probability[i]`` exactly.
    With ``chain_start``, a row only counts when every earlier row of its
    chain (rows ``chain_start[i] .. i``) succeeded too.

    Rows are put in group order once, so that each group is one block; the
    outcomes of a block of simulations are drawn as simulations x rows
    (single-precision normals), and each group's revenue is then one matrix
    product.

    Examples
    --------
    >>> import numpy as np
    >>> out = np.zeros((4, 1, 2))
    >>> simulate_revenue(out, np.array([1.0, 0.0]), 0.0, np.random.default_rng(0),
    ...                  np.array([[10.0, 10.0], [5.0, 5.0]]), np.zeros(2, dtype=np.int64))
    >>> out[:, 0, 0].tolist()
    [10.0, 10.0, 10.0, 10.0]
    """
    thresholds = special.ndtri(probability)
    n_sims, n_groups = out.shape[0], out.shape[1]
    n_rows = len(thresholds)
    if n_rows == 0:
        return
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1))
    revenue = np.ascontiguousarray(revenue[order])
    a, b = np.sqrt(rho), np.sqrt(1.0 - rho)
    # a Z + b e < t  <=>  e + (a / b) Z < t / b
    limit = (thresholds[order] / b if b > 0 else thresholds[order]).astype(np.float32)
    levels = _chain_levels(chain_start, order) if chain_start is not None else []
    chunk = int(np.clip(_CELLS // n_rows, 1, CHUNK))
    # Buffers reused by every block (first touches of fresh memory are not free).
    e_buf = np.empty((chunk, n_rows), dtype=np.float32)
    ok_buf = np.empty((chunk, n_rows), dtype=bool)
    w_buf = np.empty((chunk, n_rows), dtype=np.float64)
    for s0 in range(0, n_sims, chunk):
        k = min(chunk, n_sims - s0)
        z = rng.standard_normal(k)
        e, ok, w = e_buf[:k], ok_buf[:k], w_buf[:k]
        rng.standard_normal(dtype=np.float32, out=e)
        if b > 0:
            e += (a / b * z).astype(np.float32)[:, None]
        else:
            e[:] = z.astype(np.float32)[:, None]
        np.less(e, limit[None, :], out=ok)
        for rows, before in levels:
            ok[:, rows] &= ok[:, before]
        np.copyto(w, ok)
        for g in range(n_groups):
            lo, hi = bounds[g], bounds[g + 1]
            if hi > lo:
                out[s0 : s0 + k, g, :] += w[:, lo:hi] @ revenue[lo:hi]


def simulate_evergreen(
    out: np.ndarray, alive: np.ndarray, revenue: np.ndarray, codes: np.ndarray, rng: np.random.Generator
) -> None:
    """Add each simulation's revenue of the evergreen contracts still alive in each month.

    Contract ``i`` is alive through month ``t`` of a simulation when its
    uniform draw (one per contract and simulation) is below ``alive[i, t]``,
    so a contract that ends stays ended.

    Examples
    --------
    >>> import numpy as np
    >>> out = np.zeros((3, 1, 2))
    >>> simulate_evergreen(out, np.array([[1.0, 0.0]]), np.array([[7.0, 7.0]]), np.zeros(1, dtype=np.int64),
    ...                    np.random.default_rng(0))
    >>> out[:, 0, :].tolist()
    [[7.0, 0.0], [7.0, 0.0], [7.0, 0.0]]
    """
    n_sims, n_groups, n_months = out.shape
    if not len(alive):
        return
    for s0 in range(0, n_sims, CHUNK):
        k = min(CHUNK, n_sims - s0)
        u = rng.random((len(alive), k))
        for t in range(n_months):
            ok = u < alive[:, [t]]
            for g in range(n_groups):
                rows = codes == g
                out[s0 : s0 + k, g, t] += ok[rows].T.astype("float64") @ revenue[rows, t]
