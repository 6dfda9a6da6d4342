"""Reconciling what the portal shows with what the audit chain recorded.

The chain proves that no event was changed, removed or reordered. It does not by
itself prove that the domain rows the portal shows (a signature's printed name, a
version's state) are the ones the events recorded: someone with database access
could edit a row and leave the trail alone. A *reconciler* compares a domain's
rows with their events and names every row that disagrees.

The trail imports no domain app, so each domain registers its reconciler at
start-up (``register_reconciler``, called from ``registry.apps``), as it registers
its model directory (``audits.access``). ``verify_audit``, ``GET
/api/v1/audit/verify/``, the integrity page and the scheduled check run them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Finding:
    """One row that disagrees with the trail."""

    object_type: str          # e.g. "registry.signature"
    object_id: str
    object_repr: str          # names the row for a reader: "signature 12 (pi_approval on sepsis v3)"
    problem: str
    model_id: int | None = None
    event_seq: int | None = None  # the event it was compared with, if any

    def line(self) -> str:
        return f"{self.object_repr}: {self.problem}"


@dataclass(frozen=True)
class Reconciliation:
    ok: bool
    checked: dict[str, int] = field(default_factory=dict)  # rows compared, per kind
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self, *, limit: int | None = None) -> dict:
        """``limit`` keeps the first findings (an audit event's details stay bounded)."""
        shown = self.findings if limit is None else self.findings[:limit]
        return {"ok": self.ok, "checked": dict(self.checked),
                "findings": [asdict(f) for f in shown], "findings_total": len(self.findings)}

    def summary(self) -> str:
        counted = ", ".join(f"{n} {kind}" for kind, n in self.checked.items()) or "nothing"
        return f"{counted} reconciled with their events"


# A reconciler gets the model ids in scope (None: all) and answers
# {kind: rows checked} and the rows that disagree.
Reconciler = Callable[[set[int] | None], tuple[dict[str, int], list[Finding]]]

_reconcilers: dict[str, Reconciler] = {}


def register_reconciler(name: str, reconciler: Reconciler) -> None:
    _reconcilers[name] = reconciler


def reconcile(*, model_ids: Iterable[int] | None = None) -> Reconciliation:
    """Run every registered reconciler over the models in scope (None: every model)."""
    scope = None if model_ids is None else set(model_ids)
    checked: dict[str, int] = {}
    findings: list[Finding] = []
    for name in sorted(_reconcilers):
        counts, found = _reconcilers[name](scope)
        for kind, n in counts.items():
            checked[kind] = checked.get(kind, 0) + n
        findings.extend(found)
    return Reconciliation(ok=not findings, checked=checked, findings=findings)
