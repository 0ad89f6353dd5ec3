#!/usr/bin/env bash
# The test command (npm test): set-up if needed, then static checks, the agent's go vet and Go tests, unit
# tests and end-to-end tests against a real daemon with real gVisor and crun sandboxes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-test-deps.sh

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
step "lint and type-check the tests"
npx eslint .
npx tsc -p tsconfig.tests.json
step "OpenAPI document matches the schemas"
node packages/protocol/dist/openapi/write-openapi.js spec/openapi.json --check
step "guest agent (go vet, go test)"
GO=$(command -v go || ls -d /usr/lib/go-1.2*/bin/go | sort -V | tail -n 1)
(cd packages/agent && "$GO" vet ./... && "$GO" test ./...)
step "unit and end-to-end tests"
report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$report" || status=$?
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$report" || true
rm -f "$report"
exit "$status"
