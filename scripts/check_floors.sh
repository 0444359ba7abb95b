#!/usr/bin/env bash
# Install dmsec with every dependency at its floor (constraints-floors.txt: the `>=` bounds of
# pyproject.toml as `==` pins) into a throwaway venv, then run the hub tests there. A floor the
# code has outgrown fails here instead of on a user's machine.
#   bash scripts/check_floors.sh            # (or `make floors`); FLOORS_VENV=/tmp/x keeps the venv
# torch stays at constraints.txt's CPU pin: an older torch exists only as a multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
unset PYTHONPATH VIRTUAL_ENV  # the floors venv alone decides what is imported
PYTHON=${PYTHON:-python3}
VENV=${FLOORS_VENV:-$(mktemp -d /tmp/dmsec-floors.XXXXXX)}
keep=${FLOORS_VENV:+yes}
cleanup() { [ -n "$keep" ] || rm -rf "$VENV"; }
trap cleanup EXIT
start=$(date +%s)
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet -c constraints.txt torch==2.13.0
"$VENV/bin/pip" install --quiet -c constraints.txt -c constraints-floors.txt . \
  pytest pytest-timeout 'moto[server]'
echo "floors installed in $(( $(date +%s) - start )) s:"
"$VENV/bin/pip" list 2>/dev/null | grep -i -E "^(huggingface.hub|picklescan|diffusers|transformers|safetensors|pyarrow|boto3|requests|numpy) "
# run from a copy of the tests outside the checkout, so `dmsec` imports from the venv, not ./dmsec
work=$(mktemp -d /tmp/dmsec-floors-tests.XXXXXX)
cp -r tests "$work/tests"
cp pyproject.toml "$work/"
rc=0
(cd "$work" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/hub) || rc=$?
rm -rf "$work"
echo "floors check took $(( $(date +%s) - start )) s"
exit $rc
