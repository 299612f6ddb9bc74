#!/usr/bin/env bash
# GPU check for issue 7 (mixed precision, fast data path, training benchmark).
#
# Run from the repository root on a machine with one CUDA GPU:
#     OUT=/path/for/results bash scripts/gpu_check.sh
# Needs a python (PYTHON=..., default python3) with CUDA torch + torchvision, open_clip_torch
# and the project's dependencies, and dferbench installed from this checkout
# (`pip install --no-deps -e .`: the built-in plugins are entry points). Downloads nothing:
# if dferbench is not installed, the script installs this checkout with --no-index
# --no-deps --no-build-isolation (local files only) or stops with the command to run.
#
# On a machine without network (such as a lent GPU box that has torch but not open_clip),
# bring wheels along in .whl/ (`pip download --only-binary=:all: --no-deps -d .whl
# open_clip_torch ftfy wcwidth simplejpeg`) and start with:
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#       && export PYTHONPATH=/tmp/site && python3 -m pip install -q --no-index --no-deps \
#       --no-build-isolation -e . && BUDGET=420 bash scripts/gpu_check.sh
#
# Steps (each under its own time limit, all within BUDGET seconds, default 450):
#   1. environment: card, torch/torchvision, nvJPEG decode probe
#   1b. the CUDA-only tests (pytest -m cuda: side-stream prefetching, nvJPEG, bf16 training);
#       should they fail, step 2 runs with the device step inline (--prefetch 0)
#   2. bench train, ViT-B-32-quickgelu random weights, batch 48 x 16 frames: reference,
#      fast, model-only-bf16, fast-gpu-decode, fast-compile (+ eval throughput); each mode's
#      row reaches bench_train.json as soon as it is measured, and a failing mode costs
#      only its own row
#   3. accuracy: reference vs fast, 3 seeds x 4 epochs on the synthetic benchmark as JPEGs
#   4. one `dferbench run` unit on CUDA: the result records bf16 and the pipeline that ran
#   5. summary.md: the README tables and the GPU-hour extrapolation
# Everything written to $OUT is small (logs, JSON, Markdown); frames go to $WORK.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-check-out}
WORK=${WORK:-${TMPDIR:-/tmp}/dferbench-gpu-check}
BUDGET=${BUDGET:-450}
DEVICE=${DEVICE:-cuda}            # DEVICE=cpu smoke-tests this script without a GPU (tiny defaults)
ACC_SEEDS=${ACC_SEEDS:-1,2,3}
ACC_EPOCHS=${ACC_EPOCHS:-4}
ACC_CLIPS=${ACC_CLIPS:-400}
RUN_ARGS=${RUN_ARGS:-}            # extra `dferbench run` arguments for step 4
# BENCH_MODES=... picks the modes of step 2 (fast-compile compiles ViT-B/32 first: a minute or two)
mkdir -p "$OUT" "$WORK"
export OUT WORK DEVICE
export DFERBENCH_NO_PROGRESS=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
START=$SECONDS

left() { echo $(( BUDGET - (SECONDS - START) )); }
step() {  # step NAME LIMIT CMD...: run CMD with min(LIMIT, budget left) seconds, log its status
  local name=$1 limit=$2; shift 2
  local remaining; remaining=$(left)
  if (( remaining < 30 )); then echo "== $name: SKIPPED (budget spent)"; echo "$name skipped" >> "$OUT/status.txt"; return; fi
  (( limit > remaining )) && limit=$remaining
  echo; echo "== $name (limit ${limit}s, $(left)s of budget left)"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0))s"
  echo "$name exit=$rc seconds=$((SECONDS - t0))" >> "$OUT/status.txt"
}

: > "$OUT/status.txt"
echo "== gpu_check.sh started $(date -u +%FT%TZ) in $PWD, python: $(command -v "$PY")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "(no nvidia-smi)"

if ! "$PY" -c "from dferbench import plugins; plugins.get('model', 'dferclip')" 2>/dev/null; then
  echo "dferbench is not installed in $PY; installing this checkout from local files only"
  "$PY" -m pip install --no-index --no-deps --no-build-isolation -q -e . || {
    echo "FAILED: run '$PY -m pip install --no-deps -e .' (setuptools>=68 needed) and rerun"; exit 2; }
fi

step environment 90 "$PY" - <<'EOF'
import json, os, sys
import torch, torchvision, open_clip
from dferbench.data.gpu import decode_available
ok = torch.cuda.is_available()
info = {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
        "open_clip": open_clip.__version__, "cuda": ok, "cpus": os.cpu_count()}
if ok:
    info.update(card=torch.cuda.get_device_name(0), capability=torch.cuda.get_device_capability(0),
                bf16=torch.cuda.is_bf16_supported(), nvjpeg_decode=decode_available("cuda"))
print(json.dumps(info, indent=1))
json.dump(info, open(os.path.join(os.environ["OUT"], "environment.json"), "w"), indent=1)
sys.exit(0 if ok or os.environ["DEVICE"] == "cpu" else 3)
EOF
if grep -q "environment exit=3" "$OUT/status.txt"; then echo "no CUDA device visible to torch: stopping"; exit 3; fi

BENCH_ARGS=""
if [[ $DEVICE != cpu ]]; then
  step cuda-tests 120 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py
  if ! grep -q "cuda-tests exit=0" "$OUT/status.txt"; then
    echo "== the CUDA tests failed: benchmarking with the device step inline (--prefetch 0)"
    BENCH_ARGS="--prefetch 0"
  fi
fi

step bench-train 300 "$PY" -m dferbench bench train --device "$DEVICE" $BENCH_ARGS \
  --modes "${BENCH_MODES:-reference,fast,model-only-bf16,fast-gpu-decode,fast-compile}" \
  --root "$WORK/bench" --json "$OUT/bench_train.json"

step accuracy 200 "$PY" -m dferbench bench train --device "$DEVICE" --modes "" --root "$WORK/accuracy" \
  --accuracy-seeds "$ACC_SEEDS" --accuracy-epochs "$ACC_EPOCHS" --accuracy-clips "$ACC_CLIPS" --accuracy-num-frames 8 \
  --accuracy-batch-size 16 \
  --json "$OUT/bench_accuracy.json"

step run-unit 120 "$PY" -m dferbench run --model dferclip --dataset synthetic --folds 1 --device "$DEVICE" \
  --set train.epochs=2 --output "$WORK/results" --no-leaderboard --rerun $RUN_ARGS
"$PY" - <<'EOF' || true
import glob, json, os
for path in glob.glob(os.path.join(os.environ["WORK"], "results", "synthetic", "*", "*.json")):
    r = json.load(open(path))
    keys = ["run_name", "device", "precision", "data_pipeline", "world_size", "uar", "war", "wall_seconds"]
    line = {k: r.get(k) for k in keys} | {k: r["fit"].get(k) for k in ("data_workers", "seconds_per_epoch")}
    print("run-unit result:", json.dumps(line))
    json.dump(line, open(os.path.join(os.environ["OUT"], "run_unit.json"), "w"), indent=1)
EOF

echo
echo "== summary ($((SECONDS - START))s used of $BUDGET)"
"$PY" -m dferbench.tools.bench_report summarize "$OUT"/bench_train.json "$OUT"/bench_accuracy.json \
  | tee "$OUT/summary.md"
cat "$OUT/status.txt"
