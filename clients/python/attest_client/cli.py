"""The ``attest`` command line, run by model owners, signers and auditors on their own machine.

Profiling happens locally so patient rows never leave the researcher's computer; only
the hash and profile printed or sent here are shared.

Every error a user can cause is reported as exactly one line, ``attest: error:
<reason>``, on stderr with a documented exit status (``attest_client.errors``; listed by
``attest --help``), never as a traceback: the audience is researchers, and a traceback
could also echo file contents into a terminal log. ``--json`` prints machine-readable
results on stdout for scripts; messages for people always go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .errors import (
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AttestError,
)

PROG = "attest"


class CommandError(AttestError):
    """A usage problem found while parsing (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error and exits; we want the single-line contract."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def _epilog() -> str:
    lines = ["exit status:"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items()]
    lines += ["", "login: `attest login URL` stores a token in ~/.config/attest/config.json "
              "(mode 0600);", "or set ATTEST_URL and ATTEST_TOKEN. ATTEST_DEBUG=1 shows "
              "tracebacks of internal errors."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON (stdout)")
    common.add_argument("--url", help="the server (default: the one you logged in to)")

    parser = _Parser(prog=PROG, description="Attest model registry client: profile datasets "
                     "locally, register and submit model versions, predict, verify the audit "
                     "trail.", epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, handler, help_text: str, parent=sub, **kwargs):
        p = parent.add_parser(name, help=help_text, description=help_text, parents=[common],
                              **kwargs)
        p.set_defaults(handler=handler)
        return p

    def group(name: str, help_text: str):
        p = sub.add_parser(name, help=help_text, description=help_text)
        g = p.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser)
        g.required = True
        return g

    # -- login --------------------------------------------------------------------------
    p = command("login", "login", "get an API token for a server and keep it "
                "(~/.config/attest/config.json, mode 0600)")
    p.add_argument("server", metavar="URL")
    p.add_argument("--username", "-u")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from stdin (for scripts) instead of prompting")
    p.add_argument("--token", help="keep this existing token instead (checked with the server)")
    p.add_argument("--token-name", help="a name for the token (default: the host name)")
    p.add_argument("--days", type=_positive_int, help="token lifetime in days (server limit)")
    command("logout", "logout", "revoke the stored token and forget it")
    command("whoami", "whoami", "who you are on the server, and your roles per model")

    # -- datasets -------------------------------------------------------------------------
    def profile_options(p):
        p.add_argument("file", metavar="FILE", help="the dataset file (.csv, .parquet or .pq)")
        p.add_argument("--format", dest="file_format", choices=("csv", "parquet"),
                       help="file format; by default taken from the file extension")
        p.add_argument("--min-category-count", type=_positive_int, default=None, metavar="K",
                       help="list a category value only if at least K rows have it (default "
                       "5); rarer values are counted in other_rate, never written")

    p = command("profile", "dataset_profile",
                "summarize a CSV or parquet dataset locally (no rows leave this machine); "
                "the same as `attest dataset profile`")
    profile_options(p)
    p.add_argument("--output", "-o", metavar="OUT.json", help="write the JSON here instead")
    datasets = group("dataset", "profile and register dataset versions")
    p = command("profile", "dataset_profile", "compute the dataset's sha256 and profile "
                "locally and print it as JSON (no rows leave this machine)", parent=datasets)
    profile_options(p)
    p.add_argument("--output", "-o", metavar="OUT.json", help="write the JSON here instead")
    p = command("register", "dataset_register", "register a dataset version: its hash "
                "and profile computed here (the file itself only with --upload)",
                parent=datasets)
    profile_options(p)
    p.add_argument("--name", required=True)
    p.add_argument("--version", dest="dataset_version", required=True, metavar="VERSION")
    p.add_argument("--provenance", metavar="FILE", help="YAML or JSON file with source, "
                   "inclusion_criteria, exclusion_criteria, date_start, date_end, "
                   "protocol_number, deidentification, description (flags win)")
    for flag in ("source", "description", "inclusion-criteria", "exclusion-criteria",
                 "date-start", "date-end", "protocol-number", "deidentification"):
        p.add_argument(f"--{flag}")
    p.add_argument("--upload", action="store_true", help="send and keep the file itself "
                   "(default: only its hash and profile are sent)")
    command("list", "dataset_list", "dataset versions you may see", parent=datasets)

    # -- models and versions ----------------------------------------------------------------
    models = group("model", "create models and register their versions")
    command("list", "model_list", "models you may see", parent=models)
    p = command("create", "model_create", "create a model (you become its owner)",
                parent=models)
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.add_argument("--signoffs", help="required sign-off meanings, comma-separated (default: "
                   "pi_approval,irb_approval)")
    p.add_argument("--retention-days", type=_positive_int)

    def register_options(p, *, artifact: bool):
        if artifact:
            p.add_argument("artifact", metavar="FILE", help="a .skops or .onnx file (pickle "
                           "and joblib files are refused)")
            p.add_argument("--model", required=True, help="the model's name")
            p.add_argument("--format", dest="artifact_format", choices=("skops", "onnx"))
            p.add_argument("--features", help="comma-separated feature names, in the model's "
                           "order (default: as recorded in the model file)")
            p.add_argument("--target", help="the label column: every other dataset column is "
                           "a feature (when the model file does not name its features)")
            p.add_argument("--trust", action="append", default=[], metavar="TYPE",
                           help="a skops type you expect (repeat); refused if the file needs "
                           "others")
        else:
            p.add_argument("--model", required=True, help="the model's name in Attest")
        p.add_argument("--dataset", required=True, metavar="NAME@VERSION",
                       help="the training dataset version (or its id)")
        p.add_argument("--card", metavar="FILE.md", help="model card (Markdown)")
        p.add_argument("--runbook", metavar="FILE.md", help="runbook (Markdown)")
        p.add_argument("--metrics", metavar="FILE.json", help='{"overall": {...}, '
                       '"subgroups": [{"name", "n", "metrics"}]}')
        p.add_argument("--threshold", type=_unit_float, help="confidence below which "
                       "predictions go to human review (0..1)")
        p.add_argument("--ood-policy", choices=("review", "reject"))
        p.add_argument("--output-schema", metavar="FILE.json",
                       help="{labels, positive_label, label_names, score_meaning}")
        p.add_argument("--schema", metavar="FILE.json", help="input schema (list of feature "
                       "names or objects); default: built from the training profile")
        p.add_argument("--code-ref", help="code reference (default: this git checkout's commit)")
        p.add_argument("--description", default="")
        p.add_argument("--create", action="store_true", help="create the model if it does "
                       "not exist")
        p.add_argument("--submit", action="store_true", help="submit for review once registered")
        p.add_argument("--yes", "-y", action="store_true", help="do not ask to confirm the "
                       "schema and trusted types")

    p = command("register", "model_register", "register a model version from a .skops "
                "or .onnx file", parent=models)
    register_options(p, artifact=True)

    p = command("import-mlflow", "import_mlflow", "register a version from a local "
                "MLflow model directory (ONNX or skops flavours; pickles are refused)")
    p.add_argument("path", metavar="PATH", help="the directory holding the MLmodel file")
    register_options(p, artifact=False)

    versions = group("version", "follow, compare, submit, sign and promote versions")
    for name, handler, text in (
            ("status", "version_status", "state, hashes, sign-offs and evidence"),
            ("submit", "version_submit", "freeze a draft and send it for review"),
            ("promote", "version_promote", "make an approved version production")):
        p = command(name, handler, text, parent=versions)
        p.add_argument("model")
        p.add_argument("version", type=_positive_int)
    p = command("diff", "version_diff", "what changed between two versions",
                parent=versions)
    p.add_argument("model")
    p.add_argument("old", type=_positive_int, metavar="VERSION_A")
    p.add_argument("new", type=_positive_int, metavar="VERSION_B")
    p = command("sign", "version_sign", "sign a version in review (asks for your "
                "password: the second signature component)", parent=versions)
    p.add_argument("model")
    p.add_argument("version", type=_positive_int)
    p.add_argument("--meaning", required=True, help="e.g. pi_approval, irb_approval")
    p.add_argument("--decision", required=True, choices=("approve", "reject"))
    p.add_argument("--comment", default="")
    p.add_argument("--password-stdin", action="store_true")

    # -- predictions ---------------------------------------------------------------------
    p = command("predict", "predict", "score JSON input, or a CSV/Parquet file as a "
                "batch job (progress bar; result and error files downloaded)")
    p.add_argument("model")
    p.add_argument("input", metavar="INPUT", nargs="?",
                   help="a .json file (an object, or a list of objects), a .csv/.parquet file "
                   "(a batch job), or - for JSON on stdin")
    p.add_argument("--data", help="the JSON input inline")
    p.add_argument("--version", dest="model_version", type=_positive_int,
                   help="owners: score with this version instead of production")
    p.add_argument("--output-dir", "-d", default=".", help="where batch result and error "
                   "files go (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite existing result files")
    p.add_argument("--passthrough", action="append", default=[], metavar="COLUMN",
                   help="batch files: copy this column (an identifier to join results back "
                   "by) as text to the result and error files, unscored and never logged; "
                   "repeat, or comma-separate (a,b)")
    p.add_argument("--explain", choices=["shap"], default=None,
                   help="also explain: one JSON input gets its SHAP explanation in the answer "
                   "when the model's explainer is fast; a batch file gets SHAP contribution "
                   "columns for every scored row (tree or linear models within the server's "
                   "budget; refused otherwise, with the reason)")
    p.add_argument("--no-wait", action="store_true", help="submit the batch and return")
    p.add_argument("--timeout", type=_positive_int, default=None, metavar="SECONDS",
                   help="give up waiting for a batch after this long")
    batches = group("batch", "follow or cancel batch jobs")
    p = command("status", "batch_status", "a batch job's progress; --wait to follow "
                "it and download its files", parent=batches)
    p.add_argument("batch_id", metavar="ID")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--output-dir", "-d", default=".")
    p.add_argument("--force", action="store_true")
    p = command("cancel", "batch_cancel", "cancel a batch job", parent=batches)
    p.add_argument("batch_id", metavar="ID")

    # -- audit ----------------------------------------------------------------------------
    audit = group("audit", "verify and export the audit trail")
    p = command("verify", "audit_verify", "verify the audit chain: on the server, or "
                "offline from a saved JSON export (and a checkpoint you kept)", parent=audit)
    p.add_argument("--export", metavar="EXPORT.json", help="verify this export offline (no "
                   "server needed)")
    p.add_argument("--checkpoint", metavar="CHECKPOINT.json", help="check the trail still "
                   "extends this signed checkpoint")
    p.add_argument("--public-key", metavar="KEY.pem", help="the server's public key you "
                   "trust: the checkpoint must be signed with it")
    p = command("export", "audit_export", "save the (filtered) trail as a JSON export "
                "with its chain head", parent=audit)
    p.add_argument("--output", "-o", required=True, metavar="FILE.json")
    for name in ("model", "version", "actor", "action", "since", "until"):
        p.add_argument(f"--{name}", dest=f"filter_{name}")
    p = command("checkpoint", "audit_checkpoint", "have the server sign its chain head "
                "now (administrators) and save the checkpoint (keep it somewhere else); "
                "others save the newest one the server signed", parent=audit)
    p.add_argument("--output", "-o", required=True, metavar="FILE.json")
    p.add_argument("--latest", action="store_true", help="save the newest checkpoint the "
                   "server signed, without signing a new one")

    # -- dossiers -------------------------------------------------------------------------
    dossiers = group("dossier", "compliance dossiers (PDF, evidence package)")
    p = command("get", "dossier_get", "generate a version's dossier and download it",
                parent=dossiers)
    p.add_argument("model")
    p.add_argument("version", type=_positive_int)
    p.add_argument("--output", "-o", metavar="FILE.pdf")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=_positive_int, default=600, metavar="SECONDS")
    p = command("sign", "dossier_sign", "the IRB signs a dossier it read "
                "(irb_dossier_review; asks for your password, the second signature "
                "component). The signature records the dossier's sha256 and the version's "
                "content hash; it does not approve the release", parent=dossiers)
    p.add_argument("dossier_id", metavar="ID", help="the dossier's id (`attest dossier get` "
                   "prints it; also on its page)")
    p.add_argument("--decision", required=True, choices=("approve", "reject"))
    p.add_argument("--comment", default="", help="required to reject")
    p.add_argument("--read", metavar="FILE.pdf", help="the PDF you read: refused before "
                   "anything is sent unless its sha256 is the dossier's")
    p.add_argument("--password-stdin", action="store_true")
    p = command("verify", "dossier_verify", "check a dossier's evidence package (ZIP) "
                "offline, no server needed: every file against the manifest's sha256 and "
                "size, no unlisted file, the audit export's hash chain and its head (and "
                "the head against a signed checkpoint you kept). Exit 0: ok; 1: the check "
                "failed (one line per problem); 2: not a readable ZIP or checkpoint",
                parent=dossiers)
    p.add_argument("package", metavar="ZIP")
    p.add_argument("--checkpoint", metavar="CHECKPOINT.json", help="check the export "
                   "against this signed checkpoint (`attest audit checkpoint`)")
    p.add_argument("--public-key", metavar="KEY.pem", help="the server's public key you "
                   "trust: the checkpoint must be signed with it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``attest = "attest_client.cli:main"``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # Imported here: `attest --help` stays quick without numpy, pandas and requests.
        from . import commands

        return getattr(commands, args.handler)(args)
    except AttestError as exc:
        return _fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not bad input: still one line, traceback on request
        if os.environ.get("ATTEST_DEBUG"):
            raise
        detail = str(exc).splitlines()[0] if str(exc) else ""
        print(f"{PROG}: error: internal error ({type(exc).__name__}"
              f"{': ' + detail if detail else ''}); set ATTEST_DEBUG=1 for details",
              file=sys.stderr)
        return EXIT_INTERNAL


def _fail(reason: str, status: int = EXIT_USAGE) -> int:
    print(f"{PROG}: error: {' '.join(reason.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
