"""Writing renewal scores back to Salesforce through a Bulk API 2.0 upsert, sending only what changed.

The rows are those of :func:`~renewforecast.analyses.scoring.write_crm_upsert`
(:func:`~renewforecast.analyses.scoring.crm_upsert_rows`), rounded to each
target field's scale or cut to its length as the object's describe gives
them, then compared with the values Salesforce holds (read with a Bulk API
2.0 query): a row is sent only when a value other than the scored-at stamp
differs, so a re-run sends nothing. Rows that fail with a transient error
(:data:`TRANSIENT_ERRORS`) are sent again in a new job; the rest are written
to a failures CSV with Salesforce's error. Sources: ``docs/data_model.md``,
section *Salesforce API (pull and push)*.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from renewforecast.analyses.scoring import DEFAULT_CRM_FIELDS, crm_upsert_rows
from renewforecast.atomic import atomic_write_text
from renewforecast.exceptions import Problem
from renewforecast.io.salesforce_api import (
    SalesforceApiError,
    SalesforceConnection,
    SalesforceFieldError,
    read_csv_text,
    render_rest_value,
)

__all__ = ["CHANGE_COLUMNS", "TRANSIENT_ERRORS", "PushResult", "plan_push", "push_scores"]

logger = logging.getLogger(__name__)

#: ``sf__Error`` codes worth sending again in the same run: the record was
#: busy or the server briefly could not take it.
TRANSIENT_ERRORS = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_RUNNING_TOO_LONG",
        "SERVER_UNAVAILABLE",
        "QUERY_TIMEOUT",
        "API_TEMPORARILY_UNAVAILABLE",
    }
)
#: Columns of :attr:`PushResult.changes`.
CHANGE_COLUMNS = ["id", "field", "current", "new"]
_NUMERIC = ("double", "percent", "currency", "int", "long")
_TEXT = ("string", "picklist", "textarea", "url", "email", "phone", "multipicklist", "combobox")
#: Bulk API 2.0 sets a field to null with this value; an empty cell leaves it unchanged.
NULL_VALUE = "#N/A"

#: Largest CSV uploaded to one ingest job. Bulk API 2.0 takes at most 100 MB of job data per
#: upload (*Bulk API 2.0 and Bulk API Developer Guide*, "Bulk API 2.0 Limits"); a larger push is
#: split into several jobs, with room left for the line ends Salesforce may count.
MAX_UPLOAD_BYTES = 90_000_000


@dataclass
class PushResult:
    """What a push changed (or would change).

    Attributes
    ----------
    changes : DataFrame
        One row per changed value: ``id``, ``field``, ``current``, ``new``
        (the scored-at stamp is left out: it is not content).
    rows : DataFrame
        The rows sent (or that would be sent), as uploaded.
    unchanged : int
        Rows already equal in Salesforce, not sent.
    updated : int
        Rows Salesforce accepted.
    failed : DataFrame
        Rows that failed in the end, with ``sf__Error``.
    retried : int
        Rows sent again after a transient error.
    jobs : list of str
        Ingest job ids, in order.
    dry_run : bool
    """

    changes: pd.DataFrame
    rows: pd.DataFrame
    unchanged: int
    updated: int = 0
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    retried: int = 0
    jobs: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def sent(self) -> int:
        """Rows in the first ingest job (0 in a dry run or when nothing changed)."""
        return 0 if self.dry_run else len(self.rows)


def _error_code(error: str) -> str:
    return str(error).split(":", 1)[0].strip()


def _fit(value: Any, info: dict[str, Any]) -> Any:
    """A value cut to the field's scale (numbers) or length (text); None for null."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    kind = info.get("type", "")
    if kind in _NUMERIC:
        scale = int(info.get("scale") or 0)
        number = round(float(value), scale)
        return int(number) if kind in ("int", "long") or scale == 0 else number
    if kind == "datetime":
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    if kind == "boolean":
        return "true" if str(value).lower() in ("true", "1") else "false"
    text = str(value)
    length = int(info.get("length") or 0)
    return text[:length] if kind in _TEXT and length else text


def _same(current: str, new: Any, info: dict[str, Any]) -> bool:
    if current in (None, "") or new is None:
        return current in (None, "") and new is None
    kind = info.get("type", "")
    if kind in _NUMERIC:
        return _fit(float(current), info) == new
    if kind == "datetime":
        return _fit(current, info) == new
    return str(current) == str(new)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def plan_push(
    rows: pd.DataFrame,
    current: dict[str, dict[str, str]],
    describe: dict[str, dict[str, Any]],
    *,
    id_field: str,
    stamp_field: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Fit rows to their fields and keep those whose content differs from Salesforce's.

    Parameters
    ----------
    rows : DataFrame
        :func:`~renewforecast.analyses.scoring.crm_upsert_rows` output.
    current : dict
        Record key -> field -> the value Salesforce holds (text, blank for null).
    describe : dict
        Field API name -> describe entry (``type``, ``scale``, ``length``).
    id_field : str
    stamp_field : str or None
        The scored-at field: sent, but not compared.

    Returns
    -------
    (rows to send, changes, unchanged count)

    Examples
    --------
    >>> rows = pd.DataFrame({"Id": ["800A", "800B"], "P__c": [25.04, 60.0]}, dtype=object)
    >>> send, changes, same = plan_push(rows, {"800A": {"P__c": "25.0"}, "800B": {"P__c": "50.0"}},
    ...                                 {"P__c": {"type": "percent", "scale": 1}}, id_field="Id", stamp_field=None)
    >>> send.to_dict("records"), same
    ([{'Id': '800B', 'P__c': 60.0}], 1)
    >>> changes.to_dict("records")
    [{'id': '800B', 'field': 'P__c', 'current': '50.0', 'new': 60.0}]
    """
    fields = [c for c in rows.columns if c != id_field]
    keep, changes, unchanged = [], [], 0
    for record in rows.to_dict("records"):
        rid = str(record[id_field])
        fitted = {f: _fit(record[f], describe[f]) for f in fields}
        held = current.get(rid)
        diff = []
        for f in fields:
            if f == stamp_field:
                continue
            now = "" if held is None else held.get(f, "")
            if held is None or not _same(now, fitted[f], describe[f]):
                diff.append({"id": rid, "field": f, "current": None if held is None else now, "new": fitted[f]})
        if diff:
            keep.append({id_field: rid, **fitted})
            changes.extend(diff)
        else:
            unchanged += 1
    send = pd.DataFrame(keep, columns=[id_field, *fields], dtype=object)
    return send, pd.DataFrame(changes, columns=CHANGE_COLUMNS), unchanged


def _upload_csv(rows: pd.DataFrame) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(rows.columns))
    for record in rows.itertuples(index=False, name=None):
        writer.writerow([NULL_VALUE if v is None else _text(v) for v in record])
    return buf.getvalue()


def _parts(rows: pd.DataFrame, max_bytes: int) -> list[pd.DataFrame]:
    """The rows cut into consecutive pieces whose upload CSV (header included) fits in ``max_bytes``."""
    text = _upload_csv(rows)
    # The size of each row's line, from one pass of the same writer (a quoted cell may hold a line break).
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(rows.columns))
    header = len(buf.getvalue().encode("utf-8"))
    if len(text.encode("utf-8")) <= max_bytes:
        return [rows] if len(rows) else []
    parts, start, used = [], 0, header
    for i, record in enumerate(rows.itertuples(index=False, name=None)):
        buf.seek(0)
        buf.truncate()
        writer.writerow([NULL_VALUE if v is None else _text(v) for v in record])
        size = len(buf.getvalue().encode("utf-8"))
        if header + size > max_bytes:
            raise ValueError(f"row {i} alone makes an upload of {header + size:,} bytes, over {max_bytes:,}")
        if used + size > max_bytes:
            parts.append(rows.iloc[start:i])
            start, used = i, header
        used += size
    parts.append(rows.iloc[start:])
    return [p for p in parts if len(p)]


def _ingest(conn: SalesforceConnection, obj: str, id_field: str, rows: pd.DataFrame) -> tuple[str, list[dict], int]:
    """Run one upsert job; return (job id, failed rows with sf__Error, successes)."""
    base = f"{conn.base_path}/jobs/ingest"
    what = f"Bulk API 2.0 upsert of {len(rows)} {obj} row(s)"
    job = conn.http(
        "POST",
        base,
        what=what,
        json_body={
            "object": obj,
            "externalIdFieldName": id_field,
            "contentType": "CSV",
            "operation": "upsert",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        },
    ).json()
    job_id = job["id"]
    try:
        conn.http(
            "PUT",
            f"{base}/{job_id}/batches",
            what=what,
            data=_upload_csv(rows).encode("utf-8"),
            headers={"Content-Type": "text/csv"},
        )
        conn.http("PATCH", f"{base}/{job_id}", what=what, json_body={"state": "UploadComplete"})
    except BaseException:
        # An open job left behind would hold the rows uploaded so far; abort it so it never runs.
        conn.abort_job(f"{base}/{job_id}", what)
        raise
    try:
        # Polls with back-off; aborts the job itself when it times out or polling fails.
        info = conn.wait_for_job(f"{base}/{job_id}", what)
    except SalesforceApiError as exc:
        if exc.error_code not in ("Failed", "Aborted"):
            raise
        info = {"state": exc.error_code, "errorMessage": str(exc)}
    failed = read_csv_text(conn.http("GET", f"{base}/{job_id}/failedResults", what=what).content.decode("utf-8"))
    success = read_csv_text(conn.http("GET", f"{base}/{job_id}/successfulResults", what=what).content.decode("utf-8"))
    if info.get("state") != "JobComplete":
        unprocessed = read_csv_text(
            conn.http("GET", f"{base}/{job_id}/unprocessedrecords", what=what).content.decode("utf-8")
        )
        failed += [{"sf__Id": "", "sf__Error": f"UNPROCESSED:{info.get('errorMessage', '')}", **r} for r in unprocessed]
    return job_id, failed, len(success)


def push_scores(
    scores: pd.DataFrame,
    *,
    object: str = "Contract",
    id_field: str = "Id",
    key: str = "contract_id",
    fields: dict[str, str] | None = None,
    probability_as_percent: bool = True,
    dry_run: bool = False,
    failures_path: str | os.PathLike[str] | None = None,
    connection: SalesforceConnection | None = None,
    transient_retries: int = 2,
    retry_wait: float = 5.0,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> PushResult:
    """Upsert renewal scores into Salesforce, sending only rows whose values differ from the org's.

    Parameters
    ----------
    scores : DataFrame
        Output of :func:`~renewforecast.analyses.scoring.score_contracts`.
    object : str, default "Contract"
        The object the fields live on.
    id_field : str, default "Id"
        Record Id or an external id field to match on.
    key : str, default "contract_id"
        Score column holding the ``id_field`` value.
    fields : dict, optional
        Score column -> field API name; default :data:`~renewforecast.analyses.scoring.DEFAULT_CRM_FIELDS`.
        The field mapped from ``scored_at`` is a stamp: sent with every
        changed row but never a reason to send one.
    probability_as_percent : bool, default True
    dry_run : bool, default False
        Compare only: :attr:`PushResult.changes` lists what would change;
        nothing is sent to Salesforce.
    failures_path : path-like, optional
        CSV written (atomically, also when empty) with the rows that failed
        in the end: the uploaded fields and ``sf__Error``.
    connection : SalesforceConnection, optional
        Default :meth:`~renewforecast.io.salesforce_api.SalesforceConnection.from_env`.
    transient_retries : int, default 2
        Times rows failed with a :data:`TRANSIENT_ERRORS` error are sent again.
    retry_wait : float, default 5.0
        Seconds before the first such retry, doubled each time.
    max_bytes : int, default :data:`MAX_UPLOAD_BYTES`
        Largest upload of one ingest job; more rows are sent in several jobs, one after another.

    Returns
    -------
    PushResult

    Raises
    ------
    SalesforceFieldError
        A target field is not on the object (nothing is sent).
    SalesforceApiError
        And its subclasses, as for :func:`renewforecast.pull_salesforce`.

    Examples
    --------
    >>> push_scores(scores, dry_run=True).changes  # doctest: +SKIP
               id                   field current   new
    0  800Dn00000054m9IAA  Renewal_Probability__c    None  81.3
    """
    conn = connection or SalesforceConnection.from_env()
    mapping = dict(DEFAULT_CRM_FIELDS if fields is None else fields)
    rows = crm_upsert_rows(
        scores, id_field=id_field, key=key, fields=mapping, probability_as_percent=probability_as_percent
    )
    describe = conn.describe(object)
    if describe is None:
        raise SalesforceFieldError(
            [
                Problem(
                    object,
                    None,
                    "",
                    "",
                    "missing_object",
                    f"the org has no object {object} visible to the connected user",
                )
            ]
        )
    present = {f["name"]: f for f in describe.get("fields", [])}
    missing = [c for c in rows.columns if c not in present]
    if missing:
        raise SalesforceFieldError(
            [
                Problem(
                    object,
                    None,
                    "",
                    c,
                    "missing_field",
                    f"{object}.{c} does not exist in the org or is hidden "
                    "from the connected user; create the field (or pass fields=) before pushing scores",
                )
                for c in missing
            ]
        )
    targets = [c for c in rows.columns if c != id_field]
    soql = f"SELECT {', '.join(dict.fromkeys([id_field, *targets]))} FROM {object}"
    held = {}
    for record in conn.bulk_query(soql):
        held[record[id_field]] = record
    stamp = mapping.get("scored_at")
    send, changes, unchanged = plan_push(rows, held, present, id_field=id_field, stamp_field=stamp)
    result = PushResult(changes=changes, rows=send, unchanged=unchanged, dry_run=dry_run)
    logger.info("%d %s row(s) differ from Salesforce, %d already equal", len(send), object, unchanged)
    if dry_run or send.empty:
        if failures_path is not None and not dry_run:
            _write_failures(failures_path, [], list(send.columns))
        return result

    pending, final_failed, attempt = send, [], 0
    while True:
        failed = []
        for part in _parts(pending, max_bytes):
            job_id, part_failed, ok = _ingest(conn, object, id_field, part)
            result.jobs.append(job_id)
            result.updated += ok
            failed += part_failed
        transient = [r for r in failed if _error_code(r.get("sf__Error", "")) in TRANSIENT_ERRORS]
        final_failed += [r for r in failed if r not in transient]
        if not transient:
            break
        if attempt >= transient_retries:
            final_failed += transient
            break
        ids = {r.get(id_field) for r in transient}
        pending = send[send[id_field].astype(str).isin(ids)]
        result.retried += len(pending)
        wait = retry_wait * 2**attempt
        attempt += 1
        logger.warning("%d row(s) failed with a transient error; sending them again in %.1fs", len(pending), wait)
        time.sleep(wait)
    columns = [*send.columns, "sf__Error"]
    result.failed = pd.DataFrame([{c: r.get(c, "") for c in columns} for r in final_failed], columns=columns)
    if final_failed:
        logger.warning("%d %s row(s) failed; see the failures file", len(final_failed), object)
    if failures_path is not None:
        _write_failures(failures_path, final_failed, columns)
    return result


def _write_failures(path: str | os.PathLike[str], failed: list[dict], columns: list[str]) -> Path:
    if "sf__Error" not in columns:
        columns = [*columns, "sf__Error"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in failed:
        writer.writerow([render_rest_value(row.get(c)) if row.get(c) is not None else "" for c in columns])
    target = Path(path)
    atomic_write_text(target, buf.getvalue())
    return target
