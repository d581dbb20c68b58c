"""One meaning of as_of: every engine called with as_of=d uses only what was known at the end of d,
so it equals the same engine on book.as_of(d); opportunities are rebuilt from their stage history."""

from __future__ import annotations

import pandas as pd
import pytest

import renewforecast as rf
from _support import make_book

T = pd.Timestamp
D = "2025-06-15"


def frames_equal(a, b):
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    else:
        assert a == b


ENGINES = {
    "retention_kpis": lambda b: rf.retention_kpis(b, as_of=D, by="segment"),
    "renewal_kpis": lambda b: rf.renewal_kpis(b, "2024-07-01", "2025-06-30", as_of=D),
    "renewal_worklist": lambda b: rf.renewal_worklist(b, as_of=D),
    "cohort_retention": lambda b: rf.cohort_retention(b, as_of=D),
    "gross_margin": lambda b: rf.gross_margin(b, D),
    "ltv": lambda b: rf.ltv(b, D, method="simple", by="segment", n_boot=0),
    "ltv_cac": lambda b: rf.ltv_cac(b, D, n_boot=0),
    "cac": lambda b: rf.cac(b, as_of=D),
    "customer_lifetimes": lambda b: rf.customer_lifetimes(b, D),
    "annual_cohorts": lambda b: rf.annual_cohorts(b, D),
    "renewal_features": lambda b: rf.renewal_features(b, D),
    "recent_decision_features": lambda b: rf.recent_decision_features(b, D),
    "revenue_forecast": lambda b: (
        rf.revenue_forecast(b, D, horizon_months=3, n_sims=50, random_state=0, renewal_rate=0.8).frame
    ),
    "kpi_headline": lambda b: rf.kpi_headline(b, D).to_dict()["figures"],
    "nrr_forecast": lambda b: rf.nrr_forecast(b, D, by="segment", n_sims=50, random_state=0),
}


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_with_as_of_equals_itself_on_the_point_in_time_view(demo_book, name):
    engine = ENGINES[name]
    frames_equal(engine(demo_book), engine(demo_book.as_of(D)))


def test_cutting_twice_changes_nothing(demo_book):
    once = demo_book.as_of(D)
    assert once.as_of(D) is once and once.as_of("2026-01-01") is once
    assert demo_book.as_of(D).fingerprint == once.fingerprint


# ------------------------------------------------------------------ opportunities


def history_book():
    accounts = pd.DataFrame({"account_id": ["a1"], "created_date": [T("2024-01-01")]})
    opps = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2"],
            "account_id": ["a1", "a1"],
            "type": ["new_business", "new_business"],
            "stage": ["Negotiation/Review", "Closed Won"],
            "probability": [0.9, 1.0],
            "close_date": [T("2024-12-15"), T("2024-05-20")],
            "is_closed": [False, True],
            "is_won": [False, True],
            "amount": [50_000.0, 8_000.0],
            "forecast_category": ["Commit", "Closed"],
            "created_date": [T("2024-03-01"), T("2024-03-01")],
        }
    )
    # In file order the same-day changes are reversed; their times say what happened last.
    history = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o1", "o1", "o1", "o2", "o2"],
            "created_date": [
                T("2024-06-10"),
                T("2024-03-01"),
                T("2024-06-10"),
                T("2024-09-01"),
                T("2024-03-01"),
                T("2024-05-20"),
            ],
            "created_at": [
                T("2024-06-10 16:05"),
                T("2024-03-01 09:00"),
                T("2024-06-10 11:30"),
                T("2024-09-01 10:00"),
                T("2024-03-01 09:00"),
                T("2024-05-20 15:00"),
            ],
            "history_id": ["h3", "h1", "h2", "h4", "h5", "h6"],
            "stage": [
                "Proposal/Price Quote",
                "Prospecting",
                "Needs Analysis",
                "Negotiation/Review",
                "Prospecting",
                "Closed Won",
            ],
            "probability": [0.75, 0.1, 0.2, 0.9, 0.1, 1.0],
            "amount": [42_000.0, 30_000.0, 35_000.0, 50_000.0, 7_000.0, 8_000.0],
            "close_date": [
                T("2024-10-31"),
                T("2024-09-30"),
                T("2024-09-30"),
                T("2024-12-15"),
                T("2024-06-30"),
                T("2024-05-20"),
            ],
        }
    )
    return make_book(accounts=accounts, opportunities=opps, opportunity_history=history)


@pytest.mark.parametrize(
    ("day", "stage", "probability", "amount", "close"),
    [
        ("2024-04-01", "Prospecting", 0.1, 30_000.0, "2024-09-30"),
        ("2024-06-10", "Proposal/Price Quote", 0.75, 42_000.0, "2024-10-31"),  # 16:05 beats 11:30
        ("2024-08-31", "Proposal/Price Quote", 0.75, 42_000.0, "2024-10-31"),
        ("2024-09-01", "Negotiation/Review", 0.9, 50_000.0, "2024-12-15"),
    ],
)
def test_an_open_opportunity_is_rebuilt_from_its_history(day, stage, probability, amount, close):
    o1 = history_book().as_of(day).opportunities.set_index("opportunity_id").loc["o1"]
    assert (o1["stage"], o1["probability"], o1["amount"], o1["close_date"]) == (stage, probability, amount, T(close))
    assert not o1["is_closed"]


def test_a_closed_opportunity_is_open_before_it_closed_and_closed_after():
    before = history_book().as_of("2024-05-19").opportunities.set_index("opportunity_id").loc["o2"]
    assert (before["stage"], bool(before["is_closed"]), before["amount"]) == ("Prospecting", False, 7_000.0)
    after = history_book().as_of("2024-05-20").opportunities.set_index("opportunity_id").loc["o2"]
    assert (after["stage"], bool(after["is_closed"]), bool(after["is_won"])) == ("Closed Won", True, True)


# ------------------------------------------------- known at vs measured with every record


def late_book():
    accounts = pd.DataFrame(
        {"account_id": ["a1", "a2"], "segment": ["SMB", "SMB"], "created_date": [T("2023-01-01")] * 2}
    )
    contracts = pd.DataFrame(
        {
            "contract_id": ["c1", "c1r", "c2"],
            "account_id": ["a1", "a1", "a2"],
            "start_date": [T("2024-01-01"), T("2025-01-01"), T("2024-01-01")],
            "end_date": [T("2024-12-31"), T("2025-12-31"), T("2025-12-31")],
            "evergreen": [False] * 3,
            "renewed_contract_id": [None, "c1", None],
            # the renewal was signed late: created six weeks after c1 ended, backdated to 1 January
            "created_date": [T("2023-12-15"), T("2025-02-12"), T("2023-12-15")],
        }
    )
    base = {"product_id": "p12", "prorate_multiplier": 1.0}
    subs = pd.DataFrame(
        [
            {
                **base,
                "subscription_id": "s1",
                "contract_id": "c1",
                "account_id": "a1",
                "start_date": T("2024-01-01"),
                "end_date": T("2024-12-31"),
                "quantity": 10.0,
                "net_price": 1_200.0,
                "created_date": T("2023-12-15"),
            },
            {
                **base,
                "subscription_id": "s1r",
                "contract_id": "c1r",
                "account_id": "a1",
                "start_date": T("2025-01-01"),
                "end_date": T("2025-12-31"),
                "quantity": 10.0,
                "net_price": 1_200.0,
                "created_date": T("2025-02-12"),
            },
            {
                **base,
                "subscription_id": "s2",
                "contract_id": "c2",
                "account_id": "a2",
                "start_date": T("2024-01-01"),
                "end_date": T("2025-12-31"),
                "quantity": 5.0,
                "net_price": 1_200.0,
                "created_date": T("2023-12-15"),
            },
            # an amendment booked on 20 February, backdated to 1 January: +5 seats
            {
                **base,
                "subscription_id": "s2a",
                "contract_id": "c2",
                "account_id": "a2",
                "start_date": T("2025-01-01"),
                "end_date": T("2025-12-31"),
                "quantity": 5.0,
                "net_price": 1_200.0,
                "created_date": T("2025-02-20"),
                "revised_subscription_id": "s2",
            },
        ]
    )
    products = pd.DataFrame({"product_id": ["p12"], "subscription_term_months": [12.0]})
    return make_book(accounts=accounts, contracts=contracts, subscriptions=subs, products=products)


def test_known_at_differs_from_measured_with_every_record_and_each_is_right():
    book = late_book()
    # Known at 31 January 2025: c1 ended with no renewal in sight, c2 had 5 seats.
    known = rf.retention_kpis(book, as_of="2025-01-31", months=1).iloc[0]
    assert known["base_mrr"] == 1_000.0 + 500.0
    assert known["current_mrr"] == 500.0  # a1 gone, a2 unchanged
    assert known["grr"] == pytest.approx(500 / 1_500)
    decided = rf.renewal_decisions(book, as_of="2025-01-31").set_index("contract_id")
    assert decided.loc["c1", "outcome"] == "churned"
    # Measured at the same month end with every record: the late renewal and the backdated
    # amendment count, so nothing churned and a2 expanded.
    table = rf.mrr_table(book, start="2024-12-31", end="2025-01-31").set_index(["month", "account_id"])["mrr"]
    assert table[(T("2025-01-31"), "a1")] == 1_000.0 and table[(T("2025-01-31"), "a2")] == 1_000.0
    assert rf.renewal_decisions(book).set_index("contract_id").loc["c1", "outcome"] == "renewed"
    later = rf.retention_kpis(book, as_of="2025-03-31", months=3).iloc[0]
    assert later["grr"] == 1.0 and later["nrr"] == pytest.approx(2_000 / 1_500)
