"""Monitoring's writes: runs and their alerts, observed outcomes, the monitoring policy.

Every state change records its audit event in the same transaction: an outcome upload,
a policy change, a signal entering warning or alert, and its clearing. Figures
themselves are derived data: a run replaces the version's previous figures.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import operator
import re
import time
import uuid
from datetime import date, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date

from audits.models import Action
from audits.services import audit_event_record
from core.errors import Conflict, ErrorItem, ValidationFailed
from inference.models import Prediction
from registry.models import ModelAccessGrant, ModelVersion, RegisteredModel, VersionState
from registry.roles import Capability, ModelRole
from registry.selectors import require_capability

from .aggregation import aggregate_predictions
from .evaluation import evaluate_version
from .health import Status, validate_thresholds
from .live import production_intervals
from .models import (
    Alert,
    Figure,
    MonitoringPolicy,
    MonitoringRun,
    Outcome,
    OutcomeSource,
    OutcomeSubgroups,
    OutcomeUpload,
    RunTrigger,
)

log = logging.getLogger(__name__)

MAX_OUTCOME_ROWS = 100_000
MAX_ERRORS_LISTED = 200
# A version that left production is still evaluated this long (its windows end then).
RECENTLY_LIVE = timedelta(days=30)


# -- runs and alerts -----------------------------------------------------------------------

def monitoring_run(*, version: ModelVersion, trigger: str = RunTrigger.SCHEDULE, user=None,
                   now=None, notify: bool = True) -> MonitoringRun:
    """Compute a version's figures, store them (replacing the previous run's) and move
    its alerts: entering warning or alert and clearing are audit events, mailed to the
    model's owners after commit."""
    started = time.perf_counter()
    now = now or timezone.now()
    version = ModelVersion.objects.select_related("model", "dataset").get(pk=version.pk)
    intervals = production_intervals([version.pk])[version.pk]
    evaluation = evaluate_version(version=version, now=now, intervals=intervals)
    still_live = version.state == VersionState.PRODUCTION
    with transaction.atomic():
        run = MonitoringRun.objects.create(
            version=version, computed_at=now, trigger=trigger, requested_by=user,
            aggregated_through=_watermark(), thresholds=evaluation.thresholds,
            windows={k: w.as_dict() for k, w in evaluation.windows.items()},
            summary={"health": evaluation.health, "retraining": evaluation.retraining})
        for figure in evaluation.figures:
            figure.run = run
        Figure.objects.bulk_create(evaluation.figures, batch_size=1000)
        older = MonitoringRun.objects.filter(version=version).exclude(pk=run.pk)
        Figure.objects.filter(run__in=older).delete()
        older.delete()
        changes = _move_alerts(version, evaluation.alerts if still_live else [], now,
                               left_production=not still_live)
        run.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        run.save(update_fields=["duration_ms"])
        if changes and notify:
            transaction.on_commit(lambda: notify_owners(version_id=version.pk, changes=changes))
    return run


def _watermark() -> int:
    from .aggregation import watermark

    return watermark()


def _move_alerts(version: ModelVersion, candidates: list[dict], now, *,
                 left_production: bool) -> list[dict]:
    open_alerts = {(a.signal, a.feature): a for a in
                   Alert.objects.select_for_update().filter(version=version,
                                                            cleared_at__isnull=True)}
    changes = []
    fields = {"model_id": version.model_id, "model_name": version.model.name,
              "version_id": version.pk, "version_label": version.label}
    if left_production:
        for alert in open_alerts.values():
            changes.append(_clear(alert, now, "the version is no longer in production", fields))
        return changes
    for item in candidates:
        key = (item["signal"], item["feature"])
        current = open_alerts.get(key)
        status = item["status"]
        if status in (Status.WARNING, Status.ALERT):
            if current is None:
                alert = Alert.objects.create(
                    model_id=version.model_id, version=version, signal=item["signal"],
                    feature=item["feature"], level=status, value=item["value"],
                    message=item["message"][:500], evidence=item["evidence"], opened_at=now,
                    updated_at=now)
                changes.append(_raised(alert, None, fields))
            elif current.level != status:
                before = current.level
                current.level, current.value = status, item["value"]
                current.message, current.evidence = item["message"][:500], item["evidence"]
                current.updated_at = now
                current.save()
                changes.append(_raised(current, before, fields))
            else:
                current.value, current.message = item["value"], item["message"][:500]
                current.evidence, current.updated_at = item["evidence"], now
                current.save(update_fields=["value", "message", "evidence", "updated_at"])
        elif status == Status.OK and current is not None:
            changes.append(_clear(current, now, item["message"][:300], fields))
        # no data / unavailable: an open alert stays open; nothing says it has cleared
    return changes


def _raised(alert: Alert, before: str | None, fields: dict) -> dict:
    audit_event_record(action=Action.MONITORING_ALERT_RAISED, obj=alert,
                       object_repr=alert.message[:300], **fields,
                       before={"level": before} if before else None,
                       after={"level": alert.level, "signal": alert.signal,
                              "feature": alert.feature, "value": alert.value},
                       details=alert.evidence)
    return {"kind": "raised", "level": alert.level, "before": before, "signal": alert.signal,
            "feature": alert.feature, "message": alert.message}


def _clear(alert: Alert, now, reason: str, fields: dict) -> dict:
    before = alert.level
    alert.cleared_at, alert.updated_at, alert.clear_reason = now, now, reason[:300]
    alert.save(update_fields=["cleared_at", "updated_at", "clear_reason"])
    audit_event_record(action=Action.MONITORING_ALERT_CLEARED, obj=alert,
                       object_repr=alert.message[:300], **fields, before={"level": before},
                       after={"level": "ok", "signal": alert.signal, "feature": alert.feature},
                       reason=reason)
    return {"kind": "cleared", "level": "ok", "before": before, "signal": alert.signal,
            "feature": alert.feature, "message": reason}


def notify_owners(*, version_id: int, changes: list[dict]) -> int:
    """One e-mail per run with transitions to each owner of the model (console backend by
    default). Mail is a courtesy: the banner and the audit trail carry the alerts."""
    version = ModelVersion.objects.select_related("model").get(pk=version_id)
    owners = (ModelAccessGrant.objects.filter(model=version.model, role=ModelRole.OWNER,
                                              user__is_active=True)
              .exclude(user__email="").select_related("user"))
    raised = [c for c in changes if c["kind"] == "raised"]
    subject = (f"[Attest] {version.model.name} {version.label}: "
               + (f"{len(raised)} monitoring alert(s)" if raised else "monitoring alerts cleared"))
    lines = [f"Monitoring of {version.model.name} {version.label} changed:", ""]
    for change in changes:
        what = change["signal"] + (f" ({change['feature']})" if change["feature"] else "")
        if change["kind"] == "raised":
            lines.append(f"- {what}: entered {change['level']}"
                         + (f" (was {change['before']})" if change["before"] else "")
                         + f" — {change['message']}")
        else:
            lines.append(f"- {what}: cleared (was {change['before']}) — {change['message']}")
    lines += ["", f"See /models/{version.model.name}/monitoring/?version={version.number}"]
    body = "\n".join(lines)
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [g.user.email]) for g in owners]
    if not messages:
        return 0
    try:
        return send_mass_mail(messages, fail_silently=False)
    except OSError as exc:
        log.warning("could not mail monitoring alerts for %s: %s", version, exc)
        return 0


def versions_to_monitor(*, now=None) -> list[ModelVersion]:
    """Production versions, those that left production within RECENTLY_LIVE, and any
    version that still has an open alert (so it is cleared)."""
    now = now or timezone.now()
    candidates = set(ModelVersion.objects.filter(state__in=[
        VersionState.PRODUCTION, VersionState.SUPERSEDED, VersionState.RETIRED])
        .values_list("pk", flat=True))
    intervals = production_intervals(candidates)
    keep = {pk for pk, spans in intervals.items()
            if spans and (spans[-1].end is None or spans[-1].end >= now - RECENTLY_LIVE)}
    keep |= set(Alert.objects.filter(cleared_at__isnull=True).values_list("version_id",
                                                                          flat=True))
    return list(ModelVersion.objects.filter(pk__in=keep).select_related("model", "dataset"))


def monitoring_run_all(*, now=None, notify: bool = True) -> list[MonitoringRun]:
    """The scheduled job: count the log, then evaluate every monitored version."""
    aggregate_predictions()
    runs = []
    for version in versions_to_monitor(now=now):
        try:
            runs.append(monitoring_run(version=version, now=now, notify=notify))
        except Exception:  # noqa: BLE001 - one version's failure must not stop the others
            log.exception("monitoring run failed for %s", version)
    return runs


def monitoring_run_for_user(*, user, version: ModelVersion) -> MonitoringRun:
    """On demand, for the model's owners: count the log now and evaluate the version."""
    require_capability(user=user, model=version.model, capability=Capability.REGISTER_VERSION)
    aggregate_predictions()
    return monitoring_run(version=version, trigger=RunTrigger.ON_DEMAND, user=user)


# -- outcomes ----------------------------------------------------------------------------

OUTCOME_COLUMNS = ("prediction_id", "outcome", "outcome_date")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def outcome_rows_from_csv(upload) -> tuple[list[dict], str]:
    """Rows of an outcomes CSV (``prediction_id,outcome,outcome_date``) and its sha256."""
    data = upload.read()
    if len(data) > settings.ATTEST_MAX_UPLOAD_BYTES:
        raise ValidationFailed("The file is too large.", code="too_large", field="file")
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("The file is not UTF-8 text.", code="encoding",
                               field="file") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed("The file is empty.", code="empty_file", field="file") from None
    except csv.Error as exc:
        raise ValidationFailed(f"The file is not valid CSV: {exc}.", code="malformed_csv",
                               field="file") from None
    missing = [c for c in OUTCOME_COLUMNS if c not in header]
    if missing:
        delimiter = ";" if ";" in ",".join(header) else ("\t" if "\t" in ",".join(header)
                                                         else None)
        hint = (f" The header looks {'semicolon' if delimiter == ';' else 'tab'}-separated; "
                "use commas." if delimiter else "")
        raise ValidationFailed(f"The header must name {', '.join(OUTCOME_COLUMNS)}; missing: "
                               f"{', '.join(missing)}.{hint}", code="missing_columns",
                               field="file")
    position = {name: header.index(name) for name in OUTCOME_COLUMNS}
    rows = []
    try:
        for line, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= MAX_OUTCOME_ROWS:
                raise ValidationFailed(f"At most {MAX_OUTCOME_ROWS:,} outcomes per upload.",
                                       code="too_many_rows", field="file")
            rows.append({name: (record[i].strip() if i < len(record) else "")
                         for name, i in position.items()} | {"_line": line})
    except csv.Error as exc:
        raise ValidationFailed(f"The file is not valid CSV: {exc}.", code="malformed_csv",
                               field="file") from None
    return rows, digest


def _outcome_value(value: Any, labels: list[str], positive: str | None) -> tuple[str, bool] | None:
    """(label, is positive) for a label, or 1/0 (true/false) for the positive label and,
    when there is exactly one, the other."""
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, int) and value in (0, 1):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if text in labels:
        return text, text == positive
    if positive is None:
        return None
    if text.lower() in ("1", "true"):
        return positive, True
    negatives = [label for label in labels if label != positive]
    if text.lower() in ("0", "false") and len(negatives) == 1:
        return negatives[0], False
    return None


def outcomes_record(*, user, model: RegisteredModel, rows: list[dict], source: str,
                    file_name: str = "", sha256: str | None = None) -> OutcomeUpload:
    """Record observed outcomes: all rows or none, every problem reported per row.

    Each row names a logged prediction of this model (its public id), the outcome (one of
    the version's labels, or 1/0 for the positive label and the other one) and the date
    it was observed. Refused: unknown ids, a prediction named twice, a prediction that
    already has an outcome, an outcome date before the prediction or in the future.
    """
    require_capability(user=user, model=model, capability=Capability.RECORD_OUTCOMES)
    if not isinstance(rows, list) or not rows:
        raise ValidationFailed("Send at least one outcome.", code="required", field="outcomes")
    if len(rows) > MAX_OUTCOME_ROWS:
        raise ValidationFailed(f"At most {MAX_OUTCOME_ROWS:,} outcomes per upload.",
                               code="too_many_rows", field="outcomes")
    problems: list[ErrorItem] = []
    parsed: list[tuple[int, uuid.UUID | None, dict]] = []

    def where(i: int, row: dict, column: str) -> str:
        return (f"row {row['_line']}.{column}" if source == OutcomeSource.CSV
                else f"outcomes.{i}.{column}")

    first_seen: dict[uuid.UUID, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.append(ErrorItem("invalid", "Each outcome must be an object with "
                                      "prediction_id, outcome and outcome_date.",
                                      f"outcomes.{i}"))
            parsed.append((i, None, {}))
            continue
        unknown = set(row) - {*OUTCOME_COLUMNS, "_line"}
        for name in sorted(unknown):
            problems.append(ErrorItem("unknown_field", f"'{name}' is not an outcome field.",
                                      where(i, row, name)))
        try:
            public_id = uuid.UUID(str(row.get("prediction_id", "")).strip())
        except ValueError:
            problems.append(ErrorItem("invalid_id", "prediction_id must be a prediction's id "
                                      "(a UUID, as the predict answer gives it).",
                                      where(i, row, "prediction_id")))
            public_id = None
        if public_id is not None:
            if public_id in first_seen:
                j = first_seen[public_id]
                problems.append(ErrorItem("duplicate", f"Prediction {public_id} appears twice in "
                                          f"this upload (also {_row_name(j, rows[j], source)}).",
                                          where(i, row, "prediction_id")))
            else:
                first_seen[public_id] = i
        parsed.append((i, public_id, row))
    ids = [p for _i, p, _r in parsed if p is not None]
    predictions = _predictions(model, ids)
    recorded = _recorded(list(predictions.values()))
    versions = {v.pk: v for v in ModelVersion.objects.filter(
        pk__in={p["version_id"] for p in predictions.values()})}
    today = timezone.now().date()
    subgroup_rules = _subgroup_rules(model)
    outcomes: list[Outcome] = []
    accepted: list[tuple[uuid.UUID, Outcome]] = []
    memberships: list[list[str] | None] = []
    for i, public_id, row in parsed:
        if public_id is None:
            continue
        prediction = predictions.get(public_id)
        if prediction is None:
            problems.append(ErrorItem("unknown_prediction", f"{model.name} has no prediction "
                                      f"{public_id}.", where(i, row, "prediction_id")))
            continue
        if first_seen.get(public_id) != i:
            continue
        if prediction["id"] in recorded:
            problems.append(ErrorItem("duplicate_outcome", f"Prediction {public_id} already has an "
                                      f"outcome (recorded {recorded[prediction['id']]}).",
                                      where(i, row, "prediction_id")))
            continue
        version = versions[prediction["version_id"]]
        labels = version.output_schema.get("labels") or []
        positive = version.output_schema.get("positive_label", labels[-1] if labels else None)
        value = _outcome_value(row.get("outcome"), labels, positive)
        if value is None:
            problems.append(ErrorItem("invalid_outcome", f"outcome must be one of "
                                      f"{', '.join(labels)} (or 1 for {positive}, 0 for the "
                                      "other).", where(i, row, "outcome")))
        day = _outcome_date(row.get("outcome_date"))
        predicted_on = prediction["created_at"].date()
        if day is None:
            problems.append(ErrorItem("invalid_date", "outcome_date must be an ISO date "
                                      "(YYYY-MM-DD).", where(i, row, "outcome_date")))
        elif day > today:
            problems.append(ErrorItem("invalid_date", "outcome_date is in the future.",
                                      where(i, row, "outcome_date")))
        elif day < predicted_on:
            problems.append(ErrorItem("invalid_date", f"outcome_date is before the prediction "
                                      f"({predicted_on.isoformat()}).",
                                      where(i, row, "outcome_date")))
        if value is None or day is None or day > today or day < predicted_on:
            continue
        outcome = Outcome(
            prediction_id=prediction["id"], model=model, version_id=version.pk, label=value[0],
            positive=value[1], outcome_date=day, predicted_at=prediction["created_at"])
        outcomes.append(outcome)
        accepted.append((public_id, outcome))
        memberships.append(subgroups_of(prediction.get("input"), subgroup_rules))
    if problems:
        shown = problems[:MAX_ERRORS_LISTED]
        if len(problems) > MAX_ERRORS_LISTED:
            shown.append(ErrorItem("too_many_errors", f"…and {len(problems) - MAX_ERRORS_LISTED}"
                                   " more problems; nothing was recorded.", None))
        raise ValidationFailed(items=shown, extra={"recorded": 0, "rows": len(rows)})
    canonical = orjson.dumps(sorted(
        [{"prediction_id": str(public_id), "outcome": o.label,
          "outcome_date": o.outcome_date.isoformat()} for public_id, o in accepted],
        key=lambda r: r["prediction_id"]))
    digest = sha256 or hashlib.sha256(canonical).hexdigest()
    now = timezone.now()
    public_id = uuid.uuid4()
    by_version: dict[str, int] = {}
    for outcome in outcomes:
        label = f"v{versions[outcome.version_id].number}"
        by_version[label] = by_version.get(label, 0) + 1
    try:
        with transaction.atomic():
            # The event first, so the upload row is written once, complete, with its seq.
            event = audit_event_record(
                action=Action.OUTCOMES_RECORDED, object_type="monitoring.outcomeupload",
                object_id=str(public_id),
                object_repr=f"{len(outcomes)} outcomes for {model.name} ({source})",
                model_id=model.pk, model_name=model.name,
                details={"rows": len(outcomes), "source": source, "file_name": file_name,
                         "sha256": digest, "by_version": by_version,
                         "positives": sum(1 for o in outcomes if o.positive),
                         "upload": str(public_id)})
            upload = OutcomeUpload.objects.create(
                public_id=public_id, model=model, source=source, file_name=file_name[:200],
                sha256=digest, rows=len(outcomes), recorded_by=user, recorded_at=now,
                event_seq=event.seq)
            for outcome in outcomes:
                outcome.upload, outcome.recorded_at = upload, now
            Outcome.objects.bulk_create(outcomes, batch_size=2000)
            OutcomeSubgroups.objects.bulk_create(
                [OutcomeSubgroups(outcome=o, names=names)
                 for o, names in zip(outcomes, memberships, strict=True)], batch_size=2000)
    except IntegrityError:
        raise Conflict("Some of these predictions received an outcome at the same moment from "
                       "another upload; nothing was recorded. Send the file again to see "
                       "which.", code="concurrent_outcomes") from None
    return upload


def _row_name(i: int, row: dict, source: str) -> str:
    return f"line {row['_line']}" if source == OutcomeSource.CSV and isinstance(row, dict) \
        else f"outcomes.{i}"


def _outcome_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    if not _ISO_DATE.match(text):
        return None
    try:
        return parse_date(text)
    except ValueError:
        return None


def _predictions(model: RegisteredModel, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    out = {}
    fields = ("id", "public_id", "version_id", "created_at", "input")
    for start in range(0, len(ids), 5000):
        for row in Prediction.objects.filter(model=model, public_id__in=ids[start:start + 5000]) \
                .values(*fields):
            out[row["public_id"]] = row
    return out


def _recorded(predictions: list[dict]) -> dict[int, str]:
    pks = [p["id"] for p in predictions]
    out = {}
    for start in range(0, len(pks), 5000):
        for pk, when in Outcome.objects.filter(prediction_id__in=pks[start:start + 5000]) \
                .values_list("prediction_id", "recorded_at"):
            out[pk] = when.strftime("%Y-%m-%d %H:%M UTC")
    return out


# -- subgroups and the policy ---------------------------------------------------------------

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne, "in": lambda value, values: value in values}
SUBGROUP_OPS = tuple(_OPS)


def _subgroup_rules(model: RegisteredModel) -> list[dict]:
    policy = MonitoringPolicy.objects.filter(model=model).first()
    return list(policy.subgroups) if policy else []


def subgroups_of(values: dict | None, rules: list[dict]) -> list[str] | None:
    """The names of the subgroups an input belongs to; None when the input is gone."""
    if values is None:
        return None if rules else []
    names = []
    for rule in rules:
        value = values.get(rule["feature"])
        if value is None:
            continue
        try:
            hit = bool(_OPS[rule["op"]](value, rule["value"]))
        except TypeError:  # a number rule on a category value, or the reverse
            hit = False
        if hit:
            names.append(rule["name"])
    return names


def validate_subgroups(value: Any) -> list[dict]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise ValidationFailed("subgroups must be a list of rules.", code="invalid",
                               field="subgroups")
    problems, clean, names = [], [], set()
    for i, rule in enumerate(value):
        where = f"subgroups.{i}"
        if not isinstance(rule, dict) or set(rule) != {"name", "feature", "op", "value"}:
            problems.append(ErrorItem("invalid", "Each subgroup is {\"name\", \"feature\", "
                                      "\"op\", \"value\"}.", where))
            continue
        if not isinstance(rule["name"], str) or not rule["name"].strip() or \
                len(rule["name"]) > 100:
            problems.append(ErrorItem("invalid", "name must be text (at most 100 characters).",
                                      f"{where}.name"))
            continue
        if rule["name"] in names:
            problems.append(ErrorItem("duplicate", f"Two subgroups are named {rule['name']}.",
                                      f"{where}.name"))
        names.add(rule["name"])
        if not isinstance(rule["feature"], str) or not rule["feature"]:
            problems.append(ErrorItem("invalid", "feature must name an input.",
                                      f"{where}.feature"))
        if rule["op"] not in SUBGROUP_OPS:
            problems.append(ErrorItem("invalid", f"op must be one of {' '.join(SUBGROUP_OPS)}.",
                                      f"{where}.op"))
        elif rule["op"] == "in" and not isinstance(rule["value"], list):
            problems.append(ErrorItem("invalid", "'in' takes a list of values.",
                                      f"{where}.value"))
        elif rule["op"] != "in" and not isinstance(rule["value"], str | int | float | bool):
            problems.append(ErrorItem("invalid", "value must be a number, text or boolean.",
                                      f"{where}.value"))
        clean.append({k: rule[k] for k in ("name", "feature", "op", "value")})
    if len(clean) > 50:
        problems.append(ErrorItem("invalid", "At most 50 subgroups.", "subgroups"))
    if problems:
        raise ValidationFailed(items=problems)
    return clean


def monitoring_policy_update(*, user, model: RegisteredModel, thresholds: Any = None,
                             subgroups: Any = None, cpu_hour_price: Any = "") -> MonitoringPolicy:
    """Set a model's thresholds (beside the defaults), subgroups and CPU-hour price.
    Changed subgroups are re-decided for recorded outcomes whose raw input is still kept."""
    require_capability(user=user, model=model, capability=Capability.REGISTER_VERSION)
    problems = []
    clean_thresholds = clean_subgroups = None
    try:
        clean_thresholds = validate_thresholds(thresholds)
    except ValidationFailed as exc:
        problems += exc.items
    try:
        clean_subgroups = validate_subgroups(subgroups)
    except ValidationFailed as exc:
        problems += exc.items
    price = None
    if cpu_hour_price not in (None, ""):
        try:
            price = float(cpu_hour_price)
            if not 0 <= price <= 1000:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(ErrorItem("invalid", "cpu_hour_price must be a number of dollars "
                                      "between 0 and 1000 (empty: the deployment's default).",
                                      "cpu_hour_price"))
    if problems:
        raise ValidationFailed(items=problems)
    with transaction.atomic():
        policy, _ = MonitoringPolicy.objects.select_for_update().get_or_create(model=model)
        before = {"thresholds": policy.thresholds, "subgroups": policy.subgroups,
                  "cpu_hour_price": policy.cpu_hour_price}
        policy.thresholds, policy.subgroups = clean_thresholds, clean_subgroups
        policy.cpu_hour_price, policy.updated_by = price, user
        policy.save()
        after = {"thresholds": policy.thresholds, "subgroups": policy.subgroups,
                 "cpu_hour_price": policy.cpu_hour_price}
        if before == after:
            return policy
        regrouped = 0
        if before["subgroups"] != after["subgroups"]:
            regrouped = _regroup_outcomes(model, clean_subgroups)
        audit_event_record(action=Action.MONITORING_POLICY_UPDATED, obj=policy,
                           model_id=model.pk, model_name=model.name, before=before, after=after,
                           details={"outcomes_regrouped": regrouped})
    return policy


def _regroup_outcomes(model: RegisteredModel, rules: list[dict]) -> int:
    """Decide the subgroups of the model's outcomes again, from the raw inputs still kept;
    an outcome whose input is gone keeps what was decided when it arrived."""
    rows = list(Outcome.objects.filter(model=model, prediction__input__isnull=False)
                .values_list("pk", "prediction__input"))
    memberships = {m.outcome_id: m for m in
                   OutcomeSubgroups.objects.filter(outcome_id__in=[pk for pk, _ in rows])}
    changed = []
    for pk, values in rows:
        membership = memberships.get(pk) or OutcomeSubgroups(outcome_id=pk)
        membership.names = subgroups_of(values, rules)
        changed.append(membership)
    OutcomeSubgroups.objects.bulk_create([m for m in changed if m.pk is None], batch_size=1000)
    OutcomeSubgroups.objects.bulk_update([m for m in changed if m.pk is not None], ["names"],
                                         batch_size=1000)
    return len(changed)
