"""Fixtures shared by the tests (helpers live in _support.py)."""

from _support import demo_book, demo_org, hostile_report, org_copy, sf_credentials, sf_server  # noqa: F401
