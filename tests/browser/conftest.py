"""Browser tests: pytest-playwright driving Debian's Chromium against pytest-django's live_server.

Never ``playwright install`` here: it downloads a browser, which these machines
cannot do. The executable comes from ``ATTEST_CHROMIUM`` or ``chromium`` on PATH.
Without one, the tests skip locally with the reason, and fail when ``CI=true``
(a CI run that silently skipped its browser tests would prove nothing).
"""

from __future__ import annotations

import os
import shutil

import pytest

# Playwright's sync API keeps an event loop in the main thread; Django refuses ORM
# calls from a thread with a running loop unless told this is safe (it is: the loop
# only drives the browser). Set before any test runs.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Playwright's defaults already add --no-sandbox, --headless and the
# no-background-networking flags; these two avoid GPU and QUIC probing in containers.
CHROMIUM_ARGS = ("--disable-gpu", "--disable-quic")


def find_chromium() -> tuple[str | None, str]:
    """The Chromium executable to drive, or None and why not."""
    configured = os.environ.get("ATTEST_CHROMIUM")
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured, ""
        return None, f"ATTEST_CHROMIUM={configured} is not an executable file"
    found = shutil.which("chromium")
    if found:
        return found, ""
    return None, ("no Chromium: set ATTEST_CHROMIUM or `apt-get install -y chromium` "
                  "(never `playwright install`)")


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_chromium() -> str:
    """The executable path; fails the test on CI, skips it elsewhere, when there is none."""
    path, reason = find_chromium()
    if path is None:
        if on_ci():
            pytest.fail(f"Browser tests cannot run on CI: {reason}.", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": require_chromium(),
        "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS],
    }


@pytest.fixture
def page(page):
    # A slow CI machine registers a model (load + dry run) in well under this.
    page.set_default_timeout(15_000)
    return page
