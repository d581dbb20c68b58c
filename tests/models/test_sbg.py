"""Tests for the shifted-beta-geometric retention model (renewforecast.models.sbg).

Reference numbers are typed in as constants, never computed by the code under
test. Sources (see /work/shared/reference/statistical_anchors.md, sections 1-2):

* FH2007 = Fader & Hardie (2007), "How to Project Customer Retention", JIM 21(1),
  Appendix B data. The 3-decimal MLEs (0.704, 1.182; 0.668, 3.806) and the High
  End projection for years 8-12 are printed in public code that cites the paper
  (jdmaturen/shifted_beta_geometric_py sbg.py l.137 and README l.27;
  pymc-marketing sBG_marimo.py). The 4th decimal and the log-likelihoods were
  re-computed independently in the notes (the paper's own table was not
  available to check).
* FH2010 = Fader & Hardie (2010), "Customer-Base Valuation in a Contractual
  Setting", Marketing Science 29(1): DEL / DERL (eq. 6) and the two multi-cohort
  cases (jdmaturen sbg.py l.147-149 asserts Case 1 alpha 3.80, beta 15.19).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from renewforecast.models.sbg import ShiftedBetaGeometric

# --- FH2007 Appendix B: customers alive of 1,000, years 0..7 (the fit window) ---
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]

# FH2007 MLEs on years 1-7 (printed precision: 4 dp parameters, 2 dp LL).
REGULAR_ALPHA, REGULAR_BETA, REGULAR_LL = 0.7041, 1.1820, -1680.27
HIGH_END_ALPHA, HIGH_END_BETA, HIGH_END_LL = 0.6681, 3.8061, -1611.16

# FH2007 projected High End survival, years 8..12, percent (jdmaturen README l.27).
HIGH_END_PROJECTED_8_12 = [46.0, 43.6, 41.4, 39.5, 37.8]

# Notes table 1.3: projected survival S(t) percent, t = 0..12, fit on years 1-7.
REGULAR_SURVIVAL_PCT = [100.0, 62.7, 47.4, 38.8, 33.2, 29.2, 26.2, 23.9, 22.0, 20.4, 19.1, 18.0, 17.0]
HIGH_END_SURVIVAL_PCT = [100.0, 85.1, 74.7, 67.0, 61.0, 56.2, 52.2, 48.9, 46.0, 43.6, 41.4, 39.5, 37.8]
# Notes table 1.3: retention r(t), t = 1..12.
REGULAR_RETENTION = [0.627, 0.756, 0.819, 0.856, 0.880, 0.898, 0.911, 0.921, 0.929, 0.935, 0.941, 0.945]
HIGH_END_RETENTION = [0.851, 0.878, 0.897, 0.911, 0.921, 0.929, 0.936, 0.942, 0.946, 0.950, 0.954, 0.957]

# FH2010 worked numbers at d = 0.10 (notes table 2.1), evaluated at the printed
# parameters: DEL, then DERL for n = 1..8 (n - 1 = 0..7 renewals made).
REGULAR_DEL = 3.6948
REGULAR_DERL = [2.9642, 4.1030, 4.8697, 5.4419, 5.8940, 6.2643, 6.5755, 6.8422]
HIGH_END_DEL = 5.9222
HIGH_END_DERL = [5.4144, 5.9013, 6.2938, 6.6199, 6.8967, 7.1356, 7.3447, 7.5296]
# jdmaturen README l.36: High End, fitted on years 1-7, 7 renewals, d = 0.10.
HIGH_END_DERL_7_RENEWALS = 7.5296

# FH2010 hypothetical multi-cohort cases: one cohort of 10,000 acquired each year,
# listed oldest first; each cohort is observed for as many years as it has.
CASE1 = [[10000, 8000, 6480, 5307, 4391], [10000, 8000, 6480, 5307], [10000, 8000, 6480], [10000, 8000], [10000]]
CASE2 = [[10000, 8000, 7600, 7383, 7235], [10000, 8000, 7600, 7383], [10000, 8000, 7600], [10000, 8000], [10000]]
CASE1_ALPHA, CASE1_BETA = 3.80, 15.19  # jdmaturen sbg.py l.147-149 (2 dp)
# Notes 2.2 re-computation, 4 dp / 2 dp LL.
CASE1_ALPHA_4DP, CASE1_BETA_4DP, CASE1_LL = 3.7981, 15.1919, -40255.84
CASE1_RETENTION = [0.800, 0.810, 0.819, 0.827, 0.835]
CASE2_ALPHA_4DP, CASE2_BETA_4DP, CASE2_LL = 0.0667, 0.2667, -27476.66
CASE2_RETENTION = [0.800, 0.950, 0.971, 0.980, 0.985]
# Notes 2.2: DERL at d = 0.10 for the active customers of each cohort
# (renewals made 4, 3, 2, 1, 0) and the sum of active count x DERL.
CASE1_DERL = [3.8425, 3.7171, 3.5868, 3.4512, 3.3099]
CASE2_DERL = [10.1924, 10.0605, 9.8560, 9.4620, 7.6814]
CASE1_RESIDUAL_VALUE, CASE2_RESIDUAL_VALUE = 120549.9, 375434.3

# kailu3.github.io "Discrete Contractual": Regular years 1-4 only.
REGULAR_4Y = [1000, 631, 468, 382, 326]
REGULAR_4Y_ALPHA, REGULAR_4Y_BETA = 0.7636650665025251, 1.2958302797888772


def _half_unit(decimals: int) -> float:
    # "Agrees to the printed precision" = within half a unit of the last digit
    # (plus a hair for binary rounding of the constant itself).
    return 0.5 * 10.0**-decimals + 1e-12


@pytest.fixture(scope="module")
def regular() -> ShiftedBetaGeometric:
    return ShiftedBetaGeometric().fit(REGULAR)


@pytest.fixture(scope="module")
def high_end() -> ShiftedBetaGeometric:
    return ShiftedBetaGeometric().fit(HIGH_END)


@pytest.fixture(scope="module")
def case1() -> ShiftedBetaGeometric:
    return ShiftedBetaGeometric().fit(CASE1)


# ----------------------------------------------------------------- FH2007 fits


def test_regular_mle_matches_fh2007(regular):
    assert regular.alpha_ == pytest.approx(REGULAR_ALPHA, abs=_half_unit(4))
    assert regular.beta_ == pytest.approx(REGULAR_BETA, abs=_half_unit(4))
    assert regular.loglik_ == pytest.approx(REGULAR_LL, abs=_half_unit(2))
    assert regular.n_periods_ == 7
    assert regular.n_customers_ == 1000
    assert regular.converged_


def test_high_end_mle_matches_fh2007(high_end):
    assert high_end.alpha_ == pytest.approx(HIGH_END_ALPHA, abs=_half_unit(4))
    assert high_end.beta_ == pytest.approx(HIGH_END_BETA, abs=_half_unit(4))
    assert high_end.loglik_ == pytest.approx(HIGH_END_LL, abs=_half_unit(2))
    assert high_end.n_periods_ == 7
    assert high_end.n_customers_ == 1000


def test_high_end_projection_years_8_to_12(high_end):
    projected = 100 * high_end.survival(np.arange(8, 13))
    np.testing.assert_allclose(projected, HIGH_END_PROJECTED_8_12, atol=_half_unit(1), rtol=0)


@pytest.mark.parametrize(
    ("fixture", "survival_pct", "retention"),
    [
        ("regular", REGULAR_SURVIVAL_PCT, REGULAR_RETENTION),
        ("high_end", HIGH_END_SURVIVAL_PCT, HIGH_END_RETENTION),
    ],
)
def test_projected_survival_and_retention_tables(request, fixture, survival_pct, retention):
    model = request.getfixturevalue(fixture)
    np.testing.assert_allclose(100 * model.survival(np.arange(13)), survival_pct, atol=_half_unit(1), rtol=0)
    np.testing.assert_allclose(model.retention(np.arange(1, 13)), retention, atol=_half_unit(3), rtol=0)


def test_four_year_regular_fit_matches_published_code():
    model = ShiftedBetaGeometric().fit(REGULAR_4Y)
    assert model.alpha_ == pytest.approx(REGULAR_4Y_ALPHA, abs=1e-6)
    assert model.beta_ == pytest.approx(REGULAR_4Y_BETA, abs=1e-6)


def test_fit_is_scale_invariant_and_accepts_fractions(high_end):
    # jdmaturen fits the same High End data as fractions of the cohort.
    shares = [1.0, 0.869, 0.743, 0.653, 0.593, 0.551, 0.517, 0.491]
    fractions = ShiftedBetaGeometric().fit(shares)
    assert fractions.alpha_ == pytest.approx(high_end.alpha_, rel=1e-6)
    assert fractions.beta_ == pytest.approx(high_end.beta_, rel=1e-6)
    assert fractions.loglik_ == pytest.approx(high_end.loglik_ / 1000, rel=1e-9)


# ------------------------------------------------------------- FH2010 DEL / DERL


@pytest.mark.parametrize(
    ("alpha", "beta", "del_", "derl"),
    [
        (REGULAR_ALPHA, REGULAR_BETA, REGULAR_DEL, REGULAR_DERL),
        (HIGH_END_ALPHA, HIGH_END_BETA, HIGH_END_DEL, HIGH_END_DERL),
    ],
)
def test_worked_del_derl_at_printed_parameters(alpha, beta, del_, derl):
    model = ShiftedBetaGeometric.from_params({"alpha": alpha, "beta": beta})
    assert model.discounted_expected_lifetime(0.10) == pytest.approx(del_, abs=_half_unit(4))
    got = model.discounted_expected_residual_lifetime(0.10, np.arange(8))
    np.testing.assert_allclose(got, derl, atol=_half_unit(4), rtol=0)


def test_high_end_derl_after_seven_renewals(high_end):
    value = high_end.discounted_expected_residual_lifetime(0.10, renewals=7)
    assert isinstance(value, float)
    assert value == pytest.approx(HIGH_END_DERL_7_RENEWALS, abs=_half_unit(4))


@pytest.mark.parametrize(
    ("alpha", "beta"), [(0.7041, 1.1820), (0.6681, 3.8061), (3.7981, 15.1919), (0.0667, 0.2667), (2.5, 40.0)]
)
@pytest.mark.parametrize("d", [0.05, 0.10, 0.25])
def test_derl_closed_form_matches_truncated_direct_sum(alpha, beta, d):
    model = ShiftedBetaGeometric.from_params({"alpha": alpha, "beta": beta})
    horizon = 3000  # (1 + d)^-3000 < 1e-60: the remainder is negligible
    t = np.arange(horizon)
    s = model.survival(t)
    disc = (1 + d) ** -t
    assert model.discounted_expected_lifetime(d) == pytest.approx(np.sum(s * disc), rel=1e-10)
    for renewals in (0, 1, 6, 40):
        n = renewals + 1
        direct = np.sum(s[n:] / s[n - 1] * disc[: horizon - n])
        got = model.discounted_expected_residual_lifetime(d, renewals)
        assert got == pytest.approx(direct, rel=1e-10)
        # FH2010 eq. 6 through scipy's hyp2f1, where scipy is accurate
        # (non-integer alpha, moderate beta).
        closed = (beta + n - 1) / (alpha + beta + n - 1) * hyp2f1(1, beta + n, alpha + beta + n, 1 / (1 + d))
        assert got == pytest.approx(closed, rel=1e-10)


def test_derl_is_right_where_scipy_hyp2f1_is_not():
    # scipy.special.hyp2f1 returns a negative value here (alpha exactly 1,
    # z close to 1), which is why the module sums the Gauss series itself.
    model = ShiftedBetaGeometric.from_params({"alpha": 1.0, "beta": 1.18})
    d = 0.001
    t = np.arange(80_000)
    direct = np.sum(model.survival(t) * (1 + d) ** -t)
    assert model.discounted_expected_lifetime(d) == pytest.approx(direct, rel=1e-9)
    big = ShiftedBetaGeometric.from_params({"alpha": 2.0, "beta": 5000.0})
    t = np.arange(3000)
    direct = np.sum(big.survival(t) * 1.1**-t)
    assert big.discounted_expected_lifetime(0.10) == pytest.approx(direct, rel=1e-9)


def test_derl_identity_with_del(high_end):
    d = np.array([0.02, 0.10, 0.30])
    del_ = high_end.discounted_expected_lifetime(d)
    derl0 = high_end.discounted_expected_residual_lifetime(d, 0)
    np.testing.assert_allclose(derl0, (1 + d) * (del_ - 1), rtol=1e-12)


def test_undiscounted_values():
    model = ShiftedBetaGeometric.from_params({"alpha": 3.0, "beta": 4.0})
    assert model.expected_lifetime() == pytest.approx((3 + 4 - 1) / (3 - 1))
    assert model.discounted_expected_lifetime(0) == pytest.approx(3.0)
    # Residual: (beta + n - 1) / (alpha - 1) with n = renewals + 1.
    np.testing.assert_allclose(model.discounted_expected_residual_lifetime(0, [0, 5]), [4 / 2, 9 / 2])
    # Continuity at d = 0.
    assert model.discounted_expected_lifetime(1e-6) == pytest.approx(3.0, rel=1e-5)
    heavy = ShiftedBetaGeometric.from_params({"alpha": 0.9, "beta": 4.0})
    assert heavy.expected_lifetime() == math.inf
    assert heavy.discounted_expected_lifetime(0) == math.inf
    assert heavy.discounted_expected_residual_lifetime(0, 3) == math.inf


def test_derl_broadcasts(high_end):
    got = high_end.discounted_expected_residual_lifetime([[0.05], [0.10]], [0, 3, 7])
    assert got.shape == (2, 3)
    assert got[1, 2] == pytest.approx(HIGH_END_DERL_7_RENEWALS, abs=_half_unit(4))
    assert got[0, 0] == high_end.discounted_expected_residual_lifetime(0.05, 0)


# ------------------------------------------------------------ multiple cohorts


def test_multi_cohort_case1_matches_fh2010(case1):
    assert case1.alpha_ == pytest.approx(CASE1_ALPHA, abs=_half_unit(2))
    assert case1.beta_ == pytest.approx(CASE1_BETA, abs=_half_unit(2))
    assert case1.alpha_ == pytest.approx(CASE1_ALPHA_4DP, abs=_half_unit(4))
    assert case1.beta_ == pytest.approx(CASE1_BETA_4DP, abs=_half_unit(4))
    assert case1.loglik_ == pytest.approx(CASE1_LL, abs=_half_unit(2))
    np.testing.assert_allclose(case1.retention(np.arange(1, 6)), CASE1_RETENTION, atol=_half_unit(3), rtol=0)
    # The just-acquired cohort [10000] carries no information and is not counted.
    assert case1.n_cohorts_ == 4
    assert case1.n_customers_ == 40000
    assert case1.n_periods_ == 4


def test_multi_cohort_case2():
    model = ShiftedBetaGeometric().fit(CASE2)
    assert model.alpha_ == pytest.approx(CASE2_ALPHA_4DP, abs=_half_unit(4))
    assert model.beta_ == pytest.approx(CASE2_BETA_4DP, abs=_half_unit(4))
    assert model.loglik_ == pytest.approx(CASE2_LL, abs=_half_unit(2))
    np.testing.assert_allclose(model.retention(np.arange(1, 6)), CASE2_RETENTION, atol=_half_unit(3), rtol=0)


@pytest.mark.parametrize(
    ("cohorts", "derl", "total"),
    [
        (CASE1, CASE1_DERL, CASE1_RESIDUAL_VALUE),
        (CASE2, CASE2_DERL, CASE2_RESIDUAL_VALUE),
    ],
)
def test_multi_cohort_residual_value(cohorts, derl, total):
    model = ShiftedBetaGeometric().fit(cohorts)
    active = np.array([c[-1] for c in cohorts])
    renewals = np.array([len(c) - 1 for c in cohorts])
    got = model.discounted_expected_residual_lifetime(0.10, renewals)
    np.testing.assert_allclose(got, derl, atol=_half_unit(4), rtol=0)
    # The notes print 120,549.9 for Case 1; the exact MLE (gradient at rounding
    # level) gives 120,549.84. The total moves by ~0.05 when the parameters move
    # by 1e-6 along the likelihood ridge, so it is checked to 1e-6 relative.
    assert np.sum(active * got) == pytest.approx(total, rel=1e-6)


def test_multi_cohort_long_dataframe_and_order_do_not_matter(case1):
    rows = [
        {"cohort": f"{2020 + i}", "period": t, "alive": n}
        for i, counts in enumerate(CASE1)
        for t, n in enumerate(counts)
    ]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # rows in any order
    from_frame = ShiftedBetaGeometric().fit(frame)
    reversed_list = ShiftedBetaGeometric().fit(CASE1[::-1])
    without_new = ShiftedBetaGeometric().fit(CASE1[:-1])
    as_arrays = ShiftedBetaGeometric().fit([np.array(c) for c in CASE1])
    for other in (from_frame, reversed_list, without_new, as_arrays):
        assert other.alpha_ == pytest.approx(case1.alpha_, rel=1e-9)
        assert other.beta_ == pytest.approx(case1.beta_, rel=1e-9)
        assert other.loglik_ == pytest.approx(case1.loglik_, rel=1e-12)


def test_single_cohort_in_a_list_equals_flat_input(high_end):
    nested = ShiftedBetaGeometric().fit([HIGH_END])
    assert nested.alpha_ == high_end.alpha_
    assert nested.beta_ == high_end.beta_


# ------------------------------------------------------------------ properties

PARAMS = [(0.05, 0.2), (0.7041, 1.182), (0.6681, 3.8061), (3.8, 15.2), (50.0, 5.0)]


@pytest.mark.parametrize(("alpha", "beta"), PARAMS)
def test_survival_shape_and_consistency(alpha, beta):
    model = ShiftedBetaGeometric.from_params({"alpha": alpha, "beta": beta})
    t = np.arange(0, 61)
    s = model.survival(t)
    assert s[0] == 1.0
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.diff(s) <= 0)
    r = model.retention(t[1:])
    # Heterogeneity: the churn-prone leave first, so retention rises with tenure.
    assert np.all(np.diff(r) > 0)
    np.testing.assert_allclose(s[1:], np.cumprod(r), rtol=1e-10)
    p = model.churn_probability(t[1:])
    np.testing.assert_allclose(p, s[:-1] - s[1:], rtol=1e-9, atol=1e-15)
    assert p.sum() + s[-1] == pytest.approx(1.0, rel=1e-12)
    assert model.retention(1) == pytest.approx(beta / (alpha + beta))


@pytest.mark.parametrize("p", [0.05, 0.2, 0.6])
def test_constant_churn_limit_is_geometric(p):
    big = 1e8  # alpha, beta -> infinity with alpha / (alpha + beta) = p
    model = ShiftedBetaGeometric.from_params({"alpha": p * big, "beta": (1 - p) * big})
    t = np.arange(0, 21)
    np.testing.assert_allclose(model.survival(t), (1 - p) ** t, rtol=1e-5)
    np.testing.assert_allclose(model.retention(t[1:]), 1 - p, rtol=1e-6)
    for d in (0.0, 0.05, 0.10, 0.25):
        # Payment at period 0 counts: sum_{t>=0} ((1-p)/(1+d))^t = (1+d)/(d+p).
        assert model.discounted_expected_lifetime(d) == pytest.approx((1 + d) / (d + p), rel=1e-5)
        # Memoryless: every active customer is worth the same, (1-p)(1+d)/(d+p).
        np.testing.assert_allclose(
            model.discounted_expected_residual_lifetime(d, [0, 3, 50]), (1 - p) * (1 + d) / (d + p), rtol=1e-5
        )
    assert model.expected_lifetime() == pytest.approx(1 / p, rel=1e-6)


def test_geometric_data_warns_and_predicts_constant_churn():
    alive = [1000 * 0.9**t for t in range(6)]
    with pytest.warns(ConvergenceWarning, match="no sign of heterogeneity"):
        model = ShiftedBetaGeometric().fit(alive)
    assert not model.converged_
    np.testing.assert_allclose(model.survival(np.arange(10)), 0.9 ** np.arange(10), rtol=1e-3)
    assert model.summary["std_error"].isna().all()


def test_scalar_and_array_shapes(high_end):
    assert isinstance(high_end.survival(3), float)
    assert isinstance(high_end.retention(np.int64(3)), float)
    assert isinstance(high_end.discounted_expected_lifetime(0.1), float)
    assert high_end.survival([[0, 1], [2, 3]]).shape == (2, 2)
    assert high_end.discounted_expected_lifetime([0.1, 0.2]).shape == (2,)
    assert high_end.survival(3.0) == high_end.survival(3)


# ----------------------------------------------------- estimator API, persistence


def test_sklearn_contract():
    model = ShiftedBetaGeometric(max_iter=50, tol=1e-9)
    assert model.get_params() == {"max_iter": 50, "tol": 1e-9}
    assert model.fit(HIGH_END) is model
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "alpha_")
    with pytest.raises(TypeError):
        ShiftedBetaGeometric(100)  # keyword-only
    # Refitting overwrites the fitted state.
    model.fit(REGULAR)
    assert model.alpha_ == pytest.approx(REGULAR_ALPHA, abs=_half_unit(4))


@pytest.mark.parametrize(
    "kwargs", [{"max_iter": 0}, {"max_iter": 2.5}, {"tol": 0.0}, {"tol": -1.0}, {"tol": float("nan")}]
)
def test_bad_hyperparameters_raise_at_fit(kwargs):
    model = ShiftedBetaGeometric(**kwargs)  # __init__ does no validation
    with pytest.raises(ValueError, match=r"max_iter|tol"):
        model.fit(HIGH_END)


def test_fit_is_deterministic():
    a = ShiftedBetaGeometric().fit(CASE2)
    b = ShiftedBetaGeometric().fit(CASE2)
    assert (a.alpha_, a.beta_, a.loglik_) == (b.alpha_, b.beta_, b.loglik_)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("survival", (1,)),
        ("retention", (1,)),
        ("churn_probability", (1,)),
        ("expected_lifetime", ()),
        ("discounted_expected_lifetime", (0.1,)),
        ("discounted_expected_residual_lifetime", (0.1, 2)),
        ("to_params", ()),
    ],
)
def test_unfitted_use_raises(method, args):
    with pytest.raises(NotFittedError):
        getattr(ShiftedBetaGeometric(), method)(*args)


def test_unfitted_summary_raises():
    with pytest.raises(NotFittedError):
        _ = ShiftedBetaGeometric().summary


def test_params_json_round_trip(case1):
    params = case1.to_params()
    assert json.loads(json.dumps(params, allow_nan=False)) == params
    for key in ("alpha", "beta", "loglik", "n_customers"):
        assert type(params[key]) is float
    assert type(params["n_periods"]) is int
    restored = ShiftedBetaGeometric.from_params(json.loads(json.dumps(params)))
    t = np.arange(30)
    np.testing.assert_array_equal(restored.survival(t), case1.survival(t))
    np.testing.assert_array_equal(restored.retention(t[1:]), case1.retention(t[1:]))
    assert restored.discounted_expected_residual_lifetime(0.1, 4) == case1.discounted_expected_residual_lifetime(0.1, 4)
    assert restored.to_params() == params
    pd.testing.assert_frame_equal(restored.summary, case1.summary)
    assert restored.get_params() == case1.get_params()


def test_from_params_minimal_and_invalid():
    model = ShiftedBetaGeometric.from_params({"alpha": 1.0, "beta": 2.0})
    assert model.survival(1) == pytest.approx(2 / 3)
    assert model.to_params()["loglik"] is None
    with pytest.raises(ValueError, match="beta"):
        ShiftedBetaGeometric.from_params({"alpha": 1.0})
    with pytest.raises(ValueError, match="alpha"):
        ShiftedBetaGeometric.from_params({"alpha": -1.0, "beta": 2.0})
    with pytest.raises(ValueError, match="unknown"):
        ShiftedBetaGeometric.from_params({"alpha": 1.0, "beta": 2.0, "gamma": 3.0})


def test_summary_and_repr(regular):
    summary = regular.summary
    assert list(summary.index) == ["alpha", "beta", "mean_churn"]
    assert list(summary.columns) == ["estimate", "std_error", "ci_lower_95", "ci_upper_95"]
    assert summary.loc["alpha", "estimate"] == regular.alpha_
    assert (summary["std_error"] > 0).all()
    assert (summary["ci_lower_95"] < summary["estimate"]).all()
    assert (summary["estimate"] < summary["ci_upper_95"]).all()
    text = repr(regular)
    assert text.startswith("ShiftedBetaGeometric(")
    assert "alpha=0.7041" in text and "beta=1.1820" in text
    assert repr(ShiftedBetaGeometric()) == "ShiftedBetaGeometric()"


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1000], "at least 2 points"),
        ([], "empty"),
        ([1000, 1200, 900], "must not increase"),
        ([1000, 800, -5], "non-negative"),
        ([0, 0, 0], "cohort size"),
        ([1000, float("nan"), 500], "NaN"),
        ([1000, "x", 500], "numbers"),
        ([1000, 1000, 1000], "no customer churned"),
        ([1000, 800], "2 or more periods"),
        ([[1000, 800], [1000, 750]], "2 or more periods"),
        ([[1000, 800, 600], 5], "mixed input"),
        ([[1000, 800, 600], [1000, 1100]], r"cohort 1: .*must not increase"),
        ("1000,800", "expected alive counts"),
        ({"a": 1}, "expected alive counts"),
    ],
)
def test_bad_counts_raise_clear_errors(data, match):
    with pytest.raises(ValueError, match=match):
        ShiftedBetaGeometric().fit(data)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"cohort": ["a"], "alive": [10]}), "missing"),
        (pd.DataFrame({"cohort": ["a"] * 3, "period": [0, 2, 3], "alive": [10, 8, 7]}), "without gaps"),
        (pd.DataFrame({"cohort": ["a"] * 3, "period": [0, 1, 1], "alive": [10, 8, 7]}), "more than once"),
        (pd.DataFrame({"cohort": ["a", "a"], "period": [0, 0.5], "alive": [10, 8]}), "whole numbers"),
    ],
)
def test_bad_long_frames_raise(frame, match):
    with pytest.raises(ValueError, match=match):
        ShiftedBetaGeometric().fit(frame)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.survival(-1), "t must be >= 0"),
        (lambda m: m.survival(1.5), "whole numbers"),
        (lambda m: m.retention(0), "t must be >= 1"),
        (lambda m: m.churn_probability(0), "t must be >= 1"),
        (lambda m: m.discounted_expected_lifetime(-0.1), "discount_rate"),
        (lambda m: m.discounted_expected_lifetime(float("nan")), "discount_rate"),
        (lambda m: m.discounted_expected_residual_lifetime(0.1, -1), "renewals"),
        (lambda m: m.discounted_expected_residual_lifetime(0.1, 2.5), "renewals"),
    ],
)
def test_bad_prediction_arguments_raise(high_end, call, match):
    with pytest.raises(ValueError, match=match):
        call(high_end)
