"""Drift: whether the contracts a model scores still look like the ones it learned from.

A fitted :class:`~renewforecast.models.renewal.RenewalModel` keeps a small
*training profile*: for each feature its kind, its bins and how its training
rows fell into them, and the distribution of its out-of-fold renewal
probabilities. Numeric features are binned on their training deciles
(right-closed intervals; the edges are stored), categorical ones by category
(categories unseen in training are pooled into ``other``), and missing values
are a bin of their own; probabilities fall into fixed bins of width 0.01.
:func:`renewforecast.save_model` writes the profile next to the model as plain
JSON, covered by the manifest's hashes and signature.

:func:`drift_report` bins a run's features and scores on the same edges (the
contracts that reached the model's prediction date recently,
:func:`renewforecast.recent_decision_features`) and
measures, per feature, the population stability index (PSI) against the
training profile and, given one, against the previous run's profile
(:func:`feature_profile`, a small table that can be kept as Parquet). Scores
are also compared by the Kolmogorov-Smirnov distance. A PSI at or above the
*watch* threshold (0.10) or the *alert* threshold (0.25) becomes a warning,
and an alert against training a recommendation to retrain, with the evidence.
``docs/guide_analyst.md`` says how to read it and where the thresholds come from.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PROFILE_COLUMNS",
    "PROFILE_FORMAT",
    "PSI_FLOOR",
    "SCORE_EDGES",
    "SCORE_FEATURE",
    "TABLE_COLUMNS",
    "DriftReport",
    "DriftThresholds",
    "compare_profiles",
    "drift_report",
    "feature_profile",
    "population_stability_index",
    "profile_from_json",
    "profile_to_json",
]

#: Smallest share a bin counts with in :func:`population_stability_index`.
#: An empty bin would make ln(a/e) infinite; 0.0001 (0.01 %) is the share
#: evidently's PSI gives empty bins (``get_binned_data`` in
#: ``evidently/calculations/stattests/utils.py``). A bin empty on one side
#: and holding a share s on the other adds (s - 0.0001) x ln(s / 0.0001):
#: 0.046 for s = 1 %, 0.69 for s = 10 %.
PSI_FLOOR = 1e-4

#: Version of the profile's JSON form (``profile.json`` in a saved model).
PROFILE_FORMAT = 1

#: The name the renewal probabilities go by in a profile.
SCORE_FEATURE = "renewal_probability"

#: Inner edges of the fine probability bins (width 0.01) a profile keeps of
#: the scores; PSI sums them into ten bins of width 0.1, the KS distance
#: uses all of them.
SCORE_EDGES: tuple[float, ...] = tuple(round(k / 100, 2) for k in range(1, 100))

#: Columns of a profile frame: one row per bin of each feature, in order.
#: ``slot`` is ``interval`` (numbers and scores, ``lower`` < x <= ``upper``),
#: ``category``, ``other`` (categories the profile had not seen) or ``missing``.
PROFILE_COLUMNS = ["feature", "kind", "slot", "label", "lower", "upper", "count", "share"]

_KINDS = ("numeric", "categorical", "score")
_MAX_CATEGORIES = 30  # the rest are pooled into "other": a profile stays small
_DECILES = np.arange(1, 10) / 10
_EDGE_TOLERANCE = 0.01  # relative: decile edges closer than this are one edge
_SCORE_COARSE = 10  # fine score bins summed per PSI bin (width 0.1)

#: Columns of :attr:`DriftReport.table`.
TABLE_COLUMNS = [
    "against",
    "feature",
    "kind",
    "psi",
    "psi_chance",
    "level",
    "share_missing",
    "n",
    "n_reference",
    "ks",
    "ks_pvalue",
    "note",
]


@dataclass(frozen=True)
class DriftThresholds:
    """PSI levels at which a shift becomes a warning.

    Parameters
    ----------
    watch : float, default 0.10
        From this PSI a shift is worth watching ("minor shift").
    alert : float, default 0.25
        From this PSI a shift is significant: against the training data, a
        reason to retrain.
    noise : float or None, default 0.99
        A PSI is flagged only when sampling alone would give a smaller one
        with this probability: it must also reach :meth:`chance`, the
        ``noise`` quantile of the PSI of two samples of one population.
        That bound falls with the sample sizes, so it matters for small
        books only (a few hundred contracts). None flags on the thresholds
        alone.

    The thresholds are the credit-scoring rule of thumb (Siddiqi,
    *Intelligent Credit Scoring*, 2nd ed., 2017, p. 369): below 0.10 no
    significant shift, 0.10 to 0.25 a minor one, above 0.25 a significant
    one. The bound for chance is Yurdakul's: when nothing changed,
    PSI / (1/n + 1/m) follows a chi-square distribution with bins - 1
    degrees of freedom (Yurdakul, *Statistical Properties of Population
    Stability Index*, PhD dissertation, Western Michigan University, 2018).

    Examples
    --------
    >>> DriftThresholds().level(0.12), DriftThresholds(watch=0.05, alert=0.2).level(0.3)
    ('watch', 'alert')
    >>> round(DriftThresholds().chance(bins=10, n=200, m=1000), 3)  # two samples of one population
    0.13
    >>> DriftThresholds().level(0.12, chance=0.13)
    'ok'
    """

    watch: float = 0.10
    alert: float = 0.25
    noise: float | None = 0.99

    def __post_init__(self) -> None:
        if not (0 < self.watch < self.alert and math.isfinite(self.alert)):
            raise ValueError(f"drift thresholds need 0 < watch < alert, got watch={self.watch}, alert={self.alert}")
        if self.noise is not None and not 0 < self.noise < 1:
            raise ValueError(f"noise must be a probability between 0 and 1 (or None), got {self.noise}")

    def chance(self, bins: int, n: int, m: int) -> float:
        """The PSI two samples of ``n`` and ``m`` rows of one population stay under with probability ``noise``.

        ``(1/n + 1/m)`` times the ``noise`` quantile of chi-square with
        ``bins - 1`` degrees of freedom; 0 with ``noise=None`` or a single bin.
        """
        if self.noise is None or bins < 2 or n < 1 or m < 1:
            return 0.0
        return float(stats.chi2.ppf(self.noise, bins - 1) * (1 / n + 1 / m))

    def level(self, psi: float, chance: float = 0.0) -> str:
        """``ok``, ``watch`` or ``alert`` for a PSI (``not available`` when it is NaN).

        A PSI below ``chance`` (see :meth:`chance`) is ``ok`` whatever its size.
        """
        if psi is None or not math.isfinite(psi):
            return "not available"
        if psi < chance:
            return "ok"
        return "alert" if psi >= self.alert else "watch" if psi >= self.watch else "ok"


DEFAULT_THRESHOLDS = DriftThresholds()


# --------------------------------------------------------------------------- PSI


def population_stability_index(
    expected: Iterable[float], actual: Iterable[float], *, floor: float = PSI_FLOOR
) -> float:
    """Population stability index of two distributions over the same bins.

    PSI = sum over bins of (a - e) x ln(a / e), where e and a are each
    side's share of the bin. It is the Jeffreys divergence (the symmetrised
    Kullback-Leibler divergence) of the two binned distributions: 0 when the
    shares are equal, positive otherwise, and the same whichever side is
    called expected.

    Parameters
    ----------
    expected, actual : array-like of float
        Counts or shares per bin, in the same bin order; each side is
        divided by its own total.
    floor : float, default :data:`PSI_FLOOR`
        Shares below it count as ``floor``, so that an empty bin adds a
        large but finite amount.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When the sides have different lengths, a value is negative or not
        finite, or a side sums to zero.

    Examples
    --------
    >>> round(population_stability_index([0.25, 0.25, 0.25, 0.25], [0.10, 0.20, 0.30, 0.40]), 4)
    0.2282
    >>> population_stability_index([30, 70], [3, 7])
    0.0
    """
    e = np.asarray(list(expected) if not isinstance(expected, np.ndarray) else expected, dtype=float)
    a = np.asarray(list(actual) if not isinstance(actual, np.ndarray) else actual, dtype=float)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected and actual need the same bins, got {e.shape} and {a.shape}")
    for name, side in (("expected", e), ("actual", a)):
        if not np.isfinite(side).all() or (side < 0).any():
            raise ValueError(f"{name} holds a negative or non-finite count")
        if side.sum() <= 0:
            raise ValueError(f"{name} is empty: every bin is zero")
    if not 0 < floor < 1:
        raise ValueError(f"floor must be between 0 and 1, got {floor}")
    e = np.maximum(e / e.sum(), floor)
    a = np.maximum(a / a.sum(), floor)
    # ln a - ln e rather than ln(a / e): swapping the sides then flips both factors' signs exactly.
    return float(np.sum((a - e) * (np.log(a) - np.log(e))))


# --------------------------------------------------------------------------- profiles


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _numbers(column: pd.Series | None, n: int) -> np.ndarray:
    if column is None:
        return np.full(n, np.nan)
    # Text where a number belongs is missing here, as it is to the model.
    return pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()


def _texts(column: pd.Series | None, n: int) -> np.ndarray:
    if column is None:
        return np.full(n, None, dtype=object)
    # As the model reads categories: text of the value, blanks missing.
    text = column.astype("string")
    return text.astype(object).where(text.notna(), None).to_numpy()


def _interval_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["any value"]
    inner = [f"({lo:.6g}, {hi:.6g}]" for lo, hi in itertools.pairwise(edges)]
    return [f"<= {edges[0]:.6g}", *inner, f"> {edges[-1]:.6g}"]


def _interval_rows(name: str, kind: str, edges: list[float], values: np.ndarray) -> list[dict[str, Any]]:
    missing = np.isnan(values)
    # searchsorted(side="left") puts x in the bin whose upper edge is the first >= x: right-closed bins.
    where = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="left")
    counts = np.bincount(where, minlength=len(edges) + 1)
    bounds = [-math.inf, *edges, math.inf]
    rows = [
        {"feature": name, "kind": kind, "slot": "interval", "label": label, "lower": lo, "upper": hi, "count": int(c)}
        for label, lo, hi, c in zip(_interval_labels(edges), bounds[:-1], bounds[1:], counts, strict=True)
    ]
    rows.append(_missing_row(name, kind, int(missing.sum())))
    return rows


def _category_rows(name: str, categories: list[str], values: np.ndarray) -> list[dict[str, Any]]:
    present = pd.Series(values[pd.notna(values)], dtype=object)
    counts = present.value_counts()
    known = [int(counts.get(c, 0)) for c in categories]
    rows = [
        {"feature": name, "kind": "categorical", "slot": "category", "label": c, "count": k}
        for c, k in zip(categories, known, strict=True)
    ]
    rows.append(
        {"feature": name, "kind": "categorical", "slot": "other", "label": "other", "count": len(present) - sum(known)}
    )
    rows.append(_missing_row(name, "categorical", int(len(values) - len(present))))
    return rows


def _missing_row(name: str, kind: str, count: int) -> dict[str, Any]:
    return {"feature": name, "kind": kind, "slot": "missing", "label": "missing", "count": count}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=PROFILE_COLUMNS[:-1])
    out["lower"] = out["lower"].astype("float64")
    out["upper"] = out["upper"].astype("float64")
    out["count"] = out["count"].astype("int64")
    totals = out.groupby("feature", sort=False)["count"].transform("sum")
    out["share"] = (out["count"] / totals.where(totals > 0)).fillna(0.0).astype("float64")
    for col in ("feature", "kind", "slot", "label"):
        out[col] = out[col].astype(object)
    return out[PROFILE_COLUMNS].reset_index(drop=True)


def _bins_of(like: pd.DataFrame) -> dict[str, tuple[str, list]]:
    """Per feature of a profile frame: its kind and its inner edges or categories, in order."""
    out: dict[str, tuple[str, list]] = {}
    for name, rows in like.groupby("feature", sort=False):
        kind = str(rows["kind"].iloc[0])
        if kind == "categorical":
            out[str(name)] = (kind, [str(v) for v in rows.loc[rows["slot"] == "category", "label"]])
        else:
            uppers = rows.loc[rows["slot"] == "interval", "upper"].to_numpy(dtype=float)
            out[str(name)] = (kind, [float(v) for v in uppers[:-1]])
    return out


def _as_profile_frame(like: Any) -> pd.DataFrame:
    if isinstance(like, pd.DataFrame):
        missing = [c for c in PROFILE_COLUMNS if c not in like.columns]
        if missing:
            raise ValueError(f"like is not a profile frame: it lacks the column(s) {missing}")
        return like
    if isinstance(like, Mapping):
        return profile_from_json(like)
    raise TypeError(f"like must be a profile frame or a training profile, not {type(like).__name__}")


def feature_profile(
    features: pd.DataFrame,
    like: pd.DataFrame | Mapping[str, Any] | None = None,
    *,
    scores: Any = None,
) -> pd.DataFrame:
    """How the rows of ``features`` (and their scores) fall into a profile's bins.

    Parameters
    ----------
    features : DataFrame
        One row per contract, e.g. :func:`renewforecast.recent_decision_features`.
    like : profile frame or training profile, optional
        Whose bins to use: a frame this function returned (the previous
        run's) or a model's ``training_profile_``. Its features are
        profiled, in its order; a feature absent from ``features`` counts
        as missing in every row. Without it the bins come from ``features``
        itself: numeric columns (not booleans) on their deciles, every
        other column by category (the 30 most frequent; the rest are
        ``other``).
    scores : array-like or DataFrame, optional
        Renewal probabilities of the same rows (a DataFrame's
        ``renewal_probability`` column), profiled as feature
        :data:`SCORE_FEATURE` on the fine bins :data:`SCORE_EDGES` (or
        ``like``'s).

    Returns
    -------
    DataFrame
        :data:`PROFILE_COLUMNS`: one row per bin of each feature; ``share``
        is the bin's share of the feature's rows. Small (tens of rows per
        feature, about a hundred for the scores) and of plain column types,
        so it can be written with ``to_parquet`` and passed as ``previous=``
        to :func:`drift_report` in the next run.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"arr": [float(v) for v in range(1, 11)], "segment": ["SMB"] * 7 + ["Enterprise"] * 3})
    >>> profile = feature_profile(X)
    >>> profile.loc[profile["feature"] == "segment", ["label", "count"]].to_dict("list")
    {'label': ['SMB', 'Enterprise', 'other', 'missing'], 'count': [7, 3, 0, 0]}
    >>> later = feature_profile(X.assign(segment="Mid-Market"), like=profile)
    >>> later.loc[later["feature"] == "segment", "count"].tolist()
    [0, 0, 10, 0]
    """
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a DataFrame, not {type(features).__name__}")
    n = len(features)
    if scores is not None and SCORE_FEATURE in {str(c) for c in features.columns}:
        raise ValueError(f"a feature is named {SCORE_FEATURE!r}, the name the scores go by in a profile: rename it")
    rows: list[dict[str, Any]] = []
    if like is not None:
        bins = _bins_of(_as_profile_frame(like))
    else:
        bins = {}
        for name in features.columns:
            col = features[name]
            if _is_numeric(col):
                bins[str(name)] = ("numeric", _decile_edges(_numbers(col, n)))
            else:
                bins[str(name)] = ("categorical", _top_categories(_texts(col, n)))
        bins[SCORE_FEATURE] = ("score", list(SCORE_EDGES))
    columns = {str(c): c for c in features.columns}
    for name, (kind, spec) in bins.items():
        if kind == "score":
            continue
        column = features[columns[name]] if name in columns else None
        if kind == "numeric":
            rows.extend(_interval_rows(name, kind, spec, _numbers(column, n)))
        else:
            rows.extend(_category_rows(name, spec, _texts(column, n)))
    if scores is not None:
        kind, spec = bins.get(SCORE_FEATURE, ("score", list(SCORE_EDGES)))
        rows.extend(_interval_rows(SCORE_FEATURE, "score", spec, _score_values(scores, n)))
    return _frame(rows)


def _decile_edges(values: np.ndarray) -> list[float]:
    """The distinct deciles, less those within 1 % of the next one up.

    Lumpy features repeat a few exact values: a contract's tenure 120 days
    before the end of its first year is 8.02 or 8.05 months depending on
    the calendar. A decile edge between two such near-equal values would
    give each its own bin, and a later sample that happens to hold only
    one of them a large PSI for no change at all; the upper one is kept.
    """
    finite = values[np.isfinite(values)]
    if not len(finite):
        return []
    # Deciles that are observed values (the smallest x with F(x) >= q), each closing its bin.
    edges = [float(v) for v in np.unique(np.quantile(finite, _DECILES, method="inverted_cdf"))]
    kept = [edges[-1]]
    for edge in reversed(edges[:-1]):
        if kept[-1] - edge > _EDGE_TOLERANCE * max(abs(edge), abs(kept[-1])):
            kept.append(edge)
    return kept[::-1]


def _top_categories(values: np.ndarray) -> list[str]:
    present = pd.Series(values[pd.notna(values)], dtype=object)
    counts = present.value_counts()
    # Most frequent first; equal counts in alphabetical order, so the profile does not depend on row order.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [str(k) for k, _ in ranked[:_MAX_CATEGORIES]]


def _score_values(scores: Any, n: int | None) -> np.ndarray:
    if isinstance(scores, pd.DataFrame):
        if SCORE_FEATURE not in scores.columns:
            raise ValueError(f"scores must have a {SCORE_FEATURE!r} column (score_contracts output)")
        scores = scores[SCORE_FEATURE]
    values = np.asarray(scores, dtype=float).ravel()
    if n is not None and len(values) != n:
        raise ValueError(f"scores has {len(values)} values for {n} rows of features")
    return values


# --------------------------------------------------------------------------- JSON form


def profile_to_json(profile: pd.DataFrame) -> dict[str, Any]:
    """The JSON form of a profile frame, as a saved model's ``profile.json`` holds it.

    Parameters
    ----------
    profile : DataFrame
        :func:`feature_profile` output.

    Returns
    -------
    dict
        ``format`` (:data:`PROFILE_FORMAT`) and ``features``: per feature its
        ``name``, ``kind``, inner ``edges`` (numeric and score) or
        ``categories``, ``counts`` per bin, and the ``other`` (categorical)
        and ``missing`` counts. Plain numbers, text and lists only.

    Examples
    --------
    >>> import pandas as pd
    >>> data = profile_to_json(feature_profile(pd.DataFrame({"nps": [10.0, None, 30.0]})))
    >>> data["features"][0]["kind"], data["features"][0]["missing"]
    ('numeric', 1)
    >>> profile_from_json(data).equals(feature_profile(pd.DataFrame({"nps": [10.0, None, 30.0]})))
    True
    """
    features = []
    for name, rows in profile.groupby("feature", sort=False):
        kind = str(rows["kind"].iloc[0])
        slot = rows["slot"]
        entry: dict[str, Any] = {"name": str(name), "kind": kind}
        if kind == "categorical":
            entry["categories"] = [str(v) for v in rows.loc[slot == "category", "label"]]
            entry["counts"] = [int(v) for v in rows.loc[slot == "category", "count"]]
            entry["other"] = int(rows.loc[slot == "other", "count"].sum())
        else:
            entry["edges"] = [float(v) for v in rows.loc[slot == "interval", "upper"].to_numpy()[:-1]]
            entry["counts"] = [int(v) for v in rows.loc[slot == "interval", "count"]]
        entry["missing"] = int(rows.loc[slot == "missing", "count"].sum())
        features.append(entry)
    return {"format": PROFILE_FORMAT, "features": features}


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a count (a whole number >= 0), found {value!r}")
    return value


def profile_from_json(data: Mapping[str, Any]) -> pd.DataFrame:
    """The profile frame of a profile's JSON form (:func:`profile_to_json`), checked.

    Raises
    ------
    ValueError
        Naming the first entry that is not a valid profile: another format,
        an unknown kind, edges not increasing, counts that do not fit the
        bins, a feature listed twice.

    Examples
    --------
    >>> profile_from_json({"format": 1, "features": [{"name": "x", "kind": "numeric", "edges": [2.0, 1.0],
    ...                    "counts": [1, 1, 1], "missing": 0}]})
    Traceback (most recent call last):
    ...
    ValueError: profile feature 'x': edges must be finite and increasing
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a profile must be an object, found {type(data).__name__}")
    if data.get("format") != PROFILE_FORMAT:
        raise ValueError(f"profile format {data.get('format')!r}; this renewforecast reads format {PROFILE_FORMAT}")
    entries = data.get("features")
    if not isinstance(entries, list):
        raise ValueError("a profile's 'features' must be a list")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ValueError(f"profile feature {i} must be an object with a text 'name'")
        name = entry["name"]
        where = f"profile feature {name!r}"
        if name in seen:
            raise ValueError(f"{where} is listed twice")
        seen.add(name)
        kind = entry.get("kind")
        if kind not in _KINDS:
            raise ValueError(f"{where}: kind must be one of {list(_KINDS)}, found {kind!r}")
        counts = entry.get("counts")
        if not isinstance(counts, list):
            raise ValueError(f"{where}: 'counts' must be a list")
        counts = [_count(c, f"{where}: each count") for c in counts]
        missing = _count(entry.get("missing"), f"{where}: 'missing'")
        if kind == "categorical":
            categories = entry.get("categories")
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise ValueError(f"{where}: 'categories' must be a list of text")
            if len(set(categories)) != len(categories) or len(counts) != len(categories):
                raise ValueError(f"{where}: categories must be distinct, one count each")
            other = _count(entry.get("other"), f"{where}: 'other'")
            rows.extend(
                {"feature": name, "kind": kind, "slot": "category", "label": c, "count": k}
                for c, k in zip(categories, counts, strict=True)
            )
            rows.append({"feature": name, "kind": kind, "slot": "other", "label": "other", "count": other})
            rows.append(_missing_row(name, kind, missing))
        else:
            edges = entry.get("edges")
            if not isinstance(edges, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in edges
            ):
                raise ValueError(f"{where}: 'edges' must be a list of numbers")
            edges = [float(v) for v in edges]
            if not all(math.isfinite(v) for v in edges) or any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"{where}: edges must be finite and increasing")
            if len(counts) != len(edges) + 1:
                raise ValueError(f"{where}: {len(edges)} edges make {len(edges) + 1} bins, found {len(counts)} counts")
            bounds = [-math.inf, *edges, math.inf]
            rows.extend(
                {
                    "feature": name,
                    "kind": kind,
                    "slot": "interval",
                    "label": label,
                    "lower": lo,
                    "upper": hi,
                    "count": c,
                }
                for label, lo, hi, c in zip(_interval_labels(edges), bounds[:-1], bounds[1:], counts, strict=True)
            )
            rows.append(_missing_row(name, kind, missing))
    return _frame(rows)


# --------------------------------------------------------------------------- the report


@dataclass
class DriftReport:
    """What :func:`drift_report` found.

    Attributes
    ----------
    table : DataFrame
        One row per feature and comparison (:data:`TABLE_COLUMNS`):
        ``against`` (``training`` or ``previous_run``), ``feature``,
        ``kind``, ``psi``, ``psi_chance`` (the PSI that sampling alone
        stays under with probability ``thresholds.noise``), ``level``
        (``ok``, ``watch``, ``alert`` or ``not available``),
        ``share_missing`` and ``n`` of this run's rows,
        ``n_reference`` (rows of the profile compared with), ``ks`` and
        ``ks_pvalue`` (scores only) and a ``note`` where a comparison is
        not available. Alerts first, then by PSI, largest first.
    profile : DataFrame
        This run's :func:`feature_profile` (features and scores), to keep
        for the next run's ``previous=``.
    warnings : list of str
        One short sentence per feature or score distribution at or above
        the watch threshold, naming it and its PSI; alerts first.
    recommendation : str
        Whether to retrain, with the evidence.
    retrain : bool
        True when a feature or the scores crossed the alert threshold
        against the training data.
    notes : list of str
        Comparisons that were not available, and why.
    thresholds : DriftThresholds

    ``str(report)`` is the recommendation followed by the notes.
    """

    table: pd.DataFrame
    profile: pd.DataFrame
    warnings: list[str]
    recommendation: str
    retrain: bool
    notes: list[str] = field(default_factory=list)
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS

    def __str__(self) -> str:
        return "\n".join([self.recommendation, *self.notes])

    def level(self, against: str = "training") -> str:
        """The worst level of any feature or the scores against ``training`` or ``previous_run``."""
        levels = set(self.table.loc[self.table["against"] == against, "level"])
        for name in ("alert", "watch", "ok"):
            if name in levels:
                return name
        return "not available"


def _label(name: str) -> str:
    return "the renewal probabilities" if name == SCORE_FEATURE else name


def compare_profiles(
    reference: pd.DataFrame | Mapping[str, Any],
    current: pd.DataFrame,
    *,
    against: str = "reference",
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """PSI (and, for scores, KS distance) of each feature of ``current`` against ``reference``.

    Parameters
    ----------
    reference : profile frame or training profile
    current : DataFrame
        :func:`feature_profile` of the rows to compare, made ``like=reference``
        (the same bins).
    against : str, default "reference"
        What the ``against`` column says.
    thresholds : DriftThresholds

    Returns
    -------
    DataFrame
        :data:`TABLE_COLUMNS`, one row per feature of ``current``; alerts
        first, then by PSI, largest first. The scores' PSI is taken over
        bins of width 0.1, their KS distance over the fine bins.

    Examples
    --------
    >>> import pandas as pd
    >>> before = feature_profile(pd.DataFrame({"segment": ["SMB"] * 60 + ["Enterprise"] * 40}))
    >>> after = feature_profile(pd.DataFrame({"segment": ["SMB"] * 30 + ["Enterprise"] * 70}), like=before)
    >>> compare_profiles(before, after)[["feature", "psi", "level"]].round(3).to_dict("records")
    [{'feature': 'segment', 'psi': 0.376, 'level': 'alert'}]
    """
    return _table(_compare(against, _as_profile_frame(reference), current, thresholds))


def _compare(
    against: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: DriftThresholds,
) -> list[dict[str, Any]]:
    rows = []
    ref_groups = dict(tuple(reference.groupby("feature", sort=False)))
    for name, cur in current.groupby("feature", sort=False):
        ref = ref_groups.get(name)
        kind = str(cur["kind"].iloc[0])
        n = int(cur["count"].sum())
        missing = cur.loc[cur["slot"] == "missing", "count"].sum()
        row = {
            "against": against,
            "feature": name,
            "kind": kind,
            "psi": math.nan,
            "psi_chance": math.nan,
            "level": "not available",
            "share_missing": float(missing / n) if n else math.nan,
            "n": n,
            "n_reference": 0,
            "ks": math.nan,
            "ks_pvalue": math.nan,
            "note": "",
        }
        if ref is None:
            row["note"] = "not in the profile compared with"
        elif n == 0 or int(ref["count"].sum()) == 0:
            row["n_reference"] = int(ref["count"].sum())
            row["note"] = "no rows to compare"
        else:
            e, a = ref["count"].to_numpy(dtype=float), cur["count"].to_numpy(dtype=float)
            row["n_reference"] = int(e.sum())
            if kind == "score":
                row["ks"], row["ks_pvalue"] = _ks(e, a)
                e, a = _coarse(e), _coarse(a)
            row["psi"] = population_stability_index(e, a)
            row["psi_chance"] = thresholds.chance(int(((e > 0) | (a > 0)).sum()), int(a.sum()), int(e.sum()))
            row["level"] = thresholds.level(row["psi"], row["psi_chance"])
        rows.append(row)
    return rows


def _coarse(counts: np.ndarray) -> np.ndarray:
    # Fine score bins (plus the missing bin, empty for scores) summed into bins of width 0.1.
    fine, missing = counts[:-1], counts[-1:]
    if len(fine) == len(SCORE_EDGES) + 1:
        fine = fine.reshape(-1, _SCORE_COARSE).sum(axis=1)
    return np.concatenate([fine, missing])


def _ks(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Two-sample KS distance of binned scores and its asymptotic p-value (scipy's ``kstwo``).

    The distance is the largest gap between the two empirical distribution
    functions at the bin edges: the exact KS statistic of the scores
    rounded up to their bin's upper edge.
    """
    e, a = expected[:-1], actual[:-1]
    n, m = e.sum(), a.sum()
    distance = float(np.max(np.abs(np.cumsum(e) / n - np.cumsum(a) / m)))
    # As scipy.stats.ks_2samp(method="asymp") for two-sided tests.
    pvalue = float(stats.kstwo.sf(distance, np.round(n * m / (n + m))))
    return distance, min(max(pvalue, 0.0), 1.0)


def _model_scores(model: Any, features: pd.DataFrame, names: list[str]) -> np.ndarray | None:
    """The model's renewal probabilities of ``features``; None when a feature it needs is absent."""
    if any(n not in {str(c) for c in features.columns} for n in names):
        return None
    if not len(features):
        return np.empty(0)
    return np.asarray(model.predict_proba(features)[:, 1], dtype=float)


def drift_report(
    model: Any,
    features: pd.DataFrame,
    scores: Any = None,
    *,
    previous: pd.DataFrame | None = None,
    previous_label: str | None = None,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> DriftReport:
    """Compare a run's features and scores with the model's training data and with the previous run.

    Parameters
    ----------
    model : RenewalModel
        Fitted or loaded; its ``training_profile_`` holds the training
        data's profile (models saved before profiles existed have none:
        the comparison with training is then "not available").
    features : DataFrame
        The run's features. Compare like with like: the model learned from
        contracts featurised ``lead_days`` before their end
        (:func:`renewforecast.renewal_training_set`), so pass
        :func:`renewforecast.recent_decision_features`, the contracts that
        reached that point recently, featurised the same way.
    scores : array-like or DataFrame, optional
        The model's renewal probabilities for those rows; computed with
        ``model`` when not given.
    previous : DataFrame, optional
        The previous run's :attr:`DriftReport.profile`. This run is binned
        on its edges and compared with it.
    previous_label : str, optional
        Which run ``previous`` came from (``"run 20261031-... as of
        2026-10-31"``), named in the notes so a reader knows what "since the
        previous run" means.
    thresholds : DriftThresholds, default PSI 0.10 watch, 0.25 alert

    Returns
    -------
    DriftReport

    Examples
    --------
    >>> import numpy as np, pandas as pd, renewforecast as rf
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"seat_utilization": rng.random(600), "segment": rng.choice(["SMB", "Enterprise"], 600)})
    >>> y = (X["seat_utilization"] + 0.3 * rng.standard_normal(600) > 0.4).astype(int)
    >>> model = rf.RenewalModel(estimator="logistic", random_state=0).fit(X[:400], y[:400])
    >>> fresh = rf.drift_report(model, X[400:])
    >>> fresh.retrain, fresh.level()
    (False, 'ok')
    >>> broken = rf.drift_report(model, X[400:].assign(seat_utilization=X["seat_utilization"][400:] * 10))
    >>> broken.retrain, broken.warnings[0].split(":")[0]
    (True, 'seat_utilization shifted against training')
    """
    if not isinstance(thresholds, DriftThresholds):
        raise TypeError(f"thresholds must be a DriftThresholds, not {type(thresholds).__name__}")
    names = [str(c) for c in getattr(model, "feature_names_in_", features.columns)]
    values = _model_scores(model, features, names) if scores is None else _score_values(scores, len(features))
    notes: list[str] = []
    if values is None:
        notes.append("The scores were not compared: the features lack columns the model needs to score them.")
    rows: list[dict[str, Any]] = []
    training = getattr(model, "training_profile_", None)
    if training is not None:
        reference = _as_profile_frame(training)
        current = feature_profile(features, like=reference, scores=values)
        rows += _compare("training", reference, current, thresholds)
    else:
        wanted = set(names)
        current = feature_profile(features[[c for c in features.columns if str(c) in wanted]], scores=values)
        notes.append(
            "Drift against the training data is not available: the model has no training profile (it was "
            "saved by an earlier renewforecast, or fitted with profile=False); retrain it to record one."
        )
        rows += [
            {
                "against": "training",
                "feature": name,
                "kind": kind,
                "level": "not available",
                "note": "the model has no training profile",
            }
            for name, (kind, _) in _bins_of(current).items()
        ]
    if previous is not None:
        prev = _as_profile_frame(previous)
        scored = values is not None and SCORE_FEATURE in set(prev["feature"])
        again = feature_profile(features, like=prev, scores=values if scored else None)
        wanted = set(names) | {SCORE_FEATURE}
        rows += [r for r in _compare("previous_run", prev, again, thresholds) if r["feature"] in wanted]
        if previous_label:
            notes.append(f"The previous run compared with: {previous_label}.")
        absent = sorted(set(names) - set(prev["feature"]))
        if absent:
            notes.append(
                f"{len(absent)} feature(s) of the model are not in the previous run's profile and were not "
                f"compared with it: {', '.join(absent[:5])}" + (", ..." if len(absent) > 5 else "")
            )
    else:
        notes.append("No previous run's profile was given: this run is compared with the training data only.")
    table = _table(rows)
    warnings = _warnings(table, thresholds)
    retrain, recommendation = _recommend(table, thresholds, training is not None)
    return DriftReport(
        table=table,
        profile=current,
        warnings=warnings,
        recommendation=recommendation,
        retrain=retrain,
        notes=notes,
        thresholds=thresholds,
    )


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    for col in ("psi", "psi_chance", "share_missing", "ks", "ks_pvalue"):
        table[col] = table[col].astype("float64")
    for col in ("n", "n_reference"):
        table[col] = table[col].fillna(0).astype("int64")
    table["note"] = table["note"].fillna("").astype(object)
    severity = table["level"].map({"alert": 0, "watch": 1, "ok": 2}).fillna(3)
    order = np.lexsort(
        (
            -table["psi"].fillna(-1.0).to_numpy(),
            severity.to_numpy(),
            table["against"].map({"training": 0}).fillna(1).to_numpy(),
        )
    )
    return table.iloc[order].reset_index(drop=True)


def _describe(row: pd.Series, thresholds: DriftThresholds) -> str:
    where = "against training" if row["against"] == "training" else "since the previous run"
    bound = thresholds.alert if row["level"] == "alert" else thresholds.watch
    extra = f", KS distance {row['ks']:.2f}" if row["kind"] == "score" else ""
    return f"{_label(row['feature'])} shifted {where}: PSI {row['psi']:.2f}{extra} ({row['level']}, >= {bound:.2f})"


def _warnings(table: pd.DataFrame, thresholds: DriftThresholds) -> list[str]:
    flagged = table[table["level"].isin(["alert", "watch"])]
    ranked = flagged.assign(_s=flagged["level"].map({"alert": 0, "watch": 1})).sort_values(
        ["_s", "psi"], ascending=[True, False], kind="stable"
    )
    return [_describe(row, thresholds) for _, row in ranked.iterrows()]


def _evidence(rows: pd.DataFrame, limit: int = 5) -> str:
    parts = [
        f"{_label(r['feature'])} PSI {r['psi']:.2f}" + (f" (KS {r['ks']:.2f})" if r["kind"] == "score" else "")
        for _, r in rows.head(limit).iterrows()
    ]
    more = len(rows) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _recommend(table: pd.DataFrame, thresholds: DriftThresholds, has_training: bool) -> tuple[bool, str]:
    train = table[table["against"] == "training"]
    prev = table[table["against"] == "previous_run"]
    alerts = train[train["level"] == "alert"].sort_values("psi", ascending=False)
    watches = train[train["level"] == "watch"].sort_values("psi", ascending=False)
    sudden = prev[prev["level"] == "alert"].sort_values("psi", ascending=False)
    check = (
        f" Since the previous run {_evidence(sudden)} moved past {thresholds.alert:.2f}: a sudden change is more "
        "often an export or field-mapping problem than a change in customers, so check the data first."
        if len(sudden)
        else ""
    )
    if not has_training:
        return False, (
            "Drift against the training data is not available (the model has no training profile): "
            "retrain to record one." + check
        )
    if not (train["level"] != "not available").any():
        return False, (
            "Drift against the training data could not be measured: no rows to compare (no contract "
            "reached its prediction date in the period looked at)." + check
        )
    if len(alerts):
        return True, (
            f"Retrain the model: {len(alerts)} of {len(train)} distributions moved past PSI {thresholds.alert:.2f} "
            f"against its training data ({_evidence(alerts)}), so its probabilities rest on contracts unlike "
            "today's." + check
        )
    if len(watches):
        return False, (
            f"No retraining needed yet; watch {_evidence(watches)} (PSI {thresholds.watch:.2f} to "
            f"{thresholds.alert:.2f} against the training data)." + check
        )
    return False, (
        f"No retraining needed: every feature and the scores are within PSI {thresholds.watch:.2f} of the "
        "training data." + check
    )
