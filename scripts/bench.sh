#!/usr/bin/env bash
# npm run bench [-- --quick] [-- --sections a,b] [-- --compare FILE]: set-up if needed (build, agent, base
# template), then `stasis bench`, which times Stasis beside the raw runtimes in one run and writes
# docs/benchmarks.md, the charts in docs/bench/ and the JSON of every figure. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "the benchmark needs root (runtimes, mounts and cgroups): sudo npm run bench" >&2; exit 1; fi
bash scripts/setup.sh >/dev/null
exec node packages/cli/dist/main.js bench "$@"
