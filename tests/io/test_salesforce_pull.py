"""Pulling an org from the Salesforce API over real HTTPS (tests/salesforce_server.py) into an export folder."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

import renewforecast as rf
from _support import connect as connect_jwt
from _support import folder_digest
from renewforecast.io.salesforce_api import RetryPolicy, SalesforceConnection, api_objects

FAST = RetryPolicy(total=3, backoff_factor=0.0, limit_retries=2, limit_backoff=0.01, poll_interval=0.01)


def connect(server, creds, retry: RetryPolicy = FAST) -> SalesforceConnection:
    return connect_jwt(server, creds, retry)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), [dict(r) for r in reader]


def norm(value: str) -> str:
    """Numbers compared by value (the export writes 12, the API 12.0)."""
    try:
        return repr(float(value)) if value not in ("", "true", "false") and not value[:1].isalpha() else value
    except ValueError:
        return value


def keyed(rows: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key]: {k: norm(v) for k, v in r.items()} for r in rows}


def job_mark(server, obj: str, overlap: float = 300) -> str:
    """The mark a pull must keep after its last read of ``obj``: that job's createdDate less the overlap."""
    created = [
        j.info["createdDate"]
        for j in server.jobs.values()
        if j.kind == "query" and j.info["object"] == obj and not j.soql.startswith("SELECT Id FROM")
    ]
    stamp = dt.datetime.strptime(created[-1], "%Y-%m-%dT%H:%M:%S.%f%z") - dt.timedelta(seconds=overlap)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def salesforce_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.csv") if p.name[:-4] in api_objects())


def test_pull_equals_the_served_export(sf_server, sf_credentials, demo_org, tmp_path):
    sf_server.rest_page_size = 5
    out = tmp_path / "pulled"
    result = rf.pull_salesforce(out, connection=connect(sf_server, sf_credentials), bulk_page_size=40)

    served = tmp_path / "served"
    sf_server.write_export(served)
    files = salesforce_files(demo_org.path)
    assert files == salesforce_files(out) == salesforce_files(served)
    assert len(files) == 10
    for name in files:
        header, pulled = read_rows(out / name)
        served_header, expected = read_rows(demo_org.path / name)
        assert header == served_header, name
        key = "IsoCode" if name == "CurrencyType.csv" else "Id"
        assert keyed(pulled, key) == keyed(expected, key), name
        assert result.rows[name[:-4]] == len(expected)
    # The folder is a Book like the served one once the non-Salesforce files are beside it.
    for extra in ("spend.csv", "signals.csv"):
        shutil.copy(demo_org.path / extra, out / extra)
    assert rf.load_book(out).fingerprint == rf.load_book(demo_org.path).fingerprint
    assert result.modes == dict.fromkeys(result.modes, "full")
    assert not result.warnings

    # Paging really happened: Bulk result sets of 40 and REST pages of 5.
    contract_sets = sf_server.api_requests("GET", "/results")
    opportunity_rows = len(read_rows(demo_org.path / "OpportunityHistory.csv")[1])
    assert opportunity_rows > 40
    assert len(contract_sets) > len(files)
    locators = [r.query.get("locator") for r in contract_sets if r.query.get("locator")]
    assert locators and all(r.query.get("maxRecords") == "40" for r in contract_sets)
    dated = len(read_rows(demo_org.path / "DatedConversionRate.csv")[1])
    rest_pages = [r for r in sf_server.api_requests("GET", "/query") if "/query/01g" in r.path]
    assert len(rest_pages) >= dated // 5 - 1 + 12 // 5  # every next page of DatedConversionRate and Product2
    # REST objects were read with REST query, the others with Bulk API 2.0 jobs.
    rest_objects = {r.query["q"].split(" FROM ")[1] for r in sf_server.api_requests("GET", "/query") if "q" in r.query}
    bulk_objects = {
        json.loads(r.body)["query"].split(" FROM ")[1] for r in sf_server.api_requests("POST", "jobs/query")
    }
    assert rest_objects == {"Product2", "CurrencyType", "DatedConversionRate"}
    assert bulk_objects == set(api_objects()) - rest_objects


def test_incremental_pull_moves_only_changed_rows_and_applies_deletions(sf_server, sf_credentials, tmp_path):
    out, state_file = tmp_path / "org", tmp_path / "state.json"
    conn = connect(sf_server, sf_credentials)
    first = rf.pull_salesforce(out, state_file=state_file, connection=conn)
    state = json.loads(state_file.read_text())
    first_mark = job_mark(sf_server, "Contract")
    assert state["objects"]["Contract"]["high_water"] == first_mark
    contracts = [r["Id"] for r in sf_server.live_records("Contract")]
    sf_server.modify("Contract", contracts[0], {"Status": "Activated"})
    sf_server.modify("Contract", contracts[1], {"ContractTerm": "24"})
    sf_server.delete_records("Contract", [contracts[2]])
    products = [r["Id"] for r in sf_server.live_records("Product2")]
    sf_server.modify("Product2", products[0], {"Name": "Core Platform (renamed)"})
    before = len(sf_server.requests)

    second = rf.pull_salesforce(out, state_file=state_file, connection=conn, now="2026-01-05")

    jobs = [
        json.loads(r.body) for r in sf_server.requests[before:] if r.method == "POST" and r.path.endswith("jobs/query")
    ]
    contract_job = next(j for j in jobs if " FROM Contract " in j["query"])
    assert contract_job["operation"] == "queryAll"
    assert contract_job["query"].endswith(f"FROM Contract WHERE SystemModstamp >= {first_mark}")
    assert "IsDeleted" in contract_job["query"]
    rest = [
        r
        for r in sf_server.requests[before:]
        if r.path.rstrip("/").endswith("/queryAll") and "Product2" in r.query["q"]
    ]
    assert len(rest) == 1 and "WHERE SystemModstamp >= " in rest[0].query["q"]
    assert second.modes["Contract"] == "incremental" and second.modes["CurrencyType"] == "full"
    assert second.changed["Contract"] == 3 and second.deleted["Contract"] == 1
    assert second.rows["Contract"] == first.rows["Contract"] - 1
    assert second.changed["Product2"] == 1 and second.changed["Account"] == 0
    # Objects without IsDeleted are read whole.
    assert second.changed["DatedConversionRate"] == first.rows["DatedConversionRate"]

    served = tmp_path / "served"
    sf_server.write_export(served)
    for name in ("Contract.csv", "Product2.csv", "Account.csv"):
        assert keyed(read_rows(out / name)[1], "Id") == keyed(read_rows(served / name)[1], "Id"), name
    pulled = {r["Id"]: r for r in read_rows(out / "Contract.csv")[1]}
    assert contracts[2] not in pulled
    assert pulled[contracts[0]]["Status"] == "Activated" and pulled[contracts[1]]["ContractTerm"] == "24"
    high = json.loads(state_file.read_text())["objects"]["Contract"]["high_water"]
    assert high == job_mark(sf_server, "Contract") >= first_mark

    # Nothing changed since: the next pull reads again what changed within the overlap (the three
    # contracts, one of them deleted), replaces them by Id, and writes the same file.
    before_text = (out / "Contract.csv").read_text()
    third = rf.pull_salesforce(out, state_file=state_file, connection=conn, now="2026-01-06")
    assert third.changed["Contract"] == 3 and third.deleted["Contract"] == 0
    assert third.changed["Account"] == 0
    assert (out / "Contract.csv").read_text() == before_text


def test_since_and_recycle_bin_warning(sf_server, sf_credentials, tmp_path, caplog):
    out = tmp_path / "org"
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(out, connection=conn)
    caplog.set_level(logging.WARNING)
    result = rf.pull_salesforce(out, since="2025-12-01", connection=conn, now="2026-01-02", reconcile=False)
    assert result.changed["Account"] == len(sf_server.live_records("Account"))  # all stamps are after since
    old = [w for w in result.warnings if w.rule == "deletions_may_be_missed"]
    assert {w.file for w in old} >= {"Contract.csv", "Account.csv"}
    assert "--full" in old[0].message and "15 days" in old[0].message
    assert "--full" in caplog.text
    fresh = rf.pull_salesforce(
        out, since="2025-12-30", connection=conn, now="2026-01-02", objects=["Account"], reconcile=False
    )
    assert not fresh.warnings and fresh.changed["Account"] == len(sf_server.live_records("Account"))
    # Reconciling Ids finds deletions whatever the Recycle Bin kept: no warning then.
    reconciled = rf.pull_salesforce(out, since="2025-12-01", connection=conn, now="2026-01-02")
    assert not reconciled.warnings


def test_missing_optional_field_is_a_warning(sf_server, sf_credentials, tmp_path, caplog):
    sf_server.remove_field("Account", "Industry")
    caplog.set_level(logging.WARNING)
    out = tmp_path / "org"
    result = rf.pull_salesforce(out, connection=connect(sf_server, sf_credentials))
    [warning] = result.warnings
    assert (warning.file, warning.column, warning.rule, warning.severity) == (
        "Account.csv",
        "Industry",
        "missing_field",
        "warning",
    )
    assert "Account.Industry" in caplog.text
    header, _ = read_rows(out / "Account.csv")
    assert "Industry" not in header and "Segment__c" in header
    account_query = next(
        json.loads(r.body)["query"] for r in sf_server.api_requests("POST", "jobs/query") if "FROM Account" in r.body
    )
    assert "Industry" not in account_query


def test_missing_optional_object_is_a_warning(sf_server, sf_credentials, tmp_path):
    del sf_server.objects["OpportunityLineItemSchedule"]
    result = rf.pull_salesforce(tmp_path / "org", connection=connect(sf_server, sf_credentials))
    assert [(w.file, w.rule, w.severity) for w in result.warnings] == [
        ("OpportunityLineItemSchedule.csv", "missing_object", "warning")
    ]
    assert not (tmp_path / "org" / "OpportunityLineItemSchedule.csv").exists()
    assert result.rows["Contract"] == len(sf_server.live_records("Contract"))


def test_missing_required_field_stops_before_any_query(sf_server, sf_credentials, tmp_path):
    out = tmp_path / "org"
    out.mkdir()
    (out / "spend.csv").write_text("month,channel,sales_spend,marketing_spend\n")
    before = folder_digest(out)
    sf_server.remove_field("Contract", "StartDate")
    sf_server.remove_field("Opportunity", "StageName")
    with pytest.raises(rf.SalesforceFieldError) as info:
        rf.pull_salesforce(out, connection=connect(sf_server, sf_credentials))
    assert {(p.file, p.column) for p in info.value.problems} == {
        ("Contract.csv", "StartDate"),
        ("Opportunity.csv", "StageName"),
    }
    assert "Contract.StartDate" in str(info.value) and "Opportunity.StageName" in str(info.value)
    assert not sf_server.api_requests("POST", "jobs/query") and not sf_server.api_requests("GET", "/query")
    assert folder_digest(out) == before


def test_invalid_field_answer_is_salesforces(sf_server, sf_credentials):
    conn = connect(sf_server, sf_credentials)
    with pytest.raises(rf.SalesforceApiError) as info:
        list(conn.query_records("SELECT Id, Nope__c FROM Product2"))
    assert info.value.status == 400 and info.value.error_code == "INVALID_FIELD"
    assert "No such column 'Nope__c' on entity 'Product2'" in str(info.value)


def test_429_then_success_honours_retry_after(sf_server, sf_credentials, tmp_path):
    conn = connect(sf_server, sf_credentials)
    sf_server.fail_next(2, status=429, retry_after="1")
    started = time.monotonic()
    result = rf.pull_salesforce(tmp_path / "org", objects=["Product2"], connection=conn)
    elapsed = time.monotonic() - started
    assert result.rows["Product2"] == len(sf_server.live_records("Product2"))
    assert elapsed >= 2.0  # two Retry-After: 1 waits
    first = sf_server.requests[-4:]
    assert [r.path.rsplit("/", 1)[-1] for r in first[:3]] == ["describe"] * 3


def test_expired_session_is_renewed_with_jwt(sf_server, sf_credentials, tmp_path):
    conn = connect(sf_server, sf_credentials)
    sf_server.expire_sessions()
    result = rf.pull_salesforce(tmp_path / "org", objects=["Account", "Product2"], connection=conn)
    assert result.rows["Account"] == len(sf_server.live_records("Account"))
    assert len(sf_server.api_requests("POST", "/services/oauth2/token")) == 2
    # Expiring in the middle of a Bulk job is renewed too.
    sf_server.expire_sessions()
    assert len(conn.bulk_query("SELECT Id FROM Contract", max_records=10)) == len(sf_server.live_records("Contract"))


def test_expired_bare_access_token_is_a_clear_error(sf_server, sf_credentials, tmp_path):
    token = sf_server.issue_token()
    env = {"SF_INSTANCE_URL": sf_server.url, "SF_ACCESS_TOKEN": token}
    conn = SalesforceConnection.from_env(env, retry=FAST, ca_bundle=str(sf_server.ca_path))
    sf_server.expire_sessions()
    with pytest.raises(rf.SalesforceAuthError) as info:
        rf.pull_salesforce(tmp_path / "org", connection=conn)
    assert "INVALID_SESSION_ID" in str(info.value) and "SF_ACCESS_TOKEN" in str(info.value)
    assert token not in str(info.value) and token not in repr(conn)
    assert not (tmp_path / "org").exists()


def test_client_credentials_and_requests_ca_bundle(sf_server, sf_credentials, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sf_server.ca_path))
    env = {
        "SF_CLIENT_ID": sf_credentials.client_id,
        "SF_CLIENT_SECRET": sf_credentials.client_secret,
        "SF_LOGIN_URL": sf_server.url,
    }
    conn = SalesforceConnection.from_env(env, retry=FAST)
    result = rf.pull_salesforce(tmp_path / "org", objects=["CurrencyType"], connection=conn)
    assert result.rows["CurrencyType"] == len(sf_server.live_records("CurrencyType"))
    bad = dict(env, SF_CLIENT_SECRET="wrong")
    with pytest.raises(rf.SalesforceAuthError, match="invalid_client"):
        SalesforceConnection.from_env(bad, retry=FAST)


def test_daily_limit_raises_at_once_and_concurrent_limit_is_retried(sf_server, sf_credentials, tmp_path):
    slow = RetryPolicy(total=3, backoff_factor=0.0, limit_retries=3, limit_backoff=30.0, poll_interval=0.01)
    conn = connect(sf_server, sf_credentials, retry=slow)
    sf_server.limit_exceeded("daily", n=5)
    started = time.monotonic()
    with pytest.raises(rf.DailyApiLimitError) as info:
        rf.pull_salesforce(tmp_path / "org", connection=conn)
    assert time.monotonic() - started < 5
    assert "TotalRequests Limit exceeded" in str(info.value) and info.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert not (tmp_path / "org").exists()

    quick = connect(sf_server, sf_credentials)
    sf_server._limits.clear()
    sf_server.limit_exceeded("concurrent", n=2)
    before = len(sf_server.requests)
    result = rf.pull_salesforce(tmp_path / "org", objects=["Product2"], connection=quick)
    assert result.rows["Product2"] == len(sf_server.live_records("Product2"))
    assert not sf_server._limits
    describes = [r for r in sf_server.requests[before:] if r.path.endswith("/describe")]
    assert len(describes) == 3  # refused twice, then answered


def test_failed_pull_leaves_the_previous_folder_and_state(sf_server, sf_credentials, tmp_path):
    out, state_file = tmp_path / "org", tmp_path / "state.json"
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(out, state_file=state_file, connection=conn)
    (out / "spend.csv").write_text("month,channel,sales_spend,marketing_spend\n2026-01-01,web,1,2\n")
    before, state_before = folder_digest(out), state_file.read_text()
    sf_server.modify("Contract", sf_server.live_records("Contract")[0]["Id"], {"Status": "Draft"})
    sf_server.fail_next(50, status=503, retry_after=None)
    with pytest.raises(rf.SalesforceUnavailableError, match="after 3 retries"):
        rf.pull_salesforce(out, state_file=state_file, connection=conn)
    assert folder_digest(out) == before and state_file.read_text() == state_before
    # Nothing left beside the folder but the lock file (kept on purpose: removing it would race).
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".org")] == [".org.lock"]
    # Non-Salesforce files survive a successful pull untouched.
    sf_server._failures.clear()
    rf.pull_salesforce(out, state_file=state_file, connection=conn)
    assert (out / "spend.csv").read_text().endswith("2026-01-01,web,1,2\n")


def test_no_secret_in_any_output(sf_server, sf_credentials, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    out, state_file = tmp_path / "org", tmp_path / "state.json"
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(out, state_file=state_file, connection=conn)
    sf_server.expire_sessions()
    rf.pull_salesforce(out, state_file=state_file, connection=conn)
    sf_server.add_field("Contract", "Renewal_Probability__c", "percent", scale=1)
    scores = pd.DataFrame(
        {
            "contract_id": [r["Id"] for r in sf_server.live_records("Contract")[:3]],
            "renewal_probability": [0.5, 0.6, 0.7],
        }
    )
    rf.push_scores(
        scores,
        fields={"renewal_probability": "Renewal_Probability__c"},
        connection=conn,
        failures_path=tmp_path / "failures.csv",
    )
    errors = []
    for bad in (
        {"SF_INSTANCE_URL": sf_server.url, "SF_ACCESS_TOKEN": "00DTEST!expired-token-value"},
        {
            "SF_CLIENT_ID": sf_credentials.client_id,
            "SF_CLIENT_SECRET": "wrong" + sf_credentials.client_secret,
            "SF_LOGIN_URL": sf_server.url,
        },
    ):
        try:
            c = SalesforceConnection.from_env(bad, retry=FAST, ca_bundle=str(sf_server.ca_path))
            rf.pull_salesforce(tmp_path / "other", connection=c, objects=["Account"])
        except rf.SalesforceApiError as exc:
            errors.append(f"{exc!s} {exc!r}")
    assert len(errors) == 2
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err, repr(conn), *errors]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    key_lines = [line for line in sf_credentials.key_text.splitlines() if "PRIVATE KEY" not in line]
    secrets = [*sf_server.issued, "expired-token-value", sf_credentials.client_secret, *key_lines[1:4]]
    assert len(sf_server.issued) == 2  # the first session and the renewed one
    for text in texts:
        for secret in secrets:
            assert secret not in text
