"""The dossier's appendix: a regulatory cross-reference computed from the evidence snapshot.

Each requirement is data — its framework, its reference, a short paraphrase of what it
asks — and a rule over the snapshot (the dict ``dossier.evidence._read`` builds) that
says ``answered``, ``partly`` or ``gap``, which sections of the dossier hold the evidence,
and why. The rules read the snapshot only, never the database, a clock or the request, so
the same snapshot gives the same cross-reference (and the same PDF bytes).

What Attest does not record (a declaration of conformity, harmonised standards, most of
what a TRIPOD+AI study report states about its study) is ``gap`` with a why that says so
and where it belongs; nothing is answered by boilerplate. ``partly`` always says which
part is missing.

The texts paraphrased (never quoted beyond a phrase) are those named in ``FRAMEWORKS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ANSWERED = "answered"
PARTLY = "partly"
GAP = "gap"
STATUSES = (ANSWERED, PARTLY, GAP)
FORMAT = "attest-dossier-crossref/1"
SIGNOFF_RECORDED = "release.signoff_recorded"  # audits.models.Action.SIGNOFF_RECORDED
SIGNED = ("approve", "reject")

# The dossier's sections, as templates/dossier/dossier.html numbers them.
COVER = "Cover"
CHECKLIST = "§2 Deployment checklist"
CARD = "§3 Model card"
MANIFEST = "§4 Sign-off manifest"
EXPLANATIONS = "§5 Explanations"
MONITORING = "§6 Monitoring"


def Q(n: int) -> str:  # a section name: "§1 Q4"
    return f"§1 Q{n}"


@dataclass(frozen=True)
class Framework:
    key: str
    title: str
    texts: str  # the version of the texts the requirements paraphrase
    scope: str  # what the rows cover (and leave out, and why)


FRAMEWORKS = (
    Framework("cfr11", "21 CFR Part 11 (FDA): electronic records and signatures",
              "21 CFR Part 11 as published in the eCFR (62 FR 13464, 20 March 1997)",
              "§ 11.10(e), § 11.50, § 11.70 and § 11.200(a); § 11.200(b) (signatures based "
              "on biometrics) is not listed."),
    Framework("euaia", "EU AI Act: record-keeping, human oversight, technical documentation",
              "Regulation (EU) 2024/1689 (Artificial Intelligence Act), OJ L of 12 July 2024",
              "Art. 12(1)–(2), Art. 14(4)(a)–(e) and the nine points of Annex IV; Art. 12(3) "
              "(remote biometric identification systems only) is not listed."),
    Framework("gmlp", "Good Machine Learning Practice (FDA, Health Canada, MHRA)",
              "Good Machine Learning Practice for Medical Device Development: Guiding "
              "Principles, October 2021",
              "The ten guiding principles."),
    Framework("tripod", "TRIPOD+AI: reporting a clinical prediction model",
              "TRIPOD+AI statement, Collins et al., BMJ 2024;385:e078378 (27 items, 52 "
              "checklist entries)",
              "Every entry of the main checklist; the abstract checklist is item 2. Most items "
              "describe the study that developed or evaluated the model: Attest records the "
              "model, its data set and its use, not that study."),
)

Finding = tuple[str, list[str], str]  # status, sections, why


@dataclass(frozen=True)
class Requirement:
    framework: str
    ref: str
    requirement: str
    check: Callable[[Evidence], Finding]


# -- reading the snapshot, never failing on what is missing -------------------------------

def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list:
    return value if isinstance(value, list) else []


CARD_LABELS = {
    "model_details": "model details", "intended_use": "intended use", "factors": "factors",
    "metrics": "metrics", "evaluation_data": "evaluation data",
    "training_data": "training data", "quantitative_analyses": "quantitative analyses",
    "ethical_considerations": "ethical considerations",
    "caveats_recommendations": "caveats and recommendations",
    "intended_use_workflow": "intended use and workflow",
    "target_population": "target population", "out_of_scope": "out-of-scope settings",
    "known_risks_biases": "known risks and biases", "key_metrics": "key metrics",
}


class Evidence:
    """Typed reads of one snapshot; absent or malformed parts read as empty."""

    def __init__(self, snapshot: Any):
        s = _d(snapshot)
        self.cover = _d(s.get("cover"))
        self.questions = {q.get("number"): q for q in map(_d, _l(s.get("questions")))}
        self.checklist = {i.get("item"): i for i in map(_d, _l(s.get("checklist")))}
        self.signoffs = [_d(r) for r in _l(s.get("signoffs"))]
        self.monitoring = _d(s.get("monitoring"))
        self.explanations = _d(s.get("explanations"))
        self.runbook = s.get("runbook") if isinstance(s.get("runbook"), str) else ""
        self.model_card = s.get("model_card") if isinstance(s.get("model_card"), str) else ""
        fields = s.get("model_card_fields")
        self.card_fields_read = isinstance(fields, list)
        self.card_fields = {f.get("key"): f for f in map(_d, _l(fields))}

    # questions
    def q(self, n: int) -> dict:
        return _d(self.questions.get(n))

    def ev(self, n: int) -> dict:
        return _d(self.q(n).get("evidence"))

    def answered(self, n: int) -> bool:
        return self.q(n).get("status") == ANSWERED

    @property
    def chain(self) -> dict:
        return _d(self.ev(4).get("audit_chain"))

    @property
    def log(self) -> dict:
        return _d(self.ev(4).get("prediction_log"))

    @property
    def reconciliation(self) -> dict:
        return _d(self.ev(4).get("reconciliation"))

    @property
    def dataset(self) -> dict:
        return _d(self.ev(1).get("dataset"))

    @property
    def release_history(self) -> list[dict]:
        return [_d(e) for e in _l(self.ev(1).get("release_history"))]

    @property
    def review(self) -> dict:
        return _d(self.ev(3).get("review"))

    @property
    def threshold(self) -> float | None:
        value = self.ev(3).get("confidence_threshold")
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def signed(self) -> list[dict]:
        return [r for r in self.signoffs if r.get("status") in SIGNED]

    def item(self, name: str) -> dict:
        return _d(self.checklist.get(name))

    def monitored(self) -> bool:
        return self.monitoring.get("status") == ANSWERED

    def explained(self) -> bool:
        return self.explanations.get("status") == ANSWERED

    def chain_ok(self) -> bool:
        return self.chain.get("ok") is True

    def log_ok(self) -> bool:
        return self.log.get("ok") is True

    def chain_text(self) -> str:
        c = self.chain
        if c.get("ok") is True:
            return (f"the audit chain verified ({c.get('checked')} events, head "
                    f"{c.get('head_seq')})")
        if not c:
            return "no audit-chain verification is in the snapshot"
        broken = _d(c.get("first_broken"))
        return (f"the audit chain does not verify (first broken link at event "
                f"{broken.get('seq', '?')}: {broken.get('problem', 'unknown')})")

    def card(self, key: str) -> tuple[str, str]:
        """(status, label) of a model-card field: gap while the fields are not read."""
        label = CARD_LABELS.get(key, key)
        if not self.card_fields_read:
            return GAP, label
        field = _d(self.card_fields.get(key))
        label = field.get("label") or label
        status = field.get("status")
        return (status if status in STATUSES else GAP), label


# -- rule helpers ---------------------------------------------------------------------------

def _outside(where: str) -> Callable[[Evidence], Finding]:
    def check(e: Evidence) -> Finding:
        return GAP, [], f"Not recorded in Attest: {where}"
    return check


def _card_rule(keys: tuple[str, ...], *, missing: str = "", extra: tuple[str, ...] = ()
               ) -> Callable[[Evidence], Finding]:
    """Answered when every named model-card field is answered; partly when some are (or
    when ``missing`` names a part no field records, which caps it at partly); gap when
    none is. ``extra`` sections are added to the model card's."""
    def check(e: Evidence) -> Finding:
        return _card_finding(e, keys, missing=missing, sections=[CARD, *extra])
    return check


def _card_finding(e: Evidence, keys: tuple[str, ...], *, missing: str = "",
                  sections: list[str] | None = None, lead: str = "") -> Finding:
    sections = sections or [CARD]
    if not e.card_fields_read:
        labels = ", ".join(e.card(k)[1] for k in keys)
        return GAP, sections, (f"{lead}The model card's fields were not read ({labels}); "
                               "nothing of it is counted here." + (f" {missing}" if missing
                                                                   else ""))
    got = {k: e.card(k) for k in keys}
    stated = [label.lower() for status, label in got.values() if status == ANSWERED]
    partial = [label.lower() for status, label in got.values() if status == PARTLY]
    absent = [label.lower() for status, label in got.values()
              if status not in (ANSWERED, PARTLY)]
    parts = []
    if stated:
        parts.append(f"The model card states its {', '.join(stated)}.")
    if partial:
        parts.append(f"Its {', '.join(partial)} {'is' if len(partial) == 1 else 'are'} "
                     "only partly stated.")
    if absent:
        parts.append(f"It does not state its {', '.join(absent)}.")
    if not stated:  # the first sentence names the card
        first = parts[0]
        parts[0] = ("The model card's " + first[4:] if first.startswith("Its ")
                    else "The model card " + first[3:])
    if stated and not partial and not absent:
        status = PARTLY if missing else ANSWERED
    elif stated or partial:
        status = PARTLY
    else:
        status = GAP
    why = lead + " ".join(parts) + (f" {missing}" if missing else "")
    return status, sections, why


def _worst(*statuses: str) -> str:
    for status in (GAP, PARTLY):
        if status in statuses:
            return status
    return ANSWERED


def _of(parts: list[tuple[bool, str, str]]) -> tuple[str, str]:
    """From (held, what it says when held, what it says when not) parts: answered when all
    are held, partly when some, gap when none; the why lists both."""
    held = [yes for ok, yes, _ in parts if ok]
    lacking = [no for ok, _, no in parts if not ok]
    status = ANSWERED if not lacking else PARTLY if held else GAP
    return status, " ".join(held + lacking)


# -- 21 CFR Part 11 -----------------------------------------------------------------------

def _trail(e: Evidence) -> Finding:
    sections = [Q(4), Q(1), COVER]
    chain = e.chain
    if not e.chain_ok():
        return GAP, sections, f"In this snapshot {e.chain_text()}."
    if not chain.get("checked"):
        return GAP, sections, "The audit chain holds no event."
    events = e.release_history
    timed = [x for x in events if x.get("time")]
    anonymous = [x for x in timed if not (x.get("actor") or x.get("actor_name"))]
    checkpoint = _d(e.cover.get("checkpoint"))
    why = (f"Every action is an audit event written by the system with its time and actor, "
           f"each hashed onto the one before: {e.chain_text()}; this version's "
           f"{len(timed)} release events are printed with their times (§1 Q1)"
           + (f", {len(anonymous)} of them with no actor recorded" if anonymous else "")
           + ".")
    if not checkpoint:
        return PARTLY, sections, (why + " No signed checkpoint of the chain is recorded, so "
                                  "nothing outside the database vouches for its head: a "
                                  "rewrite of the whole chain would still verify.")
    return ANSWERED, sections, (why + f" The latest signed checkpoint covers event "
                                f"{checkpoint.get('head_seq')} (key "
                                f"{checkpoint.get('key_id')}, signed {checkpoint.get('time')}).")


def _not_obscured(e: Evidence) -> Finding:
    sections = [Q(4)]
    if not e.chain_ok():
        return GAP, sections, (f"In this snapshot {e.chain_text()}: an earlier record may "
                               "have been changed.")
    recon = e.reconciliation
    if recon.get("ok") is not True:
        n = recon.get("findings_total", "some")
        return PARTLY, sections, (f"{e.chain_text().capitalize()}, but reconciliation found "
                                  f"{n} row(s) that disagree with the trail."
                                  if recon else f"{e.chain_text().capitalize()}; no "
                                  "reconciliation of rows with the trail is in the snapshot.")
    checked = ", ".join(f"{n} {kind}" for kind, n in sorted(_d(recon.get("checked")).items()))
    return ANSWERED, sections, (f"Changes are new events beside the old ones (the trail is "
                                f"append-only): {e.chain_text()}, and every reconciled row "
                                f"agrees with its events ({checked or 'no rows'}).")


def _retained(e: Evidence) -> Finding:
    sections = [Q(4)]
    if not e.chain_ok():
        return GAP, sections, f"In this snapshot {e.chain_text()}: events may be missing."
    chain = e.chain
    whole = chain.get("checked") == chain.get("head_seq")
    return PARTLY, sections, (
        f"{e.chain_text().capitalize()}" + (" from the first event, none missing" if whole
                                            else "") + "; the trail is never purged "
        f"(raw prediction inputs are, after {e.ev(4).get('retention_days')} days, each purge "
        "an event). The retention period the predicate rule requires for these records is "
        "not recorded in Attest: it belongs in the records-retention procedure.")


def _available(e: Evidence) -> Finding:
    events = e.release_history
    head = e.cover.get("chain_head_hash")
    if not events:
        return GAP, [Q(1)], "No audit event of this version's release is in the snapshot."
    return ANSWERED, [Q(1), COVER], (
        f"This dossier prints {len(events)} audit event(s) of the version's release history "
        f"(§1 Q1) and the chain head it was read at (event {e.cover.get('chain_head_seq')}, "
        f"{head}) on the cover.")


def _signed_field(key: str, what: str) -> Callable[[Evidence], Finding]:
    def check(e: Evidence) -> Finding:
        signed = e.signed
        if not signed:
            return GAP, [MANIFEST], "No signature is recorded for this version."
        lacking = [r.get("meaning") or "?" for r in signed if not r.get(key)]
        if lacking:
            return PARTLY, [MANIFEST], (f"{len(signed) - len(lacking)} of {len(signed)} "
                                        f"signatures record the {what}; not: "
                                        f"{', '.join(lacking)}.")
        shown = "; ".join(f"{r.get('meaning')} ({r.get('status')})" if key == "meaning"
                          else f"{r.get('meaning')}: {r.get(key)}" for r in signed)
        return ANSWERED, [MANIFEST], f"Each of the {len(signed)} signatures records the " \
                                     f"{what} ({shown})."
    return check


def _manifestation_controls(e: Evidence) -> Finding:
    sections = [MANIFEST, Q(1)]
    signed = e.signed
    if not signed:
        return GAP, sections, "No signature is recorded for this version."
    if not e.chain_ok():
        return GAP, sections, f"Each signature's event is in the audit trail, but " \
                              f"{e.chain_text()}."
    events = [_d(x.get("after")) for x in e.release_history
              if x.get("action") == SIGNOFF_RECORDED]
    matched = [r for r in signed if any(
        a.get("meaning") == r.get("meaning") and a.get("printed_name") == r.get("printed_name")
        for a in events)]
    unmatched = [r.get("meaning") or "?" for r in signed if r not in matched]
    why = (f"The printed name, time and meaning of {len(signed)} signature(s) are printed in "
           f"§4 and recorded in their audit events, {e.chain_text()}.")
    if unmatched:
        return PARTLY, sections, (f"{len(matched)} of {len(signed)} signatures have a "
                                  f"recorded sign-off event naming the same signer; not: "
                                  f"{', '.join(unmatched)}.")
    return ANSWERED, sections, why


def _linking(e: Evidence) -> Finding:
    sections = [MANIFEST]
    signed = e.signed
    if not signed:
        return GAP, sections, "No signature is recorded for this version."
    unbound = [r.get("meaning") or "?" for r in signed if not r.get("content_hash")]
    if unbound:
        return GAP, sections, f"Signatures that record no hash they cover: {', '.join(unbound)}."
    documents = [r for r in signed if _d(r.get("document")).get("sha256")]
    elsewhere = [r.get("meaning") for r in signed if not _d(r.get("document"))
                 and not r.get("bound_to_current_content")]
    why = (f"Each of the {len(signed)} signatures records the hash of what it signed: the "
           f"version's content hash" + (f", and for {len(documents)} the sha256 of the "
                                        "document reviewed" if documents else "") + ".")
    if elsewhere:
        why += f" Signatures of other content (not this version's hash): {', '.join(elsewhere)}."
    if not e.chain_ok():
        return PARTLY, sections, why + f" But {e.chain_text()}, which holds the signature events."
    return ANSWERED, sections, why


def _components(e: Evidence) -> Finding:
    signed = e.signed
    if not signed:
        return GAP, [MANIFEST], "No signature is recorded for this version."
    ids = sorted({r.get("signer") for r in signed if r.get("signer")})
    return PARTLY, [MANIFEST], (
        f"Each signature names its signer's user id (identification code: {', '.join(ids)}). "
        "The second component (the password re-entered at signing) leaves no record in the "
        "signature or its audit event, so this dossier cannot show it was used.")


def _reauthentication(e: Evidence) -> Finding:
    if not e.signed:
        return GAP, [MANIFEST], "No signature is recorded for this version."
    return GAP, [MANIFEST], (
        "Not recorded: neither the signature nor its audit event records which components "
        "were entered at signing, or the session it was made in; the time of each signature "
        "is recorded (§4).")


CFR11 = (
    ("21 CFR 11.10(e) audit trail",
     "Use secure, computer-generated, time-stamped audit trails that independently record "
     "the date and time of operator entries and actions creating, modifying or deleting "
     "electronic records.", _trail),
    ("21 CFR 11.10(e) earlier records",
     "Record changes do not obscure previously recorded information.", _not_obscured),
    ("21 CFR 11.10(e) retention",
     "The audit trail is kept at least as long as the records it concerns must be kept.",
     _retained),
    ("21 CFR 11.10(e) review and copying",
     "The audit trail is available for agency review and copying.", _available),
    ("21 CFR 11.50(a)(1)",
     "A signed record shows the printed name of the signer.",
     _signed_field("printed_name", "printed name of the signer")),
    ("21 CFR 11.50(a)(2)",
     "A signed record shows the date and time the signature was executed.",
     _signed_field("signed_at", "date and time of signing")),
    ("21 CFR 11.50(a)(3)",
     "A signed record shows the meaning of the signature (e.g. review, approval, "
     "responsibility, authorship).", _signed_field("meaning", "meaning")),
    ("21 CFR 11.50(b)",
     "Name, time and meaning are under the same controls as the record and appear in any "
     "human-readable form of it (display or printout).", _manifestation_controls),
    ("21 CFR 11.70",
     "Signatures are linked to their records so that they cannot be excised, copied or "
     "otherwise transferred to falsify a record by ordinary means.", _linking),
    ("21 CFR 11.200(a)(1)",
     "A signature not based on biometrics uses at least two distinct identification "
     "components, such as an identification code and a password.", _components),
    ("21 CFR 11.200(a)(1)(i)–(ii)",
     "The first signing in a continuous session uses all components (later ones at least "
     "one known only to the signer); a signing outside such a session uses all of them.",
     _reauthentication),
    ("21 CFR 11.200(a)(2)–(3)",
     "Signatures are used only by their genuine owners, and using another's signature "
     "would need the collaboration of two or more people.",
     _outside("how accounts and passwords are administered and kept personal belongs in "
              "the organisation's electronic-signature procedure and account records.")),
)


# -- EU AI Act ------------------------------------------------------------------------------

def _logs(e: Evidence) -> Finding:
    sections = [Q(4)]
    log = e.log
    if not e.log_ok():
        return GAP, sections, (f"The prediction log does not verify: "
                               f"{_d(log.get('first_problem')) or 'no verification recorded'}.")
    if not e.chain_ok():
        return GAP, sections, f"The prediction log verifies, but {e.chain_text()}."
    fields = ", ".join(_l(e.ev(4).get("logged_fields")))
    if not log.get("checked"):
        return PARTLY, sections, ("Events are recorded automatically (audit trail and "
                                  f"prediction log, {e.chain_text()}), but no prediction has "
                                  "been logged yet, so no use of the system is shown.")
    return ANSWERED, sections, (f"Each prediction is logged by the system ({fields}); the "
                                f"log verified ({log.get('checked')} rows, "
                                f"{log.get('anchored')} anchored in the audit chain) and "
                                f"{e.chain_text()}.")


def _risk_events(e: Evidence) -> Finding:
    q2 = e.ev(2)
    versions = _l(e.ev(5).get("version_history"))
    status, why = _of([
        (bool(_l(q2.get("input_schema"))),
         f"Inputs outside the schema are refused and counted by code "
         f"({q2.get('rejected_total', 0)} refused), out-of-distribution inputs flagged "
         f"({q2.get('ood_flagged_predictions', 0)} predictions) (§1 Q2).",
         "No input schema is recorded, so no input is refused or flagged (§1 Q2)."),
        (e.monitored(), "Drift and performance are recorded by monitoring runs (§6).",
         "No monitoring run is recorded, so drift and performance changes are not (§6)."),
        (bool(versions), f"Every change of content is a new version with its own content hash "
                         f"({len(versions)} recorded, §1 Q5).", "No version history is recorded."),
    ])
    return status, [Q(2), MONITORING, Q(5)], why


def _post_market(e: Evidence) -> Finding:
    if not e.monitored():
        return GAP, [MONITORING], (str(e.monitoring.get("why") or "No monitoring run is "
                                       "recorded.") + " The logs exist (§1 Q4), but nothing "
                                   "recorded uses them for post-market monitoring.")
    health = _l(e.monitoring.get("health"))
    return ANSWERED, [MONITORING, Q(4)], (
        f"Monitoring reads the prediction log: latest run {e.monitoring.get('computed_at')}, "
        f"{len(health)} health signal(s) with their thresholds (§6).")


def _operation(e: Evidence) -> Finding:
    sections = [Q(4), Q(3)]
    fields = _l(e.ev(4).get("logged_fields"))
    wanted = [f for f in ("version_id", "created_at", "confidence", "label") if f in fields]
    if not e.log_ok():
        return GAP, sections, "The prediction log does not verify."
    review = e.review
    status, why = _of([
        (len(wanted) == 4, f"Each row records {', '.join(wanted)}.",
         "The log does not record the version, time, label and confidence of each row."),
        (bool(e.log.get("checked")), f"{e.log.get('checked')} rows logged and verified.",
         "No prediction has been logged yet."),
        (bool(review.get("predictions")),
         f"The review queue's figures are recorded: {review.get('routed_to_review', 0)} routed,"
         f" {review.get('decided', 0)} decided (§1 Q3).",
         "No prediction of this version is logged, so the review queue shows no operation."),
    ])
    return status, sections, why


def _understand(e: Evidence) -> Finding:
    status, sections, why = _card_finding(
        e, ("caveats_recommendations", "known_risks_biases", "out_of_scope"))
    if e.monitored():
        alerts = len(_l(e.monitoring.get("alerts")))
        why += (f" Monitoring records the operation and flags anomalies ({alerts} open "
                "alert(s), §6).")
        status = status if status != GAP else PARTLY
    else:
        why += " No monitoring run is recorded to detect anomalies or unexpected performance."
        status = PARTLY if status == ANSWERED else status
    return status, [CARD, MONITORING], why


AUTOMATION_BIAS = ("automation bias", "over-reliance", "overreliance", "over reliance")


def _automation_bias(e: Evidence) -> Finding:
    texts = [e.model_card] + [str(_d(f).get("text") or "") for f in e.card_fields.values()]
    named = any(word in text.lower() for text in texts for word in AUTOMATION_BIAS)
    review = e.review
    if named:
        return ANSWERED, [CARD, Q(3)], ("Rule: the model card warns of automation bias or "
                                        "over-reliance. It does.")
    if review.get("decided"):
        return PARTLY, [CARD, Q(3)], (
            f"Reviewers' decisions are recorded ({review.get('overrides', 0)} override(s) of "
            f"{review.get('decided')} decided reviews, §1 Q3), but the model card does not "
            "warn of automation bias or over-reliance (the rule: it names one of them).")
    return GAP, [CARD], ("Rule: the model card warns of automation bias or over-reliance. "
                         "It does not, and no review decision is recorded.")


def _interpret(e: Evidence) -> Finding:
    output = e.ev(2).get("output_schema")
    status, why = _of([
        (bool(output), "The output schema is recorded (§1 Q2).", "No output schema is recorded."),
        (e.threshold is not None and e.threshold > 0,
         f"Each output carries a confidence; below {e.threshold} it goes to human review "
         "(§1 Q3).", "No confidence threshold routes uncertain outputs to review."),
        (e.explained(),
         f"Explanation figures ({e.explanations.get('explainer')}) and their reliability "
         "are stated (§5).",
         "No explanation figures are stored to help interpret outputs (§5)."),
    ])
    return status, [Q(2), Q(3), EXPLANATIONS], why


def _override(e: Evidence) -> Finding:
    review = e.review
    sections = [Q(3)]
    if e.threshold is None or e.threshold <= 0:
        return GAP, sections, "The confidence threshold is 0: no output is sent to a person " \
                              "who may disregard or override it."
    if not review.get("decided"):
        return PARTLY, sections, (f"Outputs below confidence {e.threshold} go to review, but no "
                                  "review decision is recorded yet, so no override is shown.")
    return ANSWERED, sections, (
        f"Outputs below confidence {e.threshold} go to a reviewer who accepts or overrides "
        f"them: {review.get('decided')} decided, {review.get('overrides', 0)} overridden "
        "(§1 Q3).")


def _stop(e: Evidence) -> Finding:
    rollbacks = _l(e.ev(3).get("rollbacks"))
    redeploy = e.item("Redeploy runbook").get("status") == ANSWERED
    status, why = _of([
        (redeploy, "The runbook describes rolling back or redeploying (§2, §1 Q5).",
         "The runbook does not describe rolling back or redeploying (§2)."),
        (bool(rollbacks), f"{len(rollbacks)} rollback(s) of the model are recorded (§1 Q3).",
         "No rollback has been recorded."),
    ])
    if redeploy and status == PARTLY:
        status = ANSWERED  # the procedure is the requirement; its use is shown when it happens
    return status, [CHECKLIST, Q(3), Q(5)], why


def _intended_purpose(e: Evidence) -> Finding:
    versions = _l(e.ev(5).get("version_history"))
    status, sections, why = _card_finding(
        e, ("intended_use",),
        missing="The name of the provider is not recorded in Attest.",
        sections=[CARD, COVER, Q(5)],
        lead=(f"Version {e.cover.get('version_label')} is one of {len(versions)} versions "
              f"of {e.cover.get('model')}, each with its content hash (§1 Q5). "))
    return (PARTLY if status == GAP and versions else status), sections, why


def _interfaces(e: Evidence) -> Finding:
    q2 = e.ev(2)
    if not (_l(q2.get("input_schema")) and q2.get("output_schema")):
        return GAP, [Q(2)], "No complete input and output schema is recorded; the hardware, " \
                            "software and AI systems it interacts with are not recorded."
    return PARTLY, [Q(2)], (
        f"The prediction interface is recorded: an input schema of "
        f"{len(_l(q2.get('input_schema')))} features and an output schema (§1 Q2). The "
        "hardware, software and other AI systems it interacts with are not recorded in Attest.")


def _software_versions(e: Evidence) -> Finding:
    return GAP, [COVER], (
        f"The cover names the artifact format ({e.cover.get('artifact_format')}) and estimator "
        f"({e.cover.get('estimator') or 'not recorded'}); the versions of the software the "
        "model runs on, and any requirements on updating them, are not in this dossier's "
        "evidence.")


def _instructions(e: Evidence) -> Finding:
    status, sections, why = _card_finding(
        e, ("intended_use_workflow",),
        missing="Instructions for use as a document for the deployer are not recorded in "
                "Attest.")
    return status, sections, why


def _data_sheet(e: Evidence) -> Finding:
    ds = e.dataset
    recorded = [k for k in ("source", "sha256", "inclusion_criteria", "exclusion_criteria",
                            "date_start", "date_end") if ds.get(k)]
    lacking = [k for k in ("source", "sha256", "inclusion_criteria", "exclusion_criteria",
                           "date_start", "date_end") if not ds.get(k)]
    lead = (f"Training data {ds.get('name')}@{ds.get('version')}: {ds.get('rows')} rows; "
            f"recorded {', '.join(k.replace('_', ' ') for k in recorded) or 'nothing'}"
            + (f"; not recorded: {', '.join(k.replace('_', ' ') for k in lacking)}" if lacking
               else "") + " (§1 Q1). ")
    status, sections, why = _card_finding(
        e, ("training_data",), sections=[Q(1), CARD], lead=lead,
        missing="Labelling and data-cleaning procedures are not recorded fields; they are "
                "covered only as far as the card's training-data text states them.")
    if lacking and status == ANSWERED:
        status = PARTLY
    if not recorded:
        status = GAP if status == GAP else PARTLY
    elif status == GAP:
        status = PARTLY
    return status, sections, why


def _oversight_assessment(e: Evidence) -> Finding:
    status, why = _of([
        (e.threshold is not None and e.threshold > 0,
         f"Human review below confidence {e.threshold} is recorded (§1 Q3).",
         "No confidence threshold sends outputs to human review (§1 Q3)."),
        (e.explained(), "Explanation figures for interpreting outputs are stored (§5).",
         "No explanation figures are stored (§5)."),
    ])
    missing = " An assessment of which oversight measures are needed is not recorded in Attest."
    return (PARTLY if status == ANSWERED else status), [Q(3), EXPLANATIONS], why + missing


def _predetermined_changes(e: Evidence) -> Finding:
    if e.answered(5):
        return PARTLY, [Q(5)], (
            "The runbook describes retraining (§1 Q5); the pre-determined changes to the "
            "system and its performance, and how continued compliance is ensured, are not "
            "recorded in Attest.")
    return GAP, [Q(5)], (" ".join(map(str, _l(e.q(5).get("why"))[:1])) or
                         "No retraining runbook is recorded.") + \
        " No pre-determined change is recorded."


def _changes(e: Evidence) -> Finding:
    versions = _l(e.ev(5).get("version_history"))
    events = e.release_history
    status, why = _of([
        (bool(versions), f"{len(versions)} version(s), each with its content hash and "
                         "dataset (§1 Q5).", "No version history is recorded."),
        (bool(events), f"{len(events)} release event(s) of this version (§1 Q1).",
         "No release event of this version is recorded."),
    ])
    return status, [Q(5), Q(1)], why


def _post_market_plan(e: Evidence) -> Finding:
    if not e.monitored():
        return GAP, [MONITORING], "No monitoring run is recorded, and no post-market " \
                                  "monitoring plan is recorded in Attest."
    return PARTLY, [MONITORING], (
        f"Post-market performance is evaluated by monitoring runs (latest "
        f"{e.monitoring.get('computed_at')}, §6); the post-market monitoring plan (Art. 72(3)) "
        "is not recorded in Attest.")


def _performance_info(e: Evidence) -> Finding:
    q2 = e.ev(2)
    status, sections, why = _card_finding(
        e, ("quantitative_analyses", "known_risks_biases", "caveats_recommendations"),
        sections=[CARD, Q(2), Q(3)])
    extra = []
    if not _l(q2.get("input_schema")):
        extra.append("No input-data specification (schema) is recorded (§1 Q2).")
        status = _worst(status, PARTLY) if status != GAP else GAP
    else:
        extra.append(f"Input data are specified by a schema of "
                     f"{len(_l(q2.get('input_schema')))} features (§1 Q2).")
    if e.threshold is None or e.threshold <= 0:
        extra.append("No human-review threshold is recorded (§1 Q3).")
        status = PARTLY if status == ANSWERED else status
    else:
        extra.append(f"Human review below confidence {e.threshold} (§1 Q3).")
    if status == GAP and _l(q2.get("input_schema")):
        status = PARTLY
    return status, sections, why + " " + " ".join(extra)


EUAIA = (
    ("EU AI Act Art. 12(1)",
     "The high-risk system technically allows the automatic recording of events (logs) over "
     "its lifetime.", _logs),
    ("EU AI Act Art. 12(2)(a)",
     "Logging records events relevant to identifying situations that may make the system "
     "present a risk (Art. 79(1)) or amount to a substantial modification.", _risk_events),
    ("EU AI Act Art. 12(2)(b)",
     "Logging records events that facilitate post-market monitoring (Art. 72).", _post_market),
    ("EU AI Act Art. 12(2)(c)",
     "Logging records events for monitoring the system's operation by the deployer "
     "(Art. 26(5)).", _operation),
    ("EU AI Act Art. 14(4)(a)",
     "Overseers can properly understand the system's relevant capacities and limitations and "
     "monitor its operation, detecting anomalies, dysfunctions and unexpected performance.",
     _understand),
    ("EU AI Act Art. 14(4)(b)",
     "Overseers remain aware of the possible tendency to rely automatically or over-rely on "
     "the output (automation bias).", _automation_bias),
    ("EU AI Act Art. 14(4)(c)",
     "Overseers can correctly interpret the output, with the interpretation tools and "
     "methods available.", _interpret),
    ("EU AI Act Art. 14(4)(d)",
     "Overseers can decide, in any situation, not to use the system or to disregard, "
     "override or reverse its output.", _override),
    ("EU AI Act Art. 14(4)(e)",
     "Overseers can intervene in the operation or interrupt the system through a 'stop' "
     "button or a similar procedure that brings it to a halt in a safe state.", _stop),
    ("Annex IV 1(a)",
     "General description: intended purpose, provider's name, and the version reflecting its "
     "relation to previous versions.", _intended_purpose),
    ("Annex IV 1(b)",
     "How the system interacts with hardware, software or other AI systems that are not "
     "part of it.", _interfaces),
    ("Annex IV 1(c)",
     "Versions of the relevant software or firmware and any requirements on version updates.",
     _software_versions),
    ("Annex IV 1(d)",
     "All forms in which the system is placed on the market or put into service (packages, "
     "downloads, APIs).",
     _outside("the forms in which the system is placed on the market belong in the "
              "provider's technical documentation.")),
    ("Annex IV 1(e)",
     "The hardware on which the system is intended to run.",
     _outside("the intended hardware belongs in the provider's technical documentation.")),
    ("Annex IV 1(f)",
     "Where the system is a component of products: photographs or illustrations of their "
     "external features, marking and internal layout.",
     _outside("product photographs and markings belong in the technical documentation of "
              "the product the system is part of.")),
    ("Annex IV 1(g)",
     "A basic description of the user interface provided to the deployer.",
     _outside("a description of the deployer's user interface belongs in the provider's "
              "technical documentation.")),
    ("Annex IV 1(h)",
     "Instructions for use for the deployer.", _instructions),
    ("Annex IV 2(a)",
     "The methods and steps of development, including recourse to pre-trained systems or "
     "third-party tools and how they were used.",
     _card_rule(("model_details",), missing="The development steps themselves are not "
                                            "recorded in Attest.")),
    ("Annex IV 2(b)",
     "Design specifications: general logic, key design choices with rationale and "
     "assumptions, what it optimises for, expected output and quality, trade-offs.",
     _card_rule(("model_details", "metrics"),
                missing="The design rationale, assumptions and trade-offs are not recorded "
                        "fields in Attest.")),
    ("Annex IV 2(c)",
     "System architecture (how software components build on each other) and the "
     "computational resources used to develop, train, test and validate it.",
     _outside("the system architecture and compute used belong in the provider's technical "
              "documentation.")),
    ("Annex IV 2(d)",
     "Data requirements: datasheets on training methods and data sets, their provenance, "
     "scope and main characteristics, how obtained and selected, labelling and cleaning.",
     _data_sheet),
    ("Annex IV 2(e)",
     "Assessment of the human oversight measures needed (Art. 14), including technical "
     "measures that help deployers interpret outputs.", _oversight_assessment),
    ("Annex IV 2(f)",
     "Where applicable, pre-determined changes to the system and its performance, and how "
     "continued compliance is ensured.", _predetermined_changes),
    ("Annex IV 2(g)",
     "Validation and testing procedures and data, metrics of accuracy, robustness and "
     "potentially discriminatory impacts, and dated, signed test logs and reports.",
     _card_rule(("evaluation_data", "metrics", "quantitative_analyses"),
                missing="Test logs and reports dated and signed by the responsible persons "
                        "are not recorded in Attest (the sign-offs of §4 approve the version, "
                        "not test reports).")),
    ("Annex IV 2(h)",
     "The cybersecurity measures put in place.",
     _outside("the system's cybersecurity measures belong in the provider's security "
              "documentation.")),
    ("Annex IV 3",
     "Monitoring, functioning and control: capabilities and limitations in performance "
     "(including for groups), foreseeable unintended outcomes and risks, human oversight "
     "measures, input-data specifications.", _performance_info),
    ("Annex IV 4",
     "Why the performance metrics are appropriate for the system.",
     _card_rule(("metrics",))),
    ("Annex IV 5",
     "A detailed description of the risk management system (Art. 9).",
     _outside("the risk management system belongs in the provider's risk management file.")),
    ("Annex IV 6",
     "Relevant changes the provider made to the system through its lifecycle.", _changes),
    ("Annex IV 7",
     "The harmonised standards applied, or the solutions adopted to meet Chapter III "
     "Section 2 where none are.",
     _outside("the standards applied belong in the provider's technical documentation.")),
    ("Annex IV 8",
     "A copy of the EU declaration of conformity (Art. 47).",
     _outside("the EU declaration of conformity is the provider's document.")),
    ("Annex IV 9",
     "The system for evaluating performance in the post-market phase (Art. 72), including "
     "the post-market monitoring plan.", _post_market_plan),
)


# -- GMLP -------------------------------------------------------------------------------------

def _team(e: Evidence) -> Finding:
    signed = [r for r in e.signed if r.get("status") == "approve"]
    if not signed:
        return GAP, [MANIFEST], "No approving sign-off is recorded; the team's expertise is " \
                                "not recorded in Attest."
    roles = sorted({str(r.get("role")) for r in signed if r.get("role")})
    return PARTLY, [MANIFEST], (
        f"Sign-offs by {len(signed)} people in the roles {', '.join(roles)} are recorded (§4); "
        "the expertise involved across the product life cycle is not recorded in Attest.")


def _engineering(e: Evidence) -> Finding:
    if not (e.chain_ok() and e.log_ok()):
        return GAP, [Q(4)], (f"In this snapshot {e.chain_text()}; the prediction log "
                             f"{'verifies' if e.log_ok() else 'does not verify'}.")
    return PARTLY, [Q(4), COVER], (
        f"Integrity controls are verified: {e.chain_text()}, the prediction log verified, the "
        "artifact and dataset are identified by sha256 (cover). The software engineering and "
        "security practices themselves are not recorded in Attest.")


def _representative(e: Evidence) -> Finding:
    ds = e.dataset
    status, sections, why = _card_finding(
        e, ("target_population", "factors"), sections=[CARD, Q(1)],
        lead=f"Training data inclusion criteria: {ds.get('inclusion_criteria') or 'not recorded'}"
             f"; exclusion criteria: {ds.get('exclusion_criteria') or 'not recorded'} (§1 Q1). ",
        missing="No comparison of the data set with the intended patient population is "
                "recorded in Attest.")
    if status == GAP and ds.get("inclusion_criteria"):
        status = PARTLY
    return status, sections, why


def _human_ai(e: Evidence) -> Finding:
    review = e.review
    if e.threshold is None or e.threshold <= 0:
        return GAP, [Q(3)], "No output is routed to human review (threshold 0)."
    if not review.get("decided"):
        return GAP, [Q(3)], (f"Outputs below confidence {e.threshold} are routed to review, "
                             "but no review decision is recorded.")
    rate = review.get("override_rate")
    return PARTLY, [Q(3), MONITORING], (
        f"Reviewers decided {review.get('decided')} routed predictions and overrode "
        f"{review.get('overrides', 0)}" + (f" (rate {rate:.1%})" if isinstance(rate, float)
                                            else "") + " (§1 Q3); the performance of the "
        "reviewer with the model against recorded outcomes is not stated in this dossier.")


def _monitored_retraining(e: Evidence) -> Finding:
    status, why = _of([
        (e.monitored(), f"Monitoring runs are recorded (latest "
                        f"{e.monitoring.get('computed_at')}, §6).",
         "No monitoring run is recorded (§6)."),
        (e.answered(5), "The runbook describes retraining (§1 Q5).",
         " ".join(map(str, _l(e.q(5).get("why"))[:1])) or "No retraining runbook (§1 Q5)."),
    ])
    return status, [MONITORING, Q(5)], why


GMLP = (
    ("GMLP 1", "Multi-disciplinary expertise is drawn on throughout the total product life "
               "cycle.", _team),
    ("GMLP 2", "Good software engineering and security practices are implemented.",
     _engineering),
    ("GMLP 3", "Clinical study participants and data sets represent the intended patient "
               "population.", _representative),
    ("GMLP 4", "Training data sets are independent of test sets.",
     _card_rule(("training_data", "evaluation_data"),
                missing="Attest does not record a check that they do not overlap.")),
    ("GMLP 5", "Selected reference data sets are based on the best available methods.",
     _outside("how the reference standard (the labels) was established belongs in the "
              "development report.")),
    ("GMLP 6", "Model design is tailored to the available data and reflects the intended use "
               "of the device.",
     _card_rule(("model_details", "intended_use"),
                missing="How the design follows from the data and the intended use is not a "
                        "recorded field in Attest.")),
    ("GMLP 7", "Focus is placed on the performance of the human-AI team.",
     _human_ai),
    ("GMLP 8", "Testing demonstrates device performance during clinically relevant "
               "conditions.", _card_rule(("evaluation_data", "quantitative_analyses"))),
    ("GMLP 9", "Users are given clear, essential information.",
     _card_rule(("intended_use", "out_of_scope", "caveats_recommendations", "key_metrics"))),
    ("GMLP 10", "Deployed models are monitored for performance and re-training risks are "
                "managed.", _monitored_retraining),
)


# -- TRIPOD+AI -------------------------------------------------------------------------------

STUDY = "it describes the study that developed or evaluated the model and belongs in that " \
        "study's report."


def _ds_fields(keys: tuple[str, ...], *, missing: str = "") -> Callable[[Evidence], Finding]:
    def check(e: Evidence) -> Finding:
        ds = e.dataset
        parts = [(bool(ds.get(k)), f"{k.replace('_', ' ')}: {ds.get(k)}.",
                  f"{k.replace('_', ' ')} not recorded.") for k in keys]
        status, why = _of(parts)
        if missing:
            status = PARTLY if status == ANSWERED else status
            why += f" {missing}"
        return status, [Q(1)], f"Dataset {ds.get('name')}@{ds.get('version')}: {why}"
    return check


def _ethics(e: Evidence) -> Finding:
    irb = [r for r in e.signoffs if r.get("meaning") == "irb_approval"]
    approved = [r for r in irb if r.get("status") == "approve" and r.get("bound_to_current_content")]
    protocol = e.dataset.get("protocol_number")
    sections = [MANIFEST, Q(1)]
    if not approved:
        state = irb[0].get("status") if irb else "not required by the release policy"
        return GAP, sections, (f"The IRB's approval of this version is not recorded (irb_approval:"
                               f" {state}). Protocol: {protocol or 'not recorded'}.")
    r = approved[0]
    return PARTLY, sections, (
        f"The IRB's approval is recorded: {r.get('printed_name')} ({r.get('role')}), "
        f"{r.get('signed_at')} (§4); protocol {protocol or 'not recorded'} (§1 Q1). The "
        "participants' informed consent, or the waiver of it, is not recorded in Attest.")


def _outcome(e: Evidence) -> Finding:
    output = _d(e.ev(2).get("output_schema"))
    if not output:
        return GAP, [Q(2)], "No output schema is recorded; the outcome's definition is not " \
                            "recorded in Attest."
    labels = _l(output.get("labels"))
    return PARTLY, [Q(2)], (
        "The predicted classes are recorded in the output schema"
        + (f" ({', '.join(map(str, labels))})" if labels else "") + " (§1 Q2); the outcome's "
        "definition, time horizon and how it was assessed are not recorded in Attest.")


def _predictors(e: Evidence) -> Finding:
    schema = _l(e.ev(2).get("input_schema"))
    if not schema:
        return GAP, [Q(2)], "No input schema is recorded."
    return PARTLY, [Q(2)], (
        f"All {len(schema)} predictors are defined by name, type and range or categories "
        "(§1 Q2); how and when they were measured is not recorded in Attest.")


def _sample(e: Evidence) -> Finding:
    rows = e.dataset.get("rows")
    if not rows:
        return GAP, [Q(1)], "The training data's size is not recorded."
    return PARTLY, [Q(1)], (f"The training data has {rows} rows (§1 Q1); how the size was "
                            "arrived at, and that it suffices, is not recorded in Attest.")


def _missing(e: Evidence) -> Finding:
    q2 = e.ev(2)
    schema = _l(q2.get("input_schema"))
    if not schema:
        return GAP, [Q(2)], "No input schema is recorded, so no rule for missing values is."
    required = sum(1 for f in map(_d, schema) if f.get("required", True))
    return PARTLY, [Q(2), Q(4)], (
        f"In use, {required} of {len(schema)} features are required and inputs missing them "
        f"are refused by code; the policy for out-of-distribution input is "
        f"{q2.get('ood_policy')} (§1 Q2). How missing data were handled when the model was "
        "developed is not recorded in Attest.")


def _model_type(e: Evidence) -> Finding:
    estimator = e.cover.get("estimator")
    status, sections, why = _card_finding(
        e, ("model_details",), sections=[COVER, CARD],
        lead=f"Estimator: {estimator or 'not recorded'} (cover). ",
        missing="The model-building steps, hyperparameter tuning and internal validation are "
                "not recorded fields in Attest.")
    if status == GAP and estimator:
        status = PARTLY
    return status, sections, why


def _calculated(e: Evidence) -> Finding:
    sha = e.cover.get("artifact_sha256")
    if not sha:
        return GAP, [COVER], "The artifact that computes the predictions is not identified."
    return ANSWERED, [COVER], (
        f"Predictions are computed from the registered artifact ({e.cover.get('artifact_format')}"
        f", sha256 {sha}), the object named on the cover.")


def _output(e: Evidence) -> Finding:
    output = e.ev(2).get("output_schema")
    status, why = _of([
        (bool(output), "The output schema is recorded (§1 Q2).", "No output schema is recorded."),
        (e.threshold is not None and e.threshold > 0,
         f"Outputs below confidence {e.threshold} are routed to review (§1 Q3).",
         "No confidence threshold is recorded."),
    ])
    return ((PARTLY if status == ANSWERED else status), [Q(2), Q(3)],
            why + " How the thresholds were identified is not recorded in Attest.")


def _drift_compared(what: str) -> Callable[[Evidence], Finding]:
    def check(e: Evidence) -> Finding:
        if not e.monitored():
            return GAP, [MONITORING], f"No monitoring run compares live inputs with the " \
                                      f"training data; {what} not recorded in Attest."
        return PARTLY, [MONITORING], (
            f"Monitoring compares the live inputs' distributions with the training data "
            f"(drift, run {e.monitoring.get('computed_at')}, §6); {what} not recorded in Attest.")
    return check


def _characteristics(e: Evidence) -> Finding:
    ds = e.dataset
    if not ds.get("rows"):
        return GAP, [Q(1)], "The training data's size is not recorded."
    return PARTLY, [Q(1)], (
        f"Training data: {ds.get('rows')} rows, {ds.get('date_start') or '?'} – "
        f"{ds.get('date_end') or '?'} (§1 Q1); the participants' characteristics, outcome "
        "events and missing data per source are not recorded in Attest.")


def _specification(e: Evidence) -> Finding:
    sha = e.cover.get("artifact_sha256")
    if not sha:
        return GAP, [COVER], "The model's artifact is not identified."
    return PARTLY, [COVER, Q(2)], (
        f"The full model is the registered artifact ({e.cover.get('artifact_format')}, "
        f"sha256 {sha}) with its input and output schemas (§1 Q2); restrictions on access or "
        "reuse are not recorded in Attest.")


def _usability_input(e: Evidence) -> Finding:
    q2 = e.q(2)
    if q2.get("status") != ANSWERED:
        return GAP, [Q(2)], " ".join(map(str, _l(q2.get("why"))[:1])) or \
            "How poor or missing input is handled is not recorded."
    return ANSWERED, [Q(2)], " ".join(map(str, _l(q2.get("why"))[:3]))


def _usability_users(e: Evidence) -> Finding:
    status, sections, why = _card_finding(
        e, ("intended_use_workflow",), sections=[CARD, Q(3)],
        missing="The level of expertise required of users is stated only as far as the card "
                "states it.")
    if e.threshold is not None and e.threshold > 0:
        why += f" Users review outputs below confidence {e.threshold} (§1 Q3)."
        status = PARTLY if status == GAP else status
    return status, sections, why


TRIPOD = (
    ("TRIPOD+AI 1", "Title identifies a study developing or evaluating a prediction model, "
                    "the target population and the outcome.", _outside(STUDY)),
    ("TRIPOD+AI 2", "Abstract following the TRIPOD+AI for Abstracts checklist.",
     _outside(STUDY)),
    ("TRIPOD+AI 3a", "Healthcare context (diagnostic or prognostic), rationale, references to "
                     "existing models.",
     _card_rule(("intended_use",), missing="References to existing models belong in the "
                                           "study report.")),
    ("TRIPOD+AI 3b", "Target population and intended purpose in the care pathway, including "
                     "intended users.",
     _card_rule(("target_population", "intended_use_workflow"))),
    ("TRIPOD+AI 3c", "Known health inequalities between sociodemographic groups.",
     _card_rule(("known_risks_biases", "factors"),
                missing="Whether they describe health inequalities between sociodemographic "
                        "groups is not checked by Attest.")),
    ("TRIPOD+AI 4", "Study objectives: development, validation or both.", _outside(STUDY)),
    ("TRIPOD+AI 5a", "Data sources for development and evaluation, rationale, "
                     "representativeness.",
     _ds_fields(("source",), missing="The rationale for the data and its representativeness "
                                     "are not recorded in Attest.")),
    ("TRIPOD+AI 5b", "Dates of the participant data (start and end of accrual, end of "
                     "follow-up).", _ds_fields(("date_start", "date_end"))),
    ("TRIPOD+AI 6a", "Study setting, with the number and location of centres.",
     _ds_fields(("source",), missing="The setting and the number and location of centres "
                                     "are not recorded fields in Attest.")),
    ("TRIPOD+AI 6b", "Eligibility criteria for participants.",
     _ds_fields(("inclusion_criteria", "exclusion_criteria"))),
    ("TRIPOD+AI 6c", "Treatments received and how they were handled.",
     _outside("treatments received by the participants belong in the study report.")),
    ("TRIPOD+AI 7", "Data pre-processing and quality checking, and whether similar across "
                    "sociodemographic groups.",
     _outside("the data preparation of the study belongs in its report.")),
    ("TRIPOD+AI 8a", "Outcome definition, time horizon, how and when assessed, rationale, "
                     "consistency across groups.", _outcome),
    ("TRIPOD+AI 8b", "Qualifications and demographics of outcome assessors, where assessment "
                     "is subjective.", _outside(STUDY)),
    ("TRIPOD+AI 8c", "Actions to blind assessment of the outcome.", _outside(STUDY)),
    ("TRIPOD+AI 9a", "Choice of initial predictors and any pre-selection.", _outside(STUDY)),
    ("TRIPOD+AI 9b", "Definition of all predictors, how and when measured (and blinding).",
     _predictors),
    ("TRIPOD+AI 9c", "Qualifications and demographics of predictor assessors, where "
                     "measurement is subjective.", _outside(STUDY)),
    ("TRIPOD+AI 10", "How the study size was arrived at, and that it was sufficient.", _sample),
    ("TRIPOD+AI 11", "How missing data were handled, and why any data were omitted.",
     _missing),
    ("TRIPOD+AI 12a", "How the data were used in the analysis, including any partitioning.",
     _card_rule(("evaluation_data", "training_data"),
                missing="How the data were partitioned is stated only as far as the card "
                        "states it.")),
    ("TRIPOD+AI 12b", "How predictors were handled (functional form, rescaling, "
                      "transformation, standardisation).", _outside(STUDY)),
    ("TRIPOD+AI 12c", "Type of model, rationale, all building steps including hyperparameter "
                      "tuning, internal validation.", _model_type),
    ("TRIPOD+AI 12d", "How heterogeneity across clusters (e.g. hospitals) was handled and "
                      "quantified.", _outside(STUDY)),
    ("TRIPOD+AI 12e", "All measures and plots used to evaluate performance, with rationale.",
     _card_rule(("metrics",))),
    ("TRIPOD+AI 12f", "Any model updating (e.g. recalibration) arising from the evaluation.",
     _outside("updating arising from an evaluation belongs in that evaluation's report; "
              "the versions of the model are in §1 Q5.")),
    ("TRIPOD+AI 12g", "For evaluation, how the predictions were calculated (formula, code, "
                      "object, API).", _calculated),
    ("TRIPOD+AI 13", "Any class-imbalance methods, why, and any recalibration after them.",
     _outside(STUDY)),
    ("TRIPOD+AI 14", "Approaches used to address model fairness, and their rationale.",
     _card_rule(("ethical_considerations",),
                missing="Whether they address fairness is not checked by Attest.")),
    ("TRIPOD+AI 15", "Model output (probabilities, classes), and how any thresholds were "
                     "identified.", _output),
    ("TRIPOD+AI 16", "Differences between development and evaluation data in setting, "
                     "eligibility, outcome and predictors.",
     _drift_compared("differences in setting, eligibility and outcome are")),
    ("TRIPOD+AI 17", "The ethics committee that approved the study, and informed consent or "
                     "its waiver.", _ethics),
    ("TRIPOD+AI 18a", "Funding source and the funders' role.", _outside(STUDY)),
    ("TRIPOD+AI 18b", "Conflicts of interest and financial disclosures.", _outside(STUDY)),
    ("TRIPOD+AI 18c", "Where the protocol can be accessed, or that none was prepared.",
     _ds_fields(("protocol_number",), missing="Where the protocol can be accessed is not "
                                              "recorded in Attest.")),
    ("TRIPOD+AI 18d", "Study registration (register and number), or that it was not "
                      "registered.", _outside(STUDY)),
    ("TRIPOD+AI 18e", "Availability of the study data.", _outside(STUDY)),
    ("TRIPOD+AI 18f", "Availability of the analytical code.", _outside(STUDY)),
    ("TRIPOD+AI 19", "Patient and public involvement, or that there was none.",
     _outside(STUDY)),
    ("TRIPOD+AI 20a", "Flow of participants, with numbers with and without the outcome and "
                      "follow-up.", _outside(STUDY)),
    ("TRIPOD+AI 20b", "Characteristics of participants overall and per source, with "
                      "outcome events and missing data.", _characteristics),
    ("TRIPOD+AI 20c", "For evaluation, distributions of important predictors compared with "
                      "the development data.",
     _drift_compared("the comparison of demographics and outcome is")),
    ("TRIPOD+AI 21", "Number of participants and outcome events in each analysis.",
     _sample),
    ("TRIPOD+AI 22", "The full model (formula, code, object, API), with any restrictions on "
                     "access or reuse.", _specification),
    ("TRIPOD+AI 23a", "Performance estimates with confidence intervals, including key "
                      "subgroups.",
     _card_rule(("quantitative_analyses", "key_metrics"),
                missing="Whether they carry confidence intervals is not checked by Attest.")),
    ("TRIPOD+AI 23b", "Heterogeneity of performance across clusters, if examined.",
     _outside(STUDY)),
    ("TRIPOD+AI 24", "Results of any model updating, with the updated model's performance.",
     _outside("results of updating belong in the evaluation report; the versions of the "
              "model are in §1 Q5.")),
    ("TRIPOD+AI 25", "Overall interpretation, including fairness, in context.",
     _outside(STUDY)),
    ("TRIPOD+AI 26", "Limitations (e.g. non-representative sample, overfitting, missing data) "
                     "and their effects.",
     _card_rule(("caveats_recommendations",),
                missing="The limitations of the study itself belong in its report.")),
    ("TRIPOD+AI 27a", "How poor-quality or unavailable input data should be assessed and "
                      "handled in use.", _usability_input),
    ("TRIPOD+AI 27b", "Whether users interact with input handling or use of the model, and "
                      "the expertise required.", _usability_users),
    ("TRIPOD+AI 27c", "Next steps for research on applicability and generalisability.",
     _outside(STUDY)),
)

REQUIREMENTS: tuple[Requirement, ...] = tuple(
    Requirement(key, ref, text, check)
    for key, rows in (("cfr11", CFR11), ("euaia", EUAIA), ("gmlp", GMLP), ("tripod", TRIPOD))
    for ref, text, check in rows)


def _counts(rows: list[dict]) -> dict[str, int]:
    return {status: sum(1 for r in rows if r["status"] == status) for status in STATUSES}


def crossref(snapshot: Any) -> dict:
    """The cross-reference of one evidence snapshot: per framework, each requirement with
    its status, the sections holding the evidence and why, and the counts."""
    evidence = Evidence(snapshot)
    frameworks = []
    for framework in FRAMEWORKS:
        rows = []
        for req in (r for r in REQUIREMENTS if r.framework == framework.key):
            status, sections, why = req.check(evidence)
            rows.append({"ref": req.ref, "requirement": req.requirement, "status": status,
                         "sections": list(sections), "why": why})
        frameworks.append({"key": framework.key, "title": framework.title,
                           "texts": framework.texts, "scope": framework.scope,
                           "counts": _counts(rows), "rows": rows})
    every = [r for f in frameworks for r in f["rows"]]
    return {"format": FORMAT, "frameworks": frameworks, "counts": _counts(every)}


def crossref_summary(snapshot: Any) -> list[dict]:
    """The counts per framework of a stored snapshot's cross-reference (empty for a
    dossier made before the appendix existed): for pages, recomputing nothing."""
    stored = _d(_d(snapshot).get("crossref"))
    return [{"key": f.get("key"), "title": f.get("title"), "counts": _d(f.get("counts"))}
            for f in map(_d, _l(stored.get("frameworks")))]
