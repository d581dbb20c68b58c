"""Recognised revenue: daily recognition summed into calendar months, worked by hand."""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import renewforecast as rf
from _support import make_book

T = pd.Timestamp


def book_of(rows):
    products = pd.DataFrame(
        [{"product_id": "p12", "subscription_term_months": 12.0}, {"product_id": "p1", "subscription_term_months": 1.0}]
    )
    base = {
        "contract_id": "c1",
        "account_id": "a1",
        "prorate_multiplier": 1.0,
        "product_id": "p12",
        "created_date": T("2020-01-01"),
    }
    subs = pd.DataFrame([{**base, **r} for r in rows])
    if "subscription_id" not in subs:
        subs["subscription_id"] = [f"s{i}" for i in range(len(subs))]
    accounts = pd.DataFrame(
        {"account_id": sorted(set(subs["account_id"])), "segment": "SMB", "created_date": T("2020-01-01")}
    )
    return make_book(accounts=accounts, subscriptions=subs, products=products)


def by_month(frame):
    return dict(zip(frame["month"].dt.strftime("%Y-%m"), frame["revenue"], strict=False))


def test_mid_month_start_earns_its_share_of_the_first_and_last_month():
    # 1,200 a year = 100 a month; from 16 January 2024 to 15 January 2025.
    b = book_of([{"start_date": T("2024-01-16"), "end_date": T("2025-01-15"), "quantity": 1, "net_price": 1200.0}])
    out = by_month(rf.recognized_revenue(b, "2023-12-01", "2025-02-28"))
    assert out["2023-12"] == 0.0
    assert out["2024-01"] == 51.61  # 16 of 31 days
    assert out["2024-02"] == 100.0
    assert out["2025-01"] == 48.39  # 15 of 31 days
    assert out["2025-02"] == 0.0
    assert round(sum(out.values()), 2) == 1200.0  # the whole term, exactly


def test_leap_february_and_termination_mid_month():
    # 3 seats at 3,600 a year = 900 a month; the last day of service is 10 February 2024
    # (leap year): it counts 1-10 February, 10 of 29 days.
    b = book_of(
        [
            {
                "start_date": T("2024-01-01"),
                "end_date": T("2024-12-31"),
                "quantity": 3,
                "net_price": 3600.0,
                "terminated_date": T("2024-02-10"),
            }
        ]
    )
    out = by_month(rf.recognized_revenue(b, "2024-01-01", "2024-03-31"))
    assert out == {"2024-01": 900.0, "2024-02": round(900 * 10 / 29, 2), "2024-03": 0.0}


def test_evergreen_monthly_product_and_amendment_delta():
    rows = [
        # evergreen, monthly price 50 x 2
        {
            "subscription_id": "e",
            "product_id": "p1",
            "start_date": T("2024-03-10"),
            "end_date": pd.NaT,
            "quantity": 2,
            "net_price": 50.0,
        },
        # +1 seat of a 1,200-a-year line from 1 April
        {
            "subscription_id": "a",
            "start_date": T("2024-04-01"),
            "end_date": T("2024-12-31"),
            "quantity": 1,
            "net_price": 900.0,
            "prorate_multiplier": 0.75,
        },
    ]
    out = by_month(rf.recognized_revenue(book_of(rows), "2024-03-01", "2024-05-31"))
    assert out["2024-03"] == round(100 * 22 / 31, 2)
    assert out["2024-04"] == 200.0
    assert out["2024-05"] == 200.0


def test_groups_and_every_month_present():
    rows = [
        {
            "account_id": "a1",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-01-31"),
            "quantity": 1,
            "net_price": 1200.0,
        },
        {
            "account_id": "a2",
            "contract_id": "c2",
            "start_date": T("2024-03-01"),
            "end_date": T("2024-03-31"),
            "quantity": 2,
            "net_price": 1200.0,
        },
    ]
    out = rf.recognized_revenue(book_of(rows), "2024-01-01", "2024-03-31", by="account_id")
    assert len(out) == 6  # 2 accounts x 3 months, zeros included
    wide = out.pivot(index="month", columns="account_id", values="revenue")
    assert wide["a1"].tolist() == [100.0, 0.0, 0.0]
    assert wide["a2"].tolist() == [0.0, 0.0, 200.0]
    with pytest.raises(ValueError, match="before start"):
        rf.recognized_revenue(book_of(rows), "2024-03-01", "2024-01-31")


def _naive(rows, lo, hi):
    """Day-by-day loop: each day earns MRR / days in its month."""
    out = {}
    for r in rows:
        mrr = r["quantity"] * r["net_price"] / 12.0
        last = r["end_date"] if pd.notna(r["end_date"]) else hi
        for day in pd.date_range(max(r["start_date"], lo), min(last, hi), freq="D"):
            key = day.strftime("%Y-%m")
            out[key] = out.get(key, 0.0) + mrr / calendar.monthrange(day.year, day.month)[1]
    return out


_day = st.dates(min_value=pd.Timestamp("2023-06-01").date(), max_value=pd.Timestamp("2025-06-30").date())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_day, st.integers(0, 500), st.integers(-3, 5), st.booleans()), min_size=1, max_size=6))
def test_matches_a_day_by_day_loop(spans):
    rows = []
    for i, (start, length, qty, open_ended) in enumerate(spans):
        s = T(start)
        rows.append(
            {
                "subscription_id": f"s{i}",
                "start_date": s,
                "end_date": pd.NaT if open_ended else s + pd.Timedelta(days=length),
                "quantity": float(qty),
                "net_price": 1000.0 + 7 * i,
            }
        )
    lo, hi = T("2024-01-01"), T("2024-12-31")
    got = by_month(rf.recognized_revenue(book_of(rows), lo, hi))
    want = _naive(rows, lo, hi)
    for month, value in got.items():
        assert value == pytest.approx(want.get(month, 0.0), abs=0.006)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 24), st.integers(1, 9)), min_size=1, max_size=6))
def test_month_aligned_rows_recognise_their_month_end_mrr(spans):
    # Rows that start on the 1st and end on a month end cover whole months only,
    # so each month recognises exactly the MRR the revenue engine reports at its end.
    rows = []
    for i, (offset, months, qty) in enumerate(spans):
        s = T("2023-01-01") + pd.DateOffset(months=offset)
        rows.append(
            {
                "subscription_id": f"s{i}",
                "account_id": f"a{i % 2}",
                "contract_id": f"c{i}",
                "start_date": s,
                "end_date": s + pd.DateOffset(months=months) - pd.Timedelta(days=1),
                "quantity": float(qty),
                "net_price": 1200.0 + 12 * i,
            }
        )
    b = book_of(rows)
    rec = rf.recognized_revenue(b, "2023-01-01", "2026-12-31").set_index("month")["revenue"]
    mrr = rf.mrr_table(b, start="2023-01-01", end="2026-12-31", by=()).set_index("month")["mrr"]
    np.testing.assert_allclose(rec.to_numpy(), mrr.reindex(rec.index, fill_value=0.0).to_numpy(), atol=0.006)
