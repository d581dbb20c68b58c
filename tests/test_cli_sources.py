"""The command line on a warehouse: --source, --schema and --results-db against a real PostgreSQL server.

Each command runs as its own process, as a scheduler runs it; the database is
the session's PostgreSQL (tests/_postgres.py), its password really checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import renewforecast as rf
from _postgres import PG_PASSWORD

RF = [sys.executable, "-m", "renewforecast"]


@pytest.fixture(scope="module")
def warehouse(demo_org, postgres_url) -> tuple[str, str]:
    """(URL without its password, schema): the demo org as Fivetran writes it, with deleted rows."""
    schema = f"sf_{uuid.uuid4().hex[:8]}"
    rf.write_replica(demo_org.path, postgres_url, schema=schema, layout="fivetran", deleted={"Contract": 2})
    return postgres_url.replace(f":{PG_PASSWORD}@", "@"), schema


@pytest.fixture(scope="module")
def model(demo_org, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sources-model") / "renewal"
    done = subprocess.run([*RF, "train", str(demo_org.path), "--out", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folder


def run(*args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RENEWFORECAST_", "PG"))}
    environment.update(env or {})
    return subprocess.run([*RF, *map(str, args)], env=environment, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_validate_reads_the_warehouse_with_the_password_from_the_environment(warehouse, demo_book):
    url, schema = warehouse
    done = run("validate", "--source", url, "--schema", schema, env={"PGPASSWORD": PG_PASSWORD})
    assert done.returncode == 0, done.stderr
    assert f"fingerprint {demo_book.fingerprint[:12]}" in done.stdout  # the CSV export's very data
    # the whole URL, password included, may come from the environment
    with_password = url.replace("postgres@", f"postgres:{PG_PASSWORD}@")
    done = run("validate", "--schema", schema, env={"RENEWFORECAST_SOURCE": with_password})
    assert done.returncode == 0, done.stderr
    assert PG_PASSWORD not in done.stdout + done.stderr


def test_refusals_and_their_exit_codes(warehouse):
    url, schema = warehouse
    with_password = url.replace("postgres@", f"postgres:{PG_PASSWORD}@")
    # 2: a password typed on the command line, before anything is read
    done = run("validate", "--source", with_password, "--schema", schema)
    assert done.returncode == 2 and "RENEWFORECAST_SOURCE" in done.stderr
    assert PG_PASSWORD not in done.stdout + done.stderr
    done = run("validate", "--source", url + "?password=" + PG_PASSWORD, "--schema", schema)
    assert done.returncode == 2 and PG_PASSWORD not in done.stdout + done.stderr
    # 10: the server refuses the login
    done = run("validate", "--source", url, "--schema", schema, env={"PGPASSWORD": "not-the-password"})
    assert done.returncode == 10, done.stderr
    assert "password authentication failed" in done.stderr
    # 12: nothing listens there
    with socket_closed() as port:
        closed = url.rsplit(":", 1)[0] + f":{port}/postgres"
        done = run("validate", "--source", closed, env={"PGPASSWORD": PG_PASSWORD})
    assert done.returncode == 12, done.stderr
    # 2: the schema holds no replicated Salesforce objects (a wrong --schema), naming what it looked for
    done = run("validate", "--source", url, "--schema", "public", env={"PGPASSWORD": PG_PASSWORD})
    assert done.returncode == 2, done.stderr
    assert "No replicated Salesforce objects found in schema public" in done.stderr
    # 2: both a folder and --source, or neither
    assert run("validate").returncode == 2


def test_score_and_report_write_their_results_as_tables(warehouse, model, demo_org, postgres_url, tmp_path):
    url, schema = warehouse
    results = f"res_{uuid.uuid4().hex[:8]}"
    env = {"PGPASSWORD": PG_PASSWORD}
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {results}"))
    score = [
        "score", "--source", url, "--schema", schema, "--model", model, "--out", tmp_path / "scores.csv",
        "--results-db", url, "--results-schema", results,
    ]  # fmt: skip
    done = run(*score, env=env)
    assert done.returncode == 0, done.stderr
    csv_scores = pd.read_csv(tmp_path / "scores.csv", dtype={"contract_id": str})
    stored = pd.read_sql_table("scores", engine, schema=results)
    assert len(set(stored["run_id"])) == 1
    assert sorted(stored["contract_id"]) == sorted(csv_scores["contract_id"])
    merged = stored.merge(csv_scores, on="contract_id", suffixes=("_db", "_csv"))
    assert (merged["renewal_probability_db"] - merged["renewal_probability_csv"]).abs().max() < 1e-12

    # the same scores from the export folder: a warehouse source is the same data
    folder = run("score", demo_org.path, "--model", model, "--out", tmp_path / "from_folder.csv")
    assert folder.returncode == 0, folder.stderr
    from_folder = pd.read_csv(tmp_path / "from_folder.csv", dtype={"contract_id": str})
    pd.testing.assert_frame_equal(
        from_folder.drop(columns="scored_at").sort_values("contract_id").reset_index(drop=True),
        csv_scores.drop(columns="scored_at").sort_values("contract_id").reset_index(drop=True),
    )

    reports = tmp_path / "reports"
    report = [
        "report", "--source", url, "--schema", schema, "--model", model, "--out", reports,
        "--notebook", "00_data_quality", "--notebook", "01_revenue_kpis", "--results-db", url,
        "--results-schema", results,
    ]  # fmt: skip
    done = run(*report, env=env)
    assert done.returncode == 0, done.stderr
    run_id = (reports / "latest").resolve().name
    kpis = pd.read_sql_table("kpis", engine, schema=results)
    assert set(kpis["run_id"]) == {run_id}
    meta = pd.read_json(reports / "latest" / "run.json", typ="series")
    figures = [f for h in meta["headlines"].values() for f in h["figures"]]
    assert len(kpis) == len(figures)
    arr = next(f for f in figures if f["key"] == "arr")
    assert kpis.loc[kpis["key"] == "arr", "value"].item() == pytest.approx(arr["value"])
    assert meta["source"] == f"{url} (schema {schema})"
    # no password in anything the run published
    for path in reports.rglob("*"):
        if path.is_file():
            assert PG_PASSWORD not in path.read_bytes().decode("utf-8", "replace"), path
    engine.dispose()


class socket_closed:
    """A loopback port that nothing listens on, for the length of the block."""

    def __enter__(self) -> int:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None
