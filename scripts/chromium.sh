#!/usr/bin/env bash
# Make sure Chromium is installed for the browser tests (tests/dashboard: Playwright and headless
# Chromium open the dashboards from disk). Installs Debian's `chromium` package as .ci/run does when
# it runs as root (or with password-less sudo); otherwise stops with the one command that installs
# it, so that a green test run always includes the browser tests.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
install=(apt-get install -y -qq chromium)
if [ "$(id -u)" = 0 ]; then
  echo "installing Chromium for the browser tests (apt-get install chromium, about a minute)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "installing Chromium for the browser tests (sudo apt-get install chromium)" >&2
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null
else
  echo "Chromium is needed for the browser tests and is not installed; install it with:" >&2
  echo "  sudo apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  echo "apt-get did not install a chromium command; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi
