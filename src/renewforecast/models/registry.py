"""Saved models: versioned folders with a manifest, loaded without ever running code from the file.

Layout::

    models/renewal/
        20261121T060000Z-1a2b3c/
            model.skops        scikit-learn based models (skops, explicit allow-list)
            profile.json       a renewal model's training profile, for drift reports (plain data)
            params.json        statistical models (plain parameters)
            manifest.json      what it is, how it was trained, sha256 of every file
        latest -> 20261121T060000Z-1a2b3c

Loading checks the manifest first (its shape against :data:`MANIFEST_SCHEMA`,
the model-format version, the optional HMAC signature, package versions,
every file's sha256), then reads the model: scikit-learn objects through
``skops.io`` with the types in :data:`ALLOWED_TYPES` only, statistical models
from JSON. No pickle is ever read.

What the checks prove. The sha256 of each file detects a model file that was
changed or corrupted relative to its manifest. It does not prove who wrote the
manifest: anyone who can edit the folder can rewrite both. When
``RENEWFORECAST_MODEL_KEY`` is set at save time the manifest also carries an
HMAC-SHA256 over its canonical JSON, and when it is set at load time a
manifest without a valid signature is refused, so only a holder of the key
can produce a model that loads.

Version rule (the one place it is written): a model loads only under a
model-format version this renewforecast reads (:data:`FORMATS_READ`) and the
same major.minor version of every package in :data:`SAME_MINOR_PACKAGES` as
it was saved with. Every other recorded version that differs (patch releases
included) gives a :class:`ModelWarning` naming the package and both versions.

Model formats: 1 is a model file (``model.skops`` or ``params.json``) and
its manifest; 2 adds a renewal model's training profile, ``profile.json``
(:data:`PROFILE_SCHEMA`, checked like the manifest before it is used). A
model is saved in the lowest format that holds it, so one without a profile
still loads in a renewforecast that reads format 1 only.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import re
import secrets
import shutil
import sys
import warnings
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from renewforecast.atomic import atomic_write_bytes, atomic_write_text
from renewforecast.exceptions import RenewForecastError
from renewforecast.models.drift import PROFILE_FORMAT, SCORE_FEATURE, profile_from_json
from renewforecast.models.renewal import RenewalModel
from renewforecast.models.sbg import ShiftedBetaGeometric
from renewforecast.models.survival import SurvivalModel

__all__ = [
    "ALLOWED_TYPES",
    "FORMATS_READ",
    "FORMAT_VERSION",
    "KEY_ENV",
    "MANIFEST_SCHEMA",
    "PROFILE_SCHEMA",
    "SAME_MINOR_PACKAGES",
    "ModelKeyError",
    "ModelRefused",
    "ModelWarning",
    "check_model_key",
    "load_manifest",
    "load_model",
    "save_model",
    "validate_manifest",
]

#: The newest renewforecast model-format version; a model is written in the
#: lowest format that holds it (2 only with a training profile).
FORMAT_VERSION = 2
#: The model formats this renewforecast loads; a manifest of another format
#: (or with none) is refused: retrain, or upgrade renewforecast.
FORMATS_READ: tuple[int, ...] = (1, 2)
MANIFEST = "manifest.json"
PROFILE = "profile.json"

#: Environment variable holding the secret that signs manifests (HMAC-SHA256).
KEY_ENV = "RENEWFORECAST_MODEL_KEY"
_MIN_KEY_CHARS = 16

#: Packages whose major.minor version at load time must equal the one at
#: save time: their internals and numerics change between minor releases.
SAME_MINOR_PACKAGES: tuple[str, ...] = ("scikit-learn", "numpy")

#: Types a saved RenewalModel may contain beyond those skops trusts by default.
#: A file holding any other type is refused. Kept equal to what a fitted
#: RenewalModel needs (a test checks it against fresh models).
ALLOWED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "numpy.dtype",
    "renewforecast.models.renewal.RenewalModel",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.utils.validation.check_array",
)

#: Every package whose version can change a saved model's numbers; all are
#: recorded at save time, only :data:`SAME_MINOR_PACKAGES` can refuse a load.
_PACKAGES = ("renewforecast", "scikit-learn", "numpy", "scipy", "pandas", "lifelines", "skops")

_KINDS = {"renewal_model": "model.skops", "survival_model": "params.json", "sbg_model": "params.json"}

_SHA256 = {"type": "string", "pattern": r"^[0-9a-f]{64}$"}
_DATE = r"^\d{4}-\d{2}-\d{2}$"

#: The shape of manifest.json, in a small JSON-Schema subset (type, enum,
#: pattern, required, properties, additionalProperties, items,
#: minProperties) checked by :func:`validate_manifest`. A manifest that does
#: not fit is refused like a tampered one.
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "format_version",
        "kind",
        "class",
        "version",
        "created",
        "packages",
        "platform",
        "features",
        "hyperparameters",
        "training_data_fingerprint",
        "as_of",
        "metrics",
        "notes",
        "files",
    ],
    "additionalProperties": False,
    "properties": {
        "format_version": {"type": "integer", "enum": list(FORMATS_READ)},
        "kind": {"type": "string", "enum": sorted(_KINDS)},
        "class": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"},
        # The version ends up in CRM fields, file names and report pages.
        "version": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "created": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"},
        "packages": {
            "type": "object",
            "required": ["python", *_PACKAGES],
            "properties": {pkg: {"type": "string", "pattern": r"^\d+\.\d+"} for pkg in SAME_MINOR_PACKAGES},
            "additionalProperties": {"type": "string"},
        },
        "platform": {"type": "object", "additionalProperties": {"type": "string"}},
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "type"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string", "enum": ["categorical", "numeric"]},
                },
            },
        },
        "hyperparameters": {"type": "object"},
        "training_data_fingerprint": {"type": ["string", "null"]},
        "as_of": {"type": ["string", "null"], "pattern": _DATE},
        "metrics": {"type": "object", "additionalProperties": {"type": ["number", "string", "boolean", "null"]}},
        "notes": {"type": "string"},
        "files": {"type": "object", "minProperties": 1, "additionalProperties": _SHA256},
        "signature": {
            "type": "object",
            "required": ["algorithm", "digest"],
            "additionalProperties": False,
            "properties": {"algorithm": {"type": "string", "enum": ["HMAC-SHA256"]}, "digest": _SHA256},
        },
    },
}


_COUNT = {"type": "integer"}

#: The shape of a renewal model's ``profile.json`` (the training profile of
#: :mod:`renewforecast.models.drift`), checked like the manifest; its
#: consistency (edges increasing, one count per bin) is checked next.
PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "rows", "score_source", "features"],
    "additionalProperties": False,
    "properties": {
        "format": {"type": "integer", "enum": [PROFILE_FORMAT]},
        "rows": _COUNT,
        "score_source": {"type": "string", "enum": ["out_of_fold", "in_sample"]},
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "kind", "counts", "missing"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "kind": {"type": "string", "enum": ["numeric", "categorical", "score"]},
                    "edges": {"type": "array", "items": {"type": "number"}},
                    "categories": {"type": "array", "items": {"type": "string"}},
                    "counts": {"type": "array", "items": _COUNT},
                    "other": _COUNT,
                    "missing": _COUNT,
                },
            },
        },
    },
}


class ModelRefused(RenewForecastError):
    """A saved model was not loaded: tampered, malformed, foreign, unsigned, incomplete or incompatible."""


class ModelKeyError(ModelRefused):
    """``RENEWFORECAST_MODEL_KEY`` is set but cannot be a signing key (empty or too short)."""


class ModelWarning(UserWarning):
    """A saved model loads, but something about it deserves a look (versions, unchecked signature)."""


# ------------------------------------------------------------- schema

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_TYPE_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    for name in ("object", "array", "string", "integer", "number", "null"):
        if isinstance(value, _TYPES[name]):
            return name
    return type(value).__name__


def _is(value: Any, kind: str) -> bool:
    # JSON Schema: true/false are not numbers even though Python's bool is an int.
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, _TYPES[kind])


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _TYPE_WORDS[_json_type(value)]
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _problem(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """The first way ``value`` breaks ``schema``, naming the field and the rule; None when it fits."""
    field = f"field {where!r}" if where else "the manifest"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(value, k) for k in kinds):
            want = " or ".join(_TYPE_WORDS[k] for k in kinds)
            return f"{field} must be {want} (rule 'type'), found {_shown(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{field} must be one of {schema['enum']} (rule 'enum'), found {_shown(value)}"
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        return f"{field} must match {schema['pattern']} (rule 'pattern'), found {_shown(value)}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return f"{field} lacks the required key {key!r} (rule 'required')"
        if len(value) < schema.get("minProperties", 0):
            return f"{field} must have at least {schema['minProperties']} entry (rule 'minProperties'), found none"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = f"{where}.{key}" if where else str(key)
            if key in props:
                found = _problem(item, props[key], sub)
            elif extra is False:
                found = f"field {sub!r} is not part of a model manifest (rule 'additionalProperties')"
            elif isinstance(extra, Mapping):
                found = _problem(item, extra, sub)
            else:
                found = None
            if found:
                return found
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found = _problem(item, schema["items"], f"{where}[{i}]")
            if found:
                return found
    return None


def validate_manifest(manifest: Any) -> str | None:
    """Check a parsed manifest against :data:`MANIFEST_SCHEMA`.

    Parameters
    ----------
    manifest : object
        What ``json.loads`` made of a manifest.json.

    Returns
    -------
    str or None
        The first problem, naming the field and the rule broken, or None
        when the manifest has the right shape.

    Examples
    --------
    >>> validate_manifest([1, 2])
    "the manifest must be an object (rule 'type'), found a list"
    >>> validate_manifest({"format_version": 1})
    "the manifest lacks the required key 'kind' (rule 'required')"
    """
    return _problem(manifest, MANIFEST_SCHEMA, "")


# ------------------------------------------------------------- signature


def check_model_key() -> bool:
    """Whether models saved now will be signed, checking ``RENEWFORECAST_MODEL_KEY`` first.

    A job can call this before a long training run so that a key that
    failed to reach the environment stops it at once.

    Returns
    -------
    bool
        True when the variable holds a usable key, False when it is unset.

    Raises
    ------
    ModelKeyError
        When the variable is set but empty or shorter than 16 characters.

    Examples
    --------
    >>> signing = check_model_key()  # True once RENEWFORECAST_MODEL_KEY holds a key
    >>> isinstance(signing, bool)
    True
    """
    return _model_key() is not None


def _model_key() -> bytes | None:
    raw = os.environ.get(KEY_ENV)
    if raw is None:
        return None
    # An empty or short value is almost always a secret that failed to reach
    # the environment; treating it as "no key" would silently turn checks off.
    if len(raw.strip()) < _MIN_KEY_CHARS:
        raise ModelKeyError(
            f"{KEY_ENV} is set but {'empty' if not raw.strip() else 'too short'}: a signing key "
            f"needs at least {_MIN_KEY_CHARS} characters (for example the output of "
            "python -c 'import secrets; print(secrets.token_hex(32))'). Set it to the secret the "
            f"models are signed with, or unset {KEY_ENV} to save and load without signatures."
        )
    return raw.encode("utf-8")


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the manifest without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in manifest.items() if k != "signature" and not k.startswith("_")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True).encode("ascii")


def _digest(manifest: Mapping[str, Any], key: bytes) -> str:
    return hmac.new(key, _canonical(manifest), hashlib.sha256).hexdigest()


def _check_signature(manifest: dict, where: Path) -> None:
    key = _model_key()
    signature = manifest.get("signature")
    if key is None:
        if signature is not None:
            warnings.warn(
                ModelWarning(
                    f"{where}: the manifest is signed, but {KEY_ENV} is not set, so the signature "
                    "was not checked; set it to verify who saved the model"
                ),
                stacklevel=3,
            )
        return
    if signature is None:
        raise ModelRefused(
            f"{where} is not signed, and {KEY_ENV} is set, so only signed models load: an unsigned "
            "manifest could have been written by anyone who can edit the folder. Retrain the model "
            f"('renewforecast train DIR --out PATH') with {KEY_ENV} set to "
            f"the same key, or unset {KEY_ENV} to accept unsigned models."
        )
    # Never show the expected digest: it would be a valid signature for the edited manifest.
    if not hmac.compare_digest(_digest(manifest, key), signature["digest"]):
        raise ModelRefused(
            f"{where}: the manifest's signature does not match, so it was changed after it was signed "
            f"(metrics, versions, hashes or any other field) or signed with another {KEY_ENV}. Restore "
            "the model folder from where models are kept, or retrain with the right key set."
        )


# ------------------------------------------------------------- saving


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
    if isinstance(model, RenewalModel):
        return "renewal_model"
    name = type(model).__name__
    if name == "SurvivalModel":
        return "survival_model"
    if name == "ShiftedBetaGeometric":
        return "sbg_model"
    raise RenewForecastError(
        f"cannot save a {type(model).__name__}: only RenewalModel, SurvivalModel and ShiftedBetaGeometric are supported"
    )


def _json_default(obj):
    import numpy as np
    import pandas as pd

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (pd.Timestamp, dt.date)):
        return obj.isoformat()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_model(
    model: Any,
    path: str | os.PathLike[str] = "models/renewal",
    *,
    metrics: dict | None = None,
    training_fingerprint: str | None = None,
    as_of: Any = None,
    notes: str = "",
) -> Path:
    """Save a fitted model as a new version under ``path`` and point ``latest`` at it.

    The manifest records the model-format version, the versions of every
    package that can change the model's numbers, and the sha256 of each file.
    When the environment variable ``RENEWFORECAST_MODEL_KEY`` is set, the
    manifest is also signed (HMAC-SHA256); the key itself is written nowhere.

    Parameters
    ----------
    model : RenewalModel, SurvivalModel or ShiftedBetaGeometric
        Fitted.
    path : path-like, default "models/renewal"
        The model's folder; versions are created inside it.
    metrics : dict, optional
        Evaluation figures to record (e.g. backtest AUC): names to numbers,
        text, booleans or None.
    training_fingerprint : str, optional
        ``book.fingerprint`` of the training data.
    as_of : date-like, optional
        The as-of date of the training data.
    notes : str, optional

    Returns
    -------
    Path
        The version folder.

    Raises
    ------
    RenewForecastError
        When the manifest would not have the shape :func:`load_model`
        accepts (e.g. metrics that are not a mapping of plain values).
    ModelKeyError
        When ``RENEWFORECAST_MODEL_KEY`` is set but empty or too short.

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
    key = _model_key()  # before anything is written: a bad key leaves no half-saved version
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    version_id = f"{stamp}-{secrets.token_hex(3)}"
    staging = root / f".staging-{version_id}"
    staging.mkdir()
    try:
        files: list[str] = []
        if kind == "renewal_model":
            import skops.io as sio

            profile = getattr(model, "training_profile_", None)
            # The profile is saved as plain JSON beside the model, never inside the skops file.
            bare = copy.copy(model)
            bare.__dict__.pop("training_profile_", None)
            atomic_write_bytes(staging / "model.skops", sio.dumps(bare))
            files.append("model.skops")
            if profile is not None:
                problem = _profile_problem(profile, model)
                if problem:
                    raise RenewForecastError(f"cannot save the model: its training profile is malformed: {problem}")
                atomic_write_text(staging / PROFILE, json.dumps(profile, indent=1, allow_nan=False))
                files.append(PROFILE)
            features = [
                {"name": n, "type": "numeric" if n in model.numeric_features_ else "categorical"}
                for n in model.feature_names_in_
            ]
        else:
            atomic_write_text(
                staging / "params.json", json.dumps(model.to_params(), indent=1, default=_json_default, allow_nan=True)
            )
            files.append("params.json")
            features = [{"name": str(n), "type": "numeric"} for n in getattr(model, "feature_names_in_", [])]
        manifest = {
            # The lowest format that holds the model, so older readers load what they can.
            "format_version": FORMAT_VERSION if PROFILE in files else 1,
            "kind": kind,
            "class": f"{type(model).__module__}.{type(model).__name__}",
            "version": version_id,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "packages": _versions(),
            "platform": {"system": platform.system(), "machine": platform.machine(), "python": sys.version.split()[0]},
            "features": features,
            "hyperparameters": dict(model.get_params()) if hasattr(model, "get_params") else {},
            "training_data_fingerprint": training_fingerprint,
            "as_of": None if as_of is None else str(as_of)[:10],
            "metrics": metrics or {},
            "notes": notes,
            "files": {name: _sha256(staging / name) for name in files},
        }
        # Through JSON and back first, so that what is checked and signed is
        # exactly what load_model will read.
        manifest = json.loads(json.dumps(manifest, default=_json_default, allow_nan=True))
        problem = validate_manifest(manifest)
        if problem:
            raise RenewForecastError(f"cannot save the model: {problem}")
        if key is not None:
            manifest["signature"] = {"algorithm": "HMAC-SHA256", "digest": _digest(manifest, key)}
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=1, allow_nan=True))
        final = root / version_id
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    link = root / f".latest-{version_id}"
    os.symlink(version_id, link)
    os.replace(link, root / "latest")
    return final


# ------------------------------------------------------------- loading


def _profile_problem(profile: Any, model: RenewalModel) -> str | None:
    """The first way a training profile breaks :data:`PROFILE_SCHEMA`, is inconsistent or fits another model."""
    problem = _problem(profile, PROFILE_SCHEMA, "profile")
    if problem:
        return problem
    try:
        profile_from_json(profile)
    except ValueError as exc:
        return str(exc)
    for entry in profile["features"]:
        total = sum(entry["counts"]) + entry.get("other", 0) + entry["missing"]
        if total != profile["rows"]:
            return f"feature {entry['name']!r} counts {total} rows, the profile {profile['rows']}"
    names = [entry["name"] for entry in profile["features"]]
    wanted = [str(n) for n in model.feature_names_in_]
    if [n for n in names if n != SCORE_FEATURE] != wanted:
        return f"its features are not the model's ({len(names)} profiled, the model has {len(wanted)})"
    return None


def _load_profile(path: Path, model: RenewalModel) -> dict:
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelRefused(f"{path} is not readable JSON ({type(exc).__name__}: {exc}). {_RESTORE_PROFILE}") from exc
    problem = _profile_problem(profile, model)
    if problem:
        raise ModelRefused(f"{path} is not this model's training profile: {problem}. {_RESTORE_PROFILE}")
    return profile


_RESTORE_PROFILE = (
    "A training profile is written only by save_model, so this one was edited or damaged: restore the model "
    "folder from where models are kept, or retrain with 'renewforecast train DIR --out PATH'."
)


def _version_dir(path: Path) -> Path:
    if (path / MANIFEST).exists():
        return path
    if (path / "latest").exists():
        return (path / "latest").resolve()
    raise ModelRefused(
        f"{path} holds no saved model (no {MANIFEST} and no 'latest'); "
        "train one with 'renewforecast train DIR --out PATH'"
    )


_RESTORE = (
    "A manifest is written only by save_model, so this one was edited or damaged: restore the model folder "
    "from where models are kept, or retrain with 'renewforecast train DIR --out PATH'."
)


def _check_format(manifest: Any, where: Path) -> None:
    if not isinstance(manifest, dict):
        return  # the schema names the problem
    if "format_version" not in manifest:
        raise ModelRefused(
            f"{where} has no format_version: it was written by a renewforecast older than model "
            f"format {min(FORMATS_READ)}, which this version cannot load. Retrain the model with "
            "'renewforecast train DIR --out PATH'."
        )
    found = manifest["format_version"]
    if isinstance(found, int) and not isinstance(found, bool) and found not in FORMATS_READ:
        if found < min(FORMATS_READ):
            advice = "Retrain the model with 'renewforecast train DIR --out PATH'."
        else:
            advice = (
                "It was saved by a newer renewforecast: upgrade renewforecast to load it, or retrain with "
                "'renewforecast train DIR --out PATH'."
            )
        raise ModelRefused(
            f"{where} has model format_version {found}; this renewforecast reads format_version "
            f"{' and '.join(str(v) for v in FORMATS_READ)} only. {advice}"
        )


def load_manifest(path: str | os.PathLike[str]) -> dict:
    """The manifest of a saved model, checked for shape, format and signature.

    Parameters
    ----------
    path : path-like
        A version folder, or a model folder (its ``latest`` version).

    Returns
    -------
    dict
        The manifest, with ``_folder`` set to the version folder. The files'
        hashes and package versions are checked by :func:`load_model`.

    Raises
    ------
    ModelRefused
        When the manifest is unreadable, of another format, of the wrong
        shape (see :data:`MANIFEST_SCHEMA`) or, with
        ``RENEWFORECAST_MODEL_KEY`` set, not validly signed.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> from renewforecast.models.registry import load_manifest
    >>> folder = rf.save_model(rf.ShiftedBetaGeometric().fit([100, 70, 55]), tempfile.mkdtemp())
    >>> load_manifest(folder)["kind"]
    'sbg_model'
    """
    folder = _version_dir(Path(path))
    where = folder / MANIFEST
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelRefused(f"{where} is not a readable manifest ({type(exc).__name__}: {exc}). {_RESTORE}") from exc
    _check_format(manifest, where)
    problem = validate_manifest(manifest)
    if problem:
        raise ModelRefused(f"{where} is malformed: {problem}. {_RESTORE}")
    _check_signature(manifest, where)
    manifest["_folder"] = str(folder)
    return manifest


def _minor(text: str) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _check_compatible(manifest: dict, folder: Path) -> None:
    saved = manifest["packages"]
    running = _versions()
    for pkg in SAME_MINOR_PACKAGES:
        a, b = saved[pkg], running.get(pkg, "not installed")
        if _minor(a) != _minor(b):
            raise ModelRefused(
                f"{folder} was saved with {pkg} {a}; this environment has {pkg} {b}. A model loads only under the "
                f"same major.minor version of {', '.join(SAME_MINOR_PACKAGES)} it was trained with, because their "
                "internals and numerics change between minor releases. Retrain the model here ('renewforecast "
                f"train DIR --out PATH'), or install the saved version ('pip install {pkg}=={a}')."
            )
    for pkg in sorted(set(saved) | set(running)):
        a, b = saved.get(pkg, "not recorded"), running.get(pkg, "not installed")
        if a != b and pkg in running:
            warnings.warn(
                ModelWarning(
                    f"{folder} was saved with {pkg} {a}; this environment has {pkg} {b}. It loads "
                    "(only the major.minor versions of "
                    f"{', '.join(SAME_MINOR_PACKAGES)} must match), but its numbers may differ "
                    "slightly from those at training."
                ),
                stacklevel=3,
            )


def load_model(path: str | os.PathLike[str] = "models/renewal") -> Any:
    """Load a saved model, refusing anything tampered, malformed, foreign or incompatible.

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
        When the manifest is not of the shape in :data:`MANIFEST_SCHEMA` or
        of another model format; when ``RENEWFORECAST_MODEL_KEY`` is set and
        the manifest is unsigned or its signature does not match; when a
        file's sha256 differs from the manifest, a file is missing or extra;
        when scikit-learn's or NumPy's major.minor version differs from the
        saved one; or when the model file holds a type outside
        :data:`ALLOWED_TYPES`. Nothing from the file is executed first.

    Warns
    -----
    ModelWarning
        When another recorded package version differs, or the manifest is
        signed but ``RENEWFORECAST_MODEL_KEY`` is not set.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = rf.save_model(rf.ShiftedBetaGeometric().fit([100, 70, 55]), tempfile.mkdtemp() + "/m")
    >>> rf.load_model(folder.parent).model_version_ == folder.name
    True
    """
    manifest = load_manifest(path)
    folder = Path(manifest["_folder"])
    files = manifest["files"]
    expected = {_KINDS[manifest["kind"]]}
    # Format 2 adds a renewal model's training profile; a model without one is format 1.
    if manifest["kind"] == "renewal_model" and manifest["format_version"] >= 2 and PROFILE in files:
        expected.add(PROFILE)
    if set(files) != expected:
        raise ModelRefused(f"{folder}: manifest lists {sorted(files)}, a {manifest['kind']} has {sorted(expected)}")
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST}
    if present != expected:
        raise ModelRefused(
            f"{folder}: unexpected files {sorted(present - expected)} or missing {sorted(expected - present)}"
        )
    for name, digest in files.items():
        try:
            actual = _sha256(folder / name)
        except OSError as exc:
            raise ModelRefused(f"{folder / name} cannot be read ({exc})") from exc
        if actual != digest:
            raise ModelRefused(
                f"{folder / name} has been modified since it was saved "
                f"(sha256 {actual[:12]}..., manifest says {digest[:12]}...); refusing to load it"
            )
    _check_compatible(manifest, folder)
    if manifest["kind"] == "renewal_model":
        import skops.io as sio

        data = (folder / "model.skops").read_bytes()
        try:
            untrusted = sio.get_untrusted_types(data=data)
        except Exception as exc:  # not a skops archive at all
            raise ModelRefused(
                f"{folder / 'model.skops'} is not a skops model file ({type(exc).__name__}: {exc})"
            ) from exc
        foreign = sorted(set(untrusted) - set(ALLOWED_TYPES))
        if foreign:
            raise ModelRefused(f"{folder / 'model.skops'} contains types that are not allowed: {foreign}")
        try:
            model = sio.loads(data, trusted=list(ALLOWED_TYPES))
        except Exception as exc:  # a damaged archive whose hash was rewritten too
            raise ModelRefused(f"{folder / 'model.skops'} could not be read ({type(exc).__name__}: {exc})") from exc
        if not isinstance(model, RenewalModel):
            raise ModelRefused(f"{folder / 'model.skops'} holds a {type(model).__name__}, not a RenewalModel")
        if PROFILE in files:
            model.training_profile_ = _load_profile(folder / PROFILE, model)
    else:
        cls = SurvivalModel if manifest["kind"] == "survival_model" else ShiftedBetaGeometric
        try:
            model = cls.from_params(json.loads((folder / "params.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
            raise ModelRefused(
                f"{folder / 'params.json'} does not hold {cls.__name__} parameters ({type(exc).__name__}: {exc})"
            ) from exc
    model.model_version_ = manifest["version"]
    model.manifest_ = {k: v for k, v in manifest.items() if not k.startswith("_")}
    return model
