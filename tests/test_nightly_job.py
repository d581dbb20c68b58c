"""The nightly job end to end, as a scheduler runs it: pull, score --push, report, and the exit codes it sees.

Every command runs as its own process (the installed ``renewforecast``) against
the local HTTPS Salesforce of ``tests/salesforce_server.py``, with credentials
only in the environment (the JWT bearer flow of a connected app). Nothing here
is stubbed: the server keeps the org's records, and the tests read them back
from it.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import renewforecast as rf

RF = [sys.executable, "-m", "renewforecast"]
SCORE_FIELDS = {
    "Renewal_Probability__c": ("percent", {"precision": 4, "scale": 1}),
    "Renewal_Risk_Band__c": ("picklist", {"length": 255}),
    "ARR_At_Risk__c": ("currency", {"precision": 16, "scale": 2}),
    "Renewal_Reason_1__c": ("string", {"length": 255}),
    "Renewal_Reason_2__c": ("string", {"length": 255}),
    "Renewal_Reason_3__c": ("string", {"length": 255}),
    "Renewal_Model_Version__c": ("string", {"length": 80}),
    "Renewal_Scored_At__c": ("datetime", {}),
}
RULE = "FIELD_CUSTOM_VALIDATION_EXCEPTION:Renewal risk band must be set for active contracts:Renewal_Risk_Band__c --"


@pytest.fixture(scope="module")
def model(demo_org, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nightly-model") / "renewal"
    done = subprocess.run([*RF, "train", str(demo_org.path), "--out", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def org(sf_server, sf_credentials):
    """The served org with the score fields on Contract, and the job's environment."""
    for name, (kind, describe) in SCORE_FIELDS.items():
        sf_server.add_field("Contract", name, kind, **describe)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SF_") and k != "REQUESTS_CA_BUNDLE"}
    env.update(
        {
            "SF_LOGIN_URL": sf_server.url,
            "SF_CLIENT_ID": sf_credentials.client_id,
            "SF_USERNAME": sf_credentials.username,
            "SF_JWT_KEY_FILE": str(sf_credentials.key_file),
            "SF_CA_BUNDLE": str(sf_server.ca_path),
            "SF_POLL_INTERVAL": "0.05",
            "SF_BACKOFF": "0.05",
            "SF_RETRIES": "2",
        }
    )
    return sf_server, env


def run(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*RF, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def contract(server, rid: str) -> dict[str, str]:
    return next(r for r in server.live_records("Contract") if r["Id"] == rid)


def secrets_of(server, creds) -> list[str]:
    """Every secret the job held: the access tokens Salesforce issued, the client secret, the private key."""
    key_lines = [ln for ln in creds.key_text.splitlines() if ln and not ln.startswith("-----")]
    return [*server.issued, creds.client_secret, *key_lines]


def test_pull_score_push_report_end_to_end(org, sf_credentials, demo_org, model, tmp_path):
    server, env = org
    work = tmp_path / "job"
    work.mkdir()
    outputs = []

    # 1. pull: the export folder the org's API gives, in the layout load_book reads
    pulled = run(env, "pull", "org", "--state", "pull-state.json", cwd=work)
    outputs.append(pulled)
    assert pulled.returncode == 0, pulled.stderr
    for extra in ("spend.csv", "signals.csv"):  # not Salesforce objects: another job writes them
        shutil.copy(demo_org.path / extra, work / "org" / extra)
    assert rf.load_book(work / "org").fingerprint == rf.load_book(demo_org.path).fingerprint

    # 2. score --push: the scores land in the org's Contract fields
    scored = run(env, "score", "org", "--model", model, "--out", "out/scores.csv", "--crm", "--push", cwd=work)
    outputs.append(scored)
    assert scored.returncode == 0, scored.stderr
    upload = pd.read_csv(work / "out" / "scores.csv", dtype=str, keep_default_na=False)
    assert len(upload) > 0
    for row in upload.itertuples(index=False):
        held = contract(server, row.Id)
        assert float(held["Renewal_Probability__c"]) == pytest.approx(float(row.Renewal_Probability__c), abs=0.05)
        assert held["Renewal_Risk_Band__c"] == row.Renewal_Risk_Band__c
        assert held["Renewal_Model_Version__c"] == row.Renewal_Model_Version__c
    jobs_before = len(server.api_requests("POST", "/jobs/ingest"))
    assert jobs_before == 1

    # the same night run again sends nothing: every row already holds these values
    again = run(env, "score", "org", "--model", model, "--out", "out/scores.csv", "--crm", "--push", cwd=work)
    outputs.append(again)
    assert again.returncode == 0, again.stderr
    assert len(server.api_requests("POST", "/jobs/ingest")) == jobs_before
    assert f"0 records updated, {len(upload):,} unchanged" in again.stdout

    # 3. report on the pulled folder
    published = run(
        env, "report", "org", "--out", "reports", "--model", model, "--notebook", "00_data_quality", cwd=work
    )
    outputs.append(published)
    assert published.returncode == 0, published.stderr
    assert (work / "reports" / "latest" / "index.html").is_file()

    # 4. the next night's pull reads only what changed: the contracts the push wrote to
    nightly = run(env, "pull", "org", "--state", "pull-state.json", cwd=work)
    outputs.append(nightly)
    assert nightly.returncode == 0, nightly.stderr
    contract_line = next(ln for ln in nightly.stdout.splitlines() if ln.split()[0] == "Contract")
    assert f"{len(upload):,} changed, 0 deleted" in contract_line
    assert rf.load_book(work / "org").fingerprint == rf.load_book(demo_org.path).fingerprint

    # no secret in any file the job wrote, nor in anything it printed
    secrets = secrets_of(server, sf_credentials)
    assert len(secrets) > 3
    texts = [o.stdout + o.stderr for o in outputs]
    texts += [p.read_bytes().decode("utf-8", "replace") for p in work.rglob("*") if p.is_file()]
    for secret in secrets:
        assert not any(secret in text for text in texts)


def test_the_exit_codes_a_scheduler_sees(org, demo_org, model, tmp_path):
    server, env = org
    work = tmp_path / "job"
    work.mkdir()
    assert run(env, "pull", "org", cwd=work).returncode == 0
    before = {p.name: p.read_bytes() for p in (work / "org").iterdir()}

    # 2: a --since that is no date, checked before any login (no credentials needed to say so)
    bare = {k: v for k, v in env.items() if not k.startswith("SF_")}
    done = run(bare, "pull", "org", "--since", "last tuesday", cwd=work)
    assert done.returncode == 2 and "last tuesday" in done.stderr

    # 14: another pull into the same folder holds its lock
    import fcntl

    lock = work / ".org.lock"
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run(env, "pull", "org", cwd=work)
    assert done.returncode == 14, done.stderr
    assert {p.name: p.read_bytes() for p in (work / "org").iterdir()} == before

    # 10: no credentials in the environment, or a session that cannot be renewed
    done = run(bare, "pull", "org", cwd=work)
    assert done.returncode == 10 and "SF_INSTANCE_URL" in done.stderr
    expired = dict(bare, SF_INSTANCE_URL=server.url, SF_ACCESS_TOKEN="00DTEST!no-longer-valid")
    expired["SF_CA_BUNDLE"] = env["SF_CA_BUNDLE"]
    done = run(expired, "pull", "org", cwd=work)
    assert done.returncode == 10 and "INVALID_SESSION_ID" in done.stderr
    assert "no-longer-valid" not in done.stderr + done.stdout

    # 11: the org's daily request limit, at once and with the folder untouched
    server.limit_exceeded("daily")
    done = run(env, "pull", "org", cwd=work)
    assert done.returncode == 11 and "TotalRequests" in done.stderr
    assert {p.name: p.read_bytes() for p in (work / "org").iterdir()} == before

    # 12: Salesforce does not answer (502 on every try, after the retries)
    server.fail_next(50, status=502, retry_after=None)
    done = run(env, "pull", "org", cwd=work)
    assert done.returncode == 12, done.stderr
    assert {p.name: p.read_bytes() for p in (work / "org").iterdir()} == before
    server.clear_faults()

    # 13: pushed, but Salesforce refused a row: it and the error are in the failures CSV
    for extra in ("spend.csv", "signals.csv"):
        shutil.copy(demo_org.path / extra, work / "org" / extra)
    dry = run(env, "score", "org", "--model", model, "--push", "--dry-run", cwd=work)
    assert dry.returncode == 0, dry.stderr
    assert not server.api_requests("POST", "/jobs/ingest")
    changing = dry.stdout.split("Dry run: ")[1].split(" Contract records would change")[0]
    first = next(ln.split()[0] for ln in dry.stdout.splitlines() if ln.startswith("  800"))
    server.fail_ingest({first: RULE}, always=True)
    done = run(env, "score", "org", "--model", model, "--push", "--failures", "refused.csv", cwd=work)
    assert done.returncode == 13, done.stderr
    with (work / "refused.csv").open(encoding="utf-8", newline="") as fh:
        refused = list(csv.DictReader(fh))
    assert [r["Id"] for r in refused] == [first]
    assert refused[0]["sf__Error"] == RULE
    assert f"{int(changing.replace(',', '')) - 1:,} records updated" in done.stdout
    # a re-run sends only the refused row
    done = run(env, "score", "org", "--model", model, "--push", "--failures", "refused.csv", cwd=work)
    assert done.returncode == 13
    last_upload = server.api_requests("PUT", "/batches")[-1].body
    assert [r["Id"] for r in csv.DictReader(last_upload.splitlines())] == [first]
