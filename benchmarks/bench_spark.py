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
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
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
    t_write = 0.0
    # Each result is written and dropped before the next is computed, as a job short of memory would.
    for name, engine in (("mrr", rf.mrr_table), ("movements", rf.mrr_movements)):
        result = engine(book, end=end)
        t1 = time.perf_counter()
        result.to_parquet(out / f"{name}.parquet", index=False)
        t_write += time.perf_counter() - t1
        del result
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "read": t_read, "compute": seconds - t_read - t_write}


def build(rows: int, folder: Path) -> dict:
    """Generate the ledger and write it as Parquet (in a child, so the parent stays small)."""
    from _ledger import ledger_book
    from renewforecast.spark import write_book_parquet

    book = ledger_book(rows)
    write_book_parquet(book, folder)
    return {"rows": len(book.subscriptions), "end": str(book.subscriptions["start_date"].max().date())}


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
        return {"failed": f"exit code {proc.returncode}"}, peak / GIB
    return json.loads(stdout.strip().splitlines()[-1]), peak / GIB


def _same(spark_path: Path, pandas_path: Path, *, exact: bool) -> int:
    """Check two results hold the same rows (keys equal, values bit for bit or to the cent); their row count.

    Both are put in (month, account) order by Arrow and compared column by
    column, so a 20M-row ledger's outputs (tens of millions of rows) are
    never all in memory as Python objects.
    """
    keys = ["month", "account_id"]
    order = [(k, "ascending") for k in keys]

    def keyed(path: Path) -> tuple[pa.Table, pa.Array]:
        table = pq.read_table(path, columns=keys)
        table = table.set_column(0, "month", pc.cast(table.column("month"), pa.timestamp("us")))
        table = table.set_column(1, "account_id", pc.cast(table.column("account_id"), pa.string()))
        return table, pc.sort_indices(table, sort_keys=order)

    ours, our_order = keyed(spark_path)
    ref, ref_order = keyed(pandas_path)
    assert ours.num_rows == ref.num_rows > 0, f"{ours.num_rows:,} rows against {ref.num_rows:,}"
    assert ours.take(our_order).equals(ref.take(ref_order)), "the (month, account) keys differ"
    rows = ref.num_rows
    del ours, ref
    for name in pq.read_schema(pandas_path).names:
        if name in keys or name.startswith("__"):
            continue
        a = pq.read_table(spark_path, columns=[name]).column(0).take(our_order).to_numpy()
        b = pq.read_table(pandas_path, columns=[name]).column(0).take(ref_order).to_numpy()
        if exact:
            assert np.array_equal(a, b), f"{name} differs"
        else:
            assert np.abs(a - b).max() < 0.005, f"{name} differs by more than half a cent"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--spark-memory", default="6g")
    parser.add_argument("--pandas-mem-limit-gib", type=float, default=22.0, help="address-space limit (0: none)")
    parser.add_argument("--role", choices=["build", "pandas", "spark"])
    parser.add_argument("--folder")
    parser.add_argument("--out")
    parser.add_argument("--end")
    args = parser.parse_args()
    if args.role == "build":
        print(json.dumps(build(args.rows, Path(args.folder))))
        return
    if args.role:
        out = Path(args.out)
        if args.role == "pandas":
            if args.pandas_mem_limit_gib:
                # Not fitting is a result (MemoryError), not a machine pushed into its out-of-memory killer.
                limit = int(args.pandas_mem_limit_gib * GIB)
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            result = run_pandas(Path(args.folder), out, args.end)
        else:
            result = run_spark(Path(args.folder), out, args.end, args.partitions, args.spark_memory)
        print(json.dumps(result))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        t0 = time.perf_counter()
        folder = work / "book"
        built, build_gib = _measured(["--role", "build", "--rows", str(args.rows), "--folder", str(folder)])
        if "failed" in built:
            raise SystemExit(f"the ledger could not be built ({built['failed']})")
        rows, end = built["rows"], built["end"]
        print(
            f"ledger: {rows:,} subscription rows, written as Parquet in {time.perf_counter() - t0:.1f} s "
            f"(generator peak {build_gib:.2f} GiB)",
            flush=True,
        )
        sides = {}
        for role in ("pandas", "spark"):
            out = work / role
            out.mkdir()
            extra = ["--partitions", str(args.partitions), "--spark-memory", args.spark_memory]
            extra += ["--pandas-mem-limit-gib", str(args.pandas_mem_limit_gib)]
            sides[role] = _measured(["--role", role, "--folder", str(folder), "--out", str(out), "--end", end, *extra])
            result, peak = sides[role]
            if "failed" in result:
                # One machine running out of memory is a result: where Spark takes over.
                limit = f"{args.pandas_mem_limit_gib:g} GiB of address space" if role == "pandas" else "its memory"
                print(f"{role}: failed ({result['failed']}; does not fit in {limit}), peak {peak:.2f} GiB", flush=True)
            else:
                print(f"{role}: {result['seconds']:.1f} s, peak {peak:.2f} GiB", flush=True)
        failed = [role for role, (result, _) in sides.items() if "failed" in result]
        if failed:
            print(f"spark_vs_pandas n/a ({' and '.join(failed)} did not finish)")
            return
        mrr_rows = _same(work / "spark" / "mrr", work / "pandas" / "mrr.parquet", exact=True)
        moves_rows = _same(work / "spark" / "movements", work / "pandas" / "movements.parquet", exact=False)
        print(f"results equal: {mrr_rows:,} MRR rows (bit for bit), {moves_rows:,} movement rows (to the cent)")
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
