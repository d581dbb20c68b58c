"""The canonical data model: tables, columns, types and the rules on them.

Every engine reads these tables and only these. Readers map their source
(Salesforce exports, a canonical folder) onto them, then validation checks
the typed tables against the pandera schemas built here.

Column kinds
------------
``id``     string, never parsed as a number (Salesforce 15/18-character ids)
``str``    free text
``cat``    text from a fixed set of values (``allowed``)
``date``   ``datetime64[ns]`` date, no time zone
``datetime`` ``datetime64[ns]`` instant in UTC with its time of day (ordering events)
``float``  number (money is in the book's reporting currency)
``int``    whole number, nullable (``Int64``)
``bool``   True/False, nullable (``boolean``)

Money is full-term: ``net_price`` on a subscription is the price for the whole
subscription term, as in Salesforce CPQ. Rates and probabilities are fractions
(0.05 is 5 %), not percents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

__all__ = [
    "ALLOWED",
    "TABLES",
    "Col",
    "TableSpec",
    "empty_table",
    "pandera_schema",
]

#: Allowed values of the categorical columns.
ALLOWED: dict[str, tuple[str, ...]] = {
    "renewal_pricing_method": ("same", "list", "uplift"),
    "opportunity_type": ("new_business", "renewal", "upsell", "downgrade", "amendment"),
    "charge_type": ("recurring", "one_time", "usage"),
    "pricing_method": ("list", "cost", "block", "percent of total", "custom"),
    "schedule_type": ("revenue", "quantity", "both"),
    "revenue_schedule_type": ("divide", "repeat"),
    "installment_period": ("daily", "weekly", "monthly", "quarterly", "yearly"),
}

#: Salesforce allows 1 to 150 installments in a product schedule.
MAX_INSTALLMENTS = 150


@dataclass(frozen=True)
class Col:
    """One canonical column."""

    name: str
    kind: str
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    ge: float | None = None
    le: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """One canonical table: its key, columns and whether it must be present."""

    name: str
    key: str | None
    columns: tuple[Col, ...]
    required: bool = True
    extra_numeric: bool = False  # extra numeric columns are kept (signals)
    references: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def col(self, name: str) -> Col:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _t(name, key, cols, *, required=True, extra_numeric=False, references=()):
    return TableSpec(name, key, tuple(cols), required, extra_numeric, tuple(references))


TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        _t(
            "accounts",
            "account_id",
            [
                Col("account_id", "id"),
                Col("name", "str", nullable=True),
                Col("segment", "str", nullable=True),
                Col("industry", "str", nullable=True),
                Col("region", "str", nullable=True),
                Col("is_government", "bool", nullable=True),
                Col("created_date", "date"),
                Col("acquisition_channel", "str", nullable=True),
                Col("parent_account_id", "id", nullable=True),
            ],
            references=(("parent_account_id", "accounts"),),
        ),
        _t(
            "products",
            "product_id",
            [
                Col("product_id", "id"),
                Col("name", "str", nullable=True),
                Col("family", "str", nullable=True),
                Col("subscription_term_months", "float", ge=0),
                Col("gross_margin", "float", nullable=True, ge=-10, le=1),
                Col(
                    "revenue_schedule_type",
                    "cat",
                    nullable=True,
                    allowed=ALLOWED["revenue_schedule_type"],
                ),
                Col(
                    "revenue_installment_period",
                    "cat",
                    nullable=True,
                    allowed=ALLOWED["installment_period"],
                ),
                Col("revenue_installments", "int", nullable=True, ge=1, le=MAX_INSTALLMENTS),
                Col("charge_type", "cat", nullable=True, allowed=ALLOWED["charge_type"]),
                Col("pricing_method", "cat", nullable=True, allowed=ALLOWED["pricing_method"]),
            ],
        ),
        _t(
            "contracts",
            "contract_id",
            [
                Col("contract_id", "id"),
                Col("account_id", "id"),
                Col("start_date", "date"),
                Col("end_date", "date", nullable=True),
                Col("term_months", "float", nullable=True, ge=0),
                Col("status", "str", nullable=True),
                Col("evergreen", "bool"),
                Col(
                    "renewal_pricing_method",
                    "cat",
                    nullable=True,
                    allowed=ALLOWED["renewal_pricing_method"],
                ),
                Col("renewal_uplift_rate", "float", nullable=True),
                Col("renewed_contract_id", "id", nullable=True),
                Col("created_date", "date"),
            ],
            references=(("account_id", "accounts"), ("renewed_contract_id", "contracts")),
        ),
        _t(
            "subscriptions",
            "subscription_id",
            [
                Col("subscription_id", "id"),
                Col("contract_id", "id"),
                Col("account_id", "id"),
                Col("product_id", "id"),
                Col("start_date", "date"),
                Col("end_date", "date", nullable=True),
                Col("quantity", "float"),
                Col("net_price", "float"),
                Col("prorate_multiplier", "float", ge=0),
                Col("terminated_date", "date", nullable=True),
                Col("revised_subscription_id", "id", nullable=True),
                Col("segment_index", "int", nullable=True, ge=1),
                Col("segment_start_date", "date", nullable=True),
                Col("segment_end_date", "date", nullable=True),
                Col("segment_quantity", "float", nullable=True),
                Col("charge_type", "cat", nullable=True, allowed=ALLOWED["charge_type"]),
                Col("total_priced", "bool", nullable=True),
                Col("list_price", "float", nullable=True),
                Col("currency", "str", nullable=True),
                Col("created_date", "date"),
            ],
            references=(
                ("contract_id", "contracts"),
                ("account_id", "accounts"),
                ("product_id", "products"),
                ("revised_subscription_id", "subscriptions"),
            ),
        ),
        _t(
            "opportunities",
            "opportunity_id",
            [
                Col("opportunity_id", "id"),
                Col("account_id", "id"),
                Col("type", "cat", allowed=ALLOWED["opportunity_type"]),
                Col("stage", "str", nullable=True),
                Col("probability", "float", nullable=True, ge=0, le=1),
                Col("close_date", "date"),
                Col("is_closed", "bool"),
                Col("is_won", "bool"),
                Col("amount", "float", nullable=True),
                Col("renewed_contract_id", "id", nullable=True),
                Col("amended_contract_id", "id", nullable=True),
                Col("forecast_category", "str", nullable=True),
                Col("created_date", "date"),
            ],
            references=(
                ("account_id", "accounts"),
                ("renewed_contract_id", "contracts"),
                ("amended_contract_id", "contracts"),
            ),
        ),
        _t(
            "opportunity_lines",
            "line_id",
            [
                Col("line_id", "id"),
                Col("opportunity_id", "id"),
                Col("product_id", "id"),
                Col("quantity", "float"),
                Col("unit_price", "float", ge=0),
                Col("total_price", "float"),
                Col("service_date", "date", nullable=True),
            ],
            references=(("opportunity_id", "opportunities"), ("product_id", "products")),
        ),
        _t(
            "schedules",
            "schedule_id",
            [
                Col("schedule_id", "id"),
                Col("line_id", "id"),
                Col("schedule_date", "date"),
                Col("type", "cat", allowed=ALLOWED["schedule_type"]),
                Col("revenue", "float", nullable=True),
                Col("quantity", "float", nullable=True),
            ],
            references=(("line_id", "opportunity_lines"),),
        ),
        _t(
            "spend",
            None,
            [
                Col("month", "date"),
                Col("channel", "str"),
                Col("sales_spend", "float", ge=0),
                Col("marketing_spend", "float", ge=0),
            ],
        ),
        _t(
            "signals",
            None,
            [
                Col("account_id", "id"),
                Col("month", "date"),
                Col("seat_utilization", "float", required=False, nullable=True),
                Col("active_users", "float", required=False, nullable=True),
                Col("support_tickets", "float", required=False, nullable=True),
                Col("nps", "float", required=False, nullable=True),
            ],
            required=False,
            extra_numeric=True,
            references=(("account_id", "accounts"),),
        ),
        _t(
            "opportunity_history",
            None,
            [
                Col("opportunity_id", "id"),
                Col("created_date", "date"),
                Col("stage", "str", nullable=True),
                Col("probability", "float", nullable=True, ge=0, le=1),
                Col("close_date", "date", nullable=True),
                Col("amount", "float", nullable=True),
                Col("created_at", "datetime", nullable=True),
                Col("history_id", "id", nullable=True),
            ],
            required=False,
            references=(("opportunity_id", "opportunities"),),
        ),
        _t(
            "fx_rates",
            None,
            [
                Col("currency", "str"),
                Col("start_date", "date"),
                Col("rate", "float", ge=0),
            ],
            required=False,
        ),
    ]
}

_DTYPES = {
    "id": "string",
    "str": "string",
    "cat": "string",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns]",
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
}


def dtype_of(kind: str) -> str:
    """Return the pandas dtype used for a column kind."""
    return _DTYPES[kind]


def empty_table(name: str) -> pd.DataFrame:
    """Return an empty canonical table with the right columns and dtypes.

    Examples
    --------
    >>> empty_table("spend").dtypes.astype(str).to_dict()
    {'month': 'datetime64[ns]', 'channel': 'string', 'sales_spend': 'float64', 'marketing_spend': 'float64'}
    """
    spec = TABLES[name]
    return pd.DataFrame({c.name: pd.Series(dtype=dtype_of(c.kind)) for c in spec.columns if c.required})


def pandera_schema(name: str) -> pa.DataFrameSchema:
    """Build the pandera schema of one canonical table.

    The schema checks dtypes, nullability, allowed values, numeric bounds and
    key uniqueness. Cross-table rules (references, dates against contracts)
    live in :mod:`renewforecast.io.validate`.

    Examples
    --------
    >>> import pandas as pd
    >>> schema = pandera_schema("spend")
    >>> ok = pd.DataFrame({"month": pd.to_datetime(["2024-01-01"]),
    ...                    "channel": pd.array(["paid"], dtype="string"),
    ...                    "sales_spend": [10.0], "marketing_spend": [5.0]})
    >>> len(schema.validate(ok))
    1
    """
    spec = TABLES[name]
    columns = {}
    for c in spec.columns:
        checks = []
        if c.allowed is not None:
            checks.append(pa.Check.isin(list(c.allowed)))
        if c.ge is not None:
            checks.append(pa.Check.ge(c.ge))
        if c.le is not None:
            checks.append(pa.Check.le(c.le))
        columns[c.name] = pa.Column(
            dtype_of(c.kind),
            checks=checks,
            nullable=c.nullable,
            unique=(c.name == spec.key),
            required=c.required,
        )
    return pa.DataFrameSchema(columns, strict=not spec.extra_numeric, coerce=False, name=name)


def conform(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Return ``frame`` with the canonical columns of table ``name``, in order and typed.

    Missing optional columns are added as missing values; extra numeric
    columns are kept only for tables that allow them (signals).

    Examples
    --------
    >>> import pandas as pd
    >>> conform(pd.DataFrame({"channel": ["paid"], "month": ["2024-01-01"],
    ...                       "sales_spend": [1], "marketing_spend": [2]}), "spend").columns.tolist()
    ['month', 'channel', 'sales_spend', 'marketing_spend']
    """
    spec = TABLES[name]
    out = {}
    for c in spec.columns:
        if c.name in frame.columns:
            col = frame[c.name]
            if c.kind in ("date", "datetime"):
                col = pd.to_datetime(col)
            out[c.name] = col.astype(dtype_of(c.kind)).to_numpy()
        elif c.required:
            out[c.name] = pd.Series(
                pd.NA if c.kind not in ("float", "date") else None, index=frame.index, dtype=dtype_of(c.kind)
            ).to_numpy()
    result = pd.DataFrame(out, index=frame.index)
    for c in spec.columns:
        if c.name in result.columns:
            result[c.name] = result[c.name].astype(dtype_of(c.kind))
    result = result.reset_index(drop=True)
    if spec.extra_numeric:
        # Added in one concat: inserting thousands of signal columns one by
        # one is quadratic (and warns PerformanceWarning).
        names = [extra for extra in frame.columns if extra not in result.columns and not str(extra).startswith("_")]
        floats = [extra for extra in names if pd.api.types.is_float_dtype(frame[extra])]
        others = {
            extra: pd.to_numeric(frame[extra], errors="coerce").astype("float64").to_numpy()
            for extra in names
            if extra not in set(floats)
        }
        if names:
            # Columns already read as numbers move as one block.
            block = pd.DataFrame(frame[floats].to_numpy(dtype="float64"), columns=floats, index=result.index)
            extras = pd.concat([block, pd.DataFrame(others, index=result.index)], axis=1)[names]
            result = pd.concat([result, extras], axis=1)
    return result
