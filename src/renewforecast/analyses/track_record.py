"""How earlier report runs did: what they published, graded against the data as it stands now.

:func:`grade_runs` reads the record of every earlier run in a reports folder
(:mod:`renewforecast.analyses.record`) and grades it against a Book, using
only the run's own record and that Book as of the grading date:

**The forecast**, for the months of its horizon that have ended by the
grading date. The actual revenue of a month is what
:func:`renewforecast.recognized_revenue` recognises in it now. Each miss
(``error = actual - published``) is split in two by re-running the same
forecast (same horizon, simulations, seed and grouping, and the run's own
published renewal probabilities from its ``scores`` record) on today's data
seen as of the run's date (``book.as_of(run.as_of)``):
``data_change = re-run - published`` is what the data learnt since about
the past (records added late with earlier dates, edits in place), and
``model_error = actual - re-run`` is what the forecast itself got wrong; so
``error = model_error + data_change`` exactly. When nothing about the past
changed, the re-run is the published forecast and the whole miss is the
model's.

The actual revenue is split into the forecast's components by where it came
from: contracts the run knew (``contracted``, ``one_time`` and ``usage`` by
charge type; an upsell booked later on such a contract counts here too),
contracts created since that renew one of them, directly or through a chain
(``renewal``), and everything else (``new``: the forecast's ``pipeline`` and
``new_business`` together, which the ledger cannot tell apart).

**The renewal probabilities** (the run's ``scores``) of the contracts whose
renewal was still open on the run's date and is decided by the grading date
(:func:`renewforecast.renewal_decisions`): Brier score, expected calibration
error and ROC AUC (:func:`renewforecast.models.evaluation.classification_metrics`,
the measures of the model's own backtest), overall, by risk band and by
segment, beside the backtest figures the model was saved with.

Layer: analyses (imports the foundation modules, ``ledger``, ``models`` and
the other analyses).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast import revenue_forecast
from renewforecast.analyses.forecast.groups import Groups
from renewforecast.analyses.record import RunRecord, published_records
from renewforecast.book import Book, content_fingerprint
from renewforecast.dates import last_month_end
from renewforecast.exceptions import RenewForecastError
from renewforecast.ledger.recognition import recognized_revenue
from renewforecast.ledger.renewals import renewal_decisions
from renewforecast.models.evaluation import calibration_table, classification_metrics
from renewforecast.models.registry import ModelRefused, load_manifest

__all__ = ["GRADED_COMPONENTS", "TrackRecord", "grade_runs", "pinball_loss"]

logger = logging.getLogger(__name__)

#: The components the forecast is graded by: the forecast's own, with pipeline and new business as one (``new``).
GRADED_COMPONENTS = ("total", "contracted", "one_time", "usage", "renewal", "new")
_COMPONENT_OF = {
    "contracted": "contracted",
    "one_time": "one_time",
    "usage": "usage",
    "renewal": "renewal",
    "pipeline": "new",
    "new_business": "new",
    "total": "total",
}
_CHARGE_COMPONENT = {"recurring": "contracted", "one_time": "one_time", "usage": "usage"}
#: The stored quantiles and their levels.
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
_RERUN_KEYS = ("horizon_months", "n_sims", "seed", "by")

_FORECAST_COLUMNS = [
    "run_id",
    "as_of",
    "month",
    "horizon",
    "group",
    "component",
    "published",
    "p10",
    "p50",
    "p90",
    "rerun",
    "actual",
    "error",
    "model_error",
    "data_change",
    "ape",
    "inside_p10_p90",
    "pinball",
]
_SCORE_COLUMNS = [
    "run_id",
    "as_of",
    "contract_id",
    "account_id",
    "segment",
    "risk_band",
    "end_date",
    "renewal_probability",
    "outcome",
    "renewed",
    "model_version",
]
_SUMMARY_METRICS = ["contracts", "renewal_rate", "mean_probability", "brier", "ece", "roc_auc", "log_loss"]


def pinball_loss(actual, quantiles: dict[float, Any]) -> np.ndarray:
    """Mean pinball (quantile) loss of forecast quantiles against actuals, in the actuals' units.

    For a level ``q`` and forecast ``f``, the loss is ``q * (y - f)`` when the
    actual ``y`` is above ``f`` and ``(1 - q) * (f - y)`` when below; the
    result averages it over the levels given. Lower is better; for P50 alone
    it is half the absolute error.

    Parameters
    ----------
    actual : array-like
    quantiles : dict
        Level (``0.1``) -> forecast quantiles, each array-like like ``actual``.

    Returns
    -------
    ndarray
        One loss per actual.

    Examples
    --------
    An actual of 100 against P10 = 90, P50 = 100, P90 = 130: 0.1 x 10, 0 and
    0.1 x 30, averaged.

    >>> pinball_loss([100.0], {0.1: [90.0], 0.5: [100.0], 0.9: [130.0]}).round(4).tolist()
    [1.3333]
    """
    y = np.asarray(actual, dtype="float64")
    losses = []
    for q, f in quantiles.items():
        diff = y - np.asarray(f, dtype="float64")
        losses.append(np.maximum(q * diff, (q - 1.0) * diff))
    return np.mean(losses, axis=0)


@dataclass
class TrackRecord:
    """The grades of earlier runs: returned by :func:`grade_runs`.

    Attributes
    ----------
    as_of : Timestamp
        The grading date: months ending by it and decisions known by it count.
    runs : DataFrame
        One row per earlier run with a record: ``run_id``, ``as_of``,
        ``published``, ``model_version``, ``months_graded`` (forecast months
        ended), ``contracts_graded`` (renewals decided since), ``rerun``
        (whether the forecast could be re-run) and ``note``.
    forecast : DataFrame
        One row per run, month ended, group and component (see
        :data:`GRADED_COMPONENTS`): ``horizon`` (1 = the first month after the
        run's date), ``published`` (the mean), ``p10``, ``p50``, ``p90`` (for
        ``total`` and the single components; missing for ``new``), ``rerun``,
        ``actual``, ``error`` (actual - published), ``model_error`` (actual -
        re-run), ``data_change`` (re-run - published), ``ape`` (absolute
        error / actual), ``inside_p10_p90`` and ``pinball``
        (:func:`pinball_loss` over the P10, P50 and P90).
    forecast_summary : DataFrame
        The whole book (group ``total``) by ``component`` and ``horizon``:
        ``runs``, ``months``, ``mape``, ``bias`` (mean (published - actual) /
        actual; below zero the forecast was too low, as in the backtest),
        ``coverage_p10_p90``, ``pinball``, ``mean_error``,
        ``mean_model_error`` and ``mean_data_change``.
    scores : DataFrame
        One row per run and contract decided since: ``renewal_probability``
        as published, ``outcome`` and ``renewed`` (1 renewed, 0 churned or
        ended early), ``risk_band``, ``segment``.
    scores_summary : DataFrame
        ``run_id`` (``"all"``: every run pooled), ``slice`` (``overall``,
        ``risk_band`` or ``segment``), ``value`` (the band or segment) and
        ``contracts``, ``renewal_rate``, ``mean_probability``, ``brier``,
        ``ece``, ``roc_auc``, ``log_loss``.
    backtest : DataFrame
        The backtest figures each model was saved with (its manifest's
        metrics): ``model_version``, ``contracts``, ``brier``, ``ece``,
        ``roc_auc``, and the ``oracle_*`` figures when known.
    revisions : DataFrame
        One row per run and table: ``rows_at_run`` and ``rows_now`` of the
        data as of the run's date, ``changed`` (its content differs from what
        the run saw) and ``created_after`` (records created after the run's
        date, which the re-run does not see).
    calibration : DataFrame
        Predicted against observed renewal rate of the pooled scores, by
        probability bin (:func:`renewforecast.models.evaluation.calibration_table`),
        so that ``rf.plotting.calibration_curve(track)`` draws it.
    """

    as_of: pd.Timestamp
    runs: pd.DataFrame
    forecast: pd.DataFrame
    forecast_summary: pd.DataFrame
    scores: pd.DataFrame
    scores_summary: pd.DataFrame
    backtest: pd.DataFrame
    revisions: pd.DataFrame
    calibration: pd.DataFrame
    oracle_calibration: pd.DataFrame | None = field(default=None)

    @property
    def graded(self) -> int:
        """Runs with at least one month or one decision graded."""
        r = self.runs
        return int(((r["months_graded"] > 0) | (r["contracts_graded"] > 0)).sum()) if len(r) else 0

    @property
    def note(self) -> str:
        """What was graded, in one sentence (or why nothing was)."""
        if not len(self.runs):
            return (
                f"No earlier run with a record to grade as of {self.as_of.date()}: the track record starts with "
                "this run, and the next runs will grade it."
            )
        if not self.graded:
            return (
                f"{len(self.runs)} earlier run(s), none with a forecast month ended or a renewal decided by "
                f"{self.as_of.date()} yet."
            )
        months = self.forecast[(self.forecast["group"] == "total") & (self.forecast["component"] == "total")]
        return (
            f"{self.graded} earlier run(s) graded as of {self.as_of.date()}: {len(months):,} forecast month(s) "
            f"ended and {len(self.scores):,} renewal decision(s) made since they were published."
        )

    def by_horizon(self) -> pd.DataFrame:
        """MAPE of the whole book's forecast by months ahead: as published, and re-run on today's data.

        The gap between the two columns is what the data changed since; a
        frame ready for :func:`renewforecast.plotting.backtest_accuracy`.
        """
        s = self.forecast_summary
        s = s[s["component"] == "total"].set_index("horizon")
        return pd.DataFrame({"published": s["mape"], "re-run on today's data": s["mape_rerun"]}).rename_axis("horizon")

    def by_component(self) -> pd.DataFrame:
        """The whole book's grades by component, over every horizon: how each part of the forecast did.

        Indexed by component (:data:`GRADED_COMPONENTS`): ``months``, ``mape``,
        ``bias``, ``coverage_p10_p90``, ``mean_error``, ``mean_model_error``
        and ``mean_data_change``, averaged over every run and month graded.
        """
        f = self.forecast[self.forecast["group"] == "total"]
        g = f.groupby("component")
        out = pd.DataFrame(
            {
                "months": g.size(),
                "mape": g["ape"].mean(),
                "bias": g["bias"].mean(),
                "coverage_p10_p90": g["inside_p10_p90"].mean(),
                "mean_error": g["error"].mean(),
                "mean_model_error": g["model_error"].mean(),
                "mean_data_change": g["data_change"].mean(),
            }
        )
        return out.reindex([c for c in GRADED_COMPONENTS if c in out.index]).rename_axis("component")

    def summary(self) -> pd.DataFrame:
        """The headline grades, one row each: ``measure``, ``label`` and ``value``.

        Examples
        --------
        >>> import tempfile, renewforecast as rf
        >>> rf.grade_runs(tempfile.mkdtemp(), rf.Book.empty(), as_of="2026-10-31").summary()["measure"].tolist()[:3]
        ['runs_graded', 'forecast_months', 'forecast_mape_1m']
        """
        s = self.forecast_summary
        total = s[s["component"] == "total"].set_index("horizon")
        f = self.forecast[(self.forecast["group"] == "total") & (self.forecast["component"] == "total")]
        overall = self.scores_summary[
            (self.scores_summary["run_id"] == "all") & (self.scores_summary["slice"] == "overall")
        ]
        o = overall.iloc[0] if len(overall) else pd.Series(dtype=object)
        latest = self.backtest.iloc[-1] if len(self.backtest) else pd.Series(dtype=object)

        def at(h: int, col: str) -> float:
            return float(total.loc[h, col]) if h in total.index else np.nan

        def mean(col: str) -> float:
            return float(f[col].mean()) if len(f) else np.nan

        rows = [
            ("runs_graded", "Earlier runs graded", float(self.graded)),
            ("forecast_months", "Forecast months graded (whole book)", float(len(f))),
            ("forecast_mape_1m", "Forecast MAPE, 1 month ahead", at(1, "mape")),
            ("forecast_mape_3m", "Forecast MAPE, 3 months ahead", at(3, "mape")),
            ("forecast_bias", "Forecast bias (below zero: too low)", mean("bias") if "bias" in f else np.nan),
            ("forecast_coverage_p10_p90", "Months inside the P10-P90 range", mean("inside_p10_p90")),
            ("forecast_pinball", "Pinball loss (P10, P50, P90), per month", mean("pinball")),
            ("forecast_mean_abs_model_error", "Mean absolute model error", float(f["model_error"].abs().mean())),
            ("forecast_mean_abs_data_change", "Mean absolute data change", float(f["data_change"].abs().mean())),
            ("scores_contracts", "Renewal decisions graded", float(o.get("contracts", 0.0) or 0.0)),
            ("scores_brier", "Brier score of the published probabilities", float(o.get("brier", np.nan))),
            ("scores_ece", "Calibration error (ECE) of the published probabilities", float(o.get("ece", np.nan))),
            ("scores_roc_auc", "ROC AUC of the published probabilities", float(o.get("roc_auc", np.nan))),
            ("backtest_brier", "Brier score in the model's own backtest", float(latest.get("brier", np.nan))),
            ("backtest_roc_auc", "ROC AUC in the model's own backtest", float(latest.get("roc_auc", np.nan))),
        ]
        return pd.DataFrame(rows, columns=["measure", "label", "value"])


# --------------------------------------------------------------------------- #
# The forecast
# --------------------------------------------------------------------------- #


def _buckets(frame: pd.DataFrame) -> pd.DataFrame:
    """A forecast frame by graded component: means added up, quantiles kept where one component is one bucket."""
    f = frame.assign(component=frame["component"].map(_COMPONENT_OF))
    f = f[f["component"].notna()]
    g = f.groupby(["month", "group", "component"], sort=False)
    out = g["mean"].sum().to_frame("published")
    single = g.size() == 1
    for col in QUANTILES:
        # Quantiles of a sum are not the sum of quantiles: only a bucket of one component keeps its own.
        out[col] = g[col].sum().where(single)
    return out.reset_index()


def _renewal_contracts(contracts: pd.DataFrame, known: pd.Index) -> set:
    """Contracts not in ``known`` that renew one of them, directly or through a chain of renewals."""
    link = contracts.dropna(subset=["renewed_contract_id"])
    link = link[~link["contract_id"].isin(known)]
    found: set = set()
    frontier = set(known)
    while frontier:
        new = set(link.loc[link["renewed_contract_id"].isin(frontier), "contract_id"]) - found
        found |= new
        frontier = new
    return found


def _actuals(now: Book, run_view: Book, months: pd.DatetimeIndex, by: str | None) -> pd.DataFrame:
    """Revenue recognised in ``months`` by group and graded component, with the group and component totals."""
    rev = recognized_revenue(now, months.min(), months.max(), by=["contract_id", "charge_type"])
    rev = rev[rev["month"].isin(months)]
    contracts = now.contracts.drop_duplicates("contract_id")
    known = pd.Index(run_view.contracts["contract_id"].unique())
    renewals = _renewal_contracts(contracts, known)
    cid = rev["contract_id"].astype(object)
    charge = rev["charge_type"].astype(object).map(_CHARGE_COMPONENT).fillna("contracted")
    component = np.where(cid.isin(known), charge, np.where(cid.isin(renewals), "renewal", "new"))
    groups = Groups(now, by)
    account = cid.map(contracts.set_index("contract_id")["account_id"])
    label = np.asarray(groups.labels, dtype=object)[groups.codes(account.to_numpy(dtype=object))]
    parts = pd.DataFrame({"month": rev["month"].to_numpy(), "group": label, "component": component})
    parts["actual"] = rev["revenue"].to_numpy(dtype="float64")
    table = parts.groupby(["month", "group", "component"])["actual"].sum().reset_index()
    frames = [table, table.groupby(["month", "group"])["actual"].sum().reset_index().assign(component="total")]
    if by is not None:
        every = pd.concat(frames, ignore_index=True)
        frames.append(every.groupby(["month", "component"])["actual"].sum().reset_index().assign(group="total"))
    return pd.concat(frames, ignore_index=True)


def _rerun(run: RunRecord, run_view: Book, fc: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    """The run's forecast made again on the data now known as of its date; None (and why) when it cannot be."""
    params = run.forecast_parameters
    missing = [k for k in _RERUN_KEYS if k not in params]
    if missing:
        return None, f"the forecast record lacks {', '.join(missing)}, so it cannot be re-run"
    probabilities = None
    if params.get("model_version"):
        scores = run.scores
        if scores is None:
            return None, "the forecast used a renewal model but the run kept no scores to re-run it with"
        probabilities = scores[[c for c in ("contract_id", "renewal_probability", "model_version") if c in scores]]
    try:
        again = revenue_forecast(
            run_view,
            run.as_of,
            horizon_months=int(params["horizon_months"]),
            n_sims=int(params["n_sims"]),
            by=params["by"],
            random_state=params["seed"],
            renewal_probabilities=probabilities,
        )
    except RenewForecastError as exc:
        return None, f"the forecast could not be re-run: {exc}"
    frame = again.frame
    return frame[frame["scenario"] == fc["scenario"].iloc[0]], ""


def _grade_forecast(run: RunRecord, now: Book, run_view: Book, last_full: pd.Timestamp, rerun: bool):
    fc = run.forecast
    if fc is None or fc.empty:
        return None, "no forecast kept", False
    fc = fc[fc["scenario"] == fc["scenario"].iloc[0]].assign(month=lambda x: pd.to_datetime(x["month"]))
    months = pd.DatetimeIndex(sorted(fc["month"].unique()))
    horizon = pd.Series(np.arange(1, len(months) + 1), index=months)
    ended = months[months <= last_full]
    if not len(ended):
        return None, "", False
    by = run.forecast_parameters.get("by") if set(fc["group"]) != {"total"} else None
    try:
        actual = _actuals(now, run_view, ended, by)
    except RenewForecastError:  # the grouping column is gone from the data: the whole book only
        by = None
        actual = _actuals(now, run_view, ended, None)
    if by is None:
        fc = fc[fc["group"] == "total"]
    published = _buckets(fc[fc["month"].isin(ended)])
    out = published.merge(actual, on=["month", "group", "component"], how="left")
    out["actual"] = out["actual"].fillna(0.0)  # nothing recognised in that group and month
    note, did = "", False
    if rerun:
        again, note = _rerun(run, run_view, fc)
        if again is not None:
            did = True
            redo = _buckets(again[again["month"].isin(ended)])[["month", "group", "component", "published"]]
            out = out.merge(redo.rename(columns={"published": "rerun"}), on=["month", "group", "component"], how="left")
    if "rerun" not in out:
        out["rerun"] = np.nan
    out.insert(0, "run_id", run.run_id)
    out.insert(1, "as_of", run.as_of)
    out["horizon"] = out["month"].map(horizon).astype("int64")
    out["error"] = out["actual"] - out["published"]
    out["model_error"] = out["actual"] - out["rerun"]
    out["data_change"] = out["rerun"] - out["published"]
    scale = out["actual"].abs().where(out["actual"] != 0)
    out["ape"] = out["error"].abs() / scale
    out["bias"] = (out["published"] - out["actual"]) / scale
    out["ape_rerun"] = out["model_error"].abs() / scale
    has = out["p10"].notna() & out["p90"].notna()
    out["inside_p10_p90"] = ((out["actual"] >= out["p10"]) & (out["actual"] <= out["p90"])).astype("float64").where(has)
    out["pinball"] = pd.Series(
        pinball_loss(out["actual"], {q: out[c] for c, q in QUANTILES.items()}), index=out.index
    ).where(has & out["p50"].notna())
    return out, note, did


def _forecast_summary(forecast: pd.DataFrame) -> pd.DataFrame:
    f = forecast[forecast["group"] == "total"]
    columns = [
        "component",
        "horizon",
        "runs",
        "months",
        "mape",
        "mape_rerun",
        "bias",
        "coverage_p10_p90",
        "pinball",
        "mean_error",
        "mean_model_error",
        "mean_data_change",
    ]
    if f.empty:
        return pd.DataFrame(columns=columns)
    g = f.groupby(["component", "horizon"])
    out = pd.DataFrame(
        {
            "runs": g["run_id"].nunique(),
            "months": g.size(),
            "mape": g["ape"].mean(),
            "mape_rerun": g["ape_rerun"].mean(),
            "bias": g["bias"].mean(),
            "coverage_p10_p90": g["inside_p10_p90"].mean(),
            "pinball": g["pinball"].mean(),
            "mean_error": g["error"].mean(),
            "mean_model_error": g["model_error"].mean(),
            "mean_data_change": g["data_change"].mean(),
        }
    ).reset_index()
    order = {c: i for i, c in enumerate(GRADED_COMPONENTS)}
    out = out.sort_values(["component", "horizon"], key=lambda s: s.map(order) if s.name == "component" else s)
    return out[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- #
# The renewal probabilities
# --------------------------------------------------------------------------- #


def _grade_scores(run: RunRecord, now: Book, run_view: Book, decided: pd.DataFrame) -> pd.DataFrame | None:
    scores = run.scores
    if scores is None or scores.empty:
        return None
    then = renewal_decisions(run_view)
    open_then = then.loc[then["outcome"] == "open", "contract_id"]
    s = scores[scores["contract_id"].isin(open_then) & scores["contract_id"].isin(decided["contract_id"])]
    s = s.merge(decided[["contract_id", "outcome"]], on="contract_id", how="inner")
    # A record may hold contracts it published no probability for: there is nothing of theirs to grade.
    s = s[s["renewal_probability"].notna()]
    accounts = now.accounts.drop_duplicates("account_id").set_index("account_id")
    segment = (
        s["account_id"].map(accounts["segment"]) if "segment" in accounts and "account_id" in s else pd.Series(None)
    )
    out = pd.DataFrame(
        {
            "run_id": run.run_id,
            "as_of": run.as_of,
            "contract_id": s["contract_id"].astype(str).to_numpy(),
            "account_id": s["account_id"].to_numpy() if "account_id" in s else None,
            "segment": pd.Series(segment, dtype=object).to_numpy() if len(s) else np.empty(0, dtype=object),
            "risk_band": s["risk_band"].to_numpy() if "risk_band" in s else None,
            "end_date": pd.to_datetime(s["end_date"]).to_numpy() if "end_date" in s else pd.NaT,
            "renewal_probability": s["renewal_probability"].to_numpy(dtype="float64"),
            "outcome": s["outcome"].to_numpy(),
            "renewed": (s["outcome"] == "renewed").astype("int64").to_numpy(),
            "model_version": s["model_version"].to_numpy() if "model_version" in s else run.model_version,
        }
    )
    return out[_SCORE_COLUMNS]


def _metrics(frame: pd.DataFrame) -> dict[str, float]:
    m = classification_metrics(frame["renewed"], frame["renewal_probability"])
    return {
        "contracts": float(len(frame)),
        "renewal_rate": m["renewal_rate"],
        "mean_probability": float(frame["renewal_probability"].mean()),
        "brier": m["brier"],
        "ece": m["ece"],
        "roc_auc": m["roc_auc"],
        "log_loss": m["log_loss"],
    }


def _scores_summary(scores: pd.DataFrame) -> pd.DataFrame:
    rows = []
    scopes = [(run_id, part) for run_id, part in scores.groupby("run_id", sort=False)]
    if len(scores):
        scopes.append(("all", scores))
    for run_id, part in scopes:
        rows.append({"run_id": run_id, "slice": "overall", "value": "all", **_metrics(part)})
        for column in ("risk_band", "segment"):
            for value, sub in part.groupby(part[column].astype(object).fillna("(none)"), sort=True):
                rows.append({"run_id": run_id, "slice": column, "value": str(value), **_metrics(sub)})
    return pd.DataFrame(rows, columns=["run_id", "slice", "value", *_SUMMARY_METRICS])


#: Backtest column -> the manifest metric ``renewforecast train`` records it under.
_BACKTEST_METRICS = {
    "contracts": "backtest_test",
    "brier": "model_brier",
    "ece": "model_ece",
    "roc_auc": "model_roc_auc",
    "oracle_brier": "oracle_brier",
    "oracle_ece": "oracle_ece",
    "oracle_roc_auc": "oracle_roc_auc",
}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


def _backtest(versions: list[str], models_dir: str | os.PathLike[str] | None) -> pd.DataFrame:
    columns = ["model_version", *_BACKTEST_METRICS]
    rows = []
    for version in versions if models_dir is not None else []:
        folder = Path(models_dir) / version
        if not folder.is_dir():
            continue
        try:
            metrics = load_manifest(folder).get("metrics") or {}
        except ModelRefused as exc:
            logger.warning("The backtest figures of model %s were not read: %s", version, exc)
            continue
        rows.append(
            {
                "model_version": version,
                **{column: _number(metrics.get(key)) for column, key in _BACKTEST_METRICS.items()},
            }
        )
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- #
# What the data learnt about the past
# --------------------------------------------------------------------------- #


def _revisions(run: RunRecord, now: Book, run_view: Book) -> list[dict[str, Any]]:
    rows = []
    for name, frame in run_view.tables.items():
        kept = run.view.get(name) or {}
        created = now.tables[name]
        after = (
            int((created["created_date"] > run.as_of).sum())
            if "created_date" in created.columns and len(created)
            else 0
        )
        rows.append(
            {
                "run_id": run.run_id,
                "as_of": run.as_of,
                "table": name,
                "rows_at_run": kept.get("rows"),
                "rows_now": len(frame),
                "changed": (content_fingerprint(frame) != kept["fingerprint"]) if "fingerprint" in kept else None,
                "created_after": after,
            }
        )
    return rows


# --------------------------------------------------------------------------- #
# Entry point
# --------------------------------------------------------------------------- #


def grade_runs(
    reports_dir: str | os.PathLike[str],
    book: Book,
    *,
    as_of: Any = None,
    models_dir: str | os.PathLike[str] | None = None,
    rerun: bool = True,
) -> TrackRecord:
    """Grade every earlier published run against the data as of ``as_of``.

    Parameters
    ----------
    reports_dir : path-like
        The reports folder (``renewforecast report --out``); every run with a
        record (:func:`renewforecast.analyses.record.published_records`) dated
        before ``as_of`` is graded.
    book : Book
        The data to grade against; only what it knew at the end of ``as_of``
        is used (:meth:`Book.as_of`), so grading the whole Book as of a date
        gives the same grades as grading ``book.as_of(date)``.
    as_of : date-like, optional
        The grading date (default: the Book's export date). Forecast months
        ending on or before it are graded, and renewal decisions known by it.
    models_dir : path-like, optional
        The model folder (``models/renewal``): the backtest figures each
        graded model version was saved with are read from its manifest.
    rerun : bool, default True
        Re-run each forecast on today's data as of its date, to split every
        miss into ``model_error`` and ``data_change``; False leaves them
        missing (faster).

    Returns
    -------
    TrackRecord
        Tidy tables: ``runs``, ``forecast``, ``forecast_summary``, ``scores``,
        ``scores_summary``, ``backtest``, ``revisions``, and ``summary()``.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> track = rf.grade_runs(tempfile.mkdtemp(), rf.Book.empty(), as_of="2026-10-31")
    >>> len(track.runs), track.note.startswith("No earlier run")
    (0, True)
    """
    cut = book.resolve_as_of(as_of) if as_of is not None or book.data_end is not None else None
    if cut is None:
        raise RenewForecastError("the Book is empty: give the grading date (as_of)")
    now = book.as_of(cut)
    last_full = last_month_end(cut)
    runs = [r for r in published_records(reports_dir) if r.as_of < cut]
    decided = renewal_decisions(now) if runs else pd.DataFrame(columns=["contract_id", "outcome"])
    decided = decided[decided["outcome"] != "open"]
    forecasts, scores, revisions, listing = [], [], [], []
    for run in runs:
        run_view = now.as_of(run.as_of)
        graded, note, did = _grade_forecast(run, now, run_view, last_full, rerun)
        if graded is not None:
            forecasts.append(graded)
        s = _grade_scores(run, now, run_view, decided)
        if s is not None and len(s):
            scores.append(s)
        if run.view:
            revisions.extend(_revisions(run, now, run_view))
        listing.append(
            {
                "run_id": run.run_id,
                "as_of": run.as_of,
                "published": run.published,
                "model_version": run.model_version,
                "months_graded": 0 if graded is None else int(graded["month"].nunique()),
                "contracts_graded": 0 if s is None else len(s),
                "rerun": did,
                "note": note,
            }
        )
    forecast = (
        pd.concat(forecasts, ignore_index=True) if forecasts else pd.DataFrame(columns=[*_FORECAST_COLUMNS, "bias"])
    )
    forecast = forecast.reindex(columns=[*_FORECAST_COLUMNS, "bias", "ape_rerun"])
    if len(forecast):
        order = {c: i for i, c in enumerate(GRADED_COMPONENTS)}
        forecast = forecast.sort_values(
            ["as_of", "run_id", "group", "component", "month"],
            key=lambda s: s.map(order) if s.name == "component" else s,
            kind="stable",
        ).reset_index(drop=True)
    graded_scores = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=_SCORE_COLUMNS)
    versions = sorted({str(v) for v in graded_scores["model_version"].dropna()}) or sorted(
        {r.model_version for r in runs if r.model_version}
    )
    return TrackRecord(
        as_of=cut,
        runs=pd.DataFrame(
            listing,
            columns=[
                "run_id",
                "as_of",
                "published",
                "model_version",
                "months_graded",
                "contracts_graded",
                "rerun",
                "note",
            ],
        ),
        forecast=forecast,
        forecast_summary=_forecast_summary(forecast),
        scores=graded_scores,
        scores_summary=_scores_summary(graded_scores),
        backtest=_backtest(versions, models_dir),
        revisions=pd.DataFrame(
            revisions, columns=["run_id", "as_of", "table", "rows_at_run", "rows_now", "changed", "created_after"]
        ).astype({"changed": "boolean"}),  # missing: the run kept no fingerprint of the table
        calibration=calibration_table(graded_scores["renewed"], graded_scores["renewal_probability"]),
    )
