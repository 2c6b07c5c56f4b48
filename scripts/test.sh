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
# circuit-tracer 0.5.0, the peer that the equality and viewer tests compare against, in a virtual
# environment of its own (it needs transformers<=4.57.3), plus its wheel for the viewer's own code.
peers="$venv/peers"
ct="$peers/circuit-tracer-0.5.0"
if [ ! -f "$ct/.complete" ]; then
  rm -rf "$ct"
  python3 -m venv "$ct"
  "$ct/bin/pip" install -q --disable-pip-version-check circuit-tracer==0.5.0 torch==2.13.0
  touch "$ct/.complete"
fi
if ! ls "$peers"/circuit_tracer-0.5.0-*.whl >/dev/null 2>&1; then
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$peers" circuit-tracer==0.5.0
fi
FEATURE_LENS_CIRCUIT_TRACER_WHEEL=$(ls "$peers"/circuit_tracer-0.5.0-*.whl | head -n 1)
export FEATURE_LENS_CIRCUIT_TRACER_WHEEL FEATURE_LENS_CIRCUIT_TRACER_PYTHON="$ct/bin/python"
HF_HUB_OFFLINE=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
