"""The reports renewforecast ships: one line each, the only place that names them.

Adding a report is one notebook in ``reports/notebooks/`` (``NN_name.ipynb``,
committed clean, first code cell tagged ``parameters``) and one line in
:data:`REPORTS` saying what history it needs before it can report and which
headline it publishes (whose figures alert rules may watch). A notebook
that is not listed (a team's own, run with ``--notebooks DIR``) still runs; it
just has no history rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from renewforecast.dates import add_months, month_end
from renewforecast.models.evaluation import MIN_DECISIONS
from renewforecast.models.features import renewal_training_set

__all__ = ["REPORTS", "ReportSpec", "earliest_as_of", "history_problems", "report_spec"]


@dataclass(frozen=True)
class ReportSpec:
    """One report: its notebook, what it is about, and the history it needs.

    Parameters
    ----------
    name : str
        The notebook's stem (``NN_name``); ``NN`` sets the order on the index page.
    title : str
        What the report is about, in a few words (the page's own title is the
        notebook's first heading).
    history_months : int
        Months of data it needs before the as-of date; 0 when it works from
        the first month (rates not yet defined are said so).
    needs_decisions : bool
        It backtests the renewal model, so it also needs enough decided renewals
        (:data:`renewforecast.models.evaluation.MIN_DECISIONS`) by the as-of date.
    headline : str, optional
        The name of the headline it publishes in ``run.json`` (its figures are
        listed in :data:`renewforecast.reports.headline.HEADLINE_FIGURES`); None
        when unknown, as for a team's own notebook, which may publish any.

    Examples
    --------
    >>> ReportSpec("05_pipeline", "Pipeline coverage", history_months=12).history_months
    12
    """

    name: str
    title: str
    history_months: int = 0
    needs_decisions: bool = False
    headline: str | None = None


#: The shipped reports, in run order. The renewal backtest needs decided
#: renewals, the lifetime fit a cohort seen over two years, the forecast
#: renewal rates from the last 24 months; the track record grades whatever
#: earlier runs there are (none yet is a finding, not an error).
REPORTS: tuple[ReportSpec, ...] = (
    ReportSpec("00_data_quality", "Data quality", headline="data_quality"),
    ReportSpec("01_revenue_kpis", "Revenue and renewal KPIs", headline="revenue_kpis"),
    ReportSpec("02_renewal_risk", "Renewal risk", history_months=24, needs_decisions=True, headline="renewal_risk"),
    ReportSpec("03_ltv_cac", "Unit economics: CAC, LTV and payback", history_months=24, headline="unit_economics"),
    ReportSpec("04_revenue_forecast", "Revenue forecast", history_months=24, headline="revenue_forecast"),
    ReportSpec("05_track_record", "Track record: earlier runs graded against what happened", headline="track_record"),
)

_BY_NAME = {spec.name: spec for spec in REPORTS}


def report_spec(name: str) -> ReportSpec:
    """The catalogue entry of report ``name`` (a stem or a notebook path); an unlisted one needs no history.

    Examples
    --------
    >>> report_spec("02_renewal_risk").history_months
    24
    >>> report_spec("notebooks/07_team_view.ipynb").history_months
    0
    """
    stem = Path(name).stem
    return _BY_NAME.get(stem, ReportSpec(stem, stem))


def earliest_as_of(first_record, notebook: str) -> pd.Timestamp | None:
    """The first as-of date ``notebook`` can report on, given the data's first day.

    Examples
    --------
    >>> str(earliest_as_of("2021-04-16", "04_revenue_forecast").date())
    '2023-04-30'
    >>> earliest_as_of("2021-04-16", "01_revenue_kpis") is None
    True
    """
    months = report_spec(notebook).history_months
    if not months or first_record is None or pd.isna(first_record):
        return None
    return month_end(add_months(pd.Timestamp(first_record).normalize(), months))


def history_problems(book, day, notebooks: Iterable[str], said: str) -> list[str]:
    """Why each of ``notebooks`` cannot report yet at ``day``, with the earliest date that works.

    Parameters
    ----------
    book : Book
    day : Timestamp
        The as-of date asked for.
    notebooks : iterable of str
        Report names (notebook stems).
    said : str
        How the date is named in the messages (``"--as-of 2023-03-31"``).

    Examples
    --------
    >>> import pandas as pd, renewforecast as rf
    >>> history_problems(rf.Book.empty(), pd.Timestamp("2024-01-31"), ["01_revenue_kpis"], "--as-of 2024-01-31")
    []
    """
    first = book.subscriptions["start_date"].min()
    first_month = [s.name[:2] for s in REPORTS if not s.history_months]
    ready = " and ".join([", ".join(first_month[:-1]), first_month[-1]] if len(first_month) > 1 else first_month)
    out = []
    for name in notebooks:
        spec = report_spec(name)
        earliest = earliest_as_of(first, name)
        if earliest is not None and day < earliest:
            out.append(
                f"{said} is too early for {spec.name}: it needs {spec.history_months // 12} years of data "
                f"and the first subscription starts {first.date()}; the earliest as-of it can report on is "
                f"{earliest.date()} (reports {ready} run from the first month: --notebook)"
            )
        elif spec.needs_decisions and book.data_end is not None:
            out.extend(_decision_problems(book, day, said, spec.name))
    return out


def _decision_problems(book, day, said: str, name: str) -> list[str]:
    """A report that backtests the renewal model needs enough decided renewals by ``day``."""

    def known(d) -> int:
        return len(renewal_training_set(book, d)[0])

    n = known(day)
    if n >= MIN_DECISIONS:
        return []
    # Decisions only accumulate: the first month end with enough is found by bisection.
    ends = pd.date_range(day, book.data_end, freq="ME")
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi) // 2
        if known(ends[mid]) >= MIN_DECISIONS:
            hi = mid
        else:
            lo = mid + 1
    when = (
        f"the earliest as-of with enough is {ends[lo].date()}"
        if lo < len(ends)
        else "the export does not hold enough yet"
    )
    return [
        f"{said} is too early for {name}: {n} renewal decisions are known by then and its "
        f"backtest needs {MIN_DECISIONS}; {when} (the other reports can run: --notebook)"
    ]
