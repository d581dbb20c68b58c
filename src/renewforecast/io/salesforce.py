"""Salesforce / Salesforce CPQ exports: the one place API field names meet canonical columns.

A Salesforce export folder holds one CSV per object, named by its API name
(``Account.csv``, ``Contract.csv``, ``SBQQ__Subscription__c.csv``, ...), with
the API field names as headers, as Data Loader and the Bulk API write them.
:data:`SALESFORCE_OBJECTS` maps each field to a canonical column; the reader
(:func:`renewforecast.load_book`) and the demo org writer both use it, so the
two can never drift apart.

Rules taken from the CPQ data model (see ``docs/data_model.md``):

- Subscriptions are a ledger: amendments add signed delta rows linked by
  ``SBQQ__RevisedSubscription__c``; rows are never netted here.
- Subscription dates fall back to the contract's, as CPQ's own
  ``SBQQ__StartDate__c`` / ``SBQQ__EndDate__c`` formulas do.
- ``SBQQ__NetPrice__c`` is the full-term price; ``SBQQ__ProrateMultiplier__c``
  blank means 1. ``Product2.SBQQ__SubscriptionTerm__c`` blank means 12.
- Percent fields (probability, uplift, margin) are exported as 0-100 and
  become fractions.
- A contract's renewed contract is the ``SBQQ__RenewedContract__c`` of the
  opportunity that created it (``Contract.SBQQ__Opportunity__c``).
- The renewal pricing method is the account's
  ``SBQQ__RenewalPricingMethod__c`` unless the contract carries its own;
  blank behaves as ``Same``.
- Opportunity type: renewal when ``SBQQ__Renewal__c`` or
  ``SBQQ__RenewedContract__c`` is set, amendment when
  ``SBQQ__AmendedContract__c`` is set, upsell when ``Type`` says upgrade,
  upsell or expansion, otherwise new business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from renewforecast._atomic import atomic_write_text

__all__ = [
    "SALESFORCE_OBJECTS",
    "SfField",
    "SfObject",
    "from_salesforce",
    "write_salesforce_export",
]


@dataclass(frozen=True)
class SfField:
    """One exported field: its API name, canonical column and how to read it."""

    source: str
    column: str  # canonical column, or a helper starting with "_"
    kind: str
    required: bool = False
    percent: bool = False


@dataclass(frozen=True)
class SfObject:
    """One export file and the canonical table it feeds."""

    file: str
    table: str
    fields: tuple[SfField, ...]
    required_file: bool = True
    id_field: str | None = "Id"


def _f(source, column, kind, required=False, percent=False):
    return SfField(source, column, kind, required, percent)


SALESFORCE_OBJECTS: dict[str, SfObject] = {
    o.file: o
    for o in [
        SfObject("Account.csv", "accounts", (
            _f("Id", "account_id", "id", True),
            _f("Name", "name", "str", True),
            _f("Segment__c", "segment", "str"),
            _f("Industry", "industry", "str"),
            _f("Region__c", "region", "str"),
            _f("Is_Government__c", "is_government", "bool"),
            _f("CreatedDate", "created_date", "date", True),
            _f("Acquisition_Channel__c", "acquisition_channel", "str"),
            _f("SBQQ__RenewalPricingMethod__c", "_renewal_pricing_method", "cat"),
        )),
        SfObject("Product2.csv", "products", (
            _f("Id", "product_id", "id", True),
            _f("Name", "name", "str", True),
            _f("Family", "family", "str"),
            _f("SBQQ__SubscriptionTerm__c", "subscription_term_months", "float"),
            _f("Gross_Margin__c", "gross_margin", "float", percent=True),
            _f("RevenueScheduleType", "revenue_schedule_type", "cat"),
            _f("RevenueInstallmentPeriod", "revenue_installment_period", "cat"),
            _f("NumberOfRevenueInstallments", "revenue_installments", "int"),
        )),
        SfObject("Contract.csv", "contracts", (
            _f("Id", "contract_id", "id", True),
            _f("AccountId", "account_id", "id", True),
            _f("StartDate", "start_date", "date", True),
            _f("EndDate", "end_date", "date", True),
            _f("ContractTerm", "term_months", "float"),
            _f("Status", "status", "str"),
            _f("SBQQ__Evergreen__c", "evergreen", "bool"),
            _f("SBQQ__RenewalPricingMethod__c", "renewal_pricing_method", "cat"),
            _f("SBQQ__RenewalUpliftRate__c", "renewal_uplift_rate", "float", percent=True),
            _f("SBQQ__Opportunity__c", "_source_opportunity_id", "id"),
            _f("CreatedDate", "created_date", "date", True),
        )),
        SfObject("SBQQ__Subscription__c.csv", "subscriptions", (
            _f("Id", "subscription_id", "id", True),
            _f("SBQQ__Contract__c", "contract_id", "id", True),
            _f("SBQQ__Account__c", "account_id", "id"),
            _f("SBQQ__Product__c", "product_id", "id", True),
            _f("SBQQ__StartDate__c", "start_date", "date"),
            _f("SBQQ__SubscriptionStartDate__c", "_subscription_start_date", "date"),
            _f("SBQQ__EndDate__c", "end_date", "date"),
            _f("SBQQ__SubscriptionEndDate__c", "_subscription_end_date", "date"),
            _f("SBQQ__Quantity__c", "quantity", "float", True),
            _f("SBQQ__NetPrice__c", "net_price", "float", True),
            _f("SBQQ__ProrateMultiplier__c", "prorate_multiplier", "float"),
            _f("SBQQ__TerminatedDate__c", "terminated_date", "date"),
            _f("SBQQ__RevisedSubscription__c", "revised_subscription_id", "id"),
            _f("SBQQ__SegmentIndex__c", "segment_index", "int"),
            _f("SBQQ__SegmentStartDate__c", "segment_start_date", "date"),
            _f("SBQQ__SegmentEndDate__c", "segment_end_date", "date"),
            _f("SBQQ__SegmentQuantity__c", "segment_quantity", "float"),
            _f("CreatedDate", "created_date", "date", True),
        )),
        SfObject("Opportunity.csv", "opportunities", (
            _f("Id", "opportunity_id", "id", True),
            _f("AccountId", "account_id", "id", True),
            _f("Type", "_type", "str"),
            _f("StageName", "stage", "str", True),
            _f("Probability", "probability", "float", percent=True),
            _f("CloseDate", "close_date", "date", True),
            _f("IsClosed", "is_closed", "bool", True),
            _f("IsWon", "is_won", "bool", True),
            _f("Amount", "amount", "float"),
            _f("SBQQ__Renewal__c", "_renewal", "bool"),
            _f("SBQQ__RenewedContract__c", "renewed_contract_id", "id"),
            _f("SBQQ__AmendedContract__c", "amended_contract_id", "id"),
            _f("ForecastCategoryName", "forecast_category", "str"),
            _f("CreatedDate", "created_date", "date", True),
        )),
        SfObject("OpportunityLineItem.csv", "opportunity_lines", (
            _f("Id", "line_id", "id", True),
            _f("OpportunityId", "opportunity_id", "id", True),
            _f("Product2Id", "product_id", "id", True),
            _f("Quantity", "quantity", "float", True),
            _f("UnitPrice", "unit_price", "float", True),
            _f("TotalPrice", "total_price", "float", True),
            _f("ServiceDate", "service_date", "date"),
        )),
        SfObject("OpportunityLineItemSchedule.csv", "schedules", (
            _f("Id", "schedule_id", "id", True),
            _f("OpportunityLineItemId", "line_id", "id", True),
            _f("ScheduleDate", "schedule_date", "date", True),
            _f("Type", "type", "cat", True),
            _f("Revenue", "revenue", "float"),
            _f("Quantity", "quantity", "float"),
        )),
        SfObject("OpportunityHistory.csv", "opportunity_history", (
            _f("OpportunityId", "opportunity_id", "id", True),
            _f("CreatedDate", "created_date", "date", True),
            _f("StageName", "stage", "str", True),
            _f("Probability", "probability", "float", percent=True),
            _f("CloseDate", "close_date", "date"),
        ), required_file=False),
        SfObject("spend.csv", "spend", (
            _f("month", "month", "date", True),
            _f("channel", "channel", "str", True),
            _f("sales_spend", "sales_spend", "float", True),
            _f("marketing_spend", "marketing_spend", "float", True),
        ), id_field=None),
        SfObject("signals.csv", "signals", (
            _f("account_id", "account_id", "id", True),
            _f("month", "month", "date", True),
        ), required_file=False, id_field=None),
        SfObject("CurrencyType.csv", "fx", (
            _f("IsoCode", "currency", "str", True),
            _f("ConversionRate", "rate", "float", True),
            _f("IsCorporate", "is_reporting", "bool"),
        ), required_file=False, id_field="IsoCode"),
    ]
}

#: Files whose records carry CurrencyIsoCode in multi-currency orgs.
CURRENCY_FIELD = "CurrencyIsoCode"

_UPSELL_WORDS = ("upgrade", "upsell", "expansion", "add-on", "add on")


def _add_months(dates: pd.Series, months: pd.Series) -> pd.Series:
    out = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
    ok = dates.notna() & months.notna()
    if ok.any():
        periods = dates[ok].dt.to_period("M") + months[ok].round().astype(int).to_numpy()
        day = np.minimum(dates[ok].dt.day.to_numpy(), periods.dt.days_in_month.to_numpy())
        out[ok] = pd.to_datetime(
            {"year": periods.dt.year.to_numpy(), "month": periods.dt.month.to_numpy(), "day": day}
        ).to_numpy()
    return out


def from_salesforce(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Turn typed Salesforce object frames (canonical column names) into canonical tables.

    ``frames`` maps table name to a frame whose columns already carry the
    canonical names of :data:`SALESFORCE_OBJECTS` (helpers start with ``_``).
    Helper columns are consumed here; provenance columns (``_file``,
    ``_line``, ``_currency``) are kept for validation.
    """
    out = dict(frames)
    accounts = frames["accounts"]
    contracts = frames["contracts"].copy()
    opps = frames["opportunities"].copy()
    subs = frames["subscriptions"].copy()
    products = frames["products"].copy()

    # Products: CPQ treats a blank subscription term as 12 months.
    products["subscription_term_months"] = products["subscription_term_months"].fillna(12.0)
    out["products"] = products

    # Contracts.
    evergreen = contracts["evergreen"].fillna(False).astype("boolean")
    contracts["evergreen"] = evergreen
    missing_end = contracts["end_date"].isna() & ~evergreen.astype(bool)
    if missing_end.any():
        # Salesforce computes EndDate as StartDate + ContractTerm months - 1 day.
        computed = _add_months(contracts.loc[missing_end, "start_date"],
                               contracts.loc[missing_end, "term_months"]) - pd.Timedelta(days=1)
        contracts.loc[missing_end, "end_date"] = computed
    method = contracts["renewal_pricing_method"].copy()
    acct_method = accounts.set_index("account_id")["_renewal_pricing_method"]
    acct_method = acct_method[~acct_method.index.duplicated()]
    method = method.fillna(contracts["account_id"].map(acct_method))
    method = method.replace({"--none--": pd.NA}).fillna("same")
    contracts["renewal_pricing_method"] = method.astype("string")
    won_renewal_of = opps.set_index("opportunity_id")["renewed_contract_id"]
    won_renewal_of = won_renewal_of[~won_renewal_of.index.duplicated()]
    contracts["renewed_contract_id"] = (
        contracts["_source_opportunity_id"].map(won_renewal_of).astype("string")
    )
    out["contracts"] = contracts

    # Subscriptions: CPQ's StartDate/EndDate formulas fall back to the contract.
    cstart = contracts.set_index("contract_id")["start_date"]
    cend = contracts.set_index("contract_id")["end_date"]
    caccount = contracts.set_index("contract_id")["account_id"]
    cstart, cend, caccount = (s[~s.index.duplicated()] for s in (cstart, cend, caccount))
    subs["start_date"] = (
        subs["start_date"].fillna(subs["_subscription_start_date"]).fillna(subs["contract_id"].map(cstart))
    )
    subs["end_date"] = (
        subs["end_date"].fillna(subs["_subscription_end_date"]).fillna(subs["contract_id"].map(cend))
    )
    subs["account_id"] = subs["account_id"].fillna(subs["contract_id"].map(caccount)).astype("string")
    subs["prorate_multiplier"] = subs["prorate_multiplier"].fillna(1.0)
    out["subscriptions"] = subs

    # Opportunities.
    sf_type = opps["_type"].fillna("").str.lower()
    is_renewal = opps["_renewal"].fillna(False).astype(bool) | opps["renewed_contract_id"].notna()
    is_amend = opps["amended_contract_id"].notna()
    is_upsell = sf_type.apply(lambda t: any(w in t for w in _UPSELL_WORDS)).astype(bool)
    opps["type"] = pd.Series(
        np.select(
            [is_renewal.to_numpy(), is_amend.to_numpy(), is_upsell.to_numpy()],
            ["renewal", "amendment", "upsell"],
            "new_business",
        ),
        index=opps.index,
        dtype="string",
    )
    out["opportunities"] = opps
    return out


# ------------------------------------------------------------------ writing


def _fmt(series: pd.Series, field: SfField, *, datetime_hour: int | None = None) -> pd.Series:
    if field.kind == "date":
        s = pd.to_datetime(series)
        if datetime_hour is not None:
            return s.dt.strftime(f"%Y-%m-%dT{datetime_hour:02d}:00:00.000Z").fillna("")
        return s.dt.strftime("%Y-%m-%d").fillna("")
    if field.kind == "bool":
        return series.astype("boolean").map({True: "true", False: "false"}).astype(object).fillna("")
    if field.kind in ("float", "int"):
        v = pd.to_numeric(series).astype("float64")
        if field.percent:
            v = v * 100.0
        return v.map(lambda x: "" if pd.isna(x) else (str(int(x)) if float(x).is_integer() else repr(float(x))))
    return series.astype(object).where(series.notna(), "")


def write_salesforce_export(tables: dict[str, pd.DataFrame], out: str | Path) -> list[Path]:
    """Write canonical tables as a Salesforce export folder.

    The inverse of reading: every field of :data:`SALESFORCE_OBJECTS` whose
    canonical column exists is written under its API name; dates as
    ``YYYY-MM-DD``, ``CreatedDate`` as an API datetime, percents as 0-100,
    checkboxes as ``true``/``false``. Each file is written atomically.

    Parameters
    ----------
    tables : dict of DataFrame
        Canonical tables by name (as :attr:`Book.tables`).
    out : path-like
        Folder to write into (created if needed).

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = {k: v.copy() for k, v in tables.items()}
    contracts = t["contracts"]
    opps = t["opportunities"]

    # Account-level renewal pricing method (CPQ keeps it on the account).
    method = contracts.drop_duplicates("account_id").set_index("account_id")["renewal_pricing_method"]
    t["accounts"]["_renewal_pricing_method"] = t["accounts"]["account_id"].map(method)
    # The contract created by a won renewal opportunity points back at it.
    won = opps[opps["is_won"].fillna(False).astype(bool) & opps["renewed_contract_id"].notna()]
    source_opp = won.drop_duplicates("renewed_contract_id").set_index("renewed_contract_id")["opportunity_id"]
    contracts["_source_opportunity_id"] = contracts["renewed_contract_id"].map(source_opp)
    contracts["renewal_pricing_method"] = pd.NA  # lives on the account
    opps["_renewal"] = opps["type"] == "renewal"
    opps["_type"] = opps["type"].map(
        {"new_business": "New Customer", "renewal": "Renewal",
         "upsell": "Existing Customer - Upgrade", "amendment": "Existing Customer - Upgrade"}
    )
    t["subscriptions"]["_subscription_start_date"] = t["subscriptions"]["start_date"]
    t["subscriptions"]["_subscription_end_date"] = t["subscriptions"]["end_date"]

    written = []
    for obj in SALESFORCE_OBJECTS.values():
        frame = t.get(obj.table)
        if frame is None or (not obj.required_file and len(frame) == 0):
            continue
        cols = {}
        fields = list(obj.fields)
        if obj.table == "signals":
            fields += [SfField(c, c, "float") for c in frame.columns if c not in ("account_id", "month")]
        for field in fields:
            if field.column not in frame.columns:
                continue
            hour = 9 if field.source == "CreatedDate" else None
            cols[field.source] = _fmt(frame[field.column], field, datetime_hour=hour)
        text = pd.DataFrame(cols).to_csv(index=False, lineterminator="\n")
        path = out / obj.file
        atomic_write_text(path, text)
        written.append(path)
    return written
