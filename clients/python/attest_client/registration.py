"""Registering a model version: the steps the CLI, the notebook and the MLflow import share.

``register_artifact`` takes a serialized artifact and what is known about it, makes
sure the model exists, sends the version with its metadata (schema, card, runbook,
metrics, trusted types, reproducibility record) and optionally submits it. It
returns a ``Registration``, which prints as a summary in a terminal and renders as a
table with links in Jupyter.
"""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DeniedError, NotFoundError, RefusedError, SchemaMismatch, UsageError
from .http import Client


def say(text: str, *, quiet: bool = False) -> None:
    """A progress message for people (stderr, so stdout stays for results and --json)."""
    if not quiet:
        print(text, file=sys.stderr)


@dataclass
class Registration:
    url: str
    model: str
    version: dict
    dataset: dict
    model_created: bool = False
    dataset_created: bool = False
    trusted_types: list[str] = field(default_factory=list)
    onnx_check: dict | None = None
    metrics: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.version["version"])

    @property
    def state(self) -> str:
        return str(self.version["state"])

    @property
    def version_url(self) -> str:
        return f"{self.url}/models/{self.model}/versions/{self.number}/"

    @property
    def dataset_url(self) -> str:
        return f"{self.url}/datasets/{self.dataset['id']}/"

    def as_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "dataset": self.dataset,
                "model_created": self.model_created, "dataset_created": self.dataset_created,
                "trusted_types": self.trusted_types, "onnx_check": self.onnx_check,
                "links": {"version": self.version_url, "dataset": self.dataset_url},
                "notes": self.notes}

    def rows(self) -> list[tuple[str, str, str | None]]:
        """(label, text, link) for the summary, in reading order."""
        v, d = self.version, self.dataset
        r = v.get("reproducibility") or {}
        repro = {"reproduced": "reproduced: the server scores the reference rows as this "
                               "environment does",
                 "differs": "DIFFERS: the server scores the reference rows differently",
                 "not_scored": "not scored by the server"}.get(r.get("status"), "not recorded")
        if r.get("max_abs_diff") is not None:
            repro += f" (largest difference {r['max_abs_diff']:.2g})"
        differences = ", ".join(f"{x['package']} {x['owner']}→{x['server']}"
                                for x in r.get("environment_differences") or [])
        overall = (v.get("metrics") or {}).get("overall") or {}
        rows = [
            ("Model", self.model + (" (created now; you are its owner)" if self.model_created
                                    else ""), f"{self.url}/models/{self.model}/"),
            ("Version", f"v{self.number} — {self.state}", self.version_url),
            ("Content hash", str(v.get("content_hash", "")), None),
            ("Artifact", f"{v.get('format')} · sha256 {str(v.get('artifact_sha256', ''))[:16]}… "
                         f"· {v.get('estimator') or v.get('framework') or ''}", None),
            ("Dataset", f"{d['name']}@{d['version']} · {d['row_count']} rows · sha256 "
                        f"{d['sha256'][:16]}…" + (" (registered now from the local profile; no "
                                                  "rows were sent)" if self.dataset_created
                                                  else ""), self.dataset_url),
            ("Input schema", ", ".join(f"{f['name']} ({f['type']})"
                                       for f in v.get("input_schema") or []), None),
        ]
        if v.get("format") == "skops":
            rows.append(("Trusted types", ", ".join(self.trusted_types) if self.trusted_types
                         else "none beyond skops' defaults", None))
        if self.onnx_check is not None:
            rows.append(("ONNX check", f"max |Δp| {self.onnx_check['max_abs_diff']:.2g} on "
                                       f"{self.onnx_check['rows']} local rows (tolerance "
                                       f"{self.onnx_check['tolerance']:.0e})", None))
        if overall:
            rows.append(("Metrics", ", ".join(f"{k} {val:.3g}" if isinstance(val, float)
                                              else f"{k} {val}" for k, val in overall.items()),
                         None))
        subgroups = (v.get("metrics") or {}).get("subgroups") or []
        if subgroups:
            rows.append(("Subgroups", f"{len(subgroups)}: " + ", ".join(
                g["name"] for g in subgroups[:8]) + (" …" if len(subgroups) > 8 else ""), None))
        rows.append(("Reproducibility", repro + (f"; environments differ: {differences}"
                                                 if differences else ""), None))
        rows.append(("Threshold / OOD", f"{v.get('confidence_threshold')} / "
                                        f"{v.get('ood_policy')}", None))
        if v.get("code_reference"):
            rows.append(("Code", str(v["code_reference"]), None))
        for note in self.notes:
            rows.append(("Note", note, None))
        if self.state == "draft":
            rows.append(("Next", f"review it at the link above, then submit: "
                                 f"attest version submit {self.model} {self.number}", None))
        return rows

    def __str__(self) -> str:
        width = max(len(label) for label, _t, _l in self.rows())
        return "\n".join(f"{label:<{width}}  {text}" + (f"\n{'':<{width}}  {link}" if link
                                                        else "")
                         for label, text, link in self.rows())

    def __repr__(self) -> str:
        return f"<Registration {self.model} v{self.number} ({self.state}) {self.version_url}>"

    def _repr_html_(self) -> str:
        cells = []
        for label, text, link in self.rows():
            value = html.escape(text)
            if link:
                value = f'<a href="{html.escape(link)}" target="_blank">{value}</a>'
            cells.append(f'<tr><th style="text-align:left">{html.escape(label)}</th>'
                         f'<td style="text-align:left">{value}</td></tr>')
        return ('<table class="attest-registration"><caption style="text-align:left">'
                f"<b>Attest</b> — {html.escape(self.model)} v{self.number}</caption>"
                + "".join(cells) + "</table>")


def model_precheck(client: Client, name: str, *, create: bool) -> None:
    """Before any local work: the model exists (or may be created) and you may register."""
    try:
        model = client.model(name)
    except NotFoundError:
        if create:
            return
        raise NotFoundError(f"no model named {name!r} that you may see; create it with "
                            f"`attest model create {name}` (or pass --create)",
                            code="not_found") from None
    if "register_version" not in (model.get("capabilities") or ["register_version"]):
        raise DeniedError(f"you lack the 'register_version' permission on {name}; ask its "
                          "owner for the owner role", code="permission_denied")


def model_ensure(client: Client, name: str, *, create: bool, description: str = "",
                 quiet: bool = False) -> bool:
    """True when the model was created now."""
    try:
        client.model(name)
        return False
    except NotFoundError:
        if not create:
            raise NotFoundError(f"no model named {name!r} that you may see; create it with "
                                f"`attest model create {name}` (or pass --create)",
                                code="not_found") from None
    client.model_create(name=name, description=description)
    say(f"Created model {name} (you are its owner).", quiet=quiet)
    return True


def dataset_resolve(client: Client, ref: str | int) -> dict:
    found = client.dataset_find(ref)
    if found is None:
        raise NotFoundError(f"no dataset version {ref} that you may see; register it first "
                            "(`attest dataset register FILE --name … --version …`)",
                            code="not_found")
    return found


def check_features(features: list[str], dataset: dict) -> None:
    """Every feature must be a column of the training dataset (refused before any upload)."""
    columns = [c["name"] for c in dataset.get("columns") or []]
    missing = [f for f in features if f not in columns]
    if missing:
        raise SchemaMismatch(
            f"schema mismatch: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            f"not {'a column' if len(missing) == 1 else 'columns'} of dataset "
            f"{dataset['name']}@{dataset['version']} (its columns: {', '.join(columns)})",
            code="schema_mismatch")


def schema_preview(features: list[str], dataset: dict) -> list[dict]:
    """The input schema the server will build from the profile, to show before sending."""
    profile = (dataset.get("profile") or {}).get("columns", {})
    types = {c["name"]: c["type"] for c in dataset.get("columns") or []}
    out = []
    for name in features:
        col = profile.get(name) or {}
        kind = types.get(name, "?")
        if kind in ("number", "integer"):
            allowed = f"{col.get('min')} … {col.get('max')}"
        elif kind == "category":
            allowed = ", ".join(sorted((col.get("categories") or {}).keys())) or "(none listed)"
        else:
            allowed = "true, false"
        out.append({"name": name, "type": kind, "allowed": allowed,
                    "missing_rate": col.get("missing_rate")})
    return out


def schema_table(preview: list[dict]) -> str:
    width = max(len(p["name"]) for p in preview)
    lines = [f"  {'feature':<{width}}  {'type':<8}  validated range / categories"]
    for p in preview:
        lines.append(f"  {p['name']:<{width}}  {p['type']:<8}  {p['allowed']}")
    return "\n".join(lines)


def _trust_refusal(exc: RefusedError, types: list[str]) -> RefusedError:
    named = (exc.body or {}).get("untrusted_types") or [
        t for t in types if t in exc.message] or types
    return RefusedError(
        "the server does not trust these types in the skops file: " + ", ".join(named)
        + ". Ask an Attest administrator to add them to the allowlist of trusted types if they "
        "are parts of your model, or register the model as ONNX instead", code=exc.code,
        status=exc.status, errors=exc.errors, body=exc.body)


def version_send(client: Client, model: str, *, artifact: bytes | Path, filename: str,
                 metadata: dict) -> dict:
    """POST the version; explain trust refusals; drop trusted_types for servers that take
    trust from an administrator's allowlist only and refuse the key."""
    types = list(metadata.get("trusted_types") or [])
    try:
        return client.version_register(model, artifact=artifact, filename=filename,
                                       metadata=metadata)
    except RefusedError as exc:
        fields = {str(e.get("field") or "") for e in exc.errors}
        codes = {str(e.get("code") or "") for e in exc.errors}
        if "unknown_key" in codes and "trusted_types" in exc.message and types:
            retry = {k: v for k, v in metadata.items() if k != "trusted_types"}
            try:
                return client.version_register(model, artifact=artifact, filename=filename,
                                               metadata=retry)
            except RefusedError as again:
                exc = again
                fields = {str(e.get("field") or "") for e in again.errors}
                codes = {str(e.get("code") or "") for e in again.errors}
        if "metadata.trusted_types" in fields or codes & {"untrusted_types", "forbidden_types"}:
            raise _trust_refusal(exc, types) from None
        raise


def register_artifact(client: Client, *, model: str, artifact: bytes | Path, filename: str,
                      artifact_format: str, dataset: dict, metadata: dict,
                      trusted_types: list[str], create_model: bool = False,
                      model_description: str = "", submit: bool = False,
                      onnx_check: dict | None = None, notes: list[str] | None = None,
                      dataset_created: bool = False, quiet: bool = False) -> Registration:
    created = model_ensure(client, model, create=create_model, description=model_description,
                           quiet=quiet)
    body = {**metadata, "dataset": dataset["id"], "format": artifact_format}
    if artifact_format == "skops":
        body["trusted_types"] = list(trusted_types)
    version = version_send(client, model, artifact=artifact, filename=filename, metadata=body)
    say(f"Registered {model} v{version['version']} (draft).", quiet=quiet)
    if submit:
        say(f"Submitting {model} v{version['version']} for review…", quiet=quiet)
        version = client.version_submit(model, version["version"])
    return Registration(url=client.url or "", model=model, version=version, dataset=dataset,
                        model_created=created, dataset_created=dataset_created,
                        trusted_types=list(trusted_types), onnx_check=onnx_check,
                        metrics=metadata.get("metrics"), notes=list(notes or []))


def read_text_or_value(value: Any, what: str) -> str | None:
    """Markdown given inline, or a path to a file holding it."""
    if value is None:
        return None
    if isinstance(value, Path) or (isinstance(value, str) and "\n" not in value
                                   and value.endswith((".md", ".txt", ".markdown"))):
        path = Path(value).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{what} file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {what} file {path}: {exc}") from None
    if not isinstance(value, str):
        raise UsageError(f"{what} must be Markdown text or the path of a .md file")
    return value
