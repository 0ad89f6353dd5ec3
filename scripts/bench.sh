#!/usr/bin/env bash
# npm run bench: builds if needed, then times Stasis against the raw runtimes in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
node bench/bench.mjs
