"""How well the revenue forecast did in the past, against simple baselines.

For each origin the bottom-up forecast (:func:`renewforecast.revenue_forecast`)
is made from what the Book knew then (:meth:`Book.as_of`) and compared with
the revenue recognised afterwards (:func:`renewforecast.recognized_revenue`
on the whole Book). Two baselines see only the recognised revenue series up
to the origin:

- ``top_down_ets``: exponential smoothing on total monthly revenue, the
  error/trend form chosen by AICc among level, trend and damped trend (as R's
  ``ets()`` does), with its simulated P10-P90;
- ``seasonal_naive``: each month forecast as the same month one year before.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast import revenue_forecast
from renewforecast.book import Book
from renewforecast.dates import last_month_end
from renewforecast.exceptions import RenewForecastError
from renewforecast.ledger.recognition import recognized_revenue

__all__ = ["ForecastBacktest", "backtest_forecast", "backtest_origins", "checked_origins"]

METHODS = ("bottom_up", "top_down_ets", "seasonal_naive")


@dataclass
class ForecastBacktest:
    """The result of :func:`backtest_forecast`.

    Attributes
    ----------
    detail : DataFrame
        One row per origin, method and forecast month: ``origin``, ``method``,
        ``month``, ``horizon`` (1 = the first month after the origin),
        ``forecast``, ``p10``, ``p90`` (missing for the seasonal naive) and
        ``actual``.
    """

    detail: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Accuracy per method over every origin and month.

        Returns
        -------
        DataFrame
            Indexed by method: ``mape`` (mean absolute percentage error over
            all horizons), ``mape_last`` (at the last horizon), ``bias`` (mean
            signed percentage error; negative is under-forecast),
            ``coverage_p10_p90`` (share of months whose actual fell inside the
            P10-P90 interval) and ``months`` compared.
        """
        d = self.detail.assign(
            ape=lambda x: (x["forecast"] - x["actual"]).abs() / x["actual"].abs(),
            pe=lambda x: (x["forecast"] - x["actual"]) / x["actual"].abs(),
            inside=lambda x: (
                ((x["actual"] >= x["p10"]) & (x["actual"] <= x["p90"])).astype("float64").where(x["p10"].notna())
            ),
        )
        last = d["horizon"] == d["horizon"].max()
        out = pd.DataFrame(
            {
                "mape": d.groupby("method")["ape"].mean(),
                "mape_last": d[last].groupby("method")["ape"].mean(),
                "bias": d.groupby("method")["pe"].mean(),
                "coverage_p10_p90": d.groupby("method")["inside"].mean(),
                "months": d.groupby("method").size(),
            }
        )
        return out.reindex([m for m in METHODS if m in out.index])

    def by_horizon(self) -> pd.DataFrame:
        """MAPE by horizon (rows) and method (columns)."""
        d = self.detail.assign(ape=lambda x: (x["forecast"] - x["actual"]).abs() / x["actual"].abs())
        table = d.pivot_table(index="horizon", columns="method", values="ape", aggfunc="mean")
        return table[[m for m in METHODS if m in table.columns]]


def _top_down(y: pd.Series, horizon: int, n_sims: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    best, best_aicc = None, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for trend, damped in ((None, False), ("add", False), ("add", True)):
            try:
                res = ETSModel(y, error="add", trend=trend, damped_trend=damped).fit(disp=False)
            except Exception:  # a form that cannot be fitted is not chosen
                continue
            if np.isfinite(res.aicc) and res.aicc < best_aicc:
                best, best_aicc = res, res.aicc
        if best is None:
            raise RenewForecastError("the top-down baseline could not be fitted")
        mean = np.asarray(best.forecast(horizon))
        sims = np.asarray(
            best.simulate(horizon, anchor="end", repetitions=n_sims, rng=np.random.default_rng(seed))
        ).reshape(horizon, -1)
    return mean, np.quantile(sims, 0.1, axis=1), np.quantile(sims, 0.9, axis=1)


def backtest_origins(
    book: Book, horizon_months: int = 12, *, n_origins: int = 9, step_months: int = 3, as_of=None
) -> list[pd.Timestamp]:
    """Month-end origins for a backtest: the latest whose horizon is complete, and earlier ones.

    The latest origin is ``horizon_months`` before the last complete month
    (of ``as_of``, default the Book's data end); the others go back
    ``step_months`` at a time. Origins without 13 months of revenue before
    them are dropped.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.backtest_origins(rf.Book.empty(), as_of="2026-10-31")
    []
    """
    end = last_month_end(as_of if as_of is not None else (book.data_end or pd.Timestamp("1970-01-01")))
    first = book.subscriptions["start_date"].min()
    if pd.isna(first):
        return []
    earliest = last_month_end(first) + pd.offsets.MonthEnd(13)
    latest = end - pd.offsets.MonthEnd(horizon_months)
    origins = [latest - pd.offsets.MonthEnd(step_months * k) for k in range(n_origins)]
    return sorted(o for o in origins if o >= earliest)


def checked_origins(book: Book, origins, horizon_months: int) -> tuple[pd.Timestamp, list[pd.Timestamp]]:
    """The last complete month of ``book`` and the backtest ``origins`` as days, each horizon inside the data.

    Every backtest measures what happened after each origin, so each
    origin's ``horizon_months`` (counted from its last month end) must end
    by the last complete month of data.

    Raises
    ------
    RenewForecastError
        The Book has no data, no origin is given, or an origin's horizon runs
        past the last complete month (naming the origin).

    Examples
    --------
    >>> import renewforecast as rf
    >>> book = rf.Book.empty().as_of("2026-10-31")  # data known to 2026-10-31
    >>> last, days = checked_origins(book, ["2025-10-31"], 12)
    >>> last.date().isoformat(), [d.date().isoformat() for d in days]
    ('2026-10-31', ['2025-10-31'])
    >>> checked_origins(book, ["2025-11-30"], 12)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    renewforecast.exceptions.RenewForecastError: origin 2025-11-30: 12 months after it run past ... (2026-10-31)
    """
    data_end = book.data_end
    if data_end is None:
        raise RenewForecastError("the Book has no data to backtest on")
    last_full = last_month_end(data_end)
    days = [pd.Timestamp(o).normalize() for o in origins]
    if not days:
        raise RenewForecastError("give at least one origin")
    for day in days:
        if last_month_end(day) + pd.offsets.MonthEnd(horizon_months) > last_full:
            raise RenewForecastError(
                f"origin {day.date()}: {horizon_months} months after it run past the last complete "
                f"month of data ({last_full.date()})"
            )
    return last_full, days


def backtest_forecast(
    book: Book, origins, horizon_months: int = 12, *, n_sims: int = 500, random_state: int = 0, **forecast_options
) -> ForecastBacktest:
    """Forecast from past origins and compare with what was recognised afterwards.

    Parameters
    ----------
    book : Book
        The whole Book: each origin's forecast sees only ``book.as_of(origin)``;
        the actuals come from the whole Book.
    origins : sequence of date-like
        Forecast dates; each needs ``horizon_months`` complete months of
        data after it and at least 13 months of revenue before it.
    horizon_months : int, default 12
    n_sims : int, default 500
        Simulations per forecast.
    random_state : int, default 0
    **forecast_options
        Passed to :func:`renewforecast.revenue_forecast` (``model``,
        ``win_probability``, ...). A renewal model trained on the whole Book
        has seen the outcomes it is tested on; leave ``model`` out for an
        honest backtest, or pass one trained before the first origin.

    Returns
    -------
    ForecastBacktest
        With ``detail``, ``summary()`` and ``by_horizon()``.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=300, seed=3)
    >>> bt = rf.backtest_forecast(rf.load_book(folder), ["2025-04-30"], horizon_months=6, n_sims=100)
    >>> bt.summary().index.tolist()
    ['bottom_up', 'top_down_ets', 'seasonal_naive']
    """
    last_full, origins = checked_origins(book, origins, horizon_months)
    first_month = book.subscriptions["start_date"].min()
    actual = recognized_revenue(book, first_month, last_full).set_index("month")["revenue"]
    rows = []
    for i, origin in enumerate(origins):
        start = last_month_end(origin)
        months = pd.date_range(start + pd.offsets.MonthEnd(1), periods=horizon_months, freq="ME")
        history = actual[actual.index <= start]
        history = history[history.ne(0).cumsum() > 0]
        if len(history) < 13:
            raise RenewForecastError(f"origin {origin.date()}: needs at least 13 months of revenue before it")
        fc = revenue_forecast(
            book,
            origin,
            horizon_months=horizon_months,
            n_sims=n_sims,
            random_state=random_state + i,
            **forecast_options,
        )
        tot = fc.rows("total").set_index("month")
        mean, p10, p90 = _top_down(history, horizon_months, n_sims, random_state + i)
        naive = np.array([history.get(m - pd.DateOffset(years=1) + pd.offsets.MonthEnd(0), np.nan) for m in months])
        for method, f, lo, hi in (
            ("bottom_up", tot["mean"].to_numpy(), tot["p10"].to_numpy(), tot["p90"].to_numpy()),
            ("top_down_ets", mean, p10, p90),
            ("seasonal_naive", naive, np.full(len(months), np.nan), np.full(len(months), np.nan)),
        ):
            rows.append(
                pd.DataFrame(
                    {
                        "origin": origin,
                        "method": method,
                        "month": months,
                        "horizon": np.arange(1, horizon_months + 1),
                        "forecast": f,
                        "p10": lo,
                        "p90": hi,
                        "actual": actual.reindex(months).to_numpy(),
                    }
                )
            )
    detail = pd.concat(rows, ignore_index=True)
    return ForecastBacktest(detail=detail)
