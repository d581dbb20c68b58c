"""``load_book``: read a folder of exports, map, validate, and return a Book."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from renewforecast.book import Book
from renewforecast.currency import OPEN_START, rates_on
from renewforecast.exceptions import BookValidationError, Problem, problems_frame
from renewforecast.io._raw import RawTable, parse_column, read_raw, shown, unreadable
from renewforecast.io.quarantine import set_aside
from renewforecast.io.salesforce import (
    CURRENCY_FIELD,
    SALESFORCE_OBJECTS,
    SfField,
    SfObject,
    from_salesforce,
)
from renewforecast.io.validate import validate_tables
from renewforecast.io.warehouse import ReplicaSnapshot, ReplicaTable, is_database_url, read_replica
from renewforecast.schemas import TABLES, conform, dtype_of

__all__ = [
    "DEFAULT_EARLIEST",
    "DEFAULT_YEARS_AHEAD",
    "WHOLE_TABLE_RULES",
    "ReplicaTotals",
    "date_window",
    "load_book",
    "load_replica",
    "replica_columns",
    "sorted_problems",
]

#: No record of a subscription business is dated before this by default: an
#: earlier date is a placeholder (1900-01-01, 0001-01-01) or a typo.
DEFAULT_EARLIEST = dt.date(1990, 1, 1)
#: ... nor more than this many years after the day the data is loaded.
DEFAULT_YEARS_AHEAD = 50


def date_window(
    earliest: object = None, latest: object = None, today: dt.date | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last day a record's date may fall on.

    Parameters
    ----------
    earliest, latest : date-like, optional
        Bounds to use instead of the defaults: 1990-01-01, and
        :data:`DEFAULT_YEARS_AHEAD` years after ``today``.
    today : date, optional
        The day the data is loaded (default: today).

    Examples
    --------
    >>> import datetime as dt
    >>> [str(d.date()) for d in date_window(today=dt.date(2026, 11, 30))]
    ['1990-01-01', '2076-11-30']
    >>> [str(d.date()) for d in date_window("1970-01-01", "2200-12-31")]
    ['1970-01-01', '2200-12-31']
    """
    today = today or dt.date.today()
    first = pd.Timestamp(earliest if earliest is not None else DEFAULT_EARLIEST)
    if latest is not None:
        last = pd.Timestamp(latest)
    else:
        # 29 February has no twin 50 years on.
        last = pd.Timestamp(today) + pd.DateOffset(years=DEFAULT_YEARS_AHEAD)
    if first > last:
        raise ValueError(f"the date window starts ({first:%Y-%m-%d}) after it ends ({last:%Y-%m-%d})")
    return first, last


_CANONICAL_REQUIRED = (
    "accounts",
    "products",
    "contracts",
    "subscriptions",
    "opportunities",
    "opportunity_lines",
)

#: What a missing optional file costs, said in the data-quality report.
WHAT_IT_COSTS = {
    "schedules": "no product schedules: pipeline revenue uses each product's default schedule, "
    "else one installment per line",
    "spend": "no spend: CAC, LTV:CAC, CAC payback and the magic number cannot be computed",
    "opportunity_history": "no stage history: past stages are unknown (an opportunity closed after an "
    "as-of date is re-opened with its stage missing) and win rates use the CRM's "
    "stage probabilities",
    "signals": "no signals: the renewal model uses contract, revenue and pipeline features only",
}

#: Fields Salesforce computes, which backup tools leave out, and how they are derived.
DERIVED = {
    ("contracts", "end_date"): "computed as StartDate + ContractTerm months - 1 day, as Salesforce does",
    ("subscriptions", "start_date"): "SBQQ__SubscriptionStartDate__c, else the contract's StartDate "
    "(CPQ's own formula)",
    ("subscriptions", "end_date"): "SBQQ__SubscriptionEndDate__c, else the contract's end date (CPQ's own formula)",
    ("opportunities", "is_closed"): "a stage whose name starts with 'Closed' closes the opportunity",
    ("opportunities", "is_won"): "a closed stage whose name says 'Won' wins it",
    ("opportunity_lines", "total_price"): "computed as Quantity x UnitPrice",
}
_MONEY = {
    "subscriptions": ["net_price", "list_price"],
    "opportunities": ["amount"],
    "opportunity_lines": ["unit_price", "total_price"],
    "schedules": ["revenue"],
    "spend": ["sales_spend", "marketing_spend"],
}


def _canonical_objects() -> dict[str, SfObject]:
    objs = {}
    for name, spec in TABLES.items():
        fields = tuple(SfField(c.name, c.name, c.kind, required=c.required and not c.nullable) for c in spec.columns)
        objs[name] = SfObject(name, name, fields, required_file=name in _CANONICAL_REQUIRED, id_field=spec.key)
    objs["fx"] = SfObject(
        "fx",
        "fx",
        (
            SfField("currency", "currency", "str", True),
            SfField("rate", "rate", "float", True),
            SfField("is_reporting", "is_reporting", "bool"),
        ),
        required_file=False,
        id_field="currency",
    )
    return objs


@dataclass
class _Read:
    frame: pd.DataFrame
    colmap: dict[str, str]
    missing: tuple[str, ...] = ()


def _numbers_at_once(frame: pd.DataFrame, sources: list[str], date_format: str) -> dict[str, tuple]:
    """Many number columns read in one pass (a signals file may have thousands)."""
    if len(sources) < 2:
        return {}
    n = len(frame)
    sources = list(dict.fromkeys(sources))
    stacked = pd.Series(frame[sources].to_numpy(dtype=object).ravel(order="F"))
    values, bad = parse_column(stacked, "float", date_format=date_format)
    values = values.to_numpy(dtype="float64")
    return {
        src: (pd.Series(values[k * n : (k + 1) * n], copy=False), bad[k * n : (k + 1) * n])
        for k, src in enumerate(sources)
    }


def _listing(names: list[str], limit: int = 30) -> str:
    """Header cells as a message lists them: each cut short, at most ``limit``."""
    if not names:
        return "none"
    text = ", ".join(shown(n)[1:-1] for n in names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _closest(name: str, found: list[str]) -> str:
    lower = {c.lower(): c for c in found}
    match = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return f"; closest match: {shown(lower[match[0]])}" if match else ""


def _read_object(
    raw: RawTable,
    obj: SfObject,
    *,
    name: str,
    date_format,
    overrides,
    problems: list[Problem],
    warnings: list[Problem],
    window: tuple[pd.Timestamp, pd.Timestamp],
    columns: dict[str, str] | None = None,
    header_line: int | None = 1,
) -> _Read | None:
    """One table read as text (a file, or a database table rendered as text) parsed and checked.

    ``name`` is what problems call the table (a file name, or a database
    table's name); ``columns`` maps an API field name to the column that
    holds it when the table names fields its own way (a replica's
    ``sbqq_net_price_c``), so that problems name the column as it is found.
    """
    problems.extend(raw.problems)
    warnings.extend(raw.warnings)
    if raw.problems and raw.frame.empty:
        return None
    columns = columns or {}
    fields = _fields(obj, overrides, columns)
    id_field = columns.get(obj.id_field, obj.id_field) if obj.id_field else None
    found = raw.columns
    missing = [f for f in fields if f.required and f.source not in found]
    for f in missing:
        problems.append(
            Problem(
                name,
                header_line,
                "",
                f.source,
                "missing_column",
                f"required column {f.source!r} is missing; columns found: {_listing(found)}"
                + _closest(f.source, found),
            )
        )
    for f in fields:
        if not f.required and f.source not in found and (obj.table, f.column) in DERIVED:
            warnings.append(
                Problem(
                    name,
                    None,
                    "",
                    f.source,
                    "derived_field",
                    f"{f.source} is not in the file: {DERIVED[(obj.table, f.column)]}",
                    "warning",
                )
            )
    # The other columns are still read: a missing column never hides their problems.
    if obj.table == "signals":
        known = {f.source for f in fields}
        fields += [SfField(c, c, "float") for c in found if c not in known]
    frame = raw.frame
    n = len(frame)
    ids = (
        frame[id_field].astype(object).to_numpy() if id_field and id_field in found else np.full(n, None, dtype=object)
    )
    out: dict[str, object] = {}
    colmap: dict[str, str] = {}
    parsed_sources: set[str] = set()
    block = (
        _numbers_at_once(
            frame, [f.source for f in fields if f.kind == "float" and not f.percent and f.source in found], date_format
        )
        if obj.table == "signals"
        else {}
    )
    for f in fields:
        colmap.setdefault(f.column, f.source)
        if f.source not in found:
            out[f.column] = pd.Series(
                pd.NA if f.kind not in ("float", "date", "datetime") else None, index=range(n), dtype=dtype_of(f.kind)
            )
            continue
        if f.source in block and f.source not in parsed_sources:
            values, bad = block[f.source]
        else:
            values, bad = parse_column(frame[f.source], f.kind, date_format=date_format)
        if f.source in parsed_sources:
            bad = np.zeros(len(bad), dtype=bool)  # one field read twice is reported once
        parsed_sources.add(f.source)
        if f.percent:
            values = values / 100.0
        out[f.column] = values
        for i in np.flatnonzero(bad):
            rule, message = unreadable(frame[f.source].iloc[i], f.kind, date_format)
            problems.append(
                Problem(name, int(raw.lines[i]), "" if ids[i] is None else str(ids[i]), f.source, rule, message)
            )
        if f.kind in ("date", "datetime") and obj.table not in _RATE_TABLES:
            first, last = window
            outside = (values.notna() & ((values < first) | (values >= last + pd.Timedelta(days=1)))).to_numpy()
            for i in np.flatnonzero(outside & ~bad):
                problems.append(
                    Problem(
                        name,
                        int(raw.lines[i]),
                        "" if ids[i] is None else str(ids[i]),
                        f.source,
                        "date_out_of_window",
                        f"{values.iloc[i]:%Y-%m-%d} is outside the dates records may carry ({first:%Y-%m-%d} to "
                        f"{last:%Y-%m-%d}): a placeholder or a typo? (widen the window with date_window= or "
                        f"--date-window if the data truly lies there)",
                    )
                )
            values = values.where(~outside)
            out[f.column] = values
    result = pd.DataFrame(out)
    result["_file"] = name
    result["_line"] = raw.lines[:n]
    result["_id"] = pd.Series(ids, dtype=object)
    currency_source = _currency_source(obj, found, columns)
    if currency_source is not None:
        result["_currency"] = frame[currency_source].astype(object).to_numpy()
    return _Read(result, colmap, tuple(f.column for f in missing))


def _fields(obj: SfObject, overrides: dict[str, str], columns: dict[str, str]) -> list[SfField]:
    """The object's fields, each sourced from the column that holds it (``field_map`` first, then the table's name)."""
    return [
        SfField(columns.get(src, src), f.column, f.kind, f.required, f.percent)
        for f, src in ((f, overrides.get(f.column, f.source)) for f in obj.fields)
    ]


def _currency_source(obj: SfObject, found: list[str], columns: dict[str, str]) -> str | None:
    """The column holding each record's currency, when the table has one."""
    currency_field = columns.get(CURRENCY_FIELD, CURRENCY_FIELD)
    if currency_field in found:
        return currency_field
    if "currency" in found and obj.table not in ("fx", "fx_dated", "fx_rates", "subscriptions"):
        # (a canonical subscription's currency is where its amount came from;
        # the amount itself is already in the reporting currency)
        return "currency"
    return None


#: The date each table's amounts are converted at with dated rates: an
#: opportunity's close date (Salesforce's rule for opportunities, their
#: products and schedules), a schedule's own date, a subscription's start.
_FX_DATE = {
    "subscriptions": "start_date",
    "opportunities": "close_date",
    "opportunity_lines": "_close_date",
    "schedules": "_close_date",
    "spend": "month",
}


def _dated_rates(frame: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
    """DatedConversionRate rows as the canonical ``fx_rates`` table."""

    def day(text: pd.Series, column: str) -> pd.Series:
        value = text.astype(object).fillna("").astype(str).str.slice(0, 10)
        year = pd.to_numeric(value.str.slice(0, 4), errors="coerce")
        parsed = pd.to_datetime(value.where((year >= 1900) & (year <= 2200)), format="%Y-%m-%d", errors="coerce")
        bad = (value != "") & year.isna() | ((year >= 1900) & (year <= 2200) & parsed.isna())
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(
                Problem(
                    str(frame["_file"].iloc[i]),
                    int(frame["_line"].iloc[i]),
                    str(frame["_id"].iloc[i] or ""),
                    column,
                    "unparseable_date",
                    f"cannot read {value.iloc[i]!r} as a date (YYYY-MM-DD)",
                )
            )
        return parsed

    start = day(frame["_start"], "StartDate").fillna(OPEN_START)
    return pd.DataFrame(
        {
            "currency": frame["currency"].astype("string").to_numpy(),
            "start_date": start.to_numpy(),
            "rate": frame["rate"].to_numpy(dtype="float64"),
        }
    )


def _empty_read(obj: SfObject) -> _Read:
    frame = pd.DataFrame({f.column: pd.Series(dtype=dtype_of(f.kind)) for f in obj.fields})
    frame["_file"], frame["_line"], frame["_id"] = (
        pd.Series(dtype=object),
        pd.Series(dtype="int64"),
        pd.Series(dtype=object),
    )
    return _Read(frame, {f.column: f.source for f in obj.fields})


def _currencies_seen(tables: dict[str, pd.DataFrame]) -> dict[str, list[tuple[str, int, int]]]:
    """Each currency the records carry: per table, (table, line of its first record, records)."""
    seen: dict[str, list[tuple[str, int, int]]] = {}
    for frame in tables.values():
        if "_currency" not in frame.columns:
            continue
        cur = frame["_currency"].fillna("")
        for code, group in frame.groupby(cur, sort=True):
            if code:
                seen.setdefault(code, []).append((str(group["_file"].iloc[0]), int(group["_line"].iloc[0]), len(group)))
    return seen


def _apply_fx(
    tables: dict[str, pd.DataFrame],
    fx: pd.DataFrame | None,
    dated: pd.DataFrame | None,
    currency: str | None,
    problems: list[Problem],
    seen: dict[str, list[tuple[str, int | None, int]]] | None = None,
) -> tuple[str, pd.DataFrame | None]:
    if seen is None:
        seen = _currencies_seen(tables)
    has_dated = dated is not None and len(dated)
    if (fx is not None and len(fx)) or has_dated:
        static = fx if fx is not None and len(fx) else pd.DataFrame({"currency": [], "rate": [], "is_reporting": []})
        rates = static.drop_duplicates("currency").set_index("currency")["rate"]
        corporate = static.loc[static["is_reporting"].fillna(False).astype(bool), "currency"]
        reporting = currency or (str(corporate.iloc[0]) if len(corporate) else None)
        if reporting is None:
            reporting = "USD"
        fx_rates = _dated_rates(dated, problems) if has_dated else None
        known = set(rates.index) | (set(fx_rates["currency"]) if fx_rates is not None else set())
        for code, where in seen.items():
            if code not in known and code != reporting:
                file, line, count = where[0]
                problems.append(
                    Problem(
                        file,
                        line,
                        "",
                        CURRENCY_FIELD,
                        "unknown_currency",
                        f"{count} record(s) in {code}, which has no conversion rate in the FX table",
                    )
                )
        if fx_rates is not None and len(rates):
            # Currencies without dated ranges keep their static rate.
            # The corporate currency is 1 by definition.
            extra = [c for c in rates.index if c not in set(fx_rates["currency"]) and c not in set(corporate)]
            fx_rates = pd.concat(
                [
                    fx_rates,
                    pd.DataFrame({"currency": extra, "start_date": OPEN_START, "rate": rates[extra].to_numpy()}),
                ],
                ignore_index=True,
            )
        lines = tables["opportunity_lines"]
        close = tables["opportunities"].drop_duplicates("opportunity_id").set_index("opportunity_id")["close_date"]
        lines["_close_date"] = lines["opportunity_id"].map(close)
        tables["schedules"]["_close_date"] = tables["schedules"]["line_id"].map(
            lines.drop_duplicates("line_id").set_index("line_id")["_close_date"]
        )
        for name, cols in _MONEY.items():
            frame = tables.get(name)
            if frame is None or "_currency" not in frame.columns:
                continue
            if fx_rates is not None:
                # Salesforce ConversionRate: units of the currency per one unit
                # of the corporate currency, so amounts are divided by it.
                rate = rates_on(
                    fx_rates,
                    frame["_currency"].where(frame["_currency"].notna(), None),
                    frame[_FX_DATE[name]],
                    reporting,
                )
                rate = np.where(np.isfinite(rate), rate, 1.0)
            else:
                r = frame["_currency"].map(rates).astype("float64")
                r = r.where(frame["_currency"].notna(), 1.0).fillna(1.0)
                if currency and currency in rates.index:
                    r = r / rates[currency]
                rate = r.to_numpy()
            for col in cols:
                frame[col] = frame[col] / rate
        for name in ("opportunity_lines", "schedules"):
            if "_close_date" in tables[name]:
                del tables[name]["_close_date"]
        return reporting, fx_rates
    if len(seen) > 1:
        total = {c: sum(n for *_, n in w) for c, w in seen.items()}
        main = max(total, key=total.get)
        listing = ", ".join(f"{c} ({n} records)" for c, n in sorted(total.items()))
        for code, where in sorted(seen.items()):
            if code == main:
                continue
            for file, line, count in where:
                problems.append(
                    Problem(
                        file,
                        line,
                        "",
                        CURRENCY_FIELD,
                        "mixed_currencies",
                        f"{count} record(s) in {code} but most are in {main}; the data holds {listing}. "
                        "Add CurrencyType.csv (IsoCode, ConversionRate, IsCorporate) or a canonical fx table",
                    )
                )
        return main, None
    if seen:
        return next(iter(seen)), None
    return currency or "USD", None


#: Exchange-rate periods open at 0001-01-01 and close at 9999-12-31 in
#: Salesforce (and at OPEN_START in a canonical fx_rates table): no window.
_RATE_TABLES = ("fx", "fx_dated", "fx_rates")

#: Tables without which no number can be computed: a header-only file is refused.
_MUST_HOLD_RECORDS = ("contracts", "subscriptions")


def _window(earliest: object, latest: object) -> tuple[pd.Timestamp, pd.Timestamp]:
    try:
        return date_window(earliest, latest)
    except (ValueError, TypeError) as exc:
        raise BookValidationError([Problem("", None, "", "", "bad_date_window", f"date_window: {exc}")]) from None


def _inside(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The folder's files, and the names of links that lead out of it (never opened)."""
    root = folder.resolve()
    present: dict[str, Path] = {}
    escaped: list[str] = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            target = p.resolve()
            if not target.is_relative_to(root):
                escaped.append(p.name)
                present[p.name] = p
                continue
        if p.is_file():
            present[p.name] = p
    return present, escaped


def _detect(path: Path) -> str:
    names = {p.name for p in path.iterdir() if p.is_file()}
    if names & {"Contract.csv", "SBQQ__Subscription__c.csv", "Account.csv"}:
        return "salesforce"
    stems = {p.stem for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet")}
    if stems & {"contracts", "subscriptions", "accounts"}:
        return "canonical"
    raise BookValidationError(
        [
            Problem(
                str(path),
                None,
                "",
                "",
                "unrecognised_folder",
                "neither a Salesforce export (Account.csv, Contract.csv, SBQQ__Subscription__c.csv, ...) "
                "nor a canonical folder (accounts.csv, contracts.csv, ...); files found: "
                + (", ".join(sorted(names)) or "none"),
            )
        ]
    )


def load_book(
    path: str | Path | sa.URL,
    *,
    encoding: str | None = None,
    date_format: str = "%m/%d/%Y",
    currency: str | None = None,
    field_map: dict[str, dict[str, str]] | None = None,
    type_map: dict[str, str] | None = None,
    on_error: str = "raise",
    date_window: tuple[object, object] | None = None,
    schema: str | None = None,
    layout: str = "auto",
) -> Book:
    """Read a folder of Salesforce exports or canonical tables, or a replicated database, into a validated Book.

    Parameters
    ----------
    path : path-like, str or sqlalchemy.URL
        A folder holding either Salesforce exports named by object
        (``Account.csv``, ``Contract.csv``, ``SBQQ__Subscription__c.csv``,
        ``Product2.csv``, ``Opportunity.csv``, ``OpportunityLineItem.csv``,
        ``OpportunityLineItemSchedule.csv``, optional ``OpportunityHistory.csv``
        and ``CurrencyType.csv``) plus ``spend.csv`` and optional
        ``signals.csv``; or canonical tables (``contracts.csv`` or
        ``contracts.parquet``, ...). Files are only read, never written.

        Or a SQLAlchemy database URL (any text with ``://``, e.g.
        ``"postgresql+psycopg://me@db.example.com:5432/crm"``,
        ``"duckdb:////data/org.duckdb"``, ``"snowflake://..."`` with that
        dialect installed) of a schema where Fivetran, Airbyte or Stitch
        replicate the same objects as tables (``contract``,
        ``sbqq_subscription_c`` or ``sbqq__subscription__c``, ...), with
        ``spend`` and ``signals`` tables in canonical columns. Soft-deleted
        rows and the tool's own columns are left out; values go through the
        very rules a file's cells do, and a problem names the table, the row's
        id and the column, its line being the row's position in Id order.
        The database is only read. ``Book.source`` is the URL without its
        password. See :mod:`renewforecast.io.warehouse` and the *Warehouse
        sources* section of ``docs/data_model.md``.
    encoding : str, optional
        Text encoding of the CSV files. By default a byte-order mark decides;
        without one UTF-8 is tried, then cp1252 (with a warning on the Book).
    date_format : str, default "%m/%d/%Y"
        The non-ISO date format of report-style exports. ISO dates and API
        datetimes are always accepted.
    currency : str, optional
        Reporting currency. Default: the corporate currency of the FX table,
        or the one currency found in the data.
    field_map : dict, optional
        Per file, canonical column -> field name, for orgs whose custom fields
        are named differently, e.g.
        ``{"Account.csv": {"segment": "Customer_Segment__c"}}``.
    type_map : dict, optional
        ``Opportunity.Type`` value -> canonical type (``new_business``,
        ``renewal``, ``upsell``, ``downgrade``, ``amendment``), added to or
        overriding :data:`renewforecast.io.salesforce.OPPORTUNITY_TYPES`.
        CPQ's renewal and amendment flags decide first.
    on_error : {"raise", "quarantine"}, default "raise"
        What a row that breaks a rule does: refuse the whole export (one
        error listing every problem), or go aside with every record that
        depends on it, listed on ``book.quarantine`` (see
        :mod:`renewforecast.io.quarantine`). Problems with a whole file are
        refused either way.
    date_window : (earliest, latest), optional
        The first and last day any date in the files may fall on; either may
        be None for its default (see :func:`date_window`: 1990-01-01 to 50
        years after today). A date outside is an error (``date_out_of_window``):
        placeholders such as 1900-01-01 move every number quietly.
    schema : str, optional
        With a database URL: the schema the replication tool writes to
        (default: the connection's default schema).
    layout : {"auto", "fivetran", "airbyte", "stitch", "lowercase"}, default "auto"
        With a database URL: how the tool names tables and columns
        (:data:`renewforecast.io.warehouse.REPLICA_LAYOUTS`); "auto" tells it
        from the tool's columns and the table names. With a URL, ``field_map``
        values name the column as the table has it.

    Returns
    -------
    Book

    Raises
    ------
    BookValidationError
        With every problem found (file, line, record id, column, rule).
    WarehouseError
        The database cannot be reached or read, or holds no replicated objects.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=30, seed=1)
    >>> book = rf.load_book(folder)
    >>> len(book.accounts) >= 30  # customers, and prospects who never bought
    True
    >>> _ = rf.write_replica(folder, f"duckdb:///{folder}/org.duckdb", layout="fivetran")
    >>> len(rf.load_book(f"duckdb:///{folder}/org.duckdb").contracts) == len(book.contracts)
    True
    """
    _check_on_error(on_error)
    if is_database_url(path):
        replica = read_replica(path, schema=schema, layout=layout)
        return load_replica(
            replica,
            date_format=date_format,
            currency=currency,
            field_map=field_map,
            type_map=type_map,
            on_error=on_error,
            date_window=date_window,
        )
    if schema is not None or layout != "auto":
        raise ValueError("schema= and layout= apply to a database URL, not to a folder")
    path = Path(path)
    if not path.is_dir():
        raise BookValidationError(
            [
                Problem(
                    str(path), None, "", "", "missing_folder", "not a folder (give the folder holding the export files)"
                )
            ]
        )
    window = _window(*(date_window or (None, None)))
    kind = _detect(path)
    field_map = field_map or {}
    problems: list[Problem] = []
    warnings: list[Problem] = []
    reads: dict[str, _Read] = {}
    present, escaped = _inside(path)

    if kind == "salesforce":
        objects = SALESFORCE_OBJECTS

        def locate(obj: SfObject) -> Path | None:
            return present.get(obj.file)
    else:
        objects = _canonical_objects()

        def locate(obj: SfObject) -> Path | None:
            for suffix in (".parquet", ".csv"):
                if obj.file + suffix in present:
                    return present[obj.file + suffix]
            return None

    for obj in objects.values():
        file_path = locate(obj)
        if file_path is None:
            shown = obj.file if kind == "salesforce" else obj.file + ".csv"
            if obj.required_file:
                problems.append(
                    Problem(
                        shown,
                        None,
                        "",
                        "",
                        "missing_file",
                        f"required file {shown} is missing; files found: "
                        f"{', '.join(sorted(present)) or 'none'}" + _closest(shown, sorted(present)),
                    )
                )
            elif obj.table in WHAT_IT_COSTS:
                warnings.append(
                    Problem(
                        shown,
                        None,
                        "",
                        "",
                        "missing_optional_file",
                        f"{shown} is not in the folder: {WHAT_IT_COSTS[obj.table]}",
                        "warning",
                    )
                )
            continue
        if file_path.name in escaped:
            # Only the files an export is read from: other links are never opened.
            problems.append(
                Problem(
                    file_path.name,
                    None,
                    "",
                    "",
                    "outside_export_folder",
                    f"{file_path.name} is a link to a file outside the export folder; it was not "
                    "read (copy the file into the folder if it belongs to the export)",
                )
            )
            continue
        read = _read_object(
            read_raw(file_path, encoding=encoding),
            obj,
            name=file_path.name,
            date_format=date_format,
            overrides=field_map.get(file_path.name, field_map.get(obj.table, {})),
            problems=problems,
            warnings=warnings,
            window=window,
        )
        if obj.table in _MUST_HOLD_RECORDS and read is not None and read.frame.empty:
            problems.append(
                Problem(
                    file_path.name,
                    None,
                    "",
                    "",
                    "no_records",
                    f"{file_path.name} has a header but no records: there is nothing to value "
                    "(was the export cut short, or filtered to nothing?)",
                )
            )
        if read is not None:
            reads[obj.table] = read
    return _assemble(
        objects,
        reads,
        problems,
        warnings,
        kind=kind,
        currency=currency,
        type_map=type_map,
        on_error=on_error,
        source=str(path),
    )


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "quarantine"):
        raise ValueError(f"on_error must be 'raise' or 'quarantine', not {on_error!r}")


#: Rules judged on whole tables: with :class:`ReplicaTotals`, each part of a
#: replica reports their problems as the whole would, naming lines of the
#: whole tables (every part reports the same ones).
WHOLE_TABLE_RULES = ("no_records", "unknown_currency", "mixed_currencies")


@dataclass(frozen=True)
class ReplicaTotals:
    """What one part of a replicated schema cannot see of the whole: each table's records and currencies.

    A reader that cuts a replica into parts (slices of accounts, each read by
    :func:`load_replica`) gives every part the totals of the whole tables, so
    that the rules judged on whole tables (:data:`WHOLE_TABLE_RULES`: a table
    without records, the reporting currency and the currencies without a
    rate) decide as they would on the whole schema.

    Parameters
    ----------
    rows : mapping of str to int
        Object API name (``"Contract"``) -> records in the whole table, after
        soft-deleted rows and older versions are left out.
    currencies : mapping of str to mapping of str to (int or None, int)
        Table name (as problems name it) -> currency code -> (line of the
        first record in that currency in the whole table, records in it),
        for each table with a currency column (:func:`replica_columns`'s
        ``"_currency"``). A line not known (None) leaves the line out of the
        problems that would name it.

    Examples
    --------
    >>> ReplicaTotals(rows={"Contract": 120}, currencies={"contract": {"EUR": (3, 40), "USD": (1, 80)}}).rows
    {'Contract': 120}
    """

    rows: Mapping[str, int]
    currencies: Mapping[str, Mapping[str, tuple[int | None, int]]] = field(default_factory=dict)


def replica_columns(
    obj: SfObject, table: ReplicaTable, field_map: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """Which column of a replicated table feeds each canonical column, as :func:`load_replica` reads it.

    ``field_map`` (as :func:`load_book` takes it) applies first, then the
    layout's name of each field. Only columns the table has are listed;
    ``"_currency"`` names the column holding each record's currency, when
    there is one.

    Parameters
    ----------
    obj : SfObject
        The object (an entry of :data:`~renewforecast.io.salesforce.SALESFORCE_OBJECTS`).
    table : ReplicaTable
        Its table, as :func:`~renewforecast.io.warehouse.replica_table` reads it.
    field_map : dict, optional

    Returns
    -------
    dict of str to str
        Canonical column (or a helper starting with ``_``) -> column of the table.

    Examples
    --------
    >>> from renewforecast.io.salesforce import SALESFORCE_OBJECTS
    >>> from renewforecast.io.warehouse import REPLICA_LAYOUTS, replica_table
    >>> obj = SALESFORCE_OBJECTS["SBQQ__Subscription__c.csv"]
    >>> table = replica_table(
    ...     "sbqq_subscription_c",
    ...     "SBQQ__Subscription__c",
    ...     {"id": [], "sbqq_contract_c": [], "currency_iso_code": []},
    ...     REPLICA_LAYOUTS["fivetran"],
    ... )
    >>> replica_columns(obj, table)
    {'subscription_id': 'id', 'contract_id': 'sbqq_contract_c', '_currency': 'currency_iso_code'}
    """
    found = table.raw.columns
    out = {f.column: f.source for f in _fields(obj, _replica_overrides(field_map or {}, obj, table), table.columns)}
    out = {column: source for column, source in out.items() if source in found}
    currency_source = _currency_source(obj, found, table.columns)
    if currency_source is not None:
        out["_currency"] = currency_source
    return out


def _replica_overrides(field_map: dict[str, dict[str, str]], obj: SfObject, table: ReplicaTable) -> dict[str, str]:
    return field_map.get(obj.file, field_map.get(table.name, field_map.get(obj.table, {})))


def load_replica(
    snapshot: ReplicaSnapshot,
    *,
    date_format: str = "%m/%d/%Y",
    currency: str | None = None,
    field_map: dict[str, dict[str, str]] | None = None,
    type_map: dict[str, str] | None = None,
    on_error: str = "raise",
    date_window: tuple[object, object] | None = None,
    totals: ReplicaTotals | None = None,
) -> Book:
    """Turn replicated tables already read into a validated Book: :func:`load_book`'s rules for a database.

    ``load_book(url)`` reads the schema with
    :func:`~renewforecast.io.warehouse.read_replica` and calls this; a
    reader of another store (Spark tables, a part of a replica) builds the
    :class:`~renewforecast.io.warehouse.ReplicaSnapshot` itself from
    :func:`~renewforecast.io.warehouse.replica_table` and calls it too, so
    that every value goes through the same parsing and validation rules.

    Parameters
    ----------
    snapshot : ReplicaSnapshot
        The tables, keyed by object API name.
    date_format, currency, field_map, type_map, on_error, date_window
        As in :func:`load_book`.
    totals : ReplicaTotals, optional
        When ``snapshot`` holds only part of each table's records (one slice
        of accounts): the whole tables' records and currencies, by which the
        rules of :data:`WHOLE_TABLE_RULES` decide. Default: the snapshot is
        the whole schema.

    Returns
    -------
    Book
        ``source`` is the snapshot's source, with its schema.

    Raises
    ------
    BookValidationError
        With every problem found (table, line, record id, column, rule).

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> from renewforecast.io.warehouse import read_replica
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder + "/org", accounts=20, seed=3)
    >>> _ = rf.write_replica(folder + "/org", f"duckdb:///{folder}/org.duckdb", layout="stitch")
    >>> book = load_replica(read_replica(f"duckdb:///{folder}/org.duckdb"))
    >>> book.fingerprint == rf.load_book(folder + "/org").fingerprint
    True
    """
    _check_on_error(on_error)
    window = _window(*(date_window or (None, None)))
    field_map = field_map or {}
    problems: list[Problem] = []
    warnings: list[Problem] = []
    reads: dict[str, _Read] = {}
    names: dict[str, str] = {}
    for obj in SALESFORCE_OBJECTS.values():
        read = _read_replica_object(snapshot, obj, field_map, date_format, problems, warnings, window, totals)
        if read is not None:
            reads[obj.table] = read
            names[obj.table] = snapshot.tables[Path(obj.file).stem].name
    seen = None
    if totals is not None:
        seen = {}
        for table in (obj.table for obj in SALESFORCE_OBJECTS.values()):
            name = names.get(table)
            for code, (line, count) in sorted(totals.currencies.get(name, {}).items()) if name else ():
                seen.setdefault(code, []).append((name, None if line is None else int(line), int(count)))
    return _assemble(
        SALESFORCE_OBJECTS,
        reads,
        problems,
        warnings,
        kind="salesforce",
        currency=currency,
        type_map=type_map,
        on_error=on_error,
        source=snapshot.source + (f" (schema {snapshot.schema})" if snapshot.schema else ""),
        seen=seen,
    )


def _assemble(
    objects: dict[str, SfObject],
    reads: dict[str, _Read],
    problems: list[Problem],
    warnings: list[Problem],
    *,
    kind: str,
    currency: str | None,
    type_map: dict[str, str] | None,
    on_error: str,
    source: str,
    seen: dict[str, list[tuple[str, int | None, int]]] | None = None,
) -> Book:
    """The objects read, mapped to canonical tables, converted to one currency, validated: the Book."""
    # A missing or unreadable file is an empty table, so that every other
    # file is still checked in the same pass.
    for obj in objects.values():
        if obj.table not in reads:
            reads[obj.table] = _empty_read(obj)

    frames = {name: r.frame for name, r in reads.items()}
    colmap = {name: r.colmap for name, r in reads.items()}
    for name in TABLES:
        if name not in frames:
            empty = conform(pd.DataFrame(), name)
            empty["_file"], empty["_line"], empty["_id"] = "", 0, None
            frames[name] = empty
    if kind == "salesforce":
        frames = from_salesforce(frames, type_map=type_map, warnings=warnings)
    fx = frames.pop("fx", None)
    dated = frames.pop("fx_dated", None)
    if kind == "canonical" and len(frames["fx_rates"]):
        dated = None  # a canonical folder's fx_rates are already the Book's
    reporting, fx_rates = _apply_fx(frames, fx, dated, currency, problems, seen)
    if fx_rates is not None:
        frames["fx_rates"] = fx_rates.assign(_file="DatedConversionRate.csv", _line=0, _id=None)
    if "_currency" in frames["subscriptions"].columns:
        cur = frames["subscriptions"]["_currency"]
        frames["subscriptions"]["currency"] = cur.where(cur.notna() & (cur != "") & (cur != reporting), None)

    errors, soft = validate_tables(frames, colmap)
    # A cell that could not be read, or a column that is missing, is reported
    # once: not again as a missing value or a broken rule on the blank left.
    said = {(p.file, p.line, p.column) for p in problems}
    absent = {
        (frames[name]["_file"].iloc[0] if len(frames[name]) else "", colmap[name].get(col, col))
        for name, r in reads.items()
        for col in r.missing
    }
    problems.extend(p for p in errors if (p.file, p.line, p.column) not in said and (p.file, p.column) not in absent)
    warnings.extend(soft)
    entries: list[dict] = []
    removed: dict[str, pd.DataFrame] = {}
    if problems and on_error == "quarantine":
        aside = set_aside(frames, sorted_problems(problems))
        if aside is not None:
            frames, entries, removed = aside
            # What is left must hold on its own.
            again, _ = validate_tables(frames, colmap)
            problems = list(again)
    if problems:
        raise BookValidationError(sorted_problems(problems), warnings)

    tables = {name: conform(frames[name], name) for name in TABLES}
    quarantine = pd.DataFrame(entries, columns=["file", "line", "record_id", "column", "rule", "message", "table"])
    quarantine = quarantine.sort_values(["file", "line"], kind="stable").reset_index(drop=True)
    quarantine["line"] = quarantine["line"].astype("Int64")
    return Book(
        **tables,
        currency=reporting,
        source=source,
        warnings=problems_frame(sorted_problems(warnings)),
        quarantine=quarantine,
        set_aside={name: conform(frame, name) for name, frame in removed.items() if name in TABLES},
    )


def _read_replica_object(
    replica: ReplicaSnapshot,
    obj: SfObject,
    field_map: dict[str, dict[str, str]],
    date_format: str,
    problems: list[Problem],
    warnings: list[Problem],
    window: tuple[pd.Timestamp, pd.Timestamp],
    totals: ReplicaTotals | None = None,
) -> _Read | None:
    """One object read from a replicated schema through the rules a file is read by."""
    api = Path(obj.file).stem
    table = replica.tables.get(api)
    expected = replica.expected(api)
    where = f"schema {replica.schema}" if replica.schema else "the default schema"
    if table is None:
        found = ", ".join(replica.found) or "none"
        if obj.required_file:
            problems.append(
                Problem(
                    expected,
                    None,
                    "",
                    "",
                    "missing_table",
                    f"required table {expected} ({api} in the {replica.layout.name} layout) is missing from "
                    f"{where} of {replica.source}; tables found: {found}" + _closest(expected, replica.found),
                )
            )
        elif obj.table in WHAT_IT_COSTS:
            warnings.append(
                Problem(
                    expected,
                    None,
                    "",
                    "",
                    "missing_optional_table",
                    f"table {expected} is not in {where}: {WHAT_IT_COSTS[obj.table]}",
                    "warning",
                )
            )
        return None
    read = _read_object(
        table.raw,
        obj,
        name=table.name,
        date_format=date_format,
        overrides=_replica_overrides(field_map, obj, table),
        problems=problems,
        warnings=warnings,
        window=window,
        columns=table.columns,
        header_line=None,
    )
    records = len(table.raw.frame) if totals is None else totals.rows.get(api, 0)
    if obj.table in _MUST_HOLD_RECORDS and read is not None and not records:
        problems.append(
            Problem(
                table.name,
                None,
                "",
                "",
                "no_records",
                f"table {table.name} holds no records (after {table.deleted} soft-deleted row(s) were left out): "
                "there is nothing to value",
            )
        )
    return read


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Problems in the order a :class:`BookValidationError` lists them: by file (table), line, column and rule.

    Examples
    --------
    >>> late = Problem("contract", 7, "800B", "start_date", "missing_value", "a value is required")
    >>> whole = Problem("contract", None, "", "", "no_records", "table contract holds no records")
    >>> [p.line for p in sorted_problems([late, whole])]
    [None, 7]
    """
    return sorted(problems, key=lambda p: (p.file, p.line if p.line is not None else 0, p.column, p.rule))
