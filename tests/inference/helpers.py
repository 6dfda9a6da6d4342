from __future__ import annotations

from registry import release
from registry.models import ModelVersion
from registry.services import model_version_submit

from ..personas import PASSWORD
from ..registry.helpers import register_dataset, register_version


def released_version(personas, dataset=None, **metadata) -> ModelVersion:
    """A version of the personas' model in production, through the real workflow."""
    dataset = dataset or register_dataset(personas.owner)
    version = register_version(personas.owner, personas.model, dataset, **metadata)
    model_version_submit(user=personas.owner, version=version)
    for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
        release.signoff_record(user=personas.get(who), version=version, meaning=meaning,
                               decision="approve", password=PASSWORD)
    return release.version_promote(user=personas.owner, version=version)


def typical_input(version: ModelVersion) -> dict:
    """Training medians: in range, in the bulk of the distribution."""
    columns = version.dataset.profile["columns"]
    row = {}
    for feature in version.input_schema:
        q = columns[feature["name"]]["quantiles"]
        row[feature["name"]] = q[len(q) // 2]
    return row


def purge_later(*, now=None, days: int = 400) -> dict:
    """The retention purge as it would run ``days`` from now (or at ``now``). By then
    monitoring, which the purge waits for, has long counted every row: it counts a row
    once the log has settled (30 s), so here it is asked to count them all first."""
    from datetime import timedelta

    from django.utils import timezone

    from inference.services import prediction_inputs_purge
    from monitoring.aggregation import aggregate_predictions

    aggregate_predictions(settle=timedelta(0))
    return prediction_inputs_purge(now=now or timezone.now() + timedelta(days=days))
