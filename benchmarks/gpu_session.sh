#!/usr/bin/env bash
# One lent-GPU session, prepared to run as a single command (about 5 minutes on an H100/H200): correctness of the
# CUT loss on CUDA first, then the loss benchmark and the training-step benchmark, each stage bounded and run even
# if one before it failed. Logs and JSON land in $OUT (or ./gpu_out). The machine has PyTorch and transformers but
# not pydantic: carry its wheels in .whl/ (pydantic, pydantic_core for CPython 3.12, annotated-types,
# typing-inspection) and they are installed first.
set -u -o pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
stage() {  # stage NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name"; local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"; echo "=== $name: exit ${PIPESTATUS[0]}, $((SECONDS - start)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
stage check_loss 120 python3 benchmarks/gpu_check_loss.py
stage step_llama3 150 python3 benchmarks/gpu_cut_step.py --preset 1b-llama3 --steps 6 --warmup 2
stage bench_loss 90 python3 benchmarks/bench_hidden_loss.py --device cuda --tokens 2048 --repeats 5
stage bench_loss_weight 60 python3 benchmarks/bench_hidden_loss.py --device cuda --tokens 2048 --repeats 5 --vocab 128256 --train-weight
stage step_llama2 120 python3 benchmarks/gpu_cut_step.py --preset 1b --steps 6 --warmup 2
