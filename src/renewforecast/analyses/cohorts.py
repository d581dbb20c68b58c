"""Customer lifetimes from the ledger: durations for survival models, cohort counts for sBG."""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.dates import CENT, last_month_end
from renewforecast.ledger.mrr import mrr_table

__all__ = ["annual_cohorts", "cohort_counts", "cohort_members", "customer_lifetimes"]


def _activity(book: Book, as_of) -> tuple[pd.DataFrame, pd.Timestamp]:
    end = last_month_end(as_of)
    table = mrr_table(book, end=end, by=("account_id",))
    table = table[table["mrr"] > CENT]
    return table, end


def customer_lifetimes(
    book: Book, as_of, *, covariates=("segment", "region", "acquisition_channel", "industry")
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
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
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


def cohort_members(book: Book, as_of) -> pd.DataFrame:
    """Per customer: acquisition year, anniversaries survived, anniversaries its cohort can show.

    Returns
    -------
    DataFrame
        Indexed by ``account_id``: ``cohort`` (year of first revenue),
        ``alive_until`` (last anniversary k at which it was still paying, having
        paid at every earlier one; 0 if it left in its first year) and
        ``observed_until`` (the last anniversary every member of its cohort has
        reached by ``as_of``).
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
    table, end = _activity(book, as_of)
    if table.empty:
        return pd.DataFrame(columns=["cohort", "alive_until", "observed_until"], index=pd.Index([], name="account_id"))
    m = (table["month"].dt.year * 12 + table["month"].dt.month).to_numpy()
    active = set(zip(table["account_id"].to_numpy(), m, strict=True))
    first = pd.Series(m, index=table["account_id"].to_numpy()).groupby(level=0).min()
    end_m = end.year * 12 + end.month
    cohort = (first - 1) // 12
    last_first = first.groupby(cohort).transform("max")
    observed = ((end_m - last_first) // 12).clip(lower=0)
    alive = []
    for acct, m0 in first.items():
        k = 0
        while m0 + 12 * (k + 1) <= end_m and (acct, m0 + 12 * (k + 1)) in active:
            k += 1
        alive.append(k)
    out = pd.DataFrame(
        {"cohort": cohort.astype(int), "alive_until": alive, "observed_until": observed.astype(int)}, index=first.index
    )
    out["alive_until"] = np.minimum(out["alive_until"], out["observed_until"])
    out.index.name = "account_id"
    return out


def cohort_counts(members: pd.DataFrame) -> pd.DataFrame:
    """Alive counts per cohort and anniversary from :func:`cohort_members` rows."""
    rows = []
    for cohort, group in members.groupby("cohort"):
        horizon = int(group["observed_until"].iloc[0])
        alive = group["alive_until"].to_numpy()
        for k in range(horizon + 1):
            rows.append((cohort, k, int((alive >= k).sum())))
    return pd.DataFrame(rows, columns=["cohort", "period", "alive"])


def annual_cohorts(book: Book, as_of, *, by: str | None = None) -> pd.DataFrame:
    """Customers of each acquisition year still paying at each anniversary.

    A customer is alive at year ``k`` if it paid at the month end of every
    anniversary up to ``k`` (returning customers do not come back to life),
    the contractual setting of the shifted-beta-geometric model. A cohort's
    counts stop at the last anniversary all its members have reached by
    ``as_of``.

    Returns
    -------
    DataFrame
        Long: ``cohort`` (acquisition year), ``period`` (years since), ``alive``,
        and the ``by`` column when given.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.annual_cohorts(rf.Book.empty(), "2024-12-31").empty
    True
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
    members = cohort_members(book, as_of)
    if members.empty:
        return pd.DataFrame(columns=["cohort", "period", "alive"])
    if not by:
        return cohort_counts(members)
    attrs = book.accounts.drop_duplicates("account_id").set_index("account_id")[by]
    members[by] = members.index.map(attrs)
    parts = [cohort_counts(g).assign(**{by: name}) for name, g in members.groupby(by)]
    return pd.concat(parts, ignore_index=True)[[by, "cohort", "period", "alive"]]
