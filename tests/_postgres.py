"""A real PostgreSQL server for the tests: the Debian binaries, a throw-away cluster, a loopback port.

The session fixture :func:`postgres_url` runs ``initdb`` in a temporary
folder, starts ``postgres`` on a free 127.0.0.1 port (its unix socket in the
same folder), yields a SQLAlchemy URL with a password (scram-sha-256 over
TCP, so the password is really checked), and stops the server and removes
the folder afterwards, whatever the tests did. Running as root, the binaries
run as the ``postgres`` system user (the server refuses root). Missing
binaries fail the tests: CI installs the Debian package ``postgresql``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The test cluster's superuser password; tests check it never leaks.
PG_PASSWORD = "rf-pg-Secret-8c41f0"
_BINARIES = ("initdb", "pg_ctl", "postgres")


def find_postgres_bin(search_path: str | None = None, roots: tuple[str, ...] = ("/usr/lib/postgresql",)) -> Path:
    """The folder holding initdb, pg_ctl and postgres; fail the tests, saying what to install, when none does."""
    found = [shutil.which(b, path=search_path) for b in _BINARIES]
    if all(found):
        return Path(os.path.realpath(found[0])).parent
    versions = []
    for root in roots:
        for folder in glob.glob(os.path.join(root, "*", "bin")):
            if all(os.access(os.path.join(folder, b), os.X_OK) for b in _BINARIES):
                name = Path(folder).parent.name
                versions.append((int(name) if name.isdigit() else 0, folder))
    if versions:
        return Path(max(versions)[1])
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH nor in "
        "/usr/lib/postgresql/*/bin: install the Debian package `postgresql` (apt-get install postgresql)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user() -> list[str]:
    """The command prefix that runs a binary as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL (psycopg) of a fresh PostgreSQL cluster, removed after the session."""
    bindir = find_postgres_bin()
    prefix = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="rf-pg-"))
    data, log, pwfile = base / "data", base / "server.log", base / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    if prefix:
        entry = pwd.getpwnam("postgres")
        for p in (base, pwfile):
            os.chown(p, entry.pw_uid, entry.pw_gid)
    started = False
    try:
        init = _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        if init.returncode:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}", pytrace=False)
        port = _free_port()
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c shared_buffers=16MB -c max_connections=20"
        )
        start = _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
        started = True
        if start.returncode:
            text = log.read_text() if log.exists() else ""
            pytest.fail(f"PostgreSQL did not start:\n{start.stdout}\n{start.stderr}\n{text}", pytrace=False)
        yield f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)
