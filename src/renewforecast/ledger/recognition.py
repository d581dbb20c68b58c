"""Recognised revenue: subscription revenue earned day by day and summed into calendar months.

A recurring row earns its MRR spread evenly over the days of each month it
counts in (by the valuation rules of :mod:`renewforecast.ledger.valuation`);
a usage row earns its booked value the same way, as usage; a one-time fee
is earned whole in the month it starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.dates import days_in_month, month_end_of, month_number
from renewforecast.ledger.valuation import (
    group_codes,
    last_counted_day,
    object_values,
    row_amounts,
    row_values,
)

__all__ = ["fees_and_usage", "month_fractions", "recognized_revenue", "spread_over_months"]


def month_fractions(first_day: np.ndarray, last_day: np.ndarray, lo: int, hi: int):
    """Clip day spans to months ``lo..hi``; per span its first and last month and their day fractions.

    ``last_day`` may be NaT (open-ended). Returns ``keep`` (spans that touch
    the window) and, for the kept spans, ``mf``, ``ml`` (month numbers),
    ``frac_first`` and ``frac_last`` (the share of that month's days the
    span covers; when ``mf == ml`` only ``frac_first`` applies).

    Examples
    --------
    From 16 January 2024 to 10 February: 16 of January's 31 days, 10 of
    February's 29.

    >>> from renewforecast.dates import month_number
    >>> lo, hi = month_number(np.array(["2024-01-01", "2024-12-01"], dtype="datetime64[D]")).tolist()
    >>> keep, mf, ml, ff, fl = month_fractions(np.array(["2024-01-16"], dtype="datetime64[D]"),
    ...                                        np.array(["2024-02-10"], dtype="datetime64[D]"), lo, hi)
    >>> (ml - mf).tolist(), round(float(ff[0]) * 31), round(float(fl[0]) * 29)
    ([1], 16, 10)
    """
    lo_day = np.datetime64(lo, "M").astype("datetime64[D]")
    hi_day = np.datetime64(hi + 1, "M").astype("datetime64[D]") - np.timedelta64(1, "D")
    f = np.maximum(first_day.astype("datetime64[D]"), lo_day)
    last = last_day.astype("datetime64[D]")
    lst = np.where(np.isnat(last), hi_day, np.minimum(last, hi_day))
    keep = ~np.isnat(f) & (f <= lst)
    f, lst = f[keep], lst[keep]
    mf = f.astype("datetime64[M]").astype(np.int64)
    ml = lst.astype("datetime64[M]").astype(np.int64)
    dim_f, dim_l = days_in_month(mf), days_in_month(ml)
    same = mf == ml
    f_end = (mf + 1).astype("datetime64[M]").astype("datetime64[D]") - np.timedelta64(1, "D")
    days_first = np.where(same, (lst - f).astype(np.int64) + 1, (f_end - f).astype(np.int64) + 1)
    days_last = (lst - ml.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return keep, mf, ml, days_first / dim_f, np.where(same, 0.0, days_last / dim_l)


def spread_over_months(codes, mf, ml, frac_first, frac_last, rate, n_groups, lo, hi) -> np.ndarray:
    """Groups x months matrix of ``rate`` spread over each span's months by day fraction.

    ``codes`` is each span's group, ``mf``, ``ml``, ``frac_first`` and
    ``frac_last`` come from :func:`month_fractions`, ``rate`` is the amount a
    whole month earns; months ``lo..hi`` are the columns.

    Examples
    --------
    A rate of 100 a month over one and a half months:

    >>> spread_over_months(np.array([0]), np.array([10]), np.array([11]), np.array([1.0]), np.array([0.5]),
    ...                    np.array([100.0]), 1, 10, 12).tolist()
    [[100.0, 50.0, 0.0]]
    """
    n_months = hi - lo + 1
    width = n_months + 1
    size = n_groups * width
    f, last = mf - lo, ml - lo
    out = np.bincount(codes * width + f, weights=rate * frac_first, minlength=size)
    two = last > f
    out += np.bincount(codes[two] * width + last[two], weights=rate[two] * frac_last[two], minlength=size)
    # Whole months strictly between the first and the last: a difference array.
    mid = last - f >= 2
    diff = np.bincount(codes[mid] * width + f[mid] + 1, weights=rate[mid], minlength=size)
    diff -= np.bincount(codes[mid] * width + last[mid], weights=rate[mid], minlength=size)
    full = np.cumsum(diff.reshape(n_groups, width), axis=1)
    return (out.reshape(n_groups, width) + full)[:, :n_months]


def fees_and_usage(
    v: dict, amounts: pd.DataFrame, codes: np.ndarray, n_groups: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Groups x months of one-time fees (whole, in the month they start) and usage (over its dates).

    ``v`` is :func:`~renewforecast.ledger.valuation.row_values` of the Book,
    ``amounts`` its :func:`~renewforecast.ledger.valuation.row_amounts`,
    ``codes`` each row's group. A fee or usage whose chain ended before it
    started earns nothing.

    Examples
    --------
    >>> import renewforecast as rf
    >>> from renewforecast.ledger.valuation import row_amounts, row_values
    >>> book = rf.Book.empty()
    >>> fees, usage = fees_and_usage(row_values(book), row_amounts(book), np.array([], dtype=np.int64), 1, 0, 2)
    >>> fees.shape, usage.shape
    ((1, 3), (1, 3))
    """
    n_months = hi - lo + 1
    last_day = last_counted_day(v["to_date"], v["chain_terminated"])
    usage = np.zeros((n_groups, n_months))
    rate = amounts["usage_per_year"].to_numpy() / 12.0
    sel = rate != 0
    if sel.any():
        keep, mf, ml, ff, fl = month_fractions(v["from_date"][sel], last_day[sel], lo, hi)
        usage = spread_over_months(codes[sel][keep], mf, ml, ff, fl, rate[sel][keep], n_groups, lo, hi)
    one_time = np.zeros((n_groups, n_months))
    fee = amounts["one_time"].to_numpy()
    day = v["from_date"].astype("datetime64[D]")
    served = np.isnat(last_day) | (day <= last_day.astype("datetime64[D]"))
    month_no = month_number(day)
    hit = (fee != 0) & ~np.isnat(day) & served & (month_no >= lo) & (month_no <= hi)
    if hit.any():
        np.add.at(one_time, (codes[hit], month_no[hit] - lo), fee[hit])
    return one_time, usage


def recognized_revenue(book: Book, start, end, by: str | list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """Subscription revenue recognised day by day and summed into calendar months.

    Each ledger row earns its MRR spread evenly over the days of each
    calendar month: a month it covers entirely earns exactly its MRR, a
    month it covers partly earns ``MRR x days covered / days in month``.
    So a row active over a whole month recognises what :func:`mrr_table`
    reports at that month end, and a 12-month term starting mid-month
    recognises exactly 12 x MRR over the 13 months it touches. Rows count
    from their (segment) start date to their end date, or to their chain's
    last day of service, exactly as in :func:`mrr_table`. Usage lines earn
    their booked value the same way (as usage, never MRR); a one-time fee is
    earned whole in the month of its start date. ``by="charge_type"`` splits
    the three.

    Parameters
    ----------
    book : Book
    start, end : date-like
        First and last month (any day in it).
    by : str or sequence of str, optional
        Ledger columns (``account_id``, ``contract_id``, ``product_id``,
        ``charge_type``) or account columns (``segment``, ``region``, ...).

    Returns
    -------
    DataFrame
        Long: ``month`` (month-end date), the ``by`` columns and ``revenue``
        (rounded to the cent). Every month of the range appears for every
        group, zeros included, so the frame is ready for time series.

    Examples
    --------
    A 1,200-a-year subscription from 16 January 2024 earns 16/31 of its 100
    MRR in January and all of it in February:

    >>> import pandas as pd, renewforecast as rf
    >>> from renewforecast.schemas import TABLES, conform
    >>> sub = pd.DataFrame({"subscription_id": ["s1"], "contract_id": ["c1"],
    ...     "account_id": ["a1"], "product_id": ["p1"], "quantity": [1.0],
    ...     "net_price": [1200.0], "prorate_multiplier": [1.0],
    ...     "start_date": pd.to_datetime(["2024-01-16"]), "end_date": pd.to_datetime(["2025-01-15"]),
    ...     "created_date": pd.to_datetime(["2024-01-01"])})
    >>> book = rf.Book(**{t: conform(sub if t == "subscriptions" else pd.DataFrame(), t)
    ...                   for t in TABLES})
    >>> rf.recognized_revenue(book, "2024-01-01", "2024-02-29")["revenue"].tolist()
    [51.61, 100.0]
    """
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    lo = int(month_number([pd.Timestamp(start).to_datetime64()])[0])
    hi = int(month_number([pd.Timestamp(end).to_datetime64()])[0])
    if hi < lo:
        raise ValueError(f"end ({end}) is before start ({start})")
    subs = book.subscriptions
    v = row_values(book)
    amounts = row_amounts(book)
    charge = amounts["charge_type"].to_numpy(dtype=object)
    ledger_cols = [k for k in keys if k in subs.columns or k == "charge_type"]
    base = pd.DataFrame(
        {
            c: (charge if c == "charge_type" else object_values(subs[c]))
            for c in dict.fromkeys(("account_id", *ledger_cols))
        }
    )
    codes_all, uniques = group_codes(base, keys, book)
    n_groups = len(uniques) if keys else 1
    # Recurring rows earn their MRR day by day over their dates.
    last_day = last_counted_day(v["to_date"], v["chain_terminated"])
    keep, mf, ml, frac_first, frac_last = month_fractions(v["from_date"], last_day, lo, hi)
    rate = v["quantity"] * v["annual_value"] / 12.0  # MDQ rows count their segment quantity
    values = spread_over_months(codes_all[keep], mf, ml, frac_first, frac_last, rate[keep], n_groups, lo, hi)
    one_time, usage = fees_and_usage(v, amounts, codes_all, n_groups, lo, hi)
    values = values + one_time + usage
    months = month_end_of(np.arange(lo, hi + 1))
    n_months = hi - lo + 1
    out = {"month": np.tile(months, n_groups)}
    for k in keys:
        out[k] = np.repeat(uniques[k].to_numpy(), n_months)
    out["revenue"] = np.round(values.ravel(), 2) + 0.0  # no negative zeros
    result = pd.DataFrame(out)
    for k in keys:
        if k in ("account_id", "contract_id", "product_id", "charge_type") or str(book.accounts[k].dtype) == "string":
            result[k] = result[k].astype("string")
    return result.sort_values(["month", *keys], kind="stable").reset_index(drop=True)
