"""Counting the prediction log into hourly and daily bins, after the fact.

Nothing is added to the insert path of a prediction: this job reads the log behind an
id watermark (``AggregationState.last_id``) and adds each new row to the counts of its
version and its hour and UTC day (``VersionCounts``, ``FeatureCounts``, binned on the
training profile as ``monitoring.layout`` describes). A window's drift is then a sum of
a few dozen count arrays, and stays reportable after the raw inputs are purged.

The steps, one transaction per chunk (so a crash loses nothing and counts nothing twice):

1. Lock the watermark row and read the next rows by id, stopping before the first row
   younger than ``inference.log.ANCHOR_SETTLE`` (a transaction begun earlier may still
   commit a lower id; the log's anchors wait for the same reason).
2. Sort the rows into live traffic and testing (``monitoring.live``).
3. Bin every live row's input values, score, latency and flags with numpy, per version
   and bucket, and add the sums to the stored rows (update or create).
4. Move the watermark to the chunk's last id and commit.

Retention: ``inference.services.prediction_inputs_purge`` asks this module (registered
as an *input consumer* in ``monitoring.apps``) to catch up first, and purges no row
past the watermark, so no raw input is dropped before it was counted.
"""

from __future__ import annotations

import logging
import operator
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from inference.log import ANCHOR_SETTLE
from inference.models import Prediction, Routing
from registry.models import ModelVersion

from . import stats
from .layout import FeatureLayout, feature_layouts
from .live import Interval, live_mask, production_intervals
from .models import AggregationState, FeatureCounts, Period, VersionCounts

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
HOUR_ROWS_KEPT = timedelta(hours=72)  # hourly counts serve the 24-hour window only
# Times, flags and inputs come back as their stored text and are parsed in bulk (numpy
# reads a million ISO times in ~0.1 s): Django's per-row converters cost more than the
# counting itself.
_FIELDS = ("id", "version_id", "created_text", "input_text", "score", "label", "routing",
           "ood_text", "batch_id", "latency_ms", "cpu_ms", "imputed_text")


def watermark() -> int:
    state = AggregationState.objects.filter(name="prediction-log").first()
    return state.last_id if state else 0


def aggregate_predictions(*, settle: timedelta = ANCHOR_SETTLE, chunk_rows: int = CHUNK_ROWS,
                          max_rows: int | None = None) -> int:
    """Count every settled row after the watermark; return the new watermark."""
    done = 0
    cache: dict[int, _VersionInfo] = {}
    while True:
        with transaction.atomic():
            state, _ = AggregationState.objects.select_for_update().get_or_create(
                name="prediction-log")
            limit = chunk_rows if max_rows is None else min(chunk_rows, max_rows - done)
            if limit <= 0:
                return state.last_id
            rows, times = _settled_rows(state.last_id, limit, timezone.now() - settle)
            if not rows:
                return state.last_id
            _count(rows, times, cache)
            state.last_id = rows[-1][0]
            state.save(update_fields=["last_id", "updated_at"])
        done += len(rows)
        if len(rows) < limit:
            break
    _drop_old_hours()
    return watermark()


def catch_up_for_purge() -> int:
    """The purge's question (``inference.services.input_consumer_register``): how far
    have raw inputs been counted? Catch up first; on any failure answer the watermark as
    it stands, so the purge keeps every input not yet counted."""
    try:
        return aggregate_predictions()
    except Exception:  # noqa: BLE001 - the purge must go on, bounded by what is counted
        log.exception("monitoring could not count the prediction log before a purge")
        return watermark()


def _settled_rows(after: int, limit: int, cutoff: datetime) -> tuple[list[tuple], np.ndarray]:
    """The next rows by id and their times (epoch seconds), up to the first row younger
    than ``cutoff``."""
    rows = list(Prediction.objects.filter(id__gt=after).order_by("id")
                .annotate(created_text=Cast("created_at", TextField()),
                          input_text=Cast("input", TextField()),
                          ood_text=Cast("ood", TextField()),
                          imputed_text=Cast("imputed", TextField()))
                .values_list(*_FIELDS)[:limit])
    times = epoch_seconds([r[2] for r in rows])
    young = np.flatnonzero(times > cutoff.timestamp())
    if len(young):
        rows, times = rows[:young[0]], times[:young[0]]
    return rows, times


def epoch_seconds(texts: list[str]) -> np.ndarray:
    """UTC times as the database renders them as text (SQLite: ``2026-01-31 12:00:00.5``;
    PostgreSQL in the UTC session Django opens: the same with ``+00``)."""
    if not texts:
        return np.zeros(0)
    stamps = np.array([t.partition("+")[0].replace("T", " ") for t in texts],
                      dtype="datetime64[us]")
    return stamps.astype(np.int64) / 1e6


class _VersionInfo:
    def __init__(self, version: ModelVersion, intervals: list[Interval]) -> None:
        self.version = version
        self.layouts: list[FeatureLayout] = feature_layouts(version)
        self.intervals = intervals
        labels = version.output_schema.get("labels") or []
        self.positive = version.output_schema.get("positive_label",
                                                  labels[-1] if labels else None)


def _infos(version_ids: set[int], cache: dict[int, _VersionInfo]) -> None:
    missing = version_ids - set(cache)
    if not missing:
        return
    intervals = production_intervals(missing)
    for version in ModelVersion.objects.filter(pk__in=missing).select_related("dataset"):
        cache[version.pk] = _VersionInfo(version, intervals.get(version.pk, []))


def _count(rows: list[tuple], times: np.ndarray, cache: dict[int, _VersionInfo]) -> None:
    versions = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    _infos({int(v) for v in np.unique(versions)}, cache)
    version_rows: dict[tuple, dict] = {}
    feature_rows: dict[tuple, list] = {}
    for version_id in np.unique(versions):
        info = cache.get(int(version_id))
        if info is None:  # a reference without its row: verify_predictions reports it
            continue
        picked = np.flatnonzero(versions == version_id)
        _count_version(info, [rows[i] for i in picked], times[picked], version_rows,
                       feature_rows)
    _store(version_rows, feature_rows)


def _buckets(times: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per period: the distinct bucket starts (epoch s), each row's bucket index, and
    which buckets are kept (hourly ones serve the 24-hour window only)."""
    out = {}
    oldest_hour = (timezone.now() - HOUR_ROWS_KEPT).timestamp()
    for period, size in ((Period.HOUR, 3600), (Period.DAY, 86400)):
        starts = (times // size) * size
        unique, index = np.unique(starts, return_inverse=True)
        keep = unique >= oldest_hour if period == Period.HOUR else np.ones(len(unique), bool)
        out[period] = (unique, index, keep)
    return out


def _count_version(info: _VersionInfo, group: list[tuple], times: np.ndarray,
                   version_rows: dict, feature_rows: dict) -> None:
    live = live_mask(info.intervals, times)
    vid = info.version.pk
    if not live.all():
        for period, (starts, index, keep) in _buckets(times[~live]).items():
            counts = np.bincount(index, minlength=len(starts))
            for b in np.flatnonzero(keep & (counts > 0)):
                _version_row(version_rows, vid, period, starts[b])["testing"] += int(counts[b])
    if not live.any():
        return
    rows = [r for r, keep in zip(group, live, strict=True) if keep]
    n = len(rows)
    times = times[live]
    scores = np.fromiter((r[4] for r in rows), dtype=float, count=n)
    single = np.fromiter((r[8] is None for r in rows), dtype=bool, count=n)
    review = np.fromiter((r[6] == Routing.REVIEW for r in rows), dtype=bool, count=n)
    flagged = np.fromiter((r[7] not in (None, "[]") for r in rows), dtype=bool, count=n)
    latency = np.fromiter((r[9] for r in rows), dtype=float, count=n)
    cpu = np.fromiter((np.nan if r[10] is None else r[10] for r in rows), dtype=float, count=n)
    measured = ~np.isnan(cpu)
    has_input = np.fromiter((r[3] is not None for r in rows), dtype=bool, count=n)
    unknown_imputed = np.fromiter((r[11] is None for r in rows), dtype=bool, count=n)
    score_ids = stats.score_bin(scores)
    latency_ids = stats.latency_bin(latency)
    label_names, label_ids = np.unique(np.array([r[5] for r in rows], dtype=object).astype(str),
                                       return_inverse=True)
    n_latency = len(stats.LATENCY_EDGES) - 1
    buckets = _buckets(times)
    for period, (starts, index, keep) in buckets.items():
        k = len(starts)

        def per_bucket(mask=None, weights=None, index=index, k=k):
            i = index if mask is None else index[mask]
            w = None if weights is None else (weights if mask is None else weights[mask])
            return np.bincount(i, weights=w, minlength=k)

        def grid(ids, width, mask=None, weights=None, index=index, k=k):
            i, j = (index, ids) if mask is None else (index[mask], ids[mask])
            w = None if weights is None else (weights if mask is None else weights[mask])
            return np.bincount(i * width + j, weights=w, minlength=k * width).reshape(k, width)

        totals, singles = per_bucket(), per_bucket(single)
        reviews, oods, inputs = per_bucket(review), per_bucket(flagged), per_bucket(has_input)
        latency_sum = per_bucket(weights=latency)
        cpu_sum, cpu_rows = per_bucket(measured, weights=cpu), per_bucket(measured)
        unrecorded = per_bucket(has_input & unknown_imputed)
        score_counts = grid(score_ids, stats.SCORE_BINS)
        score_sums = grid(score_ids, stats.SCORE_BINS, weights=scores)
        labels = grid(label_ids, len(label_names))
        latencies = grid(latency_ids, n_latency, mask=single)
        for b in np.flatnonzero(keep):
            row = _version_row(version_rows, vid, period, starts[b])
            row["predictions"] += int(totals[b])
            row["singles"] += int(singles[b])
            row["batch_rows"] += int(totals[b] - singles[b])
            row["routed_to_review"] += int(reviews[b])
            row["ood"] += int(oods[b])
            row["inputs_unavailable"] += int(totals[b] - inputs[b])
            row["latency_ms_sum"] += float(latency_sum[b])
            row["cpu_ms_sum"] += float(cpu_sum[b])
            row["cpu_rows"] += int(cpu_rows[b])
            row["imputation_unrecorded"] += int(unrecorded[b])
            row["score_counts"] += score_counts[b]
            row["score_sums"] += score_sums[b]
            for j in np.flatnonzero(labels[b]):
                row["labels"][str(label_names[j])] += int(labels[b, j])
            for j in np.flatnonzero(latencies[b]):
                row["latency_counts"][int(j)] += int(latencies[b, j])
        for i in np.flatnonzero(flagged & keep[index]):
            row = _version_row(version_rows, vid, period, starts[index[i]])
            for flag in orjson.loads(rows[i][7]):
                row["ood_codes"][flag.get("code") or "ood"] += 1
    if not info.layouts or not has_input.any():
        return
    texts = [r[3] for r in rows if r[3] is not None]
    inputs = orjson.loads(("[" + ",".join(texts) + "]").encode()) if texts else []
    imputed = _imputed_masks([r[11] for r in rows if r[3] is not None])
    present = {period: (starts, index[has_input], keep)
               for period, (starts, index, keep) in buckets.items()}
    numeric = _numeric_matrix(info.layouts, inputs)
    for layout in info.layouts:
        name = layout.name
        if numeric is not None and name in numeric[0]:
            bins, missing = layout.bin_numbers(numeric[1][:, numeric[0][name]])
        else:
            bins, missing = layout.bin_values([d.get(name) for d in inputs])
        if name in imputed:  # logged with its imputed value: a missing value all the same
            missing = missing | imputed[name]
        for period, (starts, index, keep) in present.items():
            k = len(starts)
            counted = np.bincount(index[~missing] * layout.size + bins[~missing],
                                  minlength=k * layout.size).reshape(k, layout.size)
            misses = np.bincount(index[missing], minlength=k)
            for b in np.flatnonzero(keep & ((counted.sum(axis=1) > 0) | (misses > 0))):
                key = (vid, period, _when(starts[b]), name)
                entry = feature_rows.get(key)
                if entry is None:
                    feature_rows[key] = [counted[b].astype(np.int64), int(misses[b])]
                else:
                    entry[0] = entry[0] + counted[b]
                    entry[1] += int(misses[b])


def _imputed_masks(texts: list[str | None]) -> dict[str, np.ndarray]:
    """Per feature named in any row's ``imputed`` (its text; null on rows logged before
    it was recorded, "[]" when nothing was imputed): which rows had it imputed."""
    masks: dict[str, np.ndarray] = {}
    for i, text in enumerate(texts):
        if text is None or text == "[]":
            continue
        for name in orjson.loads(text):
            if name not in masks:
                masks[name] = np.zeros(len(texts), dtype=bool)
            masks[name][i] = True
    return masks


def _numeric_matrix(layouts: list[FeatureLayout], inputs: list[dict]):
    """The numeric features of every input as one float matrix (None becomes NaN), in
    one pass at C speed; None when an input lacks a key or holds a non-number there
    (each feature is then binned from its values one by one)."""
    names = [layout.name for layout in layouts if layout.kind == "numeric"]
    if not names or not inputs:
        return None
    getter = operator.itemgetter(*names)
    try:
        matrix = np.array(list(map(getter, inputs)), dtype=float)
    except (KeyError, TypeError, ValueError):
        return None
    if matrix.ndim == 1:
        matrix = matrix.reshape(-1, 1)
    return {name: j for j, name in enumerate(names)}, matrix


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(float(epoch), tz=UTC)


def _version_row(version_rows: dict, vid: int, period: str, start: float) -> dict:
    key = (vid, period, _when(start))
    row = version_rows.get(key)
    if row is None:
        row = version_rows[key] = {
            "predictions": 0, "singles": 0, "batch_rows": 0, "routed_to_review": 0, "ood": 0,
            "inputs_unavailable": 0, "testing": 0, "latency_ms_sum": 0.0,
            "cpu_ms_sum": 0.0, "cpu_rows": 0, "imputation_unrecorded": 0,
            "score_counts": np.zeros(stats.SCORE_BINS, dtype=np.int64),
            "score_sums": np.zeros(stats.SCORE_BINS), "labels": defaultdict(int),
            "ood_codes": defaultdict(int), "latency_counts": defaultdict(int)}
    return row


_SUMMED = ("predictions", "singles", "batch_rows", "routed_to_review", "ood",
           "inputs_unavailable", "testing", "cpu_rows", "imputation_unrecorded")


def _add_dict(stored: dict, new: dict) -> dict:
    out = dict(stored or {})
    for key, value in new.items():
        out[str(key)] = out.get(str(key), 0) + value
    return out


def _add_list(stored: list, new: np.ndarray, *, floats: bool = False) -> list:
    base = np.asarray(stored, dtype=float if floats else np.int64) if stored else \
        np.zeros(len(new), dtype=float if floats else np.int64)
    total = base + new
    return [round(x, 6) for x in total.tolist()] if floats else total.tolist()


def _store(version_rows: dict, feature_rows: dict) -> None:
    """Add the chunk's sums to the stored rows. The rows touched are replaced — deleted
    and inserted again with the new totals, in the chunk's transaction — which costs two
    statements where Django's bulk_update would build one CASE per field and row."""
    if version_rows:
        existing = _existing(VersionCounts, {(v, p, s) for v, p, s in version_rows})
        rows = []
        for key, new in version_rows.items():
            old = existing.get(key)
            row = VersionCounts(version_id=key[0], period=key[1], start=key[2])
            for name in _SUMMED:
                setattr(row, name, (getattr(old, name) if old else 0) + new[name])
            row.latency_ms_sum = (old.latency_ms_sum if old else 0.0) + new["latency_ms_sum"]
            row.cpu_ms_sum = (old.cpu_ms_sum if old else 0.0) + new["cpu_ms_sum"]
            row.score_counts = _add_list(old.score_counts if old else [], new["score_counts"])
            row.score_sums = _add_list(old.score_sums if old else [], new["score_sums"],
                                       floats=True)
            for name in ("labels", "ood_codes", "latency_counts"):
                setattr(row, name, _add_dict(getattr(old, name) if old else {}, new[name]))
            rows.append(row)
        _replace(VersionCounts, [r.pk for r in existing.values()], rows)
    if feature_rows:
        existing = _existing(FeatureCounts, {(v, p, s) for v, p, s, _f in feature_rows},
                             feature=True)
        rows = []
        for key, (counts, missing) in feature_rows.items():
            old = existing.get(key)
            rows.append(FeatureCounts(
                version_id=key[0], period=key[1], start=key[2], feature=key[3],
                counts=_add_list(old.counts if old else [], counts),
                missing=(old.missing if old else 0) + missing))
        _replace(FeatureCounts, [r.pk for r in existing.values()
                                 if (r.version_id, r.period, r.start, r.feature) in feature_rows],
                 rows)


def _replace(model, stale: list[int], rows: list) -> None:
    for start in range(0, len(stale), 5000):
        model.objects.filter(pk__in=stale[start:start + 5000]).delete()
    model.objects.bulk_create(rows, batch_size=500)


def _existing(model, keys: set[tuple], *, feature: bool = False) -> dict:
    """Stored rows for (version, period, start) keys, by their full key."""
    by_version: dict[tuple, set] = defaultdict(set)
    for version_id, period, start in keys:
        by_version[(version_id, period)].add(start)
    out = {}
    for (version_id, period), starts in by_version.items():
        query = model.objects.filter(version_id=version_id, period=period,
                                     start__in=sorted(starts))
        for row in query:
            key = (row.version_id, row.period, row.start)
            out[(*key, row.feature) if feature else key] = row
    return out


def _drop_old_hours() -> None:
    cutoff = timezone.now() - HOUR_ROWS_KEPT
    FeatureCounts.objects.filter(period=Period.HOUR, start__lt=cutoff).delete()
    VersionCounts.objects.filter(period=Period.HOUR, start__lt=cutoff).delete()


def aggregation_lag() -> dict:
    """How far the counts trail the log (for the page and the health check)."""
    last = watermark()
    newest = Prediction.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return {"aggregated_through": last, "newest": newest, "behind": max(0, newest - last),
            "checked_at": time.time()}
