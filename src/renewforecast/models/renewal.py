"""RenewalModel: a calibrated renewal classifier that takes any feature frame and explains itself."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from renewforecast.models.drift import feature_profile, profile_to_json

__all__ = ["FEATURE_LABELS", "RenewalModel"]

#: Plain-language names for the features of :func:`renewforecast.renewal_features`.
FEATURE_LABELS = {
    "segment": "segment",
    "industry": "industry",
    "region": "region",
    "acquisition_channel": "acquisition channel",
    "is_government": "government account",
    "renewal_pricing_method": "renewal pricing",
    "renewal_uplift_rate": "renewal price uplift",
    "term_months": "contract term (months)",
    "days_to_end": "days to contract end",
    "tenure_months": "months as a customer",
    "renewal_count": "renewals so far",
    "prior_contracts": "earlier contracts",
    "arr": "contract ARR",
    "arr_at_start": "ARR at contract start",
    "arr_change_in_term": "ARR change this term",
    "account_arr": "account ARR",
    "account_arr_12m_ago": "account ARR a year ago",
    "account_arr_change_12m": "account ARR change over 12 months",
    "amendments_up": "upsells this term",
    "amendments_down": "seat reductions this term",
    "termination_booked": "termination booked",
    "products": "products",
    "units": "seats and units",
    "units_change_in_term": "seat change this term",
    "price_vs_peers": "price against peers",
    "seat_utilization": "seat utilisation",
    "seat_utilization_change_3m": "seat utilisation trend (3 months)",
    "active_users": "active users",
    "active_users_change_3m": "active users trend (3 months)",
    "support_tickets": "support tickets last month",
    "support_tickets_change_3m": "support tickets trend",
    "support_tickets_3m_mean": "support tickets (3-month average)",
    "nps": "NPS",
    "support_tickets_per_100_units": "support tickets per 100 seats",
    "nps_change_3m": "NPS trend",
    "active_users_per_unit": "active users per seat",
    "renewal_opportunity_exists": "renewal opportunity open",
    "renewal_stage": "renewal stage",
    "renewal_stage_probability": "renewal stage probability",
}
_PERCENT = {
    "seat_utilization",
    "seat_utilization_change_3m",
    "renewal_uplift_rate",
    "arr_change_in_term",
    "account_arr_change_12m",
    "units_change_in_term",
    "renewal_stage_probability",
    "active_users_per_unit",
}
_MONEY = {"arr", "arr_at_start", "account_arr", "account_arr_12m_ago"}


def _as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(
            "Sparse data was passed to RenewalModel, but dense data is required: "
            "pass a DataFrame or a dense array (X.toarray())."
        )
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {arr.ndim}D array instead. Reshape your data: one row per "
            "contract, one column per feature (array.reshape(-1, 1) for a single feature)."
        )
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


class RenewalModel(ClassifierMixin, BaseEstimator):
    """Calibrated probability that a contract renews, with per-contract reasons.

    Takes any feature DataFrame: numeric columns are used as numbers (missing
    values allowed), text, category and boolean columns as categories
    (unseen categories at prediction time are treated as missing). The
    default is gradient-boosted trees whose probabilities are calibrated by
    cross-validation; ``estimator="logistic"`` is a regularised logistic
    regression on scaled numbers and one-hot categories.

    By default one boosted model is fitted on all the contracts and its
    log-odds are calibrated by a logistic (Platt) fit on out-of-fold
    predictions (``ensemble=False``, ``calibration="sigmoid"``), so scoring
    runs one model rather than one per calibration fold. The model of
    earlier releases, the average of five isotonic-calibrated fold models,
    is ``ensemble=True, calibration="isotonic"``.

    Every column given to ``fit`` is a feature, so a model trained on
    :func:`renewforecast.renewal_features` of a Book whose ``signals.csv``
    has extra numeric columns uses them (each as its last value and its
    3-month change). At prediction a DataFrame's columns are matched by
    name: columns the model was not fitted on are ignored, and a missing one
    raises ``ValueError``. :func:`renewforecast.score_contracts` given a
    Book does not even featurise the signal columns its model was not
    trained on, and warns once how many it ignored.

    Parameters
    ----------
    estimator : {"gbt", "logistic"}, default "gbt"
    calibration : {"sigmoid", "isotonic", None}, default "sigmoid"
        How probabilities are calibrated (``CalibratedClassifierCV``);
        ``None`` keeps the model's own probabilities. A sigmoid is
        increasing, so the calibrated probabilities rank contracts as the
        model does; an isotonic fit is a step function, which ties
        contracts the model tells apart (on the default demo org one
        isotonic-calibrated model scored a lower AUC and a larger
        calibration error than one sigmoid-calibrated model).
    cv : int, default 5
        Folds for calibration.
    ensemble : bool, default False
        How the ``cv`` folds calibrate (``CalibratedClassifierCV(ensemble=...)``).
        ``False``: one model fitted on all the data, its calibration fitted
        on the out-of-fold scores of ``cv`` fold models (which are then
        dropped), so predicting runs one model. ``True``: one model and
        calibration per fold, and predictions average the ``cv`` calibrated
        models (``cv`` times the cost of predicting and explaining; the only
        behaviour of models saved before this parameter existed, which load
        with ``ensemble=True``).
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, l2_regularization
        Gradient-boosting settings (``HistGradientBoostingClassifier``). The
        defaults are small, strongly regularised trees: renewal odds are
        close to additive in the usual signals, and a few thousand decisions
        do not support deep interactions.
    C : float, default 1.0
        Inverse regularisation strength of the logistic model.
    profile : bool, default True
        Record ``training_profile_``, what :func:`renewforecast.drift_report`
        compares later runs with. Its out-of-fold probabilities come from
        the ``cv`` fold models fitted once more (calibration fits them too,
        but keeps only its own calibrator), so fitting takes about
        ``2 cv + 2`` model fits instead of ``cv + 1``. ``False`` skips the
        profile, e.g. for a backtest's throwaway models.
    random_state : int, RandomState or None
        Seeds the boosting and the calibration folds.

    Attributes
    ----------
    estimator_ : fitted scikit-learn estimator
        What ``predict_proba`` calls.
    classes_ : ndarray
    feature_names_in_ : ndarray of str
    numeric_features_, categorical_features_ : list of str
    n_iter_ : int
        Boosting iterations run (the most of any fitted model: the one
        model, or every fold's with ``ensemble=True``), or the logistic
        solver's iterations.
    explainer_ : Pipeline
        A linear model fitted to ``estimator_``'s log-odds on the training
        data; its per-feature terms are the reason codes.
    training_profile_ : dict or None
        The training data's profile (plain JSON data, see
        :mod:`renewforecast.models.drift`): per feature its bins (numeric
        features on their training deciles, categories, missing values) and
        how the training rows fell into them, and the distribution of the
        model's out-of-fold renewal probabilities (fine bins of width 0.01).
        None with ``profile=False``; absent from models saved before
        profiles existed.

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"seat_utilization": rng.random(400), "segment": rng.choice(["SMB", "Enterprise"], 400)})
    >>> y = (X["seat_utilization"] + 0.3 * rng.standard_normal(400) > 0.4).astype(int)
    >>> model = RenewalModel(random_state=0).fit(X, y)
    >>> model.predict_proba(X.head(2)).shape
    (2, 2)
    >>> model.reasons(X.head(1), top=1).columns.tolist()
    ['reason_1']
    """

    def __init__(
        self,
        *,
        estimator: str = "gbt",
        calibration: str | None = "sigmoid",
        cv: int = 5,
        ensemble: bool = False,
        learning_rate: float = 0.03,
        max_iter: int = 400,
        max_leaf_nodes: int = 6,
        min_samples_leaf: int = 80,
        l2_regularization: float = 10.0,
        C: float = 1.0,
        profile: bool = True,
        random_state=None,
    ):
        self.estimator = estimator
        self.calibration = calibration
        self.cv = cv
        self.ensemble = ensemble
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.C = C
        self.profile = profile
        self.random_state = random_state

    # ------------------------------------------------------------ preparing
    def _prepare(self, X, *, fitting: bool) -> pd.DataFrame:
        frame = _as_frame(X)
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        if fitting:
            self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
            self.n_features_in_ = frame.shape[1]
            self.numeric_features_ = [str(c) for c in frame.columns if _is_numeric(frame[c])]
            self.categorical_features_ = [str(c) for c in frame.columns if not _is_numeric(frame[c])]
        else:
            names = [str(c) for c in frame.columns]
            if not isinstance(X, pd.DataFrame):
                if frame.shape[1] != self.n_features_in_:
                    raise ValueError(
                        f"X has {frame.shape[1]} features, but RenewalModel is expecting "
                        f"{self.n_features_in_} features as input."
                    )
                names = list(self.feature_names_in_)  # an array is read by position
            if isinstance(X, pd.DataFrame):
                missing = [c for c in self.feature_names_in_ if c not in names]
                if missing:
                    raise ValueError(f"X is missing feature column(s) the model was trained on: {missing}")
            frame = frame.set_axis(names, axis=1)[list(self.feature_names_in_)]
        out = {}
        for c in self.feature_names_in_:
            col = frame[c]
            if c in self.numeric_features_:
                out[c] = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
            else:
                # Text, categories and booleans are categories; blanks are missing.
                out[c] = col.astype("string").astype(object).where(col.notna(), None).to_numpy()
        return pd.DataFrame(out, columns=list(self.feature_names_in_))

    def _design(self) -> ColumnTransformer:
        """Scaled numbers plus one-hot categories: the logistic model's and the explainer's input."""
        return ColumnTransformer(
            [
                (
                    "num",
                    Pipeline(
                        [
                            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                            ("scale", StandardScaler()),
                        ]
                    ),
                    self.numeric_features_,
                ),
                (
                    "cat",
                    Pipeline(
                        [
                            (
                                "impute",
                                SimpleImputer(strategy="constant", fill_value="(missing)", keep_empty_features=True),
                            ),
                            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                        ]
                    ),
                    self.categorical_features_,
                ),
            ],
            verbose_feature_names_out=False,
        )

    def _base(self):
        if self.estimator == "gbt":
            n_cat = len(self.categorical_features_)
            pre = ColumnTransformer(
                [
                    (
                        "cat",
                        OrdinalEncoder(
                            handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
                        ),
                        self.categorical_features_,
                    ),
                    ("num", "passthrough", self.numeric_features_),
                ]
            )
            gbt = HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
                categorical_features=np.arange(n_cat + len(self.numeric_features_)) < n_cat if n_cat else None,
                random_state=self.random_state,
            )
            return Pipeline([("prepare", pre), ("model", gbt)])
        if self.estimator == "logistic":
            return Pipeline([("prepare", self._design()), ("model", LogisticRegression(C=self.C, max_iter=2000))])
        raise ValueError(f"estimator must be 'gbt' or 'logistic', not {self.estimator!r}")

    # ------------------------------------------------------------ fitting
    def fit(self, X, y):
        """Fit the model (and its calibration and explainer) on features ``X`` and outcomes ``y``.

        Parameters
        ----------
        X : DataFrame or array of shape (n_contracts, n_features)
        y : array-like of shape (n_contracts,)
            Two classes, e.g. 1 renewed / 0 churned.

        Returns
        -------
        self
        """
        if self.calibration not in ("isotonic", "sigmoid", None):
            raise ValueError("calibration must be 'isotonic', 'sigmoid' or None")
        if not isinstance(self.cv, numbers.Integral) or self.cv < 2:
            raise ValueError("cv must be an integer >= 2")
        if not isinstance(self.ensemble, (bool, np.bool_)):
            raise ValueError(f"ensemble must be True or False, not {self.ensemble!r}")
        shape = X.shape if hasattr(X, "shape") else np.asarray(X).shape
        if len(shape) == 2 and shape[1] == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
        if y is None:
            raise ValueError("RenewalModel requires y to be passed, but the target y is None.")
        frame = self._prepare(X, fitting=True)
        y_arr = np.asarray(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            import warnings

            from sklearn.exceptions import DataConversionWarning

            warnings.warn(
                "A column-vector y was passed when a 1d array was expected; it was flattened.",
                DataConversionWarning,
                stacklevel=2,
            )
            y_arr = y_arr.ravel()
        if y_arr.ndim != 1 or len(y_arr) != len(frame):
            raise ValueError(f"y must be 1D with one label per row of X ({len(frame)}), got shape {y_arr.shape}")
        if len(frame) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 2 is required.")
        kind = type_of_target(y_arr)
        if kind not in ("binary",):
            if kind == "unknown" or (kind == "continuous"):
                raise ValueError(f"Unknown label type: {kind}. RenewalModel needs two classes.")
            raise ValueError(
                "Only binary classification is supported. "
                f"RenewalModel needs exactly two classes (renewed or not); got a {kind} target "
                f"with classes {np.unique(y_arr)[:10].tolist()}"
            )
        self.classes_ = np.unique(y_arr)
        if len(self.classes_) < 2:
            raise ValueError(
                "Classifier can't train when only one class is present: every label in y is "
                f"{self.classes_[0]!r}; the model needs renewals and non-renewals."
            )
        base = self._base()
        counts = np.bincount(np.searchsorted(self.classes_, y_arr))
        folds = min(self.cv, int(counts.min()))
        cv = StratifiedKFold(
            max(folds, 2),
            shuffle=True,
            random_state=self.random_state if not isinstance(self.random_state, np.random.RandomState) else None,
        )
        if self.calibration and folds >= 2:
            self.estimator_ = CalibratedClassifierCV(
                clone(base), method=self.calibration, cv=cv, ensemble=bool(self.ensemble)
            ).fit(frame, y_arr)
        else:
            self.estimator_ = clone(base).fit(frame, y_arr)
        proba = self.estimator_.predict_proba(frame)[:, 1]
        self._fit_explainer(frame, proba)
        self.n_iter_ = self._iterations()
        self.training_profile_ = None
        if self.profile:
            oof, source = self._out_of_fold(frame, y_arr, base, cv if folds >= 2 else None, proba)
            # The prepared frame holds numbers as floats and categories as text, as the model reads them.
            profile = profile_to_json(feature_profile(frame, scores=oof))
            self.training_profile_ = {**profile, "rows": len(frame), "score_source": source}
        return self

    def _out_of_fold(
        self, frame: pd.DataFrame, y: np.ndarray, base, cv: StratifiedKFold | None, proba: np.ndarray
    ) -> tuple[np.ndarray, str]:
        """Renewal probabilities of the training rows from models that did not see them, and what they are.

        The calibrated model's probability of a row is its calibration
        applied to the row's out-of-fold score: exactly the scores the
        calibration was fitted on when the folds are seeded (an int
        ``random_state``). With too few renewals or churns for two folds,
        the in-sample probabilities are all there is.
        """
        if cv is None:
            return proba, "in_sample"
        if not self.calibration:
            return cross_val_predict(clone(base), frame, y, cv=cv, method="predict_proba")[:, 1], "out_of_fold"
        method = "decision_function" if hasattr(base, "decision_function") else "predict_proba"
        raw = cross_val_predict(clone(base), frame, y, cv=cv, method=method)
        raw = raw[:, 1] if raw.ndim == 2 else raw
        # With ensemble=True each fold model has its own calibration: their average stands for the ensemble's.
        calibrated = [c.calibrators[0].predict(raw) for c in self.estimator_.calibrated_classifiers_]
        return np.mean(calibrated, axis=0), "out_of_fold"

    def __setstate__(self, state):
        # A model saved before ``ensemble`` existed averages one calibrated model per fold;
        # one saved before ``profile`` existed has no training profile.
        super().__setstate__({"ensemble": True, "profile": False, **state})

    def _iterations(self) -> int:
        """Boosting iterations (or solver iterations) actually run, the most of any fitted model."""
        fitted = getattr(self.estimator_, "calibrated_classifiers_", None)
        pipes = [c.estimator for c in fitted] if fitted else [self.estimator_]
        counts = [np.max(np.atleast_1d(p.named_steps["model"].n_iter_)) for p in pipes]
        return int(max(counts))

    def _fit_explainer(self, frame: pd.DataFrame, proba: np.ndarray) -> None:
        p = np.clip(proba, 1e-4, 1 - 1e-4)
        target = np.log(p / (1 - p))
        self.explainer_ = Pipeline([("design", self._design()), ("linear", Ridge(alpha=1.0))]).fit(frame, target)
        design = self.explainer_.named_steps["design"]
        names = list(design.get_feature_names_out())
        # Which original feature each design column belongs to.
        owner = []
        for n in names:
            if n in self.numeric_features_:
                owner.append(n)
            else:
                owner.append(next(c for c in self.categorical_features_ if n.startswith(f"{c}_")))
        self._owner_index = np.array([list(self.feature_names_in_).index(o) for o in owner])
        self._design_mean = np.asarray(design.transform(frame)).mean(axis=0)

    # ------------------------------------------------------------ predicting
    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class (column 1: renews), one row per contract."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(self._prepare(X, fitting=False))

    def predict(self, X) -> np.ndarray:
        """The more likely class of each contract."""
        check_is_fitted(self)
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def predict_proba_with_reasons(self, X, top: int = 3) -> tuple[np.ndarray, pd.DataFrame]:
        """:meth:`predict_proba` and :meth:`reasons` of the same contracts, reading ``X`` once.

        Parameters
        ----------
        X : DataFrame or array of shape (n_contracts, n_features)
        top : int, default 3

        Returns
        -------
        proba : ndarray of shape (n_contracts, 2)
            As :meth:`predict_proba`.
        reasons : DataFrame
            As :meth:`reasons` with ``detail=False``.

        Examples
        --------
        >>> import pandas as pd, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"seat_utilization": rng.random(400), "segment": rng.choice(["SMB", "Enterprise"], 400)})
        >>> y = (X["seat_utilization"] + 0.3 * rng.standard_normal(400) > 0.4).astype(int)
        >>> model = RenewalModel(random_state=0).fit(X, y)
        >>> proba, reasons = model.predict_proba_with_reasons(X.head(2), top=2)
        >>> bool((proba == model.predict_proba(X.head(2))).all()), reasons.equals(model.reasons(X.head(2), top=2))
        (True, True)
        """
        check_is_fitted(self)
        frame = self._prepare(X, fitting=False)
        proba = self.estimator_.predict_proba(frame)
        return proba, self._reasons(frame, _as_frame(X).index, top, detail=False)

    def contributions(self, X) -> pd.DataFrame:
        """Each feature's signed push on the renewal log-odds, per contract.

        Positive values raise the renewal probability. They come from the
        explainer (a linear model of the fitted model's log-odds), relative
        to an average training contract.
        """
        check_is_fitted(self)
        frame = self._prepare(X, fitting=False)
        return pd.DataFrame(
            self._contribution_matrix(frame), index=_as_frame(X).index, columns=list(self.feature_names_in_)
        )

    def _contribution_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The explainer's terms, summed per feature: (n_contracts, n_features) log-odds.

        Each design column's term is (value - training mean) x coefficient; a
        category's one-hot columns are summed left to right. A numeric
        feature is one scaled design column; a category feature's push
        depends only on its value, so it is worked out once per distinct
        value rather than through a one-hot matrix of every contract.
        """
        design = self.explainer_.named_steps["design"]
        coef = self.explainer_.named_steps["linear"].coef_
        names = list(self.feature_names_in_)
        contrib = np.zeros((len(frame), len(names)))
        if self.numeric_features_:
            cols = design.output_indices_["num"]
            scaled = np.asarray(design.named_transformers_["num"].transform(frame[self.numeric_features_]))
            where = [names.index(c) for c in self.numeric_features_]
            contrib[:, where] = (scaled - self._design_mean[cols]) * coef[cols]
        if self.categorical_features_ and len(frame):
            # The fitted one-hot step encodes each feature's distinct values (and a
            # blank), so missing and unseen categories are treated as in training.
            codes, distinct = {}, {}
            for c in self.categorical_features_:
                codes[c], uniques = pd.factorize(frame[c].to_numpy(dtype=object))
                distinct[c] = [*uniques, None]
            rows = max(len(v) for v in distinct.values())
            table = pd.DataFrame({c: v + [None] * (rows - len(v)) for c, v in distinct.items()}, dtype=object)
            onehot = np.asarray(design.named_transformers_["cat"].transform(table), dtype=float)
            first = design.output_indices_["cat"].start
            for c in self.categorical_features_:
                j = names.index(c)
                cols = np.flatnonzero(self._owner_index == j)
                if not len(cols):
                    continue
                terms = (onehot[: len(distinct[c]), cols - first] - self._design_mean[cols]) * coef[cols]
                push = terms[:, 0].copy()
                for k in range(1, terms.shape[1]):
                    push += terms[:, k]
                code = codes[c]
                contrib[:, j] = push[np.where(code < 0, len(distinct[c]) - 1, code)]
        return contrib

    def reasons(self, X, top: int = 3, *, detail: bool = False) -> pd.DataFrame:
        """The ``top`` features that push each contract's probability most, in plain words.

        Parameters
        ----------
        X : DataFrame
        top : int, default 3
        detail : bool, default False
            Also return, per reason, the feature name, its value and its
            signed contribution (log-odds) in separate columns.

        Returns
        -------
        DataFrame
            ``reason_1`` .. ``reason_<top>``, e.g. ``"seat utilisation 41% lowers the renewal chance"``.
            Features are ranked by the size of their contribution; equal
            sizes go to the feature that comes first in ``X``.
        """
        check_is_fitted(self)
        frame = self._prepare(X, fitting=False)
        return self._reasons(frame, _as_frame(X).index, top, detail=detail)

    def _reasons(self, frame: pd.DataFrame, index, top: int, *, detail: bool) -> pd.DataFrame:
        contrib = self._contribution_matrix(frame)
        top = min(int(top), contrib.shape[1])
        order = _strongest(contrib, top)
        rows = np.arange(len(frame))
        names = np.asarray(self.feature_names_in_)
        out = {}
        for k in range(top):
            j = order[:, k]
            c = contrib[rows, j]
            out[f"reason_{k + 1}"] = self._reason_texts(frame, j, c >= 0)
            if detail:
                out[f"reason_{k + 1}_feature"] = names[j]
                out[f"reason_{k + 1}_value"] = [frame[names[f]].iat[i] for i, f in enumerate(j)]
                out[f"reason_{k + 1}_contribution"] = c
        return pd.DataFrame(out, index=index)

    def _reason_texts(self, frame: pd.DataFrame, feature: np.ndarray, raises: np.ndarray) -> np.ndarray:
        """``"<label> <value> raises|lowers the renewal chance"`` per contract, for the feature at ``feature``."""
        text = np.empty(len(feature), dtype=object)
        by_feature = np.argsort(feature, kind="stable")
        bounds = np.searchsorted(feature[by_feature], np.arange(len(self.feature_names_in_) + 1))
        for f, name in enumerate(self.feature_names_in_):
            sel = by_feature[bounds[f] : bounds[f + 1]]
            if not len(sel):
                continue
            shown, which = _display_values(name, frame[name].to_numpy()[sel])
            label = FEATURE_LABELS.get(name, name.replace("_", " "))
            # Each distinct (value, direction) is written once and shared by the contracts that have it.
            phrases = np.array(
                [f"{label} {v} {verb} the renewal chance" for v in shown for verb in ("lowers", "raises")],
                dtype=object,
            )
            text[sel] = phrases[2 * which + raises[sel]]
        return text

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.classifier_tags.multi_class = False  # renewed or not
        return tags


def _strongest(contrib: np.ndarray, top: int) -> np.ndarray:
    """Positions of the ``top`` largest absolute contributions per row, largest first.

    Equal sizes go to the lower position and NaN comes last, the order of a
    stable sort of ``-abs(contrib)``.
    """
    size = np.abs(contrib)
    size[np.isnan(size)] = -1.0
    rows = np.arange(len(contrib))
    order = np.empty((len(contrib), top), dtype=np.intp)
    for k in range(top):
        order[:, k] = j = size.argmax(axis=1)
        size[rows, j] = -2.0
    return order


def _display_values(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How the values of feature ``name`` read in a reason: (distinct texts, which text each value has).

    Percentages show whole percent, amounts and large numbers whole units,
    other numbers two decimals; blanks read "unknown". Each distinct text
    is formatted once: a number is first rounded to what it shows
    (``rint`` is exact and rounds halves to even, as formatting does), so
    ``f"{x:.0%}"`` is ``f"{rint(x * 100):.0f}%"`` and ``f"{x:,.0f}"`` is
    ``f"{rint(x):,.0f}"``.
    """
    if values.dtype == object:
        codes, uniques = pd.factorize(values)
        shown = np.array([*(str(v) for v in uniques), "unknown"], dtype=object)
        return shown, np.where(codes < 0, len(uniques), codes)
    v = values.astype(float)
    if name in _PERCENT:
        key = np.rint(v * 100)

        def fmt(x: float) -> str:
            return f"{x:.0f}%"
    elif name in _MONEY:
        key = np.rint(v)

        def fmt(x: float) -> str:
            return f"{x:,.0f}"
    else:
        whole = np.abs(v) >= 100
        np.logical_or(whole, v == np.rint(v), out=whole)
        key = np.where(whole, np.rint(v), v)

        def fmt(x: float) -> str:
            return f"{x:,.0f}" if abs(x) >= 100 or x.is_integer() else f"{x:.2f}"

    # By bit pattern, so that -0.0 (shown "-0") and 0.0 stay apart.
    which, distinct = pd.factorize(np.ascontiguousarray(key).view(np.int64))
    shown = np.array(["unknown" if np.isnan(x) else fmt(float(x)) for x in distinct.view(np.float64)], dtype=object)
    return shown, which
