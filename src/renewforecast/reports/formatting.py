"""Numbers for people: the one place money, percentages and durations are written out.

Headlines, the index page, chart labels and axes, and the command line's
messages all format through here, so a figure reads the same wherever it
appears:

- money is compact (``$1.3M``, ``12.3K CHF``; thousands only from 10,000 on)
  or whole (``$1,250,000``), with the currency's symbol when it has a common
  one and its ISO code after the number otherwise; never ``-$0``;
- percentages take a fraction (0.964 is ``96.4%``);
- a missing or non-finite value is ``n/a``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["KINDS", "format_duration", "format_money", "format_percent", "format_value"]

#: What :func:`format_value` can format.
KINDS = ("money", "percent", "ratio", "count", "months", "score", "text")

# Currencies shown by their symbol; any other ISO code follows the number.
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "AUD": "A$", "CAD": "C$"}


def _is_number(value: Any) -> bool:
    return value is not None and isinstance(value, int | float | np.number) and math.isfinite(value)


def format_money(value: Any, currency: str = "USD", *, compact: bool = True) -> str:
    """Format an amount of money for people.

    Parameters
    ----------
    value : float or None
    currency : str, default "USD"
        ISO code; common ones get their symbol, others follow the number.
        ``""`` writes the number alone (chart axes, whose label names the
        currency).
    compact : bool, default True
        ``$1.3M`` (billions, millions, and thousands from 10,000 on, one
        decimal), or the whole amount with thousands separators.

    Returns
    -------
    str
        ``"n/a"`` for a missing or non-finite value.

    Examples
    --------
    >>> format_money(651_557_737.35), format_money(651_557_737.35, compact=False)
    ('$651.6M', '$651,557,737')
    >>> format_money(-1_250.0, "EUR"), format_money(-0.2), format_money(12_345.6, "CHF")
    ('-€1,250', '$0', '12.3K CHF')
    >>> format_money(2_500_000, ""), format_money(None)
    ('2.5M', 'n/a')
    """
    if not _is_number(value):
        return "n/a"
    value = float(value)
    sign = "-" if value <= -0.5 else ""  # no "-$0"
    amount = abs(value)
    number = f"{amount:,.0f}"
    if compact:
        for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if amount >= 10 * size if unit == "K" else amount >= size:
                number = f"{amount / size:,.1f}{unit}"
                break
    if not currency:
        return f"{sign}{number}"
    symbol = _SYMBOLS.get(currency.upper())
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


def format_percent(value: Any, decimals: int = 1) -> str:
    """Format a fraction as a percentage (0.964 is 96.4%).

    Examples
    --------
    >>> format_percent(0.96459), format_percent(1.2, 0), format_percent(float("nan"))
    ('96.5%', '120%', 'n/a')
    """
    if not _is_number(value):
        return "n/a"
    return f"{100 * float(value):,.{decimals}f}%"


def format_value(value: Any, kind: str, currency: str = "USD") -> str:
    """Format a figure for people.

    Parameters
    ----------
    value : float, int, str or None
    kind : {"money", "percent", "ratio", "count", "months", "score", "text"}
        ``percent`` takes a fraction (0.964 is 96.4%); ``score`` is a
        unitless score such as a Brier score, to three decimals.
    currency : str, default "USD"
        ISO code; common ones get their symbol, others follow the number.

    Returns
    -------
    str
        ``"n/a"`` for a missing or non-finite value.

    Examples
    --------
    >>> format_value(651_557_737.35, "money")
    '$651.6M'
    >>> format_value(-1_250.0, "money", "EUR"), format_value(-0.2, "money")
    ('-€1,250', '$0')
    >>> format_value(12_345.6, "money", "CHF")
    '12.3K CHF'
    >>> format_value(0.96459, "percent"), format_value(3.9288, "ratio")
    ('96.5%', '3.9x')
    >>> format_value(4900, "count"), format_value(13.49, "months"), format_value(None, "money")
    ('4,900', '13.5 months', 'n/a')
    >>> format_value(0.17412, "score")
    '0.174'
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if kind == "text":
        return "n/a" if value is None else str(value)
    if not _is_number(value):
        return "n/a"
    value = float(value)
    if kind == "percent":
        return format_percent(value)
    if kind == "ratio":
        return f"{value:,.1f}x"
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "months":
        return f"{value:,.1f} months"
    if kind == "score":
        return f"{value:.3f}"
    return format_money(value, currency)


def format_duration(seconds: float) -> str:
    """Format a duration for people.

    Examples
    --------
    >>> format_duration(4.26), format_duration(95.0), format_duration(3725)
    ('4.3 s', '1 min 35 s', '1 h 2 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
