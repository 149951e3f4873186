#!/bin/sh
# Install carbonwatch into .venv and run the whole system on embedded defaults (the simulated demo plant,
# edge agent, broker, ingest into ./var/, API on http://127.0.0.1:8000). No root, no system packages.
set -eu
cd "$(dirname "$0")/.."
sh deploy/bootstrap.sh
exec .venv/bin/carbonwatch run "$@"
