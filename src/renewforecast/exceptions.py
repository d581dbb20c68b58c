"""Exceptions and warnings raised by renewforecast.

Every error a user can cause by giving bad input derives from
:class:`RenewForecastError`, so a batch job can catch one class and report
its message.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd

__all__ = [
    "EXIT_CANNOT_WRITE",
    "EXIT_SET_ASIDE",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "BookValidationError",
    "EmptyBookError",
    "OutputPathError",
    "Problem",
    "RenewForecastError",
    "ReportRunError",
    "location",
]


#: Exit code of a command that did its work (scores written, run published)
#: but set rows aside (``--on-error quarantine``): a scheduler alerts on it.
EXIT_SET_ASIDE = 8
#: Exit code of a command that could not write its output (the folder is
#: under a file, not writable, or the disk is full); the input is untouched.
EXIT_CANNOT_WRITE = 9
#: Exit codes of a report run stopped by SIGINT (Ctrl-C) or SIGTERM, the
#: shell's 128 + signal number, so a scheduler reads them as it would for a
#: process the signal had killed.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

# errno -> the cause in words; anything else uses the system's own text.
_WRITE_CAUSES = {
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "it exists and is not a folder",
    errno.EISDIR: "it is a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is too large for the file system",
}
#: errno values that mean "this output cannot be written here".
WRITE_ERRNOS = frozenset(_WRITE_CAUSES)


class RenewForecastError(Exception):
    """Base class of every error renewforecast raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in the input files.

    Parameters
    ----------
    file : str
        File name the problem was found in (``"Contract.csv"``), or ``""``
        when it concerns the set of files as a whole.
    line : int or None
        1-based physical line number in that file; the header is line 1, so
        the first record is line 2. ``None`` for file-level problems.
    record_id : str
        Id of the record (``Id`` column), or ``""`` when unknown.
    column : str
        Column name as it appears in the file, or ``""``.
    rule : str
        Short stable name of the rule broken, e.g. ``"unparseable_date"``.
    message : str
        What is wrong, in words, with the offending value.
    severity : {"error", "warning"}
        Errors stop loading; warnings are kept on the Book.

    Examples
    --------
    >>> p = Problem("Contract.csv", 7, "800A", "EndDate", "end_before_start",
    ...             "EndDate 2024-01-01 is before StartDate 2024-06-01")
    >>> str(p)
    'Contract.csv line 7 [id 800A] column EndDate: end_before_start: EndDate 2024-01-01 is before StartDate 2024-06-01'
    """

    file: str
    line: int | None
    record_id: str
    column: str
    rule: str
    message: str
    severity: str = "error"

    def where(self) -> str:
        """File, line, record id and column, leaving out what is unknown."""
        return location(self.file, self.line, self.record_id, self.column)

    def __str__(self) -> str:
        return f"{self.where()}: {self.rule}: {self.message}"


def location(file: str, line, record_id: str, column: str) -> str:
    """``Contract.csv line 7 [id 800A] column EndDate``, leaving out what is unknown.

    Examples
    --------
    >>> location("spend.csv", None, "", "")
    'spend.csv'
    """
    where = file or "input"
    if line is not None and not pd.isna(line):
        where += f" line {int(line)}"
    if record_id:
        where += f" [id {record_id}]"
    if column:
        where += f" column {column}"
    return where


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """Return problems as a tidy DataFrame, one row per problem."""
    cols = ["file", "line", "record_id", "column", "rule", "message", "severity"]
    rows = [asdict(p) for p in problems]
    frame = pd.DataFrame(rows, columns=cols)
    frame["line"] = frame["line"].astype("Int64")
    return frame


class BookValidationError(RenewForecastError):
    """The input files break one or more rules; nothing was loaded.

    The message lists every problem found in one pass (file, line, record id,
    column and rule), so a user can fix them all before trying again.

    Attributes
    ----------
    problems : list of Problem
        Every error found, in file and line order.
    warnings : list of Problem
        Soft problems found in the same pass.
    """

    max_listed = 200

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None):
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        super().__init__(self._message())

    def _message(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found in the input files:"
        lines = [f"  - {p}" for p in self.problems[: self.max_listed]]
        if n > self.max_listed:
            lines.append(f"  ... and {n - self.max_listed} more (see .problems)")
        return "\n".join([head, *lines])

    @property
    def frame(self) -> pd.DataFrame:
        """Every error as a DataFrame (file, line, record_id, column, rule, ...)."""
        return problems_frame(self.problems)


class ReportRunError(RenewForecastError):
    """A report run failed; nothing was published.

    Attributes
    ----------
    exit_code : int
        The process exit code that the command line uses for this cause.
    failed_dir : str or None
        Where the partial notebooks were kept for debugging.
    """

    def __init__(self, message: str, *, exit_code: int = 1, failed_dir: str | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.failed_dir = failed_dir


class EmptyBookError(RenewForecastError):
    """The Book holds no contracts, so there is nothing to score, forecast or report.

    It happens with a header-only export, or when ``on_error="quarantine"``
    set every contract aside.
    """


class OutputPathError(RenewForecastError, OSError):
    """An output could not be written; nothing was changed in the input.

    It is also an :class:`OSError` (with the original ``errno``), so code that
    already catches ``OSError`` keeps working.

    Attributes
    ----------
    path : str
        The output path the command was asked to write.
    cause : str
        Why, in words ("permission denied", "no space left on the device").
    exit_code : int
        :data:`EXIT_CANNOT_WRITE`.

    Examples
    --------
    >>> import errno
    >>> err = OutputPathError.from_os_error("out/scores.csv", OSError(errno.ENOSPC, "No space left on device"))
    >>> err.cause, err.exit_code
    ('no space left on the device', 9)
    """

    exit_code = EXIT_CANNOT_WRITE

    def __init__(self, message: str, *, path: str, cause: str, errno_: int | None = None):
        super().__init__(message)
        self.path = path
        self.cause = cause
        self.errno = errno_

    @classmethod
    def from_os_error(
        cls,
        path: str | os.PathLike[str],
        exc: OSError,
        what: str = "the output",
        done: str = "Nothing was written and the input data is unchanged",
    ) -> OutputPathError:
        """Describe ``exc``, raised while writing ``path``, in one paragraph ending with ``done``."""
        cause = _WRITE_CAUSES.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
        culprit = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        message = (
            f"Cannot write {what} to {path}: {cause}{culprit}. {done}; choose another location, "
            "or free space or fix the permissions, and run again."
        )
        return cls(message, path=str(path), cause=cause, errno_=exc.errno)


def is_write_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an OSError meaning "this output cannot be written here".

    Examples
    --------
    >>> import errno
    >>> is_write_error(OSError(errno.ENOSPC, "full")), is_write_error(ValueError())
    (True, False)
    """
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS
