"""Spark local[2] against one pandas process: MRR at month ends and the MRR bridge of a 20M-row ledger.

Workload: the generated CPQ ledger of benchmarks/_ledger.py (original lines,
signed amendment deltas, termination rows, some evergreen), 20,000,000
subscription rows by default, written once as Parquet
(``renewforecast.spark.write_book_parquet``). Both sides read that Parquet,
compute ``mrr_table`` by account and ``mrr_movements`` per customer up to the
data end, and write both results as Parquet:

- pandas: the single-machine functions in one process;
- Spark: ``renewforecast.spark`` on a ``local[2]`` session (the same code on
  slices of accounts).

Each side runs in its own process; the parent samples the resident memory of
that process and its children (the JVM and Spark's Python workers) every
0.2 s and keeps the peak. The two answers must be the same: MRR bit for bit,
movements to the cent. Prints seconds and peak GiB of each side and the
ratio last (Spark seconds / pandas seconds).

    .venv/bin/python benchmarks/bench_spark.py [--rows 20000000] [--partitions 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

GIB = 1024**3


def _read_book(folder: Path):
    """The single-machine Book from the Parquet folder (pyarrow, then the canonical types)."""
    from renewforecast.book import Book
    from renewforecast.schemas import TABLES, conform

    meta = json.loads((folder / "book.json").read_text())
    tables = {}
    for name in TABLES:
        frame = pq.read_table(folder / name).to_pandas(date_as_object=False)
        tables[name] = conform(frame, name)
    return Book(**tables, currency=meta["currency"])


def run_pandas(folder: Path, out: Path, end: str) -> dict:
    import renewforecast as rf

    t0 = time.perf_counter()
    book = _read_book(folder)
    t_read = time.perf_counter() - t0
    mrr = rf.mrr_table(book, end=end)
    moves = rf.mrr_movements(book, end=end)
    t_compute = time.perf_counter() - t0 - t_read
    mrr.to_parquet(out / "mrr.parquet", index=False)
    moves.to_parquet(out / "movements.parquet", index=False)
    return {"seconds": time.perf_counter() - t0, "read": t_read, "compute": t_compute}


def run_spark(folder: Path, out: Path, end: str, partitions: int, memory: str) -> dict:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from renewforecast import spark as rs

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.local.dir", str(out / "spark-tmp"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    t0 = time.perf_counter()
    book = rs.SparkBook.read(spark, folder)
    rs.mrr_table(book, end=end, partitions=partitions).write.parquet(str(out / "mrr"))
    rs.mrr_movements(book, end=end, partitions=partitions).write.parquet(str(out / "movements"))
    seconds = time.perf_counter() - t0
    spark.stop()
    return {"seconds": seconds}


def _measured(args: list[str]) -> tuple[dict, float]:
    """Run one side in a child process; its result and the peak RSS of its process tree (GiB)."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{args[1]} side failed with exit code {proc.returncode}")
    return json.loads(stdout.strip().splitlines()[-1]), peak / GIB


def _frame(path: Path, keys: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    frame["month"] = pd.to_datetime(frame["month"])
    frame["account_id"] = frame["account_id"].astype(object)
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--spark-memory", default="6g")
    parser.add_argument("--role", choices=["pandas", "spark"])
    parser.add_argument("--folder")
    parser.add_argument("--out")
    parser.add_argument("--end")
    args = parser.parse_args()
    if args.role:
        out = Path(args.out)
        if args.role == "pandas":
            result = run_pandas(Path(args.folder), out, args.end)
        else:
            result = run_spark(Path(args.folder), out, args.end, args.partitions, args.spark_memory)
        print(json.dumps(result))
        return

    from _ledger import ledger_book
    from renewforecast.spark import write_book_parquet

    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        t0 = time.perf_counter()
        book = ledger_book(args.rows)
        end = str(book.subscriptions["start_date"].max().date())
        folder = write_book_parquet(book, work / "book")
        rows = len(book.subscriptions)
        del book
        print(f"ledger: {rows:,} subscription rows, written as Parquet in {time.perf_counter() - t0:.1f} s")
        sides = {}
        for role in ("pandas", "spark"):
            out = work / role
            out.mkdir()
            extra = ["--partitions", str(args.partitions), "--spark-memory", args.spark_memory]
            sides[role] = _measured(["--role", role, "--folder", str(folder), "--out", str(out), "--end", end, *extra])
        keys = ["month", "account_id"]
        ours = _frame(work / "spark" / "mrr", keys)
        ref = _frame(work / "pandas" / "mrr.parquet", keys)
        assert len(ours) == len(ref) > 0 and (ours["account_id"].to_numpy() == ref["account_id"].to_numpy()).all()
        assert np.array_equal(ours["mrr"].to_numpy(), ref["mrr"].to_numpy()), "MRR differs"
        mrr_rows = len(ref)
        del ours, ref
        ours = _frame(work / "spark" / "movements", keys)
        ref = _frame(work / "pandas" / "movements.parquet", keys)
        assert len(ours) == len(ref) and (ours["account_id"].to_numpy() == ref["account_id"].to_numpy()).all()
        for col in ref.columns.drop(keys):
            assert np.abs(ours[col].to_numpy() - ref[col].to_numpy()).max() < 0.005, f"{col} differs"
        print(f"results equal: {mrr_rows:,} MRR rows (bit for bit), {len(ref):,} movement rows (to the cent)")
        (p_res, p_mem), (s_res, s_mem) = sides["pandas"], sides["spark"]
        print(
            f"pandas: {p_res['seconds']:.1f} s (read {p_res['read']:.1f}, compute {p_res['compute']:.1f}), "
            f"peak {p_mem:.2f} GiB"
        )
        print(f"spark local[2], {args.partitions} slices: {s_res['seconds']:.1f} s, peak {s_mem:.2f} GiB")
        print(f"spark_vs_pandas {s_res['seconds'] / p_res['seconds']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
