#!/usr/bin/env bash
# Set up a virtual environment (default .venv; FEATURE_LENS_VENV overrides) and build the
# feature-connectome dashboards of the embedded default model. This is the README's main command.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FEATURE_LENS_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt -e .
HF_HUB_OFFLINE=1 "$venv/bin/feature-lens" dashboard --out "${1:-feature-lens-out}" --overwrite
