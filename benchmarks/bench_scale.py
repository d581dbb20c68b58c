"""How MRR, movements and renewal features scale with the size of the book: time and peak memory.

Workload: the generated CPQ book of ``_ledger.py`` (subscription ledger,
contracts with renewal chains, renewal opportunities, monthly signals) at each
size of ``--rows`` subscription rows, always from the same seed. Every
(size, step) runs in a fresh process, so its peak memory is its own:
the process builds the book, notes its resident memory, then times one step

- ``mrr_table``: ``rf.mrr_table(book, end=END)`` (by account);
- ``mrr_movements``: ``rf.mrr_movements(book, end=END)`` (per account);
- ``renewal_features``: ``rf.renewal_features(book, AS_OF)`` (scoring rows);
- ``renewal_training_set``: ``rf.renewal_training_set(book)`` (every past decision).

For each it prints the median seconds over ``--repeat`` runs, seconds per
million rows, the resident size of the built book (``book GiB``, after the
allocator has given back what the build freed), the peak memory of the step
above it (``step GiB``, from the kernel's high-water mark reset after the
build), their sum (``book+step GiB``) and the process's peak (``total GiB``,
``ru_maxrss``: it includes the build's own peak). A straight line through
``book+step GiB`` over the sizes gives the largest book each step runs on in
``--fit-gib`` (default 24) GiB; the smallest is printed. The last line is
``worst_scaling``: over the steps, the largest ratio of seconds per row at the
largest size to seconds per row at the smallest (about 1 when every step is
linear; 2 would mean twice as slow per row).

``--warm`` separates the code's scaling from the machine's. A fresh process
pays for every page of memory it touches the first time (the kernel zeroes it,
and on a virtual machine the host may have to back it too), a cost per byte
that grows with the process's footprint; numpy hands large arrays back to the
kernel when freed, so each run of a step pays it again. With ``--warm`` each
process keeps freed memory (``MALLOC_MMAP_MAX_=0``, no trimming), runs the step
once untimed, then times ``--repeat`` runs, and the step ``reference`` (sorting
and hashing ``--rows`` random keys, the work the steps are made of, linear up
to the sort's log) is measured the same way: its ``scaling`` line is what the
machine alone makes of a larger size.

Processes of more than ``--lock-rows`` rows run under ``flock`` on ``--lock``
so that two large jobs never share the machine's memory, and each process
has an address-space limit (``--mem-limit-gib``, default 22): a step that
does not fit fails with a MemoryError, reported in the table.

    .venv/bin/python benchmarks/bench_scale.py [--rows 1000000 5000000 20000000] [--repeat N] [--warm]
        [--steps mrr_table ...] [--json results.jsonl] [--from-json results.jsonl ...]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

STEPS = ("mrr_table", "mrr_movements", "renewal_features", "renewal_training_set")
REFERENCE = "reference"
END = "2024-12-31"
AS_OF = "2024-06-30"
SEED = 0
GIB = 1 << 30


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _trim_heap() -> None:
    # glibc keeps freed memory of the build in the process; giving it back
    # makes the resident size after the build the size of the book itself.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> bool:
    # Writing 5 to clear_refs resets the kernel's high-water mark (VmHWM) to
    # the current RSS, so the step's own peak is measured, not the build's.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _reference(rows: int):
    """Linear work at the book's size: factorize, sort and sum ``rows`` keys (about four rows per key)."""
    import pandas as pd

    rng = np.random.default_rng(SEED)
    keys = rng.integers(0, max(rows // 4, 1), rows)
    values = rng.random(rows)
    codes, uniques = pd.factorize(keys)
    order = np.argsort(codes, kind="stable")
    return pd.DataFrame({"key": uniques, "sum": np.bincount(codes[order], values[order], minlength=len(uniques))})


def _run_step(step: str, book):
    import renewforecast as rf

    if step == REFERENCE:
        return _reference(book)
    if step == "mrr_table":
        return rf.mrr_table(book, end=END)
    if step == "mrr_movements":
        return rf.mrr_movements(book, end=END)
    if step == "renewal_features":
        return rf.renewal_features(book, AS_OF)
    if step == "renewal_training_set":
        return rf.renewal_training_set(book)
    raise ValueError(step)


def child(rows: int, step: str, repeat: int, mem_limit_gib: float | None, warm: bool = False) -> dict:
    """Build the book, time one step, report time and memory (in this process)."""
    if mem_limit_gib:
        # A step that needs more fails with MemoryError here instead of
        # sending a shared machine into the kernel's out-of-memory killer.
        limit = int(mem_limit_gib * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from _ledger import ledger_book

    t0 = time.perf_counter()
    # The reference step needs no book: its input is the size.
    book = rows if step == REFERENCE else ledger_book(rows, seed=SEED)
    build_s = time.perf_counter() - t0
    gc.collect()
    _trim_heap()
    built_kib = _status_kib("VmRSS") or 0
    reset = _reset_peak()
    times = []
    out_rows = 0
    if warm:
        del_me = _run_step(step, book)
        del del_me
        gc.collect()
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = _run_step(step, book)
        times.append(time.perf_counter() - t0)
        out_rows = len(result[0] if isinstance(result, tuple) else result)
        del result
        gc.collect()
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step_peak_kib = _status_kib("VmHWM") if reset else maxrss_kib
    import renewforecast as rf

    return {
        "rows": rows,
        "step": step,
        "warm": warm,
        "code": str(Path(rf.__file__).parent),
        "seconds": statistics.median(times),
        "runs": times,
        "build_seconds": build_s,
        "output_rows": out_rows,
        "book_gib": built_kib * 1024 / GIB,
        "step_gib": max(0, (step_peak_kib or 0) - built_kib) * 1024 / GIB,
        "peak_gib": (step_peak_kib or 0) * 1024 / GIB,
        "total_gib": maxrss_kib * 1024 / GIB,
    }


def _launch(rows: int, step: str, repeat: int, lock: str | None, mem_limit_gib: float, warm: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", "--rows", str(rows), "--steps", step, "--repeat", str(repeat)]
    cmd += ["--mem-limit-gib", str(mem_limit_gib)] + (["--warm"] if warm else [])
    if lock:
        cmd = ["flock", lock, *cmd]
    env = dict(os.environ)
    if warm:
        # glibc then serves every allocation from its heap and never returns freed memory to the
        # kernel: a second run of a step reuses pages the first one already touched.
        env |= {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        # A process killed for memory (or failing) is reported, not hidden.
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"rows": rows, "step": step, "error": f"exit {proc.returncode}: {last[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _largest_that_fits(results: list[dict], steps: list[str], budget_gib: float) -> None:
    """Rows at which book + step memory reaches the budget, by a straight line through the measured sizes."""
    limits = {}
    for step in steps:
        mine = [r for r in results if r["step"] == step]
        if len({r["rows"] for r in mine}) < 2:
            continue
        slope, intercept = np.polyfit([r["rows"] for r in mine], [r["peak_gib"] for r in mine], 1)
        if slope > 0:
            limits[step] = (budget_gib - intercept) / slope
            print(
                f"fits {step}: {limits[step] / 1e6:.1f}M rows in {budget_gib:g} GiB ({slope * 1e6:.3f} GiB per M rows)"
            )
    if limits:
        step = min(limits, key=limits.get)
        print(f"largest book in {budget_gib:g} GiB: about {limits[step] / 1e6:.1f}M rows (limited by {step})")


def _print_header() -> None:
    print(
        f"{'rows':>11} | {'step':<21} | {'seconds':>8} | {'s per M rows':>12} | {'book GiB':>8} | "
        f"{'step GiB':>8} | {'book+step GiB':>13} | {'total GiB':>9}"
    )


def _print_row(r: dict) -> None:
    rows, step = r["rows"], r["step"]
    if "error" in r:
        print(f"{rows:>11,} | {step:<21} | failed: {r['error']}", flush=True)
        return
    print(
        f"{rows:>11,} | {step:<21} | {r['seconds']:>8.2f} | {r['seconds'] / rows * 1e6:>12.3f} | "
        f"{r['book_gib']:>8.2f} | {r['step_gib']:>8.2f} | {r['peak_gib']:>13.2f} | {r['total_gib']:>9.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--steps", nargs="+", default=None, choices=[*STEPS, REFERENCE])
    parser.add_argument(
        "--warm", action="store_true", help="keep freed memory, run each step once untimed, and add the reference"
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per step (default 3, and 1 from 10M rows)")
    parser.add_argument("--lock", default="/tmp/bigmem.lock")
    parser.add_argument("--lock-rows", type=int, default=2_000_000)
    parser.add_argument(
        "--mem-limit-gib", type=float, default=22.0, help="address-space limit of each process (0: none)"
    )
    parser.add_argument("--fit-gib", type=float, default=24.0, help="memory budget for the largest-book estimate")
    parser.add_argument("--json", type=Path, default=None, help="append each result as a JSON line")
    parser.add_argument(
        "--from-json", type=Path, nargs="+", default=None, help="print the table of saved --json results; run nothing"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.steps is None:
        args.steps = [*STEPS, REFERENCE] if args.warm else list(STEPS)
    if args.child:
        print(json.dumps(child(args.rows[0], args.steps[0], args.repeat or 1, args.mem_limit_gib, args.warm)))
        return

    if args.from_json:
        # Print the table of earlier runs (several files: e.g. sizes run apart).
        results = [json.loads(line) for path in args.from_json for line in path.read_text().splitlines() if line]
        results = [r for r in results if r["rows"] in set(args.rows) and r["step"] in args.steps]
        results.sort(key=lambda r: (r["rows"], args.steps.index(r["step"])))
        _print_header()
        for r in results:
            _print_row(r)
    else:
        results = []
        _print_header()
        for rows in sorted(args.rows):
            repeat = args.repeat or (3 if rows < 10_000_000 else 1)
            for step in args.steps:
                lock = args.lock if rows > args.lock_rows else None
                r = _launch(rows, step, repeat, lock, args.mem_limit_gib, args.warm)
                results.append(r)
                if args.json:
                    with args.json.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                _print_row(r)
    ok = [r for r in results if "error" not in r]
    steps = [s for s in args.steps if s != REFERENCE]
    _largest_that_fits(ok, steps, args.fit_gib)
    worst = None
    for step in args.steps:
        mine = sorted((r for r in ok if r["step"] == step), key=lambda r: r["rows"])
        if len(mine) >= 2 and mine[0]["rows"] < mine[-1]["rows"]:
            ratio = (mine[-1]["seconds"] / mine[-1]["rows"]) / (mine[0]["seconds"] / mine[0]["rows"])
            # The exponent b of seconds ~ rows**b: 1 is linear, n log n is a little above.
            b = np.polyfit(np.log([r["rows"] for r in mine]), np.log([r["seconds"] for r in mine]), 1)[0]
            print(f"scaling {step}: {ratio:.2f}, exponent {b:.2f} ({mine[0]['rows']:,} -> {mine[-1]['rows']:,} rows)")
            if step != REFERENCE:
                worst = ratio if worst is None else max(worst, ratio)
    print(f"worst_scaling {worst:.2f}" if worst is not None else "worst_scaling n/a")


if __name__ == "__main__":
    main()
