"""Report templates: committed clean, parameters first, and the published report works."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from renewforecast.cli import main
from renewforecast.reporting import list_notebooks

NOTEBOOKS = list_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_template_is_clean_and_parameterised(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    import ast

    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None
        # notebooks hold no logic: no function or class definitions, no loops
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("%"))
        banned = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While, ast.Lambda)
        kinds = {type(node).__name__ for node in ast.walk(ast.parse(source)) if isinstance(node, banned)}
        assert not kinds - {"Lambda"}, f"{path.name}: {kinds}"


def test_templates_cover_the_reports():
    assert [p.stem for p in NOTEBOOKS][:5] == ["00_data_quality", "01_revenue_kpis", "02_renewal_risk", "03_ltv_cac",
                                               "04_revenue_forecast"]


@pytest.mark.slow
def test_report_end_to_end(demo_org, tmp_path):
    out = tmp_path / "reports"
    models = tmp_path / "models" / "renewal"
    trained = CliRunner().invoke(main, ["train", str(demo_org.path), "--out", str(models), "--as-of", "2026-06-30"])
    assert trained.exit_code == 0, trained.output
    assert "backtest model" in trained.output
    result = CliRunner().invoke(main, ["report", str(demo_org.path), "--out", str(out), "--as-of", "2026-06-30",
                                       "--model", str(models)])
    assert result.exit_code == 0, result.output
    latest = out / "latest"
    html = (latest / "00_data_quality.html").read_text(encoding="utf-8")
    assert "ARR by segment" in html and "2026-06-30" in html
    assert "rf.load_book" not in html  # code cells are hidden
    assert "data:image/png;base64" in html  # the chart is embedded
    revenue = (latest / "01_revenue_kpis.html").read_text(encoding="utf-8")
    for heading in ("ARR over time", "MRR bridge", "Retention by segment", "Cohort retention",
                    "Renewal performance by quarter", "Renewal worklist"):
        assert heading in revenue
    assert revenue.count("data:image/png;base64") >= 5  # trend, bridge, retention, cohorts, renewals
    risk = (latest / "02_renewal_risk.html").read_text(encoding="utf-8")
    for heading in ("Backtest against what happened", "How long customers stay", "Cohorts year over year",
                    "Contracts at risk"):
        assert heading in risk
    assert risk.count("data:image/png;base64") >= 4  # calibration, lift, survival, sBG
    assert "roc_auc" in risk
    economics = (latest / "03_ltv_cac.html").read_text(encoding="utf-8")
    for heading in ("CAC by channel over time", "LTV by segment, three ways", "LTV:CAC and payback against the bars",
                    "Retention curves by cohort"):
        assert heading in economics
    assert economics.count("data:image/png;base64") >= 5  # CAC, LTV, LTV:CAC, payback, cohorts
    forecast = (latest / "04_revenue_forecast.html").read_text(encoding="utf-8")
    for heading in ("How the forecast is built", "The forecast and its range", "Where the revenue comes from",
                    "By group", "Scenarios", "How well the method did before"):
        assert heading in forecast
    assert forecast.count("data:image/png;base64") >= 3  # fan, components, backtest accuracy
    for label in ("top_down_ets", "seasonal_naive", "coverage_p10_p90", "renewals 10% less likely"):
        assert label in forecast
    index = (latest / "index.html").read_text(encoding="utf-8")
    for page in ("00_data_quality", "01_revenue_kpis", "02_renewal_risk", "03_ltv_cac", "04_revenue_forecast"):
        assert f'href="{page}.html"' in index
    run = json.loads((latest / "run.json").read_text())
    assert run["as_of"] == "2026-06-30" and run["status"] == "ok"


def test_data_model_doc_lists_every_mapped_field():
    from renewforecast.io.salesforce import SALESFORCE_OBJECTS
    from renewforecast.schemas import TABLES

    doc = (Path(__file__).parents[1] / "docs" / "data_model.md").read_text(encoding="utf-8")
    for obj in SALESFORCE_OBJECTS.values():
        assert obj.file in doc
        for field in obj.fields:
            assert f"`{field.source}`" in doc, field.source
    for spec in TABLES.values():
        for col in spec.columns:
            assert f"`{col.name}`" in doc, col.name
