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
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None
        # notebooks hold no logic: no function or class definitions, no loops
        assert "def " not in cell.source and "class " not in cell.source
        assert "for " not in cell.source.replace("format", "")


def test_templates_cover_the_reports():
    assert [p.stem for p in NOTEBOOKS][:2] == ["00_data_quality", "01_revenue_kpis"]


@pytest.mark.slow
def test_report_end_to_end(demo_org, tmp_path):
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, ["report", str(demo_org.path), "--out", str(out), "--as-of", "2026-06-30"])
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
    index = (latest / "index.html").read_text(encoding="utf-8")
    assert 'href="00_data_quality.html"' in index and 'href="01_revenue_kpis.html"' in index
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
