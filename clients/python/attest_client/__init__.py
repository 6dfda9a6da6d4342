"""Attest's client: the ``attest`` command and a notebook API for model owners.

    import attest_client
    attest_client.login("https://attest.example.org")
    attest_client.register(model=clf, X_train=X_train, name="sepsis-risk",
                           dataset={"name": "sepsis-cohort", "version": "2024.1",
                                    "source": "EHR extract, site A"})

``Client`` is the REST API as Python calls; every failure is an ``AttestError`` whose
``exit_code`` is the one the command line documents.
"""

from ._version import __version__
from .errors import (
    AttestError,
    AuthError,
    CheckFailed,
    DeniedError,
    NotFoundError,
    PickleRefused,
    RefusedError,
    SchemaMismatch,
    ServerUnavailable,
    UnconvertibleModel,
    Unsupported,
    UsageError,
)

# The heavier parts (requests, numpy, pandas) load on first use, so `attest --help` and
# `import attest_client` stay quick.
_LAZY = {"Client": "http", "compute_metrics": "metrics", "login": "notebook",
         "profile_frame": "notebook", "register": "notebook", "Registration": "registration"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attest_client' has no attribute {name!r}")


__all__ = [
    "AttestError", "AuthError", "CheckFailed", "Client", "DeniedError", "NotFoundError",
    "PickleRefused", "RefusedError", "Registration", "SchemaMismatch", "ServerUnavailable",
    "UnconvertibleModel", "Unsupported", "UsageError", "__version__", "compute_metrics", "login",
    "profile_frame", "register",
]
