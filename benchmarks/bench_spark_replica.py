"""Reading a replicated schema on Spark: SparkBook.from_replica against load_book on the same replica.

Workload: a demo org written as a Fivetran replica in DuckDB (with a few
soft-deleted rows), each table copied to Parquet. Ours is
``SparkBook.from_replica`` on those Parquet tables (a local Spark session,
``--cores`` cores), collected with ``to_book``; the reference is
``load_book`` on the DuckDB file, on one core. Both must give the same Book
(fingerprint). The first Spark run warms the session up and is not timed.
Prints the medians and the ratio last (ours / reference): on one small
machine this is Spark's fixed cost per job, not a speed-up.

    .venv/bin/python benchmarks/bench_spark_replica.py [--accounts 600] [--repeat 3] [--cores 2] [--partitions 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

import renewforecast as rf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from renewforecast.spark import SparkBook

    folder = Path(tempfile.mkdtemp())
    org = rf.write_demo_org(folder / "org", accounts=args.accounts, seed=7)
    url = f"duckdb:///{folder / 'crm.duckdb'}"
    rf.write_replica(org.path, url, layout="fivetran", deleted={"Contract": 3, "SBQQ__Subscription__c": 3})
    paths = {}
    with duckdb.connect(str(folder / "crm.duckdb"), read_only=True) as db:
        for (name,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall():
            (folder / "pq" / name).mkdir(parents=True)
            db.execute(f"COPY {name} TO '{folder / 'pq' / name / 'part-0.parquet'}' (FORMAT parquet)")
            paths[name] = str(folder / "pq" / name)
    spark = (
        SparkSession.builder.master(f"local[{args.cores}]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(args.partitions))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    tables = {name: spark.read.parquet(path) for name, path in paths.items()}

    reference = rf.load_book(url)
    ours_book = SparkBook.from_replica(spark, tables, partitions=args.partitions).to_book()  # warm-up
    ours_t, ref_t = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        reference = rf.load_book(url)
        ref_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours_book = SparkBook.from_replica(spark, tables, partitions=args.partitions).to_book()
        ours_t.append(time.perf_counter() - t0)
    assert ours_book.fingerprint == reference.fingerprint, "the Books differ"
    med_ours, med_ref = statistics.median(ours_t), statistics.median(ref_t)
    print(
        f"accounts: {args.accounts:,}; subscriptions: {len(reference.subscriptions):,}; "
        f"schedules: {len(reference.schedules):,}; cores: {args.cores}; slices: {args.partitions}"
    )
    print(f"from_replica + to_book median {med_ours:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours_t)})")
    print(f"load_book(url) median {med_ref:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ref_t)})")
    print(f"spark_replica_ratio {med_ours / med_ref:.3f}")
    spark.stop()


if __name__ == "__main__":
    main()
