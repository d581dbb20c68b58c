"""Growth and renewal KPIs: retention (NRR, GRR, logos, churn, quick ratio),
renewal rates and their decomposition, cohorts, and the renewal worklist.

Definitions follow the sources in ``docs/metrics.md``; where authorities
disagree the choice is a documented option.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.dates import CENT, last_month_end
from renewforecast.ledger.mrr import MOVEMENTS, mrr_movements, mrr_table

# Which contract renewed is a fact of the ledger; the KPIs below count it.
from renewforecast.ledger.renewals import renewal_decisions, renewal_opportunities
from renewforecast.ledger.valuation import contract_arr_on

__all__ = [
    "cohort_retention",
    "renewal_kpis",
    "renewal_worklist",
    "retention_kpis",
]


def _account_attr(book: Book, ids: pd.Series, column: str) -> pd.Series:
    attrs = book.accounts.drop_duplicates("account_id").set_index("account_id")[column]
    return ids.map(attrs)


def _safe_ratio(num: float, den: float) -> float:
    return float(num / den) if den > CENT else float("nan")


def retention_kpis(
    book: Book,
    as_of,
    by: str | list[str] | None = None,
    *,
    months: int = 12,
    include_reactivation_in_quick_ratio: bool = False,
    customer: str = "account",
) -> pd.DataFrame:
    """Net and gross revenue retention, logo retention, revenue churn and quick ratio.

    Parameters
    ----------
    book : Book
    as_of : date-like
        Measured at the last month end on or before this date.
    by : str or list of str, optional
        Account columns to group by (``"segment"``); a customer belongs to
        its group as the accounts table says today.
    months : int, default 12
        Length of the window.
    include_reactivation_in_quick_ratio : bool, default False
        The original quick ratio (Mamoon Hamid) is (new + expansion) /
        (churn + contraction); some tools add reactivation to the numerator.
    customer : {"account", "ultimate_parent"}, default "account"
        Who a customer is: each account, or each account hierarchy (see
        :func:`renewforecast.mrr_movements`).

    Returns
    -------
    DataFrame
        One row per group with:

        - ``nrr``, ``grr``: cohort form. The customers with MRR at the base
          month end (``months`` before): NRR = their MRR now / their MRR then;
          GRR = sum of min(now, then) / sum of then. New customers are
          excluded; GRR <= 1 and GRR <= NRR always.
        - ``nrr_period``, ``grr_period``: period form, the product of the
          monthly ratios (start + expansion - contraction - churn) / start
          (GRR without expansion). Differs from the cohort form because paths
          inside the year differ.
        - ``logo_retention``: base customers still paying now / base customers.
        - ``gross_revenue_churn`` = (churn + contraction) / base MRR and
          ``net_revenue_churn`` = (churn + contraction - expansion -
          reactivation) / base MRR, over the window.
        - ``quick_ratio``: (new + expansion [+ reactivation]) / (churn +
          contraction) over the window; infinite when nothing was lost.
        - ``base_mrr``, ``current_mrr``, ``base_customers``,
          ``retained_customers``, ``base_month``, ``month``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.retention_kpis(rf.Book.empty(), as_of="2024-12-31").columns.tolist()[:2]
    ['month', 'base_month']
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
    end = last_month_end(as_of)
    base = end - pd.offsets.MonthEnd(months)
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    table = mrr_table(book, start=base, end=end, by=("account_id",), customer=customer)
    now = table[table["month"] == end].set_index("account_id")["mrr"]
    then = table[table["month"] == base].set_index("account_id")["mrr"]
    then = then[then.abs() > CENT]
    now = now[now.abs() > CENT]
    cohort = pd.DataFrame({"base": then}).join(now.rename("current"), how="left").fillna({"current": 0.0})
    cohort["floor"] = np.minimum(cohort["base"], cohort["current"])
    cohort["kept"] = cohort["current"] > CENT
    moves = mrr_movements(book, start=base + pd.offsets.MonthEnd(1), end=end, customer=customer)
    moves = moves[(moves["month"] > base) & (moves["month"] <= end)]
    for k in keys:
        cohort[k] = _account_attr(book, cohort.index.to_series(), k).to_numpy()
        moves[k] = _account_attr(book, moves["account_id"], k).to_numpy()
    if keys:
        by_cohort = {tuple(k): g for k, g in cohort.groupby(keys)}
        by_moves = {tuple(k): g for k, g in moves.groupby(keys)}
        groups = [
            (name, by_cohort.get(name, cohort.iloc[:0]), by_moves.get(name, moves.iloc[:0]))
            for name in sorted(set(by_cohort) | set(by_moves))
        ]
    else:
        groups = [((), cohort, moves)]
    rows = []
    for name, c, mv in groups:
        monthly = mv.groupby("month")[["start_mrr", *MOVEMENTS, "end_mrr"]].sum()
        sums = monthly.sum()
        start_m = monthly["start_mrr"].where(monthly["start_mrr"] > CENT)
        nrr_m = (monthly["start_mrr"] + monthly["expansion"] - monthly["contraction"] - monthly["churn"]) / start_m
        grr_m = (monthly["start_mrr"] - monthly["contraction"] - monthly["churn"]) / start_m
        base_mrr = float(c["base"].sum())
        lost = float(sums.get("churn", 0.0) + sums.get("contraction", 0.0))
        gained = float(
            sums.get("new", 0.0)
            + sums.get("expansion", 0.0)
            + (sums.get("reactivation", 0.0) if include_reactivation_in_quick_ratio else 0.0)
        )
        row = dict(zip(keys, name, strict=True))
        row.update(
            {
                "month": end,
                "base_month": base,
                "base_customers": len(c),
                "retained_customers": int(c["kept"].sum()),
                "base_mrr": base_mrr,
                "current_mrr": float(c["current"].sum()),
                "nrr": _safe_ratio(c["current"].sum(), base_mrr),
                "grr": _safe_ratio(c["floor"].sum(), base_mrr),
                "nrr_period": float(nrr_m.prod()) if nrr_m.notna().all() and len(nrr_m) else float("nan"),
                "grr_period": float(grr_m.prod()) if grr_m.notna().all() and len(grr_m) else float("nan"),
                "logo_retention": _safe_ratio(c["kept"].sum(), len(c)),
                "gross_revenue_churn": _safe_ratio(lost, base_mrr),
                "net_revenue_churn": _safe_ratio(
                    lost - sums.get("expansion", 0.0) - sums.get("reactivation", 0.0), base_mrr
                ),
                "quick_ratio": (gained / lost) if lost > CENT else (float("inf") if gained > CENT else float("nan")),
            }
        )
        rows.append(row)
    cols = ["month", "base_month", *keys]
    out = pd.DataFrame(rows)
    if out.empty:
        # No customer a year before (an early as-of): the table keeps every
        # column, so a report shows "not defined yet" rather than failing.
        out = pd.DataFrame(
            columns=[
                *cols,
                "base_customers",
                "retained_customers",
                "base_mrr",
                "current_mrr",
                "nrr",
                "grr",
                "nrr_period",
                "grr_period",
                "logo_retention",
                "gross_revenue_churn",
                "net_revenue_churn",
                "quick_ratio",
            ]
        )
    return out[cols + [c for c in out.columns if c not in cols]]


# ------------------------------------------------------------------ renewals


def renewal_kpis(
    book: Book,
    start,
    end,
    by: str | list[str] | None = None,
    *,
    freq: str | None = None,
    as_of=None,
    decisions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Renewal rates over the contracts available to renew in a window.

    A contract is *available to renew* when its end date falls in
    [``start``, ``end``]; a multi-year contract at a mid-term anniversary is
    not. Open decisions are counted and reported, never guessed.

    Parameters
    ----------
    book : Book
    start, end : date-like
        The window of end dates.
    by : str or list of str, optional
        Account columns to group by.
    freq : {"M", "Q", "Y"}, optional
        Also split the window by the period of the end date.
    as_of : date-like, optional
        What was known when (default: everything in the Book).
    decisions : DataFrame, optional
        :func:`renewal_decisions` of ``book`` as of ``as_of``, when already
        computed: a report that shows renewal rates over several windows
        decides each contract once and counts it in each.

    Returns
    -------
    DataFrame
        Per group: ``due`` (contracts available to renew), ``decided``,
        ``renewed``, ``churned`` (lost or lapsed), ``terminated`` (ended early),
        ``open``; ``due_arr``, ``decided_arr``, ``renewed_prior_arr``,
        ``renewed_arr``; and the rates

        - ``renewal_rate_count`` = renewed / decided;
        - ``renewal_rate_gross_arr`` = sum over renewed of min(renewed ARR,
          prior ARR) / prior ARR decided (expansion at renewal excluded);
        - ``renewal_rate_net_arr`` = renewed ARR / prior ARR decided
          (expansion and price changes at renewal included);
        - ``resolution_rate`` = decided / due;
        - ``close_rate`` = renewed / decided;
        - ``conversion_rate`` = renewed ARR / prior ARR of the renewed
          contracts (can exceed 100 %).

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.renewal_kpis(rf.Book.empty(), "2024-01-01", "2024-12-31")["due"].tolist()
    [0]
    """
    if decisions is None:
        if as_of is None and book.data_end is None:
            as_of = end  # an empty Book: nothing is known, nothing is due
        decisions = renewal_decisions(book, as_of)
    dec = decisions
    lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    dec = dec[(dec["end_date"] >= lo) & (dec["end_date"] <= hi)].copy()
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    for k in keys:
        dec[k] = _account_attr(book, dec["account_id"], k).to_numpy()
    if freq:
        dec["period"] = dec["end_date"].dt.to_period(freq).astype(str)
        keys = ["period", *keys]
    dec["is_decided"] = dec["outcome"] != "open"
    dec["is_renewed"] = dec["outcome"] == "renewed"
    dec["decided_arr"] = dec["prior_arr"].where(dec["is_decided"], 0.0)
    dec["renewed_prior_arr"] = dec["prior_arr"].where(dec["is_renewed"], 0.0)
    dec["gross"] = np.minimum(dec["renewed_arr"], dec["prior_arr"]).where(dec["is_renewed"], 0.0)

    def summarise(g: pd.DataFrame) -> pd.Series:
        decided, renewed = int(g["is_decided"].sum()), int(g["is_renewed"].sum())
        s = {
            "due": len(g),
            "decided": decided,
            "renewed": renewed,
            "churned": int((g["outcome"] == "churned").sum()),
            "terminated": int((g["outcome"] == "terminated").sum()),
            "open": int((g["outcome"] == "open").sum()),
            "due_arr": g["prior_arr"].sum(),
            "decided_arr": g["decided_arr"].sum(),
            "renewed_prior_arr": g["renewed_prior_arr"].sum(),
            "renewed_arr": g["renewed_arr"].sum(),
        }
        s["renewal_rate_count"] = renewed / decided if decided else np.nan
        s["renewal_rate_gross_arr"] = _safe_ratio(g["gross"].sum(), s["decided_arr"])
        s["renewal_rate_net_arr"] = _safe_ratio(s["renewed_arr"], s["decided_arr"])
        s["resolution_rate"] = decided / len(g) if len(g) else np.nan
        s["close_rate"] = s["renewal_rate_count"]
        s["conversion_rate"] = _safe_ratio(s["renewed_arr"], s["renewed_prior_arr"])
        return pd.Series(s)

    if not keys:
        return pd.DataFrame([summarise(dec).to_dict()]).astype(
            dict.fromkeys(("due", "decided", "renewed", "churned", "terminated", "open"), "int64")
        )
    if dec.empty:
        # Nothing came up for renewal in the window: no rows, every column.
        out = pd.DataFrame(columns=[*keys, *summarise(dec).index])
    else:
        out = dec.groupby(keys, dropna=False, sort=True).apply(summarise, include_groups=False).reset_index()
    return out.astype(dict.fromkeys(("due", "decided", "renewed", "churned", "terminated", "open"), "int64"))


def renewal_worklist(
    book: Book, as_of, horizon_days: int = 180, *, outreach_days: dict[str, int] | int | None = None
) -> pd.DataFrame:
    """Contracts ending within the horizon that the renewal team must work now.

    Parameters
    ----------
    book : Book
    as_of : date-like
        Today, for the team. Only what was known then is used.
    horizon_days : int, default 180
        Contracts ending after ``as_of`` and within this many days.
    outreach_days : int or dict, optional
        Days before the end date by which outreach must start. Default 90,
        and 120 for Enterprise and Government accounts. A dict maps segment
        to days (key ``"default"`` for the rest).

    Returns
    -------
    DataFrame
        One row per contract, soonest outreach deadline first: ``contract_id``,
        ``account_id``, ``account_name``, ``segment``, ``end_date``,
        ``days_to_end``, ``arr``, ``outreach_deadline``,
        ``renewal_opportunity_id``, ``stage``, ``probability``, and flags
        ``no_renewal_opportunity``, ``outreach_deadline_passed``,
        ``decrease_or_termination_booked``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.renewal_worklist(rf.Book.empty(), "2024-06-30").empty
    True
    """
    cut = pd.Timestamp(as_of).normalize()
    view = book.as_of(cut)
    rules = {"default": 90, "Enterprise": 120, "Government": 120}
    if isinstance(outreach_days, int):
        rules = {"default": outreach_days}
    elif outreach_days:
        rules.update(outreach_days)
    con = view.contracts
    con = con[
        ~con["evergreen"].fillna(False).astype(bool)
        & (con["end_date"] > cut)
        & (con["end_date"] <= cut + pd.Timedelta(days=horizon_days))
    ]
    out = con[["contract_id", "account_id", "end_date"]].copy()
    out["account_name"] = _account_attr(view, out["account_id"], "name").to_numpy()
    out["segment"] = _account_attr(view, out["account_id"], "segment").to_numpy()
    gov = _account_attr(view, out["account_id"], "is_government").fillna(False).astype(bool).to_numpy()
    out["days_to_end"] = (out["end_date"] - cut).dt.days
    out["arr"] = contract_arr_on(view, out["contract_id"], pd.Series(cut, index=out.index)) if len(out) else []
    lead = out["segment"].map(rules).fillna(rules["default"])
    lead = np.where(gov, np.maximum(lead, rules.get("Government", rules["default"])), lead)
    out["outreach_deadline"] = out["end_date"] - pd.to_timedelta(lead, unit="D")
    # A contract terminated before today has nothing left to renew.
    gone_ids = set(view.subscriptions.loc[view.subscriptions["terminated_date"] <= cut, "contract_id"])
    out = out[~(out["contract_id"].isin(gone_ids) & (out["arr"].abs() <= CENT))]
    opps = renewal_opportunities(view)
    out["renewal_opportunity_id"] = out["contract_id"].map(opps["opportunity_id"])
    out["stage"] = out["contract_id"].map(opps["stage"])
    out["probability"] = out["contract_id"].map(opps["probability"])
    out["no_renewal_opportunity"] = out["renewal_opportunity_id"].isna()
    out["outreach_deadline_passed"] = out["outreach_deadline"] <= cut
    subs = view.subscriptions
    down = subs[(subs["quantity"] < 0) | subs["terminated_date"].notna()]
    out["decrease_or_termination_booked"] = out["contract_id"].isin(set(down["contract_id"]))
    out = out.sort_values(["outreach_deadline", "arr"], ascending=[True, False], kind="stable")
    cols = [
        "contract_id",
        "account_id",
        "account_name",
        "segment",
        "end_date",
        "days_to_end",
        "arr",
        "outreach_deadline",
        "renewal_opportunity_id",
        "stage",
        "probability",
        "no_renewal_opportunity",
        "outreach_deadline_passed",
        "decrease_or_termination_booked",
    ]
    return out[cols].reset_index(drop=True)


def cohort_retention(book: Book, as_of=None, *, freq: str = "Q") -> pd.DataFrame:
    """Net MRR retention of acquisition cohorts, period by period.

    Customers are grouped by the period of their first month with MRR;
    each later period's MRR of the cohort (month-end of the period, returning
    customers included) is divided by the cohort's MRR at the end of its
    first period.

    Returns
    -------
    DataFrame
        Long: ``cohort``, ``period`` (0 is the acquisition period),
        ``customers``, ``mrr``, ``retention``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.cohort_retention(rf.Book.empty(), "2024-12-31").empty
    True
    """
    # as_of means what was known at the end of that day, in every engine.
    if as_of is not None:
        book = book.as_of(as_of)
    table = mrr_table(book, end=as_of, by=("account_id",))
    table = table[table["mrr"].abs() > CENT]
    if table.empty:
        return pd.DataFrame(columns=["cohort", "period", "customers", "mrr", "retention"])
    table["p"] = table["month"].dt.to_period(freq)
    # Measure each period at its last month end only.
    last = table.groupby("p")["month"].transform("max")
    first_p = table.groupby("account_id")["p"].transform("min")
    snap = table[table["month"] == last].copy()
    snap["cohort"] = first_p[snap.index]
    snap["period"] = (snap["p"] - snap["cohort"]).apply(lambda x: x.n)
    agg = snap.groupby(["cohort", "period"]).agg(customers=("account_id", "nunique"), mrr=("mrr", "sum")).reset_index()
    base = agg[agg["period"] == 0].set_index("cohort")["mrr"]
    agg["retention"] = agg["mrr"] / agg["cohort"].map(base)
    agg["cohort"] = agg["cohort"].astype(str)
    return agg
