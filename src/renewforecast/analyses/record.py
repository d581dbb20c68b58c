"""What a published report run said, kept as machine-readable tables so that later runs can grade it.

Every run of ``renewforecast report`` keeps, in its own folder, a ``record/``
of what it published: the forecast (by month, component and group, with its
P10/P50/P90), every contract's renewal probability (the scores), the headline
figures, and a ``record.json`` naming the run's as-of date, data fingerprint,
model version and what a re-run of its forecast needs. The report notebooks
write their tables with :func:`keep_record` into the folder the runner gives
them (the ``record_dir`` parameter, inside the run's staging folder, so the
one rename that publishes the run publishes its record; a failed run keeps
none); the runner writes the headlines and ``record.json`` with
:func:`write_run_record`. Opened by hand in JupyterLab, a notebook's
``record_dir`` is None and :func:`keep_record` does nothing.

:func:`read_record` reads one run's record back as a :class:`RunRecord`;
:func:`published_records` lists every published run of a reports folder that
has one, :func:`previous_record` finds the one a new run compares itself with.
:func:`renewforecast.grade_runs` grades them against later data.

Layout of a run folder::

    reports/20261121T053000Z-4d5e6f/
        index.html, run.json, NN_x.ipynb, NN_x.html
        record/
            record.json        run id, as-of, fingerprint, model, currency, re-run parameters
            forecast.parquet   scenario, month, group, component, mean, p10, p50, p90
            scores.parquet     one row per contract: renewal_probability, risk_band, ...
            headline.parquet   report, key, label, value, text, kind
            feature_profile.parquet  how the scored contracts' features spread (the drift check's bins)

Layer: analyses (imports the foundation modules only).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from renewforecast.atomic import atomic_write_bytes, atomic_write_text
from renewforecast.book import Book, content_fingerprint
from renewforecast.exceptions import RenewForecastError

__all__ = [
    "RECORD_DIR",
    "RECORD_FILE",
    "RunRecord",
    "keep_record",
    "previous_record",
    "published_records",
    "read_record",
    "read_record_table",
    "write_run_record",
]

logger = logging.getLogger(__name__)

#: The record's folder inside a run folder.
RECORD_DIR = "record"
#: The record's description inside :data:`RECORD_DIR`.
RECORD_FILE = "record.json"
#: Version of the record's layout; a reader refuses a newer one.
RECORD_FORMAT = 1

_NAME_RE = re.compile(r"[a-z0-9_]+")
# Where a table's own description (its name and **meta) lives in the Parquet footer.
_META_KEY = b"renewforecast.record"
# Names next to the run folders in a reports folder (the runner's ``latest`` link and ``failed/``).
_NOT_RUNS = frozenset({"latest", "failed"})


class RecordError(RenewForecastError):
    """A run's record is missing, unreadable, or of a newer layout."""


def _jsonable(value: Any) -> Any:
    # Notebook values (numpy scalars, Timestamps) must survive JSON exactly as numbers and ISO dates.
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):
        return value
    raise RecordError(f"record metadata must be JSON values (str, number, bool, None, list, dict), not {value!r}")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise RecordError(f"record table name {name!r} must be lower-case letters, digits and '_'")


def keep_record(record_dir: str | os.PathLike[str] | None, name: str, frame: pd.DataFrame, **meta: Any) -> Path | None:
    """Keep one table of what a report published in the run's record, as ``<record_dir>/<name>.parquet``.

    Parameters
    ----------
    record_dir : path-like or None
        The folder the report run gives the notebook (its ``record_dir``
        parameter). None (a notebook opened by hand) keeps nothing.
    name : str
        The table's name: lower-case letters, digits and ``_`` (``"forecast"``,
        ``"scores"``).
    frame : DataFrame
        The table as published; its index is not kept.
    **meta
        JSON values describing the table (for the forecast: ``horizon_months``,
        ``n_sims``, ``seed``, ``by`` and ``model_version``, what a re-run
        needs). Kept in the Parquet file's metadata and in ``record.json``.

    Returns
    -------
    Path or None
        The file written (atomically: readers see the whole file or none), or
        None when ``record_dir`` is None.

    Raises
    ------
    RecordError
        For a bad name, a ``frame`` that is not a DataFrame, or ``meta``
        that is not JSON.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> frame = pd.DataFrame({"contract_id": ["c1", "c2"], "renewal_probability": [0.9, 0.4]})
    >>> keep_record(None, "scores", frame) is None  # a notebook run by hand
    True
    >>> path = keep_record(tempfile.mkdtemp(), "scores", frame, model_version="v1")
    >>> path.name
    'scores.parquet'
    >>> table, meta = read_record_table(path)
    >>> table.equals(frame), meta
    (True, {'model_version': 'v1'})
    """
    if record_dir is None:
        return None
    _check_name(name)
    if not isinstance(frame, pd.DataFrame):
        raise RecordError(f"record table {name!r} must be a DataFrame, not {type(frame).__name__}")
    described = json.dumps({"name": name, "meta": _jsonable(meta)}, allow_nan=False)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: described.encode()})
    buf = io.BytesIO()
    # zstd and dictionary-encoded text: the same group and component names repeat on every row.
    pq.write_table(table, buf, compression="zstd")
    folder = Path(record_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_record_table(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A record table and the ``meta`` it was kept with (see :func:`keep_record`).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> path = keep_record(tempfile.mkdtemp(), "t", pd.DataFrame({"x": [1.5]}), seed=0)
    >>> read_record_table(path)[1]
    {'seed': 0}
    """
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise RecordError(f"cannot read record table {path}: {type(exc).__name__}: {exc}") from exc
    raw = (table.schema.metadata or {}).get(_META_KEY)
    meta = json.loads(raw.decode())["meta"] if raw else {}
    return table.to_pandas(), meta


def write_run_record(
    record_dir: str | os.PathLike[str],
    *,
    run_id: str,
    as_of: Any,
    data_fingerprint: str | None,
    model_version: str | None,
    currency: str,
    published: Any = None,
    book: Book | None = None,
) -> Path:
    """Write ``record.json``: what the run was, and what a re-run of its forecast needs.

    Called once the run's notebooks kept their tables (:func:`keep_record`);
    each table's ``meta`` is copied into ``record.json`` and the forecast's
    (``horizon_months``, ``n_sims``, ``seed``, ``by``, ``model_version``)
    becomes its ``forecast`` entry.

    Parameters
    ----------
    record_dir : path-like
        The run's record folder (created if needed).
    run_id : str
    as_of : date-like
        The run's as-of date.
    data_fingerprint : str or None
        The data as loaded (``book.loaded_fingerprint or book.fingerprint``).
    model_version : str or None
        The renewal model the run used.
    currency : str
    published : datetime-like, optional
        When the run finished (default: now, UTC).
    book : Book, optional
        The run's Book. When given, the row count and content fingerprint of
        each table of ``book.as_of(as_of)`` are kept, so a later grading can
        tell which tables the data has changed in since (records added late
        with earlier dates, or edited in place).

    Returns
    -------
    Path
        ``record.json``, written atomically.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd, renewforecast as rf
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "r1"
    >>> _ = keep_record(run / "record", "forecast", pd.DataFrame({"mean": [1.0]}), horizon_months=1, n_sims=10,
    ...                 seed=0)
    >>> path = write_run_record(run / "record", run_id="r1", as_of="2026-10-31", data_fingerprint="ab" * 32,
    ...                         model_version=None, currency="USD", published="2026-11-01T05:30:00+00:00",
    ...                         book=rf.Book.empty())
    >>> record = read_record(run)
    >>> record.run_id, str(record.as_of.date()), record.forecast_parameters["horizon_months"]
    ('r1', '2026-10-31', 1)
    >>> record.view["contracts"]["rows"]
    0
    """
    folder = Path(record_dir)
    folder.mkdir(parents=True, exist_ok=True)
    cut = pd.Timestamp(as_of).normalize()
    tables = {}
    for path in sorted(folder.glob("*.parquet")):
        meta = pq.read_schema(path).metadata or {}
        described = json.loads(meta[_META_KEY].decode()) if _META_KEY in meta else {"meta": {}}
        tables[path.stem] = {"file": path.name, "rows": pq.read_metadata(path).num_rows, "meta": described["meta"]}
    when = pd.Timestamp(published) if published is not None else pd.Timestamp.now(tz="UTC")
    record = {
        "format": RECORD_FORMAT,
        "run_id": run_id,
        "as_of": cut.date().isoformat(),
        "data_fingerprint": data_fingerprint,
        "model_version": model_version,
        "currency": currency,
        "published": when.isoformat(timespec="seconds") if when.tzinfo else when.isoformat(),
        "forecast": tables.get("forecast", {}).get("meta", {}),
        "tables": tables,
    }
    if book is not None:
        view = book.as_of(cut)
        record["view"] = {
            name: {"rows": len(frame), "fingerprint": content_fingerprint(frame)} for name, frame in view.tables.items()
        }
    path = folder / RECORD_FILE
    atomic_write_text(path, json.dumps(_jsonable(record), indent=1, allow_nan=False) + "\n")
    return path


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One published run's record: what it was, and its tables, read when first asked for.

    Returned by :func:`read_record` and :func:`published_records`.

    Attributes
    ----------
    folder : Path
        The run folder.
    run_id : str
    as_of : Timestamp
        The run's as-of date.
    data_fingerprint : str or None
    model_version : str or None
    currency : str
    published : Timestamp or None
        When the run finished (UTC).
    forecast_parameters : dict
        What a re-run of the forecast needs: ``horizon_months``, ``n_sims``,
        ``seed``, ``by`` and ``model_version`` (None: historical renewal rates).
    view : dict
        Table name -> ``rows`` and ``fingerprint`` of the data as of the run's
        date, as the run saw it (empty when not kept).
    table_names : tuple of str
        The tables kept (``forecast``, ``scores``, ``headline``, ...).

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "r1"
    >>> _ = keep_record(run / "record", "scores", pd.DataFrame({"contract_id": ["c1"], "renewal_probability": [0.7]}))
    >>> _ = write_run_record(run / "record", run_id="r1", as_of="2026-06-30", data_fingerprint=None,
    ...                      model_version="m1", currency="EUR")
    >>> record = read_record(run)
    >>> record.table_names, record.scores["renewal_probability"].tolist(), record.forecast is None
    (('scores',), [0.7], True)
    """

    folder: Path
    run_id: str
    as_of: pd.Timestamp
    data_fingerprint: str | None
    model_version: str | None
    currency: str
    published: pd.Timestamp | None
    forecast_parameters: dict[str, Any]
    view: dict[str, Any]
    table_names: tuple[str, ...]
    record_dir: Path = field(repr=False, default=Path())
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pd.DataFrame | None:
        """The record table ``name`` (read once), or None when the run did not keep it."""
        if name not in self.table_names:
            return None
        if name not in self._cache:
            self._cache[name] = read_record_table(self.record_dir / f"{name}.parquet")[0]
        return self._cache[name]

    @property
    def forecast(self) -> pd.DataFrame | None:
        """The forecast as published (``RevenueForecast.frame``), or None."""
        return self.table("forecast")

    @property
    def scores(self) -> pd.DataFrame | None:
        """Every contract's renewal probability as published (``score_contracts`` output), or None."""
        return self.table("scores")

    @property
    def headline(self) -> pd.DataFrame | None:
        """The headline figures (``report``, ``key``, ``label``, ``value``, ``text``, ``kind``), or None."""
        return self.table("headline")


def read_record(run_folder: str | os.PathLike[str], *, folder: str | os.PathLike[str] | None = None) -> RunRecord:
    """Read a published run's record.

    Parameters
    ----------
    run_folder : path-like
        The run folder (``reports/<run-id>``).
    folder : path-like, optional
        The record folder, when not ``<run_folder>/record``.

    Returns
    -------
    RunRecord
        Its tables are read when first asked for.

    Raises
    ------
    RecordError
        When the run has no readable ``record.json`` or its layout is newer
        than this version reads.

    Examples
    --------
    >>> import tempfile
    >>> read_record(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    renewforecast.analyses.record.RecordError: ... has no record ...
    """
    run_folder = Path(run_folder)
    record_dir = Path(folder) if folder is not None else run_folder / RECORD_DIR
    path = record_dir / RECORD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{run_folder} has no record ({path} does not exist)") from None
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path} is not a readable record ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("format"), int) or "as_of" not in data:
        raise RecordError(f"{path} is not a run record")
    if data["format"] > RECORD_FORMAT:
        raise RecordError(
            f"{path} has record format {data['format']}; this renewforecast reads up to {RECORD_FORMAT}: upgrade it"
        )
    tables = data.get("tables") or {}
    published = data.get("published")
    return RunRecord(
        folder=run_folder,
        run_id=str(data.get("run_id") or run_folder.name),
        as_of=pd.Timestamp(data["as_of"]).normalize(),
        data_fingerprint=data.get("data_fingerprint"),
        model_version=data.get("model_version"),
        currency=str(data.get("currency") or "USD"),
        published=pd.Timestamp(published) if published else None,
        forecast_parameters=dict(data.get("forecast") or {}),
        view=dict(data.get("view") or {}),
        table_names=tuple(name for name in tables if (record_dir / f"{name}.parquet").is_file()),
        record_dir=record_dir,
    )


def published_records(reports_dir: str | os.PathLike[str]) -> list[RunRecord]:
    """Every published run of a reports folder that keeps a record, oldest as-of date first.

    Run folders only: ``latest``, ``failed/``, hidden staging folders, runs
    from before records existed and anything else in the folder are left
    out; a record that cannot be read is skipped with a logged warning.

    Parameters
    ----------
    reports_dir : path-like
        The folder ``renewforecast report --out`` publishes into. A folder
        that does not exist holds no run.

    Returns
    -------
    list of RunRecord
        Ordered by as-of date, then by when they were published, then by run id.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> for run_id, day in [("b", "2026-09-30"), ("a", "2026-08-31")]:
    ...     _ = write_run_record(out / run_id / "record", run_id=run_id, as_of=day, data_fingerprint=None,
    ...                          model_version=None, currency="USD")
    >>> (out / "failed" / "c" / "record").mkdir(parents=True)
    >>> [r.run_id for r in published_records(out)]
    ['a', 'b']
    """
    root = Path(reports_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if (
            entry.name.startswith(".")
            or entry.name in _NOT_RUNS
            or entry.is_symlink()
            or not entry.is_dir()
            or not (entry / RECORD_DIR / RECORD_FILE).is_file()
        ):
            continue
        try:
            found.append(read_record(entry))
        except RecordError as exc:
            logger.warning("Skipped the record of %s: %s", entry.name, exc)
    far = pd.Timestamp("2262-01-01", tz="UTC")

    def order(r: RunRecord):
        when = r.published if r.published is not None else far
        return (r.as_of, when.tz_localize("UTC") if when.tzinfo is None else when, r.run_id)

    return sorted(found, key=order)


def previous_record(
    reports_dir: str | os.PathLike[str] | None, as_of: Any, *, having: str | None = None
) -> RunRecord | None:
    """The run a new run as of ``as_of`` compares itself with: the last one published before it.

    The latest published run whose as-of date is on or before ``as_of``
    (of runs with the same date, the one published last), and that kept the
    table ``having`` when one is named. A run as of a later date is never
    the previous one: a re-run of a past month compares with what was
    published up to that month, as it would have then.

    Parameters
    ----------
    reports_dir : path-like or None
        The folder the runs are published into (the report notebooks'
        ``reports_dir`` parameter). None (a notebook opened by hand) or a
        folder without runs has no previous run.
    as_of : date-like
        The new run's as-of date.
    having : str, optional
        A record table the previous run must have kept (``"feature_profile"``,
        listed in its ``record.json``): runs from before it was kept, or whose
        report did not run, are passed over.

    Returns
    -------
    RunRecord or None

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = keep_record(out / "aug" / "record", "feature_profile", pd.DataFrame({"feature": ["nps"]}))
    >>> for run_id, day in [("aug", "2026-08-31"), ("sep", "2026-09-30"), ("nov", "2026-11-30")]:
    ...     _ = write_run_record(out / run_id / "record", run_id=run_id, as_of=day, data_fingerprint=None,
    ...                          model_version=None, currency="USD")
    >>> previous_record(out, "2026-10-31").run_id
    'sep'
    >>> previous_record(out, "2026-10-31", having="feature_profile").run_id
    'aug'
    >>> previous_record(None, "2026-10-31") is None
    True
    """
    if reports_dir is None:
        return None
    day = pd.Timestamp(as_of).normalize()
    earlier = [
        r for r in published_records(reports_dir) if r.as_of <= day and (having is None or having in r.table_names)
    ]
    return earlier[-1] if earlier else None
