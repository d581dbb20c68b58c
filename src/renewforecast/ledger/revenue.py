"""Recurring revenue from the CPQ subscription ledger.

The ledger rules (``docs/data_model.md``):

- a per-unit row's recurring value per year is
  ``net_price / prorate_multiplier * quantity * 12 / subscription_term_months``
  (``net_price`` is the full-term price; the product's default term is 12
  months unless set, 1 for monthly-priced and evergreen products);
- a total-priced row (slab discount schedule, block price) already carries
  the whole quantity in ``net_price``: its value per year is
  ``|net_price| / prorate_multiplier * 12 / subscription_term_months`` with
  the sign of its quantity (the delta's direction);
- only recurring charges are MRR; one-time fees are revenue on their start
  date (``net_price * quantity``, or the line total), usage lines are usage
  revenue over their dates, and neither is ever MRR;
- amendments are signed delta rows, so the value on a date is the sum of the
  rows active that day (``start_date <= day <= end_date``; evergreen rows
  have no end);
- ``terminated_date`` is the last day of service: an early termination ends
  the whole chain of rows it belongs to (the original row and every row
  revising it) the day after, whether the export carries the date on the
  negative rows, on the original rows, or both; nothing is subtracted twice;
- MDQ rows count ``segment_quantity`` between their segment dates;
- amounts are in the reporting currency at the rate of the row's start date;
  with dated rates, :func:`mrr_table` and :func:`mrr_movements` can value
  them at each month end's rate (``fx="spot"``) or one fixed date's
  (``fx="constant"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from renewforecast.book import Book, chain_root_positions
from renewforecast.currency import rates_on

__all__ = ["CHARGE_TYPES", "MOVEMENTS", "arr_on", "last_month_end", "ledger", "mrr_movements", "mrr_table",
           "quarantine_report", "recognized_revenue", "set_aside_summary", "ultimate_parents"]

#: Charge types of ledger rows; only ``recurring`` is MRR.
CHARGE_TYPES = ("recurring", "one_time", "usage")


def _objects(series: pd.Series) -> np.ndarray:
    """A text column as an object array, without a copy when it already is one."""
    if isinstance(series.array, pd.arrays.StringArray):
        return np.asarray(series.array)  # zero-copy; missing values are pd.NA
    return series.to_numpy(dtype=object)


def _parents(subs: pd.DataFrame) -> np.ndarray:
    """Row position of the row each row revises (-1 when it revises none or an unknown id)."""
    ids = _objects(subs["subscription_id"])
    rev = _objects(subs["revised_subscription_id"])
    if not len(ids):
        return np.empty(0, dtype=np.int64)
    # Arrow hashes the id strings in C++, without Python objects: about twice
    # as fast as a pandas lookup on a million ids. Ids are unique in a Book.
    found = pc.index_in(pa.array(rev, type=pa.string(), from_pandas=True),
                        value_set=pa.array(ids, type=pa.string(), from_pandas=True))
    return pc.fill_null(found, -1).to_numpy().astype(np.int64)



def _chain_termination(subs: pd.DataFrame, root: np.ndarray) -> np.ndarray:
    """Per row, the earliest termination date of the chain it belongs to (NaT if none).

    ``root`` is the row position of each row's chain root (:func:`renewforecast.book.chain_root_positions`).
    """
    n = len(subs)
    term = subs["terminated_date"].to_numpy(dtype="datetime64[ns]")
    has_term = ~np.isnat(term)
    if not has_term.any():
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    big = np.iinfo(np.int64).max
    first = np.full(n, big, dtype=np.int64)
    np.minimum.at(first, root[has_term], term[has_term].view(np.int64))
    out = first[root]
    return np.where(out == big, np.datetime64("NaT"), out.view("datetime64[ns]"))


def _last_counted_day(to_date: np.ndarray, chain_terminated: np.ndarray) -> np.ndarray:
    """The last day a row counts: its end, or its chain's last day of service (NaT: open)."""
    ends_first = np.isnat(chain_terminated) | (~np.isnat(to_date) & (to_date < chain_terminated))
    return np.where(ends_first, to_date, chain_terminated)


def counts_on(from_date, to_date, chain_terminated, day) -> np.ndarray:
    """Whether ledger rows count on ``day`` (arrays, or Series aligned with ``day``).

    The one rule every engine uses: from the row's first day to its last,
    and not after its chain's last day of service.
    """
    return ((from_date <= day) & (pd.isna(to_date) | (to_date >= day))
            & (pd.isna(chain_terminated) | (chain_terminated >= day)))


def _charge(subs: pd.DataFrame) -> np.ndarray:
    if "charge_type" not in subs.columns:
        return np.full(len(subs), "recurring", dtype=object)
    return subs["charge_type"].astype(object).where(subs["charge_type"].notna(), "recurring").to_numpy()


def _total_priced(subs: pd.DataFrame) -> np.ndarray:
    if "total_priced" not in subs.columns:
        return np.zeros(len(subs), dtype=bool)
    return subs["total_priced"].fillna(False).astype(bool).to_numpy()


def row_amounts(book: Book) -> pd.DataFrame:
    """What each subscription row is worth, by the ledger's valuation rule.

    Returns
    -------
    DataFrame
        One row per subscription row (same order): ``charge_type``,
        ``total_priced``, ``annual_value`` (value per year of one unit for a
        recurring or usage row, 0 for a one-time row), ``arr`` (the row's
        signed value per year: quantity x annual value; 0 unless recurring),
        ``usage_per_year`` (the same for usage rows) and ``one_time`` (a
        one-time row's amount, earned on its start date).

    Examples
    --------
    A total-priced (slab) line of 240 seats at 65,253.60 for 36 months, with
    a 12-month default term (prorate multiplier 3), is worth 21,751.20 a year;
    its amendment delta of -240 seats at -10,800 over 9 months undoes a
    14,400-a-year line:

    >>> import pandas as pd, renewforecast as rf
    >>> from renewforecast.schemas import TABLES, conform
    >>> subs = pd.DataFrame({"subscription_id": ["s1", "s2"], "contract_id": "c1", "account_id": "a1",
    ...     "product_id": "p1", "quantity": [240.0, -240.0], "net_price": [65253.60, -10800.0],
    ...     "prorate_multiplier": [3.0, 0.75], "total_priced": [True, True],
    ...     "start_date": pd.to_datetime(["2024-01-01", "2024-04-01"]),
    ...     "created_date": pd.to_datetime(["2024-01-01", "2024-03-01"])})
    >>> book = rf.Book(**{t: conform(subs if t == "subscriptions" else pd.DataFrame(), t) for t in TABLES})
    >>> row_amounts(book)["arr"].round(2).tolist()
    [21751.2, -14400.0]
    """
    subs = book.subscriptions
    products = book.products.drop_duplicates("product_id")
    pos = pd.Index(_objects(products["product_id"])).get_indexer(_objects(subs["product_id"]))
    term_of = products["subscription_term_months"].to_numpy(dtype="float64")
    term = np.where(pos >= 0, term_of[np.maximum(pos, 0)] if len(term_of) else 12.0, 12.0)
    term = np.where(np.isfinite(term) & (term > 0), term, 12.0)
    prorate = subs["prorate_multiplier"].to_numpy(dtype="float64")
    prorate = np.where(np.isfinite(prorate) & (prorate > 0), prorate, 1.0)
    price = subs["net_price"].to_numpy(dtype="float64")
    qty = subs["quantity"].to_numpy(dtype="float64")
    total = _total_priced(subs)
    charge = _charge(subs)
    # A total-priced row's price covers its whole quantity: per unit it is
    # |price| / |quantity|, so that quantity x annual value carries the
    # quantity's sign (the delta's direction) and the line total's size.
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(total, np.where(qty != 0, np.abs(price) / np.abs(qty), 0.0), price)
    per_year = unit / prorate * 12.0 / term
    recurring = charge == "recurring"
    usage = charge == "usage"
    one_time = charge == "one_time"
    return pd.DataFrame({
        "charge_type": charge,
        "total_priced": total,
        "annual_value": np.where(one_time, 0.0, per_year),
        "arr": np.where(recurring, qty * per_year, 0.0),
        "usage_per_year": np.where(usage, qty * per_year, 0.0),
        "one_time": np.where(one_time, qty * unit, 0.0),
    })


def ultimate_parents(book: Book) -> pd.Series:
    """Each account's ultimate parent: the top of its ``ParentId`` chain (itself when it has none).

    Examples
    --------
    >>> import pandas as pd, renewforecast as rf
    >>> from renewforecast.schemas import conform
    >>> accounts = conform(pd.DataFrame({"account_id": ["p", "a", "b"], "parent_account_id": [None, "p", "a"],
    ...                                  "created_date": pd.to_datetime(["2024-01-01"] * 3)}), "accounts")
    >>> ultimate_parents(rf.Book.empty().replace(accounts=accounts)).to_dict()
    {'p': 'p', 'a': 'p', 'b': 'p'}
    """
    acc = book.accounts.drop_duplicates("account_id")
    ids = _objects(acc["account_id"])
    if "parent_account_id" not in acc.columns or not len(ids):
        return pd.Series(ids, index=ids, dtype=object)
    parent = pd.Index(ids).get_indexer(_objects(acc["parent_account_id"]))
    parent[acc["parent_account_id"].isna().to_numpy()] = -1
    # Loading refuses cycles, so every chain ends at its top.
    return pd.Series(ids[chain_root_positions(parent)], index=ids, dtype=object)


_CUSTOMERS = ("account", "ultimate_parent")


def _customer_of(book: Book, account_ids: np.ndarray, customer: str) -> np.ndarray:
    if customer not in _CUSTOMERS:
        raise ValueError(f"customer must be one of {_CUSTOMERS}, not {customer!r}")
    if customer == "account":
        return account_ids
    top = ultimate_parents(book)
    mapped = pd.Series(account_ids, dtype=object).map(top).to_numpy(dtype=object)
    return np.where(pd.isna(mapped), account_ids, mapped)


def _row_values(book: Book, *, need_root: bool = False) -> dict[str, np.ndarray | None]:
    """Per ledger row: counted dates, quantity and value of one unit per year, as arrays.

    ``root`` (each row's chain root position) is found once, and only when a
    termination or the caller needs it: it is the costliest step on large ledgers.
    """
    subs = book.subscriptions
    terminated = subs["terminated_date"].notna().any()
    root = chain_root_positions(_parents(subs)) if (need_root or terminated) and len(subs) else None
    amounts = row_amounts(book)
    recurring = (amounts["charge_type"] == "recurring").to_numpy()
    seg_q = subs["segment_quantity"].to_numpy(dtype="float64")
    mdq = subs["segment_index"].notna().to_numpy() & np.isfinite(seg_q)
    return {
        "from_date": np.where(mdq, subs["segment_start_date"].to_numpy(dtype="datetime64[ns]"),
                              subs["start_date"].to_numpy(dtype="datetime64[ns]")),
        "to_date": np.where(mdq, subs["segment_end_date"].to_numpy(dtype="datetime64[ns]"),
                            subs["end_date"].to_numpy(dtype="datetime64[ns]")),
        "quantity": np.where(mdq, seg_q, subs["quantity"].to_numpy(dtype="float64")),
        # Only recurring charges are recurring revenue.
        "annual_value": np.where(recurring, amounts["annual_value"].to_numpy(), 0.0),
        "chain_terminated": (_chain_termination(subs, root) if root is not None
                             else np.full(len(subs), np.datetime64("NaT"), dtype="datetime64[ns]")),
        "root": root,
    }


def ledger(book: Book) -> pd.DataFrame:
    """The subscription ledger with what every engine needs to value it.

    Returns one row per subscription row with ``account_id``,
    ``contract_id``, ``product_id``, ``root_id`` (the chain it belongs to),
    ``from_date`` and ``to_date`` (the days it counts, inclusive; ``to_date``
    missing for evergreen), ``quantity`` (the segment quantity for MDQ rows),
    ``annual_value`` (ARR of one unit; 0 for one-time and usage rows, which
    are not recurring revenue), ``chain_terminated`` (its chain's last day of
    service, the earliest termination date) and ``charge_type``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> list(ledger(rf.Book.empty()).columns)[:4]
    ['subscription_id', 'account_id', 'contract_id', 'product_id']
    """
    subs = book.subscriptions
    values = _row_values(book, need_root=True)
    root = values.pop("root")
    ids = _objects(subs["subscription_id"])
    out = pd.DataFrame({
        "subscription_id": subs["subscription_id"].to_numpy(),
        "account_id": subs["account_id"].to_numpy(),
        "contract_id": subs["contract_id"].to_numpy(),
        "product_id": subs["product_id"].to_numpy(),
        "root_id": ids[root] if root is not None else np.array([], dtype=object),
        **values,
        "charge_type": _charge(subs),
    })
    return out


def arr_on(book: Book, date, by: tuple[str, ...] | list[str] | str = ()) -> pd.DataFrame | float:
    """Annual recurring revenue on one day.

    Parameters
    ----------
    book : Book
    date : date-like
        The day ARR is measured on.
    by : str or sequence of str, optional
        Group by ledger columns (``account_id``, ``contract_id``,
        ``product_id``) or account columns (``segment``, ``region``, ...).
        Without ``by`` the total is returned as a float.

    Returns
    -------
    float or DataFrame
        The total, or one row per group with column ``arr``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.arr_on(rf.Book.empty(), "2024-01-01")
    0.0
    """
    day = pd.Timestamp(date).normalize()
    led = ledger(book)
    active = counts_on(led["from_date"], led["to_date"], led["chain_terminated"], day)
    led = led[active.to_numpy()]
    value = led["quantity"] * led["annual_value"]
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        return float(round(value.sum(), 2))
    frame = led.assign(arr=value)
    account_cols = [k for k in keys if k not in frame.columns]
    if account_cols:
        frame = frame.merge(book.accounts[["account_id", *account_cols]], on="account_id", how="left")
    return frame.groupby(keys, dropna=False, sort=True)["arr"].sum().round(2).reset_index()


# ----------------------------------------------------------------- MRR table


def last_month_end(date) -> pd.Timestamp:
    """The last month end on or before ``date``.

    Examples
    --------
    >>> last_month_end("2026-10-29"), last_month_end("2026-10-31")
    (Timestamp('2026-09-30 00:00:00'), Timestamp('2026-10-31 00:00:00'))
    """
    day = pd.Timestamp(date).normalize()
    end = day + pd.offsets.MonthEnd(0)
    return end if end == day else end - pd.offsets.MonthEnd(1)

_CENT = 0.005
_CHURN_AT = ("term_end", "cancellation")


def _month_number(values) -> np.ndarray:
    """Months since 1970-01 of each date (int64); NaT becomes a very large number."""
    arr = np.asarray(values, dtype="datetime64[D]")
    out = arr.astype("datetime64[M]").astype(np.int64)
    out[np.isnat(arr)] = np.iinfo(np.int64).max // 4
    return out


def _month_end(number: np.ndarray) -> np.ndarray:
    first = number.astype("datetime64[M]")
    return ((first + 1).astype("datetime64[D]") - 1).astype("datetime64[ns]")


def _intervals(book: Book, churn_at: str = "term_end",
               columns=("account_id", "contract_id", "product_id"), *, with_currency: bool = False) -> pd.DataFrame:
    """Ledger rows with the first and last month end (as month numbers) they count at."""
    if churn_at not in _CHURN_AT:
        raise ValueError(f"churn_at must be one of {_CHURN_AT}, not {churn_at!r}")
    subs = book.subscriptions
    v = _row_values(book, need_root=churn_at == "cancellation")
    stop = v["to_date"]
    term = v["chain_terminated"]
    if churn_at == "cancellation":
        # Recognise churn when it is booked: an early termination from the day
        # its rows were created, a lost renewal from the day it was closed.
        root = _objects(subs["subscription_id"])[v["root"]]
        booked = subs["created_date"].where(subs["terminated_date"].notna())
        # The chain's last counted day is the day before the termination was booked.
        booked_by_root = booked.groupby(root).min() - pd.Timedelta(days=1)
        term = np.where(np.isnat(term), term,
                        pd.Series(root).map(booked_by_root).to_numpy(dtype="datetime64[ns]"))
        lost_on = subs["contract_id"].map(_lost_renewal_dates(book)).to_numpy(dtype="datetime64[ns]")
        cut = ~np.isnat(lost_on) & (np.isnat(stop) | (lost_on <= stop))
        stop = np.where(cut, lost_on - np.timedelta64(1, "D"), stop)
    d_to = _last_counted_day(stop, term).astype("datetime64[D]")
    last = _month_number(d_to)
    not_month_end = ~np.isnat(d_to) & ((d_to + 1).astype("datetime64[M]") == d_to.astype("datetime64[M]"))
    last = last - not_month_end.astype(np.int64)
    first = _month_number(v["from_date"].astype("datetime64[D]"))
    out = pd.DataFrame({
        **{c: _objects(subs[c]) for c in dict.fromkeys(("account_id", *columns))},
        "from_date": v["from_date"],
        "mrr": v["quantity"] * v["annual_value"] / 12.0,
        "first": first,
        "last": last,
    })
    if with_currency:
        out["currency"] = (_objects(subs["currency"]) if "currency" in subs.columns
                           else np.full(len(subs), None, dtype=object))
    # One-time fees and usage are never MRR.
    recurring = _charge(subs) == "recurring"
    return out if recurring.all() else out[recurring].reset_index(drop=True)


def _lost_renewal_dates(book: Book) -> pd.Series:
    """Close date of a lost renewal per contract that was not renewed after all."""
    opps = book.opportunities
    lost = opps[(opps["type"] == "renewal") & opps["is_closed"].fillna(False).astype(bool)
                & ~opps["is_won"].fillna(False).astype(bool) & opps["renewed_contract_id"].notna()]
    renewed = set(book.contracts["renewed_contract_id"].dropna())
    lost = lost[~lost["renewed_contract_id"].isin(renewed)]
    return lost.groupby("renewed_contract_id")["close_date"].min()


def _group_codes(frame: pd.DataFrame, keys: list[str], book: Book) -> tuple[np.ndarray, pd.DataFrame]:
    if not keys:
        return np.zeros(len(frame), dtype=np.int64), pd.DataFrame(index=[0])
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        unknown = [k for k in missing if k not in book.accounts.columns]
        if unknown:
            raise ValueError(f"cannot group by {unknown}: not a ledger or account column")
        attrs = book.accounts.drop_duplicates("account_id").set_index("account_id")
        for k in missing:
            frame[k] = frame["account_id"].map(attrs[k]).to_numpy()
    # Sorted codes, so that output comes out ordered without a sort.
    if len(keys) == 1:
        values = frame[keys[0]].to_numpy(dtype=object)
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        # Sorting the few uniques and remapping codes beats factorize(sort=True).
        order = np.argsort(pd.Series(uniques).fillna("\uffff").to_numpy(dtype=object), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank[codes].astype(np.int64), pd.DataFrame({keys[0]: uniques[order]})
    idx = pd.MultiIndex.from_frame(frame[keys])
    codes, uniques = pd.factorize(idx, sort=True, use_na_sentinel=False)
    return codes.astype(np.int64), uniques.to_frame(index=False)


def _month_range(book: Book, iv: pd.DataFrame, start, end) -> tuple[int, int]:
    if start is None:
        lo = int(iv["first"].min()) if len(iv) else _month_number([np.datetime64("1970-01-01")])[0]
    else:
        lo = int(_month_number([pd.Timestamp(start).to_datetime64()])[0])
    if end is None:
        data_end = book.data_end
        hi = int(_month_number([data_end.to_datetime64()])[0]) if data_end is not None else lo
    else:
        hi = int(_month_number([pd.Timestamp(end).to_datetime64()])[0])
    return lo, max(lo, hi)


def _dense(codes: np.ndarray, first: np.ndarray, last: np.ndarray, weights: np.ndarray,
           n_groups: int, lo: int, hi: int, with_counts: bool = True):
    """Per group and month end: sum of weights of rows active then (and their count)."""
    n_months = hi - lo + 1
    f = np.clip(first, lo, hi + 1) - lo
    last_c = np.clip(last, lo - 1, hi) - lo
    keep = f <= last_c
    g, f, last_c, w = codes[keep], f[keep], last_c[keep], weights[keep]
    width = n_months + 1
    size = n_groups * width
    diff = np.bincount(g * width + f, weights=w, minlength=size)
    diff -= np.bincount(g * width + last_c + 1, weights=w, minlength=size)
    values = np.cumsum(diff.reshape(n_groups, width), axis=1)[:, :n_months]
    counts = None
    if with_counts:
        cdiff = np.bincount(g * width + f, minlength=size) - np.bincount(g * width + last_c + 1, minlength=size)
        counts = np.cumsum(cdiff.reshape(n_groups, width), axis=1)[:, :n_months]
    return values, counts


_FX = ("booked", "spot", "constant")


def _fx_basis(book: Book, fx: str, fx_date) -> bool:
    """Whether MRR must be revalued at other rates than the booked ones."""
    if fx not in _FX:
        raise ValueError(f"fx must be one of {_FX}, not {fx!r}")
    if fx == "constant" and fx_date is None:
        raise ValueError("fx='constant' needs fx_date: the day whose rates value every month")
    subs = book.subscriptions
    return (fx != "booked" and len(book.fx_rates) > 0 and "currency" in subs.columns
            and bool(subs["currency"].notna().any()))


def _dense_fx(book: Book, iv: pd.DataFrame, codes: np.ndarray, n_groups: int, lo: int, hi: int,
              fx: str, fx_date) -> tuple[np.ndarray, np.ndarray]:
    """Per group and month end: MRR at the chosen rates, and last month's MRR at this month's rates.

    Each row's booked amount goes back to its own currency at the rate of its
    start date, is summed per group and currency, and is valued at each month
    end's rate (``spot``) or at ``fx_date``'s (``constant``).
    """
    n_months = hi - lo + 1
    months = _month_end(np.arange(lo, hi + 1))
    cur = iv["currency"].to_numpy(dtype=object)
    booked = rates_on(book.fx_rates, cur, iv["from_date"].to_numpy(), book.currency)
    booked = np.where(np.isfinite(booked), booked, 1.0)
    values = np.zeros((n_groups, n_months))
    revalued = np.zeros((n_groups, n_months))
    keys = pd.Series(cur).fillna("").to_numpy(dtype=object)
    for code in pd.unique(keys):
        rows = keys == code
        native, _ = _dense(codes[rows], iv["first"].to_numpy()[rows], iv["last"].to_numpy()[rows],
                           iv["mrr"].to_numpy()[rows] * booked[rows], n_groups, lo, hi, with_counts=False)
        if fx == "spot":
            rate = rates_on(book.fx_rates, [code or None] * n_months, months, book.currency)
        else:
            rate = np.repeat(rates_on(book.fx_rates, [code or None], [pd.Timestamp(fx_date)], book.currency),
                             n_months)
        rate = np.where(np.isfinite(rate), rate, 1.0)
        values += native / rate[None, :]
        revalued[:, 1:] += native[:, :-1] / rate[None, 1:]
    return values, revalued


def mrr_table(book: Book, start=None, end=None, by=("account_id",), *, churn_at: str = "term_end",
              customer: str = "account", fx: str = "booked", fx_date=None) -> pd.DataFrame:
    """Monthly recurring revenue at each month end, from the subscription ledger.

    Parameters
    ----------
    book : Book
    start, end : date-like, optional
        First and last month (any day in it). By default from the first
        month with a subscription to the month of the Book's data end; give
        a later ``end`` to see contracted MRR ahead.
    by : str or sequence of str, default ("account_id",)
        Ledger columns (``account_id``, ``contract_id``, ``product_id``) or
        account columns (``segment``, ``region``, ...). ``()`` for the total.
    churn_at : {"term_end", "cancellation"}, default "term_end"
        When lost revenue stops counting: when its service ends (the default
        and the usual MRR convention), or when the loss is booked (the
        termination's booking date, the lost renewal's close date), which
        reads like committed MRR.
    customer : {"account", "ultimate_parent"}, default "account"
        With ``"ultimate_parent"``, ``account_id`` is the top of each
        account's ``ParentId`` chain, so a hierarchy counts as one customer.
    fx : {"booked", "spot", "constant"}, default "booked"
        Which exchange rates value amounts in other currencies: the rate of
        each row's start date (as loaded), each month end's rate, or the
        rate of ``fx_date`` for every month (constant currency). Only
        matters when the Book has dated rates.
    fx_date : date-like, optional
        The day whose rates value every month with ``fx="constant"``.

    Returns
    -------
    DataFrame
        Long: ``month`` (the month-end date), the ``by`` columns, ``mrr``.
        One row per group and month in which the group has at least one
        active ledger row.

    Notes
    -----
    A row counts at a month end when ``start_date <= month end <= end_date``
    (segment dates for MDQ rows) and its chain has not terminated by then;
    see :func:`ledger`. Computed with per-group difference arrays, so the
    cost is linear in the number of ledger rows plus groups x months.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.mrr_table(rf.Book.empty()).columns.tolist()
    ['month', 'account_id', 'mrr']
    """
    keys = [by] if isinstance(by, str) else list(by)
    revalue = _fx_basis(book, fx, fx_date)
    iv = _intervals(book, churn_at, columns=[k for k in keys if k in ("contract_id", "product_id")],
                    with_currency=revalue)
    iv["account_id"] = _customer_of(book, iv["account_id"].to_numpy(dtype=object), customer)
    lo, hi = _month_range(book, iv, start, end)
    codes, uniques = _group_codes(iv, keys, book)
    n_groups = len(uniques) if keys else 1
    months = _month_end(np.arange(lo, hi + 1))
    if not len(iv):
        return pd.DataFrame({"month": pd.Series(dtype="datetime64[ns]"),
                             **{k: pd.Series(dtype="string") for k in keys},
                             "mrr": pd.Series(dtype="float64")})
    parts = []
    # Bound memory: groups are processed in blocks of at most ~20M cells.
    block = max(1, 20_000_000 // (hi - lo + 2))
    first_all, last_all, mrr_all = iv["first"].to_numpy(), iv["last"].to_numpy(), iv["mrr"].to_numpy()
    if n_groups <= block:
        blocks = [(0, n_groups, np.arange(len(codes)))]
    else:
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        blocks = []
        for g0 in range(0, n_groups, block):
            g1 = min(n_groups, g0 + block)
            a, b = np.searchsorted(sorted_codes, [g0, g1])
            blocks.append((g0, g1, order[a:b]))
    for g0, g1, rows in blocks:
        values, counts = _dense(codes[rows] - g0, first_all[rows], last_all[rows], mrr_all[rows], g1 - g0, lo, hi)
        if revalue:
            values, _ = _dense_fx(book, iv.iloc[rows], codes[rows] - g0, g1 - g0, lo, hi, fx, fx_date)
        mi, gi = np.nonzero(counts.T > 0)  # month-major, groups in sorted order
        part = {"month": months[mi]}
        for k in keys:
            part[k] = uniques[k].to_numpy()[gi + g0]
        part["mrr"] = np.round(values.T[mi, gi], 6)
        parts.append(pd.DataFrame(part))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    for k in keys:
        if k in ("account_id", "contract_id", "product_id") or str(book.accounts[k].dtype) == "string":
            out[k] = out[k].astype("string")
    if len(blocks) > 1:
        out = out.sort_values(["month", *keys], kind="stable").reset_index(drop=True)
    return out


# ------------------------------------------------------------- MRR movements

MOVEMENTS = ("new", "expansion", "reactivation", "contraction", "churn")


def mrr_movements(
    book: Book,
    start=None,
    end=None,
    by=None,
    *,
    churn_at: str = "term_end",
    reactivation_months: int | None = None,
    same_month: str = "ignore",
    customer: str = "account",
    fx: str = "booked",
    fx_date=None,
) -> pd.DataFrame:
    """The monthly MRR bridge, classified per customer (ChartMogul's rules).

    Each customer's (account's) MRR at the end of a month is compared with
    the end of the month before:

    - ``new``: a customer with no MRR before who has MRR now;
    - ``reactivation``: a customer who had MRR before, had none last month,
      and has MRR now (within ``reactivation_months`` of leaving, else new);
    - ``expansion`` / ``contraction``: a change for a customer active at both
      ends (a second subscription is expansion; losing one of several is
      contraction);
    - ``churn``: the MRR of a customer who had MRR last month and has none
      now (churn only when the last subscription ends).

    For every month and customer
    ``start_mrr + fx_effect + new + expansion + reactivation - contraction - churn = end_mrr``
    exactly (amounts under half a cent count as zero). ``fx_effect`` is what
    last month's MRR gained or lost from exchange-rate moves alone (zero
    unless ``fx="spot"`` on a Book with dated rates), so a currency move is
    never booked as expansion or contraction.

    Parameters
    ----------
    book : Book
    start, end : date-like, optional
        First and last month reported (default: all months with data up to
        the Book's data end).
    by : str or sequence of str, optional
        ``None`` (default) gives one row per customer and month. An account
        column (``"segment"``) or a list of them sums customers' movements per
        group and month and adds customer counts; ``()`` sums all customers.
    churn_at : {"term_end", "cancellation"}, default "term_end"
        When churn is recognised: when service ends (ProfitWell, Zuora and
        ChartMogul's default), or when the cancellation is booked (Maxio,
        ChartMogul's option).
    reactivation_months : int, optional
        A returning customer is a reactivation if it comes back within this
        many months of leaving, else new again (Maxio uses 3). Default
        ``None``: a returning customer is always a reactivation (ProfitWell).
    same_month : {"ignore", "count"}, default "ignore"
        A customer who starts and leaves within one month has no MRR at
        either month end: ``"ignore"`` leaves it out (ProfitWell);
        ``"count"`` counts its MRR as both new (or reactivation) and churn in
        that month (Maxio, Stripe).
    customer : {"account", "ultimate_parent"}, default "account"
        Who a customer is: each account, or each account hierarchy (the top
        of the ``ParentId`` chain, whose id is then ``account_id``), so that a
        renewal signed by a sister account is not churn plus new business.
    fx : {"booked", "spot", "constant"}, default "booked"
        Exchange rates for amounts in other currencies (see
        :func:`mrr_table`); ``"spot"`` separates the rate effect.
    fx_date : date-like, optional
        The day whose rates value every month with ``fx="constant"``.

    Returns
    -------
    DataFrame
        ``month``, ``account_id`` (or the ``by`` columns), ``start_mrr``,
        ``new``, ``expansion``, ``reactivation``, ``contraction``, ``churn``,
        ``fx_effect`` (signed), ``end_mrr`` (all other amounts positive);
        grouped output adds ``customers_start``,
        ``customers_end`` and one ``n_<movement>`` count per movement.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.mrr_movements(rf.Book.empty()).columns.tolist()[:4]
    ['month', 'account_id', 'start_mrr', 'new']
    """
    if same_month not in ("ignore", "count"):
        raise ValueError("same_month must be 'ignore' or 'count'")
    if reactivation_months is not None and reactivation_months < 0:
        raise ValueError("reactivation_months must be >= 0")
    revalue = _fx_basis(book, fx, fx_date)
    iv = _intervals(book, churn_at, columns=(), with_currency=revalue)
    iv["account_id"] = _customer_of(book, iv["account_id"].to_numpy(dtype=object), customer)
    cols = ["month", "account_id", "start_mrr", *MOVEMENTS, "fx_effect", "end_mrr"]
    if not len(iv):
        keys = ["account_id"] if by is None else ([by] if isinstance(by, str) else list(by))
        empty = {"month": pd.Series(dtype="datetime64[ns]"), **{k: pd.Series(dtype="string") for k in keys}}
        empty.update({c: pd.Series(dtype="float64") for c in cols[2:]})
        if by is not None:
            empty.update({c: pd.Series(dtype="int64") for c in
                          ["customers_start", "customers_end", *[f"n_{m}" for m in MOVEMENTS]]})
        return pd.DataFrame(empty)
    full_lo, hi = _month_range(book, iv, None, end)
    lo = full_lo if start is None else max(full_lo, _month_range(book, iv, start, None)[0])
    codes, uniques = _group_codes(iv, ["account_id"], book)
    n = len(uniques)
    # One month before the first so that the first month has a start.
    if revalue:
        values, revalued = _dense_fx(book, iv, codes, n, full_lo - 1, hi, fx, fx_date)
    else:
        values, _ = _dense(codes, iv["first"].to_numpy(), iv["last"].to_numpy(), iv["mrr"].to_numpy(),
                           n, full_lo - 1, hi, with_counts=False)
    values = np.where(np.abs(values) > _CENT, values, 0.0)
    active = values != 0.0
    prev, cur = values[:, :-1], values[:, 1:]
    # Last month's MRR at this month's rates: the difference is the rate effect.
    prev_now = np.where(active[:, :-1], revalued[:, 1:], 0.0) if revalue else prev
    fx_effect = prev_now - prev
    pa, ca = active[:, :-1], active[:, 1:]
    ever = np.maximum.accumulate(active, axis=1)[:, :-1]  # active at any month end up to prev
    both = pa & ca
    coming = ~pa & ca
    delta = cur - prev_now
    if revalue:
        # What is left after revaluation under half a cent is rounding of the
        # rates: it stays in the rate effect, not in expansion or contraction.
        tiny = both & (np.abs(delta) <= _CENT)
        fx_effect = np.where(tiny, fx_effect + delta, fx_effect)
        delta = np.where(tiny, 0.0, delta)
    if reactivation_months is None:
        returning = coming & ever
    else:
        idx = np.where(active, np.arange(active.shape[1]), -1)
        last_seen = np.maximum.accumulate(idx, axis=1)[:, :-1]
        gap = np.arange(1, active.shape[1]) - last_seen
        returning = coming & ever & (gap - 1 <= reactivation_months)
    out = {
        "start_mrr": prev,
        "new": np.where(coming & ~returning, cur, 0.0),
        "expansion": np.where(both & (delta > 0), delta, 0.0),
        "reactivation": np.where(returning, cur, 0.0),
        "contraction": np.where(both & (delta < 0), -delta, 0.0),
        "churn": np.where(pa & ~ca, prev_now, 0.0),
        "fx_effect": fx_effect,
        "end_mrr": cur,
    }
    if same_month == "count":
        inside = iv[(iv["first"] > iv["last"]) & (iv["from_date"].notna())]
        if len(inside):
            month_no = _month_number(inside["from_date"].to_numpy(dtype="datetime64[D]")) - full_lo
            ok = (month_no >= 0) & (month_no < prev.shape[1])
            flat = np.zeros(prev.shape)
            np.add.at(flat, (codes[inside.index.to_numpy()][ok], month_no[ok]), inside["mrr"].to_numpy()[ok])
            flat = np.where((~pa & ~ca) & (flat > _CENT), flat, 0.0)
            was = ever
            out["new"] = out["new"] + np.where(~was, flat, 0.0)
            out["reactivation"] = out["reactivation"] + np.where(was, flat, 0.0)
            out["churn"] = out["churn"] + flat
    months = _month_end(np.arange(full_lo, hi + 1))
    first_col = lo - full_lo
    moving = np.zeros(prev.shape, dtype=bool)
    for name in ("start_mrr", *MOVEMENTS, "fx_effect"):
        moving |= out[name] != 0
    moving[:, :first_col] = False
    gi, mi = np.nonzero(moving)
    frame = pd.DataFrame({"month": months[mi], "account_id": uniques["account_id"].to_numpy()[gi]})
    for name, arr in out.items():
        frame[name] = np.round(arr[gi, mi], 6)
    frame["account_id"] = frame["account_id"].astype("string")
    frame = frame.sort_values(["month", "account_id"], kind="stable").reset_index(drop=True)
    if by is None:
        return frame
    keys = [by] if isinstance(by, str) else list(by)
    if keys:
        attrs = book.accounts.drop_duplicates("account_id").set_index("account_id")
        for k in keys:
            frame[k] = frame["account_id"].map(attrs[k])
    frame["_one"] = 1
    agg = {name: (name, "sum") for name in ("start_mrr", *MOVEMENTS, "fx_effect", "end_mrr")}
    agg["customers_start"] = ("start_mrr", lambda s: int((s != 0).sum()))
    agg["customers_end"] = ("end_mrr", lambda s: int((s != 0).sum()))
    for name in MOVEMENTS:
        agg[f"n_{name}"] = (name, lambda s: int((s != 0).sum()))
    grouped = frame.groupby(["month", *keys], dropna=False, sort=True).agg(**agg).reset_index()
    return grouped


# --------------------------------------------------------- recognised revenue


def _days_in_month(number: np.ndarray) -> np.ndarray:
    first = number.astype("datetime64[M]")
    return ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(np.int64)


def _month_fractions(first_day: np.ndarray, last_day: np.ndarray, lo: int, hi: int):
    """Clip day spans to months ``lo..hi``; per span its first and last month and their day fractions.

    ``last_day`` may be NaT (open-ended). Returns ``keep`` (spans that touch
    the window) and, for the kept spans, ``mf``, ``ml`` (month numbers),
    ``frac_first`` and ``frac_last`` (the share of that month's days the
    span covers; when ``mf == ml`` only ``frac_first`` applies).
    """
    lo_day = np.datetime64(lo, "M").astype("datetime64[D]")
    hi_day = (np.datetime64(hi + 1, "M").astype("datetime64[D]") - np.timedelta64(1, "D"))
    f = np.maximum(first_day.astype("datetime64[D]"), lo_day)
    last = last_day.astype("datetime64[D]")
    lst = np.where(np.isnat(last), hi_day, np.minimum(last, hi_day))
    keep = ~np.isnat(f) & (f <= lst)
    f, lst = f[keep], lst[keep]
    mf = f.astype("datetime64[M]").astype(np.int64)
    ml = lst.astype("datetime64[M]").astype(np.int64)
    dim_f, dim_l = _days_in_month(mf), _days_in_month(ml)
    same = mf == ml
    f_end = (mf + 1).astype("datetime64[M]").astype("datetime64[D]") - np.timedelta64(1, "D")
    days_first = np.where(same, (lst - f).astype(np.int64) + 1, (f_end - f).astype(np.int64) + 1)
    days_last = (lst - ml.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return keep, mf, ml, days_first / dim_f, np.where(same, 0.0, days_last / dim_l)


def _spread(codes, mf, ml, frac_first, frac_last, rate, n_groups, lo, hi) -> np.ndarray:
    """Groups x months matrix of ``rate`` spread over each span's months by day fraction."""
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


def _fees_and_usage(v: dict, amounts: pd.DataFrame, codes: np.ndarray, n_groups: int, lo: int, hi: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Groups x months of one-time fees (whole, in the month they start) and usage (over its dates).

    ``v`` is :func:`_row_values` of the Book, ``amounts`` its
    :func:`row_amounts`, ``codes`` each row's group. A fee or usage whose
    chain ended before it started earns nothing.
    """
    n_months = hi - lo + 1
    last_day = _last_counted_day(v["to_date"], v["chain_terminated"])
    usage = np.zeros((n_groups, n_months))
    rate = amounts["usage_per_year"].to_numpy() / 12.0
    sel = rate != 0
    if sel.any():
        keep, mf, ml, ff, fl = _month_fractions(v["from_date"][sel], last_day[sel], lo, hi)
        usage = _spread(codes[sel][keep], mf, ml, ff, fl, rate[sel][keep], n_groups, lo, hi)
    one_time = np.zeros((n_groups, n_months))
    fee = amounts["one_time"].to_numpy()
    day = v["from_date"].astype("datetime64[D]")
    served = np.isnat(last_day) | (day <= last_day.astype("datetime64[D]"))
    month_no = _month_number(day)
    hit = (fee != 0) & ~np.isnat(day) & served & (month_no >= lo) & (month_no <= hi)
    if hit.any():
        np.add.at(one_time, (codes[hit], month_no[hit] - lo), fee[hit])
    return one_time, usage


def recognized_revenue(book: Book, start, end, by: str | list[str] | tuple[str, ...] | None = None
                       ) -> pd.DataFrame:
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
    lo = int(_month_number([pd.Timestamp(start).to_datetime64()])[0])
    hi = int(_month_number([pd.Timestamp(end).to_datetime64()])[0])
    if hi < lo:
        raise ValueError(f"end ({end}) is before start ({start})")
    subs = book.subscriptions
    v = _row_values(book)
    amounts = row_amounts(book)
    charge = amounts["charge_type"].to_numpy(dtype=object)
    ledger_cols = [k for k in keys if k in subs.columns or k == "charge_type"]
    base = pd.DataFrame({c: (charge if c == "charge_type" else _objects(subs[c]))
                         for c in dict.fromkeys(("account_id", *ledger_cols))})
    codes_all, uniques = _group_codes(base, keys, book)
    n_groups = len(uniques) if keys else 1
    # Recurring rows earn their MRR day by day over their dates.
    last_day = _last_counted_day(v["to_date"], v["chain_terminated"])
    keep, mf, ml, frac_first, frac_last = _month_fractions(v["from_date"], last_day, lo, hi)
    rate = v["quantity"] * v["annual_value"] / 12.0  # MDQ rows count their segment quantity
    values = _spread(codes_all[keep], mf, ml, frac_first, frac_last, rate[keep], n_groups, lo, hi)
    one_time, usage = _fees_and_usage(v, amounts, codes_all, n_groups, lo, hi)
    values = values + one_time + usage
    months = _month_end(np.arange(lo, hi + 1))
    n_months = hi - lo + 1
    out = {"month": np.tile(months, n_groups)}
    for k in keys:
        out[k] = np.repeat(uniques[k].to_numpy(), n_months)
    out["revenue"] = np.round(values.ravel(), 2) + 0.0  # no negative zeros
    result = pd.DataFrame(out)
    for k in keys:
        if (k in ("account_id", "contract_id", "product_id", "charge_type")
                or str(book.accounts[k].dtype) == "string"):
            result[k] = result[k].astype("string")
    return result.sort_values(["month", *keys], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------ set-aside rows


def quarantine_report(book: Book) -> pd.DataFrame:
    """The rows ``load_book(on_error="quarantine")`` set aside, with the ARR each carried.

    Returns
    -------
    DataFrame
        :attr:`Book.quarantine` with ``arr``: a set-aside subscription row's
        value per year on the Book's export date (0 when not active then, or
        not a subscription row).

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.quarantine_report(rf.Book.empty()).columns.tolist()[-2:]
    ['table', 'arr']
    """
    q = book.quarantine.copy()
    q["arr"] = 0.0
    aside = book.set_aside.get("subscriptions")
    day = book.data_end
    if aside is not None and len(aside) and day is not None:
        led = ledger(book.replace(subscriptions=aside))
        active = counts_on(led["from_date"], led["to_date"], led["chain_terminated"], day).to_numpy()
        arr = pd.Series(np.where(active, led["quantity"] * led["annual_value"], 0.0),
                        index=led["subscription_id"].astype(object).to_numpy())
        rows = (q["table"] == "subscriptions").to_numpy()
        q.loc[rows, "arr"] = q.loc[rows, "record_id"].map(arr).fillna(0.0).to_numpy()
    return q


def set_aside_summary(book: Book) -> dict:
    """How much was set aside: rows, ARR and its share of all ARR, in a sentence.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.set_aside_summary(rf.Book.empty())["text"]
    'nothing set aside'
    """
    q = quarantine_report(book)
    if not len(q):
        return {"rows": 0, "arr": 0.0, "share_of_arr": 0.0, "text": "nothing set aside"}
    arr = float(q["arr"].sum())
    day = book.data_end
    kept = arr_on(book, day) if day is not None else 0.0
    share = arr / (kept + arr) if kept + arr > 0 else 0.0
    return {"rows": len(q), "arr": round(arr, 2), "share_of_arr": share,
            "text": f"{len(q):,} row{'s' if len(q) != 1 else ''}, {share:.1%} of ARR, set aside "
                    f"({q['file'].nunique()} file{'s' if q['file'].nunique() != 1 else ''})"}
