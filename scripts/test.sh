#!/usr/bin/env bash
# Installs everything the test suite needs (Debian packages when missing, the Python package
# with its test extra in .venv, the npm peers in tests/node) and runs the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k upgrade`.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=()
command -v chromium >/dev/null 2>&1 || debs+=(chromium)
command -v curl >/dev/null 2>&1 || debs+=(curl)
command -v redis-server >/dev/null 2>&1 || debs+=(redis-server)  # Redis adapter tests
python3 -c "import ensurepip" >/dev/null 2>&1 || debs+=(python3-venv)
if ((${#debs[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian packages: ${debs[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${debs[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

.venv/bin/ruff check .
.venv/bin/python -m mypy  # --strict on the package (pyproject.toml [tool.mypy])
# One run: what depends on the binding runs on both (native runner, ASGI app on uvicorn), the
# rest once; branch coverage is measured and, for a whole run, checked per core layer.
.venv/bin/python -m pytest --cov --cov-report= "$@"
if [ $# -eq 0 ]; then
  .venv/bin/python scripts/coverage_check.py --min 95
fi
