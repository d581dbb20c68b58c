"""Renewal facts of the ledger: which opportunity renews a contract, which contract renewed it, and what it was worth.

These are facts of the book, not KPIs: the renewal KPIs
(:mod:`renewforecast.analyses.saas_metrics`), the renewal features
(:mod:`renewforecast.models.features`) and the forecast all read them here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.ledger.valuation import contract_arr_on

__all__ = ["lost_renewal_dates", "renewal_decisions", "renewal_opportunities"]


def renewal_opportunities(book: Book) -> pd.DataFrame:
    """The renewal opportunity of each contract: the latest created one that renews it.

    Returns
    -------
    DataFrame
            Rows of ``book.opportunities`` indexed by ``renewed_contract_id``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> renewal_opportunities(rf.Book.empty()).index.name
    'renewed_contract_id'
    """
    opps = book.opportunities
    opps = opps[(opps["type"] == "renewal") & opps["renewed_contract_id"].notna()]
    opps = opps.sort_values("created_date", kind="stable").drop_duplicates("renewed_contract_id", keep="last")
    return opps.set_index("renewed_contract_id")


def renewal_decisions(book: Book, as_of=None) -> pd.DataFrame:
    """Every non-evergreen contract's renewal decision as known on ``as_of``.

    Returns
    -------
    DataFrame
        One row per contract: ``contract_id``, ``account_id``, ``end_date``,
        ``prior_arr`` (ARR on its last day, or the day before an early
        termination), ``outcome`` (``renewed``, ``churned``, ``terminated``
        early, or ``open``), ``renewal_contract_id`` and ``renewed_arr`` (ARR
        of the renewing contract on its first day), ``renewal_opportunity_id``.

    Notes
    -----
    A contract is renewed when a later contract renews it. It churned when
    its renewal opportunity was lost, or when it ended before ``as_of`` with
    no renewal and no open renewal opportunity. It is open while it has not
    ended or its renewal opportunity is still open (late renewals are not
    guessed).

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.renewal_decisions(rf.Book.empty(), "2024-12-31").columns.tolist()[:4]
    ['contract_id', 'account_id', 'start_date', 'end_date']
    """
    view = book if as_of is None else book.as_of(as_of)
    cut = view.resolve_as_of(as_of)
    con = view.contracts[~view.contracts["evergreen"].fillna(False).astype(bool) & view.contracts["end_date"].notna()]
    con = con[["contract_id", "account_id", "start_date", "end_date", "term_months"]].copy()
    renewing = view.contracts[view.contracts["renewed_contract_id"].notna()]
    renewing = renewing.sort_values("start_date").drop_duplicates("renewed_contract_id")
    renew_map = renewing.set_index("renewed_contract_id")
    con["renewal_contract_id"] = con["contract_id"].map(renew_map["contract_id"])
    opps = renewal_opportunities(view)
    con["renewal_opportunity_id"] = con["contract_id"].map(opps["opportunity_id"])
    opp_closed = con["contract_id"].map(opps["is_closed"]).astype("boolean").fillna(False).astype(bool)
    opp_won = con["contract_id"].map(opps["is_won"]).astype("boolean").fillna(False).astype(bool)
    opp_open = con["renewal_opportunity_id"].notna() & ~opp_closed
    # Early termination: every chain of the contract terminated before its end.
    subs = view.subscriptions
    term = subs.loc[subs["terminated_date"].notna()].groupby("contract_id")["terminated_date"].min()
    con["terminated_date"] = con["contract_id"].map(term)
    terminated = con["terminated_date"].notna() & (con["terminated_date"] < con["end_date"])
    ended = con["end_date"] < cut
    outcome = np.select(
        [con["renewal_contract_id"].notna(), terminated, opp_closed & ~opp_won, opp_open | ~ended],
        ["renewed", "terminated", "churned", "open"],
        "churned",
    )
    con["outcome"] = outcome
    # TerminatedDate is the last day of service.
    last_day = con["end_date"].where(~terminated, con["terminated_date"])
    con["prior_arr"] = contract_arr_on(view, con["contract_id"], last_day)
    first_day = con["renewal_contract_id"].map(renewing.set_index("contract_id")["start_date"])
    has = con["renewal_contract_id"].notna()
    con["renewed_arr"] = 0.0
    if has.any():
        con.loc[has, "renewed_arr"] = contract_arr_on(view, con.loc[has, "renewal_contract_id"], first_day[has])
    return con.drop(columns=["terminated_date"]).reset_index(drop=True)


def lost_renewal_dates(book: Book) -> pd.Series:
    """Close date of the lost renewal of each contract that was not renewed after all.

    The day a loss is booked: MRR with ``churn_at="cancellation"`` stops
    counting the day before it.

    Examples
    --------
    >>> import renewforecast as rf
    >>> lost_renewal_dates(rf.Book.empty()).empty
    True
    """
    opps = book.opportunities
    lost = opps[
        (opps["type"] == "renewal")
        & opps["is_closed"].fillna(False).astype(bool)
        & ~opps["is_won"].fillna(False).astype(bool)
        & opps["renewed_contract_id"].notna()
    ]
    renewed = set(book.contracts["renewed_contract_id"].dropna())
    lost = lost[~lost["renewed_contract_id"].isin(renewed)]
    return lost.groupby("renewed_contract_id")["close_date"].min()
