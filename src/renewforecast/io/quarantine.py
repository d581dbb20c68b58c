"""Setting aside the rows that break a rule, with everything that depends on them.

``load_book(path, on_error="quarantine")`` loads what is sound and lists what
it set aside, so that a nightly job can score the good contracts and alert on
the bad ones instead of failing on all of them. A row is set aside when a
rule names it; so is every row that hangs off it (a contract's subscriptions,
an opportunity's lines and their schedules, an account's contracts), and a
whole subscription chain when any of its rows goes (a chain without its
termination row would be worth the wrong amount). Links that merely point at
a set-aside record (a renewal's renewed contract, a parent account) are
cleared. Problems about a whole file (missing, unreadable, missing a
required column) cannot be set aside row by row: they still refuse the
export.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from renewforecast.book import chain_root_positions
from renewforecast.exceptions import Problem

__all__ = ["FILE_LEVEL_RULES", "set_aside"]

#: Rules about a whole file: no row can be set aside for them.
FILE_LEVEL_RULES = frozenset(
    {
        "missing_file",
        "missing_column",
        "encoding",
        "empty_file",
        "malformed_csv",
        "duplicate_column",
        "unrecognised_folder",
        "missing_folder",
        "mixed_currencies",
        "unknown_currency",
    }
)

# (child table, child column, parent table, parent key): the child goes with its parent.
_HANGS_OFF = (
    ("contracts", "account_id", "accounts", "account_id"),
    ("subscriptions", "account_id", "accounts", "account_id"),
    ("subscriptions", "contract_id", "contracts", "contract_id"),
    ("subscriptions", "product_id", "products", "product_id"),
    ("opportunities", "account_id", "accounts", "account_id"),
    ("opportunity_lines", "opportunity_id", "opportunities", "opportunity_id"),
    ("opportunity_lines", "product_id", "products", "product_id"),
    ("schedules", "line_id", "opportunity_lines", "line_id"),
    ("opportunity_history", "opportunity_id", "opportunities", "opportunity_id"),
    ("signals", "account_id", "accounts", "account_id"),
)
# (table, column, referenced table, key): the link is cleared.
_POINTS_AT = (
    ("accounts", "parent_account_id", "accounts", "account_id"),
    ("contracts", "renewed_contract_id", "contracts", "contract_id"),
    ("opportunities", "renewed_contract_id", "contracts", "contract_id"),
    ("opportunities", "amended_contract_id", "contracts", "contract_id"),
)


def _chain_roots(subs: pd.DataFrame) -> np.ndarray:
    ids = subs["subscription_id"].astype(object).to_numpy()
    parent = pd.Index(ids).get_indexer(subs["revised_subscription_id"].astype(object).to_numpy())
    parent[subs["revised_subscription_id"].isna().to_numpy()] = -1
    return ids[chain_root_positions(parent)] if len(ids) else np.empty(0, dtype=object)


def set_aside(
    frames: dict[str, pd.DataFrame], problems: list[Problem]
) -> tuple[dict[str, pd.DataFrame], list[dict], dict[str, pd.DataFrame]] | None:
    """Remove the rows ``problems`` name, and what depends on them.

    Parameters
    ----------
    frames : dict of DataFrame
        Canonical tables with their ``_file`` and ``_line`` provenance.
    problems : list of Problem
        The errors found.

    Returns
    -------
    (frames, entries, removed) or None
        The tables without the rows set aside; one entry per row set aside
        (file, line, record_id, column, rule, message, table); and the rows
        removed per table. ``None`` when a problem concerns a whole file.
    """
    if any(p.rule in FILE_LEVEL_RULES or p.line is None for p in problems):
        return None
    by_file: dict[str, list[Problem]] = {}
    for p in problems:
        by_file.setdefault(p.file, []).append(p)
    hit = {name: np.zeros(len(f), dtype=bool) for name, f in frames.items()}
    reason: dict[tuple[str, int], tuple[str, str, str]] = {}
    for name, frame in frames.items():
        if not len(frame) or "_file" not in frame:
            continue
        files = frame["_file"].astype(object).to_numpy()
        lines = frame["_line"].to_numpy()
        for file in set(files) & set(by_file):
            for p in by_file[file]:
                rows = np.flatnonzero((files == file) & (lines == p.line))
                for r in rows:
                    hit[name][r] = True
                    reason.setdefault((name, int(r)), (p.column, p.rule, p.message))
    # Cascade until nothing more depends on what was set aside.
    while True:
        before = sum(int(m.sum()) for m in hit.values())
        for child, col, parent, key in _HANGS_OFF:
            if child not in frames or parent not in frames or not hit[parent].any():
                continue
            gone = set(frames[parent][key][hit[parent]].dropna())
            dep = frames[child][col].isin(gone).to_numpy() & ~hit[child]
            for r in np.flatnonzero(dep):
                pid = frames[child][col].iloc[r]
                reason.setdefault(
                    (child, int(r)), ("", "depends_on_set_aside", f"depends on {parent} {pid}, which was set aside")
                )
            hit[child] |= dep
        subs = frames.get("subscriptions")
        if subs is not None and hit["subscriptions"].any():
            roots = _chain_roots(subs)
            gone_roots = set(roots[hit["subscriptions"]])
            dep = np.isin(roots, list(gone_roots)) & ~hit["subscriptions"]
            for r in np.flatnonzero(dep):
                reason.setdefault(
                    ("subscriptions", int(r)),
                    (
                        "",
                        "depends_on_set_aside",
                        f"in the chain of subscription {roots[r]}, part of which was set aside",
                    ),
                )
            hit["subscriptions"] |= dep
        if sum(int(m.sum()) for m in hit.values()) == before:
            break
    entries, removed, out = [], {}, {}
    for name, frame in frames.items():
        mask = hit[name]
        if mask.any():
            removed[name] = frame[mask]
            for r in np.flatnonzero(mask):
                column, rule, message = reason[(name, int(r))]
                rid = frame["_id"].iloc[r] if "_id" in frame else None
                entries.append(
                    {
                        "file": str(frame["_file"].iloc[r]),
                        "line": int(frame["_line"].iloc[r]),
                        "record_id": "" if rid is None or pd.isna(rid) else str(rid),
                        "column": column,
                        "rule": rule,
                        "message": message,
                        "table": name,
                    }
                )
        out[name] = frame[~mask].reset_index(drop=True) if mask.any() else frame
    for table, col, ref, key in _POINTS_AT:
        if table in out and ref in removed and col in out[table]:
            gone = set(removed[ref][key].dropna())
            link = out[table][col].isin(gone)
            if link.any():
                out[table] = out[table].copy()
                out[table].loc[link, col] = None
    return out, entries, removed
