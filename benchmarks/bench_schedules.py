"""Product schedules: renewforecast.expand_schedules against an equivalent DuckDB query.

Workload: 1,000,000 generated opportunity lines (fixed seed): amounts in cents,
most not dividing evenly by the installment count, about 2% negative
(credits); start dates over 2020-2027, a third of them on the 28th-31st so the
month-end roll matters; schedule type Divide/Repeat and period Daily, Weekly,
Monthly, Quarterly or Yearly, written as Salesforce writes them (with a few
lower-case ones); 1 to 36 installments (about 18.5 million installments).

Both establish one row per installment (line_id, installment, schedule_date,
revenue) and hand back a pandas DataFrame; the two answers must agree exactly
(same rows, same dates, revenue equal to the cent). DuckDB runs on its default
thread count (the machine's cores) over a table loaded before timing, and its
time includes turning the result into pandas (through Arrow). Each side has
one warm-up run, then --repeat timed runs. Prints medians and the ratio last
(ours / DuckDB; below 1 means renewforecast is faster).

    .venv/bin/python benchmarks/bench_schedules.py [--lines 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import duckdb
import numpy as np
import pandas as pd

import renewforecast as rf

SQL = """
WITH l AS (
    SELECT line_id, amount, CAST(start_date AS DATE) AS d,
           lower(trim(schedule_type)) = 'divide' AS divide,
           CASE lower(trim(period)) WHEN 'daily' THEN 1 WHEN 'weekly' THEN 7
                                    ELSE 0 END AS days,
           CASE lower(trim(period)) WHEN 'monthly' THEN 1 WHEN 'quarterly' THEN 3
                                    WHEN 'yearly' THEN 12 ELSE 0 END AS months,
           CAST(installments AS INTEGER) AS n,
           CAST(round(amount * 100) AS BIGINT) AS c
    FROM lines
), x AS (
    SELECT l.*, CAST(unnest(range(n)) AS INTEGER) AS k FROM l
)
SELECT line_id,
       CAST(k + 1 AS BIGINT) AS installment,
       -- date + months: DuckDB clamps to the month's last day (31 Jan -> 29 Feb)
       CASE WHEN months > 0 THEN d + to_months(k * months)
            ELSE d + to_days(k * days) END AS schedule_date,
       CASE WHEN divide
            THEN CAST(CASE WHEN k = n - 1 THEN c - sign(c) * (abs(c) // n) * (n - 1)
                           ELSE sign(c) * (abs(c) // n) END AS DOUBLE) / 100
            ELSE amount END AS revenue
FROM x
"""


def make_lines(n: int, seed: int = 20240131) -> pd.DataFrame:
    """``n`` opportunity lines with product schedules, the same every time."""
    rng = np.random.default_rng(seed)
    cents = rng.integers(1, 5_000_000, n)  # 0.01 to 49,999.99
    cents[rng.random(n) < 0.02] *= -1  # credits
    months = rng.integers(0, 96, n).astype("timedelta64[M]")
    month = np.datetime64("2020-01", "M") + months
    first = month.astype("datetime64[D]")
    dim = ((month + 1).astype("datetime64[D]") - first).astype(np.int64)
    month_end = np.minimum(rng.integers(28, 32, n), dim)  # 28th to 31st, if it has one
    day = np.where(rng.random(n) < 1 / 3, month_end, rng.integers(1, dim + 1))
    start = first + (day - 1).astype("timedelta64[D]")
    types = np.array(["Divide", "Repeat", "divide", "repeat"], dtype=object)
    periods = np.array(["Daily", "Weekly", "Monthly", "Quarterly", "Yearly", "monthly"], dtype=object)
    return pd.DataFrame(
        {
            "line_id": np.array([f"L{i:07d}" for i in range(1, n + 1)], dtype=object),
            "amount": cents / 100.0,
            "start_date": start.astype("datetime64[ns]"),
            "schedule_type": types[rng.choice(4, n, p=[0.55, 0.35, 0.05, 0.05])],
            "period": periods[rng.choice(6, n, p=[0.1, 0.15, 0.4, 0.2, 0.1, 0.05])],
            "installments": rng.integers(1, 37, n),
        }
    )


def _cents(revenue: pd.Series) -> np.ndarray:
    return np.round(revenue.to_numpy(dtype="float64") * 100).astype(np.int64)


def check_agree(lines: pd.DataFrame, ours: pd.DataFrame, duck: pd.DataFrame) -> None:
    """Same rows, dates and revenue to the cent, sorted by line and installment."""
    assert len(ours) == len(duck), f"row counts: ours {len(ours)}, DuckDB {len(duck)}"
    # Line ids are generated in sorted order, so a line's position sorts as its id
    # does (and much faster than sorting 18 million strings).
    pos = pd.CategoricalDtype(lines["line_id"])
    a_line = pd.Categorical(ours["line_id"], dtype=pos).codes.astype(np.int64)
    b_line = pd.Categorical(duck["line_id"], dtype=pos).codes.astype(np.int64)
    assert (a_line >= 0).all() and (b_line >= 0).all(), "unknown line ids"
    a = np.lexsort((ours["installment"].to_numpy(), a_line))
    b = np.lexsort((duck["installment"].to_numpy(), b_line))
    assert np.array_equal(a_line[a], b_line[b]), "different lines"
    a_inst = ours["installment"].to_numpy(np.int64)[a]
    b_inst = duck["installment"].to_numpy(np.int64)[b]
    assert np.array_equal(a_inst, b_inst), "different installments"
    a_day = ours["schedule_date"].to_numpy().astype("datetime64[D]")[a]
    b_day = duck["schedule_date"].to_numpy().astype("datetime64[D]")[b]
    if not np.array_equal(a_day, b_day):
        i = int(np.flatnonzero(a_day != b_day)[0])
        raise AssertionError(
            f"dates differ: line {a_line[a][i]}, installment {a_inst[i]}: ours {a_day[i]}, DuckDB {b_day[i]}"
        )
    a_c, b_c = _cents(ours["revenue"])[a], _cents(duck["revenue"])[b]
    if not np.array_equal(a_c, b_c):
        i = int(np.flatnonzero(a_c != b_c)[0])
        raise AssertionError(
            f"revenue differs: line {a_line[a][i]}, installment {a_inst[i]}: ours {a_c[i]} c, DuckDB {b_c[i]} c"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    lines = make_lines(args.lines)
    con = duckdb.connect()  # default threads: the machine's cores
    # DuckDB gets its own table, loaded before timing, as it would hold it.
    con.register("lines_df", lines)
    con.execute("CREATE TABLE lines AS SELECT * FROM lines_df")
    con.unregister("lines_df")

    def ours_run() -> pd.DataFrame:
        return rf.expand_schedules(lines)

    def duck_run() -> pd.DataFrame:
        # Through Arrow: DuckDB's fastest way to pandas here (.df() took two to
        # three times as long on this workload).
        return con.sql(SQL).to_arrow_table().to_pandas()

    ours_run(), duck_run()  # warm-up
    ours_t, duck_t = [], []
    ours = duck = None
    for _ in range(args.repeat):
        ours = None
        t0 = time.perf_counter()
        ours = ours_run()
        ours_t.append(time.perf_counter() - t0)
        duck = None
        t0 = time.perf_counter()
        duck = duck_run()
        duck_t.append(time.perf_counter() - t0)

    check_agree(lines, ours, duck)
    total = _cents(ours["revenue"]).sum() / 100
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    med_ours, med_duck = statistics.median(ours_t), statistics.median(duck_t)
    runs_ours = ", ".join(f"{t:.3f}" for t in ours_t)
    runs_duck = ", ".join(f"{t:.3f}" for t in duck_t)
    print(
        f"lines: {len(lines):,}; installments: {len(ours):,}; "
        f"total revenue {total:,.2f}; DuckDB threads {threads}; "
        f"peak RSS {peak:,.0f} MiB"
    )
    print(f"renewforecast median {med_ours:.3f} s  (runs: {runs_ours})")
    print(f"duckdb        median {med_duck:.3f} s  (runs: {runs_duck})")
    print(f"schedules_vs_duckdb {med_ours / med_duck:.3f}")


if __name__ == "__main__":
    main()
