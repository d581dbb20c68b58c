"""The forecast's typed result (:class:`RevenueForecast`) and the comparison of scenarios."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast.new_business import NewBusinessModel
from renewforecast.analyses.forecast.renewals import HistoricalRenewalRate
from renewforecast.analyses.forecast.scenarios import Scenario

__all__ = [
    "COMPONENTS",
    "HorizonTotal",
    "PipelineComponent",
    "RenewalComponent",
    "RevenueForecast",
    "forecast_scenario_table",
]

COMPONENTS = ("contracted", "one_time", "usage", "renewal", "pipeline", "new_business")


@dataclass(frozen=True)
class HorizonTotal:
    """The whole horizon's total revenue over the simulations: its mean and quantiles.

    Adding up monthly P10s would overstate how bad the horizon can get; these
    come from the simulated totals themselves.

    Examples
    --------
    >>> HorizonTotal(mean=120.0, p10=100.0, p50=119.0, p90=140.0).p90
    140.0
    """

    mean: float
    p10: float
    p50: float
    p90: float


@dataclass(frozen=True, eq=False)
class RenewalComponent:
    """How the renewal component was built.

    Attributes
    ----------
    source : str
        Where the renewal probabilities came from.
    correlation : float
        Correlation of renewal outcomes in the simulation (one-factor Gaussian copula).
    contracts : DataFrame
        One row per contract up for renewal inside the horizon: ``contract_id``,
        ``account_id``, ``end_date``, ``prior_arr``, ``renewal_arr`` and
        ``probability`` (the scenario's ``renewal_factor`` applied).
    probabilities : Series
        Each of those contracts' renewal probability before the scenario, by
        ``contract_id``: pass it as ``renewal_probabilities=`` to forecast
        other scenarios without scoring again.
    historical_rate : HistoricalRenewalRate
        The historical renewal rate (overall and by segment) used for
        contracts without a probability of their own.
    """

    source: str
    correlation: float
    contracts: pd.DataFrame
    probabilities: pd.Series
    historical_rate: HistoricalRenewalRate


@dataclass(frozen=True, eq=False)
class PipelineComponent:
    """How the pipeline component was built.

    Attributes
    ----------
    source : str
        Where the win probabilities came from.
    correlation : float
        Correlation of deal outcomes in the simulation.
    deals : DataFrame
        Every open new-business, upsell and amendment deal: ``opportunity_id``,
        ``account_id``, ``type``, ``stage``, ``close_date``, ``amount``,
        ``win_probability``.
    """

    source: str
    correlation: float
    deals: pd.DataFrame


@dataclass(frozen=True, eq=False)
class RevenueForecast:
    """A revenue forecast: the tidy table, and how each of its components was built.

    Returned by :func:`renewforecast.revenue_forecast`.

    Attributes
    ----------
    frame : DataFrame
        Tidy: ``scenario``, ``month`` (month end), ``group``, ``component``
        (``contracted``, ``one_time``, ``usage``, ``renewal``, ``pipeline``,
        ``new_business`` and ``total``), ``mean``, ``p10``, ``p50``, ``p90``.
    as_of : Timestamp
        The forecast date.
    horizon_months : int
    n_sims : int
        Monte Carlo simulations.
    scenario : Scenario
    horizon_total : HorizonTotal
        Mean, P10, P50 and P90 of the whole horizon's total revenue (all groups).
    renewal : RenewalComponent
    pipeline : PipelineComponent
    evergreen : str
        How the evergreen contracts' survival was estimated (part of ``contracted``).
    new_business : NewBusinessModel or None
        ``None`` when the forecast leaves new business out.
    model_version : str or None
        Version of the renewal model that gave the probabilities, when one did.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"scenario": "base", "month": pd.to_datetime(["2026-11-30", "2026-12-31"]),
    ...                       "group": "total", "component": "total", "mean": [10.0, 12.0],
    ...                       "p10": [9.0, 10.0], "p50": [10.0, 12.0], "p90": [11.0, 14.0]})
    >>> fc = RevenueForecast(frame=frame, as_of=pd.Timestamp("2026-10-31"), horizon_months=2, n_sims=100,
    ...                      scenario=Scenario(), horizon_total=HorizonTotal(22.0, 20.0, 22.0, 24.5),
    ...                      renewal=None, pipeline=None, evergreen="no evergreen contracts", new_business=None)
    >>> fc.rows()["mean"].tolist()
    [10.0, 12.0]
    """

    frame: pd.DataFrame
    as_of: pd.Timestamp
    horizon_months: int
    n_sims: int
    scenario: Scenario
    horizon_total: HorizonTotal
    renewal: RenewalComponent
    pipeline: PipelineComponent
    evergreen: str
    new_business: NewBusinessModel | None
    model_version: str | None = None

    @property
    def sources(self) -> dict[str, str]:
        """Where each component's numbers come from, in words (component -> description)."""
        return {
            "contracted": f"booked subscriptions; evergreen contracts: {self.evergreen}",
            "one_time": "booked one-time fees",
            "usage": "booked usage lines",
            "renewal": self.renewal.source,
            "pipeline": self.pipeline.source,
            "new_business": self.new_business.model if self.new_business is not None else "not included",
        }

    def rows(self, component: str = "total", group: str = "total") -> pd.DataFrame:
        """The forecast months of one component and group, in month order."""
        f = self.frame
        return f[(f["component"] == component) & (f["group"] == group)].sort_values("month", kind="stable")

    def __getitem__(self, key):
        raise TypeError(
            "a RevenueForecast is not a DataFrame: its table is .frame (fc.frame[...]); "
            "how it was built is in its fields (fc.renewal, fc.pipeline, fc.horizon_total ...)"
        )


def forecast_scenario_table(forecasts: Sequence[RevenueForecast | pd.DataFrame], group: str = "total") -> pd.DataFrame:
    """Compare forecasts of several scenarios: expected revenue and the last month's range.

    Parameters
    ----------
    forecasts : list of RevenueForecast or DataFrame
        :func:`revenue_forecast` results (or their ``frame``), one per
        scenario; the first is the reference the others are compared with.
    group : str, default "total"

    Returns
    -------
    DataFrame
        Indexed by scenario: ``expected_revenue`` (sum of the monthly
        means), ``vs_first`` (its change against the first scenario),
        ``last_month``, ``last_month_mean``, ``last_month_p10`` and
        ``last_month_p90``.

    Examples
    --------
    >>> import pandas as pd
    >>> def fc(name, level):
    ...     return pd.DataFrame({"scenario": name, "month": pd.date_range("2026-01-31", periods=2, freq="ME"),
    ...                          "group": "total", "component": "total", "mean": [level, level],
    ...                          "p10": [level - 1, level - 1], "p50": [level, level], "p90": [level + 1, level + 1]})
    >>> forecast_scenario_table([fc("base", 100.0), fc("down", 90.0)])["vs_first"].tolist()
    [0.0, -0.1]
    """
    rows = []
    for fc in forecasts:
        fc = fc.frame if isinstance(fc, RevenueForecast) else fc
        t = fc[(fc["component"] == "total") & (fc["group"] == group)].sort_values("month")
        last = t.iloc[-1]
        rows.append(
            {
                "scenario": str(t["scenario"].iloc[0]),
                "expected_revenue": round(float(t["mean"].sum()), 2),
                "last_month": last["month"],
                "last_month_mean": last["mean"],
                "last_month_p10": last["p10"],
                "last_month_p90": last["p90"],
            }
        )
    out = pd.DataFrame(rows).set_index("scenario")
    base = out["expected_revenue"].iloc[0]
    out.insert(1, "vs_first", (out["expected_revenue"] / base - 1).round(4) if base else np.nan)
    return out
