"""Background samples an owner uploads for the explainers (optional).

A small de-identified CSV (header + at most ``MAX_ROWS`` rows) sent with a dataset
version or a model version (a draft: from submit on, what reviewers see is fixed).
It is checked against the columns it must cover (every value parses as its feature's
type; a category is one the schema allows), hashed, stored content-addressed in the
artifact store and recorded in the audit trail. Without one, the explainers use the
synthetic sample drawn from the training profile (``explain.space``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import threading
from collections.abc import Callable

from django.db import IntegrityError, transaction

from audits.models import Action
from audits.services import audit_event_record
from core.errors import Conflict, ErrorItem, NotFound, PayloadTooLarge, ValidationFailed
from registry.models import DatasetVersion, ModelVersion, VersionState
from registry.roles import Capability, is_global_admin
from registry.selectors import require_capability
from registry.storage import blob_delete, blob_put, blob_read_verified

from .models import BackgroundSample, BackgroundSource

MAX_ROWS = 1000
MAX_BYTES = 4 * 1024 * 1024
MAX_ERRORS = 20


def _columns_for_version(version: ModelVersion) -> list[dict]:
    return [{"name": f["name"], "type": f["type"], "categories": f.get("categories"),
             "required": f.get("required", True)} for f in version.input_schema]


def _columns_for_dataset(dataset: DatasetVersion) -> list[dict]:
    return [{"name": c["name"], "type": c["type"], "categories": None, "required": False}
            for c in dataset.columns]


def _parse_value(text: str, column: dict):
    kind = column["type"]
    if kind in ("number", "integer"):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if kind == "integer":
            if not value.is_integer():
                raise ValueError("not a whole number")
            return int(value)
        return value
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ValueError("not true or false")
        return lowered == "true"
    allowed = column.get("categories")
    if allowed and text not in [str(a) for a in allowed]:
        raise ValueError("not one of the allowed categories")
    return text


def parse_background(data: bytes, columns: list[dict], *, require_all: bool = True
                     ) -> list[dict]:
    """The rows of a background CSV, every value typed; ValidationFailed lists what is
    wrong (up to MAX_ERRORS problems). ``require_all``: every column must be present (a
    version's features); else a subset will do (a dataset's columns, the label left out)."""
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(f"A background sample is at most {MAX_BYTES // 1048576} MB.",
                              code="too_large", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("The background sample must be UTF-8 CSV text.",
                               code="encoding", field="file") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ValidationFailed("The background sample is empty: send a header line and rows.",
                               code="empty_file", field="file")
    header = [h.strip() for h in header]
    by_name = {c["name"]: c for c in columns}
    problems: list[ErrorItem] = []
    missing = [n for n in by_name if n not in header] if require_all else []
    unknown = [h for h in header if h not in by_name]
    if missing:
        problems.append(ErrorItem("missing_columns", "The background sample lacks columns: "
                                  + ", ".join(missing) + ".", "file"))
    if unknown:
        problems.append(ErrorItem("unknown_columns", "Columns not in the schema: "
                                  + ", ".join(u[:60] for u in unknown[:10]) + ".", "file"))
    if len(set(header)) != len(header):
        problems.append(ErrorItem("duplicate_columns", "A column is named twice.", "file"))
    if problems:
        raise ValidationFailed(items=problems)
    rows: list[dict] = []
    for number, record in enumerate(reader, start=1):
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) >= MAX_ROWS:
            raise ValidationFailed(f"A background sample has at most {MAX_ROWS} rows.",
                                   code="too_many_rows", field="file")
        if len(record) != len(header):
            problems.append(ErrorItem("ragged_row", f"Row {number} has {len(record)} fields; "
                                      f"the header has {len(header)}.", "file"))
            continue
        row = {}
        for name, cell in zip(header, record, strict=True):
            column, cell = by_name[name], cell.strip()
            if cell == "":
                if column["required"]:
                    problems.append(ErrorItem("missing_value", f"Row {number}: {name} is "
                                              "required by the schema.", "file"))
                row[name] = None
                continue
            try:
                row[name] = _parse_value(cell, column)
            except ValueError as exc:
                problems.append(ErrorItem("invalid_value", f"Row {number}: {name} is {exc} "
                                          f"(type {column['type']}).", "file"))
        if len(problems) >= MAX_ERRORS:
            break
        rows.append(row)
    if problems:
        raise ValidationFailed(items=problems[:MAX_ERRORS])
    if not rows:
        raise ValidationFailed("The background sample has a header but no rows.",
                               code="no_rows", field="file")
    return rows


def background_upload(*, user, data: bytes, deidentification: str,
                      version: ModelVersion | None = None,
                      dataset: DatasetVersion | None = None) -> BackgroundSample:
    """Store a background sample for a draft model version or a dataset version.

    1. Permission: edit_draft on the version's model (the version a draft); for a
       dataset, the user who registered it (or an admin). One sample each, never
       replaced (409).
    2. The CSV is parsed and checked against the columns (``parse_background``); a
       de-identification statement is required.
    3. The bytes are stored under their sha256; the row and its audit event commit
       together (a blob stored just now is deleted if they do not).
    """
    if (version is None) == (dataset is None):
        raise ValueError("a background sample belongs to a version or a dataset")
    if version is not None:
        require_capability(user=user, model=version.model, capability=Capability.EDIT_DRAFT)
        if version.state != VersionState.DRAFT:
            raise Conflict(f"{version} is {version.get_state_display().lower()}: a background "
                           "sample is added while the version is a draft.", code="not_draft")
        columns = _columns_for_version(version)
        existing = BackgroundSample.objects.filter(version=version).exists()
    else:
        if not (is_global_admin(user) or dataset.created_by_id == user.pk):
            raise NotFound("No such dataset version.")
        columns = _columns_for_dataset(dataset)
        existing = BackgroundSample.objects.filter(dataset=dataset).exists()
    require_all = version is not None
    if existing:
        raise Conflict("A background sample is already stored; samples are never replaced.",
                       code="background_exists")
    if not (deidentification or "").strip():
        raise ValidationFailed("Say how the sample was de-identified.", code="required",
                               field="deidentification")
    rows = parse_background(data, columns, require_all=require_all)
    present = [c["name"] for c in columns if c["name"] in rows[0]]
    sha = hashlib.sha256(data).hexdigest()
    key, created = blob_put(io.BytesIO(data), sha)
    owner = version if version is not None else dataset
    try:
        with transaction.atomic():
            sample = BackgroundSample.objects.create(
                version=version, dataset=dataset, sha256=sha, key=key, size=len(data),
                rows=len(rows), columns=present,
                deidentification=deidentification.strip(), uploaded_by=user)
            fields = ({"model_id": version.model_id, "model_name": version.model.name,
                       "version_id": version.pk, "version_label": version.label}
                      if version is not None else {})
            audit_event_record(action=Action.BACKGROUND_UPLOADED, obj=sample,
                               object_repr=f"background sample of {owner}", **fields,
                               after={"sha256": sha, "rows": len(rows), "size": len(data),
                                      "for": str(owner), "key": key,
                                      "deidentification": sample.deidentification})
    except IntegrityError:
        if created:
            blob_delete(key)
        raise Conflict("A background sample is already stored; samples are never replaced.",
                       code="background_exists") from None
    except BaseException:
        if created and not BackgroundSample.objects.filter(key=key).exists():
            blob_delete(key)
        raise
    return sample


_parsed: dict[str, list[dict]] = {}
_parsed_lock = threading.Lock()


def _rows_loader(sample: BackgroundSample, columns: list[dict],
                 require_all: bool) -> Callable[[], list[dict]]:
    def load() -> list[dict]:
        with _parsed_lock:
            hit = _parsed.get(sample.sha256)
        if hit is None:
            # Verified on every read from the store: changed bytes are refused.
            hit = parse_background(blob_read_verified(sample.key, sample.sha256), columns,
                                   require_all=require_all)
            with _parsed_lock:
                _parsed[sample.sha256] = hit
        return hit

    return load


def uploaded_background_rows(*, version: ModelVersion):
    """(source, sha256 of the file, sample id, rows loader) of the version's uploaded
    sample, else its dataset's; None when neither was uploaded."""
    sample = BackgroundSample.objects.filter(version=version).first()
    if sample is not None:
        return (BackgroundSource.VERSION_UPLOAD, sample.sha256, sample.pk,
                _rows_loader(sample, _columns_for_version(version), True))
    sample = BackgroundSample.objects.filter(dataset_id=version.dataset_id).first()
    # A dataset's sample serves the versions whose features it covers.
    if sample is not None and {f["name"] for f in version.input_schema} <= set(sample.columns):
        return (BackgroundSource.DATASET_UPLOAD, sample.sha256, sample.pk,
                _rows_loader(sample, _columns_for_dataset(version.dataset), False))
    return None
