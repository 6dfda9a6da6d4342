"""The REST API of an Attest server, as Python calls (``requests`` underneath).

``Client`` turns every failure into one of the exceptions of ``attest_client.errors``
with a one-line message: the server's own structured errors
(``{"errors": [{"field", "code", "message"}]}``) are joined into that line, and
transport failures (refused connection, time-out, TLS, a proxy's HTML page) are
named as such. Uploads are streamed with a known length (the server needs
Content-Length) and report progress; downloads are streamed to disk and checked
against the sha256 the server sends.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from . import config as config_module
from ._version import __version__
from .errors import (
    AttestError,
    AuthError,
    DeniedError,
    NotFoundError,
    RefusedError,
    ServerUnavailable,
    Unsupported,
    UsageError,
)
from .progress import progress

API = "/api/v1"
CHUNK = 256 * 1024
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 300  # registration loads and dry-runs the model; submit converts it
BATCH_DONE = {"completed", "failed", "cancelled"}
DOSSIER_PATHS = ("/api/v1/models/{model}/versions/{version}/dossiers/",
                 "/api/v1/dossiers/{id}/")


class Multipart:
    """A multipart/form-data body streamed from memory and files, with a known length.

    requests sends an object with ``read`` and ``__len__`` as a streamed body with
    that Content-Length; each block read advances ``on_progress``.
    """

    def __init__(self, fields: dict[str, str], files: dict[str, tuple[str, Path | bytes, str]],
                 on_progress: Callable[[int], None] | None = None) -> None:
        self.boundary = f"attest-{uuid.uuid4().hex}"
        self._parts: list[bytes | Path] = []
        for name, value in fields.items():
            self._parts.append(self._head(name) + b"\r\n" + value.encode("utf-8") + b"\r\n")
        for name, (filename, content, media_type) in files.items():
            self._parts.append(self._head(name, filename, media_type) + b"\r\n")
            self._parts.append(content if isinstance(content, Path) else bytes(content))
            self._parts.append(b"\r\n")
        self._parts.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(p.stat().st_size if isinstance(p, Path) else len(p)
                          for p in self._parts)
        self.on_progress = on_progress
        self._blocks = self._iterate()
        self._block = b""
        self._offset = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, name: str, filename: str | None = None, media_type: str = "") -> bytes:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
            disposition += f'; filename="{safe}"'
        lines = [f"--{self.boundary}", f"Content-Disposition: {disposition}"]
        if media_type:
            lines.append(f"Content-Type: {media_type}")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def _iterate(self) -> Iterator[bytes]:
        for part in self._parts:
            if isinstance(part, Path):
                with open(part, "rb") as handle:
                    while block := handle.read(CHUNK):
                        yield block
            else:
                for start in range(0, len(part), CHUNK):
                    yield part[start:start + CHUNK]

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(CHUNK):
            yield block

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer at a part's end; b"" at the end of the body)."""
        want = CHUNK if size is None or size < 0 else size
        if self._offset >= len(self._block):
            self._block, self._offset = next(self._blocks, b""), 0
        out = self._block[self._offset:self._offset + want]
        self._offset += len(out)
        if out and self.on_progress:
            self.on_progress(len(out))
        return out


def _errors_line(body: Any) -> tuple[str, str | None, list[dict]]:
    """The server's error items as one line, the first code, and the items."""
    items = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return "", None, []
    parts = []
    for item in items[:10]:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message") or item.get("code") or "error")
        field = item.get("field")
        parts.append(f"{field}: {message}" if field and str(field) not in message else message)
    more = len(items) - 10
    if more > 0:
        parts.append(f"and {more} more")
    code = items[0].get("code") if isinstance(items[0], dict) else None
    return "; ".join(parts), code, items


def _transport_reason(exc: requests.RequestException) -> str:
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused"),
                           ("Name or service not known", "host name not found"),
                           ("nodename nor servname", "host name not found"),
                           ("Temporary failure in name resolution", "host name not found"),
                           ("Network is unreachable", "network unreachable"),
                           ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted")):
        if needle in text:
            return reason
    return exc.__class__.__name__


class Client:
    """One server, one token. ``Client()`` reads the stored login (``attest login``)."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 settings: config_module.Settings | None = None, show_progress: bool = True,
                 timeout: float = READ_TIMEOUT) -> None:
        settings = settings or (config_module.load() if url is None or token is None
                                else config_module.Settings())
        self.url = config_module.normalize_url(url) if url else settings.url
        if token is None and settings.url and self.url != settings.url:
            # A stored token goes only to the server that issued it.
            settings = config_module.Settings(url=self.url)
        self.settings = settings
        self.token = token or settings.token
        self.show_progress = show_progress
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"attest-client/{__version__}"
        self.session.headers["Accept"] = "application/json"
        self._schema: dict | None = None

    # -- plumbing --------------------------------------------------------------------------

    def _require_url(self) -> str:
        if not self.url:
            raise AuthError("not logged in: run `attest login URL` (or set ATTEST_URL and "
                            "ATTEST_TOKEN)")
        return self.url

    def absolute(self, path: str) -> str:
        """A path on this server. A full URL the server sent back (a link to a file) keeps
        only its path: the token is never sent to another host, and links built behind a
        proxy (http, an internal host name) still lead here."""
        base = self._require_url()
        if not path.startswith(("http://", "https://")):
            return base + path
        link, ours = urlsplit(path), urlsplit(base)
        return urlunsplit((ours.scheme, ours.netloc, link.path, link.query, ""))

    def request(self, method: str, path: str, *, auth: bool = True, expect: tuple = (200,),
                timeout: float | None = None, **kwargs: Any) -> requests.Response:
        url = self.absolute(path)
        headers = dict(kwargs.pop("headers", None) or {})
        if auth:
            config_module.require_login(config_module.Settings(
                url=self.url, token=self.token, expires_at=self.settings.expires_at))
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.session.request(method, url, headers=headers,
                                            timeout=(CONNECT_TIMEOUT, timeout or self.timeout),
                                            **kwargs)
        except requests.Timeout:
            raise ServerUnavailable(f"the server at {self.url} did not answer within "
                                    f"{int(timeout or self.timeout)} s") from None
        except requests.ConnectionError as exc:
            raise ServerUnavailable(f"cannot reach the Attest server at {self.url}: "
                                    f"{_transport_reason(exc)}") from None
        except requests.RequestException as exc:
            raise ServerUnavailable(f"request to {self.url} failed: "
                                    f"{_transport_reason(exc)}") from None
        if response.status_code in expect:
            return response
        raise self._error(response, auth=auth)

    def _error(self, response: requests.Response, *, auth: bool) -> AttestError:
        status = response.status_code
        body: Any = None
        if "json" in response.headers.get("Content-Type", ""):
            try:
                body = response.json()
            except ValueError:
                body = None
        line, code, items = _errors_line(body)
        kwargs = {"code": code, "status": status, "errors": items,
                  "body": body if isinstance(body, dict) else None}
        if body is None or not line:
            if status >= 500:
                return ServerUnavailable(f"the server at {self.url} failed (HTTP {status})",
                                         **kwargs)
            return ServerUnavailable(
                f"{self.url} answered HTTP {status} without Attest's JSON errors: is it an Attest "
                "server (check the URL)?", **kwargs)
        if status == 401:
            if auth:
                return AuthError(f"the server refused your API token ({line}); run `attest "
                                 f"login {self.url}` again", **kwargs)
            return AuthError(line, **kwargs)
        if status == 403:
            return DeniedError(line, **kwargs)
        if status == 404:
            where = urlsplit(response.url).path
            return NotFoundError(f"{line.rstrip('.')}: {where} (or you may not see it)"
                                 if line in ("Not found.", "Not found") else line, **kwargs)
        if status >= 500:
            return ServerUnavailable(f"the server failed (HTTP {status}): {line}", **kwargs)
        return RefusedError(line, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, body: Any = None, *, expect: tuple = (200, 201, 202),
             **kwargs: Any) -> Any:
        response = self.request("POST", path, json=body, expect=expect, **kwargs)
        return response.json() if response.content else None

    def upload(self, path: str, fields: dict[str, str],
               files: dict[str, tuple[str, Path | bytes, str]], *, desc: str,
               expect: tuple = (200, 201, 202)) -> Any:
        """POST a multipart body with a progress bar."""
        with progress(None, desc, enabled=self.show_progress) as bar:
            body = Multipart(fields, files, on_progress=bar.update)
            bar.set_total(body.length, 0)
            response = self.request("POST", path, data=body, expect=expect,
                                    headers={"Content-Type": body.content_type,
                                             "Content-Length": str(body.length)})
        return response.json()

    def download(self, path: str, target: Path, *, desc: str,
                 expect_sha256: str | None = None) -> tuple[str, int]:
        """Stream a file to ``target`` (atomically), checking the sha256 the server sent."""
        response = self.request("GET", path, stream=True,
                                headers={"Accept": "*/*"})
        announced = response.headers.get("X-Content-SHA256") or expect_sha256
        total = int(response.headers.get("Content-Length") or 0) or None
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, progress(total, desc,
                                                      enabled=self.show_progress) as bar:
                for block in response.iter_content(CHUNK):
                    out.write(block)
                    digest.update(block)
                    size += len(block)
                    bar.update(len(block))
            if announced and digest.hexdigest() != announced:
                raise ServerUnavailable(f"the download of {target.name} is damaged: its sha256 "
                                        f"is {digest.hexdigest()[:16]}…, the server announced "
                                        f"{announced[:16]}…")
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest.hexdigest(), size

    # -- discovery ---------------------------------------------------------------------------

    def schema(self) -> dict:
        """The server's OpenAPI document (to find out what this server offers)."""
        if self._schema is None:
            response = self.request("GET", "/api/schema/", params={"format": "json"},
                                    headers={"Accept": "application/vnd.oai.openapi+json, "
                                             "application/json, application/yaml"})
            text = response.text
            try:
                self._schema = json.loads(text)
            except ValueError:
                import yaml

                try:
                    self._schema = yaml.safe_load(text)
                except yaml.YAMLError:
                    raise ServerUnavailable("the server's API schema is unreadable") from None
        return self._schema or {}

    def offers(self, path: str) -> bool:
        return path in (self.schema().get("paths") or {})

    # -- authentication ----------------------------------------------------------------------

    def token_create(self, *, username: str, password: str, name: str,
                     days: int | None = None) -> dict:
        body = {"username": username, "password": password, "name": name}
        if days:
            body["days"] = days
        return self.post(f"{API}/auth/tokens/", body, auth=False)

    def token_revoke(self, token_id: int) -> None:
        self.request("DELETE", f"{API}/auth/tokens/{token_id}/", expect=(204,))

    def whoami(self) -> dict:
        try:
            return self.get(f"{API}/auth/whoami/")
        except NotFoundError:
            # An older server without the endpoint: the token still works if this does.
            self.get(f"{API}/auth/tokens/")
            return {"username": self.settings.username, "models": None, "token": None}

    # -- registry ----------------------------------------------------------------------------

    def models(self) -> list[dict]:
        return self.get(f"{API}/models/")

    def model(self, name: str) -> dict:
        return self.get(f"{API}/models/{name}/")

    def model_create(self, *, name: str, description: str = "",
                     required_signoffs: list[str] | None = None,
                     retention_days: int | None = None) -> dict:
        body: dict[str, Any] = {"name": name, "description": description}
        if required_signoffs is not None:
            body["required_signoffs"] = required_signoffs
        if retention_days is not None:
            body["retention_days"] = retention_days
        return self.post(f"{API}/models/", body)

    def datasets(self) -> list[dict]:
        return self.get(f"{API}/datasets/")

    def dataset_find(self, ref: str | int) -> dict | None:
        """A dataset version by id or "name@version", or None."""
        text = str(ref)
        if text.isdigit():
            try:
                return self.get(f"{API}/datasets/{text}/")
            except NotFoundError:
                return None
        name, sep, label = text.partition("@")
        if not sep:
            raise UsageError(f"name the dataset as NAME@VERSION or by its id, not {text!r}")
        return next((d for d in self.datasets() if d["name"] == name and d["version"] == label),
                    None)

    def dataset_register(self, *, provenance: dict, profile: dict | None = None,
                         file: Path | None = None) -> dict:
        """From a locally computed profile (no rows sent), or by uploading ``file``."""
        if file is None:
            body = {**provenance, **{k: profile[k] for k in ("sha256", "row_count", "columns",
                                                              "profile")},
                    "file_format": profile.get("file_format")}
            return self.post(f"{API}/datasets/", body)
        fields = {k: str(v) for k, v in provenance.items() if v is not None}
        fields["store_file"] = "true"
        return self.upload(f"{API}/datasets/", fields,
                           {"file": (file.name, file, "application/octet-stream")},
                           desc=f"Uploading {file.name}")

    def versions(self, model: str) -> list[dict]:
        return self.get(f"{API}/models/{model}/versions/")

    def version(self, model: str, version: int | str) -> dict:
        return self.get(f"{API}/models/{model}/versions/{version}/")

    def version_register(self, model: str, *, artifact: Path | bytes, filename: str,
                         metadata: dict) -> dict:
        return self.upload(f"{API}/models/{model}/versions/",
                           {"metadata": json.dumps(metadata, allow_nan=False)},
                           {"artifact": (filename, artifact, "application/octet-stream")},
                           desc=f"Uploading {filename}", expect=(201,))

    def version_submit(self, model: str, version: int | str) -> dict:
        return self.post(f"{API}/models/{model}/versions/{version}/submit/")

    def signoffs(self, model: str, version: int | str) -> dict:
        return self.get(f"{API}/models/{model}/versions/{version}/signoffs/")

    def signoff(self, model: str, version: int | str, *, meaning: str, decision: str,
                password: str, comment: str = "", content_hash: str | None = None) -> dict:
        body = {"meaning": meaning, "decision": decision, "password": password,
                "comment": comment}
        if content_hash:
            body["content_hash"] = content_hash
        return self.post(f"{API}/models/{model}/versions/{version}/signoffs/", body)

    def promote(self, model: str, version: int | str) -> dict:
        return self.post(f"{API}/models/{model}/versions/{version}/promote/", {})

    # -- predictions and batches -------------------------------------------------------------

    def predict(self, model: str, body: dict) -> dict:
        return self.post(f"{API}/models/{model}/predict/", body, expect=(200,))

    def batch_submit(self, model: str, file: Path, *, version: int | None = None,
                     passthrough: list[str] | None = None, explain: str | None = None) -> dict:
        """Upload ``file`` as a batch job; ``passthrough`` names columns of the file to copy to
        the result and error files (sent as one comma-separated ``passthrough_columns``);
        ``explain`` ("shap") asks for contribution columns for every scored row."""
        fields = {} if version is None else {"version": str(version)}
        if passthrough:
            fields["passthrough_columns"] = ",".join(passthrough)
        if explain:
            fields["explain"] = explain
        return self.upload(f"{API}/models/{model}/batches/", fields,
                           {"file": (file.name, file, "application/octet-stream")},
                           desc=f"Uploading {file.name}", expect=(202,))

    def batch(self, batch_id: str) -> dict:
        return self.get(f"{API}/batches/{batch_id}/")

    def batch_cancel(self, batch_id: str) -> dict:
        return self.request("DELETE", f"{API}/batches/{batch_id}/", expect=(202,)).json()

    def batch_wait(self, job: dict, *, poll: float = 0.5, timeout: float | None = None) -> dict:
        """Poll until the job ends, with a bar over its rows."""
        started = time.monotonic()
        total = (job.get("progress") or {}).get("total_rows")
        with progress(total, "Scoring", unit="rows", enabled=self.show_progress) as bar:
            while job["status"] not in BATCH_DONE:
                if timeout is not None and time.monotonic() - started > timeout:
                    raise ServerUnavailable(f"batch {job['id']} is still {job['status']} after "
                                            f"{int(timeout)} s; follow it with `attest batch "
                                            f"status {job['id']}`")
                time.sleep(poll)
                poll = min(poll * 1.5, 5.0)
                job = self.batch(job["id"])
                state = job.get("progress") or {}
                bar.set_total(state.get("total_rows"), state.get("rows_done"))
            state = job.get("progress") or {}
            bar.set_total(state.get("total_rows"), state.get("rows_done"))
        return job

    # -- audit trail -------------------------------------------------------------------------

    def audit_verify(self) -> dict:
        return self.get(f"{API}/audit/verify/")

    def audit_export(self, target: Path, *, filters: dict | None = None) -> tuple[str, int]:
        params = {k: v for k, v in (filters or {}).items() if v}
        params["format"] = "json"
        query = "&".join(f"{k}={requests.utils.quote(str(v))}" for k, v in params.items())
        return self.download(f"{API}/audit/export/?{query}", target, desc="Exporting")

    def audit_checkpoint_create(self) -> dict:
        return self.post(f"{API}/audit/checkpoints/", expect=(201,))

    def audit_checkpoint_latest(self) -> dict:
        return self.get(f"{API}/audit/checkpoints/latest/")

    def audit_checkpoints(self) -> dict:
        return self.get(f"{API}/audit/checkpoints/")

    # -- dossiers (SPEC paths; servers before the dossier feature do not offer them) ---------

    def _require_dossiers(self) -> None:
        if not self.offers(DOSSIER_PATHS[0]):
            raise Unsupported(f"the server at {self.url} does not offer compliance dossiers "
                              f"(its API has no {DOSSIER_PATHS[0]}); ask its administrator to "
                              "upgrade Attest")

    def dossier_create(self, model: str, version: int | str) -> dict:
        self._require_dossiers()
        return self.post(f"{API}/models/{model}/versions/{version}/dossiers/", {})

    def dossier(self, dossier_id: str | int) -> dict:
        return self.get(f"{API}/dossiers/{dossier_id}/")

    def dossier_signoffs(self, dossier_id: str | int) -> dict:
        return self.get(f"{API}/dossiers/{dossier_id}/signoffs/")

    def dossier_sign(self, dossier_id: str | int, *, decision: str, password: str,
                     sha256: str, content_hash: str, comment: str = "") -> dict:
        """The IRB's ``irb_dossier_review`` of a dossier: the server refuses it unless
        ``sha256`` is the dossier's and ``content_hash`` the version's."""
        return self.post(f"{API}/dossiers/{dossier_id}/signoffs/",
                         {"decision": decision, "password": password, "comment": comment,
                          "sha256": sha256, "content_hash": content_hash})


def read_file(path: str | Path, what: str = "file") -> bytes:
    """A local file's bytes, or a one-line UsageError."""
    target = Path(path).expanduser()
    try:
        return target.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {target}") from None
    except IsADirectoryError:
        raise UsageError(f"{target} is a directory, not a {what}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {target}: {exc.strerror or exc}") from None


def check_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a readable regular file, or a one-line UsageError (nothing is read)."""
    target = Path(path).expanduser()
    if not target.exists():
        raise UsageError(f"{what} not found: {target}")
    if target.is_dir():
        raise UsageError(f"{target} is a directory, not a {what}")
    if not os.access(target, os.R_OK):
        raise UsageError(f"cannot read {target}: permission denied")
    return target
