"""Alerts that reach people: thresholds on a run's headline figures, sent as one digest by email or webhook.

A small TOML file (read with :mod:`tomllib`) lists the rules and the channels::

    [[rule]]
    name = "ARR at risk up 20% on the last run"
    figure = "renewal_risk.arr_at_risk"     # report.key, as in run.json's headlines
    up_by = "20%"                           # against the previous published run
    severity = "critical"

    [email]
    to = ["revops@example.com"]
    from = "renewforecast@example.com"
    host = "smtp.example.com"
    user = "renewforecast@example.com"
    password_env = "RENEWFORECAST_SMTP_PASSWORD"   # the variable's name; the password stays in the environment

    [webhook]
    url_env = "RENEWFORECAST_WEBHOOK_URL"          # a webhook URL is a secret: environment only

:func:`load_alerts` checks the whole file at once (unknown keys, conditions,
figures the run's reports do not publish, environment variables that are not
set) and raises one :class:`AlertConfigError` naming the file, each rule and
each problem. :func:`evaluate_alerts` is a pure function of a run's
``run.json`` and the previous published run's; :func:`send_digest` sends one
message per channel listing every alert that fired, or what failed in a run
that did not publish. Secrets (the SMTP password, the webhook URL) are read
from the environment when a message is sent and never written into a message,
a log line, an exception or ``run.json``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import http.client
import json
import logging
import math
import os
import re
import smtplib
import ssl
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from renewforecast.exceptions import RenewForecastError
from renewforecast.io.warehouse import WarehouseError, masked_url
from renewforecast.reports.catalogue import REPORTS, report_spec
from renewforecast.reports.formatting import format_money, format_value
from renewforecast.reports.headline import HEADLINE_FIGURES
from renewforecast.reports.index_page import REDACTED, redact_parameters

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertConfig",
    "AlertConfigError",
    "DeliveryResult",
    "EmailChannel",
    "Rule",
    "RunFailure",
    "WebhookChannel",
    "evaluate_alerts",
    "load_alerts",
    "send_digest",
]

logger = logging.getLogger(__name__)

#: Severities from least to most urgent; the digest lists the most urgent first.
SEVERITIES = ("info", "warning", "critical")

#: Each condition key of a rule and what it compares.
_CONDITIONS = ("above", "below", "equals", "up_by", "down_by", "change_by", "any_warnings")
_RULE_KEYS = frozenset({"name", "figure", "report", "severity", *_CONDITIONS})
_EMAIL_KEYS = frozenset(
    {"to", "from", "subject_prefix", "host", "port", "security", "user", "password_env", "timeout", "ca_file"}
)
_WEBHOOK_KEYS = frozenset({"url_env", "timeout", "retries", "max_wait", "ca_file"})
_DIGEST_KEYS = frozenset({"link"})
_TOP_KEYS = frozenset({"rule", "email", "webhook", "digest"})
# Keys that would put a secret into the file: refused with a pointer to the *_env key, never echoed.
_SECRET_KEYS = {"password": "password_env", "pass": "password_env", "url": "url_env", "webhook_url": "url_env"}
_SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_EMAIL_CSS = (
    "body{font-family:system-ui,sans-serif;color:#1f2933}table{border-collapse:collapse;margin:.6rem 0}"
    "th,td{border:1px solid #d5dbe1;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#f3f5f7}pre{margin:0;white-space:pre-wrap}"
)
#: Slack accepts at most 50 blocks in a message.
_MAX_BLOCKS = 50


# --------------------------------------------------------------------------- #
# The configuration
# --------------------------------------------------------------------------- #


class AlertConfigError(RenewForecastError):
    """The alerts file cannot be used; every problem is listed, each with the file and the rule.

    Attributes
    ----------
    path : str
        The alerts file.
    problems : list of str
        One sentence each, starting with the rule it concerns (``rule 2 'ARR up'``)
        or the table (``[email]``).
    """

    def __init__(self, path: str, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.path}: {n} problem{'s' if n != 1 else ''} in the alerts file:\n{lines}")


@dataclass(frozen=True)
class Rule:
    """One alert rule: a figure (or a report's warnings), a condition, a name and a severity.

    Parameters
    ----------
    name : str
    target : str
        ``report.key`` of a headline figure (``renewal_risk.arr_at_risk``); for
        ``any_warnings`` also a report name alone, or ``*`` for every report.
    condition : {"above", "below", "equals", "up_by", "down_by", "change_by", "any_warnings"}
        ``above``/``below``: the value is strictly above/below ``threshold``.
        ``equals``: the value is one of ``threshold`` (a tuple). ``up_by``,
        ``down_by``, ``change_by``: the value moved, against the previous
        published run, up/down/either way by at least ``threshold`` (a
        fraction of the previous value when ``relative``, else in the figure's
        own unit). ``any_warnings``: the figure or report carries warnings.
    threshold : float, tuple or None
    relative : bool
    severity : {"info", "warning", "critical"}

    Examples
    --------
    >>> Rule("ARR at risk up", "renewal_risk.arr_at_risk", "up_by", 0.2, relative=True).describe()
    'up by 20.0% or more on the previous run'
    """

    name: str
    target: str
    condition: str
    threshold: Any = None
    relative: bool = False
    severity: str = "warning"

    def describe(self) -> str:
        """The condition in words, as the digest states it."""
        t = self.threshold
        amount = format_value(t, "percent") if self.relative else _plain(t)
        if self.condition in ("above", "below"):
            return f"{self.condition} {_plain(t)}"
        if self.condition == "equals":
            return "one of " + ", ".join(_plain(v) for v in t)
        if self.condition == "any_warnings":
            return "any warnings"
        way = {"up_by": "up", "down_by": "down", "change_by": "changed"}[self.condition]
        return f"{way} by {amount} or more{' (either way)' if way == 'changed' else ''} on the previous run"


@dataclass(frozen=True)
class EmailChannel:
    """Where and how the digest is mailed. The password is read from ``password_env`` when sending."""

    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    password_env: str | None = None
    subject_prefix: str = "[renewforecast]"
    timeout: float = 30.0
    ca_file: str | None = None


@dataclass(frozen=True)
class WebhookChannel:
    """A Slack-compatible webhook; its URL is read from ``url_env`` when sending, never stored."""

    url_env: str
    timeout: float = 10.0
    retries: int = 2
    max_wait: float = 60.0
    ca_file: str | None = None


@dataclass(frozen=True)
class AlertConfig:
    """A checked alerts file: its rules and channels (names of secrets, never their values).

    Build it with :func:`load_alerts`.
    """

    path: str
    rules: tuple[Rule, ...]
    email: EmailChannel | None = None
    webhook: WebhookChannel | None = None
    link: str | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured channels, in sending order."""
        return tuple(name for name, ch in (("email", self.email), ("webhook", self.webhook)) if ch is not None)


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    return repr(value) if isinstance(value, str) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_alerts(
    path: str | os.PathLike[str],
    *,
    reports: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AlertConfig:
    """Read and check an alerts file; every problem is reported at once.

    Parameters
    ----------
    path : path-like
        The TOML file.
    reports : iterable of str, optional
        The report notebooks the run will run (stems such as ``NN_name``,
        or paths); each rule's figure must be one of the headlines they publish
        (see :data:`renewforecast.reports.catalogue.REPORTS`). A notebook the
        catalogue does not know may publish anything, so rules on headlines no
        known report publishes are then accepted. Default: the shipped reports.
    environ : mapping, optional
        Where the secrets' variables are looked for (default :data:`os.environ`).
        Only whether they are set is checked; their values are read when sending.

    Returns
    -------
    AlertConfig

    Raises
    ------
    AlertConfigError
        Listing, for the file, every unknown key, bad condition or value, figure
        the run's reports do not publish, and environment variable that is not
        set. No value of a secret is ever quoted.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "alerts.toml").write_text('''
    ... [[rule]]
    ... name = "rows set aside"
    ... figure = "data_quality.set_aside"
    ... above = 0
    ... [webhook]
    ... url_env = "RF_HOOK"
    ... ''')
    >>> config = load_alerts(folder / "alerts.toml", environ={"RF_HOOK": "https://hooks.example.com/T/B/x"})
    >>> config.rules[0].condition, config.rules[0].threshold, config.channels
    ('above', 0.0, ('webhook',))
    >>> _ = (folder / "bad.toml").write_text('''
    ... [[rule]]
    ... name = "typo"
    ... figure = "renewal_risk.arr_at_rsk"
    ... abov = 5
    ... ''')
    >>> load_alerts(folder / "bad.toml", environ={})
    Traceback (most recent call last):
    ...
    renewforecast.reports.alerts.AlertConfigError: .../bad.toml: 4 problems in the alerts file:
      - rule 1 'typo': unknown key 'abov' (known: above, any_warnings, below, ...)
      - rule 1 'typo': no condition: give one of above, below, equals, up_by, down_by, change_by, any_warnings
      - rule 1 'typo': figure 'renewal_risk.arr_at_rsk': renewal_risk has no figure 'arr_at_rsk' (it has ...)
      - no channel: add an [email] or a [webhook] table, or nobody is told
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlertConfigError(str(path), ["the file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertConfigError(str(path), [f"cannot be read ({type(exc).__name__})"]) from None
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message gives the line and column, never the text of the line.
        raise AlertConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(f"unknown table or key '{key}' (known: {', '.join(sorted(_TOP_KEYS))})")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        problems.append("'rule' must be an array of tables: write each rule under [[rule]]")
        raw_rules = []
    if not raw_rules:
        problems.append("no rule: add at least one [[rule]]")
    published = _published_figures(reports)
    rules = []
    for number, raw in enumerate(raw_rules, start=1):
        rule = _rule(number, raw, published, problems)
        if rule is not None:
            rules.append(rule)
    names = [r.name for r in rules]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"rule name {name!r} is used more than once; the digest tells rules apart by name")
    email_channel = _email(data["email"], environ, problems) if "email" in data else None
    webhook = _webhook(data["webhook"], environ, problems) if "webhook" in data else None
    if "email" not in data and "webhook" not in data:
        problems.append("no channel: add an [email] or a [webhook] table, or nobody is told")
    link = _digest(data.get("digest", {}), problems)
    if problems:
        raise AlertConfigError(str(path), problems)
    return AlertConfig(str(path), tuple(rules), email_channel, webhook, link)


@dataclass(frozen=True)
class _Published:
    figures: dict[str, tuple[str, ...]]  # headline -> its keys, for the headlines the run publishes
    left_out: dict[str, str]  # headline -> the shipped notebook that publishes it, not in this run
    open_ended: bool  # a notebook of the run may publish headlines nobody declared


def _published_figures(reports: Iterable[str] | None) -> _Published:
    specs = list(REPORTS) if reports is None else [report_spec(str(r)) for r in reports]
    claimed = {spec.headline for spec in REPORTS if spec.headline}
    # A headline no notebook claims is one the run adds itself: every run has it.
    figures = {name: keys for name, keys in HEADLINE_FIGURES.items() if name not in claimed}
    for spec in specs:
        if spec.headline in HEADLINE_FIGURES:
            figures[spec.headline] = HEADLINE_FIGURES[spec.headline]
    chosen = {spec.name for spec in specs}
    left_out = {
        s.headline: s.name for s in REPORTS if s.headline and s.name not in chosen and s.headline not in figures
    }
    open_ended = any(spec.headline not in HEADLINE_FIGURES for spec in specs)
    return _Published(figures, left_out, open_ended)


def _rule(number: int, raw: dict[str, Any], published: _Published, problems: list[str]) -> Rule | None:
    name = raw.get("name")
    where = f"rule {number}" + (f" {name!r}" if isinstance(name, str) and name.strip() else "")
    before = len(problems)

    def bad(message: str) -> None:
        problems.append(f"{where}: {message}")

    for key in sorted(set(raw) - _RULE_KEYS):
        bad(f"unknown key '{key}' (known: {', '.join(sorted(_RULE_KEYS))})")
    if not isinstance(name, str) or not name.strip():
        bad('needs a name (name = "..."), which the digest shows')
    elif any(c in name for c in "\r\n"):
        bad("the name must be one line")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        bad(f"severity must be one of {', '.join(SEVERITIES)}, not {_plain(severity)}")
    given = [c for c in _CONDITIONS if c in raw]
    if not given:
        bad(f"no condition: give one of {', '.join(_CONDITIONS)}")
    elif len(given) > 1:
        bad(f"one condition per rule, not {' and '.join(given)} (write two rules)")
    condition = given[0] if given else None
    threshold: Any = None
    relative = False
    if condition in ("above", "below"):
        value = raw[condition]
        if _is_number(value):
            threshold = float(value)
        else:
            bad(f"{condition} must be a number in the figure's unit (a percentage as a fraction, 0.6 for 60%)")
    elif condition == "equals":
        values = raw["equals"] if isinstance(raw["equals"], list) else [raw["equals"]]
        if not values or not all(isinstance(v, str) or _is_number(v) for v in values):
            bad("equals must be a text or a number, or a list of them")
        threshold = tuple(float(v) if _is_number(v) else v for v in values)
    elif condition in ("up_by", "down_by", "change_by"):
        value = raw[condition]
        match = _PERCENT.match(value) if isinstance(value, str) else None
        if match:
            threshold, relative = float(match.group(1)) / 100, True
        elif _is_number(value):
            threshold = float(value)
        else:
            bad(f'{condition} must be a percentage of the previous value ("20%") or an amount in the figure\'s unit')
        if threshold is not None and not threshold > 0:
            bad(f"{condition} must be more than 0")
    elif condition == "any_warnings" and raw["any_warnings"] is not True:
        bad("any_warnings takes true (leave the rule out otherwise)")
    target = _target(raw, condition, published, bad)
    if len(problems) > before or condition is None or target is None:
        return None
    return Rule(name.strip(), target, condition, threshold, relative, severity)


def _target(raw: dict[str, Any], condition: str | None, published: _Published, bad) -> str | None:
    figure, report = raw.get("figure"), raw.get("report")
    if figure is not None and report is not None:
        bad("give figure or report, not both")
        return None
    if report is not None:
        if condition != "any_warnings":
            bad('report goes with any_warnings; a threshold watches one figure (figure = "report.key")')
            return None
        if not isinstance(report, str) or not report:
            bad('report must be a report name such as "revenue_forecast", or "*" for every report')
            return None
        if report != "*":
            _check_report(report, f"report {report!r}", published, bad)
        return report
    if not isinstance(figure, str) or "." not in figure.strip(".") or " " in figure:
        bad('needs figure = "report.key", as in run.json\'s headlines (e.g. "renewal_risk.arr_at_risk")')
        return None
    headline, key = figure.split(".", 1)
    if _check_report(headline, f"figure {figure!r}", published, bad):
        keys = published.figures.get(headline)
        if keys is not None and key not in keys:
            bad(f"figure {figure!r}: {headline} has no figure {key!r} (it has {', '.join(keys)})")
    return figure


def _check_report(headline: str, said: str, published: _Published, bad) -> bool:
    """Whether the run publishes ``headline`` (or may: a notebook nobody declared); says why not."""
    if headline in published.figures or published.open_ended:
        return True
    if headline in published.left_out:
        bad(
            f"{said}: {headline} comes from the report {published.left_out[headline]}, which this run leaves out "
            "(--notebook)"
        )
    else:
        bad(f"{said}: no report of this run publishes {headline!r} (they publish {', '.join(published.figures)})")
    return False


def _table(raw: Any, name: str, allowed: frozenset[str], problems: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.append(f"[{name}] must be a table")
        return {}
    for key in sorted(set(raw) - allowed):
        if key in _SECRET_KEYS:
            # Never quote the value: it is the secret itself.
            problems.append(
                f"[{name}] {key}: secrets do not go in the file; put it in an environment variable and give "
                f"that variable's name as {_SECRET_KEYS[key]}"
            )
        else:
            problems.append(f"[{name}] unknown key '{key}' (known: {', '.join(sorted(allowed))})")
    return raw


def _env_name(raw: dict[str, Any], key: str, table: str, environ: Mapping[str, str], problems: list[str]) -> str | None:
    name = raw.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        # Not quoted back: a secret pasted here by mistake must not reach a log.
        problems.append(
            f"[{table}] {key} must name an environment variable (capitals, digits and _, e.g. "
            f"RENEWFORECAST_{'SMTP_PASSWORD' if key == 'password_env' else 'WEBHOOK_URL'}); the secret itself "
            "goes in that variable, never in the file"
        )
        return None
    if not environ.get(name):
        problems.append(f"[{table}] {key}: the environment variable {name} is not set (or empty)")
    return name


def _positive(raw: dict[str, Any], key: str, default: float, table: str, problems: list[str]) -> float:
    value = raw.get(key, default)
    if not _is_number(value) or not value > 0:
        problems.append(f"[{table}] {key} must be a number of seconds above 0")
        return default
    return float(value)


def _ca_file(raw: dict[str, Any], table: str, problems: list[str]) -> str | None:
    value = raw.get("ca_file")
    if value is None:
        return None
    if not isinstance(value, str) or not Path(value).is_file():
        problems.append(f"[{table}] ca_file {_plain(value)} is not a file (a PEM bundle of the CAs to trust)")
        return None
    return value


def _address(value: Any) -> bool:
    return isinstance(value, str) and "@" in value and not any(c in value for c in "\r\n,;<>")


def _email(raw: Any, environ: Mapping[str, str], problems: list[str]) -> EmailChannel | None:
    before = len(problems)
    raw = _table(raw, "email", _EMAIL_KEYS, problems)
    to = raw.get("to")
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to or not all(_address(a) for a in to):
        problems.append('[email] to must be an address or a list of them ("revops@example.com")')
    sender = raw.get("from")
    if not _address(sender):
        problems.append('[email] from must be the sender\'s address ("renewforecast@example.com")')
    host = raw.get("host")
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        problems.append('[email] host must be the SMTP server\'s name ("smtp.example.com")')
    security = raw.get("security", "starttls")
    if security not in _SECURITY_PORTS:
        problems.append(f"[email] security must be starttls, ssl or none, not {_plain(security)}")
        security = "starttls"
    port = raw.get("port", _SECURITY_PORTS[security])
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append("[email] port must be a whole number from 1 to 65535")
    user = raw.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        problems.append("[email] user must be the SMTP login's name")
    password_env = _env_name(raw, "password_env", "email", environ, problems)
    if (user is None) != (raw.get("password_env") is None):
        problems.append("[email] user and password_env go together (a login needs both)")
    if user is not None and security == "none":
        problems.append('[email] a login needs security = "starttls" or "ssl": a password is never sent in clear')
    prefix = raw.get("subject_prefix", "[renewforecast]")
    if not isinstance(prefix, str) or any(c in prefix for c in "\r\n"):
        problems.append("[email] subject_prefix must be one line of text")
    timeout = _positive(raw, "timeout", 30.0, "email", problems)
    ca_file = _ca_file(raw, "email", problems)
    if len(problems) > before:
        return None
    return EmailChannel(tuple(to), sender, host, port, security, user, password_env, prefix, timeout, ca_file)


def _webhook(raw: Any, environ: Mapping[str, str], problems: list[str]) -> WebhookChannel | None:
    before = len(problems)
    raw = _table(raw, "webhook", _WEBHOOK_KEYS, problems)
    if "url_env" not in raw:
        problems.append("[webhook] needs url_env, the name of the environment variable holding the webhook URL")
    url_env = _env_name(raw, "url_env", "webhook", environ, problems)
    if url_env is not None and environ.get(url_env):
        problem = _url_problem(environ[url_env])
        if problem:
            problems.append(f"[webhook] url_env: {url_env} {problem}")
    timeout = _positive(raw, "timeout", 10.0, "webhook", problems)
    retries = raw.get("retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 5:
        problems.append("[webhook] retries must be a whole number from 0 to 5")
    max_wait = _positive(raw, "max_wait", 60.0, "webhook", problems)
    ca_file = _ca_file(raw, "webhook", problems)
    if len(problems) > before:
        return None
    return WebhookChannel(url_env, timeout, retries, max_wait, ca_file)


def _url_problem(url: str) -> str | None:
    """Why a webhook URL cannot be used, without quoting it (it carries the webhook's token)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return "does not hold a URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in _LOOPBACK:
        return None  # a relay on this machine
    if parts.scheme in ("http", "https") and host:
        return "is an http:// URL: the webhook's token would travel in clear; use its https:// URL"
    return "does not hold an https:// URL"


def _digest(raw: Any, problems: list[str]) -> str | None:
    raw = _table(raw, "digest", _DIGEST_KEYS, problems)
    link = raw.get("link")
    if link is None:
        return None
    if not isinstance(link, str) or urlsplit(link).scheme not in ("http", "https"):
        problems.append("[digest] link must be the http(s) address at which the runs' folder (--out) is served")
        return None
    return link


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Alert:
    """One rule that fired on a run.

    Parameters
    ----------
    rule, severity : str
        The rule's name and severity.
    figure : str
        ``report.key`` (or the report, for warnings).
    label : str
        The figure's label in the report.
    kind : str
        How the value is formatted (``money``, ``percent``, ``count`` ...).
    value : float, str or None
        This run's value (the number of warnings, for ``any_warnings``);
        None when the figure is not in the run.
    previous : float, str or None
        The previous published run's value, for rules that compare.
    previous_run : str or None
        That run's id.
    threshold : str
        The condition, in words.
    message : str
        One sentence for people, with the values formatted.
    warnings : tuple of str
        The warnings, for ``any_warnings``.

    Examples
    --------
    >>> a = Alert("rows set aside", "warning", "data_quality.set_aside", "Rows set aside", "count", 3, None,
    ...           None, "above 0", "Rows set aside is 3 (above 0).")
    >>> Alert.from_dict(a.to_dict()) == a
    True
    """

    rule: str
    severity: str
    figure: str
    label: str
    kind: str
    value: Any
    previous: Any
    previous_run: str | None
    threshold: str
    message: str
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as ``run.json`` records it."""
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an Alert from :meth:`to_dict` (a published run's ``run.json``)."""
        known = {f.name for f in fields(cls)} - {"warnings"}  # a later version may record more
        return cls(**{k: v for k, v in data.items() if k in known}, warnings=tuple(data.get("warnings") or ()))


def _headlines(meta: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A run's headlines by headline name (run.json keys them by notebook)."""
    out = {}
    for stem, headline in ((meta or {}).get("headlines") or {}).items():
        if isinstance(headline, dict):
            out[str(headline.get("report") or stem)] = headline
    return out


def _figure(headlines: dict[str, dict[str, Any]], target: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    report, _, key = target.partition(".")
    headline = headlines.get(report)
    if headline is None:
        return None
    for figure in headline.get("figures") or []:
        if isinstance(figure, dict) and figure.get("key") == key:
            return figure, headline
    return None


def _warning_text(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("message") or item.get("text") or json.dumps(item, sort_keys=True, default=str))
    return str(item)


def _fmt(value: Any, kind: str, headline: Mapping[str, Any]) -> str:
    if _is_number(value) or value is None:
        currency = (headline.get("provenance") or {}).get("currency", "USD")
        if kind == "money" and value is not None:
            return format_money(value, currency, compact=False)  # an alert is about the exact amount
        return format_value(value, kind if kind in _KINDS else "text", currency)
    return str(value)


_KINDS = ("money", "percent", "ratio", "count", "months", "text")


def _at_least(amount: float, threshold: float) -> bool:
    # "Up 20%" from 1.1M to 1.32M is 0.2000000000000001 or 0.19999999999999996 in floating point.
    return amount >= threshold or math.isclose(amount, threshold, rel_tol=1e-9)


def _relative(now: float, before: float) -> float:
    if before:
        return (now - before) / abs(before)
    return 0.0 if now == before else math.copysign(math.inf, now - before)


def evaluate_alerts(
    config: AlertConfig, run_meta: Mapping[str, Any], previous_meta: Mapping[str, Any] | None = None
) -> list[Alert]:
    """The rules of ``config`` that fire on a run, most severe first (a pure function).

    Parameters
    ----------
    config : AlertConfig
    run_meta : mapping
        The run's ``run.json`` content; its ``headlines`` hold the figures.
    previous_meta : mapping, optional
        The previous published run's ``run.json``; rules that compare
        (``up_by``, ``down_by``, ``change_by``) do not fire without it, nor
        when either value is missing or not a number.

    Returns
    -------
    list of Alert
        In order of severity (critical first), then of the rules in the file.
        A rule whose figure is absent from the run fires with value None, so
        that a renamed figure is noticed instead of silently never firing; a
        figure whose value is not defined (None) does not fire.

    Examples
    --------
    >>> def run(run_id, at_risk):
    ...     return {"run_id": run_id, "headlines": {"risk": {"report": "renewal_risk",
    ...             "figures": [{"key": "arr_at_risk", "label": "ARR at risk", "value": at_risk,
    ...                          "kind": "money"}], "provenance": {"currency": "USD"}}}}
    >>> config = AlertConfig("alerts.toml", (Rule("ARR at risk up", "renewal_risk.arr_at_risk", "up_by", 0.2,
    ...                                           relative=True),))
    >>> [a.message for a in evaluate_alerts(config, run("r2", 1_250_000.0), run("r1", 1_000_000.0))]
    ['ARR at risk is $1,250,000, up 25.0% on $1,000,000 in run r1 (rule: up by 20.0% or more on the previous run).']
    >>> evaluate_alerts(config, run("r2", 1_150_000.0), run("r1", 1_000_000.0))
    []
    """
    current = _headlines(run_meta)
    before = _headlines(previous_meta)
    previous_run = (previous_meta or {}).get("run_id")
    fired = []
    for rule in config.rules:
        alert = _evaluate(rule, current, before, previous_run)
        if alert is not None:
            fired.append(alert)
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(fired, key=lambda a: rank.get(a.severity, len(rank)))  # stable: file order within a severity


def _evaluate(
    rule: Rule, current: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]], previous_run: str | None
) -> Alert | None:
    condition = rule.describe()
    if rule.condition == "any_warnings" and "." not in rule.target:
        chosen = current.values() if rule.target == "*" else [current.get(rule.target) or {}]
        found = [
            _warning_text(w)
            for headline in chosen
            for w in [*(headline.get("warnings") or []), *_figure_warnings(headline)]
        ]
        if not found:
            return None
        shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        where = "the reports" if rule.target == "*" else rule.target
        return Alert(
            rule.name, rule.severity, rule.target, where, "count", len(found), None, None, condition,
            f"{len(found)} warning(s) on {where}: {shown}.", tuple(found),
        )  # fmt: skip
    found_now = _figure(current, rule.target)
    if found_now is None:
        return Alert(
            rule.name, rule.severity, rule.target, rule.target, "text", None, None, None, condition,
            f"{rule.target} is not in this run's headlines, so the rule could not be checked "
            "(a renamed figure, or a report that published no headline).",
        )  # fmt: skip
    figure, headline = found_now
    label = str(figure.get("label") or rule.target)
    kind = str(figure.get("kind") or "text")
    value = figure.get("value")
    shown = _fmt(value, kind, headline)
    if rule.condition == "any_warnings":
        texts = tuple(_warning_text(w) for w in figure.get("warnings") or [])
        if not texts:
            return None
        return Alert(
            rule.name, rule.severity, rule.target, label, kind, value, None, None, condition,
            f"{label} ({shown}) carries {len(texts)} warning(s): {'; '.join(texts[:5])}.", texts,
        )  # fmt: skip
    if rule.condition == "equals":
        if value is None or isinstance(value, bool) or value not in rule.threshold:
            return None
        return Alert(
            rule.name, rule.severity, rule.target, label, kind, value, None, None, condition,
            f"{label} is {shown} (rule: {condition}).",
        )  # fmt: skip
    if not _is_number(value):
        return None  # not defined in this run (e.g. NRR in a book's first year)
    if rule.condition in ("above", "below"):
        hit = value > rule.threshold if rule.condition == "above" else value < rule.threshold
        if not hit:
            return None
        return Alert(
            rule.name, rule.severity, rule.target, label, kind, value, None, None, condition,
            f"{label} is {shown} (rule: {condition}).",
        )  # fmt: skip
    found_before = _figure(before, rule.target)
    previous = None if found_before is None else found_before[0].get("value")
    if not _is_number(previous):
        return None  # nothing to compare with: a first run, or a figure not defined then
    moved = _relative(value, previous) if rule.relative else value - previous
    hit = {
        "up_by": _at_least(moved, rule.threshold),
        "down_by": _at_least(-moved, rule.threshold),
        "change_by": _at_least(abs(moved), rule.threshold),
    }[rule.condition]
    if not hit:
        return None
    direction = "up" if moved > 0 else "down"
    amount = (
        ("by an infinite share of 0" if math.isinf(moved) else format_value(abs(moved), "percent"))
        if rule.relative
        else _fmt(abs(moved), kind, headline)
    )
    return Alert(
        rule.name, rule.severity, rule.target, label, kind, value, previous, previous_run, condition,
        f"{label} is {shown}, {direction} {amount} on {_fmt(previous, kind, headline)} in run {previous_run} "
        f"(rule: {condition}).",
    )  # fmt: skip


def _figure_warnings(headline: Mapping[str, Any]) -> list[Any]:
    return [w for f in headline.get("figures") or [] if isinstance(f, dict) for w in f.get("warnings") or []]


# --------------------------------------------------------------------------- #
# The digest
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RunFailure:
    """What failed in a run that published nothing, as the failure digest says it.

    Parameters
    ----------
    exit_code : int
        The exit code of the run (see the scheduler guide).
    message : str
        The one-paragraph error the command printed.
    partial_output : str, optional
        Where the partial notebooks were kept (``reports/failed/<run id>``).

    Examples
    --------
    >>> from renewforecast.exceptions import ReportRunError
    >>> RunFailure.from_error(ReportRunError("a cell raised", exit_code=3, failed_dir="reports/failed/r1"))
    RunFailure(exit_code=3, message='a cell raised', partial_output='reports/failed/r1')
    """

    exit_code: int
    message: str
    partial_output: str | None = None

    @classmethod
    def from_error(cls, error: BaseException, exit_code: int | None = None) -> RunFailure:
        """From an exception, e.g. a :class:`~renewforecast.exceptions.ReportRunError` (its code and folder)."""
        code = exit_code if exit_code is not None else getattr(error, "exit_code", 1)
        return cls(int(code), str(error), getattr(error, "failed_dir", None))


@dataclass(frozen=True)
class DeliveryResult:
    """How the digest went: the channels it reached, and why others failed (no secret in the reasons).

    Examples
    --------
    >>> DeliveryResult(sent=("email",), failed={"webhook": "answered 500"}).ok
    False
    """

    sent: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every configured channel was reached (True too when there was nothing to send)."""
        return not self.failed


@dataclass(frozen=True)
class _Digest:
    subject: str
    text: str
    html: str
    slack: dict[str, Any]


def _run_link(config: AlertConfig, run_meta: Mapping[str, Any], run_folder: str | None) -> str | None:
    run_id = run_meta.get("run_id")
    if config.link and run_id:
        return f"{config.link.rstrip('/')}/{quote(str(run_id))}/index.html"
    return str(Path(run_folder) / "index.html") if run_folder else None


def _shown_source(source: Any) -> str | None:
    if source is None:
        return None
    text = str(source)
    if "://" not in text:
        return text
    try:
        return masked_url(text)  # a database URL as messages show it: never its password
    except WarehouseError:
        return REDACTED


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text[:2900]}  # Slack refuses a text object over 3,000 characters


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads <...> as links and mentions: data must not make one.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render(
    alerts: list[Alert], config: AlertConfig, run_meta: Mapping[str, Any], link: str | None, failure: RunFailure | None
) -> _Digest:
    e = html.escape
    run_id = run_meta.get("run_id") or "(no run id)"
    as_of = run_meta.get("as_of") or "(not resolved)"
    facts = [("Run", str(run_id)), ("As of", str(as_of))]
    source = _shown_source(run_meta.get("source"))
    if source:
        facts.append(("Data", source))
    parameters = redact_parameters(dict(run_meta.get("parameters") or {}))
    if failure is not None:
        where = failure.partial_output or "none (no notebook had started)"
        subject = f"report run FAILED (exit {failure.exit_code}), as of {as_of}"
        lead = (
            f"The report run failed with exit code {failure.exit_code}; nothing was published and the previous "
            "run stays the latest."
        )
        items = [("Error", failure.message), ("Partial output", where)]
        if parameters:
            items.append(("Parameters", json.dumps(parameters, sort_keys=True, default=str)))
        text_lines = [lead, "", *(f"{k}: {v}" for k, v in items)]
        html_items = "".join(f"<tr><th>{e(k)}</th><td><pre>{e(v)}</pre></td></tr>" for k, v in items)
        html_body = f"<p>{e(lead)}</p><table>{html_items}</table>"
        blocks_alerts = [
            {"type": "section", "text": _mrkdwn(f"*{_slack_escape(k)}*: {_slack_escape(v)}")} for k, v in items
        ]
    else:
        n = len(alerts)
        worst = alerts[0].severity if alerts else "info"
        subject = f"{n} alert{'s' if n != 1 else ''} ({worst}): {alerts[0].rule}" + (
            f" and {n - 1} more" if n > 1 else ""
        )
        subject += f", as of {as_of}"
        lead = f"{n} alert rule{'s' if n != 1 else ''} fired on report run {run_id} (as of {as_of})."
        text_lines = [lead, ""]
        rows = []
        blocks_alerts = []
        for a in alerts:
            previous = "" if a.previous is None else f"; previous {_plain(a.previous)} (run {a.previous_run})"
            text_lines.append(f"[{a.severity.upper()}] {a.rule}: {a.message}")
            text_lines.append(f"    figure {a.figure} = {_plain(a.value)}{previous}; threshold: {a.threshold}")
            rows.append(
                f"<tr><td>{e(a.severity)}</td><td>{e(a.rule)}</td><td>{e(a.label)}<br><code>{e(a.figure)}</code></td>"
                f"<td>{e(_plain(a.value))}</td><td>{e('' if a.previous is None else _plain(a.previous))}</td>"
                f"<td>{e(a.threshold)}</td><td>{e(a.message)}</td></tr>"
            )
            blocks_alerts.append(
                {"type": "section", "text": _mrkdwn(_slack_escape(f"*[{a.severity}] {a.rule}*\n{a.message}"))}
            )
        header = "".join(
            f"<th>{h}</th>" for h in ("Severity", "Rule", "Figure", "Value", "Previous", "Threshold", "What")
        )
        html_body = f"<p>{e(lead)}</p><table><tr>{header}</tr>{''.join(rows)}</table>"
    subject = f"{config.email.subject_prefix} {subject}" if config.email and config.email.subject_prefix else subject
    if link:
        text_lines += ["", f"The run: {link}"]
        html_body += f'<p>The run: <a href="{e(link)}">{e(link)}</a></p>'
    text_lines += ["", *(f"{k}: {v}" for k, v in facts)]
    html_body += "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts) + "</table>"
    html_page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(subject)}</title><style>{_EMAIL_CSS}</style></head><body>{html_body}</body></html>"
    )
    if len(blocks_alerts) > _MAX_BLOCKS - 3:
        rest = len(blocks_alerts) - (_MAX_BLOCKS - 4)
        more = f"... and {rest} more (see the email or run.json)"
        blocks_alerts = [
            *blocks_alerts[: _MAX_BLOCKS - 4],
            {"type": "section", "text": _mrkdwn(more)},
        ]
    # The link is ours, not data, so it alone stays a Slack link.
    context = _slack_escape(" · ".join(f"{k}: {v}" for k, v in facts))[:2800] + (
        f" · <{link}|open the run>" if link else ""
    )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
        {"type": "section", "text": _mrkdwn(_slack_escape(lead))},
        *blocks_alerts,
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    return _Digest(subject, "\n".join(text_lines) + "\n", html_page, {"text": subject, "blocks": blocks})


def _secrets(config: AlertConfig, environ: Mapping[str, str]) -> list[str]:
    found = []
    if config.email and config.email.password_env:
        found.append(environ.get(config.email.password_env) or "")
    if config.webhook:
        url = environ.get(config.webhook.url_env) or ""
        found.append(url)
        try:
            parts = urlsplit(url)
            found += [parts.path, parts.query, parts.password or ""]
        except ValueError:
            pass
    # Short strings ("/", "") would scrub ordinary text; a real secret is longer.
    return sorted({s for s in found if len(s) >= 6}, key=len, reverse=True)


def _scrub(value: Any, secrets: list[str]) -> Any:
    """``value`` (text, or JSON-ready lists and dicts of it) with every secret replaced by ``(hidden)``."""
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
    return value


def send_digest(
    alerts: Iterable[Alert],
    config: AlertConfig,
    *,
    run_meta: Mapping[str, Any],
    failure: RunFailure | None = None,
    run_folder: str | os.PathLike[str] | None = None,
) -> DeliveryResult:
    """Send one message per channel listing every fired alert, or the run's failure.

    Parameters
    ----------
    alerts : iterable of Alert
        What fired (:func:`evaluate_alerts`, or a published run's ``run.json``
        ``alerts`` through :meth:`Alert.from_dict`). Nothing is sent when it is
        empty and there is no ``failure``.
    config : AlertConfig
    run_meta : mapping
        The run's ``run.json`` (or, for a failed run, what is known: ``run_id``,
        ``as_of``, ``source``, ``parameters``). Parameters that look like
        secrets are shown as ``(hidden)`` and a database source without its
        password.
    failure : RunFailure, optional
        The run failed: the digest says what failed, with its exit code and
        where the partial output is.
    run_folder : path-like, optional
        The published run's folder, linked when the file gives no ``[digest] link``.

    Returns
    -------
    DeliveryResult
        A channel that failed is listed with the reason (and logged at ERROR);
        the other channels are still tried. Nothing is raised for a delivery
        failure.

    Notes
    -----
    Email: a plain-text part and an HTML part (every value escaped), over
    STARTTLS (default), implicit TLS (``security = "ssl"``) or, without a
    login, plain SMTP. Webhook: ``{"text": ..., "blocks": [...]}`` posted as
    JSON; 429 and 5xx answers are retried ``retries`` times, waiting what
    ``Retry-After`` says (at most ``max_wait`` seconds) or 1, 2, 4 ... seconds.
    Redirects are not followed (the token would go to another host).

    Examples
    --------
    >>> config = AlertConfig("alerts.toml", (), webhook=WebhookChannel("RF_UNSET_HOOK"))
    >>> send_digest([], config, run_meta={"run_id": "r1"})  # nothing fired: nothing is sent
    DeliveryResult(sent=(), failed={}, attempts={})
    """
    alerts = list(alerts)
    if not alerts and failure is None:
        return DeliveryResult()
    environ = os.environ
    secrets = _secrets(config, environ)
    link = _run_link(config, run_meta, None if run_folder is None else str(run_folder))
    digest = _render(alerts, config, run_meta, link, failure)
    digest = _Digest(*(_scrub(part, secrets) for part in (digest.subject, digest.text, digest.html, digest.slack)))
    sent, failed, attempts = [], {}, {}
    what = "failure digest" if failure is not None else f"digest of {len(alerts)} alert(s)"
    for channel in config.channels:
        try:
            if channel == "email":
                _send_email(config.email, digest, environ)
                attempts["email"] = 1
            else:
                attempts["webhook"] = _post_webhook(config.webhook, digest.slack, environ)
        except _NotDelivered as exc:
            reason = _scrub(str(exc), secrets)
            failed[channel] = reason
            attempts[channel] = exc.attempts
            logger.error("Alert %s not delivered by %s: %s", what, channel, reason)
        except Exception as exc:  # a published run must never be failed by its digest
            # Only the type: a library's message may quote the webhook URL.
            failed[channel] = f"unexpected {type(exc).__name__} while sending"
            attempts.setdefault(channel, 1)
            logger.error("Alert %s not delivered by %s: unexpected %s", what, channel, type(exc).__name__)
        else:
            sent.append(channel)
            logger.info("Alert %s sent by %s", what, channel)
    return DeliveryResult(tuple(sent), failed, attempts)


class _NotDelivered(Exception):
    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def _send_email(channel: EmailChannel, digest: _Digest, environ: Mapping[str, str]) -> None:
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=channel.sender.rpartition("@")[2] or None)
    message.set_content(digest.text)
    message.add_alternative(digest.html, subtype="html")
    server = f"SMTP server {channel.host}:{channel.port}"
    password = None
    if channel.user is not None:
        password = environ.get(channel.password_env or "")
        if not password:
            raise _NotDelivered(f"the environment variable {channel.password_env} is not set (or empty)")
    try:
        context = _tls_context(channel.ca_file)
        if channel.security == "ssl":
            smtp = smtplib.SMTP_SSL(channel.host, channel.port, timeout=channel.timeout, context=context)
        else:
            smtp = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout)
        with smtp:
            smtp.ehlo()
            if channel.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if channel.user is not None:
                smtp.login(channel.user, password)
            refused = smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise _NotDelivered(f"the {server} refused the login of {channel.user} ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise _NotDelivered(f"the {server} refused every recipient ({', '.join(exc.recipients)})") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise _NotDelivered(f"the {server} does not offer what the file asks: {exc}") from None
    except smtplib.SMTPResponseException as exc:
        raise _NotDelivered(f"the {server} answered {exc.smtp_code}: {_reply(exc.smtp_error)}") from None
    except ssl.SSLError as exc:
        raise _NotDelivered(f"TLS with the {server} failed ({exc.reason or exc}); ca_file names the CA") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise _NotDelivered(f"could not reach the {server} ({type(exc).__name__}: {exc})") from None
    if refused:
        raise _NotDelivered(f"the {server} refused {', '.join(sorted(refused))} (sent to the others)")


def _reply(raw: Any) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the answer stays a 3xx error: a webhook's token must not follow a redirect


def _retry_after(value: str | None, attempt: int, cap: float) -> float:
    wait = float(2**attempt)  # 1, 2, 4 ... without a Retry-After
    if value:
        value = value.strip()
        if value.isdigit():
            wait = float(value)
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                pass
            else:
                wait = max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    return min(wait, cap)


#: How the webhook waits between attempts (a module attribute, so tests can record the waits).
_sleep = time.sleep


def _post_webhook(channel: WebhookChannel, body: dict[str, Any], environ: Mapping[str, str]) -> int:
    """Post the body; the number of attempts made. Never puts the URL into a message."""
    url = (environ.get(channel.url_env) or "").strip()
    if not url:
        raise _NotDelivered(f"the environment variable {channel.url_env} is not set (or empty)", attempts=0)
    problem = _url_problem(url)
    if problem:
        raise _NotDelivered(f"{channel.url_env} {problem}", attempts=0)
    where = f"the webhook at {urlsplit(url).hostname} (${channel.url_env})"
    opener = urllib.request.build_opener(
        _NoRedirects(), urllib.request.HTTPSHandler(context=_tls_context(channel.ca_file))
    )
    data = json.dumps(body).encode("utf-8")
    for attempt in range(channel.retries + 1):
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with opener.open(request, timeout=channel.timeout) as answer:
                answer.read()
            return attempt + 1
        except urllib.error.HTTPError as exc:
            status, retry_after = exc.code, exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
            if (status == 429 or status >= 500) and attempt < channel.retries:
                _sleep(_retry_after(retry_after, attempt, channel.max_wait))
                continue
            tried = f" after {attempt + 1} attempts" if attempt else ""
            raise _NotDelivered(f"{where} answered {status}{tried}", attempts=attempt + 1) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise _NotDelivered(
                f"could not reach {where} ({type(reason).__name__}: {reason})", attempts=attempt + 1
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
