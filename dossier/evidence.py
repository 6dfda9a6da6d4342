"""The evidence a dossier states, read at one instant into plain JSON.

Every sentence of the PDF comes from this snapshot, and every value in the snapshot
comes from a recorded row: a version field, a signature, an audit event, the prediction
log, a monitoring run, stored explanation figures. Where evidence is missing the item's
status is ``gap`` and ``why`` says which record is missing; nothing is filled in.

The reads run in one transaction; on PostgreSQL it is REPEATABLE READ, so every query
sees the same snapshot of the database. The audit chain's head is read first and the
trail's queries stop at it, so events appended while the snapshot is taken (on any
backend) are not half in it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Sum

from audits.chain import chain_head, verify_chain
from audits.models import Action, AuditEvent
from audits.reconcile import reconcile
from explain.models import Units
from explain.present import importance_chart, reliability_chart, reliability_rows
from explain.selectors import version_explanation_latest
from inference.log import ROW_FIELDS, ROW_FIELDS_WHEN_SET, verify_prediction_log
from inference.models import Prediction, RejectionCount
from inference.selectors import review_stats
from monitoring import charts
from monitoring.evaluation import runbook_has_retraining
from monitoring.selectors import live_calibration, monitoring_evidence
from registry.models import ModelVersion, SignoffDecision, VersionState
from registry.selectors import production_at, signature_manifest

from .card import model_card_fields, training_data_section
from .crossref import crossref

ANSWERED = "answered"
GAP = "gap"
FORMAT = "attest-dossier-evidence/1"
GENERATOR = "Attest compliance dossier"

RELEASE_ACTIONS = (Action.VERSION_SUBMITTED, Action.SIGNOFF_RECORDED, Action.VERSION_APPROVED,
                   Action.VERSION_REJECTED, Action.VERSION_PROMOTED, Action.VERSION_SUPERSEDED,
                   Action.VERSION_ROLLED_BACK, Action.VERSION_RETIRED)
ENTERED_PRODUCTION = (Action.VERSION_PROMOTED, Action.VERSION_ROLLED_BACK)
# The columns of every prediction-log row: those hashed into the row (inference.log),
# the raw input (kept for the retention period) and the two hashes.
LOGGED_FIELDS = (*ROW_FIELDS, *ROW_FIELDS_WHEN_SET, "input", "row_hash", "chain_hash")
# The global importance figures the dossier draws (the rest are in the stored figures).
TOP_FEATURES = 15
REDEPLOY = re.compile(r"roll ?back|redeploy|re-deploy", re.IGNORECASE)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _event(e: AuditEvent) -> dict:
    return {"seq": e.seq, "time": e.time.isoformat(), "action": e.action,
            "action_text": Action(e.action).label if e.action in Action.values else e.action,
            "actor": e.actor_username, "actor_name": e.actor_name,
            "version": e.version_label, "reason": e.reason, "before": e.before,
            "after": e.after, "details": e.details, "hash": e.hash}


def _item(status: str, evidence: dict, why: str | list[str]) -> dict:
    why = why if isinstance(why, list) else [why]
    return {"status": status, "evidence": evidence, "why": why}


def evidence_snapshot(*, version: ModelVersion, at: datetime,
                      generated_by: dict | None = None) -> dict:
    """Everything the dossier states about ``version``, read in one transaction.

    ``at`` is the evidence instant printed on the cover (the caller takes it just before);
    ``generated_by`` names who asked ({username, name}).

    The prediction-log and audit-chain verifications walk the whole log and chain: on a
    large installation they dominate the time (bench/dossier.py; docs/performance.md).
    """
    # SET TRANSACTION must be the transaction's first statement: only when this atomic
    # block opens the transaction (the build job's case). Called inside a caller's
    # transaction (a test's, a shell's) the reads share that transaction's isolation.
    opens = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and opens:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _read(ModelVersion.objects.select_related("model", "dataset").get(pk=version.pk),
                     at, generated_by or {})


def _read(version: ModelVersion, at: datetime, generated_by: dict) -> dict:
    model = version.model
    dataset = version.dataset
    head_seq, head_hash = chain_head()
    trail = AuditEvent.objects.filter(seq__lte=head_seq)
    checkpoint = (trail.filter(action=Action.AUDIT_CHECKPOINT).order_by("-seq")
                  .values_list("details", "time").first())
    cover = {
        "model": model.name, "model_description": model.description,
        "version": version.number, "version_label": version.label, "state": version.state,
        "state_text": version.get_state_display(), "content_hash": version.content_hash,
        "artifact_sha256": version.artifact_sha256, "artifact_format": version.artifact_format,
        "estimator": version.estimator,
        "dataset": f"{dataset.name}@{dataset.version}", "dataset_sha256": dataset.sha256,
        "evidence_at": at.isoformat(), "generator": GENERATOR,
        "generated_by": generated_by,
        "chain_head_seq": head_seq, "chain_head_hash": head_hash,
        "checkpoint": ({**checkpoint[0], "time": checkpoint[1].isoformat()}
                       if checkpoint else None),
    }
    manifest = signature_manifest(version=version)
    questions = [
        _q1(version, trail, manifest, at),
        _q2(version),
        _q3(version, trail),
        _q4(version, trail, head_seq),
        _q5(version),
    ]
    checklist = _checklist(version, questions, manifest)
    snapshot = {"format": FORMAT, "cover": cover, "questions": questions,
            "checklist": checklist, "signoffs": manifest,
            "model_card": version.model_card, "model_card_fields": model_card_fields(version),
            "runbook": version.runbook,
            "monitoring": _monitoring(version), "explanations": _explanations(version)}
    # The appendix is a function of the finished snapshot only (no further reads).
    snapshot["crossref"] = crossref(snapshot)
    return snapshot


# -- the five questions -------------------------------------------------------------------

def _q1(version: ModelVersion, trail, manifest: list[dict], at: datetime) -> dict:
    dataset = version.dataset
    history = [_event(e) for e in trail.filter(version_id=version.pk,
                                               action__in=RELEASE_ACTIONS).order_by("seq")]
    entered = [e for e in history if e["action"] in ENTERED_PRODUCTION
               and (e["after"] or {}).get("state") == VersionState.PRODUCTION]
    now_in_production = production_at(model=version.model, when=at)
    provenance = {"name": dataset.name, "version": dataset.version, "sha256": dataset.sha256,
                  "rows": dataset.row_count, "source": dataset.source,
                  "inclusion_criteria": dataset.inclusion_criteria,
                  "exclusion_criteria": dataset.exclusion_criteria,
                  "date_start": _iso(dataset.date_start), "date_end": _iso(dataset.date_end),
                  "protocol_number": dataset.protocol_number,
                  "deidentification": dataset.deidentification}
    why, gaps = [], []
    if entered:
        why.append(f"{version.label} entered production {len(entered)} time(s), first at "
                   f"{entered[0]['time']} (audit event {entered[0]['seq']}).")
    else:
        gaps.append(f"{version.label} was never in production: no promote or rollback event "
                    "puts it there.")
    required = [r for r in manifest if r["required"]]
    if not required:
        gaps.append("The version's frozen release policy requires no sign-off.")
    for row in required:
        if row["status"] != SignoffDecision.APPROVE:
            gaps.append(f"Required sign-off {row['meaning']} is "
                        f"{'rejected' if row['status'] == 'reject' else 'missing'}.")
        elif not row["bound_to_current_content"]:
            gaps.append(f"Sign-off {row['meaning']} covers content hash "
                        f"{row['content_hash']}, not the version's {version.content_hash}.")
    approved = [r["meaning"] for r in required if r["status"] == SignoffDecision.APPROVE
                and r["bound_to_current_content"]]
    if approved:
        why.append(f"Approved sign-offs bound to content hash {version.content_hash}: "
                   f"{', '.join(approved)}.")
    missing = [k for k in ("source", "sha256") if not provenance[k]]
    if missing:
        gaps.append(f"The training dataset {dataset.name}@{dataset.version} has no recorded "
                    f"{' or '.join(missing)}.")
    else:
        why.append(f"Trained on {dataset.name}@{dataset.version} (sha256 {dataset.sha256}, "
                   f"{dataset.row_count} rows), source: {dataset.source}.")
    production = {"version": now_in_production.get("version"),
                  "since": now_in_production.get("since"),
                  "via": now_in_production.get("via")}
    return {"number": 1, "title": "What model is in production, and which training-data "
                                  "version was it trained on?",
            "status": GAP if gaps else ANSWERED, "why": gaps + why,
            "evidence": {"production_at_evidence_instant": production,
                         "entered_production": len(entered), "dataset": provenance,
                         "release_history": history}}


def _q2(version: ModelVersion) -> dict:
    rejected = _rejections(version)
    ood: Counter[str] = Counter()
    flagged = 0
    # The flags are kept on every row (values are never in them once redacted): one
    # pass over the version's log. Slow on millions of rows: a counter table is the fix.
    for flags in Prediction.objects.filter(version=version).exclude(ood=[]).values_list(
            "ood", flat=True).iterator(chunk_size=5000):
        if flags:
            flagged += 1
            for flag in flags:
                ood[flag.get("code", "unknown")] += 1
    schema = [{"name": f.get("name"), "type": f.get("type"), "required": f.get("required", True),
               "range": [f.get("min"), f.get("max")] if "min" in f or "max" in f else None,
               "categories": f.get("categories")} for f in version.input_schema]
    why, gaps = [], []
    if not schema:
        gaps.append("The version records no input schema.")
    else:
        why.append(f"The input schema names {len(schema)} features; inputs that do not match "
                   "it are refused with a code.")
    why.append(f"Out-of-distribution policy: {version.get_ood_policy_display().lower()} "
               f"({version.ood_policy}).")
    total_rejected = sum(r["count"] for r in rejected)
    why.append(f"{total_rejected} inputs were refused for this version"
               + (": " + ", ".join(f"{r['code']} {r['count']}" for r in rejected)
                  if rejected else "") + ".")
    why.append(f"{flagged} logged predictions carried out-of-distribution flags"
               + (": " + ", ".join(f"{code} {n}" for code, n in sorted(ood.items()))
                  if ood else "") + ".")
    return {"number": 2, "title": "What does the model do with malformed, missing or "
                                  "out-of-distribution input?",
            "status": GAP if gaps else ANSWERED, "why": gaps + why,
            "evidence": {"input_schema": schema, "output_schema": version.output_schema,
                         "ood_policy": version.ood_policy, "rejections": rejected,
                         "rejected_total": total_rejected, "ood_flagged_predictions": flagged,
                         "ood_flags_by_code": dict(sorted(ood.items()))}}


def _rejections(version: ModelVersion) -> list[dict]:
    rows = (RejectionCount.objects.filter(version=version).values("code")
            .annotate(total=Sum("count")).order_by("code"))
    return [{"code": r["code"], "count": int(r["total"])} for r in rows]


def _q3(version: ModelVersion, trail) -> dict:
    stats = review_stats(version=version)
    stats.pop("oldest_open_age_seconds", None)  # relative to "now": not evidence
    rollbacks = [_event(e) for e in trail.filter(model_id=version.model_id,
                                                 action=Action.VERSION_ROLLED_BACK)
                 .order_by("seq")]
    threshold = version.confidence_threshold
    why, gaps = [], []
    if threshold is None or threshold <= 0:
        gaps.append("The confidence threshold is 0: no prediction is routed to human review "
                    "for low confidence.")
    else:
        why.append(f"Predictions with confidence below {threshold:g} are routed to human "
                   "review (the threshold is frozen in the content hash).")
    why.append(f"{stats['routed_to_review']} of {stats['predictions']} logged predictions were "
               f"routed to review; {stats['decided']} decided, {stats['open']} pending.")
    if stats["decided"]:
        directions = "; ".join(f"{said} → {decided}: {n}"
                               for said, to in sorted(stats["direction"].items())
                               for decided, n in sorted(to.items()))
        why.append(f"Reviewers overrode {stats['overrides']} of {stats['decided']} decided "
                   f"reviews (override rate {stats['override_rate']:.1%})"
                   + (f"; model said → reviewer decided: {directions}" if directions else "")
                   + ".")
    why.append(f"{len(rollbacks)} rollback(s) of {version.model.name} are recorded"
               + (": " + "; ".join(f"to {e['version']} at {e['time']} ({e['reason']})"
                                   for e in rollbacks) if rollbacks else "") + ".")
    return {"number": 3, "title": "When the model is wrong, what is the recovery path?",
            "status": GAP if gaps else ANSWERED, "why": gaps + why,
            "evidence": {"confidence_threshold": threshold, "review": stats,
                         "rollbacks": rollbacks}}


def _q4(version: ModelVersion, trail, head_seq: int) -> dict:
    model = version.model
    purges = [_event(e) for e in trail.filter(model_id=model.pk, action__in=[
        Action.PREDICTION_INPUTS_PURGED, Action.BATCH_FILES_PURGED]).order_by("seq")]
    chain = verify_chain(upto_seq=head_seq)
    log_verdict = verify_prediction_log()
    reconciled = reconcile(model_ids=[model.pk])
    why, gaps = [], []
    why.append(f"Each prediction is logged with: {', '.join(LOGGED_FIELDS)}.")
    why.append(f"Raw inputs are kept {model.retention_days} days, then purged; "
               f"{len(purges)} purge event(s) recorded.")
    if chain.ok:
        why.append(f"Audit chain verified: {chain.checked} events, head {chain.head_seq} "
                   f"{chain.head_hash}.")
    else:
        gaps.append(f"The audit chain does not verify: first broken link at seq "
                    f"{chain.first_broken.seq if chain.first_broken else '?'} "
                    f"({chain.first_broken.problem if chain.first_broken else ''}).")
    if log_verdict.ok:
        why.append(f"Prediction log verified: {log_verdict.checked} rows, "
                   f"{log_verdict.anchored} anchored in the audit chain, "
                   f"{log_verdict.unanchored} not yet.")
    else:
        gaps.append(f"The prediction log does not verify: {log_verdict.first_problem}.")
    if log_verdict.overdue:
        gaps.append(f"{log_verdict.unanchored_overdue} prediction-log rows are older than the "
                    "anchor window and not anchored in the audit chain.")
    if reconciled.ok:
        why.append(f"Reconciliation: {reconciled.summary()}, none disagree.")
    else:
        gaps.append(f"Reconciliation found {len(reconciled.findings)} row(s) that disagree "
                    f"with the trail: {'; '.join(f.line() for f in reconciled.findings[:5])}.")
    return {"number": 4, "title": "How are predictions logged, and for how long?",
            "status": GAP if gaps else ANSWERED, "why": gaps + why,
            "evidence": {"logged_fields": list(LOGGED_FIELDS),
                         "retention_days": model.retention_days, "purges": purges,
                         "audit_chain": chain.as_dict(),
                         "prediction_log": log_verdict.as_dict(),
                         "reconciliation": reconciled.as_dict(limit=20)}}


def _q5(version: ModelVersion) -> dict:
    runbook = version.runbook or ""
    history = [{"version": v.label, "state": v.state, "content_hash": v.content_hash,
                "created_at": _iso(v.created_at), "submitted_at": _iso(v.submitted_at),
                "dataset": f"{v.dataset.name}@{v.dataset.version}"}
               for v in ModelVersion.objects.filter(model_id=version.model_id)
               .select_related("dataset").order_by("number")]
    why, gaps = [], []
    if not runbook.strip():
        gaps.append("The version has no runbook.")
    elif not runbook_has_retraining(runbook):
        gaps.append("The runbook does not describe retraining (the rule: it names "
                    "\"retrain\").")
    else:
        why.append("The runbook describes retraining (it names \"retrain\"); its text "
                   "follows.")
    why.append(f"{version.model.name} has {len(history)} version(s).")
    return {"number": 5, "title": "What is the retraining procedure?",
            "status": GAP if gaps else ANSWERED, "why": gaps + why,
            "evidence": {"runbook": runbook, "has_retraining": runbook_has_retraining(runbook),
                         "version_history": history}}


# -- the deployment checklist (SPEC's nine items) -----------------------------------------

def _checklist(version: ModelVersion, questions: list[dict], manifest: list[dict]) -> list[dict]:
    q = {x["number"]: x for x in questions}
    card = version.model_card or ""
    dataset = version.dataset
    runbook = version.runbook or ""
    log = q[4]["evidence"]["prediction_log"]
    items = []

    names_dataset = dataset.name.lower() in card.lower()
    cohort_heading = training_data_section(card)  # the headings dossier.card reads
    items.append(("Model card describes training cohort",
                  ANSWERED if names_dataset or cohort_heading else GAP,
                  "Rule: the model card names the training dataset or has a training-data "
                  "section with text (e.g. “Training data”, “Training cohort”). "
                  + (f"It names {dataset.name}." if names_dataset else
                     f"It does not name {dataset.name}.")
                  + (f" It has such a section (“{cohort_heading}”)." if cohort_heading
                     else " It has no such section.")))

    per_row = "version_id" in LOGGED_FIELDS
    items.append(("Version id logged with every prediction",
                  ANSWERED if per_row and log["ok"] else GAP,
                  f"version_id is a column of every logged row; the prediction log "
                  f"{'verified' if log['ok'] else 'does not verify'} ({log['checked']} rows)."))

    schemas = bool(version.input_schema) and bool(version.output_schema)
    rejected = q[2]["evidence"]["rejected_total"]
    items.append(("Explicit input/output schemas with structured errors",
                  ANSWERED if schemas else GAP,
                  f"Input schema: {len(version.input_schema)} features; output schema: "
                  f"{'recorded' if version.output_schema else 'missing'}. {rejected} inputs "
                  "of this version were refused with an error code."))

    threshold = version.confidence_threshold
    items.append(("Documented confidence threshold",
                  ANSWERED if threshold is not None and threshold > 0 else GAP,
                  f"The version records confidence threshold {threshold:g}, frozen in its "
                  "content hash." if threshold else "The version's threshold is 0."))

    wanted = ("input_sha256", "label", "confidence", "version_id", "created_at")
    has_all = all(f in LOGGED_FIELDS for f in wanted)
    items.append(("Predictions logged with input hash, output, confidence, version and time",
                  ANSWERED if has_all and log["ok"] else GAP,
                  f"Logged columns include {', '.join(wanted)}; the prediction log "
                  f"{'verified' if log['ok'] else 'does not verify'}."))

    redeploy = bool(REDEPLOY.search(runbook))
    items.append(("Redeploy runbook", ANSWERED if redeploy else GAP,
                  "Rule: the runbook describes rolling back or redeploying. "
                  + ("It does." if redeploy else
                     "It does not." if runbook.strip() else "There is no runbook.")))

    items.append(("Retraining procedure", q[5]["status"], " ".join(q[5]["why"][:1])))

    required = [r for r in manifest if r["required"]]
    signed = [r for r in required if r["status"] == SignoffDecision.APPROVE
              and r["bound_to_current_content"]]
    unsigned = [r["meaning"] for r in required if r not in signed]
    items.append(("Institutional sign-off",
                  ANSWERED if required and not unsigned else GAP,
                  "Rule: every sign-off the frozen policy requires is approved and bound to the "
                  "version's content hash. " + (
                      "The policy requires none." if not required else
                      f"Not approved: {', '.join(unsigned)}." if unsigned else
                      f"Approved: {', '.join(r['meaning'] for r in signed)}.")))

    gaps = [str(x["number"]) for x in questions if x["status"] != ANSWERED]
    items.append(("The five questions answered", GAP if gaps else ANSWERED,
                  f"Questions with a gap: {', '.join(gaps)}." if gaps else
                  "All five questions are answered from recorded evidence."))
    return [{"item": name, "status": status, "why": why} for name, status, why in items]


# -- monitoring and explanations --------------------------------------------------------------

def _monitoring(version: ModelVersion) -> dict:
    evidence = monitoring_evidence(version=version)
    if evidence is None:
        return {"status": GAP, "why": f"{version.label} has never been monitored: no "
                                      "monitoring run is recorded."}
    health = [{"signal": r.get("signal"), "label": r.get("label"),
               "value_text": r.get("value_text"), "status": r.get("status"),
               "status_text": r.get("status_text"), "thresholds": r.get("thresholds"),
               "window": r.get("window"), "evidence": r.get("evidence")}
              for r in evidence["health"]]
    charts_, gaps = _monitoring_charts(evidence)
    return {"status": ANSWERED, "computed_at": evidence["computed_at"],
            "aggregated_through": evidence["aggregated_through"], "health": health,
            "retraining": evidence["retraining"], "alerts": evidence["alerts"],
            "performance": _performance(evidence), "outcomes": _outcomes(evidence),
            "charts": charts_, "gaps": gaps}


def _chart(key: str, chart, caption: str, **extra) -> dict:
    return {"key": key, "title": chart.title, "caption": caption, "summary": chart.summary,
            "svg": str(chart.svg), **extra}


def _monitoring_charts(evidence: dict) -> tuple[list[dict], list[str]]:
    """The monitoring page's charts (monitoring.charts, one implementation), kept in the
    snapshot as SVG text so a render reads no clock or counter, and the gaps where a
    chart has no figures to draw.

    1. Over time, from the run's day figures (the last 30 days since promotion): live
       predictions and outcomes received, drift PSI of the most drifted features, review,
       override and OOD rates, estimated and observed accuracy.
    2. The 30-day histogram of the most drifted feature, only with at least
       ``min_predictions`` live values: below that the page withholds the bin counts
       (small cells could single out a patient), and so does the dossier.
    3. Calibration over the widest window with outcomes, bins of fewer than
       ``min_predictions`` cases withheld (``live_calibration``, the page's rule).
    """
    thresholds = evidence.get("thresholds") or {}
    minimum = thresholds.get("min_predictions", 30)
    out: list[dict] = []
    gaps: list[str] = []
    series = evidence.get("series") or {}
    days = series.get("days") or []
    if days:
        span = f"{days[0]['day']} to {days[-1]['day']}, {len(days)} days"
        out.append(_chart("volume", charts.volume_chart(series), span))
        if series.get("drift") and "data_drift_psi" in thresholds:
            out.append(_chart("drift_over_time", charts.drift_chart(series, thresholds), span))
        out.append(_chart("rates", charts.rates_chart(series), span))
        out.append(_chart("performance_over_time", charts.performance_chart(series), span))
    else:
        gaps.append("The latest run holds no day figures: there is no time series to draw.")
    figures = (evidence.get("figures") or {}).get("30d") or {}
    drift = [d for d in figures.get("drift") or []
             if d.get("counts") is not None and d.get("n", 0) >= minimum]
    if drift:
        chosen = max(drift, key=lambda d: d.get("psi") or 0)
        out.append(_chart("histogram", charts.histogram_chart(chosen),
                          f"last 30 days, {chosen.get('n')} live values",
                          feature=chosen["feature"], n=chosen.get("n")))
    else:
        gaps.append(f"No feature has {minimum} live values in the last 30 days: the "
                    "distribution chart is withheld (small cells could single out a patient).")
    code, window = _widest(evidence)
    perf = window.get("performance") or {}
    live = live_calibration(perf, minimum=minimum)
    validation = (perf.get("validation") or {}).get("calibration") or []
    label = (evidence.get("windows") or {}).get(code, {}).get("label", code)
    if live["bins"] or validation:
        chart = charts.calibration_chart(live["bins"], validation, withheld=live["withheld"],
                                         minimum=minimum, live_ece=live["ece"])
        out.append(_chart("calibration", chart, f"{label.lower()}, {live['n']} live outcomes",
                          bins=live["bins"], withheld=live["withheld"],
                          withheld_cases=live["withheld_cases"]))
    if not live["n"]:
        gaps.append(f"No outcomes are recorded for live predictions ({label.lower()}): live "
                    "calibration and observed performance cannot be computed.")
    elif not live["bins"]:
        gaps.append(f"Every live calibration bin ({label.lower()}) has fewer than {minimum} "
                    f"outcomes: the {live['n']} outcomes' bins are withheld (small cells could "
                    "single out a patient); the ECE over all of them is "
                    + (f"{live['ece']:.3f}." if live["ece"] is not None else "not computed."))
    return out, gaps


def _widest(evidence: dict) -> tuple[str, dict]:
    """Since promotion when the run has it, else the last 30 days."""
    figures = evidence.get("figures") or {}
    for code in ("since_promotion", "30d"):
        if (figures.get(code) or {}).get("performance"):
            return code, figures[code]
    return "30d", figures.get("30d") or {}


def _performance(evidence: dict) -> dict:
    """Live (observed from outcomes), estimated (from scores) and validation performance
    over the widest window; observed figures only with ``enough`` outcomes (the run's
    ``min_outcomes`` with both classes), else the row says why not."""
    code, window = _widest(evidence)
    perf = window.get("performance") or {}
    observed, estimated = perf.get("observed") or {}, perf.get("estimated") or {}
    validation = (perf.get("validation") or {}).get("overall") or {}
    minimum = (evidence.get("thresholds") or {}).get("min_outcomes", 30)
    keys = ("auc", "accuracy", "sensitivity", "specificity")
    return {"window": code,
            "window_label": (evidence.get("windows") or {}).get(code, {}).get("label", code),
            "observed": ({"n": observed.get("n", 0), **{k: observed.get(k) for k in keys},
                          "brier": observed.get("brier"),
                          "ece": (observed.get("calibration") or {}).get("ece")}
                         if observed.get("enough") else None),
            "observed_n": observed.get("n", 0),
            "observed_why": (None if observed.get("enough") else
                             f"{observed.get('n', 0)} outcomes: fewer than {minimum} with both "
                             "classes, so no live performance is stated"),
            "estimated": ({"n": estimated.get("n", 0), **{k: estimated.get(k) for k in keys},
                           "trust": estimated.get("trust"),
                           "trust_reason": estimated.get("trust_reason")}
                          if estimated.get("n") else None),
            "validation": {k: validation.get(k) for k in keys} if validation else None}


def _outcomes(evidence: dict) -> dict:
    """Outcomes received over the widest window: how many, the share of live predictions
    they cover, and how long they took (``monitoring.selectors.outcome_delays``)."""
    code, window = _widest(evidence)
    predictions = (window.get("predictions") or {}).get("n", 0)
    observed = ((window.get("performance") or {}).get("observed") or {}).get("n", 0)
    delays = evidence.get("outcome_delays") or {}
    return {"window": code,
            "window_label": (evidence.get("windows") or {}).get(code, {}).get("label", code),
            "predictions": predictions, "outcomes": observed,
            "share": observed / predictions if predictions else None,
            "delays_n": delays.get("n", 0), "delays_minimum": delays.get("minimum"),
            "to_outcome_date": delays.get("to_outcome_date"),
            "to_recorded": delays.get("to_recorded")}


def _explanations(version: ModelVersion) -> dict:
    """The stored figures, their global-importance bar chart and the reliability chart
    (explain.present, the version page's charts), as SVG text in the snapshot."""
    row = version_explanation_latest(version=version)
    if row is None:
        return {"status": GAP, "why": f"No explanation figures are stored for "
                                      f"{version.label}."}
    content = row.content
    gi = content["global_importance"]
    shown = gi["features"][:TOP_FEATURES]
    return {"status": ANSWERED, "explainer": row.explainer, "units": row.units,
            "units_text": "log-odds" if row.units == Units.LOG_ODDS else "probability",
            "content_sha256": row.content_sha256,
            "global_importance": {"statistic": gi["statistic"], "rows": gi["rows"],
                                  "features": shown, "total": len(gi["features"])},
            "importance_svg": str(importance_chart(shown, units=gi.get("units", row.units),
                                                   chart_id="dossier-gi", rows=TOP_FEATURES)),
            "lime_stability": content["lime_stability"],
            "shap_lime_agreement": content["shap_lime_agreement"],
            "reliability": reliability_rows(content),
            "reliability_svg": str(reliability_chart(content, chart_id="dossier-rel"))}


def json_ready(value: Any) -> Any:
    """The snapshot as stored (and rendered): JSON types only."""
    from core.hashing import normalize_json

    return normalize_json(value)
