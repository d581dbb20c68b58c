"""Writing scores back to Salesforce with Bulk API 2.0 upserts, over real HTTPS (tests/salesforce_server.py)."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pandas as pd
import pytest

import renewforecast as rf
from _support import connect as connect_jwt
from renewforecast.analyses.scoring import DEFAULT_CRM_FIELDS, crm_upsert_rows
from renewforecast.io.salesforce_api import RetryPolicy

FAST = RetryPolicy(total=2, backoff_factor=0.0, limit_retries=1, limit_backoff=0.01, poll_interval=0.01)
LOCK = "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records: 800Dn00000054m9:--"
RULE = "FIELD_CUSTOM_VALIDATION_EXCEPTION:Renewal risk band must be set for active contracts:Renewal_Risk_Band__c --"


@pytest.fixture
def org(sf_server, sf_credentials):
    """The served org with the score fields on Contract, and a JWT connection to it."""
    sf_server.add_field("Contract", "Renewal_Probability__c", "percent", precision=4, scale=1)
    sf_server.add_field("Contract", "Renewal_Risk_Band__c", "picklist", length=255)
    sf_server.add_field("Contract", "ARR_At_Risk__c", "currency", precision=16, scale=2)
    sf_server.add_field("Contract", "Renewal_Reason_1__c", "string", length=20)
    sf_server.add_field("Contract", "Renewal_Reason_2__c", "string", length=255)
    sf_server.add_field("Contract", "Renewal_Reason_3__c", "string", length=255)
    sf_server.add_field("Contract", "Renewal_Model_Version__c", "string", length=80)
    sf_server.add_field("Contract", "Renewal_Scored_At__c", "datetime")
    return sf_server, connect_jwt(sf_server, sf_credentials, FAST)


def make_scores(ids: list[str], scored_at: str = "2026-11-01T06:00:00Z") -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "contract_id": ids,
            "renewal_probability": [0.5 + 0.04 * k + 0.00013 for k in range(n)],
            "risk_band": ["medium" if k % 2 else "low" for k in range(n)],
            "arr_at_risk": [1000.0 + 10.25 * k for k in range(n)],
            "reason_1": ["seat utilisation fell by a third" if k == 0 else "tenure" for k in range(n)],
            "reason_2": [None if k % 3 == 0 else "support tickets" for k in range(n)],
            "reason_3": ["nps"] * n,
            "model_version": "20261101T060000Z-abc123",
            "scored_at": pd.Timestamp(scored_at),
        }
    )


def ingest_uploads(server) -> list[list[dict[str, str]]]:
    """The rows of every ingest job's uploaded CSV, in order."""
    return [list(csv.DictReader(io.StringIO(r.body))) for r in server.api_requests("PUT", "/batches")]


def record(server, rid: str) -> dict[str, str]:
    return next(r for r in server.live_records("Contract") if r["Id"] == rid)


def test_first_push_sends_all_rows_a_rerun_none_and_a_change_exactly_that_row(org):
    server, conn = org
    ids = [r["Id"] for r in server.live_records("Contract")[:8]]
    first = rf.push_scores(make_scores(ids), connection=conn)
    assert first.sent == 8 and first.updated == 8 and first.unchanged == 0 and first.failed.empty
    [uploaded] = ingest_uploads(server)
    assert [r["Id"] for r in uploaded] == ids
    job = json.loads(server.api_requests("POST", "jobs/ingest")[0].body)
    assert job == {
        "object": "Contract",
        "externalIdFieldName": "Id",
        "contentType": "CSV",
        "operation": "upsert",
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    }
    # Values as Salesforce now holds them: 0.54013 -> 54.0 (scale 1, sent as 54), 1010.25 to the cent,
    # the reason cut to the field's 20 characters, null sent as #N/A, the stamp in UTC.
    held = record(server, ids[1])
    assert held["Renewal_Probability__c"] == "54" and held["ARR_At_Risk__c"] == "1010.25"
    assert held["Renewal_Risk_Band__c"] == "medium" and held["Renewal_Scored_At__c"] == "2026-11-01T06:00:00.000Z"
    assert record(server, ids[0])["Renewal_Reason_1__c"] == "seat utilisation fel"
    assert uploaded[0]["Renewal_Reason_2__c"] == "#N/A" and record(server, ids[0])["Renewal_Reason_2__c"] == ""

    # The same scores a day later: only the stamp differs, so nothing is sent.
    again = rf.push_scores(make_scores(ids, scored_at="2026-11-02T06:00:00Z"), connection=conn)
    assert again.sent == 0 and again.unchanged == 8 and again.changes.empty
    assert len(server.api_requests("POST", "jobs/ingest")) == 1

    # One probability moves: exactly that row is sent.
    changed = make_scores(ids, scored_at="2026-11-03T06:00:00Z")
    changed.loc[3, "renewal_probability"] = 0.91
    third = rf.push_scores(changed, connection=conn)
    assert third.sent == 1 and third.unchanged == 7
    assert third.changes.to_dict("records") == [
        {"id": ids[3], "field": "Renewal_Probability__c", "current": "62", "new": 91.0}
    ]
    assert [r["Id"] for r in ingest_uploads(server)[-1]] == [ids[3]]
    assert record(server, ids[3])["Renewal_Probability__c"] == "91"


def test_rounding_follows_the_fields_scale(org):
    server, conn = org
    server.objects["Contract"].fields["Renewal_Probability__c"]["scale"] = 0
    ids = [r["Id"] for r in server.live_records("Contract")[:2]]
    scores = make_scores(ids)
    scores["renewal_probability"] = [0.5649, 0.8351]  # rows: 56.5 and 83.5 -> scale 0
    rf.push_scores(scores, connection=conn)
    assert [record(server, i)["Renewal_Probability__c"] for i in ids] == ["56", "84"]
    assert rf.push_scores(scores, connection=conn).sent == 0


def test_failed_rows_are_written_and_only_transient_ones_retried(org, tmp_path):
    server, conn = org
    ids = [r["Id"] for r in server.live_records("Contract")[:6]]
    server.fail_ingest({ids[1]: LOCK, ids[2]: RULE})
    server.fail_ingest({ids[4]: LOCK}, always=True)
    failures = tmp_path / "failures.csv"
    result = rf.push_scores(
        make_scores(ids), connection=conn, failures_path=failures, transient_retries=1, retry_wait=0.0
    )
    uploads = ingest_uploads(server)
    assert [[r["Id"] for r in up] for up in uploads] == [ids, [ids[1], ids[4]]]
    assert len(result.jobs) == 2 and result.retried == 2 and result.updated == 4
    written = list(csv.DictReader(failures.open(encoding="utf-8")))
    assert [(r["Id"], r["sf__Error"]) for r in written] == [(ids[2], RULE), (ids[4], LOCK)]
    assert written[0]["Renewal_Risk_Band__c"] == "low"
    assert record(server, ids[1])["Renewal_Probability__c"] == "54"
    assert record(server, ids[2])["Renewal_Probability__c"] == ""
    # A re-run sends only what is still not in Salesforce.
    server._ingest_errors.clear()
    rerun = rf.push_scores(make_scores(ids), connection=conn, failures_path=failures)
    assert sorted(r["Id"] for r in ingest_uploads(server)[-1]) == sorted([ids[2], ids[4]])
    assert rerun.failed.empty and failures.read_text().splitlines() == [",".join([*rerun.rows.columns, "sf__Error"])]


def test_dry_run_sends_no_job(org):
    server, conn = org
    ids = [r["Id"] for r in server.live_records("Contract")[:3]]
    result = rf.push_scores(make_scores(ids), connection=conn, dry_run=True)
    assert not server.api_requests("POST", "jobs/ingest") and not server.api_requests("PUT")
    assert result.sent == 0 and result.dry_run
    probability = result.changes[result.changes["field"] == "Renewal_Probability__c"]
    assert probability.to_dict("records") == [
        {"id": ids[0], "field": "Renewal_Probability__c", "current": "", "new": 50.0},
        {"id": ids[1], "field": "Renewal_Probability__c", "current": "", "new": 54.0},
        {"id": ids[2], "field": "Renewal_Probability__c", "current": "", "new": 58.0},
    ]
    # Every content field of every row (7, less reason 2 left blank on the first), never the stamp.
    assert len(result.changes) == 7 + 7 + 6 and "Renewal_Scored_At__c" not in set(result.changes["field"])
    assert all(record(server, i)["Renewal_Probability__c"] == "" for i in ids)


def test_missing_target_field_sends_nothing(org):
    server, conn = org
    server.remove_field("Contract", "ARR_At_Risk__c")
    with pytest.raises(rf.SalesforceFieldError, match=r"Contract\.ARR_At_Risk__c"):
        rf.push_scores(make_scores([server.live_records("Contract")[0]["Id"]]), connection=conn)
    assert not server.api_requests("POST", "jobs/")


def test_write_crm_upsert_and_push_share_their_rows(tmp_path):
    scores = make_scores(["800A", "800B"])
    rows = crm_upsert_rows(scores)
    assert list(rows.columns) == ["Id", *DEFAULT_CRM_FIELDS.values()]
    text = rf.write_crm_upsert(scores, tmp_path / "up.csv").read_text()
    read = list(csv.reader(io.StringIO(text)))
    assert read[1][:2] == ["800A", "50.0"] and read[2][:2] == ["800B", "54.0"]
    assert rows.iloc[1]["Renewal_Probability__c"] == 54.0 and rows.iloc[0]["Renewal_Reason_2__c"] == ""


def test_upsert_by_external_id(org):
    server, conn = org
    server.add_field("Contract", "Legacy_Key__c", "string", length=40, externalId=True, idLookup=True)
    contracts = server.live_records("Contract")[:3]
    for k, row in enumerate(contracts):
        server.modify("Contract", row["Id"], {"Legacy_Key__c": f"LEG-{k}"})
    scores = make_scores([f"LEG-{k}" for k in range(3)])
    result = rf.push_scores(scores, id_field="Legacy_Key__c", connection=conn)
    job = json.loads(server.api_requests("POST", "jobs/ingest")[0].body)
    assert job["externalIdFieldName"] == "Legacy_Key__c" and result.updated == 3
    assert [r["Legacy_Key__c"] for r in ingest_uploads(server)[0]] == ["LEG-0", "LEG-1", "LEG-2"]
    assert record(server, contracts[2]["Id"])["Renewal_Probability__c"] == "58"
    assert rf.push_scores(scores, id_field="Legacy_Key__c", connection=conn).sent == 0


def test_an_ingest_job_is_polled_with_back_off_and_aborted_when_it_runs_too_long(org, sf_credentials):
    server, _ = org
    ids = [r["Id"] for r in server.live_records("Contract")[:3]]
    server.job_polls = 4
    conn = connect_jwt(
        server, sf_credentials, RetryPolicy(total=1, backoff_factor=0.0, poll_interval=0.05, poll_max=0.1)
    )
    result = rf.push_scores(make_scores(ids), connection=conn)
    assert result.updated == 3
    [job_id] = result.jobs
    polls = [r.at for r in server.requests if r.method == "GET" and r.path.endswith(f"jobs/ingest/{job_id}")]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    # 0.05, then doubled to 0.1, then held at poll_max = 0.1
    assert len(polls) == 4 and gaps[0] >= 0.045 and gaps[1] >= 0.095 and gaps[2] >= 0.095

    server.ingest_polls = 10**9
    hurried = connect_jwt(server, sf_credentials, RetryPolicy(total=1, poll_interval=0.05, poll_timeout=0.3))
    changed = make_scores(ids)
    changed["renewal_probability"] = [0.9, 0.91, 0.92]
    with pytest.raises(rf.SalesforceUnavailableError, match="aborted"):
        rf.push_scores(changed, connection=hurried)
    job_id = [j for j in server.jobs.values() if j.kind == "ingest"][-1].id
    assert [json.loads(r.body) for r in server.api_requests("PATCH", f"jobs/ingest/{job_id}")] == [
        {"state": "UploadComplete"},
        {"state": "Aborted"},
    ]
    assert server.jobs[job_id].info["state"] == "Aborted"
    # The aborted job changed nothing: the values of the first push stay.
    assert [record(server, i)["Renewal_Probability__c"] for i in ids] == ["50", "54", "58"]


def test_a_failed_upload_aborts_the_open_job(org):
    server, conn = org
    ids = [r["Id"] for r in server.live_records("Contract")[:2]]
    server.fail_next(10, status=400, retry_after=None, method="PUT", contains="/batches")
    with pytest.raises(rf.SalesforceApiError):
        rf.push_scores(make_scores(ids), connection=conn)
    [job] = [j for j in server.jobs.values() if j.kind == "ingest"]
    assert [json.loads(r.body) for r in server.api_requests("PATCH", f"jobs/ingest/{job.id}")] == [{"state": "Aborted"}]
    assert job.info["state"] == "Aborted"


def test_a_push_larger_than_one_upload_is_split_into_jobs_each_within_the_limit(org):
    server, conn = org
    ids = [r["Id"] for r in server.live_records("Contract")[:9]]
    rf.push_scores(make_scores(ids), connection=conn)
    (first,) = server.api_requests("PUT", "/batches")
    header, *lines = first.body.encode("utf-8").splitlines(keepends=True)
    limit = len(header) + 3 * max(len(line) for line in lines)  # room for about three rows

    changed = make_scores(ids).assign(renewal_probability=lambda f: f["renewal_probability"] - 0.3)
    pushed = rf.push_scores(changed, connection=conn, max_bytes=limit)
    uploads = server.api_requests("PUT", "/batches")[1:]
    assert len(pushed.jobs) == len(uploads) >= 3
    assert all(len(u.body.encode("utf-8")) <= limit for u in uploads)
    sent = [r["Id"] for up in ingest_uploads(server)[1:] for r in up]
    assert sorted(sent) == sorted(ids)  # every row once, none twice
    assert pushed.updated == len(ids)
