"""portal.access_log.AccessLogger writes the same access lines as gunicorn's logger."""

from __future__ import annotations

import datetime
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from portal.access_log import AccessLogger

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = runpy.run_path(str(ROOT / "deploy/gunicorn.conf.py"))["access_log_format"]


def _config(fmt: str) -> Config:
    cfg = Config()
    cfg.set("access_log_format", fmt)
    return cfg


def _line(logger_class, fmt: str, resp, req, environ, request_time) -> str:
    logger = logger_class(_config(fmt))
    logger.now = lambda: "[22/Nov/2026:10:00:00 +0000]"
    atoms = logger.atoms_wrapper_class(logger.atoms(resp, req, environ, request_time))
    return fmt % atoms


def _request(**headers):
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "RAW_URI": "/api/v1/x/?a=1",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/api/v1/x/", "QUERY_STRING": "a=1",
               "HTTP_USER_AGENT": 'curl/8 "quoted"', "wsgi.url_scheme": "http"}
    req = SimpleNamespace(headers=[(k.upper(), v) for k, v in headers.items()])
    resp = SimpleNamespace(status="201 Created", sent=417,
                           headers=[("Content-Type", "application/json"),
                                    ("X-Request-ID", "abc123"), ("X-Request-ID", "last")])
    return resp, req, environ, datetime.timedelta(seconds=1, microseconds=234567)


@pytest.mark.parametrize("fmt", [
    DEPLOYED,
    Config().access_log_format,
    '%(h)s %(l)s %(t)s "%(r)s" %(s)s %(b)s %(B)s %(m)s %(U)s %(q)s %(H)s %(T)s %(D)s '
    '%(L)s %({content-type}o)s %({X-FORWARDED-FOR}i)s %({wsgi.url_scheme}e)s %({missing}i)s',
])
@pytest.mark.parametrize("headers", [{}, {"x-forwarded-for": "1.2.3.4, 5.6.7.8",
                                          "referer": "https://a/b"}])
def test_the_same_line_as_gunicorns_logger(fmt, headers):
    resp, req, environ, rt = _request(**headers)
    if "referer" in headers:
        environ["HTTP_REFERER"] = headers["referer"]
    assert _line(AccessLogger, fmt, resp, req, environ, rt) == \
        _line(glogging.Logger, fmt, resp, req, environ, rt)


def test_an_atom_it_does_not_build_falls_back_to_gunicorns():
    resp, req, environ, rt = _request()
    fmt = "%(h)s %(u)s %(p)s %(z)s"
    assert _line(AccessLogger, fmt, resp, req, environ, rt) == \
        _line(glogging.Logger, fmt, resp, req, environ, rt)


# -- the app's own access line (granian) ------------------------------------------------

def test_the_app_writes_the_deployed_format():
    from portal.access_log import ACCESS_LOG_FORMAT

    assert ACCESS_LOG_FORMAT == DEPLOYED


def _app_line(app_body, environ, status="201 Created", headers=None, raises=None):
    from portal.access_log import AppAccessLog, app_logger

    logger = app_logger()
    logger.now = lambda: "[22/Nov/2026:10:00:00 +0000]"
    lines = []
    logger.access_log.info = lambda fmt, atoms: lines.append(fmt % atoms)

    def app(environ, start_response):
        start_response(status, headers or [("X-Request-ID", "rid-1")])
        if raises:
            raise raises
        return app_body

    wrapped = AppAccessLog(app, logger)
    return wrapped, lines


def _granian_environ(**extra):
    return {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/x/",
            "QUERY_STRING": "a=1", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_USER_AGENT": "curl/8", "HTTP_X_FORWARDED_FOR": "1.2.3.4",
            "HTTP_REFERER": "https://ref/", **extra}


def test_a_list_body_is_logged_at_once_with_the_request_id_and_size():
    app, lines = _app_line([b"abc", b"de"], {})
    body = app(_granian_environ(), lambda *a: None)
    assert body == [b"abc", b"de"]
    line = lines[0]
    assert line.startswith('10.0.0.7 xff="1.2.3.4" [22/Nov/2026:10:00:00 +0000] '
                           '"POST /api/v1/x/?a=1 HTTP/1.1" 201 5 "https://ref/" "curl/8" '
                           'rid=rid-1 ')
    assert line.endswith("ms")


def test_the_line_matches_gunicorns_for_the_same_request():
    """The atoms as gunicorn would build them from its own request and response."""
    app, lines = _app_line([b"x" * 417], {})
    app(_granian_environ(HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8"), lambda *a: None)
    environ = {**_granian_environ(HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8"),
               "RAW_URI": "/api/v1/x/?a=1"}
    req = SimpleNamespace(headers=[("USER-AGENT", "curl/8"),
                                   ("X-FORWARDED-FOR", "1.2.3.4, 5.6.7.8"),
                                   ("REFERER", "https://ref/")])
    resp = SimpleNamespace(status="201 Created", sent=417, headers=[("X-Request-ID", "rid-1")])
    theirs = _line(glogging.Logger, DEPLOYED, resp, req, environ, datetime.timedelta(0))
    # equal up to the duration, which differs
    assert lines[0].rsplit(" ", 1)[0] == theirs.rsplit(" ", 1)[0]


def test_a_streamed_body_is_counted_and_logged_when_closed():
    closed = []

    class Stream:
        def __iter__(self):
            yield b"12345"
            yield b"678"

        def close(self):
            closed.append(True)

    app, lines = _app_line(Stream(), {})
    body = app(_granian_environ(), lambda *a: None)
    assert lines == []
    assert b"".join(body) == b"12345678"
    body.close()
    assert closed == [True] and '" 201 8 "' in lines[0]


def test_an_exception_is_logged_as_500_and_raised():
    app, lines = _app_line(None, {}, raises=RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        app(_granian_environ(), lambda *a: None)
    assert '" 500 - "' in lines[0]


def test_a_decoded_path_cannot_break_the_line():
    """PEP 3333's PATH_INFO is percent-decoded: a %0A arrives as a newline."""
    app, lines = _app_line([b""], {})
    app(_granian_environ(PATH_INFO='/x\n127.0.0.1 "GET /fake" 200', QUERY_STRING="a=\"b c\""),
        lambda *a: None)
    line = lines[0]
    assert "\n" not in line
    assert '"POST /x%0A127.0.0.1%20%22GET%20/fake%22%20200?a=%22b%20c%22 HTTP/1.1"' in line
