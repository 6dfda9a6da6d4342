"""Progress bars for uploads, downloads and waits: tqdm when installed, else a text bar.

Bars go to stderr, and only to a terminal or a notebook: a script that pipes the
output or asks for ``--json`` gets no bar noise.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        return shell.get_ipython().__class__.__name__ == "ZMQInteractiveShell"
    except Exception:  # noqa: BLE001 - any IPython oddity means "not a notebook"
        return False


def bars_wanted() -> bool:
    return _in_notebook() or bool(getattr(sys.stderr, "isatty", lambda: False)())


class _Silent:
    def update(self, n: float = 1) -> None:
        pass

    def set_total(self, total: float | None, done: float | None = None) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TextBar(_Silent):
    """``desc  42% |████░░░░░| 12.0/28.5 MB`` redrawn in place, at most 10 times a second."""

    WIDTH = 24

    def __init__(self, total: float | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0.0
        self._drawn = 0.0

    def _amount(self, value: float) -> str:
        if self.unit == "B":
            for step in (1 << 30, 1 << 20, 1 << 10):
                if (self.total or value) >= step:
                    return f"{value / step:.1f}"
            return f"{value:.0f}"
        return f"{value:,.0f}"

    def _unit_name(self) -> str:
        if self.unit != "B":
            return self.unit
        size = self.total or self.done
        return next((n for s, n in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB"))
                     if size >= s), "B")

    def _draw(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._drawn < 0.1:
            return
        self._drawn = now
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * self.WIDTH)
            text = (f"{self.desc}  {share:4.0%} |{'█' * filled}{'░' * (self.WIDTH - filled)}| "
                    f"{self._amount(self.done)}/{self._amount(self.total)} {self._unit_name()}")
        else:
            text = f"{self.desc}  {self._amount(self.done)} {self._unit_name()}"
        sys.stderr.write("\r" + text + ("\n" if final else ""))
        sys.stderr.flush()

    def update(self, n: float = 1) -> None:
        self.done += n
        self._draw()

    def set_total(self, total: float | None, done: float | None = None) -> None:
        self.total = total
        if done is not None:
            self.done = done
        self._draw()

    def set_description(self, text: str) -> None:
        self.desc = text

    def close(self) -> None:
        self._draw(final=True)


class _Tqdm(_Silent):
    def __init__(self, total: float | None, desc: str, unit: str) -> None:
        from tqdm.auto import tqdm

        scale = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
        self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=True, **scale)

    def update(self, n: float = 1) -> None:
        self._bar.update(n)

    def set_total(self, total: float | None, done: float | None = None) -> None:
        self._bar.total = total
        if done is not None:
            self._bar.n = done
        self._bar.refresh()

    def set_description(self, text: str) -> None:
        self._bar.set_description(text)

    def close(self) -> None:
        self._bar.close()


def progress(total: float | None, desc: str, *, unit: str = "B", enabled: bool = True) -> Any:
    """A bar with ``update(n)``, ``set_total(total, done)``, ``close()`` (a context manager)."""
    if not enabled or not bars_wanted():
        return _Silent()
    try:
        return _Tqdm(total, desc, unit)
    except ImportError:
        return TextBar(total, desc, unit)
