"""The command line: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from click.testing import CliRunner

import renewforecast as rf
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
    assert "  unparseable_date (1):" in result.output
    assert f"    Contract.csv line {line} [id {rid}] column StartDate: cannot read" in result.output


def test_validate_lists_errors_and_warnings_grouped_with_counts_and_no_empty_fields(org_copy):
    for row in (2, 3, 4, 5, 6, 7, 8):
        edit_sf(org_copy, "Contract.csv", row, "StartDate", "31.02.2024")
    (org_copy / "spend.csv").unlink()
    result = CliRunner().invoke(main, ["validate", str(org_copy)])
    assert result.exit_code == 1
    assert "Errors (7):" in result.output and "  unparseable_date (7):" in result.output
    assert "... and 2 more (--all lists every row)" in result.output
    assert "  missing_optional_file (1):" in result.output
    assert "    spend.csv: spend.csv is not in the folder" in result.output
    assert "line :" not in result.output and " line  " not in result.output
    every = CliRunner().invoke(main, ["validate", str(org_copy), "--all"])
    assert every.output.count("column StartDate: cannot read") == 7


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
    result = CliRunner().invoke(
        main,
        [
            "forecast",
            str(demo_org.path),
            "--as-of",
            "2026-06-30",
            "--horizon",
            "6",
            "--by",
            "segment",
            "--sims",
            "50",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table.columns.tolist() == ["scenario", "month", "group", "component", "mean", "p10", "p50", "p90"]
    assert sorted(table["month"].unique()) == [
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
        "2026-10-31",
        "2026-11-30",
        "2026-12-31",
    ]
    assert {"total", "contracted", "one_time", "usage", "renewal", "pipeline", "new_business"} == set(
        table["component"]
    )
    assert "Wrote" in result.output
    before = out.read_bytes()
    bad = CliRunner().invoke(main, ["forecast", str(demo_org.path), "--by", "colour", "--out", str(out)])
    assert bad.exit_code == 1 and "not an account column" in bad.output
    assert out.read_bytes() == before  # a failed run leaves the previous file alone


def test_report_help_lists_every_notebook_and_its_parameters():
    result = CliRunner().invoke(main, ["report", "--help"])
    assert result.exit_code == 0
    for stem in ("00_data_quality", "01_revenue_kpis", "02_renewal_risk", "03_ltv_cac", "04_revenue_forecast"):
        assert f"Notebook {stem}" in result.output
    for name in ("horizon_months", "discount_rate", "top_rows", "backtest_sims"):
        assert name in result.output


def test_report_parameters_are_checked_before_any_kernel_starts(demo_org, tmp_path):
    out = tmp_path / "reports"
    cases = [
        (["-p", "horizon_months=twelve"], "expected int"),
        (["-p", "colour=blue"], "no report notebook takes it"),
        (["-p", "horizon_months"], "NAME=VALUE"),
        (["--as-of", "2099-01-31"], "in the future"),
        (["--as-of", "2019-01-31"], "before the first subscription"),
        (["--as-of", "31/01/2026"], "not a date"),
        # The demo's first subscription starts 2021-04-16: two years on is April 2023.
        (["--as-of", "2023-03-31"], "the earliest as-of it can report on is 2023-04-30"),
        # Two years in, the 60-account org has decided too few renewals to backtest a model.
        (["--as-of", "2023-04-30"], "renewal decisions are known by then and its backtest needs 20"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(main, ["report", str(demo_org.path), "--out", str(out), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    # every problem at once
    both = CliRunner().invoke(
        main, ["report", str(demo_org.path), "--out", str(out), "-p", "colour=1", "-p", "n_sims=1.5"]
    )
    assert both.exit_code == 2 and "colour" in both.output and "n_sims" in both.output
    assert not out.exists()  # nothing was run, nothing published


def test_report_passes_checked_parameters_to_the_run(demo_org, tmp_path, monkeypatch):
    import renewforecast.reports.runner as reporting

    seen = {}

    def fake_run(directory, **kwargs):
        seen.update(kwargs)
        return tmp_path / "run"

    monkeypatch.setattr(reporting, "run_reports", fake_run)
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(demo_org.path),
            "--out",
            str(tmp_path / "r"),
            "--as-of",
            "2026-06-30",
            "-p",
            "horizon_months=6",
            "-p",
            "by=region",
            "-p",
            "discount_rate=0.08",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["as_of"] == "2026-06-30"
    assert {k: seen["parameters"][k] for k in ("horizon_months", "by", "discount_rate")} == {
        "horizon_months": 6,
        "by": "region",
        "discount_rate": 0.08,
    }
    # The Book the command read for its checks is the run's: the export is read once.
    assert seen["book"].fingerprint == rf.load_book(demo_org.path).fingerprint
    assert seen["notebooks_dir"] is None
    # Without --as-of the date is resolved once, here, from the export.
    seen.clear()
    result = CliRunner().invoke(main, ["report", str(demo_org.path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert seen["as_of"] == str(rf.load_book(demo_org.path).data_end.date())


def test_notebooks_copy_gives_a_team_its_own_reports(demo_org, tmp_path, monkeypatch):
    import renewforecast.reports.runner as reporting

    dest = tmp_path / "team"
    copied = CliRunner().invoke(main, ["notebooks", "copy", str(dest)])
    assert copied.exit_code == 0, copied.output
    templates = reporting.list_notebooks()
    assert [p.name for p in reporting.list_notebooks(dest)] == [p.name for p in templates]
    assert all((dest / p.name).read_bytes() == p.read_bytes() for p in templates)
    (dest / templates[0].name).write_text("{}")  # the team's edit
    again = CliRunner().invoke(main, ["notebooks", "copy", str(dest)])
    assert again.exit_code == 2 and "--force" in again.output
    assert (dest / templates[0].name).read_text() == "{}"  # nothing overwritten
    forced = CliRunner().invoke(main, ["notebooks", "copy", str(dest), "--force"])
    assert forced.exit_code == 0 and (dest / templates[0].name).read_bytes() == templates[0].read_bytes()

    seen = {}
    monkeypatch.setattr(reporting, "run_reports", lambda directory, **kw: seen.update(kw) or tmp_path / "run")
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(demo_org.path),
            "--out",
            str(tmp_path / "r"),
            "--notebooks",
            str(dest),
            "--notebook",
            templates[1].stem,
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["notebooks_dir"] == str(dest) and seen["notebooks"] == [templates[1].stem]
    for name in ("snapshot", "record_dir", "reports_dir"):
        refused = CliRunner().invoke(main, ["report", str(demo_org.path), "-p", f"{name}=/tmp/x"])
        assert refused.exit_code == 2 and "the run sets it" in refused.output


def test_date_window_widens_the_dates_validate_accepts(org_copy):
    edit_sf(org_copy, "Opportunity.csv", 3, "CloseDate", "1985-06-30")
    refused = CliRunner().invoke(main, ["validate", str(org_copy)])
    assert refused.exit_code == 1 and "date_out_of_window" in refused.output
    widened = CliRunner().invoke(main, ["validate", str(org_copy), "--date-window", "1980-01-01:"])
    assert widened.exit_code == 0, widened.output
    bad = CliRunner().invoke(main, ["validate", str(org_copy), "--date-window", "1980"])
    assert bad.exit_code == 2 and "FIRST:LAST" in bad.output
