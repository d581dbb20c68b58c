"""Broken and hostile files get a clear error or a warning naming the row, never a quiet
wrong value: each case feeds the exact input and asserts the outcome."""

from __future__ import annotations

import pytest

import renewforecast as rf
from _support import read_sf, write_sf


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
