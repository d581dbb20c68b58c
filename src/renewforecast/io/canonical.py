"""Canonical folders: one file per canonical table, canonical column names."""

from __future__ import annotations

import io
from pathlib import Path

from renewforecast.atomic import atomic_write_bytes, atomic_write_text
from renewforecast.book import Book
from renewforecast.schemas import TABLES

__all__ = ["write_canonical"]


def write_canonical(book: Book, out: str | Path, *, format: str = "parquet") -> list[Path]:
    """Write a Book as a canonical folder that :func:`renewforecast.load_book` reads back.

    Parameters
    ----------
    book : Book
    out : path-like
        Folder to write into (created if needed); each file atomically.
    format : {"parquet", "csv"}, default "parquet"
        Parquet keeps types exactly and is fast; CSV is for people and other
        tools (dates as ``YYYY-MM-DD``, blanks for missing values).

    Returns
    -------
    list of Path

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> paths = rf.write_canonical(rf.Book.empty(), tempfile.mkdtemp(), format="csv")
    >>> sorted(p.name for p in paths)[:2]
    ['accounts.csv', 'contracts.csv']
    """
    if format not in ("parquet", "csv"):
        raise ValueError("format must be 'parquet' or 'csv'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in book.tables.items():
        path = out / f"{name}.{format}"
        if format == "parquet":
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            atomic_write_bytes(path, buf.getvalue())
        else:
            # Timestamps keep their time of day; dates are written as dates.
            frame = frame.copy()
            for col in TABLES[name].columns:
                if col.kind == "datetime" and col.name in frame:
                    frame[col.name] = frame[col.name].dt.strftime("%Y-%m-%dT%H:%M:%S").astype(object)
            # The shortest text that reads back to the same float.
            atomic_write_text(
                path,
                frame.to_csv(
                    index=False, date_format="%Y-%m-%d", lineterminator="\n", float_format=lambda x: repr(float(x))
                ),
            )
        written.append(path)
    return written
