"""Wide signals files: load, feature building and scoring with thousands of extra signal columns.

Workload: a demo CPQ export (default 8,000 accounts, seed 7; generated into a
temporary folder, or an existing one passed with ``--data``, only read) and a
copy of it whose ``signals.csv`` carries ``--width`` extra numeric columns
(``usage_metric_00000`` ...; one decimal, about a quarter blank, seeded).
A RenewalModel (default settings) is trained on the unwidened export first,
outside the timing, as a deployed model would have been.

Timed, end to end, for the wide export and for the unwidened one (the
reference) in the same process: ``load_book``; ``renewal_features`` as of
the export date with every signal column featurised (what training and the
reports build); ``score_contracts`` of the Book with the trained model
(which featurises only the signal columns the model knows and warns about
the others). Answer checks (exit 1 when one fails): the wide features hold
the unwidened features unchanged plus two per extra column; the wide scores
equal the unwidened scores exactly; the scoring warned once, naming
``--width`` ignored columns.

Before/after (with ``--before REV``, e.g. ``--before main``): the code of
that git revision is extracted with ``git archive`` into a temporary folder
(the work tree is not touched) and the same wide pipeline runs on it in a
subprocess at ``--before-width`` columns (the old code is quadratic in the
width), next to ours at that width in another subprocess.

Prints the stage medians, the before/after speed-up at equal width,
``wide_over_narrow`` and, last, ``wide_signals_seconds`` (target: under 30).

The loader reads each cell as text, so memory grows with rows x width:
a workload the machine cannot hold is refused with the estimate.

    .venv/bin/python benchmarks/bench_wide_signals.py [--accounts 8000] [--width 10000]
        [--data DIR] [--before main] [--before-width 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import renewforecast as rf
from renewforecast.models.features import UnusedSignalsWarning

ROOT = Path(__file__).resolve().parents[1]

# One run of the pipeline; also run as a script (in a subprocess) against another checkout.
PIPELINE = r"""
import json, sys, time, warnings
import renewforecast as rf
from renewforecast.models.registry import load_model
folder, model_dir, as_of = sys.argv[1:4]
model = load_model(model_dir)
t0 = time.perf_counter()
book = rf.load_book(folder)
t1 = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    features = rf.renewal_features(book, as_of)
    t2 = time.perf_counter()
    scores = rf.score_contracts(book, model=model, as_of=as_of, scored_at="2026-01-01T00:00:00Z")
    t3 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "features": t2 - t1, "score": t3 - t2,
                  "n_features": features.shape[1], "n_scores": len(scores),
                  "warnings": sorted({w.category.__name__ for w in caught})}))
"""


def widen(source: Path, dest: Path, width: int, seed: int = 0) -> Path:
    """``dest``: a copy of every file of ``source`` but a signals.csv with ``width`` extra columns.

    Copies, not links: the loader refuses an export file that links out of its folder.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for p in source.iterdir():
        if p.is_file() and p.name != "signals.csv":
            shutil.copy2(p, dest / p.name)
    sig = pd.read_csv(source / "signals.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    values = np.round(rng.random((len(sig), width)) * 100, 1)
    values[rng.random((len(sig), width)) < 0.25] = np.nan
    extra = pd.DataFrame(values, columns=[f"usage_metric_{i:05d}" for i in range(width)])
    pd.concat([sig, extra], axis=1).to_csv(dest / "signals.csv", index=False, float_format="%.1f")
    return dest


def check_memory(rows: int, width: int) -> None:
    # ~60 bytes a cell while the loader holds it as text, then 8 as a float.
    need = rows * width * 70
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > 0.6 * avail:
        sys.exit(
            f"refused: {rows:,} signal rows x {width:,} columns needs about {need / 2**30:.0f} GiB "
            f"while loading; {avail / 2**30:.0f} GiB is free. Use fewer --accounts or a smaller --width."
        )


def run_pipeline(folder: Path, model_dir: Path, as_of: str, src: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src or ROOT / "src"))
    out = subprocess.run(
        [sys.executable, "-c", PIPELINE, str(folder), str(model_dir), as_of],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=8000)
    parser.add_argument("--width", type=int, default=10_000)
    parser.add_argument("--data", type=Path, help="an existing demo export to widen (read only)")
    parser.add_argument("--before", default=None, help="git revision of the code to compare with")
    parser.add_argument("--before-width", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    widest = max(args.width, args.before_width if args.before else 0)
    if not args.data:
        check_memory(17 * args.accounts, widest)  # a demo export has about 17 signal rows an account
    tmp = Path(tempfile.mkdtemp(prefix="bench_wide_"))
    if args.data:
        narrow_dir = args.data
        as_of = next(
            line.split("export_date=")[1].split()[0]
            for line in (narrow_dir / "README.txt").read_text().splitlines()
            if "export_date=" in line
        )
    else:
        org = rf.write_demo_org(tmp / "narrow", accounts=args.accounts, seed=7)
        narrow_dir, as_of = Path(org.path), str(pd.Timestamp(org.as_of).date())
    rows = sum(1 for _ in (narrow_dir / "signals.csv").open()) - 1
    check_memory(rows, widest)

    narrow = rf.load_book(narrow_dir)
    X, y = rf.renewal_training_set(narrow)
    model = rf.RenewalModel(random_state=0).fit(X, y)
    model_dir = rf.save_model(model, tmp / "model")
    model = rf.load_model(model_dir)

    wide_dir = widen(narrow_dir, tmp / "wide", args.width)

    def pipeline(folder: Path):
        parts = {}
        gc.collect()  # the previous run's frames are freed here, not inside this run's timing
        t0 = time.perf_counter()
        book = rf.load_book(folder)
        t1 = time.perf_counter()
        features = rf.renewal_features(book, as_of)
        t2 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = rf.score_contracts(book, model=model, as_of=as_of, scored_at="2026-01-01T00:00:00Z")
        t3 = time.perf_counter()
        parts.update(load=t1 - t0, features=t2 - t1, score=t3 - t2)
        return parts, features, scores, [str(w.message) for w in caught if w.category is UnusedSignalsWarning]

    runs = {"narrow": [], "wide": []}
    results = {}
    for _ in range(args.repeat):
        for name, folder in (("narrow", narrow_dir), ("wide", wide_dir)):
            results.pop(name, None)
            parts, features, scores, unused = pipeline(folder)
            runs[name].append(parts)
            results[name] = (features, scores, unused)

    f_narrow, s_narrow, u_narrow = results["narrow"]
    f_wide, s_wide, u_wide = results["wide"]
    ok = True
    expected_shape = (len(f_narrow), f_narrow.shape[1] + 2 * args.width)
    if f_wide.shape != expected_shape or not f_wide[f_narrow.columns].equals(f_narrow):
        print("CHECK FAILED: wide features are not the unwidened ones plus two per extra column")
        ok = False
    if not s_wide.equals(s_narrow):
        print("CHECK FAILED: wide scores differ from the unwidened scores")
        ok = False
    if u_narrow or len(u_wide) != 1 or not u_wide[0].startswith(f"{args.width} numeric signal column(s)"):
        print(f"CHECK FAILED: expected one warning naming {args.width} ignored columns, got {u_wide + u_narrow}")
        ok = False

    def med(name, part):
        return statistics.median(r[part] for r in runs[name])

    def total(name):
        return statistics.median(sum(r.values()) for r in runs[name])

    print(
        f"export: {narrow_dir} ({rows:,} signal rows, {len(f_narrow):,} contracts scored as of {as_of}); "
        f"model trained on {len(X):,} decisions with {len(model.feature_names_in_)} features"
    )
    print(f"width: {args.width:,} extra signal columns; wide features {f_wide.shape[1]:,} columns")
    for name in ("narrow", "wide"):
        print(
            f"{name:>6}: load {med(name, 'load'):.2f} s, features {med(name, 'features'):.2f} s, "
            f"score {med(name, 'score'):.2f} s; total median {total(name):.2f} s "
            f"(runs: {', '.join(f'{sum(r.values()):.2f}' for r in runs[name])})"
        )
    print("answer checks: " + ("passed" if ok else "FAILED"))

    if args.before:
        old_src = tmp / "before"
        old_src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.before, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        before_dir = (
            wide_dir if args.before_width == args.width else widen(narrow_dir, tmp / "wide_before", args.before_width)
        )
        old = run_pipeline(before_dir, model_dir, as_of, old_src / "src")
        new = run_pipeline(before_dir, model_dir, as_of)
        old_t, new_t = old["load"] + old["features"] + old["score"], new["load"] + new["features"] + new["score"]
        print(
            f"before ({args.before}) at {args.before_width:,} columns: load {old['load']:.2f} s, features "
            f"{old['features']:.2f} s, score {old['score']:.2f} s, total {old_t:.2f} s; warnings {old['warnings']}"
        )
        print(
            f"after at {args.before_width:,} columns: load {new['load']:.2f} s, features {new['features']:.2f} s, "
            f"score {new['score']:.2f} s, total {new_t:.2f} s; warnings {new['warnings']}"
        )
        print(
            f"speedup_at_{args.before_width}_columns {old_t / new_t:.2f} (features alone "
            f"{old['features'] / new['features']:.1f}x, score alone {old['score'] / new['score']:.1f}x)"
        )

    wide_total = total("wide")
    print(f"wide_over_narrow {wide_total / total('narrow'):.2f}")
    print(f"wide_signals_seconds {wide_total:.2f}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
