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
# circuit-tracer's viewer code for the export test (tests/interchange): its wheel, from the registry.
peers="$venv/peers"
if ! ls "$peers"/circuit_tracer-0.5.0-*.whl >/dev/null 2>&1; then
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$peers" circuit-tracer==0.5.0
fi
FEATURE_LENS_CIRCUIT_TRACER_WHEEL=$(ls "$peers"/circuit_tracer-0.5.0-*.whl | head -n 1)
export FEATURE_LENS_CIRCUIT_TRACER_WHEEL
HF_HUB_OFFLINE=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
