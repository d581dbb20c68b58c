"""Bottom-up revenue forecast at scale: 100,000 contracts, 1,000 simulations, 36 months.

Workload: a generated book (numpy, seeded, built in about a second) as of
31 December 2025 of about 100,000 contracts over 30,000 accounts (with a
``segment``): fixed-term contracts of 12, 24 or 36 months started over the
three years before the as-of date (so that they all end, and many renew and
renew again, inside the horizon), with one to three 12-month subscription rows
each and a same / list / uplift renewal pricing mix; a renewal history of
past contracts renewed by a later contract or churned with a closed lost
renewal opportunity; renewals already booked for some contracts ending soon,
and open renewal quotes for others; about 3 % evergreen contracts on a
monthly product, some terminated in the past; an open pipeline of about
5,000 new-business and upsell deals with subscription lines and export
schedule rows (Divide, monthly, 12 installments); and closed deals of the
last two years with stage history to calibrate win rates by stage.

Timed: ``revenue_forecast(book, as_of, horizon_months=36, n_sims=1000,
random_state=0)`` with its default options (new business on). Prints the
workload, the median of the parts (private helpers timed by wrapping them),
the answer checks, peak memory, the target and the median seconds last.

Answer checks (exit 1 when one fails):

- contracted revenue with ``evergreen_hazard=0.0`` (no evergreen churn) equals
  :func:`renewforecast.recognized_revenue` of the book known at the as-of
  date, to the cent, in every forecast month;
- in the timed run, contracted revenue lies between that reference without
  the evergreen contracts and that reference with them;
- in the first 12 months (first renewals only), the renewal mean is within
  four standard errors of a naive expectation: probability x renewal MRR x
  days covered / days in month per contract and month.

    .venv/bin/python benchmarks/bench_forecast.py [--contracts 100000] [--sims 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections import defaultdict

import numpy as np
import pandas as pd

import renewforecast as rf
from renewforecast.analyses.forecast import assembly as fc_mod  # where the forecast looks its stages up
from renewforecast.dates import add_months  # the schedules' month rule
from renewforecast.schemas import TABLES, conform

AS_OF = "2025-12-31"
HORIZON = 36
TARGET = 20.0
STAGES = (
    ("Prospecting", 0.1),
    ("Qualification", 0.2),
    ("Needs Analysis", 0.3),
    ("Proposal", 0.5),
    ("Negotiation/Review", 0.75),
)


def make_book(**tables: pd.DataFrame) -> rf.Book:
    """A Book from canonical tables (the rest empty), as tests/_support.py builds them."""
    full = {name: conform(tables.get(name, pd.DataFrame()), name) for name in TABLES}
    return rf.Book(**full)


def _ids(prefix: str, n: int, start: int = 0) -> np.ndarray:
    return np.char.add(prefix, np.arange(start, start + n).astype(str)).astype(object)


def _days(n) -> np.ndarray:
    return np.asarray(n, dtype=np.int64).astype("timedelta64[D]")


def build_book(n_contracts: int = 100_000, n_accounts: int = 30_000, n_open: int = 5_000, seed: int = 0) -> rf.Book:
    rng = np.random.default_rng(seed)
    cut = np.datetime64(AS_OF)

    # Accounts: customers with a live contract, lost customers (churned only), prospects.
    n_live = int(n_accounts * 0.83)
    n_lost = int(n_accounts * 0.07)
    acc_ids = _ids("A", n_accounts)
    segment = rng.choice(np.array(["SMB", "Mid-Market", "Enterprise"], dtype=object), n_accounts, p=[0.6, 0.3, 0.1])
    seg_code = np.select([segment == "SMB", segment == "Mid-Market"], [0, 1], 2)
    accounts = pd.DataFrame(
        {
            "account_id": acc_ids,
            "name": np.char.add("Account ", np.arange(n_accounts).astype(str)).astype(object),
            "segment": segment,
            "region": rng.choice(np.array(["NA", "EMEA", "APAC"], dtype=object), n_accounts, p=[0.5, 0.35, 0.15]),
            "created_date": (np.datetime64("2018-01-01") + _days(rng.integers(0, 365, n_accounts))),
        }
    )

    # Contract counts.
    n_ever = round(n_contracts * 0.03)
    n_churn = round(n_contracts * 0.05)
    n_pred = round(n_contracts * 0.24)
    n_booked = round(n_contracts * 0.02)
    n_cur = n_contracts - n_ever - n_churn - n_pred - n_booked

    # Current fixed-term contracts: started within one term before the as-of date.
    cur_acct = np.concatenate([np.arange(n_live), rng.integers(0, n_live, max(0, n_cur - n_live))])[:n_cur]
    cur_term = rng.choice([12, 24, 36], n_cur, p=[0.6, 0.25, 0.15])
    cur_start = cut - _days((rng.random(n_cur) * (cur_term * 30 - 1)).astype(np.int64))
    cur_end = add_months(cur_start, cur_term) - _days(1)

    # Renewals already booked for the contracts ending soonest.
    booked_of = np.argsort(cur_end, kind="stable")[:n_booked]
    bk_acct, bk_term = cur_acct[booked_of], cur_term[booked_of]
    bk_start = cur_end[booked_of] + _days(1)
    bk_end = add_months(bk_start, bk_term) - _days(1)

    # Predecessors of current contracts (renewed by them), more often for larger segments.
    w = np.array([0.8, 1.0, 1.3])[seg_code[cur_acct]]
    pred_of = np.sort(rng.choice(n_cur, n_pred, replace=False, p=w / w.sum()))
    pr_acct, pr_term = cur_acct[pred_of], cur_term[pred_of]
    pr_end = cur_start[pred_of] - _days(1)
    pr_start = add_months(pr_end + _days(1), -pr_term)

    # Churned contracts: ended in the 24 months before the as-of date; lost renewal opportunity.
    wc = np.array([1.6, 1.0, 0.6])[seg_code[: n_live + n_lost]]
    ch_acct = np.where(
        rng.random(n_churn) < 0.4,
        n_live + rng.integers(0, max(n_lost, 1), n_churn),
        rng.choice(n_live + n_lost, n_churn, p=wc / wc.sum()),
    )
    ch_term = rng.choice([12, 24, 36], n_churn, p=[0.6, 0.25, 0.15])
    ch_end = cut - _days(rng.integers(1, 730, n_churn))
    ch_start = add_months(ch_end + _days(1), -ch_term)

    # Evergreen contracts on the monthly product; a fifth terminated in the past.
    ev_acct = rng.integers(0, n_live, n_ever)
    ev_start = cut - _days(rng.integers(30, 4 * 365, n_ever))
    ev_life = rng.exponential(20 * 30.4, n_ever).astype(np.int64) + 15
    ev_term = np.where(
        (rng.random(n_ever) < 0.2) & (ev_start + _days(ev_life) < cut), ev_start + _days(ev_life), np.datetime64("NaT")
    )

    # Contract table, fixed-term parts in this order: current, booked, predecessors, churned.
    kinds = [
        ("cur", cur_acct, cur_term, cur_start, cur_end),
        ("bk", bk_acct, bk_term, bk_start, bk_end),
        ("pr", pr_acct, pr_term, pr_start, pr_end),
        ("ch", ch_acct, ch_term, ch_start, ch_end),
    ]
    c_acct = np.concatenate([k[1] for k in kinds] + [ev_acct])
    c_term = np.concatenate([k[2] for k in kinds]).astype("float64")
    c_start = np.concatenate([k[3] for k in kinds] + [ev_start])
    c_end = np.concatenate([k[4] for k in kinds])
    n_fixed = len(c_term)
    n_all = n_fixed + n_ever
    off = np.cumsum([0] + [len(k[1]) for k in kinds])  # offsets of each kind
    con_ids = _ids("C", n_all)
    renewed_id = np.full(n_all, None, dtype=object)
    renewed_id[off[0] + pred_of] = con_ids[off[2] : off[3]]  # current renews its predecessor
    renewed_id[off[1] : off[2]] = con_ids[off[0] + booked_of]  # booked renews current
    method = rng.choice(np.array(["same", "list", "uplift"], dtype=object), n_fixed, p=[0.4, 0.3, 0.3])
    uplift = np.where(method == "uplift", rng.choice([0.03, 0.05, 0.07], n_fixed), np.nan)
    created = c_start - _days(rng.integers(5, 40, n_all))
    created[off[1] : off[2]] = np.minimum(created[off[1] : off[2]], cut - _days(rng.integers(0, 20, n_booked)))
    contracts = pd.DataFrame(
        {
            "contract_id": con_ids,
            "account_id": acc_ids[c_acct],
            "start_date": c_start,
            "end_date": np.concatenate([c_end, np.full(n_ever, np.datetime64("NaT"), dtype="datetime64[D]")]),
            "term_months": np.concatenate([c_term, np.full(n_ever, np.nan)]),
            "status": "Activated",
            "evergreen": np.r_[np.zeros(n_fixed, bool), np.ones(n_ever, bool)],
            "renewal_pricing_method": np.concatenate([method, np.full(n_ever, None, dtype=object)]),
            "renewal_uplift_rate": np.concatenate([uplift, np.full(n_ever, np.nan)]),
            "renewed_contract_id": renewed_id,
            "created_date": created,
        }
    )

    # Subscription rows: 1-3 per fixed-term contract (core, add-on, support; 12-month products).
    n_rows = rng.choice([1, 2, 3], n_fixed, p=[0.5, 0.3, 0.2])
    big = np.array([1.0, 2.5, 8.0])[seg_code[c_acct[:n_fixed]]]
    core_price = np.round(rng.uniform(200, 1500, n_fixed), 2)
    qty0 = np.maximum(1, np.round(rng.gamma(2.0, 5.0, n_fixed) * big))
    # A renewal keeps its predecessor's lines at the predecessor's price times the method's factor.
    pred_rows = off[2] + np.arange(n_pred)
    cur_rows = off[0] + pred_of
    factor = np.select(
        [method[pred_rows] == "uplift", method[pred_rows] == "list"], [1 + np.nan_to_num(uplift[pred_rows]), 1.03], 1.0
    ) * rng.normal(1.0, 0.01, n_pred)
    n_rows[pred_rows] = n_rows[cur_rows]
    qty0[pred_rows] = qty0[cur_rows]
    core_price[pred_rows] = np.round(core_price[cur_rows] / factor, 2)
    bk_rows = off[1] + np.arange(n_booked)
    src = off[0] + booked_of
    n_rows[bk_rows] = n_rows[src]
    qty0[bk_rows] = qty0[src]
    core_price[bk_rows] = np.round(core_price[src] * 1.03, 2)
    con_of_row = np.repeat(np.arange(n_fixed), n_rows)
    k_in = np.arange(len(con_of_row)) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    product = np.array(["P-CORE", "P-ADDON", "P-SUPPORT"], dtype=object)[k_in]
    unit = np.where(
        k_in == 0,
        core_price[con_of_row],
        np.where(k_in == 1, np.round(core_price[con_of_row] * 0.25, 2), np.round(core_price[con_of_row] * 0.15, 2)),
    )
    qty = np.where(k_in == 2, 1.0, np.maximum(1.0, qty0[con_of_row] * np.where(k_in == 1, 0.5, 1.0)).round())
    prorate = c_term[con_of_row] / 12.0
    n_ev_rows = n_ever
    ev_qty = rng.integers(1, 30, n_ever).astype(float)
    ev_price = np.round(rng.uniform(10, 150, n_ever), 2)
    subs = pd.DataFrame(
        {
            "subscription_id": _ids("S", len(con_of_row) + n_ev_rows),
            "contract_id": np.concatenate([con_ids[con_of_row], con_ids[n_fixed:]]),
            "account_id": np.concatenate([acc_ids[c_acct[con_of_row]], acc_ids[ev_acct]]),
            "product_id": np.concatenate([product, np.full(n_ever, "P-MONTHLY", dtype=object)]),
            "start_date": np.concatenate([c_start[con_of_row], ev_start]),
            "end_date": np.concatenate(
                [c_end[con_of_row], np.full(n_ever, np.datetime64("NaT"), dtype="datetime64[D]")]
            ),
            "quantity": np.concatenate([qty, ev_qty]),
            "net_price": np.concatenate([np.round(unit * prorate, 2), ev_price]),
            "prorate_multiplier": np.concatenate([prorate, np.ones(n_ever)]),
            "terminated_date": np.concatenate(
                [np.full(len(con_of_row), np.datetime64("NaT"), dtype="datetime64[D]"), ev_term]
            ),
            "created_date": np.concatenate([created[con_of_row], created[n_fixed:]]),
        }
    )
    products = pd.DataFrame(
        {
            "product_id": ["P-CORE", "P-ADDON", "P-SUPPORT", "P-MONTHLY"],
            "name": ["Core platform", "Add-on", "Premium support", "Monthly plan"],
            "family": ["Platform", "Platform", "Services", "Platform"],
            "subscription_term_months": [12.0, 12.0, 12.0, 1.0],
        }
    )

    # Renewal opportunities: lost for churned contracts; open quotes for some contracts ending soon.
    arr_fixed = np.bincount(con_of_row, weights=qty * unit, minlength=n_fixed)
    ch_ids = con_ids[off[3] : off[4]]
    soon = np.setdiff1d(np.nonzero(cur_end <= cut + _days(120))[0], booked_of)
    soon = soon[rng.random(len(soon)) < 0.5]
    n_ren_lost, n_ren_open = len(ch_ids), len(soon)
    q_term = cur_term[soon]
    ren = pd.DataFrame(
        {
            "opportunity_id": _ids("R", n_ren_lost + n_ren_open),
            "account_id": acc_ids[np.concatenate([ch_acct, cur_acct[soon]])],
            "type": "renewal",
            "stage": np.concatenate(
                [np.full(n_ren_lost, "Closed Lost", dtype=object), np.full(n_ren_open, "Proposal", dtype=object)]
            ),
            "probability": np.r_[np.zeros(n_ren_lost), np.full(n_ren_open, 0.6)],
            "close_date": np.concatenate([ch_end - _days(rng.integers(0, 30, n_ren_lost)), cur_end[soon]]),
            "is_closed": np.r_[np.ones(n_ren_lost, bool), np.zeros(n_ren_open, bool)],
            "is_won": False,
            "amount": np.r_[
                arr_fixed[off[3] : off[4]] * ch_term / 12.0,
                np.round(arr_fixed[soon] * rng.uniform(0.95, 1.08, n_ren_open) * q_term / 12.0, 2),
            ],
            "renewed_contract_id": np.concatenate([ch_ids, con_ids[soon]]),
            "created_date": np.concatenate(
                [
                    ch_end - _days(rng.integers(60, 120, n_ren_lost)),
                    np.minimum(cur_end[soon] - _days(90), cut - _days(1)),
                ]
            ),
        }
    )

    # Closed new-business / upsell deals of the last 24 months, with stage history.
    n_closed = 6_000
    cl_nb = rng.random(n_closed) < 0.5
    cl_acct = np.where(cl_nb, rng.integers(n_live, n_accounts, n_closed), rng.integers(0, n_live, n_closed))
    reached = rng.choice(len(STAGES), n_closed, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    won = rng.random(n_closed) < np.array([0.02, 0.08, 0.2, 0.45, 0.7])[reached]
    cl_close = cut - _days(rng.integers(0, 729, n_closed))
    cl_created = cl_close - _days(rng.integers(30, 200, n_closed))
    closed = pd.DataFrame(
        {
            "opportunity_id": _ids("W", n_closed),
            "account_id": acc_ids[cl_acct],
            "type": np.where(cl_nb, "new_business", "upsell").astype(object),
            "stage": np.where(won, "Closed Won", "Closed Lost").astype(object),
            "probability": won.astype(float),
            "close_date": cl_close,
            "is_closed": True,
            "is_won": won,
            "amount": np.round(rng.uniform(2_000, 60_000, n_closed), 2),
            "created_date": cl_created,
        }
    )

    # Open pipeline: stages, CRM probabilities, lines for subscription products, 12 monthly installments.
    op_nb = rng.random(n_open) < 0.5
    op_acct = np.where(op_nb, rng.integers(n_live, n_accounts, n_open), rng.integers(0, n_live, n_open))
    op_stage = rng.choice(len(STAGES), n_open, p=[0.25, 0.25, 0.2, 0.18, 0.12])
    op_close = cut + _days(rng.integers(1, 270, n_open))
    op_created = cut - _days(rng.integers(10, 180, n_open))
    op_ids = _ids("O", n_open)
    n_lines = rng.choice([1, 2], n_open, p=[0.7, 0.3])
    line_opp = np.repeat(np.arange(n_open), n_lines)
    line_k = np.arange(len(line_opp)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    l_qty = np.maximum(1.0, np.round(rng.gamma(2.0, 5.0, len(line_opp))))
    l_unit = np.round(
        np.where(line_k == 0, rng.uniform(200, 1500, len(line_opp)), rng.uniform(50, 400, len(line_opp))), 2
    )
    l_total = np.round(l_qty * l_unit, 2)
    l_service = op_close[line_opp] + _days(rng.integers(0, 31, len(line_opp)))
    line_ids = _ids("L", len(line_opp))
    amount = np.bincount(line_opp, weights=l_total, minlength=n_open)
    pipe = pd.DataFrame(
        {
            "opportunity_id": op_ids,
            "account_id": acc_ids[op_acct],
            "type": np.where(op_nb, "new_business", "upsell").astype(object),
            "stage": np.array([s for s, _ in STAGES], dtype=object)[op_stage],
            "probability": np.array([p for _, p in STAGES])[op_stage],
            "close_date": op_close,
            "is_closed": False,
            "is_won": False,
            "amount": amount,
            "created_date": op_created,
        }
    )
    lines = pd.DataFrame(
        {
            "line_id": line_ids,
            "opportunity_id": op_ids[line_opp],
            "product_id": np.where(line_k == 0, "P-CORE", "P-ADDON").astype(object),
            "quantity": l_qty,
            "unit_price": l_unit,
            "total_price": l_total,
            "service_date": l_service,
        }
    )
    # Divide, monthly, 12 installments: 11 x the total / 12 truncated to the cent, the last the remainder.
    cents = np.round(l_total * 100).astype(np.int64)
    each = cents // 12
    inst = np.tile(np.arange(12), len(line_ids))
    sched_rev = np.where(inst == 11, np.repeat(cents - 11 * each, 12), np.repeat(each, 12)) / 100.0
    schedules = pd.DataFrame(
        {
            "schedule_id": _ids("X", 12 * len(line_ids)),
            "line_id": np.repeat(line_ids, 12),
            "schedule_date": add_months(np.repeat(l_service, 12), inst),
            "type": "revenue",
            "revenue": sched_rev,
        }
    )

    # Stage history: one row per stage reached (closed deals end with their closing stage).
    def history(ids, created, last, reached_stage, closing_stage=None):
        n_h = reached_stage + 1
        rows = np.repeat(np.arange(len(ids)), n_h)
        k = np.arange(len(rows)) - np.repeat(np.cumsum(n_h) - n_h, n_h)
        span = np.maximum((last - created).astype(np.int64), 1)
        when = created[rows] + _days((span[rows] * k / (n_h[rows] + 1)).astype(np.int64))
        h = pd.DataFrame(
            {
                "opportunity_id": ids[rows],
                "created_date": when,
                "stage": np.array([s for s, _ in STAGES], dtype=object)[k],
                "probability": np.array([p for _, p in STAGES])[k],
                "close_date": last[rows],
            }
        )
        if closing_stage is not None:
            h = pd.concat(
                [
                    h,
                    pd.DataFrame(
                        {
                            "opportunity_id": ids,
                            "created_date": last,
                            "stage": closing_stage,
                            "probability": closing_stage == "Closed Won",
                            "close_date": last,
                        }
                    ),
                ],
                ignore_index=True,
            )
        return h

    hist = pd.concat(
        [
            history(
                closed["opportunity_id"].to_numpy(),
                cl_created,
                cl_close,
                reached,
                np.where(won, "Closed Won", "Closed Lost").astype(object),
            ),
            history(op_ids, op_created, np.minimum(op_close, cut), op_stage),
        ],
        ignore_index=True,
    )
    hist["probability"] = hist["probability"].astype(float)

    opps = pd.concat([ren, closed, pipe], ignore_index=True)
    return make_book(
        accounts=accounts,
        products=products,
        contracts=contracts,
        subscriptions=subs,
        opportunities=opps,
        opportunity_lines=lines,
        schedules=schedules,
        opportunity_history=hist,
    )


def _month_frac(first: np.ndarray, last: np.ndarray, months: pd.DatetimeIndex) -> np.ndarray:
    """Rows x months: share of each month's days inside [first, last] (naive, month by month)."""
    out = np.zeros((len(first), len(months)))
    first = first.astype("datetime64[D]")
    last = last.astype("datetime64[D]")
    for j, m_end in enumerate(months):
        m_end = np.datetime64(m_end.date())
        m_start = m_end.astype("datetime64[M]").astype("datetime64[D]")
        days = (np.minimum(last, m_end) - np.maximum(first, m_start)).astype(np.int64) + 1
        out[:, j] = np.clip(days, 0, None) / ((m_end - m_start).astype(np.int64) + 1)
    return out


def component(fc: rf.RevenueForecast, name: str) -> pd.DataFrame:
    return fc.rows(name).set_index("month")


def check(book: rf.Book, fc: rf.RevenueForecast) -> list[str]:
    """Failures of the answer checks (empty when all pass)."""
    failures = []
    view = book.as_of(AS_OF)
    months = component(fc, "contracted").index
    start, end = months[0], months[-1]
    # 1. No evergreen churn: contracted == recognised revenue of everything booked, to the cent.
    flat = rf.revenue_forecast(
        book, AS_OF, horizon_months=HORIZON, n_sims=20, random_state=1, evergreen_hazard=0.0, new_business=False
    )
    ref = rf.recognized_revenue(view, start, end).set_index("month")["revenue"]
    got = component(flat, "contracted")["mean"]
    worst = float(np.max(np.abs(got.to_numpy() - ref.reindex(got.index).to_numpy())))
    print(
        f"check contracted (no evergreen churn) vs recognized_revenue: {len(got)} months, "
        f"largest difference {worst:.4f}"
    )
    if not worst <= 0.0101:
        failures.append(f"contracted differs from recognized_revenue by {worst:.4f}")
    # 2. Timed run: between the reference without evergreen contracts and with them.
    ever = set(view.contracts.loc[view.contracts["evergreen"].fillna(False).astype(bool), "contract_id"])
    fixed_only = view.replace(subscriptions=view.subscriptions[~view.subscriptions["contract_id"].isin(ever)])
    lo_ref = rf.recognized_revenue(fixed_only, start, end).set_index("month")["revenue"].to_numpy()
    c = component(fc, "contracted")["mean"].to_numpy()
    if not (np.all(c >= lo_ref - 0.0101) and np.all(c <= ref.to_numpy() + 0.0101)):
        failures.append("contracted of the timed run is outside [fixed-term revenue, all booked revenue]")
    # 3. First 12 months: first renewals only; the mean against a naive expectation.
    det = fc.renewal.contracts
    end_d = det["end_date"].to_numpy(dtype="datetime64[D]")
    con = view.contracts.set_index("contract_id")
    term = det["contract_id"].map(con["term_months"]).to_numpy(dtype=np.int64)
    r_first = end_d + np.timedelta64(1, "D")
    r_last = add_months(r_first, term) - np.timedelta64(1, "D")
    frac = _month_frac(r_first, r_last, months[:12])
    expected = (det["probability"].to_numpy() * det["renewal_arr"].to_numpy() / 12.0) @ frac
    ren = component(fc, "renewal").iloc[:12]
    se = (ren["p90"] - ren["p10"]).to_numpy() / (2 * 1.2816) / np.sqrt(fc.n_sims)
    gap = np.abs(ren["mean"].to_numpy() - expected)
    print(
        f"check first-year renewal mean vs naive expectation: largest gap {gap.max():,.2f} "
        f"({(gap / np.maximum(se, 1e-9)).max():.2f} standard errors)"
    )
    if not np.all(gap <= 4 * se + 0.01):
        failures.append("renewal mean is more than 4 standard errors from the naive expectation")
    return failures


PARTS = (
    "booked_revenue",
    "renewal_stages",
    "pipeline_deals",
    "simulate_evergreen",
    "simulate_revenue",
    "new_business_revenue",
    "_summarise",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=30_000)
    parser.add_argument("--open-deals", type=int, default=5_000)
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    book = build_book(args.contracts, args.accounts, args.open_deals)
    built = time.perf_counter() - t0

    # Time the parts by wrapping the private helpers the forecast calls.
    spent: dict[str, float] = defaultdict(float)
    returned: dict[str, object] = {}
    originals = {name: getattr(fc_mod, name) for name in PARTS if hasattr(fc_mod, name)}

    def timed(name, fn):
        def wrapper(*a, **k):
            s = time.perf_counter()
            try:
                returned[name] = fn(*a, **k)
                return returned[name]
            finally:
                spent[name] += time.perf_counter() - s

        return wrapper

    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    runs, parts = [], defaultdict(list)
    fc = None
    for _ in range(args.repeat):
        spent.clear()
        for name, fn in originals.items():
            setattr(fc_mod, name, timed(name, fn))
        try:
            t0 = time.perf_counter()
            fc = rf.revenue_forecast(book, AS_OF, horizon_months=HORIZON, n_sims=args.sims, random_state=0)
            runs.append(time.perf_counter() - t0)
        finally:
            for name, fn in originals.items():
                setattr(fc_mod, name, fn)
        for name in originals:
            parts[name].append(spent[name])
        parts["rest (Book.as_of, evergreen draws)"].append(runs[-1] - sum(spent[n] for n in originals))

    view = book.as_of(AS_OF)
    con = view.contracts
    live = con[con["evergreen"].fillna(False).astype(bool) | (con["end_date"] >= pd.Timestamp(AS_OF))]
    pipe_opps = view.opportunities[
        ~view.opportunities["is_closed"].astype(bool) & view.opportunities["type"].isin(["new_business", "upsell"])
    ]
    ren, pip = returned.get("renewal_stages"), returned.get("pipeline_deals")
    stage_rows = f"{len(ren.probability):,}" if ren is not None else "?"
    deals = f"{len(pip.probability):,}" if pip is not None else "?"
    print(
        f"book: {len(book.accounts):,} accounts; {len(book.contracts):,} contracts "
        f"({int(con['evergreen'].sum()):,} evergreen, {len(live):,} live at {AS_OF}); "
        f"{len(book.subscriptions):,} subscription rows; {len(book.opportunities):,} opportunities "
        f"({len(pipe_opps):,} open deals, {len(book.opportunity_lines):,} lines, "
        f"{len(book.schedules):,} schedule rows); {len(book.opportunity_history):,} stage-history rows; "
        f"built in {built:.1f} s"
    )
    print(
        f"forecast: {len(fc_mod.COMPONENTS)} components x {HORIZON} months x {args.sims} simulations; "
        f"{len(fc.renewal.contracts):,} contracts to renew, {stage_rows} renewal stage rows, "
        f"{deals} open deals with recurring schedules; "
        f"renewal correlation {fc.renewal.correlation:.3f}, pipeline {fc.pipeline.correlation:.3f}"
    )
    print(f"evergreen: {fc.evergreen}")
    print(f"renewal probability: {fc.renewal.source}")
    total = component(fc, "total")
    print(
        f"total revenue, month 1: mean {total['mean'].iloc[0]:,.2f}; month {HORIZON}: mean "
        f"{total['mean'].iloc[-1]:,.2f} (P10 {total['p10'].iloc[-1]:,.2f}, P90 {total['p90'].iloc[-1]:,.2f})"
    )
    for name, ts in parts.items():
        print(f"  {name:<36} median {statistics.median(ts):7.2f} s")
    print(f"runs: {', '.join(f'{t:.2f}' for t in runs)}")

    failures = check(book, fc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS) {peak:,.0f} MB (after building the book {rss_built:,.0f} MB)")
    if failures:
        for f in failures:
            print(f"check FAILED: {f}")
        sys.exit(1)
    print("check ok")
    print(f"target {TARGET:g}")
    print(f"forecast_seconds {statistics.median(runs):.2f}")


if __name__ == "__main__":
    main()
