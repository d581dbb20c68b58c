"""Saved models: versioned folders with a manifest, loaded without ever running code from the file.

Layout::

    models/renewal/
        20261121T060000Z-1a2b3c/
            model.skops        scikit-learn based models (skops, explicit allow-list)
            params.json        statistical models (plain parameters)
            manifest.json      what it is, how it was trained, sha256 of every file
        latest -> 20261121T060000Z-1a2b3c

Loading checks the manifest first (format, kind, package versions, every
file's sha256), then reads the model: scikit-learn objects through
``skops.io`` with the types in :data:`ALLOWED_TYPES` only, statistical models
from JSON. No pickle is ever read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from renewforecast._atomic import atomic_write_bytes, atomic_write_text
from renewforecast.exceptions import RenewForecastError

__all__ = ["ALLOWED_TYPES", "ModelRefused", "load_model", "load_manifest", "save_model"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: Types a saved RenewalModel may contain beyond those skops trusts by default.
#: A file holding any other type is refused. Kept equal to what a fitted
#: RenewalModel needs (a test checks it against fresh models).
ALLOWED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "numpy.dtype",
    "renewforecast.model.RenewalModel",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.utils.validation.check_array",
)

_PACKAGES = ("renewforecast", "scikit-learn", "numpy", "scipy", "pandas", "lifelines", "skops")


class ModelRefused(RenewForecastError):
    """A saved model was not loaded: tampered, foreign, incomplete or incompatible."""


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _kind(model: Any) -> str:
    from renewforecast.model import RenewalModel

    if isinstance(model, RenewalModel):
        return "renewal_model"
    name = type(model).__name__
    if name == "SurvivalModel":
        return "survival_model"
    if name == "ShiftedBetaGeometric":
        return "sbg_model"
    raise RenewForecastError(f"cannot save a {type(model).__name__}: only RenewalModel, SurvivalModel "
                             "and ShiftedBetaGeometric are supported")


def _json_default(obj):
    import numpy as np
    import pandas as pd

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (pd.Timestamp, dt.date)):
        return obj.isoformat()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_model(model: Any, path: str | os.PathLike[str] = "models/renewal", *, metrics: dict | None = None,
               training_fingerprint: str | None = None, as_of: Any = None, notes: str = "") -> Path:
    """Save a fitted model as a new version under ``path`` and point ``latest`` at it.

    Parameters
    ----------
    model : RenewalModel, SurvivalModel or ShiftedBetaGeometric
        Fitted.
    path : path-like, default "models/renewal"
        The model's folder; versions are created inside it.
    metrics : dict, optional
        Evaluation figures to record (e.g. backtest AUC).
    training_fingerprint : str, optional
        ``book.fingerprint`` of the training data.
    as_of : date-like, optional
        The as-of date of the training data.
    notes : str, optional

    Returns
    -------
    Path
        The version folder.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> sbg = rf.ShiftedBetaGeometric().fit([1000, 631, 468, 382, 326])
    >>> folder = rf.save_model(sbg, tempfile.mkdtemp() + "/sbg")
    >>> type(rf.load_model(folder)).__name__
    'ShiftedBetaGeometric'
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    kind = _kind(model)
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    version_id = f"{stamp}-{secrets.token_hex(3)}"
    staging = root / f".staging-{version_id}"
    staging.mkdir()
    try:
        files: list[str] = []
        if kind == "renewal_model":
            import skops.io as sio

            atomic_write_bytes(staging / "model.skops", sio.dumps(model))
            files.append("model.skops")
            features = [{"name": n, "type": "numeric" if n in model.numeric_features_ else "categorical"}
                        for n in model.feature_names_in_]
        else:
            atomic_write_text(staging / "params.json",
                              json.dumps(model.to_params(), indent=1, default=_json_default, allow_nan=True))
            files.append("params.json")
            features = [{"name": str(n), "type": "numeric"} for n in getattr(model, "feature_names_in_", [])]
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "class": f"{type(model).__module__}.{type(model).__name__}",
            "version": version_id,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "packages": _versions(),
            "platform": {"system": platform.system(), "machine": platform.machine(), "python": sys.version.split()[0]},
            "features": features,
            "hyperparameters": {k: v for k, v in model.get_params().items()} if hasattr(model, "get_params") else {},
            "training_data_fingerprint": training_fingerprint,
            "as_of": None if as_of is None else str(as_of)[:10],
            "metrics": metrics or {},
            "notes": notes,
            "files": {name: _sha256(staging / name) for name in files},
        }
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=1, default=_json_default, allow_nan=True))
        final = root / version_id
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    link = root / f".latest-{version_id}"
    os.symlink(version_id, link)
    os.replace(link, root / "latest")
    return final


def _version_dir(path: Path) -> Path:
    if (path / MANIFEST).exists():
        return path
    if (path / "latest").exists():
        return (path / "latest").resolve()
    raise ModelRefused(f"{path} holds no saved model (no {MANIFEST} and no 'latest'); "
                       "train one with 'renewforecast train DIR --out PATH'")


def load_manifest(path: str | os.PathLike[str]) -> dict:
    """The manifest of a saved model (a version folder, or a model folder's ``latest``)."""
    folder = _version_dir(Path(path))
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelRefused(f"{folder / MANIFEST} is not a readable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelRefused(f"{folder}: not a renewforecast model manifest (format_version "
                           f"{manifest.get('format_version') if isinstance(manifest, dict) else '?'}, "
                           f"expected {FORMAT_VERSION})")
    manifest["_folder"] = str(folder)
    return manifest


def _check_compatible(manifest: dict, folder: Path) -> None:
    saved = manifest.get("packages", {})
    running = _versions()
    # A scikit-learn model is only trusted under the same minor version it was
    # saved with: its internals change between minor releases.
    for pkg in ("scikit-learn",):
        a, b = str(saved.get(pkg, "")), running.get(pkg, "")
        if manifest["kind"] == "renewal_model" and a.split(".")[:2] != b.split(".")[:2]:
            raise ModelRefused(f"{folder} was saved with {pkg} {a}; this environment has {b}. "
                               "Retrain the model here ('renewforecast train') rather than load it across versions.")


def load_model(path: str | os.PathLike[str] = "models/renewal") -> Any:
    """Load a saved model, refusing anything tampered, foreign or incompatible.

    Parameters
    ----------
    path : path-like
        A model folder (its ``latest`` version is loaded) or a version folder.

    Returns
    -------
    RenewalModel, SurvivalModel or ShiftedBetaGeometric
        With ``model_version_`` and ``manifest_`` set.

    Raises
    ------
    ModelRefused
        When a file's sha256 differs from the manifest, a file is missing or
        extra, the manifest is foreign or of another format, the packages are
        incompatible, or the model file holds a type outside
        :data:`ALLOWED_TYPES`. Nothing from the file is executed first.
    """
    manifest = load_manifest(path)
    folder = Path(manifest["_folder"])
    files = manifest.get("files") or {}
    expected = {"renewal_model": {"model.skops"}, "survival_model": {"params.json"},
                "sbg_model": {"params.json"}}.get(manifest.get("kind"))
    if expected is None:
        raise ModelRefused(f"{folder}: unknown model kind {manifest.get('kind')!r}")
    if set(files) != expected:
        raise ModelRefused(f"{folder}: manifest lists {sorted(files)}, a {manifest['kind']} has {sorted(expected)}")
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST}
    if present != expected:
        raise ModelRefused(f"{folder}: unexpected files {sorted(present - expected)} or missing {sorted(expected - present)}")
    for name, digest in files.items():
        actual = _sha256(folder / name)
        if actual != digest:
            raise ModelRefused(f"{folder / name} has been modified since it was saved "
                               f"(sha256 {actual[:12]}..., manifest says {str(digest)[:12]}...); refusing to load it")
    _check_compatible(manifest, folder)
    if manifest["kind"] == "renewal_model":
        import skops.io as sio

        from renewforecast.model import RenewalModel

        data = (folder / "model.skops").read_bytes()
        try:
            untrusted = sio.get_untrusted_types(data=data)
        except Exception as exc:  # not a skops archive at all
            raise ModelRefused(f"{folder / 'model.skops'} is not a skops model file ({type(exc).__name__}: {exc})") from exc
        foreign = sorted(set(untrusted) - set(ALLOWED_TYPES))
        if foreign:
            raise ModelRefused(f"{folder / 'model.skops'} contains types that are not allowed: {foreign}")
        model = sio.loads(data, trusted=list(ALLOWED_TYPES))
        if not isinstance(model, RenewalModel):
            raise ModelRefused(f"{folder / 'model.skops'} holds a {type(model).__name__}, not a RenewalModel")
    else:
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        if manifest["kind"] == "survival_model":
            from renewforecast.survival import SurvivalModel as cls
        else:
            from renewforecast.sbg import ShiftedBetaGeometric as cls
        model = cls.from_params(params)
    model.model_version_ = manifest["version"]
    model.manifest_ = {k: v for k, v in manifest.items() if not k.startswith("_")}
    return model
