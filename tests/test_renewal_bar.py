"""The renewal model's bar on the default demo org: close to the best possible, and calibrated."""

from __future__ import annotations

import inspect

import pytest

import renewforecast as rf


@pytest.mark.slow
def test_default_model_on_the_default_demo_org_is_near_the_oracle(tmp_path):
    defaults = inspect.signature(rf.write_demo_org).parameters
    org = rf.write_demo_org(tmp_path / "org")  # the default org: what `make report` uses
    assert defaults["accounts"].default == 8000
    evaluation = rf.evaluate_renewal_model(rf.load_book(org.path))  # the default model
    metrics = evaluation.metrics.set_index("scorer")
    # the oracle scores the same test decisions with their true probabilities
    assert metrics.loc["model", "contracts"] == metrics.loc["oracle", "contracts"] > 3000
    assert metrics.loc["oracle", "roc_auc"] - metrics.loc["model", "roc_auc"] <= 0.02
    assert metrics.loc["model", "ece"] <= 0.03
    # the backtest is temporal: every test decision ends after every training one
    assert evaluation.predictions["end_date"].min() >= evaluation.cutoff
