"""Which logged predictions are live traffic: those made while their version was in
production. Everything else — owners scoring a draft, a version in review or a
superseded one on the predict form (``?version=N``) — is testing, and monitoring
leaves it out of every figure (it is counted, as ``testing``, and nothing more).

When a version was in production is read from the audit trail (promote and rollback
put it there; supersede and retire take it out), not from its state field, which only
says what is true now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db.models import Q

from audits.models import Action, AuditEvent

ENTER = (Action.VERSION_PROMOTED, Action.VERSION_ROLLED_BACK)
LEAVE = (Action.VERSION_SUPERSEDED, Action.VERSION_RETIRED)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime | None  # None: still in production


def production_intervals(version_ids: list[int] | set[int]) -> dict[int, list[Interval]]:
    """Per version id, its times in production, oldest first."""
    out: dict[int, list[Interval]] = {v: [] for v in version_ids}
    if not out:
        return out
    events = (AuditEvent.objects.filter(version_id__in=list(out), action__in=[*ENTER, *LEAVE])
              .order_by("seq").values_list("version_id", "action", "time", "after"))
    open_since: dict[int, datetime] = {}
    for version_id, action, time, after in events:
        if action in ENTER and (after or {}).get("state") == "production":
            open_since.setdefault(version_id, time)
        elif action in LEAVE and version_id in open_since:
            out[version_id].append(Interval(open_since.pop(version_id), time))
    for version_id, since in open_since.items():
        out[version_id].append(Interval(since, None))
    return out


def live_mask(intervals: list[Interval], times: np.ndarray) -> np.ndarray:
    """For epoch-second ``times``, whether each fell inside one of the intervals."""
    mask = np.zeros(len(times), dtype=bool)
    for interval in intervals:
        inside = times >= interval.start.timestamp()
        if interval.end is not None:
            inside &= times < interval.end.timestamp()
        mask |= inside
    return mask


def live_q(intervals: list[Interval], field: str = "created_at") -> Q:
    """The same test as a queryset filter on a time field (matches nothing if never live)."""
    q = Q(pk__in=[])
    for interval in intervals:
        part = Q(**{f"{field}__gte": interval.start})
        if interval.end is not None:
            part &= Q(**{f"{field}__lt": interval.end})
        q |= part
    return q


def last_promotion(intervals: list[Interval]) -> datetime | None:
    return intervals[-1].start if intervals else None


def first_promotion(intervals: list[Interval]) -> datetime | None:
    return intervals[0].start if intervals else None
