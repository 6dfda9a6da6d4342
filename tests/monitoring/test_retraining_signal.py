"""The retraining signal from reviewers' overrides alone (issue 18): no drift, no outcomes.

The guidance's example: 30% of low-confidence cases overridden the same way. Rows
are drawn from the training data itself, so no input drifts; only the reviewers'
decisions differ between the tests.
"""

from __future__ import annotations

from inference.services import review_decide

from ..inference.helpers import released_version
from .helpers import count_and_run, log_rows, training_like


def _reviewed(personas, n: int = 80):
    version = released_version(personas, confidence_threshold=0.99)  # most go to review
    results = log_rows(personas, training_like(n, seed=11))
    reviewed = [r for r in results if r.review is not None]
    assert len(reviewed) >= 40
    return version, reviewed


def test_overrides_leaning_one_way_on_low_confidence_cases_suggest_retraining(personas):
    version, reviewed = _reviewed(personas)
    for r in reviewed:  # the reviewer always says malignant
        if r.prediction.label != "malignant":
            review_decide(user=personas.reviewer, item=r.review, decision="override",
                          final_label="malignant", reason_code="clinical_judgement")
        else:
            review_decide(user=personas.reviewer, item=r.review, decision="accept")
    run = count_and_run(version)
    signal = run.summary["retraining"]
    assert signal["suggested"] is True
    low = [e for e in signal["evidence"] if e.startswith("Among low-confidence cases")]
    assert len(low) == 1
    assert "the model said benign, the reviewer decided malignant" in low[0]
    # no input drifted: the overrides alone raised it
    assert not any(e.startswith("Input drift") for e in signal["evidence"])
    # the health table says it too, beside the thresholds (override rate > 20%, one
    # direction > 30% of decided reviews: alert)
    health = {r["signal"]: r for r in run.summary["health"] if not r.get("feature")}
    assert health["override_rate"]["status"] == "alert"
    assert health["override_direction"]["status"] == "alert"
    assert "model said benign, reviewer decided malignant" in \
        health["override_direction"]["evidence"]
    detail = run.figures.get(window="30d", signal="overrides").detail["low_confidence"]
    assert detail["top_direction"]["share"] >= 0.30
    assert f"of {detail['decided']} decided reviews" in low[0]


def test_overrides_in_both_directions_or_too_few_do_not(personas):
    version, reviewed = _reviewed(personas)
    flips = {"malignant": "benign", "benign": "malignant"}
    for i, r in enumerate(reviewed):
        if i % 5 == 0:  # one in five overridden, each to the other label
            review_decide(user=personas.reviewer, item=r.review, decision="override",
                          final_label=flips[r.prediction.label], reason_code="clinical_judgement")
        else:
            review_decide(user=personas.reviewer, item=r.review, decision="accept")
    run = count_and_run(version)
    signal = run.summary["retraining"]
    assert not any(e.startswith("Among low-confidence") for e in signal["evidence"])
    health = {r["signal"]: r for r in run.summary["health"] if not r.get("feature")}
    assert health["override_direction"]["status"] != "alert"  # about 10% each way


def test_a_handful_of_one_way_overrides_is_no_verdict(personas):
    version, reviewed = _reviewed(personas)
    for r in reviewed[:5]:  # fewer decided reviews than an override verdict needs (20)
        review_decide(user=personas.reviewer, item=r.review, decision="override",
                      final_label=("benign" if r.prediction.label == "malignant" else "malignant"),
                      reason_code="clinical_judgement")
    signal = count_and_run(version).summary["retraining"]
    assert signal["suggested"] is False, signal["evidence"]
