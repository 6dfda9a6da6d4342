"""Writes to the registry. Each service checks permission, validates, changes
rows inside one transaction and records its audit events in that transaction."""

from __future__ import annotations

import logging
import os
import re
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.errors import Conflict, ErrorItem, PermissionDenied, ValidationFailed
from core.hashing import normalize_json, sha256_json
from profiling import ProfilingError, profile_file, validate_profile

from . import lifecycle
from .artifacts import CONVERT_HELP, detect_pickle, inspect_artifact
from .extensions import version_submitted
from .loading import (
    artifact_model_load,
    artifact_model_remember,
    artifact_read_verified,
    models_clear,
)
from .models import (
    MODEL_NAME_VALIDATOR,
    ArtifactFormat,
    DatasetVersion,
    DocumentMeaning,
    ModelAccessGrant,
    ModelVersion,
    RegisteredModel,
    VersionState,
)
from .onnx_evidence import serving_runtime_build
from .reproducibility import reproducibility_check, reproducibility_parse, reproducibility_summary
from .roles import SIGNING_ROLES, Capability, ModelRole, can_create_models, is_global_admin
from .runtime import LoadedModel, bind_features, declared_features, dry_run, load_model
from .sandbox import sandbox_run
from .schema import (
    build_input_schema,
    build_output_schema,
    validate_metrics,
    validate_ood_policy,
    validate_threshold,
)
from .selectors import model_list_for_user, require_capability
from .storage import blob_delete, blob_put, spool_upload
from .trust import trusted_type_names

log = logging.getLogger(__name__)

DEFAULT_SIGNOFFS = ["pi_approval", "irb_approval"]
MAX_SIGNOFFS = 10
RESERVED_NAMES = frozenset({"new"})  # clashes with the portal's /models/new/
_MEANING = re.compile(r"^[a-z][a-z0-9_]{1,49}$")


def _deny(*, model: RegisteredModel | None, capability: str, what: str,
          message: str | None = None) -> PermissionDenied:
    """Record a refused write attempt and return the error to raise.

    Call it outside a transaction (before any atomic block): the event then commits
    on its own, and the refusal stays on record.
    """
    audit_event_record(action=Action.PERMISSION_DENIED, object_type="registry.registeredmodel",
                       object_id=model.pk if model else "", object_repr=model.name if model else "",
                       model_id=model.pk if model else None,
                       model_name=model.name if model else "",
                       details={"capability": capability, "attempt": what})
    return PermissionDenied(message or (f"You lack the '{capability}' permission"
                                        + (f" on {model.name}." if model else ".")),
                            code="permission_denied")


def _require(*, user, model: RegisteredModel, capability: str, what: str) -> None:
    try:
        require_capability(user=user, model=model, capability=capability)
    except PermissionDenied:
        raise _deny(model=model, capability=capability, what=what) from None


def _model_event_fields(model: RegisteredModel) -> dict:
    return {"model_id": model.pk, "model_name": model.name}


def _version_event_fields(version: ModelVersion) -> dict:
    return {"model_id": version.model_id, "model_name": version.model.name,
            "version_id": version.pk, "version_label": version.label}


# -- registered models -------------------------------------------------------------------

def _validate_signoffs(value: Any, *, allow_default: bool = True) -> list[str]:
    """A release policy: a non-empty list of distinct meanings (None: the default)."""
    if value is None and allow_default:
        return list(DEFAULT_SIGNOFFS)
    if not isinstance(value, list) or not all(isinstance(v, str) and _MEANING.match(v) for v in value):
        raise ValidationFailed("required_signoffs must be a list of meanings such as "
                               "\"pi_approval\" (lower-case letters, digits, '_').",
                               code="invalid", field="required_signoffs")
    if len(set(value)) != len(value):
        raise ValidationFailed("required_signoffs lists a meaning twice.", code="invalid",
                               field="required_signoffs")
    documents = [v for v in value if v in DocumentMeaning.values]
    if documents:
        raise ValidationFailed(f"{', '.join(documents)} signs a document about a version (a "
                               "compliance dossier), not its release: a release policy cannot "
                               "require it.", code="document_meaning", field="required_signoffs")
    if not value:
        raise ValidationFailed("A release policy needs at least one sign-off: with none, no "
                               "version could ever be approved.", code="empty_policy",
                               field="required_signoffs")
    if len(value) > MAX_SIGNOFFS:
        raise ValidationFailed(f"A release policy lists at most {MAX_SIGNOFFS} sign-offs.",
                               code="invalid", field="required_signoffs")
    return list(value)


def registered_model_create(*, user, name: str, description: str = "",
                            required_signoffs: list[str] | None = None,
                            retention_days: int = 365) -> RegisteredModel:
    if not can_create_models(user):
        raise _deny(model=None, capability="create_model", what=f"create model {name!r}")
    if (required_signoffs is not None and required_signoffs != DEFAULT_SIGNOFFS
            and not is_global_admin(user)):
        raise _deny(model=None, capability="manage_release_policy",
                    what=f"create model {name!r} with release policy {required_signoffs!r}",
                    message="Only administrators set a release policy other than the default "
                            f"({', '.join(DEFAULT_SIGNOFFS)}); leave it out, or ask one.")
    problems: list[ErrorItem] = []
    name = (name or "").strip()
    try:
        MODEL_NAME_VALIDATOR(name)
    except DjangoValidationError as exc:
        problems.append(ErrorItem("invalid_name", exc.messages[0], "name"))
    if not isinstance(retention_days, int) or isinstance(retention_days, bool) or not (
            1 <= retention_days <= 36500):
        problems.append(ErrorItem("invalid", "retention_days must be a whole number of days "
                                  "between 1 and 36500.", "retention_days"))
    if not isinstance(description, str):
        problems.append(ErrorItem("invalid", "description must be text.", "description"))
    if name in RESERVED_NAMES:
        problems.append(ErrorItem("invalid_name", f"'{name}' is reserved; choose another name.",
                                  "name"))
    if problems:
        raise ValidationFailed(items=problems)
    signoffs = _validate_signoffs(required_signoffs)
    try:
        with transaction.atomic():
            if RegisteredModel.objects.filter(name=name).exists():
                raise IntegrityError
            model = RegisteredModel.objects.create(
                name=name, description=description, required_signoffs=signoffs,
                retention_days=retention_days, created_by=user)
            ModelAccessGrant.objects.create(model=model, user=user, role=ModelRole.OWNER,
                                            granted_by=user)
            audit_event_record(action=Action.MODEL_CREATED, obj=model, **_model_event_fields(model),
                               after={"name": name, "description": description,
                                      "required_signoffs": signoffs,
                                      "retention_days": retention_days})
            audit_event_record(action=Action.ACCESS_GRANTED, object_type="registry.modelaccessgrant",
                               object_repr=f"{user.get_username()} is owner of {name}",
                               **_model_event_fields(model),
                               after={"user": user.get_username(), "role": ModelRole.OWNER})
    except IntegrityError:
        raise Conflict(f"A model named '{name}' already exists.", code="duplicate_name",
                       field="name") from None
    return model


# -- dataset versions ------------------------------------------------------------------------

def can_register_datasets(user) -> bool:
    return is_global_admin(user) or can_create_models(user) or model_list_for_user(
        user=user, capability=Capability.REGISTER_VERSION).exists()


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DATASET_TEXT_FIELDS = ("description", "source", "inclusion_criteria", "exclusion_criteria",
                       "protocol_number", "deidentification")


def _parse_date(value: Any, field: str, problems: list[ErrorItem]) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(ErrorItem("invalid_date", "Use an ISO date such as 2024-01-31.", field))
        return None


def dataset_version_register(
    *, user, name: str, version: str, source: str, description: str = "",
    inclusion_criteria: str = "", exclusion_criteria: str = "", date_start: Any = None,
    date_end: Any = None, protocol_number: str = "", deidentification: str = "",
    data_file=None, file_name: str | None = None, file_format: str | None = None,
    store_file: bool = False, sha256: str | None = None, profile: dict | None = None,
    columns: list[dict] | None = None, row_count: int | None = None,
) -> DatasetVersion:
    """Register a dataset version from a file (profiled here) or a hash + profile made elsewhere."""
    if not can_register_datasets(user):
        raise _deny(model=None, capability=Capability.REGISTER_VERSION,
                    what=f"register dataset {name!r}")
    problems: list[ErrorItem] = []
    name = (name or "").strip()
    version = str(version or "").strip()
    try:
        MODEL_NAME_VALIDATOR(name)
    except DjangoValidationError as exc:
        problems.append(ErrorItem("invalid_name", exc.messages[0], "name"))
    if not version or len(version) > 50:
        problems.append(ErrorItem("required", "version is required (at most 50 characters).",
                                  "version"))
    if not (source or "").strip():
        problems.append(ErrorItem("required", "source is required: say where the data came from.",
                                  "source"))
    start = _parse_date(date_start, "date_start", problems)
    end = _parse_date(date_end, "date_end", problems)
    if start and end and start > end:
        problems.append(ErrorItem("invalid_range", "date_start is after date_end.", "date_start"))
    if data_file is None:
        if not isinstance(sha256, str) or not _SHA256.match(sha256 or ""):
            problems.append(ErrorItem("required", "Send a data file, or sha256 (64 lower-case hex "
                                      "characters) with the profile computed by `attest profile`.",
                                      "sha256"))
        if not isinstance(row_count, int) or isinstance(row_count, bool) or row_count < 1:
            problems.append(ErrorItem("invalid", "row_count must be a positive integer.", "row_count"))
        if not isinstance(columns, list) or not columns:
            problems.append(ErrorItem("required", "columns must list the dataset's columns.",
                                      "columns"))
        if not isinstance(profile, dict):
            problems.append(ErrorItem("required", "profile is required with sha256.", "profile"))
        elif isinstance(columns, list):
            for field, code, message in validate_profile(profile, columns):
                problems.append(ErrorItem(code, message, field))
    if problems:
        raise ValidationFailed(items=problems)
    if data_file is not None:
        path, file_sha, file_size = spool_upload(data_file, limit=settings.ATTEST_MAX_UPLOAD_BYTES)
        try:
            suffix_name = file_name or getattr(data_file, "name", "") or ""
            fmt = file_format or (Path(suffix_name).suffix.lstrip(".").lower() or None)
            if fmt == "pq":
                fmt = "parquet"
            try:
                result = profile_file(path, file_format=fmt)
            except ProfilingError as exc:
                raise ValidationFailed(exc.message, code=exc.code, field="file") from None
            if sha256 and sha256 != result.sha256:
                raise ValidationFailed("The sha256 sent does not match the uploaded file's.",
                                       code="hash_mismatch", field="sha256")
            sha256, row_count = result.sha256, result.row_count
            columns, profile, file_format = result.columns, result.profile, result.file_format
            stored_key, created = ("", False)
            if store_file:
                with open(path, "rb") as handle:
                    stored_key, created = blob_put(handle, file_sha)
        finally:
            os.unlink(path)
    else:
        stored_key, created, file_size = "", False, None
    try:
        with transaction.atomic():
            if DatasetVersion.objects.filter(name=name, version=version).exists():
                raise IntegrityError
            dataset = DatasetVersion.objects.create(
                name=name, version=version, description=description, sha256=sha256,
                row_count=row_count, file_format=file_format or "", columns=normalize_json(columns),
                profile=normalize_json(profile), source=source.strip(),
                inclusion_criteria=inclusion_criteria, exclusion_criteria=exclusion_criteria,
                date_start=start, date_end=end, protocol_number=protocol_number,
                deidentification=deidentification, file_key=stored_key,
                file_size=file_size if stored_key else None, created_by=user)
            audit_event_record(action=Action.DATASET_REGISTERED, obj=dataset, after={
                "name": name, "version": version, "sha256": sha256, "row_count": row_count,
                "columns": [c["name"] for c in columns], "file_stored": bool(stored_key),
                "source": source, "protocol_number": protocol_number})
    except IntegrityError:
        if created and not DatasetVersion.objects.filter(file_key=stored_key).exists():
            blob_delete(stored_key)
        raise Conflict(f"Dataset {name} version {version} is already registered.",
                       code="duplicate_version", field="version") from None
    except BaseException:
        if created and not DatasetVersion.objects.filter(file_key=stored_key).exists():
            blob_delete(stored_key)
        raise
    return dataset


# -- model versions ----------------------------------------------------------------------------

VERSION_METADATA_KEYS = {
    "format", "dataset", "description", "trusted_types", "input_schema", "output_schema",
    "code_reference", "hyperparameters", "metrics", "confidence_threshold", "ood_policy",
    "model_card", "runbook", "reproducibility",
}
# The reproducibility record is evidence measured at registration: never edited.
EDITABLE_KEYS = VERSION_METADATA_KEYS - {"format", "trusted_types", "reproducibility"}
CONTENT_FIELDS = ("artifact_sha256", "artifact_format", "trusted_types", "input_schema",
                  "output_schema", "confidence_threshold", "ood_policy", "model_card", "runbook")


def version_content_hash(version: ModelVersion) -> str:
    """sha256 over what a sign-off approves: artifact and dataset hashes, schemas,
    threshold, OOD policy, model card and runbook (canonical JSON)."""
    material = {name: getattr(version, name) for name in CONTENT_FIELDS}
    material["dataset_sha256"] = version.dataset.sha256
    material["dataset"] = f"{version.dataset.name}@{version.dataset.version}"
    # From submit on, the serving evidence (derived ONNX file, equivalence check)
    # is part of what reviewers approve; drafts have none yet.
    runtime = (getattr(version, "serving_runtime", None)
               if version.pk and version.state != VersionState.DRAFT else None)
    if runtime is not None:
        evidence = serving_evidence(runtime)
        material["serving"] = {k: evidence[k] for k in ("status", "onnx_sha256", "single_runtime",
                                                        "batch_runtime")}
    # Versions registered with the owner's reference scores: reviewers sign that evidence
    # too (versions without it keep the hash they always had).
    if version.reproducibility:
        material["reproducibility"] = version.reproducibility
    return sha256_json(material)


def _text(metadata: dict, key: str, problems: list[ErrorItem], limit: int = 200_000) -> str:
    value = metadata.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        problems.append(ErrorItem("invalid", f"{key} must be text (at most {limit} characters).",
                                  f"metadata.{key}"))
        return ""
    return value


def _resolve_dataset(user, ref: Any) -> DatasetVersion:
    from .selectors import dataset_list_for_user

    qs = dataset_list_for_user(user=user)
    dataset = None
    if isinstance(ref, int) and not isinstance(ref, bool):
        dataset = qs.filter(pk=ref).first()
    elif isinstance(ref, str) and "@" in ref:
        name, _, label = ref.partition("@")
        dataset = qs.filter(name=name, version=label).first()
    elif isinstance(ref, str) and ref.isdigit():
        dataset = qs.filter(pk=int(ref)).first()
    elif isinstance(ref, dict):
        dataset = qs.filter(name=ref.get("name"), version=str(ref.get("version"))).first()
    if dataset is None:
        raise ValidationFailed("dataset must name a dataset version you can see: its id, "
                               "\"name@version\", or {\"name\": …, \"version\": …}.",
                               code="unknown_dataset", field="metadata.dataset")
    return dataset


def _artifact_format(metadata: dict, file_name: str) -> str:
    fmt = metadata.get("format")
    if fmt is None:
        suffix = Path(file_name or "").suffix.lower()
        fmt = {".skops": "skops", ".onnx": "onnx"}.get(suffix)
    if fmt not in ArtifactFormat.values:
        raise ValidationFailed("metadata.format must be 'skops' or 'onnx' (or name the file "
                               "*.skops / *.onnx).", code="unsupported_format",
                               field="metadata.format")
    return fmt


def _prepare_interface(*, loaded: LoadedModel, metadata: dict, dataset: DatasetVersion,
                       previous: ModelVersion | None = None) -> tuple[list, dict, dict]:
    """Build schemas with profile defaults, bind them to the model and dry-run it."""
    declared = metadata.get("input_schema", previous.input_schema if previous else None)
    schema = build_input_schema(declared, dataset_columns=dataset.columns, profile=dataset.profile,
                                feature_names=declared_features(loaded))
    bind_features(loaded, [f["name"] for f in schema])
    declared_output = metadata.get("output_schema", previous.output_schema if previous else None)
    labels_given = isinstance(declared_output, dict) and declared_output.get("labels")
    result = dry_run(loaded, schema, dataset.profile,
                     n_labels=len(loaded.classes or labels_given or []) or None)
    classes = loaded.classes or [str(i) for i in range(len(result["probabilities"]))]
    output = build_output_schema(declared_output, classes=classes)
    return schema, output, result


def _validated_fields(metadata: dict, problems: list[ErrorItem]) -> dict:
    fields: dict[str, Any] = {}
    for key in ("description", "code_reference", "model_card", "runbook"):
        if key in metadata:
            fields[key] = _text(metadata, key, problems, 300 if key == "code_reference" else 200_000)
    if "hyperparameters" in metadata:
        value = metadata["hyperparameters"]
        if not isinstance(value, dict):
            problems.append(ErrorItem("invalid", "hyperparameters must be an object.",
                                      "metadata.hyperparameters"))
        else:
            fields["hyperparameters"] = normalize_json(value)
    for key, check in (("metrics", validate_metrics), ("confidence_threshold", validate_threshold),
                       ("ood_policy", validate_ood_policy)):
        if key in metadata:
            try:
                fields[key] = check(metadata[key])
            except ValidationFailed as exc:
                problems.extend(exc.items)
    return fields


def model_version_register(*, user, model: RegisteredModel, artifact, metadata: Any) -> ModelVersion:
    """Register a draft version from an uploaded artifact and its metadata.

    1. Permission, then the metadata document (documented keys only).
    2. The artifact is spooled to a temp file and hashed, inspected (no pickle;
       skops types trusted explicitly), loaded and dry-run on a reference row
       built from the training profile.
    3. The blob is stored under its sha256, then the row and its audit events
       are written in one transaction; if that fails, a blob stored just now
       is deleted again.
    """
    _require(user=user, model=model, capability=Capability.REGISTER_VERSION,
             what="register a model version")
    if not isinstance(metadata, dict):
        raise ValidationFailed("metadata must be a JSON object.", code="invalid", field="metadata")
    problems: list[ErrorItem] = []
    unknown = sorted(set(metadata) - VERSION_METADATA_KEYS)
    if unknown:
        problems.append(ErrorItem("unknown_key", "Unknown metadata keys: " + ", ".join(unknown)
                                  + ". Documented keys: " + ", ".join(sorted(VERSION_METADATA_KEYS))
                                  + ".", "metadata"))
    if artifact is None:
        problems.append(ErrorItem("required", "An artifact file is required.", "artifact"))
    # trusted_types is accepted for older clients but never widens trust: the types a
    # skops file may hold are the administrators' allowlist (registry.trust).
    trusted = metadata.get("trusted_types", [])
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        problems.append(ErrorItem("invalid", "trusted_types must be a list of type names.",
                                  "metadata.trusted_types"))
    if "dataset" not in metadata:
        problems.append(ErrorItem("required", "metadata.dataset must name the training dataset "
                                  "version.", "metadata.dataset"))
    fields = _validated_fields(metadata, problems)
    claim = reproducibility_parse(metadata.get("reproducibility"), problems)
    if problems:
        raise ValidationFailed(items=problems)
    dataset = _resolve_dataset(user, metadata["dataset"])

    path, sha, size = spool_upload(artifact, limit=settings.ATTEST_MAX_UPLOAD_BYTES)
    key, created = "", False
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        # Content first: a pickle named model.pkl must hear why it is refused, not that
        # its suffix is unknown.
        pickled = detect_pickle(data)
        if pickled:
            raise ValidationFailed(f"The artifact is {pickled}. {CONVERT_HELP}",
                                   code="pickle_refused", field="artifact")
        fmt = _artifact_format(metadata, getattr(artifact, "name", ""))
        allowed = trusted_type_names()

        def examine() -> tuple:
            info = inspect_artifact(data, artifact_format=fmt, allowed=allowed)
            loaded = load_model(data, artifact_format=fmt, trusted_types=info.untrusted_types)
            schema, output, dry = _prepare_interface(loaded=loaded, metadata=metadata,
                                                     dataset=dataset)
            evidence = reproducibility_check(loaded=loaded, input_schema=schema, claim=claim)
            return info, loaded, schema, output, dry, evidence

        # First contact in a limited child process (registry.sandbox); only a file that
        # passed there is examined again, and kept, by this process.
        sandbox_run(lambda: bool(examine()), what="model file")
        info, loaded, schema, output, dry, reproducibility = examine()
        with open(path, "rb") as handle:
            key, created = blob_put(handle, sha)
        with transaction.atomic():
            locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
            last = locked.versions.order_by("-number").values_list("number", flat=True).first()
            version = ModelVersion(
                model=locked, number=(last or 0) + 1, state=VersionState.DRAFT,
                artifact_sha256=sha, artifact_key=key, artifact_size=size, artifact_format=fmt,
                trusted_types=info.untrusted_types,
                framework=loaded.details.get("framework", ""),
                framework_version=loaded.details.get("framework_version", ""),
                library_versions=_library_versions(), estimator=loaded.details.get("estimator", ""),
                input_schema=normalize_json(schema), output_schema=normalize_json(output),
                dataset=dataset, dry_run=normalize_json(dry), created_by=user,
                reproducibility=normalize_json(reproducibility), **fields,
            )
            version.content_hash = version_content_hash(version)
            version.save(force_insert=True)
            audit_event_record(action=Action.ARTIFACT_UPLOADED, obj=version,
                               **_version_event_fields(version),
                               details={"sha256": sha, "size": size, "format": fmt,
                                        "key": key, "trusted_types": info.untrusted_types})
            audit_event_record(action=Action.VERSION_REGISTERED, obj=version,
                               **_version_event_fields(version),
                               after=_version_snapshot(version),
                               details={"reproducibility": reproducibility_summary(
                                   version.reproducibility)})
    except BaseException:
        if created and not ModelVersion.objects.filter(artifact_key=key).exists():
            blob_delete(key)
        raise
    finally:
        os.unlink(path)
    artifact_model_remember(version=version, loaded=loaded)
    return version


def _library_versions() -> dict:
    import numpy
    import onnxruntime
    import sklearn
    import skops

    return {"scikit-learn": sklearn.__version__, "skops": skops.__version__,
            "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__}


def _version_snapshot(version: ModelVersion) -> dict:
    return {
        "state": version.state, "content_hash": version.content_hash,
        "artifact_sha256": version.artifact_sha256, "format": version.artifact_format,
        "dataset": f"{version.dataset.name}@{version.dataset.version}",
        "dataset_sha256": version.dataset.sha256,
        "features": [f["name"] for f in version.input_schema],
        "confidence_threshold": version.confidence_threshold, "ood_policy": version.ood_policy,
    }


def model_version_update(*, user, version: ModelVersion, changes: Any) -> ModelVersion:
    """Edit a draft. Anything but a draft is frozen and answers 409."""
    _require(user=user, model=version.model, capability=Capability.EDIT_DRAFT,
             what=f"edit {version}")
    if not isinstance(changes, dict) or not changes:
        raise ValidationFailed("Send the fields to change as a JSON object.", code="invalid")
    lifecycle.check_editable(version.state)
    unknown = sorted(set(changes) - EDITABLE_KEYS)
    if unknown:
        raise ValidationFailed("These fields cannot be edited: " + ", ".join(unknown) + ". Editable: "
                               + ", ".join(sorted(EDITABLE_KEYS)) + ".", code="not_editable",
                               field=unknown[0])
    problems: list[ErrorItem] = []
    fields = _validated_fields(changes, problems)
    if problems:
        raise ValidationFailed(items=problems)
    with transaction.atomic():
        locked = (ModelVersion.objects.select_for_update().select_related("model", "dataset")
                  .get(pk=version.pk))
        lifecycle.check_editable(locked.state)
        before_all = {k: getattr(locked, k) for k in
                      ("description", "code_reference", "hyperparameters", "metrics",
                       "confidence_threshold", "ood_policy", "model_card", "runbook",
                       "input_schema", "output_schema")}
        before_all["dataset"] = f"{locked.dataset.name}@{locked.dataset.version}"
        if {"dataset", "input_schema", "output_schema"} & set(changes):
            dataset = (_resolve_dataset(user, changes["dataset"]) if "dataset" in changes
                       else locked.dataset)
            loaded = artifact_model_load(version=locked)
            schema, output, dry = _prepare_interface(loaded=loaded, metadata=changes,
                                                     dataset=dataset, previous=locked)
            locked.dataset, locked.input_schema, locked.output_schema = dataset, schema, output
            locked.dry_run = normalize_json(dry)
            models_clear()  # the cached instance was bound to the old schema
        for key, value in fields.items():
            setattr(locked, key, value)
        after_all = {k: getattr(locked, k) for k in before_all if k != "dataset"}
        after_all["dataset"] = f"{locked.dataset.name}@{locked.dataset.version}"
        changed = sorted(k for k in before_all if normalize_json(before_all[k])
                         != normalize_json(after_all[k]))
        if not changed:
            return locked
        locked.content_hash = version_content_hash(locked)
        locked.save()
        audit_event_record(action=Action.VERSION_UPDATED, obj=locked,
                           **_version_event_fields(locked),
                           before={k: before_all[k] for k in changed},
                           after={**{k: after_all[k] for k in changed},
                                  "content_hash": locked.content_hash})
    return locked


def model_version_submit(*, user, version: ModelVersion) -> ModelVersion:
    """Freeze a draft and send it for review; its content hash is fixed from here on.

    1. The stored bytes must still be the ones registered (re-verified).
    2. The serving evidence is built (skops → ONNX where skl2onnx supports it,
       equivalence on the reference sample, runtime choice) before the freeze, so
       the content hash — and every signature on it — covers what will be served.
    3. Under a row lock: draft → in_review, content hash fixed, event recorded, the
       submit hooks of the layers above run (``registry.extensions``); signers are
       notified after commit.
    """
    _require(user=user, model=version.model, capability=Capability.SUBMIT_VERSION,
             what=f"submit {version}")
    lifecycle.check_transition(version.state, VersionState.IN_REVIEW)
    data = artifact_read_verified(version=version)
    loaded = artifact_model_load(version=version)
    runtime = serving_runtime_build(version=version, data=data, loaded=loaded)
    with transaction.atomic():
        locked = (ModelVersion.objects.select_for_update().select_related("model", "dataset")
                  .get(pk=version.pk))
        lifecycle.check_transition(locked.state, VersionState.IN_REVIEW)
        locked.state = VersionState.IN_REVIEW
        locked.submitted_by = user
        locked.submitted_at = timezone.now()
        # The policy in force now is the one this version is reviewed under.
        locked.required_signoffs = list(locked.model.required_signoffs)
        locked.content_hash = version_content_hash(locked)
        locked.save()
        audit_event_record(action=Action.VERSION_SUBMITTED, obj=locked,
                           **_version_event_fields(locked),
                           before={"state": VersionState.DRAFT},
                           after={"state": locked.state, "content_hash": locked.content_hash,
                                  "required_signoffs": locked.required_signoffs},
                           details={"serving": serving_evidence(runtime)})
        # Apps above (explain: the version's explanation figures) start their work here,
        # in this transaction, so it is recorded exactly when the submission is.
        version_submitted(version=locked, user=user)
        from .notifications import notify_signers

        transaction.on_commit(lambda: notify_signers(version_id=locked.pk))
    return locked


def serving_evidence(runtime) -> dict | None:
    """What the content hash binds about serving: the derived ONNX file and its check."""
    if runtime is None:
        return None
    return {"status": runtime.status, "onnx_sha256": runtime.onnx_sha256 or None,
            "max_abs_diff": runtime.max_abs_diff, "tolerance": runtime.tolerance,
            "sample_rows": runtime.sample_rows, "single_runtime": runtime.single_runtime,
            "batch_runtime": runtime.batch_runtime}


def model_version_artifact_download(*, user, version: ModelVersion) -> bytes:
    _require(user=user, model=version.model, capability=Capability.DOWNLOAD_ARTIFACT,
             what=f"download the artifact of {version}")
    data = artifact_read_verified(version=version)
    audit_event_record(action=Action.ARTIFACT_DOWNLOADED, obj=version,
                       **_version_event_fields(version),
                       details={"sha256": version.artifact_sha256, "size": len(data)})
    return data


# -- access grants ------------------------------------------------------------------------------

def _require_role_manager(*, user, model: RegisteredModel, role: str, what: str) -> None:
    """Owners manage access; signing roles (approver, IRB) only administrators do."""
    _require(user=user, model=model, capability=Capability.MANAGE_ACCESS, what=what)
    if role in SIGNING_ROLES and not is_global_admin(user):
        raise _deny(model=model, capability="manage_signing_roles", what=what,
                    message=f"Only administrators grant and revoke signing roles "
                            f"({', '.join(sorted(SIGNING_ROLES))}): a model's owner may not "
                            f"choose who approves its releases.")


def access_grant(*, user, model: RegisteredModel, grantee, role: str) -> ModelAccessGrant:
    _require_role_manager(user=user, model=model, role=role, what=f"grant {role} on {model.name}")
    if role not in ModelRole.values:
        raise ValidationFailed(f"role must be one of {', '.join(ModelRole.values)}.",
                               code="invalid_role", field="role")
    if grantee is None or not grantee.is_active:
        raise ValidationFailed("No active user by that name.", code="unknown_user", field="user")
    with transaction.atomic():
        grant, created = ModelAccessGrant.objects.get_or_create(
            model=model, user=grantee, role=role, defaults={"granted_by": user})
        for person in (user, grantee):  # capabilities are cached per user object
            person.__dict__.pop("_attest_caps", None)
        if created:
            audit_event_record(action=Action.ACCESS_GRANTED, obj=grant,
                               **_model_event_fields(model), before=None,
                               after={"user": grantee.get_username(), "role": role})
    return grant


def access_revoke(*, user, model: RegisteredModel, grantee, role: str) -> None:
    _require_role_manager(user=user, model=model, role=role,
                          what=f"revoke {role} on {model.name}")
    with transaction.atomic():
        grant = ModelAccessGrant.objects.select_for_update().filter(
            model=model, user=grantee, role=role).first()
        if grant is None:
            raise ValidationFailed("That user does not hold that role.", code="not_granted",
                                   field="role")
        if role == ModelRole.OWNER and ModelAccessGrant.objects.filter(
                model=model, role=ModelRole.OWNER).count() == 1:
            raise Conflict("A model keeps at least one owner.", code="last_owner", field="role")
        audit_event_record(action=Action.ACCESS_REVOKED, object_type="registry.modelaccessgrant",
                           object_id=grant.pk, object_repr=str(grant), **_model_event_fields(model),
                           before={"user": grantee.get_username(), "role": role}, after=None)
        ModelAccessGrant.objects.filter(pk=grant.pk).delete()
        for person in (user, grantee):
            person.__dict__.pop("_attest_caps", None)
