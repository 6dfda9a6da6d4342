"""What can go wrong, as exceptions that carry the command line's exit status.

Every error a user can cause ends an ``attest`` command with exactly one line on
stderr, ``attest: error: <reason>``, and one of these documented exit statuses (the
README lists them too). The notebook API raises the same exceptions, so a script
can catch ``AttestError`` and read ``exit_code`` or ``code``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # the command ran and the answer is "no": a broken audit chain, an
#                        export that does not extend its checkpoint, a failed batch job
EXIT_USAGE = 2  # bad arguments or local input: file not found or unreadable, a pickle
#                 file, an estimator that cannot be serialised, a local schema mismatch;
#                 also a confirmation you declined (or could not be asked: no terminal)
EXIT_AUTH = 3  # not logged in, token refused or expired, wrong username or password
EXIT_DENIED = 4  # the server says 403 (not permitted) or 404 (no such thing, or not yours)
EXIT_REFUSED = 5  # the server refused the request as invalid (400, 409, 413, 429)
EXIT_UNREACHABLE = 6  # the server is down, too slow, failing (5xx) or not an Attest server
EXIT_UNSUPPORTED = 7  # this server does not offer the feature (e.g. dossiers)
EXIT_PARTIAL = 8  # a batch job completed but some of its rows failed: the others are scored
#                   (the result file), the failed ones and why are in the error file. Not 0,
#                   so a script notices; not 1, which is a job that failed as a whole
EXIT_INTERNAL = 70  # a bug in the client (BSD sysexits' EX_SOFTWARE)
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "the check ran and failed (audit chain broken, batch job failed, ...)",
    EXIT_USAGE: "bad arguments or input file (not found, pickle, unconvertible, schema), "
                "or a confirmation declined",
    EXIT_AUTH: "not logged in, or the token or password was refused",
    EXIT_DENIED: "not permitted, or not found (the server hides what you may not see)",
    EXIT_REFUSED: "the server refused the request (its reason is printed)",
    EXIT_UNREACHABLE: "the server could not be reached or failed",
    EXIT_UNSUPPORTED: "the server does not offer this feature",
    EXIT_PARTIAL: "a batch job completed but some rows failed (see its error file)",
    EXIT_INTERNAL: "a bug in the client (set ATTEST_DEBUG=1 for the traceback)",
    EXIT_INTERRUPTED: "interrupted",
}


class AttestError(Exception):
    """Base class: ``message`` is one line; ``code`` is the server's (or our) error code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 errors: list[dict] | None = None, body: dict | None = None) -> None:
        self.message = " ".join(str(message).split())
        super().__init__(self.message)
        self.code = code
        self.status = status
        self.errors = list(errors or [])
        self.body = dict(body or {})


class UsageError(AttestError):
    exit_code = EXIT_USAGE


class UnconvertibleModel(UsageError):
    """The estimator cannot be saved safely (skops) or converted (ONNX)."""


class PickleRefused(UsageError):
    """A pickle or joblib file: loading it would run arbitrary code."""


class SchemaMismatch(UsageError):
    """The model's features do not fit the dataset (found before anything is sent)."""


class AuthError(AttestError):
    exit_code = EXIT_AUTH


class DeniedError(AttestError):
    exit_code = EXIT_DENIED


class NotFoundError(DeniedError):
    pass


class RefusedError(AttestError):
    exit_code = EXIT_REFUSED


class ServerUnavailable(AttestError):
    exit_code = EXIT_UNREACHABLE


class Unsupported(AttestError):
    exit_code = EXIT_UNSUPPORTED


class CheckFailed(AttestError):
    exit_code = EXIT_CHECK_FAILED
