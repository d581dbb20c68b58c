"""Rows set aside by ``load_book(on_error="quarantine")``, valued: what the set-aside rows were worth.

A report on a partly loaded book must say how much it left out; this values
each set-aside subscription row by the ledger's own rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.ledger.valuation import arr_on, counts_on, ledger

__all__ = ["quarantine_report", "set_aside_summary"]


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
        arr = pd.Series(
            np.where(active, led["quantity"] * led["annual_value"], 0.0),
            index=led["subscription_id"].astype(object).to_numpy(),
        )
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
    files = q["file"].nunique()
    return {
        "rows": len(q),
        "arr": round(arr, 2),
        "share_of_arr": share,
        "text": f"{len(q):,} row{'s' if len(q) != 1 else ''}, {share:.1%} of ARR, set aside "
        f"({files} file{'s' if files != 1 else ''})",
    }
