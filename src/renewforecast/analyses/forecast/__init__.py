"""Bottom-up monthly revenue forecast with Monte Carlo intervals.

The forecast for each month after the as-of date is the sum of six
components, each traced to the records it comes from, each built by its own
module:

``contracted`` (:mod:`.contracted`)
    Revenue of the subscriptions booked by the as-of date, recognised day by
    day until their end exactly as :func:`renewforecast.recognized_revenue`
    does. Evergreen subscriptions have no end: each month they count with the
    probability that their contract is still alive, from a Weibull survival
    model fitted on the evergreen contracts' own history (or a constant
    monthly hazard when there is too little history).
``renewal`` (:mod:`.renewals`)
    Every fixed-term contract that ends inside the horizon and is not yet
    renewed, lost or terminated renews with its probability: the one given
    (``renewal_probabilities``), the renewal model's, else the historical
    renewal rate of its segment. It renews for a term like its last one, at
    the price of its open renewal quote when there is one, else its ARR on
    its last day times its pricing method's historical renewal ratio (with
    its contractual uplift for the ``uplift`` method). Renewals of renewals
    inside the horizon count too, each with the same probability.
``pipeline`` (:mod:`.pipeline`)
    Open opportunities (new business, upsell, amendment) count their
    recurring lines' schedules (:func:`renewforecast.line_schedules`), each
    installment recognised evenly over the period it covers, times the
    opportunity's win probability: the win rate of closed opportunities that
    reached the same stage (calibrated from stage history), or the stage
    probability from the CRM.
``one_time`` and ``usage`` (:mod:`.contracted`)
    Booked one-time fees, whole in the month they start, and booked usage
    lines over their dates (:func:`renewforecast.recognized_revenue`'s rules);
    neither is recurring revenue.
``new_business`` (:mod:`.new_business`)
    Business not booked and not in the pipeline yet: a statsmodels model
    (exponential smoothing with or without a damped trend, or an ARIMA,
    chosen by holdout error) of monthly new-business MRR, turned into revenue
    (a new customer earns half its MRR in its first month, plus the one-time
    fees new customers paid per unit of new MRR over the last two years, in
    the month won), less what the pipeline's new-business deals are expected
    to bring that month.

Intervals come from simulating renewal and deal outcomes together with the
new-business model's own simulated paths (:mod:`.simulation`). Outcomes are
correlated through one common factor per simulation (a one-factor Gaussian
copula, which keeps every contract's own probability exact) whose strength is
estimated from how much the monthly renewal and win rates varied in the past
beyond what chance alone explains. :mod:`.assembly` puts the parts together
into a :class:`RevenueForecast` (:mod:`.result`); :mod:`.scenarios` holds the
named shocks and :mod:`.groups` the months and groups forecast.

Layer: analyses (imports the foundation modules, ``ledger``, ``models`` and
the other analyses; never ``reports``).
"""

from __future__ import annotations

from renewforecast.analyses.forecast.assembly import revenue_forecast
from renewforecast.analyses.forecast.new_business import NewBusinessModel
from renewforecast.analyses.forecast.renewals import HistoricalRenewalRate
from renewforecast.analyses.forecast.result import (
    COMPONENTS,
    HorizonTotal,
    PipelineComponent,
    RenewalComponent,
    RevenueForecast,
    forecast_scenario_table,
)
from renewforecast.analyses.forecast.scenarios import Scenario

__all__ = [
    "COMPONENTS",
    "HistoricalRenewalRate",
    "HorizonTotal",
    "NewBusinessModel",
    "PipelineComponent",
    "RenewalComponent",
    "RevenueForecast",
    "Scenario",
    "forecast_scenario_table",
    "revenue_forecast",
]
