"""A large synthetic CPQ subscription ledger for benchmarks (numpy, seconds to build)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.schemas import TABLES, conform


def _ids(prefix: str, n: int) -> np.ndarray:
    return np.char.add(prefix, np.arange(n).astype(str)).astype(object)


def ledger_book(n_rows: int = 1_000_000, months: int = 60, seed: int = 0) -> Book:
    """About 60 % original lines, 30 % amendment deltas, 10 % termination rows."""
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
    subs = pd.DataFrame(
        {
            "subscription_id": np.concatenate([root_ids, _ids("d", n_delta), _ids("t", n_term)]),
            "contract_id": np.concatenate(
                [_ids("c", n_root), _ids("c", n_root)[d_parent], _ids("c", n_root)[t_parent]]
            ),
            "account_id": np.concatenate(
                [
                    _ids("a", n_accounts)[r_acct],
                    _ids("a", n_accounts)[r_acct[d_parent]],
                    _ids("a", n_accounts)[r_acct[t_parent]],
                ]
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
    )
    products = pd.DataFrame({"product_id": ["p12", "p1"], "subscription_term_months": [12.0, 1.0]})
    accounts = pd.DataFrame({"account_id": _ids("a", n_accounts), "created_date": pd.Timestamp("2019-12-01")})
    tables = {"subscriptions": subs, "products": products, "accounts": accounts}
    return Book(**{name: conform(tables.get(name, pd.DataFrame()), name) for name in TABLES})
