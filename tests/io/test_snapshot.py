"""A report run's Book snapshot: written once, read back as the very same Book by every notebook."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import renewforecast as rf
from renewforecast.io.snapshot import SNAPSHOT_MANIFEST, SnapshotError, read_snapshot, write_snapshot


def _same_book(a: rf.Book, b: rf.Book) -> None:
    assert a.fingerprint == b.fingerprint
    for name, frame in a.tables.items():
        pd.testing.assert_frame_equal(frame, b.tables[name], check_dtype=True)
    pd.testing.assert_frame_equal(a.warnings, b.warnings)
    pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
    assert a.set_aside.keys() == b.set_aside.keys()
    for name, frame in a.set_aside.items():
        pd.testing.assert_frame_equal(frame, b.set_aside[name])
    assert (a.currency, a.source, a.known_as_of, a.loaded_fingerprint) == (
        b.currency,
        b.source,
        b.known_as_of,
        b.loaded_fingerprint,
    )


def test_a_snapshot_reads_back_as_the_same_book(demo_book, tmp_path):
    assert len(demo_book.warnings)  # the loader's warnings travel with the data
    _same_book(demo_book, read_snapshot(write_snapshot(demo_book, tmp_path / "snap")))
    # A snapshot is also a canonical Parquet folder.
    assert rf.load_book(tmp_path / "snap").fingerprint == demo_book.fingerprint


def test_a_cut_book_and_rows_set_aside_survive(org_copy, tmp_path):
    from _support import edit_sf

    edit_sf(org_copy, "Contract.csv", 2, "StartDate", "not a date")
    book = rf.load_book(org_copy, on_error="quarantine")
    assert len(book.quarantine) and book.set_aside
    _same_book(book, read_snapshot(write_snapshot(book, tmp_path / "q")))
    cut = book.as_of("2025-06-30")
    _same_book(cut, read_snapshot(write_snapshot(cut, tmp_path / "cut")))


def test_an_empty_book_round_trips(tmp_path):
    _same_book(rf.Book.empty("EUR"), read_snapshot(write_snapshot(rf.Book.empty("EUR"), tmp_path)))


def test_a_changed_or_incomplete_snapshot_is_refused(demo_book, tmp_path):
    folder = write_snapshot(demo_book, tmp_path / "snap")
    accounts = pd.read_parquet(folder / "accounts.parquet")
    accounts.iloc[:-1].to_parquet(folder / "accounts.parquet", index=False)
    with pytest.raises(SnapshotError, match="changed after it was written"):
        read_snapshot(folder)
    (folder / SNAPSHOT_MANIFEST).unlink()
    with pytest.raises(SnapshotError, match="not a complete Book snapshot"):
        read_snapshot(folder)
    other = write_snapshot(demo_book, tmp_path / "other")
    manifest = json.loads((other / SNAPSHOT_MANIFEST).read_text())
    (other / SNAPSHOT_MANIFEST).write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(SnapshotError, match="format 99"):
        read_snapshot(other)


def test_report_book_reads_the_snapshot_not_the_source(demo_book, tmp_path, monkeypatch):
    folder = write_snapshot(demo_book, tmp_path / "snap")
    assert rf.report_book("no/such/export", folder).fingerprint == demo_book.fingerprint
    # Without a snapshot a relative source is looked for from the working folder upward.
    (tmp_path / "data" / "demo").mkdir(parents=True)
    deep = tmp_path / "src" / "pkg" / "notebooks"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert rf.report_path("data/demo") == str(tmp_path.resolve() / "data" / "demo")
    assert rf.report_path("/abs/path") == "/abs/path"
    assert rf.report_path("nowhere/at/all") == "nowhere/at/all"
