"""How real CPQ orgs write their records, worked by hand: total-priced lines, charge types,
TerminatedDate as the last day of service, credits, opportunity types, dated exchange rates
and account hierarchies (``docs/data_model.md`` gives the source of each rule)."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import renewforecast as rf
from _support import make_book

T = pd.Timestamp
PRODUCTS = pd.DataFrame({"product_id": ["seat", "fee", "calls"], "subscription_term_months": [12.0, 12.0, 12.0]})
ACCOUNTS = pd.DataFrame(
    {
        "account_id": ["a1", "a2", "p"],
        "parent_account_id": ["p", "p", None],
        "segment": ["SMB", "SMB", "SMB"],
        "created_date": [T("2023-01-01")] * 3,
    }
)


def book_of(rows, **tables):
    base = {
        "contract_id": "c1",
        "account_id": "a1",
        "product_id": "seat",
        "prorate_multiplier": 1.0,
        "created_date": T("2023-12-01"),
        "charge_type": "recurring",
        "total_priced": False,
    }
    subs = pd.DataFrame([{**base, **r} for r in rows])
    return make_book(accounts=ACCOUNTS, products=PRODUCTS, subscriptions=subs, **tables)


def mrr(book, month, account="a1", **kw):
    t = rf.mrr_table(book, start="2024-01-01", end="2027-12-31", **kw)
    return float(t[(t["month"] == T(month)) & (t["account_id"] == account)]["mrr"].sum())


# ------------------------------------------------------------------ total-priced lines


def test_slab_line_its_amendment_and_its_termination():
    # The real record: 240 seats, list 271.89 for 36 months, NetPrice 65,253.60 = 240 x 271.89,
    # a line total. 36 months on a 12-month default term is a prorate multiplier of 3.
    rows = [
        {
            "subscription_id": "s0",
            "start_date": T("2024-01-01"),
            "end_date": T("2026-12-31"),
            "quantity": 240.0,
            "net_price": 65253.60,
            "prorate_multiplier": 3.0,
            "total_priced": True,
        },
        # +60 seats from 1 January 2025 for the remaining 24 months: the delta's total is 8,000
        {
            "subscription_id": "s1",
            "start_date": T("2025-01-01"),
            "end_date": T("2026-12-31"),
            "quantity": 60.0,
            "net_price": 8000.0,
            "prorate_multiplier": 2.0,
            "total_priced": True,
            "revised_subscription_id": "s0",
        },
        # terminated: last day of service 30 June 2026; the delta rows start the day after
        # and carry a negative quantity and a negative line total (6 remaining months)
        {
            "subscription_id": "s2",
            "start_date": T("2026-07-01"),
            "end_date": T("2026-12-31"),
            "quantity": -240.0,
            "net_price": -10876.80,
            "prorate_multiplier": 0.5,
            "total_priced": True,
            "revised_subscription_id": "s0",
            "terminated_date": T("2026-06-30"),
        },
        {
            "subscription_id": "s3",
            "start_date": T("2026-07-01"),
            "end_date": T("2026-12-31"),
            "quantity": -60.0,
            "net_price": -2000.0,
            "prorate_multiplier": 0.5,
            "total_priced": True,
            "revised_subscription_id": "s0",
            "terminated_date": T("2026-06-30"),
        },
    ]
    b = book_of(rows)
    assert rf.arr_on(b, "2024-06-30") == 21_751.20  # 65,253.60 / 3, not x 240 again
    assert mrr(b, "2024-06-30") == pytest.approx(1_812.60)  # 65,253.60 / 36, the real record's MRR
    assert rf.arr_on(b, "2025-06-30") == 21_751.20 + 4_000.00  # 8,000 / 2
    assert rf.arr_on(b, "2026-06-30") == 25_751.20  # served on its last day
    assert rf.arr_on(b, "2026-07-01") == 0.0
    # a termination on a month end counts in that month; the churn is booked in the next
    assert mrr(b, "2026-06-30") == pytest.approx(25_751.20 / 12)
    m = rf.mrr_movements(b, start="2026-06-01", end="2026-07-31").set_index("month")
    assert m.loc[T("2026-06-30"), "churn"] == 0.0
    assert m.loc[T("2026-07-31"), "churn"] == pytest.approx(25_751.20 / 12)


def test_slab_decrease_delta_exactly_undoes_its_line():
    # From the real records: quantity -240 and NetPrice -10,800 over 9 months is -1,200 a
    # month, undoing a 240-seat line worth 14,400 a year.
    rows = [
        {
            "subscription_id": "s0",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 240.0,
            "net_price": 14_400.0,
            "total_priced": True,
        },
        {
            "subscription_id": "s1",
            "start_date": T("2024-04-01"),
            "end_date": T("2024-12-31"),
            "quantity": -240.0,
            "net_price": -10_800.0,
            "prorate_multiplier": 0.75,
            "total_priced": True,
            "revised_subscription_id": "s0",
        },
    ]
    b = book_of(rows)
    assert mrr(b, "2024-03-31") == 1_200.0
    assert mrr(b, "2024-04-30") == 0.0
    amounts = rf.row_amounts(b)
    assert amounts["arr"].tolist() == [14_400.0, -14_400.0]


def test_block_line_is_a_line_total_and_a_range_line_is_per_unit():
    rows = [
        {
            "subscription_id": "blk",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 37.0,
            "net_price": 12_000.0,
            "total_priced": True,
        },  # a 50-TB block, 12,000 a year
        {
            "subscription_id": "rng",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 37.0,
            "net_price": 100.0,
        },
    ]  # 37 units at 100
    b = book_of(rows)
    assert rf.arr_on(b, "2024-06-30", by="contract_id")["arr"].tolist() == [12_000.0 + 3_700.0]


# ------------------------------------------------------------------ charge types


def test_one_time_fee_is_revenue_on_its_date_and_never_mrr():
    rows = [
        {
            "subscription_id": "s0",
            "start_date": T("2024-01-16"),
            "end_date": T("2024-12-31"),
            "quantity": 10.0,
            "net_price": 1_200.0,
        },
        {
            "subscription_id": "fee",
            "product_id": "fee",
            "charge_type": "one_time",
            "start_date": T("2024-01-16"),
            "end_date": T("2024-12-31"),
            "quantity": 2.0,
            "net_price": 2_500.0,
        },
    ]
    b = book_of(rows)
    assert rf.arr_on(b, "2024-06-30") == 12_000.0
    assert mrr(b, "2024-01-31") == 1_000.0
    rev = rf.recognized_revenue(b, "2024-01-01", "2024-02-29", by="charge_type")
    got = {(m.month, c): v for m, c, v in zip(rev["month"], rev["charge_type"], rev["revenue"], strict=True)}
    assert got[(1, "one_time")] == 5_000.0  # 2 x 2,500, whole, in January
    assert got[(2, "one_time")] == 0.0
    assert got[(1, "recurring")] == round(1_000.0 * 16 / 31, 2)
    assert got[(2, "recurring")] == 1_000.0
    total = rf.recognized_revenue(b, "2024-01-01", "2024-02-29")["revenue"].tolist()
    assert total == [round(5_000.0 + 1_000.0 * 16 / 31, 2), 1_000.0]


def test_usage_is_usage_revenue_over_its_dates_never_mrr():
    # 24,000 thousand calls booked at 0.50 per thousand over the year: 12,000 of usage
    rows = [
        {
            "subscription_id": "u",
            "product_id": "calls",
            "charge_type": "usage",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 24_000.0,
            "net_price": 0.5,
        }
    ]
    contracts = pd.DataFrame(
        {
            "contract_id": ["c1"],
            "account_id": ["a1"],
            "start_date": [T("2024-01-01")],
            "end_date": [T("2024-12-31")],
            "evergreen": [False],
            "created_date": [T("2023-12-01")],
        }
    )
    b = book_of(rows, contracts=contracts)
    assert rf.arr_on(b, "2024-06-30") == 0.0
    assert rf.mrr_table(b).empty
    rev = rf.recognized_revenue(b, "2024-01-01", "2024-12-31", by="charge_type")
    usage = rev[rev["charge_type"] == "usage"]["revenue"]
    assert usage.tolist() == [1_000.0] * 12
    fc = rf.revenue_forecast(b, "2024-03-31", horizon_months=3, n_sims=10, random_state=0, new_business=False)
    comp = fc.frame[fc.frame["group"] == "total"].pivot(index="month", columns="component", values="mean")
    assert comp["usage"].tolist() == [1_000.0] * 3 and comp["contracted"].tolist() == [0.0] * 3


def test_credit_on_a_per_unit_line_reduces_mrr():
    rows = [
        {
            "subscription_id": "s0",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 10.0,
            "net_price": 1_200.0,
        },
        {
            "subscription_id": "cr",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 1.0,
            "net_price": -600.0,
        },
    ]
    assert rf.arr_on(book_of(rows), "2024-06-30") == 11_400.0


# ------------------------------------------------------------------ currencies


def test_a_currency_move_is_an_exchange_rate_effect_not_expansion():
    # 1,200 EUR a month booked when 1 USD = 0.80 EUR (1,500 USD); from March 1 USD = 0.75 EUR.
    fx = pd.DataFrame(
        {"currency": ["EUR", "EUR"], "start_date": [T("1900-01-01"), T("2024-03-01")], "rate": [0.80, 0.75]}
    )
    rows = [
        {
            "subscription_id": "s0",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 1.0,
            "net_price": 14_400.0 / 0.80,
            "currency": "EUR",
        }
    ]
    b = book_of(rows, fx_rates=fx)
    assert mrr(b, "2024-02-29") == pytest.approx(1_500.0)
    assert mrr(b, "2024-03-31") == pytest.approx(1_500.0)  # at the booked rate
    assert mrr(b, "2024-03-31", fx="spot") == pytest.approx(1_200 / 0.75)  # 1,600 at March's rate
    assert mrr(b, "2024-02-29", fx="constant", fx_date="2024-06-30") == pytest.approx(1_600.0)
    m = rf.mrr_movements(b, start="2024-02-01", end="2024-04-30", fx="spot").set_index("month")
    march = m.loc[T("2024-03-31")]
    assert march["fx_effect"] == pytest.approx(100.0)
    assert march["expansion"] == 0.0 and march["contraction"] == 0.0
    lhs = (
        m["start_mrr"] + m["fx_effect"] + m["new"] + m["expansion"] + m["reactivation"] - m["contraction"] - m["churn"]
    )
    assert np.allclose(lhs, m["end_mrr"], atol=1e-9)
    assert (rf.mrr_movements(b, end="2024-04-30")["fx_effect"] == 0.0).all()


# ------------------------------------------------------------------ hierarchies


def test_renewal_signed_by_a_sister_account_is_not_churn_and_new_business():
    rows = [
        {
            "subscription_id": "s0",
            "start_date": T("2024-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 10.0,
            "net_price": 1_200.0,
        },
        {
            "subscription_id": "s1",
            "contract_id": "c2",
            "account_id": "a2",
            "start_date": T("2025-01-01"),
            "end_date": T("2025-12-31"),
            "quantity": 10.0,
            "net_price": 1_320.0,
        },
    ]
    contracts = pd.DataFrame(
        {
            "contract_id": ["c1", "c2"],
            "account_id": ["a1", "a2"],
            "start_date": [T("2024-01-01"), T("2025-01-01")],
            "end_date": [T("2024-12-31"), T("2025-12-31")],
            "evergreen": [False, False],
            "renewed_contract_id": [None, "c1"],
            "created_date": [T("2023-12-01")] * 2,
        }
    )
    b = book_of(rows, contracts=contracts)
    by_account = rf.mrr_movements(b, start="2025-01-01", end="2025-01-31")
    assert by_account["churn"].sum() == 1_000.0 and by_account["new"].sum() == 1_100.0
    by_parent = rf.mrr_movements(b, start="2025-01-01", end="2025-01-31", customer="ultimate_parent")
    assert by_parent["account_id"].tolist() == ["p"]
    assert by_parent["churn"].sum() == 0.0 and by_parent["new"].sum() == 0.0
    assert by_parent["expansion"].sum() == 100.0
    k = rf.retention_kpis(b, as_of="2025-06-30", customer="ultimate_parent").iloc[0]
    assert k["grr"] == 1.0 and k["nrr"] == pytest.approx(1.1)


# ------------------------------------------------------------------ property


@st.composite
def chains(draw):
    rows, n = [], draw(st.integers(1, 6))
    for c in range(n):
        total = draw(st.booleans())
        start = T("2024-01-01") + pd.Timedelta(days=draw(st.integers(0, 300)))
        end = start + pd.Timedelta(days=draw(st.integers(30, 700)))
        qty = float(draw(st.integers(1, 500)))
        price = draw(st.integers(1, 10_000_000)) / 100
        prorate = draw(st.sampled_from([0.5, 1.0, 2.0, 3.0]))
        rows.append(
            {
                "subscription_id": f"r{c}",
                "contract_id": f"c{c}",
                "start_date": start,
                "end_date": end,
                "quantity": qty,
                "net_price": price,
                "prorate_multiplier": prorate,
                "total_priced": total,
                "charge_type": draw(st.sampled_from(["recurring", "recurring", "one_time", "usage"])),
            }
        )
        root = rows[-1]
        for d in range(draw(st.integers(0, 3))):
            at = start + pd.Timedelta(days=draw(st.integers(0, (end - start).days)))
            change = float(draw(st.integers(-int(qty), 200)))
            # a total-priced delta carries its line total with the quantity's sign
            delta_price = draw(st.integers(0, 5_000_000)) / 100 * (np.sign(change) if total else 1)
            rows.append(
                {
                    **root,
                    "subscription_id": f"r{c}d{d}",
                    "start_date": at,
                    "quantity": change,
                    "net_price": delta_price,
                    "revised_subscription_id": f"r{c}",
                }
            )
    return rows


def value_by_rule(row) -> float:
    """The documented rule, row by row: MRR of one ledger row."""
    if row["charge_type"] != "recurring":
        return 0.0
    if row["total_priced"]:
        return np.sign(row["quantity"]) * abs(row["net_price"]) / row["prorate_multiplier"] / 12
    return row["net_price"] / row["prorate_multiplier"] * row["quantity"] / 12


@settings(max_examples=40, deadline=None)
@given(rows=chains())
def test_chain_mrr_is_the_sum_of_its_rows_values(rows):
    b = book_of(rows)
    table = rf.mrr_table(b, start="2024-01-01", end="2026-12-31", by="contract_id")
    for month in pd.date_range("2024-01-31", "2026-12-31", freq="ME")[::4]:
        expected = {}
        for r in rows:
            if r["start_date"] <= month <= r["end_date"]:
                expected[r["contract_id"]] = expected.get(r["contract_id"], 0.0) + value_by_rule(r)
        got = table[table["month"] == month].set_index("contract_id")["mrr"].to_dict()
        for cid in set(expected) | set(got):
            assert got.get(cid, 0.0) == pytest.approx(expected.get(cid, 0.0), abs=1e-6)


# ------------------------------------------------------------------ a real-format export


REAL_EXPORT = {
    "Account.csv": """\
        Id,Name,ParentId,CreatedDate
        001A00000000001AAA,Northwind Group,,2021-01-05T10:00:00.000+0000
        001A00000000002AAA,Northwind UK,001A00000000001AAA,2021-01-05T10:00:00.000+0000
        001A00000000003AAA,Contoso,,2021-02-01T10:00:00.000+0000
        """,
    "Product2.csv": """\
        Id,Name,SBQQ__SubscriptionTerm__c,SBQQ__ChargeType__c,SBQQ__PricingMethod__c
        01tA0000000001AAA,Seats (slab),12,Recurring,List
        01tA0000000002AAA,Storage,12,Recurring,Block
        01tA0000000003AAA,Setup Fee,,One-Time,List
        01tA0000000004AAA,API Calls,12,Usage,List
        01tA0000000005AAA,Support,12,Recurring,List
        """,
    "Contract.csv": """\
        Id,AccountId,StartDate,EndDate,ContractTerm,Status,CreatedDate
        800A0000000001AAA,001A00000000002AAA,2022-01-01,2024-12-31,36,Activated,2021-12-20T10:00:00.000+0000
        800A0000000002AAA,001A00000000003AAA,2022-02-01,2023-01-31,12,Activated,2022-01-20T10:00:00.000+0000
        """,
    "SBQQ__Subscription__c.csv": """\
        Id,SBQQ__Contract__c,SBQQ__Account__c,SBQQ__Product__c,SBQQ__Quantity__c,SBQQ__NetPrice__c,SBQQ__ListPrice__c,SBQQ__ProrateMultiplier__c,SBQQ__SubscriptionStartDate__c,SBQQ__SubscriptionEndDate__c,SBQQ__TerminatedDate__c,SBQQ__RevisedSubscription__c,SBQQ__ChargeType__c,SBQQ__BillingType__c,SBQQ__DiscountScheduleType__c,SBQQ__PricingMethod__c,CreatedDate
        a1BA0000000001AAA,800A0000000001AAA,001A00000000002AAA,01tA0000000001AAA,240,65253.6,271.89,3,2022-01-01,2024-12-31,,,Recurring,Advance,Slab,List,2021-12-20T10:00:00.000+0000
        a1BA0000000002AAA,800A0000000001AAA,001A00000000002AAA,01tA0000000002AAA,37,36000,900,3,2022-01-01,2024-12-31,,,Recurring,Advance,,Block,2021-12-20T10:00:00.000+0000
        a1BA0000000003AAA,800A0000000001AAA,001A00000000002AAA,01tA0000000003AAA,1,7500,7500,1,2022-01-01,2024-12-31,,,One-Time,Advance,,List,2021-12-20T10:00:00.000+0000
        a1BA0000000004AAA,800A0000000001AAA,001A00000000002AAA,01tA0000000004AAA,30000,1.5,0.5,3,2022-01-01,2024-12-31,,,Usage,Arrears,,List,2021-12-20T10:00:00.000+0000
        a1BA0000000005AAA,800A0000000001AAA,001A00000000002AAA,01tA0000000005AAA,10,300,300,3,2022-01-01,2024-12-31,,,Recurring,Advance,Range,List,2021-12-20T10:00:00.000+0000
        a1BA0000000006AAA,800A0000000001AAA,001A00000000002AAA,01tA0000000005AAA,1,-150,300,3,2022-01-01,2024-12-31,,,Recurring,Advance,,List,2021-12-20T10:00:00.000+0000
        a1BA0000000007AAA,800A0000000001AAA,001A00000000002AAA,01tA0000000001AAA,-240,-10876.8,271.89,0.5,2024-07-01,2024-12-31,2024-06-30,a1BA0000000001AAA,Recurring,Advance,Slab,List,2024-06-10T10:00:00.000+0000
        a1BA0000000008AAA,800A0000000002AAA,001A00000000003AAA,01tA0000000005AAA,5,1200,1200,1,2022-02-01,2023-01-31,2022-04-18,,Recurring,Advance,,List,2022-01-20T10:00:00.000+0000
        a1BA0000000009AAA,800A0000000002AAA,001A00000000003AAA,01tA0000000005AAA,-5,950,1200,0.7917,2022-04-19,2023-01-31,2022-04-18,a1BA0000000008AAA,Recurring,Advance,,List,2022-04-10T10:00:00.000+0000
        """,
    "Opportunity.csv": """\
        Id,AccountId,Type,StageName,Probability,CloseDate,IsClosed,IsWon,Amount,SBQQ__Renewal__c,SBQQ__RenewedContract__c,SBQQ__AmendedContract__c,CreatedDate
        006A0000000001AAA,001A00000000002AAA,New Business,Closed Won,100,2021-12-20,true,true,100000,false,,,2021-11-01T10:00:00.000+0000
        006A0000000002AAA,001A00000000003AAA,Existing Business,Closed Won,100,2022-01-20,true,true,6000,false,,,2021-12-01T10:00:00.000+0000
        006A0000000003AAA,001A00000000002AAA,Existing Business,Closed Won,100,2024-06-10,true,true,0,false,,800A0000000001AAA,2024-06-01T10:00:00.000+0000
        006A0000000004AAA,001A00000000002AAA,Renewal,Prospecting,10,2024-12-31,false,false,50000,false,800A0000000001AAA,,2024-09-01T10:00:00.000+0000
        006A0000000005AAA,001A00000000003AAA,Partner Referral,Prospecting,10,2025-03-31,false,false,9000,false,,,2024-10-01T10:00:00.000+0000
        006A0000000006AAA,001A00000000003AAA,Partner Referral,Prospecting,10,2025-04-30,false,false,9000,false,,,2024-10-02T10:00:00.000+0000
        006A0000000007AAA,001A00000000001AAA,Existing Customer - Downgrade,Prospecting,10,2025-04-30,false,false,-900,false,,,2024-10-02T10:00:00.000+0000
        """,
    "OpportunityLineItem.csv": "Id,OpportunityId,Product2Id,Quantity,UnitPrice,TotalPrice,ServiceDate\n",
    "OpportunityLineItemSchedule.csv": "Id,OpportunityLineItemId,ScheduleDate,Type,Revenue,Quantity\n",
    "spend.csv": "month,channel,sales_spend,marketing_spend\n",
}


@pytest.fixture
def real_export(tmp_path):
    for name, text in REAL_EXPORT.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_a_real_format_cpq_export_loads_and_its_arr_matches_a_hand_reading(real_export):
    book = rf.load_book(real_export)
    # A hand reading of Northwind UK's rows on 30 June 2022, under the documented rules:
    #   slab seats: line total 65,253.60 over a 3x term           21,751.20
    #   storage block: line total 36,000 over 3                    12,000.00
    #   setup fee (one-time) and API calls (usage): not ARR             0.00
    #   support, Range schedule, per unit: 300 / 3 x 10             1,000.00
    #   credit, per unit: -150 / 3 x 1                                -50.00
    hand = {
        "001A00000000002AAA": 21_751.20 + 12_000.00 + 1_000.00 - 50.00,
        # Contoso: 5 x 1,200 until its last day of service, 18 April 2022
        "001A00000000003AAA": 0.0,
    }
    got = rf.arr_on(book, "2022-06-30", by="account_id").set_index("account_id")["arr"].to_dict()
    assert {a: got.get(a, 0.0) for a in hand} == hand
    assert rf.arr_on(book, "2022-04-18", by="account_id").set_index("account_id")["arr"].to_dict() == {
        "001A00000000002AAA": hand["001A00000000002AAA"],
        "001A00000000003AAA": 6_000.0,
    }
    # the slab termination: served through 30 June 2024, nothing of that line from 1 July
    assert rf.arr_on(book, "2024-06-30") == hand["001A00000000002AAA"]
    assert rf.arr_on(book, "2024-07-01") == round(hand["001A00000000002AAA"] - 21_751.20, 2)
    # charge types kept on every line; lines priced as totals recognised
    subs = book.subscriptions.set_index("subscription_id")
    assert subs["charge_type"].value_counts().to_dict() == {"recurring": 7, "one_time": 1, "usage": 1}
    assert subs["total_priced"].sum() == 3
    # what was odd but possible is a warning naming the row, not a refusal
    w = book.warnings
    assert set(w.loc[w["rule"] == "credit_line", "record_id"]) == {"a1BA0000000006AAA"}
    unknown = w[w["rule"] == "unknown_opportunity_type"]
    assert len(unknown) == 1 and "'Partner Referral' on 2 opportunities" in unknown["message"].iloc[0]
    types = book.opportunities.set_index("opportunity_id")["type"].to_dict()
    assert types == {
        "006A0000000001AAA": "new_business",
        "006A0000000002AAA": "upsell",
        "006A0000000003AAA": "amendment",
        "006A0000000004AAA": "renewal",
        "006A0000000005AAA": "new_business",
        "006A0000000006AAA": "new_business",
        "006A0000000007AAA": "downgrade",
    }
    # a parent, and the ultimate parent of each account
    assert rf.ultimate_parents(book).to_dict() == {
        "001A00000000001AAA": "001A00000000001AAA",
        "001A00000000002AAA": "001A00000000001AAA",
        "001A00000000003AAA": "001A00000000003AAA",
    }


def test_type_map_overrides_and_adds_values(real_export):
    book = rf.load_book(real_export, type_map={"Partner Referral": "new_business", "Existing Business": "amendment"})
    assert "unknown_opportunity_type" not in set(book.warnings["rule"])
    assert book.opportunities.set_index("opportunity_id").loc["006A0000000002AAA", "type"] == "amendment"
    with pytest.raises(ValueError, match="type_map"):
        rf.load_book(real_export, type_map={"Partner Referral": "partner"})


def test_a_unit_price_far_above_list_is_a_warning_with_the_likely_cause(real_export):
    path = real_export / "SBQQ__Subscription__c.csv"
    text = path.read_text().replace(",Recurring,Advance,Slab,List,2021-12-20", ",Recurring,Advance,,List,2021-12-20")
    path.write_text(text)
    book = rf.load_book(real_export)
    w = book.warnings[book.warnings["rule"] == "price_above_list"]
    assert w["record_id"].tolist() == ["a1BA0000000001AAA"] and w["line"].tolist() == [2]
    assert "line total" in w["message"].iloc[0]


def test_a_cycle_in_the_account_hierarchy_is_a_clear_error(real_export):
    path = real_export / "Account.csv"
    path.write_text(path.read_text().replace("Northwind Group,,", "Northwind Group,001A00000000002AAA,"))
    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(real_export)
    cycle = [p for p in info.value.problems if p.rule == "hierarchy_cycle"]
    assert sorted(p.record_id for p in cycle) == ["001A00000000001AAA", "001A00000000002AAA"]
    assert {p.file for p in cycle} == {"Account.csv"} and {p.column for p in cycle} == {"ParentId"}


def test_dated_rates_convert_each_amount_at_the_rate_of_its_date(real_export):
    (real_export / "DatedConversionRate.csv").write_text(
        textwrap.dedent("""\
        Id,IsoCode,ConversionRate,StartDate,NextStartDate
        04w000000000001,EUR,0.8,0001-01-01,2022-03-01
        04w000000000002,EUR,0.9,2022-03-01,9999-12-31
        """)
    )
    (real_export / "CurrencyType.csv").write_text("IsoCode,ConversionRate,IsCorporate\nUSD,1,true\nEUR,0.9,false\n")
    path = real_export / "SBQQ__Subscription__c.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["CurrencyIsoCode"] = "USD"
    frame.loc[frame["Id"] == "a1BA0000000008AAA", "CurrencyIsoCode"] = "EUR"  # starts 1 Feb 2022: 0.8
    frame.loc[frame["Id"] == "a1BA0000000009AAA", "CurrencyIsoCode"] = "EUR"  # starts 19 April 2022: 0.9
    frame.to_csv(path, index=False)
    book = rf.load_book(real_export)
    subs = book.subscriptions.set_index("subscription_id")
    assert subs.loc["a1BA0000000008AAA", "net_price"] == pytest.approx(1200 / 0.8)
    assert subs.loc["a1BA0000000009AAA", "net_price"] == pytest.approx(950 / 0.9)
    assert subs.loc["a1BA0000000008AAA", "currency"] == "EUR" and pd.isna(subs.loc["a1BA0000000001AAA", "currency"])
    assert book.fx_rates["rate"].tolist() == [0.8, 0.9]
    # point in time: a rate is known from the day it starts
    assert len(book.as_of("2022-02-28").fx_rates) == 1


def test_the_demo_org_writes_what_real_orgs_write(tmp_path):
    org = rf.write_demo_org(tmp_path / "org", accounts=400, seed=7)
    book = rf.load_book(org.path)
    subs = book.subscriptions
    # terminations: TerminatedDate is the last day of service; the negative rows start the day after
    term = subs[subs["terminated_date"].notna()]
    assert len(term) and (term["start_date"] == term["terminated_date"] + pd.Timedelta(days=1)).all()
    # slab and block lines priced as totals, with signed deltas
    total = subs[subs["total_priced"]]
    assert len(total) and (np.sign(total["net_price"]) == np.sign(total["quantity"])).all()
    assert (total["quantity"] < 0).any()
    raw = pd.read_csv(org.path / "SBQQ__Subscription__c.csv", dtype=str, keep_default_na=False)
    assert {"Slab", "", "Recurring", "One-Time", "Usage", "Block"} <= (
        set(raw["SBQQ__DiscountScheduleType__c"]) | set(raw["SBQQ__ChargeType__c"]) | set(raw["SBQQ__PricingMethod__c"])
    )
    assert set(subs["charge_type"]) == {"recurring", "one_time", "usage"}
    assert (subs["net_price"] < 0).any() and "credit_line" in set(book.warnings["rule"])
    opps = pd.read_csv(org.path / "Opportunity.csv", dtype=str, keep_default_na=False)
    assert {"New Customer", "New Business", "Renewal", "Existing Business"} <= set(opps["Type"])
    assert len(book.fx_rates) > 12 and subs["currency"].eq("EUR").any()
    assert book.accounts["parent_account_id"].notna().any()
    # and it reads back exactly into its own canonical tables
    for name, frame in org.tables.items():
        pd.testing.assert_frame_equal(book.tables[name], frame, obj=name)


def test_future_new_customers_bring_fees_in_proportion_to_their_new_mrr():
    # Two customers won in the last two years: MRR 100 with a 600 fee, MRR 200 with a 300 fee;
    # an older fee (2022) is outside the window. One-time fees per unit of new MRR: 900 / 300.
    rows = [
        {
            "subscription_id": "s1",
            "contract_id": "c1",
            "start_date": T("2025-02-01"),
            "end_date": T("2026-01-31"),
            "quantity": 1.0,
            "net_price": 1_200.0,
        },
        {
            "subscription_id": "f1",
            "contract_id": "c1",
            "product_id": "fee",
            "charge_type": "one_time",
            "start_date": T("2025-02-01"),
            "end_date": T("2026-01-31"),
            "quantity": 1.0,
            "net_price": 600.0,
        },
        {
            "subscription_id": "s2",
            "contract_id": "c2",
            "account_id": "a2",
            "start_date": T("2025-06-01"),
            "end_date": T("2026-05-31"),
            "quantity": 2.0,
            "net_price": 1_200.0,
        },
        {
            "subscription_id": "f2",
            "contract_id": "c2",
            "account_id": "a2",
            "product_id": "fee",
            "charge_type": "one_time",
            "start_date": T("2025-06-01"),
            "end_date": T("2026-05-31"),
            "quantity": 1.0,
            "net_price": 300.0,
        },
        {
            "subscription_id": "f0",
            "contract_id": "c0",
            "product_id": "fee",
            "charge_type": "one_time",
            "start_date": T("2022-03-01"),
            "end_date": T("2022-03-31"),
            "quantity": 1.0,
            "net_price": 5_000.0,
        },
    ]
    contracts = pd.DataFrame(
        {
            "contract_id": ["c0", "c1", "c2"],
            "account_id": ["a1", "a1", "a2"],
            "start_date": [T("2022-03-01"), T("2025-02-01"), T("2025-06-01")],
            "end_date": [T("2022-03-31"), T("2026-01-31"), T("2026-05-31")],
            "evergreen": [False] * 3,
            "created_date": [T("2022-02-01"), T("2025-01-15"), T("2025-05-15")],
        }
    )
    b = book_of(rows, contracts=contracts)
    fc = rf.revenue_forecast(b, "2025-12-31", horizon_months=3, n_sims=50, random_state=0, renewal_rate=0.8)
    assert fc.new_business.one_time_fees_per_new_mrr == pytest.approx(900 / 300)


def test_a_segment_of_parent_accounts_that_never_paid_has_no_ltv_rather_than_an_error():
    accounts = ACCOUNTS.assign(segment=["SMB", "SMB", "Enterprise"])  # the parent alone in its segment
    rows = [
        {
            "subscription_id": "s0",
            "start_date": T("2023-01-01"),
            "end_date": T("2023-12-31"),
            "quantity": 1.0,
            "net_price": 1_200.0,
        },
        {
            "subscription_id": "s1",
            "account_id": "a2",
            "contract_id": "c2",
            "start_date": T("2023-01-01"),
            "end_date": T("2024-12-31"),
            "quantity": 1.0,
            "net_price": 1_200.0,
        },
    ]
    subs = pd.DataFrame(
        [
            {
                "prorate_multiplier": 1.0,
                "product_id": "seat",
                "contract_id": "c1",
                "account_id": "a1",
                "created_date": T("2022-12-01"),
                **r,
            }
            for r in rows
        ]
    )
    b = make_book(accounts=accounts, products=PRODUCTS, subscriptions=subs)
    for method in ("simple", "survival", "sbg"):
        out = rf.ltv(b, "2024-06-30", method=method, by="segment", n_boot=0).set_index("segment")
        assert np.isnan(out.loc["Enterprise", "ltv"]) and out.loc["Enterprise", "note"] == "no customers"
