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
