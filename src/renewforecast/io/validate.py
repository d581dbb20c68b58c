"""Rules the canonical tables must obey, checked all at once.

Per-table rules (types already parsed, nullability, allowed values, bounds,
unique ids) are pandera schemas from :mod:`renewforecast.schemas`; rules that
span rows or tables (references, dates against each other, schedules against
their lines) are plain pandas here. Every broken rule becomes a
:class:`~renewforecast.exceptions.Problem` naming the file, line, record id
and the column as it is called in the file.

Errors stop loading. Warnings are kept on the Book for the data-quality
report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors

from renewforecast.dates import CENT
from renewforecast.exceptions import Problem
from renewforecast.schemas import TABLES, pandera_schema

__all__ = ["validate_tables"]


_PRICE_COLUMNS = {"net_price", "unit_price"}


def _rule_for(table: str, column: str, check: str) -> str:
    if check == "field_uniqueness":
        return "duplicate_id"
    if check == "not_nullable":
        return "missing_value"
    if check.startswith("isin"):
        if (column in ("type",) and table == "schedules") or column == "revenue_schedule_type":
            return "schedule_type_not_allowed"
        if column == "revenue_installment_period":
            return "schedule_period_not_allowed"
        return "value_not_allowed"
    if column == "revenue_installments":
        return "installments_out_of_range"
    if column in _PRICE_COLUMNS and check.startswith("greater_than"):
        return "negative_price"
    if column in ("sales_spend", "marketing_spend") and check.startswith("greater_than"):
        return "negative_spend"
    return "out_of_range"


def _describe(rule: str, value: object, column: str, table: str) -> str:
    spec = TABLES[table].col(column) if column in TABLES[table].names else None
    if rule == "duplicate_id":
        return f"id {value!r} appears more than once"
    if rule == "missing_value":
        return "a value is required"
    if rule in ("schedule_type_not_allowed", "schedule_period_not_allowed", "value_not_allowed"):
        allowed = ", ".join(spec.allowed) if spec and spec.allowed else ""
        return f"{value!r} is not one of: {allowed} (case-insensitive)"
    if rule == "installments_out_of_range":
        return f"{value} installments; Salesforce allows 1 to 150"
    if rule == "negative_price":
        return f"price {value} is negative; a line's price is never below zero"
    if spec is not None:
        lo = "" if spec.ge is None else f">= {spec.ge}"
        hi = "" if spec.le is None else f"<= {spec.le}"
        return f"{value} is out of range (must be {' and '.join(x for x in (lo, hi) if x)})"
    return f"{value} is not allowed"


#: A per-unit price more than this many times its list price, or a row worth
#: this many times more a month per unit than its product's median, is flagged.
PLAUSIBLE_RATIO = 10.0
#: Rows of a product needed before its median value per unit is a yardstick.
PLAUSIBLE_MIN_ROWS = 5


def on_cycle(ids, parents) -> np.ndarray:
    """Rows whose chain of parents comes back to them.

    Pointer doubling: after jumping at least ``len(ids)`` steps up, a row that
    still has a parent stands on a cycle, and the rows reached that way are
    exactly those on one. Linear in rows times log of rows, whatever the
    depth of the chains.

    Examples
    --------
    >>> on_cycle(["a", "b", "c", "d"], ["b", "a", "a", None]).tolist()
    [True, True, False, False]
    >>> on_cycle(["x"], ["x"]).tolist()
    [True]
    """
    ids = np.asarray(ids, dtype=object)
    parents = pd.Series(parents, dtype=object)
    parent = pd.Index(ids).get_indexer(parents.to_numpy(dtype=object))
    parent[parents.isna().to_numpy()] = -1
    jump = parent
    n = len(ids)
    steps = 1
    while steps < n:
        has = jump >= 0
        jump = np.where(has, jump[np.maximum(jump, 0)], -1)
        steps *= 2
    cycle = np.zeros(n, dtype=bool)
    cycle[np.unique(jump[jump >= 0])] = True
    if n and steps >= n:
        # (the landing rows of one jump can miss some rows of a long cycle;
        # walking once around from them marks the rest)
        cur = np.flatnonzero(cycle)
        while len(cur):
            nxt = parent[cur]
            nxt = nxt[(nxt >= 0) & ~cycle[np.maximum(nxt, 0)]]
            cycle[nxt] = True
            cur = nxt
    return cycle


def _hierarchy_cycles(accounts: pd.DataFrame) -> np.ndarray:
    """Rows whose ParentId chain loops back on itself."""
    return on_cycle(accounts["account_id"].to_numpy(dtype=object), accounts["parent_account_id"])


#: Bounds no real value crosses. A price or amount beyond a trillion in any
#: currency, a quantity beyond a billion units, or a term beyond a century is
#: a damaged cell or a unit mistake: refused rather than valued.
MAX_AMOUNT = 1e12
MAX_QUANTITY = 1e9
MAX_TERM_MONTHS = 1200
_BOUNDS = {
    "subscriptions": {
        "net_price": MAX_AMOUNT,
        "list_price": MAX_AMOUNT,
        "quantity": MAX_QUANTITY,
        "segment_quantity": MAX_QUANTITY,
        "prorate_multiplier": MAX_TERM_MONTHS,
    },
    "products": {"subscription_term_months": MAX_TERM_MONTHS},
    "contracts": {"term_months": MAX_TERM_MONTHS},
    "opportunities": {"amount": MAX_AMOUNT},
    "opportunity_lines": {"unit_price": MAX_AMOUNT, "total_price": MAX_AMOUNT, "quantity": MAX_QUANTITY},
    "schedules": {"revenue": MAX_AMOUNT, "quantity": MAX_QUANTITY},
    "spend": {"sales_spend": MAX_AMOUNT, "marketing_spend": MAX_AMOUNT},
}


def _bounds(rep: _Reporter, tables: dict[str, pd.DataFrame]) -> None:
    for name, limits in _BOUNDS.items():
        frame = tables.get(name)
        if frame is None or not len(frame):
            continue
        for column, limit in limits.items():
            if column not in frame.columns:
                continue
            values = frame[column].astype("float64")
            rep.rows(
                name,
                (values.abs() > limit).fillna(False).to_numpy(),
                column,
                "value_out_of_bounds",
                lambda x, column=column, limit=limit: [
                    f"{v:.6g} is beyond any real {column.replace('_', ' ')} (at most {limit:,.0f} in size): "
                    "a damaged cell or a unit mistake"
                    for v in x[column]
                ],
            )


def _revision_chains(rep: _Reporter, s: pd.DataFrame) -> None:
    """Revision chains end at an original row, and originals are positive."""
    if not len(s):
        return
    revised = s["revised_subscription_id"]
    own = (revised == s["subscription_id"]).fillna(False).to_numpy(dtype=bool)
    rep.rows(
        "subscriptions",
        own,
        "revised_subscription_id",
        "self_revision",
        lambda x: [f"the row names itself ({r}) as the subscription it revises" for r in x["subscription_id"]],
    )
    if revised.notna().any():
        cycle = on_cycle(s["subscription_id"].to_numpy(dtype=object), revised) & ~own
        rep.rows(
            "subscriptions",
            cycle,
            "revised_subscription_id",
            "revision_cycle",
            lambda x: [
                f"following SBQQ__RevisedSubscription__c from {sid} comes back to it: a revision "
                "chain must end at the original row"
                for sid in x["subscription_id"]
            ],
        )
    original = revised.isna().to_numpy() & (s["quantity"].astype("float64") < 0).fillna(False).to_numpy()
    rep.rows(
        "subscriptions",
        original,
        "quantity",
        "negative_original",
        lambda x: [
            f"quantity {q:g} on a row that revises nothing: a decrease is a negative row naming the "
            "subscription it revises (SBQQ__RevisedSubscription__c)"
            for q in x["quantity"]
        ],
    )


def _price_warnings(rep: _Reporter, tables: dict[str, pd.DataFrame]) -> None:
    """Credits, sign mismatches and implausible prices on subscription rows (warnings)."""
    s = tables["subscriptions"]
    if not len(s):
        return
    total = s["total_priced"].fillna(False).astype(bool).to_numpy() if "total_priced" in s else np.zeros(len(s), bool)
    price = s["net_price"].to_numpy(dtype="float64")
    qty = s["quantity"].to_numpy(dtype="float64")
    rep.rows(
        "subscriptions",
        ~total & (price < 0),
        "net_price",
        "credit_line",
        lambda x: [
            f"per-unit price {p:,.2f} is negative: loaded as a credit of {p * q:,.2f} over the term"
            for p, q in zip(x["net_price"], x["quantity"], strict=True)
        ],
        severity="warning",
    )
    rep.rows(
        "subscriptions",
        total & (np.sign(price) * np.sign(qty) < 0),
        "net_price",
        "total_sign_mismatch",
        lambda x: [
            f"line total {p:,.2f} and quantity {q:g} have opposite signs; valued with the "
            "quantity's sign (the delta's direction)"
            for p, q in zip(x["net_price"], x["quantity"], strict=True)
        ],
        severity="warning",
    )
    if "list_price" in s:
        lst = s["list_price"].to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            above = ~total & (lst > 0) & (price > PLAUSIBLE_RATIO * lst)
        rep.rows(
            "subscriptions",
            above,
            "net_price",
            "price_above_list",
            lambda x: [
                f"per-unit price {p:,.2f} is {p / lp:,.1f} times its list price {lp:,.2f}: probably "
                "a line total (slab discount schedule or block price) on a row not marked as such "
                "(SBQQ__DiscountScheduleType__c, SBQQ__PricingMethod__c)"
                for p, lp in zip(x["net_price"], x["list_price"], strict=True)
            ],
            severity="warning",
        )
    # Value a month per unit against the product's median (recurring rows).
    prod = tables["products"].drop_duplicates("product_id").set_index("product_id")
    term = s["product_id"].map(prod["subscription_term_months"]).astype("float64").fillna(12.0)
    term = term.where(term > 0, 12.0).to_numpy()
    prorate = s["prorate_multiplier"].astype("float64").fillna(1.0).to_numpy()
    prorate = np.where(prorate > 0, prorate, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        line = np.where(total, np.abs(price), np.abs(price * qty))
        per_unit = line / prorate / term / np.where(qty != 0, np.abs(qty), np.nan)
    charge = s["charge_type"].fillna("recurring").to_numpy(dtype=object) if "charge_type" in s else None
    ok = np.isfinite(per_unit) & (per_unit > 0) & (qty > 0)
    if charge is not None:
        ok &= charge == "recurring"
    frame = pd.DataFrame({"product_id": s["product_id"].to_numpy(dtype=object), "v": per_unit})
    median = frame[ok].groupby("product_id")["v"].agg(["median", "size"])
    median = median[median["size"] >= PLAUSIBLE_MIN_ROWS]["median"]
    ref = frame["product_id"].map(median).to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        odd = np.isfinite(ref) & np.isfinite(per_unit) & (per_unit > PLAUSIBLE_RATIO * ref) & (qty != 0)
    if charge is not None:
        odd &= charge == "recurring"
    rep.rows(
        "subscriptions",
        odd,
        "net_price",
        "implausible_value",
        lambda x: [
            f"worth {v:,.2f} a month per unit, {v / r:,.0f} times the median of its product "
            f"({r:,.2f}): check whether the price is a line total or the quantity is in other units"
            for v, r in zip(per_unit[odd], ref[odd], strict=True)
        ],
        severity="warning",
    )


class _Reporter:
    """Turns row masks into problems with file, line, id and source column."""

    def __init__(self, tables: dict[str, pd.DataFrame], colmap: dict[str, dict[str, str]]):
        self.tables = tables
        self.colmap = colmap
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def source_col(self, table: str, column: str) -> str:
        return self.colmap.get(table, {}).get(column, column)

    def rows(self, table: str, mask, column: str, rule: str, message, severity: str = "error") -> None:
        frame = self.tables[table]
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        sub = frame[mask]
        msgs = message(sub) if callable(message) else [message] * len(sub)
        target = self.errors if severity == "error" else self.warnings
        for file, line, rid, msg in zip(sub["_file"], sub["_line"], sub["_id"], msgs, strict=True):
            target.append(
                Problem(
                    str(file),
                    int(line),
                    "" if pd.isna(rid) else str(rid),
                    self.source_col(table, column),
                    rule,
                    str(msg),
                    severity,
                )
            )


def _fmt_date(x) -> str:
    return "blank" if pd.isna(x) else str(pd.Timestamp(x).date())


def validate_tables(
    tables: dict[str, pd.DataFrame], colmap: dict[str, dict[str, str]] | None = None
) -> tuple[list[Problem], list[Problem]]:
    """Check canonical tables against every rule; return (errors, warnings).

    Parameters
    ----------
    tables : dict of DataFrame
        Canonical tables with three provenance columns: ``_file``, ``_line``
        and ``_id``.
    colmap : dict, optional
        Per table, canonical column -> column name in the file, so problems
        speak of the columns the user sees.

    Returns
    -------
    errors, warnings : list of Problem
        In file and line order.
    """
    rep = _Reporter(tables, colmap or {})

    # 1. Per-table rules through pandera, all failures at once.
    for name, frame in tables.items():
        if name not in TABLES:
            continue
        data = frame[[c for c in frame.columns if not str(c).startswith("_")]]
        try:
            pandera_schema(name).validate(data, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            cases = cases[cases["index"].notna()]
            for column, check, value, idx in zip(
                cases["column"], cases["check"], cases["failure_case"], cases["index"], strict=True
            ):
                rule = _rule_for(name, str(column), str(check))
                row = frame.iloc[int(idx)] if isinstance(idx, (int, np.integer)) else frame.loc[idx]
                rid = row["_id"]
                rep.errors.append(
                    Problem(
                        str(row["_file"]),
                        int(row["_line"]),
                        "" if pd.isna(rid) else str(rid),
                        rep.source_col(name, str(column)),
                        rule,
                        _describe(rule, value, str(column), name),
                    )
                )

    # 2. Dates that contradict each other.
    c = tables["contracts"]
    rep.rows(
        "contracts",
        (c["end_date"] < c["start_date"]).fillna(False),
        "end_date",
        "end_before_start",
        lambda s: [
            f"end {_fmt_date(e)} is before start {_fmt_date(b)}"
            for e, b in zip(s["end_date"], s["start_date"], strict=True)
        ],
    )
    rep.rows(
        "contracts",
        c["end_date"].isna() & ~c["evergreen"].fillna(False).astype(bool),
        "end_date",
        "missing_end_date",
        "a non-evergreen contract needs an end date (or a ContractTerm)",
    )
    s = tables["subscriptions"]
    rep.rows(
        "subscriptions",
        (s["end_date"] < s["start_date"]).fillna(False),
        "end_date",
        "end_before_start",
        lambda x: [
            f"end {_fmt_date(e)} is before start {_fmt_date(b)}"
            for e, b in zip(x["end_date"], x["start_date"], strict=True)
        ],
    )
    rep.rows(
        "subscriptions",
        (s["segment_end_date"] < s["segment_start_date"]).fillna(False),
        "segment_end_date",
        "end_before_start",
        lambda x: [
            f"segment end {_fmt_date(e)} is before segment start {_fmt_date(b)}"
            for e, b in zip(x["segment_end_date"], x["segment_start_date"], strict=True)
        ],
    )

    # 3. References to ids that do not exist.
    keys = {n: set(tables[n][TABLES[n].key].dropna()) for n in tables if n in TABLES and TABLES[n].key}
    for name, frame in tables.items():
        if name not in TABLES:
            continue
        for column, target in TABLES[name].references:
            if column not in frame.columns or target not in keys:
                continue
            ref = frame[column]
            bad = ref.notna() & ~ref.isin(keys[target])
            rep.rows(
                name,
                bad,
                column,
                "unknown_reference",
                lambda x, column=column, target=target: [f"{v!r} is not an id in {target}" for v in x[column]],
            )

    # 4. Product default schedule: type, period and count are all set or all blank.
    p = tables["products"]
    parts = p[["revenue_schedule_type", "revenue_installment_period", "revenue_installments"]].notna()
    mixed = parts.any(axis=1) & ~parts.all(axis=1)
    rep.rows(
        "products",
        mixed,
        "revenue_schedule_type",
        "schedule_fields_inconsistent",
        "RevenueScheduleType, RevenueInstallmentPeriod and NumberOfRevenueInstallments must be all set or all blank",
    )

    # 5. Schedule rows: the values their type requires.
    sc = tables["schedules"]
    t = sc["type"]
    need_rev = t.isin(["revenue", "both"]) & sc["revenue"].isna()
    need_qty = t.isin(["quantity", "both"]) & sc["quantity"].isna()
    rep.rows(
        "schedules",
        need_rev.fillna(False),
        "revenue",
        "schedule_values_inconsistent",
        "a Revenue or Both schedule row needs a Revenue value",
    )
    rep.rows(
        "schedules",
        need_qty.fillna(False),
        "quantity",
        "schedule_values_inconsistent",
        "a Quantity or Both schedule row needs a Quantity value",
    )

    # 5b. Account hierarchy: ParentId chains must end.
    a = tables["accounts"]
    if "parent_account_id" in a.columns and a["parent_account_id"].notna().any():
        in_cycle = _hierarchy_cycles(a)
        rep.rows(
            "accounts",
            in_cycle,
            "parent_account_id",
            "hierarchy_cycle",
            lambda x: [
                f"following ParentId from {aid} comes back to it; an account hierarchy must end "
                "at an account without a parent"
                for aid in x["account_id"]
            ],
        )

    # 5c. Revision chains and plausible magnitudes.
    _revision_chains(rep, s)
    _bounds(rep, tables)

    # 6. Composite keys of keyless tables.
    for name, cols in (("spend", ["month", "channel"]), ("signals", ["account_id", "month"])):
        frame = tables.get(name)
        if frame is None or not len(frame):
            continue
        dup = frame.duplicated(cols, keep="first")
        rep.rows(
            name,
            dup,
            cols[-1],
            "duplicate_key",
            lambda x, cols=cols: [
                "another row has the same "
                + ", ".join(f"{k}={_fmt_date(v) if k == 'month' else v}" for k, v in zip(cols, vals, strict=True))
                for vals in x[cols].itertuples(index=False)
            ],
        )

    # --- warnings -------------------------------------------------------
    lines = tables["opportunity_lines"]
    if len(sc):
        rev_rows = sc[sc["type"].isin(["revenue", "both"])]
        sums = rev_rows.groupby("line_id", sort=False)["revenue"].sum()
        total = lines.set_index("line_id")["total_price"]
        total = total[~total.index.duplicated()]
        joined = lines["line_id"].map(sums)
        off = joined.notna() & ((joined - lines["total_price"]).abs() > CENT)
        rep.rows(
            "opportunity_lines",
            off.to_numpy(),
            "total_price",
            "schedule_total_mismatch",
            lambda x: [
                f"schedule rows sum to {lines_sum:,.2f}, the line total is {t_:,.2f}"
                for lines_sum, t_ in zip(x["line_id"].map(sums), x["total_price"], strict=True)
            ],
            severity="warning",
        )
        qty_rows = sc[sc["type"].isin(["quantity", "both"])]
        qsums = qty_rows.groupby("line_id", sort=False)["quantity"].sum()
        qjoined = lines["line_id"].map(qsums)
        qoff = qjoined.notna() & ((qjoined - lines["quantity"]).abs() > 1e-6)
        rep.rows(
            "opportunity_lines",
            qoff.to_numpy(),
            "quantity",
            "schedule_quantity_mismatch",
            lambda x: [
                f"schedule quantities sum to {q:g}, the line quantity is {l_:g}"
                for q, l_ in zip(x["line_id"].map(qsums), x["quantity"], strict=True)
            ],
            severity="warning",
        )

    con = c.drop_duplicates("contract_id").set_index("contract_id")
    cs = s["contract_id"].map(con["start_date"])
    ce = s["contract_id"].map(con["end_date"])
    outside = ((s["start_date"] < cs) | (s["end_date"] > ce)).fillna(False)
    rep.rows(
        "subscriptions",
        outside.to_numpy(),
        "start_date",
        "subscription_outside_contract",
        lambda x: [
            f"runs {_fmt_date(a)} to {_fmt_date(b)}, its contract {_fmt_date(ca)} to {_fmt_date(cb)}"
            for a, b, ca, cb in zip(
                x["start_date"],
                x["end_date"],
                x["contract_id"].map(con["start_date"]),
                x["contract_id"].map(con["end_date"]),
                strict=True,
            )
        ],
        severity="warning",
    )
    cacc = s["contract_id"].map(con["account_id"])
    mismatch = (cacc.notna() & (cacc != s["account_id"])).fillna(False)
    rep.rows(
        "subscriptions",
        mismatch.to_numpy(),
        "account_id",
        "account_mismatch",
        lambda x: [
            f"account {a} differs from its contract's account {b}"
            for a, b in zip(x["account_id"], x["contract_id"].map(con["account_id"]), strict=True)
        ],
        severity="warning",
    )
    _price_warnings(rep, tables)
    no_subs = ~c["contract_id"].isin(set(s["contract_id"]))
    rep.rows(
        "contracts",
        no_subs.to_numpy(),
        "contract_id",
        "contract_without_subscriptions",
        "the contract has no subscription rows",
        severity="warning",
    )

    def order(p: Problem):
        return (p.file, p.line if p.line is not None else 0, p.column, p.rule)

    return sorted(rep.errors, key=order), sorted(rep.warnings, key=order)
