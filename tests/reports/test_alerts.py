"""Alerts that reach people: the rules file, the evaluation, and the digest on a real SMTP and HTTP server.

The SMTP server is aiosmtpd on 127.0.0.1, requiring STARTTLS and a login (its
certificate from the test CA of ``salesforce_server.make_tls``); the webhook is
an ``http.server`` in a thread that answers with the statuses a test scripts.
Most tests build ``run.json`` contents by hand; one runs ``renewforecast
report`` end to end on a one-cell notebook.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_notebook

from renewforecast.cli import EXIT_ALERTS_NOT_SENT, main
from renewforecast.reports import alerts as alerting
from renewforecast.reports.alerts import (
    Alert,
    AlertConfig,
    AlertConfigError,
    EmailChannel,
    Rule,
    RunFailure,
    WebhookChannel,
    evaluate_alerts,
    load_alerts,
    send_digest,
)
from salesforce_server import make_tls

SMTP_USER = "renewforecast@example.test"
SMTP_PASSWORD = "smtp-Pa55-" + "q7Zx9Lw3"
HOOK_TOKEN = "T0AL3RT/B0AL3RT/" + "hookTOKENsecret42xyz"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
DOCS = Path(__file__).resolve().parents[2] / "docs"


# --------------------------------------------------------------------------- #
# Servers
# --------------------------------------------------------------------------- #


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpServer:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        self.raw.append(envelope.original_content)
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        self.logins.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 235 or 535 itself


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[Path, Path, Path]:
    return make_tls(tmp_path_factory.mktemp("alert-tls"))


@pytest.fixture
def smtp(tls) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that requires STARTTLS, then AUTH, before it takes mail."""
    _, cert, key = tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(_free_port())
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        tls_context=context,
        require_starttls=True,
        authenticator=server.authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield server
    controller.stop()


@dataclass
class Hook:
    url: str
    bodies: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # answers to give, in order; then 200


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A webhook receiver on 127.0.0.1 (plain HTTP, allowed on the loopback only)."""
    state = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.paths.append(self.path)
            status, headers = state.script.pop(0) if state.script else (200, {})
            if status == 200:
                state.bodies.append(json.loads(body))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/services/{HOOK_TOKEN}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The webhook's waits between attempts, recorded instead of slept."""
    seen: list[float] = []
    monkeypatch.setattr(alerting, "_sleep", seen.append)
    return seen


ALERTS_TOML = """
[[rule]]
name = "ARR at risk up 20% on the last run"
figure = "renewal_risk.arr_at_risk"
up_by = "20%"
severity = "critical"

[[rule]]
name = "Rows set aside"
figure = "data_quality.set_aside"
above = 0

[email]
to = ["revops@example.test", "cfo@example.test"]
from = "renewforecast@example.test"
subject_prefix = "[rf-test]"
host = "127.0.0.1"
port = {port}
user = "renewforecast@example.test"
password_env = "RF_TEST_SMTP_PASSWORD"
ca_file = "{ca}"
timeout = 10

[webhook]
url_env = "RF_TEST_WEBHOOK_URL"
timeout = 5
retries = 2
max_wait = 5

[digest]
link = "https://reports.example.test/renewforecast"
"""


@pytest.fixture
def config_file(tmp_path, smtp, hook, tls, monkeypatch) -> Path:
    monkeypatch.setenv("RF_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("RF_TEST_WEBHOOK_URL", hook.url)
    path = tmp_path / "alerts.toml"
    path.write_text(ALERTS_TOML.replace("{port}", str(smtp.port)).replace("{ca}", str(tls[0])), encoding="utf-8")
    return path


def run_meta(run_id: str, *, at_risk=None, set_aside=None, label="ARR at risk, next two quarters", **extra) -> dict:
    """run.json as the runner writes it: headlines keyed by notebook, each naming its report."""
    headlines = {}
    if at_risk is not None:
        headlines["02_renewal_risk"] = {
            "report": "renewal_risk",
            "title": "Renewal risk",
            "figures": [{"key": "arr_at_risk", "label": label, "value": at_risk, "kind": "money"}],
            "provenance": {"currency": "USD"},
        }
    if set_aside is not None:
        headlines["00_data_quality"] = {
            "report": "data_quality",
            "title": "Data quality",
            "figures": [{"key": "set_aside", "label": "Rows set aside", "value": set_aside, "kind": "count"}],
            "provenance": {"currency": "USD"},
        }
    return {"run_id": run_id, "status": "ok", "as_of": "2026-10-31", "headlines": headlines, **extra}


def secrets_in(text: str) -> list[str]:
    return [s for s in (SMTP_PASSWORD, HOOK_TOKEN, "hookTOKENsecret42xyz") if s in text]


# --------------------------------------------------------------------------- #
# The file
# --------------------------------------------------------------------------- #


def test_every_problem_of_the_file_is_listed_at_once_with_the_file_and_the_rule(tmp_path, monkeypatch):
    monkeypatch.delenv("RF_MISSING_PASSWORD", raising=False)
    monkeypatch.setenv("RF_PLAIN_HOOK", "http://hooks.example.test/services/" + HOOK_TOKEN)
    path = tmp_path / "alerts.toml"
    path.write_text(
        """
colour = "blue"

[[rule]]
name = "typo in a key"
figure = "renewal_risk.arr_at_risk"
abvoe = 5

[[rule]]
name = "two conditions"
figure = "renewal_risk.arr_at_risk"
above = 5
below = 1

[[rule]]
name = "not a figure"
figure = "renewal_risk.arr_at_rsk"
up_by = "twenty percent"

[[rule]]
name = "left out"
figure = "revenue_forecast.horizon_revenue"
down_by = "10%"
severity = "urgent"

[[rule]]
name = "no such report"
figure = "pipeline.coverage"
below = 0.6

[email]
to = "revops@example.test"
from = "renewforecast@example.test"
host = "smtp.example.test"
user = "renewforecast"
password = "hunter2-in-the-file"
password_env = "RF_MISSING_PASSWORD"
security = "none"

[webhook]
url_env = "RF_PLAIN_HOOK"
""",
        encoding="utf-8",
    )
    with pytest.raises(AlertConfigError) as info:
        load_alerts(path, reports=["00_data_quality", "02_renewal_risk"])
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    expected = [
        "unknown table or key 'colour'",
        "rule 1 'typo in a key': unknown key 'abvoe'",
        "rule 1 'typo in a key': no condition",
        "rule 2 'two conditions': one condition per rule, not above and below",
        "rule 3 'not a figure': up_by must be a percentage",
        "rule 3 'not a figure': figure 'renewal_risk.arr_at_rsk': renewal_risk has no figure 'arr_at_rsk' "
        "(it has arr_at_risk, expected_renewal)",
        "rule 4 'left out': severity must be one of info, warning, critical",
        "rule 4 'left out': figure 'revenue_forecast.horizon_revenue': revenue_forecast comes from the report "
        "04_revenue_forecast, which this run leaves out",
        "rule 5 'no such report': figure 'pipeline.coverage': no report of this run publishes 'pipeline'",
        "[email] password: secrets do not go in the file",
        "[email] password_env: the environment variable RF_MISSING_PASSWORD is not set",
        '[email] a login needs security = "starttls" or "ssl"',
        "[webhook] url_env: RF_PLAIN_HOOK is an http:// URL",
    ]
    for problem in expected:
        assert problem in message, problem
    assert len(info.value.problems) == len(expected)
    # Neither the password written into the file nor the webhook's token is ever quoted.
    assert "hunter2" not in message and not secrets_in(message)


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(
        AlertConfigError, match=r"nope\.toml: 1 problem in the alerts file:\n  - the file does not exist"
    ):
        load_alerts(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('[[rule]]\nname = "x\n', encoding="utf-8")
    with pytest.raises(AlertConfigError, match=r"(?s)broken\.toml: .*not valid TOML: .*line 2"):
        load_alerts(broken)


def test_a_team_notebook_may_publish_headlines_nobody_declared(tmp_path, monkeypatch):
    # A team's own notebook publishing its own headline: accepted before the run once it is named.
    monkeypatch.setenv("RF_HOOK", "https://hooks.example.test/services/x")
    path = tmp_path / "alerts.toml"
    path.write_text(
        '[[rule]]\nname = "coverage"\nfigure = "team_pipeline.coverage"\nbelow = 0.6\n[webhook]\nurl_env = "RF_HOOK"\n',
        encoding="utf-8",
    )
    with pytest.raises(AlertConfigError, match="no report of this run publishes 'team_pipeline'"):
        load_alerts(path)  # the shipped reports: none publishes it
    config = load_alerts(path, reports=["00_data_quality", "07_team_pipeline"])
    assert config.rules == (Rule("coverage", "team_pipeline.coverage", "below", 0.6),)


def test_the_scheduler_guides_alerts_file_is_valid(tmp_path, monkeypatch):
    text = (DOCS / "guide_scheduler.md").read_text(encoding="utf-8")
    found = re.findall(r'^```toml title="alerts.toml"\n(.*?)^```', text, flags=re.MULTILINE | re.DOTALL)
    assert len(found) == 1
    path = tmp_path / "alerts.toml"
    path.write_text(found[0], encoding="utf-8")
    monkeypatch.setenv("RENEWFORECAST_SMTP_PASSWORD", "x" * 12)
    monkeypatch.setenv("RENEWFORECAST_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX")
    config = load_alerts(path)
    assert config.channels == ("email", "webhook")
    assert {r.condition for r in config.rules} >= {"up_by", "above", "below", "any_warnings"}
    # Every figure the guide lists is one the shipped reports publish, and every one is listed.
    from renewforecast.reports.headline import HEADLINE_FIGURES

    listed = set(re.findall(r"^\| `(\w+\.\w+)` \|", text, flags=re.MULTILINE))
    assert listed == {f"{report}.{key}" for report, keys in HEADLINE_FIGURES.items() for key in keys}


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #


def _config(*rules: Rule) -> AlertConfig:
    return AlertConfig("alerts.toml", rules, webhook=WebhookChannel("RF_TEST_WEBHOOK_URL"))


def test_arr_at_risk_against_the_previous_run_computed_by_hand():
    previous, now = run_meta("r1", at_risk=1_000_000.0), run_meta("r2", at_risk=1_250_000.0)
    # 1,250,000 / 1,000,000 - 1 = 25 %: up by 20 % fires, 30 % does not; 250,000 up in the figure's unit.
    cases = [
        (Rule("up 20%", "renewal_risk.arr_at_risk", "up_by", 0.20, relative=True), True),
        (Rule("up 30%", "renewal_risk.arr_at_risk", "up_by", 0.30, relative=True), False),
        (Rule("up 25%", "renewal_risk.arr_at_risk", "up_by", 0.25, relative=True), True),  # at least
        (Rule("up 200k", "renewal_risk.arr_at_risk", "up_by", 200_000.0), True),
        (Rule("up 300k", "renewal_risk.arr_at_risk", "up_by", 300_000.0), False),
        (Rule("down 10%", "renewal_risk.arr_at_risk", "down_by", 0.10, relative=True), False),
        (Rule("moved 25%", "renewal_risk.arr_at_risk", "change_by", 0.25, relative=True), True),
    ]
    fired = {a.rule: a for a in evaluate_alerts(_config(*(rule for rule, _ in cases)), now, previous)}
    assert set(fired) == {rule.name for rule, fires in cases if fires}
    alert = fired["up 20%"]
    assert (alert.value, alert.previous, alert.previous_run) == (1_250_000.0, 1_000_000.0, "r1")
    assert alert.message == (
        "ARR at risk, next two quarters is $1,250,000, up 25.0% on $1,000,000 in run r1 "
        "(rule: up by 20.0% or more on the previous run)."
    )
    assert fired["up 200k"].message.startswith("ARR at risk, next two quarters is $1,250,000, up $250,000 on")
    # Down by a fifth: 1,000,000 -> 800,000.
    down = evaluate_alerts(
        _config(Rule("down 20%", "renewal_risk.arr_at_risk", "down_by", 0.20, relative=True)),
        run_meta("r3", at_risk=800_000.0),
        previous,
    )
    assert [a.rule for a in down] == ["down 20%"] and "down 20.0% on $1,000,000" in down[0].message
    # 1.1M -> 1.32M is 20 % by hand, a hair under or over in floating point: it fires.
    edge = evaluate_alerts(
        _config(Rule("up 20%", "renewal_risk.arr_at_risk", "up_by", 0.20, relative=True)),
        run_meta("r5", at_risk=1_320_000.0),
        run_meta("r4", at_risk=1_100_000.0),
    )
    assert [a.rule for a in edge] == ["up 20%"]


def test_a_comparison_needs_a_previous_value():
    rule = Rule("up 20%", "renewal_risk.arr_at_risk", "up_by", 0.20, relative=True)
    now = run_meta("r2", at_risk=1_250_000.0)
    assert evaluate_alerts(_config(rule), now) == []  # the first run
    assert evaluate_alerts(_config(rule), now, run_meta("r1", set_aside=0)) == []  # no such figure then
    assert evaluate_alerts(_config(rule), now, run_meta("r1", at_risk=None)) == []
    # From 0 any rise is an unbounded share: it fires.
    [alert] = evaluate_alerts(_config(rule), now, {**run_meta("r1", at_risk=0.0)})
    assert alert.previous == 0.0 and "infinite" in alert.message


def test_thresholds_warnings_and_figures_missing_from_the_run():
    meta = run_meta("r2", at_risk=1_250_000.0, set_aside=3)
    meta["headlines"]["04_revenue_forecast"] = {
        "report": "revenue_forecast",
        "figures": [
            {"key": "horizon_revenue", "label": "Forecast", "value": 9e6, "kind": "money", "warnings": ["drift: ok"]},
            {"key": "next_month", "label": "Next month", "value": None, "kind": "money"},
        ],
        "warnings": ["input drift: ARR of new contracts 2.1 sd above the training window"],
    }
    config = _config(
        Rule("aside", "data_quality.set_aside", "above", 0.0),
        Rule("aside many", "data_quality.set_aside", "above", 3.0),  # 3 is not above 3
        Rule("at risk below", "renewal_risk.arr_at_risk", "below", 2e6, severity="info"),
        Rule("exact", "data_quality.set_aside", "equals", (1.0, 3.0)),
        Rule("drift", "revenue_forecast", "any_warnings", severity="critical"),
        Rule("all warnings", "*", "any_warnings"),
        Rule("figure warnings", "revenue_forecast.horizon_revenue", "any_warnings"),
        Rule("undefined", "revenue_forecast.next_month", "above", 0.0),  # None: not checked, not fired
        Rule("renamed", "renewal_risk.arr_at_risk_2q", "above", 0.0),
    )
    fired = evaluate_alerts(config, meta)
    # Most severe first, then in the file's order.
    assert [a.rule for a in fired] == [
        "drift",
        "aside",
        "exact",
        "all warnings",
        "figure warnings",
        "renamed",
        "at risk below",
    ]
    by = {a.rule: a for a in fired}
    assert by["drift"].value == 2 and by["drift"].warnings == (
        "input drift: ARR of new contracts 2.1 sd above the training window",
        "drift: ok",
    )
    assert by["all warnings"].value == 2 and by["figure warnings"].warnings == ("drift: ok",)
    assert by["aside"].message == "Rows set aside is 3 (rule: above 0)."
    assert by["renamed"].value is None and "could not be checked" in by["renamed"].message
    assert Alert.from_dict(json.loads(json.dumps(by["drift"].to_dict()))) == by["drift"]


# --------------------------------------------------------------------------- #
# Delivery
# --------------------------------------------------------------------------- #


def test_an_alert_that_fires_reaches_email_and_webhook(config_file, smtp, hook, tmp_path):
    config = load_alerts(config_file)
    hostile = "ARR at risk <script>alert('rf-xss')</script>"
    now = run_meta("20261121T053000Z-4d5e6f", at_risk=1_250_000.0, label=hostile, set_aside=0)
    fired = evaluate_alerts(config, now, run_meta("20261120T053000Z-1a2b3c", at_risk=1_000_000.0, set_aside=0))
    assert [a.rule for a in fired] == ["ARR at risk up 20% on the last run"]

    result = send_digest(fired, config, run_meta=now, run_folder=tmp_path / "run")
    assert result.ok and result.sent == ("email", "webhook") and result.attempts == {"email": 1, "webhook": 1}

    # One email, after STARTTLS and a login, to both recipients.
    assert smtp.logins == [("PLAIN", True)] and smtp.recipients == [["revops@example.test", "cfo@example.test"]]
    [mail] = smtp.messages
    assert mail["Subject"] == ("[rf-test] 1 alert (critical): ARR at risk up 20% on the last run, as of 2026-10-31")
    text = mail.get_body(("plain",)).get_content()
    page = mail.get_body(("html",)).get_content()
    link = "https://reports.example.test/renewforecast/20261121T053000Z-4d5e6f/index.html"
    for part in (text, page):
        assert "ARR at risk up 20% on the last run" in part and "renewal_risk.arr_at_risk" in part
        assert "1,250,000" in part and "1,000,000" in part and "up by 20.0% or more on the previous run" in part
        assert link in part
    # The label comes from the data: escaped in the HTML part.
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;rf-xss&#x27;)&lt;/script&gt;" in page

    # One webhook post, Slack's shape, with mrkdwn's own escaping of < and >.
    [body] = hook.bodies
    assert set(body) == {"text", "blocks"} and body["text"] == mail["Subject"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "context"]
    assert (
        body["blocks"][1]["text"]["text"]
        == "1 alert rule fired on report run 20261121T053000Z-4d5e6f (as of 2026-10-31)."
    )
    section = body["blocks"][2]["text"]["text"]
    assert "*[critical] ARR at risk up 20% on the last run*" in section
    assert "&lt;script&gt;" in section and "<script>" not in section
    assert f"<{link}|open the run>" in body["blocks"][3]["elements"][0]["text"]
    assert hook.paths == [f"/services/{HOOK_TOKEN}"]


def test_nothing_fired_nothing_sent(config_file, smtp, hook):
    config = load_alerts(config_file)
    now, before = run_meta("r2", at_risk=1_150_000.0, set_aside=0), run_meta("r1", at_risk=1_000_000.0)
    fired = evaluate_alerts(config, now, before)  # up 15 %, nothing set aside
    assert fired == []
    result = send_digest(fired, config, run_meta=now)
    assert result.ok and result.sent == ()
    assert smtp.messages == [] and smtp.logins == [] and hook.paths == []


def test_a_503_then_200_is_retried_once_after_what_retry_after_says(config_file, hook, waits, monkeypatch):
    config = load_alerts(config_file)
    config = AlertConfig(config.path, config.rules, webhook=config.webhook)  # the webhook alone
    alert = evaluate_alerts(config, run_meta("r2", set_aside=2))
    hook.script = [(503, {"Retry-After": "3"})]
    result = send_digest(alert, config, run_meta=run_meta("r2"))
    assert result.ok and result.attempts == {"webhook": 2} and waits == [3.0]
    assert len(hook.paths) == 2 and len(hook.bodies) == 1
    # Retry-After is honoured up to max_wait (5 s in the file); without it, 1 s, then 2 s.
    waits.clear()
    hook.script = [(429, {"Retry-After": "120"}), (502, {}), (500, {})]
    result = send_digest(alert, config, run_meta=run_meta("r2"))
    assert not result.ok and waits == [5.0, 2.0] and result.attempts == {"webhook": 3}
    assert result.failed == {"webhook": "the webhook at 127.0.0.1 ($RF_TEST_WEBHOOK_URL) answered 500 after 3 attempts"}
    # A refusal that is not the server's trouble is not retried.
    waits.clear()
    hook.script = [(404, {})]
    result = send_digest(alert, config, run_meta=run_meta("r2"))
    assert result.attempts == {"webhook": 1} and waits == [] and "answered 404" in result.failed["webhook"]


def test_a_failed_run_sends_what_failed_and_no_secret(config_file, smtp, hook, monkeypatch):
    config = load_alerts(config_file)
    failure = RunFailure(
        3,
        "Report notebook '02_renewal_risk' failed in cell 7 (In [5]): ValueError: <no scores>.",
        "/srv/reports/failed/20261121T053000Z-4d5e6f",
    )
    meta = {
        "run_id": "20261121T053000Z-4d5e6f",
        "as_of": "2026-10-31",
        "source": "postgresql+psycopg://reporting:warehouse-Pa55@warehouse/analytics",
        "parameters": {"horizon_months": 12, "sf_api_token": "tok-very-secret-123"},
    }
    result = send_digest([], config, run_meta=meta, failure=failure)
    assert result.ok and result.sent == ("email", "webhook")
    [mail] = smtp.messages
    assert mail["Subject"] == "[rf-test] report run FAILED (exit 3), as of 2026-10-31"
    text, page = mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()
    [body] = hook.bodies
    slack = json.dumps(body)
    for part in (text, page, slack):
        assert "exit code 3" in part and "/srv/reports/failed/20261121T053000Z-4d5e6f" in part
        assert "02_renewal_risk" in part and "(hidden)" in part
        assert "warehouse-Pa55" not in part and "tok-very-secret-123" not in part and not secrets_in(part)
    assert "postgresql+psycopg://reporting:***@warehouse/analytics" in text
    assert "&lt;no scores&gt;" in page and "<no scores>" not in page


def test_delivery_failures_are_reported_without_secrets(config_file, smtp, hook, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    config = load_alerts(config_file)
    alert = evaluate_alerts(config, run_meta("r2", set_aside=2))
    # A wrong password: refused, and said so without the password.
    monkeypatch.setenv("RF_TEST_SMTP_PASSWORD", "wrong-" + SMTP_PASSWORD)
    # A webhook that is down: the token in its URL is not repeated.
    monkeypatch.setenv("RF_TEST_WEBHOOK_URL", f"http://127.0.0.1:{_free_port()}/services/{HOOK_TOKEN}")
    result = send_digest(alert, config, run_meta=run_meta("r2"))
    assert result.sent == () and set(result.failed) == {"email", "webhook"}
    assert result.failed["email"] == (
        f"the SMTP server 127.0.0.1:{smtp.port} refused the login of renewforecast@example.test (535)"
    )
    assert result.failed["webhook"].startswith("could not reach the webhook at 127.0.0.1 ($RF_TEST_WEBHOOK_URL) (")
    assert smtp.logins == [("PLAIN", False), ("LOGIN", False)] and smtp.messages == []  # smtplib tries each
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not delivered by email" in logged and "not delivered by webhook" in logged
    everything = logged + json.dumps(result.failed)
    assert not secrets_in(everything) and "wrong-" not in everything


def test_implicit_tls_and_an_untrusted_certificate(tls, tmp_path, monkeypatch):
    ca, cert, key = tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(_free_port())
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        ssl_context=context,
        authenticator=server.authenticate,
        auth_require_tls=False,  # the whole connection is TLS; aiosmtpd only counts STARTTLS here
    )
    controller.start()
    try:
        monkeypatch.setenv("RF_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
        channel = EmailChannel(
            ("revops@example.test",), SMTP_USER, "127.0.0.1", server.port, "ssl", SMTP_USER,
            "RF_TEST_SMTP_PASSWORD", ca_file=str(ca),
        )  # fmt: skip
        config = AlertConfig("alerts.toml", (), email=channel)
        alert = [Alert("r", "warning", "data_quality.set_aside", "Rows set aside", "count", 2, None, None, "x", "m")]
        assert send_digest(alert, config, run_meta=run_meta("r2")).sent == ("email",)
        assert len(server.messages) == 1 and server.logins == [("PLAIN", True)]
        # Without the CA that signed the server's certificate, nothing is sent, and the reason says TLS.
        untrusted = AlertConfig("alerts.toml", (), email=EmailChannel(**{**channel.__dict__, "ca_file": None}))
        result = send_digest(alert, untrusted, run_meta=run_meta("r2"))
        assert "TLS with the SMTP server" in result.failed["email"] and len(server.messages) == 1
    finally:
        controller.stop()


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #


def _risk_notebook(folder: Path, at_risk: float) -> None:
    """A one-cell report publishing the renewal-risk headline with the given ARR at risk."""
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC})
    params = new_code_cell('source = ""\nas_of = None\n')
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells.append(
        new_code_cell(
            "from renewforecast.reports.headline import Headline\n"
            f"Headline('renewal_risk', 'Renewal risk', [{{'key': 'arr_at_risk', 'label': 'ARR at risk', "
            f"'value': {at_risk}, 'kind': 'money'}}], provenance={{'currency': 'USD'}})"
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "01_risk.ipynb")


@pytest.mark.slow
def test_a_run_whose_digest_cannot_be_mailed_stays_published_and_exits_15(
    demo_org, config_file, hook, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    # The mail server is down (nothing listens on its port); the webhook is up.
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(re.sub(r"^port = \d+", f"port = {_free_port()}", text, flags=re.MULTILINE))
    out = tmp_path / "reports"
    before = out / "20261120T053000Z-1a2b3c"
    before.mkdir(parents=True)
    (before / "run.json").write_text(json.dumps(run_meta(before.name, at_risk=1_000_000.0)), encoding="utf-8")
    (out / "latest").symlink_to(before.name, target_is_directory=True)
    notebooks = tmp_path / "notebooks"
    _risk_notebook(notebooks, 1_250_000.0)
    monkeypatch.setenv("RENEWFORECAST_ALERTS", str(config_file))
    result = CliRunner().invoke(
        main, ["report", str(demo_org.path), "--out", str(out), "--notebooks", str(notebooks), "--timeout", "120"]
    )
    assert result.exit_code == EXIT_ALERTS_NOT_SENT, result.output
    published = (out / "latest").resolve()
    assert published != before.resolve() and (published / "index.html").is_file()
    meta = json.loads((published / "run.json").read_text(encoding="utf-8"))
    recorded, missing = meta["alerts"]
    assert recorded["rule"] == "ARR at risk up 20% on the last run" and recorded["figure"] == "renewal_risk.arr_at_risk"
    assert (recorded["value"], recorded["previous"], recorded["previous_run"]) == (
        1_250_000.0,
        1_000_000.0,
        before.name,
    )
    # This team's run has no data-quality report: the rule on it says it could not be checked.
    assert (missing["rule"], missing["value"]) == ("Rows set aside", None) and "could not be checked" in missing[
        "message"
    ]
    assert "the run is published, but the digest of 2 alert(s)" in result.stderr
    assert "was not sent by email: could not reach the SMTP server 127.0.0.1:" in result.stderr
    assert "sent by webhook" in result.stdout and len(hook.bodies) == 1
    published_text = "\n".join(p.read_text(encoding="utf-8") for p in published.glob("*.*") if p.suffix != ".ipynb")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in (published_text, result.output, logged, json.dumps(hook.bodies)):
        assert not secrets_in(text)


def test_a_run_that_fails_sends_its_failure_digest_and_keeps_its_exit_code(org_copy, config_file, smtp, hook, tmp_path):
    (org_copy / "Contract.csv").write_text("Id,AccountId\n800X,001X\n", encoding="utf-8")  # broken export
    out = tmp_path / "reports"
    args = ["report", str(org_copy), "--out", str(out), "--alerts", str(config_file)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "Sent the failure digest by email and webhook." in result.stderr
    [mail] = smtp.messages
    assert mail["Subject"] == "[rf-test] report run FAILED (exit 1), as of (not resolved)"
    assert "is not valid input" in mail.get_body(("plain",)).get_content()
    assert "exit code 1" in json.dumps(hook.bodies[0])
    # The mail server is down too: the run's own code stays, and stderr says the digest did not go.
    smtp_down = config_file.read_text(encoding="utf-8")
    config_file.write_text(re.sub(r"^port = \d+", f"port = {_free_port()}", smtp_down, flags=re.MULTILINE))
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1
    assert "error: the failure digest was not sent by email: could not reach the SMTP server" in again.stderr
    assert not out.exists() or not (out / "latest").exists()


def test_a_bad_alerts_file_stops_the_command_before_anything_is_read(demo_org, tmp_path, monkeypatch):
    monkeypatch.delenv("RF_NOT_SET", raising=False)
    path = tmp_path / "alerts.toml"
    path.write_text(
        '[[rule]]\nname = "a"\nfigure = "renewal_risk.arr_at_risk"\nabove = 1\n[webhook]\nurl_env = "RF_NOT_SET"\n',
        encoding="utf-8",
    )
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        main, ["report", str(demo_org.path), "--out", str(out), "--notebook", "00_data_quality", "--alerts", str(path)]
    )
    assert result.exit_code == 2
    assert f"{path}: 2 problems in the alerts file" in result.stderr
    assert "renewal_risk comes from the report 02_renewal_risk, which this run leaves out" in result.stderr
    assert "the environment variable RF_NOT_SET is not set" in result.stderr
    assert not out.exists()
