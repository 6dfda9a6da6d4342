"""What every bench script shares: the machine facts printed beside its tables, the
table renderer, and one-line errors with their exit statuses."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import NoReturn


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def memory_gib() -> str:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def load_average() -> str:
    """1/5/15-minute load averages: other work on the cores shows up as noise."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def header_lines(libraries: tuple[str, ...]) -> list[str]:
    """Date, machine, Python and library versions: the first lines of every report."""
    libs = ", ".join(f"{name} {version_of(name)}" for name in libraries)
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib()} RAM, "
        f"{platform.system()} {platform.release()}; load average at start {load_average()}",
        f"python: {platform.python_version()} ({sys.executable})",
        f"libraries: {libs}",
    ]


def django_setup() -> None:
    """``django.setup()`` for a bench script, from whatever directory it was run.

    The project root goes first on ``sys.path``, and the ``registry`` app is imported
    before Django starts: Celery's Django fix-up puts the working directory first,
    and run from ``bench/`` that would make ``bench/registry.py`` the app."""
    import importlib
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    sys.path[:] = [root, *(p for p in sys.path if p != root)]
    importlib.import_module("registry")
    import django

    django.setup()


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, columns padded to their widest cell."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


class BenchError(Exception):
    """A failure worth one line, not a traceback (exit status 1)."""


class BadArguments(BenchError):
    """Arguments or environment that make the run meaningless (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")
