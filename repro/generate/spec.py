"""What a generation run is: model (+ unmerged adapter), prompts, decoding settings, template.

The fingerprint of a run decides whether earlier outputs may be reused: any difference in model, adapter
weights, backend, decoding, template or prompt set makes reuse an error instead of a silent mix.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from repro.data.templates import plain_prompt
from repro.io import sha256_file


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 2048  # released wwxu21/CUT/scripts/generate.py
    temperature: float = 0.0  # 0 = greedy (num_beams 1), as released
    top_p: float = 1.0
    seed: int = 0


@dataclass
class GenerationSpec:
    model: str  # hub id, local folder, or a .gguf file (transformers backend)
    adapter: str | None = None  # peft adapter folder, applied unmerged
    backend: str = "transformers"
    decoding: Decoding = field(default_factory=Decoding)
    template: str = "alpaca"  # alpaca: the Figure 6 inference template; chat: the tokenizer's chat template
    generator: str = "model"  # the name written into alpaca_eval outputs
    batch_size: int = 16
    tensor_parallel: int = 1
    dtype: str = "auto"

    def fingerprint(self, prompt_set: str) -> dict:
        adapter_weights = None
        if self.adapter:
            weights = Path(self.adapter) / "adapter_model.safetensors"
            adapter_weights = sha256_file(weights) if weights.is_file() else None
        return {"model": str(self.model), "adapter": self.adapter, "adapter_sha256": adapter_weights,
                "backend": self.backend, "decoding": asdict(self.decoding), "template": self.template,
                "generator": self.generator, "prompts": prompt_set}


def render(tokenizer, template: str, instruction: str, input_text: str | None = None) -> str:
    if template == "alpaca":
        return plain_prompt(instruction, input_text)
    if template == "chat":
        content = f"{instruction}\n{input_text}" if input_text else instruction
        return tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             tokenize=False)
    raise ValueError(f"unknown template '{template}' (alpaca or chat)")
