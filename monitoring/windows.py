"""Windows of time and the counts inside them.

Rolling windows: the last 24 hours (hourly counts: this hour and the 23 before it), the
last 7 and 30 UTC days (today and the days before it, daily counts), and since the
version last entered production. Any range of whole UTC days, and single days for the
charts. A window's counts are sums of the stored hourly or daily rows: no raw input is
read again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from . import stats
from .layout import FeatureLayout
from .models import FeatureCounts, Period, VersionCounts

ROLLING = ("24h", "7d", "30d", "since_promotion")
LABELS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days",
          "since_promotion": "Since promotion"}


@dataclass(frozen=True)
class Window:
    code: str
    label: str
    period: str
    start: datetime  # inclusive
    end: datetime  # exclusive

    def as_dict(self) -> dict:
        return {"code": self.code, "label": self.label, "period": self.period,
                "start": self.start.isoformat(), "end": self.end.isoformat()}


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day_window(day: date) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(f"day:{day.isoformat()}", day.isoformat(), Period.DAY, start,
                  start + timedelta(days=1))


def range_window(first: date, last: date) -> Window:
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return Window(f"range:{first.isoformat()}..{last.isoformat()}",
                  f"{first.isoformat()} to {last.isoformat()}", Period.DAY, start, end)


def rolling_windows(now: datetime, promoted: datetime | None,
                    left_production: datetime | None = None) -> dict[str, Window]:
    """The rolling windows at ``now``; a version no longer in production is judged on
    the windows ending when it left (its last day in production)."""
    end_moment = left_production or now
    hour, today = _hour(end_moment), _day(end_moment)
    out = {
        "24h": Window("24h", LABELS["24h"], Period.HOUR, hour - timedelta(hours=23),
                      hour + timedelta(hours=1)),
        "7d": Window("7d", LABELS["7d"], Period.DAY, today - timedelta(days=6),
                     today + timedelta(days=1)),
        "30d": Window("30d", LABELS["30d"], Period.DAY, today - timedelta(days=29),
                      today + timedelta(days=1)),
    }
    if promoted is not None:
        out["since_promotion"] = Window("since_promotion", LABELS["since_promotion"],
                                        Period.DAY, _day(promoted), today + timedelta(days=1))
    return out


@dataclass
class Counts:
    """A window's summed counts for one version."""

    predictions: int = 0
    singles: int = 0
    batch_rows: int = 0
    routed_to_review: int = 0
    ood: int = 0
    inputs_unavailable: int = 0
    testing: int = 0
    latency_ms_sum: float = 0.0
    cpu_ms_sum: float = 0.0  # measured CPU time of the cpu_rows rows that have it
    cpu_rows: int = 0
    imputation_unrecorded: int = 0  # rows counted whose log does not say what was imputed
    score_counts: np.ndarray = field(default_factory=lambda: np.zeros(stats.SCORE_BINS))
    score_sums: np.ndarray = field(default_factory=lambda: np.zeros(stats.SCORE_BINS))
    labels: dict = field(default_factory=lambda: defaultdict(int))
    ood_codes: dict = field(default_factory=lambda: defaultdict(int))
    latency_counts: dict = field(default_factory=lambda: defaultdict(int))
    features: dict = field(default_factory=dict)  # name -> [counts array, missing]
    buckets: int = 0


_SUMMED = ("predictions", "singles", "batch_rows", "routed_to_review", "ood",
           "inputs_unavailable", "testing", "cpu_rows", "imputation_unrecorded")


class CountStore:
    """A version's stored rows from ``since`` on, loaded once and summed per window."""

    def __init__(self, version_id: int, layouts: list[FeatureLayout], since: datetime,
                 hours_since: datetime) -> None:
        self.layouts = {layout.name: layout for layout in layouts}
        self.rows: dict[str, list] = {Period.DAY: [], Period.HOUR: []}
        self.features: dict[str, list] = {Period.DAY: [], Period.HOUR: []}
        for period, first in ((Period.DAY, since), (Period.HOUR, hours_since)):
            self.rows[period] = list(VersionCounts.objects.filter(
                version_id=version_id, period=period, start__gte=first).order_by("start"))
            self.features[period] = [
                (start, name, np.asarray(counts, dtype=float), missing)
                for start, name, counts, missing in FeatureCounts.objects.filter(
                    version_id=version_id, period=period, start__gte=first,
                    feature__in=list(self.layouts)).values_list("start", "feature", "counts",
                                                                "missing")]

    def days(self) -> list[date]:
        return [r.start.date() for r in self.rows[Period.DAY]]

    def counts(self, window: Window) -> Counts:
        out = Counts()
        for row in self.rows[window.period]:
            if not window.start <= row.start < window.end:
                continue
            out.buckets += 1
            for name in _SUMMED:
                setattr(out, name, getattr(out, name) + getattr(row, name))
            out.latency_ms_sum += row.latency_ms_sum
            out.cpu_ms_sum += row.cpu_ms_sum
            if row.score_counts:
                out.score_counts += np.asarray(row.score_counts, dtype=float)
                out.score_sums += np.asarray(row.score_sums, dtype=float)
            for attr in ("labels", "ood_codes", "latency_counts"):
                target = getattr(out, attr)
                for key, value in (getattr(row, attr) or {}).items():
                    target[key] += value
        for start, name, counts, missing in self.features[window.period]:
            if not window.start <= start < window.end:
                continue
            layout = self.layouts[name]
            entry = out.features.get(name)
            array = counts
            if len(array) != layout.size:  # a profile edited after counting began (drafts)
                continue
            if entry is None:
                out.features[name] = [array, int(missing)]
            else:
                entry[0] = entry[0] + array
                entry[1] += int(missing)
        return out
