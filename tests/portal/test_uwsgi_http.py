"""portal.uwsgi_http.UwsgiHttpGuard, on a real socket pair standing in for the client
connection uWSGI hands the app (tests/integration/test_load.py runs it under uWSGI)."""

from __future__ import annotations

import io
import json
import socket

import pytest

from portal.uwsgi_http import CONTINUE, DRAIN_LIMIT, UwsgiHttpGuard


class FakeUwsgi:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def connection_fd(self) -> int:
        return self.sock.fileno()


@pytest.fixture
def connection():
    server, client = socket.socketpair()
    server.settimeout(2)
    client.settimeout(2)
    yield server, client
    server.close()
    client.close()


def _run(app, environ):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def _inner(calls):
    def app(environ, start_response):
        calls.append(environ)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    return app


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_chunked_body_is_refused_and_never_read_as_a_request(connection):
    server, client = connection
    calls = []
    guard = UwsgiHttpGuard(_inner(calls), FakeUwsgi(server))
    # the body (here a smuggled request) arrives after the headers were parsed
    client.sendall(b"3f;x /api/v1/models/ HTTP/1.1\r\nHost: attest\r\n\r\n0\r\n\r\n")
    status, headers, body = _run(guard, {"HTTP_TRANSFER_ENCODING": "chunked",
                                         "REQUEST_METHOD": "POST"})
    assert calls == []  # the app never ran
    assert status == "411 Length Required" and headers["Connection"] == "close"
    assert json.loads(body)["errors"][0]["code"] == "length_required"
    assert int(headers["Content-Length"]) == len(body)
    # the client has the whole answer, then end-of-file ...
    raw = _read_all(client)
    assert raw.startswith(b"HTTP/1.1 411 Length Required\r\n") and raw.endswith(b"\r\n\r\n" + body)
    assert b"\r\nContent-Length: %d\r\n" % len(body) in raw
    # ... uWSGI's own write of the answer fails (so it closes the connection), and its
    # next read is end-of-file, never the smuggled bytes
    with pytest.raises(BrokenPipeError):
        server.sendall(b"HTTP/1.1 411 Length Required\r\n")
    assert server.recv(4096) == b""


@pytest.mark.parametrize("value", ["chunked", "gzip, chunked", "identity", ""])
def test_any_transfer_encoding_is_refused(connection, value):
    server, _client = connection
    calls = []
    status, _headers, _body = _run(UwsgiHttpGuard(_inner(calls), FakeUwsgi(server)),
                                   {"HTTP_TRANSFER_ENCODING": value, "CONTENT_LENGTH": "5"})
    assert status.startswith("411") and calls == []


def test_expect_100_continue_is_answered_before_the_app_reads(connection):
    server, client = connection
    calls = []
    environ = {"HTTP_EXPECT": "100-Continue", "SERVER_PROTOCOL": "HTTP/1.1",
               "CONTENT_LENGTH": "3000000"}
    status, _headers, body = _run(UwsgiHttpGuard(_inner(calls), FakeUwsgi(server)), environ)
    assert client.recv(64) == CONTINUE
    assert (status, body, len(calls)) == ("200 OK", b"ok", 1)


@pytest.mark.parametrize("environ", [
    {"HTTP_EXPECT": "100-continue", "SERVER_PROTOCOL": "HTTP/1.0", "CONTENT_LENGTH": "10"},
    {"HTTP_EXPECT": "100-continue", "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "0"},
    {"HTTP_EXPECT": "100-continue", "SERVER_PROTOCOL": "HTTP/1.1"},
    {"SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "10"},
])
def test_no_interim_answer_otherwise(connection, environ):
    server, client = connection
    calls = []
    status, _headers, _body = _run(UwsgiHttpGuard(_inner(calls), FakeUwsgi(server)), environ)
    assert status == "200 OK" and calls == [environ]
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(64)


def test_a_client_already_gone_does_not_fail_the_request():
    server, client = socket.socketpair()
    client.close()
    server.close()  # connection_fd() now names no socket
    calls = []
    guard = UwsgiHttpGuard(_inner(calls), FakeUwsgi(server))
    status, _headers, _body = _run(guard, {"HTTP_EXPECT": "100-continue",
                                           "SERVER_PROTOCOL": "HTTP/1.1",
                                           "CONTENT_LENGTH": "10"})
    assert status == "200 OK"
    status, _headers, _body = _run(guard, {"HTTP_TRANSFER_ENCODING": "chunked"})
    assert status.startswith("411")


class CountingInput(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        return super().read(size)


def _refusing(environ, start_response):
    start_response("401 Unauthorized", [("Content-Length", "0")])
    return [b""]


@pytest.mark.parametrize(("size", "drained"), [(10, True), (DRAIN_LIMIT, True),
                                               (DRAIN_LIMIT + 1, False)])
def test_an_unread_body_is_read_after_the_answer_so_the_connection_lives_on(
        connection, size, drained):
    server, _client = connection
    body = CountingInput(b"x" * size)
    environ = {"CONTENT_LENGTH": str(size), "wsgi.input": body}
    status, _headers, _body = _run(UwsgiHttpGuard(_refusing, FakeUwsgi(server)), environ)
    assert status.startswith("401")
    assert (body.tell() == size) is drained


def test_a_body_the_app_read_costs_one_more_read(connection):
    server, _client = connection
    body = CountingInput(b'{"inputs": {}}')

    def reading(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b""]

    _run(UwsgiHttpGuard(reading, FakeUwsgi(server)),
         {"CONTENT_LENGTH": "14", "wsgi.input": body})
    assert body.reads == 2


@pytest.mark.parametrize("environ", [{"CONTENT_LENGTH": "abc"}, {"CONTENT_LENGTH": "5"},
                                     {"CONTENT_LENGTH": "-3"}])
def test_draining_never_fails_the_answer(connection, environ):
    server, _client = connection
    status, _headers, _body = _run(UwsgiHttpGuard(_refusing, FakeUwsgi(server)), environ)
    assert status.startswith("401")
