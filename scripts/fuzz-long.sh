#!/usr/bin/env bash
# Long fuzz run over every property in test/fuzz (the CI run uses a small FUZZ_RUNS).
#
#   scripts/fuzz-long.sh [RUNS_PER_PROPERTY]      (default 170000: ~1M token-pipeline cases)
#   FUZZ_SEED=123 scripts/fuzz-long.sh 1000       (reproduce / vary the seed)
#
# Cases: the 6 token-pipeline properties run RUNS each; the 4 path properties 10 x RUNS
# each; the 3 encoding properties 5 x RUNS each; the 2 adapter properties RUNS each. A
# failure prints fast-check's seed, path and counterexample. One vitest worker by default
# (FUZZ_WORKERS=2 to use more cores). Redirect stdout to keep the log; its last line is a
# JSON summary.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-${FUZZ_RUNS:-170000}}"
SEED="${FUZZ_SEED:-$(date +%s)}"
start=$(date +%s)
echo "fuzz-long: runs/property=$RUNS seed=$SEED node=$(node --version) cpus=$(nproc)"
status=0
FUZZ_RUNS="$RUNS" FUZZ_SEED="$SEED" FUZZ_REPORT=1 npx vitest run test/fuzz --reporter=verbose --maxWorkers="${FUZZ_WORKERS:-1}" || status=$?
end=$(date +%s)
token_cases=$((RUNS * 6))
echo "{\"fuzz_long\":{\"runs_per_property\":$RUNS,\"token_pipeline_cases\":$token_cases,\"seed\":$SEED,\"seconds\":$((end - start)),\"status\":$status}}"
exit "$status"
