"""Salesforce objects read from a database that replicates them, and results written back as tables.

Replication tools (Fivetran, Airbyte, Stitch) copy each Salesforce object
into a table of a warehouse schema, each naming tables and columns its own
way, adding columns of its own and keeping deleted records flagged rather
than removed. A :class:`ReplicaLayout` says, as data, how one tool does it;
:func:`read_replica` reads the tables the project uses in such a layout
and renders every typed value to the text Salesforce's API writes, so that
:func:`renewforecast.load_book` applies to them the one set of parsing and
validation rules it applies to export files.

Only SQLAlchemy Core and reflection are used (no dialect's own SQL), so any
database with a SQLAlchemy dialect (PostgreSQL, DuckDB, Snowflake, BigQuery,
Databricks, ...) is read the same way. Reading never writes. See
``docs/data_model.md`` (*Warehouse sources*) for each layout's sources.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import numpy as np
import pandas as pd
import sqlalchemy as sa

from renewforecast.exceptions import RenewForecastError
from renewforecast.io._raw import RawTable
from renewforecast.io.salesforce import SALESFORCE_OBJECTS, SfObject

__all__ = [
    "REPLICA_LAYOUTS",
    "WAREHOUSE_REASONS",
    "ReplicaLayout",
    "ReplicaSnapshot",
    "ReplicaTable",
    "WarehouseError",
    "WrittenReplica",
    "is_database_url",
    "masked_url",
    "read_replica",
    "replica_layout",
    "replica_table",
    "url_secrets",
    "write_replica",
    "write_result_tables",
]


#: Why a database could not be used, as :attr:`WarehouseError.reason` says it.
WAREHOUSE_REASONS = ("auth", "unreachable", "driver", "refused", "invalid")


class WarehouseError(RenewForecastError):
    """A database could not be read or written as asked; its message never holds a secret.

    Parameters
    ----------
    message : str
        What went wrong, naming the URL (masked), the schema, table or column.
    reason : {"auth", "unreachable", "driver", "refused", "invalid"}, default "invalid"
        ``"auth"``: the database refused the login; ``"unreachable"``: it
        could not be connected to (refused, timed out, unknown host);
        ``"driver"``: the URL's dialect or its DBAPI driver is not installed;
        ``"refused"``: connected, the database refused a statement
        (permissions, types, constraints); ``"invalid"``: a bad name,
        argument or URL, found before anything was written.

    Examples
    --------
    >>> err = WarehouseError("Cannot log in to postgresql+psycopg://me:***@db/crm", reason="auth")
    >>> err.reason, str(err)
    ('auth', 'Cannot log in to postgresql+psycopg://me:***@db/crm')
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        if reason not in WAREHOUSE_REASONS:
            raise ValueError(f"reason must be one of {', '.join(WAREHOUSE_REASONS)}, not {reason!r}")
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (str(self), self.reason))


# ---------------------------------------------------------------- layouts


def snake_case(name: str) -> str:
    """A Salesforce API name as Fivetran names it: camelCase split, underscores collapsed, lower case.

    Examples
    --------
    >>> [snake_case(n) for n in ("SBQQ__NetPrice__c", "Product2Id", "IsDeleted", "CurrencyIsoCode")]
    ['sbqq_net_price_c', 'product_2_id', 'is_deleted', 'currency_iso_code']
    """
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"([A-Za-z])([0-9])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text)
    return text.strip("_").lower()


def lower_case(name: str) -> str:
    """A Salesforce API name as Airbyte and Stitch name it in PostgreSQL: lower-cased, nothing else.

    Examples
    --------
    >>> lower_case("SBQQ__Subscription__c")
    'sbqq__subscription__c'
    """
    return name.lower()


_NAMING: dict[str, Callable[[str], str]] = {"snake_case": snake_case, "lower_case": lower_case}


@dataclass(frozen=True)
class ReplicaLayout:
    """How one replication tool writes Salesforce objects into a database.

    Parameters
    ----------
    name : str
        The layout's name (``"fivetran"``, ``"airbyte"``, ``"stitch"``, ``"lowercase"``).
    naming : {"snake_case", "lower_case"}
        How an object's or a field's API name becomes a table's or a column's name.
    deleted : tuple of str
        Columns whose true value marks a soft-deleted row (the tool's own and
        Salesforce's ``IsDeleted`` as the tool names it).
    inactive : str or None
        A column whose false value marks a superseded row version (history mode).
    metadata_prefix : str or None
        Columns starting with it are the tool's bookkeeping and are never read.
    written : tuple of (str, str)
        The tool's metadata columns and their types, as :func:`write_replica` writes them.
    sequence : tuple of str
        The tool's columns that order the versions of a record it appends
        (latest last); ``SystemModstamp`` breaks their ties.

    Examples
    --------
    >>> REPLICA_LAYOUTS["fivetran"].table("SBQQ__Subscription__c")
    'sbqq_subscription_c'
    >>> REPLICA_LAYOUTS["airbyte"].column("SBQQ__NetPrice__c")
    'sbqq__netprice__c'
    """

    name: str
    naming: str
    deleted: tuple[str, ...]
    inactive: str | None = None
    metadata_prefix: str | None = None
    written: tuple[tuple[str, str], ...] = ()
    sequence: tuple[str, ...] = ()

    def table(self, api_name: str) -> str:
        """The table an object's API name is written to."""
        return _NAMING[self.naming](api_name)

    def column(self, api_name: str) -> str:
        """The column a field's API name is written to."""
        return _NAMING[self.naming](api_name)

    def ignored(self, column: str) -> bool:
        """Whether a column is the tool's bookkeeping (or a deletion flag), never data."""
        low = column.lower()
        return bool(self.metadata_prefix and low.startswith(self.metadata_prefix)) or low in self.deleted

    def read_columns(self, columns: Sequence[str]) -> list[str]:
        """The columns of a table a reader fetches: data, then deletion flags, the inactive flag and sequence columns.

        The tool's other bookkeeping columns are never read.

        Examples
        --------
        >>> REPLICA_LAYOUTS["fivetran"].read_columns(["id", "_fivetran_synced", "_fivetran_deleted", "_fivetran_id"])
        ['id', '_fivetran_deleted', '_fivetran_synced']
        """
        by_lower = {c.lower(): c for c in columns}
        inactive = by_lower.get(self.inactive) if self.inactive else None
        data = [c for c in columns if not self.ignored(c) and c != inactive]
        flags = [by_lower[d] for d in self.deleted if d in by_lower]
        sequence = [by_lower[c] for c in self.sequence if c in by_lower]
        extra = [c for c in [*flags, inactive, *sequence] if c is not None and c not in data]
        return data + list(dict.fromkeys(extra))


#: The layouts of the common replication tools (sources in docs/data_model.md).
REPLICA_LAYOUTS: dict[str, ReplicaLayout] = {
    layout.name: layout
    for layout in (
        ReplicaLayout(
            "fivetran",
            "snake_case",
            deleted=("_fivetran_deleted", "is_deleted"),
            inactive="_fivetran_active",
            metadata_prefix="_fivetran_",
            written=(("_fivetran_synced", "timestamp"), ("_fivetran_deleted", "bool"), ("is_deleted", "bool")),
            sequence=("_fivetran_synced",),
        ),
        ReplicaLayout(
            "airbyte",
            "lower_case",
            deleted=("isdeleted",),
            metadata_prefix="_airbyte_",
            written=(
                ("_airbyte_raw_id", "str"),
                ("_airbyte_extracted_at", "timestamp"),
                ("_airbyte_meta", "str"),
                ("_airbyte_generation_id", "int"),
                ("isdeleted", "bool"),
            ),
            sequence=("_airbyte_extracted_at",),
        ),
        ReplicaLayout(
            "stitch",
            "lower_case",
            deleted=("isdeleted",),
            metadata_prefix="_sdc_",
            written=(
                ("_sdc_batched_at", "timestamp"),
                ("_sdc_extracted_at", "timestamp"),
                ("_sdc_received_at", "timestamp"),
                ("_sdc_sequence", "int"),
                ("_sdc_table_version", "int"),
                ("isdeleted", "bool"),
            ),
            sequence=("_sdc_sequence", "_sdc_batched_at"),
        ),
        # API names lower-cased with no tool's columns: a hand-made copy.
        ReplicaLayout("lowercase", "lower_case", deleted=("isdeleted",)),
    )
}

#: Exports that are not Salesforce objects: tables named as the project names them.
_CANONICAL = {"spend", "signals"}


def _api_name(file: str) -> str:
    return Path(file).stem


# ---------------------------------------------------------------- URLs


def is_database_url(source: object) -> bool:
    """Whether ``source`` is a SQLAlchemy database URL rather than a folder.

    Examples
    --------
    >>> is_database_url("duckdb:////tmp/org.duckdb"), is_database_url("exports/2026-06")
    (True, False)
    """
    return isinstance(source, sa.URL) or (isinstance(source, str) and "://" in source)


def _url(url: str | sa.URL) -> sa.URL:
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        # The text may hold a password: it is not repeated.
        raise WarehouseError(
            "Cannot read the database URL: give dialect+driver://user@host:port/database "
            "(e.g. postgresql+psycopg://me@db.example.com:5432/crm or duckdb:////path/org.duckdb)"
        ) from None


#: Words that make a query parameter's name a secret's (``password=``, ``access_token=``, ``private_key_file_pwd=``).
_SECRET_WORDS = re.compile(
    r"password|passwd|passphrase|(^|[^a-z])pass([^a-z]|$)|pwd|secret|token|credential|api_?key|access_?key|private_?key"
)
#: A name ending in one of these names a file holding the secret, not the secret (``private_key_file``).
_PATH_WORDS = ("file", "path", "filename", "location", "dir")


def _secret_parameter(name: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if not words or words[-1] in _PATH_WORDS:
        return False
    return bool(_SECRET_WORDS.search(name.lower()))


def url_secrets(url: str | sa.URL) -> list[str]:
    """The names of the parts of a database URL that carry a secret.

    ``"password"`` when the URL has one, then every query parameter whose
    name holds ``password``, ``passwd``, ``passphrase``, the word ``pass``, ``pwd``,
    ``secret``, ``token``, ``credential``, ``apikey``/``api_key``,
    ``access_key`` or ``private_key`` (any case, anywhere in the name) and
    does not end in ``file``, ``path``, ``filename``, ``location`` or ``dir``
    (a path to a key file is not the key). :func:`masked_url` hides exactly
    these; a command line can refuse a URL for which this is not empty.

    Parameters
    ----------
    url : str or sqlalchemy.URL

    Returns
    -------
    list of str
        The secret parts' names, in the URL's order (empty when there are none).

    Raises
    ------
    WarehouseError
        The text is not a database URL (reason ``"invalid"``).

    Examples
    --------
    >>> url_secrets("snowflake://me:pw@acct/db?private_key_file=/k.p8&private_key_file_pwd=x&warehouse=wh")
    ['password', 'private_key_file_pwd']
    >>> url_secrets("postgresql+psycopg://me@db/crm?sslmode=require")
    []
    """
    parsed = _url(url)
    found = ["password"] if parsed.password is not None else []
    return found + [name for name in parsed.query if _secret_parameter(name)]


def masked_url(url: str | sa.URL) -> str:
    """The URL as messages and ``Book.source`` show it: the password and secret parameters as ``***``.

    The secret query parameters are those :func:`url_secrets` names.

    Examples
    --------
    >>> masked_url("postgresql+psycopg://me:s3cret@db:5432/crm")
    'postgresql+psycopg://me:***@db:5432/crm'
    >>> masked_url("snowflake://me@acct/db?token=abc&warehouse=wh")
    'snowflake://me@acct/db?token=***&warehouse=wh'
    """
    parsed = _url(url)
    secret = [name for name in parsed.query if _secret_parameter(name)]
    if not secret:
        return parsed.render_as_string(hide_password=True)
    # a placeholder SQLAlchemy leaves unquoted, replaced after rendering
    marker = "rfMASKEDrf"
    masked = parsed.set(query={k: (marker if k in secret else v) for k, v in parsed.query.items()})
    return masked.render_as_string(hide_password=True).replace(marker, "***")


def _secret_values(url: sa.URL) -> list[str]:
    values = [str(url.password)] if url.password else []
    for name, value in url.query.items():
        if _secret_parameter(name):
            values += [str(v) for v in (value if isinstance(value, tuple) else (value,)) if str(v)]
    return values


def _scrub(text: str, url: sa.URL) -> str:
    """A driver's message with the URL's secrets taken out, however they were spelled."""
    for secret in sorted(_secret_values(url), key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, "***")
    return text


_AUTH_TEXT = re.compile(
    r"authentication failed|password authentication|no password supplied|access denied|"
    r"invalid (username|user name|password|credentials|token)|incorrect username or password|"
    r"login failed|not authori[sz]ed|authentication token|role \S+ does not exist|jwt token is invalid",
    re.IGNORECASE,
)
_UNREACHABLE_TEXT = re.compile(
    r"connection refused|could not connect|timed? ?out|timeout expired|could not translate host name|"
    r"name or service not known|no route to host|network is unreachable|connection reset|"
    r"server closed the connection|could not set lock|temporary failure in name resolution",
    re.IGNORECASE,
)


def _reason(exc: BaseException, *, connecting: bool) -> str:
    """Which of :data:`WAREHOUSE_REASONS` an error of SQLAlchemy or of the driver is."""
    if isinstance(exc, sa.exc.NoSuchModuleError | ImportError):
        return "driver"
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, ImportError):
        return "driver"
    # psycopg 3 gives no sqlstate for a refused login, only the server's words; other drivers give one
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    text = str(orig)
    if state in ("28P01", "28000") or (connecting and _AUTH_TEXT.search(text)):
        return "auth"
    if state in ("3D000", "3F000"):  # no such database / schema
        return "invalid"
    if state.startswith("08") or _UNREACHABLE_TEXT.search(text):
        return "unreachable"
    if connecting:
        # a connection that fails for another reason: a bad connection option is a mistake, the rest the network's
        return "invalid" if isinstance(exc, sa.exc.ProgrammingError | sa.exc.ArgumentError) else "unreachable"
    return "refused" if isinstance(exc, sa.exc.DBAPIError) else "invalid"


def _failure(exc: BaseException, url: sa.URL, what: str, *, connecting: bool) -> WarehouseError:
    """A :class:`WarehouseError` for an error of SQLAlchemy or the driver, its message scrubbed of secrets."""
    reason = _reason(exc, connecting=connecting)
    detail = _scrub(str(getattr(exc, "orig", None) or exc), url).strip()[:400]
    hint = {
        "auth": " (the database refused the login: check the user and the password)",
        "unreachable": " (the database could not be reached: check the host, the port and the network)",
        "driver": " (install the dialect's driver, e.g. psycopg for postgresql+psycopg)",
    }.get(reason, "")
    return WarehouseError(f"{what}: {detail}{hint}", reason)


def _engine(url: sa.URL, *, read_only: bool) -> sa.Engine:
    kwargs: dict = {"poolclass": sa.pool.NullPool}
    if url.get_backend_name() == "duckdb" and read_only:
        # duckdb creates a missing file and takes a write lock otherwise.
        database = url.database or ""
        if database not in ("", ":memory:") and not Path(database).exists():
            raise WarehouseError(f"The database file {database} does not exist ({masked_url(url)})")
        kwargs["connect_args"] = {"read_only": True}
    try:
        engine = sa.create_engine(url, **kwargs)
    except Exception as exc:  # a missing driver, a bad option: say which URL, never its secrets
        raise _failure(exc, url, f"Cannot use the database {masked_url(url)}", connecting=True) from None
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        _transactional_sqlite(engine)
    return engine


def _transactional_sqlite(engine: sa.Engine) -> None:
    """Make pysqlite run CREATE/DROP TABLE inside the transaction, so a failed write changes nothing.

    The sqlite3 module opens a transaction only before INSERT/UPDATE/DELETE, so
    DDL ahead of them commits by itself; SQLAlchemy's documented workaround
    (SQLite dialect, *Enabling Non-Legacy SQLite Transactional Modes*, for
    every Python version) turns the module's own handling off and emits
    BEGIN when SQLAlchemy begins.
    """

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN")


def _connect(engine: sa.Engine, url: sa.URL, what: str) -> sa.Connection:
    """A connection, or a :class:`WarehouseError` saying whether the login, the network or the driver failed."""
    try:
        return engine.connect()
    except Exception as exc:
        raise _failure(exc, url, what, connecting=True) from None


# ---------------------------------------------------------------- reading


@dataclass
class ReplicaTable:
    """One object's table read as text: its name, its rows, API field name -> column found, rows left out.

    ``deleted`` counts the rows left out as soft-deleted (or, in history mode,
    inactive); ``superseded`` the older versions of records an append-only
    replica keeps; ``order`` names the columns the rows are ordered by (a
    row's line is its position in that order).
    """

    name: str
    raw: RawTable
    columns: dict[str, str]
    deleted: int = 0
    superseded: int = 0
    order: tuple[str, ...] = ()


@dataclass
class ReplicaSnapshot:
    """The tables read from one schema, the layout they were read in and what was left out."""

    source: str
    schema: str | None
    layout: ReplicaLayout
    found: list[str]
    tables: dict[str, ReplicaTable] = field(default_factory=dict)

    def expected(self, api_name: str) -> str:
        """The table name an object is looked for under in this layout."""
        return api_name if api_name in _CANONICAL else self.layout.table(api_name)


def _render(value: object) -> str | None:
    """A typed database value as the Salesforce API writes it (``None`` for NULL)."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        # naive timestamps are taken as UTC, as the tools write them
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value).strip()
    return text or None


def _true(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1", "yes", "y")
    return bool(value)


def _object_tables(objects: Mapping[str, object]) -> set[str]:
    """The names (lower case) any layout gives the tables of ``objects`` (export file -> SfObject)."""
    apis = [_api_name(obj.file) for obj in objects.values()]
    return {lay.table(api) for lay in REPLICA_LAYOUTS.values() for api in apis if api not in _CANONICAL}


def _unknown_layout(layout: str) -> WarehouseError:
    return WarehouseError(f"Unknown layout {layout!r}: use auto, " + ", ".join(REPLICA_LAYOUTS))


def replica_layout(
    columns_by_table: Mapping[str, Sequence[str]],
    *,
    layout: str = "auto",
    where: str = "the schema",
    found: Sequence[str] | None = None,
) -> ReplicaLayout:
    """The layout a replicated schema is in: the one named, or told from its tables' columns and names.

    "auto" picks the layout whose metadata columns (``_fivetran_``,
    ``_airbyte_``, ``_sdc_``) the object tables carry, else the one whose
    table names are present (``contract`` with ``sbqq_subscription_c``, or
    with ``sbqq__subscription__c``). Tables that no layout gives an object
    are not looked at.

    Parameters
    ----------
    columns_by_table : mapping of str to sequence of str
        Table name -> its column names (any case).
    layout : {"auto", "fivetran", "airbyte", "stitch", "lowercase"}, default "auto"
    where : str, default "the schema"
        What the error calls the schema (``"schema crm of duckdb:///org.duckdb"``).
    found : sequence of str, optional
        The tables the error lists (default: those of ``columns_by_table``).

    Returns
    -------
    ReplicaLayout

    Raises
    ------
    WarehouseError
        The layout is unknown, or "auto" finds no replicated object (reason ``"invalid"``).

    Examples
    --------
    >>> replica_layout({"contract": ["id", "_fivetran_synced"], "sbqq_subscription_c": ["id"]}).name
    'fivetran'
    >>> replica_layout({"contract": ["id"], "sbqq__subscription__c": ["id"]}).name
    'lowercase'
    """
    if layout != "auto":
        if layout not in REPLICA_LAYOUTS:
            raise _unknown_layout(layout)
        return REPLICA_LAYOUTS[layout]
    wanted = _object_tables(SALESFORCE_OBJECTS)
    chosen = _detect_layout({t: list(c) for t, c in columns_by_table.items() if t.lower() in wanted})
    if chosen is None:
        listed = sorted(columns_by_table) if found is None else list(found)
        raise WarehouseError(
            f"No replicated Salesforce objects found in {where} "
            f"(looked for contract / sbqq__subscription__c in the layouts "
            f"{', '.join(REPLICA_LAYOUTS)}); tables found: {', '.join(listed) or 'none'}"
        )
    return chosen


def _detect_layout(columns_by_table: dict[str, list[str]]) -> ReplicaLayout | None:
    every = {c.lower() for cols in columns_by_table.values() for c in cols}
    for layout in REPLICA_LAYOUTS.values():
        if layout.metadata_prefix and any(c.startswith(layout.metadata_prefix) for c in every):
            return layout
    tables = {t.lower() for t in columns_by_table}
    for layout in (REPLICA_LAYOUTS["fivetran"], REPLICA_LAYOUTS["lowercase"]):
        if {layout.table("Contract"), layout.table("SBQQ__Subscription__c")} <= tables or {
            layout.table("OpportunityLineItem")
        } <= tables:
            return layout
    return None


def _sort_key(api_name: str, id_column: str | None, columns: dict[str, str]) -> list[str]:
    if api_name == "spend":
        return [columns.get(c, c) for c in ("month", "channel")]
    if api_name == "signals":
        return [columns.get(c, c) for c in ("account_id", "month")]
    return [id_column] if id_column else []


def read_replica(
    url: str | sa.URL,
    *,
    schema: str | None = None,
    layout: str = "auto",
    objects: Mapping[str, object] | None = None,
) -> ReplicaSnapshot:
    """Read the Salesforce objects the project uses from a replicated schema, as text tables.

    Every table whose name the layout gives an object is read whole (the
    tool's metadata columns left out; of the versions of a record an
    append-only replica keeps, only the latest by the tool's sequence
    columns, then ``SystemModstamp``; soft-deleted records, judged by that
    latest version, and history mode's inactive rows dropped), its rows ordered by ``Id`` (spend by month and
    channel, signals by account and month) so that the same data always
    gives the same Book, and each value rendered as the Salesforce API
    writes it: ISO dates, UTC datetimes ``2021-06-16T09:00:00.000Z``,
    ``true``/``false``, floats by ``repr`` (exact), NULL as blank. A row's
    "line" is its 1-based position in that order.

    Parameters
    ----------
    url : str or sqlalchemy.URL
        A SQLAlchemy database URL.
    schema : str, optional
        The schema the tool writes to (default: the connection's default schema).
    layout : {"auto", "fivetran", "airbyte", "stitch", "lowercase"}, default "auto"
        The tool's layout; "auto" tells it from the tables' columns and names.
    objects : mapping, optional
        Export file name -> :class:`~renewforecast.io.salesforce.SfObject`
        (default: :data:`~renewforecast.io.salesforce.SALESFORCE_OBJECTS`).

    Returns
    -------
    ReplicaSnapshot
        ``tables`` holds one :class:`ReplicaTable` per object found, keyed by
        the object's API name (``"SBQQ__Subscription__c"``, ``"spend"``).

    Raises
    ------
    WarehouseError
        The database cannot be reached or read, or the layout is unknown or
        cannot be told; ``reason`` says which (``"auth"``, ``"unreachable"``,
        ``"driver"``, ``"refused"``, ``"invalid"``).

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder + "/org", accounts=20, seed=3)
    >>> url = f"duckdb:///{folder}/org.duckdb"
    >>> _ = rf.write_replica(folder + "/org", url, layout="airbyte")
    >>> snap = read_replica(url)
    >>> snap.layout.name, snap.tables["Contract"].name
    ('airbyte', 'contract')
    """
    objects = objects or SALESFORCE_OBJECTS
    sa_url = _url(url)
    if layout != "auto" and layout not in REPLICA_LAYOUTS:
        raise _unknown_layout(layout)
    engine = _engine(sa_url, read_only=True)
    where = f"schema {schema}" if schema else "the default schema"
    try:
        with _connect(engine, sa_url, f"Cannot connect to {masked_url(sa_url)}") as conn:
            inspector = sa.inspect(conn)
            # views too: a schema of staging views over the raw tables reads the same
            names = sorted(set(inspector.get_table_names(schema=schema)) | set(inspector.get_view_names(schema=schema)))
            lower = {n.lower(): n for n in names}
            wanted = {_api_name(obj.file): obj for obj in objects.values()}  # API name -> SfObject
            candidates = {}
            if layout == "auto":
                candidates = {
                    lower[t]: _column_names(conn, lower[t], schema) for t in _object_tables(objects) if t in lower
                }
            chosen = replica_layout(candidates, layout=layout, where=f"{where} of {masked_url(sa_url)}", found=names)
            snap = ReplicaSnapshot(masked_url(sa_url), schema, chosen, names)
            for api, obj in wanted.items():
                table_name = lower.get(snap.expected(api).lower())
                if table_name is None:
                    continue
                snap.tables[api] = _read_table(conn, table_name, api, obj, chosen, schema)
    except WarehouseError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        raise _failure(exc, sa_url, f"Cannot read {where} of {masked_url(sa_url)}", connecting=False) from None
    finally:
        engine.dispose()
    return snap


def _column_names(conn, table_name: str, schema: str | None) -> list[str]:
    """A table's columns from a query's result (column reflection is not in every dialect)."""
    result = conn.execute(sa.select(sa.text("*")).select_from(sa.table(table_name, schema=schema)).limit(0))
    names = list(result.keys())
    result.close()
    return names


def _read_table(conn, table_name: str, api: str, obj, layout: ReplicaLayout, schema: str | None) -> ReplicaTable:
    cols = layout.read_columns(_column_names(conn, table_name, schema))
    table = sa.table(table_name, *(sa.column(c) for c in cols), schema=schema)
    rows = conn.execute(sa.select(*(table.c[c] for c in cols))).all()
    # one column at a time: a column's values share a type, so each is rendered by one rule
    values = dict(zip(cols, map(list, zip(*rows, strict=True)), strict=True)) if rows else {c: [] for c in cols}
    return replica_table(table_name, api, values, layout, obj)


def replica_table(
    name: str,
    api_name: str,
    values: Mapping[str, Sequence[object]],
    layout: ReplicaLayout,
    obj: SfObject | None = None,
) -> ReplicaTable:
    """One replicated object's table as the loader reads it: its current records as API text, in key order.

    The rules :func:`read_replica` reads each table by, on values already
    fetched: the tool's metadata columns are left out; of the versions of a
    record an append-only replica keeps, only the latest by the layout's
    sequence columns, then ``SystemModstamp``, stands; soft-deleted records
    (judged by that latest version) and history mode's inactive rows are
    dropped; each value is rendered as the Salesforce API writes it; rows
    are ordered by ``Id`` (spend by month and channel, signals by account
    and month), a row's line being its 1-based position in that order. A
    reader of any other store (a Spark table) gives each column's values as
    the database driver would: ``datetime.date``, ``datetime.datetime``
    (naive ones taken as UTC), ``float``, ``int``, ``decimal.Decimal``,
    ``bool``, ``str`` and ``None``.

    Parameters
    ----------
    name : str
        The table's name, as problems will name it.
    api_name : str
        The object's API name (``"Contract"``), or ``"spend"`` / ``"signals"``.
    values : mapping of str to sequence
        Column name -> the column's values, every column the same length;
        columns :meth:`ReplicaLayout.read_columns` leaves out may be left out.
    layout : ReplicaLayout
    obj : SfObject, optional
        The object's fields (default: its entry in
        :data:`~renewforecast.io.salesforce.SALESFORCE_OBJECTS`).

    Returns
    -------
    ReplicaTable

    Examples
    --------
    >>> import datetime as dt
    >>> t = replica_table(
    ...     "contract",
    ...     "Contract",
    ...     {
    ...         "id": ["800B", "800A", "800A"],
    ...         "start_date": [dt.date(2024, 1, 1), dt.date(2023, 1, 1), dt.date(2023, 2, 1)],
    ...         "_fivetran_synced": [dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3)],
    ...         "_fivetran_deleted": [True, False, False],
    ...     },
    ...     REPLICA_LAYOUTS["fivetran"],
    ... )
    >>> t.raw.frame.to_dict("records"), t.deleted, t.superseded, t.order
    ([{'id': '800A', 'start_date': '2023-02-01'}], 1, 1, ('id',))
    """
    if obj is None:
        obj = next(o for o in SALESFORCE_OBJECTS.values() if _api_name(o.file) == api_name)
    cols = list(values)
    by_lower = {c.lower(): c for c in cols}
    # API field -> the column found (case-insensitively: Snowflake upper-cases)
    columns: dict[str, str] = {}
    fields = {f.source for f in obj.fields} | {"CurrencyIsoCode"} | ({obj.id_field} if obj.id_field else set())
    for src in fields:
        expected = src if api_name in _CANONICAL else layout.column(src)
        columns[src] = by_lower.get(expected.lower(), expected)
    flags = [by_lower[d] for d in layout.deleted if d in by_lower]
    inactive = by_lower.get(layout.inactive) if layout.inactive else None
    sequence = [by_lower[c] for c in layout.sequence if c in by_lower]
    data_cols = [c for c in cols if not layout.ignored(c) and c != inactive]
    extra = [c for c in [*flags, inactive, *sequence] if c is not None and c not in data_cols]
    n_read = len(next(iter(values.values()))) if cols else 0
    frame = pd.DataFrame(
        {c: _render_column(list(values[c])) for c in data_cols},
        index=pd.RangeIndex(n_read),
        columns=data_cols,
        dtype=object,
    )
    kept = {c: list(values[c]) for c in extra}
    if inactive is not None and n_read:
        # history mode: a false _fivetran_active marks a superseded version
        current = np.array([v is None or _true(v) for v in kept[inactive]], dtype=bool)
        frame, kept = (
            frame[current],
            {c: [v for v, k in zip(vs, current, strict=True) if k] for c, vs in kept.items()},
        )
    frame = frame.reset_index(drop=True)
    id_column = columns.get(obj.id_field) if obj.id_field and api_name not in _CANONICAL else None
    superseded = 0
    if id_column in frame and frame[id_column].duplicated().any():
        # an append-only replica keeps every version of a record: the latest one stands
        keep = _latest_versions(
            frame, id_column, [kept[c] for c in sequence], by_lower.get(layout.column("SystemModstamp").lower())
        )
        superseded = len(frame) - len(keep)
        frame = frame.iloc[keep].reset_index(drop=True)
        kept = {c: [vs[i] for i in keep] for c, vs in kept.items()}
    if flags and len(frame):
        gone = np.zeros(len(frame), dtype=bool)
        for flag in flags:
            gone |= np.array([_true(v) for v in kept[flag]], dtype=bool)
        frame = frame[~gone].reset_index(drop=True)
    dropped = n_read - len(frame) - superseded
    key = [k for k in _sort_key(api_name, id_column if id_column else None, columns) if k in frame]
    if key and len(frame):
        # code-point order, whatever the database's collation (a stable sort of Python strings)
        order = frame[key].fillna("").sort_values(key, kind="stable").index
        frame = frame.loc[order].reset_index(drop=True)
    raw = RawTable(name, frame, np.arange(1, len(frame) + 1, dtype=np.int64), "database")
    return ReplicaTable(name, raw, columns, dropped, superseded, tuple(key))


def _latest_versions(frame: pd.DataFrame, id_column: str, sequence: list[list], modstamp: str | None) -> list[int]:
    """The positions of each record's latest version: by the tool's sequence columns, then SystemModstamp.

    NULL sorts first (oldest); remaining ties are broken by the row's text so the
    choice does not depend on the order the database returns rows in.
    """
    keys = pd.DataFrame({f"_seq{i}": _order_key(vals) for i, vals in enumerate(sequence)}, index=frame.index)
    if modstamp is not None and modstamp in frame:
        keys["_modstamp"] = frame[modstamp]
    rest = [c for c in frame.columns if c != id_column]
    keys = pd.concat([keys, frame[rest].fillna("").add_prefix("_row_")], axis=1)
    keys.insert(0, "_id", frame[id_column].fillna(""))
    ordered = keys.sort_values(list(keys.columns), kind="stable", na_position="first")
    return sorted(ordered.drop_duplicates("_id", keep="last").index.tolist())


def _order_key(values: list) -> pd.Series:
    """A sequence column's values as keys that sort oldest first (numbers as numbers, times in UTC)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int | float | decimal.Decimal | np.integer | np.floating) for v in present):
        return pd.Series([None if v is None else float(v) for v in values], dtype="float64")
    if present and all(isinstance(v, dt.datetime) for v in present):
        return pd.Series(
            [None if v is None else _utc(v).strftime("%Y-%m-%dT%H:%M:%S.%f") for v in values], dtype=object
        )
    return pd.Series([None if v is None else str(v) for v in values], dtype=object)


def _utc(value: dt.datetime) -> dt.datetime:
    # naive timestamps are taken as UTC, as the tools write them
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _render_column(values: list) -> list:
    """A column's typed values rendered as :func:`_render` renders each, choosing the rule once per column."""
    kinds = {type(v) for v in values}
    kinds.discard(type(None))
    if len(kinds) != 1:
        return [_render(v) for v in values]
    (kind,) = kinds
    if kind is str:
        return [None if v is None else (v.strip() or None) for v in values]
    if kind is bool:
        return [None if v is None else ("true" if v else "false") for v in values]
    if kind is float:
        return [None if v is None else repr(v) for v in values]
    if kind is int or kind is decimal.Decimal:
        return [None if v is None else str(v) for v in values]
    if kind is dt.date:
        return [None if v is None else v.isoformat() for v in values]
    if kind is dt.datetime:
        return [None if v is None else _stamp_text(v) for v in values]
    return [_render(v) for v in values]


def _stamp_text(value: dt.datetime) -> str:
    value = _utc(value)
    return f"{value.isoformat(timespec='milliseconds')}Z" if value.year >= 1000 else _render(value)


# ---------------------------------------------------------------- writing a replica

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")
_TYPES = {
    "str": sa.Text,
    "float": sa.Double,
    "int": sa.BigInteger,
    "bool": sa.Boolean,
    "date": sa.Date,
    "timestamp": lambda: sa.DateTime(timezone=True),
}


#: Date fields the reader takes as text (their 0001-01-01 and 9999-12-31 lie
#: outside pandas' dates) that a replication tool still writes as DATE.
_WRITTEN_AS = {"DatedConversionRate": {"StartDate": "date", "NextStartDate": "date"}}


def _stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def _typed_column(values: pd.Series, kind: str | None) -> tuple[str, list]:
    """The type a replication tool gives a column of export text, and its values so typed."""
    cells = values.tolist()
    present = [v for v in cells if v is not None]

    def convert(fn):
        return [None if v is None else fn(v) for v in cells]

    try:
        if kind == "bool" and all(v.lower() in ("true", "false") for v in present):
            return "bool", convert(lambda v: v.lower() == "true")
        if kind == "int":
            return "int", convert(int)
        if kind in ("float", "int") or (kind is None and present and all(_is_number(v) for v in present)):
            return "float", convert(float)
        if kind in ("date", "datetime", None) and present and all(_ISO_DAY.match(v) for v in present):
            return "date", convert(dt.date.fromisoformat)
        if kind in ("date", "datetime", None) and present and all(_ISO_STAMP.match(v) for v in present):
            return "timestamp", convert(_stamp)
        if kind in ("date", "datetime") and not present:
            return ("date" if kind == "date" else "timestamp"), cells
    except ValueError:
        pass
    return "str", cells


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class WrittenReplica:
    """What :func:`write_replica` wrote: the layout, rows per table, and the ids of the soft-deleted copies."""

    layout: str
    rows: dict[str, int]
    deleted_ids: dict[str, list[str]]


def write_replica(
    export_dir: str | Path,
    url: str | sa.URL,
    *,
    schema: str | None = None,
    layout: str = "fivetran",
    deleted: Mapping[str, int] | None = None,
) -> WrittenReplica:
    """Write a Salesforce export folder into a database as a replication tool lays it out.

    Each export file becomes the table the tool would write (``Contract.csv``
    -> ``contract``, ``SBQQ__Subscription__c.csv`` -> ``sbqq_subscription_c``
    for Fivetran, ``sbqq__subscription__c`` for Airbyte and Stitch; ``spend``
    and ``signals`` keep their names), with columns typed as the tool types
    them (dates DATE, datetimes TIMESTAMP WITH TIME ZONE, numbers DOUBLE,
    whole numbers BIGINT, booleans BOOLEAN, ids and text TEXT) and the tool's
    own columns added. A table already there is replaced. It lets you try the
    warehouse path (``load_book(url)``) on a DuckDB file; the export is only read.

    Parameters
    ----------
    export_dir : path-like
        A Salesforce export folder (as :func:`renewforecast.write_demo_org` writes).
    url : str or sqlalchemy.URL
        Where to write.
    schema : str, optional
        The schema to write to (created when missing); default: the connection's.
    layout : {"fivetran", "airbyte", "stitch", "lowercase"}, default "fivetran"
    deleted : mapping of str to int, optional
        Object API name (``"Contract"``, ``"spend"``) -> how many soft-deleted
        rows to add: copies of the object's first rows with new ids (the last
        six characters become ``DEL001``, ...), flagged deleted by each of the
        layout's deletion columns in turn. A reader that keeps them counts
        records twice.

    Returns
    -------
    WrittenReplica

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder + "/org", accounts=20, seed=3)
    >>> done = rf.write_replica(folder + "/org", f"duckdb:///{folder}/org.duckdb", deleted={"Contract": 2})
    >>> done.rows["contract"] - len(rf.load_book(folder + "/org").contracts), done.deleted_ids["contract"][0][-6:]
    (2, 'DEL001')
    """
    if layout not in REPLICA_LAYOUTS:
        raise WarehouseError(f"Unknown layout {layout!r}: use " + ", ".join(REPLICA_LAYOUTS))
    chosen = REPLICA_LAYOUTS[layout]
    folder = Path(export_dir)
    deleted = dict(deleted or {})
    unknown = set(deleted) - {_api_name(o.file) for o in SALESFORCE_OBJECTS.values()}
    if unknown:
        raise ValueError(f"deleted= names no exported object: {', '.join(sorted(unknown))}")
    synced = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sa_url = _url(url)
    engine = _engine(sa_url, read_only=False)
    rows: dict[str, int] = {}
    deleted_ids: dict[str, list[str]] = {}
    try:
        with _connect(engine, sa_url, f"Cannot connect to {masked_url(sa_url)}") as conn, conn.begin():
            if schema:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            for obj in SALESFORCE_OBJECTS.values():
                path = folder / obj.file
                if not path.is_file():
                    continue
                api = _api_name(obj.file)
                name, written, ids = _replica_table(path, api, obj, chosen, deleted.get(api, 0), synced)
                table = sa.Table(
                    name, sa.MetaData(), *(sa.Column(c, _TYPES[t]()) for c, (t, _) in written.items()), schema=schema
                )
                table.drop(conn, checkfirst=True)
                table.create(conn)
                n = len(next(iter(written.values()))[1]) if written else 0
                records = [{c: vals[i] for c, (_, vals) in written.items()} for i in range(n)]
                if records:
                    conn.execute(table.insert(), records)
                rows[name] = n
                if ids:
                    deleted_ids[name] = ids
    except sa.exc.SQLAlchemyError as exc:
        raise _failure(exc, sa_url, f"Cannot write the replica to {masked_url(sa_url)}", connecting=False) from None
    finally:
        engine.dispose()
    return WrittenReplica(layout, rows, deleted_ids)


def _replica_table(
    path: Path, api: str, obj, layout: ReplicaLayout, n_deleted: int, synced: dt.datetime
) -> tuple[str, dict[str, tuple[str, list]], list[str]]:
    from_text = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    frame = from_text.apply(lambda s: s.str.strip()).replace("", None).astype(object)
    frame = frame.where(frame.notna(), None)
    canonical = api in _CANONICAL
    kinds: dict[str, str] = {}
    for f in obj.fields:
        kinds.setdefault(f.source, f.kind)
    for col, kind in _WRITTEN_AS.get(api, {}).items():
        kinds[col] = kind
    id_col = obj.id_field if obj.id_field in frame.columns and not canonical else None
    ids: list[str] = []
    if n_deleted:
        copies = frame.head(n_deleted).copy()
        if id_col:
            ids = [str(v)[:-6] + f"DEL{k + 1:03d}" for k, v in enumerate(copies[id_col])]
            copies[id_col] = ids
        frame = pd.concat([frame, copies], ignore_index=True)
    n, n_real = len(frame), len(frame) - n_deleted
    written: dict[str, tuple[str, list]] = {}
    for col in frame.columns:
        name = col if canonical else layout.column(col)
        kind = kinds.get(col)
        if kind in ("id", "str", "cat"):
            written[name] = ("str", frame[col].tolist())
        else:
            written[name] = _typed_column(frame[col], kind if kind or canonical else "str")
    flags = list(layout.deleted)
    for col, typ in layout.written + tuple((d, "bool") for d in flags):
        if col in written:
            continue
        if col in flags:
            values: list = [False] * n
        elif typ == "timestamp":
            values = [synced] * n
        elif col == "_airbyte_raw_id":
            values = [str(uuid.uuid4()) for _ in range(n)]
        elif col == "_airbyte_meta":
            values = [json.dumps({"changes": [], "sync_id": 1})] * n
        elif col == "_sdc_sequence":
            values = [int(synced.timestamp() * 1000) + i for i in range(n)]
        else:
            values = [0] * n
        written[col] = (typ, values)
    for k in range(n_deleted):
        flag = flags[k % len(flags)]
        written[flag][1][n_real + k] = True
    return (api if canonical else layout.table(api)), written, ids


# ---------------------------------------------------------------- writing results

_SAFE_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _safe_column(name: object) -> str:
    text = re.sub(r"[^0-9a-zA-Z_]+", "_", str(name)).strip("_").lower()[:63]
    if not text:
        text = "column"
    return "_" + text[:62] if text[0].isdigit() else text


def _result_column(series: pd.Series) -> tuple[sa.types.TypeEngine, list]:
    """A result column's SQL type and its cells as plain Python values (missing as NULL)."""
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(series):
        typ, cells = sa.Boolean(), [bool(v) for v in series.fillna(False)]
    elif pd.api.types.is_integer_dtype(series):
        typ, cells = sa.BigInteger(), [int(v) for v in series.fillna(0)]
    elif pd.api.types.is_float_dtype(series):
        typ, cells = sa.Double(), [float(v) for v in series.fillna(0.0)]
    elif pd.api.types.is_datetime64_any_dtype(series):
        aware = getattr(series.dt, "tz", None) is not None
        typ = sa.DateTime(timezone=aware)
        cells = [None if pd.isna(v) else v.to_pydatetime() for v in series]
    else:
        typ = sa.Text()
        cells = [str(v) for v in series.astype(object).where(~missing, "")]
    return typ, [None if m else v for v, m in zip(cells, missing, strict=True)]


def _result_kind(typ: sa.types.TypeEngine) -> str:
    if isinstance(typ, sa.Boolean):
        return "bool"
    if isinstance(typ, sa.Integer):
        return "int"
    if isinstance(typ, sa.Float):
        return "float"
    return "datetime" if isinstance(typ, sa.DateTime) else "text"


def _accepts(existing: str, kind: str) -> bool:
    """Whether a column of SQL type ``existing`` stores a result column of ``kind`` unchanged."""
    upper = existing.upper()
    if "BOOL" in upper:
        holds = {"bool"}
    elif "INT" in upper and "INTERVAL" not in upper:
        holds = {"int"}
    elif any(w in upper for w in ("DOUBLE", "FLOAT", "REAL")):
        holds = {"float", "int"}
    elif any(w in upper for w in ("NUMERIC", "DECIMAL", "NUMBER")):
        holds = {"int"}  # a float would be rounded to the column's scale
    elif "TIMESTAMP" in upper or "DATETIME" in upper:
        holds = {"datetime"}
    elif any(w in upper for w in ("CHAR", "TEXT", "STRING", "CLOB")):
        holds = {"text"}
    else:
        holds = set()
    return kind in holds


def _existing_types(conn: sa.Connection, name: str, schema: str | None) -> dict[str, str]:
    """An existing table's columns and their SQL types, in the table's order."""
    if conn.dialect.name == "duckdb":
        # duckdb-engine's column reflection queries pg_catalog tables DuckDB lacks
        cols = sa.table(
            "columns",
            sa.column("table_schema"),
            sa.column("table_name"),
            sa.column("column_name"),
            sa.column("data_type"),
            sa.column("ordinal_position"),
            schema="information_schema",
        )
        where = cols.c.table_schema == (schema if schema else sa.func.current_schema())
        query = (
            sa.select(cols.c.column_name, cols.c.data_type)
            .where(where, cols.c.table_name == name)
            .order_by(cols.c.ordinal_position)
        )
        return {str(c): str(t) for c, t in conn.execute(query).all()}
    types = {}
    for col in sa.inspect(conn).get_columns(name, schema=schema):
        try:
            types[col["name"]] = col["type"].compile(dialect=conn.dialect)
        except sa.exc.CompileError:
            types[col["name"]] = str(col["type"])
    return types


def write_result_tables(
    url: str | sa.URL,
    tables: Mapping[str, pd.DataFrame],
    *,
    schema: str | None = None,
    run_id: str,
    if_exists: str = "append",
) -> dict[str, int]:
    """Write result tables (scores, forecast, KPIs) to a database in one transaction, tagged with a run id.

    Each row gets a first column ``run_id``. Writing a run id again replaces
    that run's rows (the call is idempotent); other runs' rows stay. Column
    names are made SQL-safe (lower case, letters, digits and underscores);
    text cells are stored as text, never interpreted. Appending to an
    existing table first compares its columns and their SQL types with the
    frame's (a float column is refused by a BIGINT or DECIMAL column, which
    would round it; text only goes to a text column) and refuses, before
    anything is written, a table that lacks a column or whose type would
    change the values. Everything happens in one transaction: if any table
    fails, no table is changed (on SQLite too: pysqlite's own transaction
    handling, which commits CREATE TABLE by itself, is replaced by
    SQLAlchemy's documented workaround). On databases whose CREATE/DROP
    TABLE commit by themselves, such as Snowflake and BigQuery, a table
    created before the failure may remain, empty.

    Parameters
    ----------
    url : str or sqlalchemy.URL
        The database to write to.
    tables : mapping of str to DataFrame
        Table name (lower case letters, digits, underscores) -> rows.
    schema : str, optional
        The schema to write to (default: the connection's).
    run_id : str
        Identifies the run (e.g. the report run's folder name or a timestamp).
    if_exists : {"append", "replace"}, default "append"
        An existing table keeps its other runs' rows ("append"; its columns
        must include the frame's) or is dropped and created again ("replace").

    Returns
    -------
    dict of str to int
        Rows written per table.

    Raises
    ------
    WarehouseError
        Nothing was changed. ``reason`` is ``"invalid"`` for a name that is not
        SQL-safe or a table whose columns or types do not fit the frame,
        ``"refused"`` when the database refused a statement, ``"auth"``,
        ``"unreachable"`` or ``"driver"`` when it could not be connected to.

    Examples
    --------
    >>> import tempfile, pandas as pd, sqlalchemy as sa
    >>> url = f"duckdb:///{tempfile.mkdtemp()}/results.duckdb"
    >>> scores = pd.DataFrame({"contract_id": ["800A", "800B"], "P(renew)": [0.9, 0.4]})
    >>> write_result_tables(url, {"scores": scores}, run_id="2026-06-30")
    {'scores': 2}
    >>> _ = write_result_tables(url, {"scores": scores}, run_id="2026-06-30")  # the same run again
    >>> sa.create_engine(url).connect().execute(sa.text("select count(*), min(p_renew) from scores")).one()
    (2, 0.4)
    """
    if if_exists not in ("append", "replace"):
        raise ValueError(f"if_exists must be 'append' or 'replace', not {if_exists!r}")
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError("run_id must be a non-empty string")
    prepared: dict[str, tuple[list[str], pd.DataFrame]] = {}
    for name, frame in tables.items():
        if not isinstance(name, str) or not _SAFE_TABLE.match(name):
            raise WarehouseError(
                f"Result table name {str(name)[:40]!r} is not SQL-safe: use lower-case letters, digits and "
                "underscores, starting with a letter or underscore (at most 63 characters)"
            )
        columns = [_safe_column(c) for c in frame.columns]
        clash = sorted({c for c in columns if columns.count(c) > 1 or c == "run_id"})
        if clash:
            raise WarehouseError(
                f"Result table {name}: columns {', '.join(clash)} collide once made SQL-safe "
                "(or are named run_id, which the run's id takes); rename them"
            )
        prepared[name] = (columns, frame)
    sa_url = _url(url)
    engine = _engine(sa_url, read_only=False)
    written: dict[str, int] = {}
    try:
        with _connect(engine, sa_url, f"Cannot connect to {masked_url(sa_url)}") as conn, conn.begin():
            inspector = sa.inspect(conn)
            # every table is checked before anything is written
            plans = []
            problems: list[str] = []
            for name, (columns, frame) in prepared.items():
                typed = [_result_column(frame.iloc[:, i]) for i in range(frame.shape[1])]
                exists = inspector.has_table(name, schema=schema)
                existing = _existing_types(conn, name, schema) if exists and if_exists == "append" else None
                if existing is not None:
                    absent = [c for c in ["run_id", *columns] if c not in existing]
                    if absent:
                        problems.append(f"result table {name} exists without the column(s) {', '.join(absent)}")
                    for i, (column, (typ, _)) in enumerate(zip(columns, typed, strict=True)):
                        if column in existing and frame.iloc[:, i].notna().any():
                            new = typ.compile(dialect=conn.dialect)
                            if not _accepts(existing[column], _result_kind(typ)):
                                problems.append(
                                    f"result table {name} column {column} is {existing[column]} in the database, "
                                    f"the new rows' are {new}"
                                )
                plans.append((name, columns, frame, typed, exists, existing))
            if problems:
                raise WarehouseError(
                    "Cannot append to the result tables of "
                    f"{masked_url(sa_url)}: {'; '.join(problems)}; nothing was written (write with "
                    "if_exists='replace' to recreate a table, or give the column its former type)"
                )
            for name, columns, frame, typed, exists, existing in plans:
                if existing is not None:
                    table = sa.table(name, *(sa.column(c) for c in existing), schema=schema)
                    conn.execute(sa.delete(table).where(table.c.run_id == run_id))
                else:
                    table = sa.Table(
                        name,
                        sa.MetaData(),
                        sa.Column("run_id", sa.Text(), nullable=False),
                        *(sa.Column(c, t) for c, (t, _) in zip(columns, typed, strict=True)),
                        schema=schema,
                    )
                    if exists:
                        table.drop(conn)
                    table.create(conn)
                records = [
                    {"run_id": run_id, **{c: vals[i] for c, (_, vals) in zip(columns, typed, strict=True)}}
                    for i in range(len(frame))
                ]
                if records:
                    conn.execute(table.insert(), records)
                written[name] = len(records)
    except sa.exc.SQLAlchemyError as exc:
        raise _failure(
            exc,
            sa_url,
            f"Cannot write the result tables to {masked_url(sa_url)}; nothing was written "
            "(the transaction was rolled back)",
            connecting=False,
        ) from None
    finally:
        engine.dispose()
    return written
