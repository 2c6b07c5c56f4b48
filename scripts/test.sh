#!/usr/bin/env bash
# Set up a virtual environment (default .venv; FEATURE_LENS_VENV overrides) with the development
# extras, make sure Chromium is there for the browser tests, and run the whole test suite offline.
# This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FEATURE_LENS_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
bash scripts/chromium.sh  # the browser tests must run, not skip: install Chromium or stop here
HF_HUB_OFFLINE=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
