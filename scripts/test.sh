#!/usr/bin/env bash
# `npm test`: typecheck, then every test file (or the files given) with throwaway PostgreSQL and CouchDB-protocol
# servers running for the backend suites. Node 20's test runner does not expand globs, so the list is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json --noEmit
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test -name '*.test.ts' | sort)
fi
exec bash scripts/test-services.sh run node --import tsx --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
