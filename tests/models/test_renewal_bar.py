"""The bars on the default demo org (what `make report` uses): the renewal model close to the best
possible and calibrated; the revenue forecast ahead of its baselines with an honest range."""

from __future__ import annotations

import inspect

import pytest

import renewforecast as rf


@pytest.fixture(scope="module")
def default_book(tmp_path_factory):
    defaults = inspect.signature(rf.write_demo_org).parameters
    assert defaults["accounts"].default == 8000
    org = rf.write_demo_org(tmp_path_factory.mktemp("default") / "org")  # the default org
    return rf.load_book(org.path)


@pytest.mark.slow
def test_default_model_on_the_default_demo_org_is_near_the_oracle(default_book):
    evaluation = rf.evaluate_renewal_model(default_book)  # the default model
    metrics = evaluation.metrics.set_index("scorer")
    # the oracle scores the same test decisions with their true probabilities
    assert metrics.loc["model", "contracts"] == metrics.loc["oracle", "contracts"] > 3000
    assert metrics.loc["oracle", "roc_auc"] - metrics.loc["model", "roc_auc"] <= 0.02
    assert metrics.loc["model", "ece"] <= 0.03
    # the backtest is temporal: every test decision ends after every training one
    assert evaluation.predictions["end_date"].min() >= evaluation.cutoff


@pytest.mark.slow
def test_forecast_beats_the_baselines_and_its_range_covers_70_to_90_percent(default_book):
    origins = rf.backtest_origins(default_book, 12)  # quarterly, the last two years of complete horizons
    assert len(origins) == 9
    backtest = rf.backtest_forecast(default_book, origins, 12, n_sims=300, random_state=0)
    summary = backtest.summary()
    assert summary.loc["bottom_up", "months"] == 9 * 12
    for baseline in ("top_down_ets", "seasonal_naive"):
        assert summary.loc["bottom_up", "mape"] < summary.loc[baseline, "mape"]
        assert summary.loc["bottom_up", "mape_last"] < summary.loc[baseline, "mape_last"]  # 12 months ahead
    assert 0.70 <= summary.loc["bottom_up", "coverage_p10_p90"] <= 0.90
