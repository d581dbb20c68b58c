"""Salesforce product schedule rules, worked by hand, and the vectorised expansion."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import renewforecast as rf


def test_divide_puts_the_remainder_on_the_last_installment():
    s = rf.establish_schedule(1205.00, "2024-01-01", "Divide", "Monthly", 12)
    assert s["revenue"].tolist() == [100.41] * 11 + [100.49]
    assert s["schedule_date"].dt.strftime("%Y-%m-%d").tolist()[:3] == ["2024-01-01", "2024-02-01", "2024-03-01"]


def test_repeat_multiplies_the_amount():
    s = rf.establish_schedule(100, "2024-01-01", "Repeat", "Monthly", 12)
    assert s["revenue"].tolist() == [100.0] * 12 and sum(s["revenue"]) == 1200.0


def test_month_ends_roll_to_the_last_day_of_shorter_months():
    s = rf.establish_schedule(400, "2024-01-31", "divide", "monthly", 4)
    assert s["schedule_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
    ]
    q = rf.establish_schedule(300, "2024-11-30", "divide", "quarterly", 3)
    assert q["schedule_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-11-30", "2025-02-28", "2025-05-30"]


def test_daily_weekly_yearly_steps():
    assert rf.establish_schedule(3, "2024-02-28", "repeat", "daily", 3)["schedule_date"].dt.day.tolist() == [28, 29, 1]
    assert rf.establish_schedule(3, "2024-01-01", "repeat", "weekly", 2)["schedule_date"].iloc[1] == pd.Timestamp(
        "2024-01-08"
    )
    assert rf.establish_schedule(3, "2024-02-29", "repeat", "yearly", 2)["schedule_date"].iloc[1] == pd.Timestamp(
        "2025-02-28"
    )


@pytest.mark.parametrize("n", [0, 151, 2.5, -1])
def test_installments_outside_1_to_150_are_refused(n):
    with pytest.raises(rf.RenewForecastError, match="1 to 150"):
        rf.establish_schedule(100, "2024-01-01", "divide", "monthly", n)


@pytest.mark.parametrize(("stype", "period"), [("Split", "Monthly"), ("Divide", "Fortnightly")])
def test_unknown_type_or_period_is_refused(stype, period):
    with pytest.raises(rf.RenewForecastError):
        rf.establish_schedule(100, "2024-01-01", stype, period, 3)


def test_expand_refuses_bad_lines_naming_them():
    lines = pd.DataFrame(
        {
            "line_id": ["ok", "bad"],
            "amount": [1.0, 1.0],
            "start_date": pd.to_datetime(["2024-01-01"] * 2),
            "schedule_type": ["divide", "divide"],
            "period": ["monthly", "monthly"],
            "installments": [3, 151],
        }
    )
    with pytest.raises(rf.RenewForecastError, match="bad"):
        rf.expand_schedules(lines)


money = st.decimals(min_value="0.01", max_value="10000000", places=2).map(float)


@settings(max_examples=150, deadline=None)
@given(
    amount=money,
    start=st.dates(min_value=pd.Timestamp("2020-01-01").date(), max_value=pd.Timestamp("2030-12-31").date()),
    stype=st.sampled_from(["Divide", "Repeat"]),
    period=st.sampled_from(["Daily", "Weekly", "Monthly", "Quarterly", "Yearly"]),
    n=st.integers(1, 150),
)
def test_vectorised_expansion_matches_one_by_one(amount, start, stype, period, n):
    one = rf.establish_schedule(amount, start, stype, period, n)
    lines = pd.DataFrame(
        {
            "line_id": ["x"],
            "amount": [amount],
            "start_date": [pd.Timestamp(start)],
            "schedule_type": [stype],
            "period": [period],
            "installments": [n],
        }
    )
    many = rf.expand_schedules(lines)
    assert many["schedule_date"].tolist() == one["schedule_date"].tolist()
    assert many["revenue"].tolist() == one["revenue"].tolist()
    cents = round(sum(round(r * 100) for r in one["revenue"]))
    if stype == "Divide":
        assert cents == round(amount * 100)  # sums exactly, to the cent
        assert len(set(one["revenue"][:-1])) <= 1
    else:
        assert cents == round(amount * 100) * n


def test_reconcile_flags_lines_that_do_not_sum(demo_book):
    recon = rf.reconcile_schedules(demo_book)
    assert len(recon) == len(demo_book.opportunity_lines)
    sched = demo_book.schedules.groupby("line_id")["revenue"].sum()
    with_rows = recon[recon["status"] != "no_schedule"]
    expected = (with_rows["line_id"].map(sched) - with_rows["total_price"]).abs() > 0.005
    assert (with_rows["status"] == "differs").tolist() == expected.tolist()
    warned = set(demo_book.warnings.loc[demo_book.warnings["rule"] == "schedule_total_mismatch", "record_id"])
    assert warned == set(recon.loc[recon["status"] == "differs", "line_id"])


def test_line_schedules_keep_export_rows_else_product_default_else_one_installment():
    from _support import make_book

    T = pd.Timestamp
    products = pd.DataFrame(
        [
            {
                "product_id": "pd",
                "subscription_term_months": 12.0,
                "revenue_schedule_type": "divide",
                "revenue_installment_period": "quarterly",
                "revenue_installments": 4,
            },
            {"product_id": "pn", "subscription_term_months": 12.0},
        ]
    )
    opps = pd.DataFrame(
        [
            {
                "opportunity_id": "o1",
                "account_id": "a1",
                "type": "new_business",
                "close_date": T("2025-01-31"),
                "is_closed": False,
                "is_won": False,
                "created_date": T("2024-12-01"),
            }
        ]
    )
    lines = pd.DataFrame(
        [
            # has export rows that do not follow the default: kept as they are
            {
                "line_id": "l1",
                "opportunity_id": "o1",
                "product_id": "pd",
                "quantity": 1,
                "unit_price": 1000.0,
                "total_price": 1000.0,
                "service_date": T("2025-02-01"),
            },
            # no rows, product default Divide/Quarterly/4 from the service date
            {
                "line_id": "l2",
                "opportunity_id": "o1",
                "product_id": "pd",
                "quantity": 1,
                "unit_price": 1000.01,
                "total_price": 1000.01,
                "service_date": T("2025-03-31"),
            },
            # no rows, no default, no service date: one installment on the close date
            {
                "line_id": "l3",
                "opportunity_id": "o1",
                "product_id": "pn",
                "quantity": 2,
                "unit_price": 50.0,
                "total_price": 100.0,
                "service_date": pd.NaT,
            },
        ]
    )
    sched = pd.DataFrame(
        [
            {"schedule_id": f"x{i}", "line_id": "l1", "schedule_date": T("2025-02-01"), "type": "revenue", "revenue": r}
            for i, r in enumerate([600.0, 400.0])
        ]
    )
    accounts = pd.DataFrame({"account_id": ["a1"], "created_date": [T("2024-01-01")]})
    b = make_book(accounts=accounts, products=products, opportunities=opps, opportunity_lines=lines, schedules=sched)
    out = rf.line_schedules(b)
    got = {k: g for k, g in out.groupby("line_id")}  # noqa: C416 (dict() of a groupby fails)
    assert got["l1"]["revenue"].tolist() == [600.0, 400.0] and set(got["l1"]["source"]) == {"export"}
    assert got["l2"]["revenue"].tolist() == [250.0, 250.0, 250.0, 250.01]
    assert got["l2"]["schedule_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2025-03-31",
        "2025-06-30",
        "2025-09-30",
        "2025-12-31",
    ]
    assert set(got["l2"]["source"]) == {"product_default"}
    assert got["l3"][["schedule_date", "revenue", "source"]].to_numpy().tolist() == [[T("2025-01-31"), 100.0, "single"]]
    assert set(out["opportunity_id"]) == {"o1"}
