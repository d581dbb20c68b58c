"""Survival models for time-to-churn and the monthly hazard of evergreen contracts.

:class:`SurvivalModel` is a thin, scikit-learn-shaped wrapper that *composes*
a lifelines fitter (``CoxPHFitter`` or ``WeibullAFTFitter``) rather than
pretending to be one: lifelines validates in ``__init__`` and takes a
DataFrame plus column names, which breaks ``get_params``/``clone``, so the
wrapper keeps the hyperparameters itself and builds the fitter in ``fit``.

Two design choices matter for correctness:

* **One prediction path.** Every prediction, in-process or after
  :meth:`SurvivalModel.from_params`, is computed from the exported
  parameters, never by calling back into the lifelines object. A model
  rebuilt from JSON therefore predicts bit-for-bit what the original did, and
  the tests check that path against lifelines' own
  ``predict_survival_function``.
* **No pickle.** lifelines models can only be persisted with pickle (or
  dill/joblib), which runs code on load. :meth:`SurvivalModel.to_params`
  exports plain numbers and strings instead (``reliability.md`` 1.3).

Examples
--------
>>> from lifelines.datasets import load_rossi
>>> from renewforecast.models.survival import SurvivalModel
>>> rossi = load_rossi()
>>> model = SurvivalModel(duration_col="week", event_col="arrest").fit(rossi)
>>> round(model.concordance_index_, 4)
0.6403
>>> p = model.predict_renewal_proba(rossi.head(2), horizon=4, tenure=20)
>>> p.round(4).tolist()
[0.9781, 0.9429]
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import lifelines
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, WeibullAFTFitter
from lifelines.utils import concordance_index
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from renewforecast.exceptions import RenewForecastError

__all__ = [
    "ExtrapolationWarning",
    "SurvivalDataError",
    "SurvivalModel",
]

_FORMAT = "renewforecast.SurvivalModel"
_FORMAT_VERSION = 1
_KINDS = ("coxph", "weibull_aft")
_INTERCEPT = "Intercept"  # the name lifelines gives the AFT intercept column
_UNSTRATIFIED = "baseline cumulative hazard"  # lifelines' column name

TenureLike = float | Sequence[float] | np.ndarray | pd.Series


class SurvivalDataError(RenewForecastError, ValueError):
    """Bad input to :class:`SurvivalModel`: data, hyperparameters or saved params.

    Also a ``ValueError``, so code written to scikit-learn conventions
    (``except ValueError``) still catches it.
    """


class ExtrapolationWarning(UserWarning):
    """A Cox prediction was asked for beyond the last training duration.

    The Breslow baseline is only known up to the longest observed duration.
    lifelines (and this module, to match it) holds it flat after that, which
    means a hazard of exactly 0 and a renewal probability of exactly 1.
    """


@dataclass(frozen=True)
class _Cox:
    """Everything a Cox prediction needs, as arrays."""

    beta: np.ndarray  # coefficients, in encoded-feature order
    mean: np.ndarray  # lifelines' centring vector (training means)
    # stratum key (None when unstratified) -> (knot times, H0 at the knots),
    # with the H0(0) = 0 anchor already prepended
    baselines: dict[tuple | None, tuple[np.ndarray, np.ndarray]]
    last_time: float  # longest training duration


@dataclass(frozen=True)
class _Weibull:
    """Everything a Weibull AFT prediction needs, as arrays."""

    lambda_coef: np.ndarray  # in encoded-feature order (0 when absent)
    lambda_intercept: float
    rho_coef: np.ndarray
    rho_intercept: float


class SurvivalModel(BaseEstimator):
    """Time-to-event regression (Cox PH or Weibull AFT) for churn and renewal.

    Fits a lifelines ``CoxPHFitter`` (``kind="coxph"``) or
    ``WeibullAFTFitter`` (``kind="weibull_aft"``) on a frame of durations,
    event flags and covariates, and answers the questions renewal
    forecasting asks: a customer's survival curve, the probability that a
    contract already ``tenure`` long survives ``horizon`` more units, and
    the per-unit hazard of an evergreen contract.

    Parameters
    ----------
    kind : {"coxph", "weibull_aft"}, default="coxph"
        Semi-parametric Cox proportional hazards (Breslow baseline) or a
        parametric Weibull accelerated failure time model. Prefer
        ``"weibull_aft"`` to predict beyond the longest observed duration:
        the Cox baseline is flat there.
    penalizer : float, default=0.0
        Elastic-net penalty strength, passed to the lifelines fitter.
    l1_ratio : float, default=0.0
        Share of the penalty that is L1 (0 = ridge, 1 = lasso).
    duration_col : str, default="duration"
        Column with the time observed, strictly positive, in any unit;
        ``horizon``, ``tenure`` and ``times`` use the same unit.
    event_col : str, default="event"
        Column that is 1/True when the event (churn) was observed and
        0/False when the subject was censored (still active).
    strata : str or list of str, optional
        Columns to stratify the Cox baseline on (``kind="coxph"`` only).
        Each stratum gets its own baseline hazard; prediction frames must
        carry these columns, with values seen in training.
    alpha : float, default=0.05
        Level of the confidence intervals in :attr:`summary`.

    Attributes
    ----------
    fitter_ : CoxPHFitter, WeibullAFTFitter or None
        The fitted lifelines object; ``None`` for a model rebuilt with
        :meth:`from_params` (nothing is unpickled).
    feature_names_in_ : ndarray of str
        Raw covariate columns seen in ``fit`` (all but the duration, event
        and strata columns), in order.
    n_features_in_ : int
        ``len(feature_names_in_)``.
    categories_ : dict of str to list of str
        Each non-numeric covariate's levels, sorted; the first is the
        reference level (encoded as all zeros).
    encoded_feature_names_ : ndarray of str
        Columns after one-hot encoding; dummies are ``"<column>_<level>"``.
    params_ : Series
        Fitted coefficients as lifelines reports them (for Weibull AFT,
        indexed by ``(param, covariate)``).
    concordance_index_ : float
        Harrell's C on the training data, as lifelines computes it.
    log_likelihood_ : float
        Log-likelihood at the optimum (the partial one for Cox).
    n_observations_ : int
        Training rows.
    n_events_ : int
        Observed events in training.
    baseline_cumulative_hazard_ : DataFrame
        Cox only: lifelines' Breslow baseline cumulative hazard, one column
        per stratum, for a subject at ``covariate_means_``.
    covariate_means_ : Series
        Cox only: training means of the encoded covariates. lifelines
        centres covariates before applying the coefficients, so the
        baseline belongs to the *average* subject, not to x = 0.

    See Also
    --------
    lifelines.CoxPHFitter, lifelines.WeibullAFTFitter

    Notes
    -----
    Survival is ``S(t | x) = exp(-H(t | x))`` with

    * Cox: ``H(t | x) = H0(t) * exp((x - mean) . beta)``. ``H0`` is
      linearly interpolated between training durations (lifelines'
      convention), anchored at ``H0(0) = 0`` so that ``S(0) = 1``, and held
      flat after the last training duration.
    * Weibull AFT: ``H(t | x) = (t / lambda(x)) ** rho`` with
      ``log lambda(x) = x . beta + b0`` and ``log rho = b_rho``.

    Non-numeric covariates are one-hot encoded with the first sorted level
    as the reference (a full set of dummies is collinear with the baseline
    and would not converge). Values are compared as strings. A level not
    seen in training is encoded as all zeros, i.e. scored like the
    reference level.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> rossi = load_rossi()
    >>> model = SurvivalModel(kind="weibull_aft", duration_col="week",
    ...                       event_col="arrest").fit(rossi)
    >>> model.predict_survival(rossi.head(2), times=[10, 52]).round(3)
              0      1
    10.0  0.967  0.915
    52.0  0.714  0.409
    >>> restored = SurvivalModel.from_params(model.to_params())
    >>> restored.monthly_hazard(rossi.head(2), tenure=12).equals(
    ...     model.monthly_hazard(rossi.head(2), tenure=12))
    True
    """

    _parameter_names: ClassVar[tuple[str, ...]] = (
        "kind",
        "penalizer",
        "l1_ratio",
        "duration_col",
        "event_col",
        "strata",
        "alpha",
    )

    def __init__(
        self,
        *,
        kind: str = "coxph",
        penalizer: float = 0.0,
        l1_ratio: float = 0.0,
        duration_col: str = "duration",
        event_col: str = "event",
        strata: str | list[str] | None = None,
        alpha: float = 0.05,
    ) -> None:
        # scikit-learn contract: store only, no validation or conversion, so
        # get_params/set_params/clone round-trip exactly; fit validates.
        self.kind = kind
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.duration_col = duration_col
        self.event_col = event_col
        self.strata = strata
        self.alpha = alpha

    # ------------------------------------------------------------------ fit

    def fit(self, df: pd.DataFrame) -> SurvivalModel:
        """Fit the lifelines model on durations, events and covariates.

        Parameters
        ----------
        df : DataFrame
            One row per subject, with ``duration_col``, ``event_col``, the
            ``strata`` columns if any, and covariates (every other column).
            Numeric and boolean covariates are used as they are; any other
            dtype is one-hot encoded. Missing values are not allowed.

        Returns
        -------
        self : SurvivalModel
            The fitted model.

        Raises
        ------
        SurvivalDataError
            On invalid hyperparameters or data.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"duration": [3, 5, 6, 8, 9, 12, 14, 20],
        ...                    "event": [1, 1, 0, 1, 1, 0, 1, 0],
        ...                    "plan": ["a", "b", "a", "b", "a", "b", "a", "b"],
        ...                    "seats": [1, 5, 2, 8, 1, 9, 3, 7]})
        >>> SurvivalModel().fit(df).encoded_feature_names_.tolist()
        ['plan_b', 'seats']
        """
        kind, strata = self._validated_hyperparameters()
        if not isinstance(df, pd.DataFrame):
            raise SurvivalDataError(f"fit expects a pandas DataFrame, got {type(df).__name__}")
        if len(df) == 0:
            raise SurvivalDataError("fit needs at least one row")
        if df.columns.duplicated().any():
            raise SurvivalDataError("fit: duplicate column names")
        needed = (self.duration_col, self.event_col, *strata)
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise SurvivalDataError(f"fit: columns not found: {missing}")
        durations = _checked_durations(df[self.duration_col])
        events = _checked_events(df[self.event_col])
        for col in strata:
            if df[col].isna().any():
                raise SurvivalDataError(f"fit: strata column {col!r} has missing values")

        reserved = set(needed)
        covariates = [c for c in df.columns if c not in reserved]
        if not covariates:
            raise SurvivalDataError("fit: no covariate columns besides duration/event/strata")
        not_str = [c for c in covariates if not isinstance(c, str)]
        if not_str:
            raise SurvivalDataError(f"fit: covariate names must be strings: {not_str}")

        encoding = _learn_encoding(df[covariates])
        encoded_names = [name for spec in encoding for name in spec["encoded"]]
        clashes = sorted(set(encoded_names) & (reserved | {_INTERCEPT}))
        if clashes or len(set(encoded_names)) != len(encoded_names):
            raise SurvivalDataError(
                "fit: one-hot column names collide with other columns "
                f"({clashes or 'duplicate dummy names'}); rename the columns"
            )

        frame = _encode(df[covariates], encoding)
        frame[self.duration_col] = durations
        frame[self.event_col] = events
        for col in strata:
            frame[col] = df[col].to_numpy()

        options = {
            "penalizer": self.penalizer,
            "l1_ratio": self.l1_ratio,
            "alpha": self.alpha,
        }
        if kind == "coxph":
            fitter: Any = CoxPHFitter(**options).fit(
                frame,
                duration_col=self.duration_col,
                event_col=self.event_col,
                strata=list(strata) or None,
            )
            block = {"coxph": _export_cox(fitter, encoded_names, strata)}
        else:
            fitter = WeibullAFTFitter(**options).fit(frame, duration_col=self.duration_col, event_col=self.event_col)
            block = {"weibull_aft": _export_weibull(fitter)}

        state = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "lifelines_version": lifelines.__version__,
            "hyperparameters": {
                "kind": kind,
                "penalizer": float(self.penalizer),
                "l1_ratio": float(self.l1_ratio),
                "duration_col": self.duration_col,
                "event_col": self.event_col,
                "strata": (list(self.strata) if isinstance(self.strata, (list, tuple)) else self.strata),
                "alpha": float(self.alpha),
            },
            "features": {
                "names_in": list(covariates),
                "encoding": encoding,
                "encoded_names": encoded_names,
            },
            "training": {
                "n_observations": len(frame),
                "n_events": int(events.sum()),
                "log_likelihood": float(fitter.log_likelihood_),
                "concordance_index": float(fitter.concordance_index_),
            },
            **block,
            "summary": _summary_to_json(fitter.summary),
        }
        # Load through the same path as from_params, so an in-process model
        # and a restored one hold identical arrays.
        self._load_state(state, fitter=fitter)
        return self

    # ---------------------------------------------------------- prediction

    def predict_survival(self, X: pd.DataFrame, times: float | Sequence[float] | np.ndarray) -> pd.DataFrame:
        """Survival probabilities S(t | x) at the given times.

        Parameters
        ----------
        X : DataFrame
            Covariates: the raw columns seen in ``fit`` (extra columns are
            ignored) and, for a stratified Cox model, the strata columns.
        times : float or array-like of float
            Non-negative times, in the unit of the training durations.

        Returns
        -------
        DataFrame
            Rows are ``times`` (in the order given), columns are ``X.index``.

        Examples
        --------
        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> m = SurvivalModel(duration_col="week", event_col="arrest").fit(rossi)
        >>> m.predict_survival(rossi.head(3), times=[0, 26, 52]).round(3)
                  0      1      2
        0.0   1.000  1.000  1.000
        26.0  0.868  0.688  0.704
        52.0  0.716  0.412  0.435
        """
        check_is_fitted(self)
        _check_frame(X)
        t = _checked_times(times)
        grid = np.broadcast_to(t[:, None], (len(t), len(X)))
        H = self._cumulative_hazard(X, grid)
        return pd.DataFrame(np.exp(-H), index=pd.Index(t), columns=X.index)

    def predict_renewal_proba(self, X: pd.DataFrame, *, horizon: float, tenure: TenureLike | None = None) -> pd.Series:
        """Probability of surviving ``horizon`` more units after ``tenure``.

        ``P(T > tenure + horizon | T > tenure, x)
        = S(tenure + horizon | x) / S(tenure | x)``.

        Parameters
        ----------
        X : DataFrame
            Covariates, as for :meth:`predict_survival`.
        horizon : float
            Non-negative number of time units ahead (e.g. 12 months to the
            renewal date).
        tenure : float, array-like or Series, optional
            How long each subject has already survived: one value for all
            rows or one per row (a Series is aligned on ``X.index``).
            Default 0, which gives ``S(horizon | x)``.

        Returns
        -------
        Series
            Indexed like ``X``, named ``"renewal_proba"``.

        Notes
        -----
        Computed as ``exp(-(H(tenure + horizon) - H(tenure)))``, the same
        ratio written with cumulative hazards, which stays accurate when
        both survival values are tiny. It equals lifelines'
        ``predict_survival_function(..., conditional_after=tenure)`` wherever
        the two definitions meet; for Cox that is a tenure at or after the
        first training duration, since before it lifelines clamps the
        baseline to its first value instead of starting from 0.

        Examples
        --------
        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> m = SurvivalModel(duration_col="week", event_col="arrest").fit(rossi)
        >>> m.predict_renewal_proba(rossi.head(3), horizon=12,
        ...                         tenure=[0, 10, 30]).round(4)
        0    0.9545
        1    0.8220
        2    0.8122
        Name: renewal_proba, dtype: float64
        """
        check_is_fitted(self)
        h = _checked_scalar_time(horizon, "horizon")
        dH = self._hazard_increment(X, tenure, h)
        return pd.Series(np.exp(-dH), index=X.index, name="renewal_proba")

    def monthly_hazard(self, X: pd.DataFrame, *, tenure: TenureLike) -> pd.Series:
        """Probability of ending within the next time unit after ``tenure``.

        For evergreen (month-to-month) contracts with durations in months,
        this is the churn probability for the coming month:
        ``1 - predict_renewal_proba(X, horizon=1, tenure=tenure)``.

        Parameters
        ----------
        X : DataFrame
            Covariates, as for :meth:`predict_survival`.
        tenure : float, array-like or Series
            Time already survived, one value for all rows or one per row.

        Returns
        -------
        Series
            Indexed like ``X``, named ``"monthly_hazard"``.

        Notes
        -----
        Uses ``-expm1(-dH)`` rather than ``1 - exp(-dH)`` so that small
        hazards keep their precision; the two agree to rounding (~1e-16).

        Examples
        --------
        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> m = SurvivalModel(duration_col="week", event_col="arrest").fit(rossi)
        >>> m.monthly_hazard(rossi.head(2), tenure=20).round(5).tolist()
        [0.00549, 0.01447]
        """
        check_is_fitted(self)
        dH = self._hazard_increment(X, tenure, 1.0)
        return pd.Series(-np.expm1(-dH), index=X.index, name="monthly_hazard")

    def score(self, df: pd.DataFrame) -> float:
        """Harrell's concordance index (C) on a frame with durations and events.

        Higher is better: 0.5 is a random ordering, 1 a perfect one. Subjects
        are ranked as lifelines ranks them: for Cox by minus the partial
        hazard (comparing pairs only within a stratum when stratified), for
        Weibull AFT by the predicted median. Either way a higher score means
        a longer predicted survival, the sign convention
        ``lifelines.utils.concordance_index`` expects.

        Parameters
        ----------
        df : DataFrame
            ``duration_col``, ``event_col`` and the covariates.

        Returns
        -------
        float
            The C-index.

        Examples
        --------
        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> m = SurvivalModel(duration_col="week", event_col="arrest").fit(rossi)
        >>> round(m.score(rossi), 6) == round(m.concordance_index_, 6)
        True
        """
        check_is_fitted(self)
        if not isinstance(df, pd.DataFrame):
            raise SurvivalDataError(f"score expects a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in (self.duration_col, self.event_col) if c not in df.columns]
        if missing:
            raise SurvivalDataError(f"score: columns not found: {missing}")
        durations = _checked_durations(df[self.duration_col])
        events = _checked_events(df[self.event_col])
        design = self._design(df)
        if self._cox is not None:
            scores = -np.exp((design - self._cox.mean) @ self._cox.beta)
            if self._strata:
                return _stratified_concordance(durations, scores, events, self._stratum_keys(df))
        else:
            log_lambda, log_rho = self._weibull_log_params(design)
            # median lifetime: lambda * (ln 2) ** (1 / rho)
            scores = np.exp(log_lambda) * np.log(2.0) ** np.exp(-log_rho)
        return float(concordance_index(durations, scores, events))

    @property
    def summary(self) -> pd.DataFrame:
        """lifelines' coefficient table (coef, exp(coef), se(coef), CIs, z, p).

        Taken from the live fitter when there is one, else rebuilt from the
        table saved by :meth:`to_params`.

        Examples
        --------
        >>> from lifelines.datasets import load_rossi
        >>> m = SurvivalModel(duration_col="week", event_col="arrest").fit(load_rossi())
        >>> round(float(m.summary.loc["prio", "coef"]), 4)
        0.0915
        """
        check_is_fitted(self)
        if self.fitter_ is not None:
            return self.fitter_.summary
        return _summary_from_json(self._state["summary"])

    # --------------------------------------------------------- persistence

    def to_params(self) -> dict[str, Any]:
        """Everything needed to predict, as a JSON-serialisable dict (no pickle).

        Returns
        -------
        dict
            Only ``dict``/``list``/``str``/``float``/``int``/``bool``/``None``
            values, safe for strict JSON (``json.dumps(d, allow_nan=False)``).
            Keys: ``format``, ``format_version``, ``lifelines_version``,
            ``hyperparameters``, ``features`` (raw column names and the
            one-hot encoding), ``training`` (counts, log-likelihood, C), the
            model block, and ``summary``. The model block is ``coxph``
            (coefficients, the centring means, and per stratum the baseline
            cumulative hazard as ``times``/``values`` lists) or
            ``weibull_aft`` (the ``lambda_`` and ``rho_`` parameter tables).

        Examples
        --------
        >>> import json
        >>> from lifelines.datasets import load_rossi
        >>> m = SurvivalModel(duration_col="week", event_col="arrest").fit(load_rossi())
        >>> d = json.loads(json.dumps(m.to_params()))
        >>> d["format"], d["hyperparameters"]["kind"]
        ('renewforecast.SurvivalModel', 'coxph')
        """
        check_is_fitted(self)
        return copy.deepcopy(self._state)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SurvivalModel:
        """Rebuild a fitted model from :meth:`to_params` output, without refitting.

        Nothing is unpickled or executed: the dict is validated and its
        numbers are loaded into arrays. The rebuilt model predicts exactly
        what the original did; its ``fitter_`` is ``None``.

        Parameters
        ----------
        params : mapping
            The dict from :meth:`to_params`, e.g. after a JSON round trip.

        Returns
        -------
        SurvivalModel
            A fitted model.

        Raises
        ------
        SurvivalDataError
            If the dict is not a valid parameter set of a supported version.

        Examples
        --------
        >>> import json
        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> m = SurvivalModel(duration_col="week", event_col="arrest").fit(rossi)
        >>> m2 = SurvivalModel.from_params(json.loads(json.dumps(m.to_params())))
        >>> m2.predict_survival(rossi, [10, 30]).equals(
        ...     m.predict_survival(rossi, [10, 30]))
        True
        """
        if not isinstance(params, Mapping):
            raise SurvivalDataError(f"from_params expects a dict, got {type(params).__name__}")
        if params.get("format") != _FORMAT:
            raise SurvivalDataError(f"params: 'format' is not {_FORMAT!r}")
        if params.get("format_version") != _FORMAT_VERSION:
            raise SurvivalDataError(
                f"params: format_version {params.get('format_version')!r} is not "
                f"supported (this version reads {_FORMAT_VERSION})"
            )
        state = copy.deepcopy(dict(params))
        hyper = _require(state, "hyperparameters")
        if not isinstance(hyper, Mapping) or set(hyper) != set(cls._parameter_names):
            raise SurvivalDataError(f"params: hyperparameters must be exactly {sorted(cls._parameter_names)}")
        model = cls(**hyper)
        model._load_state(state, fitter=None)
        return model

    # ------------------------------------------------------------ internals

    def _validated_hyperparameters(self) -> tuple[str, tuple[str, ...]]:
        """Check the hyperparameters; return the kind and strata as a tuple."""
        if self.kind not in _KINDS:
            raise SurvivalDataError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        for name in ("penalizer", "l1_ratio", "alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise SurvivalDataError(f"{name} must be a finite number, got {value!r}")
        if self.penalizer < 0:
            raise SurvivalDataError(f"penalizer must be >= 0, got {self.penalizer!r}")
        if not 0 <= self.l1_ratio <= 1:
            raise SurvivalDataError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if not 0 < self.alpha < 1:
            raise SurvivalDataError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not (isinstance(self.duration_col, str) and isinstance(self.event_col, str)):
            raise SurvivalDataError("duration_col and event_col must be column names (str)")
        if self.duration_col == self.event_col:
            raise SurvivalDataError("duration_col and event_col must differ")
        if self.strata is None:
            strata: tuple[str, ...] = ()
        elif isinstance(self.strata, str):
            strata = (self.strata,)
        elif isinstance(self.strata, (list, tuple)) and all(isinstance(s, str) for s in self.strata):
            strata = tuple(self.strata)
        else:
            raise SurvivalDataError(f"strata must be a column name or a list of them, got {self.strata!r}")
        if strata and self.kind != "coxph":
            raise SurvivalDataError("strata is only supported with kind='coxph'")
        overlap = {self.duration_col, self.event_col} & set(strata)
        if overlap or len(set(strata)) != len(strata):
            raise SurvivalDataError("strata columns must be distinct, and differ from duration/event")
        return self.kind, strata

    def _load_state(self, state: dict[str, Any], *, fitter: Any) -> None:
        """Validate a parameter dict and set the fitted attributes from it."""
        kind, strata = self._validated_hyperparameters()
        features = _require(state, "features")
        names_in = _require(features, "names_in", "features.")
        encoding = _require(features, "encoding", "features.")
        encoded_names = _require(features, "encoded_names", "features.")
        _validate_encoding(names_in, encoding, encoded_names)
        training = _require(state, "training")
        _require(state, "summary")

        # A refit may change kind: no attribute of the old kind may survive.
        for stale in ("covariate_means_", "baseline_cumulative_hazard_"):
            self.__dict__.pop(stale, None)
        self._cox: _Cox | None = None
        self._weibull: _Weibull | None = None
        if kind == "coxph":
            (
                self._cox,
                self.params_,
                self.covariate_means_,
                self.baseline_cumulative_hazard_,
            ) = _load_cox(_require(state, "coxph"), encoded_names, strata)
        else:
            self._weibull, self.params_ = _load_weibull(_require(state, "weibull_aft"), encoded_names)

        self._strata = strata
        self._encoding = encoding
        self._state = state
        self.fitter_ = fitter
        self.feature_names_in_ = np.array(names_in, dtype=object)
        self.n_features_in_ = len(names_in)
        self.encoded_feature_names_ = np.array(encoded_names, dtype=object)
        self.categories_ = {s["column"]: list(s["levels"]) for s in encoding if s["type"] == "categorical"}
        try:
            self.concordance_index_ = float(training["concordance_index"])
            self.log_likelihood_ = float(training["log_likelihood"])
            self.n_observations_ = int(training["n_observations"])
            self.n_events_ = int(training["n_events"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SurvivalDataError("params: 'training' block is malformed") from exc

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        """Encoded covariate matrix (n_rows, n_encoded) of a prediction frame."""
        _check_frame(X)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise SurvivalDataError(f"columns missing from X: {missing}")
        for spec in self._encoding:
            col = X[spec["column"]]
            if col.isna().any():
                raise SurvivalDataError(f"covariate {spec['column']!r} has missing values")
            # Refuse rather than coerce: "27" arriving where 27 was fitted
            # usually means the frame was read with the wrong dtypes.
            if spec["type"] == "numeric" and not pd.api.types.is_numeric_dtype(col):
                raise SurvivalDataError(f"covariate {spec['column']!r} was numeric in fit but is {col.dtype} here")
        design = _encode(X[list(self.feature_names_in_)], self._encoding)
        values = design.to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            raise SurvivalDataError("covariates must be finite")
        return values

    def _stratum_keys(self, X: pd.DataFrame) -> list[tuple]:
        missing = [c for c in self._strata if c not in X.columns]
        if missing:
            raise SurvivalDataError(f"strata columns missing from X: {missing}")
        keys = list(X[list(self._strata)].itertuples(index=False, name=None))
        assert self._cox is not None
        unseen = sorted({k for k in keys if k not in self._cox.baselines}, key=repr)
        if unseen:
            raise SurvivalDataError(f"strata values not seen in training (no baseline hazard): {unseen[:5]}")
        return keys

    def _weibull_log_params(self, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self._weibull
        assert w is not None
        return (
            design @ w.lambda_coef + w.lambda_intercept,
            design @ w.rho_coef + w.rho_intercept,
        )

    def _cumulative_hazard(self, X: pd.DataFrame, T: np.ndarray, *, stacklevel: int = 3) -> np.ndarray:
        """H(T[k, i] | x_i): cumulative hazard of row i of X at the times in T[:, i]."""
        design = self._design(X)
        if self._weibull is not None:
            log_lambda, log_rho = self._weibull_log_params(design)
            with np.errstate(divide="ignore", over="ignore"):
                # lifelines' form; log(0) = -inf gives H(0) = 0 exactly.
                H = np.exp(np.exp(log_rho) * (np.log(T) - log_lambda))
            return np.where(T > 0, H, 0.0)

        cox = self._cox
        assert cox is not None
        if np.any(cox.last_time < T):
            warnings.warn(
                f"Cox survival asked for beyond the last training duration "
                f"({cox.last_time:g}): the baseline hazard is flat there (hazard 0, "
                "renewal probability 1). Use kind='weibull_aft' to extrapolate.",
                ExtrapolationWarning,
                stacklevel=stacklevel,  # point at the user's call
            )
        # exp((x - mean) . beta): lifelines' predict_partial_hazard.
        partial = np.exp((design - cox.mean) @ cox.beta)
        if not self._strata:
            knots, h0 = cox.baselines[None]
            return np.interp(T, knots, h0) * partial
        H = np.empty(T.shape)
        rows_by_key: dict[tuple, list[int]] = {}
        for i, key in enumerate(self._stratum_keys(X)):
            rows_by_key.setdefault(key, []).append(i)
        for key, rows in rows_by_key.items():
            knots, h0 = cox.baselines[key]
            H[:, rows] = np.interp(T[:, rows], knots, h0) * partial[rows]
        return H

    def _hazard_increment(self, X: pd.DataFrame, tenure: TenureLike | None, horizon: float) -> np.ndarray:
        """H(tenure + horizon | x) - H(tenure | x), one value per row of X."""
        start = _tenure_array(X, tenure)
        H = self._cumulative_hazard(X, np.vstack([start, start + horizon]), stacklevel=4)
        # Clip: rounding must not push a renewal probability above 1.
        return np.clip(H[1] - H[0], 0.0, np.inf)


# --------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------


def _checked_durations(col: pd.Series) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise SurvivalDataError(f"duration column {col.name!r} must be numeric")
    values = col.to_numpy(dtype=float, na_value=np.nan)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise SurvivalDataError(
            f"duration column {col.name!r} must be finite and > 0, with no missing "
            "values; give a subject lost in its first period a small positive duration"
        )
    return values


def _checked_events(col: pd.Series) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(col):  # bool counts as numeric
        raise SurvivalDataError(f"event column {col.name!r} must be 0/1 or boolean")
    values = col.to_numpy(dtype=float, na_value=np.nan)
    if not np.all(np.isin(values, (0.0, 1.0))):
        raise SurvivalDataError(f"event column {col.name!r} must hold only 0/1, with no missing values")
    return values.astype(int)


def _checked_times(times: Any) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(times, dtype=float))
    except (TypeError, ValueError) as exc:
        raise SurvivalDataError("times must be numbers") from exc
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise SurvivalDataError("times must be a 1-d list of finite numbers >= 0")
    return arr


def _checked_scalar_time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise SurvivalDataError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_frame(X: Any) -> None:
    if not isinstance(X, pd.DataFrame):
        raise SurvivalDataError(f"expected a pandas DataFrame of covariates, got {type(X).__name__}")


def _tenure_array(X: pd.DataFrame, tenure: TenureLike | None) -> np.ndarray:
    _check_frame(X)
    n = len(X)
    if tenure is None:
        return np.zeros(n)
    if isinstance(tenure, pd.Series):
        if not tenure.index.equals(X.index):
            same_labels = tenure.index.is_unique and X.index.is_unique and set(tenure.index) == set(X.index)
            if not same_labels:
                raise SurvivalDataError("a tenure Series must have the same index as X")
            tenure = tenure.reindex(X.index)
        values = tenure.to_numpy(dtype=float, na_value=np.nan)
    elif np.ndim(tenure) == 0:
        values = np.full(n, _checked_scalar_time(tenure, "tenure"))
    else:
        try:
            values = np.asarray(tenure, dtype=float)
        except (TypeError, ValueError) as exc:
            raise SurvivalDataError("tenure must be numbers") from exc
    if values.shape != (n,):
        raise SurvivalDataError(f"tenure must be a scalar or have one value per row of X ({n})")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise SurvivalDataError("tenure must be finite and >= 0")
    return values


# --------------------------------------------------------------------------
# one-hot encoding
# --------------------------------------------------------------------------


def _learn_encoding(covs: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON-able spec per covariate: numeric, or categorical with its levels."""
    encoding: list[dict[str, Any]] = []
    for name in covs.columns:
        col = covs[name]
        if col.isna().any():
            raise SurvivalDataError(f"fit: covariate {name!r} has missing values")
        if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
            raise SurvivalDataError(f"fit: covariate {name!r} is a date/time; derive a number from it first")
        if pd.api.types.is_numeric_dtype(col):  # bool included, used as 0/1
            encoding.append({"column": name, "type": "numeric", "encoded": [name]})
            continue
        # Sorted string levels make the encoding independent of row order and
        # of any pandas category order; the first level is the reference.
        levels = sorted({str(v) for v in col.tolist()})
        encoding.append(
            {
                "column": name,
                "type": "categorical",
                "levels": levels,
                "encoded": [f"{name}_{level}" for level in levels[1:]],
            }
        )
    return encoding


def _encode(covs: pd.DataFrame, encoding: list[dict[str, Any]]) -> pd.DataFrame:
    """Apply a learned encoding; levels not seen in fit get all-zero dummies."""
    columns: dict[str, np.ndarray] = {}
    for spec in encoding:
        col = covs[spec["column"]]
        if spec["type"] == "numeric":
            columns[spec["column"]] = col.to_numpy(dtype=float)
        else:
            text = np.array([str(v) for v in col.tolist()], dtype=object)
            for level, name in zip(spec["levels"][1:], spec["encoded"], strict=True):
                columns[name] = (text == level).astype(float)
    return pd.DataFrame(columns, index=covs.index)


def _validate_encoding(names_in: Any, encoding: Any, encoded_names: Any) -> None:
    if not isinstance(names_in, list) or not names_in or not all(isinstance(n, str) for n in names_in):
        raise SurvivalDataError("params: features.names_in must be a non-empty list of str")
    if (
        not isinstance(encoding, list)
        or not all(isinstance(s, Mapping) for s in encoding)
        or [s.get("column") for s in encoding] != names_in
    ):
        raise SurvivalDataError("params: features.encoding must describe every input column, in order")
    flat: list[str] = []
    for spec in encoding:
        encoded = spec.get("encoded")
        if not isinstance(encoded, list) or not all(isinstance(e, str) for e in encoded):
            raise SurvivalDataError(f"params: bad encoded names for {spec['column']!r}")
        if spec.get("type") == "numeric":
            ok = encoded == [spec["column"]]
        elif spec.get("type") == "categorical":
            levels = spec.get("levels")
            ok = (
                isinstance(levels, list) and len(levels) == len(encoded) + 1 and all(isinstance(v, str) for v in levels)
            )
        else:
            ok = False
        if not ok:
            raise SurvivalDataError(f"params: bad encoding for {spec['column']!r}")
        flat.extend(encoded)
    if flat != encoded_names or len(set(flat)) != len(flat):
        raise SurvivalDataError("params: features.encoded_names does not match the encoding")


# --------------------------------------------------------------------------
# parameter export / import
# --------------------------------------------------------------------------


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _py_scalar(value: Any) -> Any:
    """A numpy scalar as the matching Python scalar (JSON cannot take numpy types)."""
    return value.item() if isinstance(value, np.generic) else value


def _require(mapping: Any, key: str, where: str = "") -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise SurvivalDataError(f"params: missing {where}{key!r}")
    return mapping[key]


def _finite_floats(values: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise SurvivalDataError(f"params: {what} must be a list of numbers") from exc
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise SurvivalDataError(f"params: {what} must be a flat list of finite numbers")
    return arr


def _export_cox(fitter: CoxPHFitter, encoded_names: list[str], strata: tuple[str, ...]) -> dict[str, Any]:
    bch = fitter.baseline_cumulative_hazard_
    tables = []
    for label in bch.columns:
        stratum = None
        if strata:
            # lifelines labels single-column strata by the bare value
            parts = label if isinstance(label, tuple) else (label,)
            stratum = [_py_scalar(v) for v in parts]
        tables.append(
            {
                "stratum": stratum,
                "times": _floats(bch.index),
                "values": _floats(bch[label]),
            }
        )
    return {
        "coefficients": {
            "names": list(encoded_names),
            "values": _floats(fitter.params_.reindex(encoded_names)),
        },
        # lifelines applies params_ to (x - _norm_mean): the baseline is for
        # the average training subject, so the means are part of the model.
        "centering": _floats(fitter._norm_mean.reindex(encoded_names)),
        "strata": list(strata) or None,
        "baseline_cumulative_hazard": tables,
    }


def _export_weibull(fitter: WeibullAFTFitter) -> dict[str, Any]:
    block = {}
    for param in ("lambda_", "rho_"):
        table = fitter.params_.loc[param]
        block[param] = {
            "names": [str(n) for n in table.index],
            "values": _floats(table),
        }
    return block


def _load_cox(
    block: Any, encoded_names: list[str], strata: tuple[str, ...]
) -> tuple[_Cox, pd.Series, pd.Series, pd.DataFrame]:
    coef = _require(block, "coefficients", "coxph.")
    if _require(coef, "names", "coxph.coefficients.") != encoded_names:
        raise SurvivalDataError("params: coxph coefficient names do not match the encoding")
    beta = _finite_floats(_require(coef, "values", "coxph.coefficients."), "coefficients")
    mean = _finite_floats(_require(block, "centering", "coxph."), "centering")
    if len(beta) != len(encoded_names) or len(mean) != len(encoded_names):
        raise SurvivalDataError("params: coxph coefficients/centering have the wrong length")
    if tuple(_require(block, "strata", "coxph.") or ()) != strata:
        raise SurvivalDataError("params: coxph.strata disagrees with the hyperparameters")

    tables = _require(block, "baseline_cumulative_hazard", "coxph.")
    if not isinstance(tables, list) or not tables or (not strata and len(tables) != 1):
        raise SurvivalDataError("params: coxph.baseline_cumulative_hazard is malformed")
    baselines: dict[tuple | None, tuple[np.ndarray, np.ndarray]] = {}
    columns: dict[Any, np.ndarray] = {}
    first_times: np.ndarray | None = None
    for table in tables:
        times = _finite_floats(_require(table, "times", "baseline."), "baseline times")
        values = _finite_floats(_require(table, "values", "baseline."), "baseline values")
        if len(times) == 0 or len(times) != len(values) or times[0] < 0 or np.any(np.diff(times) <= 0):
            raise SurvivalDataError("params: baseline times must be increasing, >= 0 and match the values")
        if np.any(values < 0) or np.any(np.diff(values) < 0):
            raise SurvivalDataError("params: a baseline cumulative hazard must be >= 0 and non-decreasing")
        if first_times is None:
            first_times = times
        elif not np.array_equal(times, first_times):
            raise SurvivalDataError("params: all strata baselines must share their times")
        key: tuple | None = None
        if strata:
            stratum = table.get("stratum")
            if not isinstance(stratum, list) or len(stratum) != len(strata):
                raise SurvivalDataError("params: a stratum key does not match the strata")
            key = tuple(stratum)
        if key in baselines:
            raise SurvivalDataError(f"params: two baselines for stratum {key!r}")
        columns[_UNSTRATIFIED if key is None else (key[0] if len(key) == 1 else key)] = values
        if times[0] > 0:
            # Anchor H0(0) = 0 so that S(0 | x) = 1; np.interp alone would
            # clamp to H0(first duration) before it, as lifelines does.
            times, values = np.r_[0.0, times], np.r_[0.0, values]
        baselines[key] = (times, values)
    assert first_times is not None

    cox = _Cox(beta=beta, mean=mean, baselines=baselines, last_time=float(first_times[-1]))
    params = pd.Series(beta, index=pd.Index(encoded_names, name="covariate"), name="coef")
    means = pd.Series(mean, index=pd.Index(encoded_names), name="mean")
    bch = pd.DataFrame(columns, index=first_times)  # lifelines' table, no anchor
    return cox, params, means, bch


def _load_weibull(block: Any, encoded_names: list[str]) -> tuple[_Weibull, pd.Series]:
    parts: dict[str, tuple[np.ndarray, float]] = {}
    labels: list[tuple[str, str]] = []
    values_all: list[np.ndarray] = []
    for param in ("lambda_", "rho_"):
        table = _require(block, param, "weibull_aft.")
        names = _require(table, "names", f"weibull_aft.{param}.")
        values = _finite_floats(_require(table, "values", f"weibull_aft.{param}."), param)
        if (
            not isinstance(names, list)
            or len(names) != len(values)
            or _INTERCEPT not in names
            or len(set(names)) != len(names)
        ):
            raise SurvivalDataError(f"params: weibull_aft.{param} is malformed")
        unknown = set(names) - set(encoded_names) - {_INTERCEPT}
        if unknown:
            raise SurvivalDataError(f"params: weibull_aft.{param} refers to unknown features {sorted(unknown)}")
        # Map by name: lifelines orders these tables alphabetically, not in
        # column order. A feature absent from a table has coefficient 0.
        by_name = dict(zip(names, values, strict=True))
        coef = np.array([by_name.get(n, 0.0) for n in encoded_names])
        parts[param] = (coef, float(by_name[_INTERCEPT]))
        labels += [(param, n) for n in names]
        values_all.append(values)
    weibull = _Weibull(
        lambda_coef=parts["lambda_"][0],
        lambda_intercept=parts["lambda_"][1],
        rho_coef=parts["rho_"][0],
        rho_intercept=parts["rho_"][1],
    )
    index = pd.MultiIndex.from_tuples(labels, names=["param", "covariate"])
    return weibull, pd.Series(np.concatenate(values_all), index=index)


def _json_float(value: Any) -> float | str:
    # Strict JSON has no inf/nan, but the summary can hold them (p == 0 gives
    # -log2(p) == inf): spell them as strings that float() reads back.
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def _summary_to_json(summary: pd.DataFrame) -> dict[str, Any]:
    rows = [list(k) if isinstance(k, tuple) else [k] for k in summary.index]
    return {
        "index_names": list(summary.index.names),
        "index": [[_py_scalar(v) for v in r] for r in rows],
        "columns": [str(c) for c in summary.columns],
        "data": [[_json_float(v) for v in row] for row in summary.to_numpy(dtype=float)],
    }


def _summary_from_json(d: Mapping[str, Any]) -> pd.DataFrame:
    names = d["index_names"]
    if len(names) == 1:
        index: pd.Index = pd.Index([r[0] for r in d["index"]], name=names[0])
    else:
        index = pd.MultiIndex.from_tuples([tuple(r) for r in d["index"]], names=names)
    data = np.array([[float(v) for v in row] for row in d["data"]], dtype=float)
    return pd.DataFrame(
        data.reshape(len(index), len(d["columns"])),
        index=index,
        columns=list(d["columns"]),
    )


def _stratified_concordance(durations: np.ndarray, scores: np.ndarray, events: np.ndarray, keys: list[tuple]) -> float:
    # Pairs are only comparable inside a stratum (each has its own baseline),
    # so concordant/tied/comparable counts are pooled over strata, as in
    # lifelines' concordance_index_. The public concordance_index returns
    # only the ratio, hence lifelines' private helpers here.
    from lifelines.utils.concordance import (
        _concordance_ratio,
        _concordance_summary_statistics,
    )

    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    correct = tied = pairs = 0
    for rows in groups.values():
        if len(rows) < 2:
            continue
        c, t, p = _concordance_summary_statistics(durations[rows], scores[rows], events[rows])
        correct, tied, pairs = correct + c, tied + t, pairs + p
    return float(_concordance_ratio(correct, tied, pairs))
