"""Scoring overhead: score_contracts (with reason codes) against the bare scikit-learn predict_proba.

Workload: a RenewalModel trained on a demo org; 1,000,000 contracts drawn (with
replacement, lightly jittered) from that org's scoring features. Ours is
score_contracts on the prepared feature frame, including three reason codes
per contract and the output frame; the reference is predict_proba of the
fitted scikit-learn estimator inside the model on the same rows, already in
the estimator's input form. Both must give the same probabilities. Prints the
medians and the ratio last (ours / bare; target at most 2.0).

    .venv/bin/python benchmarks/bench_scoring.py [--contracts 1000000] [--accounts 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

import renewforecast as rf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contracts", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    folder = tempfile.mkdtemp()
    org = rf.write_demo_org(folder, accounts=args.accounts, seed=7)
    book = rf.load_book(org.path)
    X, y = rf.renewal_training_set(book)
    model = rf.RenewalModel(random_state=0).fit(X, y)
    base = rf.renewal_features(book, org.as_of)
    rng = np.random.default_rng(0)
    features = base.iloc[rng.integers(0, len(base), args.contracts)].copy()
    numeric = [c for c in model.numeric_features_ if c in features.columns]
    features[numeric] = features[numeric] * rng.uniform(0.95, 1.05, size=(len(features), len(numeric)))
    features.index = [f"c{i}" for i in range(len(features))]
    prepared = model._prepare(features, fitting=False)  # the estimator's own input form

    ours_t, bare_t = [], []
    scores = bare = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        bare = model.estimator_.predict_proba(prepared)[:, 1]
        bare_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scores = rf.score_contracts(features, model=model)
        ours_t.append(time.perf_counter() - t0)
    assert np.array_equal(scores["renewal_probability"].to_numpy(), bare), "probabilities differ"
    assert scores["reason_3"].notna().all()
    med_ours, med_bare = statistics.median(ours_t), statistics.median(bare_t)
    print(f"contracts: {len(features):,}; features: {len(model.feature_names_in_)}; trained on {len(X):,} decisions")
    print(f"score_contracts median {med_ours:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours_t)})")
    print(f"bare predict_proba median {med_bare:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in bare_t)})")
    print(f"scoring_overhead {med_ours / med_bare:.3f}")


if __name__ == "__main__":
    main()
