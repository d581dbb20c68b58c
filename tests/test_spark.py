"""renewforecast.spark on a local Spark session gives what the single-machine engines give.

The reference is the single-machine function on the same Book: probabilities
bit for bit, MRR and movements to the cent (exactly, where a row comes whole
from one slice of accounts). The Book is a generated demo org that holds every
CPQ case the ledger handles (checked first, so the comparison cannot lose them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import renewforecast as rf
from renewforecast import spark as rs
from renewforecast.analyses.scoring import ScoringInputError
from renewforecast.models.registry import ModelRefused

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def cpq_book(tmp_path_factory):
    org = rf.write_demo_org(tmp_path_factory.mktemp("spark") / "org", accounts=240, seed=7)
    book = rf.load_book(org.path)
    subs, con = book.subscriptions, book.contracts
    # Every CPQ case is in it: amendments up and down, terminations, MDQ segments,
    # evergreen contracts, renewals, hierarchies, other currencies and stage history.
    deltas = subs[subs["revised_subscription_id"].notna()]
    assert (deltas["quantity"] > 0).any() and (deltas["quantity"] < 0).any()
    assert subs["terminated_date"].notna().any()
    assert subs["segment_index"].notna().any()
    assert con["evergreen"].any() and con["renewed_contract_id"].notna().any()
    assert book.accounts["parent_account_id"].notna().any()
    assert len(book.fx_rates) and subs["currency"].notna().any()
    assert len(book.opportunity_history) and len(book.signals)
    return book


@pytest.fixture(scope="module")
def spark_book(cpq_book, spark):
    return rs.SparkBook.from_book(cpq_book, spark)


def _collected(sdf, keys):
    frame = sdf.toPandas()
    for col in frame.columns:
        if col in ("month", "end_date"):
            frame[col] = pd.to_datetime(frame[col])
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _single(frame, keys):
    frame = frame.copy()
    for k in keys:
        if k != "month":
            frame[k] = frame[k].astype(object).where(frame[k].notna(), None)
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _same_keys(a, b, keys):
    for k in keys:
        left = a[k].to_numpy(dtype=object) if k != "month" else a[k].to_numpy()
        right = b[k].to_numpy(dtype=object) if k != "month" else b[k].to_numpy()
        assert len(left) == len(right)
        assert all((x == y) or (x is None and y is None) for x, y in zip(left, right, strict=True)), k


def test_a_book_goes_to_spark_and_parquet_and_back_unchanged(cpq_book, spark_book, spark, tmp_path):
    assert spark_book.to_book().fingerprint == cpq_book.fingerprint
    folder = rs.write_book_parquet(cpq_book, tmp_path / "book")
    read = rs.SparkBook.read(spark, folder)
    assert read.currency == cpq_book.currency
    assert read.to_book().fingerprint == cpq_book.fingerprint
    with pytest.raises(FileExistsError):
        rs.write_book_parquet(cpq_book, folder)


@pytest.mark.parametrize(
    ("by", "options"),
    [
        (("account_id",), {}),
        (("contract_id", "product_id"), {"churn_at": "cancellation"}),
        (("account_id",), {"customer": "ultimate_parent", "fx": "spot"}),
        (("segment",), {"fx": "constant", "fx_date": "2025-06-30"}),
        ((), {}),
    ],
)
def test_mrr_table_on_spark_equals_the_single_machine_table(cpq_book, spark_book, by, options):
    end = cpq_book.data_end + pd.DateOffset(months=6)
    keys = ["month", *by]
    ours = _collected(rs.mrr_table(spark_book, end=end, by=by, partitions=3, **options), keys)
    ref = _single(rf.mrr_table(cpq_book, end=end, by=by, **options), keys)
    assert len(ours) == len(ref) > 0
    _same_keys(ours, ref, keys)
    if "account_id" in by or "contract_id" in by:
        # Each group comes whole from one slice: the very same floats.
        assert np.array_equal(ours["mrr"].to_numpy(), ref["mrr"].to_numpy())
    else:
        assert np.abs(ours["mrr"].to_numpy() - ref["mrr"].to_numpy()).max() < 0.005


@pytest.mark.parametrize(
    ("by", "options"),
    [
        (None, {"reactivation_months": 3, "same_month": "count"}),
        (None, {"churn_at": "cancellation", "customer": "ultimate_parent", "fx": "spot"}),
        ("segment", {}),
    ],
)
def test_mrr_movements_on_spark_equal_the_single_machine_bridge(cpq_book, spark_book, by, options):
    end = cpq_book.data_end
    keys = ["month", "account_id"] if by is None else ["month", by]
    ours = _collected(rs.mrr_movements(spark_book, end=end, by=by, partitions=3, **options), keys)
    ref = _single(rf.mrr_movements(cpq_book, end=end, by=by, **options), keys)
    assert len(ours) == len(ref) > 0
    assert list(ours.columns) == list(ref.columns)
    _same_keys(ours, ref, keys)
    for col in ref.columns:
        if col in keys:
            continue
        if by is None:
            assert np.array_equal(ours[col].to_numpy(), ref[col].to_numpy()), col
        else:
            assert np.abs(ours[col].to_numpy(dtype=float) - ref[col].to_numpy(dtype=float)).max() < 0.005, col
    # The bridge's identity holds on what Spark returns.
    bridge = ours["start_mrr"] + ours["fx_effect"] + ours[["new", "expansion", "reactivation"]].sum(axis=1)
    bridge -= ours["contraction"] + ours["churn"]
    assert np.abs(bridge - ours["end_mrr"]).max() < 0.01


def _same_features(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert sorted(ours.index) == sorted(ref.index)
    ours = ours.loc[ref.index]
    for col in ref.columns:
        x, y = ref[col], ours[col]
        if x.dtype == object:
            text = [None if v is None or v is pd.NA else str(v) for v in x]
            assert text == [None if v is None else v for v in y], col
        else:
            assert np.array_equal(x.to_numpy(float), y.to_numpy(float), equal_nan=True), col


@pytest.fixture(scope="module")
def scoring_date(cpq_book):
    return cpq_book.data_end - pd.Timedelta(days=150)


@pytest.fixture(scope="module")
def spark_features_frame(spark_book, scoring_date):
    frame = rs.renewal_features(spark_book, scoring_date, partitions=3).cache()
    yield frame
    frame.unpersist()


@pytest.fixture(scope="module")
def spark_features(spark_features_frame):
    return spark_features_frame.toPandas().set_index("contract_id")


def test_renewal_features_on_spark_equal_the_single_machine_features(cpq_book, spark_features, scoring_date):
    ref = rf.renewal_features(cpq_book, scoring_date)
    assert len(ref) > 50
    # price against peers pools every account's prices: it is there, and equal.
    assert ref["price_vs_peers"].notna().sum() > 0
    _same_features(spark_features[list(ref.columns)], ref)
    con = cpq_book.contracts.set_index("contract_id")
    assert spark_features.loc[ref.index, "account_id"].tolist() == ref.index.map(con["account_id"]).astype(str).tolist()


def test_renewal_features_on_spark_use_only_what_was_known(cpq_book, spark, spark_features, scoring_date):
    cut = rs.SparkBook.from_book(cpq_book.as_of(scoring_date), spark)
    again = rs.renewal_features(cut, scoring_date, partitions=2).toPandas().set_index("contract_id")
    _same_features(
        again.drop(columns=["account_id", "end_date"]), spark_features.drop(columns=["account_id", "end_date"])
    )


@pytest.fixture(scope="module")
def saved_model(cpq_book, tmp_path_factory):
    X, y = rf.renewal_training_set(cpq_book)
    model = rf.RenewalModel(random_state=0).fit(X, y)
    return rf.save_model(model, tmp_path_factory.mktemp("model") / "renewal").parent


def test_scores_on_spark_are_bit_for_bit_the_single_machine_scores(
    cpq_book, spark_features_frame, saved_model, scoring_date
):
    stamp = pd.Timestamp("2026-11-30 06:00", tz="UTC")
    ours = rs.score_contracts(spark_features_frame, saved_model, scored_at=stamp).toPandas().set_index("contract_id")
    ref = rf.score_contracts(cpq_book, saved_model, as_of=scoring_date, scored_at=stamp).set_index("contract_id")
    ours = ours.loc[ref.index]
    assert np.array_equal(ours["renewal_probability"].to_numpy(), ref["renewal_probability"].to_numpy())
    assert np.array_equal(ours["arr_at_risk"].to_numpy(), ref["arr_at_risk"].to_numpy())
    for col in ("account_id", "risk_band", "reason_1", "reason_2", "reason_3", "model_version"):
        assert ours[col].tolist() == ref[col].astype(str).tolist(), col
    assert (pd.to_datetime(ours["end_date"]) == ref["end_date"]).all()
    assert (pd.to_datetime(ours["scored_at"], utc=True) == stamp).all()


def test_scoring_on_spark_refuses_before_any_job(spark, spark_features, saved_model, tmp_path):
    features = spark.createDataFrame(spark_features.reset_index()[["contract_id", "arr"]])
    with pytest.raises(ScoringInputError, match="lacks"):
        rs.score_contracts(features, saved_model)
    # A tampered model file is refused on the driver, as load_model refuses it.
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(saved_model, copy)
    skops = next(copy.rglob("model.skops"))
    skops.write_bytes(skops.read_bytes() + b"\0")
    with pytest.raises(ModelRefused, match="modified"):
        rs.score_contracts(features, copy)


def test_engines_on_spark_need_an_explicit_end(spark_book):
    with pytest.raises(ValueError, match="explicit end"):
        rs.mrr_table(spark_book)
    with pytest.raises(ValueError, match="explicit end"):
        rs.mrr_movements(spark_book)
