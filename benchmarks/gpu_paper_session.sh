#!/usr/bin/env bash
# One lent-GPU session for issue 22's measurements (about 5 minutes on an H100/H200): the paper's training step,
# scoring and decoding at the paper's shapes (benchmarks/gpu_paper_step.py), written as a calibration file in $OUT.
# The machine has torch, transformers and peft but not pydantic (repro.config), TRL, datasets or bitsandbytes:
# carry their wheels for CPython 3.12 in .whl/ (see the device notes; about 60 MiB with bitsandbytes) and they are
# installed first. Without TRL or bitsandbytes, those two measurements are skipped and said so.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic pydantic-core annotated-types typing-inspection trl==1.16.0 datasets dill multiprocess bitsandbytes
set -u -o pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TMPDIR=${TMPDIR:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
timeout 480 python3 benchmarks/gpu_paper_step.py 2>&1 | tee "$OUT/gpu_paper_step.log"
echo "=== exit ${PIPESTATUS[0]}"
