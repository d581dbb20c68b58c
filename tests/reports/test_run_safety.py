"""A report run stopped by a signal, a full disk or an unwritable output: clean stops, no tracebacks.

Report runs here start the real command line in a subprocess, as cron does,
with small notebooks built in tmp_path (RENEWFORECAST_NOTEBOOKS) so each run
takes seconds.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from _support import folder_digest, read_sf, write_sf
from renewforecast.cli import main
from renewforecast.exceptions import EXIT_CANNOT_WRITE, EXIT_SIGINT, EXIT_SIGTERM
from renewforecast.reports import runner as reporting

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SRC = str(Path(__file__).resolve().parents[2] / "src")


def make_notebook(folder: Path, name: str, cells: list[str]) -> Path:
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(new_markdown_cell(f"# {name}"))
    params = new_code_cell('source = ""  # data folder\nas_of = None  # as-of date\nmodel_path = ""  # renewal model\n')
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells.extend(new_code_cell(src) for src in cells)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


def cli_env(nbdir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    if nbdir is not None:
        env["RENEWFORECAST_NOTEBOOKS"] = str(nbdir)
    return env


def plant_published_run(out: Path) -> dict[str, str]:
    """A previous good run and ``latest`` pointing at it; returns its digest."""
    good = out / "20260101T000000Z-aaaaaa"
    good.mkdir(parents=True)
    (good / "run.json").write_text('{"run_id": "20260101T000000Z-aaaaaa", "status": "ok"}\n')
    (good / "index.html").write_text("<html>good</html>\n")
    os.symlink(good.name, out / "latest")
    return folder_digest(out)


def kernel_processes(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --------------------------------------------------------------------------- #
# SIGINT / SIGTERM
# --------------------------------------------------------------------------- #


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "name"),
    [
        (signal.SIGINT, EXIT_SIGINT, "SIGINT"),
        (signal.SIGTERM, EXIT_SIGTERM, "SIGTERM"),
    ],
)
def test_a_signal_stops_the_run_kills_the_kernel_and_publishes_nothing(demo_org, tmp_path, signum, code, name):
    nbdir, out, marker = tmp_path / "nbs", tmp_path / "reports", tmp_path / "cell-started"
    make_notebook(nbdir, "01_first", ["print('first done')"])
    make_notebook(nbdir, "02_slow", [f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(120)"])
    make_notebook(nbdir, "03_never", ["print('never')"])
    before = plant_published_run(out)

    # A parent that ignores SIGINT (a shell's background job) must not make the
    # run ignore it: the child inherits SIG_IGN.
    proc = subprocess.Popen(
        [sys.executable, "-m", "renewforecast", "report", str(demo_org.path), "--out", str(out), "--jobs", "1"],
        env=cli_env(nbdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 180
    while not marker.exists():  # the second notebook's kernel is running its long cell
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached 02_slow"
        time.sleep(0.2)
    kernels = kernel_processes(proc.pid)
    assert len(kernels) == 1

    sent = time.monotonic()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    stderr_text = stderr.decode()

    assert proc.returncode == code, stderr_text
    assert stopped_after < 20  # the 120 s cell did not run to its end
    lines = stderr_text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Report run ") and name in lines[0], stderr_text
    assert "nothing was published" in lines[0]
    for noise in ("Traceback", "KeyboardInterrupt", "TCP", "Kernel died"):
        assert noise not in stderr_text
    assert b"Published" not in stdout
    assert all(gone(k) for k in kernels), "a kernel outlived the run"

    # Nothing published: the earlier run and latest are untouched, nothing new beside them.
    assert {p.name for p in out.iterdir()} == {"20260101T000000Z-aaaaaa", "latest", "failed"}
    assert folder_digest(out / "20260101T000000Z-aaaaaa") == {
        k.split("/", 1)[1]: v for k, v in before.items() if k.startswith("20260101T000000Z-aaaaaa/")
    }
    assert os.readlink(out / "latest") == "20260101T000000Z-aaaaaa"
    (failed,) = (out / "failed").iterdir()
    assert str(failed) in lines[0]
    kept = {p.name for p in failed.iterdir()}
    assert {"01_first.ipynb", "02_slow.ipynb"} <= kept and "03_never.ipynb" not in kept
    slow = nbformat.read(failed / "02_slow.ipynb", as_version=4)  # a complete, readable notebook
    assert "time.sleep(120)" in slow.cells[-1].source


@pytest.mark.slow
def test_a_signal_stops_reports_running_side_by_side(demo_org, tmp_path):
    nbdir, out = tmp_path / "nbs", tmp_path / "reports"
    markers = [tmp_path / "a-started", tmp_path / "b-started"]
    for name, marker in zip(("01_slow_a", "02_slow_b"), markers, strict=True):
        make_notebook(nbdir, name, [f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(120)"])
    make_notebook(nbdir, "03_never", ["print('never')"])
    plant_published_run(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "renewforecast", "report", str(demo_org.path), "--out", str(out), "--jobs", "2"],
        env=cli_env(nbdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while not all(m.exists() for m in markers):  # both kernels are in their long cells
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the two slow reports never ran side by side"
        time.sleep(0.2)
    kernels = kernel_processes(proc.pid)
    assert len(kernels) == 2

    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_SIGTERM, stderr.decode()
    assert time.monotonic() - sent < 20
    lines = stderr.decode().splitlines()
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "nothing was published" in lines[0], lines
    assert all(gone(k) for k in kernels), "a kernel outlived the run"
    assert os.readlink(out / "latest") == "20260101T000000Z-aaaaaa"
    (failed,) = (out / "failed").iterdir()
    kept = {p.name for p in failed.iterdir()}
    assert {"01_slow_a.ipynb", "02_slow_b.ipynb"} <= kept and "03_never.ipynb" not in kept


@pytest.mark.slow
def test_a_failing_report_stops_the_one_beside_it(demo_org, tmp_path):
    nbdir, out, marker = tmp_path / "nbs", tmp_path / "reports", tmp_path / "slow-started"
    make_notebook(nbdir, "01_slow", [f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(120)"])
    make_notebook(
        nbdir,
        "02_broken",
        [f"import pathlib, time\nwhile not pathlib.Path({str(marker)!r}).exists(): time.sleep(0.1)", "1 / 0"],
    )
    make_notebook(nbdir, "03_never", ["print('never')"])
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "renewforecast", "report", str(demo_org.path), "--out", str(out), "--jobs", "2"],
        env=cli_env(nbdir),
        capture_output=True,
        timeout=120,
    )
    assert time.monotonic() - started < 90  # the 120 s cell was stopped, not waited for
    assert proc.returncode == reporting.EXIT_CELL_ERROR, proc.stderr.decode()
    message = proc.stderr.decode()
    assert "02_broken" in message and "ZeroDivisionError" in message and "01_slow" not in message
    assert not (out / "latest").exists()
    (failed,) = (out / "failed").iterdir()
    kept = {p.name for p in failed.iterdir()}
    assert {"01_slow.ipynb", "02_broken.ipynb"} <= kept and "03_never.ipynb" not in kept


# --------------------------------------------------------------------------- #
# Only the project's own lines on stderr
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_a_successful_run_writes_nothing_to_stderr(demo_org, tmp_path):
    out = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "renewforecast",
            "report",
            str(demo_org.path),
            "--out",
            str(out),
            "--notebook",
            "00_data_quality",
            "--notebook",
            "01_revenue_kpis",
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    for noise in ("KeyboardInterrupt", "TCP", "Traceback", "Message signing", "WARNING"):
        assert noise not in done.stderr
    # A clean export, a good run: the project has nothing to say on stderr.
    assert done.stderr == ""
    assert done.stdout.startswith("Published ")


def test_kernel_sockets_find_a_short_folder_when_tmpdir_is_long(tmp_path, monkeypatch):
    import tempfile

    from renewforecast.reports import runner

    long = tmp_path / ("x" * 90)
    long.mkdir()
    monkeypatch.setenv("TMPDIR", str(long))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the folder it found first
    folder = runner._socket_dir()
    try:
        assert folder is not None and len(folder) < runner._IPC_PATH_LIMIT
        assert not folder.startswith(str(long))
    finally:
        if folder:
            os.rmdir(folder)


_TCP_RUN = """
import sys
from renewforecast.reports import runner
runner._socket_dir = lambda: None  # as where no folder has a short enough path
runner.run_reports("data", out=sys.argv[1], notebooks_dir=sys.argv[2], timeout=60)
"""


@pytest.mark.slow
def test_a_kernel_on_tcp_is_encrypted_and_does_not_warn(tmp_path):
    nbdir = tmp_path / "nbs"
    make_notebook(nbdir, "01_a", ["print('fine')"])
    done = subprocess.run(
        [sys.executable, "-c", _TCP_RUN, str(tmp_path / "reports"), str(nbdir)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "TCP" not in done.stderr and "WARNING" not in done.stderr, done.stderr


# --------------------------------------------------------------------------- #
# Staging folders left behind
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_a_stale_staging_folder_without_owner_is_recovered_by_the_next_run(tmp_path, caplog):
    nbdir, out = tmp_path / "nbs", tmp_path / "reports"
    make_notebook(nbdir, "01_a", ["print('fine')"])
    out.mkdir()
    # What a run that died between creating its folder and writing its owner
    # (disk full, SIGKILL) leaves: an empty owner file, an hour ago.
    dead = out / ".staging-20260101T000000Z-dead00"
    dead.mkdir()
    (dead / ".owner").write_text("")
    (dead / ".01_a.partial.ipynb").write_text("{")
    hour_ago = time.time() - 3600
    os.utime(dead, (hour_ago, hour_ago))
    young = out / ".staging-20260101T000000Z-young0"  # a run starting right now
    young.mkdir()
    elsewhere = out / ".staging-20260101T000000Z-other0"  # another host's live run
    elsewhere.mkdir()
    (elsewhere / ".owner").write_text("some-other-host 1\n")
    os.utime(elsewhere, (hour_ago, hour_ago))

    with caplog.at_level("WARNING", logger="renewforecast.reports.runner"):
        reporting.run_reports("data", out=out, notebooks_dir=nbdir, run_id="next", timeout=60)

    assert not dead.exists()
    assert (out / "failed" / "20260101T000000Z-dead00" / ".01_a.partial.ipynb").read_text() == "{"
    assert young.exists() and elsewhere.exists()
    said = [r.getMessage() for r in caplog.records]
    assert any("20260101T000000Z-dead00" in m and "moved to" in m for m in said), said
    assert os.readlink(out / "latest") == "next"


def refuse_writes_under(monkeypatch, root: Path, err: int) -> None:
    """Make every write (open for writing, mkdir, rename) under ``root`` fail with ``err``.

    Used for a full disk and for a read-only folder: the tests run as root,
    for whom chmod 0o555 does not stop writes, so permission denied is
    simulated the same way.
    """
    root = str(root)

    def under(path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(root)
        except TypeError:  # a file descriptor
            return False

    def fail(path):
        raise OSError(err, os.strerror(err), os.fspath(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_rename, real_replace = os.rename, os.replace

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and under(file):
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(path):
            fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under(path):
            fail(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_rename(src, dst, *args, **kwargs):
        if under(dst):
            fail(dst)
        return real_rename(src, dst, *args, **kwargs)

    def fake_replace(src, dst, *args, **kwargs):
        if under(dst):
            fail(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "rename", fake_rename)
    monkeypatch.setattr(os, "replace", fake_replace)


@pytest.fixture
def no_kernel(monkeypatch):
    import papermill

    def boom(*args, **kwargs):
        raise AssertionError("a notebook was executed")

    monkeypatch.setattr(papermill, "execute_notebook", boom)


def test_disk_full_at_the_start_is_a_clear_error_and_leaves_no_staging_folder(
    demo_org, tmp_path, monkeypatch, no_kernel
):
    nbdir, out = tmp_path / "nbs", tmp_path / "reports"
    make_notebook(nbdir, "01_a", ["print('fine')"])
    monkeypatch.setenv("RENEWFORECAST_NOTEBOOKS", str(nbdir))
    out.mkdir()
    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):
        # The folder can be created (it needs no data blocks); the first file
        # written in it finds the disk full.
        if "w" in mode and str(out) in os.fspath(file):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    monkeypatch.setattr(io, "open", full_disk)
    result = CliRunner().invoke(main, ["report", str(demo_org.path), "--out", str(out)])

    assert result.exit_code == EXIT_CANNOT_WRITE, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "error: Cannot write the report run" in result.output
    assert "no space left on the device" in result.output
    assert list(out.iterdir()) == []  # the staging folder did not survive


@pytest.mark.slow
def test_disk_full_during_the_run_is_exit_9_and_publishes_nothing(tmp_path, monkeypatch):
    nbdir, out = tmp_path / "nbs", tmp_path / "reports"
    make_notebook(nbdir, "01_a", ["print('fine')"])
    real_write = reporting.atomic_write_text

    def full_at_index(path, text, encoding="utf-8"):
        if Path(path).name == "index.html":  # the notebooks ran; the disk fills up now
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, text, encoding)

    monkeypatch.setattr(reporting, "atomic_write_text", full_at_index)
    with pytest.raises(reporting.ReportRunError) as info:
        reporting.run_reports("data", out=out, notebooks_dir=nbdir, run_id="full", timeout=60)

    assert info.value.exit_code == EXIT_CANNOT_WRITE
    message = str(info.value)
    assert message.startswith(f"Cannot write the report run to {out}: no space left on the device")
    assert f"partial output is in {out / 'failed' / 'full'}" in message
    assert {p.name for p in out.iterdir()} == {"failed"}  # no run, no latest, no staging folder
    assert (out / "failed" / "full" / "01_a.ipynb").exists()


# --------------------------------------------------------------------------- #
# Outputs that cannot be written, for every command that writes
# --------------------------------------------------------------------------- #

CAUSES = {
    "under_a_file": ("a part of the path is a file, not a folder", None),
    "read_only": ("permission denied", errno.EACCES),
    "disk_full": ("no space left on the device", errno.ENOSPC),
}


def command_line(command: str, data: Path, target: Path) -> list[str]:
    return {
        "report": ["report", str(data), "--out", str(target)],
        "score": ["score", str(data), "--out", str(target / "scores.csv"), "--model", str(target / "no-model")],
        "forecast": ["forecast", str(data), "--out", str(target / "forecast.csv"), "--sims", "5"],
        "train": ["train", str(data), "--out", str(target / "models")],
        "demo-data": ["demo-data", str(target / "org"), "--accounts", "3"],
    }[command]


@pytest.mark.parametrize("cause", sorted(CAUSES))
@pytest.mark.parametrize("command", ["report", "score", "forecast", "train", "demo-data"])
def test_an_output_that_cannot_be_written_is_exit_9_with_the_path_and_the_cause(
    org_copy, tmp_path, monkeypatch, no_kernel, command, cause
):
    text, err = CAUSES[cause]
    if cause == "under_a_file":
        blocker = tmp_path / "some_file"
        blocker.write_text("not a folder\n")
        target = blocker / "reports"
    else:
        target = tmp_path / "locked" / "reports"
        target.parent.mkdir()
    before = folder_digest(org_copy)
    if err is not None:
        refuse_writes_under(monkeypatch, target.parent, err)

    result = CliRunner().invoke(main, command_line(command, org_copy, target))

    assert result.exit_code == EXIT_CANNOT_WRITE, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: Cannot write "), result.output
    assert str(target) in message and text in message, message
    monkeypatch.undo()
    assert folder_digest(org_copy) == before  # the data stays intact


def test_help_documents_exit_code_9_for_every_writing_command():
    for command in ("report", "score", "forecast", "train", "demo-data"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert "9" in result.output and "cannot be written" in " ".join(result.output.split()), command
    report = " ".join(CliRunner().invoke(main, ["report", "--help"]).output.split())
    assert "130 stopped by SIGINT" in report and "143 stopped by SIGTERM" in report


# --------------------------------------------------------------------------- #
# A Book with no contracts
# --------------------------------------------------------------------------- #


def set_aside_every_contract(folder: Path) -> int:
    contracts = read_sf(folder, "Contract.csv")
    contracts["StartDate"] = "not a date"
    write_sf(folder, "Contract.csv", contracts)
    return len(contracts)


@pytest.mark.parametrize("command", ["score", "forecast", "report"])
def test_a_book_emptied_by_quarantine_is_refused_with_exit_1(org_copy, tmp_path, monkeypatch, no_kernel, command):
    import renewforecast.cli as cli

    n = set_aside_every_contract(org_copy)
    out = tmp_path / "out"
    # forecast has no --on-error; load the same Book the way the others do.
    real_load = cli._load
    monkeypatch.setattr(cli, "_load", lambda d, e, f, c, on_error="raise": real_load(d, e, f, c, "quarantine"))
    args = {
        "score": ["--out", str(out / "s.csv"), "--on-error", "quarantine"],
        "forecast": ["--out", str(out / "f.csv")],
        "report": ["--out", str(out / "reports"), "--on-error", "quarantine"],
    }[command]

    result = CliRunner().invoke(main, [command, str(org_copy), *args])

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    said = re.search(
        rf"{re.escape(str(org_copy))} holds no contracts: every contract was set aside \((\d+) row", result.output
    )
    assert said and int(said.group(1)) >= n, result.output  # the contracts and what depends on them
    assert f"nothing to {command}" in result.output
    assert not out.exists()  # nothing written, no report run started


# --------------------------------------------------------------------------- #
# An early as-of
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_an_early_as_of_reports_retention_and_renewal_rates_as_not_defined_yet(demo_org, demo_book, tmp_path):
    # The demo's first subscription starts in April 2021.
    assert demo_book.subscriptions["start_date"].min() == pd.Timestamp("2021-04-16")
    out = tmp_path / "reports"
    # Three months after the first record: nobody was paying a year earlier,
    # and no contract has come up for renewal yet.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "renewforecast",
            "report",
            str(demo_org.path),
            "--out",
            str(out),
            "--notebook",
            "01_revenue_kpis",
            "--as-of",
            "2021-07-31",
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    page = (out / "latest" / "01_revenue_kpis.html").read_text(encoding="utf-8")
    assert "Retention is not defined yet at July 2021" in page
    assert "no customer was paying at July 2020" in page
    assert "Renewal rates are not defined yet at July 2021" in page
    meta = json.loads((out / "latest" / "run.json").read_text(encoding="utf-8"))
    nrr = next(f for f in meta["headlines"]["01_revenue_kpis"]["figures"] if f["key"] == "nrr")
    assert nrr["value"] is None or nrr["value"] != nrr["value"]  # not defined: no number


@pytest.mark.slow
def test_the_report_loads_the_export_as_its_command_line_says(org_copy, tmp_path):
    # A real org's opportunity closed in 1985: outside the default window, so the
    # run is told to widen it, and every notebook must load with the same window.
    frame = read_sf(org_copy, "Opportunity.csv")
    frame.loc[3, "CloseDate"] = "1985-06-30"
    write_sf(org_copy, "Opportunity.csv", frame)
    out = tmp_path / "reports"
    args = [
        sys.executable,
        "-m",
        "renewforecast",
        "report",
        str(org_copy),
        "--out",
        str(out),
        "--notebook",
        "00_data_quality",
    ]
    refused = subprocess.run(args, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "date_out_of_window" in refused.stderr
    done = subprocess.run(
        [*args, "--date-window", "1980-01-01:"], env=cli_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert (out / "latest" / "00_data_quality.html").exists()
