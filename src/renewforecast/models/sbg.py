"""Shifted-beta-geometric (sBG) model of contractual retention.

Fader & Hardie (2007) model a customer who renews once per period with a
constant churn probability ``theta``; across customers ``theta`` follows a
Beta(alpha, beta) distribution. The mixture explains why aggregate retention
rises with tenure: the churn-prone customers leave first. This module fits
``alpha`` and ``beta`` by maximum likelihood from cohort survival counts and
computes the customer-value quantities of Fader & Hardie (2010): the
discounted expected lifetime (DEL) and the discounted expected residual
lifetime (DERL).

References
----------
.. [1] Fader, P. S. & Hardie, B. G. S. (2007). How to project customer
   retention. Journal of Interactive Marketing, 21(1), 76-90.
.. [2] Fader, P. S. & Hardie, B. G. S. (2010). Customer-base valuation in a
   contractual setting: the perils of ignoring heterogeneity. Marketing
   Science, 29(1), 85-93.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

__all__ = ["ShiftedBetaGeometric"]

# Search box for log(alpha) and log(beta). Data with no heterogeneity (constant
# churn) push both parameters to infinity; the box turns that into a finite fit
# at the edge plus a warning instead of an overflow.
_LOG_BOUND = math.log(1e6)
_Z95 = 1.959963984540054
# alpha + beta above this means a polarisation 1/(alpha+beta+1) below 1e-4:
# treated as the constant-churn limit rather than a finite estimate.
_HOMOGENEOUS = 1e4

_PARAM_KEYS = (
    "alpha",
    "beta",
    "loglik",
    "n_periods",
    "n_customers",
    "n_cohorts",
    "converged",
    "n_iter",
    "cov_alpha_alpha",
    "cov_alpha_beta",
    "cov_beta_beta",
    "max_iter",
    "tol",
)


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------


def _as_counts(values: Any, label: str) -> np.ndarray:
    try:
        counts = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label}: alive counts must be numbers ({exc})") from None
    if counts.ndim != 1:
        raise ValueError(f"{label}: alive counts must be a flat sequence, got shape {counts.shape}")
    if counts.size < 2:
        raise ValueError(
            f"{label}: need at least 2 points (the cohort size at period 0 and the "
            f"number alive after period 1), got {counts.size}"
        )
    if not np.all(np.isfinite(counts)):
        raise ValueError(f"{label}: alive counts contain NaN or infinite values")
    if np.any(counts < 0):
        bad = int(np.flatnonzero(counts < 0)[0])
        raise ValueError(f"{label}: alive counts must be non-negative; period {bad} has {counts[bad]:g}")
    if counts[0] <= 0:
        raise ValueError(f"{label}: the cohort size (element 0) must be positive")
    rises = np.flatnonzero(np.diff(counts) > 0)
    if rises.size:
        t = int(rises[0]) + 1
        raise ValueError(
            f"{label}: alive counts must not increase over time, but period {t} has "
            f"{counts[t]:g} alive after {counts[t - 1]:g} in period {t - 1}; customers "
            f"who return are new acquisitions, not survivors"
        )
    return counts


def _cohorts_from_long(frame: pd.DataFrame) -> list[np.ndarray]:
    missing = {"cohort", "period", "alive"} - set(frame.columns)
    if missing:
        raise ValueError(
            "a cohort DataFrame needs the columns 'cohort', 'period' and 'alive' "
            f"(long format, one row per cohort and period); missing {sorted(missing)}"
        )
    if frame.empty:
        raise ValueError("the cohort DataFrame is empty")
    period = pd.to_numeric(frame["period"], errors="coerce")
    if period.isna().any() or (period % 1 != 0).any() or (period < 0).any():
        raise ValueError("column 'period' must hold non-negative whole numbers")
    cohorts = []
    for label, group in frame.assign(period=period.astype(int)).groupby("cohort", sort=True):
        periods = group["period"].to_numpy()
        if len(set(periods)) != len(periods):
            raise ValueError(f"cohort {label!r}: period listed more than once")
        order = np.argsort(periods)
        periods = periods[order]
        if not np.array_equal(periods, np.arange(len(periods))):
            raise ValueError(
                f"cohort {label!r}: periods must run 0, 1, 2, ... without gaps "
                f"(period 0 holds the cohort size); got {periods.tolist()}"
            )
        alive = group["alive"].to_numpy()[order]
        if len(alive) == 1:
            # Acquired but not yet observed through a renewal: nothing to learn.
            cohorts.append(_as_single_point(alive, f"cohort {label!r}"))
        else:
            cohorts.append(_as_counts(alive, f"cohort {label!r}"))
    return cohorts


def _as_single_point(values: Any, label: str) -> np.ndarray:
    counts = np.asarray(values, dtype=float).ravel()
    if not (np.isfinite(counts[0]) and counts[0] > 0):
        raise ValueError(f"{label}: the cohort size (element 0) must be positive")
    return counts


def _parse_cohorts(data: Any) -> list[np.ndarray]:
    """Turn any accepted input into a list of 1-D alive-count arrays."""
    if isinstance(data, pd.DataFrame):
        return _cohorts_from_long(data)
    if isinstance(data, (str, bytes, Mapping)) or not hasattr(data, "__len__"):
        raise ValueError(
            "expected alive counts (a sequence starting with the cohort size), a list "
            "of such sequences, or a DataFrame with columns cohort, period, alive; "
            f"got {type(data).__name__}"
        )
    if isinstance(data, np.ndarray) and data.ndim == 2:
        data = list(data)
    if len(data) == 0:
        raise ValueError("no data: the alive-count sequence is empty")
    nested = [np.ndim(item) > 0 for item in data]
    if not any(nested):
        return [_as_counts(data, "alive_counts")]
    if not all(nested):
        raise ValueError(
            "mixed input: give either one cohort (a flat sequence of counts) or a list "
            "of cohorts (a list of sequences), not a mix of numbers and sequences"
        )
    cohorts = []
    for i, item in enumerate(data):
        if np.size(item) == 1:
            # A cohort seen only at acquisition carries no likelihood information;
            # accept it so a triangular cohort table can be passed as-is.
            cohorts.append(_as_single_point(item, f"cohort {i}"))
        else:
            cohorts.append(_as_counts(item, f"cohort {i}"))
    return cohorts


def _sufficient_stats(cohorts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Churners and right-censored survivors per period, pooled over cohorts.

    Cohorts share (alpha, beta), so the likelihood only needs, for each tenure t,
    how many customers churned in period t and how many were still alive when
    their cohort's observation ended at t.
    """
    n_periods = max(len(c) for c in cohorts) - 1
    lost = np.zeros(n_periods)
    censored = np.zeros(n_periods)
    for counts in cohorts:
        horizon = len(counts) - 1
        if horizon == 0:
            continue
        lost[:horizon] += counts[:-1] - counts[1:]
        censored[horizon - 1] += counts[-1]
    return lost, censored, n_periods


# --------------------------------------------------------------------------
# likelihood
# --------------------------------------------------------------------------


def _loglik_parts(alpha: float, beta: float, lost: np.ndarray, censored: np.ndarray, want_hessian: bool = False):
    """Log-likelihood (FH 2007 eq. B3), its gradient and Hessian in (alpha, beta).

    Uses S(t) = prod_{j<=t} (beta+j-1)/(alpha+beta+j-1) and
    P(T=t) = S(t-1) * alpha/(alpha+beta+t-1) rather than differences of
    log-beta functions, because those cancel catastrophically when alpha and
    beta are large (the near-homogeneous case).
    """
    n = lost.size
    j = np.arange(n, dtype=float)  # j = t - 1 for t = 1..n
    total = alpha + beta + j
    # log S(t) for t = 1..n and log S(t-1) for t = 1..n
    log_s = np.cumsum(np.log(beta + j) - np.log(total))
    log_s_prev = np.concatenate(([0.0], log_s[:-1]))
    log_p = log_s_prev + math.log(alpha) - np.log(total)
    ll = float(np.dot(lost, log_p) + np.dot(censored, log_s))

    inv_total = 1.0 / total
    inv_beta = 1.0 / (beta + j)
    ds_da = -np.cumsum(inv_total)
    ds_db = np.cumsum(inv_beta - inv_total)
    ds_da_prev = np.concatenate(([0.0], ds_da[:-1]))
    ds_db_prev = np.concatenate(([0.0], ds_db[:-1]))
    dp_da = ds_da_prev + 1.0 / alpha - inv_total
    dp_db = ds_db_prev - inv_total
    grad = np.array([lost @ dp_da + censored @ ds_da, lost @ dp_db + censored @ ds_db])
    if not want_hessian:
        return ll, grad

    inv_total2 = inv_total**2
    d2s_aa = np.cumsum(inv_total2)
    d2s_bb = np.cumsum(inv_total2 - inv_beta**2)
    d2s_ab = d2s_aa
    prev = lambda x: np.concatenate(([0.0], x[:-1]))  # noqa: E731
    d2p_aa = prev(d2s_aa) - 1.0 / alpha**2 + inv_total2
    d2p_bb = prev(d2s_bb) + inv_total2
    d2p_ab = prev(d2s_ab) + inv_total2
    h_aa = lost @ d2p_aa + censored @ d2s_aa
    h_bb = lost @ d2p_bb + censored @ d2s_bb
    h_ab = lost @ d2p_ab + censored @ d2s_ab
    return ll, grad, np.array([[h_aa, h_ab], [h_ab, h_bb]])


def _newton_polish(
    alpha: float, beta: float, lost: np.ndarray, censored: np.ndarray, max_steps: int = 20
) -> tuple[float, float]:
    """Finish the optimisation with Newton steps on the exact Hessian.

    The likelihood has a long curved ridge (alpha and beta are strongly
    correlated), where a quasi-Newton method meeting its gradient tolerance can
    still be ~1e-6 off in beta. Two or three Newton steps from there reach
    rounding level, so the fourth decimal never depends on optimiser settings.
    """
    x = np.array([alpha, beta])
    ll, grad, hess = _loglik_parts(alpha, beta, lost, censored, want_hessian=True)
    for _ in range(max_steps):
        try:
            step = np.linalg.solve(-hess, grad)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or grad @ step <= 0:
            break  # not an ascent direction: not in the concave region
        scale = 1.0
        while scale > 1e-4:
            cand = x + scale * step
            if np.all(cand > 0):
                cand_ll, cand_grad, cand_hess = _loglik_parts(cand[0], cand[1], lost, censored, want_hessian=True)
                if cand_ll >= ll - 1e-12 * abs(ll):
                    break
            scale /= 2
        else:
            break
        done = np.all(np.abs(cand - x) <= 1e-13 * np.abs(x))
        x, ll, grad, hess = cand, cand_ll, cand_grad, cand_hess
        if done:
            break
    return float(x[0]), float(x[1])


# --------------------------------------------------------------------------
# 2F1(1, b; c; z) for DEL / DERL
# --------------------------------------------------------------------------


def _hyp2f1_one(b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Gauss series of 2F1(1, b; c; z) for 0 < b < c and 0 <= z < 1.

    scipy.special.hyp2f1 is the obvious tool, but (scipy 1.17) it returns wrong
    values when c - b (= alpha) is at or near an integer (negative results for
    alpha = 1, z close to 1; relative errors up to 1e-5 for alpha = 10) and NaN
    for large b (beta in the thousands). The series is the definition of the
    function and has positive terms with ratio (b+k)/(c+k)*z <= z, so summing
    it is stable, and t_K / (1 - z) bounds the remainder after K terms.
    """
    b, c, z = (np.ravel(x).astype(float) for x in np.broadcast_arrays(b, c, z))
    out = np.zeros(b.shape)
    first = np.ones(b.shape)  # term k0 of the current chunk
    active = np.ones(b.shape, dtype=bool)
    k0 = 0
    # Terms fall at least as fast as z**k, so about 37 / -log(z) terms reach 1e-16.
    chunk = int(min(max(1024, 40.0 / max(-math.log(float(z.max())), 1e-12)), 1 << 18))
    while active.any():
        idx = np.flatnonzero(active)
        k = k0 + np.arange(chunk, dtype=float)
        ratios = (b[idx, None] + k) / (c[idx, None] + k) * z[idx, None]
        cum = np.cumprod(ratios, axis=1)
        out[idx] += first[idx] * (1.0 + cum[:, :-1].sum(axis=1))
        first[idx] = first[idx] * cum[:, -1]
        remainder_bound = first[idx] / (1.0 - z[idx])
        active[idx] = remainder_bound > 1e-16 * out[idx]
        k0 += chunk
    return out


# --------------------------------------------------------------------------
# argument checks for the prediction methods
# --------------------------------------------------------------------------


def _periods(t: Any, name: str, minimum: int) -> np.ndarray:
    arr = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr % 1 != 0):
        raise ValueError(f"{name} must hold whole numbers of periods, got {t!r}")
    if np.any(arr < minimum):
        raise ValueError(f"{name} must be >= {minimum}, got {t!r}")
    return arr


def _discount(d: Any) -> np.ndarray:
    arr = np.asarray(d, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"discount_rate must be a finite rate >= 0 per period (0.10 for 10%), got {d!r}")
    if np.any((arr > 0) & (arr < 1e-6)):
        # Below this the series needs tens of millions of terms and the answer is
        # within rounding of the undiscounted value anyway.
        raise ValueError(f"discount_rate {d!r} is positive but below 1e-6 per period; use 0 for an undiscounted value")
    return arr


def _shape_like(values: np.ndarray, *inputs: Any) -> float | np.ndarray:
    if all(np.ndim(x) == 0 for x in inputs):
        return float(np.asarray(values).reshape(-1)[0])
    return values


# --------------------------------------------------------------------------
# estimator
# --------------------------------------------------------------------------


class ShiftedBetaGeometric(BaseEstimator):
    """Shifted-beta-geometric model of contractual retention (Fader & Hardie 2007).

    Each customer churns at the end of any period with a fixed probability
    ``theta``; ``theta`` varies across customers as Beta(alpha, beta). Fitted by
    maximum likelihood from cohort survival counts.

    Parameters
    ----------
    max_iter : int, default=1000
        Maximum number of L-BFGS-B iterations.
    tol : float, default=1e-10
        Convergence tolerance: the largest absolute gradient of the average
        per-customer log-likelihood with respect to ``log(alpha)`` and
        ``log(beta)``.

    Attributes
    ----------
    alpha_ : float
        Fitted first shape parameter of the churn-probability distribution.
    beta_ : float
        Fitted second shape parameter.
    loglik_ : float
        Log-likelihood at the estimate (FH 2007 eq. B3, on counts).
    n_periods_ : int
        Longest observation window among the cohorts, in periods.
    n_customers_ : float
        Customers whose data entered the likelihood (sum of cohort sizes of the
        cohorts observed for at least one period).
    n_cohorts_ : int
        Cohorts observed for at least one period.
    converged_ : bool
        Whether a finite interior maximum was found to within ``tol``. False
        (with a warning) when the data show no heterogeneity and the
        likelihood only grows as alpha, beta -> infinity.
    n_iter_ : int
        Optimiser iterations used.
    covariance_ : ndarray of shape (2, 2)
        Inverse observed information for (alpha, beta); NaN when no finite
        interior estimate was found.

    Notes
    -----
    ``S(t) = B(alpha, beta + t) / B(alpha, beta)``,
    ``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)`` and the retention
    rate ``r(t) = (beta + t - 1) / (alpha + beta + t - 1)`` rises with ``t``.

    Cash-flow convention for DEL and DERL: one unit per period alive, paid at the
    start of the period; the acquisition payment at period 0 counts in full.

    References
    ----------
    .. [1] Fader & Hardie (2007), How to project customer retention, JIM 21(1).
    .. [2] Fader & Hardie (2010), Customer-base valuation in a contractual
       setting, Marketing Science 29(1).

    Examples
    --------
    >>> from renewforecast.models.sbg import ShiftedBetaGeometric
    >>> alive = [1000, 869, 743, 653, 593, 551, 517, 491]  # FH 2007 "High End"
    >>> model = ShiftedBetaGeometric().fit(alive)
    >>> round(model.alpha_, 4), round(model.beta_, 4)
    (0.6681, 3.8061)
    >>> (100 * model.survival([8, 9, 10])).round(1).tolist()
    [46.0, 43.6, 41.4]
    """

    def __init__(self, *, max_iter: int = 1000, tol: float = 1e-10):
        self.max_iter = max_iter
        self.tol = tol

    # ------------------------------------------------------------------ fit
    def _check_hyperparameters(self) -> None:
        max_iter = self.max_iter
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        if (
            isinstance(self.tol, bool)
            or not isinstance(self.tol, numbers.Real)
            or not self.tol > 0
            or not math.isfinite(self.tol)
        ):
            raise ValueError(f"tol must be a positive number, got {self.tol!r}")

    def fit(self, data: Any) -> ShiftedBetaGeometric:
        """Estimate alpha and beta by maximum likelihood.

        Parameters
        ----------
        data : sequence of float, list of sequences, or DataFrame
            One cohort: ``[n_0, n_1, ..., n_T]`` where ``n_0`` is the cohort
            size and ``n_t`` the number still alive after ``t`` periods.

            Several cohorts: a list of such sequences, each as long as that
            cohort has been observed (a cohort acquired ``k`` periods ago has
            ``k + 1`` entries; a just-acquired cohort ``[n_0]`` is accepted and
            ignored), or a long DataFrame with columns ``cohort``, ``period``
            (0, 1, 2, ... without gaps) and ``alive``.

            Counts need not be integers (percentages of a notional cohort
            work); the estimate is unchanged by rescaling, the log-likelihood
            is not.

        Returns
        -------
        self : ShiftedBetaGeometric
            The fitted model.

        Raises
        ------
        ValueError
            Counts that are negative, not finite, increase over time, fewer than
            two points, a zero cohort size, no churn at all, or no cohort
            observed for at least two periods.

        Warns
        -----
        sklearn.exceptions.ConvergenceWarning
            When the optimiser stops early, or no finite estimate exists: data
            with no sign of heterogeneity (retention not rising with tenure)
            make alpha and beta drift to infinity, and the fit is then a
            constant-churn model with ``p = alpha / (alpha + beta)``.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> cohorts = [[10000, 8000, 6480, 5307, 4391], [10000, 8000, 6480, 5307],
        ...            [10000, 8000, 6480], [10000, 8000], [10000]]
        >>> m = ShiftedBetaGeometric().fit(cohorts)
        >>> round(m.alpha_, 2), round(m.beta_, 2)
        (3.8, 15.19)
        """
        self._check_hyperparameters()
        cohorts = _parse_cohorts(data)
        lost, censored, n_periods = _sufficient_stats(cohorts)
        observed = [c for c in cohorts if len(c) > 1]
        if not observed or n_periods < 2:
            raise ValueError(
                "need at least one cohort observed for 2 or more periods: with a "
                "single period only the mean churn rate alpha/(alpha+beta) is "
                "identified, not its spread"
            )
        if lost.sum() <= 0:
            raise ValueError(
                "no customer churned in the data, so the churn distribution cannot "
                "be estimated (the likelihood grows without bound as alpha -> 0)"
            )
        n_customers = float(sum(c[0] for c in observed))

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            a, b = np.exp(x)
            ll, grad = _loglik_parts(a, b, lost, censored)
            # Per-customer scale keeps tol meaningful whatever the cohort sizes;
            # the chain rule moves the gradient to log-parameters.
            return -ll / n_customers, -grad * np.array([a, b]) / n_customers

        # Deterministic start: a uniform prior on theta.
        result = optimize.minimize(
            objective,
            x0=np.zeros(2),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 2,
            options={"maxiter": int(self.max_iter), "gtol": float(self.tol), "ftol": 0.0, "maxcor": 20},
        )
        alpha, beta = (float(v) for v in np.exp(result.x))
        at_edge = bool(np.any(np.abs(result.x) >= _LOG_BOUND - 1e-6))
        # When retention does not rise with tenure the likelihood keeps growing
        # along alpha, beta -> infinity at fixed alpha/(alpha+beta): no finite MLE
        # exists and the point where the optimiser stops is arbitrary (only the
        # polarisation 1/(alpha+beta+1) ~ 0 is meaningful).
        homogeneous = alpha + beta > _HOMOGENEOUS
        if not (at_edge or homogeneous):
            polished = _newton_polish(alpha, beta, lost, censored)
            if sum(polished) <= _HOMOGENEOUS and np.all(np.abs(np.log(polished)) < _LOG_BOUND):
                alpha, beta = polished
        grad_norm = float(np.max(np.abs(objective(np.log([alpha, beta]))[1])))
        # L-BFGS-B can stop on a line-search failure with the gradient already at
        # rounding level; judge convergence by the gradient itself.
        converged = not at_edge and not homogeneous and grad_norm <= max(float(self.tol), 1e-8)
        ll, _, hess = _loglik_parts(alpha, beta, lost, censored, want_hessian=True)

        covariance = np.full((2, 2), np.nan)
        if not (at_edge or homogeneous):
            info = -hess
            if np.all(np.isfinite(info)) and np.all(np.linalg.eigvalsh(info) > 0):
                covariance = np.linalg.inv(info)

        if homogeneous:
            warnings.warn(
                "the data show no sign of heterogeneity (retention does not rise with "
                "tenure): alpha + beta drifts to infinity (stopped at "
                f"alpha={alpha:.4g}, beta={beta:.4g}), so the fit is a constant-churn "
                f"model with p={alpha / (alpha + beta):.4g}; alpha and beta are not "
                "identified",
                ConvergenceWarning,
                stacklevel=2,
            )
        elif at_edge:
            warnings.warn(
                "the sBG estimate reached the edge of the search box "
                f"(alpha={alpha:.4g}, beta={beta:.4g}); the data do not support a "
                "finite maximum-likelihood estimate",
                ConvergenceWarning,
                stacklevel=2,
            )
        elif not converged:
            warnings.warn(
                f"the sBG fit did not converge after {result.nit} iterations "
                f"(largest gradient {grad_norm:.3g} > tol={self.tol}); "
                f"optimiser said: {result.message}",
                ConvergenceWarning,
                stacklevel=2,
            )

        self.alpha_ = alpha
        self.beta_ = beta
        self.loglik_ = ll
        self.n_periods_ = int(n_periods)
        self.n_customers_ = n_customers
        self.n_cohorts_ = len(observed)
        self.converged_ = bool(converged)
        self.n_iter_ = int(result.nit)
        self.covariance_ = covariance
        return self

    # ------------------------------------------------------------ predictions
    def survival(self, t: Any) -> float | np.ndarray:
        """Probability a new customer is still active after ``t`` periods.

        Parameters
        ----------
        t : int or array-like of int
            Periods since acquisition, ``t >= 0``.

        Returns
        -------
        float or ndarray
            ``S(t) = B(alpha, beta + t) / B(alpha, beta)``; ``S(0) = 1``.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric.from_params({"alpha": 1.0, "beta": 1.0})
        >>> m.survival([0, 1, 3]).round(12).tolist()  # 1/(t + 1) when alpha = beta = 1
        [1.0, 0.5, 0.25]
        """
        check_is_fitted(self)
        tt = _periods(t, "t", 0)
        log_s = special.betaln(self.alpha_, self.beta_ + tt) - special.betaln(self.alpha_, self.beta_)
        out = np.where(tt == 0, 1.0, np.exp(log_s))
        return _shape_like(out, t)

    def retention(self, t: Any) -> float | np.ndarray:
        """Retention rate in period ``t``: ``r(t) = S(t) / S(t - 1)``.

        Parameters
        ----------
        t : int or array-like of int
            Period, ``t >= 1`` (``r(1)`` is the first renewal rate).

        Returns
        -------
        float or ndarray
            ``(beta + t - 1) / (alpha + beta + t - 1)``, increasing in ``t``.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric.from_params({"alpha": 1.0, "beta": 3.0})
        >>> m.retention([1, 2]).tolist()
        [0.75, 0.8]
        """
        check_is_fitted(self)
        tt = _periods(t, "t", 1)
        out = (self.beta_ + tt - 1) / (self.alpha_ + self.beta_ + tt - 1)
        return _shape_like(np.asarray(out, dtype=float), t)

    def churn_probability(self, t: Any) -> float | np.ndarray:
        """Probability a new customer churns in period ``t``: ``P(T = t)``.

        Parameters
        ----------
        t : int or array-like of int
            Period, ``t >= 1``.

        Returns
        -------
        float or ndarray
            ``B(alpha + 1, beta + t - 1) / B(alpha, beta) = S(t - 1) - S(t)``.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric.from_params({"alpha": 1.0, "beta": 1.0})
        >>> m.churn_probability([1, 2]).round(6).tolist()  # 1 / (t (t + 1))
        [0.5, 0.166667]
        """
        check_is_fitted(self)
        tt = _periods(t, "t", 1)
        log_p = special.betaln(self.alpha_ + 1, self.beta_ + tt - 1) - special.betaln(self.alpha_, self.beta_)
        return _shape_like(np.exp(log_p), t)

    def expected_lifetime(self) -> float:
        """Expected number of periods a new customer stays (undiscounted).

        Returns
        -------
        float
            ``E[T] = (alpha + beta - 1) / (alpha - 1)`` when ``alpha > 1``, else
            ``inf`` (the mean of ``1/theta`` diverges). Equals
            ``discounted_expected_lifetime(0)``: the acquisition period counts.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric.from_params({"alpha": 3.0, "beta": 4.0})
        >>> m.expected_lifetime()
        3.0
        """
        check_is_fitted(self)
        if self.alpha_ <= 1:
            return math.inf
        return (self.alpha_ + self.beta_ - 1) / (self.alpha_ - 1)

    def discounted_expected_lifetime(self, discount_rate: Any) -> float | np.ndarray:
        """Discounted expected lifetime (DEL) of a just-acquired customer.

        Parameters
        ----------
        discount_rate : float or array-like
            Discount rate per period ``d >= 0`` (0.10 for 10%).

        Returns
        -------
        float or ndarray
            ``sum_{t>=0} S(t) / (1+d)^t = 2F1(1, beta; alpha+beta; 1/(1+d))``:
            the present value of one unit paid at the start of every period
            alive, the period-0 payment included. Multiply by the per-period
            margin for a customer value. ``d = 0`` gives ``expected_lifetime()``.

        Notes
        -----
        In the constant-churn limit (``theta = p`` for everyone) this is
        ``(1 + d) / (d + p)``.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric.from_params({"alpha": 0.6681, "beta": 3.8061})
        >>> round(m.discounted_expected_lifetime(0.10), 4)
        5.9222
        """
        check_is_fitted(self)
        d = _discount(discount_rate)
        out = self._residual(d, np.zeros_like(d), shift=0)
        return _shape_like(out, discount_rate)

    def discounted_expected_residual_lifetime(self, discount_rate: Any, renewals: Any) -> float | np.ndarray:
        """Discounted expected residual lifetime (DERL) of an active customer.

        Parameters
        ----------
        discount_rate : float or array-like
            Discount rate per period ``d >= 0``.
        renewals : int or array-like of int
            Renewals the customer has made so far (0 for a customer in the first
            period). Fader & Hardie (2010) write this as ``n - 1``.

        Returns
        -------
        float or ndarray
            Value just before the next renewal decision, with that renewal's
            payment undiscounted:
            ``sum_{t>=n} S(t)/S(n-1) / (1+d)^(t-n)
            = (beta+n-1)/(alpha+beta+n-1) * 2F1(1, beta+n; alpha+beta+n; 1/(1+d))``
            with ``n = renewals + 1`` (FH 2010 eq. 6). Broadcasts over both
            arguments.

        Notes
        -----
        ``DERL(d, 0) = (1 + d) * (DEL(d) - 1)``. With ``d = 0`` the value is
        ``(beta + n - 1) / (alpha - 1)`` for ``alpha > 1`` and ``inf`` otherwise.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric.from_params({"alpha": 0.6681, "beta": 3.8061})
        >>> round(m.discounted_expected_residual_lifetime(0.10, renewals=7), 4)
        7.5296
        """
        check_is_fitted(self)
        d = _discount(discount_rate)
        k = _periods(renewals, "renewals", 0)
        d, k = np.broadcast_arrays(d, k)
        out = self._residual(d, k, shift=1)
        return _shape_like(out, discount_rate, renewals)

    def _residual(self, d: np.ndarray, k: np.ndarray, shift: int) -> np.ndarray:
        """Shared body of DEL (shift 0, k = 0) and DERL (shift 1, n = k + 1).

        DEL = 2F1(1, beta; alpha+beta; z) and
        DERL = r(n) * 2F1(1, beta+n; alpha+beta+n; z), z = 1/(1+d).
        """
        a, b = self.alpha_, self.beta_
        d = np.asarray(d, dtype=float)
        k = np.asarray(k, dtype=float)
        shape = np.broadcast(d, k).shape
        d, k = (np.ravel(x) for x in np.broadcast_arrays(d, k))
        out = np.empty(d.shape)
        bb = b + k + shift
        factor = (b + k) / (a + b + k) if shift else np.ones_like(k)

        zero = d == 0
        if zero.any():
            # z = 1: Gauss's sum 2F1(1, b; c; 1) = (c - 1) / (c - b - 1), finite
            # only when alpha > 1 (E[1/theta] diverges otherwise).
            if a > 1:
                out[zero] = factor[zero] * (a + bb[zero] - 1) / (a - 1)
            else:
                out[zero] = math.inf
        pos = ~zero
        if pos.any():
            # Evaluate each distinct (d, k) pair once: DERL over a customer base
            # repeats the same few renewal counts many times.
            pairs = np.stack([d[pos], bb[pos]], axis=1)
            uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
            z = 1.0 / (1.0 + uniq[:, 0])
            vals = _hyp2f1_one(uniq[:, 1], a + uniq[:, 1], z)
            out[pos] = factor[pos] * vals[np.ravel(inverse)]
        return out.reshape(shape)

    # --------------------------------------------------------------- reporting
    @property
    def summary(self) -> pd.DataFrame:
        """Parameter estimates with standard errors and 95% intervals.

        Standard errors come from the inverse observed information; the interval
        is a Wald interval on the log scale, so it stays positive.

        Returns
        -------
        DataFrame
            Index ``alpha``, ``beta``, ``mean_churn`` (``alpha/(alpha+beta)``,
            the expected first-period churn); columns ``estimate``,
            ``std_error``, ``ci_lower_95``, ``ci_upper_95``.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric().fit([1000, 631, 468, 382, 326, 289, 262, 241])
        >>> round(float(m.summary.loc["alpha", "estimate"]), 4)
        0.7041
        """
        check_is_fitted(self)
        a, b = self.alpha_, self.beta_
        cov = np.asarray(self.covariance_, dtype=float)
        mean = a / (a + b)
        # Delta method for alpha/(alpha+beta): gradient (b, -a)/(a+b)^2.
        g = np.array([b, -a]) / (a + b) ** 2
        var_mean = float(g @ cov @ g)
        est = np.array([a, b, mean])
        se = np.sqrt(np.array([cov[0, 0], cov[1, 1], var_mean]))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            lower = est * np.exp(-_Z95 * se / est)
            upper = est * np.exp(_Z95 * se / est)
        # The mean churn lives in (0, 1): a logit-scale interval respects that.
        with np.errstate(invalid="ignore", divide="ignore"):
            logit_se = se[2] / (mean * (1 - mean))
            lo_logit = math.log(mean / (1 - mean)) - _Z95 * logit_se
            hi_logit = math.log(mean / (1 - mean)) + _Z95 * logit_se
        lower[2] = special.expit(lo_logit)
        upper[2] = special.expit(hi_logit)
        return pd.DataFrame(
            {"estimate": est, "std_error": se, "ci_lower_95": lower, "ci_upper_95": upper},
            index=pd.Index(["alpha", "beta", "mean_churn"], name="parameter"),
        )

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        base = super().__repr__(N_CHAR_MAX)
        if not hasattr(self, "alpha_"):
            return base
        parts = [f"alpha={self.alpha_:.4f}", f"beta={self.beta_:.4f}"]
        if math.isfinite(self.loglik_):
            parts.append(f"loglik={self.loglik_:.2f}")
        if self.n_cohorts_:
            parts += [
                f"n_periods={self.n_periods_}",
                f"n_customers={self.n_customers_:g}",
                f"n_cohorts={self.n_cohorts_}",
            ]
        return f"{base} fitted: " + ", ".join(parts)

    # ---------------------------------------------------------- persistence
    def to_params(self) -> dict[str, Any]:
        """Fitted state as a plain JSON-ready dict (for the model registry).

        Returns
        -------
        dict
            ``alpha``, ``beta``, ``loglik``, ``n_customers`` and the covariance
            entries ``cov_alpha_alpha``, ``cov_alpha_beta``, ``cov_beta_beta`` as
            float (``None`` when unavailable); ``n_periods``, ``n_cohorts``,
            ``n_iter``, ``max_iter`` as int; ``converged`` as bool; ``tol`` as
            float. ``from_params`` restores an identical model.

        Examples
        --------
        >>> import json
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric().fit([1000, 869, 743, 653, 593, 551, 517, 491])
        >>> m2 = ShiftedBetaGeometric.from_params(json.loads(json.dumps(m.to_params())))
        >>> m2.survival(12) == m.survival(12)
        True
        """
        check_is_fitted(self)

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        cov = np.asarray(self.covariance_, dtype=float)
        return {
            "alpha": float(self.alpha_),
            "beta": float(self.beta_),
            "loglik": num(self.loglik_),
            "n_periods": int(self.n_periods_),
            "n_customers": float(self.n_customers_),
            "n_cohorts": int(self.n_cohorts_),
            "converged": bool(self.converged_),
            "n_iter": int(self.n_iter_),
            "cov_alpha_alpha": num(cov[0, 0]),
            "cov_alpha_beta": num(cov[0, 1]),
            "cov_beta_beta": num(cov[1, 1]),
            "max_iter": int(self.max_iter),
            "tol": float(self.tol),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ShiftedBetaGeometric:
        """Rebuild a fitted model from :meth:`to_params` output.

        Only ``alpha`` and ``beta`` are required, so published parameters can be
        loaded directly; the fit statistics then default to "unknown" (``loglik``
        NaN, counts 0, covariance NaN).

        Parameters
        ----------
        params : mapping
            As returned by :meth:`to_params`.

        Returns
        -------
        ShiftedBetaGeometric
            A fitted instance.

        Raises
        ------
        ValueError
            Missing or non-positive ``alpha``/``beta``, or unknown keys.

        Examples
        --------
        >>> from renewforecast.models.sbg import ShiftedBetaGeometric
        >>> m = ShiftedBetaGeometric.from_params({"alpha": 0.7041, "beta": 1.1820})
        >>> round(m.retention(1), 3)
        0.627
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a mapping, got {type(params).__name__}")
        unknown = set(params) - set(_PARAM_KEYS)
        if unknown:
            raise ValueError(f"unknown sBG parameter keys {sorted(unknown)}; expected a subset of {list(_PARAM_KEYS)}")
        for key in ("alpha", "beta"):
            if key not in params:
                raise ValueError(f"params must contain {key!r}")
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{key} must be a positive finite number, got {value!r}")

        def num(key: str) -> float:
            value = params.get(key)
            return math.nan if value is None else float(value)

        model = cls(max_iter=int(params.get("max_iter", 1000)), tol=float(params.get("tol", 1e-10)))
        model.alpha_ = float(params["alpha"])
        model.beta_ = float(params["beta"])
        model.loglik_ = num("loglik")
        model.n_periods_ = int(params.get("n_periods", 0))
        model.n_customers_ = float(params.get("n_customers", 0.0))
        model.n_cohorts_ = int(params.get("n_cohorts", 0))
        model.converged_ = bool(params.get("converged", True))
        model.n_iter_ = int(params.get("n_iter", 0))
        ab = num("cov_alpha_beta")
        model.covariance_ = np.array([[num("cov_alpha_alpha"), ab], [ab, num("cov_beta_beta")]])
        return model
