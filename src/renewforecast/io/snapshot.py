"""Book snapshots: a validated Book written as Parquet and read back without reading the export again.

A report run reads and validates the export once, writes the Book as a
snapshot, and every report notebook reads the snapshot. A snapshot is a
canonical Parquet folder (:func:`renewforecast.load_book` can read its tables
like any canonical folder) plus what a canonical folder cannot hold: the
loader's warnings, the rows set aside with ``on_error="quarantine"``, the
source it was read from, and the Book's fingerprint in ``book.json``.

Reading a snapshot does not validate the tables again: they were validated
when the export was read. It checks instead that the tables still have the
fingerprint recorded when they were written, so a snapshot changed or cut
short after writing is refused rather than reported on.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from renewforecast.atomic import atomic_write_bytes, atomic_write_text
from renewforecast.book import Book
from renewforecast.exceptions import RenewForecastError
from renewforecast.io.canonical import write_canonical
from renewforecast.schemas import TABLES

__all__ = ["SNAPSHOT_MANIFEST", "SnapshotError", "read_snapshot", "write_snapshot"]

#: The file that marks a folder as a snapshot and records what it holds.
SNAPSHOT_MANIFEST = "book.json"
_FORMAT = 1
# Metadata frames of the Book, beside the canonical tables; the names are
# not canonical table names, so load_book ignores them.
_EXTRA = ("warnings", "quarantine")
_SET_ASIDE = "set_aside"


class SnapshotError(RenewForecastError):
    """A snapshot folder is missing, incomplete, or no longer holds the data it recorded."""


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _iso(day: pd.Timestamp | None) -> str | None:
    return None if day is None else pd.Timestamp(day).isoformat()


def write_snapshot(book: Book, folder: str | Path) -> Path:
    """Write ``book`` to ``folder`` as a snapshot that :func:`read_snapshot` reads back.

    Parameters
    ----------
    book : Book
    folder : path-like
        Created if needed. Each file is written atomically; ``book.json`` is
        written last, so a folder without it is not a complete snapshot.

    Returns
    -------
    Path
        ``folder``.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> from renewforecast.io.snapshot import read_snapshot, write_snapshot
    >>> book = rf.Book.empty("EUR")
    >>> folder = write_snapshot(book, tempfile.mkdtemp())
    >>> read_snapshot(folder).fingerprint == book.fingerprint
    True
    """
    folder = Path(folder)
    write_canonical(book, folder, format="parquet")
    for name in _EXTRA:
        atomic_write_bytes(folder / f"{name}.parquet", _parquet_bytes(getattr(book, name)))
    if book.set_aside:
        (folder / _SET_ASIDE).mkdir(exist_ok=True)
        for name, frame in book.set_aside.items():
            atomic_write_bytes(folder / _SET_ASIDE / f"{name}.parquet", _parquet_bytes(frame))
    manifest = {
        "format": _FORMAT,
        "fingerprint": book.fingerprint,
        "currency": book.currency,
        "source": book.source,
        "known_as_of": _iso(book.known_as_of),
        "loaded_fingerprint": book.loaded_fingerprint,
        "set_aside": sorted(book.set_aside),
    }
    atomic_write_text(folder / SNAPSHOT_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return folder


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise SnapshotError(f"Book snapshot file {path} cannot be read ({type(exc).__name__}: {exc}).") from exc


def read_snapshot(folder: str | Path) -> Book:
    """Read a Book written by :func:`write_snapshot`.

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    Book
        The Book that was written: same tables (same fingerprint), currency,
        source, warnings and rows set aside.

    Raises
    ------
    SnapshotError
        If ``folder`` holds no snapshot, a file is missing or unreadable, or
        the tables no longer have the fingerprint recorded in ``book.json``.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> from renewforecast.io.snapshot import read_snapshot, write_snapshot
    >>> folder = write_snapshot(rf.Book.empty(), tempfile.mkdtemp())
    >>> read_snapshot(folder).currency
    'USD'
    """
    folder = Path(folder)
    try:
        manifest: dict[str, Any] = json.loads((folder / SNAPSHOT_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SnapshotError(
            f"{folder} is not a complete Book snapshot: {SNAPSHOT_MANIFEST} cannot be read ({type(exc).__name__})."
        ) from exc
    if manifest.get("format") != _FORMAT:
        raise SnapshotError(
            f"{folder} holds a Book snapshot of format {manifest.get('format')!r}; this version "
            f"of renewforecast reads format {_FORMAT}."
        )
    tables = {name: _read(folder / f"{name}.parquet") for name in TABLES}
    extras = {name: _read(folder / f"{name}.parquet") for name in _EXTRA}
    set_aside = {name: _read(folder / _SET_ASIDE / f"{name}.parquet") for name in manifest["set_aside"]}
    known = manifest.get("known_as_of")
    book = Book(
        **tables,
        currency=manifest["currency"],
        source=manifest["source"],
        set_aside=set_aside,
        known_as_of=None if known is None else pd.Timestamp(known),
        loaded_fingerprint=manifest.get("loaded_fingerprint"),
        **extras,
    )
    if book.fingerprint != manifest["fingerprint"]:
        raise SnapshotError(
            f"The Book snapshot in {folder} changed after it was written (fingerprint "
            f"{book.fingerprint[:12]}, recorded {manifest['fingerprint'][:12]}); it was not used."
        )
    return book
