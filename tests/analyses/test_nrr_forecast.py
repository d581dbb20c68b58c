"""Forward NRR and GRR: books worked by hand, identities, the simulation against its expectation, the backtest."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import renewforecast as rf
from _support import make_book
from renewforecast.analyses import nrr_forecast

T = pd.Timestamp
AS_OF = "2024-06-30"  # base month June 2024: the forecast is for the end of June 2025
PRODUCTS = pd.DataFrame({"product_id": ["p", "m"], "subscription_term_months": [12.0, 1.0]})


def contract(cid, acct, start, end, term, *, renews=None, evergreen=False, created=None):
    return {
        "contract_id": cid,
        "account_id": acct,
        "start_date": T(start),
        "end_date": T(end) if end else pd.NaT,
        "term_months": float(term),
        "evergreen": evergreen,
        "renewal_pricing_method": "same",
        "renewed_contract_id": renews,
        "created_date": T(created or start) - pd.Timedelta(days=1),
    }


def sub(sid, cid, acct, start, end, qty, price=1200.0, prorate=1.0, product="p", created=None, **extra):
    return {
        "subscription_id": sid,
        "contract_id": cid,
        "account_id": acct,
        "product_id": product,
        "start_date": T(start),
        "end_date": T(end) if end else pd.NaT,
        "quantity": float(qty),
        "net_price": price,
        "prorate_multiplier": prorate,
        "created_date": T(created or start) - pd.Timedelta(days=1),
        **extra,
    }


def accounts(segments: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"account_id": list(segments), "segment": list(segments.values()), "created_date": T("2022-01-01")}
    )


def hand_book() -> rf.Book:
    """Four customers whose next twelve months are decided by the probabilities given.

    - A (SMB): a0, 2023, 10 seats (MRR 1,000), renewed into a1, 2024, at 11 seats (MRR 1,100): the
      book's only past renewal, so every renewal moves its value by 1.1.
    - B (SMB): b1, March 2024 to February 2025, MRR 500.
    - C (Enterprise): c1, 2024 to 2026, MRR 2,000: runs past the horizon.
    - D (SMB): d1, May to July 2024, a 3-month term at MRR 100: it and its renewals end in October,
      January and April, so it renews four times before the end of June 2025 (100 x 1.1^4).
    """
    contracts = pd.DataFrame(
        [
            contract("a0", "A", "2023-01-01", "2023-12-31", 12),
            contract("a1", "A", "2024-01-01", "2024-12-31", 12, renews="a0", created="2023-12-15"),
            contract("b1", "B", "2024-03-01", "2025-02-28", 12),
            contract("c1", "C", "2024-01-01", "2026-12-31", 36),
            contract("d1", "D", "2024-05-01", "2024-07-31", 3),
        ]
    )
    subs = pd.DataFrame(
        [
            sub("s-a0", "a0", "A", "2023-01-01", "2023-12-31", 10),
            sub("s-a1", "a1", "A", "2024-01-01", "2024-12-31", 11, created="2023-12-15"),
            sub("s-b1", "b1", "B", "2024-03-01", "2025-02-28", 5),
            sub("s-c1", "c1", "C", "2024-01-01", "2026-12-31", 20, price=3600.0, prorate=3.0),
            sub("s-d1", "d1", "D", "2024-05-01", "2024-07-31", 1, price=300.0, prorate=0.25),
        ]
    )
    return make_book(
        accounts=accounts({"A": "SMB", "B": "SMB", "C": "Enterprise", "D": "SMB"}),
        products=PRODUCTS,
        contracts=contracts,
        subscriptions=subs,
    )


SCORES = pd.DataFrame({"contract_id": ["a1", "b1", "d1"], "renewal_probability": [1.0, 0.0, 1.0]})


def by_key(frame: pd.DataFrame) -> dict:
    return {(r.group, r.metric): r for r in frame.itertuples()}


def test_a_book_decided_by_probabilities_zero_and_one_collapses_to_the_hand_computed_nrr_and_grr():
    f = by_key(rf.nrr_forecast(hand_book(), AS_OF, by="segment", renewal_probabilities=SCORES, n_sims=200))
    # Base (June 2024): A 1,100 + B 500 + C 2,000 + D 100 = 3,700.
    # June 2025: A renews at 1.1 (1,210), B is lost, C is booked (2,000), D renews four times (146.41).
    nrr = (1210 + 0 + 2000 + 100 * 1.1**4) / 3700
    grr = (1100 + 0 + 2000 + 100) / 3700  # each customer capped at its base MRR
    for key, value in {
        ("total", "nrr"): nrr,
        ("total", "grr"): grr,
        ("SMB", "nrr"): (1210 + 100 * 1.1**4) / 1700,
        ("SMB", "grr"): (1100 + 100) / 1700,
        ("Enterprise", "nrr"): 1.0,
        ("Enterprise", "grr"): 1.0,
    }.items():
        row = f[key]
        assert row.mean == pytest.approx(value, abs=1e-12)
        assert row.p10 == pytest.approx(value, abs=1e-12) and row.p90 == pytest.approx(value, abs=1e-12)
    assert f[("total", "nrr")].base_mrr == pytest.approx(3700.0)
    assert f[("total", "nrr")].base_customers == 4
    # a1, b1 and d1 come up for renewal: 1,100 + 500 + 100 of MRR.
    assert f[("total", "nrr")].renewals_due == 3 and f[("total", "nrr")].renewal_mrr_due == pytest.approx(1700.0)
    assert f[("total", "nrr")].month == T("2025-06-30") and f[("total", "nrr")].base_month == T("2024-06-30")


def test_the_same_book_renewing_nothing_keeps_only_what_runs_past_the_horizon():
    scores = SCORES.assign(renewal_probability=0.0)
    f = by_key(rf.nrr_forecast(hand_book(), AS_OF, renewal_probabilities=scores, n_sims=50))
    assert f[("total", "nrr")].mean == pytest.approx(2000 / 3700)
    assert f[("total", "grr")].mean == pytest.approx(2000 / 3700)


def booked_book(*, with_changes: bool) -> rf.Book:
    """Nothing comes up for renewal and the history shows no amendment, termination or cancellation.

    C runs past the horizon (MRR 2,000) and E is evergreen (2 units of a monthly product at 100);
    with changes, F ramps from 10 to 13 seats in January 2025 (MDQ segments) and G's termination
    (last day 31 December 2024) was booked on 1 June 2024.
    """
    con = [
        contract("c1", "C", "2024-01-01", "2026-12-31", 36),
        contract("e1", "E", "2023-06-01", None, 1, evergreen=True),
    ]
    subs = [
        sub("s-c1", "c1", "C", "2024-01-01", "2026-12-31", 20, price=3600.0, prorate=3.0),
        sub("s-e1", "e1", "E", "2023-06-01", None, 2, price=100.0, product="m"),
    ]
    segments = {"C": "Enterprise", "E": "SMB"}
    if with_changes:
        segments |= {"F": "Mid-Market", "G": "Mid-Market"}
        con += [
            contract("f1", "F", "2024-01-01", "2025-12-31", 24),
            contract("g1", "G", "2024-01-01", "2026-12-31", 36),
        ]
        mdq = {"segment_start_date": T("2024-01-01"), "segment_end_date": T("2024-12-31")}
        subs += [
            sub("s-f1", "f1", "F", "2024-01-01", "2025-12-31", 10, segment_index=1, segment_quantity=10.0, **mdq),
            sub(
                "s-f2",
                "f1",
                "F",
                "2025-01-01",
                "2025-12-31",
                3,
                created="2024-01-01",
                segment_index=2,
                segment_quantity=13.0,
                segment_start_date=T("2025-01-01"),
                segment_end_date=T("2025-12-31"),
            ),
            sub("s-g1", "g1", "G", "2024-01-01", "2026-12-31", 10, price=3600.0, prorate=3.0),
            sub(
                "s-g2",
                "g1",
                "G",
                "2025-01-01",
                "2026-12-31",
                -10,
                price=2400.0,
                prorate=2.0,
                created="2024-06-02",
                terminated_date=T("2024-12-31"),
                revised_subscription_id="s-g1",
            ),
        ]
    return make_book(
        accounts=accounts(segments), products=PRODUCTS, contracts=pd.DataFrame(con), subscriptions=pd.DataFrame(subs)
    )


def test_with_nothing_due_and_nothing_ever_changed_nrr_and_grr_are_one():
    f = by_key(rf.nrr_forecast(booked_book(with_changes=False), AS_OF, n_sims=50, random_state=1))
    for metric in ("nrr", "grr"):
        assert f[("total", metric)].p10 == f[("total", metric)].p90 == 1.0
    assert f[("total", "nrr")].renewals_due == 0 and f[("total", "nrr")].base_mrr == pytest.approx(2200.0)


def test_changes_already_booked_move_nrr_and_grr_by_exactly_what_the_ledger_holds():
    f = by_key(rf.nrr_forecast(booked_book(with_changes=True), AS_OF, n_sims=50, random_state=1))
    # Base: C 2,000 + E 200 + F 1,000 + G 1,000 = 4,200; June 2025: C 2,000, E 200, F 1,300, G 0.
    assert f[("total", "nrr")].p10 == f[("total", "nrr")].p90 == pytest.approx(3500 / 4200)
    assert f[("total", "grr")].p10 == f[("total", "grr")].p90 == pytest.approx(3200 / 4200)
    assert f[("total", "nrr")].renewals_due == 0  # G was terminated: nothing left to renew


def coin_book(n: int = 200) -> rf.Book:
    """Z's renewal in January 2024 at 1.2x is the only history; n customers (MRR 100 each) end in December."""
    con = [
        contract("z0", "Z", "2023-01-01", "2023-12-31", 12),
        contract("z1", "Z", "2024-01-01", "2025-12-31", 24, renews="z0", created="2023-12-15"),
    ]
    subs = [
        sub("s-z0", "z0", "Z", "2023-01-01", "2023-12-31", 10, price=120.0),
        sub("s-z1", "z1", "Z", "2024-01-01", "2025-12-31", 12, price=240.0, prorate=2.0, created="2023-12-15"),
    ]
    for i in range(n):
        con.append(contract(f"k{i}", f"K{i}", "2024-01-01", "2024-12-31", 12))
        subs.append(sub(f"s-k{i}", f"k{i}", f"K{i}", "2024-01-01", "2024-12-31", 1))
    return make_book(
        accounts=accounts({"Z": "SMB", **{f"K{i}": "SMB" for i in range(n)}}),
        products=PRODUCTS,
        contracts=pd.DataFrame(con),
        subscriptions=pd.DataFrame(subs),
    )


def test_independent_coin_flip_renewals_give_the_binomial_distribution():
    n, n_sims = 200, 4000
    p = pd.Series(0.5, index=[f"k{i}" for i in range(n)])
    sims = rf.nrr_simulations(coin_book(n), AS_OF, renewal_probabilities=p, n_sims=n_sims, random_state=3)
    nrr = sims.loc[sims["metric"] == "nrr", "value"].to_numpy()
    # Base 120 (Z) + 100 n; each renewal brings back 120 with probability 1/2: NRR = (120 + 120 K) / base,
    # K ~ Binomial(n, 1/2).
    base = 120 + 100 * n
    mean, sd = (120 + 120 * n * 0.5) / base, 120 * np.sqrt(n * 0.25) / base
    assert abs(nrr.mean() - mean) < 4 * sd / np.sqrt(n_sims)
    assert nrr.std() == pytest.approx(sd, rel=0.05)
    k = np.round((nrr * base - 120) / 120)
    assert np.allclose(k * 120 + 120, nrr * base)  # every simulation is a whole number of renewals
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(k, q) - stats.binom.ppf(q, n, 0.5)) <= 1
    f = by_key(rf.nrr_forecast(coin_book(n), AS_OF, renewal_probabilities=p, n_sims=n_sims, random_state=3))
    assert f[("total", "nrr")].mean == pytest.approx(nrr.mean())
    assert f[("total", "nrr")].p90 == pytest.approx(np.quantile(nrr, 0.9))


def test_renewals_due_without_a_probability_or_any_history_leave_the_forecast_undefined():
    book = coin_book(3)
    book = book.replace(
        contracts=book.contracts[book.contracts["contract_id"] != "z0"].assign(renewed_contract_id=pd.NA),
        subscriptions=book.subscriptions[book.subscriptions["contract_id"] != "z0"],
    )
    f = rf.nrr_forecast(book, AS_OF, n_sims=10)
    assert f[["mean", "p10", "p50", "p90"]].isna().all().all()
    assert f["base_customers"].tolist() == [4, 4] and f["renewals_due"].tolist() == [3, 3]
    # With probabilities for the contracts due, it is defined again.
    scores = pd.Series(1.0, index=["k0", "k1", "k2"])
    f = by_key(rf.nrr_forecast(book, AS_OF, renewal_probabilities=scores, n_sims=10))
    assert f[("total", "nrr")].mean == pytest.approx((120 + 3 * 100) / (120 + 300))  # no history: ratio 1


# ------------------------------------------------------------------ the demo org


D = "2025-06-15"


def test_grr_never_exceeds_one_or_nrr_in_any_simulation(demo_book):
    sims = rf.nrr_simulations(demo_book, D, by="segment", n_sims=300, random_state=0)
    wide = sims.pivot_table(index=["sim", "group"], columns="metric", values="value")
    assert len(wide) == 300 * sims["group"].nunique()
    assert (wide["grr"] <= wide["nrr"] + 1e-12).all() and (wide["grr"] <= 1 + 1e-12).all()
    assert (wide["grr"] >= 0).all()


def test_the_forecast_uses_only_what_was_known_at_the_as_of_date(demo_book):
    full = rf.nrr_forecast(demo_book, D, by="segment", n_sims=200, random_state=5)
    cut = rf.nrr_forecast(demo_book.as_of(D), D, by="segment", n_sims=200, random_state=5)
    pd.testing.assert_frame_equal(full, cut)
    pd.testing.assert_frame_equal(rf.nrr_outcome_rates(demo_book, D), rf.nrr_outcome_rates(demo_book.as_of(D), D))


def test_its_base_is_retention_kpis_base_a_year_later(demo_book):
    f = rf.nrr_forecast(demo_book, "2025-06-30", by="segment", n_sims=20, random_state=0)
    later = rf.retention_kpis(demo_book, "2026-06-30", by="segment").set_index("segment")
    whole = rf.retention_kpis(demo_book, "2026-06-30").iloc[0]
    nrr = f[f["metric"] == "nrr"].set_index("group")
    assert nrr.loc["total", "base_mrr"] == pytest.approx(whole["base_mrr"])
    assert nrr.loc["total", "base_customers"] == whole["base_customers"]
    for seg, row in later.iterrows():
        assert nrr.loc[seg, "base_mrr"] == pytest.approx(row["base_mrr"])


def test_the_whole_book_does_not_depend_on_the_grouping(demo_book):
    alone = rf.nrr_forecast(demo_book, D, n_sims=100, random_state=2)
    grouped = rf.nrr_forecast(demo_book, D, by="segment", n_sims=100, random_state=2)
    pd.testing.assert_frame_equal(alone, grouped[grouped["group"] == "total"].reset_index(drop=True))


@pytest.fixture(scope="module")
def small_backtest(tmp_path_factory):
    org = rf.write_demo_org(tmp_path_factory.mktemp("nrr") / "org", accounts=400, seed=5)
    book = rf.load_book(org.path)
    origins = rf.nrr_backtest_origins(book, step_months=2)[-12:]
    return book, origins, rf.nrr_backtest(book, origins, by="segment", n_sims=200)


def test_backtest_origins_end_a_horizon_before_the_data(small_backtest):
    book, origins, _ = small_backtest
    every = rf.nrr_backtest_origins(book)
    assert every[-1] == T("2025-10-31")  # the export is 31 October 2026
    assert all((b.to_period("M") - a.to_period("M")).n == 1 for a, b in itertools.pairwise(every))
    assert origins == rf.nrr_backtest_origins(book, step_months=2)[-12:]


def test_backtest_detail_holds_the_realised_and_naive_kpis_and_the_summary_is_computed_from_it(small_backtest):
    book, origins, bt = small_backtest
    d = bt.detail
    assert set(d["origin"]) == set(origins) and set(d["metric"]) == {"nrr", "grr"}
    # Realised: retention_kpis a year after the origin; naive: retention_kpis at the origin.
    o = origins[3]
    row = d[(d["origin"] == o) & (d["group"] == "total")].set_index("metric")
    after = rf.retention_kpis(book, o + pd.offsets.MonthEnd(12)).iloc[0]
    before = rf.retention_kpis(book, o).iloc[0]
    for metric in ("nrr", "grr"):
        assert row.loc[metric, "realised"] == after[metric] and row.loc[metric, "naive"] == before[metric]
    seg = d[(d["origin"] == o) & (d["group"] == "SMB") & (d["metric"] == "nrr")].iloc[0]
    assert (
        seg["realised"]
        == rf.retention_kpis(book, o + pd.offsets.MonthEnd(12), by="segment").set_index("segment").loc["SMB", "nrr"]
    )
    # The summary, recomputed from the forecasts, quantiles, realised and naive values alone.
    summary = bt.summary().set_index(["group", "metric"])
    for (group, metric), rows in d.groupby(["group", "metric"]):
        rows = rows.dropna(subset=["realised", "naive", "forecast"])
        got = summary.loc[(group, metric)]
        assert got["origins"] == len(rows)
        assert got["mae"] == pytest.approx(np.mean(np.abs(rows["forecast"] - rows["realised"])))
        assert got["mae_naive"] == pytest.approx(np.mean(np.abs(rows["naive"] - rows["realised"])))
        assert got["bias"] == pytest.approx(np.mean(rows["forecast"] - rows["realised"]))
        inside = [lo <= r <= hi for lo, r, hi in zip(rows["p10"], rows["realised"], rows["p90"], strict=True)]
        assert got["coverage_p10_p90"] == pytest.approx(np.mean(inside))
        assert got["beats_naive"] == (got["mae"] < got["mae_naive"])


def test_backtest_refuses_an_origin_whose_year_has_not_ended(small_backtest):
    book, _, _ = small_backtest
    with pytest.raises(rf.RenewForecastError, match="last complete month"):
        rf.nrr_backtest(book, ["2026-01-31"], n_sims=10)


def decided_book(renewed_of: dict[str, tuple[int, int]]) -> rf.Book:
    """Per segment, (renewed, decided) first renewals of equal contracts (MRR 100) ending 2023-12-31."""
    segments, contracts, subs = {}, [], []
    for seg, (renewed, decided) in renewed_of.items():
        for i in range(decided):
            acct, cid = f"{seg}{i}", f"{seg}{i}-0"
            segments[acct] = seg
            contracts.append(contract(cid, acct, "2023-01-01", "2023-12-31", 12))
            subs.append(sub(f"s-{cid}", cid, acct, "2023-01-01", "2023-12-31", 1))
            if i < renewed:
                contracts.append(contract(f"{seg}{i}-1", acct, "2024-01-01", "2024-12-31", 12, renews=cid))
                subs.append(sub(f"s-{seg}{i}-1", f"{seg}{i}-1", acct, "2024-01-01", "2024-12-31", 1))
    return make_book(
        accounts=accounts(segments),
        products=PRODUCTS,
        contracts=pd.DataFrame(contracts),
        subscriptions=pd.DataFrame(subs),
    )


def test_segments_that_differ_by_chance_are_pooled_and_segments_that_truly_differ_keep_their_rates():
    # 11 and 9 renewed of 20 each: a spread smaller than chance alone gives (between-segment variance
    # 0), so each segment's prior is the whole book's 50 % and its rate (11 + 30 x 0.5) / (20 + 30).
    rates = rf.nrr_outcome_rates(decided_book({"Up": (11, 20), "Down": (9, 20)}), AS_OF).set_index("segment")
    assert rates.loc["Up", "renewal_rate_1"] == pytest.approx(26 / 50)
    assert rates.loc["Down", "renewal_rate_1"] == pytest.approx(24 / 50)
    assert rates.loc["total", "renewal_rate_1"] == pytest.approx(0.5)
    # All and none of 20 renewed: the spread is as wide as it can be, so each segment's prior is its own rate.
    rates = rf.nrr_outcome_rates(decided_book({"Hi": (20, 20), "Lo": (0, 20)}), AS_OF).set_index("segment")
    assert rates.loc["Hi", "renewal_rate_1"] == pytest.approx(1.0, abs=1e-5)
    assert rates.loc["Lo", "renewal_rate_1"] == pytest.approx(0.0, abs=1e-5)


def one_cell_history(renewed: int, decided: int) -> nrr_forecast._History:
    """One segment whose past decisions, at equal ARR, are all first renewals: one cell holds every decision."""
    kept = np.r_[np.ones(renewed), np.zeros(decided - renewed)]
    counts = np.zeros((1, 4, 4))
    counts[0, 0] = decided, decided, decided, renewed
    empty = np.zeros(1)
    no_pool = nrr_forecast._Pool.of(np.zeros(0), np.zeros(0, dtype=np.int64), 1)
    return nrr_forecast._History(
        segments=["S"],
        decisions=counts,
        decision_cell=np.zeros(decided, dtype=np.int64),
        decision_sums=(np.ones(decided), np.ones(decided), kept),
        classes=np.zeros((1, 3)),
        ratios=(no_pool, no_pool, no_pool),
        exposure=empty,
        ups=empty,
        downs=empty,
        up_sizes=no_pool,
        down_sizes=no_pool,
        term_exposure=empty,
        terminations=empty,
        ever_exposure=empty,
        cancellations=empty,
        rho=0.0,
    )


@pytest.mark.parametrize(("renewed", "decided", "draws"), [(15, 30, 20_000), (1000, 2000, 4000)])
def test_a_cells_drawn_rate_carries_its_own_decisions_uncertainty_once(renewed, decided, draws):
    # Half of the decisions renewed, all first renewals of one segment at equal ARR: the prior is the
    # cell's own rate, so each draw is (N p + 30 theta0) / (N + 30) with, in the resample, N ~ Poisson(n)
    # decisions, p ~ Binomial(N, 1/2) / N and theta0 ~ Beta(30 p, 30 (1 - p)). Its variance is
    # Var(p) + E[(30 / (N + 30))^2 p (1 - p) / 31] = E[1/(4N)] + E[(30 / (N + 30))^2 (1 - 1/N) / 4] / 31:
    # for many decisions the binomial 1/(4n), not twice it. A second renewal, never seen, draws theta0
    # around the first renewals' rate: E[1/(4N)] + E[(1 - 1/N) / 4] / 31.
    n = np.arange(1, 4 * decided)
    pmf = stats.poisson.pmf(n, decided)
    pmf /= pmf.sum()
    var_p = np.sum(pmf / (4 * n))
    share = np.sum(pmf * (1 - 1 / n) / 4)
    rates = nrr_forecast._renewal_draws(np.random.default_rng(5), one_cell_history(renewed, decided), draws)
    assert rates[:, 0, 0].mean() == pytest.approx(0.5, abs=0.005)
    first = var_p + np.sum(pmf * (30 / (n + 30)) ** 2 * (1 - 1 / n) / 4) / 31
    assert rates[:, 0, 0].var() == pytest.approx(first, rel=0.08)
    assert rates[:, 0, 1].var() == pytest.approx(var_p + share / 31, rel=0.08)
