#!/usr/bin/env bash
# Regenerates the committed robustness and transfer results into OUT (default: results), in two
# processes of one torch thread each (reproducible, as the synthetic table), folds 1-2, seed 1:
#   1. robustness on synthetic: suite:protocols, clean + 13 corruptions x 5 severities; then
#      transfer from synthetic to synthetic-11 (7 of MAFW's 11 classes shared);
#   2. the in-domain synthetic-wild runs of suite:protocols (the matrix's diagonal), transfer
#      between synthetic and synthetic-wild both ways, then from synthetic-11 to synthetic.
# The synthetic-11 transfers are those of zero-shot CLIP with descriptors and DFER-CLIP only.
# Transfer runs train on the training dataset's fold numbered like the tested fold.
# `make synthetic-table` and .ci/run call it; `dferbench leaderboard` then builds the pages.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results}
bin=${DFERBENCH:-.venv/bin/dferbench}
logs=$(mktemp -d)
export OMP_NUM_THREADS=1
common=(--folds 1,2 --output "$out")

transfer() {  # MODEL_ARGS... -- TRAIN:TEST...
  local model=() pair
  while [ "$1" != "--" ]; do model+=("$1"); shift; done
  shift
  for pair in "$@"; do
    "$bin" run "${model[@]}" "${common[@]}" --train-dataset "${pair%%:*}" --dataset "${pair##*:}" --no-leaderboard
  done
}

with_synthetic_11() {  # TRAIN:TEST
  transfer --model zeroshot-clip --set model.text=descriptors -- "$1"
  transfer --model dferclip -- "$1"
}

first() {
  "$bin" robustness --model suite:protocols --dataset synthetic "${common[@]}"
  with_synthetic_11 synthetic:synthetic-11
}

second() {
  "$bin" run --model suite:protocols --dataset synthetic-wild "${common[@]}" --no-leaderboard
  transfer --model suite:protocols -- synthetic:synthetic-wild synthetic-wild:synthetic
  with_synthetic_11 synthetic-11:synthetic
}

timed() {  # NAME: run NAME, then say how long it took
  local start=$SECONDS
  "$1" && echo "process $1 done in $((SECONDS - start)) s"
}

timed first > "$logs/first.log" 2>&1 &
a=$!
timed second > "$logs/second.log" 2>&1 &
b=$!
status=0
wait "$a" || { status=1; tail -n 40 "$logs/first.log"; }
wait "$b" || { status=1; tail -n 40 "$logs/second.log"; }
tail -qn 1 "$logs/first.log" "$logs/second.log"
echo "protocol tables: logs in $logs"
exit "$status"
