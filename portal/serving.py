"""The prediction endpoint's fast lane: a WSGI layer in front of Django.

``POST /api/v1/models/<name>/predict/`` is the hot path: clinicians' systems call it
one row at a time and wait for the answer. Through Django's handler, ten middleware
classes, URL resolution and DRF's request/response wrapping it spent ~0.65 ms of
framework time on top of ~0.7 ms of its own work (token, model lookup, validation,
scoring, the log row). This layer answers the common shape of that request with the
same services and nothing else:

- method POST, the path exactly ``/api/v1/models/<name>/predict/``, no query string;
- ``Authorization: Bearer <token>`` (or ``Token``) that authenticates;
- ``Content-Type: application/json`` (utf-8), a Content-Length within
  ``DATA_UPLOAD_MAX_MEMORY_SIZE``, and a body that parses as strict JSON;
- an ``Accept`` that DRF would answer with plain JSON, a host in ALLOWED_HOSTS, and no
  HTTPS redirect due.

Every other request goes to Django untouched (the body, once read here, is handed on),
so every refusal before the prediction service runs — 401, a disallowed host, an
unparsable body, a wrong media type — is Django's own answer. What the lane answers,
it answers as the DRF view would: the same ``predict_answer`` (so 403/404/400 from the
services are the same bodies), the same JSON renderer, the same headers as the
middleware stack (``core.middleware.stack_headers``), the same actor context for audit
events, and Django's request_started/request_finished signals (persistent database
connections are checked and recycled exactly as for any request).
``tests/portal/test_serving.py`` sends the same requests both ways and compares.

``ATTEST_PREDICT_FAST_LANE=false`` turns it off (every request through Django).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
from collections import OrderedDict
from http import HTTPStatus

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from core.api import json_500
from core.context import (
    ActorContext,
    context_for_user,
    new_request_id,
    reset_actor,
    set_actor,
)
from core.errors import ApplicationError
from core.middleware import client_address_from, request_is_secure, stack_headers
from core.parsers import find_unstorable_text
from inference.api.views import predict_answer
from inference.services import GuardFailed
from registry.selectors import ServingContext, serving_context

from . import epoch
from .models import ApiToken
from .tokens import TOKEN_TOUCH_SECONDS, api_token_authenticate

log = logging.getLogger("django.request")

PREDICT_PATH = re.compile(r"/api/v1/models/([A-Za-z0-9._-]{1,200})/predict/")
JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8",
                        "application/json;charset=utf-8"})
ACCEPT_JSON = frozenset({"*/*", "application/*", "application/json"})
AUTH_KEYWORDS = frozenset({"bearer", "token"})
_RENDERER = JSONRenderer()


_UNPARSED = object()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("latin-1")).hexdigest()


class ServingCache:
    """Per process: what the last uncached request of a token read (the token row with
    its user, and the serving context per model), labelled with the serving epoch read
    before it. An entry is used only with the guard "the epoch still has that value"
    on the log row's INSERT; a token due a last-used update (or never used) is not
    served from here, so first-use events and last-used times stay as they were."""

    MAX = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, tuple[int, ApiToken]] = OrderedDict()
        self._contexts: OrderedDict[tuple[int, str], tuple[int, ServingContext]] = OrderedDict()

    def get(self, digest: str, model: str) -> tuple[int, ApiToken, ServingContext] | None:
        with self._lock:
            token = self._tokens.get(digest)
            if token is None:
                return None
            value, row = token
            found = self._contexts.get((row.user_id, model))
            if found is None or found[0] != value:
                return None
            self._tokens.move_to_end(digest)
            self._contexts.move_to_end((row.user_id, model))
        now = timezone.now()
        if (not row.is_active or not row.user.is_active or row.last_used_at is None
                or (now - row.last_used_at).total_seconds() > TOKEN_TOUCH_SECONDS):
            return None
        return value, row, found[1]

    def put(self, digest: str, value: int, row: ApiToken, ctx: ServingContext) -> None:
        with self._lock:
            self._tokens[digest] = (value, row)
            self._contexts[(row.user_id, ctx.model.name)] = (value, ctx)
            for entries in (self._tokens, self._contexts):
                entries.move_to_end(next(reversed(entries)))
                while len(entries) > self.MAX:
                    entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._contexts.clear()


CACHE = ServingCache()


class _Refused(Exception):
    """A JSON constant DRF's strict parser refuses (NaN, Infinity)."""


def _no_constants(name: str):
    raise _Refused(name)


def _accepts_json(accept: str | None) -> bool:
    """DRF would pick its JSON renderer with no renderer parameters (e.g. indent)."""
    if not accept:
        return True
    ranges = [part.strip().lower() for part in accept.split(",")]
    return all(";" not in r for r in ranges) and any(r in ACCEPT_JSON for r in ranges)


def _host_allowed(environ) -> bool:
    if settings.USE_X_FORWARDED_HOST or "HTTP_HOST" not in environ:
        return False
    domain, _port = split_domain_port(environ["HTTP_HOST"])
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


class PredictLane:
    """WSGI application: the fast lane for predictions, Django for everything else."""

    def __init__(self, django_app) -> None:
        self.django_app = django_app

    def __call__(self, environ, start_response):
        match = self._match(environ)
        if match is None:
            return self.django_app(environ, start_response)
        length = int(environ["CONTENT_LENGTH"])
        body = environ["wsgi.input"].read(length) if length else b""
        # Whatever happens next, Django can still be handed the request, body included.
        environ["wsgi.input"] = io.BytesIO(body)
        signals.request_started.send(sender=WSGIHandler, environ=environ)
        try:
            answer = self._answer(environ, match, body)
        finally:
            signals.request_finished.send(sender=WSGIHandler)
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.django_app(environ, start_response)
        status, headers, content = answer
        start_response(status, headers)
        return [content]

    def _match(self, environ) -> str | None:
        """The model name when the request has the shape this lane answers, else None."""
        if (environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING")
                or environ.get("CONTENT_TYPE", "").lower() not in JSON_TYPES):
            return None
        match = PREDICT_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 <= length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return None
        if not _accepts_json(environ.get("HTTP_ACCEPT")) or not _host_allowed(environ):
            return None
        if settings.DISALLOWED_USER_AGENTS:
            return None
        if settings.SECURE_SSL_REDIRECT and not request_is_secure(environ):
            return None
        auth = environ.get("HTTP_AUTHORIZATION", "").split()
        if len(auth) != 2 or auth[0].lower() not in AUTH_KEYWORDS:
            return None
        return match.group(1)

    def _answer(self, environ, model: str, body: bytes):
        """(status, headers, content), or None to let Django answer."""
        request_id = new_request_id()
        remote_addr = client_address_from(environ)
        # As RequestContextMiddleware: the request's context before authentication
        # (a token's first-use event is recorded during it), the user's after.
        base = set_actor(ActorContext(request_id=request_id, remote_addr=remote_addr,
                                      via="web"))
        try:
            try:
                data = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
            except (ValueError, _Refused, RecursionError):
                data = _UNPARSED
            # Strictly decoded UTF-8 holds no surrogate and JSON no raw NUL in a string:
            # either can only come from a \u escape, so a body without one needs no walk.
            if (data is not _UNPARSED and b"\\u" in body
                    and find_unstorable_text(data) is not None):
                data = _UNPARSED
            token = environ["HTTP_AUTHORIZATION"].split()[1]
            answered = None
            if data is not _UNPARSED:
                answered = self._cached(token, model, data, request_id, remote_addr)
            if answered is None:
                answered = self._uncached(token, model, data, request_id, remote_addr)
            if answered is None:
                return None
            status, content, extra = answered
        finally:
            reset_actor(base)
        headers = [("Content-Type", "application/json"), ("Allow", "POST, OPTIONS"),
                   ("Content-Length", str(len(content))), ("X-Request-ID", request_id),
                   *stack_headers(secure=request_is_secure(environ)), *extra]
        return _status_line(status), headers, content

    def _cached(self, token: str, model: str, data, request_id: str, remote_addr):
        """The answer from cached authorization, or None (nothing written or counted)."""
        if not isinstance(data, dict) or set(data) != {"inputs"} or not epoch.available():
            return None
        hit = CACHE.get(_digest(token), model)
        if hit is None:
            return None
        value, row, ctx = hit
        set_actor(context_for_user(row.user, via="api", request_id=request_id,
                                   remote_addr=remote_addr))
        try:
            payload = predict_answer(user=row.user, model=model, read_body=lambda: data,
                                     ctx=ctx, guard=epoch.guard(value))
        except (GuardFailed, ApplicationError):
            return None
        return 200, _RENDERER.render(payload), []

    def _uncached(self, token: str, model: str, data, request_id: str, remote_addr):
        """(status, content, extra headers) read fresh, or None to let Django answer."""
        caching = epoch.available()
        value = epoch.read() if caching else None  # before the reads it will label
        row = self._authenticate(token)
        if row is None or data is _UNPARSED:
            return None  # Django answers the 401 (with its challenge) or words the 400
        set_actor(context_for_user(row.user, via="api", request_id=request_id,
                                   remote_addr=remote_addr))
        ctx = serving_context(user=row.user, name=model)
        if caching and ctx is not None:
            CACHE.put(_digest(token), value, row, ctx)
        status, extra = 200, []
        try:
            content = _RENDERER.render(predict_answer(
                user=row.user, model=model, read_body=lambda: data, ctx=ctx))
        except ApplicationError as exc:
            status = exc.status
            extra = [(k, str(v)) for k, v in (getattr(exc, "headers", None) or {}).items()]
            content = _RENDERER.render(exc.as_body())
            log.warning("%s: %s", HTTPStatus(status).phrase, self._path(model))
        except Exception:
            log.exception("Internal Server Error: %s", self._path(model))
            status, content = 500, json_500(None).content
        return status, content, extra

    @staticmethod
    def _path(model: str) -> str:
        return f"/api/v1/models/{model}/predict/"

    @staticmethod
    def _authenticate(token: str):
        try:
            token.encode("latin-1")  # what DRF's header decoding would have given
        except UnicodeEncodeError:
            return None
        return api_token_authenticate(token)
