"""Old module paths of renewforecast 0.1, kept working with a DeprecationWarning.

Version 0.1 kept every module side by side (``renewforecast.metrics``,
``renewforecast.scoring`` ...). The modules now live in the package of
their layer; a job that still imports an old path gets the new module and a
warning naming it. The public ``rf.*`` names never moved.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module path -> where that module lives now.
MOVED = {
    "renewforecast._atomic": "renewforecast.atomic",
    "renewforecast.validate": "renewforecast.io.validate",
    "renewforecast.revenue": "renewforecast.ledger.revenue",
    "renewforecast.schedules": "renewforecast.ledger.schedules",
    "renewforecast.model": "renewforecast.models.renewal",
    "renewforecast.survival": "renewforecast.models.survival",
    "renewforecast.sbg": "renewforecast.models.sbg",
    "renewforecast.features": "renewforecast.models.features",
    "renewforecast.registry": "renewforecast.models.registry",
    "renewforecast.evaluation": "renewforecast.models.evaluation",
    "renewforecast.metrics": "renewforecast.analyses.saas_metrics",
    "renewforecast.unit_economics": "renewforecast.analyses.unit_economics",
    "renewforecast.lifetimes": "renewforecast.analyses.cohorts",
    "renewforecast.scoring": "renewforecast.analyses.scoring",
    "renewforecast.backtest": "renewforecast.analyses.backtest",
    "renewforecast.forecast": "renewforecast.analyses.forecast",
    "renewforecast.headline": "renewforecast.reports.headline",
    "renewforecast.index_page": "renewforecast.reports.index_page",
    "renewforecast.reporting": "renewforecast.reports.runner",
    "renewforecast.plotting": "renewforecast.reports.plotting",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        # The module object is the new one; importing it ran its code already.
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(
            f"{fullname} has moved to {new}; import it from there (or use the public name on renewforecast).",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Make the old module paths importable (once per process)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
