"""The demo with a history: six weeks of a released model's life, replayed through the
real services so every page has something to show.

``registry.demo`` builds the model, its dataset, the users and the first versions; this
module (in the shell, the one layer that may use inference and monitoring too) replays
what happened next, with the clock set back (``core.clock.replayed_time``) so every
row and audit event carries the time it would have had:

* day 0: v1 (gradient boosting) goes to production; v2 (logistic regression) is in review;
* every day: a few dozen predictions from the clinician (fewer at weekends), drawn from
  the held-out breast-cancer cases with measurement noise, a few refused requests, and
  the reviewer's decisions on the low-confidence and out-of-distribution ones: an
  override when the model was wrong, and — in doubt — "malignant" for a third of the
  low-confidence "benign" answers, so overrides lean one way;
* day 13–14: the PI and the IRB sign v2, the owner promotes it; day 21: the owner rolls
  back to v1 ("reviewers overrode v2 more often");
* from day 28: a new slide scanner with another pixel calibration reads *worst area*
  about one standard deviation higher — the drift monitoring should catch, and which
  makes the model call benign masses malignant, so reviewers' overrides lean one way;
* weekly: the owner uploads the histopathology outcomes that have come back (10–25 days
  after the prediction, for about 60% of cases);
* today: v3 is registered and submitted; monitoring counts the log and computes every
  version, which raises its alerts (audited) and the retraining signal.

Idempotent: the history is replayed only when the demo model is created by this run.
"""

from __future__ import annotations

import contextlib
import io
from datetime import timedelta

import numpy as np
from django.utils import timezone

from core.clock import replayed_time
from core.context import acting_as
from core.errors import ValidationFailed
from inference.log import anchor_predictions
from inference.models import Prediction, ReviewItem
from inference.services import prediction_create, review_decide
from monitoring.aggregation import aggregate_predictions
from monitoring.models import OutcomeSource
from monitoring.services import monitoring_policy_update, monitoring_run, outcomes_record
from registry import demo as registry_demo
from registry import release, services
from registry.models import ModelVersion, RegisteredModel

HISTORY_DAYS = 42
PROMOTE_V2_DAY, ROLLBACK_DAY, DRIFT_DAY = 14, 21, 28
DRIFTING_FEATURE = "worst area"
OUTCOME_SHARE = 0.6


def run_demo_with_history(*, stdout) -> dict:
    fresh = not RegisteredModel.objects.filter(name=registry_demo.MODEL_NAME).exists()
    if not fresh:
        result = registry_demo.run_demo(stdout=io.StringIO())
        _summary(stdout, result["model"], replayed=False)
        return result
    now = timezone.now()
    start = (now - timedelta(days=HISTORY_DAYS)).replace(hour=7, minute=30, second=0,
                                                         microsecond=0)
    with replayed_time(start) as clock:
        result = registry_demo.run_demo(stdout=io.StringIO())
        _History(result, clock, now).replay()
    with acting_as(None, via="command"):
        while anchor_predictions() is not None:
            pass
        aggregate_predictions()
        model = result["model"]
        for version in model.versions.filter(number__in=[1, 2]):
            monitoring_run(version=version, notify=False)
    _summary(stdout, result["model"], replayed=True)
    return result


class _History:
    def __init__(self, result: dict, clock, end) -> None:
        self.model: RegisteredModel = result["model"]
        self.users = result["users"]
        self.clock, self.end = clock, end
        self.rng = np.random.default_rng(2024)
        # Traffic is drawn from the held-out split (cases the versions never trained on),
        # with measurement noise, so errors and reviews are as frequent as they would be.
        _train, frame, self.features = registry_demo.demo_data()
        self.values = frame[self.features].to_numpy(dtype=float)
        self.malignant = (frame["diagnosis"] == "malignant").to_numpy(dtype=int)
        self.sd = self.values.std(axis=0, ddof=1)
        self.drifting = self.features.index(DRIFTING_FEATURE)
        self.truth: dict[int, int] = {}  # prediction pk -> 1 if malignant
        self.outcomes_due: list[tuple] = []  # (outcome day, public id, label)

    def replay(self) -> None:
        owner = self.users["owner"]
        with acting_as(owner, via="command"):
            monitoring_policy_update(user=owner, model=self.model,
                                     subgroups=registry_demo.subgroup_rules())
        day0 = self.clock.now()
        for day in range(HISTORY_DAYS + 1):
            morning = day0 + timedelta(days=day)
            if morning.date() > self.end.date():
                break
            self.clock.set(morning)
            if day == PROMOTE_V2_DAY - 1:
                self._sign(2)
            if day == PROMOTE_V2_DAY:
                with acting_as(owner, via="command"):
                    release.version_promote(user=owner, version=self._version(2))
            if day == ROLLBACK_DAY:
                with acting_as(owner, via="command"):
                    release.model_rollback(
                        user=owner, model=self.model, to_version=1,
                        reason="Reviewers overrode v2 more often than v1 in its first week; "
                               "back to v1 while we investigate.")
            self._day(morning, day)
            if day % 7 == 6:
                self._upload_outcomes()
        self.clock.set(min(self.end - timedelta(minutes=5), self.clock.now()))
        self._candidate()

    def _version(self, number: int) -> ModelVersion:
        return self.model.versions.get(number=number)

    def _sign(self, number: int) -> None:
        version = self._version(number)
        for who, meaning, comment in (
                ("pi", "pi_approval", "Comparable held-out metrics; simpler model."),
                ("irb", "irb_approval", "Within protocol DEMO-0001.")):
            with acting_as(self.users[who], via="command"):
                release.signoff_record(user=self.users[who], version=version, meaning=meaning,
                                       decision="approve",
                                       password=registry_demo.demo_password(who),
                                       comment=comment)

    def _inputs(self, n: int, day: int) -> tuple[list[dict], np.ndarray]:
        pick = self.rng.integers(0, len(self.values), size=n)
        # measurement noise, so no two requests are identical rows of the dataset
        values = self.values[pick] + self.rng.normal(scale=0.08, size=(n, len(self.features))) \
            * self.sd
        if day >= DRIFT_DAY:
            values[:, self.drifting] += self.sd[self.drifting]
        values = np.round(np.clip(values, 0, None), 5)
        return ([dict(zip(self.features, row, strict=True)) for row in values.tolist()],
                self.malignant[pick])

    def _day(self, morning, day: int) -> None:
        clinician, reviewer = self.users["clinician"], self.users["reviewer"]
        weekend = morning.weekday() >= 5
        calls = 2 if weekend else 7
        latest = self.end - timedelta(minutes=2)  # the history stops short of now
        for call in range(calls):
            moment = morning + timedelta(hours=1 + call * 1.4,
                                         minutes=int(self.rng.integers(0, 50)))
            if moment >= latest:
                break
            self.clock.set(moment)
            inputs, truth = self._inputs(int(self.rng.integers(3, 10)), day)
            with acting_as(clinician, via="api"):
                results = prediction_create(user=clinician, model=self.model,
                                            instances=inputs, many=True)
                if self.rng.random() < 0.3:  # a malformed request now and then
                    broken = dict(inputs[0])
                    broken.pop(self.features[int(self.rng.integers(len(self.features)))])
                    with contextlib.suppress(ValidationFailed):  # refused and counted
                        prediction_create(user=clinician, model=self.model, instances=[broken])
            for result, positive in zip(results, truth, strict=True):
                prediction = result.prediction
                self.truth[prediction.pk] = int(positive)
                if self.rng.random() < OUTCOME_SHARE:
                    due = prediction.created_at.date() + timedelta(
                        days=int(self.rng.integers(10, 26)))
                    self.outcomes_due.append((due, str(prediction.public_id), int(positive)))
        # the reviewer works the day's queue in the afternoon
        self.clock.set(min(morning + timedelta(hours=10), latest))
        with acting_as(reviewer, via="web"):
            for item in ReviewItem.objects.filter(model=self.model, status="open") \
                    .select_related("prediction", "version"):
                truth = self.truth.get(item.prediction_id)
                said = item.prediction.label
                right = "malignant" if truth else "benign"
                cautious = (said == "benign"
                            and item.prediction.confidence < item.version.confidence_threshold
                            and self.rng.random() < 0.35)
                if truth is not None and said != right and self.rng.random() < 0.9:
                    review_decide(user=reviewer, item=item, decision="override",
                                  final_label=right,
                                  reason_code=("model_error" if self.rng.random() < 0.6
                                               else "clinical_judgement"))
                elif cautious and said != "malignant":
                    # In doubt, this reviewer calls it malignant: the lean monitoring shows.
                    review_decide(user=reviewer, item=item, decision="override",
                                  final_label="malignant", reason_code="clinical_judgement")
                else:
                    review_decide(user=reviewer, item=item, decision="accept")

    def _upload_outcomes(self) -> None:
        today = self.clock.now().date()
        ready = [o for o in self.outcomes_due if o[0] <= today]
        if not ready:
            return
        self.outcomes_due = [o for o in self.outcomes_due if o[0] > today]
        owner = self.users["owner"]
        rows = [{"prediction_id": pid, "outcome": "malignant" if y else "benign",
                 "outcome_date": due.isoformat()} for due, pid, y in ready]
        with acting_as(owner, via="web"):
            outcomes_record(user=owner, model=self.model, rows=rows, source=OutcomeSource.CSV,
                            file_name=f"histopathology-{today.isoformat()}.csv")

    def _candidate(self) -> None:
        from sklearn.ensemble import GradientBoostingClassifier

        owner = self.users["owner"]
        train, test, features = registry_demo.demo_data()
        model = GradientBoostingClassifier(n_estimators=200, max_depth=2, learning_rate=0.1,
                                           random_state=11)
        model.fit(train[features], train["diagnosis"])
        with acting_as(owner, via="command"):
            v3 = services.model_version_register(
                user=owner, model=self.model,
                artifact=registry_demo.skops_file(model, "gb-v3.skops"), metadata={
                    "dataset": f"{registry_demo.DATASET_NAME}@2024.1",
                    "trusted_types": ["sklearn.tree._tree.Tree"],
                    "description": f"Candidate after the {DRIFTING_FEATURE} drift: gradient "
                                   "boosting, 200 trees of depth 2.",
                    "output_schema": {"positive_label": "malignant"},
                    "hyperparameters": model.get_params(),
                    "metrics": registry_demo.demo_metrics(model, test, features),
                    "confidence_threshold": 0.85, "model_card": registry_demo.MODEL_CARD,
                    "runbook": registry_demo.RUNBOOK})
            services.model_version_submit(user=owner, version=v3)


def _summary(stdout, model: RegisteredModel, *, replayed: bool) -> None:
    states = ", ".join(f"v{v.number} {v.get_state_display().lower()}"
                       for v in model.versions.order_by("number"))
    predictions = Prediction.objects.filter(model=model).count()
    stdout.write(f"Demo model '{model.name}' is ready: {states}.\n")
    if replayed:
        stdout.write(f"Replayed {HISTORY_DAYS} days of history: {predictions} predictions, "
                     "reviews with overrides, outcomes for part of them, v2 promoted and rolled "
                     f"back, drift in {DRIFTING_FEATURE} over the last "
                     f"{HISTORY_DAYS - DRIFT_DAY} days. Monitoring: "
                     f"/models/{model.name}/monitoring/\n")
    else:
        stdout.write(f"(Existing demo kept: {predictions} predictions logged.)\n")
    stdout.write("Users (demo passwords — change them before real use):\n")
    for demo in registry_demo.DEMO_USERS:
        role = demo.role or ("admin" if demo.username == "admin" else "global auditor")
        stdout.write(f"  {demo.username:<10} {demo.password:<24} {role}\n")
