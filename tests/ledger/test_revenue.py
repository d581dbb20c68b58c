"""MRR and its movements, worked by hand for each CPQ booking pattern, plus properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import renewforecast as rf
from _support import make_book

T = pd.Timestamp
PRODUCTS = pd.DataFrame({"product_id": ["p12", "p2", "p1"], "subscription_term_months": [12.0, 12.0, 1.0]})


def book_of(rows, opportunities=None, contracts=None):
    base = {"contract_id": "c1", "account_id": "a1", "prorate_multiplier": 1.0, "created_date": T("2023-12-01")}
    subs = pd.DataFrame([{**base, **r} for r in rows])
    auto = pd.Series([f"auto{i}" for i in range(len(subs))])
    subs["subscription_id"] = subs["subscription_id"].fillna(auto) if "subscription_id" in subs else auto
    accounts = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3"],
            "segment": ["SMB", "SMB", "Enterprise"],
            "created_date": [T("2023-01-01")] * 3,
        }
    )
    tables = {"accounts": accounts, "subscriptions": subs, "products": PRODUCTS}
    if opportunities is not None:
        tables["opportunities"] = opportunities
    if contracts is not None:
        tables["contracts"] = contracts
    return make_book(**tables)


def mrr_at(book, month, account="a1", **kw):
    table = rf.mrr_table(book, start="2023-12-01", end="2026-12-31", **kw)
    hit = table[(table["month"] == T(month)) & (table["account_id"] == account)]
    return float(hit["mrr"].sum())


def moves(book, **kw):
    m = rf.mrr_movements(book, start="2024-01-01", end="2026-12-31", **kw)
    return m.set_index(["month", "account_id"])


ANNUAL = {
    "subscription_id": "s0",
    "product_id": "p12",
    "start_date": T("2024-01-01"),
    "end_date": T("2024-12-31"),
    "quantity": 10,
    "net_price": 1200.0,
}


def test_new_then_churn_at_term_end():
    b = book_of([ANNUAL])
    assert mrr_at(b, "2024-01-31") == 1000.0 and mrr_at(b, "2024-12-31") == 1000.0
    m = moves(b)
    assert m.loc[(T("2024-01-31"), "a1"), "new"] == 1000.0
    assert m.loc[(T("2025-01-31"), "a1"), "churn"] == 1000.0
    assert m.loc[(T("2025-01-31"), "a1"), "end_mrr"] == 0.0


def test_mid_month_upsell_is_expansion_at_month_end():
    b = book_of(
        [
            ANNUAL,
            {
                "product_id": "p12",
                "start_date": T("2024-03-15"),
                "end_date": T("2024-12-31"),
                "quantity": 5,
                "net_price": 1200 * 0.5,
                "prorate_multiplier": 0.5,
                "revised_subscription_id": "s0",
            },
        ]
    )
    assert mrr_at(b, "2024-02-29") == 1000.0
    assert mrr_at(b, "2024-03-31") == 1500.0  # 15 seats x 1,200 / 12
    assert moves(b).loc[(T("2024-03-31"), "a1"), "expansion"] == 500.0


def test_seat_decrease_is_contraction():
    b = book_of(
        [
            ANNUAL,
            {
                "product_id": "p12",
                "start_date": T("2024-06-10"),
                "end_date": T("2024-12-31"),
                "quantity": -3,
                "net_price": 700.0,
                "prorate_multiplier": 700 / 1200,
                "revised_subscription_id": "s0",
            },
        ]
    )
    assert mrr_at(b, "2024-06-30") == 700.0
    row = moves(b).loc[(T("2024-06-30"), "a1")]
    assert (row["contraction"], row["start_mrr"], row["end_mrr"]) == (300.0, 1000.0, 700.0)


def test_added_product_is_expansion_and_ends_with_the_contract():
    b = book_of(
        [
            ANNUAL,
            {
                "product_id": "p2",
                "start_date": T("2024-05-20"),
                "end_date": T("2024-12-31"),
                "quantity": 2,
                "net_price": 375.0,
                "prorate_multiplier": 0.625,
            },
        ]
    )
    # 2 units at 375 / 0.625 = 600 a year -> 100 a month
    assert moves(b).loc[(T("2024-05-31"), "a1"), "expansion"] == pytest.approx(100.0)
    assert moves(b).loc[(T("2025-01-31"), "a1"), "churn"] == pytest.approx(1100.0)  # co-terminated


def test_early_termination_churns_at_the_termination_date():
    rows = [
        ANNUAL,
        {
            "product_id": "p12",
            "start_date": T("2024-09-15"),
            "end_date": T("2024-12-31"),
            "quantity": -10,
            "net_price": 350.0,
            "prorate_multiplier": 350 / 1200,
            "revised_subscription_id": "s0",
            "terminated_date": T("2024-09-15"),
            "created_date": T("2024-08-20"),
        },
    ]
    b = book_of(rows)
    assert mrr_at(b, "2024-08-31") == 1000.0 and mrr_at(b, "2024-09-30") == 0.0
    assert moves(b).loc[(T("2024-09-30"), "a1"), "churn"] == 1000.0
    # recognised when booked (20 August) with churn_at="cancellation"
    cm = moves(b, churn_at="cancellation")
    assert cm.loc[(T("2024-08-31"), "a1"), "churn"] == 1000.0
    assert (T("2025-01-31"), "a1") not in cm.index or cm.loc[(T("2025-01-31"), "a1"), "churn"] == 0.0


def test_cancel_and_replace_on_one_date_is_only_the_price_change():
    b = book_of(
        [
            ANNUAL,
            {
                "product_id": "p12",
                "start_date": T("2024-07-01"),
                "end_date": T("2024-12-31"),
                "quantity": -10,
                "net_price": 600.0,
                "prorate_multiplier": 0.5,
                "revised_subscription_id": "s0",
            },
            {
                "product_id": "p12",
                "start_date": T("2024-07-01"),
                "end_date": T("2024-12-31"),
                "quantity": 10,
                "net_price": 660.0,
                "prorate_multiplier": 0.5,
            },
        ]
    )
    assert mrr_at(b, "2024-07-31") == pytest.approx(1100.0)
    row = moves(b).loc[(T("2024-07-31"), "a1")]
    assert row["expansion"] == pytest.approx(100.0) and row["new"] == 0 and row["churn"] == 0


def test_mdq_ramp_expands_at_the_second_segment():
    b = book_of(
        [
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
    )
    assert mrr_at(b, "2024-12-31") == 10_000.0 and mrr_at(b, "2025-01-31") == 13_000.0
    assert moves(b).loc[(T("2025-01-31"), "a1"), "expansion"] == 3_000.0


def test_evergreen_monthly_line_runs_until_terminated():
    b = book_of(
        [
            {
                "subscription_id": "e0",
                "product_id": "p1",
                "start_date": T("2024-02-10"),
                "end_date": pd.NaT,
                "quantity": 2,
                "net_price": 100.0,
            },
            {
                "product_id": "p1",
                "start_date": T("2025-05-03"),
                "end_date": pd.NaT,
                "quantity": -2,
                "net_price": 100.0,
                "revised_subscription_id": "e0",
                "terminated_date": T("2025-05-03"),
            },
        ]
    )
    assert mrr_at(b, "2024-02-29") == 200.0 and mrr_at(b, "2025-04-30") == 200.0
    assert mrr_at(b, "2025-05-31") == 0.0
    assert moves(b).loc[(T("2025-05-31"), "a1"), "churn"] == 200.0


def test_second_customer_and_reactivation():
    rows = [
        ANNUAL,
        {
            "account_id": "a1",
            "contract_id": "c9",
            "product_id": "p12",
            "start_date": T("2025-03-10"),
            "end_date": T("2026-03-09"),
            "quantity": 4,
            "net_price": 1200.0,
        },
    ]
    b = book_of(rows)
    m = moves(b)
    assert m.loc[(T("2025-03-31"), "a1"), "reactivation"] == 400.0
    assert m.loc[(T("2025-03-31"), "a1"), "new"] == 0.0
    # back after 2 months without MRR: with a 1-month window it is new again
    m1 = moves(b, reactivation_months=1)
    assert m1.loc[(T("2025-03-31"), "a1"), "new"] == 400.0
    m2 = moves(b, reactivation_months=2)
    assert m2.loc[(T("2025-03-31"), "a1"), "reactivation"] == 400.0


def test_start_and_leave_in_the_same_month():
    rows = [
        ANNUAL,
        {
            "account_id": "a2",
            "contract_id": "c2",
            "product_id": "p12",
            "start_date": T("2024-04-05"),
            "end_date": T("2024-04-20"),
            "quantity": 12,
            "net_price": 1200.0,
        },
    ]
    b = book_of(rows)
    assert "a2" not in set(moves(b).reset_index()["account_id"])  # ignored by default
    counted = moves(b, same_month="count").loc[(T("2024-04-30"), "a2")]
    assert counted["new"] == 1200.0 and counted["churn"] == 1200.0 and counted["end_mrr"] == 0.0


def test_lost_renewal_churns_at_close_date_when_recognised_at_cancellation():
    opps = pd.DataFrame(
        {
            "opportunity_id": ["o1"],
            "account_id": ["a1"],
            "type": ["renewal"],
            "stage": ["Closed Lost"],
            "close_date": [T("2024-10-15")],
            "is_closed": [True],
            "is_won": [False],
            "renewed_contract_id": ["c1"],
            "created_date": [T("2024-08-01")],
        }
    )
    b = book_of([ANNUAL], opportunities=opps)
    assert moves(b).loc[(T("2025-01-31"), "a1"), "churn"] == 1000.0
    assert moves(b, churn_at="cancellation").loc[(T("2024-10-31"), "a1"), "churn"] == 1000.0


# ------------------------------------------------------------------ properties


@st.composite
def ledgers(draw):
    rows = []
    n_chains = draw(st.integers(1, 12))
    for c in range(n_chains):
        acct = draw(st.sampled_from(["a1", "a2", "a3"]))
        start = T("2024-01-01") + pd.Timedelta(days=draw(st.integers(0, 500)))
        length = draw(st.integers(1, 800))
        end = start + pd.Timedelta(days=length)
        qty = draw(st.integers(1, 50))
        price = draw(st.integers(1, 500_000)) / 100
        root = f"r{c}"
        rows.append(
            {
                "subscription_id": root,
                "account_id": acct,
                "contract_id": f"c{c}",
                "product_id": "p12",
                "start_date": start,
                "end_date": end,
                "quantity": float(qty),
                "net_price": price,
            }
        )
        remaining = qty
        offsets = sorted(draw(st.lists(st.integers(0, length), max_size=3)))
        for d, offset in enumerate(offsets):
            at = start + pd.Timedelta(days=offset)
            change = draw(st.integers(-remaining, 20))
            remaining += change
            rows.append(
                {
                    "subscription_id": f"{root}d{d}",
                    "account_id": acct,
                    "contract_id": f"c{c}",
                    "product_id": "p12",
                    "start_date": at,
                    "end_date": end,
                    "quantity": float(change),
                    "net_price": price,
                    "revised_subscription_id": root,
                }
            )
        if draw(st.booleans()):
            at = start + pd.Timedelta(days=draw(st.integers(offsets[-1] if offsets else 0, length)))
            # TerminatedDate is the last day of service; the negative row starts the day after.
            rows.append(
                {
                    "subscription_id": f"{root}t",
                    "account_id": acct,
                    "contract_id": f"c{c}",
                    "product_id": "p12",
                    "start_date": at,
                    "end_date": end,
                    "quantity": float(-remaining),
                    "net_price": price,
                    "revised_subscription_id": root,
                    "terminated_date": at - pd.Timedelta(days=1),
                }
            )
    return rows


def naive_mrr(rows, month_end):
    """Row by row, the obvious way: what is active on the month-end day."""
    term = {}
    for r in rows:
        root = r.get("revised_subscription_id") or r["subscription_id"]
        if pd.notna(r.get("terminated_date", pd.NaT)):
            term[root] = min(term.get(root, r["terminated_date"]), r["terminated_date"])
    out = {}
    for r in rows:
        root = r.get("revised_subscription_id") or r["subscription_id"]
        if r["start_date"] <= month_end <= r["end_date"] and not (root in term and term[root] < month_end):
            out[r["account_id"]] = out.get(r["account_id"], 0.0) + r["quantity"] * r["net_price"] / 12
    return out


MONTHS = pd.date_range("2024-01-31", "2026-06-30", freq="ME")


@settings(max_examples=60, deadline=None)
@given(rows=ledgers(), seed=st.integers(0, 1000))
def test_properties_of_mrr_and_movements(rows, seed):
    book = book_of(rows)
    table = rf.mrr_table(book, start="2024-01-01", end="2026-06-30")
    for month in MONTHS[::5]:
        expected = naive_mrr(rows, month)
        got = table[table["month"] == month].set_index("account_id")["mrr"].to_dict()
        for acct in set(expected) | set(got):
            assert got.get(acct, 0.0) == pytest.approx(expected.get(acct, 0.0), abs=1e-6)
    # MRR is never negative for a customer when decreases never exceed what was bought
    assert (table["mrr"] > -1e-6).all()
    # the bridge identity, every month and customer, to the cent
    m = rf.mrr_movements(book, end="2026-06-30")
    lhs = m["start_mrr"] + m["new"] + m["expansion"] + m["reactivation"] - m["contraction"] - m["churn"]
    assert np.allclose(lhs, m["end_mrr"], atol=0.005)
    for col in ("new", "expansion", "reactivation", "contraction", "churn"):
        assert (m[col] >= 0).all()
    # row order does not matter
    shuffled = book_of(list(pd.DataFrame(rows).sample(frac=1, random_state=seed).to_dict("records")))
    pd.testing.assert_frame_equal(rf.mrr_table(shuffled, start="2024-01-01", end="2026-06-30"), table)
    # splitting a row into two delta rows does not change MRR
    first = dict(rows[0])
    if first["quantity"] >= 2:
        a = {**first, "quantity": 1.0}
        b = {
            **first,
            "subscription_id": "split",
            "quantity": first["quantity"] - 1.0,
            "revised_subscription_id": first["subscription_id"],
        }
        split = book_of([a, b, *rows[1:]])
        pd.testing.assert_frame_equal(rf.mrr_table(split, start="2024-01-01", end="2026-06-30"), table)


def test_mrr_by_segment_and_total_agree_with_arr(demo_book):
    table = rf.mrr_table(demo_book, end="2026-06-30", by=("segment",))
    total = rf.mrr_table(demo_book, end="2026-06-30", by=())
    joined = table.groupby("month")["mrr"].sum()
    assert np.allclose(joined.to_numpy(), total.set_index("month")["mrr"].loc[joined.index].to_numpy(), atol=0.01)
    for month in ("2024-06-30", "2026-05-31"):
        assert total.set_index("month").loc[T(month), "mrr"] * 12 == pytest.approx(
            rf.arr_on(demo_book, month), abs=0.01
        )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"by": ("segment",)},
        {"customer": "ultimate_parent", "fx": "spot", "churn_at": "cancellation"},
        {"same_month": "count", "reactivation_months": 3},
    ],
)
def test_a_large_book_in_blocks_of_customers_gives_the_same_tables(demo_book, monkeypatch, options):
    # A large book is valued in blocks of customers to bound memory; the
    # blocks must not change a single row, its order or a value.
    from renewforecast.ledger import mrr as mrr_module

    table_by = options.get("by", ("account_id",))
    table_options = {k: v for k, v in options.items() if k in ("customer", "fx", "churn_at")}
    whole_table = rf.mrr_table(demo_book, end="2026-06-30", by=table_by, **table_options)
    whole_bridge = rf.mrr_movements(demo_book, end="2026-06-30", **options)
    months = whole_table["month"].nunique()
    monkeypatch.setattr(mrr_module, "_TABLE_CELLS", 7 * (months + 2))
    monkeypatch.setattr(mrr_module, "_BRIDGE_CELLS", 11 * (months + 2))
    blocks = len(
        mrr_module._blocks(
            np.arange(demo_book.accounts.shape[0]), demo_book.accounts.shape[0], months, 7 * (months + 2)
        )
    )
    assert blocks > 10
    pd.testing.assert_frame_equal(rf.mrr_table(demo_book, end="2026-06-30", by=table_by, **table_options), whole_table)
    pd.testing.assert_frame_equal(rf.mrr_movements(demo_book, end="2026-06-30", **options), whole_bridge)
