"""The notebook-vs-service gap, measured at registration.

A clinical model is trained in one environment (the owner's Python, NumPy,
scikit-learn) and served in another (this server's). The same artifact can score
differently in the two — a changed default, a numerical kernel, a version skew
skops does not catch — and nobody notices until a clinician does. So the client
sends, with the artifact, the scores it computed for a few reference rows in the
owner's own environment and a record of that environment (``metadata.
reproducibility``); at registration the server scores the same rows with the model
it will serve and stores both, their largest difference, and where the two
environments differ, as evidence on the version (shown on its page, in the API, in
the content hash reviewers sign). A difference is evidence, not a refusal: the
reviewers decide what it means.

The reference rows the client sends are synthetic by default (drawn from the
training profile, as ``registry.reference`` draws them), so no patient row leaves the
owner's machine for this check.

``metadata.reproducibility``::

    {"reference_rows": [{feature: value, ...}, ...],      # at most MAX_ROWS
     "probabilities": [[p_class0, p_class1, ...], ...],   # one list per row
     "environment": {"python": "3.12.1", "platform": "...",
                     "packages": {"numpy": "2.1.0", "scikit-learn": "1.5.2", ...}}}
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
from typing import Any

import numpy as np

from core.errors import ErrorItem, ValidationFailed

from .runtime import LoadedModel

MAX_ROWS = 50
MAX_PACKAGES = 2000
# Probabilities are compared absolutely. The same libraries give identical floats;
# what exceeds this is a difference a reviewer should see.
TOLERANCE = 1e-6
FIELD = "metadata.reproducibility"
KEYS = {"reference_rows", "probabilities", "environment"}
# Libraries whose versions decide a scikit-learn model's scores; always reported.
CORE_PACKAGES = ("numpy", "scipy", "scikit-learn", "skops", "pandas", "onnxruntime")


class Status:
    REPRODUCED = "reproduced"  # every probability within TOLERANCE
    DIFFERS = "differs"  # scored here, and some probability differs by more
    NOT_SCORED = "not_scored"  # the server could not score the rows (the detail says why)


def reproducibility_parse(value: Any, problems: list[ErrorItem]) -> dict | None:
    """Check the shape of ``metadata.reproducibility``; None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(ErrorItem("invalid", "reproducibility must be an object with "
                                  "reference_rows, probabilities and environment.", FIELD))
        return None
    found = len(problems)
    unknown = sorted(set(value) - KEYS)
    if unknown:
        problems.append(ErrorItem("unknown_key", "Unknown reproducibility keys: "
                                  + ", ".join(unknown) + ".", FIELD))
    rows, probabilities = value.get("reference_rows"), value.get("probabilities")
    if (not isinstance(rows, list) or not rows or len(rows) > MAX_ROWS
            or not all(isinstance(r, dict) for r in rows)):
        problems.append(ErrorItem("invalid", f"reference_rows must be a list of 1 to {MAX_ROWS} "
                                  "objects {feature: value}.", f"{FIELD}.reference_rows"))
    if (not isinstance(probabilities, list) or not all(
            isinstance(p, list) and p and all(_probability(x) for x in p) for p in probabilities)):
        problems.append(ErrorItem("invalid", "probabilities must hold one list of class "
                                  "probabilities (numbers from 0 to 1) per reference row.",
                                  f"{FIELD}.probabilities"))
    elif isinstance(rows, list) and len(probabilities) != len(rows):
        problems.append(ErrorItem("invalid", f"{len(rows)} reference rows but "
                                  f"{len(probabilities)} lists of probabilities.",
                                  f"{FIELD}.probabilities"))
    environment = value.get("environment", {})
    packages = environment.get("packages", {}) if isinstance(environment, dict) else None
    if (not isinstance(environment, dict) or not isinstance(packages, dict)
            or len(packages) > MAX_PACKAGES
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in packages.items())):
        problems.append(ErrorItem("invalid", "environment must be an object whose packages map "
                                  f"names to version strings (at most {MAX_PACKAGES}).",
                                  f"{FIELD}.environment"))
    if len(problems) > found:
        return None
    return {"reference_rows": rows, "probabilities": probabilities, "environment": environment}


def _probability(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and -1e-9 <= value <= 1 + 1e-9)


def server_environment(names: list[str]) -> dict:
    """This process's Python and the versions of ``names`` (plus CORE_PACKAGES) installed."""
    packages = {}
    for name in sorted({*CORE_PACKAGES, *names}):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "packages": packages}


def environment_differences(owner: dict, server: dict) -> list[dict]:
    """Python and the packages the owner's environment lists whose version differs here
    (CORE_PACKAGES always, others when the server has them or they are missing here)."""
    out = []
    if owner.get("python") and owner["python"] != server["python"]:
        out.append({"package": "python", "owner": owner["python"], "server": server["python"]})
    theirs, ours = owner.get("packages", {}), server["packages"]
    for name in sorted(theirs):
        if name in ours and ours[name] != theirs[name]:
            out.append({"package": name, "owner": theirs[name], "server": ours[name]})
    return out


def reproducibility_check(*, loaded: LoadedModel, input_schema: list[dict],
                          claim: dict | None) -> dict:
    """Score the owner's reference rows here and compare; {} when no claim was sent.

    1. The rows must name exactly the schema's features (else 400: the client sent
       rows for another schema).
    2. They are scored by the model as it will serve this version (``loaded``).
    3. The evidence records both score sets, the largest absolute difference, the
       rows beyond TOLERANCE and where the environments differ.
    """
    if claim is None:
        return {}
    features = [f["name"] for f in input_schema]
    rows = claim["reference_rows"]
    for index, row in enumerate(rows):
        if set(row) != set(features):
            missing, extra = sorted(set(features) - set(row)), sorted(set(row) - set(features))
            raise ValidationFailed(
                f"Reference row {index} does not match the input schema"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; not in the schema: {', '.join(extra)}" if extra else "") + ".",
                code="schema_mismatch", field=f"{FIELD}.reference_rows.{index}")
    owner_env = claim["environment"] or {}
    server_env = server_environment(sorted((owner_env.get("packages") or {}).keys())[:200])
    evidence: dict[str, Any] = {
        "rows": len(rows), "tolerance": TOLERANCE, "reference_rows": rows,
        "owner_probabilities": claim["probabilities"],
        "owner_environment": owner_env, "server_environment": server_env,
        "environment_differences": environment_differences(owner_env, server_env),
        "runtime": loaded.runtime,
    }
    try:
        ours = np.asarray(loaded.predict_proba(rows), dtype=float)
    except Exception as exc:  # noqa: BLE001 - any failure to score is evidence in itself
        return {**evidence, "status": Status.NOT_SCORED, "max_abs_diff": None,
                "differing_rows": [], "server_probabilities": None,
                "detail": f"{exc.__class__.__name__}: {str(exc)[:300]}"}
    theirs = claim["probabilities"]
    evidence["server_probabilities"] = [[float(p) for p in row] for row in ours.tolist()]
    if ours.shape != (len(theirs), len(theirs[0])) or any(len(p) != ours.shape[1] for p in theirs):
        return {**evidence, "status": Status.DIFFERS, "max_abs_diff": None,
                "differing_rows": list(range(len(rows))),
                "detail": f"the server's model returns {ours.shape[1]} class probabilities per "
                          f"row, the owner's {len(theirs[0])}"}
    gaps = np.abs(ours - np.asarray(theirs, dtype=float)).max(axis=1)
    worst = float(gaps.max())
    differing = [int(i) for i in np.flatnonzero(gaps > TOLERANCE)]
    return {**evidence, "status": Status.REPRODUCED if not differing else Status.DIFFERS,
            "max_abs_diff": worst, "differing_rows": differing, "detail": ""}


def reproducibility_summary(evidence: dict) -> dict | None:
    """What the audit event records (the rows and scores stay on the version)."""
    if not evidence:
        return None
    return {"status": evidence["status"], "rows": evidence["rows"],
            "max_abs_diff": evidence["max_abs_diff"], "tolerance": evidence["tolerance"],
            "environment_differences": evidence["environment_differences"]}
