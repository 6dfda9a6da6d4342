"""WSGI environ hygiene for servers that mix the process environment into requests.

granian's WSGI interface starts every request's environ from a copy of the server
process's environment variables (``basic_env = dict(os.environ)``, then the request's
keys on top). Unfiltered, ``request.META`` would hold ``DATABASE_URL``,
``ATTEST_SECRET_KEY`` and the rest, and a process variable named like a header
(``HTTP_PROXY`` for outbound proxies) would read as a header the client sent (the
"httpoxy" confusion). :class:`RequestOnlyEnviron` keeps only what a WSGI server sets
for a request: the CGI variables granian sets, ``HTTP_*`` headers and ``wsgi.*`` keys,
and among those drops any whose value equals the process's own variable of that name.

Applied only when ``SERVER_SOFTWARE`` says granian; under gunicorn or Django's
test client the environ is the request's alone and passes untouched.
"""

from __future__ import annotations

import os

# The CGI variables granian sets for a request (besides HTTP_* headers and wsgi.*).
# A process variable of one of these names is overridden by the request's value, or,
# where the request has none (CONTENT_TYPE of a GET), is dropped by the value check.
CGI_KEYS = frozenset({
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
    "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
    "GATEWAY_INTERFACE", "REMOTE_ADDR",
})
SERVERS = frozenset({"Granian"})


def request_only(environ: dict, process_env) -> None:
    """Remove from ``environ`` (in place) every key that came from ``process_env``."""
    for key in list(environ):
        if key.startswith("wsgi."):
            continue
        if key in CGI_KEYS or key.startswith("HTTP_"):
            if environ[key] == process_env.get(key):
                del environ[key]
        else:
            del environ[key]


class RequestOnlyEnviron:
    """WSGI middleware: :func:`request_only` for the servers in :data:`SERVERS`."""

    def __init__(self, app, process_env: dict[str, str] | None = None):
        self.app = app
        self._process_env = process_env

    def __call__(self, environ, start_response):
        if environ.get("SERVER_SOFTWARE") in SERVERS:
            request_only(environ, os.environ if self._process_env is None else self._process_env)
        return self.app(environ, start_response)
