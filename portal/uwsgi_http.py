"""What uWSGI's HTTP/1.1 socket leaves to the application (ATTEST_WEB_SERVER=uwsgi).

``deploy/web.py`` serves the app with ``--http11-socket``: uWSGI parses HTTP in C and
each worker thread keeps its client's connection alive between requests, which is
what makes it the cheapest of the three servers per request (docs/performance.md).
That socket is a thin HTTP implementation, and three gaps matter here:

- **Request bodies in chunked transfer encoding are not decoded.** uWSGI reads a
  body by ``Content-Length`` only; a ``Transfer-Encoding: chunked`` body that arrives
  after the headers stays on the connection and is parsed as the *next request*. Behind
  a proxy that forwards chunked bodies over connections it shares between clients,
  that is request smuggling: one client's body becomes a request whose answer another
  client receives. uWSGI ignores a ``Connection: close`` answer header and closes a
  connection only after an error, so :class:`UwsgiHttpGuard` answers any request
  carrying ``Transfer-Encoding`` with 411 (send ``Content-Length``) written to the
  socket itself, then shuts the socket both ways: uWSGI's own write of the answer
  fails, and uWSGI closes a connection whose write failed instead of reading another
  request from it.
- **A body the app did not read ends the connection.** uWSGI closes a kept-alive
  connection whose request body was not read to the end (the answer to a refused
  request: 401, 404, 413), and closes it with unread bytes pending, which resets it: a
  client reusing it for its next request sees a broken pipe. The guard reads what is
  left of a body up to :data:`DRAIN_LIMIT` after the app answers, as gunicorn and
  granian do; a larger unread body still ends the connection.
- **``Expect: 100-continue`` is not answered.** Clients that send it (curl, for bodies
  over 1 MB) wait for the interim answer before sending the body, and give up waiting
  after a second. The guard writes ``HTTP/1.1 100 Continue`` before the app runs.

Wrapped around the app only inside a uWSGI worker (``portal/wsgi.py``: the ``uwsgi``
module exists there alone); gunicorn, granian and Django's test client never see it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket

from core.api import error_body

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
UWSGI_WRITE_TIMEOUT = 5  # seconds, as deploy/web.py's --socket-timeout
DRAIN_LIMIT = 256 * 1024  # bytes of an unread request body read and dropped
LENGTH_REQUIRED = json.dumps(error_body(
    "length_required",
    "Send the request body with a Content-Length header; chunked transfer encoding is "
    "not accepted.")).encode()


class UwsgiHttpGuard:
    """WSGI middleware closing the gaps described in this module's docstring.

    ``api`` is the ``uwsgi`` module (a fake in tests): ``api.connection_fd()`` is the
    request's client socket.
    """

    def __init__(self, app, api) -> None:
        self.app = app
        self.api = api

    def __call__(self, environ, start_response):
        if "HTTP_TRANSFER_ENCODING" in environ:
            headers = [("Content-Type", "application/json"),
                       ("Content-Length", str(len(LENGTH_REQUIRED))), ("Connection", "close")]
            self._answer_and_close("411 Length Required", headers, LENGTH_REQUIRED)
            # for the access line; uWSGI's write of it fails and it closes the connection
            start_response("411 Length Required", headers)
            return [LENGTH_REQUIRED]
        if (environ.get("HTTP_EXPECT", "").strip().lower() == "100-continue"
                and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
                and environ.get("CONTENT_LENGTH", "0") not in ("", "0")):
            # a client gone away shows when the app reads the body
            with contextlib.suppress(OSError):
                os.write(self.api.connection_fd(), CONTINUE)
        result = self.app(environ, start_response)
        _drain(environ)
        return result

    def _answer_and_close(self, status: str, headers: list[tuple[str, str]],
                          body: bytes) -> None:
        """Write the whole answer on the request's socket, then end the connection: no
        byte the client sent after the headers is ever parsed as a request."""
        try:
            sock = socket.socket(fileno=os.dup(self.api.connection_fd()))
        except OSError:
            return  # the client is gone
        try:
            sock.settimeout(UWSGI_WRITE_TIMEOUT)
            head = "".join(f"{name}: {value}\r\n" for name, value in headers)
            sock.sendall(f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body)
            sock.shutdown(socket.SHUT_WR)  # the answer, then end-of-file
            # Read what the client already sent, so closing does not reset the
            # connection before the client has read the answer.
            sock.setblocking(False)
            for _ in range(16):
                if not sock.recv(65536):
                    break
        except OSError:
            pass  # nothing left to read, or the client hung up
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()  # the duplicate; uWSGI closes its own descriptor


def _drain(environ) -> None:
    """Read and drop what the app left of a request body of at most DRAIN_LIMIT bytes,
    so the connection can carry the client's next request."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if not 0 < length <= DRAIN_LIMIT:
        return
    try:
        body = environ["wsgi.input"]
        while body.read(65536):
            pass
    except (OSError, ValueError, KeyError):
        pass  # uWSGI closes the connection; the answer is already decided
