"""Who is acting and in which request, for code far from the request object.

Services record audit events with the actor and request id from here, so the
same service called from a view, a Celery task or a management command records
the right actor. Views set it through the middleware; tasks and commands with
``acting_as(...)``.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class ActorContext:
    user_id: int | None = None
    username: str = ""
    display_name: str = ""
    request_id: str = ""
    remote_addr: str | None = None
    via: str = "system"  # web, api, task, command, system


_current: contextvars.ContextVar[ActorContext] = contextvars.ContextVar(
    "attest_actor", default=ActorContext()  # noqa: B039 - frozen dataclass, immutable
)


def current_actor() -> ActorContext:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def context_for_user(user, *, via: str, request_id: str | None = None,
                     remote_addr: str | None = None) -> ActorContext:
    if user is not None and getattr(user, "is_authenticated", False):
        name = (user.get_full_name() or user.get_username()).strip()
        return ActorContext(user.pk, user.get_username(), name, request_id or new_request_id(),
                            remote_addr, via)
    return ActorContext(None, "", "", request_id or new_request_id(), remote_addr, via)


@contextmanager
def acting_as(user=None, *, via: str = "command", request_id: str | None = None,
              remote_addr: str | None = None) -> Iterator[ActorContext]:
    ctx = context_for_user(user, via=via, request_id=request_id, remote_addr=remote_addr)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_actor(ctx: ActorContext) -> contextvars.Token:
    return _current.set(ctx)


def reset_actor(token: contextvars.Token) -> None:
    _current.reset(token)


def actor_with_user(user) -> ActorContext:
    """The current context (request id, address, channel) attributed to ``user``.

    For events recorded while the user is being authenticated, before the
    request's actor is known (token exchange, first use of a token).
    """
    ctx = current_actor()
    return context_for_user(user, via=ctx.via, request_id=ctx.request_id or None,
                            remote_addr=ctx.remote_addr)
