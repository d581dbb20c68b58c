"""A synthetic Salesforce CPQ org for demos, tests and measuring models.

:func:`write_demo_org` simulates a subscription business month by month and
writes it as a Salesforce export folder (the same files an admin would pull
with Data Loader), so the demo exercises the real loading path.

What is simulated
-----------------
- Customers in four segments (SMB, Mid-Market, Enterprise, Government),
  acquired through five channels, with monthly sales and marketing spend.
- Annual, two- and three-year contracts (some multi-year deals ramp through
  MDQ segments), products priced per month (default term 1) or per year,
  evergreen month-to-month contracts.
- Amendments as CPQ books them: upsell and seat decrease (signed delta rows
  linked by ``SBQQ__RevisedSubscription__c``), add product (a new row
  co-terminated with the contract), cancel-and-replace (a negative and a
  positive row on one date), early termination (negative rows carrying
  ``SBQQ__TerminatedDate__c``).
- Renewals priced by the account's method (same, list, uplift), with
  expansion or contraction at renewal; churn; win-back after churn.
- Opportunities with line items, product schedules (Divide and Repeat, over
  several periods) and stage history; open renewals and open new business at
  the export date.
- A latent account health that moves month to month and shows through the
  signals (seat utilisation, active users, support tickets, quarterly NPS).

The true renewal probability of each renewal decision is a function of what
is observable 120 days before the contract ends (signals, tenure, prior
renewals, amendments in the term, price uplift). It is written to
``truth/renewal_truth.csv``, which the loader never reads, so models can be
measured against the best achievable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from renewforecast.atomic import atomic_write_text
from renewforecast.currency import OPEN_START, rates_on
from renewforecast.dates import add_months, month_end
from renewforecast.io.salesforce import FORMULA_FIELDS, write_salesforce_export
from renewforecast.ledger.schedules import expand_schedules
from renewforecast.schemas import TABLES, conform

__all__ = ["DemoOrg", "generate_demo_tables", "write_demo_org"]

# ------------------------------------------------------------------ catalogue

SEGMENTS = ("SMB", "Mid-Market", "Enterprise", "Government")
_SEG_P = (0.55, 0.28, 0.12, 0.05)
_SEATS = {"SMB": (5, 40), "Mid-Market": (30, 250), "Enterprise": (200, 2000), "Government": (50, 800)}
_DISCOUNT = {"SMB": (0.0, 0.10), "Mid-Market": (0.05, 0.20), "Enterprise": (0.10, 0.30), "Government": (0.05, 0.25)}
_TERMS = {  # contract term months and their weights
    "SMB": ((12,), (1.0,)),
    "Mid-Market": ((12, 24), (0.8, 0.2)),
    "Enterprise": ((12, 24, 36), (0.45, 0.30, 0.25)),
    "Government": ((12, 24, 36), (0.40, 0.30, 0.30)),
}
_BASE_LOGIT = {"SMB": 1.0, "Mid-Market": 1.4, "Enterprise": 1.75, "Government": 2.0}
_HEALTH_MEAN = {"SMB": -0.15, "Mid-Market": 0.0, "Enterprise": 0.15, "Government": 0.25}
# Fully loaded cost to win a customer: about one to one-and-a-half times its first-year ARR.
_CAC = {"SMB": 14_000.0, "Mid-Market": 85_000.0, "Enterprise": 520_000.0, "Government": 190_000.0}
CHANNELS = ("paid_search", "events", "outbound", "partner", "organic")
_CHANNEL_P = (0.30, 0.15, 0.25, 0.15, 0.15)
_CHANNEL_COST = {"paid_search": 1.0, "events": 1.3, "outbound": 1.1, "partner": 0.8, "organic": 0.25}
_INDUSTRIES = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Media",
    "Logistics",
)
_REGIONS = ("North America", "EMEA", "APAC", "LATAM")
_REGION_P = (0.5, 0.3, 0.15, 0.05)

# product key: (name, family, default term months, list price per default term,
#               gross margin, default revenue schedule (type, period, installments))
_PRODUCTS = {
    "core": ("Core Platform", "Platform", 12, 600.0, 0.84, ("Divide", "Monthly", None)),
    "analytics": ("Analytics Add-on", "Add-on", 12, 240.0, 0.80, ("Divide", "Quarterly", None)),
    "support": ("Premium Support", "Services", 12, 6000.0, 0.55, ("Divide", "Yearly", None)),
    "connectors": ("Data Connectors", "Add-on", 12, 1200.0, 0.75, None),
    "starter": ("Starter Monthly", "Platform", 1, 45.0, 0.82, ("Repeat", "Monthly", None)),
    "api": ("API Access (Evergreen)", "Platform", 1, 400.0, 0.88, None),
    "implementation": ("Implementation Services", "Services", 12, 15000.0, 0.30, ("Divide", "Monthly", 3)),
    "training": ("Training Credits", "Services", 12, 1500.0, 0.45, ("Repeat", "Quarterly", 4)),
    "storage": ("Data Storage (per TB block)", "Add-on", 12, 300.0, 0.70, None),
    "setup": ("Onboarding Setup Fee", "Services", 12, 5000.0, 0.40, None),
    "usage": ("API Calls (per 1,000, usage)", "Platform", 12, 0.5, 0.85, None),
    "credit": ("Loyalty Credit", "Platform", 12, 1.0, 1.0, None),
}
# Charge types other than Recurring, and lines CPQ prices as line totals:
# analytics seats through a Slab discount schedule, storage by Block.
_CHARGE = {"setup": "one_time", "usage": "usage"}
_PRICING = {"storage": "block"}
_TOTAL_PRICED = ("analytics", "storage")
_SLAB = ((50, 1.0), (200, 0.9), (float("inf"), 0.8))  # up to N units at this share of the unit price
_BLOCKS = ((10, 10.0), (50, 40.0), (200, 120.0))  # up to N TB priced as this many TB
_SECOND_CURRENCY = "EUR"
_FUTURE_DAYS = 120  # acquisitions are simulated this far past the export date
_LIST_GROWTH = 0.05  # list prices rise 5 % every 1 January

# Salesforce default stages and probabilities (percent).
_OPEN_STAGES = (
    ("Qualification", 10, "Pipeline"),
    ("Needs Analysis", 20, "Pipeline"),
    ("Proposal/Price Quote", 75, "Best Case"),
    ("Negotiation/Review", 90, "Commit"),
)
_WON = ("Closed Won", 100, "Closed")
_LOST = ("Closed Lost", 0, "Omitted")

_PREFIX = {
    "account": "001",
    "contract": "800",
    "subscription": "a1B",
    "product": "01t",
    "opportunity": "006",
    "line": "00k",
    "schedule": "00o",
    "history": "008",
}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

LEAD_DAYS = 120


def sf_id(kind: str, n: int) -> str:
    """An 18-character Salesforce-style id (15 characters plus the case checksum).

    Examples
    --------
    >>> sf_id("account", 1)
    '001Dn0000000001IAA'
    >>> len(sf_id("account", 1))
    18
    """
    body = ""
    for _ in range(10):
        n, r = divmod(n, 62)
        body = _B62[r] + body
    base = _PREFIX[kind] + "Dn" + body
    suffix = ""
    for i in range(3):
        chunk = base[i * 5 : i * 5 + 5]
        flags = sum(1 << j for j, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX[flags]
    return base + suffix


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _month_start(d: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(d.year, d.month, 1)


def sf_ids(kind: str, first: int, count: int) -> np.ndarray:
    """Vectorised :func:`sf_id` for ``count`` consecutive numbers from ``first``."""
    nums = np.arange(first, first + count, dtype=np.int64)
    alphabet = np.frombuffer(_B62.encode(), dtype=np.uint8)
    chars = np.empty((count, 15), dtype=np.uint8)
    chars[:, :3] = np.frombuffer(_PREFIX[kind].encode(), dtype=np.uint8)
    chars[:, 3:5] = np.frombuffer(b"Dn", dtype=np.uint8)
    rest = nums.copy()
    for pos in range(14, 4, -1):
        chars[:, pos] = alphabet[rest % 62]
        rest //= 62
    upper = (chars >= ord("A")) & (chars <= ord("Z"))
    weights = 1 << np.arange(5)
    suffix_alpha = np.frombuffer(_SUFFIX.encode(), dtype=np.uint8)
    suffix = np.stack([suffix_alpha[(upper[:, i * 5 : (i + 1) * 5] * weights).sum(axis=1)] for i in range(3)], axis=1)
    full = np.concatenate([chars, suffix], axis=1)
    return full.view("S18").ravel().astype(str)


def _line_total(product: str, qty: float, unit: float) -> float:
    """A total-priced line's price for ``qty`` units at ``unit`` (per default term)."""
    if qty <= 0:
        return 0.0
    if product == "storage":
        for upto, priced in _BLOCKS:
            if qty <= upto:
                return priced * unit
        return qty * 0.6 * unit
    total, below = 0.0, 0.0
    for upto, share in _SLAB:
        units = min(qty, upto) - below
        if units <= 0:
            break
        total += units * unit * share
        below = upto
    return total


def _months_between(a: pd.Timestamp, b: pd.Timestamp) -> float:
    """Months from a to b (b exclusive), whole months plus days / (365/12)."""
    months = (b.year - a.year) * 12 + (b.month - a.month)
    anchor = add_months(a, months)
    if anchor > b:
        months -= 1
        anchor = add_months(a, months)
    return months + (b - anchor).days / (365.0 / 12.0)


_NAME_A = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Wonka",
    "Cyberdyne",
    "Aperture",
    "Massive",
    "Nakatomi",
    "Oscorp",
    "Pied Piper",
    "Gringotts",
    "Monarch",
    "Dunder",
    "Blue Sun",
    "Zenith",
    "Nordlicht",
    "Café Müller",
    "São Paulo Dados",
    "Øresund",
    "Ångström",
    "Kōbō",
)
_NAME_B = (
    "Analytics",
    "Systems",
    "Logistics",
    "Health",
    "Capital",
    "Labs",
    "Foods",
    "Energy",
    "Media",
    "Robotics",
    "Retail",
    "Partners",
    "Software",
    "Holdings",
)
_NAME_C = ("Inc.", "LLC", "GmbH", "Ltd", "S.A.", "B.V.", "Co.", "AG", "Pty Ltd", "S.r.l.")


@dataclass
class DemoOrg:
    """What :func:`write_demo_org` wrote.

    Attributes
    ----------
    path : Path
        The export folder (pass it to :func:`renewforecast.load_book`).
    tables : dict of DataFrame
        The canonical tables the files were written from.
    truth : DataFrame
        One row per renewal decision: contract_id, account_id, end_date,
        lead_date, true_probability, renewed (1, 0, or missing while open).
    as_of : Timestamp
        The export date: nothing after it exists in the files.
    """

    path: Path
    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    as_of: pd.Timestamp


class _Sim:
    def __init__(self, n_accounts: int, seed: int, start: pd.Timestamp, end: pd.Timestamp, progress: bool = False):
        self.progress = progress
        self.rng = np.random.default_rng(seed)
        self.n_accounts = n_accounts
        self.start = start
        self.end = end
        self.counters = dict.fromkeys(_PREFIX, 0)
        self.rows: dict[str, list[dict]] = {
            k: []
            for k in (
                "accounts",
                "contracts",
                "subscriptions",
                "opportunities",
                "opportunity_lines",
                "schedules",
                "signals",
                "opportunity_history",
            )
        }
        self.truth: list[dict] = []
        self.schedule_specs: list[tuple] = []
        self.acquisitions: list[tuple[pd.Timestamp, str, str]] = []
        self.product_ids = {k: self.new_id("product") for k in _PRODUCTS}
        self.months = pd.date_range(_month_start(start), end, freq="MS")
        self.month_index = {m: i for i, m in enumerate(self.months)}

    # -- helpers ---------------------------------------------------------
    def new_id(self, kind: str) -> str:
        self.counters[kind] += 1
        return sf_id(kind, self.counters[kind] + self.rng_offset(kind))

    def rng_offset(self, kind: str) -> int:
        # Spread ids out so they look like a real org's, not 1, 2, 3.
        return {
            "account": 7_340_000,
            "contract": 1_210_000,
            "subscription": 9_800_000,
            "product": 4_000,
            "opportunity": 5_550_000,
            "line": 2_200_000,
            "schedule": 3_300_000,
            "history": 4_400_000,
        }[kind]

    def u(self, a: float = 0.0, b: float = 1.0) -> float:
        return a + (b - a) * float(self.rng.random())

    def day(self, a: pd.Timestamp, b: pd.Timestamp) -> pd.Timestamp:
        span = max((b - a).days, 0)
        return a + pd.Timedelta(days=int(self.rng.integers(0, span + 1)))

    def list_price(self, product: str, on: pd.Timestamp) -> float:
        years = max(on.year - self.start.year, 0)
        return round(_PRODUCTS[product][3] * (1 + _LIST_GROWTH) ** years, 2)

    # -- catalogue -------------------------------------------------------
    def products(self) -> pd.DataFrame:
        rows = []
        for key, (name, family, term, _price, margin, sched) in _PRODUCTS.items():
            rows.append(
                {
                    "product_id": self.product_ids[key],
                    "name": name,
                    "family": family,
                    "subscription_term_months": float(term),
                    "gross_margin": margin,
                    "revenue_schedule_type": sched[0].lower() if sched else None,
                    "revenue_installment_period": sched[1].lower() if sched else None,
                    "revenue_installments": (sched[2] or 12) if sched else None,
                    "charge_type": _CHARGE.get(key, "recurring"),
                    "pricing_method": _PRICING.get(key, "list"),
                }
            )
        return pd.DataFrame(rows)

    # -- opportunities ---------------------------------------------------
    def opportunity(
        self, account_id, otype, created, close, outcome, amount, *, renewed=None, amended=None, health=0.0
    ) -> str:
        """outcome: 'won', 'lost' or 'open'. Writes stage history up to the export date."""
        oid = self.new_id("opportunity")
        close = max(close, created)
        if outcome == "won":
            path = [*_OPEN_STAGES, _WON]
        elif outcome == "lost":
            k = int(self.rng.integers(1, len(_OPEN_STAGES) + 1))
            path = [*_OPEN_STAGES[:k], _LOST]
        else:
            # Open at the export date: how far along depends on elapsed time and health.
            frac = min(max((self.end - created).days / max((close - created).days, 1), 0.0), 1.0)
            k = 1 + int(min(3, max(0, round(frac * 3 + 0.6 * health + self.u(-0.5, 0.5)))))
            path = list(_OPEN_STAGES[:k])
        n = len(path)
        span = (close - created).days
        dates = [created + pd.Timedelta(days=int(span * i / max(n - 1, 1))) for i in range(n)]
        if outcome == "open":
            elapsed = max((self.end - created).days, 0)
            dates = [created + pd.Timedelta(days=int(elapsed * i / max(n, 1))) for i in range(n)]
        history = self.rows["opportunity_history"]
        for k, ((stage, prob, _cat), when) in enumerate(zip(path, dates, strict=True)):
            if when > self.end:
                continue
            # Changes carry their time of day; the amount settles as the deal advances.
            at = when + pd.Timedelta(seconds=int(self.rng.integers(8 * 3600, 18 * 3600)))
            final = k == len(path) - 1
            value = round(amount * (1.0 if final else self.u(0.85, 1.15)), 2)
            if k and self.rng.random() < 0.15:
                # Moved twice in one day: first to the stage before, then on.
                before = path[k - 1]
                history.append(
                    {
                        "opportunity_id": oid,
                        "created_date": when,
                        "stage": before[0],
                        "probability": before[1] / 100,
                        "close_date": close,
                        "amount": value,
                        "created_at": at - pd.Timedelta(minutes=int(self.rng.integers(5, 120))),
                        "history_id": self.new_id("history"),
                    }
                )
            history.append(
                {
                    "opportunity_id": oid,
                    "created_date": when,
                    "stage": stage,
                    "probability": prob / 100,
                    "close_date": close,
                    "amount": value,
                    "created_at": at,
                    "history_id": self.new_id("history"),
                }
            )
        stage, prob, cat = path[-1]
        self.rows["opportunities"].append(
            {
                "opportunity_id": oid,
                "account_id": account_id,
                "type": otype,
                "stage": stage,
                "probability": prob / 100,
                "close_date": close,
                "is_closed": outcome != "open",
                "is_won": outcome == "won",
                "amount": round(amount, 2),
                "renewed_contract_id": renewed,
                "amended_contract_id": amended,
                "forecast_category": cat,
                "created_date": created,
            }
        )
        return oid

    def line(self, opp_id, product, quantity, unit_price, service_date, term_months) -> None:
        lid = self.new_id("line")
        sched = _PRODUCTS[product][5]
        total = round(quantity * unit_price, 2)
        row = {
            "line_id": lid,
            "opportunity_id": opp_id,
            "product_id": self.product_ids[product],
            "quantity": float(quantity),
            "unit_price": round(unit_price, 2),
            "total_price": total,
            "service_date": service_date,
        }
        self.rows["opportunity_lines"].append(row)
        if sched is None or quantity <= 0 or total <= 0:
            return
        stype, period, n = sched
        if n is None:
            n = {
                "Monthly": int(term_months),
                "Quarterly": max(1, int(term_months) // 3),
                "Yearly": max(1, int(term_months) // 12),
            }[period]
        n = max(1, min(int(n), 150))
        both = product == "training"
        if stype == "Repeat":
            # Repeat: each installment carries the amount, so the line total
            # (a roll-up of its schedule in Salesforce) is amount x n.
            per = round(total / n, 2)
            row["total_price"] = round(per * n, 2)
            amount, qty = per, (quantity / n if both else None)
        else:
            amount, qty = total, (quantity if both else None)
        self.schedule_specs.append((lid, amount, service_date, stype, period, n, qty, "both" if both else "revenue"))

    def schedules(self) -> pd.DataFrame:
        specs = pd.DataFrame(
            self.schedule_specs,
            columns=["line_id", "amount", "start_date", "schedule_type", "period", "installments", "quantity", "type"],
        )
        specs["quantity"] = specs["quantity"].astype("float64")
        rows = expand_schedules(specs)
        rows["type"] = np.repeat(specs["type"].to_numpy(), specs["installments"].to_numpy())
        rows.loc[np.repeat(specs["type"].to_numpy() == "revenue", specs["installments"].to_numpy()), "quantity"] = (
            np.nan
        )
        # A few stale schedules, as real orgs have: the line was edited after
        # the schedule was established.
        stale = specs["line_id"][self.rng.random(len(specs)) < 0.004]
        hit = rows["line_id"].isin(set(stale))
        rows.loc[hit, "revenue"] = (rows.loc[hit, "revenue"] * 1.1).round(2)
        rows["schedule_id"] = sf_ids("schedule", 3_300_001, len(rows))
        return rows[["schedule_id", "line_id", "schedule_date", "type", "revenue", "quantity"]]

    # -- accounts --------------------------------------------------------
    def account(self, created, segment, channel, is_customer=True) -> dict:
        name = (
            f"{_NAME_A[int(self.rng.integers(len(_NAME_A)))]} "
            f"{_NAME_B[int(self.rng.integers(len(_NAME_B)))]} "
            f"{_NAME_C[int(self.rng.integers(len(_NAME_C)))]}"
        )
        row = {
            "account_id": self.new_id("account"),
            "name": name,
            "segment": segment,
            "industry": _INDUSTRIES[int(self.rng.integers(len(_INDUSTRIES)))],
            "region": _REGIONS[int(self.rng.choice(len(_REGIONS), p=_REGION_P))],
            "is_government": segment == "Government",
            "created_date": created,
            "acquisition_channel": channel if is_customer else None,
        }
        self.rows["accounts"].append(row)
        return row

    def run(self) -> None:
        days = (self.end - self.start).days
        # Acquisitions grow about 35 % a year: sample days by an exponential density.
        growth = math.log(1.35) / 365.0
        u = self.rng.random(self.n_accounts)
        # Acquisitions run past the export date: deals that close after it are
        # the open new-business pipeline (the rest of the pipeline is prospects).
        acq_days = np.log1p(u * (math.exp(growth * (days + _FUTURE_DAYS)) - 1)) / growth
        if len(acq_days) and acq_days.min() > days:
            # A tiny org whose every deal lands after the export would have
            # nothing to value: its first customer buys on the export date.
            acq_days[acq_days.argmin()] = days
        days_sorted = np.sort(acq_days)
        if self.progress:
            from tqdm.auto import tqdm

            days_sorted = tqdm(
                days_sorted, desc="simulating accounts", unit="account", leave=False, disable=None
            )  # quiet when not on a terminal
        for d in days_sorted:
            self.customer(self.start + pd.Timedelta(days=int(d)))
        self.prospects()

    # -- one customer's whole life --------------------------------------
    def customer(self, acq: pd.Timestamp) -> None:
        seg = SEGMENTS[int(self.rng.choice(4, p=_SEG_P))]
        channel = CHANNELS[int(self.rng.choice(len(CHANNELS), p=_CHANNEL_P))]
        opp_created = acq - pd.Timedelta(days=int(self.u(20, 60 if seg == "SMB" else 150)))
        if opp_created > self.end:
            return  # not known at the export date
        acct = self.account(opp_created - pd.Timedelta(days=int(self.u(0, 30))), seg, channel)
        aid = acct["account_id"]
        self.acquisitions.append((acq, channel, seg))
        if acq > self.end:
            self.open_new_business(aid, seg, acq, opp_created)
            return
        r = self.rng.random()
        method = "same" if r < 0.5 else ("list" if r < 0.65 else "uplift")
        uplift = float(self.rng.choice([3, 4, 5, 6, 7, 8])) / 100 if method == "uplift" else None

        # Health path, monthly, from acquisition to the export date.
        m0 = self.month_index[_month_start(acq)]
        n_months = len(self.months) - m0
        eps = self.rng.normal(size=n_months)
        h = np.empty(n_months)
        h[0] = _HEALTH_MEAN[seg] + 0.8 * eps[0]
        for i in range(1, n_months):
            h[i] = _HEALTH_MEAN[seg] * 0.08 + 0.92 * h[i - 1] + 0.33 * eps[i]
        state = {
            "aid": aid,
            "seg": seg,
            "method": method,
            "uplift": uplift,
            "h": h,
            "m0": m0,
            "acq": acq,
            "renewals": 0,
            "seats": 0.0,
            "signals": [],
            "currency": _SECOND_CURRENCY if acct["region"] == "EMEA" and self.rng.random() < 0.5 else None,
        }
        evergreen = seg == "SMB" and self.rng.random() < 0.07
        if evergreen:
            self.evergreen_customer(state, opp_created)
        else:
            self.contract_chain(state, acq, opp_created, new_business=True)

    def health_at(self, state, when: pd.Timestamp) -> float:
        i = self.month_index.get(_month_start(min(when, self.end)), len(self.months) - 1) - state["m0"]
        return float(state["h"][min(max(i, 0), len(state["h"]) - 1)])

    def emit_signals(self, state, start: pd.Timestamp, stop: pd.Timestamp, seats: float) -> None:
        """Monthly signals for months fully inside [start, stop]."""
        m = _month_start(start)
        if state.get("next_signal") is not None and state["next_signal"] > m:
            m = state["next_signal"]
        while m <= min(stop, self.end):
            if month_end(m) > self.end:
                break
            if self.rng.random() < 0.03:  # a missed month in the usage feed
                m = add_months(m, 1)
                continue
            hv = self.health_at(state, m)
            util = min(1.0, max(0.0, _sigmoid(0.45 + 1.1 * hv + 0.25 * self.rng.normal())))
            tickets = int(self.rng.poisson(max(0.1, (seats**0.35) * math.exp(-0.45 * hv) * 0.6)))
            nps = None
            if m.month in (3, 6, 9, 12):
                nps = float(int(min(100, max(-100, round(22 + 26 * hv + self.rng.normal(0, 12))))))
            row = {
                "account_id": state["aid"],
                "month": m,
                "seat_utilization": round(util, 3),
                "active_users": float(round(seats * util)),
                "support_tickets": float(tickets),
                "nps": nps,
            }
            self.rows["signals"].append(row)
            state["signals"].append(row)
            m = add_months(m, 1)
        state["next_signal"] = m

    def observed(self, state, lead: pd.Timestamp) -> tuple[float, float, float]:
        """What the signals said as of ``lead``: utilisation, last NPS, tickets (3-month mean)."""
        known = [r for r in state["signals"] if month_end(r["month"]) <= lead]
        if not known:
            return 0.6, 20.0, 1.0
        util = known[-1]["seat_utilization"]
        nps_vals = [r["nps"] for r in known if r["nps"] is not None]
        nps = nps_vals[-1] if nps_vals else 20.0
        tix = float(np.mean([r["support_tickets"] for r in known[-3:]]))
        return util, nps, tix

    def true_probability(self, state, contract, lead) -> float:
        util, nps, tix = self.observed(state, lead)
        seats = max(state["seats"], 1.0)
        z = (
            _BASE_LOGIT[state["seg"]]
            + 3.2 * (util - 0.6)
            + 0.018 * (nps - 20)
            - 0.35 * (tix / (seats**0.35) - 0.6)
            + 0.30 * min(state["renewals"], 3)
            - 0.70 * contract["decreased"]
            + 0.45 * contract["upsold"]
            - (6.0 * state["uplift"] if state["method"] == "uplift" else 0.0)
            - (0.35 if state["method"] == "list" else 0.0)
            - 0.15 * (contract["term"] > 12)
        )
        return _sigmoid(z)

    # -- subscriptions ---------------------------------------------------
    def sub_row(
        self,
        contract,
        product,
        qty,
        unit,
        start,
        end,
        created,
        *,
        revised=None,
        terminated=None,
        segment=None,
        prev_qty=0.0,
    ) -> str:
        term_default = _PRODUCTS[product][2]
        if segment is not None:
            seg_index, seg_start, seg_end, seg_qty = segment
            prorate = round(_months_between(seg_start, seg_end + pd.Timedelta(days=1)) / term_default, 4)
        else:
            seg_index = seg_start = seg_end = seg_qty = None
            prorate = round(_months_between(start, end + pd.Timedelta(days=1)) / term_default, 4)
        if product in _CHARGE and _CHARGE[product] == "one_time":
            prorate = 1.0  # a fee is not prorated over the term
        sid = self.new_id("subscription")
        total_priced = product in _TOTAL_PRICED
        if total_priced:
            # CPQ writes the line total of a slab or block line (and, on a delta,
            # the signed change of that total) in the price fields.
            net = (_line_total(product, prev_qty + qty, unit) - _line_total(product, prev_qty, unit)) * prorate
        else:
            net = unit * prorate
        self.rows["subscriptions"].append(
            {
                "subscription_id": sid,
                "contract_id": contract["id"],
                "account_id": contract["aid"],
                "product_id": self.product_ids[product],
                "start_date": start,
                "end_date": end,
                "quantity": float(qty),
                "net_price": round(net, 2),
                "prorate_multiplier": prorate,
                "terminated_date": terminated,
                "revised_subscription_id": revised,
                "segment_index": seg_index,
                "segment_start_date": seg_start,
                "segment_end_date": seg_end,
                "segment_quantity": None if seg_qty is None else float(seg_qty),
                "created_date": created,
                "charge_type": _CHARGE.get(product, "recurring"),
                "total_priced": total_priced,
                "list_price": round(self.list_price(product, start) * prorate, 2) if product != "credit" else None,
                "currency": contract.get("currency"),
            }
        )
        return sid

    def avg_unit(self, product: str, qty: float, unit: float) -> float:
        """The price per unit of a line, total-priced or not."""
        if product in _TOTAL_PRICED and qty > 0:
            return _line_total(product, qty, unit) / qty
        return unit

    def open_contract(self, state, start, term, created, renewed_from=None) -> dict:
        cid = self.new_id("contract")
        end = add_months(start, term) - pd.Timedelta(days=1)
        row = {
            "contract_id": cid,
            "account_id": state["aid"],
            "start_date": start,
            "end_date": end,
            "term_months": float(term),
            "status": "Activated",
            "evergreen": False,
            "renewal_pricing_method": state["method"],
            "renewal_uplift_rate": state["uplift"],
            "renewed_contract_id": renewed_from,
            "created_date": created,
        }
        self.rows["contracts"].append(row)
        return {
            "id": cid,
            "aid": state["aid"],
            "row": row,
            "start": start,
            "end": end,
            "term": term,
            "lines": {},
            "decreased": 0,
            "upsold": 0,
            "mdq": False,
            "currency": state.get("currency"),
        }

    def contract_chain(self, state, start, opp_created, new_business) -> None:
        seg = state["seg"]
        terms, weights = _TERMS[seg]
        term = int(self.rng.choice(terms, p=weights))
        seats_lo, seats_hi = _SEATS[seg]
        seats = float(int(math.exp(self.u(math.log(seats_lo), math.log(seats_hi)))))
        disc = self.u(*_DISCOUNT[seg])
        main = "starter" if seg == "SMB" and self.rng.random() < 0.3 else "core"
        products = {main: seats}
        if self.rng.random() < 0.4:
            products["analytics"] = float(max(1, int(seats * self.u(0.2, 0.8))))
        if seg != "SMB" and self.rng.random() < 0.6:
            products["support"] = 1.0
        if self.rng.random() < 0.25:
            products["connectors"] = float(int(self.rng.integers(1, 6)))
        if seg != "SMB" and self.rng.random() < 0.3:
            products["storage"] = float(int(self.rng.integers(5, 150)))
        prices = {p: self.list_price(p, start) * (1 - disc) for p in products}
        prev = None
        while True:
            # ---- the opportunity that creates this contract ----------
            created = opp_created if prev is None else None
            if prev is None:
                amount = sum(q * prices[p] * term / _PRODUCTS[p][2] for p, q in products.items())
                otype = "new_business"
                opp = self.opportunity(
                    state["aid"],
                    otype,
                    opp_created,
                    start - pd.Timedelta(days=1),
                    "won",
                    amount,
                    health=self.health_at(state, start),
                )
                created = start - pd.Timedelta(days=1)
            else:
                opp, created = prev["renewal_opp"], prev["renewal_close"]
            contract = self.open_contract(state, start, term, created, prev["id"] if prev else None)
            state["seats"] = products.get("core", products.get("starter", 0.0))
            mdq = prev is None and term >= 24 and seg in ("Enterprise", "Government") and self.rng.random() < 0.45
            for p, q in products.items():
                unit = prices[p]
                if mdq and p == "core":
                    contract["mdq"] = True
                    years = term // 12
                    qtys = [float(round(q * (1 + 0.3 * i))) for i in range(years)]
                    prev_q = 0.0
                    for i, sq in enumerate(qtys):
                        s0 = add_months(start, 12 * i)
                        s1 = add_months(start, 12 * (i + 1)) - pd.Timedelta(days=1)
                        sid = self.sub_row(
                            contract, p, sq - prev_q, unit, s0, contract["end"], created, segment=(i + 1, s0, s1, sq)
                        )
                        prev_q = sq
                    contract["lines"][p] = {"qty": qtys[-1], "unit": unit, "root": sid, "mdq": True}
                else:
                    sid = self.sub_row(contract, p, q, unit, start, contract["end"], created)
                    contract["lines"][p] = {"qty": q, "unit": unit, "root": sid, "mdq": False}
                self.line(opp, p, q, self.avg_unit(p, q, unit) * term / _PRODUCTS[p][2], start, term)
            self.fees_usage_credits(state, contract, opp, products, prices, created, first=prev is None)
            if prev is None and seg != "SMB" and self.rng.random() < 0.7:
                self.line(opp, "implementation", 1, self.list_price("implementation", start) * (1 - disc), start, 3)
            if seg in ("Mid-Market", "Enterprise") and self.rng.random() < 0.2:
                self.line(
                    opp, "training", 4 * int(self.rng.integers(1, 4)), self.list_price("training", start) / 4, start, 12
                )

            terminated = self.amendments(state, contract)
            stop = terminated or contract["end"]
            self.emit_signals(state, start, stop, state["seats"])
            if terminated:
                contract["row"]["status"] = "Activated" if contract["end"] > self.end else "Expired"
                self.maybe_win_back(state, terminated)
                return
            # ---- renewal decision -----------------------------------------
            end = contract["end"]
            lead = end - pd.Timedelta(days=LEAD_DAYS)
            opp_created_r = end - pd.Timedelta(days=int(self.u(100, 150)))
            p_true = self.true_probability(state, contract, min(lead, self.end))
            decided = end <= self.end
            renewed = bool(self.rng.random() < p_true) if decided else None
            self.truth.append(
                {
                    "contract_id": contract["id"],
                    "account_id": state["aid"],
                    "end_date": end,
                    "lead_date": lead,
                    "true_probability": round(p_true, 6),
                    "renewed": None if renewed is None else int(renewed),
                }
            )
            hv = self.health_at(state, end)
            new_products = {}
            for p, line in contract["lines"].items():
                if line["qty"] <= 0 or p == "credit":  # a credit is granted per term, not renewed
                    continue
                q = line["qty"]
                if p in ("core", "starter", "analytics"):
                    q = float(max(1, round(q * math.exp(self.rng.normal(0.03 + 0.06 * hv, 0.08)))))
                new_products[p] = q
            next_start = end + pd.Timedelta(days=1)
            new_prices = {}
            for p in new_products:
                unit = contract["lines"][p]["unit"]
                if state["method"] == "uplift":
                    unit = unit * (1 + state["uplift"])
                elif state["method"] == "list":
                    unit = self.list_price(p, next_start)
                new_prices[p] = unit
            renewal_amount = sum(q * new_prices[p] * term / _PRODUCTS[p][2] for p, q in new_products.items())
            if opp_created_r > self.end:
                contract["row"]["status"] = "Activated"
                return  # the renewal opportunity does not exist yet
            if not decided:
                opp_id = self.opportunity(
                    state["aid"],
                    "renewal",
                    opp_created_r,
                    end,
                    "open",
                    renewal_amount,
                    renewed=contract["id"],
                    health=hv,
                )
                for p, q in new_products.items():
                    self.line(
                        opp_id, p, q, self.avg_unit(p, q, new_prices[p]) * term / _PRODUCTS[p][2], next_start, term
                    )
                return
            contract["row"]["status"] = "Expired"
            close = end - pd.Timedelta(days=int(self.u(0, 30 if renewed else 45)))
            # A lost renewal keeps its amount: Amount is the sum of the opportunity's products, and
            # closing it lost changes its stage, not its products (docs/data_model.md).
            opp_id = self.opportunity(
                state["aid"],
                "renewal",
                opp_created_r,
                close,
                "won" if renewed else "lost",
                renewal_amount,
                renewed=contract["id"],
                health=hv,
            )
            if not renewed:
                self.maybe_win_back(state, end)
                return
            state["renewals"] += 1
            products, prices = new_products, new_prices
            prev = {"id": contract["id"], "renewal_opp": opp_id, "renewal_close": close}
            start = next_start
            # The renewal's own opportunity lines are written at the top of the loop.

    def fees_usage_credits(self, state, contract, opp, products, prices, created, *, first: bool) -> None:
        """One-time setup fees, usage lines and loyalty credits, as real orgs book them."""
        seg, start = state["seg"], contract["start"]
        if first and seg != "SMB" and self.rng.random() < 0.5:
            fee = round(
                self.list_price("setup", start)
                * {"Mid-Market": 1.0, "Enterprise": 3.0, "Government": 2.0}[seg]
                * self.u(0.8, 1.2),
                -2,
            )
            self.sub_row(contract, "setup", 1.0, fee, start, contract["end"], created)
            self.line(opp, "setup", 1.0, fee, start, 1)
        if first and self.rng.random() < 0.12:
            calls = float(int(self.rng.integers(2_000, 40_000)))  # thousands of calls a year, booked
            sid = self.sub_row(
                contract, "usage", calls, self.list_price("usage", start), start, contract["end"], created
            )
            contract["lines"]["usage"] = {
                "qty": calls,
                "unit": self.list_price("usage", start),
                "root": sid,
                "mdq": False,
            }
        main = "core" if "core" in products else ("starter" if "starter" in products else None)
        if not first and main and state["renewals"] >= 2 and self.rng.random() < 0.15:
            # A recurring credit: a negative per-unit price on its own line.
            unit = -round(0.03 * products[main] * prices[main] * 12 / _PRODUCTS[main][2], 2)
            sid = self.sub_row(contract, "credit", 1.0, unit, start, contract["end"], created)
            contract["lines"]["credit"] = {"qty": 1.0, "unit": unit, "root": sid, "mdq": False}

    def amendments(self, state, contract) -> pd.Timestamp | None:
        """Simulate the term month by month; return the termination date, if any."""
        m = _month_start(contract["start"])
        stop = min(contract["end"] - pd.Timedelta(days=45), self.end)
        while True:
            m = add_months(m, 1)
            if m > stop:
                return None
            hv = self.health_at(state, m)
            when = self.day(m, min(month_end(m), stop))
            r = self.rng.random()
            lines = {p: line for p, line in contract["lines"].items() if line["qty"] > 0}
            seat_lines = [p for p in lines if p in ("core", "starter", "analytics") and not lines[p]["mdq"]]
            # (a credit line is cancelled with its contract, never amended)
            p_term = 0.0012 * math.exp(-0.9 * hv) if not contract["mdq"] else 0.0
            p_up = 0.014 * math.exp(0.6 * hv)
            p_down = 0.007 * math.exp(-0.6 * hv)
            p_add = 0.005
            p_cr = 0.0025
            if r < p_term:
                opp = self.opportunity(
                    state["aid"],
                    "amendment",
                    when - pd.Timedelta(days=int(self.u(5, 30))),
                    when,
                    "won",
                    0.0,
                    amended=contract["id"],
                    health=hv,
                )
                # TerminatedDate is the last day of service; the negative rows
                # start the day after, as CPQ writes them.
                for p, line in lines.items():
                    self.sub_row(
                        contract,
                        p,
                        -line["qty"],
                        line["unit"],
                        when,
                        contract["end"],
                        when,
                        revised=line["root"],
                        terminated=when - pd.Timedelta(days=1),
                        prev_qty=line["qty"],
                    )
                    if p != "credit":
                        self.line(opp, p, -line["qty"], self.avg_unit(p, line["qty"], line["unit"]), when, 1)
                    line["qty"] = 0.0
                return when
            r -= p_term
            kind = None
            if r < p_up and seat_lines:
                kind = "up"
            elif r < p_up + p_down and seat_lines:
                kind = "down"
            elif r < p_up + p_down + p_add:
                kind = "add"
            elif r < p_up + p_down + p_add + p_cr and seat_lines:
                kind = "replace"
            if kind is None:
                continue
            opp_created = when - pd.Timedelta(days=int(self.u(7, 45)))
            remaining = _months_between(when, contract["end"] + pd.Timedelta(days=1))
            if kind in ("up", "down"):
                p = seat_lines[int(self.rng.integers(len(seat_lines)))]
                line = lines[p]
                if kind == "up":
                    delta = float(max(1, round(line["qty"] * self.u(0.05, 0.4))))
                    contract["upsold"] = 1
                else:
                    delta = -float(max(1, min(line["qty"] - 1, round(line["qty"] * self.u(0.05, 0.3)))))
                    if line["qty"] + delta < 1:
                        continue
                    contract["decreased"] = 1
                amount = delta * line["unit"] * remaining / _PRODUCTS[p][2]
                opp = self.opportunity(
                    state["aid"], "amendment", opp_created, when, "won", amount, amended=contract["id"], health=hv
                )
                self.sub_row(
                    contract,
                    p,
                    delta,
                    line["unit"],
                    when,
                    contract["end"],
                    when,
                    revised=line["root"],
                    prev_qty=line["qty"],
                )
                self.line(opp, p, delta, line["unit"] * remaining / _PRODUCTS[p][2], when, max(1, round(remaining)))
                line["qty"] += delta
                if p in ("core", "starter"):
                    state["seats"] = line["qty"]
            elif kind == "add":
                options = [p for p in ("analytics", "connectors", "support") if p not in lines]
                if not options:
                    continue
                p = options[int(self.rng.integers(len(options)))]
                q = (
                    1.0
                    if p == "support"
                    else float(max(1, round(state["seats"] * self.u(0.2, 0.6))))
                    if p == "analytics"
                    else float(self.rng.integers(1, 4))
                )
                unit = self.list_price(p, when) * (1 - self.u(0, 0.15))
                amount = q * unit * remaining / _PRODUCTS[p][2]
                opp = self.opportunity(
                    state["aid"], "amendment", opp_created, when, "won", amount, amended=contract["id"], health=hv
                )
                # Co-terminated: the new line ends with the contract.
                sid = self.sub_row(contract, p, q, unit, when, contract["end"], when)
                self.line(opp, p, q, unit * remaining / _PRODUCTS[p][2], when, max(1, round(remaining)))
                contract["lines"][p] = {"qty": q, "unit": unit, "root": sid, "mdq": False}
                contract["upsold"] = 1
            else:  # cancel and replace at a new price, on one date
                p = seat_lines[int(self.rng.integers(len(seat_lines)))]
                line = lines[p]
                new_unit = line["unit"] * self.u(0.9, 1.12)
                opp = self.opportunity(
                    state["aid"],
                    "amendment",
                    opp_created,
                    when,
                    "won",
                    line["qty"] * (new_unit - line["unit"]) * remaining / _PRODUCTS[p][2],
                    amended=contract["id"],
                    health=hv,
                )
                self.sub_row(
                    contract,
                    p,
                    -line["qty"],
                    line["unit"],
                    when,
                    contract["end"],
                    when,
                    revised=line["root"],
                    prev_qty=line["qty"],
                )
                sid = self.sub_row(contract, p, line["qty"], new_unit, when, contract["end"], when)
                self.line(opp, p, line["qty"], new_unit * remaining / _PRODUCTS[p][2], when, max(1, round(remaining)))
                contract["lines"][p] = {"qty": line["qty"], "unit": new_unit, "root": sid, "mdq": False}

    def maybe_win_back(self, state, churned: pd.Timestamp) -> None:
        if self.rng.random() >= 0.12:
            return
        back = churned + pd.Timedelta(days=int(self.u(180, 540)))
        if back > self.end - pd.Timedelta(days=30):
            return
        state["renewals"] = 0
        # Returning customers come back somewhat healthier than they left.
        i = self.month_index[_month_start(back)] - state["m0"]
        state["h"][i:] += 0.5
        self.contract_chain(state, back, back - pd.Timedelta(days=int(self.u(20, 90))), new_business=True)

    def evergreen_customer(self, state, opp_created) -> None:
        start = state["acq"]
        cid = self.new_id("contract")
        row = {
            "contract_id": cid,
            "account_id": state["aid"],
            "start_date": start,
            "end_date": None,
            "term_months": 1.0,
            "status": "Activated",
            "evergreen": True,
            "renewal_pricing_method": state["method"],
            "renewal_uplift_rate": state["uplift"],
            "renewed_contract_id": None,
            "created_date": start - pd.Timedelta(days=1),
        }
        self.rows["contracts"].append(row)
        qty = float(self.rng.integers(1, 6))
        unit = self.list_price("api", start) * (1 - self.u(0, 0.1))
        opp = self.opportunity(
            state["aid"],
            "new_business",
            opp_created,
            start - pd.Timedelta(days=1),
            "won",
            qty * unit,
            health=self.health_at(state, start),
        )
        self.line(opp, "api", qty, unit, start, 1)
        # Evergreen: one-period term, no end date; the price is monthly.
        sid = self.new_id("subscription")
        self.rows["subscriptions"].append(
            {
                "subscription_id": sid,
                "contract_id": cid,
                "account_id": state["aid"],
                "product_id": self.product_ids["api"],
                "start_date": start,
                "end_date": None,
                "quantity": qty,
                "net_price": round(unit, 2),
                "prorate_multiplier": 1.0,
                "terminated_date": None,
                "revised_subscription_id": None,
                "segment_index": None,
                "segment_start_date": None,
                "segment_end_date": None,
                "segment_quantity": None,
                "created_date": start - pd.Timedelta(days=1),
                "charge_type": "recurring",
                "total_priced": False,
                "list_price": self.list_price("api", start),
                "currency": state.get("currency"),
            }
        )
        state["seats"] = qty * 10
        m = _month_start(start)
        while True:
            m = add_months(m, 1)
            if m > self.end:
                self.emit_signals(state, start, self.end, state["seats"])
                return
            hazard = 0.022 * math.exp(-0.8 * self.health_at(state, m))
            if self.rng.random() < hazard:
                when = self.day(m, min(month_end(m), self.end))
                self.rows["subscriptions"].append(
                    {
                        "subscription_id": self.new_id("subscription"),
                        "contract_id": cid,
                        "account_id": state["aid"],
                        "product_id": self.product_ids["api"],
                        "start_date": when,
                        "end_date": None,
                        "quantity": -qty,
                        "net_price": round(unit, 2),
                        "prorate_multiplier": 1.0,
                        "terminated_date": when - pd.Timedelta(days=1),
                        "revised_subscription_id": sid,
                        "segment_index": None,
                        "segment_start_date": None,
                        "segment_end_date": None,
                        "segment_quantity": None,
                        "created_date": when,
                        "charge_type": "recurring",
                        "total_priced": False,
                        "list_price": self.list_price("api", when),
                        "currency": state.get("currency"),
                    }
                )
                self.opportunity(
                    state["aid"],
                    "amendment",
                    when - pd.Timedelta(days=3),
                    when,
                    "won",
                    0.0,
                    amended=cid,
                    health=self.health_at(state, when),
                )
                self.emit_signals(state, start, when, state["seats"])
                return

    def open_new_business(self, aid, seg, acq, opp_created) -> None:
        """A customer-to-be whose first deal is still open at the export date."""
        term = int(self.rng.choice(_TERMS[seg][0], p=_TERMS[seg][1]))
        seats = float(int(math.exp(self.u(math.log(_SEATS[seg][0]), math.log(_SEATS[seg][1])))))
        unit = self.list_price("core", acq) * (1 - self.u(*_DISCOUNT[seg])) * term / 12
        opp = self.opportunity(
            aid,
            "new_business",
            opp_created,
            acq - pd.Timedelta(days=1),
            "open",
            seats * unit,
            health=_HEALTH_MEAN[seg] + 0.8 * float(self.rng.normal()),
        )
        self.line(opp, "core", seats, unit, acq, term)

    def prospects(self) -> None:
        """Accounts that never bought: lost new business and open pipeline."""
        n_lost = int(self.n_accounts * 0.5)
        n_open = max(3, int(self.n_accounts * 0.06))
        days = (self.end - self.start).days
        for i in range(n_lost + n_open):
            seg = SEGMENTS[int(self.rng.choice(4, p=_SEG_P))]
            if i < n_lost:
                created = self.start + pd.Timedelta(days=int(self.u(0, days - 200)))
                close = created + pd.Timedelta(days=int(self.u(30, 150)))
                outcome = "lost"
            else:
                created = self.end - pd.Timedelta(days=int(self.u(5, 120)))
                close = self.end + pd.Timedelta(days=int(self.u(15, 180)))
                outcome = "open"
            acct = self.account(created - pd.Timedelta(days=int(self.u(0, 30))), seg, None, is_customer=False)
            term = int(self.rng.choice(_TERMS[seg][0], p=_TERMS[seg][1]))
            seats = float(int(math.exp(self.u(math.log(_SEATS[seg][0]), math.log(_SEATS[seg][1])))))
            unit = self.list_price("core", close) * (1 - self.u(*_DISCOUNT[seg])) * term / 12
            opp = self.opportunity(
                acct["account_id"],
                "new_business",
                created,
                close,
                outcome,
                seats * unit,
                health=float(self.rng.normal()),
            )
            service = close + pd.Timedelta(days=1)
            self.line(opp, "core", seats, unit, service, term)
            if seg != "SMB" and self.rng.random() < 0.6:
                self.line(opp, "implementation", 1, self.list_price("implementation", close), service, 3)

    def spend(self) -> pd.DataFrame:
        """Monthly spend by channel: what it cost to win next month's customers, with noise."""
        acq = pd.DataFrame(self.acquisitions, columns=["date", "channel", "segment"])
        acq["date"] = pd.to_datetime(acq["date"])  # typed even when nobody was acquired
        acq["month"] = acq["date"].dt.to_period("M").dt.to_timestamp()
        acq["cost"] = acq["segment"].map(_CAC) * acq["channel"].map(_CHANNEL_COST)
        cost = acq.groupby(["month", "channel"])["cost"].sum()
        rows = []
        for m in self.months:
            if month_end(m) > self.end:
                break
            nxt = add_months(m, 1)
            for ch in CHANNELS:
                total = float(cost.get((nxt, ch), 0.0)) * float(self.rng.lognormal(0, 0.15))
                total += 2_000.0 * _CHANNEL_COST[ch]  # fixed programme cost
                sales_share = {"partner": 0.6, "outbound": 0.75, "organic": 0.1}.get(ch, 0.4)
                rows.append(
                    {
                        "month": m,
                        "channel": ch,
                        "sales_spend": round(total * sales_share, 2),
                        "marketing_spend": round(total * (1 - sales_share), 2),
                    }
                )
        return pd.DataFrame(rows)


def _hierarchies(sim: _Sim, tables: dict[str, pd.DataFrame]) -> None:
    """Group some customers under parent accounts (holding companies), as real orgs do."""
    acc = tables["accounts"]
    acc["parent_account_id"] = None
    customers = acc[acc["acquisition_channel"].notna() & (acc["segment"] != "SMB")]
    chosen = customers.sample(frac=0.08, random_state=int(sim.rng.integers(1 << 31)))
    parents = []
    for start in range(0, len(chosen) - 1, 3):
        family = chosen.iloc[start : start + int(sim.rng.integers(2, 4))]
        pid = sim.new_id("account")
        head = family.iloc[0]
        parents.append(
            {
                "account_id": pid,
                "name": f"{head['name'].split()[0]} Group Holdings",
                "segment": head["segment"],
                "industry": head["industry"],
                "region": head["region"],
                "is_government": bool(head["is_government"]),
                "created_date": family["created_date"].min() - pd.Timedelta(days=1),
                "acquisition_channel": None,
                "parent_account_id": None,
            }
        )
        acc.loc[family.index, "parent_account_id"] = pid
    tables["accounts"] = pd.concat([acc, pd.DataFrame(parents)], ignore_index=True)


def _dated_rates(sim: _Sim) -> pd.DataFrame:
    """Monthly dated EUR rates (units per US dollar), the first range open-ended, as admins enter them."""

    months = pd.date_range(_month_start(sim.start), sim.end, freq="MS")
    steps = sim.rng.normal(0.0, 0.02, len(months))
    rates = np.round(0.92 * np.exp(np.cumsum(steps)), 6)
    starts = [OPEN_START, *months[1:]]
    return pd.DataFrame({"currency": _SECOND_CURRENCY, "start_date": pd.to_datetime(starts), "rate": rates})


def _second_currency(tables: dict[str, pd.DataFrame]) -> None:
    """Amounts of accounts that buy in the second currency, as the loader will read them back.

    Each amount is rounded to the cent in its own currency at the rate of its
    date (a subscription's start, an opportunity's close date for its lines
    and schedules too), then divided by that rate again: exactly what loading
    the written export gives.
    """

    fx = tables["fx_rates"]
    subs = tables["subscriptions"]
    cur_of = subs.dropna(subset=["currency"]).drop_duplicates("account_id").set_index("account_id")["currency"]
    opps, lines, sched = tables["opportunities"], tables["opportunity_lines"], tables["schedules"]
    opps["_currency"] = opps["account_id"].map(cur_of)
    close = opps.set_index("opportunity_id")["close_date"]
    lines["_currency"] = lines["opportunity_id"].map(opps.set_index("opportunity_id")["_currency"])
    sched["_currency"] = sched["line_id"].map(lines.set_index("line_id")["_currency"])
    subs["_currency"] = subs["currency"]

    def native(frame, cols, dates):
        rate = rates_on(fx, frame["_currency"].where(frame["_currency"].notna(), None), dates, "USD")
        out = {c: (frame[c].astype("float64") * rate).round(2) for c in cols}
        return out, rate

    eur_s, r_s = native(subs, ["net_price", "list_price"], subs["start_date"])
    eur_o, r_o = native(opps, ["amount"], opps["close_date"])
    line_close = lines["opportunity_id"].map(close)
    eur_l, r_l = native(lines, ["unit_price", "total_price"], line_close)
    eur_sc, r_sc = native(
        sched, ["revenue"], sched["line_id"].map(lines.set_index("line_id")["opportunity_id"]).map(close)
    )
    # A scheduled line's total is the roll-up of its installments (in its currency).
    rolled = eur_sc["revenue"].groupby(sched["line_id"]).sum()
    mine = lines["_currency"].notna() & lines["line_id"].isin(rolled.index)
    near = (lines["line_id"].map(rolled) - eur_l["total_price"]).abs() < 0.01 * 150
    eur_l["total_price"] = eur_l["total_price"].where(~(mine & near), lines["line_id"].map(rolled)).round(2)
    for frame, values, rate in ((subs, eur_s, r_s), (opps, eur_o, r_o), (lines, eur_l, r_l), (sched, eur_sc, r_sc)):
        other = frame["_currency"].notna().to_numpy()
        for col, v in values.items():
            frame[col] = np.where(other, v / rate, frame[col])
        del frame["_currency"]


def _encodable(frame: pd.DataFrame, encoding: str) -> pd.DataFrame:
    """Text as a file in ``encoding`` can hold it: other characters become ``?``."""
    out = frame.copy()
    for col in out.columns:
        if str(out[col].dtype) == "string":
            out[col] = (
                out[col]
                .map(lambda v: v if pd.isna(v) else v.encode(encoding, "replace").decode(encoding), na_action="ignore")
                .astype("string")
            )
    return out


def _with_record_currency(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Copies of the tables whose records say which currency they are in (``_currency``)."""
    t = {k: v.copy() for k, v in tables.items()}
    subs = t["subscriptions"]
    cur_of = subs.dropna(subset=["currency"]).drop_duplicates("account_id").set_index("account_id")["currency"]
    subs["_currency"] = subs["currency"]
    t["opportunities"]["_currency"] = t["opportunities"]["account_id"].map(cur_of)
    opp_cur = t["opportunities"].set_index("opportunity_id")["_currency"]
    t["opportunity_lines"]["_currency"] = t["opportunity_lines"]["opportunity_id"].map(opp_cur)
    line_cur = t["opportunity_lines"].set_index("line_id")["_currency"]
    t["schedules"]["_currency"] = t["schedules"]["line_id"].map(line_cur)
    return t


def generate_demo_tables(
    accounts: int = 8000,
    seed: int = 7,
    *,
    start: str = "2021-01-01",
    end: str = "2026-10-31",
    progress: bool = False,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Simulate the demo org and return its canonical tables and renewal truth.

    Parameters
    ----------
    accounts : int, default 8000
        Number of customer accounts (prospects that never buy come on top,
        about half as many again).
    seed : int, default 7
        The same seed gives the same org, byte for byte.
    start, end : str
        First acquisition date and the export date.
    progress : bool, default False
        Show a progress bar (on a terminal).

    Returns
    -------
    tables : dict of DataFrame
        Canonical tables (see :data:`renewforecast.schemas.TABLES`).
    truth : DataFrame
        The true renewal probability of each renewal decision.
    """
    if int(accounts) < 1:
        raise ValueError("accounts must be at least 1")
    sim = _Sim(int(accounts), int(seed), pd.Timestamp(start), pd.Timestamp(end), progress)
    sim.run()
    tables = {"products": sim.products(), "spend": sim.spend(), "schedules": sim.schedules()}
    for name, rows in sim.rows.items():
        if name != "schedules":
            tables[name] = pd.DataFrame(rows)
    # Exports list stage history in no particular order.
    history = tables["opportunity_history"]
    tables["opportunity_history"] = history.iloc[sim.rng.permutation(len(history))].reset_index(drop=True)
    _hierarchies(sim, tables)
    tables["fx_rates"] = _dated_rates(sim)
    _second_currency(tables)
    out = {}
    for name in TABLES:
        frame = tables.get(name, pd.DataFrame())
        if name == "accounts":
            frame = frame.sort_values("created_date", kind="stable")
        out[name] = conform(frame, name)
    truth = pd.DataFrame(
        sim.truth, columns=["contract_id", "account_id", "end_date", "lead_date", "true_probability", "renewed"]
    )
    truth["renewed"] = truth["renewed"].astype("Int64")
    return out, truth


def write_demo_org(
    out: str | Path,
    *,
    accounts: int = 8000,
    seed: int = 7,
    start: str = "2021-01-01",
    end: str = "2026-10-31",
    progress: bool = False,
    encoding: str = "utf-8",
    formula_fields: bool = True,
) -> DemoOrg:
    """Write a synthetic Salesforce CPQ export folder.

    Parameters
    ----------
    out : path-like
        Folder to write (created if needed). Files are written atomically.
    accounts : int, default 8000
        Number of customer accounts.
    seed : int, default 7
        Random seed; the same seed writes the same files.
    start, end : str
        First acquisition date and the export date.
    progress : bool, default False
        Show a progress bar (on a terminal).
    encoding : str, default "utf-8"
        Text encoding of the files; ``"cp1252"`` or ``"latin-1"`` write them
        as older Windows tools do (characters the encoding lacks become
        ``?``, in the files and in the returned tables alike).
    formula_fields : bool, default True
        Write the formula fields Salesforce computes (``Contract.EndDate``,
        ``SBQQ__StartDate__c``, ``SBQQ__EndDate__c``); backup tools often
        leave them out.

    Returns
    -------
    DemoOrg
        The folder, the canonical tables and the renewal truth.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> org = rf.write_demo_org(tempfile.mkdtemp(), accounts=20, seed=3)
    >>> sorted(p.name for p in org.path.glob("*.csv"))[:3]
    ['Account.csv', 'Contract.csv', 'CurrencyType.csv']
    """
    out = Path(out)
    tables, truth = generate_demo_tables(accounts, seed, start=start, end=end, progress=progress)
    if encoding.replace("-", "").replace("_", "").lower() not in ("utf8", "utf8sig"):
        tables = {name: _encodable(frame, encoding) for name, frame in tables.items()}
    write_salesforce_export(
        _with_record_currency(tables), out, encoding=encoding, leave_out=None if formula_fields else FORMULA_FIELDS
    )
    t = truth.copy()
    for col in ("end_date", "lead_date"):
        t[col] = pd.to_datetime(t[col]).dt.strftime("%Y-%m-%d")  # typed even when no decision exists
    atomic_write_text(out / "truth" / "renewal_truth.csv", t.to_csv(index=False, lineterminator="\n"))
    readme = (
        "Synthetic Salesforce CPQ export written by renewforecast (demo org).\n"
        f"accounts={accounts} seed={seed} start={start} export_date={end}\n"
        "truth/renewal_truth.csv holds the true renewal probability of every renewal decision;\n"
        "renewforecast.load_book never reads it.\n"
    )
    atomic_write_text(out / "README.txt", readme)
    return DemoOrg(out, tables, truth, pd.Timestamp(end))
