"""Booked revenue: contracted subscriptions, one-time fees, usage, and the evergreen contracts' survival.

Revenue of the subscriptions booked by the as-of date is recognised day by
day until their end exactly as :func:`renewforecast.recognized_revenue`
does. Evergreen subscriptions have no end: each month they count with the
probability that their contract is still alive, from a Weibull survival model
fitted on the evergreen contracts' own history (or a constant monthly hazard
when there is too little history).
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
from renewforecast.ledger.recognition import fees_and_usage, month_fractions, spread_over_months
from renewforecast.ledger.valuation import last_counted_day, object_values, row_amounts, row_values
from renewforecast.models.survival import SurvivalModel

__all__ = ["BookedRevenue", "EvergreenContracts", "booked_revenue"]

log = logging.getLogger(__name__)

_MIN_EVERGREEN_ENDED = 20  # fewer ended evergreen contracts than this: a constant hazard, not a model


@dataclass(frozen=True, eq=False)
class EvergreenContracts:
    """The evergreen contracts live on the as-of date and how long they are expected to last.

    Attributes
    ----------
    contracts : DataFrame
        ``contract_id``, ``account_id``, ``start_date``, ``mrr``.
    revenue : ndarray
        Contracts x months: each one's revenue in each forecast month while alive.
    alive : ndarray
        Contracts x months: probability of being alive through each forecast month.
    source : str
        How ``alive`` was estimated.
    """

    contracts: pd.DataFrame
    revenue: np.ndarray
    alive: np.ndarray
    source: str


@dataclass(frozen=True, eq=False)
class BookedRevenue:
    """Revenue booked by the as-of date, groups x months per component, and the evergreen contracts.

    Attributes
    ----------
    contracted : ndarray
        Fixed-term subscriptions' revenue (evergreen revenue is simulated from ``evergreen``).
    one_time, usage : ndarray
        Booked one-time fees and usage lines.
    evergreen : EvergreenContracts
    """

    contracted: np.ndarray
    one_time: np.ndarray
    usage: np.ndarray
    evergreen: EvergreenContracts


def booked_revenue(view: Book, horizon: Horizon, groups: Groups, evergreen_hazard: float | None) -> BookedRevenue:
    """Revenue of what the point-in-time ``view`` had booked, over the horizon (see the module docstring)."""
    lo, hi = horizon.first, horizon.last
    values = row_values(view)  # valued once, for the contracted, fee and usage parts
    fixed, ever, ever_rev = _contracted(view, values, lo, hi, groups)
    fees, usage = fees_and_usage(
        values,
        row_amounts(view),
        groups.codes(view.subscriptions["account_id"].to_numpy(dtype=object)),
        len(groups.labels),
        lo,
        hi,
    )
    alive, source = _evergreen_survival(view, ever, horizon, evergreen_hazard)
    return BookedRevenue(
        contracted=fixed,
        one_time=fees,
        usage=usage,
        evergreen=EvergreenContracts(contracts=ever, revenue=ever_rev, alive=alive, source=source),
    )


def _contracted(view: Book, v: dict, lo: int, hi: int, groups: Groups):
    """Fixed-term revenue (groups x months) and the evergreen contracts' monthly revenue."""
    subs = view.subscriptions
    last_day = last_counted_day(v["to_date"], v["chain_terminated"])
    rate = v["quantity"] * v["annual_value"] / 12.0
    evergreen = np.isnat(last_day)
    n_groups, n_months = len(groups.labels), hi - lo + 1
    fixed = np.zeros((n_groups, n_months))
    if (~evergreen).any():
        keep, mf, ml, ff, fl = month_fractions(v["from_date"][~evergreen], last_day[~evergreen], lo, hi)
        codes = groups.codes(object_values(subs["account_id"])[~evergreen][keep])
        fixed = spread_over_months(codes, mf, ml, ff, fl, rate[~evergreen][keep], n_groups, lo, hi)
    ever = pd.DataFrame(columns=["contract_id", "account_id"])
    ever_rev = np.zeros((0, n_months))
    if evergreen.any():
        keep, mf, ml, ff, fl = month_fractions(v["from_date"][evergreen], last_day[evergreen], lo, hi)
        cids = object_values(subs["contract_id"])[evergreen][keep]
        codes, uniques = pd.factorize(cids)
        ever_rev = spread_over_months(
            codes.astype(np.int64), mf, ml, ff, fl, rate[evergreen][keep], len(uniques), lo, hi
        )
        con = view.contracts.drop_duplicates("contract_id").set_index("contract_id")
        ever = pd.DataFrame(
            {
                "contract_id": uniques,
                "account_id": con["account_id"].reindex(uniques).to_numpy(),
                "start_date": con["start_date"].reindex(uniques).to_numpy(),
            }
        )
        ever["mrr"] = pd.Series(rate[evergreen][keep]).groupby(codes).sum().to_numpy()
    return fixed, ever, ever_rev


def _evergreen_survival(
    view: Book, ever: pd.DataFrame, horizon: Horizon, hazard: float | None
) -> tuple[np.ndarray, str]:
    """Per evergreen contract, the probability of being alive through each forecast month."""
    cut, n_months = horizon.as_of, horizon.n_months
    if ever.empty:
        return np.zeros((0, n_months)), "no evergreen contracts"
    # Months from the as-of date to the end of each forecast month.
    ahead = np.arange(1, n_months + 1) + (horizon.first - month_no(cut) - 1)
    if hazard is not None:
        return np.tile((1 - float(hazard)) ** ahead, (len(ever), 1)), f"constant monthly hazard {hazard:.4f} (given)"
    con = view.contracts
    con = con[con["evergreen"].fillna(False).astype(bool)]
    subs = view.subscriptions[view.subscriptions["contract_id"].isin(set(con["contract_id"]))]
    ended = subs.groupby("contract_id")["terminated_date"].min()
    life = pd.DataFrame({"contract_id": con["contract_id"].to_numpy(), "start": con["start_date"].to_numpy()})
    life["end"] = life["contract_id"].map(ended)
    life = life[life["start"] <= cut]
    life["event"] = life["end"].notna().astype(int)
    stop = life["end"].fillna(cut)
    life["duration"] = ((stop - life["start"]).dt.days / 30.4375).clip(lower=0.5)
    events, exposure = int(life["event"].sum()), float(life["duration"].sum())
    tenure0 = ((cut - pd.to_datetime(ever["start_date"])).dt.days / 30.4375).clip(lower=0).to_numpy()
    if events >= _MIN_EVERGREEN_ENDED:
        # One covariate so that the lifelines design is not empty; MRR size
        # is the only thing every evergreen contract has.
        mrr_of = ever.set_index("contract_id")["mrr"]
        life["log_mrr"] = np.log1p(life["contract_id"].map(mrr_of).fillna(mrr_of.median()).clip(lower=0))
        try:
            with warnings.catch_warnings(), one_blas_thread():
                warnings.simplefilter("ignore")
                model = SurvivalModel(kind="weibull_aft").fit(life[["duration", "event", "log_mrr"]])
                X = pd.DataFrame({"log_mrr": np.log1p(ever["mrr"].clip(lower=0)).to_numpy()})
                alive = np.ones((len(ever), n_months))
                s = np.ones(len(ever))
                for t in range(n_months):
                    s = s * (1 - model.monthly_hazard(X, tenure=tenure0 + ahead[t] - 1).to_numpy())
                    alive[:, t] = s
            return alive, f"Weibull survival model on {len(life)} evergreen contracts ({events} ended)"
        except Exception as exc:  # a degenerate fit falls back to the constant hazard
            log.warning("evergreen survival model failed (%s); using a constant hazard", exc)
    h = events / exposure if exposure > 0 else 0.0
    return (
        np.tile((1 - h) ** ahead, (len(ever), 1)),
        f"constant monthly hazard {h:.4f} from {events} ended of {len(life)} evergreen contracts",
    )
