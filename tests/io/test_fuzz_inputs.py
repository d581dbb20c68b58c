"""Random damage to a real-shaped export ends in a clear error or a warning naming the row.

Each example copies the demo export, damages one file the way exports get damaged (cut short,
a cell dropped or duplicated, a NUL byte or a quote inserted, a huge or non-finite value, a date
in another layout, start and end swapped) and loads it. The load must either refuse with a
``BookValidationError`` whose every problem names its file and rule, or load, in which case the
monthly MRR of every account must equal the undamaged export's, except for accounts that own a
record at or after a line a warning names in the damaged file. A traceback of any other kind, or
a number that moved without a warning naming its row, fails the test.

CI runs a fixed set of 60 examples; ``RF_FUZZ_EXAMPLES=2000`` runs that many fresh ones.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

import renewforecast as rf

HUGE = ["1e308", "-1e308", "1e309", "inf", "-inf", "NaN", "99999999999999999999", "1e16"]
LAYOUTS = ["{y}", "{y}-{m}", "{d}.{m}.{y}", "{y}{m}{d}", "{y}/{m}/{d}", "{m}-{d}-{y}-", "{d} {mon} {y}"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FILES = [
    "Account.csv",
    "Contract.csv",
    "SBQQ__Subscription__c.csv",
    "Product2.csv",
    "Opportunity.csv",
    "OpportunityLineItem.csv",
    "OpportunityLineItemSchedule.csv",
    "OpportunityHistory.csv",
    "spend.csv",
    "signals.csv",
    "CurrencyType.csv",
]
#: The files MRR is made of are damaged more often: a quiet change there is what must never pass.
WEIGHTED = FILES + ["SBQQ__Subscription__c.csv"] * 6 + ["Contract.csv"] * 2 + ["Account.csv", "Product2.csv"]
#: Which column of each file says whose record it is (for the accounts a damaged line may move).
ACCOUNT_OF = {
    "Account.csv": "Id",
    "Contract.csv": "AccountId",
    "SBQQ__Subscription__c.csv": "SBQQ__Account__c",
    "Opportunity.csv": "AccountId",
    "signals.csv": "AccountId",
}


@pytest.fixture(scope="module")
def baseline(demo_org):
    book = rf.load_book(demo_org.path)
    return demo_org, _mrr(book), _said(book)


def _said(book: rf.Book) -> set[tuple]:
    return set(book.warnings[["file", "line", "rule"]].itertuples(index=False, name=None))


def _mrr(book: rf.Book) -> pd.Series:
    table = rf.mrr_table(book, by=("account_id",))
    return (
        table.set_index(["account_id", "month"])["mrr"]
        .groupby(level=0)
        .apply(lambda s: tuple(round(float(v), 2) for v in s.to_numpy()))
    )


def _records(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.split("\n")
    return lines, [next(csv.reader([line])) if line else [] for line in lines]


def _mutate(text: str, draw) -> tuple[str, int, str]:
    """The damaged text, the first line (1-based) it touches, and what was done."""
    lines, records = _records(text)
    header = records[0]
    body = [i for i in range(1, len(lines)) if lines[i]]
    kind = draw(st.sampled_from(["cut", "drop", "duplicate", "nul", "quote", "huge", "date", "swap"]))
    if kind == "cut":
        start = len(lines[0]) + 1
        offsets = [k for k in range(start + 1, len(text)) if text[k - 1] != "\n"]
        at = draw(st.sampled_from(offsets))
        return text[:at], text[:at].count("\n") + 1, "cut"
    i = draw(st.sampled_from(body))
    cells = records[i]
    # Mostly a cell that holds a number or a date: where damage changes a value.
    valued = [k for k, c in enumerate(cells) if _valued(c)]
    j = draw(st.sampled_from(valued)) if valued and draw(st.integers(0, 3)) else draw(st.integers(0, len(cells) - 1))
    if kind in ("nul", "quote"):
        inside = draw(st.integers(0, len(cells[j])))
        mark = "\x00" if kind == "nul" else '"'
        if '"' in lines[i] or (kind == "quote" and draw(st.booleans())):
            k = draw(st.integers(0, len(lines[i])))  # anywhere on the line
            lines[i] = lines[i][:k] + mark + lines[i][k:]
            return "\n".join(lines), i + 1, kind
        cells[j] = cells[j][:inside] + mark + cells[j][inside:]
        lines[i] = ",".join(cells)
        return "\n".join(lines), i + 1, kind
    if kind == "drop":
        del cells[j]
    elif kind == "duplicate":
        cells.insert(j, cells[j])
    elif kind == "huge":
        cells[j] = draw(st.sampled_from(HUGE))
    elif kind == "date":
        dated = [k for k, c in enumerate(cells) if len(c) >= 10 and c[4] == "-" and c[7] == "-" and c[:4].isdigit()]
        if not dated:
            return text, 0, "none"
        k = draw(st.sampled_from(dated))
        y, m, d = cells[k][:10].split("-")
        cells[k] = draw(st.sampled_from(LAYOUTS)).format(y=y, m=m, d=d, mon=MONTHS[int(m) - 1])
    elif kind == "swap":
        pairs = [
            (a, b)
            for a, b in (("StartDate", "EndDate"), ("SBQQ__SubscriptionStartDate__c", "SBQQ__SubscriptionEndDate__c"))
            if a in header
            and b in header
            and cells[header.index(a)]
            and cells[header.index(b)]
            and cells[header.index(a)] != cells[header.index(b)]
        ]
        if not pairs:
            return text, 0, "none"
        a, b = (header.index(x) for x in pairs[0])
        cells[a], cells[b] = cells[b], cells[a]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    lines[i] = out.getvalue()
    return "\n".join(lines), i + 1, kind


def _valued(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return len(cell) >= 10 and cell[4:5] == "-" and cell[:4].isdigit()


def _accounts_from(folder: Path, file: str, first_line: int, only_that_line: bool = False) -> set[str]:
    """Accounts owning the record of ``file`` on ``first_line``, or any record from it on.

    A product or an exchange rate may move anyone: every account.
    """
    col = ACCOUNT_OF.get(file)
    if col is None:
        return set(pd.read_csv(folder / "Account.csv", dtype=str)["Id"])
    frame = pd.read_csv(folder / file, dtype=str, keep_default_na=False)
    start = max(first_line - 2, 0)
    return set(frame[col].iloc[start : start + 1] if only_that_line else frame[col].iloc[start:])


FIXED = "RF_FUZZ_EXAMPLES" not in os.environ


def _fixed_seed(test):
    # CI runs the same examples every time (a failure is reproducible from the log).
    return seed(20261130)(test) if FIXED else test


@_fixed_seed
@given(data=st.data())
@settings(
    max_examples=int(os.environ.get("RF_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_damage_ends_in_a_clear_error_or_a_named_warning(baseline, tmp_path_factory, data):
    org, before, said_before = baseline
    file = data.draw(st.sampled_from(WEIGHTED), label="file")
    folder = tmp_path_factory.mktemp("fuzz") / "org"
    shutil.copytree(org.path, folder)
    text = (folder / file).read_text(encoding="utf-8")
    damaged, line, kind = _mutate(text, data.draw)
    note(f"{kind} at {file} line {line}")
    (folder / file).write_text(damaged, encoding="utf-8")
    try:
        book = rf.load_book(folder)
    except rf.BookValidationError as exc:
        assert exc.problems
        assert all(p.rule and p.file for p in exc.problems), [str(p) for p in exc.problems]
        return
    after = _mrr(book)
    moved = {a for a in before.index.union(after.index) if before.get(a) != after.get(a)}
    if not moved:
        return
    # Only what the damage made the loader say counts (the export has warnings of its own).
    new = [(f, ln) for f, ln, _ in _said(book) - said_before if f == file and pd.notna(ln)]
    if kind != "cut":
        new = [(f, ln) for f, ln in new if ln == line]
    assert new, f"{kind} in {file} line {line} moved MRR of {sorted(moved)[:5]} without a warning naming the row"
    first = int(min(ln for _, ln in new))
    reach = _accounts_from(org.path, file, first, only_that_line=kind != "cut")
    assert moved <= reach, f"{kind} in {file} line {line} moved {sorted(moved)[:5]}"
