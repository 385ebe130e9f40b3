#!/usr/bin/env bash
# Sets everything up and starts the service on its embedded defaults (port 8010).
# Extra arguments go to `scheduler-server serve` (e.g. --port 9000 --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh serve
exec .venv/bin/scheduler-server serve "$@"
