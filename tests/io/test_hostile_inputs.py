"""Broken and hostile files get a clear error or a warning naming the row, never a quiet
wrong value: each case feeds the exact input and asserts the outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import renewforecast as rf
from _support import edit_sf, read_sf, write_sf


def problems_of(folder) -> list[rf.Problem]:
    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(folder)
    return info.value.problems


def only(problems, rule):
    hits = [p for p in problems if p.rule == rule]
    assert len(hits) == 1, [str(p) for p in problems]
    return hits[0]


def test_a_nul_byte_inside_a_cell_is_an_error_not_a_cut_value(org_copy):
    path = org_copy / "SBQQ__Subscription__c.csv"
    subs = read_sf(org_copy, "SBQQ__Subscription__c.csv")
    price = subs.loc[3, "SBQQ__NetPrice__c"]
    text = path.read_text(encoding="utf-8")
    line = text.split("\n")[4]
    assert price in line
    path.write_text(text.replace(line, line.replace(price, price[:1] + "\x00" + price[1:], 1)), encoding="utf-8")
    p = only(problems_of(org_copy), "nul_byte")
    assert (p.file, p.line, p.column) == ("SBQQ__Subscription__c.csv", 5, "SBQQ__NetPrice__c")


def test_a_record_with_fewer_fields_than_the_header_is_an_error(org_copy):
    path = org_copy / "Account.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[6] = ",".join(lines[6].split(",")[:-1])  # the last field is gone
    path.write_text("\n".join(lines), encoding="utf-8")
    p = only(problems_of(org_copy), "short_row")
    assert (p.file, p.line) == ("Account.csv", 7) and "field(s) but the header has" in p.message


def test_a_record_with_more_fields_than_the_header_is_an_error(org_copy):
    path = org_copy / "Account.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3] + ",surplus"
    path.write_text("\n".join(lines), encoding="utf-8")
    p = only(problems_of(org_copy), "long_row")
    assert (p.file, p.line) == ("Account.csv", 4)


def test_a_duplicate_header_is_an_error_not_a_crash(org_copy):
    accounts = read_sf(org_copy, "Account.csv")
    text = accounts.to_csv(index=False).replace("Industry", "Name", 1)
    (org_copy / "Account.csv").write_text(text, encoding="utf-8")
    p = only(problems_of(org_copy), "duplicate_column")
    assert (p.file, p.line, p.column) == ("Account.csv", 1, "Name")


def test_a_long_multi_line_text_field_loads(org_copy):
    accounts = read_sf(org_copy, "Account.csv")
    accounts.loc[2, "Name"] = ("A very long name\n" * 12_000)[:200_000]
    write_sf(org_copy, "Account.csv", accounts)
    book = rf.load_book(org_copy)
    assert len(book.accounts.loc[2, "name"]) > 131_072


def test_a_quote_that_is_never_closed_names_its_line(org_copy):
    path = org_copy / "Contract.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[9] = lines[9].replace(",", ',"', 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    p = only(problems_of(org_copy), "malformed_csv")
    assert (p.file, p.line) == ("Contract.csv", 10) and "quote" in p.message


def test_a_file_without_its_final_line_break_warns_on_its_last_record(org_copy):
    path = org_copy / "spend.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:-2], encoding="utf-8")  # cut inside the last value
    book = rf.load_book(org_copy)
    w = book.warnings[book.warnings["rule"] == "no_final_line_break"]
    assert w["file"].tolist() == ["spend.csv"] and w["line"].tolist() == [len(text.split("\n")) - 1]


# --- absurd values: refused, not valued -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("1e308", "number_out_of_range"),  # finite, but ARR would overflow to inf
        ("1e309", "number_out_of_range"),  # overflows a float on reading
        ("inf", "not_finite"),
        ("NaN", "not_finite"),
        ("5000000000000", "value_out_of_bounds"),  # 5e12: beyond any real price
    ],
)
def test_an_absurd_price_is_an_error_naming_the_row(org_copy, value, rule):
    line, rid = edit_sf(org_copy, "SBQQ__Subscription__c.csv", 4, "SBQQ__NetPrice__c", value)
    p = only(problems_of(org_copy), rule)
    assert (p.file, p.line, p.record_id, p.column) == ("SBQQ__Subscription__c.csv", line, rid, "SBQQ__NetPrice__c")


def test_an_absurd_quantity_is_an_error(org_copy):
    line, rid = edit_sf(org_copy, "SBQQ__Subscription__c.csv", 2, "SBQQ__Quantity__c", "2000000000")
    p = only(problems_of(org_copy), "value_out_of_bounds")
    assert (p.line, p.record_id, p.column) == (line, rid, "SBQQ__Quantity__c") and "1,000,000,000" in p.message


def test_an_infinite_amount_in_a_canonical_parquet_file_is_an_error(demo_book, tmp_path):
    rf.write_canonical(demo_book, tmp_path)
    subs = pd.read_parquet(tmp_path / "subscriptions.parquet")
    subs.loc[5, "net_price"] = np.inf
    subs.to_parquet(tmp_path / "subscriptions.parquet")
    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(tmp_path)
    p = only(info.value.problems, "number_out_of_range")
    assert (p.file, p.line, p.column) == ("subscriptions.parquet", 6, "net_price")


# --- dates: full, inside a window, and out of range said as such ----------------------------


def test_a_placeholder_start_date_is_outside_the_window(org_copy):
    line, rid = edit_sf(org_copy, "Contract.csv", 3, "StartDate", "1900-01-01")
    p = only(problems_of(org_copy), "date_out_of_window")
    assert (p.file, p.line, p.record_id, p.column) == ("Contract.csv", line, rid, "StartDate")
    assert "1990-01-01" in p.message


def test_the_date_window_is_configurable(org_copy):
    edit_sf(org_copy, "Opportunity.csv", 3, "CloseDate", "1985-06-30")
    with pytest.raises(rf.BookValidationError):
        rf.load_book(org_copy)
    book = rf.load_book(org_copy, date_window=("1980-01-01", None))
    assert (book.opportunities["close_date"] == pd.Timestamp("1985-06-30")).sum() == 1


def test_a_date_far_ahead_is_outside_the_window(org_copy):
    ahead = (pd.Timestamp.today() + pd.DateOffset(years=51)).strftime("%Y-%m-%d")
    line, _ = edit_sf(org_copy, "Contract.csv", 5, "EndDate", ahead)
    assert only(problems_of(org_copy), "date_out_of_window").line == line


@pytest.mark.parametrize("value", ["2021", "2021-03", "March 2021"])
def test_a_partial_date_is_not_guessed(org_copy, value):
    line, _ = edit_sf(org_copy, "Contract.csv", 3, "StartDate", value)
    p = only(problems_of(org_copy), "unparseable_date")
    assert p.line == line and "full date" in p.message


@pytest.mark.parametrize("value", ["1500-01-01", "3000-12-31", "12/31/2300"])
def test_a_date_a_book_cannot_hold_is_out_of_range_not_unreadable(org_copy, value):
    line, _ = edit_sf(org_copy, "Opportunity.csv", 2, "CloseDate", value)
    p = only(problems_of(org_copy), "date_out_of_range")
    assert p.line == line and "1677-09-2" in p.message and "2262-04-1" in p.message


# --- revision chains ------------------------------------------------------------------------


def _revising_rows(folder):
    subs = read_sf(folder, "SBQQ__Subscription__c.csv")
    revising = subs.index[subs["SBQQ__RevisedSubscription__c"] != ""]
    assert len(revising) >= 2
    return subs, revising


def test_a_row_that_revises_itself_is_an_error(org_copy):
    subs, _ = _revising_rows(org_copy)
    line, rid = edit_sf(org_copy, "SBQQ__Subscription__c.csv", 7, "SBQQ__RevisedSubscription__c", subs.loc[7, "Id"])
    p = only(problems_of(org_copy), "self_revision")
    assert (p.line, p.record_id, p.column) == (line, rid, "SBQQ__RevisedSubscription__c")


def test_a_revision_cycle_is_an_error_on_each_row_of_it(org_copy):
    subs, revising = _revising_rows(org_copy)
    child = revising[0]
    parent = subs.index[subs["Id"] == subs.loc[child, "SBQQ__RevisedSubscription__c"]][0]
    subs.loc[parent, "SBQQ__RevisedSubscription__c"] = subs.loc[child, "Id"]  # the original now revises its delta
    write_sf(org_copy, "SBQQ__Subscription__c.csv", subs)
    hits = [p for p in problems_of(org_copy) if p.rule == "revision_cycle"]
    assert sorted(p.line for p in hits) == sorted([child + 2, parent + 2])


def test_a_negative_quantity_on_an_original_row_is_an_error(org_copy):
    subs = read_sf(org_copy, "SBQQ__Subscription__c.csv")
    row = subs.index[(subs["SBQQ__RevisedSubscription__c"] == "") & (subs["SBQQ__Quantity__c"].astype(float) > 0)][0]
    line, rid = edit_sf(
        org_copy, "SBQQ__Subscription__c.csv", row, "SBQQ__Quantity__c", "-" + subs.loc[row, "SBQQ__Quantity__c"]
    )
    p = only(problems_of(org_copy), "negative_original")
    assert (p.line, p.record_id, p.column) == (line, rid, "SBQQ__Quantity__c")


@given(st.lists(st.integers(min_value=-1, max_value=11), min_size=1, max_size=12))
@settings(max_examples=200, deadline=None)
def test_on_cycle_matches_walking_each_chain(parents):
    from renewforecast.io.validate import on_cycle

    ids = [f"r{i}" for i in range(len(parents))]
    links = [None if p < 0 or p >= len(parents) else f"r{p}" for p in parents]
    expected = []
    for i in range(len(ids)):
        seen, cur = set(), links[i]
        while cur is not None and cur not in seen:
            seen.add(cur)
            cur = links[int(cur[1:])]
        expected.append(f"r{i}" in seen)
    assert on_cycle(ids, links).tolist() == expected


# --- empty exports, links out of the folder, and what messages repeat -----------------------


def test_a_header_only_export_is_refused_naming_the_files(org_copy):
    for path in org_copy.glob("*.csv"):
        path.write_text(path.read_text(encoding="utf-8").split("\n", 1)[0] + "\n", encoding="utf-8")
    hits = [p for p in problems_of(org_copy) if p.rule == "no_records"]
    assert sorted(p.file for p in hits) == ["Contract.csv", "SBQQ__Subscription__c.csv"]


def test_a_link_out_of_the_export_folder_is_refused_unread(org_copy, tmp_path):
    secret = tmp_path / "secrets.env"
    secret.write_text("DB_PASSWORD=hunter2\n", encoding="utf-8")
    (org_copy / "Account.csv").unlink()
    (org_copy / "Account.csv").symlink_to(secret)
    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(org_copy)
    p = only(info.value.problems, "outside_export_folder")
    assert p.file == "Account.csv"
    assert "hunter2" not in str(info.value) and "DB_PASSWORD" not in str(info.value)


def test_a_link_inside_the_export_folder_is_read(org_copy):
    (org_copy / "archive").mkdir()
    (org_copy / "spend.csv").rename(org_copy / "archive" / "spend.csv")
    (org_copy / "spend.csv").symlink_to(org_copy / "archive" / "spend.csv")
    assert len(rf.load_book(org_copy).spend) > 0


def test_messages_quote_header_cells_cut_short(org_copy):
    path = org_copy / "Contract.csv"
    text = path.read_text(encoding="utf-8")
    long_name = "X" * 300
    path.write_text(text.replace("StartDate", long_name, 1), encoding="utf-8")
    p = only(problems_of(org_copy), "missing_column")
    assert "X" * 41 not in p.message and "X" * 40 + "..." in p.message


def test_a_link_out_of_the_folder_that_is_not_an_export_file_is_left_alone(org_copy, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not part of the export\n", encoding="utf-8")
    (org_copy / "NOTES.txt").symlink_to(notes)
    assert len(rf.load_book(org_copy).contracts) > 0


@given(
    rows=st.lists(
        st.lists(st.text(alphabet=st.sampled_from("ab1. \t\xa0\u3000"), max_size=5), min_size=2, max_size=2),
        min_size=1,
        max_size=5,
    )
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_cells_read_stripped_and_blank_as_none_as_python_would(rows, tmp_path_factory):
    from renewforecast.io._raw import read_raw

    path = tmp_path_factory.mktemp("pad") / "t.csv"
    body = "".join(",".join('"' + c + '"' for c in r) + "\n" for r in rows)
    path.write_text("x,y\n" + body, encoding="utf-8")
    got = read_raw(path).frame.to_numpy().tolist()
    assert got == [[c.strip() or None for c in r] for r in rows]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=30))
@settings(max_examples=150, deadline=None)
def test_numbers_read_exactly_as_python_reads_them(values):
    from renewforecast.io._raw import parse_column

    text = pd.Series([repr(v) for v in values], dtype=object)
    out, bad = parse_column(text, "float")
    keep = np.abs(values) < 1e15
    assert out[keep].tolist() == [v for v, k in zip(values, keep, strict=True) if k]
    assert bad.tolist() == (~keep).tolist()
