"""One broken fixture per validation rule: the error names file, line, id, column and rule."""

from __future__ import annotations

import pandas as pd
import pytest

import renewforecast as rf
from _support import edit_sf, folder_digest, read_sf, write_sf


def problems_of(folder, **kwargs) -> list[rf.Problem]:
    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(folder, **kwargs)
    return info.value.problems


def find(problems, rule, file=None):
    hits = [p for p in problems if p.rule == rule and (file is None or p.file == file)]
    assert hits, f"no {rule} problem in {[str(p) for p in problems]}"
    return hits


def test_valid_demo_org_loads(demo_book):
    assert len(demo_book.contracts) > 0
    assert set(demo_book.warnings["severity"]) <= {"warning"}


def test_missing_file_lists_what_was_found(org_copy):
    (org_copy / "Product2.csv").unlink()
    (p,) = find(problems_of(org_copy), "missing_file")
    assert p.file == "Product2.csv" and p.line is None
    assert "Contract.csv" in p.message


def test_misspelt_column_gives_closest_match(org_copy):
    frame = read_sf(org_copy, "Contract.csv").rename(columns={"StartDate": "Start_Date"})
    write_sf(org_copy, "Contract.csv", frame)
    (p,) = find(problems_of(org_copy), "missing_column")
    assert (p.file, p.line, p.column) == ("Contract.csv", 1, "StartDate")
    assert "closest match: 'Start_Date'" in p.message
    assert "AccountId" in p.message  # lists the columns it did find


def test_unparseable_date(org_copy):
    line, rid = edit_sf(org_copy, "Contract.csv", 3, "EndDate", "2024-13-45")
    (p,) = find(problems_of(org_copy), "unparseable_date")
    assert (p.file, p.line, p.record_id, p.column) == ("Contract.csv", line, rid, "EndDate")
    assert "2024-13-45" in p.message


def test_unparseable_number(org_copy):
    line, rid = edit_sf(org_copy, "SBQQ__Subscription__c.csv", 2, "SBQQ__Quantity__c", "ten")
    (p,) = find(problems_of(org_copy), "unparseable_number")
    assert (p.file, p.line, p.record_id, p.column) == ("SBQQ__Subscription__c.csv", line, rid, "SBQQ__Quantity__c")


def test_duplicate_id(org_copy):
    frame = read_sf(org_copy, "Product2.csv")
    frame.loc[4, "Id"] = frame.loc[3, "Id"]
    write_sf(org_copy, "Product2.csv", frame)
    hits = find(problems_of(org_copy), "duplicate_id", "Product2.csv")
    assert {p.line for p in hits} >= {6}
    assert all(p.column == "Id" and p.record_id == frame.loc[3, "Id"] for p in hits)


def test_unknown_reference(org_copy):
    line, rid = edit_sf(org_copy, "Contract.csv", 1, "AccountId", "001000000000000AAA")
    hits = find(problems_of(org_copy), "unknown_reference", "Contract.csv")
    assert any((p.line, p.record_id, p.column) == (line, rid, "AccountId") for p in hits)
    assert "001000000000000AAA" in hits[0].message


def test_end_before_start(org_copy):
    frame = read_sf(org_copy, "Contract.csv")
    frame.loc[2, "EndDate"] = "2000-01-01"
    write_sf(org_copy, "Contract.csv", frame)
    (p,) = find(problems_of(org_copy), "end_before_start")
    assert (p.file, p.line, p.record_id, p.column) == ("Contract.csv", 4, frame.loc[2, "Id"], "EndDate")


def test_negative_unit_price_on_an_opportunity_line_is_refused(org_copy):
    line, rid = edit_sf(org_copy, "OpportunityLineItem.csv", 5, "UnitPrice", "-5")
    (p,) = find(problems_of(org_copy), "negative_price")
    assert (p.file, p.line, p.record_id, p.column) == ("OpportunityLineItem.csv", line, rid, "UnitPrice")


def test_negative_per_unit_subscription_price_is_a_credit_with_a_warning(org_copy):
    subs = read_sf(org_copy, "SBQQ__Subscription__c.csv")
    row = int((subs["SBQQ__DiscountScheduleType__c"] == "").to_numpy().nonzero()[0][3])
    line, rid = edit_sf(org_copy, "SBQQ__Subscription__c.csv", row, "SBQQ__NetPrice__c", "-5")
    book = rf.load_book(org_copy)  # loads: never a refusal of the whole export
    w = book.warnings[book.warnings["rule"] == "credit_line"]
    assert (line, rid, "SBQQ__NetPrice__c") in set(zip(w["line"], w["record_id"], w["column"], strict=True))
    assert book.subscriptions.set_index("subscription_id").loc[rid, "net_price"] == -5.0


@pytest.mark.parametrize(
    ("file", "column", "value", "rule"),
    [
        ("OpportunityLineItemSchedule.csv", "Type", "Monthly", "schedule_type_not_allowed"),
        ("Product2.csv", "RevenueScheduleType", "Split", "schedule_type_not_allowed"),
        ("Product2.csv", "RevenueInstallmentPeriod", "Fortnightly", "schedule_period_not_allowed"),
        ("Product2.csv", "NumberOfRevenueInstallments", "151", "installments_out_of_range"),
        ("Product2.csv", "NumberOfRevenueInstallments", "0", "installments_out_of_range"),
    ],
)
def test_schedule_values_out_of_allowed(org_copy, file, column, value, rule):
    line, rid = edit_sf(org_copy, file, 0, column, value)
    (p,) = find(problems_of(org_copy), rule)
    assert (p.file, p.line, p.record_id, p.column) == (file, line, rid, column)


def test_schedule_fields_all_or_none(org_copy):
    frame = read_sf(org_copy, "Product2.csv")
    row = int(frame.index[frame["RevenueScheduleType"] != ""][0])
    line, rid = edit_sf(org_copy, "Product2.csv", row, "RevenueInstallmentPeriod", "")
    (p,) = find(problems_of(org_copy), "schedule_fields_inconsistent")
    assert (p.line, p.record_id) == (line, rid)


def single_currency(folder):
    """The demo org as a one-currency org: no rate files, every record in USD."""
    for name in ("CurrencyType.csv", "DatedConversionRate.csv"):
        (folder / name).unlink()
    for path in folder.glob("*.csv"):
        frame = read_sf(folder, path.name)
        if "CurrencyIsoCode" in frame.columns:
            write_sf(folder, path.name, frame.drop(columns=["CurrencyIsoCode"]))


def test_two_currencies_without_fx_table_are_refused(org_copy):
    single_currency(org_copy)
    frame = read_sf(org_copy, "Opportunity.csv")
    frame["CurrencyIsoCode"] = "USD"
    frame.loc[7, "CurrencyIsoCode"] = "EUR"
    write_sf(org_copy, "Opportunity.csv", frame)
    (p,) = find(problems_of(org_copy), "mixed_currencies")
    assert (p.file, p.line, p.column) == ("Opportunity.csv", 9, "CurrencyIsoCode")
    assert "EUR" in p.message and "CurrencyType.csv" in p.message


def test_fx_table_converts_to_the_corporate_currency(org_copy):
    single_currency(org_copy)
    frame = read_sf(org_copy, "Opportunity.csv")
    frame["CurrencyIsoCode"] = "USD"
    row = int(frame.index[frame["Amount"].astype(float) > 0][0])
    frame.loc[row, "CurrencyIsoCode"] = "EUR"
    write_sf(org_copy, "Opportunity.csv", frame)
    pd.DataFrame({"IsoCode": ["USD", "EUR"], "ConversionRate": ["1", "0.8"], "IsCorporate": ["true", "false"]}).to_csv(
        org_copy / "CurrencyType.csv", index=False
    )
    book = rf.load_book(org_copy)
    assert book.currency == "USD"
    amount = book.opportunities.set_index("opportunity_id").loc[frame.loc[row, "Id"], "amount"]
    # Salesforce ConversionRate is units of the currency per corporate unit.
    assert amount == pytest.approx(float(frame.loc[row, "Amount"]) / 0.8)


def test_all_problems_are_reported_at_once(org_copy):
    edit_sf(org_copy, "Contract.csv", 3, "EndDate", "not a date")
    edit_sf(org_copy, "SBQQ__Subscription__c.csv", 2, "SBQQ__Quantity__c", "x")
    edit_sf(org_copy, "Account.csv", 1, "CreatedDate", "yesterday")
    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(org_copy)
    files = {p.file for p in info.value.problems}
    assert files == {"Contract.csv", "SBQQ__Subscription__c.csv", "Account.csv"}
    text = str(info.value)
    assert text.startswith("3 problems found")
    assert "Contract.csv line 5" in text and "column EndDate: unparseable_date" in text


def test_soft_problems_are_warnings_on_the_book(org_copy):
    subs = read_sf(org_copy, "SBQQ__Subscription__c.csv")
    subs.loc[0, "SBQQ__StartDate__c"] = "2000-01-01"
    write_sf(org_copy, "SBQQ__Subscription__c.csv", subs)
    book = rf.load_book(org_copy)
    w = book.warnings
    hit = w[w["rule"] == "subscription_outside_contract"]
    assert hit[["file", "line", "record_id"]].to_numpy().tolist() == [
        ["SBQQ__Subscription__c.csv", 2, subs.loc[0, "Id"]]
    ]


def test_schedule_mismatch_is_a_warning(org_copy):
    sched = read_sf(org_copy, "OpportunityLineItemSchedule.csv")
    line_id = sched.loc[0, "OpportunityLineItemId"]
    sched.loc[0, "Revenue"] = str(round(float(sched.loc[0, "Revenue"]) + 10, 2))
    write_sf(org_copy, "OpportunityLineItemSchedule.csv", sched)
    book = rf.load_book(org_copy)
    hit = book.warnings[(book.warnings["rule"] == "schedule_total_mismatch") & (book.warnings["record_id"] == line_id)]
    assert len(hit) == 1 and hit["file"].iloc[0] == "OpportunityLineItem.csv"


def test_input_files_are_never_modified(org_copy):
    before = folder_digest(org_copy)
    rf.load_book(org_copy)
    edit_sf(org_copy, "Contract.csv", 0, "EndDate", "bad")
    broken = folder_digest(org_copy)
    with pytest.raises(rf.BookValidationError):
        rf.load_book(org_copy)
    assert folder_digest(org_copy) == broken
    assert set(before) == set(broken)


# ---------------------------------------------------------------- reading rules


def test_cp1252_file_is_read_with_a_warning(org_copy):
    frame = read_sf(org_copy, "Account.csv")
    frame["Name"] = [f"Account {i}" for i in range(len(frame))]  # all cp1252-encodable
    frame.loc[0, "Name"] = "Café Müller – Zürich GmbH"
    (org_copy / "Account.csv").write_bytes(frame.to_csv(index=False).encode("cp1252"))
    book = rf.load_book(org_copy)
    assert book.accounts.loc[0, "name"] == "Café Müller – Zürich GmbH"
    assert "encoding_fallback" in set(book.warnings["rule"])
    explicit = rf.load_book(org_copy, encoding="cp1252")
    assert "encoding_fallback" not in set(explicit.warnings["rule"])


def test_declared_wrong_encoding_names_the_line(org_copy):
    frame = read_sf(org_copy, "Account.csv")
    frame["Name"] = [f"Account {i}" for i in range(len(frame))]
    frame.loc[4, "Name"] = "Café"
    (org_copy / "Account.csv").write_bytes(frame.to_csv(index=False).encode("cp1252"))
    (p,) = find(problems_of(org_copy, encoding="utf-8"), "encoding")
    assert (p.file, p.line) == ("Account.csv", 6)


def test_utf8_bom_is_detected(org_copy):
    raw = (org_copy / "Contract.csv").read_bytes()
    (org_copy / "Contract.csv").write_bytes(b"\xef\xbb\xbf" + raw)
    assert len(rf.load_book(org_copy).contracts) == len(read_sf(org_copy, "Contract.csv"))


def test_ids_names_and_numbers_are_read_literally(org_copy):
    frame = read_sf(org_copy, "Account.csv")
    frame.loc[0, "Name"] = "NA"
    frame.loc[1, "Name"] = "None"
    write_sf(org_copy, "Account.csv", frame)
    subs = read_sf(org_copy, "SBQQ__Subscription__c.csv")
    subs.loc[0, "SBQQ__NetPrice__c"] = "1,200.50"
    write_sf(org_copy, "SBQQ__Subscription__c.csv", subs)
    book = rf.load_book(org_copy)
    assert book.accounts.loc[0, "name"] == "NA" and book.accounts.loc[1, "name"] == "None"
    assert book.subscriptions.loc[0, "net_price"] == 1200.50
    assert book.accounts["account_id"].str.startswith("001").all()  # leading zeros kept
    assert book.accounts["account_id"].str.len().eq(18).all()


def test_salesforce_date_formats(org_copy):
    frame = read_sf(org_copy, "Contract.csv")
    frame.loc[0, "StartDate"] = "1/15/2021"
    frame.loc[0, "CreatedDate"] = "2021-01-14T23:30:00.000+0000"
    write_sf(org_copy, "Contract.csv", frame)
    book = rf.load_book(org_copy)
    row = book.contracts.iloc[0]
    assert row["start_date"] == pd.Timestamp("2021-01-15")
    assert row["created_date"] == pd.Timestamp("2021-01-14")
    frame.loc[0, "StartDate"] = "15/01/2021"
    write_sf(org_copy, "Contract.csv", frame)
    (p,) = find(problems_of(org_copy), "unparseable_date")  # not guessed as day-first
    assert p.column == "StartDate"
    assert rf.load_book(org_copy, date_format="%d/%m/%Y").contracts.iloc[0]["start_date"] == pd.Timestamp("2021-01-15")


def test_line_numbers_count_quoted_newlines(org_copy):
    frame = read_sf(org_copy, "Account.csv")
    frame.loc[1, "Name"] = "Two\nLine Name"
    frame.loc[5, "CreatedDate"] = "never"
    write_sf(org_copy, "Account.csv", frame)
    (p,) = find(problems_of(org_copy), "unparseable_date")
    assert p.line == 5 + 2 + 1  # one extra physical line above it
    assert p.record_id == frame.loc[5, "Id"]


def test_field_map_renames_custom_fields(org_copy):
    frame = read_sf(org_copy, "Account.csv").rename(columns={"Segment__c": "Customer_Segment__c"})
    write_sf(org_copy, "Account.csv", frame)
    book = rf.load_book(org_copy, field_map={"Account.csv": {"segment": "Customer_Segment__c"}})
    assert book.accounts["segment"].tolist() == frame["Customer_Segment__c"].tolist()


def test_canonical_folders_load_to_the_same_book(demo_book, tmp_path):
    for fmt in ("csv", "parquet"):
        rf.write_canonical(demo_book, tmp_path / fmt, format=fmt)
        again = rf.load_book(tmp_path / fmt)
        assert again.fingerprint == demo_book.fingerprint


def test_unrecognised_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (p,) = problems_of(tmp_path)
    assert p.rule == "unrecognised_folder" and "notes.txt" in p.message


# ------------------------------------------------------- real exports, one pass


def test_a_file_that_is_neither_utf8_nor_cp1252_is_read_as_latin1_with_a_warning(org_copy):
    frame = read_sf(org_copy, "Account.csv")
    frame["Name"] = [f"Account {i}" for i in range(len(frame))]
    raw = frame.to_csv(index=False).encode("latin-1")
    raw = raw.replace(b"Account 3,", b"Account \x81 3,")  # 0x81: undefined in cp1252, as in a real export
    (org_copy / "Account.csv").write_bytes(raw)
    book = rf.load_book(org_copy)
    assert book.accounts.loc[3, "name"] == "Account \x81 3"
    (w,) = book.warnings[book.warnings["rule"] == "encoding_fallback"].itertuples()
    assert w.file == "Account.csv" and w.line == 5 and "read as latin-1" in w.message
    assert "not cp1252 either" in w.message


def test_a_wrong_declared_encoding_names_offset_line_and_the_encodings_that_read_it(org_copy):
    frame = read_sf(org_copy, "Account.csv")
    frame["Name"] = [f"Account {i}" for i in range(len(frame))]
    raw = frame.to_csv(index=False).encode("latin-1").replace(b"Account 3,", b"Account \x81 3,")
    (org_copy / "Account.csv").write_bytes(raw)
    (p,) = find(problems_of(org_copy, encoding="cp1252"), "encoding")
    offset = raw.index(b"\x81")
    assert (p.file, p.line) == ("Account.csv", 5)
    assert f"byte offset {offset}" in p.message and "'latin-1'" in p.message and "'utf-8'" not in p.message


def test_an_export_without_end_dates_schedules_or_spend_loads_and_says_what_is_lost(org_copy):
    for name in ("OpportunityLineItemSchedule.csv", "spend.csv"):
        (org_copy / name).unlink()
    contracts = read_sf(org_copy, "Contract.csv")
    write_sf(org_copy, "Contract.csv", contracts.drop(columns=["EndDate"]))
    book = rf.load_book(org_copy)
    w = book.warnings
    lost = w[w["rule"] == "missing_optional_file"].set_index("file")["message"]
    assert "CAC" in lost["spend.csv"] and "one installment" in lost["OpportunityLineItemSchedule.csv"]
    (derived,) = w[w["rule"] == "derived_field"].itertuples()
    assert (derived.file, derived.column) == ("Contract.csv", "EndDate") and pd.isna(derived.line)
    # the end dates are derived exactly as Salesforce computes them
    ends = contracts.set_index("Id")["EndDate"].replace("", None)
    got = book.contracts.set_index("contract_id")["end_date"].dt.strftime("%Y-%m-%d")
    assert (got.reindex(ends.index).fillna("") == ends.fillna("")).all()
    assert len(book.spend) == 0 and len(book.schedules) == 0


def test_a_missing_column_never_hides_the_other_problems(org_copy):
    contracts = read_sf(org_copy, "Contract.csv")
    write_sf(org_copy, "Contract.csv", contracts.drop(columns=["AccountId"]))
    line_d, _rid_d = edit_sf(org_copy, "Contract.csv", 2, "StartDate", "31/31/2024")  # same file, other column
    line_s, _rid_s = edit_sf(org_copy, "SBQQ__Subscription__c.csv", 4, "SBQQ__Quantity__c", "many")  # other file
    (org_copy / "Product2.csv").unlink()  # a missing file
    problems = problems_of(org_copy)
    rules = {(p.file, p.rule, p.column, p.line) for p in problems}
    assert ("Contract.csv", "missing_column", "AccountId", 1) in rules
    assert ("Contract.csv", "unparseable_date", "StartDate", line_d) in rules
    assert ("SBQQ__Subscription__c.csv", "unparseable_number", "SBQQ__Quantity__c", line_s) in rules
    assert ("Product2.csv", "missing_file", "", None) in rules
    # each cell is reported once: not again as a missing value
    assert not [p for p in problems if p.rule == "missing_value" and p.column in ("AccountId", "StartDate")]
