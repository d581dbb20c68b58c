"""Headline figures of each report, shown in the report and gathered on the run's index page.

Each report notebook calls one builder near its top, e.g.
``rf.kpi_headline(book, as_of_date)``. The returned :class:`Headline` shows
as a small table of key figures in the notebook and on its published page,
and carries the same figures as JSON under the MIME type
:data:`HEADLINE_MIME`. :func:`renewforecast.run_reports` reads that JSON back
from the executed notebooks to build ``index.html``, so the index shows
exactly the numbers of the report it links to, computed once.

Numbers are formatted for people by
:func:`renewforecast.reports.formatting.format_value` (re-exported here):
currency with a compact unit (``$1.25M``), thousands separators, percentages
with one decimal.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from renewforecast.analyses.forecast import RevenueForecast
from renewforecast.analyses.nrr_forecast import nrr_forecast
from renewforecast.analyses.saas_metrics import renewal_kpis, retention_kpis
from renewforecast.analyses.scoring import arr_at_risk_by_quarter, expected_renewal_rate
from renewforecast.analyses.track_record import TrackRecord
from renewforecast.analyses.unit_economics import ltv_cac
from renewforecast.book import Book
from renewforecast.dates import last_month_end
from renewforecast.ledger.mrr import mrr_movements, mrr_table
from renewforecast.ledger.set_aside import set_aside_summary
from renewforecast.models.drift import DriftReport
from renewforecast.reports.formatting import format_value

__all__ = [
    "DRIFT_WARNINGS_SHOWN",
    "HEADLINE_FIGURES",
    "HEADLINE_MIME",
    "Headline",
    "data_headline",
    "forecast_headline",
    "format_value",
    "headline_table",
    "kpi_headline",
    "risk_headline",
    "track_record_headline",
    "unit_economics_headline",
]

#: MIME type of the machine-readable headline inside a notebook output.
HEADLINE_MIME = "application/vnd.renewforecast.reports.headline+json"

#: Drift warnings a risk headline lists; the rest are counted.
DRIFT_WARNINGS_SHOWN = 5
#: The figure keys of each headline the shipped reports publish, by headline name,
#: in the order the builders below list them: what ``run.json`` holds under
#: ``headlines`` and what an alert rule may watch (``renewal_risk.arr_at_risk``).
#: Which report publishes which headline is in :data:`renewforecast.reports.catalogue.REPORTS`;
#: a headline listed here that no report publishes is one the run itself adds.
HEADLINE_FIGURES: dict[str, tuple[str, ...]] = {
    "data_quality": ("set_aside", "warnings", "accounts", "contracts", "subscriptions"),
    "revenue_kpis": ("arr", "mrr_bridge", "nrr", "grr", "renewal_rate", "nrr_forward"),
    "renewal_risk": ("arr_at_risk", "expected_renewal"),
    "unit_economics": ("ltv_to_cac", "payback_months"),
    "revenue_forecast": ("horizon_revenue", "next_month"),
    "track_record": ("runs_graded", "forecast_mape_1m", "forecast_coverage_p10_p90", "scores_brier"),
}


@dataclass
class Headline:
    """The key figures of one report.

    Parameters
    ----------
    report : str
        Short name, e.g. ``"revenue_kpis"``.
    title : str
    figures : list of dict
        Each with ``key``, ``label``, ``value``, ``kind`` (see
        :func:`format_value`), optional ``detail`` (a sentence) and optional
        ``secondary`` (True: the index lists it instead of giving it a card).
    series : dict
        Small JSON-ready series the index page draws charts from.
    provenance : dict
        ``as_of``, ``data_fingerprint``, ``currency`` and, when a model was
        used, ``model_version``.
    warnings : list of str
        Short sentences a reader of the figures must not miss (e.g. the
        renewal model's inputs drifted); shown under the figures, on the
        index page and kept in ``run.json``.

    Examples
    --------
    >>> h = Headline("demo", "Demo", [{"key": "arr", "label": "ARR", "value": 1.2e6, "kind": "money"}],
    ...              provenance={"currency": "USD"})
    >>> h.formatted("arr")
    '$1.2M'
    >>> sorted(h._repr_mimebundle_())
    ['application/vnd.renewforecast.reports.headline+json', 'text/html', 'text/plain']
    """

    report: str
    title: str
    figures: list[dict[str, Any]]
    series: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def figure(self, key: str) -> dict[str, Any]:
        """The figure named ``key``."""
        for item in self.figures:
            if item["key"] == key:
                return item
        raise KeyError(key)

    def formatted(self, key: str) -> str:
        """The figure named ``key``, formatted for people."""
        return self.format_figure(self.figure(key))

    def format_figure(self, figure: dict[str, Any]) -> str:
        """A figure of this headline formatted for people, in its currency."""
        return format_value(figure.get("value"), figure.get("kind", "text"), self.provenance.get("currency", "USD"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the index page reads)."""
        return _jsonable(
            {
                "report": self.report,
                "title": self.title,
                "figures": self.figures,
                "series": self.series,
                "provenance": self.provenance,
                "warnings": [str(w) for w in self.warnings],
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Headline:
        """Rebuild a Headline from :meth:`to_dict` output (one written before warnings existed has none)."""
        warnings = data.get("warnings", [])
        if not isinstance(warnings, list):
            raise TypeError(f"a headline's warnings must be a list, not {type(warnings).__name__}")
        return cls(
            report=str(data["report"]),
            title=str(data["title"]),
            figures=list(data["figures"]),
            series=dict(data.get("series", {})),
            provenance=dict(data.get("provenance", {})),
            warnings=[str(w) for w in warnings],
        )

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {HEADLINE_MIME: self.to_dict(), "text/html": self._html(), "text/plain": self._text()}

    def _rows(self) -> list[tuple[str, str, str]]:
        return [(f["label"], self.format_figure(f), f.get("detail") or "") for f in self.figures]

    def _text(self) -> str:
        rows = self._rows()
        width = max((len(label) for label, _, _ in rows), default=0)
        lines = [self.title]
        for label, value, detail in rows:
            lines.append(f"  {label:<{width}}  {value}" + (f"  ({detail})" if detail else ""))
        lines.extend(f"  Warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _html(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><th style='text-align:left;padding:.25rem .8rem .25rem 0'>{e(label)}</th>"
            f"<td style='text-align:right;padding:.25rem .8rem;font-weight:600;white-space:nowrap'>{e(value)}</td>"
            f"<td style='text-align:left;padding:.25rem 0;color:#55606b'>{e(detail)}</td></tr>"
            for label, value, detail in self._rows()
        )
        table = f"<table class='rf-headline'><tbody>{rows}</tbody></table>"
        if not self.warnings:
            return table
        items = "".join(f"<li>{e(str(w))}</li>" for w in self.warnings)
        return (
            f"{table}<div class='rf-warnings' style='margin:.5rem 0;padding:.4rem .8rem;border-left:4px solid #b35c00;"
            f"background:#fff7ed'><strong>Warnings</strong><ul style='margin:.2rem 0'>{items}</ul></div>"
        )


def _jsonable(value: Any) -> Any:
    # numpy scalars and timestamps would not survive the trip through a notebook.
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def headline_table(headlines: dict[str, Headline]) -> pd.DataFrame:
    """Every headline figure of a run, one row each: ``report``, ``key``, ``label``, ``value``, ``text``, ``kind``.

    ``report`` is the notebook's name; ``value`` the number (missing for a
    text figure, whose words are in ``text``).

    Examples
    --------
    >>> h = Headline("kpis", "KPIs", [{"key": "arr", "label": "ARR", "value": 1.5e6, "kind": "money"}])
    >>> headline_table({"01_kpis": h})[["report", "key", "value", "kind"]].to_dict("records")
    [{'report': '01_kpis', 'key': 'arr', 'value': 1500000.0, 'kind': 'money'}]
    """
    rows = []
    for name, headline in headlines.items():
        for figure in headline.figures:
            value = figure.get("value")
            number = isinstance(value, int | float) and not isinstance(value, bool)
            rows.append(
                {
                    "report": name,
                    "key": str(figure.get("key", "")),
                    "label": str(figure.get("label", "")),
                    "value": float(value) if number else None,
                    "text": None if number or value is None else str(value),
                    "kind": str(figure.get("kind", "text")),
                }
            )
    columns = ["report", "key", "label", "value", "text", "kind"]
    return pd.DataFrame(rows, columns=columns).astype({"value": "float64", "text": "object"})


def _provenance(book: Book, as_of: pd.Timestamp, model_version: str | None = None) -> dict[str, Any]:
    # The data as loaded, whatever as-of view of it a report works on.
    out = {
        "as_of": pd.Timestamp(as_of).date().isoformat(),
        "data_fingerprint": book.loaded_fingerprint or book.fingerprint,
        "currency": book.currency,
    }
    if model_version:
        out["model_version"] = str(model_version)
    return out


def _figure(
    key: str, label: str, value: Any, kind: str, detail: str = "", *, secondary: bool = False
) -> dict[str, Any]:
    out = {"key": key, "label": label, "value": value, "kind": kind, "detail": detail}
    if secondary:
        out["secondary"] = True  # listed on the index page, without a card of its own
    return out


def data_headline(book: Book, as_of: Any, *, set_aside: dict[str, Any] | None = None) -> Headline:
    """Key figures of the data-quality report: what was loaded and how many warnings.

    Parameters
    ----------
    book : Book
    as_of : date-like
    set_aside : dict, optional
        :func:`renewforecast.set_aside_summary` of ``book``, when the report
        already computed it (computed here otherwise).

    Examples
    --------
    >>> import renewforecast as rf
    >>> h = rf.data_headline(rf.Book.empty(), "2026-10-31")
    >>> h.formatted("warnings"), h.figure("set_aside")["detail"]
    ('0', 'nothing set aside')
    """
    # The data-quality report describes the data as loaded, whatever the as-of date.
    as_of = pd.Timestamp(as_of).normalize()
    warnings = book.warnings
    rules = warnings["rule"].nunique() if len(warnings) else 0
    aside = set_aside_summary(book) if set_aside is None else set_aside
    return Headline(
        "data_quality",
        "Data quality",
        [
            # A card only when something was set aside; otherwise a line in the table.
            _figure("set_aside", "Rows set aside", aside["rows"], "count", aside["text"], secondary=not aside["rows"]),
            _figure(
                "warnings",
                "Validation warnings",
                len(warnings),
                "count",
                (f"{rules} rule(s); each names the file, line and record to fix" if len(warnings) else "none found")
                + f"; {len(book.accounts):,} accounts, "
                f"{book.contracts['contract_id'].nunique():,} contracts loaded",
            ),
            _figure("accounts", "Accounts", len(book.accounts), "count", secondary=True),
            _figure("contracts", "Contracts", book.contracts["contract_id"].nunique(), "count", secondary=True),
            _figure("subscriptions", "Subscription rows", len(book.subscriptions), "count", secondary=True),
        ],
        provenance=_provenance(book, as_of),
    )


def _one_row(frame: pd.DataFrame, name: str, engine: str) -> pd.Series | None:
    """The single whole-book row of an engine's table (None when it has none)."""
    # A table grouped by segment would otherwise give the first segment's figure.
    if len(frame) > 1:
        raise ValueError(f"{name} must be the whole-book {engine} table (one row), not {len(frame)} rows")
    return frame.iloc[0] if len(frame) else None


def kpi_headline(
    book: Book,
    as_of: Any,
    *,
    trend: pd.DataFrame | None = None,
    movements: pd.DataFrame | None = None,
    retention: pd.DataFrame | None = None,
    decisions: pd.DataFrame | None = None,
    outlook: pd.DataFrame | None = None,
    outlook_sims: int = 200,
) -> Headline:
    """Key figures of the revenue and renewal KPI report.

    ARR and its change over 12 months, last complete month's MRR bridge,
    12-month NRR and GRR, the ARR renewal rate of contracts that ended in
    the last 12 months, all at the last month end on or before ``as_of``,
    and where NRR is heading: the next 12 months' NRR (P50, with its P10-P90)
    from :func:`renewforecast.nrr_forecast`.

    Parameters
    ----------
    book : Book
    as_of : date-like
    trend : DataFrame, optional
        ``mrr_table(book, end=month_end, by=())``: the whole book's MRR at
        each month end; the headline shows its last 25 months to the last
        month end on or before ``as_of``.
    movements : DataFrame, optional
        ``mrr_movements(book, end=month_end, by=())``: the whole book's bridge.
    retention : DataFrame, optional
        ``retention_kpis(book, as_of)`` of the whole book (one row).
    decisions : DataFrame, optional
        ``renewal_decisions(book, as_of)``; the renewal rate counts those
        ending in the 12 months to the month end (:func:`renewal_kpis`).
    outlook : DataFrame, optional
        ``nrr_forecast(book, as_of)`` (its ``"total"`` rows are shown).
    outlook_sims : int, default 200
        Simulations of the NRR forecast computed here when ``outlook`` is not
        given (seed 0): enough for its P10-P90 to two decimals of a percent,
        and cheap enough for every report run.

    Each table not given is computed here by the same function, so a report
    passes what it already computed and every figure has one code path.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> h = rf.kpi_headline(rf.load_book(folder), "2026-10-31")
    >>> [f["key"] for f in h.figures]
    ['arr', 'mrr_bridge', 'nrr', 'grr', 'renewal_rate', 'nrr_forward']
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
    as_of = pd.Timestamp(as_of).normalize()
    month_end = last_month_end(as_of)
    start = month_end - pd.DateOffset(months=24)
    if trend is None:
        trend = mrr_table(book, start=start, end=month_end, by=())
    # MRR x 12, the ARR of every report.
    arr = trend.loc[(trend["month"] >= start) & (trend["month"] <= month_end), ["month"]].assign(arr=trend["mrr"] * 12)
    # No row at the month end: nothing was paying then.
    now = arr.loc[arr["month"] == month_end, "arr"]
    arr_now = float(now.iloc[0]) if len(now) else 0.0
    year_ago = arr.loc[arr["month"] == last_month_end(month_end - pd.DateOffset(months=12)), "arr"]
    change = arr_now / float(year_ago.iloc[0]) - 1 if len(year_ago) and float(year_ago.iloc[0]) else None

    if movements is None:
        movements = mrr_movements(book, end=month_end, by=())
    bridge = _one_row(movements[movements["month"] == month_end], "movements", "mrr_movements(by=())")
    steps = ["start_mrr", "new", "expansion", "reactivation", "contraction", "churn", "end_mrr"]
    bridge_values = {k: float(bridge[k]) if bridge is not None else 0.0 for k in steps}
    net = bridge_values["end_mrr"] - bridge_values["start_mrr"]

    if retention is None:
        retention = retention_kpis(book, as_of=as_of)
    kept = _one_row(retention, "retention", "retention_kpis")
    nrr = None if kept is None else float(kept["nrr"])
    grr = None if kept is None else float(kept["grr"])
    renewals = renewal_kpis(
        book, start=month_end - pd.DateOffset(months=12) + pd.Timedelta(days=1), end=month_end, decisions=decisions
    )
    r = _one_row(renewals, "renewals", "renewal_kpis")
    if outlook is None:
        outlook = nrr_forecast(book, as_of, n_sims=outlook_sims, random_state=0)
    ahead = outlook[outlook["group"] == "total"].set_index("metric")
    if "nrr" not in ahead.index:
        raise ValueError("outlook must be an nrr_forecast table with its 'total' rows")
    fwd, fwd_grr = ahead.loc["nrr"], ahead.loc["grr"]
    cur = book.currency
    month_name = f"{month_end:%B %Y}"
    return Headline(
        "revenue_kpis",
        "Revenue and renewal KPIs",
        [
            _figure(
                "arr",
                "ARR",
                arr_now,
                "money",
                f"at {month_end.date()}"
                + (
                    f", {'+' if change > 0 else ''}{format_value(change, 'percent')} over 12 months"
                    if change is not None
                    else ""
                ),
            ),
            _figure(
                "mrr_bridge",
                f"Net MRR change, {month_name}",
                net,
                "money",
                f"new {format_value(bridge_values['new'], 'money', cur)}, expansion "
                f"{format_value(bridge_values['expansion'], 'money', cur)}, reactivation "
                f"{format_value(bridge_values['reactivation'], 'money', cur)}, contraction "
                f"{format_value(-bridge_values['contraction'], 'money', cur)}, churn "
                f"{format_value(-bridge_values['churn'], 'money', cur)}",
            ),
            _figure(
                "nrr",
                "Net revenue retention",
                nrr,
                "percent",
                f"GRR {format_value(grr, 'percent')}; 12 months, customers paying a year ago",
            ),
            _figure("grr", "Gross revenue retention", grr, "percent", "12 months, expansion excluded", secondary=True),
            _figure(
                "renewal_rate",
                "Renewal rate (ARR)",
                None if r is None else float(r["renewal_rate_net_arr"]),
                "percent",
                ""
                if r is None
                else f"contracts ending in the last 12 months: {int(r['due']):,} due, "
                f"{format_value(float(r['renewal_rate_count']), 'percent')} renewed by count, "
                f"{int(r['open']):,} still open",
            ),
            _figure(
                "nrr_forward",
                f"NRR forecast to {pd.Timestamp(fwd['month']):%B %Y}",
                None if pd.isna(fwd["p50"]) else float(fwd["p50"]),
                "percent",
                (
                    f"not defined yet: no customer paying at {pd.Timestamp(fwd['base_month']).date()}"
                    if not int(fwd["base_customers"])
                    else "not defined yet: no renewal decided in the last 24 months to say how often they renew"
                )
                if pd.isna(fwd["p50"])
                else f"P10-P90 {format_value(float(fwd['p10']), 'percent')} to "
                f"{format_value(float(fwd['p90']), 'percent')}; GRR {format_value(float(fwd_grr['p50']), 'percent')}"
                f"; customers paying at {pd.Timestamp(fwd['base_month']).date()}, "
                f"{int(fwd['renewals_due']):,} renewals due",
            ),
        ],
        series={
            "arr": {"month": list(arr["month"]), "value": list(arr["arr"])},
            "bridge": bridge_values | {"month": month_end},
        },
        provenance=_provenance(book, as_of),
    )


def risk_headline(book: Book, scores: pd.DataFrame, as_of: Any, *, drift: DriftReport | None = None) -> Headline:
    """Key figures of the renewal-risk report: ARR at risk in the next two quarters.

    Parameters
    ----------
    book : Book
        Only its currency and fingerprint are read.
    scores : DataFrame
        :func:`renewforecast.score_contracts` output as of ``as_of``, as the
        report computed it.
    as_of : date-like
    drift : DriftReport, optional
        :func:`renewforecast.drift_report` of the model in use. Adds the
        figure ``drift`` (its worst level against the training data, with
        the recommendation) and its warnings, the strongest
        :data:`DRIFT_WARNINGS_SHOWN` of them and how many more.

    Notes
    -----
    The quarters are calendar quarters: the rest of the quarter after
    ``as_of``, and the one after it
    (:func:`renewforecast.analyses.scoring.arr_at_risk_by_quarter`). ARR at
    risk is ARR x (1 - renewal probability), summed over the contracts ending
    in each.

    Examples
    --------
    >>> import pandas as pd, renewforecast as rf
    >>> scores = pd.DataFrame({"end_date": pd.to_datetime(["2026-11-30", "2027-02-28", "2027-06-30"]),
    ...                        "arr": [1000.0, 2000.0, 4000.0], "renewal_probability": [0.9, 0.5, 0.1],
    ...                        "arr_at_risk": [100.0, 1000.0, 3600.0], "model_version": "v1"})
    >>> h = rf.risk_headline(rf.Book.empty(), scores, "2026-10-31")
    >>> h.figure("arr_at_risk")["value"], h.series["quarters"]["quarter"]
    (1100.0, ['Q4 2026', 'Q1 2027'])
    >>> h.warnings
    []
    """
    # Only the scores are read: no need to cut the book as of the date.
    as_of = pd.Timestamp(as_of).normalize()
    quarters = arr_at_risk_by_quarter(scores, as_of, quarters=2)
    rows = quarters[["quarter", "contracts", "arr", "arr_at_risk"]].to_dict("records")
    at_risk = sum(r["arr_at_risk"] for r in rows)
    up = sum(r["arr"] for r in rows)
    versions = sorted({str(v) for v in scores.get("model_version", pd.Series(dtype=object)).dropna()})
    cur = book.currency
    detail = "; ".join(
        f"{r['quarter']}: {format_value(r['arr_at_risk'], 'money', cur)} of "
        f"{format_value(r['arr'], 'money', cur)} ({r['contracts']:,} contracts)"
        for r in rows
    )
    figures = [
        _figure("arr_at_risk", "ARR at risk, next two quarters", at_risk, "money", detail),
        _figure(
            "expected_renewal",
            "Expected renewal rate, next two quarters",
            expected_renewal_rate(up, at_risk),
            "percent",
            f"of {format_value(up, 'money', cur)} ARR coming up for renewal",
            secondary=True,
        ),
    ]
    warnings: list[str] = []
    if drift is not None:
        figures.append(
            _figure(
                "drift",
                "Model drift against its training data",
                drift.level("training"),
                "text",
                drift.recommendation,
                secondary=True,
            )
        )
        warnings = drift.warnings[:DRIFT_WARNINGS_SHOWN]
        more = len(drift.warnings) - DRIFT_WARNINGS_SHOWN
        if more > 0:
            warnings.append(f"... and {more} more shifts (see the report's Drift section)")
    return Headline(
        "renewal_risk",
        "Renewal risk",
        figures,
        series={"quarters": {k: [r[k] for r in rows] for k in rows[0]}},
        provenance=_provenance(book, as_of, ", ".join(versions) or None),
        warnings=warnings,
    )


def unit_economics_headline(
    book: Book,
    as_of: Any,
    *,
    method: str | None = None,
    discount_rate: float = 0.10,
    horizon_years: float | None = None,
    spend_lag_months: int = 0,
    n_boot: int = 200,
    table: pd.DataFrame | None = None,
) -> Headline:
    """Key figures of the unit-economics report: LTV:CAC and CAC payback for the whole book.

    Measured at the last month end on or before ``as_of``.

    Parameters
    ----------
    book : Book
    as_of : date-like
    method : {"simple", "survival", "sbg"}, optional
        The LTV method: the table's, or ``"sbg"`` when no table is given.
    discount_rate, horizon_years, spend_lag_months, n_boot
        Passed to :func:`renewforecast.ltv_cac` when no table is given.
    table : DataFrame, optional
        The whole book's :func:`renewforecast.ltv_cac` table (one row), as
        the report computed it; computed here otherwise.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> h = rf.unit_economics_headline(rf.load_book(folder), "2026-10-31", n_boot=0)
    >>> [f["key"] for f in h.figures]
    ['ltv_to_cac', 'payback_months']
    """
    # as_of means what was known at the end of that day, in every engine.
    book = book.as_of(as_of)
    as_of = pd.Timestamp(as_of).normalize()
    if table is None:
        method = method or "sbg"
        table = ltv_cac(
            book,
            as_of,
            method=method,
            discount_rate=discount_rate,
            horizon_years=horizon_years,
            spend_lag_months=spend_lag_months,
            n_boot=n_boot,
        )
    elif method is not None and table.attrs.get("ltv_method", method) != method:
        raise ValueError(f"table holds LTV by {table.attrs['ltv_method']!r}, not {method!r}")
    method = table.attrs.get("ltv_method", method or "sbg")
    row = _one_row(table, "table", "ltv_cac")
    cur = book.currency
    ratio = row.get(f"ltv_{method}_to_cac")
    low, high = row.get(f"ltv_{method}_to_cac_low"), row.get(f"ltv_{method}_to_cac_high")
    cac = row.get("cac")
    band = ""
    if all(isinstance(v, int | float) and math.isfinite(v) for v in (low, high, cac)) and cac:
        ci = table.attrs.get("ci")
        band = (
            f", {format_value(low, 'ratio')} to {format_value(high, 'ratio')} (bootstrap{f' {ci:.0%}' if ci else ''})"
        )
    return Headline(
        "unit_economics",
        "Unit economics",
        [
            _figure(
                "ltv_to_cac",
                f"LTV:CAC ({method})",
                None if ratio is None else float(ratio),
                "ratio",
                f"LTV {format_value(row.get(f'ltv_{method}'), 'money', cur)}, CAC "
                f"{format_value(cac, 'money', cur)}{band}; {row.get('ltv_to_cac_status', '')}; payback "
                f"{format_value(row.get('payback_months'), 'months')}",
            ),
            _figure(
                "payback_months",
                "CAC payback",
                float(row.get("payback_months", np.nan)),
                "months",
                str(row.get("payback_status", "")),
                secondary=True,
            ),
        ],
        provenance=_provenance(book, as_of),
    )


def forecast_headline(
    book: Book, forecast: RevenueForecast, history: pd.DataFrame | None = None, *, model_version: str | None = None
) -> Headline:
    """Key figures of the revenue forecast: the horizon's revenue with its range.

    Parameters
    ----------
    book : Book
    forecast : RevenueForecast
        :func:`renewforecast.revenue_forecast` result (one scenario); its
        ``horizon_total`` gives the horizon's range and its ``as_of`` and
        ``model_version`` the provenance.
    history : DataFrame, optional
        :func:`renewforecast.recognized_revenue` output (``month``,
        ``revenue``) drawn before the forecast on the index page.
    model_version : str, optional
        The renewal model's version; by default the one the forecast records.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> book = rf.load_book(folder)
    >>> fc = rf.revenue_forecast(book, "2026-10-31", horizon_months=6, n_sims=100, random_state=0)
    >>> h = rf.forecast_headline(book, fc)
    >>> h.figure("horizon_revenue")["value"] == round(fc.horizon_total.mean, 2)
    True
    """
    groups = forecast.frame["group"].unique()
    total = forecast.rows("total", "total" if "total" in groups else groups[0])
    span = forecast.horizon_total
    months = len(total)
    cur = book.currency
    first, last = total["month"].iloc[0], total["month"].iloc[-1]
    detail = (
        f"{first:%b %Y} to {last:%b %Y}, P10-P90 {format_value(span.p10, 'money', cur)} to "
        f"{format_value(span.p90, 'money', cur)}"
    )
    next_month = total.iloc[0]
    series: dict[str, Any] = {"forecast": {k: list(total[k]) for k in ("month", "mean", "p10", "p90")}}
    if history is not None and len(history):
        series["history"] = {"month": list(history["month"]), "value": list(history["revenue"])}
    as_of = forecast.as_of
    model_version = model_version or forecast.model_version
    return Headline(
        "revenue_forecast",
        "Revenue forecast",
        [
            _figure(
                "horizon_revenue",
                f"Forecast revenue, next {months} months",
                round(float(span.mean), 2),
                "money",
                detail,
            ),
            _figure(
                "next_month",
                f"Forecast revenue, {first:%B %Y}",
                float(next_month["mean"]),
                "money",
                f"P10-P90 {format_value(next_month['p10'], 'money', cur)} to "
                f"{format_value(next_month['p90'], 'money', cur)}",
                secondary=True,
            ),
        ],
        series=series,
        provenance=_provenance(book, as_of, model_version),
    )


def track_record_headline(book: Book, track: TrackRecord) -> Headline:
    """Key figures of the track-record report: how the earlier runs' forecasts and probabilities held up.

    Parameters
    ----------
    book : Book
        Only its currency and fingerprint are read.
    track : TrackRecord
        :func:`renewforecast.grade_runs` of the earlier runs, as the report
        computed it; its grading date is the headline's as-of date.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> track = rf.grade_runs(tempfile.mkdtemp(), rf.Book.empty(), as_of="2026-10-31")
    >>> h = rf.track_record_headline(rf.Book.empty(), track)
    >>> h.formatted("runs_graded"), h.figure("runs_graded")["detail"][:16]
    ('0', 'No earlier run w')
    """
    summary = track.summary().set_index("measure")["value"]

    def get(key: str) -> float | None:
        value = float(summary.get(key, np.nan))
        return value if math.isfinite(value) else None

    def pct(key: str) -> str:
        return format_value(get(key), "percent")

    months = int(get("forecast_months") or 0)
    decisions = int(get("scores_contracts") or 0)
    backtest = get("backtest_brier")
    figures = [
        _figure("runs_graded", "Earlier runs graded", track.graded, "count", track.note, secondary=not track.graded),
        _figure(
            "forecast_mape_1m",
            "Forecast miss, 1 month ahead",
            get("forecast_mape_1m"),
            "percent",
            f"3 months ahead {pct('forecast_mape_3m')}; {pct('forecast_coverage_p10_p90')} of {months:,} month(s) "
            "inside the P10-P90 range",
            secondary=not months,
        ),
        _figure(
            "forecast_coverage_p10_p90",
            "Forecast months inside the P10-P90 range",
            get("forecast_coverage_p10_p90"),
            "percent",
            "about 80% when the range is right",
            secondary=True,
        ),
        _figure(
            "scores_brier",
            "Brier score of the published renewal probabilities",
            get("scores_brier"),
            "score",
            f"{decisions:,} renewal decision(s) since; ECE {format_value(get('scores_ece'), 'score')}, AUC "
            f"{format_value(get('scores_roc_auc'), 'score')}"
            + (f"; the model's own backtest: {format_value(backtest, 'score')}" if backtest is not None else ""),
            secondary=not decisions,
        ),
    ]
    return Headline("track_record", "Track record", figures, provenance=_provenance(book, track.as_of))
