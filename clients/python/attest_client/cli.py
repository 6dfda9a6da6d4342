"""The ``attest`` command line, run by researchers on their own machine.

Why it exists: profiling happens locally so patient rows never leave the researcher's
computer; only the JSON printed or written here is shared. Subcommands live in argparse
subparsers so ``register``/``submit`` can be added next to ``profile``.

Errors a user can cause are reported as exactly one line, ``attest: error: <reason>``,
on stderr with exit status 2, never as a traceback: the audience is researchers, and a
traceback could also echo file contents into a terminal log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from profiling import FORMATS, MIN_CATEGORY_COUNT, ProfilingError, profile_file

PROG = "attest"
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user-fixable problem; main() prints it as one line and exits with status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error and exits; we want the single-line contract."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Attest model registry client.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    profile = commands.add_parser(
        "profile",
        help="summarize a CSV or parquet dataset locally (no rows leave this machine)",
        description=(
            "Compute the dataset's SHA-256, row count, column types and per-column "
            "statistics, and print them as JSON (or write them with --output)."
        ),
    )
    profile.add_argument("file", metavar="FILE", help="the dataset file (.csv, .parquet or .pq)")
    profile.add_argument(
        "--format",
        dest="file_format",
        choices=FORMATS,
        help="file format; by default taken from the file extension",
    )
    profile.add_argument(
        "--output", "-o", metavar="OUT.json", help="write the JSON here instead of stdout"
    )
    profile.add_argument(
        "--min-category-count",
        type=_positive_int,
        default=None,
        metavar="K",
        help=f"list a category value only if at least K rows have it (default "
        f"{MIN_CATEGORY_COUNT}); rarer values are counted in other_rate, never written",
    )
    profile.set_defaults(handler=_run_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``attest = "attest_client.cli:main"``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except CommandError as exc:
        return _fail(str(exc))
    except ProfilingError as exc:
        return _fail(exc.message)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not bad input: still one line, traceback on request
        if os.environ.get("ATTEST_DEBUG"):
            raise
        detail = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"{PROG}: error: internal error ({type(exc).__name__}{': ' + detail if detail else ''}); "
            "set ATTEST_DEBUG=1 for details",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _fail(reason: str) -> int:
    one_line = " ".join(reason.split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return EXIT_USAGE


def _run_profile(args: argparse.Namespace) -> int:
    result = profile_file(args.file, file_format=args.file_format,
                          min_category_count=args.min_category_count)
    # ASCII-only (\uXXXX escapes) so a non-UTF-8 console cannot fail to print the values.
    text = json.dumps(result.as_dict(), indent=2, allow_nan=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    _write_atomically(Path(args.output), text)
    print(
        f"{PROG}: wrote {args.output} ({result.row_count} rows, {len(result.columns)} columns)",
        file=sys.stderr,
    )
    return EXIT_OK


def _write_atomically(target: Path, text: str) -> None:
    """Write via a temporary file and rename, so a failed run never leaves half a JSON file."""
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise CommandError(f"cannot write {target}: directory {directory} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
