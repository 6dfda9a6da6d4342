"""granian mixes the server process's environment into every WSGI environ; the app
must see only the request (portal.environ)."""

from __future__ import annotations

from portal.environ import RequestOnlyEnviron, request_only

PROCESS = {
    "DATABASE_URL": "postgres://attest:secret@db/attest",
    "ATTEST_SECRET_KEY": "not-for-requests",
    "HTTP_PROXY": "http://proxy.internal:3128",
    "CONTENT_TYPE": "text/leak",
    "PATH": "/usr/bin",
}


def _granian_environ(**request) -> dict:
    """What granian builds: the process env, its fixed keys, then the request's."""
    return {**PROCESS, "GATEWAY_INTERFACE": "CGI/1.1", "SCRIPT_NAME": "",
            "SERVER_SOFTWARE": "Granian", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "",
            "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "attest.example", **request}


def test_process_variables_do_not_reach_the_request():
    environ = _granian_environ(HTTP_X_REQUEST_ID="abc")
    request_only(environ, PROCESS)
    assert "DATABASE_URL" not in environ and "ATTEST_SECRET_KEY" not in environ
    assert "PATH" not in environ
    # named like a header, but the client sent no Proxy header (httpoxy)
    assert "HTTP_PROXY" not in environ
    # a CGI name the request did not set (a GET has no body type)
    assert "CONTENT_TYPE" not in environ
    assert environ["HTTP_X_REQUEST_ID"] == "abc" and environ["HTTP_HOST"] == "attest.example"
    assert environ["REQUEST_METHOD"] == "GET" and environ["wsgi.url_scheme"] == "http"
    assert environ["GATEWAY_INTERFACE"] == "CGI/1.1" and environ["SERVER_SOFTWARE"] == "Granian"


def test_the_requests_own_values_win_over_process_variables_of_that_name():
    environ = _granian_environ(CONTENT_TYPE="application/json", HTTP_PROXY="client-sent")
    request_only(environ, PROCESS)
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["HTTP_PROXY"] == "client-sent"


def _inner(seen: list):
    def app(environ, start_response):
        seen.append(dict(environ))
        start_response("204 No Content", [])
        return []
    return app


def test_middleware_filters_granian_requests_only():
    seen: list[dict] = []
    app = RequestOnlyEnviron(_inner(seen), PROCESS)
    app(_granian_environ(), lambda *a: None)
    assert "DATABASE_URL" not in seen[-1]
    gunicorn = {**_granian_environ(), "SERVER_SOFTWARE": "gunicorn/27.0.1"}
    app(gunicorn, lambda *a: None)
    assert seen[-1] == gunicorn  # another server's environ is the request's alone


def test_the_deployed_application_is_wrapped():
    from portal import wsgi

    assert isinstance(wsgi.application, RequestOnlyEnviron)
