"""The reproducibility record: reference rows, their scores here, and this environment.

The server re-scores the rows at registration and records any difference
(``registry/reproducibility.py`` on the server). The rows are synthetic — drawn from
the training profile, never copied from the data — so no patient row leaves this
machine for the check: numbers from each column's histogram bins, booleans and
categories by their profiled shares, the first row at the medians.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import predict_rows

REFERENCE_ROWS = 8
SEED = 20


def reference_rows(features: list[str], profile: dict, n: int = REFERENCE_ROWS,
                   seed: int = SEED) -> list[dict]:
    """``n`` plausible rows for ``features`` from a dataset profile (same seed, same rows)."""
    rng = np.random.default_rng(seed)
    columns = (profile or {}).get("columns", {})
    rows: list[dict] = [{} for _ in range(n)]
    for name in features:
        col = columns.get(name) or {}
        kind = col.get("type", "number")
        for i, value in enumerate(_draw(rng, kind, col, n)):
            rows[i][name] = value
    return json.loads(json.dumps(rows))  # exactly what the server will receive


def _draw(rng: np.random.Generator, kind: str, col: dict, n: int) -> list:
    if kind in ("number", "integer"):
        edges = [float(e) for e in col.get("quantiles") or []]
        freqs = [float(f or 0) for f in col.get("bin_frequencies") or []]
        if len(edges) >= 2 and len(freqs) == len(edges) - 1 and sum(freqs) > 0:
            bins = rng.choice(len(freqs), size=n, p=np.asarray(freqs) / sum(freqs))
            values = [edges[b] + rng.random() * (edges[b + 1] - edges[b]) for b in bins]
            values[0] = edges[len(edges) // 2]  # a median-like first row
        elif edges:
            values = [edges[0]] * n
        else:
            lo, hi = col.get("min"), col.get("max")
            mean = col.get("mean") or 0.0
            values = ([lo + rng.random() * (hi - lo) for _ in range(n)]
                      if lo is not None and hi is not None else [float(mean)] * n)
        if kind == "integer":
            return [int(round(v)) for v in values]
        return [float(v) for v in values]
    categories = col.get("categories") or {}
    if kind == "boolean":
        share = categories.get("true")
        p = 0.5 if share is None else min(max(float(share), 0.0), 1.0)
        return [bool(v) for v in rng.random(n) < p]
    if not categories:
        return [""] * n
    names = sorted(categories)
    weights = np.array([float(categories[c] or 0) for c in names])
    p = weights / weights.sum() if weights.sum() > 0 else None
    picks = [names[i] for i in rng.choice(len(names), size=n, p=p)]
    picks[0] = max(categories, key=categories.get)
    return picks


def environment_record() -> dict:
    """Python, platform and every installed distribution's version, here and now."""
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        if name and name not in packages:
            packages[name] = dist.version
        if len(packages) >= 2000:
            break
    return {"python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(terse=True),
            "packages": dict(sorted(packages.items()))}


def git_reference(directory: str | Path = ".") -> str | None:
    """``<commit>`` (``+ uncommitted changes``) of the git checkout here, if any."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        commit = subprocess.run([git, "rev-parse", "HEAD"], cwd=directory, capture_output=True,  # noqa: S603 - fixed argv
                                text=True, timeout=5, check=False)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run([git, "status", "--porcelain", "--untracked-files=no"],  # noqa: S603
                               cwd=directory, capture_output=True, text=True, timeout=5,
                               check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = commit.stdout.strip()
    return text + (" + uncommitted changes" if dirty.stdout.strip() else "")


def reproducibility_claim(model: Any, features: list[str], profile: dict, *,
                          rows: list[dict] | None = None,
                          environment: dict | None = None) -> dict:
    """What ``metadata.reproducibility`` carries: rows, scores here, environment."""
    rows = rows if rows is not None else reference_rows(features, profile)
    probabilities = predict_rows(model, rows, features)
    scores = [[float(p) for p in row] for row in probabilities.tolist()]
    if not all(math.isfinite(p) for row in scores for p in row):
        raise ValueError("the model returned non-finite probabilities for the reference rows")
    return {"reference_rows": rows, "probabilities": scores,
            "environment": environment or environment_record()}
