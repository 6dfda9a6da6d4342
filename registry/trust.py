"""The skops allowlist: which types an uploaded model file may contain.

skops itself trusts plain containers, numpy and scipy arrays and scikit-learn's
estimator classes. Anything else in a file (a tree's internal ``Tree`` object,
a calibrator, an optimizer, and equally ``pydoc.pipepager`` or a helper that
``exec``s a string) is an *untrusted type*. Attest accepts an untrusted type
only when its exact name is on this list, which administrators curate (the
"Trusted model types" page and ``/api/v1/trusted-types/``); the uploader never
widens it, whatever their metadata says. Functions, methods and
reduce-constructors are named the same way and so are refused unless listed.

Even an administrator cannot list a name from a module that has no business in
a model file (``FORBIDDEN_MODULE_ROOTS``).
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from audits.models import Action
from audits.services import audit_event_record
from core.errors import ErrorItem, NotFound, PermissionDenied, ValidationFailed

from .models import TrustedType
from .roles import is_global_admin

# Modules whose objects have no business in a model file: never trusted, even by an
# administrator (a second wall should the list be edited carelessly).
FORBIDDEN_MODULE_ROOTS = frozenset({
    "builtins", "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "pickle",
    "marshal", "importlib", "runpy", "code", "codeop", "ctypes", "types", "io", "pathlib",
    "tempfile", "webbrowser", "http", "urllib", "requests", "shelve", "dill", "cloudpickle",
    "joblib", "operator", "functools", "inspect", "pty", "signal", "multiprocessing",
    "pydoc", "timeit", "pdb", "bdb", "cProfile", "profile", "trace", "doctest", "unittest",
    "threading", "asyncio", "concurrent", "select", "selectors", "mmap", "glob", "fnmatch",
    "zipimport", "pkgutil", "site", "sysconfig", "distutils", "setuptools", "pip", "venv",
    "ensurepip", "compileall", "py_compile", "gc", "weakref", "copyreg", "copy", "atexit",
    "faulthandler", "tracemalloc", "resource", "pwd", "grp", "fcntl", "termios", "tty",
    "smtplib", "ftplib", "telnetlib", "poplib", "imaplib", "ssl", "xmlrpc", "socketserver",
    "logging", "django", "celery", "kombu", "psycopg", "boto3", "botocore", "attest",
    "audits", "core", "registry", "inference", "explain", "monitoring", "dossier", "portal",
})
# Inside otherwise acceptable packages, sub-modules that execute strings or run programs.
# Names here match exactly or as a dotted prefix.
FORBIDDEN_MODULE_PREFIXES = ("numpy.testing", "numpy.distutils", "numpy.f2py", "scipy._lib",
                             "sklearn.utils._testing", "sklearn.externals", "IPython",
                             # loaders that unpickle a file, and string evaluators
                             "numpy.load", "numpy.lib.npyio", "numpy.lib.format",
                             "pandas.read_pickle", "pandas.io.pickle", "pandas.eval",
                             "pandas.core.computation", "pandas.io.pytables",
                             "scipy.io.matlab._mio5", "numexpr")

# What a fresh installation trusts: the scikit-learn internals the common classifiers
# hold (found by dumping each with skops and asking for its untrusted types), and
# the classifiers of the two gradient-boosting libraries when they are installed.
DEFAULT_TRUSTED_TYPES: dict[str, str] = {
    "sklearn.tree._tree.Tree":
        "the fitted tree of decision trees, random forests, extra trees, gradient boosting, "
        "AdaBoost and bagging",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor":
        "the fitted trees of HistGradientBoostingClassifier",
    "sklearn.calibration._CalibratedClassifier":
        "one fold's calibrated classifier in CalibratedClassifierCV",
    "sklearn.calibration._SigmoidCalibration":
        "Platt scaling in CalibratedClassifierCV (method='sigmoid')",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer":
        "the optimizer state MLPClassifier keeps (solver='adam')",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer":
        "the optimizer state MLPClassifier keeps (solver='sgd')",
    "sklearn.neighbors._kd_tree.KDTree": "the search tree of KNeighborsClassifier (algorithm='kd_tree')",
    "sklearn.neighbors._ball_tree.BallTree":
        "the search tree of KNeighborsClassifier (algorithm='ball_tree')",
    "sklearn.metrics._dist_metrics.EuclideanDistance64":
        "the euclidean (and minkowski p=2) metric of nearest-neighbour search trees",
    "sklearn.metrics._dist_metrics.ManhattanDistance64":
        "the manhattan metric of nearest-neighbour search trees",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64":
        "the chebyshev metric of nearest-neighbour search trees",
    "xgboost.sklearn.XGBClassifier": "XGBoost's scikit-learn classifier",
    "xgboost.core.Booster": "XGBoost's fitted booster",
    "lightgbm.sklearn.LGBMClassifier": "LightGBM's scikit-learn classifier",
    "lightgbm.basic.Booster": "LightGBM's fitted booster",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
HOW_TO_ASK = ("An administrator decides which types model files may contain: ask one to add "
              "the exact names to the trusted model types (the \"Trusted model types\" page), "
              "or save the model with only scikit-learn's own estimators.")


def forbidden_reason(name: str) -> str | None:
    """Why ``name`` may never be trusted, or None."""
    if not _NAME.match(name):
        return "is not a dotted module.name"
    root = name.split(".", 1)[0]
    if root in FORBIDDEN_MODULE_ROOTS:
        return f"comes from {root}, which no model needs and which can run code"
    if any(name == p or name.startswith(p + ".") for p in FORBIDDEN_MODULE_PREFIXES):
        return "comes from a module that runs code or test helpers"
    return None


def trusted_type_names() -> frozenset[str]:
    """The exact type names on the allowlist now (one small query)."""
    return frozenset(TrustedType.objects.values_list("name", flat=True))


def trusted_type_list():
    """Every entry, with who added it (the list is public to signed-in users)."""
    return TrustedType.objects.select_related("added_by").order_by("name")


def untrusted_refusal(names: list[str], allowed: frozenset[str]) -> list[str]:
    """Those of ``names`` (a file's untrusted types) the allowlist ``allowed`` does not
    accept (``allowed`` is read by the caller: a sandboxed child has no database)."""
    return [n for n in names if n not in allowed or forbidden_reason(n)]


def _require_admin(user, what: str) -> None:
    if not is_global_admin(user):
        audit_event_record(action=Action.PERMISSION_DENIED, object_type="registry.trustedtype",
                           details={"capability": "admin", "attempt": what})
        raise PermissionDenied("Only administrators curate the trusted model types.",
                               code="admin_only")


def trusted_type_add(*, user, name: str, reason: str = "") -> TrustedType:
    """Add one exact type name (administrators only; audited)."""
    _require_admin(user, f"add {name!r} to the trusted model types")
    name = (name or "").strip() if isinstance(name, str) else ""
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    problems = []
    why = forbidden_reason(name)
    if why:
        problems.append(ErrorItem("forbidden_type", f"{name or 'The name'} {why}.", "name"))
    if len(name) > 300:
        problems.append(ErrorItem("invalid", "A type name has at most 300 characters.", "name"))
    if len(reason) > 500:
        problems.append(ErrorItem("invalid", "The reason has at most 500 characters.", "reason"))
    if problems:
        raise ValidationFailed(items=problems)
    try:
        with transaction.atomic():
            entry = TrustedType.objects.create(name=name, reason=reason, added_by=user)
            audit_event_record(action=Action.TRUSTED_TYPE_ADDED, obj=entry,
                               after={"name": name, "reason": reason})
    except IntegrityError:
        raise ValidationFailed(f"{name} is already trusted.", code="duplicate",
                               field="name") from None
    return entry


def trusted_type_remove(*, user, name: str) -> None:
    """Remove one name (administrators only; audited). Versions already stored with
    the type no longer load until it is trusted again."""
    _require_admin(user, f"remove {name!r} from the trusted model types")
    with transaction.atomic():
        entry = TrustedType.objects.select_for_update().filter(name=name).first()
        if entry is None:
            raise NotFound(f"{name} is not on the trusted model types.")
        audit_event_record(action=Action.TRUSTED_TYPE_REMOVED, obj=entry,
                           before={"name": entry.name, "reason": entry.reason})
        entry.delete()
