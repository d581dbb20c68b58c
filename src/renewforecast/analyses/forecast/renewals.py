"""Renewals: every fixed-term contract that ends inside the horizon and is still open renews with its probability.

The probability is the one given (``renewal_probabilities``, for example
:func:`renewforecast.score_contracts` output), the renewal model's, or the
historical renewal rate of the contract's segment. A contract renews for a
term like its last one, at the price of its open renewal quote when there is
one, else its ARR on its last day times its pricing method's historical
renewal ratio (with its contractual uplift for the ``uplift`` method).
Renewals of renewals inside the horizon count too, each with the same
probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast.groups import Groups, Horizon
from renewforecast.analyses.forecast.scenarios import Scenario
from renewforecast.analyses.forecast.simulation import copula_rho
from renewforecast.analyses.saas_metrics import renewal_kpis
from renewforecast.analyses.scoring import score_contracts
from renewforecast.book import Book
from renewforecast.dates import add_months
from renewforecast.exceptions import RenewForecastError
from renewforecast.ledger.recognition import month_fractions, spread_over_months
from renewforecast.ledger.renewals import renewal_decisions, renewal_opportunities

__all__ = ["HistoricalRenewalRate", "RenewalStages", "as_probabilities", "renewal_stages"]

_MIN_DECISIONS = 30  # fewer past decisions than this: use the portfolio rate
_HISTORY_MONTHS = 24  # renewal decisions this far back set the rates, ratios and correlation


@dataclass(frozen=True)
class HistoricalRenewalRate:
    """The renewal rate of the contracts decided in the 24 months before the forecast date.

    It is the KPI report's renewal rate by count (renewed / decided, the
    close rate of :func:`renewforecast.renewal_kpis` over contracts whose
    end date falls in the window), computed by that function. Contracts
    without a probability of their own (no model, or not scored) renew with
    their segment's rate when the segment has at least 30 decisions, else
    with ``overall``.

    Attributes
    ----------
    overall : float
        The rate over every decision in the window (NaN without decisions).
    by_segment : dict
        Segment -> rate, for segments with at least 30 decisions.
    decisions : int
        Decisions in the window.
    start, end : Timestamp
        The window of end dates.
    definition : str
        Which rate it is, in words.

    Examples
    --------
    >>> import pandas as pd
    >>> r = HistoricalRenewalRate(0.85, {}, 120, pd.Timestamp("2024-11-01"), pd.Timestamp("2026-10-31"), "...")
    >>> r.overall
    0.85
    """

    overall: float
    by_segment: dict = field(default_factory=dict)
    decisions: int = 0
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    definition: str = ""


@dataclass(frozen=True, eq=False)
class RenewalStages:
    """Renewal stage rows (one per renewal of a contract inside the horizon) ready to simulate.

    Attributes
    ----------
    probability : ndarray
        Probability of each stage row (a contract's probability, scenario applied).
    chain_start : ndarray
        First row of each row's chain: a later renewal only counts when the earlier ones happened.
    revenue : ndarray
        Rows x months: each row's revenue in each forecast month.
    codes : ndarray
        Group number of each row.
    correlation : float
        The copula correlation of renewal outcomes.
    source : str
        Where the probabilities came from.
    contracts : DataFrame
        One row per contract up for renewal: ``contract_id``, ``account_id``,
        ``end_date``, ``prior_arr``, ``renewal_arr``, ``probability``
        (scenario applied).
    probabilities : Series
        Each contract's renewal probability before the scenario, by ``contract_id``.
    historical_rate : HistoricalRenewalRate
    """

    probability: np.ndarray
    chain_start: np.ndarray
    revenue: np.ndarray
    codes: np.ndarray
    correlation: float
    source: str
    contracts: pd.DataFrame
    probabilities: pd.Series
    historical_rate: HistoricalRenewalRate


def as_probabilities(probabilities: pd.Series | pd.DataFrame) -> tuple[pd.Series, str | None]:
    """Per-contract renewal probabilities by ``contract_id``, and the model version that made them if known.

    Takes a Series indexed by contract id, or a frame with ``contract_id`` and
    ``renewal_probability`` columns (:func:`renewforecast.score_contracts`
    output, whose ``model_version`` is kept).

    Examples
    --------
    >>> import pandas as pd
    >>> s, version = as_probabilities(pd.DataFrame({"contract_id": ["c1"], "renewal_probability": [0.9],
    ...                                             "model_version": ["v1"]}))
    >>> s.to_dict(), version
    ({'c1': 0.9}, 'v1')
    """
    version = None
    if isinstance(probabilities, pd.DataFrame):
        missing = {"contract_id", "renewal_probability"} - set(probabilities.columns)
        if missing:
            raise RenewForecastError(
                "renewal_probabilities needs the columns contract_id and renewal_probability "
                f"(missing {', '.join(sorted(missing))})"
            )
        if "model_version" in probabilities.columns:
            versions = probabilities["model_version"].dropna().unique()
            version = str(versions[0]) if len(versions) == 1 else None
        series = probabilities.set_index("contract_id")["renewal_probability"]
    elif isinstance(probabilities, pd.Series):
        series = probabilities
    else:
        raise RenewForecastError(
            "renewal_probabilities must be a Series by contract_id or a frame with "
            f"contract_id and renewal_probability, not {type(probabilities).__name__}"
        )
    try:
        series = series.astype("float64")
    except (TypeError, ValueError) as exc:
        raise RenewForecastError(f"renewal_probabilities must be numbers: {exc}") from None
    if series.index.has_duplicates:
        raise RenewForecastError("renewal_probabilities has more than one probability for a contract")
    bad = series.notna() & ~series.between(0.0, 1.0)
    if bad.any():
        raise RenewForecastError(f"renewal_probabilities must be from 0 to 1 ({int(bad.sum())} are not)")
    series.index = series.index.astype(object).map(str)
    return series.rename("renewal_probability"), version


def _renewal_decisions(view: Book, cut: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every contract's renewal decision, and those renewed or lost in the 24 months before ``cut`` (for prices)."""
    # A view already cut back to the as-of date is not cut again (the costliest step).
    dec = renewal_decisions(view) if view.known_as_of == cut else renewal_decisions(view, cut)
    recent = dec[
        dec["outcome"].isin(["renewed", "churned"])
        & (dec["end_date"] <= cut)
        & (dec["end_date"] > cut - pd.DateOffset(months=_HISTORY_MONTHS))
        & (dec["prior_arr"] > 0)
    ].copy()
    return dec, recent


#: The renewal rate of the KPI report (a column of :func:`renewforecast.renewal_kpis`) that contracts
#: without a probability of their own renew with: renewed / decided, the probability that a contract
#: coming up for renewal renews. The ARR rates would count price changes at renewal a second time
#: (the renewal price carries them), and the count keeps the copula's binomial chance variance exact.
_RATE_KPI = "renewal_rate_count"
_RATE_DEFINITION = "renewal rate by count (renewed / decided, the close rate)"


def _history_window(cut: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """End dates of the decisions the rates learn from: the 24 months up to the forecast date."""
    return cut - pd.DateOffset(months=_HISTORY_MONTHS) + pd.Timedelta(days=1), cut


def _kpis(view: Book, decisions: pd.DataFrame, cut: pd.Timestamp, **options) -> pd.DataFrame:
    """The KPI report's renewal rates over the window, from the decisions the forecast already has."""
    start, end = _history_window(cut)
    return renewal_kpis(view, start, end, decisions=decisions, **options)


def _historical_rate(view: Book, decisions: pd.DataFrame, cut: pd.Timestamp) -> HistoricalRenewalRate:
    """The KPI report's renewal rate over the window, overall and by segment (segments with enough decisions)."""
    overall = _kpis(view, decisions, cut).iloc[0]
    by_seg = {}
    if "segment" in view.accounts.columns:
        for _, row in _kpis(view, decisions, cut, by="segment").iterrows():
            if row["decided"] >= _MIN_DECISIONS and np.isfinite(row[_RATE_KPI]) and pd.notna(row["segment"]):
                by_seg[row["segment"]] = float(row[_RATE_KPI])
    start, end = _history_window(cut)
    return HistoricalRenewalRate(
        overall=float(overall[_RATE_KPI]),
        by_segment=by_seg,
        decisions=int(overall["decided"]),
        start=start,
        end=end,
        definition=_RATE_DEFINITION,
    )


def renewal_stages(
    view: Book,
    horizon: Horizon,
    groups: Groups,
    scn: Scenario,
    *,
    model=None,
    probabilities: pd.Series | None = None,
    probabilities_version: str | None = None,
    renewal_rate: float | None = None,
) -> RenewalStages:
    """Renewals inside the horizon of the point-in-time ``view``: their probabilities, prices and revenue."""
    cut, lo, hi = horizon.as_of, horizon.first, horizon.last
    dec, recent = _renewal_decisions(view, cut)
    horizon_end = horizon.last_day
    forecast_start = horizon.first_day
    open_ = dec[
        (dec["outcome"] == "open") & (dec["prior_arr"] > 0) & (dec["end_date"] <= pd.Timestamp(horizon_end))
    ].copy()
    accounts = view.accounts.drop_duplicates("account_id").set_index("account_id")
    seg_of = accounts["segment"] if "segment" in accounts else pd.Series(dtype=object)

    # Probability: the one given, the model's, or the recent renewal rate of the segment.
    renewed = recent["outcome"] == "renewed"
    hist = _historical_rate(view, dec, cut)
    open_["segment"] = open_["account_id"].map(seg_of).astype(object)
    hist_p = open_["segment"].map(hist.by_segment).fillna(hist.overall).to_numpy(dtype="float64")
    if model is not None and probabilities is None and renewal_rate is None:
        probabilities = score_contracts(view, model, as_of=cut).set_index("contract_id")["renewal_probability"]
        version = getattr(model, "model_version_", None) if not isinstance(model, str) else model
        probabilities_version = version or "unsaved"
    if renewal_rate is not None:
        p = np.full(len(open_), float(renewal_rate))
        source = f"a fixed renewal probability of {renewal_rate:.1%} (given)"
    elif probabilities is not None:
        p = open_["contract_id"].map(probabilities).to_numpy(dtype="float64")
        # Contracts past their end with the decision still open are not scored: the base rate.
        p = np.where(np.isfinite(p), p, hist_p)
        if not np.isfinite(p).all():
            raise RenewForecastError(
                f"{int((~np.isfinite(p)).sum())} contract(s) up for renewal have no renewal probability and there "
                f"are no renewal decisions in the 24 months before {cut.date()} to estimate a rate from"
            )
        source = (
            f"renewal model ({probabilities_version})"
            if probabilities_version
            else f"renewal probabilities given ({int(probabilities.notna().sum()):,} contracts)"
        )
    elif len(open_) and not np.isfinite(hist.overall):
        raise RenewForecastError(
            f"no renewal decisions in the 24 months before {cut.date()} to estimate renewal rates from: "
            "pass a renewal model, renewal_probabilities or a renewal_rate"
        )
    else:
        p = hist_p
        source = (
            f"historical {hist.definition} over the last 24 months ({hist.overall:.1%} overall"
            + (", by segment" if hist.by_segment else "")
            + f"; {hist.decisions} decisions)"
        )
    base_p = pd.Series(p, index=open_["contract_id"].to_numpy(), name="renewal_probability", dtype="float64")
    base_p.index.name = "contract_id"
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
    ratios = {
        m: float(g["renewed_arr"].sum() / g["base"].sum())
        for m, g in rc.groupby("method")
        if len(g) >= _MIN_DECISIONS and g["base"].sum() > 0
    }
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
    months_between = (end + 1).astype("datetime64[M]").astype(np.int64) - start.astype("datetime64[M]").astype(np.int64)
    term = np.where(np.isfinite(term) & (term >= 1), term, np.maximum(months_between, 1)).astype(np.int64)
    rows_c, rows_s, rows_e, rows_j = [], [], [], []
    s = end + 1
    idx = np.arange(len(open_))
    j = 0
    while len(idx):
        e = add_months(s, term[idx]) - 1
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
    keep, mf, ml, ff, fl = month_fractions(s_clip, e_all, lo, hi)
    revenue = np.zeros((len(c), hi - lo + 1))
    if keep.any():
        n_keep = int(keep.sum())
        part = spread_over_months(np.arange(n_keep), mf, ml, ff, fl, (arr / 12.0)[c][keep], n_keep, lo, hi)
        revenue[keep] = part
    codes = groups.codes(open_["account_id"].to_numpy(dtype=object)[c])
    details = open_.assign(probability=p, renewal_arr=arr)[
        ["contract_id", "account_id", "end_date", "prior_arr", "renewal_arr", "probability"]
    ]
    return RenewalStages(
        probability=p[c],
        chain_start=chain_start,
        revenue=revenue,
        codes=codes,
        correlation=_correlation(view, dec, hist) if renewal_rate is None else 0.0,
        source=source,
        contracts=details,
        probabilities=base_p,
        historical_rate=hist,
    )


def _correlation(view: Book, decisions: pd.DataFrame, hist: HistoricalRenewalRate) -> float:
    """Correlation of outcomes from how much the monthly renewal rate varied beyond chance."""
    if not hist.decisions:
        return 0.0
    monthly = _kpis(view, decisions, hist.end, freq="M")
    return copula_rho(
        monthly[_RATE_KPI].to_numpy(dtype="float64"), monthly["decided"].to_numpy(dtype="float64"), hist.overall
    )
