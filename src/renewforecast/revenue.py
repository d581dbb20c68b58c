"""Recurring revenue from the CPQ subscription ledger.

The ledger rules (``docs/data_model.md``):

- a row's recurring value per year is
  ``net_price / prorate_multiplier * quantity * 12 / subscription_term_months``
  (``net_price`` is the full-term price; the product's default term is 12
  months unless set, 1 for monthly-priced and evergreen products);
- amendments are signed delta rows, so the value on a date is the sum of the
  rows active that day (``start_date <= day <= end_date``; evergreen rows
  have no end);
- an early termination ends the whole chain of rows it belongs to (the
  original row and every row revising it) from its ``terminated_date`` on,
  whether the export carries the date on the negative rows, on the original
  rows, or both; nothing is subtracted twice;
- MDQ rows count ``segment_quantity`` between their segment dates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book

__all__ = ["arr_on", "ledger"]


def _roots(subs: pd.DataFrame) -> np.ndarray:
    """The root subscription of each row (follow revised_subscription_id)."""
    ids = subs["subscription_id"].to_numpy(dtype=object)
    parent = subs["revised_subscription_id"].to_numpy(dtype=object)
    pos = {sid: i for i, sid in enumerate(ids)}
    parent_idx = np.array([pos.get(p, -1) if isinstance(p, str) else -1 for p in parent], dtype=np.int64)
    root = np.arange(len(ids))
    has = parent_idx >= 0
    root[has] = parent_idx[has]
    # Pointer jumping: chains are short, a few rounds reach the root.
    for _ in range(64):
        nxt = np.where(parent_idx[root] >= 0, parent_idx[root], root)
        if np.array_equal(nxt, root):
            break
        root = nxt
    return ids[root]


def ledger(book: Book) -> pd.DataFrame:
    """The subscription ledger with what every engine needs to value it.

    Returns one row per subscription row with ``account_id``,
    ``contract_id``, ``product_id``, ``root_id`` (the chain it belongs to),
    ``from_date`` and ``to_date`` (the days it counts, inclusive; ``to_date``
    missing for evergreen), ``quantity`` (the segment quantity for MDQ rows)
    and ``annual_value`` (ARR of one unit).

    Examples
    --------
    >>> import renewforecast as rf
    >>> list(ledger(rf.Book.empty()).columns)[:4]
    ['subscription_id', 'account_id', 'contract_id', 'product_id']
    """
    subs = book.subscriptions
    term = subs["product_id"].map(
        book.products.drop_duplicates("product_id").set_index("product_id")["subscription_term_months"]
    ).astype("float64").fillna(12.0)
    term = term.where(term > 0, 12.0)
    prorate = subs["prorate_multiplier"].where(subs["prorate_multiplier"] > 0, 1.0).fillna(1.0)
    mdq = subs["segment_index"].notna() & subs["segment_quantity"].notna()
    out = pd.DataFrame({
        "subscription_id": subs["subscription_id"],
        "account_id": subs["account_id"],
        "contract_id": subs["contract_id"],
        "product_id": subs["product_id"],
        "root_id": _roots(subs) if len(subs) else pd.Series([], dtype=object),
        "from_date": subs["segment_start_date"].where(mdq, subs["start_date"]),
        "to_date": subs["segment_end_date"].where(mdq, subs["end_date"]),
        "quantity": subs["segment_quantity"].where(mdq, subs["quantity"]).astype("float64"),
        "annual_value": (subs["net_price"] / prorate * 12.0 / term).astype("float64"),
        "terminated_date": subs["terminated_date"],
    })
    chain_end = out.groupby("root_id", sort=False)["terminated_date"].transform("min")
    out["chain_terminated"] = chain_end
    return out.drop(columns="terminated_date").reset_index(drop=True)


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
    active = (
        (led["from_date"] <= day)
        & (led["to_date"].isna() | (led["to_date"] >= day))
        & (led["chain_terminated"].isna() | (led["chain_terminated"] > day))
    )
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
