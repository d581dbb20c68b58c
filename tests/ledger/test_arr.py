"""ARR on a date from the CPQ ledger, worked by hand for each booking pattern."""

from __future__ import annotations

import pandas as pd
import pytest

import renewforecast as rf
from _support import make_book

T = pd.Timestamp


def book_of(rows, products=None):
    products = products or [
        {"product_id": "p12", "subscription_term_months": 12.0},
        {"product_id": "p1", "subscription_term_months": 1.0},
    ]
    base = {"contract_id": "c1", "account_id": "a1", "prorate_multiplier": 1.0, "created_date": T("2024-01-01")}
    subs = pd.DataFrame([{**base, **r} for r in rows])
    subs["subscription_id"] = subs.get("subscription_id", pd.Series([f"s{i}" for i in range(len(subs))]))
    accounts = pd.DataFrame({"account_id": ["a1"], "segment": ["SMB"], "created_date": [T("2024-01-01")]})
    return make_book(accounts=accounts, subscriptions=subs, products=pd.DataFrame(products))


def test_annual_line():
    # 10 seats at 1,200 a year each
    b = book_of(
        [
            {
                "product_id": "p12",
                "start_date": T("2024-01-01"),
                "end_date": T("2024-12-31"),
                "quantity": 10,
                "net_price": 1200.0,
            }
        ]
    )
    assert rf.arr_on(b, "2024-06-30") == 12_000.0
    assert rf.arr_on(b, "2025-01-01") == 0.0
    assert rf.arr_on(b, "2023-12-31") == 0.0


def test_prorated_multi_year_price_is_per_default_term():
    # a 24-month line: full-term price 2,400 with prorate multiplier 2 is 1,200 a year
    b = book_of(
        [
            {
                "product_id": "p12",
                "start_date": T("2024-01-01"),
                "end_date": T("2025-12-31"),
                "quantity": 3,
                "net_price": 2400.0,
                "prorate_multiplier": 2.0,
            }
        ]
    )
    assert rf.arr_on(b, "2025-03-01") == 3 * 1200.0


def test_monthly_product_and_evergreen():
    # default term 1 month: net price 100 per month, 2 units, no end date
    b = book_of(
        [{"product_id": "p1", "start_date": T("2024-01-01"), "end_date": pd.NaT, "quantity": 2, "net_price": 100.0}]
    )
    assert rf.arr_on(b, "2030-01-01") == 2 * 100.0 * 12


def test_mid_term_upsell_and_decrease():
    rows = [
        {
            "subscription_id": "s0",
            "product_id": "p12",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 10,
            "net_price": 1200.0,
        },
        # +5 seats from 15 April, co-terminated; prorated full-term price 1200 * 0.7167
        {
            "subscription_id": "s1",
            "product_id": "p12",
            "start_date": T("2024-04-15"),
            "end_date": T("2024-12-31"),
            "quantity": 5,
            "net_price": 860.0,
            "prorate_multiplier": 0.7167,
            "revised_subscription_id": "s0",
        },
        # -3 seats from 1 September
        {
            "subscription_id": "s2",
            "product_id": "p12",
            "start_date": T("2024-09-01"),
            "end_date": T("2024-12-31"),
            "quantity": -3,
            "net_price": 400.0,
            "prorate_multiplier": 1 / 3,
            "revised_subscription_id": "s0",
        },
    ]
    b = book_of(rows)
    assert rf.arr_on(b, "2024-04-14") == 12_000.0
    assert rf.arr_on(b, "2024-04-15") == pytest.approx(12_000.0 + 5 * 860.0 / 0.7167, abs=0.01)
    assert rf.arr_on(b, "2024-09-01") == pytest.approx(12_000.0 + 5 * 860.0 / 0.7167 - 3 * 1200.0, abs=0.01)


@pytest.mark.parametrize("convention", ["negative_rows", "original_row", "both"])
def test_early_termination_counts_once_whatever_the_export_convention(convention):
    # CPQ's convention, as real records show it: TerminatedDate is the last day
    # of service (14 June) and the negative delta row starts the day after.
    rows = [
        {
            "subscription_id": "s0",
            "product_id": "p12",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 10,
            "net_price": 1200.0,
        }
    ]
    if convention in ("original_row", "both"):
        rows[0]["terminated_date"] = T("2024-06-14")
    if convention in ("negative_rows", "both"):
        rows.append(
            {
                "subscription_id": "s1",
                "product_id": "p12",
                "start_date": T("2024-06-15"),
                "end_date": T("2024-12-31"),
                "quantity": -10,
                "net_price": 1200.0 * 0.55,
                "prorate_multiplier": 0.55,
                "revised_subscription_id": "s0",
                "terminated_date": T("2024-06-14"),
            }
        )
    b = book_of(rows)
    assert rf.arr_on(b, "2024-06-14") == 12_000.0  # served that day
    assert rf.arr_on(b, "2024-06-15") == 0.0
    assert rf.arr_on(b, "2024-12-01") == 0.0


def test_negative_row_alone_starts_on_the_first_day_without_service():
    rows = [
        {
            "subscription_id": "s0",
            "product_id": "p12",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 10,
            "net_price": 1200.0,
        },
        {
            "subscription_id": "s1",
            "product_id": "p12",
            "start_date": T("2024-06-15"),
            "end_date": T("2024-12-31"),
            "quantity": -10,
            "net_price": 660.0,
            "prorate_multiplier": 0.55,
            "revised_subscription_id": "s0",
        },
    ]
    b = book_of(rows)
    assert rf.arr_on(b, "2024-06-14") == 12_000.0
    assert rf.arr_on(b, "2024-06-15") == 0.0


def test_cancel_and_replace_on_one_date():
    rows = [
        {
            "subscription_id": "s0",
            "product_id": "p12",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 10,
            "net_price": 1200.0,
        },
        {
            "subscription_id": "s1",
            "product_id": "p12",
            "start_date": T("2024-07-01"),
            "end_date": T("2024-12-31"),
            "quantity": -10,
            "net_price": 600.0,
            "prorate_multiplier": 0.5,
            "revised_subscription_id": "s0",
        },
        {
            "subscription_id": "s2",
            "product_id": "p12",
            "start_date": T("2024-07-01"),
            "end_date": T("2024-12-31"),
            "quantity": 10,
            "net_price": 660.0,
            "prorate_multiplier": 0.5,
        },
    ]
    b = book_of(rows)
    assert rf.arr_on(b, "2024-06-30") == 12_000.0
    assert rf.arr_on(b, "2024-07-01") == pytest.approx(10 * 1320.0)


def test_mdq_segments_count_their_segment_quantity():
    rows = [
        {
            "product_id": "p12",
            "start_date": T("2024-01-01"),
            "end_date": T("2025-12-31"),
            "quantity": 100,
            "net_price": 1200.0,
            "segment_index": 1,
            "segment_start_date": T("2024-01-01"),
            "segment_end_date": T("2024-12-31"),
            "segment_quantity": 100,
        },
        # CPQ's Quantity on the second segment is the delta (30); the segment quantity is 130
        {
            "product_id": "p12",
            "start_date": T("2025-01-01"),
            "end_date": T("2025-12-31"),
            "quantity": 30,
            "net_price": 1200.0,
            "segment_index": 2,
            "segment_start_date": T("2025-01-01"),
            "segment_end_date": T("2025-12-31"),
            "segment_quantity": 130,
        },
    ]
    b = book_of(rows)
    assert rf.arr_on(b, "2024-06-30") == 100 * 1200.0
    assert rf.arr_on(b, "2025-06-30") == 130 * 1200.0


def test_by_segment_sums_to_total(demo_book):
    total = rf.arr_on(demo_book, "2025-06-30")
    by = rf.arr_on(demo_book, "2025-06-30", by="segment")
    assert by["arr"].sum() == pytest.approx(total, abs=0.05)
    by_account = rf.arr_on(demo_book, "2025-06-30", by=["account_id"])
    assert by_account["arr"].sum() == pytest.approx(total, abs=0.05)
    assert (by_account["arr"] >= -0.005).all()  # a customer's ARR is never negative


def test_mrr_by_two_ledger_columns_names_both():
    # 10 seats of p12 at 1,200 a year (100 MRR each) and 2 of p1 at 50 a month
    b = book_of(
        [
            {
                "product_id": "p12",
                "start_date": T("2024-01-01"),
                "end_date": T("2024-12-31"),
                "quantity": 10,
                "net_price": 1200.0,
            },
            {
                "product_id": "p1",
                "start_date": T("2024-01-01"),
                "end_date": T("2024-12-31"),
                "quantity": 2,
                "net_price": 50.0,
            },
        ]
    )
    table = rf.mrr_table(b, start="2024-03-01", end="2024-03-31", by=("contract_id", "product_id"))
    assert table.columns.tolist() == ["month", "contract_id", "product_id", "mrr"]
    assert dict(zip(table["product_id"], table["mrr"], strict=True)) == {"p1": 100.0, "p12": 1000.0}


def test_mrr_by_two_keys_of_a_book_with_nothing_recurring_is_an_empty_table():
    # One-time fees only: nothing to value monthly, under any grouping.
    b = book_of(
        [
            {
                "product_id": "p1",
                "start_date": T("2024-01-01"),
                "end_date": T("2024-12-31"),
                "quantity": 1,
                "net_price": 50.0,
            }
        ]
    )
    b = b.replace(subscriptions=b.subscriptions.iloc[:0])
    for book in (b, rf.Book.empty()):
        table = rf.mrr_table(book, start="2024-01-01", end="2024-03-31", by=("account_id", "segment"))
        assert table.columns.tolist() == ["month", "account_id", "segment", "mrr"] and table.empty
        moves = rf.mrr_movements(book, start="2024-01-01", end="2024-03-31", by=("account_id", "segment"))
        assert moves.columns[:3].tolist() == ["month", "account_id", "segment"] and moves.empty


def test_mrr_to_a_month_before_the_first_subscription_shows_no_later_month():
    # Service from March: a table or bridge that ends in February has no month at all, not March's.
    b = book_of(
        [
            {
                "product_id": "p12",
                "start_date": T("2024-03-01"),
                "end_date": T("2025-02-28"),
                "quantity": 10,
                "net_price": 1200.0,
            }
        ]
    )
    assert rf.mrr_table(b, end="2024-02-29", by=()).empty
    assert rf.mrr_movements(b, end="2024-02-29", by=()).empty
    assert rf.mrr_table(b, end="2024-03-31", by=())["mrr"].tolist() == [1000.0]
    assert rf.mrr_movements(b, end="2024-03-31", by=())["new"].tolist() == [1000.0]
