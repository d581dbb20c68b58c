"""The pages a report run publishes around the notebooks: the executive index and the run banner.

:func:`render_index` turns the run's provenance and the :class:`~renewforecast.reports.headline.Headline`
of each report into ``index.html``: the headline figures as cards with small
charts, each linking to its full report, then the list of reports and the run's
provenance. :func:`run_banner` is the strip at the top of every report page with
the same provenance, so a page that is printed or forwarded on its own still says
which data, date, model and run it comes from.

Everything taken from data or parameters is HTML-escaped here; charts are
self-contained SVG images (``data:`` URIs), so the pages need no network and
no script.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import quote

from renewforecast.reports.formatting import format_duration
from renewforecast.reports.headline import Headline
from renewforecast.reports.plotting import card_chart

__all__ = ["format_duration", "redact_parameters", "render_index", "run_banner"]

# Parameters whose name says they hold a secret are never shown or recorded.
_SECRET_NAME = re.compile(r"pass|secret|token|credential|api_?key|auth|private", re.IGNORECASE)
REDACTED = "(hidden)"

# Cards are shown in this order of reports; reports not listed follow.
_CARD_ORDER = ("revenue_kpis", "renewal_risk", "revenue_forecast", "unit_economics", "data_quality")

_CSS = """
:root{--ink:#1d2329;--muted:#55606b;--line:#dde1e5;--link:#0b5cad}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:72rem;
margin:1.5rem auto;padding:0 1rem;color:var(--ink);line-height:1.45;background:#fff}
h1{font-size:1.6rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin:2rem 0 .6rem}
.muted{color:var(--muted);font-size:.9rem}a{color:var(--link)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:.9rem}
.card{border:1px solid var(--line);border-radius:.5rem;padding:.8rem .9rem;display:flex;
flex-direction:column;gap:.25rem;background:#fbfcfd}
.card .label{font-size:.85rem;color:var(--muted);font-weight:600;text-transform:uppercase;
letter-spacing:.02em}
.card .value{font-size:1.7rem;font-weight:650;font-variant-numeric:tabular-nums}
.card .detail{font-size:.85rem;color:var(--muted)}
.card img{width:100%;height:auto;margin-top:.3rem}
.card .more{margin-top:auto;padding-top:.4rem;font-size:.85rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;
border-bottom:1px solid var(--line);vertical-align:top}th{width:13rem;color:var(--muted);font-weight:600}
code{font-size:.9em;word-break:break-all}td.num{text-align:right;white-space:nowrap;font-weight:600;
font-variant-numeric:tabular-nums}.more-figures th{width:18rem}ol{padding-left:1.4rem}li{margin:.35rem 0}
.warnings{border-left:4px solid #b35c00;background:#fff7ed;padding:.3rem 1rem .3rem 2rem;margin:0}
"""


def redact_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters with the values of secret-looking names replaced by ``"(hidden)"``.

    Credentials do not belong in report parameters at all (they are written
    into the executed notebook); this keeps a mistaken one off the pages and
    out of ``run.json``.

    Examples
    --------
    >>> redact_parameters({"horizon_months": 12, "sf_password": "hunter2", "API_KEY": "x"})
    {'horizon_months': 12, 'sf_password': '(hidden)', 'API_KEY': '(hidden)'}
    """
    return {k: REDACTED if _SECRET_NAME.search(str(k)) else v for k, v in parameters.items()}


# --------------------------------------------------------------------------- #
# Pages
# --------------------------------------------------------------------------- #


def _card(figure: dict[str, Any], headline: Headline, link: str, link_title: str) -> str:
    e = html.escape
    value = headline.format_figure(figure)
    chart = card_chart(figure.get("key", ""), headline.series) or ""
    detail = figure.get("detail") or ""
    return (
        '<div class="card">'
        f'<div class="label">{e(str(figure.get("label", "")))}</div>'
        f'<div class="value">{e(value)}</div>'
        + (f'<div class="detail">{e(detail)}</div>' if detail else "")
        + chart
        + f'<div class="more"><a href="{e(link)}">{e(link_title)} &rarr;</a></div>'
        "</div>"
    )


def _value_or(meta: dict[str, Any], key: str, missing: str) -> str:
    value = meta.get(key)
    return str(value) if value not in (None, "") else missing


def render_index(meta: dict[str, Any], headlines: dict[str, Headline]) -> str:
    """HTML of a run's ``index.html``.

    Parameters
    ----------
    meta : dict
        The run's provenance as written to ``run.json`` (``run_id``,
        ``as_of``, ``data_fingerprint``, ``model_version``,
        ``package_version``, ``source``, ``parameters``, ``started``,
        ``finished``, ``duration_seconds``), with ``notebooks`` (``name``,
        ``title`` and ``html`` file of each report, in order) and
        ``durations`` (seconds by report name).
    headlines : dict
        Report name -> :class:`~renewforecast.reports.headline.Headline` of the
        reports that published one. Their warnings are listed first, each
        linking to its report.

    Returns
    -------
    str

    Examples
    --------
    >>> from renewforecast.reports.headline import Headline
    >>> h = Headline("revenue_kpis", "KPIs", [{"key": "nrr", "label": "NRR", "value": 1.04,
    ...              "kind": "percent"}], provenance={"currency": "USD"})
    >>> meta = {"run_id": "r1", "notebooks": [{"name": "01_kpis", "title": "KPIs <b>",
    ...         "html": "01_kpis.html"}], "durations": {"01_kpis": 3.0}}
    >>> page = render_index(meta, {"01_kpis": h})
    >>> "104.0%" in page, "KPIs &lt;b&gt;" in page, "<b>" in page
    (True, True, False)
    >>> h.warnings.append("nps <shifted>")
    >>> "nps &lt;shifted&gt;</li>" in render_index(meta, {"01_kpis": h})
    True
    """
    e = html.escape
    reports = meta.get("notebooks") or []
    durations = meta.get("durations") or {}
    order = {name: i for i, name in enumerate(_CARD_ORDER)}
    by_name = {r["name"]: r for r in reports}
    position = {name: i for i, name in enumerate(by_name)}
    ranked = sorted(
        headlines.items(), key=lambda item: (order.get(item[1].report, len(order)), position.get(item[0], 0))
    )
    cards, more, warned = [], [], []
    for name, headline in ranked:
        report = by_name.get(name, {"html": f"{name}.html", "title": headline.title})
        link = quote(str(report["html"]))
        title = str(report.get("title") or headline.title)
        warned.extend(f'<li><a href="{e(link)}">{e(title)}</a>: {e(str(w))}</li>' for w in headline.warnings)
        for figure in headline.figures:
            if figure.get("secondary"):
                value = headline.format_figure(figure)
                more.append(
                    f'<tr><th>{e(str(figure.get("label", "")))}</th><td class="num">{e(value)}</td>'
                    f'<td class="muted">{e(str(figure.get("detail") or ""))}</td>'
                    f'<td><a href="{e(link)}">{e(title)}</a></td></tr>'
                )
            else:
                cards.append(_card(figure, headline, link, title))
    as_of = _value_or(meta, "as_of", "not recorded")
    links = [
        f'<li><a href="{e(quote(str(r["html"])))}">{e(str(r["title"]))}</a> '
        f'<span class="muted">{e(str(r["name"]))}, '
        f"{e(format_duration(float(durations.get(r['name'], 0.0))))}</span></li>"
        for r in reports
    ]
    cards_html = f'<h2>Headline figures</h2>\n<div class="cards">\n{chr(10).join(cards)}\n</div>\n' if cards else ""
    if warned:
        cards_html = f'<h2>Warnings</h2>\n<ul class="warnings">\n{chr(10).join(warned)}\n</ul>\n' + cards_html
    if more:
        cards_html += f'<h2>More figures</h2>\n<table class="more-figures">\n{chr(10).join(more)}\n</table>\n'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>renewforecast reports as of {e(as_of)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>Revenue, renewals and forecast as of {e(as_of)}</h1>\n"
        f'<p class="muted">renewforecast run <code>{e(str(meta.get("run_id", "")))}</code>'
        f" · data <code>{e(_value_or(meta, 'data_fingerprint', 'not recorded')[:12])}</code></p>\n"
        f"{cards_html}"
        f"<h2>Reports</h2>\n<ol>\n{chr(10).join(links)}\n</ol>\n"
        f"<h2>Run</h2>\n{_provenance_table(meta)}\n"
        "</body>\n</html>\n"
    )


def _provenance_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    duration = meta.get("duration_seconds")
    return [
        ("Run id", _value_or(meta, "run_id", "")),
        ("As of", _value_or(meta, "as_of", "not recorded")),
        ("Data fingerprint", _value_or(meta, "data_fingerprint", "not recorded")),
        ("Renewal model", _value_or(meta, "model_version", "none used")),
        ("renewforecast", _value_or(meta, "package_version", "unknown")),
        ("Source", _value_or(meta, "source", "")),
        ("Started (UTC)", _value_or(meta, "started", "")),
        ("Duration", format_duration(float(duration)) if duration is not None else ""),
    ]


def _provenance_table(meta: dict[str, Any]) -> str:
    e = html.escape
    rows = [f"<tr><th>{e(label)}</th><td><code>{e(value)}</code></td></tr>" for label, value in _provenance_rows(meta)]
    for name, value in redact_parameters(meta.get("parameters") or {}).items():
        if name == "source":
            continue
        rows.append(
            f"<tr><th>parameter {e(str(name))}</th>"
            f"<td><code>{e(json.dumps(value, ensure_ascii=False))}</code></td></tr>"
        )
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def run_banner(meta: dict[str, Any], report: dict[str, Any]) -> str:
    """HTML strip with the run's provenance, shown at the top of every report page.

    Parameters
    ----------
    meta : dict
        As for :func:`render_index`.
    report : dict
        ``name``, ``seconds`` and ``parameters`` (the values this report received).

    Examples
    --------
    >>> strip = run_banner({"run_id": "r1", "as_of": "2026-10-31"},
    ...                    {"name": "01_kpis", "seconds": 2.0, "parameters": {"source": "<x>"}})
    >>> "&lt;x&gt;" in strip and "index.html" in strip
    True
    """
    e = html.escape
    parts = [
        f"Run <code>{e(_value_or(meta, 'run_id', ''))}</code>",
        f"as of <strong>{e(_value_or(meta, 'as_of', 'not recorded'))}</strong>",
        f'data <code title="{e(_value_or(meta, "data_fingerprint", ""))}">'
        f"{e(_value_or(meta, 'data_fingerprint', 'not recorded')[:12])}</code>",
        f"model <code>{e(_value_or(meta, 'model_version', 'none'))}</code>",
        f"renewforecast {e(_value_or(meta, 'package_version', 'unknown'))}",
        f"report took {e(format_duration(float(report.get('seconds', 0.0))))} (whole run "
        + e(format_duration(float(meta.get("duration_seconds") or 0.0)))
        + ")",
    ]
    params = "".join(
        f"<tr><th>{e(str(k))}</th><td><code>{e(json.dumps(v, ensure_ascii=False))}</code></td></tr>"
        for k, v in redact_parameters(report.get("parameters") or {}).items()
    )
    return (
        '<nav class="rf-run" style="font:13px/1.5 system-ui,-apple-system,\'Segoe UI\',sans-serif;'
        "color:#55606b;background:#f4f6f8;border-bottom:1px solid #dde1e5;padding:.5rem 1rem;"
        'margin:0 0 1rem">'
        '<a href="index.html" style="color:#0b5cad;font-weight:600">&larr; All reports</a> · '
        + " · ".join(parts)
        + (
            f'<details style="margin-top:.2rem"><summary>Parameters</summary>'
            f'<table style="border-collapse:collapse">{params}</table></details>'
            if params
            else ""
        )
        + "</nav>"
    )
