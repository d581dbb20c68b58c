"""Grading earlier runs: hand-worked figures, the model/data split, time travel on a demo org, point in time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import renewforecast as rf
from _support import make_book
from renewforecast.analyses.record import keep_record, write_run_record

# --------------------------------------------------------------------------- #
# A tiny book whose every figure is worked out by hand
# --------------------------------------------------------------------------- #


def _tiny_book() -> rf.Book:
    day = pd.Timestamp
    accounts = pd.DataFrame(
        {
            "account_id": ["a1", "a2"],
            "segment": ["SMB", "Enterprise"],
            "created_date": [day("2024-12-01")] * 2,
        }
    )
    # c1, c2 pay 100 and 200 a month all through 2025; c3..c6 come up for renewal on 31 July 2025.
    ids = ["c1", "c2", "c3", "c4", "c5", "c6", "c3r", "c5r"]
    contracts = pd.DataFrame(
        {
            "contract_id": ids,
            "account_id": ["a1", "a2", "a1", "a1", "a2", "a2", "a1", "a2"],
            "start_date": [day("2025-01-01")] * 6 + [day("2025-08-01")] * 2,
            "end_date": [day("2025-12-31")] * 2 + [day("2025-07-31")] * 4 + [day("2026-07-31")] * 2,
            "term_months": [12.0] * 8,
            "status": ["Activated"] * 8,
            "evergreen": [False] * 8,
            "renewed_contract_id": [None] * 6 + ["c3", "c5"],
            "created_date": [day("2024-12-15")] * 6 + [day("2025-07-20")] * 2,
        }
    )
    subscriptions = pd.DataFrame(
        {
            "subscription_id": ["s1", "s2"],
            "contract_id": ["c1", "c2"],
            "account_id": ["a1", "a2"],
            "product_id": ["p1", "p1"],
            "start_date": [day("2025-01-01")] * 2,
            "end_date": [day("2025-12-31")] * 2,
            "quantity": [1.0, 1.0],
            "net_price": [1200.0, 2400.0],
            "prorate_multiplier": [1.0, 1.0],
            "created_date": [day("2024-12-15")] * 2,
        }
    )
    products = pd.DataFrame({"product_id": ["p1"], "subscription_term_months": [12.0]})
    return make_book(accounts=accounts, contracts=contracts, subscriptions=subscriptions, products=products)


def _tiny_run(reports: Path) -> None:
    """A run as of 30 June 2025: a three-month forecast of the whole book and four contracts' probabilities."""
    months = pd.to_datetime(["2025-07-31", "2025-08-31", "2025-09-30"])
    rows = []
    for component in ("contracted", "total"):
        rows.append(
            pd.DataFrame(
                {
                    "scenario": "base",
                    "month": months,
                    "group": "total",
                    "component": component,
                    "mean": [290.0, 320.0, 330.0],
                    "p10": [250.0, 305.0, 300.0],
                    "p50": [295.0, 318.0, 330.0],
                    "p90": [320.0, 340.0, 360.0],
                }
            )
        )
    record = reports / "run-june" / "record"
    keep_record(record, "forecast", pd.concat(rows, ignore_index=True))
    scores = pd.DataFrame(
        {
            "contract_id": ["c3", "c4", "c5", "c6"],
            "account_id": ["a1", "a1", "a2", "a2"],
            "end_date": pd.to_datetime(["2025-07-31"] * 4),
            "renewal_probability": [0.9, 0.4, 0.3, 0.2],
            "risk_band": ["low", "high", "high", "high"],
            "model_version": "m1",
        }
    )
    keep_record(record, "scores", scores)
    write_run_record(
        record, run_id="run-june", as_of="2025-06-30", data_fingerprint=None, model_version="m1", currency="USD"
    )


def test_grades_of_a_tiny_run_are_the_hand_worked_ones(tmp_path):
    _tiny_run(tmp_path)
    # As of 31 August: July and August have ended, September has not.
    track = rf.grade_runs(tmp_path, _tiny_book(), as_of="2025-08-31", rerun=False)
    f = track.forecast
    total = f[(f["group"] == "total") & (f["component"] == "total")].set_index("horizon")
    assert total.index.tolist() == [1, 2]
    # c1 and c2 earn 100 + 200 every month; c3..c6 have no revenue.
    assert total["actual"].tolist() == [300.0, 300.0]
    assert total["error"].tolist() == [10.0, -20.0]  # actual - published
    # July: P10 250 <= 300 <= P90 320; August: 300 is below P10 305.
    assert total["inside_p10_p90"].tolist() == [1.0, 0.0]
    # Pinball, July: 0.1 x 50, 0.5 x 5, 0.1 x 20; August: 0.9 x 5, 0.5 x 18, 0.1 x 40; averaged over the levels.
    assert total["pinball"].tolist() == pytest.approx([(5 + 2.5 + 2) / 3, (4.5 + 9 + 4) / 3])
    # Contracts known on 30 June earn everything: the contracted component's actual is the total.
    contracted = f[f["component"] == "contracted"].set_index("horizon")
    assert contracted["actual"].tolist() == [300.0, 300.0]
    summary = track.forecast_summary.set_index(["component", "horizon"])
    assert summary.loc[("total", 1), "mape"] == pytest.approx(10 / 300)
    assert summary.loc[("total", 2), "bias"] == pytest.approx(20 / 300)  # too high: above zero
    assert summary.loc[("total", 2), "coverage_p10_p90"] == 0.0
    assert track.summary().set_index("measure").loc["forecast_coverage_p10_p90", "value"] == 0.5
    assert math.isnan(total["model_error"].iloc[0])  # not re-run

    # c3 and c5 renewed (a renewal contract exists), c4 and c6 churned (ended, nothing renews them).
    scores = track.scores.set_index("contract_id").sort_index()
    assert scores["renewed"].to_dict() == {"c3": 1, "c4": 0, "c5": 1, "c6": 0}
    overall = track.scores_summary.query("run_id == 'all' and slice == 'overall'").iloc[0]
    assert overall["contracts"] == 4
    assert overall["brier"] == pytest.approx((0.1**2 + 0.4**2 + 0.7**2 + 0.2**2) / 4)
    # Every probability alone in its tenth: ECE is the mean gap, |1-.9|, |0-.4|, |1-.3|, |0-.2|.
    assert overall["ece"] == pytest.approx((0.1 + 0.4 + 0.7 + 0.2) / 4)
    # Renewed (.9, .3) against churned (.4, .2): three of the four pairs in the right order.
    assert overall["roc_auc"] == pytest.approx(0.75)
    smb = track.scores_summary.query("run_id == 'all' and slice == 'segment' and value == 'SMB'").iloc[0]
    assert smb["contracts"] == 2 and smb["brier"] == pytest.approx((0.1**2 + 0.4**2) / 2)
    high = track.scores_summary.query("run_id == 'all' and slice == 'risk_band' and value == 'high'").iloc[0]
    assert high["contracts"] == 3 and high["renewal_rate"] == pytest.approx(1 / 3)
    assert track.runs.iloc[0][["months_graded", "contracts_graded"]].tolist() == [2, 4]


def test_a_run_is_graded_only_on_what_is_known_by_the_grading_date(tmp_path):
    _tiny_run(tmp_path)
    book = _tiny_book()
    # On 15 July no month has ended and no renewal is decided yet.
    track = rf.grade_runs(tmp_path, book, as_of="2025-07-15", rerun=False)
    assert track.forecast.empty and track.scores.empty and track.graded == 0
    assert "none with a forecast month ended" in track.note
    # On 30 July the renewals booked on 20 July are known; c4 and c6 are still open, July has not ended.
    track = rf.grade_runs(tmp_path, book, as_of="2025-07-30", rerun=False)
    assert sorted(track.scores["contract_id"]) == ["c3", "c5"] and track.forecast.empty
    # The same grades from the Book cut back to that day: grading uses only what was known then.
    again = rf.grade_runs(tmp_path, book.as_of("2025-07-30"), rerun=False)
    pd.testing.assert_frame_equal(again.scores, track.scores)
    # Runs dated on or after the grading date are not graded at all.
    assert rf.grade_runs(tmp_path, book, as_of="2025-06-30").runs.empty


def test_pinball_loss_is_half_the_absolute_error_at_the_median():
    rng = np.random.default_rng(0)
    y, f = rng.normal(size=50), rng.normal(size=50)
    from renewforecast.analyses.track_record import pinball_loss

    assert pinball_loss(y, {0.5: f}) == pytest.approx(np.abs(y - f) / 2)


# --------------------------------------------------------------------------- #
# Time travel: runs published from monthly cuts of a demo org, graded with the whole Book
# --------------------------------------------------------------------------- #

CUTS = pd.date_range("2025-10-31", periods=4, freq="ME")
HORIZON, SIMS = 6, 50


def _publish(folder: Path, run_id: str, view: rf.Book, cut, *, scores=None, forecast=None) -> None:
    """A run's record as the runner keeps it, without notebooks: its tables, then record.json."""
    record = folder / run_id / "record"
    if scores is not None:
        keep_record(record, "scores", scores)
    if forecast is not None:
        keep_record(
            record,
            "forecast",
            forecast.frame,
            horizon_months=HORIZON,
            n_sims=SIMS,
            seed=0,
            by="segment",
            model_version=forecast.model_version,
        )
    write_run_record(
        record,
        run_id=run_id,
        as_of=cut,
        data_fingerprint=view.loaded_fingerprint,
        model_version=None if scores is None else str(scores["model_version"].iloc[0]),
        currency=view.currency,
        book=view,
    )


@pytest.fixture(scope="module")
def travel(tmp_path_factory):
    base = tmp_path_factory.mktemp("travel")
    org = rf.write_demo_org(base / "org", accounts=300, seed=5)
    full = rf.load_book(org.path)
    truth = org.truth.drop_duplicates("contract_id").set_index("contract_id")["true_probability"]
    X, y = rf.renewal_training_set(full.as_of(CUTS[0]))
    # Saved and loaded, as the reports use it: the version tells the forecast record a model gave its probabilities.
    trained = rf.RenewalModel(estimator="logistic", random_state=0).fit(X, y)
    model = rf.load_model(rf.save_model(trained, base / "models"))
    rng = np.random.default_rng(1)
    dirs = {name: base / name for name in ("real", "oracle", "broken", "late")}
    for i, cut in enumerate(CUTS):
        view = full.as_of(cut)
        run_id = f"{cut:%Y%m%d}-run"
        scores = rf.score_contracts(view, model=model, as_of=cut)
        # As the forecast report does: the model scores the contracts up for renewal itself.
        forecast = rf.revenue_forecast(
            view, cut, horizon_months=HORIZON, n_sims=SIMS, by="segment", random_state=0, model=model
        )
        _publish(dirs["real"], run_id, view, cut, scores=scores, forecast=forecast)
        # The truth the demo org drew each renewal from: the best any model could publish.
        oracle = scores.assign(renewal_probability=scores["contract_id"].map(truth).to_numpy())
        _publish(dirs["oracle"], run_id, view, cut, scores=oracle)
        # A broken model: the same model, each contract scored on another contract's features.
        features = rf.renewal_features(view, cut)
        shuffled = features.copy()
        order = rng.permutation(len(features))
        for column in model.feature_names_in_:
            shuffled[column] = features[column].to_numpy()[order]
        broken = rf.score_contracts(shuffled, model=model)
        broken = scores.assign(renewal_probability=broken["renewal_probability"].to_numpy())
        _publish(dirs["broken"], run_id, view, cut, scores=broken)
        if i == 0:
            # A run that saw the export before five subscriptions dated before its day arrived.
            subs = view.subscriptions
            late = subs[(subs["quantity"] > 0) & (subs["end_date"] > CUTS[-1])].head(5)
            seen = view.replace(subscriptions=subs.drop(late.index).reset_index(drop=True))
            fc = rf.revenue_forecast(seen, cut, horizon_months=HORIZON, n_sims=SIMS, by="segment", random_state=0)
            _publish(dirs["late"], run_id, seen, cut, forecast=fc)
    return {"full": full, "dirs": dirs, "truth": truth, "org": org.path, "model": model}


def test_a_miss_is_the_models_error_plus_what_the_data_changed(travel):
    track = rf.grade_runs(travel["dirs"]["real"], travel["full"])
    f = track.forecast
    assert track.graded == len(CUTS) and f["rerun"].notna().all() and track.runs["rerun"].all()
    np.testing.assert_allclose(f["error"], f["model_error"] + f["data_change"], rtol=0, atol=1e-6)
    # Published from the data as it was, re-run on the data as it is now seen as of the same day:
    # the same forecast, so every miss is the model's.
    assert (f["data_change"] == 0).all()
    assert not track.revisions["changed"].any()
    assert (track.revisions["rows_at_run"] == track.revisions["rows_now"]).all()
    # The actual revenue of each month is what the whole Book recognises in it.
    total = f[(f["group"] == "total") & (f["component"] == "total")]
    recognised = rf.recognized_revenue(travel["full"], CUTS[0], CUTS[-1] + pd.DateOffset(months=HORIZON))
    expected = total["month"].map(recognised.set_index("month")["revenue"])
    np.testing.assert_allclose(total["actual"], expected, atol=1.0)  # per-contract cents
    # The components and the groups add up to the whole book's actual.
    parts = f[(f["group"] == "total") & (f["component"] != "total")].groupby(["run_id", "month"])["actual"].sum()
    np.testing.assert_allclose(parts.to_numpy(), total.set_index(["run_id", "month"])["actual"].loc[parts.index])
    groups = f[(f["group"] != "total") & (f["component"] == "total")].groupby(["run_id", "month"])["actual"].sum()
    np.testing.assert_allclose(groups.to_numpy(), total.set_index(["run_id", "month"])["actual"].loc[groups.index])
    # Every month of every horizon has ended by the export date, 31 October 2026.
    assert total.groupby("run_id").size().eq(HORIZON).all()


def test_data_that_arrived_late_is_told_apart_from_the_models_error(travel):
    track = rf.grade_runs(travel["dirs"]["late"], travel["full"])
    f = track.forecast
    np.testing.assert_allclose(f["error"], f["model_error"] + f["data_change"], rtol=0, atol=1e-6)
    booked = f[(f["group"] == "total") & (f["component"] == "contracted")]
    # Five subscriptions the run did not see earn revenue in every month of its horizon: the re-run has it.
    assert (booked["data_change"] > 0).all()
    changed = track.revisions.set_index("table")
    assert changed.loc["subscriptions", "changed"] and not changed.loc["contracts", "changed"]
    assert changed.loc["subscriptions", "rows_now"] - changed.loc["subscriptions", "rows_at_run"] == 5


def test_published_probabilities_grade_between_a_broken_model_and_the_truth(travel):
    def overall(name: str) -> pd.Series:
        track = rf.grade_runs(travel["dirs"][name], travel["full"], rerun=False)
        s = track.scores_summary
        return s[(s["run_id"] == "all") & (s["slice"] == "overall")].iloc[0]

    real, oracle, broken = overall("real"), overall("oracle"), overall("broken")
    # Measured here: Brier 0.172 / 0.132 / 0.199 and AUC 0.673 / 0.816 / 0.548 (real, truth, broken).
    assert real["contracts"] == oracle["contracts"] == broken["contracts"] > 200
    assert oracle["brier"] < real["brier"] < broken["brier"]
    assert broken["roc_auc"] < real["roc_auc"] - 0.05
    assert oracle["roc_auc"] > real["roc_auc"]


def test_grading_the_whole_book_as_of_a_day_equals_grading_the_book_cut_back_to_it(travel):
    day = "2026-02-15"
    whole = rf.grade_runs(travel["dirs"]["real"], travel["full"], as_of=day)
    cut = rf.grade_runs(travel["dirs"]["real"], travel["full"].as_of(day))
    # Months that ended by then: three of October's run, two of November's, one of December's, none of January's
    # (whose renewals decided by mid-February are graded all the same).
    assert whole.runs["months_graded"].tolist() == [3, 2, 1, 0] and whole.runs["contracts_graded"].iloc[-1] > 0
    assert whole.forecast["month"].max() == pd.Timestamp("2026-01-31")
    for name in ("runs", "forecast", "forecast_summary", "scores", "scores_summary", "revisions"):
        pd.testing.assert_frame_equal(getattr(whole, name), getattr(cut, name), obj=name)


def test_accuracy_command_prints_the_grades_and_writes_every_table(travel, tmp_path):
    from click.testing import CliRunner

    from renewforecast.cli import main

    out = tmp_path / "grades"
    args = ["accuracy", str(travel["dirs"]["broken"]), str(travel["org"]), "--no-rerun", "--format", "parquet"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    track = rf.grade_runs(travel["dirs"]["broken"], travel["full"], rerun=False)
    assert track.note in result.output and "Brier score of the published probabilities" in result.output
    written = {p.name for p in out.iterdir()}
    assert written == {
        f"{name}.parquet"
        for name in (
            "summary",
            "runs",
            "forecast",
            "forecast_summary",
            "scores",
            "scores_summary",
            "backtest",
            "revisions",
        )
    }
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet"), track.summary())
    assert len(pd.read_parquet(out / "scores.parquet")) == len(track.scores)
    missing = CliRunner().invoke(main, ["accuracy", str(tmp_path / "nowhere"), str(travel["org"])])
    assert missing.exit_code == 2


def test_the_track_record_report_says_so_when_there_is_no_earlier_run(tmp_path):
    import matplotlib.pyplot as plt

    # What the report's cells call, on a reports folder with no run yet: every call works and says why.
    track = rf.grade_runs(tmp_path / "reports", _tiny_book(), as_of="2025-08-31")
    assert track.note.startswith("No earlier run with a record")
    headline = rf.track_record_headline(_tiny_book(), track)
    assert headline.figure("runs_graded")["value"] == 0 and headline.provenance["as_of"] == "2025-08-31"
    rf.plotting.backtest_accuracy(track.by_horizon())
    rf.plotting.calibration_curve(track)
    plt.close("all")
    assert track.by_component().empty and track.runs.empty and track.scores_summary.empty


@pytest.mark.slow
def test_the_track_record_report_grades_the_earlier_runs(travel, tmp_path):
    import json
    import shutil

    from renewforecast.reports.runner import run_reports

    out = tmp_path / "reports"
    shutil.copytree(travel["dirs"]["real"], out)
    folder = run_reports(travel["org"], as_of="2026-10-31", out=out, notebooks=["05_track_record"], timeout=300)
    track = rf.grade_runs(out, travel["full"], as_of="2026-10-31")
    figures = {
        f["key"]: f for f in json.loads((folder / "run.json").read_text())["headlines"]["05_track_record"]["figures"]
    }
    assert figures["runs_graded"]["value"] == len(CUTS) == track.graded
    assert figures["forecast_mape_1m"]["value"] == pytest.approx(
        track.summary().set_index("measure").loc["forecast_mape_1m", "value"]
    )
    page = (folder / "05_track_record.html").read_text(encoding="utf-8")
    assert track.note in page and page.count("data:image/png;base64") >= 2  # accuracy and calibration
    assert rf.format_value(figures["scores_brier"]["value"], "score") in (folder / "index.html").read_text(
        encoding="utf-8"
    )


@pytest.mark.slow
def test_the_risk_report_compares_its_inputs_with_the_previous_run(travel, tmp_path):
    import json
    import shutil

    from renewforecast.reports.runner import run_reports

    out = tmp_path / "reports"
    shutil.copytree(travel["dirs"]["real"], out)
    model = travel["model"]
    models = rf.save_model(model, tmp_path / "models")
    day = CUTS[2]

    def profile(cut, feature: str) -> pd.DataFrame:
        # The inputs a run as of `cut` profiled, had its export scaled one field by ten (a broken mapping).
        view = travel["full"].as_of(cut)
        features = rf.recent_decision_features(view, cut)
        return rf.drift_report(model, features.assign(**{feature: features[feature] * 10})).profile

    def keep_profile(run: rf.RunRecord, frame: pd.DataFrame) -> None:
        # As the risk report keeps it: before the run's record.json lists what the run kept.
        keep_record(run.record_dir, "feature_profile", frame)
        write_run_record(
            run.record_dir,
            run_id=run.run_id,
            as_of=run.as_of,
            data_fingerprint=run.data_fingerprint,
            model_version=run.model_version,
            currency=run.currency,
            book=travel["full"].as_of(run.as_of),
        )

    runs = rf.published_records(out)
    keep_profile(runs[1], profile(CUTS[1], "nps"))
    # A run as of a later month is never "the previous run" of a run as of an earlier one.
    keep_profile(runs[3], profile(CUTS[3], "seat_utilization"))
    folder = run_reports(
        travel["org"],
        as_of=day.date().isoformat(),
        out=out,
        notebooks=["02_renewal_risk"],
        parameters={"model_path": str(models)},
        timeout=300,
    )
    warnings = json.loads((folder / "run.json").read_text())["headlines"]["02_renewal_risk"]["warnings"]
    assert any(w.startswith("nps shifted since the previous run: PSI ") for w in warnings)
    assert not any(w.startswith("seat_utilization shifted since the previous run") for w in warnings)
    page = (folder / "02_renewal_risk.html").read_text(encoding="utf-8")
    assert f"run {runs[1].run_id} as of {CUTS[1].date()}" in page
    # This run kept its own inputs' profile, which the next run finds.
    assert rf.previous_record(out, day + pd.Timedelta(days=1), having="feature_profile").folder == folder
