"""Saved model files under attack: malformed manifests, version drift, edited metrics, signatures, the CRM file.

Each case feeds a concrete manifest or environment and checks the outcome a
user sees: the exception class and its rule from the library, and from the
command line ``error: the model was refused: ...`` on stderr with exit code 3.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import warnings
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import renewforecast as rf
from renewforecast.cli import main
from renewforecast.models.registry import KEY_ENV, ModelKeyError, ModelRefused, ModelWarning

KEY = "k3y-for-tests-0123456789abcdef-not-a-real-secret"


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    # A key in the developer's environment must not change what these tests see.
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture(scope="module")
def sbg_folder(tmp_path_factory) -> Path:
    """An unsigned saved ShiftedBetaGeometric (a version folder)."""
    model = rf.ShiftedBetaGeometric().fit([1000, 631, 468, 382, 326])
    return rf.save_model(model, tmp_path_factory.mktemp("sbg") / "sbg", metrics={"auc": 0.8})


@pytest.fixture(scope="module")
def renewal(demo_book, tmp_path_factory):
    """A small fitted RenewalModel, its training frame, and an unsigned saved copy."""
    X, y = rf.renewal_training_set(demo_book)
    model = rf.RenewalModel(random_state=0, max_iter=30, cv=2).fit(X, y)
    folder = rf.save_model(model, tmp_path_factory.mktemp("renewal") / "renewal", metrics={"auc": 0.7})
    return model, X, folder


def _copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    dest = tmp_path / name / folder.name
    shutil.copytree(folder, dest)
    return dest


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _write(folder: Path, manifest) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _score(org: Path, model: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["score", str(org), "--model", str(model), "--out", str(out), *extra])


def _refused_by_cli(result, *fragments: str) -> None:
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: the model was refused: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one paragraph, no traceback
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def _canonical_hmac(manifest: dict, key: str) -> str:
    """HMAC-SHA256 over the manifest without its signature, as the guide specifies it."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


# ------------------------------------------------------------- 1. malformed manifests

MALFORMED = {
    "a list": (lambda m: [1, 2], "the manifest must be an object (rule 'type'), found a list"),
    "kind missing": (
        lambda m: {k: v for k, v in m.items() if k != "kind"},
        "the manifest lacks the required key 'kind' (rule 'required')",
    ),
    "version a number": (lambda m: {**m, "version": 5}, "field 'version' must be a string (rule 'type'), found 5"),
    "version a formula": (lambda m: {**m, "version": "=HYPERLINK(1)"}, "field 'version' must match"),
    "metrics a list": (lambda m: {**m, "metrics": [0.8]}, "field 'metrics' must be an object (rule 'type')"),
    "a metric an object": (
        lambda m: {**m, "metrics": {"auc": {"v": 1}}},
        "field 'metrics.auc' must be a number or a string or true or false or null (rule 'type')",
    ),
    "hash not hex": (
        lambda m: {**m, "files": {"params.json": "z" * 64}},
        "field 'files.params.json' must match ^[0-9a-f]{64}$ (rule 'pattern')",
    ),
    "no files": (lambda m: {**m, "files": {}}, "field 'files' must have at least 1 entry (rule 'minProperties')"),
    "packages a list": (lambda m: {**m, "packages": ["numpy"]}, "field 'packages' must be an object (rule 'type')"),
    "numpy a number": (
        lambda m: {**m, "packages": {**m["packages"], "numpy": 2.4}},
        "field 'packages.numpy' must be a string (rule 'type'), found 2.4",
    ),
    "scipy missing": (
        lambda m: {**m, "packages": {k: v for k, v in m["packages"].items() if k != "scipy"}},
        "field 'packages' lacks the required key 'scipy' (rule 'required')",
    ),
    "unknown kind": (lambda m: {**m, "kind": "pickle_model"}, "field 'kind' must be one of"),
    "format_version text": (
        lambda m: {**m, "format_version": "1"},
        "field 'format_version' must be an integer (rule 'type'), found \"1\"",
    ),
    "format_version true": (
        lambda m: {**m, "format_version": True},
        "field 'format_version' must be an integer (rule 'type'), found true",
    ),
    "an extra field": (
        lambda m: {**m, "loader": "pickle"},
        "field 'loader' is not part of a model manifest (rule 'additionalProperties')",
    ),
    "feature of no type": (
        lambda m: {**m, "features": [{"name": "x"}]},
        "field 'features[0]' lacks the required key 'type' (rule 'required')",
    ),
    "as_of not a date": (lambda m: {**m, "as_of": "yesterday"}, "field 'as_of' must match"),
    "odd signature": (
        lambda m: {**m, "signature": {"algorithm": "MD5", "digest": "0" * 64}},
        "field 'signature.algorithm' must be one of ['HMAC-SHA256'] (rule 'enum')",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_manifest_is_refused_naming_the_field_and_rule(case, sbg_folder, tmp_path):
    edit, rule = MALFORMED[case]
    copy = _copy(sbg_folder, tmp_path)
    _write(copy, edit(_manifest(sbg_folder)))
    with pytest.raises(ModelRefused) as caught:
        rf.load_model(copy)
    assert "is malformed: " in str(caught.value) and rule in str(caught.value)


@pytest.mark.parametrize(
    "case", ["a list", "kind missing", "version a number", "metrics a list", "hash not hex", "packages a list"]
)
def test_the_cli_refuses_a_malformed_manifest_with_exit_3(case, sbg_folder, demo_org, tmp_path):
    edit, rule = MALFORMED[case]
    copy = _copy(sbg_folder, tmp_path)
    _write(copy, edit(_manifest(sbg_folder)))
    out = tmp_path / "scores.csv"
    _refused_by_cli(_score(demo_org.path, copy, out, "--crm"), rule)
    assert not out.exists()


def test_a_manifest_that_is_not_json_is_refused(sbg_folder, demo_org, tmp_path):
    copy = _copy(sbg_folder, tmp_path)
    (copy / "manifest.json").write_text('{"format_version": 1, "kind": ', encoding="utf-8")
    with pytest.raises(ModelRefused, match="is not a readable manifest"):
        rf.load_model(copy)
    _refused_by_cli(_score(demo_org.path, copy, tmp_path / "s.csv"), "is not a readable manifest")


def test_damaged_parameters_under_a_rewritten_hash_are_refused_not_a_crash(sbg_folder, tmp_path):
    copy = _copy(sbg_folder, tmp_path)
    junk = b'{"alpha": "lots"}'
    (copy / "params.json").write_bytes(junk)
    _write(copy, {**_manifest(copy), "files": {"params.json": hashlib.sha256(junk).hexdigest()}})
    with pytest.raises(ModelRefused, match="does not hold ShiftedBetaGeometric parameters"):
        rf.load_model(copy)


def test_save_refuses_metrics_the_loader_would_refuse(tmp_path):
    model = rf.ShiftedBetaGeometric().fit([100, 70, 55])
    with pytest.raises(rf.RenewForecastError, match=r"cannot save the model: field 'metrics.curve' must be a number"):
        rf.save_model(model, tmp_path / "m", metrics={"curve": [0.1, 0.2]})
    assert not any((tmp_path / "m").iterdir())  # nothing half-saved


# ------------------------------------------------------------- 2. the version rule


@pytest.mark.parametrize(("found", "advice"), [(None, "Retrain"), (0, "Retrain"), (3, "upgrade renewforecast")])
def test_another_model_format_is_refused(found, advice, sbg_folder, tmp_path):
    copy = _copy(sbg_folder, tmp_path)
    manifest = _manifest(sbg_folder)
    if found is None:
        del manifest["format_version"]
        expected = "has no format_version"
    else:
        manifest["format_version"] = found
        expected = f"has model format_version {found}; this renewforecast reads format_version 1 and 2 only"
    _write(copy, manifest)
    with pytest.raises(ModelRefused) as caught:
        rf.load_model(copy)
    assert expected in str(caught.value) and advice in str(caught.value)


def test_every_package_that_moves_the_numbers_is_recorded(sbg_folder):
    packages = _manifest(sbg_folder)["packages"]
    for pkg in ("scikit-learn", "numpy", "scipy", "pandas", "lifelines", "skops", "renewforecast"):
        assert packages[pkg] == version(pkg), pkg


@pytest.mark.parametrize("pkg", ["numpy", "scikit-learn"])
def test_another_minor_version_of_numpy_or_scikit_learn_is_refused_for_every_kind(pkg, sbg_folder, demo_org, tmp_path):
    # A statistical model (plain JSON) falls under the same rule as a skops one.
    copy = _copy(sbg_folder, tmp_path)
    manifest = _manifest(sbg_folder)
    manifest["packages"][pkg] = "1.0.3"
    _write(copy, manifest)
    installed = version(pkg)
    with pytest.raises(ModelRefused) as caught:
        rf.load_model(copy)
    message = str(caught.value)
    assert f"saved with {pkg} 1.0.3; this environment has {pkg} {installed}" in message
    assert "Retrain the model here" in message and f"pip install {pkg}==1.0.3" in message
    _refused_by_cli(_score(demo_org.path, copy, tmp_path / "s.csv"), f"{pkg} 1.0.3", installed)


def test_a_patch_release_or_another_package_only_warns(sbg_folder, tmp_path):
    major, minor = version("scikit-learn").split(".")[:2]
    other_patch = f"{major}.{minor}.999"
    copy = _copy(sbg_folder, tmp_path)
    manifest = _manifest(sbg_folder)
    manifest["packages"].update({"scikit-learn": other_patch, "scipy": "0.1.0", "pandas": "0.2.0"})
    _write(copy, manifest)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = rf.load_model(copy)
    assert model.alpha_ > 0
    said = [str(w.message) for w in caught if issubclass(w.category, ModelWarning)]
    assert len(said) == 3, said
    for pkg, saved in (("scikit-learn", other_patch), ("scipy", "0.1.0"), ("pandas", "0.2.0")):
        assert any(f"saved with {pkg} {saved}; this environment has {pkg} {version(pkg)}" in s for s in said), pkg


def test_the_cli_prints_version_warnings_and_still_scores(renewal, demo_org, tmp_path):
    _, _, folder = renewal
    copy = _copy(folder, tmp_path)
    manifest = _manifest(folder)
    manifest["packages"]["scipy"] = "0.1.0"
    _write(copy, manifest)
    result = _score(demo_org.path, copy, tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert f"warning: {copy} was saved with scipy 0.1.0; this environment has scipy {version('scipy')}" in result.stderr


# ------------------------------------------------------------- 3. signatures


def test_a_signed_manifest_carries_the_hmac_of_its_canonical_json_and_round_trips(renewal, tmp_path, monkeypatch):
    model, X, _ = renewal
    monkeypatch.setenv(KEY_ENV, KEY)
    folder = rf.save_model(model, tmp_path / "signed", metrics={"auc": 0.7})
    manifest = _manifest(folder)
    assert manifest["signature"] == {"algorithm": "HMAC-SHA256", "digest": _canonical_hmac(manifest, KEY)}
    loaded = rf.load_model(folder.parent)
    pd.testing.assert_frame_equal(pd.DataFrame(loaded.predict_proba(X)), pd.DataFrame(model.predict_proba(X)))
    # Layout does not matter, content does: re-indented, keys reversed, still valid.
    (folder / "manifest.json").write_text(json.dumps(dict(reversed(manifest.items())), indent=4), encoding="utf-8")
    assert rf.load_model(folder).model_version_ == folder.name


def _signed_copy(sbg_folder: Path, tmp_path: Path, monkeypatch) -> Path:
    model = rf.load_model(sbg_folder)
    monkeypatch.setenv(KEY_ENV, KEY)
    return rf.save_model(model, tmp_path / "signed", metrics={"auc": 0.8})


def test_edited_metrics_in_a_signed_manifest_are_refused(sbg_folder, demo_org, tmp_path, monkeypatch):
    folder = _signed_copy(sbg_folder, tmp_path, monkeypatch)
    manifest = _manifest(folder)
    assert manifest["metrics"] == {"auc": 0.8}
    manifest["metrics"]["auc"] = 0.99
    _write(folder, manifest)
    with pytest.raises(ModelRefused, match="signature does not match") as caught:
        rf.load_model(folder)
    # The message must not hand out a valid signature for the edited manifest.
    assert _canonical_hmac(manifest, KEY) not in str(caught.value) and KEY not in str(caught.value)
    _refused_by_cli(_score(demo_org.path, folder, tmp_path / "s.csv"), "signature does not match")


def test_a_replaced_model_file_with_a_rewritten_hash_is_refused_when_signed(sbg_folder, tmp_path, monkeypatch):
    # The case hashes alone cannot catch: both the file and its hash were changed.
    folder = _signed_copy(sbg_folder, tmp_path, monkeypatch)
    params = json.loads((folder / "params.json").read_text())
    params["alpha"] *= 2
    data = json.dumps(params).encode()
    (folder / "params.json").write_bytes(data)
    _write(folder, {**_manifest(folder), "files": {"params.json": hashlib.sha256(data).hexdigest()}})
    with pytest.raises(ModelRefused, match="signature does not match"):
        rf.load_model(folder)
    monkeypatch.delenv(KEY_ENV)
    with pytest.warns(ModelWarning, match="signature was not checked"):
        assert rf.load_model(folder).alpha_ == pytest.approx(2 * rf.load_model(sbg_folder).alpha_)


def test_a_wrong_key_is_refused(sbg_folder, demo_org, tmp_path, monkeypatch):
    folder = _signed_copy(sbg_folder, tmp_path, monkeypatch)
    monkeypatch.setenv(KEY_ENV, KEY[::-1])
    with pytest.raises(ModelRefused, match="signature does not match"):
        rf.load_model(folder)
    _refused_by_cli(_score(demo_org.path, folder, tmp_path / "s.csv"), "signature does not match")


def test_an_unsigned_manifest_is_refused_while_the_key_is_set(sbg_folder, demo_org, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with pytest.raises(ModelRefused, match=f"is not signed, and {KEY_ENV} is set"):
        rf.load_model(sbg_folder)
    _refused_by_cli(_score(demo_org.path, sbg_folder, tmp_path / "s.csv"), "is not signed")


def test_a_signed_manifest_without_the_key_loads_and_says_it_was_not_checked(sbg_folder, tmp_path, monkeypatch):
    folder = _signed_copy(sbg_folder, tmp_path, monkeypatch)
    monkeypatch.delenv(KEY_ENV)
    with pytest.warns(ModelWarning, match=f"signed, but {KEY_ENV} is not set, so the signature was not checked"):
        assert rf.load_model(folder).model_version_ == folder.name


@pytest.mark.parametrize("bad", ["", "   ", "short"])
def test_an_empty_or_short_key_is_refused_not_ignored(bad, sbg_folder, demo_org, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, bad)
    with pytest.raises(ModelKeyError, match=f"{KEY_ENV} is set but"):
        rf.load_model(sbg_folder)
    with pytest.raises(ModelKeyError):
        rf.save_model(rf.ShiftedBetaGeometric().fit([100, 70, 55]), tmp_path / "m")
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
    _refused_by_cli(_score(demo_org.path, sbg_folder, tmp_path / "s.csv"), f"{KEY_ENV} is set but")
    result = CliRunner().invoke(main, ["train", str(demo_org.path), "--out", str(tmp_path / "trained")])
    assert result.exit_code == 3 and result.stderr.startswith("error: the model was not trained: "), result.output
    assert not (tmp_path / "trained").exists()


@pytest.mark.slow
def test_the_key_appears_in_no_file_or_output(demo_org, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    runner = CliRunner()
    models = tmp_path / "models" / "renewal"
    trained = runner.invoke(main, ["train", str(demo_org.path), "--out", str(models), "--estimator", "logistic"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "out" / "scores.csv"
    scored = _score(demo_org.path, models, out, "--crm")
    assert scored.exit_code == 0, scored.output
    version_dir = (models / "latest").resolve()
    assert _manifest(version_dir)["signature"]["digest"] == _canonical_hmac(_manifest(version_dir), KEY)
    edited = _copy(version_dir, tmp_path, "edited")
    _write(edited, {**_manifest(version_dir), "notes": "approved"})
    refused = _score(demo_org.path, edited, tmp_path / "out" / "x.csv")
    assert refused.exit_code == 3
    # The risk report loads the signed model in its notebook kernel, which inherits the key.
    report = runner.invoke(
        main,
        [
            "report",
            str(demo_org.path),
            "--out",
            str(tmp_path / "reports"),
            "--notebook",
            "02_renewal_risk",
            "--model",
            str(models),
        ],
    )
    assert report.exit_code == 0, report.output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {
        "manifest.json",
        "model.skops",
        "scores.csv",
        "run.json",
        "02_renewal_risk.html",
        "02_renewal_risk.ipynb",
    }
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    for result in (trained, scored, refused, report):
        assert KEY not in result.output and KEY not in result.stderr


# ------------------------------------------------------------- 4. the CRM file


def test_the_crm_upload_file_carries_the_model_version(renewal, demo_org, tmp_path):
    _, _, folder = renewal
    out = tmp_path / "renewal_scores.csv"
    result = _score(demo_org.path, folder.parent, out, "--crm")
    assert result.exit_code == 0, result.output
    upload = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert "Renewal_Model_Version__c" in upload.columns and len(upload) > 0
    assert set(upload["Renewal_Model_Version__c"]) == {folder.name}


def test_the_model_version_cell_is_formula_safe_and_required(tmp_path):
    scores = pd.DataFrame(
        {
            "contract_id": ["800A"],
            "renewal_probability": [0.5],
            "risk_band": ["high"],
            "arr_at_risk": [5.0],
            "reason_1": ["a"],
            "reason_2": ["b"],
            "reason_3": ["c"],
            "model_version": ["=cmd|' /C calc'!A0"],
            "scored_at": pd.to_datetime(["2026-11-01T10:00:00Z"]),
        }
    )
    back = pd.read_csv(rf.write_crm_upsert(scores, tmp_path / "up.csv"), dtype=str, keep_default_na=False)
    assert back.loc[0, "Renewal_Model_Version__c"] == "'=cmd|' /C calc'!A0"
    with pytest.raises(rf.RenewForecastError, match=r"scores have no column\(s\) \['model_version'\]"):
        rf.write_crm_upsert(scores.drop(columns=["model_version"]), tmp_path / "up2.csv")
