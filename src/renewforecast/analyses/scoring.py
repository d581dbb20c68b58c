"""The scoring API for CRM batch jobs: one row per contract, and a Salesforce upsert CSV."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from renewforecast.atomic import atomic_write_text
from renewforecast.book import Book
from renewforecast.exceptions import RenewForecastError
from renewforecast.models.features import model_signals, renewal_features
from renewforecast.models.registry import load_model

__all__ = [
    "DEFAULT_CRM_FIELDS",
    "SCORE_COLUMNS",
    "arr_at_risk_by_quarter",
    "crm_upsert_rows",
    "expected_renewal_rate",
    "neutralise_formula",
    "score_contracts",
    "write_crm_upsert",
]

SCORE_COLUMNS = [
    "contract_id",
    "account_id",
    "end_date",
    "arr",
    "renewal_probability",
    "risk_band",
    "expected_renewal_arr",
    "arr_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "model_version",
    "scored_at",
]

#: Score column -> Salesforce custom field on Contract (override in write_crm_upsert).
DEFAULT_CRM_FIELDS = {
    "renewal_probability": "Renewal_Probability__c",
    "risk_band": "Renewal_Risk_Band__c",
    "arr_at_risk": "ARR_At_Risk__c",
    "reason_1": "Renewal_Reason_1__c",
    "reason_2": "Renewal_Reason_2__c",
    "reason_3": "Renewal_Reason_3__c",
    # Which saved model produced the figures, so a stale or refused model is
    # visible in the CRM next to the probabilities it left behind.
    "model_version": "Renewal_Model_Version__c",
    "scored_at": "Renewal_Scored_At__c",
}

#: Lower bounds of renewal probability for each band, highest first.
DEFAULT_BANDS = (("low", 0.8), ("medium", 0.6), ("high", 0.0))


class ScoringInputError(RenewForecastError):
    """The input does not match what the model was trained on."""


def _resolve_model(model) -> tuple[Any, str]:
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    version = getattr(model, "model_version_", None) or "unsaved"
    return model, version


def score_contracts(
    book_or_features: Book | pd.DataFrame, model="models/renewal", as_of=None, *, bands=DEFAULT_BANDS, scored_at=None
) -> pd.DataFrame:
    """Renewal probability, risk and reasons for every contract coming up for renewal.

    Parameters
    ----------
    book_or_features : Book or DataFrame
        A Book (its open contracts are featurised as of ``as_of``), or a
        prepared feature frame indexed by ``contract_id`` that holds at
        least the model's feature columns; optional columns ``account_id``,
        ``end_date`` and ``arr`` are carried into the output.
    model : path or fitted RenewalModel, default "models/renewal"
        A saved model folder (loaded with every check of
        :func:`renewforecast.load_model`) or a fitted model.
    as_of : date-like, optional
        Required with a Book: the scoring date.
    bands : sequence of (name, lower bound), default low >= 0.8, medium >= 0.6, high below
        Risk bands by renewal probability.
    scored_at : Timestamp, optional
        Recorded in the output (default: now, UTC).

    Returns
    -------
    DataFrame
        One row per contract with :data:`SCORE_COLUMNS`: ``renewal_probability``,
        ``risk_band``, ``expected_renewal_arr`` = probability x ARR,
        ``arr_at_risk`` = (1 - probability) x ARR, the three strongest
        reasons, the model version and ``scored_at``.

    Raises
    ------
    ScoringInputError
        When feature columns the model needs are missing (new categories are
        fine: they are treated as unknown).

    Warns
    -----
    UnusedSignalsWarning
        With a Book whose signals have numeric columns the model was not
        trained on: they are ignored, and not featurised.

    Notes
    -----
    Never prints or logs data: batch jobs decide what to log.
    """
    model, version = _resolve_model(model)
    if isinstance(book_or_features, Book):
        if as_of is None:
            raise ScoringInputError("score_contracts needs as_of when given a Book")

        cut = pd.Timestamp(as_of).normalize()
        # Signal columns the model was not trained on are not featurised (one warning says how many).
        trained = list(getattr(model, "feature_names_in_", []))
        signals = model_signals(book_or_features, trained) if trained else None
        features = renewal_features(book_or_features, cut, signals=signals)
        con = book_or_features.contracts.drop_duplicates("contract_id").set_index("contract_id")
        meta = pd.DataFrame(
            {"account_id": features.index.map(con["account_id"]), "end_date": features.index.map(con["end_date"])},
            index=features.index,
        )
    elif isinstance(book_or_features, pd.DataFrame):
        features = book_or_features
        meta = pd.DataFrame(
            {c: features[c] for c in ("account_id", "end_date") if c in features.columns}, index=features.index
        )
    else:
        raise ScoringInputError(
            f"score_contracts takes a Book or a feature DataFrame, not {type(book_or_features).__name__}"
        )
    needed = list(getattr(model, "feature_names_in_", []))
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise ScoringInputError(
            f"the feature frame lacks {len(missing)} column(s) the model was trained on: {missing[:20]}"
            + (" ..." if len(missing) > 20 else "")
            + f" (model version {version})"
        )
    n = len(features)
    X = features[needed] if needed else features
    if n:
        proba, reasons = model.predict_proba_with_reasons(X, top=3)
        proba = proba[:, 1]
    else:
        proba, reasons = np.empty(0), pd.DataFrame({f"reason_{k}": [] for k in (1, 2, 3)})
    arr = features["arr"].to_numpy(dtype=float) if "arr" in features.columns else np.full(n, np.nan)
    names = np.array([b[0] for b in bands], dtype=object)
    lows = np.array([b[1] for b in bands], dtype=float)
    band_idx = np.argmax(proba[:, None] >= lows[None, :], axis=1) if n else np.empty(0, dtype=int)
    out = pd.DataFrame(
        {
            "contract_id": features.index.astype(str),
            "account_id": meta["account_id"].to_numpy() if "account_id" in meta else np.full(n, None),
            "end_date": meta["end_date"].to_numpy() if "end_date" in meta else np.full(n, pd.NaT),
            "arr": arr,
            "renewal_probability": proba,
            "risk_band": names[band_idx] if n else np.empty(0, dtype=object),
            "expected_renewal_arr": proba * arr,
            "arr_at_risk": (1.0 - proba) * arr,
            "reason_1": reasons.get("reason_1", pd.Series(dtype=object)).to_numpy(),
            "reason_2": reasons.get("reason_2", pd.Series([None] * n)).to_numpy(),
            "reason_3": reasons.get("reason_3", pd.Series([None] * n)).to_numpy(),
            "model_version": version,
            "scored_at": pd.Timestamp(scored_at) if scored_at is not None else pd.Timestamp.now(tz="UTC").floor("s"),
        }
    )
    return out[SCORE_COLUMNS].reset_index(drop=True)


def expected_renewal_rate(arr: float, arr_at_risk: float) -> float:
    """Share of the ARR coming up for renewal that is expected to renew: 1 - ARR at risk / ARR.

    Parameters
    ----------
    arr, arr_at_risk : float
        Summed over the same contracts (:func:`score_contracts` columns).

    Returns
    -------
    float
        NaN when there is no ARR.

    Examples
    --------
    >>> expected_renewal_rate(1000.0, 100.0), expected_renewal_rate(0.0, 0.0)
    (0.9, nan)
    """
    return 1 - arr_at_risk / arr if arr else float("nan")


def arr_at_risk_by_quarter(scores: pd.DataFrame, as_of: Any, quarters: int = 2) -> pd.DataFrame:
    """ARR coming up for renewal in the calendar quarters after ``as_of``, and how much of it is at risk.

    Parameters
    ----------
    scores : DataFrame
        :func:`score_contracts` output as of ``as_of``.
    as_of : date-like
    quarters : int, default 2
        The rest of the quarter after ``as_of``, and the ones after it.

    Returns
    -------
    DataFrame
        One row per quarter, also when no contract ends in it: ``quarter``
        (``"Q4 2026"``), ``contracts``, ``arr``, ``arr_at_risk`` (ARR x (1 -
        renewal probability), summed) and ``expected_renewal_rate``
        (:func:`expected_renewal_rate`).

    Examples
    --------
    >>> import pandas as pd
    >>> scores = pd.DataFrame({"end_date": pd.to_datetime(["2026-11-30", "2027-02-28", "2027-06-30"]),
    ...                        "arr": [1000.0, 2000.0, 4000.0], "arr_at_risk": [100.0, 1000.0, 3600.0]})
    >>> arr_at_risk_by_quarter(scores, "2026-10-31")[["quarter", "arr_at_risk", "expected_renewal_rate"]]
       quarter  arr_at_risk  expected_renewal_rate
    0  Q4 2026        100.0                    0.9
    1  Q1 2027       1000.0                    0.5
    """
    as_of = pd.Timestamp(as_of).normalize()
    first = (as_of + pd.Timedelta(days=1)).to_period("Q")
    ends = pd.to_datetime(scores["end_date"])
    rows = []
    for q in (first + k for k in range(quarters)):
        inside = (ends > as_of) & (ends >= q.start_time) & (ends <= q.end_time)
        part = scores[inside.to_numpy()]
        rows.append(
            {
                "quarter": f"Q{q.quarter} {q.year}",
                "contracts": len(part),
                "arr": float(part["arr"].sum()),
                "arr_at_risk": float(part["arr_at_risk"].sum()),
            }
        )
    out = pd.DataFrame(rows, columns=["quarter", "contracts", "arr", "arr_at_risk"])
    out["expected_renewal_rate"] = [
        expected_renewal_rate(a, r) for a, r in zip(out["arr"], out["arr_at_risk"], strict=True)
    ]
    return out


_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise_formula(value: object) -> object:
    """A text cell that a spreadsheet would read as a formula, with a leading apostrophe (OWASP CSV injection).

    Numbers and other text are returned unchanged.

    Examples
    --------
    >>> neutralise_formula("=HYPERLINK(1)"), neutralise_formula("Acme"), neutralise_formula(-3)
    ("'=HYPERLINK(1)", 'Acme', -3)
    """
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value


def crm_upsert_rows(
    scores: pd.DataFrame,
    *,
    id_field: str = "Id",
    key: str = "contract_id",
    fields: dict[str, str] | None = None,
    probability_as_percent: bool = True,
) -> pd.DataFrame:
    """The rows of a Salesforce upsert of scores: one per contract, columns named by API name.

    Shared by :func:`write_crm_upsert` (a CSV) and
    :func:`renewforecast.push_scores` (the Bulk API), so both send the same
    values. Numbers are floats (None when missing), probabilities 0-100 with
    one decimal and amounts to the cent; text is a str ("" when missing),
    with :func:`neutralise_formula` applied; times are ISO 8601 text.

    Parameters
    ----------
    scores : DataFrame
        Output of :func:`score_contracts`.
    id_field : str, default "Id"
    key : str, default "contract_id"
    fields : dict, optional
        Score column -> field API name; default :data:`DEFAULT_CRM_FIELDS`.
    probability_as_percent : bool, default True

    Returns
    -------
    DataFrame
        Object dtype, columns ``[id_field, *fields.values()]``.

    Examples
    --------
    >>> scores = pd.DataFrame({"contract_id": ["800A"], "renewal_probability": [0.256]})
    >>> crm_upsert_rows(scores, fields={"renewal_probability": "Renewal_Probability__c"}).to_dict("records")
    [{'Id': '800A', 'Renewal_Probability__c': 25.6}]
    """
    fields = dict(DEFAULT_CRM_FIELDS if fields is None else fields)
    unknown = [c for c in [key, *fields] if c not in scores.columns]
    if unknown:
        raise RenewForecastError(
            f"scores have no column(s) {unknown}: write_crm_upsert takes the output of "
            "score_contracts, or fields= naming the score columns to write"
        )
    names = [key, *fields]
    prepared = []
    for name in names:
        col = scores[name]
        if name == "renewal_probability" and probability_as_percent:
            col = (col.astype(float) * 100).round(1)
        elif name in ("arr", "arr_at_risk", "expected_renewal_arr"):
            col = col.astype(float).round(2)
        if pd.api.types.is_datetime64_any_dtype(col):
            col = col.map(lambda t: "" if pd.isna(t) else t.isoformat())
        if pd.api.types.is_numeric_dtype(col):
            prepared.append([None if pd.isna(v) else float(v) for v in col])
        else:
            prepared.append(
                [
                    "" if v is None or (not isinstance(v, str) and pd.isna(v)) else neutralise_formula(str(v))
                    for v in col
                ]
            )
    columns = [id_field, *fields.values()]
    return pd.DataFrame(dict(zip(columns, prepared, strict=True)), columns=columns, dtype=object)


def write_crm_upsert(
    scores: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    id_field: str = "Id",
    key: str = "contract_id",
    fields: dict[str, str] | None = None,
    probability_as_percent: bool = True,
) -> Path:
    """Write scores as a Salesforce upsert CSV (Data Loader / Bulk API), atomically.

    Parameters
    ----------
    scores : DataFrame
        Output of :func:`score_contracts`.
    path : path-like
    id_field : str, default "Id"
        The external id or record id column Salesforce matches on.
    key : str, default "contract_id"
        Score column written into ``id_field``.
    fields : dict, optional
        Score column -> Salesforce field API name; default :data:`DEFAULT_CRM_FIELDS`.
    probability_as_percent : bool, default True
        Salesforce percent fields take 0-100.

    Returns
    -------
    Path

    Raises
    ------
    RenewForecastError
        When ``scores`` lacks ``key`` or a column named in ``fields`` (by
        default every column of :data:`DEFAULT_CRM_FIELDS`, the model
        version included).

    Notes
    -----
    UTF-8, comma separated, every text field quoted; a text cell that
    starts with ``= + - @`` or a tab or line break is prefixed with ``'`` so
    no spreadsheet runs it as a formula. Numbers are written as plain
    numbers and never prefixed. Dates and times are ISO 8601. By default
    the file carries the model's version in ``Renewal_Model_Version__c``.

    Examples
    --------
    >>> import tempfile
    >>> scores = pd.DataFrame({"contract_id": ["800A"], "renewal_probability": [0.25], "risk_band": ["high"],
    ...     "arr_at_risk": [750.0], "reason_1": ["=seats fell"], "reason_2": [None], "reason_3": [None],
    ...     "model_version": ["20261121T060000Z-1a2b3c"], "scored_at": [pd.Timestamp("2026-11-01", tz="UTC")]})
    >>> path = write_crm_upsert(scores, tempfile.mkdtemp() + "/up.csv")
    >>> print(path.read_text())
    "Id","Renewal_Probability__c","Renewal_Risk_Band__c","ARR_At_Risk__c","Renewal_Reason_1__c",...
    "800A",25.0,"high",750.0,"'=seats fell","","","20261121T060000Z-1a2b3c","2026-11-01T00:00:00+00:00"
    """
    rows = crm_upsert_rows(
        scores, id_field=id_field, key=key, fields=fields, probability_as_percent=probability_as_percent
    )
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(list(rows.columns))
    for row in rows.itertuples(index=False, name=None):
        writer.writerow(["" if v is None else v for v in row])
    target = Path(path)
    atomic_write_text(target, buf.getvalue())
    return target
