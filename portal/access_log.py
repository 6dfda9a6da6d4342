"""gunicorn's access logger, building only the atoms the access-log format uses.

gunicorn's ``Logger.atoms`` builds a dict of ~60 entries per request (every request
and response header and every environ entry) for a format that reads nine; on the
prediction path that was ~4% of a worker's time. This logger fills the same atoms,
with the same values, for the names the format mentions, and falls back to gunicorn's
own for any atom it does not know. ``deploy/gunicorn.conf.py`` sets it as
``logger_class``; ``tests/portal/test_access_log.py`` compares both line by line.
"""

from __future__ import annotations

import os
import re

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
