from __future__ import annotations

import json

from django.core.files.uploadedfile import SimpleUploadedFile

from registry import services

from ..artifacts import FEATURES_SMALL, logistic_model, skops_bytes, training_csv


def register_dataset(user, *, name: str = "sepsis-cohort", version: str = "2024.1"):
    return services.dataset_version_register(
        user=user, name=name, version=version, source="EHR extract, site A",
        inclusion_criteria="adults admitted via ED", protocol_number="IRB-2024-001",
        deidentification="HIPAA Safe Harbor", date_start="2020-01-01", date_end="2023-12-31",
        data_file=SimpleUploadedFile("train.csv", training_csv()))


def register_version(user, model, dataset, *, data: bytes | None = None, name="model.skops",
                     **metadata):
    meta = {"dataset": dataset.pk, "input_schema": FEATURES_SMALL, **metadata}
    return services.model_version_register(
        user=user, model=model, artifact=SimpleUploadedFile(name, data or skops_bytes(
            logistic_model())), metadata=meta)


def multipart_version(data: bytes, metadata: dict, name: str = "model.skops") -> dict:
    return {"artifact": SimpleUploadedFile(name, data), "metadata": json.dumps(metadata)}
