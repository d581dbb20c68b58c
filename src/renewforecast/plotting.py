"""Charts for the reports. Every function takes ``ax=None`` and returns the Axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

__all__ = ["bar_by_group", "money_formatter"]


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
