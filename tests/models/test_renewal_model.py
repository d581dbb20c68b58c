"""Renewal features (point in time), the RenewalModel, the registry and the scoring API."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.estimator_checks import parametrize_with_checks

import renewforecast as rf
from renewforecast.models.registry import ALLOWED_TYPES, ModelRefused

# ------------------------------------------------------------- features


@pytest.fixture(scope="module")
def training(demo_book):
    return rf.renewal_training_set(demo_book)


def test_training_rows_use_only_what_was_known(demo_book, training):
    X, y = training
    assert len(X) == len(y) > 20 and set(y.unique()) == {0, 1}
    dec = rf.renewal_decisions(demo_book).set_index("contract_id")
    assert (dec.loc[X.index, "outcome"] != "open").all()
    assert (y.to_numpy() == (dec.loc[X.index, "outcome"] == "renewed").astype(int).to_numpy()).all()
    # featurising from a Book cut back to the feature date gives the same features
    cid = X.index[len(X) // 2]
    fd = dec.loc[cid, "end_date"] - pd.Timedelta(days=120)
    from renewforecast.models.features import featurise_contracts

    view = demo_book.as_of(fd)
    row = view.contracts[view.contracts["contract_id"] == cid]
    again = featurise_contracts(view, row, pd.Series(fd, index=row.index))
    pd.testing.assert_series_equal(again.loc[cid], X.loc[cid], check_names=False)


def test_signal_features_are_last_known_values(demo_book, training):
    X, _ = training
    cid = X.index[0]
    con = demo_book.contracts.set_index("contract_id").loc[cid]
    fd = con["end_date"] - pd.Timedelta(days=120)
    sig = demo_book.signals[
        (demo_book.signals["account_id"] == con["account_id"])
        & (demo_book.signals["month"] + pd.offsets.MonthEnd(0) <= fd)
    ]
    if len(sig):
        assert X.loc[cid, "seat_utilization"] == sig.sort_values("month")["seat_utilization"].iloc[-1]


def test_extra_signal_columns_become_features(demo_book):
    signals = demo_book.signals.assign(login_days=np.arange(len(demo_book.signals)) % 20)
    X, _ = rf.renewal_training_set(demo_book.replace(signals=signals))
    assert {"login_days", "login_days_change_3m"} <= set(X.columns)


def test_scoring_features_cover_open_contracts(demo_book):
    F = rf.renewal_features(demo_book, "2026-06-30")
    con = demo_book.as_of("2026-06-30").contracts.set_index("contract_id")
    assert (con.loc[F.index, "end_date"] > pd.Timestamp("2026-06-30")).all()
    assert not con.loc[F.index, "evergreen"].any()


def _revenue_book(subs: list[dict]):
    from _support import make_book

    frame = pd.DataFrame(subs)
    contracts = (
        frame.groupby("contract_id")
        .agg(account_id=("account_id", "first"), start_date=("start_date", "min"), end_date=("end_date", "max"))
        .reset_index()
        .assign(evergreen=False, created_date=lambda c: c["start_date"])
    )
    accounts = pd.DataFrame({"account_id": frame["account_id"].unique(), "created_date": pd.Timestamp("2020-01-01")})
    products = pd.DataFrame({"product_id": ["p"], "subscription_term_months": [12.0]})
    return make_book(subscriptions=frame, contracts=contracts, accounts=accounts, products=products)


def _sub(sid, contract, qty, start, end, created, price=1200.0, prorate=1.0, revises=None, terminated=None):
    return {
        "subscription_id": sid,
        "contract_id": contract,
        "account_id": "a1",
        "product_id": "p",
        "quantity": qty,
        "net_price": price,
        "prorate_multiplier": prorate,
        "start_date": pd.Timestamp(start),
        "end_date": pd.Timestamp(end),
        "created_date": pd.Timestamp(created),
        "revised_subscription_id": revises,
        "terminated_date": pd.Timestamp(terminated) if terminated else pd.NaT,
    }


def test_revenue_features_count_what_was_booked_and_active_on_each_date():
    from renewforecast.models.features import featurise_contracts

    # 1,200 a year per unit. c0 last year; c1 10 units plus 5 from July (booked
    # in June); c2 2 units, 1 more booked in September back to June, and the
    # 2-unit line terminated (last day 29 February, booked 10 February).
    book = _revenue_book(
        [
            _sub("s0", "c0", 1, "2022-01-01", "2022-12-31", "2022-01-01"),
            _sub("s1", "c1", 10, "2023-01-01", "2023-12-31", "2023-01-01"),
            _sub("s2", "c1", 5, "2023-07-01", "2023-12-31", "2023-06-20", price=600.0, prorate=0.5, revises="s1"),
            _sub("s3", "c2", 2, "2023-06-01", "2024-05-31", "2023-06-01"),
            _sub("s4", "c2", 1, "2023-06-01", "2024-05-31", "2023-09-15"),
            _sub("s5", "c2", -2, "2024-03-01", "2024-05-31", "2024-02-10", revises="s3", terminated="2024-02-29"),
        ]
    )
    rows = book.contracts.set_index("contract_id").loc[["c1", "c2", "c2", "c2"]].reset_index()
    dates = pd.Series(pd.to_datetime(["2023-08-01", "2023-09-01", "2023-10-01", "2024-03-15"]))
    X = featurise_contracts(book, rows, dates)
    # ARR on the date; at the start, only rows booked by the start count (s4 was booked later).
    assert X["arr"].tolist() == [18_000.0, 2_400.0, 3_600.0, 1_200.0]
    assert X["arr_change_in_term"].tolist() == pytest.approx([0.5, 0.0, 0.5, -0.5])
    # The account against a year before, counting the rows booked by then: 20,400 / 1,200,
    # 20,400 / 1,200, 21,600 / 1,200, 1,200 / 12,000.
    assert X["account_arr_change_12m"].tolist() == pytest.approx([16.0, 16.0, 17.0, -0.9])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_revenue_features_equal_a_row_by_row_sum(data):
    from renewforecast.ledger.valuation import counts_on, ledger
    from renewforecast.models.features import featurise_contracts

    day = st.integers(0, 800).map(lambda d: pd.Timestamp("2024-01-01") + pd.Timedelta(days=d))
    subs = []
    for i in range(data.draw(st.integers(1, 12))):
        start, length, booked = data.draw(day), data.draw(st.integers(0, 500)), data.draw(st.integers(-30, 60))
        row = _sub(
            f"s{i}",
            f"c{data.draw(st.integers(0, 2))}",
            float(data.draw(st.integers(-3, 5))),
            start,
            start + pd.Timedelta(days=length),
            start + pd.Timedelta(days=booked),
            price=float(data.draw(st.integers(1, 2000))),
            revises=data.draw(st.sampled_from([None, *[f"s{j}" for j in range(i)]])),
            terminated=data.draw(st.one_of(st.none(), day)),
        )
        row["account_id"] = data.draw(st.sampled_from(["a1", "a2"]))
        if data.draw(st.booleans()):
            row["end_date"] = pd.NaT  # evergreen row
        subs.append(row)
    book = _revenue_book(subs)
    rows = book.contracts
    dates = pd.Series([data.draw(day) for _ in range(len(rows))], index=rows.index)
    X = featurise_contracts(book, rows, dates)
    led = ledger(book).assign(created_date=book.subscriptions["created_date"].to_numpy())

    def direct(key, value, on):
        mine = led[led[key] == value]
        counted = (mine["created_date"] <= on) & counts_on(
            mine["from_date"], mine["to_date"], mine["chain_terminated"], on
        )
        return sum(q * v for q, v, c in zip(mine["quantity"], mine["annual_value"], counted, strict=True) if c)

    for (_, con), on in zip(rows.iterrows(), dates, strict=True):
        got = X.loc[con["contract_id"]]
        assert got["arr"] == pytest.approx(direct("contract_id", con["contract_id"], on), abs=1e-6)
        now = direct("account_id", con["account_id"], on)
        before = direct("account_id", con["account_id"], on - pd.Timedelta(days=365))
        expected = (now - before) / before if abs(before) > 0.005 else np.nan
        assert got["account_arr_change_12m"] == pytest.approx(expected, nan_ok=True)


# ------------------------------------------------------------- the model


# The boosted model's defaults (at least 80 contracts per leaf) are meant for thousands of
# decisions; on scikit-learn's toy problems of ~150 rows it gets smaller leaves.
@parametrize_with_checks(
    [
        rf.RenewalModel(random_state=0, max_iter=50, min_samples_leaf=5, learning_rate=0.1, cv=2),
        rf.RenewalModel(estimator="logistic", random_state=0, cv=2),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_one_boosted_model_by_default_and_the_fold_average_on_request(training):
    X, y = training
    one = rf.RenewalModel(random_state=0, max_iter=30, cv=3).fit(X, y)
    assert one.get_params()["ensemble"] is False
    (single,) = one.estimator_.calibrated_classifiers_  # one model, calibrated on out-of-fold scores
    assert one.n_iter_ == single.estimator.named_steps["model"].n_iter_ >= 1
    average = rf.RenewalModel(random_state=0, max_iter=30, cv=3, ensemble=True).fit(X, y)
    folds = average.estimator_.calibrated_classifiers_
    assert len(folds) == 3
    assert average.n_iter_ == max(c.estimator.named_steps["model"].n_iter_ for c in folds)
    for model in (one, average):
        p = model.predict_proba(X)[:, 1]
        assert ((p >= 0) & (p <= 1)).all()
        assert rf.RenewalModel(**model.get_params()).get_params() == model.get_params()
    with pytest.raises(ValueError, match="ensemble must be True or False"):
        rf.RenewalModel(ensemble="yes").fit(X, y)


def test_model_takes_mixed_frames_and_new_categories(training):
    X, y = training
    model = rf.RenewalModel(random_state=0).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    assert ((p >= 0) & (p <= 1)).all()
    changed = X.head(5).copy()
    changed["segment"] = "Brand New Segment"
    changed.loc[changed.index[0], "seat_utilization"] = np.nan
    assert model.predict_proba(changed).shape == (5, 2)
    with pytest.raises(ValueError, match="missing feature column"):
        model.predict_proba(X.drop(columns=["segment"]))


def test_reasons_point_the_right_way():
    # renewals rise with utilisation and fall with tickets: reasons must say so
    rng = np.random.default_rng(1)
    n = 3000
    X = pd.DataFrame(
        {
            "seat_utilization": rng.random(n),
            "support_tickets": rng.poisson(3, n).astype(float),
            "segment": rng.choice(["SMB", "Enterprise"], n),
            "noise": rng.random(n),
        }
    )
    logit = 4 * (X["seat_utilization"] - 0.5) - 0.6 * (X["support_tickets"] - 3)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    model = rf.RenewalModel(random_state=0).fit(X, y)
    contrib = model.contributions(X)
    assert np.corrcoef(contrib["seat_utilization"], X["seat_utilization"])[0, 1] > 0.9
    assert np.corrcoef(contrib["support_tickets"], X["support_tickets"])[0, 1] < -0.9
    low = pd.DataFrame({"seat_utilization": [0.02], "support_tickets": [3.0], "segment": ["SMB"], "noise": [0.5]})
    text = model.reasons(low, top=1)["reason_1"].iloc[0]
    assert text == "seat utilisation 2% lowers the renewal chance"
    detail = model.reasons(low, top=2, detail=True)
    assert detail.loc[0, "reason_1_feature"] == "seat_utilization" and detail.loc[0, "reason_1_contribution"] < 0


def test_probabilities_are_calibrated_on_held_out_data():
    rng = np.random.default_rng(2)
    n = 12000
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)})
    true_p = 1 / (1 + np.exp(-(0.8 + 1.2 * X["a"] - 0.7 * X["b"] + (X["c"] == "z") * 0.8)))
    y = (rng.random(n) < true_p).astype(int)
    model = rf.RenewalModel(random_state=0).fit(X[:8000], y[:8000])
    p = model.predict_proba(X[8000:])[:, 1]
    from renewforecast.models.evaluation import expected_calibration_error

    assert expected_calibration_error(y[8000:], p) < 0.03
    assert np.corrcoef(p, true_p[8000:])[0, 1] > 0.95


# ------------------------------------------------------------- registry


@pytest.fixture(scope="module")
def saved(training, tmp_path_factory):
    X, y = training
    model = rf.RenewalModel(random_state=0).fit(X, y)
    folder = rf.save_model(
        model,
        tmp_path_factory.mktemp("m") / "renewal",
        metrics={"auc": 0.8},
        training_fingerprint="abc",
        as_of="2026-10-31",
    )
    return model, folder, X


def test_save_and_load_round_trip(saved):
    model, folder, X = saved
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "renewal_model" and manifest["training_data_fingerprint"] == "abc"
    assert [f["name"] for f in manifest["features"]] == list(X.columns)
    assert set(manifest["packages"]) >= {"scikit-learn", "numpy", "pandas", "python"}
    assert os.readlink(folder.parent / "latest") == folder.name
    loaded = rf.load_model(folder.parent)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.model_version_ == folder.name


def _copy(folder, tmp_path):
    dest = tmp_path / folder.name
    shutil.copytree(folder, dest)
    return dest


def test_tampered_file_is_refused(saved, tmp_path):
    _, folder, _ = saved
    copy = _copy(folder, tmp_path)
    data = bytearray((copy / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.skops").write_bytes(bytes(data))
    with pytest.raises(ModelRefused, match="modified since it was saved"):
        rf.load_model(copy)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('RF_SENTINEL', '/tmp/rf-sentinel')}",))


def test_booby_trapped_pickle_never_runs(saved, tmp_path, monkeypatch):
    _, folder, _ = saved
    copy = _copy(folder, tmp_path)
    sentinel = tmp_path / "pwned"
    monkeypatch.setenv("RF_SENTINEL", str(sentinel))
    evil = pickle.dumps(_Payload())
    (copy / "model.skops").write_bytes(evil)
    # even with a manifest that vouches for the file, it is not a skops archive
    manifest = json.loads((copy / "manifest.json").read_text())
    import hashlib

    manifest["files"]["model.skops"] = hashlib.sha256(evil).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelRefused, match="not a skops model file"):
        rf.load_model(copy)
    assert not sentinel.exists()


def test_skops_file_with_a_foreign_type_is_refused(saved, tmp_path):
    import hashlib

    import skops.io as sio

    _, folder, _ = saved
    copy = _copy(folder, tmp_path)
    data = sio.dumps({"model": os.system})  # a reference to os.system
    (copy / "model.skops").write_bytes(data)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["model.skops"] = hashlib.sha256(data).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelRefused, match="not allowed"):
        rf.load_model(copy)


def test_foreign_or_incompatible_manifests_are_refused(saved, tmp_path):
    _, folder, _ = saved
    copy = _copy(folder, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["packages"]["scikit-learn"] = "0.24.2"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelRefused, match="Retrain"):
        rf.load_model(copy)
    (copy / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ModelRefused, match="format_version"):
        rf.load_model(copy)
    (copy / "extra.pkl").write_bytes(b"x")
    (copy / "manifest.json").write_text(
        json.dumps({**manifest, "packages": json.loads((folder / "manifest.json").read_text())["packages"]})
    )
    with pytest.raises(ModelRefused, match="unexpected files"):
        rf.load_model(copy)
    with pytest.raises(ModelRefused, match="no saved model"):
        rf.load_model(tmp_path / "nothing-here")


def test_a_model_saved_before_the_ensemble_parameter_loads_as_the_fold_average(training, tmp_path):
    import hashlib

    import skops.io as sio
    from sklearn.base import clone

    X, y = training
    model = rf.RenewalModel(random_state=0, max_iter=20, cv=2, ensemble=True, calibration="isotonic").fit(X, y)
    folder = rf.save_model(model, tmp_path / "renewal")
    # The file as a release without the parameter wrote it: the same fitted model, no ``ensemble``.
    del model.ensemble
    data = sio.dumps(model)
    (folder / "model.skops").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.skops"] = hashlib.sha256(data).hexdigest()
    del manifest["hyperparameters"]["ensemble"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    loaded = rf.load_model(folder)
    assert loaded.get_params()["ensemble"] is True and clone(loaded).ensemble is True
    assert len(loaded.estimator_.calibrated_classifiers_) == 2
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    pd.testing.assert_frame_equal(loaded.reasons(X.head(20)), model.reasons(X.head(20)))


def test_allow_list_matches_what_models_need(training, tmp_path):
    import skops.io as sio

    X, y = training
    needed = set()
    earlier_default = {"ensemble": True, "calibration": "isotonic"}  # models saved before must load
    for kw in ({}, earlier_default, {"calibration": "isotonic"}, {"estimator": "logistic"}, {"calibration": None}):
        data = sio.dumps(rf.RenewalModel(random_state=0, max_iter=20, **kw).fit(X, y))
        needed |= set(sio.get_untrusted_types(data=data))
    assert needed == set(ALLOWED_TYPES)


# ------------------------------------------------------------- scoring


def test_score_contracts_columns_and_identities(demo_book, saved):
    _model, folder, _ = saved
    scores = rf.score_contracts(demo_book, model=folder.parent, as_of="2026-06-30")
    from renewforecast.analyses.scoring import SCORE_COLUMNS

    assert list(scores.columns) == SCORE_COLUMNS
    assert len(scores) == len(rf.renewal_features(demo_book, "2026-06-30"))
    assert np.allclose(scores["expected_renewal_arr"] + scores["arr_at_risk"], scores["arr"])
    assert np.allclose(scores["arr_at_risk"], (1 - scores["renewal_probability"]) * scores["arr"])
    bands = scores.groupby("risk_band")["renewal_probability"].agg(["min", "max"])
    expected = {"low": (0.8, 1.0), "medium": (0.6, 0.8), "high": (0.0, 0.6)}
    for band, (lo, hi) in expected.items():
        if band in bands.index:
            assert bands.loc[band, "min"] >= lo and bands.loc[band, "max"] < hi + 1e-12
    assert (scores["model_version"] == folder.name).all()
    assert scores["reason_1"].str.endswith("the renewal chance").all()


def test_score_contracts_from_a_feature_frame_checks_columns(demo_book, saved):
    model, _, X = saved
    features = rf.renewal_features(demo_book, "2026-06-30")
    direct = rf.score_contracts(features, model=model)
    assert np.allclose(direct["renewal_probability"], model.predict_proba(features[X.columns])[:, 1])
    from renewforecast.analyses.scoring import ScoringInputError

    with pytest.raises(ScoringInputError, match="seat_utilization"):
        rf.score_contracts(features.drop(columns=["seat_utilization"]), model=model)


def test_crm_upsert_is_formula_safe(tmp_path):
    scores = pd.DataFrame(
        {
            "contract_id": ["800A", '=HYPERLINK("x")'],
            "renewal_probability": [0.5, 0.25],
            "risk_band": ["high", "+cmd"],
            "arr_at_risk": [-5.0, 10.0],
            "reason_1": ["@SUM(1)", "normal"],
            "reason_2": ["-2 seats", None],
            "reason_3": ["\tx", "ok"],
            "model_version": ["v1", "v1"],
            "scored_at": pd.to_datetime(["2026-11-01T10:00:00Z"] * 2),
        }
    )
    path = rf.write_crm_upsert(scores, tmp_path / "up.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back.columns)[:3] == ["Id", "Renewal_Probability__c", "Renewal_Risk_Band__c"]
    text_cols = ["Id", "Renewal_Risk_Band__c", "Renewal_Reason_1__c", "Renewal_Reason_2__c", "Renewal_Reason_3__c"]
    for col in text_cols:
        assert not back[col].str.match(r"^[=+\-@\t\r\n]").any(), col
    assert back.loc[1, "Id"] == '\'=HYPERLINK("x")'
    assert back.loc[0, "Renewal_Probability__c"] == "50.0" and back.loc[0, "ARR_At_Risk__c"] == "-5.0"
