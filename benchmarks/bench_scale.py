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
million rows, the peak memory of the step above the built book (``step GiB``,
from the kernel's high-water mark reset after the build) and the process's
peak (``total GiB``, ``ru_maxrss``: book, build and step). The last line is
``worst_scaling``: over the steps, the largest ratio of seconds per row at the
largest size to seconds per row at the smallest (about 1 when every step is
linear; 2 would mean twice as slow per row).

Processes of more than ``--lock-rows`` rows run under ``flock`` on ``--lock``
so that two large jobs never share the machine's memory.

    .venv/bin/python benchmarks/bench_scale.py [--rows 1000000 5000000 20000000] [--repeat N]
        [--steps mrr_table ...] [--json results.jsonl]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

STEPS = ("mrr_table", "mrr_movements", "renewal_features", "renewal_training_set")
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


def _reset_peak() -> bool:
    # Writing 5 to clear_refs resets the kernel's high-water mark (VmHWM) to
    # the current RSS, so the step's own peak is measured, not the build's.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _run_step(step: str, book):
    import renewforecast as rf

    if step == "mrr_table":
        return rf.mrr_table(book, end=END)
    if step == "mrr_movements":
        return rf.mrr_movements(book, end=END)
    if step == "renewal_features":
        return rf.renewal_features(book, AS_OF)
    if step == "renewal_training_set":
        return rf.renewal_training_set(book)
    raise ValueError(step)


def child(rows: int, step: str, repeat: int) -> dict:
    """Build the book, time one step, report time and memory (in this process)."""
    from _ledger import ledger_book

    t0 = time.perf_counter()
    book = ledger_book(rows, seed=SEED)
    build_s = time.perf_counter() - t0
    gc.collect()
    built_kib = _status_kib("VmRSS") or 0
    reset = _reset_peak()
    times = []
    out_rows = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = _run_step(step, book)
        times.append(time.perf_counter() - t0)
        out_rows = len(result[0] if isinstance(result, tuple) else result)
        del result
        gc.collect()
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step_peak_kib = _status_kib("VmHWM") if reset else maxrss_kib
    return {
        "rows": rows,
        "step": step,
        "seconds": statistics.median(times),
        "runs": times,
        "build_seconds": build_s,
        "output_rows": out_rows,
        "book_gib": built_kib * 1024 / GIB,
        "step_gib": max(0, (step_peak_kib or 0) - built_kib) * 1024 / GIB,
        "total_gib": maxrss_kib * 1024 / GIB,
    }


def _launch(rows: int, step: str, repeat: int, lock: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--rows", str(rows), "--steps", step, "--repeat", str(repeat)]
    if lock:
        cmd = ["flock", lock, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        # A process killed for memory (or failing) is reported, not hidden.
        return {"rows": rows, "step": step, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--repeat", type=int, default=None, help="runs per step (default 3, and 1 from 10M rows)")
    parser.add_argument("--lock", default="/tmp/bigmem.lock")
    parser.add_argument("--lock-rows", type=int, default=2_000_000)
    parser.add_argument("--json", type=Path, default=None, help="append each result as a JSON line")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.rows[0], args.steps[0], args.repeat or 1)))
        return

    results = []
    print(f"{'rows':>11} | {'step':<21} | {'seconds':>8} | {'s per M rows':>12} | {'step GiB':>8} | {'total GiB':>9}")
    for rows in sorted(args.rows):
        repeat = args.repeat or (3 if rows < 10_000_000 else 1)
        for step in args.steps:
            r = _launch(rows, step, repeat, args.lock if rows > args.lock_rows else None)
            results.append(r)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            if "error" in r:
                print(f"{rows:>11,} | {step:<21} | failed: {r['error']}", flush=True)
                continue
            print(
                f"{rows:>11,} | {step:<21} | {r['seconds']:>8.2f} | {r['seconds'] / rows * 1e6:>12.3f} | "
                f"{r['step_gib']:>8.2f} | {r['total_gib']:>9.2f}",
                flush=True,
            )
    ok = [r for r in results if "error" not in r]
    worst = None
    for step in args.steps:
        mine = sorted((r for r in ok if r["step"] == step), key=lambda r: r["rows"])
        if len(mine) >= 2 and mine[0]["rows"] < mine[-1]["rows"]:
            ratio = (mine[-1]["seconds"] / mine[-1]["rows"]) / (mine[0]["seconds"] / mine[0]["rows"])
            print(f"scaling {step}: {ratio:.2f} ({mine[0]['rows']:,} -> {mine[-1]['rows']:,} rows)")
            worst = ratio if worst is None else max(worst, ratio)
    print(f"worst_scaling {worst:.2f}" if worst is not None else "worst_scaling n/a")


if __name__ == "__main__":
    main()
