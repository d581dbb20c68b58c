"""Account hierarchies: who the customer is when accounts have parents.

MRR movements and retention count a customer either as each account or as
each account hierarchy (the top of the ``ParentId`` chain), so that a
renewal signed by a sister account is not churn plus new business.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book, chain_root_positions
from renewforecast.ledger.valuation import object_values

__all__ = ["CUSTOMERS", "customer_ids", "ultimate_parents"]

#: Who a customer is: each account, or each account hierarchy.
CUSTOMERS = ("account", "ultimate_parent")


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
    ids = object_values(acc["account_id"])
    if "parent_account_id" not in acc.columns or not len(ids):
        return pd.Series(ids, index=ids, dtype=object)
    parent = pd.Index(ids).get_indexer(object_values(acc["parent_account_id"]))
    parent[acc["parent_account_id"].isna().to_numpy()] = -1
    # Loading refuses cycles, so every chain ends at its top.
    return pd.Series(ids[chain_root_positions(parent)], index=ids, dtype=object)


def customer_ids(book: Book, account_ids: np.ndarray, customer: str) -> np.ndarray:
    """The customer of each account id: the account itself, or the top of its hierarchy.

    Parameters
    ----------
    book : Book
    account_ids : ndarray of str
    customer : {"account", "ultimate_parent"}

    Examples
    --------
    >>> import renewforecast as rf
    >>> customer_ids(rf.Book.empty(), np.array(["a1"], dtype=object), "ultimate_parent").tolist()
    ['a1']
    """
    if customer not in CUSTOMERS:
        raise ValueError(f"customer must be one of {CUSTOMERS}, not {customer!r}")
    if customer == "account":
        return account_ids
    top = ultimate_parents(book)
    mapped = pd.Series(account_ids, dtype=object).map(top).to_numpy(dtype=object)
    return np.where(pd.isna(mapped), account_ids, mapped)
