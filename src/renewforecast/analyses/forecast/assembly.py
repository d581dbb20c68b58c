"""The forecast put together: every component's stage, the simulation, and the tidy result."""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast.contracted import booked_revenue
from renewforecast.analyses.forecast.groups import Groups, Horizon
from renewforecast.analyses.forecast.new_business import new_business_revenue
from renewforecast.analyses.forecast.pipeline import pipeline_deals
from renewforecast.analyses.forecast.renewals import as_probabilities, renewal_stages
from renewforecast.analyses.forecast.result import (
    COMPONENTS,
    HorizonTotal,
    PipelineComponent,
    RenewalComponent,
    RevenueForecast,
)
from renewforecast.analyses.forecast.scenarios import Scenario, as_scenario
from renewforecast.analyses.forecast.simulation import simulate_evergreen, simulate_revenue
from renewforecast.book import Book
from renewforecast.exceptions import RenewForecastError

__all__ = ["revenue_forecast"]

_QUANTILES = (0.1, 0.5, 0.9)


def revenue_forecast(
    book: Book,
    as_of,
    horizon_months: int = 12,
    model=None,
    n_sims: int = 1000,
    by: str | None = None,
    scenario: Scenario | dict | None = None,
    random_state: int | np.random.Generator | None = None,
    *,
    win_probability: str = "auto",
    new_business: bool = True,
    evergreen_hazard: float | None = None,
    renewal_rate: float | None = None,
    renewal_probabilities: pd.Series | pd.DataFrame | None = None,
) -> RevenueForecast:
    """Monthly revenue forecast by component, with P10 / P50 / P90 from simulation.

    Parameters
    ----------
    book : Book
        The Book; only what was known on ``as_of`` is used
        (:meth:`Book.as_of`).
    as_of : date-like
        The forecast date. The first forecast month is the month after the
        last month end on or before it.
    horizon_months : int, default 12
        Number of months forecast (1 to 120).
    model : RenewalModel or path, optional
        Renewal model that scores the contracts up for renewal; without it
        (and without ``renewal_probabilities``), each segment's historical
        renewal rate is used.
    n_sims : int, default 1000
        Monte Carlo simulations.
    by : str, optional
        An account column (``"segment"``, ``"region"``) to forecast by; the
        output then has one group per value plus ``"total"``.
    scenario : Scenario or dict, optional
        Named shocks (:class:`Scenario`).
    random_state : int or numpy Generator, optional
        Seed; the same seed gives the same intervals.
    win_probability : {"auto", "history", "stage"}, default "auto"
        How open deals are weighted: the win rate of closed deals by stage
        reached (``history``; needs stage history), the CRM stage probability
        (``stage``), or history when present (``auto``).
    new_business : bool, default True
        Include the not-yet-booked new-business component.
    evergreen_hazard : float, optional
        A monthly churn probability for evergreen contracts instead of the
        fitted survival model.
    renewal_rate : float, optional
        One renewal probability for every contract instead of the model's or
        the historical rates (a what-if; outcomes are then independent).
    renewal_probabilities : Series or DataFrame, optional
        Renewal probabilities already computed, instead of a ``model``: a
        Series by ``contract_id``, or :func:`renewforecast.score_contracts`
        output (its ``model_version`` is recorded), or an earlier forecast's
        ``renewal.probabilities``. Contracts without one renew with the
        historical rate.

    Returns
    -------
    RevenueForecast
        ``frame`` is the tidy table: ``scenario``, ``month`` (month end),
        ``group``, ``component`` (``contracted``, ``one_time``, ``usage``,
        ``renewal``, ``pipeline``, ``new_business`` and ``total``), ``mean``,
        ``p10``, ``p50``, ``p90``. The other fields record how each component
        was built (probability sources, the new-business model, the outcome
        correlations, the renewal and pipeline details per contract and
        deal) and ``horizon_total``: the mean, P10, P50 and P90 of the whole
        horizon's total revenue over the simulations.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=300, seed=3)
    >>> book = rf.load_book(folder)
    >>> fc = rf.revenue_forecast(book, "2026-10-31", horizon_months=6, n_sims=200, random_state=0)
    >>> sorted(fc.frame["component"].unique())
    ['contracted', 'new_business', 'one_time', 'pipeline', 'renewal', 'total', 'usage']
    >>> total = fc.rows("total")
    >>> bool((total["p10"] <= total["p50"]).all() and (total["p50"] <= total["p90"]).all())
    True
    >>> again = rf.revenue_forecast(book, "2026-10-31", horizon_months=6, n_sims=200, random_state=0,
    ...                             renewal_probabilities=fc.renewal.probabilities)
    >>> again.frame.equals(fc.frame)
    True
    """
    cut = pd.Timestamp(as_of).normalize()
    if not isinstance(horizon_months, (int, np.integer)) or not 1 <= horizon_months <= 120:
        raise RenewForecastError(f"horizon_months must be a whole number from 1 to 120, not {horizon_months!r}")
    if not isinstance(n_sims, (int, np.integer)) or n_sims < 1:
        raise RenewForecastError(f"n_sims must be a positive whole number, not {n_sims!r}")
    if renewal_rate is not None and not 0 <= renewal_rate <= 1:
        raise RenewForecastError(f"renewal_rate must be a probability from 0 to 1, not {renewal_rate!r}")
    if evergreen_hazard is not None and not 0 <= evergreen_hazard <= 1:
        raise RenewForecastError(f"evergreen_hazard must be a probability from 0 to 1, not {evergreen_hazard!r}")
    if model is not None and renewal_probabilities is not None:
        raise RenewForecastError("pass a renewal model or renewal_probabilities, not both")
    probabilities, probabilities_version = (
        as_probabilities(renewal_probabilities) if renewal_probabilities is not None else (None, None)
    )
    scn = as_scenario(scenario)
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    view = book.as_of(cut)
    horizon = Horizon.after(cut, horizon_months)
    groups = Groups(view, by)
    n_groups, n_months = len(groups.labels), horizon.n_months

    booked = booked_revenue(view, horizon, groups, evergreen_hazard)
    ren = renewal_stages(
        view,
        horizon,
        groups,
        scn,
        model=model,
        probabilities=probabilities,
        probabilities_version=probabilities_version,
        renewal_rate=renewal_rate,
    )
    pipe = pipeline_deals(view, horizon, groups, win_probability, scn)

    # The draws come in a fixed order (evergreen, renewals, deals, new business): the same seed, the same answer.
    sims = {c: np.zeros((n_sims, n_groups, n_months)) for c in COMPONENTS}
    sims["contracted"] += booked.contracted[None, :, :]
    sims["one_time"] += booked.one_time[None, :, :]
    sims["usage"] += booked.usage[None, :, :]
    ever = booked.evergreen
    simulate_evergreen(
        sims["contracted"],
        ever.alive,
        ever.revenue,
        groups.codes(ever.contracts["account_id"].to_numpy(dtype=object)),
        rng,
    )
    simulate_revenue(sims["renewal"], ren.probability, ren.correlation, rng, ren.revenue, ren.codes, ren.chain_start)
    simulate_revenue(sims["pipeline"], pipe.probability, pipe.correlation, rng, pipe.revenue, pipe.codes)
    nb_model = None
    if new_business:
        sims["new_business"], nb_model = new_business_revenue(
            view, horizon, groups, n_sims, rng, pipe.expected_new_business(n_groups)
        )

    frame = _summarise(sims, groups.labels, horizon.month_ends, scn.name)
    # The range of the horizon's total revenue comes from the simulations
    # themselves: adding up monthly P10s would overstate how bad it can get.
    horizon_sum = sum(sims[c] for c in COMPONENTS).sum(axis=(1, 2))
    p10, p50, p90 = (float(v) for v in np.quantile(horizon_sum, _QUANTILES))
    model_version = getattr(model, "model_version_", None) if model is not None else probabilities_version
    return RevenueForecast(
        frame=frame,
        as_of=cut,
        horizon_months=int(horizon_months),
        n_sims=int(n_sims),
        scenario=scn,
        horizon_total=HorizonTotal(mean=float(horizon_sum.mean()), p10=p10, p50=p50, p90=p90),
        renewal=RenewalComponent(
            source=ren.source,
            correlation=ren.correlation,
            contracts=ren.contracts,
            probabilities=ren.probabilities,
            historical_rate=ren.historical_rate,
        ),
        pipeline=PipelineComponent(source=pipe.source, correlation=pipe.correlation, deals=pipe.deals),
        evergreen=ever.source,
        new_business=nb_model,
        model_version=model_version,
    )


def _summarise(sims: dict[str, np.ndarray], labels: list[str], months: pd.DatetimeIndex, scenario: str) -> pd.DataFrame:
    """The tidy table: mean and quantiles of every component (and the total) by group and month."""
    sims = dict(sims)
    sims["total"] = sum(sims[c] for c in COMPONENTS)
    parts = []
    groups = list(labels)
    if len(labels) > 1:
        groups.append("total")
    for c, arr in sims.items():
        if len(labels) > 1:
            arr = np.concatenate([arr, arr.sum(axis=1, keepdims=True)], axis=1)
        q = np.quantile(arr, _QUANTILES, axis=0)  # 3 x groups x months
        mean = arr.mean(axis=0)
        for g, label in enumerate(groups):
            parts.append(
                pd.DataFrame(
                    {
                        "scenario": scenario,
                        "month": months,
                        "group": label,
                        "component": c,
                        "mean": mean[g],
                        "p10": q[0, g],
                        "p50": q[1, g],
                        "p90": q[2, g],
                    }
                )
            )
    out = pd.concat(parts, ignore_index=True)
    order = {c: i for i, c in enumerate((*COMPONENTS, "total"))}
    out["_o"] = out["component"].map(order)
    out = out.sort_values(["group", "_o", "month"], kind="stable").drop(columns="_o").reset_index(drop=True)
    num = ["mean", "p10", "p50", "p90"]
    out[num] = out[num].round(2)
    return out
