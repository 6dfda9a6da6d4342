"""gunicorn's access logger, building only the atoms the access-log format uses.

gunicorn's ``Logger.atoms`` builds a dict of ~60 entries per request (every request
and response header and every environ entry) for a format that reads nine; on the
prediction path that was ~4% of a worker's time. This logger fills the same atoms,
with the same values, for the names the format mentions, and falls back to gunicorn's
own for any atom it does not know. ``deploy/gunicorn.conf.py`` sets it as
``logger_class``; ``tests/portal/test_access_log.py`` compares both line by line.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from urllib.parse import quote

from gunicorn import glogging

_ATOM = re.compile(r"%\(([^)]+)\)s")


def _status(resp) -> str:
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


_SIMPLE = {
    "h": lambda resp, req, environ, rt, log: environ.get("REMOTE_ADDR", "-"),
    "l": lambda resp, req, environ, rt, log: "-",
    "t": lambda resp, req, environ, rt, log: log.now(),
    "r": lambda resp, req, environ, rt, log: (
        f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"),
    "s": lambda resp, req, environ, rt, log: _status(resp),
    "m": lambda resp, req, environ, rt, log: environ.get("REQUEST_METHOD"),
    "U": lambda resp, req, environ, rt, log: environ.get("PATH_INFO"),
    "q": lambda resp, req, environ, rt, log: environ.get("QUERY_STRING"),
    "H": lambda resp, req, environ, rt, log: environ.get("SERVER_PROTOCOL"),
    "b": lambda resp, req, environ, rt, log: (
        getattr(resp, "sent", None) is not None and str(resp.sent) or "-"),
    "B": lambda resp, req, environ, rt, log: getattr(resp, "sent", None),
    "f": lambda resp, req, environ, rt, log: environ.get("HTTP_REFERER", "-"),
    "a": lambda resp, req, environ, rt, log: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda resp, req, environ, rt, log: rt.seconds,
    "D": lambda resp, req, environ, rt, log: rt.seconds * 1000000 + rt.microseconds,
    "M": lambda resp, req, environ, rt, log: rt.seconds * 1000 + int(rt.microseconds / 1000),
    "L": lambda resp, req, environ, rt, log: f"{rt.seconds:d}.{rt.microseconds:06d}",
    "p": lambda resp, req, environ, rt, log: f"<{os.getpid()}>",
}


def _last(pairs, name: str):
    """The value gunicorn's dict would hold for a header: the last one of that name."""
    found = None
    for key, value in pairs:
        if key.lower() == name:
            found = value
    return found


class AccessLogger(glogging.Logger):
    _plan: tuple[str, tuple[str, ...]] | None = None

    def _wanted(self) -> tuple[str, ...] | None:
        """The atoms the current format names, or None when one is not ours to build."""
        fmt = self.cfg.access_log_format
        if self._plan is None or self._plan[0] != fmt:
            names = tuple(dict.fromkeys(_ATOM.findall(fmt)))
            known = all(n in _SIMPLE or re.fullmatch(r"\{[^}]+\}[ioe]", n) for n in names)
            self._plan = (fmt, names if known else None)
        return self._plan[1]

    def atoms(self, resp, req, environ, request_time):
        names = self._wanted()
        if names is None:
            return super().atoms(resp, req, environ, request_time)
        atoms = {}
        for name in names:
            simple = _SIMPLE.get(name)
            if simple is not None:
                atoms[name] = simple(resp, req, environ, request_time, self)
                continue
            key, kind = name[1:-2].lower(), name[-1]
            if kind == "i":
                headers = req.headers if hasattr(req, "headers") else req
                value = _last(headers.items() if hasattr(headers, "items") else headers, key)
            elif kind == "o":
                headers = resp.headers
                value = _last(headers.items() if hasattr(headers, "items") else headers, key)
            else:
                value = _last(environ.items(), key)
            if value is not None:
                atoms[name.lower()] = value
        return atoms


# -- the same line written by the app, for servers whose own log cannot see the response

# deploy/gunicorn.conf.py's access_log_format (a test keeps the two equal): the client
# address, the one the proxy reports, the request line, status, bytes, referrer,
# agent, the request id the app answered with and the duration in milliseconds.
ACCESS_LOG_FORMAT = (
    '%(h)s xff="%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(b)s '
    '"%(f)s" "%(a)s" rid=%({x-request-id}o)s %(M)sms'
)


def app_logger(fmt: str = ACCESS_LOG_FORMAT) -> AccessLogger:
    """An :class:`AccessLogger` set up as ``deploy/gunicorn.conf.py`` sets gunicorn's:
    access lines to stdout."""
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("access_log_format", fmt)
    cfg.set("accesslog", "-")
    cfg.set("errorlog", "-")
    return AccessLogger(cfg)


class _Request:
    """What the atoms read of gunicorn's request: its headers, as (NAME, value)."""

    __slots__ = ("environ",)

    def __init__(self, environ):
        self.environ = environ

    @property
    def headers(self):
        return [(k[5:].replace("_", "-"), v) for k, v in self.environ.items()
                if k.startswith("HTTP_")]


class _Response:
    __slots__ = ("status", "headers", "sent")

    def __init__(self, status, headers, sent):
        self.status, self.headers, self.sent = status, headers, sent


class _Counted:
    """The response body, counted as the server sends it; logged when it is closed."""

    def __init__(self, body, done):
        self._body, self._done, self._sent = body, done, 0

    def __iter__(self):
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._sent)


# What may stay unescaped in the logged target: RFC 3986 path and query characters, and
# "%" (an escape already). Never a space, a quote or a control character, so a path
# cannot end the line or fake the next field.
_URI_SAFE = "/?:@!$&'()*+,;=-._~%"


def _raw_uri(environ) -> str:
    """The request target as it came: PEP 3333's PATH_INFO is percent-decoded (a %0A
    is a newline there), so it is encoded again for the log."""
    uri = quote(environ.get("PATH_INFO", "").encode("latin-1", "replace"), safe=_URI_SAFE)
    query = environ.get("QUERY_STRING")
    if query:
        uri += "?" + quote(query.encode("latin-1", "replace"), safe=_URI_SAFE)
    return uri


class AppAccessLog:
    """WSGI middleware writing gunicorn's access line from inside the app.

    granian's own access log sees the request but not the response's headers, so it
    cannot carry the request id the app answers with (the id of that request's audit
    events). ``deploy/web.py`` turns granian's log off and this one on
    (``ATTEST_APP_ACCESS_LOG``); under gunicorn it stays off (gunicorn writes the line).
    """

    def __init__(self, app, logger: AccessLogger | None = None):
        self.app = app
        self.logger = logger or app_logger()

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        if "RAW_URI" not in environ:
            environ["RAW_URI"] = _raw_uri(environ)
        seen: list = ["500 Internal Server Error", []]

        def capture(status, headers, exc_info=None):
            seen[:] = [status, headers]
            return start_response(status, headers, exc_info)

        def log(sent):
            elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
            self.logger.access(_Response(seen[0], seen[1], sent), _Request(environ), environ,
                               elapsed)

        try:
            body = self.app(environ, capture)
        except BaseException:
            seen[0] = "500 Internal Server Error"  # what the server answers instead
            log(None)
            raise
        if isinstance(body, list):
            log(sum(map(len, body)))
            return body
        return _Counted(body, log)
