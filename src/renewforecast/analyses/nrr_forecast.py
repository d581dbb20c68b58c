"""Where NRR and GRR are heading: the next 12 months' net and gross revenue retention, simulated, and its backtest.

The base is exactly :func:`renewforecast.retention_kpis`' base: the customers
paying at the as-of month end and their MRR then. A customer's MRR at the end
of the horizon is what the ledger already holds for that month end (booked
contracts, renewals already signed, ramps, terminations already booked),
changed by what is not known yet:

- **renewals**: every fixed-term contract of a base customer that ends before
  the horizon's last month end with its decision still open renews with its
  probability: the scored probability when one is given, else the share of
  the ARR up for renewal that renewed over the last 24 months in its segment
  and renewal class (a contract's first, second, third, and fourth or later
  renewal; a cell with few decisions is pulled toward the whole book, a
  segment by as much as the segments' spread says). It
  renews at a new value: down, flat or
  up in the shares its segment showed, by a ratio new / old drawn from the
  past renewals of that class. A renewal that ends inside the horizon
  decides again;
- **amendments**: each month a contract (or its renewal) is live it may be
  expanded or contracted, at its segment's rate per contract-month, by a
  relative size drawn from the past amendments;
- **early stops**: a fixed-term contract may be terminated and an evergreen
  contract cancelled, each at its segment's monthly rate.

Everything is fitted on the decisions and contract months of the 24 months
before the as-of date, on ``book.as_of(as_of)`` only. The simulated NRR and
GRR follow :func:`renewforecast.retention_kpis`' definitions (GRR caps each
customer at its base MRR), so the realised values at past origins come from
that function itself (:func:`nrr_backtest`).

Each simulation first draws the rates from what the history says about them
(renewal rates refitted, prior and cell alike, on a bootstrap resample of the
past decisions, with each cell's deviation from its prior drawn from the
prior's Beta; Gamma posteriors; a stratified bootstrap of the sizes and
ratios), so a rate fitted on few decisions widens the interval; renewal outcomes are
correlated through one shared draw per simulation whose strength comes from
how much the monthly renewal rate varied beyond chance
(:func:`renewforecast.analyses.forecast.simulation.copula_rho`, as in the
revenue forecast).

Layer: analyses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, special

from renewforecast.analyses.backtest import checked_origins
from renewforecast.analyses.forecast.renewals import as_probabilities
from renewforecast.analyses.forecast.simulation import copula_rho
from renewforecast.analyses.saas_metrics import renewal_kpis, retention_kpis
from renewforecast.book import Book
from renewforecast.dates import CENT, add_months, last_month_end, month_end_of, month_number
from renewforecast.exceptions import RenewForecastError
from renewforecast.ledger.hierarchy import customer_ids
from renewforecast.ledger.mrr import mrr_table
from renewforecast.ledger.renewals import renewal_decisions

__all__ = [
    "NRR_METRICS",
    "NRRBacktest",
    "nrr_backtest",
    "nrr_backtest_origins",
    "nrr_forecast",
    "nrr_outcome_rates",
    "nrr_simulations",
]

#: The two retention figures forecast, as :func:`renewforecast.retention_kpis` defines them.
NRR_METRICS = ("nrr", "grr")

_HISTORY_MONTHS = 24  # decisions and contract months this far back set the rates (as in the revenue forecast)
_PRIOR_DECISIONS = 30.0  # a segment's shares count this many pseudo-decisions at the whole book's shares
_PRIOR_MONTHS = 600.0  # and its monthly rates this many pseudo contract-months at the whole book's rates
_TENURES = 4  # renewal classes: a contract's first, second, third, and fourth or later renewal
_CLASS_NAMES = ("1", "2", "3", "4plus")
_FLAT = 0.005  # a renewal within half a percent of its old value is flat (rounding, not a price change)
_BLOCK = 200  # simulations per block: bounds memory on large books
_TOTAL = "total"
_COLUMNS = [
    "as_of",
    "base_month",
    "month",
    "group",
    "metric",
    "mean",
    "p10",
    "p50",
    "p90",
    "base_mrr",
    "base_customers",
    "renewals_due",
    "renewal_mrr_due",
]


# ------------------------------------------------------------------ the history


@dataclass(frozen=True, eq=False)
class _Pool:
    """A sample of sizes (or ratios) grouped by segment: ``sample`` sorted by segment, where each starts, how many."""

    sample: np.ndarray
    segment: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, segment: np.ndarray, n_seg: int) -> _Pool:
        order = np.lexsort((values, segment))
        count = np.bincount(segment, minlength=n_seg)
        return cls(values[order], segment[order], np.concatenate([[0], np.cumsum(count)[:-1]]), count)

    def mean(self) -> float:
        return float(self.sample.mean()) if len(self.sample) else np.nan


@dataclass(frozen=True, eq=False)
class _History:
    """What the 24 months before the as-of date say, by segment."""

    segments: list[str]
    decisions: np.ndarray  # segments x renewal class x (decisions, their ARR, ARR squared, ARR renewed)
    decision_cell: np.ndarray  # each past decision's cell (segment x renewal class, flattened)
    decision_sums: tuple[np.ndarray, np.ndarray, np.ndarray]  # each one's ARR, ARR squared and ARR renewed
    classes: np.ndarray  # segments x 3: renewals down, flat, up
    ratios: tuple[_Pool, _Pool, _Pool]  # new / old value of the past renewals of each class
    exposure: np.ndarray  # contract-months live at both month ends (amendments)
    ups: np.ndarray
    downs: np.ndarray
    up_sizes: _Pool  # relative size of each expansion (> 0)
    down_sizes: _Pool  # relative size of each contraction (0 to 1)
    term_exposure: np.ndarray  # fixed-term contract-months before the end date
    terminations: np.ndarray
    ever_exposure: np.ndarray  # evergreen contract-months
    cancellations: np.ndarray
    rho: float


def _segments(view: Book, customers: np.ndarray) -> np.ndarray:
    """Each customer's segment as the accounts table says (``"(none)"`` when missing or no such column)."""
    acc = view.accounts.drop_duplicates("account_id").set_index("account_id")
    if "segment" not in acc.columns:
        return np.full(len(customers), "(none)", dtype=object)
    seg = pd.Series(customers, dtype=object).map(acc["segment"].astype(object))
    return seg.where(seg.notna(), "(none)").astype(str).to_numpy(dtype=object)


def _window(cut: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    return cut - pd.DateOffset(months=_HISTORY_MONTHS) + pd.Timedelta(days=1), cut


def _classes(ratio: np.ndarray) -> np.ndarray:
    """0 down, 1 flat, 2 up."""
    return np.where(ratio < 1 - _FLAT, 0, np.where(ratio > 1 + _FLAT, 2, 1))


def _tenure(view: Book, contract_ids) -> np.ndarray:
    """How many renewals came before each contract's coming one: 0 (its first renewal) to ``_TENURES - 1`` (or more).

    Counted along the ``renewed_contract_id`` chain of the point-in-time view.
    """
    renews = view.contracts.drop_duplicates("contract_id").set_index("contract_id")["renewed_contract_id"]
    renews = renews[renews.notna()].astype(object)
    depth = np.zeros(len(contract_ids), dtype=np.int64)
    at = pd.Series(np.asarray(contract_ids, dtype=object))
    for _ in range(_TENURES - 1):
        at = at.map(renews)
        has = at.notna().to_numpy()
        if not has.any():
            break
        depth += has
    return depth


def _history(view: Book, cut: pd.Timestamp, decisions: pd.DataFrame, segments: list[str], customer: str) -> _History:
    seg_code = {s: i for i, s in enumerate(segments)}
    n_seg = len(segments)

    def codes_of(account_ids) -> np.ndarray:
        cust = customer_ids(view, np.asarray(account_ids, dtype=object), customer)
        return np.array([seg_code[s] for s in _segments(view, cust)], dtype=np.int64)

    # Renewal decisions: renewed or lost (terminations are early stops, below), by end date in the window.
    lo, hi = _window(cut)
    dec = decisions[
        decisions["outcome"].isin(["renewed", "churned"])
        & (decisions["end_date"] >= lo)
        & (decisions["end_date"] <= hi)
        & (decisions["prior_arr"] > CENT)
    ]
    seg = codes_of(dec["account_id"])
    renewed = (dec["outcome"] == "renewed").to_numpy()
    # Per segment and renewal class: decisions, their ARR, its square (the effective size) and the ARR renewed.
    counts = np.zeros((n_seg, _TENURES, 4))
    prior = dec["prior_arr"].to_numpy(dtype="float64")
    cell = (seg, _tenure(view, dec["contract_id"]))
    for j, w in enumerate((np.ones(len(dec)), prior, prior**2, prior * renewed)):
        np.add.at(counts[..., j], cell, w)
    decision_cell = cell[0] * _TENURES + cell[1]
    decision_sums = (prior, prior**2, prior * renewed)
    ratio = np.maximum((dec["renewed_arr"] / dec["prior_arr"]).to_numpy(dtype="float64")[renewed], 0.0)
    cls = _classes(ratio)
    classes = np.zeros((n_seg, 3))
    np.add.at(classes, (seg[renewed], cls), 1.0)
    rho = 0.0
    if len(dec):
        monthly = renewal_kpis(view, lo, hi, freq="M", decisions=decisions[decisions["outcome"] != "terminated"])
        rho = copula_rho(
            monthly["renewal_rate_count"].to_numpy(dtype="float64"),
            monthly["decided"].to_numpy(dtype="float64"),
            float(renewed.mean()),
        )

    # Contract months: each contract's MRR at consecutive month ends of the window.
    first = last_month_end(lo - pd.Timedelta(days=1))
    table = _contract_mrr(view, first, last_month_end(cut), "account")
    tally = {k: np.zeros(n_seg) for k in ("exposure", "ups", "downs", "term", "terminations", "ever", "cancel")}
    up_sizes, up_seg = np.zeros(0), np.zeros(0, dtype=np.int64)
    down_sizes, down_seg = np.zeros(0), np.zeros(0, dtype=np.int64)
    if len(table):
        c_codes, c_ids = pd.factorize(table["contract_id"].astype(object))
        m_lo = int(month_number([first.to_datetime64()])[0])
        m_no = month_number(table["month"].to_numpy(dtype="datetime64[D]")) - m_lo
        n_months = int(m_no.max()) + 1
        mrr = np.zeros((len(c_ids), n_months))
        mrr[c_codes, m_no] = table["mrr"].to_numpy(dtype="float64")
        mrr = np.where(np.abs(mrr) > CENT, mrr, 0.0)
        acct = table.drop_duplicates("contract_id").set_index("contract_id")["account_id"].reindex(c_ids)
        cseg = codes_of(acct.to_numpy(dtype=object))
        con = view.contracts.drop_duplicates("contract_id").set_index("contract_id").reindex(c_ids)
        evergreen = (
            con["evergreen"].astype("boolean").fillna(False).to_numpy(dtype=bool) | con["end_date"].isna().to_numpy()
        )
        end_no = month_number(con["end_date"].to_numpy(dtype="datetime64[D]")) - m_lo
        # A ramp step (an MDQ segment starting) was booked with the contract: it is not an amendment.
        subs = view.subscriptions
        steps = subs[subs["segment_index"].notna() & subs["segment_start_date"].notna()]
        step = np.zeros_like(mrr, dtype=bool)
        if len(steps):
            pos = pd.Index(c_ids).get_indexer(steps["contract_id"].astype(object))
            sm = month_number(steps["segment_start_date"].to_numpy(dtype="datetime64[D]")) - m_lo
            ok = (pos >= 0) & (sm >= 0) & (sm < n_months)
            step[pos[ok], sm[ok]] = True
        prev, cur = mrr[:, :-1], mrr[:, 1:]
        live = prev > CENT
        # A month end counts a contract while it is on or before its end date (its last day).
        j = np.arange(1, n_months)[None, :]
        due = (
            evergreen[:, None]
            | (j < end_no[:, None])
            | ((j == end_no[:, None]) & _ends_on_month_end(con["end_date"])[:, None])
        )
        both = live & (cur > CENT) & ~step[:, 1:]
        change = np.where(both, cur / np.where(live, prev, 1.0) - 1.0, 0.0)
        moved = both & (np.abs(cur - prev) > CENT)
        up, down = moved & (change > 0), moved & (change < 0)
        stop = live & (cur <= CENT) & due
        seg2 = np.broadcast_to(cseg[:, None], prev.shape)
        ever2 = np.broadcast_to(evergreen[:, None], prev.shape)
        for name, mask in (
            ("exposure", both),
            ("ups", up),
            ("downs", down),
            ("term", live & due & ~ever2),
            ("terminations", stop & ~ever2),
            ("ever", live & ever2),
            ("cancel", stop & ever2),
        ):
            tally[name] = np.bincount(seg2[mask], minlength=n_seg).astype(float)
        up_sizes, up_seg = change[up], seg2[up]
        down_sizes, down_seg = np.clip(-change[down], 0.0, 1.0), seg2[down]
    return _History(
        segments=segments,
        decisions=counts,
        decision_cell=decision_cell,
        decision_sums=decision_sums,
        classes=classes,
        ratios=tuple(_Pool.of(ratio[cls == k], seg[renewed][cls == k], n_seg) for k in range(3)),
        exposure=tally["exposure"],
        ups=tally["ups"],
        downs=tally["downs"],
        up_sizes=_Pool.of(up_sizes, up_seg, n_seg),
        down_sizes=_Pool.of(down_sizes, down_seg, n_seg),
        term_exposure=tally["term"],
        terminations=tally["terminations"],
        ever_exposure=tally["ever"],
        cancellations=tally["cancel"],
        rho=rho,
    )


def _contract_mrr(view: Book, start: pd.Timestamp, end: pd.Timestamp, customer: str) -> pd.DataFrame:
    """Each contract's MRR at each month end from ``start`` to ``end``, with its customer as ``account_id``."""
    table = mrr_table(view, start=start, end=end, by=("contract_id",))
    owner = view.contracts.drop_duplicates("contract_id").set_index("contract_id")["account_id"].astype(object)
    accounts = table["contract_id"].astype(object).map(owner).to_numpy(dtype=object)
    table["account_id"] = customer_ids(view, accounts, customer)
    return table


def _ends_on_month_end(end_date: pd.Series) -> np.ndarray:
    d = end_date.to_numpy(dtype="datetime64[D]")
    return ~np.isnat(d) & ((d + 1).astype("datetime64[M]") != d.astype("datetime64[M]"))


# ------------------------------------------------------------------ the rates and their uncertainty


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _rate_and_n(w: np.ndarray, w2: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ARR-weighted rate r / w and its effective number of decisions w^2 / w2 (0 and 0 without decisions)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(w2 > 0, w**2 / np.where(w2 > 0, w2, 1.0), 0.0)
        return np.where(w > 0, r / np.where(w > 0, w, 1.0), 0.0), n_eff


def _pooling_weight(p: np.ndarray, n: np.ndarray, p_all: np.ndarray) -> np.ndarray:
    """Weight of each group's own rate against the whole book's (last axis: the groups), by empirical Bayes.

    How far the groups' true rates lie from the whole book's is estimated from
    the data (the method of moments of a beta-binomial model: the spread of
    the groups' rates beyond what their effective numbers of decisions
    explain), so groups that truly differ keep their own rates and groups that
    differ by chance only are pooled. The weight is ``n / (n + c)`` with the
    concentration ``c = p(1 - p) / v - 1`` for the between-group variance ``v``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        pq = p_all * (1 - p_all)
        total = n.sum(axis=-1)
        q = (n * (p - p_all[..., None]) ** 2).sum(axis=-1)
        groups = (n > 0).sum(axis=-1)
        spread = total - (n**2).sum(axis=-1) / np.where(total > 0, total, 1.0)
        v = np.where(spread > 0, np.maximum(q - (groups - 1) * pq, 0.0) / np.where(spread > 0, spread, 1.0), 0.0)
        v = np.minimum(v, pq)
        # n / (n + pq / v - 1) = n v / (n v + pq - v): no pooling as v nears pq, full pooling at v = 0.
        den = n * v[..., None] + (pq - v)[..., None]
        return np.where(den > 0, n * v[..., None] / np.where(den > 0, den, 1.0), 0.0)


def _cell_prior(arr: np.ndarray, sq: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The prior renewal rate of each segment and renewal class (the last two axes), from the sums over decisions.

    It adds the segment's effect and the renewal class's effect to the whole
    book's rate on the log-odds scale. A segment is pulled toward the whole
    book by as much as the segments' spread says (:func:`_pooling_weight`):
    with a fixed number of pseudo-decisions, the segments of few large
    contracts, whose effective number of decisions is small, were pulled
    hardest, and they are the ones that renew most and weigh most in NRR, so
    the whole book was forecast too low. A renewal class is pulled by
    ``_PRIOR_DECISIONS`` pseudo-decisions toward the class before it (a first
    renewal toward the whole book), so a class with no history yet renews
    like the one before it. Leading axes (one per bootstrap resample) are
    kept.
    """
    k = _PRIOR_DECISIONS
    with np.errstate(invalid="ignore", divide="ignore"):
        p_all = kept.sum(axis=(-2, -1)) / arr.sum(axis=(-2, -1))
    p_s, n_s = _rate_and_n(arr.sum(axis=-1), sq.sum(axis=-1), kept.sum(axis=-1))
    w_s = _pooling_weight(p_s, n_s, p_all)
    p_seg = w_s * p_s + (1 - w_s) * p_all[..., None]
    p_t, n_t = _rate_and_n(arr.sum(axis=-2), sq.sum(axis=-2), kept.sum(axis=-2))
    p_ten = np.empty_like(p_t)
    before = p_all
    for t in range(p_t.shape[-1]):
        p_ten[..., t] = before = (p_t[..., t] * n_t[..., t] + k * before) / (n_t[..., t] + k)
    return special.expit(_logit(p_seg)[..., :, None] + _logit(p_ten)[..., None, :] - _logit(p_all)[..., None, None])


def _renewal_prior(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beta posterior (a, b) of the ARR-weighted renewal rate of each segment and renewal class.

    NRR is a ratio of dollars, so a rate is the share of the ARR up for
    renewal that renewed (ARR on the contracts' last day), with the effective
    number of decisions (sum of ARR)^2 / sum of ARR^2 as its weight of
    evidence, on top of ``_PRIOR_DECISIONS`` pseudo-decisions at the cell's
    prior (:func:`_cell_prior`).
    """
    arr, sq, kept = counts[..., 1], counts[..., 2], counts[..., 3]
    if arr.sum() <= 0:
        return np.full(arr.shape, np.nan), np.full(arr.shape, np.nan)
    prior = _cell_prior(arr, sq, kept)
    p_c, n_c = _rate_and_n(arr, sq, kept)
    return p_c * n_c + _PRIOR_DECISIONS * prior, (1 - p_c) * n_c + _PRIOR_DECISIONS * (1 - prior)


def _renewal_draws(rng: np.random.Generator, h: _History, k: int) -> np.ndarray:
    """k draws of every cell's renewal rate (k x segments x renewal classes).

    Each draw refits the whole estimate on a bootstrap resample of the past
    decisions (Poisson weights): the prior of the cells (so the uncertainty of
    the whole book's rate and of each segment's and class's effect, which
    every cell leaning on them shares, reaches the draws) and the cell's own
    rate and effective number of decisions alike. The rate drawn is the
    cell's posterior mean given the resample, with the prior's part replaced
    by a draw ``theta0`` from the prior itself, Beta(30 m, 30 (1 - m)):
    ``(n p + 30 theta0) / (n + 30)``. The resample carries the sampling
    uncertainty of the cell's own decisions, ``theta0`` how far a cell may lie
    from its prior; to first order the variance is the Beta posterior's,
    p (1 - p) / (n + 30), when the prior does not depend on the cell, and a
    cell with no decisions draws from the prior with its uncertainty.
    Drawing the cell from its Beta posterior around a prior refitted on a
    resample that holds the cell's own decisions used them twice (as the
    data and, through the prior, as pseudo-decisions) and their randomness
    from two sources; where they make up most of the prior, the draws then
    varied neither as the Beta posterior nor as the cell's own binomial says.
    """
    shape = h.decisions.shape[:2]
    arr, sq, kept = h.decisions[..., 1], h.decisions[..., 2], h.decisions[..., 3]
    if arr.sum() <= 0:
        return np.full((k, *shape), np.nan)
    n_d = len(h.decision_cell)
    onehot = sparse.csr_matrix((np.ones(n_d), (np.arange(n_d), h.decision_cell)), shape=(n_d, shape[0] * shape[1]))
    w = rng.poisson(1.0, size=(k, n_d)).astype(np.float64)
    sums = [np.asarray((onehot.T @ (w * x).T).T).reshape(k, *shape) for x in h.decision_sums]
    prior = _cell_prior(*sums)
    prior = np.where(np.isfinite(prior), prior, _cell_prior(arr, sq, kept)[None])
    # The cell's own rate and weight come from the same resample as the prior: one source for its own randomness.
    p_c, n_c = _rate_and_n(*sums)
    c = _PRIOR_DECISIONS
    theta0 = rng.beta(np.maximum(c * prior, 1e-12), np.maximum(c * (1 - prior), 1e-12))
    return (p_c * n_c + c * theta0) / (n_c + c)


def _shrunk_rate(events: np.ndarray, exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gamma posterior (shape, rate) of each segment's monthly rate, pulled toward the whole book's."""
    r_all = events.sum() / exposure.sum() if exposure.sum() > 0 else 0.0
    return events + _PRIOR_MONTHS * r_all, exposure + _PRIOR_MONTHS


@dataclass(frozen=True, eq=False)
class _Rates:
    """Posterior parameters of every rate, by segment (renewals by segment and renewal class)."""

    renew: tuple[np.ndarray, np.ndarray]
    classes: np.ndarray  # Dirichlet parameters, segments x 3
    up: tuple[np.ndarray, np.ndarray]
    down: tuple[np.ndarray, np.ndarray]
    terminate: tuple[np.ndarray, np.ndarray]
    cancel: tuple[np.ndarray, np.ndarray]


def _rates(h: _History) -> _Rates:
    n_cls = h.classes.sum(axis=1)
    share_all = h.classes.sum(axis=0) / n_cls.sum() if n_cls.sum() > 0 else np.array([0.0, 1.0, 0.0])
    return _Rates(
        renew=_renewal_prior(h.decisions),
        classes=h.classes + _PRIOR_DECISIONS * share_all[None, :],
        up=_shrunk_rate(h.ups, h.exposure),
        down=_shrunk_rate(h.downs, h.exposure),
        terminate=_shrunk_rate(h.terminations, h.term_exposure),
        cancel=_shrunk_rate(h.cancellations, h.ever_exposure),
    )


def _gamma(rng: np.random.Generator, shape_rate: tuple[np.ndarray, np.ndarray], k: int) -> np.ndarray:
    shape, rate = shape_rate
    out = np.zeros((k, len(shape)))
    ok = shape > 0
    if ok.any():
        out[:, ok] = rng.gamma(shape[ok], 1.0 / rate[ok], size=(k, int(ok.sum())))
    return np.minimum(out, 1.0)


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray, k: int) -> np.ndarray:
    """k x segments x 3 class shares, by normalised Gamma draws (a zero parameter gives a zero share)."""
    g = np.zeros((k, *alpha.shape))
    ok = alpha > 0
    g[:, ok] = rng.gamma(alpha[ok], 1.0, size=(k, int(ok.sum())))
    total = g.sum(axis=2, keepdims=True)
    flat = np.zeros_like(g)
    flat[..., 1] = 1.0
    return np.where(total > 0, g / np.where(total > 0, total, 1.0), flat)


def _pool_draw(rng: np.random.Generator, pool: _Pool, seg: np.ndarray, k: int, default: float) -> np.ndarray:
    """k x units draws: from the unit's segment's sample, or the whole sample (shrinkage by mixing).

    A segment with ``n`` values is drawn from its own sample with weight
    ``n / (n + _PRIOR_DECISIONS)``, else from everyone's. Each simulation
    first resamples the values within each segment (a stratified bootstrap),
    so the uncertainty of a small sample shows in the spread.
    """
    n_all = len(pool.sample)
    if n_all == 0:
        return np.full((k, len(seg)), default)
    u = len(seg)
    # The resample: position i takes a random position of its own segment.
    boot = pool.start[pool.segment][None, :] + (rng.random((k, n_all)) * pool.count[pool.segment][None, :]).astype(
        np.int64
    )
    n_seg = pool.count[seg]
    own = rng.random((k, u)) < (n_seg / (n_seg + _PRIOR_DECISIONS))[None, :]
    at_seg = pool.start[seg][None, :] + (rng.random((k, u)) * n_seg[None, :]).astype(np.int64)
    anywhere = (rng.random((k, u)) * n_all).astype(np.int64)
    pick = np.where(own & (n_seg[None, :] > 0), at_seg, anywhere)
    return pool.sample[np.take_along_axis(boot, np.minimum(pick, n_all - 1), axis=1)]


# ------------------------------------------------------------------ what is known at the as-of date


@dataclass(frozen=True, eq=False)
class _Units:
    """Everything that makes a base customer's MRR at the horizon's end: one row per contract.

    ``value`` is the booked MRR at the horizon's end, or for a contract whose
    renewal is still open, its MRR on its last day; ``stages`` is how many
    renewal decisions it meets inside the horizon (0 for booked ones).
    """

    customer: np.ndarray  # position in the base
    segment: np.ndarray
    tenure: np.ndarray  # renewals before the first decision (0: it is the contract's first renewal)
    value: np.ndarray
    months: np.ndarray  # months live inside the horizon (amendments and early stops)
    evergreen: np.ndarray
    stages: np.ndarray
    probability: np.ndarray  # given renewal probability, NaN when none
    contract_id: np.ndarray


def _units(
    view: Book,
    m0: pd.Timestamp,
    end: pd.Timestamp,
    n_months: int,
    base_ids: pd.Index,
    decisions: pd.DataFrame,
    segments: np.ndarray,
    seg_code: dict,
    customer: str,
    probabilities: pd.Series | None,
) -> _Units:
    booked = _contract_mrr(view, m0, end, customer)
    booked = booked[booked["account_id"].isin(base_ids) & (booked["mrr"].abs() > CENT)]
    live = booked[booked["month"] > m0].groupby("contract_id")["month"].nunique()
    at_end = booked[booked["month"] == end].set_index("contract_id")["mrr"]
    owner = booked.drop_duplicates("contract_id").set_index("contract_id")["account_id"]

    dec = decisions
    cust = pd.Series(customer_ids(view, dec["account_id"].to_numpy(dtype=object), customer), index=dec.index)
    open_ = dec[
        (dec["outcome"] == "open") & (dec["end_date"] < end) & (dec["prior_arr"] > CENT) & cust.isin(base_ids)
    ].copy()
    open_["customer"] = cust[open_.index]
    # An open renewal replaces whatever of the contract the ledger carries past its end date.
    at_end = at_end[~at_end.index.isin(set(open_["contract_id"]))]
    ids_b = at_end.index.to_numpy(dtype=object)
    con = view.contracts.drop_duplicates("contract_id").set_index("contract_id")
    ever_b = con["evergreen"].reindex(ids_b).astype("boolean").fillna(False).to_numpy(dtype=bool)
    ever_b |= con["end_date"].reindex(ids_b).isna().to_numpy()

    # Renewal stages: the open decision, then the renewal's own end when it falls inside the horizon.
    start = open_["start_date"].to_numpy(dtype="datetime64[D]")
    stop = open_["end_date"].to_numpy(dtype="datetime64[D]")
    term = open_["term_months"].to_numpy(dtype="float64")
    span = (stop + 1).astype("datetime64[M]").astype(np.int64) - start.astype("datetime64[M]").astype(np.int64)
    term = np.where(np.isfinite(term) & (term >= 1), term, np.maximum(span, 1)).astype(np.int64)
    stages = np.ones(len(open_), dtype=np.int64)
    last = np.datetime64(end.date(), "D")
    more = np.ones(len(open_), dtype=bool)
    for j in range(1, n_months + 1):
        if not more.any():
            break
        # The j-th renewal runs from the day after the end for a term like the last one.
        more &= (add_months(stop + 1, term * j) - 1) < last
        stages += more
    p_given = np.full(len(open_), np.nan)
    if probabilities is not None and len(open_):
        p_given = open_["contract_id"].map(probabilities).to_numpy(dtype="float64")

    pos = {c: i for i, c in enumerate(base_ids)}
    all_cust = np.concatenate([owner.reindex(ids_b).to_numpy(dtype=object), open_["customer"].to_numpy(dtype=object)])
    customer_pos = np.array([pos[c] for c in all_cust], dtype=np.int64)
    n_b = len(ids_b)
    return _Units(
        customer=customer_pos,
        segment=np.array([seg_code[s] for s in segments[customer_pos]], dtype=np.int64),
        tenure=np.concatenate([np.zeros(n_b, dtype=np.int64), _tenure(view, open_["contract_id"])]),
        value=np.concatenate([at_end.to_numpy(dtype="float64"), open_["prior_arr"].to_numpy(dtype="float64") / 12]),
        months=np.concatenate(
            [live.reindex(ids_b).fillna(0).to_numpy(dtype=np.int64), np.full(len(open_), n_months, dtype=np.int64)]
        ),
        evergreen=np.concatenate([ever_b, np.zeros(len(open_), dtype=bool)]),
        stages=np.concatenate([np.zeros(n_b, dtype=np.int64), stages]),
        probability=np.concatenate([np.full(n_b, np.nan), p_given]),
        contract_id=np.concatenate([ids_b, open_["contract_id"].to_numpy(dtype=object)]),
    )


# ------------------------------------------------------------------ simulation


def _simulate_block(
    rng: np.random.Generator, k: int, u: _Units, h: _History, r: _Rates, n_customers: int
) -> np.ndarray:
    """k simulations of every base customer's MRR at the horizon's end (k x customers)."""
    n = len(u.value)
    seg = u.segment
    if n == 0:
        return np.zeros((k, n_customers))
    value = np.broadcast_to(u.value, (k, n)).copy()

    # Renewals: every stage must renew; each renewal moves the value by its ratio.
    deciding = u.stages > 0
    if deciding.any():
        p_cell = _renewal_draws(rng, h, k)  # k x segments x renewal class
        shares = np.cumsum(_dirichlet(rng, r.classes, k), axis=2)[:, seg, :]  # k x units x 3
        alive = np.ones((k, n), dtype=bool)
        a, b = np.sqrt(h.rho), np.sqrt(1.0 - h.rho)
        for stage in range(1, int(u.stages.max()) + 1):
            here = u.stages >= stage
            # Each renewal inside the horizon is one renewal further on.
            tenure = np.minimum(u.tenure + stage - 1, _TENURES - 1)
            p = np.where(np.isfinite(u.probability)[None, :], u.probability[None, :], p_cell[:, seg, tenure])
            t = special.ndtri(np.clip(np.nan_to_num(p), 0.0, 1.0))
            z = rng.standard_normal(k)[:, None]
            alive &= ~here[None, :] | (a * z + b * rng.standard_normal((k, n)) < t)
            cls = (rng.random((k, n))[..., None] > shares[..., :2]).sum(axis=2)
            ratio = np.ones((k, n))
            for c in range(3):
                ratio = np.where(cls == c, _pool_draw(rng, h.ratios[c], seg, k, 1.0), ratio)
            value = np.where(here[None, :], value * ratio, value)
        value = np.where(deciding[None, :] & ~alive, 0.0, value)

    # Amendments while live: a binomial count of expansions and contractions, each by a drawn relative size.
    for rate, pool, sign in ((r.up, h.up_sizes, 1.0), (r.down, h.down_sizes, -1.0)):
        lam = _gamma(rng, rate, k)[:, seg]
        count = rng.binomial(np.broadcast_to(u.months, (k, n)), lam)
        for j in range(1, int(count.max()) + 1):
            size = _pool_draw(rng, pool, seg, k, 0.0)
            value = np.where(count >= j, value * (1.0 + sign * size), value)

    # Early stops: terminations of fixed-term contracts, cancellations of evergreen ones.
    hazard = np.where(u.evergreen[None, :], _gamma(rng, r.cancel, k)[:, seg], _gamma(rng, r.terminate, k)[:, seg])
    value = np.where(rng.random((k, n)) < (1.0 - hazard) ** u.months[None, :], value, 0.0)

    to_customer = sparse.csr_matrix((np.ones(n), (np.arange(n), u.customer)), shape=(n, n_customers))
    return np.asarray((to_customer.T @ value.T).T)


# ------------------------------------------------------------------ the public engines


def _group_labels(view: Book, customers: np.ndarray, by: str | None) -> np.ndarray:
    if by is None:
        return np.full(len(customers), _TOTAL, dtype=object)
    if by not in view.accounts.columns:
        raise RenewForecastError(
            f"cannot group NRR by {by!r}: not an account column "
            f"({', '.join(c for c in view.accounts.columns if c != 'account_id')})"
        )
    attr = view.accounts.drop_duplicates("account_id").set_index("account_id")[by]
    out = pd.Series(customers, dtype=object).map(attr.astype(object))
    return out.where(out.notna(), "(none)").astype(str).to_numpy(dtype=object)


def nrr_forecast(
    book: Book,
    as_of,
    *,
    horizon_months: int = 12,
    by: str | None = None,
    renewal_probabilities: pd.Series | pd.DataFrame | None = None,
    n_sims: int = 1000,
    random_state: int | np.random.Generator | None = None,
    customer: str = "account",
) -> pd.DataFrame:
    """Forward net and gross revenue retention: the next ``horizon_months``' NRR and GRR, with P10-P90.

    Parameters
    ----------
    book : Book
        Only what was known at the end of ``as_of`` is used (:meth:`Book.as_of`).
    as_of : date-like
        The base is the last month end on or before it: the customers paying
        then and their MRR, exactly :func:`renewforecast.retention_kpis`'
        base measured ``horizon_months`` later.
    horizon_months : int, default 12
        The retention window; the forecast is for the month end this many
        months after the base month.
    by : str, optional
        An account column (``"segment"``); the output then has one group per
        value plus ``"total"``. The outcome model is by segment whatever
        ``by`` is, and each simulation draws the same outcomes, so the
        ``"total"`` rows do not depend on ``by``.
    renewal_probabilities : Series or DataFrame, optional
        Renewal probability of contracts coming up for renewal (a Series by
        ``contract_id``, or :func:`renewforecast.score_contracts` output);
        other contracts renew with their segment's rate.
    n_sims : int, default 1000
        Monte Carlo simulations.
    random_state : int or numpy Generator, optional
        The same seed gives the same figures.
    customer : {"account", "ultimate_parent"}, default "account"
        Who a customer is, as in :func:`renewforecast.retention_kpis`.

    Returns
    -------
    DataFrame
        Tidy, one row per group and metric: ``as_of``, ``base_month`` (the
        as-of month end), ``month`` (the month end forecast), ``group``,
        ``metric`` (``nrr`` or ``grr``), ``mean``, ``p10``, ``p50``, ``p90``,
        ``base_mrr``, ``base_customers``, ``renewals_due`` (contracts whose
        renewal is decided inside the horizon) and ``renewal_mrr_due`` (their
        MRR on their last day). The figures are NaN for a group with no base
        MRR, and for every group when contracts come up for renewal without a
        probability given and no renewal was decided in the 24 months before
        ``as_of`` to estimate one from (not defined yet, as
        :func:`renewforecast.retention_kpis` before a base year).

    Notes
    -----
    The model, fitted on the 24 months before ``as_of``, is in the module
    docstring and in ``docs/metrics.md``; :func:`nrr_outcome_rates` shows its
    fitted rates. Each simulation draws every customer's MRR at the
    horizon's end; NRR = sum of it / base MRR and GRR = sum of
    min(it, base MRR) / base MRR, per simulation, so GRR <= min(1, NRR).

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> f = rf.nrr_forecast(rf.load_book(folder), "2025-10-31", n_sims=200, random_state=0)
    >>> f[["group", "metric"]].values.tolist()
    [['total', 'nrr'], ['total', 'grr']]
    >>> bool((f["p10"] <= f["p50"]).all() and (f["p50"] <= f["p90"]).all())
    True
    """
    run = _simulate(book, as_of, horizon_months, by, renewal_probabilities, n_sims, random_state, customer)
    due = run.units.stages > 0
    rows = []
    for g, (name, m) in enumerate(zip(run.groups, run.member, strict=True)):
        in_group = m[run.units.customer]
        for metric, sims in (("nrr", run.nrr[:, g]), ("grr", run.grr[:, g])):
            ok = np.isfinite(sims).all()
            q = np.quantile(sims, [0.1, 0.5, 0.9]) if ok else [np.nan] * 3
            rows.append(
                {
                    "as_of": run.as_of,
                    "base_month": run.base_month,
                    "month": run.month,
                    "group": name,
                    "metric": metric,
                    "mean": float(sims.mean()) if ok else np.nan,
                    "p10": float(q[0]),
                    "p50": float(q[1]),
                    "p90": float(q[2]),
                    "base_mrr": float(run.base[m].sum()),
                    "base_customers": int(m.sum()),
                    "renewals_due": int((due & in_group).sum()),
                    "renewal_mrr_due": float(run.units.value[due & in_group].sum()),
                }
            )
    return pd.DataFrame(rows, columns=_COLUMNS)


def nrr_simulations(
    book: Book,
    as_of,
    *,
    horizon_months: int = 12,
    by: str | None = None,
    renewal_probabilities: pd.Series | pd.DataFrame | None = None,
    n_sims: int = 1000,
    random_state: int | np.random.Generator | None = None,
    customer: str = "account",
) -> pd.DataFrame:
    """Every simulation of :func:`nrr_forecast`: the NRR and GRR each one ends the horizon at.

    Takes the same parameters as :func:`nrr_forecast`, whose figures are the
    mean and quantiles of these (the same seed gives the same simulations).

    Returns
    -------
    DataFrame
        Long: ``sim`` (0 to ``n_sims - 1``), ``group`` (``"total"``, then each
        group of ``by``), ``metric`` (``nrr`` or ``grr``), ``value``.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> sims = rf.nrr_simulations(rf.load_book(folder), "2025-10-31", n_sims=50, random_state=0)
    >>> bool(sims.pivot(index="sim", columns="metric", values="value").eval("grr <= nrr").all())
    True
    """
    run = _simulate(book, as_of, horizon_months, by, renewal_probabilities, n_sims, random_state, customer)
    n, g = run.nrr.shape
    parts = [
        pd.DataFrame(
            {
                "sim": np.tile(np.arange(n), g),
                "group": np.repeat(np.array(run.groups, dtype=object), n),
                "metric": metric,
                "value": values.T.ravel(),
            }
        )
        for metric, values in (("nrr", run.nrr), ("grr", run.grr))
    ]
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True, eq=False)
class _Run:
    as_of: pd.Timestamp
    base_month: pd.Timestamp
    month: pd.Timestamp
    groups: list[str]
    member: list[np.ndarray]  # customers of each group
    base: np.ndarray  # each base customer's MRR
    units: _Units
    nrr: np.ndarray  # simulations x groups
    grr: np.ndarray


def _simulate(book, as_of, horizon_months, by, renewal_probabilities, n_sims, random_state, customer) -> _Run:
    horizon_months = int(horizon_months)
    if not 1 <= horizon_months <= 120:
        raise RenewForecastError(f"horizon_months must be from 1 to 120, not {horizon_months}")
    if int(n_sims) < 1:
        raise RenewForecastError(f"n_sims must be at least 1, not {n_sims}")
    probs = None if renewal_probabilities is None else as_probabilities(renewal_probabilities)[0]
    cut = pd.Timestamp(as_of).normalize()
    view = book.as_of(cut)
    m0 = last_month_end(cut)
    end = pd.Timestamp(month_end_of(np.array([month_number([m0.to_datetime64()])[0] + horizon_months]))[0])
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)

    # The base, exactly as retention_kpis measures it horizon_months later.
    at_base = mrr_table(view, start=m0, end=m0, by=("account_id",), customer=customer)
    at_base = at_base[(at_base["month"] == m0) & (at_base["mrr"].abs() > CENT)]
    base = at_base.set_index("account_id")["mrr"].astype("float64")
    base_ids = pd.Index(base.index.astype(object))
    cust_segments = _segments(view, base_ids.to_numpy(dtype=object))
    decisions = renewal_decisions(view)
    segments = sorted(set(_segments(view, view.accounts["account_id"].astype(object).to_numpy())) | {"(none)"})
    seg_code = {s: i for i, s in enumerate(segments)}
    history = _history(view, cut, decisions, segments, customer)
    rates = _rates(history)
    units = _units(view, m0, end, horizon_months, base_ids, decisions, cust_segments, seg_code, customer, probs)

    labels = _group_labels(view, base_ids.to_numpy(dtype=object), by)
    groups = [_TOTAL] + ([] if by is None else sorted(set(labels)))
    member = [np.ones(len(base_ids), dtype=bool)] + [labels == g for g in groups[1:]]
    base_v = base.to_numpy()
    nrr = np.zeros((int(n_sims), len(groups)))
    grr = np.zeros_like(nrr)
    unpriced = (units.stages > 0) & ~np.isfinite(units.probability)
    if unpriced.any() and history.decisions[..., 1].sum() <= 0:
        # Renewals are due but nothing says how often they renew (an early as-of date, without
        # scores): the forecast is not defined yet, as retention_kpis is before a base year.
        nrr[:], grr[:] = np.nan, np.nan
        return _Run(cut, m0, end, groups, member, base_v, units, nrr, grr)
    for s0 in range(0, int(n_sims), _BLOCK):
        k = min(_BLOCK, int(n_sims) - s0)
        now = _simulate_block(rng, k, units, history, rates, len(base_ids))
        # As retention_kpis counts them: amounts under half a cent are no MRR.
        now = np.where(np.abs(now) > CENT, now, 0.0)
        floor = np.minimum(now, base_v[None, :])
        for g, m in enumerate(member):
            den = base_v[m].sum()
            nrr[s0 : s0 + k, g] = now[:, m].sum(axis=1) / den if den > CENT else np.nan
            grr[s0 : s0 + k, g] = floor[:, m].sum(axis=1) / den if den > CENT else np.nan
    return _Run(cut, m0, end, groups, member, base_v, units, nrr, grr)


def nrr_outcome_rates(book: Book, as_of, *, customer: str = "account") -> pd.DataFrame:
    """The outcome model :func:`nrr_forecast` fits at ``as_of``: its rates by segment and for the whole book.

    Parameters
    ----------
    book : Book
        Only what was known at the end of ``as_of`` is used.
    as_of : date-like
    customer : {"account", "ultimate_parent"}, default "account"

    Returns
    -------
    DataFrame
        One row per segment with history, then ``"total"`` (the whole book's
        history, unshrunk): ``segment``; ``decisions_1``, ``decisions_2``,
        ``decisions_3`` and ``decisions_4plus`` (a contract's first, second,
        third, and fourth or later renewals, renewed or lost, ending in the
        24 months to ``as_of``) with their ``renewal_rate_1`` to
        ``renewal_rate_4plus`` (the share of their ARR that renewed); ``share_down``,
        ``share_flat``, ``share_up`` of the renewals and ``ratio_down``,
        ``ratio_flat``, ``ratio_up`` (mean new / old value in each class);
        ``contract_months``, ``expansion_rate`` and ``contraction_rate`` (per
        contract-month) with ``expansion_size`` and ``contraction_size`` (mean
        relative change); ``termination_rate`` (fixed-term contracts) and
        ``cancellation_rate`` (evergreen contracts), monthly; and the
        ``correlation`` of renewal outcomes. A segment's figures are the ones
        the simulation draws around: its own history pulled toward the whole
        book's (renewal rates by 30 pseudo-decisions at a prior whose segment
        effect is pooled by as much as the segments' spread says, shares by
        30 pseudo-renewals, monthly rates by 600 pseudo contract-months).

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> rates = rf.nrr_outcome_rates(rf.load_book(folder), "2025-10-31")
    >>> rates["segment"].tolist()[-1], bool(rates["renewal_rate_1"].between(0, 1).all())
    ('total', True)
    """
    cut = pd.Timestamp(as_of).normalize()
    view = book.as_of(cut)
    decisions = renewal_decisions(view)
    segments = sorted(set(_segments(view, view.accounts["account_id"].astype(object).to_numpy())) | {"(none)"})
    h = _history(view, cut, decisions, segments, customer)
    r = _rates(h)
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = r.renew
        renew = a / (a + b)
        cls = r.classes / r.classes.sum(axis=1, keepdims=True)

        def rate(shape_rate):
            shape, per = shape_rate
            return np.where(per > 0, shape / per, 0.0)

        def pool_mean(pool: _Pool) -> np.ndarray:
            # What _pool_draw draws on average: the segment's mean with its weight, everyone's otherwise.
            own = np.array(
                [pool.sample[s0 : s0 + n].mean() if n else 0.0 for s0, n in zip(pool.start, pool.count, strict=True)]
            )
            w = pool.count / (pool.count + _PRIOR_DECISIONS)
            return w * own + (1 - w) * pool.mean()

        def pooled(events, exposure):
            return float(events.sum() / exposure.sum()) if exposure.sum() > 0 else 0.0

        n = h.decisions[..., 0]
        seg_rows = pd.DataFrame(
            {
                "segment": segments,
                **{f"decisions_{c}": n[:, t].astype(int) for t, c in enumerate(_CLASS_NAMES)},
                **{f"renewal_rate_{c}": renew[:, t] for t, c in enumerate(_CLASS_NAMES)},
                "share_down": cls[:, 0],
                "share_flat": cls[:, 1],
                "share_up": cls[:, 2],
                "ratio_down": pool_mean(h.ratios[0]),
                "ratio_flat": pool_mean(h.ratios[1]),
                "ratio_up": pool_mean(h.ratios[2]),
                "contract_months": h.exposure.astype(int),
                "expansion_rate": rate(r.up),
                "contraction_rate": rate(r.down),
                "expansion_size": pool_mean(h.up_sizes),
                "contraction_size": pool_mean(h.down_sizes),
                "termination_rate": rate(r.terminate),
                "cancellation_rate": rate(r.cancel),
            }
        )
        seg_rows = seg_rows[(n.sum(axis=1) > 0) | (h.exposure > 0)]
        renewed = h.decisions[..., 3].sum(axis=0)
        decided = n.sum(axis=0)
        decided_arr = h.decisions[..., 1].sum(axis=0)
        shares = h.classes.sum(axis=0) / h.classes.sum()
        total = {
            "segment": _TOTAL,
            **{f"decisions_{c}": int(decided[t]) for t, c in enumerate(_CLASS_NAMES)},
            **{
                f"renewal_rate_{c}": renewed[t] / decided_arr[t] if decided_arr[t] else np.nan
                for t, c in enumerate(_CLASS_NAMES)
            },
            "share_down": shares[0],
            "share_flat": shares[1],
            "share_up": shares[2],
            "ratio_down": h.ratios[0].mean(),
            "ratio_flat": h.ratios[1].mean(),
            "ratio_up": h.ratios[2].mean(),
            "contract_months": int(h.exposure.sum()),
            "expansion_rate": pooled(h.ups, h.exposure),
            "contraction_rate": pooled(h.downs, h.exposure),
            "expansion_size": h.up_sizes.mean(),
            "contraction_size": h.down_sizes.mean(),
            "termination_rate": pooled(h.terminations, h.term_exposure),
            "cancellation_rate": pooled(h.cancellations, h.ever_exposure),
        }
    out = pd.concat([seg_rows, pd.DataFrame([total])], ignore_index=True)
    out["correlation"] = h.rho
    return out


# ------------------------------------------------------------------ backtest


@dataclass
class NRRBacktest:
    """The result of :func:`nrr_backtest`.

    Attributes
    ----------
    detail : DataFrame
        One row per origin, group and metric: ``origin``, ``base_month``,
        ``month`` (the month end forecast), ``group``, ``metric``,
        ``forecast`` (the simulated mean), ``p10``, ``p50``, ``p90``,
        ``realised`` (:func:`renewforecast.retention_kpis` at ``month`` on
        what was known then), ``naive`` (the same KPI over the year to the
        origin, as known at the origin), ``error`` = forecast - realised,
        ``naive_error`` = naive - realised, and ``covered`` (1.0 when the
        realised value fell within P10-P90, 0.0 when not).

    Examples
    --------
    >>> import pandas as pd
    >>> detail = pd.DataFrame({"group": "total", "metric": "nrr", "forecast": [0.95, 1.0], "p10": [0.9, 0.95],
    ...                        "p90": [1.0, 1.05], "realised": [0.97, 1.08], "naive": [0.9, 1.0],
    ...                        "error": [-0.02, -0.08], "naive_error": [-0.07, -0.08], "covered": [1.0, 0.0]})
    >>> NRRBacktest(detail).summary()[["mae", "mae_naive", "coverage_p10_p90", "beats_naive"]].round(3).values.tolist()
    [[0.05, 0.075, 0.5, True]]
    """

    detail: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Accuracy per group and metric over every origin with a realised value.

        Returns
        -------
        DataFrame
            ``group``, ``metric``, ``origins``, ``mae`` (mean absolute error of
            the forecast mean), ``mae_naive``, ``bias`` (mean error; negative
            is under-forecast), ``bias_naive``, ``coverage_p10_p90`` (share of
            origins whose realised value fell inside P10-P90; 80 % expected)
            and ``beats_naive`` (``mae < mae_naive``).
        """
        d = self.detail.dropna(subset=["realised", "forecast", "naive"])
        g = d.groupby(["group", "metric"], sort=False)
        out = pd.DataFrame(
            {
                "origins": g.size(),
                "mae": g["error"].apply(lambda e: e.abs().mean()),
                "mae_naive": g["naive_error"].apply(lambda e: e.abs().mean()),
                "bias": g["error"].mean(),
                "bias_naive": g["naive_error"].mean(),
                "coverage_p10_p90": g["covered"].mean(),
            }
        ).reset_index()
        out["beats_naive"] = out["mae"] < out["mae_naive"]
        return out


def nrr_backtest_origins(book: Book, horizon_months: int = 12, *, step_months: int = 1, as_of=None) -> list:
    """Month-end origins an NRR backtest can use: every ``step_months`` back from the latest.

    The latest is ``horizon_months`` before the last complete month (of
    ``as_of``, default the Book's data end), so its realised NRR is known; the
    earliest has customers paying ``horizon_months`` before it (the naive
    baseline, last year's NRR, is defined) and a renewal decided by then
    (a renewal rate can be fitted).

    Examples
    --------
    >>> import renewforecast as rf
    >>> rf.nrr_backtest_origins(rf.Book.empty(), as_of="2026-10-31")
    []
    """
    data_end = as_of if as_of is not None else book.data_end
    if data_end is None or not len(book.subscriptions):
        return []
    end = last_month_end(data_end)
    first = book.subscriptions["start_date"].min()
    decided = renewal_decisions(book, end)
    decided = decided.loc[decided["outcome"].isin(["renewed", "churned"]), "end_date"]
    if pd.isna(first) or decided.empty:
        return []
    earliest = max(
        last_month_end(pd.Timestamp(first) + pd.offsets.MonthEnd(0)) + pd.offsets.MonthEnd(horizon_months),
        pd.Timestamp(decided.min()) + pd.offsets.MonthEnd(0),
    )
    latest = end - pd.offsets.MonthEnd(horizon_months)
    origins = []
    o = latest
    while o >= earliest:
        origins.append(o)
        o = o - pd.offsets.MonthEnd(step_months)
    return sorted(origins)


def nrr_backtest(
    book: Book,
    origins,
    *,
    horizon_months: int = 12,
    by: str | None = None,
    n_sims: int = 500,
    random_state: int = 0,
    customer: str = "account",
) -> NRRBacktest:
    """Forecast NRR and GRR from past origins and compare with what was realised, beside last year's values.

    Parameters
    ----------
    book : Book
        The whole Book. Each origin's forecast sees only ``book.as_of(origin)``;
        its realised value is :func:`renewforecast.retention_kpis` at the
        horizon's month end, on what was known then
        (``book.as_of(month)``); the naive baseline is the same KPI over the
        ``horizon_months`` to the origin, as known at the origin.
    origins : sequence of date-like
        Forecast dates (:func:`nrr_backtest_origins` lists those the data
        allows). Each horizon must end by the Book's last complete month.
    horizon_months : int, default 12
    by : str, optional
        An account column; groups plus ``"total"``.
    n_sims : int, default 500
        Simulations per forecast.
    random_state : int, default 0
        Origin ``i`` uses seed ``random_state + i``.
    customer : {"account", "ultimate_parent"}, default "account"

    Returns
    -------
    NRRBacktest
        With ``detail`` and ``summary()``.

    Notes
    -----
    Renewal probabilities are the historical rates: scores from a model
    trained on the whole Book would have seen the outcomes they are tested on.

    Examples
    --------
    >>> import tempfile, renewforecast as rf
    >>> folder = tempfile.mkdtemp()
    >>> _ = rf.write_demo_org(folder, accounts=200, seed=3)
    >>> bt = rf.nrr_backtest(rf.load_book(folder), ["2024-10-31", "2025-04-30"], n_sims=100)
    >>> bt.summary()[["group", "metric", "origins"]].values.tolist()
    [['total', 'nrr', 2], ['total', 'grr', 2]]
    """
    # Every horizon must have ended in the data before any forecast is made.
    _, origins = checked_origins(book, origins, horizon_months)
    parts = []
    for i, origin in enumerate(origins):
        fc = nrr_forecast(
            book,
            origin,
            horizon_months=horizon_months,
            by=by,
            n_sims=n_sims,
            random_state=random_state + i,
            customer=customer,
        )
        month = fc["month"].iloc[0]
        realised = _kpi_by_group(book, month, by, horizon_months, customer)
        naive = _kpi_by_group(book, origin, by, horizon_months, customer)
        d = fc.rename(columns={"as_of": "origin", "mean": "forecast"})
        key = list(zip(d["group"], d["metric"], strict=True))
        d["realised"] = [realised.get(k, np.nan) for k in key]
        d["naive"] = [naive.get(k, np.nan) for k in key]
        parts.append(d)
    detail = pd.concat(parts, ignore_index=True)
    detail["error"] = detail["forecast"] - detail["realised"]
    detail["naive_error"] = detail["naive"] - detail["realised"]
    inside = (detail["realised"] >= detail["p10"]) & (detail["realised"] <= detail["p90"])
    detail["covered"] = inside.astype("float64").where(detail["realised"].notna())
    cols = [
        "origin",
        "base_month",
        "month",
        "group",
        "metric",
        "forecast",
        "p10",
        "p50",
        "p90",
        "realised",
        "naive",
        "error",
        "naive_error",
        "covered",
        "base_mrr",
        "base_customers",
    ]
    return NRRBacktest(detail=detail[cols])


def _kpi_by_group(book: Book, as_of, by: str | None, months: int, customer: str) -> dict:
    """(group, metric) -> retention_kpis' NRR and GRR at ``as_of``, the whole book as ``"total"``."""
    out = {}
    whole = retention_kpis(book, as_of, months=months, customer=customer)
    for metric in NRR_METRICS:
        out[(_TOTAL, metric)] = float(whole[metric].iloc[0]) if len(whole) else np.nan
    if by is not None:
        for _, row in retention_kpis(book, as_of, by=by, months=months, customer=customer).iterrows():
            for metric in NRR_METRICS:
                out[(str(row[by]), metric)] = float(row[metric])
    return out
