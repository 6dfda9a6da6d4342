"""Ship the repository's shared ``profiling`` package inside the client's wheel and sdist.

The package lives once, at the repository root (the server imports it from there). In a
checkout it is ``../../profiling``; inside an sdist built by this hook it is
``./profiling``. Either way it is added to the build as the top-level ``profiling``
package, so ``pip install ./clients/python`` and a wheel built from the sdist both hold
``attest_client`` and ``profiling``.
"""

from __future__ import annotations

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ProfilingBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        for candidate in (root / "profiling", root.parent.parent / "profiling"):
            if (candidate / "__init__.py").is_file():
                break
        else:
            raise RuntimeError(
                "the shared 'profiling' package was not found (looked in ./profiling and "
                "../../profiling): build the client from a checkout of the Attest repository")
        if self.target_name == "wheel" and version == "editable":
            # An editable install puts the repository root on the path instead
            # (dev-mode-dirs in pyproject.toml): a copy here would go stale, and in the
            # server's environment it would shadow the live package.
            return
        for path in sorted(candidate.rglob("*.py")):
            relative = path.relative_to(candidate)
            build_data["force_include"][str(path)] = str(Path("profiling") / relative)
