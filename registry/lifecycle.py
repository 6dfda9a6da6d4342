"""The version lifecycle: the one module that knows which transitions are allowed.

draft ─submit→ in_review ─all sign-offs→ approved ─promote→ production
  │               └─any rejection→ rejected                   └→ superseded / retired
  └─discard
"""

from __future__ import annotations

from core.errors import Conflict

from .models import VersionState as S

TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.IN_REVIEW, S.DISCARDED}),
    S.IN_REVIEW: frozenset({S.APPROVED, S.REJECTED}),
    S.APPROVED: frozenset({S.PRODUCTION, S.RETIRED}),
    S.PRODUCTION: frozenset({S.SUPERSEDED, S.RETIRED}),
    # rollback re-promotes an earlier approved or superseded version
    S.SUPERSEDED: frozenset({S.PRODUCTION, S.RETIRED}),
    S.REJECTED: frozenset(),
    S.RETIRED: frozenset(),
    S.DISCARDED: frozenset(),
}

# States whose content is frozen: anything but a draft.
EDITABLE_STATES = frozenset({S.DRAFT})


def allowed_next(state: str) -> list[str]:
    return sorted(TRANSITIONS.get(state, frozenset()))


def _label(state: str) -> str:
    return S(state).label.lower() if state in S.values else state


def check_transition(current: str, target: str, *, what: str = "version") -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(
            f"This {what} is {_label(current)}; it cannot become {_label(target)}.",
            code="illegal_transition", field="state",
            extra={"state": current, "allowed_next": allowed_next(current)},
        )


def check_editable(state: str) -> None:
    if state not in EDITABLE_STATES:
        raise Conflict(
            f"This version is {_label(state)}: its content was frozen when it was submitted and can no "
            "longer change. Register a new version instead.",
            code="version_frozen", field="state",
            extra={"state": state, "allowed_next": allowed_next(state)},
        )
