"""Exceptions and warnings raised by renewforecast.

Every error a user can cause by giving bad input derives from
:class:`RenewForecastError`, so a batch job can catch one class and report
its message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd

__all__ = [
    "EXIT_SET_ASIDE",
    "BookValidationError",
    "Problem",
    "RenewForecastError",
    "ReportRunError",
    "location",
]


#: Exit code of a command that did its work (scores written, run published)
#: but set rows aside (``--on-error quarantine``): a scheduler alerts on it.
EXIT_SET_ASIDE = 8


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
