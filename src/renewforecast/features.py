"""Point-in-time renewal features: only what was known on each contract's feature date.

A renewal decision is predicted ``lead_days`` (default 120) before the
contract's end date. Every feature of a contract is computed from records
created on or before its own feature date: ledger rows and terminations,
signals of months that had ended, the renewal opportunity's stage from stage
history. Training rows (past decisions) and scoring rows (open contracts) go
through the same code, so a model never trains on information it will not
have when it scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.metrics import renewal_decisions, renewal_opportunities
from renewforecast.revenue import counts_on, ledger

__all__ = ["BASE_SIGNALS", "featurise_contracts", "renewal_features", "renewal_training_set"]

#: Signal columns with a known meaning; any other numeric signal column is
#: picked up the same way (last value and 3-month change).
BASE_SIGNALS = ("seat_utilization", "active_users", "support_tickets", "nps")

_DAYS_PER_MONTH = 365.25 / 12


def _chain_depth(contracts: pd.DataFrame) -> pd.Series:
    """How many renewals lead to each contract (0 for a first contract)."""
    ids = contracts["contract_id"].to_numpy(dtype=object)
    parent = pd.Index(ids).get_indexer(contracts["renewed_contract_id"].to_numpy(dtype=object))
    parent[contracts["renewed_contract_id"].isna().to_numpy()] = -1
    depth = np.zeros(len(ids), dtype=np.int64)
    cur = parent.copy()
    for _ in range(200):
        has = cur >= 0
        if not has.any():
            break
        depth += has
        cur = np.where(has, parent[np.maximum(cur, 0)], -1)
    return pd.Series(depth, index=contracts.index)


def _value_at(led: pd.DataFrame, keys: pd.DataFrame, key: str, date_col: str) -> pd.Series:
    """Sum of quantity x annual value of ledger rows known and active on each key's date."""
    m = keys[[key, date_col]].reset_index().merge(led, on=key, how="inner")
    d = m[date_col]
    active = (m["created_date"] <= d) & counts_on(m["from_date"], m["to_date"], m["chain_terminated"], d)
    value = (m["quantity"] * m["annual_value"]).where(active, 0.0)
    return value.groupby(m["index"]).sum().reindex(keys.index, fill_value=0.0)


def _asof(left: pd.DataFrame, right: pd.DataFrame, *, on_left: str, on_right: str, by: str,
          columns: list[str]) -> pd.DataFrame:
    """Last row of ``right`` per ``by`` with ``on_right <= on_left``, aligned to ``left``."""
    if not len(right) or not len(left):
        return pd.DataFrame({c: np.nan for c in columns}, index=left.index)
    l_ = left[[by, on_left]].reset_index().rename(columns={on_left: "_t"})
    l_[by] = l_[by].astype(object)
    l_["_t"] = l_["_t"].astype("datetime64[ns]")
    r = right[[by, on_right, *columns]].rename(columns={on_right: "_t"}).copy()
    r[by] = r[by].astype(object)
    r["_t"] = r["_t"].astype("datetime64[ns]")
    l_ = l_.sort_values("_t", kind="stable")
    r = r.sort_values("_t", kind="stable")
    out = pd.merge_asof(l_, r, on="_t", by=by, direction="backward")
    return out.set_index("index")[columns].reindex(left.index)


def featurise_contracts(book: Book, contracts: pd.DataFrame, feature_dates: pd.Series) -> pd.DataFrame:
    """Features of the given contracts, each as of its own feature date.

    Parameters
    ----------
    book : Book
        The full Book; each row only sees records created by its date.
    contracts : DataFrame
        Rows of ``book.contracts``.
    feature_dates : Series
        One date per row of ``contracts`` (same index).

    Returns
    -------
    DataFrame
        Indexed by ``contract_id``; numbers as floats, categories as
        strings, missing values where nothing was known.
    """
    c = contracts[["contract_id", "account_id", "start_date", "end_date", "term_months",
                   "renewal_pricing_method", "renewal_uplift_rate", "created_date"]].copy()
    c["fd"] = pd.to_datetime(feature_dates).astype("datetime64[ns]").to_numpy()
    accounts = book.accounts.drop_duplicates("account_id").set_index("account_id")
    out = pd.DataFrame(index=c.index)
    for col in ("segment", "industry", "region", "acquisition_channel"):
        out[col] = c["account_id"].map(accounts[col]).astype(object)
    out["is_government"] = c["account_id"].map(accounts["is_government"]).astype(object)
    out["renewal_pricing_method"] = c["renewal_pricing_method"].astype(object)
    uplift = c["renewal_uplift_rate"].astype("float64")
    out["renewal_uplift_rate"] = uplift.where(c["renewal_pricing_method"] == "uplift", 0.0).fillna(0.0)
    out["term_months"] = c["term_months"].astype("float64")

    # Tenure and renewal history.
    first_start = book.contracts.groupby("account_id")["start_date"].min()
    out["tenure_months"] = ((c["fd"] - c["account_id"].map(first_start)).dt.days / _DAYS_PER_MONTH).astype("float64")
    depth = _chain_depth(book.contracts).set_axis(book.contracts["contract_id"].to_numpy())
    out["renewal_count"] = c["contract_id"].map(depth).astype("float64")

    # Revenue: contract ARR now and at its start, account ARR now and a year ago.
    led = ledger(book).merge(book.subscriptions[["subscription_id", "created_date"]], on="subscription_id")
    by_contract = led.drop(columns=["account_id"])
    out["arr"] = _value_at(by_contract, c, "contract_id", "fd")
    start_keys = c[["contract_id"]].assign(sd=c["start_date"] + pd.Timedelta(days=1))
    start_keys["sd"] = np.minimum(start_keys["sd"], c["fd"])
    out["arr_change_in_term"] = _ratio_change(out["arr"], _value_at(by_contract, start_keys, "contract_id", "sd"))
    acct_keys = c[["account_id"]].assign(d=c["fd"], d12=c["fd"] - pd.Timedelta(days=365))
    by_account = led.drop(columns=["contract_id"])
    account_arr = _value_at(by_account, acct_keys, "account_id", "d")
    out["account_arr_change_12m"] = _ratio_change(account_arr, _value_at(by_account, acct_keys, "account_id", "d12"))

    # Seats, products and amendments on the contract, as booked by the feature date.
    # Seats and products are recurring lines; fees and usage are not seats.
    subs = book.subscriptions[book.subscriptions["charge_type"].fillna("recurring") == "recurring"]
    rows = c[["contract_id", "fd", "created_date"]].reset_index().merge(
        subs[["contract_id", "product_id", "quantity", "terminated_date", "created_date",
              "revised_subscription_id", "start_date", "end_date"]],
        on="contract_id", suffixes=("_c", ""))
    known = rows[rows["created_date"] <= rows["fd"]]
    later = known[known["created_date"] > known["created_date_c"] + pd.Timedelta(days=1)]
    out["amendments_up"] = later[(later["quantity"] > 0)].groupby("index").size().reindex(c.index, fill_value=0).astype(float)
    out["amendments_down"] = later[(later["quantity"] < 0) & later["terminated_date"].isna()].groupby("index").size() \
        .reindex(c.index, fill_value=0).astype(float)
    out["termination_booked"] = later[later["terminated_date"].notna()].groupby("index").size() \
        .reindex(c.index, fill_value=0).gt(0).astype(float)
    active_now = known[(known["start_date"] <= known["fd"]) & (known["end_date"].isna() | (known["end_date"] >= known["fd"]))]
    qty = active_now.groupby(["index", "product_id"])["quantity"].sum()
    out["products"] = qty[qty > 0].groupby(level=0).size().reindex(c.index, fill_value=0).astype(float)
    out["units"] = qty.clip(lower=0).groupby(level=0).sum().reindex(c.index, fill_value=0.0)
    original = known[known["created_date"] <= known["created_date_c"] + pd.Timedelta(days=1)]
    units0 = original.groupby("index")["quantity"].sum().reindex(c.index, fill_value=0.0)
    out["units_change_in_term"] = _ratio_change(out["units"], units0)

    # Discount depth: the contract's price per unit against the median price of
    # the same product on contracts that started in the same quarter.
    out["price_vs_peers"] = _price_vs_peers(book, led, c)

    # Health signals: last value on the feature date, change over 3 months.
    sig = book.signals
    if len(sig):
        sig = sig.assign(known=sig["month"] + pd.offsets.MonthEnd(0))
        extra = [col for col in sig.columns if col not in ("account_id", "month", "known")
                 and pd.api.types.is_numeric_dtype(sig[col])]
        names = [s for s in BASE_SIGNALS if s in extra] + [s for s in extra if s not in BASE_SIGNALS]
        left = c[["account_id"]].assign(t=c["fd"])
        left_3m = c[["account_id"]].assign(t=c["fd"] - pd.Timedelta(days=91))
        for name in names:
            rows_ = sig[sig[name].notna()][["account_id", "known", name]]
            now = _asof(left, rows_, on_left="t", on_right="known", by="account_id", columns=[name])[name]
            before = _asof(left_3m, rows_, on_left="t", on_right="known", by="account_id", columns=[name])[name]
            out[name] = now.astype(float)
            out[f"{name}_change_3m"] = (now - before).astype(float)
        if "support_tickets" in names:
            roll = sig.sort_values(["account_id", "month"]).assign(
                tickets_3m=lambda d: d.groupby("account_id")["support_tickets"].transform(
                    lambda s: s.rolling(3, min_periods=1).mean()))
            out["support_tickets_3m_mean"] = _asof(left, roll, on_left="t", on_right="known", by="account_id",
                                                   columns=["tickets_3m"])["tickets_3m"].astype(float)
            # Tickets mean more from a small team than from a large one.
            out["support_tickets_per_100_units"] = (
                out["support_tickets_3m_mean"] * 100 / out["units"].where(out["units"] > 0)).astype(float)
        if "seat_utilization" in names and "active_users" in names:
            out["active_users_per_unit"] = (out["active_users"] / out["units"].where(out["units"] > 0)).astype(float)

    # The renewal opportunity as it stood on the feature date.
    opps = renewal_opportunities(book)
    opp_id = c["contract_id"].map(opps["opportunity_id"])
    opp_created = c["contract_id"].map(opps["created_date"])
    exists = opp_id.notna() & (opp_created <= c["fd"])
    out["renewal_opportunity_exists"] = exists.astype(float)
    hist = book.opportunity_history
    if len(hist):
        left = pd.DataFrame({"opportunity_id": opp_id.where(exists), "t": c["fd"]}, index=c.index)
        stage = _asof(left.dropna(subset=["opportunity_id"]), hist, on_left="t", on_right="created_date",
                      by="opportunity_id", columns=["stage", "probability"])
        out["renewal_stage"] = stage["stage"].reindex(c.index).astype(object)
        out["renewal_stage_probability"] = stage["probability"].reindex(c.index).astype(float)
    else:
        # Without stage history only the existence of the opportunity is known
        # on a past date; its current stage could be the outcome itself.
        out["renewal_stage"] = np.where(exists, "unknown", None)
        out["renewal_stage_probability"] = np.nan
    out["renewal_stage"] = out["renewal_stage"].where(exists, "none")

    out.index = pd.Index(c["contract_id"].to_numpy(), name="contract_id")
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _ratio_change(now: pd.Series, before: pd.Series) -> pd.Series:
    return ((now - before) / before.where(before.abs() > 0.005)).astype("float64")


def _price_vs_peers(book: Book, led: pd.DataFrame, c: pd.DataFrame) -> pd.Series:
    subs = book.subscriptions
    orig = led[subs["revised_subscription_id"].isna().to_numpy() & (subs["quantity"] > 0).to_numpy()
               & (led["charge_type"] == "recurring").to_numpy()]
    orig = orig.assign(quarter=orig["from_date"].dt.to_period("Q"))
    median = orig.groupby(["product_id", "quarter"])["annual_value"].median().rename("peer")
    orig = orig.join(median, on=["product_id", "quarter"])
    orig["rel"] = orig["annual_value"] / orig["peer"]
    weight = orig["quantity"] * orig["peer"]
    rel = (orig["rel"] * weight).groupby(orig["contract_id"]).sum() / weight.groupby(orig["contract_id"]).sum()
    return c["contract_id"].map(rel).astype("float64").set_axis(c.index)


def renewal_features(book: Book, as_of, lead_days: int = 120) -> pd.DataFrame:
    """Features of the contracts still to be renewed, as of ``as_of``.

    Contracts (not evergreen) ending after ``as_of`` and not yet renewed,
    featurised with what is known on ``as_of``.

    Parameters
    ----------
    book : Book
    as_of : date-like
    lead_days : int, default 120
        Kept for symmetry with :func:`renewal_training_set`; scoring uses
        ``as_of`` itself as the feature date.

    Returns
    -------
    DataFrame
        One row per contract, indexed by ``contract_id``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.renewal_features(rf.Book.empty(), "2024-06-30").empty
    True
    """
    cut = pd.Timestamp(as_of).normalize()
    view = book.as_of(cut)
    con = view.contracts
    renewed = set(con["renewed_contract_id"].dropna())
    con = con[~con["evergreen"].fillna(False).astype(bool) & (con["end_date"] > cut) & ~con["contract_id"].isin(renewed)]
    if con.empty:
        return pd.DataFrame(index=pd.Index([], name="contract_id"))
    return featurise_contracts(view, con, pd.Series(cut, index=con.index))


def renewal_training_set(book: Book, as_of=None, lead_days: int = 120) -> tuple[pd.DataFrame, pd.Series]:
    """Past renewal decisions with their features, each as of ``lead_days`` before the end.

    Parameters
    ----------
    book : Book
    as_of : date-like, optional
        Only decisions known by this date are used (default: the Book's
        data end).
    lead_days : int, default 120
        How long before the end date each decision is featurised.

    Returns
    -------
    X : DataFrame
        Features, indexed by ``contract_id`` (see :func:`renewal_features`).
    y : Series
        1 if the contract renewed, 0 if it churned or ended early, indexed
        like ``X``. Contracts that ended early before their feature date are
        left out (there was nothing to predict).

    Examples
    --------
    >>> import renewforecast as rf
    >>> X, y = rf.renewal_training_set(rf.Book.empty(), "2024-06-30")
    >>> len(X), len(y)
    (0, 0)
    """
    view = book if as_of is None else book.as_of(as_of)
    cut = view.resolve_as_of(as_of) if len(view.contracts) else pd.Timestamp(as_of or "1970-01-01")
    dec = renewal_decisions(view, None if as_of is None else cut) if len(view.contracts) else pd.DataFrame()
    if dec.empty:
        return pd.DataFrame(index=pd.Index([], name="contract_id")), pd.Series(dtype="int64", name="renewed")
    dec = dec[dec["outcome"] != "open"].copy()
    dec["fd"] = dec["end_date"] - pd.Timedelta(days=lead_days)
    con = view.contracts.set_index("contract_id").loc[dec["contract_id"]].reset_index()
    con.index = dec.index
    # An early termination booked before the feature date left nothing to predict.
    subs = view.subscriptions
    term = subs[subs["terminated_date"].notna()].groupby("contract_id")["created_date"].min()
    gone = dec["contract_id"].map(term) <= dec["fd"]
    dec, con = dec[~gone], con[~gone]
    X = featurise_contracts(view, con, dec["fd"])
    y = pd.Series((dec["outcome"] == "renewed").astype("int64").to_numpy(), index=X.index, name="renewed")
    return X, y
