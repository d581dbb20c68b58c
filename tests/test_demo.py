"""The synthetic demo org: round trip through Salesforce files, determinism, realism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import renewforecast as rf
from _support import folder_digest


def test_round_trip_equals_the_generator_tables(demo_org, demo_book):
    for name, frame in demo_org.tables.items():
        pd.testing.assert_frame_equal(demo_book.tables[name], frame, obj=name)


def test_same_seed_same_bytes(tmp_path):
    a = rf.write_demo_org(tmp_path / "a", accounts=25, seed=5)
    b = rf.write_demo_org(tmp_path / "b", accounts=25, seed=5)
    c = rf.write_demo_org(tmp_path / "c", accounts=25, seed=6)
    assert folder_digest(a.path) == folder_digest(b.path)
    assert folder_digest(a.path) != folder_digest(c.path)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), accounts=st.integers(1, 40))
def test_any_generated_org_validates(tmp_path_factory, seed, accounts):
    org = rf.write_demo_org(tmp_path_factory.mktemp("h") / "org", accounts=accounts, seed=seed)
    book = rf.load_book(org.path)  # raises on any validation error
    assert len(book.accounts) >= accounts
    # stale schedules and loyalty credits are written on purpose, as real orgs have them
    assert set(book.warnings["rule"]) <= {"schedule_total_mismatch", "credit_line"}


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    org = rf.write_demo_org(tmp_path_factory.mktemp("big") / "org", accounts=400, seed=7)
    return org, rf.load_book(org.path)


def test_demo_covers_the_cpq_cases(big):
    _org, book = big
    subs, con, opps = book.subscriptions, book.contracts, book.opportunities
    assert set(book.accounts["segment"].dropna()) == {"SMB", "Mid-Market", "Enterprise", "Government"}
    assert {12.0, 24.0, 36.0} <= set(con["term_months"])
    assert con["evergreen"].any() and con.loc[con["evergreen"], "end_date"].isna().all()
    assert set(con["renewal_pricing_method"]) == {"same", "list", "uplift"}
    assert con.loc[con["renewal_pricing_method"] == "uplift", "renewal_uplift_rate"].between(0.01, 0.2).all()
    # monthly-priced products (default term 1) as well as annual ones
    assert set(book.products["subscription_term_months"]) == {1.0, 12.0}
    # signed delta rows linked to the row they revise; decreases are negative
    deltas = subs[subs["revised_subscription_id"].notna()]
    assert (deltas["quantity"] < 0).any() and (deltas["quantity"] > 0).any()
    # early terminations carry the termination date on negative rows
    term = subs[subs["terminated_date"].notna()]
    assert len(term) and (term["quantity"] < 0).all()
    # cancel-and-replace: a negative and a positive row, same contract, product and date
    neg = subs[(subs["quantity"] < 0) & subs["terminated_date"].isna()]
    pos = subs[(subs["quantity"] > 0) & subs["revised_subscription_id"].isna()]
    pair = neg.merge(pos, on=["contract_id", "product_id", "start_date"])
    assert len(pair) > 0
    # add product co-terminated with its contract
    ends = subs["contract_id"].map(con.set_index("contract_id")["end_date"])
    added = subs[
        (subs["start_date"] > subs["contract_id"].map(con.set_index("contract_id")["start_date"]))
        & subs["revised_subscription_id"].isna()
        & (subs["quantity"] > 0)
    ]
    assert len(added) and (added["end_date"] == ends[added.index]).all()
    # MDQ ramps: one row per segment, growing segment quantity
    mdq = subs[subs["segment_index"].notna()].sort_values(["contract_id", "segment_index"])
    assert mdq["segment_index"].max() >= 2
    assert (mdq.groupby("contract_id")["segment_quantity"].diff().dropna() > 0).all()
    # renewals link to the contract they renew
    renewed = con["renewed_contract_id"].dropna()
    assert len(renewed) and renewed.isin(con["contract_id"]).all()
    # open renewal and new-business opportunities with schedules
    open_ = opps[~opps["is_closed"]]
    assert {"renewal", "new_business"} <= set(open_["type"])
    open_lines = book.opportunity_lines[book.opportunity_lines["opportunity_id"].isin(open_["opportunity_id"])]
    assert book.schedules["line_id"].isin(open_lines["line_id"]).any()
    assert {"amendment", "renewal", "new_business"} <= set(opps["type"])
    assert len(book.opportunity_history) > len(opps)
    assert set(book.spend["channel"]) >= {"paid_search", "events", "outbound", "partner"}
    assert {"seat_utilization", "active_users", "support_tickets", "nps"} <= set(book.signals.columns)


def test_demo_schedules_use_divide_and_repeat(big):
    _, book = big
    rows = book.schedules.merge(book.opportunity_lines, on="line_id", suffixes=("", "_line"))
    per_line = rows.groupby("line_id").agg(
        n=("revenue", "size"),
        total=("revenue", "sum"),
        first=("revenue", "first"),
        last=("revenue", "last"),
        line_total=("total_price", "first"),
        dates=("schedule_date", lambda d: d.diff().dt.days.median() if len(d) > 1 else np.nan),
    )
    ok = (per_line["total"] - per_line["line_total"]).abs() < 0.005
    per_line = per_line[ok]
    assert (per_line["n"] > 1).any() and (per_line["n"] == 1).any()
    # Divide leaves the remainder on the last installment: different last, equal others
    assert (per_line["first"] != per_line["last"]).any()
    # several periods: monthly (~30 days), quarterly (~91), yearly (~365) gaps
    gaps = per_line["dates"].dropna()
    assert ((gaps > 27) & (gaps < 32)).any() and ((gaps > 88) & (gaps < 93)).any() and (gaps > 360).any()
    both = book.schedules[book.schedules["type"] == "both"]
    assert len(both) and both["quantity"].notna().all()


def test_truth_file_matches_outcomes_and_is_not_read(big, tmp_path):
    org, book = big
    truth = org.truth
    assert truth["true_probability"].between(0, 1, inclusive="neither").all()
    decided = truth.dropna(subset=["renewed"])
    renewed_ids = set(book.contracts["renewed_contract_id"].dropna())
    assert (decided["renewed"] == 1).sum() == decided["contract_id"].isin(renewed_ids).sum()
    assert set(decided.loc[decided["renewed"] == 1, "contract_id"]) <= renewed_ids
    # decisions follow their probability: higher p renews more often
    hi = decided[decided["true_probability"] > decided["true_probability"].median()]["renewed"].mean()
    lo = decided[decided["true_probability"] <= decided["true_probability"].median()]["renewed"].mean()
    assert hi > lo
    assert (org.path / "truth" / "renewal_truth.csv").exists()
    (org.path / "truth" / "renewal_truth.csv").write_text('garbage,\n"unterminated')
    assert rf.load_book(org.path).fingerprint == book.fingerprint


def test_ids_are_valid_salesforce_ids(big):
    _, book = big
    pattern = r"^[a-zA-Z0-9]{15}[A-Z0-5]{3}$"
    for name, key in (
        ("accounts", "account_id"),
        ("contracts", "contract_id"),
        ("subscriptions", "subscription_id"),
        ("schedules", "schedule_id"),
    ):
        assert book.tables[name][key].str.match(pattern).all(), name


def test_salesforce_id_checksum():
    # The 3-character suffix encodes which of the 15 characters are upper case.
    from renewforecast.demo import sf_id, sf_ids

    ident = sf_id("account", 123456)
    body = ident[:15]
    for i, ch in enumerate(ident[15:]):
        chunk = body[i * 5 : (i + 1) * 5]
        flags = sum(1 << j for j, c in enumerate(chunk) if c.isupper())
        assert ch == "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[flags]
    assert list(sf_ids("account", 123456, 3)) == [sf_id("account", n) for n in (123456, 123457, 123458)]
    assert np.unique(sf_ids("schedule", 1, 5000)).size == 5000


def test_demo_writes_history_as_real_exports_do_and_legacy_encodings_without_formula_fields(tmp_path):
    org = rf.write_demo_org(tmp_path / "org", accounts=60, seed=11, encoding="cp1252", formula_fields=False)
    raw = (org.path / "Contract.csv").read_bytes()
    header = raw.split(b"\n", 1)[0].decode("cp1252").split(",")
    assert "EndDate" not in header and "StartDate" in header
    subs_header = (org.path / "SBQQ__Subscription__c.csv").read_bytes().split(b"\n", 1)[0].decode().split(",")
    assert "SBQQ__StartDate__c" not in subs_header and "SBQQ__SubscriptionStartDate__c" in subs_header
    book = rf.load_book(org.path)
    rules = set(book.warnings["rule"])
    assert "derived_field" in rules
    # every end date is derived back exactly, and the whole org reads back into its own tables
    for name, frame in org.tables.items():
        pd.testing.assert_frame_equal(book.tables[name], frame, obj=name)
    # stage history: not in time order in the file, with changes at several times of one day
    history = pd.read_csv(org.path / "OpportunityHistory.csv", dtype=str, keep_default_na=False, encoding="cp1252")
    stamps = pd.to_datetime(history["CreatedDate"], utc=True)
    assert not stamps.is_monotonic_increasing
    same_day = history.assign(day=stamps.dt.date).groupby(["OpportunityId", "day"]).size()
    assert (same_day > 1).any() and (stamps.dt.hour != 9).any()


def test_a_renewal_opportunity_keeps_its_amount_whether_it_is_won_or_lost(big):
    # Amount is the sum of the opportunity's products; closing it lost does not change them, so an
    # open renewal's amount cannot tell which way it will go.
    _, book = big
    opps = book.opportunities[book.opportunities["type"] == "renewal"]
    closed = opps[opps["is_closed"].astype(bool)]
    assert (~closed["is_won"].astype(bool)).sum() > 20
    assert (closed["amount"] > 0).all()
    history = book.opportunity_history.merge(opps[["opportunity_id", "is_won"]], on="opportunity_id")
    assert (history["amount"] > 0).all()
    # Each history row is within 15% of the deal's final amount, won or lost (the demo's drift).
    final = history["opportunity_id"].map(opps.set_index("opportunity_id")["amount"])
    assert ((history["amount"] / final).between(0.85 - 1e-9, 1.15 + 1e-9)).all()
