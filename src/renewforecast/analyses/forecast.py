"""Bottom-up monthly revenue forecast with Monte Carlo intervals.

The forecast for each month after the as-of date is the sum of six
components, each traced to the records it comes from:

``contracted``
    Revenue of the subscriptions booked by the as-of date, recognised day by
    day until their end exactly as :func:`renewforecast.recognized_revenue`
    does. Evergreen subscriptions have no end: each month they count with the
    probability that their contract is still alive, from a Weibull survival
    model fitted on the evergreen contracts' own history (or a constant
    monthly hazard when there is too little history).
``renewal``
    Every fixed-term contract that ends inside the horizon and is not yet
    renewed, lost or terminated renews with its probability: the renewal
    model's when one is given, else the historical ARR renewal rate of its
    segment. It renews for a term like its last one, at the price of its open
    renewal quote when there is one, else its ARR on its last day times its
    pricing method's historical renewal ratio (with its contractual uplift
    for the ``uplift`` method). Renewals of renewals inside the horizon count
    too, each with the same probability.
``pipeline``
    Open opportunities (new business, upsell, amendment) count their
    recurring lines' schedules (:func:`renewforecast.line_schedules`), each
    installment recognised evenly over the period it covers, times the
    opportunity's win probability: the win rate of closed opportunities that
    reached the same stage (calibrated from stage history), or the stage
    probability from the CRM.
``one_time`` and ``usage``
    Booked one-time fees, whole in the month they start, and booked usage
    lines over their dates (:func:`renewforecast.recognized_revenue`'s rules);
    neither is recurring revenue.
``new_business``
    Business not booked and not in the pipeline yet: a statsmodels model
    (exponential smoothing with or without a damped trend, or an ARIMA,
    chosen by holdout error) of monthly new-business MRR, turned into revenue
    (a new customer earns half its MRR in its first month, plus the one-time
    fees new customers paid per unit of new MRR over the last two years, in
    the month won), less what the pipeline's new-business deals are expected
    to bring that month.

Intervals come from simulating renewal and deal outcomes together with the
new-business model's own simulated paths. Outcomes are correlated through
one common factor per simulation (a one-factor Gaussian copula, which keeps
every contract's own probability exact) whose strength is estimated from how
much the monthly renewal and win rates varied in the past beyond what chance
alone explains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from renewforecast.book import Book
from renewforecast.exceptions import RenewForecastError
from renewforecast.ledger.revenue import (
    _fees_and_usage,
    _last_counted_day,
    _month_end,
    _month_fractions,
    _month_number,
    _objects,
    _row_values,
    _spread,
    last_month_end,
    mrr_movements,
    row_amounts,
)
from renewforecast.ledger.schedules import _add_months

__all__ = ["COMPONENTS", "Scenario", "forecast_scenario_table", "revenue_forecast"]

log = logging.getLogger(__name__)

COMPONENTS = ("contracted", "one_time", "usage", "renewal", "pipeline", "new_business")
_QUANTILES = (0.1, 0.5, 0.9)
_MAX_LOG_SHIFT = float(np.log(2.0))
_MIN_DECISIONS = 30  # fewer past decisions than this: use the portfolio rate
_MIN_STAGE = 20      # fewer closed deals at a stage than this: use the CRM's probability
_CHUNK = 100         # simulations per block at most
_CELLS = 1 << 24     # outcomes (simulations x rows) drawn at once: bounds memory on large books
_PIPELINE_TYPES = ("new_business", "upsell", "amendment")


@dataclass(frozen=True)
class Scenario:
    """A named shock applied to the forecast's assumptions.

    Parameters
    ----------
    name : str
        Shown in the output's ``scenario`` column.
    renewal_factor : float, default 1.0
        Multiplies every renewal probability (capped at 1).
    pipeline_slip_months : int, default 0
        Every open deal's schedule moves this many months later.
    uplift : float, optional
        Renewal price change applied to every renewal instead of its pricing
        method (0.05 = 5 % more than its ARR today).

    Examples
    --------
    >>> Scenario("downside", renewal_factor=0.9, pipeline_slip_months=2)
    Scenario(name='downside', renewal_factor=0.9, pipeline_slip_months=2, uplift=None)
    """

    name: str = "base"
    renewal_factor: float = 1.0
    pipeline_slip_months: int = 0
    uplift: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.renewal_factor) and self.renewal_factor >= 0):
            raise RenewForecastError(f"scenario {self.name!r}: renewal_factor must be >= 0")
        if int(self.pipeline_slip_months) != self.pipeline_slip_months or self.pipeline_slip_months < 0:
            raise RenewForecastError(f"scenario {self.name!r}: pipeline_slip_months must be a whole number >= 0")
        if self.uplift is not None and not (np.isfinite(self.uplift) and self.uplift > -1):
            raise RenewForecastError(f"scenario {self.name!r}: uplift must be a fraction above -1")


def _as_scenario(scenario) -> Scenario:
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        unknown = set(scenario) - {f.name for f in dataclasses.fields(Scenario)}
        if unknown:
            raise RenewForecastError(f"unknown scenario setting(s) {sorted(unknown)}; "
                                     "use name, renewal_factor, pipeline_slip_months, uplift")
        return Scenario(**scenario)
    raise RenewForecastError(f"scenario must be a Scenario or a dict, not {type(scenario).__name__}")


# ------------------------------------------------------------------ helpers


def _month_no(ts) -> int:
    return int(_month_number([pd.Timestamp(ts).to_datetime64()])[0])


class _Groups:
    """Maps account ids to the forecast's groups (one group, or an account column)."""

    def __init__(self, book: Book, by: str | None):
        if by is not None and not isinstance(by, str):
            raise RenewForecastError("by must be one account column name (for example 'segment') or None")
        if by is not None and by not in book.accounts.columns:
            raise RenewForecastError(f"cannot group the forecast by {by!r}: not an account column "
                                     f"({', '.join(c for c in book.accounts.columns if c != 'account_id')})")
        self.by = by
        if by is None:
            self.labels = ["total"]
            self._map = None
        else:
            attr = book.accounts.drop_duplicates("account_id").set_index("account_id")[by]
            attr = attr.astype(object).where(attr.notna(), "(none)").astype(str)
            self.labels = sorted(set(attr))
            self._map = attr.map({v: i for i, v in enumerate(self.labels)})

    def codes(self, account_ids) -> np.ndarray:
        ids = np.asarray(account_ids, dtype=object)
        if self._map is None:
            return np.zeros(len(ids), dtype=np.int64)
        codes = pd.Series(ids).map(self._map)
        if codes.isna().any():
            codes = codes.fillna(self.labels.index("(none)") if "(none)" in self.labels else 0)
        return codes.to_numpy(dtype=np.int64)


def _overlap_days(first: np.ndarray, last: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows x months: days of each month ``lo..hi`` inside each row's [first, last]."""
    starts = np.arange(lo, hi + 1).astype("datetime64[M]").astype("datetime64[D]")
    ends = (np.arange(lo + 1, hi + 2).astype("datetime64[M]").astype("datetime64[D]") - 1)
    f = first.astype("datetime64[D]")[:, None]
    lst = last.astype("datetime64[D]")[:, None]
    days = (np.minimum(lst, ends[None, :]) - np.maximum(f, starts[None, :])).astype(np.int64) + 1
    return np.clip(days, 0, None).astype("float64")


def _one_blas_thread():
    """A context in which BLAS runs on one thread.

    The statistical fits here (statsmodels state space, lifelines) do
    thousands of tiny matrix operations; a second BLAS thread only adds
    hand-offs, and on a busy machine each hand-off can wait for a time slice
    (fits over 100 times slower). Results are the same, up to rounding in the
    last digits of a few sums.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _copula_rho(rates: np.ndarray, counts: np.ndarray, p: float) -> float:
    """Correlation of a one-factor Gaussian copula matching the rates' excess variance.

    Between periods the observed rate varies by chance (``p(1-p)/n``) and by a
    common shock; the shock's variance is ``Phi2(t, t; rho) - p**2`` with
    ``t = Phi^-1(p)``. Solved for ``rho`` by root finding; 0 when the rates
    vary no more than chance, capped at 0.5.
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


def _simulate_revenue(out: np.ndarray, thresholds: np.ndarray, rho: float, rng: np.random.Generator,
                      revenue: np.ndarray, codes: np.ndarray, chain_start: np.ndarray | None = None) -> None:
    """Add each simulation's revenue of the rows that succeed: ``out[s, g, :] += sum of revenue[i]``.

    Row ``i`` (of group ``codes[i]``) succeeds when
    ``sqrt(rho) Z + sqrt(1 - rho) e_i < thresholds[i]`` (``Z`` common to the
    simulation), so ``P(success) = Phi(threshold)`` exactly. With
    ``chain_start``, a row only counts when every earlier row of its chain
    (rows ``chain_start[i] .. i``) succeeded too.

    Rows are put in group order once, so that each group is one block; the
    outcomes of a block of simulations are drawn as simulations x rows
    (single-precision normals), and each group's revenue is then one matrix
    product.
    """
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
    chunk = int(np.clip(_CELLS // n_rows, 1, _CHUNK))
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
                out[s0:s0 + k, g, :] += w[:, lo:hi] @ revenue[lo:hi]


# --------------------------------------------------------------- components


def _contracted(view: Book, v: dict, lo: int, hi: int, groups: _Groups):
    """Fixed-term revenue (groups x months) and the evergreen contracts' monthly revenue."""
    subs = view.subscriptions
    last_day = _last_counted_day(v["to_date"], v["chain_terminated"])
    rate = v["quantity"] * v["annual_value"] / 12.0
    evergreen = np.isnat(last_day)
    n_groups, n_months = len(groups.labels), hi - lo + 1
    fixed = np.zeros((n_groups, n_months))
    if (~evergreen).any():
        keep, mf, ml, ff, fl = _month_fractions(v["from_date"][~evergreen], last_day[~evergreen], lo, hi)
        codes = groups.codes(_objects(subs["account_id"])[~evergreen][keep])
        fixed = _spread(codes, mf, ml, ff, fl, rate[~evergreen][keep], n_groups, lo, hi)
    ever = pd.DataFrame(columns=["contract_id", "account_id"])
    ever_rev = np.zeros((0, n_months))
    if evergreen.any():
        keep, mf, ml, ff, fl = _month_fractions(v["from_date"][evergreen], last_day[evergreen], lo, hi)
        cids = _objects(subs["contract_id"])[evergreen][keep]
        codes, uniques = pd.factorize(cids)
        ever_rev = _spread(codes.astype(np.int64), mf, ml, ff, fl, rate[evergreen][keep], len(uniques), lo, hi)
        con = view.contracts.drop_duplicates("contract_id").set_index("contract_id")
        ever = pd.DataFrame({"contract_id": uniques, "account_id": con["account_id"].reindex(uniques).to_numpy(),
                             "start_date": con["start_date"].reindex(uniques).to_numpy()})
        ever["mrr"] = pd.Series(rate[evergreen][keep]).groupby(codes).sum().to_numpy()
    return fixed, ever, ever_rev


def _evergreen_survival(view: Book, ever: pd.DataFrame, cut: pd.Timestamp, lo: int, hi: int,
                        hazard: float | None) -> tuple[np.ndarray, str]:
    """Per evergreen contract, the probability of being alive through each forecast month."""
    n_months = hi - lo + 1
    if ever.empty:
        return np.zeros((0, n_months)), "no evergreen contracts"
    # Months from the as-of date to the end of each forecast month.
    ahead = np.arange(1, n_months + 1) + (lo - _month_no(cut) - 1)
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
    if events >= 20:
        from renewforecast.models.survival import SurvivalModel

        # One covariate so that the lifelines design is not empty; MRR size
        # is the only thing every evergreen contract has.
        mrr_of = ever.set_index("contract_id")["mrr"]
        life["log_mrr"] = np.log1p(life["contract_id"].map(mrr_of).fillna(mrr_of.median()).clip(lower=0))
        try:
            with warnings.catch_warnings(), _one_blas_thread():
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
    return (np.tile((1 - h) ** ahead, (len(ever), 1)),
            f"constant monthly hazard {h:.4f} from {events} ended of {len(life)} evergreen contracts")


def _renewal_decisions(view: Book, cut: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every contract's renewal decision, and those decided in the 24 months before ``cut``."""
    from renewforecast.analyses.saas_metrics import renewal_decisions

    # A view already cut back to the as-of date is not cut again (the costliest step).
    dec = renewal_decisions(view) if view.known_as_of == cut else renewal_decisions(view, cut)
    recent = dec[dec["outcome"].isin(["renewed", "churned"]) & (dec["end_date"] <= cut)
                 & (dec["end_date"] > cut - pd.DateOffset(months=24)) & (dec["prior_arr"] > 0)].copy()
    return dec, recent


def _renewals(view: Book, cut: pd.Timestamp, lo: int, hi: int, groups: _Groups, model, scn: Scenario,
              renewal_rate: float | None = None):
    """Stage rows of renewals inside the horizon, their probabilities and revenue."""
    from renewforecast.analyses.saas_metrics import renewal_opportunities

    dec, recent = _renewal_decisions(view, cut)
    horizon_end = (np.datetime64(hi + 1, "M").astype("datetime64[D]") - 1)
    forecast_start = np.datetime64(lo, "M").astype("datetime64[D]")
    open_ = dec[(dec["outcome"] == "open") & (dec["prior_arr"] > 0)
                & (dec["end_date"] <= pd.Timestamp(horizon_end))].copy()
    accounts = view.accounts.drop_duplicates("account_id").set_index("account_id")
    seg_of = accounts["segment"] if "segment" in accounts else pd.Series(dtype=object)

    # Probability: the model's, or the recent ARR renewal rate of the segment.
    recent["segment"] = recent["account_id"].map(seg_of).astype(object)
    renewed = recent["outcome"] == "renewed"
    overall = (float(recent.loc[renewed, "prior_arr"].sum() / recent["prior_arr"].sum())
               if len(recent) else float("nan"))
    by_seg = {}
    for seg, g in recent.groupby("segment"):
        if len(g) >= _MIN_DECISIONS:
            by_seg[seg] = float(g.loc[g["outcome"] == "renewed", "prior_arr"].sum() / g["prior_arr"].sum())
    open_["segment"] = open_["account_id"].map(seg_of).astype(object)
    hist_p = open_["segment"].map(by_seg).fillna(overall).to_numpy(dtype="float64")
    if renewal_rate is not None:
        p = np.full(len(open_), float(renewal_rate))
        source = f"a fixed renewal probability of {renewal_rate:.1%} (given)"
    elif model is not None:
        from renewforecast.analyses.scoring import score_contracts

        scores = score_contracts(view, model, as_of=cut).set_index("contract_id")["renewal_probability"]
        p = open_["contract_id"].map(scores).to_numpy(dtype="float64")
        # Contracts past their end with the decision still open are not scored: the base rate.
        p = np.where(np.isfinite(p), p, hist_p)
        version = getattr(model, "model_version_", None) if not isinstance(model, str) else model
        source = f"renewal model ({version or 'unsaved'})"
    elif len(open_) and not len(recent):
        raise RenewForecastError(
            f"no renewal decisions in the 24 months before {cut.date()} to estimate renewal rates from: "
            "pass a renewal model or a renewal_rate")
    else:
        p = hist_p
        source = (f"historical ARR renewal rate over the last 24 months ({overall:.1%} overall"
                  + (", by segment" if by_seg else "") + f"; {len(recent)} decisions)")
    p = np.clip(p * scn.renewal_factor, 0.0, 1.0)

    # Price: the open renewal quote, else ARR x the method's historical ratio.
    con = view.contracts.drop_duplicates("contract_id").set_index("contract_id")
    method = open_["contract_id"].map(con["renewal_pricing_method"]).astype(object).fillna("same")
    uplift = open_["contract_id"].map(con["renewal_uplift_rate"]).astype("float64").fillna(0.0)
    rc = recent[renewed].copy()
    rc["method"] = rc["contract_id"].map(con["renewal_pricing_method"]).astype(object).fillna("same")
    rc["uplift"] = rc["contract_id"].map(con["renewal_uplift_rate"]).astype("float64").fillna(0.0)
    rc["base"] = rc["prior_arr"] * np.where(rc["method"] == "uplift", 1 + rc["uplift"], 1.0)
    ratio_all = float(rc["renewed_arr"].sum() / rc["base"].sum()) if rc["base"].sum() > 0 else 1.0
    ratios = {m: float(g["renewed_arr"].sum() / g["base"].sum())
              for m, g in rc.groupby("method") if len(g) >= _MIN_DECISIONS and g["base"].sum() > 0}
    ratio = method.map(ratios).fillna(ratio_all).to_numpy(dtype="float64")
    prior = open_["prior_arr"].to_numpy(dtype="float64")
    if scn.uplift is not None:
        arr = prior * (1 + scn.uplift)
    else:
        arr = prior * ratio * np.where(method == "uplift", 1 + uplift.to_numpy(), 1.0)
        opps = renewal_opportunities(view)
        quote = open_["contract_id"].map(opps["amount"].where(~opps["is_closed"].astype(bool)))
        quote = quote.to_numpy(dtype="float64")
        term = open_["term_months"].to_numpy(dtype="float64")
        has_quote = np.isfinite(quote) & (quote > 0) & np.isfinite(term) & (term > 0)
        quoted = np.divide(12.0 * quote, term, out=np.zeros_like(quote), where=has_quote)
        arr = np.where(has_quote, quoted, arr)

    # Stages: the first renewal starts the day after the end; later ones follow
    # for as long as they start inside the horizon.
    end = open_["end_date"].to_numpy(dtype="datetime64[D]")
    start = open_["start_date"].to_numpy(dtype="datetime64[D]")
    term = open_["term_months"].to_numpy(dtype="float64")
    months_between = ((end + 1).astype("datetime64[M]").astype(np.int64) - start.astype("datetime64[M]").astype(np.int64))
    term = np.where(np.isfinite(term) & (term >= 1), term, np.maximum(months_between, 1)).astype(np.int64)
    rows_c, rows_s, rows_e, rows_j = [], [], [], []
    s = end + 1
    idx = np.arange(len(open_))
    j = 0
    while len(idx):
        e = _add_months(s, term[idx]) - 1
        rows_c.append(idx)
        rows_s.append(s)
        rows_e.append(e)
        rows_j.append(np.full(len(idx), j))
        nxt = e + 1
        more = nxt <= horizon_end
        idx, s, j = idx[more], nxt[more], j + 1
    c = np.concatenate(rows_c) if rows_c else np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.concatenate(rows_j) if rows_j else c, c))
    c = c[order]
    s_all = (np.concatenate(rows_s) if rows_s else np.zeros(0, dtype="datetime64[D]"))[order]
    e_all = (np.concatenate(rows_e) if rows_e else np.zeros(0, dtype="datetime64[D]"))[order]
    chain_start = np.searchsorted(c, c, side="left")
    s_clip = np.maximum(s_all, forecast_start)
    keep, mf, ml, ff, fl = _month_fractions(s_clip, e_all, lo, hi)
    revenue = np.zeros((len(c), hi - lo + 1))
    if keep.any():
        n_keep = int(keep.sum())
        part = _spread(np.arange(n_keep), mf, ml, ff, fl, (arr / 12.0)[c][keep], n_keep, lo, hi)
        revenue[keep] = part
    codes = groups.codes(open_["account_id"].to_numpy(dtype=object)[c])
    details = open_.assign(probability=p, renewal_arr=arr)[
        ["contract_id", "account_id", "end_date", "prior_arr", "renewal_arr", "probability"]]
    # Correlation of outcomes from the monthly spread of past renewal rates.
    rho = 0.0
    if len(recent):
        m = recent.assign(m=recent["end_date"].dt.to_period("M"),
                          won=np.where(recent["outcome"] == "renewed", recent["prior_arr"], 0.0))
        agg = m.groupby("m").agg(won=("won", "sum"), arr=("prior_arr", "sum"), n=("contract_id", "size"),
                                 arr2=("prior_arr", lambda x: float((x ** 2).sum())))
        n_eff = (agg["arr"] ** 2 / agg["arr2"]).to_numpy()
        rho = _copula_rho((agg["won"] / agg["arr"]).to_numpy(), n_eff, overall) if renewal_rate is None else 0.0
    return {"p": p[c], "chain_start": chain_start, "revenue": revenue, "codes": codes, "rho": rho,
            "source": source, "details": details}


def _closed_deals(view: Book, cut: pd.Timestamp) -> pd.DataFrame:
    """Pipeline-type opportunities closed in the 24 months before ``cut``."""
    opps = view.opportunities
    return opps[opps["is_closed"].fillna(False).astype(bool) & opps["type"].isin(_PIPELINE_TYPES)
                & (opps["close_date"] <= cut) & (opps["close_date"] > cut - pd.DateOffset(months=24))]


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


def _pipeline(view: Book, cut: pd.Timestamp, lo: int, hi: int, groups: _Groups, win_probability: str,
              scn: Scenario):
    from renewforecast.ledger.schedules import line_schedules

    opps = view.opportunities
    open_ = opps[~opps["is_closed"].fillna(False).astype(bool) & opps["type"].isin(_PIPELINE_TYPES)].copy()
    n_months = hi - lo + 1
    # Probability of winning each open deal.
    stage_p = open_["probability"].astype("float64")
    if win_probability not in ("auto", "history", "stage"):
        raise RenewForecastError("win_probability must be 'auto', 'history' or 'stage'")
    closed = _closed_deals(view, cut)
    by_type, by_stage, overall = _win_rates(view, closed) if win_probability != "stage" else ({}, {}, np.nan)
    if win_probability == "history" and not by_stage:
        raise RenewForecastError("win_probability='history' needs stage history of closed opportunities "
                                 "(OpportunityHistory); use 'stage'")
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
    sched = line_schedules(sub_view) if len(lines) else pd.DataFrame(
        columns=["line_id", "opportunity_id", "schedule_date", "revenue", "source"])
    sched = sched.sort_values(["line_id", "schedule_date"], kind="stable")
    date = sched["schedule_date"].to_numpy(dtype="datetime64[D]")
    if scn.pipeline_slip_months:
        date = _add_months(date, scn.pipeline_slip_months)
    # Each installment is earned evenly until the next one; the last (or only)
    # one over the line's usual gap, or the product's term for a single one.
    line = sched["line_id"].to_numpy(dtype=object)
    same_next = np.r_[line[1:] == line[:-1], False]
    nxt = np.r_[date[1:], np.datetime64("NaT")]
    gap = np.where(same_next, (nxt - date).astype(np.int64), -1)
    gap_s = pd.Series(np.where(gap > 0, gap, np.nan)).groupby(line).transform("median").to_numpy()
    product = sched["line_id"].map(view.opportunity_lines.set_index("line_id")["product_id"])
    term = product.map(view.products.drop_duplicates("product_id").set_index("product_id")
                       ["subscription_term_months"]).to_numpy(dtype="float64")
    term = np.where(np.isfinite(term) & (term > 0), term, 12.0)
    last = np.where(same_next, nxt - 1,
                    np.where(np.isfinite(gap_s), date + np.nan_to_num(gap_s, nan=1).astype(np.int64) - 1,
                             _add_months(date, term.astype(np.int64)) - 1))
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
        agg = closed.assign(m=closed["close_date"].dt.to_period("M"), w=closed["is_won"].astype(float)) \
            .groupby("m")["w"].agg(["mean", "size"])
        rho = _copula_rho(agg["mean"].to_numpy(), agg["size"].to_numpy(dtype="float64"), overall)
    return {"p": q_items, "revenue": revenue, "codes": codes, "rho": rho, "source": source,
            "new_business": is_nb, "details": details}


def _fit_new_business(y: pd.Series, horizon: int, n_sims: int, rng: np.random.Generator):
    """Simulated paths (sims x horizon) of monthly new MRR and the chosen model's name."""
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
            lambda s: ETSModel(s, error="add", trend="add", damped_trend=True), True),
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
            return (np.full((n_sims, horizon), mean), "mean of the last 6 months (no model could be fitted)",
                    float("nan"), None)
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
            sims = res.simulate(nsimulations=horizon, repetitions=int(k), anchor="end",
                                rng=np.random.default_rng(rng.integers(2**63 - 1)))
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


def _new_business(view: Book, cut: pd.Timestamp, lo: int, hi: int, groups: _Groups, n_sims: int,
                  rng: np.random.Generator, pipeline_nb_mean: np.ndarray):
    n_months = hi - lo + 1
    end = last_month_end(cut)
    out = np.zeros((n_sims, len(groups.labels), n_months))
    # Months from the last complete month to each forecast month.
    step0 = lo - _month_no(end)
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
        extra = np.sqrt(np.clip(spread ** 2 - own, 0, None))
        rev = rev * np.exp(rng.standard_normal(n_sims)[:, None] * extra[None, :])
    share = np.ones(1)
    if groups.by is not None:
        by_group = mrr_movements(view, start=end - pd.offsets.MonthEnd(11), end=end, by=(groups.by,))
        amount = (by_group["new"] + by_group["reactivation"]).groupby(
            by_group[groups.by].astype(object).where(by_group[groups.by].notna(), "(none)").astype(str)).sum()
        share = amount.reindex(groups.labels, fill_value=0.0).to_numpy(dtype="float64")
        share = share / share.sum() if share.sum() > 0 else np.full(len(groups.labels), 1 / len(groups.labels))
    for g in range(len(groups.labels)):
        out[:, g, :] = np.clip(share[g] * rev[:, step0 - 1:] - pipeline_nb_mean[g][None, :], 0, None)
    info = {"model": name, "holdout_mae": mae, "one_time_fees_per_new_mrr": fee_ratio,
            "past_log_error_mean_last_month": None if errors is None else float(errors[0][-1]),
            "past_log_error_sd_last_month": None if errors is None else float(errors[1][-1])}
    if groups.by is not None:
        info["shares"] = dict(zip(groups.labels, np.round(share, 4).tolist(), strict=True))
    return out, info


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


def _rolling_log_errors(y: pd.Series, steps: int, point, n_origins: int = 6
                        ) -> tuple[np.ndarray, np.ndarray] | None:
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
        actual = _earned(y.iloc[cut:cut + steps].to_numpy(dtype="float64"))
        errors.append(np.log1p(np.clip(actual, 0, None)) - np.log1p(forecast))
    if len(errors) < 3:
        return None
    return np.mean(errors, axis=0), np.std(errors, axis=0)


# ------------------------------------------------------------------ forecast


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
) -> pd.DataFrame:
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
        Renewal model for the renewal probabilities; without it, each
        segment's historical ARR renewal rate is used.
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

    Returns
    -------
    DataFrame
        Tidy: ``scenario``, ``month`` (month end), ``group``, ``component``
        (``contracted``, ``one_time``, ``usage``, ``renewal``, ``pipeline``,
        ``new_business`` and ``total``), ``mean``, ``p10``, ``p50``, ``p90``. ``attrs`` records how
        each component was built (probability sources, the new-business model,
        the estimated outcome correlations), the renewal and pipeline
        details per contract and deal, and ``horizon_total``: the mean, P10,
        P50 and P90 of the whole horizon's total revenue over the simulations.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=300, seed=3)
    >>> book = rf.load_book(folder)
    >>> fc = rf.revenue_forecast(book, "2026-10-31", horizon_months=6, n_sims=200, random_state=0)
    >>> sorted(fc["component"].unique())
    ['contracted', 'new_business', 'one_time', 'pipeline', 'renewal', 'total', 'usage']
    >>> total = fc[fc["component"] == "total"]
    >>> bool((total["p10"] <= total["p50"]).all() and (total["p50"] <= total["p90"]).all())
    True
    """
    cut = pd.Timestamp(as_of).normalize()
    if not isinstance(horizon_months, (int, np.integer)) or not 1 <= horizon_months <= 120:
        raise RenewForecastError(f"horizon_months must be a whole number from 1 to 120, not {horizon_months!r}")
    if not isinstance(n_sims, (int, np.integer)) or n_sims < 1:
        raise RenewForecastError(f"n_sims must be a positive whole number, not {n_sims!r}")
    scn = _as_scenario(scenario)
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    view = book.as_of(cut)
    lo = _month_no(last_month_end(cut)) + 1
    hi = lo + int(horizon_months) - 1
    groups = _Groups(view, by)
    n_groups, n_months = len(groups.labels), hi - lo + 1

    values = _row_values(view)  # valued once, for the contracted, fee and usage parts
    fixed, ever, ever_rev = _contracted(view, values, lo, hi, groups)
    fees, usage = _fees_and_usage(values, row_amounts(view),
                                  groups.codes(view.subscriptions["account_id"].to_numpy(dtype=object)),
                                  n_groups, lo, hi)
    alive, ever_source = _evergreen_survival(view, ever, cut, lo, hi, evergreen_hazard)
    if renewal_rate is not None and not 0 <= renewal_rate <= 1:
        raise RenewForecastError(f"renewal_rate must be a probability from 0 to 1, not {renewal_rate!r}")
    if evergreen_hazard is not None and not 0 <= evergreen_hazard <= 1:
        raise RenewForecastError(f"evergreen_hazard must be a probability from 0 to 1, not {evergreen_hazard!r}")
    ren = _renewals(view, cut, lo, hi, groups, model, scn, renewal_rate)
    pipe = _pipeline(view, cut, lo, hi, groups, win_probability, scn)

    sims = {c: np.zeros((n_sims, n_groups, n_months)) for c in COMPONENTS}
    sims["contracted"] += fixed[None, :, :]
    sims["one_time"] += fees[None, :, :]
    sims["usage"] += usage[None, :, :]
    if len(ever):
        codes = groups.codes(ever["account_id"].to_numpy(dtype=object))
        for s0 in range(0, n_sims, _CHUNK):
            k = min(_CHUNK, n_sims - s0)
            u = rng.random((len(ever), k))
            for t in range(n_months):
                ok = u < alive[:, [t]]
                for g in range(n_groups):
                    rows = codes == g
                    sims["contracted"][s0:s0 + k, g, t] += ok[rows].T.astype("float64") @ ever_rev[rows, t]
    _simulate_revenue(sims["renewal"], special.ndtri(ren["p"]), ren["rho"], rng, ren["revenue"], ren["codes"],
                      ren["chain_start"])
    _simulate_revenue(sims["pipeline"], special.ndtri(pipe["p"]), pipe["rho"], rng, pipe["revenue"], pipe["codes"])
    nb_info: dict[str, Any] = {}
    if new_business:
        nb_mean = np.zeros((n_groups, n_months))
        rows = pipe["new_business"]
        for g in range(n_groups):
            sel = rows & (pipe["codes"] == g)
            nb_mean[g] = pipe["p"][sel] @ pipe["revenue"][sel]
        with _one_blas_thread():
            sims["new_business"], nb_info = _new_business(view, cut, lo, hi, groups, n_sims, rng, nb_mean)

    out = _summarise(sims, groups.labels, pd.DatetimeIndex(_month_end(np.arange(lo, hi + 1))), scn.name)
    # The range of the horizon's total revenue comes from the simulations
    # themselves: adding up monthly P10s would overstate how bad it can get.
    horizon = sum(sims[c] for c in COMPONENTS).sum(axis=(1, 2))
    out.attrs.update({
        "horizon_total": {"mean": float(horizon.mean()),
                          **{k: float(v) for k, v in zip(("p10", "p50", "p90"), np.quantile(horizon, _QUANTILES), strict=True)}},
        "as_of": cut, "horizon_months": int(horizon_months), "n_sims": int(n_sims),
        "scenario": dataclasses.asdict(scn),
        "renewal_probability": ren["source"], "win_probability": pipe["source"],
        "model_version": getattr(model, "model_version_", None),
        "evergreen": ever_source, "new_business_model": nb_info,
        "renewal_correlation": ren["rho"], "pipeline_correlation": pipe["rho"],
        "renewals": ren["details"], "pipeline": pipe["details"],
    })
    return out


def _summarise(sims: dict[str, np.ndarray], labels: list[str], months: pd.DatetimeIndex, scenario: str):
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
            parts.append(pd.DataFrame({"scenario": scenario, "month": months, "group": label, "component": c,
                                       "mean": mean[g], "p10": q[0, g], "p50": q[1, g], "p90": q[2, g]}))
    out = pd.concat(parts, ignore_index=True)
    order = {c: i for i, c in enumerate((*COMPONENTS, "total"))}
    out["_o"] = out["component"].map(order)
    out = out.sort_values(["group", "_o", "month"], kind="stable").drop(columns="_o").reset_index(drop=True)
    num = ["mean", "p10", "p50", "p90"]
    out[num] = out[num].round(2)
    return out


def forecast_scenario_table(forecasts: list[pd.DataFrame], group: str = "total") -> pd.DataFrame:
    """Compare forecasts of several scenarios: expected revenue and the last month's range.

    Parameters
    ----------
    forecasts : list of DataFrame
        :func:`revenue_forecast` outputs, one per scenario; the first is the
        reference the others are compared with.
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
        t = fc[(fc["component"] == "total") & (fc["group"] == group)].sort_values("month")
        last = t.iloc[-1]
        rows.append({"scenario": str(t["scenario"].iloc[0]), "expected_revenue": round(float(t["mean"].sum()), 2),
                     "last_month": last["month"], "last_month_mean": last["mean"],
                     "last_month_p10": last["p10"], "last_month_p90": last["p90"]})
    out = pd.DataFrame(rows).set_index("scenario")
    base = out["expected_revenue"].iloc[0]
    out.insert(1, "vs_first", (out["expected_revenue"] / base - 1).round(4) if base else np.nan)
    return out
