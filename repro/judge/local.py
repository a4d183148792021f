"""Judges that run here: a local model with the Figure 8 prompt, or an AI judge trained on the Figure 9 template."""
from __future__ import annotations

from pathlib import Path

from repro.generate.backends import generate_texts, make_backend
from repro.generate.spec import Decoding, GenerationSpec
from repro.io import sha256_file
from repro.judge.prompts import ai_judge_prompt, annotation_messages, annotation_text, is_positive, read_ai_judge


class LocalModelJudge:
    """Greedy generation through the project's backends, batched; no network, no cost."""

    def __init__(self, spec, model_path: str, adapter: str | None = None, backend: str = "transformers",
                 batch_size: int = 8):
        self.spec, self.model_path, self.adapter = spec, model_path, adapter
        self.generation = GenerationSpec(model=model_path, adapter=adapter, backend=backend, batch_size=batch_size,
                                         decoding=Decoding(max_new_tokens=spec.max_tokens))
        self._backend = None

    def identity(self) -> dict:
        weights = Path(self.adapter or "") / "adapter_model.safetensors"
        return {"kind": self.spec.kind, "model": self.model_path, "template": self.spec.template,
                "adapter_sha256": sha256_file(weights) if self.adapter and weights.is_file() else None,
                "max_tokens": self.spec.max_tokens}

    def prompt(self, row: dict) -> str:
        if self.spec.kind == "ai_judge":
            return ai_judge_prompt(row["instruction"], row.get("input"), row["output"])
        messages = annotation_messages(row["instruction"], row.get("input"), row["output"])
        if self.spec.template == "chat":
            return self.backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return annotation_text(messages)

    @property
    def backend(self):
        if self._backend is None:
            self._backend = make_backend(self.generation)
        return self._backend

    def complete_many(self, prompts: list[str]) -> list[str]:
        return generate_texts(self.backend, prompts, self.generation.decoding)

    def verdict(self, text: str) -> tuple[bool, str, bool]:
        if self.spec.kind == "ai_judge":
            return read_ai_judge(text)
        return is_positive(text), text.strip(), True
