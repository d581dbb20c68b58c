"""Read a CSV or Parquet file into strings, remembering where each record came from.

Reading is explicit: every cell is read as text (so ids such as ``0012`` and
names such as ``NA`` survive), blank means missing, and the encoding is either
declared or detected from a byte-order mark. Typed parsing then converts
column by column and reports every cell it cannot read, rather than guessing.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from renewforecast.exceptions import Problem

__all__ = ["MAX_ABS_NUMBER", "RawTable", "calendar_date", "parse_column", "read_raw", "shown", "unreadable"]

#: How much of a cell or header name a message repeats: enough to find it in
#: the file, never enough to leak a file's content (a secret, a whole line).
SHOWN_CHARS = 40

#: No number in an export reaches this: past it a float no longer holds every
#: integer exactly, and no price, quantity, term or signal is that large; a
#: value beyond it is a damaged or shifted cell.
MAX_ABS_NUMBER = 1e15


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A cell or header as a message quotes it: repr'd and cut to ``limit`` characters.

    Examples
    --------
    >>> shown("DB_PASSWORD=hunter2-and-a-long-secret-that-goes-on-and-on")
    "'DB_PASSWORD=hunter2-and-a-long-secret-th...'"
    >>> shown("2021")
    "'2021'"
    """
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


_FULL_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}.*)?$")


def calendar_date(text: object, date_format: str = "%m/%d/%Y") -> dt.date | None:
    """The calendar date a cell spells out in full, whatever its year; else None.

    Used to tell a real date outside the range a Book can hold from text that
    is not a date at all.

    Examples
    --------
    >>> calendar_date("1500-03-01"), calendar_date("2021"), calendar_date("02/30/2024")
    (datetime.date(1500, 3, 1), None, None)
    """
    if not isinstance(text, str):
        return None
    m = _FULL_ISO.match(text.strip())
    try:
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        return dt.datetime.strptime(text.strip(), date_format).date()
    except ValueError:
        return None


def unreadable(text: object, kind: str, date_format: str = "%m/%d/%Y") -> tuple[str, str]:
    """Rule and message for a cell :func:`parse_column` could not read.

    Examples
    --------
    >>> unreadable("1e308", "float")[0], unreadable("inf", "float")[0], unreadable("abc", "float")[0]
    ('number_out_of_range', 'not_finite', 'unparseable_number')
    >>> unreadable("3000-01-01", "date")[0], unreadable("2021", "date")[0]
    ('date_out_of_range', 'unparseable_date')
    """
    if kind in ("date", "datetime"):
        day = calendar_date(text, date_format)
        if day is not None:
            return "date_out_of_range", (
                f"{shown(text)} is a date outside the range a Book can hold "
                f"({pd.Timestamp.min:%Y-%m-%d} to {pd.Timestamp.max:%Y-%m-%d})"
            )
        return "unparseable_date", (
            f"cannot read {shown(text)} as a date: a full date is needed "
            f"(ISO YYYY-MM-DD, an API datetime or {date_format}); nothing is guessed"
        )
    if kind in ("float", "int"):
        try:
            value = float(str(text).replace(",", "")) if isinstance(text, str) else float(text)
        except (TypeError, ValueError):
            value = None
        if value is not None and np.isnan(value):
            return "not_finite", f"{shown(text)} is not a number (NaN): a value or a blank is needed"
        if value is not None and np.isinf(value) and isinstance(text, str) and "inf" in text.lower():
            return "not_finite", f"{shown(text)} is infinite"
        if value is not None and (np.isinf(value) or abs(value) >= MAX_ABS_NUMBER):
            return "number_out_of_range", (
                f"{shown(text)} is beyond any real value (at most "
                f"{MAX_ABS_NUMBER:.0e} in size): a damaged or shifted cell"
            )
        if value is not None and kind == "int":
            return "unparseable_number", f"{shown(text)} is not a whole number"
        return "unparseable_number", f"cannot read {shown(text)} as a number"
    if kind == "bool":
        return "unparseable_boolean", f"cannot read {shown(text)} as true or false"
    return "unparseable_value", f"cannot read {shown(text)}"


@dataclass
class RawTable:
    """A file read as text: cells, the physical line of each record, notes."""

    file: str
    frame: pd.DataFrame  # object columns of str, None where blank
    lines: np.ndarray  # 1-based physical line where each record starts
    encoding: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)


_CANDIDATES = ("utf-8", "cp1252", "latin-1")


def _readers(raw: bytes) -> list[str]:
    """The common encodings that decode every byte of ``raw``."""
    ok = []
    for enc in _CANDIDATES:
        try:
            raw.decode(enc)
        except UnicodeDecodeError:
            continue
        ok.append(enc)
    return ok


def _decode(raw: bytes, name: str, encoding: str | None) -> tuple[str | None, str, list[Problem], list[Problem]]:
    problems: list[Problem] = []
    warnings: list[Problem] = []

    def where(err: UnicodeDecodeError) -> tuple[int, str]:
        line = raw[: err.start].count(b"\n") + 1
        return line, raw[err.start : err.end].hex(" ")

    def decode_error(enc: str, err: UnicodeDecodeError) -> Problem:
        line, bad = where(err)
        readers = [e for e in _readers(raw) if e != enc]
        advice = (
            f"encodings that read the whole file: {', '.join(repr(e) for e in readers)}"
            if readers
            else "no common encoding reads the whole file"
        )
        return Problem(
            name,
            line,
            "",
            "",
            "encoding",
            f"byte(s) {bad} at byte offset {err.start} (line {line}) are not valid {enc}; {advice}",
        )

    if encoding not in (None, "auto"):
        enc = codecs.lookup(encoding).name
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError as err:
            return None, enc, [decode_error(enc, err)], warnings
        if enc.startswith("utf-8") and text.startswith("\ufeff"):
            text = text[1:]
        return text, enc, problems, warnings

    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError as err:
                return None, enc, [decode_error(enc, err)], warnings
            return text.lstrip("\ufeff"), enc, problems, warnings
    try:
        return raw.decode("utf-8"), "utf-8", problems, warnings
    except UnicodeDecodeError as utf8_err:
        # Salesforce Data Loader writes the platform encoding unless told to
        # write UTF-8; on Windows that is cp1252. cp1252 leaves five bytes
        # undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D), which real exports do
        # contain; latin-1 reads every byte, so it is the last resort.
        line, bad = where(utf8_err)
        try:
            text, enc = raw.decode("cp1252"), "cp1252"
            why = ""
        except UnicodeDecodeError as cp_err:
            text, enc = raw.decode("latin-1"), "latin-1"
            cp_line, cp_bad = where(cp_err)
            why = f"; not cp1252 either (byte(s) {cp_bad} at byte offset {cp_err.start}, line {cp_line})"
        warnings.append(
            Problem(
                name,
                line,
                "",
                "",
                "encoding_fallback",
                f"{name} is not valid UTF-8 (byte(s) {bad} at byte offset {utf8_err.start}){why}: read as {enc}; "
                f"pass encoding={enc!r} to make this explicit",
                "warning",
            )
        )
        return text, enc, problems, warnings


def read_raw(path: str | Path, encoding: str | None = None) -> RawTable:
    """Read one CSV or Parquet file as text cells with their line numbers.

    Parameters
    ----------
    path : path-like
        ``.csv`` or ``.parquet`` file. The file is opened read-only.
    encoding : str, optional
        Declared text encoding. By default a byte-order mark decides (UTF-8
        or UTF-16); without one UTF-8 is tried, then cp1252, then latin-1
        (which reads any byte), with a warning naming the encoding chosen.

    Returns
    -------
    RawTable
        Problems (unreadable bytes, duplicate headers) are returned on it,
        not raised, so that every file's problems can be reported together.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "Account.csv"
    >>> _ = p.write_bytes("Id,Name\\n0012,NA\\n".encode())
    >>> t = read_raw(p)
    >>> t.frame.iloc[0].tolist(), int(t.lines[0])
    (['0012', 'NA'], 2)
    """
    path = Path(path)
    name = path.name
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
        lines = np.arange(1, len(frame) + 1, dtype=np.int64)
        return RawTable(name, frame, lines, "parquet")
    raw = path.read_bytes()
    text, enc, problems, warnings = _decode(raw, name, encoding)
    if text is None:
        return RawTable(name, pd.DataFrame(), np.empty(0, dtype=np.int64), enc, problems, warnings)
    first_line = text.split("\n", 1)[0].rstrip("\r")
    header = next(csv.reader([first_line]), []) if first_line else []
    if not header:
        problems.append(Problem(name, 1, "", "", "empty_file", "file has no header row"))
        return RawTable(name, pd.DataFrame(), np.empty(0, dtype=np.int64), enc, problems, warnings)
    seen: set[str] = set()
    keep_cols: list[int] = []
    for i, col in enumerate(header):
        if col in seen:
            problems.append(
                Problem(
                    name,
                    1,
                    "",
                    col,
                    "duplicate_column",
                    f"column {col!r} appears more than once; only the first is read",
                )
            )
            continue
        seen.add(col)
        keep_cols.append(i)
    fast = _fast_frame(text, header)
    if fast is not None:
        frame, lines = fast
        frame = frame.iloc[:, keep_cols]
        frame.columns = [str(header[i]).strip() for i in keep_cols]
        frame = _tidy(frame, _padded(text)) if len(frame) else frame
        if not text.endswith("\n") and len(frame):
            warnings.append(_no_final_break(name, int(lines[-1])))
        return RawTable(name, frame, lines, enc, problems, warnings)
    records, lines, shape_problems = _records(text, name, len(header))
    problems.extend(shape_problems)
    if not text.endswith("\n") and records:
        warnings.append(_no_final_break(name, int(lines[-1])))
    width = len(header)
    # Short records were reported; they are padded so that the rest can be checked.
    if shape_problems:
        records = [r[:width] + [""] * (width - len(r)) if len(r) != width else r for r in records]
    columns = list(zip(*records, strict=False)) if records else [()] * width
    frame = pd.DataFrame({str(header[i]).strip(): pd.Series(columns[i], dtype=object) for i in keep_cols})
    frame = _tidy(frame, True) if len(frame) else frame
    for col in frame.columns if "\x00" in text else ():
        has_nul = frame[col].str.contains("\x00", regex=False, na=False).to_numpy()
        for r in np.flatnonzero(has_nul):
            problems.append(
                Problem(
                    name,
                    int(lines[r]),
                    "",
                    col,
                    "nul_byte",
                    "the cell holds a NUL byte (0x00): its value cannot be trusted "
                    "(a damaged export or a binary field)",
                )
            )
    return RawTable(name, frame, np.asarray(lines, dtype=np.int64), enc, problems, warnings)


#: Whitespace at the start or end of some cell (quoted or not). Without it
#: no cell needs stripping, which on a file thousands of columns wide is
#: most of the reading time.
_RARE_SPACE = re.compile("[\t\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_SPACE_AT_EDGE = (" ,", ", ", " \n", "\n ", " \r", ' "', '" ')


def _padded(text: str) -> bool:
    """Whether some cell may start or end with whitespace (substring scans: files may be wide)."""
    return (
        text[:1] == " "
        or text[-1:] == " "
        or any(s in text for s in _SPACE_AT_EDGE)
        or _RARE_SPACE.search(text) is not None
    )


def _tidy(frame: pd.DataFrame, strip: bool) -> pd.DataFrame:
    """Cells stripped of surrounding whitespace (when any has some), blank as None."""
    if strip:
        frame = frame.apply(lambda s: s.str.strip())
    return frame.replace("", None)


def _no_final_break(name: str, line: int) -> Problem:
    return Problem(
        name,
        line,
        "",
        "",
        "no_final_line_break",
        "the file does not end with a line break: if it was cut short, this last record is "
        "incomplete (compare it with the source)",
        "warning",
    )


_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def _fast_frame(text: str, header: list[str]) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The common, sound file read by pandas' C parser; ``None`` when anything needs a closer look.

    Sound means: no NUL byte, one record per physical line (no quoted line
    breaks, no blank lines) and every line with as many fields as the
    header, counted outside quotes. Anything else goes to :func:`_records`,
    which reads record by record and names each problem's line.
    """
    if "\x00" in text:
        return None
    body = text.split("\n")[1:]
    if body and body[-1] in ("", "\r"):
        body = body[:-1]
    lines = pd.Series(body, dtype=object)
    if len(lines) and ((lines == "") | (lines == "\r")).any():
        return None
    # Quoted segments may hold commas; a quote left open would swallow the rest.
    if len(lines) and (lines.str.count('"') % 2 == 1).any():
        return None
    commas = lines.str.count(",")
    quoted = lines.str.contains('"', regex=False).to_numpy()
    if quoted.any():  # (the regex only where a line has quotes: lines may be very long)
        commas[quoted] = lines[quoted].str.replace(_QUOTED, "", regex=True).str.count(",")
    if len(lines) and (commas != len(header) - 1).any():
        return None
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            header=0,
            names=list(range(len(header))),
        )
    except (pd.errors.ParserError, csv.Error, ValueError):
        return None
    if len(frame) != len(lines):
        return None
    return frame, np.arange(2, len(frame) + 2, dtype=np.int64)


def _records(text: str, name: str, width: int) -> tuple[list[list[str]], list[int], list[Problem]]:
    """Every record after the header with the physical line it starts on, and shape problems.

    Read with Python's csv module, which counts quoted line breaks, so a
    record's line is the line an editor shows; blank lines are skipped.
    """
    problems: list[Problem] = []
    records: list[list[str]] = []
    lines: list[int] = []
    # A long text field (a description pasted into a CRM) is no error.
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    prev_end = 0
    try:
        for i, row in enumerate(reader):
            start = prev_end + 1
            prev_end = reader.line_num
            if i == 0 or not row or row == [""]:
                continue
            records.append(row)
            lines.append(start)
            if len(row) != width:
                rule = "short_row" if len(row) < width else "long_row"
                problems.append(
                    Problem(
                        name,
                        start,
                        "",
                        "",
                        rule,
                        f"the record has {len(row)} field(s) but the header has {width}: "
                        + (
                            "a field is missing (values would land in the wrong columns)"
                            if len(row) < width
                            else "an unquoted comma or an extra field"
                        ),
                    )
                )
    except csv.Error as err:
        problems.append(
            Problem(
                name,
                prev_end + 1,
                "",
                "",
                "malformed_csv",
                f"the CSV cannot be read from line {prev_end + 1} on: {err} (usually a quote that is never closed)",
            )
        )
    return records, lines, problems


# ---------------------------------------------------------------- typed parsing

_ISO_DATE = "%Y-%m-%d"
_ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def _parse_dates(values: pd.Series, date_format: str, keep_time: bool = False) -> tuple[pd.Series, np.ndarray]:
    out = pd.to_datetime(values, format=_ISO_DATE, errors="coerce")
    todo = values.notna() & out.isna()
    if todo.any():
        # Salesforce API / Data Loader datetimes: 2024-01-15T10:23:00.000Z or
        # +0000. They are UTC instants; the date is taken in UTC.
        # Only a full date and time: ISO 8601 also reads "2021" and "2021-03",
        # which would be guesses.
        full = todo & values.astype("string").str.match(_ISO_DATETIME).fillna(False).astype(bool)
        stamp = pd.to_datetime(values[full], format="ISO8601", utc=True, errors="coerce").dt.tz_convert(None)
        out.loc[full] = stamp if keep_time else stamp.dt.normalize()
        todo = values.notna() & out.isna()
    if todo.any():
        # Report exports use the user's locale: one explicit format, never
        # a guess between 01/02 and 02/01.
        for fmt in (date_format, date_format + " %I:%M %p", date_format + " %H:%M"):
            parsed = pd.to_datetime(values[todo], format=fmt, errors="coerce")
            out.loc[todo] = parsed if keep_time else parsed.dt.normalize()
            todo = values.notna() & out.isna()
            if not todo.any():
                break
    return out.astype("datetime64[ns]"), todo.to_numpy()


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    text = values.astype(object)
    present = text.notna().to_numpy()
    # Python's own parser, correctly rounded, over the whole column at C
    # speed; only a column holding something else (a blank made of spaces,
    # thousands separators, text) takes the cell-by-cell path below.
    try:
        cells = np.where(present, text.to_numpy(dtype=object), "nan")
        out = np.fromiter(map(float, cells), dtype="float64", count=len(cells))
    except (TypeError, ValueError):
        return _parse_numbers_closely(_blank_to_none(text))
    return _bounded(pd.Series(out, index=values.index), present)


def _blank_to_none(values: pd.Series) -> pd.Series:
    return values.where(values.map(lambda x: not (isinstance(x, str) and x.strip() == "")), None)


def _parse_numbers_closely(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    text = values.astype(object)
    has_sep = text.str.contains(",", regex=False, na=False)
    if has_sep.any():
        ok_sep = text[has_sep].str.match(_THOUSANDS)
        text = text.copy()
        text.loc[ok_sep[ok_sep].index] = text.loc[ok_sep[ok_sep].index].str.replace(",", "", regex=False)
    out = pd.to_numeric(text, errors="coerce").astype("float64")
    # pandas' fast parser can be off in the last digit past 15 significant
    # digits; such numbers (a canonical CSV of converted amounts) are read
    # with Python's correctly rounded parser.
    long = (text.str.len() > 15).fillna(False).to_numpy() & np.isfinite(out.to_numpy())
    if long.any():
        out[long] = [float(x) for x in text[long]]
    return _bounded(out, values.notna().to_numpy())


def _bounded(out: pd.Series, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    with np.errstate(invalid="ignore"):
        bad = present & ~(np.abs(out.to_numpy(dtype="float64")) < MAX_ABS_NUMBER)
    out = out.copy()
    out[bad] = np.nan
    return out, bad


def parse_column(values: pd.Series, kind: str, *, date_format: str = "%m/%d/%Y") -> tuple[pd.Series, np.ndarray]:
    """Convert one text column to its canonical kind.

    Parameters
    ----------
    values : Series
        Text cells (``None`` for blank), or an already typed column read from
        Parquet.
    kind : {"id", "str", "cat", "date", "datetime", "float", "int", "bool"}
        The canonical column kind.
    date_format : str, default "%m/%d/%Y"
        The one non-ISO date format accepted (Salesforce report exports use
        the user's locale; ``"%d/%m/%Y"`` for day-first locales).

    Returns
    -------
    values : Series
        Typed values, missing where blank or unreadable.
    bad : ndarray of bool
        Cells that were not blank but could not be read.

    Examples
    --------
    >>> import pandas as pd
    >>> v, bad = parse_column(pd.Series(["2024-01-31", "1/2/2024", "31/01/2024", None]), "date")
    >>> [str(x.date()) if pd.notna(x) else None for x in v], bad.tolist()
    (['2024-01-31', '2024-01-02', None, None], [False, False, True, False])
    """
    values = values.reset_index(drop=True)
    if values.dtype == object and kind not in ("float", "int"):
        values = _blank_to_none(values)  # (numbers do it themselves, only where needed)
    n = len(values)
    if kind in ("id", "str", "cat"):
        if pd.api.types.is_float_dtype(values):
            # Parquet written by a tool that typed an id column as numbers:
            # render integers without a trailing .0.
            text = values.map(lambda x: None if pd.isna(x) else (str(int(x)) if float(x).is_integer() else str(x)))
        else:
            text = values.map(lambda x: None if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x))
        out = text.astype("string")
        if kind == "cat":
            out = out.str.strip().str.lower()
        return out, np.zeros(n, dtype=bool)
    if kind in ("date", "datetime"):
        keep_time = kind == "datetime"  # a timestamp keeps its time of day (UTC)
        if pd.api.types.is_datetime64_any_dtype(values):
            v = values.dt.tz_convert(None) if getattr(values.dt, "tz", None) is not None else values
            v = v if keep_time else v.dt.normalize()
            return v.astype("datetime64[ns]"), np.zeros(n, dtype=bool)
        return _parse_dates(values.astype(object), date_format, keep_time)
    if kind in ("float", "int"):
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            # Typed columns (Parquet) meet the same bounds as text.
            out, bad = _bounded(values.astype("float64"), values.notna().to_numpy())
        else:
            out, bad = _parse_numbers(values.astype(object))
        if kind == "int":
            frac = out.notna() & (out != out.round())
            bad = bad | frac.to_numpy()
            out = out.where(~frac).round().astype("Int64")
        return out, bad
    if kind == "bool":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean"), np.zeros(n, dtype=bool)
        low = values.astype(object).map(
            lambda x: None if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x).strip().lower()
        )
        out = pd.Series(pd.NA, index=values.index, dtype="boolean")
        out[low.isin(_TRUE).to_numpy()] = True
        out[low.isin(_FALSE).to_numpy()] = False
        bad = (low.notna() & ~low.isin(_TRUE | _FALSE)).to_numpy()
        return out, bad
    raise ValueError(f"unknown column kind {kind!r}")
