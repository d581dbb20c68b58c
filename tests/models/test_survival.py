"""Tests for renewforecast.models.survival.SurvivalModel.

Reference values come from /work/shared/reference/statistical_anchors.md,
section 3 ("lifelines: Rossi recidivism anchors"), which cites R's
``coxph``/``flexsurvreg`` numbers asserted in lifelines'
``tests/test_estimation.py`` and values reproduced with lifelines 0.30.3
(marked [REPRO] in the notes).
"""

from __future__ import annotations

import doctest
import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import renewforecast.models.survival as survival_module
from renewforecast.exceptions import RenewForecastError
from renewforecast.models.survival import (
    ExtrapolationWarning,
    SurvivalDataError,
    SurvivalModel,
)

COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]

# --- Cox PH on Rossi (notes section 3) ----------------------------------------
# R coxph(Surv(week, arrest) ~ fin+age+race+wexp+mar+paro+prio); lifelines
# test_estimation.py line 3971 asserts these to decimal=6.
R_COXPH_COEF = [
    -0.3794222,
    -0.0574377,
    0.3138998,
    -0.1497957,
    -0.4337039,
    -0.0848711,
    0.0914971,
]
# R standard errors, given to 5 decimals only (lifelines line 4492, decimal=4).
R_COXPH_SE = [0.19138, 0.02200, 0.30799, 0.21222, 0.38187, 0.19576, 0.02865]
# R z values to 3 decimals (lifelines line 4508).
R_COXPH_Z = [-1.983, -2.611, 1.019, -0.706, -1.136, -0.434, 3.194]
# [REPRO] lifelines 0.30.3 (7 decimals).
REPRO_COXPH_LOGLIK = -658.7476594
REPRO_COXPH_CONCORDANCE = 0.6403292
REPRO_COXPH_LLR = 33.26595  # 5 decimals; R's LR test 33.27
REPRO_COXPH_AIC_PARTIAL = 1331.4953  # 4 decimals
# R survConcordance with strata=wexp (lifelines line 3483).
R_COXPH_STRATA_WEXP_CONCORDANCE = 0.6124492
# R coxph with strata(race) (lifelines line 3990), 4 decimals.
R_COXPH_STRATA_RACE_COEF = {
    "fin": -0.3788,
    "age": -0.0576,
    "wexp": -0.1427,
    "mar": -0.4388,
    "paro": -0.0858,
    "prio": 0.0922,
}

# --- Weibull AFT on Rossi (notes section 3) ------------------------------------
# R flexsurvreg(dist="weibull"), lifelines lines 2626-2634; lifelines itself
# only asserts these with rtol=1e-3 (rtol=1e-2 for mar): its SLSQP optimum and
# flexsurv's differ in the 4th decimal (neither is the exact MLE to 1e-6).
FLEXSURV_LAMBDA = {
    "fin": 0.27230591,
    "age": 0.04072758,
    "race": -0.22480808,
    "wexp": 0.10664712,
    "mar": 0.31095531,
    "paro": 0.05883352,
    "prio": -0.06580211,
    "Intercept": 3.98968559,
}
FLEXSURV_RHO_INTERCEPT = 0.33911900
FLEXSURV_LAMBDA_RTOL = {"mar": 1e-2}
# [REPRO] lifelines 0.30.3 (7 decimals).
REPRO_WEIBULL_LOGLIK = -679.9165639
REPRO_WEIBULL_CONCORDANCE = 0.6401414
REPRO_WEIBULL_AIC = 1377.8331
REPRO_WEIBULL_LLR = 33.41567


@pytest.fixture(scope="module")
def rossi() -> pd.DataFrame:
    return load_rossi()


@pytest.fixture(scope="module")
def cox(rossi) -> SurvivalModel:
    return SurvivalModel(duration_col="week", event_col="arrest").fit(rossi)


@pytest.fixture(scope="module")
def weibull(rossi) -> SurvivalModel:
    return SurvivalModel(kind="weibull_aft", duration_col="week", event_col="arrest").fit(rossi)


@pytest.fixture(scope="module")
def cox_strata(rossi) -> SurvivalModel:
    return SurvivalModel(duration_col="week", event_col="arrest", strata="wexp").fit(rossi)


@pytest.fixture(scope="module")
def fitted(rossi, cox, weibull, cox_strata):
    # Two strata columns (tuple keys) and an elastic-net penalty exercise the
    # less common branches of export/import.
    cox_strata2 = SurvivalModel(duration_col="week", event_col="arrest", strata=["race", "paro"]).fit(rossi)
    cox_penalized = SurvivalModel(duration_col="week", event_col="arrest", penalizer=0.05, l1_ratio=0.5).fit(rossi)
    return {
        "coxph": cox,
        "weibull_aft": weibull,
        "coxph_strata": cox_strata,
        "coxph_strata2": cox_strata2,
        "coxph_penalized": cox_penalized,
    }


ALL_MODELS = [
    "coxph",
    "weibull_aft",
    "coxph_strata",
    "coxph_strata2",
    "coxph_penalized",
]


def _lifelines_survival(model: SurvivalModel, X: pd.DataFrame, times) -> pd.DataFrame:
    """S(t | x) straight from the lifelines fitter (the independent path)."""
    frame = X.drop(columns=["week", "arrest"], errors="ignore")
    # lifelines groups the columns by stratum; put them back in X's order.
    return model.fitter_.predict_survival_function(frame, times=times)[X.index]


# ----------------------------------------------------------------------------
# reference values
# ----------------------------------------------------------------------------


class TestRossiCoxPH:
    def test_coefficients_match_R_to_6_decimals(self, cox):
        np.testing.assert_array_almost_equal(cox.params_[COVARIATES].to_numpy(), R_COXPH_COEF, decimal=6)
        np.testing.assert_array_almost_equal(cox.summary.loc[COVARIATES, "coef"].to_numpy(), R_COXPH_COEF, decimal=6)

    def test_standard_errors_match_R(self, cox):
        # The R values carry 5 decimals, so agreement is to their rounding
        # (|diff| <= 0.5e-5), tighter than lifelines' own decimal=4.
        se = cox.summary.loc[COVARIATES, "se(coef)"].to_numpy()
        assert np.max(np.abs(se - R_COXPH_SE)) <= 0.5e-5
        np.testing.assert_array_almost_equal(cox.summary.loc[COVARIATES, "z"].to_numpy(), R_COXPH_Z, decimal=3)

    def test_loglik_concordance_and_tests(self, cox):
        assert cox.log_likelihood_ == pytest.approx(REPRO_COXPH_LOGLIK, abs=1e-6)
        assert cox.concordance_index_ == pytest.approx(REPRO_COXPH_CONCORDANCE, abs=1e-6)
        assert cox.fitter_.log_likelihood_ratio_test().test_statistic == pytest.approx(REPRO_COXPH_LLR, abs=1e-5)
        assert cox.fitter_.AIC_partial_ == pytest.approx(REPRO_COXPH_AIC_PARTIAL, abs=1e-4)
        assert (cox.n_observations_, cox.n_events_) == (432, 114)
        pd.testing.assert_series_equal(cox.params_, cox.fitter_.params_)

    def test_score_is_concordance(self, cox, rossi):
        assert cox.score(rossi) == pytest.approx(cox.concordance_index_, abs=1e-12)
        assert cox.score(rossi) == pytest.approx(REPRO_COXPH_CONCORDANCE, abs=1e-6)

    def test_stratified(self, cox_strata, rossi):
        assert cox_strata.concordance_index_ == pytest.approx(R_COXPH_STRATA_WEXP_CONCORDANCE, abs=1e-6)
        # score() pools pairs within strata exactly like lifelines' attribute.
        assert cox_strata.score(rossi) == pytest.approx(cox_strata.concordance_index_, abs=1e-12)
        race = SurvivalModel(duration_col="week", event_col="arrest", strata=["race"]).fit(rossi)
        for name, coef in R_COXPH_STRATA_RACE_COEF.items():
            assert race.params_[name] == pytest.approx(coef, abs=0.5e-4)


class TestRossiWeibullAFT:
    def test_loglik_and_concordance_to_6_decimals(self, weibull):
        assert weibull.log_likelihood_ == pytest.approx(REPRO_WEIBULL_LOGLIK, abs=1e-6)
        assert weibull.concordance_index_ == pytest.approx(REPRO_WEIBULL_CONCORDANCE, abs=1e-6)
        aic = weibull.fitter_.AIC_
        assert aic == pytest.approx(REPRO_WEIBULL_AIC, abs=1e-4)
        assert weibull.fitter_.log_likelihood_ratio_test().test_statistic == pytest.approx(REPRO_WEIBULL_LLR, abs=1e-5)

    def test_coefficients_match_flexsurv_at_lifelines_tolerance(self, weibull):
        for name, coef in FLEXSURV_LAMBDA.items():
            rtol = FLEXSURV_LAMBDA_RTOL.get(name, 1e-3)
            assert weibull.params_[("lambda_", name)] == pytest.approx(coef, rel=rtol), name
        assert weibull.params_[("rho_", "Intercept")] == pytest.approx(FLEXSURV_RHO_INTERCEPT, rel=1e-3)
        pd.testing.assert_series_equal(weibull.params_, weibull.fitter_.params_)

    def test_score_is_concordance(self, weibull, rossi):
        # lifelines ranks AFT subjects by predicted median; so does score().
        assert weibull.score(rossi) == pytest.approx(weibull.concordance_index_, abs=1e-12)


# ----------------------------------------------------------------------------
# predictions against lifelines' own functions
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ALL_MODELS)
def test_predict_survival_matches_lifelines(fitted, rossi, which):
    model = fitted[which]
    times = np.array([1.0, 2.5, 10.0, 26.0, 37.3, 52.0])
    ours = model.predict_survival(rossi, times)
    theirs = _lifelines_survival(model, rossi, times)
    assert ours.shape == (len(times), len(rossi))
    assert list(ours.columns) == list(rossi.index)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("which", ALL_MODELS)
def test_renewal_proba_is_survival_ratio(fitted, rossi, which):
    model = fitted[which]
    X = rossi.iloc[::7]
    rng = np.random.default_rng(0)
    tenure = rng.uniform(1.0, 40.0, size=len(X))  # >= first training duration (1 week)
    horizon = 12.0
    got = model.predict_renewal_proba(X, horizon=horizon, tenure=tenure)
    assert got.index.equals(X.index)

    # Independent path: lifelines' predict_survival_function on the fitter.
    frame = X.drop(columns=["week", "arrest"])
    expected = np.empty(len(X))
    for j, (label, t) in enumerate(zip(X.index, tenure, strict=True)):
        s = model.fitter_.predict_survival_function(frame.loc[[label]], times=[t, t + horizon])
        expected[j] = s.iloc[1, 0] / s.iloc[0, 0]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=1e-12)

    # lifelines' conditional_after gives the same numbers.
    conditional = model.fitter_.predict_survival_function(frame, times=[horizon], conditional_after=tenure)
    np.testing.assert_allclose(got.to_numpy(), conditional[X.index].to_numpy()[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("which", ALL_MODELS)
def test_renewal_proba_tenure_forms(fitted, rossi, which):
    model = fitted[which]
    X = rossi.head(20)
    # tenure=0 (and the default) is plain survival S(h).
    s_h = model.predict_survival(X, [8.0]).iloc[0]
    for kwargs in ({}, {"tenure": 0}, {"tenure": 0.0}):
        np.testing.assert_allclose(
            model.predict_renewal_proba(X, horizon=8, **kwargs).to_numpy(),
            s_h.to_numpy(),
            rtol=0,
            atol=1e-15,
        )
    np.testing.assert_allclose(s_h.to_numpy(), _lifelines_survival(model, X, [8.0]).to_numpy()[0], atol=1e-12)
    assert (model.predict_survival(X, [0.0]).to_numpy() == 1.0).all()

    # A shuffled Series is aligned on X's index; scalar == constant array.
    tenure = pd.Series(np.arange(len(X), dtype=float), index=X.index)
    by_series = model.predict_renewal_proba(X, horizon=3, tenure=tenure.sample(frac=1.0, random_state=1))
    by_array = model.predict_renewal_proba(X, horizon=3, tenure=tenure.to_numpy())
    pd.testing.assert_series_equal(by_series, by_array)
    pd.testing.assert_series_equal(
        model.predict_renewal_proba(X, horizon=3, tenure=5),
        model.predict_renewal_proba(X, horizon=3, tenure=np.full(len(X), 5.0)),
    )
    # horizon 0 is certain survival; probabilities fall with the horizon.
    assert (model.predict_renewal_proba(X, horizon=0, tenure=5) == 1.0).all()
    p6 = model.predict_renewal_proba(X, horizon=6, tenure=5)
    p12 = model.predict_renewal_proba(X, horizon=12, tenure=5)
    assert ((p12 <= p6) & (p6 <= 1) & (p12 > 0)).all()


@pytest.mark.parametrize("which", ["coxph", "weibull_aft"])
def test_monthly_hazard(fitted, rossi, which):
    model = fitted[which]
    X = rossi.head(30)
    tenure = np.linspace(1, 45, len(X))
    hazard = model.monthly_hazard(X, tenure=tenure)
    renew = model.predict_renewal_proba(X, horizon=1, tenure=tenure)
    np.testing.assert_allclose(hazard.to_numpy(), 1.0 - renew.to_numpy(), rtol=0, atol=1e-15)
    assert hazard.name == "monthly_hazard" and hazard.index.equals(X.index)
    assert ((hazard >= 0) & (hazard < 1)).all()


def test_cox_extrapolation_warns(cox, rossi):
    X = rossi.head(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cox.predict_renewal_proba(X, horizon=12, tenure=40)  # 52 is the last week: no warning
    with pytest.warns(ExtrapolationWarning, match="last training duration"):
        hazard = cox.monthly_hazard(X, tenure=60)
    assert (hazard == 0.0).all()


# ----------------------------------------------------------------------------
# persistence without pickle
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ALL_MODELS)
def test_params_json_round_trip_predicts_identically(fitted, rossi, which, monkeypatch):
    model = fitted[which]
    text = json.dumps(model.to_params(), allow_nan=False)  # strict JSON

    def _no_unpickling(*args, **kwargs):
        raise AssertionError("from_params must not unpickle")

    monkeypatch.setattr(pickle, "loads", _no_unpickling)
    monkeypatch.setattr(pickle, "load", _no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", _no_unpickling)
    restored = SurvivalModel.from_params(json.loads(text))
    monkeypatch.undo()

    assert restored.fitter_ is None
    assert restored.get_params() == model.get_params() | {"strata": restored.strata}
    times = np.array([0.0, 0.5, 1.0, 7.5, 20.0, 51.0])
    tenure = np.resize(np.arange(0.0, 40.0, 3.0), len(rossi))
    max_diff = max(
        np.max(
            np.abs(restored.predict_survival(rossi, times).to_numpy() - model.predict_survival(rossi, times).to_numpy())
        ),
        np.max(
            np.abs(
                restored.predict_renewal_proba(rossi, horizon=12, tenure=tenure).to_numpy()
                - model.predict_renewal_proba(rossi, horizon=12, tenure=tenure).to_numpy()
            )
        ),
        np.max(
            np.abs(
                restored.monthly_hazard(rossi, tenure=tenure).to_numpy()
                - model.monthly_hazard(rossi, tenure=tenure).to_numpy()
            )
        ),
    )
    assert max_diff < 1e-12
    assert restored.score(rossi) == model.score(rossi)
    assert restored.concordance_index_ == model.concordance_index_
    pd.testing.assert_series_equal(restored.params_, model.params_)
    pd.testing.assert_frame_equal(restored.summary, model.summary)
    # ... and it predicts like lifelines itself (not just like the wrapper), from
    # the first training duration on (before it lifelines clamps H0 to H0(1)).
    later = times[times >= 1.0]
    np.testing.assert_allclose(
        restored.predict_survival(rossi, later).to_numpy(),
        _lifelines_survival(model, rossi, later).to_numpy(),
        rtol=0,
        atol=1e-12,
    )
    # A second round trip is a fixed point.
    assert restored.to_params() == json.loads(text)


def test_params_content(cox, weibull):
    d = cox.to_params()
    assert d["format"] == "renewforecast.SurvivalModel" and d["format_version"] == 1
    assert d["hyperparameters"]["kind"] == "coxph"
    assert d["features"]["names_in"] == COVARIATES
    assert d["coxph"]["coefficients"]["names"] == COVARIATES
    np.testing.assert_array_equal(d["coxph"]["centering"], cox.fitter_._norm_mean[COVARIATES].to_numpy())
    (table,) = d["coxph"]["baseline_cumulative_hazard"]
    bch = cox.fitter_.baseline_cumulative_hazard_.iloc[:, 0]
    np.testing.assert_array_equal(table["times"], bch.index.to_numpy())
    np.testing.assert_array_equal(table["values"], bch.to_numpy())
    pd.testing.assert_frame_equal(cox.baseline_cumulative_hazard_, cox.fitter_.baseline_cumulative_hazard_)

    w = weibull.to_params()["weibull_aft"]
    assert w["lambda_"]["values"] == [weibull.fitter_.params_[("lambda_", n)] for n in w["lambda_"]["names"]]
    assert w["rho_"] == {
        "names": ["Intercept"],
        "values": [weibull.fitter_.params_[("rho_", "Intercept")]],
    }
    # to_params hands out a copy: editing it cannot corrupt the model.
    d["coxph"]["coefficients"]["values"][0] = 99.0
    assert cox.to_params()["coxph"]["coefficients"]["values"][0] != 99.0


def test_from_params_rejects_bad_input(cox):
    good = cox.to_params()
    with pytest.raises(SurvivalDataError, match="format"):
        SurvivalModel.from_params({**good, "format": "something.else"})
    with pytest.raises(SurvivalDataError, match="format_version"):
        SurvivalModel.from_params({**good, "format_version": 99})
    bad = json.loads(json.dumps(good))
    bad["coxph"]["coefficients"]["values"] = bad["coxph"]["coefficients"]["values"][:-1]
    with pytest.raises(SurvivalDataError):
        SurvivalModel.from_params(bad)
    bad = json.loads(json.dumps(good))
    bad["coxph"]["baseline_cumulative_hazard"][0]["values"][3] = "nan"
    with pytest.raises(SurvivalDataError):
        SurvivalModel.from_params(bad)
    bad = json.loads(json.dumps(good))
    bad["hyperparameters"]["evil"] = "os.system"
    with pytest.raises(SurvivalDataError, match="hyperparameters"):
        SurvivalModel.from_params(bad)
    with pytest.raises(SurvivalDataError):
        SurvivalModel.from_params(b"\x80\x04pickle")  # type: ignore[arg-type]
    assert issubclass(SurvivalDataError, RenewForecastError)


# ----------------------------------------------------------------------------
# categorical covariates
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn_frame() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = 400
    plan = rng.choice(["pro", "basic", "enterprise"], size=n)
    seats = rng.integers(1, 50, size=n)
    scale = np.select([plan == "basic", plan == "pro"], [12.0, 24.0], 48.0) * (1 + seats / 100)
    t = rng.weibull(1.3, size=n) * scale
    censor = rng.uniform(6, 60, size=n)
    return pd.DataFrame(
        {
            "duration": np.ceil(np.minimum(t, censor)),
            "event": (t <= censor).astype(int),
            "plan": plan,
            "seats": seats,
            "annual": rng.random(n) < 0.4,
        }
    )


@pytest.mark.parametrize("kind", ["coxph", "weibull_aft"])
def test_categorical_encoding_and_unseen_levels(churn_frame, kind):
    model = SurvivalModel(kind=kind).fit(churn_frame)
    assert model.categories_ == {"plan": ["basic", "enterprise", "pro"]}  # sorted; "basic" is reference
    assert model.encoded_feature_names_.tolist() == [
        "plan_enterprise",
        "plan_pro",
        "seats",
        "annual",
    ]
    assert model.feature_names_in_.tolist() == ["plan", "seats", "annual"]
    assert model.n_features_in_ == 3
    # Longer-lived plans get better survival.
    X = pd.DataFrame({"plan": ["basic", "pro", "enterprise"], "seats": 10, "annual": False})
    s = model.predict_survival(X, [12.0]).iloc[0]
    assert s[0] < s[1] < s[2]

    # Same raw columns, different column order and row order: same answer.
    shuffled = churn_frame.sample(frac=1.0, random_state=3)[["annual", "seats", "plan"]]
    pd.testing.assert_series_equal(
        model.predict_renewal_proba(shuffled, horizon=6, tenure=3).sort_index(),
        model.predict_renewal_proba(churn_frame, horizon=6, tenure=3).sort_index(),
    )

    # An unseen level does not crash and is scored like the reference level.
    unseen = pd.DataFrame(
        {"plan": ["startup", "basic"], "seats": [10, 10], "annual": [True, True]},
        index=["new", "ref"],
    )
    p = model.predict_renewal_proba(unseen, horizon=6, tenure=2)
    assert p.index.tolist() == ["new", "ref"] and np.isfinite(p).all()
    assert p["new"] == p["ref"]
    # A pandas Categorical column encodes the same way as strings.
    cat = unseen.astype({"plan": "category"})
    pd.testing.assert_series_equal(model.predict_renewal_proba(cat, horizon=6, tenure=2), p)

    # The encoding survives the JSON round trip.
    restored = SurvivalModel.from_params(json.loads(json.dumps(model.to_params())))
    assert restored.categories_ == model.categories_
    pd.testing.assert_series_equal(restored.predict_renewal_proba(unseen, horizon=6, tenure=2), p)


def test_encoding_is_deterministic(churn_frame):
    a = SurvivalModel().fit(churn_frame)
    b = SurvivalModel().fit(churn_frame.iloc[::-1])
    assert a.to_params()["features"] == b.to_params()["features"]
    np.testing.assert_allclose(a.params_.to_numpy(), b.params_.to_numpy(), atol=1e-8)


# ----------------------------------------------------------------------------
# scikit-learn contract and input validation
# ----------------------------------------------------------------------------


def test_unfitted_raises_not_fitted(rossi):
    model = SurvivalModel(duration_col="week", event_col="arrest")
    for call in (
        lambda: model.predict_survival(rossi, [1.0]),
        lambda: model.predict_renewal_proba(rossi, horizon=1),
        lambda: model.monthly_hazard(rossi, tenure=1),
        lambda: model.score(rossi),
        lambda: model.to_params(),
        lambda: model.summary,
    ):
        with pytest.raises(NotFittedError):
            call()


def test_sklearn_contract(rossi):
    model = SurvivalModel(kind="weibull_aft", penalizer=0.1, duration_col="week", event_col="arrest")
    assert model.get_params() == {
        "kind": "weibull_aft",
        "penalizer": 0.1,
        "l1_ratio": 0.0,
        "duration_col": "week",
        "event_col": "arrest",
        "strata": None,
        "alpha": 0.05,
    }
    assert model.set_params(penalizer=0.0, kind="coxph") is model
    assert model.penalizer == 0.0 and model.kind == "coxph"
    assert model.fit(rossi) is model
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(clone(model)))
    with pytest.raises(TypeError):
        SurvivalModel("coxph")  # keyword-only
    # __init__ stores without validating; fit validates.
    with pytest.raises(SurvivalDataError, match="kind"):
        SurvivalModel(kind="nope").fit(rossi)
    with pytest.raises(SurvivalDataError, match="strata"):
        SurvivalModel(kind="weibull_aft", strata="race", duration_col="week", event_col="arrest").fit(rossi)
    # A refit with another kind leaves no Cox-only attributes behind.
    model.set_params(kind="weibull_aft").fit(rossi)
    assert not hasattr(model, "baseline_cumulative_hazard_")


def test_input_validation(rossi, cox):
    with pytest.raises(SurvivalDataError, match="columns not found"):
        SurvivalModel().fit(rossi)
    bad = rossi.copy()
    bad.loc[0, "week"] = 0
    with pytest.raises(SurvivalDataError, match="> 0"):
        SurvivalModel(duration_col="week", event_col="arrest").fit(bad)
    bad = rossi.astype({"age": float})
    bad.loc[3, "age"] = np.nan
    with pytest.raises(SurvivalDataError, match="missing"):
        SurvivalModel(duration_col="week", event_col="arrest").fit(bad)
    with pytest.raises(SurvivalDataError, match="missing from X"):
        cox.predict_survival(rossi.drop(columns="prio"), [1.0])
    with pytest.raises(SurvivalDataError, match="numeric"):
        cox.predict_survival(rossi.astype({"age": str}), [1.0])
    with pytest.raises(SurvivalDataError, match="tenure"):
        cox.predict_renewal_proba(rossi, horizon=1, tenure=[1.0, 2.0])
    with pytest.raises(SurvivalDataError, match="tenure"):
        cox.predict_renewal_proba(rossi, horizon=1, tenure=-1)
    with pytest.raises(SurvivalDataError, match="horizon"):
        cox.predict_renewal_proba(rossi, horizon=-1)
    with pytest.raises(SurvivalDataError, match="times"):
        cox.predict_survival(rossi, [-1.0])


def test_unseen_stratum_is_an_error(cox_strata, rossi):
    X = rossi.head(2).assign(wexp=[1, 7])
    with pytest.raises(SurvivalDataError, match="strata values not seen"):
        cox_strata.predict_survival(X, [5.0])


def test_docstring_examples():
    result = doctest.testmod(survival_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
