"""Run the report notebooks and publish them as one atomic, browsable folder.

A run executes every report template (``NN_*.ipynb``: the package's own in
``reports/notebooks/``, or a team's copies) with papermill, exports each
executed notebook to HTML with the code hidden, and writes an ``index.html``
and a ``run.json`` describing the run. The export is read and validated once
per run: the notebooks read a Parquet snapshot of that one Book (see
:mod:`renewforecast.io.snapshot`) at one as-of date, so they cannot disagree
on the data. Everything is
built in a private staging folder and published with a single rename, then the
``latest`` symlink is switched atomically, so a reader of ``reports/latest``
sees either the previous complete run or the new complete run, never a mix.
A run that fails publishes nothing: its staging folder is moved to
``reports/failed/<run_id>/`` for debugging and :class:`ReportRunError` carries
an exit code that names the cause. SIGINT (Ctrl-C) and SIGTERM stop a run the
same way: the kernel is killed, nothing is published, and the exit code is
130 or 143. A staging folder left by a run that died anyway (SIGKILL, power
loss, a full disk) is filed under ``failed/`` by the next run.

Layout of ``out`` after two good runs and one failed run::

    reports/
        20261120T053000Z-1a2b3c/    index.html, run.json, NN_x.ipynb, NN_x.html
        20261121T053000Z-4d5e6f/
        latest -> 20261121T053000Z-4d5e6f
        failed/20261121T060000Z-7a8b9c/
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import importlib.metadata
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from renewforecast.analyses.record import RECORD_DIR, keep_record, write_run_record
from renewforecast.atomic import atomic_write_bytes, atomic_write_text
from renewforecast.book import Book
from renewforecast.exceptions import (
    EXIT_CANNOT_WRITE,
    EXIT_SET_ASIDE,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    OutputPathError,
    ReportRunError,
    is_write_error,
)
from renewforecast.io.loader import load_book
from renewforecast.io.snapshot import read_snapshot, write_snapshot
from renewforecast.reports.alerts import AlertConfig, evaluate_alerts
from renewforecast.reports.catalogue import earliest_as_of, history_problems  # noqa: F401 (their old home)
from renewforecast.reports.headline import HEADLINE_MIME, Headline, headline_table
from renewforecast.reports.index_page import redact_parameters, render_index, run_banner

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CANNOT_WRITE",
    "EXIT_CELL_ERROR",
    "EXIT_DEAD_KERNEL",
    "EXIT_EARLY_EXIT",
    "EXIT_SET_ASIDE",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_TIMEOUT",
    "EXIT_UNEXPECTED",
    "RECORD_PARAMETER",
    "REPORTS_PARAMETER",
    "SNAPSHOT_PARAMETER",
    "copy_templates",
    "default_notebooks_dir",
    "list_notebooks",
    "notebook_parameters",
    "run_reports",
]

logger = logging.getLogger(__name__)

#: Something unforeseen went wrong (a bug, a full disk, ...).
EXIT_UNEXPECTED = 1
#: Bad parameters, bad run id, missing or unreadable notebooks; no kernel started.
EXIT_BAD_INPUT = 2
#: A cell raised an exception.
EXIT_CELL_ERROR = 3
#: A cell ran longer than ``timeout`` seconds.
EXIT_TIMEOUT = 4
#: The kernel process died (``os._exit``, segfault, out of memory).
EXIT_DEAD_KERNEL = 5
#: The notebook stopped early (``sys.exit(0)``) and left cells unexecuted.
EXIT_EARLY_EXIT = 6

NOTEBOOKS_ENV = "RENEWFORECAST_NOTEBOOKS"
#: The parameter through which a notebook receives the run's Book snapshot
#: (see :mod:`renewforecast.io.snapshot`). A notebook that declares it reads
#: the snapshot instead of the export, so every report of a run stands on
#: the same data, read and validated once.
SNAPSHOT_PARAMETER = "snapshot"
#: The parameter through which a notebook receives the run's record folder
#: (``<run>/record``, see :mod:`renewforecast.analyses.record`): a notebook
#: that declares it keeps what it published there (:func:`renewforecast.keep_record`).
#: A run whose notebooks declare it also keeps its headline figures and a
#: ``record.json``, so that later runs can grade it.
RECORD_PARAMETER = "record_dir"
#: The parameter through which a notebook receives the reports folder the run
#: publishes into (``out``), to read the records of earlier runs.
REPORTS_PARAMETER = "reports_dir"
# Parameters the runner sets to paths of its own: not shown on the report pages.
_RUNNER_PATHS = frozenset({SNAPSHOT_PARAMETER, RECORD_PARAMETER})
# The snapshot's folder inside the staging folder; hidden, and removed before publishing.
_SNAPSHOT_DIR = ".book-snapshot"
# Parameters of run_reports that are load_book's options when the runner reads the export itself.
_LOAD_OPTIONS = ("encoding", "date_format", "currency", "on_error", "date_window")
_NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Names that live next to the run folders inside ``out``.
_RESERVED_NAMES = frozenset({"latest", "failed"})
_JSON_SCALARS = (str, int, float, bool, type(None))
_HEADING_RE = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")


# --------------------------------------------------------------------------- #
# Discovery
# --------------------------------------------------------------------------- #


def default_notebooks_dir() -> Path:
    """The report templates shipped inside the package (``renewforecast/reports/notebooks``).

    Examples
    --------
    >>> (default_notebooks_dir() / "00_data_quality.ipynb").is_file()
    True
    """
    return Path(__file__).resolve().parent / "notebooks"


def list_notebooks(notebooks_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the report templates, ``NN_*.ipynb``, sorted by name.

    Parameters
    ----------
    notebooks_dir : path-like, optional
        Folder holding the templates. Defaults to the environment variable
        ``RENEWFORECAST_NOTEBOOKS`` when set, else the templates shipped in
        the package (:func:`default_notebooks_dir`).

    Returns
    -------
    list of Path
        Absolute paths, in name order (the ``NN_`` prefix sets report order).

    Raises
    ------
    ReportRunError
        If the folder does not exist (exit code :data:`EXIT_BAD_INPUT`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["02_b.ipynb", "01_a.ipynb", "notes.ipynb"]:
    ...     _ = (d / name).write_text("{}")
    >>> [p.name for p in list_notebooks(d)]
    ['01_a.ipynb', '02_b.ipynb']
    """
    if notebooks_dir is not None:
        folder, origin = Path(notebooks_dir), "argument notebooks_dir"
    elif os.environ.get(NOTEBOOKS_ENV):
        folder, origin = Path(os.environ[NOTEBOOKS_ENV]), f"${NOTEBOOKS_ENV}"
    else:
        folder, origin = default_notebooks_dir(), "the package's templates"
    if not folder.is_dir():
        raise _bad_input(
            f"Report notebooks folder {folder} ({origin}) does not exist; pass "
            f"notebooks_dir or set {NOTEBOOKS_ENV} to the folder holding the "
            "NN_*.ipynb report templates.",
        )
    return sorted(p.resolve() for p in folder.glob(_NOTEBOOK_GLOB) if p.is_file())


def copy_templates(
    dest: str | os.PathLike[str], *, force: bool = False, notebooks_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Copy the report templates into ``dest``: a team's own starting point for ``--notebooks``.

    Parameters
    ----------
    dest : path-like
        Folder to copy into (created if needed). Each file is written
        atomically.
    force : bool, default False
        Overwrite templates already in ``dest``. Without it, nothing is
        copied when any of them exists.
    notebooks_dir : path-like, optional
        Where the templates come from; see :func:`list_notebooks` (default:
        the package's).

    Returns
    -------
    list of Path
        The files written, in name order.

    Raises
    ------
    FileExistsError
        When a template is already in ``dest`` and ``force`` is False;
        nothing was written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> dest = pathlib.Path(tempfile.mkdtemp()) / "notebooks"
    >>> [p.name for p in copy_templates(dest)] == [p.name for p in list_notebooks()]
    True
    >>> copy_templates(dest)
    Traceback (most recent call last):
    ...
    FileExistsError: ...
    """
    templates = list_notebooks(notebooks_dir)
    dest = Path(dest)
    taken = [dest / t.name for t in templates if (dest / t.name).exists() or (dest / t.name).is_symlink()]
    if taken and not force:
        raise FileExistsError(
            f"{len(taken)} report notebook(s) already in {dest} ({', '.join(p.name for p in taken)}); "
            "nothing was copied (force overwrites them)."
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for template in templates:
        atomic_write_bytes(dest / template.name, template.read_bytes())
        written.append(dest / template.name)
    return written


def _papermill_path(path: str | os.PathLike[str]) -> str:
    # papermill runs every path through str.format(**parameters); doubling the
    # braces makes a folder such as "{x}" come out literally instead of failing
    # or, worse, being filled in with a parameter value.
    return str(path).replace("{", "{{").replace("}", "}}")


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Return the parameters declared in a notebook's ``parameters`` cell.

    Parameters
    ----------
    path : path-like
        Notebook file. It needs kernelspec metadata so papermill can pick the
        language.

    Returns
    -------
    dict
        ``name -> {"default": str, "type": str, "help": str}`` in declaration
        order. ``default`` is the literal source text (``'""'``, ``'None'``),
        ``type`` the annotation or type comment (``"None"`` when absent) and
        ``help`` the trailing comment. Empty when there is no parameters cell.

    Raises
    ------
    ReportRunError
        If the file is missing or cannot be read as a notebook
        (exit code :data:`EXIT_BAD_INPUT`).

    Examples
    --------
    >>> notebook_parameters("notebooks/01_overview.ipynb")  # doctest: +SKIP
    {'source': {'default': '""', 'type': 'None', 'help': 'data folder'}, ...}
    """
    import papermill  # deferred: importing papermill costs about a second

    path = Path(path)
    if not path.is_file():
        raise _bad_input(f"Report notebook {path} does not exist.")
    try:
        found = papermill.inspect_notebook(_papermill_path(path))
    except Exception as exc:  # papermill raises bare ValueError/JSON errors here
        raise _bad_input(
            f"Cannot read the parameters of report notebook {path}: {type(exc).__name__}: {_one_line(str(exc))}",
        ) from exc
    return {
        name: {
            "default": info.get("default", ""),
            "type": info.get("inferred_type_name", "None"),
            "help": info.get("help", ""),
        }
        for name, info in found.items()
    }


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #


def _bad_input(message: str) -> ReportRunError:
    return ReportRunError(message, exit_code=EXIT_BAD_INPUT)


def _one_line(text: str, limit: int = 400) -> str:
    # Messages must stay one paragraph: tracebacks and cell previews are long.
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _new_run_id(now: dt.datetime) -> str:
    # The random suffix keeps two runs started in the same second apart while
    # name order still follows start time.
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _check_run_id(run_id: str) -> None:
    if (
        not isinstance(run_id, str)
        or not _RUN_ID_RE.fullmatch(run_id)
        or run_id.startswith(".")  # ".", ".." and our own hidden staging names
        or run_id in _RESERVED_NAMES
    ):
        raise _bad_input(
            f"Invalid run id {run_id!r}: use letters, digits, '_', '-' and '.', not "
            f"starting with '.', and not one of {sorted(_RESERVED_NAMES)}.",
        )


def _check_json_value(name: str, value: Any, where: str = "") -> None:
    # Only JSON types translate faithfully into a Python parameters cell and
    # into run.json; anything else papermill would pass as its str().
    where = where or name
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad_input(
            f"Report parameter {where} is {value!r}; only finite numbers are allowed.",
        )
    if type(value) in _JSON_SCALARS:
        return
    if type(value) is list:
        for i, item in enumerate(value):
            _check_json_value(name, item, f"{where}[{i}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise _bad_input(
                    f"Report parameter {where} has a non-string key {key!r}.",
                )
            _check_json_value(name, item, f"{where}[{key!r}]")
        return
    raise _bad_input(
        f"Report parameter {where} is a {type(value).__name__} ({value!r}); parameters "
        "must be JSON types (str, int, float, bool, None, list, dict). Convert it "
        "first, e.g. a date with .isoformat().",
    )


def _normalise_as_of(as_of: str | dt.date | None) -> str | None:
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    if isinstance(as_of, dt.date):
        return as_of.isoformat()
    try:
        return dt.date.fromisoformat(str(as_of)).isoformat()
    except ValueError as exc:
        raise _bad_input(f"as_of {as_of!r} is not an ISO date (YYYY-MM-DD).") from exc


def _select_notebooks(
    notebooks: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None,
    notebooks_dir: str | os.PathLike[str] | None,
) -> list[Path]:
    if notebooks is None:
        chosen = list_notebooks(notebooks_dir)
    else:
        if isinstance(notebooks, str | os.PathLike):
            notebooks = [notebooks]  # one name, not an iterable of characters
        chosen = []
        templates: list[Path] | None = None
        for item in notebooks:
            candidate = Path(item)
            if candidate.suffix == ".ipynb" and candidate.is_file():
                chosen.append(candidate.resolve())
                continue
            if templates is None:
                templates = list_notebooks(notebooks_dir)
            matches = [p for p in templates if str(item) in (p.stem, p.name)]
            if not matches:
                names = ", ".join(p.stem for p in templates) or "none"
                raise _bad_input(
                    f"Unknown report notebook {str(item)!r}; available: {names}.",
                )
            chosen.append(matches[0])
    unique = list(dict.fromkeys(chosen))
    if not unique:
        raise _bad_input("No report notebooks to run.")
    stems = [p.stem for p in unique]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        # Outputs are named after the stem; two templates would overwrite each other.
        raise _bad_input(f"Several report notebooks share the name(s) {clashes}.")
    return unique


# --------------------------------------------------------------------------- #
# Stopping a run on SIGINT / SIGTERM, and the kernels it starts
# --------------------------------------------------------------------------- #

_SIGNAL_EXIT = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}
_SIGNAL_NAME = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


class _Interrupted(BaseException):
    # A BaseException, like KeyboardInterrupt, so that no library's
    # ``except Exception`` on the way up mistakes it for a cell failure.
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _Abort:
    """What the signal handler knows: the signal received and the live kernels."""

    signum: ClassVar[int | None] = None
    managers: ClassVar[weakref.WeakSet[Any]] = weakref.WeakSet()
    #: Set when one of the reports running side by side has failed: the
    #: others are stopped, since the run will publish nothing.
    stop: ClassVar[threading.Event] = threading.Event()


class _Stopped(Exception):
    """A report stopped because another report of the same run failed first."""


def _kill_kernel(manager: Any) -> None:
    # SIGKILL to the kernel's process group: it takes the processes a cell
    # started with it, and the kernel gets no chance to print a traceback.
    provisioner = getattr(manager, "provisioner", None)
    process = getattr(provisioner, "process", None)
    if process is None or process.poll() is not None:
        return
    pgid = getattr(provisioner, "pgid", None)
    with contextlib.suppress(OSError):
        if pgid and hasattr(os, "killpg"):
            os.killpg(pgid, signal.SIGKILL)
        else:
            process.kill()


def _on_signal(signum: int, frame: Any) -> None:
    # Raising here could land in the middle of papermill saving a notebook;
    # killing the kernel instead lets nbclient fail the running cell through
    # its normal path (the partial notebook is saved), and the run stops at
    # its next check.
    if _Abort.signum is None:
        _Abort.signum = signum
    for manager in list(_Abort.managers):
        _kill_kernel(manager)


def _check_interrupted() -> None:
    if _Abort.signum is not None:
        raise _Interrupted(_Abort.signum)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into a clean stop of the run while the block runs."""
    _Abort.signum = None
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the caller owns signals then
        return
    # Always installed, even where the shell started the run with SIGINT
    # ignored (a background job): a report run asked to stop must stop.
    previous = {sig: signal.signal(sig, _on_signal) for sig in _SIGNAL_EXIT}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


_IPC_PATH_LIMIT = 80  # Unix socket paths are limited to about 107 bytes


def _socket_dir() -> str | None:
    """A new private folder for a kernel's sockets whose path is short enough, or None.

    The temporary folder comes first; a long ``TMPDIR`` (some CI runners,
    macOS user folders) falls back to ``/tmp`` and ``$XDG_RUNTIME_DIR``.
    """
    if os.name == "nt":
        return None  # no Unix domain sockets for zmq's ipc transport
    for base in (None, "/tmp", os.environ.get("XDG_RUNTIME_DIR")):
        if base is not None and not os.path.isdir(base):
            continue
        try:
            folder = tempfile.mkdtemp(prefix="rf-kernel-", dir=base)
        except OSError:
            continue
        if len(folder) < _IPC_PATH_LIMIT:
            return folder
        os.rmdir(folder)
    return None


def _has_curve() -> bool:
    import zmq

    return bool(zmq.has("curve"))


@functools.cache
def _kernel_manager_class() -> type:
    from jupyter_client.manager import AsyncKernelManager

    class ReportKernelManager(AsyncKernelManager):
        """A kernel for one report: local sockets, killable on a signal, quiet at shutdown."""

        def __init__(self, **kwargs: Any):
            super().__init__(**kwargs)
            _Abort.managers.add(self)
            # IPC sockets in a private folder instead of TCP ports: no other
            # local user can reach the kernel, two runs never race for a port,
            # and the kernel has no reason to warn about unencrypted TCP.
            self._socket_dir = _socket_dir()
            if self._socket_dir is not None:
                self.transport = "ipc"
                self.ip = os.path.join(self._socket_dir, "k")
            elif self.has_trait("transport_encryption") and _has_curve():
                # No folder with a short enough path: TCP on localhost, but
                # encrypted (CurveZMQ keys from the manager) when the kernel
                # supports it, so nothing travels, or is warned about, in plain text.
                self.transport_encryption = "auto"

        async def start_kernel(self, **kwargs: Any) -> None:
            _check_interrupted()
            if _Abort.stop.is_set():  # another report of the run failed; this one is not started
                raise _Stopped()
            # The kernel starts in the report's folder, as in JupyterLab, given
            # here rather than by papermill changing the process's working
            # directory, which notebooks running side by side would race on.
            if getattr(self, "report_cwd", None):
                kwargs.setdefault("cwd", self.report_cwd)
            if getattr(self, "report_threads", None):
                # Kernels side by side share the CPUs: each gets its share of
                # native threads (OpenMP, BLAS), or their busy-waiting threads
                # fight over the cores and both reports run several times slower.
                env = dict(kwargs.get("env") or os.environ)
                for name in _THREAD_VARIABLES:
                    env[name] = str(self.report_threads)
                kwargs["env"] = env
            await super().start_kernel(**kwargs)
            if _Abort.signum is not None:  # the signal came while it started
                _kill_kernel(self)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts the kernel before every shutdown, in
            # case a cell is still running. After a finished notebook the
            # kernel is idle and logs "KeyboardInterrupt caught in kernel" to
            # the run's stderr; a busy kernel is still stopped by the shutdown
            # request or, after shutdown_wait_time, killed.
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

        async def cleanup_resources(self, restart: bool = False) -> None:
            await super().cleanup_resources(restart=restart)
            if not restart and self._socket_dir is not None:
                shutil.rmtree(self._socket_dir, ignore_errors=True)

    return ReportKernelManager


#: Environment variables that cap a kernel's native thread pools.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@functools.cache
def _kernel_manager_for(folder: str, threads: int | None = None) -> type:
    """The kernel manager class for reports whose kernel works in ``folder`` with ``threads`` native threads."""
    return type("ReportKernelManager", (_kernel_manager_class(),), {"report_cwd": folder, "report_threads": threads})


# --------------------------------------------------------------------------- #
# Execution of one notebook
# --------------------------------------------------------------------------- #


@dataclass
class _Report:
    template: Path
    title: str
    kernel: str | None  # kernelspec name recorded in the notebook
    params_cell: int  # index of the "parameters" cell in the template, -1 if none
    had_injected_cell: bool  # the template already carries an injected cell
    parameters: dict[str, Any] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)  # names its parameters cell declares
    seconds: float = 0.0

    @property
    def stem(self) -> str:
        return self.template.stem

    def template_cell(self, executed_index: int | None) -> str:
        """Describe a cell of the executed notebook by its index in the template."""
        if executed_index is None:
            return "an unknown cell"
        injected = bool(self.parameters) and not self.had_injected_cell
        if injected and self.params_cell >= 0:
            if executed_index == self.params_cell + 1:
                return "the injected parameters cell"
            if executed_index > self.params_cell + 1:
                executed_index -= 1
        return f"cell {executed_index}"


class _NotebookFailed(Exception):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _load_report(path: Path) -> _Report:
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise _bad_input(f"Cannot read report notebook {path}: {type(exc).__name__}: {_one_line(str(exc))}") from exc
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
    params_cell = next((i for i, t in enumerate(tags) if "parameters" in t), -1)
    had_injected = any("injected-parameters" in t for t in tags)
    return _Report(
        template=path,
        title=_notebook_title(nb) or path.stem,
        kernel=nb.metadata.get("kernelspec", {}).get("name"),
        params_cell=params_cell,
        had_injected_cell=had_injected,
    )


def _check_kernels(reports: list[_Report], kernel_name: str | None) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    # A misspelt kernel would otherwise only show up as a generic failure
    # after the staging folder exists.
    manager = KernelSpecManager()
    for report in reports:
        name = kernel_name or report.kernel
        if not name:
            raise _bad_input(
                f"Report notebook {report.template} names no kernel (kernelspec metadata); pass kernel_name."
            )
        try:
            manager.get_kernel_spec(name)
        except NoSuchKernel as exc:
            raise _bad_input(
                f"Kernel {name!r} needed by report notebook {report.stem!r} is not "
                "installed (see `jupyter kernelspec list`)."
            ) from exc


def _notebook_title(nb: Any) -> str | None:
    in_fence = False
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                in_fence = not in_fence  # a "# comment" in a code block is no heading
                continue
            match = None if in_fence else _HEADING_RE.match(line)
            if match:
                return match.group(1).strip()
    return None


def _unfinished(nb: Any) -> tuple[str, int | None] | None:
    """Return (reason, executed index) if the executed notebook did not run fully."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}", index
        # nbclient never executes blank cells or cells tagged skip-execution,
        # so those keep execution_count None in a perfectly good run.
        if not cell.source.strip() or "skip-execution" in cell.metadata.get("tags", []):
            continue
        if cell.get("execution_count") is None:
            return "cell was never executed", index
    return None


def _describe_failure(
    exc: BaseException, report: _Report, cell_index: int | None, timeout: float | None
) -> BaseException | None:
    """The run's own exception for what papermill raised; None to let it through."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if _Abort.signum is not None:
        # Whatever nbclient made of the killed kernel, the cause is the signal.
        return _Interrupted(_Abort.signum)
    if _Abort.stop.is_set():
        return _Stopped()  # killed because another report failed: that failure is the run's
    if isinstance(exc, PapermillExecutionError):
        return _NotebookFailed(
            f"Report notebook {report.stem!r} failed in "
            f"{report.template_cell(exc.cell_index)} (In [{exc.exec_count}]): "
            f"{exc.ename}: {_one_line(exc.evalue)}.",
            EXIT_CELL_ERROR,
        )
    if isinstance(exc, CellTimeoutError):
        return _NotebookFailed(
            f"Report notebook {report.stem!r} timed out in "
            f"{report.template_cell(cell_index)}: no result after "
            f"{timeout} s (CellTimeoutError).",
            EXIT_TIMEOUT,
        )
    if isinstance(exc, DeadKernelError):
        return _NotebookFailed(
            f"Report notebook {report.stem!r}: the kernel died while running "
            f"{report.template_cell(cell_index)} (DeadKernelError: "
            f"{_one_line(str(exc))}); the code may call os._exit or run out of memory.",
            EXIT_DEAD_KERNEL,
        )
    return None


def _execute(
    report: _Report,
    staging: Path,
    *,
    timeout: float | None,
    kernel_name: str | None,
    threads: int | None = None,
) -> Any:
    import nbformat
    import papermill

    final = staging / f"{report.stem}.ipynb"
    # papermill rewrites output_path after every cell; writing to a hidden
    # name and renaming at the end means "<stem>.ipynb" never appears half
    # written, even in the failed/ folder.
    partial = staging / f".{report.stem}.partial.ipynb"
    current: dict[str, int] = {}

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        # papermill's per-cell metadata is wrong after a timeout or a dead
        # kernel, so remember ourselves which cell was running.
        current["index"] = cell_index

    failure: BaseException | None = None
    nb = None
    started = time.monotonic()
    try:
        nb = papermill.execute_notebook(
            _papermill_path(report.template),
            _papermill_path(partial),
            parameters=report.parameters,
            kernel_name=kernel_name,
            # nbclient's timeout is an Integer trait and rejects 2.5
            execution_timeout=None if timeout is None else math.ceil(timeout),
            progress_bar=False,
            log_output=False,
            # The kernel works in the template's own folder, as in JupyterLab
            # (relative defaults mean the same in both); the manager sets it.
            cwd=None,
            on_cell_execute=on_cell_execute,
            kernel_manager_class=_kernel_manager_for(str(report.template.parent), threads),
        )
    except BaseException as exc:
        failure = _describe_failure(exc, report, current.get("index"), timeout)
        if failure is None:
            raise
        failure.__cause__ = exc
    finally:
        report.seconds = time.monotonic() - started
        if partial.exists():
            os.replace(partial, final)

    if failure is not None:
        raise failure
    _check_interrupted()  # the signal came after the last cell
    if nb is None:  # pragma: no cover - papermill always returns the notebook
        nb = nbformat.read(final, as_version=4)
    problem = _unfinished(nb)
    if problem is not None:
        reason, index = problem
        # papermill tolerates SystemExit(0) and stops quietly; other error
        # outputs without a raise are still cell errors.
        early = reason.startswith("SystemExit") or reason == "cell was never executed"
        raise _NotebookFailed(
            f"Report notebook {report.stem!r} stopped early at "
            f"{report.template_cell(index)} ({_one_line(reason)}); "
            "later cells did not run.",
            EXIT_EARLY_EXIT if early else EXIT_CELL_ERROR,
        )
    return nb


_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _html_exporter() -> Any:
    from nbconvert import HTMLExporter

    # Code cells are hidden: the injected parameters cell must not leak into
    # a report that is shared beyond the people who ran it. The template is
    # JupyterLab's without the CDN scripts, so pages work offline.
    return HTMLExporter(
        template_name="renewforecast_report",
        extra_template_basedirs=[str(_TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def _export_html(exporter: Any, nb: Any, report: _Report, staging: Path, banner: str) -> None:
    resources = {
        "metadata": {"name": report.title},  # becomes the page <title>
        "renewforecast_banner": banner,
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    atomic_write_text(staging / f"{report.stem}.html", body)


def _headline(nb: Any, report: _Report) -> Headline | None:
    """The last headline a notebook displayed, if any."""
    shown = [
        output["data"][HEADLINE_MIME]
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if HEADLINE_MIME in output.get("data", {})
    ]
    if not shown or shown[-1] is None:
        return None
    try:
        return Headline.from_dict(dict(shown[-1]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _NotebookFailed(
            f"Report notebook {report.stem!r} displayed a malformed headline "
            f"({type(exc).__name__}: {_one_line(str(exc))}).",
            EXIT_CELL_ERROR,
        ) from exc


def _agreed(headlines: dict[str, Headline], key: str, expected: str | None = None) -> str | None:
    """The value every report records for ``key`` (``expected`` when the run knows it).

    Every report reads the run's one snapshot and the one as-of date, so two
    that differ are a bug, not a changed export: an internal error (exit 1).
    """
    seen = {name: h.provenance[key] for name, h in headlines.items() if h.provenance.get(key)}
    values = set(seen.values()) | ({expected} if expected else set())
    if len(values) > 1:
        listing = "; ".join(f"{name}: {value}" for name, value in seen.items())
        raise AssertionError(
            f"internal error: the reports disagree on {key.replace('_', ' ')} ({listing}"
            + (f"; the run's: {expected}" if expected else "")
            + "), though each should read the run's "
            "one snapshot of the data; a report that loads the export itself must take the "
            f"{SNAPSHOT_PARAMETER!r} parameter",
        )
    return min(values) if values else None


def _write_record(
    record_dir: Path, meta: dict[str, Any], headlines: dict[str, Headline], book: Book | None, finished: dt.datetime
) -> None:
    """The run's headline figures and ``record.json``, beside the tables its notebooks kept."""
    if not meta.get("as_of"):
        logger.warning("Report run %s has no as-of date: its record cannot be graded and is not kept", meta["run_id"])
        return
    keep_record(record_dir, "headline", headline_table(headlines))
    currencies = {h.provenance.get("currency") for h in headlines.values()} - {None}
    currency = book.currency if book is not None else (min(currencies) if currencies else "USD")
    write_run_record(
        record_dir,
        run_id=meta["run_id"],
        as_of=meta["as_of"],
        data_fingerprint=meta["data_fingerprint"],
        model_version=meta["model_version"],
        currency=currency,
        published=finished,
        book=book,
    )


def _write_snapshot(book: Book, folder: Path) -> Path:
    """Write the run's Book snapshot and check that it reads back as the same Book."""
    started = time.monotonic()
    write_snapshot(book, folder)
    again = read_snapshot(folder)
    if again.fingerprint != book.fingerprint:  # not an assert: it must hold under python -O too
        raise AssertionError(
            f"internal error: the run's Book snapshot reads back with fingerprint {again.fingerprint[:12]}, "
            f"not {book.fingerprint[:12]}",
        )
    logger.info("Book snapshot written to %s in %.1f s", folder, time.monotonic() - started)
    return folder


# --------------------------------------------------------------------------- #
# Index, provenance, publishing
# --------------------------------------------------------------------------- #


def _package_version() -> str:
    try:
        return importlib.metadata.version("renewforecast")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _quarantine(staging: Path, out: Path, run_id: str) -> Path:
    """Move a failed staging folder to ``out/failed/<run_id>`` (best effort)."""
    # The partial notebooks are the record of a failure; a copy of the whole
    # input is not, and failed/ is only ever cleaned by hand.
    shutil.rmtree(staging / _SNAPSHOT_DIR, ignore_errors=True)
    # Nor is a record: only a published run's record may be graded, and failed/ holds none to mistake for one.
    shutil.rmtree(staging / RECORD_DIR, ignore_errors=True)
    target = out / "failed" / run_id
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # only if someone re-used the id behind our back
            target = target.with_name(f"{run_id}-{secrets.token_hex(3)}")
        os.rename(staging, target)
    except OSError:
        # The hidden staging folder is never served, so leaving it is safe.
        logger.exception("Could not move %s to %s; left in place", staging, target)
        return staging
    return target


_OWNER_FILE = ".owner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


#: A staging folder without a readable owner this old is stale: a live run
#: writes its owner right after creating the folder.
STALE_STAGING_SECONDS = 600


def _recover_interrupted(out: Path) -> list[Path]:
    """Move staging folders of dead runs to ``failed/``; return where they went.

    A run killed outright (SIGKILL, power loss) cannot clean up after itself,
    nor can one that found the disk full before it wrote who owns its folder.
    The hidden staging folder was never visible as a report; the next run
    files it under ``failed/<run_id>`` with the other failed runs and says so.
    A folder is left alone while its owner process lives on this host, when it
    belongs to another host sharing ``out``, or when it has no owner yet and
    is younger than :data:`STALE_STAGING_SECONDS`.
    """
    host = socket.gethostname()
    recovered = []
    for staging in sorted(out.glob(".staging-*")):
        try:
            owner_host, pid = (staging / _OWNER_FILE).read_text(encoding="utf-8").split()
            if owner_host != host or _alive(int(pid)):
                continue  # running, or on another machine sharing the folder
        except (OSError, ValueError):
            try:
                age = time.time() - staging.stat().st_mtime
            except OSError:
                continue  # gone meanwhile
            if age < STALE_STAGING_SECONDS:
                continue  # just created by a run that has not written its owner yet
        run_id = staging.name.removeprefix(".staging-")
        target = _quarantine(staging, out, run_id)
        if target != staging:
            logger.warning(
                "Report run %s did not finish (killed or out of disk space); its partial output was moved to %s",
                run_id,
                target,
            )
            recovered.append(target)
    return recovered


def _cannot_write(path: Path, exc: OSError, failed: Path | None = None) -> ReportRunError:
    """A report run that could not write under ``path`` (its ``out``), as exit code 9."""
    done = (
        "Nothing was published and the input data is unchanged"
        if failed is None
        else f"Nothing was published (partial output is in {failed}) and the input data is unchanged"
    )
    message = OutputPathError.from_os_error(path, exc, "the report run", done).args[0]
    return ReportRunError(message, exit_code=EXIT_CANNOT_WRITE, failed_dir=None if failed is None else str(failed))


def _switch_latest(out: Path, run_id: str) -> None:
    tmp = out / f".latest-{run_id}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    # Relative target: the reports folder can be moved or mounted elsewhere.
    os.symlink(run_id, tmp, target_is_directory=True)
    try:
        os.replace(tmp, out / "latest")
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _previous_meta(out: Path) -> dict[str, Any] | None:
    """The ``run.json`` of the run ``out/latest`` points at, or None (no run yet, or unreadable)."""
    path = out / "latest" / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        logger.warning("Could not read %s; alert rules that compare with the previous run are not checked", path)
        return None
    return meta if isinstance(meta, dict) else None


def _published_runs(out: Path) -> list[Path]:
    # Only folders this module published (they carry run.json) are candidates,
    # so pruning never touches anything else a user keeps in ``out``.
    runs = []
    for entry in out.iterdir():
        if (
            entry.name.startswith(".")
            or entry.name in _RESERVED_NAMES
            or not _RUN_ID_RE.fullmatch(entry.name)
            or entry.is_symlink()
            or not entry.is_dir()
            or not (entry / "run.json").is_file()
        ):
            continue
        runs.append(entry)
    return sorted(runs, key=lambda p: p.name)


def _prune(out: Path, keep: int) -> list[str]:
    try:
        current = os.readlink(out / "latest")
    except OSError:
        current = None
    runs = _published_runs(out)
    removed = []
    for run in runs[: max(len(runs) - keep, 0)]:
        if run.name == current:
            continue
        # Rename first so a half-deleted folder is never visible under its name.
        trash = out / f".trash-{run.name}-{secrets.token_hex(3)}"
        try:
            os.rename(run, trash)
            shutil.rmtree(trash)
        except OSError:
            logger.warning("Could not prune old report run %s", run, exc_info=True)
            continue
        removed.append(run.name)
    if removed:
        logger.info("Pruned %d old report run(s): %s", len(removed), ", ".join(removed))
    return removed


# --------------------------------------------------------------------------- #
# Public entry point
# --------------------------------------------------------------------------- #


def default_jobs() -> int:
    """How many report notebooks run side by side by default: the usable CPUs, at most 2.

    Examples
    --------
    >>> 1 <= default_jobs() <= 2
    True
    """
    return max(1, min(2, _usable_cpus()))


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _execute_one(
    report: _Report, staging: Path, timeout: float | None, kernel_name: str | None, threads: int | None = None
) -> Any:
    _check_interrupted()
    if _Abort.stop.is_set():
        raise _Stopped()
    logger.info("Running report notebook %s", report.stem)
    try:
        return _execute(report, staging, timeout=timeout, kernel_name=kernel_name, threads=threads)
    except _Stopped:
        raise
    except BaseException:
        # Stop the reports beside this one at once, in this thread: the pool
        # must not start the next report before the main thread hears of it.
        _Abort.stop.set()
        for manager in list(_Abort.managers):
            _kill_kernel(manager)
        raise


def _execute_all(
    reports: list[_Report], staging: Path, *, timeout: float | None, kernel_name: str | None, jobs: int
) -> list[Any]:
    """Run every report, ``jobs`` at a time; the executed notebooks in report order.

    The first failure (in time) is the run's: the other kernels are killed,
    reports not started yet never start, and that failure is raised once
    every thread has ended, so the staging folder is left alone by then.
    """
    _Abort.stop.clear()
    if jobs == 1 or len(reports) < 2:
        return [_execute_one(r, staging, timeout, kernel_name) for r in reports]
    results: dict[int, Any] = {}
    first: BaseException | None = None
    threads = max(1, _usable_cpus() // jobs)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="report")
    try:
        futures = {
            pool.submit(_execute_one, r, staging, timeout, kernel_name, threads): i for i, r in enumerate(reports)
        }
        pending = set(futures)
        while pending:
            # A short wait, so that the main thread's signal handler runs promptly.
            done, pending = concurrent.futures.wait(
                pending, timeout=0.25, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                if future.cancelled():
                    continue
                exc = future.exception()
                if exc is None:
                    results[futures[future]] = future.result()
                elif first is None and not isinstance(exc, _Stopped):
                    first = exc  # the kernels beside it were stopped by its thread
                    for other in pending:
                        other.cancel()
            if _Abort.signum is not None and first is None:
                for other in pending:
                    other.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    _check_interrupted()
    if first is not None:
        raise first
    return [results[i] for i in range(len(reports))]


def run_reports(
    source: str | os.PathLike[str],
    *,
    as_of: str | dt.date | None = None,
    out: str | os.PathLike[str] = "reports",
    notebooks: Iterable[str | os.PathLike[str]] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = 600,
    run_id: str | None = None,
    kernel_name: str | None = None,
    keep: int | None = None,
    book: Book | None = None,
    jobs: int | None = None,
    alerts: AlertConfig | None = None,
) -> Path:
    """Execute the report notebooks and publish them as ``out/<run_id>/``.

    When a chosen notebook declares a ``snapshot`` parameter (the shipped
    reports do), the export is read and validated once: the run writes the
    Book as a Parquet snapshot into its staging folder, every such notebook
    reads that snapshot, and the snapshot is deleted before the run is
    published (it is the whole input; ``run.json`` names it by its
    fingerprint). The as-of date is then resolved once, from the Book.

    Parameters
    ----------
    source : str or path-like
        Data source handed to every notebook as the ``source`` parameter. An
        existing local path is made absolute first, because notebooks run
        with their template folder as working directory.
    as_of : str or datetime.date, optional
        Reporting date, passed as an ISO string ``as_of``. When None, the
        Book's export date when the run reads a Book, else omitted so the
        notebooks' own default applies.
    out : path-like, default "reports"
        Folder that receives run folders, ``latest`` and ``failed/``.
    notebooks : iterable of str or path-like, optional
        Subset to run, by stem (``"01_overview"``), file name or path. All
        templates from :func:`list_notebooks` by default.
    notebooks_dir : path-like, optional
        Where the templates live; see :func:`list_notebooks`.
    parameters : mapping, optional
        Extra parameters (JSON types only); they override ``source`` and
        ``as_of``. Each notebook only receives the names its parameters cell
        declares.
    timeout : float or None, default 600
        Limit in seconds for each cell (not the whole notebook), rounded up
        to whole seconds; None for no limit.
    run_id : str, optional
        Name of the run folder; default ``YYYYmmddTHHMMSSZ-<6 hex>`` (UTC).
    kernel_name : str, optional
        Kernel to use instead of the one named in each notebook.
    keep : int, optional
        After publishing, delete older published runs beyond the newest
        ``keep`` (by run id name order). Never touches ``latest`` or ``failed/``.
    book : Book, optional
        ``source`` as already read and validated by the caller (the command
        line reads it for its own checks), so the run does not read it again.
        Without it, the run reads ``source`` with :func:`renewforecast.load_book`,
        using the ``encoding``, ``date_format``, ``currency``, ``on_error``
        and ``date_window`` of ``parameters``, when a notebook takes a snapshot.
    jobs : int, optional
        How many notebooks run side by side, each in its own kernel. Default:
        the number of CPUs this process may use, at most 2 (the reports are
        mostly single-threaded, so two use two cores; more rarely pay on a
        small machine). 1 runs them one after another. When one fails, the
        others are stopped and the run fails with the first failure.
    alerts : AlertConfig, optional
        Alert rules (:func:`renewforecast.reports.alerts.load_alerts`): once
        every notebook has run, they are evaluated against this run's figures
        and the previous published run's (``out/latest``), and what fired is
        recorded under ``alerts`` in ``run.json`` (names, figures, values,
        thresholds; never a secret). Nothing is sent here: the caller sends
        the digest after the publish
        (:func:`renewforecast.reports.alerts.send_digest`), so that a mail
        server that is down can never undo a publish.

    Returns
    -------
    Path
        The published run folder, holding ``index.html``, ``run.json`` and for
        each notebook ``<stem>.ipynb`` (executed) and ``<stem>.html``.

    Raises
    ------
    ReportRunError
        Nothing was published. ``exit_code`` tells why: 2 bad input, 3 cell
        error, 4 timeout, 5 dead kernel, 6 stopped early, 9 ``out`` cannot be
        written (under a file, no permission, disk full), 130 SIGINT, 143
        SIGTERM, 1 anything else (reports that disagree on the data or the
        as-of date are an internal error, 1); ``failed_dir`` holds the
        partial notebooks when a kernel ran.
    BookValidationError
        When the run reads ``source`` itself and it is not valid input.

    Notes
    -----
    While the run executes, SIGINT and SIGTERM (in the main thread) stop it:
    the running kernel is killed, the partial notebooks go to ``failed/`` and
    :class:`ReportRunError` carries exit code 130 or 143. The previous
    handlers are restored afterwards.

    Kernels are started in each template's folder without changing the
    calling process's working directory.

    Examples
    --------
    >>> folder = run_reports(  # doctest: +SKIP
    ...     "data/acme", as_of="2026-06-30", parameters={"account_name": "Acme"}
    ... )
    >>> folder.name  # doctest: +SKIP
    '20261121T053000Z-3f9a1c'
    >>> (folder / "index.html").exists()  # doctest: +SKIP
    True
    """
    started_at = dt.datetime.now(dt.UTC)
    started = time.monotonic()

    # Everything that can be refused is refused here, before a kernel starts
    # or anything is created under ``out``.
    run_id = _new_run_id(started_at) if run_id is None else run_id
    _check_run_id(run_id)
    if keep is not None and (type(keep) is not int or keep < 1):
        raise _bad_input(f"keep must be an integer >= 1, not {keep!r}.")
    if jobs is None:
        jobs = default_jobs()
    if type(jobs) is not int or jobs < 1:
        raise _bad_input(f"jobs must be an integer >= 1, not {jobs!r}.")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0):
        raise _bad_input(f"timeout must be a positive number of seconds or None, not {timeout!r}.")
    source_text = str(source)
    if Path(source_text).exists():
        # Kernels run with the template folder as working directory, so a
        # relative local path would no longer point at the data.
        source_text = str(Path(source_text).resolve())
    merged: dict[str, Any] = {"source": source_text}
    as_of_text = _normalise_as_of(as_of)
    if as_of_text is not None:
        merged["as_of"] = as_of_text
    for name, value in dict(parameters or {}).items():
        if type(name) is not str or not name.isidentifier():
            raise _bad_input(
                f"Report parameter name {name!r} is not a Python identifier.",
            )
        merged[name] = value
    for name, value in merged.items():
        _check_json_value(name, value)

    templates = _select_notebooks(notebooks, notebooks_dir)
    reports = []
    for template in templates:
        report = _load_report(template)
        report.declared = set(notebook_parameters(template))
        reports.append(report)
    _check_kernels(reports, kernel_name)
    snapshot_wanted = any(SNAPSHOT_PARAMETER in r.declared for r in reports)
    if snapshot_wanted and book is None:
        options = {k: merged[k] for k in _LOAD_OPTIONS if k in merged}
        if "date_window" in options and options["date_window"] is not None:
            options["date_window"] = tuple(options["date_window"])
        book = load_book(source_text, **options)
    if book is not None:
        # One resolution for every report: the ISO date each one receives.
        try:
            merged["as_of"] = book.resolve_as_of(as_of_text).date().isoformat()
        except ValueError as exc:  # an empty Book and no date
            raise _bad_input(f"No as-of date: {exc}.") from exc
    for report in reports:
        report.parameters = {k: v for k, v in merged.items() if k in report.declared}
    unused = sorted(set(parameters or {}) - {k for r in reports for k in r.parameters})
    if unused:
        logger.warning("No report notebook declares parameter(s) %s; ignored", unused)

    out = Path(out).resolve()
    final = out / run_id
    latest = out / "latest"
    if final.exists() or final.is_symlink() or (out / "failed" / run_id).exists():
        raise _bad_input(f"Run id {run_id!r} was already used in {out}.")
    if latest.exists() and not latest.is_symlink():
        raise _bad_input(f"{latest} exists and is not a symlink; move it away so runs can be published.")
    for report in reports:
        if REPORTS_PARAMETER in report.declared:
            # The earlier runs a track-record report grades: the folder this run publishes into.
            report.parameters.setdefault(REPORTS_PARAMETER, str(out))

    with _stop_on_signals():
        try:
            return _run(
                reports,
                out,
                run_id,
                started_at,
                started,
                source_text,
                as_of_text,
                merged,
                timeout=timeout,
                kernel_name=kernel_name,
                keep=keep,
                book=book if snapshot_wanted else None,
                jobs=jobs,
                alerts=alerts,
            )
        except _Interrupted as exc:  # before the staging folder existed
            raise ReportRunError(
                f"Report run {run_id} was stopped by {_SIGNAL_NAME[exc.signum]} before any "
                "notebook ran; nothing was published.",
                exit_code=_SIGNAL_EXIT[exc.signum],
            ) from None


def _make_staging(out: Path, run_id: str) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(out, exc) from exc
    _recover_interrupted(out)
    staging = out / f".staging-{run_id}"
    try:
        staging.mkdir()
    except FileExistsError as exc:
        raise _bad_input(f"Run {run_id!r} is already in progress ({staging} exists).") from exc
    except OSError as exc:
        raise _cannot_write(out, exc) from exc
    try:
        # Who owns this folder, so a later run can tell a killed run from a live one.
        (staging / _OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
    except BaseException as exc:
        # Nothing ran yet: a folder without an owner would only confuse the
        # next run, so it goes (the next run still recovers it if this fails).
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and is_write_error(exc):
            raise _cannot_write(out, exc) from exc
        raise
    return staging


def _run(
    reports: list[_Report],
    out: Path,
    run_id: str,
    started_at: dt.datetime,
    started: float,
    source_text: str,
    as_of_text: str | None,
    merged: dict[str, Any],
    *,
    timeout: float | None,
    kernel_name: str | None,
    keep: int | None,
    book: Book | None,
    jobs: int,
    alerts: AlertConfig | None = None,
) -> Path:
    """Stage, execute, export and publish; the part of a run that signals can stop."""
    final = out / run_id
    latest = out / "latest"
    _check_interrupted()
    staging = _make_staging(out, run_id)
    logger.info("Report run %s: %d notebook(s) into %s", run_id, len(reports), staging)

    try:
        snapshot = None
        if book is not None:
            snapshot = _write_snapshot(book, staging / _SNAPSHOT_DIR)
            for report in reports:
                if SNAPSHOT_PARAMETER in report.declared:
                    report.parameters[SNAPSHOT_PARAMETER] = str(snapshot)
        # Inside the staging folder, so the one rename that publishes the run publishes its record.
        record_dir = staging / RECORD_DIR if any(RECORD_PARAMETER in r.declared for r in reports) else None
        if record_dir is not None:
            record_dir.mkdir()
            for report in reports:
                if RECORD_PARAMETER in report.declared:
                    report.parameters[RECORD_PARAMETER] = str(record_dir)
        executed = _execute_all(reports, staging, timeout=timeout, kernel_name=kernel_name, jobs=jobs)
        if snapshot is not None:
            # The whole input does not belong in a published (shareable) folder.
            shutil.rmtree(snapshot)
        headlines = {}
        for report, nb in zip(reports, executed, strict=True):
            found = _headline(nb, report)
            if found is not None:
                headlines[report.stem] = found
        # With a snapshot the run knows both; the reports must say the same.
        run_as_of = merged.get("as_of") if book is not None else None
        run_data = None if book is None else book.loaded_fingerprint or book.fingerprint
        resolved_as_of = _agreed(headlines, "as_of", run_as_of) or as_of_text
        fingerprint = _agreed(headlines, "data_fingerprint", run_data)
        models = sorted(
            {h.provenance["model_version"] for h in headlines.values() if h.provenance.get("model_version")}
        )

        finished_at = dt.datetime.now(dt.UTC)
        meta = {
            "run_id": run_id,
            "status": "ok",
            "as_of": resolved_as_of,
            "as_of_parameter": as_of_text,
            "data_fingerprint": fingerprint,
            "model_version": ", ".join(models) or None,
            "source": source_text,
            "parameters": redact_parameters(merged),
            "package_version": _package_version(),
            "started": started_at.isoformat(timespec="seconds"),
            "finished": finished_at.isoformat(timespec="seconds"),
            "duration_seconds": round(time.monotonic() - started, 3),
            "notebooks": [
                {
                    "name": r.stem,
                    "title": r.title,
                    "template": str(r.template),
                    "notebook": f"{r.stem}.ipynb",
                    "html": f"{r.stem}.html",
                    "parameters": sorted(r.parameters),  # names only: the snapshot's path is gone
                }
                for r in reports
            ],
            "durations": {r.stem: round(r.seconds, 3) for r in reports},
            "headlines": {name: h.to_dict() for name, h in headlines.items()},
        }
        if alerts is not None:
            # Judged before run.json is written, so the published record says what fired. The
            # previous run is whatever latest points at now, just before this run replaces it.
            meta["alerts"] = [a.to_dict() for a in evaluate_alerts(alerts, meta, _previous_meta(out))]
        if record_dir is not None:
            _write_record(record_dir, meta, headlines, book, finished_at)
        exporter = _html_exporter()
        for report, nb in zip(reports, executed, strict=True):
            _check_interrupted()
            shown = {k: v for k, v in report.parameters.items() if k not in _RUNNER_PATHS}
            banner = run_banner(meta, {"name": report.stem, "seconds": report.seconds, "parameters": shown})
            _export_html(exporter, nb, report, staging, banner)
        atomic_write_text(staging / "index.html", render_index(meta, headlines))
        atomic_write_text(staging / "run.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        _check_interrupted()  # the last moment a signal can still stop the publish
    except _Interrupted as exc:
        failed = _quarantine(staging, out, run_id)
        raise ReportRunError(
            f"Report run {run_id} was stopped by {_SIGNAL_NAME[exc.signum]}; its kernel was "
            f"shut down and nothing was published. Partial notebooks are in {failed}.",
            exit_code=_SIGNAL_EXIT[exc.signum],
            failed_dir=str(failed),
        ) from None
    except _NotebookFailed as exc:
        failed = _quarantine(staging, out, run_id)
        raise ReportRunError(
            f"{exc.message} Nothing was published; partial notebooks are in {failed}.",
            exit_code=exc.exit_code,
            failed_dir=str(failed),
        ) from exc.__cause__
    except Exception as exc:
        failed = _quarantine(staging, out, run_id)
        if is_write_error(exc):  # a full disk or a permission changed under the run
            raise _cannot_write(out, exc, failed) from exc
        raise ReportRunError(
            f"Report run {run_id} failed unexpectedly ({type(exc).__name__}: "
            f"{_one_line(str(exc))}). Nothing was published; partial output is in "
            f"{failed}.",
            exit_code=EXIT_UNEXPECTED,
            failed_dir=str(failed),
        ) from exc
    except BaseException:
        _quarantine(staging, out, run_id)  # e.g. Ctrl-C: still publish nothing
        raise

    (staging / _OWNER_FILE).unlink()
    os.rename(staging, final)  # atomic publish: the folder appears complete
    try:
        _switch_latest(out, run_id)
    except BaseException as exc:
        # A run that latest does not point to would be a half-publish; undo it.
        failed = _quarantine(final, out, run_id)
        if not isinstance(exc, Exception):
            raise
        raise ReportRunError(
            f"Report run {run_id} could not switch {latest} ({type(exc).__name__}: "
            f"{_one_line(str(exc))}); nothing was published, output is in {failed}.",
            exit_code=EXIT_UNEXPECTED,
            failed_dir=str(failed),
        ) from exc
    logger.info("Published report run %s at %s", run_id, final)

    if keep is not None:
        _prune(out, keep)
    return final
