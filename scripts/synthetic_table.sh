#!/usr/bin/env bash
# Regenerates every committed result into OUT (default: results), two processes at a time:
#   the paper suite on synthetic and on synthetic-11, 5 folds, seed 1; then, folds 1-2, seed 1,
#   1. robustness on synthetic: suite:protocols, clean + 13 corruptions x 5 severities; then
#      transfer from synthetic to synthetic-11 (7 of MAFW's 11 classes shared);
#   2. the in-domain synthetic-wild runs of suite:protocols (the matrix's diagonal), transfer
#      between synthetic and synthetic-wild both ways, then from synthetic-11 to synthetic.
# The synthetic-11 transfers are those of zero-shot CLIP with descriptors and DFER-CLIP only.
# Transfer runs train on the training dataset's fold numbered like the tested fold.
# `make synthetic-table` and .ci/run call it; `dferbench leaderboard` then builds the pages.
#
# The same bytes on any x86-64 CPU with AVX2: one thread per process, numpy's OpenBLAS on its
# Haswell kernels and numpy's own vector loops no wider than AVX2. linear-probe's L-BFGS stops
# unconverged at weak regularisation, so a kernel's summation order alone moves the C it picks
# (synthetic fold 3, same features: UAR 25.98 on Haswell kernels, 27.44 on Sandybridge, 23.52
# on Nehalem, 33.17 on Katmai); its presets compute the features in fp64 for the same reason.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results}
bin=${DFERBENCH:-.venv/bin/dferbench}
logs=$(mktemp -d)
export OMP_NUM_THREADS=1 OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
common=(--folds 1,2 --output "$out")

paper() {  # DATASET
  "$bin" run --model suite:paper --dataset "$1" --output "$out" --no-leaderboard
}

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

in_pairs() {  # FIRST SECOND: run both at once, each logged; fail if either failed
  timed "$1" > "$logs/$1.log" 2>&1 &
  local a=$!
  timed "$2" > "$logs/$2.log" 2>&1 &
  local b=$! status=0
  wait "$a" || { status=1; tail -n 40 "$logs/$1.log"; }
  wait "$b" || { status=1; tail -n 40 "$logs/$2.log"; }
  tail -qn 1 "$logs/$1.log" "$logs/$2.log"
  return "$status"
}

synthetic() { paper synthetic; }
synthetic_11() { paper synthetic-11; }

echo "synthetic table: logs in $logs"
status=0
in_pairs synthetic synthetic_11 || status=1
in_pairs first second || status=1
exit "$status"
