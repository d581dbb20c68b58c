"""Wide signals files: extra numeric signal columns become features in one pass, numbers unchanged.

The expectations here are computed independently of renewforecast: by hand
for one account, and with plain pandas (filter, take the last row) for every
contract and column.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import renewforecast as rf
from renewforecast.analyses.scoring import ScoringInputError
from renewforecast.models.features import BASE_SIGNALS, UnusedSignalsWarning, model_signals
from renewforecast.schemas import conform


def _widen(book: rf.Book, n: int, seed: int = 0) -> rf.Book:
    """``book`` with ``n`` extra numeric signal columns (about a third blank), read as the loader does."""
    sig = book.signals
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(50, 20, (len(sig), n)), 2)
    values[rng.random((len(sig), n)) < 0.35] = np.nan
    extra = pd.DataFrame(values, columns=[f"usage_{i}" for i in range(n)])
    wide = pd.concat([sig.reset_index(drop=True), extra], axis=1)
    return book.replace(signals=conform(wide, "signals"))


def _plain_last(signals: pd.DataFrame, account: str, date: pd.Timestamp, column: str) -> float:
    """Straightforward: the account's months over by ``date`` with the column filled; the last one."""
    rows = signals[
        (signals["account_id"] == account)
        & (signals["month"] + pd.offsets.MonthEnd(0) <= date)
        & signals[column].notna()
    ]
    rows = rows.sort_values("month", kind="stable")
    return float(rows[column].iloc[-1]) if len(rows) else np.nan


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True))


@pytest.fixture(scope="module")
def wide5(demo_book):
    return _widen(demo_book, 5)


def test_extra_signal_features_match_a_plain_computation(demo_book, demo_org, wide5):
    features = rf.renewal_features(wide5, demo_org.as_of)
    narrow = rf.renewal_features(demo_book, demo_org.as_of)
    assert len(features) > 5
    # The features that do not come from the extra columns are untouched.
    pd.testing.assert_frame_equal(features[narrow.columns], narrow, check_exact=True)
    # Each extra column gives its two features right after the known signals.
    cols = list(features.columns)
    at = cols.index("nps_change_3m") + 1
    assert cols[at : at + 10] == [f"{p}{i}{s}" for i in range(5) for p, s in (("usage_", ""), ("usage_", "_change_3m"))]
    cut = pd.Timestamp(demo_org.as_of)
    con = demo_book.contracts.set_index("contract_id")
    sig = wide5.signals
    for col in [f"usage_{i}" for i in range(5)]:
        now = [_plain_last(sig, con.loc[cid, "account_id"], cut, col) for cid in features.index]
        before = [
            _plain_last(sig, con.loc[cid, "account_id"], cut - pd.Timedelta(days=91), col) for cid in features.index
        ]
        assert _same(features[col], now), col
        assert _same(features[f"{col}_change_3m"], np.subtract(now, before)), col
        assert features[col].notna().sum() > len(features) // 2


def test_training_rows_see_extra_signals_only_as_of_their_feature_date(wide5):
    X, _ = rf.renewal_training_set(wide5)
    dec = rf.renewal_decisions(wide5).set_index("contract_id")
    con = wide5.contracts.set_index("contract_id")
    sig = wide5.signals
    fd = dec.loc[X.index, "end_date"] - pd.Timedelta(days=120)
    for col in ("usage_0", "usage_4"):
        now = [_plain_last(sig, con.loc[cid, "account_id"], d, col) for cid, d in zip(X.index, fd, strict=True)]
        before = [
            _plain_last(sig, con.loc[cid, "account_id"], d - pd.Timedelta(days=91), col)
            for cid, d in zip(X.index, fd, strict=True)
        ]
        assert _same(X[col], now)
        assert _same(X[f"{col}_change_3m"], np.subtract(now, before))


def test_last_filled_value_worked_by_hand(demo_book, demo_org):
    cut = pd.Timestamp(demo_org.as_of)
    open_contracts = rf.renewal_features(demo_book, cut)
    account = demo_book.contracts.set_index("contract_id").loc[open_contracts.index[0], "account_id"]
    sig = demo_book.signals.sort_values(["account_id", "month"]).reset_index(drop=True)
    ends = sig["month"] + pd.offsets.MonthEnd(0)
    mine = (sig["account_id"] == account).to_numpy()
    known = np.flatnonzero(mine & (ends <= cut).to_numpy())
    three_months_ago = np.flatnonzero(mine & (ends <= cut - pd.Timedelta(days=91)).to_numpy())[-1]
    hand = np.full(len(sig), np.nan)
    hand[mine] = 100.0  # months not over by the cut: never seen
    hand[known] = 1.0
    hand[three_months_ago] = 3.0  # the value 91 days before the cut
    hand[known[-2]] = 7.0  # the last filled month known at the cut ...
    hand[known[-1]] = np.nan  # ... because the very last one is blank
    assert known[-2] > three_months_ago
    book = demo_book.replace(signals=conform(sig.assign(hand=hand), "signals"))
    features = rf.renewal_features(book, cut)
    mine_rows = features.index.map(book.contracts.set_index("contract_id")["account_id"]) == account
    assert (features.loc[mine_rows, "hand"] == 7.0).all()
    assert (features.loc[mine_rows, "hand_change_3m"] == 4.0).all()
    assert features.loc[~mine_rows, "hand"].isna().all()


@pytest.mark.filterwarnings("error::pandas.errors.PerformanceWarning")
def test_two_thousand_signal_columns_no_fragmentation_and_same_features(demo_book, demo_org):
    wide = _widen(demo_book, 2000)  # conform adds the 2,000 columns as the loader does
    two = wide.replace(signals=wide.signals[["account_id", "month", *BASE_SIGNALS, "usage_0", "usage_1"]])
    f_wide = rf.renewal_features(wide, demo_org.as_of)
    f_two = rf.renewal_features(two, demo_org.as_of)
    assert f_wide.shape == (len(f_two), f_two.shape[1] + 2 * 1998)
    pd.testing.assert_frame_equal(f_wide[f_two.columns], f_two, check_exact=True)
    X_wide, y_wide = rf.renewal_training_set(wide)
    X_two, y_two = rf.renewal_training_set(two)
    pd.testing.assert_frame_equal(X_wide[X_two.columns], X_two, check_exact=True)
    pd.testing.assert_series_equal(y_wide, y_two)


def test_scoring_ignores_signal_columns_the_model_never_saw(demo_book, demo_org):
    X, y = rf.renewal_training_set(demo_book)
    model = rf.RenewalModel(estimator="logistic").fit(X, y)
    wide = _widen(demo_book, 300)
    at = pd.Timestamp("2026-01-01", tz="UTC")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = rf.score_contracts(wide, model=model, as_of=demo_org.as_of, scored_at=at)
    unused = [w for w in caught if issubclass(w.category, UnusedSignalsWarning)]
    assert len(unused) == 1
    assert str(unused[0].message).startswith("300 numeric signal column(s) the model was not trained on")
    assert "usage_0, usage_1, usage_2, usage_3, usage_4, ..." in str(unused[0].message)
    narrow = rf.score_contracts(demo_book, model=model, as_of=demo_org.as_of, scored_at=at)
    pd.testing.assert_frame_equal(scores, narrow, check_exact=True)


def test_a_model_trained_on_extra_signals_uses_them_and_needs_them(demo_book, demo_org, wide5):
    X, y = rf.renewal_training_set(wide5)
    model = rf.RenewalModel(estimator="logistic").fit(X, y)
    assert {"usage_3", "usage_3_change_3m"} <= set(model.feature_names_in_)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedSignalsWarning)
        scores = rf.score_contracts(wide5, model=model, as_of=demo_org.as_of)
    assert len(scores) == len(rf.renewal_features(demo_book, demo_org.as_of))
    with pytest.raises(ScoringInputError, match=r"lacks 10 column\(s\) the model was trained on: \['usage_0'"):
        rf.score_contracts(demo_book, model=model, as_of=demo_org.as_of)


def test_model_signals_keeps_what_the_model_uses(wide5):
    names = [*BASE_SIGNALS, *(f"{s}_change_3m" for s in BASE_SIGNALS), "usage_2_change_3m", "arr"]
    with pytest.warns(
        UnusedSignalsWarning,
        match=r"^4 numeric signal column\(s\) .*\(usage_0, usage_1, usage_3, "
        r"usage_4\)",
    ):
        used = model_signals(wide5, names)
    assert used == ["seat_utilization", "active_users", "support_tickets", "nps", "usage_2"]
