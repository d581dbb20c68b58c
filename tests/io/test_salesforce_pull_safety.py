"""What can go wrong around a pull, over real HTTPS (tests/salesforce_server.py): late commits, vanished
records, servers that never answer, broken downloads, crashes between renames, two pulls at once."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import os
import threading
import time
from pathlib import Path

import pytest

import renewforecast as rf
from _support import connect as connect_jwt
from _support import jwt_env
from renewforecast.io.salesforce_api import (
    BULK_PAGE_SIZE,
    REST_OBJECTS,
    RetryPolicy,
    SalesforceConnection,
    default_jwt_audience,
)

FAST = RetryPolicy(total=3, backoff_factor=0.0, limit_retries=2, limit_backoff=0.01, poll_interval=0.01)


def connect(server, creds, retry: RetryPolicy = FAST) -> SalesforceConnection:
    return connect_jwt(server, creds, retry)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def served(server, obj: str) -> dict[str, dict[str, str]]:
    header = server.objects[obj].header
    return {r["Id"]: {c: r.get(c, "") for c in header} for r in server.live_records(obj)}


def pulled(folder: Path, obj: str) -> dict[str, dict[str, str]]:
    return {r["Id"]: r for r in read_rows(folder / f"{obj}.csv")}


def stamp_text(stamp: dt.datetime) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- 1. a query job is not a snapshot


def test_a_change_committed_late_during_a_job_is_read_by_the_next_pull(sf_server, sf_credentials, tmp_path):
    out, state_file = tmp_path / "org", tmp_path / "state.json"
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(out, state_file=state_file, connection=conn)
    a, b, c = (r["Id"] for r in sf_server.live_records("Contract")[:3])
    stamp_a = sf_server.modify("Contract", a, {"Status": "Activated"})
    sf_server.modify("Contract", b, {"ContractTerm": "36"})
    # While the next Contract job runs, C commits with a stamp two seconds older than A's, which the job returns.
    late = dt.datetime.strptime(stamp_a, "%Y-%m-%dT%H:%M:%S.%f%z") - dt.timedelta(seconds=2)
    sf_server.during_next_job(
        lambda: sf_server.modify("Contract", c, {"Status": "Late"}, stamp=stamp_text(late)), "Contract"
    )

    second = rf.pull_salesforce(out, state_file=state_file, connection=conn)
    assert second.changed["Contract"] == 2  # A and B: C was not in the job's rows
    assert pulled(out, "Contract")[c]["Status"] != "Late"
    assert pulled(out, "Contract")[a]["Status"] == "Activated"

    third = rf.pull_salesforce(out, state_file=state_file, connection=conn)
    assert pulled(out, "Contract")[c]["Status"] == "Late"
    assert third.changed["Contract"] == 3  # A, B again (within the overlap) and C
    assert pulled(out, "Contract") == served(sf_server, "Contract")
    assert len(read_rows(out / "Contract.csv")) == len(sf_server.live_records("Contract"))


# -- 2. deletions the Recycle Bin no longer shows


def test_reconciling_ids_drops_records_that_vanished_without_a_deleted_row(sf_server, sf_credentials, tmp_path):
    out, state_file = tmp_path / "org", tmp_path / "state.json"
    conn = connect(sf_server, sf_credentials)
    first = rf.pull_salesforce(out, state_file=state_file, connection=conn)
    gone = [r["Id"] for r in sf_server.live_records("Contract")[3:5]]
    sf_server.purge("Contract", gone)  # emptied from the Recycle Bin, or hidden from the user: queryAll shows nothing
    live = sf_server.live_records("Contract")
    sf_server.modify("Contract", live[0]["Id"], {"Status": "Draft"})

    kept = rf.pull_salesforce(tmp_path / "copy", connection=conn)  # a whole pull, for comparison
    assert kept.rows["Contract"] == first.rows["Contract"] - 2

    without = rf.pull_salesforce(out, state_file=state_file, connection=conn, reconcile=False, objects=["Contract"])
    assert without.deleted["Contract"] == 0 and without.rows["Contract"] == first.rows["Contract"]
    assert set(gone) <= set(pulled(out, "Contract"))

    before = len(sf_server.requests)
    result = rf.pull_salesforce(out, state_file=state_file, connection=conn)
    assert result.deleted["Contract"] == 2 and result.reconciled["Contract"] == 2
    assert result.rows["Contract"] == len(live) == first.rows["Contract"] - 2
    assert not set(gone) & set(pulled(out, "Contract"))
    assert pulled(out, "Contract") == served(sf_server, "Contract")
    id_jobs = [
        json.loads(r.body)
        for r in sf_server.requests[before:]
        if r.method == "POST"
        and r.path.endswith("jobs/query")
        and json.loads(r.body)["query"].startswith("SELECT Id FROM")
    ]
    # One Id query per object read incrementally (a query, not queryAll: deleted records must not count as live).
    incremental = [name for name, mode in result.modes.items() if mode == "incremental" and name not in REST_OBJECTS]
    assert sorted(j["query"].split(" FROM ")[1] for j in id_jobs) == sorted(incremental)
    assert {j["operation"] for j in id_jobs} == {"query"}


# -- 3. timeouts


def test_a_server_that_never_answers_cannot_hang_a_pull(sf_server, sf_credentials, tmp_path):
    quick = RetryPolicy(total=1, backoff_factor=0.0, poll_interval=0.01, read_timeout=0.5)
    conn = connect(sf_server, sf_credentials, retry=quick)
    sf_server.stall(30, "GET", "/describe", n=5)
    started = time.monotonic()
    with pytest.raises(rf.SalesforceUnavailableError, match="did not answer") as info:
        rf.pull_salesforce(tmp_path / "org", connection=conn, objects=["Product2"])
    assert time.monotonic() - started < 5  # two tries of 0.5 s, not the 30 s the server holds the answer
    assert "describe of Product2" in str(info.value)
    assert not (tmp_path / "org").exists()

    # The next page of a REST query (simple-salesforce's query_more) has its timeout too.
    sf_server.clear_faults()
    sf_server._stalls.clear()
    sf_server.rest_page_size = 5
    sf_server.stall(30, "GET", "/query/01g", n=5)
    started = time.monotonic()
    with pytest.raises(rf.SalesforceUnavailableError, match="did not answer"):
        rf.pull_salesforce(tmp_path / "org", connection=conn, objects=["Product2"])
    assert time.monotonic() - started < 5


def test_a_post_is_not_sent_twice_after_a_read_timeout_but_is_after_429(sf_server, sf_credentials):
    quick = RetryPolicy(total=2, backoff_factor=0.0, poll_interval=0.01, read_timeout=0.5)
    conn = connect(sf_server, sf_credentials, retry=quick)
    sf_server.stall(30, "POST", "jobs/query")
    with pytest.raises(rf.SalesforceUnavailableError, match="did not answer"):
        conn.bulk_query("SELECT Id FROM Contract")
    # The job was created on the server; it must not be created twice.
    assert len(sf_server.api_requests("POST", "jobs/query")) == 1
    assert len(sf_server.jobs) == 1

    sf_server.fail_next(1, status=429, retry_after="0", method="POST", contains="jobs/query")
    sf_server.fail_next(1, status=503, retry_after="0", method="PATCH", contains="jobs/query")
    rows = conn.bulk_query("SELECT Id FROM Contract")
    assert len(rows) == len(sf_server.live_records("Contract"))
    assert len(sf_server.api_requests("POST", "jobs/query")) == 3  # the stalled one, the refused one, the retry


# -- 4. result sets


def test_result_sets_default_to_max_records_and_a_broken_download_is_asked_again(sf_server, sf_credentials, tmp_path):
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(tmp_path / "org", connection=conn, objects=["Account"])
    results = sf_server.api_requests("GET", "/results")
    assert results and all(r.query.get("maxRecords") == str(BULK_PAGE_SIZE) for r in results)

    before = len(sf_server.requests)
    sf_server.cut_next_results(1)
    result = rf.pull_salesforce(tmp_path / "org2", connection=conn, objects=["OpportunityHistory"], bulk_page_size=40)
    expected = len(sf_server.live_records("OpportunityHistory"))
    assert expected > 80 and result.rows["OpportunityHistory"] == expected
    assert pulled(tmp_path / "org2", "OpportunityHistory") == served(sf_server, "OpportunityHistory")
    asked = [(r.path, r.query.get("locator")) for r in sf_server.requests[before:] if r.path.endswith("/results")]
    # The first set was cut halfway and asked for again with the same (empty) locator; then 40-row sets.
    assert asked[0] == asked[1]
    assert len(asked) == 1 + -(-expected // 40)


def test_written_files_are_the_bytes_a_csv_writer_gives_for_the_served_rows(sf_server, sf_credentials, tmp_path):
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(tmp_path / "org", connection=conn, objects=["Account", "Contract"], bulk_page_size=7)
    for obj in ("Account", "Contract"):
        header = sf_server.objects[obj].header
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in sf_server.live_records(obj):
            writer.writerow([row.get(c, "") for c in header])
        assert (tmp_path / "org" / f"{obj}.csv").read_text(encoding="utf-8") == buf.getvalue()


# -- 5. JWT audience


def test_jwt_audience_is_the_login_server_not_the_my_domain_url(sf_server, sf_credentials):
    # The fake accepts only aud=https://login.salesforce.com, as Salesforce does, whatever URL the token is posted to.
    conn = connect(sf_server, sf_credentials)
    assert conn.org_id == "00DTEST0000000001"
    with pytest.raises(rf.SalesforceAuthError, match="invalid_grant"):
        SalesforceConnection.from_env(
            jwt_env(sf_server, sf_credentials, SF_JWT_AUDIENCE=sf_server.url),
            retry=FAST,
            ca_bundle=str(sf_server.ca_path),
        )
    sf_server.jwt_audience = "https://test.salesforce.com"  # a sandbox
    with pytest.raises(rf.SalesforceAuthError, match="invalid_grant"):
        connect(sf_server, sf_credentials)
    env = jwt_env(sf_server, sf_credentials, SF_JWT_AUDIENCE="https://test.salesforce.com")
    assert SalesforceConnection.from_env(env, retry=FAST, ca_bundle=str(sf_server.ca_path)).org_id
    assert default_jwt_audience("https://acme--uat.sandbox.my.salesforce.com") == "https://test.salesforce.com"
    assert default_jwt_audience("https://test.salesforce.com") == "https://test.salesforce.com"
    assert default_jwt_audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"


# -- 6. the folder swap


def test_a_crash_between_the_two_renames_is_repaired_by_the_next_pull(sf_server, sf_credentials, tmp_path):
    out, state_file = tmp_path / "org", tmp_path / "state.json"
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(out, state_file=state_file, connection=conn)
    (out / "spend.csv").write_text("month,channel,sales_spend,marketing_spend\n2026-01-01,web,1,2\n")
    # As a crash leaves it: OUT renamed away, the new folder not yet renamed in.
    os.replace(out, tmp_path / ".org.old-0badc0de")
    (tmp_path / ".org.pull-k1ll3d").mkdir()
    (tmp_path / ".org.pull-k1ll3d" / "Contract.csv").write_text("Id\n")
    first = sf_server.live_records("Contract")[0]["Id"]
    sf_server.modify("Contract", first, {"Status": "Draft"})

    result = rf.pull_salesforce(out, state_file=state_file, connection=conn)
    assert result.modes["Contract"] == "incremental"  # the restored folder matched the state file
    assert (
        (out / "spend.csv").read_text().endswith("2026-01-01,web,1,2\n")
    )  # not a Salesforce file: only in the old copy
    assert pulled(out, "Contract") == served(sf_server, "Contract")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".org.lock", "org", "state.json"]

    # OUT present: leftovers are only removed.
    (tmp_path / ".org.old-12345678").mkdir()
    (tmp_path / ".org.pull-abc").mkdir()
    assert len(rf.recover_pull_folder(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".org.lock", "org", "state.json"]


def test_a_second_pull_fails_at_once_while_one_runs(sf_server, sf_credentials, tmp_path):
    out = tmp_path / "org"
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(out, connection=conn, objects=["Account"])
    before = (out / "Account.csv").read_bytes()
    sf_server.job_polls = 10**9  # the next job stays InProgress until released
    slow = connect(sf_server, sf_credentials, RetryPolicy(total=1, poll_interval=0.01, poll_max=0.05))
    outcome: dict = {}
    runner = threading.Thread(
        target=lambda: outcome.update(result=rf.pull_salesforce(out, connection=slow, objects=["Account"]))
    )
    runner.start()
    deadline = time.monotonic() + 10
    while len(sf_server.api_requests("POST", "jobs/query")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(rf.PullLockedError, match="Another pull") as info:
        rf.pull_salesforce(out, connection=conn, objects=["Account"])
    assert time.monotonic() - started < 2
    assert info.value.lock_file == str(tmp_path / ".org.lock")
    assert (out / "Account.csv").read_bytes() == before
    sf_server.job_polls = 0
    runner.join(20)
    assert outcome["result"].rows["Account"] == len(sf_server.live_records("Account"))


def test_a_state_file_that_cannot_be_written_after_the_swap_is_its_own_error(sf_server, sf_credentials, tmp_path):
    out = tmp_path / "org"
    (tmp_path / "afile").write_text("not a folder")
    conn = connect(sf_server, sf_credentials)
    sf_server.modify("Contract", sf_server.live_records("Contract")[0]["Id"], {"Status": "Draft"})
    with pytest.raises(rf.PullStateWriteError, match="WAS updated") as info:
        rf.pull_salesforce(out, state_file=tmp_path / "afile" / "state.json", connection=conn)
    assert info.value.state_file == str(tmp_path / "afile" / "state.json")
    assert pulled(out, "Contract") == served(sf_server, "Contract")


# -- 7. polling


def test_polls_back_off_and_a_job_that_runs_too_long_is_aborted(sf_server, sf_credentials):
    sf_server.job_polls = 6
    policy = RetryPolicy(total=1, backoff_factor=0.0, poll_interval=0.1, poll_max=0.2)
    conn = connect(sf_server, sf_credentials, policy)
    conn.bulk_query("SELECT Id FROM Account")
    [job_id] = list(sf_server.jobs)
    polls = [r.at for r in sf_server.requests if r.method == "GET" and r.path.endswith(f"jobs/query/{job_id}")]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert len(polls) == 6
    # Waits of 0.1, then 0.2 held at poll_max: 0.2, 0.2, 0.2 (doubling without the cap: 0.4, 0.8, 1.6 = 2.8 s).
    assert gaps[0] >= 0.09 and all(g >= 0.19 for g in gaps[1:])
    assert sum(gaps[2:]) < 1.5

    sf_server.job_polls = 10**9
    hurried = connect(sf_server, sf_credentials, RetryPolicy(total=1, poll_interval=0.05, poll_timeout=0.3))
    with pytest.raises(rf.SalesforceUnavailableError, match="aborted"):
        hurried.bulk_query("SELECT Id FROM Contract")
    job_id = list(sf_server.jobs)[-1]
    aborts = [json.loads(r.body) for r in sf_server.api_requests("PATCH", f"jobs/query/{job_id}")]
    assert aborts == [{"state": "Aborted"}]
    assert sf_server.jobs[job_id].info["state"] == "Aborted"


# -- 8. parameters


def test_http_urls_are_refused_before_any_request(sf_server, sf_credentials):
    for env in (
        jwt_env(sf_server, sf_credentials, SF_LOGIN_URL=sf_server.url.replace("https", "http")),
        {"SF_INSTANCE_URL": "http://acme.my.salesforce.com", "SF_ACCESS_TOKEN": "00DTEST!plain-text-token"},
    ):
        with pytest.raises(rf.SalesforceUrlError, match="https://") as info:
            SalesforceConnection.from_env(env, retry=FAST)
        assert isinstance(info.value, ValueError) and "plain-text-token" not in str(info.value)
    assert not sf_server.requests


def test_a_malformed_since_is_a_parameter_error(sf_server, sf_credentials, tmp_path):
    conn = connect(sf_server, sf_credentials)
    before = len(sf_server.requests)
    for since in ("yesterday", "2026-13-45", "2026-01-01T25:00"):
        with pytest.raises(rf.PullParameterError, match="since=") as info:
            rf.pull_salesforce(tmp_path / "org", since=since, connection=conn)
        assert isinstance(info.value, ValueError) and since in str(info.value)
    with pytest.raises(rf.PullParameterError, match="overlap"):
        rf.pull_salesforce(tmp_path / "org", overlap=-1, connection=conn)
    assert len(sf_server.requests) == before and not (tmp_path / "org").exists()


def test_a_state_file_from_another_org_is_refused(sf_server, sf_credentials, tmp_path):
    out, state_file = tmp_path / "org", tmp_path / "state.json"
    conn = connect(sf_server, sf_credentials)
    rf.pull_salesforce(out, state_file=state_file, connection=conn, objects=["Account"])
    state = json.loads(state_file.read_text())
    assert (state["org_id"], state["instance_url"]) == ("00DTEST0000000001", sf_server.url)
    state["org_id"] = "00DOTHER000000001"
    state_file.write_text(json.dumps(state))
    before = (out / "Account.csv").read_bytes()
    with pytest.raises(rf.StateOrgMismatchError, match="--full") as info:
        rf.pull_salesforce(out, state_file=state_file, connection=conn, objects=["Account"])
    assert isinstance(info.value, rf.PullParameterError)
    assert (out / "Account.csv").read_bytes() == before
    result = rf.pull_salesforce(out, state_file=state_file, connection=conn, objects=["Account"], full=True)
    assert result.modes["Account"] == "full"
    assert json.loads(state_file.read_text())["org_id"] == "00DTEST0000000001"
