#!/usr/bin/env bash
# Installs Debian's Chromium (and chromedriver) for the report tests (tests/results, tests/scan),
# which load the HTML report in real headless Chromium. Run as root before the test suite in CI.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
