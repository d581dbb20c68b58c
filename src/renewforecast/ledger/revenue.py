"""Where the ledger engines used to live, kept so that existing imports keep working.

The subscription ledger's engines now live in the module named for what it
holds: :mod:`~renewforecast.ledger.valuation` (what a row is worth on a day),
:mod:`~renewforecast.ledger.mrr` (MRR and its movements),
:mod:`~renewforecast.ledger.recognition` (recognised revenue),
:mod:`~renewforecast.ledger.hierarchy` (account hierarchies),
:mod:`~renewforecast.ledger.set_aside` (what quarantined rows carried), and
month arithmetic in :mod:`renewforecast.dates`. Import from there (or use the
public names on ``renewforecast``); this module only re-exports them.
"""

from __future__ import annotations

from renewforecast.dates import last_month_end
from renewforecast.ledger.hierarchy import ultimate_parents
from renewforecast.ledger.mrr import MOVEMENTS, mrr_movements, mrr_table
from renewforecast.ledger.recognition import recognized_revenue
from renewforecast.ledger.set_aside import quarantine_report, set_aside_summary
from renewforecast.ledger.valuation import (
    CHARGE_TYPES,
    arr_on,
    counts_on,
    ledger,
    row_amounts,
)

__all__ = [
    "CHARGE_TYPES",
    "MOVEMENTS",
    "arr_on",
    "counts_on",
    "last_month_end",
    "ledger",
    "mrr_movements",
    "mrr_table",
    "quarantine_report",
    "recognized_revenue",
    "row_amounts",
    "set_aside_summary",
    "ultimate_parents",
]
