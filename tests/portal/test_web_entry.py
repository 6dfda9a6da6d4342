"""deploy/web.py: the image's default command picks uwsgi, gunicorn or granian from the env."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = runpy.run_path(str(ROOT / "deploy/web.py"), run_name="web")
command, BadSetting = WEB["command"], WEB["BadSetting"]


def _opt(argv, name):
    return argv[argv.index(name) + 1]


def test_uwsgi_is_the_default_on_its_http11_socket():
    argv, extra = command({})
    assert Path(argv[0]).name == "uwsgi" and Path(argv[0]).parent == Path(sys.executable).parent
    assert _opt(argv, "--http11-socket") == "0.0.0.0:8000"
    assert _opt(argv, "--module") == "portal.wsgi:application"
    assert (_opt(argv, "--processes"), _opt(argv, "--threads")) == ("2", "4")
    assert (_opt(argv, "--harakiri"), _opt(argv, "--socket-timeout")) == ("120", "5")
    assert _opt(argv, "--worker-reload-mercy") == "30"
    # fail at start-up rather than serve half-configured; graceful on docker stop
    assert {"--strict", "--master", "--need-app", "--lazy-apps", "--die-on-term"} <= set(argv)
    assert _opt(argv, "--hook-master-start") == "unix_signal:15 gracefully_kill_them_all"
    assert "--max-requests" not in argv
    # the app writes the access line
    assert "--disable-logging" in argv and extra == {"ATTEST_APP_ACCESS_LOG": "true"}


def test_uwsgi_from_its_variables():
    argv, _extra = command({"ATTEST_WEB_SERVER": "UWSGI", "WEB_CONCURRENCY": "3",
                            "UWSGI_THREADS": "8", "UWSGI_HARAKIRI": "30",
                            "UWSGI_MAX_REQUESTS": "5000", "WEB_GRACEFUL_TIMEOUT": "10"},
                           "127.0.0.1:9000")
    assert _opt(argv, "--http11-socket") == "127.0.0.1:9000"
    assert (_opt(argv, "--processes"), _opt(argv, "--threads"), _opt(argv, "--harakiri")) == (
        "3", "8", "30")
    assert _opt(argv, "--max-requests") == "5000"
    assert _opt(argv, "--worker-reload-mercy") == _opt(argv, "--reload-mercy") == "10"


def test_gunicorn_with_its_config_file():
    argv, extra = command({"ATTEST_WEB_SERVER": "gunicorn"})
    assert extra == {}  # gunicorn writes the access line
    assert argv[1:3] == ["-m", "gunicorn"]
    assert argv[argv.index("--config") + 1] == str(ROOT / "deploy/gunicorn.conf.py")
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8000"
    assert argv[-1] == "portal.wsgi:application"


def test_granian_from_the_shared_variables():
    argv, extra = command({"ATTEST_WEB_SERVER": "granian", "WEB_CONCURRENCY": "3",
                           "GRANIAN_BLOCKING_THREADS": "1", "ATTEST_LOG_LEVEL": "WARNING"},
                          "127.0.0.1:9000")
    assert argv[1:5] == ["-m", "granian", "--interface", "wsgi"]

    def opt(name):
        return argv[argv.index(name) + 1]

    assert (opt("--host"), opt("--port"), opt("--workers"), opt("--blocking-threads")) == (
        "127.0.0.1", "9000", "3", "1")
    # the app writes the access line (with the request id granian cannot see)
    assert opt("--log-level") == "warning" and "--no-access-log" in argv
    assert extra == {"ATTEST_APP_ACCESS_LOG": "true"}
    assert "--respawn-failed-workers" in argv
    assert argv[-1] == "portal.wsgi:application"


def test_granian_defaults_to_two_threads_per_worker():
    argv, _extra = command({"ATTEST_WEB_SERVER": "granian"})
    assert argv[argv.index("--blocking-threads") + 1] == "2"
    assert argv[argv.index("--workers") + 1] == "2"


@pytest.mark.parametrize(("env", "bind", "message"), [
    ({"ATTEST_WEB_SERVER": "nginx"}, "0.0.0.0:8000", "ATTEST_WEB_SERVER must be one of"),
    ({"UWSGI_THREADS": "0"}, "0.0.0.0:8000", "UWSGI_THREADS must be >= 1"),
    ({"UWSGI_HARAKIRI": "2m"}, "0.0.0.0:8000", "UWSGI_HARAKIRI must be an integer"),
    ({"UWSGI_MAX_REQUESTS": "-1"}, "0.0.0.0:8000", "UWSGI_MAX_REQUESTS must be >= 0"),
    ({"WEB_GRACEFUL_TIMEOUT": "0"}, "0.0.0.0:8000", "WEB_GRACEFUL_TIMEOUT must be >= 1"),
    ({"ATTEST_WEB_SERVER": "granian", "WEB_CONCURRENCY": "two"}, "0.0.0.0:8000",
     "WEB_CONCURRENCY must be an integer"),
    ({"ATTEST_WEB_SERVER": "granian", "GRANIAN_BLOCKING_THREADS": "0"}, "0.0.0.0:8000",
     "GRANIAN_BLOCKING_THREADS must be >= 1"),
    ({"ATTEST_WEB_SERVER": "granian", "ATTEST_LOG_LEVEL": "loud"}, "0.0.0.0:8000",
     "ATTEST_LOG_LEVEL must be a log level"),
    ({}, "8000", "--bind must be HOST:PORT"),
    ({}, "host:99999", "--bind must be HOST:PORT"),
])
def test_bad_settings_are_refused_with_a_reason(env, bind, message):
    with pytest.raises(BadSetting, match=message):
        command(env, bind)


def test_the_script_says_why_in_one_line_and_exits_2():
    result = subprocess.run([sys.executable, str(ROOT / "deploy/web.py"), "--print"],
                            env={"ATTEST_WEB_SERVER": "nginx"}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ATTEST_WEB_SERVER" in result.stderr
    shown = subprocess.run([sys.executable, str(ROOT / "deploy/web.py"), "--print", "--bind",
                            "127.0.0.1:8123"], env={"ATTEST_WEB_SERVER": "granian"},
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "granian" in shown.stdout and "8123" in shown.stdout
    assert shown.stdout.startswith("ATTEST_APP_ACCESS_LOG=true ")
