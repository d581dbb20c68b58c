"""Engines for the three questions: SaaS KPIs, unit economics, cohorts, scoring, the revenue forecast and its backtest.

Layer: analyses. May import the foundation modules, ``ledger`` and
``models``. Engines return tidy frames; they never import ``reports``.
"""
