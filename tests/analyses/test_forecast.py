"""Revenue forecast: identities worked by hand, the simulation against its expectation, scenarios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import renewforecast as rf
from _support import make_book

T = pd.Timestamp
AS_OF = "2025-10-31"  # forecast months: November 2025 onwards


def hand_book(pipeline_probability=1.0):
    """A small book whose forecast can be worked out on paper.

    - c1: 10 seats x 1,200 a year (MRR 1,000) for calendar 2025; renews with a 5 % uplift
      from 1 January 2026 (MRR 1,050).
    - c3: a 3-month term, 1 Sep - 30 Nov 2025, MRR 500, priced the same on renewal: its
      renewal runs December - February, and the renewal of that renewal March - May.
    - c2: evergreen, 2 units of a monthly product at 100 (MRR 200) since June 2025.
    - o1: an open new-business deal with two monthly installments of 1,200 on 1 December
      2025 and 1 January 2026, for a product booked as a subscription.
    """
    products = pd.DataFrame(
        [{"product_id": "p12", "subscription_term_months": 12.0}, {"product_id": "p1", "subscription_term_months": 1.0}]
    )
    accounts = pd.DataFrame(
        {"account_id": ["a1", "a2", "a3"], "segment": ["SMB", "Enterprise", "SMB"], "created_date": T("2024-01-01")}
    )
    contracts = pd.DataFrame(
        [
            {
                "contract_id": "c1",
                "account_id": "a1",
                "start_date": T("2025-01-01"),
                "end_date": T("2025-12-31"),
                "term_months": 12.0,
                "evergreen": False,
                "renewal_pricing_method": "uplift",
                "renewal_uplift_rate": 0.05,
                "created_date": T("2024-12-20"),
            },
            {
                "contract_id": "c2",
                "account_id": "a2",
                "start_date": T("2025-06-01"),
                "end_date": pd.NaT,
                "term_months": np.nan,
                "evergreen": True,
                "created_date": T("2025-05-20"),
            },
            {
                "contract_id": "c3",
                "account_id": "a2",
                "start_date": T("2025-09-01"),
                "end_date": T("2025-11-30"),
                "term_months": 3.0,
                "evergreen": False,
                "renewal_pricing_method": "same",
                "created_date": T("2025-08-20"),
            },
        ]
    )
    subs = pd.DataFrame(
        [
            {
                "subscription_id": "s1",
                "contract_id": "c1",
                "account_id": "a1",
                "product_id": "p12",
                "start_date": T("2025-01-01"),
                "end_date": T("2025-12-31"),
                "quantity": 10.0,
                "net_price": 1200.0,
                "prorate_multiplier": 1.0,
                "created_date": T("2024-12-20"),
            },
            {
                "subscription_id": "s2",
                "contract_id": "c2",
                "account_id": "a2",
                "product_id": "p1",
                "start_date": T("2025-06-01"),
                "end_date": pd.NaT,
                "quantity": 2.0,
                "net_price": 100.0,
                "prorate_multiplier": 1.0,
                "created_date": T("2025-05-20"),
            },
            {
                "subscription_id": "s3",
                "contract_id": "c3",
                "account_id": "a2",
                "product_id": "p12",
                "start_date": T("2025-09-01"),
                "end_date": T("2025-11-30"),
                "quantity": 1.0,
                "net_price": 1500.0,
                "prorate_multiplier": 0.25,
                "created_date": T("2025-08-20"),
            },
        ]
    )
    opps = pd.DataFrame(
        [
            {
                "opportunity_id": "o1",
                "account_id": "a3",
                "type": "new_business",
                "stage": "Negotiation/Review",
                "probability": pipeline_probability,
                "close_date": T("2025-11-30"),
                "is_closed": False,
                "is_won": False,
                "amount": 2400.0,
                "created_date": T("2025-09-01"),
            }
        ]
    )
    lines = pd.DataFrame(
        [
            {
                "line_id": "l1",
                "opportunity_id": "o1",
                "product_id": "p12",
                "quantity": 2.0,
                "unit_price": 1200.0,
                "total_price": 2400.0,
                "service_date": T("2025-12-01"),
            }
        ]
    )
    sched = pd.DataFrame(
        [
            {"schedule_id": f"x{i}", "line_id": "l1", "schedule_date": d, "type": "revenue", "revenue": 1200.0}
            for i, d in enumerate([T("2025-12-01"), T("2026-01-01")])
        ]
    )
    return make_book(
        accounts=accounts,
        products=products,
        contracts=contracts,
        subscriptions=subs,
        opportunities=opps,
        opportunity_lines=lines,
        schedules=sched,
    )


def component(fc, name, group="total"):
    rows = fc.frame[(fc.frame["component"] == name) & (fc.frame["group"] == group)]
    return dict(zip(rows["month"].dt.strftime("%Y-%m"), rows["mean"], strict=False))


MONTHS = ["2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-04"]


def test_with_every_probability_one_the_forecast_is_contracted_plus_full_renewals():
    fc = rf.revenue_forecast(
        hand_book(1.0),
        AS_OF,
        horizon_months=6,
        n_sims=50,
        renewal_rate=1.0,
        win_probability="stage",
        new_business=False,
        evergreen_hazard=0.0,
        random_state=1,
    )
    contracted = [1000 + 500 + 200, 1000 + 200, 200, 200, 200, 200]
    renewal = [0, 500, 1050 + 500, 1050 + 500, 1050 + 500, 1050 + 500]
    pipeline = [0, 1200, 1200, 0, 0, 0]
    assert list(component(fc, "contracted").values()) == contracted
    assert list(component(fc, "renewal").values()) == renewal
    assert list(component(fc, "pipeline").values()) == pipeline
    assert list(component(fc, "new_business").values()) == [0.0] * 6
    total = fc.frame[fc.frame["component"] == "total"]
    assert total["mean"].tolist() == [c + r + p for c, r, p in zip(contracted, renewal, pipeline, strict=True)]
    # nothing is uncertain: every simulation is the same
    assert (total["p10"] == total["mean"]).all() and (total["p90"] == total["mean"]).all()
    assert list(component(fc, "total").keys()) == MONTHS


def test_with_every_probability_zero_renewals_and_pipeline_vanish():
    fc = rf.revenue_forecast(
        hand_book(0.0),
        AS_OF,
        horizon_months=6,
        n_sims=50,
        renewal_rate=0.0,
        win_probability="stage",
        new_business=False,
        evergreen_hazard=0.0,
        random_state=1,
    )
    assert set(component(fc, "renewal").values()) == {0.0}
    assert set(component(fc, "pipeline").values()) == {0.0}
    assert list(component(fc, "total").values()) == [1700, 1200, 200, 200, 200, 200]


def test_evergreen_revenue_decays_with_the_monthly_hazard():
    fc = rf.revenue_forecast(
        hand_book(0.0),
        AS_OF,
        horizon_months=6,
        n_sims=4000,
        renewal_rate=0.0,
        win_probability="stage",
        new_business=False,
        evergreen_hazard=0.1,
        random_state=3,
    )
    got = np.array(list(component(fc, "contracted").values())) - np.array([1500, 1000, 0, 0, 0, 0])
    expected = 200 * 0.9 ** np.arange(1, 7)  # alive through each month
    se = 200 * np.sqrt(0.9 ** np.arange(1, 7) * (1 - 0.9 ** np.arange(1, 7)) / 4000)
    assert np.all(np.abs(got - expected) < 4 * se + 0.01)


def test_scenarios_slip_the_pipeline_and_override_the_uplift():
    base = {
        "horizon_months": 6,
        "n_sims": 20,
        "renewal_rate": 1.0,
        "win_probability": "stage",
        "new_business": False,
        "evergreen_hazard": 0.0,
        "random_state": 1,
    }
    slipped = rf.revenue_forecast(hand_book(1.0), AS_OF, scenario={"name": "late", "pipeline_slip_months": 2}, **base)
    assert list(component(slipped, "pipeline").values()) == [0, 0, 0, 1200, 1200, 0]
    assert set(slipped.frame["scenario"]) == {"late"}
    flat = rf.revenue_forecast(hand_book(1.0), AS_OF, scenario=rf.Scenario("flat", uplift=0.10), **base)
    # every renewal at its ARR today plus 10 %: c1 1,100 a month, c3 550
    assert list(component(flat, "renewal").values()) == [0, 550, 1650, 1650, 1650, 1650]
    half = rf.revenue_forecast(hand_book(1.0), AS_OF, scenario=rf.Scenario("half", renewal_factor=0.0), **base)
    assert set(component(half, "renewal").values()) == {0.0}
    with pytest.raises(rf.RenewForecastError, match="pipeline_slip_months"):
        rf.Scenario("bad", pipeline_slip_months=-1)
    with pytest.raises(rf.RenewForecastError, match="unknown scenario"):
        rf.revenue_forecast(hand_book(), AS_OF, scenario={"slip": 2}, **base)


def many_renewals(n=300):
    """n contracts ending 31 December 2025 with MRR 100 x (1 + i % 7), 6-month terms."""
    accounts = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "segment": ["SMB" if i % 2 else "Enterprise" for i in range(n)],
            "created_date": T("2024-01-01"),
        }
    )
    contracts = pd.DataFrame(
        {
            "contract_id": [f"c{i}" for i in range(n)],
            "account_id": accounts["account_id"],
            "start_date": T("2025-07-01"),
            "end_date": T("2025-12-31"),
            "term_months": 6.0,
            "evergreen": False,
            "renewal_pricing_method": "same",
            "created_date": T("2025-06-01"),
        }
    )
    subs = pd.DataFrame(
        {
            "subscription_id": [f"s{i}" for i in range(n)],
            "contract_id": contracts["contract_id"],
            "account_id": accounts["account_id"],
            "product_id": "p12",
            "start_date": T("2025-07-01"),
            "end_date": T("2025-12-31"),
            "quantity": [1.0 + i % 7 for i in range(n)],
            "net_price": 600.0,
            "prorate_multiplier": 0.5,
            "created_date": T("2025-06-01"),
        }
    )
    products = pd.DataFrame([{"product_id": "p12", "subscription_term_months": 12.0}])
    return make_book(accounts=accounts, contracts=contracts, subscriptions=subs, products=products)


def test_simulation_mean_is_within_sampling_error_of_the_expectation():
    book = many_renewals()
    p, n_sims = 0.7, 2000
    fc = rf.revenue_forecast(
        book, AS_OF, horizon_months=12, n_sims=n_sims, renewal_rate=p, new_business=False, random_state=7
    )
    mrr = 100.0 * (1 + np.arange(300) % 7)
    # January-June: the first renewal (probability p); July-October: its renewal too (p^2)
    expected = np.r_[[0, 0], [p * mrr.sum()] * 6, [p * p * mrr.sum()] * 4]
    sd = np.r_[[0, 0], [np.sqrt(p * (1 - p) * (mrr**2).sum())] * 6, [np.sqrt(p * p * (1 - p * p) * (mrr**2).sum())] * 4]
    got = np.array(list(component(fc, "renewal").values()))
    assert np.all(np.abs(got - expected) <= 4 * sd / np.sqrt(n_sims) + 0.01)
    # the interval is about the binomial spread: P90 - P10 = 2 x 1.2816 sd, within 15 %
    rows = fc.frame[(fc.frame["component"] == "renewal") & (fc.frame["group"] == "total")]
    width = (rows["p90"] - rows["p10"]).to_numpy()[2:]
    np.testing.assert_allclose(width, 2 * 1.2816 * sd[2:], rtol=0.15)


def test_groups_add_up_to_the_total_and_same_seed_same_answer():
    book = many_renewals(60)
    kw = {"horizon_months": 8, "n_sims": 300, "renewal_rate": 0.6, "new_business": False, "random_state": 11}
    fc = rf.revenue_forecast(book, AS_OF, by="segment", **kw)
    assert set(fc.frame["group"]) == {"Enterprise", "SMB", "total"}
    mean = fc.frame.pivot_table(index=["component", "month"], columns="group", values="mean")
    np.testing.assert_allclose(mean["Enterprise"] + mean["SMB"], mean["total"], atol=0.02)
    again = rf.revenue_forecast(book, AS_OF, by="segment", **kw)
    pd.testing.assert_frame_equal(fc.frame, again.frame)
    with pytest.raises(rf.RenewForecastError, match="not an account column"):
        rf.revenue_forecast(book, AS_OF, by="colour", **kw)


def test_bad_arguments_are_refused_clearly():
    book = many_renewals(5)
    with pytest.raises(rf.RenewForecastError, match="horizon_months"):
        rf.revenue_forecast(book, AS_OF, horizon_months=0)
    with pytest.raises(rf.RenewForecastError, match="renewal_rate"):
        rf.revenue_forecast(book, AS_OF, renewal_rate=1.5)
    with pytest.raises(rf.RenewForecastError, match="no renewal decisions"):
        rf.revenue_forecast(book, AS_OF, new_business=False)


def test_demo_forecast_and_backtest(demo_book):
    as_of = "2026-04-30"
    fc = rf.revenue_forecast(demo_book, as_of, horizon_months=12, n_sims=200, random_state=0)
    total = fc.frame[(fc.frame["component"] == "total") & (fc.frame["group"] == "total")]
    assert len(total) == 12 and (total["p10"] <= total["p50"]).all() and (total["p50"] <= total["p90"]).all()
    parts = fc.frame[(fc.frame["component"] != "total") & (fc.frame["group"] == "total")].groupby("month")["mean"].sum()
    np.testing.assert_allclose(parts.to_numpy(), total["mean"].to_numpy(), atol=0.05)
    # contracted revenue is what the booked subscriptions recognise in those months (no evergreen churn
    # beyond the hazard): never more than the recognised revenue of the book as known then
    known = rf.recognized_revenue(demo_book.as_of(as_of), "2026-05-01", "2027-04-30")["revenue"].to_numpy()
    contracted = fc.frame[(fc.frame["component"] == "contracted") & (fc.frame["group"] == "total")]["mean"].to_numpy()
    assert np.all(contracted <= known + 0.05)
    bt = rf.backtest_forecast(demo_book, ["2025-04-30", "2025-07-31"], horizon_months=6, n_sims=100)
    detail = bt.detail
    assert set(detail["method"]) == {"bottom_up", "top_down_ets", "seasonal_naive"}
    actual = rf.recognized_revenue(demo_book, "2025-05-01", "2025-10-31").set_index("month")["revenue"]
    first = detail[(detail["origin"] == T("2025-04-30")) & (detail["method"] == "bottom_up")]
    assert first["actual"].tolist() == actual.tolist()
    summary = bt.summary()
    assert summary.loc["bottom_up", "months"] == 12
    assert 0 <= summary.loc["bottom_up", "coverage_p10_p90"] <= 1
    with pytest.raises(rf.RenewForecastError, match="run past"):
        rf.backtest_forecast(demo_book, ["2026-09-30"], horizon_months=12)


def test_a_young_book_does_not_get_a_runaway_new_business_forecast(demo_book):
    # The 60-account org is a young, fast-growing book: earlier forecast
    # origins under-forecast its new business by a factor of over 100, an
    # error the correction must not carry forward. A year's revenue cannot
    # sensibly exceed three times the ARR it starts from, even growing fast.
    # The demo book grew 2.3x in the year before this origin, so its P90 may reach
    # three times its ARR; its median may not, and a runaway (x100) is far above both bounds.
    arr = rf.arr_on(demo_book, "2026-06-30")
    fc = rf.revenue_forecast(demo_book, "2026-06-30", horizon_months=12, n_sims=300, random_state=0)
    assert fc.horizon_total.p50 < 3 * arr
    assert fc.horizon_total.p90 < 4 * arr
    assert fc.horizon_total.mean > arr * 0.5  # and it is not cut to nothing either
    nb = fc.new_business
    assert nb.past_log_error_mean_last_month > np.log(2)  # the case the cap is for


def test_renewal_probabilities_given_are_used_instead_of_scoring():
    kw = {
        "horizon_months": 6,
        "n_sims": 50,
        "win_probability": "stage",
        "new_business": False,
        "evergreen_hazard": 0.0,
        "random_state": 1,
    }
    fc = rf.revenue_forecast(hand_book(1.0), AS_OF, renewal_probabilities=pd.Series({"c1": 1.0, "c3": 1.0}), **kw)
    assert list(component(fc, "renewal").values()) == [0, 500, 1050 + 500, 1050 + 500, 1050 + 500, 1050 + 500]
    assert fc.renewal.probabilities.to_dict() == {"c1": 1.0, "c3": 1.0}
    assert fc.model_version is None and "given" in fc.renewal.source
    # score_contracts output: its model version is recorded as the forecast's
    scores = pd.DataFrame(
        {"contract_id": ["c1", "c3"], "renewal_probability": [0.0, 1.0], "model_version": "20261121T060000Z-1a2b3c"}
    )
    scored = rf.revenue_forecast(hand_book(1.0), AS_OF, renewal_probabilities=scores, **kw)
    assert list(component(scored, "renewal").values()) == [0, 500, 500, 500, 500, 500]
    assert scored.model_version == "20261121T060000Z-1a2b3c"
    assert scored.renewal.source == "renewal model (20261121T060000Z-1a2b3c)"
    with pytest.raises(rf.RenewForecastError, match="not both"):
        rf.revenue_forecast(hand_book(), AS_OF, model="models/renewal", renewal_probabilities=scores, **kw)
    with pytest.raises(rf.RenewForecastError, match="from 0 to 1"):
        rf.revenue_forecast(hand_book(), AS_OF, renewal_probabilities=pd.Series({"c1": 1.5}), **kw)
    with pytest.raises(rf.RenewForecastError, match="no renewal probability"):
        rf.revenue_forecast(hand_book(), AS_OF, renewal_probabilities=pd.Series({"c1": 0.5}), **kw)
    with pytest.raises(TypeError, match=r"\.frame"):
        fc["component"]


def test_the_historical_renewal_rate_is_the_kpi_reports(demo_book):
    # One definition: the rate a contract without a probability of its own renews with is the
    # renewal rate by count that renewal_kpis reports over the 24 months before the forecast date.
    as_of = pd.Timestamp("2026-04-30")
    fc = rf.revenue_forecast(demo_book, as_of, horizon_months=3, n_sims=20, random_state=0, new_business=False)
    rate = fc.renewal.historical_rate
    kpi = rf.renewal_kpis(demo_book, "2024-05-01", as_of, as_of=as_of)
    assert (rate.start, rate.end) == (T("2024-05-01"), as_of)
    assert rate.overall == kpi["renewal_rate_count"].iloc[0] and rate.decisions == kpi["decided"].iloc[0]
    by_segment = rf.renewal_kpis(demo_book, "2024-05-01", as_of, by="segment", as_of=as_of).set_index("segment")
    for segment, value in rate.by_segment.items():
        assert value == by_segment.loc[segment, "renewal_rate_count"] and by_segment.loc[segment, "decided"] >= 30
    open_ = fc.renewal.contracts
    expected = (
        open_["account_id"]
        .map(demo_book.accounts.set_index("account_id")["segment"])
        .map(rate.by_segment)
        .fillna(rate.overall)
    )
    np.testing.assert_array_equal(open_["probability"].to_numpy(), expected.to_numpy())
