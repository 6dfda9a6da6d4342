"""The default web server, uWSGI on its HTTP/1.1 socket, at the HTTP level: what its
thin HTTP implementation leaves to the app (portal/uwsgi_http.py) and what deploy/web.py
asks of it, checked on a real server against this test's PostgreSQL database.
(The 8-client load test runs it too: tests/integration/test_load.py.)"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time

import pytest

from portal.tokens import api_token_create

from ..inference.helpers import released_version, typical_input
from ..personas import make_personas
from .test_load import _server_env, _start_server, _stop

pytestmark = pytest.mark.integration


@pytest.fixture
def uwsgi_server(transactional_db, tmp_path):
    personas = make_personas()
    log_path = tmp_path / "uwsgi.log"
    server, port = _start_server("uwsgi", _server_env(tmp_path), log_path)
    yield personas, server, port, log_path
    _stop(server)


def _receive_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_a_chunked_body_cannot_smuggle_a_request(uwsgi_server):
    personas, _server, port, log_path = uwsgi_server
    _row, token = api_token_create(user=personas.owner, name="smuggler")
    smuggled = (f"GET /api/v1/models/?smuggled=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(b"POST /api/v1/models/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.3)  # the body arrives after uWSGI parsed the headers
        # a chunk-size line that parses as a request line, then a whole second request
        sock.sendall(b"3f;x /api/v1/models/?smuggled=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     + smuggled + b"0\r\n\r\n")
        raw = _receive_until_closed(sock)
    finally:
        sock.close()
    assert raw.count(b"HTTP/1.1 ") == 1, raw  # one answer, then the connection closed
    assert raw.startswith(b"HTTP/1.1 411 Length Required\r\n"), raw
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["errors"][0]["code"] == "length_required"
    time.sleep(0.5)
    log = log_path.read_text(errors="replace")
    assert '"POST /api/v1/models/ HTTP/1.1" 411' in log
    assert "smuggled" not in log, log[-2000:]


def test_expect_100_continue_gets_its_interim_answer(uwsgi_server):
    personas, _server, port, _log = uwsgi_server
    version = released_version(personas)
    _row, token = api_token_create(user=personas.clinician, name="curl")
    body = json.dumps({"inputs": typical_input(version)}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall((f"POST /api/v1/models/{personas.model.name}/predict/ HTTP/1.1\r\n"
                      f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                      f"Expect: 100-continue\r\n\r\n").encode())
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"  # within the 5 s timeout
        sock.sendall(body)
        answer = sock.recv(65536)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:300]
    prediction = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert prediction["id"] and prediction["routing"] in ("auto", "review")


def test_keep_alive_and_a_streamed_answer_without_length(uwsgi_server):
    personas, _server, port, _log = uwsgi_server
    _row, token = api_token_create(user=personas.auditor, name="export")
    headers = {"Authorization": f"Bearer {token}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/v1/models/", headers=headers)
        first = conn.getresponse()
        first.read()
        local = conn.sock.getsockname()
        assert first.status == 200 and not first.will_close
        # a 20 KiB header fits (uWSGI's own default allows 4 KiB)
        conn.request("GET", "/api/v1/models/", headers={**headers, "X-Padding": "p" * 20_000})
        second = conn.getresponse()
        second.read()
        assert second.status == 200 and conn.sock.getsockname() == local  # same connection
        # the audit export streams without Content-Length: the end of the answer is the
        # end of the connection
        conn.request("GET", "/api/v1/audit/export/?format=csv", headers=headers)
        export = conn.getresponse()
        assert export.status == 200 and export.getheader("Content-Length") is None
        rows = export.read().decode().splitlines()
        assert export.will_close and len(rows) > 1
    finally:
        conn.close()


def test_sigterm_stops_the_server(uwsgi_server):
    """deploy/web.py's --die-on-term: SIGTERM (docker stop) ends uWSGI, where its own
    default would reload the workers and keep serving."""
    _personas, server, _port, log_path = uwsgi_server
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=40) == 0, log_path.read_text(errors="replace")[-2000:]
    assert "goodbye to uWSGI" in log_path.read_text(errors="replace")
