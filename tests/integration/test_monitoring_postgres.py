"""Monitoring on PostgreSQL: the aggregation reads the log's times and json columns as
the database renders them, and batch rows written by COPY count as batch rows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from inference.batches import batch_submit
from inference.models import Prediction
from inference.tasks import batch_enqueue, run_batch
from monitoring.aggregation import aggregate_predictions, epoch_seconds
from monitoring.models import FeatureCounts, VersionCounts

from ..inference.helpers import released_version
from ..monitoring.helpers import log_rows, training_like

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_times_as_postgresql_renders_them_parse_to_the_stored_instants(personas):
    assert connection.vendor == "postgresql"
    released_version(personas, confidence_threshold=0.6)
    log_rows(personas, training_like(30, seed=1))
    from django.db.models import TextField
    from django.db.models.functions import Cast

    rows = list(Prediction.objects.annotate(t=Cast("created_at", TextField()))
                .values_list("t", "created_at"))
    assert rows[0][0].endswith("+00")
    parsed = epoch_seconds([r[0] for r in rows])
    assert np.allclose(parsed, [r[1].timestamp() for r in rows], atol=1e-6)


def test_batch_rows_written_by_copy_are_counted_as_batch_rows(personas):
    version = released_version(personas, confidence_threshold=0.6)
    rows = training_like(400, seed=2)
    job = batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model, upload=SimpleUploadedFile(
        "batch.csv", rows.to_csv(index=False).encode()))
    run_batch.apply(args=[job.pk])
    log_rows(personas, training_like(20, seed=3))
    aggregate_predictions(settle=timedelta(0))
    day = VersionCounts.objects.get(version=version, period="day")
    assert (day.predictions, day.batch_rows, day.singles) == (420, 400, 20)
    assert sum(day.latency_counts.values()) == 20  # latency of single predictions only
    radius = FeatureCounts.objects.get(version=version, period="day", feature="mean radius")
    assert sum(radius.counts) == 420
