"""CAC, LTV and LTV:CAC: hand-worked formulas, reference values and consistency between methods."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import renewforecast as rf
from _support import make_book
from renewforecast.analyses.unit_economics import cac, ltv, ltv_cac

T = pd.Timestamp
END = T("2026-12-31")


def annual_book(
    n: int = 3000, renew: float = 0.8, seed: int = 3, mrr: float = 100.0, churn: bool = True, margin: float = 0.8
):
    """Customers on annual contracts who renew with the same probability every year.

    Everyone pays ``mrr`` a month; acquisitions are spread over five years;
    spend is 1,000 a month on one paid channel.
    """
    rng = np.random.default_rng(seed)
    subs, accounts = [], []
    for i in range(n):
        start = T("2021-01-01") + pd.DateOffset(months=int(rng.integers(0, 60)))
        aid = f"a{i}"
        accounts.append(
            {
                "account_id": aid,
                "segment": "SMB" if i % 2 else "Enterprise",
                "acquisition_channel": "paid" if i % 3 else "organic",
                "created_date": start,
            }
        )
        year = 0
        while True:
            s = start + pd.DateOffset(years=year)
            if s > END:
                break
            e = s + pd.DateOffset(years=1) - pd.Timedelta(days=1)
            subs.append(
                {
                    "subscription_id": f"s{i}-{year}",
                    "contract_id": f"c{i}-{year}",
                    "account_id": aid,
                    "product_id": "p",
                    "start_date": s,
                    "end_date": e,
                    "quantity": 1.0,
                    "net_price": mrr * 12,
                    "prorate_multiplier": 1.0,
                    "created_date": s,
                }
            )
            year += 1
            if churn and rng.random() > renew:
                break
    months = pd.date_range("2021-01-01", "2026-12-01", freq="MS")
    spend = pd.DataFrame(
        {
            "month": np.repeat(months, 2),
            "channel": ["paid", "organic"] * len(months),
            "sales_spend": [600.0, 0.0] * len(months),
            "marketing_spend": [400.0, 50.0] * len(months),
        }
    )
    products = pd.DataFrame({"product_id": ["p"], "subscription_term_months": [12.0], "gross_margin": [margin]})
    return make_book(accounts=pd.DataFrame(accounts), subscriptions=pd.DataFrame(subs), products=products, spend=spend)


@pytest.fixture(scope="module")
def homogeneous():
    return annual_book()


def test_the_three_methods_agree_on_a_constant_churn_cohort(homogeneous):
    # every customer renews with probability 0.8: 12 / (1 - 0.8) = 60 months, undiscounted.
    # The simple method spreads annual churn evenly over months, which puts it a few
    # months short on annual contracts (1 / (1 - 0.8 ** (1/12)) = 54.8); Kaplan-Meier and
    # sBG follow the anniversaries.
    values = {
        m: ltv(homogeneous, END, method=m, discount_rate=0.0, n_boot=0).iloc[0] for m in ("simple", "survival", "sbg")
    }
    for m, row in values.items():
        assert row["lifetime_months"] == pytest.approx(60.0, rel=0.12), m
        assert row["arpa"] == pytest.approx(100.0) and row["gross_margin"] == pytest.approx(0.8)
    assert values["sbg"]["lifetime_months"] == pytest.approx(60.0, rel=0.03)
    assert values["simple"]["lifetime_months"] == pytest.approx(1 / (1 - 0.8 ** (1 / 12)), rel=0.03)


def test_simple_ltv_formula_by_hand(homogeneous):
    row = ltv(homogeneous, END, method="simple", discount_rate=0.0, n_boot=0).iloc[0]
    # Skok: ARPA x margin / monthly churn, and lifetime = 1 / churn
    assert row["lifetime_months"] == pytest.approx(1 / row["monthly_churn"])
    assert row["ltv"] == pytest.approx(100.0 * 0.8 / row["monthly_churn"])
    d = 0.10
    d_m = 1.1 ** (1 / 12) - 1
    disc = ltv(homogeneous, END, method="simple", discount_rate=d, n_boot=0).iloc[0]
    c = disc["monthly_churn"]
    assert disc["ltv"] == pytest.approx(80.0 * (1 + d_m) / (d_m + c))  # sum of ((1-c)/(1+d_m))^t, t >= 0
    capped = ltv(homogeneous, END, method="simple", discount_rate=0.0, horizon_years=2, n_boot=0).iloc[0]
    assert capped["ltv"] == pytest.approx(80.0 * (1 - (1 - c) ** 24) / c)


def test_churn_rate_is_losses_over_customer_months(homogeneous):
    row = ltv(homogeneous, END, method="simple", discount_rate=0.0, n_boot=0).iloc[0]
    m = rf.mrr_movements(homogeneous, start="2026-01-01", end=END)
    m = m[m["month"] >= T("2026-01-31")]
    assert row["monthly_churn"] == pytest.approx((m["churn"] > 0).sum() / (m["start_mrr"] > 0).sum())


def test_sbg_ltv_is_annual_margin_times_del(homogeneous):
    row = ltv(homogeneous, END, method="sbg", discount_rate=0.10, n_boot=0).iloc[0]
    from sklearn.exceptions import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="no sign of heterogeneity"):  # every customer alike
        model = rf.ShiftedBetaGeometric().fit(rf.annual_cohorts(homogeneous, END))
    assert row["ltv"] == pytest.approx(100 * 12 * 0.8 * model.discounted_expected_lifetime(0.10), rel=1e-9)
    # the published High End parameters: DEL 5.9222 and DERL after 7 renewals 7.5296 at d = 0.10
    high_end = rf.ShiftedBetaGeometric.from_params({"alpha": 0.6681, "beta": 3.8061})
    assert high_end.discounted_expected_lifetime(0.10) == pytest.approx(5.9222, abs=5e-5)
    assert high_end.discounted_expected_residual_lifetime(0.10, 7) == pytest.approx(7.5296, abs=5e-5)


def test_bootstrap_interval_surrounds_the_estimate(homogeneous):
    for method in ("simple", "survival", "sbg"):
        row = ltv(homogeneous, END, method=method, n_boot=40, random_state=1).iloc[0]
        assert row["ltv_low"] <= row["ltv"] <= row["ltv_high"], method
        assert row["ltv_high"] / row["ltv_low"] < 1.5


def test_zero_churn_is_labelled_not_nan():
    book = annual_book(n=300, churn=False)
    row = ltv(book, END, method="simple", discount_rate=0.0, n_boot=0).iloc[0]
    assert row["ltv"] == np.inf and "unbounded" in row["note"]
    capped = ltv(book, END, method="simple", discount_rate=0.0, horizon_years=3, n_boot=0).iloc[0]
    assert capped["ltv"] == pytest.approx(100 * 0.8 * 36)
    sbg = ltv(book, END, method="sbg", n_boot=0).iloc[0]
    assert np.isnan(sbg["ltv"]) and "cannot be fitted" in sbg["note"]


def test_cac_by_hand_and_doubling_spend(homogeneous):
    q = cac(homogeneous, freq="Q")
    new = rf.mrr_movements(homogeneous)
    new = new[new["new"] > 0]
    q1 = new[(new["month"] >= T("2023-01-01")) & (new["month"] <= T("2023-03-31"))]["account_id"].nunique()
    row = q.set_index("period").loc["2023Q1"]
    assert row["new_customers"] == q1
    assert row["spend"] == pytest.approx(3 * 1050.0)  # paid 1,000 + organic 50 a month
    assert row["cac"] == pytest.approx(3 * 1050.0 / q1)
    doubled = homogeneous.replace(
        spend=homogeneous.spend.assign(
            sales_spend=homogeneous.spend["sales_spend"] * 2, marketing_spend=homogeneous.spend["marketing_spend"] * 2
        )
    )
    assert cac(doubled).set_index("period").loc["2023Q1", "cac"] == pytest.approx(2 * row["cac"])
    paid = cac(homogeneous, freq="Q", paid_only=True).set_index("period").loc["2023Q1"]
    assert paid["spend"] == pytest.approx(3000.0) and paid["new_customers"] < q1
    by_channel = cac(homogeneous, freq="Q", by="acquisition_channel").set_index(["period", "acquisition_channel"])
    assert by_channel.loc[("2023Q1", "organic"), "spend"] == pytest.approx(150.0)


def test_spend_lag_uses_the_prior_months(homogeneous):
    lagged = cac(homogeneous, freq="M", spend_lag_months=1).set_index("period")
    assert "2021-01" not in lagged.index or lagged.loc["2021-01", "note"].startswith("no spend")
    assert lagged.loc["2021-02", "spend"] == pytest.approx(1050.0)


def test_bad_periods_are_labelled():
    book = annual_book(n=200)
    spend = book.spend[book.spend["month"].dt.year != 2024]  # no spend recorded in 2024
    q = cac(book.replace(spend=spend), freq="Q").set_index("period")
    assert q.loc["2024Q2", "new_customers"] > 0
    assert np.isnan(q.loc["2024Q2", "cac"]) and q.loc["2024Q2", "note"].startswith("no spend recorded")
    # spend but nobody new: months after the last acquisition
    late = cac(book, freq="M").set_index("period")
    quiet = late[late["new_customers"] == 0]
    assert len(quiet) and (quiet["cac"] == np.inf).all()
    assert quiet["note"].str.contains("no new customers").all()
    assert not q["cac"].isna().any() or (q.loc[q["cac"].isna(), "note"] != "").all()


def test_ltv_cac_table(homogeneous):
    table = ltv_cac(homogeneous, END, by="segment", method="simple", n_boot=0)
    assert table.attrs["ltv_method"] == "simple"
    assert {
        "ltv_simple",
        "ltv_simple_to_cac",
        "payback_months",
        "ltv_to_cac_status",
        "payback_status",
        "quick_ratio",
        "magic_number",
    } <= set(table.columns)
    for _, row in table.iterrows():
        if not np.isfinite(row["cac"]) or np.isnan(row["ltv_simple"]):
            assert row["ltv_to_cac_status"] == "undefined" or row["ltv_simple_to_cac"] == 0
            continue
        assert row["ltv_simple_to_cac"] == pytest.approx(row["ltv_simple"] / row["cac"])
        assert row["payback_months"] == pytest.approx(row["cac"] / (row["new_customer_mrr"] * row["gross_margin"]))
        expected = "healthy (3:1 or better)" if row["ltv_simple_to_cac"] >= 3 else "below 3:1"
        assert row["ltv_to_cac_status"] == expected
    blended = ltv_cac(homogeneous, "2025-12-31", method="simple", n_boot=0).iloc[0]  # a year with acquisitions
    assert blended["new_customer_mrr"] == pytest.approx(100.0)


def test_demo_org_unit_economics_are_plausible(demo_book):
    table = ltv_cac(demo_book, "2026-10-31", n_boot=10)
    row = table.iloc[0]
    assert row["cac"] > 0 and np.isfinite(row["payback_months"])
    assert row["payback_status"] in {"healthy (under 12 months)", "slow (12 to 36 months)", "concern (over 36 months)"}
