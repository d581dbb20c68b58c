"""Every chart renewforecast draws: the report charts, the model evaluation charts and the index page's card charts.

Report and evaluation charts take ``ax=None`` and return the Axes. The
index page's small card charts (:func:`card_chart`) come back as
self-contained SVG images. Amounts on labels and axes are written by
:mod:`renewforecast.reports.formatting`, as everywhere else.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from renewforecast.reports.formatting import format_money, format_percent

__all__ = [
    "against_benchmark",
    "backtest_accuracy",
    "bar_by_group",
    "calibration_curve",
    "card_chart",
    "cohort_heatmap",
    "forecast_components",
    "forecast_fan",
    "grouped_rates",
    "lift_by_decile",
    "line_over_time",
    "lines_by_group",
    "ltv_by_method",
    "money_formatter",
    "mrr_bridge",
    "nrr_outlook",
    "sbg_fit",
    "survival_by_group",
]


def _money(x: float, _pos=None) -> str:
    # Axis ticks and bar labels: the number alone, the axis label names the currency.
    return format_money(x, "")


def money_formatter() -> FuncFormatter:
    """Axis formatter for amounts: 1,250,000 -> 1.2M (as :func:`~renewforecast.reports.formatting.format_money`).

    Examples
    --------
    >>> money_formatter()(1_250_000), money_formatter()(-45_000)
    ('1.2M', '-45.0K')
    """
    return FuncFormatter(_money)


def bar_by_group(
    frame: pd.DataFrame, *, group: str, value: str, title: str = "", currency: str = "", ax: Axes | None = None
) -> Axes:
    """Horizontal bars of ``value`` by ``group``, largest on top, values labelled.

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = bar_by_group(pd.DataFrame({"segment": ["SMB", "Enterprise"], "arr": [1e5, 2e6]}),
    ...                   group="segment", value="arr")
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['SMB', 'Enterprise']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 * max(len(frame), 2) + 1))
    data = frame.sort_values(value, ascending=True)
    labels = data[group].astype(str).fillna("(blank)").tolist()
    bars = ax.barh(labels, data[value], color="#2b6cb0")
    for bar, v in zip(bars, data[value], strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {_money(v)}", va="center", fontsize=9)
    ax.xaxis.set_major_formatter(money_formatter())
    ax.set_xlabel(value.upper() + (f" ({currency})" if currency else ""))
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.15)
    return ax


def line_over_time(
    frame: pd.DataFrame, *, x: str, y: str, title: str = "", currency: str = "", ax: Axes | None = None
) -> Axes:
    """One series over time, money on the y axis.

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> t = pd.DataFrame({"month": pd.to_datetime(["2026-01-31", "2026-02-28"]), "arr": [1200.0, 1500.0]})
    >>> len(line_over_time(t, x="month", y="arr").get_lines())
    1
    >>> [x.get_text() for x in line_over_time(t.iloc[:0], x="month", y="arr").texts]
    ['No month with data yet.']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    if frame.empty:
        return _nothing_to_show(ax, "No month with data yet.", title)
    ax.plot(frame[x], frame[y], color="#2b6cb0", linewidth=2)
    ax.fill_between(frame[x], frame[y], color="#2b6cb0", alpha=0.08)
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_ylabel(y.upper() + (f" ({currency})" if currency else ""))
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(bottom=0)
    return ax


_BRIDGE = (
    ("start_mrr", "Start", "#718096"),
    ("new", "New", "#2f855a"),
    ("expansion", "Expansion", "#48bb78"),
    ("reactivation", "Reactivation", "#9ae6b4"),
    ("contraction", "Contraction", "#f6ad55"),
    ("churn", "Churn", "#c53030"),
    ("end_mrr", "End", "#2b6cb0"),
)


def mrr_bridge(
    row: pd.Series | dict | pd.DataFrame, *, title: str | None = None, currency: str = "", ax: Axes | None = None
) -> Axes:
    """Waterfall from start MRR through each movement to end MRR.

    ``row`` holds ``start_mrr``, the five movements (positive amounts) and
    ``end_mrr``, as one row of :func:`renewforecast.mrr_movements` summed;
    given the whole ``mrr_movements(..., by=())`` table, its last month is
    drawn, titled with that month unless ``title`` says otherwise, and a
    table without a month says so.

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> bridge = pd.DataFrame({"month": pd.to_datetime(["2026-01-31"]), "start_mrr": [100.0], "new": [20.0],
    ...     "expansion": [5.0], "reactivation": [0.0], "contraction": [3.0], "churn": [10.0], "end_mrr": [112.0]})
    >>> mrr_bridge(bridge).get_title(), len(mrr_bridge(bridge).patches)
    ('MRR bridge, January 2026', 7)
    >>> [x.get_text() for x in mrr_bridge(bridge.iloc[:0]).texts]
    ['No month with MRR yet.']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    if isinstance(row, pd.DataFrame):
        if row.empty:
            return _nothing_to_show(ax, "No month with MRR yet.", title or "")
        row = row.iloc[-1]
        title = f"MRR bridge, {pd.Timestamp(row['month']):%B %Y}" if title is None else title
    title = title or ""
    level = 0.0
    highest = 0.0
    for i, (key, _label, color) in enumerate(_BRIDGE):
        v = float(row[key])
        if key in ("start_mrr", "end_mrr"):
            bottom, height, level = 0.0, v, v
        elif key in ("contraction", "churn"):
            bottom, height = level - v, v
            level -= v
        else:
            bottom, height = level, v
            level += v
        ax.bar(i, height, bottom=bottom, color=color, width=0.65)
        highest = max(highest, bottom + height)
        sign = "-" if key in ("contraction", "churn") else ("+" if key not in ("start_mrr", "end_mrr") else "")
        ax.text(i, bottom + height, f"{sign}{_money(v)}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(_BRIDGE)), [b[1] for b in _BRIDGE], fontsize=9)
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_ylabel("MRR" + (f" ({currency})" if currency else ""))
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    lo = max(0.0, min(float(row["start_mrr"]), float(row["end_mrr"])) * 0.85)
    # Room above the tallest bar for its label, below the title.
    ax.set_ylim(bottom=lo, top=highest + 0.1 * max(highest - lo, 1.0))
    return ax


def grouped_rates(
    frame: pd.DataFrame,
    *,
    group: str,
    rates: list[str],
    title: str = "",
    reference: float | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Side-by-side bars of rates (fractions shown as percent) per group."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    n = len(rates)
    x = np.arange(len(frame))
    width = 0.8 / n
    colors = ["#2b6cb0", "#48bb78", "#ed8936", "#805ad5", "#718096"]
    for i, rate in enumerate(rates):
        vals = frame[rate].astype(float).to_numpy()
        bars = ax.bar(
            x + (i - (n - 1) / 2) * width,
            vals * 100,
            width,
            label=rate.replace("_", " "),
            color=colors[i % len(colors)],
        )
        for bar, v in zip(bars, vals, strict=True):
            if v == v:
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_height(),
                    format_percent(v, 0),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    if reference is not None:
        ax.axhline(reference * 100, color="#4a5568", linestyle="--", linewidth=1)
    ax.set_xticks(x, frame[group].astype(str))
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, ncols=min(n, 4), loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def nrr_outlook(
    forecast: pd.DataFrame,
    last_year: pd.DataFrame | None = None,
    *,
    metrics: Sequence[str] = ("nrr", "grr"),
    title: str = "",
    ax: Axes | None = None,
) -> Axes:
    """Where retention is heading: each group's forecast P10-P90 range and P50, beside its last 12 months.

    Parameters
    ----------
    forecast : DataFrame
        :func:`renewforecast.nrr_forecast` output (``group``, ``metric``,
        ``p10``, ``p50``, ``p90``).
    last_year : DataFrame, optional
        The realised values of the last 12 months, indexed by group, with a
        column per metric (for example :func:`renewforecast.retention_kpis`
        by segment with the whole book as ``"total"``), drawn as open circles.
    metrics : sequence of str, default ("nrr", "grr")

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> fc = pd.DataFrame({"group": ["total", "total"], "metric": ["nrr", "grr"], "p10": [0.9, 0.8],
    ...                    "p50": [0.95, 0.84], "p90": [1.0, 0.88]})
    >>> ax = nrr_outlook(fc, pd.DataFrame({"nrr": [0.97], "grr": [0.86]}, index=["total"]))
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['total']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    groups = list(dict.fromkeys(forecast["group"]))
    colors = {"nrr": "#2b6cb0", "grr": "#48bb78"}
    n = len(metrics)
    width = 0.8 / n
    x = np.arange(len(groups))
    rows = forecast.set_index(["group", "metric"])
    for i, metric in enumerate(metrics):
        at = x + (i - (n - 1) / 2) * width
        color = colors.get(metric, "#718096")
        for xi, g in zip(at, groups, strict=True):
            if (g, metric) not in rows.index:
                continue
            r = rows.loc[(g, metric)]
            ax.vlines(xi, r["p10"] * 100, r["p90"] * 100, color=color, linewidth=6, alpha=0.45)
            ax.plot(xi, r["p50"] * 100, "_", color=color, markersize=14, markeredgewidth=2)
            ax.text(xi, r["p90"] * 100, format_percent(r["p50"], 0), ha="center", va="bottom", fontsize=8)
            if last_year is not None and g in last_year.index and metric in last_year.columns:
                ax.plot(xi, float(last_year.loc[g, metric]) * 100, "o", mfc="none", color="#4a5568", markersize=6)
        ax.plot([], [], color=color, linewidth=6, alpha=0.45, label=f"{metric.upper()} forecast, P10 to P90")
    if last_year is not None:
        ax.plot([], [], "o", mfc="none", color="#4a5568", label="last 12 months")
    ax.axhline(100, color="#4a5568", linestyle="--", linewidth=1)
    ax.set_xticks(x, [str(g) for g in groups])
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def cohort_heatmap(cohorts: pd.DataFrame, *, title: str = "", max_periods: int = 16, ax: Axes | None = None) -> Axes:
    """Retention of each acquisition cohort by period since acquisition."""
    grid = cohorts[cohorts["period"] <= max_periods].pivot(index="cohort", columns="period", values="retention")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.32 * max(len(grid), 4) + 1.2))
    if grid.empty:
        return _nothing_to_show(ax, "No cohort yet.", title)
    im = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="RdYlGn", vmin=0.4, vmax=1.4)
    ax.set_yticks(range(len(grid)), grid.index)
    ax.set_xticks(range(len(grid.columns)), grid.columns)
    ax.set_xlabel("periods since acquisition")
    values = grid.to_numpy(dtype=float)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if values[i, j] == values[i, j]:
                ax.text(j, i, format_percent(values[i, j], 0), ha="center", va="center", fontsize=7)
    ax.figure.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    ax.set_title(title)
    return ax


def survival_by_group(
    model, lifetimes: pd.DataFrame, *, group: str = "segment", horizon: int = 60, ax: Axes | None = None
) -> Axes:
    """Modelled survival of a typical customer of each group, over Kaplan-Meier curves of the data.

    The typical customer takes its group's value and the median of every
    numeric covariate of ``model``. Solid lines are the model, steps the
    observed (Kaplan-Meier) survival.
    """
    from lifelines import KaplanMeierFitter

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    times = np.arange(0, horizon + 1)
    colors = ["#2b6cb0", "#2f855a", "#c05621", "#6b46c1", "#718096", "#b83280"]
    features = list(model.feature_names_in_)
    for i, (name, rows) in enumerate(lifetimes.groupby(group)):
        color = colors[i % len(colors)]
        typical = {f: (rows[f].median() if pd.api.types.is_numeric_dtype(rows[f]) else name) for f in features}
        curve = model.predict_survival(pd.DataFrame([typical]), times).iloc[:, 0]
        ax.plot(times, curve.to_numpy(), color=color, linewidth=2, label=f"{name} (model)")
        km = KaplanMeierFitter().fit(rows["duration"], rows["event"])
        sf = km.survival_function_.iloc[:, 0]
        sf = sf[sf.index <= horizon]
        ax.step(sf.index, sf.to_numpy(), where="post", color=color, alpha=0.45, linewidth=1)
    ax.set_xlabel("months since first revenue")
    ax.set_ylabel("share of customers still paying")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def sbg_fit(cohorts: pd.DataFrame, model, *, years: int = 8, ax: Axes | None = None) -> Axes:
    """Observed share of each acquisition cohort alive at each anniversary, and the sBG curve."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    t = np.arange(0, years + 1)
    ax.plot(t, model.survival(t), color="#1a202c", linewidth=2.5, label="sBG model")
    for cohort, rows in cohorts.groupby("cohort"):
        base = rows.loc[rows["period"] == 0, "alive"]
        if base.empty or len(rows) < 2:
            continue
        ax.plot(
            rows["period"],
            rows["alive"] / float(base.iloc[0]),
            marker="o",
            linewidth=1,
            alpha=0.7,
            label=f"{cohort} cohort",
        )
    ax.set_xlabel("years since acquisition")
    ax.set_ylabel("share of the cohort still a customer")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=8, ncols=2)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def lines_by_group(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str,
    title: str = "",
    ylabel: str = "",
    money: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """One line per group over time (e.g. CAC by channel by quarter); infinite values are left out."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    for name, rows in frame.groupby(group):
        vals = rows[y].replace([np.inf, -np.inf], np.nan)
        ax.plot(rows[x].astype(str), vals, marker="o", markersize=3, linewidth=1.5, label=str(name))
    if money:
        ax.yaxis.set_major_formatter(money_formatter())
    ax.set_ylabel(ylabel or y)
    ax.set_title(title)
    ticks = sorted(frame[x].astype(str).unique())
    step = max(1, len(ticks) // 10)
    ax.set_xticks(ticks[::step])
    ax.tick_params(axis="x", rotation=45)
    ax.legend(frameon=False, fontsize=8, ncols=3)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def ltv_by_method(frame: pd.DataFrame, *, group: str, title: str = "", ax: Axes | None = None) -> Axes:
    """LTV per group, one bar per method, with the bootstrap interval as error bars."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    groups = list(dict.fromkeys(frame[group].astype(str)))
    methods = list(dict.fromkeys(frame["method"]))
    width = 0.8 / max(len(methods), 1)
    colors = {"simple": "#718096", "survival": "#2b6cb0", "sbg": "#2f855a"}
    x = np.arange(len(groups))
    for i, method in enumerate(methods):
        sub = frame[frame["method"] == method]
        rows = sub.set_index(sub[group].astype(str)).reindex(groups)
        value = rows["ltv"].replace([np.inf], np.nan).to_numpy(float)
        lo = np.clip(value - rows["ltv_low"].to_numpy(float), 0, None)
        hi = np.clip(rows["ltv_high"].to_numpy(float) - value, 0, None)
        ax.bar(
            x + (i - (len(methods) - 1) / 2) * width,
            value,
            width,
            yerr=[np.nan_to_num(lo), np.nan_to_num(hi)],
            capsize=3,
            label=method,
            color=colors.get(method, "#a0aec0"),
        )
    ax.set_xticks(x, groups)
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_ylabel("LTV per customer")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def against_benchmark(
    frame: pd.DataFrame,
    *,
    group: str,
    value: str,
    benchmark: float,
    title: str = "",
    ylabel: str = "",
    concern: float | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Bars per group with the benchmark as a dashed line (and a red concern line if given)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    data = frame[np.isfinite(frame[value].astype(float))]
    bars = ax.bar(data[group].astype(str), data[value].astype(float), color="#2b6cb0")
    for bar, v in zip(bars, data[value].astype(float), strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(benchmark, color="#2f855a", linestyle="--", linewidth=1.2)
    if concern is not None:
        ax.axhline(concern, color="#c53030", linestyle=":", linewidth=1.2)
    ax.set_ylabel(ylabel or value)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=20)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


_COMPONENT_COLOURS = {
    "contracted": "#2b6cb0",
    "one_time": "#718096",
    "usage": "#319795",
    "renewal": "#38a169",
    "pipeline": "#d69e2e",
    "new_business": "#805ad5",
}


def forecast_fan(
    forecast: pd.DataFrame,
    *,
    group: str = "total",
    history: pd.Series | None = None,
    title: str = "",
    ax: Axes | None = None,
) -> Axes:
    """Fan chart of the total forecast: the mean, the P10-P90 band and recent history.

    Parameters
    ----------
    forecast : DataFrame
        :func:`renewforecast.revenue_forecast` output.
    group : str, default "total"
    history : Series, optional
        Recognised revenue by month end, drawn before the forecast.

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> fc = pd.DataFrame({"month": pd.date_range("2026-01-31", periods=3, freq="ME"), "group": "total",
    ...                    "component": "total", "mean": [10., 11, 12], "p10": [9., 9.5, 10],
    ...                    "p50": [10., 11, 12], "p90": [11., 12.5, 14]})
    >>> len(forecast_fan(fc).collections)
    1
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    rows = forecast[(forecast["component"] == "total") & (forecast["group"] == group)].sort_values("month")
    if history is not None and len(history):
        ax.plot(history.index, history.to_numpy(), color="#4a5568", label="recognised")
    ax.fill_between(rows["month"], rows["p10"], rows["p90"], color="#90cdf4", alpha=0.6, label="P10 to P90")
    ax.plot(rows["month"], rows["mean"], color="#2b6cb0", marker="o", markersize=3, label="forecast (mean)")
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_title(title)
    ax.legend(frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def forecast_components(
    forecast: pd.DataFrame, *, group: str = "total", title: str = "", ax: Axes | None = None
) -> Axes:
    """Stacked bars of the forecast's mean by component and month.

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> fc = pd.DataFrame({"month": pd.Timestamp("2026-01-31"), "group": "total",
    ...                    "component": ["contracted", "renewal"], "mean": [5.0, 2.0]})
    >>> [t.get_text() for t in forecast_components(fc).get_legend().get_texts()]
    ['contracted', 'renewal']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    rows = forecast[(forecast["group"] == group) & (forecast["component"] != "total")]
    wide = rows.pivot_table(index="month", columns="component", values="mean", aggfunc="sum").fillna(0.0)
    wide = wide[[c for c in _COMPONENT_COLOURS if c in wide.columns]]
    bottom = np.zeros(len(wide))
    width = 20  # days, so monthly bars do not touch
    for c in wide.columns:
        ax.bar(wide.index, wide[c], bottom=bottom, width=width, color=_COMPONENT_COLOURS[c], label=c)
        bottom = bottom + wide[c].to_numpy()
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_title(title)
    ax.legend(frameon=False, ncol=4, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def _nothing_to_show(ax: Axes, message: str, title: str = "") -> Axes:
    """An empty chart says why it is empty (a first run has nothing to grade yet) instead of drawing bare axes."""
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, color="#4a5568", transform=ax.transAxes)
    return ax


def backtest_accuracy(by_horizon: pd.DataFrame, *, title: str = "", ax: Axes | None = None) -> Axes:
    """MAPE by forecast horizon, one line per method (``ForecastBacktest.by_horizon()``).

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> t = pd.DataFrame({"bottom_up": [0.01, 0.02], "top_down_ets": [0.02, 0.04]}, index=[1, 2])
    >>> len(backtest_accuracy(t).get_lines())
    2
    >>> [x.get_text() for x in backtest_accuracy(t.iloc[:0]).texts]
    ['No forecast month has been graded yet.']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    if by_horizon.dropna(how="all").empty:
        return _nothing_to_show(ax, "No forecast month has been graded yet.", title)
    for method in by_horizon.columns:
        ax.plot(by_horizon.index, 100 * by_horizon[method], marker="o", markersize=3, label=method.replace("_", " "))
    ax.set_xlabel("months ahead")
    ax.set_ylabel("MAPE (%)")
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


# --------------------------------------------------------------------------- #
# Model evaluation: calibration and lift of a renewal model's backtest
# --------------------------------------------------------------------------- #


def calibration_curve(evaluation, *, ax: Axes | None = None) -> Axes:
    """Reliability diagram of a :class:`renewforecast.RenewalEvaluation`: predicted against observed renewal rate.

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> from types import SimpleNamespace
    >>> matplotlib.use("Agg")
    >>> ev = SimpleNamespace(calibration=pd.DataFrame({"predicted": [0.2, 0.8], "observed": [0.25, 0.7]}),
    ...                      oracle_calibration=None)
    >>> len(calibration_curve(ev).get_lines())
    2
    >>> ev.calibration = ev.calibration.iloc[:0]
    >>> [x.get_text() for x in calibration_curve(ev).texts]
    ['No renewal has been decided yet.']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    if evaluation.calibration.empty:
        return _nothing_to_show(ax, "No renewal has been decided yet.")
    ax.plot([0, 1], [0, 1], linestyle="--", color="#a0aec0", linewidth=1, label="perfect")
    c = evaluation.calibration
    ax.plot(c["predicted"], c["observed"], marker="o", color="#2b6cb0", label="model")
    if evaluation.oracle_calibration is not None:
        o = evaluation.oracle_calibration
        ax.plot(o["predicted"], o["observed"], marker=".", color="#718096", alpha=0.7, label="true probability")
    ax.set_xlabel("predicted renewal probability")
    ax.set_ylabel("observed renewal rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def lift_by_decile(evaluation, *, ax: Axes | None = None) -> Axes:
    """Churn rate by risk decile (1 = least likely to renew) of a :class:`renewforecast.RenewalEvaluation`.

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> from types import SimpleNamespace
    >>> matplotlib.use("Agg")
    >>> ev = SimpleNamespace(lift=pd.DataFrame({"decile": [1, 2], "churn_rate": [0.4, 0.1], "lift": [1.6, 0.4]}),
    ...                      predictions=pd.DataFrame({"renewed": [1, 0, 1, 1]}))
    >>> [t.get_text() for t in lift_by_decile(ev).texts]
    ['1.6x', '0.4x']
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    lift = evaluation.lift
    ax.bar(lift["decile"], lift["churn_rate"] * 100, color="#c53030")
    overall = 1 - evaluation.predictions["renewed"].mean()
    ax.axhline(overall * 100, color="#4a5568", linestyle="--", linewidth=1)
    for d, r, lf in zip(lift["decile"], lift["churn_rate"], lift["lift"], strict=True):
        ax.text(d, r * 100, f"{lf:.1f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(lift["decile"])
    ax.set_xlabel("risk decile (1 = least likely to renew)")
    ax.set_ylabel("churn rate (%)")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


# --------------------------------------------------------------------------- #
# Index page cards: small figures turned into self-contained SVG images
# --------------------------------------------------------------------------- #

_BLUE, _GREY, _GREEN, _RED = "#1f5fa8", "#8a949e", "#2e8540", "#b8322a"


def _image(fig: Any, alt: str) -> str:
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "renewforecast"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.02, metadata={"Date": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{html.escape(alt)}">'


def _small_figure() -> tuple[Any, Any]:
    # matplotlib.figure.Figure keeps pyplot's global state (and any GUI
    # backend) out of a library call.
    fig = Figure(figsize=(3.4, 1.15), dpi=100)
    ax = fig.add_subplot()
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#c7cdd3")
    ax.tick_params(labelsize=7, colors="#55606b", length=0)
    ax.set_yticks([])
    return fig, ax


def _month_axis(ax: Any, months: Sequence[str]) -> None:
    if not months:
        return
    ticks = [0, len(months) - 1]
    ax.set_xticks(ticks, [_month_label(months[i]) for i in ticks])


def _month_label(iso: str) -> str:
    try:
        return dt.date.fromisoformat(str(iso)[:10]).strftime("%b %Y")
    except ValueError:
        return str(iso)


def _arr_chart(series: dict[str, Any]) -> str | None:
    values = [v for v in series.get("value", []) if v is not None]
    if len(values) < 2:
        return None
    fig, ax = _small_figure()
    ax.plot(range(len(values)), values, color=_BLUE, lw=1.8)
    ax.fill_between(range(len(values)), min(values), values, color=_BLUE, alpha=0.08, lw=0)
    _month_axis(ax, series.get("month", []))
    return _image(fig, "ARR at each month end over the last two years")


def _bridge_chart(bridge: dict[str, Any]) -> str | None:
    steps = [("new", 1), ("expansion", 1), ("reactivation", 1), ("contraction", -1), ("churn", -1)]
    values = [sign * float(bridge.get(name) or 0.0) for name, sign in steps]
    if not any(values):
        return None
    fig, ax = _small_figure()
    colors = [_GREEN if v >= 0 else _RED for v in values]
    ax.bar(range(len(values)), values, color=colors, width=0.65)
    ax.axhline(0, color="#c7cdd3", lw=0.8)
    ax.set_xticks(range(len(values)), ["new", "expansion", "reactiv.", "contraction", "churn"])
    ax.spines["bottom"].set_visible(False)
    return _image(fig, "MRR added and lost last month by movement")


def _quarters_chart(quarters: dict[str, Any]) -> str | None:
    names = quarters.get("quarter", [])
    if not names:
        return None
    fig, ax = _small_figure()
    x = range(len(names))
    ax.barh(list(x), quarters.get("arr", []), color="#d5dde6", height=0.6, label="up for renewal")
    ax.barh(list(x), quarters.get("arr_at_risk", []), color=_RED, height=0.6, label="at risk")
    ax.set_yticks(list(x), names)
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.spines["bottom"].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="lower right", ncol=2, bbox_to_anchor=(1, -0.45))
    return _image(fig, "ARR up for renewal and ARR at risk in the next two quarters")


def _fan_chart(series: dict[str, Any]) -> str | None:
    fc = series.get("forecast", {})
    months = list(fc.get("month", []))
    if not months:
        return None
    hist = series.get("history", {})
    h_months = list(hist.get("month", []))[-12:]
    h_values = list(hist.get("value", []))[-12:]
    fig, ax = _small_figure()
    n = len(h_months)
    if n:
        ax.plot(range(n), h_values, color=_GREY, lw=1.5)
    x = list(range(n, n + len(months)))
    ax.fill_between(x, fc["p10"], fc["p90"], color=_BLUE, alpha=0.18, lw=0)
    ax.plot(x, fc["mean"], color=_BLUE, lw=1.8)
    _month_axis(ax, h_months + months)
    return _image(fig, "Monthly revenue: recognised, then forecast mean with P10 to P90 band")


def card_chart(key: str, series: dict[str, Any]) -> str | None:
    """The small chart of a headline card, as an ``<img>`` with an SVG ``data:`` URI, or None.

    Parameters
    ----------
    key : str
        The figure's key: ``arr`` (ARR over time), ``mrr_bridge`` (last
        month's movements), ``arr_at_risk`` (ARR up for renewal and at risk by
        quarter) or ``horizon_revenue`` (recognised revenue, then the forecast
        fan). Other figures have no chart.
    series : dict
        The headline's ``series``, as its builder recorded them.

    Returns
    -------
    str or None
        None when the figure has no chart or its series is missing or
        malformed: a bad series costs the chart, never the page.

    Examples
    --------
    >>> img = card_chart("arr", {"arr": {"month": ["2024-01-31", "2024-02-29"], "value": [100.0, 120.0]}})
    >>> img.startswith('<img src="data:image/svg+xml;base64,'), card_chart("nrr", {})
    (True, None)
    """
    try:
        if key == "arr" and "arr" in series:
            return _arr_chart(series["arr"])
        if key == "mrr_bridge" and "bridge" in series:
            return _bridge_chart(series["bridge"])
        if key == "arr_at_risk" and "quarters" in series:
            return _quarters_chart(series["quarters"])
        if key == "horizon_revenue" and "forecast" in series:
            return _fan_chart(series)
    except (TypeError, ValueError, KeyError):
        return None  # a malformed series costs the chart, never the page
    return None
