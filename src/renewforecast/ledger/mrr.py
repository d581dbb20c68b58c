"""Monthly recurring revenue from the subscription ledger: MRR at month ends and its movements.

A ledger row counts at a month end when it counts on that day
(:func:`renewforecast.ledger.valuation.counts_on`); MRR is a recurring row's
value per year / 12. Movements are classified per customer by ChartMogul's
rules, and ``start + new + expansion + reactivation - contraction - churn = end``
holds exactly, amounts under half a cent (:data:`renewforecast.dates.CENT`)
counting as zero. With dated exchange rates, :func:`mrr_table` and
:func:`mrr_movements` can value amounts in other currencies at each month
end's rate (``fx="spot"``) or one fixed date's (``fx="constant"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.currency import rates_on
from renewforecast.dates import CENT, month_end_of, month_number
from renewforecast.ledger.hierarchy import customer_ids
from renewforecast.ledger.renewals import lost_renewal_dates
from renewforecast.ledger.valuation import charge_types, group_codes, last_counted_day, object_values, row_values

__all__ = ["CHURN_AT", "FX_BASES", "MOVEMENTS", "mrr_movements", "mrr_table"]

#: When lost revenue stops counting: when service ends, or when the loss is booked.
CHURN_AT = ("term_end", "cancellation")


def _intervals(
    book: Book,
    churn_at: str = "term_end",
    columns=("account_id", "contract_id", "product_id"),
    *,
    with_currency: bool = False,
) -> pd.DataFrame:
    """Ledger rows with the first and last month end (as month numbers) they count at."""
    if churn_at not in CHURN_AT:
        raise ValueError(f"churn_at must be one of {CHURN_AT}, not {churn_at!r}")
    subs = book.subscriptions
    v = row_values(book, need_root=churn_at == "cancellation")
    stop = v["to_date"]
    term = v["chain_terminated"]
    if churn_at == "cancellation":
        # Recognise churn when it is booked: an early termination from the day
        # its rows were created, a lost renewal from the day it was closed.
        root = object_values(subs["subscription_id"])[v["root"]]
        booked = subs["created_date"].where(subs["terminated_date"].notna())
        # The chain's last counted day is the day before the termination was booked.
        booked_by_root = booked.groupby(root).min() - pd.Timedelta(days=1)
        term = np.where(np.isnat(term), term, pd.Series(root).map(booked_by_root).to_numpy(dtype="datetime64[ns]"))
        lost_on = subs["contract_id"].map(lost_renewal_dates(book)).to_numpy(dtype="datetime64[ns]")
        cut = ~np.isnat(lost_on) & (np.isnat(stop) | (lost_on <= stop))
        stop = np.where(cut, lost_on - np.timedelta64(1, "D"), stop)
    d_to = last_counted_day(stop, term).astype("datetime64[D]")
    last = month_number(d_to)
    not_month_end = ~np.isnat(d_to) & ((d_to + 1).astype("datetime64[M]") == d_to.astype("datetime64[M]"))
    last = last - not_month_end.astype(np.int64)
    first = month_number(v["from_date"].astype("datetime64[D]"))
    out = pd.DataFrame(
        {
            **{c: object_values(subs[c]) for c in dict.fromkeys(("account_id", *columns))},
            "from_date": v["from_date"],
            "mrr": v["quantity"] * v["annual_value"] / 12.0,
            "first": first,
            "last": last,
        }
    )
    if with_currency:
        out["currency"] = (
            object_values(subs["currency"]) if "currency" in subs.columns else np.full(len(subs), None, dtype=object)
        )
    # One-time fees and usage are never MRR.
    recurring = charge_types(subs) == "recurring"
    return out if recurring.all() else out[recurring].reset_index(drop=True)


def _month_range(book: Book, iv: pd.DataFrame, start, end) -> tuple[int, int]:
    if start is None:
        lo = int(iv["first"].min()) if len(iv) else month_number([np.datetime64("1970-01-01")])[0]
    else:
        lo = int(month_number([pd.Timestamp(start).to_datetime64()])[0])
    if end is None:
        data_end = book.data_end
        hi = int(month_number([data_end.to_datetime64()])[0]) if data_end is not None else lo
    else:
        hi = int(month_number([pd.Timestamp(end).to_datetime64()])[0])
    # hi < lo is no month at all: an end before the first month with a subscription.
    return lo, hi


def _dense(
    codes: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    weights: np.ndarray,
    n_groups: int,
    lo: int,
    hi: int,
    with_counts: bool = True,
):
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


#: Cells (groups x months) of one dense array built at once: bounds the memory of a large book.
#: The bridge holds about fifteen such arrays, MRR at month ends two.
_TABLE_CELLS = 20_000_000
_BRIDGE_CELLS = 4_000_000


def _blocks(codes: np.ndarray, n_groups: int, n_months: int, cells: int) -> list[tuple[int, int, np.ndarray]]:
    """Consecutive ranges of group codes, each with the positions of its rows, of at most ``cells`` cells."""
    block = max(1, cells // (n_months + 1))
    if n_groups <= block:
        return [(0, n_groups, np.arange(len(codes)))]
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    out = []
    for g0 in range(0, n_groups, block):
        g1 = min(n_groups, g0 + block)
        a, b = np.searchsorted(sorted_codes, [g0, g1])
        out.append((g0, g1, order[a:b]))
    return out


def _month_major(parts: list[dict[str, np.ndarray]], month_key: str = "_mi") -> dict[str, np.ndarray]:
    """Blocks' columns joined in month-major order, groups in code order within a month.

    Each block's rows are month-major and the blocks hold consecutive ranges
    of group codes, so a stable sort on the month alone orders the whole
    (no sort on the group keys). Columns are joined one at a time and each
    block's copy dropped at once, so the peak is one output plus one column.
    """
    if len(parts) == 1:
        return parts[0]
    perm = np.argsort(np.concatenate([p[month_key] for p in parts]), kind="stable")
    out = {}
    for name in list(parts[0]):
        out[name] = np.concatenate([p.pop(name) for p in parts])[perm]
    return out


#: Which exchange rates value amounts in other currencies.
FX_BASES = ("booked", "spot", "constant")


def _fx_basis(book: Book, fx: str, fx_date) -> bool:
    """Whether MRR must be revalued at other rates than the booked ones."""
    if fx not in FX_BASES:
        raise ValueError(f"fx must be one of {FX_BASES}, not {fx!r}")
    if fx == "constant" and fx_date is None:
        raise ValueError("fx='constant' needs fx_date: the day whose rates value every month")
    subs = book.subscriptions
    return (
        fx != "booked"
        and len(book.fx_rates) > 0
        and "currency" in subs.columns
        and bool(subs["currency"].notna().any())
    )


def _dense_fx(
    book: Book, iv: pd.DataFrame, codes: np.ndarray, n_groups: int, lo: int, hi: int, fx: str, fx_date
) -> tuple[np.ndarray, np.ndarray]:
    """Per group and month end: MRR at the chosen rates, and last month's MRR at this month's rates.

    Each row's booked amount goes back to its own currency at the rate of its
    start date, is summed per group and currency, and is valued at each month
    end's rate (``spot``) or at ``fx_date``'s (``constant``).
    """
    n_months = hi - lo + 1
    months = month_end_of(np.arange(lo, hi + 1))
    cur = iv["currency"].to_numpy(dtype=object)
    booked = rates_on(book.fx_rates, cur, iv["from_date"].to_numpy(), book.currency)
    booked = np.where(np.isfinite(booked), booked, 1.0)
    values = np.zeros((n_groups, n_months))
    revalued = np.zeros((n_groups, n_months))
    keys = pd.Series(cur).fillna("").to_numpy(dtype=object)
    for code in pd.unique(keys):
        rows = keys == code
        native, _ = _dense(
            codes[rows],
            iv["first"].to_numpy()[rows],
            iv["last"].to_numpy()[rows],
            iv["mrr"].to_numpy()[rows] * booked[rows],
            n_groups,
            lo,
            hi,
            with_counts=False,
        )
        if fx == "spot":
            rate = rates_on(book.fx_rates, [code or None] * n_months, months, book.currency)
        else:
            rate = np.repeat(rates_on(book.fx_rates, [code or None], [pd.Timestamp(fx_date)], book.currency), n_months)
        rate = np.where(np.isfinite(rate), rate, 1.0)
        values += native / rate[None, :]
        revalued[:, 1:] += native[:, :-1] / rate[None, 1:]
    return values, revalued


def mrr_table(
    book: Book,
    start=None,
    end=None,
    by=("account_id",),
    *,
    churn_at: str = "term_end",
    customer: str = "account",
    fx: str = "booked",
    fx_date=None,
) -> pd.DataFrame:
    """Monthly recurring revenue at each month end, from the subscription ledger.

    Parameters
    ----------
    book : Book
    start, end : date-like, optional
        First and last month (any day in it). By default from the first
        month with a subscription to the month of the Book's data end; give
        a later ``end`` to see contracted MRR ahead. An ``end`` before the
        first month with a subscription gives no rows.
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
    iv = _intervals(
        book, churn_at, columns=[k for k in keys if k in ("contract_id", "product_id")], with_currency=revalue
    )
    iv["account_id"] = customer_ids(book, iv["account_id"].to_numpy(dtype=object), customer)
    lo, hi = _month_range(book, iv, start, end)
    codes, uniques = group_codes(iv, keys, book)
    n_groups = len(uniques) if keys else 1
    months = month_end_of(np.arange(lo, hi + 1))
    if not len(iv) or hi < lo:
        return pd.DataFrame(
            {
                "month": pd.Series(dtype="datetime64[ns]"),
                **{k: pd.Series(dtype="string") for k in keys},
                "mrr": pd.Series(dtype="float64"),
            }
        )
    parts = []
    first_all, last_all, mrr_all = iv["first"].to_numpy(), iv["last"].to_numpy(), iv["mrr"].to_numpy()
    for g0, g1, rows in _blocks(codes, n_groups, hi - lo + 1, _TABLE_CELLS):
        values, counts = _dense(codes[rows] - g0, first_all[rows], last_all[rows], mrr_all[rows], g1 - g0, lo, hi)
        if revalue:
            values, _ = _dense_fx(book, iv.iloc[rows], codes[rows] - g0, g1 - g0, lo, hi, fx, fx_date)
        mi, gi = np.nonzero(counts.T > 0)  # month-major, groups in sorted order
        parts.append({"_mi": mi, "_gi": gi + g0, "mrr": np.round(values.T[mi, gi], 6)})
        del values, counts
    cols = _month_major(parts)
    out = pd.DataFrame({"month": months[cols["_mi"]]})
    for k in keys:
        out[k] = uniques[k].to_numpy()[cols["_gi"]]
        if k in ("account_id", "contract_id", "product_id") or str(book.accounts[k].dtype) == "string":
            out[k] = out[k].astype("string")
    out["mrr"] = cols["mrr"]
    return out


# ------------------------------------------------------------- MRR movements

MOVEMENTS = ("new", "expansion", "reactivation", "contraction", "churn")


def _bridge(
    book: Book,
    iv: pd.DataFrame,
    codes: np.ndarray,
    n: int,
    full_lo: int,
    hi: int,
    first_col: int,
    revalue: bool,
    *,
    reactivation_months: int | None,
    same_month: str,
    fx: str,
    fx_date,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The bridge of ``n`` customers (``codes`` 0..n-1): month and customer of each row, and its movements."""
    # One month before the first so that the first month has a start.
    if revalue:
        values, revalued = _dense_fx(book, iv, codes, n, full_lo - 1, hi, fx, fx_date)
    else:
        values, _ = _dense(
            codes,
            iv["first"].to_numpy(),
            iv["last"].to_numpy(),
            iv["mrr"].to_numpy(),
            n,
            full_lo - 1,
            hi,
            with_counts=False,
        )
    values = np.where(np.abs(values) > CENT, values, 0.0)
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
        tiny = both & (np.abs(delta) <= CENT)
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
            month_no = month_number(inside["from_date"].to_numpy(dtype="datetime64[D]")) - full_lo
            ok = (month_no >= 0) & (month_no < prev.shape[1])
            flat = np.zeros(prev.shape)
            np.add.at(flat, (codes[inside.index.to_numpy()][ok], month_no[ok]), inside["mrr"].to_numpy()[ok])
            flat = np.where((~pa & ~ca) & (flat > CENT), flat, 0.0)
            was = ever
            out["new"] = out["new"] + np.where(~was, flat, 0.0)
            out["reactivation"] = out["reactivation"] + np.where(was, flat, 0.0)
            out["churn"] = out["churn"] + flat
    moving = np.zeros(prev.shape, dtype=bool)
    for name in ("start_mrr", *MOVEMENTS, "fx_effect"):
        moving |= out[name] != 0
    moving[:, :first_col] = False
    # Month-major, customers in sorted order (group codes are sorted): the
    # rows come out by month and account without sorting them.
    mi, gi = np.nonzero(moving.T)
    picked = {}
    for name, arr in out.items():
        value = arr[gi, mi]
        picked[name] = np.round(value, 6, out=value)  # in place: no second copy of each column
    return mi, gi, picked


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
    iv["account_id"] = customer_ids(book, iv["account_id"].to_numpy(dtype=object), customer)
    cols = ["month", "account_id", "start_mrr", *MOVEMENTS, "fx_effect", "end_mrr"]
    if len(iv):
        full_lo, hi = _month_range(book, iv, None, end)
        lo = full_lo if start is None else max(full_lo, _month_range(book, iv, start, None)[0])
    if not len(iv) or hi < lo:
        keys = ["account_id"] if by is None else ([by] if isinstance(by, str) else list(by))
        empty = {"month": pd.Series(dtype="datetime64[ns]"), **{k: pd.Series(dtype="string") for k in keys}}
        empty.update({c: pd.Series(dtype="float64") for c in cols[2:]})
        if by is not None:
            empty.update(
                {
                    c: pd.Series(dtype="int64")
                    for c in ["customers_start", "customers_end", *[f"n_{m}" for m in MOVEMENTS]]
                }
            )
        return pd.DataFrame(empty)
    codes, uniques = group_codes(iv, ["account_id"], book)
    months = month_end_of(np.arange(full_lo, hi + 1))
    rule = {"reactivation_months": reactivation_months, "same_month": same_month, "fx": fx, "fx_date": fx_date}
    parts = []
    # Blocks of customers bound the dense arrays (customers x months) of a large book.
    for g0, g1, rows in _blocks(codes, len(uniques), hi - full_lo + 2, _BRIDGE_CELLS):
        block = iv.iloc[rows].reset_index(drop=True) if len(rows) < len(iv) else iv
        mi, gi, out = _bridge(book, block, codes[rows] - g0, g1 - g0, full_lo, hi, lo - full_lo, revalue, **rule)
        parts.append({"_mi": mi, "_gi": gi + g0, **out})
    del iv, codes, block
    cols = _month_major(parts)
    # copy=False: the columns are new arrays already, and a consolidating copy
    # would double the output's memory at its largest moment.
    frame = pd.DataFrame(
        {
            "month": months[cols.pop("_mi")],
            "account_id": pd.array(uniques["account_id"].to_numpy()[cols.pop("_gi")], dtype="string"),
            **cols,
        },
        copy=False,
    )
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
