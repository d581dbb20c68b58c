"""MRR by account and month: renewforecast against an equivalent DuckDB query.

Workload: a generated CPQ ledger of 1,000,000 subscription rows (original lines,
signed amendment deltas, termination rows, some evergreen) over 60 months.
Both compute MRR at every month end for every account with an active row; the
two answers must agree to the cent. Prints medians and the ratio last
(ours / DuckDB; below 1 means renewforecast is faster).

    .venv/bin/python benchmarks/bench_mrr.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

import renewforecast as rf

sys.path.insert(0, str(Path(__file__).parent))
from _ledger import ledger_book

SQL = """
WITH s AS (
    SELECT x.*, coalesce(x.revised_subscription_id, x.subscription_id) AS root,
           x.net_price / CASE WHEN x.prorate_multiplier > 0 THEN x.prorate_multiplier ELSE 1 END
               * x.quantity / coalesce(p.subscription_term_months, 12) AS mrr_row
    FROM subs x LEFT JOIN products p USING (product_id)
), chains AS (
    SELECT root, min(terminated_date) AS term FROM s GROUP BY root
), spans AS (
    SELECT s.account_id, s.mrr_row, s.start_date AS from_date,
           CASE WHEN c.term IS NOT NULL AND (s.end_date IS NULL OR s.end_date >= c.term)
                THEN c.term ELSE s.end_date END AS to_date  -- the last day of service
    FROM s JOIN chains c USING (root)
), months AS (
    SELECT CAST(last_day(m) AS TIMESTAMP) AS month
    FROM range(TIMESTAMP '{start}', TIMESTAMP '{stop}', INTERVAL 1 MONTH) t(m)
)
SELECT month, account_id, sum(mrr_row) AS mrr
FROM spans JOIN months ON spans.from_date <= months.month
                      AND (spans.to_date IS NULL OR spans.to_date >= months.month)
GROUP BY month, account_id
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    book = ledger_book(args.rows, months=60)
    start, end = "2020-01-01", "2024-12-31"
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    # DuckDB gets its own tables, loaded before timing, as it would hold them.
    subs = book.subscriptions.astype(
        dict.fromkeys(("subscription_id", "account_id", "product_id", "revised_subscription_id"), object)
    )
    con.register("subs_df", subs)
    con.execute("CREATE TABLE subs AS SELECT * FROM subs_df")
    products_df = book.products[["product_id", "subscription_term_months"]].astype({"product_id": object})
    con.register("products_df", products_df)
    con.execute("CREATE TABLE products AS SELECT * FROM products_df")
    sql = SQL.format(start=start, stop="2025-01-01")

    ours_t, duck_t = [], []
    ours = duck = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = rf.mrr_table(book, start=start, end=end, by=("account_id",))
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        duck = con.execute(sql).df()
        duck_t.append(time.perf_counter() - t0)

    a = ours.assign(account_id=ours["account_id"].astype(object)).set_index(["month", "account_id"])["mrr"].sort_index()
    duck["month"] = duck["month"].astype("datetime64[ns]")
    b = duck.set_index(["month", "account_id"])["mrr"].sort_index()
    assert len(a) == len(b), f"row counts differ: ours {len(a)}, DuckDB {len(b)}"
    assert a.index.equals(b.index), "different (month, account) pairs"
    worst = float(np.max(np.abs(a.to_numpy() - b.to_numpy())))
    assert worst < 0.005, f"MRR differs by {worst}"
    med_ours, med_duck = statistics.median(ours_t), statistics.median(duck_t)
    print(
        f"ledger rows: {len(book.subscriptions):,}; result rows: {len(a):,}; total MRR last month "
        f"{a.xs(pd.Timestamp(end)).sum():,.2f}; largest difference {worst:.2e}"
    )
    print(f"renewforecast median {med_ours:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ours_t)})")
    print(f"duckdb        median {med_duck:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in duck_t)})")
    print(f"mrr_vs_duckdb {med_ours / med_duck:.3f}")


if __name__ == "__main__":
    main()
