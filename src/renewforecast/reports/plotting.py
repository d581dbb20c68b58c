"""Charts for the reports. Every function takes ``ax=None`` and returns the Axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

__all__ = ["backtest_accuracy", "bar_by_group", "cohort_heatmap", "forecast_components", "forecast_fan", "grouped_rates", "line_over_time", "money_formatter", "mrr_bridge",
           "against_benchmark", "lines_by_group", "ltv_by_method", "sbg_fit", "survival_by_group"]


def _money(x: float, _pos=None) -> str:
    for unit, div in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:,.1f}{unit}"
    return f"{x:,.0f}"


def money_formatter() -> FuncFormatter:
    """Axis formatter: 1,250,000 -> 1.2m."""
    return FuncFormatter(_money)


def bar_by_group(frame: pd.DataFrame, *, group: str, value: str, title: str = "",
                 currency: str = "", ax: Axes | None = None) -> Axes:
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
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {_money(v)}",
                va="center", fontsize=9)
    ax.xaxis.set_major_formatter(money_formatter())
    ax.set_xlabel(value.upper() + (f" ({currency})" if currency else ""))
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.15)
    return ax


def line_over_time(frame: pd.DataFrame, *, x: str, y: str, title: str = "", currency: str = "",
                   ax: Axes | None = None) -> Axes:
    """One series over time, money on the y axis."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(frame[x], frame[y], color="#2b6cb0", linewidth=2)
    ax.fill_between(frame[x], frame[y], color="#2b6cb0", alpha=0.08)
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_ylabel(y.upper() + (f" ({currency})" if currency else ""))
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(bottom=0)
    return ax


_BRIDGE = (("start_mrr", "Start", "#718096"), ("new", "New", "#2f855a"), ("expansion", "Expansion", "#48bb78"),
           ("reactivation", "Reactivation", "#9ae6b4"), ("contraction", "Contraction", "#f6ad55"),
           ("churn", "Churn", "#c53030"), ("end_mrr", "End", "#2b6cb0"))


def mrr_bridge(row: pd.Series | dict, *, title: str = "", currency: str = "", ax: Axes | None = None) -> Axes:
    """Waterfall from start MRR through each movement to end MRR.

    ``row`` holds ``start_mrr``, the five movements (positive amounts) and
    ``end_mrr``, as one row of :func:`renewforecast.mrr_movements` summed.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    level = 0.0
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
        sign = "-" if key in ("contraction", "churn") else ("+" if key not in ("start_mrr", "end_mrr") else "")
        ax.text(i, bottom + height, f"{sign}{_money(v)}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(_BRIDGE)), [b[1] for b in _BRIDGE])
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_ylabel("MRR" + (f" ({currency})" if currency else ""))
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    lo = min(float(row["start_mrr"]), float(row["end_mrr"]))
    ax.set_ylim(bottom=max(0.0, lo * 0.85))
    return ax


def grouped_rates(frame: pd.DataFrame, *, group: str, rates: list[str], title: str = "",
                  reference: float | None = None, ax: Axes | None = None) -> Axes:
    """Side-by-side bars of rates (fractions shown as percent) per group."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    n = len(rates)
    x = np.arange(len(frame))
    width = 0.8 / n
    colors = ["#2b6cb0", "#48bb78", "#ed8936", "#805ad5", "#718096"]
    for i, rate in enumerate(rates):
        vals = frame[rate].astype(float).to_numpy()
        bars = ax.bar(x + (i - (n - 1) / 2) * width, vals * 100, width, label=rate.replace("_", " "),
                      color=colors[i % len(colors)])
        for bar, v in zip(bars, vals, strict=True):
            if v == v:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{v:.0%}", ha="center",
                        va="bottom", fontsize=8)
    if reference is not None:
        ax.axhline(reference * 100, color="#4a5568", linestyle="--", linewidth=1)
    ax.set_xticks(x, frame[group].astype(str))
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, ncols=min(n, 4), loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def cohort_heatmap(cohorts: pd.DataFrame, *, title: str = "", max_periods: int = 16,
                   ax: Axes | None = None) -> Axes:
    """Retention of each acquisition cohort by period since acquisition."""
    grid = cohorts[cohorts["period"] <= max_periods].pivot(index="cohort", columns="period", values="retention")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.32 * max(len(grid), 4) + 1.2))
    im = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="RdYlGn", vmin=0.4, vmax=1.4)
    ax.set_yticks(range(len(grid)), grid.index)
    ax.set_xticks(range(len(grid.columns)), grid.columns)
    ax.set_xlabel("periods since acquisition")
    values = grid.to_numpy(dtype=float)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if values[i, j] == values[i, j]:
                ax.text(j, i, f"{values[i, j]:.0%}", ha="center", va="center", fontsize=7)
    ax.figure.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    ax.set_title(title)
    return ax


def survival_by_group(model, lifetimes: pd.DataFrame, *, group: str = "segment", horizon: int = 60,
                      ax: Axes | None = None) -> Axes:
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
        ax.plot(rows["period"], rows["alive"] / float(base.iloc[0]), marker="o", linewidth=1, alpha=0.7,
                label=f"{cohort} cohort")
    ax.set_xlabel("years since acquisition")
    ax.set_ylabel("share of the cohort still a customer")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=8, ncols=2)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def lines_by_group(frame: pd.DataFrame, *, x: str, y: str, group: str, title: str = "", ylabel: str = "",
                   money: bool = True, ax: Axes | None = None) -> Axes:
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
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, value, width, yerr=[np.nan_to_num(lo), np.nan_to_num(hi)],
               capsize=3, label=method, color=colors.get(method, "#a0aec0"))
    ax.set_xticks(x, groups)
    ax.yaxis.set_major_formatter(money_formatter())
    ax.set_ylabel("LTV per customer")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def against_benchmark(frame: pd.DataFrame, *, group: str, value: str, benchmark: float, title: str = "",
                      ylabel: str = "", concern: float | None = None, ax: Axes | None = None) -> Axes:
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


_COMPONENT_COLOURS = {"contracted": "#2b6cb0", "one_time": "#718096", "usage": "#319795",
                      "renewal": "#38a169", "pipeline": "#d69e2e", "new_business": "#805ad5"}


def forecast_fan(forecast: pd.DataFrame, *, group: str = "total", history: pd.Series | None = None,
                 title: str = "", ax: Axes | None = None) -> Axes:
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


def forecast_components(forecast: pd.DataFrame, *, group: str = "total", title: str = "",
                        ax: Axes | None = None) -> Axes:
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


def backtest_accuracy(by_horizon: pd.DataFrame, *, title: str = "", ax: Axes | None = None) -> Axes:
    """MAPE by forecast horizon, one line per method (``ForecastBacktest.by_horizon()``).

    Examples
    --------
    >>> import pandas as pd, matplotlib
    >>> matplotlib.use("Agg")
    >>> t = pd.DataFrame({"bottom_up": [0.01, 0.02], "top_down_ets": [0.02, 0.04]}, index=[1, 2])
    >>> len(backtest_accuracy(t).get_lines())
    2
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for method in by_horizon.columns:
        ax.plot(by_horizon.index, 100 * by_horizon[method], marker="o", markersize=3,
                label=method.replace("_", " "))
    ax.set_xlabel("months ahead")
    ax.set_ylabel("MAPE (%)")
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return ax
