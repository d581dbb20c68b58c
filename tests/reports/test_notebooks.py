"""Report templates: committed clean, parameters first, and the published report works."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from renewforecast.reports.catalogue import REPORTS
from renewforecast.reports.runner import default_notebooks_dir, list_notebooks

NOTEBOOKS = list_notebooks()
COMMITTED = sorted(default_notebooks_dir().glob("*.ipynb"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path: Path):
    # The notebooks are the reports' source, edited in JupyterLab: run them
    # there, then `make clean-notebooks` before committing.
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts (make clean-notebooks)"
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert sum("parameters" in t for t in tags) == 1, f"{path.name}: needs exactly one cell tagged parameters"
    assert not any("injected-parameters" in t for t in tags), f"{path.name}: holds a papermill-injected cell"
    assert "papermill" not in nb.metadata and not any("papermill" in c.metadata for c in nb.cells), path.name


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
    # One notebook and one catalogue line per report, nothing unlisted either way.
    assert [p.stem for p in NOTEBOOKS] == [r.name for r in REPORTS]
    assert [p.stem for p in NOTEBOOKS][:5] == [
        "00_data_quality",
        "01_revenue_kpis",
        "02_renewal_risk",
        "03_ltv_cac",
        "04_revenue_forecast",
    ]


def test_only_the_catalogue_names_the_reports():
    src = Path(__file__).parents[2] / "src" / "renewforecast"
    allowed = {src / "reports" / "catalogue.py"}
    for path in src.rglob("*.py"):
        if path in allowed:
            continue
        text = path.read_text(encoding="utf-8")
        named = [r.name for r in REPORTS[1:] if r.name in text]  # 00_data_quality may be a --help example
        assert not named, f"{path.relative_to(src)} names {named}: add a field to the catalogue instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_report_reads_the_runs_snapshot(path: Path):
    from renewforecast.reports.runner import SNAPSHOT_PARAMETER, notebook_parameters

    assert SNAPSHOT_PARAMETER in notebook_parameters(path)


@pytest.mark.slow
def test_report_end_to_end(hostile_report):
    # The shared run on the demo org (names carry script payloads, which only
    # the safe-HTML test looks at): train, then every notebook, as of 2026-06-30.
    latest = hostile_report
    html = (latest / "00_data_quality.html").read_text(encoding="utf-8")
    assert "ARR by segment" in html and "2026-06-30" in html
    assert "rf.load_book" not in html  # code cells are hidden
    assert "data:image/png;base64" in html  # the chart is embedded
    revenue = (latest / "01_revenue_kpis.html").read_text(encoding="utf-8")
    for heading in (
        "ARR over time",
        "MRR bridge",
        "Retention by segment",
        "Cohort retention",
        "Renewal performance by quarter",
        "Renewal worklist",
    ):
        assert heading in revenue
    assert revenue.count("data:image/png;base64") >= 5  # trend, bridge, retention, cohorts, renewals
    risk = (latest / "02_renewal_risk.html").read_text(encoding="utf-8")
    for heading in (
        "Backtest against what happened",
        "Drift",
        "How long customers stay",
        "Cohorts year over year",
        "Contracts at risk",
    ):
        assert heading in risk
    assert risk.count("data:image/png;base64") >= 4  # calibration, lift, survival, sBG
    assert "roc_auc" in risk
    economics = (latest / "03_ltv_cac.html").read_text(encoding="utf-8")
    for heading in (
        "CAC by channel over time",
        "LTV by segment, three ways",
        "LTV:CAC and payback against the bars",
        "Retention curves by cohort",
    ):
        assert heading in economics
    assert economics.count("data:image/png;base64") >= 5  # CAC, LTV, LTV:CAC, payback, cohorts
    forecast = (latest / "04_revenue_forecast.html").read_text(encoding="utf-8")
    for heading in (
        "How the forecast is built",
        "The forecast and its range",
        "Where the revenue comes from",
        "By group",
        "Scenarios",
        "How well the method did before",
    ):
        assert heading in forecast
    assert forecast.count("data:image/png;base64") >= 3  # fan, components, backtest accuracy
    for label in ("top_down_ets", "seasonal_naive", "coverage_p10_p90", "renewals 10% less likely"):
        assert label in forecast
    index = (latest / "index.html").read_text(encoding="utf-8")
    for page in ("00_data_quality", "01_revenue_kpis", "02_renewal_risk", "03_ltv_cac", "04_revenue_forecast"):
        assert f'href="{page}.html"' in index
    run = json.loads((latest / "run.json").read_text())
    assert run["as_of"] == "2026-06-30" and run["status"] == "ok"

    # The index's figures are the library's, checked against independent routes.
    import numpy as np
    import pandas as pd

    import renewforecast as rf

    book = rf.load_book(latest.parents[1] / "org")
    assert run["data_fingerprint"] == book.fingerprint
    figures = {name: {f["key"]: f["value"] for f in h["figures"]} for name, h in run["headlines"].items()}
    assert set(figures) == {p.stem for p in NOTEBOOKS}
    # The run keeps a record of what it published: every contract's probability and the forecast.
    record = rf.read_record(latest)
    assert record.as_of == pd.Timestamp("2026-06-30") and record.data_fingerprint == book.fingerprint
    assert set(record.table_names) >= {"scores", "forecast", "headline"}
    assert record.forecast_parameters["horizon_months"] == len(
        run["headlines"]["04_revenue_forecast"]["series"]["forecast"]["mean"]
    )
    kpis = figures["01_revenue_kpis"]
    assert kpis["arr"] == pytest.approx(rf.arr_on(book, "2026-06-30"), abs=0.01)  # a month end
    bridge = run["headlines"]["01_revenue_kpis"]["series"]["bridge"]
    assert kpis["mrr_bridge"] == pytest.approx(bridge["end_mrr"] - bridge["start_mrr"])
    assert bridge["start_mrr"] + bridge["new"] + bridge["expansion"] + bridge["reactivation"] - bridge[
        "contraction"
    ] - bridge["churn"] == pytest.approx(bridge["end_mrr"])
    model = rf.load_model(latest.parents[1] / "models")
    scores = rf.score_contracts(book, model=model, as_of="2026-06-30")
    ends = pd.to_datetime(scores["end_date"])
    soon = scores[(ends > "2026-06-30") & (ends <= "2026-12-31")]  # rest of Q3 and Q4 2026
    assert figures["02_renewal_risk"]["arr_at_risk"] == pytest.approx(soon["arr_at_risk"].sum())
    assert figures["02_renewal_risk"]["arr_at_risk"] == pytest.approx(
        ((1 - soon["renewal_probability"]) * soon["arr"]).sum()
    )
    # The drift figure and warnings in run.json are the library's for the same model and contracts.
    drift = rf.drift_report(model, rf.recent_decision_features(book, "2026-06-30"))
    assert figures["02_renewal_risk"]["drift"] == drift.level("training")
    assert run["headlines"]["02_renewal_risk"]["warnings"] == (
        rf.risk_headline(book, scores, "2026-06-30", drift=drift).warnings
    )
    fan = run["headlines"]["04_revenue_forecast"]["series"]["forecast"]
    # mean of the simulated totals = sum of the monthly means (to the rounding of each month)
    assert figures["04_revenue_forecast"]["horizon_revenue"] == pytest.approx(sum(fan["mean"]), abs=0.01 * 13)
    assert np.all(np.array(fan["p10"]) <= np.array(fan["p90"]))
    assert figures["00_data_quality"]["accounts"] == len(book.accounts)
    index = (latest / "index.html").read_text(encoding="utf-8")
    assert rf.format_value(kpis["arr"], "money") in index
    assert rf.format_value(figures["03_ltv_cac"]["ltv_to_cac"], "ratio") in index


def test_data_model_doc_lists_every_mapped_field():
    from renewforecast.io.salesforce import SALESFORCE_OBJECTS
    from renewforecast.schemas import TABLES

    doc = (Path(__file__).parents[2] / "docs" / "data_model.md").read_text(encoding="utf-8")
    for obj in SALESFORCE_OBJECTS.values():
        assert obj.file in doc
        for field in obj.fields:
            assert f"`{field.source}`" in doc, field.source
    for spec in TABLES.values():
        for col in spec.columns:
            assert f"`{col.name}`" in doc, col.name


def _makefile_default(name: str) -> str:
    text = (Path(__file__).parents[2] / "Makefile").read_text(encoding="utf-8")
    return next(line.split("?=")[1].strip() for line in text.splitlines() if line.startswith(f"{name} ?="))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_defaults_point_at_what_make_builds_when_opened_from_the_notebooks_folder(path: Path, tmp_path, monkeypatch):
    # JupyterLab (make lab) runs a notebook in its own folder, the package's
    # src/renewforecast/reports/notebooks/; its relative defaults are looked
    # for from there upward and must land on the demo org and the model.
    import ast

    from renewforecast import report_path
    from renewforecast.reports.runner import notebook_parameters

    root = Path(__file__).parents[2]
    params = notebook_parameters(path)
    # A copy of the checkout's layout: the notebook's folder as deep below it as in the checkout.
    mirror = tmp_path / "checkout"
    here = mirror / path.parent.relative_to(root)
    here.mkdir(parents=True)
    (mirror / _makefile_default("DATA")).mkdir(parents=True)
    (mirror / _makefile_default("MODELS") / "renewal").mkdir(parents=True)
    monkeypatch.chdir(here)
    source = ast.literal_eval(params["source"]["default"])
    assert Path(report_path(source)) == (mirror / _makefile_default("DATA")).resolve()
    if "model_path" in params:
        model = ast.literal_eval(params["model_path"]["default"])
        assert Path(report_path(model)) == (mirror / _makefile_default("MODELS") / "renewal").resolve()
    assert "src/renewforecast/reports/notebooks" in (root / "Makefile").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_notebook_runs_as_it_is_from_the_notebooks_folder(demo_org, tmp_path):
    # The layout of a checkout after `make demo`: the package's notebooks
    # three folders below the root that holds data/demo.
    import shutil

    import papermill

    folder = tmp_path / "src" / "renewforecast" / "reports" / "notebooks"
    folder.mkdir(parents=True)
    shutil.copy(NOTEBOOKS[0], folder)
    shutil.copytree(demo_org.path, tmp_path / "data" / "demo")
    target = folder / NOTEBOOKS[0].name
    executed = papermill.execute_notebook(
        str(target), str(tmp_path / "out.ipynb"), cwd=str(target.parent), progress_bar=False, kernel_name="python3"
    )
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code" and c.source.strip())
    import renewforecast as rf
    from renewforecast.reports.headline import HEADLINE_MIME

    headlines = [
        o["data"][HEADLINE_MIME]
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
        if HEADLINE_MIME in o.get("data", {})
    ]
    accounts = {f["key"]: f["value"] for f in headlines[0]["figures"]}["accounts"]
    assert accounts == len(rf.load_book(demo_org.path).accounts)  # it found and read data/demo


@pytest.mark.slow
@pytest.mark.parametrize("days", [-1, 0], ids=["before any subscription", "on the first one's start"])
def test_the_kpi_report_before_any_revenue_says_so_and_shows_no_later_month(demo_org, demo_book, tmp_path, days):
    # The last month end on or before either day has no MRR, no bridge, no base year and nothing to
    # forecast from; the first month with revenue is after the as-of date and must not be shown.
    import papermill

    from renewforecast.reports.headline import HEADLINE_MIME

    first = demo_book.subscriptions["start_date"].min()
    later = (first + pd.offsets.MonthEnd(0)).date().isoformat()
    report = next(p for p in NOTEBOOKS if p.name == "01_revenue_kpis.ipynb")
    executed = papermill.execute_notebook(
        str(report),
        str(tmp_path / "out.ipynb"),
        parameters={
            "source": str(demo_org.path),
            "as_of": (first + pd.Timedelta(days=days)).date().isoformat(),
            "outlook_sims": 50,
        },
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    figures = {
        f["key"]: f["value"]
        for o in outputs
        if HEADLINE_MIME in o.get("data", {})
        for f in o["data"][HEADLINE_MIME]["figures"]
    }
    assert figures["arr"] == 0 and figures["mrr_bridge"] == 0
    assert figures["nrr"] is None and figures["nrr_forward"] is None
    text = json.dumps([o.get("data", {}) for o in outputs if HEADLINE_MIME not in o.get("data", {})])
    assert "Retention is not defined yet" in text and "Where NRR is heading is not defined yet" in text
    assert later not in text
