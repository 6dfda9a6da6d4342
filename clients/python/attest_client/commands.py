"""What each ``attest`` command does: parse its arguments, call the client, print.

Results go to stdout (JSON with ``--json``, else short text); messages for people go
to stderr. Each handler returns the exit status.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import audit as audit_module
from . import config as config_module
from .artifacts import (
    OnnxScorer,
    artifact_format,
    refuse_pickle,
    skops_load,
    untrusted_types,
)
from .errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    AttestError,
    AuthError,
    CheckFailed,
    DeniedError,
    NotFoundError,
    RefusedError,
    ServerUnavailable,
    UsageError,
)
from .http import Client, check_file, read_file
from .mlflow_import import read_mlflow_model
from .registration import (
    check_features,
    dataset_resolve,
    model_precheck,
    register_artifact,
    say,
    schema_preview,
    schema_table,
)
from .reproducibility import environment_record, git_reference, reproducibility_claim


def profile_file(*args: Any, **kwargs: Any) -> Any:
    """profiling.profile_file, imported when needed (it brings pandas)."""
    from profiling import profile_file as profile

    return profile(*args, **kwargs)


PROVENANCE_FIELDS = ("source", "description", "inclusion_criteria", "exclusion_criteria",
                     "date_start", "date_end", "protocol_number", "deidentification")


# -- output ----------------------------------------------------------------------------------

def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
    elif text is not None:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _client(args: argparse.Namespace) -> Client:
    return Client(url=getattr(args, "url", None), show_progress=not getattr(args, "json", False))


def _write_atomically(target: Path, text: str) -> None:
    """Write via a temporary file and rename, so a failed run never leaves half a file."""
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"cannot write {target}: directory {directory} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None


def _json_file(path: str | None, what: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(read_file(path, what))
    except ValueError as exc:
        raise UsageError(f"{what} {path} is not valid JSON ({exc})") from None


def _text_file(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return read_file(path, what).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None


def _require_terminal(args: argparse.Namespace) -> None:
    """Refuse, before anything is loaded or sent, a run that would have to ask but cannot."""
    if getattr(args, "yes", False):
        return
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError("confirmation needed but stdin is not a terminal: run it in a terminal "
                         "to review the inferred input schema and trusted types, or pass --yes")


def _confirm(args: argparse.Namespace, question: str) -> None:
    """Ask on stderr (stdout is for results, also with --json); anything but y/yes, or the
    end of input, cancels (exit status 2)."""
    if getattr(args, "yes", False):
        return
    _require_terminal(args)
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        sys.stderr.write("\n")  # end of input (Ctrl-D): end the prompt's line
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("cancelled: nothing was registered")


def _password(args: argparse.Namespace, prompt: str) -> str:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("a password is needed but stdin is not a terminal: use --password-stdin")
    return getpass.getpass(prompt)


# -- login ------------------------------------------------------------------------------------

def login(args: argparse.Namespace) -> int:
    url = config_module.normalize_url(args.server)
    client = Client(url, settings=config_module.Settings(),
                    show_progress=False)
    if args.token:
        client.token = args.token
        me = client.whoami()
        settings = config_module.Settings(url=url, token=args.token, username=me.get("username"),
                                          token_id=(me.get("token") or {}).get("id"),
                                          expires_at=(me.get("token") or {}).get("expires_at"))
    else:
        username = args.username or (input("Attest username: ") if sys.stdin.isatty() else None)
        if not username:
            raise UsageError("give --username (stdin is not a terminal)")
        password = _password(args, f"Password for {username} at {url}: ")
        token = client.token_create(username=username, password=password,
                                    name=args.token_name
                                    or f"attest client on {socket.gethostname()}",
                                    days=args.days)
        settings = config_module.Settings(url=url, token=token["token"], username=username,
                                          token_id=token.get("id"),
                                          expires_at=token.get("expires_at"))
    path = config_module.save(settings)
    if os.environ.get("ATTEST_TOKEN"):
        say("note: ATTEST_TOKEN is set in your environment and wins over the stored token")
    emit(args, {"url": url, "username": settings.username, "expires_at": settings.expires_at,
                "config": str(path)},
         f"Logged in to {url} as {settings.username}; token expires "
         f"{(settings.expires_at or 'never')[:10]}; saved in {path} (readable only by you).")
    return EXIT_OK


def logout(args: argparse.Namespace) -> int:
    settings = config_module.load()
    if settings.source == "environment":
        raise UsageError("the token comes from ATTEST_TOKEN: unset it (and revoke the token in "
                         "the portal's account page)")
    if not settings.token:
        raise AuthError("not logged in")
    client = Client(settings=settings, show_progress=False)
    revoked = False
    if settings.token_id:
        try:
            client.token_revoke(settings.token_id)
            revoked = True
        except (AuthError, NotFoundError):
            revoked = False  # expired or already revoked: forgetting it is what is left
    config_module.forget()
    emit(args, {"revoked": revoked, "url": settings.url},
         f"Logged out of {settings.url}" + (" (token revoked)." if revoked else "."))
    return EXIT_OK


def whoami(args: argparse.Namespace) -> int:
    client = _client(args)
    me = client.whoami()
    token = me.get("token") or {}
    lines = [f"{me.get('username')}" + (f" ({me['name']})" if me.get("name") else "")
             + f" at {client.url}"]
    if token:
        lines.append(f"token {token.get('name')!r} (att_{token.get('prefix')}_…), expires "
                     f"{str(token.get('expires_at'))[:10]}")
    roles = [r for r in ("admin", "auditor") if me.get(f"is_{r}")]
    if roles:
        lines.append("global role: " + ", ".join(roles))
    if me.get("can_create_models"):
        lines.append("may create models")
    for m in me.get("models") or []:
        lines.append(f"  {m['name']}: {', '.join(m['roles']) or '(global role)'}")
    emit(args, {**me, "url": client.url}, "\n".join(lines))
    return EXIT_OK


# -- datasets ---------------------------------------------------------------------------------

def _profile(args: argparse.Namespace) -> Any:
    from profiling import ProfilingError

    check_file(args.file, "dataset file")
    try:
        return profile_file(args.file, file_format=args.file_format,
                            min_category_count=args.min_category_count)
    except ProfilingError as exc:
        raise UsageError(exc.message, code=exc.code) from None


def dataset_profile(args: argparse.Namespace) -> int:
    result = _profile(args)
    text = json.dumps(result.as_dict(), indent=2, allow_nan=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    _write_atomically(Path(args.output), text)
    say(f"attest: wrote {args.output} ({result.row_count} rows, {len(result.columns)} columns)")
    return EXIT_OK


def _provenance(args: argparse.Namespace) -> dict:
    provenance: dict[str, Any] = {}
    if args.provenance:
        raw = read_file(args.provenance, "provenance file")
        try:
            import yaml

            loaded = yaml.safe_load(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"provenance file {args.provenance} is not YAML or JSON ({exc})") \
                from None
        if not isinstance(loaded, dict):
            raise UsageError(f"provenance file {args.provenance} must hold a mapping of fields")
        unknown = sorted(set(loaded) - set(PROVENANCE_FIELDS))
        if unknown:
            raise UsageError(f"unknown provenance fields in {args.provenance}: "
                             f"{', '.join(unknown)} (known: {', '.join(PROVENANCE_FIELDS)})")
        provenance.update({k: (str(v) if v is not None else None) for k, v in loaded.items()})
    for name in PROVENANCE_FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            provenance[name] = value
    if not provenance.get("source"):
        raise UsageError("say where the data came from: --source TEXT (or source: in the "
                         "provenance file)")
    return provenance


def dataset_register(args: argparse.Namespace) -> int:
    provenance = {"name": args.name, "version": args.dataset_version, **_provenance(args)}
    client = _client(args)
    if args.upload:
        path = check_file(args.file, "dataset file")
        say(f"Uploading {path.name}: the file itself will be kept on the server.",
            quiet=args.json)
        if args.file_format:
            provenance["file_format"] = args.file_format
        dataset = client.dataset_register(provenance=provenance, file=path)
    else:
        result = _profile(args)
        say(f"Profiled {args.file} here ({result.row_count} rows, {len(result.columns)} columns); "
            "sending its sha256 and profile only.", quiet=args.json)
        dataset = client.dataset_register(provenance=provenance, profile=result.as_dict())
    emit(args, dataset, f"Registered dataset {dataset['name']}@{dataset['version']} (id "
                        f"{dataset['id']}, {dataset['row_count']} rows, sha256 "
                        f"{dataset['sha256'][:16]}…): {client.url}/datasets/{dataset['id']}/")
    return EXIT_OK


def dataset_list(args: argparse.Namespace) -> int:
    rows = _client(args).datasets()
    emit(args, rows, "\n".join(f"{d['id']:>5}  {d['name']}@{d['version']}  {d['row_count']} rows"
                               f"  {d['sha256'][:12]}…" for d in rows) or "(no datasets)")
    return EXIT_OK


# -- models -------------------------------------------------------------------------------------

def model_list(args: argparse.Namespace) -> int:
    rows = _client(args).models()
    emit(args, rows, "\n".join(
        f"{m['name']}  production v{m['production_version'] or '—'}  "
        f"{len(m['versions'])} version(s)" for m in rows) or "(no models)")
    return EXIT_OK


def model_create(args: argparse.Namespace) -> int:
    signoffs = [s.strip() for s in args.signoffs.split(",") if s.strip()] if args.signoffs \
        else None
    created = _client(args).model_create(name=args.name, description=args.description,
                                         required_signoffs=signoffs,
                                         retention_days=args.retention_days)
    emit(args, created, f"Created model {created['name']} (you are its owner); required "
                        f"sign-offs: {', '.join(created['required_signoffs'])}.")
    return EXIT_OK


def _metadata(args: argparse.Namespace, features: list[str] | None) -> dict:
    metadata: dict[str, Any] = {"description": args.description}
    declared = _json_file(args.schema, "input schema")
    if declared is not None:
        metadata["input_schema"] = declared
    elif features:
        metadata["input_schema"] = features
    for key, value in (("model_card", _text_file(args.card, "model card")),
                       ("runbook", _text_file(args.runbook, "runbook")),
                       ("metrics", _json_file(args.metrics, "metrics file")),
                       ("output_schema", _json_file(args.output_schema, "output schema")),
                       ("confidence_threshold", args.threshold),
                       ("ood_policy", args.ood_policy)):
        if value is not None:
            metadata[key] = value
    reference = args.code_ref if args.code_ref is not None else git_reference()
    if reference:
        metadata["code_reference"] = reference[:300]
    return metadata


def _features_of(model: Any, scorer: Any) -> list[str] | None:
    if model is not None and hasattr(model, "feature_names_in_"):
        return [str(n) for n in model.feature_names_in_]
    if isinstance(scorer, OnnxScorer) and len(scorer.inputs) > 1:
        return [name for name, _kind in scorer.inputs]
    return None


def _show_and_confirm(args: argparse.Namespace, *, model: str, dataset: dict,
                      features: list[str], types: list[str], fmt: str) -> None:
    # Shown whenever it is asked about, also with --json (on stderr, like the question).
    if not args.json or not args.yes:
        say(f"Registering a {fmt} model as a new version of {model}, trained on "
            f"{dataset['name']}@{dataset['version']}.")
        say("Input schema (from the training profile):\n"
            + schema_table(schema_preview(features, dataset)))
        if fmt == "skops":
            say("Types beyond skops' defaults, for the server to trust: "
                + (", ".join(types) if types else "none"))
    _confirm(args, "Register it?")


def _local_scorer(data: bytes, fmt: str, types: list[str], features: list[str] | None):
    """The model loaded here (to read its features and score the reference rows), or None."""
    if fmt == "skops":
        return skops_load(data, types)
    try:
        return OnnxScorer(data, features or [])
    except UsageError:
        return None  # no onnxruntime here: registered without a reproducibility record


def _register_file(args: argparse.Namespace, client: Client, *, data: bytes, filename: str,
                   fmt: str, features: list[str] | None, environment: dict | None = None,
                   extra: dict | None = None, notes: list[str] | None = None) -> int:
    _require_terminal(args)
    model_precheck(client, args.model, create=args.create)
    dataset = dataset_resolve(client, args.dataset)
    types = untrusted_types(data) if fmt == "skops" else []
    expected = getattr(args, "trust", None)
    if expected and set(types) - set(expected):
        raise UsageError("the skops file needs types you did not list with --trust: "
                         + ", ".join(sorted(set(types) - set(expected))))
    if fmt == "skops" and not args.yes:
        # Loading runs the file's constructors: the user sees the types before that.
        say("Types beyond skops' defaults in this file: " + (", ".join(types) or "none"))
        _confirm(args, "Load it here with these types trusted (to read its features and score "
                       "reference rows)?")
    scorer = _local_scorer(data, fmt, types, features)
    if features is None:
        features = _features_of(scorer if fmt == "skops" else None, scorer)
    if features is None:
        columns = [c["name"] for c in dataset.get("columns") or []]
        if not getattr(args, "target", None):
            raise UsageError("cannot tell the model's features from the file: pass --features "
                             "a,b,c or --target LABEL_COLUMN")
        features = [c for c in columns if c != args.target]
    check_features(features, dataset)
    if isinstance(scorer, OnnxScorer):
        scorer.features = features
    _show_and_confirm(args, model=args.model, dataset=dataset, features=features, types=types,
                      fmt=fmt)
    metadata = {**_metadata(args, features), **(extra or {})}
    if scorer is not None:
        metadata["reproducibility"] = reproducibility_claim(
            scorer, features, dataset.get("profile") or {},
            environment=environment or environment_record())
    else:
        (notes or []).append("no reproducibility record: onnxruntime is not installed here "
                             "(pip install 'attest-client[onnx]')")
    registration = register_artifact(
        client, model=args.model, artifact=data, filename=filename, artifact_format=fmt,
        dataset=dataset, metadata=metadata, trusted_types=types, create_model=args.create,
        submit=args.submit, notes=notes, quiet=args.json)
    emit(args, registration.as_dict(), str(registration))
    return EXIT_OK


def model_register(args: argparse.Namespace) -> int:
    path = check_file(args.artifact, "model file")
    data = read_file(path, "model file")
    refuse_pickle(data, path.name)
    fmt = artifact_format(path.name, data, args.artifact_format)
    features = [f.strip() for f in args.features.split(",") if f.strip()] if args.features \
        else None
    return _register_file(args, _client(args), data=data, filename=path.name, fmt=fmt,
                          features=features)


def import_mlflow(args: argparse.Namespace) -> int:
    imported = read_mlflow_model(args.path)
    data = imported.artifact.read_bytes()
    say(f"MLflow model {imported.info.get('model_uuid', '')} ({imported.artifact_format}, "
        f"mlflow {imported.info.get('mlflow_version', '?')}): "
        f"{len(imported.features)} features from its signature.", quiet=args.json)
    training = imported.training_environment
    environment = {**environment_record(), "training": training}
    extra: dict[str, Any] = {}
    if not args.code_ref:
        extra["code_reference"] = imported.code_reference()[:300]
    if not args.description:
        extra["description"] = (f"Imported from an MLflow model ({imported.info.get('model_uuid')}"
                                f", mlflow {imported.info.get('mlflow_version')}, created "
                                f"{imported.info.get('utc_time_created', '?')}); training "
                                f"environment: Python {training.get('python', '?')}, "
                                + ", ".join(f"{k} {v}" for k, v in
                                            sorted(training.get("packages", {}).items())))[:5000]
    schema = [{"name": f["name"], "type": f["type"], "required": f["required"]}
              for f in imported.features]
    if schema and args.schema is None:
        extra["input_schema"] = schema
    return _register_file(args, _client(args), data=data,
                          filename=f"{args.model}.{imported.artifact_format}",
                          fmt=imported.artifact_format,
                          features=imported.feature_names or None, environment=environment,
                          extra=extra)


# -- versions --------------------------------------------------------------------------------

def _repro_line(version: dict) -> str:
    r = version.get("reproducibility") or {}
    if not r:
        return "reproducibility: not recorded"
    text = f"reproducibility: {r['status']}"
    if r.get("max_abs_diff") is not None:
        text += f" (largest difference {r['max_abs_diff']:.2g} over {r['rows']} rows)"
    differences = r.get("environment_differences") or []
    if differences:
        text += "; environments differ: " + ", ".join(
            f"{d['package']} {d['owner']}→{d['server']}" for d in differences[:8])
    return text


def version_status(args: argparse.Namespace) -> int:
    client = _client(args)
    v = client.version(args.model, args.version)
    signoffs = client.signoffs(args.model, args.version) if v["state"] != "draft" else None
    lines = [f"{v['model']} v{v['version']}: {v['state']}"
             + (" (shadow)" if v.get("shadow") else ""),
             f"content hash {v['content_hash']}",
             f"artifact {v['format']} sha256 {v['artifact_sha256']}",
             f"dataset {v['dataset']['name']}@{v['dataset']['version']} sha256 "
             f"{v['dataset']['sha256']}",
             _repro_line(v),
             "next: " + (", ".join(v.get("allowed_next") or []) or "—")]
    if signoffs:
        for item in signoffs.get("manifest") or []:
            status = item.get("status") or "pending"
            line = f"  {item.get('meaning')}: {status}"
            if status != "pending":
                line += (f" by {item.get('printed_name') or item.get('signer')} "
                         f"({item.get('role')}) at {str(item.get('signed_at'))[:19]}")
                if not item.get("bound_to_current_content", True):
                    line += " — signed another content hash"
            lines.append(line)
    lines.append(f"{client.url}/models/{v['model']}/versions/{v['version']}/")
    emit(args, {"version": v, "signoffs": signoffs}, "\n".join(lines))
    return EXIT_OK


def version_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    say(f"Submitting {args.model} v{args.version} (the server checks the artifact and builds "
        "its serving evidence)…", quiet=args.json)
    v = client.version_submit(args.model, args.version)
    emit(args, v, f"{v['model']} v{v['version']} is {v['state']}; content hash "
                  f"{v['content_hash']}. Signers have been notified.")
    return EXIT_OK


def version_promote(args: argparse.Namespace) -> int:
    v = _client(args).promote(args.model, args.version)
    emit(args, v, f"{v['model']} v{v['version']} is {v['state']}.")
    return EXIT_OK


def version_sign(args: argparse.Namespace) -> int:
    client = _client(args)
    v = client.version(args.model, args.version)
    if not args.json:
        say(f"You are signing {args.meaning} = {args.decision} on {v['model']} v{v['version']}, "
            f"content hash {v['content_hash']}.")
    password = _password(args, "Your password (second signature component): ")
    result = client.signoff(args.model, args.version, meaning=args.meaning,
                            decision=args.decision, password=password, comment=args.comment,
                            content_hash=v["content_hash"])
    emit(args, result, f"Signed. {v['model']} v{v['version']} is now {result['state']}.")
    return EXIT_OK


def _diff_rows(a: dict, b: dict) -> list[dict]:
    rows = []

    def add(field: str, old: Any, new: Any) -> None:
        if old != new:
            rows.append({"field": field, "old": old, "new": new})

    for key in ("state", "content_hash", "artifact_sha256", "format", "estimator",
                "framework_version", "confidence_threshold", "ood_policy", "code_reference",
                "description"):
        add(key, a.get(key), b.get(key))
    add("dataset", f"{a['dataset']['name']}@{a['dataset']['version']}",
        f"{b['dataset']['name']}@{b['dataset']['version']}")
    old = {f["name"]: f for f in a.get("input_schema") or []}
    new = {f["name"]: f for f in b.get("input_schema") or []}
    for name in sorted(set(old) | set(new)):
        if name not in new:
            add(f"input_schema.{name}", "present", "removed")
        elif name not in old:
            add(f"input_schema.{name}", "absent", "added")
        else:
            for key in sorted(set(old[name]) | set(new[name])):
                add(f"input_schema.{name}.{key}", old[name].get(key), new[name].get(key))
    add("output_schema", a.get("output_schema"), b.get("output_schema"))
    ma = (a.get("metrics") or {}).get("overall") or {}
    mb = (b.get("metrics") or {}).get("overall") or {}
    for name in sorted(set(ma) | set(mb)):
        add(f"metrics.{name}", ma.get(name), mb.get(name))
    for key in ("hyperparameters", "library_versions", "trusted_types"):
        add(key, a.get(key), b.get(key))
    for key in ("model_card", "runbook"):
        if (a.get(key) or "") != (b.get(key) or ""):
            diff = list(difflib.unified_diff((a.get(key) or "").splitlines(),
                                             (b.get(key) or "").splitlines(), lineterm="", n=0))
            rows.append({"field": key, "old": None, "new": None, "diff": diff[2:]})
    add("reproducibility", (a.get("reproducibility") or {}).get("status"),
        (b.get("reproducibility") or {}).get("status"))
    return rows


def version_diff(args: argparse.Namespace) -> int:
    client = _client(args)
    a, b = client.version(args.model, args.old), client.version(args.model, args.new)
    rows = _diff_rows(a, b)
    lines = [f"{args.model}: v{args.old} → v{args.new}" + (" (no differences)" if not rows
                                                          else "")]
    for row in rows:
        if "diff" in row:
            lines.append(f"  {row['field']}:")
            lines.extend(f"    {line}" for line in row["diff"][:40])
        else:
            lines.append(f"  {row['field']}: {row['old']} → {row['new']}")
    emit(args, {"model": args.model, "old": args.old, "new": args.new, "changes": rows},
         "\n".join(lines))
    return EXIT_OK


# -- predictions -------------------------------------------------------------------------------

BATCH_SUFFIXES = (".csv", ".parquet", ".pq")


def _prediction_line(p: dict) -> str:
    text = f"{p['id']}  v{p['model_version']}  {p['label']}  score {p['score']:.3f}  {p['routing']}"
    return text + (f" ({p['reason']})" if p.get("reason") else "")


def _passthrough(args: argparse.Namespace) -> list[str]:
    """--passthrough values, repeated or comma-separated, in order; the server checks them."""
    return [name.strip() for value in getattr(args, "passthrough", None) or []
            for name in value.split(",") if name.strip()]


def predict(args: argparse.Namespace) -> int:
    is_batch = args.data is None and args.input not in (None, "-") \
        and args.input.lower().endswith(BATCH_SUFFIXES)
    if _passthrough(args) and not is_batch:
        raise UsageError("--passthrough is for batch files (.csv, .parquet): a JSON input has "
                         "no columns to copy")
    client = _client(args)
    if args.data is not None:
        raw = args.data
    elif args.input == "-":
        raw = sys.stdin.read()
    elif args.input is None:
        raise UsageError("give the input: a .json/.csv/.parquet file, --data JSON, or - for stdin")
    elif is_batch:
        return _batch(args, client, check_file(args.input, "input file"))
    else:
        raw = read_file(args.input, "input file").decode("utf-8", errors="replace")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"the input is not valid JSON ({exc})") from None
    if isinstance(value, dict) and ("inputs" in value or "instances" in value):
        body = dict(value)
    elif isinstance(value, dict):
        body = {"inputs": value}
    elif isinstance(value, list):
        body = {"instances": value}
    else:
        raise UsageError("the input must be a JSON object (one input) or a list of objects")
    if args.model_version:
        body["version"] = args.model_version
    if getattr(args, "explain", None):
        body["explain"] = args.explain
    result = client.predict(args.model, body)
    items = result.get("predictions", [result])
    lines = [_prediction_line(p) for p in items]
    if result.get("explanation"):
        lines.append(_explanation_line(result["explanation"]))
    emit(args, result, "\n".join(lines))
    return EXIT_OK


def _explanation_line(e: dict) -> str:
    """An inline explanation in one line: what it is and where its figures are, or why
    the server did not compute it inline and where to ask for it."""
    if e.get("status") == "not_inline":
        return (f"  explanation: not computed inline ({e.get('reason') or 'slow explainer'}); "
                f"ask for one at {e.get('explanations_url')}")
    return (f"  explanation: {e.get('method')} in {e.get('units')}, id {e.get('id')} "
            "(--json for the contributions)")


def _targets(directory: Path, stem: str, force: bool) -> dict[str, Path]:
    targets = {kind: directory / f"{stem}-{kind}.csv" for kind in ("results", "errors")}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} exists: pass --force to overwrite, or --output-dir")
    return targets


def _finish_batch(args: argparse.Namespace, client: Client, job: dict, stem: str) -> int:
    job = client.batch_wait(job, timeout=getattr(args, "timeout", None))
    directory = Path(args.output_dir).expanduser()
    targets = _targets(directory, stem, args.force)
    files = {}
    for kind, link in (job.get("links") or {}).items():
        if kind in targets and link:
            client.download(link, targets[kind], desc=f"Downloading {kind}",
                            expect_sha256=job.get({"results": "result_sha256",
                                                   "errors": "error_sha256"}[kind]))
            files[kind] = str(targets[kind])
    summary = (f"batch {job['id']}: {job['status']}; {job['predictions']} predictions, "
               f"{job['rows_failed']} rows failed, {job['rows_routed']} routed to review")
    if job["status"] == "completed" and job.get("rows_failed"):
        reasons = [f"{r['code']}" + (f" on {r['field']}" if r.get("field") else "")
                   + f" ({r['rows']} row{'s' if r['rows'] != 1 else ''})" for r in (job.get("failure_reasons") or [])[:3]]
        summary += "\n  why rows failed: " + ("; ".join(reasons) or "see the error file")
    explained = job.get("explanation") or {}
    if explained.get("rows_explained") is not None:
        summary += (f"\n  explained: {explained['rows_explained']} rows by the "
                    f"{explained.get('explainer')} explainer, in {explained.get('units')} "
                    "(shap_* columns of the result file)")
    if files:
        summary += "\n" + "\n".join(f"  {kind}: {path}" for kind, path in files.items())
    if job.get("error"):
        summary += f"\n  error: {job['error']}"
    emit(args, {**job, "files": files}, summary)
    return _batch_exit(job)


def _batch_exit(job: dict) -> int:
    """0 every row scored (or still going), 8 completed with some rows failed (the error
    file says which and why), 1 failed or cancelled as a whole."""
    if job["status"] in ("failed", "cancelled"):
        return EXIT_CHECK_FAILED
    if job["status"] == "completed" and job.get("rows_failed"):
        return EXIT_PARTIAL
    return EXIT_OK


def _batch(args: argparse.Namespace, client: Client, path: Path) -> int:
    # Refuse to overwrite before uploading anything.
    _targets(Path(args.output_dir).expanduser(), path.stem, args.force)
    try:
        job = client.batch_submit(args.model, path, version=args.model_version,
                                  passthrough=_passthrough(args),
                                  explain=getattr(args, "explain", None))
    except RefusedError as exc:
        raise _unknown_column_hint(exc) from None
    say(f"Batch {job['id']}: {job['progress']['total_rows']} rows queued.", quiet=args.json)
    if args.no_wait:
        emit(args, job, f"batch {job['id']} {job['status']}: follow it with `attest batch "
                        f"status {job['id']} --wait`")
        return EXIT_OK
    return _finish_batch(args, client, job, path.stem)


def _unknown_column_hint(exc: RefusedError) -> RefusedError:
    """The server names its API field (passthrough_columns); say the option that sets it."""
    unknown = [str(e["field"])[len("file."):] for e in exc.errors
               if isinstance(e, dict) and e.get("code") == "unknown_field"
               and str(e.get("field") or "").startswith("file.")]
    if not unknown:
        return exc
    return RefusedError(f"{exc.message} (to copy it with attest: --passthrough "
                        f"{','.join(unknown)})", code=exc.code, status=exc.status,
                        errors=exc.errors, body=exc.body)


def batch_status(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.batch(args.batch_id)
    if args.wait:
        return _finish_batch(args, client, job, Path(job.get("file_name") or "batch").stem)
    p = job.get("progress") or {}
    emit(args, job, f"batch {job['id']}: {job['status']}, {p.get('rows_done')} of "
                    f"{p.get('total_rows')} rows ({p.get('percent')}%)"
                    + (f", {job['rows_failed']} failed" if job.get("rows_failed") else ""))
    return _batch_exit(job)


def batch_cancel(args: argparse.Namespace) -> int:
    job = _client(args).batch_cancel(args.batch_id)
    emit(args, job, f"batch {job['id']}: cancellation requested ({job['status']})")
    return EXIT_OK


# -- audit -----------------------------------------------------------------------------------

def _verdict_text(verdict: audit_module.ExportVerdict) -> str:
    if verdict.first_broken:
        b = verdict.first_broken
        text = (f"BROKEN at event #{b['seq']} ({b['time']}): {b['problem']}; "
                f"{verdict.checked} events verified before it")
    elif not verdict.ok and verdict.messages:
        text = "FAILED: " + "; ".join(verdict.messages)
    else:
        text = (f"intact: {verdict.checked} events verified, head #{verdict.head_seq} "
                f"{verdict.head_hash}")
        if not verdict.complete:
            text += f" (a filtered export: {verdict.missing} events between them not included)"
    if verdict.checkpoint:
        text += "\ncheckpoint: " + ("OK, " if verdict.checkpoint["ok"] else "FAILED, ") + \
            verdict.checkpoint["message"]
        if verdict.checkpoint.get("key_id") and not verdict.checkpoint.get("key_pinned"):
            text += (f"\n  signed by key {verdict.checkpoint['key_id']}; pass --public-key to "
                     "check it is your server's key")
    return text


def audit_verify(args: argparse.Namespace) -> int:
    checkpoint = read_file(args.checkpoint, "checkpoint") if args.checkpoint else None
    pinned = read_file(args.public_key, "public key") if args.public_key else None
    if args.export:
        document = audit_module.load_export(Path(args.export).expanduser())
        verdict = audit_module.verify_export(document, checkpoint, public_key_pem=pinned)
        emit(args, verdict.as_dict(), _verdict_text(verdict))
        return EXIT_OK if verdict.ok else EXIT_CHECK_FAILED
    client = _client(args)
    result = client.audit_verify()
    status = EXIT_OK if result.get("ok") else EXIT_CHECK_FAILED
    text = (f"intact: {result['checked']} events verified by the server, head "
            f"#{result.get('head_seq')} {result['head_hash']}" if result.get("ok") else
            f"BROKEN at event #{result['first_broken']['seq']}: "
            f"{result['first_broken']['problem']}")
    data: dict[str, Any] = {"server": result}
    if checkpoint is not None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "export.json"
            client.audit_export(target)
            verdict = audit_module.verify_export(audit_module.load_export(target), checkpoint,
                                                 public_key_pem=pinned)
        data["export"] = verdict.as_dict()
        text += "\nexport checked here: " + _verdict_text(verdict)
        if not verdict.ok:
            status = EXIT_CHECK_FAILED
    emit(args, data, text)
    return status


def audit_export(args: argparse.Namespace) -> int:
    client = _client(args)
    filters = {name: getattr(args, f"filter_{name}") for name in
               ("model", "version", "actor", "action", "since", "until")}
    target = Path(args.output).expanduser()
    digest, size = client.audit_export(target, filters=filters)
    document = audit_module.load_export(target)
    head = document.get("chain_head") or {}
    emit(args, {"output": str(target), "sha256": digest, "size": size,
                "events": len(document["events"]), "chain_head": head},
         f"Saved {len(document['events'])} events to {target} (chain head #{head.get('seq')} "
         f"{str(head.get('hash'))[:16]}…); verify it any time with `attest audit verify "
         f"--export {target}`.")
    return EXIT_OK


def audit_checkpoint(args: argparse.Namespace) -> int:
    """Sign a checkpoint now (administrators), or save the newest one the server signed
    (``--latest``, and what auditors get: signing on demand is not theirs)."""
    client = _client(args)
    note = ""
    if args.latest:
        document = client.audit_checkpoint_latest()
    else:
        try:
            document = client.audit_checkpoint_create()
        except NotFoundError:
            raise
        except DeniedError:
            document = client.audit_checkpoint_latest()
            note = ("Signing one on demand is for administrators (the server signs one "
                    "daily); this is the newest it signed. ")
    kept = {"payload": document["payload"], "signature": document["signature"]}
    target = Path(args.output).expanduser()
    _write_atomically(target, json.dumps(kept, indent=2, sort_keys=True) + "\n")
    payload = document["payload"]
    emit(args, {**kept, "output": str(target)},
         f"{note}Checkpoint of event #{payload['head_seq']} ({payload['head_hash'][:16]}…, "
         f"signed {payload['time']}, key {payload['key_id']}) saved to {target}: keep a copy "
         "away from the server.")
    return EXIT_OK


# -- dossiers ----------------------------------------------------------------------------------

DOSSIER_DONE = {"completed", "complete", "done", "ready", "succeeded", "failed", "error"}


def _dossier_link(d: dict, base: str) -> str | None:
    links = d.get("links") or {}
    for key in ("pdf", "download", "file"):
        if links.get(key):
            return links[key]
    for key in ("pdf_url", "download_url", "url"):
        if d.get(key):
            return d[key]
    return f"{base}/api/v1/dossiers/{d['id']}/pdf/" if d.get("id") is not None else None


def dossier_verify(args: argparse.Namespace) -> int:
    """The evidence package checked offline (attest_client.evidence): one line per failure."""
    from .evidence import verify_package

    checkpoint = read_file(args.checkpoint, "checkpoint") if args.checkpoint else None
    pinned = read_file(args.public_key, "public key") if args.public_key else None
    verdict = verify_package(Path(args.package), checkpoint, public_key_pem=pinned)
    text = verdict.summary() if verdict.ok else "\n".join(
        [*verdict.failures, f"FAILED: {len(verdict.failures)} problem(s) in {args.package}"])
    emit(args, verdict.as_dict(), text)
    return EXIT_OK if verdict.ok else EXIT_CHECK_FAILED


def dossier_sign(args: argparse.Namespace) -> int:
    """The IRB signs the dossier it read (irb_dossier_review). With ``--read FILE`` the
    file's sha256 must be the dossier's before a password is asked: you sign the bytes you
    read, and the server checks the same sha256 again (and the version's content hash)."""
    client = _client(args)
    d = client.dossier(args.dossier_id)
    if d.get("status") != "completed" or not d.get("sha256"):
        raise CheckFailed(f"dossier {d.get('id')} is {d.get('status')}: only a completed "
                          "dossier can be signed")
    sha256 = d["sha256"]
    if args.read:
        read = hashlib.sha256(read_file(args.read, "dossier PDF")).hexdigest()
        if read != sha256:
            raise CheckFailed(f"{args.read} (sha256 {read[:16]}…) is not dossier {d['id']} "
                              f"(sha256 {sha256[:16]}…): nothing was signed")
    content_hash = client.dossier_signoffs(d["id"])["content_hash"]
    if not args.json:
        read_note = (f"the file you read, {args.read}" if args.read else
                     "not checked against a file (pass --read FILE.pdf to check the one "
                     "you read)")
        say(f"You are signing irb_dossier_review = {args.decision} of dossier {d['id']} "
            f"({d.get('model')} v{d.get('version')}): sha256 {sha256}, {read_note}; "
            f"content hash {content_hash}. It does not approve the release.")
    password = _password(args, "Your password (second signature component): ")
    result = client.dossier_sign(d["id"], decision=args.decision, password=password,
                                 comment=args.comment, sha256=sha256,
                                 content_hash=content_hash)
    emit(args, result, f"Signed irb_dossier_review = {args.decision}, bound to dossier "
         f"sha256 {sha256[:16]}… and content hash {content_hash[:16]}….")
    return EXIT_OK


def dossier_get(args: argparse.Namespace) -> int:
    client = _client(args)
    d = client.dossier_create(args.model, args.version)
    say(f"Dossier {d.get('id')} for {args.model} v{args.version}: {d.get('status')}",
        quiet=args.json)
    if args.no_wait:
        emit(args, d, f"dossier {d.get('id')}: {d.get('status')}")
        return EXIT_OK
    started = time.monotonic()
    delay = 1.0
    while str(d.get("status", "")).lower() not in DOSSIER_DONE:
        if time.monotonic() - started > args.timeout:
            raise ServerUnavailable(f"dossier {d.get('id')} is still {d.get('status')} after "
                                    f"{args.timeout} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
        d = client.dossier(d["id"])
    if str(d.get("status")).lower() in ("failed", "error"):
        raise CheckFailed(f"the server could not generate dossier {d.get('id')}: "
                          f"{d.get('error') or 'no reason given'}")
    target = Path(args.output or f"{args.model}-v{args.version}-dossier.pdf").expanduser()
    link = _dossier_link(d, client.url or "")
    if link is None:
        raise ServerUnavailable("the server's dossier answer names no PDF to download")
    try:
        digest, size = client.download(link, target, desc="Downloading dossier",
                                       expect_sha256=d.get("sha256"))
    except AttestError as exc:
        raise ServerUnavailable(f"cannot download the dossier: {exc.message}") from None
    emit(args, {**d, "output": str(target), "sha256": digest, "size": size},
         f"Saved the dossier to {target} ({size} bytes, sha256 {digest[:16]}…).")
    return EXIT_OK
