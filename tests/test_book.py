"""The Book: immutability, fingerprint, and the as-of view."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import renewforecast as rf


def test_book_is_frozen(demo_book):
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo_book.currency = "EUR"


def test_fingerprint_changes_with_any_value(demo_book):
    subs = demo_book.subscriptions.copy()
    subs.loc[0, "net_price"] += 0.01
    changed = demo_book.replace(subscriptions=subs)
    assert changed.fingerprint != demo_book.fingerprint
    same = demo_book.replace(subscriptions=demo_book.subscriptions.copy())
    assert same.fingerprint == demo_book.fingerprint
    assert len(demo_book.fingerprint) == 64


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fingerprint_does_not_depend_on_row_order(demo_book, seed):
    # A database keeps no row order: the same records in any order are the same data.
    rng = np.random.default_rng(seed)
    shuffled = {
        name: frame.iloc[rng.permutation(len(frame))].reset_index(drop=True) for name, frame in demo_book.tables.items()
    }
    assert demo_book.replace(**shuffled).fingerprint == demo_book.fingerprint
    # ...while a row swapped for a copy of another is not the same data
    subs = shuffled["subscriptions"]
    duplicated = pd.concat([subs.iloc[:-1], subs.iloc[:1]], ignore_index=True)
    assert demo_book.replace(subscriptions=duplicated).fingerprint != demo_book.fingerprint


CUT = pd.Timestamp("2024-03-31")


def test_as_of_drops_what_was_not_created_yet(demo_book):
    cut = demo_book.as_of(CUT)
    assert cut.known_as_of == CUT
    for name in ("accounts", "contracts", "subscriptions", "opportunities", "opportunity_history"):
        frame = demo_book.tables[name]
        assert len(cut.tables[name]) <= (frame["created_date"] <= CUT).sum()
        assert (cut.tables[name]["created_date"] <= CUT).all()
    expected = demo_book.contracts[demo_book.contracts["created_date"] <= CUT]
    assert set(cut.contracts["contract_id"]) == set(expected["contract_id"])
    # a month of signals is known once it has ended
    assert (cut.signals["month"] + pd.offsets.MonthEnd(0) <= CUT).all()
    assert cut.signals["month"].max() == pd.Timestamp("2024-03-01")
    assert (cut.subscriptions["terminated_date"].dropna() <= CUT).all()
    # the cut book references only what it holds
    assert cut.opportunity_lines["opportunity_id"].isin(cut.opportunities["opportunity_id"]).all()
    assert cut.schedules["line_id"].isin(cut.opportunity_lines["line_id"]).all()


def test_as_of_reopens_opportunities_closed_later(demo_book):
    opps, hist = demo_book.opportunities, demo_book.opportunity_history
    later = opps[opps["is_closed"] & (opps["close_date"] > CUT) & (opps["created_date"] <= CUT)]
    assert len(later)
    cut = demo_book.as_of(CUT).opportunities.set_index("opportunity_id")
    for oid in later["opportunity_id"]:
        row = cut.loc[oid]
        assert not row["is_closed"] and not row["is_won"]
        known = hist[(hist["opportunity_id"] == oid) & (hist["created_date"] <= CUT)]
        expected = known.sort_values("created_date")["stage"].iloc[-1]
        assert row["stage"] == expected
        assert row["stage"] not in ("Closed Won", "Closed Lost")


def test_as_of_without_history_hides_the_outcome():
    opps = pd.DataFrame(
        {
            "opportunity_id": ["o1"],
            "account_id": ["a1"],
            "type": ["renewal"],
            "stage": ["Closed Won"],
            "probability": [1.0],
            "close_date": [pd.Timestamp("2024-05-01")],
            "is_closed": [True],
            "is_won": [True],
            "amount": [100.0],
            "forecast_category": ["Closed"],
            "created_date": [pd.Timestamp("2024-01-01")],
        }
    )
    accounts = pd.DataFrame({"account_id": ["a1"], "created_date": [pd.Timestamp("2023-01-01")]})
    from _support import make_book

    cut = make_book(accounts=accounts, opportunities=opps).as_of("2024-03-01").opportunities
    assert cut["is_closed"].tolist() == [False] and cut["is_won"].tolist() == [False]
    assert cut["stage"].isna().all() and cut["probability"].isna().all()


def test_resolve_as_of_defaults_to_the_export_date(demo_org, demo_book):
    end = demo_book.resolve_as_of(None)
    assert end <= demo_org.as_of
    assert end == max(
        demo_book.tables[t]["created_date"].max()
        for t in ("accounts", "contracts", "subscriptions", "opportunities", "opportunity_history")
    )
    assert demo_book.resolve_as_of("2025-01-31") == pd.Timestamp("2025-01-31")
    assert rf.Book.empty().as_of("2024-01-01").resolve_as_of(None) == pd.Timestamp("2024-01-01")
