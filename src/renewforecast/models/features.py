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

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.dates import CENT, month_end
from renewforecast.ledger.renewals import renewal_decisions, renewal_opportunities
from renewforecast.ledger.valuation import counts_on, last_counted_day, ledger, object_values

__all__ = [
    "BASE_SIGNALS",
    "UnusedSignalsWarning",
    "WholeBook",
    "featurise_contracts",
    "model_signals",
    "peer_prices",
    "recent_decision_features",
    "renewal_features",
    "renewal_training_set",
    "whole_book_facts",
]

#: Signal columns with a known meaning; any other numeric signal column is
#: picked up the same way (last value and 3-month change).
BASE_SIGNALS = ("seat_utilization", "active_users", "support_tickets", "nps")

_DAYS_PER_MONTH = 365.25 / 12


class UnusedSignalsWarning(UserWarning):
    """The Book's signals have numeric columns the scoring model was not trained on; they are ignored."""


def model_signals(book: Book, feature_names: Iterable[str]) -> list[str]:
    """The signal columns of ``book`` that a model trained on ``feature_names`` uses.

    A signal column ``s`` is used when ``s`` or ``s_change_3m`` is one of the
    model's features. Every other numeric signal column is ignored: one
    :class:`UnusedSignalsWarning` says how many and names the first few, and
    passing the result as ``signals=`` to :func:`renewal_features` skips
    featurising them (so a wide ``signals.csv`` does not slow scoring).

    Parameters
    ----------
    book : Book
    feature_names : iterable of str
        The model's ``feature_names_in_``.

    Returns
    -------
    list of str
        Used signal columns, in :func:`renewal_features` order.

    Examples
    --------
    >>> import warnings
    >>> import pandas as pd, renewforecast as rf
    >>> from renewforecast.schemas import TABLES, conform
    >>> sig = conform(pd.DataFrame({"account_id": ["a"], "month": ["2024-01-01"], "nps": [40.0],
    ...                             "logins": [3.0], "exports": [1.0]}), "signals")
    >>> book = rf.Book(**{t: sig if t == "signals" else conform(pd.DataFrame(), t) for t in TABLES})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     model_signals(book, ["nps", "logins_change_3m", "arr"])
    ['nps', 'logins']
    >>> str(caught[0].message)[:60]
    '1 numeric signal column(s) the model was not trained on are '
    """
    wanted = set(feature_names)
    names = _signal_names(book.signals, None)
    used = [s for s in names if s in wanted or f"{s}_change_3m" in wanted]
    unused = [s for s in names if s not in used]
    if unused:
        shown = ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")
        warnings.warn(
            f"{len(unused)} numeric signal column(s) the model was not trained on are ignored "
            f"({shown}); retrain the model to use them",
            UnusedSignalsWarning,
            stacklevel=2,
        )
    return used


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


def _values_at(led: pd.DataFrame, key: str, keys: pd.Series, *dates: pd.Series) -> list[pd.Series]:
    """Sum of quantity x annual value of ledger rows known and active on each key's date.

    ``keys`` are values of ``led[key]`` (contract or account ids); each series
    of ``dates`` is aligned with ``keys``. Returns one Series per date series.
    """
    nat = np.iinfo(np.int64).min
    results = [np.zeros(len(keys)) for _ in dates]
    # A row counts from the later of the day it was booked and its first day
    # to its last counted day (the counts_on rule). The value on a day is then
    # what had started by that day minus what had stopped before it: two
    # sorted running sums per key, instead of pairing each key's dates with
    # every row of its account, which grows with the square of account size.
    first = np.maximum(
        led["created_date"].to_numpy(dtype="datetime64[ns]"), led["from_date"].to_numpy(dtype="datetime64[ns]")
    ).view(np.int64)
    last = last_counted_day(
        led["to_date"].to_numpy(dtype="datetime64[ns]"), led["chain_terminated"].to_numpy(dtype="datetime64[ns]")
    ).view(np.int64)
    last = np.where(last == nat, np.iinfo(np.int64).max, last)  # open-ended rows never stop
    codes, uniques = pd.factorize(object_values(led[key]))
    ok = (codes >= 0) & (first != nat) & (first <= last)
    codes, first, last = codes[ok], first[ok], last[ok]
    value = (led["quantity"].to_numpy(dtype="float64") * led["annual_value"].to_numpy(dtype="float64"))[ok]
    value = np.where(np.isnan(value), 0.0, value)  # a missing amount adds nothing, as in a sum
    if not len(codes) or not len(keys):
        return [pd.Series(r, index=keys.index) for r in results]
    asked = pd.Index(uniques).get_indexer(object_values(keys))
    when = [pd.to_datetime(d).to_numpy(dtype="datetime64[ns]").view(np.int64) for d in dates]
    started = _running_sums(codes, first, value, asked, when, strict=False)
    stopped = _running_sums(codes, last, value, asked, when, strict=True)
    for res, (s_sum, s_n), (e_sum, e_n) in zip(results, started, stopped, strict=True):
        # No row counting is exactly zero, whatever the rounding of the sums.
        res[:] = np.where(s_n > e_n, (s_sum - e_sum).astype(np.float64), 0.0)
    return [pd.Series(r, index=keys.index) for r in results]


def _running_sums(
    codes: np.ndarray, times: np.ndarray, value: np.ndarray, asked: np.ndarray, when: list[np.ndarray], *, strict: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per asked key code and date: sum and count of the key's rows with time <= date (< date if ``strict``)."""
    nat = np.iinfo(np.int64).min
    order = np.lexsort((times, codes))
    sc, st = codes[order], times[order]
    sums = _group_cumsum(value[order], sc)
    # One integer key per (code, time) so that one searchsorted finds, for
    # every asked date, the last row of its key up to that date.
    ranks = np.unique(np.concatenate([st, *when]))
    width = len(ranks) + 1
    row_key = sc * width + np.searchsorted(ranks, st)
    group_start = np.searchsorted(sc, asked)
    out = []
    for d in when:
        p = np.searchsorted(row_key, asked * width + np.searchsorted(ranks, d), side="left" if strict else "right") - 1
        hit = (asked >= 0) & (d != nat) & (p >= 0) & (sc[np.maximum(p, 0)] == asked)
        out.append(
            (
                np.where(hit, sums[np.maximum(p, 0)], np.longdouble(0)),
                np.where(hit, p - group_start + 1, 0),
            )
        )
    return out


def _group_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Running sums restarting at each group (``groups`` sorted), in extended precision.

    Each running sum covers its own group only, and is carried in extended
    precision, so the difference of two of them rounds like a direct sum of
    the rows between (a single running sum over the whole ledger would carry
    the rounding of every earlier account). Doubling steps: log2 of the
    largest group passes over the array.
    """
    x = values.astype(np.longdouble)
    step = 1
    while step < len(x):
        same = groups[step:] == groups[:-step]
        if not same.any():
            break
        x[step:] = np.where(same, x[step:] + x[:-step], x[step:])
        step *= 2
    return x


def _asof(
    left: pd.DataFrame, right: pd.DataFrame, *, on_left: str, on_right: str, by: str, columns: list[str]
) -> pd.DataFrame:
    """Last row of ``right`` per ``by`` with ``on_right <= on_left``, aligned to ``left``."""
    if not len(right) or not len(left):
        return pd.DataFrame(dict.fromkeys(columns, np.nan), index=left.index)
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


def featurise_contracts(
    book: Book,
    contracts: pd.DataFrame,
    feature_dates: pd.Series,
    *,
    signals: Iterable[str] | None = None,
    whole: WholeBook | None = None,
) -> pd.DataFrame:
    """Features of the given contracts, each as of its own feature date.

    Parameters
    ----------
    book : Book
        The full Book; each row only sees records created by its date.
    contracts : DataFrame
        Rows of ``book.contracts``.
    feature_dates : Series
        One date per row of ``contracts`` (same index).
    signals : iterable of str, optional
        Extra signal columns to featurise besides :data:`BASE_SIGNALS`
        (which are always featurised when present). Default: every numeric
        column of ``book.signals``. See :func:`renewal_features`.
    whole : WholeBook, optional
        The whole Book's facts when ``book`` is a slice of its accounts
        (default: ``book``'s own).

    Returns
    -------
    DataFrame
        Indexed by ``contract_id``; numbers as floats, categories as
        strings, missing values where nothing was known.

    Examples
    --------
    >>> import renewforecast as rf
    >>> book = rf.Book.empty()
    >>> featurise_contracts(book, book.contracts, pd.Series(dtype="datetime64[ns]")).shape[0]
    0
    """
    c = contracts[
        [
            "contract_id",
            "account_id",
            "start_date",
            "end_date",
            "term_months",
            "renewal_pricing_method",
            "renewal_uplift_rate",
            "created_date",
        ]
    ].copy()
    c["fd"] = pd.to_datetime(feature_dates).astype("datetime64[ns]").to_numpy()
    accounts = book.accounts.drop_duplicates("account_id").set_index("account_id")
    # Columns are collected in a dict and framed once at the end: inserting
    # them one by one into a DataFrame is quadratic in the number of columns.
    out: dict[str, pd.Series] = {}
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
    start_day = np.minimum(c["start_date"] + pd.Timedelta(days=1), c["fd"])
    out["arr"], arr_at_start = _values_at(led, "contract_id", c["contract_id"], c["fd"], start_day)
    out["arr_change_in_term"] = _ratio_change(out["arr"], arr_at_start)
    account_arr, account_arr_12m = _values_at(
        led, "account_id", c["account_id"], c["fd"], c["fd"] - pd.Timedelta(days=365)
    )
    out["account_arr_change_12m"] = _ratio_change(account_arr, account_arr_12m)

    # Seats, products and amendments on the contract, as booked by the feature date.
    # Seats and products are recurring lines; fees and usage are not seats.
    subs = book.subscriptions[book.subscriptions["charge_type"].fillna("recurring") == "recurring"]
    rows = (
        c[["contract_id", "fd", "created_date"]]
        .reset_index()
        .merge(
            subs[
                [
                    "contract_id",
                    "product_id",
                    "quantity",
                    "terminated_date",
                    "created_date",
                    "revised_subscription_id",
                    "start_date",
                    "end_date",
                ]
            ],
            on="contract_id",
            suffixes=("_c", ""),
        )
    )
    known = rows[rows["created_date"] <= rows["fd"]]
    later = known[known["created_date"] > known["created_date_c"] + pd.Timedelta(days=1)]
    out["amendments_up"] = (
        later[(later["quantity"] > 0)].groupby("index").size().reindex(c.index, fill_value=0).astype(float)
    )
    out["amendments_down"] = (
        later[(later["quantity"] < 0) & later["terminated_date"].isna()]
        .groupby("index")
        .size()
        .reindex(c.index, fill_value=0)
        .astype(float)
    )
    out["termination_booked"] = (
        later[later["terminated_date"].notna()]
        .groupby("index")
        .size()
        .reindex(c.index, fill_value=0)
        .gt(0)
        .astype(float)
    )
    # Units as booked on the contract's own dates: a booked termination is its own feature above.
    active_now = known[counts_on(known["start_date"], known["end_date"], None, known["fd"])]
    qty = active_now.groupby(["index", "product_id"])["quantity"].sum()
    out["products"] = qty[qty > 0].groupby(level=0).size().reindex(c.index, fill_value=0).astype(float)
    out["units"] = qty.clip(lower=0).groupby(level=0).sum().reindex(c.index, fill_value=0.0)
    original = known[known["created_date"] <= known["created_date_c"] + pd.Timedelta(days=1)]
    units0 = original.groupby("index")["quantity"].sum().reindex(c.index, fill_value=0.0)
    out["units_change_in_term"] = _ratio_change(out["units"], units0)

    # Discount depth: the contract's price per unit against the median price of
    # the same product on contracts that started in the same quarter.
    out["price_vs_peers"] = _price_vs_peers(book, led, c, whole.peers if whole else None)

    # Health signals: last value on the feature date, change over 3 months.
    sig = book.signals
    if whole.signals if whole else len(sig):
        # Not assigned into ``sig``: that would copy every (possibly thousands of) signal column.
        known = month_end(sig["month"])
        names = _signal_names(sig, signals)
        left = c[["account_id"]].assign(t=c["fd"])
        # Every signal column at once: one lookup of each contract's latest
        # known month, then a forward fill per block of columns, so the cost
        # grows linearly with the number of signal columns.
        now, before = _last_known(sig, known, names, c["account_id"], c["fd"], c["fd"] - pd.Timedelta(days=91))
        change = np.subtract(now, before, out=before)
        for j, name in enumerate(names):
            out[name] = pd.Series(now[:, j], index=c.index, copy=False)
            out[f"{name}_change_3m"] = pd.Series(change[:, j], index=c.index, copy=False)
        if "support_tickets" in names:
            roll = (
                sig[["account_id", "month", "support_tickets"]].assign(known=known).sort_values(["account_id", "month"])
            )
            # One rolling pass over all accounts (not a Python call per account).
            roll["tickets_3m"] = (
                roll.groupby("account_id", sort=False)["support_tickets"].rolling(3, min_periods=1).mean().droplevel(0)
            )
            out["support_tickets_3m_mean"] = _asof(
                left, roll, on_left="t", on_right="known", by="account_id", columns=["tickets_3m"]
            )["tickets_3m"].astype(float)
            # Tickets mean more from a small team than from a large one.
            out["support_tickets_per_100_units"] = (
                out["support_tickets_3m_mean"] * 100 / out["units"].where(out["units"] > 0)
            ).astype(float)
        if "seat_utilization" in names and "active_users" in names:
            out["active_users_per_unit"] = (out["active_users"] / out["units"].where(out["units"] > 0)).astype(float)

    # The renewal opportunity as it stood on the feature date.
    opps = renewal_opportunities(book)
    opp_id = c["contract_id"].map(opps["opportunity_id"])
    opp_created = c["contract_id"].map(opps["created_date"])
    exists = opp_id.notna() & (opp_created <= c["fd"])
    out["renewal_opportunity_exists"] = exists.astype(float)
    hist = book.opportunity_history
    if whole.stage_history if whole else len(hist):
        left = pd.DataFrame({"opportunity_id": opp_id.where(exists), "t": c["fd"]}, index=c.index)
        stage = _asof(
            left.dropna(subset=["opportunity_id"]),
            hist,
            on_left="t",
            on_right="created_date",
            by="opportunity_id",
            columns=["stage", "probability"],
        )
        out["renewal_stage"] = stage["stage"].reindex(c.index).astype(object)
        out["renewal_stage_probability"] = stage["probability"].reindex(c.index).astype(float)
    else:
        # Without stage history only the existence of the opportunity is known
        # on a past date; its current stage could be the outcome itself.
        out["renewal_stage"] = pd.Series(np.where(exists, "unknown", None), index=c.index, dtype=object)
        out["renewal_stage_probability"] = pd.Series(np.nan, index=c.index)
    out["renewal_stage"] = out["renewal_stage"].where(exists, "none")

    columns = {}
    for name, col in out.items():
        if not col.index.equals(c.index):
            col = col.reindex(c.index)
        if col.dtype == object:
            col = col.where(col.notna(), None)
        columns[name] = col.to_numpy()
    return pd.DataFrame(columns, index=pd.Index(c["contract_id"].to_numpy(), name="contract_id"))


def _signal_names(sig: pd.DataFrame, signals) -> list[str]:
    """The numeric signal columns to featurise: the known ones first, then the rest in file order."""
    dtypes = sig.dtypes
    extra = [
        col
        for col in sig.columns
        if col not in ("account_id", "month", "known") and pd.api.types.is_numeric_dtype(dtypes[col])
    ]
    names = [s for s in BASE_SIGNALS if s in extra] + [s for s in extra if s not in BASE_SIGNALS]
    if signals is not None:
        keep = set(signals)
        names = [s for s in names if s in BASE_SIGNALS or s in keep]
    return names


def _last_known(
    sig: pd.DataFrame, known: pd.Series, names: list[str], account: pd.Series, *dates: pd.Series
) -> list[np.ndarray]:
    """Latest non-missing value of each signal column known on each date, per account.

    ``known`` is the date each row of ``sig`` became known (its month end).
    For every date series (aligned with ``account``) returns an array of shape
    ``(len(account), len(names))``: the value from the last month whose end is
    on or before the date and where that column is filled, missing when there
    is none. Months with the same end keep their file order (the last wins),
    as ``merge_asof`` would.
    """
    n, k = len(account), len(names)
    results = [np.full((n, k), np.nan, order="F") for _ in dates]
    if not n or not k or not len(sig):
        return results
    codes, uniques = pd.factorize(sig["account_id"].astype(object))
    known = known.to_numpy(dtype="datetime64[ns]").view("int64")
    nat = np.datetime64("NaT", "ns").view("int64")
    rows = np.flatnonzero((codes >= 0) & (known != nat))
    order = rows[np.lexsort((known[rows], codes[rows]))]  # lexsort is stable
    if not len(order):
        return results
    sc, sk = codes[order], known[order]
    first = np.r_[True, sc[1:] != sc[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    # One integer key per (account, time) so a single searchsorted finds, for
    # every contract, the last signal row known by its date.
    left_codes = pd.Index(uniques).get_indexer(account.astype(object).to_numpy())
    left_times = [pd.to_datetime(d).to_numpy(dtype="datetime64[ns]").view("int64") for d in dates]
    times = np.unique(np.concatenate([sk, *left_times]))
    width = len(times) + 1
    key = sc * width + np.searchsorted(times, sk)
    lookups = []
    for t in left_times:
        p = np.searchsorted(key, left_codes * width + np.searchsorted(times, t), side="right") - 1
        p = np.maximum(p, 0)
        hit = (left_codes >= 0) & (t != nat) & (sc[p] == left_codes) & (sk[p] <= t)
        lookups.append((p, hit))
    # Forward fill by position, a block of columns at a time (bounded memory):
    # the last filled row at or before p, if it belongs to p's account.
    step = max(1, (1 << 22) // len(order))
    ramp = np.arange(len(order))[:, None]
    for lo in range(0, k, step):
        cols = names[lo : lo + step]
        block = sig[cols].to_numpy(dtype="float64", na_value=np.nan)[order]
        last = np.where(np.isnan(block), -1, ramp)
        np.maximum.accumulate(last, axis=0, out=last)
        col_idx = np.arange(len(cols))[None, :]
        for res, (p, hit) in zip(results, lookups, strict=True):
            at = last[p]
            ok = hit[:, None] & (at >= group_start[p][:, None])
            res[:, lo : lo + len(cols)] = np.where(ok, block[np.maximum(at, 0), col_idx], np.nan)
    return results


def _ratio_change(now: pd.Series, before: pd.Series) -> pd.Series:
    return ((now - before) / before.where(before.abs() > CENT)).astype("float64")


def _original_lines(book: Book, led: pd.DataFrame) -> pd.DataFrame:
    """The original recurring lines of ``led`` (the Book's ledger), with the quarter they start in."""
    subs = book.subscriptions
    orig = led[
        subs["revised_subscription_id"].isna().to_numpy()
        & (subs["quantity"] > 0).to_numpy()
        & (led["charge_type"] == "recurring").to_numpy()
    ]
    return orig.assign(quarter=orig["from_date"].dt.to_period("Q").dt.start_time)


@dataclass(frozen=True)
class WholeBook:
    """What the features of some of a Book's accounts need to know about all of them.

    Every feature of a contract comes from its own account's records except
    three facts about the whole Book as known on the feature date: the
    median price of each product per start quarter (``price_vs_peers``),
    whether the org records health signals, and whether it records
    opportunity stage history. :func:`renewal_features` works them out from
    the Book it is given; where a Book is cut into slices of accounts (Spark
    partitions), each slice's :func:`whole_book_facts` are pooled instead
    and passed as ``whole=``.

    Parameters
    ----------
    peers : Series
        :func:`peer_prices`: median price per unit by ``product_id`` and ``quarter``.
    signals : bool
        Whether any signal row is known.
    stage_history : bool
        Whether any stage-history row is known.
    """

    peers: pd.Series
    signals: bool
    stage_history: bool

    @classmethod
    def from_facts(cls, facts: pd.DataFrame) -> WholeBook:
        """Pool :func:`whole_book_facts` of one Book or of every slice of it.

        Examples
        --------
        >>> import renewforecast as rf
        >>> whole = WholeBook.from_facts(whole_book_facts(rf.Book.empty(), "2024-06-30"))
        >>> whole.signals, whole.stage_history, len(whole.peers)
        (False, False, 0)
        """
        lines = facts[facts["product_id"].notna()]
        return cls(
            peers=peer_prices(lines),
            signals=bool(facts["signal_rows"].sum() > 0),
            stage_history=bool(facts["history_rows"].sum() > 0),
        )


def whole_book_facts(book: Book, as_of) -> pd.DataFrame:
    """The facts :class:`WholeBook` pools, from ``book`` as known on ``as_of``.

    Parameters
    ----------
    book : Book
        A whole Book or a slice of its accounts.
    as_of : date-like

    Returns
    -------
    DataFrame
        One row per original recurring line (``product_id``, ``quarter``,
        its first day, and ``annual_value`` per unit: what ``price_vs_peers``
        compares), then one row without a product holding ``signal_rows``
        and ``history_rows``, the numbers of signal and stage-history rows
        known.

    Examples
    --------
    >>> import renewforecast as rf
    >>> whole_book_facts(rf.Book.empty(), "2024-06-30").columns.tolist()
    ['product_id', 'quarter', 'annual_value', 'signal_rows', 'history_rows']
    """
    view = book.as_of(pd.Timestamp(as_of).normalize())
    orig = _original_lines(view, ledger(view))
    lines = pd.DataFrame(
        {
            "product_id": orig["product_id"].astype(object).to_numpy(),
            "quarter": orig["quarter"].to_numpy(dtype="datetime64[ns]"),
            "annual_value": orig["annual_value"].to_numpy(dtype="float64"),
            "signal_rows": 0,
            "history_rows": 0,
        }
    )
    counts = pd.DataFrame(
        {
            "product_id": [None],
            "quarter": np.array(["NaT"], dtype="datetime64[ns]"),
            "annual_value": [np.nan],
            "signal_rows": [len(view.signals)],
            "history_rows": [len(view.opportunity_history)],
        }
    )
    return pd.concat([lines, counts], ignore_index=True).astype({"signal_rows": "int64", "history_rows": "int64"})


def peer_prices(lines: pd.DataFrame) -> pd.Series:
    """Median price per unit of each product and start quarter: the peers of ``price_vs_peers``.

    Parameters
    ----------
    lines : DataFrame
        Original recurring lines: ``product_id``, ``quarter``, ``annual_value``
        (the lines of :func:`whole_book_facts`).

    Returns
    -------
    Series
        ``peer``, indexed by ``product_id`` and ``quarter``.

    Examples
    --------
    >>> import pandas as pd
    >>> lines = pd.DataFrame({"product_id": ["p", "p", "p"], "quarter": pd.to_datetime(["2024-01-01"] * 3),
    ...                       "annual_value": [100.0, 120.0, 200.0]})
    >>> float(peer_prices(lines).iloc[0])
    120.0
    """
    return lines.groupby(["product_id", "quarter"])["annual_value"].median().rename("peer")


def _price_vs_peers(book: Book, led: pd.DataFrame, c: pd.DataFrame, peers: pd.Series | None) -> pd.Series:
    orig = _original_lines(book, led)
    median = peer_prices(orig) if peers is None else peers.rename("peer")
    orig = orig.join(median, on=["product_id", "quarter"])
    orig["rel"] = orig["annual_value"] / orig["peer"]
    weight = orig["quantity"] * orig["peer"]
    rel = (orig["rel"] * weight).groupby(orig["contract_id"]).sum() / weight.groupby(orig["contract_id"]).sum()
    return c["contract_id"].map(rel).astype("float64").set_axis(c.index)


def renewal_features(
    book: Book,
    as_of,
    lead_days: int = 120,
    *,
    signals: Iterable[str] | None = None,
    whole: WholeBook | None = None,
) -> pd.DataFrame:
    """Features of the contracts still to be renewed, as of ``as_of``.

    Contracts (not evergreen) ending after ``as_of`` and not yet renewed,
    featurised with what is known on ``as_of``.

    Every numeric column of ``book.signals`` (``signals.csv``), the known
    :data:`BASE_SIGNALS` and any extra column alike, becomes two features:
    ``<column>`` (the last filled value of a month that had ended) and
    ``<column>_change_3m`` (that value minus the one known 91 days
    earlier). A model trained on these features uses the extra columns like
    any other; :func:`renewforecast.score_contracts` featurises only the
    extra columns its model was trained on and warns once about the others.
    The cost grows linearly with the number of signal columns.

    Parameters
    ----------
    book : Book
    as_of : date-like
    lead_days : int, default 120
        Kept for symmetry with :func:`renewal_training_set`; scoring uses
        ``as_of`` itself as the feature date.
    signals : iterable of str, optional
        Extra signal columns to featurise; the :data:`BASE_SIGNALS` present
        are always featurised, names absent from the Book are skipped.
        Default: every numeric signal column.
    whole : WholeBook, optional
        The facts of the whole Book (:meth:`WholeBook.from_facts` of every
        slice's :func:`whole_book_facts`) when ``book`` holds only some of its
        accounts, as a Spark partition does; default: ``book``'s own.

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
    con = con[
        ~con["evergreen"].fillna(False).astype(bool) & (con["end_date"] > cut) & ~con["contract_id"].isin(renewed)
    ]
    if con.empty:
        return pd.DataFrame(index=pd.Index([], name="contract_id"))
    return featurise_contracts(view, con, pd.Series(cut, index=con.index), signals=signals, whole=whole)


def renewal_training_set(
    book: Book, as_of=None, lead_days: int = 120, *, signals: Iterable[str] | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Past renewal decisions with their features, each as of ``lead_days`` before the end.

    Parameters
    ----------
    book : Book
    as_of : date-like, optional
        Only decisions known by this date are used (default: the Book's
        data end).
    lead_days : int, default 120
        How long before the end date each decision is featurised.
    signals : iterable of str, optional
        Extra signal columns to featurise (default: every numeric signal
        column; see :func:`renewal_features`).

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
    dec, con = _decisions_at_lead(view, None if as_of is None else cut, lead_days)
    if not dec.empty:
        decided = (dec["outcome"] != "open").to_numpy()
        dec, con = dec[decided], con[decided]
    if dec.empty:
        return pd.DataFrame(index=pd.Index([], name="contract_id")), pd.Series(dtype="int64", name="renewed")
    X = featurise_contracts(view, con, dec["fd"], signals=signals)
    y = pd.Series((dec["outcome"] == "renewed").astype("int64").to_numpy(), index=X.index, name="renewed")
    return X, y


def _decisions_at_lead(view: Book, cut, lead_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Renewal decisions (open ones too) with their feature date ``fd``, and their contract rows.

    The feature date is ``lead_days`` before the end. A contract whose early
    termination was booked before its feature date is left out: there was
    nothing left to predict.
    """
    dec = renewal_decisions(view, cut) if len(view.contracts) else pd.DataFrame()
    if dec.empty:
        return dec, pd.DataFrame()
    dec = dec.copy()
    dec["fd"] = dec["end_date"] - pd.Timedelta(days=lead_days)
    con = view.contracts.set_index("contract_id").loc[dec["contract_id"]].reset_index()
    con.index = dec.index
    subs = view.subscriptions
    term = subs[subs["terminated_date"].notna()].groupby("contract_id")["created_date"].min()
    gone = (dec["contract_id"].map(term) <= dec["fd"]).to_numpy()
    return dec[~gone], con[~gone]


def recent_decision_features(
    book: Book,
    as_of,
    lead_days: int = 120,
    *,
    window_days: int = 365,
    signals: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Features of the contracts that reached their prediction date recently, each as of that date.

    A renewal model learns from contracts featurised ``lead_days`` before
    their end (:func:`renewal_training_set`). These are the contracts whose
    own such date fell in the ``window_days`` up to ``as_of``, decided or
    not, featurised the same way: the population the model works on at the
    point it was trained for, and what
    :func:`renewforecast.drift_report` compares with its training data.
    (The open contracts :func:`renewal_features` scores sit anywhere in
    their term: their tenure, renewal stage and signal trends differ from
    the training rows by construction, not by drift.)

    Parameters
    ----------
    book : Book
    as_of : date-like
        Only what was known at the end of this day is used.
    lead_days : int, default 120
        As for :func:`renewal_training_set`.
    window_days : int, default 365
        How far back prediction dates are taken: contracts ending from
        ``as_of + lead_days - window_days`` (exclusive) to ``as_of +
        lead_days``.
    signals : iterable of str, optional
        Extra signal columns to featurise (see :func:`renewal_features`).

    Returns
    -------
    DataFrame
        One row per contract, indexed by ``contract_id``, with the columns
        of :func:`renewal_training_set`'s ``X``.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.recent_decision_features(rf.Book.empty(), "2024-06-30").empty
    True
    """
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    cut = pd.Timestamp(as_of).normalize()
    view = book.as_of(cut)
    dec, con = _decisions_at_lead(view, cut, lead_days)
    if not dec.empty:
        recent = ((dec["fd"] > cut - pd.Timedelta(days=window_days)) & (dec["fd"] <= cut)).to_numpy()
        dec, con = dec[recent], con[recent]
    if dec.empty:
        return pd.DataFrame(index=pd.Index([], name="contract_id"))
    return featurise_contracts(view, con, dec["fd"], signals=signals)
