"""Reading a Salesforce org straight from its API into an export folder that :func:`renewforecast.load_book` reads.

The same field map as the CSV reader (:data:`~renewforecast.io.salesforce.SALESFORCE_OBJECTS`)
decides what is asked for, so a pulled folder and a Data Loader export are
the same thing. Sources of every rule are listed in ``docs/data_model.md``,
section *Salesforce API (pull and push)*.

Connection
    Only from the environment: ``SF_INSTANCE_URL`` + ``SF_ACCESS_TOKEN``; or
    the OAuth 2.0 JWT bearer flow of a connected app (``SF_CLIENT_ID``,
    ``SF_USERNAME``, ``SF_JWT_KEY_FILE``, ``SF_LOGIN_URL``); or the client
    credentials flow (``SF_CLIENT_ID``, ``SF_CLIENT_SECRET``, ``SF_LOGIN_URL``
    = the org's My Domain). Tokens and keys never appear in a message, a log
    line or a ``repr``.
Endpoints
    ``sobjects/{Object}/describe``; REST ``query`` / ``queryAll`` with
    ``nextRecordsUrl`` paging for the small reference objects
    (:data:`REST_OBJECTS`); Bulk API 2.0 query jobs (``jobs/query``, results
    paged with ``Sforce-Locator``) for the others, which can hold millions of
    rows.
Incremental pulls
    With a high-water mark (``since`` or a state file), objects that have
    ``SystemModstamp`` and ``IsDeleted`` are read with ``queryAll`` and
    ``WHERE SystemModstamp >= mark``: changed rows replace theirs by Id,
    deleted ones are removed, and (``reconcile``) rows whose Id Salesforce no
    longer returns are dropped. The next mark is the time the query started
    by Salesforce's clock less an overlap margin, never the latest stamp
    read: a query is not a snapshot. Others are read whole.
Safety
    Every request has a timeout; a pull holds an exclusive lock beside the
    folder and first repairs what an interrupted pull left behind.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import email.utils
import fcntl
import io
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import jwt
import requests
import simple_salesforce
from requests.adapters import HTTPAdapter
from simple_salesforce.exceptions import SalesforceError
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from renewforecast.atomic import atomic_write_text
from renewforecast.exceptions import Problem, RenewForecastError
from renewforecast.io.salesforce import SALESFORCE_OBJECTS, SfObject

__all__ = [
    "API_VERSION",
    "BULK_PAGE_SIZE",
    "DEFAULT_OVERLAP_SECONDS",
    "RECYCLE_BIN_DAYS",
    "REST_OBJECTS",
    "DailyApiLimitError",
    "PullLockedError",
    "PullParameterError",
    "PullResult",
    "PullStateWriteError",
    "RetryPolicy",
    "SalesforceApiError",
    "SalesforceAuthError",
    "SalesforceConnection",
    "SalesforceFieldError",
    "SalesforceUnavailableError",
    "SalesforceUrlError",
    "StateOrgMismatchError",
    "api_objects",
    "check_pull_parameters",
    "default_jwt_audience",
    "pull_salesforce",
    "read_csv_text",
    "recover_pull_folder",
    "render_rest_value",
    "soql_datetime",
]

logger = logging.getLogger(__name__)

#: REST and Bulk API version used unless ``SF_API_VERSION`` says otherwise.
API_VERSION = "59.0"
#: Days a deleted record stays in the Recycle Bin, where ``queryAll`` still sees it.
RECYCLE_BIN_DAYS = 15
#: Small reference objects read through REST query: a few pages cost fewer
#: calls than a Bulk job's create, poll and results, and the currency objects
#: are setup objects documented for ``query()``.
REST_OBJECTS = frozenset({"Product2", "CurrencyType", "DatedConversionRate"})
#: Seconds taken off the server's query start time to make the next high-water
#: mark: a transaction that commits late, with a stamp older than the query,
#: is still read by the next pull.
DEFAULT_OVERLAP_SECONDS = 300.0
#: ``maxRecords`` of each Bulk API 2.0 result set unless told otherwise.
BULK_PAGE_SIZE = 50_000
_DEFAULT_LOGIN_URL = "https://login.salesforce.com"
_SANDBOX_AUDIENCE = "https://test.salesforce.com"
_JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_DAILY_LIMIT_TEXT = "TotalRequests Limit exceeded"
_RETRIED_STATUSES = (429, 500, 502, 503, 504)
#: Methods that may be sent again after the request reached the server.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
#: Answers that mean "not run, come back later", safe to retry for every method.
_REFUSED_STATUSES = frozenset({429, 503})


# ------------------------------------------------------------------ errors


class SalesforceApiError(RenewForecastError):
    """Salesforce refused or could not answer a request.

    A pull that raises it leaves its folder and state file as they were
    (except :class:`PullStateWriteError`, raised after the folder was
    updated); a push may have sent earlier jobs (each row is upserted whole, so running
    again is safe).

    Attributes
    ----------
    status : int or None
        The HTTP status of the last answer, if any.
    error_code : str
        Salesforce's ``errorCode`` (``INVALID_FIELD``), or ``""``.
    """

    def __init__(self, message: str, *, status: int | None = None, error_code: str = ""):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class SalesforceAuthError(SalesforceApiError):
    """The credentials were refused, missing, or the session expired and cannot be renewed."""


class DailyApiLimitError(SalesforceApiError):
    """The org has used its 24-hour API request allocation (``TotalRequests Limit exceeded``).

    Retrying cannot help until the rolling 24-hour window frees calls, so it
    is raised at once.
    """


class SalesforceUnavailableError(SalesforceApiError):
    """The network or Salesforce failed, and went on failing after every retry."""


class SalesforceFieldError(SalesforceApiError):
    """Required fields are missing from the org; no query was run.

    Attributes
    ----------
    problems : list of Problem
        One per missing object or field.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} required Salesforce field(s) or object(s) are not visible to the connected user; "
            f"nothing was pulled:\n{lines}\nGrant the user field-level access to them, or correct the field map.",
            error_code="INVALID_FIELD",
        )


class SalesforceUrlError(SalesforceApiError, ValueError):
    """A login or instance URL is not ``https://``: tokens and secrets would travel in clear text.

    It is also a :class:`ValueError` (a bad setting, like a malformed ``SF_*`` value).
    """


class PullParameterError(SalesforceApiError, ValueError):
    """A parameter of the pull is malformed (``since``, ``objects``, ``overlap``); nothing was asked of Salesforce.

    It is also a :class:`ValueError`.
    """


class StateOrgMismatchError(PullParameterError):
    """The state file was written by a pull from another org; an incremental pull into it would mix two orgs."""


class PullLockedError(SalesforceApiError):
    """Another pull into the same folder is running (it holds the lock file beside the folder); nothing was done.

    Attributes
    ----------
    lock_file : str
    """

    def __init__(self, message: str, *, lock_file: str):
        super().__init__(message)
        self.lock_file = lock_file


class PullStateWriteError(SalesforceApiError):
    """The folder WAS updated, but the state file could not be written afterwards.

    Unlike the other errors, the export folder holds the new pull. The state
    file still holds the previous marks (or nothing), so the next pull reads
    more than it needs to; nothing is lost.

    Attributes
    ----------
    state_file : str
    """

    def __init__(self, message: str, *, state_file: str):
        super().__init__(message)
        self.state_file = state_file


# ------------------------------------------------------------------ connection


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up.

    Parameters
    ----------
    total : int, default 5
        Retries of a request answered 429 or 5xx, or not answered at all
        (urllib3 ``Retry``: exponential back-off, ``Retry-After`` honoured).
    backoff_factor : float, default 1.0
        urllib3's factor: sleeps of factor x 2**(n-1) seconds.
    backoff_max : float, default 120.0
        Longest sleep between two retries.
    limit_retries : int, default 4
        Retries of a request refused with ``REQUEST_LIMIT_EXCEEDED`` that is
        not the daily limit (concurrent long-running requests).
    limit_backoff : float, default 5.0
        First sleep after such a refusal; doubled at each retry.
    poll_interval : float, default 2.0
        Seconds before the second look at a Bulk API job; the wait doubles
        after each look, up to ``poll_max``.
    poll_timeout : float, default 3600.0
        Give up on (and abort) a Bulk API job that has not finished after this long.
    poll_max : float, default 30.0
        Longest wait between two looks at a job.
    connect_timeout : float, default 30.0
        Seconds to wait for a connection to Salesforce.
    read_timeout : float, default 300.0
        Seconds to wait for the next bytes of an answer; every request has
        both timeouts, so a server that never answers cannot hang a pull.

    Examples
    --------
    >>> RetryPolicy(total=2, backoff_factor=0.0).adapter_retry().total
    2
    """

    total: int = 5
    backoff_factor: float = 1.0
    backoff_max: float = 120.0
    limit_retries: int = 4
    limit_backoff: float = 5.0
    poll_interval: float = 2.0
    poll_timeout: float = 3600.0
    poll_max: float = 30.0
    connect_timeout: float = 30.0
    read_timeout: float = 300.0

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` seconds, as requests takes them."""
        return (self.connect_timeout, self.read_timeout)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetryPolicy:
        """The default policy, with what a scheduler set: ``SF_RETRIES`` (``total`` and ``limit_retries``),
        ``SF_BACKOFF`` (``backoff_factor`` and ``limit_backoff``, seconds), ``SF_POLL_INTERVAL`` and
        ``SF_TIMEOUT`` (``read_timeout``, seconds).

        Examples
        --------
        >>> RetryPolicy.from_env({"SF_RETRIES": "1", "SF_BACKOFF": "0.5"})
        RetryPolicy(total=1, backoff_factor=0.5, backoff_max=120.0, limit_retries=1, limit_backoff=0.5, ...)
        >>> RetryPolicy.from_env({"SF_RETRIES": "many"})
        Traceback (most recent call last):
        ...
        ValueError: SF_RETRIES must be a number, not 'many'
        """
        env = os.environ if env is None else env
        values: dict[str, float] = {}
        for name, fields, kind in (
            ("SF_RETRIES", ("total", "limit_retries"), int),
            ("SF_BACKOFF", ("backoff_factor", "limit_backoff"), float),
            ("SF_POLL_INTERVAL", ("poll_interval",), float),
            ("SF_TIMEOUT", ("read_timeout",), float),
        ):
            text = env.get(name)
            if not text:
                continue
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"{name} must be a number, not {text!r}") from None
            if value < 0:
                raise ValueError(f"{name} must not be negative, not {text!r}")
            values.update(dict.fromkeys(fields, value))
        return cls(**values)

    def adapter_retry(self) -> Retry:
        """The urllib3 ``Retry`` mounted on the session.

        Connection failures (nothing was sent) are retried for every method;
        a read timeout, a broken answer or a 500/502/504 only for ``GET``-like
        methods, because a ``POST`` or ``PATCH`` may already have created or
        changed a job; 429 and 503 (refused, not run) for every method.
        """
        return _SafeRetry(
            total=self.total,
            connect=self.total,
            read=self.total,
            status=self.total,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            status_forcelist=_RETRIED_STATUSES,
            allowed_methods=_IDEMPOTENT,
            respect_retry_after_header=True,
            raise_on_status=False,
        )


class _SafeRetry(Retry):
    """urllib3 ``Retry`` that also retries non-idempotent methods on 429 and 503, and on nothing else."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method and method.upper() not in _IDEMPOTENT:
            return status_code in _REFUSED_STATUSES and status_code in (self.status_forcelist or ())
        return super().is_retry(method, status_code, has_retry_after)


class _ApiSession(requests.Session):
    """A session whose every request has a timeout, and that notes the server's clock.

    simple-salesforce's ``describe``, ``query`` and ``query_more`` pass no
    timeout; requests then waits forever. Here a request without one gets
    the policy's ``(connect, read)`` timeouts.
    """

    def __init__(self, timeout: tuple[float, float]):
        super().__init__()
        self.default_timeout = timeout
        self.last_server_time: dt.datetime | None = None

    def request(self, method, url, *args, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        response = super().request(method, url, *args, **kwargs)
        self.last_server_time = _server_time(response)
        return response


def _server_time(response: requests.Response) -> dt.datetime | None:
    """When the server began answering, by its own clock: the ``Date`` header less the time the answer took.

    Examples
    --------
    >>> r = requests.Response()
    >>> r.headers["Date"] = "Mon, 30 Nov 2026 21:00:10 GMT"
    >>> r.elapsed = dt.timedelta(seconds=2.5)
    >>> _server_time(r).isoformat()
    '2026-11-30T21:00:07.500000+00:00'
    >>> _server_time(requests.Response()) is None
    True
    """
    text = response.headers.get("Date")
    if not text:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC) - (response.elapsed or dt.timedelta(0))


def _require_https(url: str, what: str) -> str:
    if urlsplit(url).scheme.lower() != "https":
        raise SalesforceUrlError(
            f"{what} must be an https:// URL, not {urlsplit(url).scheme or 'a bare host'}:// "
            f"({urlsplit(url).netloc or url[:60]}): tokens and secrets would be sent in clear text."
        )
    return url


def default_jwt_audience(login_url: str) -> str:
    """The ``aud`` of a JWT bearer assertion: Salesforce's login server, never a My Domain URL.

    ``https://test.salesforce.com`` for a sandbox (logging in at
    test.salesforce.com or a ``*.sandbox.my.salesforce.com`` My Domain),
    ``https://login.salesforce.com`` otherwise. ``SF_JWT_AUDIENCE`` overrides
    it (an Experience Cloud site URL, for example).

    Examples
    --------
    >>> default_jwt_audience("https://acme.my.salesforce.com")
    'https://login.salesforce.com'
    >>> default_jwt_audience("https://acme--uat.sandbox.my.salesforce.com")
    'https://test.salesforce.com'
    >>> default_jwt_audience("https://test.salesforce.com/")
    'https://test.salesforce.com'
    """
    host = (urlsplit(login_url).hostname or "").lower()
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return _SANDBOX_AUDIENCE
    return _DEFAULT_LOGIN_URL


class _CaBundleAdapter(HTTPAdapter):
    """An adapter that verifies with a chosen CA bundle.

    requests lets ``REQUESTS_CA_BUNDLE`` override ``Session.verify`` on every
    request (psf/requests#3829), so a bundle given explicitly is applied here,
    where the environment no longer reaches.
    """

    def __init__(self, ca_bundle: str | None, **kwargs):
        self.ca_bundle = ca_bundle
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        if self.ca_bundle and kwargs.get("verify") is not False:
            kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


class _HttpFailure(Exception):
    def __init__(self, status: int, content: Any, url: str):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.content = content
        self.url = url


def _first_error(content: Any) -> tuple[str, str]:
    """(errorCode, message) from a REST error body: a list of {message, errorCode}."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode", content.get("error", ""))), str(
            content.get("message", content.get("error_description", ""))
        )
    return "", str(content or "")[:300]


def _path_of(url: str) -> str:
    return url.split("?", 1)[0]


class SalesforceConnection:
    """An authenticated session on one Salesforce org, read from the environment.

    Build it with :meth:`from_env`. It holds a :class:`requests.Session` with
    retries mounted, a :class:`simple_salesforce.Salesforce` client on that
    session, and the means to renew an expired session (JWT bearer and
    client credentials flows only).

    Parameters
    ----------
    instance_url : str
        ``https://MyDomain.my.salesforce.com``.
    access_token : str, optional
        A session id; with ``authenticate`` it is fetched when missing.
    authenticate : callable, optional
        ``authenticate(session) -> (access_token, instance_url)`` or
        ``(access_token, instance_url, org_id)``; called again once when the
        session expires.
    flow : str
        ``"access_token"``, ``"jwt"`` or ``"client_credentials"`` (shown in repr).
    api_version : str
    retry : RetryPolicy
    ca_bundle : str, optional
        CA bundle to verify the server with; it wins over
        ``REQUESTS_CA_BUNDLE``. Without it requests' default applies, which
        honours ``REQUESTS_CA_BUNDLE``.

    Examples
    --------
    >>> conn = SalesforceConnection("https://example.my.salesforce.com", access_token="00Dx!secret")
    >>> conn
    SalesforceConnection(instance_url='https://example.my.salesforce.com', flow='access_token', api_version='59.0')
    >>> "secret" in repr(conn)
    False
    """

    def __init__(
        self,
        instance_url: str | None,
        *,
        access_token: str | None = None,
        authenticate: Callable[[requests.Session], tuple[str, ...]] | None = None,
        flow: str = "access_token",
        api_version: str = API_VERSION,
        retry: RetryPolicy | None = None,
        ca_bundle: str | None = None,
    ):
        self.retry = retry or RetryPolicy()
        self.api_version = api_version
        self.flow = flow
        self._authenticate = authenticate
        self.session = _ApiSession(self.retry.timeout)
        # Only https is mounted with retries; http:// URLs are refused before any request.
        self.session.mount("https://", _CaBundleAdapter(ca_bundle, max_retries=self.retry.adapter_retry()))
        self.instance_url = (instance_url or "").rstrip("/")
        if self.instance_url:
            _require_https(self.instance_url, "SF_INSTANCE_URL")
        #: The org's id (``00D...``) when the login said it (JWT and client credentials flows), else None.
        self.org_id: str | None = None
        self.__token = access_token
        self._sf: simple_salesforce.Salesforce | None = None
        if self.__token is None:
            self._login()

    def __repr__(self) -> str:
        return (
            f"SalesforceConnection(instance_url={self.instance_url!r}, flow={self.flow!r}, "
            f"api_version={self.api_version!r})"
        )

    # -- construction

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        retry: RetryPolicy | None = None,
        ca_bundle: str | None = None,
    ) -> SalesforceConnection:
        """A connection from ``SF_*`` environment variables (see the module docstring).

        ``SF_API_VERSION`` overrides :data:`API_VERSION`; ``SF_CA_BUNDLE``
        names a CA bundle. Without a usable set of variables it raises
        :class:`SalesforceAuthError` naming the variables (never their values).

        Examples
        --------
        >>> SalesforceConnection.from_env({"SF_INSTANCE_URL": "https://x.my.salesforce.com", "SF_ACCESS_TOKEN": "t"})
        SalesforceConnection(instance_url='https://x.my.salesforce.com', flow='access_token', api_version='59.0')
        >>> SalesforceConnection.from_env({})
        Traceback (most recent call last):
        ...
        renewforecast.io.salesforce_api.SalesforceAuthError: No Salesforce credentials in the environment: ...
        """
        env = os.environ if env is None else env
        version = env.get("SF_API_VERSION") or API_VERSION
        retry = retry or RetryPolicy.from_env(env)
        ca_bundle = ca_bundle or env.get("SF_CA_BUNDLE") or None
        login_url = _require_https((env.get("SF_LOGIN_URL") or _DEFAULT_LOGIN_URL).rstrip("/"), "SF_LOGIN_URL")
        client_id = env.get("SF_CLIENT_ID")
        common = {"api_version": version, "retry": retry, "ca_bundle": ca_bundle}
        if client_id and env.get("SF_USERNAME") and env.get("SF_JWT_KEY_FILE"):
            key_file = env["SF_JWT_KEY_FILE"]
            audience = env.get("SF_JWT_AUDIENCE") or default_jwt_audience(login_url)
            auth = _jwt_flow(login_url, client_id, env["SF_USERNAME"], key_file, audience)
            return cls(env.get("SF_INSTANCE_URL"), authenticate=auth, flow="jwt", **common)
        if client_id and env.get("SF_CLIENT_SECRET"):
            auth = _client_credentials_flow(login_url, client_id, env["SF_CLIENT_SECRET"])
            return cls(env.get("SF_INSTANCE_URL"), authenticate=auth, flow="client_credentials", **common)
        if env.get("SF_INSTANCE_URL") and env.get("SF_ACCESS_TOKEN"):
            return cls(env["SF_INSTANCE_URL"], access_token=env["SF_ACCESS_TOKEN"], **common)
        raise SalesforceAuthError(
            "No Salesforce credentials in the environment: set SF_INSTANCE_URL and SF_ACCESS_TOKEN; or "
            "SF_CLIENT_ID, SF_USERNAME, SF_JWT_KEY_FILE and SF_LOGIN_URL (JWT bearer flow of a connected app); or "
            "SF_CLIENT_ID, SF_CLIENT_SECRET and SF_LOGIN_URL = your My Domain URL (client credentials flow)."
        )

    def _login(self) -> None:
        if self._authenticate is None:
            raise SalesforceAuthError(
                f"The Salesforce session for {self.instance_url} has expired or is invalid (INVALID_SESSION_ID) "
                "and a bare access token cannot be renewed: get a new SF_ACCESS_TOKEN, or configure the JWT "
                "bearer or client credentials flow so sessions are renewed automatically.",
                status=401,
                error_code="INVALID_SESSION_ID",
            )
        token, instance_url, *rest = self._authenticate(self.session)
        self.__token = token
        self.instance_url = _require_https(instance_url.rstrip("/"), "The instance_url Salesforce returned")
        self.org_id = rest[0] if rest and rest[0] else self.org_id
        self._sf = None

    # -- plumbing

    @property
    def base_path(self) -> str:
        """``/services/data/vXX.X``."""
        return f"/services/data/v{self.api_version}"

    @property
    def sf(self) -> simple_salesforce.Salesforce:
        """A simple-salesforce client on this connection's session and token."""
        if self._sf is None:
            self._sf = simple_salesforce.Salesforce(
                instance_url=self.instance_url,
                session_id=self.__token,
                session=self.session,
                version=self.api_version,
            )
        return self._sf

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.__token}", "Accept-Encoding": "gzip"}
        headers.update(extra or {})
        return headers

    def call(self, fn: Callable[[], Any], what: str) -> Any:
        """Run one API call with session renewal and limit handling.

        ``fn`` raises simple-salesforce's errors or an HTTP failure; an
        expired session is renewed once (when the flow allows), a
        ``REQUEST_LIMIT_EXCEEDED`` refusal other than the daily limit is
        retried with back-off, and every other failure becomes a
        :class:`SalesforceApiError` naming ``what``.
        """
        renewed = False
        limit_tries = 0
        while True:
            try:
                return fn()
            except requests.exceptions.RetryError as exc:
                raise SalesforceUnavailableError(
                    f"Salesforce did not answer {what} after {self.retry.total} retries ({_safe(exc)}). "
                    "Try again later.",
                ) from None
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                if _timed_out(exc):
                    raise SalesforceUnavailableError(
                        f"Salesforce at {self.instance_url} did not answer {what} within "
                        f"{self.retry.read_timeout:g}s (read timeout; requests that may have changed something "
                        "are not sent twice). Try again later, or raise SF_TIMEOUT.",
                    ) from None
                raise SalesforceUnavailableError(
                    f"Could not reach Salesforce at {self.instance_url} for {what} after {self.retry.total} "
                    f"retries ({type(exc).__name__}). Check the network and SF_INSTANCE_URL.",
                ) from None
            except (
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                raise SalesforceUnavailableError(
                    f"Salesforce at {self.instance_url} broke off {what} after {self.retry.total} retries "
                    f"({type(exc).__name__}). Check the network and try again.",
                ) from None
            except (SalesforceError, _HttpFailure) as exc:
                status = exc.status
                code, message = _first_error(exc.content)
                if status in _RETRIED_STATUSES:
                    raise SalesforceUnavailableError(
                        f"Salesforce answered {what} with HTTP {status} ({code or 'no error code'}) after "
                        f"{self.retry.total} retries. Try again later.",
                        status=status,
                        error_code=code,
                    ) from None
                if status == 401:
                    if self._authenticate is None:
                        self._login()  # raises the bare-token error
                    if renewed:
                        raise SalesforceAuthError(
                            f"Salesforce refused the renewed session for {what} ({code}: {message}).",
                            status=401,
                            error_code=code,
                        ) from None
                    logger.info("Salesforce session expired during %s; renewing it once", what)
                    self._login()
                    renewed = True
                    continue
                if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
                    if _DAILY_LIMIT_TEXT.lower() in message.lower():
                        raise DailyApiLimitError(
                            f"The Salesforce org has used its daily API request allocation ({message.strip()}) "
                            f"during {what}. The limit is a rolling 24 hours: run again later, "
                            "or ask the Salesforce admin for a larger allocation.",
                            status=403,
                            error_code=code,
                        ) from None
                    if limit_tries < self.retry.limit_retries:
                        wait = min(self.retry.limit_backoff * 2**limit_tries, self.retry.backoff_max)
                        limit_tries += 1
                        logger.warning(
                            "Salesforce refused %s (%s: %s); retry %d in %.1fs",
                            what,
                            code,
                            message.strip(),
                            limit_tries,
                            wait,
                        )
                        time.sleep(wait)
                        continue
                raise SalesforceApiError(
                    f"Salesforce refused {what}: HTTP {status} {code}: {message.strip()}",
                    status=status,
                    error_code=code,
                ) from None

    def http(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request to ``path`` (relative to the instance) through :meth:`call`."""
        return self.call(
            lambda: self._send(method, path, params=params, json_body=json_body, data=data, headers=headers), what
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = urljoin(self.instance_url + "/", path.lstrip("/"))
        response = self.session.request(
            method,
            url,
            params=params,
            json=json_body,
            data=data,
            headers=self._headers(headers),
            timeout=self.retry.timeout,
        )
        if response.status_code >= 300:
            try:
                content = response.json()
            except ValueError:
                content = response.text
            raise _HttpFailure(response.status_code, content, _path_of(url))
        return response

    # -- REST

    def describe(self, name: str) -> dict[str, Any] | None:
        """The describe of object ``name``, or None when the org has no such object (or it is hidden)."""
        try:
            return self.call(lambda: self.sf.restful(f"sobjects/{name}/describe"), f"describe of {name}")
        except SalesforceApiError as exc:
            if exc.status == 404:
                return None
            raise

    def query_records(self, soql: str, *, include_deleted: bool = False) -> Iterable[dict[str, Any]]:
        """REST query (or queryAll) records, following ``nextRecordsUrl`` until ``done``."""
        return self.rest_query(soql, include_deleted=include_deleted)[1]

    def rest_query(
        self, soql: str, *, include_deleted: bool = False
    ) -> tuple[dt.datetime | None, Iterator[dict[str, Any]]]:
        """(when the query started by the server's clock, its records): the first page is asked for at once."""
        what = f"REST {'queryAll' if include_deleted else 'query'} [{soql}]"
        first = self.call(lambda: self.sf.query(soql, include_deleted=include_deleted), what)
        started = self.session.last_server_time

        def records() -> Iterator[dict[str, Any]]:
            page = first
            while True:
                yield from page["records"]
                if page.get("done", True) or not page.get("nextRecordsUrl"):
                    return
                url = page["nextRecordsUrl"]
                page = self.call(lambda u=url: self.sf.query_more(u, identifier_is_url=True), what)

        return started, records()

    # -- Bulk API 2.0

    def bulk_query(
        self, soql: str, *, include_deleted: bool = False, max_records: int | None = BULK_PAGE_SIZE
    ) -> list[dict]:
        """Rows (as text) of a Bulk API 2.0 query job, all result sets read with ``Sforce-Locator``."""
        job = self.start_bulk_query(soql, include_deleted=include_deleted)
        return list(self.bulk_results(job, max_records=max_records))

    def start_bulk_query(self, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """Create a Bulk API 2.0 query job and wait until it is ``JobComplete``; its info (``id``, ``createdDate``).

        A job that fails, times out or is interrupted while this waits is aborted.
        """
        operation = "queryAll" if include_deleted else "query"
        what = f"Bulk API 2.0 {operation} [{soql}]"
        job = self.http(
            "POST",
            f"{self.base_path}/jobs/query",
            what=what,
            json_body={
                "operation": operation,
                "query": soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        ).json()
        info = self.wait_for_job(f"{self.base_path}/jobs/query/{job['id']}", what)
        return {**job, **info, "createdDate": job.get("createdDate") or info.get("createdDate"), "what": what}

    def bulk_results(self, job: Mapping[str, Any], *, max_records: int | None = BULK_PAGE_SIZE) -> Iterator[dict]:
        """The rows of a finished query job, one result set (``maxRecords`` rows) in memory at a time.

        A result set whose download breaks off is asked for again with the same locator.
        """
        path = f"{self.base_path}/jobs/query/{job['id']}/results"
        what = str(job.get("what") or f"results of Bulk API 2.0 job {job['id']}")
        locator: str | None = None
        while True:
            params: dict[str, Any] = {}
            if locator:
                params["locator"] = locator
            if max_records:
                params["maxRecords"] = max_records
            response = self.call(lambda p=params: self._download(path, p, what), what)
            locator = response.headers.get("Sforce-Locator")
            text = response.content.decode("utf-8")
            del response
            yield from csv.DictReader(io.StringIO(text))
            if not locator or locator == "null":
                return

    def _download(self, path: str, params: Mapping[str, Any], what: str) -> requests.Response:
        broken = 0
        while True:
            try:
                return self._send("GET", path, params=params)
            except (
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
                requests.exceptions.ConnectionError,
            ) as exc:
                if broken >= self.retry.total:
                    raise
                wait = min(self.retry.backoff_factor * 2**broken, self.retry.backoff_max)
                broken += 1
                logger.warning(
                    "The download of a result set of %s broke off (%s); asking for it again in %.1fs",
                    what,
                    type(exc).__name__,
                    wait,
                )
                time.sleep(wait)

    def wait_for_job(self, path: str, what: str) -> dict[str, Any]:
        """Poll a Bulk API 2.0 job until it is JobComplete; raise when it failed or was aborted.

        The first wait is the policy's ``poll_interval``; each next one is
        twice as long, up to ``poll_max``. A job still running after
        ``poll_timeout``, or whose polling fails or is interrupted, is aborted
        before the error goes on.
        """
        deadline = time.monotonic() + self.retry.poll_timeout
        interval = self.retry.poll_interval
        try:
            while True:
                info = self.http("GET", path, what=what).json()
                state = info.get("state")
                if state == "JobComplete":
                    return info
                if state in ("Failed", "Aborted"):
                    raise SalesforceApiError(
                        f"Salesforce {what} ended {state}: {info.get('errorMessage', '')}", error_code=state
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SalesforceUnavailableError(
                        f"Salesforce {what} was still {state} after {self.retry.poll_timeout:g}s; the job was "
                        "aborted. Try again later.",
                        error_code="POLL_TIMEOUT",
                    )
                time.sleep(min(interval, remaining))
                interval = min(interval * 2, max(self.retry.poll_max, self.retry.poll_interval))
        except BaseException as exc:
            if getattr(exc, "error_code", "") not in ("Failed", "Aborted"):
                self.abort_job(path, what)
            raise

    def abort_job(self, path: str, what: str) -> bool:
        """Ask Salesforce to abort a Bulk API 2.0 job (``PATCH {"state": "Aborted"}``); False when it could not."""
        try:
            self.http("PATCH", path, what=f"abort of {what}", json_body={"state": "Aborted"})
        except (SalesforceApiError, requests.exceptions.RequestException) as exc:
            logger.warning("Could not abort %s: %s", what, exc)
            return False
        logger.info("Aborted %s", what)
        return True


def _timed_out(exc: BaseException) -> bool:
    """Whether a requests error is a read timeout (also after urllib3 used up its retries)."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, ReadTimeoutError)


def _safe(exc: BaseException) -> str:
    """An exception's text without query strings (which could carry a locator or a token)."""
    return str(getattr(exc, "args", [""])[0]).split("?", 1)[0][:200] if exc.args else type(exc).__name__


def _token_request(session: requests.Session, login_url: str, data: dict[str, str], flow: str) -> tuple[str, str, str]:
    url = f"{login_url}/services/oauth2/token"
    try:
        response = session.post(url, data=data)
    except requests.exceptions.RequestException as exc:
        raise SalesforceUnavailableError(
            f"Could not reach the Salesforce login server {login_url} ({type(exc).__name__})."
        ) from None
    if response.status_code == 429 or response.status_code >= 500:
        # Still failing after the session's retries: the login server is down, not the credentials wrong.
        raise SalesforceUnavailableError(
            f"The Salesforce login server {login_url} answered HTTP {response.status_code} after the retries; "
            "try again later.",
            status=response.status_code,
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        raise SalesforceAuthError(
            f"Salesforce ({login_url}) refused the {flow} login: {body.get('error', response.status_code)}: "
            f"{body.get('error_description', '')}. Check SF_CLIENT_ID, the user or secret, and SF_LOGIN_URL "
            "(login.salesforce.com, test.salesforce.com for a sandbox, or the org's My Domain).",
            status=response.status_code,
            error_code=str(body.get("error", "")),
        )
    # The identity URL ends /id/{orgId}/{userId}.
    parts = str(body.get("id", "")).rstrip("/").split("/")
    org_id = parts[-2] if len(parts) >= 3 and parts[-3] == "id" else ""
    return body["access_token"], body["instance_url"], org_id


def _jwt_flow(login_url: str, client_id: str, username: str, key_file: str, audience: str):
    def authenticate(session: requests.Session) -> tuple[str, str, str]:
        try:
            key = Path(key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SalesforceAuthError(
                f"Cannot read the JWT private key file named by SF_JWT_KEY_FILE ({exc.strerror})."
            ) from None
        now = int(time.time())
        claims = {"iss": client_id, "sub": username, "aud": audience, "exp": now + 180}
        try:
            assertion = jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            raise SalesforceAuthError(
                "The file named by SF_JWT_KEY_FILE is not a usable RSA private key (PEM)."
            ) from None
        return _token_request(session, login_url, {"grant_type": _JWT_GRANT, "assertion": assertion}, "JWT bearer")

    return authenticate


def _client_credentials_flow(login_url: str, client_id: str, client_secret: str):
    def authenticate(session: requests.Session) -> tuple[str, str, str]:
        data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        return _token_request(session, login_url, data, "client credentials")

    return authenticate


# ------------------------------------------------------------------ values


def read_csv_text(text: str) -> list[dict[str, str]]:
    """Rows of a CSV text as dicts of strings (blank for empty).

    Examples
    --------
    >>> read_csv_text('"Id","Name"\\n"001A","Acme, Inc."\\n')
    [{'Id': '001A', 'Name': 'Acme, Inc.'}]
    """
    return [dict(row) for row in csv.DictReader(io.StringIO(text))]


def render_rest_value(value: Any, kind: str = "") -> str:
    """A REST JSON value as Data Loader and Bulk API write it in a CSV.

    ``kind`` is the describe ``type``. Null is blank, checkboxes
    ``true``/``false``, datetimes in UTC as ``2021-06-16T09:00:00.000Z``.

    Examples
    --------
    >>> render_rest_value("2021-06-16T11:00:00.000+0200", "datetime")
    '2021-06-16T09:00:00.000Z'
    >>> render_rest_value(True), render_rest_value(None), render_rest_value(12.5), render_rest_value(3)
    ('true', '', '12.5', '3')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "datetime" and isinstance(value, str) and value:
        stamp = dt.datetime.strptime(value.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
        stamp = stamp.astimezone(dt.UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def soql_datetime(value: Any) -> str:
    """A SOQL datetime literal in UTC, to the second (``2026-01-31T09:15:00Z``).

    Truncating to the second re-reads rows changed in the same second as the
    high-water mark; replacing them again is harmless, missing them is not.

    Examples
    --------
    >>> soql_datetime("2021-06-16T11:00:00.250+02:00")
    '2021-06-16T09:00:00Z'
    """
    stamp = _utc(value)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC)


# ------------------------------------------------------------------ pulling


@dataclass
class PullResult:
    """What a pull read and wrote.

    Attributes
    ----------
    folder : Path
        The export folder written.
    rows : dict
        Object -> records in its file after the pull.
    changed : dict
        Object -> records read from Salesforce (all of them for a whole pull).
    deleted : dict
        Object -> records removed from the file: deleted in Salesforce
        (``IsDeleted``) or, with ``reconcile``, no longer returned by it.
    reconciled : dict
        Object -> of ``deleted``, the records found gone only by comparing Ids
        (emptied from the Recycle Bin, or no longer visible to the user).
    modes : dict
        Object -> ``"full"`` or ``"incremental"``.
    warnings : list of Problem
        Missing optional fields or objects, and deletions that may have been missed.
    state : dict
        The state written to the state file (high-water marks).
    """

    folder: Path
    rows: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    reconciled: dict[str, int] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


def api_objects(field_map: Mapping[str, SfObject] | None = None) -> dict[str, SfObject]:
    """The Salesforce objects of a field map, by API name (files that are not objects left out).

    Examples
    --------
    >>> sorted(api_objects())[:3]
    ['Account', 'Contract', 'CurrencyType']
    >>> "spend" in api_objects() or "signals" in api_objects()
    False
    """
    objects = {}
    for obj in (field_map or SALESFORCE_OBJECTS).values():
        # spend.csv and signals.csv use canonical names; they are not Salesforce objects.
        if obj.id_field is None or not obj.file.endswith(".csv"):
            continue
        objects[obj.file[: -len(".csv")]] = obj
    return objects


@dataclass
class _Plan:
    name: str
    obj: SfObject
    header: list[str]
    key: str
    mode: str
    rest: bool
    modstamp: bool = False


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _plan(
    name: str, obj: SfObject, describe: dict | None, problems: list[Problem], warnings: list[Problem]
) -> _Plan | None:
    if describe is None:
        problem = Problem(
            obj.file,
            None,
            "",
            "",
            "missing_object",
            f"the org has no object {name} visible to the connected user",
            "error" if obj.required_file else "warning",
        )
        (problems if obj.required_file else warnings).append(problem)
        return None
    present = {f["name"]: f for f in describe.get("fields", [])}
    header = []
    sources = _unique(f.source for f in obj.fields)
    if obj.id_field and obj.id_field not in sources and obj.id_field in present:
        # The record id keys the file (and incremental merges) even where the map does not read it.
        header.append(obj.id_field)
    for source in sources:
        if source in present:
            header.append(source)
            continue
        required = any(f.required for f in obj.fields if f.source == source)
        problem = Problem(
            obj.file,
            None,
            "",
            source,
            "missing_field",
            f"{name}.{source} does not exist in the org or is hidden from the connected user"
            + ("" if required else "; the column is left out and read as blank"),
            "error" if required else "warning",
        )
        (problems if required else warnings).append(problem)
    if "CurrencyIsoCode" in present:
        header.append("CurrencyIsoCode")
    key = obj.id_field if obj.id_field in header else header[0]
    modstamp = "SystemModstamp" in present
    incremental_ok = modstamp and "IsDeleted" in present and key == "Id"
    return _Plan(
        name, obj, header, key, "incremental" if incremental_ok else "full", name in REST_OBJECTS, modstamp=modstamp
    )


def _file_header(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh), [])


def _load_state(state_file: Path | None) -> dict[str, Any]:
    if state_file is None or not Path(state_file).is_file():
        return {}
    try:
        return json.loads(Path(state_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SalesforceApiError(
            f"The pull state file {state_file} cannot be read ({exc}); fix or delete it (then pull with --full)."
        ) from None


def _parse_since(since: Any) -> dt.datetime:
    try:
        return _utc(since)
    except (TypeError, ValueError, OverflowError):
        raise PullParameterError(
            f"since={str(since)[:60]!r} is not a date or date-time: give an ISO 8601 instant such as 2026-01-31 or "
            "2026-01-31T09:15:00Z (UTC when no offset is given)."
        ) from None


def check_pull_parameters(
    *,
    since: Any = None,
    objects: Iterable[str] | None = None,
    overlap: Any = DEFAULT_OVERLAP_SECONDS,
    field_map: Mapping[str, SfObject] | None = None,
) -> tuple[list[str], dt.datetime | None, dt.timedelta]:
    """Check a pull's parameters before any request: (objects to pull, since as UTC, overlap).

    Raises
    ------
    PullParameterError
        An unknown object, a ``since`` that is no date or time, a negative or non-numeric overlap.

    Examples
    --------
    >>> wanted, since, overlap = check_pull_parameters(since="2026-01-31", objects=["Contract"], overlap=60)
    >>> wanted, since.isoformat(), overlap.total_seconds()
    (['Contract'], '2026-01-31T00:00:00+00:00', 60.0)
    >>> check_pull_parameters(objects=["Contracts"])
    Traceback (most recent call last):
    ...
    renewforecast.io.salesforce_api.PullParameterError: objects ['Contracts'] are not in the field map; ...
    """
    catalogue = api_objects(field_map)
    wanted = list(catalogue) if objects is None else list(objects)
    unknown = [o for o in wanted if o not in catalogue]
    if unknown:
        raise PullParameterError(f"objects {unknown} are not in the field map; choose from {sorted(catalogue)}")
    since_at = None if since is None else _parse_since(since)
    try:
        margin = dt.timedelta(seconds=float(overlap))
    except (TypeError, ValueError, OverflowError):
        margin = dt.timedelta(-1)
    if margin < dt.timedelta(0):
        raise PullParameterError(f"overlap={overlap!r} must be a number of seconds, 0 or more.")
    return wanted, since_at, margin


def _floor_second(stamp: dt.datetime) -> dt.datetime:
    return stamp.replace(microsecond=0)


class _Writer:
    """One object's CSV in the staging folder, written as rows arrive (UTF-8, comma, LF, minimal quoting)."""

    def __init__(self, path: Path, header: list[str]):
        self.path = path
        self.header = header
        self.fh = path.open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.fh, lineterminator="\n")
        self.writer.writerow(header)
        self.count = 0

    def row(self, row: Mapping[str, Any]) -> None:
        self.writer.writerow([row.get(c, "") or "" for c in self.header])
        self.count += 1

    def values(self, values: list[str]) -> None:
        self.writer.writerow(values)
        self.count += 1

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


def _lock_path(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.lock")


@contextlib.contextmanager
def _pull_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``.{OUT}.lock`` beside the folder (``fcntl.flock``, exclusive, not waiting) while a pull runs."""
    lock = _lock_path(out_dir)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PullLockedError(
                f"Another pull into {out_dir} is running (it holds {lock}); nothing was done. Wait for it to "
                "finish, or make sure two schedules do not pull into the same folder.",
                lock_file=str(lock),
            ) from None
        yield
    finally:
        # Closing the descriptor releases the lock; the file stays (removing it would let two pulls lock two files).
        os.close(fd)


def recover_pull_folder(out_dir: str | os.PathLike[str]) -> list[str]:
    """Repair what an interrupted pull left beside ``out_dir``; return what was done, in words.

    A pull swaps its folder in with two renames (``OUT`` -> ``.OUT.old-*``,
    then ``.OUT.pull-*`` -> ``OUT``). When ``OUT`` is missing and an old copy
    is there, the pull stopped between the two: the newest old copy is put
    back (it matches the state file, which is written last). Leftover
    ``.OUT.old-*`` and ``.OUT.pull-*`` folders are then removed.
    :func:`pull_salesforce` calls it under its lock; call it only when no pull runs.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> (base / ".org.old-1a2b3c4d").mkdir(); (base / ".org.pull-x").mkdir()
    >>> [line.split(":")[0] for line in recover_pull_folder(base / "org")]
    ['restored', 'removed']
    >>> (base / "org").is_dir(), sorted(p.name for p in base.iterdir())
    (True, ['org'])
    """
    out_dir = Path(out_dir)
    parent = out_dir.parent
    if not parent.is_dir():
        return []
    done = []
    olds = sorted(parent.glob(f".{out_dir.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    olds = [p for p in olds if p.is_dir()]
    if not out_dir.exists() and olds:
        os.replace(olds[0], out_dir)
        done.append(f"restored: {out_dir} from {olds[0].name}, left by a pull that stopped between its two renames")
        olds = olds[1:]
    for leftover in [*olds, *parent.glob(f".{out_dir.name}.pull-*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        done.append(f"removed: {leftover.name}, left by an interrupted pull")
    for line in done:
        logger.warning("%s", line)
    return done


def _swap_in(stage: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``stage`` with two renames; on failure the old folder is put back.

    A crash between the renames leaves ``.OUT.old-*`` and no ``OUT``;
    :func:`recover_pull_folder` restores it at the next pull.
    """
    if not out_dir.exists():
        os.replace(stage, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out_dir, old)
    try:
        os.replace(stage, out_dir)
    except BaseException:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _query(
    conn: SalesforceConnection, plan: _Plan, soql: str, include_deleted: bool, page: int | None, types: Mapping
) -> tuple[dt.datetime | None, Iterator[dict[str, str]]]:
    """(when the query started by Salesforce's clock, its rows as text)."""
    if plan.rest:
        started, records = conn.rest_query(soql, include_deleted=include_deleted)
        rows = (
            {k: render_rest_value(v, types.get(k, "")) for k, v in record.items() if k != "attributes"}
            for record in records
        )
        return started, rows
    job = conn.start_bulk_query(soql, include_deleted=include_deleted)
    created = job.get("createdDate")
    started = _utc(created) if created else conn.session.last_server_time
    return started, conn.bulk_results(job, max_records=page)


def _live_ids(conn: SalesforceConnection, plan: _Plan, page: int | None) -> set[str]:
    _, rows = _query(conn, plan, f"SELECT Id FROM {plan.name}", False, page, {})
    return {row["Id"] for row in rows}


def _pull_object(
    conn: SalesforceConnection,
    plan: _Plan,
    mark: dt.datetime | None,
    old_file: Path,
    stage: Path,
    page: int | None,
    types: Mapping[str, str],
    reconcile: bool,
    result: PullResult,
) -> dt.datetime | None:
    """Write ``plan``'s file into ``stage``; return when its query started by Salesforce's clock."""
    target = stage / plan.obj.file
    if mark is None:
        soql = f"SELECT {', '.join(plan.header)} FROM {plan.name}"
        started, rows = _query(conn, plan, soql, False, page, types)
        out = _Writer(target, plan.header)
        try:
            for row in rows:
                out.row(row)
        finally:
            out.close()
        result.changed[plan.name] = result.rows[plan.name] = out.count
        result.deleted[plan.name] = 0
        result.modes[plan.name] = "full"
        return started

    # Changed rows go to a side file first: the merge needs their Ids before it streams the old file.
    select = _unique([*plan.header, "IsDeleted"])
    soql = f"SELECT {', '.join(select)} FROM {plan.name} WHERE SystemModstamp >= {soql_datetime(mark)}"
    started, rows = _query(conn, plan, soql, True, page, types)
    side = stage / f".{plan.obj.file}.changed"
    changed = _Writer(side, plan.header)
    deleted_ids: set[str] = set()
    last_at: dict[str, int] = {}
    fetched = 0
    try:
        for row in rows:
            fetched += 1
            rid = row[plan.key]
            if str(row.get("IsDeleted", "")).lower() == "true":
                deleted_ids.add(rid)
                last_at.pop(rid, None)
                continue
            deleted_ids.discard(rid)
            last_at[rid] = changed.count
            changed.row(row)
    finally:
        changed.close()
    # Asked after the changes: a record deleted in between is dropped, one created in between is not.
    live = _live_ids(conn, plan, page) if reconcile else None

    key_at = plan.header.index(plan.key)
    out = _Writer(target, plan.header)
    removed = vanished = 0
    try:
        with old_file.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for values in reader:
                rid = values[key_at]
                if rid in last_at:
                    continue
                if rid in deleted_ids:
                    removed += 1
                    continue
                if live is not None and rid not in live:
                    removed += 1
                    vanished += 1
                    continue
                out.values(values)
        with side.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for index, values in enumerate(reader):
                rid = values[key_at]
                if last_at.get(rid) != index or (live is not None and rid not in live):
                    continue
                out.values(values)
    finally:
        out.close()
        side.unlink(missing_ok=True)
    result.changed[plan.name] = fetched
    result.deleted[plan.name] = removed
    result.reconciled[plan.name] = vanished
    result.rows[plan.name] = out.count
    result.modes[plan.name] = "incremental"
    return started


def _check_org(state: Mapping[str, Any], conn: SalesforceConnection, state_file: Any) -> None:
    """Refuse a state file written for another org (its org id, or without ids its instance URL)."""
    theirs_org, ours_org = state.get("org_id"), conn.org_id
    if theirs_org and ours_org:
        if theirs_org != ours_org:
            raise StateOrgMismatchError(
                f"The pull state file {state_file} was written for org {theirs_org}, but the credentials log in "
                f"to org {ours_org}; an incremental pull would mix two orgs. Pull with --full (full=True) into "
                "this folder, or use another folder and state file."
            )
        return
    theirs_url = str(state.get("instance_url") or "").rstrip("/")
    if theirs_url and theirs_url != conn.instance_url:
        raise StateOrgMismatchError(
            f"The pull state file {state_file} was written for {theirs_url}, but the connection is to "
            f"{conn.instance_url}; an incremental pull would mix two orgs. Pull with --full (full=True), or use "
            "another folder and state file."
        )


def pull_salesforce(
    out_dir: str | os.PathLike[str],
    *,
    since: Any = None,
    state_file: str | os.PathLike[str] | None = None,
    full: bool = False,
    field_map: Mapping[str, SfObject] | None = None,
    objects: Iterable[str] | None = None,
    connection: SalesforceConnection | None = None,
    bulk_page_size: int | None = BULK_PAGE_SIZE,
    now: Any = None,
    overlap: float = DEFAULT_OVERLAP_SECONDS,
    reconcile: bool = True,
) -> PullResult:
    """Read every Salesforce object of the field map from the API into an export folder.

    Each object is described first; the SOQL asks only for the field map's
    fields that exist in the org. A missing optional field is a warning (its
    column is left out, as a Data Loader export without it would be); a
    missing required field is a :class:`SalesforceFieldError` raised before
    any query runs. Product2, CurrencyType and DatedConversionRate are read
    with REST query, the others with Bulk API 2.0 query jobs.

    The folder is written in the layout :func:`renewforecast.load_book` reads:
    ``{Object}.csv``, header = the field map's API names (and
    ``CurrencyIsoCode`` in multi-currency orgs), values as Data Loader and the
    Bulk API write them. Files in ``out_dir`` that are not Salesforce objects
    (``spend.csv``, ``signals.csv``) are kept as they are. The new folder is
    built beside ``out_dir``, each result set written to it as it arrives,
    and swapped in only when complete, so a failed pull leaves the previous
    folder intact; the state file is written after. The pull holds the lock
    file ``.{OUT}.lock`` beside the folder, and first repairs what an
    interrupted pull left (:func:`recover_pull_folder`).

    Parameters
    ----------
    out_dir : path-like
        The export folder (created, or updated in place).
    since : datetime-like, optional
        Read only records changed at or after this instant (UTC when naive),
        for every object that supports it and whose file is already in ``out_dir``.
    state_file : path-like, optional
        JSON file of per-object high-water marks and the org it came from;
        read to pull incrementally, and rewritten after a successful pull.
    full : bool, default False
        Read everything whatever the state says.
    field_map : mapping, optional
        Default :data:`~renewforecast.io.salesforce.SALESFORCE_OBJECTS`.
    objects : iterable of str, optional
        API names to pull (default every object of the field map).
    connection : SalesforceConnection, optional
        Default :meth:`SalesforceConnection.from_env`.
    bulk_page_size : int, default :data:`BULK_PAGE_SIZE`
        ``maxRecords`` of each Bulk API result set (None: Salesforce's choice).
    now : datetime-like, optional
        The pull's clock (default: now, UTC), for the Recycle Bin check.
    overlap : float, default :data:`DEFAULT_OVERLAP_SECONDS`
        Seconds taken off the time each query started (by Salesforce's clock)
        to make the next mark; rows read twice are replaced by Id.
    reconcile : bool, default True
        On incremental reads, also ask every Id (``SELECT Id FROM Object``)
        and drop rows whose Id is not returned: deletions the Recycle Bin no
        longer shows, and records the user can no longer see. One more query
        job per object, downloading about 20 bytes per record.

    Returns
    -------
    PullResult

    Raises
    ------
    PullParameterError
        ``since``, ``objects`` or ``overlap`` is malformed; nothing was done.
    StateOrgMismatchError
        The state file belongs to another org (pull with ``full=True``).
    PullLockedError
        Another pull into ``out_dir`` is running.
    SalesforceFieldError
        Required fields or objects are not in the org.
    SalesforceAuthError, DailyApiLimitError, SalesforceUnavailableError, SalesforceApiError
        The org refused or could not answer; ``out_dir`` is unchanged.
    PullStateWriteError
        ``out_dir`` WAS updated but the state file could not be written.

    Warns
    -----
    Logged warnings (and :attr:`PullResult.warnings`) for missing optional
    fields, and for an incremental pull whose last pull is older than the
    Recycle Bin's :data:`RECYCLE_BIN_DAYS` days without ``reconcile``:
    deletions may be missed, so pull with ``full=True``.

    Examples
    --------
    >>> pull_salesforce("export", connection=conn)  # doctest: +SKIP
    PullResult(folder=PosixPath('export'), rows={'Account': 92, ...}, ...)
    >>> pull_salesforce("export", since="last tuesday")
    Traceback (most recent call last):
    ...
    renewforecast.io.salesforce_api.PullParameterError: since='last tuesday' is not a date or date-time: ...
    """
    out_dir = Path(out_dir)
    catalogue = api_objects(field_map)
    wanted, since_at, margin = check_pull_parameters(since=since, objects=objects, overlap=overlap, field_map=field_map)
    clock = _utc(now) if now is not None else dt.datetime.now(dt.UTC)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _pull_lock(out_dir):
        recover_pull_folder(out_dir)
        result = _pull_locked(
            out_dir, since_at, state_file, full, catalogue, wanted, connection, bulk_page_size, clock, margin, reconcile
        )
    return result


def _pull_locked(
    out_dir: Path,
    since_at: dt.datetime | None,
    state_file: Any,
    full: bool,
    catalogue: Mapping[str, SfObject],
    wanted: list[str],
    connection: SalesforceConnection | None,
    page: int | None,
    clock: dt.datetime,
    margin: dt.timedelta,
    reconcile: bool,
) -> PullResult:
    conn = connection or SalesforceConnection.from_env()
    state = {} if full else _load_state(Path(state_file) if state_file else None)
    previous = state.get("objects", {})
    if previous:
        _check_org(state, conn, state_file)
    result = PullResult(out_dir)

    # Describe everything first: a required field missing anywhere stops the pull before any query.
    problems: list[Problem] = []
    plans: list[_Plan] = []
    types: dict[str, dict[str, str]] = {}
    for name in wanted:
        describe = conn.describe(name)
        plan = _plan(name, catalogue[name], describe, problems, result.warnings)
        if plan is not None:
            plans.append(plan)
            types[name] = {f["name"]: f.get("type", "") for f in describe.get("fields", [])}
    if problems:
        raise SalesforceFieldError(problems)

    new_state: dict[str, Any] = {}
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.pull-", dir=out_dir.parent))
    try:
        for plan in plans:
            old_file = out_dir / plan.obj.file
            mark = None
            if not full and plan.mode == "incremental" and _file_header(old_file) == plan.header:
                stored = previous.get(plan.name, {}).get("high_water")
                mark = since_at if since_at is not None else (_utc(stored) if stored else None)
            if mark is not None and not reconcile and (clock - mark).days >= RECYCLE_BIN_DAYS:
                result.warnings.append(
                    Problem(
                        plan.obj.file,
                        None,
                        "",
                        "SystemModstamp",
                        "deletions_may_be_missed",
                        f"the last pull of {plan.name} was at {soql_datetime(mark)}, more than {RECYCLE_BIN_DAYS} "
                        "days ago: records deleted since then may have left the Recycle Bin, where queryAll no "
                        "longer sees them. Pull with --full (or with Id reconciliation) to be sure the folder has "
                        "no deleted records.",
                        "warning",
                    )
                )
            started = _pull_object(conn, plan, mark, old_file, stage, page, types[plan.name], reconcile, result)
            # The next pull starts before this query did, by Salesforce's clock: a query is no snapshot, and
            # a transaction may commit after it with an older SystemModstamp.
            high = None
            if plan.modstamp:
                base = started if started is not None else clock
                high = soql_datetime(_floor_second(base - margin))
            new_state[plan.name] = {
                "high_water": high,
                "pulled_at": soql_datetime(clock),
                "mode": result.modes[plan.name],
            }
            logger.info(
                "%s: %d record(s) read (%s), %d removed, %d in the file",
                plan.name,
                result.changed[plan.name],
                result.modes[plan.name],
                result.deleted[plan.name],
                result.rows[plan.name],
            )
        for warning in result.warnings:
            logger.warning("%s", warning)

        if out_dir.is_dir():
            for entry in out_dir.iterdir():
                if (stage / entry.name).exists():
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, stage / entry.name)
                else:
                    shutil.copy2(entry, stage / entry.name)
        os.chmod(stage, 0o777 & ~_umask())
        _swap_in(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise

    objects_state = dict(previous)
    objects_state.update(new_state)
    result.state = {
        "format": 1,
        "instance_url": conn.instance_url,
        "org_id": conn.org_id,
        "objects": objects_state,
    }
    if state_file is not None:
        try:
            atomic_write_text(Path(state_file), json.dumps(result.state, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise PullStateWriteError(
                f"The pull into {out_dir} succeeded and the folder WAS updated, but the state file {state_file} "
                f"could not be written ({getattr(exc, 'cause', None) or exc.strerror or exc}). The folder is "
                "complete; the next pull reads from the previous marks (more than needed, nothing missed). Fix the "
                "state file's location and pull again.",
                state_file=str(state_file),
            ) from None
    return result


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
