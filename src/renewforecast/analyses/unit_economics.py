"""Unit economics: CAC, LTV (simple, survival, sBG), LTV:CAC, CAC payback, quick ratio, magic number.

Every figure states its method; where a figure cannot be computed (no new
customers, no churn, no spend) it is infinite or missing *and labelled* in a
``note`` column, never a silent NaN. Definitions and sources:
``docs/unit_economics.md``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from renewforecast.analyses.cohorts import cohort_counts, cohort_members, customer_lifetimes
from renewforecast.analyses.saas_metrics import retention_kpis
from renewforecast.book import Book
from renewforecast.dates import CENT, last_month_end
from renewforecast.ledger.mrr import mrr_movements, mrr_table
from renewforecast.ledger.valuation import arr_on
from renewforecast.models.sbg import ShiftedBetaGeometric

__all__ = ["BENCHMARKS", "cac", "gross_margin", "ltv", "ltv_cac"]

#: Industry bars the status columns compare against.
BENCHMARKS = {"ltv_to_cac": 3.0, "payback_months": 12.0, "payback_concern_months": 36.0}

_ORGANIC = ("organic",)


def _monthly_rate(annual: float) -> float:
    return (1.0 + annual) ** (1.0 / 12.0) - 1.0


def _attr(book: Book, ids: pd.Series, column: str) -> pd.Series:
    accounts = book.accounts.drop_duplicates("account_id").set_index("account_id")
    return ids.map(accounts[column])


def _keys(by) -> list[str]:
    return [] if by is None else ([by] if isinstance(by, str) else list(by))


# ---------------------------------------------------------------- margin


def gross_margin(book: Book, as_of, by=None) -> pd.DataFrame:
    """Revenue-weighted gross margin of the active book: sum(ARR x product margin) / ARR.

    Products without a margin are left out of the weighting; a group with no
    margin at all gets a missing value and a note.
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
    arr = arr_on(book, as_of, by=("account_id", "product_id"))
    margin = book.products.drop_duplicates("product_id").set_index("product_id")["gross_margin"]
    arr["margin"] = arr["product_id"].map(margin).astype(float)
    keys = _keys(by)
    for k in keys:
        arr[k] = _attr(book, arr["account_id"], k).to_numpy()
    known = arr[arr["margin"].notna()]
    weighted = known["arr"] * known["margin"]
    if keys:
        num = weighted.groupby([known[k] for k in keys]).sum()
        den = known.groupby(keys)["arr"].sum()
        out = (num / den).rename("gross_margin").reset_index()
    else:
        out = pd.DataFrame({"gross_margin": [weighted.sum() / known["arr"].sum() if len(known) else np.nan]})
    out["note"] = np.where(out["gross_margin"].isna(), "no product margins for this group", "")
    return out


# ---------------------------------------------------------------- CAC


def _new_customers(book: Book, as_of=None) -> pd.DataFrame:
    moves = mrr_movements(book, end=as_of)
    new = moves[moves["new"] > CENT][["month", "account_id", "new"]].copy()
    new["acquisition_channel"] = _attr(book, new["account_id"], "acquisition_channel").fillna("(none)").to_numpy()
    return new


def cac(
    book: Book,
    freq: str = "Q",
    by=None,
    *,
    spend_lag_months: int = 0,
    paid_only: bool = False,
    organic_channels=_ORGANIC,
    allocate: str = "new_mrr",
    as_of=None,
    through=None,
) -> pd.DataFrame:
    """Customer acquisition cost: fully loaded sales and marketing spend over new customers.

    Parameters
    ----------
    book : Book
    freq : {"M", "Q", "Y"}, default "Q"
    by : str or list, optional
        ``"acquisition_channel"`` matches spend to the customers of each
        channel. Any other account column (``"segment"``) shares each
        channel's spend among its groups in proportion to their new MRR
        (``allocate="new_mrr"``) or new customers (``allocate="customers"``):
        spend is not recorded by segment.
    spend_lag_months : int, default 0
        Spend of ``spend_lag_months`` earlier is charged to this period's new
        customers (Kellogg and Scale use the prior period).
    paid_only : bool, default False
        Leave out ``organic_channels`` and their spend (paid CAC).
    as_of : date-like, optional
        Use only what was known at the end of this day (and count periods
        through it unless ``through`` says otherwise).
    through : date-like, optional
        The last day counted (a month end, say), measured with what was
        known at ``as_of``.

    Returns
    -------
    DataFrame
        ``period``, the ``by`` columns, ``sales_spend``, ``marketing_spend``,
        ``spend``, ``new_customers``, ``new_mrr``, ``cac`` and ``note``: ``cac``
        is infinite when spend bought no new customer, missing when neither
        happened, and missing with a note where no spend was recorded.

    Notes
    -----
    New customers are the revenue engine's (first revenue of an account;
    reactivations are not new).

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.cac(rf.Book.empty()).empty
    True
    """
    # as_of means what was known at the end of that day, in every engine.
    if as_of is not None:
        book = book.as_of(as_of)
    keys = _keys(by)
    through = through if through is not None else as_of
    new = _new_customers(book, through)
    spend = book.spend.copy()
    spend["channel"] = spend["channel"].astype(object)
    if spend_lag_months:
        spend["month"] = spend["month"] + pd.DateOffset(months=int(spend_lag_months))
    if through is not None:
        spend = spend[spend["month"] <= pd.Timestamp(through)]
    if paid_only:
        new = new[~new["acquisition_channel"].isin(organic_channels)]
        spend = spend[~spend["channel"].isin(organic_channels)]
    new["period"] = new["month"].dt.to_period(freq)
    spend["period"] = spend["month"].dt.to_period(freq)
    spend["spend"] = spend["sales_spend"] + spend["marketing_spend"]
    if not len(new) and not len(spend):
        return pd.DataFrame(
            columns=[
                "period",
                *keys,
                "sales_spend",
                "marketing_spend",
                "spend",
                "new_customers",
                "new_mrr",
                "cac",
                "note",
            ]
        )
    channel_keys = [k for k in keys if k != "acquisition_channel"]
    for k in channel_keys:
        new[k] = _attr(book, new["account_id"], k).to_numpy()
    by_channel = "acquisition_channel" in keys
    # Spend per period and channel, then shared among the other groups.
    sp = spend.groupby(["period", "channel"])[["sales_spend", "marketing_spend", "spend"]].sum()
    sp.index = sp.index.set_names(["period", "acquisition_channel"])
    counts = (
        new.groupby(["period", "acquisition_channel", *channel_keys])
        .agg(new_customers=("account_id", "nunique"), new_mrr=("new", "sum"))
        .reset_index()
    )
    if channel_keys:
        weight_col = "new_mrr" if allocate == "new_mrr" else "new_customers"
        total = counts.groupby(["period", "acquisition_channel"])[weight_col].transform("sum")
        counts["share"] = counts[weight_col] / total
        alloc = counts.join(sp, on=["period", "acquisition_channel"])
        for c in ("sales_spend", "marketing_spend", "spend"):
            alloc[c] = alloc[c] * alloc["share"]
        # channel spend in a period with no new customers cannot be shared: report it unallocated
        unalloc = sp.reset_index().merge(
            counts[["period", "acquisition_channel"]].drop_duplicates(), how="left", indicator=True
        )
        unalloc = unalloc[unalloc["_merge"] == "left_only"].drop(columns="_merge")
        for k in channel_keys:
            unalloc[k] = "(unallocated)"
        unalloc["new_customers"], unalloc["new_mrr"] = 0, 0.0
        frame = pd.concat([alloc.drop(columns="share"), unalloc], ignore_index=True)
    else:
        frame = sp.reset_index().merge(counts, on=["period", "acquisition_channel"], how="outer")
    group_keys = ["period", *(["acquisition_channel"] if by_channel else []), *channel_keys]
    frame[["sales_spend", "marketing_spend", "spend"]] = frame[["sales_spend", "marketing_spend", "spend"]].astype(
        float
    )
    frame["had_spend"] = frame["spend"].notna()
    out = (
        frame.groupby(group_keys, dropna=False)
        .agg(
            sales_spend=("sales_spend", "sum"),
            marketing_spend=("marketing_spend", "sum"),
            spend=("spend", "sum"),
            new_customers=("new_customers", "sum"),
            new_mrr=("new_mrr", "sum"),
            had_spend=("had_spend", "any"),
        )
        .reset_index()
    )
    out["new_customers"] = out["new_customers"].fillna(0).astype(int)
    spend_periods = set(spend["period"])
    out["note"] = ""
    no_spend = ~out["period"].isin(spend_periods)
    none_new = out["new_customers"] == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cac"] = np.where(
            none_new,
            np.where(out["spend"] > 0, np.inf, np.nan),
            out["spend"] / out["new_customers"].where(~none_new, 1),
        )
    out.loc[none_new & (out["spend"] > 0), "note"] = "no new customers: spend bought none (infinite)"
    out.loc[none_new & ~(out["spend"] > 0), "note"] = "no new customers and no spend: undefined"
    out.loc[no_spend, "cac"] = np.nan
    out.loc[no_spend, "note"] = "no spend recorded for this period: undefined"
    out["period"] = out["period"].astype(str)
    cols = [
        "period",
        *[k for k in ["acquisition_channel", *channel_keys] if k in keys],
        "sales_spend",
        "marketing_spend",
        "spend",
        "new_customers",
        "new_mrr",
        "cac",
        "note",
    ]
    return out[cols].sort_values(cols[: 1 + len(keys)]).reset_index(drop=True)


# ---------------------------------------------------------------- LTV

_METHODS = ("simple", "survival", "sbg")


def _geometric_lifetime(churn: float, d_m: float, horizon_m: float | None) -> float:
    """Sum over months t >= 0 (t < horizon) of ((1 - churn) / (1 + d_m)) ** t."""
    q = (1.0 - churn) / (1.0 + d_m)
    if horizon_m is None:
        return np.inf if q >= 1.0 else 1.0 / (1.0 - q)
    return float(horizon_m) if q == 1.0 else (1.0 - q**horizon_m) / (1.0 - q)


def _simple_data(book: Book, as_of) -> pd.DataFrame:
    """Per customer over the trailing 12 months: months at risk, churns, MRR now."""
    end = last_month_end(as_of)
    moves = mrr_movements(book, start=end - pd.offsets.MonthEnd(11), end=end)
    moves = moves[(moves["month"] > end - pd.offsets.MonthEnd(12)) & (moves["month"] <= end)]
    per = moves.groupby("account_id").agg(
        at_risk=("start_mrr", lambda s: int((s > CENT).sum())), churns=("churn", lambda s: int((s > CENT).sum()))
    )
    now = moves[moves["month"] == end].set_index("account_id")["end_mrr"]
    per["mrr_now"] = now.reindex(per.index).fillna(0.0)
    return per


def _simple_value(data: pd.DataFrame, margin: float, d_m: float, horizon_m) -> dict:
    at_risk = data["at_risk"].sum()
    churn = data["churns"].sum() / at_risk if at_risk else np.nan
    active = data["mrr_now"] > CENT
    arpa = data.loc[active, "mrr_now"].mean() if active.any() else np.nan
    life = _geometric_lifetime(churn, d_m, horizon_m) if churn == churn else np.nan
    return {
        "arpa": arpa,
        "monthly_churn": churn,
        "lifetime_months": life,
        "ltv": arpa * margin * life,
        "customers": int(active.sum()),
    }


def _km_curve(durations: np.ndarray, events: np.ndarray, horizon_m: float | None) -> tuple[np.ndarray, float]:
    """Kaplan-Meier survival at whole months 0..T, and the monthly churn rate of its tail.

    The tail rate is the curve's own decline between its last event time and
    the last event time at least 24 months before it, as a constant monthly
    rate: for annual contracts, whose curve is a staircase, this spans whole
    anniversaries and recovers the equivalent monthly rate.
    """
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(durations, events)
    t_max = int(np.nanmax(durations)) if len(durations) else 0
    if horizon_m is not None:
        t_max = min(t_max, int(horizon_m))
    # S at t counts customers still paying after t months (first payment at t=0).
    s = km.survival_function_at_times(np.arange(0, t_max + 1)).to_numpy()
    s[0] = 1.0
    table = km.event_table
    event_times = table.index[table["observed"] > 0].to_numpy(dtype=float)
    tail = 0.0
    if len(event_times):
        hi = event_times[-1]
        earlier = event_times[event_times <= hi - 24]
        lo = earlier[-1] if len(earlier) else 0.0
        s_hi = float(km.survival_function_at_times(hi).iloc[0])
        s_lo = 1.0 if lo == 0 else float(km.survival_function_at_times(lo).iloc[0])
        if s_lo > 0 and s_hi > 0 and hi > lo:
            tail = 1.0 - (s_hi / s_lo) ** (1.0 / (hi - lo))
    return s, float(tail)


def _survival_value(data: pd.DataFrame, arpa: float, margin: float, d_m: float, horizon_m) -> dict:
    s, hazard = _km_curve(data["duration"].to_numpy(float), data["event"].to_numpy(int), horizon_m)
    disc = (1.0 + d_m) ** -np.arange(len(s))
    life = float((s * disc).sum())
    t_last = len(s) - 1
    note = ""
    if horizon_m is None or horizon_m > t_last + 1:
        # Past the data, the curve continues with the hazard of its last year.
        q = (1.0 - hazard) / (1.0 + d_m)
        if horizon_m is None:
            if q >= 1.0:
                life, note = np.inf, "no churn in the last two observed years and no discounting: unbounded"
            else:
                life += s[-1] * disc[-1] * q / (1.0 - q)
        else:
            extra = int(horizon_m) - (t_last + 1)
            life += s[-1] * disc[-1] * sum(q**k for k in range(1, extra + 1))
        note = (
            note or f"Kaplan-Meier to month {t_last}, then its last two years' rate of decline ({hazard:.2%} a month)"
        )
    return {"lifetime_months": life, "ltv": arpa * margin * life, "monthly_churn": hazard, "note": note}


def _sbg_value(members: pd.DataFrame, arpa: float, margin: float, d: float, horizon_y, renewals: int) -> dict:
    counts = cohort_counts(members)
    usable = counts.groupby("cohort")["period"].max() >= 1
    if not usable.any():
        return {"ltv": np.nan, "lifetime_months": np.nan, "note": "no cohort has reached an anniversary yet"}
    counts = counts[counts["cohort"].isin(usable[usable].index)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = ShiftedBetaGeometric().fit(counts)
        except ValueError as exc:  # e.g. nobody churned: the churn distribution is not identified
            return {"ltv": np.nan, "lifetime_months": np.nan, "note": f"sBG cannot be fitted: {exc}"}
    annual = arpa * 12.0 * margin
    if horizon_y is None:
        lifetime = float(model.discounted_expected_lifetime(d)) if d > 0 else float(model.expected_lifetime())
        residual = float(model.discounted_expected_residual_lifetime(d, renewals)) if d > 0 else np.nan
    else:
        t = np.arange(int(horizon_y))
        lifetime = float((model.survival(t) / (1.0 + d) ** t).sum())
        residual = np.nan
    note = "" if np.isfinite(lifetime) else "sBG alpha <= 1 and no discounting: expected lifetime unbounded"
    return {
        "ltv": annual * lifetime,
        "lifetime_months": 12.0 * lifetime,
        "alpha": model.alpha_,
        "beta": model.beta_,
        "residual_ltv_existing": annual * residual,
        "note": note,
    }


def _ltv_of(value_fn, **bound):
    """A function of a customer sample giving the LTV that ``value_fn`` computes with ``bound``."""
    return lambda sample: value_fn(sample, **bound)["ltv"]


def ltv(
    book: Book,
    as_of,
    method: str = "simple",
    by=None,
    *,
    discount_rate: float = 0.10,
    horizon_years: float | None = None,
    margin: float | None = None,
    n_boot: int = 200,
    ci: float = 0.90,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Customer lifetime value by one of three methods, with bootstrap intervals.

    All three value a customer as margin per period x its discounted expected
    lifetime, counting the first period (t = 0) in full:

    - ``"simple"``: ARPA x gross margin / monthly customer churn rate (Skok),
      churn = customers lost / customer-months at risk over the trailing 12
      months; with discounting the lifetime is the sum of ((1 - churn) /
      (1 + monthly rate))^t.
    - ``"survival"``: the Kaplan-Meier survival curve of customers' first
      paying spells, month by month, discounted; past the longest observed
      lifetime the curve continues with its own monthly rate of decline over
      (at least) its last 24 months of events.
    - ``"sbg"``: the shifted-beta-geometric model fitted to the acquisition
      cohorts' survivors at each anniversary (heterogeneous churn); LTV =
      annual margin x DEL for a new customer, and ``residual_ltv_existing`` =
      annual margin x DERL for a customer who has made the median number of
      renewals of today's customers.

    Parameters
    ----------
    book : Book
    as_of : date-like
    method : {"simple", "survival", "sbg"}
    by : str or list, optional
        Account columns; each group is valued on its own customers.
    discount_rate : float, default 0.10
        Annual; monthly methods use (1 + rate)^(1/12) - 1.
    horizon_years : float, optional
        Cap the lifetime (default: none).
    margin : float, optional
        Gross margin; default the revenue-weighted product margin of the group.
    n_boot : int, default 200
        Bootstrap resamples of customers (0 for none).
    ci : float, default 0.90
        Width of the percentile interval.
    random_state : int, optional

    Returns
    -------
    DataFrame
        One row per group: ``method``, ``ltv``, ``ltv_low``, ``ltv_high``,
        ``arpa`` (monthly), ``gross_margin``, ``lifetime_months`` (discounted),
        ``monthly_churn``, ``customers``, ``discount_rate``, ``horizon_years``,
        ``note`` (and ``alpha``, ``beta``, ``residual_ltv_existing`` for sbg).
        An unbounded lifetime gives an infinite LTV with a note.
        ``attrs["ci"]`` is the width of the interval.

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.ltv(rf.Book.empty(), "2024-12-31", n_boot=0)["note"].iloc[0]
    'no customers'
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, not {method!r}")
    if discount_rate < 0:
        raise ValueError("discount_rate must be >= 0")
    keys = _keys(by)
    d_m = _monthly_rate(discount_rate)
    horizon_m = None if horizon_years is None else 12.0 * horizon_years
    rng = np.random.default_rng(random_state)
    simple = _simple_data(book, as_of)
    lifetimes = customer_lifetimes(book, as_of) if method == "survival" else None
    if method == "sbg":
        members = cohort_members(book, as_of)
        tenure_years = customer_lifetimes(book, as_of)
    margins = gross_margin(book, as_of, by=by or None)
    # Each method reads its own customers (the trailing year's for the simple
    # rate, every customer's lifetime for the others); groups split all accounts.
    groups: list[tuple[tuple, pd.Index]] = []
    accounts = book.accounts.drop_duplicates("account_id").set_index("account_id")
    if keys:
        for name, idx in accounts[keys].groupby(keys).groups.items():
            groups.append((name if isinstance(name, tuple) else (name,), pd.Index(idx)))
    else:
        groups.append(((), accounts.index))
    rows = []
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    for name, ids in groups:
        row = dict(zip(keys, name, strict=True))
        if keys:
            mrow = margins
            for k, v in row.items():
                mrow = mrow[mrow[k] == v]
            gm = margin if margin is not None else (float(mrow["gross_margin"].iloc[0]) if len(mrow) else np.nan)
        else:
            gm = margin if margin is not None else float(margins["gross_margin"].iloc[0])
        data = simple.loc[simple.index.intersection(ids)]
        base = _simple_value(data, gm, d_m, horizon_m)
        arpa = base["arpa"]
        if method == "simple":
            value = base
            boot_fn = _ltv_of(_simple_value, margin=gm, d_m=d_m, horizon_m=horizon_m)
            sample_from = data
        elif method == "survival":
            lt = lifetimes.loc[lifetimes.index.intersection(ids)]
            # A group of accounts none of which ever paid (a holding parent,
            # prospects) has no lifetimes to fit.
            value = _survival_value(lt, arpa, gm, d_m, horizon_m) if len(lt) else {"ltv": np.nan}
            boot_fn = _ltv_of(_survival_value, arpa=arpa, margin=gm, d_m=d_m, horizon_m=horizon_m)
            sample_from = lt
        else:
            mem = members.loc[members.index.intersection(ids)]
            ten = tenure_years.loc[tenure_years.index.intersection(ids)]
            renewals = (
                int(np.median((ten.loc[ten["event"] == 0, "duration"] // 12).to_numpy()))
                if (ten["event"] == 0).any()
                else 0
            )
            value = _sbg_value(mem, arpa, gm, discount_rate, horizon_years, max(renewals, 1))
            boot_fn = _ltv_of(_sbg_value, arpa=arpa, margin=gm, d=discount_rate, horizon_y=horizon_years, renewals=1)
            sample_from = mem
        row.update(
            {
                "method": method,
                "ltv": value.get("ltv", np.nan),
                "arpa": arpa,
                "gross_margin": gm,
                "lifetime_months": value.get("lifetime_months", np.nan),
                "monthly_churn": value.get("monthly_churn", base["monthly_churn"] if method == "simple" else np.nan),
                "customers": base["customers"],
                "discount_rate": discount_rate,
                "horizon_years": horizon_years,
            }
        )
        for extra in ("alpha", "beta", "residual_ltv_existing"):
            if extra in value:
                row[extra] = value[extra]
        note = value.get("note", "")
        if not len(data) or base["customers"] == 0:
            note = "no customers"
        elif row["ltv"] != row["ltv"] and not note:
            note = "undefined"
        elif not np.isfinite(row["ltv"]) and not note:
            note = "no churn observed and no discounting or horizon: unbounded (set horizon_years)"
        row["note"] = note
        boots = []
        if n_boot and len(sample_from) > 1 and np.isfinite(row["ltv"]):
            for _ in range(int(n_boot)):
                pick = sample_from.iloc[rng.integers(0, len(sample_from), len(sample_from))]
                boots.append(boot_fn(pick))
        boots = np.asarray([b for b in boots if np.isfinite(b)])
        row["ltv_low"] = float(np.quantile(boots, lo_q)) if len(boots) else np.nan
        row["ltv_high"] = float(np.quantile(boots, hi_q)) if len(boots) else np.nan
        rows.append(row)
    if not rows or (not keys and rows[0]["customers"] == 0):
        out = pd.DataFrame(
            [{"method": method, "ltv": np.nan, "ltv_low": np.nan, "ltv_high": np.nan, "note": "no customers"}]
        )
    else:
        out = pd.DataFrame(rows)
        first = [*keys, "method", "ltv", "ltv_low", "ltv_high"]
        out = out[first + [c for c in out.columns if c not in first]]
    out.attrs["ci"] = ci
    return out


# ---------------------------------------------------------------- LTV:CAC


def ltv_cac(
    book: Book,
    as_of,
    by=None,
    *,
    method: str = "sbg",
    discount_rate: float = 0.10,
    horizon_years: float | None = None,
    spend_lag_months: int = 0,
    n_boot: int = 200,
    random_state: int | None = 0,
    ltv_values: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The unit-economics table: LTV, CAC, LTV:CAC, CAC payback, quick ratio, magic number.

    Over the trailing 12 months to the last month end before ``as_of``:
    CAC = spend / new customers; CAC payback (months) = CAC / (new
    customers' average first MRR x gross margin); quick ratio = (new +
    expansion) / (churn + contraction); magic number = (last quarter's
    recurring revenue - the quarter before) x 4 / the quarter before's spend.
    Statuses compare with :data:`BENCHMARKS` (LTV:CAC at least 3; payback under
    12 months, over 36 a concern).

    Parameters
    ----------
    book : Book
    as_of : date-like
    by : str or list, optional
        Account columns to group by.
    method, discount_rate, horizon_years, n_boot, random_state
        Passed to :func:`ltv`.
    spend_lag_months : int, default 0
        Passed to :func:`cac`.
    ltv_values : DataFrame, optional
        :func:`ltv` output for the same ``method``, ``by``, ``discount_rate``
        and ``horizon_years``, when already computed (a report showing LTV
        and LTV:CAC by segment resamples its customers once).

    Returns
    -------
    DataFrame
        One row per group. The LTV columns carry the method in their names
        (``ltv_sbg``, ``ltv_sbg_low`` ...); ``ltv_sbg_to_cac_low`` and
        ``_high`` are the LTV interval over CAC. ``attrs["ltv_method"]`` says
        the method, ``attrs["ci"]`` the width of the interval.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> table = rf.ltv_cac(rf.load_book(folder), "2026-10-31", method="simple", n_boot=20)
    >>> table.columns.tolist()[3:7], table.attrs["ci"]
    (['cac', 'ltv_simple_to_cac', 'ltv_simple_to_cac_low', 'ltv_simple_to_cac_high'], 0.9)
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)

    keys = _keys(by)
    end = last_month_end(as_of)
    start = end - pd.offsets.MonthEnd(12) + pd.Timedelta(days=1)
    if ltv_values is None:
        values = ltv(
            book,
            as_of,
            method=method,
            by=by,
            discount_rate=discount_rate,
            horizon_years=horizon_years,
            n_boot=n_boot,
            random_state=random_state,
        )
    else:
        values = _matching_ltv(ltv_values, keys, method, discount_rate, horizon_years)
    costs = cac(book, freq="M", by=by, spend_lag_months=spend_lag_months, through=end)
    costs = costs[pd.PeriodIndex(costs["period"], freq="M").to_timestamp() >= start.replace(day=1)]
    agg = (
        costs.groupby(keys).agg(
            spend=("spend", "sum"), new_customers=("new_customers", "sum"), new_mrr=("new_mrr", "sum")
        )
        if keys
        else pd.DataFrame(
            [
                {
                    "spend": costs["spend"].sum(),
                    "new_customers": costs["new_customers"].sum(),
                    "new_mrr": costs["new_mrr"].sum(),
                }
            ]
        )
    )
    agg = agg.reset_index() if keys else agg
    retention = retention_kpis(book, as_of=as_of, by=by)[[*keys, "quick_ratio"]]
    out = values.merge(agg, on=keys, how="outer") if keys else pd.concat([values, agg], axis=1)
    out = (
        out.merge(retention, on=keys, how="left") if keys else out.assign(quick_ratio=retention["quick_ratio"].iloc[0])
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cac"] = np.where(
            out["new_customers"] > 0, out["spend"] / out["new_customers"], np.where(out["spend"] > 0, np.inf, np.nan)
        )
        out["new_customer_mrr"] = out["new_mrr"] / out["new_customers"].where(out["new_customers"] > 0)
        out["ltv_to_cac"] = out["ltv"] / out["cac"]
        out["ltv_to_cac_low"] = out["ltv_low"] / out["cac"]
        out["ltv_to_cac_high"] = out["ltv_high"] / out["cac"]
        out["payback_months"] = out["cac"] / (out["new_customer_mrr"] * out["gross_margin"])
    out["magic_number"] = (
        _magic_number(book, end, keys, spend_lag_months)["magic_number"].to_numpy()
        if not keys
        else out[keys]
        .merge(_magic_number(book, end, keys, spend_lag_months), on=keys, how="left")["magic_number"]
        .to_numpy()
    )
    out["ltv_to_cac_status"] = np.select(
        [out["ltv_to_cac"].isna(), out["ltv_to_cac"] >= BENCHMARKS["ltv_to_cac"]],
        ["undefined", "healthy (3:1 or better)"],
        "below 3:1",
    )
    out["payback_status"] = np.select(
        [
            out["payback_months"].isna(),
            out["payback_months"] < BENCHMARKS["payback_months"],
            out["payback_months"] <= BENCHMARKS["payback_concern_months"],
        ],
        ["undefined", "healthy (under 12 months)", "slow (12 to 36 months)"],
        "concern (over 36 months)",
    )
    for k in keys:
        unassigned = out[k] == "(unallocated)"
        out.loc[unassigned, "note"] = (
            f"spend of months in which a channel won no customer cannot be shared among {k} groups"
        )
    rename = {
        c: c.replace("ltv", f"ltv_{method}", 1)
        for c in ("ltv", "ltv_low", "ltv_high", "ltv_to_cac", "ltv_to_cac_low", "ltv_to_cac_high")
    }
    out = out.rename(columns=rename)
    cols = [
        *keys,
        f"ltv_{method}",
        f"ltv_{method}_low",
        f"ltv_{method}_high",
        "cac",
        f"ltv_{method}_to_cac",
        f"ltv_{method}_to_cac_low",
        f"ltv_{method}_to_cac_high",
        "ltv_to_cac_status",
        "payback_months",
        "payback_status",
        "quick_ratio",
        "magic_number",
        "gross_margin",
        "arpa",
        "new_customer_mrr",
        "new_customers",
        "spend",
        "customers",
        "note",
    ]
    result = out[[c for c in cols if c in out.columns]].reset_index(drop=True)
    result.attrs["ltv_method"] = method
    result.attrs["window"] = f"{start.date()} to {end.date()}"
    result.attrs["ci"] = values.attrs.get("ci")
    return result


def _matching_ltv(
    values: pd.DataFrame, keys: list[str], method: str, discount_rate: float, horizon_years: float | None
) -> pd.DataFrame:
    """``values`` (an :func:`ltv` table) checked against the arguments of the LTV:CAC table it goes into."""
    # A table of another method, grouping or discount rate would be merged without complaint.
    problems = [k for k in keys if k not in values.columns]
    if "method" not in values.columns or set(values["method"]) != {method}:
        problems.append(f"method {method!r}")
    if "discount_rate" in values.columns and not np.allclose(values["discount_rate"].astype(float), discount_rate):
        problems.append(f"discount_rate {discount_rate}")
    if "horizon_years" in values.columns:
        given = {None if pd.isna(v) else float(v) for v in values["horizon_years"]}
        if given != {None if horizon_years is None else float(horizon_years)}:
            problems.append(f"horizon_years {horizon_years}")
    if problems:
        raise ValueError(
            "ltv_values must be the ltv() table of the same arguments; it does not match " + ", ".join(problems)
        )
    out = values.reset_index(drop=True)
    out.attrs = dict(values.attrs)
    return out


def _magic_number(book: Book, end: pd.Timestamp, keys: list[str], lag: int) -> pd.DataFrame:
    q_end = end
    months = [q_end - pd.offsets.MonthEnd(k) for k in range(6)]
    table = mrr_table(book, start=months[-1], end=q_end, by=("account_id",))
    if keys:
        for k in keys:
            table[k] = _attr(book, table["account_id"], k).to_numpy()
    table["quarter"] = np.where(table["month"] > months[3], "last", "prior")
    rev = (
        table.groupby([*keys, "quarter"])["mrr"].sum().unstack("quarter")
        if keys
        else table.groupby("quarter")["mrr"].sum().to_frame().T
    )
    prior_start = (months[5] - pd.offsets.MonthBegin(1)).normalize()
    prior_spend = cac(book, freq="M", by=keys[0] if keys else None, spend_lag_months=lag, through=months[3])
    prior_spend = prior_spend[pd.PeriodIndex(prior_spend["period"], freq="M").to_timestamp() >= prior_start]
    spend = prior_spend.groupby(keys)["spend"].sum() if keys else pd.Series([prior_spend["spend"].sum()])
    rev = rev.reindex(columns=["last", "prior"]).fillna(0.0)
    growth = (rev["last"] - rev["prior"]) * 4
    if keys:
        out = (growth / spend.reindex(growth.index)).rename("magic_number").reset_index()
    else:
        out = pd.DataFrame({"magic_number": [float(growth.iloc[0] / spend.iloc[0]) if spend.iloc[0] else np.nan]})
    return out
