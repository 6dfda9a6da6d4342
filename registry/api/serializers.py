"""Request and response shapes of the registry API (also the OpenAPI schema)."""

from __future__ import annotations

from rest_framework import serializers

from ..lifecycle import allowed_next
from ..models import DatasetVersion, ModelVersion, RegisteredModel, TrustedType
from ..schema import MODEL_CARD_HELP


class ModelCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="Unique; lower-case letters, digits, . _ -")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    required_signoffs = serializers.ListField(child=serializers.CharField(), required=False,
                                              help_text="Default: pi_approval, irb_approval")
    retention_days = serializers.IntegerField(required=False, default=365, min_value=1,
                                              max_value=36500)


class VersionBriefSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="number")

    class Meta:
        model = ModelVersion
        fields = ["version", "state", "content_hash", "artifact_sha256", "created_at"]


class ModelSerializer(serializers.ModelSerializer):
    production_version = serializers.SerializerMethodField()
    shadow_version = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username")
    capabilities = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["name", "description", "required_signoffs", "retention_days", "created_by",
                  "created_at", "production_version", "shadow_version", "versions",
                  "capabilities"]

    def _versions(self, obj):
        cache = getattr(obj, "_prefetched_objects_cache", {}).get("versions")
        return list(cache) if cache is not None else list(obj.versions.order_by("-number"))

    def get_production_version(self, obj) -> int | None:
        return next((v.number for v in self._versions(obj) if v.state == "production"), None)

    def get_shadow_version(self, obj) -> int | None:
        return next((v.number for v in self._versions(obj) if v.shadow), None)

    def get_versions(self, obj) -> list[dict]:
        return VersionBriefSerializer(self._versions(obj), many=True).data

    def get_capabilities(self, obj) -> list[str]:
        caps = self.context.get("capabilities", {}).get(obj.pk)
        return sorted(caps) if caps is not None else []


class DatasetSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    file_stored = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = ["id", "name", "version", "description", "sha256", "row_count", "file_format",
                  "columns", "profile", "source", "inclusion_criteria", "exclusion_criteria",
                  "date_start", "date_end", "protocol_number", "deidentification", "file_stored",
                  "file_size", "created_by", "created_at"]

    def get_file_stored(self, obj) -> bool:
        return bool(obj.file_key)


class DatasetCreateSerializer(serializers.Serializer):
    """Either ``file`` (multipart; profiled on the server) or ``sha256`` + ``columns`` +
    ``row_count`` + ``profile`` as produced locally by ``attest profile``."""

    name = serializers.CharField(max_length=100)
    version = serializers.CharField(max_length=50)
    source = serializers.CharField(help_text="Where the data came from (registry, EHR extract, …)")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    inclusion_criteria = serializers.CharField(required=False, allow_blank=True, default="")
    exclusion_criteria = serializers.CharField(required=False, allow_blank=True, default="")
    date_start = serializers.DateField(required=False, allow_null=True, default=None)
    date_end = serializers.DateField(required=False, allow_null=True, default=None)
    protocol_number = serializers.CharField(required=False, allow_blank=True, default="",
                                            max_length=100)
    deidentification = serializers.CharField(required=False, allow_blank=True, default="")
    file = serializers.FileField(required=False, allow_empty_file=True,
                                 help_text="CSV or Parquet data file")
    file_format = serializers.ChoiceField(choices=["csv", "parquet"], required=False)
    store_file = serializers.BooleanField(required=False, default=False,
                                          help_text="Keep the raw file (default: keep only hash "
                                                    "and profile)")
    sha256 = serializers.CharField(required=False, min_length=64, max_length=64)
    row_count = serializers.IntegerField(required=False, min_value=1)
    columns = serializers.JSONField(required=False)
    profile = serializers.JSONField(required=False)


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="number")
    dataset = serializers.SerializerMethodField()
    format = serializers.CharField(source="artifact_format")
    created_by = serializers.CharField(source="created_by.username")
    submitted_by = serializers.CharField(source="submitted_by.username", default=None)
    allowed_next = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["model", "version", "state", "allowed_next", "shadow", "content_hash",
                  "description",
                  "artifact_sha256", "artifact_size", "format", "trusted_types", "framework",
                  "framework_version", "library_versions", "estimator", "input_schema",
                  "output_schema", "dataset", "code_reference", "hyperparameters", "metrics",
                  "confidence_threshold", "ood_policy", "model_card", "runbook", "dry_run",
                  "reproducibility",
                  "created_by", "created_at", "updated_at", "submitted_by", "submitted_at"]

    def get_dataset(self, obj) -> dict:
        d = obj.dataset
        return {"id": d.pk, "name": d.name, "version": d.version, "sha256": d.sha256,
                "row_count": d.row_count}

    def get_allowed_next(self, obj) -> list[str]:
        return allowed_next(obj.state)


class VersionCreateSerializer(serializers.Serializer):
    artifact = serializers.FileField(allow_empty_file=True,
                                     help_text="A .skops or .onnx file (pickle/joblib refused)")
    metadata = serializers.JSONField(help_text=(
        "JSON object. Keys: dataset (required: id or \"name@version\"), format (skops|onnx; "
        "default from the file suffix), trusted_types (skops types beyond skops' defaults), "
        "input_schema (list of feature names or objects {name, type, unit, required, min, max, "
        "categories, missing}; defaults from the training profile), output_schema ({labels, "
        "positive_label, label_names, score_meaning}), code_reference, hyperparameters, "
        "metrics ({overall: {...}, subgroups: [{name, n, metrics}]}), confidence_threshold "
        "(0..1), ood_policy (reject|review), model_card (" + MODEL_CARD_HELP + "), runbook "
        "(Markdown), description, "
        "reproducibility ({reference_rows: [{feature: value}], probabilities: [[...]], "
        "environment: {python, platform, packages: {name: version}}}: the owner's scores of a "
        "few reference rows, re-scored here at registration and recorded as evidence)."))


class VersionPatchSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    dataset = serializers.JSONField(required=False)
    input_schema = serializers.JSONField(required=False)
    output_schema = serializers.JSONField(required=False)
    code_reference = serializers.CharField(required=False, allow_blank=True)
    hyperparameters = serializers.JSONField(required=False)
    metrics = serializers.JSONField(required=False)
    confidence_threshold = serializers.FloatField(required=False)
    ood_policy = serializers.ChoiceField(choices=["reject", "review"], required=False)
    model_card = serializers.CharField(required=False, allow_blank=True,
                                       help_text=MODEL_CARD_HELP)
    runbook = serializers.CharField(required=False, allow_blank=True)


class GrantSerializer(serializers.Serializer):
    user = serializers.CharField(help_text="username")
    role = serializers.CharField()


class SignoffSerializer(serializers.Serializer):
    meaning = serializers.CharField(help_text="e.g. pi_approval, irb_approval")
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False,
                                     help_text="Your own password (the second signature component)")
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    content_hash = serializers.CharField(required=False, min_length=64, max_length=64,
                                         help_text="The content hash you reviewed; refused if it "
                                                   "is not the version's")


class RollbackSerializer(serializers.Serializer):
    to_version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField()


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ModelPatchSerializer(serializers.Serializer):
    required_signoffs = serializers.ListField(child=serializers.CharField())


class TrustedTypeSerializer(serializers.ModelSerializer):
    added_by = serializers.CharField(source="added_by.username", default=None, allow_null=True)

    class Meta:
        model = TrustedType
        fields = ["name", "reason", "added_by", "created_at"]


class TrustedTypeCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=300, help_text="Exact dotted name, e.g. "
                                 "sklearn.tree._tree.Tree (as skops.io.get_untrusted_types says)")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="",
                                   help_text="Why models may hold it (shown to uploaders)")
