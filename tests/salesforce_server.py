"""A local Salesforce org over HTTPS for the API tests: REST, Bulk API 2.0 and OAuth as Salesforce documents them.

It serves an export folder (one CSV per object, as :func:`renewforecast.write_demo_org`
writes it) and keeps, per record, ``IsDeleted`` and ``SystemModstamp``.
Shapes follow these pages (all under https://developer.salesforce.com/docs/):

- OAuth 2.0 JWT bearer flow and client credentials flow: token response
  ``{"access_token", "scope", "instance_url", "id", "token_type"}``; errors
  ``{"error", "error_description"}`` with HTTP 400
  (``atlas.en-us.api_rest.meta/api_rest/intro_understanding_authentication.htm``,
  ``sf.remoteaccess_oauth_jwt_flow.htm``, ``sf.remoteaccess_oauth_client_credentials_flow.htm``).
- REST API "Status Codes and Error Responses" (``api_rest/errorcodes.htm``): errors
  are a JSON list of ``{"message", "errorCode"}``; 401 ``INVALID_SESSION_ID``
  "Session expired or invalid"; 403 ``REQUEST_LIMIT_EXCEEDED`` with
  "TotalRequests Limit exceeded." (daily) or "ConcurrentPerOrgLongTxn Limit
  exceeded." (concurrent long-running requests); 400 ``INVALID_FIELD`` "No such
  column 'X' on entity 'Y'".
- sObject Describe (``api_rest/resources_sobject_describe.htm``): ``fields``
  with ``name``, ``type``, ``length``, ``precision``, ``scale``, ``nillable``...
- Query / QueryAll (``api_rest/resources_query.htm``, ``resources_queryall.htm``):
  ``{"totalSize", "done", "nextRecordsUrl", "records": [{"attributes": {"type", "url"}, ...}]}``,
  datetimes as ``2021-06-16T09:00:00.000+0000``.
- Bulk API 2.0 (``api_asynch/query_create_job.htm``, ``query_get_one_job.htm``,
  ``query_get_job_results.htm``, ``create_job.htm``, ``upload_job_data.htm``,
  ``close_job.htm``, ``get_job_info.htm``, ``get_job_successful_results.htm``,
  ``get_job_failed_results.htm``, ``get_job_unprocessed_results.htm``):
  results as CSV with ``Sforce-Locator`` (``null`` on the last set) and
  ``Sforce-NumberOfRecords``; ingest results with ``sf__Id``, ``sf__Created``
  / ``sf__Error`` then the uploaded fields; ``#N/A`` sets a field to null.
  Jobs stay ``InProgress`` for a few polls (:attr:`SalesforceServer.job_polls`)
  and can be aborted with ``PATCH {"state": "Aborted"}`` (``query_abort_job.htm``,
  ``abort-job``); ``createdDate`` is the server's clock.
- ``SystemModstamp`` is kept to the second, as the API returns it
  (``...T09:00:00.000+0000``), so stamps tie within a second; a Bulk query job
  is not a snapshot: :meth:`SalesforceServer.during_next_job` changes a record
  while a job runs, with a stamp older than rows the job returns, as a
  transaction committing late does.
- JWT ``aud`` must be ``https://login.salesforce.com`` (``https://test.salesforce.com``
  for a sandbox), whatever URL the token request was posted to (help page
  *OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration*).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import itertools
import json
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from renewforecast.io.salesforce import SALESFORCE_OBJECTS

INITIAL_MODSTAMP = "2026-01-01T00:00:00.000Z"
_KIND_TYPES = {
    "str": "string",
    "cat": "picklist",
    "bool": "boolean",
    "date": "date",
    "datetime": "datetime",
    "float": "double",
    "int": "int",
}
#: Objects that carry no IsDeleted (so a client pulls them whole).
NO_DELETE_FLAG = {"CurrencyType", "DatedConversionRate"}
INVALID_FIELD_TAIL = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "renewforecast test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


def _describe_field(name: str, kind: str, percent: bool = False, **over) -> dict:
    sf_type = _KIND_TYPES.get(kind, "string")
    if kind == "id":
        sf_type = "id" if name == "Id" else "reference"
    if percent:
        sf_type = "percent"
    if name in ("CreatedDate", "SystemModstamp"):
        sf_type = "datetime"
    if name in ("StartDate", "NextStartDate") and kind == "str":
        sf_type = "date"
    text = sf_type in ("string", "picklist", "id", "reference", "textarea")
    out = {
        "name": name,
        "label": name.replace("__c", "").replace("_", " "),
        "type": sf_type,
        "soapType": {
            "boolean": "xsd:boolean",
            "double": "xsd:double",
            "percent": "xsd:double",
            "int": "xsd:int",
            "date": "xsd:date",
            "datetime": "xsd:dateTime",
        }.get(sf_type, "tns:ID" if sf_type in ("id", "reference") else "xsd:string"),
        "length": 255 if text and sf_type not in ("id", "reference") else (18 if text else 0),
        "byteLength": 765 if text else 0,
        "precision": 18 if sf_type in ("double", "percent", "currency") else 0,
        "scale": 2 if sf_type in ("double", "percent", "currency") else 0,
        "digits": 9 if sf_type == "int" else 0,
        "nillable": name not in ("Id", "IsDeleted", "SystemModstamp", "CreatedDate"),
        "createable": name not in ("Id", "IsDeleted", "SystemModstamp", "CreatedDate"),
        "updateable": name not in ("Id", "IsDeleted", "SystemModstamp", "CreatedDate"),
        "custom": name.endswith("__c"),
        "externalId": False,
        "idLookup": name == "Id",
        "calculated": False,
        "filterable": True,
        "defaultedOnCreate": name in ("Id", "IsDeleted", "SystemModstamp", "CreatedDate"),
    }
    out.update(over)
    return out


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    query: dict
    body: str
    headers: dict
    at: float = 0.0  # time.monotonic() when received


@dataclass
class SfObjectState:
    name: str
    fields: dict[str, dict]
    records: list[dict[str, str]]
    header: list[str]


@dataclass
class _Job:
    id: str
    kind: str  # "query" or "ingest"
    info: dict
    rows: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    polls: int = 0
    data: str = ""
    success: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    soql: str = ""


class SalesforceServer:
    """An org served over TLS on 127.0.0.1: see the module docstring for the endpoints and their sources.

    Test hooks: :meth:`remove_field`, :meth:`add_field`, :meth:`delete_records`,
    :meth:`modify`, :meth:`fail_next`, :meth:`expire_sessions`,
    :meth:`limit_exceeded`, :meth:`fail_ingest`, :meth:`during_next_job`,
    :meth:`purge`, :meth:`stall`, :meth:`cut_next_results`; :attr:`job_polls`,
    :attr:`ingest_polls` and :attr:`jwt_audience`; :attr:`requests` records
    every request (with its arrival time).
    """

    def __init__(
        self,
        folder: Path,
        tls: tuple[Path, Path, Path],
        *,
        client_id: str,
        client_secret: str,
        username: str,
        public_key_pem: bytes,
        api_version: str = "59.0",
        rest_page_size: int = 2000,
        bulk_page_size: int = 50000,
        jwt_audience: str = "https://login.salesforce.com",
        job_polls: int = 3,
    ):
        self.jwt_audience = jwt_audience
        #: Polls a job answers InProgress before it is JobComplete.
        self.job_polls = job_polls
        #: The same for ingest jobs only, when set.
        self.ingest_polls: int | None = None
        self._job_hooks: list[tuple[Callable[[], None], str | None]] = []
        self._stalls: list[tuple[float, str | None, str]] = []
        self._cuts = 0
        self.released = threading.Event()
        self.api_version = api_version
        self.client_id, self.client_secret, self.username = client_id, client_secret, username
        self.public_key_pem = public_key_pem
        self.rest_page_size = rest_page_size
        self.bulk_page_size = bulk_page_size
        self.ca_path = tls[0]
        self.objects: dict[str, SfObjectState] = {}
        self.tokens: set[str] = set()
        self.issued: list[str] = []
        self.requests: list[Request] = []
        self.jobs: dict[str, _Job] = {}
        self.cursors: dict[str, tuple[list[dict], int, SfObjectState, list[str]]] = {}
        self.lock = threading.RLock()
        self._failures: list[tuple[int, str]] = []
        self._limits: list[str] = []
        self._ingest_errors: dict[str, tuple[str, bool]] = {}
        self._ids = itertools.count(1)
        self._clock = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._load(folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[1], tls[2])
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        # A client that gave up on a held answer closes its end; that is expected here, not worth a traceback.
        self.httpd.handle_error = lambda request, client_address: None
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- lifecycle

    def start(self) -> SalesforceServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _load(self, folder: Path) -> None:
        for obj in SALESFORCE_OBJECTS.values():
            path = folder / obj.file
            if obj.id_field is None or not path.is_file():
                continue
            name = obj.file[:-4]
            with path.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                rows = [dict(r) for r in reader]
                header = list(reader.fieldnames or [])
            kinds = {f.source: f for f in obj.fields}
            fields = {}
            for col in header:
                f = kinds.get(col)
                fields[col] = _describe_field(col, f.kind if f else "cat", bool(f and f.percent))
            if "Id" not in fields:
                fields["Id"] = _describe_field("Id", "id")
            if name != "CurrencyType":
                fields["SystemModstamp"] = _describe_field("SystemModstamp", "datetime")
            if name not in NO_DELETE_FLAG:
                fields["IsDeleted"] = _describe_field("IsDeleted", "bool")
            for i, row in enumerate(rows):
                row.setdefault("Id", row.get("Id") or f"01N{name[:3]}{i:012d}")
                row["IsDeleted"] = "false"
                row["SystemModstamp"] = INITIAL_MODSTAMP
            self.objects[name] = SfObjectState(name, fields, rows, header)

    # -- hooks

    def issue_token(self) -> str:
        token = "00DTEST!" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens.add(token)
            self.issued.append(token)
        return token

    def expire_sessions(self) -> None:
        """Every issued access token stops working (as when a session times out)."""
        with self.lock:
            self.tokens.clear()

    def tick(self) -> str:
        """A new SystemModstamp: the server's clock to the second, never earlier than the last (ties happen)."""
        with self.lock:
            self._clock = max(self._clock, dt.datetime.now(dt.UTC).replace(microsecond=0))
            return self._clock.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def during_next_job(self, hook: Callable[[], None], obj: str | None = None) -> None:
        """Run ``hook`` when the next query job (on ``obj``) is first polled: its rows are chosen, not yet read."""
        with self.lock:
            self._job_hooks.append((hook, obj))

    def purge(self, obj: str, ids: list[str]) -> None:
        """Remove records for good, leaving no deleted row (an emptied Recycle Bin, or access lost)."""
        with self.lock:
            state = self.objects[obj]
            state.records = [r for r in state.records if r["Id"] not in ids]

    def stall(self, seconds: float, method: str | None = None, contains: str = "", n: int = 1) -> None:
        """Handle the next ``n`` matching requests but hold their answers ``seconds`` (released by :meth:`stop`)."""
        with self.lock:
            self._stalls.extend([(seconds, method, contains)] * n)

    def cut_next_results(self, n: int = 1) -> None:
        """Break off the next ``n`` query result downloads halfway (the connection closes mid-body)."""
        with self.lock:
            self._cuts += n

    def remove_field(self, obj: str, name: str) -> None:
        with self.lock:
            self.objects[obj].fields.pop(name)

    def add_field(self, obj: str, name: str, sf_type: str, **describe) -> None:
        kind = {v: k for k, v in _KIND_TYPES.items()}.get(sf_type, "str")
        with self.lock:
            state = self.objects[obj]
            state.fields[name] = _describe_field(name, kind, sf_type == "percent", type=sf_type, **describe)
            for row in state.records:
                row.setdefault(name, "")

    def delete_records(self, obj: str, ids: list[str]) -> None:
        with self.lock:
            for row in self.objects[obj].records:
                if row["Id"] in ids:
                    row["IsDeleted"] = "true"
                    row["SystemModstamp"] = self.tick()

    def modify(self, obj: str, record_id: str, values: dict[str, str], stamp: str | None = None) -> str:
        """Change a record; its SystemModstamp becomes ``stamp`` (a late commit) or the clock's. Returns the stamp."""
        with self.lock:
            for row in self.objects[obj].records:
                if row["Id"] == record_id:
                    row.update(values)
                    row["SystemModstamp"] = stamp or self.tick()
                    return row["SystemModstamp"]
            raise KeyError(record_id)

    def fail_next(
        self, n: int, status: int = 429, retry_after: str | None = "1", method: str | None = None, contains: str = ""
    ) -> None:
        """Answer the next ``n`` API requests (those with ``method`` and ``contains`` in the path) with ``status``."""
        with self.lock:
            self._failures.extend([(status, retry_after or "", method, contains)] * n)

    def clear_faults(self) -> None:
        """Forget the failures and limits still queued by :meth:`fail_next` and :meth:`limit_exceeded`."""
        with self.lock:
            self._failures.clear()
            self._limits.clear()

    def limit_exceeded(self, kind: str = "daily", n: int = 1) -> None:
        """Refuse the next ``n`` API requests with REQUEST_LIMIT_EXCEEDED (``daily`` or ``concurrent``)."""
        with self.lock:
            self._limits.extend([kind] * n)

    def fail_ingest(self, errors: dict[str, str], *, always: bool = False) -> None:
        """Fail the ingest rows with these Ids with these ``sf__Error`` texts (once, or in every job)."""
        with self.lock:
            for rid, error in errors.items():
                self._ingest_errors[rid] = (error, always)

    def live_records(self, obj: str) -> list[dict[str, str]]:
        return [r for r in self.objects[obj].records if r["IsDeleted"] != "true"]

    def write_export(self, folder: Path) -> None:
        """The org as it is now, as an export folder in the served layout (deleted records left out)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, state in self.objects.items():
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(state.header)
            for row in self.live_records(name):
                writer.writerow([row.get(c, "") for c in state.header])
            (folder / f"{name}.csv").write_text(buf.getvalue(), encoding="utf-8")

    def api_requests(self, method: str | None = None, contains: str = "") -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    # -- SOQL

    def run_soql(self, soql: str, include_deleted: bool) -> tuple[SfObjectState, list[str], list[dict]]:
        m = re.fullmatch(
            r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
            r"(?:\s+ORDER\s+BY\s+(?P<order>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*",
            soql,
            re.IGNORECASE | re.DOTALL,
        )
        if not m:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {soql[:40]}")
        state = self.objects.get(m["obj"])
        if state is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"\n{soql}\n^\nERROR at Row:1:Column:1\nsObject type '{m['obj']}' is not supported. "
                + INVALID_FIELD_TAIL,
            )
        fields = [f.strip() for f in m["fields"].split(",")]
        conditions = []
        if m["where"]:
            for part in re.split(r"\s+AND\s+", m["where"], flags=re.IGNORECASE):
                c = re.fullmatch(r"\s*(\w+)\s*(=|!=|>=|<=|>|<)\s*(.+?)\s*", part)
                if not c:
                    raise SoqlError("MALFORMED_QUERY", f"unexpected token: {part}")
                conditions.append((c[1], c[2], c[3]))
        order = [o.split()[0] for o in m["order"].split(",")] if m["order"] else []
        for name in [*fields, *(c[0] for c in conditions), *order]:
            if name not in state.fields:
                col = soql.find(name) + 1
                raise SoqlError(
                    "INVALID_FIELD",
                    f"\n{soql}\n{' ' * (col - 1)}^\nERROR at Row:1:Column:{col}\n"
                    f"No such column '{name}' on entity '{state.name}'. {INVALID_FIELD_TAIL}",
                )
        rows = [r for r in state.records if include_deleted or r["IsDeleted"] != "true"]
        for name, op, literal in conditions:
            rows = [r for r in rows if _compare(r.get(name, ""), op, literal, state.fields[name]["type"])]
        for name in reversed(order):
            rows.sort(key=lambda r, n=name: r.get(n, ""))
        if m["limit"]:
            rows = rows[: int(m["limit"])]
        return state, fields, rows


class SoqlError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_stamp(text: str) -> dt.datetime:
    text = text.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return dt.datetime.fromisoformat(text)


def _compare(value: str, op: str, literal: str, sf_type: str) -> bool:
    literal = literal.strip()
    if literal.lower() == "null":
        return (value == "") == (op == "=")
    if sf_type == "datetime":
        if value == "":
            return False
        a, b = _parse_stamp(value), _parse_stamp(literal)
    elif sf_type in ("double", "int", "percent", "currency"):
        if value == "":
            return False
        a, b = float(value), float(literal)
    else:
        a, b = value, literal.strip("'")
    return {"=": a == b, "!=": a != b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


def _json_value(text: str, sf_type: str):
    if text == "":
        return None
    if sf_type == "boolean":
        return text.lower() == "true"
    if sf_type in ("double", "percent", "currency"):
        return float(text)
    if sf_type == "int":
        return int(float(text))
    if sf_type == "datetime":
        return _parse_stamp(text).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_parse_stamp(text).microsecond // 1000:03d}+0000"
    return text


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return buf.getvalue()


def _handler(server: SalesforceServer):
    api = f"/services/data/v{server.api_version}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        # -- responses

        def send(
            self,
            status: int,
            body: bytes | str | dict | list | None,
            ctype="application/json;charset=UTF-8",
            headers: dict | None = None,
        ) -> None:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
            if getattr(self, "stall_for", 0):
                server.released.wait(self.stall_for)
                self.stall_for = 0.0
            self.send_response(status)
            if data or status != 204:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, code: str, message: str) -> None:
            self.send(status, [{"message": message, "errorCode": code}])

        # -- dispatch

        def handle_any(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with server.lock:
                server.requests.append(Request(method, parts.path, query, body, dict(self.headers), time.monotonic()))
                failure = next(
                    (f for f in server._failures if (f[2] is None or f[2] == method) and f[3] in parts.path),
                    None,
                )
                if failure is not None:
                    server._failures.remove(failure)
                self.stall_for = 0.0
                for item in server._stalls:
                    if (item[1] is None or item[1] == method) and item[2] in parts.path:
                        server._stalls.remove(item)
                        self.stall_for = item[0]
                        break
                # Logins are not API requests: the limits count only calls under /services/data.
                api_call = parts.path.startswith("/services/data/")
                limit = server._limits.pop(0) if server._limits and failure is None and api_call else None
            if failure:
                status, retry_after = failure[:2]
                self.send(
                    status,
                    [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
                    if status == 429
                    else [{"message": "Service unavailable", "errorCode": "SERVER_UNAVAILABLE"}],
                    headers={"Retry-After": retry_after} if retry_after else None,
                )
                return
            if parts.path == "/services/oauth2/token" and method == "POST":
                return self.token(body)
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in server.tokens:
                return self.error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if limit:
                text = (
                    "TotalRequests Limit exceeded." if limit == "daily" else "ConcurrentPerOrgLongTxn Limit exceeded."
                )
                return self.error(403, "REQUEST_LIMIT_EXCEEDED", text)
            try:
                self.route(method, parts.path, query, body)
            except SoqlError as exc:
                self.error(400, exc.code, exc.message)

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_PATCH(self):
            self.handle_any("PATCH")

        def do_DELETE(self):
            self.handle_any("DELETE")

        # -- OAuth

        def token(self, body: str) -> None:
            form = {k: v[0] for k, v in parse_qs(body).items()}
            grant = form.get("grant_type")
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                try:
                    claims = jwt.decode(
                        form.get("assertion", ""),
                        server.public_key_pem,
                        algorithms=["RS256"],
                        audience=server.jwt_audience,
                        options={"require": ["exp", "iss", "sub", "aud"]},
                    )
                except jwt.PyJWTError as exc:
                    return self.send(400, {"error": "invalid_grant", "error_description": f"invalid assertion: {exc}"})
                if claims["iss"] != server.client_id:
                    return self.send(
                        400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
                    )
                if claims["sub"] != server.username:
                    return self.send(
                        400, {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}
                    )
            elif grant == "client_credentials":
                if form.get("client_id") != server.client_id or form.get("client_secret") != server.client_secret:
                    return self.send(
                        400, {"error": "invalid_client", "error_description": "invalid client credentials"}
                    )
            else:
                return self.send(
                    400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
                )
            token = server.issue_token()
            self.send(
                200,
                {
                    "access_token": token,
                    "scope": "api",
                    "instance_url": server.url,
                    "id": f"{server.url}/id/00DTEST0000000001/005TEST0000000001",
                    "token_type": "Bearer",
                    "issued_at": str(int(dt.datetime.now(dt.UTC).timestamp() * 1000)),
                },
            )

        # -- API

        def route(self, method: str, path: str, query: dict, body: str) -> None:
            if not path.startswith(api + "/"):
                return self.error(404, "NOT_FOUND", "The requested resource does not exist")
            rest = path[len(api) + 1 :].rstrip("/")
            m = re.fullmatch(r"sobjects/(\w+)/describe", rest)
            if m and method == "GET":
                state = server.objects.get(m[1])
                if state is None:
                    return self.error(404, "NOT_FOUND", "The requested resource does not exist")
                return self.send(
                    200,
                    {
                        "name": state.name,
                        "label": state.name,
                        "queryable": True,
                        "retrieveable": True,
                        "fields": list(state.fields.values()),
                        "urls": {"describe": f"{api}/sobjects/{state.name}/describe"},
                    },
                )
            if rest in ("query", "queryAll") and method == "GET":
                state, fields, rows = server.run_soql(query.get("q", ""), rest == "queryAll")
                cursor = f"01g{next(server._ids):015d}"
                server.cursors[cursor] = (rows, 0, state, fields)
                return self.query_page(rest, cursor)
            m = re.fullmatch(r"(query|queryAll)/(01g\d+)-(\d+)", rest)
            if m and method == "GET":
                rows, _, state, fields = server.cursors[m[2]]
                server.cursors[m[2]] = (rows, int(m[3]), state, fields)
                return self.query_page(m[1], m[2])
            if rest == "jobs/query" and method == "POST":
                return self.create_query_job(json.loads(body))
            m = re.fullmatch(r"jobs/query/(\w+)(/results)?", rest)
            if m:
                job = server.jobs.get(m[1])
                if job is None or job.kind != "query":
                    return self.error(404, "NOT_FOUND", "The requested resource does not exist")
                if m[2]:
                    return self.query_results(job, query)
                if method == "PATCH":
                    return self.abort(job, body)
                if job.info["state"] == "Aborted":
                    return self.send(200, job.info)
                job.polls += 1
                if job.polls == 1:
                    with server.lock:
                        hooks = [h for h in server._job_hooks if h[1] in (None, job.info["object"])]
                        server._job_hooks = [h for h in server._job_hooks if h not in hooks]
                    for hook, _ in hooks:
                        hook()
                info = dict(job.info)
                if job.polls <= server.job_polls - 1:
                    info["state"] = "InProgress"
                else:
                    job.info.update(
                        state="JobComplete", numberRecordsProcessed=len(job.rows), retries=0, totalProcessingTime=5
                    )
                    info = dict(job.info)
                return self.send(200, info)
            if rest == "jobs/ingest" and method == "POST":
                return self.create_ingest_job(json.loads(body))
            m = re.fullmatch(
                r"jobs/ingest/(\w+)(?:/(batches|failedResults|successfulResults|unprocessedrecords))?", rest
            )
            if m:
                job = server.jobs.get(m[1])
                if job is None or job.kind != "ingest":
                    return self.error(404, "NOT_FOUND", "The requested resource does not exist")
                return self.ingest(job, method, m[2], body)
            return self.error(404, "NOT_FOUND", "The requested resource does not exist")

        def query_page(self, endpoint: str, cursor: str) -> None:
            rows, start, state, fields = server.cursors[cursor]
            page = rows[start : start + server.rest_page_size]
            end = start + len(page)
            records = []
            for row in page:
                record = {"attributes": {"type": state.name, "url": f"{api}/sobjects/{state.name}/{row.get('Id', '')}"}}
                for f in fields:
                    record[f] = _json_value(row.get(f, ""), state.fields[f]["type"])
                records.append(record)
            out = {"totalSize": len(rows), "done": end >= len(rows), "records": records}
            if end < len(rows):
                out["nextRecordsUrl"] = f"{api}/{endpoint}/{cursor}-{end}"
            self.send(200, out)

        def job_info(self, job_id: str, operation: str, obj: str, state: str, **extra) -> dict:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
            return {
                "id": job_id,
                "operation": operation,
                "object": obj,
                "createdById": "005TEST0000000001",
                "createdDate": stamp,
                "systemModstamp": stamp,
                "state": state,
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(server.api_version),
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
                **extra,
            }

        def create_query_job(self, spec: dict) -> None:
            operation = spec.get("operation")
            if operation not in ("query", "queryAll"):
                return self.error(400, "INVALIDJOB", f"Invalid operation: {operation}")
            try:
                state, fields, rows = server.run_soql(spec.get("query", ""), operation == "queryAll")
            except SoqlError as exc:
                # Bulk API 2.0 reports a query it cannot compile when the job is created.
                return self.error(400, "INVALIDJOB", f"Failed to process query: {exc.code}: {exc.message}")
            job_id = f"750{next(server._ids):015d}"
            info = self.job_info(job_id, operation, state.name, "UploadComplete")
            server.jobs[job_id] = _Job(
                job_id,
                "query",
                info,
                rows=[{f: r.get(f, "") for f in fields} for r in rows],
                columns=fields,
                soql=spec.get("query", ""),
            )
            self.send(200, info)

        def abort(self, job: _Job, body: str) -> None:
            if json.loads(body or "{}").get("state") != "Aborted":
                return self.error(400, "INVALIDJOB", "unsupported state change")
            if job.info["state"] in ("JobComplete", "Failed", "Aborted"):
                return self.error(400, "INVALIDJOB", f"Job is already {job.info['state']}")
            job.info["state"] = "Aborted"
            return self.send(200, job.info)

        def query_results(self, job: _Job, query: dict) -> None:
            if job.info["state"] != "JobComplete":
                return self.error(400, "INVALIDJOB", "Job is not complete")
            start = int(query.get("locator") or 0) if (query.get("locator") or "0").isdigit() else 0
            size = int(query.get("maxRecords") or server.bulk_page_size)
            page = job.rows[start : start + size]
            end = start + len(page)
            locator = str(end) if end < len(job.rows) else "null"
            with server.lock:
                cut = server._cuts > 0
                server._cuts -= cut
            if cut:
                data = _csv_text(job.columns, page).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Sforce-Locator", locator)
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            self.send(
                200,
                _csv_text(job.columns, page),
                ctype="text/csv",
                headers={"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(len(page))},
            )

        def create_ingest_job(self, spec: dict) -> None:
            obj = spec.get("object")
            if obj not in server.objects:
                return self.error(400, "INVALIDJOB", f"Entity '{obj}' is not supported by the Bulk API.")
            if spec.get("operation") != "upsert" or not spec.get("externalIdFieldName"):
                return self.error(400, "INVALIDJOB", "only upsert with externalIdFieldName is served here")
            job_id = f"750{next(server._ids):015d}"
            info = self.job_info(
                job_id,
                "upsert",
                obj,
                "Open",
                externalIdFieldName=spec["externalIdFieldName"],
                contentUrl=f"services/data/v{server.api_version}/jobs/ingest/{job_id}/batches",
            )
            server.jobs[job_id] = _Job(job_id, "ingest", info)
            self.send(200, info)

        def ingest(self, job: _Job, method: str, sub: str | None, body: str) -> None:
            if sub == "batches" and method == "PUT":
                if job.info["state"] != "Open":
                    return self.error(400, "INVALIDJOB", "Job is not open for upload")
                job.data += body
                return self.send(201, b"", ctype="text/plain")
            if sub is None and method == "PATCH":
                wanted = json.loads(body).get("state")
                if wanted == "Aborted":
                    return self.abort(job, body)
                if wanted != "UploadComplete":
                    return self.error(400, "INVALIDJOB", "unsupported state change")
                if job.info["state"] != "Open":
                    return self.error(400, "INVALIDJOB", f"Job is {job.info['state']}")
                job.info["state"] = "UploadComplete"
                return self.send(200, job.info)
            if sub is None and method == "GET":
                if job.info["state"] == "UploadComplete":
                    job.polls += 1
                    if job.polls >= (server.job_polls if server.ingest_polls is None else server.ingest_polls):
                        self.process(job)
                    else:
                        return self.send(200, {**job.info, "state": "InProgress"})
                return self.send(200, job.info)
            columns = list(csv.DictReader(io.StringIO(job.data)).fieldnames or [])
            if sub == "successfulResults":
                return self.send(200, _csv_text(["sf__Id", "sf__Created", *columns], job.success), ctype="text/csv")
            if sub == "failedResults":
                return self.send(200, _csv_text(["sf__Id", "sf__Error", *columns], job.failed), ctype="text/csv")
            if sub == "unprocessedrecords":
                return self.send(200, _csv_text(columns, []), ctype="text/csv")
            return self.error(405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed")

        def process(self, job: _Job) -> None:
            state = server.objects[job.info["object"]]
            key = job.info["externalIdFieldName"]
            rows = list(csv.DictReader(io.StringIO(job.data)))
            with server.lock:
                for row in rows:
                    rid = row.get(key, "")
                    error = server._ingest_errors.get(rid)
                    if error:
                        if not error[1]:
                            server._ingest_errors.pop(rid)
                        job.failed.append({"sf__Id": rid if key == "Id" else "", "sf__Error": error[0], **row})
                        continue
                    unknown = [c for c in row if c not in state.fields]
                    target = next((r for r in state.records if r.get(key) == rid and r["IsDeleted"] != "true"), None)
                    if unknown:
                        job.failed.append(
                            {
                                "sf__Id": "",
                                "sf__Error": f"INVALID_FIELD:No such column '{unknown[0]}' on entity '{state.name}':--",
                                **row,
                            }
                        )
                        continue
                    if target is None:
                        job.failed.append(
                            {
                                "sf__Id": "",
                                "sf__Error": "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--",
                                **row,
                            }
                        )
                        continue
                    for col, value in row.items():
                        if col != key and value != "":
                            target[col] = "" if value == "#N/A" else value
                    target["SystemModstamp"] = server.tick()
                    job.success.append({"sf__Id": target["Id"], "sf__Created": "false", **row})
            job.info.update(
                state="JobComplete",
                numberRecordsProcessed=len(rows),
                numberRecordsFailed=len(job.failed),
                retries=0,
                totalProcessingTime=10,
            )

    return Handler
