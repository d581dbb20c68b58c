"""Tests for renewforecast.reports.runner: running, exporting and publishing reports.

Fixture notebooks are built with nbformat inside each test's tmp_path. Tests
that start a Jupyter kernel are marked ``slow``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from renewforecast.exceptions import RenewForecastError, ReportRunError
from renewforecast.reports import runner
from renewforecast.reports.runner import (
    EXIT_BAD_INPUT,
    EXIT_CELL_ERROR,
    EXIT_DEAD_KERNEL,
    EXIT_EARLY_EXIT,
    EXIT_TIMEOUT,
    EXIT_UNEXPECTED,
    list_notebooks,
    notebook_parameters,
    run_reports,
)

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PARAMS_SOURCE = (
    'source = ""  # folder with the exports\n'
    "as_of = None  # reporting date\n"
    'title_param: str = "x"  # shown in the heading\n'
    'account_name = "nobody"\n'
)


def make_notebook(
    folder: Path,
    name: str,
    cells: list[str],
    *,
    title: str | None = "Report",
    params: str = PARAMS_SOURCE,
) -> Path:
    """Write a notebook: optional heading, a tagged parameters cell, then code cells."""
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC})
    if title is not None:
        nb.cells.append(new_markdown_cell(f"Intro text.\n\n# {title}\n\nMore."))
    param_cell = new_code_cell(params)
    param_cell.metadata["tags"] = ["parameters"]
    nb.cells.append(param_cell)
    nb.cells.extend(new_code_cell(src) for src in cells)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


@pytest.fixture
def nbdir(tmp_path: Path) -> Path:
    return tmp_path / "notebooks"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "reports"


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail the test if anything tries to execute a notebook."""
    import papermill

    def boom(*args, **kwargs):
        raise AssertionError("a notebook was executed")

    monkeypatch.setattr(papermill, "execute_notebook", boom)


# --------------------------------------------------------------------------- #
# Discovery and parameters (no kernel)
# --------------------------------------------------------------------------- #


def test_list_notebooks_sorted_and_filtered(nbdir, monkeypatch):
    for name in ["02_b", "01_a", "scratch", "1_short"]:
        make_notebook(nbdir, name, ["1"])
    names = [p.name for p in list_notebooks(nbdir)]
    assert names == ["01_a.ipynb", "02_b.ipynb"]

    monkeypatch.setenv("RENEWFORECAST_NOTEBOOKS", str(nbdir))
    assert [p.name for p in list_notebooks()] == names


def test_list_notebooks_missing_folder_is_clear(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(ReportRunError, match="does not exist") as info:
        list_notebooks(missing)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert isinstance(info.value, RenewForecastError)

    monkeypatch.setenv("RENEWFORECAST_NOTEBOOKS", str(missing))
    with pytest.raises(ReportRunError, match="RENEWFORECAST_NOTEBOOKS"):
        list_notebooks()


def test_notebook_parameters_reads_defaults_types_and_help(tmp_path):
    # Braces in the folder name must not be taken as papermill path templates.
    path = make_notebook(tmp_path / "{weird}", "01_a", ["1"])
    params = notebook_parameters(path)
    assert list(params) == ["source", "as_of", "title_param", "account_name"]
    assert params["source"] == {
        "default": '""',
        "type": "None",
        "help": "folder with the exports",
    }
    assert params["as_of"]["default"] == "None"
    assert params["title_param"] == {
        "default": '"x"',
        "type": "str",
        "help": "shown in the heading",
    }


def test_notebook_parameters_without_parameters_cell(tmp_path):
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(new_code_cell("x = 1"))
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    assert notebook_parameters(tmp_path / "01_x.ipynb") == {}


def test_notebook_parameters_missing_file(tmp_path):
    with pytest.raises(ReportRunError) as info:
        notebook_parameters(tmp_path / "01_none.ipynb")
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_default_run_ids_are_unique_within_one_second():
    now = dt.datetime(2026, 11, 21, 5, 30, tzinfo=dt.UTC)
    ids = {runner._new_run_id(now) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"20261121T053000Z-[0-9a-f]{6}", i) for i in ids)


# --------------------------------------------------------------------------- #
# Refusals before any kernel starts
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("bad_id", ["../evil", "..", ".", ".hidden", "a/b", "latest", "failed", ""])
def test_bad_run_id_is_refused(nbdir, out, no_kernel, bad_id):
    make_notebook(nbdir, "01_a", ["1"])
    with pytest.raises(ReportRunError, match="Invalid run id") as info:
        run_reports("data", out=out, notebooks_dir=nbdir, run_id=bad_id)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert not out.exists()
    assert not (out.parent / "evil").exists()


@pytest.mark.parametrize(
    "params",
    [
        {"account_name": dt.date(2026, 1, 1)},
        {"account_name": [1, {"nested": {2, 3}}]},
        {"account_name": float("nan")},
        {"account_name": {1: "non-string key"}},
        {"not an identifier": 1},
    ],
)
def test_non_json_parameters_are_refused_before_running(nbdir, out, no_kernel, params):
    make_notebook(nbdir, "01_a", ["1"])
    with pytest.raises(ReportRunError) as info:
        run_reports("data", out=out, notebooks_dir=nbdir, parameters=params)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert info.value.failed_dir is None
    assert not out.exists()


def test_other_bad_inputs_are_refused(nbdir, out, no_kernel):
    make_notebook(nbdir, "01_a", ["1"])
    cases = [
        ({"notebooks": ["99_missing"]}, "Unknown report notebook"),
        ({"as_of": "30/06/2026"}, "not an ISO date"),
        ({"keep": 0}, "keep"),
        ({"timeout": -1}, "timeout"),
        ({"kernel_name": "no-such-kernel"}, "not installed"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ReportRunError, match=message) as info:
            run_reports("data", out=out, notebooks_dir=nbdir, **kwargs)
        assert info.value.exit_code == EXIT_BAD_INPUT
    empty = nbdir.parent / "empty"
    empty.mkdir()
    with pytest.raises(ReportRunError, match="No report notebooks") as info:
        run_reports("data", out=out, notebooks_dir=empty)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert not out.exists()


def test_latest_that_is_a_real_folder_is_refused(nbdir, out, no_kernel):
    make_notebook(nbdir, "01_a", ["1"])
    (out / "latest").mkdir(parents=True)
    with pytest.raises(ReportRunError, match="not a symlink") as info:
        run_reports("data", out=out, notebooks_dir=nbdir)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert entries(out) == {"latest"}


def test_unexpected_error_publishes_nothing(nbdir, out, monkeypatch):
    make_notebook(nbdir, "01_a", ["1"])

    def fake_execute(report, staging, **kwargs):
        (staging / f"{report.stem}.ipynb").write_text("{}")
        return new_notebook()

    def broken_export(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runner, "_execute", fake_execute)
    monkeypatch.setattr(runner, "_export_html", broken_export)
    with pytest.raises(ReportRunError, match="disk on fire") as info:
        run_reports("data", out=out, notebooks_dir=nbdir, run_id="r1")
    assert info.value.exit_code == EXIT_UNEXPECTED
    assert entries(out) == {"failed"}
    assert entries(out / "failed") == {"r1"}
    assert Path(info.value.failed_dir) == out / "failed" / "r1"
    assert (out / "failed" / "r1" / "01_a.ipynb").exists()


# --------------------------------------------------------------------------- #
# Real runs (start a kernel)
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_successful_run_publishes_html_index_and_latest(nbdir, out, monkeypatch):
    monkeypatch.chdir(nbdir.parent)
    (nbdir.parent / "my-data-dir").mkdir()
    make_notebook(
        nbdir,
        "01_summary",
        [
            "print('SRC=' + source.upper())",
            # relative local source is made absolute: kernels run in staging
            "import os; print('ISDIR=' + str(os.path.isdir(source)))",
            "print('ASOF=' + str(as_of))",
            "",  # blank cells are never executed and must not fail the run
        ],
        title="Summary <b>bold</b>",
    )
    make_notebook(
        nbdir,
        "02_detail",
        # Declares only `source`: the other names must not be injected.
        [
            "assert 'account_name' not in globals() and 'as_of' not in globals()",
            "print('ok2')",
        ],
        title=None,
        params='source = ""\n',
    )
    evil = "<script>alert(1)</script>"
    folder = run_reports(
        "my-data-dir",
        as_of="2026-06-30",
        out=out,
        notebooks_dir=nbdir,
        parameters={"account_name": evil, "unused_name": 1, "sf_password": "hunter2-secret"},
        timeout=60,
    )

    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", folder.name)
    assert folder == out / folder.name
    assert entries(out) == {folder.name, "latest"}  # no staging or temp links left
    assert (out / "latest").is_symlink()
    assert os.readlink(out / "latest") == folder.name
    assert (out / "latest").resolve() == folder.resolve()
    assert entries(folder) == {
        "01_summary.ipynb",
        "01_summary.html",
        "02_detail.ipynb",
        "02_detail.html",
        "index.html",
        "run.json",
    }

    page = (folder / "01_summary.html").read_text(encoding="utf-8")
    data_dir = str(nbdir.parent / "my-data-dir")
    assert f"SRC={data_dir.upper()}" in page  # computed from the injected parameter
    assert "ISDIR=True" in page
    assert "ASOF=2026-06-30" in page
    assert "folder with the exports" not in page  # the parameters cell is hidden
    assert "print(" not in page
    assert "Injected" not in page
    # The run banner shows this report's parameters, escaped, and links home.
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="index.html"' in page and folder.name in page
    assert "<script" not in page.lower()  # no CDN require.js / MathJax / mermaid
    assert "ok2" in (folder / "02_detail.html").read_text(encoding="utf-8")

    index = (folder / "index.html").read_text(encoding="utf-8")
    assert "<title>renewforecast reports as of 2026-06-30</title>" in index
    for name in ("01_summary.html", "02_detail.html", "index.html", "run.json"):
        assert "hunter2-secret" not in (folder / name).read_text(encoding="utf-8")
    assert "<script" not in index.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert 'href="01_summary.html"' in index and 'href="02_detail.html"' in index
    assert "Summary &lt;b&gt;bold&lt;/b&gt;" in index  # first heading, escaped
    assert ">02_detail</a>" in index  # no heading: falls back to the stem
    assert folder.name in index and "2026-06-30" in index and "my-data-dir" in index
    assert "http" not in index  # no external assets

    meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert meta["status"] == "ok"
    assert meta["run_id"] == folder.name
    assert meta["as_of"] == "2026-06-30"
    assert meta["source"] == data_dir
    assert meta["parameters"]["account_name"] == evil
    assert meta["parameters"]["sf_password"] == "(hidden)"
    assert [n["name"] for n in meta["notebooks"]] == ["01_summary", "02_detail"]
    assert meta["notebooks"][1]["parameters"] == ["source"]
    assert set(meta["durations"]) == {"01_summary", "02_detail"}
    assert meta["package_version"]


@pytest.mark.slow
def test_cell_error_publishes_nothing_and_keeps_latest(nbdir, out):
    make_notebook(nbdir, "01_good", ["print('fine')"])
    good = run_reports("data", out=out, notebooks_dir=nbdir, run_id="good")
    assert os.readlink(out / "latest") == "good"

    make_notebook(nbdir, "02_bad", ["x = 1", "1/0", "print('never')"])
    with pytest.raises(ReportRunError) as info:
        run_reports("data", out=out, notebooks_dir=nbdir, run_id="bad")
    err = info.value
    assert err.exit_code == EXIT_CELL_ERROR
    message = str(err)
    assert "02_bad" in message and "ZeroDivisionError" in message
    assert "cell 3" in message  # index in the template (heading, params, x = 1, 1/0)
    assert "\n" not in message

    assert entries(out) == {"good", "latest", "failed"}
    assert os.readlink(out / "latest") == "good"
    assert (out / "latest" / "index.html").exists()
    failed = out / "failed" / "bad"
    assert Path(err.failed_dir) == failed
    assert {"01_good.ipynb", "02_bad.ipynb"} <= entries(failed)
    assert not (failed / "index.html").exists()
    partial = nbformat.read(failed / "02_bad.ipynb", as_version=4)
    enames = [o.get("ename") for c in partial.cells for o in c.get("outputs", [])]
    assert "ZeroDivisionError" in enames
    assert entries(good) >= {"01_good.html", "index.html"}


@pytest.mark.slow
def test_timeout_exit_code(nbdir, out):
    make_notebook(nbdir, "01_slow", ["import time; time.sleep(30)", "print('after')"])
    started = time.monotonic()
    with pytest.raises(ReportRunError, match="timed out") as info:
        run_reports("data", out=out, notebooks_dir=nbdir, timeout=2, run_id="t")
    assert time.monotonic() - started < 25
    assert info.value.exit_code == EXIT_TIMEOUT
    assert "01_slow" in str(info.value) and "cell 2" in str(info.value)
    assert entries(out) == {"failed"}
    assert (out / "failed" / "t" / "01_slow.ipynb").exists()


@pytest.mark.slow
def test_dead_kernel_exit_code(nbdir, out):
    make_notebook(nbdir, "01_dies", ["import os; os._exit(1)", "print('after')"])
    with pytest.raises(ReportRunError, match="kernel died") as info:
        run_reports("data", out=out, notebooks_dir=nbdir, timeout=60)
    assert info.value.exit_code == EXIT_DEAD_KERNEL
    assert "01_dies" in str(info.value) and "cell 2" in str(info.value)
    assert entries(out) == {"failed"}


@pytest.mark.slow
def test_early_sys_exit_is_a_failure(nbdir, out):
    # papermill itself raises nothing for sys.exit(0): the later cell just never runs.
    make_notebook(nbdir, "01_quits", ["import sys; sys.exit(0)", "print('after')"])
    with pytest.raises(ReportRunError, match="stopped early") as info:
        run_reports("data", out=out, notebooks_dir=nbdir, timeout=60)
    assert info.value.exit_code == EXIT_EARLY_EXIT
    assert "01_quits" in str(info.value) and "SystemExit" in str(info.value)
    assert entries(out) == {"failed"}
    assert len(entries(out / "failed")) == 1


@pytest.mark.slow
def test_keep_prunes_older_runs_only(nbdir, out):
    make_notebook(nbdir, "01_a", ["print('a')"])
    (out / "failed" / "old-failure").mkdir(parents=True)
    (out / "notes").mkdir()  # not a run folder (no run.json): left alone
    first = run_reports("data", out=out, notebooks_dir=nbdir, run_id="run-a")
    assert first.exists()
    second = run_reports("data", out=out, notebooks_dir=nbdir, run_id="run-b", keep=1)

    assert not first.exists()
    assert second.exists()
    assert os.readlink(out / "latest") == "run-b"
    assert entries(out) == {"run-b", "latest", "failed", "notes"}
    assert (out / "failed" / "old-failure").exists()


def _headline_cell(report: str, value: float, fingerprint: str, model: str | None = None) -> str:
    provenance = {"as_of": "2026-06-30", "data_fingerprint": fingerprint, "currency": "EUR"}
    if model:
        provenance["model_version"] = model
    return (
        "from renewforecast.reports.headline import Headline\n"
        f"Headline({report!r}, 'Figures', [{{'key': 'arr', 'label': 'ARR <i>', 'value': {value}, "
        f"'kind': 'money', 'detail': 'at month end'}}], series={{'arr': {{'month': ['2026-05-31', "
        f"'2026-06-30'], 'value': [1.0e6, {value}]}}}}, provenance={provenance!r})"
    )


@pytest.mark.slow
def test_index_shows_headline_figures_and_every_page_its_provenance(nbdir, out):
    make_notebook(nbdir, "01_kpis", [_headline_cell("revenue_kpis", 2_345_678.9, "f" * 64)], title="KPIs")
    make_notebook(nbdir, "02_risk", [_headline_cell("renewal_risk", 0.0, "f" * 64, model="m-42")], title="Risk")
    folder = run_reports("data", out=out, notebooks_dir=nbdir, run_id="r1", timeout=60)

    index = (folder / "index.html").read_text(encoding="utf-8")
    assert "€2.3M" in index and "€0" in index  # formatted for people
    assert "ARR &lt;i&gt;" in index and "ARR <i>" not in index
    # Cards link to the report they came from; KPI cards come before risk cards.
    assert index.index('href="01_kpis.html">KPIs') < index.index('href="02_risk.html">Risk')
    assert index.count('src="data:image/svg+xml;base64,') == 2  # one ARR sparkline per card
    assert "2026-06-30" in index and "f" * 64 in index and "m-42" in index
    meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert meta["data_fingerprint"] == "f" * 64 and meta["model_version"] == "m-42"
    assert meta["headlines"]["01_kpis"]["figures"][0]["value"] == 2_345_678.9
    for page in ("01_kpis.html", "02_risk.html"):
        text = (folder / page).read_text(encoding="utf-8")
        assert 'class="rf-run"' in text and "r1" in text and "f" * 12 in text and "m-42" in text


@pytest.mark.slow
def test_reports_that_disagree_on_the_data_publish_nothing(nbdir, out):
    # Every report reads the run's one snapshot, so a disagreement is a bug
    # (here: notebooks that load data their own way), not a user error.
    make_notebook(nbdir, "01_kpis", [_headline_cell("revenue_kpis", 1.0, "a" * 64)])
    make_notebook(nbdir, "02_risk", [_headline_cell("renewal_risk", 1.0, "b" * 64)])
    with pytest.raises(ReportRunError) as info:
        run_reports("data", out=out, notebooks_dir=nbdir, run_id="r1", timeout=60)
    assert info.value.exit_code == EXIT_UNEXPECTED
    assert "internal error" in str(info.value)
    assert "data fingerprint" in str(info.value) and "01_kpis" in str(info.value)
    assert entries(out) == {"failed"}


SNAPSHOT_PARAMS = 'source = "data/demo"\nsnapshot = None\nas_of = None\n'


@pytest.mark.slow
def test_every_report_reads_the_one_snapshot_and_the_one_as_of_date(nbdir, out, demo_book, tmp_path):
    cells = [
        "import renewforecast as rf\nbook = rf.report_book(source, snapshot)",
        "print('FP=' + book.fingerprint, 'ASOF=' + as_of, 'WARN=' + str(len(book.warnings)))",
    ]
    make_notebook(nbdir, "01_a", cells, params=SNAPSHOT_PARAMS)
    make_notebook(
        nbdir, "02_b", [*cells, "import os; print('SNAP=' + snapshot, os.path.isdir(snapshot))"], params=SNAPSHOT_PARAMS
    )
    # The source is never read again: a folder that is not an export would fail the notebooks.
    (tmp_path / "export").mkdir()
    folder = run_reports(tmp_path / "export", out=out, notebooks_dir=nbdir, run_id="r1", timeout=120, book=demo_book)
    for stem in ("01_a", "02_b"):
        page = (folder / f"{stem}.html").read_text(encoding="utf-8")
        assert f"FP={demo_book.fingerprint}" in page
        assert f"ASOF={demo_book.resolve_as_of().date()}" in page  # resolved once, from the Book
        assert f"WARN={len(demo_book.warnings)}" in page
    assert "True" in (folder / "02_b.html").read_text(encoding="utf-8")  # the snapshot existed while it ran
    # The snapshot is the whole input: it is not published, and its path is not shown.
    assert entries(folder) == {"01_a.ipynb", "01_a.html", "02_b.ipynb", "02_b.html", "index.html", "run.json"}
    assert not any(p.name.startswith(".") for p in folder.rglob("*"))
    assert ".book-snapshot" not in (folder / "01_a.html").read_text(encoding="utf-8")  # nor in the banner
    meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert meta["data_fingerprint"] == demo_book.fingerprint
    assert meta["as_of"] == str(demo_book.resolve_as_of().date())


@pytest.mark.slow
def test_without_a_book_the_run_reads_the_source_once_itself(nbdir, out, demo_org, demo_book):
    cells = ["import renewforecast as rf\nprint('FP=' + rf.report_book(source, snapshot).fingerprint)"]
    make_notebook(nbdir, "01_a", cells, params=SNAPSHOT_PARAMS)
    folder = run_reports(demo_org.path, as_of="2026-06-30", out=out, notebooks_dir=nbdir, run_id="r1", timeout=120)
    assert f"FP={demo_book.fingerprint}" in (folder / "01_a.html").read_text(encoding="utf-8")
    assert json.loads((folder / "run.json").read_text(encoding="utf-8"))["as_of"] == "2026-06-30"


def test_a_snapshot_that_reads_back_differently_is_an_internal_error(nbdir, out, no_kernel, demo_book, monkeypatch):
    make_notebook(nbdir, "01_a", ["1"], params=SNAPSHOT_PARAMS)
    monkeypatch.setattr(
        runner, "read_snapshot", lambda folder: demo_book.as_of("2024-01-31").replace(loaded_fingerprint=None)
    )
    with pytest.raises(ReportRunError, match="internal error: the run's Book snapshot") as info:
        run_reports("data", out=out, notebooks_dir=nbdir, run_id="r1", book=demo_book)
    assert info.value.exit_code == EXIT_UNEXPECTED
    assert entries(out) == {"failed"}
    assert not (out / "failed" / "r1" / ".book-snapshot").exists()  # the input is not kept with a failure


# --------------------------------------------------------------------------- #
# Concurrent and killed runs (separate processes, as cron would start them)
# --------------------------------------------------------------------------- #

_RUNNER = """
import sys
from renewforecast.reports.runner import run_reports
run_reports("data", out=sys.argv[1], notebooks_dir=sys.argv[2], run_id=sys.argv[3],
            parameters={"title_param": sys.argv[3]}, timeout=120)
"""


def _start_run(out: Path, nbdir: Path, run_id: str):
    return subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(out), str(nbdir), run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.slow
def test_two_runs_at_once_each_publish_their_own_complete_folder(nbdir, out):
    # Each report prints the run's own marker after a pause, so both runs are
    # inside their notebooks at the same time.
    make_notebook(nbdir, "01_a", ["import time; time.sleep(1.5)", "print('MARK=' + title_param)"])
    make_notebook(nbdir, "02_b", ["print('MARK=' + title_param)"])
    runs = [_start_run(out, nbdir, name) for name in ("run-one", "run-two")]
    for proc in runs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output.decode(errors="replace")

    assert entries(out) == {"run-one", "run-two", "latest"}  # no staging or temporary links left
    assert os.readlink(out / "latest") in {"run-one", "run-two"}
    for name, other in (("run-one", "run-two"), ("run-two", "run-one")):
        folder = out / name
        assert entries(folder) == {"01_a.ipynb", "01_a.html", "02_b.ipynb", "02_b.html", "index.html", "run.json"}
        meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))  # complete, valid JSON
        assert meta["run_id"] == name
        for stem in ("01_a", "02_b"):
            page = (folder / f"{stem}.html").read_text(encoding="utf-8")
            assert f"MARK={name}" in page and f"MARK={other}" not in page
            assert page.rstrip().endswith("</html>")
            executed = nbformat.read(folder / f"{stem}.ipynb", as_version=4)
            assert all(c.execution_count for c in executed.cells if c.cell_type == "code")


@pytest.mark.slow
def test_a_run_killed_halfway_leaves_latest_intact_and_is_filed_as_failed(nbdir, out):
    make_notebook(nbdir, "01_a", ["print('fine')"])
    good = run_reports("data", out=out, notebooks_dir=nbdir, run_id="good", timeout=60)
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    make_notebook(nbdir, "02_slow", ["import time; time.sleep(120)"])
    proc = _start_run(out, nbdir, "doomed")
    partial = out / ".staging-doomed" / ".02_slow.partial.ipynb"
    done = out / ".staging-doomed" / "01_a.ipynb"
    deadline = time.monotonic() + 120
    while not (partial.exists() and done.exists()):  # the first report is done, the second is running
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached 02_slow"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    assert os.readlink(out / "latest") == "good"
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert not (out / "doomed").exists()

    # The next run recovers the killed run's partial output into failed/.
    (nbdir / "02_slow.ipynb").unlink()
    run_reports("data", out=out, notebooks_dir=nbdir, run_id="next", timeout=60)
    assert os.readlink(out / "latest") == "next"
    assert entries(out) == {"good", "next", "latest", "failed"}
    assert (out / "failed" / "doomed" / "01_a.ipynb").exists()
