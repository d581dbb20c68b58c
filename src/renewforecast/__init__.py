"""renewforecast: renewal probabilities, SaaS growth metrics and revenue forecasts
from Salesforce / Salesforce CPQ contract data.

Examples
--------
>>> import tempfile, renewforecast as rf
>>> folder = tempfile.mkdtemp()
>>> org = rf.write_demo_org(folder, accounts=50, seed=7)
>>> book = rf.load_book(folder)
>>> book.currency
'USD'
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from renewforecast import _moved
from renewforecast.analyses.backtest import ForecastBacktest, backtest_forecast, backtest_origins
from renewforecast.analyses.cohorts import annual_cohorts, customer_lifetimes
from renewforecast.analyses.forecast import (
    COMPONENTS,
    RevenueForecast,
    Scenario,
    forecast_scenario_table,
    revenue_forecast,
)
from renewforecast.analyses.nrr_forecast import (
    NRRBacktest,
    nrr_backtest,
    nrr_backtest_origins,
    nrr_forecast,
    nrr_outcome_rates,
    nrr_simulations,
)
from renewforecast.analyses.record import RunRecord, keep_record, previous_record, published_records, read_record
from renewforecast.analyses.saas_metrics import (
    cohort_retention,
    renewal_kpis,
    renewal_worklist,
    retention_kpis,
)
from renewforecast.analyses.scoring import score_contracts, write_crm_upsert
from renewforecast.analyses.track_record import TrackRecord, grade_runs
from renewforecast.analyses.unit_economics import cac, gross_margin, ltv, ltv_cac
from renewforecast.analyses.writeback import PushResult, push_scores
from renewforecast.book import Book
from renewforecast.dates import last_month_end
from renewforecast.demo import DemoOrg, write_demo_org
from renewforecast.exceptions import (
    BookValidationError,
    Problem,
    RenewForecastError,
    ReportRunError,
)
from renewforecast.io.canonical import write_canonical
from renewforecast.io.loader import load_book
from renewforecast.io.salesforce_api import (
    DailyApiLimitError,
    PullLockedError,
    PullParameterError,
    PullResult,
    PullStateWriteError,
    SalesforceApiError,
    SalesforceAuthError,
    SalesforceConnection,
    SalesforceFieldError,
    SalesforceUnavailableError,
    SalesforceUrlError,
    StateOrgMismatchError,
    pull_salesforce,
    recover_pull_folder,
)
from renewforecast.io.warehouse import (
    WarehouseError,
    WrittenReplica,
    url_secrets,
    write_replica,
    write_result_tables,
)
from renewforecast.ledger.hierarchy import ultimate_parents
from renewforecast.ledger.mrr import mrr_movements, mrr_table
from renewforecast.ledger.recognition import recognized_revenue
from renewforecast.ledger.renewals import renewal_decisions
from renewforecast.ledger.schedules import establish_schedule, expand_schedules, line_schedules, reconcile_schedules
from renewforecast.ledger.set_aside import quarantine_report, set_aside_summary
from renewforecast.ledger.valuation import arr_on, row_amounts
from renewforecast.models.drift import (
    DriftReport,
    DriftThresholds,
    drift_report,
    feature_profile,
    population_stability_index,
)
from renewforecast.models.evaluation import RenewalEvaluation, evaluate_renewal_model
from renewforecast.models.features import recent_decision_features, renewal_features, renewal_training_set
from renewforecast.models.registry import ModelRefused, load_model, save_model
from renewforecast.models.renewal import RenewalModel
from renewforecast.models.sbg import ShiftedBetaGeometric
from renewforecast.models.survival import ExtrapolationWarning, SurvivalDataError, SurvivalModel
from renewforecast.reports.formatting import format_value
from renewforecast.reports.headline import (
    Headline,
    data_headline,
    forecast_headline,
    kpi_headline,
    risk_headline,
    track_record_headline,
    unit_economics_headline,
)
from renewforecast.reports.inputs import report_book, report_path

try:
    __version__ = version("renewforecast")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())
_moved.install()


def __getattr__(name: str):
    # Plotting pulls in matplotlib; import it only when a report asks for it,
    # so batch jobs that import the scoring API stay light.
    if name == "plotting":
        import importlib

        return importlib.import_module("renewforecast.reports.plotting")
    raise AttributeError(f"module 'renewforecast' has no attribute {name!r}")


__all__ = [
    "COMPONENTS",
    "Book",
    "BookValidationError",
    "DailyApiLimitError",
    "DemoOrg",
    "DriftReport",
    "DriftThresholds",
    "ExtrapolationWarning",
    "ForecastBacktest",
    "Headline",
    "ModelRefused",
    "NRRBacktest",
    "Problem",
    "PullLockedError",
    "PullParameterError",
    "PullResult",
    "PullStateWriteError",
    "PushResult",
    "RenewForecastError",
    "RenewalEvaluation",
    "RenewalModel",
    "ReportRunError",
    "RevenueForecast",
    "RunRecord",
    "SalesforceApiError",
    "SalesforceAuthError",
    "SalesforceConnection",
    "SalesforceFieldError",
    "SalesforceUnavailableError",
    "SalesforceUrlError",
    "Scenario",
    "ShiftedBetaGeometric",
    "StateOrgMismatchError",
    "SurvivalDataError",
    "SurvivalModel",
    "TrackRecord",
    "WarehouseError",
    "WrittenReplica",
    "__version__",
    "annual_cohorts",
    "arr_on",
    "backtest_forecast",
    "backtest_origins",
    "cac",
    "cohort_retention",
    "customer_lifetimes",
    "data_headline",
    "drift_report",
    "establish_schedule",
    "evaluate_renewal_model",
    "expand_schedules",
    "feature_profile",
    "forecast_headline",
    "forecast_scenario_table",
    "format_value",
    "grade_runs",
    "gross_margin",
    "keep_record",
    "kpi_headline",
    "last_month_end",
    "line_schedules",
    "load_book",
    "load_model",
    "ltv",
    "ltv_cac",
    "mrr_movements",
    "mrr_table",
    "nrr_backtest",
    "nrr_backtest_origins",
    "nrr_forecast",
    "nrr_outcome_rates",
    "nrr_simulations",
    "population_stability_index",
    "previous_record",
    "published_records",
    "pull_salesforce",
    "push_scores",
    "quarantine_report",
    "read_record",
    "recent_decision_features",
    "recognized_revenue",
    "reconcile_schedules",
    "recover_pull_folder",
    "renewal_decisions",
    "renewal_features",
    "renewal_kpis",
    "renewal_training_set",
    "renewal_worklist",
    "report_book",
    "report_path",
    "retention_kpis",
    "revenue_forecast",
    "risk_headline",
    "row_amounts",
    "save_model",
    "score_contracts",
    "set_aside_summary",
    "track_record_headline",
    "ultimate_parents",
    "unit_economics_headline",
    "url_secrets",
    "write_canonical",
    "write_crm_upsert",
    "write_demo_org",
    "write_replica",
    "write_result_tables",
]
