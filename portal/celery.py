"""The Celery app. Queues: ``default`` for CPU work and ``gpu`` for workers with an
accelerator. Without CELERY_BROKER_URL tasks run eagerly in-process (embedded shape)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("attest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.autodiscover_tasks()
