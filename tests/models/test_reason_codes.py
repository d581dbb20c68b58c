"""Reason codes: what the model writes equals a plain, row-by-row reading of its explainer.

The reference below follows the definition and nothing else: the explainer's
design matrix (scikit-learn's own transform), each design column's term
(value - mean over the training contracts) x coefficient, a feature's push
the sum of its columns' terms from left to right, features ranked by the
size of their push (the earlier feature first on a tie, NaN last), and each
value written with Python's own format rules: whole percent for a share,
whole units with thousands separators for money and for numbers of 100 or
more or whole numbers, two decimals otherwise, "unknown" for a blank.
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import renewforecast as rf
from renewforecast.models.renewal import FEATURE_LABELS

PERCENT, MONEY, PLAIN = "seat_utilization", "arr", "nps"
REGIONS = [f"Region {k}" for k in range(12)]  # more than 8 one-hot columns: long sums
SEGMENTS = ["SMB", "Mid-Market", "Enterprise"]
CATEGORICAL = ["segment", "region"]
FEATURES = [PERCENT, "segment", MONEY, PLAIN, "region"]


@pytest.fixture(scope="module")
def fitted():
    """A small model on five features of every kind, and its training frame."""
    rng = np.random.default_rng(3)
    n = 1500
    X = pd.DataFrame(
        {
            PERCENT: rng.random(n),
            "segment": rng.choice(SEGMENTS, n).astype(object),
            MONEY: rng.lognormal(10, 1, n),
            PLAIN: rng.integers(-100, 101, n).astype(float),
            "region": rng.choice(REGIONS, n).astype(object),
        }
    )
    X.loc[X.index[::9], PLAIN] = np.nan
    X.loc[X.index[::13], "segment"] = None
    region_effect = (X["region"] == "Region 3").astype(float)
    logit = 3 * (X[PERCENT] - 0.5) + 0.01 * X[PLAIN].fillna(0) + region_effect - 0.2 * (X["segment"] == "SMB")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return rf.RenewalModel(random_state=0, max_iter=30, cv=2).fit(X, y), X


def _shown(name: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if name in CATEGORICAL:
        return str(value)
    if name == PERCENT:
        return f"{value:.0%}"
    if name == MONEY:
        return f"{value:,.0f}"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.2f}"


def _rank(push: float, position: int) -> tuple:
    """Sort key: larger pushes first, then the earlier feature; NaN after every number."""
    return (1, 0.0, position) if math.isnan(push) else (0, -abs(push), position)


def _reference(model, train: pd.DataFrame, X: pd.DataFrame, top: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Pushes (n, features) and the reason texts, one contract and one feature at a time."""
    design = model.explainer_.named_steps["design"]
    coef = model.explainer_.named_steps["linear"].coef_
    mean = np.asarray(design.transform(train)).mean(axis=0)
    terms = (np.asarray(design.transform(X)) - mean) * coef
    owner = [
        name if name in FEATURES else next(c for c in CATEGORICAL if name.startswith(f"{c}_"))
        for name in design.get_feature_names_out()
    ]
    push = np.array(
        [
            [functools.reduce(operator.add, [t for t, o in zip(row, owner, strict=True) if o == f]) for f in FEATURES]
            for row in terms
        ]
    )
    texts = []
    for i, row in enumerate(push):
        ranked = sorted(range(len(FEATURES)), key=lambda f, row=row: _rank(row[f], f))
        line = {}
        for k, f in enumerate(ranked[:top]):
            name = FEATURES[f]
            verb = "raises" if row[f] >= 0 else "lowers"
            line[f"reason_{k + 1}"] = f"{FEATURE_LABELS[name]} {_shown(name, X[name].iat[i])} {verb} the renewal chance"
        texts.append(line)
    return push, pd.DataFrame(texts, index=X.index, columns=[f"reason_{k + 1}" for k in range(top)], dtype=object)


# Values next to the format rules' edges: halves, 100, whole numbers, -0.0, blanks.
SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, 0.125, 0.005, 0.015, 0.995, 99.995, 99.5, 100.0, -100.0, 1e6, 1234.5, -7.0]
numbers = st.one_of(
    st.sampled_from([*SPECIAL, math.nan]),
    st.floats(-2.0, 2.0),
    st.floats(-1e12, 1e12),
    st.integers(-(10**6), 10**6).map(float),
)


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 25))
    column = {
        PERCENT: st.lists(numbers, min_size=n, max_size=n),
        MONEY: st.lists(numbers, min_size=n, max_size=n),
        PLAIN: st.lists(numbers, min_size=n, max_size=n),
        "segment": st.lists(st.sampled_from([*SEGMENTS, None, "Never seen"]), min_size=n, max_size=n),
        "region": st.lists(st.sampled_from([*REGIONS, None, "Atlantis"]), min_size=n, max_size=n),
    }
    index = [f"c{i}" for i in range(n)]
    return pd.DataFrame(
        {
            name: pd.Series(draw(column[name]), index=index, dtype=object if name in CATEGORICAL else float)
            for name in FEATURES
        }
    )


@settings(max_examples=150, deadline=None)
@given(X=frames(), top=st.integers(1, len(FEATURES)))
def test_reasons_are_the_plain_reading_of_the_explainer(fitted, X, top):
    model, train = fitted
    push, expected = _reference(model, train, X, top)
    np.testing.assert_array_equal(model.contributions(X).to_numpy(), push)
    got = model.reasons(X, top=top)
    pd.testing.assert_frame_equal(got, expected)
    proba, same = model.predict_proba_with_reasons(X, top=top)
    np.testing.assert_array_equal(proba, model.predict_proba(X))
    pd.testing.assert_frame_equal(same, expected)


def test_a_contract_reads_the_same_alone_and_in_a_batch(fitted):
    model, train = fitted
    batch = train.head(40)
    together = model.reasons(batch, top=5)
    alone = pd.concat([model.reasons(batch.iloc[[i]], top=5) for i in range(len(batch))])
    pd.testing.assert_frame_equal(alone, together)


def test_hand_worked_reasons(fitted):
    model, _ = fitted
    X = pd.DataFrame(
        {
            PERCENT: [0.125, -0.001],
            "segment": ["SMB", None],
            MONEY: [1234.5, 2500.5],
            PLAIN: [99.995, 7.0],
            "region": ["Region 3", "Atlantis"],
        }
    )
    texts = set(model.reasons(X, top=5).to_numpy().ravel())
    shown = {t.rsplit(" ", 4)[0] for t in texts}  # without "raises|lowers the renewal chance"
    assert {
        "seat utilisation 12%",  # 12.5% rounds half to even
        "seat utilisation -0%",
        "segment SMB",
        "segment unknown",
        "contract ARR 1,234",
        "contract ARR 2,500",
        "NPS 100.00",  # below 100 before rounding: two decimals
        "NPS 7",
        "region Region 3",
        "region Atlantis",
    } == shown
