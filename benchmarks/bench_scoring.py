"""Scoring cost: score_contracts (with reason codes) against one boosted model's predict_proba.

Workload: the default RenewalModel trained on a demo org; 1,000,000 contracts
drawn (with replacement, lightly jittered) from that org's scoring features.
Ours is score_contracts on the feature frame: reading the input, the boosted
model and its calibration, three reason codes per contract and the output
frame. The reference is predict_proba of the one boosted model inside the
default model (its scikit-learn pipeline, fitted on all the training
decisions) on the same rows, already in that pipeline's input form. Both must
agree: each calibrated probability is the model's calibration applied to the
same boosted model's score, so the two rank the contracts alike. Prints the
medians, the time of the earlier default (the average of five
isotonic-calibrated fold models; one run, for the record) and the ratio
last (ours / one model; target at most 2.0).

    .venv/bin/python benchmarks/bench_scoring.py [--contracts 1000000] [--accounts 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
from scipy.special import expit

import renewforecast as rf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contracts", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--ensemble-record",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time score_contracts once with the earlier default, the five-model average",
    )
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

    # The one boosted model and its calibration inside the default model.
    (calibrated,) = model.estimator_.calibrated_classifiers_
    boosted, calibration = calibrated.estimator, calibrated.calibrators[0]
    prepared = model._prepare(features, fitting=False)  # the pipeline's own input form

    ours_t, bare_t = [], []
    scores = bare = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        bare = boosted.predict_proba(prepared)[:, 1]
        bare_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scores = rf.score_contracts(features, model=model)
        ours_t.append(time.perf_counter() - t0)

    score = boosted.decision_function(prepared)
    np.testing.assert_allclose(bare, expit(score), rtol=1e-12, atol=0)
    ours = scores["renewal_probability"].to_numpy()
    assert np.array_equal(ours, calibration.predict(score)), "probabilities are not the calibrated boosted scores"
    by_score = np.lexsort((score, bare))  # the reference's ranking (its ties broken by the raw score)
    assert (np.diff(ours[by_score]) >= -1e-12).all(), "the calibrated probabilities rank contracts differently"
    assert scores["reason_3"].notna().all()

    print(f"contracts: {len(features):,}; features: {len(model.feature_names_in_)}; trained on {len(X):,} decisions")
    print(f"boosting iterations: {model.n_iter_}")
    if args.ensemble_record:
        five = rf.RenewalModel(random_state=0, ensemble=True, calibration="isotonic").fit(X, y)  # the old default
        t0 = time.perf_counter()
        rf.score_contracts(features, model=five)
        print(f"earlier default (five-model average) score_contracts, one run: {time.perf_counter() - t0:.2f} s")
    med_ours, med_bare = statistics.median(ours_t), statistics.median(bare_t)
    print(f"score_contracts median {med_ours:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours_t)})")
    print(f"one boosted model predict_proba median {med_bare:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in bare_t)})")
    print(f"scoring_vs_single_model {med_ours / med_bare:.3f}")


if __name__ == "__main__":
    main()
