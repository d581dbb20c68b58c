"""Honest evaluation of renewal models: a temporal backtest, compared with the truth when known."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from renewforecast.book import Book
from renewforecast.models.features import renewal_training_set
from renewforecast.models.renewal import RenewalModel

__all__ = [
    "RenewalEvaluation",
    "calibration_table",
    "classification_metrics",
    "evaluate_renewal_model",
    "expected_calibration_error",
    "lift_table",
]


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Weighted mean gap between predicted and observed renewal rates in equal-width bins.

    Examples
    --------
    >>> round(expected_calibration_error([1, 0, 1, 1], [0.9, 0.1, 0.8, 0.7]), 3)
    0.175
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    b = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for k in range(n_bins):
        sel = b == k
        if sel.any():
            total += abs(y[sel].mean() - p[sel].mean()) * sel.mean()
    return float(total)


def calibration_table(y, p, n_bins: int = 10) -> pd.DataFrame:
    """Per probability bin: contracts, mean predicted probability, observed renewal rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    b = np.minimum((p * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": b, "y": y, "p": p})
    out = frame.groupby("bin").agg(contracts=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"))
    out.index = [f"{k / n_bins:.1f}-{(k + 1) / n_bins:.1f}" for k in out.index]
    out.index.name = "probability"
    return out.reset_index()


def lift_table(y, p, n_groups: int = 10) -> pd.DataFrame:
    """Churn by decile of risk: decile 1 holds the contracts least likely to renew.

    ``lift`` is the decile's churn rate over the overall churn rate.
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    decile = np.empty(len(p), dtype=int)
    decile[order] = np.arange(len(p)) * n_groups // max(len(p), 1) + 1
    frame = pd.DataFrame({"decile": decile, "churned": 1 - y, "p": p})
    out = (
        frame.groupby("decile")
        .agg(contracts=("churned", "size"), churn_rate=("churned", "mean"), mean_renewal_probability=("p", "mean"))
        .reset_index()
    )
    overall = frame["churned"].mean()
    out["lift"] = out["churn_rate"] / overall if overall > 0 else np.nan
    out["cumulative_churn_captured"] = (out["churn_rate"] * out["contracts"]).cumsum() / max(frame["churned"].sum(), 1)
    return out


def classification_metrics(y, p, n_bins: int = 10) -> dict[str, float]:
    """ROC AUC, PR AUC (of churn), Brier score, log loss and expected calibration error."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    return {
        "contracts": float(len(y)),
        "renewal_rate": float(y.mean()) if len(y) else np.nan,
        "roc_auc": float(roc_auc_score(y, p)) if both else np.nan,
        # PR AUC of the class the team acts on: churn
        "pr_auc_churn": float(average_precision_score(1 - y, 1 - p)) if both else np.nan,
        "brier": float(brier_score_loss(y, p)) if len(y) else np.nan,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else np.nan,
        "ece": expected_calibration_error(y, p, n_bins) if len(y) else np.nan,
    }


@dataclass
class RenewalEvaluation:
    """Result of :func:`evaluate_renewal_model`.

    Attributes
    ----------
    metrics : DataFrame
        One row per scorer (``model``, and ``oracle`` when the truth is
        known), columns as :func:`classification_metrics`.
    calibration : DataFrame
        :func:`calibration_table` of the model on the test decisions.
    lift : DataFrame
        :func:`lift_table` of the model on the test decisions.
    predictions : DataFrame
        Per test contract: ``end_date``, ``renewed``, ``probability`` and
        ``true_probability`` when known.
    model : fitted estimator
        Trained on the decisions before the cut-off.
    cutoff : Timestamp
    n_train, n_test : int
    """

    metrics: pd.DataFrame
    calibration: pd.DataFrame
    lift: pd.DataFrame
    predictions: pd.DataFrame
    model: object
    cutoff: pd.Timestamp
    n_train: int
    n_test: int
    oracle_calibration: pd.DataFrame | None = field(default=None)

    def summary(self) -> pd.DataFrame:
        """The metrics for reading: counts as integers, rates and scores to three decimals."""
        table = self.metrics.set_index("scorer")
        out = pd.DataFrame(index=table.index)
        out["test decisions"] = table["contracts"].astype(int).map("{:,}".format)
        for col in ("renewal_rate", "roc_auc", "pr_auc_churn", "brier", "log_loss", "ece"):
            out[col] = table[col].map("{:.3f}".format)
        return out


def _read_truth(book: Book) -> pd.DataFrame | None:
    path = Path(book.source) / "truth" / "renewal_truth.csv" if book.source else None
    if path is None or not path.exists():
        return None
    return pd.read_csv(path, usecols=["contract_id", "true_probability"], dtype={"contract_id": str})


#: Decided renewals a backtest needs: fewer leave too few on each side of
#: the cut-off for AUC and calibration to mean anything.
MIN_DECISIONS = 20


def evaluate_renewal_model(
    book: Book,
    model=None,
    *,
    cutoff=None,
    as_of=None,
    lead_days: int = 120,
    truth: pd.DataFrame | None = None,
    n_bins: int = 10,
) -> RenewalEvaluation:
    """Temporal backtest: train on decisions before ``cutoff``, score those after.

    Parameters
    ----------
    book : Book
    model : estimator, optional
        An unfitted classifier (cloned before fitting); default
        :class:`renewforecast.RenewalModel` with ``random_state=0``.
    cutoff : date-like, optional
        Decisions whose contract ends before it train the model; the rest
        test it. Default: the median end date of the decisions.
    as_of : date-like, optional
        Only decisions known by then (default: the Book's data end).
    lead_days : int, default 120
        Features as of this many days before each end date.
    truth : DataFrame, optional
        ``contract_id`` and ``true_probability`` of each decision (the demo
        org writes ``truth/renewal_truth.csv``, read automatically when it
        sits next to the export). When given, the same metrics are computed
        from the true probabilities: the best any model could do.
    n_bins : int, default 10

    Returns
    -------
    RenewalEvaluation
    """
    X, y = renewal_training_set(book, as_of, lead_days)
    if len(X) < MIN_DECISIONS:
        raise ValueError(
            f"only {len(X)} past renewal decisions: too few to evaluate a model (at least {MIN_DECISIONS})"
        )
    end = X.index.to_series().map(book.contracts.drop_duplicates("contract_id").set_index("contract_id")["end_date"])
    cut = pd.Timestamp(cutoff) if cutoff is not None else end.quantile(0.5).normalize()
    train, test = (end < cut).to_numpy(), (end >= cut).to_numpy()
    if y[train].nunique() < 2 or test.sum() == 0:
        raise ValueError(
            f"cutoff {cut.date()} leaves {train.sum()} training and {test.sum()} test decisions; "
            "both sides need decisions (and training needs renewals and churn)"
        )
    est = clone(model) if model is not None else RenewalModel(random_state=0)
    if isinstance(est, RenewalModel):
        # A backtest's model only scores the decisions it holds out: a drift profile would cost
        # a second pass over its calibration folds for nothing.
        est.set_params(profile=False)
    est.fit(X[train], y[train])
    p = est.predict_proba(X[test])[:, 1]
    pred = pd.DataFrame(
        {"end_date": end[test].to_numpy(), "renewed": y[test].to_numpy(), "probability": p}, index=X.index[test]
    )
    rows = {"model": classification_metrics(pred["renewed"], pred["probability"], n_bins)}
    truth = truth if truth is not None else _read_truth(book)
    oracle_cal = None
    if truth is not None:
        tp = truth.drop_duplicates("contract_id").set_index("contract_id")["true_probability"]
        pred["true_probability"] = pred.index.to_series().map(tp).to_numpy()
        known = pred.dropna(subset=["true_probability"])
        # Compare like with like: both scorers on the decisions with a known truth.
        rows["model"] = classification_metrics(known["renewed"], known["probability"], n_bins)
        rows["oracle"] = classification_metrics(known["renewed"], known["true_probability"], n_bins)
        oracle_cal = calibration_table(known["renewed"], known["true_probability"], n_bins)
    metrics = pd.DataFrame(rows).T
    metrics.index.name = "scorer"
    return RenewalEvaluation(
        metrics=metrics.reset_index(),
        calibration=calibration_table(pred["renewed"], pred["probability"], n_bins),
        lift=lift_table(pred["renewed"], pred["probability"]),
        predictions=pred,
        model=est,
        cutoff=cut,
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        oracle_calibration=oracle_cal,
    )
