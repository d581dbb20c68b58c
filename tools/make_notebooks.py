"""Write the report notebook templates in notebooks/ (no outputs, parameters cell tagged).

Run after editing a template here: python tools/make_notebooks.py [NAME.ipynb ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1] / "notebooks"


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, tags=()):
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


ONLY = set(sys.argv[1:])  # names to write; all of them when none is given


def write(name: str, cells: list) -> None:
    if ONLY and name not in ONLY:
        return  # rewriting a notebook gives its cells new ids: only write what changed
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = ROOT / name
    nbformat.write(nb, path)
    print(f"wrote {path}")


SETUP = """
import matplotlib.pyplot as plt
import pandas as pd
import renewforecast as rf

pd.set_option("display.max_rows", 500)
pd.set_option("display.max_colwidth", 200)
pd.set_option("display.float_format", "{:,.2f}".format)
%matplotlib inline
"""

write("00_data_quality.ipynb", [
    md("""
# Data quality

What was loaded from the export, and everything that looks wrong in it. Read this page first:
the other reports are only as good as the data they stand on.
"""),
    code("""
source = "../data/demo"  # folder with the Salesforce export (or canonical tables)
as_of = None  # as-of date YYYY-MM-DD; None means the export date of the data
encoding = None  # text encoding of the CSV files; None detects it
on_error = "raise"  # "quarantine": set aside rows that break a rule (listed in the data-quality report)
date_format = "%m/%d/%Y"  # the non-ISO date format of report-style exports
currency = None  # reporting currency; None: the corporate currency, or the only one
date_window = None  # [first, last] day a record may be dated; None: 1990-01-01 to 50 years ahead
""", tags=["parameters"]),
    code(SETUP + """
book = rf.load_book(source, encoding=encoding, on_error=on_error, date_format=date_format,
                    currency=currency, date_window=date_window)
as_of_date = book.resolve_as_of(as_of)
"""),
    md("""
## Key figures

What the index page shows for this report. Warnings do not stop a run; the list below says what to fix.
"""),
    code("rf.data_headline(book, as_of_date)"),
    md("## What was loaded"),
    code("""
pd.DataFrame({"": [book.source, book.currency, str(as_of_date.date()), book.fingerprint[:16]]},
             index=["source", "reporting currency", "as of", "data fingerprint"])
"""),
    md("""
Rows and date ranges per table. A table with far fewer rows than expected, or a range that stops
early, usually means an export filter or a truncated file.
"""),
    code("book.summary().set_index(\"table\")"),
    md("## ARR by segment"),
    md("""
Annual recurring revenue on the as-of date from the subscription ledger (signed amendment rows,
terminations and MDQ segments included). Compare it with the ARR your finance team reports:
a large gap points at missing subscriptions or prices before any other report is read.
"""),
    code("""
arr = rf.arr_on(book, as_of_date, by="segment")
rf.plotting.bar_by_group(arr, group="segment", value="arr", currency=book.currency,
                         title=f"ARR by segment on {as_of_date.date()}")
plt.show()
arr.set_index("segment").assign(share_pct=(100 * arr["arr"] / arr["arr"].sum()).round(1).to_numpy())
"""),
    md("## Rows set aside"),
    md("""
With `on_error="quarantine"` (`--on-error quarantine`), rows that break a rule are set aside with
every record that depends on them instead of refusing the whole export; the other reports are
built without them. Each row names the file, line, record id and rule to fix, and the ARR it carried
on the export date. No rows here means nothing was set aside.
"""),
    code("""
print(rf.set_aside_summary(book)["text"])
rf.quarantine_report(book)
"""),
    md("## Validation warnings"),
    md("""
Problems that did not stop loading but deserve a look, by rule and then one per row with the file,
line, record id and column to fix in Salesforce. No rows here means none were found.
"""),
    code("""
book.warnings.groupby("rule").size().rename("count").to_frame()
"""),
    code("book.warnings.drop(columns=\"severity\")"),
    md("## Schedule reconciliation"),
    md("""
Opportunity product schedules as exported are taken as they are, never regenerated. Each line's
schedule rows should add up to its total price; lines that differ were usually edited after their
schedule was established and will make the pipeline forecast disagree with the opportunity amount.
"""),
    code("""
recon = rf.reconcile_schedules(book)
recon.groupby("status").agg(lines=("line_id", "size"), total_price=("total_price", "sum"),
                            scheduled=("scheduled_revenue", "sum"))
"""),
    code("""
recon[recon["status"] == "differs"].sort_values("difference", key=abs, ascending=False)
"""),
])

write("01_revenue_kpis.ipynb", [
    md("""
# Revenue and renewal KPIs

The growth picture from the contract ledger: ARR over time, last month's MRR bridge, retention by
segment, how acquisition cohorts hold up, renewal performance by quarter, and the renewals the
team must work on now.
"""),
    code("""
source = "../data/demo"  # folder with the Salesforce export (or canonical tables)
as_of = None  # as-of date YYYY-MM-DD; None means the export date of the data
encoding = None  # text encoding of the CSV files; None detects it
on_error = "raise"  # "quarantine": set aside rows that break a rule (listed in the data-quality report)
date_format = "%m/%d/%Y"  # the non-ISO date format of report-style exports
currency = None  # reporting currency; None: the corporate currency, or the only one
date_window = None  # [first, last] day a record may be dated; None: 1990-01-01 to 50 years ahead
horizon_days = 180  # renewal worklist: contracts ending within this many days
worklist_rows = 25  # rows of the worklist shown
""", tags=["parameters"]),
    code(SETUP + """
book = rf.load_book(source, encoding=encoding, on_error=on_error, date_format=date_format,
                    currency=currency, date_window=date_window)
as_of_date = book.resolve_as_of(as_of)
book = book.as_of(as_of_date)  # only what was known at the end of the as-of date
month_end = rf.last_month_end(as_of_date)  # KPIs are measured at the last complete month end
"""),
    md("""
## Key figures

The figures the index page shows, measured at the last complete month end. Each is explained in its section below.
"""),
    code("rf.kpi_headline(book, as_of_date)"),
    md("## ARR over time"),
    md("""
ARR at each month end (MRR x 12) from the subscription ledger. Read the slope, and look for steps:
a step down in one month is usually one large customer leaving or a block of renewals lost.
"""),
    code("""
trend = rf.mrr_table(book, end=month_end, by=()).assign(arr=lambda d: d["mrr"] * 12)
rf.plotting.line_over_time(trend, x="month", y="arr", currency=book.currency, title="ARR at month end")
plt.show()
trend.tail(13).set_index("month")
"""),
    md("## Last month's MRR bridge"),
    md("""
How MRR moved from the start to the end of the last complete month, classified per customer: a
customer's first revenue is new, a returning customer is a reactivation, more or less revenue from
an existing customer is expansion or contraction, and churn is counted only when a customer's last
subscription ends. Start + new + expansion + reactivation - contraction - churn = end.
"""),
    code("""
bridge = rf.mrr_movements(book, end=month_end, by=())
last = bridge.iloc[-1]
rf.plotting.mrr_bridge(last, currency=book.currency, title=f"MRR bridge, {last['month']:%B %Y}")
plt.show()
bridge.tail(6).set_index("month")
"""),
    md("## Retention by segment"),
    md("""
Net revenue retention (NRR) is this month's MRR of the customers who were paying 12 months ago,
over their MRR then; gross retention (GRR) caps each customer at its old MRR, so it only shows
losses. The dashed line marks 100 %. A segment whose NRR is above 100 % grows without new logos; a
low GRR with a high NRR means expansion is hiding churn.
"""),
    code("""
from IPython.display import Markdown, display

overall = rf.retention_kpis(book, as_of=as_of_date)
retention = rf.retention_kpis(book, as_of=as_of_date, by="segment")
retention_columns = ["base_customers", "base_mrr", "current_mrr", "nrr", "grr", "nrr_period", "grr_period",
                     "logo_retention", "gross_revenue_churn", "net_revenue_churn", "quick_ratio"]
if int(overall["base_customers"].iloc[0]) == 0:
    display(Markdown(
        f"**Retention is not defined yet at {month_end:%B %Y}:** no customer was paying at "
        f"{overall['base_month'].iloc[0]:%B %Y}, twelve months earlier, so NRR, GRR and logo retention "
        "are shown as n/a."))
else:
    rf.plotting.grouped_rates(retention, group="segment", rates=["nrr", "grr", "logo_retention"],
                              reference=1.0, title="12-month retention by segment")
    plt.show()
table = pd.concat([overall.assign(segment="All"), retention]).set_index("segment")[retention_columns]
table.astype(object).where(table.notna(), "n/a")
"""),
    md("## Cohort retention"),
    md("""
Each row is the customers acquired in one quarter; each cell is that cohort's MRR at the end of a
later quarter as a share of its MRR at the end of its first quarter. Green above 100 % means the
cohort expanded faster than it churned. Compare rows down a column: later cohorts that fade faster
point at weaker acquisition or onboarding.
"""),
    code("""
cohorts = rf.cohort_retention(book, as_of=as_of_date, freq="Q")
rf.plotting.cohort_heatmap(cohorts, title="Net MRR retention by acquisition quarter")
plt.show()
"""),
    md("## Renewal performance by quarter"),
    md("""
Contracts available to renew are those whose end date falls in the quarter (a multi-year contract
at a mid-term anniversary is not). Resolution rate is decided / due, close rate is renewed /
decided, conversion rate is renewed ARR / prior ARR of the renewed contracts (above 100 % when
renewals carry uplift or expansion). Open decisions are counted, not guessed, so the latest quarter
is incomplete until its resolution rate reaches 100 %.
"""),
    code("""
window_start = month_end - pd.DateOffset(years=2) + pd.Timedelta(days=1)
if int(rf.renewal_kpis(book, start=window_start, end=month_end)["due"].iloc[0]) == 0:
    renewals = None
    display(Markdown(
        f"**Renewal rates are not defined yet at {month_end:%B %Y}:** no contract came up for renewal "
        f"between {window_start:%B %Y} and {month_end:%B %Y}, so there is nothing to show here."))
else:
    renewals = rf.renewal_kpis(book, start=window_start, end=month_end, freq="Q")
    rf.plotting.grouped_rates(renewals, group="period",
                              rates=["resolution_rate", "close_rate", "conversion_rate", "renewal_rate_net_arr"],
                              reference=1.0, title="Renewal rate decomposition by quarter of end date")
    plt.show()
renewals if renewals is None else renewals.set_index("period")[
    ["due", "decided", "renewed", "churned", "terminated", "open", "due_arr", "renewal_rate_count",
     "renewal_rate_gross_arr", "renewal_rate_net_arr", "resolution_rate", "close_rate", "conversion_rate"]]
"""),
    md("## Renewal worklist"),
    md("""
Contracts ending in the next months, soonest outreach deadline first (90 days before the end
date, 120 for Enterprise and Government). Start with rows flagged *no renewal opportunity* or
*outreach deadline passed*, then those where a decrease or termination is already booked.
"""),
    code("""
worklist = rf.renewal_worklist(book, as_of=as_of_date, horizon_days=horizon_days)
worklist.groupby("segment").agg(contracts=("contract_id", "size"), arr=("arr", "sum"),
                                no_opportunity=("no_renewal_opportunity", "sum"),
                                deadline_passed=("outreach_deadline_passed", "sum"))
"""),
    code("""
worklist.head(worklist_rows).set_index("account_name")
"""),
])

write("02_renewal_risk.ipynb", [
    md("""
# Renewal risk

Which contracts will renew, and how far to trust the model that says so: an honest backtest (the
model trained on earlier renewal decisions, scored on later ones), its calibration and lift, how
long customers stay by segment, how cohorts retain year over year, and the contracts ending soon
ranked by the ARR at risk, with the reasons behind each score.
"""),
    code("""
source = "../data/demo"  # folder with the Salesforce export (or canonical tables)
as_of = None  # as-of date YYYY-MM-DD; None means the export date of the data
encoding = None  # text encoding of the CSV files; None detects it
on_error = "raise"  # "quarantine": set aside rows that break a rule (listed in the data-quality report)
date_format = "%m/%d/%Y"  # the non-ISO date format of report-style exports
currency = None  # reporting currency; None: the corporate currency, or the only one
date_window = None  # [first, last] day a record may be dated; None: 1990-01-01 to 50 years ahead
model_path = "../models/renewal"  # saved renewal model used for the scores
horizon_days = 180  # contracts ending within this many days are listed
top_rows = 25  # rows of the at-risk list shown
""", tags=["parameters"]),
    code(SETUP + """
book = rf.load_book(source, encoding=encoding, on_error=on_error, date_format=date_format,
                    currency=currency, date_window=date_window)
as_of_date = book.resolve_as_of(as_of)
model = rf.load_model(model_path)
scores = rf.score_contracts(book, model=model, as_of=as_of_date)
"""),
    md("""
## Key figures

ARR at risk is ARR times the probability a contract does not renew, summed over the contracts ending in the rest of this calendar quarter and the next one. The last section lists them.
"""),
    code("rf.risk_headline(book, scores, as_of_date)"),
    md("## The model in use"),
    code("""
pd.Series({"model version": model.model_version_, "trained on data as of": model.manifest_["as_of"],
           "training data fingerprint": str(model.manifest_["training_data_fingerprint"])[:16],
           "estimator": model.estimator, "calibration": model.calibration,
           "features": len(model.feature_names_in_)}).to_frame("")
"""),
    md("## Backtest against what happened"),
    md("""
A fresh model is trained on the renewal decisions of contracts that ended before the cut-off and
scores the later ones, each as of 120 days before its end date. AUC says how well it ranks
renewals above churn (0.5 is chance); Brier score and expected calibration error (ECE) say how close
the probabilities are to the observed rates. When the true probabilities are known (the demo org
writes them), the *oracle* row is the best any model could score on the same decisions: the gap is
what the model leaves on the table.
"""),
    code("""
evaluation = rf.evaluate_renewal_model(book.as_of(as_of_date))
print(f"cut-off {evaluation.cutoff.date()}: {evaluation.n_train:,} decisions to train, {evaluation.n_test:,} to test")
evaluation.summary()
"""),
    md("""
**Calibration.** Each point is a group of contracts with similar predicted probability; on the
diagonal, contracts scored 70 % renewed 70 % of the time. Points below the line mean the model is
too optimistic in that range.
"""),
    code("""
evaluation.plot_calibration()
plt.show()
evaluation.calibration.set_index("probability")
"""),
    md("""
**Lift.** Contracts in ten equal groups from least to most likely to renew. The first bars should
tower over the dashed average: that is where outreach time pays off. The label on each bar is its
churn rate over the average.
"""),
    code("""
evaluation.plot_lift()
plt.show()
evaluation.lift.set_index("decile")
"""),
    md("## How long customers stay"),
    md("""
A Cox proportional-hazards model of months from a customer's first revenue to churn, by segment and
starting size. Solid lines are the model for a typical customer of each segment; the faint steps are
the observed (Kaplan-Meier) survival they should follow. The concordance index says how well the
model orders customers by how long they stay (0.5 is chance).
"""),
    code("""
lifetimes = rf.customer_lifetimes(book, as_of_date)
survival = rf.SurvivalModel(kind="coxph", penalizer=0.01).fit(
    lifetimes[["duration", "event", "segment", "log_initial_mrr"]])
rf.plotting.survival_by_group(survival, lifetimes, group="segment")
plt.show()
print(f"concordance index {survival.concordance_index_:.3f} over {len(lifetimes):,} customers")
survival.summary[["coef", "exp(coef)", "p"]]
"""),
    md("## Cohorts year over year"),
    md("""
The shifted-beta-geometric model (Fader and Hardie) fitted to every acquisition cohort's survivors
at each anniversary. Customers differ in how likely they are to leave, so retention rises as the
riskiest leave early; the curve projects that pattern past the years observed.
"""),
    code("""
cohorts = rf.annual_cohorts(book, as_of_date)
sbg = rf.ShiftedBetaGeometric().fit(cohorts)
rf.plotting.sbg_fit(cohorts, sbg)
plt.show()
sbg.summary
"""),
    md("## Contracts at risk"),
    md("""
Every contract ending within the horizon, ranked by ARR at risk (ARR x the probability it does not
renew), with the three features that push its score most. Work from the top: large ARR and a low
probability first.
"""),
    code("""
soon = scores[scores["end_date"] <= as_of_date + pd.Timedelta(days=horizon_days)]
soon.groupby("risk_band").agg(contracts=("contract_id", "size"), arr=("arr", "sum"),
                              arr_at_risk=("arr_at_risk", "sum"))
"""),
    code("""
soon.nlargest(top_rows, "arr_at_risk").set_index("contract_id")[
    ["end_date", "arr", "renewal_probability", "risk_band", "arr_at_risk", "reason_1", "reason_2", "reason_3"]]
"""),
])

write("03_ltv_cac.ipynb", [
    md("""
# Unit economics: CAC, LTV, LTV:CAC and payback

What a customer costs to win, what it is worth, and how long it takes to pay back, by acquisition
channel and segment, against the usual bars (LTV:CAC at least 3; CAC payback under 12 months,
over 36 a concern). Every LTV names its method; intervals come from resampling customers.
"""),
    code("""
source = "../data/demo"  # folder with the Salesforce export (or canonical tables)
as_of = None  # as-of date YYYY-MM-DD; None means the export date of the data
encoding = None  # text encoding of the CSV files; None detects it
on_error = "raise"  # "quarantine": set aside rows that break a rule (listed in the data-quality report)
date_format = "%m/%d/%Y"  # the non-ISO date format of report-style exports
currency = None  # reporting currency; None: the corporate currency, or the only one
date_window = None  # [first, last] day a record may be dated; None: 1990-01-01 to 50 years ahead
discount_rate = 0.10  # annual discount rate for LTV
horizon_years = None  # cap on customer lifetime in years; None for no cap
ltv_method = "sbg"  # LTV method for the LTV:CAC table: simple, survival or sbg
spend_lag_months = 0  # charge spend of this many months earlier to new customers
bootstrap = 200  # bootstrap resamples for the LTV intervals
""", tags=["parameters"]),
    code(SETUP + """
book = rf.load_book(source, encoding=encoding, on_error=on_error, date_format=date_format,
                    currency=currency, date_window=date_window)
as_of_date = book.resolve_as_of(as_of)
book = book.as_of(as_of_date)  # only what was known at the end of the as-of date
month_end = rf.last_month_end(as_of_date)
"""),
    md("""
## Key figures

LTV:CAC and payback for the whole book, with the method and parameters of this report; the sections below break them down by segment and channel.
"""),
    code("""rf.unit_economics_headline(book, as_of_date, method=ltv_method, discount_rate=discount_rate,
                           horizon_years=horizon_years, spend_lag_months=spend_lag_months, n_boot=bootstrap)"""),
    md("## CAC by channel over time"),
    md("""
Fully loaded sales and marketing spend of each quarter over the customers that channel won in it.
A rising line means each customer is getting more expensive to win; compare channels at the same
time, and question a channel whose cost keeps climbing while its volume does not.
"""),
    code("""
quarterly = rf.cac(book, freq="Q", by="acquisition_channel", spend_lag_months=spend_lag_months, as_of=as_of_date,
                   through=month_end)
rf.plotting.lines_by_group(quarterly, x="period", y="cac", group="acquisition_channel", ylabel="CAC",
                           title="CAC by acquisition channel and quarter")
plt.show()
quarterly.tail(10).set_index(["period", "acquisition_channel"])
"""),
    md("## LTV by segment, three ways"),
    md("""
*Simple* divides margin per customer by the trailing year's churn rate (churn assumed the same
forever); *survival* follows the observed survival curve of customers; *sBG* lets customers differ in
how likely they are to leave, so the loyal ones who remain raise the value. Where the methods
disagree a lot, the simple one is usually too pessimistic for a book of mixed customers; the
error bars show how much the figure would move with a different sample of customers.
"""),
    code("""
values = pd.concat([rf.ltv(book, as_of_date, method=m, by="segment", discount_rate=discount_rate,
                           horizon_years=horizon_years, n_boot=bootstrap) for m in ("simple", "survival", "sbg")])
rf.plotting.ltv_by_method(values, group="segment", title="LTV per customer by segment and method")
plt.show()
values.set_index(["segment", "method"])[["ltv", "ltv_low", "ltv_high", "arpa", "gross_margin",
                                        "lifetime_months", "customers", "note"]]
"""),
    md("## LTV:CAC and payback against the bars"),
    md("""
LTV:CAC above the green line (3) means a customer returns at least three times what it cost; CAC
payback below the green line (12 months) means the cost comes back within a year, and above the red
line (36 months) is a concern. A segment can clear one bar and miss the other: a high LTV:CAC with
a long payback still ties up cash.
"""),
    code("""
by_segment = rf.ltv_cac(book, as_of_date, by="segment", method=ltv_method, discount_rate=discount_rate,
                        horizon_years=horizon_years, spend_lag_months=spend_lag_months, n_boot=bootstrap)
rf.plotting.against_benchmark(by_segment, group="segment", value=f"ltv_{ltv_method}_to_cac", benchmark=3.0,
                              ylabel="LTV:CAC", title=f"LTV ({ltv_method}) to CAC by segment")
plt.show()
rf.plotting.against_benchmark(by_segment, group="segment", value="payback_months", benchmark=12.0, concern=36.0,
                              ylabel="months", title="CAC payback by segment")
plt.show()
by_segment.set_index("segment")
"""),
    code("""
by_channel = rf.ltv_cac(book, as_of_date, by="acquisition_channel", method=ltv_method, discount_rate=discount_rate,
                        horizon_years=horizon_years, spend_lag_months=spend_lag_months, n_boot=bootstrap)
by_channel.set_index("acquisition_channel")[[f"ltv_{ltv_method}", "cac", f"ltv_{ltv_method}_to_cac",
                                             "ltv_to_cac_status", "payback_months", "payback_status",
                                             "magic_number", "new_customers", "spend"]]
"""),
    md("## Retention curves by cohort"),
    md("""
The share of each acquisition year's customers still paying at each anniversary, with the
shifted-beta-geometric curve fitted to all of them. Cohorts below the curve are retaining worse
than the book as a whole; the curve beyond the observed years is what the sBG LTV assumes.
"""),
    code("""
cohorts = rf.annual_cohorts(book, as_of_date)
sbg = rf.ShiftedBetaGeometric().fit(cohorts)
rf.plotting.sbg_fit(cohorts, sbg, years=10)
plt.show()
sbg.summary
"""),
])

write("04_revenue_forecast.ipynb", [
    md("""
# Revenue forecast

Revenue expected month by month, built bottom-up: subscriptions already booked (*contracted*),
contracts coming up for renewal weighted by how likely they are to renew (*renewal*), open deals
weighted by how likely they are to close (*pipeline*), and business nobody has booked or logged yet
(*new business*, from a time-series model). The band around the forecast is where revenue should
land eight times out of ten. The last section shows how well the same method did in the past.
"""),
    code("""
source = "../data/demo"  # folder with the Salesforce export (or canonical tables)
as_of = None  # as-of date YYYY-MM-DD; None means the export date of the data
encoding = None  # text encoding of the CSV files; None detects it
on_error = "raise"  # "quarantine": set aside rows that break a rule (listed in the data-quality report)
date_format = "%m/%d/%Y"  # the non-ISO date format of report-style exports
currency = None  # reporting currency; None: the corporate currency, or the only one
date_window = None  # [first, last] day a record may be dated; None: 1990-01-01 to 50 years ahead
model_path = "../models/renewal"  # saved renewal model for renewal probabilities; None uses historical rates
horizon_months = 12  # months forecast
by = "segment"  # account column the forecast is broken down by
n_sims = 1000  # Monte Carlo simulations
seed = 0  # random seed: the same seed gives the same intervals
backtest_origins = 9  # past forecast dates (a quarter apart) in the backtest
backtest_sims = 300  # simulations per backtest forecast
""", tags=["parameters"]),
    code(SETUP + """
book = rf.load_book(source, encoding=encoding, on_error=on_error, date_format=date_format,
                    currency=currency, date_window=date_window)
as_of_date = book.resolve_as_of(as_of)
model = rf.load_model(model_path) if model_path else None
forecast = rf.revenue_forecast(book, as_of_date, horizon_months=horizon_months, model=model, n_sims=n_sims,
                               by=by, random_state=seed)
history = rf.recognized_revenue(book, as_of_date - pd.DateOffset(months=24), rf.last_month_end(as_of_date))
"""),
    md("""
## Key figures

Expected revenue over the horizon with the range it should fall in eight times out of ten (P10 to P90 of the simulated totals, not the sum of the monthly ranges).
"""),
    code("rf.forecast_headline(book, forecast, history)"),
    md("## How the forecast is built"),
    md("""
Where each component's probabilities and numbers come from. The correlations say how strongly
renewals (and deals) tend to go well or badly together in the same month, estimated from how much
the monthly rates varied beyond chance; they widen the band.
"""),
    code("""
attrs = forecast.attrs
pd.Series({
    "as of": as_of_date.date(),
    "renewal probabilities": attrs["renewal_probability"],
    "deal win probabilities": attrs["win_probability"],
    "evergreen contracts": attrs["evergreen"],
    "new-business model": attrs["new_business_model"].get("model", "not included"),
    "renewal correlation": f"{attrs['renewal_correlation']:.3f}",
    "deal correlation": f"{attrs['pipeline_correlation']:.3f}",
    "contracts up for renewal": f"{len(attrs['renewals']):,}",
    "open deals": f"{len(attrs['pipeline']):,}",
    "simulations": f"{attrs['n_sims']:,}",
}).to_frame("")
"""),
    md("## The forecast and its range"),
    md("""
The grey line is revenue recognised so far; the blue line is the forecast's mean and the band its
P10 to P90. A band that widens quickly means the later months rest on renewals and deals not yet
decided; read the months near the start as firm and the far months as a range.
"""),
    code("""
rf.plotting.forecast_fan(forecast, history=history.set_index("month")["revenue"],
                         title=f"Monthly revenue, recognised and forecast from {as_of_date.date()}")
plt.show()
"""),
    md("## Where the revenue comes from"),
    md("""
Contracted revenue shrinks as contracts reach their end; renewals and new business take over. When
the renewal and new-business layers carry most of the later months, the forecast depends on the
renewal rate and on sales keeping pace: the scenarios below show how much.
"""),
    code("""
rf.plotting.forecast_components(forecast, title="Forecast mean by component")
plt.show()
total = forecast[forecast["group"] == "total"]
total.pivot(index="month", columns="component", values="mean")[
    ["contracted", "renewal", "pipeline", "new_business", "total"]]
"""),
    md("## By group"),
    md("""
Expected revenue of each group (the `by` parameter) by month, the mean, with the total's P10 and P90. Groups add up to
the total in the mean; ranges do not add up, because groups rarely all do badly at once.
"""),
    code("""
segment_table = forecast[forecast["component"] == "total"].pivot(index="month", columns="group", values="mean")
segment_table.join(total[total["component"] == "total"].set_index("month")[["p10", "p90"]])
"""),
    md("## Scenarios"),
    md("""
The same forecast under named shocks: renewals 10 % less likely; every open deal two months late;
renewals priced flat instead of by their pricing method; and renewals from historical rates
instead of the model. The spread between rows is how much the plan depends on each assumption.
"""),
    code("""
scenarios = [rf.Scenario("base"), rf.Scenario("renewals 10% less likely", renewal_factor=0.9),
             rf.Scenario("deals slip 2 months", pipeline_slip_months=2), rf.Scenario("renewals priced flat", uplift=0.0)]
runs = [rf.revenue_forecast(book, as_of_date, horizon_months=horizon_months, model=model, n_sims=n_sims,
                            scenario=s, random_state=seed) for s in scenarios]
runs.append(rf.revenue_forecast(book, as_of_date, horizon_months=horizon_months, model=None, n_sims=n_sims,
                                scenario=rf.Scenario("historical renewal rates"), random_state=seed))
rf.forecast_scenario_table(runs)
"""),
    md("## How well the method did before"),
    md("""
The forecast made from past dates (each seeing only what was known then, with historical renewal
rates) against the revenue recognised afterwards, side by side with two simple methods: exponential
smoothing of total revenue (*top-down*) and last year's same month (*seasonal naive*). MAPE is the
average miss in percent; bias below zero means the method under-forecast; coverage is how often the
actual month fell inside the P10 to P90 band (about 80 % is right: much less means the band is too
narrow, much more too wide).
"""),
    code("""
origins = rf.backtest_origins(book, horizon_months, n_origins=backtest_origins, as_of=as_of_date)
backtest = rf.backtest_forecast(book.as_of(as_of_date), origins, horizon_months, n_sims=backtest_sims,
                                random_state=seed)
print(f"{len(origins)} origins from {origins[0].date()} to {origins[-1].date()}" if origins else "no origin fits")
backtest.summary()
"""),
    code("""
rf.plotting.backtest_accuracy(backtest.by_horizon(), title="Average miss by months ahead")
plt.show()
"""),
])
