#!/usr/bin/env bash
# Regenerates the committed robustness and transfer results into OUT (default: results), in two
# processes of one torch thread each (reproducible, as the synthetic table):
#   1. robustness on synthetic: suite:protocols, folds 1-2, clean + 13 corruptions x 5 severities;
#   2. transfer: suite:protocols between synthetic and synthetic-wild both ways (folds 1-2, each
#      trained on the training dataset's fold of the same number), the in-domain synthetic-wild
#      runs for the matrix's diagonal, and synthetic <-> synthetic-11 (7 of MAFW's 11 classes shared).
# `make synthetic-table` and .ci/run call it; `dferbench leaderboard` then builds the pages.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results}
bin=${DFERBENCH:-.venv/bin/dferbench}
logs=$(mktemp -d)
export OMP_NUM_THREADS=1
common=(--model suite:protocols --folds 1,2 --output "$out")

robustness() {
  "$bin" robustness "${common[@]}" --dataset synthetic
}

transfer() {
  "$bin" run "${common[@]}" --dataset synthetic-wild --no-leaderboard
  for pair in synthetic:synthetic-wild synthetic-wild:synthetic synthetic:synthetic-11 synthetic-11:synthetic; do
    "$bin" run "${common[@]}" --train-dataset "${pair%%:*}" --dataset "${pair##*:}" --no-leaderboard
  done
}

robustness > "$logs/robustness.log" 2>&1 &
a=$!
transfer > "$logs/transfer.log" 2>&1 &
b=$!
status=0
wait "$a" || { status=1; tail -n 40 "$logs/robustness.log"; }
wait "$b" || { status=1; tail -n 40 "$logs/transfer.log"; }
echo "protocol tables: logs in $logs"
exit "$status"
