"""Exchange rates: the one place an amount's currency and date give its rate.

Salesforce keeps every amount in its record's currency (``CurrencyIsoCode``)
and exports two rate tables: ``CurrencyType`` (one static rate per currency)
and, in orgs with advanced currency management, ``DatedConversionRate``
(a rate per currency for each date range). Both give units of the currency
per one unit of the corporate currency. A Book's ``fx_rates`` table holds the
dated rates (``currency``, ``start_date``, ``rate``); this module answers
"what rate was in force for this currency on this day", relative to the
Book's reporting currency.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["OPEN_START", "rates_on"]

#: Salesforce's first dated range starts on 0001-01-01 (no start); such a
#: range is stored as starting on this day.
OPEN_START = pd.Timestamp("1900-01-01")


def rates_on(fx_rates: pd.DataFrame, currencies, dates, reporting: str) -> np.ndarray:
    """Units of each currency per one unit of ``reporting`` on each date.

    The rate in force on a day is the one of the latest range starting on or
    before it; a day before every range takes the earliest range's rate. A
    blank currency, or the reporting currency itself, is 1. A currency
    without dated rates gives NaN (the caller decides whether that is an
    error).

    Parameters
    ----------
    fx_rates : DataFrame
        ``currency``, ``start_date``, ``rate`` (per one unit of the corporate
        currency).
    currencies, dates : array-like
        One currency code and one date per amount.
    reporting : str
        The currency amounts are converted into.

    Returns
    -------
    ndarray of float

    Examples
    --------
    >>> import pandas as pd
    >>> fx = pd.DataFrame({"currency": ["EUR", "EUR"], "rate": [0.9, 0.8],
    ...                    "start_date": pd.to_datetime(["1900-01-01", "2024-07-01"])})
    >>> rates_on(fx, ["EUR", "EUR", "USD", None], pd.to_datetime(
    ...     ["2024-06-30", "2024-07-01", "2024-07-01", "2024-07-01"]), "USD").tolist()
    [0.9, 0.8, 1.0, 1.0]
    """
    cur = pd.Series(np.asarray(currencies, dtype=object)).astype(object)
    day = pd.Series(pd.to_datetime(np.asarray(dates)))
    n = len(cur)
    out = np.full(n, np.nan)
    blank = cur.isna().to_numpy() | (cur == reporting).to_numpy()
    out[blank] = 1.0
    if n == 0 or blank.all():
        return out
    rep = _lookup(fx_rates, reporting, day.to_numpy(dtype="datetime64[ns]"))
    if not np.isfinite(rep).any():
        rep = np.ones(n)  # the reporting currency is the corporate one
    for code in pd.unique(cur[~blank]):
        rows = (cur == code).to_numpy() & ~blank
        out[rows] = _lookup(fx_rates, code, day[rows].to_numpy(dtype="datetime64[ns]")) / rep[rows]
    return out


def _lookup(fx_rates: pd.DataFrame, code: str, days: np.ndarray) -> np.ndarray:
    table = fx_rates[fx_rates["currency"] == code].sort_values("start_date", kind="stable")
    if table.empty:
        return np.full(len(days), np.nan)
    starts = table["start_date"].to_numpy(dtype="datetime64[ns]")
    rates = table["rate"].to_numpy(dtype="float64")
    pos = np.searchsorted(starts, days, side="right") - 1
    # Days before the first range, and missing days, take the earliest rate.
    return rates[np.clip(pos, 0, len(rates) - 1)]
