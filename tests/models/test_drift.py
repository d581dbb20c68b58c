"""Drift: the PSI and KS figures, the training profile saved with the model, and broken inputs caught.

Numbers are checked against hand-worked sums, identities that must hold
(PSI is the Jeffreys divergence; a permutation of rows changes no
distribution), Yurdakul's sampling distribution of the PSI and scipy's own
two-sample KS test. The demo org is split by account: a model trained on one
half, the other half is a fresh sample of the same population.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import renewforecast as rf
from renewforecast.models.drift import (
    PSI_FLOOR,
    SCORE_EDGES,
    SCORE_FEATURE,
    compare_profiles,
    profile_from_json,
    profile_to_json,
)
from renewforecast.models.registry import ALLOWED_TYPES, KEY_ENV, ModelRefused

KEY = "k3y-for-drift-tests-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


# ------------------------------------------------------------- the PSI itself


def test_psi_of_a_hand_worked_example():
    # Four equal bins against 10/20/30/40 %: each term (a - e) ln(a / e), summed by hand.
    terms = [
        (0.10 - 0.25) * math.log(0.10 / 0.25),  # 0.15 x 0.916291 = 0.137444
        (0.20 - 0.25) * math.log(0.20 / 0.25),  # 0.05 x 0.223144 = 0.011157
        (0.30 - 0.25) * math.log(0.30 / 0.25),  # 0.05 x 0.182322 = 0.009116
        (0.40 - 0.25) * math.log(0.40 / 0.25),  # 0.15 x 0.470004 = 0.070501
    ]
    assert sum(terms) == pytest.approx(0.228218, abs=1e-6)
    assert rf.population_stability_index([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(sum(terms), rel=1e-12)
    # Counts are divided by their own totals: 250 of 1,000 and 20 of 200 are the same shares.
    assert rf.population_stability_index([250] * 4, [20, 40, 60, 80]) == pytest.approx(sum(terms), rel=1e-12)


def test_an_empty_bin_counts_at_the_floor():
    # The third bin is empty on the expected side: it counts as 0.0001.
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - PSI_FLOOR) * math.log(0.1 / PSI_FLOOR)
    assert expected == pytest.approx(0.712399, abs=1e-6)
    assert rf.population_stability_index([5, 5, 0], [5, 4, 1]) == pytest.approx(expected, rel=1e-12)


def test_psi_is_the_jeffreys_divergence():
    # KL(a || e) + KL(e || a), each from scipy, on shares with no empty bin.
    e = np.array([0.05, 0.15, 0.30, 0.30, 0.15, 0.05])
    a = np.array([0.10, 0.20, 0.25, 0.20, 0.15, 0.10])
    jeffreys = stats.entropy(a, e) + stats.entropy(e, a)
    assert rf.population_stability_index(e, a) == pytest.approx(jeffreys, rel=1e-12)


def test_psi_of_two_samples_of_one_population_follows_yurdakul():
    # Yurdakul (2018): with nothing changed, PSI / (1/n + 1/m) ~ chi-square(bins - 1): mean
    # (bins - 1)(1/n + 1/m), and above DriftThresholds.chance() one time in a hundred.
    rng = np.random.default_rng(7)
    bins, n, m, reps = 10, 2000, 500, 2000
    p = rng.dirichlet(np.full(bins, 5.0))
    psi = np.array([rf.population_stability_index(rng.multinomial(n, p), rng.multinomial(m, p)) for _ in range(reps)])
    mean = (bins - 1) * (1 / n + 1 / m)
    assert psi.mean() == pytest.approx(mean, rel=0.05)
    over = (psi > rf.DriftThresholds().chance(bins, n, m)).mean()
    assert 0.003 <= over <= 0.02  # 1 % expected; 2,000 draws put 99 % of outcomes in this range


def test_psi_refuses_what_is_not_a_distribution():
    with pytest.raises(ValueError, match="same bins"):
        rf.population_stability_index([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="negative or non-finite"):
        rf.population_stability_index([1, -1], [1, 1])
    with pytest.raises(ValueError, match="empty"):
        rf.population_stability_index([0, 0], [1, 1])


shares = st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=12).filter(lambda v: sum(v) > 0)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_psi_is_positive_symmetric_and_zero_only_on_equal_shares(data):
    e = data.draw(shares)
    a = data.draw(st.lists(st.integers(0, 10_000), min_size=len(e), max_size=len(e)).filter(lambda v: sum(v) > 0))
    psi = rf.population_stability_index(e, a)
    assert psi >= 0.0
    # As defined, (a - e) ln(a / e) is the same term for either side: exactly symmetric.
    assert rf.population_stability_index(a, e) == psi
    assert rf.population_stability_index(e, e) == 0.0
    k = data.draw(st.integers(2, 50))
    assert rf.population_stability_index([k * v for v in e], a) == pytest.approx(psi, rel=1e-9, abs=1e-12)
    se, sa = np.maximum(np.array(e) / sum(e), PSI_FLOOR), np.maximum(np.array(a) / sum(a), PSI_FLOOR)
    if psi == 0.0:
        np.testing.assert_allclose(se, sa, rtol=1e-12)


# ------------------------------------------------------------- profiles


def test_deciles_bins_categories_and_missing_values():
    X = pd.DataFrame(
        {
            "arr": [float(v) for v in range(1, 11)] + [None],
            "segment": ["SMB"] * 6 + ["Enterprise"] * 3 + [None, "Mid-Market"],
        }
    )
    profile = rf.feature_profile(X)
    arr = profile[profile["feature"] == "arr"]
    # The deciles of 1..10 (smallest value with at least 10 %, 20 %, ... at or below it) are 1..9:
    # right-closed bins hold one value each.
    assert arr["upper"].tolist()[:-2] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert arr["count"].tolist() == [1] * 10 + [1] and arr["slot"].tolist()[-1] == "missing"
    seg = profile[profile["feature"] == "segment"]
    assert dict(zip(seg["label"], seg["count"], strict=True)) == {
        "SMB": 6,
        "Enterprise": 3,
        "Mid-Market": 1,
        "other": 0,
        "missing": 1,
    }
    assert np.allclose(profile.groupby("feature")["share"].sum(), 1.0)
    # A later run on the same bins: an unseen category is "other", a number beyond the deciles the last bin.
    later = rf.feature_profile(pd.DataFrame({"arr": [100.0], "segment": ["Government"]}), like=profile)
    assert later.loc[later["feature"] == "arr", "count"].tolist() == [0] * 9 + [1, 0]
    assert later.loc[(later["feature"] == "segment") & (later["label"] == "other"), "count"].item() == 1


def test_near_equal_deciles_are_one_edge():
    # Tenure 120 days before the end of a first year is 8.016 or 8.049 months by the calendar:
    # the same thing, so no bin may split them.
    tenure = [8.016] * 40 + [8.049] * 20 + [20.008] * 20 + [20.041] * 10 + [32.03] * 10
    profile = rf.feature_profile(pd.DataFrame({"tenure_months": tenure}))
    assert profile.loc[profile["slot"] == "interval", "upper"].tolist()[:-1] == [8.049, 20.041]
    other_year = rf.feature_profile(
        pd.DataFrame({"tenure_months": [8.016] * 60 + [20.008] * 30 + [32.03] * 10}), like=profile
    )
    assert other_year["count"].tolist() == profile["count"].tolist()


def test_a_profile_survives_parquet_and_json(tmp_path):
    X = pd.DataFrame({"nps": [10.0, None, 30.0, 55.0], "region": ["EMEA", "AMER", None, "EMEA"]})
    profile = rf.feature_profile(X, scores=[0.05, 0.5, 0.95, 1.0])
    profile.to_parquet(tmp_path / "profile.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "profile.parquet"), profile)
    data = json.loads(json.dumps(profile_to_json(profile), allow_nan=False))
    pd.testing.assert_frame_equal(profile_from_json(data), profile)
    scores = profile[profile["feature"] == SCORE_FEATURE]
    assert len(scores) == len(SCORE_EDGES) + 2 and scores["count"].sum() == 4


def test_binned_ks_is_scipys_ks_of_the_binned_scores():
    rng = np.random.default_rng(3)
    before, after = rng.beta(5, 2, 800), rng.beta(4, 2, 300)
    X0, X1 = pd.DataFrame({"x": np.zeros(800)}), pd.DataFrame({"x": np.zeros(300)})
    p0 = rf.feature_profile(X0, scores=before)
    got = compare_profiles(p0, rf.feature_profile(X1, like=p0, scores=after)).set_index("feature").loc[SCORE_FEATURE]
    # Every score moved up to its bin's upper edge (width 0.01): the distance the profile can see.
    up = lambda v: np.ceil(np.round(v * 100, 9)) / 100  # noqa: E731
    ref = stats.ks_2samp(up(before), up(after), method="asymp")
    assert got["ks"] == pytest.approx(ref.statistic, abs=1e-12)
    assert got["ks_pvalue"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert abs(got["ks"] - stats.ks_2samp(before, after).statistic) <= 0.02


# ------------------------------------------------------------- the demo org, split by account


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """A model trained on half the accounts of a demo org, and the other half's decisions."""
    org = rf.write_demo_org(tmp_path_factory.mktemp("drift") / "org", accounts=2000, seed=21)
    book = rf.load_book(org.path)
    X, y = rf.renewal_training_set(book)
    account = X.index.map(book.contracts.drop_duplicates("contract_id").set_index("contract_id")["account_id"])
    accounts = pd.Index(account.unique())
    first = set(np.random.default_rng(0).permutation(accounts)[: len(accounts) // 2])
    train = np.array([a in first for a in account])
    model = rf.RenewalModel(random_state=0, max_iter=60).fit(X[train], y[train])
    return book, model, X[~train]


def _row(report: rf.DriftReport, feature: str, against: str = "training") -> pd.Series:
    table = report.table
    return table[(table["feature"] == feature) & (table["against"] == against)].iloc[0]


def test_the_profile_is_recorded_at_fit(halves):
    _, model, _ = halves
    profile = model.training_profile_
    assert profile["score_source"] == "out_of_fold" and profile["rows"] > 500
    names = [f["name"] for f in profile["features"]]
    assert names == [*model.feature_names_in_, SCORE_FEATURE]
    for entry in profile["features"]:
        assert sum(entry["counts"]) + entry.get("other", 0) + entry["missing"] == profile["rows"]
    kinds = {f["name"]: f["kind"] for f in profile["features"]}
    assert {n for n, k in kinds.items() if k == "categorical"} == set(model.categorical_features_)
    assert len(json.dumps(profile)) < 20_000  # small: it travels with every saved model


def test_a_fresh_sample_of_the_same_org_stays_below_watch(halves):
    _, model, fresh = halves
    report = rf.drift_report(model, fresh)
    train = report.table[report.table["against"] == "training"]
    assert len(train) == len(model.feature_names_in_) + 1
    assert (train["level"] == "ok").all(), train.head()
    assert train["psi"].max() < 0.10
    assert not report.retrain and report.warnings == []
    assert report.recommendation.startswith("No retraining needed")


@pytest.mark.parametrize(
    ("case", "flagged"),
    [
        ("arr scaled x10", {"arr"}),
        ("a segment renamed", {"segment"}),
        ("two columns swapped", {"active_users", "support_tickets"}),
        ("every feature shuffled between contracts", {SCORE_FEATURE}),
    ],
)
def test_a_broken_input_crosses_the_alert_threshold_on_the_right_feature(halves, case, flagged):
    _, model, fresh = halves
    broken = fresh.copy()
    if case == "arr scaled x10":
        broken["arr"] = fresh["arr"] * 10
    elif case == "a segment renamed":
        top = fresh["segment"].value_counts().index[0]
        broken["segment"] = fresh["segment"].replace({top: f"{top} (renamed)"})
    elif case == "two columns swapped":
        broken["active_users"], broken["support_tickets"] = fresh["support_tickets"], fresh["active_users"]
    else:
        for i, col in enumerate(broken.columns):
            broken[col] = fresh[col].sample(frac=1, random_state=i).to_numpy()
    report = rf.drift_report(model, broken)
    train = report.table[report.table["against"] == "training"]
    assert set(train.loc[train["level"] == "alert", "feature"]) == flagged
    assert report.retrain and report.recommendation.startswith("Retrain the model")
    for feature in flagged:
        label = "the renewal probabilities" if feature == SCORE_FEATURE else feature
        assert any(w.startswith(f"{label} shifted against training: PSI ") for w in report.warnings)
        assert label in report.recommendation
    if case.startswith("every feature shuffled"):
        # A shuffle moves no single distribution: each feature's PSI is the fresh sample's, exactly.
        clean = rf.drift_report(model, fresh).table.set_index(["against", "feature"])
        mine = report.table.set_index(["against", "feature"])
        features = [(a, f) for a, f in clean.index if f != SCORE_FEATURE]
        assert mine.loc[features, "psi"].equals(clean.loc[features, "psi"])


def test_the_previous_run_is_binned_on_its_own_edges(halves, tmp_path):
    _, model, fresh = halves
    first = rf.drift_report(model, fresh)
    first.profile.to_parquet(tmp_path / "feature_profile.parquet")
    previous = pd.read_parquet(tmp_path / "feature_profile.parquet")
    same = rf.drift_report(model, fresh, previous=previous)
    prev_rows = same.table[same.table["against"] == "previous_run"]
    assert len(prev_rows) == len(model.feature_names_in_) + 1
    assert (prev_rows["psi"] == 0.0).all() and (prev_rows["level"] == "ok").all()
    broken = rf.drift_report(model, fresh.assign(nps=fresh["nps"] / 10), previous=previous)
    assert _row(broken, "nps", "previous_run")["level"] == "alert"
    assert "check the data first" in broken.recommendation
    assert "nps shifted since the previous run: PSI " in " | ".join(broken.warnings)


def test_small_samples_are_judged_against_chance(halves):
    _, model, fresh = halves
    few = rf.drift_report(model, fresh.head(40))
    # By hand for one feature: the 99 % point of chi-square(bins used - 1) x (1/n + 1/m).
    seg = _row(few, "segment")
    trained = next(f for f in model.training_profile_["features"] if f["name"] == "segment")
    now = few.profile[few.profile["feature"] == "segment"]["count"].to_numpy()
    before = np.array([*trained["counts"], trained["other"], trained["missing"]])
    used = int(((before > 0) | (now > 0)).sum())
    assert seg["psi_chance"] == pytest.approx(stats.chi2.ppf(0.99, used - 1) * (1 / 40 + 1 / before.sum()))
    measured = few.table[few.table["level"] != "not available"]
    assert (measured.loc[measured["psi"] < measured["psi_chance"], "level"] == "ok").all()
    strict = rf.drift_report(model, fresh.head(40), thresholds=rf.DriftThresholds(noise=None))
    assert (strict.table["psi_chance"] == 0).all()
    assert strict.table["level"].tolist() == [rf.DriftThresholds().level(v) for v in strict.table["psi"]]
    assert (strict.table["level"] != "ok").sum() >= (few.table["level"] != "ok").sum()


def test_no_rows_is_reported_not_raised(halves):
    _, model, fresh = halves
    report = rf.drift_report(model, fresh.iloc[:0])
    assert (report.table["level"] == "not available").all()
    assert report.recommendation.startswith("Drift against the training data could not be measured")
    empty = rf.drift_report(model, pd.DataFrame(index=pd.Index([], name="contract_id")))
    assert not empty.retrain and "not compared" in str(empty)


def test_recent_decisions_are_point_in_time(halves):
    book, model, _ = halves
    day = "2026-06-30"
    full = rf.recent_decision_features(book, day)
    cut = rf.recent_decision_features(book.as_of(day), day)
    pd.testing.assert_frame_equal(full, cut)
    assert len(full) > 100
    # Every row is featurised on its prediction date, inside the year to the day.
    ends = full.index.map(book.contracts.drop_duplicates("contract_id").set_index("contract_id")["end_date"])
    fd = ends - pd.Timedelta(days=120)
    assert (fd <= pd.Timestamp(day)).all() and (fd > pd.Timestamp(day) - pd.Timedelta(days=365)).all()
    pd.testing.assert_frame_equal(rf.drift_report(model, full).table, rf.drift_report(model, cut).table)


# ------------------------------------------------------------- saved with the model


def test_the_profile_round_trips_through_the_registry_as_json(halves, tmp_path):
    import skops.io as sio

    _, model, fresh = halves
    folder = rf.save_model(model, tmp_path / "renewal")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert set(manifest["files"]) == {"model.skops", "profile.json"}
    assert json.loads((folder / "profile.json").read_text()) == model.training_profile_
    # The skops file holds no copy: the JSON file is the one the hashes and signature cover.
    assert not hasattr(
        sio.loads((folder / "model.skops").read_bytes(), trusted=list(ALLOWED_TYPES)), "training_profile_"
    )
    loaded = rf.load_model(folder)
    assert loaded.training_profile_ == model.training_profile_
    pd.testing.assert_frame_equal(rf.drift_report(loaded, fresh).table, rf.drift_report(model, fresh).table)


def test_a_signed_profile_verifies_and_a_tampered_one_is_refused(halves, tmp_path, monkeypatch):
    _, model, _ = halves
    monkeypatch.setenv(KEY_ENV, KEY)
    folder = rf.save_model(model, tmp_path / "signed")
    assert rf.load_model(folder).training_profile_ == model.training_profile_
    profile = json.loads((folder / "profile.json").read_text())
    profile["features"][0]["counts"][0] += 1  # one row moved into a training bin
    profile["features"][0]["missing"] -= 1
    data = json.dumps(profile).encode()
    # Changed alone, the hash catches it; with its hash rewritten too, the signature does.
    edited = tmp_path / "edited" / folder.name
    shutil.copytree(folder, edited)
    (edited / "profile.json").write_bytes(data)
    with pytest.raises(ModelRefused, match=r"profile\.json has been modified since it was saved"):
        rf.load_model(edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["files"]["profile.json"] = hashlib.sha256(data).hexdigest()
    (edited / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelRefused, match="signature does not match"):
        rf.load_model(edited)


def test_an_inconsistent_profile_is_refused_even_unsigned(halves, tmp_path):
    _, model, _ = halves
    folder = rf.save_model(model, tmp_path / "unsigned")
    for edit, rule in (
        (lambda p: p["features"][0]["counts"].append(3), "counts"),
        (lambda p: p.update(format=9), "field 'profile.format' must be one of [1]"),
        (lambda p: p["features"].pop(0), "its features are not the model's"),
    ):
        copy = tmp_path / f"copy-{rule[:6]}" / folder.name
        shutil.copytree(folder, copy)
        profile = json.loads((folder / "profile.json").read_text())
        edit(profile)
        data = json.dumps(profile).encode()
        (copy / "profile.json").write_bytes(data)
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["files"]["profile.json"] = hashlib.sha256(data).hexdigest()
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelRefused, match="is not this model's training profile") as caught:
            rf.load_model(copy)
        assert rule in str(caught.value)


def test_a_model_without_a_profile_loads_and_says_drift_is_not_available(halves, tmp_path):
    import skops.io as sio

    _, _, fresh = halves
    # As an earlier renewforecast saved it: format 1, no profile, no ``profile`` parameter.
    old = rf.RenewalModel(random_state=0, max_iter=20, cv=2, profile=False).fit(fresh, np.arange(len(fresh)) % 2)
    folder = rf.save_model(old, tmp_path / "old")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and set(manifest["files"]) == {"model.skops"}
    del old.profile, old.training_profile_
    data = sio.dumps(old)
    (folder / "model.skops").write_bytes(data)
    manifest["files"]["model.skops"] = hashlib.sha256(data).hexdigest()
    del manifest["hyperparameters"]["profile"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    loaded = rf.load_model(folder)
    assert loaded.get_params()["profile"] is False and getattr(loaded, "training_profile_", None) is None
    report = rf.drift_report(loaded, fresh)
    assert (report.table["level"] == "not available").all() and not report.retrain
    assert "not available" in report.recommendation and "retrain" in report.recommendation
    assert len(report.profile) > 0  # this run's own profile, for the next run to compare with
