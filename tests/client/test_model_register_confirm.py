"""`attest model register` without --yes: the inferred schema is shown and confirmed first.

A skops file asks twice: before loading it here (its types are trusted for that), then,
with the schema built from the training profile on screen, before registering. Every
other client test passes --yes; these answer the questions, on a stand-in terminal.
"""

from __future__ import annotations

import io
import sys

import pytest
from attest_client import errors

from audits.models import Action, AuditEvent
from registry.models import ModelVersion, RegisteredModel

from ..artifacts import FEATURES_SMALL, logistic_model, skops_bytes
from ..registry.helpers import register_dataset

MODEL = "sepsis-risk"
LOAD_QUESTION = "Load it here with these types trusted"
REGISTER_QUESTION = "Register it? [y/N]"


class Terminal(io.StringIO):
    """Typed answers, on what the client takes for an interactive terminal."""

    def isatty(self) -> bool:
        return True

    def readline(self, size: int = -1) -> str:
        line = super().readline(size)
        sys.stderr.write(line)  # a terminal echoes what is typed
        return line


@pytest.fixture
def register(attest, logged_in, personas, tmp_path, monkeypatch):
    """register(*extra, answers=None) -> Result; answers (one line each) on a terminal, or
    None for the stdin of a script (not a terminal)."""
    logged_in("owner")
    dataset = register_dataset(personas.owner)
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(skops_bytes(logistic_model()))

    def run(*extra: str, answers: str | None = None):
        stdin = Terminal(answers) if answers is not None else io.StringIO("y\ny\n")
        monkeypatch.setattr(sys, "stdin", stdin)
        return attest("model", "register", str(artifact), "--model", MODEL, "--dataset",
                      f"{dataset.name}@{dataset.version}", *extra)

    run.dataset = dataset
    return run


def _schema_lines(err: str) -> dict[str, list[str]]:
    """The schema table the client showed: feature -> [type, range]."""
    lines = err.splitlines()
    start = lines.index("Input schema (from the training profile):")
    rows = {}
    for line in lines[start + 2:]:
        name = next((f for f in FEATURES_SMALL if line.startswith(f"  {f} ")), None)
        if name is None:
            break
        rows[name] = line[len(name) + 2:].split(maxsplit=1)
    return rows


def _registered() -> bool:
    return ModelVersion.objects.exists() or AuditEvent.objects.filter(
        action=Action.VERSION_REGISTERED).exists()


def test_it_shows_the_inferred_schema_and_registers_on_yes(register):
    result = register(answers="y\ny\n")
    assert result.status == 0, result.err
    # The questions go to stderr with the schema: stdout is for the result only.
    assert LOAD_QUESTION not in result.out and REGISTER_QUESTION not in result.out
    assert result.err.index(LOAD_QUESTION) < result.err.index("Input schema") \
        < result.err.index(REGISTER_QUESTION)
    shown = _schema_lines(result.err)
    profile = register.dataset.profile["columns"]
    assert list(shown) == FEATURES_SMALL
    for name in FEATURES_SMALL:
        kind, allowed = shown[name]
        assert kind == "number"
        assert allowed == f"{profile[name]['min']} … {profile[name]['max']}"
    # What was shown is what was registered.
    version = ModelVersion.objects.get(model__name=MODEL)
    assert [f["name"] for f in version.input_schema] == FEATURES_SMALL
    assert "v1" in result.out


def test_the_schema_and_questions_stay_off_stdout_with_json(register):
    result = register("--json", answers="yes\ny\n")
    assert result.status == 0, result.err
    assert result.json["version"]["version"] == 1  # stdout is the JSON and nothing else
    assert REGISTER_QUESTION in result.err and _schema_lines(result.err)


@pytest.mark.parametrize("answers", ["y\nn\n", "y\n\n", "y\n", "n\n", ""],
                         ids=["no", "enter", "end-of-input", "no-to-loading", "nothing"])
def test_anything_but_yes_registers_nothing(register, answers):
    result = register(answers=answers)
    assert result.status == errors.EXIT_USAGE
    assert result.error_line() == "attest: error: cancelled: nothing was registered"
    assert not _registered()


def test_declining_does_not_create_the_model_either(register):
    result = register("--model", "new-model", "--create", answers="y\nn\n")
    assert result.status == errors.EXIT_USAGE
    assert "Input schema" in result.err and "cancelled" in result.error_line()
    assert not RegisteredModel.objects.filter(name="new-model").exists()
    assert not _registered()


@pytest.mark.parametrize("extra", [(), ("--json",)])
def test_a_script_without_yes_is_told_to_pass_it(register, extra):
    result = register(*extra)  # stdin is not a terminal, whatever it holds
    assert result.status == errors.EXIT_USAGE
    line = result.error_line()
    assert line.startswith("attest: error: confirmation needed but stdin is not a terminal")
    assert "--yes" in line
    assert result.err.strip() == line  # refused before anything was loaded, shown or sent
    assert result.out == ""
    assert not _registered()


def test_yes_asks_nothing(register):
    result = register("--yes", answers="")
    assert result.status == 0, result.err
    assert "[y/N]" not in result.err and "Input schema" in result.err
    assert ModelVersion.objects.filter(model__name=MODEL).count() == 1
