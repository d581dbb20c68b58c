"""Retention and renewal KPIs, worked by hand, and the identities they must satisfy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import renewforecast as rf
from _support import make_book

T = pd.Timestamp
PRODUCTS = pd.DataFrame({"product_id": ["p"], "subscription_term_months": [12.0]})


def sub(acct, contract, start, end, qty, price=1200.0, **extra):
    return {
        "subscription_id": f"s-{contract}-{start}-{qty}",
        "account_id": acct,
        "contract_id": contract,
        "product_id": "p",
        "start_date": T(start),
        "end_date": T(end),
        "quantity": float(qty),
        "net_price": price,
        "prorate_multiplier": 1.0,
        "created_date": T(start) - pd.Timedelta(days=1),
        **extra,
    }


def accounts(*ids, segment="SMB"):
    return pd.DataFrame(
        {
            "account_id": list(ids),
            "name": [f"Name {i}" for i in ids],
            "segment": [segment] * len(ids),
            "created_date": [T("2022-01-01")] * len(ids),
        }
    )


def test_cohort_nrr_grr_and_logos_by_hand():
    # MRR a month: A 100 -> 150, B 100 -> 50, C 100 -> 0, D new (80) is not in the cohort
    rows = [
        sub("A", "a", "2023-01-01", "2025-12-31", 1),
        sub("A", "a2", "2024-03-01", "2025-12-31", 0.5),
        sub("B", "b", "2023-01-01", "2025-12-31", 1),
        sub("B", "b", "2024-05-01", "2025-12-31", -0.5, revised_subscription_id="s-b-2023-01-01-1"),
        sub("C", "c", "2023-01-01", "2024-06-30", 1),
        sub("D", "d", "2024-02-01", "2025-12-31", 0.8),
    ]
    book = make_book(accounts=accounts("A", "B", "C", "D"), subscriptions=pd.DataFrame(rows), products=PRODUCTS)
    k = rf.retention_kpis(book, as_of="2024-12-31").iloc[0]
    assert k["base_month"] == T("2023-12-31")
    assert k["base_mrr"] == pytest.approx(300.0) and k["current_mrr"] == pytest.approx(200.0)
    assert k["nrr"] == pytest.approx(200 / 300)
    assert k["grr"] == pytest.approx((100 + 50 + 0) / 300)
    assert k["logo_retention"] == pytest.approx(2 / 3)
    # over the year: new 80, expansion 50, contraction 50, churn 100
    assert k["gross_revenue_churn"] == pytest.approx((100 + 50) / 300)
    assert k["net_revenue_churn"] == pytest.approx((100 + 50 - 50) / 300)
    assert k["quick_ratio"] == pytest.approx((80 + 50) / (100 + 50))
    # period form: month by month, compounded; D (new in February) is in the later months' start:
    # March 380 -> 430 (A expands), May 430 -> 380 (B contracts), July 380 -> 280 (C churns)
    assert k["nrr_period"] == pytest.approx(430 / 380 * 380 / 430 * 280 / 380)
    assert k["grr_period"] == pytest.approx(380 / 430 * 280 / 380)


def test_retention_with_nothing_lost_has_infinite_quick_ratio():
    rows = [sub("A", "a", "2023-01-01", "2025-12-31", 1), sub("B", "b", "2024-06-01", "2025-12-31", 1)]
    book = make_book(accounts=accounts("A", "B"), subscriptions=pd.DataFrame(rows), products=PRODUCTS)
    k = rf.retention_kpis(book, as_of="2024-12-31").iloc[0]
    assert k["quick_ratio"] == float("inf") and k["grr"] == 1.0 and k["nrr"] == 1.0


def test_grr_never_exceeds_one_or_nrr(demo_book):
    for as_of in ("2023-06-30", "2024-12-31", "2026-06-30"):
        for by in (None, "segment", "region"):
            k = rf.retention_kpis(demo_book, as_of=as_of, by=by).dropna(subset=["grr"])
            assert (k["grr"] <= 1 + 1e-12).all()
            assert (k["grr"] <= k["nrr"] + 1e-12).all()
            # (the period form is undefined for a group that had no MRR at some month start)
            period = k.dropna(subset=["grr_period"])
            assert (period["grr_period"] <= period["nrr_period"] + 1e-12).all()


def renewal_book():
    contracts = pd.DataFrame(
        {
            "contract_id": ["c1", "c1r", "c2", "c3", "c4", "c5"],
            "account_id": ["A", "A", "B", "C", "D", "E"],
            "start_date": [
                T("2024-01-01"),
                T("2025-01-01"),
                T("2024-02-01"),
                T("2024-03-01"),
                T("2023-06-01"),
                T("2024-01-01"),
            ],
            "end_date": [
                T("2024-12-31"),
                T("2025-12-31"),
                T("2025-01-31"),
                T("2025-02-28"),
                T("2026-05-31"),
                T("2024-12-31"),
            ],
            "evergreen": [False] * 6,
            "renewed_contract_id": [None, "c1", None, None, None, None],
            "created_date": [
                T("2023-12-01"),
                T("2024-12-20"),
                T("2024-01-15"),
                T("2024-02-15"),
                T("2023-05-15"),
                T("2023-12-01"),
            ],
        }
    )
    subs = pd.DataFrame(
        [
            sub("A", "c1", "2024-01-01", "2024-12-31", 1),  # ARR 1,200, renewed at 1,320
            sub("A", "c1r", "2025-01-01", "2025-12-31", 1.1),
            sub("B", "c2", "2024-02-01", "2025-01-31", 0.5),  # ARR 600, renewal lost
            sub("C", "c3", "2024-03-01", "2025-02-28", 0.25),  # ARR 300, renewal still open
            sub("D", "c4", "2023-06-01", "2026-05-31", 2),  # three-year: mid-term, not due
            sub("E", "c5", "2024-01-01", "2024-12-31", 1),  # terminated in October
            sub(
                "E",
                "c5",
                "2024-10-01",
                "2024-12-31",
                -1,
                revised_subscription_id="s-c5-2024-01-01-1",
                terminated_date=T("2024-09-30"),
                created_date=T("2024-09-01"),
            ),  # last day of service
        ]
    )
    opps = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3"],
            "account_id": ["A", "B", "C"],
            "type": ["renewal"] * 3,
            "stage": ["Closed Won", "Closed Lost", "Negotiation/Review"],
            "probability": [1.0, 0.0, 0.9],
            "close_date": [T("2024-12-20"), T("2025-01-10"), T("2025-02-20")],
            "is_closed": [True, True, False],
            "is_won": [True, False, False],
            "renewed_contract_id": ["c1", "c2", "c3"],
            "created_date": [T("2024-09-01"), T("2024-10-01"), T("2024-11-01")],
        }
    )
    return make_book(
        accounts=accounts("A", "B", "C", "D", "E"),
        contracts=contracts,
        subscriptions=subs,
        opportunities=opps,
        products=PRODUCTS,
    )


def test_renewal_rates_and_decomposition_by_hand():
    book = renewal_book()
    k = rf.renewal_kpis(book, "2024-12-01", "2025-03-31", as_of="2025-02-15").iloc[0]
    # due: c1, c2, c3 and c5 (c4 is mid-term; c1r ends later)
    assert (k["due"], k["decided"], k["renewed"], k["churned"], k["terminated"], k["open"]) == (4, 3, 1, 1, 1, 0 + 1)
    prior = {"c1": 1200.0, "c2": 600.0, "c5": 1200.0}  # c5 valued on its last day of service
    decided_arr = sum(prior.values())
    assert k["decided_arr"] == pytest.approx(decided_arr)
    assert k["due_arr"] == pytest.approx(decided_arr + 300.0)
    assert k["renewal_rate_count"] == pytest.approx(1 / 3)
    assert k["renewal_rate_gross_arr"] == pytest.approx(min(1320.0, 1200.0) / decided_arr)
    assert k["renewal_rate_net_arr"] == pytest.approx(1320.0 / decided_arr)
    assert k["resolution_rate"] == pytest.approx(3 / 4)
    assert k["close_rate"] == pytest.approx(1 / 3)
    assert k["conversion_rate"] == pytest.approx(1.1)


def test_renewal_decisions_use_only_what_was_known():
    book = renewal_book()
    early = rf.renewal_decisions(book, as_of="2024-12-10").set_index("contract_id")
    assert early.loc["c1", "outcome"] == "open"  # renewal not yet won on 10 December
    assert early.loc["c2", "outcome"] == "open"
    late = rf.renewal_decisions(book, as_of="2025-03-31").set_index("contract_id")
    assert late.loc["c3", "outcome"] == "open"  # ended, but its renewal opportunity is still open
    assert late.loc["c1", "renewed_arr"] == pytest.approx(1320.0)


def test_worklist_deadlines_and_flags():
    book = renewal_book()
    w = rf.renewal_worklist(book, as_of="2024-11-01", horizon_days=150).set_index("contract_id")
    assert list(w.index) == ["c1", "c2", "c3"]  # c5 terminated in October: nothing left to renew
    row = w.loc["c2"]
    assert row["days_to_end"] == (T("2025-01-31") - T("2024-11-01")).days
    assert row["outreach_deadline"] == T("2025-01-31") - pd.Timedelta(days=90)
    assert bool(row["outreach_deadline_passed"]) is False
    assert row["arr"] == pytest.approx(600.0)
    assert w.loc["c1", "outreach_deadline_passed"]  # 2 Oct 2024 < 1 Nov
    assert not w.loc["c3", "no_renewal_opportunity"]
    before = rf.renewal_worklist(book, as_of="2024-09-15", horizon_days=150).set_index("contract_id")
    assert before.loc["c5", "decrease_or_termination_booked"]  # booked, effective in October
    assert before.loc["c2", "no_renewal_opportunity"]  # created on 1 October
    ent = rf.renewal_worklist(book, as_of="2024-11-01", horizon_days=150, outreach_days={"SMB": 100})
    assert ent.set_index("contract_id").loc["c2", "outreach_deadline"] == T("2025-01-31") - pd.Timedelta(days=100)


def test_rates_before_there_is_a_base_year_keep_every_column(demo_book):
    # Three months after the first record nobody was paying a year earlier and
    # nothing has come up for renewal: the tables are empty but complete.
    first = demo_book.subscriptions["start_date"].min()
    early = (first + pd.offsets.MonthEnd(3)).normalize()
    overall = rf.retention_kpis(demo_book, as_of=early)
    by_segment = rf.retention_kpis(demo_book, as_of=early, by="segment")
    assert int(overall["base_customers"].iloc[0]) == 0 and np.isnan(overall["nrr"].iloc[0])
    assert set(overall.columns) <= set(by_segment.columns)
    assert (by_segment["base_customers"] == 0).all() and by_segment["nrr"].isna().all()
    before_all = rf.retention_kpis(demo_book, as_of=first - pd.Timedelta(days=1), by="segment")
    assert len(before_all) == 0 and set(overall.columns) <= set(before_all.columns)
    quarters = rf.renewal_kpis(demo_book, start=first, end=early, freq="Q")
    assert len(quarters) == 0
    assert {"period", "due", "renewal_rate_net_arr", "resolution_rate"} <= set(quarters.columns)
