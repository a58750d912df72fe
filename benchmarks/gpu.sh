#!/usr/bin/env bash
# Every GPU figure in docs/benchmarks.md, in one run on a CUDA machine: the CUDA tests, then
# model_speed.py and train_speed.py in float32 and bfloat16, eager, and the compiled
# training step. Each benchmark has its own time limit, so a slow compilation costs only its
# own rows. About 7 minutes on an H200 (COMPILE_TRAIN_SPEED=1 adds about 7 more).
#
#   OUT=benchmarks/results bash benchmarks/gpu.sh
set -u
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
step() { echo "== $*"; timeout "$@" || echo "== exit $? (timeout 124)"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  step 60 $py -m pytest -q -p no:cacheprovider tests/test_train_step.py \
    tests/test_inference.py -k "cuda or step"
  ms="benchmarks/model_speed.py --device cuda --out $OUT/model_speed_cuda.json"
  ts="benchmarks/train_speed.py --device cuda --steps 20 --warmup 5 --repeats 5"
  ts="$ts --out $OUT/train_speed_cuda.json"
  step 45 $py $ms --dtype float32 --warmup 3 --repeats 10
  step 45 $py $ms --dtype bfloat16 --warmup 3 --repeats 10
  step 45 $py $ts
  step 45 $py $ts --bf16
  # Compiled: the paper network's training step (one graph, ~90 s to compile on an H200).
  ms="$ms --compile --variants ours --batch-sizes 12 --modes train --warmup 3 --repeats 10"
  step 200 $py $ms --dtype float32
  step 200 $py $ms --dtype bfloat16
  # train_speed.py compiles three graphs per configuration (training forward and backward,
  # inference): about 3.5 minutes per run on the H200 (127 s and 64 s of compilation in
  # float32, gpu_log_compile.txt), so only on request.
  if [ "${COMPILE_TRAIN_SPEED:-0}" = 1 ]; then
    step 400 $py $ts --compile --configs paper
    step 400 $py $ts --compile --configs paper --bf16
  fi
} 2>&1 | tee "$OUT/gpu_log.txt"
