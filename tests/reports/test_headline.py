"""One code path per number: a headline built from the tables its report computed calls no engine again,
and shows exactly the values in those tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import renewforecast as rf
from renewforecast.analyses import saas_metrics, scoring, unit_economics
from renewforecast.reports import headline

AS_OF = "2026-06-30"


def refuse(*names_in: tuple[object, str]):
    """Engines a headline must not call once it is given their tables."""

    def fail(*args, **kwargs):
        raise AssertionError("an engine was called again: the headline must use the table it was given")

    return [(module, name, fail) for module, name in names_in]


@pytest.fixture
def no_engines(monkeypatch):
    def apply(*pairs):
        for module, name, fail in refuse(*pairs):
            monkeypatch.setattr(module, name, fail)

    return apply


def figures(h: rf.Headline) -> dict:
    return {f["key"]: f["value"] for f in h.figures}


@pytest.fixture(scope="module")
def kpi_tables(demo_book):
    book = demo_book.as_of(AS_OF)
    month_end = rf.last_month_end(AS_OF)
    return {
        "book": book,
        "trend": rf.mrr_table(book, end=month_end, by=()).assign(arr=lambda d: d["mrr"] * 12),
        "movements": rf.mrr_movements(book, end=month_end, by=()),
        "retention": rf.retention_kpis(book, as_of=AS_OF),
        "decisions": rf.renewal_decisions(book, AS_OF),
        "outlook": rf.nrr_forecast(book, AS_OF, n_sims=200, random_state=0),
    }


def test_kpi_headline_shows_the_tables_it_is_given_and_computes_none_again(kpi_tables, no_engines):
    t = kpi_tables
    alone = rf.kpi_headline(t["book"], AS_OF)  # computes its own tables, as in JupyterLab
    month_end = rf.last_month_end(AS_OF)
    year = rf.renewal_kpis(
        t["book"], month_end - pd.DateOffset(months=12) + pd.Timedelta(days=1), month_end, decisions=t["decisions"]
    ).iloc[0]
    no_engines(
        (headline, "mrr_table"),
        (headline, "mrr_movements"),
        (headline, "retention_kpis"),
        (headline, "ltv_cac"),
        (headline, "nrr_forecast"),
        (saas_metrics, "renewal_decisions"),
    )
    given = rf.kpi_headline(
        t["book"],
        AS_OF,
        trend=t["trend"],
        movements=t["movements"],
        retention=t["retention"],
        decisions=t["decisions"],
        outlook=t["outlook"],
    )
    got = figures(given)
    # Identity: each figure is the value in the report's own table.
    assert got["arr"] == t["trend"].set_index("month").loc[month_end, "arr"]
    last = t["movements"].set_index("month").loc[month_end]
    assert got["mrr_bridge"] == last["end_mrr"] - last["start_mrr"]
    assert given.series["bridge"]["churn"] == last["churn"]
    assert got["nrr"] == t["retention"]["nrr"].iloc[0] and got["grr"] == t["retention"]["grr"].iloc[0]
    assert got["renewal_rate"] == year["renewal_rate_net_arr"]
    ahead = t["outlook"].set_index(["group", "metric"])
    assert got["nrr_forward"] == ahead.loc[("total", "nrr"), "p50"]
    detail = given.figure("nrr_forward")["detail"]
    assert rf.format_value(ahead.loc[("total", "nrr"), "p10"], "percent") in detail
    assert rf.format_value(ahead.loc[("total", "grr"), "p50"], "percent") in detail
    # The same numbers as the headline that computed everything itself.
    assert given.to_dict() == alone.to_dict()


def test_kpi_headline_refuses_a_grouped_table(kpi_tables):
    t = kpi_tables
    with pytest.raises(ValueError, match="whole-book retention_kpis"):
        rf.kpi_headline(t["book"], AS_OF, retention=rf.retention_kpis(t["book"], as_of=AS_OF, by="segment"))


def test_renewal_kpis_from_decisions_already_made_equal_deciding_again(kpi_tables):
    t = kpi_tables
    for freq in (None, "Q"):
        pd.testing.assert_frame_equal(
            rf.renewal_kpis(t["book"], "2024-07-01", "2026-06-30", freq=freq, decisions=t["decisions"]),
            rf.renewal_kpis(t["book"], "2024-07-01", "2026-06-30", freq=freq),
        )


def test_data_headline_uses_the_set_aside_summary_it_is_given(demo_book, no_engines):
    aside = rf.set_aside_summary(demo_book)
    alone = rf.data_headline(demo_book, AS_OF)
    no_engines((headline, "set_aside_summary"))
    given = rf.data_headline(demo_book, AS_OF, set_aside=aside)
    assert figures(given)["set_aside"] == aside["rows"] and given.figure("set_aside")["detail"] == aside["text"]
    assert given.to_dict() == alone.to_dict()


def test_unit_economics_headline_shows_the_ltv_cac_table_it_is_given(demo_book, no_engines):
    book = demo_book.as_of(AS_OF)
    table = rf.ltv_cac(book, AS_OF, method="simple", n_boot=30)
    alone = rf.unit_economics_headline(book, AS_OF, method="simple", n_boot=30)
    no_engines((headline, "ltv_cac"), (unit_economics, "ltv"), (unit_economics, "cac"))
    given = rf.unit_economics_headline(book, AS_OF, table=table)
    row = table.iloc[0]
    assert figures(given)["ltv_to_cac"] == row["ltv_simple_to_cac"]
    assert figures(given)["payback_months"] == row["payback_months"]
    assert given.to_dict() == alone.to_dict()
    # The interval is the table's, with the width the LTV was resampled at.
    low, high = row["ltv_simple_to_cac_low"], row["ltv_simple_to_cac_high"]
    if math.isfinite(low) and math.isfinite(high):
        detail = given.figure("ltv_to_cac")["detail"]
        assert f"{rf.format_value(low, 'ratio')} to {rf.format_value(high, 'ratio')} (bootstrap 90%)" in detail
    with pytest.raises(ValueError, match="not 'sbg'"):
        rf.unit_economics_headline(book, AS_OF, method="sbg", table=table)
    with pytest.raises(ValueError, match="one row"):
        rf.unit_economics_headline(book, AS_OF, table=pd.concat([table, table]))


def test_ltv_cac_takes_the_ltv_table_already_resampled(demo_book, monkeypatch):
    book = demo_book.as_of(AS_OF)
    values = rf.ltv(book, AS_OF, method="simple", by="segment", n_boot=20)
    alone = rf.ltv_cac(book, AS_OF, by="segment", method="simple", n_boot=20)
    assert alone["ltv_simple_to_cac_low"].equals(alone["ltv_simple_low"] / alone["cac"])

    def fail(*args, **kwargs):
        raise AssertionError("ltv was resampled again")

    monkeypatch.setattr(unit_economics, "ltv", fail)
    given = rf.ltv_cac(book, AS_OF, by="segment", method="simple", n_boot=20, ltv_values=values)
    pd.testing.assert_frame_equal(given, alone)
    assert given.attrs == alone.attrs
    with pytest.raises(ValueError, match="method 'sbg'"):
        rf.ltv_cac(book, AS_OF, by="segment", method="sbg", ltv_values=values)
    with pytest.raises(ValueError, match="discount_rate"):
        rf.ltv_cac(book, AS_OF, by="segment", method="simple", discount_rate=0.2, ltv_values=values)
    with pytest.raises(ValueError, match="region"):
        rf.ltv_cac(book, AS_OF, by="region", method="simple", ltv_values=values)


def test_risk_headline_takes_the_scores_and_the_rate_from_scoring(monkeypatch):
    scores = pd.DataFrame(
        {
            "end_date": pd.to_datetime(["2026-05-31", "2026-08-31", "2026-11-30", "2027-03-31"]),
            "arr": [500.0, 1000.0, 3000.0, 7000.0],
            "arr_at_risk": [50.0, 100.0, 1500.0, 700.0],
            "model_version": "v1",
        }
    )

    def fail(*args, **kwargs):
        raise AssertionError("the risk headline cut the book: it only reads the scores")

    monkeypatch.setattr(rf.Book, "as_of", fail)
    monkeypatch.setattr(scoring, "score_contracts", fail)
    h = rf.risk_headline(rf.Book.empty(), scores, AS_OF)
    quarters = scoring.arr_at_risk_by_quarter(scores, AS_OF)
    assert quarters["quarter"].tolist() == ["Q3 2026", "Q4 2026"]
    assert figures(h)["arr_at_risk"] == quarters["arr_at_risk"].sum() == 1600.0
    assert figures(h)["expected_renewal"] == scoring.expected_renewal_rate(4000.0, 1600.0) == pytest.approx(0.6)
    assert quarters["expected_renewal_rate"].tolist() == [0.9, 0.5]


def test_each_report_publishes_the_figures_alert_rules_may_name(demo_book, tmp_path):
    # HEADLINE_FIGURES is what an alerts file is checked against before a run; every builder must
    # publish exactly its line, and each shipped notebook the headline the catalogue says.
    from renewforecast.reports.catalogue import REPORTS
    from renewforecast.reports.runner import default_notebooks_dir

    scores = pd.DataFrame(
        {
            "end_date": pd.to_datetime(["2026-11-30"]),
            "arr": [1000.0],
            "renewal_probability": [0.9],
            "arr_at_risk": [100.0],
        }
    )
    forecast = rf.revenue_forecast(demo_book, "2026-10-31", horizon_months=2, n_sims=20, random_state=0)
    built = [
        ("data_headline", rf.data_headline(rf.Book.empty(), "2026-10-31")),
        ("kpi_headline", rf.kpi_headline(demo_book, "2026-10-31")),
        ("risk_headline", rf.risk_headline(rf.Book.empty(), scores, "2026-10-31")),
        ("unit_economics_headline", rf.unit_economics_headline(demo_book, "2026-10-31", n_boot=0)),
        ("forecast_headline", rf.forecast_headline(demo_book, forecast)),
        (
            "track_record_headline",
            rf.track_record_headline(demo_book, rf.grade_runs(tmp_path, demo_book, as_of="2026-10-31")),
        ),
    ]
    assert {h.report: tuple(f["key"] for f in h.figures) for _, h in built} == headline.HEADLINE_FIGURES
    builder_of = {h.report: name for name, h in built}
    for spec in REPORTS:
        source = (default_notebooks_dir() / f"{spec.name}.ipynb").read_text(encoding="utf-8")
        assert f"rf.{builder_of[spec.headline]}(" in source, spec.name


# ------------------------------------------------------------- warnings (drift)


def test_warnings_travel_with_the_headline_and_are_shown_escaped():
    from renewforecast.reports.index_page import render_index

    h = rf.Headline(
        "renewal_risk",
        "Renewal risk",
        [{"key": "arr_at_risk", "label": "ARR at risk", "value": 1.0e5, "kind": "money"}],
        provenance={"currency": "USD"},
        warnings=["<script>alert(1)</script> shifted against training: PSI 0.31 (alert, >= 0.25)"],
    )
    data = h.to_dict()
    assert data["warnings"] == h.warnings
    assert rf.Headline.from_dict(data) == h
    # A run.json written before headlines had warnings still reads.
    assert rf.Headline.from_dict({k: v for k, v in data.items() if k != "warnings"}).warnings == []
    with pytest.raises(TypeError):
        rf.Headline.from_dict({**data, "warnings": "one sentence"})
    page = h._repr_mimebundle_()["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; shifted against training" in page and "<script>" not in page
    assert "Warning: <script>" in h._repr_mimebundle_()["text/plain"]  # plain text is not HTML
    meta = {"run_id": "r1", "notebooks": [{"name": "02_risk", "title": "Renewal <risk>", "html": "02_risk.html"}]}
    index = render_index(meta, {"02_risk": h})
    assert '<a href="02_risk.html">Renewal &lt;risk&gt;</a>: &lt;script&gt;' in index
    assert "<script>" not in index and index.index("<h2>Warnings</h2>") < index.index("<h2>Headline figures</h2>")
    assert "<h2>Warnings</h2>" not in render_index(meta, {"02_risk": rf.Headline.from_dict({**data, "warnings": []})})


def test_risk_headline_carries_the_drift_warnings_and_the_recommendation():
    scores = pd.DataFrame(
        {
            "end_date": pd.to_datetime(["2026-08-31", "2026-11-30"]),
            "arr": [1000.0, 3000.0],
            "arr_at_risk": [100.0, 1500.0],
            "model_version": "v1",
        }
    )
    shifts = [f"feature_{k} shifted against training: PSI {0.9 - k / 10:.2f} (alert, >= 0.25)" for k in range(7)]
    drift = rf.DriftReport(
        table=pd.DataFrame({"against": ["training", "training"], "feature": ["a", "b"], "level": ["ok", "alert"]}),
        profile=pd.DataFrame(),
        warnings=shifts,
        recommendation="Retrain the model: 7 of 35 distributions moved past PSI 0.25 ...",
        retrain=True,
    )
    h = rf.risk_headline(rf.Book.empty(), scores, AS_OF, drift=drift)
    assert h.warnings == [*shifts[:5], "... and 2 more shifts (see the report's Drift section)"]
    figure = h.figure("drift")
    assert (figure["value"], figure["kind"], figure["secondary"]) == ("alert", "text", True)
    assert figure["detail"] == drift.recommendation
    assert rf.Headline.from_dict(h.to_dict()) == h
    without = rf.risk_headline(rf.Book.empty(), scores, AS_OF)
    assert without.warnings == [] and [f["key"] for f in without.figures] == ["arr_at_risk", "expected_renewal"]
