"""Quarantine instead of refusal: rows that break a rule go aside with what depends on them,
the rest is loaded, scored and reported, and the exit code says that rows were set aside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import renewforecast as rf
from _support import edit_sf, read_sf
from renewforecast.cli import main


def chain_rows(subs: pd.DataFrame, root: str) -> set[str]:
    return set(subs.loc[(subs["Id"] == root) | (subs["SBQQ__RevisedSubscription__c"] == root), "Id"])


@pytest.fixture
def broken(org_copy):
    """Two broken rows: a contract's start date and the quantity of an amendment delta."""
    subs = read_sf(org_copy, "SBQQ__Subscription__c.csv")
    contracts = read_sf(org_copy, "Contract.csv")
    delta = int(np.flatnonzero(subs["SBQQ__RevisedSubscription__c"] != "")[0])
    root = subs.loc[delta, "SBQQ__RevisedSubscription__c"]
    c_row = int(np.flatnonzero(~contracts["Id"].isin(set(subs.loc[delta:delta, "SBQQ__Contract__c"])))[0])
    c_line, c_id = edit_sf(org_copy, "Contract.csv", c_row, "StartDate", "31/31/2024")
    s_line, s_id = edit_sf(org_copy, "SBQQ__Subscription__c.csv", delta, "SBQQ__Quantity__c", "lots")
    return {
        "folder": org_copy,
        "contract": (c_line, c_id),
        "delta": (s_line, s_id),
        "chain": chain_rows(subs, root),
        "contract_subs": set(subs.loc[subs["SBQQ__Contract__c"] == c_id, "Id"]),
    }


def test_raise_is_the_default(broken):
    with pytest.raises(rf.BookValidationError):
        rf.load_book(broken["folder"])


def test_broken_rows_go_aside_with_what_depends_on_them(broken, demo_book):
    book = rf.load_book(broken["folder"], on_error="quarantine")
    q = book.quarantine
    direct = q[q["rule"] != "depends_on_set_aside"]
    assert set(zip(direct["file"], direct["line"], direct["record_id"], direct["rule"], strict=True)) == {
        ("Contract.csv", broken["contract"][0], broken["contract"][1], "unparseable_date"),
        ("SBQQ__Subscription__c.csv", broken["delta"][0], broken["delta"][1], "unparseable_number"),
    }
    aside = set(q.loc[q["table"] == "subscriptions", "record_id"])
    # the broken delta's whole chain, and every subscription of the broken contract
    assert aside == broken["chain"] | broken["contract_subs"]
    assert not aside & set(book.subscriptions["subscription_id"])
    assert broken["contract"][1] not in set(book.contracts["contract_id"])
    # links that only pointed at the contract are cleared, not kept dangling
    assert broken["contract"][1] not in set(book.opportunities["renewed_contract_id"].dropna())
    # every other row is loaded as it is in the sound export
    kept = demo_book.subscriptions[~demo_book.subscriptions["subscription_id"].isin(aside)]
    pd.testing.assert_frame_equal(book.subscriptions.reset_index(drop=True), kept.reset_index(drop=True))
    # ARR of what is left is the sound book's ARR less the set-aside rows' ARR, to the cent
    report = rf.quarantine_report(book)
    day = demo_book.data_end
    assert rf.arr_on(book, day) == pytest.approx(rf.arr_on(demo_book, day) - report["arr"].sum(), abs=0.01)
    summary = rf.set_aside_summary(book)
    assert summary["rows"] == len(q) and f"{len(q):,} rows" in summary["text"]


def test_problems_with_a_whole_file_are_refused_even_in_quarantine(org_copy):
    contracts = read_sf(org_copy, "Contract.csv")
    contracts.drop(columns=["AccountId"]).to_csv(org_copy / "Contract.csv", index=False)
    with pytest.raises(rf.BookValidationError, match="missing_column"):
        rf.load_book(org_copy, on_error="quarantine")
    with pytest.raises(ValueError, match="on_error"):
        rf.load_book(org_copy, on_error="skip")


def test_cli_validate_and_score_set_aside_and_exit_8(broken, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(broken["folder"]), "--on-error", "quarantine"])
    assert result.exit_code == 8, result.output
    assert "Set aside:" in result.output and "unparseable_number (1):" in result.output
    model_dir = tmp_path / "model"
    book = rf.load_book(broken["folder"], on_error="quarantine")
    X, y = rf.renewal_training_set(book)
    rf.save_model(rf.RenewalModel(random_state=0, max_iter=30, cv=2).fit(X, y), model_dir)
    out = tmp_path / "scores.csv"
    result = runner.invoke(
        main, ["score", str(broken["folder"]), "--model", str(model_dir), "--out", str(out), "--on-error", "quarantine"]
    )
    assert result.exit_code == 8, result.output
    assert out.exists() and "rows, " in result.stderr and broken["delta"][1] in result.stderr
    scored = set(pd.read_csv(out)["contract_id"])
    assert broken["contract"][1] not in scored and len(scored) > 0


@pytest.mark.slow
def test_report_with_rows_set_aside_publishes_says_so_and_exits_8(broken, tmp_path):
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(broken["folder"]),
            "--out",
            str(out),
            "--notebook",
            "00_data_quality",
            "--on-error",
            "quarantine",
        ],
    )
    assert result.exit_code == 8, result.output
    index = (out / "latest" / "index.html").read_text(encoding="utf-8")
    assert "set aside" in index
    page = (out / "latest" / "00_data_quality.html").read_text(encoding="utf-8")
    assert broken["delta"][1] in page and "unparseable_number" in page
