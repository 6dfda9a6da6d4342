"""Pausing Python's cyclic garbage collector around allocation-heavy loops."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Switch the cyclic collector off for the block (restored after, even on error).

    For loops that build hundreds of thousands of short-lived dicts and lists but no
    reference cycles (verifying the audit chain, a batch chunk): each collector pass
    walks every live container, and on a 20,000-row chunk those passes cost as much
    as the work. Reference counting still frees everything as usual; cycles made
    meanwhile (rare: an exception's traceback) wait for the next collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
