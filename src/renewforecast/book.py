"""The Book: the validated, immutable set of canonical tables every engine takes."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from renewforecast.dates import month_end
from renewforecast.schemas import TABLES, empty_table

__all__ = ["Book", "chain_root_positions", "content_fingerprint", "table_fingerprint"]

_TABLE_NAMES = tuple(TABLES)


def _to_timestamp(date: Any) -> pd.Timestamp:
    ts = pd.Timestamp(date)
    if ts is pd.NaT:
        raise ValueError("as_of date is missing")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def chain_root_positions(parent: np.ndarray) -> np.ndarray:
    """Position of each row's chain root, given each row's parent position (-1: none).

    Subscription chains (a row and the rows revising it) and account
    hierarchies are both followed this way.

    Examples
    --------
    >>> chain_root_positions(np.array([-1, 0, 1, -1])).tolist()
    [0, 0, 0, 3]
    """
    root = np.arange(len(parent))
    has = parent >= 0
    root[has] = parent[has]
    # Pointer jumping: each round halves the remaining depth of every chain.
    for _ in range(64):
        up = parent[root]
        nxt = np.where(up >= 0, up, root)
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root


def _column_bytes(series: pd.Series) -> bytes:
    # A deterministic encoding of one column's values, independent of the
    # pandas version's hashing internals, so fingerprints stay comparable in
    # model manifests written by older releases.
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series.to_numpy(dtype="datetime64[ns]").view("int64")
        return values.astype("<i8").tobytes()
    if pd.api.types.is_bool_dtype(series) or str(series.dtype) == "boolean":
        return series.astype("float64").fillna(-1.0).to_numpy().astype("<f8").tobytes()
    if pd.api.types.is_numeric_dtype(series):
        arr = series.astype("float64").to_numpy()
        arr = np.where(np.isnan(arr), np.inf * -1, arr)  # one canonical NaN
        return arr.astype("<f8").tobytes()
    text = series.astype("string").fillna("\x00").to_numpy(dtype=object)
    return "\x1f".join(text).encode("utf-8")


def table_fingerprint(frame: pd.DataFrame) -> str:
    """Return a sha256 of a table's content (column names, order and values).

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1.0, 2.0]})
    >>> table_fingerprint(a) == table_fingerprint(a.copy())
    True
    >>> table_fingerprint(a) == table_fingerprint(a.iloc[::-1])
    False
    """
    h = hashlib.sha256()
    h.update(str(len(frame)).encode())
    for name in frame.columns:
        h.update(b"\x1e" + str(name).encode("utf-8") + b"\x1d")
        h.update(_column_bytes(frame[name]))
    return h.hexdigest()


def _sort_keys(series: pd.Series) -> np.ndarray:
    # The same value encoding as _column_bytes, as sortable arrays.
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.to_numpy(dtype="datetime64[ns]").view("int64")
    if pd.api.types.is_bool_dtype(series) or str(series.dtype) == "boolean":
        return series.astype("float64").fillna(-1.0).to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        arr = series.astype("float64").to_numpy()
        return np.where(np.isnan(arr), -np.inf, arr)
    return series.astype("string").fillna("\x00").to_numpy(dtype=object)


def content_fingerprint(frame: pd.DataFrame) -> str:
    """Return a sha256 of a table's content that does not depend on the order of its rows.

    The rows are put in one canonical order (by every column's value, first
    column first) and hashed with :func:`table_fingerprint`. A database
    keeps no row order and an export file's order is the tool's, so the same
    records read from either give the same fingerprint.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"id": ["b", "a"], "x": [1.0, 2.0]})
    >>> content_fingerprint(a) == content_fingerprint(a.iloc[::-1])
    True
    >>> content_fingerprint(a) == content_fingerprint(a.assign(x=[1.0, 2.5]))
    False
    """
    if len(frame) > 1:
        first = pd.Series(_sort_keys(frame.iloc[:, 0]))
        if first.is_unique:  # a record id: it alone decides the order
            order = first.sort_values(kind="mergesort").index.to_numpy()
        else:
            keys = pd.DataFrame({i: _sort_keys(frame[name]) for i, name in enumerate(frame.columns)})
            order = keys.sort_values(list(keys.columns), kind="mergesort").index.to_numpy()
        frame = frame.iloc[order]
    return table_fingerprint(frame)


@dataclass(frozen=True, eq=False)
class Book:
    """Validated canonical tables of one organisation, plus metadata.

    A Book is what :func:`renewforecast.load_book` returns and what every
    engine takes. Its tables follow :data:`renewforecast.schemas.TABLES`;
    they are never modified in place (engines copy what they change), and a
    Book is never re-validated once built.

    Parameters
    ----------
    accounts, products, contracts, subscriptions, opportunities, \
opportunity_lines, schedules, spend, signals, opportunity_history : DataFrame
        The canonical tables.
    fx_rates : DataFrame, optional
        Dated exchange rates (``currency``, ``start_date``, ``rate``: units of
        the currency per one unit of the reporting currency from that day),
        when the org exports ``DatedConversionRate.csv``; empty otherwise.
    currency : str
        The reporting currency every money column is in.
    source : str
        Where the Book was read from.
    warnings : DataFrame
        Soft problems found while loading (file, line, record_id, column,
        rule, message, severity), shown by the data-quality report.
    known_as_of : Timestamp or None
        Set by :meth:`as_of`: the date the Book has been cut back to.
    quarantine : DataFrame
        Rows set aside by ``load_book(on_error="quarantine")``: file, line,
        record_id, column, rule, message and the table (one row per record
        set aside, those that only depended on a broken one included).
    set_aside : dict of DataFrame
        The canonical rows set aside, by table.
    loaded_fingerprint : str or None
        Set by :meth:`as_of`: the :attr:`fingerprint` of the Book as loaded,
        which names the data in report provenance whatever the cut.

    Examples
    --------
    >>> import renewforecast as rf
    >>> book = rf.Book.empty()
    >>> len(book.contracts), book.currency
    (0, 'USD')
    """

    accounts: pd.DataFrame
    products: pd.DataFrame
    contracts: pd.DataFrame
    subscriptions: pd.DataFrame
    opportunities: pd.DataFrame
    opportunity_lines: pd.DataFrame
    schedules: pd.DataFrame
    spend: pd.DataFrame
    signals: pd.DataFrame
    opportunity_history: pd.DataFrame
    fx_rates: pd.DataFrame = field(default_factory=lambda: empty_table("fx_rates"))
    currency: str = "USD"
    source: str = ""
    warnings: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["file", "line", "record_id", "column", "rule", "message", "severity"]
        )
    )
    known_as_of: pd.Timestamp | None = None
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["file", "line", "record_id", "column", "rule", "message", "table"]
        )
    )
    set_aside: dict[str, pd.DataFrame] = field(default_factory=dict)
    loaded_fingerprint: str | None = None

    @classmethod
    def empty(cls, currency: str = "USD") -> Book:
        """Return a Book with every table empty."""
        return cls(**{name: empty_table(name) for name in _TABLE_NAMES}, currency=currency)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The canonical tables by name, in schema order."""
        return {name: getattr(self, name) for name in _TABLE_NAMES}

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the content of every table and the currency.

        Two Books with the same data have the same fingerprint whatever files,
        database or format they were read from, and in whatever order their
        rows came (:func:`content_fingerprint`); it identifies training data in
        model manifests and report provenance.
        """
        h = hashlib.sha256(self.currency.encode())
        for name, frame in self.tables.items():
            h.update(name.encode() + content_fingerprint(frame).encode())
        return h.hexdigest()

    @property
    def data_end(self) -> pd.Timestamp | None:
        """The export date: the latest record creation date in the Book.

        Reports default their as-of date to it, so an old export is reported
        as it stood, not against today's calendar.
        """
        dates = [
            frame["created_date"].max()
            for frame in (
                self.accounts,
                self.contracts,
                self.subscriptions,
                self.opportunities,
                self.opportunity_history,
            )
            if len(frame)
        ]
        dates = [d for d in dates if pd.notna(d)]
        if self.known_as_of is not None:
            return self.known_as_of
        return max(dates) if dates else None

    def resolve_as_of(self, as_of: Any = None) -> pd.Timestamp:
        """The as-of date a report should use: ``as_of`` if given, else :attr:`data_end`.

        Examples
        --------
        >>> import renewforecast as rf
        >>> rf.Book.empty().resolve_as_of("2024-03-31")
        Timestamp('2024-03-31 00:00:00')
        """
        if as_of is not None and str(as_of).strip():
            return _to_timestamp(as_of)
        end = self.data_end
        if end is None:
            raise ValueError("the Book is empty: give an as-of date")
        return end.normalize()

    def summary(self) -> pd.DataFrame:
        """Row counts and date ranges of each table (one row per table)."""
        rows = []
        date_cols = {
            "accounts": "created_date",
            "contracts": "start_date",
            "subscriptions": "start_date",
            "opportunities": "close_date",
            "schedules": "schedule_date",
            "spend": "month",
            "signals": "month",
            "opportunity_history": "created_date",
        }
        for name, frame in self.tables.items():
            col = date_cols.get(name)
            first = frame[col].min() if col and len(frame) else pd.NaT
            last = frame[col].max() if col and len(frame) else pd.NaT
            rows.append({"table": name, "rows": len(frame), "first": first, "last": last, "dated_by": col or ""})
        return pd.DataFrame(rows)

    def replace(self, **changes: Any) -> Book:
        """Return a copy with some tables or metadata replaced."""
        return dataclasses.replace(self, **changes)

    def as_of(self, date: Any) -> Book:
        """Return the Book as it was known at the end of ``date``.

        Records created after ``date`` are dropped (with the records that
        hang off them: lines and schedules of a dropped opportunity,
        subscriptions of a dropped contract); a termination date later than
        ``date`` stays on the negative rows that booked it and is cleared on
        original rows (when it was written there is not known); signals and
        spend after ``date`` are dropped (a month of them is known once it
        has ended); dated exchange rates are known from the day they start.
        Every opportunity with stage history (open or closed at export) is
        rebuilt from its last change on or before ``date``, ordered by the
        change's timestamp and then its id: stage, probability, amount, close
        date, and open or closed as that stage says. One without history that
        closed later is re-opened with its stage and probability missing
        (they would otherwise leak the outcome). Cutting a Book again at the
        same or a later date returns it unchanged.

        Parameters
        ----------
        date : date-like
            The cut-off. Anything ``pandas.Timestamp`` accepts.

        Returns
        -------
        Book

        Examples
        --------
        >>> import renewforecast as rf
        >>> rf.Book.empty().as_of("2024-06-30").known_as_of
        Timestamp('2024-06-30 00:00:00')
        """
        cut = _to_timestamp(date)
        if self.known_as_of is not None and cut >= self.known_as_of:
            return self  # nothing later is known: cutting again changes nothing

        accounts = self.accounts[self.accounts["created_date"] <= cut]
        # What hangs off a dropped record goes with it; a reference to a
        # record the Book does not hold at all (a hand-made Book) is kept.
        gone_accounts = _not_kept(self.accounts["account_id"], accounts["account_id"])

        contracts = self.contracts[
            (self.contracts["created_date"] <= cut) & ~self.contracts["account_id"].isin(gone_accounts)
        ].copy()
        gone_contracts = _not_kept(self.contracts["contract_id"], contracts["contract_id"])
        # A renewal link may only point at a contract that exists at the cut.
        link = contracts["renewed_contract_id"]
        contracts.loc[link.notna() & link.isin(gone_contracts), "renewed_contract_id"] = pd.NA

        subs = self.subscriptions[
            (self.subscriptions["created_date"] <= cut) & ~self.subscriptions["contract_id"].isin(gone_contracts)
        ].copy()
        # A termination booked by the cut is known, whenever its last day of
        # service falls: its negative rows carry the date. A later date on an
        # original row was written when the termination was booked, which the
        # export does not date: it is not known yet.
        later = (subs["terminated_date"] > cut) & ~(subs["quantity"] < 0)
        subs.loc[later, "terminated_date"] = pd.NaT
        rev = subs["revised_subscription_id"]
        gone_subs = _not_kept(self.subscriptions["subscription_id"], subs["subscription_id"])
        subs.loc[rev.notna() & rev.isin(gone_subs), "revised_subscription_id"] = pd.NA

        opps = self.opportunities[
            (self.opportunities["created_date"] <= cut) & ~self.opportunities["account_id"].isin(gone_accounts)
        ].copy()
        for col in ("renewed_contract_id", "amended_contract_id"):
            ref = opps[col]
            opps.loc[ref.notna() & ref.isin(gone_contracts), col] = pd.NA
        history = self.opportunity_history[self.opportunity_history["created_date"] <= cut]
        history = history[history["opportunity_id"].isin(opps["opportunity_id"])]
        opps = _rebuild(opps, history, cut)
        kept_opps = opps["opportunity_id"]

        lines = self.opportunity_lines[self.opportunity_lines["opportunity_id"].isin(kept_opps)]
        schedules = self.schedules[self.schedules["line_id"].isin(lines["line_id"])]
        # A month of spend or signals is known once the month is over.
        spend = self.spend[month_end(self.spend["month"]) <= cut]
        signals = self.signals[
            (month_end(self.signals["month"]) <= cut) & ~self.signals["account_id"].isin(gone_accounts)
        ]
        # A dated rate is known from the day it starts.
        fx_rates = self.fx_rates[self.fx_rates["start_date"] <= cut]
        parent = accounts["parent_account_id"]
        if parent.isin(gone_accounts).any():
            accounts = accounts.copy()
            accounts.loc[parent.isin(gone_accounts), "parent_account_id"] = pd.NA
        return dataclasses.replace(
            self,
            accounts=accounts.reset_index(drop=True),
            contracts=contracts.reset_index(drop=True),
            subscriptions=subs.reset_index(drop=True),
            opportunities=opps.reset_index(drop=True),
            opportunity_lines=lines.reset_index(drop=True),
            schedules=schedules.reset_index(drop=True),
            spend=spend.reset_index(drop=True),
            signals=signals.reset_index(drop=True),
            opportunity_history=history.reset_index(drop=True),
            fx_rates=fx_rates.reset_index(drop=True),
            known_as_of=cut,
            loaded_fingerprint=self.loaded_fingerprint or self.fingerprint,
        )

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in self.tables.items() if len(v))
        cut = f", as_of={self.known_as_of.date()}" if self.known_as_of is not None else ""
        return f"Book({counts}, currency={self.currency!r}{cut})"


def _not_kept(every: pd.Series, kept: pd.Series) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The distinct values of ``every`` that ``kept`` does not hold."""
    # Hashed by pandas, not held in Python sets: cutting a ledger of tens of
    # millions of rows would otherwise build sets of as many strings.
    return every[~every.isin(kept)].unique()


def _history_order(history: pd.DataFrame) -> pd.DataFrame:
    """Stage history in the order it happened: timestamp, then id; never file order."""
    when = history["created_at"].fillna(history["created_date"]) if "created_at" in history else history["created_date"]
    hid = (
        history["history_id"].astype(object).fillna("")
        if "history_id" in history
        else pd.Series("", index=history.index)
    )
    keyed = history.assign(_when=when.to_numpy(), _hid=hid.to_numpy())
    return keyed.sort_values(["opportunity_id", "_when", "_hid"], kind="mergesort").drop(columns=["_when", "_hid"])


def _stage_outcomes(opps: pd.DataFrame) -> tuple[set, set]:
    """Stages that close an opportunity, and those that win it, as the export's closed opportunities show."""
    closed = opps[opps["is_closed"].fillna(False).astype(bool) & opps["stage"].notna()]
    stages = closed.groupby(closed["stage"].astype(str))["is_won"].agg(lambda w: w.fillna(False).astype(bool).mean())
    return set(stages.index), set(stages.index[stages > 0.5])


def _rebuild(opps: pd.DataFrame, history: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """Each opportunity as it stood at the end of ``cut``.

    An opportunity with stage history takes stage, probability, amount and
    close date from its last change on or before the cut (in the order the
    changes happened), and is open or closed as that stage says. One
    without history that closed later is re-opened with its stage and
    probability unknown, so the outcome does not leak.
    """
    opps = opps.copy()
    closed_stages, won_stages = _stage_outcomes(opps)
    if len(history):
        last = _history_order(history).groupby("opportunity_id", sort=False).tail(1).set_index("opportunity_id")
        ids = opps["opportunity_id"]
        has = ids.isin(last.index).to_numpy()
        if has.any():
            src = last.loc[ids[has].to_numpy()]
            idx = opps.index[has]
            changed = src["stage"].astype(object).to_numpy() != opps.loc[idx, "stage"].astype(object).to_numpy()
            opps.loc[idx, "stage"] = src["stage"].to_numpy()
            opps.loc[idx, "probability"] = src["probability"].to_numpy()
            for col in ("close_date", "amount"):
                if col in src:
                    value = src[col].to_numpy()
                    opps.loc[idx, col] = np.where(pd.isna(value), opps.loc[idx, col].to_numpy(), value)
            stage = src["stage"].astype(object)
            opps.loc[idx, "is_closed"] = stage.isin(closed_stages).to_numpy()
            opps.loc[idx, "is_won"] = stage.isin(won_stages).to_numpy()
            # The forecast category at the time is only known when the stage has not moved since.
            fc = opps.loc[idx, "forecast_category"].astype(object).to_numpy()
            opps.loc[idx, "forecast_category"] = np.where(changed, None, fc)
    else:
        has = np.zeros(len(opps), dtype=bool)
    closed_later = (opps["is_closed"].fillna(False).astype(bool) & (opps["close_date"] > cut)).to_numpy() & ~has
    if closed_later.any():
        opps.loc[closed_later, "is_closed"] = False
        opps.loc[closed_later, "is_won"] = False
        opps.loc[closed_later, "stage"] = pd.NA
        opps.loc[closed_later, "probability"] = np.nan
        opps.loc[closed_later, "forecast_category"] = pd.NA
    return opps
