"""What a ledger row is worth on a day: the valuation rules of the CPQ subscription ledger.

Every engine that values subscriptions (MRR, recognised revenue, renewal
decisions, features, the forecast) reads the ledger through this module, so
the rules below live here and nowhere else (``docs/data_model.md``):

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
  have no end): :func:`counts_on`;
- ``terminated_date`` is the last day of service: an early termination ends
  the whole chain of rows it belongs to (the original row and every row
  revising it) the day after, whether the export carries the date on the
  negative rows, on the original rows, or both; nothing is subtracted twice
  (:func:`chain_termination`, :func:`last_counted_day`);
- MDQ rows count ``segment_quantity`` between their segment dates;
- amounts are in the reporting currency at the rate of the row's start date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from renewforecast.book import Book, chain_root_positions

__all__ = [
    "CHARGE_TYPES",
    "arr_on",
    "chain_termination",
    "charge_types",
    "contract_arr_on",
    "counts_on",
    "group_codes",
    "last_counted_day",
    "ledger",
    "object_values",
    "revised_row_positions",
    "row_amounts",
    "row_values",
    "total_priced_flags",
]

#: Charge types of ledger rows; only ``recurring`` is MRR.
CHARGE_TYPES = ("recurring", "one_time", "usage")


def object_values(series: pd.Series) -> np.ndarray:
    """A text column (ids, names) as an object array, without a copy when it already is one.

    Examples
    --------
    >>> object_values(pd.Series(["a1", None], dtype="string")).tolist()
    ['a1', <NA>]
    """
    if isinstance(series.array, pd.arrays.StringArray):
        return np.asarray(series.array)  # zero-copy; missing values are pd.NA
    return series.to_numpy(dtype=object)


def revised_row_positions(subs: pd.DataFrame) -> np.ndarray:
    """Row position of the row each subscription row revises (-1 when it revises none or an unknown id).

    Examples
    --------
    >>> subs = pd.DataFrame({"subscription_id": ["s1", "s2", "s3"], "revised_subscription_id": [None, "s1", "x"]})
    >>> revised_row_positions(subs).tolist()
    [-1, 0, -1]
    """
    ids = object_values(subs["subscription_id"])
    rev = object_values(subs["revised_subscription_id"])
    if not len(ids):
        return np.empty(0, dtype=np.int64)
    # Arrow hashes the id strings in C++, without Python objects: about twice
    # as fast as a pandas lookup on a million ids. Ids are unique in a Book.
    found = pc.index_in(
        pa.array(rev, type=pa.string(), from_pandas=True), value_set=pa.array(ids, type=pa.string(), from_pandas=True)
    )
    return pc.fill_null(found, -1).to_numpy().astype(np.int64)


def chain_termination(subs: pd.DataFrame, root: np.ndarray) -> np.ndarray:
    """Per row, the earliest termination date of the chain it belongs to (NaT if none).

    ``root`` is the row position of each row's chain root
    (:func:`renewforecast.book.chain_root_positions` of
    :func:`revised_row_positions`). The export may carry ``terminated_date``
    on the negative rows, the original rows or both: the chain ends once.

    Examples
    --------
    >>> subs = pd.DataFrame({"terminated_date": pd.to_datetime([None, "2024-06-30", None])})
    >>> chain_termination(subs, np.array([0, 0, 2])).astype("datetime64[D]").astype(str).tolist()
    ['2024-06-30', '2024-06-30', 'NaT']
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


def last_counted_day(to_date: np.ndarray, chain_terminated: np.ndarray) -> np.ndarray:
    """The last day a row counts: its end, or its chain's last day of service if earlier (NaT: open).

    Examples
    --------
    >>> end = np.array(["2024-12-31", "NaT"], dtype="datetime64[D]")
    >>> last_counted_day(end, np.array(["2024-06-30", "NaT"], dtype="datetime64[D]")).astype(str).tolist()
    ['2024-06-30', 'NaT']
    """
    ends_first = np.isnat(chain_terminated) | (~np.isnat(to_date) & (to_date < chain_terminated))
    return np.where(ends_first, to_date, chain_terminated)


def counts_on(from_date, to_date, chain_terminated, day) -> np.ndarray:
    """Whether ledger rows count on ``day`` (arrays, or Series aligned with ``day``).

    The one rule every engine uses: from the row's first day to its last
    (both included; no last day for evergreen rows), and not after its
    chain's last day of service. ``chain_terminated=None`` asks only about
    the row's own dates (what was booked, before any termination).

    Examples
    --------
    >>> led = pd.DataFrame({
    ...     "from_date": pd.to_datetime(["2024-01-01", "2024-01-01"]),
    ...     "to_date": pd.to_datetime(["2024-12-31", None]),
    ...     "chain_terminated": pd.to_datetime(["2024-03-31", None])})
    >>> counts_on(led["from_date"], led["to_date"], led["chain_terminated"], pd.Timestamp("2024-04-01")).tolist()
    [False, True]
    >>> counts_on(led["from_date"], led["to_date"], None, pd.Timestamp("2024-04-01")).tolist()
    [True, True]
    """
    on = (from_date <= day) & (pd.isna(to_date) | (to_date >= day))
    if chain_terminated is None:
        return on
    return on & (pd.isna(chain_terminated) | (chain_terminated >= day))


def charge_types(subs: pd.DataFrame) -> np.ndarray:
    """Each row's charge type; a row without one is recurring (CPQ's default).

    Examples
    --------
    >>> charge_types(pd.DataFrame({"charge_type": ["usage", None]})).tolist()
    ['usage', 'recurring']
    """
    if "charge_type" not in subs.columns:
        return np.full(len(subs), "recurring", dtype=object)
    return subs["charge_type"].astype(object).where(subs["charge_type"].notna(), "recurring").to_numpy()


def total_priced_flags(subs: pd.DataFrame) -> np.ndarray:
    """Whether each row's price already covers its whole quantity (slab or block pricing).

    Examples
    --------
    >>> total_priced_flags(pd.DataFrame({"total_priced": pd.array([True, None], dtype="boolean")})).tolist()
    [True, False]
    """
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
    pos = pd.Index(object_values(products["product_id"])).get_indexer(object_values(subs["product_id"]))
    term_of = products["subscription_term_months"].to_numpy(dtype="float64")
    term = np.where(pos >= 0, term_of[np.maximum(pos, 0)] if len(term_of) else 12.0, 12.0)
    term = np.where(np.isfinite(term) & (term > 0), term, 12.0)
    prorate = subs["prorate_multiplier"].to_numpy(dtype="float64")
    prorate = np.where(np.isfinite(prorate) & (prorate > 0), prorate, 1.0)
    price = subs["net_price"].to_numpy(dtype="float64")
    qty = subs["quantity"].to_numpy(dtype="float64")
    total = total_priced_flags(subs)
    charge = charge_types(subs)
    # A total-priced row's price covers its whole quantity: per unit it is
    # |price| / |quantity|, so that quantity x annual value carries the
    # quantity's sign (the delta's direction) and the line total's size.
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(total, np.where(qty != 0, np.abs(price) / np.abs(qty), 0.0), price)
    per_year = unit / prorate * 12.0 / term
    recurring = charge == "recurring"
    usage = charge == "usage"
    one_time = charge == "one_time"
    return pd.DataFrame(
        {
            "charge_type": charge,
            "total_priced": total,
            "annual_value": np.where(one_time, 0.0, per_year),
            "arr": np.where(recurring, qty * per_year, 0.0),
            "usage_per_year": np.where(usage, qty * per_year, 0.0),
            "one_time": np.where(one_time, qty * unit, 0.0),
        }
    )


def row_values(book: Book, *, need_root: bool = False) -> dict[str, np.ndarray | None]:
    """Per ledger row: counted dates, quantity and value of one unit per year, as arrays.

    Returns a dict of arrays in subscription-row order: ``from_date`` and
    ``to_date`` (segment dates for MDQ rows), ``quantity`` (the segment
    quantity for MDQ rows), ``annual_value`` (0 unless recurring),
    ``chain_terminated`` and ``root`` (each row's chain root position, or
    None). ``root`` is found once, and only when a termination or the caller
    (``need_root=True``) needs it: it is the costliest step on large ledgers.

    Examples
    --------
    >>> import renewforecast as rf
    >>> sorted(row_values(rf.Book.empty()))
    ['annual_value', 'chain_terminated', 'from_date', 'quantity', 'root', 'to_date']
    """
    subs = book.subscriptions
    terminated = subs["terminated_date"].notna().any()
    root = chain_root_positions(revised_row_positions(subs)) if (need_root or terminated) and len(subs) else None
    amounts = row_amounts(book)
    recurring = (amounts["charge_type"] == "recurring").to_numpy()
    seg_q = subs["segment_quantity"].to_numpy(dtype="float64")
    mdq = subs["segment_index"].notna().to_numpy() & np.isfinite(seg_q)
    return {
        "from_date": np.where(
            mdq,
            subs["segment_start_date"].to_numpy(dtype="datetime64[ns]"),
            subs["start_date"].to_numpy(dtype="datetime64[ns]"),
        ),
        "to_date": np.where(
            mdq,
            subs["segment_end_date"].to_numpy(dtype="datetime64[ns]"),
            subs["end_date"].to_numpy(dtype="datetime64[ns]"),
        ),
        "quantity": np.where(mdq, seg_q, subs["quantity"].to_numpy(dtype="float64")),
        # Only recurring charges are recurring revenue.
        "annual_value": np.where(recurring, amounts["annual_value"].to_numpy(), 0.0),
        "chain_terminated": (
            chain_termination(subs, root)
            if root is not None
            else np.full(len(subs), np.datetime64("NaT"), dtype="datetime64[ns]")
        ),
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
    values = row_values(book, need_root=True)
    root = values.pop("root")
    ids = object_values(subs["subscription_id"])
    out = pd.DataFrame(
        {
            "subscription_id": subs["subscription_id"].to_numpy(),
            "account_id": subs["account_id"].to_numpy(),
            "contract_id": subs["contract_id"].to_numpy(),
            "product_id": subs["product_id"].to_numpy(),
            "root_id": ids[root] if root is not None else np.array([], dtype=object),
            **values,
            "charge_type": charge_types(subs),
        }
    )
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


def group_codes(frame: pd.DataFrame, keys: list[str], book: Book) -> tuple[np.ndarray, pd.DataFrame]:
    """Group number of each row of ``frame`` by ``keys``, numbered in sorted order of the keys.

    A key that is not a column of ``frame`` is looked up in the Book's
    accounts by ``account_id`` (and added to ``frame``). Returns the codes
    and one row of key values per group; no keys is one group.

    Examples
    --------
    >>> import renewforecast as rf
    >>> codes, groups = group_codes(pd.DataFrame({"account_id": ["b", "a", "b"]}), ["account_id"], rf.Book.empty())
    >>> codes.tolist(), groups["account_id"].tolist()
    ([1, 0, 1], ['a', 'b'])
    """
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
    if not len(frame):
        # pandas cannot factorize an empty MultiIndex (it cannot tell how many levels it had).
        return np.zeros(0, dtype=np.int64), frame[keys].iloc[:0].reset_index(drop=True)
    idx = pd.MultiIndex.from_frame(frame[keys])
    codes, uniques = pd.factorize(idx, sort=True, use_na_sentinel=False)
    # factorize drops a MultiIndex's level names: the keys name the columns again.
    return codes.astype(np.int64), uniques.set_names(keys).to_frame(index=False)


def contract_arr_on(book: Book, contract_ids: pd.Series, dates: pd.Series) -> np.ndarray:
    """ARR of each contract on its own date (vectorised over contracts).

    Parameters
    ----------
    book : Book
    contract_ids : Series of str
    dates : Series of dates
        One day per contract, aligned with ``contract_ids``.

    Returns
    -------
    ndarray
        The contract's ARR on that day, by :func:`counts_on` (0 for a
        contract with nothing active then).

    Examples
    --------
    >>> import renewforecast as rf
    >>> contract_arr_on(rf.Book.empty(), pd.Series(["c1"]), pd.Series(pd.to_datetime(["2024-01-01"]))).tolist()
    [0.0]
    """
    led = ledger(book)
    led = led[led["contract_id"].isin(set(contract_ids))]
    on = led["contract_id"].map(pd.Series(dates.to_numpy(), index=contract_ids.to_numpy()))
    active = counts_on(led["from_date"], led["to_date"], led["chain_terminated"], on)
    value = (led["quantity"] * led["annual_value"]).where(active, 0.0)
    arr = value.groupby(led["contract_id"]).sum()
    return contract_ids.map(arr).fillna(0.0).to_numpy()
