"""Salesforce product schedules: establishing installments from a line's amount.

Rules (Salesforce "Establish Schedule", see ``docs/data_model.md``):

- ``divide`` splits the amount over the installments in whole cents; every
  installment but the last is the amount divided by the count, truncated to
  the cent, and the last takes the remainder, so the installments sum to the
  amount exactly (1,205.00 over 12 is 11 x 100.41 and 100.49).
- ``repeat`` gives every installment the whole amount (the line total
  becomes amount x installments).
- Periods are daily, weekly, monthly, quarterly or yearly; 1 to 150
  installments.
- Installment k falls k periods after the start. Month-based periods count
  from the start date, rolling to the last day of shorter months: a monthly
  schedule starting 31 January falls on 29 February (leap year), 31 March,
  30 April, ...
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import numpy as np
import pandas as pd

from renewforecast.dates import CENT, add_months
from renewforecast.exceptions import RenewForecastError
from renewforecast.schemas import ALLOWED, MAX_INSTALLMENTS

__all__ = ["establish_schedule", "expand_schedules", "installment_dates", "line_schedules", "reconcile_schedules"]

_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}
_DAYS = {"daily": 1, "weekly": 7}


def _check(schedule_type: str, period: str, installments: int) -> tuple[str, str]:
    t = str(schedule_type).strip().lower()
    p = str(period).strip().lower()
    if t not in ALLOWED["revenue_schedule_type"]:
        raise RenewForecastError(f"schedule type {schedule_type!r} is not Divide or Repeat")
    if p not in ALLOWED["installment_period"]:
        raise RenewForecastError(
            f"installment period {period!r} is not one of Daily, Weekly, Monthly, Quarterly, Yearly"
        )
    if (
        isinstance(installments, bool)
        or int(installments) != installments
        or not (1 <= int(installments) <= MAX_INSTALLMENTS)
    ):
        raise RenewForecastError(f"{installments!r} installments: Salesforce allows a whole number from 1 to 150")
    return t, p


def installment_dates(start, period: str, installments: int) -> pd.DatetimeIndex:
    """Dates of ``installments`` installments every ``period`` from ``start``.

    Examples
    --------
    >>> [d.strftime("%m-%d") for d in installment_dates("2024-01-31", "monthly", 4)]
    ['01-31', '02-29', '03-31', '04-30']
    """
    _check("divide", period, installments)
    p = period.strip().lower()
    start = pd.Timestamp(start).normalize()
    n = int(installments)
    if p in _DAYS:
        return pd.DatetimeIndex([start + pd.Timedelta(days=_DAYS[p] * k) for k in range(n)])
    step = _MONTHS[p]
    dates = add_months(np.repeat(start.to_datetime64(), n), step * np.arange(n))
    return pd.DatetimeIndex(dates.astype("datetime64[ns]"))


def establish_schedule(amount: float, start, schedule_type: str, period: str, installments: int) -> pd.DataFrame:
    """Establish one line's revenue schedule the way Salesforce does.

    Parameters
    ----------
    amount : float
        The line amount (``divide``) or the per-installment amount (``repeat``).
    start : date-like
        First installment date (the line's service date or the close date).
    schedule_type : {"divide", "repeat"}
        Case-insensitive, so Salesforce's ``Divide``/``Repeat`` work too.
    period : {"daily", "weekly", "monthly", "quarterly", "yearly"}
    installments : int
        1 to 150.

    Returns
    -------
    DataFrame
        Columns ``installment`` (1-based), ``schedule_date``, ``revenue``.

    Raises
    ------
    RenewForecastError
        For a type, period or installment count Salesforce does not allow.

    Examples
    --------
    >>> s = establish_schedule(1205.00, "2024-01-01", "Divide", "Monthly", 12)
    >>> s["revenue"].tolist()[:2], s["revenue"].tolist()[-1], round(float(s["revenue"].sum()), 2)
    ([100.41, 100.41], 100.49, 1205.0)
    >>> establish_schedule(100, "2024-01-01", "repeat", "quarterly", 4)["revenue"].tolist()
    [100.0, 100.0, 100.0, 100.0]
    """
    t, p = _check(schedule_type, period, installments)
    n = int(installments)
    dates = installment_dates(start, p, n)
    if t == "repeat":
        revenue = [float(amount)] * n
    else:
        # Decimal arithmetic so that cents are exact, whatever the float.
        total = Decimal(str(amount)).quantize(Decimal("0.01"))
        each = (total / n).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        last = total - each * (n - 1)
        revenue = [float(each)] * (n - 1) + [float(last)]
    return pd.DataFrame({"installment": range(1, n + 1), "schedule_date": dates, "revenue": revenue})


def _shift(
    start: np.ndarray,
    months: np.ndarray,
    days: np.ndarray,
    n: np.ndarray,
    installment: np.ndarray,
) -> np.ndarray:
    """Installment dates (datetime64[ns], one per row) of lines beginning on ``start``.

    Per line: ``start`` (datetime64[D]), the period as ``months`` or ``days``
    (the other 0) and the count ``n``; ``installment`` is the rows' 1-based
    number. Installment k is ``start`` plus k periods, month periods rolling
    to the last day of shorter months.

    Every date comes from one small table of the dates the lines can reach
    (day of month 0-30 in each month reached, then each day reached, then
    NaT), indexed by a running sum, so no calendar arithmetic is done per row.
    """
    total = len(installment)
    sd = start.view(np.int64)
    nat = np.isnat(start)
    by_month = (months > 0) & ~nat
    by_day = (days > 0) & ~nat
    reach = n - 1
    m_lo = m_hi = d_lo = d_hi = 0
    m_size = d_size = 0
    if by_month.any():
        m0 = start.astype("datetime64[M]").view(np.int64)
        dom = sd - m0.astype("datetime64[M]").astype("datetime64[D]").view(np.int64)
        m_lo = int(m0[by_month].min())
        m_hi = int((m0 + reach * months)[by_month].max())
        m_size = (m_hi - m_lo + 1) * 31
    if by_day.any():
        d_lo = int(sd[by_day].min())
        d_hi = int((sd + reach * days)[by_day].max())
        d_size = d_hi - d_lo + 1
    if m_size + d_size > 5_000_000:
        # Dates too far apart for a table: the calendar arithmetic per row.
        k = installment - 1
        out = add_months(np.repeat(start, n), k * np.repeat(months, n))
        out += (k * np.repeat(days, n)).astype("timedelta64[D]")
        return out.astype("datetime64[ns]")
    parts = [np.array(["NaT"], dtype="datetime64[D]")]
    base = np.zeros(len(start), dtype=np.int64)  # NaT lines stay on entry 0
    step = np.zeros(len(start), dtype=np.int64)
    if by_month.any():
        first = np.arange(m_lo, m_hi + 2).astype("datetime64[M]")
        first = first.astype("datetime64[D]")
        dim = np.diff(first.view(np.int64))
        clamped = np.minimum(np.arange(31), dim[:, None] - 1)  # day of month, rolled
        parts.append((first[:-1, None] + clamped).ravel())
        base[by_month] = 1 + (m0[by_month] - m_lo) * 31 + dom[by_month]
        step[by_month] = months[by_month] * 31
    if by_day.any():
        parts.append(np.arange(d_lo, d_hi + 1).astype("datetime64[D]"))
        base[by_day] = 1 + m_size + sd[by_day] - d_lo
        step[by_day] = days[by_day]
    table = np.concatenate(parts).astype("datetime64[ns]")
    # Row positions in the table: base on a line's first row, then + step.
    pos = np.repeat(step, n)
    if total:
        ends = np.cumsum(n)
        prev_last = np.concatenate(([0], (base + reach * step)[:-1]))
        pos[ends - n] = base - prev_last
        np.cumsum(pos, out=pos)
    return table[pos]


def _split_cents(total: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per line: each installment but the last, and the last, of total over n."""
    finite = np.isfinite(total)
    cents = np.round(np.where(finite, total, 0.0) * 100.0).astype(np.int64)
    each = np.sign(cents) * (np.abs(cents) // n)  # truncate toward zero, as to the cent
    last = cents - each * (n - 1)
    return (np.where(finite, each / 100.0, np.nan), np.where(finite, last / 100.0, np.nan))


def expand_schedules(lines: pd.DataFrame) -> pd.DataFrame:
    """Establish the revenue schedules of many lines at once (vectorised).

    Parameters
    ----------
    lines : DataFrame
        One row per line with columns ``line_id``, ``amount``, ``start_date``,
        ``schedule_type`` (divide/repeat), ``period`` and ``installments``;
        optionally ``quantity`` (scheduled with the same rule, for
        quantity-and-revenue schedules).

    Returns
    -------
    DataFrame
        One row per installment: ``line_id``, ``installment``,
        ``schedule_date``, ``revenue`` (and ``quantity`` if given), in line
        order. Each line's rows follow :func:`establish_schedule` exactly.

    Raises
    ------
    RenewForecastError
        Naming the first lines whose type, period or count is not allowed.

    Examples
    --------
    >>> import pandas as pd
    >>> lines = pd.DataFrame({"line_id": ["a", "b"], "amount": [1205.0, 100.0],
    ...                       "start_date": pd.to_datetime(["2024-01-31", "2024-01-01"]),
    ...                       "schedule_type": ["Divide", "Repeat"], "period": ["Monthly", "Yearly"],
    ...                       "installments": [12, 2]})
    >>> out = expand_schedules(lines)
    >>> out.groupby("line_id")["revenue"].sum().round(2).tolist()
    [1205.0, 200.0]
    >>> str(out["schedule_date"].iloc[1].date())
    '2024-02-29'
    """
    # Type and period take a handful of distinct values: normalise those, not each row.
    t_codes, t_uniq = pd.factorize(lines["schedule_type"], use_na_sentinel=False)
    p_codes, p_uniq = pd.factorize(lines["period"], use_na_sentinel=False)
    t_norm = pd.Series(t_uniq).astype(str).str.strip().str.lower().to_numpy()
    p_norm = pd.Series(p_uniq).astype(str).str.strip().str.lower().to_numpy()
    n_raw = pd.to_numeric(lines["installments"], errors="coerce")
    n_raw = n_raw.to_numpy(dtype="float64")
    bad = (
        ~np.isin(t_norm, ALLOWED["revenue_schedule_type"])[t_codes]
        | ~np.isin(p_norm, ALLOWED["installment_period"])[p_codes]
        | ~np.isfinite(n_raw)
        | (n_raw != np.round(n_raw))
        | (n_raw < 1)
        | (n_raw > MAX_INSTALLMENTS)
    )
    if bad.any():
        shown = lines.loc[bad, ["line_id", "schedule_type", "period", "installments"]].head(5)
        raise RenewForecastError(
            f"{int(bad.sum())} line(s) have a schedule Salesforce does not allow "
            "(type Divide/Repeat; period Daily/Weekly/Monthly/Quarterly/Yearly; 1 to 150 installments): "
            + "; ".join(
                f"{r.line_id}: {r.schedule_type}/{r.period}/{r.installments}" for r in shown.itertuples(index=False)
            )
        )
    n = n_raw.astype(np.int64)
    total = int(n.sum())
    # Per line first, then repeated over its rows.
    divide = (t_norm == "divide")[t_codes]
    months = np.array([_MONTHS.get(x, 0) for x in p_norm], dtype=np.int64)[p_codes]
    days = np.array([_DAYS.get(x, 0) for x in p_norm], dtype=np.int64)[p_codes]
    # Installment numbers: a running count, back to 1 on each line's first row.
    installment = np.ones(total, dtype=np.int64)
    if total:
        ends = np.cumsum(n)
        installment[ends[:-1]] = 1 - n[:-1]
        np.cumsum(installment, out=installment)
    last_rows = np.cumsum(n) - 1
    start = pd.to_datetime(lines["start_date"]).to_numpy().astype("datetime64[D]")
    out = {
        "line_id": np.repeat(lines["line_id"].to_numpy(), n),
        "installment": installment,
        "schedule_date": _shift(start, months, days, n, installment),
    }
    columns = ["amount", "quantity"] if "quantity" in lines.columns else ["amount"]
    for col in columns:
        value = lines[col].to_numpy(dtype="float64")
        each, last = _split_cents(value, n)
        rows = np.repeat(np.where(divide, each, value), n)
        rows[last_rows] = np.where(divide, last, value)
        out["revenue" if col == "amount" else col] = rows
    return pd.DataFrame(out, copy=False)  # fresh arrays: no need to copy them again


def reconcile_schedules(book) -> pd.DataFrame:
    """Compare each line's schedule rows with its total (the export's own schedules).

    Existing schedule rows are authoritative; this only checks them.

    Returns
    -------
    DataFrame
        One row per opportunity line: ``line_id``, ``opportunity_id``,
        ``total_price``, ``installments``, ``scheduled_revenue``,
        ``difference`` and ``status`` (``matches``, ``differs`` or
        ``no_schedule``).

    Examples
    --------
    >>> import renewforecast as rf
    >>> reconcile_schedules(rf.Book.empty()).columns.tolist()[-1]
    'status'
    """
    lines = book.opportunity_lines
    sched = book.schedules[book.schedules["type"].isin(["revenue", "both"])]
    agg = sched.groupby("line_id", sort=False).agg(
        installments=("revenue", "size"), scheduled_revenue=("revenue", "sum")
    )
    out = lines[["line_id", "opportunity_id", "total_price"]].merge(
        agg, left_on="line_id", right_index=True, how="left"
    )
    out["installments"] = out["installments"].fillna(0).astype("int64")
    out["scheduled_revenue"] = out["scheduled_revenue"].round(2)
    out["difference"] = (out["scheduled_revenue"] - out["total_price"]).round(2)
    out["status"] = np.select(
        [out["installments"] == 0, out["difference"].abs() <= CENT],
        ["no_schedule", "matches"],
        "differs",
    )
    return out.reset_index(drop=True)


def line_schedules(book) -> pd.DataFrame:
    """The revenue schedule of every opportunity line, as the forecast uses it.

    - A line with revenue schedule rows in the export keeps them as they are
      (they are authoritative; :func:`reconcile_schedules` reports those that
      do not sum to the line total).
    - A line without them gets its product's default revenue schedule,
      established from the line's service date, else the opportunity's close
      date, with :func:`expand_schedules` (Salesforce's rule when a line is
      created for a product with a default schedule).
    - Otherwise the whole line total is one installment on that date.

    Returns
    -------
    DataFrame
        ``line_id``, ``opportunity_id``, ``schedule_date``, ``revenue`` and
        ``source`` (``export``, ``product_default`` or ``single``).

    Examples
    --------
    >>> import renewforecast as rf
    >>> line_schedules(rf.Book.empty()).columns.tolist()
    ['line_id', 'opportunity_id', 'schedule_date', 'revenue', 'source']
    """
    cols = ["line_id", "opportunity_id", "schedule_date", "revenue", "source"]
    lines = book.opportunity_lines
    opp_of = lines.set_index("line_id")["opportunity_id"]
    sched = book.schedules[book.schedules["type"].isin(["revenue", "both"]) & book.schedules["revenue"].notna()]
    sched = sched[sched["line_id"].isin(set(lines["line_id"]))]
    parts = [
        pd.DataFrame(
            {
                "line_id": sched["line_id"].to_numpy(),
                "opportunity_id": sched["line_id"].map(opp_of).to_numpy(),
                "schedule_date": sched["schedule_date"].to_numpy(dtype="datetime64[ns]"),
                "revenue": sched["revenue"].to_numpy(dtype="float64"),
                "source": "export",
            }
        )
    ]
    rest = lines[~lines["line_id"].isin(set(sched["line_id"]))]
    if len(rest):
        close = rest["opportunity_id"].map(
            book.opportunities.drop_duplicates("opportunity_id").set_index("opportunity_id")["close_date"]
        )
        start = rest["service_date"].fillna(close)
        products = book.products.drop_duplicates("product_id").set_index("product_id")
        stype = rest["product_id"].map(products["revenue_schedule_type"]).astype(object)
        period = rest["product_id"].map(products["revenue_installment_period"]).astype(object)
        n = rest["product_id"].map(products["revenue_installments"]).astype("float64")
        has_default = (stype.notna() & period.notna() & n.notna() & start.notna()).to_numpy()
        if has_default.any():
            d = rest[has_default]
            expanded = expand_schedules(
                pd.DataFrame(
                    {
                        "line_id": d["line_id"].to_numpy(),
                        "amount": d["total_price"].to_numpy(dtype="float64"),
                        "start_date": start[has_default].to_numpy(),
                        "schedule_type": stype[has_default].to_numpy(),
                        "period": period[has_default].to_numpy(),
                        "installments": n[has_default].to_numpy(),
                    }
                )
            )
            parts.append(
                pd.DataFrame(
                    {
                        "line_id": expanded["line_id"].to_numpy(),
                        "opportunity_id": expanded["line_id"].map(opp_of).to_numpy(),
                        "schedule_date": expanded["schedule_date"].to_numpy(),
                        "revenue": expanded["revenue"].to_numpy(),
                        "source": "product_default",
                    }
                )
            )
        single = rest[~has_default]
        parts.append(
            pd.DataFrame(
                {
                    "line_id": single["line_id"].to_numpy(),
                    "opportunity_id": single["opportunity_id"].to_numpy(),
                    "schedule_date": start[~has_default].to_numpy(dtype="datetime64[ns]"),
                    "revenue": single["total_price"].to_numpy(dtype="float64"),
                    "source": "single",
                }
            )
        )
    out = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    return out[cols].reset_index(drop=True)
