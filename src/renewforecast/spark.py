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
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from renewforecast.analyses.scoring import DEFAULT_BANDS, SCORE_COLUMNS, ScoringInputError
from renewforecast.analyses.scoring import score_contracts as score_frame
from renewforecast.atomic import atomic_write_text
from renewforecast.book import Book
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
