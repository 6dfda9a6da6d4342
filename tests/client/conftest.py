"""Fixtures for driving the ``attest`` client against a live test server.

``attest`` runs in-process (``cli.main``), so one test can play several people: each
persona gets its own config file (``ATTEST_CONFIG``), as each person would on their
own machine. Nothing is mocked between the client and the server: requests go over
HTTP to pytest-django's ``live_server``.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from attest_client import cli

from ..personas import PASSWORD

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass
class Result:
    status: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)

    def error_line(self) -> str:
        """The run failed with exactly one line on stderr and no traceback."""
        lines = self.err.strip().splitlines()
        assert self.status != 0, self.out
        assert lines and lines[-1].startswith("attest: error: "), self.err
        assert "Traceback" not in self.err, self.err
        assert [line for line in lines if line.startswith("attest: error: ")] == [lines[-1]]
        return lines[-1]


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Batch jobs run in-process on commit, also in the layer with a real broker (no worker
    there), as tests/inference/test_batches.py runs them."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)


@pytest.fixture
def attest(capsys, monkeypatch, tmp_path):
    """attest(*argv, stdin=None, as_user=None) -> Result."""
    for var in ("ATTEST_TOKEN", "ATTEST_URL", "ATTEST_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ATTEST_CONFIG", str(tmp_path / "config" / "owner.json"))

    def run(*argv: str, stdin: str | None = None, as_user: str | None = None) -> Result:
        if as_user:
            monkeypatch.setenv("ATTEST_CONFIG", str(tmp_path / "config" / f"{as_user}.json"))
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        status = cli.main(list(argv))
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture
def logged_in(attest, live_server, personas):
    """Log each named persona in (own config file); returns the server URL."""

    def login(*names: str) -> str:
        for name in names:
            result = attest("login", live_server.url, "--username", name, "--password-stdin",
                            stdin=PASSWORD + "\n", as_user=name)
            assert result.status == 0, result.err
        return live_server.url

    return login
