"""Application exceptions raised by services and turned into structured errors.

Every error a user can cause is one of these; the API's exception handler and
the portal's views render them as ``{"errors": [{"field", "code", "message"}]}``
or as form messages. Anything else reaching the top is a bug (500).
"""

from __future__ import annotations

from dataclasses import dataclass

# The most problems one error answer lists. Past it, the list ends with one item of code
# ``too_many_errors`` saying how many more there were, and the body carries that count as
# ``errors_not_listed``: a CSV header of a million unknown columns is answered in a few
# kilobytes, not 177 MB, and a page shows a readable list.
MAX_ERROR_ITEMS = 100


@dataclass(frozen=True)
class ErrorItem:
    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict:
        return {"field": self.field, "code": self.code, "message": self.message}


def capped_items(items: list, extra: dict) -> list:
    """At most MAX_ERROR_ITEMS of ``items`` plus one ``too_many_errors`` item (ErrorItems
    or their dicts alike); the count of the rest goes into ``extra``."""
    if len(items) <= MAX_ERROR_ITEMS:
        return items
    rest = len(items) - MAX_ERROR_ITEMS
    extra["errors_not_listed"] = rest
    summary = ErrorItem("too_many_errors", f"… and {rest:,} more problems not listed (an "
                        f"answer lists the first {MAX_ERROR_ITEMS}); fix these and try again.")
    return [*items[:MAX_ERROR_ITEMS],
            summary.as_dict() if isinstance(items[0], dict) else summary]


class ApplicationError(Exception):
    """Base class. ``items`` lists every problem found, so users fix them all at once."""

    status: int = 400
    default_code = "invalid"  # the code of an item raised without one

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 field: str | None = None, items: list[ErrorItem] | None = None,
                 extra: dict | None = None) -> None:
        code = code or self.default_code
        self.items = list(items or [])
        if message is not None:
            self.items.insert(0, ErrorItem(code=code, message=message, field=field))
        if not self.items:
            self.items = [ErrorItem(code=code, message=self.default_message)]
        self.extra = dict(extra or {})
        self.items = capped_items(self.items, self.extra)
        super().__init__("; ".join(i.message for i in self.items))

    default_message = "The request is not valid."

    @property
    def message(self) -> str:
        return "; ".join(i.message for i in self.items)

    def as_body(self) -> dict:
        body = {"errors": [i.as_dict() for i in self.items]}
        body.update(self.extra)
        return body


class ValidationFailed(ApplicationError):
    status = 400


class NotFound(ApplicationError):
    """404. Its code is ``not_found`` unless a more precise one is given, as for Http404
    and DRF's NotFound (core.api.exception_handler): clients test one code."""

    status = 404
    default_code = "not_found"
    default_message = "Not found."


class PermissionDenied(ApplicationError):
    status = 403
    default_code = "permission_denied"
    default_message = "You do not have permission to do this."


class Conflict(ApplicationError):
    """The request is valid but clashes with the object's current state (409)."""

    status = 409


class PayloadTooLarge(ApplicationError):
    status = 413


class TooManyAttempts(ApplicationError):
    """Refused while locked after repeated failures (429, with Retry-After)."""

    status = 429

    def __init__(self, message: str, *, retry_after: int, code: str = "locked",
                 field: str | None = None) -> None:
        super().__init__(message, code=code, field=field, extra={"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


class ServiceUnavailable(ApplicationError):
    status = 503


class IntegrityFailure(ApplicationError):
    """Stored bytes do not match the recorded hash: refuse to serve them."""

    status = 409
