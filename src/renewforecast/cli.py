"""The ``renewforecast`` command line.

Every command exits 0 on success and non-zero with a one-paragraph message
on failure: 1 for invalid input data (or a Book with no contracts); 2 for a
bad parameter (a malformed URL, a password typed into one); ``train``
and ``score`` exit 3 when a saved model is refused and 4 when the data does
not fit the model; 9 when the output cannot be written (a path under a file,
no permission, disk full); 10 when Salesforce or a database refuses the
credentials, 11 when Salesforce's daily API limit is reached, 12 when either
cannot be reached, 13 when a push finished with rows Salesforce refused, 15 when a report run was
published but its alert digest could not be sent; report runs use the distinct codes of
:mod:`renewforecast.reports.runner` (2 bad parameters, 3 a cell failed, 4 timeout,
5 the kernel died, 6 a notebook stopped early, 130 SIGINT, 143 SIGTERM);
``notebooks copy`` exits 2 when it would overwrite a notebook.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import errno
import io
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
import pandas as pd
from click.core import ParameterSource

from renewforecast.exceptions import (
    EXIT_CANNOT_WRITE,
    EXIT_SET_ASIDE,
    EXIT_SIGINT,
    BookValidationError,
    EmptyBookError,
    OutputPathError,
    RenewForecastError,
    ReportRunError,
    is_write_error,
)
from renewforecast.reports.formatting import format_money, format_value

EXIT_INVALID_DATA = 1
EXIT_BAD_PARAMETER = 2
EXIT_MODEL_REFUSED = 3
EXIT_MODEL_MISMATCH = 4
#: Salesforce or the database refused the credentials, or none were given.
EXIT_NOT_AUTHORISED = 10
#: Salesforce's daily API request limit is reached: nothing more can be asked today.
EXIT_API_LIMIT = 11
#: Salesforce or the database could not be reached, or kept failing after the retries.
EXIT_UNREACHABLE = 12
#: The scores were pushed, but Salesforce refused some rows (listed in the failures CSV).
EXIT_PUSH_FAILED_ROWS = 13
#: Another pull into the same folder is running; this one did nothing.
EXIT_PULL_RUNNING = 14
#: The report run was published, but its alert digest reached none or only some of its channels:
#: nobody may have been told, so the scheduler has to tell someone.
EXIT_ALERTS_NOT_SENT = 15


class _Failed(SystemExit):
    """A command's failure: its exit code, with the one-paragraph message already on stderr."""

    def __init__(self, code: int, message: str):
        super().__init__(code)
        self.message = message


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise _Failed(code, message)


@contextlib.contextmanager
def _writing(path: str, what: str) -> Iterator[None]:
    """Turn an OSError that means "cannot write here" into :class:`OutputPathError`."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, OutputPathError) or not is_write_error(exc):
            raise
        raise OutputPathError.from_os_error(path, exc, what) from exc


def _check_writable(path: str, what: str, *, folder: bool) -> None:
    """Fail now, not after minutes of work, when ``path`` cannot be written (exit 9).

    ``folder``: ``path`` is a folder to fill (else a file to create); its
    folder is created if needed and a probe file is written and removed.
    """
    target = Path(path)
    where = target if folder else target.parent
    with _writing(path, what):
        if not folder and target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(target))
        where.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".renewforecast-write-check-", dir=where)
        os.close(fd)
        os.unlink(probe)


def _refuse_empty(book, data: _Data, task: str) -> None:
    """Exit 1 when the Book holds no contracts: nothing to score, forecast or report."""
    if len(book.contracts):
        return
    aside = len(book.quarantine)
    why = (
        f"every contract was set aside ({aside} row(s); run 'renewforecast validate --on-error quarantine "
        f"{_validate_args(data)}' to list them)"
        if aside
        else "the export has no Contract records (is Contract.csv only a header?)"
    )
    _fail(
        str(EmptyBookError(f"{data} holds no contracts: {why}, so there is nothing to {task}. Nothing was written.")),
        EXIT_INVALID_DATA,
    )


class _StderrLines(logging.Handler):
    """The package's own warnings as ``warning: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {record.getMessage()}", err=True)


def _quiet_logs() -> None:
    # The command prints its own one-paragraph errors; papermill, nbclient and
    # jupyter_client would repeat them (or log a killed kernel as an error)
    # through logging's last-resort handler, straight into a cron log.
    for name in ("papermill", "nbclient", "nbconvert", "jupyter_client", "traitlets"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    # With a handler of its own the package's records no longer reach
    # logging's last-resort handler (bare text), yet still propagate to any
    # logging the caller set up.
    ours = logging.getLogger("renewforecast")
    if not any(isinstance(h, _StderrLines) for h in ours.handlers):
        ours.addHandler(_StderrLines(logging.WARNING))


class _Main(click.Group):
    """Errors every command shares: unwritable output (exit 9), Ctrl-C outside a report run (130)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OutputPathError as exc:
            _fail(str(exc), EXIT_CANNOT_WRITE)
        except KeyboardInterrupt:
            _fail("interrupted (SIGINT); nothing was published.", EXIT_SIGINT)


@dataclass(frozen=True)
class _Data:
    """Where a command reads its data: an export folder, or a database URL and schema."""

    location: str  # what load_book is given
    shown: str  # what messages say (a URL without its password)
    schema: str | None = None
    layout: str = "auto"

    @property
    def is_url(self) -> bool:
        return "://" in self.location

    def __str__(self) -> str:
        return self.shown


def _data(directory: str | None, source: str | None, schema: str | None, layout: str = "auto") -> _Data:
    """The command's data: DIRECTORY or --source URL, exactly one (exit 2 otherwise).

    A password typed into --source would be visible in ``ps`` and in shell
    history, so it is refused; RENEWFORECAST_SOURCE (or the driver's own
    PGPASSWORD / ~/.pgpass) carries it instead.
    """
    if (directory is None) == (source is None):
        _fail(
            "give the data as an export folder (DIRECTORY) or as a database URL (--source URL, or "
            "RENEWFORECAST_SOURCE), not " + ("both" if directory else "neither"),
            EXIT_BAD_PARAMETER,
        )
    if directory is not None:
        if schema is not None or layout != "auto":
            _fail(
                "--schema and --layout describe a database; they go with --source URL, not a folder",
                EXIT_BAD_PARAMETER,
            )
        return _Data(directory, directory)
    shown = _database_url(source, "source", "--source", "RENEWFORECAST_SOURCE")
    return _Data(source, shown, schema, layout)


def _database_url(value: str, param: str, option: str, envvar: str) -> str:
    """The URL as messages show it (no secrets); exit 2 for no URL, or a secret typed on the command line."""
    from renewforecast.io.warehouse import WarehouseError, masked_url, url_secrets

    try:
        shown = masked_url(value)
        secrets = url_secrets(value)
    except WarehouseError:
        _fail(
            f"{option} is not a database URL (dialect+driver://user@host/database, e.g. "
            "postgresql+psycopg://analyst@warehouse/sales or duckdb:///salesforce.duckdb)",
            EXIT_BAD_PARAMETER,
        )
    ctx = click.get_current_context()
    if secrets and ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE:
        _fail(
            f"the {option} URL carries a secret ({', '.join(secrets)}), which other users of this machine can "
            f"read (ps) and which stays in the shell's history. Put the whole URL in the environment variable "
            f"{envvar} instead, or leave the secret out and let the driver find it (PGPASSWORD or ~/.pgpass for "
            "PostgreSQL). Nothing was read or written.",
            EXIT_BAD_PARAMETER,
        )
    return shown


def source_options(func):
    """DIRECTORY, or --source URL with --schema and --layout, for every command that reads data."""
    func = click.option(
        "--layout",
        type=click.Choice(["auto", "fivetran", "airbyte", "stitch", "lowercase"]),
        default="auto",
        show_default=True,
        help="With --source: the replication tool's table and column naming (auto: told from the tables).",
    )(func)
    func = click.option(
        "--schema",
        default=None,
        envvar="RENEWFORECAST_SCHEMA",
        help="With --source: the schema holding the replicated Salesforce tables (default: the connection's).",
    )(func)
    func = click.option(
        "--source",
        "source",
        default=None,
        envvar="RENEWFORECAST_SOURCE",
        metavar="URL",
        help="Read from a database holding a replicated Salesforce schema (Fivetran, Airbyte or Stitch layout) "
        "instead of an export folder: a SQLAlchemy URL such as postgresql+psycopg://user@host/db or "
        "duckdb:///file.duckdb. Default: $RENEWFORECAST_SOURCE. Keep passwords out of it (PGPASSWORD, "
        "~/.pgpass, or the whole URL in $RENEWFORECAST_SOURCE).",
    )(func)
    return click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))(func)


def results_options(func):
    """--results-db URL and --results-schema: write what the command produced as database tables."""
    func = click.option(
        "--results-schema", default=None, envvar="RENEWFORECAST_RESULTS_SCHEMA", help="Schema of the result tables."
    )(func)
    return click.option(
        "--results-db",
        "results_db",
        default=None,
        envvar="RENEWFORECAST_RESULTS_DB",
        metavar="URL",
        help="Also write the results as tables into this database (SQLAlchemy URL; default "
        "$RENEWFORECAST_RESULTS_DB), in one transaction, each row tagged with the run id; writing the same "
        "run again replaces its rows. Keep passwords out of it (PGPASSWORD, ~/.pgpass, or the variable).",
    )(func)


def _results_url_ok(url: str | None) -> None:
    """Check --results-db before any work (exit 2 for a malformed URL or a typed password)."""
    if url is not None:
        _database_url(url, "results_db", "--results-db", "RENEWFORECAST_RESULTS_DB")


#: What a WarehouseError's reason means for a scheduler.
_WAREHOUSE_EXIT = {"auth": EXIT_NOT_AUTHORISED, "unreachable": EXIT_UNREACHABLE, "driver": EXIT_BAD_PARAMETER}


def _write_results(url: str | None, schema: str | None, tables: dict[str, pd.DataFrame], run_id: str) -> int:
    """Write result tables; 0, or the exit code of the database's refusal (10, 12, 2), already explained on stderr."""
    if url is None:
        return 0
    from renewforecast.io.warehouse import WarehouseError, write_result_tables

    shown = _database_url(url, "results_db", "--results-db", "RENEWFORECAST_RESULTS_DB")
    try:
        written = write_result_tables(url, tables, schema=schema, run_id=run_id)
    except WarehouseError as exc:
        reason = getattr(exc, "reason", None)
        code = _WAREHOUSE_EXIT.get(reason, EXIT_BAD_PARAMETER if reason == "invalid" else EXIT_UNREACHABLE)
        click.echo(f"error: {shown}: the result tables were not written (nothing in them changed): {exc}", err=True)
        return code
    click.echo(
        f"Wrote run {run_id} to {shown}: " + ", ".join(f"{name} ({rows:,} rows)" for name, rows in written.items())
    )
    return 0


def _exit_worst(*codes: int) -> None:
    """Exit with the code a scheduler should act on first: 10, 11, 12, 2, 13, 15, then 8 (0 when all are 0)."""
    order = [EXIT_NOT_AUTHORISED, EXIT_API_LIMIT, EXIT_UNREACHABLE, EXIT_BAD_PARAMETER, EXIT_PUSH_FAILED_ROWS]
    # Rows set aside are also in the digest; a digest that did not go out is the more urgent news.
    order += [EXIT_ALERTS_NOT_SENT, EXIT_SET_ASIDE]
    for code in order:
        if code in codes:
            sys.exit(code)


def _headline_rows(run_folder: str | os.PathLike[str]) -> pd.DataFrame:
    """Every headline figure of a published run, one row each (report, key, label, value, kind, as of)."""
    import json

    from renewforecast.reports.headline import Headline, headline_table

    meta = json.loads((Path(run_folder) / "run.json").read_text(encoding="utf-8"))
    headlines = {name: Headline.from_dict(h) for name, h in meta.get("headlines", {}).items()}
    return headline_table(headlines).assign(
        as_of=meta.get("as_of"), data_fingerprint=meta.get("data_fingerprint"), model_version=meta.get("model_version")
    )


def _run_id(as_of: pd.Timestamp) -> str:
    """A result run's id: when it ran (UTC) and the as-of date it describes."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-asof-{as_of:%Y%m%d}"


def _load(data: _Data, encoding: str | None, date_format: str, currency: str | None, on_error: str = "raise"):
    from renewforecast.io.loader import load_book

    extra = {"schema": data.schema, "layout": data.layout} if data.is_url else {}
    return load_book(
        data.location,
        **extra,
        encoding=encoding,
        date_format=date_format,
        currency=currency,
        on_error=on_error,
        date_window=_date_window(),
    )


def _validate_args(data: _Data) -> str:
    """How to name the same data to ``renewforecast validate``."""
    if not data.is_url:
        return data.location
    return f"--source {data.shown}" + (f" --schema {data.schema}" if data.schema else "")


def _load_or_exit_unreachable(data: _Data, encoding, date_format, currency, on_error="raise"):
    """The Book, or exit 10/12/2 when the database refuses the login, cannot be reached or has no driver here.

    A :class:`BookValidationError` is the caller's to report.
    """
    if not data.is_url:
        return _load(data, encoding, date_format, currency, on_error)
    from renewforecast.io.warehouse import WarehouseError

    try:
        return _load(data, encoding, date_format, currency, on_error)
    except WarehouseError as exc:
        reason = getattr(exc, "reason", None)
        # Reading, a refused statement is a missing grant: the login's rights, not the data.
        code = {**_WAREHOUSE_EXIT, "refused": EXIT_NOT_AUTHORISED, "invalid": EXIT_BAD_PARAMETER}.get(
            reason, EXIT_UNREACHABLE
        )
        _fail(f"{data}: nothing was read: {exc}", code)


def _date_window() -> tuple[str | None, str | None] | None:
    """The --date-window of the command being run, as (first, last)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("rf_date_window") if ctx is not None else None


def _parse_window(ctx, param, value: str | None):
    if value is None:
        return None
    first, sep, last = value.partition(":")
    try:
        if not sep:
            raise ValueError("write FIRST:LAST")
        window = (first.strip() or None, last.strip() or None)
        for day in window:
            if day is not None:
                dt.date.fromisoformat(day)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc} (YYYY-MM-DD:YYYY-MM-DD, either side may be empty)") from None
    ctx.meta["rf_date_window"] = window
    return window


on_error_option = click.option(
    "--on-error",
    "on_error",
    type=click.Choice(["raise", "quarantine"]),
    default="raise",
    show_default=True,
    help="quarantine: set aside rows that break a rule (and what depends on them), carry on with the rest, "
    "and exit 8 after the work is done.",
)


def _notice_set_aside(book) -> bool:
    """Tell stderr what was set aside; whether anything was."""
    from renewforecast.ledger.set_aside import quarantine_report, set_aside_summary

    if not len(book.quarantine):
        return False
    click.echo(f"warning: {set_aside_summary(book)['text']}:", err=True)
    q = quarantine_report(book)
    for r in q.head(20).itertuples(index=False):
        click.echo(f"  {_problem_line(r, rule=True)}", err=True)
    if len(q) > 20:
        click.echo(
            f"  ... and {len(q) - 20} more (renewforecast validate --on-error quarantine lists every row)", err=True
        )
    return True


_data_options = [
    click.option(
        "--encoding", default=None, help="Text encoding of the CSV files (default: detect BOM, UTF-8, then cp1252)."
    ),
    click.option(
        "--date-format", default="%m/%d/%Y", show_default=True, help="Non-ISO date format of report-style exports."
    ),
    click.option(
        "--currency", default=None, help="Reporting currency (default: the corporate currency, or the only one)."
    ),
    click.option(
        "--date-window",
        "date_window",
        default=None,
        metavar="FIRST:LAST",
        expose_value=False,
        callback=_parse_window,
        help="First and last day a record may be dated (default 1990-01-01 to 50 years ahead); "
        "either side may be left empty, e.g. 1980-01-01: .",
    ),
]


def data_options(func):
    for option in reversed(_data_options):
        func = option(func)
    return func


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="renewforecast")
def main() -> None:
    """renewforecast: renewal probabilities, SaaS metrics and revenue forecasts
    from Salesforce CPQ data: an export folder, a replicated warehouse schema
    (--source URL), or the Salesforce API itself (pull).

    \b
    Exit codes shared by every command: 0 done; 1 invalid input data or a
    Book with no contracts; 2 a bad parameter; 9 the output cannot be
    written (path under a file, permission denied, disk full); 10 Salesforce
    or the database refused the credentials; 11 Salesforce's daily API
    limit is reached; 12 Salesforce or the database could not be reached;
    13 pushed, with rows Salesforce refused; 14 another pull into the same
    folder is running. See each command's --help.
    """
    _quiet_logs()


@main.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--accounts", default=8000, show_default=True, type=click.IntRange(min=1), help="Customer accounts.")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed (same seed, same files).")
@click.option("--end", default="2026-10-31", show_default=True, help="Export date of the demo org.")
def demo_data(out: str, accounts: int, seed: int, end: str) -> None:
    """Write a synthetic Salesforce CPQ export to OUT.

    Exits 9 when OUT cannot be written (under a file, permission denied,
    disk full).

    Example: renewforecast demo-data data/demo --accounts 8000 --seed 7
    """
    from renewforecast.demo import write_demo_org

    _check_writable(out, "the demo export", folder=True)
    with _writing(out, "the demo export"):
        org = write_demo_org(out, accounts=accounts, seed=seed, end=end, progress=True)
    counts = ", ".join(f"{len(v):,} {k}" for k, v in org.tables.items() if len(v))
    click.echo(f"Demo org written to {org.path} (export date {org.as_of.date()}): {counts}.")


@contextlib.contextmanager
def _salesforce_errors(what: str) -> Iterator[None]:
    """Salesforce's refusals as one-paragraph messages and their exit codes (1, 10, 11, 12)."""
    from renewforecast.io.salesforce_api import (
        DailyApiLimitError,
        PullLockedError,
        PullParameterError,
        PullStateWriteError,
        SalesforceApiError,
        SalesforceAuthError,
        SalesforceFieldError,
        SalesforceUnavailableError,
    )

    try:
        yield
    except PullParameterError as exc:
        _fail(f"{what}: {exc}", EXIT_BAD_PARAMETER)
    except PullLockedError as exc:
        _fail(f"{what}: {exc}", EXIT_PULL_RUNNING)
    except PullStateWriteError as exc:
        _fail(str(exc), EXIT_CANNOT_WRITE)
    except SalesforceAuthError as exc:
        _fail(f"{what}: Salesforce refused the login: {exc}", EXIT_NOT_AUTHORISED)
    except DailyApiLimitError as exc:
        _fail(f"{what}: {exc}", EXIT_API_LIMIT)
    except SalesforceUnavailableError as exc:
        _fail(f"{what}: {exc}", EXIT_UNREACHABLE)
    except SalesforceFieldError as exc:
        _fail(f"{what}: {exc}", EXIT_INVALID_DATA)
    except SalesforceApiError as exc:
        _fail(f"{what}: {exc}", EXIT_UNREACHABLE if exc.status and exc.status >= 500 else EXIT_INVALID_DATA)


def _salesforce_connection():
    """The Salesforce connection the environment describes (exit 2 for a malformed SF_* setting)."""
    from renewforecast.io.salesforce_api import SalesforceConnection

    try:
        return SalesforceConnection.from_env()
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_PARAMETER)


@main.command("pull")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--state",
    "state_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="JSON file of what was last pulled (per object, the latest SystemModstamp): read to pull only what "
    "changed since, rewritten after a successful pull.",
)
@click.option("--since", default=None, help="Pull only records changed after this instant (ISO date or time, UTC).")
@click.option("--full", is_flag=True, help="Pull everything, whatever --state says.")
@click.option(
    "--object", "objects", multiple=True, help="Pull only this object (repeatable), e.g. SBQQ__Subscription__c."
)
@click.option(
    "--overlap",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds an incremental pull reaches back before the last one started (by Salesforce's clock), so "
    "a change committed late is not missed.",
)
@click.option(
    "--no-reconcile",
    "reconcile",
    flag_value=False,
    default=True,
    help="On incremental pulls, skip the Id-only query per object that drops records Salesforce no longer "
    "returns (purged from the Recycle Bin, or no longer shared with the integration user).",
)
def pull(
    out: str,
    state_file: str | None,
    since: str | None,
    full: bool,
    objects: tuple[str, ...],
    overlap: float,
    reconcile: bool,
) -> None:
    """Pull the org's contract data from the Salesforce API into the export folder OUT.

    Every object the project reads (Account, Contract, SBQQ__Subscription__c,
    Opportunity, ...) is described first and queried for the fields that
    exist in the org (REST query for the small reference objects, Bulk API
    2.0 for the rest); OUT gets the same files a Data Loader export has,
    written beside it and swapped in when complete. With --state, only the
    records changed since the last pull are read (deleted ones are removed).
    Files that are not Salesforce objects (spend.csv, signals.csv) are kept.

    \b
    Credentials come from the environment only, never from the command line:
      SF_INSTANCE_URL + SF_ACCESS_TOKEN, or
      SF_LOGIN_URL + SF_CLIENT_ID + SF_USERNAME + SF_JWT_KEY_FILE (JWT bearer), or
      SF_LOGIN_URL + SF_CLIENT_ID + SF_CLIENT_SECRET (client credentials).

    Example: renewforecast pull data/org --state data/org-pull.json

    \b
    Exit codes: 0 pulled; 1 a field or object the project needs is not in
    the org (nothing queried); 2 a bad --since, --object or --overlap, or a
    state file of another org (use --full); 9 OUT cannot be written (or,
    said so, the state file after OUT was updated); 10 no credentials or
    Salesforce refused them; 11 the org's daily API request limit is
    reached; 12 Salesforce could not be reached or kept failing after the
    retries; 14 another pull into OUT is running. On any failure but the
    state file's, OUT and the state file are unchanged.
    """
    from renewforecast.io.salesforce_api import check_pull_parameters, pull_salesforce

    with _salesforce_errors("nothing was pulled"):
        check_pull_parameters(since=since, objects=list(objects) or None, overlap=overlap)  # before any login
    _check_writable(out, "the export folder", folder=True)
    with _salesforce_errors("nothing was pulled"), _writing(out, "the export folder"):
        result = pull_salesforce(
            out,
            since=since,
            state_file=state_file,
            full=full,
            objects=list(objects) or None,
            overlap=overlap,
            reconcile=reconcile,
            connection=_salesforce_connection(),
        )
    for problem in result.warnings:
        click.echo(f"warning: {problem.message}", err=True)
    for name, rows in result.rows.items():
        mode = result.modes.get(name, "full")
        moved = (
            f"{result.changed.get(name, 0):,} changed, {result.deleted.get(name, 0):,} deleted"
            if mode == "incremental"
            else "read whole"
        )
        click.echo(f"  {name:<32} {rows:>10,} records ({moved})")
    click.echo(f"Pulled {len(result.rows)} objects into {result.folder}")


def _problem_line(r, *, rule: bool = False) -> str:
    from renewforecast.exceptions import location

    return f"{location(r.file, r.line, r.record_id, r.column)}: {f'{r.rule}: ' if rule else ''}{r.message}"


def _grouped(frame: pd.DataFrame, limit: int | None) -> str:
    """Problems grouped by rule, most frequent first, with the first ``limit`` rows of each."""
    out = []
    counts = frame["rule"].value_counts(sort=False)
    for rule in sorted(counts.index, key=lambda r: (-counts[r], r)):
        rows = frame[frame["rule"] == rule]
        out.append(f"  {rule} ({len(rows)}):")
        shown = rows if limit is None else rows.head(limit)
        out.extend(f"    {_problem_line(r)}" for r in shown.itertuples(index=False))
        if len(rows) > len(shown):
            out.append(f"    ... and {len(rows) - len(shown)} more (--all lists every row)")
    return "\n".join(out)


@main.command("validate")
@source_options
@data_options
@click.option("--limit", default=5, show_default=True, help="Rows listed per rule.")
@click.option("--all", "show_all", is_flag=True, help="List every row of every rule.")
@on_error_option
def validate(
    directory: str | None,
    source: str | None,
    schema: str | None,
    layout: str,
    encoding,
    date_format,
    currency,
    limit: int,
    show_all: bool,
    on_error: str,
) -> None:
    """Check a Salesforce export (or canonical folder) and print a data-quality report.

    Every error and warning is listed, grouped by rule with its count (the
    first rows of each; --all for every row). Exits 1 when the data has
    errors; warnings alone exit 0; with --on-error quarantine, 8 when rows
    were set aside (they are listed).

    Example: renewforecast validate data/demo
    """
    from renewforecast.exceptions import problems_frame

    rows = None if show_all else limit
    data = _data(directory, source, schema, layout)
    try:
        book = _load_or_exit_unreachable(data, encoding, date_format, currency, on_error)
    except BookValidationError as exc:
        click.echo(f"{data}: INVALID: {len(exc.problems)} error(s), {len(exc.warnings)} warning(s)")
        click.echo(f"Errors ({len(exc.problems)}):")
        click.echo(_grouped(problems_frame(exc.problems), rows))
        if exc.warnings:
            click.echo(f"Warnings ({len(exc.warnings)}):")
            click.echo(_grouped(problems_frame(exc.warnings), rows))
        sys.exit(EXIT_INVALID_DATA)
    click.echo(f"{data}: valid ({book.currency}), fingerprint {book.fingerprint[:12]}")
    summary = book.summary()
    for row in summary.itertuples(index=False):
        span = "" if pd.isna(row.first) else f"  {row.first.date()} .. {row.last.date()}"
        click.echo(f"  {row.table:<20} {row.rows:>10,}{span}")
    warnings = book.warnings
    if len(warnings):
        click.echo(f"Warnings ({len(warnings)}):")
        click.echo(_grouped(warnings, rows))
    else:
        click.echo("No warnings.")
    if len(book.quarantine):
        from renewforecast.ledger.set_aside import quarantine_report, set_aside_summary

        click.echo(f"Set aside: {set_aside_summary(book)['text']}:")
        click.echo(_grouped(quarantine_report(book), rows))
        sys.exit(EXIT_SET_ASIDE)


class _ReportCommand(click.Command):
    """``report --help`` lists every report notebook and the parameters it takes."""

    def format_epilog(self, ctx, formatter) -> None:
        super().format_epilog(ctx, formatter)
        from renewforecast.reports.runner import list_notebooks, notebook_parameters

        try:
            books = [(p.stem, notebook_parameters(p)) for p in list_notebooks()]
        except ReportRunError as exc:
            formatter.write_paragraph()
            formatter.write_text(f"(report notebooks not found: {exc})")
            return
        for stem, params in books:
            with formatter.section(f"Notebook {stem} (-p NAME=VALUE)"):
                formatter.write_dl(
                    [
                        (name, f"{info['help']} [default {info['default']}]")
                        for name, info in params.items()
                        if name not in _RUN_SETS
                    ]
                )


# Parameters the run sets itself: the data folder, the as-of date, the run's Book snapshot, its record
# folder, and the reports folder whose earlier runs the track record grades (--out).
_RUN_SETS = ("source", "as_of", "snapshot", "record_dir", "reports_dir")


def _notebook_value(raw: str):
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # plain text


def _same_kind(default, value) -> bool:
    """A value fits a parameter declared with ``default`` (None takes anything; an int fits a float)."""
    if default is None or value is None:
        return True
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    allowed = kinds.get(type(default))
    if allowed is None:
        return True
    return isinstance(value, allowed) and (isinstance(default, bool) or not isinstance(value, bool))


def _chosen_templates(notebooks: tuple[str, ...], notebooks_dir: str | None) -> list[Path]:
    """The report notebooks a run with these --notebook and --notebooks options runs."""
    from renewforecast.reports.runner import list_notebooks

    return [p for p in list_notebooks(notebooks_dir) if not notebooks or p.stem in notebooks or p.name in notebooks]


def _check_params(
    pairs: tuple[str, ...], notebooks: tuple[str, ...], as_of: str | None, book, notebooks_dir: str | None = None
) -> tuple[dict, set]:
    """Validate -p NAME=VALUE pairs and the as-of date before any kernel starts (exit 2).

    Returns the checked values and the names the chosen notebooks declare.
    """
    from renewforecast.reports.catalogue import history_problems
    from renewforecast.reports.runner import EXIT_BAD_INPUT, notebook_parameters

    try:
        templates = _chosen_templates(notebooks, notebooks_dir)
        declared: dict[str, dict] = {}
        for path in templates:
            for name, info in notebook_parameters(path).items():
                declared.setdefault(name, info)
    except ReportRunError as exc:
        _fail(str(exc), exc.exit_code)
    problems, values = [], {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(f"-p {pair!r}: write NAME=VALUE")
            continue
        if name in _RUN_SETS:
            problems.append(
                f"-p {name}: the run sets it (give the data folder as the argument and the date with --as-of)"
            )
            continue
        if name not in declared:
            problems.append(f"-p {name}: no report notebook takes it (known: {', '.join(sorted(declared))})")
            continue
        value = _notebook_value(raw)
        try:
            default = ast.literal_eval(declared[name]["default"])
        except (ValueError, SyntaxError):
            default = None  # not a literal: any value is accepted
        if not _same_kind(default, value):
            problems.append(
                f"-p {name}={raw}: expected {type(default).__name__} like its default {declared[name]['default']}"
            )
            continue
        values[name] = value
    if as_of is not None:
        try:
            day = pd.Timestamp(dt.date.fromisoformat(as_of))
        except ValueError:
            problems.append(f"--as-of {as_of!r} is not a date YYYY-MM-DD")
        else:
            first = book.subscriptions["start_date"].min()
            if day > pd.Timestamp(dt.date.today()):
                problems.append(f"--as-of {as_of} is in the future")
            elif book.data_end is not None and day > book.data_end:
                problems.append(f"--as-of {as_of} is after the data's export date {book.data_end.date()}")
            elif pd.notna(first) and day < first:
                problems.append(f"--as-of {as_of} is before the first subscription ({first.date()})")
            else:
                problems.extend(history_problems(book, day, [p.stem for p in templates], f"--as-of {as_of}"))
    elif book.data_end is not None:
        problems.extend(
            history_problems(
                book, book.data_end, [p.stem for p in templates], f"the export date {book.data_end.date()}"
            )
        )
    if problems:
        _fail("the report was not run:\n  " + "\n  ".join(problems), EXIT_BAD_INPUT)
    return values, set(declared)


@main.command("report", cls=_ReportCommand)
@source_options
@click.option(
    "-p",
    "--param",
    "param_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a notebook parameter (repeatable); the parameters are listed below.",
)
@click.option("--as-of", "as_of", default=None, help="As-of date, YYYY-MM-DD (default: the data's export date).")
@click.option(
    "--out", default="reports", show_default=True, type=click.Path(file_okay=False), help="Where runs are published."
)
@click.option("--notebook", "notebooks", multiple=True, help="Run only this report (repeatable), e.g. 00_data_quality.")
@click.option(
    "--notebooks",
    "notebooks_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Run the NN_*.ipynb reports in this folder (a team's own copies: 'renewforecast notebooks "
    "copy DIR') instead of the package's.",
)
@click.option(
    "--timeout", default=900, show_default=True, type=click.IntRange(min=1), help="Seconds a notebook cell may run."
)
@click.option("--keep", default=None, type=click.IntRange(min=1), help="Keep only the newest N published runs.")
@click.option(
    "--jobs",
    default=None,
    type=click.IntRange(min=1),
    help="Notebooks run side by side (default: the usable CPUs, at most 2; 1 runs them in turn).",
)
@click.option(
    "--model",
    "model_path",
    default="models/renewal",
    show_default=True,
    help="Saved renewal model the risk report scores with.",
)
@click.option(
    "--alerts",
    "alerts_path",
    default=None,
    envvar="RENEWFORECAST_ALERTS",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Alert rules and channels (TOML; default $RENEWFORECAST_ALERTS): checked before the run; what fires on "
    "the published figures is recorded in run.json and sent as one digest by email and/or webhook, and a failed "
    "run sends what failed. Secrets come from the environment variables the file names.",
)
@results_options
@data_options
@on_error_option
def report(
    directory,
    source,
    schema,
    layout,
    param_pairs,
    as_of,
    out,
    notebooks,
    notebooks_dir,
    timeout,
    keep,
    jobs,
    model_path,
    alerts_path,
    results_db,
    results_schema,
    encoding,
    date_format,
    currency,
    on_error,
) -> None:
    """Run the report notebooks on DIRECTORY and publish HTML to OUT/<run-id>/.

    The export is read and validated once; every notebook reads that one
    Book (a Parquet snapshot in the run's staging folder, deleted before
    publishing) at the one as-of date. The run is published only if every
    notebook succeeds; OUT/latest then points at it. A failed run publishes
    nothing, keeps its partial notebooks in OUT/failed/<run-id>/ and exits
    non-zero.

    Example: renewforecast report data/demo --as-of 2026-10-31

    \b
    Exit codes: 0 published; 1 invalid export, no contracts, or unexpected
    error; 2 refused before any notebook ran (parameters, as-of date,
    notebooks); 3 a cell raised; 4 a cell timed out; 5 the kernel died;
    6 a notebook stopped early; 8 published, with rows set aside
    (--on-error quarantine); 9 OUT cannot be written (under a file,
    permission denied, disk full); 15 published, but the --alerts digest
    could not be sent (a failed run keeps its own code when its failure
    digest cannot be sent either);
    130 stopped by SIGINT (Ctrl-C), 143 stopped by SIGTERM: the kernel is
    shut down, nothing is published, partial notebooks stay in
    OUT/failed/<run-id>/.
    """
    from renewforecast.reports.runner import run_reports

    data = _data(directory, source, schema, layout)
    _results_url_ok(results_db)
    # Before anything is read: a run that cannot tell anyone must not start.
    alerts = _load_alerts_or_exit(alerts_path, notebooks, notebooks_dir)
    run = {"source": data.shown}  # what a failure digest can say about the run so far
    with _failure_digest(alerts, run):
        try:
            book = _load_or_exit_unreachable(data, encoding, date_format, currency, on_error)
        except BookValidationError as exc:
            _fail(
                f"{data} is not valid input, so no report was run. "
                f"Run 'renewforecast validate {_validate_args(data)}' for the full list.\n{exc}",
                EXIT_INVALID_DATA,
            )
        _refuse_empty(book, data, "report")
        extra, declared = _check_params(param_pairs, notebooks, as_of, book, notebooks_dir)
        # Resolved once, here: every notebook receives this ISO date.
        day = book.resolve_as_of(as_of) if as_of or book.data_end is not None else pd.Timestamp(dt.date.today())
        as_of = day.date().isoformat()
        # Only when a chosen notebook takes it: the run warns about parameters
        # nobody declares, and not every report uses a model.
        params = {"model_path": str(Path(model_path).resolve())} if "model_path" in declared else {}
        params.update(extra)
        if encoding:
            params["encoding"] = encoding
        # How the export was read, recorded with each report (and used by a
        # notebook that reads the export itself rather than the run's snapshot).
        if date_format != "%m/%d/%Y":
            params["date_format"] = date_format
        if currency:
            params["currency"] = currency
        if _date_window() is not None:
            params["date_window"] = list(_date_window())
        if on_error != "raise":
            params["on_error"] = on_error
        run.update(as_of=as_of, parameters=params)
        try:
            published = run_reports(
                data.location if not data.is_url else book.source,
                as_of=as_of,
                out=out,
                notebooks=list(notebooks) or None,
                notebooks_dir=notebooks_dir,
                parameters=params or None,
                timeout=timeout,
                keep=keep,
                jobs=jobs,
                book=book,
                alerts=alerts,
            )
        except ReportRunError as exc:
            run["partial_output"] = exc.failed_dir
            where = (
                f" Partial notebooks kept in {exc.failed_dir}."
                if exc.failed_dir and str(exc.failed_dir) not in str(exc)
                else ""
            )
            _fail(f"{exc}{where}", exc.exit_code)
        except RenewForecastError as exc:
            _fail(str(exc), 1)
    click.echo(f"Published {published} (as of {as_of}).")
    click.echo(f"Open {Path(published) / 'index.html'}")
    told = _send_alerts(alerts, published)
    stored = (
        _write_results(results_db, results_schema, {"kpis": _headline_rows(published)}, Path(published).name)
        if results_db is not None
        else 0
    )
    aside = _notice_set_aside(book)
    _exit_worst(stored, told, EXIT_SET_ASIDE if aside else 0)


def _load_alerts_or_exit(path: str | None, notebooks: tuple[str, ...], notebooks_dir: str | None):
    """The checked alerts file (None without --alerts), or exit 2 listing every problem in it."""
    if path is None:
        return None
    from renewforecast.reports.alerts import AlertConfigError, load_alerts

    try:
        reports = [p.stem for p in _chosen_templates(notebooks, notebooks_dir)]
    except ReportRunError:
        reports = None  # the notebooks' folder is refused later, with the other parameters
    try:
        return load_alerts(path, reports=reports)
    except AlertConfigError as exc:
        _fail(f"{exc}\nNothing was read or run.", EXIT_BAD_PARAMETER)


@contextlib.contextmanager
def _failure_digest(alerts, run: dict) -> Iterator[None]:
    """On a failed run, send the alert channels what failed, then fail with the run's own code."""
    if alerts is None:
        yield
        return
    try:
        yield
    except _Failed as exc:
        if exc.code:
            _send_failure(alerts, run, int(exc.code), exc.message)
        raise
    except OutputPathError as exc:
        _send_failure(alerts, run, EXIT_CANNOT_WRITE, str(exc))
        raise
    except KeyboardInterrupt:
        _send_failure(alerts, run, EXIT_SIGINT, "interrupted (SIGINT); nothing was published.")
        raise
    except Exception as exc:
        _send_failure(alerts, run, EXIT_INVALID_DATA, f"unexpected error: {type(exc).__name__}")
        raise


def _send_failure(alerts, run: dict, code: int, message: str) -> None:
    """Send the failure digest; a digest that does not go out is said on stderr, the exit code stays the run's."""
    from renewforecast.reports.alerts import RunFailure, send_digest

    partial = run.get("partial_output")
    meta = {
        "run_id": Path(partial).name if partial else None,
        "status": "failed",
        "as_of": run.get("as_of"),
        "source": run.get("source"),
        "parameters": run.get("parameters") or {},
    }
    result = send_digest([], alerts, run_meta=meta, failure=RunFailure(code, message, partial))
    if result.sent:
        click.echo(f"Sent the failure digest by {' and '.join(result.sent)}.", err=True)
    for channel, reason in result.failed.items():
        click.echo(f"error: the failure digest was not sent by {channel}: {reason}", err=True)


def _send_alerts(alerts, published: Path) -> int:
    """Send the digest of the alerts the published run recorded; 0, or 15 when a channel was not reached."""
    if alerts is None:
        return 0
    import json

    from renewforecast.reports.alerts import Alert, send_digest

    meta = json.loads((Path(published) / "run.json").read_text(encoding="utf-8"))
    fired = [Alert.from_dict(a) for a in meta.get("alerts") or []]
    if not fired:
        click.echo(f"Alerts: none of the {len(alerts.rules)} rule(s) in {alerts.path} fired; nothing was sent.")
        return 0
    names = ", ".join(a.rule for a in fired)
    result = send_digest(fired, alerts, run_meta=meta, run_folder=published)
    if result.sent:
        click.echo(f"Alerts: {len(fired)} fired ({names}); sent by {' and '.join(result.sent)}.")
    if result.ok:
        return 0
    for channel, reason in result.failed.items():
        click.echo(
            f"error: the run is published, but the digest of {len(fired)} alert(s) ({names}) was not sent by "
            f"{channel}: {reason}",
            err=True,
        )
    return EXIT_ALERTS_NOT_SENT


@main.group("notebooks")
def notebooks_group() -> None:
    """The report notebooks: copy the package's templates to make your own."""


@notebooks_group.command("copy")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite notebooks already in DEST.")
def notebooks_copy(dest: str, force: bool) -> None:
    """Copy the report notebook templates into DEST, a starting point for your own reports.

    Edit the copies in JupyterLab (a relative source such as data/demo is
    looked for from DEST upward), then run them with
    'renewforecast report DATA --notebooks DEST'. Files are written
    atomically; other files in DEST are left alone.

    Example: renewforecast notebooks copy my-reports

    \b
    Exit codes: 0 copied; 2 a notebook of the same name is already in DEST
    (nothing copied; --force overwrites); 9 DEST cannot be written.
    """
    from renewforecast.reports.runner import EXIT_BAD_INPUT, copy_templates

    try:
        with _writing(dest, "the notebooks"):
            written = copy_templates(dest, force=force)
    except FileExistsError as exc:
        _fail(str(exc).replace("force overwrites", "--force overwrites"), EXIT_BAD_INPUT)
    except ReportRunError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(f"Copied {len(written)} report notebooks to {dest}: {', '.join(p.name for p in written)}.")
    click.echo(f"Run them with: renewforecast report DATA --notebooks {dest}")


def _load_or_exit(data: _Data, encoding, date_format, currency, on_error="raise"):
    try:
        return _load_or_exit_unreachable(data, encoding, date_format, currency, on_error)
    except BookValidationError as exc:
        _fail(
            f"{data} is not valid input. Run 'renewforecast validate {_validate_args(data)}' for the full list.\n{exc}",
            EXIT_INVALID_DATA,
        )


def _load_model_or_exit(model_path):
    """A saved model, or exit 3 with why it was refused; its warnings go to stderr as one line each."""
    import warnings

    from renewforecast.models.registry import ModelRefused, load_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = load_model(model_path)
        except ModelRefused as exc:
            _fail(f"the model was refused: {exc}", EXIT_MODEL_REFUSED)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    return model


@main.command("train")
@source_options
@click.option("--as-of", "as_of", default=None, help="Train on decisions known by this date (default: export date).")
@click.option("--out", default="models/renewal", show_default=True, help="Model folder; a new version is added.")
@click.option("--estimator", type=click.Choice(["gbt", "logistic"]), default="gbt", show_default=True)
@click.option(
    "--lead-days",
    default=120,
    show_default=True,
    type=click.IntRange(min=1),
    help="Decisions are featurised this many days before the contract end.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random state.")
@data_options
def train(
    directory, source, schema, layout, as_of, out, estimator, lead_days, seed, encoding, date_format, currency
) -> None:
    """Train the renewal model on past decisions, backtest it, and save it to OUT.

    The backtest (train before the median end date, test after) is recorded in
    the model's manifest; the saved model is then trained on every decision.
    Exits 9 when OUT cannot be written (under a file, permission denied,
    disk full).

    Example: renewforecast train data/demo --as-of 2026-10-31 --out models/renewal

    \b
    With RENEWFORECAST_MODEL_KEY set, the manifest is signed (HMAC-SHA256).
    Exit codes: 0 saved; 1 invalid export; 3 RENEWFORECAST_MODEL_KEY is set
    but empty or too short (checked before training; nothing saved).
    """
    from renewforecast.models.evaluation import evaluate_renewal_model
    from renewforecast.models.features import renewal_training_set
    from renewforecast.models.registry import ModelKeyError, check_model_key, save_model
    from renewforecast.models.renewal import RenewalModel

    try:
        check_model_key()  # a key that failed to reach the environment stops before minutes of training
    except ModelKeyError as exc:
        _fail(f"the model was not trained: {exc}", EXIT_MODEL_REFUSED)
    book = _load_or_exit(_data(directory, source, schema, layout), encoding, date_format, currency)
    _check_writable(out, "the model", folder=True)  # before minutes of training
    cut = book.resolve_as_of(as_of)
    model = RenewalModel(estimator=estimator, random_state=seed)
    try:
        evaluation = evaluate_renewal_model(book.as_of(cut), model, lead_days=lead_days)
    except ValueError as exc:
        _fail(str(exc), EXIT_INVALID_DATA)
    X, y = renewal_training_set(book, cut, lead_days)
    model.fit(X, y)
    metrics = {
        f"{row['scorer']}_{k}": float(row[k])
        for _, row in evaluation.metrics.iterrows()
        for k in ("roc_auc", "pr_auc_churn", "brier", "log_loss", "ece")
    }
    metrics.update(
        {
            "backtest_cutoff": str(evaluation.cutoff.date()),
            "backtest_train": evaluation.n_train,
            "backtest_test": evaluation.n_test,
            "trained_on": len(X),
        }
    )
    with _writing(out, "the model"):
        folder = save_model(model, out, metrics=metrics, training_fingerprint=book.fingerprint, as_of=cut.date())
    click.echo(f"Trained on {len(X):,} renewal decisions known by {cut.date()}; saved {folder}")
    for _, row in evaluation.metrics.iterrows():
        click.echo(
            f"  backtest {row['scorer']:<6} AUC {row['roc_auc']:.3f}  Brier {row['brier']:.3f}  "
            f"ECE {row['ece']:.3f}  ({int(row['contracts']):,} test decisions)"
        )


@main.command("score")
@source_options
@click.option("--model", "model_path", default="models/renewal", show_default=True, help="Saved model folder.")
@click.option("--as-of", "as_of", default=None, help="Scoring date (default: export date).")
@click.option("--out", default=None, help="CSV to write (atomically). Required unless --push.")
@click.option("--crm", is_flag=True, help="Write a Salesforce upsert CSV (Id plus custom fields).")
@click.option(
    "--id-field", default="Id", show_default=True, help="With --crm or --push: the field Salesforce matches on."
)
@click.option(
    "--push",
    is_flag=True,
    help="Upsert the scores into Salesforce (Bulk API 2.0), sending only the rows whose values differ from "
    "what the org holds; credentials from the environment, as for 'pull'.",
)
@click.option("--dry-run", is_flag=True, help="With --push: list what would change in Salesforce; send nothing.")
@click.option(
    "--push-object", default="Contract", show_default=True, help="With --push: the object holding the score fields."
)
@click.option(
    "--failures",
    default=None,
    type=click.Path(dir_okay=False),
    help="With --push: CSV of the rows Salesforce refused, with its error (default: push_failures.csv beside "
    "OUT, or in the current folder).",
)
@results_options
@data_options
@on_error_option
def score(
    directory,
    source,
    schema,
    layout,
    model_path,
    as_of,
    out,
    crm,
    id_field,
    push,
    dry_run,
    push_object,
    failures,
    results_db,
    results_schema,
    encoding,
    date_format,
    currency,
    on_error,
) -> None:
    """Score every contract coming up for renewal; write the scores to OUT and/or push them into Salesforce.

    Exits 1 when the data holds no contracts and 9 when OUT cannot be written
    (under a file, permission denied, disk full).

    Example: renewforecast score data/demo --model models/renewal --out scores.csv --crm

    Nightly, into Salesforce: renewforecast score data/org --out scores.csv --crm --push

    \b
    Exit codes: 0 written (and pushed); 1 invalid export; 2 neither --out
    nor --push; 3 the model was refused (changed or malformed files, another
    model format, scikit-learn or NumPy of another major.minor version, or
    with RENEWFORECAST_MODEL_KEY set an unsigned or wrongly signed manifest;
    nothing written); 4 the export lacks what the model needs; 8 written,
    with rows set aside; 9 OUT cannot be written; with --push: 10 no
    credentials or Salesforce refused them, 11 the daily API request limit
    is reached, 12 Salesforce could not be reached after the retries (also:
    --results-db could not be written), 13 pushed, but Salesforce refused
    some rows (listed in the failures CSV; a re-run sends only those and
    any that changed).
    """
    from renewforecast.analyses.scoring import SCORE_COLUMNS, ScoringInputError, score_contracts, write_crm_upsert

    if out is None and not push:
        _fail("give --out FILE for the scores, --push to send them to Salesforce, or both", EXIT_BAD_PARAMETER)
    if dry_run and not push:
        _fail("--dry-run goes with --push (it lists what a push would change)", EXIT_BAD_PARAMETER)
    data = _data(directory, source, schema, layout)
    _results_url_ok(results_db)
    book = _load_or_exit(data, encoding, date_format, currency, on_error)
    _refuse_empty(book, data, "score")
    if out is not None:
        _check_writable(out, "the scores", folder=False)
    if push:
        failures = failures or str(Path(out).parent / "push_failures.csv" if out else "push_failures.csv")
        _check_writable(failures, "the push failures", folder=False)
    cut = book.resolve_as_of(as_of)
    model = _load_model_or_exit(model_path)
    try:
        scores = score_contracts(book, model=model, as_of=cut)
    except ScoringInputError as exc:
        _fail(str(exc), EXIT_MODEL_MISMATCH)
    if out is not None:
        with _writing(out, "the scores"):
            if crm:
                write_crm_upsert(scores, out, id_field=id_field)
            else:
                write_crm_upsert(
                    scores,
                    out,
                    id_field="contract_id",
                    fields={c: c for c in SCORE_COLUMNS if c != "contract_id"},
                    probability_as_percent=False,
                )
    at_risk = format_money(scores["arr_at_risk"].sum(), book.currency, compact=False)
    click.echo(
        f"Scored {len(scores):,} contracts as of {cut.date()} with model {model.model_version_}; "
        f"ARR at risk {at_risk}." + (f" Wrote {out}" if out else "")
    )
    # Salesforce first: a results database that is down must not keep the scores from the CRM.
    refused_rows = push and _push(scores, push_object, id_field, dry_run, failures)
    stored = _write_results(results_db, results_schema, {"scores": scores}, _run_id(cut))
    aside = _notice_set_aside(book)
    _exit_worst(stored, EXIT_PUSH_FAILED_ROWS if refused_rows else 0, EXIT_SET_ASIDE if aside else 0)


def _push(scores: pd.DataFrame, push_object: str, id_field: str, dry_run: bool, failures: str) -> bool:
    """Push the scores (or list what would change); whether Salesforce refused any row."""
    from renewforecast.analyses.writeback import push_scores

    what = "nothing was pushed" if dry_run else "the push stopped"
    with _salesforce_errors(what), _writing(failures, "the push failures"):
        result = push_scores(
            scores,
            object=push_object,
            id_field=id_field,
            dry_run=dry_run,
            failures_path=None if dry_run else failures,
            connection=_salesforce_connection(),
        )
    if dry_run:
        rows = result.changes["id"].nunique() if len(result.changes) else 0
        click.echo(
            f"Dry run: {rows:,} {push_object} records would change ({len(result.changes):,} values); "
            f"{result.unchanged:,} already hold these scores. Nothing was sent."
        )
        for change in result.changes.head(20).itertuples(index=False):
            click.echo(f"  {change.id} {change.field}: {change.current!r} -> {change.new!r}")
        if len(result.changes) > 20:
            click.echo(f"  ... and {len(result.changes) - 20:,} more values")
        return False
    failed = len(result.failed)
    click.echo(
        f"Pushed to Salesforce {push_object}: {result.updated:,} records updated, {result.unchanged:,} unchanged "
        f"(not sent), {failed:,} refused"
        + (f", {result.retried:,} sent again after a transient error" if result.retried else "")
        + f"; jobs {', '.join(result.jobs) or 'none'}."
    )
    if failed:
        click.echo(
            f"error: Salesforce refused {failed:,} records; they and Salesforce's errors are in {failures}. "
            "A re-run sends only those and any that changed.",
            err=True,
        )
    return bool(failed)


@main.command("forecast")
@source_options
@click.option("--as-of", "as_of", default=None, help="Forecast date, YYYY-MM-DD (default: the data's export date).")
@click.option("--horizon", default=12, show_default=True, type=click.IntRange(1, 120), help="Months forecast.")
@click.option("--out", required=True, help="CSV to write (atomically): month, group, component, mean, p10, p50, p90.")
@click.option(
    "--model",
    "model_path",
    default=None,
    help="Saved renewal model folder for renewal probabilities (default: historical renewal rates).",
)
@click.option("--by", default=None, help="Account column to forecast by, e.g. segment.")
@click.option("--sims", default=1000, show_default=True, type=click.IntRange(min=1), help="Monte Carlo simulations.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same intervals).")
@click.option("--scenario", "scenario_name", default="base", show_default=True, help="Name of the scenario.")
@click.option(
    "--renewal-factor",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Multiply every renewal probability.",
)
@click.option("--slip", default=0, show_default=True, type=click.IntRange(min=0), help="Months every open deal slips.")
@click.option("--uplift", default=None, type=float, help="Price every renewal at ARR x (1 + UPLIFT).")
@results_options
@data_options
def forecast(
    directory,
    source,
    schema,
    layout,
    as_of,
    horizon,
    out,
    model_path,
    by,
    sims,
    seed,
    scenario_name,
    renewal_factor,
    slip,
    uplift,
    results_db,
    results_schema,
    encoding,
    date_format,
    currency,
) -> None:
    """Forecast monthly revenue by component, with P10/P50/P90, and write it to OUT.

    Exits 1 when the data holds no contracts and 9 when OUT cannot be written
    (under a file, permission denied, disk full).

    Example: renewforecast forecast data/demo --horizon 12 --by segment --out forecast.csv
    """
    from renewforecast.analyses.forecast import Scenario, revenue_forecast
    from renewforecast.analyses.scoring import neutralise_formula
    from renewforecast.atomic import atomic_write_text

    data = _data(directory, source, schema, layout)
    _results_url_ok(results_db)
    book = _load_or_exit(data, encoding, date_format, currency)
    _refuse_empty(book, data, "forecast")
    _check_writable(out, "the forecast", folder=False)
    cut = book.resolve_as_of(as_of)
    model = None if model_path is None else _load_model_or_exit(model_path)
    try:
        scenario = Scenario(scenario_name, renewal_factor=renewal_factor, pipeline_slip_months=slip, uplift=uplift)
        fc = revenue_forecast(
            book, cut, horizon_months=horizon, model=model, n_sims=sims, by=by, scenario=scenario, random_state=seed
        )
    except RenewForecastError as exc:
        _fail(str(exc), EXIT_INVALID_DATA)
    table = fc.frame.assign(
        month=fc.frame["month"].dt.strftime("%Y-%m-%d"), group=fc.frame["group"].map(neutralise_formula)
    )  # group names come from the data
    with _writing(out, "the forecast"):
        atomic_write_text(out, table.to_csv(index=False))
    total = fc.rows("total")
    last = total.iloc[-1]

    def money(amount: float) -> str:
        return format_money(amount, book.currency, compact=False)

    click.echo(
        f"Forecast {horizon} months from {cut.date()}: {money(total['mean'].sum())} expected in all; "
        f"{last['month']:%B %Y} {money(last['mean'])} (P10 {money(last['p10'])}, P90 {money(last['p90'])}). "
        f"Renewals: {fc.renewal.source}. Wrote {out}"
    )
    _exit_worst(
        _write_results(results_db, results_schema, {"forecast": fc.frame.assign(scenario=scenario_name)}, _run_id(cut))
    )


#: The tables ``accuracy --out`` writes, by file name (without extension).
_ACCURACY_TABLES = (
    "summary",
    "runs",
    "forecast",
    "forecast_summary",
    "scores",
    "scores_summary",
    "backtest",
    "revisions",
)


@main.command("accuracy")
@click.argument("reports_dir", type=click.Path(exists=True, file_okay=False))
@source_options
@click.option("--as-of", "as_of", default=None, help="Grading date, YYYY-MM-DD (default: the data's export date).")
@click.option(
    "--model",
    "model_path",
    default="models/renewal",
    show_default=True,
    help="Model folder whose manifests hold each model version's backtest figures (read if present).",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder to write every grade table into (atomically), one file each.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True, help="With --out."
)
@click.option("--no-rerun", is_flag=True, help="Do not re-run the forecasts (no model error / data change split).")
@data_options
def accuracy(
    reports_dir,
    directory,
    source,
    schema,
    layout,
    as_of,
    model_path,
    out,
    fmt,
    no_rerun,
    encoding,
    date_format,
    currency,
) -> None:
    """Grade every earlier report run in REPORTS_DIR against the data in DIRECTORY (or --source URL).

    Each published run keeps a record of what it said (record/ in its
    folder). Its forecast is graded for the months of its horizon that have
    ended by the grading date (error by months ahead and component, bias,
    P10-P90 coverage, pinball loss, each miss split into what the model got
    wrong and what the data changed since), and its renewal probabilities on
    the renewals decided since (Brier score, calibration error, AUC, overall,
    by risk band and by segment, beside the model's own backtest). Runs dated
    on or after the grading date are left out.

    Example: renewforecast accuracy reports data/demo --out accuracy/

    \b
    Exit codes: 0 graded (also when there is no earlier run yet); 1 invalid
    data or no contracts; 2 a bad parameter (REPORTS_DIR missing, a
    malformed --source URL or --as-of date); 9 --out cannot be written;
    10 or 12 the database refused the login or could not be reached.
    """
    from renewforecast.analyses.track_record import grade_runs
    from renewforecast.atomic import atomic_write_bytes, atomic_write_text

    data = _data(directory, source, schema, layout)
    if as_of is not None:
        try:
            dt.date.fromisoformat(as_of)
        except ValueError:
            _fail(f"--as-of {as_of!r} is not a date YYYY-MM-DD", EXIT_BAD_PARAMETER)
    book = _load_or_exit(data, encoding, date_format, currency)
    _refuse_empty(book, data, "grade runs against")
    if out is not None:
        _check_writable(out, "the grades", folder=True)
    try:
        track = grade_runs(
            reports_dir,
            book,
            as_of=as_of,
            models_dir=model_path if Path(model_path).is_dir() else None,
            rerun=not no_rerun,
        )
    except RenewForecastError as exc:
        _fail(str(exc), EXIT_INVALID_DATA)
    click.echo(track.note)
    summary = track.summary()
    values = zip(summary["measure"], summary["value"], strict=True)
    shown = summary.assign(value=[_grade_value(measure, value, book.currency) for measure, value in values])
    click.echo(shown[["label", "value"]].to_string(index=False, header=False))
    if len(track.forecast_summary):
        total = track.forecast_summary[track.forecast_summary["component"] == "total"]
        click.echo("\nForecast, whole book, by months ahead:")
        click.echo(
            total[["horizon", "runs", "mape", "bias", "coverage_p10_p90", "mean_model_error", "mean_data_change"]]
            .round(4)
            .to_string(index=False)
        )
    if len(track.scores_summary):
        pooled = track.scores_summary[track.scores_summary["run_id"] == "all"]
        click.echo("\nRenewal probabilities, every run pooled:")
        click.echo(
            pooled[["slice", "value", "contracts", "renewal_rate", "brier", "ece", "roc_auc"]]
            .round(4)
            .to_string(index=False)
        )
    if out is not None:
        folder = Path(out)
        with _writing(out, "the grades"):
            for name in _ACCURACY_TABLES:
                table = summary if name == "summary" else getattr(track, name)
                if fmt == "csv":
                    atomic_write_text(folder / f"{name}.csv", table.to_csv(index=False))
                else:
                    buf = io.BytesIO()
                    table.to_parquet(buf, index=False)
                    atomic_write_bytes(folder / f"{name}.parquet", buf.getvalue())
        click.echo(f"\nWrote {len(_ACCURACY_TABLES)} tables to {folder} ({fmt}).")


def _grade_value(measure: str, value: float, currency: str) -> str:
    """A grade as people read it: percentages, scores, counts or money."""
    if measure in ("runs_graded", "forecast_months", "scores_contracts"):
        kind = "count"
    elif measure.startswith(("forecast_mape", "forecast_bias", "forecast_coverage")):
        kind = "percent"
    elif measure.startswith(("scores_", "backtest_")):
        kind = "score"
    else:
        kind = "money"
    return format_value(value, kind, currency)


if __name__ == "__main__":
    main()
