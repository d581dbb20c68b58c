"""The forecast's frame of reference: its months (:class:`Horizon`) and its groups (:class:`Groups`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from renewforecast.book import Book
from renewforecast.dates import last_month_end, month_end_of, month_number
from renewforecast.exceptions import RenewForecastError

__all__ = ["Groups", "Horizon", "month_no"]


def month_no(ts) -> int:
    """Months since January 1970 of a date (the ledger's month numbering).

    Examples
    --------
    >>> month_no("1970-02-15"), month_no("2025-10-31")
    (1, 669)
    """
    return int(month_number([pd.Timestamp(ts).to_datetime64()])[0])


@dataclass(frozen=True)
class Horizon:
    """The forecast months: from the month after the as-of date's last month end, ``months`` long.

    Parameters
    ----------
    as_of : Timestamp
        The forecast date (normalised to midnight).
    first, last : int
        First and last forecast month, as :func:`month_no` numbers.

    Examples
    --------
    >>> h = Horizon.after("2025-10-15", 3)
    >>> [str(m.date()) for m in h.month_ends]
    ['2025-10-31', '2025-11-30', '2025-12-31']
    >>> h.n_months, str(h.first_day), str(h.last_day)
    (3, '2025-10-01', '2025-12-31')
    """

    as_of: pd.Timestamp
    first: int
    last: int

    @classmethod
    def after(cls, as_of, months: int) -> Horizon:
        """The ``months`` forecast months after ``as_of`` (see the class docstring)."""
        cut = pd.Timestamp(as_of).normalize()
        first = month_no(last_month_end(cut)) + 1
        return cls(as_of=cut, first=first, last=first + int(months) - 1)

    @property
    def n_months(self) -> int:
        """Number of forecast months."""
        return self.last - self.first + 1

    @property
    def first_day(self) -> np.datetime64:
        """First day of the first forecast month."""
        return np.datetime64(self.first, "M").astype("datetime64[D]")

    @property
    def last_day(self) -> np.datetime64:
        """Last day of the last forecast month."""
        return np.datetime64(self.last + 1, "M").astype("datetime64[D]") - 1

    @property
    def month_ends(self) -> pd.DatetimeIndex:
        """Month end of every forecast month."""
        return pd.DatetimeIndex(month_end_of(np.arange(self.first, self.last + 1)))


class Groups:
    """Maps account ids to the forecast's groups (one group, or an account column).

    Parameters
    ----------
    book : Book
    by : str, optional
        An account column; without it every account is in the one group ``"total"``.

    Examples
    --------
    >>> import pandas as pd, renewforecast as rf
    >>> book = rf.Book.empty().replace(accounts=pd.DataFrame({"account_id": ["a", "b"], "segment": ["SMB", None]}))
    >>> g = Groups(book, "segment")
    >>> g.labels, g.codes(["a", "b", "unknown"]).tolist()
    (['(none)', 'SMB'], [1, 0, 0])
    """

    def __init__(self, book: Book, by: str | None):
        if by is not None and not isinstance(by, str):
            raise RenewForecastError("by must be one account column name (for example 'segment') or None")
        if by is not None and by not in book.accounts.columns:
            raise RenewForecastError(
                f"cannot group the forecast by {by!r}: not an account column "
                f"({', '.join(c for c in book.accounts.columns if c != 'account_id')})"
            )
        self.by = by
        if by is None:
            self.labels = ["total"]
            self._map = None
        else:
            attr = book.accounts.drop_duplicates("account_id").set_index("account_id")[by]
            attr = attr.astype(object).where(attr.notna(), "(none)").astype(str)
            self.labels = sorted(set(attr))
            self._map = attr.map({v: i for i, v in enumerate(self.labels)})

    def codes(self, account_ids) -> np.ndarray:
        """Group number of each account (accounts not in the Book: ``(none)``, else the first group)."""
        ids = np.asarray(account_ids, dtype=object)
        if self._map is None:
            return np.zeros(len(ids), dtype=np.int64)
        codes = pd.Series(ids).map(self._map)
        if codes.isna().any():
            codes = codes.fillna(self.labels.index("(none)") if "(none)" in self.labels else 0)
        return codes.to_numpy(dtype=np.int64)
