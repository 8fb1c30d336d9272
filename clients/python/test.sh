#!/usr/bin/env bash
# Installs the Python client with its test extra into ./.venv (from PyPI)
# and runs its tests against a live satcheld and docker-registry.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/python -m pytest -v
