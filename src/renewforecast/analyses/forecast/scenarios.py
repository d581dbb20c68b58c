"""Named shocks to the forecast's assumptions (:class:`Scenario`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from renewforecast.exceptions import RenewForecastError

__all__ = ["Scenario", "as_scenario"]


@dataclass(frozen=True)
class Scenario:
    """A named shock applied to the forecast's assumptions.

    Parameters
    ----------
    name : str
        Shown in the output's ``scenario`` column.
    renewal_factor : float, default 1.0
        Multiplies every renewal probability (capped at 1).
    pipeline_slip_months : int, default 0
        Every open deal's schedule moves this many months later.
    uplift : float, optional
        Renewal price change applied to every renewal instead of its pricing
        method (0.05 = 5 % more than its ARR today).

    Examples
    --------
    >>> Scenario("downside", renewal_factor=0.9, pipeline_slip_months=2)
    Scenario(name='downside', renewal_factor=0.9, pipeline_slip_months=2, uplift=None)
    """

    name: str = "base"
    renewal_factor: float = 1.0
    pipeline_slip_months: int = 0
    uplift: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.renewal_factor) and self.renewal_factor >= 0):
            raise RenewForecastError(f"scenario {self.name!r}: renewal_factor must be >= 0")
        if int(self.pipeline_slip_months) != self.pipeline_slip_months or self.pipeline_slip_months < 0:
            raise RenewForecastError(f"scenario {self.name!r}: pipeline_slip_months must be a whole number >= 0")
        if self.uplift is not None and not (np.isfinite(self.uplift) and self.uplift > -1):
            raise RenewForecastError(f"scenario {self.name!r}: uplift must be a fraction above -1")


def as_scenario(scenario: Scenario | dict | None) -> Scenario:
    """The :class:`Scenario` a caller means: the base one, itself, or one built from a dict.

    Examples
    --------
    >>> as_scenario({"name": "late", "pipeline_slip_months": 2}).pipeline_slip_months
    2
    >>> as_scenario(None).name
    'base'
    """
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        unknown = set(scenario) - {f.name for f in dataclasses.fields(Scenario)}
        if unknown:
            raise RenewForecastError(
                f"unknown scenario setting(s) {sorted(unknown)}; use name, renewal_factor, pipeline_slip_months, uplift"
            )
        return Scenario(**scenario)
    raise RenewForecastError(f"scenario must be a Scenario or a dict, not {type(scenario).__name__}")
