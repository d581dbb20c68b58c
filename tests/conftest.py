"""Fixtures shared by the tests (helpers live in _support.py)."""

from _postgres import postgres_url  # noqa: F401
from _spark import spark  # noqa: F401
from _support import demo_book, demo_org, hostile_report, org_copy, sf_credentials, sf_server  # noqa: F401
