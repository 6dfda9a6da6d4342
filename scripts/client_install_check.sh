#!/usr/bin/env bash
# The client installs on its own: build its wheel from this checkout, install it into a
# clean virtualenv (no server, no Django), and run it there.
#
#   scripts/client_install_check.sh PYTHON [WORKDIR]
#
# PYTHON is an interpreter with uv (`PYTHON -m uv`); wheels come from uv's cache, so
# this takes seconds once the project's .venv exists. Fails (non-zero) when the wheel
# lacks attest_client or profiling, when the install pulls in a server-only package,
# or when `attest --help` / `attest profile` do not run.
set -euo pipefail

PY="${1:?usage: $0 PYTHON [WORKDIR]}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${2:-$(mktemp -d -t attest-client-check.XXXXXX)}"
mkdir -p "$WORK"
trap '[[ -z "${2:-}" ]] && rm -rf "$WORK"' EXIT

echo "client check: building the wheel"
"$PY" -m uv build -q --wheel -o "$WORK/dist" "$ROOT/clients/python"
WHEEL="$(ls "$WORK"/dist/attest_client-*.whl)"
"$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for package in ("attest_client/__init__.py", "attest_client/cli.py", "profiling/__init__.py",
                "profiling/profile.py"):
    if package not in names:
        sys.exit(f"client check: the wheel lacks {package}")
print(f"client check: the wheel holds attest_client and profiling ({len(names)} files)")
PYEOF

echo "client check: installing into a clean virtualenv"
"$PY" -m uv venv -q -p "$PY" "$WORK/venv"
"$PY" -m uv pip install -q --python "$WORK/venv/bin/python" "$WHEEL"

cd "$WORK"  # not the checkout: nothing may be imported from it
"$WORK/venv/bin/python" - <<'PYEOF'
import importlib.util, sys
server_only = ["django", "rest_framework", "celery", "onnxruntime", "shap", "weasyprint",
               "portal", "registry", "audits", "core"]
present = [name for name in server_only if importlib.util.find_spec(name) is not None]
if present:
    sys.exit(f"client check: the clean install has server-only packages: {', '.join(present)}")
import attest_client, profiling
print(f"client check: attest_client {attest_client.__version__} imports without Django")
PYEOF
"$WORK/venv/bin/attest" --help >/dev/null
printf 'age,sex\n34,F\n51,M\n' > "$WORK/tiny.csv"
"$WORK/venv/bin/attest" profile "$WORK/tiny.csv" | grep -q '"row_count": 2'
set +e
"$WORK/venv/bin/attest" model register "$WORK/missing.skops" --model m --dataset d@1 2>"$WORK/err"
rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q "attest: error: model file not found" "$WORK/err" \
    || { echo "client check: a missing file did not give one error line and exit 2"; exit 1; }
echo "client check: \`attest --help\`, \`attest profile\` and a usage error run in the clean install"
