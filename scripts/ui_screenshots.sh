#!/usr/bin/env bash
# Refresh the Dagster UI screenshots in docs/images/ui/ by running the browser tests, which
# write them where CRYPTODUDEZ_UI_SHOTS points (the test run itself writes to a temporary
# folder and never touches the docs). Needs ./run setup and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
CRYPTODUDEZ_UI_SHOTS="$PWD/docs/images/ui" exec .venv/bin/python -m pytest tests/ui -q "$@"
