"""What a report notebook's setup cell calls: the Book to report on, and the paths its parameters name.

A notebook run by ``renewforecast report`` receives ``snapshot``, the run's
Book written once by the runner, and reads it instead of the export; opened
in JupyterLab it reads ``source`` itself. Relative defaults such as
``"data/demo"`` are looked for from the working folder upward, so the same
notebook finds a checkout's demo org whether it is opened from the package's
template folder or from a copy beside ``data/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from renewforecast.book import Book
from renewforecast.io.loader import load_book
from renewforecast.io.snapshot import read_snapshot

__all__ = ["report_book", "report_path"]


def report_path(path: str | os.PathLike[str] | None) -> str | None:
    """The path a notebook parameter names: as given if absolute or found here, else found in a parent folder.

    Parameters
    ----------
    path : path-like or None
        A relative path is looked for in the working folder, then in each
        folder above it; the nearest match wins.

    Returns
    -------
    str or None
        The path found, or ``path`` unchanged when it is absolute, None, or
        found nowhere (so that the error that follows names what was asked for).

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "data" / "demo").mkdir(parents=True)
    >>> (root / "notebooks").mkdir()
    >>> here = os.getcwd()
    >>> os.chdir(root / "notebooks")
    >>> report_path("data/demo") == str(root.resolve() / "data" / "demo")
    True
    >>> report_path("no/such/folder")
    'no/such/folder'
    >>> os.chdir(here)
    """
    if path is None:
        return None
    given = Path(path)
    if given.is_absolute():
        return str(given)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / given).exists():
            return str(folder / given)
    return str(path)


def report_book(
    source: str | os.PathLike[str] | None, snapshot: str | os.PathLike[str] | None = None, **load_options: Any
) -> Book:
    """The Book a report notebook works on: the run's snapshot if given, else ``source`` loaded.

    Parameters
    ----------
    source : path-like
        The export (or canonical folder); a relative path is found with
        :func:`report_path`. Not read when ``snapshot`` is given.
    snapshot : path-like, optional
        A snapshot written by :func:`renewforecast.io.snapshot.write_snapshot`
        (``renewforecast report`` passes the run's): the export as the run
        read and validated it.
    **load_options
        Passed to :func:`renewforecast.load_book` when ``source`` is read
        (``encoding``, ``on_error``, ``date_format``, ``currency``, ``date_window``).

    Returns
    -------
    Book

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> from renewforecast.io.snapshot import write_snapshot
    >>> folder = write_snapshot(rf.Book.empty("EUR"), tempfile.mkdtemp())
    >>> report_book("data/not-read", snapshot=folder).currency
    'EUR'
    """
    if snapshot is not None:
        return read_snapshot(snapshot)
    return load_book(report_path(source), **load_options)
