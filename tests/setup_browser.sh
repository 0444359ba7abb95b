#!/usr/bin/env bash
# Installs Debian's Chromium (and chromedriver) for the report tests (tests/results, tests/scan),
# which load the HTML report in real headless Chromium. CI runs as root and gets it installed;
# elsewhere without root (or passwordless sudo) it only warns, and those tests skip unless $CI is set.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "setup_browser: chromium is missing and this is not root; the report browser tests will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
