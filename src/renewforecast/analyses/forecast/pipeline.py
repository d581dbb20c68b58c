"""Pipeline: open new-business, upsell and amendment deals, their recurring schedules times their win probability.

Each deal counts its recurring lines' schedules
(:func:`renewforecast.line_schedules`), each installment recognised evenly
over the period it covers, times the deal's win probability: the win rate of
closed deals that reached the same stage (calibrated from stage history), or
the stage probability from the CRM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast.groups import Groups, Horizon
from renewforecast.analyses.forecast.scenarios import Scenario
from renewforecast.analyses.forecast.simulation import copula_rho
from renewforecast.book import Book
from renewforecast.dates import add_months
from renewforecast.exceptions import RenewForecastError
from renewforecast.ledger.schedules import line_schedules

__all__ = ["PIPELINE_TYPES", "PipelineDeals", "pipeline_deals"]

PIPELINE_TYPES = ("new_business", "upsell", "amendment")
_MIN_STAGE = 20  # fewer closed deals at a stage than this: use the CRM's probability


@dataclass(frozen=True, eq=False)
class PipelineDeals:
    """Open deals with recurring schedules, ready to simulate.

    Attributes
    ----------
    probability : ndarray
        Win probability of each deal with a schedule.
    revenue : ndarray
        Deals x months: each deal's revenue in each forecast month if won.
    codes : ndarray
        Group number of each deal.
    is_new_business : ndarray
        Which deals are new business (the new-business component subtracts what they bring).
    correlation : float
        The copula correlation of deal outcomes.
    source : str
        Where the win probabilities came from.
    deals : DataFrame
        Every open pipeline deal: ``opportunity_id``, ``account_id``, ``type``,
        ``stage``, ``close_date``, ``amount``, ``win_probability``.
    """

    probability: np.ndarray
    revenue: np.ndarray
    codes: np.ndarray
    is_new_business: np.ndarray
    correlation: float
    source: str
    deals: pd.DataFrame

    def expected_new_business(self, n_groups: int) -> np.ndarray:
        """Groups x months: the revenue the new-business deals are expected to bring."""
        out = np.zeros((n_groups, self.revenue.shape[1]))
        for g in range(n_groups):
            sel = self.is_new_business & (self.codes == g)
            out[g] = self.probability[sel] @ self.revenue[sel]
        return out


def _closed_deals(view: Book, cut: pd.Timestamp) -> pd.DataFrame:
    """Pipeline-type opportunities closed in the 24 months before ``cut``."""
    opps = view.opportunities
    return opps[
        opps["is_closed"].fillna(False).astype(bool)
        & opps["type"].isin(PIPELINE_TYPES)
        & (opps["close_date"] <= cut)
        & (opps["close_date"] > cut - pd.DateOffset(months=24))
    ]


def _win_rates(view: Book, closed: pd.DataFrame) -> tuple[dict, dict, float]:
    """Win rate of the closed deals by (type, stage) and by stage reached."""
    overall = float(closed["is_won"].astype(bool).mean()) if len(closed) else float("nan")
    hist = view.opportunity_history
    hist = hist[hist["opportunity_id"].isin(set(closed["opportunity_id"]))]
    if hist.empty:
        return {}, {}, overall
    visited = hist[["opportunity_id", "stage"]].drop_duplicates()
    visited = visited.merge(closed[["opportunity_id", "type", "is_won"]], on="opportunity_id")
    visited["is_won"] = visited["is_won"].astype(bool)
    by_type, by_stage = {}, {}
    for key, g in visited.groupby(["type", "stage"]):
        if len(g) >= _MIN_STAGE:
            by_type[key] = float(g["is_won"].mean())
    for key, g in visited.groupby("stage"):
        if len(g) >= _MIN_STAGE:
            by_stage[key] = float(g["is_won"].mean())
    return by_type, by_stage, overall


def pipeline_deals(view: Book, horizon: Horizon, groups: Groups, win_probability: str, scn: Scenario) -> PipelineDeals:
    """Open deals of the point-in-time ``view``: their win probabilities and scheduled revenue."""
    cut, lo, hi = horizon.as_of, horizon.first, horizon.last
    opps = view.opportunities
    open_ = opps[~opps["is_closed"].fillna(False).astype(bool) & opps["type"].isin(PIPELINE_TYPES)].copy()
    n_months = hi - lo + 1
    # Probability of winning each open deal.
    stage_p = open_["probability"].astype("float64")
    if win_probability not in ("auto", "history", "stage"):
        raise RenewForecastError("win_probability must be 'auto', 'history' or 'stage'")
    closed = _closed_deals(view, cut)
    by_type, by_stage, overall = _win_rates(view, closed) if win_probability != "stage" else ({}, {}, np.nan)
    if win_probability == "history" and not by_stage:
        raise RenewForecastError(
            "win_probability='history' needs stage history of closed opportunities (OpportunityHistory); use 'stage'"
        )
    if by_stage:
        keys = list(zip(open_["type"].astype(object), open_["stage"].astype(object), strict=True))
        hist_q = pd.Series([by_type.get(k, by_stage.get(k[1], np.nan)) for k in keys], index=open_.index)
        q = hist_q.fillna(stage_p)
        source = "win rate of closed deals by stage reached (last 24 months), else the CRM stage probability"
    else:
        q = stage_p
        source = "CRM stage probability"
    q = q.fillna(overall if np.isfinite(overall) else 0.0).clip(0.0, 1.0).to_numpy()
    open_["win_probability"] = q

    # Recurring lines only: products that are booked as recurring subscriptions.
    subs = view.subscriptions
    recurring = set(subs.loc[subs["charge_type"].fillna("recurring") == "recurring", "product_id"])
    lines = view.opportunity_lines
    lines = lines[lines["opportunity_id"].isin(set(open_["opportunity_id"])) & lines["product_id"].isin(recurring)]
    sub_view = view.replace(opportunity_lines=lines)
    sched = (
        line_schedules(sub_view)
        if len(lines)
        else pd.DataFrame(columns=["line_id", "opportunity_id", "schedule_date", "revenue", "source"])
    )
    sched = sched.sort_values(["line_id", "schedule_date"], kind="stable")
    date = sched["schedule_date"].to_numpy(dtype="datetime64[D]")
    if scn.pipeline_slip_months:
        date = add_months(date, scn.pipeline_slip_months)
    # Each installment is earned evenly until the next one; the last (or only)
    # one over the line's usual gap, or the product's term for a single one.
    line = sched["line_id"].to_numpy(dtype=object)
    same_next = np.r_[line[1:] == line[:-1], False]
    nxt = np.r_[date[1:], np.datetime64("NaT")]
    gap = np.where(same_next, (nxt - date).astype(np.int64), -1)
    gap_s = pd.Series(np.where(gap > 0, gap, np.nan)).groupby(line).transform("median").to_numpy()
    product = sched["line_id"].map(view.opportunity_lines.set_index("line_id")["product_id"])
    term = product.map(
        view.products.drop_duplicates("product_id").set_index("product_id")["subscription_term_months"]
    ).to_numpy(dtype="float64")
    term = np.where(np.isfinite(term) & (term > 0), term, 12.0)
    last = np.where(
        same_next,
        nxt - 1,
        np.where(
            np.isfinite(gap_s),
            date + np.nan_to_num(gap_s, nan=1).astype(np.int64) - 1,
            add_months(date, term.astype(np.int64)) - 1,
        ),
    )
    days = _overlap_days(date, last, lo, hi)
    span = (last - date).astype(np.int64) + 1
    per_row = days * (sched["revenue"].to_numpy(dtype="float64") / np.maximum(span, 1))[:, None]
    codes_o, uniq = pd.factorize(sched["opportunity_id"].to_numpy(dtype=object))
    revenue = np.zeros((len(uniq), n_months))
    np.add.at(revenue, codes_o, per_row)
    info = open_.set_index("opportunity_id").reindex(uniq)
    q_items = info["win_probability"].to_numpy(dtype="float64")
    codes = groups.codes(info["account_id"].to_numpy(dtype=object))
    is_nb = (info["type"] == "new_business").to_numpy()
    details = open_[["opportunity_id", "account_id", "type", "stage", "close_date", "amount", "win_probability"]]
    rho = 0.0
    if len(closed) and np.isfinite(overall):
        agg = (
            closed.assign(m=closed["close_date"].dt.to_period("M"), w=closed["is_won"].astype(float))
            .groupby("m")["w"]
            .agg(["mean", "size"])
        )
        rho = copula_rho(agg["mean"].to_numpy(), agg["size"].to_numpy(dtype="float64"), overall)
    return PipelineDeals(
        probability=q_items,
        revenue=revenue,
        codes=codes,
        is_new_business=is_nb,
        correlation=rho,
        source=source,
        deals=details,
    )


def _overlap_days(first: np.ndarray, last: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows x months: days of each month ``lo..hi`` inside each row's [first, last]."""
    starts = np.arange(lo, hi + 1).astype("datetime64[M]").astype("datetime64[D]")
    ends = np.arange(lo + 1, hi + 2).astype("datetime64[M]").astype("datetime64[D]") - 1
    f = first.astype("datetime64[D]")[:, None]
    lst = last.astype("datetime64[D]")[:, None]
    days = (np.minimum(lst, ends[None, :]) - np.maximum(f, starts[None, :])).astype(np.int64) + 1
    return np.clip(days, 0, None).astype("float64")
