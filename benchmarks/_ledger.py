"""A large synthetic CPQ book for benchmarks (numpy, seconds to build).

The subscription ledger is the workload of the MRR benchmarks; the contracts
(one per original line, some renewing an earlier contract of the same
account), renewal opportunities with stage history and monthly signals let
the renewal features and training set do the work they do on a real org.
The extra tables are drawn from their own random stream, so the ledger of a
seed is the same whether or not they are used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.schemas import TABLES, conform


def _ids(prefix: str, n: int) -> np.ndarray:
    # Digits as narrow text (not numpy's 21-character default): at 20M rows
    # the temporary would otherwise be larger than the ids themselves.
    digits = np.arange(n).astype(f"U{len(str(max(n - 1, 0)))}")
    return np.char.add(prefix, digits).astype(object)


def ledger_book(n_rows: int = 1_000_000, months: int = 60, seed: int = 0) -> Book:
    """About 60 % original lines, 30 % amendment deltas, 10 % termination rows.

    Besides subscriptions, products and accounts the Book has one contract
    per original line, renewal opportunities for about a tenth of the
    contracts (two stage-history rows each) and monthly signals for about a
    tenth of the accounts.
    """
    rng = np.random.default_rng(seed)
    n_root = int(n_rows * 0.6)
    n_delta = int(n_rows * 0.3)
    n_term = n_rows - n_root - n_delta
    n_accounts = max(1, n_rows // 16)
    start0 = np.datetime64("2020-01-01")
    span = months * 30
    # original lines
    r_start = start0 + rng.integers(0, span, n_root).astype("timedelta64[D]")
    term_m = rng.choice([12, 24, 36], n_root, p=[0.7, 0.2, 0.1])
    r_end_m = r_start.astype("datetime64[M]") + term_m.astype("timedelta64[M]")
    r_end = (r_end_m.astype("datetime64[D]") + (r_start - r_start.astype("datetime64[M]").astype("datetime64[D]"))) - 1
    evergreen = rng.random(n_root) < 0.03
    r_acct = rng.integers(0, n_accounts, n_root)
    r_qty = rng.integers(1, 200, n_root).astype(float)
    r_price = np.round(rng.uniform(50, 3000, n_root), 2)
    r_prod = np.where(evergreen, 1, rng.integers(0, 1, n_root))
    r_prorate = np.where(evergreen, 1.0, term_m / 12.0)
    # deltas revising a random original line, from a day inside it to its end
    d_parent = rng.integers(0, n_root, n_delta)
    life = np.maximum((r_end - r_start).astype(np.int64), 1)
    life = np.where(evergreen, 400, life)
    d_start = r_start[d_parent] + (rng.random(n_delta) * life[d_parent]).astype("timedelta64[D]")
    d_qty = np.where(rng.random(n_delta) < 0.65, rng.integers(1, 40, n_delta), -rng.integers(1, 20, n_delta)).astype(
        float
    )
    # terminations: negative rows starting the day after the last day of
    # service, which they carry as their termination date (CPQ's convention)
    t_parent = rng.choice(n_root, n_term, replace=False)
    t_start = r_start[t_parent] + (rng.random(n_term) * life[t_parent]).astype("timedelta64[D]")
    root_ids = _ids("s", n_root)
    contract_ids = _ids("c", n_root)
    account_ids = _ids("a", n_accounts)
    subs = {
        "subscription_id": np.concatenate([root_ids, _ids("d", n_delta), _ids("t", n_term)]),
        "contract_id": np.concatenate([contract_ids, contract_ids[d_parent], contract_ids[t_parent]]),
        "account_id": np.concatenate(
            [account_ids[r_acct], account_ids[r_acct[d_parent]], account_ids[r_acct[t_parent]]]
        ),
        "product_id": np.concatenate(
            [
                np.where(r_prod == 1, "p1", "p12"),
                np.where(r_prod[d_parent] == 1, "p1", "p12"),
                np.where(r_prod[t_parent] == 1, "p1", "p12"),
            ]
        ).astype(object),
        "start_date": np.concatenate([r_start, d_start, t_start]).astype("datetime64[ns]"),
        "end_date": np.concatenate(
            [
                np.where(evergreen, np.datetime64("NaT"), r_end),
                np.where(evergreen[d_parent], np.datetime64("NaT"), r_end[d_parent]),
                np.where(evergreen[t_parent], np.datetime64("NaT"), r_end[t_parent]),
            ]
        ).astype("datetime64[ns]"),
        "quantity": np.concatenate([r_qty, d_qty, -r_qty[t_parent]]),
        "net_price": np.concatenate(
            [
                np.round(r_price * r_prorate, 2),
                np.round(r_price[d_parent] * 0.5, 2),
                np.round(r_price[t_parent] * 0.5, 2),
            ]
        ),
        "prorate_multiplier": np.concatenate([r_prorate, np.full(n_delta, 0.5), np.full(n_term, 0.5)]),
        "terminated_date": np.concatenate(
            [np.full(n_root + n_delta, np.datetime64("NaT")), t_start - np.timedelta64(1, "D")]
        ).astype("datetime64[ns]"),
        "revised_subscription_id": np.concatenate(
            [np.full(n_root, None, dtype=object), root_ids[d_parent], root_ids[t_parent]]
        ),
        "created_date": np.concatenate([r_start, d_start, t_start]).astype("datetime64[ns]"),
    }
    products = pd.DataFrame({"product_id": ["p12", "p1"], "subscription_term_months": [12.0, 1.0]})
    accounts = pd.DataFrame({"account_id": account_ids, "created_date": pd.Timestamp("2019-12-01")})
    tables = {"products": products, "accounts": accounts}
    extra = np.random.default_rng([seed, 1])
    tables.update(
        _renewal_tables(
            extra,
            contract_ids=contract_ids,
            account_ids=account_ids,
            account=r_acct,
            start=r_start,
            end=r_end,
            term=term_m,
            evergreen=evergreen,
            months=months,
        )
    )
    # Each raw table is dropped once conformed, so that the build's peak
    # memory is about one table's copy above the book.
    conformed = {"subscriptions": _conform_in_parts(subs, "subscriptions")}
    del subs
    conformed.update(
        {name: conform(tables.pop(name, pd.DataFrame()), name) for name in TABLES if name not in conformed}
    )
    return Book(**{name: conformed[name] for name in TABLES})


def _conform_in_parts(columns: dict[str, np.ndarray], name: str, part_rows: int = 1_000_000) -> pd.DataFrame:
    """``conform`` a large table a slice of rows at a time, then join the slices.

    ``conform`` holds a few copies of the table it types; done on slices, the
    build of a 20M-row ledger peaks near the size of the book, not at several
    times the size of its subscriptions.
    """
    n = len(next(iter(columns.values())))
    parts = [
        conform(pd.DataFrame({k: v[lo : lo + part_rows] for k, v in columns.items()}), name)
        for lo in range(0, n, part_rows)
    ]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _renewal_tables(
    rng: np.random.Generator,
    *,
    contract_ids: np.ndarray,
    account_ids: np.ndarray,
    account: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    term: np.ndarray,
    evergreen: np.ndarray,
    months: int,
) -> dict[str, pd.DataFrame]:
    """Contracts (with renewal chains), renewal opportunities and their stage history, signals."""
    n = len(contract_ids)
    # A contract renews the one before it in the same account (by start date)
    # about half of the time: chains of several renewals form in busy accounts.
    order = np.lexsort((start, account))
    prev = np.full(n, -1)
    same = np.r_[False, account[order][1:] == account[order][:-1]]
    prev[order[same]] = order[np.flatnonzero(same) - 1]
    ok = prev >= 0
    ok[ok] = ~evergreen[prev[ok]] & (start[prev[ok]] < start[ok])
    link = ok & (rng.random(n) < 0.5)
    renewed = np.full(n, None, dtype=object)
    renewed[link] = contract_ids[prev[link]]
    method = rng.choice(np.array(["same", "list", "uplift"], dtype=object), n, p=[0.5, 0.2, 0.3])
    contracts = pd.DataFrame(
        {
            "contract_id": contract_ids,
            "account_id": account_ids[account],
            "start_date": start.astype("datetime64[ns]"),
            "end_date": np.where(evergreen, np.datetime64("NaT"), end).astype("datetime64[ns]"),
            "term_months": np.where(evergreen, np.nan, term.astype(float)),
            "status": "Activated",
            "evergreen": evergreen,
            "renewal_pricing_method": method,
            "renewal_uplift_rate": np.where(method == "uplift", 0.05, np.nan),
            "renewed_contract_id": renewed,
            "created_date": start.astype("datetime64[ns]"),
        }
    )
    # Renewal opportunities for a tenth of the fixed-term contracts, opened
    # 120 days before the end; those ending before the last half year are
    # closed, won when a renewal contract exists.
    has_renewal = np.zeros(n, dtype=bool)
    has_renewal[prev[link]] = True
    pick = np.flatnonzero(~evergreen & (rng.random(n) < 0.1))
    k = len(pick)
    close = end[pick].astype("datetime64[D]")
    created = close - 120
    horizon = np.datetime64("2020-01-01") + np.timedelta64(months * 30 - 180, "D")
    closed = close < horizon
    won = closed & has_renewal[pick]
    stage = np.where(won, "Closed Won", np.where(closed, "Closed Lost", "Negotiation")).astype(object)
    opp_ids = _ids("o", k)
    opportunities = pd.DataFrame(
        {
            "opportunity_id": opp_ids,
            "account_id": account_ids[account[pick]],
            "type": "renewal",
            "stage": stage,
            "probability": np.where(won, 1.0, np.where(closed, 0.0, 0.6)),
            "close_date": close.astype("datetime64[ns]"),
            "is_closed": closed,
            "is_won": won,
            "amount": np.round(rng.uniform(1_000, 100_000, k), 2),
            "renewed_contract_id": contract_ids[pick],
            "created_date": created.astype("datetime64[ns]"),
        }
    )
    # Two stage changes each: opened in qualification, then the stage it has now.
    moved = np.minimum(created + 60, close)
    history = pd.DataFrame(
        {
            "opportunity_id": np.concatenate([opp_ids, opp_ids]),
            "created_date": np.concatenate([created, moved]).astype("datetime64[ns]"),
            "stage": np.concatenate([np.full(k, "Qualification", dtype=object), stage]),
            "probability": np.concatenate([np.full(k, 0.2), opportunities["probability"].to_numpy()]),
            "history_id": _ids("h", 2 * k),
        }
    )
    # Monthly signals for a tenth of the accounts, every month of the ledger.
    with_signals = np.flatnonzero(rng.random(len(account_ids)) < 0.1)
    sig_acct = np.repeat(with_signals, months)
    sig_month = np.tile(np.datetime64("2020-01", "M") + np.arange(months), len(with_signals))
    m = len(sig_acct)
    signals = pd.DataFrame(
        {
            "account_id": account_ids[sig_acct],
            "month": sig_month.astype("datetime64[ns]"),
            "seat_utilization": np.round(rng.uniform(0.2, 1.0, m), 3),
            "active_users": rng.integers(1, 500, m).astype(float),
            "support_tickets": rng.poisson(3, m).astype(float),
            "nps": np.where(rng.random(m) < 0.3, rng.integers(-100, 101, m), np.nan),
        }
    )
    return {
        "contracts": contracts,
        "opportunities": opportunities,
        "opportunity_history": history,
        "signals": signals,
    }
