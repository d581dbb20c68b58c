"""The command line: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from click.testing import CliRunner

from _support import edit_sf
from renewforecast.cli import main


def test_demo_data_then_validate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "org"
    result = runner.invoke(main, ["demo-data", str(out), "--accounts", "15", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert (out / "SBQQ__Subscription__c.csv").exists()
    result = runner.invoke(main, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    assert "valid (USD)" in result.output and "contracts" in result.output


def test_validate_exits_1_and_lists_problems(org_copy):
    line, rid = edit_sf(org_copy, "Contract.csv", 2, "StartDate", "31.02.2024")
    result = CliRunner().invoke(main, ["validate", str(org_copy)])
    assert result.exit_code == 1
    assert f"Contract.csv line {line} [id {rid}] column StartDate: unparseable_date" in result.output


def test_report_on_invalid_data_publishes_nothing(org_copy, tmp_path):
    edit_sf(org_copy, "Contract.csv", 2, "StartDate", "bad")
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, ["report", str(org_copy), "--out", str(out)])
    assert result.exit_code == 1
    assert "validate" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_python_dash_m_works():
    done = subprocess.run([sys.executable, "-m", "renewforecast", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "demo-data" in done.stdout


def test_forecast_writes_a_tidy_csv_and_refuses_bad_options(demo_org, tmp_path):
    out = tmp_path / "forecast.csv"
    result = CliRunner().invoke(main, ["forecast", str(demo_org.path), "--as-of", "2026-06-30", "--horizon", "6",
                                       "--by", "segment", "--sims", "50", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table.columns.tolist() == ["scenario", "month", "group", "component", "mean", "p10", "p50", "p90"]
    assert sorted(table["month"].unique()) == ["2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31",
                                               "2026-11-30", "2026-12-31"]
    assert {"total", "contracted", "renewal", "pipeline", "new_business"} == set(table["component"])
    assert "Wrote" in result.output
    before = out.read_bytes()
    bad = CliRunner().invoke(main, ["forecast", str(demo_org.path), "--by", "colour", "--out", str(out)])
    assert bad.exit_code == 1 and "not an account column" in bad.output
    assert out.read_bytes() == before  # a failed run leaves the previous file alone
