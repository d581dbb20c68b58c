"""The track record of monthly runs on the demo org: what `renewforecast accuracy` would show.

Publishes the record of a run (scores, forecast by segment, record.json) for
each of ``--runs`` month ends before the demo org's export date, each run
seeing only ``book.as_of(cut)`` and a renewal model trained on what was known
at the first cut, then grades every run with the whole Book
(:func:`renewforecast.grade_runs`) and prints the summary, the forecast by
months ahead and the score grades beside the oracle's (the probabilities the
demo org drew each renewal from).

    .venv/bin/python benchmarks/eval_track_record.py [--accounts 8000] [--runs 6] [--horizon 6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

import renewforecast as rf
from renewforecast.analyses.record import keep_record, write_run_record


def publish(folder: Path, run_id: str, view: rf.Book, cut, scores, forecast, horizon: int, sims: int) -> None:
    record = folder / run_id / "record"
    keep_record(record, "scores", scores)
    if forecast is not None:
        keep_record(
            record,
            "forecast",
            forecast.frame,
            horizon_months=horizon,
            n_sims=sims,
            seed=0,
            by="segment",
            model_version=forecast.model_version,
        )
    write_run_record(
        record,
        run_id=run_id,
        as_of=cut,
        data_fingerprint=view.loaded_fingerprint,
        model_version=str(scores["model_version"].iloc[0]),
        currency=view.currency,
        book=view,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--horizon", type=int, default=6)
    parser.add_argument("--sims", type=int, default=200)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="track-"))
    org = rf.write_demo_org(base / "org", accounts=args.accounts, seed=7)
    full = rf.load_book(org.path)
    end = rf.last_month_end(org.as_of)
    cuts = pd.date_range(end=end - pd.offsets.MonthEnd(args.runs), periods=args.runs, freq="ME")
    X, y = rf.renewal_training_set(full.as_of(cuts[0]))
    model = rf.load_model(rf.save_model(rf.RenewalModel(random_state=0).fit(X, y), base / "models"))
    truth = org.truth.drop_duplicates("contract_id").set_index("contract_id")["true_probability"]
    for cut in cuts:
        view = full.as_of(cut)
        run_id = f"{cut:%Y%m%d}-run"
        scores = rf.score_contracts(view, model=model, as_of=cut)
        forecast = rf.revenue_forecast(
            view, cut, horizon_months=args.horizon, n_sims=args.sims, by="segment", random_state=0, model=model
        )
        publish(base / "real", run_id, view, cut, scores, forecast, args.horizon, args.sims)
        oracle = scores.assign(renewal_probability=scores["contract_id"].map(truth).to_numpy())
        publish(base / "oracle", run_id, view, cut, oracle, None, args.horizon, args.sims)
        print(f"published {run_id}", flush=True)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    track = rf.grade_runs(base / "real", full, models_dir=base / "models")
    oracle = rf.grade_runs(base / "oracle", full, rerun=False)
    span = f"runs {cuts[0].date()} .. {cuts[-1].date()}"
    print(f"demo org: {args.accounts:,} accounts, export date {org.as_of.date()}, {span}")
    print(track.note)
    print(track.summary().to_string(index=False))
    print(track.by_horizon().to_string())
    print(track.by_component().to_string())
    print("scores, published model:")
    print(track.scores_summary.to_string(index=False))
    print("scores, the oracle's probabilities:")
    print(oracle.scores_summary.to_string(index=False))


if __name__ == "__main__":
    main()
