"""Customer lifetimes from the ledger: durations for survival models, cohort counts for sBG."""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.revenue import last_month_end, mrr_table

__all__ = ["annual_cohorts", "customer_lifetimes"]

_CENT = 0.005


def _activity(book: Book, as_of) -> tuple[pd.DataFrame, pd.Timestamp]:
    end = last_month_end(as_of)
    table = mrr_table(book, end=end, by=("account_id",))
    table = table[table["mrr"] > _CENT]
    return table, end


def customer_lifetimes(book: Book, as_of, *, covariates=("segment", "region", "acquisition_channel", "industry")
                       ) -> pd.DataFrame:
    """Each customer's first paying spell, in months, for survival models.

    A spell runs from the first month end with MRR to the last month end
    before a month end without it; a customer still paying at the last
    complete month end before ``as_of`` is censored.

    Returns
    -------
    DataFrame
        Indexed by ``account_id``: ``duration`` (months paid, at least 1),
        ``event`` (1 churned, 0 still paying), ``start`` (first month end),
        ``initial_mrr``, ``log_initial_mrr`` and the account ``covariates``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.customer_lifetimes(rf.Book.empty(), "2024-12-31").empty
    True
    """
    table, end = _activity(book, as_of)
    cols = ["duration", "event", "start", "initial_mrr", "log_initial_mrr", *covariates]
    if table.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="account_id"))
    m = table["month"].dt.year * 12 + table["month"].dt.month
    table = table.assign(m=m.to_numpy()).sort_values(["account_id", "m"])
    first = table.groupby("account_id")["m"].transform("min")
    # the first spell: months that follow one another without a gap from the first month
    step = table.groupby("account_id")["m"].diff().fillna(1)
    broken = step.ne(1).groupby(table["account_id"]).cumsum()
    spell = table[broken == 0]
    agg = spell.groupby("account_id").agg(first_m=("m", "min"), last_m=("m", "max"), start=("month", "min"))
    initial = table[table["m"] == first].groupby("account_id")["mrr"].first()
    end_m = end.year * 12 + end.month
    out = pd.DataFrame(index=agg.index)
    out["duration"] = (agg["last_m"] - agg["first_m"] + 1).astype(float)
    out["event"] = (agg["last_m"] < end_m).astype(int)
    out["start"] = agg["start"]
    out["initial_mrr"] = initial.reindex(out.index)
    out["log_initial_mrr"] = np.log1p(out["initial_mrr"].clip(lower=0))
    attrs = book.accounts.drop_duplicates("account_id").set_index("account_id")
    for c in covariates:
        out[c] = out.index.map(attrs[c]).astype(object)
    out.index.name = "account_id"
    return out[cols]


def annual_cohorts(book: Book, as_of, *, by: str | None = None) -> pd.DataFrame:
    """Customers of each acquisition year still paying at each anniversary.

    A customer is alive at year ``k`` if it paid at the month end of every
    anniversary up to ``k`` (returning customers do not come back to life),
    the contractual setting of the shifted-beta-geometric model. Only
    anniversaries reached by ``as_of`` are counted.

    Returns
    -------
    DataFrame
        Long: ``cohort`` (acquisition year), ``period`` (years since), ``alive``,
        and the ``by`` column when given.
    """
    table, end = _activity(book, as_of)
    if table.empty:
        return pd.DataFrame(columns=["cohort", "period", "alive"])
    m = table["month"].dt.year * 12 + table["month"].dt.month
    table = table.assign(m=m.to_numpy())
    first = table.groupby("account_id")["m"].min()
    active = set(zip(table["account_id"], table["m"], strict=True))
    end_m = end.year * 12 + end.month
    rows = []
    attrs = book.accounts.drop_duplicates("account_id").set_index("account_id")
    for acct, m0 in first.items():
        cohort = (m0 - 1) // 12
        k = 0
        while m0 + 12 * k <= end_m:
            if k > 0 and (acct, m0 + 12 * k) not in active:
                break
            rows.append((cohort, k, acct))
            k += 1
        # reached anniversaries where the customer had left: counted as not alive
    frame = pd.DataFrame(rows, columns=["cohort", "period", "account_id"])
    # A cohort's counts stop at the last anniversary every member could reach.
    reach = first.groupby((first - 1) // 12).max().rename("last_first")
    frame = frame.join(reach, on="cohort")
    frame = frame[frame["last_first"] + 12 * frame["period"] <= end_m]
    keys = ["cohort", "period"]
    if by:
        frame[by] = frame["account_id"].map(attrs[by])
        keys = [by, *keys]
    out = frame.groupby(keys).size().rename("alive").reset_index()
    return out
