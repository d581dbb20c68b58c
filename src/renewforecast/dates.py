"""Month and date arithmetic, and the cent threshold: the calendar rules every layer shares.

Layer: foundation. Imports nothing of renewforecast, so every layer may use it.

- **Adding months** follows Salesforce: a date plus n months keeps its day of
  the month, rolling back to the last day of a shorter month (31 January plus
  one month is 29 February 2024; plus two is 31 March). Contract end dates
  (``StartDate + ContractTerm months - 1 day``), schedule installments and
  renewal terms all use it (``docs/data_model.md``).
- **Month ends** are where MRR is measured: a figure "at a month" is its value
  on the month's last day, and an engine measuring "as of" a date uses the
  last *complete* month end on or before it.
- **Month numbers** (months since January 1970) let the ledger engines work on
  whole arrays of months at once.
- **The cent threshold** :data:`CENT`: money amounts closer than half a cent
  are equal, and an amount under half a cent is zero. A customer with MRR of
  0.004 is not a customer; a schedule off by 0.004 matches its line.
"""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd

__all__ = ["CENT", "add_months", "days_in_month", "last_month_end", "month_end", "month_end_of", "month_number"]

#: Half a cent: amounts at most this far apart are equal, and an amount at
#: most this large is zero (money is rounded to the cent when it is shown).
CENT = 0.005

# Month number given to a missing date: far beyond any real month, so a
# missing end date sorts after every month and "counts until the end".
_OPEN_MONTH = np.iinfo(np.int64).max // 4


def add_months(dates, months):
    """Dates plus whole months, rolling to the last day of shorter months (Salesforce's rule).

    Parameters
    ----------
    dates : date-like, Series or array-like of dates
    months : int, Series or array-like of numbers
        Whole months to add (may be negative). In a Series, fractional months
        are rounded (half to even) and a missing number gives a missing date.

    Returns
    -------
    Timestamp, Series or ndarray
        A Timestamp for a single date, a ``datetime64[ns]`` Series (same
        index, missing where either input is missing) for a Series, else a
        ``datetime64[D]`` array.

    Examples
    --------
    >>> add_months(pd.Timestamp("2024-01-31"), 1), add_months("2024-01-31", 2)
    (Timestamp('2024-02-29 00:00:00'), Timestamp('2024-03-31 00:00:00'))
    >>> add_months(np.array(["2023-03-31", "2024-08-31"], dtype="datetime64[D]"), [-1, 6])
    array(['2023-02-28', '2025-02-28'], dtype='datetime64[D]')
    >>> add_months(pd.Series(pd.to_datetime(["2024-01-15", None])), pd.Series([12.0, 12.0])).tolist()
    [Timestamp('2025-01-15 00:00:00'), NaT]
    """
    if isinstance(dates, pd.Series):
        out = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
        if isinstance(months, pd.Series):
            steps = pd.Series(months.to_numpy(dtype="float64", na_value=np.nan), index=dates.index)
        else:
            steps = pd.Series(np.broadcast_to(np.asarray(months, dtype="float64"), len(dates)), index=dates.index)
        ok = dates.notna() & steps.notna()
        if ok.any():
            moved = _add_months_array(
                dates[ok].to_numpy(dtype="datetime64[D]"),
                np.round(steps[ok].to_numpy(dtype="float64")).astype(np.int64),
            )
            out[ok] = moved.astype("datetime64[ns]")
        return out
    if np.ndim(dates) == 0:
        d = pd.Timestamp(dates)
        y, m = divmod(d.month - 1 + int(months), 12)
        year, month = d.year + y, m + 1
        return pd.Timestamp(year, month, min(d.day, calendar.monthrange(year, month)[1]))
    return _add_months_array(dates, months)


def _add_months_array(dates, months) -> np.ndarray:
    d = np.asarray(dates, dtype="datetime64[D]")
    m0 = d.astype("datetime64[M]")
    day = (d - m0.astype("datetime64[D]")).astype(np.int64)
    target = m0 + np.asarray(months, dtype=np.int64).astype("timedelta64[M]")
    first = target.astype("datetime64[D]")
    dim = ((target + 1).astype("datetime64[D]") - first).astype(np.int64)
    return first + np.minimum(day, dim - 1).astype("timedelta64[D]")


def month_end(dates):
    """The last day of each date's month (the date itself on a month end).

    Parameters
    ----------
    dates : date-like or Series of dates
        Dates without a time of day, as everywhere in a Book.

    Returns
    -------
    Timestamp or Series

    Examples
    --------
    >>> month_end("2024-02-10"), month_end(pd.Timestamp("2024-03-31"))
    (Timestamp('2024-02-29 00:00:00'), Timestamp('2024-03-31 00:00:00'))
    >>> month_end(pd.Series(pd.to_datetime(["2024-04-01"]))).tolist()
    [Timestamp('2024-04-30 00:00:00')]
    """
    if isinstance(dates, pd.Series):
        return dates + pd.offsets.MonthEnd(0)
    d = pd.Timestamp(dates)
    # The calendar, not an offset: the demo org asks this for every month of every account.
    return pd.Timestamp(d.year, d.month, calendar.monthrange(d.year, d.month)[1])


def last_month_end(date) -> pd.Timestamp:
    """The last month end on or before ``date``: the last complete month as of that day.

    Examples
    --------
    >>> last_month_end("2026-10-29"), last_month_end("2026-10-31")
    (Timestamp('2026-09-30 00:00:00'), Timestamp('2026-10-31 00:00:00'))
    """
    day = pd.Timestamp(date).normalize()
    end = day + pd.offsets.MonthEnd(0)
    return end if end == day else end - pd.offsets.MonthEnd(1)


def month_number(values) -> np.ndarray:
    """Months since January 1970 of each date (int64); a missing date gives a very large number.

    Examples
    --------
    >>> month_number(np.array(["1970-01-31", "2024-02-29"], dtype="datetime64[D]")).tolist()
    [0, 649]
    >>> bool(month_number([np.datetime64("NaT")])[0] > 10**15)
    True
    """
    arr = np.asarray(values, dtype="datetime64[D]")
    out = arr.astype("datetime64[M]").astype(np.int64)
    out[np.isnat(arr)] = _OPEN_MONTH
    return out


def month_end_of(number: np.ndarray) -> np.ndarray:
    """The month-end date (``datetime64[ns]``) of each month number (see :func:`month_number`).

    Examples
    --------
    >>> month_end_of(np.array([0, 649])).astype("datetime64[D]").tolist()
    [datetime.date(1970, 1, 31), datetime.date(2024, 2, 29)]
    """
    first = np.asarray(number).astype("datetime64[M]")
    return ((first + 1).astype("datetime64[D]") - 1).astype("datetime64[ns]")


def days_in_month(number: np.ndarray) -> np.ndarray:
    """How many days each month number (see :func:`month_number`) has.

    Examples
    --------
    >>> days_in_month(np.array([649, 650])).tolist()
    [29, 31]
    """
    first = np.asarray(number).astype("datetime64[M]")
    return ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(np.int64)
