"""The notebook API: from a fitted estimator to a registered (or submitted) version in one call.

    import attest_client
    attest_client.login("https://attest.example.org")      # once; asks for the password
    attest_client.register(model=clf, X_train=X_train, name="sepsis-risk",
                           dataset={"name": "sepsis-cohort", "version": "2024.1",
                                    "source": "EHR extract, site A"},
                           card="model_card.md", runbook="runbook.md",
                           X_valid=X_valid, y_valid=y_valid, subgroups=["sex"])

What happens, in order (nothing but the profile, the artifact and the metadata leaves
this machine):

1. ``X_train`` is profiled here with the same code the server uses (hash, columns,
   per-column statistics); the dataset version is looked up, or registered from that
   profile when it does not exist yet (no rows are sent).
2. The estimator is saved with skops and loaded back; the types beyond skops'
   defaults are listed (the server's administrators decide whether it trusts them).
   With ``format="onnx"`` it is converted with skl2onnx instead, and both are compared
   on up to 1,000 rows of ``X_train`` here; a difference refuses the conversion.
3. Metrics, overall and per subgroup, are computed on ``X_valid``/``y_valid`` (or
   taken from ``metrics=``).
4. The reproducibility record: synthetic reference rows drawn from the training
   profile, scored here, with this environment's Python and package versions; the
   server scores the same rows and records any difference.
5. The model is created if it does not exist (you become its owner), the version
   is uploaded (progress bar) and, with ``submit=True``, sent for review.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from . import config as config_module
from .artifacts import OnnxScorer, onnx_check, onnx_convert, skops_serialize
from .errors import SchemaMismatch, UnconvertibleModel, UsageError
from .http import Client
from .metrics import compute_metrics
from .registration import (
    Registration,
    check_features,
    model_precheck,
    read_text_or_value,
    register_artifact,
    say,
)
from .reproducibility import environment_record, git_reference, reproducibility_claim

PROVENANCE_KEYS = ("source", "description", "inclusion_criteria", "exclusion_criteria",
                   "date_start", "date_end", "protocol_number", "deidentification")


def login(url: str, username: str | None = None, password: str | None = None, *,
          token_name: str | None = None, days: int | None = None) -> dict:
    """Exchange a password for a personal API token and keep it (0600 config file)."""
    client = Client(url, settings=config_module.Settings())
    username = username or input("Attest username: ")
    password = password if password is not None else getpass.getpass(f"Password for {username}: ")
    token = client.token_create(username=username, password=password,
                                name=token_name or f"attest client on {socket.gethostname()}",
                                days=days)
    settings = config_module.Settings(url=client.url, token=token["token"], username=username,
                                      token_id=token.get("id"),
                                      expires_at=token.get("expires_at"))
    path = config_module.save(settings)
    return {"url": client.url, "username": username, "token_name": token.get("name"),
            "expires_at": token.get("expires_at"), "config": str(path)}


def profile_frame(frame: Any) -> dict:
    """Profile a DataFrame with the server's profiler (via a temporary CSV, deleted after)."""
    from profiling import profile_file

    fd, name = tempfile.mkstemp(suffix=".csv")
    os.close(fd)
    try:
        frame.to_csv(name, index=False)
        return profile_file(name, file_format="csv").as_dict()
    finally:
        os.unlink(name)


def _dataset(client: Client, dataset: Any, profile: dict, quiet: bool) -> tuple[dict, bool,
                                                                               list[str]]:
    notes: list[str] = []
    if isinstance(dataset, str | int):
        ref, provenance = str(dataset), None
    elif isinstance(dataset, dict) and dataset.get("name") and dataset.get("version"):
        ref = f"{dataset['name']}@{dataset['version']}"
        provenance = dataset
    else:
        raise UsageError("dataset must be 'name@version' (a registered dataset version) or a "
                         "dict with name, version and source (to register it from X_train's "
                         "profile)")
    found = client.dataset_find(ref)
    if found is not None:
        if found["sha256"] != profile["sha256"]:
            notes.append(f"dataset {ref} was registered from another file than X_train (its "
                         "sha256 differs); its profile is the one used")
        return found, False, notes
    if provenance is None:
        raise UsageError(f"dataset {ref} is not registered; pass dataset={{'name': ..., "
                         "'version': ..., 'source': ...}} to register it from X_train's profile")
    unknown = sorted(set(provenance) - {"name", "version", *PROVENANCE_KEYS})
    if unknown:
        raise UsageError(f"unknown dataset keys: {', '.join(unknown)} (known: name, version, "
                         f"{', '.join(PROVENANCE_KEYS)})")
    say(f"Registering dataset {ref} from X_train's profile (no rows are sent)…", quiet=quiet)
    body = {k: (str(v) if k in ("date_start", "date_end") and v is not None else v)
            for k, v in provenance.items()}
    created = client.dataset_register(provenance=body, profile=profile)
    return created, True, notes


def _json_safe(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, bool | int | float | str) or value is None:
            out[key] = value
        else:
            out[key] = repr(value)[:200]
    return json.loads(json.dumps(out, default=str))


def register(*, model: Any, X_train: Any, name: str, dataset: Any, card: str | Path | None = None,
             runbook: str | Path | None = None, metrics: dict | None = None,
             X_valid: Any = None, y_valid: Any = None, subgroups: Any = None,
             positive_label: Any = None, format: str = "skops", threshold: float | None = None,
             ood_policy: str | None = None, output_schema: dict | None = None,
             description: str = "", code_reference: str | None = None,
             hyperparameters: dict | None = None, trusted_types: list[str] | None = None,
             reference_rows: list[dict] | None = None, submit: bool = False,
             create_model: bool = True, client: Client | None = None,
             quiet: bool = False) -> Registration:
    """Register a fitted estimator as a new draft version (see the module's steps).

    ``card``/``runbook``: Markdown text or a path to a .md file. ``subgroups``: columns of
    ``X_valid`` (or a frame aligned with it) to compute metrics per value. ``threshold``:
    the confidence below which predictions go to human review; ``ood_policy``: "review" or
    "reject". ``trusted_types``: when given, the types you expect the skops file to need;
    the call fails if it needs others. Returns a ``Registration`` (a table in Jupyter).
    """
    import pandas as pd

    if not isinstance(X_train, pd.DataFrame):
        raise UsageError("X_train must be a pandas DataFrame whose columns are the model's "
                         "features (the schema is built from their names)")
    if format not in ("skops", "onnx"):
        raise UsageError("format must be 'skops' or 'onnx'")
    if not hasattr(model, "predict_proba"):
        raise UnconvertibleModel(f"{type(model).__name__} has no predict_proba: Attest serves "
                                 "classifiers that report class probabilities",
                                 code="not_a_classifier")
    client = client or Client(show_progress=not quiet)
    features = [str(c) for c in X_train.columns]
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and [str(n) for n in fitted] != features:
        raise SchemaMismatch("schema mismatch: X_train's columns are not the features the "
                             f"model was fitted on ({', '.join(map(str, fitted))})",
                             code="schema_mismatch")

    model_precheck(client, name, create=create_model)
    say(f"Profiling X_train here ({len(X_train)} rows × {len(features)} columns)…", quiet=quiet)
    profile = profile_frame(X_train)
    dataset_row, dataset_created, notes = _dataset(client, dataset, profile, quiet)
    check_features(features, dataset_row)

    check = None
    if format == "skops":
        serialized = skops_serialize(model)
        types = serialized.trusted_types
        if trusted_types is not None and set(types) - set(trusted_types):
            raise UsageError("the skops file needs types you did not list: "
                             + ", ".join(sorted(set(types) - set(trusted_types))))
        say("skops: " + ("types beyond skops' defaults, sent for the server to trust: "
                         + ", ".join(types) if types else "no types beyond skops' defaults"),
            quiet=quiet)
        data, filename, scorer = serialized.data, f"{name}.skops", model
    else:
        data = onnx_convert(model, X_train)
        check = onnx_check(data, model, X_train, features)
        if not check["equal"]:
            raise UnconvertibleModel(
                f"the ONNX conversion scores differently from the estimator (max |Δp| "
                f"{check['max_abs_diff']:.3g} on {check['rows']} rows of X_train, tolerance "
                f"{check['tolerance']:.0e}); register it as skops instead",
                code="not_equivalent")
        say(f"ONNX: converted; equal to the estimator on {check['rows']} rows of X_train "
            f"(max |Δp| {check['max_abs_diff']:.2g}).", quiet=quiet)
        types, filename, scorer = [], f"{name}.onnx", OnnxScorer(data, features)

    if metrics is None and X_valid is not None and y_valid is not None:
        metrics = compute_metrics(model, X_valid, y_valid, subgroups=subgroups,
                                  positive_label=positive_label,
                                  threshold=0.5)
    metadata: dict[str, Any] = {"input_schema": features, "description": description}
    for key, value in (("model_card", read_text_or_value(card, "model card")),
                       ("runbook", read_text_or_value(runbook, "runbook")),
                       ("metrics", metrics), ("confidence_threshold", threshold),
                       ("ood_policy", ood_policy), ("output_schema", output_schema)):
        if value is not None:
            metadata[key] = value
    reference = code_reference if code_reference is not None else git_reference()
    if reference:
        metadata["code_reference"] = reference[:300]
    params = hyperparameters if hyperparameters is not None else (
        model.get_params(deep=False) if hasattr(model, "get_params") else {})
    if params:
        metadata["hyperparameters"] = _json_safe(params)
    metadata["reproducibility"] = reproducibility_claim(
        scorer, features, dataset_row.get("profile") or {}, rows=reference_rows,
        environment=environment_record())
    return register_artifact(client, model=name, artifact=data, filename=filename,
                             artifact_format=format, dataset=dataset_row, metadata=metadata,
                             trusted_types=types, create_model=create_model, submit=submit,
                             onnx_check=check, notes=notes, dataset_created=dataset_created,
                             quiet=quiet)
