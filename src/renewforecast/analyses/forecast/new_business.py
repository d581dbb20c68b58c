"""New business not booked and not in the pipeline yet: a statsmodels model of monthly new-business MRR.

Exponential smoothing with or without a damped trend, or an ARIMA, combined
by holdout error, turned into revenue (a new customer earns half its MRR in
its first month, plus the one-time fees new customers paid per unit of new
MRR over the last two years, in the month won), less what the pipeline's
new-business deals are expected to bring that month.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast.groups import Groups, Horizon, month_no
from renewforecast.analyses.forecast.simulation import one_blas_thread
from renewforecast.book import Book
from renewforecast.dates import last_month_end
from renewforecast.ledger.mrr import mrr_movements
from renewforecast.ledger.valuation import row_amounts

__all__ = ["NewBusinessModel", "new_business_revenue"]

log = logging.getLogger(__name__)

_MAX_LOG_SHIFT = float(np.log(2.0))


@dataclass(frozen=True)
class NewBusinessModel:
    """How the new-business component was modelled.

    Attributes
    ----------
    model : str
        The model (or the combination of models, with their weights).
    holdout_mae : float
        Its mean absolute error on the held-out months (NaN without a model).
    one_time_fees_per_new_mrr : float
        One-time fees new customers paid per unit of new MRR over the last two years.
    past_log_error_mean_last_month, past_log_error_sd_last_month : float or None
        Mean and spread of the log error the model made from earlier origins at
        the last forecast month (``None`` with fewer than three such origins).
    shares : dict or None
        Group -> its share of the new business (with ``by``).

    Examples
    --------
    >>> NewBusinessModel("mean of the last 6 months", float("nan"), 0.0, None, None).model
    'mean of the last 6 months'
    """

    model: str
    holdout_mae: float
    one_time_fees_per_new_mrr: float
    past_log_error_mean_last_month: float | None
    past_log_error_sd_last_month: float | None
    shares: dict | None = None


def _fit_new_business(y: pd.Series, horizon: int, n_sims: int, rng: np.random.Generator):
    """Simulated paths (sims x horizon) of monthly new MRR and the chosen model's name."""
    # statsmodels takes about a second to import and only this component needs it:
    # imported here so that `import renewforecast` and forecasts without new business do not pay for it.
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = y.astype("float64")
    if len(y) < 12 or float(y.abs().sum()) == 0.0:
        mean = float(y.tail(6).mean()) if len(y) else 0.0
        sd = float(y.tail(12).std(ddof=1)) if len(y) > 2 else 0.0
        paths = np.clip(mean + sd * rng.standard_normal((n_sims, horizon)), 0, None)
        return paths, "mean of the last 6 months (too little history for a model)", float("nan"), None

    # name: (model on the series, whether it is fitted on log(1 + y))
    candidates = {
        "exponential smoothing (level, log scale)": (lambda s: ETSModel(s, error="add", trend=None), True),
        "exponential smoothing (damped trend, log scale)": (
            lambda s: ETSModel(s, error="add", trend="add", damped_trend=True),
            True,
        ),
        "exponential smoothing (trend, log scale)": (lambda s: ETSModel(s, error="add", trend="add"), True),
        "ARIMA(1,1,1) on the log scale": (lambda s: SARIMAX(s, order=(1, 1, 1)), True),
    }
    y = y[y.ne(0).cumsum() > 0]  # from the first month with new business
    hold = min(12, max(3, len(y) // 4))
    train, test = y.iloc[:-hold], y.iloc[-hold:]
    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (make, logged) in candidates.items():
            try:
                res = make(np.log1p(train.clip(lower=0)) if logged else train).fit(disp=False)
                pred = np.asarray(res.forecast(hold))
                pred = np.expm1(pred) if logged else pred
                errors[name] = float(np.mean(np.abs(pred - test.to_numpy())))
            except Exception as exc:  # a candidate that cannot be fitted is not chosen
                log.debug("new-business candidate %s failed: %s", name, exc)
        if not errors:
            mean = float(y.tail(6).mean())
            return (
                np.full((n_sims, horizon), mean),
                "mean of the last 6 months (no model could be fitted)",
                float("nan"),
                None,
            )
        # A combination of the candidates, weighted by inverse holdout squared
        # error (Bates & Granger): more accurate than the single best on short,
        # noisy series, and its spread includes the models' disagreement.
        names = sorted(errors, key=errors.get)
        weights = np.array([1.0 / max(errors[n], 1e-9) ** 2 for n in names])
        weights /= weights.sum()
        counts = rng.multinomial(n_sims, weights)
        parts = []
        for name, k in zip(names, counts, strict=True):
            if k == 0:
                continue
            make, logged = candidates[name]
            res = make(np.log1p(y.clip(lower=0)) if logged else y).fit(disp=False)
            sims = res.simulate(
                nsimulations=horizon,
                repetitions=int(k),
                anchor="end",
                rng=np.random.default_rng(rng.integers(2**63 - 1)),
            )
            paths = np.asarray(sims, dtype="float64").reshape(horizon, -1)[:, :k].T
            if logged:
                paths = np.expm1(np.minimum(paths, np.log1p(y.max() * 4.0)))  # no runaway paths
            parts.append(paths)
    paths = rng.permutation(np.concatenate(parts), axis=0)
    label = "combination of " + ", ".join(f"{n} ({w:.0%})" for n, w in zip(names, weights, strict=True))
    make, logged = candidates[names[0]]

    def point(series: pd.Series, h: int) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = make(np.log1p(series.clip(lower=0)) if logged else series).fit(disp=False)
            f = np.asarray(res.forecast(h))
        return np.clip(np.expm1(f) if logged else f, 0, None)

    return np.clip(paths, 0, None), label, float(np.sum(weights * np.array([errors[n] for n in names]))), point


def new_business_revenue(
    view: Book, horizon: Horizon, groups: Groups, n_sims: int, rng: np.random.Generator, pipeline_nb_mean: np.ndarray
) -> tuple[np.ndarray, NewBusinessModel]:
    """Simulated new-business revenue (sims x groups x months) and how it was modelled.

    ``pipeline_nb_mean`` (groups x months) is what the pipeline's new-business
    deals are expected to bring; it is taken off each group's paths.
    """
    with one_blas_thread():
        return _revenue(view, horizon, groups, n_sims, rng, pipeline_nb_mean)


def _revenue(
    view: Book, horizon: Horizon, groups: Groups, n_sims: int, rng: np.random.Generator, pipeline_nb_mean: np.ndarray
) -> tuple[np.ndarray, NewBusinessModel]:
    cut, lo, hi = horizon.as_of, horizon.first, horizon.last
    n_months = hi - lo + 1
    end = last_month_end(cut)
    out = np.zeros((n_sims, len(groups.labels), n_months))
    # Months from the last complete month to each forecast month.
    step0 = lo - month_no(end)
    steps = step0 + n_months - 1
    # One model of the whole book's new MRR: a group's own series is often too
    # sparse (months without a deal) to model. Groups share the paths by their
    # share of new MRR over the last 12 months.
    mv = mrr_movements(view, end=end, by=())
    y = (mv.set_index("month")["new"] + mv.set_index("month")["reactivation"]).sort_index()
    if len(y):
        y = y.reindex(pd.date_range(y.index.min(), end, freq="ME"), fill_value=0.0)
    paths, name, mae, point = _fit_new_business(y, steps, n_sims, rng)
    fee_ratio = _fees_per_new_mrr(view, end, y)
    # New customers pay one-time fees too: in the month they are won, in the
    # proportion to their new MRR that the last two years showed.
    rev = _earned(paths) + fee_ratio * paths
    # The simulated paths know the model's noise, not how wrong the model
    # itself has been. Its forecasts from earlier origins say that: the paths
    # are moved by the mean log error those forecasts made at each horizon
    # (a growing business outruns smoothing models), and their spread is
    # topped up to the spread of those errors.
    errors = _rolling_log_errors(y, steps, point)
    spread = None
    if errors is not None:
        shift, spread = errors
        # A young or sparse book (months with no new business) gives huge log
        # errors that are no bias to correct: at most double or halve, and
        # keep the spread within a factor of e.
        shift = np.clip(shift, -_MAX_LOG_SHIFT, _MAX_LOG_SHIFT)
        spread = np.minimum(spread, 1.0)
        rev = rev * np.exp(shift)[None, :]
        own = np.var(np.log1p(rev), axis=0)
        extra = np.sqrt(np.clip(spread**2 - own, 0, None))
        rev = rev * np.exp(rng.standard_normal(n_sims)[:, None] * extra[None, :])
    share = np.ones(1)
    if groups.by is not None:
        by_group = mrr_movements(view, start=end - pd.offsets.MonthEnd(11), end=end, by=(groups.by,))
        amount = (
            (by_group["new"] + by_group["reactivation"])
            .groupby(by_group[groups.by].astype(object).where(by_group[groups.by].notna(), "(none)").astype(str))
            .sum()
        )
        share = amount.reindex(groups.labels, fill_value=0.0).to_numpy(dtype="float64")
        share = share / share.sum() if share.sum() > 0 else np.full(len(groups.labels), 1 / len(groups.labels))
    for g in range(len(groups.labels)):
        out[:, g, :] = np.clip(share[g] * rev[:, step0 - 1 :] - pipeline_nb_mean[g][None, :], 0, None)
    model = NewBusinessModel(
        model=name,
        holdout_mae=mae,
        one_time_fees_per_new_mrr=fee_ratio,
        past_log_error_mean_last_month=None if errors is None else float(errors[0][-1]),
        past_log_error_sd_last_month=None if errors is None else float(errors[1][-1]),
        shares=None if groups.by is None else dict(zip(groups.labels, np.round(share, 4).tolist(), strict=True)),
    )
    return out, model


def _fees_per_new_mrr(view: Book, end: pd.Timestamp, new_mrr: pd.Series) -> float:
    """One-time fees booked to start in the last 24 months per unit of new MRR won in them."""
    since = end - pd.DateOffset(months=24)
    start = view.subscriptions["start_date"]
    window = ((start > since) & (start <= end)).to_numpy()
    fees = float(row_amounts(view)["one_time"].to_numpy()[window].sum())
    won = float(new_mrr[new_mrr.index > since].sum()) if len(new_mrr) else 0.0
    return fees / won if won > 0 and fees > 0 else 0.0


def _earned(paths: np.ndarray) -> np.ndarray:
    """Revenue per month from new MRR per month: half in the month won, all of it after."""
    return np.cumsum(paths, axis=-1) - 0.5 * paths


def _rolling_log_errors(y: pd.Series, steps: int, point, n_origins: int = 6) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and standard deviation, by horizon, of the log error of the revenue earned.

    The model is refitted at up to ``n_origins`` earlier origins, a quarter
    apart, each with ``steps`` months of actuals after it and two years of
    history before it; ``None`` with fewer than three such origins.
    """
    if point is None:
        return None
    errors = []
    for i in range(n_origins):
        cut = len(y) - steps - 3 * i
        if cut < 24:
            break
        forecast = _earned(point(y.iloc[:cut], steps))
        actual = _earned(y.iloc[cut : cut + steps].to_numpy(dtype="float64"))
        errors.append(np.log1p(np.clip(actual, 0, None)) - np.log1p(forecast))
    if len(errors) < 3:
        return None
    return np.mean(errors, axis=0), np.std(errors, axis=0)
