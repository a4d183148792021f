"""A local model as alpaca_eval's judge: a decoder callable built on the project's generation backends.

mode "choice": the model scores the two answer letters ("m" = output_1 better, "M" = output_2 better) after the
prompt and the likelier one is the completion; it always parses, so even a small or random model gives a
complete (if meaningless) run. mode "generate": greedy generation through a backend, parsed by the config's
regex. Results from a local judge are not comparable with GPT-4 results.
"""
from __future__ import annotations

import time

import torch

from repro.generate.backends import TransformersBackend, generate_texts, make_backend
from repro.generate.spec import Decoding, GenerationSpec

CHOICES = ("m", "M")


class LocalAnnotator:
    def __init__(self, model: str, adapter: str | None = None, backend: str = "transformers"):
        self.spec = GenerationSpec(model=model, adapter=adapter, backend=backend, batch_size=8)
        self._backend = None

    @property
    def backend(self):
        if self._backend is None:
            self._backend = (TransformersBackend(self.spec) if self.spec.backend == "transformers"
                             else make_backend(self.spec))
        return self._backend

    def __call__(self, prompts: list[str], mode: str = "choice", max_new_tokens: int = 4, **_) -> dict:
        start = time.time()
        if mode == "choice":
            completions = [self._choose(p) for p in prompts]
        elif mode == "generate":
            completions = generate_texts(self.backend, prompts, Decoding(max_new_tokens=max_new_tokens))
        else:
            raise ValueError(f"unknown local judge mode '{mode}' (choice or generate)")
        per_example = (time.time() - start) / max(len(prompts), 1)
        return {"completions": completions, "price_per_example": [0.0] * len(prompts),
                "time_per_example": [per_example] * len(prompts)}

    def _choose(self, prompt: str) -> str:
        backend = self.backend
        if not isinstance(backend, TransformersBackend):
            raise ValueError("mode 'choice' scores with the transformers backend")
        tokenizer, model = backend.tokenizer, backend.model
        prompt_ids = tokenizer(prompt)["input_ids"]
        scores = []
        for choice in CHOICES:
            extra = tokenizer(choice, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt_ids + extra], device=backend.device)
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float(), -1)
            scores.append(float(logprobs.gather(1, ids[0, len(prompt_ids):, None]).sum()))
        return CHOICES[int(scores[1] > scores[0])]
