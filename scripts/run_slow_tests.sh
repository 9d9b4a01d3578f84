#!/usr/bin/env bash
# The slower tests (marked `slow`): long end-to-end checks.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q -m slow "$@"
