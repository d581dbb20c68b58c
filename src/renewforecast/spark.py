"""The engines on Apache Spark: the single-machine code, unchanged, on slices of accounts.

An account's contract chains, ledger rows, movements and features never
cross accounts (nor account hierarchies), so a Book cut into slices of whole
accounts gives, slice by slice, exactly the rows the whole Book gives. Each
function here hashes every account (the top of its hierarchy, when accounts
have parents) into one of ``partitions`` slices, gathers each slice's rows
of every table it needs with one ``groupBy(...).applyInPandas`` per table,
and runs the single-machine function on the slice's :class:`Book`; small
shared tables (products, spend, exchange rates) go to every slice whole.
Scoring runs the saved model on each partition of the features with
``mapInPandas``; the model files are broadcast once and loaded on each
executor through :func:`renewforecast.load_model`'s checks.

The one fact that crosses accounts, the median price of each product per
start quarter that ``price_vs_peers`` compares with, is pooled from every
slice first (:class:`renewforecast.models.features.WholeBook`).

Needs ``pip install 'renewforecast[spark]'`` and a Java 17+ runtime. Books
live in Spark as one DataFrame per canonical table (:class:`SparkBook`):
read from Parquet or Delta folders, from catalog tables, or from a
replicated Salesforce schema (:meth:`SparkBook.from_replica`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from renewforecast.analyses.scoring import DEFAULT_BANDS, SCORE_COLUMNS, ScoringInputError
from renewforecast.analyses.scoring import score_contracts as score_frame
from renewforecast.atomic import atomic_write_text
from renewforecast.book import Book
from renewforecast.exceptions import BookValidationError, Problem
from renewforecast.io.loader import (
    WHOLE_TABLE_RULES,
    ReplicaTotals,
    date_window,
    load_replica,
    replica_columns,
    sorted_problems,
)
from renewforecast.io.salesforce import SALESFORCE_OBJECTS, SfObject
from renewforecast.io.warehouse import ReplicaLayout, ReplicaSnapshot, ReplicaTable, replica_layout, replica_table
from renewforecast.ledger.hierarchy import ultimate_parents
from renewforecast.ledger.mrr import MOVEMENTS
from renewforecast.ledger.mrr import mrr_movements as movements_frame
from renewforecast.ledger.mrr import mrr_table as mrr_frame
from renewforecast.models.features import WholeBook, featurise_contracts, peer_prices, whole_book_facts
from renewforecast.models.features import renewal_features as features_frame
from renewforecast.models.registry import load_manifest, load_model
from renewforecast.schemas import TABLES, conform

__all__ = [
    "ACCOUNT_TABLES",
    "SHARED_TABLES",
    "SparkBook",
    "mrr_movements",
    "mrr_table",
    "renewal_features",
    "score_contracts",
    "write_book_parquet",
]

#: Small tables every slice gets whole.
SHARED_TABLES = ("products", "spend", "fx_rates")
#: Tables whose rows belong to one account (directly, or through their
#: opportunity): they are cut into slices of accounts.
ACCOUNT_TABLES = tuple(name for name in TABLES if name not in SHARED_TABLES)

# What each engine reads: the ledger, renewal links and hierarchies; features add signals and stage history.
_LEDGER_TABLES = ("accounts", "contracts", "subscriptions", "opportunities", "opportunity_history")
_FEATURE_TABLES = (*_LEDGER_TABLES, "signals")

_SPARK_TYPES = {
    "id": T.StringType(),
    "str": T.StringType(),
    "cat": T.StringType(),
    "date": T.DateType(),
    # Record timestamps are wall-clock values without a zone, as in the Book.
    "datetime": T.TimestampNTZType(),
    "float": T.DoubleType(),
    "int": T.LongType(),
    "bool": T.BooleanType(),
}
_ARROW_TYPES = {
    "id": pa.string(),
    "str": pa.string(),
    "cat": pa.string(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}
_BOOK_FILE = "book.json"
_PACKED = T.StructType(
    [
        T.StructField("_slice", T.LongType()),
        T.StructField("_table", T.StringType()),
        T.StructField("_payload", T.BinaryType()),
    ]
)


def _kinds(name: str, columns: Iterable[str]) -> dict[str, str]:
    """Canonical kind of each column of table ``name`` (extra signal columns are numbers)."""
    spec = {c.name: c.kind for c in TABLES[name].columns}
    out = {}
    for col in columns:
        if col in spec:
            out[col] = spec[col]
        elif TABLES[name].extra_numeric and not str(col).startswith("_"):
            out[col] = "float"
    return out


def _canonical_columns(name: str, present: Iterable[str]) -> list[str]:
    """The canonical columns of ``name`` in schema order: required ones, optional ones present, extra numbers."""
    present = list(present)
    spec = TABLES[name]
    cols = [c.name for c in spec.columns if c.required or c.name in present]
    if spec.extra_numeric:
        cols += [c for c in present if c not in cols and not str(c).startswith("_")]
    return cols


def _arrow_table(frame: pd.DataFrame, name: str) -> pa.Table:
    """A canonical pandas table as Arrow, with the column types Spark reads back."""
    kinds = _kinds(name, frame.columns)
    arrays, fields = [], []
    for col, kind in kinds.items():
        s = frame[col]
        if kind in ("date", "datetime"):
            arr = pa.array(s.to_numpy(dtype="datetime64[ns]"), type=pa.timestamp("ns"), from_pandas=True)
        else:
            arr = pa.Array.from_pandas(s)
        arrays.append(arr.cast(_ARROW_TYPES[kind]))
        fields.append(pa.field(col, _ARROW_TYPES[kind]))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _spark_schema(name: str, columns: Iterable[str]) -> T.StructType:
    return T.StructType([T.StructField(c, _SPARK_TYPES[k]) for c, k in _kinds(name, columns).items()])


def write_book_parquet(book: Book, path: str | Path) -> Path:
    """Write a Book as one Parquet folder per canonical table, for :meth:`SparkBook.read`.

    Written with pyarrow (no Spark needed): dates as ``date``, record
    timestamps without a zone, ids as text. ``book.json`` records the
    reporting currency. The folder must not exist yet.

    Parameters
    ----------
    book : Book
    path : path-like

    Returns
    -------
    Path
        The folder written.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = write_book_parquet(rf.Book.empty(), tempfile.mkdtemp() + "/book")
    >>> sorted(p.name for p in folder.iterdir())[:3]
    ['accounts', 'book.json', 'contracts']
    """
    out = Path(path)
    if out.exists():
        raise FileExistsError(f"{out} exists already: write a Book to a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed into place: a reader never sees half a Book.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    for name, frame in book.tables.items():
        (tmp / name).mkdir()
        pq.write_table(_arrow_table(frame, name), tmp / name / "part-00000.parquet")
    atomic_write_text(tmp / _BOOK_FILE, json.dumps({"currency": book.currency}))
    tmp.rename(out)
    return out


def _canonical_sdf(sdf: DataFrame, name: str) -> DataFrame:
    """A Spark table with the canonical columns of ``name``, typed (missing optional ones as nulls)."""
    present = sdf.columns
    cols = []
    for col in _canonical_columns(name, present):
        kind = _kinds(name, [col])[col]
        value = F.col(f"`{col}`") if col in present else F.lit(None)
        cols.append(value.cast(_SPARK_TYPES[kind]).alias(col))
    return sdf.select(*cols)


@dataclass(frozen=True)
class SparkBook:
    """A Book as Spark DataFrames: one per canonical table, plus its reporting currency.

    Parameters
    ----------
    tables : mapping of str to pyspark.sql.DataFrame
        Canonical tables by name (:data:`renewforecast.schemas.TABLES`);
        columns are cast to their canonical types and missing optional
        tables are empty.
    currency : str, default "USD"

    Examples
    --------
    >>> import renewforecast as rf
    >>> from pyspark.sql import SparkSession
    >>> spark = SparkSession.builder.master("local[2]").getOrCreate()
    >>> book = SparkBook.from_book(rf.Book.empty(), spark)
    >>> book.tables["subscriptions"].columns[:3]
    ['subscription_id', 'contract_id', 'account_id']
    """

    tables: Mapping[str, DataFrame]
    currency: str = "USD"

    def __post_init__(self) -> None:
        missing = [n for n in TABLES if TABLES[n].required and n not in self.tables]
        if missing:
            raise ValueError(f"SparkBook lacks the required table(s) {missing}")
        spark = next(iter(self.tables.values())).sparkSession
        tables = {}
        for name in TABLES:
            sdf = self.tables.get(name)
            if sdf is None:
                sdf = spark.createDataFrame([], _spark_schema(name, _canonical_columns(name, [])))
            tables[name] = _canonical_sdf(sdf, name)
        object.__setattr__(self, "tables", tables)

    @property
    def spark(self) -> SparkSession:
        """The session the tables live in."""
        return self.tables["subscriptions"].sparkSession

    @classmethod
    def from_book(cls, book: Book, spark: SparkSession) -> SparkBook:
        """Copy a single-machine Book into Spark (Arrow, no loss of type or precision)."""
        tables = {}
        for name, frame in book.tables.items():
            arrow = _arrow_table(frame, name)
            tables[name] = spark.createDataFrame(arrow, schema=_spark_schema(name, arrow.column_names))
        return cls(tables, currency=book.currency)

    @classmethod
    def read(cls, spark: SparkSession, path: str | Path, *, format: str = "parquet", currency: str | None = None):
        """Read a Book written by :func:`write_book_parquet` or :meth:`write` (``format="delta"`` for Delta).

        A table whose folder is missing is read as empty when it is optional.
        ``currency`` defaults to the one ``book.json`` records.
        """
        root = Path(path)
        meta = root / _BOOK_FILE
        if currency is None:
            currency = json.loads(meta.read_text(encoding="utf-8"))["currency"] if meta.exists() else "USD"
        tables = {}
        for name in TABLES:
            where = root / name
            if where.exists():
                tables[name] = spark.read.format(format).load(str(where))
            elif TABLES[name].required:
                raise FileNotFoundError(f"{where}: the Book's {name} table is missing")
        return cls(tables, currency=currency)

    @classmethod
    def from_replica(
        cls,
        spark: SparkSession,
        database_or_tables: str | Mapping[str, DataFrame],
        *,
        layout: str = "auto",
        currency: str | None = None,
        partitions: int | None = None,
        date_format: str = "%m/%d/%Y",
        field_map: dict[str, dict[str, str]] | None = None,
        type_map: dict[str, str] | None = None,
        date_window: tuple[object, object] | None = None,
    ) -> SparkBook:
        """Build the Book from a replicated Salesforce schema held as Spark tables, by the loader's own rules.

        The tables are those a replication tool (Fivetran, Airbyte, Stitch)
        fills, as :func:`renewforecast.load_book` reads them from a database
        URL: the same layouts (:data:`renewforecast.io.warehouse.REPLICA_LAYOUTS`),
        the same soft deletes and latest versions, the same parsing and
        validation. Each object's table is cut down to its current records
        in Spark (the rows of each ``Id`` go to one task, which applies
        :func:`renewforecast.io.warehouse.replica_table`); its records are
        then cut into slices of accounts that keep together every account
        linked to another (hierarchies, renewals and amendments of another
        account's contract, subscriptions billed to another account), and
        each slice, with the small shared objects (products, exchange rates,
        spend) whole, is loaded by :func:`renewforecast.io.loader.load_replica`,
        given the whole tables' record counts and currencies. Warnings are
        not kept (a SparkBook has no place for them).

        Parameters
        ----------
        spark : SparkSession
        database_or_tables : str or mapping of str to pyspark.sql.DataFrame
            A database (schema) of the session's catalog whose tables are read
            with ``spark.table`` (``"crm"``, or ``"catalog.schema"`` on Unity
            Catalog), or table name -> DataFrame.
        layout : {"auto", "fivetran", "airbyte", "stitch", "lowercase"}, default "auto"
            As in :func:`renewforecast.load_book`.
        currency, date_format, field_map, type_map, date_window
            As in :func:`renewforecast.load_book`.
        partitions : int, optional
            Slices of accounts, and buckets of record ids (default
            ``spark.sql.shuffle.partitions``).

        Returns
        -------
        SparkBook
            Its tables are computed once and held in Spark's cache
            (memory, then disk); :meth:`write` keeps them.

        Raises
        ------
        BookValidationError
            With every error of every slice, naming the table and column as
            found, the record's id and its line (its position in the whole
            table's ``Id`` order), as ``load_book`` on the same database would.
        WarehouseError
            The layout is unknown or no replicated object is found.
        ValueError
            ``date_window`` ends before it starts, or ``type_map`` maps to an
            unknown type (before any slice is read).

        Examples
        --------
        >>> import tempfile, duckdb, renewforecast as rf
        >>> from pyspark.sql import SparkSession
        >>> spark = SparkSession.builder.master("local[2]").getOrCreate()
        >>> folder = tempfile.mkdtemp()
        >>> org = rf.write_demo_org(folder + "/org", accounts=10, seed=1)
        >>> written = rf.write_replica(org.path, f"duckdb:///{folder}/crm.duckdb", layout="airbyte")
        >>> with duckdb.connect(f"{folder}/crm.duckdb") as db:
        ...     tables = {t: spark.createDataFrame(db.table(t).to_arrow_table()) for t in written.rows}
        >>> book = SparkBook.from_replica(spark, tables, partitions=2)
        >>> book.to_book().fingerprint == rf.load_book(org.path).fingerprint
        True
        """
        return _from_replica(
            spark,
            database_or_tables,
            layout=layout,
            currency=currency,
            partitions=partitions,
            options={"date_format": date_format, "field_map": field_map, "type_map": type_map},
            window=date_window,
        )

    def write(self, path: str | Path, *, format: str = "parquet", mode: str = "errorifexists") -> None:
        """Write every table to ``path/<table>`` in ``format`` (``"parquet"`` or ``"delta"``).

        Examples
        --------
        >>> import tempfile, renewforecast as rf
        >>> from pyspark.sql import SparkSession
        >>> spark = SparkSession.builder.master("local[2]").getOrCreate()
        >>> folder = tempfile.mkdtemp() + "/book"
        >>> SparkBook.from_book(rf.Book.empty(currency="EUR"), spark).write(folder)
        >>> again = SparkBook.read(spark, folder)
        >>> again.currency, len(again.to_book().contracts)
        ('EUR', 0)
        """
        root = Path(path)
        for name, sdf in self.tables.items():
            sdf.write.format(format).mode(mode).save(str(root / name))
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / _BOOK_FILE, json.dumps({"currency": self.currency}))

    def to_book(self) -> Book:
        """Collect every table into a single-machine :class:`Book` (for small Books and checks)."""
        return Book(**{n: conform(_collect(s), n) for n, s in self.tables.items()}, currency=self.currency)

    # ------------------------------------------------------------ slicing
    def _slices(self, names: Sequence[str], partitions: int) -> dict[str, DataFrame]:
        """Each table in ``names`` with ``_slice``: the hash of its account's hierarchy top."""
        top = self._hierarchy_tops
        tops = None
        if top is not None:
            tops = F.broadcast(
                self.spark.createDataFrame(
                    pd.DataFrame({"account_id": top.index.astype(str), "_top": top.astype(str).to_numpy()}),
                    "account_id string, _top string",
                )
            )

        def keyed(sdf: DataFrame) -> DataFrame:
            if tops is not None:
                sdf = sdf.join(tops, "account_id", "left")
                top = F.coalesce(F.col("_top"), F.col("account_id"))
                return sdf.withColumn("_slice", F.pmod(F.xxhash64(top), F.lit(partitions))).drop("_top")
            return sdf.withColumn("_slice", F.pmod(F.xxhash64("account_id"), F.lit(partitions)))

        owners = keyed(self.tables["opportunities"].select("opportunity_id", "account_id")).drop("account_id")
        out = {}
        for name in names:
            sdf = self.tables[name]
            if "account_id" in sdf.columns:
                out[name] = keyed(sdf)
            elif name in ("opportunity_lines", "opportunity_history"):
                out[name] = sdf.join(owners, "opportunity_id", "left").fillna({"_slice": 0})
            elif name == "schedules":
                lines = (
                    self.tables["opportunity_lines"]
                    .select("line_id", "opportunity_id")
                    .join(owners, "opportunity_id", "left")
                )
                out[name] = sdf.join(lines.drop("opportunity_id"), "line_id", "left").fillna({"_slice": 0})
        return out

    @cached_property
    def _hierarchy_tops(self) -> pd.Series | None:
        """The top of each account that has a parent (None when no account has one), found once per Book."""
        acc = self.tables["accounts"]
        children = acc.where(F.col("parent_account_id").isNotNull()).select("account_id", "parent_account_id")
        if not children.limit(1).count():
            return None
        # Hierarchies stay in one slice: renewals signed by a sister account
        # and ultimate-parent customers are then slice-local too. Only the
        # accounts that have a parent are mapped (a small table, broadcast).
        pairs = children.toPandas()
        roots = sorted(set(pairs["parent_account_id"]) - set(pairs["account_id"]))
        pairs = pd.concat([pairs, pd.DataFrame({"account_id": roots, "parent_account_id": None})])
        top = ultimate_parents(Book.empty().replace(accounts=conform(pairs, "accounts")))
        return top[top.index.astype(str) != top.astype(str).to_numpy()]

    @cached_property
    def _shared(self) -> dict[str, pd.DataFrame]:
        """The small shared tables, collected once per Book (every engine pass sends them to every slice)."""
        return {n: conform(_collect(self.tables[n]), n) for n in SHARED_TABLES}

    def _columns(self) -> dict[str, list[str]]:
        return {n: s.columns for n, s in self.tables.items()}


def _from_spark(frame: pd.DataFrame, schema: T.StructType) -> pd.DataFrame:
    """Spark's pandas (dates as ``datetime.date``) in the Book's form (``datetime64``)."""
    dates = [f.name for f in schema.fields if isinstance(f.dataType, T.DateType) and f.name in frame.columns]
    if not dates:
        return frame
    return frame.assign(**{c: pd.to_datetime(frame[c]) for c in dates})


def _collect(sdf: DataFrame) -> pd.DataFrame:
    return _from_spark(sdf.toPandas(), sdf.schema)


def _pack(name: str) -> Callable[[pa.Table], pa.Table]:
    """One slice's rows of table ``name`` as one Arrow stream in one row (Arrow in, Arrow out: no pandas)."""

    def pack(table: pa.Table) -> pa.Table:
        slice_id = table.column("_slice")[0].as_py()
        data = table.drop_columns(["_slice"])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        return pa.table(
            {
                "_slice": pa.array([slice_id], pa.int64()),
                "_table": pa.array([name], pa.string()),
                "_payload": pa.array([sink.getvalue().to_pybytes()], pa.binary()),
            }
        )

    return pack


def _unpack(payload: bytes) -> pd.DataFrame:
    with pa.ipc.open_stream(payload) as reader:
        return reader.read_all().to_pandas(date_as_object=False)


def _by_slice(
    book: SparkBook,
    names: Sequence[str],
    run: Callable[[Book], pd.DataFrame],
    schema: T.StructType,
    partitions: int | None,
) -> DataFrame:
    """``run`` on the Book of each slice of accounts; the results, as one DataFrame of ``schema``."""
    n = int(partitions or book.spark.conf.get("spark.sql.shuffle.partitions"))
    shared = book._shared
    columns = book._columns()
    currency = book.currency
    arrow_schema = to_arrow_schema(schema)
    packed = None
    for name, sdf in book._slices(names, n).items():
        part = sdf.groupBy("_slice").applyInArrow(_pack(name), _PACKED)
        packed = part if packed is None else packed.unionByName(part)

    def run_slice(rows: pa.Table) -> pa.Table:
        payloads = dict(zip(rows.column("_table").to_pylist(), rows.column("_payload").to_pylist(), strict=True))
        frames = {}
        for name in TABLES:
            if name in shared:
                frames[name] = shared[name]
                continue
            raw = _unpack(payloads[name]) if name in payloads else pd.DataFrame(columns=columns[name])
            frames[name] = conform(raw, name)
        result = _to_spark_frame(run(Book(**frames, currency=currency)), schema)
        return pa.Table.from_pandas(result, schema=arrow_schema, preserve_index=False)

    return packed.groupBy("_slice").applyInArrow(run_slice, schema)


def _to_spark_frame(frame: pd.DataFrame, schema: T.StructType) -> pd.DataFrame:
    """A result frame with exactly ``schema``'s columns: text as ``str`` (missing as None), dates, numbers."""
    out = {}
    for f in schema.fields:
        if f.name in frame.columns:
            s = frame[f.name]
        else:
            s = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if isinstance(f.dataType, T.StringType):
            # A category held as True/False (is_government) becomes the text the model reads it as.
            s = s.astype("string").astype(object)
            s = s.where(s.notna(), None)
        elif isinstance(f.dataType, T.DateType):
            s = pd.to_datetime(s)  # Arrow stores it as a date
        elif isinstance(f.dataType, T.DoubleType):
            s = pd.to_numeric(s).astype("float64")
        elif isinstance(f.dataType, T.LongType):
            s = pd.to_numeric(s).astype("Int64")
        out[f.name] = s.array
    return pd.DataFrame(out, index=range(len(frame)))


def _keys(by) -> list[str]:
    return [] if by is None else ([by] if isinstance(by, str) else list(by))


def _key_fields(keys: Sequence[str]) -> list[T.StructField]:
    kinds = _kinds("accounts", keys)
    return [T.StructField(k, _SPARK_TYPES.get(kinds.get(k, "id"), T.StringType())) for k in keys]


def _required_end(end, what: str) -> pd.Timestamp:
    if end is None:
        raise ValueError(f"{what} on Spark needs an explicit end: the last month to report")
    return pd.Timestamp(end)


def mrr_table(
    book: SparkBook,
    start=None,
    end=None,
    by=("account_id",),
    *,
    churn_at: str = "term_end",
    customer: str = "account",
    fx: str = "booked",
    fx_date=None,
    partitions: int | None = None,
) -> DataFrame:
    """:func:`renewforecast.mrr_table` on Spark: MRR at each month end, to the cent the same.

    Parameters
    ----------
    book : SparkBook
    start, end : date-like
        As in the single-machine function; ``end`` is required (a slice
        does not know the whole Book's data end).
    by, churn_at, customer, fx, fx_date
        As in :func:`renewforecast.mrr_table`.
    partitions : int, optional
        Slices of accounts (default ``spark.sql.shuffle.partitions``).

    Returns
    -------
    pyspark.sql.DataFrame
        ``month`` (date), the ``by`` columns, ``mrr``: the same rows as the
        single-machine function. Groups of one account or contract come
        whole from one slice; other groupings (``by=("segment",)``, ``()``)
        are summed over slices and rounded to 6 decimals as there.

    Examples
    --------
    >>> import renewforecast as rf
    >>> from pyspark.sql import SparkSession
    >>> book = SparkBook.from_book(rf.Book.empty(), SparkSession.builder.master("local[2]").getOrCreate())
    >>> mrr_table(book, end="2024-12-31").columns
    ['month', 'account_id', 'mrr']
    """
    end = _required_end(end, "mrr_table")
    keys = _keys(by)
    local = "account_id" in keys or "contract_id" in keys
    schema = T.StructType(
        [T.StructField("month", T.DateType()), *_key_fields(keys), T.StructField("mrr", T.DoubleType())]
    )

    def run(slice_book: Book) -> pd.DataFrame:
        return mrr_frame(slice_book, start, end, by=keys, churn_at=churn_at, customer=customer, fx=fx, fx_date=fx_date)

    out = _by_slice(book, _LEDGER_TABLES, run, schema, partitions)
    if local:
        return out
    return out.groupBy("month", *keys).agg(F.round(F.sum("mrr"), 6).alias("mrr"))


def mrr_movements(
    book: SparkBook,
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
    partitions: int | None = None,
) -> DataFrame:
    """:func:`renewforecast.mrr_movements` on Spark: the monthly MRR bridge, to the cent the same.

    Parameters
    ----------
    book : SparkBook
    start, end : date-like
        ``end`` is required.
    by, churn_at, reactivation_months, same_month, customer, fx, fx_date
        As in :func:`renewforecast.mrr_movements`.
    partitions : int, optional
        Slices of accounts (default ``spark.sql.shuffle.partitions``).

    Returns
    -------
    pyspark.sql.DataFrame
        The single-machine function's columns. Per customer (``by=None``)
        every row comes whole from one slice; grouped, the amounts and
        counts of each slice are summed.

    Examples
    --------
    >>> import renewforecast as rf
    >>> from pyspark.sql import SparkSession
    >>> book = SparkBook.from_book(rf.Book.empty(), SparkSession.builder.master("local[2]").getOrCreate())
    >>> mrr_movements(book, end="2024-12-31", by="segment").columns[:4]
    ['month', 'segment', 'start_mrr', 'new']
    """
    end = _required_end(end, "mrr_movements")
    keys = _keys(by)
    amounts = ["start_mrr", *MOVEMENTS, "fx_effect", "end_mrr"]
    counts = ["customers_start", "customers_end", *[f"n_{m}" for m in MOVEMENTS]]
    fields = [T.StructField("month", T.DateType())]
    fields += _key_fields(["account_id"] if by is None else keys)
    fields += [T.StructField(c, T.DoubleType()) for c in amounts]
    if by is not None:
        fields += [T.StructField(c, T.LongType()) for c in counts]

    def run(slice_book: Book) -> pd.DataFrame:
        return movements_frame(
            slice_book,
            start,
            end,
            by=by,
            churn_at=churn_at,
            reactivation_months=reactivation_months,
            same_month=same_month,
            customer=customer,
            fx=fx,
            fx_date=fx_date,
        )

    out = _by_slice(book, _LEDGER_TABLES, run, T.StructType(fields), partitions)
    if by is None:
        return out
    sums = [F.round(F.sum(c), 6).alias(c) for c in amounts] + [F.sum(c).cast("long").alias(c) for c in counts]
    return out.groupBy("month", *keys).agg(*sums)


_FACTS = T.StructType(
    [
        T.StructField("product_id", T.StringType()),
        T.StructField("quarter", T.DateType()),
        T.StructField("annual_value", T.DoubleType()),
        T.StructField("signal_rows", T.LongType()),
        T.StructField("history_rows", T.LongType()),
    ]
)
_PEERS = T.StructType(
    [
        T.StructField("product_id", T.StringType()),
        T.StructField("quarter", T.DateType()),
        T.StructField("peer", T.DoubleType()),
    ]
)


def _medians(lines: pd.DataFrame) -> pd.DataFrame:
    lines = lines.assign(quarter=pd.to_datetime(lines["quarter"]))
    return peer_prices(lines).reset_index()


def _whole_book(book: SparkBook, cut: pd.Timestamp, partitions: int | None) -> WholeBook:
    """The facts every slice's features need, pooled from all slices."""
    facts = _by_slice(book, _FEATURE_TABLES, lambda b: whole_book_facts(b, cut), _FACTS, partitions).persist()
    try:
        lines = facts.where(F.col("product_id").isNotNull())
        peers = lines.groupBy("product_id", "quarter").applyInPandas(_medians, _PEERS).toPandas()
        totals = facts.where(F.col("product_id").isNull()).agg(
            F.sum("signal_rows").alias("s"), F.sum("history_rows").alias("h")
        )
        row = totals.first()
    finally:
        facts.unpersist()
    index = pd.MultiIndex.from_arrays(
        [peers["product_id"].astype(object), pd.to_datetime(peers["quarter"])], names=["product_id", "quarter"]
    )
    return WholeBook(
        peers=pd.Series(peers["peer"].to_numpy(dtype="float64"), index=index, name="peer"),
        signals=bool(row["s"] or 0),
        stage_history=bool(row["h"] or 0),
    )


def _feature_schema(book: SparkBook, whole: WholeBook, signals) -> tuple[T.StructType, list[str]]:
    """Columns of the features, found by featurising no contract of an empty Book shaped like ``book``."""
    columns = book._columns()
    shaped = Book(**{n: conform(pd.DataFrame(columns=columns[n]), n) for n in TABLES}, currency=book.currency)
    empty = featurise_contracts(
        shaped, shaped.contracts, pd.Series(dtype="datetime64[ns]"), signals=signals, whole=whole
    )
    fields = [
        T.StructField("contract_id", T.StringType()),
        T.StructField("account_id", T.StringType()),
        T.StructField("end_date", T.DateType()),
    ]
    for name, dtype in empty.dtypes.items():
        kind = T.DoubleType() if pd.api.types.is_float_dtype(dtype) else T.StringType()
        fields.append(T.StructField(str(name), kind))
    return T.StructType(fields), list(empty.columns)


def renewal_features(
    book: SparkBook,
    as_of,
    *,
    signals: Iterable[str] | None = None,
    partitions: int | None = None,
) -> DataFrame:
    """:func:`renewforecast.renewal_features` on Spark: features of the contracts still to be renewed.

    Parameters
    ----------
    book : SparkBook
    as_of : date-like
    signals : iterable of str, optional
        As in the single-machine function.
    partitions : int, optional
        Slices of accounts (default ``spark.sql.shuffle.partitions``).

    Returns
    -------
    pyspark.sql.DataFrame
        ``contract_id``, the contract's ``account_id`` and ``end_date`` (so
        that :func:`score_contracts` carries them), then the feature columns
        of the single-machine function with the same values: numbers as
        doubles, categories as text (``is_government`` as ``"True"`` /
        ``"False"``, which the model reads as the same category).

    Examples
    --------
    >>> import renewforecast as rf
    >>> from pyspark.sql import SparkSession
    >>> book = SparkBook.from_book(rf.Book.empty(), SparkSession.builder.master("local[2]").getOrCreate())
    >>> renewal_features(book, "2024-06-30", partitions=1).columns[:4]
    ['contract_id', 'account_id', 'end_date', 'segment']
    """
    cut = pd.Timestamp(as_of).normalize()
    signals = None if signals is None else list(signals)
    whole = _whole_book(book, cut, partitions)
    schema, names = _feature_schema(book, whole, signals)

    def run(slice_book: Book) -> pd.DataFrame:
        feats = features_frame(slice_book, cut, signals=signals, whole=whole)
        con = slice_book.contracts.drop_duplicates("contract_id").set_index("contract_id")
        out = feats.reindex(columns=names)
        out.insert(0, "end_date", feats.index.map(con["end_date"]))
        out.insert(0, "account_id", feats.index.map(con["account_id"]))
        return out.reset_index(names="contract_id")

    return _by_slice(book, _FEATURE_TABLES, run, schema, partitions)


_SCORE_SCHEMA = T.StructType(
    [
        T.StructField(
            c,
            {
                "end_date": T.DateType(),
                "arr": T.DoubleType(),
                "renewal_probability": T.DoubleType(),
                "expected_renewal_arr": T.DoubleType(),
                "arr_at_risk": T.DoubleType(),
                "scored_at": T.TimestampType(),
            }.get(c, T.StringType()),
        )
        for c in SCORE_COLUMNS
    ]
)
_MODELS: dict[str, Any] = {}


def _model_files(path: str | Path) -> dict[str, bytes]:
    """The saved model's files (manifest included), after every check of :func:`load_model` on the driver."""
    load_model(path)
    manifest = load_manifest(path)
    folder = Path(manifest["_folder"])
    names = ["manifest.json", *manifest["files"]]
    return {name: (folder / name).read_bytes() for name in names}


def _executor_model(files: Mapping[str, bytes]) -> Any:
    """The broadcast model, loaded once per Python worker through the registry's checks."""
    digest = hashlib.sha256(b"".join(files[n] for n in sorted(files))).hexdigest()
    if digest not in _MODELS:
        folder = Path(tempfile.mkdtemp(prefix="renewforecast-model-"))
        for name, data in files.items():
            (folder / name).write_bytes(data)
        _MODELS[digest] = load_model(folder)
    return _MODELS[digest]


def score_contracts(
    features: DataFrame,
    model: str | Path = "models/renewal",
    *,
    bands=DEFAULT_BANDS,
    scored_at=None,
) -> DataFrame:
    """:func:`renewforecast.score_contracts` on Spark: probability, risk and reasons per contract.

    The saved model is loaded on the driver with every check of
    :func:`renewforecast.load_model`, its files are broadcast once, and each
    executor loads them through the same checks (once per Python worker).
    Each partition of ``features`` is scored with ``mapInPandas`` by the
    single-machine function, so the probabilities are bit for bit the same.

    Parameters
    ----------
    features : pyspark.sql.DataFrame
        :func:`renewal_features` output, or any frame with ``contract_id``
        and the model's feature columns (``account_id``, ``end_date`` and
        ``arr`` are carried when present).
    model : path, default "models/renewal"
        A saved model folder.
    bands, scored_at
        As in the single-machine function; ``scored_at`` defaults to now
        (UTC), one stamp for every partition.

    Returns
    -------
    pyspark.sql.DataFrame
        :data:`renewforecast.analyses.scoring.SCORE_COLUMNS`.

    Raises
    ------
    ScoringInputError
        Before any Spark job, when ``features`` lacks a column the model needs.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, renewforecast as rf
    >>> from pyspark.sql import SparkSession
    >>> spark = SparkSession.builder.master("local[2]").getOrCreate()
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"seat_utilization": rng.random(300), "segment": rng.choice(["SMB", "Enterprise"], 300)})
    >>> y = (X["seat_utilization"] + 0.3 * rng.standard_normal(300) > 0.4).astype(int)
    >>> folder = rf.save_model(rf.RenewalModel(random_state=0).fit(X, y), tempfile.mkdtemp() + "/renewal")
    >>> features = spark.createDataFrame(X.head(4).assign(contract_id=["c1", "c2", "c3", "c4"]))
    >>> scores = score_contracts(features, folder.parent).toPandas()
    >>> scores["contract_id"].tolist(), bool(scores["renewal_probability"].between(0, 1).all())
    (['c1', 'c2', 'c3', 'c4'], True)
    """
    files = _model_files(model)
    needed = list(_executor_model(files).feature_names_in_)
    missing = [c for c in ["contract_id", *needed] if c not in features.columns]
    if missing:
        raise ScoringInputError(f"the feature frame lacks {len(missing)} column(s) the model needs: {missing[:20]}")
    stamp = pd.Timestamp(scored_at) if scored_at is not None else pd.Timestamp.now(tz="UTC").floor("s")
    shipped = features.sparkSession.sparkContext.broadcast(files)
    bands = tuple(bands)
    schema = features.schema

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = _executor_model(shipped.value)
        for batch in batches:
            frame = _from_spark(batch, schema).set_index("contract_id")
            yield _to_spark_frame(score_frame(frame, model=fitted, bands=bands, scored_at=stamp), _SCORE_SCHEMA)

    return features.mapInPandas(score, _SCORE_SCHEMA)


# ------------------------------------------------------------ replicated schemas

#: Objects every slice of a replica gets whole: they become the shared tables (products, spend, fx_rates).
_SHARED_OBJECTS = ("products", "spend", "fx", "fx_dated")
#: The column of a task's report (a row of its own) in the frames below.
_META = "_rf_meta"
_PROBLEMS = "_problems"


@dataclass(frozen=True)
class _Replicated:
    """One replicated object found: its table, how the loader reads it, and whether it is sliced."""

    index: int
    api: str
    obj: SfObject
    name: str
    read: tuple[str, ...]  # the columns read (the layout's data, deletion, version columns)
    shape: ReplicaTable  # read from no rows: the fields its columns hold, its data columns and row order
    links: dict[str, str]  # canonical column -> column of the table (field_map applied)

    @property
    def sliced(self) -> bool:
        return self.obj.table not in _SHARED_OBJECTS

    @property
    def data(self) -> list[str]:
        return list(self.shape.raw.columns)

    @property
    def part(self) -> str:
        """Its column in a frame that carries several tables side by side (:func:`_stacked`)."""
        return f"_rf{self.index}"


def _ident(column: str) -> str:
    """A column name as Spark SQL quotes it (expressions as text cost one call to Spark, not one per column)."""
    return "`" + column.replace("`", "``") + "`"


def _quoted(column: str) -> F.Column:
    return F.col(_ident(column))


def _struct_type(fields: Iterable[tuple[str, str]]) -> str:
    """A struct's type in Spark SQL, from (field, type) pairs."""
    return "struct<" + ",".join(f"{_ident(name)}:{kind}" for name, kind in fields) + ">"


def _side_by_side(own: str | None, parts: Mapping[str, tuple[list[str], str]]) -> list[str]:
    """``SELECT`` items: the columns of ``own`` as one struct in its column, the others' columns null.

    ``parts`` maps each column to the columns it gathers and its struct's type.
    """
    return [
        f"struct({', '.join(map(_ident, columns))}) AS {_ident(name)}"
        if name == own
        else f"CAST(NULL AS {kind}) AS {_ident(name)}"
        for name, (columns, kind) in parts.items()
    ]


def _combined(column: Any) -> pa.Array:
    """A column as one Arrow array (a table's columns come in chunks)."""
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _row_keys(frame: pd.DataFrame, order: Sequence[str]) -> list[str]:
    """Each row's place in its table's order as one text (blank first, columns joined by NUL)."""
    if not order:
        return [""] * len(frame)
    return ["\0".join("" if v is None else str(v) for v in row) for row in zip(*(frame[c] for c in order), strict=True)]


def _key_sql(order: Sequence[str]) -> str:
    """:func:`_row_keys` in Spark SQL: strings compare by code point in both."""
    if not order:
        return "''"
    return "concat(" + ", char(0), ".join(f"coalesce({_ident(c)}, '')" for c in order) + ")"


def _union(frames: Iterable[DataFrame]) -> DataFrame | None:
    """Frames of the same columns, in the same order, one under the other."""
    out = None
    for sdf in frames:
        out = sdf if out is None else out.union(sdf)
    return out


def _stacked(pieces: Sequence[tuple[str, str | None, Mapping[str, Any], int]], schema: pa.Schema) -> pa.Table:
    """Pieces (table, report, its columns, rows) one under the other in ``schema``, other columns null.

    Several tables travel as one Spark frame so that one Python stage serves
    them all: each row holds one table's record (named in ``_table``) in that
    table's struct column, or a task's report (``_rf_meta``).
    """
    arrays = []
    for f in schema:
        parts = []
        for label, meta, columns, n in pieces:
            if f.name == "_table":
                parts.append(pa.array([label] * n, f.type))
            elif f.name == _META:
                parts.append(pa.array([meta] * n, f.type))
            elif f.name in columns:
                parts.append(_combined(columns[f.name].cast(f.type)))
            else:
                parts.append(pa.nulls(n, f.type))
        arrays.append(pa.concat_arrays(parts) if parts else pa.array([], f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _source_tables(spark: SparkSession, source: str | Mapping[str, DataFrame]):
    """Table name -> DataFrame, what messages call the source, and the database."""
    if isinstance(source, str):
        names = [t.name for t in spark.catalog.listTables(source) if not t.isTemporary]
        return {n: spark.table(f"{source}.`{n}`") for n in names}, "the Spark catalog", source
    return dict(source), "the DataFrames given", None


def _current_records(
    tables: Mapping[str, DataFrame], reps: Sequence[_Replicated], layout: ReplicaLayout, n: int
) -> DataFrame:
    """Every object's current records as API text, side by side (:func:`_stacked`), and one report per task.

    The versions of one ``Id`` all go to one task, which applies the
    warehouse reader's rules to them
    (:func:`renewforecast.io.warehouse.replica_table`: latest version, soft
    deletes, rendering). Its report (``_rf_meta``) holds its counts
    (records kept, soft-deleted, superseded) and, per currency, its records
    and the first one's key.
    """
    sources = {}
    for rep in reps:
        kinds = {f.name: f.dataType.simpleString() for f in tables[rep.name].schema}
        sources[rep.part] = (list(rep.read), _struct_type((c, kinds[c]) for c in rep.read))
    parts = []
    for rep in reps:
        id_col = rep.shape.columns.get(rep.obj.id_field) if rep.obj.id_field else None
        if id_col in rep.read:
            record = f"coalesce(trim(CAST({_ident(id_col)} AS STRING)), '')"
        else:
            record = "xxhash64(" + ", ".join(_ident(c) for c in rep.read) + ")"  # no record id: nothing to choose
        parts.append(
            tables[rep.name].selectExpr(
                f"'{rep.api}' AS _table",
                f"pmod(xxhash64({record}), {n}) AS _rf_bucket",
                *_side_by_side(rep.part, sources),
            )
        )
    by_api = {rep.api: rep for rep in reps}
    texts = {rep.part: pa.struct([(c, pa.string()) for c in rep.data]) for rep in reps}
    schema = pa.schema([("_table", pa.string()), (_META, pa.string()), *texts.items()])

    def current(table: pa.Table) -> pa.Table:
        rep = by_api[table.column("_table")[0].as_py()]
        source = _combined(table.column(rep.part))
        read = replica_table(rep.name, rep.api, {c: source.field(c).to_pylist() for c in rep.read}, layout, rep.obj)
        frame = read.raw.frame
        currencies: dict[str, list] = {}
        code_column = rep.links.get("_currency")
        if code_column is not None and len(frame):
            for code, key in zip(frame[code_column], _row_keys(frame, read.order), strict=True):
                if code is not None:
                    seen = currencies.setdefault(code, [0, key])
                    seen[0] += 1
                    seen[1] = min(seen[1], key)
        meta = {"rows": len(frame), "deleted": read.deleted, "superseded": read.superseded, "currencies": currencies}
        text = pa.StructArray.from_arrays(
            [pa.array(frame[c].tolist(), pa.string()) for c in rep.data], fields=list(texts[rep.part])
        )
        return _stacked([(rep.api, None, {rep.part: text}, len(frame)), (rep.api, json.dumps(meta), {}, 1)], schema)

    spark_schema = T.StructType(
        [
            T.StructField("_table", T.StringType()),
            T.StructField(_META, T.StringType()),
            *(
                T.StructField(rep.part, T.StructType([T.StructField(c, T.StringType()) for c in rep.data]))
                for rep in reps
            ),
        ]
    )
    return _union(parts).groupBy("_table", "_rf_bucket").applyInArrow(current, spark_schema)


def _first_lines(
    rows: Mapping[str, DataFrame], order: Mapping[str, Sequence[str]], wanted: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, int]]:
    """For each table and key: 1 + the rows of the whole table whose key sorts before it (one Spark job)."""
    ordered = {api: sorted(set(keys)) for api, keys in wanted.items()}
    ordered = {api: keys for api, keys in ordered.items() if keys}
    if not ordered:
        return {}
    keyed = _union(rows[api].selectExpr(f"'{api}' AS t", f"{_key_sql(order[api])} AS k") for api in ordered)
    arrays = {api: np.array(keys, dtype=object) for api, keys in ordered.items()}

    def positions(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # a row's bucket: how many of the wanted keys are at or before its key
        for batch in batches:
            table = pa.Table.from_batches([batch])
            for api in pc.unique(table.column("t")).to_pylist():
                keys = table.filter(pc.equal(table.column("t"), api)).column("k").to_numpy(zero_copy_only=False)
                found = np.searchsorted(arrays[api], keys.astype(object), side="right")
                yield pa.RecordBatch.from_pydict(
                    {"t": [api] * len(found), "b": found.astype(np.int64)},
                    schema=pa.schema([("t", pa.string()), ("b", pa.int64())]),
                )

    schema = T.StructType([T.StructField("t", T.StringType()), T.StructField("b", T.LongType())])
    counts = keyed.mapInArrow(positions, schema).groupBy("t", "b").count().collect()
    out: dict[str, dict[str, int]] = {}
    for api, keys in ordered.items():
        hist = np.zeros(len(keys) + 1, dtype=np.int64)
        for row in counts:
            if row["t"] == api:
                hist[int(row["b"])] += int(row["count"])
        before = np.cumsum(hist)
        out[api] = {k: 1 + int(before[j]) for j, k in enumerate(keys)}
    return out


def _components(edges: pd.DataFrame) -> pd.DataFrame:
    """Each linked account and the first account (in code-point order) of the accounts linked to it."""
    if edges.empty:
        return pd.DataFrame({"_rf_member": pd.Series(dtype=object), "_rf_root": pd.Series(dtype=object)})
    codes, uniques = pd.factorize(pd.concat([edges["a"], edges["b"]], ignore_index=True), sort=True)
    ids = np.asarray(uniques, dtype=object)
    n, m = len(ids), len(edges)
    graph = coo_matrix((np.ones(m), (codes[:m], codes[m:])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # ids are sorted, so a component's smallest position is its smallest id
    first = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy()
    return pd.DataFrame({"_rf_member": ids, "_rf_root": ids[first]})


def _slices_of_records(spark: SparkSession, rows: Mapping[str, DataFrame], reps: Mapping[str, _Replicated], n: int):
    """Each sliced object's records with ``_slice``: the hash of the first account linked to their account.

    A record's account is its own (accounts, contracts, opportunities,
    signals), its contract's (subscriptions, else their own account), its
    opportunity's (products, stage history) or its line's (schedules).
    Accounts are linked by hierarchies, by an opportunity renewing or
    amending another account's contract, by a contract created by another
    account's opportunity and by a subscription billed to, or revising a
    subscription of, another account: linked accounts share one slice, so
    every reference the loader checks stays inside a slice.
    """

    def link(api: str, column: str) -> F.Column:
        source = reps[api].links.get(column)
        return _quoted(source) if source else F.lit(None).cast("string")

    def lookup(api: str, key: str) -> DataFrame | None:
        if api not in rows:
            return None
        return rows[api].select(link(api, key).alias("_rf_k"), link(api, "account_id").alias("_rf_acct"))

    def via(sdf: DataFrame, key: F.Column, table: DataFrame | None, alias: str) -> DataFrame:
        """``sdf`` with column ``alias``: the account ``table`` gives ``key``."""
        if table is None:
            return sdf.withColumn(alias, F.lit(None).cast("string"))
        right = table.where(F.col("_rf_k").isNotNull()).select(
            F.col("_rf_k").alias(f"{alias}_k"), F.col("_rf_acct").alias(alias)
        )
        keyed = sdf.withColumn(f"{alias}_via", key)
        joined = keyed.join(right, F.col(f"{alias}_via") == F.col(f"{alias}_k"), "left")
        return joined.drop(f"{alias}_via", f"{alias}_k")

    contracts = lookup("Contract", "contract_id")
    opportunities = lookup("Opportunity", "opportunity_id")
    owned: dict[str, DataFrame] = {}
    edges: list[DataFrame] = []
    for api in ("Account", "Contract", "Opportunity", "signals"):
        if api in rows:
            owned[api] = rows[api].withColumn("_rf_owner", link(api, "account_id"))
    if "Account" in rows:
        edges.append(
            rows["Account"].select(
                link("Account", "account_id").alias("a"), link("Account", "parent_account_id").alias("b")
            )
        )
    if "SBQQ__Subscription__c" in rows:
        api = "SBQQ__Subscription__c"
        subs = via(rows[api], link(api, "contract_id"), contracts, "_rf_cacc")
        subs = subs.withColumn("_rf_owner", F.coalesce("_rf_cacc", link(api, "account_id")))
        edges.append(subs.select(F.col("_rf_cacc").alias("a"), link(api, "account_id").alias("b")))
        revised = subs.select(link(api, "subscription_id").alias("_rf_k"), F.col("_rf_owner").alias("_rf_acct"))
        edges.append(
            via(subs, link(api, "revised_subscription_id"), revised, "_rf_racc").select(
                F.col("_rf_owner").alias("a"), F.col("_rf_racc").alias("b")
            )
        )
        owned[api] = subs.drop("_rf_cacc")
    if "Opportunity" in rows:
        api = "Opportunity"
        for column in ("renewed_contract_id", "amended_contract_id"):
            edges.append(
                via(rows[api], link(api, column), contracts, "_rf_cacc").select(
                    link(api, "account_id").alias("a"), F.col("_rf_cacc").alias("b")
                )
            )
    if "Contract" in rows:
        api = "Contract"
        edges.append(
            via(rows[api], link(api, "_source_opportunity_id"), opportunities, "_rf_oacc").select(
                link(api, "account_id").alias("a"), F.col("_rf_oacc").alias("b")
            )
        )
    for api in ("OpportunityLineItem", "OpportunityHistory"):
        if api in rows:
            owned[api] = via(rows[api], link(api, "opportunity_id"), opportunities, "_rf_owner")
    if "OpportunityLineItemSchedule" in rows:
        api = "OpportunityLineItemSchedule"
        lines = owned.get("OpportunityLineItem")
        table = (
            None
            if lines is None
            else lines.select(
                link("OpportunityLineItem", "line_id").alias("_rf_k"), F.col("_rf_owner").alias("_rf_acct")
            )
        )
        owned[api] = via(rows[api], link(api, "line_id"), table, "_rf_owner")

    pairs = _union(edges)
    found = pd.DataFrame({"a": [], "b": []}, dtype=object)
    if pairs is not None:
        linked = pairs.where(F.col("a").isNotNull() & F.col("b").isNotNull() & (F.col("a") != F.col("b")))
        found = linked.distinct().toPandas()
    roots = _components(found)
    root_sdf = None
    if len(roots):
        root_sdf = spark.createDataFrame(roots, T.StructType([T.StructField(c, T.StringType()) for c in roots.columns]))
    out = {}
    for api, sdf in owned.items():
        if root_sdf is not None:
            sdf = sdf.join(F.broadcast(root_sdf), F.col("_rf_owner") == F.col("_rf_member"), "left")
        else:
            sdf = sdf.withColumn("_rf_root", F.lit(None).cast("string"))
        # a record without an account (an error the loader reports) hashes its own key
        top = f"coalesce(_rf_root, _rf_owner, {_key_sql(reps[api].shape.order)})"
        out[api] = sdf.selectExpr(*(_ident(c) for c in reps[api].data), f"pmod(xxhash64({top}), {n}) AS _slice")
    return out


def _snapshot_of(
    snapshot: ReplicaSnapshot,
    reps: Sequence[_Replicated],
    values: Mapping[str, Mapping[str, list]],
    stats: Mapping[str, Mapping[str, int]],
) -> ReplicaSnapshot:
    """A snapshot holding ``values`` of each object (none when absent), with the whole tables' counts."""
    snap = ReplicaSnapshot(snapshot.source, snapshot.schema, snapshot.layout, list(snapshot.found))
    for rep in reps:
        read = replica_table(
            rep.name, rep.api, values.get(rep.api) or {c: [] for c in rep.data}, snapshot.layout, rep.obj
        )
        counts = stats[rep.api]
        snap.tables[rep.api] = replace(read, deleted=counts["deleted"], superseded=counts["superseded"])
    return snap


def _slice_loader(
    reps: Sequence[_Replicated],
    snapshot: ReplicaSnapshot,
    shared: Any,
    stats: Mapping[str, Mapping[str, int]],
    totals: ReplicaTotals,
    settings: dict[str, Any],
    schema: pa.Schema,
) -> Callable[[pa.Table], pa.Table]:
    """The loader run on one slice's records, with the shared objects whole and the whole tables' totals."""
    sliced = {r.name: r for r in reps if r.sliced}

    def load(table: pa.Table) -> pa.Table:
        labels = table.column("_table")
        values = dict(shared.value)
        for rep in sliced.values():
            records = _combined(table.filter(pc.equal(labels, rep.api)).column(rep.part))
            values[rep.api] = {c: records.field(c).to_pylist() for c in rep.data}
        snap = _snapshot_of(snapshot, reps, values, stats)
        try:
            book = load_replica(snap, totals=totals, **settings)
        except BookValidationError as exc:
            keys: dict[str, list[str]] = {}
            errors = [_problem_record(p, snap, sliced, keys) for p in exc.problems]
            report = {"currency": None, "errors": errors}
            return _stacked([(_PROBLEMS, json.dumps(report), {}, 1)], schema)
        pieces = [(_PROBLEMS, json.dumps({"currency": book.currency, "errors": []}), {}, 1)]
        for name in ACCOUNT_TABLES:
            arrow = _arrow_table(book.tables[name], name)
            kind = schema.field(f"_rf_{name}").type
            if arrow.schema != pa.schema(list(kind)):
                raise RuntimeError(f"the loader gave {name} other columns than the Book read without records")
            records = pa.StructArray.from_arrays([_combined(c) for c in arrow.columns], fields=list(kind))
            pieces.append((name, None, {f"_rf_{name}": records}, len(arrow)))
        return _stacked(pieces, schema)

    return load


def _problem_record(
    problem: Problem, snap: ReplicaSnapshot, sliced: Mapping[str, _Replicated], cache: dict[str, list[str]]
) -> dict:
    """A slice's problem, with its row's key (and rank among equal keys) where its line counts the slice's rows.

    A sliced table's lines count the slice's rows; the rules of whole
    tables (:data:`renewforecast.io.loader.WHOLE_TABLE_RULES`) name lines of
    the whole tables already, and the shared tables are whole in every slice.
    """
    record = asdict(problem)
    rep = sliced.get(problem.file)
    if rep is None or problem.line is None or problem.rule in WHOLE_TABLE_RULES:
        return record
    if rep.api not in cache:
        table = snap.tables[rep.api]
        cache[rep.api] = _row_keys(table.raw.frame, table.order)
    keys = cache[rep.api]
    row = int(problem.line) - 1
    first = row
    while first > 0 and keys[first - 1] == keys[row]:
        first -= 1
    record.update(api=rep.api, key=keys[row], tie=row - first)
    return record


def _replicated(
    snapshot: ReplicaSnapshot, columns: Mapping[str, Sequence[str]], field_map: dict | None
) -> list[_Replicated]:
    """The objects the project reads that the schema holds, each as the loader will read it."""
    lower = {name.lower(): name for name in columns}
    reps: list[_Replicated] = []
    for obj in SALESFORCE_OBJECTS.values():
        api = Path(obj.file).stem
        name = lower.get(snapshot.expected(api).lower())
        if name is None:
            continue
        read = tuple(snapshot.layout.read_columns(columns[name]))
        shape = replica_table(name, api, {c: [] for c in read}, snapshot.layout, obj)
        reps.append(_Replicated(len(reps), api, obj, name, read, shape, replica_columns(obj, shape, field_map)))
    return reps


def _loaded_schema(kept: Mapping[str, Sequence[str]]) -> tuple[pa.Schema, T.StructType]:
    """The frame the slices give: their reports, and each account table's records side by side (:func:`_stacked`)."""
    head = [("_table", pa.string()), (_META, pa.string())]
    arrow = pa.schema(
        head
        + [
            (f"_rf_{name}", pa.struct([(c, _ARROW_TYPES[k]) for c, k in _kinds(name, cols).items()]))
            for name, cols in kept.items()
        ]
    )
    spark = T.StructType(
        [T.StructField(c, T.StringType()) for c, _ in head]
        + [T.StructField(f"_rf_{name}", _spark_schema(name, cols)) for name, cols in kept.items()]
    )
    return arrow, spark


def _from_replica(
    spark: SparkSession,
    source: str | Mapping[str, DataFrame],
    *,
    layout: str,
    currency: str | None,
    partitions: int | None,
    options: dict[str, Any],
    window: tuple[object, object] | None,
) -> SparkBook:
    n = int(partitions or spark.conf.get("spark.sql.shuffle.partitions"))
    tables, where, database = _source_tables(spark, source)
    columns = {name: sdf.columns for name, sdf in tables.items()}
    found = sorted(tables)
    where_exactly = f"database {database} of {where}" if database else where
    chosen = replica_layout(columns, layout=layout, where=where_exactly, found=found)
    snapshot = ReplicaSnapshot(where, database, chosen, found)
    reps = _replicated(snapshot, columns, options["field_map"])
    by_api = {r.api: r for r in reps}
    settings = {**options, "currency": currency, "date_window": date_window(*(window or (None, None)))}
    current = _current_records(tables, reps, chosen, n).persist(StorageLevel.MEMORY_AND_DISK)
    loaded = None
    try:
        # 1. one job reads every table once and keeps its current records: their counts and currencies
        stats = {r.api: {"rows": 0, "deleted": 0, "superseded": 0} for r in reps}
        firsts: dict[str, dict[str, list]] = {}
        for row in current.where(F.col(_META).isNotNull()).select("_table", _META).collect():
            meta = json.loads(row[_META])
            for k in stats[row["_table"]]:
                stats[row["_table"]][k] += int(meta[k])
            for code, (count, key) in meta["currencies"].items():
                seen = firsts.setdefault(row["_table"], {}).setdefault(code, [0, key])
                seen[0] += count
                seen[1] = min(seen[1], key)
        records = current.where(F.col(_META).isNull())
        rows = {r.api: records.where(F.col("_table") == r.api).selectExpr(f"{r.part}.*") for r in reps}
        order = {r.api: r.shape.order for r in reps}

        # 2. the shared objects, whole, to every slice; read without the others, they give the shared tables
        common = [r for r in reps if not r.sliced]
        shared: dict[str, dict[str, list]] = {}
        if common:
            common_rows = records.where(F.col("_table").isin([r.api for r in common]))
            arrow = common_rows.select("_table", *(r.part for r in common)).toArrow()
            for r in common:
                part = _combined(arrow.filter(pc.equal(arrow.column("_table"), r.api)).column(r.part))
                shared[r.api] = {c: part.field(c).to_pylist() for c in r.data}
        # each currency's first line is counted only when a problem will name it
        totals = _totals(stats, firsts, {}, by_api)
        out: dict[str, DataFrame] = {}
        try:
            alone = load_replica(_snapshot_of(snapshot, reps, shared, stats), totals=totals, **settings)
        except BookValidationError as exc:
            alone = None  # every slice finds these problems too, and reports them with its own
            if any(p.rule in WHOLE_TABLE_RULES for p in exc.problems):
                wanted = {api: [key for _, key in codes.values()] for api, codes in firsts.items()}
                totals = _totals(stats, firsts, _first_lines(rows, order, wanted), by_api)
        else:
            for name in SHARED_TABLES:
                arrow = _arrow_table(alone.tables[name], name)
                out[name] = spark.createDataFrame(arrow, schema=_spark_schema(name, arrow.column_names))
        # the columns the loader gives each account table, as it gave them without records
        kept = {
            name: list(_kinds(name, [c.name for c in TABLES[name].columns] if alone is None else alone.tables[name]))
            for name in ACCOUNT_TABLES
        }
        schema, spark_schema = _loaded_schema(kept)

        # 3. the slices of accounts, each loaded by the loader with the whole tables' totals
        sliced = _slices_of_records(spark, {r.api: rows[r.api] for r in reps if r.sliced}, by_api, n)
        texts = {r.part: (r.data, _struct_type((c, "string") for c in r.data)) for r in reps if r.sliced}
        parts = [
            sdf.selectExpr(f"'{api}' AS _table", "_slice", *_side_by_side(by_api[api].part, texts))
            for api, sdf in sliced.items()
        ]
        # slice 0 always runs: a Book without records still has its problems found
        first = spark.createDataFrame([("", 0)], "_table string, _slice long")
        parts.append(first.selectExpr("_table", "_slice", *_side_by_side(None, texts)))
        run = _slice_loader(reps, snapshot, spark.sparkContext.broadcast(shared), stats, totals, settings, schema)
        grouped = _union(parts).groupBy("_slice")
        loaded = grouped.applyInArrow(run, spark_schema).persist(StorageLevel.MEMORY_AND_DISK)
        reports = [json.loads(m[_META]) for m in loaded.where(F.col("_table") == _PROBLEMS).select(_META).collect()]
        errors = list(dict.fromkeys(json.dumps(e, sort_keys=True) for r in reports for e in r["errors"]))
        if errors:
            raise BookValidationError(_whole_lines([json.loads(e) for e in errors], rows, order))
        if alone is None:
            raise RuntimeError("the shared objects broke a rule that no slice reported")
        for name in ACCOUNT_TABLES:
            out[name] = loaded.where(F.col("_table") == name).selectExpr(f"_rf_{name}.*")
        reporting = reports[0]["currency"]
        loaded = None  # the SparkBook's tables read it from the cache
        return SparkBook(out, currency=reporting)
    finally:
        current.unpersist()
        if loaded is not None:
            loaded.unpersist()


def _totals(
    stats: Mapping[str, Mapping[str, int]],
    firsts: Mapping[str, Mapping[str, list]],
    lines: Mapping[str, Mapping[str, int]],
    by_api: Mapping[str, _Replicated],
) -> ReplicaTotals:
    """The whole tables' records and, per currency, records and first line (None where not counted)."""
    currencies = {
        by_api[api].name: {code: (lines.get(api, {}).get(key), count) for code, (count, key) in codes.items()}
        for api, codes in firsts.items()
    }
    return ReplicaTotals({api: st["rows"] for api, st in stats.items()}, currencies)


def _whole_lines(
    errors: list[dict], rows: Mapping[str, DataFrame], order: Mapping[str, Sequence[str]]
) -> list[Problem]:
    """The slices' problems, each row's line counted in the whole table's order."""
    wanted: dict[str, list[str]] = {}
    for e in errors:
        if "key" in e:
            wanted.setdefault(e["api"], []).append(e["key"])
    lines = _first_lines(rows, order, wanted) if wanted else {}
    problems = []
    for e in errors:
        line = e["line"]
        if "key" in e:
            line = lines[e["api"]][e["key"]] + int(e["tie"])
        problems.append(Problem(e["file"], line, e["record_id"], e["column"], e["rule"], e["message"], e["severity"]))
    return sorted_problems(problems)
