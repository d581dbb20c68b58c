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
  ``SBQQ__AmendedContract__c`` is set, else the ``Type`` picklist value
  through :data:`OPPORTUNITY_TYPES` (overridable with ``type_map``); a value
  the mapping does not know is a warning with its count.
- A subscription's charge type is its ``SBQQ__ChargeType__c``, else its
  product's, else Recurring. A line is *total-priced* (its price fields hold
  the line total for the whole quantity) when its discount schedule type is
  Slab or its pricing method is Block (the subscription's own field, else its
  product's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from renewforecast.atomic import atomic_write_text
from renewforecast.currency import OPEN_START, rates_on
from renewforecast.dates import add_months
from renewforecast.exceptions import Problem
from renewforecast.schemas import ALLOWED

__all__ = [
    "FORMULA_FIELDS",
    "OPPORTUNITY_TYPES",
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
        SfObject(
            "Account.csv",
            "accounts",
            (
                _f("Id", "account_id", "id", True),
                _f("Name", "name", "str", True),
                _f("Segment__c", "segment", "str"),
                _f("Industry", "industry", "str"),
                _f("Region__c", "region", "str"),
                _f("Is_Government__c", "is_government", "bool"),
                _f("CreatedDate", "created_date", "date", True),
                _f("Acquisition_Channel__c", "acquisition_channel", "str"),
                _f("SBQQ__RenewalPricingMethod__c", "_renewal_pricing_method", "cat"),
                _f("ParentId", "parent_account_id", "id"),
            ),
        ),
        SfObject(
            "Product2.csv",
            "products",
            (
                _f("Id", "product_id", "id", True),
                _f("Name", "name", "str", True),
                _f("Family", "family", "str"),
                _f("SBQQ__SubscriptionTerm__c", "subscription_term_months", "float"),
                _f("Gross_Margin__c", "gross_margin", "float", percent=True),
                _f("RevenueScheduleType", "revenue_schedule_type", "cat"),
                _f("RevenueInstallmentPeriod", "revenue_installment_period", "cat"),
                _f("NumberOfRevenueInstallments", "revenue_installments", "int"),
                _f("SBQQ__ChargeType__c", "_charge_type", "cat"),
                _f("SBQQ__PricingMethod__c", "pricing_method", "cat"),
            ),
        ),
        SfObject(
            "Contract.csv",
            "contracts",
            (
                _f("Id", "contract_id", "id", True),
                _f("AccountId", "account_id", "id", True),
                _f("StartDate", "start_date", "date", True),
                _f("EndDate", "end_date", "date"),  # a formula: StartDate + ContractTerm
                _f("ContractTerm", "term_months", "float"),
                _f("Status", "status", "str"),
                _f("SBQQ__Evergreen__c", "evergreen", "bool"),
                _f("SBQQ__RenewalPricingMethod__c", "renewal_pricing_method", "cat"),
                _f("SBQQ__RenewalUpliftRate__c", "renewal_uplift_rate", "float", percent=True),
                _f("SBQQ__Opportunity__c", "_source_opportunity_id", "id"),
                _f("CreatedDate", "created_date", "date", True),
            ),
        ),
        SfObject(
            "SBQQ__Subscription__c.csv",
            "subscriptions",
            (
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
                _f("SBQQ__ListPrice__c", "list_price", "float"),
                _f("SBQQ__ProrateMultiplier__c", "prorate_multiplier", "float"),
                _f("SBQQ__TerminatedDate__c", "terminated_date", "date"),
                _f("SBQQ__RevisedSubscription__c", "revised_subscription_id", "id"),
                _f("SBQQ__SegmentIndex__c", "segment_index", "int"),
                _f("SBQQ__SegmentStartDate__c", "segment_start_date", "date"),
                _f("SBQQ__SegmentEndDate__c", "segment_end_date", "date"),
                _f("SBQQ__SegmentQuantity__c", "segment_quantity", "float"),
                _f("SBQQ__ChargeType__c", "_charge_type", "cat"),
                _f("SBQQ__DiscountScheduleType__c", "_discount_schedule_type", "cat"),
                _f("SBQQ__PricingMethod__c", "_pricing_method", "cat"),
                _f("CreatedDate", "created_date", "date", True),
            ),
        ),
        SfObject(
            "Opportunity.csv",
            "opportunities",
            (
                _f("Id", "opportunity_id", "id", True),
                _f("AccountId", "account_id", "id", True),
                _f("Type", "_type", "str"),
                _f("StageName", "stage", "str", True),
                _f("Probability", "probability", "float", percent=True),
                _f("CloseDate", "close_date", "date", True),
                _f("IsClosed", "is_closed", "bool"),
                _f("IsWon", "is_won", "bool"),
                _f("Amount", "amount", "float"),
                _f("SBQQ__Renewal__c", "_renewal", "bool"),
                _f("SBQQ__RenewedContract__c", "renewed_contract_id", "id"),
                _f("SBQQ__AmendedContract__c", "amended_contract_id", "id"),
                _f("ForecastCategoryName", "forecast_category", "str"),
                _f("CreatedDate", "created_date", "date", True),
            ),
        ),
        SfObject(
            "OpportunityLineItem.csv",
            "opportunity_lines",
            (
                _f("Id", "line_id", "id", True),
                _f("OpportunityId", "opportunity_id", "id", True),
                _f("Product2Id", "product_id", "id", True),
                _f("Quantity", "quantity", "float", True),
                _f("UnitPrice", "unit_price", "float", True),
                _f("TotalPrice", "total_price", "float"),
                _f("ServiceDate", "service_date", "date"),
            ),
        ),
        SfObject(
            "OpportunityLineItemSchedule.csv",
            "schedules",
            (
                _f("Id", "schedule_id", "id", True),
                _f("OpportunityLineItemId", "line_id", "id", True),
                _f("ScheduleDate", "schedule_date", "date", True),
                _f("Type", "type", "cat", True),
                _f("Revenue", "revenue", "float"),
                _f("Quantity", "quantity", "float"),
            ),
            required_file=False,
        ),
        SfObject(
            "OpportunityHistory.csv",
            "opportunity_history",
            (
                _f("Id", "history_id", "id"),
                _f("OpportunityId", "opportunity_id", "id", True),
                _f("CreatedDate", "created_date", "date", True),
                # the same field with its time of day: same-day changes are ordered by it
                _f("CreatedDate", "created_at", "datetime"),
                _f("StageName", "stage", "str", True),
                _f("Probability", "probability", "float", percent=True),
                _f("Amount", "amount", "float"),
                _f("CloseDate", "close_date", "date"),
            ),
            required_file=False,
        ),
        SfObject(
            "spend.csv",
            "spend",
            (
                _f("month", "month", "date", True),
                _f("channel", "channel", "str", True),
                _f("sales_spend", "sales_spend", "float", True),
                _f("marketing_spend", "marketing_spend", "float", True),
            ),
            required_file=False,
            id_field=None,
        ),
        SfObject(
            "signals.csv",
            "signals",
            (
                _f("account_id", "account_id", "id", True),
                _f("month", "month", "date", True),
            ),
            required_file=False,
            id_field=None,
        ),
        SfObject(
            "CurrencyType.csv",
            "fx",
            (
                _f("IsoCode", "currency", "str", True),
                _f("ConversionRate", "rate", "float", True),
                _f("IsCorporate", "is_reporting", "bool"),
            ),
            required_file=False,
            id_field="IsoCode",
        ),
        SfObject(
            "DatedConversionRate.csv",
            "fx_dated",
            (
                _f("IsoCode", "currency", "str", True),
                _f("ConversionRate", "rate", "float", True),
                # Read as text: Salesforce's first range starts on 0001-01-01 and
                # its last ends on 9999-12-31, outside the dates pandas holds.
                _f("StartDate", "_start", "str", True),
                _f("NextStartDate", "_next", "str"),
            ),
            required_file=False,
        ),
    ]
}

#: Files whose records carry CurrencyIsoCode in multi-currency orgs.
CURRENCY_FIELD = "CurrencyIsoCode"

#: ``Opportunity.Type`` picklist values (compared case-insensitively, spaces
#: folded) and the canonical type each means when no CPQ flag decides. The
#: standard values are Salesforce's defaults; the others are the values real
#: orgs add (see ``docs/data_model.md``). ``load_book(type_map=...)`` adds or
#: overrides entries.
OPPORTUNITY_TYPES: dict[str, str] = {
    "new customer": "new_business",
    "new business": "new_business",
    "new logo": "new_business",
    "existing customer - upgrade": "upsell",
    "existing customer - downgrade": "downgrade",
    "existing customer - replacement": "amendment",
    "existing business": "upsell",
    "upsell": "upsell",
    "up-sell": "upsell",
    "upgrade": "upsell",
    "cross-sell": "upsell",
    "expansion": "upsell",
    "add-on": "upsell",
    "add-on business": "upsell",
    "downgrade": "downgrade",
    "contraction": "downgrade",
    "amendment": "amendment",
    "renewal": "renewal",
    "existing customer - renewal": "renewal",
}

_CHARGE_TYPES = {
    "recurring": "recurring",
    "one-time": "one_time",
    "one time": "one_time",
    "one_time": "one_time",
    "usage": "usage",
}


def _fold(value: str) -> str:
    return " ".join(str(value).strip().lower().split())


def _opportunity_types(opps: pd.DataFrame, type_map: dict[str, str] | None, warnings: list[Problem]) -> pd.Series:
    """Canonical opportunity type from CPQ's flags, else from ``Type``."""

    mapping = dict(OPPORTUNITY_TYPES)
    for key, value in (type_map or {}).items():
        if value not in ALLOWED["opportunity_type"]:
            raise ValueError(
                f"type_map maps {key!r} to {value!r}; use one of " + ", ".join(ALLOWED["opportunity_type"])
            )
        mapping[_fold(key)] = value
    raw = opps["_type"].astype(object)
    folded = raw.map(lambda t: "" if pd.isna(t) else _fold(t))
    by_type = folded.map(mapping)
    is_renewal = opps["_renewal"].fillna(False).astype(bool) | opps["renewed_contract_id"].notna()
    is_amend = opps["amended_contract_id"].notna()
    # CPQ's flags decide first: it sets them on the opportunities it creates,
    # whatever the Type picklist says.
    out = np.select(
        [is_renewal.to_numpy(), is_amend.to_numpy(), by_type.notna().to_numpy()],
        ["renewal", "amendment", by_type.to_numpy(dtype=object)],
        "new_business",
    )
    unknown = by_type.isna() & (folded != "") & ~is_renewal & ~is_amend
    if unknown.any():
        sub = opps[unknown.to_numpy()]
        for value, group in sub.groupby(raw[unknown.to_numpy()].astype(str), sort=True):
            first = group.iloc[0]
            warnings.append(
                Problem(
                    str(first["_file"]),
                    int(first["_line"]),
                    str(first["_id"]),
                    "Type",
                    "unknown_opportunity_type",
                    f"Type {value!r} on {len(group)} opportunit{'y' if len(group) == 1 else 'ies'} without a CPQ "
                    "renewal or amendment flag is not a known value; counted as new business. Map it with "
                    "load_book(type_map={" + repr(value) + ": 'upsell'}) (or new_business, renewal, downgrade, "
                    "amendment)",
                    "warning",
                )
            )
    return pd.Series(out, index=opps.index, dtype="string")


def _charge_type_values(values: pd.Series) -> pd.Series:
    return (
        values.astype(object)
        .map(lambda v: _CHARGE_TYPES.get(_fold(v), v) if isinstance(v, str) else v)
        .astype("string")
    )


def _charge_types(subs: pd.DataFrame, products: pd.DataFrame) -> pd.Series:
    own = _charge_type_values(subs["_charge_type"]).astype(object)
    prod = products.drop_duplicates("product_id").set_index("product_id")["charge_type"]
    value = own.where(own.notna(), subs["product_id"].map(prod).astype(object))
    return value.fillna("recurring").astype("string")


def _total_priced(subs: pd.DataFrame, products: pd.DataFrame) -> pd.Series:
    prod = products.drop_duplicates("product_id").set_index("product_id")["pricing_method"]
    method = subs["_pricing_method"].astype(object)
    method = method.where(method.notna(), subs["product_id"].map(prod).astype(object))
    slab = subs["_discount_schedule_type"].astype(object) == "slab"
    return (slab | (method == "block")).astype("boolean")


def from_salesforce(
    frames: dict[str, pd.DataFrame], *, type_map: dict[str, str] | None = None, warnings: list[Problem] | None = None
) -> dict[str, pd.DataFrame]:
    """Turn typed Salesforce object frames (canonical column names) into canonical tables.

    ``frames`` maps table name to a frame whose columns already carry the
    canonical names of :data:`SALESFORCE_OBJECTS` (helpers start with ``_``).
    Helper columns are consumed here; provenance columns (``_file``,
    ``_line``, ``_currency``) are kept for validation. Warnings (opportunity
    types the mapping does not know) are appended to ``warnings``.
    """
    warnings = [] if warnings is None else warnings
    out = dict(frames)
    accounts = frames["accounts"]
    contracts = frames["contracts"].copy()
    opps = frames["opportunities"].copy()
    subs = frames["subscriptions"].copy()
    products = frames["products"].copy()

    # Products: CPQ treats a blank subscription term as 12 months.
    products["subscription_term_months"] = products["subscription_term_months"].fillna(12.0)
    products["charge_type"] = _charge_type_values(products["_charge_type"])
    out["products"] = products

    # Contracts.
    evergreen = contracts["evergreen"].fillna(False).astype("boolean")
    contracts["evergreen"] = evergreen
    missing_end = contracts["end_date"].isna() & ~evergreen.astype(bool)
    if missing_end.any():
        # Salesforce computes EndDate as StartDate + ContractTerm months - 1 day.
        computed = add_months(
            contracts.loc[missing_end, "start_date"], contracts.loc[missing_end, "term_months"]
        ) - pd.Timedelta(days=1)
        contracts.loc[missing_end, "end_date"] = computed
    method = contracts["renewal_pricing_method"].astype(object).copy()
    acct_method = accounts.set_index("account_id")["_renewal_pricing_method"]
    acct_method = acct_method[~acct_method.index.duplicated()]
    method = method.where(method.notna(), contracts["account_id"].map(acct_method).astype(object))
    method = method.where(method.notna() & (method != "--none--"), "same")
    contracts["renewal_pricing_method"] = method.astype("string")
    won_renewal_of = opps.set_index("opportunity_id")["renewed_contract_id"]
    won_renewal_of = won_renewal_of[~won_renewal_of.index.duplicated()]
    contracts["renewed_contract_id"] = contracts["_source_opportunity_id"].map(won_renewal_of).astype("string")
    out["contracts"] = contracts

    # Subscriptions: CPQ's StartDate/EndDate formulas fall back to the contract.
    cstart = contracts.set_index("contract_id")["start_date"]
    cend = contracts.set_index("contract_id")["end_date"]
    caccount = contracts.set_index("contract_id")["account_id"]
    cstart, cend, caccount = (s[~s.index.duplicated()] for s in (cstart, cend, caccount))
    subs["start_date"] = (
        subs["start_date"].fillna(subs["_subscription_start_date"]).fillna(subs["contract_id"].map(cstart))
    )
    subs["end_date"] = subs["end_date"].fillna(subs["_subscription_end_date"]).fillna(subs["contract_id"].map(cend))
    subs["account_id"] = subs["account_id"].fillna(subs["contract_id"].map(caccount)).astype("string")
    subs["prorate_multiplier"] = subs["prorate_multiplier"].fillna(1.0)
    subs["charge_type"] = _charge_types(subs, products)
    subs["total_priced"] = _total_priced(subs, products)
    out["subscriptions"] = subs

    # Opportunities. IsClosed and IsWon follow the stage; without them the
    # stage's name says it (Salesforce's default closed stages are named so).
    stage = opps["stage"].astype(object).fillna("").str.strip().str.lower()
    opps["is_closed"] = opps["is_closed"].astype("boolean").fillna(stage.str.startswith("closed"))
    opps["is_won"] = opps["is_won"].astype("boolean").fillna(stage.str.startswith("closed") & stage.str.contains("won"))
    opps["type"] = _opportunity_types(opps, type_map, warnings)
    out["opportunities"] = opps
    lines = frames["opportunity_lines"].copy()
    lines["total_price"] = lines["total_price"].fillna(lines["quantity"] * lines["unit_price"])
    out["opportunity_lines"] = lines
    return out


# ------------------------------------------------------------------ writing


def _fmt(series: pd.Series, field: SfField, *, datetime_hour: int | None = None) -> pd.Series:
    if field.kind == "datetime":
        return pd.to_datetime(series).dt.strftime("%Y-%m-%dT%H:%M:%S.000Z").fillna("")
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


_PICKLIST_LABELS = {
    "charge_type": {"recurring": "Recurring", "one_time": "One-Time", "usage": "Usage"},
    "pricing_method": {
        "list": "List",
        "cost": "Cost",
        "block": "Block",
        "percent of total": "Percent Of Total",
        "custom": "Custom",
    },
}
#: Type values written for each canonical type, chosen per record (real orgs
#: mix the standard values with their own).
_TYPE_VALUES = {
    "new_business": ("New Customer", "New Business"),
    "renewal": ("Renewal",),
    "upsell": ("Existing Customer - Upgrade", "Upsell", "Add-On"),
    "downgrade": ("Existing Customer - Downgrade",),
    "amendment": (
        "Existing Business",
        "Existing Customer - Upgrade",
        "Existing Customer - Downgrade",
        "Existing Customer - Replacement",
        "Add-On",
    ),
}


def _pick(ids: pd.Series, choices: pd.Series) -> pd.Series:
    """One value per record from its tuple of choices, fixed by the record's id."""
    h = ids.astype(str).map(lambda x: sum(map(ord, x)))
    return pd.Series(
        [c[k % len(c)] if isinstance(c, tuple) else None for c, k in zip(choices, h, strict=True)],
        index=ids.index,
        dtype=object,
    )


def _open_date(value) -> str:
    return "0001-01-01" if value <= OPEN_START else pd.Timestamp(value).strftime("%Y-%m-%d")


def _rate_files(fx_rates: pd.DataFrame, reporting: str) -> dict[str, pd.DataFrame]:
    """DatedConversionRate and CurrencyType files from a canonical fx_rates table."""
    rows, static = [], [{"IsoCode": reporting, "ConversionRate": "1", "IsCorporate": "true"}]
    for code, g in fx_rates.sort_values(["currency", "start_date"]).groupby("currency", sort=True):
        starts = list(g["start_date"])
        for i, (start, rate) in enumerate(zip(starts, g["rate"], strict=True)):
            nxt = "9999-12-31" if i + 1 == len(starts) else starts[i + 1].strftime("%Y-%m-%d")
            rows.append(
                {
                    "Id": f"04w{code}{i:012d}",
                    "IsoCode": code,
                    "ConversionRate": repr(float(rate)),
                    "StartDate": _open_date(start),
                    "NextStartDate": nxt,
                }
            )
        static.append({"IsoCode": code, "ConversionRate": repr(float(g["rate"].iloc[-1])), "IsCorporate": "false"})
    return {"DatedConversionRate.csv": pd.DataFrame(rows), "CurrencyType.csv": pd.DataFrame(static)}


#: Formula fields: Salesforce computes them, so backup tools often leave them out.
FORMULA_FIELDS = {"Contract.csv": ("EndDate",), "SBQQ__Subscription__c.csv": ("SBQQ__StartDate__c", "SBQQ__EndDate__c")}


def write_salesforce_export(
    tables: dict[str, pd.DataFrame],
    out: str | Path,
    *,
    currency: str = "USD",
    encoding: str = "utf-8",
    leave_out: dict[str, tuple[str, ...]] | None = None,
) -> list[Path]:
    """Write canonical tables as a Salesforce export folder.

    The inverse of reading: every field of :data:`SALESFORCE_OBJECTS` whose
    canonical column exists is written under its API name; dates as
    ``YYYY-MM-DD``, ``CreatedDate`` as an API datetime, percents as 0-100,
    checkboxes as ``true``/``false``, picklists with Salesforce's labels. A
    total-priced subscription is written as a Slab-discounted line, or as a
    Block-priced one when its product is. With an ``fx_rates`` table, records
    whose ``_currency`` helper column names another currency carry
    ``CurrencyIsoCode`` and their amounts in that currency at the rate of
    their date, and ``DatedConversionRate.csv`` and ``CurrencyType.csv`` are
    written. Each file is written atomically.

    Parameters
    ----------
    tables : dict of DataFrame
        Canonical tables by name (as :attr:`Book.tables`).
    out : path-like
        Folder to write into (created if needed).
    currency : str, default "USD"
        The corporate currency the canonical amounts are in.
    encoding : str, default "utf-8"
        Text encoding of the files (``cp1252`` or ``latin-1`` as older
        Windows tools write them).
    leave_out : dict, optional
        Per file, fields not to write (for example :data:`FORMULA_FIELDS`).

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
    subs = t["subscriptions"]
    products = t["products"]

    # Account-level renewal pricing method (CPQ keeps it on the account).
    method = contracts.drop_duplicates("account_id").set_index("account_id")["renewal_pricing_method"]
    t["accounts"]["_renewal_pricing_method"] = t["accounts"]["account_id"].map(method)
    # The contract created by a won renewal opportunity points back at it.
    won = opps[opps["is_won"].fillna(False).astype(bool) & opps["renewed_contract_id"].notna()]
    source_opp = won.drop_duplicates("renewed_contract_id").set_index("renewed_contract_id")["opportunity_id"]
    contracts["_source_opportunity_id"] = contracts["renewed_contract_id"].map(source_opp)
    contracts["renewal_pricing_method"] = pd.NA  # lives on the account
    # Some orgs' renewal opportunities carry only the renewed-contract lookup.
    renewal = opps["type"] == "renewal"
    opps["_renewal"] = renewal & (opps["opportunity_id"].astype(str).str[-1] != "A")
    opps["_type"] = _pick(opps["opportunity_id"], opps["type"].map(_TYPE_VALUES))
    subs["_subscription_start_date"] = subs["start_date"]
    subs["_subscription_end_date"] = subs["end_date"]
    if "charge_type" in products:
        products["_charge_type"] = products["charge_type"].map(_PICKLIST_LABELS["charge_type"])
        products["pricing_method"] = products["pricing_method"].map(_PICKLIST_LABELS["pricing_method"])
    if "charge_type" in subs:
        subs["_charge_type"] = subs["charge_type"].map(_PICKLIST_LABELS["charge_type"])
        block = (
            subs["product_id"].map(products.drop_duplicates("product_id").set_index("product_id")["pricing_method"])
            == "Block"
        )
        total = subs["total_priced"].fillna(False).astype(bool)
        subs["_pricing_method"] = np.where(total & block, "Block", None)
        subs["_discount_schedule_type"] = np.where(total & ~block, "Slab", None)

    fx_rates = t.get("fx_rates")
    files: dict[str, pd.DataFrame] = {}
    if fx_rates is not None and len(fx_rates):
        close = opps.drop_duplicates("opportunity_id").set_index("opportunity_id")["close_date"]
        lines = t["opportunity_lines"]
        lines["_close_date"] = lines["opportunity_id"].map(close)
        t["schedules"]["_close_date"] = t["schedules"]["line_id"].map(
            lines.drop_duplicates("line_id").set_index("line_id")["_close_date"]
        )
        dates = {
            "subscriptions": "start_date",
            "opportunities": "close_date",
            "opportunity_lines": "_close_date",
            "schedules": "_close_date",
        }
        money = {
            "subscriptions": ["net_price", "list_price"],
            "opportunities": ["amount"],
            "opportunity_lines": ["unit_price", "total_price"],
            "schedules": ["revenue"],
        }
        for name, cols in money.items():
            frame = t.get(name)
            if frame is None or "_currency" not in frame:
                continue
            rate = rates_on(
                fx_rates, frame["_currency"].where(frame["_currency"].notna(), None), frame[dates[name]], currency
            )
            for col in cols:
                if col in frame:
                    frame[col] = (frame[col] * rate).round(2)
            frame[CURRENCY_FIELD] = frame["_currency"].fillna(currency)
        files = _rate_files(fx_rates, currency)

    written = []
    for obj in SALESFORCE_OBJECTS.values():
        if obj.file in files:
            continue
        frame = t.get(obj.table)
        if frame is None or (not obj.required_file and len(frame) == 0):
            continue
        cols = {}
        fields = list(obj.fields)
        if obj.table == "signals":
            fields += [SfField(c, c, "float") for c in frame.columns if c not in ("account_id", "month")]
        for field in fields:
            if field.column not in frame.columns or field.source in (leave_out or {}).get(obj.file, ()):
                continue
            hour = 9 if field.source == "CreatedDate" else None
            if field.kind == "datetime" and field.source in cols:
                # A timestamp, where known, is the more precise writing of the same field.
                known = frame[field.column].notna().to_numpy()
                cols[field.source] = np.where(known, _fmt(frame[field.column], field), cols[field.source])
                continue
            cols[field.source] = _fmt(frame[field.column], field, datetime_hour=hour)
        if CURRENCY_FIELD in frame.columns:
            cols[CURRENCY_FIELD] = frame[CURRENCY_FIELD].astype(object)
        text = pd.DataFrame(cols).to_csv(index=False, lineterminator="\n")
        path = out / obj.file
        atomic_write_text(path, text, encoding=encoding)
        written.append(path)
    for name, frame in files.items():
        path = out / name
        atomic_write_text(path, frame.to_csv(index=False, lineterminator="\n"))
        written.append(path)
    return written
