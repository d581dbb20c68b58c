"""Shared fixtures: a small demo org written once per session, and helpers to edit copies."""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

import renewforecast as rf
from renewforecast.schemas import TABLES, conform
from salesforce_server import SalesforceServer, make_tls

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def demo_org(tmp_path_factory) -> rf.DemoOrg:
    return rf.write_demo_org(tmp_path_factory.mktemp("demo") / "org", accounts=60, seed=11)


@pytest.fixture(scope="session")
def demo_book(demo_org) -> rf.Book:
    return rf.load_book(demo_org.path)


@pytest.fixture
def org_copy(demo_org, tmp_path) -> Path:
    """A private copy of the demo export folder that a test may break."""
    dest = tmp_path / "org"
    shutil.copytree(demo_org.path, dest)
    return dest


def read_sf(folder: Path, file: str) -> pd.DataFrame:
    """Read an export file exactly as text (no type guessing)."""
    return pd.read_csv(folder / file, dtype=str, keep_default_na=False)


def write_sf(folder: Path, file: str, frame: pd.DataFrame) -> None:
    frame.to_csv(folder / file, index=False, lineterminator="\n")


def edit_sf(folder: Path, file: str, row: int, column: str, value: str) -> tuple[int, str]:
    """Set one cell; return (physical line, record id) of the row edited."""
    frame = read_sf(folder, file)
    frame.loc[row, column] = value
    write_sf(folder, file, frame)
    rid = frame.loc[row, "Id"] if "Id" in frame.columns else ""
    return row + 2, rid


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def make_book(**tables: pd.DataFrame) -> rf.Book:
    """A Book from hand-written canonical tables (the rest empty)."""
    full = {name: conform(tables.get(name, pd.DataFrame()), name) for name in TABLES}
    return rf.Book(**full)


PAYLOADS = (
    "<script>alert('rf-xss')</script>",
    "<img src=x onerror=alert('rf-xss')>",
    "javascript:alert('rf-xss')",
    "\"><svg onload=alert('rf-xss')>",
)


def poison(folder: Path) -> None:
    """Put script, handler and javascript: payloads in account, product and stage names."""
    accounts = read_sf(folder, "Account.csv")
    accounts["Name"] = [PAYLOADS[i % len(PAYLOADS)] + f" {i}" for i in range(len(accounts))]
    accounts.loc[accounts.index % 3 == 0, "Industry"] = PAYLOADS[1]
    write_sf(folder, "Account.csv", accounts)
    products = read_sf(folder, "Product2.csv")
    products["Name"] = [PAYLOADS[i % len(PAYLOADS)] for i in range(len(products))]
    products["Family"] = PAYLOADS[0]
    write_sf(folder, "Product2.csv", products)
    opps = read_sf(folder, "Opportunity.csv")
    open_ = opps["IsClosed"] == "false"
    opps.loc[open_, "StageName"] = PAYLOADS[3]
    write_sf(folder, "Opportunity.csv", opps)


@pytest.fixture(scope="session")
def hostile_report(demo_org, tmp_path_factory) -> Path:
    """A full published report run (train, then every notebook) on a demo org poisoned by :func:`poison`.

    Shared by the safe-HTML and browser tests: one run costs a minute or two.
    Returns the run folder (``reports/latest`` resolved).
    """
    from click.testing import CliRunner

    from renewforecast.cli import main

    base = tmp_path_factory.mktemp("hostile")
    org = base / "org"
    shutil.copytree(demo_org.path, org)
    poison(org)
    models = base / "models"
    trained = CliRunner().invoke(main, ["train", str(org), "--out", str(models), "--as-of", "2026-06-30"])
    assert trained.exit_code == 0, trained.output
    out = base / "reports"
    result = CliRunner().invoke(
        main, ["report", str(org), "--out", str(out), "--as-of", "2026-06-30", "--model", str(models)]
    )
    assert result.exit_code == 0, result.output
    return (out / "latest").resolve()


@dataclass(frozen=True)
class SfCredentials:
    """Test credentials for the local Salesforce org: none of them may appear in any output."""

    client_id: str
    client_secret: str
    username: str
    key_file: Path
    key_text: str
    public_pem: bytes
    tls: tuple[Path, Path, Path]


@pytest.fixture(scope="session")
def sf_credentials(tmp_path_factory) -> SfCredentials:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    base = tmp_path_factory.mktemp("sf-keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    key_file = base / "connected-app.key"
    key_file.write_text(key_text)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SfCredentials(
        client_id="3MVG9TEST" + secrets.token_hex(12),
        client_secret="SECRET" + secrets.token_hex(16),
        username="integration@renewforecast.test",
        key_file=key_file,
        key_text=key_text,
        public_pem=public,
        tls=make_tls(base / "tls"),
    )


@pytest.fixture
def sf_server(demo_org, sf_credentials) -> Iterator[SalesforceServer]:
    """A fresh local Salesforce org serving the demo export over HTTPS (state is per test)."""
    server = SalesforceServer(
        demo_org.path,
        sf_credentials.tls,
        client_id=sf_credentials.client_id,
        client_secret=sf_credentials.client_secret,
        username=sf_credentials.username,
        public_key_pem=sf_credentials.public_pem,
    ).start()
    yield server
    server.stop()


def jwt_env(server: SalesforceServer, creds: SfCredentials, **extra: str) -> dict[str, str]:
    """The SF_* variables of a connected app's JWT flow to the local Salesforce."""
    return {
        "SF_CLIENT_ID": creds.client_id,
        "SF_USERNAME": creds.username,
        "SF_JWT_KEY_FILE": str(creds.key_file),
        "SF_LOGIN_URL": server.url,
        **extra,
    }


def connect(server: SalesforceServer, creds: SfCredentials, retry) -> rf.SalesforceConnection:
    """A JWT connection to the local Salesforce, trusting its test CA."""
    return rf.SalesforceConnection.from_env(jwt_env(server, creds), retry=retry, ca_bundle=str(server.ca_path))
