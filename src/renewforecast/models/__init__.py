"""Estimators and what they need: renewal features, the renewal model, survival and sBG models, the model registry.

Layer: models. May import the foundation modules and ``ledger``. Never
imports analyses or reports.
"""
