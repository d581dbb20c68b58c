"""A run's record: kept atomically inside the run, read back as it was written, listed only when published."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

import renewforecast as rf
from renewforecast.analyses.record import RecordError, keep_record, read_record_table, write_run_record
from renewforecast.exceptions import ReportRunError
from renewforecast.reports import runner
from renewforecast.reports.headline import Headline


def test_keep_record_round_trips_the_table_and_its_meta(tmp_path):
    frame = pd.DataFrame(
        {
            "contract_id": ["006A", "0061"],  # ids stay text
            "end_date": pd.to_datetime(["2026-11-30", "2027-01-31"]),
            "renewal_probability": [0.912345678901, 0.1],
            "risk_band": ["low", None],
        },
        index=[7, 9],  # the index is not kept
    )
    path = keep_record(tmp_path / "record", "scores", frame, seed=3, by=None, months=[1, 2])
    table, meta = read_record_table(path)
    pd.testing.assert_frame_equal(table, frame.reset_index(drop=True))
    assert meta == {"seed": 3, "by": None, "months": [1, 2]}
    assert [p.name for p in (tmp_path / "record").iterdir()] == ["scores.parquet"]  # no temporary file left


@pytest.mark.parametrize("name", ["Scores", "../x", "a-b", "", "scores.parquet"])
def test_keep_record_refuses_a_name_that_is_not_a_plain_word(tmp_path, name):
    with pytest.raises(RecordError, match="lower-case"):
        keep_record(tmp_path, name, pd.DataFrame({"x": [1]}))
    assert not any(tmp_path.iterdir())


def test_keep_record_without_a_folder_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert keep_record(None, "scores", pd.DataFrame({"x": [1]})) is None
    assert not any(tmp_path.iterdir())
    with pytest.raises(RecordError, match="JSON"):
        keep_record(tmp_path, "scores", pd.DataFrame({"x": [1]}), model=object())


def test_published_records_lists_published_runs_only_oldest_first(tmp_path):
    def run(run_id: str, as_of: str, published: str) -> None:
        record = tmp_path / run_id / "record"
        keep_record(record, "scores", pd.DataFrame({"contract_id": [run_id], "renewal_probability": [0.5]}))
        write_run_record(
            record,
            run_id=run_id,
            as_of=as_of,
            data_fingerprint="f" * 64,
            model_version="m1",
            currency="EUR",
            published=published,
        )

    run("r-new", "2026-09-30", "2026-10-01T05:00:00+00:00")
    run("r-old", "2026-08-31", "2026-10-02T05:00:00+00:00")  # published later, about an earlier date
    run("r-again", "2026-08-31", "2026-10-03T05:00:00+00:00")
    os.symlink("r-new", tmp_path / "latest")
    (tmp_path / "failed" / "r-bad" / "record").mkdir(parents=True)
    (tmp_path / ".staging-r-live" / "record").mkdir(parents=True)
    (tmp_path / "before-records").mkdir()
    (tmp_path / "before-records" / "run.json").write_text("{}")
    (tmp_path / "r-broken" / "record").mkdir(parents=True)
    (tmp_path / "r-broken" / "record" / "record.json").write_text("not json")
    records = rf.published_records(tmp_path)
    assert [r.run_id for r in records] == ["r-old", "r-again", "r-new"]
    first = records[0]
    assert first.as_of == pd.Timestamp("2026-08-31") and first.currency == "EUR" and first.model_version == "m1"
    assert first.data_fingerprint == "f" * 64 and first.published == pd.Timestamp("2026-10-02T05:00:00+00:00")
    assert first.table_names == ("scores",) and first.forecast is None
    assert first.scores["contract_id"].tolist() == ["r-old"]
    assert rf.read_record(tmp_path / "r-old").scores.equals(first.scores)
    assert rf.published_records(tmp_path / "nowhere") == []
    with pytest.raises(RecordError, match="has no record"):
        rf.read_record(tmp_path / "before-records")


def test_a_newer_record_layout_is_refused_with_a_clear_message(tmp_path):
    path = write_run_record(
        tmp_path / "r" / "record",
        run_id="r",
        as_of="2026-01-31",
        data_fingerprint=None,
        model_version=None,
        currency="USD",
    )
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "format": 99}))
    with pytest.raises(RecordError, match="upgrade"):
        rf.read_record(tmp_path / "r")


# --------------------------------------------------------------------------- #
# The runner keeps the record inside the run (no kernel: the notebooks are stood in for)
# --------------------------------------------------------------------------- #

PARAMS = 'source = ""\nas_of = None\nrecord_dir = None\nreports_dir = None\n'


def _notebook(folder: Path, name: str) -> None:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {name}"))
    cell = new_code_cell(PARAMS)
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def _stand_in(fail: str | None = None, seen: dict | None = None):
    """What a report notebook does in a run: keep its table, show its headline (or fail)."""

    def execute(report, staging, **kwargs):
        params = report.parameters
        if seen is not None:
            seen[report.stem] = dict(params)
        keep_record(params["record_dir"], report.stem.split("_", 1)[1], pd.DataFrame({"x": [1.0, 2.0]}), seed=0)
        if report.stem == fail:
            raise RuntimeError("the notebook failed")
        headline = Headline(
            report.stem,
            report.stem,
            [{"key": "arr", "label": "ARR", "value": 1.5e6, "kind": "money"}, {"key": "t", "label": "T", "value": "x"}],
            provenance={"as_of": "2026-06-30", "data_fingerprint": "d" * 64, "currency": "EUR"},
        )
        cell = new_code_cell("rf.headline()", execution_count=1)
        cell.outputs = [new_output("display_data", data=headline._repr_mimebundle_())]
        nb = new_notebook(cells=[cell])
        (staging / f"{report.stem}.ipynb").write_text(nbformat.writes(nb))
        return nb

    return execute


def test_a_run_publishes_its_record_with_its_headlines(tmp_path, monkeypatch):
    _notebook(tmp_path / "nb", "01_alpha")
    _notebook(tmp_path / "nb", "02_beta")
    seen: dict = {}
    monkeypatch.setattr(runner, "_execute", _stand_in(seen=seen))
    out = tmp_path / "reports"
    published = runner.run_reports("data", as_of="2026-06-30", out=out, notebooks_dir=tmp_path / "nb", run_id="r1")
    # Each notebook was handed the run's own record folder, inside the staging folder, and the reports folder.
    assert seen["01_alpha"]["record_dir"] == str(out / ".staging-r1" / "record")
    assert seen["02_beta"]["reports_dir"] == str(out.resolve())
    record = rf.read_record(published)
    assert record.run_id == "r1" and record.as_of == pd.Timestamp("2026-06-30") and record.currency == "EUR"
    assert record.data_fingerprint == "d" * 64
    assert set(record.table_names) == {"alpha", "beta", "headline"}
    h = record.headline.set_index(["report", "key"])
    assert h.loc[("01_alpha", "arr"), "value"] == 1.5e6 and h.loc[("01_alpha", "arr"), "kind"] == "money"
    assert pd.isna(h.loc[("02_beta", "t"), "value"]) and h.loc[("02_beta", "t"), "text"] == "x"
    meta = json.loads((published / "record" / "record.json").read_text())
    assert meta["tables"]["alpha"]["meta"] == {"seed": 0} and meta["tables"]["headline"]["rows"] == 4
    # The record folder's path means nothing to a reader: it is not shown on the report pages.
    for page in ("01_alpha.html", "02_beta.html", "index.html"):
        assert ".staging" not in (published / page).read_text(encoding="utf-8")
    assert [r.run_id for r in rf.published_records(out)] == ["r1"]


def test_a_failed_run_publishes_no_record(tmp_path, monkeypatch):
    _notebook(tmp_path / "nb", "01_alpha")
    _notebook(tmp_path / "nb", "02_beta")
    monkeypatch.setattr(runner, "_execute", _stand_in(fail="02_beta"))
    out = tmp_path / "reports"
    with pytest.raises(ReportRunError, match="the notebook failed"):
        runner.run_reports("data", out=out, notebooks_dir=tmp_path / "nb", run_id="r2", jobs=1)
    assert sorted(p.name for p in out.iterdir()) == ["failed"]
    # The first notebook had kept its table; none of it is left where it could be read as a record.
    assert not (out / "failed" / "r2" / "record").exists()
    assert rf.published_records(out) == []
